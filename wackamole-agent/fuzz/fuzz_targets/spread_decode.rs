//! Fuzzes every Spread decoder with arbitrary daemon bytes: none may panic,
//! and a frame that decodes must re-encode to a frame that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wackamole::membership::spread::codec::*;

fuzz_target!(|data: &[u8]| {
    let _ = decode_auth_list(data);
    let _ = decode_accept(data);
    let _ = decode_connect_request(data);
    let _ = decode_client(data);
    let mut at = 0;
    while let Some(rest) = data.get(at..) {
        match decode_daemon(rest) {
            Ok(Some((msg, used))) => {
                let order = decode_header(rest)
                    .map(|h| h.order)
                    .unwrap_or(ByteOrder::Little);
                let hint_order = match &msg {
                    DaemonMessage::Data(d) => d.sender_order,
                    _ => ByteOrder::Little,
                };
                let again = encode_daemon(order, hint_order, &msg);
                assert!(
                    matches!(decode_daemon(&again), Ok(Some(_))),
                    "re-encoded {msg:?} does not decode"
                );
                at += used;
            }
            _ => break,
        }
    }
});

//! Arbitrary bytes never panic the decoder; whatever decodes re-encodes to
//! the same bytes (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wackamole::alloc::wire::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(data) {
        let again = encode(&msg);
        assert_eq!(again, data, "decoded message re-encodes differently");
    }
});

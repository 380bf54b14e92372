//! Spread codec against the real captures of a 4.4.0 daemon
//! (copied from `shared/spread/captures` into `tests/fixtures/spread`,
//! annotated in shared/spread/TRANSCRIPTS.md).

use crate::support::pcap;

use proptest::prelude::*;
use wackamole::membership::spread::codec::*;

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/spread");

/// Everything decoded from one daemon -> client byte stream.
#[derive(Debug, Default)]
struct ClientSide {
    auth: Option<Vec<String>>,
    accepted: Option<Accepted>,
    reject: Option<Reject>,
    messages: Vec<DaemonMessage>,
}

fn decode_d2c(bytes: &[u8], from_start: bool) -> ClientSide {
    let mut out = ClientSide::default();
    let mut at = 0;
    if from_start {
        match decode_auth_list(bytes) {
            Err(DecodeError::Rejected(r)) => {
                out.reject = Some(r);
                assert_eq!(bytes.len(), 1, "bytes after a reject");
                return out;
            }
            Ok(Some((m, n))) => {
                out.auth = Some(m);
                at += n;
            }
            Ok(None) if bytes.is_empty() => return out,
            other => panic!("auth list: {other:?}"),
        }
        match decode_accept(&bytes[at..]) {
            Err(DecodeError::Rejected(r)) => {
                out.reject = Some(r);
                assert_eq!(bytes.len(), at + 1, "bytes after a reject");
                return out;
            }
            Ok(Some((a, n))) => {
                out.accepted = Some(a);
                at += n;
            }
            Ok(None) if bytes.len() == at => return out,
            other => panic!("accept: {other:?}"),
        }
    }
    while at < bytes.len() {
        match decode_daemon(&bytes[at..]) {
            Ok(Some((m, n))) => {
                out.messages.push(m);
                at += n;
            }
            other => panic!("message at byte {at}: {other:?}"),
        }
    }
    out
}

fn streams(file: &str, port: u16) -> Vec<pcap::Stream> {
    let path = format!("{CAPTURES}/{file}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let segs = pcap::read_pcap(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    pcap::reassemble(&segs, port)
}

fn view(m: &DaemonMessage) -> &RegularView {
    match m {
        DaemonMessage::View(v) => v,
        other => panic!("expected a view, got {other:?}"),
    }
}

fn data(m: &DaemonMessage) -> &DataMessage {
    match m {
        DaemonMessage::Data(d) => d,
        other => panic!("expected data, got {other:?}"),
    }
}

fn gid(proc_id: u32, time: u32, index: u32) -> GroupId {
    GroupId {
        proc_id,
        time,
        index,
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Re-encodes every decoded daemon message and compares it byte for byte
/// with the capture; checks the view invariants a client relies on.
fn check_d2c_stream(bytes: &[u8], side: &ClientSide) {
    let mut at = bytes.len() - side.messages.iter().map(encoded_len).sum::<usize>();
    let me = side.accepted.as_ref().map(|a| a.private_group.clone());
    for m in &side.messages {
        let hint_order = match m {
            DaemonMessage::Data(d) => d.sender_order,
            _ => ByteOrder::Little,
        };
        let again = encode_daemon(ByteOrder::Little, hint_order, m);
        assert_eq!(
            &bytes[at..at + again.len()],
            &again[..],
            "re-encoding {m:?}"
        );
        at += again.len();
        if let (DaemonMessage::View(v), Some(me)) = (m, &me) {
            assert!(v.members.contains(me), "{me} missing from {v:?}");
            if v.cause == ViewCause::Network {
                assert!(
                    v.vs_sets[v.local_vs_set].contains(me),
                    "{me} not in local vs_set {v:?}"
                );
                let all: usize = v.vs_sets.iter().map(Vec::len).sum();
                assert_eq!(all, v.members.len(), "vs_sets partition the members");
            } else {
                assert_eq!(v.vs_sets.len(), 1, "lightweight view has one vs_set");
                assert_eq!(v.vs_sets[0].len(), 1, "lightweight vs_set = changed member");
            }
        }
    }
    assert_eq!(at, bytes.len());
}

fn encoded_len(m: &DaemonMessage) -> usize {
    encode_daemon(ByteOrder::Little, ByteOrder::Little, m).len()
}

/// Decodes the client -> daemon stream (connect request, auth choice, then
/// messages) and checks that our encoder produces exactly the same bytes.
fn check_c2d_stream(bytes: &[u8], side: &ClientSide) {
    let (req, mut at) = decode_connect_request(bytes)
        .expect("connect request")
        .expect("complete connect request");
    assert_eq!(req.version, CLIENT_VERSION);
    let again = encode_connect_request(&req.private_name, req.membership, req.priority == 1)
        .expect("encodable name");
    assert_eq!(&bytes[..at], &again[..], "connect request");
    let Some(accepted) = &side.accepted else {
        return;
    };
    assert_eq!(
        &bytes[at..at + AUTH_CHOICE_LEN],
        &encode_auth_choice_null()[..]
    );
    at += AUTH_CHOICE_LEN;
    while at < bytes.len() {
        let (msg, order, sender, n) = decode_client(&bytes[at..])
            .expect("client message")
            .expect("complete client message");
        assert_eq!(sender, accepted.private_group, "sender field");
        let again = encode_client(order, &sender, &msg).expect("encodable");
        assert_eq!(&bytes[at..at + n], &again[..], "re-encoding {msg:?}");
        at += n;
    }
}

fn check_capture(file: &str, port: u16) -> Vec<(pcap::Stream, ClientSide)> {
    let all = streams(file, port);
    assert!(!all.is_empty(), "{file}: no connections");
    all.into_iter()
        .map(|s| {
            assert!(s.from_start, "{file}: capture starts mid-connection");
            let side = decode_d2c(&s.to_client, true);
            check_d2c_stream(&s.to_client, &side);
            (s, side)
        })
        .collect()
}

#[test]
fn tcp1_session_matches_transcript_sections_1_to_6() {
    let conns = check_capture("tcp1.pcap", 14803);
    assert_eq!(conns.len(), 2);
    let (alice_s, alice) = &conns[0];
    let (bob_s, bob) = &conns[1];
    for (s, side) in &conns {
        check_c2d_stream(&s.to_daemon, side);
        assert_eq!(side.auth.as_deref(), Some(&names(&["NULL"])[..]));
    }
    assert_eq!(
        alice.accepted,
        Some(Accepted {
            daemon_version: (4, 4, 0),
            private_group: "#alice#localhost".into()
        })
    );
    assert_eq!(&alice_s.to_client[..6], b"\x05NULL ");
    let lo = 0x7f00_0001;
    let t = 1_795_303_179;
    let a = &alice.messages;
    assert_eq!(a.len(), 7);
    let v = view(&a[0]);
    assert_eq!((v.group.as_str(), v.cause), ("demo", ViewCause::Join));
    assert_eq!(v.group_id, gid(lo, t, 1));
    assert_eq!(v.members, names(&["#alice#localhost"]));
    let v = view(&a[1]);
    assert_eq!(v.group_id, gid(lo, t, 2));
    assert_eq!(v.members, names(&["#alice#localhost", "#bob#localhost"]));
    assert_eq!(v.vs_sets, vec![names(&["#bob#localhost"])]);
    let d = data(&a[2]);
    assert_eq!(d.service_type, service::AGREED_MESS);
    assert_eq!(d.sender, "#bob#localhost");
    assert_eq!(d.groups, names(&["demo"]));
    assert_eq!((d.mess_type, d.sender_order), (7, ByteOrder::Little));
    assert_eq!(d.payload, b"Hello AGREED");
    let d = data(&a[3]);
    assert_eq!(d.service_type, service::SAFE_MESS);
    assert_eq!((d.sender.as_str(), d.mess_type), ("#alice#localhost", 1));
    assert_eq!(d.payload, b"hi from alice\n");
    let v = view(&a[4]);
    assert_eq!((v.cause, v.group_id), (ViewCause::Leave, gid(lo, t, 3)));
    assert_eq!(v.members, names(&["#alice#localhost"]));
    assert_eq!(v.vs_sets, vec![names(&["#bob#localhost"])]);
    assert_eq!(view(&a[5]).group_id, gid(lo, t, 4));
    let v = view(&a[6]);
    assert_eq!(
        (v.cause, v.group_id),
        (ViewCause::Disconnect, gid(lo, t, 5))
    );
    assert_eq!(v.vs_sets, vec![names(&["#bob#localhost"])]);

    // bob: same view 2 (same bytes as alice's), both messages, his self-leave.
    let b = &bob.messages;
    assert_eq!(b.len(), 5);
    assert_eq!(b[0], a[1]);
    assert_eq!(b[1], a[2]);
    assert_eq!(b[2], a[3]);
    assert_eq!(
        b[3],
        DaemonMessage::SelfLeave {
            group: "demo".into()
        }
    );
    assert_eq!(b[4], a[5]);
    // the KILL is bob's last message (s.6): own private group as the only name.
    assert!(bob_s.to_daemon.ends_with(
        &encode_client(ByteOrder::Little, "#bob#localhost", &ClientMessage::Kill).unwrap()
    ));
}

#[test]
fn big_endian_sender_matches_transcript_section_8() {
    let conns = check_capture("be.pcap", 14803);
    assert_eq!(conns.len(), 2);
    for (s, side) in &conns {
        check_c2d_stream(&s.to_daemon, side);
    }
    let (be_s, be) = &conns[1];
    assert_eq!(
        be.accepted.as_ref().unwrap().private_group,
        "#bigend#localhost"
    );
    // The raw client really wrote big endian: the first data header starts 00 00 00 10.
    let sends: Vec<_> = {
        let mut at = 5 + 6 + AUTH_CHOICE_LEN;
        let mut v = Vec::new();
        while let Ok(Some((m, o, _, n))) = decode_client(&be_s.to_daemon[at..]) {
            v.push((m, o));
            at += n;
        }
        v
    };
    assert!(sends.iter().any(|(m, o)| *o == ByteOrder::Big
        && *m
            == ClientMessage::Multicast {
                service: Service::Agreed,
                self_discard: false,
                groups: names(&["endian"]),
                mess_type: -2,
                data: b"BE-hello".to_vec()
            }));
    let erin = &conns[0].1.messages;
    let d = data(&erin[2]);
    assert_eq!((d.service_type, d.mess_type), (service::AGREED_MESS, -2));
    assert_eq!(
        d.sender_order,
        ByteOrder::Big,
        "endian_mismatch from the hint"
    );
    assert_eq!(d.payload, b"BE-hello");
    let d = data(&erin[3]);
    assert_eq!(
        d.service_type,
        service::RELIABLE_MESS | service::SELF_DISCARD
    );
    assert_eq!((d.mess_type, d.sender_order), (300, ByteOrder::Big));
    assert_eq!(d.groups, names(&["endian", "#erin#localhost"]));
    assert_eq!(d.payload, b"two-dests");
    assert_eq!(view(&erin[4]).cause, ViewCause::Disconnect);
    // SELF_DISCARD: the big-endian sender got only the AGREED copy.
    assert_eq!(be.messages.len(), 2);
}

#[test]
fn handshake_rejections_match_transcript_section_9() {
    let conns = check_capture("errors.pcap", 14803);
    let outcome: Vec<String> = conns
        .iter()
        .map(|(_, side)| match (&side.accepted, side.reject) {
            (Some(a), None) => a.private_group.clone(),
            (None, Some(r)) => r.code().map(|c| c.name().to_string()).unwrap_or_default(),
            (None, None) => "closed".into(),
            _ => panic!("accepted and rejected"),
        })
        .collect();
    assert_eq!(
        outcome,
        [
            "#dup#localhost",
            "REJECT_NOT_UNIQUE",
            "REJECT_ILLEGAL_NAME",
            "REJECT_ILLEGAL_NAME",
            "#$ok#localhost",
            "#abcdefghij#localhost",
            "REJECT_ILLEGAL_NAME",
            "#r163-11#localhost",
            "REJECT_VERSION",
            "REJECT_ILLEGAL_NAME",
            "#new#localhost",
            "REJECT_AUTH",
            "#prio#localhost",
            "closed",
            "closed",
        ]
    );
    for (s, side) in &conns {
        let (req, _) = decode_connect_request(&s.to_daemon).unwrap().unwrap();
        let ours = encode_connect_request(&req.private_name, req.membership, req.priority == 1);
        match side.reject.and_then(Reject::code) {
            // The daemon refused the name: our encoder refuses it too.
            Some(ErrorCode::RejectIllegalName) if req.version == CLIENT_VERSION => {
                assert!(ours.is_err(), "{:?} should be refused", req.private_name)
            }
            _ if side.accepted.is_some() => {
                assert!(ours.is_ok(), "{:?} should be accepted", req.private_name);
                // Only the auth choice follows: nothing else was sent.
                let n = ours.unwrap().len();
                assert_eq!(&s.to_daemon[n..], &encode_auth_choice_null()[..]);
            }
            _ => {}
        }
        if side.accepted.is_some() && req.version == CLIENT_VERSION {
            check_c2d_stream(&s.to_daemon, side);
        }
    }
    // The all-zero auth choice is what the daemon refused with REJECT_AUTH.
    let (s, _) = &conns[11];
    assert!(s.to_daemon[8..].iter().all(|&b| b == 0));
}

#[test]
fn daemon_crash_matches_transcript_section_10() {
    let conns = check_capture("failover_default.pcap", 14903);
    assert_eq!(conns.len(), 1);
    let (s, ca) = &conns[0];
    check_c2d_stream(&s.to_daemon, ca);
    let m = &ca.messages;
    let sda = u32::from(std::net::Ipv4Addr::new(10, 97, 0, 1));
    assert_eq!(view(&m[1]).group_id, gid(sda, 1_795_303_489, 2));
    assert_eq!(view(&m[1]).members, names(&["#ca#sda", "#cb#sdb"]));
    assert_eq!(
        m[2],
        DaemonMessage::Transitional {
            group: "fo".into(),
            group_id: gid(sda, 1_795_303_489, 2)
        }
    );
    let v = view(&m[3]);
    assert_eq!(v.cause, ViewCause::Network);
    assert_eq!(v.group_id, gid(sda, 1_795_303_506, 1));
    assert_eq!(v.members, names(&["#ca#sda"]));
    // Every transitional signal carries the id of the view it ends and is
    // followed by a network view.
    for w in m.windows(3) {
        if let DaemonMessage::Transitional { group_id, .. } = &w[1] {
            assert_eq!(view(&w[0]).group_id, *group_id);
            assert_eq!(view(&w[2]).cause, ViewCause::Network);
        }
    }
}

#[test]
fn partition_merge_matches_transcript_section_10b() {
    let conns = check_capture("partition.pcap", 14903);
    assert_eq!(conns.len(), 3);
    let sda = u32::from(std::net::Ipv4Addr::new(10, 97, 0, 1));
    let merged = |side: &ClientSide| view(side.messages.last().unwrap()).clone();
    for (i, (s, side)) in conns.iter().enumerate() {
        check_c2d_stream(&s.to_daemon, side);
        let v = merged(side);
        assert_eq!(v.cause, ViewCause::Network);
        assert_eq!(v.group_id, gid(sda, 1_795_304_038, 1));
        assert_eq!(v.members, names(&["#pa#sda", "#pb#sdb", "#pc#sdb"]));
        assert_eq!(
            v.vs_sets,
            vec![names(&["#pa#sda"]), names(&["#pb#sdb", "#pc#sdb"])]
        );
        assert_eq!(v.local_vs_set, usize::from(i > 0), "local offset 0 or 36");
    }
    // The merge view carries no TRANSITION before it.
    let pa = &conns[0].1.messages;
    assert!(matches!(pa[pa.len() - 2], DaemonMessage::Data(_)));
}

#[test]
fn unix_socket_strace_matches_transcript_section_7() {
    let path = format!("{CAPTURES}/unix1.strace");
    let text = std::fs::read_to_string(&path).unwrap();
    let io = pcap::read_strace(&text).unwrap();
    let to_client: Vec<u8> = io
        .iter()
        .filter(|x| !x.to_daemon)
        .flat_map(|x| x.bytes.clone())
        .collect();
    let to_daemon: Vec<u8> = io
        .iter()
        .filter(|x| x.to_daemon)
        .flat_map(|x| x.bytes.clone())
        .collect();
    // libspread wrote the connect request in one call, as the daemon requires.
    assert_eq!(
        io[0].bytes,
        encode_connect_request("carol", true, false).unwrap()
    );
    let side = decode_d2c(&to_client, true);
    check_d2c_stream(&to_client, &side);
    check_c2d_stream(&to_daemon, &side);
    assert_eq!(
        side.accepted.as_ref().unwrap().private_group,
        "#carol#localhost"
    );
    let m = &side.messages;
    assert_eq!(m.len(), 3);
    let v = view(&m[0]);
    assert_eq!(v.group_id, gid(0x7f00_0001, 1_795_303_179, 6));
    assert_eq!(v.members, names(&["#alice#localhost", "#carol#localhost"]));
    let d = data(&m[1]);
    assert_eq!((d.sender.as_str(), d.mess_type), ("#carol#localhost", 7));
    assert_eq!(d.payload, b"via-unix");
    assert_eq!(
        m[2],
        DaemonMessage::SelfLeave {
            group: "demo".into()
        }
    );
}

// ---------------------------------------------------------------- properties

fn group_name() -> impl Strategy<Value = String> {
    "[a-z0-9$%_~]{1,31}"
}

fn private_group() -> impl Strategy<Value = String> {
    "#[a-z0-9]{1,10}#[a-z0-9]{1,19}"
}

fn order() -> impl Strategy<Value = ByteOrder> {
    prop_oneof![Just(ByteOrder::Little), Just(ByteOrder::Big)]
}

fn svc() -> impl Strategy<Value = Service> {
    prop_oneof![
        Just(Service::Unreliable),
        Just(Service::Reliable),
        Just(Service::Fifo),
        Just(Service::Causal),
        Just(Service::Agreed),
        Just(Service::Safe),
    ]
}

fn gid_strategy() -> impl Strategy<Value = GroupId> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(p, t, i)| gid(p, t, i))
}

fn daemon_message() -> impl Strategy<Value = (DaemonMessage, ByteOrder)> {
    let data = (
        svc(),
        any::<bool>(),
        private_group(),
        prop::collection::vec(group_name(), 0..5),
        any::<i16>(),
        order(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(s, discard, sender, groups, mess_type, o, payload)| {
            let service_type = s.bit() | if discard { service::SELF_DISCARD } else { 0 };
            (
                DaemonMessage::Data(DataMessage {
                    service_type,
                    sender,
                    groups,
                    mess_type,
                    sender_order: o,
                    payload,
                }),
                o,
            )
        });
    let cause = prop_oneof![
        Just(ViewCause::Join),
        Just(ViewCause::Leave),
        Just(ViewCause::Disconnect),
        Just(ViewCause::Network),
    ];
    let view = (
        group_name(),
        cause,
        gid_strategy(),
        prop::collection::vec(private_group(), 0..6),
        prop::collection::vec(prop::collection::vec(private_group(), 0..4), 1..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(group, cause, group_id, members, vs_sets, local)| {
            let local_vs_set = local.index(vs_sets.len());
            (
                DaemonMessage::View(RegularView {
                    group,
                    cause,
                    group_id,
                    members,
                    vs_sets,
                    local_vs_set,
                }),
                ByteOrder::Little,
            )
        });
    let trans = (group_name(), gid_strategy()).prop_map(|(group, group_id)| {
        (
            DaemonMessage::Transitional { group, group_id },
            ByteOrder::Little,
        )
    });
    let leave =
        group_name().prop_map(|group| (DaemonMessage::SelfLeave { group }, ByteOrder::Little));
    let reject = (
        0u32..0x0040_0000,
        private_group(),
        prop::collection::vec(group_name(), 0..4),
        any::<i16>(),
        order(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(t, sender, groups, mess_type, o, payload)| {
            (
                DaemonMessage::Reject(Rejected {
                    old_type: t & !ENDIAN_MARKER,
                    sender,
                    groups,
                    mess_type,
                    payload,
                }),
                o,
            )
        });
    prop_oneof![data, view, trans, leave, reject]
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    let mcast = (
        svc(),
        any::<bool>(),
        prop::collection::vec(prop_oneof![group_name(), private_group()], 0..8),
        any::<i16>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(service, self_discard, groups, mess_type, data)| {
            ClientMessage::Multicast {
                service,
                self_discard,
                groups,
                mess_type,
                data,
            }
        });
    let plain = "[a-z0-9$%_~]{1,31}";
    prop_oneof![
        mcast,
        plain.prop_map(ClientMessage::Join),
        plain.prop_map(ClientMessage::Leave),
        Just(ClientMessage::Kill),
    ]
}

proptest! {
    #[test]
    fn daemon_messages_round_trip_in_both_orders(
        (msg, hint_order) in daemon_message(),
        o in order(),
    ) {
        let bytes = encode_daemon(o, hint_order, &msg);
        let (back, used) = decode_daemon(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(decode_header(&bytes).unwrap().order, o);
        // Any strict prefix is "need more bytes", never an error.
        for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, bytes.len() - 1] {
            if cut < bytes.len() {
                prop_assert_eq!(decode_daemon(&bytes[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn client_messages_round_trip_in_both_orders(
        msg in client_message(),
        me in private_group(),
        o in order(),
    ) {
        let bytes = encode_client(o, &me, &msg).unwrap();
        let (back, back_order, sender, used) = decode_client(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, msg);
        prop_assert_eq!(back_order, o);
        prop_assert_eq!(sender, me);
        let t = decode_header(&bytes).unwrap().service_type;
        prop_assert!(check_client_type(t).is_ok());
    }

    #[test]
    fn handshake_round_trips(name in "[a-z0-9$%_~]{0,10}", membership: bool, prio: bool) {
        let bytes = encode_connect_request(&name, membership, prio).unwrap();
        let (req, used) = decode_connect_request(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(req.private_name, name);
        prop_assert_eq!(req.membership, membership);
        prop_assert_eq!(req.priority, u8::from(prio));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_daemon(&bytes);
        let _ = decode_header(&bytes);
        let _ = decode_client(&bytes);
        let _ = decode_auth_list(&bytes);
        let _ = decode_accept(&bytes);
        let _ = decode_connect_request(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        (msg, hint_order) in daemon_message(),
        o in order(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = encode_daemon(o, hint_order, &msg);
        for (i, b) in flips {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        // Whatever still decodes re-encodes to a frame that decodes (the
        // same check the cargo-fuzz target spread_decode makes).
        if let Ok(Some((msg, _))) = decode_daemon(&bytes) {
            let order = decode_header(&bytes).unwrap().order;
            let hint_order = match &msg {
                DaemonMessage::Data(d) => d.sender_order,
                _ => ByteOrder::Little,
            };
            let again = encode_daemon(order, hint_order, &msg);
            prop_assert!(matches!(decode_daemon(&again), Ok(Some(_))), "{:?}", msg);
        }
    }
}

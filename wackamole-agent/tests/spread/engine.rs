//! The Spread engine against a scripted fake daemon on loopback TCP: event
//! mapping, sending, leave/join, shutdown, and reconnect after the daemon
//! connection drops, and the watchdog (probes to our own private group that
//! never surface; a daemon that stops reading is Lost, one that reads but
//! delivers late is not). (The real daemon is exercised by `spread_live`.)

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use wackamole::membership::spread::codec::*;
use wackamole::membership::spread::watchdog::{encode_probe, PROBE_MESS_TYPE};
use wackamole::membership::spread::{start, SpreadOptions};
use wackamole::membership::{MemberId, MembershipEvent, MembershipHandle, Outgoing, ViewId};

const LIMIT: Duration = Duration::from_secs(10);
const ME: &str = "#e1#fake";
const PEER: &str = "#zz#fake";

/// Plays the daemon side of the handshake; returns the private name asked for.
async fn accept_session(l: &TcpListener) -> (TcpStream, String) {
    let (mut s, _) = timeout(LIMIT, l.accept()).await.unwrap().unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.unwrap();
    let mut name = vec![0u8; usize::from(head[4])];
    s.read_exact(&mut name).await.unwrap();
    assert_eq!(&head[..4], &[4, 4, 0, 1], "version 4.4.0, membership flag");
    s.write_all(b"\x05NULL ").await.unwrap();
    let mut choice = [0u8; AUTH_CHOICE_LEN];
    s.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, encode_auth_choice_null());
    let mut accept = vec![1, 4, 4, 0, ME.len() as u8];
    accept.extend_from_slice(ME.as_bytes());
    s.write_all(&accept).await.unwrap();
    (s, String::from_utf8(name).unwrap())
}

async fn read_client(s: &mut TcpStream) -> ClientMessage {
    let mut buf = vec![0u8; HEADER_LEN];
    timeout(LIMIT, s.read_exact(&mut buf))
        .await
        .expect("client message in time")
        .unwrap();
    let h = decode_header(&buf).unwrap();
    let mut rest = vec![0u8; h.num_groups * NAME_LEN + h.data_len];
    s.read_exact(&mut rest).await.unwrap();
    buf.extend_from_slice(&rest);
    let (msg, order, sender, _) = decode_client(&buf).unwrap().unwrap();
    assert_eq!((order, sender.as_str()), (ByteOrder::Little, ME));
    msg
}

async fn send(s: &mut TcpStream, m: &DaemonMessage) {
    s.write_all(&encode_daemon(ByteOrder::Little, ByteOrder::Little, m))
        .await
        .unwrap();
}

async fn event(h: &mut MembershipHandle) -> MembershipEvent {
    timeout(LIMIT, h.events.recv())
        .await
        .expect("event in time")
        .expect("engine alive")
}

fn gid(index: u32) -> GroupId {
    GroupId {
        proc_id: 0x7f00_0001,
        time: 77,
        index,
    }
}

fn view(index: u32, members: &[&str]) -> DaemonMessage {
    DaemonMessage::View(RegularView {
        group: "g".into(),
        cause: ViewCause::Join,
        group_id: gid(index),
        members: members.iter().map(|m| m.to_string()).collect(),
        vs_sets: vec![vec![members[0].to_string()]],
        local_vs_set: 0,
    })
}

fn data(service_type: u32, sender: &str, group: &str, payload: &[u8]) -> DaemonMessage {
    DaemonMessage::Data(DataMessage {
        service_type,
        sender: sender.into(),
        groups: vec![group.into()],
        mess_type: 0,
        sender_order: ByteOrder::Little,
        payload: payload.to_vec(),
    })
}

#[tokio::test]
async fn engine_maps_events_sends_and_reconnects() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let mut opts = SpreadOptions::new(&format!("{port}@127.0.0.1"), "e1", "g");
    opts.retry_interval = Duration::from_millis(50);
    let mut h = start(opts).await.unwrap();
    assert!(h.description.contains("spread"));

    let (mut s, name) = accept_session(&l).await;
    assert_eq!(name, "e1");
    assert_eq!(read_client(&mut s).await, ClientMessage::Join("g".into()));

    send(&mut s, &view(1, &[PEER, ME])).await;
    let MembershipEvent::View(v) = event(&mut h).await else {
        panic!("expected a view")
    };
    assert_eq!(v.id, ViewId(gid(1).to_u128()));
    assert_eq!(v.members, vec![MemberId(PEER.into()), MemberId(ME.into())]);
    assert_eq!(v.my_index, 1);

    // Not for the agent: unordered service, other group, other group's view.
    send(&mut s, &data(service::RELIABLE_MESS, PEER, "g", b"r")).await;
    send(&mut s, &data(service::AGREED_MESS, PEER, "other", b"o")).await;
    let mut foreign = view(9, &[ME]);
    if let DaemonMessage::View(v) = &mut foreign {
        v.group = "other".into();
    }
    send(&mut s, &foreign).await;
    send(&mut s, &data(service::AGREED_MESS, PEER, "g", b"hello")).await;
    assert_eq!(
        event(&mut h).await,
        MembershipEvent::Message {
            sender: MemberId(PEER.into()),
            payload: b"hello".to_vec()
        }
    );
    send(
        &mut s,
        &DaemonMessage::Transitional {
            group: "g".into(),
            group_id: gid(1),
        },
    )
    .await;
    assert_eq!(event(&mut h).await, MembershipEvent::Transitional);

    // Sending: too large is dropped locally (the daemon would crash), the
    // session stays up and the next message goes out as AGREED to the group.
    h.outgoing
        .send(Outgoing::Send(vec![0; MAX_SAFE_BODY]))
        .await
        .unwrap();
    h.outgoing
        .send(Outgoing::Send(b"mine".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        read_client(&mut s).await,
        ClientMessage::Multicast {
            service: Service::Agreed,
            self_discard: false,
            groups: vec!["g".into()],
            mess_type: 0,
            data: b"mine".to_vec()
        }
    );

    // The daemon goes away: Lost, then a new session that joins again.
    drop(s);
    match event(&mut h).await {
        MembershipEvent::Lost { reason } => {
            assert!(reason.contains("spread"), "{reason}");
            assert!(reason.contains(&format!("{port}@127.0.0.1")), "{reason}");
        }
        other => panic!("expected Lost, got {other:?}"),
    }
    let (mut s, _) = accept_session(&l).await;
    assert_eq!(read_client(&mut s).await, ClientMessage::Join("g".into()));
    send(&mut s, &view(1, &[ME])).await;
    let MembershipEvent::View(v) = event(&mut h).await else {
        panic!("expected a view after reconnect")
    };
    assert_eq!((v.my_index, v.members.len()), (0, 1));

    // Leave: events stop; Join: they resume.
    h.outgoing.send(Outgoing::Leave).await.unwrap();
    assert_eq!(read_client(&mut s).await, ClientMessage::Leave("g".into()));
    send(&mut s, &data(service::AGREED_MESS, PEER, "g", b"late")).await;
    send(&mut s, &DaemonMessage::SelfLeave { group: "g".into() }).await;
    h.outgoing.send(Outgoing::Join).await.unwrap();
    assert_eq!(read_client(&mut s).await, ClientMessage::Join("g".into()));
    send(&mut s, &view(2, &[ME])).await;
    let v = match event(&mut h).await {
        MembershipEvent::View(v) => v,
        other => panic!("expected the view after the rejoin, got {other:?}"),
    };
    assert_eq!(v.id, ViewId(gid(2).to_u128()));

    // Shutdown: LEAVE, KILL, close.
    h.outgoing.send(Outgoing::Shutdown).await.unwrap();
    assert_eq!(read_client(&mut s).await, ClientMessage::Leave("g".into()));
    assert_eq!(read_client(&mut s).await, ClientMessage::Kill);
    let mut rest = Vec::new();
    timeout(LIMIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    assert!(timeout(LIMIT, h.events.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn unreachable_daemon_is_lost_once_then_retried() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let mut opts = SpreadOptions::new(&format!("{port}@127.0.0.1"), "e1", "g");
    opts.retry_interval = Duration::from_millis(20);
    let mut h = start(opts).await.unwrap();
    assert!(matches!(event(&mut h).await, MembershipEvent::Lost { .. }));
    // Several retries fail meanwhile, but Lost is reported once per outage.
    assert!(timeout(Duration::from_millis(300), h.events.recv())
        .await
        .is_err());
    // The daemon appears: the engine connects and joins.
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (mut s, _) = accept_session(&l).await;
    assert_eq!(read_client(&mut s).await, ClientMessage::Join("g".into()));
}

#[tokio::test]
async fn bad_options_are_refused() {
    for (ep, name, group) in [
        ("x@host", "a", "g"),
        ("4803@127.0.0.1", "abcdefghijk", "g"),
        ("4803@127.0.0.1", "a", "#g"),
        ("4803@127.0.0.1", "a", "has space"),
    ] {
        let err = start(SpreadOptions::new(ep, name, group)).await.err();
        let msg = format!("{:#}", err.expect("refused"));
        assert!(msg.contains("spread"), "{msg}");
    }
}

/// Reads the next client message, which must be a watchdog probe to my own
/// private group and the group "g" (one message); returns its payload.
async fn read_probe(s: &mut TcpStream) -> Vec<u8> {
    match read_client(s).await {
        ClientMessage::Multicast {
            service: Service::Agreed,
            self_discard: false,
            groups,
            mess_type: PROBE_MESS_TYPE,
            data,
        } if groups == [ME, "g"] => {
            assert_eq!(data.len(), 8, "probe payload: a sequence number");
            data
        }
        other => panic!("expected a watchdog probe, got {other:?}"),
    }
}

/// Delivers a probe back like the daemon does (to me; the daemon names
/// the groups of the message it delivers).
async fn echo_probe(s: &mut TcpStream, payload: &[u8]) {
    let mut d = data(service::AGREED_MESS, ME, ME, payload);
    if let DaemonMessage::Data(m) = &mut d {
        m.mess_type = PROBE_MESS_TYPE;
    }
    send(s, &d).await;
}

#[tokio::test]
async fn watchdog_probes_are_heard_stalls_pass_and_a_silent_daemon_is_lost() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let deadline = Duration::from_millis(300);
    let mut opts = SpreadOptions::new(&format!("{port}@127.0.0.1"), "e1", "g");
    opts.retry_interval = Duration::from_millis(50);
    opts.watchdog_interval = Some(Duration::from_millis(20));
    opts.watchdog_deadline = Some(deadline);
    let mut h = start(opts).await.unwrap();
    let (mut s, _) = accept_session(&l).await;
    assert_eq!(read_client(&mut s).await, ClientMessage::Join("g".into()));
    send(&mut s, &view(1, &[ME, PEER])).await;
    assert!(matches!(event(&mut h).await, MembershipEvent::View(_)));

    // A healthy daemon: probes come one at a time, numbered, and each echo
    // is `Heard` for me, never a message; a peer's probe to the group is
    // `Heard` for the peer. The next other event is the application
    // message, byte for byte.
    let mut seqs = Vec::new();
    for _ in 0..10 {
        let p = read_probe(&mut s).await;
        seqs.push(u64::from_le_bytes(p.clone().try_into().unwrap()));
        echo_probe(&mut s, &p).await;
        assert!(
            matches!(event(&mut h).await, MembershipEvent::Heard { member, .. } if member.0 == ME)
        );
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let peer_probe = |from: &str| {
        let mut d = data(service::AGREED_MESS, from, "g", &encode_probe(1));
        if let DaemonMessage::Data(m) = &mut d {
            m.mess_type = PROBE_MESS_TYPE;
        }
        d
    };
    send(&mut s, &peer_probe(PEER)).await;
    assert!(
        matches!(event(&mut h).await, MembershipEvent::Heard { member, .. } if member.0 == PEER)
    );
    // Not a member of the view: not heard.
    send(&mut s, &peer_probe("#xx#fake")).await;
    let app = [0u8, 1, 0x57, 0x44, 255];
    send(&mut s, &data(service::AGREED_MESS, PEER, "g", &app)).await;
    assert_eq!(
        event(&mut h).await,
        MembershipEvent::Message {
            sender: MemberId(PEER.into()),
            payload: app.to_vec()
        }
    );
    // The agent's payload goes out unchanged with mess_type 0.
    h.outgoing.send(Outgoing::Send(app.to_vec())).await.unwrap();
    loop {
        match read_client(&mut s).await {
            ClientMessage::Multicast {
                mess_type: PROBE_MESS_TYPE,
                data,
                ..
            } => echo_probe(&mut s, &data).await,
            other => {
                assert_eq!(
                    other,
                    ClientMessage::Multicast {
                        service: Service::Agreed,
                        self_discard: false,
                        groups: vec!["g".into()],
                        mess_type: 0,
                        data: app.to_vec()
                    }
                );
                break;
            }
        }
    }

    // A ring re-forming: the daemon reads the probe but delivers it only
    // after four deadlines. No Lost, no second probe meanwhile.
    // Drain the Heard events of the probes echoed in the loop above.
    while let Ok(Some(ev)) = timeout(Duration::from_millis(50), h.events.recv()).await {
        assert!(matches!(ev, MembershipEvent::Heard { .. }), "{ev:?}");
    }
    let late = read_probe(&mut s).await;
    assert!(
        timeout(4 * deadline, h.events.recv()).await.is_err(),
        "no event while the daemon reads but does not deliver"
    );
    // The late probe is not heard (the order stalled), the next one is.
    echo_probe(&mut s, &late).await;
    let next = read_probe(&mut s).await;
    echo_probe(&mut s, &next).await;
    assert!(matches!(event(&mut h).await, MembershipEvent::Heard { member, .. } if member.0 == ME));
    assert_eq!(
        u64::from_le_bytes(next.try_into().unwrap()),
        u64::from_le_bytes(late.try_into().unwrap()) + 1
    );

    // A frozen daemon: it stops reading. The probe stays in its socket
    // queue: Lost naming the watchdog, then a new session.
    match event(&mut h).await {
        MembershipEvent::Lost { reason } => {
            assert!(reason.contains("watchdog probe within 300 ms"), "{reason}");
            assert!(reason.contains(&format!("{port}@127.0.0.1")), "{reason}");
        }
        other => panic!("expected Lost, got {other:?}"),
    }
    let (mut s2, _) = accept_session(&l).await;
    assert_eq!(read_client(&mut s2).await, ClientMessage::Join("g".into()));
    drop(s);
}

#[tokio::test]
async fn watchdog_interval_must_be_below_the_deadline() {
    let mut opts = SpreadOptions::new("4803@127.0.0.1", "a", "g");
    opts.watchdog_interval = Some(Duration::from_millis(600));
    let err = start(opts).await.err().expect("refused");
    assert!(format!("{err:#}").contains("watchdog interval"), "{err:#}");
}

/// Binds a Unix socket at `path` and listens on it with effective uid `uid`
/// (what SO_PEERCRED reports): a local user squatting on the daemon's path.
/// Done on a thread of its own with the raw syscall, which changes only that
/// thread's credentials (glibc's setresuid would change the whole process).
fn listen_as(uid: u32, path: &std::path::Path) -> tokio::net::UnixListener {
    let _ = std::fs::remove_file(path);
    let path = path.to_path_buf();
    let l = std::thread::spawn(move || {
        let keep = libc::uid_t::MAX as libc::c_long; // -1: leave unchanged
                                                     // SAFETY: setresuid on this thread only; restored before returning.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, keep, uid as libc::c_long, keep) };
        assert_eq!(rc, 0, "setresuid: {}", std::io::Error::last_os_error());
        let l = std::os::unix::net::UnixListener::bind(&path);
        // SAFETY: as above; our real uid (root) allows going back.
        let back = unsafe { libc::syscall(libc::SYS_setresuid, keep, 0 as libc::c_long, keep) };
        assert_eq!(
            back,
            0,
            "setresuid back: {}",
            std::io::Error::last_os_error()
        );
        l.expect("bind the fake daemon socket")
    })
    .join()
    .expect("listener thread");
    l.set_nonblocking(true).unwrap();
    tokio::net::UnixListener::from_std(l).unwrap()
}

/// A fresh `/tmp/<port>` path for a Unix endpoint.
fn unix_port(n: u16) -> (u16, std::path::PathBuf) {
    let port = 20000 + (std::process::id() % 20000) as u16 + n;
    (port, std::path::PathBuf::from(format!("/tmp/{port}")))
}

/// The first bytes the engine sends after connecting: the connect request
/// head if it accepted the daemon, nothing (EOF) if it refused it.
async fn first_bytes(l: &tokio::net::UnixListener) -> Vec<u8> {
    let (mut s, _) = timeout(LIMIT, l.accept()).await.unwrap().unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 5];
    while head.len() < 5 {
        match timeout(LIMIT, s.read(&mut buf[head.len()..]))
            .await
            .unwrap()
        {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

fn root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn a_unix_daemon_of_another_user_is_refused() {
    assert!(root(), "needs root to listen as another uid");
    let (port, path) = unix_port(0);
    let l = listen_as(65534, &path);
    let mut opts = SpreadOptions::new(&port.to_string(), "e1", "g");
    opts.retry_interval = Duration::from_millis(50);
    let mut h = start(opts).await.unwrap();
    // The engine hangs up before sending anything: no name, no join.
    assert_eq!(first_bytes(&l).await, b"");
    match event(&mut h).await {
        MembershipEvent::Lost { reason } => {
            assert!(reason.contains("uid 65534"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // And keeps refusing on every retry.
    assert_eq!(first_bytes(&l).await, b"");
    drop(h);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_unix_daemon_of_root_or_the_configured_uid_is_accepted() {
    assert!(root(), "needs root to listen as another uid");
    for (n, (owner, trusted)) in [(0, None), (65534, Some(65534))].into_iter().enumerate() {
        let (port, path) = unix_port(1 + n as u16);
        let l = listen_as(owner, &path);
        let mut opts = SpreadOptions::new(&port.to_string(), "e1", "g");
        opts.trusted_uid = trusted;
        let h = start(opts).await.unwrap();
        // The connect request: version 4.4.0, membership flag, name length.
        assert_eq!(first_bytes(&l).await, [4, 4, 0, 1, 2], "owner {owner}");
        drop(h);
        let _ = std::fs::remove_file(&path);
    }
}

/// A member that leaves or disconnects from its daemon (the daemon stays in
/// the ring) is reported `Departed` just before the view that drops it; a
/// network-caused view (a daemon gone) is not.
#[tokio::test]
async fn a_member_that_leaves_its_live_daemon_is_reported_departed() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let opts = SpreadOptions::new(&format!("{port}@127.0.0.1"), "e1", "g");
    let mut h = start(opts).await.unwrap();
    let (mut s, _) = accept_session(&l).await;
    assert_eq!(read_client(&mut s).await, ClientMessage::Join("g".into()));
    let caused = |index, members: &[&str], cause| {
        let mut m = view(index, members);
        if let DaemonMessage::View(v) = &mut m {
            v.cause = cause;
        }
        m
    };
    const THIRD: &str = "#x3#fake";
    send(&mut s, &view(1, &[PEER, ME, THIRD])).await;
    assert!(matches!(event(&mut h).await, MembershipEvent::View(_)));
    send(&mut s, &caused(2, &[ME, THIRD], ViewCause::Disconnect)).await;
    assert_eq!(
        event(&mut h).await,
        MembershipEvent::Departed {
            members: vec![MemberId(PEER.into())]
        }
    );
    assert!(matches!(event(&mut h).await, MembershipEvent::View(v) if v.members.len() == 2));
    send(&mut s, &caused(3, &[ME], ViewCause::Network)).await;
    assert!(matches!(event(&mut h).await, MembershipEvent::View(v) if v.members.len() == 1));
    send(&mut s, &view(4, &[ME, THIRD])).await;
    assert!(matches!(event(&mut h).await, MembershipEvent::View(_)));
    send(&mut s, &caused(5, &[ME], ViewCause::Leave)).await;
    assert_eq!(
        event(&mut h).await,
        MembershipEvent::Departed {
            members: vec![MemberId(THIRD.into())]
        }
    );
    assert!(matches!(event(&mut h).await, MembershipEvent::View(_)));
}

//! The XDP program, branch by branch, through `BPF_PROG_TEST_RUN`: real
//! verifier, real maps, synthetic frames. Needs root (bpf, bpffs).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use wackamole::dataplane::frames::{
    self, ipv4_udp, ipv6_udp, test_run, vlan_tagged, ArpFrame, ArpOp, RunContext, XdpRun,
    BROADCAST, XDP_DROP, XDP_PASS, XDP_TX,
};
use wackamole::dataplane::{
    monotonic_now, ActionCounters, DataPlane, DataPlaneOptions, OwnOptions, Vip, VipCounters,
    VipState,
};
use wackamole::net::nd::NdFrame;

const LO: u32 = 1;
const VIP_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 0x02];
const OTHER_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0x03];
const VIP_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const UNKNOWN_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

/// A data plane in its own pin directory, shut down (unpinned) on drop.
struct Plane(Option<DataPlane>);

impl Plane {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let instance = format!(
            "testrun-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Plane(Some(
            DataPlane::open(&DataPlaneOptions::new(instance)).expect("open data plane (root?)"),
        ))
    }
    fn dp(&mut self) -> &mut DataPlane {
        self.0.as_mut().expect("plane present")
    }
    fn run(&mut self, frame: &[u8]) -> XdpRun {
        self.run_cx(frame, RunContext::default())
    }
    fn run_cx(&mut self, frame: &[u8], cx: RunContext) -> XdpRun {
        test_run(self.dp().program().expect("program"), frame, cx).expect("test run")
    }
    fn actions(&mut self) -> ActionCounters {
        self.dp().action_counters().expect("action counters")
    }
    fn counters(&mut self, vip: &Vip) -> VipCounters {
        self.dp().counters(vip).expect("counters")
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        if let Some(dp) = self.0.take() {
            let dir = dp.pin_dir().to_path_buf();
            let result = dp.shutdown();
            // Never panic while a failed test unwinds (that would abort).
            if !std::thread::panicking() {
                result.expect("shutdown");
                assert!(!dir.exists(), "{} left behind", dir.display());
            }
        }
    }
}

fn vip() -> Vip {
    Vip::new("lo", LO, VIP_IP)
}

fn owned() -> Plane {
    let mut p = Plane::new();
    p.dp().own_as(&vip(), VIP_MAC).expect("own");
    p
}

fn request() -> Vec<u8> {
    ArpFrame::request(PEER_MAC, PEER_IP, VIP_IP)
        .encode_unpadded()
        .to_vec()
}

fn ip_to(dst: Ipv4Addr, len: usize) -> Vec<u8> {
    ipv4_udp(PEER_MAC, VIP_MAC, PEER_IP, dst, len)
}

#[test]
#[ignore = "needs root"]
fn arp_request_for_owned_vip_becomes_a_reply_byte_by_byte() {
    let mut p = owned();
    let input = request();
    let r = p.run(&input);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.frame.len(), 42);
    let f = &r.frame;
    assert_eq!(&f[0..6], &PEER_MAC, "eth dst = requester");
    assert_eq!(&f[6..12], &VIP_MAC, "eth src = VIP MAC");
    assert_eq!(&f[12..14], &[0x08, 0x06], "ethertype ARP");
    assert_eq!(&f[14..16], &[0, 1], "htype");
    assert_eq!(&f[16..18], &[0x08, 0x00], "ptype");
    assert_eq!(f[18], 6, "hlen");
    assert_eq!(f[19], 4, "plen");
    assert_eq!(&f[20..22], &[0, 2], "op reply");
    assert_eq!(&f[22..28], &VIP_MAC, "sha");
    assert_eq!(&f[28..32], &VIP_IP.octets(), "spa");
    assert_eq!(&f[32..38], &PEER_MAC, "tha");
    assert_eq!(&f[38..42], &PEER_IP.octets(), "tpa");

    // Padded to the 60-byte Ethernet minimum: padding untouched.
    let mut padded = input.clone();
    padded.resize(60, 0xee);
    let r = p.run(&padded);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(&r.frame[..42], &f[..]);
    assert!(r.frame[42..].iter().all(|b| *b == 0xee));

    assert_eq!(p.counters(&vip()).arp_replies, 2);
    let a = p.actions();
    assert_eq!((a.arp_reply, a.pass), (2, 0));
}

#[test]
#[ignore = "needs root"]
fn explicit_ingress_ifindex_in_the_context() {
    let mut p = owned();
    let cx = RunContext {
        ingress_ifindex: Some(LO),
        ..RunContext::default()
    };
    assert_eq!(p.run_cx(&request(), cx).action, XDP_TX);
}

#[test]
#[ignore = "needs root"]
fn vip_on_another_interface_is_not_answered() {
    let mut p = Plane::new();
    let elsewhere = Vip::new("other", 4242, VIP_IP);
    p.dp().own_as(&elsewhere, VIP_MAC).unwrap();
    let input = request();
    let r = p.run(&input);
    assert_eq!(r.action, XDP_PASS);
    assert_eq!(r.frame, input);
    let ip = ip_to(VIP_IP, 100);
    assert_eq!(p.run(&ip).action, XDP_PASS);
    assert_eq!(p.counters(&elsewhere), VipCounters::default());
    p.dp().release(&elsewhere).unwrap();
    assert_eq!(
        p.run(&input).action,
        XDP_PASS,
        "releasing elsewhere: no drop here"
    );
}

#[test]
#[ignore = "needs root"]
fn unknown_vip_passes_untouched() {
    let mut p = owned();
    let input = ArpFrame::request(PEER_MAC, PEER_IP, UNKNOWN_IP)
        .encode_unpadded()
        .to_vec();
    let r = p.run(&input);
    assert_eq!((r.action, r.frame), (XDP_PASS, input));
    assert_eq!(p.run(&ip_to(UNKNOWN_IP, 80)).action, XDP_PASS);
    assert_eq!(p.actions().pass, 2);
    assert_eq!(p.counters(&vip()), VipCounters::default());
}

#[test]
#[ignore = "needs root"]
fn releasing_drops_arp_and_ipv4() {
    let mut p = owned();
    p.dp().release(&vip()).unwrap();
    assert_eq!(p.run(&request()).action, XDP_DROP);
    assert_eq!(p.run(&ip_to(VIP_IP, 100)).action, XDP_DROP);
    let c = p.counters(&vip());
    assert_eq!((c.drops, c.packets, c.arp_replies), (2, 0, 0));
    let a = p.actions();
    assert_eq!((a.drop_releasing, a.drop_fenced, a.arp_reply), (2, 0, 0));
    // The MAC is kept for the release, and owning again answers again.
    let e = p.dp().entries().unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].state, e[0].mac), (VipState::Releasing, VIP_MAC));
    p.dp().own_as(&vip(), VIP_MAC).unwrap();
    assert_eq!(p.run(&request()).action, XDP_TX);
}

#[test]
#[ignore = "needs root"]
fn ipv4_to_owned_vip_passes_and_is_counted() {
    let mut p = owned();
    for len in [60usize, 100, 1500] {
        let r = p.run(&ip_to(VIP_IP, len));
        assert_eq!(r.action, XDP_PASS);
    }
    let c = p.counters(&vip());
    assert_eq!((c.packets, c.bytes, c.drops), (3, 1660, 0));
    assert_eq!(p.actions().pass, 3);
}

#[test]
#[ignore = "needs root"]
fn lease_expiry_fences_and_renewal_unfences() {
    let mut p = owned();
    let now = monotonic_now().as_nanos() as u64;

    // Zero deadline: no lease, never fenced.
    p.dp().set_lease_deadline(0).unwrap();
    assert_eq!(p.run(&request()).action, XDP_TX);

    // Deadline in the past: fenced.
    p.dp().set_lease_deadline(now - 1_000_000).unwrap();
    assert_eq!(p.run(&request()).action, XDP_DROP);
    assert_eq!(p.run(&ip_to(VIP_IP, 64)).action, XDP_DROP);
    let a = p.actions();
    assert_eq!((a.drop_fenced, a.drop_releasing), (2, 0));
    assert_eq!(p.counters(&vip()).drops, 2);

    // Renewed into the future: answered again.
    p.dp().renew_lease(Some(Duration::from_secs(60))).unwrap();
    let deadline = p.dp().lease_deadline().unwrap();
    assert!(
        deadline > now + 59_000_000_000,
        "deadline {deadline} now {now}"
    );
    assert_eq!(p.run(&request()).action, XDP_TX);

    // Lapses by itself.
    p.dp().renew_lease(Some(Duration::from_millis(50))).unwrap();
    assert_eq!(p.run(&request()).action, XDP_TX);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(p.run(&request()).action, XDP_DROP);

    // Lease disabled: answered again.
    p.dp().renew_lease(None).unwrap();
    assert_eq!(p.dp().lease_deadline().unwrap(), 0);
    assert_eq!(p.run(&request()).action, XDP_TX);
}

/// The LAN detector's lease (detector mode `guard`) fences as the agent's
/// does, either one alone; its beat thread writes it through its own
/// handle on the pinned map.
#[test]
#[ignore = "needs root"]
fn the_beat_lease_fences_beside_the_agents() {
    let mut p = owned();
    let now = monotonic_now().as_nanos() as u64;
    p.dp().renew_lease(Some(Duration::from_secs(60))).unwrap();
    let mut fence = p.dp().beat_fence().unwrap();

    // Zero: no beat lease.
    fence.set(0).unwrap();
    assert_eq!(p.run(&request()).action, XDP_TX);

    // Lapsed beat lease, live agent lease: fenced.
    fence.set(now - 1_000_000).unwrap();
    assert_eq!(p.run(&request()).action, XDP_DROP);
    assert_eq!(p.actions().drop_fenced, 1);

    // Renewed: answered; then it lapses by itself.
    let soon = monotonic_now().as_nanos() as u64 + 50_000_000;
    fence.set(soon).unwrap();
    assert_eq!(p.run(&request()).action, XDP_TX);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(p.run(&request()).action, XDP_DROP);

    // The agent clears it at start.
    p.dp().set_beat_deadline(0).unwrap();
    assert_eq!(p.run(&request()).action, XDP_TX);

    // Live beat lease, lapsed agent lease: fenced.
    fence.set(u64::MAX).unwrap();
    p.dp().set_lease_deadline(1).unwrap();
    assert_eq!(p.run(&request()).action, XDP_DROP);
}

#[test]
#[ignore = "needs root"]
fn fence_applies_to_releasing_vips_and_not_to_unknown_ones() {
    let mut p = owned();
    let other_ip = Ipv4Addr::new(192, 0, 2, 11);
    let other = Vip::new("lo", LO, other_ip);
    p.dp().own_as(&other, VIP_MAC).unwrap();
    p.dp().release(&other).unwrap();
    p.dp().set_lease_deadline(1).unwrap();
    let to_other = ArpFrame::request(PEER_MAC, PEER_IP, other_ip)
        .encode_unpadded()
        .to_vec();
    assert_eq!(p.run(&to_other).action, XDP_DROP);
    assert_eq!(p.actions().drop_fenced, 1);
    assert_eq!(p.actions().drop_releasing, 0);
    let unknown = ArpFrame::request(PEER_MAC, PEER_IP, UNKNOWN_IP)
        .encode_unpadded()
        .to_vec();
    assert_eq!(p.run(&unknown).action, XDP_PASS);
}

#[test]
#[ignore = "needs root"]
fn short_and_malformed_frames_pass_untouched() {
    let mut p = owned();
    p.dp().release(&vip()).unwrap(); // would drop anything it parsed
    let good = request();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("ethernet header only, ARP type", good[..14].to_vec()),
        ("truncated ARP (41 bytes)", good[..41].to_vec()),
        ("truncated ARP (20 bytes)", good[..20].to_vec()),
        ("truncated IPv4 header", ip_to(VIP_IP, 60)[..33].to_vec()),
    ];
    for (name, at, value) in [
        ("htype 2", 15usize, 2u8),
        ("ptype IPv6", 16, 0x86),
        ("hlen 8", 18, 8),
        ("plen 16", 19, 16),
        ("op 3", 21, 3),
    ] {
        let mut f = good.clone();
        f[at] = value;
        cases.push((name, f));
    }
    let mut not_v4 = ip_to(VIP_IP, 60);
    not_v4[14] = 0x65;
    cases.push(("IP version 6 nibble", not_v4));
    for (name, frame) in &cases {
        let r = p.run(frame);
        assert_eq!(r.action, XDP_PASS, "{name}");
        assert_eq!(&r.frame, frame, "{name}: frame changed");
    }
    assert_eq!(p.counters(&vip()), VipCounters::default());
    assert_eq!(p.actions().pass, cases.len() as u64);
}

#[test]
#[ignore = "needs root"]
fn frames_shorter_than_ethernet_never_reach_the_program() {
    // BPF_PROG_TEST_RUN refuses packets under 14 bytes (also when a metadata
    // prefix hides part of the input), so the 14-byte case above is the
    // shortest frame XDP can be shown; the verifier checked the bounds tests.
    let mut p = owned();
    let good = request();
    let err = test_run(
        p.dp().program().unwrap(),
        &good[..13],
        RunContext::default(),
    );
    assert!(err.is_err(), "a 13-byte frame was accepted");
    let r = p.run(&good[..14]);
    assert_eq!(r.action, XDP_PASS);
}

/// Hardware type 6 (IEEE 802) is answered by Linux on an Ethernet device
/// like type 1: answered here when owned (the reply mirrors the request),
/// dropped when silent, never left to the kernel, which would answer for
/// an address still plumbed.
#[test]
#[ignore = "needs root"]
fn ieee802_hardware_type_requests_are_answered_and_silenced_like_ethernet() {
    let mut p = owned();
    let mut req = request();
    req[15] = 6;
    let r = p.run(&req);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(&r.frame[14..16], &[0, 6]);
    assert_eq!(&r.frame[20..22], &[0, 2], "a reply");
    assert_eq!(&r.frame[22..28], &VIP_MAC, "sender hardware address");
    p.dp().release(&vip()).unwrap();
    assert_eq!(p.run(&req).action, XDP_DROP);
    p.dp().own_as(&vip(), VIP_MAC).unwrap();
    p.dp().set_lease_deadline(1).unwrap();
    assert_eq!(p.run(&req).action, XDP_DROP, "fenced");
    let a = p.actions();
    assert_eq!((a.arp_reply, a.drop_releasing, a.drop_fenced), (1, 1, 1));
}

/// A priority tag (802.1Q, VLAN id 0) belongs to the interface itself: the
/// kernel strips it and answers what it carries. Requests and
/// solicitations inside one are dropped for a silent VIP (released,
/// yielding, fenced), passed for an owned one and for any other VLAN;
/// other traffic inside one passes.
#[test]
#[ignore = "needs root"]
fn priority_tagged_requests_for_a_silent_vip_are_dropped() {
    let mut p = owned();
    let tagged = vlan_tagged(&request(), 0);
    let r = p.run(&tagged);
    assert_eq!((r.action, &r.frame), (XDP_PASS, &tagged), "owned");
    p.dp().release(&vip()).unwrap();
    assert_eq!(p.run(&tagged).action, XDP_DROP, "released");
    assert_eq!(
        p.run(&vlan_tagged(&request(), 5)).action,
        XDP_PASS,
        "VLAN 5"
    );
    assert_eq!(
        p.run(&vlan_tagged(&ip_to(VIP_IP, 64), 0)).action,
        XDP_PASS,
        "traffic"
    );
    let mut gratuitous = ArpFrame::request(PEER_MAC, VIP_IP, VIP_IP)
        .encode_unpadded()
        .to_vec();
    gratuitous = vlan_tagged(&gratuitous, 0);
    assert_eq!(p.run(&gratuitous).action, XDP_PASS, "gratuitous");
    for len in 14..tagged.len() {
        assert_eq!(p.run(&tagged[..len]).action, XDP_PASS, "{len} bytes");
    }
    p.dp().yield_vip(&vip()).unwrap();
    assert_eq!(p.run(&tagged).action, XDP_DROP, "yielding");

    let mut p6 = owned6();
    let tagged6 = vlan_tagged(&ns().to_frame(), 0);
    assert_eq!(p6.run(&tagged6).action, XDP_PASS, "owned (IPv6)");
    p6.dp().set_lease_deadline(1).unwrap();
    assert_eq!(p6.run(&tagged6).action, XDP_DROP, "fenced (IPv6)");
    p6.dp().set_lease_deadline(0).unwrap();
    p6.dp().release(&vip6()).unwrap();
    assert_eq!(p6.run(&tagged6).action, XDP_DROP, "released (IPv6)");
    // Up to the end of the NS message (the tag, Ethernet, IPv6, 24 bytes).
    for len in 14..4 + 14 + 40 + 24 {
        let r = p6.run(&tagged6[..len]);
        assert_eq!(r.action, XDP_PASS, "{len} bytes (IPv6)");
    }
    let a = (p.actions(), p6.actions());
    assert_eq!(
        (
            a.0.drop_releasing,
            a.0.drop_yielding,
            a.1.drop_fenced,
            a.1.drop_releasing
        ),
        (1, 1, 1, 1)
    );
}

#[test]
#[ignore = "needs root"]
fn vlan_tagged_frames_pass() {
    let mut p = owned();
    let tagged = vlan_tagged(&request(), 100);
    let r = p.run(&tagged);
    assert_eq!((r.action, &r.frame), (XDP_PASS, &tagged));
    p.dp().release(&vip()).unwrap();
    assert_eq!(
        p.run(&vlan_tagged(&ip_to(VIP_IP, 64), 100)).action,
        XDP_PASS
    );
    assert_eq!(p.counters(&vip()), VipCounters::default());
}

#[test]
#[ignore = "needs root"]
fn gratuitous_arp_passes_and_reports_conflicts_from_other_macs() {
    let mut p = owned();
    let mut conflicts = p.dp().take_conflicts().expect("conflict reader");
    assert!(p.dp().take_conflicts().is_none(), "only one reader");

    // Our own announcements (request and reply form): pass, no conflict.
    for f in [
        ArpFrame::gratuitous_request(VIP_MAC, VIP_IP),
        ArpFrame::gratuitous_reply(VIP_MAC, VIP_IP),
    ] {
        let f = f.encode_unpadded().to_vec();
        let r = p.run(&f);
        assert_eq!((r.action, &r.frame), (XDP_PASS, &f));
    }
    assert_eq!(conflicts.try_next(), None);

    // Someone else announces our VIP: pass and report.
    let f = ArpFrame::gratuitous_request(OTHER_MAC, VIP_IP)
        .encode_unpadded()
        .to_vec();
    assert_eq!(p.run(&f).action, XDP_PASS);
    let e = conflicts.try_next().expect("conflict event");
    assert_eq!(e.key, vip().key());
    assert_eq!(e.sender_mac, OTHER_MAC);
    assert_eq!(p.actions().conflict, 1);

    // Gratuitous ARP for a releasing VIP is not dropped.
    p.dp().release(&vip()).unwrap();
    let f = ArpFrame::gratuitous_request(VIP_MAC, VIP_IP)
        .encode_unpadded()
        .to_vec();
    assert_eq!(p.run(&f).action, XDP_PASS);
    // ... and no conflict is reported for a VIP we do not own.
    let f = ArpFrame::gratuitous_request(OTHER_MAC, VIP_IP)
        .encode_unpadded()
        .to_vec();
    assert_eq!(p.run(&f).action, XDP_PASS);
    assert_eq!(conflicts.try_next(), None);
}

#[test]
#[ignore = "needs root"]
fn arp_replies_pass_and_report_conflicts() {
    let mut p = owned();
    let mut conflicts = p.dp().take_conflicts().expect("conflict reader");
    // A reply from another host about its own address: nothing to report.
    let benign = ArpFrame {
        eth_dst: VIP_MAC,
        eth_src: PEER_MAC,
        op: ArpOp::Reply,
        sha: PEER_MAC,
        spa: PEER_IP,
        tha: VIP_MAC,
        tpa: VIP_IP,
    }
    .encode_unpadded()
    .to_vec();
    let r = p.run(&benign);
    assert_eq!((r.action, &r.frame), (XDP_PASS, &benign));
    assert_eq!(conflicts.try_next(), None);

    // Another MAC answering for our VIP.
    let hostile = ArpFrame {
        eth_dst: PEER_MAC,
        eth_src: OTHER_MAC,
        op: ArpOp::Reply,
        sha: OTHER_MAC,
        spa: VIP_IP,
        tha: PEER_MAC,
        tpa: PEER_IP,
    }
    .encode_unpadded()
    .to_vec();
    let r = p.run(&hostile);
    assert_eq!((r.action, &r.frame), (XDP_PASS, &hostile));
    let e = conflicts.try_next().expect("conflict event");
    assert_eq!((e.key, e.sender_mac), (vip().key(), OTHER_MAC));

    // A request from another MAC claiming our VIP as sender: reported, and
    // (asking for another address) passed.
    let claim = ArpFrame::request(OTHER_MAC, VIP_IP, PEER_IP)
        .encode_unpadded()
        .to_vec();
    assert_eq!(p.run(&claim).action, XDP_PASS);
    assert_eq!(conflicts.drain().len(), 1);
    let a = p.actions();
    assert_eq!((a.conflict, a.pass, a.arp_reply), (2, 3, 0));

    // Fenced: we do not own anything, so nothing is reported.
    p.dp().set_lease_deadline(1).unwrap();
    assert_eq!(p.run(&hostile).action, XDP_PASS);
    assert_eq!(conflicts.try_next(), None);
}

#[test]
#[ignore = "needs root"]
fn counters_per_vip_and_global() {
    let mut p = owned();
    let b_ip = Ipv4Addr::new(192, 0, 2, 12);
    let b = Vip::new("lo", LO, b_ip);
    p.dp().own_as(&b, OTHER_MAC).unwrap();
    for _ in 0..3 {
        assert_eq!(p.run(&request()).action, XDP_TX);
    }
    let to_b = ArpFrame::request(PEER_MAC, PEER_IP, b_ip)
        .encode_unpadded()
        .to_vec();
    let r = p.run(&to_b);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(
        &r.frame[6..12],
        &OTHER_MAC,
        "each VIP answers with its own MAC"
    );
    assert_eq!(p.run(&ip_to(b_ip, 200)).action, XDP_PASS);
    p.dp().release(&b).unwrap();
    assert_eq!(p.run(&ip_to(b_ip, 200)).action, XDP_DROP);
    assert_eq!(
        p.run(&frames::ipv4_udp(
            PEER_MAC, BROADCAST, PEER_IP, UNKNOWN_IP, 60
        ))
        .action,
        XDP_PASS
    );

    assert_eq!(
        p.counters(&vip()),
        VipCounters {
            packets: 0,
            bytes: 0,
            arp_replies: 3,
            drops: 0
        }
    );
    assert_eq!(
        p.counters(&b),
        VipCounters {
            packets: 1,
            bytes: 200,
            arp_replies: 1,
            drops: 1
        }
    );
    assert_eq!(
        p.actions(),
        ActionCounters {
            pass: 2,
            arp_reply: 4,
            drop_releasing: 1,
            drop_fenced: 0,
            conflict: 0,
            na_reply: 0,
            drop_yielding: 0,
        }
    );
    // Forget drops the entry and its counters: traffic is the kernel's again.
    p.dp().forget(&b).unwrap();
    assert_eq!(p.counters(&b), VipCounters::default());
    assert_eq!(p.run(&ip_to(b_ip, 200)).action, XDP_PASS);
    assert_eq!(p.run(&to_b).action, XDP_PASS);
    assert_eq!(p.counters(&b), VipCounters::default());
    assert_eq!(p.dp().entries().unwrap().len(), 1);
}

#[test]
#[ignore = "needs root"]
fn pinned_state_is_reused_by_a_second_open_and_removed_on_shutdown() {
    let instance = format!("testrun-reopen-{}", std::process::id());
    let opts = DataPlaneOptions::new(&instance);
    let dir = opts.pin_dir();
    {
        let mut first = DataPlane::open(&opts).unwrap();
        first.own_as(&vip(), VIP_MAC).unwrap();
        first.set_lease_deadline(12345).unwrap();
        let r = test_run(
            first.program().unwrap(),
            &ip_to(VIP_IP, 64),
            RunContext::default(),
        );
        assert_eq!(r.unwrap().action, XDP_DROP, "fenced (deadline in the past)");
        // Dropped without shutdown, as if the agent died.
    }
    assert!(dir.join("WACK_VIPS").exists());
    let mut second = DataPlane::open(&opts).unwrap();
    let entries = second.entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].vip.key(), vip().key());
    assert_eq!(entries[0].state, VipState::Owned);
    assert_eq!(second.lease_deadline().unwrap(), 12345);
    assert_eq!(second.counters(&vip()).unwrap().drops, 1);
    // Clean leftovers, then shut down: nothing stays pinned.
    for e in entries {
        second.forget(&e.vip).unwrap();
    }
    assert!(second.entries().unwrap().is_empty());
    second.shutdown().unwrap();
    assert!(!dir.exists());
}

#[test]
#[ignore = "needs root"]
fn errors_name_the_interface() {
    let mut p = Plane::new();
    let v = Vip::new("nosuchif7", 999, VIP_IP);
    let err = p.dp().own(&v).unwrap_err().to_string();
    assert!(err.contains("nosuchif7"), "{err}");
}

#[tokio::test]
#[ignore = "needs root"]
async fn conflicts_arrive_through_the_async_reader() {
    let mut p = owned();
    let mut reader = p
        .dp()
        .take_conflicts()
        .expect("conflict reader")
        .into_async()
        .expect("register with tokio");
    let hostile = ArpFrame::gratuitous_reply(OTHER_MAC, VIP_IP)
        .encode_unpadded()
        .to_vec();
    assert_eq!(p.run(&hostile).action, XDP_PASS);
    assert_eq!(p.run(&hostile).action, XDP_PASS);
    let batch = tokio::time::timeout(Duration::from_secs(5), reader.next_batch())
        .await
        .expect("no conflict event within 5 s")
        .expect("read ring buffer");
    assert_eq!(batch.len(), 2);
    assert!(batch
        .iter()
        .all(|e| e.key == vip().key() && e.sender_mac == OTHER_MAC));
}

#[test]
#[ignore = "needs root"]
fn the_daemon_can_drive_it_through_the_vip_table_trait() {
    use wackamole::dataplane::VipTable;
    fn fail_over(t: &mut dyn VipTable, gone: &Vip) -> wackamole::dataplane::Result<()> {
        t.renew_lease(Some(Duration::from_secs(10)))?;
        t.release(gone)?;
        t.forget(gone)
    }
    let mut p = owned();
    fail_over(p.dp(), &vip()).unwrap();
    assert!(p.dp().entries().unwrap().is_empty());
    assert_eq!(p.run(&request()).action, XDP_PASS);
}

#[test]
#[ignore = "needs root"]
fn xdp_debug_logging_can_be_enabled() {
    let mut opts = DataPlaneOptions::new(format!("testrun-log-{}", std::process::id()));
    opts.ebpf_debug_log = true;
    let mut dp = DataPlane::open(&opts).expect("open with XDP debug log");
    dp.own_as(&vip(), VIP_MAC).unwrap();
    let hostile = ArpFrame::gratuitous_reply(OTHER_MAC, VIP_IP)
        .encode_unpadded()
        .to_vec();
    let r = test_run(dp.program().unwrap(), &hostile, RunContext::default()).unwrap();
    assert_eq!(r.action, XDP_PASS);
    dp.flush_ebpf_log();
    assert_eq!(dp.action_counters().unwrap().conflict, 1);
    dp.shutdown().unwrap();
}

#[test]
#[ignore = "needs root"]
fn pins_of_another_layout_are_replaced() {
    use aya::maps::Array;
    let opts = DataPlaneOptions::new(format!("testrun-abi-{}", std::process::id()));
    let dir = opts.pin_dir();
    {
        let mut old = DataPlane::open(&opts).unwrap();
        old.own_as(&vip(), VIP_MAC).unwrap();
    }
    // An older agent's lease map with a 4-byte value.
    std::fs::remove_file(dir.join("WACK_LEASE")).unwrap();
    let foreign: Array<_, u32> = Array::create(1, 0).unwrap();
    foreign.pin(dir.join("WACK_LEASE")).unwrap();

    let mut dp = DataPlane::open(&opts).expect("reopen over foreign pins");
    assert!(dp.entries().unwrap().is_empty(), "old maps were kept");
    dp.renew_lease(Some(Duration::from_secs(5))).unwrap();
    assert!(dp.lease_deadline().unwrap() > 0);
    dp.shutdown().unwrap();
    assert!(!dir.exists());
}

#[test]
#[ignore = "needs root"]
fn mounts_a_bpf_filesystem_where_none_is_and_refuses_it_unless_allowed() {
    // In a private mount namespace (this thread only), so nothing outlives the test.
    let handle = std::thread::spawn(|| {
        // SAFETY: plain syscalls; CLONE_FS detaches this thread's fs info first.
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS), 0);
            let root = c"/";
            assert_eq!(
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null()
                ),
                0
            );
        }
        let base = std::env::temp_dir().join(format!("wk-bpffs-{}", std::process::id()));
        let mut opts = DataPlaneOptions::new("mount-test");
        opts.bpffs = base.clone();
        // A bpffs mounted in a private namespace dies with it: refused...
        let err = DataPlane::open(&opts)
            .expect_err("a private bpffs was accepted")
            .to_string();
        assert!(
            err.contains("private to the agent's mount namespace")
                && err.contains("xdp.allow_private_bpffs = true")
                && err.contains("nsenter"),
            "{err}"
        );
        assert!(
            !opts.pin_dir().exists(),
            "refused, yet pinned: {}",
            opts.pin_dir().display()
        );
        // ... unless accepted explicitly.
        opts.allow_private_bpffs = true;
        let dp = DataPlane::open(&opts).expect("open on an unmounted directory");
        let mounts = std::fs::read_to_string("/proc/thread-self/mounts").unwrap();
        let mounted = mounts
            .lines()
            .any(|l| l.split_whitespace().nth(1) == base.to_str() && l.contains(" bpf "));
        dp.shutdown().unwrap();
        let base_c = std::ffi::CString::new(base.to_str().unwrap()).unwrap();
        // SAFETY: unmounting what the data plane mounted in this namespace.
        unsafe { libc::umount(base_c.as_ptr()) };
        let _ = std::fs::remove_dir(&base);
        mounted
    });
    assert!(handle.join().expect("mount thread"), "no bpf mount found");
}

// ---------------------------------------------------------------------------
// IPv6: neighbour discovery answered from XDP (issue 13).

const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);
const UNKNOWN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);

fn vip6() -> Vip {
    Vip::new("lo", LO, VIP6)
}

fn owned6() -> Plane {
    let mut p = Plane::new();
    p.dp().own_as(&vip6(), VIP_MAC).expect("own");
    p
}

fn ns() -> NdFrame {
    NdFrame::solicitation(PEER_MAC, PEER6, VIP6)
}

fn ip6_to(dst: Ipv6Addr, len: usize) -> Vec<u8> {
    ipv6_udp(PEER_MAC, VIP_MAC, PEER6, dst, len)
}

/// One's complement sum over the pseudo-header and the ICMPv6 message of an
/// IPv6 frame (0xffff when the checksum is right), computed here on its own.
fn icmp6_sum(frame: &[u8]) -> u16 {
    let plen = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    let mut sum: u32 = 0;
    for w in frame[22..54].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    sum += plen as u32 + 58;
    for w in frame[54..54 + plen].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[test]
#[ignore = "needs root"]
fn ns_for_owned_vip_becomes_a_solicited_na_byte_by_byte() {
    let mut p = owned6();
    let r = p.run(&ns().to_frame());
    assert_eq!(r.action, XDP_TX);
    #[rustfmt::skip]
    let want: [u8; 86] = [
        0x02, 0xbb, 0, 0, 0, 0x02,          // eth dst = the solicitor (its SLLA)
        0x02, 0xaa, 0, 0, 0, 0x01,          // eth src = VIP MAC
        0x86, 0xdd,                         // IPv6
        0x60, 0, 0, 0,                      // version 6, no class or flow
        0, 32,                              // payload: NA + one option
        58, 255,                            // ICMPv6, hop limit 255
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // src = VIP
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, // dst = solicitor
        136, 0,                             // NA, code 0
        0x89, 0x8d,                         // checksum (computed apart)
        0x60, 0, 0, 0,                      // Solicited + Override
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // target
        2, 1, 0x02, 0xaa, 0, 0, 0, 0x01,    // target link-layer address
    ];
    assert_eq!(r.frame, want);
    assert_eq!(icmp6_sum(&r.frame), 0xffff, "checksum verifies");
    assert_eq!(
        r.frame,
        NdFrame::solicited_advert(VIP_MAC, VIP6, PEER_MAC, PEER6, false).to_frame()
    );
    assert_eq!(p.counters(&vip6()).arp_replies, 1);
    let a = p.actions();
    assert_eq!((a.na_reply, a.arp_reply, a.pass), (1, 0, 0));
}

#[test]
#[ignore = "needs root"]
fn na_sizes_and_destinations_follow_the_solicitation() {
    let mut p = owned6();
    let want = NdFrame::solicited_advert(VIP_MAC, VIP6, PEER_MAC, PEER6, false).to_frame();

    // Unicast NUD probe without options (78 bytes): grown to 86, sent to the
    // Ethernet source.
    let mut nud = ns();
    nud.dst = VIP6;
    nud.eth_dst = VIP_MAC;
    nud.options.clear();
    let r = p.run(&nud.to_frame());
    assert_eq!((r.action, r.frame.len()), (XDP_TX, 86));
    assert_eq!(r.frame, want);

    // SLLA and a nonce (94 bytes): shrunk to 86.
    let mut long = ns();
    long.options.extend_from_slice(&[14, 1, 9, 9, 9, 9, 9, 9]);
    let r = p.run(&long.to_frame());
    assert_eq!(r.frame, want);

    // Ethernet trailer after the IPv6 payload: dropped from the reply.
    let mut trailer = ns().to_frame();
    trailer.extend_from_slice(&[0xee; 10]);
    assert_eq!(p.run(&trailer).frame, want);

    // The SLLA wins over the Ethernet source as destination.
    let mut relayed = ns();
    relayed.eth_src = OTHER_MAC;
    let r = p.run(&relayed.to_frame());
    assert_eq!(&r.frame[0..6], &PEER_MAC);

    // Router flag per VIP.
    p.dp()
        .own_with(
            &vip6(),
            OwnOptions {
                mac: Some(VIP_MAC),
                nd_router: true,
            },
        )
        .unwrap();
    let r = p.run(&ns().to_frame());
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.frame[58], 0xe0, "Router + Solicited + Override");
    assert_eq!(&r.frame[56..58], &[0x09, 0x8d], "checksum (computed apart)");
    assert_eq!(icmp6_sum(&r.frame), 0xffff);
    let e = p.dp().entries().unwrap();
    assert_eq!((e.len(), e[0].nd_router), (1, true));
    // Release and re-own keep and reset the flag as asked.
    p.dp().release(&vip6()).unwrap();
    assert!(p.dp().entries().unwrap()[0].nd_router);
    p.dp().own_as(&vip6(), VIP_MAC).unwrap();
    assert_eq!(p.run(&ns().to_frame()).frame[58], 0x60);
    assert_eq!(p.counters(&vip6()).arp_replies, 6);
    assert_eq!(p.actions().na_reply, 6);
}

#[test]
#[ignore = "needs root"]
fn dad_probe_for_owned_vip_is_defended_to_all_nodes() {
    let mut p = owned6();
    let r = p.run(&NdFrame::dad_probe(PEER_MAC, VIP6).to_frame());
    assert_eq!(r.action, XDP_TX);
    let want = NdFrame::unsolicited_advert(VIP_MAC, VIP6, false).to_frame();
    assert_eq!(r.frame, want);
    assert_eq!(&r.frame[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(r.frame[58], 0x20, "Override only, Solicited clear");
    assert_eq!(&r.frame[56..58], &[0xf8, 0x62], "checksum (computed apart)");
    assert_eq!(icmp6_sum(&r.frame), 0xffff);

    // Malformed DAD probes go to the kernel: with a source link-layer
    // address, or not sent to the target's solicited-node group.
    let mut with_slla = NdFrame::dad_probe(PEER_MAC, VIP6);
    with_slla.options = vec![1, 1, 2, 0xbb, 0, 0, 0, 2];
    let mut wrong_group = NdFrame::dad_probe(PEER_MAC, VIP6);
    wrong_group.dst = "ff02::1:ff00:11".parse().unwrap();
    for f in [with_slla.to_frame(), wrong_group.to_frame()] {
        let r = p.run(&f);
        assert_eq!((r.action, &r.frame), (XDP_PASS, &f));
    }
}

/// Rewrites the IPv6 payload length of an ND frame.
fn with_plen(mut f: Vec<u8>, plen: u16) -> Vec<u8> {
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    f
}

#[test]
#[ignore = "needs root"]
fn invalid_solicitations_pass_untouched() {
    let mut p = owned6();
    let multicast_target: Ipv6Addr = "ff0e::10".parse().unwrap();
    p.dp()
        .own_as(&Vip::new("lo", LO, multicast_target), VIP_MAC)
        .unwrap();
    let good = ns().to_frame();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut f = good.clone();
    f[21] = 254;
    cases.push(("hop limit 254", f));
    let mut f = good.clone();
    f[55] = 1;
    cases.push(("code 1", f));
    cases.push((
        "multicast target",
        NdFrame::solicitation(PEER_MAC, PEER6, multicast_target).to_frame(),
    ));
    let mut f = ns();
    f.options = vec![1, 0, 0, 0, 0, 0, 0, 0];
    cases.push(("option of length 0", f.to_frame()));
    let mut f = ns();
    f.options = vec![1, 2, 2, 0xbb, 0, 0, 0, 2];
    cases.push(("option longer than the payload", f.to_frame()));
    cases.push(("payload shorter than an NS", with_plen(good.clone(), 20)));
    cases.push(("payload longer than the frame", with_plen(good.clone(), 40)));
    let mut f = ns();
    f.options = vec![0; 8 * 9];
    for o in f.options.chunks_mut(8) {
        o[0] = 14;
        o[1] = 1;
    }
    cases.push(("nine options", f.to_frame()));
    let mut f = ns();
    f.options = vec![0; 8 * 163];
    f.options[0] = 14;
    f.options[1] = 163;
    cases.push(("payload over 1280 bytes", f.to_frame()));
    // Hop-by-hop header in front of the ICMPv6 message.
    let mut f = good.clone();
    f[20] = 0;
    f.splice(54..54, [58, 0, 1, 4, 0, 0, 0, 0]);
    cases.push(("behind a hop-by-hop header", with_plen(f, 40)));
    // First fragment of a fragmented NS.
    let mut f = good.clone();
    f[20] = 44;
    f.splice(54..54, [58, 0, 0, 1, 0, 0, 0, 7]);
    cases.push(("in a fragment", with_plen(f, 40)));
    cases.push(("VLAN tagged", vlan_tagged(&good, 7)));
    let mut f = good.clone();
    f[14] = 0x40;
    cases.push(("IP version 4 nibble", f));
    let mut f = ns();
    f.icmp_type = 128;
    cases.push(("echo request to the group", f.to_frame()));
    for (name, frame) in &cases {
        let r = p.run(frame);
        assert_eq!(r.action, XDP_PASS, "{name}");
        assert_eq!(&r.frame, frame, "{name}: frame changed");
    }
    assert_eq!(p.counters(&vip6()), VipCounters::default());
    let a = p.actions();
    assert_eq!((a.pass, a.na_reply), (cases.len() as u64, 0));
}

/// Solicitations longer than the program walks (over 1280 bytes, more
/// than eight options) are valid and the kernel answers them: for an owned
/// VIP it may, for a silent one they are dropped. One with a multicast
/// source is left to the kernel (which drops it), never answered to a group.
#[test]
#[ignore = "needs root"]
fn long_solicitations_are_dropped_for_a_silent_vip() {
    let mut nine = ns();
    nine.options = vec![0; 8 * 9];
    for o in nine.options.chunks_mut(8) {
        o[0] = 14;
        o[1] = 1;
    }
    let mut long = ns();
    long.options = vec![0; 8 * 163];
    long.options[0] = 14;
    long.options[1] = 163;
    let mut hops = ns().to_frame();
    hops[21] = 254;
    let mut p = owned6();
    let from_group = NdFrame::solicitation(PEER_MAC, "ff02::1".parse().unwrap(), VIP6).to_frame();
    let r = p.run(&from_group);
    assert_eq!(
        (r.action, &r.frame),
        (XDP_PASS, &from_group),
        "multicast source"
    );
    for f in [nine.to_frame(), long.to_frame()] {
        assert_eq!(p.run(&f).action, XDP_PASS, "owned");
    }
    p.dp().release(&vip6()).unwrap();
    assert_eq!(p.run(&nine.to_frame()).action, XDP_DROP, "nine options");
    assert_eq!(p.run(&long.to_frame()).action, XDP_DROP, "over 1280 bytes");
    assert_eq!(
        p.run(&hops).action,
        XDP_PASS,
        "invalid: the kernel drops it"
    );
    let a = p.actions();
    assert_eq!((a.drop_releasing, a.na_reply), (2, 0));
}

#[test]
#[ignore = "needs root"]
fn truncated_solicitations_pass_at_every_length() {
    for release in [false, true] {
        let mut p = owned6();
        if release {
            p.dp().release(&vip6()).unwrap();
        }
        for full in [
            ns().to_frame(),
            NdFrame::dad_probe(PEER_MAC, VIP6).to_frame(),
        ] {
            // BPF_PROG_TEST_RUN refuses frames under 14 bytes.
            for len in 14..full.len() {
                let f = &full[..len];
                let r = p.run(f);
                assert_eq!(r.action, XDP_PASS, "release {release}, {len} bytes");
                assert_eq!(r.frame, f, "release {release}, {len} bytes changed");
            }
        }
        assert_eq!(p.counters(&vip6()), VipCounters::default());
    }
}

#[test]
#[ignore = "needs root"]
fn releasing_and_fenced_drop_ns_and_ipv6_traffic() {
    let mut p = owned6();
    let fragment = {
        let mut f = ip6_to(VIP6, 100);
        f[20] = 44;
        f
    };
    p.dp().release(&vip6()).unwrap();
    assert_eq!(p.run(&ns().to_frame()).action, XDP_DROP);
    assert_eq!(
        p.run(&NdFrame::dad_probe(PEER_MAC, VIP6).to_frame()).action,
        XDP_DROP
    );
    assert_eq!(p.run(&ip6_to(VIP6, 100)).action, XDP_DROP);
    assert_eq!(p.run(&fragment).action, XDP_DROP, "any traffic to it");
    let c = p.counters(&vip6());
    assert_eq!((c.drops, c.packets, c.arp_replies), (4, 0, 0));
    assert_eq!(p.actions().drop_releasing, 4);
    assert_eq!(p.dp().entries().unwrap()[0].state, VipState::Releasing);

    p.dp().own_as(&vip6(), VIP_MAC).unwrap();
    p.dp().set_lease_deadline(1).unwrap();
    assert_eq!(p.run(&ns().to_frame()).action, XDP_DROP);
    assert_eq!(p.run(&ip6_to(VIP6, 100)).action, XDP_DROP);
    let a = p.actions();
    assert_eq!((a.drop_fenced, a.na_reply), (2, 0));
    // Unknown targets are the kernel's, fenced or not.
    let other = NdFrame::solicitation(PEER_MAC, PEER6, UNKNOWN6).to_frame();
    assert_eq!(p.run(&other).action, XDP_PASS);
}

#[test]
#[ignore = "needs root"]
fn ipv6_traffic_to_owned_vip_passes_and_is_counted() {
    let mut p = owned6();
    for len in [62usize, 100, 1500] {
        assert_eq!(p.run(&ip6_to(VIP6, len)).action, XDP_PASS);
    }
    let mut fragment = ip6_to(VIP6, 100);
    fragment[20] = 44;
    assert_eq!(p.run(&fragment).action, XDP_PASS);
    let c = p.counters(&vip6());
    assert_eq!((c.packets, c.bytes, c.drops), (4, 1762, 0));
    // Other destinations: unknown, multicast, an IPv4 VIP's bytes.
    assert_eq!(p.run(&ip6_to(UNKNOWN6, 80)).action, XDP_PASS);
    assert_eq!(
        p.run(&ip6_to("ff02::1".parse().unwrap(), 80)).action,
        XDP_PASS
    );
    let mut short = ip6_to(VIP6, 80);
    short.truncate(53);
    assert_eq!(p.run(&short).action, XDP_PASS);
    assert_eq!(p.counters(&vip6()).packets, 4);
    // The same address bytes as an IPv4 key do not match.
    p.dp().release(&vip6()).unwrap();
    assert_eq!(
        p.run(&ip_to(Ipv4Addr::new(0x20, 1, 0x0d, 0xb8), 64)).action,
        XDP_PASS
    );
}

#[test]
#[ignore = "needs root"]
fn advertisements_from_other_macs_report_conflicts() {
    let mut p = owned6();
    let mut conflicts = p.dp().take_conflicts().expect("conflict reader");
    // Our own announcement: passed, nothing to report.
    let ours = NdFrame::unsolicited_advert(VIP_MAC, VIP6, false).to_frame();
    let r = p.run(&ours);
    assert_eq!((r.action, &r.frame), (XDP_PASS, &ours));
    assert_eq!(conflicts.try_next(), None);

    // Another MAC claims our VIP (its TLLA tells which).
    let mut theirs = NdFrame::unsolicited_advert(OTHER_MAC, VIP6, false);
    theirs.eth_src = PEER_MAC;
    let r = p.run(&theirs.to_frame());
    assert_eq!(r.action, XDP_PASS);
    let e = conflicts.try_next().expect("conflict event");
    assert_eq!((e.key, e.sender_mac), (vip6().key(), OTHER_MAC));

    // Without a TLLA the Ethernet source is the claimant.
    let mut bare = NdFrame::solicited_advert(OTHER_MAC, VIP6, PEER_MAC, PEER6, false);
    bare.options.clear();
    assert_eq!(p.run(&bare.to_frame()).action, XDP_PASS);
    let e = conflicts.try_next().expect("conflict event");
    assert_eq!(e.sender_mac, OTHER_MAC);
    assert_eq!(p.actions().conflict, 2);

    // Not reported: hop limit below 255, an address we do not own, a VIP
    // that is releasing or yielding, and anything while fenced.
    let mut hops = theirs.clone();
    hops.hop_limit = 64;
    assert_eq!(p.run(&hops.to_frame()).action, XDP_PASS);
    let other = NdFrame::unsolicited_advert(OTHER_MAC, UNKNOWN6, false).to_frame();
    assert_eq!(p.run(&other).action, XDP_PASS);
    p.dp().yield_vip(&vip6()).unwrap();
    assert_eq!(p.run(&theirs.to_frame()).action, XDP_PASS);
    p.dp().release(&vip6()).unwrap();
    assert_eq!(p.run(&theirs.to_frame()).action, XDP_PASS);
    p.dp().own_as(&vip6(), VIP_MAC).unwrap();
    p.dp().set_lease_deadline(1).unwrap();
    assert_eq!(p.run(&theirs.to_frame()).action, XDP_PASS);
    assert_eq!(conflicts.try_next(), None);
    assert_eq!(p.actions().conflict, 2);
}

#[test]
#[ignore = "needs root"]
fn both_families_side_by_side() {
    let mut p = owned6();
    p.dp().own_as(&vip(), VIP_MAC).unwrap();
    assert_eq!(p.run(&request()).action, XDP_TX);
    assert_eq!(p.run(&ns().to_frame()).action, XDP_TX);
    let e = p.dp().entries().unwrap();
    let addrs: Vec<String> = e.iter().map(|r| r.vip.addr.to_string()).collect();
    assert_eq!(addrs, ["192.0.2.10", "2001:db8::10"]);
    let a = p.actions();
    assert_eq!((a.arp_reply, a.na_reply), (1, 1));
    p.dp().forget(&vip6()).unwrap();
    assert_eq!(p.run(&ns().to_frame()).action, XDP_PASS);
    assert_eq!(p.run(&request()).action, XDP_TX);
}

// ---------------------------------------------------------------------------
// Yielding: make-before-break hand-over (issue 10).

#[test]
#[ignore = "needs root"]
fn yielding_drops_requests_and_accepts_traffic() {
    let mut p = owned();
    p.dp().own_as(&vip6(), VIP_MAC).unwrap();
    let mut conflicts = p.dp().take_conflicts().expect("conflict reader");
    p.dp().yield_vip(&vip()).unwrap();
    p.dp().yield_vip(&vip6()).unwrap();
    let states: Vec<VipState> = p.dp().entries().unwrap().iter().map(|e| e.state).collect();
    assert_eq!(states, [VipState::Yielding, VipState::Yielding]);

    // Requests: neither answered nor passed (the kernel would answer).
    assert_eq!(p.run(&request()).action, XDP_DROP);
    assert_eq!(p.run(&ns().to_frame()).action, XDP_DROP);
    assert_eq!(
        p.run(&NdFrame::dad_probe(PEER_MAC, VIP6).to_frame()).action,
        XDP_DROP
    );
    // Traffic: accepted and counted.
    assert_eq!(p.run(&ip_to(VIP_IP, 100)).action, XDP_PASS);
    assert_eq!(p.run(&ip6_to(VIP6, 100)).action, XDP_PASS);
    let (c4, c6) = (p.counters(&vip()), p.counters(&vip6()));
    assert_eq!(
        (c4.drops, c4.packets, c4.bytes, c4.arp_replies),
        (1, 1, 100, 0)
    );
    assert_eq!(
        (c6.drops, c6.packets, c6.bytes, c6.arp_replies),
        (2, 1, 100, 0)
    );
    let a = p.actions();
    assert_eq!(
        (
            a.drop_yielding,
            a.drop_releasing,
            a.arp_reply,
            a.na_reply,
            a.pass
        ),
        (3, 0, 0, 0, 2)
    );

    // The new owner's announcements are expected, not conflicts; they pass.
    let garp = ArpFrame::gratuitous_request(OTHER_MAC, VIP_IP)
        .encode_unpadded()
        .to_vec();
    assert_eq!(p.run(&garp).action, XDP_PASS);
    let na = NdFrame::unsolicited_advert(OTHER_MAC, VIP6, false).to_frame();
    assert_eq!(p.run(&na).action, XDP_PASS);
    assert_eq!(conflicts.try_next(), None);

    // Fenced while yielding: traffic dropped too.
    p.dp().set_lease_deadline(1).unwrap();
    assert_eq!(p.run(&ip_to(VIP_IP, 100)).action, XDP_DROP);
    assert_eq!(p.actions().drop_fenced, 1);
    p.dp().set_lease_deadline(0).unwrap();

    // Roll back (the hand-over failed): owned and answering again.
    p.dp().own_as(&vip(), VIP_MAC).unwrap();
    assert_eq!(p.run(&request()).action, XDP_TX);
    // Or complete it: release, then forget.
    p.dp().release(&vip6()).unwrap();
    assert_eq!(p.run(&ip6_to(VIP6, 100)).action, XDP_DROP);
}

#[test]
#[ignore = "needs root"]
fn yield_keeps_mac_and_router_flag_and_works_through_the_trait() {
    use wackamole::dataplane::VipTable;
    let mut p = Plane::new();
    p.dp()
        .own_with(
            &vip6(),
            OwnOptions {
                mac: Some(OTHER_MAC),
                nd_router: true,
            },
        )
        .unwrap();
    fn hand_over(t: &mut dyn VipTable, v: &Vip) -> wackamole::dataplane::Result<()> {
        t.yield_vip(v)
    }
    hand_over(p.dp(), &vip6()).unwrap();
    let e = p.dp().entries().unwrap();
    assert_eq!(
        (e[0].state, e[0].mac, e[0].nd_router),
        (VipState::Yielding, OTHER_MAC, true)
    );
    // Yielding an unknown VIP creates a yielding entry (requests dropped).
    let fresh = Vip::new("lo", LO, UNKNOWN_IP);
    p.dp().yield_vip(&fresh).unwrap();
    assert_eq!(
        p.run(&ArpFrame::request(PEER_MAC, PEER_IP, UNKNOWN_IP).encode_unpadded())
            .action,
        XDP_DROP
    );
}

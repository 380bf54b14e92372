//! ARP announcements between two namespaces: the receiver's neighbour table
//! and the frames on the wire.

use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use wackamole::net::arp::{ArpFrame, ArpOp, ArpSender, Burst, GarpForm, BROADCAST, ETH_P_ARP};
use wackamole::net::{neigh, Ipv4Prefix, Ungated};
use wackamole::testbed::{veth_pair, Netns};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const OLD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// A (sender, 192.0.2.1 on va) and B (receiver, 192.0.2.2 on vb).
fn pair(tag: &str) -> Result<(Netns, Netns)> {
    let a = Netns::new(&format!("{tag}a"))?;
    let b = Netns::new(&format!("{tag}b"))?;
    veth_pair(&a, "va", &b, "vb")?;
    a.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])?;
    b.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"])?;
    // Let a reply override a fresh entry at once (default lock time is 1 s).
    b.run(&["sysctl", "-q", "-w", "net.ipv4.neigh.vb.locktime=0"])?;
    Ok((a, b))
}

/// Runs `f` with an ArpSender on `iface` inside `ns`, on a runtime there.
fn with_sender<T: Send + 'static>(
    ns: &Netns,
    iface: &'static str,
    f: impl AsyncFnOnce(&ArpSender) -> anyhow::Result<T> + Send + 'static,
) -> Result<T> {
    ns.in_thread(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let sender = ArpSender::open(iface)?;
        rt.block_on(f(&sender))
    })?
}

/// B's neighbour entry for `ip`, polled until it has `want` or 3 s pass.
fn wait_neigh(b: &Netns, ip: Ipv4Addr, want: [u8; 6]) -> Result<Option<[u8; 6]>> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let table = b.in_thread(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok::<_, anyhow::Error>(rt.block_on(neigh::list("vb"))?)
        })??;
        let got = table.iter().find(|(i, _)| *i == ip).map(|(_, m)| *m);
        if got == Some(want) || Instant::now() > deadline {
            return Ok(got);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root"]
fn gratuitous_request_and_reply_create_entries_with_arp_accept() -> Result<()> {
    let (a, b) = pair("garp")?;
    b.run(&["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_accept=1"])?;
    b.run(&["sysctl", "-q", "-w", "net.ipv4.conf.vb.arp_accept=1"])?;
    let vip2 = Ipv4Addr::new(192, 0, 2, 101);
    let a_mac = a.mac("va")?;
    let one = |form| Burst {
        count: 1,
        spacing: Duration::ZERO,
        form,
    };
    let sent = with_sender(&a, "va", async move |s| {
        let mut n = s.garp_burst(&[VIP], one(GarpForm::Request)).await?;
        n += s.garp_burst(&[vip2], one(GarpForm::Reply)).await?;
        Ok(n)
    })?;
    assert_eq!(sent, 2);
    assert_eq!(wait_neigh(&b, VIP, a_mac)?, Some(a_mac), "request form");
    assert_eq!(wait_neigh(&b, vip2, a_mac)?, Some(a_mac), "reply form");
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn gratuitous_arp_updates_a_stale_entry_without_arp_accept() -> Result<()> {
    let (a, b) = pair("garpu")?;
    b.run(&["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_accept=0"])?;
    b.run(&["sysctl", "-q", "-w", "net.ipv4.conf.vb.arp_accept=0"])?;
    b.run(&[
        "ip",
        "neigh",
        "replace",
        "192.0.2.100",
        "lladdr",
        "02:00:00:00:00:01",
        "dev",
        "vb",
        "nud",
        "stale",
    ])?;
    let a_mac = a.mac("va")?;
    assert_eq!(wait_neigh(&b, VIP, OLD_MAC)?, Some(OLD_MAC));
    with_sender(&a, "va", async |s| {
        Ok(s.garp_burst(
            &[VIP],
            Burst {
                count: 1,
                spacing: Duration::ZERO,
                form: GarpForm::Request,
            },
        )
        .await?)
    })?;
    assert_eq!(wait_neigh(&b, VIP, a_mac)?, Some(a_mac));
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn unicast_reply_moves_a_cached_vip_to_the_new_owner() -> Result<()> {
    let (a, b) = pair("fail")?;
    // Gratuitous ARP is not accepted for new entries; B had the old owner cached.
    b.run(&["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_accept=0"])?;
    b.run(&["sysctl", "-q", "-w", "net.ipv4.conf.vb.arp_accept=0"])?;
    b.run(&[
        "ip",
        "neigh",
        "replace",
        "192.0.2.100",
        "lladdr",
        "02:00:00:00:00:01",
        "dev",
        "vb",
        "nud",
        "reachable",
    ])?;
    assert_eq!(wait_neigh(&b, VIP, OLD_MAC)?, Some(OLD_MAC));
    let (a_mac, b_mac) = (a.mac("va")?, b.mac("vb")?);
    let sent = with_sender(&a, "va", async move |s| {
        Ok(s.reply_to(&[VIP], &[(B_IP, b_mac)], 100, &mut Ungated)
            .await?)
    })?;
    assert_eq!(sent, 1);
    assert_eq!(wait_neigh(&b, VIP, a_mac)?, Some(a_mac));
    Ok(())
}

/// Captures ARP frames arriving on `vb` in B until `n` or 3 s; the capture
/// socket is open before `send` runs.
fn capture(b: &Netns, n: usize, send: impl FnOnce() -> Result<()>) -> Result<Vec<Vec<u8>>> {
    crate::capture::during(b, ETH_P_ARP, |_| true, n, send)
}

#[test]
#[ignore = "needs root"]
fn burst_frames_on_the_wire_match_the_builder() -> Result<()> {
    let (a, b) = pair("wire")?;
    b.run(&["sysctl", "-q", "-w", "net.ipv6.conf.vb.disable_ipv6=1"])?;
    let a_mac = a.mac("va")?;
    let burst = Burst {
        count: 3,
        spacing: Duration::from_millis(50),
        form: GarpForm::Both,
    };
    let frames = capture(&b, 6, || {
        let sent = with_sender(&a, "va", async move |s| {
            Ok(s.garp_burst(&[VIP], burst).await?)
        })?;
        assert_eq!(sent, 6);
        Ok(())
    })?;
    let request = ArpFrame::gratuitous_request(a_mac, VIP).encode();
    let reply = ArpFrame::gratuitous_reply(a_mac, VIP).encode();
    let arp: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| ArpFrame::parse(f).is_some_and(|p| p.spa == VIP))
        .collect();
    assert_eq!(arp.len(), 6, "{frames:02x?}");
    for (i, f) in arp.iter().enumerate() {
        let want = if i % 2 == 0 { &request } else { &reply };
        assert_eq!(f.as_slice(), &want[..], "frame {i}");
    }
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn notify_unicasts_known_hosts_and_broadcasts_once_for_the_rest() -> Result<()> {
    let (a, b) = pair("notify")?;
    let (a_mac, b_mac) = (a.mac("va")?, b.mac("vb")?);
    let range: Ipv4Prefix = "192.0.2.0/24".parse()?;
    let frames = capture(&b, 2, || {
        let sent = with_sender(&a, "va", async move |s| {
            Ok(s.notify(&[VIP], &range, &[(B_IP, b_mac)], 50, &mut Ungated)
                .await?)
        })?;
        assert_eq!(sent, 2);
        Ok(())
    })?;
    let parsed: Vec<ArpFrame> = frames
        .iter()
        .filter_map(|f| ArpFrame::parse(f))
        .filter(|p| p.spa == VIP)
        .collect();
    assert_eq!(
        parsed,
        vec![
            ArpFrame::unicast_reply(a_mac, VIP, B_IP, b_mac),
            ArpFrame::gratuitous_request(a_mac, VIP),
        ]
    );
    assert_eq!(parsed[0].op, ArpOp::Reply);
    assert_eq!(parsed[1].eth_dst, BROADCAST);
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn ranges_are_paced_independently() -> Result<()> {
    let (a, b) = pair("ranges")?;
    let (a_mac, b_mac) = (a.mac("va")?, b.mac("vb")?);
    let small: Ipv4Prefix = "192.0.2.2/32".parse()?;
    let big: Ipv4Prefix = "198.51.100.0/24".parse()?;
    let hosts: Vec<(Ipv4Addr, [u8; 6])> = (1..=20u8)
        .map(|i| (Ipv4Addr::new(198, 51, 100, i), [2, 0, 0, 0, 1, i]))
        .chain([(B_IP, b_mac)])
        .collect();
    // 21 frames for the /24 at 10/s take 2 s; the /32's single reply must not wait for them.
    let frames = capture(&b, 3, || {
        let sent = with_sender(&a, "va", async move |s| {
            Ok(s.notify_ranges(&[VIP], &[big, small], &hosts, 10, &Ungated)
                .await?)
        })?;
        assert_eq!(sent, 22);
        Ok(())
    })?;
    // B's capture sees every frame on the link; the /32's reply is among the
    // first two (one per range at t=0), not after the /24's 21 frames.
    let ours: Vec<ArpFrame> = frames
        .iter()
        .filter_map(|f| ArpFrame::parse(f).filter(|p| p.spa == VIP))
        .collect();
    let at = ours
        .iter()
        .position(|f| *f == ArpFrame::unicast_reply(a_mac, VIP, B_IP, b_mac));
    assert!(matches!(at, Some(0 | 1)), "{ours:?}");
    Ok(())
}

/// A paced run behind the fencing lease stops mid-range the moment the
/// lease runs out and goes on at the renewal: a node whose XDP went silent
/// tells no neighbour to send it traffic.
#[test]
#[ignore = "needs root"]
fn a_lapsed_lease_stops_a_paced_run_mid_range() -> Result<()> {
    let (a, b) = pair("gate")?;
    let b_mac = b.mac("vb")?;
    let (tx, rx) = mpsc::channel();
    let capture = crate::capture::spawn(
        &b,
        ETH_P_ARP,
        |_| true,
        usize::MAX,
        Duration::from_secs(2),
        tx,
    )?;
    let ours = move || {
        rx.try_iter()
            .filter(|f| ArpFrame::parse(f).is_some_and(|p| p.spa == VIP && p.op == ArpOp::Reply))
            .count()
    };
    let targets: Vec<_> = (11..=20u8)
        .map(|i| (Ipv4Addr::new(192, 0, 2, i), b_mac))
        .collect();
    let lapse = with_sender(&a, "va", async move |s| {
        let run = async move |mut gate| s.reply_to(&[VIP], &targets, 20, &mut gate).await;
        crate::capture::across_a_lapse(run, ours).await
    })?;
    capture
        .join()
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))??;
    lapse.check("replies")
}

#[test]
#[ignore = "needs root"]
fn paced_sends_respect_the_rate_limit() -> Result<()> {
    let ns = crate::veth_namespace("pace", "d0", true)?;
    let (sent, took) = with_sender(&ns, "d0", async |s| {
        let targets: Vec<_> = (1..=10u8)
            .map(|i| (Ipv4Addr::new(192, 0, 2, i), [2, 0, 0, 0, 0, i]))
            .collect();
        let t0 = Instant::now();
        let sent = s.reply_to(&[VIP], &targets, 20, &mut Ungated).await?;
        Ok((sent, t0.elapsed()))
    })?;
    assert_eq!(sent, 10);
    // 10 frames at 20/s: the first goes at once, then 9 intervals of 50 ms.
    assert!(took >= Duration::from_millis(440), "{took:?}");
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn opening_a_missing_interface_names_it() -> Result<()> {
    let ns = Netns::new("arperr")?;
    let err = ns.in_thread(|| ArpSender::open("nosuch0").map(|_| ()))?;
    let e = err.expect_err("missing interface");
    assert!(e.to_string().contains("nosuch0"), "{e}");
    Ok(())
}

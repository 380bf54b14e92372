//! IPv6 neighbour advertisements and solicited-node memberships between two
//! namespaces: the frames on the wire, the receiver's neighbour table and the
//! sender's multicast filter. Needs root.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{ensure, Result};
use wackamole::net::nd::{NdFrame, NdSender, ETH_P_IPV6, ND_NEIGHBOR_ADVERT};
use wackamole::net::Ungated;
use wackamole::testbed::{veth_pair, Netns};

const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x1, 0x100);
const OLD_MAC: &str = "02:00:00:00:00:01";

/// A (sender, 2001:db8::1 on va) and B (receiver, 2001:db8::2 on vb).
fn pair(tag: &str) -> Result<(Netns, Netns)> {
    let a = Netns::new(&format!("{tag}a"))?;
    let b = Netns::new(&format!("{tag}b"))?;
    veth_pair(&a, "va", &b, "vb")?;
    a.run(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8::1/64",
        "dev",
        "va",
        "nodad",
    ])?;
    b.run(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8::2/64",
        "dev",
        "vb",
        "nodad",
    ])?;
    Ok((a, b))
}

/// Runs `f` with an NdSender on `va` inside `ns`, on a runtime there.
fn with_sender<T: Send + 'static>(
    ns: &Netns,
    f: impl AsyncFnOnce(&NdSender) -> anyhow::Result<T> + Send + 'static,
) -> Result<T> {
    ns.in_thread(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let sender = NdSender::open("va")?;
        rt.block_on(f(&sender))
    })?
}

/// NAs for `VIP` seen on B's `vb` while `send` runs (up to `n`, 3 s at most).
fn capture(b: &Netns, n: usize, send: impl FnOnce() -> Result<()>) -> Result<Vec<Vec<u8>>> {
    crate::capture::during(b, ETH_P_IPV6, is_vip_na, n, send)
}

/// Whether `frame` is a neighbour advertisement for `VIP`.
fn is_vip_na(frame: &[u8]) -> bool {
    NdFrame::parse(frame).is_some_and(|p| p.icmp_type == ND_NEIGHBOR_ADVERT && p.target == VIP)
}

/// Paced advertisements behind the fencing lease stop mid-run the moment
/// the lease runs out and go on at the renewal (the IPv6 side of
/// `arp::a_lapsed_lease_stops_a_paced_run_mid_range`).
#[test]
#[ignore = "needs root"]
fn a_lapsed_lease_stops_paced_advertisements_mid_run() -> Result<()> {
    let (a, b) = pair("ndgate")?;
    let a_mac = a.mac("va")?;
    let (tx, rx) = mpsc::channel();
    let capture = crate::capture::spawn(
        &b,
        ETH_P_IPV6,
        is_vip_na,
        usize::MAX,
        Duration::from_secs(2),
        tx,
    )?;
    let seen = move || rx.try_iter().count();
    let frames: Vec<NdFrame> = (0..10)
        .map(|_| NdFrame::unsolicited_advert(a_mac, VIP, false))
        .collect();
    let lapse = with_sender(&a, async move |s| {
        let run = async move |mut gate| s.send_paced(&frames, 20, &mut gate).await;
        crate::capture::across_a_lapse(run, seen).await
    })?;
    capture
        .join()
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))??;
    lapse.check("NAs")
}

#[test]
#[ignore = "needs root"]
fn unsolicited_burst_on_the_wire_matches_the_builder_and_moves_a_cached_vip() -> Result<()> {
    let (a, b) = pair("nda")?;
    let a_mac = a.mac("va")?;
    // B has the VIP cached at the old owner's MAC (as a client would).
    b.run(&[
        "ip",
        "-6",
        "neigh",
        "replace",
        &VIP.to_string(),
        "lladdr",
        OLD_MAC,
        "dev",
        "vb",
        "nud",
        "stale",
    ])?;
    let frames = capture(&b, 2, || {
        let sent = with_sender(&a, async |s| {
            Ok(
                s.unsolicited_burst(&[VIP], 2, Duration::from_millis(20), false)
                    .await?,
            )
        })?;
        ensure!(sent == 2, "sent {sent}");
        Ok(())
    })?;
    let want = NdFrame::unsolicited_advert(a_mac, VIP, false).to_frame();
    ensure!(frames.len() == 2, "captured {} NAs", frames.len());
    ensure!(frames.iter().all(|f| *f == want), "{frames:02x?}");
    // Override set: the existing entry now points at the new owner.
    let neigh = b.run(&["ip", "-6", "neigh", "show", &VIP.to_string(), "dev", "vb"])?;
    let mac = wackamole::net::fmt_mac(&a_mac);
    ensure!(neigh.contains(&mac), "B's entry: {neigh}");
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn unicast_advert_reaches_one_host() -> Result<()> {
    let (a, b) = pair("ndu")?;
    let a_mac = a.mac("va")?;
    let b_mac = b.mac("vb")?;
    let b_ip: Ipv6Addr = "2001:db8::2".parse()?;
    let frames = capture(&b, 1, || {
        with_sender(&a, async move |s| {
            Ok(s.advert_to(&[VIP], &[(b_ip, b_mac)], true)?)
        })?;
        Ok(())
    })?;
    let want = wackamole::net::nd::unicast_advert(a_mac, VIP, b_ip, b_mac, true).to_frame();
    ensure!(frames == [want], "{frames:02x?}");
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn solicited_node_membership_enters_and_leaves_the_filter() -> Result<()> {
    let (a, _b) = pair("ndm")?;
    let group = "33:33:ff:01:01:00";
    let maddr = |ns: &Netns| ns.run(&["ip", "maddr", "show", "dev", "va"]);
    ensure!(!maddr(&a)?.contains(group), "already joined");
    let a2 = a.name().to_string();
    let (joined, left) = with_sender(&a, async move |s| {
        s.join_solicited_node(VIP)?;
        let show = || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &a2, "ip", "maddr", "show", "dev", "va"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let joined = show()?;
        s.leave_solicited_node(VIP)?;
        Ok((joined, show()?))
    })?;
    ensure!(joined.contains(group), "not joined: {joined}");
    ensure!(!left.contains(group), "not left: {left}");
    Ok(())
}

/// B's neighbour entry for the VIP ("" when there is none).
fn entry(b: &Netns) -> Result<String> {
    Ok(
        b.run(&["ip", "-6", "neigh", "show", &VIP.to_string(), "dev", "vb"])?
            .trim()
            .to_string(),
    )
}

fn all_nodes_na(a: &Netns) -> Result<()> {
    with_sender(a, async |s| {
        Ok(s.unsolicited_burst(&[VIP], 1, Duration::ZERO, false)
            .await?)
    })?;
    // Processed by B's stack right away; a moment for the netlink view.
    std::thread::sleep(Duration::from_millis(100));
    Ok(())
}

/// Known client behaviour (issue 13, item 4): Linux takes an unsolicited
/// NA for an address only if it already has a neighbour entry for it. The
/// one exception (RFC 9131, Linux 5.19+) is a router: with forwarding on and
/// `accept_untracked_na` set on the interface it creates a STALE entry. A
/// host never does, whatever the sysctl says. So a client that never talked
/// to the VIP learns the owner when it asks (answered from XDP); one that
/// did is moved by the NA.
#[test]
#[ignore = "needs root and Linux 5.19+ (accept_untracked_na)"]
fn linux_ignores_an_untracked_na_unless_a_router_sets_accept_untracked_na() -> Result<()> {
    let sysctl = "/proc/sys/net/ipv6/conf/all/accept_untracked_na";
    ensure!(
        std::path::Path::new(sysctl).exists(),
        "this kernel has no {sysctl} (Linux 5.19+)"
    );
    let (a, b) = pair("ndt")?;
    let a_mac = wackamole::net::fmt_mac(&a.mac("va")?);
    let set = |what: &str| b.run(&["sysctl", "-qw", &format!("net.ipv6.conf.vb.{what}")]);
    // A host: ignored, with the sysctl or without.
    set("forwarding=0")?;
    for mode in ["accept_untracked_na=0", "accept_untracked_na=1"] {
        set(mode)?;
        all_nodes_na(&a)?;
        ensure!(entry(&b)?.is_empty(), "host, {mode}: {}", entry(&b)?);
    }
    // A router without the sysctl: ignored too.
    set("forwarding=1")?;
    set("accept_untracked_na=0")?;
    all_nodes_na(&a)?;
    ensure!(entry(&b)?.is_empty(), "router, sysctl 0: {}", entry(&b)?);
    // A router with it: the same NA creates the entry (STALE: unconfirmed).
    set("accept_untracked_na=1")?;
    all_nodes_na(&a)?;
    let e = entry(&b)?;
    ensure!(
        e.contains(&a_mac) && e.contains("STALE"),
        "router, sysctl 1: {e:?}"
    );
    // Mode 2: only for a source inside one of the interface's prefixes,
    // which a VIP of the LAN is.
    b.run(&["ip", "-6", "neigh", "flush", "dev", "vb"])?;
    set("accept_untracked_na=2")?;
    all_nodes_na(&a)?;
    let e = entry(&b)?;
    ensure!(
        e.contains(&a_mac),
        "router, sysctl 2, VIP on the LAN's prefix: {e:?}"
    );
    Ok(())
}

/// The agent's advertisement to a notify target without a known MAC (a
/// router's /128): sent to the target's solicited-node MAC with its unicast
/// address as destination; the target takes it and moves its entry.
#[test]
#[ignore = "needs root"]
fn a_directed_na_to_a_notify_target_moves_its_entry() -> Result<()> {
    let (a, b) = pair("ndd")?;
    let a_mac = a.mac("va")?;
    b.run(&[
        "ip",
        "-6",
        "neigh",
        "replace",
        &VIP.to_string(),
        "lladdr",
        OLD_MAC,
        "dev",
        "vb",
        "nud",
        "stale",
    ])?;
    let b_ip: Ipv6Addr = "2001:db8::2".parse()?;
    let range = wackamole::net::nd::Ipv6Prefix::new(b_ip, 128).expect("prefix");
    let frames = wackamole::net::nd::plan_notify6(a_mac, &[VIP], &range, &[], false);
    ensure!(frames.len() == 1, "{frames:?}");
    let captured = capture(&b, 1, || {
        with_sender(&a, async move |s| {
            Ok(s.send_paced(&frames, 0, &mut Ungated).await?)
        })?;
        Ok(())
    })?;
    ensure!(captured.len() == 1, "captured {}", captured.len());
    std::thread::sleep(Duration::from_millis(100));
    let e = entry(&b)?;
    ensure!(
        e.contains(&wackamole::net::fmt_mac(&a_mac)),
        "B's entry after the directed NA: {e:?}"
    );
    Ok(())
}

/// The agent's plumbing for an IPv6 VIP on a real interface: the address is
/// added at once (no DAD: not tentative) and deprecated (never a source),
/// removed again; solicited-node memberships are counted per VIP, so two
/// VIPs sharing a group keep it until the last one leaves.
#[test]
#[ignore = "needs root"]
fn the_agents_ipv6_plumbing_adds_deprecated_nodad_addresses_and_counts_groups() -> Result<()> {
    use wackamole::daemon::host::Netlink;
    use wackamole::daemon::vifs::AddressPlumbing;
    let (a, _b) = pair("ndp")?;
    // Same low 24 bits: the same solicited-node group as VIP.
    let twin = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xff01, 0x100);
    let group = "33:33:ff:01:01:00";
    let name = a.name().to_string();
    let show = move |what: &[&str]| -> Result<String> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &name])
            .args(what)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let steps = a.in_thread(move || -> Result<Vec<String>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let n = Netlink::default();
            let mut seen = Vec::new();
            let ip = IpAddr::V6(VIP);
            n.join_solicited_node("va", VIP).await?;
            n.join_solicited_node("va", VIP).await?; // again: no second join
            n.join_solicited_node("va", twin).await?;
            n.leave_solicited_node("va", VIP).await?;
            // No address yet: only the twin's membership holds the group.
            seen.push(show(&["ip", "maddr", "show", "dev", "va"])?);
            n.add("va", ip, 64).await?;
            n.add("va", ip, 64).await?; // idempotent
            seen.push(show(&["ip", "-6", "addr", "show", "dev", "va"])?);
            n.remove("va", ip, 64).await?;
            n.remove("va", ip, 64).await?; // absent is fine
            n.leave_solicited_node("va", twin).await?;
            n.leave_solicited_node("va", twin).await?; // not joined: no-op
            seen.push(show(&["ip", "-6", "addr", "show", "dev", "va"])?);
            seen.push(show(&["ip", "maddr", "show", "dev", "va"])?);
            Ok(seen)
        })
    })??;
    ensure!(
        steps[0].contains(group),
        "group left while the twin VIP holds it: {}",
        steps[0]
    );
    let vip_line = steps[1]
        .lines()
        .find(|l| l.contains(&format!("{VIP}/64")))
        .unwrap_or_default();
    ensure!(
        vip_line.contains("deprecated")
            && vip_line.contains("nodad")
            && !vip_line.contains("tentative"),
        "address flags: {:?}",
        steps[1]
    );
    ensure!(
        !steps[2].contains(&VIP.to_string()),
        "address not removed: {}",
        steps[2]
    );
    ensure!(
        !steps[3].contains(group),
        "group kept after the last VIP left: {}",
        steps[3]
    );
    Ok(())
}

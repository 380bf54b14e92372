//! The data plane on a real veth link between two namespaces: arping and
//! ping from the peer against a VIP the XDP side owns, releases, forgets and
//! loses by lease expiry. Needs root; namespaces are always removed.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use wackamole::dataplane::frames::{vlan_tagged, ArpFrame};
use wackamole::dataplane::XdpAttachMode;
use wackamole::lab::arp_observer;
use wackamole::lab::arping::{arping, fmt_mac};
use wackamole::lab::VethLab;

const PEER_IF: &str = "pv";
const XDP_IF: &str = "xv";
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const VIP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 101);
const PLAIN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 102);
const XDP6: &str = "2001:db8::1/64";
const PEER6: &str = "2001:db8::2/64";
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

/// Number of arping replies for `addr` from the peer, checking their MAC.
fn answers(lab: &VethLab, addr: Ipv4Addr, expect_mac: [u8; 6]) -> Result<usize> {
    let replies = arping(&lab.peer, PEER_IF, addr, 2, Duration::from_secs(3))?;
    for r in &replies {
        ensure!(r.from == addr, "reply from {} for {addr}", r.from);
        ensure!(
            r.mac == expect_mac,
            "reply for {addr} with {} instead of {}",
            fmt_mac(&r.mac),
            fmt_mac(&expect_mac)
        );
    }
    Ok(replies.len())
}

fn silent(lab: &VethLab, addr: Ipv4Addr) -> Result<bool> {
    Ok(arping(&lab.peer, PEER_IF, addr, 1, Duration::from_secs(1))?.is_empty())
}

fn pings(lab: &VethLab, addr: Ipv4Addr) -> bool {
    lab.peer
        .succeeds(&["ping", "-c", "1", "-W", "1", &addr.to_string()])
}

/// Whether the XDP side answers `frame` (an ARP request, perhaps tagged)
/// sent from the peer: an ARP reply comes back within 300 ms.
fn answered_raw(lab: &VethLab, frame: Vec<u8>) -> Result<bool> {
    let got = lab.peer.in_thread(move || {
        arp_observer::raw_exchange(PEER_IF, &frame, Duration::from_millis(300))
    })??;
    Ok(got.iter().any(|f| {
        let arp = match f.get(12..14) {
            Some([0x08, 0x06]) => 14,
            Some([0x81, 0x00]) => 18,
            _ => return false,
        };
        f.get(arp + 6..arp + 8) == Some(&[0, 2][..])
    }))
}

/// Requests the kernel answers for an address it holds, which the program
/// must not leave to it while the VIP is silent here (released, fenced):
/// hardware type 6 (IEEE 802) and a priority tag (802.1Q VLAN id 0). The
/// address is on the XDP side's interface, as standby addresses and
/// lingering hand-overs keep it.
fn kernel_answered_requests_scenario(mode: XdpAttachMode) -> Result<()> {
    let mut lab = VethLab::new(mode)?;
    let peer_mac = lab.peer.mac(PEER_IF)?;
    let vip = lab.vip(VIP);
    lab.xdp
        .run(&["ip", "addr", "add", &format!("{VIP}/24"), "dev", XDP_IF])?;
    let request = || {
        ArpFrame::request(peer_mac, wackamole::lab::PEER_ADDR, VIP)
            .encode_unpadded()
            .to_vec()
    };
    let mut ieee802 = request();
    ieee802[15] = 6;
    let frames = [
        ("hardware type 6", ieee802),
        ("priority tag", vlan_tagged(&request(), 0)),
    ];
    // Not a VIP here: the kernel answers both (the frames are good).
    for (name, f) in &frames {
        ensure!(
            answered_raw(&lab, f.clone())?,
            "{mode:?}: the kernel ignored the {name}"
        );
    }
    lab.plane()?.own(&vip)?;
    lab.plane()?.release(&vip)?;
    for (name, f) in &frames {
        ensure!(
            !answered_raw(&lab, f.clone())?,
            "{mode:?}: {name} answered while released"
        );
    }
    lab.plane()?.own(&vip)?;
    lab.plane()?.renew_lease(Some(Duration::from_millis(1)))?;
    std::thread::sleep(Duration::from_millis(20));
    for (name, f) in &frames {
        ensure!(
            !answered_raw(&lab, f.clone())?,
            "{mode:?}: {name} answered while fenced"
        );
    }
    let a = lab.plane()?.action_counters()?;
    ensure!(
        a.drop_releasing >= 2 && a.drop_fenced >= 2,
        "{mode:?}: {a:?}"
    );
    lab.shutdown()
}

#[test]
#[ignore = "needs root"]
fn kernel_answered_requests_are_dropped_for_a_silent_vip_skb() -> Result<()> {
    kernel_answered_requests_scenario(XdpAttachMode::Skb)
}

fn scenario(mode: XdpAttachMode) -> Result<()> {
    let mut lab = VethLab::new(mode)?;
    let mac = lab.mac;
    let vip = lab.vip(VIP);
    let attached = lab.plane()?.attached();
    ensure!(
        attached.len() == 1 && attached[0].iface == XDP_IF && attached[0].mode == Some(mode),
        "{mode:?}: attached as {attached:?}"
    );

    // Owned, configured nowhere: only XDP can answer.
    lab.plane()?.own(&vip)?;
    let n = answers(&lab, VIP, mac)?;
    ensure!(n >= 1, "{mode:?}: no ARP reply for an owned VIP");
    ensure!(lab.plane()?.counters(&vip)?.arp_replies >= n as u64);
    // With the address on the XDP side's loopback, IP traffic flows too:
    // XDP answers ARP and passes (and counts) the ICMP.
    lab.xdp
        .run(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
    ensure!(pings(&lab, VIP), "{mode:?}: ping to an owned VIP failed");
    let c = lab.plane()?.counters(&vip)?;
    ensure!(
        c.packets >= 1 && c.bytes >= 98,
        "{mode:?}: IPv4 not counted: {c:?}"
    );

    // Released: ARP and IP both silent (the peer still has the MAC cached,
    // so the pings reach XDP and are dropped there).
    lab.plane()?.release(&vip)?;
    ensure!(
        silent(&lab, VIP)?,
        "{mode:?}: arping answered after release"
    );
    ensure!(!pings(&lab, VIP), "{mode:?}: ping answered after release");
    let c = lab.plane()?.counters(&vip)?;
    ensure!(c.drops >= 2, "{mode:?}: drops not counted: {c:?}");
    let a = lab.plane()?.action_counters()?;
    ensure!(a.drop_releasing >= 2, "{mode:?}: {a:?}");

    // Forgotten: the kernel's own behaviour is back. The address is on the
    // XDP side's lo, so the kernel (arp_ignore=0) answers ARP for it.
    lab.plane()?.forget(&vip)?;
    ensure!(lab.plane()?.entries()?.is_empty());
    ensure!(
        answers(&lab, VIP, mac)? >= 1,
        "{mode:?}: kernel did not answer after forget"
    );
    ensure!(pings(&lab, VIP), "{mode:?}: ping failed after forget");
    lab.xdp
        .run(&["ip", "addr", "del", &format!("{VIP}/32"), "dev", "lo"])?;
    // An unconfigured address gets no reply; one added with ip addr does.
    ensure!(
        silent(&lab, PLAIN)?,
        "{mode:?}: reply for an unconfigured address"
    );
    lab.xdp
        .run(&["ip", "addr", "add", &format!("{PLAIN}/24"), "dev", XDP_IF])?;
    ensure!(
        answers(&lab, PLAIN, mac)? >= 1,
        "{mode:?}: kernel did not answer for an added address"
    );

    // Lease: answered while valid, silent once it lapses, back on renewal.
    let vip2 = lab.vip(VIP2);
    lab.plane()?.own(&vip2)?;
    lab.plane()?.renew_lease(Some(Duration::from_secs(30)))?;
    ensure!(
        answers(&lab, VIP2, mac)? >= 1,
        "{mode:?}: no reply under a valid lease"
    );
    lab.plane()?.renew_lease(Some(Duration::from_millis(1)))?;
    std::thread::sleep(Duration::from_millis(20));
    ensure!(
        silent(&lab, VIP2)?,
        "{mode:?}: answered after the lease expired"
    );
    ensure!(lab.plane()?.action_counters()?.drop_fenced >= 1);
    lab.plane()?.renew_lease(Some(Duration::from_secs(30)))?;
    ensure!(
        answers(&lab, VIP2, mac)? >= 1,
        "{mode:?}: no reply after renewal"
    );

    let pin_dir = lab.plane()?.pin_dir().to_path_buf();
    lab.shutdown()?;
    ensure!(!pin_dir.exists(), "{} left behind", pin_dir.display());
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn native_mode_answers_releases_forgets_and_fences() -> Result<()> {
    scenario(XdpAttachMode::Native)
}

#[test]
#[ignore = "needs root"]
fn skb_mode_answers_releases_forgets_and_fences() -> Result<()> {
    scenario(XdpAttachMode::Skb)
}

#[test]
#[ignore = "needs root"]
fn restart_reuses_pinned_links_and_never_stacks_programs() -> Result<()> {
    use wackamole::dataplane::{DataPlane, DataPlaneOptions};
    use wackamole::testbed::{veth_pair, Netns};

    let a = Netns::new("rsa")?;
    let b = Netns::new("rsb")?;
    veth_pair(&a, XDP_IF, &b, PEER_IF)?;
    a.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", XDP_IF])?;
    b.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", PEER_IF])?;
    let mut opts = DataPlaneOptions::new(format!("netns-restart-{}", std::process::id()));
    opts.mode = XdpAttachMode::Skb;
    opts.interfaces = vec![XDP_IF.to_string()];
    let prog_id = |ns: &Netns| -> Result<String> {
        let out = ns.run(&["ip", "-d", "link", "show", XDP_IF])?;
        Ok(out
            .split_whitespace()
            .skip_while(|w| *w != "prog/xdp")
            .nth(2)
            .unwrap_or("none")
            .to_string())
    };

    let o = opts.clone();
    let first = a.in_thread(move || DataPlane::open(&o))??;
    let first_prog = prog_id(&a)?;
    ensure!(
        first_prog != "none",
        "not attached: {}",
        a.run(&["ip", "-d", "link"])?
    );
    // The agent "dies": the pinned link keeps the program attached.
    drop(first);
    ensure!(
        prog_id(&a)? == first_prog,
        "program detached when the agent died"
    );

    let o = opts.clone();
    let second = a.in_thread(move || DataPlane::open(&o))??;
    let second_prog = prog_id(&a)?;
    ensure!(
        second_prog != "none" && second_prog != first_prog,
        "restart did not swap the program in: {first_prog} -> {second_prog}"
    );
    ensure!(second.attached().len() == 1);
    let details = a.run(&["ip", "-d", "link", "show", XDP_IF])?;
    ensure!(
        details.matches("prog/xdp").count() == 1,
        "expected exactly one XDP program: {details}"
    );
    // Detaching an interface also forgets its VIPs: nothing stale remains.
    let mut second = second;
    let ifindex = a.ifindex(XDP_IF)?;
    second.own(&wackamole::dataplane::Vip::new(XDP_IF, ifindex, VIP))?;
    ensure!(second.entries()?.len() == 1);
    second.detach(ifindex)?;
    ensure!(prog_id(&a)? == "none", "still attached after detach");
    ensure!(second.entries()?.is_empty() && second.attached().is_empty());
    second.shutdown()?;
    ensure!(!opts.pin_dir().exists());
    Ok(())
}

/// The link-layer address `ndisc6` (run in the peer) gets for `addr`, if any.
fn ndisc(lab: &VethLab, addr: Ipv6Addr) -> Result<Option<[u8; 6]>> {
    let out = lab
        .peer
        .command("ndisc6")
        .args([
            "-q",
            "-n",
            "-1",
            "-r",
            "2",
            "-w",
            "500",
            &addr.to_string(),
            PEER_IF,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .context("running ndisc6 (apt-get install ndisc6)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find_map(|l| wackamole::lab::arping::parse_mac(l.trim())))
}

fn pings6(lab: &VethLab, addr: Ipv6Addr) -> bool {
    lab.peer
        .succeeds(&["ping", "-6", "-c", "1", "-W", "1", &addr.to_string()])
}

/// IPv6 addresses on both ends, without DAD (usable at once).
fn add_ipv6(lab: &VethLab) -> Result<()> {
    lab.xdp
        .run(&["ip", "-6", "addr", "add", XDP6, "dev", XDP_IF, "nodad"])?;
    lab.peer
        .run(&["ip", "-6", "addr", "add", PEER6, "dev", PEER_IF, "nodad"])?;
    Ok(())
}

fn have_ndisc6() -> bool {
    std::process::Command::new("ndisc6")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ipv6_scenario(mode: XdpAttachMode) -> Result<()> {
    let mut lab = VethLab::new(mode)?;
    add_ipv6(&lab)?;
    let mac = lab.mac;
    let vip = wackamole::dataplane::Vip::new(XDP_IF, lab.ifindex, VIP6);

    // Not owned, configured nowhere: nobody answers.
    ensure!(
        ndisc(&lab, VIP6)?.is_none(),
        "{mode:?}: answer for an unknown address"
    );

    // Owned, configured nowhere: only XDP can answer.
    lab.plane()?.own(&vip)?;
    let got = ndisc(&lab, VIP6)?;
    ensure!(
        got == Some(mac),
        "{mode:?}: ndisc6 got {:?}, want {}",
        got.map(|m| fmt_mac(&m)),
        fmt_mac(&mac)
    );
    ensure!(lab.plane()?.counters(&vip)?.arp_replies >= 1);
    ensure!(lab.plane()?.action_counters()?.na_reply >= 1);

    // With the address configured on the interface, ping -6 works through
    // XDP's answer and the traffic is counted.
    let vip_cidr = format!("{VIP6}/128");
    lab.xdp
        .run(&["ip", "-6", "addr", "add", &vip_cidr, "dev", XDP_IF, "nodad"])?;
    ensure!(
        pings6(&lab, VIP6),
        "{mode:?}: ping -6 to an owned VIP failed"
    );
    let c = lab.plane()?.counters(&vip)?;
    ensure!(c.packets >= 1, "{mode:?}: IPv6 not counted: {c:?}");

    // Released: XDP drops the solicitations the kernel would answer (the
    // address is still on the interface) and the traffic.
    lab.plane()?.release(&vip)?;
    ensure!(
        ndisc(&lab, VIP6)?.is_none(),
        "{mode:?}: answered after release"
    );
    ensure!(
        !pings6(&lab, VIP6),
        "{mode:?}: ping -6 answered after release"
    );
    ensure!(lab.plane()?.action_counters()?.drop_releasing >= 2);

    // Forgotten: the kernel answers for its own address again.
    lab.plane()?.forget(&vip)?;
    ensure!(
        ndisc(&lab, VIP6)? == Some(mac),
        "{mode:?}: kernel did not answer after forget"
    );
    lab.shutdown()?;
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn ipv6_native_mode_answers_solicitations_and_release_silences() -> Result<()> {
    if !have_ndisc6() {
        anyhow::bail!("ndisc6 is missing: apt-get install ndisc6 (cargo xtask setup)");
    }
    ipv6_scenario(XdpAttachMode::Native)
}

#[test]
#[ignore = "needs root"]
fn ipv6_skb_mode_answers_solicitations_and_release_silences() -> Result<()> {
    if !have_ndisc6() {
        anyhow::bail!("ndisc6 is missing: apt-get install ndisc6 (cargo xtask setup)");
    }
    ipv6_scenario(XdpAttachMode::Skb)
}

/// Set for the child process of `private_bpffs_under_ip_netns_exec_is_refused`.
const CHILD_ENV: &str = "WK_PRIVATE_BPFFS_CHILD";

/// Runs only as the child of the test below (under `ip netns exec`): opens
/// the data plane on the default /sys/fs/bpf and prints the outcome.
#[test]
#[ignore = "child process of private_bpffs_under_ip_netns_exec_is_refused"]
fn private_bpffs_child() {
    use wackamole::dataplane::{DataPlane, DataPlaneOptions};
    // Only meaningful as the child (`--include-ignored` runs it directly).
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut opts = DataPlaneOptions::new(format!("netns-private-{}", std::process::id()));
    opts.allow_private_bpffs = mode == "allow";
    match DataPlane::open(&opts) {
        Ok(dp) => {
            dp.shutdown().expect("shutdown");
            println!("CHILD: opened");
        }
        Err(e) => println!("CHILD: refused: {e}"),
    }
}

#[test]
#[ignore = "needs root"]
fn private_bpffs_under_ip_netns_exec_is_refused() -> Result<()> {
    use wackamole::testbed::Netns;
    let ns = Netns::new("pbf")?;
    let exe = std::env::current_exe()?;
    let exe = exe.to_str().context("test binary path")?;
    let run = |mode: &str| -> Result<String> {
        let out = ns
            .command(exe)
            .args([
                "--exact",
                "netns::private_bpffs_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, mode)
            .stdin(std::process::Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(text
            .lines()
            .find(|l| l.starts_with("CHILD: "))
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "no outcome; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            }))
    };
    // `ip netns exec` remounts /sys: /sys/fs/bpf there is a fresh bpffs that
    // only the agent's process sees.
    let refused = run("refuse")?;
    ensure!(
        refused.starts_with("CHILD: refused")
            && refused.contains("/sys/fs/bpf")
            && refused.contains("nsenter")
            && refused.contains("xdp.allow_private_bpffs"),
        "{refused}"
    );
    let allowed = run("allow")?;
    ensure!(allowed == "CHILD: opened", "{allowed}");
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn host_bpffs_seen_through_ip_netns_exec_is_accepted() -> Result<()> {
    // What the cluster test bed does: a bpffs mounted on the host outside
    // /sys is the same filesystem inside `ip netns exec`.
    use wackamole::testbed::Netns;
    let mount = std::path::PathBuf::from(format!("/run/wk-bpf-shared-{}", std::process::id()));
    std::fs::create_dir_all(&mount)?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(&mount)
        .status()?
        .success();
    ensure!(mounted, "mount -t bpf on {}", mount.display());
    let result = (|| -> Result<()> {
        let ns = Netns::new("pbs")?;
        let exe = std::env::current_exe()?;
        let out = ns
            .command(exe.to_str().context("test binary path")?)
            .args([
                "--exact",
                "netns::shared_bpffs_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, mount.to_str().context("mount path")?)
            .stdin(std::process::Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(text.contains("CHILD: opened"), "{text}");
        Ok(())
    })();
    let _ = std::process::Command::new("umount").arg(&mount).status();
    let _ = std::fs::remove_dir(&mount);
    result
}

/// Child of `host_bpffs_seen_through_ip_netns_exec_is_accepted`.
#[test]
#[ignore = "child process of host_bpffs_seen_through_ip_netns_exec_is_accepted"]
fn shared_bpffs_child() {
    use wackamole::dataplane::{DataPlane, DataPlaneOptions};
    // Only meaningful as the child (`--include-ignored` runs it directly).
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut opts = DataPlaneOptions::new(format!("netns-shared-{}", std::process::id()));
    opts.bpffs = dir.into();
    match DataPlane::open(&opts) {
        Ok(dp) => {
            dp.shutdown().expect("shutdown");
            println!("CHILD: opened");
        }
        Err(e) => println!("CHILD: refused: {e}"),
    }
}

/// Make-before-break hand-over (issue 10): a yielding VIP is answered by
/// nobody (not XDP, not the kernel that still has the address) while its
/// traffic keeps reaching the host.
fn yield_scenario(mode: XdpAttachMode) -> Result<()> {
    let mut lab = VethLab::new(mode)?;
    add_ipv6(&lab)?;
    let mac = lab.mac;
    let vip = lab.vip(VIP);
    let vip6 = wackamole::dataplane::Vip::new(XDP_IF, lab.ifindex, VIP6);
    // Configured on the host, so the kernel would answer ARP and NS itself.
    lab.xdp
        .run(&["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
    let vip6_cidr = format!("{VIP6}/128");
    lab.xdp.run(&[
        "ip", "-6", "addr", "add", &vip6_cidr, "dev", XDP_IF, "nodad",
    ])?;
    lab.plane()?.own(&vip)?;
    lab.plane()?.own(&vip6)?;
    ensure!(answers(&lab, VIP, mac)? >= 1, "{mode:?}: no ARP reply");
    ensure!(ndisc(&lab, VIP6)? == Some(mac), "{mode:?}: no NA");
    // The peer learns the MAC (its neighbour entries stay reachable for
    // 15-45 s, longer than the rest of this test).
    ensure!(pings(&lab, VIP), "{mode:?}: ping to an owned VIP failed");
    ensure!(
        pings6(&lab, VIP6),
        "{mode:?}: ping -6 to an owned VIP failed"
    );

    lab.plane()?.yield_vip(&vip)?;
    lab.plane()?.yield_vip(&vip6)?;
    ensure!(silent(&lab, VIP)?, "{mode:?}: ARP answered while yielding");
    ensure!(
        ndisc(&lab, VIP6)?.is_none(),
        "{mode:?}: NS answered while yielding"
    );
    let before = (
        lab.plane()?.counters(&vip)?.packets,
        lab.plane()?.counters(&vip6)?.packets,
    );
    ensure!(pings(&lab, VIP), "{mode:?}: ping lost while yielding");
    ensure!(pings6(&lab, VIP6), "{mode:?}: ping -6 lost while yielding");
    // UDP too: a datagram from the peer reaches a socket on the host.
    let sock = lab
        .xdp
        .in_thread(|| std::net::UdpSocket::bind((VIP, 5099)))??;
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    lab.peer.run(&[
        "bash",
        "-c",
        &format!("echo handover > /dev/udp/{VIP}/5099"),
    ])?;
    let mut buf = [0u8; 32];
    let (n, _) = sock.recv_from(&mut buf).context("UDP to a yielding VIP")?;
    ensure!(&buf[..n] == b"handover\n", "{mode:?}: got {:?}", &buf[..n]);

    let (c4, c6) = (lab.plane()?.counters(&vip)?, lab.plane()?.counters(&vip6)?);
    ensure!(
        c4.packets >= before.0 + 2 && c6.packets > before.1,
        "{mode:?}: traffic not counted: {c4:?} {c6:?}"
    );
    let a = lab.plane()?.action_counters()?;
    ensure!(a.drop_yielding >= 2, "{mode:?}: {a:?}");
    lab.shutdown()?;
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn yielding_vip_is_silent_but_keeps_its_traffic_native() -> Result<()> {
    if !have_ndisc6() {
        anyhow::bail!("ndisc6 is missing: apt-get install ndisc6 (cargo xtask setup)");
    }
    yield_scenario(XdpAttachMode::Native)
}

#[test]
#[ignore = "needs root"]
fn yielding_vip_is_silent_but_keeps_its_traffic_skb() -> Result<()> {
    if !have_ndisc6() {
        anyhow::bail!("ndisc6 is missing: apt-get install ndisc6 (cargo xtask setup)");
    }
    yield_scenario(XdpAttachMode::Skb)
}

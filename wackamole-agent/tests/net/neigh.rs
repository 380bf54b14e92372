//! Reading the kernel neighbour table, inside network namespaces.

use std::net::Ipv4Addr;

use anyhow::Result;
use wackamole::net::neigh;
use wackamole::testbed::{veth_pair, Netns};

#[test]
#[ignore = "needs root"]
fn lists_usable_entries_of_one_interface() -> Result<()> {
    let a = Netns::new("nga")?;
    let b = Netns::new("ngb")?;
    veth_pair(&a, "va", &b, "vb")?;
    a.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])?;
    b.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"])?;
    b.run(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d0p",
    ])?;
    b.run(&["ip", "link", "set", "d0", "up"])?;
    b.run(&["ip", "addr", "add", "198.51.100.1/24", "dev", "d0"])?;
    for argv in [
        "ip neigh add 192.0.2.50 lladdr 02:00:00:00:00:50 dev vb nud permanent",
        "ip neigh add 192.0.2.51 lladdr 02:00:00:00:00:51 dev vb nud stale",
        "ip neigh add 198.51.100.9 lladdr 02:00:00:00:00:09 dev d0 nud permanent",
    ] {
        b.run(&argv.split(' ').collect::<Vec<_>>())?;
    }
    // A reachable entry learned by ARP, and an unanswered one (incomplete/failed).
    assert!(b.succeeds(&["ping", "-c1", "-W1", "192.0.2.1"]));
    assert!(!b.succeeds(&["ping", "-c1", "-W1", "192.0.2.99"]));
    let a_mac = a.mac("va")?;

    let mut got = b.in_thread(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok::<_, anyhow::Error>(rt.block_on(neigh::list("vb"))?)
    })??;
    got.sort();
    assert_eq!(
        got,
        vec![
            (Ipv4Addr::new(192, 0, 2, 1), a_mac),
            (Ipv4Addr::new(192, 0, 2, 50), [2, 0, 0, 0, 0, 0x50]),
            (Ipv4Addr::new(192, 0, 2, 51), [2, 0, 0, 0, 0, 0x51]),
        ]
    );
    let shown = b.run(&["ip", "neigh", "show", "192.0.2.99"])?;
    assert!(
        !shown.trim().is_empty(),
        "the unanswered entry exists: {shown}"
    );
    Ok(())
}

/// The detector's beats keep each peer's neighbour entry reachable while
/// the peer's beats come (`MSG_CONFIRM`), so no ARP probe can fail and cut
/// the beats off under loss. With a 200 ms reachable time and a 1 s delay
/// before the first probe, an entry only used by plain UDP would go stale
/// within 300 ms, then sit in DELAY for a second before a probe; polled
/// every 20 ms for 2 s, every look finds it reachable on both sides.
#[test]
#[ignore = "needs root"]
fn beats_keep_the_peers_neighbour_entries_reachable() -> Result<()> {
    beats_keep_entries_reachable(("192.0.2.1", "192.0.2.2"), 24, "nba")
}

/// The same over IPv6: the peers' neighbour discovery entries.
#[test]
#[ignore = "needs root"]
fn beats_keep_the_peers_ipv6_neighbour_entries_reachable() -> Result<()> {
    beats_keep_entries_reachable(("2001:db8::1", "2001:db8::2"), 64, "nb6")
}

/// Two beat threads, in namespaces `<tag>a` and `<tag>b` joined by a veth
/// pair with addresses `ips`; polls each one's neighbour entry of the
/// other (see above).
fn beats_keep_entries_reachable(ips: (&str, &str), prefix: u8, tag: &str) -> Result<()> {
    use std::time::{Duration, Instant};
    use wackamole::config::{DetectorConfig, DetectorMode};
    use wackamole::daemon::beats::{self, Command};
    use wackamole::detect::Timing;
    use wackamole::membership::MemberId;

    let a = Netns::new(&format!("{tag}a"))?;
    let b = Netns::new(&format!("{tag}b"))?;
    veth_pair(&a, "va", &b, "vb")?;
    let (ip_a, ip_b) = ips;
    let v6 = ip_a.contains(':');
    let family = if v6 { "ipv6" } else { "ipv4" };
    for (ns, dev, ip) in [(&a, "va", ip_a), (&b, "vb", ip_b)] {
        let cidr = format!("{ip}/{prefix}");
        let mut add = vec!["ip", "addr", "add", &cidr, "dev", dev];
        if v6 {
            add.push("nodad");
        }
        ns.run(&add)?;
        for setting in ["base_reachable_time_ms=200", "delay_first_probe_time=1"] {
            ns.run(&[
                "sysctl",
                "-qw",
                &format!("net.{family}.neigh.{dev}.{setting}"),
            ])?;
        }
    }
    let members = vec![MemberId("a".into()), MemberId("b".into())];
    let at = |ip: &str| -> Result<std::net::SocketAddr> {
        Ok(std::net::SocketAddr::new(ip.parse()?, 5407))
    };
    let start = |ns: &Netns, me: &str, peer: &str, my_index: usize| {
        let cfg = DetectorConfig {
            listen: at(me)?,
            peers: vec![at(peer)?],
            timing: Timing::DEFAULT,
            mode: DetectorMode::Observe,
        };
        let members = members.clone();
        ns.in_thread(move || -> Result<beats::BeatsHandle> {
            let h = beats::start(&cfg, "neigh-test", None)?;
            h.tell(Command::View { members, my_index });
            Ok(h)
        })?
    };
    let _beats_a = start(&a, ip_a, ip_b, 0)?;
    let _beats_b = start(&b, ip_b, ip_a, 1)?;
    // Past the first second: an entry first learned from the peer's
    // solicitation starts stale, and its DELAY ends confirmed.
    std::thread::sleep(Duration::from_millis(1500));
    let until = Instant::now() + Duration::from_secs(2);
    let mut looks = 0;
    while Instant::now() < until {
        for (ns, dev, peer) in [(&a, "va", ip_b), (&b, "vb", ip_a)] {
            let shown = ns.run(&["ip", "neigh", "show", peer, "dev", dev])?;
            assert!(
                shown.contains("REACHABLE"),
                "look {looks}: {peer} on {dev}: {shown}"
            );
        }
        looks += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

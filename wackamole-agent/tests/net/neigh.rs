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

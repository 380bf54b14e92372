//! Addresses, ARP announcements and the neighbour table over rtnetlink and
//! AF_PACKET, in network namespaces (needs root: `cargo xtask test`).

#[path = "../support/mod.rs"]
mod support;

mod addr;
mod arp;
mod capture;
mod nd;
mod neigh;

/// A namespace named after `tag` with a veth pair `dev`/`<dev>p` and `dev`
/// up (`peer_up`: the peer too).
fn veth_namespace(
    tag: &str,
    dev: &str,
    peer_up: bool,
) -> anyhow::Result<wackamole::testbed::Netns> {
    let ns = wackamole::testbed::Netns::new(tag)?;
    let peer = format!("{dev}p");
    ns.run(&[
        "ip", "link", "add", dev, "type", "veth", "peer", "name", &peer,
    ])?;
    ns.run(&["ip", "link", "set", dev, "up"])?;
    if peer_up {
        ns.run(&["ip", "link", "set", &peer, "up"])?;
    }
    Ok(ns)
}

//! What every test bed shares: a simulated LAN switch (a namespace with a
//! bridge, hosts plugged in through veth pairs, cables pulled at the switch
//! port), the cluster's temp dir and log tails for error messages.
//!
//! ```text
//!   [host ns: eth0 <addr>] --veth-- <port> in br0 of the switch ns
//! ```

use super::{veth_pair, Netns};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A switch namespace with the LAN's bridge [`Switch::BRIDGE`].
#[derive(Debug)]
pub struct Switch {
    ns: Netns,
}

impl Switch {
    /// Name of the LAN's bridge inside the switch namespace.
    pub const BRIDGE: &'static str = "br0";

    /// A new switch namespace (`tag` as for [`Netns::new`]) with its bridge up.
    pub fn new(tag: &str) -> Result<Self> {
        let switch = Switch {
            ns: Netns::new(tag)?,
        };
        switch.bypass_netfilter();
        switch.add_bridge(Self::BRIDGE)?;
        Ok(switch)
    }

    /// Bridged frames skip the host's iptables, ip6tables and arptables
    /// (br_netfilter calls them for every frame a bridge forwards, where
    /// the module is loaded): a real switch runs no host firewall, and at
    /// thousands of VIPs the bench's probes and the agents' announcements
    /// paid for it on the sender's CPU. The sysctls are per namespace
    /// (the switch's own); absent without br_netfilter, which is fine.
    fn bypass_netfilter(&self) {
        for table in ["iptables", "ip6tables", "arptables"] {
            let key = format!("net.bridge.bridge-nf-call-{table}=0");
            self.ns.succeeds(&["sysctl", "-qw", &key]);
        }
    }

    /// The switch's namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Adds bridge `name` (if it does not exist yet) and brings it up.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        if !self.ns.succeeds(&["ip", "link", "show", name]) {
            self.ns
                .run(&["ip", "link", "add", name, "type", "bridge"])?;
        }
        self.ns.run(&["ip", "link", "set", name, "up"])?;
        Ok(())
    }

    /// Plugs `host`'s `host_if` into switch port `port` on [`Switch::BRIDGE`]
    /// (a veth pair, both ends up) and gives it `cidr` with the broadcast
    /// address of its prefix.
    pub fn plug(&self, port: &str, host: &Netns, host_if: &str, cidr: &str) -> Result<()> {
        veth_pair(&self.ns, port, host, host_if)?;
        self.move_port(port, Self::BRIDGE)?;
        host.run(&["ip", "addr", "add", cidr, "brd", "+", "dev", host_if])?;
        Ok(())
    }

    /// Enslaves switch port `port` to bridge `bridge` (a partition moves
    /// ports to a second bridge and back).
    pub fn move_port(&self, port: &str, bridge: &str) -> Result<()> {
        self.ns
            .run(&["ip", "link", "set", port, "master", bridge])?;
        Ok(())
    }

    /// Pulls the cable of `port` (`up == false`) or puts it back.
    pub fn set_link(&self, port: &str, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.ns.run(&["ip", "link", "set", port, state])?;
        Ok(())
    }
}

/// Creates the temp dir `wkt-<what>-<pid>-<k>` of one test bed.
pub(crate) fn bed_dir(what: &str, k: u32) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("wkt-{what}-{}-{k}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The last lines of a log, for error messages (the temp dir is removed at cleanup).
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines
        .get(lines.len().saturating_sub(15)..)
        .unwrap_or_default();
    format!("{} ends with:\n{}", path.display(), tail.join("\n"))
}

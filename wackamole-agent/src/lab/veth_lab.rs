//! Two namespaces over a veth pair, with the data plane loaded in one.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{anyhow, Context, Result};

use crate::dataplane::{DataPlane, DataPlaneOptions, Vip, XdpAttachMode};
use crate::testbed::{veth_pair, Netns};

/// Interface of the XDP side.
pub const XDP_IF: &str = "xv";
/// Interface of the peer side.
pub const PEER_IF: &str = "pv";
/// Addresses inside the namespaces (TEST-NET-1, never routed outside).
pub const XDP_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// `xdp` (data plane on [`XDP_IF`]) and `peer` ([`PEER_IF`]) over veth.
/// Dropping it shuts the data planes down (unpins) and deletes the namespaces.
pub struct VethLab {
    pub peer: Netns,
    pub xdp: Netns,
    plane: Option<DataPlane>,
    /// Native XDP_TX on veth delivers only when the receiving veth runs XDP
    /// too: our program with no entries (passes everything) on the peer.
    peer_plane: Option<DataPlane>,
    /// Index of [`XDP_IF`] in the `xdp` namespace.
    pub ifindex: u32,
    /// MAC of [`XDP_IF`].
    pub mac: [u8; 6],
}

fn instance(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "lab-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn open_in(ns: &Netns, iface: &str, mode: XdpAttachMode, tag: &str) -> Result<DataPlane> {
    let mut opts = DataPlaneOptions::new(instance(tag));
    opts.mode = mode;
    opts.interfaces = vec![iface.to_string()];
    ns.in_thread(move || DataPlane::open(&opts))?
        .with_context(|| format!("data plane on {iface} in {}", ns.name()))
}

impl VethLab {
    /// Sets up the namespaces and addresses and attaches the data plane.
    pub fn new(mode: XdpAttachMode) -> Result<Self> {
        let xdp = Netns::new("xdp")?;
        let peer = Netns::new("peer")?;
        veth_pair(&xdp, XDP_IF, &peer, PEER_IF)?;
        xdp.run(&[
            "ip",
            "addr",
            "add",
            &format!("{XDP_ADDR}/24"),
            "dev",
            XDP_IF,
        ])?;
        peer.run(&[
            "ip",
            "addr",
            "add",
            &format!("{PEER_ADDR}/24"),
            "dev",
            PEER_IF,
        ])?;
        let ifindex = xdp.ifindex(XDP_IF)?;
        let mac = xdp.mac(XDP_IF)?;
        let mut lab = VethLab {
            peer,
            xdp,
            plane: None,
            peer_plane: None,
            ifindex,
            mac,
        };
        if mode != XdpAttachMode::Skb {
            lab.peer_plane = Some(open_in(&lab.peer, PEER_IF, mode, "peer")?);
        }
        lab.plane = Some(open_in(&lab.xdp, XDP_IF, mode, "xdp")?);
        Ok(lab)
    }

    /// The data plane of the `xdp` namespace.
    pub fn plane(&mut self) -> Result<&mut DataPlane> {
        self.plane
            .as_mut()
            .ok_or_else(|| anyhow!("the data plane was shut down"))
    }

    /// A VIP on [`XDP_IF`].
    pub fn vip(&self, addr: Ipv4Addr) -> Vip {
        Vip::new(XDP_IF, self.ifindex, addr)
    }

    /// Shuts the data planes down (detach + unpin), reporting errors.
    pub fn shutdown(&mut self) -> Result<()> {
        let mut first_err = None;
        for plane in [self.plane.take(), self.peer_plane.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = plane.shutdown() {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl Drop for VethLab {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "lab data plane shutdown failed");
        }
    }
}

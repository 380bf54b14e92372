//! The XDP data plane: load, attach, pin, and drive the maps.
//!
//! [`DataPlane`] loads the embedded XDP program (`wackamole-ebpf`), attaches it
//! to the interfaces that carry VIPs and pins its maps and links under
//! `<bpffs>/wackamole/<instance>`, so the lease fence keeps working after the
//! agent dies. A second start reuses the pinned maps and atomically swaps the
//! new program into the pinned links; [`DataPlane::shutdown`] detaches and
//! unpins everything.
//!
//! The daemon drives it through the [`VipTable`] trait (mockable in tests).

mod conflicts;
mod error;
pub mod frames;
mod plane;
mod sys;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use wackamole_common::VipKey;

pub use conflicts::{AsyncConflictReader, ConflictReader};
pub use error::{BoxError, DataPlaneError, Result};
pub use plane::{DataPlane, LeaseMap, OwnOptions};
pub use sys::{ifindex, monotonic_now};
pub use wackamole_common::{ConflictEvent, VipCounters};

/// A virtual IP address (either family) on one interface.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vip {
    /// Interface name (for messages and attaching).
    pub iface: String,
    /// Interface index (the map key).
    pub ifindex: u32,
    pub addr: IpAddr,
}

impl Vip {
    /// A VIP on an interface whose index is already known.
    pub fn new(iface: impl Into<String>, ifindex: u32, addr: impl Into<IpAddr>) -> Self {
        Vip {
            iface: iface.into(),
            ifindex,
            addr: addr.into(),
        }
    }

    /// A VIP on `iface`, looked up in the calling thread's network namespace.
    pub fn resolve(iface: &str, addr: impl Into<IpAddr>) -> Result<Self> {
        let ifindex = sys::ifindex(iface).map_err(|e| DataPlaneError::Interface {
            iface: iface.to_string(),
            action: "looking up its index",
            cause: error::boxed(e),
        })?;
        Ok(Vip::new(iface, ifindex, addr))
    }

    /// The key of this VIP in the XDP maps.
    pub fn key(&self) -> VipKey {
        match self.addr {
            IpAddr::V4(a) => VipKey::ipv4(self.ifindex, a.octets()),
            IpAddr::V6(a) => VipKey::ipv6(self.ifindex, a.octets()),
        }
    }

    /// The address if it is IPv4.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} (ifindex {})",
            self.addr, self.iface, self.ifindex
        )
    }
}

/// How to attach the XDP program to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttachMode {
    /// Native (driver) mode, falling back to SKB mode with a warning.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Skb,
}

/// An interface the XDP program is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedInterface {
    pub ifindex: u32,
    pub iface: String,
    /// `Native` or `Skb` as attached by this process; `None` for a link
    /// adopted from an earlier run (it keeps the mode it was created with).
    pub mode: Option<XdpAttachMode>,
}

/// Where and how to open the data plane.
#[derive(Clone, Debug)]
pub struct DataPlaneOptions {
    /// Mount point of the bpf filesystem (mounted there if it is not yet).
    pub bpffs: PathBuf,
    /// Names this agent's pin directory `<bpffs>/wackamole/<instance>`.
    pub instance: String,
    /// Attach mode for every interface.
    pub mode: XdpAttachMode,
    /// Interfaces to attach at once (others are attached on first `own`).
    pub interfaces: Vec<String>,
    /// Lets the XDP program log at debug level (per packet: diagnosis only).
    pub ebpf_debug_log: bool,
    /// Start even when the bpffs is private to this process's mount namespace
    /// (e.g. under `ip netns exec`, which remounts /sys): the pins, the XDP
    /// links and the lease fence then die with the agent, so a killed agent
    /// leaves its addresses to the kernel. Off by default: such a start is
    /// refused with an error that names the fix.
    pub allow_private_bpffs: bool,
}

impl DataPlaneOptions {
    /// Defaults: `/sys/fs/bpf`, auto mode, no interfaces up front, no XDP logging.
    pub fn new(instance: impl Into<String>) -> Self {
        DataPlaneOptions {
            bpffs: PathBuf::from("/sys/fs/bpf"),
            instance: instance.into(),
            mode: XdpAttachMode::Auto,
            interfaces: Vec::new(),
            ebpf_debug_log: false,
            allow_private_bpffs: false,
        }
    }

    /// `<bpffs>/wackamole/<instance>`.
    pub fn pin_dir(&self) -> PathBuf {
        self.bpffs.join("wackamole").join(&self.instance)
    }
}

/// State of a VIP in the XDP map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VipState {
    /// ARP / NS answered from XDP, traffic let through.
    Owned,
    /// ARP, NS and traffic dropped.
    Releasing,
    /// Handing over: ARP and NS dropped, traffic let through.
    Yielding,
    /// A state this agent does not know (written by another version).
    Other(u32),
}

impl VipState {
    pub(crate) fn from_raw(raw: u32) -> Self {
        match raw {
            wackamole_common::vip_state::OWNED => VipState::Owned,
            wackamole_common::vip_state::RELEASING => VipState::Releasing,
            wackamole_common::vip_state::YIELDING => VipState::Yielding,
            other => VipState::Other(other),
        }
    }
}

/// One entry of the VIP map, as listed by [`DataPlane::entries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipRecord {
    /// The VIP (interface name resolved in the calling thread's namespace,
    /// `#<ifindex>` when unknown there).
    pub vip: Vip,
    pub state: VipState,
    /// MAC the XDP program answers with.
    pub mac: [u8; 6],
    /// Neighbour advertisements carry the Router flag.
    pub nd_router: bool,
}

/// The global action counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ActionCounters {
    /// Frames passed to the kernel.
    pub pass: u64,
    /// ARP replies sent from XDP.
    pub arp_reply: u64,
    /// Frames dropped for a releasing VIP.
    pub drop_releasing: u64,
    /// Frames dropped because the lease had lapsed.
    pub drop_fenced: u64,
    /// ARP packets or NAs claiming an owned VIP from another MAC.
    pub conflict: u64,
    /// Neighbour advertisements sent from XDP.
    pub na_reply: u64,
    /// ARP requests / solicitations dropped for a yielding VIP.
    pub drop_yielding: u64,
}

/// What the daemon needs from the data plane; mock it in tests.
pub trait VipTable {
    /// Answer ARP / NS for `vip` and let its traffic through.
    fn own(&mut self, vip: &Vip) -> Result<()>;
    /// [`VipTable::own`], with the Router flag set (`router`) or clear in
    /// the neighbour advertisements for an IPv6 `vip`. Tables that do not
    /// answer solicitations ignore the flag.
    fn own_router(&mut self, vip: &Vip, router: bool) -> Result<()> {
        let _ = router;
        self.own(vip)
    }
    /// Silence `vip`: drop ARP requests, solicitations and traffic for it.
    fn release(&mut self, vip: &Vip) -> Result<()>;
    /// Hand `vip` over (make-before-break): stop answering ARP / NS for it
    /// (and keep the kernel from answering) but keep accepting its traffic.
    /// Tables without hand-over support refuse.
    fn yield_vip(&mut self, vip: &Vip) -> Result<()> {
        Err(DataPlaneError::Vip {
            vip: vip.to_string(),
            action: "yielding it",
            cause: "this VIP table does not support hand-over".into(),
        })
    }
    /// Remove `vip` (and its counters): the kernel handles it normally again.
    fn forget(&mut self, vip: &Vip) -> Result<()>;
    /// Extend the lease by `validity` from now; `None` disables the fence.
    fn renew_lease(&mut self, validity: Option<Duration>) -> Result<()>;
    /// Packets, bytes, ARP replies and drops counted for `vip`.
    fn counters(&self, vip: &Vip) -> Result<VipCounters>;
}

impl VipTable for DataPlane {
    fn own(&mut self, vip: &Vip) -> Result<()> {
        DataPlane::own(self, vip)
    }
    fn own_router(&mut self, vip: &Vip, router: bool) -> Result<()> {
        DataPlane::own_with(
            self,
            vip,
            OwnOptions {
                mac: None,
                nd_router: router,
            },
        )
    }
    fn release(&mut self, vip: &Vip) -> Result<()> {
        DataPlane::release(self, vip)
    }
    fn yield_vip(&mut self, vip: &Vip) -> Result<()> {
        DataPlane::yield_vip(self, vip)
    }
    fn forget(&mut self, vip: &Vip) -> Result<()> {
        DataPlane::forget(self, vip)
    }
    fn renew_lease(&mut self, validity: Option<Duration>) -> Result<()> {
        DataPlane::renew_lease(self, validity)
    }
    fn counters(&self, vip: &Vip) -> Result<VipCounters> {
        DataPlane::counters(self, vip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn vip_key_and_display() {
        let v = Vip::new("eth0", 3, Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(v.key(), VipKey::ipv4(3, [192, 0, 2, 7]));
        assert_eq!(v.to_string(), "192.0.2.7 on eth0 (ifindex 3)");
        assert_eq!(v.ipv4(), Some(Ipv4Addr::new(192, 0, 2, 7)));
        let a: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let v6 = Vip::new("eth0", 3, a);
        assert_eq!(v6.key(), VipKey::ipv6(3, a.octets()));
        assert_eq!(v6.ipv4(), None);
        assert_eq!(v6.to_string(), "2001:db8::7 on eth0 (ifindex 3)");
    }

    #[test]
    fn resolve_names_the_interface_on_error() {
        let err = Vip::resolve("nosuchif9", Ipv4Addr::new(192, 0, 2, 1)).unwrap_err();
        assert!(err.to_string().contains("nosuchif9"), "{err}");
        let lo = Vip::resolve("lo", Ipv4Addr::new(192, 0, 2, 1)).unwrap();
        assert!(lo.ifindex > 0);
    }

    #[test]
    fn pin_dir_and_states() {
        let o = DataPlaneOptions::new("a1");
        assert_eq!(o.pin_dir(), PathBuf::from("/sys/fs/bpf/wackamole/a1"));
        assert_eq!(VipState::from_raw(1), VipState::Owned);
        assert_eq!(VipState::from_raw(2), VipState::Releasing);
        assert_eq!(VipState::from_raw(3), VipState::Yielding);
        assert_eq!(VipState::from_raw(9), VipState::Other(9));
    }

    #[test]
    fn attach_mode_parses() {
        #[derive(serde::Deserialize)]
        struct C {
            m: XdpAttachMode,
        }
        let c: C = toml::from_str("m = \"skb\"").unwrap();
        assert_eq!(c.m, XdpAttachMode::Skb);
        assert!(toml::from_str::<C>("m = \"fast\"").is_err());
    }
}

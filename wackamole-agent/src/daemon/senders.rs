//! The packet sockets that announcements send on: one per interface and
//! family, opened on first use and kept for the agent's life.
//!
//! Closing an AF_PACKET socket waits for an RCU grace period
//! (`packet_release` calls `synchronize_rcu`): 10-40 ms each on a loaded
//! host. The agent runs on one thread, so a socket opened and closed per
//! announced VIF blocked its loop that long per VIF: with 11 VIFs moving
//! (64 VIPs, a drain) the survivors' loops stalled 70-180 ms, past the
//! fencing lease (55 ms), and their own VIPs went dark. Kept sockets cost
//! one descriptor per interface.

use crate::net::arp::ArpSender;
use crate::net::nd::NdSender;
use crate::net::NetResult;
use std::collections::HashMap;
use std::sync::Arc;

/// A transmit-only packet socket bound to one interface by index.
pub trait PacketSender: Sized + Send + Sync + 'static {
    fn open(iface: &str) -> NetResult<Self>;
    /// Whether `iface` still names the socket's interface.
    fn still_names(&self, iface: &str) -> bool;
}

impl PacketSender for ArpSender {
    fn open(iface: &str) -> NetResult<Self> {
        ArpSender::open(iface)
    }
    fn still_names(&self, iface: &str) -> bool {
        ArpSender::still_names(self, iface)
    }
}

impl PacketSender for NdSender {
    fn open(iface: &str) -> NetResult<Self> {
        NdSender::open(iface)
    }
    fn still_names(&self, iface: &str) -> bool {
        NdSender::still_names(self, iface)
    }
}

/// The kept sockets of one family, by interface name.
#[derive(Debug)]
pub struct SenderCache<S>(HashMap<String, Arc<S>>);

impl<S> Default for SenderCache<S> {
    fn default() -> Self {
        SenderCache(HashMap::new())
    }
}

impl<S: PacketSender> SenderCache<S> {
    /// The socket for `iface`: the kept one while the name still names the
    /// same interface (a deleted and re-created interface has a new index,
    /// and the old socket sends nowhere), else a fresh one. Asked once per
    /// announced VIF: the check is one ioctl on the kept socket (a socket
    /// opened and closed per check, `if_nametoindex`, cost a takeover of
    /// 167 VIFs ~6 ms on the test host).
    pub fn get(&mut self, iface: &str) -> NetResult<Arc<S>> {
        if let Some(kept) = self.0.get(iface) {
            if kept.still_names(iface) {
                return Ok(kept.clone());
            }
        }
        if let Some(stale) = self.0.remove(iface) {
            retire(stale);
        }
        let fresh = Arc::new(S::open(iface)?);
        self.0.insert(iface.to_string(), fresh.clone());
        Ok(fresh)
    }

    /// How many sockets are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Closes a socket off the agent's thread (see the module comment). An
/// announcement still sending on it holds a reference and closes it itself
/// when done; that is rare (the interface was re-created).
fn retire<S: Send + Sync + 'static>(socket: Arc<S>) {
    // If no thread can be started the closure, and the socket, drop here.
    let _ = std::thread::Builder::new()
        .name("close-socket".into())
        .spawn(move || drop(socket));
}

/// The kept sockets of both families.
#[derive(Debug, Default)]
pub struct Senders {
    pub arp: SenderCache<ArpSender>,
    pub nd: SenderCache<NdSender>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs root (CAP_NET_RAW for a packet socket)"]
    fn loopback_sockets_are_opened_once_and_kept() {
        let mut senders = Senders::default();
        let first = senders.arp.get("lo").expect("a packet socket on lo");
        let again = senders.arp.get("lo").expect("the kept socket");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(senders.arp.len(), 1);
        let nd = senders.nd.get("lo").expect("an ND socket on lo");
        assert!(Arc::ptr_eq(&nd, &senders.nd.get("lo").expect("kept")));
        // The kept socket's own check: lo is lo, another name is not.
        assert!(first.still_names("lo") && nd.still_names("lo"));
        assert!(!first.still_names("nosuchif9") && !nd.still_names("nosuchif9"));
        assert!(!first.still_names("") && !first.still_names("a-name-far-too-long"));
    }

    #[test]
    fn a_missing_interface_is_an_error_naming_it_and_nothing_is_kept() {
        let mut senders = Senders::default();
        let err = senders.arp.get("nosuchif9").expect_err("no such interface");
        assert!(err.to_string().contains("nosuchif9"), "{err}");
        assert!(senders.arp.is_empty());
    }
}

//! Standby addresses (`xdp.standby_addresses`): every node keeps every
//! VIF's addresses in the kernel, XDP silent for those it does not hold
//! (their ARP requests, solicitations and traffic dropped before the kernel
//! sees them). A takeover is then XDP updates and announcements: no address
//! is added on the critical path, so the failover time no longer grows with
//! the pool (each address change takes the kernel's one global RTNL lock).
//!
//! The rules: an address is added only behind an XDP entry that silences it
//! (else the kernel would answer ARP for it); a released VIF keeps its
//! addresses and its silencing entry (never forgotten while the addresses
//! are in); the addresses go at shutdown, before the program is detached.

use super::agent::Agent;
use super::host::Host;
use super::vifs;
use std::collections::BTreeSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

impl<H: Host> Agent<H> {
    /// Whether this node keeps standby addresses.
    pub(super) fn standby(&self) -> bool {
        self.cfg.xdp.standby_addresses
    }

    /// Plumbs the addresses of every VIF this node neither holds (yielding
    /// included) nor still serves (lingering) and whose addresses are not known to be
    /// in, each silenced in XDP first. At start, and from housekeeping for
    /// those that failed.
    pub(super) async fn plumb_standby(&mut self) {
        if !self.standby() {
            return;
        }
        let mut busy: BTreeSet<usize> = self.alloc.held().map(|h| h.0 as usize).collect();
        busy.extend(self.lingering.keys().copied());
        let wanted: Vec<usize> = (0..self.vifs.len())
            .filter(|i| !self.plumbed.contains(i) && !busy.contains(i))
            .collect();
        if wanted.is_empty() {
            return;
        }
        // As after a large decision: the requests' memory goes back.
        if wanted.len() >= super::agent::TRIM_AFTER_VIFS {
            self.trim_heap_at = Some(Instant::now() + super::agent::TRIM_DELAY);
        }
        let mut silenced = Vec::new();
        for i in wanted {
            match vifs::silence(self.host.parts().0, &self.vifs[i]) {
                Ok(()) => silenced.push(i),
                Err(e) => error!("standby addresses: {e:#}; retrying"),
            }
        }
        let (_, addresses) = self.host.parts();
        let done = vifs::plumb_many(
            addresses,
            silenced
                .iter()
                .filter_map(|&i| Some((i, self.vifs.get(i)?))),
        )
        .await;
        let mut plumbed = 0usize;
        for (i, result) in done {
            match result {
                Ok(_) => {
                    self.plumbed.insert(i);
                    plumbed += 1;
                }
                Err(e) => error!("standby addresses: {e:#}; retrying"),
            }
        }
        if plumbed > 0 {
            info!(
                vifs = plumbed,
                "standby addresses in, silent in XDP until this node holds them"
            );
        }
    }

    /// Removes every VIF's addresses (all silenced by now): the data plane
    /// is about to go, and the kernel would answer ARP for what is left.
    pub(super) async fn unplumb_standby(&mut self) {
        if !self.standby() {
            return;
        }
        let (_, addresses) = self.host.parts();
        let done = vifs::unplumb_many(addresses, self.vifs.iter().enumerate()).await;
        let mut failed = 0usize;
        for (i, result) in done {
            match result {
                Ok(_) => {
                    self.plumbed.remove(&i);
                }
                Err(e) => {
                    failed += 1;
                    warn!("removing standby addresses: {e:#}");
                }
            }
        }
        info!(failed, "standby addresses removed");
    }
}

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
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How often a node with standby addresses checks that every VIF's
/// addresses are still in.
pub const STANDBY_CHECK_EVERY: Duration = Duration::from_secs(10);

/// How often a node without standby addresses checks that the addresses of
/// the VIFs it holds are still in: each check dumps the interfaces'
/// addresses, and at 4000 VIPs every 10 s that showed in the idle CPU
/// (0.4-0.5 % against 0.2-0.3 %).
pub const HELD_CHECK_EVERY: Duration = Duration::from_secs(30);

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

    /// Every [`STANDBY_CHECK_EVERY`] ([`HELD_CHECK_EVERY`] without standby
    /// addresses), finds the VIFs whose addresses went
    /// behind the agent's back (an operator's `ip addr flush`, another
    /// tool): XDP would go on answering ARP for an address the kernel then
    /// drops the traffic of. They are added again: a held one by the
    /// bring-up retry, the others (standby) by [`Agent::plumb_standby`].
    /// Without standby addresses only the held VIFs are checked (those
    /// answering, complete, not handed over).
    pub(super) async fn check_addresses(&mut self, now: Instant) {
        let every = match self.standby() {
            true => STANDBY_CHECK_EVERY,
            false => HELD_CHECK_EVERY,
        };
        if self.addresses_checked.is_some_and(|at| now < at + every) {
            return;
        }
        self.addresses_checked = Some(now);
        let held: BTreeSet<usize> = self.answering().iter().map(|h| h.0 as usize).collect();
        let expected: BTreeSet<usize> = match self.standby() {
            true => self.plumbed.clone(),
            false => held
                .iter()
                .copied()
                .filter(|i| !self.unplumbed.contains(i) && !self.deferred.contains(i))
                .collect(),
        };
        if expected.is_empty() {
            return;
        }
        // Not knowing is not "gone": nothing is re-added on a guess.
        let checked = expected.iter().filter_map(|&i| self.vifs.get(i));
        let (present, failed) = vifs::present_addresses(self.host.parts().1, checked).await;
        for (iface, e) in failed {
            warn!("address check: listing {iface}: {e:#}");
        }
        // The dumps of thousands of addresses leave their memory with
        // glibc: give it back now (housekeeping trims right after this).
        if expected.len() >= super::agent::TRIM_AFTER_VIFS {
            self.trim_heap_at.get_or_insert(now);
        }
        // Still expected: the dumps awaited, and the VIF may have moved.
        let still: BTreeSet<usize> = match self.standby() {
            true => self.plumbed.clone(),
            false => self.answering().iter().map(|h| h.0 as usize).collect(),
        };
        let gone: Vec<usize> = expected
            .intersection(&still)
            .copied()
            .filter(|&i| {
                self.vifs[i].addresses.iter().any(|a| {
                    present
                        .get(&a.vip.iface)
                        .is_some_and(|have| !have.contains(&a.vip.addr))
                })
            })
            .collect();
        for i in gone {
            warn!(vif = %self.vifs[i].name, "an address of this VIF went behind our back; adding it again");
            self.plumbed.remove(&i);
            if held.contains(&i) {
                self.unplumbed.insert(i);
            }
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

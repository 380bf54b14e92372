//! The cluster's shared ARP cache: every member multicasts its neighbours of
//! the VIP interfaces; a VIF arriving here is announced to all of them.
//!
//! What a peer shares is bounded here: only members in good standing are
//! heard (a foreign process in the group, or a member whose VIF list is not
//! the group's, could otherwise point our unicast replies anywhere), only
//! when `notify.arp_cache` is on, at most [`CACHE_MAX`] entries, each
//! forgotten [`CACHE_AGE_PERIODS`] share periods after it was last shared,
//! and a VIF tells only the neighbours inside one of its addresses' prefixes.

use super::agent::Agent;
use super::host::Host;
use super::messages::GroupMessage;
use crate::membership::{MemberId, Outgoing};
use crate::net::neigh::NeighShare;
use crate::net::Ipv4Prefix;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Most neighbours the merged cache holds (one share's limit): beyond it new
/// addresses are dropped until old ones age out.
pub const CACHE_MAX: usize = crate::net::neigh::NEIGH_SHARE_MAX;

/// An entry not shared again for this many share periods is forgotten (a
/// neighbour gone from every member's table, or a member gone).
pub const CACHE_AGE_PERIODS: u32 = 3;

/// Unicast replies to the shared cache's neighbours, per second and
/// interface: a thousand neighbours take a second, not one burst.
pub const CACHE_REPLY_PPS: u32 = 1000;

/// The merged shared cache: pure state, no I/O.
#[derive(Debug, Default)]
pub struct SharedCache {
    entries: HashMap<Ipv4Addr, ([u8; 6], Instant)>,
    /// Addresses dropped at the cap since the last warning.
    dropped: usize,
}

impl SharedCache {
    /// Merges `pairs` seen at `now`, leaving out `ours`; returns how many
    /// new addresses were dropped at [`CACHE_MAX`].
    pub fn merge(
        &mut self,
        pairs: &[(Ipv4Addr, [u8; 6])],
        ours: &BTreeSet<Ipv4Addr>,
        now: Instant,
    ) -> usize {
        let mut dropped = 0;
        for &(ip, mac) in pairs {
            if ours.contains(&ip) || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                continue;
            }
            if self.entries.len() >= CACHE_MAX && !self.entries.contains_key(&ip) {
                dropped += 1;
                continue;
            }
            self.entries.insert(ip, (mac, now));
        }
        self.dropped += dropped;
        dropped
    }

    /// Forgets entries last shared before `now - max_age`.
    pub fn expire(&mut self, now: Instant, max_age: Duration) {
        self.entries
            .retain(|_, (_, seen)| now.saturating_duration_since(*seen) <= max_age);
    }

    /// The neighbours inside one of `prefixes`, sorted by address.
    pub fn within(&self, prefixes: &[Ipv4Prefix]) -> Vec<(Ipv4Addr, [u8; 6])> {
        let mut out: Vec<(Ipv4Addr, [u8; 6])> = self
            .entries
            .iter()
            .filter(|(ip, _)| prefixes.iter().any(|p| p.contains(**ip)))
            .map(|(ip, (mac, _))| (*ip, *mac))
            .collect();
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg_attr(not(test), allow(dead_code))] // goes with `len`
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops counted since the last call (for a warning at most per share).
    pub fn take_dropped(&mut self) -> usize {
        std::mem::take(&mut self.dropped)
    }
}

/// How long an entry lives without being shared again.
pub fn max_age(share_every: Duration) -> Duration {
    share_every * CACHE_AGE_PERIODS
}

impl<H: Host> Agent<H> {
    /// Multicasts this host's neighbours on the VIP interfaces.
    pub(super) async fn share_arp_cache(&mut self) {
        if !self.cfg.notify.arp_cache || !self.engine_up {
            return;
        }
        let every = self
            .cfg
            .notify
            .arp_cache_interval
            .max(Duration::from_secs(1));
        self.arp_cache.expire(Instant::now(), max_age(every));
        let dropped = self.arp_cache.take_dropped();
        if dropped > 0 {
            warn!(
                dropped,
                limit = CACHE_MAX,
                "ARP cache: full; neighbours shared by members were left out"
            );
        }
        let ifaces: BTreeSet<String> = self
            .vifs
            .iter()
            .flat_map(|v| v.addresses.iter().map(|a| a.vip.iface.clone()))
            .collect();
        let mut pairs = Vec::new();
        for iface in ifaces {
            match self.host.neighbours(&iface).await {
                Ok(list) => pairs.extend(list),
                Err(e) => warn!("ARP cache: reading neighbours of {iface}: {e:#}"),
            }
        }
        if pairs.is_empty() {
            return;
        }
        let bytes = GroupMessage::Neighbours(NeighShare::from_pairs(&pairs)).encode();
        self.send(Outgoing::Send(bytes)).await;
    }

    /// Merges a member's share, leaving out our own VIPs; only when the
    /// cache is on and from a member in good standing.
    pub(super) fn merge_arp_cache(&mut self, sender: &MemberId, share: NeighShare) {
        if !self.cfg.notify.arp_cache {
            debug!("ARP cache: off; ignoring the share from {sender}");
            return;
        }
        let standing = self
            .alloc
            .table()
            .members
            .iter()
            .any(|m| m.member == *sender && m.config_ok && m.state_received);
        if !standing {
            warn!("ARP cache: ignoring a share from {sender}, not a member in good standing");
            return;
        }
        let ours: BTreeSet<Ipv4Addr> = self
            .vifs
            .iter()
            .flat_map(|v| v.addresses.iter().filter_map(|a| a.vip.ipv4()))
            .collect();
        self.arp_cache.merge(&share.pairs(), &ours, Instant::now());
        debug!(
            entries = self.arp_cache.len(),
            "ARP cache: merged the share from {sender}"
        );
    }

    /// The shared cache's neighbours VIF `i` may tell: those inside one of
    /// its IPv4 addresses' prefixes (reachable from where it answers).
    pub(super) fn cache_for(&self, i: usize) -> Vec<(Ipv4Addr, [u8; 6])> {
        if !self.cfg.notify.arp_cache {
            return Vec::new();
        }
        let Some(vif) = self.vifs.get(i) else {
            return Vec::new();
        };
        let prefixes: Vec<Ipv4Prefix> = vif
            .addresses
            .iter()
            .filter_map(|a| Ipv4Prefix::new(a.vip.ipv4()?, a.prefix))
            .collect();
        self.arp_cache.within(&prefixes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, d)
    }

    #[tokio::test(start_paused = true)]
    async fn entries_age_out_unless_shared_again() {
        let mut c = SharedCache::default();
        let t0 = Instant::now();
        c.merge(&[(ip(1), [2; 6]), (ip(2), [3; 6])], &BTreeSet::new(), t0);
        let later = t0 + Duration::from_secs(20);
        c.merge(&[(ip(2), [4; 6])], &BTreeSet::new(), later);
        c.expire(later + Duration::from_secs(5), Duration::from_secs(10));
        assert_eq!(
            c.within(&[Ipv4Prefix::new(ip(0), 24).unwrap()]),
            [(ip(2), [4; 6])]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_capped_and_leaves_out_our_vips_and_non_unicast() {
        let mut c = SharedCache::default();
        let now = Instant::now();
        let ours: BTreeSet<Ipv4Addr> = [ip(9)].into();
        let junk = [
            (ip(9), [1; 6]),
            (Ipv4Addr::UNSPECIFIED, [1; 6]),
            (Ipv4Addr::BROADCAST, [1; 6]),
            (Ipv4Addr::new(224, 0, 0, 1), [1; 6]),
        ];
        assert_eq!(c.merge(&junk, &ours, now), 0);
        assert!(c.is_empty());
        let many: Vec<(Ipv4Addr, [u8; 6])> = (0..CACHE_MAX as u32 + 10)
            .map(|n| (Ipv4Addr::from(0x0a00_0000 + n + 1), [5; 6]))
            .collect();
        assert_eq!(c.merge(&many, &ours, now), 10);
        assert_eq!(c.len(), CACHE_MAX);
        assert_eq!(c.take_dropped(), 10);
        assert_eq!(c.take_dropped(), 0);
        // A known address is still refreshed when full.
        assert_eq!(c.merge(&many[..1], &ours, now), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_vif_tells_only_the_neighbours_inside_its_prefixes() {
        let mut c = SharedCache::default();
        let near = (ip(7), [7; 6]);
        let far = (Ipv4Addr::new(198, 51, 100, 7), [8; 6]);
        c.merge(&[near, far], &BTreeSet::new(), Instant::now());
        assert_eq!(c.within(&[Ipv4Prefix::new(ip(50), 24).unwrap()]), [near]);
        assert_eq!(c.within(&[Ipv4Prefix::new(ip(50), 32).unwrap()]), []);
        assert_eq!(c.within(&[]), []);
    }
}

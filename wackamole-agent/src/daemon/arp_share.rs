//! The cluster's shared ARP cache: every member multicasts its neighbours of
//! the VIP interfaces; a VIF arriving here is announced to all of them (ARP
//! replies to the IPv4 ones, neighbour advertisements to the IPv6 ones).
//!
//! What a peer shares is bounded here: only members in good standing are
//! heard (a foreign process in the group, or a member whose VIF list is not
//! the group's, could otherwise point our unicast replies anywhere), only
//! when `notify.arp_cache` is on, at most [`CACHE_MAX`] entries of both
//! families together, each forgotten [`CACHE_AGE_PERIODS`] share periods
//! after it was last shared, and a VIF tells only the neighbours inside one
//! of its own addresses' prefixes (of the same family).
//!
//! IPv6 neighbours are shared only in views whose group speaks
//! [`wire::NEIGH6_VERSION`] (an older member would refuse the share). Their
//! link-local (fe80::/10) neighbours are left out: such an address names a
//! host only on one link, and is never inside a VIP's prefix anyway; routers
//! known only by a link-local address are told by the all-nodes burst or an
//! IPv6 notify range.

use super::agent::Agent;
use super::host::Host;
use super::messages::GroupMessage;
use crate::alloc::wire;
use crate::membership::{MemberId, Outgoing};
use crate::net::nd::Ipv6Prefix;
use crate::net::neigh::NeighShare;
use crate::net::Ipv4Prefix;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    /// Both families: the cap counts them together.
    entries: HashMap<IpAddr, ([u8; 6], Instant)>,
    /// Addresses dropped at the cap since the last warning.
    dropped: usize,
}

/// An IPv6 neighbour worth sharing and telling: a unicast address that
/// names a host beyond one link (not unspecified, loopback, multicast or
/// link-local).
pub fn shareable6(ip: &Ipv6Addr) -> bool {
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.segments()[0] & 0xffc0 == 0xfe80)
}

impl SharedCache {
    /// Merges IPv4 `pairs` seen at `now`, leaving out `ours`; returns how
    /// many new addresses were dropped at [`CACHE_MAX`].
    pub fn merge(
        &mut self,
        pairs: &[(Ipv4Addr, [u8; 6])],
        ours: &BTreeSet<Ipv4Addr>,
        now: Instant,
    ) -> usize {
        let ok = pairs.iter().filter(|(ip, _)| {
            !(ours.contains(ip) || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
        });
        self.insert(ok.map(|&(ip, mac)| (IpAddr::V4(ip), mac)), now)
    }

    /// Merges IPv6 `pairs` by the same rules (leaving out `ours` and what
    /// is not [`shareable6`]); returns how many were dropped at the cap.
    pub fn merge6(
        &mut self,
        pairs: &[(Ipv6Addr, [u8; 6])],
        ours: &BTreeSet<Ipv6Addr>,
        now: Instant,
    ) -> usize {
        let ok = pairs
            .iter()
            .filter(|(ip, _)| !ours.contains(ip) && shareable6(ip));
        self.insert(ok.map(|&(ip, mac)| (IpAddr::V6(ip), mac)), now)
    }

    fn insert(&mut self, pairs: impl Iterator<Item = (IpAddr, [u8; 6])>, now: Instant) -> usize {
        let mut dropped = 0;
        for (ip, mac) in pairs {
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

    /// The IPv4 neighbours inside one of `prefixes`, sorted by address.
    pub fn within(&self, prefixes: &[Ipv4Prefix]) -> Vec<(Ipv4Addr, [u8; 6])> {
        self.sorted(|ip| match ip {
            IpAddr::V4(ip) if prefixes.iter().any(|p| p.contains(ip)) => Some(ip),
            _ => None,
        })
    }

    /// The IPv6 neighbours inside one of `prefixes`, sorted by address.
    pub fn within6(&self, prefixes: &[Ipv6Prefix]) -> Vec<(Ipv6Addr, [u8; 6])> {
        self.sorted(|ip| match ip {
            IpAddr::V6(ip) if prefixes.iter().any(|p| p.contains(ip)) => Some(ip),
            _ => None,
        })
    }

    /// The entries `pick` keeps (as its address type), sorted by address.
    fn sorted<A: Ord>(&self, pick: impl Fn(IpAddr) -> Option<A>) -> Vec<(A, [u8; 6])> {
        let mut out: Vec<(A, [u8; 6])> = self
            .entries
            .iter()
            .filter_map(|(ip, (mac, _))| Some((pick(*ip)?, *mac)))
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

/// The share to multicast: the IPv6 neighbours only if the group speaks
/// [`wire::NEIGH6_VERSION`] (`None`: exchange not complete, so not known),
/// else an IPv4-only share that every version reads.
pub fn share_for(
    pairs: &[(Ipv4Addr, [u8; 6])],
    pairs6: &[(Ipv6Addr, [u8; 6])],
    group_version: Option<u8>,
) -> NeighShare {
    if group_version.is_some_and(|v| v >= wire::NEIGH6_VERSION) {
        let pairs6: Vec<_> = pairs6
            .iter()
            .copied()
            .filter(|(ip, _)| shareable6(ip))
            .collect();
        NeighShare::from_pairs46(pairs, &pairs6)
    } else {
        NeighShare::from_pairs(pairs)
    }
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
        let group_version = self.alloc.group_version();
        let v6 = group_version.is_some_and(|v| v >= wire::NEIGH6_VERSION);
        let (mut pairs, mut pairs6) = (Vec::new(), Vec::new());
        for iface in ifaces {
            match self.host.neighbours(&iface).await {
                Ok(list) => pairs.extend(list),
                Err(e) => warn!("ARP cache: reading neighbours of {iface}: {e:#}"),
            }
            if v6 {
                match self.host.neighbours6(&iface).await {
                    Ok(list) => pairs6.extend(list),
                    Err(e) => warn!("ARP cache: reading IPv6 neighbours of {iface}: {e:#}"),
                }
            }
        }
        let share = share_for(&pairs, &pairs6, group_version);
        if share.entries.is_empty() && share.entries6.is_empty() {
            return;
        }
        let bytes = GroupMessage::Neighbours(share).encode();
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
        let ours6: BTreeSet<Ipv6Addr> = self
            .vifs
            .iter()
            .flat_map(|v| v.addresses.iter())
            .filter_map(|a| match a.vip.addr {
                IpAddr::V6(ip) => Some(ip),
                IpAddr::V4(_) => None,
            })
            .collect();
        let now = Instant::now();
        self.arp_cache.merge(&share.pairs(), &ours, now);
        self.arp_cache.merge6(&share.pairs6(), &ours6, now);
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

    /// The shared cache's IPv6 neighbours VIF `i` may tell: those inside one
    /// of its IPv6 addresses' prefixes.
    pub(super) fn cache6_for(&self, i: usize) -> Vec<(Ipv6Addr, [u8; 6])> {
        if !self.cfg.notify.arp_cache {
            return Vec::new();
        }
        let Some(vif) = self.vifs.get(i) else {
            return Vec::new();
        };
        let prefixes: Vec<Ipv6Prefix> = vif
            .addresses
            .iter()
            .filter_map(|a| match a.vip.addr {
                IpAddr::V6(ip) => Ipv6Prefix::new(ip, a.prefix),
                IpAddr::V4(_) => None,
            })
            .collect();
        self.arp_cache.within6(&prefixes)
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

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn p6(s: &str, len: u8) -> Ipv6Prefix {
        Ipv6Prefix::new(ip6(s), len).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_entries_reach_only_their_prefixes_and_leave_out_link_local_and_ours() {
        let mut c = SharedCache::default();
        let near = (ip6("2001:db8::7"), [7; 6]);
        let far = (ip6("2001:db8:1::7"), [8; 6]);
        let ours: BTreeSet<Ipv6Addr> = [ip6("2001:db8::50")].into();
        let junk = [
            (ip6("2001:db8::50"), [1; 6]),
            (Ipv6Addr::UNSPECIFIED, [1; 6]),
            (Ipv6Addr::LOCALHOST, [1; 6]),
            (ip6("ff02::1"), [1; 6]),
            (ip6("fe80::1"), [1; 6]),
        ];
        assert_eq!(c.merge6(&junk, &ours, Instant::now()), 0);
        assert!(c.is_empty());
        c.merge6(&[near, far], &ours, Instant::now());
        c.merge(&[(ip(7), [9; 6])], &BTreeSet::new(), Instant::now());
        assert_eq!(c.within6(&[p6("2001:db8::", 64)]), [near]);
        assert_eq!(c.within6(&[p6("2001:db8::", 32)]), [near, far]);
        assert_eq!(c.within6(&[p6("2001:db8::50", 128)]), []);
        // The families do not mix: an IPv4 prefix tells no IPv6 neighbour.
        assert_eq!(
            c.within(&[Ipv4Prefix::new(ip(0), 0).unwrap()]),
            [(ip(7), [9; 6])]
        );
        assert_eq!(c.within6(&[p6("::", 0)]).len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_entries_age_out_and_share_the_cap_with_ipv4() {
        let mut c = SharedCache::default();
        let t0 = Instant::now();
        let half: Vec<(Ipv4Addr, [u8; 6])> = (0..CACHE_MAX as u32 / 2)
            .map(|n| (Ipv4Addr::from(0x0a00_0000 + n + 1), [5; 6]))
            .collect();
        c.merge(&half, &BTreeSet::new(), t0);
        let many6: Vec<(Ipv6Addr, [u8; 6])> = (0..CACHE_MAX as u128 / 2 + 10)
            .map(|n| (Ipv6Addr::from((0x2001_0db8u128 << 96) + n + 1), [6; 6]))
            .collect();
        assert_eq!(c.merge6(&many6, &BTreeSet::new(), t0), 10);
        assert_eq!(c.len(), CACHE_MAX);
        assert_eq!(c.take_dropped(), 10);
        // A known IPv6 address is refreshed when full, and outlives the rest.
        let later = t0 + Duration::from_secs(20);
        assert_eq!(c.merge6(&many6[..1], &BTreeSet::new(), later), 0);
        c.expire(later + Duration::from_secs(5), Duration::from_secs(10));
        assert_eq!(c.within6(&[p6("2001:db8::", 32)]), [many6[0]]);
        assert_eq!(c.len(), 1);
    }

    /// A group speaking an older version never gets IPv6 entries: the share
    /// is the IPv4-only version 1 an older build reads.
    #[test]
    fn ipv6_neighbours_are_shared_only_with_a_group_speaking_version_3() {
        let v4 = [(ip(7), [7; 6])];
        let v6 = [(ip6("2001:db8::7"), [8; 6]), (ip6("fe80::7"), [9; 6])];
        for old in [None, Some(1), Some(2)] {
            let s = share_for(&v4, &v6, old);
            assert!(s.entries6.is_empty(), "{old:?}");
            let bytes = s.encode();
            assert_eq!(bytes[2], crate::net::neigh::NEIGH_SHARE_VERSION);
            assert_eq!(NeighShare::decode(&bytes).unwrap().pairs(), v4);
        }
        let s = share_for(&v4, &v6, Some(wire::NEIGH6_VERSION));
        assert_eq!((s.pairs(), s.pairs6()), (v4.to_vec(), v6[..1].to_vec()));
        // An IPv4-only share is version 1 in every group.
        assert_eq!(share_for(&v4, &[], Some(wire::VERSION)).encode()[2], 1);
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

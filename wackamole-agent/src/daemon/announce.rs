//! Announcements (gratuitous ARP, unsolicited neighbour advertisements and
//! notifications when a VIF arrives) and the answer to conflicts (another
//! host claiming a VIF we hold, by ARP or by neighbour advertisement).

use super::agent::Agent;
use super::host::{Announcement, Host};
use crate::alloc::VifIndex;
use crate::dataplane::ConflictEvent;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, warn};

/// At most one re-announcement per VIF this often in reaction to conflicts:
/// two holders answering each other's announcements would otherwise
/// multiply ARP frames without bound (a storm that starves the event loop).
pub const CONFLICT_HOLDOFF: Duration = Duration::from_secs(1);

/// How long a conflict waits before we announce ourselves again. A planned
/// move is one agreed message: the new owner may announce before this node
/// has processed that message and released the VIF, so its GARP looks like a
/// conflict here. Announcing at once would flip the clients back to this
/// node, which drops the VIF's traffic a moment later. Waiting lets the
/// release (which cancels the pending announcement) arrive first; a genuine
/// conflict is answered this much later, well inside [`CONFLICT_HOLDOFF`].
pub const CONFLICT_SETTLE: Duration = Duration::from_millis(100);

impl<H: Host> Agent<H> {
    /// Announces VIF `i` after `delay` (replacing an announcement of it still
    /// under way); [`Agent::release`] cancels it.
    pub(super) fn announce(&mut self, i: usize, delay: Duration) {
        let Some(vif) = self.vifs.get(i) else {
            return;
        };
        let mut addresses: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        let mut addresses6: BTreeMap<String, Vec<Ipv6Addr>> = BTreeMap::new();
        for a in &vif.addresses {
            let iface = a.vip.iface.clone();
            match a.vip.addr {
                IpAddr::V4(ip) => addresses.entry(iface).or_default().push(ip),
                IpAddr::V6(ip) => addresses6.entry(iface).or_default().push(ip),
            }
        }
        // A range is told about the VIF's addresses of its own family.
        let mut targets = Vec::new();
        let mut targets6 = Vec::new();
        for t in &self.cfg.notify.targets {
            let (iface, pps) = (t.range.iface.clone(), t.throttle.unwrap_or(0));
            match t.range.addr {
                IpAddr::V4(net) => targets.extend(
                    crate::net::Ipv4Prefix::new(net, t.range.prefix).map(|p| (iface, p, pps)),
                ),
                IpAddr::V6(net) => targets6.extend(
                    crate::net::nd::Ipv6Prefix::new(net, t.range.prefix).map(|p| (iface, p, pps)),
                ),
            }
        }
        let cache = self.cache_for(i);
        let cache6 = self.cache6_for(i);
        let a = Announcement {
            vif: vif.name.clone(),
            delay,
            addresses,
            addresses6,
            burst: crate::net::arp::Burst {
                count: self.cfg.announce.burst_count,
                spacing: self.cfg.announce.burst_spacing,
                form: crate::net::arp::GarpForm::Both,
            },
            nd_router: vif.nd_router,
            targets,
            targets6,
            cache,
            cache6,
        };
        // Every announcement completes what is owed for the VIF (one that
        // replaces an owed one must not leave it waiting).
        match self.announcing.begin(i) {
            Some(done) => self.host.announce(i, a, done),
            None => error!(
                "announcing VIF {}: the agent's completion channel is gone",
                vif.name
            ),
        }
    }

    /// Announces every held VIF again (refresh timer, after a merge).
    pub(super) fn refresh_announcements(&mut self) {
        // Not a yielding VIF: the new owner answers for it.
        let held = self.answering();
        for i in held {
            self.announce(i.0 as usize, Duration::ZERO);
        }
    }

    /// Another host claimed VIFs we hold: announce them again after
    /// [`CONFLICT_SETTLE`], at most once per [`CONFLICT_HOLDOFF`] each.
    pub(super) fn on_conflicts(&mut self, batch: Vec<ConflictEvent>) {
        let held = self.answering();
        let mut claimed: BTreeMap<usize, (u64, [u8; 6])> = BTreeMap::new();
        for ev in batch {
            for (i, vif) in self.vifs.iter().enumerate() {
                if vif.addresses.iter().any(|a| a.vip.key() == ev.key)
                    && held.contains(&VifIndex(i as u32))
                {
                    let seen = claimed.entry(i).or_insert((0, ev.sender_mac));
                    seen.0 += 1;
                }
            }
        }
        let now = Instant::now();
        for (i, (frames, mac)) in claimed {
            let recent = self
                .conflict_announced
                .get(&i)
                .is_some_and(|at| now.duration_since(*at) < CONFLICT_HOLDOFF);
            if recent {
                continue;
            }
            self.conflict_announced.insert(i, now);
            if let Some(vif) = self.vifs.get(i) {
                warn!(
                    vif = %vif.name,
                    mac = %crate::net::fmt_mac(&mac),
                    frames,
                    "another host claims our VIF; announcing again"
                );
                self.announce(i, CONFLICT_SETTLE);
            }
        }
    }
}

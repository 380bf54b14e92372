//! The cluster's shared ARP cache: every member multicasts its neighbours of
//! the VIP interfaces; a VIF arriving here is announced to all of them.

use super::agent::Agent;
use super::host::Host;
use super::messages::GroupMessage;
use crate::membership::Outgoing;
use crate::net::neigh::NeighShare;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use tracing::warn;

impl<H: Host> Agent<H> {
    /// Multicasts this host's neighbours on the VIP interfaces.
    pub(super) async fn share_arp_cache(&mut self) {
        if !self.cfg.notify.arp_cache || !self.engine_up {
            return;
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

    /// Merges a member's share, leaving out our own VIPs.
    pub(super) fn merge_arp_cache(&mut self, share: NeighShare) {
        let vips: BTreeSet<Ipv4Addr> = self
            .vifs
            .iter()
            .flat_map(|v| v.addresses.iter().filter_map(|a| a.vip.ipv4()))
            .collect();
        for (ip, mac) in share.pairs() {
            if !vips.contains(&ip) {
                self.arp_cache.insert(ip, mac);
            }
        }
    }
}

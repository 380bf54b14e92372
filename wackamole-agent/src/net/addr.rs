//! IPv4 and IPv6 addresses on an interface, through route netlink.
//!
//! Only the address asked for is touched: nothing is flushed, and other
//! addresses (the node's own, other VIPs) are left alone. `add` and `remove`
//! are idempotent so the daemon can re-apply its table after a restart.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};
use rtnetlink::packet_route::route::{RouteMessage, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::{errno, NetError, NetResult, Rtnl};

impl Rtnl {
    /// Adds `ip/prefix` to `iface`. Already present (same prefix) is success.
    pub async fn add_addr(&self, iface: &str, ip: Ipv4Addr, prefix: u8) -> NetResult<()> {
        check_prefix(iface, IpAddr::V4(ip), prefix)?;
        let index = self.ifindex(iface).await?;
        self.add_at(iface, index, IpAddr::V4(ip), prefix).await
    }

    /// Adds the IPv6 address `ip/prefix` to `iface` (see [`Rtnl::add_at`]).
    /// Already present is success.
    pub async fn add_addr6(&self, iface: &str, ip: Ipv6Addr, prefix: u8) -> NetResult<()> {
        check_prefix(iface, IpAddr::V6(ip), prefix)?;
        let index = self.ifindex(iface).await?;
        self.add_at(iface, index, IpAddr::V6(ip), prefix).await
    }

    /// Adds `ip/prefix` to interface `index` (`iface`: its name, for
    /// errors). Already present is success.
    ///
    /// An IPv6 address goes without duplicate address detection
    /// (IFA_F_NODAD: usable at once, and no DAD probe that the VIP's current
    /// owner would defend), valid for ever but with a preferred lifetime of
    /// 0 ("deprecated"): it answers and accepts connections as usual, but
    /// the kernel never picks it as the source of this node's own traffic
    /// (which would break when the VIP moves; IPv4 VIPs are secondary
    /// addresses for the same reason).
    pub async fn add_at(&self, iface: &str, index: u32, ip: IpAddr, prefix: u8) -> NetResult<()> {
        check_prefix(iface, ip, prefix)?;
        let mut req = self.handle().address().add(index, ip, prefix);
        if ip.is_ipv6() {
            let attributes = &mut req.message_mut().attributes;
            attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            let mut lifetimes = CacheInfo::default();
            lifetimes.ifa_preferred = 0;
            lifetimes.ifa_valid = u32::MAX;
            attributes.push(AddressAttribute::CacheInfo(lifetimes));
        }
        // Already there: as wanted.
        settled(
            req.execute().await,
            libc::EEXIST,
            iface,
            "add address",
            ip,
            prefix,
        )
    }

    /// Waits until the kernel delivers traffic for `ip` to this host (its
    /// route lookup says "local"), at most `limit`.
    ///
    /// The kernel acknowledges an IPv6 address before it is usable: the
    /// address's local route is inserted later by the address
    /// configuration work queue, even without DAD (an IPv4 address gets
    /// its route within the request). Announcing before that drew clients
    /// to a host that dropped their traffic as not its own. One route
    /// lookup (no lock, no dump) in the usual case, where the route is
    /// already there.
    pub async fn wait_local6(&self, iface: &str, ip: Ipv6Addr, limit: Duration) -> NetResult<()> {
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            let lookup = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(ip, 128)
                .build();
            // A lookup error (no route at all, as for a /128 VIP outside
            // the node's prefixes before its local route) is "not yet".
            let looked_up: Result<Vec<RouteMessage>, _> = self
                .handle()
                .route()
                .get(lookup)
                .execute()
                .try_collect()
                .await;
            let failure = match looked_up {
                Ok(routes) if routes.iter().any(|r| r.header.kind == RouteType::Local) => {
                    return Ok(());
                }
                Ok(_) => None,
                Err(e) => Some(e),
            };
            if start.elapsed() >= limit {
                let detail = match failure {
                    None => format!(
                        "added, but the kernel does not route it to this host after {limit:?}"
                    ),
                    Some(e) => {
                        format!("added, but its route lookup still fails after {limit:?}: {e}")
                    }
                };
                return Err(NetError::Netlink {
                    iface: iface.to_string(),
                    op: "add address",
                    addr: ip.to_string(),
                    detail,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Removes the IPv6 address `ip/prefix` from `iface`. Absent is success.
    pub async fn remove_addr6(&self, iface: &str, ip: Ipv6Addr, prefix: u8) -> NetResult<()> {
        check_prefix(iface, IpAddr::V6(ip), prefix)?;
        let index = self.ifindex(iface).await?;
        self.remove_at(iface, index, IpAddr::V6(ip), prefix).await
    }

    /// The IPv6 addresses of `iface`.
    pub async fn list_addrs6(&self, iface: &str) -> NetResult<Vec<Ipv6Addr>> {
        let index = self.ifindex(iface).await?;
        let mut req = self.handle().address().get().set_link_index_filter(index);
        req.message_mut().header.family = AddressFamily::Inet6;
        let found: Vec<AddressMessage> =
            req.execute()
                .try_collect()
                .await
                .map_err(|e| NetError::Netlink {
                    iface: iface.to_string(),
                    op: "list addresses",
                    addr: String::new(),
                    detail: e.to_string(),
                })?;
        Ok(found
            .iter()
            .filter(|m| m.header.index == index)
            .flat_map(|m| &m.attributes)
            .filter_map(|a| match a {
                AddressAttribute::Address(IpAddr::V6(a)) => Some(*a),
                _ => None,
            })
            .collect())
    }

    /// Removes `ip/prefix` from `iface`. Absent is success.
    pub async fn remove_addr(&self, iface: &str, ip: Ipv4Addr, prefix: u8) -> NetResult<()> {
        check_prefix(iface, IpAddr::V4(ip), prefix)?;
        let index = self.ifindex(iface).await?;
        self.remove_at(iface, index, IpAddr::V4(ip), prefix).await
    }

    /// Removes exactly the local address `ip/prefix` from interface `index`
    /// (`iface`: its name, for errors); absent, or present with another
    /// prefix, is success and touches nothing.
    ///
    /// One RTM_DELADDR naming the address as both local (IFA_LOCAL, so a
    /// peer address never matches) and address, as `ip addr del` sends it.
    /// No listing first: the kernel only dumps every address of the
    /// namespace, so releasing n VIPs cost n dumps of n addresses.
    pub async fn remove_at(
        &self,
        iface: &str,
        index: u32,
        ip: IpAddr,
        prefix: u8,
    ) -> NetResult<()> {
        check_prefix(iface, ip, prefix)?;
        let mut msg = AddressMessage::default();
        msg.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        // Absent (or another prefix): nothing to remove, as wanted.
        let res = self.handle().address().del(msg).execute().await;
        settled(
            res,
            libc::EADDRNOTAVAIL,
            iface,
            "remove address",
            ip,
            prefix,
        )
    }

    /// The IPv4 addresses on `iface` with their prefix lengths, in kernel order.
    pub async fn list_addrs(&self, iface: &str) -> NetResult<Vec<(Ipv4Addr, u8)>> {
        let index = self.ifindex(iface).await?;
        let mut req = self.handle().address().get().set_link_index_filter(index);
        req.message_mut().header.family = AddressFamily::Inet;
        let msgs: Vec<AddressMessage> =
            req.execute()
                .try_collect()
                .await
                .map_err(|e| NetError::Netlink {
                    iface: iface.to_string(),
                    op: "list addresses",
                    addr: String::new(),
                    detail: e.to_string(),
                })?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.family == AddressFamily::Inet)
            .filter_map(|m| local_v4(m).map(|ip| (ip, m.header.prefix_len)))
            .collect())
    }
}

/// The local IPv4 address of an address message (IFA_LOCAL, else IFA_ADDRESS).
fn local_v4(msg: &AddressMessage) -> Option<Ipv4Addr> {
    let pick = |want_local: bool| {
        msg.attributes.iter().find_map(|a| match (a, want_local) {
            (AddressAttribute::Local(IpAddr::V4(ip)), true)
            | (AddressAttribute::Address(IpAddr::V4(ip)), false) => Some(*ip),
            _ => None,
        })
    };
    pick(true).or_else(|| pick(false))
}

/// The outcome of an address request: `done_errno` says the kernel already
/// is as asked (success); any other error names the interface and address.
fn settled(
    res: Result<(), rtnetlink::Error>,
    done_errno: i32,
    iface: &str,
    op: &'static str,
    ip: IpAddr,
    prefix: u8,
) -> NetResult<()> {
    match res {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(done_errno) => Ok(()),
        Err(e) => Err(NetError::Netlink {
            iface: iface.to_string(),
            op,
            addr: format!("{ip}/{prefix}"),
            detail: e.to_string(),
        }),
    }
}

fn check_prefix(iface: &str, ip: IpAddr, prefix: u8) -> NetResult<()> {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(NetError::Invalid(format!(
            "interface {iface}: address {ip}/{prefix}: prefix length over {max}"
        )));
    }
    Ok(())
}

/// Adds `ip/prefix` to `iface` (idempotent), on a fresh netlink connection
/// opened in the netns of the thread that first polls this future.
pub async fn add(iface: &str, ip: Ipv4Addr, prefix: u8) -> NetResult<()> {
    Rtnl::new()?.add_addr(iface, ip, prefix).await
}

/// Adds the IPv6 `ip/prefix` to `iface` as [`Rtnl::add_addr6`] does.
pub async fn add6(iface: &str, ip: Ipv6Addr, prefix: u8) -> NetResult<()> {
    Rtnl::new()?.add_addr6(iface, ip, prefix).await
}

/// Removes the IPv6 `ip/prefix` from `iface`; absent is fine.
pub async fn remove6(iface: &str, ip: Ipv6Addr, prefix: u8) -> NetResult<()> {
    Rtnl::new()?.remove_addr6(iface, ip, prefix).await
}

/// Removes `ip/prefix` from `iface`; absent is fine.
pub async fn remove(iface: &str, ip: Ipv4Addr, prefix: u8) -> NetResult<()> {
    Rtnl::new()?.remove_addr(iface, ip, prefix).await
}

/// Lists the IPv4 addresses of `iface`.
pub async fn list(iface: &str) -> NetResult<Vec<(Ipv4Addr, u8)>> {
    Rtnl::new()?.list_addrs(iface).await
}

/// The interface index of `iface`.
pub async fn ifindex(iface: &str) -> NetResult<u32> {
    Rtnl::new()?.ifindex(iface).await
}

/// The MAC address of `iface`.
pub async fn mac(iface: &str) -> NetResult<[u8; 6]> {
    Rtnl::new()?.mac(iface).await
}

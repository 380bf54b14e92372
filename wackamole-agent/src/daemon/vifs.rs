//! Executing the allocator's decisions on this host: the ordered steps that
//! bring a VIF up or down, with the silence-first rule.
//!
//! Acquire: XDP owns the IPv4 addresses (ARP answered at once) and holds the
//! IPv6 ones silent (traffic accepted, solicitations dropped) → the
//! solicited-node group of each IPv6 address joined → addresses added (IPv6
//! without DAD) → once the kernel routes the IPv6 addresses, XDP answers
//! them too → announcements (gratuitous ARP, unsolicited NA) → `on_up`. Release: XDP
//! releasing (silent at once) → addresses removed → solicited-node groups
//! left → XDP entry forgotten after a grace period → `on_down`.

use crate::config;
use crate::dataplane::{Vip, VipTable};
use anyhow::{anyhow, Result};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tokio::time::Instant;

/// One address of a VIF, resolved on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedAddress {
    pub vip: Vip,
    pub prefix: u8,
}

impl PlannedAddress {
    pub fn text(&self) -> String {
        format!("{}/{}", self.vip.addr, self.prefix)
    }
}

/// A VIF as this host executes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedVif {
    pub name: String,
    pub addresses: Vec<PlannedAddress>,
    /// Neighbour advertisements for its IPv6 addresses carry the Router flag.
    pub nd_router: bool,
}

impl PlannedVif {
    pub fn address_texts(&self) -> Vec<String> {
        self.addresses.iter().map(PlannedAddress::text).collect()
    }

    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.addresses.iter().filter_map(|a| a.vip.ipv4()).collect()
    }

    /// Its IPv6 addresses.
    pub fn ips6(&self) -> Vec<Ipv6Addr> {
        self.addresses.iter().filter_map(|a| ipv6(&a.vip)).collect()
    }
}

fn ipv6(vip: &Vip) -> Option<Ipv6Addr> {
    match vip.addr {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    }
}

/// Resolves the configured VIFs on this host (interface indexes). Both
/// families: an IPv6 address is keyed by its 16 bytes in the XDP maps.
pub fn plan(cfg: &config::Config) -> Result<Vec<PlannedVif>> {
    cfg.vifs
        .iter()
        .map(|vif| {
            // Sized to the list (collecting `Result`s would leave room for
            // four): thousands of these live as long as the agent.
            let mut addresses = Vec::with_capacity(vif.addresses.len());
            for a in &vif.addresses {
                let vip =
                    Vip::resolve(&a.iface, a.addr).map_err(|e| anyhow!("VIF {}: {e}", vif.name))?;
                addresses.push(PlannedAddress {
                    vip,
                    prefix: a.prefix,
                });
            }
            Ok(PlannedVif {
                name: vif.name.clone(),
                addresses,
                nd_router: vif.nd_router,
            })
        })
        .collect()
}

/// The canonical VIF list the allocator compares across nodes: addresses
/// with interface and prefix, in configured order.
pub fn alloc_specs(cfg: &config::Config) -> Vec<crate::alloc::VifSpec> {
    cfg.vifs
        .iter()
        .map(|v| crate::alloc::VifSpec::new(v.addresses.iter().map(|a| a.to_string())))
        .collect()
}

/// Kernel addresses, behind a trait so the executor can be tested without netlink.
#[allow(async_fn_in_trait)]
pub trait AddressPlumbing {
    /// Adds `ip/prefix` to `iface` (IPv6: without duplicate address
    /// detection, so it is usable at once). Already present is success.
    async fn add(&self, iface: &str, ip: IpAddr, prefix: u8) -> Result<()>;
    /// Removes `ip/prefix` from `iface`. Absent is success.
    async fn remove(&self, iface: &str, ip: IpAddr, prefix: u8) -> Result<()>;
    /// Makes `iface` receive the solicited-node multicast group of `ip`, so
    /// the NIC hands its neighbour solicitations to XDP (before the address
    /// exists, and independent of the kernel's own membership). Joining
    /// again is a no-op.
    async fn join_solicited_node(&self, iface: &str, ip: Ipv6Addr) -> Result<()>;
    /// Drops the membership taken by [`AddressPlumbing::join_solicited_node`]
    /// (not joined: a no-op).
    async fn leave_solicited_node(&self, iface: &str, ip: Ipv6Addr) -> Result<()>;
    /// The addresses `iface` has now, both families (one dump each).
    async fn present(&self, iface: &str) -> Result<Vec<IpAddr>>;
}

/// The addresses each interface of `vifs` has now, one
/// [`AddressPlumbing::present`] per interface; the interfaces that could not
/// be listed come apart with their error (not knowing is not "absent").
pub async fn present_addresses<'v, A: AddressPlumbing>(
    plumbing: &A,
    vifs: impl IntoIterator<Item = &'v PlannedVif>,
) -> (
    BTreeMap<String, HashSet<IpAddr>>,
    Vec<(String, anyhow::Error)>,
) {
    let ifaces: BTreeSet<&str> = vifs
        .into_iter()
        .flat_map(|v| v.addresses.iter().map(|a| a.vip.iface.as_str()))
        .collect();
    let mut present = BTreeMap::new();
    let mut failed = Vec::new();
    for iface in ifaces {
        match plumbing.present(iface).await {
            Ok(have) => {
                present.insert(iface.to_string(), have.into_iter().collect());
            }
            Err(e) => failed.push((iface.to_string(), e)),
        }
    }
    (present, failed)
}

/// Brings `vif` up: XDP first (answers ARP within microseconds, see [`own`]),
/// then the solicited-node groups of its IPv6 addresses, then the kernel
/// addresses. On a failure the VIF stays owned in XDP (the cluster believes
/// we hold it, so answering is right) and the error is returned for logging
/// and retry. Its IPv6 addresses are answered once usable ([`answer6`]).
pub async fn bring_up<T: VipTable, A: AddressPlumbing>(
    table: &mut T,
    plumbing: &A,
    vif: &PlannedVif,
) -> Result<Duration> {
    let start = Instant::now();
    own(table, vif)?;
    plumb(plumbing, vif).await?;
    Ok(start.elapsed())
}

/// The XDP step of [`bring_up`]: every IPv4 address of `vif` owned
/// (answered); every IPv6 address accepted but silent, until [`answer6`].
///
/// Linux acknowledges an IPv6 address before it can receive on it: the
/// local route comes later from a work queue (milliseconds to over a second
/// on a loaded host, see `Rtnl::wait_local6`). A neighbour advertisement
/// before then draws the clients away from the old owner, which still
/// accepts their traffic during a hand-over, to a host that drops it.
pub fn own<T: VipTable>(table: &mut T, vif: &PlannedVif) -> Result<()> {
    for a in &vif.addresses {
        let step = match a.vip.addr {
            IpAddr::V4(_) => table.own(&a.vip),
            IpAddr::V6(_) => table.yield_vip(&a.vip),
        };
        step.map_err(|e| anyhow!("VIF {}: XDP own {}: {e}", vif.name, a.vip))?;
    }
    Ok(())
}

/// XDP answers `vif`'s IPv6 addresses (neighbour solicitations), with the
/// Router flag if configured: the kernel routes them to this host now.
pub fn answer6<T: VipTable>(table: &mut T, vif: &PlannedVif) -> Result<()> {
    for a in vif.addresses.iter().filter(|a| a.vip.addr.is_ipv6()) {
        let owned = match vif.nd_router {
            true => table.own_router(&a.vip, true),
            false => table.own(&a.vip),
        };
        owned.map_err(|e| anyhow!("VIF {}: XDP own {}: {e}", vif.name, a.vip))?;
    }
    Ok(())
}

/// The kernel steps of [`bring_up`], after [`own`]: the solicited-node
/// groups of the IPv6 addresses, then the addresses.
pub async fn plumb<A: AddressPlumbing>(plumbing: &A, vif: &PlannedVif) -> Result<()> {
    for a in &vif.addresses {
        if let Some(ip) = ipv6(&a.vip) {
            plumbing
                .join_solicited_node(&a.vip.iface, ip)
                .await
                .map_err(|e| anyhow!("VIF {}: {e}", vif.name))?;
        }
    }
    for a in &vif.addresses {
        plumbing
            .add(&a.vip.iface, a.vip.addr, a.prefix)
            .await
            .map_err(|e| anyhow!("VIF {}: {e}", vif.name))?;
    }
    Ok(())
}

/// How many VIFs of one batch have their kernel steps in flight at once.
/// Bounded so the netlink replies of a batch of thousands never overrun a
/// socket's receive buffer.
pub const PIPELINE: usize = 64;

/// [`plumb`] for a batch of VIFs (already owned in XDP), up to [`PIPELINE`]
/// of them in flight at once. Each result is matched to its VIF's key, with
/// the time from the start of the batch to that VIF's last step, in the
/// order they finish.
pub async fn plumb_many<'v, K: Copy, A: AddressPlumbing>(
    plumbing: &A,
    vifs: impl IntoIterator<Item = (K, &'v PlannedVif)>,
) -> Vec<(K, Result<Duration>)> {
    pipelined(vifs, |vif| plumb(plumbing, vif)).await
}

/// Runs `step` for each VIF, up to [`PIPELINE`] at once; each result with
/// its key and the time from the start to that VIF's step done.
async fn pipelined<'v, K: Copy, F: std::future::Future<Output = Result<()>>>(
    vifs: impl IntoIterator<Item = (K, &'v PlannedVif)>,
    step: impl Fn(&'v PlannedVif) -> F,
) -> Vec<(K, Result<Duration>)> {
    let start = Instant::now();
    let step = &step;
    futures::stream::iter(vifs)
        .map(|(k, vif)| async move { (k, step(vif).await.map(|()| start.elapsed())) })
        .buffer_unordered(PIPELINE)
        .collect()
        .await
}

/// The XDP step of [`bring_down`]: every address of `vif` silenced. Every
/// address is attempted; the first error is returned.
pub fn silence<T: VipTable>(table: &mut T, vif: &PlannedVif) -> Result<()> {
    let mut first_error = None;
    for a in &vif.addresses {
        if let Err(e) = table.release(&a.vip) {
            first_error.get_or_insert(anyhow!("VIF {}: XDP release {}: {e}", vif.name, a.vip));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The kernel steps of [`bring_down`], after [`silence`]: the addresses
/// removed, then the solicited-node groups left. Every step is attempted;
/// the first error is returned.
pub async fn unplumb<A: AddressPlumbing>(plumbing: &A, vif: &PlannedVif) -> Result<()> {
    let mut first_error = None;
    for a in &vif.addresses {
        if let Err(e) = plumbing.remove(&a.vip.iface, a.vip.addr, a.prefix).await {
            first_error.get_or_insert(anyhow!("VIF {}: {e}", vif.name));
        }
    }
    for a in &vif.addresses {
        if let Some(ip) = ipv6(&a.vip) {
            if let Err(e) = plumbing.leave_solicited_node(&a.vip.iface, ip).await {
                first_error.get_or_insert(anyhow!("VIF {}: {e}", vif.name));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// [`unplumb`] for a batch of VIFs (already silenced), pipelined as
/// [`plumb_many`] is.
pub async fn unplumb_many<'v, K: Copy, A: AddressPlumbing>(
    plumbing: &A,
    vifs: impl IntoIterator<Item = (K, &'v PlannedVif)>,
) -> Vec<(K, Result<Duration>)> {
    pipelined(vifs, |vif| unplumb(plumbing, vif)).await
}

/// Hand-over step 1 for `vif`: XDP stops answering ARP for its addresses but
/// still accepts their traffic; the kernel addresses stay. Every address is
/// attempted; the first error is returned.
pub fn yield_vif<T: VipTable>(table: &mut T, vif: &PlannedVif) -> Result<()> {
    let mut first_error = None;
    for a in &vif.addresses {
        if let Err(e) = table.yield_vip(&a.vip) {
            first_error.get_or_insert(anyhow!("VIF {}: XDP yield {}: {e}", vif.name, a.vip));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Retries [`bring_up`] for the VIFs in `pending` (indexes into `vifs`)
/// whose acquisition failed: those no longer `held` are dropped from the set,
/// those that now come up are removed and returned; the rest stay for the
/// next round with their latest error (by index).
pub async fn retry_bring_up<T: VipTable, A: AddressPlumbing>(
    table: &mut T,
    plumbing: &A,
    vifs: &[PlannedVif],
    pending: &mut BTreeSet<usize>,
    held: &BTreeSet<usize>,
) -> (Vec<usize>, Vec<(usize, anyhow::Error)>) {
    pending.retain(|i| held.contains(i) && *i < vifs.len());
    let mut up = Vec::new();
    let mut failed = Vec::new();
    for i in pending.iter().copied().collect::<Vec<_>>() {
        let Some(vif) = vifs.get(i) else {
            continue;
        };
        match bring_up(table, plumbing, vif).await {
            Ok(_) => {
                pending.remove(&i);
                up.push(i);
            }
            Err(e) => failed.push((i, e)),
        }
    }
    (up, failed)
}

/// Takes `vif` down: XDP silence first, then address removal, then the
/// solicited-node groups. Every step is attempted even if an earlier one
/// failed; the first error is returned.
pub async fn bring_down<T: VipTable, A: AddressPlumbing>(
    table: &mut T,
    plumbing: &A,
    vif: &PlannedVif,
) -> Result<Duration> {
    let start = Instant::now();
    let silenced = silence(table, vif);
    let unplumbed = unplumb(plumbing, vif).await;
    silenced.and(unplumbed).map(|()| start.elapsed())
}

/// Drops the XDP entries of a released VIF (after the grace period), so the
/// kernel handles its addresses normally again.
pub fn forget<T: VipTable>(table: &mut T, vif: &PlannedVif) -> Result<()> {
    for a in &vif.addresses {
        table
            .forget(&a.vip)
            .map_err(|e| anyhow!("VIF {}: XDP forget {}: {e}", vif.name, a.vip))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Journal(RefCell<Vec<String>>);

    struct FakeTable<'a>(&'a Journal, Option<Ipv4Addr>);
    impl VipTable for FakeTable<'_> {
        fn own(&mut self, vip: &Vip) -> dataplane::Result<()> {
            self.0 .0.borrow_mut().push(format!("own {}", vip.addr));
            if self.1.map(IpAddr::V4) == Some(vip.addr) {
                return Err(dataplane::DataPlaneError::Vip {
                    vip: vip.addr.to_string(),
                    action: "own",
                    cause: "refused by the test".into(),
                });
            }
            Ok(())
        }
        fn own_router(&mut self, vip: &Vip, router: bool) -> dataplane::Result<()> {
            assert!(router, "own() is used without the flag");
            self.0
                 .0
                .borrow_mut()
                .push(format!("own {} router", vip.addr));
            Ok(())
        }
        fn release(&mut self, vip: &Vip) -> dataplane::Result<()> {
            self.0 .0.borrow_mut().push(format!("release {}", vip.addr));
            Ok(())
        }
        fn yield_vip(&mut self, vip: &Vip) -> dataplane::Result<()> {
            self.0 .0.borrow_mut().push(format!("yield {}", vip.addr));
            if self.1.map(IpAddr::V4) == Some(vip.addr) {
                return Err(dataplane::DataPlaneError::Vip {
                    vip: vip.addr.to_string(),
                    action: "yield",
                    cause: "refused by the test".into(),
                });
            }
            Ok(())
        }
        fn forget(&mut self, vip: &Vip) -> dataplane::Result<()> {
            self.0 .0.borrow_mut().push(format!("forget {}", vip.addr));
            Ok(())
        }
        fn renew_lease(&mut self, _: Option<Duration>) -> dataplane::Result<()> {
            Ok(())
        }
        fn counters(&self, _: &Vip) -> dataplane::Result<dataplane::VipCounters> {
            Ok(Default::default())
        }
    }

    struct FakePlumbing<'a>(&'a Journal, Option<Ipv4Addr>);
    impl AddressPlumbing for FakePlumbing<'_> {
        async fn join_solicited_node(&self, iface: &str, ip: Ipv6Addr) -> Result<()> {
            self.0 .0.borrow_mut().push(format!("join {ip} {iface}"));
            Ok(())
        }
        async fn leave_solicited_node(&self, iface: &str, ip: Ipv6Addr) -> Result<()> {
            self.0 .0.borrow_mut().push(format!("leave {ip} {iface}"));
            Ok(())
        }
        async fn add(&self, iface: &str, ip: IpAddr, prefix: u8) -> Result<()> {
            self.0
                 .0
                .borrow_mut()
                .push(format!("add {ip}/{prefix} {iface}"));
            if self.1.map(IpAddr::V4) == Some(ip) {
                return Err(anyhow!("cannot add {ip}"));
            }
            Ok(())
        }
        async fn remove(&self, iface: &str, ip: IpAddr, prefix: u8) -> Result<()> {
            self.0
                 .0
                .borrow_mut()
                .push(format!("del {ip}/{prefix} {iface}"));
            if self.1.map(IpAddr::V4) == Some(ip) {
                return Err(anyhow!("cannot remove {ip}"));
            }
            Ok(())
        }
        async fn present(&self, _iface: &str) -> Result<Vec<IpAddr>> {
            Ok(Vec::new())
        }
    }

    fn vif() -> PlannedVif {
        let a = |last| PlannedAddress {
            vip: Vip::new("eth0", 2, Ipv4Addr::new(192, 0, 2, last)),
            prefix: 24,
        };
        PlannedVif {
            name: "web".into(),
            addresses: vec![a(10), a(11)],
            nd_router: false,
        }
    }

    #[tokio::test]
    async fn up_is_xdp_first_then_addresses() {
        let j = Journal::default();
        bring_up(&mut FakeTable(&j, None), &FakePlumbing(&j, None), &vif())
            .await
            .expect("up");
        assert_eq!(
            *j.0.borrow(),
            [
                "own 192.0.2.10",
                "own 192.0.2.11",
                "add 192.0.2.10/24 eth0",
                "add 192.0.2.11/24 eth0"
            ]
        );
    }

    /// A dual-stack VIF: the IPv4 address owned and the IPv6 one held
    /// silent in XDP first, then the IPv6 address's solicited-node group,
    /// then the addresses, then (usable) the IPv6 address answered; down:
    /// silence, addresses, group.
    #[tokio::test]
    async fn dual_stack_order() {
        let j = Journal::default();
        let v6: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let mut dual = vif();
        dual.addresses[1] = PlannedAddress {
            vip: Vip::new("eth0", 2, v6),
            prefix: 64,
        };
        dual.nd_router = true;
        bring_up(&mut FakeTable(&j, None), &FakePlumbing(&j, None), &dual)
            .await
            .expect("up");
        answer6(&mut FakeTable(&j, None), &dual).expect("usable");
        bring_down(&mut FakeTable(&j, None), &FakePlumbing(&j, None), &dual)
            .await
            .expect("down");
        assert_eq!(
            *j.0.borrow(),
            [
                "own 192.0.2.10",
                "yield 2001:db8::10",
                "join 2001:db8::10 eth0",
                "add 192.0.2.10/24 eth0",
                "add 2001:db8::10/64 eth0",
                "own 2001:db8::10 router",
                "release 192.0.2.10",
                "release 2001:db8::10",
                "del 192.0.2.10/24 eth0",
                "del 2001:db8::10/64 eth0",
                "leave 2001:db8::10 eth0",
            ]
        );
        assert_eq!(dual.ips6(), [v6]);
        assert_eq!(dual.ips(), [Ipv4Addr::new(192, 0, 2, 10)]);
    }

    #[test]
    fn yield_touches_only_xdp_and_tries_every_address() {
        let j = Journal::default();
        let bad = Some(Ipv4Addr::new(192, 0, 2, 10));
        let err = yield_vif(&mut FakeTable(&j, bad), &vif()).expect_err("first yield fails");
        assert!(err.to_string().contains("192.0.2.10"), "{err}");
        // Addresses stay (traffic is still accepted until the release).
        assert_eq!(*j.0.borrow(), ["yield 192.0.2.10", "yield 192.0.2.11"]);
    }

    #[tokio::test]
    async fn down_silences_first_and_tries_every_step() {
        let j = Journal::default();
        let bad = Some(Ipv4Addr::new(192, 0, 2, 10));
        let err = bring_down(&mut FakeTable(&j, None), &FakePlumbing(&j, bad), &vif())
            .await
            .expect_err("first removal fails");
        assert!(err.to_string().contains("192.0.2.10"), "{err}");
        assert_eq!(
            *j.0.borrow(),
            [
                "release 192.0.2.10",
                "release 192.0.2.11",
                "del 192.0.2.10/24 eth0",
                "del 192.0.2.11/24 eth0"
            ]
        );
        forget(&mut FakeTable(&j, None), &vif()).expect("forget");
        assert_eq!(j.0.borrow().len(), 6);
    }

    /// A batch: each result belongs to its VIF (a failed address fails only
    /// its own VIF), and a removal failure does not stop the others.
    #[tokio::test]
    async fn batches_match_each_result_to_its_vif() {
        let j = Journal::default();
        let other = PlannedVif {
            name: "mail".into(),
            addresses: vec![PlannedAddress {
                vip: Vip::new("eth0", 2, Ipv4Addr::new(192, 0, 2, 20)),
                prefix: 24,
            }],
            nd_router: false,
        };
        let vifs = [vif(), other];
        let bad = Some(Ipv4Addr::new(192, 0, 2, 11));
        let mut up = plumb_many(&FakePlumbing(&j, bad), [(7, &vifs[0]), (9, &vifs[1])]).await;
        up.sort_by_key(|(k, _)| *k);
        assert_eq!(up.len(), 2);
        let err = up[0].1.as_ref().expect_err("VIF 7 has the bad address");
        assert!(err.to_string().contains("web"), "{err}");
        assert_eq!(up[1].0, 9);
        assert!(up[1].1.is_ok());
        j.0.borrow_mut().clear();
        let mut down = unplumb_many(&FakePlumbing(&j, bad), [(7, &vifs[0]), (9, &vifs[1])]).await;
        down.sort_by_key(|(k, _)| *k);
        assert!(down[0].1.is_err() && down[1].1.is_ok());
        // Every removal was attempted.
        assert_eq!(j.0.borrow().len(), 3, "{:?}", j.0.borrow());
    }

    #[tokio::test]
    async fn failed_bring_ups_are_retried_while_held() {
        let j = Journal::default();
        let other = PlannedVif {
            name: "mail".into(),
            addresses: vec![PlannedAddress {
                vip: Vip::new("eth0", 2, Ipv4Addr::new(192, 0, 2, 20)),
                prefix: 24,
            }],
            nd_router: false,
        };
        let vifs = [vif(), other];
        let bad = Some(Ipv4Addr::new(192, 0, 2, 11));
        let mut pending: BTreeSet<usize> = [0, 1].into();
        let held: BTreeSet<usize> = [0].into();
        // The address still cannot be added; VIF 1 is no longer ours.
        let (up, failed) = retry_bring_up(
            &mut FakeTable(&j, None),
            &FakePlumbing(&j, bad),
            &vifs,
            &mut pending,
            &held,
        )
        .await;
        assert!(up.is_empty());
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, 0);
        assert!(
            failed[0].1.to_string().contains("192.0.2.11"),
            "{}",
            failed[0].1
        );
        assert_eq!(pending, [0].into());
        // XDP failing is retried too.
        let (up, failed) = retry_bring_up(
            &mut FakeTable(&j, bad),
            &FakePlumbing(&j, None),
            &vifs,
            &mut pending,
            &held,
        )
        .await;
        assert!(up.is_empty() && failed.len() == 1);
        // Now it works: done and forgotten.
        j.0.borrow_mut().clear();
        let (up, failed) = retry_bring_up(
            &mut FakeTable(&j, None),
            &FakePlumbing(&j, None),
            &vifs,
            &mut pending,
            &held,
        )
        .await;
        assert_eq!(up, [0]);
        assert!(failed.is_empty() && pending.is_empty());
        assert_eq!(
            *j.0.borrow(),
            [
                "own 192.0.2.10",
                "own 192.0.2.11",
                "add 192.0.2.10/24 eth0",
                "add 192.0.2.11/24 eth0"
            ]
        );
    }
}

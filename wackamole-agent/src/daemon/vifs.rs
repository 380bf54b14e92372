//! Executing the allocator's decisions on this host: the ordered steps that
//! bring a VIF up or down, with the silence-first rule.
//!
//! Acquire: XDP owns (ARP answered at once) → addresses added → announcements
//! → `on_up`. Release: XDP releasing (silent at once) → addresses removed →
//! XDP entry forgotten after a grace period → `on_down`.

use crate::config;
use crate::dataplane::{Vip, VipTable};
use anyhow::{anyhow, Result};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
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
}

impl PlannedVif {
    pub fn address_texts(&self) -> Vec<String> {
        self.addresses.iter().map(PlannedAddress::text).collect()
    }

    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.addresses.iter().filter_map(|a| a.vip.ipv4()).collect()
    }
}

/// Resolves the configured VIFs on this host (interface indexes).
pub fn plan(cfg: &config::Config) -> Result<Vec<PlannedVif>> {
    cfg.vifs
        .iter()
        .map(|vif| {
            let addresses = vif
                .addresses
                .iter()
                .map(|a| {
                    let IpAddr::V4(ip) = a.addr else {
                        return Err(anyhow!(
                            "VIF {}: {} is IPv6, which the data plane does not handle yet",
                            vif.name,
                            a
                        ));
                    };
                    let vip =
                        Vip::resolve(&a.iface, ip).map_err(|e| anyhow!("VIF {}: {e}", vif.name))?;
                    Ok(PlannedAddress {
                        vip,
                        prefix: a.prefix,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(PlannedVif {
                name: vif.name.clone(),
                addresses,
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
    async fn add(&self, iface: &str, ip: IpAddr, prefix: u8) -> Result<()>;
    async fn remove(&self, iface: &str, ip: IpAddr, prefix: u8) -> Result<()>;
}

/// Brings `vif` up: XDP first (answers ARP within microseconds), then the
/// kernel addresses. On a failure the VIF stays owned in XDP (the cluster
/// believes we hold it, so answering ARP is right) and the error is returned
/// for logging and retry.
pub async fn bring_up<T: VipTable, A: AddressPlumbing>(
    table: &mut T,
    plumbing: &A,
    vif: &PlannedVif,
) -> Result<Duration> {
    let start = Instant::now();
    for a in &vif.addresses {
        table
            .own(&a.vip)
            .map_err(|e| anyhow!("VIF {}: XDP own {}: {e}", vif.name, a.vip))?;
    }
    for a in &vif.addresses {
        plumbing
            .add(&a.vip.iface, a.vip.addr, a.prefix)
            .await
            .map_err(|e| anyhow!("VIF {}: {e}", vif.name))?;
    }
    Ok(start.elapsed())
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

/// Takes `vif` down: XDP silence first, then address removal. Every step is
/// attempted even if an earlier one failed; the first error is returned.
pub async fn bring_down<T: VipTable, A: AddressPlumbing>(
    table: &mut T,
    plumbing: &A,
    vif: &PlannedVif,
) -> Result<Duration> {
    let start = Instant::now();
    let mut first_error = None;
    for a in &vif.addresses {
        if let Err(e) = table.release(&a.vip) {
            first_error.get_or_insert(anyhow!("VIF {}: XDP release {}: {e}", vif.name, a.vip));
        }
    }
    for a in &vif.addresses {
        if let Err(e) = plumbing.remove(&a.vip.iface, a.vip.addr, a.prefix).await {
            first_error.get_or_insert(anyhow!("VIF {}: {e}", vif.name));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(start.elapsed()),
    }
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
                    source: "refused by the test".into(),
                });
            }
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
                    source: "refused by the test".into(),
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
    }

    fn vif() -> PlannedVif {
        let a = |last| PlannedAddress {
            vip: Vip::new("eth0", 2, Ipv4Addr::new(192, 0, 2, last)),
            prefix: 24,
        };
        PlannedVif {
            name: "web".into(),
            addresses: vec![a(10), a(11)],
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

    #[tokio::test]
    async fn failed_bring_ups_are_retried_while_held() {
        let j = Journal::default();
        let other = PlannedVif {
            name: "mail".into(),
            addresses: vec![PlannedAddress {
                vip: Vip::new("eth0", 2, Ipv4Addr::new(192, 0, 2, 20)),
                prefix: 24,
            }],
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

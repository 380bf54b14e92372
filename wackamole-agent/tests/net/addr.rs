//! Interface addresses through netlink, inside a network namespace.

use std::net::Ipv4Addr;

use anyhow::Result;
use wackamole::net::{self, addr, NetError};
use wackamole::testbed::Netns;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

#[test]
#[ignore = "needs root"]
fn add_list_remove_touch_only_what_is_asked() -> Result<()> {
    let ns = crate::veth_namespace("addr", "d0", false)?;
    ns.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "d0"])?;
    let want_index = ns.ifindex("d0")?;
    let want_mac = ns.mac("d0")?;

    let (listed, index, mac, after_remove) = ns.in_thread(|| {
        net::block_on(async |rtnl| {
            rtnl.add_addr("d0", ip("192.0.2.10"), 24).await?;
            rtnl.add_addr("d0", ip("192.0.2.11"), 32).await?;
            // Idempotent: adding again is fine and does not duplicate.
            rtnl.add_addr("d0", ip("192.0.2.10"), 24).await?;
            let listed = rtnl.list_addrs("d0").await?;
            let index = rtnl.ifindex("d0").await?;
            let mac = rtnl.mac("d0").await?;
            rtnl.remove_addr("d0", ip("192.0.2.10"), 24).await?;
            // Absent (already removed, or another prefix): fine, nothing else goes.
            rtnl.remove_addr("d0", ip("192.0.2.10"), 24).await?;
            rtnl.remove_addr("d0", ip("192.0.2.11"), 24).await?;
            let after = rtnl.list_addrs("d0").await?;
            Ok((listed, index, mac, after))
        })
    })??;

    let mut listed = listed;
    listed.sort();
    assert_eq!(
        listed,
        vec![
            (ip("192.0.2.1"), 24),
            (ip("192.0.2.10"), 24),
            (ip("192.0.2.11"), 32)
        ]
    );
    assert_eq!(index, want_index);
    assert_eq!(mac, want_mac);
    assert_eq!(
        after_remove,
        vec![(ip("192.0.2.1"), 24), (ip("192.0.2.11"), 32)]
    );
    // The kernel agrees (seen from outside the process).
    let shown = ns.run(&["ip", "-4", "-o", "addr", "show", "dev", "d0"])?;
    assert!(shown.contains("192.0.2.11/32"), "{shown}");
    assert!(!shown.contains("192.0.2.10/"), "{shown}");
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn free_functions_work_in_a_runtime_inside_the_namespace() -> Result<()> {
    let ns = Netns::new("addrfree")?;
    ns.run(&[
        "ip", "link", "add", "d1", "type", "veth", "peer", "name", "d1p",
    ])?;
    let got = ns.in_thread(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async {
            addr::add("d1", ip("198.51.100.7"), 25).await?;
            let l = addr::list("d1").await?;
            let i = addr::ifindex("d1").await?;
            let m = addr::mac("d1").await?;
            addr::remove("d1", ip("198.51.100.7"), 25).await?;
            Ok::<_, anyhow::Error>((l, i, m, addr::list("d1").await?))
        })
    })??;
    assert_eq!(got.0, vec![(ip("198.51.100.7"), 25)]);
    assert_eq!(got.1, ns.ifindex("d1")?);
    assert_eq!(got.2, ns.mac("d1")?);
    assert!(got.3.is_empty());
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn errors_name_interface_and_address() -> Result<()> {
    let ns = Netns::new("addrerr")?;
    ns.run(&[
        "ip", "link", "add", "d2", "type", "veth", "peer", "name", "d2p",
    ])?;
    let (missing, bad_prefix, list_missing) = ns.in_thread(|| {
        net::block_on(async |rtnl| {
            Ok((
                rtnl.add_addr("nosuch0", ip("192.0.2.5"), 24).await,
                rtnl.add_addr("d2", ip("192.0.2.5"), 33).await,
                rtnl.list_addrs("nosuch0").await,
            ))
        })
    })??;
    let e = missing.expect_err("missing interface must fail");
    assert!(matches!(e, NetError::NoSuchInterface { .. }), "{e:?}");
    assert!(e.to_string().contains("nosuch0"), "{e}");
    let e = bad_prefix.expect_err("prefix 33 must fail");
    assert!(
        e.to_string().contains("d2") && e.to_string().contains("192.0.2.5/33"),
        "{e}"
    );
    assert!(list_missing.is_err());
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn ipv6_addresses_are_added_without_dad_and_removed() -> Result<()> {
    let ns = crate::veth_namespace("addr6", "d0", true)?;
    let vip: std::net::Ipv6Addr = "2001:db8::100".parse()?;
    ns.in_thread(move || {
        net::block_on(async |rtnl| {
            rtnl.add_addr6("d0", vip, 128).await?;
            // Idempotent.
            rtnl.add_addr6("d0", vip, 128).await
        })
    })??;
    let shown = ns.run(&["ip", "-6", "addr", "show", "dev", "d0"])?;
    let line = shown
        .lines()
        .find(|l| l.contains("2001:db8::100/128"))
        .unwrap_or_default();
    assert!(line.contains("nodad"), "not added with nodad: {shown}");
    assert!(!line.contains("tentative"), "DAD runs: {shown}");
    let err = ns
        .in_thread(move || net::block_on(async |rtnl| rtnl.add_addr6("d0", vip, 129).await))?
        .unwrap_err()
        .to_string();
    assert!(err.contains("129"), "{err}");
    ns.in_thread(move || {
        net::block_on(async |rtnl| {
            rtnl.remove_addr6("d0", vip, 128).await?;
            rtnl.remove_addr6("d0", vip, 128).await
        })
    })??;
    let shown = ns.run(&["ip", "-6", "addr", "show", "dev", "d0"])?;
    assert!(!shown.contains("2001:db8::100"), "still there: {shown}");
    Ok(())
}

/// An announcement waits for its IPv6 address's local route (the kernel
/// inserts it after acknowledging the address, from a work queue that ran
/// 3 ms to 1.7 s late on a loaded host): the wait returns once the address
/// is routed here, and an address that never is fails at the limit, named.
#[test]
#[ignore = "needs root"]
fn waiting_for_an_ipv6_address_to_be_usable() -> Result<()> {
    let ns = crate::veth_namespace("usable6", "d0", true)?;
    let vip: std::net::Ipv6Addr = "2001:db8::200".parse()?;
    let absent: std::net::Ipv6Addr = "2001:db8::201".parse()?;
    // No route at all (outside every prefix): the lookup itself fails.
    let unroutable: std::net::Ipv6Addr = "2001:db9::1".parse()?;
    let limit = std::time::Duration::from_millis(50);
    let (usable, missing, waited, unrouted, waited_unrouted) = ns.in_thread(move || {
        net::block_on(async move |rtnl| {
            rtnl.add_addr6("d0", vip, 64).await?;
            let usable = rtnl.wait_local6("d0", vip, limit).await;
            let start = std::time::Instant::now();
            let missing = rtnl.wait_local6("d0", absent, limit).await;
            let waited = start.elapsed();
            let start = std::time::Instant::now();
            let unrouted = rtnl.wait_local6("d0", unroutable, limit).await;
            Ok((usable, missing, waited, unrouted, start.elapsed()))
        })
    })??;
    usable?;
    let route = ns.run(&["ip", "-6", "route", "get", "2001:db8::200"])?;
    assert!(route.starts_with("local"), "not routed here: {route}");
    let err = missing
        .expect_err("an address never added is never usable")
        .to_string();
    assert!(err.contains("d0") && err.contains("2001:db8::201"), "{err}");
    assert!(
        waited >= limit,
        "gave up after {waited:?}, before the limit"
    );
    let err = unrouted
        .expect_err("an unroutable address is never usable")
        .to_string();
    assert!(
        err.contains("2001:db9::1") && err.contains("lookup"),
        "{err}"
    );
    assert!(
        waited_unrouted >= limit,
        "a failing lookup gave up after {waited_unrouted:?}, before the limit"
    );
    Ok(())
}

/// Without `promote_secondaries`, removing the first VIP of a subnet the
/// node has no address in removes every other VIP of it (the kernel's
/// default, and a fresh namespace's); the agent turns it on first.
#[test]
#[ignore = "needs root"]
fn releasing_the_first_vip_of_a_subnet_keeps_the_others_once_promoted() -> Result<()> {
    let ns = crate::veth_namespace("promote", "d0", false)?;
    ns.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "d0"])?;
    let vip = |s: &str| -> Ipv4Addr { s.parse().expect("test address") };
    // Two VIPs of a subnet the node has no address in; the first goes.
    let release_first = |ns: &Netns| -> Result<String> {
        ns.in_thread(move || {
            net::block_on(async move |rtnl| {
                rtnl.add_addr("d0", vip("198.51.100.1"), 24).await?;
                rtnl.add_addr("d0", vip("198.51.100.2"), 24).await?;
                rtnl.remove_addr("d0", vip("198.51.100.1"), 24).await
            })
        })??;
        ns.run(&["ip", "-4", "-o", "addr", "show", "dev", "d0"])
    };

    // The kernel's default: the second VIP goes with the first.
    let shown = release_first(&ns)?;
    assert!(
        !shown.contains("198.51.100.2/"),
        "the default kept it?\n{shown}"
    );

    let (first, again) = ns.in_thread(|| {
        Ok::<_, NetError>((
            net::sysctl::ensure_promote_secondaries("d0")?,
            net::sysctl::ensure_promote_secondaries("d0")?,
        ))
    })??;
    assert_eq!(first.as_deref(), Some("0"));
    assert_eq!(again, None, "already on: nothing to put back");
    let shown = release_first(&ns)?;
    assert!(shown.contains("198.51.100.2/24"), "{shown}");
    assert!(!shown.contains("198.51.100.1/"), "{shown}");
    Ok(())
}

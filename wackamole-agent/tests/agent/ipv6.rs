//! End-to-end, issue 13: IPv6 and dual-stack VIFs with real `wackamole`
//! agents on a Corosync cluster of network namespaces. The client asks with
//! `ndisc6` (neighbour solicitations, every answer collected) and `ping -6`;
//! a cable cut of a holder moves its VIFs, a drain and a stop silence the
//! releasing node. Root, corosync and ndisc6; one cluster at a time.

use anyhow::{ensure, Context, Result};
use std::time::Duration;
use wackamole::testbed::cluster::{AgentCluster, AgentClusterOptions, Snapshot, VipFamily};

use crate::support::one_cluster_at_a_time;

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");
const SETTLE: Duration = Duration::from_secs(20);
const VIFS: usize = 3;

fn require_ndisc6() {
    let found = std::process::Command::new("ndisc6")
        .arg("-h")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    assert!(found, "this test needs ndisc6 (package ndisc6)");
}

/// Every VIF's addresses are answered by exactly one node, the owner the
/// agents agree on, which is among `allowed` and is the only one with the
/// addresses; `ping -6` reaches the first VIF's IPv6 address.
fn check_answers(
    c: &AgentCluster,
    snap: &Snapshot,
    allowed: &[usize],
    family: VipFamily,
) -> Result<()> {
    for k in 1..=VIFS {
        let vif = AgentCluster::vif_name(k);
        let owner = allowed
            .iter()
            .find_map(|&i| snap.owner_seen_by(i, &vif))
            .with_context(|| format!("{vif}: no owner in {allowed:?}"))?;
        let owner_index = c.index_of(&owner).context("owner node")?;
        ensure!(
            allowed.contains(&owner_index),
            "{vif} owned by {owner}, not in {allowed:?}"
        );
        let v6 = AgentCluster::vip6(k);
        let nodes = c.who_answers6(v6)?;
        ensure!(
            nodes == [owner_index],
            "{vif} ({v6}) is owned by {owner} but solicitations are answered by nodes {nodes:?}\n{}",
            c.log_tails()
        );
        if family == VipFamily::Dual {
            let v4 = AgentCluster::vip(k);
            let nodes = c.who_answers(v4)?;
            ensure!(
                nodes == [owner_index],
                "{vif} ({v4}): ARP answered by {nodes:?}, owner {owner}"
            );
        }
        for &i in allowed {
            let has = c.addresses6(i)?.contains(&v6);
            ensure!(
                has == (i == owner_index),
                "node {i} has {v6}: {has}, owner {owner}"
            );
        }
    }
    let ping = c
        .client()
        .command("ping")
        .args([
            "-6",
            "-c",
            "1",
            "-W",
            "2",
            &AgentCluster::vip6(1).to_string(),
        ])
        .output()
        .context("running ping -6")?;
    ensure!(
        ping.status.success(),
        "ping -6 {} failed: {}",
        AgentCluster::vip6(1),
        String::from_utf8_lossy(&ping.stdout)
    );
    Ok(())
}

fn held_among(s: &Snapshot, nodes: &[usize]) -> usize {
    nodes.iter().map(|&i| s.held_by(i).len()).sum()
}

fn fail_over(family: VipFamily) -> Result<()> {
    wackamole::testbed::require_root();
    require_ndisc6();
    let _guard = one_cluster_at_a_time();
    let mut opts = AgentClusterOptions::new(BIN);
    opts.vifs = VIFS;
    opts.family = family;
    let mut c = AgentCluster::start(opts)?;
    let snap = c.wait_counts(&[1, 1, 1], SETTLE)?;
    check_answers(&c, &snap, &[0, 1, 2], family)?;

    // The holder of v1 loses its cable: the survivors take v1 over.
    let holder = c
        .index_of(&snap.owner_seen_by(0, "v1").context("v1 owner")?)
        .context("v1 owner node")?;
    let others: Vec<usize> = (0..3).filter(|&i| i != holder).collect();
    c.link_down(holder)?;
    let snap = c.wait_until("the survivors hold every VIF", SETTLE, |s| {
        s.agreed_among(&others) && held_among(s, &others) == VIFS
    })?;
    check_answers(&c, &snap, &others, family)?;
    // The cut node let go of everything (carrier lost): no VIP address.
    let vips6: Vec<_> = (1..=VIFS).map(AgentCluster::vip6).collect();
    ensure!(
        !c.addresses6(holder)?.iter().any(|a| vips6.contains(a)),
        "the cut node {holder} kept IPv6 VIP addresses"
    );
    c.link_up(holder)?;
    let snap = c.wait_counts(&[1, 1, 1], SETTLE)?;
    check_answers(&c, &snap, &[0, 1, 2], family)?;

    // A drain releases: the drained node answers for nothing.
    c.ctl_ok(0, &["drain", "n1"])?;
    let snap = c.wait_until("n1 drained", SETTLE, |s| {
        s.agreed() && s.held_by(0).is_empty() && held_among(s, &[1, 2]) == VIFS
    })?;
    check_answers(&c, &snap, &[1, 2], family)?;
    ensure!(
        !c.addresses6(0)?.iter().any(|a| vips6.contains(a)),
        "drained n1 kept IPv6 VIP addresses"
    );

    // Every agent stopped: every VIP silent.
    c.stop_agents();
    for v6 in vips6 {
        let nodes = c.who_answers6(v6)?;
        ensure!(
            nodes.is_empty(),
            "{v6} still answered by {nodes:?} after the agents stopped"
        );
    }
    Ok(())
}

#[test]
#[ignore = "needs root, corosync and ndisc6"]
fn ipv6_vips_fail_over_on_a_cable_cut_and_fall_silent_on_release() -> Result<()> {
    fail_over(VipFamily::Ipv6)
}

#[test]
#[ignore = "needs root, corosync and ndisc6"]
fn dual_stack_vifs_fail_over_on_a_cable_cut_and_fall_silent_on_release() -> Result<()> {
    fail_over(VipFamily::Dual)
}

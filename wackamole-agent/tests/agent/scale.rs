//! Issue 12, item 3: an eight-node cluster with 64 VIPs. Every VIP is
//! answered (ARP from the client) by exactly one MAC, its owner's; a node
//! crashes (cable out, corosync and agent SIGKILLed: nothing of it reaches the
//! LAN) and every VIP is answered by exactly one survivor; it comes back
//! (cable in, corosync and agent started) and the cluster settles again.
//! Root and corosync; one cluster at a time. Each phase's duration is
//! printed (`--nocapture`), not asserted.
//!
//! Corosync's default profile, not the LAN-fast one: with eight fast-profile
//! corosyncs on two shared cores the return's merge stalled the ring past
//! the agents' 500 ms stall limit, every agent dropped its engine and
//! released everything, again and again (a ring this host cannot keep, not
//! the allocation under test). The default profile's stall limit follows its
//! longer token.

use anyhow::{ensure, Context, Result};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use wackamole::testbed::cluster::{AgentCluster, AgentClusterOptions, Snapshot};
use wackamole::testbed::corosync::Profile;

use crate::support::one_cluster_at_a_time;

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");
const NODES: usize = 8;
const VIFS: usize = 64;
/// Eight corosyncs and agents on two shared cores settle slower than three,
/// and the default profile's token is 3 s + 650 ms per node above two.
const SETTLE: Duration = Duration::from_secs(90);

/// `nodes` agree on an owner (one of them) for every VIF, and the counts
/// differ by at most one.
fn balanced_among(s: &Snapshot, nodes: &[usize]) -> bool {
    let counts = s.counts();
    let held: Vec<usize> = nodes
        .iter()
        .map(|&i| counts.get(i).copied().unwrap_or(0))
        .collect();
    let (min, max) = (
        held.iter().copied().min().unwrap_or(0),
        held.iter().copied().max().unwrap_or(0),
    );
    s.agreed_among(nodes) && held.iter().sum::<usize>() == VIFS && max - min <= 1
}

/// ARP asks at most this many VIPs at once (one arping process each).
const ARPING_AT_ONCE: usize = 16;

/// Which nodes answer ARP for each VIP, [`ARPING_AT_ONCE`] at a time. A VIP
/// nobody answered is asked again, up to twice: on two shared cores an
/// arping can miss its one-second window (a wrong or a second MAC is never
/// retried).
fn who_answers(c: &AgentCluster) -> Result<Vec<Vec<usize>>> {
    let vips: Vec<Ipv4Addr> = (1..=VIFS).map(AgentCluster::vip).collect();
    let mut answers = Vec::new();
    for chunk in vips.chunks(ARPING_AT_ONCE) {
        answers.extend(c.who_answers_all(chunk)?);
    }
    for (vip, a) in vips.iter().zip(&mut answers) {
        for _ in 0..2 {
            if !a.is_empty() {
                break;
            }
            eprintln!("{vip}: no ARP answer, asking again");
            *a = c.who_answers(*vip)?;
        }
    }
    Ok(answers)
}

/// Every VIP is answered by exactly one node, the owner `nodes` agree on.
fn check_arp(c: &AgentCluster, snap: &Snapshot, nodes: &[usize]) -> Result<()> {
    let answers = who_answers(c)?;
    for (k, answering) in (1..=VIFS).zip(&answers) {
        let vif = AgentCluster::vif_name(k);
        let owner = nodes
            .iter()
            .find_map(|&i| snap.owner_seen_by(i, &vif))
            .with_context(|| format!("{vif}: no owner among {nodes:?}"))?;
        let owner_index = c.index_of(&owner).context("owner node")?;
        ensure!(
            nodes.contains(&owner_index),
            "{vif} owned by {owner}, not among {nodes:?}"
        );
        ensure!(
            answering == &[owner_index],
            "{vif} ({}) is owned by {owner} but ARP is answered by nodes {answering:?}\n{}",
            AgentCluster::vip(k),
            c.log_tails()
        );
    }
    Ok(())
}

#[test]
#[ignore = "needs root and corosync"]
fn eight_nodes_sixty_four_vips_crash_and_return() -> Result<()> {
    wackamole::testbed::require_root();
    let _one = one_cluster_at_a_time();
    let t0 = Instant::now();
    let mut opts = AgentClusterOptions::new(BIN);
    opts.nodes = NODES;
    opts.vifs = VIFS;
    // Info: debug logs of eight agents cost the two cores noticeably.
    opts.log_level = "info".into();
    opts.profile = Profile::Default;
    // The watchdog deadline an agent derives from corosync's default token
    // (token / 2: 3450 ms for 8 nodes), not the test bed's 500 ms meant for
    // the fast profile: when n4 merges back, eight corosyncs on two cores
    // were seen silent on IPC for ~1 s, and every agent took that for a
    // frozen engine and released everything.
    opts.watchdog.1 = None;
    let mut c = AgentCluster::start(opts)?;
    let all: Vec<usize> = (0..NODES).collect();
    let snap = c.wait_until("8 nodes balanced", SETTLE, |s| {
        s.members_mature(NODES) && balanced_among(s, &all)
    })?;
    ensure!(
        snap.counts() == vec![VIFS / NODES; NODES],
        "{:?}",
        snap.counts()
    );
    check_arp(&c, &snap, &all)?;
    eprintln!("formed and settled, ARP checked: {:?}", t0.elapsed());

    // n4 crashes: nothing of it reaches the LAN any more.
    let victim = 3;
    let t = Instant::now();
    c.link_down(victim)?;
    c.corosync_mut().kill_corosync(victim)?;
    c.crash_agent(victim)?;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let snap = c.wait_until_among(&survivors, "7 survivors balanced", SETTLE, |s| {
        s.members_mature(NODES - 1) && balanced_among(s, &survivors)
    })?;
    check_arp(&c, &snap, &survivors)?;
    eprintln!("crash: survivors settled, ARP checked: {:?}", t.elapsed());

    // It comes back and takes its share again.
    let t = Instant::now();
    c.link_up(victim)?;
    c.corosync_mut().start_corosync(victim)?;
    c.start_agent(victim)?;
    let snap = c.wait_until("8 nodes balanced again", SETTLE, |s| {
        s.members_mature(NODES) && balanced_among(s, &all)
    })?;
    ensure!(
        snap.counts() == vec![VIFS / NODES; NODES],
        "{:?}",
        snap.counts()
    );
    check_arp(&c, &snap, &all)?;
    eprintln!("return: settled, ARP checked: {:?}", t.elapsed());
    eprintln!("whole test: {:?}", t0.elapsed());
    Ok(())
}

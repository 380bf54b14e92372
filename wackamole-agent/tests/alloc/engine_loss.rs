//! Regression found with the agent cluster (a corosync restarted or thawed on
//! one node): the engine reconnects and delivers a view with only this node
//! before the rings merge. A node that kept its maturity across the loss then
//! claimed every VIF at once, answering ARP beside their holders, and at the
//! merge the cluster moved everything to it and back. Reconnecting is
//! connecting anew: the node waits for maturity like at boot.

use wackamole::alloc::sim::{config, Sim};

#[test]
fn a_node_back_alone_from_engine_loss_waits_for_maturity() {
    let mut sim = Sim::uniform(21, 2, &config(4));
    sim.settle().expect("boot");
    assert_eq!(sim.held(0).len() + sim.held(1).len(), 4);
    sim.partition(&[&[0], &[1]]);
    sim.engine_lost(1);
    assert!(sim.held(1).is_empty());
    sim.engine_back(1);
    // Messages only, no timers: node 1 is alone in its view and immature.
    sim.deliver_all();
    assert!(
        sim.held(1).is_empty(),
        "node 1 claimed {:?} right after reconnecting",
        sim.held(1)
    );
    assert!(!sim.table(1).mature);
    assert_eq!(sim.held(0).len(), 4, "node 0 covers its partition");
    // Its mature timer lets it cover its own partition later.
    sim.settle().expect("partitioned");
    assert_eq!(sim.held(1).len(), 4);
    sim.heal();
    sim.settle().expect("merged");
    let mut counts = [sim.held(0).len(), sim.held(1).len()];
    counts.sort();
    assert_eq!(counts, [2, 2]);
}

/// When every member loses its engine together (a host-wide stall trips
/// every engine's evidence-gap check; corosync restarted everywhere), no
/// member is mature after the reconnection. Before, every VIF then stayed
/// dark for `mature_after`; a node that was mature says so in its STATE in
/// a view with peers, so the group assigns at its exchange.
#[test]
fn nodes_that_lose_their_engines_together_are_mature_again_in_a_view_with_peers() {
    let mut sim = Sim::uniform(22, 3, &config(6));
    sim.settle().expect("boot");
    for i in 0..3 {
        sim.engine_lost(i);
        assert!(sim.held(i).is_empty(), "node {i} held VIFs after the loss");
    }
    for i in 0..3 {
        sim.engine_back(i);
    }
    // Messages only, no timers: maturity comes from the STATEs.
    sim.deliver_all();
    for i in 0..3 {
        assert!(sim.table(i).mature, "node {i} immature after the exchange");
    }
    let held: usize = (0..3).map(|i| sim.held(i).len()).sum();
    assert_eq!(held, 6, "every VIF held at once after the exchange");
    sim.settle().expect("settled");
    let mut counts: Vec<usize> = (0..3).map(|i| sim.held(i).len()).collect();
    counts.sort();
    assert_eq!(counts, [2, 2, 2]);
}

/// A node that was never mature gains nothing from losing its engine.
#[test]
fn an_immature_node_that_loses_its_engine_still_waits() {
    let mut sim = Sim::uniform(23, 2, &config(4));
    sim.deliver_all();
    assert!(!sim.table(0).mature, "mature before its timer");
    sim.engine_lost(0);
    sim.engine_lost(1);
    sim.engine_back(0);
    sim.engine_back(1);
    sim.deliver_all();
    for i in 0..2 {
        assert!(!sim.table(i).mature, "node {i} mature without its timer");
        assert!(sim.held(i).is_empty(), "node {i} claimed while immature");
    }
}

/// Regression found with the agent cluster (a host stall): a node back from
/// an engine loss saw a view with a peer, and the view shrank to itself
/// before the exchange completed. Had the view with peers made it mature,
/// it would have claimed every VIF alone and the cluster moved them twice.
/// Maturity comes back only through a completed exchange.
#[test]
fn a_view_with_peers_that_shrinks_before_its_exchange_leaves_the_node_waiting() {
    for seed in 30..60 {
        let mut sim = Sim::uniform(seed, 3, &config(6));
        sim.settle().expect("boot");
        for i in 0..3 {
            sim.engine_lost(i);
        }
        sim.engine_back(0);
        sim.engine_back(1);
        // Node 0 is cut off before any STATE of the view {0, 1} is ordered:
        // its next view has only itself.
        sim.partition(&[&[0], &[1, 2]]);
        sim.deliver_all();
        assert!(
            sim.held(0).is_empty(),
            "seed {seed}: node 0 claimed {:?} alone right after the shrink",
            sim.held(0)
        );
        assert!(!sim.table(0).mature, "seed {seed}: node 0 mature alone");
        // Its exchange with a peer completes later: mature again at once.
        sim.heal();
        sim.engine_back(2);
        sim.deliver_all();
        for i in 0..3 {
            assert!(sim.table(i).mature, "seed {seed}: node {i} immature");
        }
        sim.settle().expect("settled");
        let mut counts: Vec<usize> = (0..3).map(|i| sim.held(i).len()).collect();
        counts.sort();
        assert_eq!(counts, [2, 2, 2], "seed {seed}");
    }
}

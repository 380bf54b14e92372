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

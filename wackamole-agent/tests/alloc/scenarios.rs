//! Hand-written allocation scenarios on the deterministic simulator. Every
//! step also runs the simulator's invariant checks.

use std::collections::BTreeSet;

use wackamole::alloc::sim::{config, Sim};
use wackamole::alloc::{
    vif_digest, Action, AllocConfig, Allocator, Input, NodeInfo, OperatorCommand, PerRound,
    Priority, Report, VifIndex, VifSpec,
};
use wackamole::membership::{MemberId, ViewId};

fn ok(sim: &mut Sim) {
    if let Err(e) = sim.settle() {
        panic!("{e}\n{}", sim.trace().join("\n"));
    }
}

fn counts(sim: &Sim) -> Vec<usize> {
    (0..sim.node_count()).map(|i| sim.held(i).len()).collect()
}

fn every_vif_once(sim: &Sim, vifs: u32) {
    for v in 0..vifs {
        let live: Vec<usize> = sim
            .holders(v)
            .into_iter()
            .filter(|&i| sim.is_alive(i))
            .collect();
        assert_eq!(live.len(), 1, "VIF {v} held by {live:?}");
    }
}

fn moves_reported(sim: &Sim, i: usize, reason: &str) -> Vec<usize> {
    sim.reports(i)
        .iter()
        .filter_map(|r| match r {
            Report::Moves { reason: r, moves } if *r == reason => Some(moves.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn cold_boot_of_one_node_waits_for_maturity_then_takes_everything() {
    let mut sim = Sim::uniform(1, 1, &config(5));
    sim.deliver_all();
    assert_eq!(sim.held(0), Vec::<u32>::new(), "immature node claimed");
    assert!(!sim.table(0).mature);
    ok(&mut sim);
    assert_eq!(sim.held(0), vec![0, 1, 2, 3, 4]);
    assert!(sim.now_ms() >= 1000, "claimed before the mature timer");
}

#[test]
fn cold_boot_of_four_nodes_spreads_evenly() {
    let mut sim = Sim::uniform(2, 4, &config(10));
    sim.deliver_all();
    assert!(counts(&sim).iter().all(|c| *c == 0));
    ok(&mut sim);
    let mut c = counts(&sim);
    c.sort_unstable();
    assert_eq!(c, vec![2, 2, 3, 3]);
    every_vif_once(&sim, 10);
    // Least loaded, ties to the lowest view index: VIF k goes to index k mod 4.
    let t = sim.table(0);
    for row in &t.vifs {
        let owner = row.owner.as_ref().map(|o| o.member.clone());
        let idx = t
            .members
            .iter()
            .position(|m| Some(&m.member) == owner.as_ref());
        assert_eq!(idx, Some(row.vif.0 as usize % 4));
    }
}

#[test]
fn crash_of_the_busiest_node_moves_only_its_vifs() {
    let mut c = config(9);
    c.balance.enabled = false;
    let mut sim = Sim::uniform(3, 3, &c);
    ok(&mut sim);
    // Make node0 the busiest by moving two VIFs to it.
    for v in sim.held(1).into_iter().take(2) {
        sim.operator(
            1,
            OperatorCommand::Move {
                vif: VifIndex(v),
                node: "node0".into(),
            },
        );
    }
    ok(&mut sim);
    assert_eq!(sim.held(0).len(), 5);
    let before1: BTreeSet<u32> = sim.held(1).into_iter().collect();
    let before2: BTreeSet<u32> = sim.held(2).into_iter().collect();
    sim.crash(0);
    sim.deliver_all();
    let after1: BTreeSet<u32> = sim.held(1).into_iter().collect();
    let after2: BTreeSet<u32> = sim.held(2).into_iter().collect();
    assert!(before1.is_subset(&after1) && before2.is_subset(&after2));
    every_vif_once(&sim, 9);
    ok(&mut sim);
}

#[test]
fn merge_of_two_partitions_that_each_hold_every_vif() {
    let mut sim = Sim::uniform(4, 4, &config(8));
    sim.partition(&[&[0, 1], &[2, 3]]);
    ok(&mut sim);
    for v in 0..8 {
        assert_eq!(sim.holders(v).len(), 2, "each side holds #{v}");
    }
    sim.heal();
    sim.deliver_all();
    every_vif_once(&sim, 8);
    ok(&mut sim);
    let mut c = counts(&sim);
    c.sort_unstable();
    assert_eq!(c, vec![2, 2, 2, 2]);
}

#[test]
fn preferred_vifs_go_to_their_node_and_come_back_after_restart() {
    let c = config(6);
    let mut p = c.clone();
    p.prefer = vec![VifIndex(2), VifIndex(5)];
    let mut sim = Sim::new(
        5,
        vec![
            ("node0".into(), c.clone()),
            ("node1".into(), p),
            ("node2".into(), c.clone()),
        ],
    );
    ok(&mut sim);
    let h1 = sim.held(1);
    assert!(h1.contains(&2) && h1.contains(&5), "node1 holds {h1:?}");
    let t = sim.table(0);
    assert_eq!(t.vifs[2].priority, Priority::PreferClaimed);
    assert_eq!(t.vifs[5].priority, Priority::PreferClaimed);
    sim.crash(1);
    ok(&mut sim);
    every_vif_once(&sim, 6);
    sim.restart(1);
    sim.deliver_all();
    // The restarted node is immature but meets mature members: it takes its
    // preferred VIFs in the state exchange.
    let h1 = sim.held(1);
    assert!(h1.contains(&2) && h1.contains(&5), "node1 holds {h1:?}");
    ok(&mut sim);
}

fn joiners_scenario(per_round: PerRound) -> Sim {
    let mut c = config(6);
    c.balance.acquisitions_per_round = per_round;
    let mut sim = Sim::uniform(6, 3, &c);
    sim.crash(1);
    sim.crash(2);
    ok(&mut sim);
    assert_eq!(sim.held(0).len(), 6);
    sim.restart(1);
    sim.restart(2);
    sim.deliver_all();
    // Minimal disruption: the view change alone moves nothing.
    assert_eq!(counts(&sim), vec![6, 0, 0]);
    sim
}

#[test]
fn gradual_balance_moves_one_vif_per_round() {
    let mut sim = joiners_scenario(PerRound::N(1));
    let mut rounds = 0;
    while counts(&sim).iter().any(|c| *c != 2) {
        assert!(sim.fire_next_timer(), "no timer left");
        sim.deliver_all();
        rounds += 1;
        assert!(rounds < 20);
    }
    let c = counts(&sim);
    assert_eq!(c.iter().sum::<usize>(), 6);
    // Every balance round (applied on node0) moved exactly one VIF: 4 rounds.
    assert_eq!(moves_reported(&sim, 0, "balance"), vec![1, 1, 1, 1]);
    ok(&mut sim);
}

#[test]
fn balance_all_moves_everything_in_one_round() {
    let mut sim = joiners_scenario(PerRound::All);
    ok(&mut sim);
    assert_eq!(counts(&sim), vec![2, 2, 2]);
    assert_eq!(moves_reported(&sim, 1, "balance"), vec![4]);
}

#[test]
fn one_shot_balance_runs_once_per_view() {
    let mut c = config(6);
    c.balance.acquisitions_per_round = PerRound::N(1);
    c.balance.one_shot = true;
    let mut sim = Sim::uniform(7, 2, &c);
    sim.crash(1);
    ok(&mut sim);
    sim.restart(1);
    ok(&mut sim);
    assert_eq!(counts(&sim), vec![5, 1]);
}

#[test]
fn a_node_with_a_different_vif_list_is_refused_everywhere() {
    let c = config(6);
    let mut odd = c.clone();
    odd.vifs[3] = VifSpec::new(["198.51.100.7/24"]);
    let mut sim = Sim::new(
        8,
        vec![
            ("node0".into(), c.clone()),
            ("node1".into(), c.clone()),
            ("node2".into(), odd),
        ],
    );
    ok(&mut sim);
    assert!(sim.held(2).is_empty());
    every_vif_once(&sim, 6);
    for i in 0..3 {
        let mismatches: Vec<&str> = sim
            .reports(i)
            .iter()
            .filter_map(|r| match r {
                Report::ConfigMismatch { node, .. } => Some(node.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(mismatches, vec!["node2"], "reports on node{i}");
        assert_eq!(sim.table(i).config_errors.len(), 1);
    }
}

#[test]
fn a_mismatched_node_that_served_alone_gives_way_at_the_merge() {
    let c = config(4);
    let mut odd = config(5);
    odd.vifs.swap(0, 1);
    let mut sim = Sim::new(
        16,
        vec![
            ("node0".into(), c.clone()),
            ("node1".into(), c),
            ("node2".into(), odd),
        ],
    );
    sim.partition(&[&[0, 1], &[2]]);
    ok(&mut sim);
    // Alone, its list is the reference: it serves its own VIFs.
    assert_eq!(sim.held(2).len(), 5);
    sim.heal();
    sim.deliver_all();
    assert!(sim.held(2).is_empty());
    every_vif_once(&sim, 4);
    ok(&mut sim);
}

#[test]
fn vif_digest_sees_count_order_and_addresses() {
    let base = config(6).vifs;
    let mut swapped = base.clone();
    swapped.swap(0, 1);
    let mut renamed = base.clone();
    renamed[5] = VifSpec::new(["192.0.2.60/24"]);
    let mut grouped = base.clone();
    grouped[0].addresses.push("203.0.113.1/24".into());
    let d = vif_digest(&base);
    assert_eq!(d, vif_digest(&config(6).vifs));
    for other in [&swapped, &renamed, &grouped, &config(5).vifs] {
        assert_ne!(d, vif_digest(other));
    }
}

#[test]
fn drain_then_undrain_and_move() {
    let mut sim = Sim::uniform(9, 3, &config(6));
    ok(&mut sim);
    sim.operator(
        2,
        OperatorCommand::Drain {
            node: "node1".into(),
        },
    );
    ok(&mut sim);
    assert!(sim.held(1).is_empty());
    assert_eq!(sim.held(0).len() + sim.held(2).len(), 6);
    assert!(sim.table(0).members.iter().any(|m| m.drained));
    // Drain survives a view change.
    sim.crash(2);
    sim.restart(2);
    ok(&mut sim);
    assert!(sim.held(1).is_empty());
    sim.operator(
        0,
        OperatorCommand::Undrain {
            node: "node1".into(),
        },
    );
    ok(&mut sim);
    assert_eq!(counts(&sim), vec![2, 2, 2]);
    // Move pins a VIF: balance does not move it back.
    let v = sim.held(0)[0];
    sim.operator(
        1,
        OperatorCommand::Move {
            vif: VifIndex(v),
            node: "node2".into(),
        },
    );
    ok(&mut sim);
    assert!(sim.held(2).contains(&v));
    assert_eq!(
        sim.table(1).vifs[v as usize].priority,
        Priority::PreferClaimed
    );
    let mut c = counts(&sim);
    c.sort_unstable();
    assert_eq!(c, vec![2, 2, 2]);
    // Unknown node or VIF: rejected, no multicast, no panic.
    for cmd in [
        OperatorCommand::Move {
            vif: VifIndex(99),
            node: "node0".into(),
        },
        OperatorCommand::Move {
            vif: VifIndex(0),
            node: "nobody".into(),
        },
        OperatorCommand::Drain {
            node: "nobody".into(),
        },
    ] {
        let before = sim.reports(0).len();
        sim.operator(0, cmd);
        assert!(matches!(
            sim.reports(0)[before..],
            [Report::Rejected { .. }]
        ));
    }
    ok(&mut sim);
}

#[test]
fn draining_every_node_keeps_every_vif_served() {
    let mut sim = Sim::uniform(10, 2, &config(4));
    ok(&mut sim);
    sim.operator(
        0,
        OperatorCommand::Drain {
            node: "node0".into(),
        },
    );
    sim.operator(
        0,
        OperatorCommand::Drain {
            node: "node1".into(),
        },
    );
    ok(&mut sim);
    every_vif_once(&sim, 4);
}

#[test]
fn weights_share_proportionally() {
    let c = config(8);
    let mut heavy = c.clone();
    heavy.weight = 3;
    let mut sim = Sim::new(11, vec![("node0".into(), c), ("node1".into(), heavy)]);
    ok(&mut sim);
    assert_eq!(counts(&sim), vec![2, 6]);
}

#[test]
fn fewer_vifs_than_members() {
    let mut sim = Sim::uniform(12, 5, &config(2));
    ok(&mut sim);
    let c = counts(&sim);
    assert_eq!(c.iter().filter(|c| **c == 1).count(), 2);
    assert_eq!(c.iter().sum::<usize>(), 2);
}

#[test]
fn fail_and_recover() {
    let mut sim = Sim::uniform(13, 3, &config(6));
    ok(&mut sim);
    sim.fail_node(0);
    assert!(sim.held(0).is_empty());
    ok(&mut sim);
    every_vif_once(&sim, 6);
    assert!(sim.held(0).is_empty());
    sim.recover(0);
    ok(&mut sim);
    assert_eq!(counts(&sim), vec![2, 2, 2]);
}

#[test]
fn engine_loss_releases_everything_until_a_new_view() {
    let mut sim = Sim::uniform(14, 2, &config(4));
    ok(&mut sim);
    sim.engine_lost(1);
    assert!(sim.held(1).is_empty());
    ok(&mut sim);
    assert_eq!(sim.held(0).len(), 4);
    sim.engine_back(1);
    ok(&mut sim);
    assert_eq!(counts(&sim), vec![2, 2]);
}

#[test]
fn vif_list_reload_rejoins_and_the_group_agrees_again() {
    let mut sim = Sim::uniform(15, 2, &config(4));
    ok(&mut sim);
    sim.config_change(1, config(5));
    ok(&mut sim);
    // Lists differ with two members: the tie goes to the lowest view index.
    let excluded: Vec<usize> = (0..2).filter(|&i| sim.held(i).is_empty()).collect();
    assert_eq!(excluded.len(), 1);
    sim.config_change(1 - excluded[0], config(5));
    ok(&mut sim);
    every_vif_once(&sim, 5);
}

/// Direct use of the state machine, without the simulator.
#[test]
fn allocator_rejects_garbage_and_strangers() {
    let mut a = Allocator::new(
        AllocConfig::new(vec![VifSpec::new(["192.0.2.1/24"])]),
        NodeInfo { name: "n".into() },
    );
    assert!(a
        .handle(Input::Message {
            sender: MemberId("x".into()),
            payload: vec![1, 2, 3],
        })
        .is_empty());
    let actions = a.handle(Input::View {
        id: ViewId(1),
        members: vec![MemberId("me".into())],
        my_index: 0,
    });
    assert!(actions.iter().any(|x| matches!(x, Action::Multicast(_))));
    let out = a.handle(Input::Message {
        sender: MemberId("me".into()),
        payload: b"WKAM\x09\x01".to_vec(),
    });
    assert!(
        matches!(&out[..], [Action::Report(Report::BadMessage { error, .. })] if error.contains("newer wackamole"))
    );
    let out = a.handle(Input::Message {
        sender: MemberId("stranger".into()),
        payload: vec![],
    });
    assert!(matches!(
        &out[..],
        [Action::Report(Report::BadMessage { .. })]
    ));
    let out = a.handle(Input::View {
        id: ViewId(2),
        members: vec![],
        my_index: 3,
    });
    assert!(matches!(
        &out[..],
        [Action::Report(Report::BadMessage { .. })]
    ));
    assert_eq!(a.held().count(), 0);
}

//! Allocation cost at one node: a full state exchange after a view change (the
//! view plus every member's STATE, decoding included) and a balance round
//! (the leader plans, multicasts and applies it), and a condemnation by
//! the LAN detector (what a survivor takes at once). Prints a table and writes
//! target/bench/allocation.json (median and p95 in microseconds).
//!
//! Run: `cargo bench -p wackamole-agent --bench allocation`

mod support;
use std::time::{Duration, Instant};
use support::stats;

use wackamole::alloc::wire::{encode, Message, StateMsg};
use wackamole::alloc::{
    vif_digest, Action, AllocConfig, Allocator, Input, NodeInfo, PerRound, Priority, TimerKind,
    VifSpec,
};
use wackamole::membership::{MemberId, ViewId};

fn config(vifs: usize) -> AllocConfig {
    let list = (0..vifs)
        .map(|i| VifSpec::new([format!("10.{}.{}.{}/16", i >> 16, (i >> 8) & 255, i & 255)]))
        .collect();
    let mut c = AllocConfig::new(list);
    c.mature_after = Duration::ZERO;
    c.balance.acquisitions_per_round = PerRound::All;
    c
}

fn member(i: usize) -> MemberId {
    MemberId(format!("m{i:04}"))
}

/// STATE of member `i` of `view` holding every VIF v with v % modulo == i
/// (nothing if `modulo` is 0).
fn state(view: ViewId, i: usize, cfg: &AllocConfig, modulo: usize, mature: bool) -> Vec<u8> {
    let held = (0..cfg.vifs.len())
        .filter(|v| modulo != 0 && v % modulo == i)
        .map(|v| (v as u32, Priority::Claimed))
        .collect();
    encode(&Message::State(StateMsg {
        view,
        member: member(i).0,
        index: i as u32,
        node: format!("node{i}"),
        mature,
        drained: false,
        weight: 1,
        vif_count: cfg.vifs.len() as u32,
        digest: vif_digest(&cfg.vifs),
        held,
        prefer: Vec::new(),
        max_version: wackamole::alloc::wire::VERSION,
        yielding: Vec::new(),
        ineligible: Vec::new(),
    }))
}

fn multicasts(actions: &[Action]) -> Vec<Vec<u8>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Multicast(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// Runs a view with `members` members (me = index 0) through its exchange;
/// `others` are the STATEs of members 1.. .
fn exchange(a: &mut Allocator, view: ViewId, members: usize, others: &[Vec<u8>]) {
    let out = a.handle(Input::View {
        id: view,
        members: (0..members).map(member).collect(),
        my_index: 0,
    });
    for p in multicasts(&out) {
        a.handle(Input::Message {
            sender: member(0),
            payload: p,
        });
    }
    for (i, p) in others.iter().enumerate() {
        a.handle(Input::Message {
            sender: member(i + 1),
            payload: p.clone(),
        });
    }
}

fn main() {
    let mut rows = Vec::new();
    for (vifs, members, iters) in [(1_000usize, 8usize, 300usize), (10_000, 64, 40)] {
        let cfg = config(vifs);
        // A node after a previous view of `n` members where member i held
        // v % n == i.
        let setup = |n: usize| {
            let prev = ViewId(1);
            let mut a = Allocator::new(
                cfg.clone(),
                NodeInfo {
                    name: "node0".into(),
                },
            );
            let others: Vec<Vec<u8>> = (1..n).map(|i| state(prev, i, &cfg, n, true)).collect();
            exchange(&mut a, prev, n, &others);
            assert!(a.held().count() > 0);
            a
        };
        let base = setup(members + 1);

        // View change: the last member crashed; its VIFs are free again.
        let next = ViewId(2);
        let others: Vec<Vec<u8>> = (1..members)
            .map(|i| state(next, i, &cfg, members + 1, true))
            .collect();
        let mut samples = Vec::new();
        for _ in 0..iters {
            let mut a = base.clone();
            let t = Instant::now();
            exchange(&mut a, next, members, &others);
            samples.push(t.elapsed());
            assert_eq!(
                a.table().vifs.iter().filter(|r| r.owner.is_none()).count(),
                0
            );
        }
        rows.push(("view change", vifs, members, stats(samples)));

        // Balance round: a new member holding nothing joined; the leader (me)
        // plans every move, multicasts it and applies it on delivery.
        let join = ViewId(3);
        let mut joined = setup(members - 1);
        let others: Vec<Vec<u8>> = (1..members)
            .map(|i| {
                if i == members - 1 {
                    state(join, i, &cfg, 0, false)
                } else {
                    state(join, i, &cfg, members - 1, true)
                }
            })
            .collect();
        exchange(&mut joined, join, members, &others);
        assert_eq!(joined.table().members.last().map(|m| m.count), Some(0));
        let mut samples = Vec::new();
        let mut moved = 0;
        for _ in 0..iters {
            let mut a = joined.clone();
            let t = Instant::now();
            let out = a.handle(Input::Timer(TimerKind::Balance));
            for p in multicasts(&out) {
                a.handle(Input::Message {
                    sender: member(0),
                    payload: p,
                });
            }
            samples.push(t.elapsed());
            moved = a.table().members.last().map(|m| m.count).unwrap_or(0);
        }
        assert!(moved > 0, "the balance round moved nothing");
        rows.push(("balance round", vifs, members, stats(samples)));
    }
    // Condemnation (LAN detector, mode act): in a settled view of three,
    // member 2 is condemned and I take at once the VIFs both settlements
    // (the view's and the EVICT's) give me; on a takeover's critical path.
    for (vifs, iters) in [(1_000usize, 300usize), (4_000, 100)] {
        let mut cfg = config(vifs);
        cfg.takeover_at_view = true;
        let view = ViewId(1);
        let mut base = Allocator::new(
            cfg.clone(),
            NodeInfo {
                name: "node0".into(),
            },
        );
        let others: Vec<Vec<u8>> = (1..3).map(|i| state(view, i, &cfg, 3, true)).collect();
        exchange(&mut base, view, 3, &others);
        let mut samples = Vec::new();
        let mut took = 0;
        for _ in 0..iters {
            let mut a = base.clone();
            let t = Instant::now();
            let out = a.handle(Input::Condemned(vec![member(2)]));
            samples.push(t.elapsed());
            took = out
                .iter()
                .filter(|a| matches!(a, Action::Acquire(_)))
                .count();
        }
        assert!(took > 0, "the condemnation took nothing");
        rows.push(("condemnation", vifs, 3, stats(samples)));
    }
    println!(
        "{:<14} {:>7} {:>8} {:>12} {:>12}",
        "case", "VIFs", "members", "median µs", "p95 µs"
    );
    let mut json = Vec::new();
    for (case, vifs, members, (median, p95)) in &rows {
        println!("{case:<14} {vifs:>7} {members:>8} {median:>12.1} {p95:>12.1}");
        json.push(serde_json::json!({
            "case": case, "vifs": vifs, "members": members,
            "median_us": median, "p95_us": p95,
        }));
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench");
    let written = std::fs::create_dir_all(&dir).and_then(|_| {
        std::fs::write(
            dir.join("allocation.json"),
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
    });
    match written {
        Ok(()) => println!("wrote {}", dir.join("allocation.json").display()),
        Err(e) => eprintln!(
            "cannot write {}: {e}",
            dir.join("allocation.json").display()
        ),
    }
}

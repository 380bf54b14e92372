//! Deterministic simulator of a wackamole group (test support; the daemon
//! does not use it).
//!
//! N nodes each run the real [`Allocator`] over a model of an Extended Virtual
//! Synchrony engine: every member of a view gets the same views and the same
//! agreed messages in the same order; a message sent in a view is delivered
//! in that view or not at all (at a view change each new component delivers
//! its own prefix of the undelivered ones); a transitional signal precedes
//! every view but a node's first. Partitions, merges, crashes, restarts (new
//! member id, immature, holding nothing), fail/recover, engine loss, operator
//! commands and timers (virtual time) are interleaved by a seeded PRNG.
//! Invariants are checked after every step (see [`Sim::check`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use super::{
    Action, AllocConfig, Allocator, Input, NodeInfo, OperatorCommand, PerRound, Priority, Report,
    TableView, TimerKind, VifIndex, VifSpec,
};
use crate::membership::{MemberId, ViewId};

/// splitmix64: small, seedable, good enough to drive schedules.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (0 if n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    /// True with probability pct/100.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }
}

/// `count` VIFs with documentation addresses.
pub fn vifs(count: usize) -> Vec<VifSpec> {
    (0..count)
        .map(|i| VifSpec::new([format!("192.0.2.{}/24", i + 1)]))
        .collect()
}

/// A configuration for simulations: `count` VIFs, mature after 1 s, balance
/// every 500 ms.
pub fn config(count: usize) -> AllocConfig {
    let mut c = AllocConfig::new(vifs(count));
    c.mature_after = Duration::from_millis(1000);
    c.balance.interval = Duration::from_millis(500);
    c
}

struct Node {
    name: String,
    member: MemberId,
    incarnation: u32,
    config: AllocConfig,
    alloc: Allocator,
    alive: bool,
    /// Not failed by the operator (between Leave and Join).
    joined: bool,
    engine_ok: bool,
    partition: u32,
    inbox: VecDeque<Input>,
    /// The view this node last processed, and how many agreed messages of
    /// it it applied.
    installed: Option<ViewId>,
    position: u64,
    /// The view the group has put this node in (maybe not processed yet).
    group_view: Option<ViewId>,
    timers: [Option<u64>; 4],
    /// Held according to the Acquire/Release actions.
    held: BTreeSet<u32>,
    reports: Vec<Report>,
    /// Bumped at every restart and recover: (node, epoch) names one life.
    epoch: u32,
}

struct GroupView {
    members: Vec<usize>,
    pending: VecDeque<(usize, Vec<u8>)>,
}

/// A simulated group.
pub struct Sim {
    rng: Rng,
    now: u64,
    nodes: Vec<Node>,
    views: HashMap<ViewId, GroupView>,
    next_view: u128,
    trace: Option<Vec<String>>,
    keep_reports: bool,
    /// Operator moves pin VIFs, which the preference check must allow.
    moved_by_operator: bool,
    error: Option<String>,
    /// Independent maturity bookkeeping: lives whose mature timer fired or
    /// that acquired, and the lives that formed each view.
    matured: BTreeSet<(usize, u32)>,
    view_lives: HashMap<ViewId, Vec<(usize, u32)>>,
    /// Every STATE delivered, per view and sender index.
    view_states: HashMap<ViewId, HashMap<u32, super::wire::StateMsg>>,
}

/// The agreed owner (member index) of every VIF, once the exchange is
/// complete and the view mature.
fn agreed_owners(a: &Allocator) -> Option<(ViewId, usize, Vec<Option<u32>>)> {
    let g = a.agreed()?;
    // Hand-overs are not modelled here yet (see the Yield arm below).
    if g.version >= 2 && !g.handovers.is_empty() {
        return None;
    }
    Some((g.view, g.me, g.owners))
}

fn timer_slot(kind: TimerKind) -> usize {
    match kind {
        TimerKind::Mature => 0,
        TimerKind::Balance => 1,
        TimerKind::Exchange => 2,
        TimerKind::Eligibility => 3,
    }
}

impl Sim {
    /// A group of nodes (name, configuration), all up, joined and connected.
    pub fn new(seed: u64, nodes: Vec<(String, AllocConfig)>) -> Self {
        let mut sim = Self {
            rng: Rng::new(seed),
            now: 0,
            nodes: Vec::new(),
            views: HashMap::new(),
            next_view: 1,
            trace: None,
            keep_reports: true,
            moved_by_operator: false,
            error: None,
            matured: BTreeSet::new(),
            view_lives: HashMap::new(),
            view_states: HashMap::new(),
        };
        for (name, config) in nodes {
            let member = MemberId(String::new());
            sim.nodes.push(Node {
                alloc: Allocator::new(config.clone(), NodeInfo { name: name.clone() }),
                name,
                member,
                incarnation: 0,
                config,
                alive: true,
                joined: true,
                engine_ok: true,
                partition: 0,
                inbox: VecDeque::new(),
                installed: None,
                position: 0,
                group_view: None,
                timers: [None; 4],
                held: BTreeSet::new(),
                reports: Vec::new(),
                epoch: 0,
            });
            let i = sim.nodes.len() - 1;
            sim.nodes[i].member = sim.fresh_member(i);
        }
        sim.regroup();
        sim
    }

    /// `n` nodes named node0.. with the same configuration.
    pub fn uniform(seed: u64, n: usize, config: &AllocConfig) -> Self {
        Self::new(
            seed,
            (0..n)
                .map(|i| (format!("node{i}"), config.clone()))
                .collect(),
        )
    }

    /// Record a trace of every step (for replaying a failing seed).
    pub fn with_trace(mut self) -> Self {
        self.trace = Some(Vec::new());
        self
    }

    fn fresh_member(&mut self, i: usize) -> MemberId {
        // A random prefix so that the view order (and the leader) varies.
        let r = self.rng.below(0x10000);
        MemberId(format!("{r:04x}-n{i}i{}", self.nodes[i].incarnation))
    }

    fn log(&mut self, f: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            let line = f();
            t.push(format!("t={} {line}", self.now));
        }
    }

    fn fail(&mut self, msg: String) {
        if self.error.is_none() {
            self.error = Some(msg);
        }
    }

    /// The first invariant violation, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The recorded trace.
    pub fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or(&[])
    }

    // ----- group model -----

    /// Recomputes the components and installs new views where they changed.
    fn regroup(&mut self) {
        let mut comps: Vec<(u32, Vec<usize>)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.alive && n.joined && n.engine_ok {
                match comps.iter_mut().find(|(p, _)| *p == n.partition) {
                    Some((_, v)) => v.push(i),
                    None => comps.push((n.partition, vec![i])),
                }
            }
        }
        let in_comp: BTreeSet<usize> = comps.iter().flat_map(|(_, v)| v.clone()).collect();
        for i in 0..self.nodes.len() {
            if !in_comp.contains(&i) {
                self.nodes[i].group_view = None;
            }
        }
        for (_, mut comp) in comps {
            comp.sort_by(|a, b| self.nodes[*a].member.cmp(&self.nodes[*b].member));
            let g0 = self.nodes[comp[0]].group_view;
            let unchanged = g0.is_some_and(|g| {
                comp.iter().all(|&i| self.nodes[i].group_view == Some(g))
                    && self.views.get(&g).is_some_and(|v| {
                        let mut a = v.members.clone();
                        a.sort_unstable();
                        let mut b = comp.clone();
                        b.sort_unstable();
                        a == b
                    })
            });
            if unchanged {
                continue;
            }
            // Each old view delivers a prefix of its undelivered messages to
            // those of its members that move on together.
            let olds: BTreeSet<ViewId> = comp
                .iter()
                .filter_map(|&i| self.nodes[i].group_view)
                .collect();
            for g in olds {
                let pending: Vec<(usize, Vec<u8>)> = self
                    .views
                    .get(&g)
                    .map(|v| v.pending.iter().cloned().collect())
                    .unwrap_or_default();
                let k = self.rng.below(pending.len() + 1);
                for (sender, payload) in pending.into_iter().take(k) {
                    let sender = self.nodes[sender].member.clone();
                    for &i in &comp {
                        if self.nodes[i].group_view == Some(g) {
                            self.nodes[i].inbox.push_back(Input::Message {
                                sender: sender.clone(),
                                payload: payload.clone(),
                            });
                        }
                    }
                }
            }
            let id = ViewId(self.next_view);
            self.next_view += 1;
            let members: Vec<MemberId> =
                comp.iter().map(|&i| self.nodes[i].member.clone()).collect();
            for (idx, &i) in comp.iter().enumerate() {
                let n = &mut self.nodes[i];
                if n.group_view.is_some() {
                    n.inbox.push_back(Input::Transitional);
                }
                n.inbox.push_back(Input::View {
                    id,
                    members: members.clone(),
                    my_index: idx,
                });
                n.group_view = Some(id);
            }
            self.log(|| format!("view {id} = {comp:?}"));
            let lives = comp.iter().map(|&i| (i, self.nodes[i].epoch)).collect();
            self.view_lives.insert(id, lives);
            self.views.insert(
                id,
                GroupView {
                    members: comp,
                    pending: VecDeque::new(),
                },
            );
        }
        let live: BTreeSet<ViewId> = self.nodes.iter().filter_map(|n| n.group_view).collect();
        self.views.retain(|id, _| live.contains(id));
    }

    /// Feeds one input to node `i` and carries out its actions.
    fn feed(&mut self, i: usize, input: Input) {
        match &input {
            Input::View { id, .. } => {
                self.nodes[i].installed = Some(*id);
                self.nodes[i].position = 0;
            }
            Input::Message { .. } => self.nodes[i].position += 1,
            Input::EngineLost | Input::Fail => self.nodes[i].installed = None,
            _ => {}
        }
        if self.trace.is_some() {
            let desc = match &input {
                Input::Message { sender, payload } => format!(
                    "n{i} <- {sender}: {:?}",
                    super::wire::decode(payload).map(|m| short(&m))
                ),
                other => format!("n{i} <- {other:?}"),
            };
            self.log(|| desc);
        }
        if let Input::Message { payload, .. } = &input {
            if let Ok(super::wire::Message::State(st)) = super::wire::decode(payload) {
                self.view_states
                    .entry(st.view)
                    .or_default()
                    .insert(st.index, st);
            }
        }
        let was_complete = self.nodes[i].alloc.exchange_complete();
        let is_message = matches!(input, Input::Message { .. });
        let actions = self.nodes[i].alloc.handle(input);
        let completed_now = is_message && !was_complete && self.nodes[i].alloc.exchange_complete();
        let mut acquired = false;
        for a in actions {
            match a {
                Action::Acquire(v) => {
                    acquired = true;
                    if !self.nodes[i].held.insert(v.0) {
                        self.fail(format!("n{i} acquired {v} twice"));
                    }
                    if !self.nodes[i].alloc.is_mature() {
                        self.fail(format!("n{i} acquired {v} while immature"));
                    }
                    // Independently: someone in my view must have matured.
                    let life = (i, self.nodes[i].epoch);
                    let someone = self.nodes[i]
                        .installed
                        .and_then(|view| self.view_lives.get(&view))
                        .is_some_and(|lives| lives.iter().any(|l| self.matured.contains(l)));
                    if !someone {
                        self.fail(format!(
                            "n{i} acquired {v} in a view where no member has matured"
                        ));
                    }
                    self.matured.insert(life);
                    self.log(|| format!("n{i} ACQUIRE {v}"));
                }
                Action::Release(v) => {
                    if !self.nodes[i].held.remove(&v.0) {
                        self.fail(format!("n{i} released {v} it did not hold"));
                    }
                    if completed_now && !self.release_justified(i, v.0) {
                        self.fail(format!(
                            "n{i} released {v} at a view change although no other member claimed or preferred it"
                        ));
                    }
                    self.log(|| format!("n{i} RELEASE {v}"));
                }
                Action::Multicast(payload) => {
                    let n = &self.nodes[i];
                    if n.installed.is_some() && n.installed == n.group_view {
                        if let Some(g) = n.installed.and_then(|g| self.views.get_mut(&g)) {
                            g.pending.push_back((i, payload));
                        }
                    }
                }
                Action::ArmTimer { kind, after } => {
                    self.nodes[i].timers[timer_slot(kind)] =
                        Some(self.now + after.as_millis() as u64)
                }
                Action::CancelTimer(kind) => self.nodes[i].timers[timer_slot(kind)] = None,
                // Hand-over steps are not modelled here yet (the alloc branch
                // brings the simulator up to date); the agent answers them.
                Action::Yield(v) => {
                    let version = self.nodes[i].alloc.group_version();
                    self.log(|| format!("n{i} YIELD {v} (group version {version:?})"))
                }
                Action::Reclaim(v) => self.log(|| format!("n{i} RECLAIM {v}")),
                Action::Announce(v) => {
                    let ineligible = self.nodes[i].alloc.advertised_ineligible().clone();
                    self.log(|| format!("n{i} ANNOUNCE {v} (ineligible {ineligible:?})"))
                }
                Action::Leave => {
                    self.nodes[i].joined = false;
                    self.nodes[i].inbox.clear();
                    self.nodes[i].installed = None;
                    self.regroup();
                }
                Action::Join => {
                    self.nodes[i].joined = true;
                    self.regroup();
                }
                Action::Report(r) => {
                    self.log(|| format!("n{i} report: {r}"));
                    if self.keep_reports {
                        self.nodes[i].reports.push(r);
                    }
                }
            }
        }
        // Maturity spreads through views: a member of a view with a matured
        // member is mature once its exchange is complete.
        if self.nodes[i].alloc.is_mature() && self.nodes[i].alloc.exchange_complete() {
            let life = (i, self.nodes[i].epoch);
            let spread = self.nodes[i]
                .installed
                .and_then(|view| self.view_lives.get(&view))
                .is_some_and(|lives| lives.iter().any(|l| self.matured.contains(l)));
            if spread {
                self.matured.insert(life);
            }
        }
        if acquired && !self.nodes[i].alloc.exchange_complete() {
            self.fail(format!("n{i} acquired before its state exchange completed"));
        }
    }

    /// Minimal disruption: at the end of a state exchange a member gives up a
    /// VIF only if another member claimed or preferred it, or if it is
    /// drained or excluded.
    fn release_justified(&self, i: usize, v: u32) -> bool {
        if self.nodes[i].alloc.phase() == super::Phase::Excluded {
            return true;
        }
        let Some(states) = self.nodes[i]
            .installed
            .and_then(|view| self.view_states.get(&view))
        else {
            return false;
        };
        let me = &self.nodes[i].member.0;
        states.values().any(|s| {
            if s.member == *me {
                s.drained
            } else {
                s.held.iter().any(|(h, _)| *h == v) || s.prefer.contains(&v)
            }
        })
    }

    // ----- steps -----

    /// Delivers the next event of a random node; false if every inbox is empty.
    pub fn deliver_one(&mut self) -> bool {
        let ready: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && !self.nodes[i].inbox.is_empty())
            .collect();
        if ready.is_empty() {
            return false;
        }
        let i = ready[self.rng.below(ready.len())];
        if let Some(input) = self.nodes[i].inbox.pop_front() {
            self.feed(i, input);
        }
        true
    }

    /// Orders the next undelivered message of a random view; false if none.
    pub fn order_one(&mut self) -> bool {
        let mut ready: Vec<ViewId> = self
            .views
            .iter()
            .filter(|(_, v)| !v.pending.is_empty())
            .map(|(id, _)| *id)
            .collect();
        if ready.is_empty() {
            return false;
        }
        ready.sort_unstable();
        let g = ready[self.rng.below(ready.len())];
        let Some(view) = self.views.get_mut(&g) else {
            return false;
        };
        let Some((sender, payload)) = view.pending.pop_front() else {
            return false;
        };
        let members = view.members.clone();
        let sender = self.nodes[sender].member.clone();
        for i in members {
            if self.nodes[i].group_view == Some(g) {
                self.nodes[i].inbox.push_back(Input::Message {
                    sender: sender.clone(),
                    payload: payload.clone(),
                });
            }
        }
        true
    }

    /// Delivers and orders until nothing is in flight (timers excluded).
    pub fn deliver_all(&mut self) {
        loop {
            // Interleave deliveries and orderings at random.
            let progressed = if self.rng.pct(50) {
                let delivered = self.deliver_one();
                delivered || self.order_one()
            } else {
                let ordered = self.order_one();
                ordered || self.deliver_one()
            };
            self.check();
            if !progressed || self.error.is_some() {
                return;
            }
        }
    }

    /// Fires the earliest timer (advancing virtual time); false if none.
    pub fn fire_next_timer(&mut self) -> bool {
        let mut best: Option<(u64, usize, usize)> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.alive {
                continue;
            }
            for (k, t) in n.timers.iter().enumerate() {
                if let Some(t) = t {
                    if best.is_none_or(|(bt, _, _)| *t < bt) {
                        best = Some((*t, i, k));
                    }
                }
            }
        }
        let Some((t, i, k)) = best else {
            return false;
        };
        self.now = self.now.max(t);
        self.nodes[i].timers[k] = None;
        let kind = if k == 0 {
            TimerKind::Mature
        } else {
            TimerKind::Balance
        };
        if kind == TimerKind::Mature && self.nodes[i].joined {
            self.matured.insert((i, self.nodes[i].epoch));
        }
        self.feed(i, Input::Timer(kind));
        true
    }

    /// Runs until nothing is in flight and timers no longer change anything
    /// (balance converged), checking invariants; then checks convergence.
    pub fn settle(&mut self) -> Result<(), String> {
        let mut idle = 0;
        let mut firings = 0;
        self.deliver_all();
        while self.error.is_none() {
            let before = self.activity();
            if !self.fire_next_timer() {
                break;
            }
            self.deliver_all();
            firings += 1;
            if self.activity() == before {
                idle += 1;
                let mature_pending = self.nodes.iter().any(|n| n.alive && n.timers[0].is_some());
                if idle > 2 * self.nodes.len() + 2 && !mature_pending {
                    break;
                }
            } else {
                idle = 0;
            }
            if firings > 2000 {
                self.fail("no convergence after 2000 timer firings".into());
            }
        }
        if self.error.is_none() {
            self.check_settled();
        }
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// A fingerprint of holdings and views, to see whether timers still act.
    fn activity(&self) -> (Vec<BTreeSet<u32>>, Vec<Option<ViewId>>, Vec<bool>) {
        (
            self.nodes.iter().map(|n| n.held.clone()).collect(),
            self.nodes.iter().map(|n| n.installed).collect(),
            self.nodes.iter().map(|n| n.alloc.is_mature()).collect(),
        )
    }

    // ----- faults and operators -----

    pub fn crash(&mut self, i: usize) {
        self.log(|| format!("CRASH n{i}"));
        let n = &mut self.nodes[i];
        n.alive = false;
        n.inbox.clear();
        n.timers = [None; 4];
        n.held.clear();
        n.installed = None;
        self.regroup();
    }

    /// Restarts a crashed node: new member id, immature, holding nothing.
    pub fn restart(&mut self, i: usize) {
        let config = self.nodes[i].config.clone();
        self.restart_with(i, config);
    }

    pub fn restart_with(&mut self, i: usize, config: AllocConfig) {
        self.log(|| format!("RESTART n{i}"));
        if self.nodes[i].alive {
            self.crash(i);
        }
        self.nodes[i].incarnation += 1;
        let member = self.fresh_member(i);
        let n = &mut self.nodes[i];
        n.member = member;
        n.alloc = Allocator::new(
            config.clone(),
            NodeInfo {
                name: n.name.clone(),
            },
        );
        n.config = config;
        n.alive = true;
        n.joined = true;
        n.engine_ok = true;
        n.position = 0;
        n.epoch += 1;
        self.regroup();
    }

    /// Splits the nodes into the given groups (others keep partition 0).
    pub fn partition(&mut self, groups: &[&[usize]]) {
        self.log(|| format!("PARTITION {groups:?}"));
        for n in &mut self.nodes {
            n.partition = 0;
        }
        for (g, members) in groups.iter().enumerate() {
            for &i in *members {
                self.nodes[i].partition = g as u32 + 1;
            }
        }
        self.regroup();
    }

    pub fn heal(&mut self) {
        self.partition(&[]);
    }

    /// Operator `fail` on node i.
    pub fn fail_node(&mut self, i: usize) {
        self.feed(i, Input::Fail);
    }

    /// Operator `recover` on node i.
    pub fn recover(&mut self, i: usize) {
        if !self.nodes[i].joined {
            self.nodes[i].epoch += 1;
        }
        self.feed(i, Input::Recover);
    }

    /// The engine of node i is lost; it reconnects with [`Sim::engine_back`].
    pub fn engine_lost(&mut self, i: usize) {
        self.log(|| format!("ENGINE LOST n{i}"));
        self.nodes[i].engine_ok = false;
        self.nodes[i].inbox.clear();
        self.regroup();
        self.feed(i, Input::EngineLost);
    }

    pub fn engine_back(&mut self, i: usize) {
        self.log(|| format!("ENGINE BACK n{i}"));
        self.nodes[i].engine_ok = true;
        self.regroup();
    }

    pub fn operator(&mut self, i: usize, cmd: OperatorCommand) {
        if matches!(cmd, OperatorCommand::Move { .. }) {
            self.moved_by_operator = true;
        }
        self.feed(i, Input::Operator(cmd));
    }

    pub fn config_change(&mut self, i: usize, config: AllocConfig) {
        self.nodes[i].config = config.clone();
        self.feed(i, Input::ConfigChanged(config));
    }

    // ----- observation -----

    /// VIFs node i holds (from its actions).
    pub fn held(&self, i: usize) -> Vec<u32> {
        self.nodes[i].held.iter().copied().collect()
    }

    /// Nodes holding VIF v.
    pub fn holders(&self, v: u32) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].held.contains(&v))
            .collect()
    }

    pub fn table(&self, i: usize) -> TableView {
        self.nodes[i].alloc.table()
    }

    pub fn reports(&self, i: usize) -> &[Report] {
        &self.nodes[i].reports
    }

    pub fn now_ms(&self) -> u64 {
        self.now
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].alive
    }

    // ----- invariants -----

    /// Checks, after every step:
    /// 1. members of one view at the same agreed prefix, with the exchange
    ///    complete, hold disjoint VIFs and have the same table;
    /// 2. a member with a complete, mature exchange: every VIF has an owner
    ///    and I hold exactly what the table gives me;
    /// 4. what the allocator says it holds equals its acquires minus releases;
    /// 5. no acquisition while immature or before the exchange (in `feed`).
    pub fn check(&mut self) {
        if self.error.is_some() {
            return;
        }
        let mut groups: HashMap<(ViewId, u64), Vec<usize>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.alive {
                continue;
            }
            let said: BTreeSet<u32> = n.alloc.held().map(|v| v.0).collect();
            if said != n.held {
                let msg = format!(
                    "n{i} says it holds {said:?} but its actions add up to {:?}",
                    n.held
                );
                return self.fail(msg);
            }
            if let Some((_, me, owners)) = agreed_owners(&n.alloc) {
                if let Some(v) = owners.iter().position(Option::is_none) {
                    return self.fail(format!("n{i}: VIF #{v} has no owner in a complete view"));
                }
                let mine: BTreeSet<u32> = owners
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| **o == Some(me as u32))
                    .map(|(v, _)| v as u32)
                    .collect();
                if mine != n.held {
                    let msg = format!("n{i} holds {:?} but its table gives it {mine:?}", n.held);
                    return self.fail(msg);
                }
            }
            if let Some(v) = n.installed {
                groups.entry((v, n.position)).or_default().push(i);
            }
        }
        for ((view, pos), members) in groups {
            if members.len() < 2 || !self.nodes[members[0]].alloc.exchange_complete() {
                continue;
            }
            let mut seen: HashMap<u32, usize> = HashMap::new();
            for &i in &members {
                for &v in &self.nodes[i].held {
                    if let Some(j) = seen.insert(v, i) {
                        return self.fail(format!(
                            "n{j} and n{i} both hold #{v} in view {view} after {pos} messages"
                        ));
                    }
                }
            }
            let tables: Vec<_> = members
                .iter()
                .filter_map(|&i| agreed_owners(&self.nodes[i].alloc).map(|(_, _, o)| o))
                .collect();
            if tables.windows(2).any(|w| w[0] != w[1]) {
                return self.fail(format!(
                    "members {members:?} of view {view} disagree on the table after {pos} messages"
                ));
            }
            // The whole view at one point: every owner in the table holds its VIF.
            let lives = self.view_lives.get(&view).cloned().unwrap_or_default();
            if members.len() == lives.len() {
                if let Some(table) = tables.first() {
                    for (v, owner) in table.iter().enumerate() {
                        let holder = owner.and_then(|o| lives.get(o as usize)).map(|l| l.0);
                        if !holder.is_some_and(|h| self.nodes[h].held.contains(&(v as u32))) {
                            return self.fail(format!(
                                "view {view} after {pos} messages: #{v} is given to n{holder:?}, which does not hold it"
                            ));
                        }
                    }
                }
            }
        }
    }

    /// At quiescence: every component covers every VIF exactly once (if
    /// mature), preferences are honoured and balance has converged.
    fn check_settled(&mut self) {
        let views: Vec<(ViewId, Vec<usize>)> = self
            .views
            .iter()
            .map(|(id, v)| (*id, v.members.clone()))
            .collect();
        for (id, members) in views {
            // Judge the component by a member whose VIF list is the group's.
            let first = members
                .iter()
                .copied()
                .find(|&i| self.nodes[i].alloc.phase() != super::Phase::Excluded)
                .unwrap_or(members[0]);
            let t = self.nodes[first].alloc.table();
            if t.view != Some(id) {
                return self.fail(format!(
                    "n{first} has not installed view {id} at quiescence"
                ));
            }
            if !t.mature {
                return self.fail(format!("n{first} still immature at quiescence"));
            }
            // Exactly one holder per VIF among the component.
            let vif_count = t.vifs.len();
            let mut holders = vec![0usize; vif_count];
            for &i in &members {
                for &v in &self.nodes[i].held {
                    if let Some(h) = holders.get_mut(v as usize) {
                        *h += 1;
                    }
                }
            }
            if let Some(v) = holders.iter().position(|h| *h != 1) {
                return self.fail(format!(
                    "view {id}: VIF #{v} has {} holders at quiescence",
                    holders[v]
                ));
            }
            let any_undrained = t.members.iter().any(|m| m.config_ok && !m.drained);
            let eligible: Vec<bool> = t
                .members
                .iter()
                .map(|m| m.config_ok && (!m.drained || !any_undrained))
                .collect();
            // Drained (unless every valid member is) and mismatched members
            // hold nothing.
            for &i in &members {
                let idx = t
                    .members
                    .iter()
                    .position(|m| m.member == self.nodes[i].member);
                if idx.is_some_and(|k| !eligible[k]) && !self.nodes[i].held.is_empty() {
                    return self.fail(format!(
                        "view {id}: n{i} is drained or excluded but holds {:?}",
                        self.nodes[i].held
                    ));
                }
            }
            // Preferences: a VIF an eligible member prefers is held with
            // PREFER_CLAIMED, by a preferring member unless pinned by `move`.
            for &i in &members {
                let Some(idx) = t
                    .members
                    .iter()
                    .position(|m| m.member == self.nodes[i].member)
                else {
                    continue;
                };
                if !eligible[idx] {
                    continue;
                }
                for p in self.nodes[i].config.prefer.clone() {
                    let Some(row) = t.vifs.get(p.0 as usize) else {
                        continue;
                    };
                    let owner_prefers = row.owner.as_ref().is_some_and(|o| {
                        self.nodes.iter().any(|n| {
                            n.alive && n.member == o.member && n.config.prefer.contains(&p)
                        })
                    });
                    if row.priority != Priority::PreferClaimed
                        || !(owner_prefers || self.moved_by_operator)
                    {
                        return self.fail(format!(
                            "view {id}: {p} preferred by n{i} but held by {:?} as {:?}",
                            row.owner, row.priority
                        ));
                    }
                }
            }
            // Balance convergence.
            let b = &self.nodes[first].config.balance;
            if b.enabled && !b.one_shot {
                let mut movable = vec![false; t.members.len()];
                for row in &t.vifs {
                    if row.priority == Priority::Claimed {
                        if let Some(o) = &row.owner {
                            if let Some(k) = t.members.iter().position(|m| m.member == o.member) {
                                movable[k] = true;
                            }
                        }
                    }
                }
                for a in 0..t.members.len() {
                    for bb in 0..t.members.len() {
                        let (ma, mb) = (&t.members[a], &t.members[bb]);
                        if a != bb
                            && eligible[a]
                            && eligible[bb]
                            && movable[a]
                            && !balanced_pair((ma.count, ma.weight), (mb.count, mb.weight))
                        {
                            return self.fail(format!(
                                "view {id}: not balanced: {} holds {} (weight {}), {} holds {} (weight {})",
                                ma.node, ma.count, ma.weight, mb.node, mb.count, mb.weight
                            ));
                        }
                    }
                }
            }
        }
    }

    // ----- random schedules -----

    /// One random step: a delivery, an ordering, a timer, a fault or an
    /// operator command.
    pub fn random_step(&mut self, faults: bool) {
        let n = self.nodes.len();
        let r = self.rng.below(100);
        match r {
            0..=44 => {
                if !self.deliver_one() {
                    self.order_one();
                }
            }
            45..=74 => {
                if !self.order_one() {
                    self.deliver_one();
                }
            }
            75..=84 => {
                self.fire_next_timer();
            }
            _ if !faults => {
                self.deliver_one();
            }
            85..=86 => {
                let i = self.rng.below(n);
                if self.nodes[i].alive {
                    self.crash(i);
                } else {
                    self.restart(i);
                }
            }
            87..=88 => {
                let i = self.rng.below(n);
                if !self.nodes[i].alive {
                    self.restart(i);
                }
            }
            89..=90 => {
                if self.rng.pct(50) {
                    let mut a = Vec::new();
                    let mut b = Vec::new();
                    for i in 0..n {
                        if self.rng.pct(50) {
                            a.push(i)
                        } else {
                            b.push(i)
                        }
                    }
                    self.partition(&[&a, &b]);
                } else {
                    self.heal();
                }
            }
            91 => {
                let i = self.rng.below(n);
                if self.nodes[i].alive {
                    if self.nodes[i].joined {
                        self.log(|| format!("FAIL n{i}"));
                        self.fail_node(i);
                    } else {
                        self.log(|| format!("RECOVER n{i}"));
                        self.recover(i);
                    }
                }
            }
            92 => {
                let i = self.rng.below(n);
                if self.nodes[i].alive {
                    if self.nodes[i].engine_ok {
                        self.engine_lost(i);
                    } else {
                        self.engine_back(i);
                    }
                }
            }
            93 => {
                // Configuration reload: a VIF-list change (node leaves and
                // rejoins) or a weight change (agreed update).
                let i = self.rng.below(n);
                if self.nodes[i].alive && self.nodes[i].joined && self.nodes[i].engine_ok {
                    let mut c = self.nodes[i].config.clone();
                    if self.rng.pct(50) {
                        c.weight = 1 + self.rng.below(3) as u32;
                    } else if c
                        .vifs
                        .last()
                        .is_some_and(|v| v.label().starts_with("198.51.100."))
                    {
                        c.vifs.pop();
                    } else {
                        c.vifs.push(VifSpec::new(["198.51.100.9/24"]));
                        c.prefer.clear();
                    }
                    self.log(|| format!("CONFIG n{i} weight {} vifs {}", c.weight, c.vifs.len()));
                    self.config_change(i, c);
                }
            }
            94..=96 => {
                let i = self.rng.below(n);
                if self.nodes[i].alive {
                    let node = format!("node{}", self.rng.below(n + 1));
                    let vifs = self.nodes[i].config.vifs.len();
                    let cmd = match self.rng.below(4) {
                        0 => OperatorCommand::Move {
                            vif: VifIndex(self.rng.below(vifs + 1) as u32),
                            node,
                        },
                        1 => OperatorCommand::Drain { node },
                        2 => OperatorCommand::Undrain { node },
                        _ => OperatorCommand::Balance,
                    };
                    self.log(|| format!("OPERATOR n{i} {cmd:?}"));
                    self.operator(i, cmd);
                }
            }
            _ => {
                // Bring everyone back so that schedules do not die out.
                for i in 0..n {
                    if !self.nodes[i].alive {
                        self.restart(i);
                    } else if !self.nodes[i].engine_ok {
                        self.engine_back(i);
                    } else if !self.nodes[i].joined {
                        self.recover(i);
                    }
                }
            }
        }
        self.check();
    }
}

/// The balance criterion, written independently of the allocator's: with
/// equal weights counts at most one apart; weighted, taking one VIF from `a`
/// would not leave it below `b` with one more.
fn balanced_pair(a: (u32, u32), b: (u32, u32)) -> bool {
    if a.1 == b.1 {
        return a.0 <= b.0 + 1;
    }
    let (ca, wa, cb, wb) = (
        f64::from(a.0),
        f64::from(a.1),
        f64::from(b.0),
        f64::from(b.1),
    );
    (ca - 1.0) / wa < (cb + 1.0) / wb
}

fn short(m: &super::wire::Message) -> String {
    use super::wire::Message;
    match m {
        Message::State(s) => format!(
            "STATE v{} {} idx{} mature={} drained={} held={:?} prefer={:?} digest={:x}",
            s.view, s.node, s.index, s.mature, s.drained, s.held, s.prefer, s.digest
        ),
        Message::Mature { view } => format!("MATURE v{view}"),
        Message::Balance { view, moves } => format!("BALANCE v{view} {moves:?}"),
        Message::Command { view, command } => format!("COMMAND v{view} {command}"),
        Message::Update { view, weight, .. } => format!("UPDATE v{view} weight {weight}"),
        other => format!("{other:?}"),
    }
}

/// A failed random schedule.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub message: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "simulation seed {} failed: {}", self.seed, self.message)?;
        writeln!(f, "replay: WACKAMOLE_SIM_SEED={} cargo test --release -p wackamole-agent --test alloc_sim", self.seed)?;
        let skip = self.trace.len().saturating_sub(150);
        if skip > 0 {
            writeln!(f, "... ({skip} earlier steps)")?;
        }
        for line in &self.trace[skip..] {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Builds the random group of a schedule.
fn random_group(rng: &mut Rng) -> Vec<(String, AllocConfig)> {
    let nodes = 1 + rng.below(6);
    let vif_count = rng.below(13);
    let mut base = config(vif_count);
    base.mature_after = Duration::from_millis(100 + rng.below(900) as u64);
    base.balance.interval = Duration::from_millis(100 + rng.below(900) as u64);
    base.balance.acquisitions_per_round = if rng.pct(50) {
        PerRound::All
    } else {
        PerRound::N(1 + rng.below(3) as u32)
    };
    base.balance.one_shot = rng.pct(15);
    base.balance.enabled = !rng.pct(10);
    let weights = rng.pct(30);
    let prefer = rng.pct(30);
    let mismatch = if rng.pct(15) {
        Some(rng.below(nodes))
    } else {
        None
    };
    (0..nodes)
        .map(|i| {
            let mut c = base.clone();
            if weights {
                c.weight = 1 + rng.below(3) as u32;
            }
            if prefer && vif_count > 0 {
                c.prefer = (0..rng.below(3))
                    .map(|_| VifIndex(rng.below(vif_count) as u32))
                    .collect();
            }
            if mismatch == Some(i) {
                if rng.pct(50) || c.vifs.is_empty() {
                    c.vifs.push(VifSpec::new(["198.51.100.1/24"]));
                } else {
                    c.vifs[0] = VifSpec::new(["198.51.100.2/24"]);
                }
                c.prefer.clear();
            }
            (format!("node{i}"), c)
        })
        .collect()
}

/// Runs one random schedule; `trace` records every step.
pub fn run_schedule(seed: u64, trace: bool) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    let group = random_group(&mut rng);
    let mut sim = Sim::new(rng.next_u64(), group);
    sim.keep_reports = false;
    if trace {
        sim.trace = Some(Vec::new());
    }
    let steps = 20 + rng.below(100);
    for _ in 0..steps {
        sim.random_step(true);
        if sim.error.is_some() {
            break;
        }
    }
    if rng.pct(50) {
        // End with everything healed and back: exercises merges at the end.
        sim.heal();
        for i in 0..sim.nodes.len() {
            if !sim.nodes[i].alive {
                sim.restart(i);
            } else if !sim.nodes[i].engine_ok {
                sim.engine_back(i);
            } else if !sim.nodes[i].joined {
                sim.recover(i);
            }
        }
    }
    let result = if sim.error.is_none() {
        sim.settle()
    } else {
        Err(sim.error.clone().unwrap_or_default())
    };
    result.map_err(|message| Failure {
        seed,
        message,
        trace: sim.trace.take().unwrap_or_default(),
    })
}

/// Runs `count` schedules from `first_seed` on `threads` threads; returns the
/// first failure (replayed with a trace).
pub fn run_many(first_seed: u64, count: u64, threads: u64) -> Result<(), Failure> {
    let threads = threads.max(1);
    let failed: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut seed = first_seed + t;
                    while seed < first_seed + count {
                        if run_schedule(seed, false).is_err() {
                            return Some(seed);
                        }
                        seed += threads;
                    }
                    None
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    });
    match failed.into_iter().min() {
        Some(seed) => run_schedule(seed, true),
        None => Ok(()),
    }
}

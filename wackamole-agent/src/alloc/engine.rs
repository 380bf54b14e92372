//! The allocator state machine of one node.

use std::collections::HashMap;

use super::assign::{self, MemberInput, Recipients, Slot};
use super::wire::{self, Message, StateMsg, WireCommand, WireMove};
use super::{
    vif_digest, Action, AllocConfig, Input, MemberRow, MoveReport, NodeInfo, OperatorCommand,
    OwnerView, PerRound, Phase, Priority, Report, TableView, TimerKind, VifIndex, VifRow,
};
use crate::membership::{MemberId, ViewId};

/// One node's allocation state machine (see the module docs).
#[derive(Clone, Debug)]
pub struct Allocator {
    config: AllocConfig,
    digest: u64,
    me: NodeInfo,
    /// Local maturity: my timer fired, or the group was mature.
    mature: bool,
    /// An agreed `drain` named me; cleared by `undrain` or `recover`.
    drained: bool,
    phase: Phase,
    /// What I physically hold, with its priority (Unclaimed = not held).
    held: Vec<Priority>,
    mature_timer: bool,
    balance_timer: bool,
    view: Option<ViewState>,
}

#[derive(Clone, Debug)]
struct Member {
    id: MemberId,
    state: Option<StateMsg>,
    node: String,
    weight: u32,
    mature: bool,
    drained: bool,
    prefer: Vec<u32>,
    valid: bool,
    eligible: bool,
    count: u32,
}

#[derive(Clone, Debug)]
struct ViewState {
    id: ViewId,
    me: usize,
    members: Vec<Member>,
    index_of: HashMap<MemberId, usize>,
    received: usize,
    /// Member indices in STATE delivery order.
    order: Vec<usize>,
    complete: bool,
    /// Some valid member is mature: the table is assigned.
    mature: bool,
    transitional: bool,
    table: Vec<Slot>,
    config_errors: Vec<String>,
    /// Timer-driven balance rounds done in this view (for one-shot).
    rounds: u32,
    /// Lowest-index valid member: the balance leader.
    leader: Option<usize>,
}

impl ViewState {
    fn weights(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.weight).collect()
    }
    fn eligible(&self) -> Vec<bool> {
        self.members.iter().map(|m| m.eligible).collect()
    }
    fn counts(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.count).collect()
    }
    fn compute_eligibility(&mut self) {
        let undrained = self.members.iter().any(|m| m.valid && !m.drained);
        for m in &mut self.members {
            m.eligible = m.valid && (!m.drained || !undrained);
        }
    }
    fn name_of(&self, i: u32) -> String {
        self.members
            .get(i as usize)
            .map(|m| m.node.clone())
            .unwrap_or_default()
    }
}

fn report(out: &mut Vec<Action>, r: Report) {
    out.push(Action::Report(r));
}

impl Allocator {
    /// A node that is not yet in any view and immature.
    pub fn new(config: AllocConfig, me: NodeInfo) -> Self {
        let digest = vif_digest(&config.vifs);
        let held = vec![Priority::Unclaimed; config.vifs.len()];
        Self {
            config,
            digest,
            me,
            mature: false,
            drained: false,
            phase: Phase::Disconnected,
            held,
            mature_timer: false,
            balance_timer: false,
            view: None,
        }
    }

    /// Applies one input; the actions must be carried out in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::View {
                id,
                members,
                my_index,
            } => self.on_view(id, members, my_index, &mut out),
            Input::Transitional => {
                if let Some(v) = self.view.as_mut() {
                    v.transitional = true;
                }
                self.cancel_balance(&mut out);
            }
            Input::Message { sender, payload } => self.on_message(sender, &payload, &mut out),
            Input::Timer(TimerKind::Mature) => self.on_mature_timer(&mut out),
            Input::Timer(TimerKind::Balance) => self.on_balance_timer(&mut out),
            Input::Operator(cmd) => self.on_operator(cmd, &mut out),
            Input::ConfigChanged(config) => self.on_config(config, &mut out),
            Input::EngineLost => {
                self.release_all(&mut out);
                self.cancel_balance(&mut out);
                self.view = None;
                if self.phase != Phase::Failed {
                    self.phase = Phase::Disconnected;
                }
            }
            Input::Fail => {
                self.release_all(&mut out);
                self.cancel_balance(&mut out);
                if self.mature_timer {
                    self.mature_timer = false;
                    out.push(Action::CancelTimer(TimerKind::Mature));
                }
                self.view = None;
                if self.phase != Phase::Failed {
                    self.phase = Phase::Failed;
                    out.push(Action::Leave);
                }
            }
            Input::Recover => {
                if self.phase == Phase::Failed {
                    self.mature = false;
                    self.drained = false;
                    self.phase = Phase::Disconnected;
                    out.push(Action::Join);
                } else {
                    report(
                        &mut out,
                        Report::Rejected {
                            command: "recover".into(),
                            reason: "this node has not failed".into(),
                        },
                    );
                }
            }
        }
        out
    }

    /// The VIFs I hold.
    pub fn held(&self) -> impl Iterator<Item = VifIndex> + '_ {
        self.held
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != Priority::Unclaimed)
            .map(|(v, _)| VifIndex(v as u32))
    }

    /// The configuration in force.
    pub fn config(&self) -> &AllocConfig {
        &self.config
    }

    /// My phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether I may claim.
    pub fn is_mature(&self) -> bool {
        self.mature
    }

    /// The current view, if any.
    pub fn view_id(&self) -> Option<ViewId> {
        self.view.as_ref().map(|v| v.id)
    }

    /// A snapshot of the table and members, for `ctl status`.
    pub fn table(&self) -> TableView {
        let view = self.view.as_ref();
        let vifs = self
            .config
            .vifs
            .iter()
            .enumerate()
            .map(|(v, spec)| {
                let slot = view
                    .and_then(|view| view.table.get(v).copied())
                    .unwrap_or(Slot::EMPTY);
                let owner = slot.owner.and_then(|o| {
                    view.and_then(|view| view.members.get(o as usize))
                        .map(|m| OwnerView {
                            member: m.id.clone(),
                            node: m.node.clone(),
                        })
                });
                VifRow {
                    vif: VifIndex(v as u32),
                    label: spec.label().to_owned(),
                    owner,
                    priority: slot.prio,
                }
            })
            .collect();
        let members = view
            .map(|view| {
                view.members
                    .iter()
                    .map(|m| MemberRow {
                        member: m.id.clone(),
                        node: m.node.clone(),
                        count: m.count,
                        mature: m.mature,
                        weight: m.weight,
                        drained: m.drained,
                        config_ok: m.valid,
                        state_received: m.state.is_some(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        TableView {
            node: self.me.name.clone(),
            phase: self.phase,
            view: view.map(|v| v.id),
            my_index: view.map(|v| v.me),
            mature: self.mature,
            drained: self.drained,
            vifs,
            members,
            config_errors: view.map(|v| v.config_errors.clone()).unwrap_or_default(),
        }
    }

    /// For the simulator: the agreed owner (member index) of every VIF, once
    /// the exchange is complete and the view mature.
    pub(crate) fn agreed_owners(&self) -> Option<(ViewId, usize, Vec<Option<u32>>)> {
        let v = self.view.as_ref()?;
        (v.complete && v.mature && self.phase != Phase::Excluded)
            .then(|| (v.id, v.me, v.table.iter().map(|s| s.owner).collect()))
    }

    /// For the simulator: exchange complete in the current view.
    pub(crate) fn exchange_complete(&self) -> bool {
        self.view.as_ref().is_some_and(|v| v.complete)
    }

    // ----- view and state exchange -----

    fn on_view(&mut self, id: ViewId, members: Vec<MemberId>, me: usize, out: &mut Vec<Action>) {
        if self.phase == Phase::Failed {
            return;
        }
        self.cancel_balance(out);
        if me >= members.len() {
            report(
                out,
                Report::BadMessage {
                    sender: MemberId("engine".into()),
                    error: format!(
                        "view {id} gives my index as {me} but has {} members",
                        members.len()
                    ),
                },
            );
            self.release_all(out);
            self.view = None;
            self.phase = Phase::Disconnected;
            return;
        }
        if !self.mature && !self.mature_timer {
            self.mature_timer = true;
            out.push(Action::ArmTimer {
                kind: TimerKind::Mature,
                after: self.config.mature_after,
            });
        }
        let index_of = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), i))
            .collect();
        let members = members
            .into_iter()
            .map(|id| Member {
                id,
                state: None,
                node: String::new(),
                weight: 1,
                mature: false,
                drained: false,
                prefer: Vec::new(),
                valid: false,
                eligible: false,
                count: 0,
            })
            .collect();
        self.view = Some(ViewState {
            id,
            me,
            members,
            index_of,
            received: 0,
            order: Vec::new(),
            complete: false,
            mature: false,
            transitional: false,
            table: vec![Slot::EMPTY; self.config.vifs.len()],
            config_errors: Vec::new(),
            rounds: 0,
            leader: None,
        });
        self.phase = Phase::Gather;
        let state = StateMsg {
            view: id,
            member: self
                .view
                .as_ref()
                .and_then(|v| v.members.get(me))
                .map(|m| m.id.0.clone())
                .unwrap_or_default(),
            index: me as u32,
            node: self.me.name.clone(),
            mature: self.mature,
            drained: self.drained,
            weight: self.config.weight.max(1),
            vif_count: self.config.vifs.len() as u32,
            digest: self.digest,
            held: self
                .held
                .iter()
                .enumerate()
                .filter(|(_, p)| **p != Priority::Unclaimed)
                .map(|(v, p)| (v as u32, *p))
                .collect(),
            prefer: self.config.prefer.iter().map(|v| v.0).collect(),
        };
        out.push(Action::Multicast(wire::encode(&Message::State(state))));
    }

    fn on_message(&mut self, sender: MemberId, payload: &[u8], out: &mut Vec<Action>) {
        let Some(mut view) = self.view.take() else {
            return;
        };
        self.message_in_view(&mut view, sender, payload, out);
        self.view = Some(view);
    }

    fn message_in_view(
        &mut self,
        view: &mut ViewState,
        sender: MemberId,
        payload: &[u8],
        out: &mut Vec<Action>,
    ) {
        let Some(&i) = view.index_of.get(&sender) else {
            report(
                out,
                Report::BadMessage {
                    sender,
                    error: format!("sender is not a member of view {}", view.id),
                },
            );
            return;
        };
        let msg = match wire::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                report(
                    out,
                    Report::BadMessage {
                        sender,
                        error: e.to_string(),
                    },
                );
                return;
            }
        };
        match msg {
            Message::State(s) => {
                if s.view != view.id {
                    return;
                }
                if s.index as usize != i || s.member != sender.0 {
                    report(
                        out,
                        Report::BadMessage {
                            sender,
                            error: format!(
                                "STATE claims to be {} at index {}, the view has it at index {i}",
                                s.member, s.index
                            ),
                        },
                    );
                    return;
                }
                let m = &mut view.members[i];
                if m.state.is_some() {
                    report(
                        out,
                        Report::BadMessage {
                            sender,
                            error: "second STATE in one view".into(),
                        },
                    );
                    return;
                }
                m.node = s.node.clone();
                m.weight = s.weight.max(1);
                m.mature = s.mature;
                m.drained = s.drained;
                m.prefer = s.prefer.clone();
                m.state = Some(s);
                view.received += 1;
                view.order.push(i);
                if view.received == view.members.len() {
                    self.complete(view, out);
                }
            }
            Message::Mature { view: id } => {
                if id != view.id {
                    return;
                }
                view.members[i].mature = true;
                if view.complete
                    && view.members[i].valid
                    && !view.mature
                    && self.phase != Phase::Excluded
                {
                    view.mature = true;
                    self.become_mature(out);
                    self.assign(view, out);
                }
            }
            Message::Balance { view: id, moves } => {
                if id != view.id || !view.complete || self.phase == Phase::Excluded {
                    return;
                }
                if view.leader != Some(i) {
                    report(
                        out,
                        Report::BadMessage {
                            sender,
                            error: "balance round from a member that is not the leader".into(),
                        },
                    );
                    return;
                }
                self.apply_balance(view, &moves, out);
                if i == view.me && self.phase == Phase::Balance {
                    self.phase = Phase::Run;
                    self.rearm_balance(view, out);
                }
            }
            Message::Command { view: id, command } => {
                if id != view.id || self.phase == Phase::Excluded {
                    return;
                }
                self.apply_command(view, command, out);
            }
            Message::Update {
                view: id,
                weight,
                prefer,
            } => {
                if id != view.id {
                    return;
                }
                let m = &mut view.members[i];
                m.weight = weight.max(1);
                m.prefer = prefer;
            }
        }
    }

    /// The last STATE arrived: check VIF lists, then assign if mature.
    fn complete(&mut self, view: &mut ViewState, out: &mut Vec<Action>) {
        view.complete = true;
        // Reference list: held by most members; ties to the lowest index.
        let mut tally: Vec<((u64, u32), usize)> = Vec::new();
        for m in &view.members {
            let key = m
                .state
                .as_ref()
                .map(|s| (s.digest, s.vif_count))
                .unwrap_or_default();
            match tally.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => tally.push((key, 1)),
            }
        }
        let best = tally.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let reference = tally
            .iter()
            .find(|(_, n)| *n == best)
            .map(|(k, _)| *k)
            .unwrap_or_default();
        for m in &mut view.members {
            let key = m
                .state
                .as_ref()
                .map(|s| (s.digest, s.vif_count))
                .unwrap_or_default();
            m.valid = key == reference;
            if !m.valid {
                let detail = format!(
                    "has a different VIF list ({} VIFs, digest {:016x}; the group's has {} VIFs, digest {:016x})",
                    key.1, key.0, reference.1, reference.0
                );
                view.config_errors
                    .push(format!("node {} ({}) {detail}", m.node, m.id));
                report(
                    out,
                    Report::ConfigMismatch {
                        view: view.id,
                        member: m.id.clone(),
                        node: m.node.clone(),
                        detail,
                    },
                );
            }
        }
        view.leader = view.members.iter().position(|m| m.valid);
        view.compute_eligibility();
        if !view.members[view.me].valid {
            self.phase = Phase::Excluded;
            self.release_all(out);
            return;
        }
        view.mature = view.members.iter().any(|m| m.valid && m.mature);
        if view.mature {
            self.become_mature(out);
            self.assign(view, out);
        } else {
            self.phase = Phase::Boot;
        }
        let held = self.held().count();
        report(
            out,
            Report::ViewComplete {
                view: view.id,
                members: view.members.len(),
                mature: view.mature,
                held,
            },
        );
    }

    fn become_mature(&mut self, out: &mut Vec<Action>) {
        if !self.mature {
            self.mature = true;
            report(out, Report::Matured);
        }
        if self.mature_timer {
            self.mature_timer = false;
            out.push(Action::CancelTimer(TimerKind::Mature));
        }
    }

    /// Resolves the table from the view's STATEs and makes my holdings match.
    fn assign(&mut self, view: &mut ViewState, out: &mut Vec<Action>) {
        let inputs: Vec<MemberInput<'_>> = view
            .members
            .iter()
            .map(|m| MemberInput {
                valid: m.valid,
                eligible: m.eligible,
                weight: m.weight,
                held: m.state.as_ref().map(|s| s.held.as_slice()).unwrap_or(&[]),
                prefer: &m.prefer,
            })
            .collect();
        let (table, counts) = assign::resolve(self.held.len(), &inputs, &view.order);
        view.table = table;
        for (m, c) in view.members.iter_mut().zip(counts) {
            m.count = c;
        }
        self.reconcile(view, out);
        self.phase = Phase::Run;
        self.rearm_balance(view, out);
    }

    /// Releases what the table gives to others, then acquires what it gives me.
    fn reconcile(&mut self, view: &ViewState, out: &mut Vec<Action>) {
        let me = view.me as u32;
        let mut acquire = Vec::new();
        for (v, slot) in view.table.iter().enumerate() {
            let Some(held) = self.held.get_mut(v) else {
                continue;
            };
            if slot.owner == Some(me) {
                if *held == Priority::Unclaimed {
                    acquire.push(v);
                }
                *held = slot.prio;
            } else if *held != Priority::Unclaimed {
                *held = Priority::Unclaimed;
                out.push(Action::Release(VifIndex(v as u32)));
            }
        }
        out.extend(
            acquire
                .into_iter()
                .map(|v| Action::Acquire(VifIndex(v as u32))),
        );
    }

    fn release_all(&mut self, out: &mut Vec<Action>) {
        for (v, p) in self.held.iter_mut().enumerate() {
            if *p != Priority::Unclaimed {
                *p = Priority::Unclaimed;
                out.push(Action::Release(VifIndex(v as u32)));
            }
        }
    }

    /// Moves one VIF in the table; the new owner acquires, the old releases.
    fn move_vif(
        &mut self,
        view: &mut ViewState,
        v: usize,
        to: u32,
        prio: Priority,
        out: &mut Vec<Action>,
    ) -> MoveReport {
        let from = view.table[v].owner;
        view.table[v] = Slot {
            owner: Some(to),
            prio,
        };
        if let Some(f) = from {
            if let Some(m) = view.members.get_mut(f as usize) {
                m.count = m.count.saturating_sub(1);
            }
        }
        if let Some(m) = view.members.get_mut(to as usize) {
            m.count += 1;
        }
        let me = view.me as u32;
        if from == Some(me) && to != me {
            self.held[v] = Priority::Unclaimed;
            out.push(Action::Release(VifIndex(v as u32)));
        }
        if to == me {
            if self.held[v] == Priority::Unclaimed {
                out.push(Action::Acquire(VifIndex(v as u32)));
            }
            self.held[v] = prio;
        }
        MoveReport {
            vif: VifIndex(v as u32),
            from: from.map(|f| view.name_of(f)),
            to: view.name_of(to),
        }
    }

    // ----- maturity and balance -----

    fn on_mature_timer(&mut self, out: &mut Vec<Action>) {
        self.mature_timer = false;
        if self.mature || self.phase == Phase::Failed {
            return;
        }
        self.mature = true;
        report(out, Report::Matured);
        if let Some(view) = &self.view {
            if !view.transitional && self.phase != Phase::Excluded {
                out.push(Action::Multicast(wire::encode(&Message::Mature {
                    view: view.id,
                })));
            }
        }
    }

    fn cancel_balance(&mut self, out: &mut Vec<Action>) {
        if self.balance_timer {
            self.balance_timer = false;
            out.push(Action::CancelTimer(TimerKind::Balance));
        }
    }

    /// The leader keeps its balance timer running while in RUN.
    fn rearm_balance(&mut self, view: &ViewState, out: &mut Vec<Action>) {
        let b = &self.config.balance;
        if view.leader == Some(view.me)
            && b.enabled
            && !(b.one_shot && view.rounds >= 1)
            && !view.transitional
            && self.phase == Phase::Run
        {
            self.balance_timer = true;
            out.push(Action::ArmTimer {
                kind: TimerKind::Balance,
                after: b.interval,
            });
        }
    }

    fn on_balance_timer(&mut self, out: &mut Vec<Action>) {
        self.balance_timer = false;
        let Some(mut view) = self.view.take() else {
            return;
        };
        if self.phase == Phase::Run && !view.transitional && view.leader == Some(view.me) {
            view.rounds += 1;
            if !self.balance_round(&view, out) {
                self.rearm_balance(&view, out);
            }
        }
        self.view = Some(view);
    }

    /// Leader: plans a round and multicasts it; false if nothing to move.
    fn balance_round(&mut self, view: &ViewState, out: &mut Vec<Action>) -> bool {
        let limit = match self.config.balance.acquisitions_per_round {
            PerRound::N(n) => n as usize,
            PerRound::All => usize::MAX,
        };
        let moves = assign::plan_balance(
            &view.table,
            &view.counts(),
            &view.weights(),
            &view.eligible(),
            limit,
        );
        if moves.is_empty() {
            return false;
        }
        let moves = moves
            .into_iter()
            .map(|(vif, from, to)| WireMove { vif, from, to })
            .collect();
        out.push(Action::Multicast(wire::encode(&Message::Balance {
            view: view.id,
            moves,
        })));
        self.phase = Phase::Balance;
        true
    }

    /// Every member: applies a delivered balance round, move by move, each
    /// checked against the agreed table (so all members skip the same ones).
    fn apply_balance(&mut self, view: &mut ViewState, moves: &[WireMove], out: &mut Vec<Action>) {
        let mut done = Vec::new();
        for m in moves {
            let v = m.vif as usize;
            let ok = view.table.get(v).is_some_and(|s| {
                s.owner == Some(m.from) && s.prio < Priority::Prefer && m.from != m.to
            }) && view.members.get(m.to as usize).is_some_and(|t| t.eligible);
            if ok {
                done.push(self.move_vif(view, v, m.to, Priority::Claimed, out));
            }
        }
        if !done.is_empty() {
            report(
                out,
                Report::Moves {
                    reason: "balance",
                    moves: done,
                },
            );
        }
    }

    // ----- operator commands -----

    fn on_operator(&mut self, cmd: OperatorCommand, out: &mut Vec<Action>) {
        let text = match &cmd {
            OperatorCommand::Move { vif, node } => format!("move {vif} to {node}"),
            OperatorCommand::Drain { node } => format!("drain {node}"),
            OperatorCommand::Undrain { node } => format!("undrain {node}"),
            OperatorCommand::Balance => "balance".into(),
        };
        let reject = |out: &mut Vec<Action>, reason: String| {
            report(
                out,
                Report::Rejected {
                    command: text.clone(),
                    reason,
                },
            )
        };
        let Some(view) = &self.view else {
            return reject(out, "this node is not in a group view".into());
        };
        if view.transitional || self.phase == Phase::Gather {
            return reject(out, "the group is changing; try again".into());
        }
        if self.phase == Phase::Excluded {
            return reject(out, "this node's VIF list differs from the group's".into());
        }
        let known = |node: &str| view.members.iter().any(|m| m.valid && m.node == node);
        let command = match cmd {
            OperatorCommand::Move { vif, node } => {
                if vif.0 as usize >= self.config.vifs.len() {
                    return reject(
                        out,
                        format!("no such VIF (there are {})", self.config.vifs.len()),
                    );
                }
                if !known(&node) {
                    return reject(out, format!("no node named {node:?} in the group"));
                }
                WireCommand::Move { vif: vif.0, node }
            }
            OperatorCommand::Drain { node } => {
                if !known(&node) {
                    return reject(out, format!("no node named {node:?} in the group"));
                }
                WireCommand::Drain { node }
            }
            OperatorCommand::Undrain { node } => {
                if !known(&node) {
                    return reject(out, format!("no node named {node:?} in the group"));
                }
                WireCommand::Undrain { node }
            }
            OperatorCommand::Balance => WireCommand::Balance,
        };
        out.push(Action::Multicast(wire::encode(&Message::Command {
            view: view.id,
            command,
        })));
    }

    /// Every member applies a delivered command identically.
    fn apply_command(&mut self, view: &mut ViewState, command: WireCommand, out: &mut Vec<Action>) {
        let text = command.to_string();
        let is_drain = matches!(command, WireCommand::Drain { .. });
        let reject = |out: &mut Vec<Action>, reason: &str| {
            report(
                out,
                Report::Rejected {
                    command: text.clone(),
                    reason: reason.to_owned(),
                },
            )
        };
        if !view.complete {
            return reject(out, "state exchange in progress; try again");
        }
        match command {
            WireCommand::Move { vif, node } => {
                let v = vif as usize;
                if v >= view.table.len() {
                    return reject(out, "no such VIF");
                }
                let Some(to) = view.members.iter().position(|m| m.valid && m.node == node) else {
                    return reject(out, "no such node in the group");
                };
                if !view.mature {
                    return reject(out, "no member is mature yet");
                }
                if !view.members[to].eligible {
                    return reject(out, "the node is drained");
                }
                let moved = self.move_vif(view, v, to as u32, Priority::PreferClaimed, out);
                report(
                    out,
                    Report::Moves {
                        reason: "operator move",
                        moves: vec![moved],
                    },
                );
            }
            WireCommand::Drain { node } | WireCommand::Undrain { node } => {
                let drain = is_drain;
                let mut found = false;
                for (i, m) in view.members.iter_mut().enumerate() {
                    if m.valid && m.node == node {
                        found = true;
                        m.drained = drain;
                        if i == view.me {
                            self.drained = drain;
                        }
                    }
                }
                if !found {
                    return reject(out, "no such node in the group");
                }
                report(
                    out,
                    Report::Drained {
                        node,
                        drained: drain,
                    },
                );
                view.compute_eligibility();
                if view.mature {
                    self.reassign_ineligible(view, out);
                    self.settle_preferences(view, out);
                }
            }
            WireCommand::Balance => {
                if view.leader == Some(view.me) && self.phase == Phase::Run {
                    self.balance_round(view, out);
                }
            }
        }
    }

    /// VIFs owned by members that may no longer hold any go to the first
    /// eligible member that prefers them, else to the least loaded.
    fn reassign_ineligible(&mut self, view: &mut ViewState, out: &mut Vec<Action>) {
        let eligible = view.eligible();
        let mut recipients = Recipients::new(&view.counts(), &view.weights(), &eligible);
        let mut moves = Vec::new();
        for v in 0..view.table.len() {
            let Some(o) = view.table[v].owner else {
                continue;
            };
            if eligible.get(o as usize) == Some(&true) {
                continue;
            }
            let preferring = view
                .members
                .iter()
                .position(|m| m.eligible && m.prefer.contains(&(v as u32)));
            let (to, prio) = match preferring {
                Some(p) => (Some(p as u32), Priority::PreferClaimed),
                None => (recipients.take(), Priority::Claimed),
            };
            if let Some(to) = to {
                moves.push(self.move_vif(view, v, to, prio, out));
                if preferring.is_some() {
                    recipients.rebuild(&view.counts(), &view.weights(), &eligible);
                }
            }
        }
        if !moves.is_empty() {
            report(
                out,
                Report::Moves {
                    reason: "drain",
                    moves,
                },
            );
        }
    }

    /// After eligibility changed: a VIF that an eligible member prefers goes to
    /// the first such member (lowest index) unless it is already held with
    /// PREFER_CLAIMED (by a preferring member or pinned by `move`).
    fn settle_preferences(&mut self, view: &mut ViewState, out: &mut Vec<Action>) {
        let mut preferred_by: Vec<Option<u32>> = vec![None; view.table.len()];
        for (i, m) in view.members.iter().enumerate() {
            if m.eligible {
                for &v in &m.prefer {
                    if let Some(p) = preferred_by.get_mut(v as usize) {
                        p.get_or_insert(i as u32);
                    }
                }
            }
        }
        let mut moves = Vec::new();
        for (v, p) in preferred_by.into_iter().enumerate() {
            if let Some(p) = p {
                let slot = view.table[v];
                let pinned = slot.prio == Priority::PreferClaimed
                    && slot
                        .owner
                        .is_some_and(|o| view.members[o as usize].eligible);
                if !pinned {
                    moves.push(self.move_vif(view, v, p, Priority::PreferClaimed, out));
                }
            }
        }
        if !moves.is_empty() {
            report(
                out,
                Report::Moves {
                    reason: "preference",
                    moves,
                },
            );
        }
    }

    // ----- configuration -----

    fn on_config(&mut self, config: AllocConfig, out: &mut Vec<Action>) {
        let vifs_changed = config.vifs != self.config.vifs;
        let update = config.weight != self.config.weight || config.prefer != self.config.prefer;
        self.config = config;
        if vifs_changed {
            // Released indices refer to the old list.
            self.release_all(out);
            self.digest = vif_digest(&self.config.vifs);
            self.held = vec![Priority::Unclaimed; self.config.vifs.len()];
            self.cancel_balance(out);
            if self.view.take().is_some() {
                // Leave and rejoin so that the whole group redoes the exchange.
                self.phase = Phase::Disconnected;
                out.push(Action::Leave);
                out.push(Action::Join);
            }
            return;
        }
        if update {
            if let Some(view) = &self.view {
                if !view.transitional {
                    out.push(Action::Multicast(wire::encode(&Message::Update {
                        view: view.id,
                        weight: self.config.weight.max(1),
                        prefer: self.config.prefer.iter().map(|v| v.0).collect(),
                    })));
                }
            }
        }
    }
}

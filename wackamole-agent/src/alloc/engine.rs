//! The allocator state machine of one node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::assign::{self, MemberInput, Recipients, Slot};
use super::wire::{self, HandoverItem, Message, StateMsg, WireCommand, WireMove};
use super::{
    vif_digest, Action, AllocConfig, HandoverRow, Input, MemberRow, MoveReport, NodeInfo,
    OperatorCommand, OwnerView, PerRound, Phase, Priority, Report, TableView, TimerKind, VifIndex,
    VifRow,
};
use crate::membership::{MemberId, ViewId};

/// One node's allocation state machine (see the module docs).
#[derive(Clone, Debug)]
pub struct Allocator {
    /// Shared: a provisional takeover decides on a copy of the allocator,
    /// and copying thousands of VIF specs with their strings topped the
    /// profile of a 4000-VIP condemnation.
    config: Arc<AllocConfig>,
    digest: u64,
    me: NodeInfo,
    /// Local maturity: my timer fired, or the group was mature.
    mature: bool,
    /// I was mature when my engine was lost (or the group evicted me). My
    /// STATE in a view with peers then says mature, so a group whose
    /// members all lost their engines together (a host-wide stall,
    /// corosync restarted everywhere) assigns at its exchange instead of
    /// leaving every VIF dark for `mature_after`. Only an exchange that
    /// completes makes me mature again: alone in a view (before the engine
    /// has merged), or if the view shrinks to me before its exchange
    /// completes, I wait like a new node.
    mature_before_loss: bool,
    /// An agreed `drain` named me; cleared by `undrain` or `recover`.
    drained: bool,
    phase: Phase,
    /// What I physically hold, with its priority (Unclaimed = not held).
    held: Vec<Priority>,
    /// Held VIFs I do not answer ARP for (hand-over step 1 done).
    yielding: Vec<bool>,
    /// The wire version I speak (the build's, or a test hook's).
    speak: u8,
    /// VIFs without carrier now (the agent's last `Eligibility`).
    no_carrier: BTreeSet<u32>,
    /// VIFs I tell the group I may not hold: `no_carrier` plus those whose
    /// carrier came back less than `mature_after` ago. I never hold them.
    advertised: BTreeSet<u32>,
    mature_timer: bool,
    balance_timer: bool,
    exchange_timer: bool,
    eligibility_timer: bool,
    /// My ELIGIBILITY messages sent and delivered in this view: a shrink is
    /// heard only when the last one sent is delivered.
    eligibility_sent: u32,
    eligibility_heard: u32,
    /// Carrier came back and no view with peers has been installed since:
    /// I may still be alone in a partition of my own (the engine has not
    /// merged yet), where taking VIFs would answer next to their owners.
    await_peers: bool,
    /// The eligibility timer runs past `mature_after`, waiting for peers
    /// until `merge_wait` (then eligible anyway).
    peer_wait: bool,
    /// How long after carrier comes back I wait for a view with peers
    /// before becoming eligible in a view of my own (see [`Allocator::set_merge_wait`]).
    merge_wait: Duration,
    view: Option<ViewState>,
    /// An agreed EVICT named me while I applied the current message.
    evicted_me: bool,
    /// I left the last exchange because my delivery lost a STATE (see
    /// `Allocator::exchange_gap`); until an exchange completes with every
    /// STATE, the timeout decides instead (a member that speaks before its
    /// STATE on purpose must not keep the group rejoining).
    gap_rejoined: bool,
    /// `exchange_gap` decided to leave while I applied the current message.
    left_on_gap: bool,
}

/// [`Allocator::set_merge_wait`] before the agent has set it.
pub const DEFAULT_MERGE_WAIT: Duration = Duration::from_secs(2);

/// A hand-over in progress (version-2 views): the table's owner of the VIF
/// is the new owner; it answers once `pending` is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Handover {
    pub seq: u32,
    /// Members that must stop answering (their HANDOVER not delivered yet).
    pub pending: BTreeSet<u32>,
    /// Members that stopped answering and keep the addresses until TAKEN.
    pub yielded: BTreeSet<u32>,
    /// The table's owner holds the VIF already while it waits for `pending`
    /// (it was a party the hand-over was redirected to, yielding, or it
    /// answered before a merge). If the VIF is redirected again before the
    /// owner answers, the owner becomes a party: it must be told to release.
    pub owner_holds: bool,
}

/// What the simulator reads of the agreed state.
pub(crate) struct Agreed {
    pub view: ViewId,
    pub me: usize,
    pub version: u8,
    pub owners: Vec<Option<u32>>,
    pub handovers: BTreeMap<u32, Handover>,
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
    max_version: u8,
    yielding: BTreeSet<u32>,
    ineligible: BTreeSet<u32>,
    /// Why its STATE is unusable (garbage, or none before the timeout).
    bad: Option<String>,
    /// An agreed EVICT named it: gone for this view (holds nothing).
    evicted: bool,
    /// A message it sent in this view was delivered here before its STATE.
    /// Every member sends its STATE first, so if that STATE never comes,
    /// this node's delivery lost it (see `Allocator::exchange_gap`).
    spoke_first: bool,
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
    /// The wire version the group speaks (lowest of the valid members').
    version: u8,
    handovers: BTreeMap<u32, Handover>,
    next_seq: u32,
    /// Members I asked the group to evict in this view.
    evict_sent: BTreeSet<usize>,
    /// An EXCHANGE_TIMEOUT for members silent past the eviction deadline
    /// was sent before the exchange timer ran out.
    early_timeout_sent: bool,
    /// Indices the exchange timeout left out (sorted; empty when every
    /// STATE arrived): what this node's VERDICT says.
    timed_out: Vec<u32>,
    /// This node multicast its VERDICT in this view.
    verdict_sent: bool,
    /// Members the LAN detector condemned in this view (see
    /// `on_condemned`).
    condemned: BTreeSet<usize>,
    /// VIFs of a condemned member I took before the group agreed (the
    /// agreed table still gives them to it).
    provisional: BTreeSet<usize>,
    /// Members the LAN detector lost in this view (see `Input::Lost`).
    lost: BTreeSet<usize>,
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
            m.eligible = m.valid && may_receive(m.drained, undrained);
        }
    }
    /// Member i may hold VIF v (eligible, and carrier in version-2 views).
    fn can_hold(&self, i: u32, v: u32) -> bool {
        self.members
            .get(i as usize)
            .is_some_and(|m| m.eligible && (self.version < 2 || !m.ineligible.contains(&v)))
    }
    /// Member i has carrier for VIF v as far as the group knows.
    fn has_carrier(&self, i: u32, v: u32) -> bool {
        self.members
            .get(i as usize)
            .is_some_and(|m| m.valid && (self.version < 2 || !m.ineligible.contains(&v)))
    }
    fn seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }
    fn name_of(&self, i: u32) -> String {
        self.members
            .get(i as usize)
            .map(|m| m.node.clone())
            .unwrap_or_default()
    }
}

/// A valid member may receive VIFs unless drained; if every valid member
/// is drained (`undrained` false), drain is set aside so that no VIF is
/// left unserved.
fn may_receive(drained: bool, undrained: bool) -> bool {
    !drained || !undrained
}

/// An empty view, to lend the view to `&mut self` helpers for a moment.
fn placeholder_view() -> ViewState {
    ViewState {
        id: ViewId(0),
        me: 0,
        members: Vec::new(),
        index_of: HashMap::new(),
        received: 0,
        order: Vec::new(),
        complete: false,
        mature: false,
        transitional: false,
        table: Vec::new(),
        config_errors: Vec::new(),
        rounds: 0,
        leader: None,
        version: 1,
        handovers: BTreeMap::new(),
        next_seq: 0,
        evict_sent: BTreeSet::new(),
        early_timeout_sent: false,
        timed_out: Vec::new(),
        verdict_sent: false,
        condemned: BTreeSet::new(),
        provisional: BTreeSet::new(),
        lost: BTreeSet::new(),
    }
}

fn report(out: &mut Vec<Action>, r: Report) {
    out.push(Action::Report(r));
}

impl Allocator {
    /// A node that is not yet in any view and immature.
    pub fn new(config: AllocConfig, me: NodeInfo) -> Self {
        Self::with_wire_version(config, me, wire::VERSION)
    }

    /// Test hook for mixed-version groups: a node that speaks wire version
    /// `version` (1: before hand-overs; 2: before eviction; VERSION+1: a
    /// future version that sends a STATE field and a message kind this build
    /// does not know). Clamped to 1..=VERSION+1.
    #[doc(hidden)]
    pub fn with_wire_version(config: AllocConfig, mut me: NodeInfo, version: u8) -> Self {
        let digest = vif_digest(&config.vifs);
        let n = config.vifs.len();
        // The name as the wire carries it, so that `move`/`drain` match it.
        me.name = wire::bound_name(&me.name).to_owned();
        Self {
            config: Arc::new(config),
            digest,
            me,
            mature: false,
            mature_before_loss: false,
            drained: false,
            phase: Phase::Disconnected,
            held: vec![Priority::Unclaimed; n],
            yielding: vec![false; n],
            speak: version.clamp(wire::MIN_VERSION, wire::VERSION + 1),
            no_carrier: BTreeSet::new(),
            advertised: BTreeSet::new(),
            mature_timer: false,
            balance_timer: false,
            exchange_timer: false,
            eligibility_timer: false,
            eligibility_sent: 0,
            eligibility_heard: 0,
            await_peers: false,
            peer_wait: false,
            merge_wait: DEFAULT_MERGE_WAIT,
            view: None,
            evicted_me: false,
            gap_rejoined: false,
            left_on_gap: false,
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
                self.cancel_exchange(&mut out);
            }
            Input::Message { sender, payload } => self.on_message(sender, &payload, &mut out),
            Input::Timer(TimerKind::Mature) => self.on_mature_timer(&mut out),
            Input::Timer(TimerKind::Balance) => self.on_balance_timer(&mut out),
            Input::Timer(TimerKind::Exchange) => self.on_exchange_timer(&mut out),
            Input::Timer(TimerKind::Eligibility) => self.on_eligibility_timer(&mut out),
            Input::Operator(cmd) => self.on_operator(cmd, &mut out),
            Input::ConfigChanged(config) => self.on_config(config, &mut out),
            Input::Announced(vifs) => self.on_announced(&vifs, &mut out),
            Input::Eligibility { ineligible } => self.on_eligibility(&ineligible, &mut out),
            Input::Suspects(members) => self.on_suspects(&members, &mut out),
            Input::Condemned(members) => self.on_condemned(&members, &mut out),
            Input::Lost(members) => self.on_lost(&members, &mut out),
            Input::EngineLost => {
                self.release_all(&mut out);
                self.cancel_balance(&mut out);
                self.cancel_exchange(&mut out);
                // Reconnecting is connecting anew: immature, so a node whose
                // engine comes back alone (its corosync restarted or thawed
                // before it merged) does not grab every VIF for a moment.
                // With peers, its STATE says mature (`mature_before_loss`).
                self.mature_before_loss |= self.mature;
                self.mature = false;
                if self.mature_timer {
                    self.mature_timer = false;
                    out.push(Action::CancelTimer(TimerKind::Mature));
                }
                self.view = None;
                if self.phase != Phase::Failed {
                    self.phase = Phase::Disconnected;
                }
            }
            Input::Fail => {
                self.release_all(&mut out);
                self.cancel_balance(&mut out);
                self.cancel_exchange(&mut out);
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
                    self.mature_before_loss = false;
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

    /// The VIFs I hold (answering or yielding).
    pub fn held(&self) -> impl Iterator<Item = VifIndex> + '_ {
        self.held
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != Priority::Unclaimed)
            .map(|(v, _)| VifIndex(v as u32))
    }

    /// The held VIFs I am yielding (not answering ARP for).
    pub fn yielding(&self) -> impl Iterator<Item = VifIndex> + '_ {
        self.yielding
            .iter()
            .enumerate()
            .filter(|(_, y)| **y)
            .map(|(v, _)| VifIndex(v as u32))
    }

    /// Whether VIF `v` is in a hand-over that another member must still
    /// stop answering (its HANDOVER not delivered yet): after a merge, the
    /// table's owner may hold one it did not answer for (the guard kept
    /// it deferred), and answering it now would make two answerers.
    pub fn others_pending(&self, v: VifIndex) -> bool {
        self.view.as_ref().is_some_and(|view| {
            (view.handovers.get(&v.0))
                .is_some_and(|h| h.pending.iter().any(|p| *p != view.me as u32))
        })
    }

    /// After carrier comes back, a node is eligible again once `mature_after`
    /// has passed *and* it has installed a view with peers since (the
    /// engine's merge), so that a node cut off by its cable does not take
    /// every VIF in its one-node partition while its peers still serve
    /// them. Without such a view (a cluster of one, or peers that died
    /// meanwhile) it is eligible after `wait` (at least `mature_after`).
    /// The agent derives `wait` from the engine's timing; the default is
    /// [`DEFAULT_MERGE_WAIT`].
    pub fn set_merge_wait(&mut self, wait: Duration) {
        self.merge_wait = wait;
    }

    /// Whether a view that only loses members is taken over at once (see
    /// [`AllocConfig::takeover_at_view`]); the agent turns it off for a
    /// view it applies with its lease lapsed (its old view is stale).
    pub fn set_takeover_at_view(&mut self, on: bool) {
        if self.config.takeover_at_view != on {
            Arc::make_mut(&mut self.config).takeover_at_view = on;
        }
    }

    /// See [`Allocator::set_merge_wait`].
    pub fn merge_wait(&self) -> Duration {
        self.merge_wait
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

    /// The wire version I speak.
    pub fn wire_version(&self) -> u8 {
        self.speak
    }

    /// The node owning `vif` in the current view (what [`Self::table`]
    /// says, without copying the whole table: `ctl list` asks per page).
    pub fn owner_node(&self, vif: VifIndex) -> Option<&str> {
        let view = self.view.as_ref()?;
        let owner = view.table.get(vif.0 as usize)?.owner?;
        view.members.get(owner as usize).map(|m| m.node.as_str())
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
                        max_version: m.max_version,
                        ineligible: m.ineligible.iter().map(|v| VifIndex(*v)).collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let handovers = view
            .map(|view| {
                let names = |set: &BTreeSet<u32>| set.iter().map(|i| view.name_of(*i)).collect();
                view.handovers
                    .iter()
                    .map(|(v, h)| HandoverRow {
                        vif: VifIndex(*v),
                        seq: h.seq,
                        to: view
                            .table
                            .get(*v as usize)
                            .and_then(|s| s.owner)
                            .map(|o| view.name_of(o)),
                        pending: names(&h.pending),
                        yielded: names(&h.yielded),
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
            group_version: view.filter(|v| v.complete).map(|v| v.version),
            handovers,
        }
    }

    /// Whether VIF `i` is one of [`Self::provisional`] (asked per VIF of a
    /// takeover: building the set each time made thousands quadratic).
    pub(crate) fn is_provisional(&self, i: u32) -> bool {
        let i = i as usize;
        self.view
            .as_ref()
            .is_some_and(|v| v.provisional.contains(&i))
            && self.claims(i)
    }

    /// Whether any VIF is held provisionally (see [`Self::provisional`]).
    pub(crate) fn any_provisional(&self) -> bool {
        (self.view.as_ref()).is_some_and(|v| v.provisional.iter().any(|&i| self.claims(i)))
    }

    /// Whether this node claims VIF `i` (at any priority).
    fn claims(&self, i: usize) -> bool {
        self.held.get(i).is_some_and(|p| *p != Priority::Unclaimed)
    }

    /// VIFs held from a condemned member before the group agreed (see
    /// `on_condemned`): the agent keeps them silent until the handshake
    /// clears them, the simulator checks them.
    pub(crate) fn provisional(&self) -> BTreeSet<u32> {
        self.view
            .as_ref()
            .map(|v| {
                v.provisional
                    .iter()
                    .filter(|&&i| self.claims(i))
                    .map(|&i| i as u32)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// For the simulator: the agreed table, once the exchange is complete
    /// and the view mature.
    pub(crate) fn agreed(&self) -> Option<Agreed> {
        let v = self.view.as_ref()?;
        (v.complete && v.mature && self.phase != Phase::Excluded).then(|| Agreed {
            view: v.id,
            me: v.me,
            version: v.version,
            owners: v.table.iter().map(|s| s.owner).collect(),
            handovers: v.handovers.clone(),
        })
    }

    /// For the simulator: the VIFs I tell the group I may not hold.
    pub(crate) fn advertised_ineligible(&self) -> &BTreeSet<u32> {
        &self.advertised
    }

    /// For the simulator: exchange complete in the current view.
    pub(crate) fn exchange_complete(&self) -> bool {
        self.view.as_ref().is_some_and(|v| v.complete)
    }

    /// For the simulator: the group's version once the exchange is complete.
    pub(crate) fn group_version(&self) -> Option<u8> {
        self.view.as_ref().filter(|v| v.complete).map(|v| v.version)
    }

    // ----- view and state exchange -----

    fn on_view(&mut self, id: ViewId, members: Vec<MemberId>, me: usize, out: &mut Vec<Action>) {
        if self.phase == Phase::Failed {
            return;
        }
        self.cancel_balance(out);
        self.cancel_exchange(out);
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
        // VIFs taken from a condemned member stay mine only if this view
        // drops exactly the condemned and its shrink takeover, on the
        // table as every agreed message of the old view left it, gives
        // them to me; anything else (another member gone too, the
        // condemned still here, an agreed change since the condemnation)
        // is for the exchange to settle, and I let them go now.
        self.drop_unconfirmed_provisional(&members, me, out);
        // Before the old view is replaced: what it says the departed
        // members' VIFs become (see `shrink_takeover`).
        let takeover = self.shrink_takeover(&members, me);
        if !self.mature && !self.mature_timer {
            self.mature_timer = true;
            out.push(Action::ArmTimer {
                kind: TimerKind::Mature,
                after: self.config.mature_after,
            });
        }
        self.eligibility_sent = 0;
        self.eligibility_heard = 0;
        // The merge after carrier came back: if `mature_after` has passed
        // already, tell this view at once (after my STATE, below).
        let peers_now = members.len() > 1 && self.await_peers;
        let tell_now = peers_now && self.peer_wait;
        if peers_now {
            self.await_peers = false;
        }
        if tell_now {
            self.peer_wait = false;
            self.eligibility_timer = false;
            out.push(Action::CancelTimer(TimerKind::Eligibility));
        }
        if self.advertised != self.no_carrier && !self.eligibility_timer && !tell_now {
            // A shrink the last view did not hear: tell this one.
            self.eligibility_timer = true;
            out.push(Action::ArmTimer {
                kind: TimerKind::Eligibility,
                after: self.config.mature_after,
            });
        }
        let peers = members.len() > 1;
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
                max_version: 1,
                yielding: BTreeSet::new(),
                ineligible: BTreeSet::new(),
                bad: None,
                evicted: false,
                spoke_first: false,
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
            version: self.speak,
            handovers: BTreeMap::new(),
            next_seq: 0,
            evict_sent: BTreeSet::new(),
            early_timeout_sent: false,
            timed_out: Vec::new(),
            verdict_sent: false,
            condemned: BTreeSet::new(),
            provisional: BTreeSet::new(),
            lost: BTreeSet::new(),
        });
        self.phase = Phase::Gather;
        // My STATE claims them: the exchange keeps them with me.
        for &(v, prio) in &takeover {
            self.held[v] = prio;
        }
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
            mature: self.mature || (self.mature_before_loss && peers),
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
            max_version: self.speak,
            yielding: self.yielding().map(|v| v.0).collect(),
            ineligible: self.advertised.iter().copied().collect(),
        };
        out.push(Action::Multicast(wire::encode_as(
            &Message::State(state),
            self.speak,
        )));
        if self.speak > wire::VERSION {
            // Test hook: what a newer node may send after its STATE.
            out.push(Action::Multicast(wire::encode_as(
                &Message::Future { view: id },
                self.speak,
            )));
        }
        if !takeover.is_empty() {
            report(
                out,
                Report::TookOver {
                    view: id,
                    vifs: takeover.len(),
                },
            );
        }
        for &(v, _) in &takeover {
            out.push(Action::Acquire(VifIndex(v as u32)));
        }
        if let (true, Some(after)) = (self.speak >= 2, self.config.exchange_timeout) {
            self.exchange_timer = true;
            out.push(Action::ArmTimer {
                kind: TimerKind::Exchange,
                after,
            });
        }
        if tell_now {
            self.carrier_back(out);
        }
    }

    /// A view that only lost members of my current, settled view: the VIFs
    /// of the departed that the old view's agreed state gives me now, to
    /// take at the view instead of after its exchange (a crash failover
    /// then costs no exchange round). Every survivor computes the same
    /// answer: EVS gives the members that move on together the same old
    /// view, and only its agreed state is read (its table, and each
    /// member's weight, preferences, drain and carrier as agreed), plus the
    /// new member list. My STATE claims what I take, and the exchange
    /// keeps claims, so the table it agrees on is this one for those VIFs.
    /// Anything unusual (a hand-over or balance round in flight, an
    /// excluded or evicted member, an older group, a merge) leaves it all
    /// to the exchange.
    fn shrink_takeover(&self, members: &[MemberId], me: usize) -> Vec<(usize, Priority)> {
        let Some(old) = self.view.as_ref() else {
            return Vec::new();
        };
        (self.shrink_assignment(members, me).into_iter())
            .filter(|(v, _)| {
                self.held[*v] == Priority::Unclaimed
                    && !self.advertised.contains(&(*v as u32))
                    && old.table.get(*v).is_some()
            })
            .collect()
    }

    /// The departed members' VIFs that the shrinking view's table gives
    /// me, held already or not (see `shrink_takeover`).
    fn shrink_assignment(&self, members: &[MemberId], me: usize) -> Vec<(usize, Priority)> {
        let Some(old) = self.view.as_ref() else {
            return Vec::new();
        };
        let settled = self.config.takeover_at_view
            && old.complete
            && old.mature
            && self.phase == Phase::Run
            && self.mature
            && old.version >= 2
            && self.speak >= 2
            && old.handovers.is_empty()
            && old.members.iter().all(|m| m.valid && !m.evicted);
        if !settled || members.len() >= old.members.len() {
            return Vec::new();
        }
        let Some(olds) = members
            .iter()
            .map(|m| old.index_of.get(m).copied())
            .collect::<Option<Vec<usize>>>()
        else {
            return Vec::new();
        };
        if olds.get(me) != Some(&old.me) {
            return Vec::new();
        }
        // Old index -> new index (None: departed), and the survivors'
        // holdings in one pass over the old table.
        let mut new_of: Vec<Option<usize>> = vec![None; old.members.len()];
        for (n, &o) in olds.iter().enumerate() {
            new_of[o] = Some(n);
        }
        let survivor = |o: u32| new_of.get(o as usize).copied().flatten();
        let mut held: Vec<Vec<(u32, Priority)>> = vec![Vec::new(); olds.len()];
        for (v, slot) in old.table.iter().enumerate() {
            if let Some(n) = slot.owner.and_then(survivor) {
                held[n].push((v as u32, slot.prio));
            }
        }
        let undrained = olds.iter().any(|&o| !old.members[o].drained);
        let none = BTreeSet::new();
        let inputs: Vec<MemberInput<'_>> = olds
            .iter()
            .zip(&held)
            .map(|(&o, held)| {
                let m = &old.members[o];
                MemberInput {
                    valid: true,
                    eligible: may_receive(m.drained, undrained),
                    weight: m.weight,
                    held,
                    prefer: &m.prefer,
                    yielding: &none,
                    ineligible: &m.ineligible,
                }
            })
            .collect();
        let order: Vec<usize> = (0..olds.len()).collect();
        let (table, _) = assign::resolve(self.held.len(), &inputs, &order);
        table
            .iter()
            .enumerate()
            .filter(|(v, slot)| {
                slot.owner == Some(me as u32)
                    && old.table[*v].owner.is_some_and(|o| survivor(o).is_none())
            })
            .map(|(v, slot)| (v, slot.prio))
            .collect()
    }

    fn on_message(&mut self, sender: MemberId, payload: &[u8], out: &mut Vec<Action>) {
        let Some(mut view) = self.view.take() else {
            return;
        };
        let from = out.len();
        self.message_in_view(&mut view, sender, payload, out);
        if !view.provisional.is_empty() {
            self.reconcile_provisional(&mut view, from, out);
        }
        if std::mem::take(&mut self.evicted_me) {
            report(out, Report::EvictedMe { view: view.id });
            self.rejoin_evicted(out);
        } else if std::mem::take(&mut self.left_on_gap) {
            self.leave_and_rejoin(out);
        } else {
            self.view = Some(view);
        }
    }

    /// Encodes a message in the version I speak.
    fn send(&self, msg: &Message, out: &mut Vec<Action>) {
        out.push(Action::Multicast(wire::encode_as(msg, self.speak)));
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
        let msg = match wire::decode_as(payload, self.speak) {
            Ok(m) => m,
            Err(e) => {
                let m = &view.members[i];
                // A member's first message in a view is its STATE (in every
                // version): garbage in its place is an unusable STATE, so the
                // exchange goes on without it. A newer member's extra
                // messages are only reported.
                let in_place_of_state =
                    !e.is_newer() && !view.complete && m.state.is_none() && m.bad.is_none();
                report(
                    out,
                    Report::BadMessage {
                        sender,
                        error: e.to_string(),
                    },
                );
                if in_place_of_state {
                    view.members[i].bad = Some(format!("sent a STATE this node cannot read ({e})"));
                    view.received += 1;
                    if view.received == view.members.len() {
                        self.complete(view, out);
                    }
                }
                return;
            }
        };
        if msg.view() == view.id && !matches!(msg, Message::State(_)) {
            let m = &mut view.members[i];
            if m.state.is_none() && m.bad.is_none() {
                m.spoke_first = true;
            }
        }
        // Commands, updates, maturity and hand-over messages count only from
        // members in good standing (their VIF list is the group's).
        let standing = |view: &ViewState| {
            let m = &view.members[i];
            m.state.is_some() && (!view.complete || m.valid) && !m.evicted
        };
        let refuse = |out: &mut Vec<Action>, sender: MemberId, what: &str| {
            report(
                out,
                Report::BadMessage {
                    sender,
                    error: format!("{what} from a member whose VIF list is not the group's"),
                },
            )
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
                if m.state.is_some() || m.bad.is_some() || view.complete {
                    report(
                        out,
                        Report::BadMessage {
                            sender,
                            error: "STATE after its exchange slot (second, late or after garbage)"
                                .into(),
                        },
                    );
                    return;
                }
                m.node = s.node.clone();
                m.weight = s.weight.max(1);
                m.mature = s.mature;
                m.drained = s.drained;
                m.prefer = s.prefer.clone();
                m.max_version = s.max_version.max(1);
                m.yielding = s.yielding.iter().copied().collect();
                m.ineligible = s.ineligible.iter().copied().collect();
                m.state = Some(s);
                view.received += 1;
                view.order.push(i);
                if view.received == view.members.len() {
                    self.gap_rejoined = false;
                    self.complete(view, out);
                }
            }
            Message::Mature { view: id } => {
                if id != view.id {
                    return;
                }
                if !standing(view) {
                    return refuse(out, sender, "MATURE");
                }
                view.members[i].mature = true;
                if view.complete && !view.mature && self.phase != Phase::Excluded {
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
                if view.complete && !view.members[i].valid {
                    return refuse(out, sender, "operator command");
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
                if !standing(view) {
                    return refuse(out, sender, "UPDATE");
                }
                let m = &mut view.members[i];
                m.weight = weight.max(1);
                m.prefer = prefer;
            }
            Message::Handover { view: id, items } => {
                if id == view.id && view.complete && view.version >= 2 && standing(view) {
                    self.on_handover(view, i as u32, &items, out);
                }
            }
            Message::Taken { view: id, items } => {
                if id == view.id && view.complete && view.version >= 2 && standing(view) {
                    self.on_taken(view, i as u32, &items, out);
                }
            }
            Message::Eligibility {
                view: id,
                ineligible,
            } => {
                if id != view.id {
                    return;
                }
                if !standing(view) {
                    return refuse(out, sender, "ELIGIBILITY");
                }
                view.members[i].ineligible = ineligible.into_iter().collect();
                if i == view.me {
                    self.eligibility_heard += 1;
                }
                if i == view.me && self.eligibility_heard == self.eligibility_sent {
                    let set = view.members[i].ineligible.clone();
                    self.view = Some(std::mem::replace(view, placeholder_view()));
                    self.shrink_heard(&set, out);
                    if let Some(v) = self.view.take() {
                        *view = v;
                    }
                }
                if view.complete && view.mature && view.version >= 2 {
                    self.lost_carrier(view, i as u32, "no carrier", out);
                    let mut hb = Vec::new();
                    self.fixups(view, &mut hb, out);
                    self.send_handover(view, hb, out);
                }
            }
            Message::ExchangeTimeout { view: id } => {
                // An older member would not understand it: it must not
                // decide for some members only.
                let older = view
                    .members
                    .iter()
                    .any(|m| m.state.is_some() && m.max_version < 2);
                if id != view.id || view.complete || older {
                    return;
                }
                if self.exchange_gap(view, out) {
                    return;
                }
                for (k, m) in view.members.iter_mut().enumerate() {
                    if m.state.is_none() && m.bad.is_none() {
                        m.bad = Some("sent no STATE before the exchange timeout".into());
                        view.received += 1;
                        view.timed_out.push(k as u32);
                    }
                }
                self.complete(view, out);
                // Also when it excluded me: the others may count me.
                if !view.timed_out.is_empty() && view.version >= wire::VERDICT_VERSION {
                    self.send_verdict(view, out);
                }
            }
            Message::Verdict { view: id, missing } => {
                if id != view.id
                    || !view.complete
                    || view.version < wire::VERDICT_VERSION
                    || i == view.me
                {
                    return;
                }
                self.on_verdict(view, i, missing, out);
            }
            Message::Evict {
                view: id,
                index,
                member,
            } => {
                if id != view.id {
                    return;
                }
                if !standing(view) {
                    return refuse(out, sender, "EVICT");
                }
                let t = index as usize;
                if view.members.get(t).is_none_or(|m| m.id.0 != member) {
                    report(
                        out,
                        Report::BadMessage {
                            sender,
                            error: format!(
                                "EVICT names {member} at index {index}, not a member there"
                            ),
                        },
                    );
                    return;
                }
                self.apply_evict(view, t, out);
            }
            Message::Future { .. } => {}
        }
    }

    /// The last STATE arrived: check VIF lists, then assign if mature.
    fn complete(&mut self, view: &mut ViewState, out: &mut Vec<Action>) {
        view.complete = true;
        self.cancel_exchange(out);
        // Reference list: held by most members; ties to the lowest index.
        let mut tally: Vec<((u64, u32), usize)> = Vec::new();
        for m in &view.members {
            let Some(key) = m.state.as_ref().map(|s| (s.digest, s.vif_count)) else {
                continue;
            };
            match tally.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => tally.push((key, 1)),
            }
        }
        let best = tally.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let reference = tally.iter().find(|(_, n)| *n == best).map(|(k, _)| *k);
        for m in &mut view.members {
            let key = m.state.as_ref().map(|s| (s.digest, s.vif_count));
            m.valid = key.is_some() && key == reference;
            if !m.valid {
                let detail = match (&m.bad, key, reference) {
                    (Some(bad), _, _) => bad.clone(),
                    (None, Some(key), Some(reference)) => format!(
                        "has a different VIF list ({} VIFs, digest {:016x}; the group's has {} VIFs, digest {:016x})",
                        key.1, key.0, reference.1, reference.0
                    ),
                    _ => "has no usable STATE".into(),
                };
                view.config_errors
                    .push(format!("{} {detail}", super::who(&m.node, &m.id)));
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
        view.version = view
            .members
            .iter()
            .filter(|m| m.valid)
            .map(|m| m.max_version)
            .min()
            .unwrap_or(self.speak)
            .min(self.speak);
        if view.version < self.speak.min(wire::VERSION) {
            report(
                out,
                Report::GroupVersion {
                    view: view.id,
                    version: view.version,
                },
            );
        }
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
        self.mature_before_loss = false;
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
        let v2 = view.version >= 2;
        let none = BTreeSet::new();
        let inputs: Vec<MemberInput<'_>> = view
            .members
            .iter()
            .map(|m| MemberInput {
                valid: m.valid,
                eligible: m.eligible,
                weight: m.weight,
                held: m.state.as_ref().map(|s| s.held.as_slice()).unwrap_or(&[]),
                prefer: &m.prefer,
                yielding: if v2 { &m.yielding } else { &none },
                ineligible: if v2 { &m.ineligible } else { &none },
            })
            .collect();
        let (table, counts) = assign::resolve(self.held.len(), &inputs, &view.order);
        view.table = table;
        for (m, c) in view.members.iter_mut().zip(counts) {
            m.count = c;
        }
        if v2 {
            self.reconcile_handovers(view, out);
        } else {
            self.reconcile(view, out);
        }
        self.phase = Phase::Run;
        self.rearm_balance(view, out);
    }

    /// Version 1: releases what the table gives to others, then acquires
    /// (or reclaims) what it gives me.
    fn reconcile(&mut self, view: &ViewState, out: &mut Vec<Action>) {
        let me = view.me as u32;
        let mut acquire = Vec::new();
        for (v, slot) in view.table.iter().enumerate() {
            if v >= self.held.len() {
                continue;
            }
            if slot.owner == Some(me) && !self.advertised.contains(&(v as u32)) {
                if self.held[v] == Priority::Unclaimed {
                    acquire.push(v);
                } else if self.yielding[v] {
                    self.yielding[v] = false;
                    out.push(Action::Reclaim(VifIndex(v as u32)));
                }
                self.held[v] = slot.prio;
            } else if self.held[v] != Priority::Unclaimed {
                self.drop_vif(v, out);
            }
        }
        for v in acquire {
            out.push(Action::Acquire(VifIndex(v as u32)));
        }
    }

    /// Version 2: every member that answered for a VIF it no longer owns
    /// hands it over to the new owner (make before break): it yields now and
    /// says so (HANDOVER); the new owner answers once all have; it announces
    /// and says TAKEN; then they release.
    fn reconcile_handovers(&mut self, view: &mut ViewState, out: &mut Vec<Action>) {
        let n = view.table.len();
        let mut answering: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut yielded: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (i, m) in view.members.iter().enumerate() {
            let (true, Some(s)) = (m.valid, m.state.as_ref()) else {
                continue;
            };
            for &(v, _) in &s.held {
                if (v as usize) < n {
                    if m.yielding.contains(&v) {
                        yielded[v as usize].push(i as u32);
                    } else {
                        answering[v as usize].push(i as u32);
                    }
                }
            }
        }
        view.handovers.clear();
        let me = view.me as u32;
        let mut hb = Vec::new();
        for v in 0..n {
            let owner = view.table[v].owner;
            let mut h = Handover {
                seq: 0,
                pending: answering[v].iter().copied().collect(),
                yielded: yielded[v].iter().copied().collect(),
                owner_holds: false,
            };
            let Some(o) = owner else {
                // Nobody may hold it: whoever does lets go.
                if self.held[v] != Priority::Unclaimed {
                    self.drop_vif(v, out);
                }
                continue;
            };
            h.owner_holds = h.pending.remove(&o) | h.yielded.remove(&o);
            // Members the group knows to have no carrier hold nothing.
            h.pending.retain(|&p| view.has_carrier(p, v as u32));
            h.yielded.retain(|&p| view.has_carrier(p, v as u32));
            if !h.pending.is_empty() || !h.yielded.is_empty() {
                h.seq = view.seq();
            }
            if h.pending.contains(&me) {
                self.yield_vif(v, out);
                hb.push(HandoverItem {
                    vif: v as u32,
                    seq: h.seq,
                });
            } else if o != me && !h.yielded.contains(&me) && self.held[v] != Priority::Unclaimed {
                self.drop_vif(v, out);
            }
            if o == me && self.held[v] != Priority::Unclaimed {
                self.held[v] = view.table[v].prio;
            }
            self.settle_handover(view, v, h, out);
        }
        self.send_handover(view, hb, out);
    }

    fn send_handover(&self, view: &ViewState, items: Vec<HandoverItem>, out: &mut Vec<Action>) {
        if !items.is_empty() && !view.transitional {
            self.send(
                &Message::Handover {
                    view: view.id,
                    items,
                },
                out,
            );
        }
    }

    /// Stores a hand-over, or, once nobody else answers any more, lets the
    /// owner answer (and drops it if nobody waits for TAKEN either).
    fn settle_handover(
        &mut self,
        view: &mut ViewState,
        v: usize,
        h: Handover,
        out: &mut Vec<Action>,
    ) {
        if h.pending.is_empty() {
            let slot = view.table[v];
            if slot.owner == Some(view.me as u32) {
                self.activate(v, slot.prio, !h.yielded.is_empty(), out);
            }
            if h.yielded.is_empty() {
                return;
            }
        }
        view.handovers.insert(v as u32, h);
    }

    /// The table says I answer for v now.
    fn activate(&mut self, v: usize, prio: Priority, announce: bool, out: &mut Vec<Action>) {
        if self.advertised.contains(&(v as u32)) {
            // No carrier: my ELIGIBILITY (sent) makes the group move it.
            return;
        }
        let vif = VifIndex(v as u32);
        if self.held[v] == Priority::Unclaimed {
            out.push(Action::Acquire(vif));
        } else if self.yielding[v] {
            self.yielding[v] = false;
            out.push(Action::Reclaim(vif));
        } else if announce {
            out.push(Action::Announce(vif));
        }
        self.held[v] = prio;
    }

    fn yield_vif(&mut self, v: usize, out: &mut Vec<Action>) {
        if self.held[v] != Priority::Unclaimed && !self.yielding[v] {
            self.yielding[v] = true;
            out.push(Action::Yield(VifIndex(v as u32)));
        }
    }

    fn drop_vif(&mut self, v: usize, out: &mut Vec<Action>) {
        if self.held[v] != Priority::Unclaimed {
            self.held[v] = Priority::Unclaimed;
            self.yielding[v] = false;
            out.push(Action::Release(VifIndex(v as u32)));
        }
    }

    fn release_all(&mut self, out: &mut Vec<Action>) {
        for v in 0..self.held.len() {
            self.drop_vif(v, out);
        }
    }

    // ----- hand-overs (version 2) -----

    /// HANDOVER delivered: the sender stopped answering for these VIFs.
    fn on_handover(
        &mut self,
        view: &mut ViewState,
        sender: u32,
        items: &[HandoverItem],
        out: &mut Vec<Action>,
    ) {
        for it in items {
            let Some(h) = view.handovers.get_mut(&it.vif) else {
                continue;
            };
            if h.seq != it.seq || !h.pending.remove(&sender) {
                continue;
            }
            h.yielded.insert(sender);
            if h.pending.is_empty() {
                if let Some(h) = view.handovers.remove(&it.vif) {
                    self.settle_handover(view, it.vif as usize, h, out);
                }
            }
        }
    }

    /// TAKEN delivered: the owner's announcement is out; the yielded let go.
    fn on_taken(
        &mut self,
        view: &mut ViewState,
        sender: u32,
        items: &[HandoverItem],
        out: &mut Vec<Action>,
    ) {
        let me = view.me as u32;
        let mut done = false;
        for it in items {
            let v = it.vif as usize;
            let matches = view.handovers.get(&it.vif).is_some_and(|h| {
                h.seq == it.seq && h.pending.is_empty() && view.table[v].owner == Some(sender)
            });
            if !matches {
                continue;
            }
            if let Some(h) = view.handovers.remove(&it.vif) {
                done = true;
                if h.yielded.contains(&me) && v < self.held.len() {
                    self.drop_vif(v, out);
                }
            }
        }
        if done {
            // What waited for the hand-over (drain, preferences) goes on.
            let mut hb = Vec::new();
            self.fixups(view, &mut hb, out);
            self.send_handover(view, hb, out);
        }
    }

    /// The agent's announcements are out: say TAKEN where a hand-over waits
    /// for me.
    fn on_announced(&mut self, vifs: &[VifIndex], out: &mut Vec<Action>) {
        let Some(view) = &self.view else { return };
        if !view.complete || view.transitional || view.version < 2 {
            return;
        }
        let me = view.me as u32;
        let items: Vec<HandoverItem> = vifs
            .iter()
            .filter_map(|vif| {
                let v = vif.0 as usize;
                let h = view.handovers.get(&vif.0)?;
                let mine = view.table.get(v)?.owner == Some(me)
                    && h.pending.is_empty()
                    && self.held.get(v).is_some_and(|p| *p != Priority::Unclaimed)
                    && !self.yielding[v];
                mine.then_some(HandoverItem {
                    vif: vif.0,
                    seq: h.seq,
                })
            })
            .collect();
        if !items.is_empty() {
            self.send(
                &Message::Taken {
                    view: view.id,
                    items,
                },
                out,
            );
        }
    }

    /// Moves VIF v to `to` in the table. Version 1: at once (the new owner
    /// acquires, the old releases). Version 2: a hand-over: whoever answers
    /// for v now yields first (a hand-over in progress is redirected, its
    /// parties kept), and `to` answers once they all have.
    ///
    /// Every member that holds v and does not own it stays a party until it
    /// releases: the old owner joins `pending` if it answered or held v
    /// while waiting (redirected to it, or a merge winner), even if it is
    /// already yielding; its HANDOVER then makes it `yielded`, and TAKEN
    /// releases it. A redirected hand-over gets a fresh seq and its pending
    /// members say HANDOVER again, so that a HANDOVER sent before the
    /// redirect (maybe before the sender answered again) never counts for it.
    fn transfer(
        &mut self,
        view: &mut ViewState,
        v: usize,
        to: u32,
        prio: Priority,
        hb: &mut Vec<HandoverItem>,
        out: &mut Vec<Action>,
    ) -> MoveReport {
        if view.version < 2 {
            return self.move_vif(view, v, to, prio, out);
        }
        let vu = v as u32;
        let from = view.table[v].owner;
        let existing = view.handovers.remove(&vu);
        let activated = existing.as_ref().is_none_or(|h| h.pending.is_empty());
        let redirected = existing.is_some() && from != Some(to);
        let mut h = existing.unwrap_or_default();
        let me = view.me as u32;
        let was_pending = h.pending.contains(&me);
        if let Some(o) = from.filter(|&o| o != to) {
            // The old owner holds v if it was let answer, or held it while
            // waiting; without carrier it released it already.
            if (activated || h.owner_holds) && view.has_carrier(o, vu) {
                h.pending.insert(o);
            }
            if let Some(m) = view.members.get_mut(o as usize) {
                m.count = m.count.saturating_sub(1);
            }
            if let Some(m) = view.members.get_mut(to as usize) {
                m.count += 1;
            }
        } else if from.is_none() {
            if let Some(m) = view.members.get_mut(to as usize) {
                m.count += 1;
            }
        }
        if from != Some(to) {
            h.owner_holds = h.pending.remove(&to) | h.yielded.remove(&to);
        }
        if h.seq == 0 || redirected {
            h.seq = view.seq();
        }
        if h.pending.contains(&me) && (redirected || !was_pending) {
            self.yield_vif(v, out);
            hb.push(HandoverItem {
                vif: vu,
                seq: h.seq,
            });
        }
        view.table[v] = Slot {
            owner: Some(to),
            prio,
        };
        if to == me && self.held[v] != Priority::Unclaimed {
            self.held[v] = prio;
        }
        self.settle_handover(view, v, h, out);
        MoveReport {
            vif: VifIndex(v as u32),
            from: from.map(|f| view.name_of(f)),
            to: view.name_of(to),
        }
    }

    /// ELIGIBILITY delivered from member s: it released at once what it has
    /// no carrier for (a failure: no hand-over). Its VIFs go elsewhere, to
    /// the hand-over's other parties first (the old owner keeps them).
    fn lost_carrier(
        &mut self,
        view: &mut ViewState,
        s: u32,
        reason: &'static str,
        out: &mut Vec<Action>,
    ) {
        let me = view.me as u32;
        let mut hb = Vec::new();
        let mut moves = Vec::new();
        let lost: Vec<u32> = view.members[s as usize]
            .ineligible
            .iter()
            .copied()
            .collect();
        for v in lost {
            let vi = v as usize;
            if vi >= view.table.len() {
                continue;
            }
            // As a party of a hand-over it holds nothing any more.
            if let Some(mut h) = view.handovers.remove(&v) {
                let was_pending = h.pending.remove(&s);
                h.yielded.remove(&s);
                if was_pending && h.pending.is_empty() {
                    // The owner may answer now.
                    self.settle_handover(view, vi, h, out);
                } else if !h.pending.is_empty() || !h.yielded.is_empty() {
                    view.handovers.insert(v, h);
                }
            }
            if view.table[vi].owner != Some(s) {
                continue;
            }
            let parties: Option<u32> = view.handovers.get(&v).and_then(|h| {
                h.pending
                    .iter()
                    .chain(h.yielded.iter())
                    .copied()
                    .filter(|&p| view.can_hold(p, v))
                    .min()
            });
            let to = parties.or_else(|| self.recipient(view, v));
            match to {
                Some(to) => {
                    moves.push(self.transfer(view, vi, to, Priority::Claimed, &mut hb, out))
                }
                None => {
                    // Nobody may hold it.
                    if let Some(h) = view.handovers.remove(&v) {
                        if h.pending.contains(&me) || h.yielded.contains(&me) {
                            self.drop_vif(vi, out);
                        }
                    }
                    if let Some(m) = view.members.get_mut(s as usize) {
                        m.count = m.count.saturating_sub(1);
                    }
                    view.table[vi] = Slot::EMPTY;
                }
            }
        }
        if s == me {
            // Mine were released when the carrier went.
            for v in view.members[s as usize].ineligible.clone() {
                if (v as usize) < self.held.len() {
                    self.drop_vif(v as usize, out);
                }
            }
        }
        self.send_handover(view, hb, out);
        if !moves.is_empty() {
            report(out, Report::Moves { reason, moves });
        }
    }

    /// The eligible member that prefers v (lowest index) or the least loaded
    /// one that may hold it.
    fn recipient(&self, view: &ViewState, v: u32) -> Option<u32> {
        let preferring = view
            .members
            .iter()
            .enumerate()
            .find(|(i, m)| m.prefer.contains(&v) && view.can_hold(*i as u32, v))
            .map(|(i, _)| i as u32);
        preferring.or_else(|| {
            Recipients::new(&view.counts(), &view.weights(), &view.eligible())
                .take_where(|i| view.can_hold(i, v))
        })
    }

    /// After eligibility changed or a hand-over ended: VIFs whose owner may
    /// not hold them move on, then preferences are settled.
    fn fixups(&mut self, view: &mut ViewState, hb: &mut Vec<HandoverItem>, out: &mut Vec<Action>) {
        if !view.mature {
            return;
        }
        self.reassign_ineligible(view, hb, out);
        self.settle_preferences(view, hb, out);
        // VIFs nobody could hold (no carrier anywhere) find an owner again.
        let mut moves = Vec::new();
        for v in 0..view.table.len() {
            if view.table[v].owner.is_none() {
                if let Some(to) = self.recipient(view, v as u32) {
                    moves.push(self.transfer(view, v, to, Priority::Claimed, hb, out));
                }
            }
        }
        if !moves.is_empty() {
            report(
                out,
                Report::Moves {
                    reason: "carrier back",
                    moves,
                },
            );
        }
    }

    /// Version 1: moves one VIF at once; the new owner acquires, the old
    /// releases.
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
            self.drop_vif(v, out);
        }
        if to == me && !self.advertised.contains(&(v as u32)) {
            if self.held[v] == Priority::Unclaimed {
                out.push(Action::Acquire(VifIndex(v as u32)));
            } else if self.yielding[v] {
                self.yielding[v] = false;
                out.push(Action::Reclaim(VifIndex(v as u32)));
            }
            self.held[v] = prio;
        }
        MoveReport {
            vif: VifIndex(v as u32),
            from: from.map(|f| view.name_of(f)),
            to: view.name_of(to),
        }
    }

    // ----- carrier -----

    fn on_eligibility(&mut self, ineligible: &BTreeSet<VifIndex>, out: &mut Vec<Action>) {
        let n = self.held.len();
        let now: BTreeSet<u32> = ineligible
            .iter()
            .map(|v| v.0)
            .filter(|v| (*v as usize) < n)
            .collect();
        let lost: Vec<u32> = now.difference(&self.no_carrier).copied().collect();
        let back = self.advertised.difference(&now).next().is_some();
        self.no_carrier = now;
        // No carrier is a failure: let go at once, then tell the group.
        for &v in &lost {
            self.drop_vif(v as usize, out);
        }
        // Told even if already advertised: a shrink may be on its way.
        let told = !lost.is_empty();
        self.advertised.extend(lost);
        if told {
            self.send_eligibility(out);
        }
        if back {
            // Eligible again only after `mature_after` of carrier, and a view
            // with peers (or `merge_wait`; see `set_merge_wait`).
            self.await_peers = true;
            self.peer_wait = false;
            self.eligibility_timer = true;
            out.push(Action::ArmTimer {
                kind: TimerKind::Eligibility,
                after: self.config.mature_after,
            });
        }
    }

    fn on_eligibility_timer(&mut self, out: &mut Vec<Action>) {
        self.eligibility_timer = false;
        if self.advertised == self.no_carrier {
            self.peer_wait = false;
            return;
        }
        if self.await_peers && !self.peer_wait {
            // `mature_after` is over but no view with peers yet: wait for
            // one until `merge_wait` (counted from the carrier's return).
            let rest = self.merge_wait.saturating_sub(self.config.mature_after);
            if !rest.is_zero() {
                self.peer_wait = true;
                self.eligibility_timer = true;
                out.push(Action::ArmTimer {
                    kind: TimerKind::Eligibility,
                    after: rest,
                });
                return;
            }
        }
        self.await_peers = false;
        self.peer_wait = false;
        self.carrier_back(out);
    }

    /// Carrier is back long enough: tell the group I may hold those VIFs.
    fn carrier_back(&mut self, out: &mut Vec<Action>) {
        // Eligible again once the group has heard it (my ELIGIBILITY is
        // delivered), so that a stale "no carrier" never meets a VIF I hold.
        let can_tell = self
            .view
            .as_ref()
            .is_some_and(|v| !v.transitional && self.speak >= 2 && self.phase != Phase::Excluded);
        if can_tell {
            self.send_eligibility_set(&self.no_carrier.clone(), out);
        } else if self.view.is_none() || self.speak < 2 {
            self.advertised = self.no_carrier.clone();
            self.take_back(out);
        }
        // Otherwise the next view retries (see on_view).
    }

    /// My ELIGIBILITY with `set` was delivered: the group knows it now.
    fn shrink_heard(&mut self, set: &BTreeSet<u32>, out: &mut Vec<Action>) {
        let now: BTreeSet<u32> = set.union(&self.no_carrier).copied().collect();
        if now != self.advertised {
            self.advertised = now;
            self.take_back(out);
        }
    }

    /// What the table still gives me (the group did not hear that I had no
    /// carrier, or cannot: version 1) and nobody else answers: take it.
    fn take_back(&mut self, out: &mut Vec<Action>) {
        let Some(view) = &self.view else { return };
        if view.complete && view.mature && self.phase != Phase::Excluded {
            for (v, slot) in view.table.iter().enumerate() {
                let active = view
                    .handovers
                    .get(&(v as u32))
                    .is_none_or(|h| h.pending.is_empty());
                if slot.owner == Some(view.me as u32)
                    && active
                    && self.held[v] == Priority::Unclaimed
                    && !self.advertised.contains(&(v as u32))
                {
                    self.held[v] = slot.prio;
                    out.push(Action::Acquire(VifIndex(v as u32)));
                }
            }
        }
    }

    fn send_eligibility(&mut self, out: &mut Vec<Action>) {
        let set = self.advertised.clone();
        self.send_eligibility_set(&set, out);
    }

    fn send_eligibility_set(&mut self, set: &BTreeSet<u32>, out: &mut Vec<Action>) {
        if let Some(view) = &self.view {
            if !view.transitional && self.speak >= 2 && self.phase != Phase::Excluded {
                self.send(
                    &Message::Eligibility {
                        view: view.id,
                        ineligible: set.iter().copied().collect(),
                    },
                    out,
                );
                self.eligibility_sent += 1;
            }
        }
    }

    fn cancel_exchange(&mut self, out: &mut Vec<Action>) {
        if self.exchange_timer {
            self.exchange_timer = false;
            out.push(Action::CancelTimer(TimerKind::Exchange));
        }
    }

    /// The exchange took too long: ask the group to go on without the
    /// members whose STATE is missing (agreed, so all decide alike).
    fn on_exchange_timer(&mut self, out: &mut Vec<Action>) {
        self.exchange_timer = false;
        if let Some(view) = &self.view {
            if !view.complete && !view.transitional && self.speak >= 2 {
                self.send(&Message::ExchangeTimeout { view: view.id }, out);
            }
        }
    }
    // ----- maturity and balance -----

    fn on_mature_timer(&mut self, out: &mut Vec<Action>) {
        self.mature_timer = false;
        if self.mature || self.phase == Phase::Failed {
            return;
        }
        self.mature = true;
        self.mature_before_loss = false;
        report(out, Report::Matured);
        if let Some(view) = &self.view {
            if !view.transitional && self.phase != Phase::Excluded {
                self.send(&Message::Mature { view: view.id }, out);
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
            |v| view.handovers.contains_key(&v),
            |m, v| view.can_hold(m, v),
        );
        if moves.is_empty() {
            return false;
        }
        let moves = moves
            .into_iter()
            .map(|(vif, from, to)| WireMove { vif, from, to })
            .collect();
        self.send(
            &Message::Balance {
                view: view.id,
                moves,
            },
            out,
        );
        self.phase = Phase::Balance;
        true
    }

    /// Every member: applies a delivered balance round, move by move, each
    /// checked against the agreed table (so all members skip the same ones).
    fn apply_balance(&mut self, view: &mut ViewState, moves: &[WireMove], out: &mut Vec<Action>) {
        let mut done = Vec::new();
        let mut hb = Vec::new();
        for m in moves {
            let v = m.vif as usize;
            let ok = view.table.get(v).is_some_and(|s| {
                s.owner == Some(m.from) && s.prio < Priority::Prefer && m.from != m.to
            }) && view.can_hold(m.to, m.vif)
                && !view.handovers.contains_key(&m.vif);
            if ok {
                done.push(self.transfer(view, v, m.to, Priority::Claimed, &mut hb, out));
            }
        }
        self.send_handover(view, hb, out);
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
        let known = |node: &str| {
            node.len() <= wire::MAX_NAME_LEN
                && view.members.iter().any(|m| m.valid && m.node == node)
        };
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
        self.send(
            &Message::Command {
                view: view.id,
                command,
            },
            out,
        );
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
                if !view.can_hold(to as u32, vif) {
                    return reject(out, "the node has no carrier for this VIF");
                }
                if view.handovers.contains_key(&vif) {
                    return reject(out, "a hand-over of this VIF is in progress; try again");
                }
                let mut hb = Vec::new();
                let moved =
                    self.transfer(view, v, to as u32, Priority::PreferClaimed, &mut hb, out);
                self.send_handover(view, hb, out);
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
                let mut hb = Vec::new();
                self.fixups(view, &mut hb, out);
                self.send_handover(view, hb, out);
            }
            WireCommand::Balance => {
                if view.leader == Some(view.me) && self.phase == Phase::Run {
                    self.balance_round(view, out);
                }
            }
        }
    }

    /// VIFs owned by members that may not hold them go to the first member
    /// that prefers them and may, else to the least loaded that may. A VIF
    /// being handed over to such a member goes back to a party of the
    /// hand-over that may hold it (its old owner keeps it).
    fn reassign_ineligible(
        &mut self,
        view: &mut ViewState,
        hb: &mut Vec<HandoverItem>,
        out: &mut Vec<Action>,
    ) {
        let eligible = view.eligible();
        let mut recipients = Recipients::new(&view.counts(), &view.weights(), &eligible);
        let mut moves = Vec::new();
        for v in 0..view.table.len() {
            let Some(o) = view.table[v].owner else {
                continue;
            };
            if view.can_hold(o, v as u32) {
                continue;
            }
            let vu = v as u32;
            let party = view.handovers.get(&vu).and_then(|h| {
                h.pending
                    .iter()
                    .chain(h.yielded.iter())
                    .copied()
                    .filter(|&p| view.can_hold(p, vu))
                    .min()
            });
            let preferring = view
                .members
                .iter()
                .enumerate()
                .position(|(i, m)| m.prefer.contains(&vu) && view.can_hold(i as u32, vu));
            let (to, prio, rebuild) = match (party, preferring) {
                (Some(p), _) => (Some(p), Priority::Claimed, true),
                (None, Some(p)) => (Some(p as u32), Priority::PreferClaimed, true),
                (None, None) => (
                    recipients.take_where(|i| view.can_hold(i, vu)),
                    Priority::Claimed,
                    false,
                ),
            };
            if let Some(to) = to {
                moves.push(self.transfer(view, v, to, prio, hb, out));
                if rebuild {
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
    /// PREFER_CLAIMED (by a preferring member or pinned by `move`), or is
    /// being handed over (it is settled when the hand-over ends).
    fn settle_preferences(
        &mut self,
        view: &mut ViewState,
        hb: &mut Vec<HandoverItem>,
        out: &mut Vec<Action>,
    ) {
        let mut preferred_by: Vec<Option<u32>> = vec![None; view.table.len()];
        for (i, m) in view.members.iter().enumerate() {
            for &v in &m.prefer {
                if view.can_hold(i as u32, v) {
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
                    && slot.owner.is_some_and(|o| view.can_hold(o, v as u32));
                if !pinned && !view.handovers.contains_key(&(v as u32)) {
                    moves.push(self.transfer(view, v, p, Priority::PreferClaimed, hb, out));
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
        self.config = Arc::new(config);
        if vifs_changed {
            // Released indices refer to the old list.
            self.release_all(out);
            self.digest = vif_digest(&self.config.vifs);
            self.held = vec![Priority::Unclaimed; self.config.vifs.len()];
            self.yielding = vec![false; self.config.vifs.len()];
            // Indices of the old list: the agent feeds the set anew.
            self.no_carrier.clear();
            self.advertised.clear();
            self.await_peers = false;
            self.peer_wait = false;
            self.cancel_exchange(out);
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
                    self.send(
                        &Message::Update {
                            view: view.id,
                            weight: self.config.weight.max(1),
                            prefer: self.config.prefer.iter().map(|v| v.0).collect(),
                        },
                        out,
                    );
                }
            }
        }
    }
}

/// Why an evicted member takes no part (`ctl status` lists it so).
const EVICTED: &str = "was evicted: silent in the group past the eviction deadline";

// ----- condemnation by the LAN detector -----
impl Allocator {
    /// The LAN detector condemned these members: lost by a majority of the
    /// view, their fence silenced them first (see `detect`). The agreed
    /// view that drops a crashed member, or the agreed EVICT of a live one,
    /// settles it; meanwhile, in a settled view and for the first member
    /// condemned in it, I take at once those of its VIFs that *both*
    /// settlements give me (the view's `shrink_takeover` and the EVICT's
    /// reassignment, computed on a copy), so whichever comes first agrees
    /// with what I answer. Every condemner asks the group to evict.
    fn on_condemned(&mut self, members: &[MemberId], out: &mut Vec<Action>) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        if !view.complete || view.transitional {
            return;
        }
        let new: Vec<usize> = members
            .iter()
            .filter_map(|m| view.index_of.get(m).copied())
            .filter(|&i| i != view.me && !view.members[i].evicted && !view.condemned.contains(&i))
            .collect();
        if new.is_empty() {
            return;
        }
        // Only a lone failure: nobody else lost, nobody condemned before.
        let first =
            view.condemned.is_empty() && new.len() == 1 && view.lost.iter().all(|&l| l == new[0]);
        let take = if first {
            self.provisional_takeover(new[0])
        } else {
            Vec::new()
        };
        let can_evict = self.speak >= wire::EVICT_VERSION
            && self.phase != Phase::Excluded
            && view.version >= wire::EVICT_VERSION;
        let mut msgs = Vec::new();
        let Some(view) = self.view.as_mut() else {
            return;
        };
        for &t in &new {
            view.condemned.insert(t);
            report(
                out,
                Report::Condemned {
                    view: view.id,
                    member: view.members[t].id.clone(),
                    took: if first { take.len() } else { 0 },
                },
            );
            if can_evict && view.evict_sent.insert(t) {
                msgs.push(Message::Evict {
                    view: view.id,
                    index: t as u32,
                    member: view.members[t].id.0.clone(),
                });
            }
        }
        for &(v, prio) in &take {
            view.provisional.insert(v);
            self.held[v] = prio;
            out.push(Action::Acquire(VifIndex(v as u32)));
        }
        for m in msgs {
            self.send(&m, out);
        }
    }

    /// The detector lost these members (see `Input::Lost`).
    fn on_lost(&mut self, members: &[MemberId], out: &mut Vec<Action>) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        let lost: Vec<usize> = members
            .iter()
            .filter_map(|m| view.index_of.get(m).copied())
            .filter(|&i| i != view.me)
            .collect();
        view.lost.extend(lost.iter().copied());
        let second = lost.iter().any(|i| !view.condemned.contains(i));
        if second && !view.condemned.is_empty() {
            let provisional = std::mem::take(&mut view.provisional);
            for v in provisional {
                self.drop_vif(v, out);
            }
        }
    }

    /// See `on_view`.
    fn drop_unconfirmed_provisional(
        &mut self,
        members: &[MemberId],
        me: usize,
        out: &mut Vec<Action>,
    ) {
        if self.view.as_ref().is_none_or(|v| v.provisional.is_empty()) {
            return;
        }
        let confirmed: BTreeSet<usize> = (self.shrink_assignment(members, me).into_iter())
            .map(|(v, _)| v)
            .collect();
        let Some(old) = self.view.as_mut() else {
            return;
        };
        let departed: BTreeSet<usize> = old
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| !members.contains(&m.id))
            .map(|(i, _)| i)
            .collect();
        let provisional = std::mem::take(&mut old.provisional);
        let exact = departed == old.condemned;
        for v in provisional {
            if !exact || !confirmed.contains(&v) {
                self.drop_vif(v, out);
            }
        }
    }

    /// The VIFs of member `t` both settlements give me (see
    /// `on_condemned`); none unless my view is settled.
    fn provisional_takeover(&self, t: usize) -> Vec<(usize, Priority)> {
        let Some(view) = self.view.as_ref() else {
            return Vec::new();
        };
        if view.version < wire::EVICT_VERSION || !view.mature {
            return Vec::new();
        }
        let members: Vec<MemberId> = view
            .members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != t)
            .map(|(_, m)| m.id.clone())
            .collect();
        let me = if view.me > t { view.me - 1 } else { view.me };
        let by_view = self.shrink_takeover(&members, me);
        if by_view.is_empty() {
            return by_view;
        }
        // The EVICT's reassignment, on a copy of my state.
        let mut copy = self.clone();
        let Some(mut v) = copy.view.take() else {
            return Vec::new();
        };
        let mut sink = Vec::new();
        copy.apply_evict(&mut v, t, &mut sink);
        by_view
            .into_iter()
            .filter(|(i, _)| v.table.get(*i).and_then(|s| s.owner) == Some(view.me as u32))
            .collect()
    }

    /// After an agreed message: a provisional VIF the table now gives me,
    /// with no hand-over to me still waiting, is simply mine (the `Acquire`
    /// the message produced for it is dropped: it answers already); one the
    /// table gives to anyone but me or its condemned owner is released at
    /// once.
    fn reconcile_provisional(&mut self, view: &mut ViewState, from: usize, out: &mut Vec<Action>) {
        let me = view.me as u32;
        let mut settled = BTreeSet::new();
        let mut lost = Vec::new();
        for &v in &view.provisional {
            if self.held[v] == Priority::Unclaimed {
                // Let go meanwhile (carrier lost): nothing to settle.
                settled.insert(v);
                continue;
            }
            match view.table.get(v).and_then(|s| s.owner) {
                // Mine once no hand-over to me waits for anyone (the
                // condemned holder's yield): until then the others take me
                // for a member still waiting, not answering, and a move
                // away from me would not wait for me to yield.
                Some(o) if o == me => {
                    let waiting = view
                        .handovers
                        .get(&(v as u32))
                        .is_some_and(|h| !h.pending.is_empty());
                    if !waiting {
                        settled.insert(v);
                    }
                }
                Some(o)
                    if view.condemned.contains(&(o as usize))
                        && !view.members[o as usize].evicted => {}
                _ => lost.push(v),
            }
        }
        let mut i = from;
        while i < out.len() {
            if matches!(out[i], Action::Acquire(VifIndex(v)) if settled.contains(&(v as usize))) {
                out.remove(i);
            } else {
                i += 1;
            }
        }
        for v in &settled {
            view.provisional.remove(v);
        }
        for v in lost {
            view.provisional.remove(&v);
            self.drop_vif(v, out);
        }
    }
}

// ----- eviction of a silent member -----
impl Allocator {
    /// The agent saw these members silent in the group past the eviction
    /// deadline (their fencing lease has lapsed): the lowest-index member
    /// that is neither silent nor evicted asks the group to evict them,
    /// once per member and view. Only in views whose group speaks
    /// [`wire::EVICT_VERSION`]: an older member would ignore EVICT.
    fn on_suspects(&mut self, suspects: &[MemberId], out: &mut Vec<Action>) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        if !view.complete && !view.transitional {
            // Silent during the exchange: every STATE still missing is a
            // suspect's, so the exchange timeout would only wait longer for
            // the same verdict (and keep its VIFs dark, its lease having
            // lapsed). Ask for it now, once, if my timer would.
            let missing = view
                .members
                .iter()
                .filter(|m| m.state.is_none() && m.bad.is_none());
            let all_silent = missing.clone().count() > 0
                && missing.clone().all(|m| suspects.contains(&m.id))
                && !missing.clone().any(|m| m.spoke_first);
            if all_silent && self.exchange_timer && !view.early_timeout_sent {
                view.early_timeout_sent = true;
                let id = view.id;
                let members = missing.map(|m| m.id.clone()).collect();
                report(out, Report::SilentInExchange { view: id, members });
                self.send(&Message::ExchangeTimeout { view: id }, out);
            }
            return;
        }
        if view.transitional
            || self.speak < wire::EVICT_VERSION
            || self.phase == Phase::Excluded
            || !view.complete
            || view.version < wire::EVICT_VERSION
        {
            return;
        }
        let silent: BTreeSet<usize> = suspects
            .iter()
            .filter_map(|m| view.index_of.get(m).copied())
            .filter(|&i| i != view.me && !view.members[i].evicted)
            .collect();
        if silent.is_empty() {
            return;
        }
        let sender = view
            .members
            .iter()
            .enumerate()
            .position(|(i, m)| !silent.contains(&i) && m.valid);
        if sender != Some(view.me) {
            return;
        }
        let mut msgs = Vec::new();
        for t in silent {
            if view.evict_sent.insert(t) {
                msgs.push(Message::Evict {
                    view: view.id,
                    index: t as u32,
                    member: view.members[t].id.0.clone(),
                });
            }
        }
        for m in msgs {
            self.send(&m, out);
        }
    }

    /// EVICT delivered: member t is gone for this view, like a member that
    /// left: it holds nothing (its lease has silenced it) and may hold
    /// nothing; its VIFs go to others at once, the same way everywhere.
    /// Me: I release everything and rejoin immature (see `on_message`).
    fn apply_evict(&mut self, view: &mut ViewState, t: usize, out: &mut Vec<Action>) {
        // Only once every member is known to understand it (the exchange
        // is complete and the group speaks version 3): an older member,
        // maybe the silent one itself, must not be left deciding otherwise.
        // A member silent during an exchange is left out by the exchange
        // timeout first.
        if view.members[t].evicted || !view.complete || view.version < wire::EVICT_VERSION {
            return;
        }
        view.members[t].evicted = true;
        if t == view.me {
            self.evicted_me = true;
            return;
        }
        report(
            out,
            Report::Evicted {
                view: view.id,
                member: view.members[t].id.clone(),
                node: view.members[t].node.clone(),
            },
        );
        let m = &mut view.members[t];
        if m.valid {
            m.valid = false;
            view.config_errors
                .push(format!("{} {EVICTED}", super::who(&m.node, &m.id)));
        }
        view.compute_eligibility();
        let leader = view.leader;
        view.leader = view.members.iter().position(|m| m.valid);
        if self.phase == Phase::Excluded || !view.mature {
            return;
        }
        // It holds nothing: no VIF waits for it, its VIFs move on.
        view.members[t].ineligible = (0..view.table.len() as u32).collect();
        self.lost_carrier(view, t as u32, "eviction", out);
        let mut hb = Vec::new();
        self.fixups(view, &mut hb, out);
        self.send_handover(view, hb, out);
        if view.leader != leader && view.leader == Some(view.me) && !self.balance_timer {
            self.rearm_balance(view, out);
        }
    }

    /// The agreed exchange timeout with STATEs missing: the verdict leaves
    /// those members out, the same at every member still waiting. But a
    /// member that spoke in this view before its STATE was delivered sent
    /// that STATE (every member sends it first), so the others may well
    /// have it and have completed without me: my delivery of this view is
    /// broken (seen after a machine-wide stall, when every agent rejoined
    /// at once with the same member ids while the rings re-formed). A
    /// verdict of my own would then give me VIFs that their owners keep.
    /// Instead let go of everything and rejoin: the group's next views
    /// start a fresh exchange. Not twice in a row: a member that speaks
    /// before its STATE on purpose must not keep the group rejoining; the
    /// second time the verdict applies. Returns whether I left.
    fn exchange_gap(&mut self, view: &ViewState, out: &mut Vec<Action>) -> bool {
        let lost: Vec<MemberId> = view
            .members
            .iter()
            .filter(|m| m.state.is_none() && m.bad.is_none() && m.spoke_first)
            .map(|m| m.id.clone())
            .collect();
        if lost.is_empty() || self.gap_rejoined {
            return false;
        }
        self.gap_rejoined = true;
        self.left_on_gap = true;
        report(
            out,
            Report::ExchangeGap {
                view: view.id,
                members: lost,
            },
        );
        true
    }

    /// Member `i`'s VERDICT (the members its exchange timeout left out) in
    /// my complete view. Under EVS it equals my own outcome. A delivery
    /// that loses a STATE only ever adds to the missing set, so if mine
    /// names a member `i`'s does not, `i` holds a STATE I lost: my table
    /// is wrong, and I release everything and rejoin (my
    /// leaving gives everyone a fresh exchange). If it lacks a STATE I
    /// have, its table is wrong: I tell it with my own VERDICT (once per
    /// view), and it finds itself wrong the same way.
    fn on_verdict(
        &mut self,
        view: &mut ViewState,
        i: usize,
        missing: Vec<u32>,
        out: &mut Vec<Action>,
    ) {
        let n = view.members.len() as u32;
        if missing.iter().any(|&k| k >= n) || missing.windows(2).any(|w| w[0] >= w[1]) {
            report(
                out,
                Report::BadMessage {
                    sender: view.members[i].id.clone(),
                    error: format!(
                        "VERDICT names members {missing:?}, not sorted indices of a view of {n}"
                    ),
                },
            );
            return;
        }
        if missing == view.timed_out {
            return;
        }
        let i_lost = view.timed_out.iter().any(|k| !missing.contains(k));
        report(
            out,
            Report::ExchangeDiverged {
                view: view.id,
                member: view.members[i].id.clone(),
                node: view.members[i].node.clone(),
                mine: view.timed_out.clone(),
                theirs: missing,
                rejoining: i_lost,
            },
        );
        if i_lost {
            self.left_on_gap = true;
        } else if !view.verdict_sent {
            self.send_verdict(view, out);
        }
    }

    /// Multicasts my VERDICT: the members my exchange timeout left out.
    fn send_verdict(&self, view: &mut ViewState, out: &mut Vec<Action>) {
        view.verdict_sent = true;
        self.send(
            &Message::Verdict {
                view: view.id,
                missing: view.timed_out.clone(),
            },
            out,
        );
    }

    /// Lets go of everything and leaves the view, then rejoins the group:
    /// the whole group redoes the exchange with me as a new member.
    fn leave_and_rejoin(&mut self, out: &mut Vec<Action>) {
        self.release_all(out);
        self.cancel_balance(out);
        self.cancel_exchange(out);
        self.view = None;
        self.phase = Phase::Disconnected;
        out.push(Action::Leave);
        out.push(Action::Join);
    }

    /// The group evicted me (I was silent too long: frozen or starved, and
    /// my lease lapsed): let go of everything, then leave and rejoin
    /// immature, as a new member the group takes in with a fresh view.
    fn rejoin_evicted(&mut self, out: &mut Vec<Action>) {
        self.mature_before_loss |= self.mature;
        self.mature = false;
        if self.mature_timer {
            self.mature_timer = false;
            out.push(Action::CancelTimer(TimerKind::Mature));
        }
        self.leave_and_rejoin(out);
    }
}

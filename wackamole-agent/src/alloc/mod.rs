//! Allocation engine: Wackamole's algorithm as a pure state machine.
//!
//! One [`Allocator`] per node turns membership events, agreed messages, timer
//! expiries and operator commands ([`Input`]) into [`Action`]s (acquire or
//! release a VIF, multicast, arm a timer, leave/join, report). It does no I/O,
//! has no clock and no randomness, so every member that applies the same agreed
//! messages in the same order computes the same table.
//!
//! Design notes (where this differs from wackamole 2.1.4, and why):
//! - The state exchange is resolved once, when the last STATE of the view has
//!   been delivered, instead of incrementally. Every member does it at the same
//!   point of the agreed order, so the result is the same everywhere, and the
//!   VIF-list check can use every member's digest (the list held by most
//!   members is the reference; ties go to the list of the lowest-index member).
//!   Duplicates left by a merge therefore live until that last STATE, which the
//!   engine delivers right after the view.
//! - Maturity is claimed through the agreed order: a mature timer makes the
//!   node multicast MATURE, and members claim when MATURE is delivered, so no
//!   node ever claims on a purely local event.
//! - A node whose engine was lost (or that was evicted) rejoins immature,
//!   so that coming back alone before its engine merges claims nothing. If
//!   it was mature, its STATE in a view with peers says mature: when every
//!   member loses its engine together (a host-wide stall, corosync
//!   restarted everywhere) the group assigns at its exchange instead of
//!   leaving every VIF dark for `mature_after`. Only a completed exchange
//!   makes it mature again; a view that shrinks to the node alone before
//!   that leaves it waiting like a new node.
//! - A crash costs no exchange round: at a view that only lost members of
//!   a settled view (no hand-over in flight, every member in good
//!   standing, version 2 or later), each survivor takes at once the
//!   departed members' VIFs that the old view's agreed state gives it
//!   (`resolve` over the old table minus the departed), and its STATE
//!   claims them, so the exchange keeps them where they are. EVS gives the
//!   survivors the same old view, so they compute the same answer. Only
//!   with a fencing lease (`takeover_at_view`): an agent that applies the
//!   view late, after an exchange timeout left it out, is silent in XDP.
//! - `move VIF NODE` is one agreed message; the moved VIF is pinned
//!   (PREFER_CLAIMED): balance never moves it back, and it keeps that
//!   priority across view changes while its owner stays up.
//! - `drain NODE` is one agreed message: every VIF of that node moves to the
//!   least-loaded other members and the node claims nothing until `undrain
//!   NODE`. The drained flag survives view changes (the node carries it in its
//!   STATE) and ends with `undrain`, `recover` or a restart. If every valid
//!   member is drained, drain is set aside so that no VIF is left unserved.
//!
//! ## Make-before-break hand-overs (wire version 2)
//! Every ownership change that is not a failure (move, drain, undrain and
//! preferences, balance rounds, a returning node taking its share, duplicate
//! claims after a merge) is a *hand-over*. The agreed table gives the VIF its
//! new owner at once (counts, balance and operators see the new owner), and
//! records the hand-over: the members that still answer ARP for it
//! (*pending*) and those that stopped but still hold the addresses
//! (*yielded*). Then:
//! 1. every pending member yields — [`Action::Yield`]: its XDP stops
//!    answering ARP for the VIF but still accepts its traffic — and then
//!    multicasts HANDOVER(v, seq) (the Yield comes first in the same batch);
//! 2. when the last pending member's HANDOVER is delivered, the new owner
//!    answers: [`Action::Acquire`] (or [`Action::Reclaim`] if it was yielding,
//!    or [`Action::Announce`] if it already answered, after a merge). The
//!    agent announces and feeds [`Input::Announced`] once the announcement is
//!    on the wire (plus a short settle); the owner multicasts TAKEN(v, seq);
//! 3. on TAKEN every yielded member gets [`Action::Release`].
//!
//! Why three agreed steps instead of two ("B acquires and A yields on one
//! HANDOVER"): agreed messages reach the members at different instants, so
//! with two steps B would answer ARP from its own delivery until A's; here B
//! answers only after A's HANDOVER, which A sends after its yield is in
//! effect, so at every instant at most one member answers ARP for a VIF
//! (within a component whose state exchange is complete). The price is one
//! agreed-message latency (about a millisecond on a LAN) in which nobody
//! answers ARP requests for the VIF; its traffic still flows to the old owner
//! (clients have it cached) and the new owner's announcement moves it.
//!
//! A hand-over always completes or rolls back, never leaves a VIF
//! unanswered: if the new owner fails or leaves in between, the next view's
//! exchange decides (STATE carries the yielding VIFs: a yielding claim counts
//! only if nobody answering claims the VIF, so the old owner keeps it and
//! reclaims; if the new owner already answers, the hand-over goes on); if
//! the new owner loses carrier or is drained in between, the VIF goes back
//! to a party of the hand-over (the old owner reclaims). Hand-overs are
//! numbered (seq), so a stale HANDOVER or TAKEN never completes a later one.
//! A VIF being handed over is not balanced, and `move` refuses it.
//!
//! ## Carrier
//! The agent feeds [`Input::Eligibility`] (the VIFs one of whose interfaces
//! has no carrier). Losing carrier is a failure: the node releases those VIFs
//! at once (no hand-over) and multicasts ELIGIBILITY; its STATE carries the
//! set too, so no member assigns them to it, and VIFs it owned go elsewhere
//! on delivery. A node whose cable is cut thus holds nothing while cut off
//! and a merge has nothing to resolve. Carrier back: eligible again after
//! `mature_after` (timer) and once a view with peers has been installed
//! since (the engine's merge: until then the node may be alone in a
//! partition of its own, where it would claim every VIF next to their
//! owners), or after [`Allocator::set_merge_wait`] without one (a cluster of
//! one); then once its ELIGIBILITY saying so is delivered (so a stale "no
//! carrier" never meets a VIF it holds); then balance brings its share
//! back, by hand-over. A VIF no eligible member may hold stays with a
//! drained owner, or has none.
//!
//! ## Wire versions (rolling upgrades)
//! See [`wire`] for the encoding rules. Each STATE carries the highest
//! version its sender speaks; once the exchange is complete the group speaks
//! the lowest of its valid members' versions ([`TableView::group_version`],
//! [`Report::GroupVersion`]). Version 1 groups (a member that predates
//! hand-overs) move break-before-make on one agreed message, ignore
//! carrier information in the table (a node without carrier just does not
//! hold the VIF; it takes it back when carrier returns), and have no
//! exchange timeout. A newer node sends what older ones skip or ignore, so
//! it never stalls them.
//!
//! ## Eviction of a silent member
//! A member whose agent is frozen (SIGSTOP, starved) stays in the engine's
//! group while its node is up, so no view removes it; its fencing lease
//! has silenced its XDP, and its VIFs would stay dark. The agents watch
//! every member's liveness probes in the agreed stream and feed
//! [`Input::Suspects`] with the members silent past the eviction deadline
//! (longer than any member's lease plus a margin, from the engine's
//! takeover floor). The lowest-index member not silent multicasts EVICT;
//! on its delivery every member treats the evicted one like a member that
//! left: it holds nothing and may hold nothing (it counts as invalid for
//! the rest of the view), and its VIFs move to others at once, with no
//! hand-over (it no longer answers). EVICT is a version-3 kind: it is sent
//! and counts only in a view whose exchange is complete and whose group
//! speaks version 3 (every member understands it; a version-2 build would
//! ignore it and keep the evicted member's VIFs assigned to it). In a view
//! whose group speaks 2 eviction is off, and [`Report::GroupVersion`] says
//! so. A member silent during an exchange is left out by the exchange
//! timeout first, which a member asks for as soon as every missing STATE
//! is a suspect's ([`Report::SilentInExchange`]), not after the full
//! `exchange_timeout`. The evicted member, when it delivers its own eviction, releases everything
//! and leaves and rejoins the group, immature ([`Report::EvictedMe`]); its
//! engine reports the gap in its own liveness evidence after the backlog
//! that holds the eviction, and the lease stays lapsed until then (and a
//! little longer, for an eviction decided just before). The next view drops the flag:
//! a member that came back is a member again.
//!
//! ## Hostile or broken members
//! - A member's first message in a view is its STATE. Garbage in its place
//!   counts as an unusable STATE: the member is treated like one with a
//!   mismatched VIF list (holds nothing, reported by everyone). If some STATE
//!   never arrives, the exchange timer (`exchange_timeout`) makes the node
//!   multicast EXCHANGE_TIMEOUT; on its delivery every member leaves the
//!   missing members out, at the same point of the agreed order.
//! - Except when a missing member spoke in the view (a message of it was
//!   delivered before its STATE, which it sent first): then this node's
//!   delivery lost that STATE and the others may have completed without
//!   it, so a verdict of its own would overlap their owners. It releases
//!   everything and rejoins instead ([`Report::ExchangeGap`]), once: the
//!   next time in a row the verdict applies.
//! - A member that completed an exchange by the timeout with members left
//!   out multicasts VERDICT naming them (version 4). Within one EVS
//!   configuration every member delivers the same STATEs before the same
//!   EXCHANGE_TIMEOUT, so every VERDICT matches the receiver's own outcome.
//!   One that does not shows a delivery that lost a STATE (seen once with
//!   Corosync, when an agent's old and new connections, the same member
//!   id, overlapped), and the two tables differ: the member whose delivery
//!   lost it may answer for VIFs their owners keep. A lost STATE only adds
//!   to a missing set, so each side can tell: a member that lacks a STATE
//!   the other has releases everything and rejoins (the views that brings
//!   give everyone a fresh exchange); one that has a STATE the other lacks
//!   answers with its own VERDICT, once per view, so that the other finds
//!   out ([`Report::ExchangeDiverged`]). Nothing else moves: no member
//!   takes a VIF until the wrong one has let go of it.
//! - Commands, updates, maturity, eligibility and hand-over messages count
//!   only from members in good standing (their VIF list is the group's).
//! - Node names are bounded to [`wire::MAX_NAME_LEN`] bytes.
//!
//! ## Interface contract for the agent
//! - Carry out actions in order. `Acquire`, `Reclaim` and `Announce` each ask
//!   for an announcement; feed `Input::Announced` with those VIFs once it is
//!   on the wire (batching is fine; an agent that feeds it at once works but
//!   loses the settle time). Without it hand-overs never finish (the old
//!   owner keeps its addresses, yielding).
//! - `Yield` must be in effect (XDP) before the next `Multicast` of the same
//!   batch goes out. `Release` may come for a yielding VIF.
//! - Feed `Input::Eligibility` at start (when not empty) and on every
//!   carrier change; after a VIF-list change feed it again (indices changed).
//! - Timers: `Exchange` and `Eligibility` are armed and fed like the others.
//! - Weights: a member of weight w is balanced to counts proportional to w.
//! - A VIF-list change on a running node releases everything (the Release
//!   actions name indices of the old list) and leaves and rejoins the group,
//!   so that the whole group redoes the state exchange. A weight or prefer
//!   change is multicast (UPDATE): weights count from the next balance
//!   round, prefer lists from the next view.
//! - After a transitional signal the node still applies the old view's
//!   messages but starts nothing new (no balance round, no MATURE, operator
//!   commands are refused until the next view).
//!
//! Timers: `ArmTimer` replaces a pending timer of the same kind; the daemon
//! feeds `Input::Timer(kind)` when it expires. Only the balance leader (the
//! lowest-index member whose VIF list is the group's) arms the balance timer.
//!
//! The simulator in [`sim`] is test support: the daemon does not use it.

mod assign;
mod engine;
pub mod sim;
pub mod wire;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::membership::{MemberId, ViewId};

pub use engine::{Allocator, DEFAULT_MERGE_WAIT};

/// Position of a VIF in the configured list (the same on every node).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct VifIndex(pub u32);

impl fmt::Display for VifIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Claim priority of a VIF in the table, ordered as in wackamole.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum Priority {
    /// Nobody holds it.
    Unclaimed = 0,
    /// Held; balance may move it.
    Claimed = 1,
    /// Assigned to a member that prefers it, not yet taken.
    Prefer = 2,
    /// Held by a member that prefers it (or pinned there by `move`).
    PreferClaimed = 3,
}

impl Priority {
    /// Wire value back to a priority.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Unclaimed),
            1 => Some(Self::Claimed),
            2 => Some(Self::Prefer),
            3 => Some(Self::PreferClaimed),
            _ => None,
        }
    }
}

/// One VIF: a set of addresses that always move together. Each address is a
/// canonical text (e.g. `192.0.2.10/24 dev eth0`); nodes compare lists exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct VifSpec {
    pub addresses: Vec<String>,
}

impl VifSpec {
    /// A VIF from its addresses, first address first.
    pub fn new<S: Into<String>>(addresses: impl IntoIterator<Item = S>) -> Self {
        Self {
            addresses: addresses.into_iter().map(Into::into).collect(),
        }
    }

    /// The VIF's name in logs: its first address.
    pub fn label(&self) -> &str {
        self.addresses.first().map(String::as_str).unwrap_or("-")
    }
}

/// Digest of an ordered VIF list (FNV-1a 64 over a length-prefixed encoding):
/// stable across builds and platforms, so nodes can compare lists cheaply.
pub fn vif_digest(vifs: &[VifSpec]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    fn eat(h: &mut u64, bytes: &[u8]) {
        for b in bytes {
            *h ^= u64::from(*b);
            *h = h.wrapping_mul(PRIME);
        }
    }
    let mut h = OFFSET;
    eat(&mut h, &(vifs.len() as u64).to_le_bytes());
    for vif in vifs {
        eat(&mut h, &(vif.addresses.len() as u64).to_le_bytes());
        for a in &vif.addresses {
            eat(&mut h, &(a.len() as u64).to_le_bytes());
            eat(&mut h, a.as_bytes());
        }
    }
    h
}

/// How many VIFs the leader moves per balance round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PerRound {
    N(u32),
    All,
}

/// Balance settings (wackamole's `Balance { AcquisitionsPerRound, interval }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceConfig {
    pub enabled: bool,
    pub acquisitions_per_round: PerRound,
    pub interval: Duration,
    /// One balance round per view instead of one every `interval`.
    pub one_shot: bool,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            acquisitions_per_round: PerRound::All,
            interval: Duration::from_secs(4),
            one_shot: false,
        }
    }
}

/// What the allocator needs from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocConfig {
    /// The ordered VIF list; must be identical on every node.
    pub vifs: Vec<VifSpec>,
    /// VIFs this node prefers to hold.
    pub prefer: Vec<VifIndex>,
    pub balance: BalanceConfig,
    /// How long a connected node waits before claiming on its own.
    pub mature_after: Duration,
    /// Relative share of VIFs this node should hold (at least 1).
    pub weight: u32,
    /// How long a view's state exchange may wait for the STATE of every
    /// member; then the group leaves the missing members out (agreed through
    /// an EXCHANGE_TIMEOUT message). None: wait for ever (version 1). An
    /// older member that is itself the slow one does not hear the timeout.
    pub exchange_timeout: Option<Duration>,
    /// At a view that only lost members of a settled view, take the
    /// departed members' VIFs the old view's agreed state gives me at once,
    /// before the exchange (see `Allocator::shrink_takeover`). Only with a
    /// fencing lease: a node that applies such a view late (stalled past
    /// an exchange timeout that left it out) is silent in XDP by then.
    pub takeover_at_view: bool,
}

impl AllocConfig {
    /// A configuration with defaults (wackamole: mature after 5 s, balance all
    /// every 4 s) for the given VIFs.
    pub fn new(vifs: Vec<VifSpec>) -> Self {
        Self {
            vifs,
            prefer: Vec::new(),
            balance: BalanceConfig::default(),
            mature_after: Duration::from_secs(5),
            weight: 1,
            exchange_timeout: Some(Duration::from_secs(5)),
            takeover_at_view: false,
        }
    }
}

/// Who this node is, for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Human node name, used by `move VIF NODE` and `drain NODE`.
    pub name: String,
}

/// The timers the allocator asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    Mature,
    Balance,
    /// Bounds a view's state exchange.
    Exchange,
    /// Carrier came back: eligible again when it fires (`mature_after`).
    Eligibility,
}

/// Operator commands from the local control socket. They are multicast and
/// applied by every member on delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Move one VIF to the named node (pins it there).
    Move { vif: VifIndex, node: String },
    /// The named node gives every VIF away and claims nothing.
    Drain { node: String },
    /// The named node takes part again (balance brings VIFs back).
    Undrain { node: String },
    /// Run one balance round now.
    Balance,
}

/// Everything that can happen to the allocator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A new regular view.
    View {
        id: ViewId,
        members: Vec<MemberId>,
        my_index: usize,
    },
    /// The current view is ending.
    Transitional,
    /// An agreed message of the current view.
    Message {
        sender: MemberId,
        payload: Vec<u8>,
    },
    /// A timer armed with [`Action::ArmTimer`] expired.
    Timer(TimerKind),
    Operator(OperatorCommand),
    ConfigChanged(AllocConfig),
    /// The engine is gone: hold nothing until a new view, immature (but
    /// mature again at an exchange with peers if mature now).
    EngineLost,
    /// Operator `fail`: release everything and leave the group.
    Fail,
    /// Operator `recover`: rejoin, immature.
    Recover,
    /// The announcement (gratuitous ARP) the agent sent for these VIFs after
    /// an [`Action::Acquire`], [`Action::Reclaim`] or [`Action::Announce`]
    /// is on the wire, plus a short settle time. Feed it once per such
    /// action (one input may name many VIFs). Stale or unneeded ones are
    /// ignored.
    Announced(Vec<VifIndex>),
    /// The VIFs this node may not hold now: a VIF is ineligible when one of
    /// the interfaces of its addresses has no carrier. Feed the complete set
    /// at start (if not empty) and whenever it changes.
    Eligibility {
        ineligible: BTreeSet<VifIndex>,
    },
    /// Members of the current view whose liveness probes the group has not
    /// delivered for the eviction deadline while mine were (the agent
    /// watches them). The lowest-index member that is not silent multicasts
    /// EVICT for them; see the module docs on eviction.
    Suspects(Vec<MemberId>),
    /// Members the LAN detector condemned (lost by a majority of the view,
    /// silenced by their own fence first): take the VIFs of the first one
    /// that the view and the EVICT settling it would both give me, and
    /// multicast EVICT for each (see `detect` and `on_condemned`).
    Condemned(Vec<MemberId>),
    /// Members the LAN detector lost (silent past its deadline; a majority
    /// may condemn them later). Any loss but that of the one condemned
    /// member ends the provisional takeover: VIFs taken before the group
    /// agreed are let go (a second failure: the view that settles both may
    /// give them to another survivor), and no VIF is taken provisionally
    /// in this view any more.
    Lost(Vec<MemberId>),
}

/// What the allocator asks the daemon to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Own the VIF: plumb its addresses, own it in XDP (answer ARP, accept
    /// its traffic), announce it (gratuitous ARP); then feed
    /// [`Input::Announced`] for it.
    Acquire(VifIndex),
    /// Stop owning the VIF: XDP stops answering and accepting, addresses
    /// removed. Comes for an owned or a yielding VIF.
    Release(VifIndex),
    /// Hand-over step 1 at the old owner: stop answering ARP for the VIF in
    /// XDP at once (the "yielding" state), but keep its addresses and keep
    /// accepting its traffic. It must be in effect before the next
    /// `Multicast` of the same batch is sent (that message tells the group).
    /// Nothing to feed back. Ends with `Release` or `Reclaim`.
    Yield(VifIndex),
    /// A yielding VIF is mine again (a hand-over rolled back or a merge gave
    /// it back): answer ARP for it again in XDP, announce it, then feed
    /// [`Input::Announced`].
    Reclaim(VifIndex),
    /// An owned, answering VIF: announce it again (gratuitous ARP: other
    /// nodes that answered for it have stopped), then feed
    /// [`Input::Announced`].
    Announce(VifIndex),
    /// Send an agreed message to the group (delivered to me too).
    Multicast(Vec<u8>),
    /// Arm (or re-arm, replacing the pending one) a timer.
    ArmTimer {
        kind: TimerKind,
        after: Duration,
    },
    CancelTimer(TimerKind),
    Leave,
    Join,
    Report(Report),
}

/// Phase of this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    /// No view (start, engine lost).
    Disconnected,
    /// In a view, exchange done, nobody mature: claiming nothing.
    Boot,
    /// Collecting the STATE of every member.
    Gather,
    /// Table agreed.
    Run,
    /// Leader: a balance round is in flight.
    Balance,
    /// My VIF list differs from the group's: I hold nothing.
    Excluded,
    /// Operator `fail`: out of the group.
    Failed,
}

/// One VIF moved by balance, drain or an operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MoveReport {
    pub vif: VifIndex,
    pub from: Option<String>,
    pub to: String,
}

/// Things worth logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    ViewComplete {
        view: ViewId,
        members: usize,
        mature: bool,
        held: usize,
    },
    /// The view only lost members of my settled view: I took the departed
    /// members' VIFs that its agreed state gives me, before the exchange.
    TookOver {
        view: ViewId,
        vifs: usize,
    },
    /// The LAN detector condemned a member of my view; `took`: its VIFs I
    /// took before the group agreed.
    Condemned {
        view: ViewId,
        member: MemberId,
        took: usize,
    },
    /// A member's VIF list differs from the reference list of the view.
    ConfigMismatch {
        view: ViewId,
        member: MemberId,
        node: String,
        detail: String,
    },
    Matured,
    Moves {
        reason: &'static str,
        moves: Vec<MoveReport>,
    },
    Drained {
        node: String,
        drained: bool,
    },
    /// An operator command that cannot be applied.
    Rejected {
        command: String,
        reason: String,
    },
    /// A message that could not be used.
    BadMessage {
        sender: MemberId,
        error: String,
    },
    /// A member of the view speaks an older wire version: the group speaks
    /// `version` in this view (e.g. planned moves break before they make).
    GroupVersion {
        view: ViewId,
        version: u8,
    },
    /// An agreed EVICT removed a silent member from this view's allocation.
    Evicted {
        view: ViewId,
        member: MemberId,
        node: String,
    },
    /// An agreed EVICT named me: I released everything and rejoin.
    EvictedMe {
        view: ViewId,
    },
    /// `members`, whose STATEs are missing, have been silent in the group
    /// past the eviction deadline: I asked for the exchange timeout now.
    SilentInExchange {
        view: ViewId,
        members: Vec<MemberId>,
    },
    /// The exchange timed out without the STATEs of `members`, which spoke
    /// in the view: my delivery lost them. I released everything and rejoin.
    ExchangeGap {
        view: ViewId,
        members: Vec<MemberId>,
    },
    /// `member`'s VERDICT for this view left out the members at `theirs`
    /// (view indices), this node's exchange left out `mine`: a delivery lost
    /// a STATE. `rejoining`: mine did (it has a STATE I lack), so I released
    /// everything and rejoin; else its did, and I sent my VERDICT to tell it.
    ExchangeDiverged {
        view: ViewId,
        member: MemberId,
        node: String,
        mine: Vec<u32>,
        theirs: Vec<u32>,
        rejoining: bool,
    },
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::ViewComplete {
                view,
                members,
                mature,
                held,
            } => write!(
                f,
                "view {view} complete: {members} members, {}, I hold {held} VIFs",
                if *mature { "mature" } else { "immature" }
            ),
            Report::TookOver { view, vifs } => write!(
                f,
                "view {view} only lost members: took {vifs} of their VIFs at once (the exchange confirms)"
            ),
            Report::Condemned { view, member, took } => write!(
                f,
                "view {view}: member {member} condemned by the LAN detector: took {took} of its VIFs before the group agrees"
            ),
            Report::ConfigMismatch {
                view,
                member,
                node,
                detail,
            } => write!(
                f,
                "configuration error in view {view}: {} {detail}; it takes no part in allocation",
                who(node, member)
            ),
            Report::Matured => f.write_str("mature"),
            Report::Moves { reason, moves } => {
                write!(f, "{reason}: {} moves", moves.len())?;
                for m in moves {
                    write!(
                        f,
                        " {}:{}->{}",
                        m.vif,
                        m.from.as_deref().unwrap_or("-"),
                        m.to
                    )?;
                }
                Ok(())
            }
            Report::Drained { node, drained } => {
                write!(
                    f,
                    "node {node} {}",
                    if *drained { "drained" } else { "undrained" }
                )
            }
            Report::Rejected { command, reason } => write!(f, "{command} rejected: {reason}"),
            Report::BadMessage { sender, error } => {
                write!(f, "ignored a message from {sender}: {error}")
            }
            Report::GroupVersion { view, version } => {
                write!(
                    f,
                    "view {view}: a member speaks wire version {version} only; the group speaks {version} (this node speaks {})",
                    wire::VERSION
                )?;
                if *version < wire::EVICT_VERSION {
                    write!(
                        f,
                        "; eviction of silent members is off in this view (needs version {})",
                        wire::EVICT_VERSION
                    )?;
                }
                Ok(())
            }
            Report::Evicted { view, member, node } => write!(
                f,
                "view {view}: {} evicted: silent in the group past the deadline; its VIFs move on",
                who(node, member)
            ),
            Report::EvictedMe { view } => write!(
                f,
                "view {view}: the group evicted this node (it was silent past the deadline): released everything, rejoining"
            ),
            Report::SilentInExchange { view, members } => {
                write!(f, "view {view}: no STATE yet from")?;
                write_members(f, members)?;
                f.write_str(
                    ", silent in the group past the eviction deadline: asking the group to go on without them",
                )
            }
            Report::ExchangeGap { view, members } => {
                write!(f, "view {view}: the state exchange timed out without the STATE of")?;
                write_members(f, members)?;
                f.write_str(
                    ", which spoke in this view after sending it: this node's delivery lost it; released everything, rejoining",
                )
            }
            Report::ExchangeDiverged {
                view,
                member,
                node,
                mine,
                theirs,
                rejoining,
            } => {
                write!(
                    f,
                    "view {view}: {} completed the state exchange without the STATEs of members {theirs:?}, this node without {mine:?}: ",
                    who(node, member)
                )?;
                f.write_str(if *rejoining {
                    "this node's delivery lost one: released everything, rejoining"
                } else {
                    "its delivery lost one: sent this node's verdict to tell it"
                })
            }
        }
    }
}

/// " ID ID ...": member ids after a report's text.
fn write_members(f: &mut fmt::Formatter<'_>, members: &[MemberId]) -> fmt::Result {
    members.iter().try_for_each(|m| write!(f, " {m}"))
}

/// "node NAME (member id)", or "member ID" before its STATE named it.
pub(crate) fn who(node: &str, member: &MemberId) -> String {
    if node.is_empty() {
        format!("member {member}")
    } else {
        format!("node {node} ({member})")
    }
}

/// The owner of a VIF in a [`TableView`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OwnerView {
    pub member: MemberId,
    pub node: String,
}

/// One row of the VIF table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VifRow {
    pub vif: VifIndex,
    pub label: String,
    pub owner: Option<OwnerView>,
    pub priority: Priority,
}

/// One member of the current view.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberRow {
    pub member: MemberId,
    /// Empty until its STATE arrived.
    pub node: String,
    pub count: u32,
    pub mature: bool,
    pub weight: u32,
    pub drained: bool,
    /// Its VIF list matches the group's (known once the exchange is complete).
    pub config_ok: bool,
    pub state_received: bool,
    /// The highest wire version it speaks (known once its STATE arrived).
    pub max_version: u8,
    /// VIFs it may not hold now (no carrier).
    pub ineligible: Vec<VifIndex>,
}

/// A hand-over in progress (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HandoverRow {
    pub vif: VifIndex,
    pub seq: u32,
    /// The new owner (the table's owner).
    pub to: Option<String>,
    /// Members that must still stop answering ARP (HANDOVER not delivered).
    pub pending: Vec<String>,
    /// Members that stopped answering and wait for TAKEN to release.
    pub yielded: Vec<String>,
}

/// A snapshot of the allocator for `ctl status` and tests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableView {
    pub node: String,
    pub phase: Phase,
    pub view: Option<ViewId>,
    pub my_index: Option<usize>,
    pub mature: bool,
    pub drained: bool,
    pub vifs: Vec<VifRow>,
    pub members: Vec<MemberRow>,
    pub config_errors: Vec<String>,
    /// The wire version the group speaks in this view (once complete).
    pub group_version: Option<u8>,
    pub handovers: Vec<HandoverRow>,
}

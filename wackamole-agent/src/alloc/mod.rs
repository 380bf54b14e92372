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
//! - `move VIF NODE` is one agreed message: on delivery the new owner acquires
//!   and the old owner releases. The moved VIF is pinned (PREFER_CLAIMED):
//!   balance never moves it back, and it keeps that priority across view
//!   changes while its owner stays up.
//! - `drain NODE` is one agreed message: every VIF of that node moves to the
//!   least-loaded other members and the node claims nothing until `undrain
//!   NODE`. The drained flag survives view changes (the node carries it in its
//!   STATE) and ends with `undrain`, `recover` or a restart. If every valid
//!   member is drained, drain is set aside so that no VIF is left unserved.
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

use std::fmt;
use std::time::Duration;

use crate::membership::{MemberId, ViewId};

pub use engine::Allocator;

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
    /// The engine is gone: hold nothing until a new view.
    EngineLost,
    /// Operator `fail`: release everything and leave the group.
    Fail,
    /// Operator `recover`: rejoin, immature.
    Recover,
}

/// What the allocator asks the daemon to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Acquire(VifIndex),
    Release(VifIndex),
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
            Report::ConfigMismatch {
                view,
                member,
                node,
                detail,
            } => write!(
                f,
                "configuration error in view {view}: node {node} ({member}) {detail}; it takes no part in allocation"
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
        }
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
}

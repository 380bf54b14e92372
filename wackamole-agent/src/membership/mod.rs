//! Membership: one small interface over group-communication engines with
//! Extended Virtual Synchrony (Corosync CPG, Spread 4).
//!
//! An engine runs as its own tokio task and talks to the agent through a
//! [`MembershipHandle`]: a stream of [`MembershipEvent`]s in, [`Outgoing`]
//! requests out. The allocation state machine never knows which engine runs.
//!
//! Guarantees every engine must give (the EVS model the allocator relies on):
//! - every member of a view delivers the same views, with members in the same
//!   order, and the same agreed messages in the same order;
//! - messages sent in a view are delivered in that view, before the next view,
//!   or not at all;
//! - a transitional signal precedes a new regular view whenever the engine
//!   reports one.

pub mod corosync;
pub mod spread;

use std::fmt;
use std::time::Duration;

/// Identifies one agent process in the group. Engine-specific but unique per
/// process: a restarted agent is a new member. Totally ordered so that every
/// engine can sort members the same way on every node.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct MemberId(pub String);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies a regular view; equal on every member of that view and different
/// for every new view (Corosync: ring id; Spread: group id).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ViewId(pub u128);

impl fmt::Display for ViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A regular view: who is in the group, in the same order on every member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub id: ViewId,
    pub members: Vec<MemberId>,
    /// My position in `members`.
    pub my_index: usize,
}

/// What an engine reports to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A new regular view.
    View(View),
    /// The current view is ending; a new regular view follows.
    Transitional,
    /// An agreed (totally ordered) message from a member of the current view.
    Message { sender: MemberId, payload: Vec<u8> },
    /// Members of the current view that left the group while their node
    /// stays in the engine's membership: their agent process died or left
    /// (Corosync: CPG reason PROCDOWN or LEAVE, no node-down; Spread: a
    /// leave or disconnect, its daemon alive). Reported just before the
    /// view that drops them. Unlike a node-down (reported only after the
    /// engine's failure detection, which outlasts any lease) this comes at
    /// once: their XDP may still answer ARP for what they held until their
    /// fencing lease runs out, so their successors wait for it.
    Departed { members: Vec<MemberId> },
    /// A member's liveness probe (its engine's watchdog probe, mine
    /// included) was delivered in the group's agreed order, read at `at`.
    /// Peers watch each other's with it and evict a member silent past a
    /// deadline while their own probes keep coming (issue 11). Both engines
    /// multicast their probes to the group (Spread: to the group and the
    /// private group in one message). A peer's may be reported late, just
    /// before the engine's next event (Corosync does, to wake the agent
    /// once per period): peers' probes only count when mine comes.
    Heard {
        member: MemberId,
        at: tokio::time::Instant,
    },
    /// This process was frozen or starved: no liveness evidence of its own
    /// for `gap`, longer than the self-eviction gap (see [`EvidenceGap`]).
    /// Everything the engine read before the evidence that ended the gap
    /// comes before this event (an eviction of this node, above all); the
    /// evidence itself is published after it. The agent revives its lease
    /// only once a peer's eviction decided before that evidence would have
    /// been delivered, and judges nobody's silence over its own gap.
    Resumed { gap: Duration },
    /// The engine is unreachable or frozen (dispatch error, lost connection,
    /// watchdog expired). The agent must stop claiming; the engine reconnects
    /// by itself and reports a fresh view when it is back.
    Lost { reason: String },
}

/// What the agent asks an engine to do.
#[derive(Debug)]
pub enum Outgoing {
    /// Multicast an agreed message to the group (delivered to me as well).
    Send(Vec<u8>),
    /// Leave the group (operator `fail`); events stop until [`Outgoing::Join`].
    Leave,
    /// Join the group again (operator `recover`).
    Join,
    /// Leave the group and end the engine task.
    Shutdown,
}

/// Evidence that the engine is alive and in its ring, for the fencing lease.
///
/// Engines publish one each time their own watchdog probe is delivered back
/// to them (Corosync also while its ring re-forms, as long as corosync keeps
/// answering local IPC). The agent renews its XDP lease only from these (its
/// lease keeper off its loop, the loop itself to revive a lapse), so a
/// frozen agent (no thread runs) and a frozen or dead engine (no evidence)
/// both go silent in XDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alive {
    /// When the evidence was observed (the engine's clock, tokio's).
    pub at: tokio::time::Instant,
    /// The earliest a peer can take this node's VIFs over after `at`, should
    /// this node fall silent then (the engine's failure detection: Corosync
    /// token + consensus). The lease must lapse well before.
    pub takeover_floor: Duration,
    /// Whether this evidence may renew a lease that has lapsed: only our own
    /// probe, sent after the lapse and delivered back in agreed order (the
    /// views before it are delivered first). Evidence that the engine merely
    /// answers (IPC while its ring re-forms) only extends a running lease.
    pub revives: bool,
}

impl Alive {
    /// Publishes `new` unless the evidence there is fresher: the agent reads
    /// only the latest value, and a probe that took long to come back
    /// (counted from its sending) must not hide fresher evidence published
    /// just before it (corosync answering while the ring is slow), or the
    /// lease lapses although the engine was heard.
    pub fn publish(tx: &tokio::sync::watch::Sender<Option<Alive>>, new: Alive) {
        tx.send_if_modified(|cur| match cur {
            Some(old) if old.at > new.at || (old.at == new.at && old.revives) => false,
            _ => {
                *cur = Some(new);
                true
            }
        });
    }
}

/// The agent's end of a running engine.
pub struct MembershipHandle {
    /// Which engine and endpoint, for logs and `ctl status`.
    pub description: String,
    pub events: tokio::sync::mpsc::Receiver<MembershipEvent>,
    pub outgoing: tokio::sync::mpsc::Sender<Outgoing>,
    /// The latest liveness evidence (`None` until the first; never updated
    /// by an engine without a watchdog).
    pub alive: tokio::sync::watch::Receiver<Option<Alive>>,
}

/// Gaps in an engine's own liveness evidence (both engines). A gap longer
/// than `limit` ([`lease::self_evict_gap`]) means this process was frozen or
/// starved long enough for the peers to evict it: evidence after it must
/// not renew the lease before the agent has read the eviction (the engine
/// reports [`MembershipEvent::Resumed`] before that evidence).
///
/// [`lease::self_evict_gap`]: crate::daemon::lease::self_evict_gap
#[derive(Debug)]
pub struct EvidenceGap {
    limit: Duration,
    last: Option<tokio::time::Instant>,
}

impl EvidenceGap {
    /// No evidence yet (a new session).
    pub fn new(limit: Duration) -> Self {
        EvidenceGap { limit, last: None }
    }

    /// Evidence at `at` that needs no check (published by another thread
    /// of the engine meanwhile).
    pub fn note(&mut self, at: tokio::time::Instant) {
        self.last = Some(self.last.map_or(at, |prev| prev.max(at)));
    }

    /// Evidence at `at`: Some(gap) when the evidence before it is older
    /// than the limit. Older evidence than the last is never a gap.
    pub fn at(&mut self, at: tokio::time::Instant) -> Option<Duration> {
        let gap = self.last.map(|prev| at.saturating_duration_since(prev));
        self.note(at);
        gap.filter(|g| *g > self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn older_evidence_never_hides_fresher() {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let t0 = Instant::now();
        let ev = |at, revives| Alive {
            at,
            takeover_floor: Duration::from_millis(110),
            revives,
        };
        // Corosync answered just now; a probe sent 80 ms ago comes back.
        Alive::publish(&tx, ev(t0 + Duration::from_millis(80), false));
        Alive::publish(&tx, ev(t0, true));
        assert_eq!(
            *rx.borrow(),
            Some(ev(t0 + Duration::from_millis(80), false))
        );
        // A fresher probe replaces it; at the same instant a probe wins.
        let t1 = t0 + Duration::from_millis(100);
        Alive::publish(&tx, ev(t1, true));
        Alive::publish(&tx, ev(t1, false));
        assert_eq!(*rx.borrow(), Some(ev(t1, true)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_evidence_gap_past_the_limit_is_reported() {
        let t0 = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        let mut g = EvidenceGap::new(ms(375));
        assert_eq!(g.at(t0), None, "first evidence");
        assert_eq!(g.at(t0 + ms(20)), None);
        // A probe sent before a freeze, read after it: older, no gap.
        assert_eq!(g.at(t0 + ms(10)), None);
        assert_eq!(g.at(t0 + ms(395)), None, "exactly the limit");
        // Frozen 2 s: the first fresh evidence after the thaw.
        assert_eq!(g.at(t0 + ms(2395)), Some(ms(2000)));
        assert_eq!(g.at(t0 + ms(2415)), None);
        // Evidence noted meanwhile (vouched for by another thread) closes
        // the gap it falls in.
        g.note(t0 + ms(2700));
        assert_eq!(g.at(t0 + ms(3000)), None);
        assert_eq!(g.at(t0 + ms(3400)), Some(ms(400)));
    }
}

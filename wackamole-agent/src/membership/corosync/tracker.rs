//! The pure part of the Corosync engine: wire tags, member and view ids, the
//! view state machine and the watchdog bookkeeping. No I/O, no clock (times
//! are passed in), so it is tested exhaustively.
//!
//! How CPG callbacks become [`MembershipEvent`]s (Corosync 3 `exec/cpg.c`):
//! after every totem ring change, corosync's `cpg_sync_activate` sends the
//! group's `confchg` callbacks (members lost with reason `NODEDOWN`, members
//! gained with reason `NODEUP`) and *then* a `totem_confchg` with the new ring
//! id. A process joining or leaving without a ring change (reasons `JOIN`,
//! `LEAVE`, `PROCDOWN`) only yields a `confchg`. So:
//! - a `confchg` caused by a ring change emits [`MembershipEvent::Transitional`]
//!   at once and the view waits for the `totem_confchg` that carries its ring id;
//! - a `totem_confchg` emits the view (also when the group did not change: a
//!   ring change ends the old EVS configuration);
//! - a process-level `confchg` emits `Transitional` and the view at once.
//!
//! Every view is preceded by a `Transitional`. The view id packs the ring
//! (seq in the high 64 bits, representative nodeid in the next 32) with a
//! 32-bit hash of the member list, because a process joining or leaving keeps
//! the ring id. Consecutive views always differ; a view can repeat an *earlier*
//! id only if the same processes re-form the same group within one ring.

use crate::membership::{MemberId, MembershipEvent, View, ViewId};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// First byte of an application payload on the wire.
pub const TAG_APP: u8 = b'A';
/// First byte of a watchdog probe on the wire (followed by a u64 sequence, big endian).
pub const TAG_WATCHDOG: u8 = b'W';

/// Wraps an application payload for `cpg_mcast_joined`.
pub fn encode_app(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(TAG_APP);
    v.extend_from_slice(payload);
    v
}

/// A watchdog probe carrying `seq`.
pub fn encode_watchdog(seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(TAG_WATCHDOG);
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

/// A delivered CPG message, tag stripped.
#[derive(Debug, PartialEq, Eq)]
pub enum Wire<'a> {
    App(&'a [u8]),
    Watchdog(u64),
}

/// Decodes a delivered message; `None` for anything we did not send (foreign
/// or corrupt traffic on the group is ignored, never delivered).
pub fn decode(msg: &[u8]) -> Option<Wire<'_>> {
    let (&tag, rest) = msg.split_first()?;
    match tag {
        TAG_APP => Some(Wire::App(rest)),
        TAG_WATCHDOG => {
            let bytes: [u8; 8] = rest.try_into().ok()?;
            Some(Wire::Watchdog(u64::from_be_bytes(bytes)))
        }
        _ => None,
    }
}

/// One CPG process: a restarted agent has a new pid and is a new member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proc {
    pub nodeid: u32,
    pub pid: u32,
}

impl Proc {
    /// `n<nodeid>p<pid>`, zero-padded so that string order equals the
    /// numeric (nodeid, pid) order in which members are delivered.
    pub fn member_id(&self) -> MemberId {
        MemberId(format!("n{:010}p{:010}", self.nodeid, self.pid))
    }
}

/// A totem ring id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ring {
    pub nodeid: u32,
    pub seq: u64,
}

/// The view id of `members` (sorted) in `ring`.
pub fn view_id(ring: Ring, members: &[Proc]) -> ViewId {
    // FNV-1a over the member list: stable across builds and machines.
    let mut h: u32 = 0x811c_9dc5;
    for m in members {
        for b in m
            .nodeid
            .to_be_bytes()
            .iter()
            .chain(m.pid.to_be_bytes().iter())
        {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    ViewId((u128::from(ring.seq) << 64) | (u128::from(ring.nodeid) << 32) | u128::from(h))
}

/// Why the tracker delivers nothing to the agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mute {
    /// The watchdog tripped; cleared when our own probe comes back.
    frozen: bool,
    /// `require_quorum` and the partition is not quorate.
    inquorate: bool,
}

impl Mute {
    fn any(&self) -> bool {
        self.frozen || self.inquorate
    }
}

/// Turns CPG callbacks into agent events for one connection.
#[derive(Debug)]
pub struct Tracker {
    me: Proc,
    ring: Ring,
    /// Group members from the last confchg, sorted.
    members: Vec<Proc>,
    /// A ring change confchg was seen; the view waits for its totem_confchg.
    awaiting_totem: bool,
    /// Transitional already emitted for the next view.
    transitional_sent: bool,
    /// The view the agent currently holds (None: not a member, or muted).
    current: Option<View>,
    mute: Mute,
    /// `require_quorum`: the ring of the last quorum notification. A new
    /// ring's view waits for the notification of that ring: the CPG and
    /// quorum callbacks come on two connections, and a one-node ring's view
    /// came first by up to 62 ms (a partition without quorum then claimed
    /// every VIF until its `Lost`: two answerers).
    quorum_ring: Option<Ring>,
    /// The view waits for its ring's quorum notification; messages
    /// delivered meanwhile wait in `held` to follow it.
    awaiting_quorum: bool,
    held: Vec<MembershipEvent>,
}

/// At most this many messages wait for a quorum notification (it comes
/// within milliseconds; beyond this they are dropped with the view).
const MAX_HELD: usize = 4096;

impl Tracker {
    /// `ring` is the ring current when the connection was made (from the
    /// quorum service's nodelist notification).
    pub fn new(me: Proc, ring: Ring) -> Self {
        Tracker {
            me,
            ring,
            members: Vec::new(),
            awaiting_totem: false,
            transitional_sent: false,
            current: None,
            mute: Mute::default(),
            quorum_ring: None,
            awaiting_quorum: false,
            held: Vec::new(),
        }
    }

    /// `require_quorum`: from now on a new ring's view waits for that ring's
    /// quorum notification. The quorum state at connect time is the
    /// connection's ring's.
    pub fn track_quorum(&mut self) {
        self.quorum_ring = Some(self.ring);
    }

    pub fn me(&self) -> Proc {
        self.me
    }

    /// The view the agent holds, if any.
    pub fn current(&self) -> Option<&View> {
        self.current.as_ref()
    }

    /// A CPG `confchg`: the group's full member list, and whether any joined or
    /// left entry has reason NODEUP/NODEDOWN (a ring change is under way).
    pub fn confchg(&mut self, mut members: Vec<Proc>, ring_change: bool) -> Vec<MembershipEvent> {
        members.sort_unstable();
        members.dedup();
        self.members = members;
        let mut out = Vec::new();
        if ring_change {
            self.awaiting_totem = true;
            self.transition(&mut out);
        } else if !self.awaiting_totem {
            self.transition(&mut out);
            self.emit_view(&mut out);
        }
        out
    }

    /// Members that left without a node-down (CPG reason PROCDOWN or LEAVE),
    /// reported before the confchg's view: [`MembershipEvent::Departed`]
    /// for those of the view the agent holds (not me).
    pub fn departed(&self, left: &[Proc]) -> Vec<MembershipEvent> {
        let Some(view) = self.current.as_ref().filter(|_| !self.mute.any()) else {
            return Vec::new();
        };
        let members: Vec<_> = left
            .iter()
            .filter(|p| **p != self.me)
            .map(Proc::member_id)
            .filter(|id| view.members.contains(id))
            .collect();
        if members.is_empty() {
            return Vec::new();
        }
        vec![MembershipEvent::Departed { members }]
    }

    /// A CPG `totem_confchg`: the ring changed (always after its confchgs).
    pub fn totem(&mut self, ring: Ring) -> Vec<MembershipEvent> {
        self.ring = ring;
        self.awaiting_totem = false;
        let mut out = Vec::new();
        self.transition(&mut out);
        self.emit_view(&mut out);
        out
    }

    /// A delivered message. Returns the events for the agent and, if it is one
    /// of our own watchdog probes, its sequence.
    pub fn deliver(&mut self, sender: Proc, msg: &[u8]) -> (Vec<MembershipEvent>, Option<u64>) {
        match decode(msg) {
            Some(Wire::Watchdog(seq)) if sender == self.me => (Vec::new(), Some(seq)),
            Some(Wire::App(payload)) if self.awaiting_quorum && !self.mute.any() => {
                if self.held.len() < MAX_HELD {
                    self.held.push(MembershipEvent::Message {
                        sender: sender.member_id(),
                        payload: payload.to_vec(),
                    });
                }
                (Vec::new(), None)
            }
            Some(Wire::App(payload)) if self.current.is_some() && !self.mute.any() => (
                vec![MembershipEvent::Message {
                    sender: sender.member_id(),
                    payload: payload.to_vec(),
                }],
                None,
            ),
            _ => (Vec::new(), None),
        }
    }

    /// The member whose watchdog probe `msg` is, if it is one from a member
    /// of the view the agent holds (me included): every member sees every
    /// probe in the agreed order, which lets peers watch each other's
    /// liveness ([`MembershipEvent::Heard`]).
    pub fn prober(&self, sender: Proc, msg: &[u8]) -> Option<crate::membership::MemberId> {
        // Not once the view is ending: its silence judges nothing.
        let view = self
            .current
            .as_ref()
            .filter(|_| !self.mute.any() && !self.transitional_sent)?;
        let Some(Wire::Watchdog(_)) = decode(msg) else {
            return None;
        };
        let id = sender.member_id();
        view.members.contains(&id).then_some(id)
    }

    /// The watchdog tripped: the agent has been told `Lost`; deliver nothing
    /// until [`Tracker::thawed`].
    pub fn frozen(&mut self) {
        self.mute.frozen = true;
        self.current = None;
    }

    /// Whether the watchdog state is frozen.
    pub fn is_frozen(&self) -> bool {
        self.mute.frozen
    }

    /// Our own probe came back while frozen: the caller replaces the
    /// connection (and with it this tracker). Returns false if not frozen.
    pub fn thawed(&mut self) -> bool {
        std::mem::take(&mut self.mute.frozen)
    }

    /// Quorum changed (only with `require_quorum`). Losing quorum mutes (the
    /// caller reports `Lost`); regaining it re-delivers the current view.
    /// A view waiting for this notification's ring follows it if quorate.
    pub fn quorate(&mut self, quorate: bool, ring: Ring) -> Vec<MembershipEvent> {
        if let Some(q) = self.quorum_ring.as_mut() {
            *q = ring;
        }
        let mut out = Vec::new();
        if !quorate {
            self.mute.inquorate = true;
            self.current = None;
            self.awaiting_quorum = false;
            self.held.clear();
        } else if self.mute.inquorate {
            self.mute.inquorate = false;
            if !self.awaiting_totem {
                self.transition(&mut out);
                self.emit_view(&mut out);
            }
        } else if self.awaiting_quorum && !self.awaiting_totem {
            self.emit_view(&mut out);
        }
        out
    }

    fn transition(&mut self, out: &mut Vec<MembershipEvent>) {
        // Nothing for a process outside the group (it left, or joins later).
        if !self.transitional_sent && !self.mute.any() && self.members.contains(&self.me) {
            self.transitional_sent = true;
            out.push(MembershipEvent::Transitional);
        }
    }

    fn emit_view(&mut self, out: &mut Vec<MembershipEvent>) {
        let Some(my_index) = self.members.iter().position(|m| *m == self.me) else {
            // Not (or no longer) in the group: the agent holds no view.
            self.current = None;
            return;
        };
        if self.mute.any() {
            return;
        }
        if self.quorum_ring.is_some_and(|q| q != self.ring) {
            self.awaiting_quorum = true;
            return;
        }
        self.awaiting_quorum = false;
        let view = View {
            id: view_id(self.ring, &self.members),
            members: self.members.iter().map(Proc::member_id).collect(),
            my_index,
        };
        self.transitional_sent = false;
        self.current = Some(view.clone());
        out.push(MembershipEvent::View(view));
        out.append(&mut self.held);
    }
}

/// corosync's token with 3 nodes (3000 + 650 per node above two), for when
/// the running values cannot be read.
pub const DEFAULT_TOKEN_MS: u32 = 3650;
/// corosync's default consensus (1.2 x token).
pub const DEFAULT_CONSENSUS_MS: u32 = 4380;

/// The freeze deadline for a token of `token_ms`: `max(200 ms, token / 2)`.
pub fn auto_freeze_deadline(token_ms: u32) -> Duration {
    Duration::from_millis(u64::from(token_ms / 2).max(200))
}

/// The earliest a peer can take over after this node falls silent: token
/// loss is declared after `token`, and a new ring (the view that moves VIFs)
/// is not installed before the consensus timeout has run too. Views were seen
/// ~115 ms after a crash with the LAN-fast profile (floor 110 ms).
pub fn takeover_floor(token_ms: u32, consensus_ms: u32) -> Duration {
    Duration::from_millis(u64::from(token_ms) + u64::from(consensus_ms))
}

/// The probe period for a takeover floor and a freeze deadline: at most
/// the configured one, and at least three probes per automatic lease (half
/// the floor), so the lease survives one lost or late probe. Not configured
/// ("auto"): also eight per freeze deadline, so a frozen corosync is still
/// noticed within about the deadline. Not below 5 ms.
///
/// The LAN-fast profile (deadline 200 ms, floor 110 ms) probes every
/// 18 ms either way; corosync's defaults (1825 ms, 8030 ms) every 228 ms
/// instead of a fixed 20 ms: each probe is an agreed multicast that every
/// member's agent and corosync handle, most of an idle agent's CPU.
pub fn probe_interval(
    configured: Option<Duration>,
    floor: Duration,
    deadline: Duration,
) -> Duration {
    let lease_bound = (floor / 6).max(Duration::from_millis(5));
    match configured {
        Some(c) => c.min(lease_bound),
        None => (deadline / 8)
            .max(Duration::from_millis(5))
            .min(lease_bound),
    }
}

/// When to send the next probe, `now` being `wall_ns` on the wall clock:
/// the next multiple of `interval` on the wall clock, never more than one
/// `interval` away (a late tick brings the next one closer, never later).
/// Every node's agent probes at the same instants (their clocks agree to
/// within NTP's error), so corosync delivers the group's probes of a period
/// together: each agent's engine wakes about once per period for them
/// instead of once per member's probe (most of an idle agent's CPU is
/// wakeups). The period, and with it the lease's three probes, is unchanged.
pub fn next_probe_at<T: std::ops::Add<Duration, Output = T>>(
    now: T,
    wall_ns: u128,
    interval: Duration,
) -> T {
    let period = interval.as_nanos().max(1);
    let wait = period - wall_ns % period;
    now + Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
}

/// Whether corosync answering local IPC counts as liveness evidence now: only
/// while our probes stall (`overdue`: age of the oldest in flight) for a ring
/// re-formation, no agreed message moves anywhere, so without it every
/// survivor's lease would lapse on every view change. Past the stall limit
/// the ring is stuck and the watchdog reports `Lost` anyway.
///
/// A probe overdue by half a period already counts: the check runs once per
/// period, and the lease is three periods, so waiting for two periods (as
/// before) let every survivor's lease lapse for a few ms at every ring
/// re-formation (seen in the bench as fenced drops on healthy nodes when a
/// node returned).
pub fn ipc_counts(overdue: Option<Duration>, interval: Duration, stall_limit: Duration) -> bool {
    overdue.is_some_and(|late| late > interval / 2 && late < stall_limit)
}

/// How long probes may stall while corosync is alive (it answers IPC or its
/// process runs): the ring is re-forming, and no agreed message moves for
/// about token + consensus, then corosync synchronises its services (no IPC
/// answered). Twice the nominal time plus 200 ms, and at least 3 s: on a
/// loaded host (2 shared cores) the fast profile's re-formation took up to
/// ~430 ms, and the synchronisation after a node came back 0.8-3 s, while
/// every member waited alike (no peer can take a VIF over before the view).
/// Beyond it the ring counts as stuck: `Lost`.
pub fn auto_stall_limit(token_ms: u32, consensus_ms: u32) -> Duration {
    let ring = u64::from(token_ms) + u64::from(consensus_ms);
    Duration::from_millis(ring * 2 + 200).max(MIN_STALL_LIMIT)
}

/// The shortest automatic stall limit (see [`auto_stall_limit`]).
pub const MIN_STALL_LIMIT: Duration = Duration::from_secs(3);

/// What corosync's process thread does next (see `conn::Liveness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivenessStep {
    /// Read the process state (and vouch while the engine thread is held
    /// in a call), then sleep a period.
    Check,
    /// Nothing to check now; check again in a period (probes stalled
    /// lately: a ring re-formation and its synchronisation may follow).
    Sleep,
    /// Nothing to check, nor lately: sleep until the engine sees a probe
    /// stall (or a long safety period).
    Park,
}

/// The process thread's rule: check while the engine thread is held in a
/// corosync call (`in_call`) or our probes have not come back within the
/// period (`probes_back` false); otherwise check nothing, waking every
/// period only while `watching` (a probe stalled within the stall limit).
pub fn liveness_step(in_call: bool, probes_back: bool, watching: bool) -> LivenessStep {
    if in_call || !probes_back {
        LivenessStep::Check
    } else if watching {
        LivenessStep::Sleep
    } else {
        LivenessStep::Park
    }
}

/// Whether a `/proc/<pid>/stat` line shows a process that is neither
/// stopped (SIGSTOP, traced) nor dead. The state follows the last `)` (the
/// command name may itself contain one).
pub fn process_runs(stat: &str) -> bool {
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some("R" | "S" | "D" | "I"))
}

/// Why the watchdog trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trip {
    /// Probe late and corosync silent on IPC, both beyond the freeze deadline.
    Frozen { late: Duration, silent: Duration },
    /// Probe late beyond the stall limit although corosync answers IPC.
    Stalled { late: Duration },
}

/// The watchdog rule. `late`: age of the oldest probe in flight; `silent`:
/// how long corosync has not answered IPC. A late probe alone is normal while
/// the ring re-forms (nothing is delivered anywhere for about token +
/// consensus), so it only counts as a loss beyond `stall_limit`.
pub fn verdict(
    late: Option<Duration>,
    silent: Duration,
    deadline: Duration,
    stall_limit: Duration,
) -> Option<Trip> {
    let late = late?;
    if late > deadline && silent > deadline {
        Some(Trip::Frozen { late, silent })
    } else if late > stall_limit {
        Some(Trip::Stalled { late })
    } else {
        None
    }
}

/// Watchdog bookkeeping: probes sent and not yet back.
#[derive(Debug)]
pub struct Watchdog {
    deadline: Duration,
    next_seq: u64,
    outstanding: VecDeque<(u64, Instant)>,
    /// Since when corosync refuses our probes (try again: its ring is
    /// re-forming), until one is accepted or comes back.
    refused_since: Option<Instant>,
}

/// At most this many probes in flight: a frozen corosync must not have its
/// IPC queue filled with probes.
pub const MAX_OUTSTANDING: usize = 64;

impl Watchdog {
    pub fn new(deadline: Duration) -> Self {
        Watchdog {
            deadline,
            next_seq: 0,
            outstanding: VecDeque::new(),
            refused_since: None,
        }
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The next probe to send at `now`, or None if too many are in flight.
    pub fn probe(&mut self, now: Instant) -> Option<u64> {
        if self.outstanding.len() >= MAX_OUTSTANDING {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.outstanding.push_back((seq, now));
        Some(seq)
    }

    /// A probe could not be handed to corosync (try again): forget it.
    pub fn unsent(&mut self, seq: u64) {
        if self.outstanding.back().is_some_and(|(s, _)| *s == seq) {
            if let Some((_, sent)) = self.outstanding.pop_back() {
                self.refused_since.get_or_insert(sent);
            }
        }
    }

    /// Our probe `seq` came back: it and every earlier one are answered
    /// (agreed order keeps our own probes in sending order). Returns when
    /// it was sent (`None`: not one in flight, e.g. sent before a reset).
    pub fn returned(&mut self, seq: u64) -> Option<Instant> {
        self.refused_since = None;
        if !self.outstanding.iter().any(|(s, _)| *s == seq) {
            return None;
        }
        while let Some((s, sent)) = self.outstanding.pop_front() {
            if s == seq {
                return Some(sent);
            }
        }
        None
    }

    /// True when the oldest probe in flight is older than the deadline.
    pub fn expired(&self, now: Instant) -> bool {
        self.overdue(now).is_some_and(|age| age > self.deadline)
    }

    /// Age of the oldest probe in flight.
    pub fn overdue(&self, now: Instant) -> Option<Duration> {
        self.outstanding
            .front()
            .map(|(_, sent)| now.saturating_duration_since(*sent))
    }

    /// A probe was handed to corosync.
    pub fn accepted(&mut self) {
        self.refused_since = None;
    }

    /// How long our probes have stalled: the oldest in flight, or since
    /// corosync began refusing them (a re-forming ring refuses new messages
    /// with "try again", so none is in flight while it re-forms).
    pub fn stalled(&self, now: Instant) -> Option<Duration> {
        let refused = self
            .refused_since
            .map(|since| now.saturating_duration_since(since));
        self.overdue(now).max(refused)
    }

    /// Forget every probe in flight (new connection, or after a trip so that
    /// the deadline restarts from the next probe).
    pub fn reset(&mut self) {
        self.outstanding.clear();
        self.refused_since = None;
    }

    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }
}

/// Peers' delivered probes not yet told to the agent. The agent only
/// weighs them when my own probe comes ([`crate::daemon::evict`] keeps the
/// latest per member and judges on mine), so they wait for the next event
/// instead of waking the agent two or more times per probe period: the
/// agent sees the same events in the same order, each with the time it was
/// read, a little later. Latest per member (the agent keeps the maximum).
#[derive(Debug, Default)]
pub struct PendingHeard(Vec<(MemberId, tokio::time::Instant)>);

impl PendingHeard {
    /// A peer's probe read at `at`.
    pub fn note(&mut self, member: MemberId, at: tokio::time::Instant) {
        match self.0.iter_mut().find(|(m, _)| *m == member) {
            Some(e) => e.1 = e.1.max(at),
            None => self.0.push((member, at)),
        }
    }

    /// The waiting `Heard` events, to go before the next event of any kind.
    pub fn take(&mut self) -> impl Iterator<Item = MembershipEvent> + '_ {
        self.0
            .drain(..)
            .map(|(member, at)| MembershipEvent::Heard { member, at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test(start_paused = true)]
    async fn pending_heard_keeps_the_latest_per_member_until_taken() {
        let t0 = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        let (a, b) = (MemberId("a".into()), MemberId("b".into()));
        let mut p = PendingHeard::default();
        assert_eq!(p.take().count(), 0);
        p.note(a.clone(), t0 + ms(6));
        p.note(b.clone(), t0 + ms(12));
        p.note(a.clone(), t0 + ms(24));
        // An older reading never replaces a newer one.
        p.note(b.clone(), t0 + ms(1));
        let got: Vec<_> = p
            .take()
            .map(|e| match e {
                MembershipEvent::Heard { member, at } => (member, at),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, vec![(a, t0 + ms(24)), (b, t0 + ms(12))]);
        assert_eq!(p.take().count(), 0);
    }

    const ME: Proc = Proc {
        nodeid: 2,
        pid: 200,
    };
    const A: Proc = Proc {
        nodeid: 1,
        pid: 100,
    };
    const C: Proc = Proc {
        nodeid: 3,
        pid: 300,
    };
    const R1: Ring = Ring { nodeid: 1, seq: 8 };
    const R2: Ring = Ring { nodeid: 1, seq: 12 };

    fn view_of(events: &[MembershipEvent]) -> Option<&View> {
        events.iter().find_map(|e| match e {
            MembershipEvent::View(v) => Some(v),
            _ => None,
        })
    }

    #[test]
    fn codec_round_trips_and_rejects_foreign() {
        assert_eq!(decode(&encode_app(b"hi")), Some(Wire::App(b"hi")));
        assert_eq!(decode(&encode_app(b"")), Some(Wire::App(b"")));
        assert_eq!(decode(&encode_watchdog(7)), Some(Wire::Watchdog(7)));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"Xabc"), None);
        assert_eq!(decode(b"W123"), None);
    }

    #[test]
    fn member_ids_sort_like_procs() {
        let a = Proc { nodeid: 9, pid: 5 };
        let b = Proc { nodeid: 10, pid: 1 };
        assert!(a < b);
        assert!(a.member_id() < b.member_id());
        assert_eq!(a.member_id().0, "n0000000009p0000000005");
    }

    #[test]
    fn a_process_that_left_with_its_node_up_is_reported_departed() {
        let mut t = Tracker::new(ME, R1);
        // Before any view: nothing to report.
        assert!(t.departed(&[A]).is_empty());
        t.confchg(vec![A, ME, C], false);
        assert_eq!(
            t.departed(&[A, Proc { nodeid: 9, pid: 9 }, ME]),
            vec![MembershipEvent::Departed {
                members: vec![A.member_id()]
            }]
        );
        assert!(t.departed(&[]).is_empty());
    }

    #[test]
    fn join_gives_transitional_then_view() {
        let mut t = Tracker::new(ME, R1);
        let ev = t.confchg(vec![C, ME, A], false);
        assert_eq!(ev.first(), Some(&MembershipEvent::Transitional));
        let v = view_of(&ev).cloned().unwrap();
        assert_eq!(
            v.members,
            vec![A.member_id(), ME.member_id(), C.member_id()]
        );
        assert_eq!(v.my_index, 1);
        assert_eq!(v.id, view_id(R1, &[A, ME, C]));
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn ring_change_waits_for_totem_ring_id() {
        let mut t = Tracker::new(ME, R1);
        t.confchg(vec![A, ME, C], false);
        let ev = t.confchg(vec![A, ME], true);
        assert_eq!(ev, vec![MembershipEvent::Transitional]);
        // A second confchg of the same sync (joinlist) adds nothing.
        assert!(t.confchg(vec![A, ME], true).is_empty());
        let ev = t.totem(R2);
        assert_eq!(ev.len(), 1);
        let v = view_of(&ev).unwrap();
        assert_eq!(v.id, view_id(R2, &[A, ME]));
        assert_eq!(v.members.len(), 2);
    }

    #[test]
    fn totem_change_alone_is_a_new_view() {
        let mut t = Tracker::new(ME, R1);
        let first = view_of(&t.confchg(vec![A, ME], false)).cloned().unwrap();
        let ev = t.totem(R2);
        assert_eq!(ev.first(), Some(&MembershipEvent::Transitional));
        assert_ne!(view_of(&ev).unwrap().id, first.id);
    }

    #[test]
    fn messages_only_inside_a_view_and_watchdog_hidden() {
        let mut t = Tracker::new(ME, R1);
        assert!(t.deliver(A, &encode_app(b"x")).0.is_empty());
        t.confchg(vec![A, ME], false);
        let (ev, wd) = t.deliver(A, &encode_app(b"x"));
        assert_eq!(
            ev,
            vec![MembershipEvent::Message {
                sender: A.member_id(),
                payload: b"x".to_vec()
            }]
        );
        assert_eq!(wd, None);
        assert_eq!(t.deliver(ME, &encode_watchdog(3)), (vec![], Some(3)));
        assert_eq!(t.deliver(A, &encode_watchdog(3)), (vec![], None));
        assert_eq!(t.deliver(A, b"garbage"), (vec![], None));
        // Probes of view members (me too) are visible as such; others not.
        assert_eq!(t.prober(A, &encode_watchdog(3)), Some(A.member_id()));
        assert_eq!(t.prober(ME, &encode_watchdog(4)), Some(ME.member_id()));
        assert_eq!(t.prober(A, &encode_app(b"x")), None);
        assert_eq!(
            t.prober(Proc { nodeid: 9, pid: 9 }, &encode_watchdog(1)),
            None
        );
    }

    #[test]
    fn freeze_mutes_until_thaw() {
        let mut t = Tracker::new(ME, R1);
        t.confchg(vec![A, ME], false);
        t.frozen();
        assert!(t.current().is_none());
        assert!(t.deliver(A, &encode_app(b"x")).0.is_empty());
        assert!(t.totem(R2).is_empty());
        assert!(t.confchg(vec![A, ME], false).is_empty());
        assert!(t.thawed());
        assert!(!t.thawed());
        assert!(!t.is_frozen());
    }

    #[test]
    fn quorum_loss_mutes_and_regain_redelivers() {
        let mut t = Tracker::new(ME, R1);
        t.confchg(vec![A, ME], false);
        assert!(t.quorate(false, R1).is_empty());
        assert!(t.confchg(vec![ME], true).is_empty());
        assert!(t.totem(R2).is_empty());
        let ev = t.quorate(true, R2);
        assert_eq!(ev.first(), Some(&MembershipEvent::Transitional));
        assert_eq!(view_of(&ev).unwrap().id, view_id(R2, &[ME]));
        assert!(t.quorate(true, R2).is_empty());
    }

    /// `require_quorum`: a new ring's view (and the messages after it)
    /// waits for that ring's quorum notification, whichever comes first.
    #[test]
    fn with_quorum_tracked_a_new_rings_view_waits_for_its_quorum() {
        let mut t = Tracker::new(ME, R1);
        t.track_quorum();
        // Same ring: a join needs no notification.
        assert!(view_of(&t.confchg(vec![A, ME, C], false)).is_some());
        // A split: the one-node ring's view waits; a message waits too.
        assert_eq!(
            t.confchg(vec![ME], true),
            vec![MembershipEvent::Transitional]
        );
        assert!(t.totem(R2).is_empty());
        assert!(t.deliver(ME, &encode_app(b"state")).0.is_empty());
        // Not quorate: never delivered (the engine reports Lost).
        assert!(t.quorate(false, R2).is_empty());
        assert!(t.current().is_none());
        // The merge: its notification first, then the ring.
        let r3 = Ring { nodeid: 1, seq: 20 };
        assert!(view_of(&t.quorate(true, r3)).is_none());
        t.confchg(vec![A, ME, C], true);
        let ev = t.totem(r3);
        assert_eq!(view_of(&ev).unwrap().id, view_id(r3, &[A, ME, C]));
        // The ring first: the view and a held message follow the notification.
        let r4 = Ring { nodeid: 1, seq: 24 };
        t.confchg(vec![A, ME], true);
        assert!(t.totem(r4).is_empty());
        assert!(t.deliver(A, &encode_app(b"x")).0.is_empty());
        let ev = t.quorate(true, r4);
        assert_eq!(view_of(&ev).unwrap().id, view_id(r4, &[A, ME]));
        assert_eq!(
            ev.last(),
            Some(&MembershipEvent::Message {
                sender: A.member_id(),
                payload: b"x".to_vec()
            })
        );
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn not_a_member_means_no_view() {
        let mut t = Tracker::new(ME, R1);
        t.confchg(vec![A, ME], false);
        let ev = t.confchg(vec![A], false);
        assert!(ev.is_empty());
        assert!(t.current().is_none());
    }

    #[test]
    fn watchdog_expires_and_clears() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Watchdog::new(ms(200));
        let s0 = w.probe(t0).unwrap();
        let s1 = w.probe(t0 + ms(20)).unwrap();
        assert!(!w.expired(t0 + ms(200)));
        assert!(w.expired(t0 + ms(201)));
        assert_eq!(w.overdue(t0 + ms(201)), Some(ms(201)));
        w.returned(s0);
        assert!(!w.expired(t0 + ms(215)));
        assert!(w.expired(t0 + ms(221)));
        w.returned(s1);
        assert!(!w.expired(t0 + ms(10_000)));
        w.returned(99);
        assert_eq!(w.in_flight(), 0);
        let s = w.probe(t0).unwrap();
        w.unsent(s);
        assert_eq!(w.in_flight(), 0);
        // Refused probes count as a stall (a re-forming ring), not as late.
        assert_eq!(w.stalled(t0 + ms(40)), Some(ms(40)));
        assert_eq!(w.overdue(t0 + ms(40)), None);
        let s = w.probe(t0 + ms(20)).unwrap();
        w.unsent(s);
        assert_eq!(w.stalled(t0 + ms(40)), Some(ms(40)), "since the first");
        w.accepted();
        assert_eq!(w.stalled(t0 + ms(40)), None);
        for _ in 0..MAX_OUTSTANDING {
            assert!(w.probe(t0).is_some());
        }
        assert!(w.probe(t0).is_none());
        w.reset();
        assert!(!w.expired(t0 + ms(10_000)));
    }

    #[test]
    fn verdict_tells_frozen_from_reforming() {
        let ms = Duration::from_millis;
        let (d, stall) = (ms(200), ms(420));
        // Nothing in flight, or on time.
        assert_eq!(verdict(None, ms(10_000), d, stall), None);
        assert_eq!(verdict(Some(ms(150)), ms(10_000), d, stall), None);
        // Late, corosync answering IPC: the ring is re-forming.
        assert_eq!(verdict(Some(ms(400)), ms(20), d, stall), None);
        // Late and silent: frozen.
        assert_eq!(
            verdict(Some(ms(201)), ms(201), d, stall),
            Some(Trip::Frozen {
                late: ms(201),
                silent: ms(201)
            })
        );
        // Silent but the probe is on time (IPC thread starved): not frozen.
        assert_eq!(verdict(Some(ms(100)), ms(5_000), d, stall), None);
        // Late beyond the stall limit although answering: stalled.
        assert_eq!(
            verdict(Some(ms(421)), ms(20), d, stall),
            Some(Trip::Stalled { late: ms(421) })
        );
    }

    #[test]
    fn auto_freeze_deadline_scales_with_token() {
        assert_eq!(auto_freeze_deadline(50), Duration::from_millis(200));
        assert_eq!(auto_freeze_deadline(3650), Duration::from_millis(1825));
        assert_eq!(auto_freeze_deadline(0), Duration::from_millis(200));
    }

    #[test]
    fn takeover_floor_is_token_plus_consensus() {
        assert_eq!(takeover_floor(50, 60), Duration::from_millis(110));
        assert_eq!(
            takeover_floor(u32::MAX, u32::MAX),
            Duration::from_millis(2 * u64::from(u32::MAX))
        );
    }

    #[test]
    fn probes_come_three_times_per_lease() {
        let ms = Duration::from_millis;
        let fast = (ms(110), ms(200));
        let default = (ms(8030), ms(1825));
        assert_eq!(probe_interval(Some(ms(100)), fast.0, fast.1), ms(110) / 6);
        assert_eq!(probe_interval(None, fast.0, fast.1), ms(110) / 6);
        assert_eq!(probe_interval(Some(ms(20)), default.0, default.1), ms(20));
        assert_eq!(probe_interval(None, default.0, default.1), ms(1825) / 8);
        assert_eq!(probe_interval(Some(ms(20)), ms(12), ms(200)), ms(5));
        assert_eq!(probe_interval(None, ms(12), ms(20)), ms(5));
    }

    #[test]
    fn probes_fall_on_the_wall_clock_grid_at_most_one_period_apart() {
        let ms = Duration::from_millis;
        let i = ms(110) / 6;
        let p = i.as_nanos();
        let t0 = Instant::now();
        for (wall, wait) in [
            (0, i),
            (1, i - Duration::from_nanos(1)),
            (p - 1, Duration::from_nanos(1)),
            (p, i),
            (7 * p + p / 2, i - Duration::from_nanos((p / 2) as u64)),
        ] {
            assert_eq!(next_probe_at(t0, wall, i), t0 + wait, "wall {wall}");
        }
        // Two nodes whose clocks agree pick the same instant whenever each
        // wakes up within the period.
        let grid = 1_000 * p;
        for (a, b) in [(grid + 1, grid + p - 1), (grid + p / 3, grid + 2 * p / 3)] {
            let ta = next_probe_at(Duration::ZERO, a, i).as_nanos() + a;
            let tb = next_probe_at(Duration::ZERO, b, i).as_nanos() + b;
            assert_eq!(ta, tb);
            assert_eq!(ta, grid + p);
        }
        // Never more than one period, also for a zero period.
        assert!(next_probe_at(Duration::ZERO, 12345, Duration::ZERO) <= Duration::from_nanos(1));
    }

    #[test]
    fn ipc_counts_only_while_probes_stall_below_the_limit() {
        let (i, stall) = (Duration::from_millis(20), Duration::from_millis(420));
        assert!(
            !ipc_counts(None, i, stall),
            "no probe in flight: probes speak"
        );
        assert!(!ipc_counts(Some(Duration::from_millis(10)), i, stall));
        // The first check after the probe is due (one period) counts, well
        // before a lease of three periods lapses.
        assert!(ipc_counts(Some(Duration::from_millis(20)), i, stall));
        assert!(ipc_counts(Some(Duration::from_millis(100)), i, stall));
        assert!(!ipc_counts(Some(Duration::from_millis(420)), i, stall));
    }

    #[test]
    fn the_process_thread_checks_whenever_probes_stall_or_a_call_holds() {
        use LivenessStep::*;
        for watching in [false, true] {
            assert_eq!(liveness_step(true, true, watching), Check);
            assert_eq!(liveness_step(false, false, watching), Check);
            assert_eq!(liveness_step(true, false, watching), Check);
        }
        assert_eq!(liveness_step(false, true, true), Sleep);
        assert_eq!(liveness_step(false, true, false), Park);
    }

    #[test]
    fn a_stopped_or_dead_process_does_not_run() {
        let stat = |state: &str| format!("4242 (corosync) {state} 1 4242 4242 0 -1 4194560 3 0");
        for s in ["R", "S", "D", "I"] {
            assert!(process_runs(&stat(s)), "{s}");
        }
        for s in ["T", "t", "Z", "X", "x"] {
            assert!(!process_runs(&stat(s)), "{s}");
        }
        // A ')' in the command name, and nonsense.
        assert!(process_runs("7 (a) b) S 1 7"));
        assert!(!process_runs("7 (a) b) T 1 7"));
        assert!(!process_runs(""));
        assert!(!process_runs("no parenthesis S"));
    }

    #[test]
    fn auto_stall_limit_covers_ring_reformation() {
        assert_eq!(auto_stall_limit(50, 60), MIN_STALL_LIMIT);
        assert_eq!(auto_stall_limit(1000, 1200), Duration::from_millis(4600));
        assert_eq!(
            auto_stall_limit(DEFAULT_TOKEN_MS, DEFAULT_CONSENSUS_MS),
            Duration::from_millis(16_260)
        );
        // No overflow at the extremes: 2 x 2 x (2^32 - 1) ms + 200.
        assert_eq!(
            auto_stall_limit(u32::MAX, u32::MAX),
            Duration::from_millis(17_179_869_380)
        );
    }

    fn proc_strategy() -> impl Strategy<Value = Proc> {
        (1u32..6, 1u32..4).prop_map(|(nodeid, pid)| Proc { nodeid, pid })
    }

    #[derive(Debug, Clone)]
    enum Step {
        Confchg(Vec<Proc>, bool),
        Totem(u64),
        Msg(Proc),
    }

    fn step_strategy() -> impl Strategy<Value = Step> {
        prop_oneof![
            (
                proptest::collection::vec(proc_strategy(), 0..6),
                any::<bool>()
            )
                .prop_map(|(m, r)| Step::Confchg(m, r)),
            (1u64..50).prop_map(Step::Totem),
            proc_strategy().prop_map(Step::Msg),
        ]
    }

    proptest! {
        /// Any callback sequence fed to two members yields, for each view both
        /// hold, the same id and member list; every view follows a Transitional;
        /// my_index points at me; messages arrive only inside a view.
        #[test]
        fn members_agree_and_views_are_well_formed(
            steps in proptest::collection::vec(step_strategy(), 0..40),
            a in proc_strategy(),
            b in proc_strategy(),
        ) {
            prop_assume!(a != b);
            let mut ta = Tracker::new(a, R1);
            let mut tb = Tracker::new(b, R1);
            let mut views_a = Vec::new();
            let mut views_b = Vec::new();
            for (t, views) in [(&mut ta, &mut views_a), (&mut tb, &mut views_b)] {
                let mut in_view = false;
                let mut transitional = false;
                for s in &steps {
                    let ev = match s {
                        Step::Confchg(m, r) => t.confchg(m.clone(), *r),
                        Step::Totem(seq) => t.totem(Ring { nodeid: 1, seq: *seq }),
                        Step::Msg(p) => t.deliver(*p, &encode_app(b"m")).0,
                    };
                    for e in ev {
                        match e {
                            MembershipEvent::Transitional => transitional = true,
                            MembershipEvent::View(v) => {
                                prop_assert!(transitional);
                                transitional = false;
                                in_view = true;
                                prop_assert_eq!(&v.members[v.my_index], &t.me().member_id());
                                let mut sorted = v.members.clone();
                                sorted.sort();
                                sorted.dedup();
                                prop_assert_eq!(&sorted, &v.members);
                                views.push(v);
                            }
                            MembershipEvent::Message { .. } => prop_assert!(in_view),
                            MembershipEvent::Lost { .. }
                            | MembershipEvent::Departed { .. }
                            | MembershipEvent::Resumed { .. }
                            | MembershipEvent::Heard { .. } => {
                                prop_assert!(false)
                            }
                        }
                    }
                }
            }
            for va in &views_a {
                for vb in &views_b {
                    if va.id == vb.id {
                        prop_assert_eq!(&va.members, &vb.members);
                    }
                }
            }
        }
    }
}

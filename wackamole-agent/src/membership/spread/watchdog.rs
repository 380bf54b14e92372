//! Watchdog bookkeeping (pure, no I/O): one probe in flight at a time, sent
//! to our own private group (and the group, see [`Hearing`]), and the
//! verdict on whether the daemon is frozen.
//!
//! A probe to our private group travels the daemon ring like any AGREED
//! message (Spread has no local shortcut), so it also pauses while the ring
//! re-forms after a failure elsewhere (token + gather, ~1.2 s with LAN-fast).
//! The verdict therefore needs two facts, like the corosync engine's
//! "frozen vs stalled ring": the probe is late beyond the deadline **and**
//! the daemon process has not even read it from our socket. A daemon busy
//! re-forming its ring still reads its clients at once; a stopped one
//! leaves our bytes in the socket queue.

use std::time::{Duration, Instant};

/// `mess_type` of watchdog probes. Application messages use 0; the engine
/// never hands a message of another type to the agent.
pub const PROBE_MESS_TYPE: i16 = 0x5744; // "WD"
/// `mess_type` of the agent's messages (payload byte-identical).
pub const APP_MESS_TYPE: i16 = 0;

/// The probe payload: its sequence number, little endian.
pub fn encode_probe(seq: u64) -> [u8; 8] {
    seq.to_le_bytes()
}

/// The sequence number of a probe payload (None: not 8 bytes).
pub fn decode_probe(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.try_into().ok()?))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    seq: u64,
    sent: Instant,
    /// Session byte offset just after the probe: the daemon has read the
    /// probe once it has consumed this many bytes.
    end_offset: u64,
}

/// Probe state of one session.
#[derive(Debug)]
pub struct Watchdog {
    deadline: Duration,
    next_seq: u64,
    in_flight: Option<InFlight>,
}

/// What the daemon did with the probe in flight, as far as the socket tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The daemon consumed this many bytes of the session so far.
    Consumed(u64),
    /// Not observable (TCP: the kernel acknowledges for a frozen process).
    Unknown,
}

impl Watchdog {
    /// A watchdog that trips when a probe is `deadline` late and unread.
    pub fn new(deadline: Duration) -> Self {
        Watchdog {
            deadline,
            next_seq: 1,
            in_flight: None,
        }
    }

    /// The configured deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The sequence number of the next probe to send, or None while one is
    /// still in flight (one at a time: a stalled ring must not pile probes
    /// into the daemon's queue).
    pub fn due(&self) -> Option<u64> {
        self.in_flight.is_none().then_some(self.next_seq)
    }

    /// Probe `seq` was written at `now`; the session had written
    /// `end_offset` bytes after it.
    pub fn sent(&mut self, seq: u64, now: Instant, end_offset: u64) {
        self.in_flight = Some(InFlight {
            seq,
            sent: now,
            end_offset,
        });
        self.next_seq = seq.wrapping_add(1);
    }

    /// Probe `seq` came back; returns its round trip when it was the one in
    /// flight (stale or foreign numbers are ignored).
    pub fn returned(&mut self, seq: u64, now: Instant) -> Option<Duration> {
        let f = self.in_flight.filter(|f| f.seq == seq)?;
        self.in_flight = None;
        Some(now.saturating_duration_since(f.sent))
    }

    /// How late the probe in flight is (zero when none).
    pub fn overdue(&self, now: Instant) -> Duration {
        self.in_flight
            .map(|f| now.saturating_duration_since(f.sent))
            .unwrap_or_default()
    }

    /// Whether the daemon has read the probe in flight (it is not frozen,
    /// though the probe has not come back: a membership change holds it).
    pub fn consumed_in_flight(&self, reading: Reading) -> bool {
        match (self.in_flight, reading) {
            (Some(f), Reading::Consumed(c)) => c >= f.end_offset,
            _ => false,
        }
    }

    /// Some(age of the probe) when the daemon is frozen: the probe in flight
    /// is older than the deadline and the daemon has not read it.
    pub fn frozen(&self, now: Instant, reading: Reading) -> Option<Duration> {
        let f = self.in_flight?;
        let age = now.saturating_duration_since(f.sent);
        let unread = match reading {
            Reading::Consumed(c) => c < f.end_offset,
            Reading::Unknown => false,
        };
        (age > self.deadline && unread).then_some(age)
    }
}

/// What the daemon consumed, from bytes written and bytes still queued.
pub fn reading(written: u64, unread: Option<u64>) -> Reading {
    match unread {
        Some(q) => Reading::Consumed(written.saturating_sub(q)),
        None => Reading::Unknown,
    }
}

/// Which delivered probes the agent hears of ([`MembershipEvent::Heard`]):
/// every member multicasts its probe to the group as well, so peers watch
/// each other's liveness (issue 11) as on Corosync. Pure bookkeeping of the
/// group's current view.
///
/// [`MembershipEvent::Heard`]: crate::membership::MembershipEvent::Heard
#[derive(Debug, Default)]
pub struct Hearing {
    /// Members of the view the agent holds (empty: none).
    members: Vec<String>,
    /// A transitional signal came: the view is ending, its silence judges
    /// nothing.
    ending: bool,
}

impl Hearing {
    /// A regular view of the group that lists me.
    pub fn view(&mut self, members: &[String]) {
        self.members = members.to_vec();
        self.ending = false;
    }

    /// The group's transitional signal.
    pub fn transitional(&mut self) {
        self.ending = true;
    }

    /// No view (left, session over).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Whether the probe of `sender` is heard. `own_rtt`: the round trip
    /// when it is mine. My own probe counts only when it came back within
    /// `stall`: one held up by a ring re-forming is delivered in a burst
    /// with the others' probes held up as well, maybe before them, and
    /// would make them look silent for the whole re-formation.
    pub fn heard(&self, sender: &str, own_rtt: Option<Duration>, stall: Duration) -> bool {
        !self.ending
            && self.members.iter().any(|m| m == sender)
            && own_rtt.is_none_or(|rtt| rtt <= stall)
    }
}

/// The longest round trip of my own probe that still shows the group's
/// order moving: a quarter of the takeover floor (125 ms by default; a
/// probe normally returns within a few ms, a re-formation takes at least
/// the token timeout, i.e. the floor).
pub fn stall_limit(takeover_floor: Duration) -> Duration {
    takeover_floor / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: Duration = Duration::from_millis(500);

    #[test]
    fn one_probe_in_flight_and_round_trip() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(D);
        assert_eq!(w.due(), Some(1));
        w.sent(1, t0, 100);
        assert_eq!(w.due(), None);
        assert_eq!(w.returned(7, t0), None, "foreign number ignored");
        let rtt = w.returned(1, t0 + Duration::from_millis(3));
        assert_eq!(rtt, Some(Duration::from_millis(3)));
        assert_eq!(w.due(), Some(2));
        assert_eq!(w.returned(1, t0), None, "already back");
    }

    #[test]
    fn a_read_probe_in_flight_is_evidence_of_a_live_daemon() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_millis(500));
        assert!(
            !w.consumed_in_flight(Reading::Consumed(100)),
            "no probe in flight"
        );
        let seq = w.due().expect("first probe due");
        w.sent(seq, t0, 40);
        assert!(!w.consumed_in_flight(Reading::Consumed(39)), "not read yet");
        assert!(w.consumed_in_flight(Reading::Consumed(40)));
        assert!(
            !w.consumed_in_flight(Reading::Unknown),
            "remote daemon: no evidence"
        );
    }

    #[test]
    fn frozen_needs_late_and_unread() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(D);
        w.sent(1, t0, 100);
        let late = t0 + D + Duration::from_millis(1);
        assert_eq!(w.frozen(t0 + D, Reading::Consumed(0)), None, "not late yet");
        assert_eq!(w.frozen(late, Reading::Consumed(99)), Some(late - t0));
        // Read but not delivered: a ring re-forming, not a frozen daemon.
        assert_eq!(w.frozen(late, Reading::Consumed(100)), None);
        assert_eq!(w.frozen(late, Reading::Unknown), None);
        assert_eq!(w.overdue(late), late - t0);
    }

    #[test]
    fn probe_payload_round_trips_and_rejects_other_lengths() {
        assert_eq!(decode_probe(&encode_probe(42)), Some(42));
        assert_eq!(decode_probe(b"short"), None);
        assert_eq!(decode_probe(&[0; 9]), None);
    }

    #[test]
    fn reading_from_socket_queue() {
        assert_eq!(reading(500, Some(120)), Reading::Consumed(380));
        assert_eq!(reading(5, Some(120)), Reading::Consumed(0));
        assert_eq!(reading(500, None), Reading::Unknown);
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn probes_of_view_members_are_heard_until_the_view_ends() {
        let stall = stall_limit(Duration::from_millis(500));
        assert_eq!(stall, Duration::from_millis(125));
        let mut h = Hearing::default();
        assert!(!h.heard("#a#sda", None, stall), "no view yet");
        h.view(&names(&["#a#sda", "#b#sdb"]));
        assert!(h.heard("#b#sdb", None, stall));
        assert!(!h.heard("#c#sdc", None, stall), "not a member");
        assert!(h.heard("#a#sda", Some(Duration::from_millis(3)), stall));
        // My probe held up by a re-formation does not show the order moving.
        assert!(!h.heard("#a#sda", Some(Duration::from_millis(400)), stall));
        h.transitional();
        assert!(!h.heard("#b#sdb", None, stall), "view ending");
        assert!(!h.heard("#a#sda", Some(Duration::from_millis(3)), stall));
        h.view(&names(&["#a#sda", "#c#sdc"]));
        assert!(h.heard("#c#sdc", None, stall));
        assert!(!h.heard("#b#sdb", None, stall), "left with the last view");
        h.clear();
        assert!(!h.heard("#c#sdc", None, stall));
    }

    proptest! {
        #[test]
        fn verdict_is_late_and_unread(age_ms in 0u64..2000, end in 0u64..1000, consumed in 0u64..1000) {
            let t0 = Instant::now();
            let mut w = Watchdog::new(D);
            w.sent(3, t0, end);
            let now = t0 + Duration::from_millis(age_ms);
            let got = w.frozen(now, Reading::Consumed(consumed));
            let want = (Duration::from_millis(age_ms) > D && consumed < end)
                .then_some(Duration::from_millis(age_ms));
            prop_assert_eq!(got, want);
        }
    }
}

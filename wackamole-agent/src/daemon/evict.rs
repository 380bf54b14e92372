//! Watching the other members' liveness through the group, to evict a
//! member whose agent is frozen while its node stays in the engine's ring
//! (issue 11). Pure logic on the engine's [`Heard`] events, no I/O.
//!
//! The engine reports every member's watchdog probe as it is delivered in
//! the agreed order. A member none of whose probes was delivered for
//! [`lease::evict_after`] (counted from its last one, or from the view)
//! while *my* probes kept coming is a suspect: the group's order moved on
//! without it. Measuring against my own probes, never against my clock
//! alone, keeps a ring re-formation (nobody's probe moves) or a stall of
//! this agent (it reads a backlog at once) from looking like silence.
//!
//! A member not heard yet in a view gets [`SYNC_SKEW`] more: corosync ends
//! a view's synchronisation on each node in turn (a member behind a lossy
//! cable got the view ~100 ms after the others, and its first message
//! ~200 ms after), and it refuses that member's messages until then. Its
//! silence counted from my view alone evicted live members (whose leases
//! were still renewed: two answerers) in every lossy-link run.
//!
//! [`Heard`]: crate::membership::MembershipEvent::Heard
//! [`lease::evict_after`]: super::lease::evict_after

use crate::membership::MemberId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

/// How much longer a member may stay silent after a view before it has
/// been heard in it (see the module's comment).
pub const SYNC_SKEW: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct Watch {
    me: Option<MemberId>,
    /// When each other member of the view was last heard (or the view began).
    last: BTreeMap<MemberId, Instant>,
    /// The members heard in this view (the others get [`SYNC_SKEW`] more).
    heard: BTreeSet<MemberId>,
    suspects: BTreeSet<MemberId>,
}

impl Watch {
    /// A new view: every member gets the whole deadline from now.
    pub fn view(&mut self, members: &[MemberId], my_index: usize, now: Instant) {
        self.me = members.get(my_index).cloned();
        self.last = members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != my_index)
            .map(|(_, m)| (m.clone(), now))
            .collect();
        self.heard.clear();
        self.suspects.clear();
    }

    /// No view (engine lost, left).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// A probe of `member` delivered at `at`. On my own probe: the members
    /// silent for longer than `deadline` before it (`deadline` plus
    /// [`SYNC_SKEW`] for those not heard in this view yet), if any (all of
    /// them, also those reported before: the allocator asks once per view).
    pub fn heard(
        &mut self,
        member: &MemberId,
        at: Instant,
        deadline: Duration,
    ) -> Option<Vec<MemberId>> {
        if self.me.as_ref() != Some(member) {
            if let Some(t) = self.last.get_mut(member) {
                *t = (*t).max(at);
                self.heard.insert(member.clone());
            }
            return None;
        }
        for (m, t) in &self.last {
            let allowed = if self.heard.contains(m) {
                deadline
            } else {
                deadline + SYNC_SKEW
            };
            if at.saturating_duration_since(*t) > allowed {
                self.suspects.insert(m.clone());
            }
        }
        (!self.suspects.is_empty()).then(|| self.suspects.iter().cloned().collect())
    }

    /// The other members of the current view that are not in `members`
    /// and were last heard (or the view began) after `since`.
    pub fn heard_since_outside(
        &self,
        members: &[MemberId],
        since: Instant,
    ) -> Vec<(MemberId, Instant)> {
        self.last
            .iter()
            .filter(|(m, at)| **at > since && !members.contains(m))
            .map(|(m, at)| (m.clone(), *at))
            .collect()
    }

    /// This process was frozen or starved until `now`: every other member
    /// gets the whole deadline from now (their probes during our gap were
    /// read in a burst, or not at all), and earlier suspicions go.
    pub fn resumed(&mut self, now: Instant) {
        for t in self.last.values_mut() {
            *t = (*t).max(now);
        }
        self.suspects.clear();
    }

    /// Members suspected in this view so far.
    pub fn suspects(&self) -> &BTreeSet<MemberId> {
        &self.suspects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> MemberId {
        MemberId(s.into())
    }
    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_silent_while_my_probes_come_is_suspected() {
        let t0 = Instant::now();
        let d = ms(110);
        let mut w = Watch::default();
        w.view(&[m("a"), m("b"), m("c")], 0, t0);
        // Everyone probes every 20 ms until c falls silent after 40 ms.
        let mut first = None;
        for k in 1..=20u64 {
            let at = t0 + ms(20 * k);
            assert_eq!(w.heard(&m("b"), at, d), None);
            if k <= 2 {
                assert_eq!(w.heard(&m("c"), at, d), None);
            }
            if let Some(s) = w.heard(&m("a"), at, d) {
                assert_eq!(s, vec![m("c")]);
                first.get_or_insert(at);
            }
        }
        // c last heard at 40 ms: suspect from my first probe past 150 ms.
        assert_eq!(first, Some(t0 + ms(160)));
    }

    #[tokio::test(start_paused = true)]
    async fn members_a_view_drops_are_named_only_if_heard_since() {
        let t0 = Instant::now();
        let mut w = Watch::default();
        w.view(&[m("a"), m("b"), m("c")], 0, t0);
        w.heard(&m("b"), t0 + ms(100), ms(110));
        w.heard(&m("c"), t0 + ms(40), ms(110));
        // The next view keeps a and c: b, heard at 100 ms, is named if
        // heard after 60 ms; c (kept) never; nobody is after 100 ms.
        let next = [m("a"), m("c")];
        assert_eq!(
            w.heard_since_outside(&next, t0 + ms(60)),
            vec![(m("b"), t0 + ms(100))]
        );
        assert_eq!(w.heard_since_outside(&next, t0 + ms(100)), vec![]);
        assert_eq!(w.heard_since_outside(&[m("a")], t0 + ms(10)).len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_probe_of_mine_no_suspicion_and_a_view_resets() {
        let t0 = Instant::now();
        let d = ms(110);
        let mut w = Watch::default();
        w.view(&[m("a"), m("b")], 1, t0);
        // A ring re-forming: nothing delivered for 400 ms, then my probe
        // and b's together (b's first: the backlog in agreed order).
        assert_eq!(w.heard(&m("a"), t0 + ms(400), d), None);
        assert_eq!(w.heard(&m("b"), t0 + ms(400), d), None);
        // Not heard since the view (the view's start counts, plus the
        // synchronisation skew).
        w.view(&[m("a"), m("b")], 1, t0 + ms(500));
        assert_eq!(w.heard(&m("b"), t0 + ms(600), d), None);
        assert_eq!(w.heard(&m("b"), t0 + ms(1100), d), None);
        assert_eq!(w.heard(&m("b"), t0 + ms(1120), d), Some(vec![m("a")]));
        assert!(w.suspects().contains(&m("a")));
        w.clear();
        assert_eq!(w.heard(&m("b"), t0 + ms(1200), d), None);
    }

    /// The lossy-cable run: a got the view late and was first heard 300 ms
    /// into it; then it falls silent and gets the plain deadline.
    #[tokio::test(start_paused = true)]
    async fn a_member_late_into_a_view_is_not_suspected_until_heard_and_silent() {
        let t0 = Instant::now();
        let d = ms(110);
        let mut w = Watch::default();
        w.view(&[m("a"), m("b"), m("c")], 1, t0);
        for k in 1..=15u64 {
            let at = t0 + ms(20 * k);
            assert_eq!(w.heard(&m("c"), at, d), None);
            assert_eq!(w.heard(&m("b"), at, d), None, "at {} ms", 20 * k);
        }
        assert_eq!(w.heard(&m("a"), t0 + ms(300), d), None);
        let mut first = None;
        for k in 16..=40u64 {
            let at = t0 + ms(20 * k);
            assert_eq!(w.heard(&m("c"), at, d), None);
            if let Some(s) = w.heard(&m("b"), at, d) {
                assert_eq!(s, vec![m("a")]);
                first.get_or_insert(at);
            }
        }
        // Heard at 300 ms: suspect from my first probe past 410 ms.
        assert_eq!(first, Some(t0 + ms(420)));
    }

    /// After this process's own gap nobody is suspected for it: every
    /// member gets the whole deadline from the resumption.
    #[tokio::test(start_paused = true)]
    async fn my_own_gap_judges_nobody() {
        let t0 = Instant::now();
        let d = ms(110);
        let mut w = Watch::default();
        w.view(&[m("a"), m("b")], 0, t0);
        assert_eq!(w.heard(&m("b"), t0 + ms(20), d), None);
        assert_eq!(w.heard(&m("a"), t0 + ms(20), d), None);
        // Frozen for 400 ms; my probe comes before b's in the backlog.
        w.resumed(t0 + ms(420));
        assert_eq!(w.heard(&m("a"), t0 + ms(420), d), None);
        assert_eq!(w.heard(&m("a"), t0 + ms(520), d), None);
        // b stays silent: suspected a deadline after the resumption.
        assert_eq!(w.heard(&m("a"), t0 + ms(540), d), Some(vec![m("b")]));
        w.resumed(t0 + ms(600));
        assert!(w.suspects().is_empty());
    }
}

//! The detector's state machine: beats in and out, which peers are lost
//! and condemned, and how long this node may keep answering. Pure logic on
//! [`Beat`]s and instants, no I/O, no clock of its own.
//!
//! The rules, and why they make a condemned node silent first:
//!
//! - **Echo.** Every beat echoes the latest stamp of each peer the sender
//!   hears. A node's *echo* from peer p, `e_p`, is its own latest stamp that
//!   p echoed back, on its own clock: p received it no earlier than `e_p`.
//! - **Armed.** p may only ever report S lost once S is known to count p's
//!   echoes: S echoed a stamp of p's at or after the first beat in which p
//!   echoed S (a three-way handshake). Before that, S cannot know p watches
//!   it, and p's silence about S means nothing.
//! - **Lost.** p loses an armed S after `deadline` without a beat from it,
//!   and then never echoes S again while S stays in its view, and lists S as
//!   lost in every beat. So every stamp of S's that p ever echoed was
//!   received at least `deadline` before p reported the loss.
//! - **Condemned.** S is condemned at node C when C has lost it and more
//!   than half of the view's n members have: C plus the peers C heard
//!   within `deadline` whose latest beat lists S as lost.
//! - **Lease.** S answers only until `kth(e_p) + lease`, where kth is the
//!   k-th most recent echo among its peers and k = (n - 1) / 2 (no limit
//!   when k = 0, i.e. two members, or when no peer has echoed S yet: nobody
//!   armed it, nobody can condemn it). If C condemns S at t, more than n/2
//!   members lost S, each with every echo of S at or before t - deadline, so
//!   at most floor(n/2) = n - 1 - k of S's peers echoed S after t -
//!   deadline, so kth(e_p) <= t - deadline and S fell silent at t -
//!   (deadline - lease) at the latest: the margin covers the kernel's last
//!   answers and the successor's own processing.
//!
//! A crash, a frozen agent or a cut cable on S makes every peer lose S one
//! deadline after its last beat; they report it in their next beats, and the
//! first to see a majority condemns. An asymmetric fault (one link, one
//! direction) loses S at one peer only: no majority, nobody condemns, and
//! S's lease lives on the other peers' echoes; the engine's view decides.
//! Two members alone never condemn (no majority without the other).
//!
//! **Answering.** Every beat says whether its sender answers any VIP at
//! all. A member that leaves the view but keeps beating stays known as a
//! *ghost* (never echoed, never counted in a lease) until it falls silent
//! or goes unheard for [`Timing::silent_after`]: [`Detector::answering`]
//! names the members, in the view or not, that beat lately and still
//! answer, so the agent leaves their VIFs alone until they stop (a ring
//! split by a lossy link while the LAN still carries beats is not a
//! partition: both sides would answer).
//!
//! **The handshake** (agents acting on the detector, version 3 beats).
//! A member that takes a condemned member's VIFs before the group agrees
//! (a *provisional* holder) races the agreed stream: an agreed change it
//! has not processed yet (a balance move, a carrier change) may give such
//! a VIF to a peer that processed it already and answers. Every beat
//! carries its sender's agreed position in its view and whether it holds
//! VIFs provisionally, and two rules order the two:
//!
//! - A provisional holder raises its flag and answers only once every
//!   peer of its view but the condemned has sent a beat that echoes one
//!   of its stamps from after the raise, names its view, and a position no
//!   further than its own ([`Detector::provisional_may_answer`]): any
//!   change that peer had processed, it has processed too (and let go what
//!   the change gives away); any change the peer processes later, it
//!   processes having seen the flag.
//! - A member that acquires a VIF while a peer's latest beat carries the
//!   flag ([`Detector::provisional_peers`]) answers it only once each such
//!   peer has sent a beat without the flag that echoes one of its stamps
//!   from after the acquisition ([`Detector::cleared_since`]), or was
//!   condemned, or left the view. A holder lowers its flag only once its
//!   data path no longer answers a VIF it took provisionally.
//!
//! Positions are published before they are acted on: a beat never claims
//! less than its sender has answered by.

use super::beat::{view_digest, Act, Beat, Echo, MAX_ECHOES, MAX_ID};
use super::Timing;
use crate::membership::MemberId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Peer {
    /// When its latest beat came (my clock).
    heard: Option<Instant>,
    /// Its latest stamp (echoed back to it).
    stamp: u64,
    /// My latest stamp it echoed back, on my clock.
    echoed: Option<Instant>,
    /// My first beat that echoed it (the handshake, see the module).
    echo_since: Option<u64>,
    /// It echoed a beat of mine that echoed it: it counts my echoes in its
    /// lease, so it may be lost and condemned.
    armed: bool,
    /// I lost it (final while it stays in the view).
    lost: bool,
    /// The members its latest beat lists as lost.
    reports: BTreeSet<MemberId>,
    /// Its latest beat said it answers no VIP.
    silent: bool,
    /// The view its latest beat named (0: none or unknown).
    view: u64,
    /// My latest stamp it echoed (the handshake compares stamps).
    echoed_stamp: Option<u64>,
    /// Its latest beat's handshake news (`None`: version 2 or earlier).
    act: Option<Act>,
}

/// A member that left the view and still beats (see the module).
#[derive(Debug)]
struct Ghost {
    heard: Instant,
    stamp: u64,
    silent: bool,
    view: u64,
}

/// What a member's latest beat said of its view.
#[derive(Debug)]
struct HeardView {
    at: Instant,
    view: u64,
    /// The members it echoed or listed as lost: the others of its view
    /// it heard in it.
    mates: BTreeSet<MemberId>,
}

/// The most ghosts kept (the least recently heard go first): views come
/// and go, each restarted agent is a new member.
const MAX_GHOSTS: usize = 64;

/// What one [`Detector::poll`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Polled {
    /// Peers lost now.
    pub lost: Vec<MemberId>,
    /// Peers condemned now.
    pub condemned: Vec<MemberId>,
}

/// What the handshake needs of one peer (see [`Handshake`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerHandshake {
    /// My latest stamp it echoed.
    pub echoed: Option<u64>,
    /// Its latest beat carries the provisional flag.
    pub provisional: bool,
}

/// The handshake as the agent reads it (published by the beat thread; see
/// the module's comment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handshake {
    /// The first rule holds ([`Detector::provisional_may_answer`]).
    pub may_answer: bool,
    /// The peers whose flag is up ([`Detector::provisional_peers`]).
    pub flagged: BTreeSet<MemberId>,
    /// The peers of my view, the condemned left out.
    pub peers: BTreeMap<MemberId, PeerHandshake>,
}

impl Handshake {
    /// The second rule (see [`Detector::cleared_since`]): a member no
    /// longer among `peers` (condemned, or out of the view) is cleared.
    pub fn cleared_since(&self, since: u64, waited: &BTreeSet<MemberId>) -> bool {
        waited.iter().all(|m| {
            self.peers
                .get(m)
                .is_none_or(|p| p.echoed.is_some_and(|e| e >= since) && !p.provisional)
        })
    }
}

/// Why a beat was not counted (for the metrics; never an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Another cluster's (its group tag differs).
    OtherGroup,
    /// Sent by a process not in my view (yet), or by me.
    NotAPeer,
    /// Older than a beat already counted (reordered).
    Stale,
}

#[derive(Debug)]
pub struct Detector {
    timing: Timing,
    group: u64,
    /// Stamps are nanoseconds since this instant.
    epoch: Instant,
    me: MemberId,
    /// The view's size (mine included); 0: no view, or one too large.
    n: usize,
    peers: BTreeMap<MemberId, Peer>,
    /// My latest stamp sent (an echo of a later one is forged or corrupt).
    sent: u64,
    condemned: BTreeSet<MemberId>,
    ghosts: BTreeMap<MemberId, Ghost>,
    /// What my beats say: this node answers no VIP now.
    silent: bool,
    /// My view's digest (0: none).
    digest: u64,
    /// When each member was last heard, the view its beat named (not 0)
    /// and its mates in it, for [`Timing::recall`]: see
    /// [`Detector::beating_elsewhere`] and [`Detector::mates`].
    views_heard: BTreeMap<MemberId, HeardView>,
    /// What my beats say of the handshake (`None`: version 2 beats, an
    /// agent that does not act on the detector).
    act: Option<Act>,
    /// The first stamp my beats carry the provisional flag with, since it
    /// was last raised.
    raised: Option<u64>,
}

/// Drops the least recently heard members (by `heard`) until at most
/// `max` are left.
fn keep_latest<V>(map: &mut BTreeMap<MemberId, V>, max: usize, heard: impl Fn(&V) -> Instant) {
    while map.len() > max {
        let oldest = (map.iter())
            .min_by_key(|(_, v)| heard(v))
            .map(|(m, _)| m.clone());
        match oldest {
            Some(m) => map.remove(&m),
            None => break,
        };
    }
}

impl Detector {
    pub fn new(me: MemberId, group: u64, timing: Timing, now: Instant) -> Self {
        Detector {
            timing,
            group,
            epoch: now,
            me,
            n: 0,
            peers: BTreeMap::new(),
            sent: 0,
            condemned: BTreeSet::new(),
            ghosts: BTreeMap::new(),
            views_heard: BTreeMap::new(),
            silent: false,
            digest: 0,
            act: None,
            raised: None,
        }
    }

    pub fn me(&self) -> &MemberId {
        &self.me
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// A new view. Peers that stay keep what is known of them (lost and
    /// condemned included: only leaving the view clears them); new ones
    /// start unheard. A view of more than `MAX_ECHOES + 1` members, or with
    /// an id too long for a beat, switches the detector off until the next.
    pub fn view(&mut self, members: &[MemberId]) {
        let fits = members.len() <= MAX_ECHOES + 1
            && members
                .iter()
                .all(|m| !m.0.is_empty() && m.0.len() <= MAX_ID)
            && members.contains(&self.me);
        if !fits {
            self.clear();
            return;
        }
        self.n = members.len();
        self.digest = view_digest(members);
        let keep: BTreeSet<&MemberId> = members.iter().filter(|m| **m != self.me).collect();
        let departed: Vec<MemberId> = self
            .peers
            .keys()
            .filter(|m| !keep.contains(m))
            .cloned()
            .collect();
        for m in departed {
            self.haunt(m);
        }
        self.condemned.retain(|m| keep.contains(m));
        for m in keep {
            // A ghost back in the view is still heard, answering or not: as
            // a fresh peer it would look silent until its next beat, and
            // the guard would take its VIFs meanwhile.
            let ghost = self.ghosts.remove(m);
            self.peers.entry(m.clone()).or_insert_with(|| match ghost {
                Some(g) => Peer {
                    heard: Some(g.heard),
                    stamp: g.stamp,
                    silent: g.silent,
                    view: g.view,
                    ..Peer::default()
                },
                None => Peer::default(),
            });
        }
        for p in self.peers.values_mut() {
            p.reports.retain(|m| members.contains(m));
        }
    }

    /// Whether `members` are those of my view (in any order).
    pub fn has_members(&self, members: &[MemberId]) -> bool {
        self.n == members.len()
            && members
                .iter()
                .all(|m| *m == self.me || self.peers.contains_key(m))
    }

    /// No view (the engine is lost, or this node left).
    pub fn clear(&mut self) {
        self.n = 0;
        self.digest = 0;
        self.peers.clear();
        self.condemned.clear();
        self.ghosts.clear();
    }

    /// A peer left the view: kept as a ghost if it was ever heard.
    fn haunt(&mut self, m: MemberId) {
        let Some(p) = self.peers.remove(&m) else {
            return;
        };
        let Some(heard) = p.heard else { return };
        self.ghosts.insert(
            m,
            Ghost {
                heard,
                stamp: p.stamp,
                silent: p.silent,
                view: p.view,
            },
        );
        self.bound_ghosts();
    }

    /// A beat from a member outside the view: a ghost's news of itself
    /// only (its echoes and reports count for nothing). Any member may
    /// become one, not only those that left the view: a ghost forgotten
    /// after a silence (a stall of this host, a burst of loss) must be
    /// known again as soon as it beats, and so must a member that was in
    /// another view all along.
    fn haunted(&mut self, beat: &Beat, now: Instant) -> Result<(), Ignored> {
        if let Some(g) = self.ghosts.get_mut(&beat.sender) {
            if beat.stamp <= g.stamp {
                return Err(Ignored::Stale);
            }
            g.heard = now;
            g.stamp = beat.stamp;
            g.silent = beat.silent;
            g.view = beat.view;
            return Ok(());
        }
        self.ghosts.insert(
            beat.sender.clone(),
            Ghost {
                heard: now,
                stamp: beat.stamp,
                silent: beat.silent,
                view: beat.view,
            },
        );
        self.bound_ghosts();
        Ok(())
    }

    /// At most [`MAX_GHOSTS`]: the least recently heard go.
    fn bound_ghosts(&mut self) {
        keep_latest(&mut self.ghosts, MAX_GHOSTS, |g| g.heard);
    }

    /// Whether this node answers no VIP now (said in every beat from the
    /// next one on).
    pub fn set_silent(&mut self, silent: bool) {
        self.silent = silent;
    }

    /// When `member` (in the view or a ghost) was last heard, and whether
    /// that beat said it answers nothing; `None` if never heard or
    /// forgotten (a ghost unheard for [`Timing::silent_after`]).
    pub fn last_heard(&self, member: &MemberId) -> Option<(Instant, bool)> {
        match self.peers.get(member) {
            Some(p) => p.heard.map(|at| (at, p.silent)),
            None => self.ghosts.get(member).map(|g| (g.heard, g.silent)),
        }
    }

    /// The members, in the view or ghosts, heard within
    /// [`Timing::silent_after`] whose latest beat says they answer.
    pub fn answering(&self, now: Instant) -> BTreeSet<MemberId> {
        self.answerers(now).map(|(m, _)| m.clone()).collect()
    }

    /// Those of [`answering`](Self::answering) whose latest beat named
    /// another view than mine (none known: not counted): a ring split
    /// while the LAN still carries their beats and ARP answers.
    pub fn answering_elsewhere(&self, now: Instant) -> BTreeSet<MemberId> {
        self.answerers(now)
            .filter(|(_, view)| *view != 0 && *view != self.digest)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// The view each member heard within [`Timing::silent_after`] named in
    /// its latest beat (none known: left out), answering or not: which
    /// members share a view, so that whose table holds a silent member's
    /// VIFs is known ([`crate::daemon::beats::Snapshot::views`]).
    pub fn views(&self, now: Instant) -> BTreeMap<MemberId, u64> {
        self.recent(now)
            .filter(|(_, _, view)| *view != 0)
            .map(|(m, _, view)| (m.clone(), view))
            .collect()
    }

    /// The members each member heard within [`Timing::silent_after`]
    /// named in its latest beat (echoed, or lost): the others of its view
    /// it heard. A view's digest only tells who shares it once each member
    /// beat in it; a member's mates tell it at its first beat there (after
    /// a merge, the member that hands its VIFs over may say so before the
    /// one taking them names the new view).
    pub fn mates(&self, now: Instant) -> BTreeMap<MemberId, BTreeSet<MemberId>> {
        let silent_after = self.timing.silent_after();
        (self.views_heard.iter())
            .filter(|(_, h)| h.at + silent_after > now && !h.mates.is_empty())
            .map(|(m, h)| (m.clone(), h.mates.clone()))
            .collect()
    }

    /// The members heard within [`Timing::recall`], answering or not,
    /// whose latest beat named another view than mine: those that may
    /// revive in their view when this node does in its own. A long memory
    /// on purpose: after a stall of the whole host nobody has beaten for a
    /// while, and all of them wake together.
    pub fn beating_elsewhere(&self, now: Instant) -> BTreeSet<MemberId> {
        let recall = self.timing.recall();
        (self.views_heard.iter())
            .filter(|(_, h)| h.at + recall > now && h.view != self.digest)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// The members heard within `silent_after` that answer, with the view
    /// each named.
    fn answerers(&self, now: Instant) -> impl Iterator<Item = (&MemberId, u64)> {
        self.recent(now)
            .filter(|(_, silent, _)| !silent)
            .map(|(m, _, view)| (m, view))
    }

    /// The members, in the view or ghosts, heard within `silent_after`:
    /// whether their latest beat said silent, and the view it named.
    fn recent(&self, now: Instant) -> impl Iterator<Item = (&MemberId, bool, u64)> {
        let recent = move |heard: Instant| heard + self.timing.silent_after() > now;
        let peers = (self.peers.iter())
            .filter(move |(_, p)| p.heard.is_some_and(recent))
            .map(|(m, p)| (m, p.silent, p.view));
        let ghosts = (self.ghosts.iter())
            .filter(move |(_, g)| recent(g.heard))
            .map(|(m, g)| (m, g.silent, g.view));
        peers.chain(ghosts)
    }

    /// The handshake's news for my beats from the next one on: my agreed
    /// position in my view, and whether I hold VIFs provisionally (see the
    /// module). Call it before acting on the message that moves the
    /// position.
    pub fn set_act(&mut self, act: Act) {
        match (self.raised, act.provisional) {
            (None, true) => self.raised = Some(self.next_stamp()),
            (Some(_), false) => self.raised = None,
            _ => {}
        }
        self.act = Some(act);
    }

    /// A stamp no beat sent so far carries, and the next one will carry at
    /// least: an echo of it or later proves the echoing peer heard from me
    /// after now.
    pub fn next_stamp(&self) -> u64 {
        self.sent.saturating_add(1)
    }

    /// The handshake's first rule: I hold VIFs provisionally, and every
    /// peer of my view but the condemned echoed a stamp of mine from after
    /// the raise in a beat that named my view and a position no further
    /// than mine. False without a view, without the flag raised, or while
    /// any such peer is unheard, lost, or speaks an earlier version.
    pub fn provisional_may_answer(&self) -> bool {
        let (Some(raised), Some(mine)) = (self.raised, self.act) else {
            return false;
        };
        self.n > 0
            && (self.peers.iter())
                .filter(|(m, _)| !self.condemned.contains(*m))
                .all(|(_, p)| {
                    !p.lost
                        && p.view == self.digest
                        && p.echoed_stamp.is_some_and(|e| e >= raised)
                        && p.act.is_some_and(|a| a.position <= mine.position)
                })
    }

    /// The peers of my view, not condemned, whose latest beat carries the
    /// provisional flag: an acquisition now answers only once each of them
    /// is [cleared](Self::cleared_since).
    pub fn provisional_peers(&self) -> BTreeSet<MemberId> {
        (self.peers.iter())
            .filter(|(m, p)| !self.condemned.contains(*m) && p.act.is_some_and(|a| a.provisional))
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// The handshake's second rule, for an acquisition made when
    /// [`next_stamp`](Self::next_stamp) was `since` while `peers` carried
    /// the flag: each has since sent a beat without it that echoes `since`
    /// or later, or was condemned, or left my view (the view's own rules
    /// for departed members apply to it then).
    pub fn cleared_since(&self, since: u64, peers: &BTreeSet<MemberId>) -> bool {
        self.handshake().cleared_since(since, peers)
    }

    /// The handshake's state, for the agent (see [`Handshake`]).
    pub fn handshake(&self) -> Handshake {
        Handshake {
            may_answer: self.provisional_may_answer(),
            flagged: self.provisional_peers(),
            peers: (self.peers.iter())
                .filter(|(m, _)| !self.condemned.contains(*m))
                .map(|(m, p)| {
                    let news = PeerHandshake {
                        echoed: p.echoed_stamp,
                        provisional: p.act.is_some_and(|a| a.provisional),
                    };
                    (m.clone(), news)
                })
                .collect(),
        }
    }

    fn stamp_of(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// My beat, to send to every peer now.
    pub fn beat(&mut self, now: Instant) -> Beat {
        let stamp = self.stamp_of(now).max(self.sent);
        self.sent = stamp;
        let mut echoes = Vec::new();
        let mut lost = Vec::new();
        for (m, p) in &mut self.peers {
            if p.lost {
                lost.push(m.clone());
                continue;
            }
            let Some(heard) = p.heard else { continue };
            let age = now.saturating_duration_since(heard).as_micros();
            echoes.push(Echo {
                member: m.clone(),
                stamp: p.stamp,
                age_us: u32::try_from(age).unwrap_or(u32::MAX),
            });
            p.echo_since.get_or_insert(stamp);
        }
        Beat {
            group: self.group,
            sender: self.me.clone(),
            stamp,
            echoes,
            lost,
            silent: self.silent,
            view: self.digest,
            act: self.act,
        }
    }

    /// A peer's beat, received at `now`.
    pub fn receive(&mut self, beat: &Beat, now: Instant) -> Result<(), Ignored> {
        if beat.group != self.group {
            return Err(Ignored::OtherGroup);
        }
        let sent = self.sent;
        let epoch = self.epoch;
        let me = self.me.clone();
        if beat.sender == me {
            return Err(Ignored::NotAPeer);
        }
        let Some(p) = self.peers.get_mut(&beat.sender) else {
            let r = self.haunted(beat, now);
            if r.is_ok() {
                self.heard_view(beat, now);
            }
            return r;
        };
        if p.heard.is_some() && beat.stamp <= p.stamp {
            return Err(Ignored::Stale);
        }
        p.heard = Some(now);
        p.stamp = beat.stamp;
        p.silent = beat.silent;
        p.view = beat.view;
        p.act = beat.act;
        // Its news of me, unless it claims a stamp I never sent.
        if let Some(e) = beat.echoes.iter().find(|e| e.member == me) {
            if e.stamp <= sent {
                let at = epoch + Duration::from_nanos(e.stamp);
                p.echoed = Some(p.echoed.map_or(at, |old| old.max(at)));
                p.echoed_stamp = Some(p.echoed_stamp.map_or(e.stamp, |old| old.max(e.stamp)));
                if p.echo_since.is_some_and(|since| e.stamp >= since) {
                    p.armed = true;
                }
            }
        }
        p.reports = beat.lost.iter().cloned().collect();
        self.heard_view(beat, now);
        Ok(())
    }

    /// Remembers the view an accepted beat named, for [`Timing::recall`]
    /// (at most [`MAX_GHOSTS`] twice over: the least recently heard go).
    fn heard_view(&mut self, beat: &Beat, now: Instant) {
        if beat.view == 0 {
            return;
        }
        let mates = (beat.echoes.iter().map(|e| &e.member))
            .chain(&beat.lost)
            .cloned()
            .collect();
        let heard = HeardView {
            at: now,
            view: beat.view,
            mates,
        };
        self.views_heard.insert(beat.sender.clone(), heard);
        keep_latest(&mut self.views_heard, 2 * MAX_GHOSTS, |h| h.at);
    }

    /// Loses the armed peers silent for the deadline; returns the peers
    /// lost and those condemned by this call (each once while it stays in
    /// the view).
    pub fn poll(&mut self, now: Instant) -> Polled {
        let mut polled = Polled::default();
        let silent_after = self.timing.silent_after();
        self.ghosts.retain(|_, g| g.heard + silent_after > now);
        let recall = self.timing.recall();
        self.views_heard.retain(|_, h| h.at + recall > now);
        if self.n == 0 {
            return polled;
        }
        let deadline = self.timing.deadline;
        for (m, p) in &mut self.peers {
            if p.armed && !p.lost && p.heard.is_some_and(|h| h + deadline <= now) {
                p.lost = true;
                polled.lost.push(m.clone());
            }
        }
        let mut newly = Vec::new();
        for (s, p) in &self.peers {
            if !p.lost || self.condemned.contains(s) {
                continue;
            }
            let witnesses = self
                .peers
                .iter()
                .filter(|(x, xp)| {
                    *x != s
                        && xp.heard.is_some_and(|h| h + deadline > now)
                        && xp.reports.contains(s)
                })
                .count();
            if 2 * (1 + witnesses) > self.n {
                newly.push(s.clone());
            }
        }
        self.condemned.extend(newly.iter().cloned());
        polled.condemned = newly;
        polled
    }

    /// Until when this node may answer, by its peers' echoes; `None`: no
    /// limit from the detector (no view, two members, or nobody has echoed
    /// it: nobody can condemn it).
    pub fn lease_until(&self) -> Option<Instant> {
        let k = self.n.saturating_sub(1) / 2;
        if k == 0 {
            return None;
        }
        let mut echoes: Vec<Instant> = self.peers.values().filter_map(|p| p.echoed).collect();
        if echoes.is_empty() {
            return None;
        }
        echoes.sort_unstable_by(|a, b| b.cmp(a));
        // Fewer echoers than k: silent (the epoch is long past).
        let kth = echoes.get(k - 1).copied().unwrap_or(self.epoch);
        Some(kth.max(self.epoch) + self.timing.lease())
    }

    /// Whether the echo fence has closed by `now` (see
    /// [`lease_until`](Self::lease_until)).
    pub fn fenced(&self, now: Instant) -> bool {
        self.lease_until().is_some_and(|u| u <= now)
    }

    /// When [`poll`](Self::poll) may next lose a peer (the earliest
    /// deadline of an armed peer not lost yet).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter(|p| p.armed && !p.lost)
            .filter_map(|p| p.heard)
            .min()
            .map(|h| h + self.timing.deadline)
    }

    /// The peers I lost (while they stay in the view).
    pub fn lost(&self) -> impl Iterator<Item = &MemberId> {
        self.peers.iter().filter(|(_, p)| p.lost).map(|(m, _)| m)
    }

    pub fn condemned(&self) -> &BTreeSet<MemberId> {
        &self.condemned
    }
}

#[cfg(test)]
mod tests {
    //! A small seeded network of detectors: beats every interval with
    //! jitter, delays, loss, cut links, frozen and crashed nodes. Inline
    //! checks: whenever a node condemns S, the lease S last wrote to its
    //! data path ended one margin before (the module's proof).
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// xorshift64*: deterministic per seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn chance(&mut self, per_mille: u64) -> bool {
            self.below(1000) < per_mille
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Life {
        Alive,
        Frozen { until: u64 },
        Crashed,
    }

    struct Node {
        d: Detector,
        life: Life,
        /// Beats that arrived while frozen, read at the thaw.
        backlog: Vec<Beat>,
        /// What the data path holds: the lease last written (`None`: no limit).
        written: Option<Instant>,
        next_beat: u64,
    }

    struct Net {
        t0: Instant,
        now_us: u64,
        nodes: Vec<Node>,
        /// `up[i][j]`: i's beats reach j.
        up: Vec<Vec<bool>>,
        loss_per_mille: u64,
        max_delay_us: u64,
        flight: Vec<(u64, usize, Beat)>,
        rng: Rng,
        timing: Timing,
        /// (time µs, condemner, condemned).
        condemnations: Vec<(u64, usize, usize)>,
    }

    fn id(i: usize) -> MemberId {
        MemberId(format!("m{i}"))
    }

    impl Net {
        fn new(n: usize, seed: u64) -> Net {
            let t0 = Instant::now();
            let timing = Timing::DEFAULT;
            let members: Vec<MemberId> = (0..n).map(id).collect();
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let nodes = (0..n)
                .map(|i| {
                    let mut d = Detector::new(id(i), 42, timing, t0);
                    d.view(&members);
                    Node {
                        d,
                        life: Life::Alive,
                        backlog: Vec::new(),
                        written: None,
                        next_beat: rng.below(timing.interval.as_micros() as u64),
                    }
                })
                .collect();
            Net {
                t0,
                now_us: 0,
                nodes,
                up: vec![vec![true; n]; n],
                loss_per_mille: 0,
                max_delay_us: 500,
                flight: Vec::new(),
                rng,
                timing,
                condemnations: Vec::new(),
            }
        }

        fn at(&self, us: u64) -> Instant {
            self.t0 + Duration::from_micros(us)
        }

        fn margin(&self) -> Duration {
            self.timing.deadline - self.timing.lease()
        }

        /// Node i takes in a beat and runs its checks, then writes its lease.
        fn process(&mut self, i: usize, beat: Option<Beat>) {
            let now = self.at(self.now_us);
            if let Some(b) = beat {
                let _ = self.nodes[i].d.receive(&b, now);
            }
            for s in self.nodes[i].d.poll(now).condemned {
                let s = (0..self.nodes.len()).find(|&k| id(k) == s).unwrap();
                let written = self.nodes[s].written;
                let until = written.unwrap_or_else(|| {
                    panic!(
                        "{i} condemned {s} at {} µs, whose lease has no limit",
                        self.now_us
                    )
                });
                assert!(
                    until + self.margin() <= now,
                    "{i} condemned {s} at {} µs; its lease runs to {:?} µs",
                    self.now_us,
                    until.duration_since(self.t0).as_micros()
                );
                self.condemnations.push((self.now_us, i, s));
            }
            self.nodes[i].written = self.nodes[i].d.lease_until();
        }

        fn step_to(&mut self, end_us: u64) {
            let step = 100;
            while self.now_us < end_us {
                self.now_us += step;
                let now_us = self.now_us;
                // Thaws: the backlog is read at once.
                for i in 0..self.nodes.len() {
                    if let Life::Frozen { until } = self.nodes[i].life {
                        if until <= now_us {
                            self.nodes[i].life = Life::Alive;
                            for b in std::mem::take(&mut self.nodes[i].backlog) {
                                self.process(i, Some(b));
                            }
                        }
                    }
                }
                // Deliveries due.
                let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flight)
                    .into_iter()
                    .partition(|f| f.0 <= now_us);
                self.flight = later;
                for (_, to, beat) in due {
                    match self.nodes[to].life {
                        Life::Alive => self.process(to, Some(beat)),
                        Life::Frozen { .. } => self.nodes[to].backlog.push(beat),
                        Life::Crashed => {}
                    }
                }
                // Beats and checks of the live nodes.
                for i in 0..self.nodes.len() {
                    if self.nodes[i].life != Life::Alive {
                        continue;
                    }
                    self.process(i, None);
                    if self.nodes[i].next_beat <= now_us {
                        let jitter = self.rng.below(1000);
                        self.nodes[i].next_beat =
                            now_us + self.timing.interval.as_micros() as u64 - 500 + jitter;
                        let at = self.at(now_us);
                        let beat = self.nodes[i].d.beat(at);
                        for j in 0..self.nodes.len() {
                            if j == i || !self.up[i][j] || self.rng.chance(self.loss_per_mille) {
                                continue;
                            }
                            let delay = self.rng.below(self.max_delay_us + 1);
                            self.flight.push((now_us + 20 + delay, j, beat.clone()));
                        }
                    }
                }
            }
        }

        fn cut(&mut self, i: usize) {
            for j in 0..self.nodes.len() {
                self.up[i][j] = false;
                self.up[j][i] = false;
            }
        }

        fn condemned_by(&self, s: usize) -> BTreeSet<usize> {
            self.condemnations
                .iter()
                .filter(|c| c.2 == s)
                .map(|c| c.1)
                .collect()
        }

        fn answering(&self, i: usize) -> bool {
            self.nodes[i]
                .written
                .is_none_or(|u| u > self.at(self.now_us))
        }
    }

    #[test]
    fn a_quiet_lan_condemns_nobody_and_keeps_every_lease() {
        for n in 2..=7 {
            let mut net = Net::new(n, n as u64);
            net.step_to(3_000_000);
            assert!(net.condemnations.is_empty(), "{n} nodes");
            for i in 0..n {
                assert!(net.answering(i), "{n} nodes: node {i} fenced");
                assert_eq!(net.nodes[i].d.lost().count(), 0);
                // Two members: no limit (nobody could condemn); more: one.
                assert_eq!(net.nodes[i].written.is_none(), n == 2, "{n} nodes");
            }
        }
    }

    #[test]
    fn a_crashed_or_cut_off_node_is_condemned_within_the_deadline_and_two_beats() {
        for n in 3..=7 {
            for cut in [false, true] {
                let mut net = Net::new(n, 7 + n as u64);
                net.step_to(1_000_000);
                let t = net.now_us;
                if cut {
                    net.cut(0);
                } else {
                    net.nodes[0].life = Life::Crashed;
                }
                net.step_to(t + 200_000);
                let by = net.condemned_by(0);
                assert_eq!(by, (1..n).collect(), "{n} nodes, cut {cut}");
                let latest = net.condemnations.iter().map(|c| c.0).max().unwrap();
                let bound = (net.timing.deadline + 2 * net.timing.interval).as_micros() as u64;
                assert!(
                    latest - t <= bound + 1_000,
                    "{n} nodes: condemned {} µs after the fault",
                    latest - t
                );
                assert!(!net.answering(0), "the cut-off node is fenced");
                for i in 1..n {
                    assert!(net.answering(i), "survivor {i} keeps answering");
                }
            }
        }
    }

    #[test]
    fn two_members_never_condemn_each_other() {
        let mut net = Net::new(2, 3);
        net.step_to(500_000);
        net.cut(0);
        net.step_to(1_500_000);
        assert!(net.condemnations.is_empty());
        assert!(net.answering(0) && net.answering(1));
    }

    #[test]
    fn one_broken_link_condemns_nobody_and_fences_nobody() {
        for n in 3..=6 {
            for both_ways in [false, true] {
                let mut net = Net::new(n, 11 + n as u64);
                net.step_to(500_000);
                net.up[0][1] = false;
                if both_ways {
                    net.up[1][0] = false;
                }
                net.step_to(2_000_000);
                assert!(net.condemnations.is_empty(), "{n} nodes");
                for i in 0..n {
                    assert!(
                        net.answering(i),
                        "{n} nodes, both ways {both_ways}: {i} fenced"
                    );
                }
            }
        }
    }

    #[test]
    fn a_frozen_node_is_condemned_and_stays_silent_after_its_thaw() {
        let mut net = Net::new(3, 5);
        net.step_to(500_000);
        net.nodes[2].life = Life::Frozen { until: 600_000 };
        net.step_to(1_500_000);
        assert_eq!(net.condemned_by(2), [0, 1].into());
        assert!(!net.answering(2), "echoes never come back in this view");
        assert!(net.answering(0) && net.answering(1));
        // A new view without it (the engine's verdict) and one with it
        // again (it rejoined): a fresh start, answering again.
        let without: Vec<MemberId> = (0..2).map(id).collect();
        for i in 0..2 {
            net.nodes[i].d.view(&without);
        }
        net.step_to(1_600_000);
        let all: Vec<MemberId> = (0..3).map(id).collect();
        for i in 0..3 {
            net.nodes[i].d.view(&all);
        }
        net.nodes[2].d.clear();
        net.nodes[2].d.view(&all);
        net.step_to(2_000_000);
        assert!(net.answering(2));
        assert!(net.nodes.iter().all(|n| n.d.lost().count() == 0));
    }

    #[test]
    fn a_short_stall_is_not_a_loss() {
        let mut net = Net::new(3, 9);
        net.step_to(500_000);
        let stall = (net.timing.deadline - ms(10)).as_micros() as u64;
        net.nodes[1].life = Life::Frozen {
            until: 500_000 + stall,
        };
        net.step_to(1_500_000);
        assert!(net.condemnations.is_empty());
    }

    #[test]
    fn random_faults_never_condemn_a_node_still_answering() {
        // The invariant is checked inside `process`; here only schedules.
        for seed in 0..300u64 {
            let n = 3 + (seed % 5) as usize;
            let mut net = Net::new(n, seed);
            net.loss_per_mille = [0, 20, 100, 300][(seed % 4) as usize];
            net.max_delay_us = [200, 2_000, 10_000][(seed % 3) as usize];
            // Some links broken from the start: pairs that never finish
            // their handshake.
            for _ in 0..seed % 3 {
                let i = net.rng.below(n as u64) as usize;
                let j = net.rng.below(n as u64) as usize;
                net.up[i][j] = false;
            }
            let mut t = 200_000;
            net.step_to(t);
            for _ in 0..12 {
                let i = net.rng.below(n as u64) as usize;
                let j = net.rng.below(n as u64) as usize;
                match net.rng.below(6) {
                    0 => net.up[i][j] = !net.up[i][j],
                    1 => net.cut(i),
                    2 if net.nodes[i].life == Life::Alive => {
                        let f = t + 10_000 + net.rng.below(120_000);
                        net.nodes[i].life = Life::Frozen { until: f };
                    }
                    3 => net.nodes[i].life = Life::Crashed,
                    4 => {
                        for row in net.up.iter_mut() {
                            row.iter_mut().for_each(|u| *u = true);
                        }
                    }
                    _ => {}
                }
                t += 20_000 + net.rng.below(80_000);
                net.step_to(t);
            }
        }
    }

    #[test]
    fn an_echo_of_a_beat_that_did_not_echo_back_arms_nothing() {
        // B and C beat before they hear A; A hears them and echoes; then
        // nothing of theirs reaches A again, and A falls silent. A never got
        // an echo (no limit on its lease): they must not condemn it.
        let t0 = Instant::now();
        let mut d = three(t0);
        let b1 = d[1].beat(t0 + ms(1));
        let c1 = d[2].beat(t0 + ms(1));
        d[0].receive(&b1, t0 + ms(2)).unwrap();
        d[0].receive(&c1, t0 + ms(2)).unwrap();
        let a1 = d[0].beat(t0 + ms(3));
        for peer in &mut d[1..] {
            peer.receive(&a1, t0 + ms(4)).unwrap();
            // Their beats now echo A, but none reaches it.
            let _ = peer.beat(t0 + ms(5));
        }
        assert_eq!(d[0].lease_until(), None);
        for k in 6..200 {
            let now = t0 + ms(k);
            let b = d[1].beat(now);
            let c = d[2].beat(now);
            d[1].receive(&c, now).unwrap();
            d[2].receive(&b, now).unwrap();
            assert!(
                d[1].poll(now).condemned.is_empty() && d[2].poll(now).condemned.is_empty(),
                "{k} ms"
            );
        }
    }

    #[test]
    fn forged_and_foreign_beats_change_nothing() {
        let t0 = Instant::now();
        let members: Vec<MemberId> = (0..3).map(id).collect();
        let mut d = Detector::new(id(0), 42, Timing::DEFAULT, t0);
        d.view(&members);
        let mut b = Beat {
            group: 43,
            sender: id(1),
            stamp: 5,
            echoes: vec![Echo {
                member: id(0),
                stamp: u64::MAX,
                age_us: 0,
            }],
            lost: vec![id(2)],
            silent: false,
            view: 0,
            act: None,
        };
        assert_eq!(d.receive(&b, t0), Err(Ignored::OtherGroup));
        b.group = 42;
        // A stranger is a ghost: its news of itself counts, nothing else.
        b.sender = id(9);
        assert_eq!(d.receive(&b, t0), Ok(()));
        assert_eq!(d.lease_until(), None);
        assert_eq!(d.answering(t0), [id(9)].into());
        assert!(d.beat(t0).echoes.is_empty());
        b.sender = id(0);
        assert_eq!(d.receive(&b, t0), Err(Ignored::NotAPeer), "my own");
        b.sender = id(1);
        assert_eq!(d.receive(&b, t0), Ok(()));
        assert_eq!(d.lease_until(), None, "an echo of a stamp never sent");
        assert_eq!(d.receive(&b, t0), Err(Ignored::Stale));
        // A view too large for a beat switches the detector off.
        let big: Vec<MemberId> = (0..=MAX_ECHOES + 1).map(id).collect();
        d.view(&big);
        assert_eq!(d.poll(t0 + ms(1000)), Polled::default());
        assert_eq!(d.lease_until(), None);
        assert!(d.beat(t0).echoes.is_empty());
    }

    /// Three detectors, m0 to m2, in one view.
    fn three(t0: Instant) -> Vec<Detector> {
        let members: Vec<MemberId> = (0..3).map(id).collect();
        (0..3)
            .map(|i| {
                let mut d = Detector::new(id(i), 42, Timing::DEFAULT, t0);
                d.view(&members);
                d
            })
            .collect()
    }

    /// Three detectors that beat to each other once at `at`.
    fn exchange(d: &mut [Detector], at: Instant) {
        let beats: Vec<Beat> = d.iter_mut().map(|x| x.beat(at)).collect();
        for (i, x) in d.iter_mut().enumerate() {
            for (j, b) in beats.iter().enumerate() {
                if i != j {
                    let _ = x.receive(b, at);
                }
            }
        }
    }

    #[test]
    fn members_that_share_another_view_are_known_silent_or_not() {
        let t0 = Instant::now();
        let mut d = three(t0);
        exchange(&mut d, t0);
        let whole = d[0].views(t0);
        assert_eq!(whole.len(), 2);
        assert!(whole.values().all(|v| *v == d[0].digest), "{whole:?}");
        // The ring splits: m0 alone, m1 and m2 together; m1 answers nothing.
        d[0].view(&[id(0)]);
        d[1].view(&[id(1), id(2)]);
        d[2].view(&[id(1), id(2)]);
        d[1].set_silent(true);
        exchange(&mut d, t0 + ms(5));
        let split = d[0].views(t0 + ms(5));
        assert_eq!(split.get(&id(1)), split.get(&id(2)));
        assert_ne!(split.get(&id(1)), Some(&d[0].digest));
        assert_eq!(d[0].answering_elsewhere(t0 + ms(5)), [id(2)].into());
        // Each names the other as its mate in that view.
        let mates = d[0].mates(t0 + ms(5));
        assert_eq!(mates.get(&id(1)), Some(&[id(2)].into()), "{mates:?}");
        assert_eq!(mates.get(&id(2)), Some(&[id(1)].into()), "{mates:?}");
        // Unheard for `silent_after`: no view known.
        let later = t0 + ms(5) + Timing::DEFAULT.silent_after();
        assert_eq!(d[0].views(later), BTreeMap::new());
        assert_eq!(d[0].mates(later), BTreeMap::new());
    }

    #[test]
    fn a_member_names_its_mates_at_its_first_beat_in_a_new_view() {
        let t0 = Instant::now();
        let mut d = three(t0);
        exchange(&mut d, t0);
        // Three views of one: nobody names a mate.
        for (i, x) in d.iter_mut().enumerate() {
            x.view(&[id(i)]);
        }
        exchange(&mut d, t0 + ms(5));
        assert_eq!(d[0].mates(t0 + ms(5)), BTreeMap::new());
        // m1 and m2 merge; m1 beats first (m2's next beat is not heard yet):
        // m1's beat already names m2, whose own beat still names its old view.
        d[1].view(&[id(1), id(2)]);
        d[2].view(&[id(1), id(2)]);
        let b1 = d[1].beat(t0 + ms(6));
        let _ = d[0].receive(&b1, t0 + ms(6));
        let views = d[0].views(t0 + ms(6));
        assert_ne!(views.get(&id(1)), views.get(&id(2)));
        assert_eq!(d[0].mates(t0 + ms(6)).get(&id(1)), Some(&[id(2)].into()));
    }

    #[test]
    fn a_member_that_leaves_the_view_and_beats_on_still_answers_until_silent() {
        let t0 = Instant::now();
        let mut d = three(t0);
        for k in 0..10 {
            exchange(&mut d, t0 + ms(5 * k));
        }
        let now = t0 + ms(50);
        assert_eq!(d[0].answering(now), [id(1), id(2)].into());
        assert_eq!(d[0].answering_elsewhere(now), BTreeSet::new());
        // Node 0's ring loses m2 (a lossy link) while its beats still come.
        d[0].view(&[id(0), id(1)]);
        exchange(&mut d, t0 + ms(55));
        assert_eq!(d[0].answering(t0 + ms(55)), [id(1), id(2)].into());
        // Both m1 and m2 still name the old view (m1 has not installed the
        // new one yet); once m1 does, only m2 answers elsewhere.
        assert_eq!(d[0].answering_elsewhere(t0 + ms(55)), [id(1), id(2)].into());
        d[1].view(&[id(0), id(1)]);
        exchange(&mut d, t0 + ms(56));
        assert_eq!(d[0].answering_elsewhere(t0 + ms(56)), [id(2)].into());
        // A ghost is neither echoed nor counted in the lease.
        let beat = d[0].beat(t0 + ms(56));
        assert!(beat.echoes.iter().all(|e| e.member != id(2)));
        assert_eq!(d[0].lease_until(), None, "two members: no limit");
        // It says it answers nothing now: no longer answering, but still
        // beating in another view.
        d[2].set_silent(true);
        exchange(&mut d, t0 + ms(60));
        assert_eq!(d[0].answering(t0 + ms(60)), [id(1)].into());
        assert_eq!(d[0].beating_elsewhere(t0 + ms(60)), [id(2)].into());
        // It answers again (its beats say so).
        d[2].set_silent(false);
        exchange(&mut d, t0 + ms(65));
        assert_eq!(d[0].answering(t0 + ms(65)), [id(1), id(2)].into());
        // Unheard for `silent_after`: silent, and forgotten; known again
        // at its next beat.
        let later = t0 + ms(65) + Timing::DEFAULT.silent_after();
        let _ = d[0].poll(later);
        assert_eq!(d[0].answering(later), BTreeSet::new());
        assert_eq!(
            d[0].beating_elsewhere(later),
            [id(2)].into(),
            "remembered longer"
        );
        assert!(d[0].ghosts.is_empty());
        let b = d[2].beat(later + ms(1));
        assert_eq!(d[0].receive(&b, later + ms(1)), Ok(()));
        assert_eq!(d[0].answering(later + ms(1)), [id(2)].into());
        // Its view is forgotten after `recall`, or once it names mine.
        let gone = later + ms(1) + Timing::DEFAULT.recall();
        let _ = d[0].poll(gone);
        assert_eq!(d[0].beating_elsewhere(gone), BTreeSet::new());
        d[0].view(&[id(0), id(1), id(2)]);
        let b = d[2].beat(gone);
        let _ = d[0].receive(&b, gone);
        assert_eq!(d[0].beating_elsewhere(gone), BTreeSet::new());
        d[2].view(&[id(0), id(1), id(2)]);
        let b = d[2].beat(gone + ms(1));
        assert_eq!(d[0].receive(&b, gone + ms(1)), Ok(()));
        assert_eq!(d[0].beating_elsewhere(gone + ms(1)), BTreeSet::new());
    }

    #[test]
    fn a_ghost_that_rejoins_is_a_peer_again_and_stale_ghost_beats_are_ignored() {
        let t0 = Instant::now();
        let all: Vec<MemberId> = (0..3).map(id).collect();
        let mut d = three(t0);
        exchange(&mut d, t0);
        let old = d[2].beat(t0 + ms(1));
        let new = d[2].beat(t0 + ms(2));
        d[0].view(&[id(0), id(1)]);
        assert_eq!(d[0].receive(&new, t0 + ms(3)), Ok(()));
        assert_eq!(d[0].receive(&old, t0 + ms(3)), Err(Ignored::Stale));
        d[0].view(&all);
        // Still heard, answering, before its next beat in the new view
        // (as a fresh peer it would look silent, and the guard would take
        // its VIFs meanwhile); an older beat is still stale.
        assert_eq!(d[0].answering(t0 + ms(3)), [id(1), id(2)].into());
        assert_eq!(d[0].receive(&old, t0 + ms(3)), Err(Ignored::Stale));
        let back = d[2].beat(t0 + ms(4));
        assert_eq!(d[0].receive(&back, t0 + ms(4)), Ok(()));
        assert_eq!(d[0].answering(t0 + ms(4)), [id(1), id(2)].into());
        let echo = d[0].beat(t0 + ms(5));
        assert!(
            echo.echoes.iter().any(|e| e.member == id(2)),
            "echoed again"
        );
        // Never more than MAX_GHOSTS: the least recently heard go.
        let mut x = Detector::new(id(0), 42, Timing::DEFAULT, t0);
        for k in 1..=MAX_GHOSTS + 5 {
            x.view(&[id(0), id(k)]);
            let mut peer = Detector::new(id(k), 42, Timing::DEFAULT, t0);
            peer.view(&[id(0), id(k)]);
            x.receive(&peer.beat(t0 + ms(k as u64)), t0 + ms(k as u64))
                .unwrap();
        }
        x.view(&[id(0)]);
        assert_eq!(x.ghosts.len(), MAX_GHOSTS);
        assert!(!x.ghosts.contains_key(&id(1)));
    }

    fn act(position: u64, provisional: bool) -> Act {
        Act {
            position,
            provisional,
        }
    }

    #[test]
    fn a_provisional_holder_answers_once_every_peer_echoed_the_raise_at_no_further_position() {
        let t0 = Instant::now();
        let mut d = three(t0);
        for x in d.iter_mut() {
            x.set_act(act(4, false));
        }
        exchange(&mut d, t0 + ms(1));
        assert!(!d[0].provisional_may_answer(), "nothing taken");
        d[0].set_act(act(5, true));
        d[1].set_act(act(5, false));
        d[2].set_act(act(6, false));
        assert!(!d[0].provisional_may_answer(), "nobody heard the raise");
        // The peers' beats of this round were sent before they heard it.
        exchange(&mut d, t0 + ms(2));
        assert!(!d[0].provisional_may_answer());
        // m2 processed an agreed message m0 has not: m0 waits for it.
        exchange(&mut d, t0 + ms(3));
        assert!(!d[0].provisional_may_answer(), "m2 is further");
        d[0].set_act(act(6, true));
        assert!(d[0].provisional_may_answer(), "caught up");
        // Raising again (still raised) keeps the raise; lowering and raising
        // anew needs fresh echoes.
        d[0].set_act(act(6, true));
        assert!(d[0].provisional_may_answer());
        d[0].set_act(act(6, false));
        assert!(!d[0].provisional_may_answer());
        d[0].set_act(act(6, true));
        assert!(!d[0].provisional_may_answer(), "a new raise");
        exchange(&mut d, t0 + ms(4));
        exchange(&mut d, t0 + ms(5));
        assert!(d[0].provisional_may_answer());
        // A peer that names another view does not count.
        let members: Vec<MemberId> = (0..3).map(id).collect();
        let mut other = members.clone();
        other.swap(1, 2);
        d[2].view(&other);
        exchange(&mut d, t0 + ms(6));
        assert!(!d[0].provisional_may_answer(), "m2 names another view");
    }

    #[test]
    fn a_condemned_peer_is_not_waited_for_and_an_earlier_version_always_is() {
        let t0 = Instant::now();
        let mut d = three(t0);
        for x in d.iter_mut() {
            x.set_act(act(0, false));
        }
        for k in 1..=20 {
            exchange(&mut d, t0 + ms(k));
        }
        // m2 falls silent: m0 and m1 lose it, m0 condemns it.
        let (left, _) = d.split_at_mut(2);
        let mut condemned = false;
        for k in 21..=200 {
            exchange(left, t0 + ms(k));
            for x in left.iter_mut() {
                x.poll(t0 + ms(k));
            }
            condemned |= left[0].condemned().contains(&id(2));
        }
        assert!(condemned);
        left[0].set_act(act(0, true));
        assert!(!left[0].provisional_may_answer());
        exchange(left, t0 + ms(201));
        exchange(left, t0 + ms(202));
        assert!(left[0].provisional_may_answer(), "only m1 is asked");
        // A peer speaking version 2 never clears the first rule.
        let mut d = three(t0);
        d[0].set_act(act(0, true));
        d[2].set_act(act(0, false));
        exchange(&mut d, t0 + ms(1));
        exchange(&mut d, t0 + ms(2));
        assert!(!d[0].provisional_may_answer(), "m1 sends no position");
    }

    #[test]
    fn an_acquisition_waits_for_each_flagged_peer_to_lower_its_flag_after_it() {
        let t0 = Instant::now();
        let mut d = three(t0);
        for x in d.iter_mut() {
            x.set_act(act(0, false));
        }
        exchange(&mut d, t0 + ms(1));
        assert!(d[0].provisional_peers().is_empty());
        d[1].set_act(act(0, true));
        exchange(&mut d, t0 + ms(2));
        let flagged = d[0].provisional_peers();
        assert_eq!(flagged, [id(1)].into());
        let since = d[0].next_stamp();
        assert!(!d[0].cleared_since(since, &flagged));
        // m1 lowers its flag, but its next beat was sent before it heard m0
        // after the acquisition.
        d[1].set_act(act(1, false));
        exchange(&mut d, t0 + ms(3));
        assert!(!d[0].cleared_since(since, &flagged), "no echo after it");
        exchange(&mut d, t0 + ms(4));
        assert!(d[0].cleared_since(since, &flagged));
        // An echo after it with the flag still up does not clear.
        d[2].set_act(act(1, true));
        exchange(&mut d, t0 + ms(5));
        let flagged = d[0].provisional_peers();
        assert_eq!(flagged, [id(2)].into());
        let since = d[0].next_stamp();
        exchange(&mut d, t0 + ms(6));
        exchange(&mut d, t0 + ms(7));
        assert!(!d[0].cleared_since(since, &flagged), "still flagged");
        // A flagged peer that leaves the view is for the view's rules.
        let members: Vec<MemberId> = (0..2).map(id).collect();
        d[0].view(&members);
        assert!(d[0].cleared_since(since, &flagged));
        assert!(d[0].provisional_peers().is_empty());
    }
}

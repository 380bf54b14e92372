//! The lease keeper: extends the XDP lease from the engine's liveness
//! evidence off the agent's loop.
//!
//! The agent's loop can be busy for longer than a fast profile's lease
//! (55 ms): installing a view, exchanging state or rebalancing thousands
//! of VIFs. When the lease was renewed only from that loop, such a stretch
//! lapsed it and a healthy survivor went silent for all its VIPs (4000
//! VIPs on LAN-fast: 8-18 lapses per agent around every view, VIPs that
//! never moved dark for 60-170 ms). The keeper waits for the evidence on
//! a thread of its own (tests run it as a task under the paused clock)
//! and writes the lease through a handle of its own on the lease map.
//!
//! It only ever *extends a running lease* the agent permits: evidence that
//! comes after the lease ran out, or while the agent holds renewal back
//! (engine lost, a lapse not yet revived), is left to the agent's loop,
//! which revives the lease by its rules (`Agent::may_revive`) after the
//! views delivered before that evidence. A frozen process renews nothing
//! (every thread stops); a dead or stuck engine gives no evidence.
//! Whichever of the two writes first for a piece of evidence writes; the
//! other skips it.

use super::announcer::LeaseSignal;
use super::beats::AnswerUntil;
use crate::config::Lease;
use crate::dataplane::{self, VipTable};
use crate::membership::Alive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error};

/// Writes the XDP lease deadline through a handle of its own (the keeper
/// never waits for the agent's table).
pub trait LeaseWriter: Send + 'static {
    /// Extend the lease by `validity` from now.
    fn renew(&mut self, validity: Duration) -> dataplane::Result<()>;
}

impl LeaseWriter for dataplane::LeaseMap {
    fn renew(&mut self, validity: Duration) -> dataplane::Result<()> {
        self.renew(validity)
    }
}

/// What the agent and the keeper share, under one lock: every write of
/// the lease and of what the beats say about it happens under it, so
/// neither overwrites a later deadline with an earlier one.
#[derive(Debug)]
struct Shared {
    /// The lease's end as last written (`None`: never written).
    until: Option<Instant>,
    /// The evidence the last write came from.
    evidence_at: Option<Instant>,
    /// The agent lets the keeper extend a running lease.
    permit: bool,
    setting: Lease,
    /// The node answers some VIP: a renewal moves what its beats say.
    answering: bool,
    /// The agent is gone: the keeper stops.
    stopped: bool,
}

/// Who hears of every write of the lease: the announcements (`signal`)
/// and, while the node answers, the beats (`answer_until`).
#[derive(Clone, Debug)]
struct Outlets {
    signal: LeaseSignal,
    answer_until: Option<AnswerUntil>,
}

/// The agent's end: the lease's state, its own writes and the permit.
#[derive(Debug)]
pub struct LeaseBook {
    shared: Arc<Mutex<Shared>>,
    outlets: Outlets,
}

/// The keeper's end; [`LeaseKeeper::run`] it off the agent's loop.
pub struct LeaseKeeper {
    shared: Arc<Mutex<Shared>>,
    alive: watch::Receiver<Option<Alive>>,
    outlets: Outlets,
}

/// A new lease book and its keeper: the keeper hears the evidence on
/// `alive`, tells the announcements of each renewal on `signal` and, while
/// the node answers, moves the beats' "answering until" (`answer_until`).
/// Nothing is extended before the agent's first [`LeaseBook::permit`].
pub fn new(
    alive: watch::Receiver<Option<Alive>>,
    signal: LeaseSignal,
    answer_until: Option<AnswerUntil>,
) -> (LeaseBook, LeaseKeeper) {
    let shared = Arc::new(Mutex::new(Shared {
        until: None,
        evidence_at: None,
        permit: false,
        setting: Lease::Off,
        answering: false,
        stopped: false,
    }));
    let outlets = Outlets {
        signal,
        answer_until,
    };
    let book = LeaseBook {
        shared: shared.clone(),
        outlets: outlets.clone(),
    };
    let keeper = LeaseKeeper {
        shared,
        alive,
        outlets,
    };
    (book, keeper)
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic elsewhere cannot leave `Shared` half-written: every field
    // is written whole.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// `until` in CLOCK_MONOTONIC ns, the beats' clock.
fn mono_ns(until: Instant) -> u64 {
    let left = until.saturating_duration_since(Instant::now());
    u64::try_from((dataplane::monotonic_now() + left).as_nanos()).unwrap_or(u64::MAX)
}

impl Outlets {
    /// Writes the lease `evidence` earns under `setting` (counted from the
    /// evidence) through `write`, records it in `s` and tells of it.
    /// Returns its new end; `None` if the evidence is too old to renew
    /// anything or the write failed (logged).
    fn write(
        &self,
        s: &mut Shared,
        setting: Lease,
        evidence: Alive,
        write: impl FnOnce(Duration) -> dataplane::Result<()>,
    ) -> Option<Instant> {
        let now = Instant::now();
        let validity = super::lease::validity(setting, evidence, now)?;
        if let Err(e) = write(validity) {
            error!("data plane: renewing the lease: {e}");
            return None;
        }
        let until = now + validity;
        s.until = Some(until);
        s.evidence_at = Some(evidence.at);
        if let (true, Some(a)) = (s.answering, &self.answer_until) {
            a.set(mono_ns(until));
        }
        self.signal.renewed(until);
        Some(until)
    }
}

impl Shared {
    fn seen(&self, evidence: Instant) -> bool {
        self.evidence_at.is_some_and(|at| evidence <= at)
    }
}

impl LeaseBook {
    /// Until when the lease was last written.
    pub fn until(&self) -> Option<Instant> {
        lock(&self.shared).until
    }

    /// Whether the keeper may extend a running lease (the agent's engine
    /// is up and no lapse awaits revival), under `setting`.
    pub fn permit(&self, permit: bool, setting: Lease) {
        let mut s = lock(&self.shared);
        s.permit = permit && setting != Lease::Off;
        s.setting = setting;
    }

    /// The agent's own renewal from `evidence` (a revival, or evidence
    /// the keeper has not got to): writes it through `table` unless it was
    /// written already. Returns the new end of the lease; `None` if
    /// nothing was written.
    pub fn renew<T: VipTable>(
        &self,
        table: &mut T,
        setting: Lease,
        evidence: Alive,
    ) -> Option<Instant> {
        let mut s = lock(&self.shared);
        if s.seen(evidence.at) {
            return None;
        }
        (self.outlets).write(&mut s, setting, evidence, |v| table.renew_lease(Some(v)))
    }

    /// Tells the beat thread until when this node answers: while it
    /// answers some VIP (`answering`), until the lease's end (`fenced`) or
    /// with no end (no lease); 0 when it answers none.
    pub fn publish_answering(&self, answering: bool, fenced: bool) {
        let Some(a) = &self.outlets.answer_until else {
            return;
        };
        let mut s = lock(&self.shared);
        s.answering = answering && fenced;
        a.set(match (answering, fenced, s.until) {
            (false, _, _) => 0,
            (true, true, Some(until)) => mono_ns(until),
            (true, _, _) => u64::MAX,
        });
    }
}

impl Drop for LeaseBook {
    fn drop(&mut self) {
        lock(&self.shared).stopped = true;
    }
}

impl LeaseKeeper {
    /// Extends the running lease from every fresh evidence, through
    /// `writer`, until the agent is gone (or the engine's end of `alive`).
    pub async fn run(mut self, mut writer: impl LeaseWriter) {
        // The lease end last reported as run out (once per lapse).
        let mut reported = None;
        while self.alive.changed().await.is_ok() {
            let Some(evidence) = *self.alive.borrow_and_update() else {
                continue;
            };
            let mut s = lock(&self.shared);
            if s.stopped {
                return;
            }
            let now = Instant::now();
            let running = s.until.is_some_and(|until| until > now);
            if let (false, Some(until)) = (running, s.until) {
                if reported != Some(until) {
                    reported = Some(until);
                    // Why: the evidence's age is its probe's trip through
                    // the ring (counted from the sending) plus this
                    // thread's delay; beside how long ago the lease ran
                    // out, it tells a late ring from a gap in the probes.
                    debug!(
                        permit = s.permit,
                        evidence_age_us =
                            now.saturating_duration_since(evidence.at).as_micros() as u64,
                        ran_out_us_ago = now.saturating_duration_since(until).as_micros() as u64,
                        "lease keeper: evidence came after the lease ran out; left to the agent"
                    );
                }
            }
            if !s.permit || !running || s.seen(evidence.at) {
                continue;
            }
            let setting = s.setting;
            (self.outlets).write(&mut s, setting, evidence, |v| writer.renew(v));
        }
    }

    /// Runs the keeper on a thread of its own (the agent's loop may be
    /// busy for longer than the lease). Normal priority: on a starved host
    /// (8 agents and 8 corosyncs on 2 cores) the lapses left came from the
    /// probes' trip through the ring, and SCHED_FIFO changed nothing.
    pub fn spawn_thread(self, writer: impl LeaseWriter) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        std::thread::Builder::new()
            .name("wackamole-lease".into())
            .spawn(move || rt.block_on(self.run(writer)))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_millis(110);
    const LEASE: Duration = Duration::from_millis(55);

    /// Records every write: when, and for how long.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<(Instant, Duration)>>>);

    impl LeaseWriter for Writes {
        fn renew(&mut self, validity: Duration) -> dataplane::Result<()> {
            self.0.lock().unwrap().push((Instant::now(), validity));
            Ok(())
        }
    }

    impl Writes {
        fn taken(&self) -> Vec<(Instant, Duration)> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    /// The agent's table: only its lease writes matter here.
    #[derive(Default)]
    struct Table(Vec<Duration>);

    impl VipTable for Table {
        fn own(&mut self, _: &dataplane::Vip) -> dataplane::Result<()> {
            Ok(())
        }
        fn release(&mut self, _: &dataplane::Vip) -> dataplane::Result<()> {
            Ok(())
        }
        fn forget(&mut self, _: &dataplane::Vip) -> dataplane::Result<()> {
            Ok(())
        }
        fn renew_lease(&mut self, validity: Option<Duration>) -> dataplane::Result<()> {
            self.0.extend(validity);
            Ok(())
        }
        fn counters(&self, _: &dataplane::Vip) -> dataplane::Result<dataplane::VipCounters> {
            Ok(Default::default())
        }
    }

    fn evidence() -> Option<Alive> {
        Some(Alive {
            at: Instant::now(),
            takeover_floor: FLOOR,
            revives: true,
        })
    }

    struct Rig {
        book: LeaseBook,
        tx: watch::Sender<Option<Alive>>,
        writes: Writes,
        answer: AnswerUntil,
        keeper: tokio::task::JoinHandle<()>,
    }

    /// A book whose keeper runs as a task; the agent wrote a first lease.
    fn rig() -> Rig {
        let (tx, rx) = watch::channel(None);
        let answer = AnswerUntil::default();
        let (book, keeper) = new(rx, LeaseSignal::default(), Some(answer.clone()));
        let writes = Writes::default();
        let keeper = tokio::spawn(keeper.run(writes.clone()));
        let first = evidence().expect("evidence");
        assert!(book
            .renew(&mut Table::default(), Lease::Auto, first)
            .is_some());
        book.permit(true, Lease::Auto);
        Rig {
            book,
            tx,
            writes,
            answer,
            keeper,
        }
    }

    /// The engine's probes come back every 18 ms until `for_how_long`.
    async fn probes(tx: &watch::Sender<Option<Alive>>, for_how_long: Duration) {
        let end = Instant::now() + for_how_long;
        while Instant::now() + Duration::from_millis(18) <= end {
            tokio::time::sleep(Duration::from_millis(18)).await;
            tx.send_replace(evidence());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_agent_loop_keeps_its_lease_from_the_engines_evidence() {
        let r = rig();
        let start = Instant::now();
        // The agent does nothing for 400 ms; only the engine's probes come.
        probes(&r.tx, Duration::from_millis(400)).await;
        tokio::task::yield_now().await;
        let writes = r.writes.taken();
        assert_eq!(writes.len(), 22, "{writes:?}");
        let mut end = start + LEASE;
        for (at, validity) in writes {
            assert!(at < end, "the lease lapsed at {:?}", end - start);
            assert_eq!(validity, LEASE);
            end = at + validity;
        }
        assert_eq!(r.book.until(), Some(end));
        drop(r.book);
        r.tx.send_replace(evidence());
        r.keeper.await.expect("the keeper stops with the agent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lapsed_lease_is_left_to_the_agent() {
        let r = rig();
        tokio::time::sleep(LEASE + Duration::from_millis(1)).await;
        r.tx.send_replace(evidence());
        tokio::task::yield_now().await;
        assert!(r.writes.taken().is_empty(), "a lapsed lease was revived");
        // The agent revives it by its rules; the keeper extends it again.
        let revived = evidence().expect("evidence");
        assert!(r
            .book
            .renew(&mut Table::default(), Lease::Auto, revived)
            .is_some());
        probes(&r.tx, Duration::from_millis(20)).await;
        tokio::task::yield_now().await;
        assert_eq!(r.writes.taken().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_agents_permit_nothing_is_extended() {
        let r = rig();
        r.book.permit(false, Lease::Auto);
        probes(&r.tx, Duration::from_millis(40)).await;
        tokio::task::yield_now().await;
        assert!(r.writes.taken().is_empty());
        r.book.permit(true, Lease::Off);
        probes(&r.tx, Duration::from_millis(20)).await;
        tokio::task::yield_now().await;
        assert!(r.writes.taken().is_empty(), "no lease, nothing to extend");
    }

    #[tokio::test(start_paused = true)]
    async fn each_evidence_is_written_once_whoever_gets_there_first() {
        let r = rig();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let e = evidence().expect("evidence");
        r.tx.send_replace(Some(e));
        tokio::task::yield_now().await;
        assert_eq!(r.writes.taken().len(), 1);
        // The agent's loop gets to the same evidence later: nothing more.
        let mut table = Table::default();
        assert_eq!(r.book.renew(&mut table, Lease::Auto, e), None);
        assert!(table.0.is_empty());
        // And older evidence never shortens what was written.
        let mut old = e;
        old.at -= Duration::from_millis(5);
        assert_eq!(r.book.renew(&mut table, Lease::Auto, old), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_beats_answering_until_moves_with_each_renewal_while_answering() {
        let r = rig();
        r.book.publish_answering(false, true);
        probes(&r.tx, Duration::from_millis(20)).await;
        tokio::task::yield_now().await;
        assert_eq!(r.answer.get(), 0, "silent stays silent");
        r.book.publish_answering(true, true);
        let published = r.answer.get();
        assert!(published > 0 && published < u64::MAX);
        // Only the keeper moves it from here (its lease end, CLOCK_MONOTONIC).
        r.answer.set(1);
        probes(&r.tx, Duration::from_millis(20)).await;
        tokio::task::yield_now().await;
        let now = u64::try_from(dataplane::monotonic_now().as_nanos()).expect("ns");
        let moved = r.answer.get();
        assert!(
            moved > now + 50_000_000 && moved <= now + 55_000_000,
            "{moved} vs {now}"
        );
        r.book.publish_answering(true, false);
        assert_eq!(r.answer.get(), u64::MAX, "unfenced: no end");
    }
}

//! The host's announcement schedule: every VIF's gratuitous ARP and
//! unsolicited neighbour advertisements, sent by one task.
//!
//! A decision that moves thousands of VIFs used to start as many tasks, each
//! sending both gratuitous ARP forms of its own addresses: the last VIF's
//! first frame waited behind every earlier VIF's two (at the paced rate,
//! 4000 VIFs put it ~40 ms late). Here the announcements due at one instant
//! go out as one pass per round: every address's first frame on every
//! interface, then the second forms, paced per interface. One task and one
//! ordered queue hold every VIF's schedule (settle delay, rounds, spacing);
//! only the rare slow parts run beside it as tasks of their own: waiting
//! for IPv6 addresses to become usable, and the throttled unicast
//! notifications after the burst.
//!
//! Rounds go out only while the fencing lease runs: an announcement from a
//! node whose XDP is silent (its lease lapsed: a starved or frozen node, an
//! engine re-forming its ring) would draw the clients into the fence, which
//! drops their traffic. Such a round waits, not lost, for the lease's
//! renewal (the agent tells the schedule of every renewal: [`LeaseSignal`]).

use super::host::AnnounceDone;
use crate::net::arp::{ArpFrame, ArpSender, Burst, GarpForm};
use crate::net::nd::{NdFrame, NdSender};
use crate::net::NetResult;
use futures::future::BoxFuture;
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Announcement frames per millisecond on one interface, over all its VIFs.
/// A decision taking thousands of VIFs starts as many announcements at once:
/// unpaced, their frames would overrun a NIC queue (dropped with ENOBUFS) or
/// a switch's ARP policer. 200 000 frames/s is a seventh of gigabit line
/// rate at minimum frame size.
pub const ANNOUNCE_FRAMES_PER_MS: u32 = 200;

/// Frames an idle interface sends without waiting (a small decision goes
/// out at once).
pub const ANNOUNCE_BURST: u32 = 512;

/// Frames sent between two looks at new commands: a release cancels its
/// VIF's announcement within this many frames even mid-pass.
const CHUNK: usize = 64;

/// Paces the announcement frames of one interface (a token bucket kept as
/// the theoretical arrival time of the next frame, GCRA style).
#[derive(Debug, Default)]
pub struct Pacer {
    /// When the frames reserved so far have all gone at the paced rate.
    tat: Option<Instant>,
}

impl Pacer {
    /// Reserves `frames` more frames; returns when they may go out.
    pub fn reserve(&mut self, frames: usize, now: Instant) -> Instant {
        let per_frame = Duration::from_micros(1000) / ANNOUNCE_FRAMES_PER_MS;
        let tolerance = per_frame * ANNOUNCE_BURST;
        let start = self.tat.map_or(now, |t| t.max(now));
        let end = start + per_frame * frames.min(u32::MAX as usize) as u32;
        self.tat = Some(end);
        end.checked_sub(tolerance).map_or(now, |t| t.max(now))
    }
}

/// Sends gratuitous ARP on one interface.
pub trait GarpWire: Send + Sync + 'static {
    /// One gratuitous frame for `ip` in `form` (`Request` or `Reply`).
    fn garp(&self, ip: Ipv4Addr, form: GarpForm) -> NetResult<()>;
}

/// Sends unsolicited neighbour advertisements on one interface.
pub trait NaWire: Send + Sync + 'static {
    /// One unsolicited advertisement (Override set, to all-nodes) for `ip`.
    fn unsolicited(&self, ip: Ipv6Addr, router: bool) -> NetResult<()>;
}

impl GarpWire for ArpSender {
    fn garp(&self, ip: Ipv4Addr, form: GarpForm) -> NetResult<()> {
        let frame = match form {
            GarpForm::Reply => ArpFrame::gratuitous_reply(self.mac(), ip),
            GarpForm::Request | GarpForm::Both => ArpFrame::gratuitous_request(self.mac(), ip),
        };
        self.send(&frame)
    }
}

impl NaWire for NdSender {
    fn unsolicited(&self, ip: Ipv6Addr, router: bool) -> NetResult<()> {
        self.send(&NdFrame::unsolicited_advert(self.mac(), ip, router))
    }
}

/// One VIF's announcement.
pub struct Job {
    /// The VIF's name (for logs).
    pub name: String,
    /// Wait this long before anything (a conflict's settle delay).
    pub delay: Duration,
    /// IPv4 addresses by interface, with the interface's socket.
    pub arp: Vec<(String, Arc<dyn GarpWire>, Vec<Ipv4Addr>)>,
    /// IPv6 addresses by interface, with the interface's socket.
    pub nd: Vec<(String, Arc<dyn NaWire>, Vec<Ipv6Addr>)>,
    /// Rounds, their spacing, the gratuitous ARP form(s).
    pub burst: Burst,
    /// The advertisements carry the Router flag.
    pub nd_router: bool,
    /// Resolves once the IPv6 addresses are usable (or waited for long
    /// enough); the first frame waits for it.
    pub usable: Option<BoxFuture<'static, ()>>,
    /// The unicast notifications, run once the burst is over.
    pub follow_up: Option<BoxFuture<'static, ()>>,
}

enum Command {
    Start(usize, Box<Job>, AnnounceDone),
    Cancel(usize),
    /// The IPv6 wait of a VIF's announcement `epoch` is over.
    Usable(usize, u64),
}

/// The handle to the schedule: start and cancel announcements. The task
/// starts on first use (inside the agent's runtime) and ends with the handle.
#[derive(Default)]
pub struct Announcer {
    tx: Option<mpsc::UnboundedSender<Command>>,
    task: Option<AbortHandle>,
    lease: LeaseSignal,
}

/// Where the agent tells the schedule of every renewal of the XDP lease.
/// A watch, not a command: renewals come every probe period, and only a
/// schedule holding rounds back wakes for them. Until the first renewal
/// XDP answers without a lease, and so do the announcements.
#[derive(Clone, Debug)]
pub struct LeaseSignal(Arc<watch::Sender<Option<Instant>>>);

/// Whether XDP is silent at `now` under the lease `until` (`None`: no
/// lease yet, XDP answers).
fn lease_out(until: Option<Instant>, now: Instant) -> bool {
    until.is_some_and(|until| until <= now)
}

impl Default for LeaseSignal {
    fn default() -> Self {
        LeaseSignal(Arc::new(watch::channel(None).0))
    }
}

impl LeaseSignal {
    /// The XDP lease now runs until `until`: rounds held back since it
    /// lapsed go out.
    pub fn renewed(&self, until: Instant) {
        self.0.send_replace(Some(until));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.0.subscribe()
    }

    /// For a task of its own (the notifications after a burst): its paced
    /// senders wait for the lease before each frame.
    pub fn waiter(&self) -> LeaseWait {
        LeaseWait(self.subscribe())
    }
}

/// Waits, in a task of its own, until the XDP lease runs.
#[derive(Clone)]
pub struct LeaseWait(watch::Receiver<Option<Instant>>);

impl LeaseWait {
    /// Resolves at once while the lease runs (or XDP answers without one),
    /// else at its renewal (or when the agent, and with it the signal, is
    /// gone).
    pub async fn running(&mut self) {
        loop {
            let silent = lease_out(*self.0.borrow_and_update(), Instant::now());
            if !silent || self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The notifications' paced senders stop mid-range while the lease is out.
impl crate::net::Gate for LeaseWait {
    fn open(&mut self) -> impl std::future::Future<Output = ()> + Send {
        self.running()
    }
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer").finish_non_exhaustive()
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Announcer {
    /// Schedules VIF `vif`'s announcement, replacing one still under way;
    /// `done` is told `usable` before the first frame, `complete` once the
    /// first round is on the wire.
    pub fn start(&mut self, vif: usize, job: Job, done: AnnounceDone) {
        self.send(Command::Start(vif, Box::new(job), done));
    }

    /// Stops VIF `vif`'s announcement at once (within [`CHUNK`] frames).
    pub fn cancel(&mut self, vif: usize) {
        if self.tx.is_some() {
            self.send(Command::Cancel(vif));
        }
    }

    /// The signal for the lease's renewals.
    pub fn lease_signal(&self) -> LeaseSignal {
        self.lease.clone()
    }

    fn send(&mut self, cmd: Command) {
        let tx = self.tx.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let schedule = Schedule::new(tx.clone(), self.lease.subscribe());
            let lease = self.lease.subscribe();
            self.task = Some(tokio::spawn(schedule.run(rx, lease)).abort_handle());
            tx
        });
        // The task only ends when this handle aborts it.
        let _ = tx.send(cmd);
    }
}

/// Where an announcement is.
enum Stage {
    /// Waiting for its delay, then for its IPv6 addresses.
    Starting,
    /// Waiting for its IPv6 addresses (a task of its own).
    AwaitingUsable(AbortHandle),
    /// Round `n` of the burst is next.
    Round(u32),
}

/// A scheduled announcement: the job, where it is, its place in the queue.
struct Running {
    job: Job,
    /// Taken when the first round is on the wire.
    done: Option<AnnounceDone>,
    /// Tells a current `Usable` or pass from one of a replaced announcement.
    epoch: u64,
    stage: Stage,
    /// Its place in the queue, if queued.
    due: Option<(Instant, u64)>,
}

impl Running {
    /// Its IPv6 addresses are usable (or it has none): the burst is next.
    fn begin_burst(&mut self) {
        if let Some(done) = &self.done {
            done.usable();
        }
        self.stage = Stage::Round(0);
    }
}

/// Queues `r` (VIF `vif`) for `at`, after what is already queued for then.
fn enqueue(
    queue: &mut BTreeSet<(Instant, u64, usize)>,
    seq: &mut u64,
    vif: usize,
    r: &mut Running,
    at: Instant,
) {
    *seq += 1;
    queue.insert((at, *seq, vif));
    r.due = Some((at, *seq));
}

struct Schedule {
    tx: mpsc::UnboundedSender<Command>,
    running: HashMap<usize, Running>,
    /// (when, order, VIF): the next step of each queued announcement.
    queue: BTreeSet<(Instant, u64, usize)>,
    seq: u64,
    pacers: HashMap<String, Pacer>,
    /// The notifications still being sent after a finished burst.
    follow_ups: HashMap<usize, AbortHandle>,
    /// The end of the fencing lease (read only; `run` waits on its own
    /// receiver for renewals).
    lease: watch::Receiver<Option<Instant>>,
    /// Announcements whose next round waits for the lease's renewal.
    fenced: BTreeSet<usize>,
}

impl Schedule {
    fn new(tx: mpsc::UnboundedSender<Command>, lease: watch::Receiver<Option<Instant>>) -> Self {
        Schedule {
            tx,
            running: HashMap::new(),
            queue: BTreeSet::new(),
            seq: 0,
            pacers: HashMap::new(),
            follow_ups: HashMap::new(),
            lease,
            fenced: BTreeSet::new(),
        }
    }

    /// XDP is silent for our VIPs: the lease has run out.
    fn silent(&self, now: Instant) -> bool {
        lease_out(*self.lease.borrow(), now)
    }

    /// The lease was renewed: the rounds it held back are due now.
    fn unfence(&mut self) {
        let now = Instant::now();
        if self.silent(now) {
            return;
        }
        for vif in std::mem::take(&mut self.fenced) {
            if let Some(r) = self.running.get_mut(&vif).filter(|r| r.due.is_none()) {
                enqueue(&mut self.queue, &mut self.seq, vif, r, now);
            }
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut lease: watch::Receiver<Option<Instant>>,
    ) {
        loop {
            // A decision's announcements arrive together: take them all
            // before the pass, so they share it.
            while let Ok(cmd) = rx.try_recv() {
                self.apply(cmd);
            }
            let next = self.queue.first().map(|q| q.0);
            if next.is_some_and(|at| at <= Instant::now()) {
                // Due now: no timer (it fires on the next millisecond tick,
                // and later still while the agent keeps the thread busy).
                self.step(&mut rx).await;
                // The agent's loop shares the thread: let it in between passes.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.apply(cmd),
                    None => return,
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
                renewed = lease.changed(), if !self.fenced.is_empty() => match renewed {
                    Ok(()) => self.unfence(),
                    // The handle (and with it this task) is going away.
                    Err(_) => return,
                },
            }
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Start(vif, job, done) => {
                self.stop(vif);
                self.seq += 1;
                let at = Instant::now() + job.delay;
                let mut r = Running {
                    job: *job,
                    done: Some(done),
                    epoch: self.seq,
                    stage: Stage::Starting,
                    due: None,
                };
                enqueue(&mut self.queue, &mut self.seq, vif, &mut r, at);
                self.running.insert(vif, r);
            }
            Command::Cancel(vif) => self.stop(vif),
            Command::Usable(vif, epoch) => {
                let Some(r) = self.running.get_mut(&vif) else {
                    return;
                };
                if r.epoch == epoch && matches!(r.stage, Stage::AwaitingUsable(_)) {
                    r.begin_burst();
                    enqueue(&mut self.queue, &mut self.seq, vif, r, Instant::now());
                }
            }
        }
    }

    /// Forgets VIF `vif`'s announcement and its side tasks.
    fn stop(&mut self, vif: usize) {
        if let Some(r) = self.running.remove(&vif) {
            if let Some((at, seq)) = r.due {
                self.queue.remove(&(at, seq, vif));
            }
            if let Stage::AwaitingUsable(task) = r.stage {
                task.abort();
            }
        }
        if let Some(task) = self.follow_ups.remove(&vif) {
            task.abort();
        }
        self.fenced.remove(&vif);
    }

    /// Everything due now: starts move on, due rounds go out as one pass.
    async fn step(&mut self, rx: &mut mpsc::UnboundedReceiver<Command>) {
        let now = Instant::now();
        let silent = self.silent(now);
        let mut rounds = Vec::new();
        while let Some(&(at, seq, vif)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.remove(&(at, seq, vif));
            let Some(r) = self.running.get_mut(&vif) else {
                continue;
            };
            r.due = None;
            if matches!(r.stage, Stage::Starting) {
                if let Some(wait) = r.job.usable.take() {
                    let (tx, epoch) = (self.tx.clone(), r.epoch);
                    let task = tokio::spawn(async move {
                        wait.await;
                        let _ = tx.send(Command::Usable(vif, epoch));
                    });
                    r.stage = Stage::AwaitingUsable(task.abort_handle());
                    continue;
                }
                r.begin_burst();
            }
            if matches!(r.stage, Stage::Round(_)) {
                match silent {
                    true => {
                        self.fenced.insert(vif);
                    }
                    false => rounds.push((vif, r.epoch)),
                }
            }
        }
        if silent && !self.fenced.is_empty() {
            debug!(
                held = self.fenced.len(),
                "announcements held back: the lease lapsed (XDP silent)"
            );
        }
        if !rounds.is_empty() {
            self.pass(&rounds, rx).await;
        }
    }

    /// One round of every listed announcement: the first frame of every
    /// address on every interface, then the second gratuitous ARP form.
    async fn pass(&mut self, due: &[(usize, u64)], rx: &mut mpsc::UnboundedReceiver<Command>) {
        for phase in [Phase::First, Phase::Second] {
            // Every frame of this phase, by interface, in the agent's order.
            let mut frames: Vec<(String, usize, u64, Frame)> = Vec::new();
            for &(vif, epoch) in due {
                let Some(r) = self.running.get(&vif).filter(|r| r.epoch == epoch) else {
                    continue;
                };
                if let Some(form) = phase.garp_form(r.job.burst.form) {
                    for (line, (iface, _, ips)) in r.job.arp.iter().enumerate() {
                        for ip in ips {
                            frames.push((iface.clone(), vif, epoch, Frame::Garp(line, *ip, form)));
                        }
                    }
                }
                if phase == Phase::First {
                    for (line, (iface, _, ips)) in r.job.nd.iter().enumerate() {
                        for ip in ips {
                            frames.push((iface.clone(), vif, epoch, Frame::Na(line, *ip)));
                        }
                    }
                }
            }
            // Stable: each interface keeps the agent's order.
            frames.sort_by(|a, b| a.0.cmp(&b.0));
            for on_iface in frames.chunk_by(|a, b| a.0 == b.0) {
                for chunk in on_iface.chunks(CHUNK) {
                    self.send_chunk(chunk, rx).await;
                }
            }
        }
        // The round is on the wire: complete the first, schedule the next
        // (not one the lease's lapse cut short: it goes out again whole).
        let now = Instant::now();
        for &(vif, epoch) in due {
            if self.fenced.contains(&vif) {
                continue;
            }
            let Some(r) = self.running.get_mut(&vif).filter(|r| r.epoch == epoch) else {
                continue;
            };
            let Stage::Round(n) = r.stage else {
                continue;
            };
            if let Some(done) = r.done.take() {
                done.complete();
            }
            if n + 1 < r.job.burst.count.max(1) {
                r.stage = Stage::Round(n + 1);
                let at = now + r.job.burst.spacing;
                enqueue(&mut self.queue, &mut self.seq, vif, r, at);
            } else if let Some(r) = self.running.remove(&vif) {
                if let Some(follow) = r.job.follow_up {
                    self.follow_ups
                        .insert(vif, tokio::spawn(follow).abort_handle());
                }
            }
        }
        self.follow_ups.retain(|_, t| !t.is_finished());
        if self.running.is_empty() {
            // A burst of thousands grew the table: an idle agent keeps none
            // of it (the idle RSS goal at 4000 VIPs).
            self.running.shrink_to_fit();
        }
    }

    /// Sends a chunk of one interface's frames once its pacer allows,
    /// taking new commands before and after the wait: a cancelled or
    /// replaced announcement sends not a frame more, nor uses up the pace.
    async fn send_chunk(
        &mut self,
        chunk: &[(String, usize, u64, Frame)],
        rx: &mut mpsc::UnboundedReceiver<Command>,
    ) {
        let Some((iface, ..)) = chunk.first() else {
            return;
        };
        while let Ok(cmd) = rx.try_recv() {
            self.apply(cmd);
        }
        let live = |s: &Self, vif: &usize, epoch: &u64| {
            s.running.get(vif).is_some_and(|r| r.epoch == *epoch) && !s.fenced.contains(vif)
        };
        let frames = chunk.iter().filter(|f| live(self, &f.1, &f.2)).count();
        if frames == 0 {
            return;
        }
        let now = Instant::now();
        let go = self
            .pacers
            .entry(iface.clone())
            .or_default()
            .reserve(frames, now);
        if go > now {
            tokio::time::sleep_until(go).await;
            while let Ok(cmd) = rx.try_recv() {
                self.apply(cmd);
            }
        }
        // The lease lapsed during the pass: the rest of it waits.
        if self.silent(Instant::now()) {
            for (_, vif, epoch, _) in chunk {
                if live(self, vif, epoch) {
                    self.fenced.insert(*vif);
                }
            }
            return;
        }
        for (iface, vif, epoch, frame) in chunk {
            if self.fenced.contains(vif) {
                continue;
            }
            let Some(r) = self.running.get(vif).filter(|r| r.epoch == *epoch) else {
                continue;
            };
            let sent = match *frame {
                Frame::Garp(line, ip, form) => r.job.arp[line].1.garp(ip, form),
                Frame::Na(line, ip) => r.job.nd[line].1.unsolicited(ip, r.job.nd_router),
            };
            if let Err(e) = sent {
                // A full queue drops a frame (the later rounds repeat it);
                // the round completes anyway: a hand-over must not wait for
                // ever on an interface that cannot send.
                warn!("announcing VIF {} on {iface}: {e}", r.job.name);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Every address's first frame (gratuitous ARP's first form, the NA).
    First,
    /// The second gratuitous ARP form, when both are sent.
    Second,
}

impl Phase {
    /// The gratuitous ARP form this phase sends, if any, for `forms`.
    fn garp_form(self, forms: GarpForm) -> Option<GarpForm> {
        match (self, forms) {
            (Phase::First, GarpForm::Reply) => Some(GarpForm::Reply),
            (Phase::First, _) => Some(GarpForm::Request),
            (Phase::Second, GarpForm::Both) => Some(GarpForm::Reply),
            (Phase::Second, _) => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Frame {
    /// Line `.0` of the job's `arp`.
    Garp(usize, Ipv4Addr, GarpForm),
    /// Line `.0` of the job's `nd`.
    Na(usize, Ipv6Addr),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::host::AnnounceStage;
    use futures::FutureExt;
    use std::sync::Mutex;

    /// Records every frame with the paused clock's time since the start.
    #[derive(Default)]
    struct Wire {
        t0: Mutex<Option<Instant>>,
        frames: Mutex<Vec<(Duration, String)>>,
    }

    impl Wire {
        fn record(&self, what: String) {
            let now = Instant::now();
            let t0 = *self.t0.lock().unwrap().get_or_insert(now);
            self.frames.lock().unwrap().push((now - t0, what));
        }
        fn sent(&self) -> Vec<String> {
            self.frames
                .lock()
                .unwrap()
                .iter()
                .map(|f| f.1.clone())
                .collect()
        }
        fn times(&self) -> Vec<Duration> {
            self.frames.lock().unwrap().iter().map(|f| f.0).collect()
        }
    }

    impl GarpWire for Wire {
        fn garp(&self, ip: Ipv4Addr, form: GarpForm) -> NetResult<()> {
            self.record(format!("{form:?} {ip}"));
            Ok(())
        }
    }

    impl NaWire for Wire {
        fn unsolicited(&self, ip: Ipv6Addr, router: bool) -> NetResult<()> {
            self.record(format!("NA {ip} router={router}"));
            Ok(())
        }
    }

    type Reports = mpsc::UnboundedReceiver<(usize, u64, AnnounceStage)>;
    type Done = mpsc::UnboundedSender<(usize, u64, AnnounceStage)>;

    fn job(wire: &Arc<Wire>, ips: &[impl AsRef<str>], count: u32, vif: usize) -> Job {
        Job {
            name: format!("vif{vif}"),
            delay: Duration::ZERO,
            arp: vec![(
                "eth0".into(),
                wire.clone() as Arc<dyn GarpWire>,
                ips.iter().map(|ip| ip.as_ref().parse().unwrap()).collect(),
            )],
            nd: vec![],
            burst: Burst {
                count,
                spacing: Duration::from_millis(200),
                form: GarpForm::Both,
            },
            nd_router: false,
            usable: None,
            follow_up: None,
        }
    }

    /// VIF `vif`'s completion, reported on `tx`.
    fn done(tx: &Done, vif: usize) -> AnnounceDone {
        AnnounceDone::new(vif, 1, tx.clone())
    }

    /// A fake interface, the agent's end of the completions, an announcer.
    fn rig() -> (Arc<Wire>, Done, Reports, Announcer) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Wire::default()), tx, rx, Announcer::default())
    }

    /// `n` IPv4 addresses in 10.`net`.0.0/16.
    fn many(net: u8, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.{net}.{}.{}", i / 250, i % 250))
            .collect()
    }

    /// Lets the schedule run until nothing more happens for `for_`.
    async fn settle(for_: Duration) {
        tokio::time::sleep(for_).await;
    }

    fn reports(rx: &mut Reports) -> Vec<(usize, AnnounceStage)> {
        let mut out = Vec::new();
        while let Ok((vif, _, stage)) = rx.try_recv() {
            out.push((vif, stage));
        }
        out
    }

    /// A decision's announcements share one pass: every address's first
    /// frame goes out before any address's second form, and each VIF is
    /// usable, then on the wire once its first round is.
    #[tokio::test(start_paused = true)]
    async fn a_batch_sends_every_first_frame_before_any_second_form() {
        let (wire, tx, mut rx, mut a) = rig();
        a.start(0, job(&wire, &["10.0.0.1", "10.0.0.2"], 1, 0), done(&tx, 0));
        a.start(1, job(&wire, &["10.0.0.3"], 1, 1), done(&tx, 1));
        settle(Duration::from_millis(1)).await;
        assert_eq!(
            wire.sent(),
            [
                "Request 10.0.0.1",
                "Request 10.0.0.2",
                "Request 10.0.0.3",
                "Reply 10.0.0.1",
                "Reply 10.0.0.2",
                "Reply 10.0.0.3"
            ]
        );
        use AnnounceStage::*;
        assert_eq!(
            reports(&mut rx),
            [(0, Usable), (1, Usable), (0, OnWire), (1, OnWire)]
        );
    }

    /// The burst's rounds go `spacing` apart; only the first completes.
    #[tokio::test(start_paused = true)]
    async fn rounds_are_spaced_and_only_the_first_completes() {
        let (wire, tx, mut rx, mut a) = rig();
        a.start(0, job(&wire, &["10.0.0.1"], 3, 0), done(&tx, 0));
        settle(Duration::from_secs(2)).await;
        let ms: Vec<u128> = wire.times().iter().map(|t| t.as_millis()).collect();
        assert_eq!(ms, [0, 0, 200, 200, 400, 400]);
        assert_eq!(
            reports(&mut rx),
            [(0, AnnounceStage::Usable), (0, AnnounceStage::OnWire)]
        );
    }

    /// A round due while the lease is out waits for its renewal, then goes
    /// out whole; the later rounds keep their spacing from it.
    #[tokio::test(start_paused = true)]
    async fn a_lapsed_lease_holds_the_next_round_until_renewed() {
        let (wire, tx, mut rx, mut a) = rig();
        *wire.t0.lock().unwrap() = Some(Instant::now());
        let t0 = Instant::now();
        a.lease_signal().renewed(t0 + Duration::from_millis(150));
        a.start(0, job(&wire, &["10.0.0.1"], 3, 0), done(&tx, 0));
        // Round 1 at 0 (lease live); round 2 due at 200, the lease ran out
        // at 150: nothing until the renewal at 350.
        settle(Duration::from_millis(350)).await;
        let ms = |w: &Wire| -> Vec<u128> { w.times().iter().map(|t| t.as_millis()).collect() };
        assert_eq!(ms(&wire), [0, 0]);
        a.lease_signal()
            .renewed(Instant::now() + Duration::from_secs(5));
        settle(Duration::from_secs(1)).await;
        assert_eq!(ms(&wire), [0, 0, 350, 350, 550, 550]);
        assert_eq!(
            reports(&mut rx),
            [(0, AnnounceStage::Usable), (0, AnnounceStage::OnWire)]
        );
    }

    /// An announcement started while the lease is out sends nothing and
    /// does not complete (a hand-over waits for it) until the renewal; one
    /// cancelled meanwhile never goes out.
    #[tokio::test(start_paused = true)]
    async fn a_first_round_waits_for_the_lease_and_a_cancel_drops_it() {
        let (wire, tx, mut rx, mut a) = rig();
        a.lease_signal()
            .renewed(Instant::now() - Duration::from_millis(1));
        a.start(0, job(&wire, &["10.0.0.1"], 1, 0), done(&tx, 0));
        a.start(1, job(&wire, &["10.0.0.2"], 1, 1), done(&tx, 1));
        settle(Duration::from_millis(500)).await;
        assert!(wire.sent().is_empty(), "{:?}", wire.sent());
        assert_eq!(
            reports(&mut rx),
            [(0, AnnounceStage::Usable), (1, AnnounceStage::Usable)]
        );
        a.cancel(1);
        // A renewal that has already run out (evidence too old) is no renewal.
        a.lease_signal().renewed(Instant::now());
        settle(Duration::from_millis(100)).await;
        assert!(wire.sent().is_empty(), "{:?}", wire.sent());
        a.lease_signal()
            .renewed(Instant::now() + Duration::from_millis(55));
        settle(Duration::from_millis(10)).await;
        assert_eq!(wire.sent(), ["Request 10.0.0.1", "Reply 10.0.0.1"]);
        assert_eq!(reports(&mut rx), [(0, AnnounceStage::OnWire)]);
    }

    /// A lease that runs out in the middle of a long pass stops it between
    /// chunks: no frame goes out while XDP is silent, and the announcements
    /// cut short go out again whole, and complete, once it is renewed.
    #[tokio::test(start_paused = true)]
    async fn a_lease_lapsing_mid_pass_stops_it_between_chunks() {
        let (wire, tx, mut rx, mut a) = rig();
        *wire.t0.lock().unwrap() = Some(Instant::now());
        let lapse = Duration::from_millis(4);
        a.lease_signal().renewed(Instant::now() + lapse);
        // 40 VIFs of 100 addresses: 8000 frames, ~38 ms at the paced rate.
        for vif in 0..40 {
            let ips: Vec<String> = (0..100)
                .map(|i| format!("10.{}.{}.{}", 1 + vif / 200, vif % 200, i + 1))
                .collect();
            a.start(vif, job(&wire, &ips, 1, vif), done(&tx, vif));
        }
        settle(Duration::from_millis(100)).await;
        let before = wire.times();
        assert!(
            !before.is_empty() && before.len() < 8000,
            "{}",
            before.len()
        );
        assert!(before.iter().all(|t| *t <= lapse), "{before:?}");
        let completed = |rx: &mut Reports| {
            reports(rx)
                .into_iter()
                .filter(|r| r.1 == AnnounceStage::OnWire)
                .count()
        };
        assert_eq!(completed(&mut rx), 0, "the first phase had not ended");
        a.lease_signal()
            .renewed(Instant::now() + Duration::from_secs(5));
        settle(Duration::from_millis(200)).await;
        assert_eq!(completed(&mut rx), 40);
        let sent = wire.sent();
        for vif in 0..40 {
            let ip = format!("10.1.{vif}.100");
            let of_it = |form: &str| {
                sent.iter()
                    .filter(|f| **f == format!("{form} {ip}"))
                    .count()
            };
            assert!(of_it("Request") >= 1 && of_it("Reply") >= 1, "VIF {vif}");
        }
    }

    /// The notifications' wait: none while the lease runs or before the
    /// first renewal, until the renewal once it has run out.
    #[tokio::test(start_paused = true)]
    async fn the_notifications_wait_for_the_lease() {
        let signal = LeaseSignal::default();
        let mut wait = signal.waiter();
        let quick = Duration::from_millis(1);
        let now = Instant::now;
        assert!(
            tokio::time::timeout(quick, wait.running()).await.is_ok(),
            "no lease yet"
        );
        signal.renewed(now() + Duration::from_millis(50));
        assert!(
            tokio::time::timeout(quick, wait.running()).await.is_ok(),
            "running"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        let waiting = tokio::spawn(async move {
            wait.running().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "ran on while the lease was out");
        // A renewal that has already run out wakes it, and it waits on.
        signal.renewed(now());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        let renewed_at = now();
        signal.renewed(renewed_at + Duration::from_millis(55));
        assert_eq!(waiting.await.expect("waiter"), renewed_at);
    }

    /// A conflict's settle delay holds the first frame back.
    #[tokio::test(start_paused = true)]
    async fn the_delay_holds_the_first_frame_back() {
        let (wire, tx, _rx, mut a) = rig();
        *wire.t0.lock().unwrap() = Some(Instant::now());
        let mut j = job(&wire, &["10.0.0.1"], 1, 0);
        j.delay = Duration::from_millis(100);
        a.start(0, j, done(&tx, 0));
        settle(Duration::from_millis(500)).await;
        assert_eq!(wire.times()[0], Duration::from_millis(100));
    }

    /// A cancel stops a VIF's announcement between chunks, mid-pass, and it
    /// never completes; the others go on. A start replaces the VIF's
    /// announcement still under way.
    #[tokio::test(start_paused = true)]
    async fn cancel_stops_mid_pass_and_start_replaces() {
        let (wire, tx, mut rx, mut a) = rig();
        // Far more than a burst: the pass paces, and yields between chunks.
        a.start(0, job(&wire, &many(1, 4000), 3, 0), done(&tx, 0));
        a.start(1, job(&wire, &["10.0.0.9"], 3, 1), done(&tx, 1));
        settle(Duration::from_millis(5)).await;
        let before = wire.sent().len();
        assert!(before > 0 && before < 4000, "{before} frames in 5 ms");
        a.cancel(0);
        settle(Duration::from_secs(2)).await;
        let sent = wire.sent();
        let vif0_after = sent[before..]
            .iter()
            .filter(|f| f.contains("10.1."))
            .count();
        assert!(
            vif0_after <= CHUNK,
            "{vif0_after} frames of a cancelled VIF"
        );
        assert_eq!(
            sent.iter().filter(|f| f.ends_with("10.0.0.9")).count(),
            6,
            "the other VIF's three rounds"
        );
        let r = reports(&mut rx);
        assert!(!r.contains(&(0, AnnounceStage::OnWire)), "{r:?}");
        assert!(r.contains(&(1, AnnounceStage::OnWire)), "{r:?}");

        // Replaced: the new one runs its own rounds, the old one stops.
        let wire2 = Arc::new(Wire::default());
        a.start(2, job(&wire2, &["10.0.0.7"], 3, 2), done(&tx, 2));
        settle(Duration::from_millis(100)).await;
        a.start(2, job(&wire2, &["10.0.0.8"], 1, 2), done(&tx, 2));
        settle(Duration::from_secs(2)).await;
        assert_eq!(
            wire2.sent(),
            [
                "Request 10.0.0.7",
                "Reply 10.0.0.7",
                "Request 10.0.0.8",
                "Reply 10.0.0.8"
            ]
        );
    }

    /// A burst goes out at once; beyond it, frames go at the paced rate.
    #[tokio::test(start_paused = true)]
    async fn the_pass_is_paced_per_interface() {
        let (wire, tx, _rx, mut a) = rig();
        a.start(0, job(&wire, &many(2, 1000), 1, 0), done(&tx, 0));
        settle(Duration::from_secs(1)).await;
        let times = wire.times();
        assert_eq!(times.len(), 2000);
        // The first chunks within the burst go at once; 2000 frames at 200
        // per ms after a 512-frame burst end near 7.5 ms.
        assert_eq!(times[0], Duration::ZERO);
        assert!(times[ANNOUNCE_BURST as usize - CHUNK] == Duration::ZERO);
        let last = times[1999];
        assert!(
            last >= Duration::from_millis(7) && last <= Duration::from_millis(8),
            "{last:?}"
        );
    }

    /// IPv6: the first frame waits for the addresses to be usable, which is
    /// reported first; an NA goes in the first phase.
    #[tokio::test(start_paused = true)]
    async fn ipv6_waits_for_usable_then_advertises() {
        let (wire, tx, mut rx, mut a) = rig();
        *wire.t0.lock().unwrap() = Some(Instant::now());
        let mut j = job(&wire, &["10.0.0.1"], 1, 0);
        j.nd = vec![(
            "eth0".into(),
            wire.clone() as Arc<dyn NaWire>,
            vec!["fd00::1".parse().unwrap()],
        )];
        j.nd_router = true;
        j.usable = Some(tokio::time::sleep(Duration::from_millis(30)).boxed());
        let told = Arc::new(Mutex::new(None));
        let t = told.clone();
        j.follow_up = Some(
            async move {
                *t.lock().unwrap() = Some(Instant::now());
            }
            .boxed(),
        );
        let start = Instant::now();
        a.start(0, j, done(&tx, 0));
        settle(Duration::from_millis(10)).await;
        assert!(wire.sent().is_empty());
        assert!(reports(&mut rx).is_empty());
        settle(Duration::from_millis(100)).await;
        assert_eq!(
            wire.sent(),
            [
                "Request 10.0.0.1",
                "NA fd00::1 router=true",
                "Reply 10.0.0.1"
            ]
        );
        assert_eq!(wire.times()[0], Duration::from_millis(30));
        assert_eq!(
            reports(&mut rx),
            [(0, AnnounceStage::Usable), (0, AnnounceStage::OnWire)]
        );
        let told = told.lock().unwrap().expect("the notifications ran");
        assert_eq!(told - start, Duration::from_millis(30));
    }

    /// A start or cancel while the IPv6 wait runs ends that announcement:
    /// no frame, no report, its follow-up never runs.
    #[tokio::test(start_paused = true)]
    async fn cancel_during_the_ipv6_wait_sends_nothing() {
        let (wire, tx, mut rx, mut a) = rig();
        let mut j = job(&wire, &["10.0.0.1"], 1, 0);
        j.usable = Some(tokio::time::sleep(Duration::from_millis(30)).boxed());
        let ran = Arc::new(Mutex::new(false));
        let r = ran.clone();
        j.follow_up = Some(async move { *r.lock().unwrap() = true }.boxed());
        a.start(0, j, done(&tx, 0));
        settle(Duration::from_millis(10)).await;
        a.cancel(0);
        settle(Duration::from_millis(500)).await;
        assert!(wire.sent().is_empty());
        assert!(reports(&mut rx).is_empty());
        assert!(!*ran.lock().unwrap());
    }

    /// The pacer: an idle interface sends a burst at once; beyond it frames
    /// wait for credit, whoever reserves them.
    #[test]
    fn the_pacer_lets_a_burst_through_then_paces() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        assert_eq!(p.reserve(ANNOUNCE_BURST as usize, t0), t0);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(p.reserve(ANNOUNCE_FRAMES_PER_MS as usize, t0), ms(1));
        let mut at = t0;
        for _ in 0..10 {
            at = p.reserve(ANNOUNCE_FRAMES_PER_MS as usize, t0);
        }
        assert_eq!(at, ms(11));
        // Idle long enough: a full burst at once again.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(p.reserve(ANNOUNCE_BURST as usize, later), later);
    }
}

//! The detector's I/O (issue 11): one thread beats to the configured peers
//! over UDP, reads theirs, runs the [`Detector`] and reports what changed.
//!
//! A thread of its own, not a task: beats every few milliseconds must not
//! wait behind the agent's batches (thousands of netlink requests), and the
//! thread asks for real-time scheduling where it may (as corosync does), so
//! a busy host does not make its beats look like a crash. The agent tells
//! it the views and until when it answers any VIP (said in every beat); it
//! tells the agent who was lost and condemned, whether the fence it would
//! impose holds (logged and counted only), and which members, in the view
//! or departed from it, still beat and answer (mode `guard`: the agent
//! leaves a departed member's VIFs alone until it falls silent).

use crate::config::DetectorConfig;
use crate::dataplane::{monotonic_now, LeaseMap};
use crate::detect::beat::Act;
use crate::detect::detector::Handshake;
use crate::detect::{Beat, Detector};
use crate::membership::MemberId;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the agent tells the thread.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// A regular view, with me at `my_index`.
    View {
        members: Vec<MemberId>,
        my_index: usize,
    },
    /// No view (engine lost, left the group).
    Clear,
    /// The agent may answer again after [`Report::Stalled`] `stall` (its
    /// own lease revived: see `Agent::may_revive`): the beat lease is
    /// renewed again.
    Revive { stall: u64 },
}

/// What the thread tells the agent. `mono_ns`: CLOCK_MONOTONIC when it
/// happened (shared by every namespace: the benchmark compares it with the
/// fault's time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A peer silent past the deadline (after the handshake).
    Lost { member: MemberId, mono_ns: u64 },
    /// A peer lost by a majority of the view.
    Condemned { member: MemberId, mono_ns: u64 },
    /// The fence from the peers' echoes lapsed (`true`) or holds again.
    Fenced { fenced: bool, mono_ns: u64 },
    /// A member that beat and answered says it answers nothing now, or went
    /// unheard for `Timing::silent_after` (see [`Snapshot::answering`]).
    FellSilent { member: MemberId, mono_ns: u64 },
    /// A member heard before says it answers again (or its beats came back).
    SpokeUp { member: MemberId, mono_ns: u64 },
    /// No member of another view answers any more (see
    /// [`Snapshot::elsewhere`]).
    NoneElsewhere { mono_ns: u64 },
    /// The beat lease lapsed: this thread sent no beat for `silent_ms`, so
    /// XDP went silent and the peers may have taken this node to be. It
    /// stays silent (the beats say so) until the agent sends
    /// [`Command::Revive`] with the same `stall`.
    Stalled {
        stall: u64,
        silent_ms: u64,
        mono_ns: u64,
    },
    /// Mode `act`: a new view came while the echo fence was closed. A
    /// majority of the old view may have condemned this node and taken
    /// its VIFs ahead of the group, and the new view's fence (other or
    /// fewer peers: none at all with two members) would no longer keep it
    /// silent. The beat lease is held as after a stall, until the agent
    /// sends [`Command::Revive`] with the same `stall`.
    HeldAtView { stall: u64, mono_ns: u64 },
    /// Mode `act`: the handshake changed while the agent waits on it
    /// ([`BeatsHandle::await_handshake`]): the VIFs it holds silent may
    /// answer now, at the echo that cleared them rather than a poll later.
    Handshake { mono_ns: u64 },
}

/// Beat counters (the metrics page, `ctl status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub received: u64,
    pub ignored: u64,
}

/// What the thread sees now, published for the agent (at every beat and
/// with every report).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub counts: Counts,
    /// Peers of the view it lost, and those it condemned.
    pub lost: Vec<MemberId>,
    pub condemned: Vec<MemberId>,
    /// Too few peers echo this node (its fence would silence it).
    pub fenced: bool,
    /// The members, in the view or departed from it, that beat lately and
    /// whose latest beat says they answer (`Detector::answering`).
    pub answering: std::collections::BTreeSet<MemberId>,
    /// Those of them whose latest beat names another view than this
    /// node's (`Detector::answering_elsewhere`).
    pub elsewhere: std::collections::BTreeSet<MemberId>,
    /// The members heard lately, answering or not, whose latest beat names
    /// another view (`Detector::beating_elsewhere`).
    pub beating_elsewhere: std::collections::BTreeSet<MemberId>,
    /// The view each member heard within `silent_after` named, answering
    /// or not (`Detector::views`): who shares a view with whom.
    pub views: std::collections::BTreeMap<MemberId, u64>,
    /// The others of its view each member heard within `silent_after`
    /// named in its latest beat (`Detector::mates`).
    pub mates: std::collections::BTreeMap<MemberId, std::collections::BTreeSet<MemberId>>,
    /// The handshake of an agent acting on the detector
    /// (`Detector::handshake`).
    pub handshake: Handshake,
}

/// What [`BeatsHandle::publish_act`] stores when the agent does not act on
/// the detector (its beats stay version 2).
const NOT_ACTING: u64 = u64::MAX;

/// The agent's agreed position and flag, packed for the beat thread to read
/// when it builds each beat: `position << 1 | provisional`.
fn pack_act(position: u64, provisional: bool) -> u64 {
    (position.min(NOT_ACTING >> 2) << 1) | u64::from(provisional)
}

fn unpack_act(v: u64) -> Option<Act> {
    (v != NOT_ACTING).then_some(Act {
        position: v >> 1,
        provisional: v & 1 == 1,
    })
}

/// The provisional flag of a packed act word (down when not acting).
fn flag_of(v: u64) -> bool {
    unpack_act(v).is_some_and(|a| a.provisional)
}

pub struct BeatsHandle {
    pub reports: mpsc::UnboundedReceiver<Report>,
    commands: std_mpsc::Sender<Command>,
    shared: std::sync::Arc<std::sync::Mutex<Snapshot>>,
    answer_until: std::sync::Arc<AtomicU64>,
    act: std::sync::Arc<AtomicU64>,
    /// The stamp of the thread's latest beat, stored before it is sent.
    stamp: std::sync::Arc<AtomicU64>,
    /// Wakes the thread when the provisional flag changes (none: a
    /// detached handle).
    wake: Option<UnixDatagram>,
    /// The agent holds VIFs silent until the handshake clears them.
    awaiting: std::sync::Arc<AtomicBool>,
}

impl BeatsHandle {
    /// A stamp that only beats sent from now on carry: an acquisition made
    /// now waits for the flagged peers to echo it or later (the second
    /// rule, `Handshake::cleared_since`).
    pub fn next_stamp(&self) -> u64 {
        self.stamp.load(Ordering::SeqCst).saturating_add(1)
    }

    /// The handshake's news for every beat from now on (acting on the
    /// detector): my agreed position in my view and whether I hold VIFs
    /// provisionally. Stored before the agent acts on the message that
    /// moved the position: a beat never claims less than the node has
    /// answered by.
    ///
    /// A change of the flag is beaten at once, not at the next beat: the
    /// handshake waits for the peers to echo a beat carrying it (and they
    /// answer a flag's change at once too, see [`Thread::read`]), so a
    /// takeover at a condemnation costs a round trip, not up to two beat
    /// periods.
    pub fn publish_act(&self, position: u64, provisional: bool) {
        let old = self
            .act
            .swap(pack_act(position, provisional), Ordering::SeqCst);
        if flag_of(old) != provisional {
            if let Some(w) = &self.wake {
                // A full queue already holds a wake-up.
                let _ = w.send(&[1]);
            }
        }
    }

    /// Whether the agent holds VIFs silent for the handshake: while it
    /// does, every change of the handshake is reported
    /// ([`Report::Handshake`]). Set before the agent reads the snapshot:
    /// a change after that read is reported.
    pub fn await_handshake(&self, on: bool) {
        self.awaiting.store(on, Ordering::SeqCst);
    }

    /// What the agent last published (tests).
    pub fn act(&self) -> Option<Act> {
        unpack_act(self.act.load(Ordering::SeqCst))
    }

    pub fn tell(&self, c: Command) {
        // The thread only ends with the process (or on a socket failure it
        // has reported); nothing to do if it is gone.
        let _ = self.commands.send(c);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.shared.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Where the agent says until when this node answers any VIP (see
    /// [`AnswerUntil`]).
    pub fn answer_until(&self) -> AnswerUntil {
        AnswerUntil(self.answer_until.clone())
    }
}

/// Until when this node answers any VIP (CLOCK_MONOTONIC ns; 0: it
/// answers none, `u64::MAX`: no lease): the beats say "silent" past it.
/// Written by the agent and, as it extends the lease, by the lease keeper
/// (`lease_keeper`), under the lease's lock. Saying "answering" too long
/// only makes peers wait; "silent" too early would let them answer next
/// to it.
#[derive(Clone, Debug, Default)]
pub struct AnswerUntil(std::sync::Arc<AtomicU64>);

impl AnswerUntil {
    pub fn set(&self, mono_ns: u64) {
        self.0.store(mono_ns, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The thread's end of a [`BeatsHandle`] made by [`detached`]: a test of
/// the agent plays the beat thread through it (its reports, its snapshot)
/// and reads what the agent tells it.
pub struct Detached {
    pub reports: mpsc::UnboundedSender<Report>,
    /// What the agent told the thread.
    pub commands: std_mpsc::Receiver<Command>,
    pub shared: std::sync::Arc<std::sync::Mutex<Snapshot>>,
    pub answer_until: std::sync::Arc<AtomicU64>,
    pub act: std::sync::Arc<AtomicU64>,
    /// The stamp of the latest beat the thread would have sent.
    pub stamp: std::sync::Arc<AtomicU64>,
    /// Whether the agent waits on the handshake.
    pub awaiting: std::sync::Arc<AtomicBool>,
}

impl Detached {
    /// What the thread would publish as `handshake`, and report if the
    /// agent waits on it (as the thread does).
    pub fn say_handshake(&self, handshake: Handshake) {
        let changed = match self.shared.lock() {
            Ok(mut s) => std::mem::replace(&mut s.handshake, handshake) != s.handshake,
            Err(_) => false,
        };
        if changed && self.awaiting.load(Ordering::SeqCst) {
            let _ = self.reports.send(Report::Handshake { mono_ns: mono_ns() });
        }
    }

    /// What the thread would publish and report: `answering` now, those of
    /// them `elsewhere`, and `report`, in that order (as the thread does).
    pub fn say(&self, answering: &[&str], elsewhere: &[&str], report: Option<Report>) {
        if let Ok(mut s) = self.shared.lock() {
            s.answering = answering.iter().map(|m| MemberId((*m).into())).collect();
            s.elsewhere = elsewhere.iter().map(|m| MemberId((*m).into())).collect();
        }
        if let Some(r) = report {
            let _ = self.reports.send(r);
        }
    }

    /// What the thread would publish as `views`: each member's view.
    pub fn say_views(&self, views: &[(&str, u64)]) {
        if let Ok(mut s) = self.shared.lock() {
            s.views = (views.iter())
                .map(|(m, v)| (MemberId((*m).into()), *v))
                .collect();
        }
    }

    /// What the thread would publish as `mates`: the others of its view
    /// each member named.
    pub fn say_mates(&self, mates: &[(&str, &[&str])]) {
        if let Ok(mut s) = self.shared.lock() {
            s.mates = (mates.iter())
                .map(|(m, of)| {
                    let of = of.iter().map(|o| MemberId((*o).into())).collect();
                    (MemberId((*m).into()), of)
                })
                .collect();
        }
    }

    /// What the thread would publish as `condemned`: the peers of the view
    /// this node's detector condemned.
    pub fn say_condemned(&self, members: &[&str]) {
        if let Ok(mut s) = self.shared.lock() {
            s.condemned = members.iter().map(|m| MemberId((*m).into())).collect();
        }
    }

    /// What the thread would publish as `beating_elsewhere`.
    pub fn say_beating_elsewhere(&self, members: &[&str]) {
        if let Ok(mut s) = self.shared.lock() {
            s.beating_elsewhere = members.iter().map(|m| MemberId((*m).into())).collect();
        }
    }

    /// Every command the agent sent the thread so far.
    pub fn told(&self) -> Vec<Command> {
        self.commands.try_iter().collect()
    }
}

/// A handle with no thread and no socket behind it (tests of the agent).
pub fn detached() -> (BeatsHandle, Detached) {
    let (tx, reports) = mpsc::unbounded_channel();
    let (commands, told) = std_mpsc::channel();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Snapshot::default()));
    let answer_until = std::sync::Arc::new(AtomicU64::new(0));
    let act = std::sync::Arc::new(AtomicU64::new(NOT_ACTING));
    let stamp = std::sync::Arc::new(AtomicU64::new(0));
    let awaiting = std::sync::Arc::new(AtomicBool::new(false));
    let handle = BeatsHandle {
        reports,
        commands,
        shared: shared.clone(),
        answer_until: answer_until.clone(),
        act: act.clone(),
        stamp: stamp.clone(),
        wake: None,
        awaiting: awaiting.clone(),
    };
    let end = Detached {
        reports: tx,
        commands: told,
        shared,
        answer_until,
        act,
        stamp,
        awaiting,
    };
    (handle, end)
}

/// Binds the beat socket and starts the thread. The group name tags the
/// beats, so two clusters on one LAN ignore each other. With `fence`
/// (mode `guard` with a lease), every beat sent renews the beat lease for
/// [`Timing::beat_fence`](crate::detect::Timing::beat_fence).
pub fn start(
    cfg: &DetectorConfig,
    group: &str,
    fence: Option<LeaseMap>,
) -> anyhow::Result<BeatsHandle> {
    let writer = fence.map(|mut f| -> FenceWriter { Box::new(move |ns| Ok(f.set(ns)?)) });
    start_writing(cfg, group, writer)
}

/// [`start`], the beat lease written through `writer`.
fn start_writing(
    cfg: &DetectorConfig,
    group: &str,
    writer: Option<FenceWriter>,
) -> anyhow::Result<BeatsHandle> {
    let socket = UdpSocket::bind(cfg.listen)
        .map_err(|e| anyhow::anyhow!("detector: cannot bind {}: {e}", cfg.listen))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| anyhow::anyhow!("detector: {}: {e}", cfg.listen))?;
    let (wake, woken) = UnixDatagram::pair()
        .and_then(|(a, b)| {
            a.set_nonblocking(true)?;
            b.set_nonblocking(true)?;
            Ok((a, b))
        })
        .map_err(|e| anyhow::anyhow!("detector: cannot make the thread's wake-up socket: {e}"))?;
    let (tx, reports) = mpsc::unbounded_channel();
    let (commands, rx) = std_mpsc::channel();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Snapshot::default()));
    // Silent until the agent says it answers something.
    let answer_until = std::sync::Arc::new(AtomicU64::new(0));
    let act = std::sync::Arc::new(AtomicU64::new(NOT_ACTING));
    let stamp = std::sync::Arc::new(AtomicU64::new(0));
    let awaiting = std::sync::Arc::new(AtomicBool::new(false));
    let v6_socket = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    let mut thread = Thread {
        socket,
        v6_socket,
        heard_from: std::collections::HashMap::new(),
        peers: cfg.peers.clone(),
        timing: cfg.timing,
        group: crate::detect::group_tag(group),
        detector: None,
        commands: rx,
        reports: tx,
        shared: shared.clone(),
        counts: Counts::default(),
        fenced: false,
        answering: Default::default(),
        elsewhere: Default::default(),
        beating_elsewhere: Default::default(),
        views: Default::default(),
        mates: Default::default(),
        answer_until: answer_until.clone(),
        act: act.clone(),
        stamp: stamp.clone(),
        handshake: Handshake::default(),
        fence: writer.map(Fence::new),
        woken,
        sent_flag: false,
        flags: std::collections::HashMap::new(),
        beat_soon: false,
        extras: ExtraBeats::default(),
        last_beat: None,
        said_silent: false,
        awaiting: awaiting.clone(),
    };
    std::thread::Builder::new()
        .name("wackamole-beats".into())
        .spawn(move || {
            realtime();
            thread.run();
        })
        .map_err(|e| anyhow::anyhow!("detector: cannot start its thread: {e}"))?;
    Ok(BeatsHandle {
        reports,
        commands,
        shared,
        answer_until,
        act,
        stamp,
        wake: Some(wake),
        awaiting,
    })
}

/// SCHED_FIFO at a modest priority (below corosync's 99), where allowed.
fn realtime() {
    let param = libc::sched_param { sched_priority: 50 };
    // SAFETY: plain syscall on the calling thread with a valid parameter.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "detector: no real-time scheduling for the beat thread; a busy host may delay beats"
        );
    }
}

struct Thread {
    socket: UdpSocket,
    /// The socket is IPv6 (its peers' addresses are given as such).
    v6_socket: bool,
    /// When each peer's latest counted beat came: while it is recent, my
    /// beats to it confirm its neighbour entry (see [`send_beat`]).
    heard_from: std::collections::HashMap<SocketAddr, Instant>,
    peers: Vec<SocketAddr>,
    timing: crate::detect::Timing,
    group: u64,
    /// `None` until the first view tells me who I am.
    detector: Option<Detector>,
    commands: std_mpsc::Receiver<Command>,
    reports: mpsc::UnboundedSender<Report>,
    shared: std::sync::Arc<std::sync::Mutex<Snapshot>>,
    counts: Counts,
    fenced: bool,
    /// The members last published as answering, and those of another view.
    answering: std::collections::BTreeSet<MemberId>,
    elsewhere: std::collections::BTreeSet<MemberId>,
    beating_elsewhere: std::collections::BTreeSet<MemberId>,
    views: std::collections::BTreeMap<MemberId, u64>,
    mates: std::collections::BTreeMap<MemberId, std::collections::BTreeSet<MemberId>>,
    answer_until: std::sync::Arc<AtomicU64>,
    /// The agent's agreed position and flag ([`BeatsHandle::publish_act`]).
    act: std::sync::Arc<AtomicU64>,
    /// The stamp of my latest beat ([`BeatsHandle::next_stamp`]).
    stamp: std::sync::Arc<AtomicU64>,
    /// The handshake last published.
    handshake: Handshake,
    fence: Option<Fence>,
    /// The agent's wake-up ([`BeatsHandle::publish_act`]).
    woken: UnixDatagram,
    /// The provisional flag my latest beat carried.
    sent_flag: bool,
    /// Each peer's latest flag, to answer its change at once.
    flags: std::collections::HashMap<SocketAddr, bool>,
    /// A peer's flag changed, or I lost a peer: beat before the next
    /// period.
    beat_soon: bool,
    /// The beats outside the period lately.
    extras: ExtraBeats,
    /// When my latest beat went out (a late one is logged at debug).
    last_beat: Option<Instant>,
    /// Whether my latest beat said I answer nothing.
    said_silent: bool,
    /// The agent waits on the handshake ([`BeatsHandle::await_handshake`]).
    awaiting: std::sync::Arc<AtomicBool>,
}

/// The beats a thread sends outside its period, kept to a budget of
/// [`ExtraBeats::MAX`] a period: beats forged from a peer's address,
/// flipping its flag, cannot make this node beat more than five times a
/// period. A budget, not a spacing: a loss and the flag raised at the
/// condemnation that follows go out back to back, and the peers answer
/// both at once (spaced a quarter period apart, the handshake waited
/// 1.25 ms on each end).
#[derive(Debug, Default)]
struct ExtraBeats {
    /// When the latest went out, oldest first (at most `MAX`).
    sent: std::collections::VecDeque<Instant>,
}

impl ExtraBeats {
    const MAX: usize = 4;

    /// When one may go out, if one is wanted at `t`.
    fn due(&self, t: Instant, interval: Duration) -> Instant {
        match self.sent.front() {
            Some(&oldest) if self.sent.len() == Self::MAX => (oldest + interval).max(t),
            _ => t,
        }
    }

    fn sent(&mut self, t: Instant) {
        if self.sent.len() == Self::MAX {
            self.sent.pop_front();
        }
        self.sent.push_back(t);
    }
}

/// Writes the beat lease's deadline (ns of CLOCK_MONOTONIC).
type FenceWriter = Box<dyn FnMut(u64) -> anyhow::Result<()> + Send>;

/// The beat lease as the thread keeps it.
struct Fence {
    writer: FenceWriter,
    /// The beats' own deadline: the last beat plus the fence (0: none
    /// yet); past it, the beat thread stalled.
    until_ns: u64,
    /// When the last beat went out.
    last_sent_ns: u64,
    /// The stall this node stays silent for, until the agent revives it.
    held: Option<u64>,
    stalls: u64,
    /// The last write failed (said once per run of failures).
    failing: bool,
}

impl Fence {
    fn new(writer: FenceWriter) -> Fence {
        Fence {
            writer,
            until_ns: 0,
            last_sent_ns: 0,
            held: None,
            stalls: 0,
            failing: false,
        }
    }

    /// The agent's [`Command::Revive`]: renewed from the next beat on (not a
    /// lapse until then). A revival of an older stall is ignored.
    fn revive(&mut self, stall: u64) {
        if self.held == Some(stall) {
            self.held = None;
            self.until_ns = 0;
        }
    }

    /// A stall, if the lease lapsed since the last beat: the peers may have
    /// taken this node to be silent (and its VIFs), so it stays silent
    /// until the agent says otherwise.
    fn lapsed(&mut self, now_ns: u64) -> Option<Report> {
        if self.until_ns == 0 || now_ns <= self.until_ns {
            return None;
        }
        let stall = self.hold()?;
        Some(Report::Stalled {
            stall,
            silent_ms: now_ns.saturating_sub(self.last_sent_ns) / 1_000_000,
            mono_ns: now_ns,
        })
    }

    /// Holds the lease until the agent revives the stall returned (a lapse,
    /// or [`Report::HeldAtView`]); `None` if one is held already (its
    /// revival waits for the same evidence).
    fn hold(&mut self) -> Option<u64> {
        if self.held.is_some() {
            return None;
        }
        self.stalls += 1;
        self.held = Some(self.stalls);
        Some(self.stalls)
    }

    /// A beat went out at `now_ns`: the lease runs `fence` from it, unless
    /// held, and no later than `echoes_ns` (mode `act`: the detector's
    /// echo fence, past which a majority may condemn this node; an earlier
    /// end there is no stall of this thread).
    fn renew(&mut self, now_ns: u64, fence: Duration, echoes_ns: Option<u64>) {
        self.last_sent_ns = now_ns;
        if self.held.is_some() {
            return;
        }
        let until = now_ns.saturating_add(u64::try_from(fence.as_nanos()).unwrap_or(u64::MAX));
        let written = echoes_ns.map_or(until, |e| e.min(until));
        match (self.writer)(written) {
            Ok(()) => {
                self.until_ns = until;
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(error = %e, "detector: cannot renew the beat lease (XDP falls silent)");
                }
                self.failing = true;
            }
        }
    }
}

/// Sleeps until the socket has a datagram, the agent wakes the thread
/// (`woken`), or `wait` has passed (to the microsecond: ppoll uses
/// high-resolution timers).
fn wait_readable(socket: &UdpSocket, woken: &UnixDatagram, wait: Duration) {
    use std::os::fd::AsRawFd;
    let mut fds = [socket.as_raw_fd(), woken.as_raw_fd()].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: two valid pollfds, a valid timespec, no signal mask.
    unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
}

/// Sends one beat to `peer` on `socket`. With `confirm` (its beats come), as
/// `MSG_CONFIRM`: the kernel's neighbour entry of the peer stays reachable
/// instead of going stale and being probed. Under heavy loss those ARP
/// probes fail (at 30 % each way, all three of a round one time in eight),
/// the entry fails, and the kernel drops every datagram to the peer until
/// a later probe gets through: seconds in which the peer cannot hear this
/// node however often it beats (in the 30 % loss test a node went unheard
/// for ~3 s while it answered, and its peer took it for silent). Hearing
/// the peer's beats is the evidence the flag stands for; corosync's
/// traffic to the peer shares the entry.
fn send_beat(
    socket: &UdpSocket,
    v6_socket: bool,
    bytes: &[u8],
    peer: SocketAddr,
    confirm: bool,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = if confirm { libc::MSG_CONFIRM } else { 0 };
    let (sa, len) = crate::net::sockaddr::sockaddr_from(peer, v6_socket);
    // SAFETY: a valid buffer of its length and a valid socket address
    // of the stated length, on the thread's own socket.
    let rc = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            flags,
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    match rc {
        -1 => Err(std::io::Error::last_os_error()),
        _ => Ok(()),
    }
}

fn now() -> Instant {
    Instant::from_std(std::time::Instant::now())
}

fn mono_ns() -> u64 {
    u64::try_from(monotonic_now().as_nanos()).unwrap_or(u64::MAX)
}

impl Thread {
    fn run(&mut self) {
        let mut next_beat = now();
        let mut buf = vec![0u8; crate::detect::beat::MAX_LEN + 1];
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(c) => self.command(c),
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => return,
                }
            }
            let t = now();
            if t >= next_beat {
                self.beat(t);
                // Keep the cadence; after a stall, start again from now.
                next_beat += self.timing.interval;
                if next_beat <= t {
                    next_beat = t + self.timing.interval;
                }
                self.publish();
            } else if self.extra_beat_due(t).is_some_and(|at| at <= t) {
                self.beat(t);
                self.extras.sent(t);
                self.publish();
            }
            let due = [
                Some(next_beat),
                self.detector.as_ref().and_then(|d| d.next_deadline()),
                self.extra_beat_due(t),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_beat);
            let wait = due.saturating_duration_since(now());
            // ppoll, not SO_RCVTIMEO: a socket timeout counts in scheduler
            // ticks (4 ms here: a 200 µs timeout slept 8 ms, and beats
            // came late enough to lapse the fence a dozen times a second).
            // Woken by every arrival, so a beat is counted when it came:
            // reading them once per beat instead saved a third of the
            // thread's CPU but made every loss and condemnation up to a
            // beat later (measured: +5 ms), and speed is the point here.
            wait_readable(&self.socket, &self.woken, wait);
            while self.woken.recv(&mut [0u8; 8]).is_ok() {}
            // Read everything waiting before judging anyone's silence (a
            // stall of this thread is not the peers' fault).
            while self.read(&mut buf) {}
            self.check();
        }
    }

    /// When a beat outside the period is due: my flag changed since my
    /// last beat, or a peer's did (see [`BeatsHandle::publish_act`]), or I
    /// lost a peer.
    fn extra_beat_due(&self, t: Instant) -> Option<Instant> {
        self.detector.as_ref()?;
        let flag = flag_of(self.act.load(Ordering::SeqCst));
        (flag != self.sent_flag || self.beat_soon).then(|| self.extras.due(t, self.timing.interval))
    }

    /// Sends my beat to every peer now and renews the beat lease from it.
    fn beat(&mut self, t: Instant) {
        let Some(d) = self.detector.as_mut() else {
            return;
        };
        let now_ns = mono_ns();
        let stalled = self.fence.as_mut().and_then(|f| f.lapsed(now_ns));
        let held = self.fence.as_ref().is_some_and(|f| f.held.is_some());
        let silent = held || now_ns >= self.answer_until.load(Ordering::Relaxed);
        d.set_silent(silent);
        // Debug evidence for reading a run of loss or load afterwards: the
        // peers take a departed member for silent on what its beats say, or
        // on not hearing it (see `Timing::silent_after`).
        if silent != self.said_silent {
            tracing::debug!(
                silent,
                held,
                mono_ns = now_ns,
                "detector: my beats now say I answer {}",
                if silent { "nothing" } else { "again" }
            );
            self.said_silent = silent;
        }
        if let Some(gap) = self.last_beat.map(|l| t.saturating_duration_since(l)) {
            if gap > self.timing.interval * 3 {
                tracing::debug!(
                    gap_ms = gap.as_millis() as u64,
                    mono_ns = now_ns,
                    "detector: my beat went out late"
                );
            }
        }
        self.last_beat = Some(t);
        let act = unpack_act(self.act.load(Ordering::SeqCst));
        if let Some(a) = act {
            d.set_act(a);
        }
        let beat = d.beat(t);
        self.sent_flag = act.is_some_and(|a| a.provisional);
        self.beat_soon = false;
        // Before it is sent: an acquisition that read an older
        // stamp waits for an echo of this beat or a later one.
        self.stamp.store(beat.stamp, Ordering::SeqCst);
        let bytes = beat.encode();
        let mut sent = self.peers.is_empty();
        for p in &self.peers {
            let heard = self.heard_from.get(p);
            let confirm =
                heard.is_some_and(|&at| t.saturating_duration_since(at) < self.timing.deadline);
            if send_beat(&self.socket, self.v6_socket, &bytes, *p, confirm).is_ok() {
                self.counts.sent += 1;
                sent = true;
            }
        }
        // Acting: the echo fence too, so a node a majority
        // stopped hearing is silent before anyone condemns it.
        let echoes_ns = act.and_then(|_| d.lease_until()).map(|u| {
            let ahead = u.saturating_duration_since(t).as_nanos();
            now_ns.saturating_add(u64::try_from(ahead).unwrap_or(u64::MAX))
        });
        if let (true, Some(f)) = (sent, self.fence.as_mut()) {
            f.renew(now_ns, self.timing.beat_fence(), echoes_ns);
        }
        if let Some(r) = stalled {
            let _ = self.reports.send(r);
        }
    }

    /// One datagram, if any: `false` when none came.
    fn read(&mut self, buf: &mut [u8]) -> bool {
        let (n, from) = match self.socket.recv_from(buf) {
            Ok(r) => r,
            Err(_) => return false,
        };
        let t = now();
        let Some(d) = self.detector.as_mut() else {
            return true;
        };
        let beat = (self.peers.contains(&from))
            .then(|| Beat::decode(&buf[..n]).ok())
            .flatten()
            .filter(|beat| d.receive(beat, t).is_ok());
        let Some(beat) = beat else {
            self.counts.ignored += 1;
            return true;
        };
        self.counts.received += 1;
        self.heard_from.insert(from, t);
        // A peer's flag changed: answer with a beat at once, which echoes
        // the one that carried it (the handshake waits for that echo).
        let flag = beat.act.is_some_and(|a| a.provisional);
        if self.flags.insert(from, flag).unwrap_or(false) != flag {
            self.beat_soon = true;
        }
        true
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::View { members, my_index } => {
                let Some(me) = members.get(my_index).cloned() else {
                    return;
                };
                self.hold_if_fenced_at_view(&members);
                if self.detector.as_ref().is_none_or(|d| d.me() != &me) {
                    self.detector = Some(Detector::new(me, self.group, self.timing, now()));
                }
                if let Some(d) = self.detector.as_mut() {
                    d.view(&members);
                }
            }
            Command::Clear => {
                if let Some(d) = self.detector.as_mut() {
                    d.clear();
                }
            }
            Command::Revive { stall } => {
                if let Some(f) = self.fence.as_mut() {
                    f.revive(stall);
                }
            }
        }
    }

    /// Mode `act`, before a new view of other members replaces the old:
    /// if the old view's echo fence is closed, a majority may have
    /// condemned this node (its peers lost it, and never echo it again
    /// while it stays in their view), so the lease stays held whatever the
    /// new view's fence says (see [`Report::HeldAtView`]). An open fence
    /// proves no majority lost it; a view of the same members (the ring
    /// re-formed) keeps what each peer lost, so its fence stays closed by
    /// itself (and a storm of re-formations does not silence everyone).
    fn hold_if_fenced_at_view(&mut self, members: &[MemberId]) {
        let acting = unpack_act(self.act.load(Ordering::SeqCst)).is_some();
        let Some(d) = self.detector.as_ref() else {
            return;
        };
        if !(acting && d.fenced(now())) || d.has_members(members) {
            return;
        }
        if let Some(stall) = self.fence.as_mut().and_then(|f| f.hold()) {
            let _ = self.reports.send(Report::HeldAtView {
                stall,
                mono_ns: mono_ns(),
            });
        }
    }

    fn check(&mut self) {
        let Some(d) = self.detector.as_mut() else {
            return;
        };
        let t = now();
        let polled = d.poll(t);
        // A loss is beaten at once: a peer condemns on a majority's
        // reports, and mine would otherwise reach it up to a period later
        // (the survivors' condemnations a period apart, the takeover
        // waiting for the later one).
        if !polled.lost.is_empty() {
            self.beat_soon = true;
        }
        let fenced = d.fenced(t);
        let answering = d.answering(t);
        let elsewhere = d.answering_elsewhere(t);
        let beating_elsewhere = d.beating_elsewhere(t);
        let views = d.views(t);
        let mates = d.mates(t);
        let handshake = d.handshake();
        let fell_silent: Vec<MemberId> = self.answering.difference(&answering).cloned().collect();
        for m in &fell_silent {
            // Why: its latest beat said so, or it went unheard (how long).
            let (heard_ms_ago, said_silent) =
                d.last_heard(m).map_or((None, None), |(at, silent)| {
                    (
                        Some(t.saturating_duration_since(at).as_millis() as u64),
                        Some(silent),
                    )
                });
            tracing::debug!(member = %m, ?heard_ms_ago, ?said_silent, "detector: a member fell silent");
        }
        let spoke_up: Vec<MemberId> = answering.difference(&self.answering).cloned().collect();
        let fence_changed = fenced != self.fenced;
        let handshake_changed = handshake != self.handshake;
        let none_elsewhere = elsewhere.is_empty() && !self.elsewhere.is_empty();
        let changed = !polled.lost.is_empty()
            || !polled.condemned.is_empty()
            || fence_changed
            || answering != self.answering
            || elsewhere != self.elsewhere
            || beating_elsewhere != self.beating_elsewhere
            || views != self.views
            || mates != self.mates
            || handshake_changed;
        self.fenced = fenced;
        self.answering = answering;
        self.elsewhere = elsewhere;
        self.beating_elsewhere = beating_elsewhere;
        self.views = views;
        self.mates = mates;
        self.handshake = handshake;
        // Published before the reports: an agent that reads the snapshot
        // after a report was sent sees at least as much as it says.
        if changed {
            self.publish();
        }
        let mono_ns = mono_ns();
        let reports = (polled.lost.into_iter())
            .map(|member| Report::Lost { member, mono_ns })
            .chain(
                (polled.condemned.into_iter()).map(|member| Report::Condemned { member, mono_ns }),
            )
            .chain(fence_changed.then_some(Report::Fenced { fenced, mono_ns }))
            .chain(
                fell_silent
                    .into_iter()
                    .map(|member| Report::FellSilent { member, mono_ns }),
            )
            .chain(
                spoke_up
                    .into_iter()
                    .map(|member| Report::SpokeUp { member, mono_ns }),
            )
            .chain(none_elsewhere.then_some(Report::NoneElsewhere { mono_ns }))
            .chain(
                (handshake_changed && self.awaiting.load(Ordering::SeqCst))
                    .then_some(Report::Handshake { mono_ns }),
            );
        for r in reports {
            let _ = self.reports.send(r);
        }
    }

    /// Shares the counters and what the detector sees now.
    fn publish(&self) {
        let (lost, condemned) = self.detector.as_ref().map_or_else(Default::default, |d| {
            (
                d.lost().cloned().collect(),
                d.condemned().iter().cloned().collect(),
            )
        });
        if let Ok(mut s) = self.shared.lock() {
            *s = Snapshot {
                counts: self.counts,
                lost,
                condemned,
                fenced: self.fenced,
                answering: self.answering.clone(),
                elsewhere: self.elsewhere.clone(),
                beating_elsewhere: self.beating_elsewhere.clone(),
                views: self.views.clone(),
                mates: self.mates.clone(),
                handshake: self.handshake.clone(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DetectorMode;
    use crate::detect::Timing;

    #[test]
    fn extra_beats_go_out_at_once_up_to_four_a_period() {
        let interval = Duration::from_millis(5);
        let t0 = Instant::now();
        let mut extras = ExtraBeats::default();
        for k in 0..4 {
            let t = t0 + Duration::from_micros(10 * k);
            assert_eq!(extras.due(t, interval), t, "extra beat {k} at once");
            extras.sent(t);
        }
        // The fifth waits until the first is a period old.
        let t = t0 + Duration::from_micros(100);
        assert_eq!(extras.due(t, interval), t0 + interval);
        extras.sent(t0 + interval);
        // Then the budget frees one at a time.
        let t = t0 + interval;
        assert_eq!(
            extras.due(t, interval),
            t0 + Duration::from_micros(10) + interval
        );
        let late = t0 + Duration::from_secs(1);
        assert_eq!(
            extras.due(late, interval),
            late,
            "a quiet period refills it"
        );
    }

    #[test]
    fn the_agents_act_news_reaches_the_thread_packed_and_whole() {
        let (handle, end) = detached();
        assert_eq!(handle.act(), None, "not acting: version 2 beats");
        for (position, provisional) in [(0, false), (0, true), (41, true), (1 << 40, false)] {
            handle.publish_act(position, provisional);
            let want = Some(Act {
                position,
                provisional,
            });
            assert_eq!(handle.act(), want);
            assert_eq!(unpack_act(end.act.load(Ordering::SeqCst)), want);
        }
        // A position past 2^62 saturates instead of reading as "not acting".
        handle.publish_act(u64::MAX, true);
        assert!(handle.act().is_some_and(|a| a.provisional));
        // Only beats stamped after the read count for an acquisition.
        assert_eq!(handle.next_stamp(), 1);
        end.stamp.store(77, Ordering::SeqCst);
        assert_eq!(handle.next_stamp(), 78);
    }

    /// A lease writer that records every lease end it writes.
    fn recording_writer() -> (FenceWriter, std::sync::Arc<std::sync::Mutex<Vec<u64>>>) {
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = written.clone();
        let writer: FenceWriter = Box::new(move |ns| {
            w.lock().expect("test lock").push(ns);
            Ok(())
        });
        (writer, written)
    }

    /// A fence that records every lease end it writes.
    fn recording_fence() -> (Fence, std::sync::Arc<std::sync::Mutex<Vec<u64>>>) {
        let (writer, written) = recording_writer();
        (Fence::new(writer), written)
    }

    /// Every report the thread has sent so far.
    fn drained(h: &mut BeatsHandle) -> Vec<Report> {
        std::iter::from_fn(|| h.reports.try_recv().ok()).collect()
    }

    /// Three beat threads on loopback (real sockets, real clock) on ports
    /// `base`..`base + 2`, in one view of m0..m2; acting ones publish a
    /// first position; m0's beat lease goes to `writer`.
    fn on_loopback(
        base: u16,
        timing: Timing,
        mode: DetectorMode,
        mut writer: Option<FenceWriter>,
    ) -> (Vec<MemberId>, Vec<BeatsHandle>) {
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|k| SocketAddr::from(([127, 0, 0, 1], base + k)))
            .collect();
        let members: Vec<MemberId> = (0..3).map(|k| MemberId(format!("m{k}"))).collect();
        let mut handles = Vec::new();
        for (k, &listen) in addrs.iter().enumerate() {
            let cfg = DetectorConfig {
                listen,
                peers: addrs.iter().copied().filter(|a| *a != listen).collect(),
                timing,
                mode,
            };
            let w = if k == 0 { writer.take() } else { None };
            let h = start_writing(&cfg, "test", w).expect("bind on loopback");
            if mode == DetectorMode::Act {
                h.publish_act(0, false);
            }
            h.tell(Command::View {
                members: members.clone(),
                my_index: k,
            });
            handles.push(h);
        }
        (members, handles)
    }

    /// Mode `act`: a view that comes while the echo fence is closed holds
    /// the beat lease, whatever the new view's fence says (here: a view of
    /// one, which has none), until the agent revives that stall; a view
    /// that comes while the fence is open holds nothing. Real threads on
    /// loopback, the default timing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_view_that_comes_while_the_echo_fence_is_closed_holds_the_lease() {
        let base = 30_000 + (std::process::id() % 5_000) as u16 * 2;
        let (writer, written) = recording_writer();
        let (members, mut handles) =
            on_loopback(base, Timing::DEFAULT, DetectorMode::Act, Some(writer));
        let held = |h: &mut BeatsHandle| -> Vec<u64> {
            (drained(h).into_iter())
                .filter_map(|r| match r {
                    Report::HeldAtView { stall, .. } => Some(stall),
                    _ => None,
                })
                .collect()
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut h0 = handles.remove(0);
        assert!(!h0.snapshot().fenced, "{:?}", h0.snapshot());
        h0.tell(Command::View {
            members: members.clone(),
            my_index: 0,
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(held(&mut h0), Vec::<u64>::new(), "the fence was open");
        // Its peers stop: nobody echoes it, its fence closes.
        drop(handles);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(h0.snapshot().fenced, "{:?}", h0.snapshot());
        // The ring re-forms with the same members: the peers keep what
        // they lost, the fence stays closed by itself, nothing is held.
        h0.tell(Command::View {
            members: members.clone(),
            my_index: 0,
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(held(&mut h0), Vec::<u64>::new(), "the same members");
        h0.tell(Command::View {
            members: members[..1].to_vec(),
            my_index: 0,
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(held(&mut h0), vec![1], "held at the view");
        let count = || written.lock().expect("test lock").len();
        let before = count();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(count(), before, "no renewal while held");
        let latest = || written.lock().expect("test lock").last().copied();
        assert!(latest().is_some_and(|ns| ns < mono_ns()), "silent");
        h0.tell(Command::Revive { stall: 1 });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            latest().is_some_and(|ns| ns > mono_ns()),
            "revived: a view of one answers (no echo fence)"
        );
    }

    /// The beat lease: renewed for `fence` from every beat sent; a beat
    /// that finds it lapsed holds it (no renewal, one report per stall)
    /// until the agent revives that stall, and only that one.
    #[test]
    fn a_lapsed_beat_lease_stays_lapsed_until_the_agent_revives_it() {
        let (mut f, written) = recording_fence();
        let ms = |n: u64| n * 1_000_000;
        let fence = Duration::from_millis(45);
        assert_eq!(f.lapsed(ms(1000)), None, "not armed before the first beat");
        f.renew(ms(1000), fence, None);
        assert_eq!(f.lapsed(ms(1045)), None);
        f.renew(ms(1045), fence, None);
        let stalled = f.lapsed(ms(1100));
        assert_eq!(
            stalled,
            Some(Report::Stalled {
                stall: 1,
                silent_ms: 55,
                mono_ns: ms(1100)
            })
        );
        assert_eq!(f.lapsed(ms(1105)), None, "one report per stall");
        f.renew(ms(1100), fence, None);
        f.revive(0);
        f.renew(ms(1105), fence, None);
        assert_eq!(f.lapsed(ms(1200)), None, "still held");
        f.revive(1);
        assert_eq!(
            f.lapsed(ms(1200)),
            None,
            "revived: not a lapse before its next beat"
        );
        f.renew(ms(1200), fence, None);
        assert_eq!(
            *written.lock().expect("test lock"),
            [ms(1045), ms(1090), ms(1245)]
        );
        assert!(matches!(
            f.lapsed(ms(1300)),
            Some(Report::Stalled { stall: 2, .. })
        ));
    }

    /// Mode `act`: the lease written ends at the echo fence when that comes
    /// first (at once when it has passed), and an end there is no stall:
    /// the beats' own deadline still decides that.
    #[test]
    fn the_echo_fence_caps_the_beat_lease_without_counting_as_a_stall() {
        let (mut f, written) = recording_fence();
        let ms = |n: u64| n * 1_000_000;
        let fence = Duration::from_millis(45);
        f.renew(ms(1000), fence, Some(ms(1020)));
        assert_eq!(
            f.lapsed(ms(1030)),
            None,
            "the echo fence ended it, not a stall"
        );
        f.renew(ms(1030), fence, Some(ms(1030)));
        f.renew(ms(1035), fence, Some(ms(2000)));
        assert_eq!(
            *written.lock().expect("test lock"),
            [ms(1020), ms(1030), ms(1080)]
        );
        assert!(matches!(f.lapsed(ms(1081)), Some(Report::Stalled { .. })));
    }

    /// A raised provisional flag is beaten at once and the peers answer it
    /// at once: with beats 2 s apart, the handshake's first rule holds
    /// within a round trip on loopback, where waiting for the periodic
    /// beats would take 2-4 s. Asserted within 1 s, half a period: a CI
    /// run on this loaded two-core host missed 100 ms (one peer's echo
    /// not yet in). The agent, waiting on the handshake, hears of the
    /// change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_raised_flag_is_beaten_and_answered_at_once() {
        let base = 20_000 + (std::process::id() % 5_000) as u16 * 3;
        let timing = Timing::new(Duration::from_secs(2), Duration::from_secs(12))
            .expect("six beats per deadline");
        let (members, mut handles) = on_loopback(base, timing, DetectorMode::Act, None);
        // The first beats (at start) are exchanged; the next are 2 s away.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!handles[0].snapshot().handshake.may_answer, "no flag yet");
        handles[0].await_handshake(true);
        let raised = std::time::Instant::now();
        handles[0].publish_act(0, true);
        let within = Duration::from_millis(1000);
        while !handles[0].snapshot().handshake.may_answer && raised.elapsed() < within {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let s = handles[0].snapshot();
        assert!(
            s.handshake.may_answer,
            "both peers echoed the flagged beat within {within:?}: {s:?}"
        );
        let reports = drained(&mut handles[0]);
        assert!(
            (reports.iter()).any(|r| matches!(r, Report::Handshake { .. })),
            "{reports:?}"
        );
        for h in &handles[1..] {
            let flagged = h.snapshot().handshake.flagged;
            assert!(flagged.contains(&members[0]), "{flagged:?}");
        }
        // Lowered: beaten at once too (an extra beat went out less than a
        // quarter period ago, so wait that out), the peers see it fall.
        handles[0].publish_act(0, false);
        let within = Duration::from_millis(1000);
        let lowered = std::time::Instant::now();
        while handles[1..]
            .iter()
            .any(|h| !h.snapshot().handshake.flagged.is_empty())
            && lowered.elapsed() < within
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for h in &handles[1..] {
            let flagged = h.snapshot().handshake.flagged;
            assert!(
                flagged.is_empty(),
                "the flag fell within {within:?}: {flagged:?}"
            );
        }
    }

    /// A loss is beaten at once: with beats 200 ms apart, each survivor
    /// condemns a silent third within a round trip of losing it (its
    /// mate's report comes in an extra beat), not at the mate's next
    /// periodic beat, 0-200 ms later.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loss_is_beaten_at_once() {
        let base = 10_000 + (std::process::id() % 5_000) as u16 * 2;
        let timing = Timing::new(Duration::from_millis(200), Duration::from_millis(1200))
            .expect("six beats per deadline");
        let (members, mut handles) = on_loopback(base, timing, DetectorMode::Observe, None);
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The third's thread ends: its beats stop.
        drop(handles.pop());
        let silent = &members[2];
        let start = std::time::Instant::now();
        let mut seen: Vec<(Option<u64>, Option<u64>)> = vec![(None, None); handles.len()];
        while seen.iter().any(|(l, c)| l.is_none() || c.is_none())
            && start.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
            for (h, s) in handles.iter_mut().zip(seen.iter_mut()) {
                for r in drained(h) {
                    match r {
                        Report::Lost { member, mono_ns } if &member == silent => {
                            s.0 = Some(mono_ns)
                        }
                        Report::Condemned { member, mono_ns } if &member == silent => {
                            s.1 = Some(mono_ns)
                        }
                        _ => {}
                    }
                }
            }
        }
        for (k, s) in seen.iter().enumerate() {
            let (Some(lost), Some(condemned)) = *s else {
                panic!("node {k} lost and condemned the silent third within 5 s: {seen:?}");
            };
            let after_ms = condemned.saturating_sub(lost) / 1_000_000;
            assert!(
                after_ms < 50,
                "node {k} condemned {after_ms} ms after its loss: {seen:?}"
            );
        }
    }

    /// Three beat threads on loopback (real sockets, real clock), one view:
    /// a quiet second loses nobody and never lets a fence lapse.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_threads_on_loopback_stay_quiet() {
        let base = 40_000 + (std::process::id() % 10_000) as u16 * 2;
        let (_, mut handles) = on_loopback(base, Timing::DEFAULT, DetectorMode::Observe, None);
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (k, h) in handles.iter_mut().enumerate() {
            let reports = drained(h);
            assert!(reports.is_empty(), "node {k}: {reports:?}");
            let s = h.snapshot();
            assert!(s.counts.received > 100, "node {k}: {s:?}");
            assert!(
                s.lost.is_empty() && s.condemned.is_empty() && !s.fenced,
                "{s:?}"
            );
        }
    }
}

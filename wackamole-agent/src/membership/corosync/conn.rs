//! One connection to the local corosync through `rust-corosync`: CPG for the
//! group, the quorum service for the ring id at connect time (and quorum
//! changes with `require_quorum`).
//!
//! rust-corosync callbacks are plain `fn` pointers called from inside
//! `dispatch` on the calling thread, with the crate's handle table locked.
//! They only append to a thread-local inbox that the engine drains after
//! `dispatch` returns; nothing in a callback calls back into corosync.

use super::tracker::{LivenessStep, Proc, Ring};
use rust_corosync::{cmap, cpg, quorum, CsError, DispatchFlags, NodeId, TrackFlags};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A callback, copied out of corosync's buffers.
#[derive(Debug)]
pub enum Raw {
    Deliver {
        sender: Proc,
        msg: Vec<u8>,
    },
    Confchg {
        members: Vec<Proc>,
        ring_change: bool,
        /// Left without a node-down (PROCDOWN, LEAVE): the node stays.
        departed: Vec<Proc>,
    },
    Totem {
        ring: Ring,
    },
    Quorum {
        quorate: bool,
        /// The ring the quorum state is for.
        ring: Ring,
    },
    Nodelist {
        ring: Ring,
    },
}

thread_local! {
    static INBOX: RefCell<Vec<Raw>> = const { RefCell::new(Vec::new()) };
}

fn push(raw: Raw) {
    // try_with: never panic across the C callback boundary.
    let _ = INBOX.try_with(|i| {
        if let Ok(mut i) = i.try_borrow_mut() {
            i.push(raw);
        }
    });
}

/// Takes everything the callbacks left on this thread.
pub fn drain() -> Vec<Raw> {
    INBOX
        .try_with(|i| {
            i.try_borrow_mut()
                .map(|mut i| std::mem::take(&mut *i))
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

fn proc_of(a: &cpg::Address) -> Proc {
    Proc {
        nodeid: u32::from(a.nodeid),
        pid: a.pid,
    }
}

fn on_deliver(_h: &cpg::Handle, _group: String, nodeid: NodeId, pid: u32, msg: &[u8], _len: usize) {
    push(Raw::Deliver {
        sender: Proc {
            nodeid: u32::from(nodeid),
            pid,
        },
        msg: msg.to_vec(),
    });
}

fn on_confchg(
    _h: &cpg::Handle,
    _group: &str,
    members: Vec<cpg::Address>,
    left: Vec<cpg::Address>,
    joined: Vec<cpg::Address>,
) {
    let ring_change = left
        .iter()
        .chain(joined.iter())
        .any(|a| matches!(a.reason, cpg::Reason::NodeDown | cpg::Reason::NodeUp));
    let departed = left
        .iter()
        .filter(|a| !matches!(a.reason, cpg::Reason::NodeDown | cpg::Reason::NodeUp))
        .map(proc_of)
        .collect();
    push(Raw::Confchg {
        members: members.iter().map(proc_of).collect(),
        ring_change,
        departed,
    });
}

fn on_totem(_h: &cpg::Handle, ring: cpg::RingId, _members: Vec<NodeId>) {
    push(Raw::Totem {
        ring: Ring {
            nodeid: u32::from(ring.nodeid),
            seq: ring.seq,
        },
    });
}

fn on_quorum(_h: &quorum::Handle, quorate: bool, ring: quorum::RingId, _members: Vec<NodeId>) {
    push(Raw::Quorum {
        quorate,
        ring: ring_of(ring),
    });
}

/// The quorum service's ring id as the tracker's.
fn ring_of(ring: quorum::RingId) -> Ring {
    Ring {
        nodeid: u32::from(ring.nodeid),
        seq: ring.seq,
    }
}

fn on_nodelist(
    _h: &quorum::Handle,
    ring: quorum::RingId,
    _members: Vec<NodeId>,
    _joined: Vec<NodeId>,
    _left: Vec<NodeId>,
) {
    push(Raw::Nodelist {
        ring: ring_of(ring),
    });
}

/// A descriptor owned by libqb; we only poll it.
pub struct BorrowedFd(RawFd);

impl AsRawFd for BorrowedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Registers a libqb descriptor with the runtime for readability.
fn register(fd: RawFd, what: &'static str) -> Result<AsyncFd<BorrowedFd>, CallError> {
    // SAFETY: the descriptor belongs to a corosync handle that the same `Conn`
    // owns; `Conn` declares its AsyncFds before its handles, so they are
    // deregistered before the handles are finalized and the descriptor closed.
    unsafe { AsyncFd::register_with_interest(BorrowedFd(fd), Interest::READABLE) }.map_err(|_| {
        CallError {
            call: what,
            err: CsError::CsErrLibrary,
        }
    })
}

/// What went wrong, with the corosync call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {err}")]
pub struct CallError {
    pub call: &'static str,
    pub err: CsError,
}

pub(super) fn call<T>(call: &'static str, r: Result<T, CsError>) -> Result<T, CallError> {
    r.map_err(|err| CallError { call, err })
}

/// Calls `f` until it stops answering "try again" (corosync busy, e.g. during
/// a ring change), sleeping with exponential backoff, at most `budget` long.
pub async fn retry<T>(
    name: &'static str,
    budget: Duration,
    mut f: impl FnMut() -> Result<T, CsError>,
) -> Result<T, CallError> {
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(CsError::CsErrTryAgain) if start.elapsed() < budget => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            r => return call(name, r),
        }
    }
}

/// A live connection. Field order matters: the poll registrations are dropped
/// before the handles close their descriptors.
pub struct Conn {
    cpg_fd: AsyncFd<BorrowedFd>,
    quorum_fd: Option<AsyncFd<BorrowedFd>>,
    cpg: cpg::Handle,
    quorum: Option<quorum::Handle>,
    pub me: Proc,
    /// The ring current at connect time.
    pub ring: Ring,
    /// Quorate at connect time (always true without `require_quorum`).
    pub quorate: bool,
    /// (token, consensus) in ms from cmap, if readable.
    pub totem_timers: Option<(u32, u32)>,
    /// Corosync's process id (the IPC socket's peer), if visible here.
    pub corosync_pid: Option<u32>,
}

/// Whether corosync is alive: when corosync's pid is known, a thread reads
/// the process's state every `interval` and records when it last saw it
/// neither stopped nor gone; otherwise a thread with its own cmap connection
/// asks corosync for a key every `interval` and records when it last got an
/// answer. A frozen corosync (SIGSTOP) passes neither. One re-forming its
/// ring answers IPC at once, except while it synchronises its services after
/// a view change: then it holds every IPC request back (seen for 0.8-3 s on
/// this loaded 2-core host when a node came back), and only the process
/// state tells it from a frozen one (the IPC thread blocks in the call
/// meanwhile). The thread ends when the guard is dropped (or the connection
/// fails). While our own probes come back (the engine notes each), it skips
/// its check: the probes are the sign of life.
///
/// Not both: the two record the same "last seen alive", and corosync
/// answering IPC implies its process runs, so with the process visible an
/// IPC thread would add nothing but a wakeup every period (and an IPC
/// connection).
///
/// The engine's own thread blocks too, in its next `cpg_mcast_joined`, and
/// can publish no evidence then: the process thread vouches for it (see
/// [`Vouch`]).
///
/// The process thread checks every period only while probes stall or did
/// within the stall limit ([`Liveness::stalled`]; a ring re-formation, and
/// the synchronisation that holds IPC back, follow a stall): in between it
/// sleeps [`PARKED_CHECK`] at a time instead of waking every period for
/// nothing (one of the few wakeups per period of an idle agent). A call
/// that holds the engine thread right after a healthy tick is vouched for
/// only from the thread's next wakeup (the lease may lapse meanwhile:
/// silence, never a longer lease); the holds seen come with the
/// synchronisation after a re-formation, which a stall precedes.
pub struct Liveness {
    epoch: Instant,
    last_ok_ms: Arc<AtomicU64>,
    /// When (ms after `epoch`, 0: not) the engine thread entered a corosync
    /// call it is still in.
    in_call_ms: Arc<AtomicU64>,
    /// Until when (ms after `epoch`) the process thread checks every period.
    watch_until_ms: Arc<AtomicU64>,
    stall_limit: Duration,
    /// The checking thread, to wake when probes stall.
    thread: std::thread::Thread,
    /// Corosync's `/proc/<pid>/stat`, when visible: read at once when a
    /// stall wakes the parked thread (see [`Liveness::stalled`]).
    stat: Option<Arc<std::fs::File>>,
    stop: Arc<AtomicBool>,
}

/// How long the process thread sleeps at a time while probes come back and
/// none stalled within the stall limit.
pub const PARKED_CHECK: Duration = Duration::from_secs(1);

/// What the process thread needs to give the agent liveness evidence while
/// the engine thread is held in a corosync call: corosync's process running
/// and the call younger than the stall limit, the rule by which the engine
/// counts corosync's signs of life while probes stall
/// ([`super::tracker::ipc_counts`]).
pub struct Vouch {
    pub alive: tokio::sync::watch::Sender<Option<crate::membership::Alive>>,
    pub takeover_floor: Duration,
    pub stall_limit: Duration,
}

impl Liveness {
    pub fn start(
        interval: Duration,
        corosync_pid: Option<u32>,
        vouch: Vouch,
    ) -> Result<Liveness, CallError> {
        let epoch = Instant::now();
        let last_ok_ms = Arc::new(AtomicU64::new(0));
        let in_call_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let spawn_failed = |_| CallError {
            call: "spawn liveness thread",
            err: CsError::CsErrNoResources,
        };
        // Opened once and re-read in place (procfs regenerates it on every
        // read at offset 0): no open, stat, close and allocation every
        // period. A dead process fails the read. Not readable (another pid
        // namespace, hidden /proc): the IPC thread instead.
        let stat = corosync_pid
            .and_then(|pid| std::fs::File::open(format!("/proc/{pid}/stat")).ok())
            .map(Arc::new);
        let Some(file) = stat.clone() else {
            let h = call("cmap_initialize", cmap::initialize(cmap::Map::Icmap))?;
            let (last, halt) = (last_ok_ms.clone(), stop.clone());
            let t = std::thread::Builder::new()
                .name("corosync-liveness".into())
                .spawn(move || {
                    while !halt.load(Ordering::Relaxed) {
                        // A probe back within the period already showed it.
                        if !seen_within(&last, epoch, interval) {
                            if cmap::get(&h, "runtime.config.totem.token").is_err() {
                                return;
                            }
                            seen_alive(&last, epoch);
                        }
                        std::thread::sleep(interval);
                    }
                })
                .map_err(spawn_failed)?;
            return Ok(Liveness {
                epoch,
                last_ok_ms,
                in_call_ms,
                watch_until_ms: Arc::new(AtomicU64::new(u64::MAX)),
                stall_limit: vouch.stall_limit,
                thread: t.thread().clone(),
                stat: None,
                stop,
            });
        };
        // Watching from the start: the session's first probes are yet to come.
        let watch_until_ms = Arc::new(AtomicU64::new(ms_since(epoch, vouch.stall_limit)));
        let (last, halt, in_call, watch_until) = (
            last_ok_ms.clone(),
            stop.clone(),
            in_call_ms.clone(),
            watch_until_ms.clone(),
        );
        let t = std::thread::Builder::new()
            .name("corosync-proc".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while !halt.load(Ordering::Relaxed) {
                    // Probes coming back and the engine thread free: no
                    // process state needed (nor any vouching).
                    let step = super::tracker::liveness_step(
                        in_call.load(Ordering::Relaxed) != 0,
                        seen_within(&last, epoch, interval),
                        ms_since(epoch, Duration::ZERO) < watch_until.load(Ordering::Relaxed),
                    );
                    match step {
                        LivenessStep::Check => {}
                        LivenessStep::Sleep => {
                            std::thread::sleep(interval);
                            continue;
                        }
                        LivenessStep::Park => {
                            // Until the engine sees a probe stall.
                            std::thread::park_timeout(PARKED_CHECK);
                            continue;
                        }
                    }
                    match read_stat(&file, &mut buf) {
                        Ok(stat) if super::tracker::process_runs(&stat) => {
                            seen_alive(&last, epoch);
                            let since = in_call.load(Ordering::Relaxed);
                            let held = (since != 0).then(|| {
                                epoch.elapsed().saturating_sub(Duration::from_millis(since))
                            });
                            if super::tracker::ipc_counts(held, interval, vouch.stall_limit) {
                                crate::membership::Alive::publish(
                                    &vouch.alive,
                                    crate::membership::Alive {
                                        at: tokio::time::Instant::now(),
                                        takeover_floor: vouch.takeover_floor,
                                        revives: false,
                                    },
                                );
                            }
                        }
                        Ok(_) => {}
                        // Gone: the IPC connection reports it.
                        Err(_) => return,
                    }
                    std::thread::sleep(interval);
                }
            })
            .map_err(spawn_failed)?;
        Ok(Liveness {
            epoch,
            last_ok_ms,
            in_call_ms,
            watch_until_ms,
            stall_limit: vouch.stall_limit,
            thread: t.thread().clone(),
            stat,
            stop,
        })
    }

    /// A probe of ours is late or refused (the engine checks at every
    /// tick): the process thread checks every period from now until the
    /// stall limit after the last such call, so it is awake for the
    /// synchronisation that follows a ring re-formation.
    ///
    /// Waking a parked thread, it also reads corosync's process state at
    /// once: the engine judges this very tick by how long corosync has
    /// been silent, and the thread's first check would come after it (the
    /// lease, three periods long, could lapse at the next tick of a ring
    /// re-formation that began just after a probe came back).
    pub fn stalled(&self) {
        let until = ms_since(self.epoch, self.stall_limit);
        if self.watch_until_ms.fetch_max(until, Ordering::Relaxed)
            < ms_since(self.epoch, Duration::ZERO)
        {
            if let Some(file) = &self.stat {
                let mut buf = [0u8; 4096];
                if read_stat(file, &mut buf).is_ok_and(|s| super::tracker::process_runs(&s)) {
                    seen_alive(&self.last_ok_ms, self.epoch);
                }
            }
            self.thread.unpark();
        }
    }

    /// Runs `f`, a corosync call that may block (corosync holds IPC back
    /// while it synchronises), marked as such for the process thread.
    pub fn in_call<T>(&self, f: impl FnOnce() -> T) -> T {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.in_call_ms.store(ms.max(1), Ordering::Relaxed);
        let r = f();
        self.in_call_ms.store(0, Ordering::Relaxed);
        r
    }

    /// Our own probe came back now: corosync is alive, and the thread's
    /// check (a procfs read, or an IPC round trip without the process)
    /// waits until probes stall.
    pub fn probe_back(&self) {
        seen_alive(&self.last_ok_ms, self.epoch);
    }

    /// How long corosync has shown no sign of life.
    pub fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ok_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// Corosync's process state line, read in place (procfs regenerates it
/// on every read at offset 0).
fn read_stat<'a>(
    file: &std::fs::File,
    buf: &'a mut [u8; 4096],
) -> std::io::Result<std::borrow::Cow<'a, str>> {
    let n = std::os::unix::fs::FileExt::read_at(file, buf, 0)?;
    Ok(String::from_utf8_lossy(&buf[..n]))
}

/// Ms after `epoch` of now + `ahead`.
fn ms_since(epoch: Instant, ahead: Duration) -> u64 {
    u64::try_from((epoch.elapsed() + ahead).as_millis()).unwrap_or(u64::MAX)
}

/// Records "alive now" (the later of the two threads' sightings).
fn seen_alive(last: &AtomicU64, epoch: Instant) {
    let ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    last.fetch_max(ms, Ordering::Relaxed);
}

/// Whether corosync was seen alive within `period`.
fn seen_within(last: &AtomicU64, epoch: Instant, period: Duration) -> bool {
    let seen = Duration::from_millis(last.load(Ordering::Relaxed));
    epoch.elapsed().saturating_sub(seen) < period
}

/// The process at the other end of a Unix socket (SO_PEERCRED), if it is
/// visible in our pid namespace.
fn peer_pid(fd: RawFd) -> Option<u32> {
    // SAFETY: an all-zero ucred is valid; getsockopt fills it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt on a descriptor we hold, into a buffer of `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0)
        .then(|| u32::try_from(cred.pid).ok())
        .flatten()
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.unpark();
    }
}

/// Reads the running totem token and consensus timeouts (ms) from cmap.
fn totem_timers() -> Option<(u32, u32)> {
    let h = cmap::initialize(cmap::Map::Icmap).ok()?;
    let get = |key: &str| match cmap::get(&h, key).ok()? {
        cmap::Data::UInt32(v) => Some(v),
        _ => None,
    };
    Some((
        get("runtime.config.totem.token")?,
        get("runtime.config.totem.consensus")?,
    ))
}

const CALL_BUDGET: Duration = Duration::from_secs(5);

/// How long joining the group may meet "try again": corosync holds joins
/// back while it synchronises a new ring, which took over 5 s with eight
/// nodes on a loaded 2-core host (the agent then exited at start).
pub const JOIN_BUDGET: Duration = Duration::from_secs(30);

/// How long joining may meet "try again" before the engine looks for a
/// ghost of this process in the group (a leave corosync lost). A leave
/// that is merely late is delivered well within this (a ring change and
/// a sync).
pub const GHOST_AFTER: Duration = Duration::from_secs(3);

impl Conn {
    /// Connects, learns the current ring and quorum state, and (if `join`)
    /// joins `group`. Must run on the engine's thread and runtime.
    pub async fn open(group: &str, join: bool, track_quorum: bool) -> Result<Conn, CallError> {
        let model = cpg::ModelData::ModelV1(cpg::Model1Data {
            flags: cpg::Model1Flags::None,
            deliver_fn: Some(on_deliver),
            confchg_fn: Some(on_confchg),
            totem_confchg_fn: Some(on_totem),
        });
        let cpg_handle =
            retry("cpg_initialize", CALL_BUDGET, || cpg::initialize(&model, 0)).await?;
        let nodeid = call("cpg_local_get", cpg::local_get(&cpg_handle))?;
        let me = Proc {
            nodeid: u32::from(nodeid),
            pid: std::process::id(),
        };

        // The ring id: CPG only reports it on the next ring change, so ask the
        // quorum service (its nodelist notification carries the same
        // last-sync ring id). Asked after cpg_initialize, so that any later
        // ring change also reaches us as a totem_confchg.
        let qmodel = quorum::ModelData::ModelV1(quorum::Model1Data {
            flags: quorum::Model1Flags::None,
            quorum_notification_fn: Some(on_quorum),
            nodelist_notification_fn: Some(on_nodelist),
        });
        let (qh, _) = retry("quorum_initialize", CALL_BUDGET, || {
            quorum::initialize(&qmodel, 0)
        })
        .await?;
        let flags = if track_quorum {
            TrackFlags::Changes
        } else {
            TrackFlags::Current
        };
        retry("quorum_trackstart", CALL_BUDGET, || {
            quorum::trackstart(&qh, flags)
        })
        .await?;
        let mut ring = None;
        let mut quorate = None;
        while ring.is_none() || quorate.is_none() {
            // Both notifications were queued before trackstart returned.
            call("quorum_dispatch", quorum::dispatch(&qh, DispatchFlags::One))?;
            for raw in drain() {
                match raw {
                    Raw::Nodelist { ring: r } => ring = Some(r),
                    Raw::Quorum { quorate: q, .. } => quorate = Some(q),
                    _ => {}
                }
            }
        }
        let (ring, quorate) = (ring.unwrap_or_default(), quorate.unwrap_or(true));
        let (quorum_fd, quorum) = if track_quorum {
            let fd = call("quorum_fd_get", quorum::fd_get(&qh))?;
            let afd = register(fd, "register quorum fd")?;
            (Some(afd), Some(qh))
        } else {
            drop(qh);
            (None, None)
        };

        let fd = call("cpg_fd_get", cpg::fd_get(&cpg_handle))?;
        let corosync_pid = peer_pid(fd);
        let cpg_fd = register(fd, "register cpg fd")?;
        let conn = Conn {
            cpg_fd,
            quorum_fd,
            cpg: cpg_handle,
            quorum,
            me,
            ring,
            quorate: quorate || !track_quorum,
            totem_timers: totem_timers(),
            corosync_pid,
        };
        if join {
            conn.join_group(group).await?;
        }
        Ok(conn)
    }

    /// Joins `group`, retrying while corosync answers "try again". If that
    /// lasts [`GHOST_AFTER`] and the group lists this process, its leave was
    /// lost (see [`super::ghost`]): send it again, then go on joining.
    pub async fn join_group(&self, group: &str) -> Result<(), CallError> {
        let start = tokio::time::Instant::now();
        loop {
            let budget = GHOST_AFTER.min(JOIN_BUDGET.saturating_sub(start.elapsed()));
            match retry("cpg_join", budget, || cpg::join(&self.cpg, group)).await {
                Err(CallError {
                    err: CsError::CsErrTryAgain,
                    ..
                }) if start.elapsed() < JOIN_BUDGET => self.lay_ghost(group).await,
                r => return r,
            }
        }
    }

    async fn lay_ghost(&self, group: &str) {
        match super::ghost::listed(&self.cpg, group) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!("corosync group {group}: looking for a ghost of ours: {e}");
                return;
            }
        }
        tracing::warn!(
            "corosync group {group}: joining keeps meeting \"try again\" and the group still \
             lists this process: corosync lost our last leave; sending it again"
        );
        match super::ghost::lay(group).await {
            Ok(true) => tracing::info!("corosync group {group}: our lost leave is delivered"),
            Ok(false) => tracing::info!(
                "corosync group {group}: our last leave was late, not lost: it arrived meanwhile"
            ),
            Err(e) => tracing::warn!("corosync group {group}: sending our lost leave: {e}"),
        }
    }

    pub async fn leave_group(&self, group: &str) -> Result<(), CallError> {
        retry("cpg_leave", CALL_BUDGET, || cpg::leave(&self.cpg, group)).await
    }

    /// One non-blocking multicast attempt (agreed order).
    pub fn mcast(&self, msg: &[u8]) -> Result<(), CsError> {
        cpg::mcast_joined(&self.cpg, cpg::Guarantee::TypeAgreed, msg)
    }

    /// Waits until CPG has something, dispatches all of it, returns the callbacks.
    pub async fn cpg_ready(&self) -> Result<Vec<Raw>, CallError> {
        let mut guard = self.cpg_fd.readable().await.map_err(|_| CallError {
            call: "poll cpg fd",
            err: CsError::CsErrLibrary,
        })?;
        let r = self.dispatch_cpg();
        guard.clear_ready();
        r
    }

    /// Dispatches whatever CPG has queued, without waiting.
    pub fn dispatch_cpg(&self) -> Result<Vec<Raw>, CallError> {
        match cpg::dispatch(&self.cpg, DispatchFlags::All) {
            Ok(()) | Err(CsError::CsErrTryAgain) => Ok(drain()),
            Err(err) => {
                drain();
                Err(CallError {
                    call: "cpg_dispatch",
                    err,
                })
            }
        }
    }

    /// Waits until the quorum service has something (never, without quorum tracking).
    pub async fn quorum_ready(&self) -> Result<Vec<Raw>, CallError> {
        let (Some(afd), Some(h)) = (&self.quorum_fd, &self.quorum) else {
            return std::future::pending().await;
        };
        let mut guard = afd.readable().await.map_err(|_| CallError {
            call: "poll quorum fd",
            err: CsError::CsErrLibrary,
        })?;
        let r = match quorum::dispatch(h, DispatchFlags::All) {
            Ok(()) | Err(CsError::CsErrTryAgain) => Ok(drain()),
            Err(err) => {
                drain();
                Err(CallError {
                    call: "quorum_dispatch",
                    err,
                })
            }
        };
        guard.clear_ready();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checking thread parked (probes came back, no stall lately): the
    /// tick that first sees a probe late must find corosync's process seen
    /// just now, not at the thread's last check (here: our own process
    /// stands in for corosync's).
    #[test]
    fn a_stall_that_wakes_the_parked_thread_reads_the_process_at_once() {
        let interval = Duration::from_millis(100);
        let vouch = Vouch {
            alive: tokio::sync::watch::channel(None).0,
            takeover_floor: Duration::from_millis(110),
            stall_limit: Duration::from_millis(1),
        };
        let liveness = match Liveness::start(interval, Some(std::process::id()), vouch) {
            Ok(l) => l,
            Err(e) => panic!("liveness: {e:?}"),
        };
        // Probes come back for a while: the thread parks (for up to
        // PARKED_CHECK); then they stop.
        for _ in 0..15 {
            liveness.probe_back();
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            liveness.silent_for() > interval,
            "{:?}",
            liveness.silent_for()
        );
        liveness.stalled();
        assert!(
            liveness.silent_for() < interval,
            "{:?}",
            liveness.silent_for()
        );
    }
}

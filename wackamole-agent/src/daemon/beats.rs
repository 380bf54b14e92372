//! The detector's I/O (issue 11): one thread beats to the configured peers
//! over UDP, reads theirs, runs the [`Detector`] and reports what changed.
//!
//! A thread of its own, not a task: beats every few milliseconds must not
//! wait behind the agent's batches (thousands of netlink requests), and the
//! thread asks for real-time scheduling where it may (as corosync does), so
//! a busy host does not make its beats look like a crash. The agent tells
//! it the views; it tells the agent who was lost and condemned, and whether
//! the fence it would impose holds ([`mode`](crate::config::DetectorMode)
//! `observe`: nothing else is done with them yet).

use crate::config::DetectorConfig;
use crate::dataplane::monotonic_now;
use crate::detect::{Beat, Detector, Ignored};
use crate::membership::MemberId;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the agent tells the thread.
#[derive(Debug)]
pub enum Command {
    /// A regular view, with me at `my_index`.
    View {
        members: Vec<MemberId>,
        my_index: usize,
    },
    /// No view (engine lost, left the group).
    Clear,
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
}

/// Counters the metrics page shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub received: u64,
    pub ignored: u64,
    pub send_errors: u64,
}

pub struct BeatsHandle {
    pub reports: mpsc::UnboundedReceiver<Report>,
    commands: std_mpsc::Sender<Command>,
    counts: std::sync::Arc<std::sync::Mutex<Counts>>,
}

impl BeatsHandle {
    pub fn tell(&self, c: Command) {
        // The thread only ends with the process (or on a socket failure it
        // has reported); nothing to do if it is gone.
        let _ = self.commands.send(c);
    }

    pub fn counts(&self) -> Counts {
        self.counts.lock().map(|c| *c).unwrap_or_default()
    }
}

/// Binds the beat socket and starts the thread. The group name tags the
/// beats, so two clusters on one LAN ignore each other.
pub fn start(cfg: &DetectorConfig, group: &str) -> anyhow::Result<BeatsHandle> {
    let socket = UdpSocket::bind(cfg.listen)
        .map_err(|e| anyhow::anyhow!("detector: cannot bind {}: {e}", cfg.listen))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| anyhow::anyhow!("detector: {}: {e}", cfg.listen))?;
    let (tx, reports) = mpsc::unbounded_channel();
    let (commands, rx) = std_mpsc::channel();
    let counts = std::sync::Arc::new(std::sync::Mutex::new(Counts::default()));
    let mut thread = Thread {
        socket,
        peers: cfg.peers.clone(),
        timing: cfg.timing,
        group: crate::detect::group_tag(group),
        detector: None,
        commands: rx,
        reports: tx,
        counts: counts.clone(),
        fenced: false,
        lost: Default::default(),
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
        counts,
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
    peers: Vec<SocketAddr>,
    timing: crate::detect::Timing,
    group: u64,
    /// `None` until the first view tells me who I am.
    detector: Option<Detector>,
    commands: std_mpsc::Receiver<Command>,
    reports: mpsc::UnboundedSender<Report>,
    counts: std::sync::Arc<std::sync::Mutex<Counts>>,
    fenced: bool,
    lost: std::collections::BTreeSet<MemberId>,
}

/// Sleeps until the socket has a datagram or `wait` has passed (to the
/// microsecond: ppoll uses high-resolution timers).
fn wait_readable(socket: &UdpSocket, wait: Duration) {
    use std::os::fd::AsRawFd;
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    unsafe { libc::ppoll(&mut fds, 1, &ts, std::ptr::null()) };
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
        let mut counts = Counts::default();
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
                if let Some(d) = self.detector.as_mut() {
                    let bytes = d.beat(t).encode();
                    for p in &self.peers {
                        match self.socket.send_to(&bytes, p) {
                            Ok(_) => counts.sent += 1,
                            Err(_) => counts.send_errors += 1,
                        }
                    }
                }
                // Keep the cadence; after a stall, start again from now.
                next_beat += self.timing.interval;
                if next_beat <= t {
                    next_beat = t + self.timing.interval;
                }
                if let Ok(mut c) = self.counts.lock() {
                    *c = counts;
                }
            }
            let due = self
                .detector
                .as_ref()
                .and_then(|d| d.next_deadline())
                .map_or(next_beat, |d| d.min(next_beat));
            let wait = due.saturating_duration_since(now());
            // ppoll, not SO_RCVTIMEO: a socket timeout counts in scheduler
            // ticks (4 ms here: a 200 µs timeout slept 8 ms, and beats
            // came late enough to lapse the fence a dozen times a second).
            // Woken by every arrival, so a beat is counted when it came:
            // reading them once per beat instead saved a third of the
            // thread's CPU but made every loss and condemnation up to a
            // beat later (measured: +5 ms), and speed is the point here.
            wait_readable(&self.socket, wait);
            // Read everything waiting before judging anyone's silence (a
            // stall of this thread is not the peers' fault).
            while self.read(&mut buf, &mut counts) {}
            self.check();
        }
    }

    /// One datagram, if any: `false` when none came.
    fn read(&mut self, buf: &mut [u8], counts: &mut Counts) -> bool {
        let (n, from) = match self.socket.recv_from(buf) {
            Ok(r) => r,
            Err(_) => return false,
        };
        let t = now();
        let Some(d) = self.detector.as_mut() else {
            return true;
        };
        if !self.peers.contains(&from) {
            counts.ignored += 1;
            return true;
        }
        match Beat::decode(&buf[..n]) {
            Ok(beat) => match d.receive(&beat, t) {
                Ok(()) => counts.received += 1,
                Err(Ignored::OtherGroup | Ignored::NotAPeer | Ignored::Stale) => {
                    counts.ignored += 1
                }
            },
            Err(_) => counts.ignored += 1,
        }
        true
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::View { members, my_index } => {
                let Some(me) = members.get(my_index).cloned() else {
                    return;
                };
                if self.detector.as_ref().is_none_or(|d| d.me() != &me) {
                    self.detector = Some(Detector::new(me, self.group, self.timing, now()));
                    self.lost.clear();
                }
                if let Some(d) = self.detector.as_mut() {
                    d.view(&members);
                }
                self.lost.retain(|m| members.contains(m));
            }
            Command::Clear => {
                if let Some(d) = self.detector.as_mut() {
                    d.clear();
                }
                self.lost.clear();
            }
        }
    }

    fn check(&mut self) {
        let Some(d) = self.detector.as_mut() else {
            return;
        };
        let t = now();
        let condemned = d.poll(t);
        for m in d.lost() {
            if self.lost.insert(m.clone()) {
                let _ = self.reports.send(Report::Lost {
                    member: m.clone(),
                    mono_ns: mono_ns(),
                });
            }
        }
        for member in condemned {
            let _ = self.reports.send(Report::Condemned {
                member,
                mono_ns: mono_ns(),
            });
        }
        let until = d.lease_until();
        let fenced = until.is_some_and(|u| u <= t);
        if fenced != self.fenced {
            self.fenced = fenced;
            let _ = self.reports.send(Report::Fenced {
                fenced,
                mono_ns: mono_ns(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DetectorMode;
    use crate::detect::Timing;

    /// Three beat threads on loopback (real sockets, real clock), one view:
    /// a quiet second loses nobody and never lets a fence lapse.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_threads_on_loopback_stay_quiet() {
        let base = 40_000 + (std::process::id() % 10_000) as u16 * 2;
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|k| SocketAddr::from(([127, 0, 0, 1], base + k)))
            .collect();
        let members: Vec<MemberId> = (0..3).map(|k| MemberId(format!("m{k}"))).collect();
        let mut handles = Vec::new();
        for k in 0..3 {
            let cfg = DetectorConfig {
                listen: addrs[k],
                peers: addrs.iter().copied().filter(|a| *a != addrs[k]).collect(),
                timing: Timing::DEFAULT,
                mode: DetectorMode::Observe,
            };
            let h = start(&cfg, "test").expect("bind on loopback");
            h.tell(Command::View {
                members: members.clone(),
                my_index: k,
            });
            handles.push(h);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (k, h) in handles.iter_mut().enumerate() {
            let mut reports = Vec::new();
            while let Ok(r) = h.reports.try_recv() {
                reports.push(r);
            }
            assert!(reports.is_empty(), "node {k}: {reports:?}");
            let c = h.counts();
            assert!(c.received > 100, "node {k}: {c:?}");
        }
    }
}

//! Client prober: probes every VIP once per interval (1 ms by default) and
//! records who answered each probe and when.
//!
//! One UDP socket; the sending loop sends a whole *round* (one probe per VIP)
//! with `sendmmsg` in batches of up to 1024 messages, so 1000 VIPs cost about
//! one system call per round, then sleeps until the next round on an absolute
//! `CLOCK_MONOTONIC` schedule (timer slack lowered to 1 µs so the interval stays
//! even). A receiving thread drains replies with `recvmmsg`. The run is bounded:
//! it stops sending after `duration`, waits for late replies until none came for
//! `grace` (at most [`MAX_DRAIN`]), reads what is still queued, and keeps at most
//! `max_answers` records (the rest are only counted).
//!
//! Throughput: every probe crosses veth, bridge and the node's stack inside
//! the sender's system call, about 6 µs of CPU per probe here, so one sender
//! thread manages roughly 150k probes/s on an idle core: 1000 VIPs are probed
//! every ~7 ms rather than every 1 ms. [`ProberConfig::senders`] spreads a
//! round over several threads (and [`super::responder::Responder::start_in_threads`]
//! the answers) where cores are free. The run reports what it achieved
//! ([`ProbeRun::round_rate_hz`], `late_rounds`) and the replies the kernel
//! dropped on the way ([`ProbeRun::socket_drops`], responder `socket_drops`):
//! losses there belong to the measurement, not to the failover.
//!
//! Probes go only to the addresses in [`ProberConfig::vips`], IPv4 or IPv6:
//! an IPv4-only list uses an IPv4 socket exactly as before; a list with IPv6
//! addresses needs a dual-stack IPv6 socket ([`bind_prober_for`]), where IPv4
//! VIPs are reached as v4-mapped addresses.

use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::analysis::{Answer, ProbeRun};
use super::now_ns;
use super::responder::{
    decode_reply, encode_probe, ip_of, is_v6_socket, recv_info, sockaddr_of, CmsgBuf, ProbeHeader,
    CMSG_BUF, MAX_REPLY_LEN, PROBE_LEN,
};
use crate::testbed::Netns;

/// Longest run the prober accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Longest wait for late replies after the last round.
pub const MAX_DRAIN: Duration = Duration::from_secs(5);
/// Shortest interval between rounds.
pub const MIN_INTERVAL: Duration = Duration::from_micros(50);
const SEND_BATCH: usize = 1024; // UIO_MAXIOV
const RECV_BATCH: usize = 64;

/// What to probe and for how long.
#[derive(Debug, Clone)]
pub struct ProberConfig {
    /// The addresses to probe (VIP index = position).
    pub vips: Vec<IpAddr>,
    /// The responders' UDP port.
    pub port: u16,
    /// Time between rounds.
    pub interval: Duration,
    /// How long to send.
    pub duration: Duration,
    /// After the last round, stop once no reply came for this long.
    pub grace: Duration,
    /// Sending threads (each takes a slice of the VIPs; more than one only
    /// helps with many VIPs and idle cores).
    pub senders: usize,
    /// Most answers recorded (each takes 32 bytes; memory grows with the
    /// answers actually received).
    pub max_answers: usize,
}

impl ProberConfig {
    /// Probes `vips` on `port` every millisecond for `duration`, with a 200 ms
    /// grace and room for every answer of a run without loss (capped at 8 M
    /// answers, 256 MiB).
    pub fn new<A: Into<IpAddr>>(
        vips: impl IntoIterator<Item = A>,
        port: u16,
        duration: Duration,
    ) -> Self {
        let vips: Vec<IpAddr> = vips.into_iter().map(Into::into).collect();
        let interval = Duration::from_millis(1);
        let rounds = duration.as_nanos() / interval.as_nanos() + 1;
        let expected = rounds.saturating_mul(vips.len() as u128) * 11 / 10 + 1024;
        ProberConfig {
            vips,
            port,
            interval,
            duration,
            grace: Duration::from_millis(200),
            senders: 1,
            max_answers: expected.min(8 << 20) as usize,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.vips.is_empty() {
            bail!("prober: no VIPs to probe");
        }
        if u32::try_from(self.vips.len()).is_err() {
            bail!("prober: too many VIPs ({})", self.vips.len());
        }
        if self.port == 0 {
            bail!("prober: port 0");
        }
        if self.interval < MIN_INTERVAL {
            bail!(
                "prober: interval {:?} below {:?}",
                self.interval,
                MIN_INTERVAL
            );
        }
        if self.duration > MAX_DURATION {
            bail!(
                "prober: duration {:?} above {:?}",
                self.duration,
                MAX_DURATION
            );
        }
        if let Some(ip) = self.vips.iter().find(|ip| !is_lab_address(**ip)) {
            bail!("prober: {ip} is not a test address (10/8, 192.0.2/24, 198.51.100/24, 203.0.113/24, 127/8, fd00::/8, 2001:db8::/32, ::1)");
        }
        if !(1..=64).contains(&self.senders) {
            bail!("prober: {} sender threads (1..=64)", self.senders);
        }
        if self.grace > Duration::from_secs(10) {
            bail!("prober: grace {:?} above 10 s", self.grace);
        }
        Ok(())
    }
}

/// True for the ranges tests may send to (RFC 5737 documentation nets, 10/8
/// and loopback; for IPv6 unique local fd00::/8, the documentation prefix
/// 2001:db8::/32 and ::1), which are only ever configured inside test
/// namespaces.
pub fn is_lab_address(ip: impl Into<IpAddr>) -> bool {
    let ip = match ip.into() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => return is_lab_address6(ip),
    };
    let o = ip.octets();
    o[0] == 10
        || o[0] == 127
        || (o[0], o[1], o[2]) == (192, 0, 2)
        || (o[0], o[1], o[2]) == (198, 51, 100)
        || (o[0], o[1], o[2]) == (203, 0, 113)
}

fn is_lab_address6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback() || s[0] >> 8 == 0xfd || (s[0], s[1]) == (0x2001, 0x0db8)
}

/// `ioctl(SIOCGSKNS)`: an fd for the network namespace of a socket (Linux 4.9+;
/// not in the libc crate).
const SIOCGSKNS: libc::c_ulong = 0x894C;

/// Whether `sock` lives in a named network namespace (`ip netns add`, as the
/// testbed makes them, listed in /run/netns). Anywhere else, e.g. the host's
/// own namespace, probes could reach real networks.
fn in_named_netns(sock: &UdpSocket) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: SIOCGSKNS takes no argument and returns a new fd or -1.
    let ns_fd = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS as _) };
    if ns_fd < 0 {
        bail!(
            "prober: finding the socket's network namespace (SIOCGSKNS): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: ns_fd is a fresh fd we own.
    let ns = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(ns_fd) };
    let sock_ns = ns
        .metadata()
        .context("prober: stat of the socket's namespace")?;
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Ok(false);
    };
    Ok(dir.flatten().any(|e| {
        std::fs::metadata(e.path())
            .is_ok_and(|m| m.ino() == sock_ns.ino() && m.dev() == sock_ns.dev())
    }))
}

/// Binds the prober's socket (`0.0.0.0:0`, large buffers). Call it in the
/// client namespace.
pub fn bind_prober() -> Result<UdpSocket> {
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .context("binding prober socket")?;
    super::responder::big_buffers(&sock)?;
    super::responder::report_drops(&sock)?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .context("setting prober read timeout")?;
    Ok(sock)
}

/// Binds the prober's socket for `vips`: [`bind_prober`] when all are IPv4,
/// otherwise a dual-stack `[::]:0` socket.
pub fn bind_prober_for(vips: &[IpAddr]) -> Result<UdpSocket> {
    if vips.iter().all(IpAddr::is_ipv4) {
        return bind_prober();
    }
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call; the fd is owned by the UdpSocket right away.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("prober IPv6 socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let off: i32 = 0;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!(
            "prober: clearing IPV6_V6ONLY: {}",
            std::io::Error::last_os_error()
        );
    }
    let (sa, len) = sockaddr_of(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0, true);
    // SAFETY: bind with a valid sockaddr_in6 of the stated size.
    if unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_storage).cast(), len) } != 0 {
        bail!(
            "binding prober socket [::]:0: {}",
            std::io::Error::last_os_error()
        );
    }
    super::responder::big_buffers(&sock)?;
    super::responder::report_drops(&sock)?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .context("setting prober read timeout")?;
    Ok(sock)
}

/// Binds a socket inside `ns` and runs the prober on the calling thread.
pub fn run_in(ns: &Netns, cfg: &ProberConfig) -> Result<ProbeRun> {
    let vips = cfg.vips.clone();
    let sock = ns
        .in_thread(move || bind_prober_for(&vips))?
        .with_context(|| format!("prober in namespace {}", ns.name()))?;
    run(&sock, cfg)
}

fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: absolute sleep on CLOCK_MONOTONIC with a valid timespec; EINTR just
    // returns early and the caller re-checks the time.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

/// Prepared `sendmmsg` headers for a contiguous slice of the VIPs.
struct SendSlice {
    /// VIP index of the first entry.
    base: usize,
    // The headers point into these heap buffers, which never move or grow.
    _addrs: Vec<libc::sockaddr_storage>,
    payloads: Vec<[u8; PROBE_LEN]>,
    _iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl SendSlice {
    fn new(vips: &[IpAddr], base: usize, port: u16, v6_socket: bool) -> Self {
        let n = vips.len();
        let (mut addrs, lens): (Vec<libc::sockaddr_storage>, Vec<libc::socklen_t>) = vips
            .iter()
            .map(|&ip| sockaddr_of(ip, port, v6_socket))
            .unzip();
        let mut payloads: Vec<[u8; PROBE_LEN]> = vec![[0u8; PROBE_LEN]; n];
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; n];
        let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; n];
        for i in 0..n {
            iovs[i] = libc::iovec {
                iov_base: payloads[i].as_mut_ptr().cast(),
                iov_len: PROBE_LEN,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = lens[i];
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        SendSlice {
            base,
            _addrs: addrs,
            payloads,
            _iovs: iovs,
            hdrs,
        }
    }

    /// Sends one probe to every VIP of the slice; probes the kernel refuses
    /// are recorded in `unsent` as (vip, round).
    fn send_round(&mut self, fd: i32, round: u32, unsent: &mut Vec<(u32, u32)>) {
        let n = self.hdrs.len();
        let mut done = 0usize;
        while done < n {
            let chunk = (n - done).min(SEND_BATCH);
            let t = now_ns();
            for (i, p) in self.payloads[done..done + chunk].iter_mut().enumerate() {
                let h = ProbeHeader {
                    vip: (self.base + done + i) as u32,
                    round,
                    sent_ns: t,
                };
                encode_probe(&h, p);
            }
            let mut off = 0usize;
            while off < chunk {
                // SAFETY: headers point at this slice's live buffers.
                let sent = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.hdrs[done + off..].as_mut_ptr(),
                        (chunk - off) as u32,
                        0,
                    )
                };
                if sent > 0 {
                    off += sent as usize;
                    continue;
                }
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::ENOBUFS) | Some(libc::EAGAIN) => std::thread::yield_now(),
                    _ => {
                        // This probe cannot be sent (e.g. no route): record and skip it.
                        unsent.push(((self.base + done + off) as u32, round));
                        off += 1;
                    }
                }
            }
            done += chunk;
        }
    }
}

/// Coordination between the pacing thread and the extra sender threads.
struct SenderSync {
    /// Bumped for every round to send.
    generation: AtomicU64,
    round: AtomicU32,
    /// Sender threads that have not finished the current round.
    pending: AtomicUsize,
    quit: AtomicBool,
    /// The pacing thread, woken when `pending` reaches zero.
    leader: std::thread::Thread,
}

/// An extra sender: sends its slice once per generation until `quit`; returns
/// the probes it could not send.
fn sender_thread(sync: &SenderSync, mut slice: SendSlice, fd: i32) -> Vec<(u32, u32)> {
    let mut unsent = Vec::new();
    let mut seen = 0u64;
    loop {
        if sync.quit.load(Ordering::Acquire) {
            return unsent;
        }
        let generation = sync.generation.load(Ordering::Acquire);
        if generation == seen {
            // Spurious wake-ups just loop; an unpark before park is not lost.
            std::thread::park();
            continue;
        }
        seen = generation;
        slice.send_round(fd, sync.round.load(Ordering::Acquire), &mut unsent);
        if sync.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            sync.leader.unpark();
        }
    }
}

/// What the receiving thread collected.
struct Received {
    answers: Vec<Answer>,
    nodes: Vec<String>,
    dropped: u64,
    invalid: u64,
    socket_drops: u64,
}

/// Receives until `stop`, then drains what is already queued; stores the time
/// of each batch in `last_rx`.
fn receive(
    sock: UdpSocket,
    vips: Vec<IpAddr>,
    cap: usize,
    stop: Arc<AtomicBool>,
    last_rx: Arc<AtomicU64>,
) -> Received {
    let fd = sock.as_raw_fd();
    let mut got = Received {
        answers: Vec::with_capacity(cap.min(1 << 20)),
        nodes: Vec::new(),
        dropped: 0,
        invalid: 0,
        socket_drops: 0,
    };
    let mut cmsgs = [CmsgBuf([0; CMSG_BUF]); RECV_BATCH];
    let mut bufs = [[0u8; MAX_REPLY_LEN + 1]; RECV_BATCH];
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: [libc::sockaddr_storage; RECV_BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; RECV_BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        for i in 0..RECV_BATCH {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: bufs[i].len(),
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = cmsgs[i].0.as_mut_ptr().cast();
            h.msg_controllen = CMSG_BUF;
            h.msg_flags = 0;
        }
        // SAFETY: headers point at live buffers of the stated sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                RECV_BATCH as u32,
                if stopping {
                    libc::MSG_DONTWAIT
                } else {
                    libc::MSG_WAITFORONE
                },
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            // Timeout (checks the stop flag), EINTR, or an ICMP error queued on the
            // socket: nothing to record. Once stopping, an empty queue ends it.
            if stopping {
                break;
            }
            continue;
        }
        let recv_ns = now_ns();
        last_rx.store(recv_ns, Ordering::Relaxed);
        for i in 0..n as usize {
            // SAFETY: hdrs[i] was filled by recvmmsg with our control buffer.
            if let Some(d) = unsafe { recv_info(&hdrs[i].msg_hdr) }.drops {
                got.socket_drops = got.socket_drops.max(u64::from(d));
            }
            let len = (hdrs[i].msg_len as usize).min(bufs[i].len());
            let Some((h, name)) = decode_reply(&bufs[i][..len]) else {
                got.invalid += 1;
                continue;
            };
            let from = ip_of(&addrs[i]);
            if from.is_none() || vips.get(h.vip as usize) != from.as_ref() {
                got.invalid += 1;
                continue;
            }
            let node = match got.nodes.iter().position(|n| n.as_bytes() == name) {
                Some(i) => i,
                None => {
                    got.nodes.push(String::from_utf8_lossy(name).into_owned());
                    got.nodes.len() - 1
                }
            };
            let Ok(node) = u16::try_from(node) else {
                got.invalid += 1;
                continue;
            };
            if got.answers.len() >= cap {
                got.dropped += 1;
                continue;
            }
            got.answers.push(Answer {
                vip: h.vip,
                round: h.round,
                node,
                sent_ns: h.sent_ns,
                recv_ns,
            });
        }
    }
    got
}

/// Probes `cfg.vips` from `sock` (from [`bind_prober`]) and returns the records.
/// Outside a named namespace (see the testbed) only loopback addresses are
/// probed.
pub fn run(sock: &UdpSocket, cfg: &ProberConfig) -> Result<ProbeRun> {
    cfg.validate()?;
    if !in_named_netns(sock)? {
        if let Some(ip) = cfg.vips.iter().find(|ip| !ip.is_loopback()) {
            bail!("prober: refusing to probe {ip} from outside a named (test) network namespace");
        }
    }
    let v6 = is_v6_socket(sock)?;
    if let Some(ip) = cfg.vips.iter().find(|ip| ip.is_ipv6() && !v6) {
        bail!("prober: cannot probe {ip} from an IPv4 socket (use bind_prober_for)");
    }
    let fd = sock.as_raw_fd();
    let stop = Arc::new(AtomicBool::new(false));
    let rx_sock = sock.try_clone().context("cloning prober socket")?;
    let rx_stop = stop.clone();
    let last_rx = Arc::new(AtomicU64::new(0));
    let rx_last = last_rx.clone();
    let rx_vips = cfg.vips.clone();
    let cap = cfg.max_answers;
    let receiver = std::thread::Builder::new()
        .name("prober-rx".into())
        .spawn(move || receive(rx_sock, rx_vips, cap, rx_stop, rx_last))
        .context("spawning prober receiver")?;

    // An even 1 ms schedule needs finer timer slack than the 50 µs default;
    // the caller's value is restored at the end.
    // SAFETY: prctl(PR_GET/SET_TIMERSLACK) only reads/affects this thread.
    let old_slack = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0u64, 0u64, 0u64, 0u64) };
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0u64, 0u64, 0u64) };

    // Sender threads 1..k each own a contiguous slice of the VIPs and send it
    // when this thread (which sends slice 0) opens a round: a new generation
    // and an unpark. The last to finish unparks this thread. All share the socket.
    let k = cfg.senders.clamp(1, cfg.vips.len());
    let per = cfg.vips.len().div_ceil(k);
    let shared = Arc::new(SenderSync {
        generation: AtomicU64::new(0),
        round: AtomicU32::new(0),
        pending: AtomicUsize::new(0),
        quit: AtomicBool::new(false),
        leader: std::thread::current(),
    });
    let mut workers: Vec<std::thread::JoinHandle<Vec<(u32, u32)>>> = Vec::new();
    for j in 1..k {
        let base = j * per;
        let vips: Vec<IpAddr> = cfg.vips.iter().skip(base).take(per).copied().collect();
        let (port, sync) = (cfg.port, shared.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("prober-tx{j}"))
            .spawn(move || sender_thread(&sync, SendSlice::new(&vips, base, port, v6), fd));
        match spawned {
            Ok(w) => workers.push(w),
            Err(e) => {
                shared.quit.store(true, Ordering::Release);
                for w in workers {
                    w.thread().unpark();
                    let _ = w.join();
                }
                bail!("prober: spawning sender thread {j}: {e}");
            }
        }
    }
    let mut own = SendSlice::new(&cfg.vips[..per.min(cfg.vips.len())], 0, cfg.port, v6);

    let interval = cfg.interval.as_nanos() as u64;
    let start = now_ns();
    let end = start + cfg.duration.as_nanos() as u64;
    let mut run = ProbeRun {
        vips: cfg.vips.clone(),
        interval_ns: interval,
        ..ProbeRun::default()
    };
    run.round_sent_ns
        .reserve((cfg.duration.as_nanos() as u64 / interval + 1) as usize);
    let mut deadline = start;
    let mut round: u32 = 0;
    loop {
        let now = now_ns();
        if now < deadline {
            sleep_until(deadline);
        }
        let round_start = now_ns();
        if round_start >= end || round == u32::MAX {
            break;
        }
        if round_start > deadline + interval {
            run.late_rounds += 1;
            // Do not burst to catch up: restart the schedule from now.
            deadline = round_start;
        }
        if !workers.is_empty() {
            shared.round.store(round, Ordering::Release);
            shared.pending.store(workers.len(), Ordering::Release);
            shared.generation.fetch_add(1, Ordering::AcqRel);
            for w in &workers {
                w.thread().unpark();
            }
        }
        own.send_round(fd, round, &mut run.unsent);
        while shared.pending.load(Ordering::Acquire) > 0 {
            std::thread::park_timeout(Duration::from_micros(100));
        }
        run.round_sent_ns.push(round_start);
        round += 1;
        deadline += interval;
    }
    shared.quit.store(true, Ordering::Release);
    for w in &workers {
        w.thread().unpark();
    }
    for w in workers {
        let unsent = w
            .join()
            .map_err(|_| anyhow::anyhow!("prober sender thread panicked"))?;
        run.unsent.extend(unsent);
    }
    if old_slack > 0 {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, old_slack as u64, 0u64, 0u64, 0u64) };
    }
    // Wait for late replies: until none came for `grace` (a loaded responder
    // may lag behind), at most MAX_DRAIN after the last round.
    let send_end = now_ns();
    let grace = cfg.grace.as_nanos() as u64;
    let cap = send_end + MAX_DRAIN.as_nanos() as u64;
    loop {
        let now = now_ns();
        let quiet_from = last_rx.load(Ordering::Relaxed).max(send_end);
        if now >= quiet_from + grace || now >= cap {
            break;
        }
        let left = (quiet_from + grace).min(cap) - now;
        std::thread::sleep(Duration::from_nanos(left.min(10_000_000)));
    }
    stop.store(true, Ordering::Relaxed);
    let got = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("prober receiver thread panicked"))?;
    run.answers = got.answers;
    run.nodes = got.nodes;
    run.dropped_answers = got.dropped;
    run.invalid_replies = got.invalid;
    run.socket_drops = got.socket_drops;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::responder::Responder;

    #[test]
    fn only_test_addresses() {
        for ok in [
            "10.1.2.3",
            "127.0.0.2",
            "192.0.2.9",
            "198.51.100.1",
            "203.0.113.200",
        ] {
            assert!(
                is_lab_address(ok.parse().unwrap_or(Ipv4Addr::BROADCAST)),
                "{ok}"
            );
        }
        for bad in [
            "8.8.8.8",
            "192.0.3.1",
            "198.51.101.1",
            "172.16.0.1",
            "192.168.1.1",
        ] {
            assert!(
                !is_lab_address(bad.parse().unwrap_or(Ipv4Addr::LOCALHOST)),
                "{bad}"
            );
        }
        let cfg = ProberConfig::new(vec![Ipv4Addr::new(8, 8, 8, 8)], 9, Duration::from_secs(1));
        assert!(cfg.validate().is_err());
        let mut cfg = ProberConfig::new(Vec::<IpAddr>::new(), 9, Duration::from_secs(1));
        assert!(cfg.validate().is_err());
        cfg.vips = vec![Ipv4Addr::LOCALHOST.into()];
        assert!(cfg.validate().is_ok());
        for ok in ["fd77::1:1", "2001:db8::5", "::1"] {
            let ip: Ipv6Addr = ok.parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
            assert!(is_lab_address(ip), "{ok}");
        }
        for bad in ["2001:4860::8888", "fe80::1", "fc00::1", "::"] {
            let ip: Ipv6Addr = bad.parse().unwrap_or(Ipv6Addr::LOCALHOST);
            assert!(!is_lab_address(ip), "{bad}");
        }
        cfg.vips = vec!["fd77::1:1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::BROADCAST))];
        assert!(cfg.validate().is_ok());
        cfg.interval = Duration::from_micros(1);
        assert!(cfg.validate().is_err());
    }

    #[test]
    #[ignore = "needs root"]
    fn refuses_non_loopback_outside_test_namespaces() -> Result<()> {
        // SIOCGSKNS (which namespace a socket is in) needs CAP_NET_ADMIN.
        crate::testbed::require_root();
        let sock = bind_prober()?;
        assert!(!in_named_netns(&sock)?);
        let ns = crate::testbed::Netns::new("probens")?;
        assert!(in_named_netns(&ns.in_thread(bind_prober)??)?);
        let cfg = ProberConfig::new(
            vec![Ipv4Addr::new(198, 51, 100, 1)],
            9,
            Duration::from_millis(10),
        );
        let err = run(&sock, &cfg).map(|_| ()).unwrap_err();
        assert!(
            format!("{err}").contains("outside a named (test) network namespace"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    #[ignore = "needs root"]
    fn probes_loopback_from_the_initial_namespace() -> Result<()> {
        // SIOCGSKNS (which namespace a socket is in) needs CAP_NET_ADMIN.
        crate::testbed::require_root();
        let rsock = crate::lab::responder::bind_responder(0)?;
        let port = rsock.local_addr()?.port();
        let r = Responder::start(rsock, "lo-node")?;
        let vips = vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 3)];
        let cfg = ProberConfig::new(vips, port, Duration::from_millis(200));
        let run = run(&bind_prober()?, &cfg)?;
        r.stop()?;
        assert_eq!(run.nodes, vec!["lo-node".to_string()]);
        assert_eq!(run.invalid_replies, 0);
        for vip in 0..2u32 {
            assert!(run.answers.iter().any(|a| a.vip == vip));
        }
        // Echoed send times precede receive times; rounds are in range.
        assert!(run.answers.iter().all(|a| a.sent_ns <= a.recv_ns));
        assert!(run
            .answers
            .iter()
            .all(|a| (a.round as usize) < run.round_sent_ns.len()));
        Ok(())
    }

    #[test]
    #[ignore = "needs root"]
    fn several_sender_threads_cover_every_vip() -> Result<()> {
        // SIOCGSKNS (which namespace a socket is in) needs CAP_NET_ADMIN.
        crate::testbed::require_root();
        let rsock = crate::lab::responder::bind_responder(0)?;
        let port = rsock.local_addr()?.port();
        let r = Responder::start(rsock, "lo-node")?;
        let vips: Vec<Ipv4Addr> = (1..=7).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
        let mut cfg = ProberConfig::new(vips, port, Duration::from_millis(200));
        cfg.senders = 3;
        let run = run(&bind_prober()?, &cfg)?;
        r.stop()?;
        assert!(run.unsent.is_empty());
        assert!(run.round_sent_ns.len() > 10);
        // Every VIP is probed in (nearly) every round: a slice skipped by a
        // sender thread would leave a VIP with no answers at all.
        for vip in 0..7u32 {
            let rounds: std::collections::BTreeSet<u32> = run
                .answers
                .iter()
                .filter(|a| a.vip == vip)
                .map(|a| a.round)
                .collect();
            assert!(
                rounds.len() * 10 >= run.round_sent_ns.len() * 9,
                "VIP {vip}: {} of {} rounds",
                rounds.len(),
                run.round_sent_ns.len()
            );
        }
        cfg.senders = 0;
        assert!(run_cfg_err(&cfg));
        Ok(())
    }

    #[test]
    #[ignore = "needs root"]
    fn probes_ipv4_and_ipv6_loopback_from_one_socket() -> Result<()> {
        // SIOCGSKNS (which namespace a socket is in) needs CAP_NET_ADMIN.
        crate::testbed::require_root();
        let s4 = crate::lab::responder::bind_responder(0)?;
        let port = s4.local_addr()?.port();
        let s6 = crate::lab::responder::bind_responder6(port, false)?;
        let r = Responder::start_many(vec![s4, s6], "lo-node")?;
        let vips: Vec<IpAddr> = vec![
            Ipv4Addr::new(127, 0, 0, 2).into(),
            Ipv6Addr::LOCALHOST.into(),
        ];
        let cfg = ProberConfig::new(vips.clone(), port, Duration::from_millis(200));
        // An IPv4 socket cannot reach the IPv6 VIP.
        assert!(run(&bind_prober()?, &cfg).is_err());
        let run = run(&bind_prober_for(&vips)?, &cfg)?;
        r.stop()?;
        assert_eq!(run.invalid_replies, 0);
        assert!(run.unsent.is_empty());
        for vip in 0..2u32 {
            assert!(run.answers.iter().any(|a| a.vip == vip), "VIP {vip}");
        }
        Ok(())
    }

    fn run_cfg_err(cfg: &ProberConfig) -> bool {
        cfg.validate().is_err()
    }
}

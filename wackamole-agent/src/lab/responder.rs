//! UDP echo responder run on every node, and the probe/reply wire format.
//!
//! The responder binds `0.0.0.0:PORT`, so it answers on whichever VIPs the node
//! holds at the moment, with no reconfiguration when VIPs move. The reply must
//! come *from the probed VIP* (the prober checks it, and a real client would
//! drop anything else), so the socket enables `IP_PKTINFO`: `recvmmsg` reports
//! each probe's destination address and `sendmmsg` sets the reply's source to
//! it with an `IP_PKTINFO` control message. It was chosen over one
//! `IP_FREEBIND` socket per VIP because it needs no list of VIPs and no socket
//! churn, and a node that has just lost a VIP cannot answer for it (the kernel
//! rejects a non-local source), which is exactly the behaviour to measure.
//!
//! IPv6 works the same way on a second, IPv6-only socket on the same port
//! (`IPV6_RECVPKTINFO` / `IPV6_PKTINFO`, [`bind_responder6`],
//! [`Responder::start_in_families`]); the IPv4 socket is unchanged.
//!
//! Two ways to run it on a node:
//! - as a thread of the benchmark process, [`Responder::start_in`]: the socket is
//!   created in the node's namespace and served from here. The socket keeps
//!   that namespace (and its interfaces and addresses) alive even after
//!   `ip netns delete`, so when a scenario kills a node, stop its responder
//!   too, or the node's kernel keeps answering;
//! - as a process in the namespace (`ip netns exec NS BINARY ...`), a
//!   subcommand calling `serve(&bind_responder(port)?, node, &AtomicBool::new(false))`;
//!   it then dies with the node's other processes.
//!
//! Wire format (little endian):
//! - probe, [`PROBE_LEN`] bytes: `"WKP1"`, vip index u32, round u32, send time u64;
//! - reply: `"WKR1"`, vip index u32, round u32, send time u64 (all echoed),
//!   name length u8, node name (at most [`MAX_NODE_NAME`] bytes).

use anyhow::{anyhow, bail, Context, Result};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) use crate::net::sockaddr::{sockaddr_of, sockaddr_v4};
use crate::testbed::Netns;

const PROBE_MAGIC: [u8; 4] = *b"WKP1";
const REPLY_MAGIC: [u8; 4] = *b"WKR1";
/// Length of a probe datagram.
pub const PROBE_LEN: usize = 20;
/// Longest node name a reply carries.
pub const MAX_NODE_NAME: usize = 64;
/// Longest reply datagram.
pub const MAX_REPLY_LEN: usize = PROBE_LEN + 1 + MAX_NODE_NAME;

/// The fields a probe carries (and a reply echoes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeHeader {
    pub vip: u32,
    pub round: u32,
    pub sent_ns: u64,
}

/// Writes a probe into `buf`.
pub fn encode_probe(h: &ProbeHeader, buf: &mut [u8; PROBE_LEN]) {
    buf[0..4].copy_from_slice(&PROBE_MAGIC);
    buf[4..8].copy_from_slice(&h.vip.to_le_bytes());
    buf[8..12].copy_from_slice(&h.round.to_le_bytes());
    buf[12..20].copy_from_slice(&h.sent_ns.to_le_bytes());
}

fn decode_header(magic: [u8; 4], buf: &[u8]) -> Option<ProbeHeader> {
    if buf.get(0..4)? != magic {
        return None;
    }
    Some(ProbeHeader {
        vip: u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?),
        round: u32::from_le_bytes(buf.get(8..12)?.try_into().ok()?),
        sent_ns: u64::from_le_bytes(buf.get(12..20)?.try_into().ok()?),
    })
}

/// Parses a probe; `None` if it is not one.
pub fn decode_probe(buf: &[u8]) -> Option<ProbeHeader> {
    if buf.len() != PROBE_LEN {
        return None;
    }
    decode_header(PROBE_MAGIC, buf)
}

/// Writes the reply to `probe` from `node` into `out`; returns its length.
/// `node` must be at most [`MAX_NODE_NAME`] bytes (checked by [`Responder`]).
pub fn encode_reply(probe: &ProbeHeader, node: &[u8], out: &mut [u8; MAX_REPLY_LEN]) -> usize {
    let name = &node[..node.len().min(MAX_NODE_NAME)];
    let mut p = [0u8; PROBE_LEN];
    encode_probe(probe, &mut p);
    out[0..PROBE_LEN].copy_from_slice(&p);
    out[0..4].copy_from_slice(&REPLY_MAGIC);
    out[PROBE_LEN] = name.len() as u8;
    out[PROBE_LEN + 1..PROBE_LEN + 1 + name.len()].copy_from_slice(name);
    PROBE_LEN + 1 + name.len()
}

/// Parses a reply into its header and node name; `None` if malformed.
pub fn decode_reply(buf: &[u8]) -> Option<(ProbeHeader, &[u8])> {
    let h = decode_header(REPLY_MAGIC, buf)?;
    let len = *buf.get(PROBE_LEN)? as usize;
    let name = buf.get(PROBE_LEN + 1..PROBE_LEN + 1 + len)?;
    if buf.len() != PROBE_LEN + 1 + len || name.is_empty() {
        return None;
    }
    Some((h, name))
}

/// Counters of one responder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponderStats {
    pub received: u64,
    pub replied: u64,
    /// Datagrams that were not probes.
    pub invalid: u64,
    /// Replies the kernel refused (e.g. the VIP was removed in between).
    pub send_errors: u64,
    /// Probes the kernel dropped because the socket's receive buffer was full
    /// (`SO_RXQ_OVFL`): lost to the measurement, not to the failover.
    pub socket_drops: u64,
}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32, what: &str) -> Result<()> {
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!("setsockopt({what}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `SO_RXQ_OVFL` (asm-generic value, as on x86_64 and aarch64).
const SO_RXQ_OVFL: i32 = 40;

/// Asks the kernel to report, with each datagram, how many were dropped on
/// this socket because its receive buffer was full.
pub(crate) fn report_drops(sock: &UdpSocket) -> Result<()> {
    setsockopt_int(
        sock.as_raw_fd(),
        libc::SOL_SOCKET,
        SO_RXQ_OVFL,
        1,
        "SO_RXQ_OVFL",
    )
}

/// Sets large socket buffers (forcing past rmem_max when root) so bursts of
/// probes for many VIPs are not dropped by the socket.
pub(crate) fn big_buffers(sock: &UdpSocket) -> Result<()> {
    let fd = sock.as_raw_fd();
    for (force, plain, what) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, "SO_RCVBUF"),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, "SO_SNDBUF"),
    ] {
        if setsockopt_int(fd, libc::SOL_SOCKET, force, 16 << 20, what).is_err() {
            setsockopt_int(fd, libc::SOL_SOCKET, plain, 16 << 20, what)?;
        }
    }
    Ok(())
}

/// Binds the responder socket (`0.0.0.0:port`, `IP_PKTINFO` on). Call it in the
/// node's namespace: the socket stays in the namespace it was created in.
pub fn bind_responder(port: u16) -> Result<UdpSocket> {
    bind_responder_with(port, false)
}

/// [`bind_responder`], optionally with `SO_REUSEPORT` so several sockets (one
/// per responder thread) share the port; the kernel spreads the probes over
/// them by flow, i.e. by VIP.
pub fn bind_responder_with(port: u16, reuse_port: bool) -> Result<UdpSocket> {
    use std::os::fd::FromRawFd;
    let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    // SAFETY: plain socket(2) call; the fd is owned by the UdpSocket right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("responder socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    if reuse_port {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1, "SO_REUSEPORT")?;
    }
    let sa = sockaddr_v4(addr);
    // SAFETY: bind with a valid sockaddr_in and its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!(
            "binding responder to {addr}: {}",
            std::io::Error::last_os_error()
        );
    }
    setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1, "IP_PKTINFO")?;
    finish_responder(sock)
}

/// Binds an IPv6-only responder socket (`[::]:port`, `IPV6_RECVPKTINFO` on),
/// to run next to the IPv4 one on the same port.
pub fn bind_responder6(port: u16, reuse_port: bool) -> Result<UdpSocket> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call; the fd is owned by the UdpSocket right away.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("responder IPv6 socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    // IPv6 only, so the IPv4 socket on the same port keeps IPv4 probes.
    setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1, "IPV6_V6ONLY")?;
    if reuse_port {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1, "SO_REUSEPORT")?;
    }
    let (sa, len) = sockaddr_of(std::net::IpAddr::V6(Ipv6Addr::UNSPECIFIED), port, true);
    // SAFETY: bind with a valid sockaddr_in6 of the stated size.
    let rc = unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_storage).cast(), len) };
    if rc != 0 {
        bail!(
            "binding responder to [::]:{port}: {}",
            std::io::Error::last_os_error()
        );
    }
    setsockopt_int(
        fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_RECVPKTINFO,
        1,
        "IPV6_RECVPKTINFO",
    )?;
    finish_responder(sock)
}

fn finish_responder(sock: UdpSocket) -> Result<UdpSocket> {
    big_buffers(&sock)?;
    report_drops(&sock)?;
    // Wake up regularly to notice a stop request.
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .context("setting responder read timeout")?;
    Ok(sock)
}

/// The address in a socket address filled by the kernel (v4-mapped IPv6
/// addresses as IPv4); `None` for another family.
pub(crate) fn ip_of(ss: &libc::sockaddr_storage) -> Option<std::net::IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sa: libc::sockaddr_in =
                unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            Some(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sa: libc::sockaddr_in6 =
                unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            let v6 = Ipv6Addr::from(sa.sin6_addr.s6_addr);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => v4.into(),
                None => v6.into(),
            })
        }
        _ => None,
    }
}

/// Whether `sock` is an IPv6 socket.
pub(crate) fn is_v6_socket(sock: &UdpSocket) -> Result<bool> {
    Ok(sock.local_addr().context("socket address")?.is_ipv6())
}

const BATCH: usize = 64;
pub(crate) const CMSG_BUF: usize = 128;

/// Control-message buffer, aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(crate) struct CmsgBuf(pub(crate) [u8; CMSG_BUF]);

/// What the control messages of a received datagram say.
#[derive(Default)]
pub(crate) struct RecvInfo {
    /// Destination address (`IP_PKTINFO`).
    pub dst: Option<libc::in_addr>,
    /// Destination address (`IPV6_PKTINFO`).
    pub dst6: Option<libc::in6_addr>,
    /// Datagrams dropped on the socket so far (`SO_RXQ_OVFL`).
    pub drops: Option<u32>,
}

/// Reads `IP_PKTINFO`, `IPV6_PKTINFO` and `SO_RXQ_OVFL` control messages.
///
/// # Safety
/// `msg` must describe a control buffer filled by the kernel in `recvmmsg`.
pub(crate) unsafe fn recv_info(msg: &libc::msghdr) -> RecvInfo {
    let mut info = RecvInfo::default();
    let mut c = libc::CMSG_FIRSTHDR(msg);
    while !c.is_null() {
        let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
        if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
            let p: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
            info.dst = Some(p.ipi_addr);
        } else if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
            let p: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
            info.dst6 = Some(p.ipi6_addr);
        } else if level == libc::SOL_SOCKET && kind == SO_RXQ_OVFL {
            info.drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()));
        }
        c = libc::CMSG_NXTHDR(msg, c);
    }
    info
}

/// Answers probes on `sock` as `node` until `stop` is set. Blocking; returns
/// the counters. `sock` must come from [`bind_responder`].
pub fn serve(sock: &UdpSocket, node: &str, stop: &AtomicBool) -> Result<ResponderStats> {
    let name = node.as_bytes();
    if name.is_empty() || name.len() > MAX_NODE_NAME {
        bail!("node name {node:?} must be 1..={MAX_NODE_NAME} bytes");
    }
    let fd = sock.as_raw_fd();
    let v6 = is_v6_socket(sock)?;
    let mut stats = ResponderStats::default();
    let mut rx_buf = [[0u8; 64]; BATCH];
    let mut rx_addr: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    let mut rx_cmsg = [CmsgBuf([0; CMSG_BUF]); BATCH];
    let mut rx_iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut rx_hdr: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut tx_buf = [[0u8; MAX_REPLY_LEN]; BATCH];
    let mut tx_addr: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    let mut tx_cmsg = [CmsgBuf([0; CMSG_BUF]); BATCH];
    let mut tx_iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut tx_hdr: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let pktinfo_space = unsafe {
        if v6 {
            libc::CMSG_SPACE(std::mem::size_of::<libc::in6_pktinfo>() as u32)
        } else {
            libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32)
        }
    };

    while !stop.load(Ordering::Relaxed) {
        for i in 0..BATCH {
            rx_iov[i] = libc::iovec {
                iov_base: rx_buf[i].as_mut_ptr().cast(),
                iov_len: rx_buf[i].len(),
            };
            let h = &mut rx_hdr[i].msg_hdr;
            h.msg_name = (&mut rx_addr[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut rx_iov[i];
            h.msg_iovlen = 1;
            h.msg_control = rx_cmsg[i].0.as_mut_ptr().cast();
            h.msg_controllen = CMSG_BUF;
            h.msg_flags = 0;
            rx_hdr[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                rx_hdr.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => continue,
                _ => return Err(anyhow!("responder {node}: recvmmsg: {e}")),
            }
        }
        let mut out = 0usize;
        for i in 0..n as usize {
            stats.received += 1;
            let len = (rx_hdr[i].msg_len as usize).min(rx_buf[i].len());
            let Some(probe) = decode_probe(&rx_buf[i][..len]) else {
                stats.invalid += 1;
                continue;
            };
            // SAFETY: rx_hdr[i] was filled by recvmmsg with our control buffer.
            let info = unsafe { recv_info(&rx_hdr[i].msg_hdr) };
            if let Some(d) = info.drops {
                stats.socket_drops = stats.socket_drops.max(u64::from(d));
            }
            if (v6 && info.dst6.is_none()) || (!v6 && info.dst.is_none()) {
                stats.invalid += 1;
                continue;
            }
            let reply_len = encode_reply(&probe, name, &mut tx_buf[out]);
            tx_addr[out] = rx_addr[i];
            tx_iov[out] = libc::iovec {
                iov_base: tx_buf[out].as_mut_ptr().cast(),
                iov_len: reply_len,
            };
            let h = &mut tx_hdr[out].msg_hdr;
            h.msg_name = (&mut tx_addr[out] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = rx_hdr[i].msg_hdr.msg_namelen;
            h.msg_iov = &mut tx_iov[out];
            h.msg_iovlen = 1;
            h.msg_control = tx_cmsg[out].0.as_mut_ptr().cast();
            h.msg_controllen = pktinfo_space as usize;
            h.msg_flags = 0;
            // SAFETY: the control buffer is CMSG_BUF >= CMSG_SPACE(in6_pktinfo) bytes,
            // aligned, and msg_control/msg_controllen describe it.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(h);
                match (info.dst, info.dst6) {
                    (Some(dst), _) if !v6 => {
                        (*c).cmsg_level = libc::IPPROTO_IP;
                        (*c).cmsg_type = libc::IP_PKTINFO;
                        (*c).cmsg_len =
                            libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as _;
                        let info = libc::in_pktinfo {
                            ipi_ifindex: 0,
                            ipi_spec_dst: dst,
                            ipi_addr: libc::in_addr { s_addr: 0 },
                        };
                        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                    }
                    (_, dst6) => {
                        // The reply's source is the probed address; the kernel
                        // refuses it once the address is no longer local.
                        (*c).cmsg_level = libc::IPPROTO_IPV6;
                        (*c).cmsg_type = libc::IPV6_PKTINFO;
                        (*c).cmsg_len =
                            libc::CMSG_LEN(std::mem::size_of::<libc::in6_pktinfo>() as u32) as _;
                        let info = libc::in6_pktinfo {
                            ipi6_addr: dst6.unwrap_or(libc::in6_addr { s6_addr: [0; 16] }),
                            ipi6_ifindex: 0,
                        };
                        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                    }
                }
            }
            out += 1;
        }
        let mut done = 0usize;
        while done < out {
            // SAFETY: headers done..out point at live buffers set up above.
            let sent =
                unsafe { libc::sendmmsg(fd, tx_hdr[done..].as_mut_ptr(), (out - done) as u32, 0) };
            if sent < 0 {
                // The first message failed (e.g. its VIP is no longer local): skip it.
                stats.send_errors += 1;
                done += 1;
            } else {
                stats.replied += sent as u64;
                done += sent.max(1) as usize;
                if sent == 0 {
                    stats.send_errors += 1;
                }
            }
        }
    }
    Ok(stats)
}

/// A responder serving on its own thread(s); stopped on [`Responder::stop`] or drop.
pub struct Responder {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<Result<ResponderStats>>>,
    port: u16,
}

impl Responder {
    /// Serves `sock` (from [`bind_responder`]) as `node` on a new thread.
    pub fn start(sock: UdpSocket, node: &str) -> Result<Responder> {
        Responder::start_many(vec![sock], node)
    }

    /// Serves each socket (from [`bind_responder_with`], same port) on its own
    /// thread.
    pub fn start_many(socks: Vec<UdpSocket>, node: &str) -> Result<Responder> {
        if node.is_empty() || node.len() > MAX_NODE_NAME {
            bail!("node name {node:?} must be 1..={MAX_NODE_NAME} bytes");
        }
        let first = socks
            .first()
            .ok_or_else(|| anyhow!("responder {node}: no socket"))?;
        let port = first
            .local_addr()
            .context("responder socket address")?
            .port();
        let mut r = Responder {
            stop: Arc::new(AtomicBool::new(false)),
            handles: Vec::new(),
            port,
        };
        for (i, sock) in socks.into_iter().enumerate() {
            let flag = r.stop.clone();
            let name = node.to_string();
            // On error `r` drops, which stops the threads already started.
            let h = std::thread::Builder::new()
                .name(format!("responder-{node}-{i}"))
                .spawn(move || serve(&sock, &name, &flag))
                .context("spawning responder thread")?;
            r.handles.push(h);
        }
        Ok(r)
    }

    /// Binds `0.0.0.0:port` inside `ns` and serves it as `node`.
    pub fn start_in(ns: &Netns, node: &str, port: u16) -> Result<Responder> {
        Responder::start_in_threads(ns, node, port, 1)
    }

    /// Like [`Self::start_in`] with `threads` sockets sharing `port`
    /// (`SO_REUSEPORT`), for nodes holding many VIPs.
    pub fn start_in_threads(
        ns: &Netns,
        node: &str,
        port: u16,
        threads: usize,
    ) -> Result<Responder> {
        if threads == 0 || threads > 64 {
            bail!("responder {node}: {threads} threads (1..=64)");
        }
        if threads > 1 && port == 0 {
            bail!("responder {node}: several threads need a fixed port");
        }
        let socks = ns
            .in_thread(move || -> Result<Vec<UdpSocket>> {
                (0..threads)
                    .map(|_| bind_responder_with(port, threads > 1))
                    .collect()
            })?
            .with_context(|| format!("responder {node} in namespace {}", ns.name()))?;
        Responder::start_many(socks, node)
    }

    /// Like [`Self::start_in_threads`], serving IPv4 and/or IPv6 probes: with
    /// `ipv6`, each thread's IPv4 socket gets an IPv6-only sibling on the
    /// same port, served by a thread of its own.
    pub fn start_in_families(
        ns: &Netns,
        node: &str,
        port: u16,
        threads: usize,
        ipv4: bool,
        ipv6: bool,
    ) -> Result<Responder> {
        if !ipv6 {
            return Responder::start_in_threads(ns, node, port, threads);
        }
        if threads == 0 || threads > 64 {
            bail!("responder {node}: {threads} threads (1..=64)");
        }
        if port == 0 && (threads > 1 || ipv4) {
            bail!("responder {node}: several sockets need a fixed port");
        }
        let socks = ns
            .in_thread(move || -> Result<Vec<UdpSocket>> {
                let mut socks = Vec::new();
                for _ in 0..threads {
                    if ipv4 {
                        socks.push(bind_responder_with(port, threads > 1)?);
                    }
                    socks.push(bind_responder6(port, threads > 1)?);
                }
                Ok(socks)
            })?
            .with_context(|| format!("responder {node} in namespace {}", ns.name()))?;
        Responder::start_many(socks, node)
    }

    /// The UDP port served.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the threads and returns their summed counters.
    pub fn stop(mut self) -> Result<ResponderStats> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = ResponderStats::default();
        for h in std::mem::take(&mut self.handles) {
            let s = h
                .join()
                .map_err(|_| anyhow!("responder thread panicked"))??;
            total.received += s.received;
            total.replied += s.replied;
            total.invalid += s.invalid;
            total.send_errors += s.send_errors;
            total.socket_drops += s.socket_drops;
        }
        Ok(total)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in std::mem::take(&mut self.handles) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_roundtrip() {
        let h = ProbeHeader {
            vip: 7,
            round: 123_456,
            sent_ns: u64::MAX - 3,
        };
        let mut b = [0u8; PROBE_LEN];
        encode_probe(&h, &mut b);
        assert_eq!(decode_probe(&b), Some(h));
        assert_eq!(decode_probe(&b[..PROBE_LEN - 1]), None);
        b[0] = b'X';
        assert_eq!(decode_probe(&b), None);
    }

    #[test]
    fn reply_roundtrip_and_rejects_malformed() {
        let h = ProbeHeader {
            vip: 1,
            round: 2,
            sent_ns: 3,
        };
        let mut out = [0u8; MAX_REPLY_LEN];
        let n = encode_reply(&h, b"node-a", &mut out);
        let (got, name) = decode_reply(&out[..n]).expect("valid reply");
        assert_eq!(got, h);
        assert_eq!(name, b"node-a");
        // Truncated, trailing garbage, a probe instead of a reply, empty name.
        assert!(decode_reply(&out[..n - 1]).is_none());
        let mut long = out.to_vec();
        long.truncate(n);
        long.push(0);
        assert!(decode_reply(&long).is_none());
        let mut p = [0u8; PROBE_LEN];
        encode_probe(&h, &mut p);
        assert!(decode_reply(&p).is_none());
        let n0 = encode_reply(&h, b"", &mut out);
        assert!(decode_reply(&out[..n0]).is_none());
        // Names are cut to MAX_NODE_NAME.
        let long_name = [b'x'; MAX_NODE_NAME + 10];
        let nl = encode_reply(&h, &long_name, &mut out);
        assert_eq!(nl, MAX_REPLY_LEN);
        assert_eq!(
            decode_reply(&out[..nl]).map(|r| r.1.len()),
            Some(MAX_NODE_NAME)
        );
    }

    #[test]
    fn answers_from_the_probed_address_on_loopback() -> Result<()> {
        // 127.0.0.2 is local too: the reply must come from it, not 127.0.0.1.
        let sock = bind_responder(0)?;
        let port = sock.local_addr()?.port();
        let r = Responder::start(sock, "loop")?;
        let client = UdpSocket::bind("127.0.0.1:0")?;
        client.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut p = [0u8; PROBE_LEN];
        for (i, dst) in ["127.0.0.1", "127.0.0.2"].iter().enumerate() {
            let h = ProbeHeader {
                vip: i as u32,
                round: 9,
                sent_ns: 42,
            };
            encode_probe(&h, &mut p);
            client.send_to(&p, (*dst, port))?;
            let mut buf = [0u8; 256];
            let (n, from) = client.recv_from(&mut buf)?;
            assert_eq!(from.ip().to_string(), *dst);
            let (got, name) = decode_reply(&buf[..n]).ok_or_else(|| anyhow!("bad reply"))?;
            assert_eq!(got, h);
            assert_eq!(name, b"loop");
        }
        client.send_to(b"junk", ("127.0.0.1", port))?;
        std::thread::sleep(Duration::from_millis(100));
        let stats = r.stop()?;
        assert_eq!(stats.received, 3);
        assert_eq!(stats.replied, 2);
        assert_eq!(stats.invalid, 1);
        Ok(())
    }

    #[test]
    fn socket_addresses_round_trip() {
        use std::net::IpAddr;
        let v4: IpAddr = Ipv4Addr::new(10, 0, 0, 101).into();
        let v6: IpAddr = "fd77::1:1"
            .parse()
            .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
        // IPv4 on an IPv4 socket: a plain sockaddr_in, as before.
        let (ss, len) = sockaddr_of(v4, 7399, false);
        assert_eq!(len as usize, std::mem::size_of::<libc::sockaddr_in>());
        assert_eq!(i32::from(ss.ss_family), libc::AF_INET);
        assert_eq!(ip_of(&ss), Some(v4));
        let direct = sockaddr_v4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 101), 7399));
        // SAFETY: the family says the storage holds a sockaddr_in.
        let back: libc::sockaddr_in =
            unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
        assert_eq!(
            (back.sin_port, back.sin_addr.s_addr),
            (direct.sin_port, direct.sin_addr.s_addr)
        );
        // IPv6, and IPv4 v4-mapped on a dual-stack socket.
        for (ip, mapped) in [(v6, false), (v4, true)] {
            let (ss, len) = sockaddr_of(ip, 7399, true);
            assert_eq!(len as usize, std::mem::size_of::<libc::sockaddr_in6>());
            assert_eq!(i32::from(ss.ss_family), libc::AF_INET6);
            assert_eq!(ip_of(&ss), Some(ip));
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sa: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
            assert_eq!(u16::from_be(sa.sin6_port), 7399);
            assert_eq!(
                Ipv6Addr::from(sa.sin6_addr.s6_addr)
                    .to_ipv4_mapped()
                    .is_some(),
                mapped
            );
        }
        // SAFETY: all-zero is a valid sockaddr_storage (family AF_UNSPEC).
        let none: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        assert_eq!(ip_of(&none), None);
    }

    #[test]
    fn answers_ipv6_from_the_probed_address() -> Result<()> {
        // Both sockets on one port; an IPv6 probe to ::1 is answered from ::1
        // by the IPv6 socket, an IPv4 one by the IPv4 socket.
        let s4 = bind_responder(0)?;
        let port = s4.local_addr()?.port();
        let s6 = bind_responder6(port, false)?;
        let r = Responder::start_many(vec![s4, s6], "dual")?;
        let mut p = [0u8; PROBE_LEN];
        for (i, (bind, dst)) in [("[::1]:0", "::1"), ("127.0.0.1:0", "127.0.0.1")]
            .iter()
            .enumerate()
        {
            let client = UdpSocket::bind(bind)?;
            client.set_read_timeout(Some(Duration::from_secs(2)))?;
            let h = ProbeHeader {
                vip: i as u32,
                round: 1,
                sent_ns: 5,
            };
            encode_probe(&h, &mut p);
            client.send_to(&p, (*dst, port))?;
            let mut buf = [0u8; 256];
            let (n, from) = client.recv_from(&mut buf)?;
            assert_eq!(from.ip().to_string(), *dst);
            let (got, name) = decode_reply(&buf[..n]).ok_or_else(|| anyhow!("bad reply"))?;
            assert_eq!((got, name), (h, &b"dual"[..]));
        }
        let stats = r.stop()?;
        assert_eq!((stats.received, stats.replied), (2, 2));
        Ok(())
    }

    #[test]
    fn counts_probes_dropped_on_a_full_socket() -> Result<()> {
        let sock = bind_responder(0)?;
        // Shrink the buffer (the kernel rounds it up to its minimum) and fill it
        // before anyone reads.
        setsockopt_int(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            1,
            "SO_RCVBUF",
        )?;
        let port = sock.local_addr()?.port();
        let client = UdpSocket::bind("127.0.0.1:0")?;
        let mut p = [0u8; PROBE_LEN];
        for round in 0..200 {
            encode_probe(
                &ProbeHeader {
                    vip: 0,
                    round,
                    sent_ns: 1,
                },
                &mut p,
            );
            client.send_to(&p, ("127.0.0.1", port))?;
        }
        let r = Responder::start(sock, "full")?;
        std::thread::sleep(Duration::from_millis(100));
        // The kernel reports the drop count with datagrams queued after the
        // drops: one more probe carries it.
        client.send_to(&p, ("127.0.0.1", port))?;
        std::thread::sleep(Duration::from_millis(100));
        let stats = r.stop()?;
        assert!(stats.received > 1 && stats.received < 200, "{stats:?}");
        assert_eq!(stats.socket_drops, 201 - stats.received, "{stats:?}");
        Ok(())
    }
}

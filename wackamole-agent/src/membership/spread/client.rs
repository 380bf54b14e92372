//! Async tokio client of one Spread daemon: endpoint parsing, the connect
//! handshake, a cancel-safe framed reader and a writer for join, leave,
//! multicast and disconnect. No protocol logic lives here beyond the order of
//! the handshake steps; bytes are built and parsed by [`super::codec`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{
    self, Accepted, ByteOrder, ClientMessage, DaemonMessage, DecodeError, EncodeError, Service,
};

/// The daemon's default client port.
pub const DEFAULT_PORT: u16 = 4803;

/// Where a daemon listens, in libspread's "spread name" syntax:
/// `port@host` = TCP, `port` (or empty = 4803) = Unix socket `/tmp/<port>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix { port: u16, path: PathBuf },
}

impl Endpoint {
    /// Parses a spread name like libspread does.
    pub fn parse(spread_name: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::IllegalSpread {
            name: spread_name.to_owned(),
            why: why.to_owned(),
        };
        let port_of = |s: &str| -> Result<u16, ClientError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("port must be digits"));
            }
            s.parse().map_err(|_| bad("port out of range"))
        };
        if spread_name.is_empty() {
            return Ok(Self::unix(DEFAULT_PORT));
        }
        match spread_name.split_once('@') {
            None => Ok(Self::unix(port_of(spread_name)?)),
            Some((port, host)) => {
                if host.is_empty() {
                    return Err(bad("empty host after '@'"));
                }
                Ok(Endpoint::Tcp {
                    host: host.to_owned(),
                    port: port_of(port)?,
                })
            }
        }
    }

    fn unix(port: u16) -> Self {
        Endpoint::Unix {
            port,
            path: PathBuf::from(format!("/tmp/{port}")),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "{port}@{host}"),
            Endpoint::Unix { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// Errors of a client session; every one names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("spread: illegal spread name {name:?}: {why}")]
    IllegalSpread { name: String, why: String },
    #[error("spread {endpoint}: could not connect: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error(
        "spread {endpoint}: refusing the daemon: its socket belongs to uid {uid} (pid {pid}), \
         not root, the agent's uid or the configured one (a local user may have taken \
         the socket while Spread was down)"
    )]
    UntrustedPeer {
        endpoint: String,
        uid: u32,
        pid: i32,
    },
    #[error("spread {endpoint}: handshake timed out after {timeout:?}")]
    HandshakeTimeout { endpoint: String, timeout: Duration },
    #[error("spread {endpoint}: {stage}: {source}")]
    Protocol {
        endpoint: String,
        stage: &'static str,
        source: DecodeError,
    },
    #[error("spread {endpoint}: {stage}: {source}")]
    Io {
        endpoint: String,
        stage: &'static str,
        source: std::io::Error,
    },
    #[error("spread {endpoint}: connection closed by the daemon ({stage})")]
    Closed {
        endpoint: String,
        stage: &'static str,
    },
    #[error("spread {endpoint}: refusing to send: {source}")]
    Encode {
        endpoint: String,
        source: EncodeError,
    },
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Session parameters of [`connect`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// 0..=10 bytes in `'$'..='~'`; empty lets the daemon choose one.
    pub private_name: String,
    /// Receive views, transitional signals and self-leave notices.
    pub membership: bool,
    /// Covers TCP/Unix connect and the whole handshake.
    pub timeout: Duration,
    /// A Unix-socket daemon must run as root, as the agent's own uid, or as
    /// this uid (Spread has no authentication; its socket is all we check).
    pub trusted_uid: Option<u32>,
}

/// Opens a session: connect, handshake, NULL authentication.
pub async fn connect(
    endpoint: &Endpoint,
    opts: &ConnectOptions,
) -> Result<(SpreadReader, SpreadWriter, Accepted), ClientError> {
    let ep = endpoint.to_string();
    let request = codec::encode_connect_request(&opts.private_name, opts.membership, false)
        .map_err(|source| ClientError::Encode {
            endpoint: ep.clone(),
            source,
        })?;
    let fut = async {
        let (mut r, mut w, socket) = open(endpoint, &ep, opts.trusted_uid).await?;
        let mut buf = Vec::new();
        // The daemon reads the request with non-blocking recvs: one write.
        write(&mut w, &request, &ep, "sending connect request").await?;
        let methods = read_until(
            &mut r,
            &mut buf,
            &ep,
            "reading auth list",
            codec::decode_auth_list,
        )
        .await?;
        codec::require_null_auth(&methods).map_err(|source| ClientError::Protocol {
            endpoint: ep.clone(),
            stage: "choosing authentication",
            source,
        })?;
        // Not appended to the request: the daemon's name read would swallow it.
        write(
            &mut w,
            &codec::encode_auth_choice_null(),
            &ep,
            "sending auth choice",
        )
        .await?;
        let accepted = read_until(
            &mut r,
            &mut buf,
            &ep,
            "reading accept",
            codec::decode_accept,
        )
        .await?;
        Ok::<_, ClientError>((r, w, socket, buf, accepted))
    };
    let (r, w, socket, buf, accepted) =
        tokio::time::timeout(opts.timeout, fut)
            .await
            .map_err(|_| ClientError::HandshakeTimeout {
                endpoint: ep.clone(),
                timeout: opts.timeout,
            })??;
    let reader = SpreadReader {
        inner: r,
        buf,
        endpoint: ep.clone(),
    };
    let writer = SpreadWriter {
        inner: w,
        private_group: accepted.private_group.clone(),
        endpoint: ep,
        socket,
        written: 0,
    };
    Ok((reader, writer, accepted))
}

/// What identifies the session's socket, for [`SpreadWriter::unread_by_daemon`].
#[derive(Clone, Copy, Debug)]
enum SocketId {
    /// The Unix stream's descriptor (it lives as long as the halves).
    Unix(RawFd),
    /// Both ends of the TCP connection.
    Tcp { local: SocketAddr, peer: SocketAddr },
}

/// The two halves and what identifies their socket.
async fn open(
    endpoint: &Endpoint,
    ep: &str,
    trusted_uid: Option<u32>,
) -> Result<(BoxRead, BoxWrite, Option<SocketId>), ClientError> {
    let connect_err = |source| ClientError::Connect {
        endpoint: ep.to_owned(),
        source,
    };
    match endpoint {
        Endpoint::Tcp { host, port } => {
            // libspread is IPv4 only; prefer an IPv4 address, fall back to any.
            let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(connect_err)?
                .collect();
            let addr = addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| {
                    connect_err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "host has no address",
                    ))
                })?;
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(connect_err)?;
            stream.set_nodelay(true).map_err(connect_err)?;
            set_keepalive(&stream);
            let id = match (stream.local_addr(), stream.peer_addr()) {
                (Ok(local), Ok(peer)) => Some(SocketId::Tcp { local, peer }),
                _ => None,
            };
            let (r, w) = stream.into_split();
            Ok((Box::new(r), Box::new(w), id))
        }
        Endpoint::Unix { path, .. } => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(connect_err)?;
            // Before a byte is sent: whoever listens on the path gets nothing.
            let cred = stream.peer_cred().map_err(connect_err)?;
            // SAFETY: geteuid(2) cannot fail and touches no memory.
            let me = unsafe { libc::geteuid() };
            if !peer_trusted(cred.uid(), me, trusted_uid) {
                return Err(ClientError::UntrustedPeer {
                    endpoint: ep.to_owned(),
                    uid: cred.uid(),
                    pid: cred.pid().unwrap_or(0),
                });
            }
            let fd = stream.as_raw_fd();
            let (r, w) = stream.into_split();
            Ok((Box::new(r), Box::new(w), Some(SocketId::Unix(fd))))
        }
    }
}

/// Whether a Unix-socket daemon running as `uid` may feed us views: root,
/// our own (effective) uid, or the configured one.
pub fn peer_trusted(uid: u32, own_uid: u32, trusted_uid: Option<u32>) -> bool {
    uid == 0 || uid == own_uid || trusted_uid == Some(uid)
}

/// SO_KEEPALIVE like libspread; best effort (a failure only loses keepalive).
fn set_keepalive(stream: &tokio::net::TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a correctly sized int option.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(
            "spread: SO_KEEPALIVE failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

async fn write(
    w: &mut BoxWrite,
    bytes: &[u8],
    ep: &str,
    stage: &'static str,
) -> Result<(), ClientError> {
    w.write_all(bytes).await.map_err(|source| ClientError::Io {
        endpoint: ep.to_owned(),
        stage,
        source,
    })?;
    w.flush().await.map_err(|source| ClientError::Io {
        endpoint: ep.to_owned(),
        stage,
        source,
    })
}

/// Reads into `buf` until `decode` yields a value; consumes its bytes.
async fn read_until<T>(
    r: &mut BoxRead,
    buf: &mut Vec<u8>,
    ep: &str,
    stage: &'static str,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, DecodeError>,
) -> Result<T, ClientError> {
    loop {
        match decode(buf) {
            Ok(Some((v, used))) => {
                buf.drain(..used);
                return Ok(v);
            }
            Ok(None) => fill(r, buf, ep, stage).await?,
            Err(source) => {
                return Err(ClientError::Protocol {
                    endpoint: ep.to_owned(),
                    stage,
                    source,
                })
            }
        }
    }
}

/// One read into `buf` (cancel-safe: `read` either completes or reads nothing).
async fn fill(
    r: &mut BoxRead,
    buf: &mut Vec<u8>,
    ep: &str,
    stage: &'static str,
) -> Result<(), ClientError> {
    let mut chunk = [0u8; 16 * 1024];
    let n = r.read(&mut chunk).await.map_err(|source| ClientError::Io {
        endpoint: ep.to_owned(),
        stage,
        source,
    })?;
    if n == 0 {
        return Err(ClientError::Closed {
            endpoint: ep.to_owned(),
            stage,
        });
    }
    buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    Ok(())
}

/// The receiving half of a session.
pub struct SpreadReader {
    inner: BoxRead,
    buf: Vec<u8>,
    endpoint: String,
}

impl SpreadReader {
    /// The next daemon message. Cancel-safe: partial messages stay buffered.
    pub async fn next(&mut self) -> Result<DaemonMessage, ClientError> {
        read_until(
            &mut self.inner,
            &mut self.buf,
            &self.endpoint,
            "receiving",
            codec::decode_daemon,
        )
        .await
    }
}

/// The sending half of a session. Each message goes out whole in one write,
/// so messages never interleave.
pub struct SpreadWriter {
    inner: BoxWrite,
    private_group: String,
    endpoint: String,
    /// The socket both halves share.
    socket: Option<SocketId>,
    /// Bytes written in this session after the handshake.
    written: u64,
}

impl SpreadWriter {
    /// Bytes written since the handshake (the daemon had read all of the
    /// handshake when it accepted).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes we wrote that the daemon process has not read yet, or None
    /// when that cannot be seen.
    /// - Unix stream: `SIOCOUTQ` counts our bytes until the daemon's `recv`
    ///   consumes them.
    /// - TCP to a daemon on this host (in this thread's network namespace):
    ///   the receive queue of the daemon's end in
    ///   `/proc/thread-self/net/tcp{,6}` (the kernel acknowledges data for a
    ///   frozen process too, so our own send queue says nothing). A remote
    ///   daemon has no row there: None.
    ///
    /// Reads a file for TCP: call it when a probe is late, not per probe.
    pub fn unread_by_daemon(&self) -> Option<u64> {
        match self.socket? {
            SocketId::Unix(fd) => {
                let mut queued: libc::c_int = 0;
                // SAFETY: `fd` is the stream owned by `self.inner`, open as
                // long as `self` lives; TIOCOUTQ (== SIOCOUTQ) writes one c_int.
                let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
                (rc == 0).then(|| u64::try_from(queued).unwrap_or(0))
            }
            SocketId::Tcp { local, peer } => {
                let table = if peer.is_ipv4() { "tcp" } else { "tcp6" };
                let text =
                    std::fs::read_to_string(format!("/proc/thread-self/net/{table}")).ok()?;
                tcp_rx_queue(&text, peer, local)
            }
        }
    }

    /// `#<private name>#<daemon name>`: my identity in every view.
    pub fn private_group(&self) -> &str {
        &self.private_group
    }

    pub async fn send(&mut self, msg: &ClientMessage) -> Result<(), ClientError> {
        // Always little endian with the marker, byte-identical to libspread on x86.
        let bytes = codec::encode_client(ByteOrder::Little, &self.private_group, msg).map_err(
            |source| ClientError::Encode {
                endpoint: self.endpoint.clone(),
                source,
            },
        )?;
        write(&mut self.inner, &bytes, &self.endpoint, "sending").await?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    pub async fn join(&mut self, group: &str) -> Result<(), ClientError> {
        self.send(&ClientMessage::Join(group.to_owned())).await
    }

    pub async fn leave(&mut self, group: &str) -> Result<(), ClientError> {
        self.send(&ClientMessage::Leave(group.to_owned())).await
    }

    /// Sends `data` to my own private group only: the daemon orders it like
    /// any message and delivers it back to me alone.
    pub async fn send_to_self(
        &mut self,
        service: Service,
        mess_type: i16,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let me = self.private_group.clone();
        self.multicast(service, &me, mess_type, data).await
    }

    /// Sends `data` to my own private group and to `group` as one message:
    /// delivered once to me (also while I am not in `group`) and to every
    /// member of `group`, in the same agreed order.
    pub async fn multicast_with_self(
        &mut self,
        service: Service,
        group: &str,
        mess_type: i16,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let groups = vec![self.private_group.clone(), group.to_owned()];
        self.multicast_to(service, groups, mess_type, data).await
    }

    /// Multicasts `data` to `group` (delivered to me as well).
    pub async fn multicast(
        &mut self,
        service: Service,
        group: &str,
        mess_type: i16,
        data: &[u8],
    ) -> Result<(), ClientError> {
        self.multicast_to(service, vec![group.to_owned()], mess_type, data)
            .await
    }

    /// One message to every group in `groups` (delivered to me as well).
    async fn multicast_to(
        &mut self,
        service: Service,
        groups: Vec<String>,
        mess_type: i16,
        data: &[u8],
    ) -> Result<(), ClientError> {
        self.send(&ClientMessage::Multicast {
            service,
            self_discard: false,
            groups,
            mess_type,
            data: data.to_vec(),
        })
        .await
    }

    /// SP_disconnect: KILL, then close the write side.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        self.send(&ClientMessage::Kill).await?;
        let _ = self.inner.shutdown().await;
        Ok(())
    }
}

/// The receive queue of the socket `local` -> `remote` in a
/// `/proc/net/tcp{,6}` table (addresses as the kernel prints them: the
/// address words in host order, then the port).
pub fn tcp_rx_queue(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let (want_local, want_remote) = (proc_addr(local), proc_addr(remote));
    table.lines().skip(1).find_map(|line| {
        let mut f = line.split_whitespace();
        let (_, l, r, _, queues) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        if !l.eq_ignore_ascii_case(&want_local) || !r.eq_ignore_ascii_case(&want_remote) {
            return None;
        }
        let (_, rx) = queues.split_once(':')?;
        u64::from_str_radix(rx, 16).ok()
    })
}

/// `SocketAddr` in `/proc/net/tcp` notation.
fn proc_addr(a: SocketAddr) -> String {
    let words: Vec<[u8; 4]> = match a.ip() {
        IpAddr::V4(ip) => vec![ip.octets()],
        IpAddr::V6(ip) => ip
            .octets()
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect(),
    };
    let hex: String = words
        .iter()
        .map(|w| format!("{:08X}", u32::from_ne_bytes(*w)))
        .collect();
    format!("{hex}:{:04X}", a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_daemon_uids() {
        assert!(peer_trusted(0, 1000, None));
        assert!(peer_trusted(1000, 1000, None));
        assert!(!peer_trusted(1001, 1000, None));
        assert!(peer_trusted(1001, 1000, Some(1001)));
        assert!(!peer_trusted(65534, 0, Some(1001)));
    }

    #[test]
    fn proc_tcp_rows_are_found_by_both_ends() {
        // Two rows of a real table: the daemon's end (10.97.0.2:20016 ->
        // 10.97.0.2:45678, 0x1f bytes unread) and the client's end.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0200610A:4E30 0200610A:B26E 01 00000000:0000001F 00:00000000 00000000 65534        0 1 1 ffff 20 4 30 10 -1\n\
   1: 0200610A:B26E 0200610A:4E30 01 00000000:00000000 00:00000000 00000000     0        0 2 1 ffff 20 4 30 10 -1\n";
        let daemon: SocketAddr = "10.97.0.2:20016".parse().unwrap();
        let client: SocketAddr = "10.97.0.2:45678".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(tcp_rx_queue(table, daemon, client), Some(0x1f));
            assert_eq!(tcp_rx_queue(table, client, daemon), Some(0));
        }
        let other: SocketAddr = "10.97.0.3:20016".parse().unwrap();
        assert_eq!(tcp_rx_queue(table, other, client), None);
        assert_eq!(tcp_rx_queue("garbage\nshort line\n", daemon, client), None);
    }

    #[test]
    fn proc_addr_v6_words_in_host_order() {
        let a: SocketAddr = "[::1]:4803".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(proc_addr(a), "00000000000000000000000001000000:12C3");
        }
    }

    #[test]
    fn spread_names_parse_like_libspread() {
        assert_eq!(
            Endpoint::parse("4803@127.0.0.1").ok(),
            Some(Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 4803
            })
        );
        assert_eq!(
            Endpoint::parse("14803").ok(),
            Some(Endpoint::Unix {
                port: 14803,
                path: "/tmp/14803".into()
            })
        );
        assert_eq!(Endpoint::parse("").ok(), Some(Endpoint::unix(4803)));
        assert!(Endpoint::parse("x@h").is_err());
        assert!(Endpoint::parse("70000").is_err());
        assert!(Endpoint::parse("4803@").is_err());
    }
}

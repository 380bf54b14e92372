//! The agent's network edges on the host: interface addresses (`addr`),
//! ARP announcements (`arp`), IPv6 neighbour discovery frames (`nd`) and the
//! kernel neighbour table (`neigh`).
//!
//! Every socket here (netlink or packet) lives in the network namespace of
//! the thread that opens it: open [`Rtnl`] / [`arp::ArpSender`] on the thread
//! (or runtime) that runs inside the namespace you mean.

pub mod addr;
pub mod arp;
pub mod nd;
pub mod neigh;
pub(crate) mod sockaddr;
pub mod sysctl;

use std::net::Ipv4Addr;

use rtnetlink::packet_route::link::LinkAttribute;

/// Errors of the network edges; each names the interface and, where there is
/// one, the address. A cause is printed in the message, not returned as
/// `source()` (an error chain printed with `{:#}` would show it twice).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Opening a socket failed.
    #[error("opening {what} socket: {cause}")]
    Socket {
        what: &'static str,
        cause: std::io::Error,
    },
    /// The interface does not exist (in this namespace).
    #[error("interface {iface}: not found")]
    NoSuchInterface { iface: String },
    /// A netlink request was refused or failed.
    #[error("interface {iface}: {op} {addr}: {detail}")]
    Netlink {
        iface: String,
        op: &'static str,
        addr: String,
        detail: String,
    },
    /// A packet socket operation failed.
    #[error("interface {iface}: {op}: {cause}")]
    Io {
        iface: String,
        op: String,
        cause: std::io::Error,
    },
    /// Malformed input (a notify target, a MAC address...).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for this module.
pub type NetResult<T> = Result<T, NetError>;

/// What a paced sender waits on before each frame: the node's fencing
/// lease, so that a run of notifications stops, mid-range, the moment XDP
/// goes silent and resumes at the renewal (a node whose XDP drops a VIP's
/// traffic must not tell its neighbours to send that traffic to it).
pub trait Gate {
    /// Resolves once the next frame may go out.
    fn open(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// A gate that is always open (tests, and bursts the caller gates itself).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ungated;

impl Gate for Ungated {
    async fn open(&mut self) {}
}

/// The loop of both paced senders (ARP and ND): each of `frames` handed to
/// `send` at most `pps` per second (0: no limit), once `gate` is open. A
/// frame the kernel cannot queue right now (EAGAIN/ENOBUFS) is skipped and
/// handed to `dropped` (to log it); any other error stops the run. Returns
/// how many were sent.
pub(crate) async fn send_paced<F>(
    frames: &[F],
    pps: u32,
    gate: &mut impl Gate,
    send: impl Fn(&F) -> NetResult<()>,
    dropped: impl Fn(&F),
) -> NetResult<usize> {
    let mut ticker = (pps > 0).then(|| {
        // Never zero (tokio refuses a zero period), whatever the rate.
        let period = std::time::Duration::from_nanos((1_000_000_000 / u64::from(pps)).max(1));
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut sent = 0;
    for frame in frames {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        gate.open().await;
        match send(frame) {
            Ok(()) => sent += 1,
            Err(NetError::Io { cause, .. })
                if cause.kind() == std::io::ErrorKind::WouldBlock
                    || cause.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                dropped(frame)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// A route-netlink connection. Its socket is opened by [`Rtnl::new`] in the
/// calling thread's network namespace; its I/O task runs on the current
/// tokio runtime (so `new` must be called inside one).
#[derive(Clone)]
pub struct Rtnl {
    handle: rtnetlink::Handle,
}

impl Rtnl {
    /// Opens a netlink socket in the current thread's network namespace.
    /// Fails (rather than panicking) outside a tokio runtime.
    pub fn new() -> NetResult<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| NetError::Socket {
            what: "netlink route (no tokio runtime)",
            cause: std::io::Error::other(e),
        })?;
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| NetError::Socket {
            what: "netlink route",
            cause: source,
        })?;
        runtime.spawn(conn);
        Ok(Rtnl { handle })
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// The index of `iface`.
    pub async fn ifindex(&self, iface: &str) -> NetResult<u32> {
        Ok(self.link(iface).await?.header.index)
    }

    /// The hardware (MAC) address of `iface`.
    pub async fn mac(&self, iface: &str) -> NetResult<[u8; 6]> {
        let link = self.link(iface).await?;
        link.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                _ => None,
            })
            .ok_or_else(|| NetError::Netlink {
                iface: iface.to_string(),
                op: "read MAC address",
                addr: String::new(),
                detail: "no 6-byte hardware address".into(),
            })
    }

    async fn link(&self, iface: &str) -> NetResult<rtnetlink::packet_route::link::LinkMessage> {
        use futures::TryStreamExt;
        if iface.is_empty() || iface.len() > 15 {
            return Err(NetError::NoSuchInterface {
                iface: iface.to_string(),
            });
        }
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(iface.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link),
            Ok(None) => Err(NetError::NoSuchInterface {
                iface: iface.to_string(),
            }),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Err(NetError::NoSuchInterface {
                iface: iface.to_string(),
            }),
            Err(e) => Err(NetError::Netlink {
                iface: iface.to_string(),
                op: "look up link",
                addr: String::new(),
                detail: e.to_string(),
            }),
        }
    }
}

/// The positive errno carried by a netlink error reply, if any.
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| c.get().abs()),
        _ => None,
    }
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// An IPv4 prefix `addr/len` (the address is masked to the network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ipv4Prefix {
    /// Network address (host bits zero).
    pub network: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Ipv4Prefix {
    /// Builds a prefix, masking host bits; `None` if `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then(|| Ipv4Prefix {
            network: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        })
    }

    /// True when `ip` is inside the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.network)
    }

    /// Number of addresses in the prefix (2^(32-len)).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }
}

impl std::fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl std::str::FromStr for Ipv4Prefix {
    type Err = NetError;
    fn from_str(s: &str) -> NetResult<Self> {
        let bad = || NetError::Invalid(format!("bad IPv4 prefix {s:?} (want a.b.c.d/len)"));
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, len.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        Ipv4Prefix::new(ip, len).ok_or_else(bad)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// Creates a netlink connection on this thread and runs `f` with it on a
/// current-thread runtime; handy for synchronous callers (tests, CLI).
pub fn block_on<T>(f: impl AsyncFnOnce(&Rtnl) -> NetResult<T>) -> NetResult<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| NetError::Socket {
            what: "tokio runtime",
            cause: source,
        })?;
    rt.block_on(async {
        let rtnl = Rtnl::new()?;
        f(&rtnl).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_mask() {
        let p: Ipv4Prefix = "192.0.2.77/24".parse().unwrap();
        assert_eq!(p.network, Ipv4Addr::new(192, 0, 2, 0));
        assert_eq!(p.len, 24);
        assert_eq!(p.size(), 256);
        assert!(p.contains(Ipv4Addr::new(192, 0, 2, 255)));
        assert!(!p.contains(Ipv4Addr::new(192, 0, 3, 0)));
        let host: Ipv4Prefix = "192.0.2.9".parse().unwrap();
        assert_eq!((host.len, host.size()), (32, 1));
        let all: Ipv4Prefix = "10.1.2.3/0".parse().unwrap();
        assert_eq!(all.network, Ipv4Addr::UNSPECIFIED);
        assert!(all.contains(Ipv4Addr::new(203, 0, 113, 1)));
        for bad in ["192.0.2.0/33", "192.0.2.0/x", "300.0.0.1/8", "", "/24"] {
            assert!(bad.parse::<Ipv4Prefix>().is_err(), "{bad}");
        }
        assert_eq!(p.to_string(), "192.0.2.0/24");
    }

    #[test]
    fn rtnl_outside_a_runtime_is_an_error() {
        assert!(matches!(Rtnl::new(), Err(NetError::Socket { .. })));
    }

    /// Any rate paces (tokio's interval refuses a zero period, which a
    /// rate over 10^9 a second rounded to).
    #[tokio::test(start_paused = true)]
    async fn every_rate_paces_without_a_zero_period() {
        for pps in [1, 1000, 1_000_000, u32::MAX] {
            let sent = send_paced(&[1u8, 2, 3], pps, &mut Ungated, |_| Ok(()), |_| {}).await;
            assert_eq!(sent.ok(), Some(3), "{pps} packets/s");
        }
    }

    #[test]
    fn macs_format() {
        assert_eq!(fmt_mac(&[2, 0, 0xa, 0xff, 0, 1]), "02:00:0a:ff:00:01");
    }
}

//! An ARP observer for the "two answering hosts" figure: from a namespace,
//! broadcasts an ARP request for every VIP every 10 ms (iputils arping
//! cannot go below one a second) and records which MACs answer, by round.

use crate::net::arp::{ArpFrame, ArpOp, ArpSender};
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request per VIP per round.
pub const ROUND: Duration = Duration::from_millis(10);

/// What the observer saw: per VIP, (round, answering MAC) in arrival order.
/// A reply counts for the latest round sent before it arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub replies: Vec<Vec<(u32, [u8; 6])>>,
}

impl Observed {
    /// The MACs answering each VIP, in order.
    pub fn macs(&self, vip: usize) -> Vec<[u8; 6]> {
        self.replies
            .get(vip)
            .map_or_else(Vec::new, |r| r.iter().map(|(_, m)| *m).collect())
    }

    /// Answers recorded, every VIP.
    pub fn answers(&self) -> usize {
        self.replies.iter().map(Vec::len).sum()
    }

    /// The longest time any VIP had two answering MACs: rounds in which
    /// two different MACs answered one request, times [`ROUND`], for the
    /// worst VIP (ms).
    pub fn two_answerers_ms(&self) -> f64 {
        let worst = self
            .replies
            .iter()
            .map(|r| {
                let mut rounds: Vec<u32> = r
                    .iter()
                    .filter(|(round, mac)| r.iter().any(|(o, m)| o == round && m != mac))
                    .map(|(round, _)| *round)
                    .collect();
                rounds.dedup();
                rounds.len()
            })
            .max()
            .unwrap_or(0);
        worst as f64 * ROUND.as_secs_f64() * 1e3
    }
}

/// Starts observing `vips` from network namespace `netns` (a name under
/// /run/netns) through `iface`, asking as `me`, for `how_long`.
pub fn start(
    netns: &str,
    iface: &str,
    me: Ipv4Addr,
    vips: Vec<Ipv4Addr>,
    how_long: Duration,
) -> Result<JoinHandle<Result<Observed>>> {
    let ns = format!("/run/netns/{netns}");
    let iface = iface.to_string();
    std::thread::Builder::new()
        .name("arp-observer".into())
        .spawn(move || observe(&ns, &iface, me, &vips, how_long))
        .context("spawning the ARP observer")
}

/// Joins an observer.
pub fn join(h: JoinHandle<Result<Observed>>) -> Result<Observed> {
    h.join().map_err(|_| anyhow!("the ARP observer panicked"))?
}

/// Moves the calling thread into the network namespace at path `ns`.
pub(crate) fn enter_netns(ns: &str) -> Result<()> {
    let file = std::fs::File::open(ns).with_context(|| format!("opening {ns}"))?;
    // SAFETY: setns on a valid namespace fd; affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns({ns}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn observe(
    ns: &str,
    iface: &str,
    me: Ipv4Addr,
    vips: &[Ipv4Addr],
    how_long: Duration,
) -> Result<Observed> {
    enter_netns(ns)?;
    let tx = ArpSender::open(iface)?;
    let rx = arp_socket(iface)?;
    let mut seen = Observed {
        replies: vec![Vec::new(); vips.len()],
    };
    let start = Instant::now();
    let end = start + how_long;
    let mut round = 0u32;
    let mut next = start;
    let mut buf = [0u8; 128];
    while Instant::now() < end {
        if Instant::now() >= next {
            round += 1;
            for vip in vips {
                tx.send(&ArpFrame {
                    eth_dst: [0xff; 6],
                    eth_src: tx.mac(),
                    op: ArpOp::Request,
                    sha: tx.mac(),
                    spa: me,
                    tha: [0; 6],
                    tpa: *vip,
                })?;
            }
            next += ROUND;
        }
        // SAFETY: recv into a buffer we own, with its length.
        let n = unsafe {
            libc::recv(
                rx.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let Ok(n @ 1..) = usize::try_from(n) else {
            std::thread::sleep(Duration::from_micros(300));
            continue;
        };
        let Some(f) = ArpFrame::parse(&buf[..n.min(buf.len())]) else {
            continue;
        };
        if f.op == ArpOp::Reply {
            if let Some(i) = vips.iter().position(|v| *v == f.spa) {
                seen.replies[i].push((round, f.sha));
            }
        }
    }
    Ok(seen)
}

/// A raw socket receiving the ARP frames of `iface`.
fn arp_socket(iface: &str) -> Result<OwnedFd> {
    packet_socket(iface, libc::ETH_P_ARP as u16)
}

/// A raw `AF_PACKET` socket receiving the frames of ethertype `ethertype` on `iface`.
pub(crate) fn packet_socket(iface: &str, ethertype: u16) -> Result<OwnedFd> {
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    ensure!(ifindex != 0, "no interface {iface}");
    let proto = ethertype.to_be();
    // SAFETY: plain socket(2); the fd is owned right below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    ensure!(raw >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
    // SAFETY: raw is a fresh fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = i32::try_from(ifindex)?;
    // SAFETY: bind with a valid sockaddr_ll and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    ensure!(rc == 0, "bind {iface}: {}", std::io::Error::last_os_error());
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_answerers_counts_rounds_with_two_macs_for_the_worst_vip() {
        let (a, b) = ([1; 6], [2; 6]);
        let clean = vec![(1, a), (2, a), (5, b), (6, b)];
        let dup = vec![(1, a), (2, a), (2, b), (3, b), (3, a), (4, b)];
        let o = Observed {
            replies: vec![clean.clone(), dup],
        };
        assert_eq!(o.two_answerers_ms(), 20.0);
        let o = Observed {
            replies: vec![clean],
        };
        assert_eq!(o.two_answerers_ms(), 0.0);
        assert_eq!(o.macs(0), [a, a, b, b]);
    }
}

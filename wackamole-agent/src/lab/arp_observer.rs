//! An ARP observer for the "two answering hosts" figure: from a namespace,
//! broadcasts an ARP request for every VIP every 10 ms (iputils arping
//! cannot go below one a second) and records which MACs answer, by round.
//!
//! Each round asks from its own sender address (a pool of addresses nobody
//! else uses), and a reply is addressed to the request's sender: so a reply
//! names the request it answers. Counting a reply for the round in which it
//! arrived instead made a late reply to round k from the old owner and the
//! new owner's answer to round k+1 look like two answerers at one instant;
//! that figure is still kept (`by_arrival`) for comparison.

use crate::net::arp::{ArpFrame, ArpOp, ArpSender};
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request per VIP per round.
pub const ROUND: Duration = Duration::from_millis(10);

/// What the observer saw, per VIP, in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// (round of the request answered, answering MAC).
    pub replies: Vec<Vec<(u32, [u8; 6])>>,
    /// (latest round sent before the reply arrived, MAC), every reply for
    /// the VIP including unsolicited ones (gratuitous, unicast notices).
    pub by_arrival: Vec<Vec<(u32, [u8; 6])>>,
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
        two_macs_ms(&self.replies)
    }

    /// [`Observed::two_answerers_ms`] counting every reply for the round in
    /// which it arrived (the figure before requests were told apart).
    pub fn two_answerers_by_arrival_ms(&self) -> f64 {
        two_macs_ms(&self.by_arrival)
    }
}

/// Rounds in which two MACs answered, for the worst VIP, in ms.
fn two_macs_ms(replies: &[Vec<(u32, [u8; 6])>]) -> f64 {
    let worst = replies
        .iter()
        .map(|r| {
            let mut rounds: Vec<u32> = r
                .iter()
                .filter(|(round, mac)| r.iter().any(|(o, m)| o == round && m != mac))
                .map(|(round, _)| *round)
                .collect();
            // A late reply comes after later rounds' replies.
            rounds.sort_unstable();
            rounds.dedup();
            rounds.len()
        })
        .max()
        .unwrap_or(0);
    worst as f64 * ROUND.as_secs_f64() * 1e3
}

/// Starts observing `vips` from network namespace `netns` (a name under
/// /run/netns) through `iface`, for `how_long`. Round `r` asks from
/// `senders[r % senders.len()]`: addresses on the LAN that nobody uses (so
/// no host has a neighbour entry the requests would rewrite), enough of them
/// that no reply is still on its way when its address comes round again.
pub fn start(
    netns: &str,
    iface: &str,
    senders: Vec<Ipv4Addr>,
    vips: Vec<Ipv4Addr>,
    how_long: Duration,
) -> Result<JoinHandle<Result<Observed>>> {
    ensure!(
        !senders.is_empty(),
        "the ARP observer needs a sender address"
    );
    let ns = format!("/run/netns/{netns}");
    let iface = iface.to_string();
    std::thread::Builder::new()
        .name("arp-observer".into())
        .spawn(move || observe(&ns, &iface, &senders, &vips, how_long))
        .context("spawning the ARP observer")
}

/// The round a reply to `tpa` answers, if `tpa` is one of `senders`: the
/// latest round up to `current` that asked from it.
fn answered_round(senders: &[Ipv4Addr], tpa: Ipv4Addr, current: u32) -> Option<u32> {
    let n = u32::try_from(senders.len()).ok()?;
    let slot = u32::try_from(senders.iter().position(|s| *s == tpa)?).ok()?;
    let back = (current % n + n - slot) % n;
    current.checked_sub(back).filter(|r| *r > 0)
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
    senders: &[Ipv4Addr],
    vips: &[Ipv4Addr],
    how_long: Duration,
) -> Result<Observed> {
    enter_netns(ns)?;
    let tx = ArpSender::open(iface)?;
    let rx = arp_socket(iface)?;
    let mut seen = Observed {
        replies: vec![Vec::new(); vips.len()],
        by_arrival: vec![Vec::new(); vips.len()],
    };
    let mut buf = [0u8; 128];
    rounds(
        &rx,
        how_long,
        &mut buf,
        |round| {
            let me = senders[round as usize % senders.len()];
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
            Ok(())
        },
        |frame, round| {
            let Some(f) = ArpFrame::parse(frame) else {
                return;
            };
            if f.op == ArpOp::Reply {
                if let Some(i) = vips.iter().position(|v| *v == f.spa) {
                    seen.by_arrival[i].push((round, f.sha));
                    if let Some(asked) = answered_round(senders, f.tpa, round) {
                        seen.replies[i].push((asked, f.sha));
                    }
                }
            }
        },
    )?;
    Ok(seen)
}

/// The observers' loop, for `how_long`: every [`ROUND`] `ask(round)` sends
/// the round's requests (rounds count from 1); every frame read from `rx`
/// meanwhile goes to `heard(frame, round)` with the latest round sent.
pub(crate) fn rounds(
    rx: &OwnedFd,
    how_long: Duration,
    buf: &mut [u8],
    mut ask: impl FnMut(u32) -> Result<()>,
    mut heard: impl FnMut(&[u8], u32),
) -> Result<()> {
    let start = Instant::now();
    let end = start + how_long;
    let mut round = 0u32;
    let mut next = start;
    while Instant::now() < end {
        if Instant::now() >= next {
            round += 1;
            ask(round)?;
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
        heard(&buf[..n.min(buf.len())], round);
    }
    Ok(())
}

/// A raw socket receiving the ARP frames of `iface`.
fn arp_socket(iface: &str) -> Result<OwnedFd> {
    packet_socket(iface, libc::ETH_P_ARP as u16)
}

/// Sends `frame` as it is on `iface` (a raw socket of the calling thread's
/// namespace) and returns every frame that arrives there from another
/// source MAC within `wait`: for frames the ARP tools cannot make (another
/// hardware type, a VLAN tag).
pub fn raw_exchange(iface: &str, frame: &[u8], wait: std::time::Duration) -> Result<Vec<Vec<u8>>> {
    let fd = packet_socket(iface, libc::ETH_P_ALL as u16)?;
    let own_mac: Option<[u8; 6]> = frame.get(6..12).and_then(|m| m.try_into().ok());
    // SAFETY: a valid buffer of its length on our own bound socket.
    let sent = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    ensure!(
        sent >= 0,
        "send on {iface}: {}",
        std::io::Error::last_os_error()
    );
    let until = std::time::Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(got);
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) } <= 0 {
            continue;
        }
        // SAFETY: a valid buffer of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 {
            let f = &buf[..n as usize];
            if f.get(6..12) != own_mac.as_ref().map(|m| &m[..]) {
                got.push(f.to_vec());
            }
        }
    }
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
            by_arrival: Vec::new(),
        };
        assert_eq!(o.two_answerers_ms(), 20.0);
        let o = Observed {
            replies: vec![clean.clone()],
            by_arrival: Vec::new(),
        };
        assert_eq!(o.two_answerers_ms(), 0.0);
        assert_eq!(o.macs(0), [a, a, b, b]);
        // A late reply to round 2, after round 3's: one round, counted once.
        let late = vec![(2, a), (3, b), (2, b), (3, b)];
        let o = Observed {
            replies: vec![late],
            by_arrival: vec![clean],
        };
        assert_eq!(o.two_answerers_ms(), 10.0);
        assert_eq!(o.two_answerers_by_arrival_ms(), 0.0);
    }

    #[test]
    fn a_reply_names_the_round_it_answers() {
        let pool: Vec<Ipv4Addr> = (0..4).map(|i| Ipv4Addr::new(10, 0, 0, 210 + i)).collect();
        // Round r asks from pool[r % 4]; now at round 9 (slot 1).
        assert_eq!(answered_round(&pool, pool[1], 9), Some(9));
        assert_eq!(answered_round(&pool, pool[0], 9), Some(8));
        assert_eq!(answered_round(&pool, pool[2], 9), Some(6));
        assert_eq!(answered_round(&pool, pool[3], 9), Some(7));
        // Not one of ours (a gratuitous reply or a notice to the client).
        assert_eq!(answered_round(&pool, Ipv4Addr::new(10, 0, 0, 200), 9), None);
        // No round 0 exists.
        assert_eq!(answered_round(&pool, pool[2], 1), None);
    }
}

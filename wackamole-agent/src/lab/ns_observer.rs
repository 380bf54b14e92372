//! The IPv6 twin of [`super::arp_observer`]: from a namespace, sends a
//! Neighbor Solicitation for every IPv6 VIP to its solicited-node group every
//! [`ROUND`](super::arp_observer::ROUND) and records which MACs answer with
//! a solicited Neighbor Advertisement, by round (the loop is the ARP
//! observer's [`rounds`]). Frames are built and parsed by [`crate::net::nd`];
//! the result is an [`Observed`], so the two-answerer time is computed the
//! same way for both families.

use super::arp_observer::{enter_netns, packet_socket, rounds, Observed};
use crate::net::nd::OPT_TARGET_LLADDR;
use crate::net::nd::{NdFrame, NdSender, ETH_P_IPV6, NA_SOLICITED, ND_NEIGHBOR_ADVERT};
use anyhow::{anyhow, ensure, Context, Result};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::Duration;

/// Starts observing `vips` from network namespace `netns` (a name under
/// /run/netns) through `iface`, soliciting as `me`, for `how_long`.
pub fn start(
    netns: &str,
    iface: &str,
    me: Ipv6Addr,
    vips: Vec<Ipv6Addr>,
    how_long: Duration,
) -> Result<JoinHandle<Result<Observed>>> {
    let ns = format!("/run/netns/{netns}");
    let iface = iface.to_string();
    std::thread::Builder::new()
        .name("ns-observer".into())
        .spawn(move || observe(&ns, &iface, me, &vips, how_long))
        .context("spawning the NS observer")
}

/// Joins an observer.
pub fn join(h: JoinHandle<Result<Observed>>) -> Result<Observed> {
    h.join().map_err(|_| anyhow!("the NS observer panicked"))?
}

/// The answer an NA frame carries: (target, answering MAC) when it is a
/// solicited advertisement to `me` (unsolicited announcements are not answers).
pub fn answer_of(frame: &[u8], me: Ipv6Addr) -> Option<(Ipv6Addr, [u8; 6])> {
    let na = NdFrame::parse(frame)?;
    if na.icmp_type != ND_NEIGHBOR_ADVERT || na.flags & NA_SOLICITED == 0 || na.dst != me {
        return None;
    }
    Some((
        na.target,
        na.lladdr(OPT_TARGET_LLADDR).unwrap_or(na.eth_src),
    ))
}

fn observe(
    ns: &str,
    iface: &str,
    me: Ipv6Addr,
    vips: &[Ipv6Addr],
    how_long: Duration,
) -> Result<Observed> {
    enter_netns(ns)?;
    let tx = NdSender::open(iface)?;
    let rx = packet_socket(iface, ETH_P_IPV6)?;
    // The client's IPv6 traffic (the prober's replies) would flood this
    // socket: only ICMPv6 NAs pass.
    attach_na_filter(&rx)?;
    let solicitations: Vec<NdFrame> = vips
        .iter()
        .map(|&vip| NdFrame::solicitation(tx.mac(), me, vip))
        .collect();
    // Solicited NAs only, each counted for the round in which it arrived
    // (the solicitations are not told apart: both figures are this one).
    let mut seen = Observed {
        replies: vec![Vec::new(); vips.len()],
        by_arrival: vec![Vec::new(); vips.len()],
    };
    let mut buf = [0u8; 256];
    rounds(
        &rx,
        how_long,
        &mut buf,
        |_| {
            for ns in &solicitations {
                // A full transmit queue loses one solicitation, not the run.
                if let Err(e) = tx.send(ns) {
                    tracing::debug!("NS observer: {e}");
                }
            }
            Ok(())
        },
        |frame, round| {
            if let Some((target, mac)) = answer_of(frame, me) {
                if let Some(i) = vips.iter().position(|v| *v == target) {
                    seen.replies[i].push((round, mac));
                    seen.by_arrival[i].push((round, mac));
                }
            }
        },
    )?;
    Ok(seen)
}

/// Classic BPF: Ethernet, IPv6, next header ICMPv6, type 136 (NA); no
/// extension headers (an NA never has any).
fn attach_na_filter(fd: &OwnedFd) -> Result<()> {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LDH_ABS: u16 = 0x28;
    const LDB_ABS: u16 = 0x30;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let prog = [
        op(LDH_ABS, 0, 0, 12),
        op(JEQ_K, 0, 5, u32::from(ETH_P_IPV6)),
        op(LDB_ABS, 0, 0, 20),
        op(JEQ_K, 0, 3, 58),
        op(LDB_ABS, 0, 0, 54),
        op(JEQ_K, 0, 1, u32::from(ND_NEIGHBOR_ADVERT)),
        op(RET_K, 0, 0, 0xffff),
        op(RET_K, 0, 0, 0),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: setsockopt with a valid program that outlives the call (the
    // kernel copies it).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    ensure!(
        rc == 0,
        "SO_ATTACH_FILTER: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_solicited_advertisements_to_us_are_answers() {
        let me: Ipv6Addr = "fd77::200".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        let other: Ipv6Addr = "fd77::9".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        let vip: Ipv6Addr = "fd77::1:5".parse().unwrap_or(Ipv6Addr::LOCALHOST);
        let (node, client) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xc8]);
        let na = NdFrame::solicited_advert(node, vip, client, me, false);
        assert_eq!(answer_of(&na.to_frame(), me), Some((vip, node)));
        // To someone else, unsolicited, or a solicitation: not an answer.
        let to_other = NdFrame::solicited_advert(node, vip, client, other, false);
        assert_eq!(answer_of(&to_other.to_frame(), me), None);
        let unsolicited = NdFrame::unsolicited_advert(node, vip, false);
        assert_eq!(answer_of(&unsolicited.to_frame(), ALL), None);
        let ns = NdFrame::solicitation(client, me, vip);
        assert_eq!(answer_of(&ns.to_frame(), me), None);
        // A corrupted checksum is not parsed.
        let mut bad = na.to_frame();
        if let Some(b) = bad.last_mut() {
            *b ^= 1;
        }
        assert_eq!(answer_of(&bad, me), None);
    }

    const ALL: Ipv6Addr = crate::net::nd::ALL_NODES;
}

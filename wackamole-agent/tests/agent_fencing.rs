//! The fencing lease beats the takeover, with real agents on a fast-profile
//! Corosync cluster in namespaces and the default `xdp.lease = "auto"`.
//!
//! An observer in the client namespace sends an ARP request for each of the
//! victim's VIPs every 10 ms across the fault and records the answering MACs
//! in order. The victim answers first; if a survivor answers later, the
//! victim must never answer again once it has (no interleaving = never two
//! answering hosts). No timing is asserted.

use anyhow::{anyhow, bail, ensure, Context, Result};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wackamole::net::arp::{ArpFrame, ArpOp, ArpSender};
use wackamole::testbed::cluster::{AgentCluster, AgentClusterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");
/// How long the observer runs (a request per VIP every 10 ms).
const OBSERVE: Duration = Duration::from_secs(4);

/// Broadcasts an ARP request for every VIP every 10 ms from the client
/// namespace for [`OBSERVE`] and returns the answering MACs per VIP, in
/// order. (iputils arping cannot send faster than once a second.)
fn observe(c: &AgentCluster, vips: &[Ipv4Addr]) -> Result<JoinHandle<Result<Vec<Vec<[u8; 6]>>>>> {
    let ns = format!("/run/netns/{}", c.client().name());
    let addr = c
        .client()
        .run(&["ip", "-4", "-o", "addr", "show", "eth0"])?;
    let me: Ipv4Addr = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next()?.parse().ok())
        .with_context(|| format!("the client's address in {addr:?}"))?;
    let vips = vips.to_vec();
    Ok(std::thread::spawn(move || {
        let file = std::fs::File::open(&ns).with_context(|| format!("opening {ns}"))?;
        // SAFETY: setns on a valid namespace fd; affects only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns({ns}): {}", std::io::Error::last_os_error());
        }
        let tx = ArpSender::open("eth0")?;
        let rx = arp_socket("eth0")?;
        let mut seen = vec![Vec::new(); vips.len()];
        let end = Instant::now() + OBSERVE;
        let mut next = Instant::now();
        let mut buf = [0u8; 128];
        while Instant::now() < end {
            if Instant::now() >= next {
                for vip in &vips {
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
                next += Duration::from_millis(10);
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
            if n <= 0 {
                std::thread::sleep(Duration::from_micros(500));
                continue;
            }
            let Some(f) = ArpFrame::parse(&buf[..n as usize]) else {
                continue;
            };
            if f.op == ArpOp::Reply {
                if let Some(i) = vips.iter().position(|v| *v == f.spa) {
                    seen[i].push(f.sha);
                }
            }
        }
        Ok(seen)
    }))
}

/// A raw socket receiving the ARP frames of `iface`.
fn arp_socket(iface: &str) -> Result<OwnedFd> {
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    ensure!(ifindex != 0, "no interface {iface}");
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned right below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    ensure!(raw >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
    // SAFETY: raw is a fresh fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: zeroed sockaddr_ll is valid; the fields are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
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

/// The answering node of every reply, in order, per VIP.
fn answers(
    c: &AgentCluster,
    observer: JoinHandle<Result<Vec<Vec<[u8; 6]>>>>,
) -> Result<Vec<Vec<usize>>> {
    let macs: Vec<[u8; 6]> = (0..c.len()).map(|i| c.mac(i)).collect::<Result<_>>()?;
    let seen = observer
        .join()
        .map_err(|_| anyhow!("the observer panicked"))??;
    seen.iter()
        .map(|replies| {
            replies
                .iter()
                .map(|mac| {
                    macs.iter()
                        .position(|m| m == mac)
                        .context("a reply from an unknown MAC")
                })
                .collect()
        })
        .collect()
}

/// How often the answering node changes along `seq`.
fn changes(seq: &[usize]) -> usize {
    seq.windows(2).filter(|w| w[0] != w[1]).count()
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The victim's corosync is SIGSTOPped: the survivors take over.
    EngineStopped,
    /// The victim's agent and corosync are SIGKILLed.
    StackKilled,
    /// The victim's agent alone is SIGSTOPped: its engine still lists it, so
    /// nobody takes over, but its XDP goes silent.
    AgentStopped,
}

fn run(fault: Fault) -> Result<()> {
    let mut c = AgentCluster::start(AgentClusterOptions::new(BIN))?;
    let snap = c.wait_counts(&[2, 2, 2], Duration::from_secs(20))?;
    let victim = 0;
    let vips: Vec<Ipv4Addr> = snap
        .held_by(victim)
        .iter()
        .filter_map(|n| n.strip_prefix('v')?.parse().ok())
        .map(AgentCluster::vip)
        .collect();
    ensure!(vips.len() == 2, "{vips:?}");
    let observer = observe(&c, &vips)?;
    std::thread::sleep(Duration::from_millis(500));
    match fault {
        Fault::EngineStopped => c.corosync().stop_corosync(victim)?,
        Fault::StackKilled => {
            c.crash_agent(victim)?;
            c.corosync_mut().kill_corosync(victim)?;
        }
        Fault::AgentStopped => c.kill_agent(victim, libc::SIGSTOP)?,
    }
    let seen = answers(&c, observer)?;
    match fault {
        Fault::EngineStopped => c.corosync().cont_corosync(victim)?,
        Fault::AgentStopped => c.kill_agent(victim, libc::SIGCONT)?,
        Fault::StackKilled => {}
    }
    for (vip, seq) in vips.iter().zip(&seen) {
        ensure!(
            seq.first() == Some(&victim),
            "{fault:?}: {vip} not answered by its holder first: {seq:?}"
        );
        ensure!(
            changes(seq) <= 1,
            "{fault:?}: {vip} answered by two hosts (MACs interleave): {seq:?}\n{}",
            c.log_tails()
        );
        match fault {
            Fault::EngineStopped | Fault::StackKilled => ensure!(
                seq.last().is_some_and(|n| *n != victim),
                "{fault:?}: no survivor answers {vip}: {seq:?}\n{}",
                c.log_tails()
            ),
            // Nobody takes over (the group still lists the frozen agent),
            // and the holder's lease lapsed: the tail of the observation
            // got no reply at all.
            Fault::AgentStopped => ensure!(
                seq.iter().all(|n| *n == victim) && seq.len() < 350,
                "{fault:?}: {vip}: {} replies of 400 requests: {seq:?}",
                seq.len()
            ),
        }
        println!("{fault:?}: {vip}: {} replies, {seq:?}", seq.len());
    }
    Ok(())
}

#[test]
fn a_stopped_corosync_is_silent_before_the_survivors_answer() -> Result<()> {
    ensure!(wackamole::testbed::is_root(), "needs root");
    run(Fault::EngineStopped)
}

#[test]
fn a_killed_stack_is_silent_before_the_survivors_answer() -> Result<()> {
    ensure!(wackamole::testbed::is_root(), "needs root");
    run(Fault::StackKilled)
}

#[test]
fn a_stopped_agent_goes_silent() -> Result<()> {
    ensure!(wackamole::testbed::is_root(), "needs root");
    run(Fault::AgentStopped)
}

//! End-to-end, issue 10: carrier awareness and make-before-break hand-overs
//! with real `wackamole` agents on a Corosync cluster of network namespaces,
//! seen from a client that broadcasts ARP requests for every VIP every 10 ms.
//! Root only; one cluster at a time.

use crate::support::wait_for;
use anyhow::{ensure, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wackamole::lab::arping::fmt_mac;
use wackamole::net::arp::{ArpFrame, ArpOp, ArpSender, ETH_P_ARP};
use wackamole::testbed::cluster::{AgentCluster, AgentClusterOptions};
use wackamole_common::vip_state;

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");
const SETTLE: Duration = Duration::from_secs(20);
const VIFS: usize = 6;

fn vips() -> Vec<Ipv4Addr> {
    (1..=VIFS).map(AgentCluster::vip).collect()
}

/// VIP addresses on node `i`'s eth0.
fn vip_addresses(c: &AgentCluster, i: usize) -> Result<Vec<Ipv4Addr>> {
    let all = vips();
    Ok(c.addresses(i)?
        .into_iter()
        .filter(|a| all.contains(a))
        .collect())
}

/// Node `i`'s XDP entries for the VIPs (address, state).
fn vip_entries(c: &AgentCluster, i: usize) -> Result<Vec<(Ipv4Addr, u32)>> {
    let all = vips();
    Ok(c.xdp_entries(i)?
        .into_iter()
        .filter(|(a, _)| all.contains(a))
        .collect())
}

/// The ARP observer: from the observer's namespace, a broadcast request for every VIP
/// every 10 ms (round), recording which MACs answer each round. Replies are
/// matched to their round by the request's sender address (the reply's
/// target), not by arrival time: a loaded machine may deliver a reply after
/// the next round's requests went out.
struct Observer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Rounds>>,
}

/// Per VIP, per round: the MACs that answered it.
type Rounds = BTreeMap<Ipv4Addr, BTreeMap<u32, BTreeMap<[u8; 6], String>>>;

impl Observer {
    fn start(c: &AgentCluster) -> Result<Self> {
        let path = format!("/run/netns/{}", c.observer().name());
        let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || -> Result<Rounds> {
            // SAFETY: setns on a valid namespace fd; affects only this thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                anyhow::bail!("setns({path}): {}", std::io::Error::last_os_error());
            }
            observe(&stopped)
        });
        Ok(Observer { stop, thread })
    }

    fn finish(self) -> Result<Rounds> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("observer panicked"))?
    }
}

/// Rounds asked from 10.0.0.201..=250 in turn (free addresses of the LAN:
/// nodes are .1-.16, VIPs .101-.199, the client .200, the observer .251).
const ROUND_ADDRS: u32 = 50;

fn round_addr(round: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 201 + (round % ROUND_ADDRS) as u8)
}

/// The latest round (up to `now`) that asked from `addr`.
fn round_of(addr: Ipv4Addr, now: u32) -> Option<u32> {
    let [a, b, c, d] = addr.octets();
    if (a, b, c) != (10, 0, 0) || !(201..201 + ROUND_ADDRS as u8).contains(&d) {
        return None;
    }
    let residue = u32::from(d - 201);
    let back = (now % ROUND_ADDRS + ROUND_ADDRS - residue) % ROUND_ADDRS;
    now.checked_sub(back)
}

/// Now, as the agents' logs print it (UTC, seconds since midnight).
fn wall_clock() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:.6}", t.as_secs_f64() % 86_400.0)
}

fn observe(stop: &AtomicBool) -> Result<Rounds> {
    let sender = ArpSender::open("eth0")?;
    let mac = sender.mac();
    // SAFETY: plain socket(2); owned right below.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(ETH_P_ARP.to_be()),
        )
    };
    ensure!(raw >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
    // SAFETY: raw is a fresh fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut rounds = Rounds::new();
    let mut round = 0u32;
    let mut buf = [0u8; 128];
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        for vip in vips() {
            let req = ArpFrame {
                eth_dst: [0xff; 6],
                eth_src: mac,
                op: ArpOp::Request,
                sha: mac,
                spa: round_addr(round),
                tha: [0; 6],
                tpa: vip,
            };
            // A full queue drops one request: the next round asks again.
            let _ = sender.send(&req);
        }
        let until = Instant::now() + Duration::from_millis(10);
        while Instant::now() < until {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let Some(f) = ArpFrame::parse(&buf[..n as usize]) else {
                continue;
            };
            let Some(asked) = round_of(f.tpa, round) else {
                continue;
            };
            if f.op == ArpOp::Reply && vips().contains(&f.spa) {
                rounds
                    .entry(f.spa)
                    .or_default()
                    .entry(asked)
                    .or_default()
                    .entry(f.sha)
                    .or_insert_with(wall_clock);
            }
        }
    }
    Ok(rounds)
}

/// No VIP answered by two MACs in more than one round. One round may see
/// both at a hand-over: the broadcast request reaches the nodes at
/// slightly different instants (on this shared test machine, up to
/// milliseconds apart), so the old owner may answer it just before its
/// yield and the new owner just after its acquisition. Two nodes answering
/// at once, as before issue 10, shows in many consecutive rounds.
fn check_never_two_answerers(rounds: &Rounds) -> Result<()> {
    for (vip, per_round) in rounds {
        let both: Vec<(&u32, &BTreeMap<[u8; 6], String>)> = per_round
            .iter()
            .filter(|(_, macs)| macs.len() > 1)
            .collect();
        let text = || {
            both.iter()
                .map(|(r, macs)| {
                    let m: Vec<String> = macs
                        .iter()
                        .map(|(mac, at)| format!("{} at {at}", fmt_mac(mac)))
                        .collect();
                    format!("round {r}: {}", m.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        ensure!(both.len() <= 1, "{vip}: two MACs answered: {}", text());
        if !both.is_empty() {
            eprintln!(
                "{vip}: one round answered by both sides of a hand-over: {}",
                text()
            );
        }
    }
    Ok(())
}

fn log_len(c: &AgentCluster, i: usize) -> Result<usize> {
    Ok(std::fs::metadata(c.log_path(i)?)?.len() as usize)
}

/// The first "new view ... members=1" line n2 or n3 logged after the given
/// log offsets: a healthy node found itself alone (the ring split).
fn healthy_node_alone(c: &AgentCluster, since: [usize; 2]) -> Result<Option<String>> {
    for (i, from) in [1, 2].into_iter().zip(since) {
        let log = std::fs::read_to_string(c.log_path(i)?)?;
        let lonely = log
            .get(from..)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains(" new view ") && l.contains(" members=1 "));
        if let Some(line) = lonely {
            return Ok(Some(format!("n{}: {}", i + 1, line.trim())));
        }
    }
    Ok(None)
}

/// How many VIPs changed answering MAC during the observation.
fn moved(rounds: &Rounds) -> usize {
    rounds
        .values()
        .filter(|per_round| {
            let macs: BTreeSet<&[u8; 6]> = per_round.values().flat_map(|m| m.keys()).collect();
            macs.len() > 1
        })
        .count()
}

#[test]
#[ignore = "needs root and corosync"]
fn a_cut_holder_holds_nothing_and_returns_by_handover() -> Result<()> {
    ensure!(wackamole::testbed::is_root(), "this test needs root");
    let _guard = crate::support::one_cluster_at_a_time();
    let mut opts = AgentClusterOptions::new(BIN);
    // Carrier back makes a node eligible after `mature`: longer than the
    // merge of the corosync rings (~0.5 s with the fast profile), or the
    // one-node partition would take every VIP before the merge (and the
    // merge would have duplicates to resolve, by hand-over).
    opts.mature = Duration::from_secs(3);
    let c = AgentCluster::start(opts)?;
    c.wait_counts(&[2, 2, 2], SETTLE)?;
    ensure!(vip_addresses(&c, 0)?.len() == 2, "n1 holds two VIPs");

    // On a loaded machine the fast-profile ring merge sometimes drops the
    // healthy nodes into one-node views for a few ms: a partition as far as
    // the agents can know, where each side covers every VIP. That is the
    // engine's split, not the return: the cut and return are repeated, and
    // the return's claims (one answerer, fewest moves) are asserted on a
    // return without a split; all attempts split is a failure.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        // Cable out: n1 loses carrier and drops everything at once, although
        // its one-node partition "covers every VIP".
        c.link_down(0)?;
        wait_for("n1 to drop its addresses", Duration::from_secs(5), || {
            let owned = vip_entries(&c, 0)?
                .iter()
                .any(|(_, s)| *s == vip_state::OWNED);
            Ok(vip_addresses(&c, 0)?.is_empty() && !owned)
        })
        .with_context(|| c.log_tail(0))?;
        c.wait_counts_among(&[1, 2], &[3, 3], SETTLE)?;
        // Still nothing while the cable is out (released entries are
        // forgotten after their grace period).
        std::thread::sleep(Duration::from_secs(4));
        ensure!(
            vip_addresses(&c, 0)?.is_empty(),
            "n1 took addresses while its cable was out\n{}",
            c.log_tail(0)
        );
        let entries = vip_entries(&c, 0)?;
        ensure!(
            entries.is_empty(),
            "n1 has XDP entries while its cable is out: {entries:?}\n{}",
            c.log_tail(0)
        );

        // Cable back: n1 rejoins holding nothing and takes its share by
        // hand-over.
        let observer = Observer::start(&c)?;
        let logged_before = [log_len(&c, 1)?, log_len(&c, 2)?];
        std::thread::sleep(Duration::from_millis(300));
        c.link_up(0)?;
        c.wait_counts(&[2, 2, 2], SETTLE)
            .with_context(|| c.log_tails())?;
        std::thread::sleep(Duration::from_millis(500));
        let rounds = observer.finish()?;
        ensure!(rounds.len() == VIFS, "not every VIP answered: {rounds:?}");
        if let Some(line) = healthy_node_alone(&c, logged_before)? {
            ensure!(
                attempt < ATTEMPTS,
                "the ring split on every one of {ATTEMPTS} returns (last: {line})"
            );
            eprintln!("attempt {attempt}: the ring split while n1 returned ({line}); repeating");
            continue;
        }
        check_never_two_answerers(&rounds).with_context(|| c.log_tails())?;
        // Fewest moves: exactly n1's two VIPs changed hands.
        ensure!(
            moved(&rounds) == 2,
            "{} VIPs moved on the return",
            moved(&rounds)
        );
        break;
    }

    // Planned moves: drain and undrain, observed the same way.
    let observer = Observer::start(&c)?;
    std::thread::sleep(Duration::from_millis(300));
    c.ctl_ok(1, &["drain", "n1"])?;
    c.wait_counts(&[0, 3, 3], SETTLE)?;
    c.ctl_ok(1, &["undrain", "n1"])?;
    c.wait_counts(&[2, 2, 2], SETTLE)?;
    std::thread::sleep(Duration::from_millis(500));
    let rounds = observer.finish()?;
    check_never_two_answerers(&rounds).with_context(|| c.log_tails())?;
    Ok(())
}

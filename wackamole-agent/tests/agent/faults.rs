//! The fault matrix of issue 14: real `wackamole` agents on a fast-profile
//! Corosync cluster of network namespaces, under traffic from a client that
//! probes every VIP over UDP every 10 ms (the lab prober, a responder on every
//! node) and broadcasts ARP requests for every VIP every 10 ms (the lab ARP
//! observer). Faults: random loss on one node's cable (10 %, 30 %), a cable
//! that flaps every 2 s, a rolling restart, two nodes crashing at once, a
//! partition that heals while a `ctl move` is in flight; and a mixed-version
//! cluster (one agent speaking wire version N+1) failing over both ways.
//!
//! For each fault: full coverage at the end (every VIP answered over ARP by
//! exactly one node, its owner), no duplicate answerers outside a partition
//! (for loss and flapping: outside the membership splits the agents logged),
//! no agent crashed; lost probes are printed (`--nocapture`), and a rolling
//! restart loses none. With the LAN detector in mode `guard`, neither 10 %
//! nor 30 % loss gives a duplicate answerer at all, with or without
//! `require_quorum`:
//! `loss_on_one_link_with_the_detector_guard_never_gives_two_answerers`,
//! `loss_30_percent_with_quorum_and_the_detector_guard_never_gives_two_answerers`,
//! and in mode `act` (`..._with_the_detector_acting_...`).
//! Without the detector the agent has no signal besides its engine, and a
//! ring split by loss is a partition to it (each side answers, or with
//! `require_quorum` the lossy side answers until its own ring shows it
//! without quorum); the known-gap tests, skipped in CI, show what that
//! costs: `known_gap_loss_on_one_link_splits_the_ring` (without quorum)
//! and `known_gap_loss_with_quorum_lets_a_reforming_node_answer`.
//!
//! A duplicate answerer is a VIP answered by two MACs in two consecutive
//! observer rounds or more: a single round can show both sides of a correct
//! hand-over (the broadcast reaches the nodes at slightly different instants,
//! see `handover.rs`).
//!
//! `WKT_SOAK=1` runs the flapping cable for the 30 s; CI flaps it for
//! 16 s (4 down/up cycles) to keep this file near two minutes.
//!
//! `cargo test --release -p wackamole-agent --features corosync --test agent faults:: -- --include-ignored --nocapture --test-threads 1`

use anyhow::{bail, ensure, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use wackamole::lab::analysis::{analyse, Params, ProbeRun, RunResult};
use wackamole::lab::arp_observer::{self, Observed, ROUND};
use wackamole::lab::prober::{self, ProberConfig};
use wackamole::lab::responder::Responder;
use wackamole::testbed::cluster::{observer_addrs, AgentCluster, AgentClusterOptions};
use wackamole::testbed::impair::{LinkLoss, Loss};
use wackamole::testbed::{Netns, Switch};

use crate::support::{log_time_of_day, time_of_day};

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");
const SETTLE: Duration = Duration::from_secs(20);
/// How long full coverage may take to come back after a fault. Not a speed
/// target (those live in the bench): heavy loss or flapping can leave the
/// LAN-fast corosync ring re-forming for many seconds on this shared
/// two-core machine (three SCHED_RR corosyncs), and agents starved through
/// it rejoin afresh and immature. The time taken is printed.
const RECOVER: Duration = Duration::from_secs(90);
const VIFS: usize = 6;
/// The responders' UDP port.
const PORT: u16 = 7411;
const PROBE_EVERY: Duration = Duration::from_millis(10);

fn vips() -> Vec<Ipv4Addr> {
    (1..=VIFS).map(AgentCluster::vip).collect()
}

fn soak() -> bool {
    std::env::var_os("WKT_SOAK").is_some()
}

fn cluster() -> Result<(std::sync::MutexGuard<'static, ()>, AgentCluster)> {
    cluster_of(AgentClusterOptions::new(BIN))
}

/// A settled cluster of `opts` (3 nodes holding 2 VIFs each).
fn cluster_of(
    opts: AgentClusterOptions,
) -> Result<(std::sync::MutexGuard<'static, ()>, AgentCluster)> {
    wackamole::testbed::require_root();
    let guard = crate::support::one_cluster_at_a_time();
    let c = AgentCluster::start(opts)?;
    c.wait_counts(&[2, 2, 2], SETTLE)?;
    Ok((guard, c))
}

/// UDP probes and ARP observation from the client for a fixed time (the lab
/// prober and observer run for a duration given up front).
struct Traffic {
    responders: Vec<Responder>,
    prober: JoinHandle<Result<ProbeRun>>,
    observer: JoinHandle<Result<Observed>>,
    started: Instant,
    wall: SystemTime,
    mono_ns: u64,
    until: Instant,
}

/// What the client saw.
struct Seen {
    probes: RunResult,
    arp: Observed,
    started: Instant,
    /// Wall clock at `started`.
    wall: SystemTime,
    /// The prober's clock (CLOCK_MONOTONIC) at `started`.
    mono_ns: u64,
    run: ProbeRun,
}

impl Traffic {
    fn start(c: &AgentCluster, how_long: Duration) -> Result<Self> {
        let mut responders = Vec::new();
        for i in 0..c.len() {
            responders.push(Responder::start_in(c.ns(i)?, c.name(i)?, PORT)?);
        }
        let sock = c.client().in_thread(prober::bind_prober)??;
        let mut cfg = ProberConfig::new(vips(), PORT, how_long);
        cfg.interval = PROBE_EVERY;
        let prober = std::thread::Builder::new()
            .name("prober".into())
            .spawn(move || prober::run(&sock, &cfg))
            .context("spawning the prober")?;
        let started = Instant::now();
        let wall = SystemTime::now();
        let mono_ns = wackamole::lab::now_ns();
        let observer = arp_observer::start(
            c.client().name(),
            "eth0",
            observer_addrs(),
            vips(),
            how_long,
        )?;
        Ok(Traffic {
            responders,
            prober,
            observer,
            started,
            wall,
            mono_ns,
            until: started + how_long,
        })
    }

    /// Waits for the end of the run.
    fn finish(self, c: &AgentCluster) -> Result<Seen> {
        if Instant::now() > self.until {
            eprintln!("note: the fault outlasted the measured window; its tail is not measured");
        }
        let run = self
            .prober
            .join()
            .map_err(|_| anyhow::anyhow!("the prober panicked"))??;
        let arp = arp_observer::join(self.observer)?;
        for r in self.responders {
            r.stop()?;
        }
        let probes = analyse(&run, &[], Params::default());
        ensure!(
            probes.never_answered.is_empty(),
            "VIPs never answered: {:?}\n{}",
            probes.never_answered,
            c.log_tails()
        );
        Ok(Seen {
            probes,
            arp,
            started: self.started,
            wall: self.wall,
            mono_ns: self.mono_ns,
            run,
        })
    }
}

impl Seen {
    /// The observer round in progress at `t`.
    fn round_at(&self, t: Instant) -> u32 {
        (t.saturating_duration_since(self.started).as_nanos() / ROUND.as_nanos()) as u32 + 1
    }

    /// Per VIP, runs of consecutive rounds (at least `min_len` long) within
    /// `rounds` in which two MACs answered: (first round, length, MACs).
    fn double_answers(
        &self,
        rounds: std::ops::Range<u32>,
        min_len: u32,
    ) -> Vec<(Ipv4Addr, u32, u32, usize)> {
        let mut out = Vec::new();
        for (vip, replies) in vips().iter().zip(&self.arp.replies) {
            let mut per_round: BTreeMap<u32, BTreeSet<[u8; 6]>> = BTreeMap::new();
            for (r, mac) in replies {
                if rounds.contains(r) {
                    per_round.entry(*r).or_default().insert(*mac);
                }
            }
            let doubled: Vec<(u32, usize)> = per_round
                .iter()
                .filter(|(_, m)| m.len() > 1)
                .map(|(r, m)| (*r, m.len()))
                .collect();
            let mut i = 0;
            while i < doubled.len() {
                let mut j = i;
                while doubled.get(j + 1).is_some_and(|n| n.0 == doubled[j].0 + 1) {
                    j += 1;
                }
                let len = doubled[j].0 - doubled[i].0 + 1;
                if len >= min_len {
                    let macs = doubled[i..=j].iter().map(|d| d.1).max().unwrap_or(0);
                    out.push((*vip, doubled[i].0, len, macs));
                }
                i = j + 1;
            }
        }
        out
    }

    /// Probes sent in `[from, to]` that nobody answered: (VIF name, send
    /// time as seconds of the day, to compare with the agents' logs).
    fn lost_between(&self, from: Instant, to: Instant) -> Vec<(String, String)> {
        let at =
            |t: Instant| self.mono_ns + t.saturating_duration_since(self.started).as_nanos() as u64;
        let (from, to) = (at(from), at(to));
        let rounds: Vec<u32> = (0..self.run.round_sent_ns.len() as u32)
            .filter(|&r| {
                let t = self.run.round_sent_ns[r as usize];
                from <= t && t <= to
            })
            .collect();
        let answered: BTreeSet<(u32, u32)> =
            self.run.answers.iter().map(|a| (a.vip, a.round)).collect();
        let unsent: BTreeSet<(u32, u32)> = self.run.unsent.iter().copied().collect();
        let t0 = time_of_day(self.wall);
        let mut lost = Vec::new();
        for vip in 0..VIFS as u32 {
            for &r in &rounds {
                if !answered.contains(&(vip, r)) && !unsent.contains(&(vip, r)) {
                    let sent = self.run.round_sent_ns[r as usize].saturating_sub(self.mono_ns);
                    lost.push((
                        AgentCluster::vif_name(vip as usize + 1),
                        format!("{:.3}", t0 + sent as f64 / 1e9),
                    ));
                }
            }
        }
        lost
    }

    /// Duplicate answerers (two rounds or more) that no membership split
    /// explains: none of `splits` overlaps them, with half a second of slack
    /// before (observer rounds can run late) and a second after (a merge's
    /// state exchange and hand-overs resolve the duplicates after the view).
    fn unexplained_duplicates(&self, splits: &[(f64, f64)]) -> Vec<(Ipv4Addr, u32, u32, usize)> {
        let t0 = time_of_day(self.wall);
        let round_s = ROUND.as_secs_f64();
        self.double_answers(0..u32::MAX, 2)
            .into_iter()
            .filter(|(_, first, len, _)| {
                let from = t0 + f64::from(first.saturating_sub(1)) * round_s;
                let to = t0 + f64::from(first + len) * round_s;
                !splits
                    .iter()
                    .any(|(s, e)| *s - 0.5 <= to && from <= *e + 1.0)
            })
            .collect()
    }

    /// Prints the figures of `fault`.
    fn report(&self, fault: &str) {
        let p = &self.probes;
        let worst = p.worst_outage.map_or_else(
            || "none".to_string(),
            |o| {
                format!(
                    "{} ({}) {} ms, {} probes",
                    AgentCluster::vif_name(o.vip as usize + 1),
                    AgentCluster::vip(o.vip as usize + 1),
                    o.len_ns() / 1_000_000,
                    o.lost
                )
            },
        );
        let singles = self.double_answers(0..u32::MAX, 1).len();
        let doubles = self.double_answers(0..u32::MAX, 2);
        eprintln!(
            "FAULT {fault}: lost probes {} of {} ({:.0} rounds/s, {} late, {} replies dropped at \
             the prober's socket; worst outage {worst}); ARP: {} single-round overlaps (hand-over \
             race), {} duplicate answerers {:?}; UDP answered by two nodes in {} ms of 1 ms windows",
            p.lost_probes,
            p.probes_sent,
            p.round_rate_hz,
            p.late_rounds,
            p.prober_socket_drops,
            singles,
            doubles.len(),
            doubles,
            p.duplicate_owner_ns / 1_000_000
        );
    }

    /// No duplicate answerer in `rounds` (see the module docs).
    fn no_duplicates(&self, rounds: std::ops::Range<u32>, c: &AgentCluster) -> Result<()> {
        let d = self.double_answers(rounds.clone(), 2);
        ensure!(
            d.is_empty(),
            "duplicate answerers in rounds {rounds:?} (VIP, first round, rounds, MACs): {d:?}\n{}",
            c.log_tails()
        );
        Ok(())
    }
}

/// When (seconds of the day) some agent's membership view had fewer than
/// all `n` members: from such a view ("new view ... members=K") until a
/// full view's exchange completed there ("view ... complete: K members").
/// Until then the VIFs taken in the split are still held: a lossy ring
/// re-forming every 100-300 ms restarts the exchange with each view, and
/// in one CI run a node held two VIFs it took alone for 1.5 s through six
/// full views whose exchanges never finished.
fn membership_splits(c: &AgentCluster, n: usize) -> Result<Vec<(f64, f64)>> {
    let members_after = |line: &str, key: &str| {
        line.split(key)
            .nth(1)
            .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
            .and_then(|m| m.parse::<usize>().ok())
    };
    let mut out = Vec::new();
    for i in 0..c.len() {
        let log = std::fs::read_to_string(c.log_path(i)?)?;
        let mut since = None;
        for line in log.lines() {
            let Some(t) = log_time_of_day(line) else {
                continue;
            };
            if line.contains(" new view ") {
                if members_after(line, "members=").is_some_and(|m| m < n) && since.is_none() {
                    since = Some(t);
                }
            } else if line.contains(" complete: ") {
                let whole = members_after(line, " complete: ").is_some_and(|m| m >= n);
                if let (true, Some(s)) = (whole, since) {
                    out.push((s, t));
                    since = None;
                }
            }
        }
        if let Some(s) = since {
            out.push((s, f64::INFINITY));
        }
    }
    Ok(out)
}

/// Every agent in `nodes` is still running (none exited or crashed).
fn none_crashed(c: &mut AgentCluster, nodes: &[usize]) -> Result<()> {
    for &i in nodes {
        if let Some(status) = c.agent_exited(i)? {
            bail!(
                "agent {} exited ({status}) during the fault:\n{}",
                c.name(i)?,
                c.log_tail(i)
            );
        }
        ensure!(c.agent_running(i), "agent {} is not running", c.name(i)?);
        c.status(i)
            .with_context(|| format!("agent {} does not answer", c.name(i).unwrap_or("?")))?;
    }
    Ok(())
}

/// Full coverage: the agents agree on an owner for every VIF with `counts`,
/// and from the client every VIP is answered over ARP by exactly its owner.
/// A VIP nobody answers is asked again for up to 3 s (an ARP request or
/// reply may be late on this loaded machine); two answerers fail at once.
fn covered(c: &AgentCluster, counts: &[usize]) -> Result<()> {
    let began = Instant::now();
    let snap = c.wait_counts(counts, RECOVER)?;
    let took = began.elapsed();
    if took > SETTLE {
        eprintln!("note: the agents took {took:.1?} to agree on full coverage again");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let answers = c.who_answers_all(&vips())?;
        let mut silent = Vec::new();
        for (k, nodes) in (1..=VIFS).zip(&answers) {
            let vif = AgentCluster::vif_name(k);
            let owner = (0..c.len())
                .find_map(|i| snap.owner_seen_by(i, &vif))
                .with_context(|| format!("{vif}: no owner"))?;
            let owner = c
                .index_of(&owner)
                .with_context(|| format!("unknown node {owner}"))?;
            if nodes.is_empty() {
                silent.push((k, owner));
                continue;
            }
            ensure!(
                nodes == &[owner],
                "{vif} ({}) is owned by node {owner} but ARP is answered by {nodes:?}\n{}",
                AgentCluster::vip(k),
                c.log_tails()
            );
        }
        if silent.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let detail: Vec<String> = silent
                .iter()
                .map(|&(k, owner)| {
                    format!(
                        "{} ({}) owned by node {owner}, whose XDP table is {:?} and addresses {:?}",
                        AgentCluster::vif_name(k),
                        AgentCluster::vip(k),
                        c.xdp_entries(owner),
                        c.addresses(owner)
                    )
                })
                .collect();
            bail!("no ARP answer for {}\n{}", detail.join("; "), c.log_tails());
        }
    }
}

/// The random-loss impairment drops about the asked fraction in each
/// direction: two hosts on a switch, one host's port impaired with 10 % of
/// what it sends and 30 % of what it receives, 4000 UDP datagrams each way.
#[test]
#[ignore = "needs root"]
fn link_loss_drops_the_asked_fraction() -> Result<()> {
    wackamole::testbed::require_root();
    let switch = Switch::new("lsw")?;
    let a = Netns::new("lossa")?;
    let b = Netns::new("lossb")?;
    switch.plug("pa", &a, "eth0", "10.77.0.1/24")?;
    switch.plug("pb", &b, "eth0", "10.77.0.2/24")?;
    // Resolve ARP before the loss starts.
    a.run(&["ping", "-c", "1", "-W", "2", "10.77.0.2"])?;
    b.run(&["ping", "-c", "1", "-W", "2", "10.77.0.1"])?;
    let impair = LinkLoss::apply(
        switch.ns().name(),
        "pa",
        Loss {
            from_host: 0.1,
            to_host: 0.3,
        },
    )?;
    const N: u32 = 4000;
    let a_to_b =
        1.0 - f64::from(udp_through(&a, &b, Ipv4Addr::new(10, 77, 0, 2), N)?) / f64::from(N);
    let b_to_a =
        1.0 - f64::from(udp_through(&b, &a, Ipv4Addr::new(10, 77, 0, 1), N)?) / f64::from(N);
    let (from, to) = impair.dropped()?;
    eprintln!(
        "loss from the host {:.1} % (asked 10 %), to the host {:.1} % (asked 30 %); filters dropped {from} and {to}",
        a_to_b * 100.0,
        b_to_a * 100.0
    );
    // Binomial, n = 4000: the standard deviation is under 0.8 %.
    ensure!(
        (0.06..0.14).contains(&a_to_b),
        "loss from the host {a_to_b}"
    );
    ensure!((0.25..0.35).contains(&b_to_a), "loss to the host {b_to_a}");
    drop(impair);
    // Removed: nothing lost any more.
    let after = udp_through(&a, &b, Ipv4Addr::new(10, 77, 0, 2), 500)?;
    ensure!(after == 500, "{after} of 500 after removing the impairment");
    Ok(())
}

/// Sends `n` datagrams from `from` to `to_addr` in `to`; returns how many arrived.
fn udp_through(from: &Netns, to: &Netns, to_addr: Ipv4Addr, n: u32) -> Result<u32> {
    let rx = to.in_thread(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))??;
    let port = rx.local_addr()?.port();
    rx.set_read_timeout(Some(Duration::from_millis(500)))?;
    let done = Arc::new(AtomicBool::new(false));
    let sent = done.clone();
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut got = 0u32;
        loop {
            match rx.recv(&mut buf) {
                Ok(_) => got += 1,
                Err(_) if sent.load(Ordering::Relaxed) => return got,
                Err(_) => {}
            }
        }
    });
    let tx = from.in_thread(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))??;
    for k in 0..n {
        tx.send_to(&k.to_le_bytes(), SocketAddrV4::new(to_addr, port))?;
        // Paced: the receiver's socket must never overflow.
        std::thread::sleep(Duration::from_micros(100));
    }
    done.store(true, Ordering::Relaxed);
    counter
        .join()
        .map_err(|_| anyhow::anyhow!("the counting thread panicked"))
}

/// `p` loss both ways on n1's cable for 10 s under traffic; the cluster
/// settles again after it (coverage, no crash). Returns what the client saw.
fn lossy_link(c: &mut AgentCluster, p: f64) -> Result<Seen> {
    const LOSS_FOR: Duration = Duration::from_secs(10);
    let traffic = Traffic::start(c, LOSS_FOR + Duration::from_secs(5))?;
    std::thread::sleep(Duration::from_secs(1));
    let impair = c.impair_link(0, Loss::both(p))?;
    std::thread::sleep(LOSS_FOR);
    let (from, to) = impair.dropped()?;
    drop(impair);
    none_crashed(c, &[0, 1, 2])?;
    covered(c, &[2, 2, 2])?;
    let seen = traffic.finish(c)?;
    eprintln!(
        "{:.0} % loss on n1's cable for {LOSS_FOR:?}: {from} packets dropped from n1, {to} to it",
        p * 100.0
    );
    seen.report(&format!("{:.0}% loss on n1", p * 100.0));
    none_crashed(c, &[0, 1, 2])?;
    Ok(seen)
}

/// Duplicate answerers in `seen` (the fault `what`) only around the
/// membership splits the three agents logged.
fn duplicates_only_around_splits(c: &AgentCluster, seen: &Seen, what: &str) -> Result<()> {
    let splits = membership_splits(c, 3)?;
    let unexplained = seen.unexplained_duplicates(&splits);
    ensure!(
        unexplained.is_empty(),
        "{what}: duplicate answerers while every view was whole: {unexplained:?}\n{}",
        c.log_tails()
    );
    Ok(())
}

/// After a fault has settled: 2 s of traffic with no duplicate answerer.
/// Settled: every VIF covered again, as agreed and answered. The fault's
/// aftermath can outlast it: in one CI run corosync's ring stopped
/// delivering on all three nodes about a second before 10 % loss ended,
/// and was still stuck when the 2 s began 4 s after it (every agent's
/// watchdog had released everything); whether it recovers, and why it
/// stuck, the daemons' logs (now kept with the agents') will tell.
fn quiet_after(c: &AgentCluster, fault: &str) -> Result<()> {
    covered(c, &[2, 2, 2]).with_context(|| format!("settling after {fault}"))?;
    let seen = Traffic::start(c, Duration::from_secs(2))?.finish(c)?;
    seen.no_duplicates(0..u32::MAX, c)
        .with_context(|| format!("after {fault} settled"))?;
    // Not asserted: on this shared two-core machine a starved prober or
    // responder loses a few probes now and then with no fault at all.
    eprintln!(
        "after {fault} settled: {} probes lost in 2 s",
        seen.probes.lost_probes
    );
    Ok(())
}

/// 10 % and 30 % loss on one node's cable. With the LAN-fast corosync
/// profile (50 ms token, one retransmission before loss) this loss splits
/// the ring, often into single-node views, and every side covers every VIP
/// (availability first): duplicate answerers are allowed only around such
/// membership splits (from the agents' logs), see
/// `known_gap_loss_on_one_link_splits_the_ring`. Asserted: no agent
/// crashes, full coverage once the loss ends, then a quiet cluster.
#[test]
#[ignore = "needs root and corosync"]
fn loss_10_and_30_percent_on_one_link() -> Result<()> {
    let (_guard, mut c) = cluster()?;
    for p in loss_levels() {
        let seen = lossy_link(&mut c, p)?;
        let what = format!("{:.0}% loss", p * 100.0);
        duplicates_only_around_splits(&c, &seen, &what)?;
        quiet_after(&c, &what)?;
    }
    Ok(())
}

/// The same loss with the LAN detector guarding departed members' VIFs
/// (`[detector] mode = "guard"`): the ring splits as often, but a member
/// the view dropped whose beats still say it answers keeps its VIFs (a
/// silent one's wait while another view may hold them), and a lapsed node
/// stays silent while members of another view answer, so no VIP has two
/// answerers; full coverage once the loss ends, a quiet cluster after.
#[test]
#[ignore = "needs root and corosync"]
fn loss_on_one_link_with_the_detector_guard_never_gives_two_answerers() -> Result<()> {
    loss_levels_without_duplicates("guard")
}

/// 30 % loss with `require_quorum` and the detector's guard: the lossy
/// node, re-forming while its lease lives on, keeps its VIFs until it
/// falls silent (no quorum) instead of answering next to their new
/// owners.
#[test]
#[ignore = "needs root and corosync"]
fn loss_30_percent_with_quorum_and_the_detector_guard_never_gives_two_answerers() -> Result<()> {
    loss_30_percent_with_quorum_without_duplicates("guard")
}

/// 10 % loss with the LAN detector acting (`mode = "act"`: guard, plus
/// a survivor taking a condemned member's VIFs before the view): a lossy
/// cable may get n1 lost or condemned, but a node is fenced before anyone
/// can condemn it and a provisional VIF answers only once the handshake
/// clears it, so no VIP has two answerers; full coverage once the loss
/// ends, a quiet cluster after. 30 %: below.
#[test]
#[ignore = "needs root and corosync"]
fn loss_on_one_link_with_the_detector_acting_never_gives_two_answerers() -> Result<()> {
    let (_guard, mut c) = loss_cluster(false, Some("act"))?;
    lossy_link_without_duplicates(&mut c, 0.1, ", detector act")
}

/// 30 % loss on n1's cable with the detector acting: as at 10 %, no VIP
/// has two answerers. Two causes of failures seen here are closed: a
/// node's neighbour entry of a peer failed its ARP probes under the loss,
/// the kernel dropped every beat the node sent that peer for seconds, and
/// the peer took it, still answering, for silent (beats now confirm the
/// entry of a peer whose beats come: `MSG_CONFIRM`; beside a CPU hog, 1
/// failure in 5 runs before, 0 in 50 after); and a member condemned just
/// before the ring re-formed with it kept VIFs that answered nowhere (it
/// is condemned again in the new view).
#[test]
#[ignore = "needs root and corosync"]
fn loss_30_percent_on_one_link_with_the_detector_acting_never_gives_two_answerers() -> Result<()> {
    let (_guard, mut c) = loss_cluster(false, Some("act"))?;
    lossy_link_without_duplicates(&mut c, 0.3, ", detector act")
}

/// 30 % loss with `require_quorum` and the detector acting.
#[test]
#[ignore = "needs root and corosync"]
fn loss_30_percent_with_quorum_and_the_detector_acting_never_gives_two_answerers() -> Result<()> {
    loss_30_percent_with_quorum_without_duplicates("act")
}

/// The detector acting on a healthy cluster, idle and then beside two
/// busy-loop CPU hogs (`WKT_SOAK_SECS` each, default 10): no VIP ever has
/// two answerers and no member is condemned (a condemnation of a live
/// node would move its VIFs and evict it). Lost peers (one node missing
/// a peer's beats for the deadline, no action) are printed.
#[test]
#[ignore = "needs root and corosync"]
fn with_the_detector_acting_a_loaded_cluster_condemns_nobody() -> Result<()> {
    let secs: u64 = std::env::var("WKT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let (_guard, c) = loss_cluster(false, Some("act"))?;
    let detector = |c: &AgentCluster, what: &str| -> Result<Vec<usize>> {
        (0..3)
            .map(|i| {
                let path = c.agent_log(i)?;
                let log = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(log.matches(what).count())
            })
            .collect()
    };
    for load in ["idle", "two CPU hogs"] {
        let (lost0, condemned0) = (
            detector(&c, "detector: lost")?,
            detector(&c, "detector: condemned")?,
        );
        let hogs: Vec<std::process::Child> = if load == "idle" {
            Vec::new()
        } else {
            (0..2)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .context("starting a CPU hog")
                })
                .collect::<Result<_>>()?
        };
        let seen = Traffic::start(&c, Duration::from_secs(secs))?.finish(&c);
        for mut h in hogs {
            let _ = h.kill();
            let _ = h.wait();
        }
        let seen = seen?;
        let delta = |now: Vec<usize>, then: Vec<usize>| -> Vec<usize> {
            now.iter().zip(&then).map(|(a, b)| a - b).collect()
        };
        let lost = delta(detector(&c, "detector: lost")?, lost0);
        let condemned = delta(detector(&c, "detector: condemned")?, condemned0);
        eprintln!(
            "detector acting, {load}, {secs} s: lost per node {lost:?}, condemned per node {condemned:?}, {} probes lost",
            seen.probes.lost_probes
        );
        seen.no_duplicates(0..u32::MAX, &c)
            .with_context(|| format!("detector acting, {load}"))?;
        ensure!(
            condemned.iter().all(|&n| n == 0),
            "detector acting, {load}: a live member was condemned {condemned:?}\n{}",
            c.log_tails()
        );
        covered(&c, &[2, 2, 2])?;
    }
    Ok(())
}

/// Each of `loss_levels` on n1's cable with the detector in `mode`: no
/// duplicate answerer, then a quiet cluster.
fn loss_levels_without_duplicates(mode: &str) -> Result<()> {
    let (_guard, mut c) = loss_cluster(false, Some(mode))?;
    for p in loss_levels() {
        lossy_link_without_duplicates(&mut c, p, &format!(", detector {mode}"))?;
    }
    Ok(())
}

/// 30 % loss on n1's cable with `require_quorum` and the detector in
/// `mode`: no duplicate answerer, then a quiet cluster.
fn loss_30_percent_with_quorum_without_duplicates(mode: &str) -> Result<()> {
    let (_guard, mut c) = loss_cluster(true, Some(mode))?;
    lossy_link_without_duplicates(&mut c, 0.3, &format!(", require_quorum, detector {mode}"))
}

/// A cluster for the loss tests: its agents set `require_quorum`
/// (votequorum: 2 of 3) or not, and run the LAN detector in mode
/// `detector`, if any.
fn loss_cluster(
    require_quorum: bool,
    detector: Option<&str>,
) -> Result<(std::sync::MutexGuard<'static, ()>, AgentCluster)> {
    let mut opts = AgentClusterOptions::new(BIN);
    opts.require_quorum = require_quorum;
    if let Some(mode) = detector {
        opts.detector = Some(mode.into());
    }
    cluster_of(opts)
}

/// `p` loss on n1's cable: no VIP ever has two answerers, then a quiet
/// cluster. `setting` names the configuration in the errors.
fn lossy_link_without_duplicates(c: &mut AgentCluster, p: f64, setting: &str) -> Result<()> {
    let seen = lossy_link(c, p)?;
    let what = format!("{:.0}% loss{setting}", p * 100.0);
    seen.no_duplicates(0..u32::MAX, c)
        .with_context(|| what.clone())?;
    quiet_after(c, &what)
}

/// Known gap: 10 % or 30 % loss on one node's cable makes the LAN-fast
/// corosync ring re-form again and again (single-node views on every node,
/// watchdog "ring stuck" releases), so VIPs get two answerers for up to
/// ~150 ms at a time (seen in about half the runs here, at either level)
/// and a third or so of the probes are lost while the link is lossy.
/// Wanted: no duplicate answerer while the LAN itself is connected.
/// Without a second signal the agent cannot tell this split from a real
/// partition; the LAN detector's guard closes it (the tests above).
#[test]
#[ignore = "needs root and corosync"]
fn known_gap_loss_on_one_link_splits_the_ring() -> Result<()> {
    let (_guard, mut c) = cluster()?;
    for p in loss_levels() {
        let seen = lossy_link(&mut c, p)?;
        seen.no_duplicates(0..u32::MAX, &c)
            .with_context(|| format!("{:.0}% loss", p * 100.0))?;
    }
    Ok(())
}

/// 10 % loss on n1's cable with `require_quorum`: duplicate answerers only
/// around the membership splits the agents logged (see
/// `known_gap_loss_with_quorum_lets_a_reforming_node_answer`), no agent
/// crashes, full coverage once the loss ends, then a quiet cluster.
#[test]
#[ignore = "needs root and corosync"]
fn loss_on_one_link_with_quorum_gives_duplicates_only_around_splits() -> Result<()> {
    let (_guard, mut c) = loss_cluster(true, None)?;
    let seen = lossy_link(&mut c, 0.1)?;
    duplicates_only_around_splits(&c, &seen, "10% loss, require_quorum")?;
    quiet_after(&c, "10% loss, require_quorum")
}

/// Known gap: with `require_quorum`, 10 % or 30 % loss on n1's cable can
/// keep n1 in corosync's gather phase while n2 and n3 form a quorate ring
/// without it and take its VIFs at once (its lease, counted from its last
/// message they delivered, has run out); n1's lease is kept alive
/// meanwhile by corosync's running process (the vouch that keeps every
/// survivor answering through a ring re-formation, up to the 3 s stall
/// limit), so it answers next to them until its own ring comes up
/// without quorum (20-80 ms at a time, ~0.8 s in all seen at 30 %; at
/// 10 % in 5 of 19 runs here since the idle-CPU work of issue 12, with
/// which the ring re-forms quickly and often under this loss instead of
/// sticking for seconds). Locally the lossy
/// node's re-formation looks like a survivor's until its view comes: a
/// rule that silenced it earlier would silence every survivor at every
/// view change, and peers waiting longer would slow every crash failover.
/// Wanted: no duplicate answerer while the LAN is connected. The LAN
/// detector's guard closes it (a departed member whose beats say it
/// answers keeps its VIFs until it falls silent).
#[test]
#[ignore = "needs root and corosync"]
fn known_gap_loss_with_quorum_lets_a_reforming_node_answer() -> Result<()> {
    let (_guard, mut c) = loss_cluster(true, None)?;
    for p in loss_levels() {
        lossy_link_without_duplicates(&mut c, p, ", require_quorum")?;
    }
    Ok(())
}

#[test]
#[ignore = "needs root and corosync"]
fn link_flapping_every_2s() -> Result<()> {
    let (_guard, mut c) = cluster()?;
    let flap_for = if soak() { 30 } else { 16 };
    let traffic = Traffic::start(&c, Duration::from_secs(flap_for + 6))?;
    std::thread::sleep(Duration::from_secs(1));
    for step in 0..flap_for / 2 {
        if step % 2 == 0 {
            c.link_down(0)?;
        } else {
            c.link_up(0)?;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    c.link_up(0)?;
    none_crashed(&mut c, &[0, 1, 2])?;
    covered(&c, &[2, 2, 2])?;
    let seen = traffic.finish(&c)?;
    seen.report(&format!("n1's cable flapping every 2 s for {flap_for} s"));
    // n1 itself cannot answer with its cable out; when the cable returns,
    // the ring re-forms and (on this loaded machine) n2 and n3 sometimes
    // fall into single-node views too: duplicates only around such splits.
    duplicates_only_around_splits(&c, &seen, "flapping")?;
    none_crashed(&mut c, &[0, 1, 2])?;
    quiet_after(&c, "the flapping")?;
    Ok(())
}

/// SIGTERM and restart of every node in turn under traffic; returns the
/// probes lost from the first SIGTERM to the last settled allocation.
fn rolling_restart(c: &mut AgentCluster) -> Result<Vec<(String, String)>> {
    let traffic = Traffic::start(c, Duration::from_secs(15))?;
    std::thread::sleep(Duration::from_secs(1));
    let began = Instant::now();
    for i in 0..c.len() {
        let others: Vec<usize> = (0..c.len()).filter(|&o| o != i).collect();
        c.kill_agent(i, libc::SIGTERM)?;
        let status = c.wait_agent_exit(i, Duration::from_secs(10))?;
        ensure!(
            status.success(),
            "{} exited {status} on SIGTERM\n{}",
            c.name(i)?,
            c.log_tail(i)
        );
        c.wait_counts_among(&others, &[3, 3], SETTLE)?;
        none_crashed(c, &others)?;
        c.start_agent(i)?;
        c.wait_counts(&[2, 2, 2], SETTLE)?;
    }
    let ended = Instant::now();
    none_crashed(c, &[0, 1, 2])?;
    covered(c, &[2, 2, 2])?;
    let seen = traffic.finish(c)?;
    seen.report("rolling restart (SIGTERM, restart) of n1, n2, n3");
    seen.no_duplicates(0..u32::MAX, c)?;
    let lost = seen.lost_between(began, ended);
    eprintln!("lost during the restarts (VIF, sent at s of the day): {lost:?}");
    Ok(lost)
}

/// Every node stopped (SIGTERM: hand-over first) and restarted in turn
/// under traffic: exit 0, coverage, no duplicate answerer, no crash, and
/// not one probe lost (issue 14: planned hand-overs are make-before-break,
/// and the old owner keeps accepting a VIF's traffic for
/// `HANDOVER_LINGER` after the new owner took it).
///
/// Measured: 0 probes lost in 16 runs in a row (this test's body, ~20 s
/// each, on this shared 2-core host); earlier builds lost one probe in
/// about one run of five. A run that loses probes is repeated once on a
/// fresh cluster, so that a single machine-wide stall (seen here: every
/// VIP on every node unanswered for the same 80 ms) does not fail it; the
/// first run's losses are printed, and losses in both runs fail it.
#[test]
#[ignore = "needs root and corosync"]
fn rolling_restart_under_traffic() -> Result<()> {
    const ATTEMPTS: usize = 2;
    for attempt in 1..=ATTEMPTS {
        let (_guard, mut c) = cluster()?;
        let lost = rolling_restart(&mut c)?;
        if lost.is_empty() {
            return Ok(());
        }
        ensure!(
            attempt < ATTEMPTS,
            "probes lost during the rolling restart in all {ATTEMPTS} runs \
             (last, VIF and sent at s of the day: {lost:?})\n{}",
            c.log_tails()
        );
        eprintln!("attempt {attempt}: probes lost {lost:?}; repeating on a fresh cluster");
    }
    Ok(())
}

/// Two of three hosts crash at once (agents SIGKILLed, cables out): the last
/// one covers everything (the test bed's agents do not require quorum). The
/// cables come back before the agents restart: the dead agents' kernels still
/// have their addresses, and their fenced XDP must keep them from answering.
#[test]
#[ignore = "needs root and corosync"]
fn two_nodes_crash_at_once() -> Result<()> {
    // A survivor whose watchdog tripped (the whole machine stalled past the
    // stall limit: seen once on this shared 2-core host, every agent at the
    // same instant) released and re-took everything: the agents saw their
    // engine fail, which is not this fault. Such a run is repeated on a new
    // cluster; every check holds on a run without a stall, and all attempts
    // stalling is a failure.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let (_guard, mut c) = cluster()?;
        let traffic = Traffic::start(&c, Duration::from_secs(14))?;
        std::thread::sleep(Duration::from_secs(1));
        c.link_down(1)?;
        c.link_down(2)?;
        c.crash_agent(1)?;
        c.crash_agent(2)?;
        c.wait_counts(&[6, 0, 0], SETTLE)?;
        none_crashed(&mut c, &[0])?;
        std::thread::sleep(Duration::from_secs(1));
        c.link_up(1)?;
        c.link_up(2)?;
        std::thread::sleep(Duration::from_secs(2));
        c.start_agent(1)?;
        c.start_agent(2)?;
        none_crashed(&mut c, &[0, 1, 2])?;
        covered(&c, &[2, 2, 2])?;
        let seen = traffic.finish(&c)?;
        seen.report("n2 and n3 crash at once (SIGKILL, cables out), then return");
        none_crashed(&mut c, &[0, 1, 2])?;
        if let Some(line) = stalled_engine(&c)? {
            ensure!(
                attempt < ATTEMPTS,
                "an engine stalled in every one of {ATTEMPTS} runs (last: {line})"
            );
            eprintln!("attempt {attempt}: an engine stalled ({line}); repeating");
            continue;
        }
        seen.no_duplicates(0..u32::MAX, &c)?;
        break;
    }
    Ok(())
}

/// The first "membership engine lost" line any agent logged (its watchdog
/// tripped: the ring stalled past the stall limit or corosync froze).
fn stalled_engine(c: &AgentCluster) -> Result<Option<String>> {
    for i in 0..c.len() {
        let log = std::fs::read_to_string(c.log_path(i)?)?;
        if let Some(line) = log.lines().find(|l| l.contains("membership engine lost")) {
            return Ok(Some(format!("n{}: {}", i + 1, line.trim())));
        }
    }
    Ok(None)
}

/// n3 is partitioned off (it then covers every VIP on its side, the others
/// on theirs); a `ctl move` is sent on the majority side and the partition
/// heals right after it. Duplicates are allowed from the partition until the
/// cluster settled again (both sides hold the VIPs when they meet), none
/// after.
#[test]
#[ignore = "needs root and corosync"]
fn partition_heals_during_a_move() -> Result<()> {
    let (_guard, mut c) = cluster()?;
    let traffic = Traffic::start(&c, Duration::from_secs(16))?;
    std::thread::sleep(Duration::from_secs(1));
    let partitioned = Instant::now();
    c.partition(&[2])?;
    c.wait_counts_among(&[0, 1], &[3, 3], SETTLE)?;
    c.wait_counts_among(&[2], &[6], SETTLE)?;
    let snap = c.snapshot();
    let vif = snap
        .held_by(0)
        .first()
        .cloned()
        .context("n1 holds nothing")?;
    c.ctl_ok(0, &["move", &vif, "n2"])?;
    c.heal(&[2])?;
    covered(&c, &[2, 2, 2])?;
    let settled = Instant::now();
    none_crashed(&mut c, &[0, 1, 2])?;
    let owner = c.snapshot().owner_seen_by(0, &vif);
    std::thread::sleep(Duration::from_secs(2));
    let seen = traffic.finish(&c)?;
    eprintln!("{vif} moved to n2 while the partition healed; it ended on {owner:?}");
    seen.report("partition of n3 healed during a move");
    seen.no_duplicates(0..seen.round_at(partitioned), &c)?;
    seen.no_duplicates(seen.round_at(settled)..u32::MAX, &c)?;
    none_crashed(&mut c, &[0, 1, 2])?;
    Ok(())
}

/// Issue 14 item 4: one agent speaks wire version N+1 (the `lab` build's
/// test knob), the group speaks N, and a cable cut fails over both ways:
/// the newer node's VIPs to the older ones and an older node's to the newer.
/// Then it speaks version 2 (before EVICT): the group turns eviction off.
#[test]
#[ignore = "needs root and corosync"]
fn mixed_wire_versions_fail_over_both_ways() -> Result<()> {
    use wackamole::alloc::wire;
    use wackamole::daemon::wire_knob::TEST_WIRE_VERSION_ENV;
    let (_guard, mut c) = cluster()?;
    // n3 restarts speaking N+1.
    c.kill_agent(2, libc::SIGTERM)?;
    c.wait_agent_exit(2, Duration::from_secs(10))?;
    c.wait_counts_among(&[0, 1], &[3, 3], SETTLE)?;
    let newer = (wire::VERSION + 1).to_string();
    let log_from = std::fs::metadata(c.log_path(0)?)?.len() as usize;
    c.start_agent_with_env(2, &[(TEST_WIRE_VERSION_ENV, &newer)])?;
    covered(&c, &[2, 2, 2])?;
    let n3_log = std::fs::read_to_string(c.log_path(2)?)?;
    ensure!(
        n3_log.contains(&format!("speaking wire version {newer}")),
        "n3 does not speak N+1: is the test knob compiled in?\n{}",
        c.log_tail(2)
    );
    let n1_log = std::fs::read_to_string(c.log_path(0)?)?;
    ensure!(
        n1_log
            .get(log_from..)
            .unwrap_or_default()
            .contains(&format!("of version {newer} from a newer wackamole")),
        "n1 never saw an N+1 message from n3\n{}",
        c.log_tail(0)
    );

    // The newer node's cable out: the older ones take its VIPs; back.
    c.link_down(2)?;
    c.wait_counts_among(&[0, 1], &[3, 3], SETTLE)?;
    let answers = c.who_answers_all(&vips())?;
    ensure!(
        answers.iter().all(|a| a.len() == 1 && a[0] != 2),
        "with n3's cable out: {answers:?}"
    );
    c.link_up(2)?;
    covered(&c, &[2, 2, 2])?;
    // An older node's cable out: the newer one takes part in the take-over.
    c.link_down(0)?;
    c.wait_counts_among(&[1, 2], &[3, 3], SETTLE)?;
    let answers = c.who_answers_all(&vips())?;
    ensure!(
        answers.iter().all(|a| a.len() == 1 && a[0] != 0),
        "with n1's cable out: {answers:?}"
    );
    c.link_up(0)?;
    covered(&c, &[2, 2, 2])?;

    // n3 restarts speaking the version before eviction (a build that
    // predates EVICT): the group speaks it, says eviction is off, and still
    // covers every VIP.
    let older = (wire::EVICT_VERSION - 1).to_string();
    c.kill_agent(2, libc::SIGTERM)?;
    c.wait_agent_exit(2, Duration::from_secs(10))?;
    c.wait_counts_among(&[0, 1], &[3, 3], SETTLE)?;
    let log_from = std::fs::metadata(c.log_path(0)?)?.len() as usize;
    c.start_agent_with_env(2, &[(TEST_WIRE_VERSION_ENV, &older)])?;
    covered(&c, &[2, 2, 2])?;
    let n1_log = std::fs::read_to_string(c.log_path(0)?)?;
    ensure!(
        n1_log
            .get(log_from..)
            .unwrap_or_default()
            .contains("eviction of silent members is off in this view"),
        "n1 never said eviction is off with n3 at version {older}\n{}",
        c.log_tail(0)
    );
    none_crashed(&mut c, &[0, 1, 2])?;
    Ok(())
}

/// `WKT_LOSS=0.1` runs one loss level only (diagnosis).
fn loss_levels() -> Vec<f64> {
    std::env::var("WKT_LOSS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or_else(|| vec![0.1, 0.3], |p| vec![p])
}

/// The whole machine stalls: every agent and every corosync frozen at the
/// same instant, then thawed together (seen on this shared host: every
/// agent's watchdog trips at once, they all rejoin afresh while the rings
/// re-form). Each time the cluster must settle with one owner per VIF, as
/// every agent agrees and as the LAN sees it.
#[test]
#[ignore = "needs root and corosync"]
fn whole_cluster_frozen_and_thawed_settles_with_one_owner_per_vip() -> Result<()> {
    let (_guard, mut c) = cluster()?;
    let rounds: Vec<u64> = match std::env::var("WKT_FREEZE_ROUNDS") {
        Ok(n) => (0..n.parse::<u64>().unwrap_or(4))
            .map(|k| 300 + (k * 200) % 800)
            .collect(),
        Err(_) => vec![300, 700],
    };
    let stagger_ms: u64 = std::env::var("WKT_FREEZE_STAGGER")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    for freeze_ms in rounds {
        for i in 0..c.len() {
            c.corosync().stop_corosync(i)?;
            c.kill_agent(i, libc::SIGSTOP)?;
        }
        std::thread::sleep(Duration::from_millis(freeze_ms));
        // Thawed one after another, as a stalled host lets them run again:
        // the rings re-form while the agents rejoin at different moments.
        for i in 0..c.len() {
            c.corosync().cont_corosync(i)?;
        }
        for i in 0..c.len() {
            std::thread::sleep(Duration::from_millis(stagger_ms));
            c.kill_agent(i, libc::SIGCONT)?;
        }
        covered(&c, &[2, 2, 2]).with_context(|| format!("after a {freeze_ms} ms freeze"))?;
        none_crashed(&mut c, &[0, 1, 2])?;
    }
    Ok(())
}

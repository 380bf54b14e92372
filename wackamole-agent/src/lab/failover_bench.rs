//! The failover benchmark (`cargo xtask bench failover`): real agents on a
//! Corosync cluster ([`AgentCluster`]), a responder on every node, the client
//! probing every VIP (or a fixed [`Sample`] of them: the VIPs that move and a
//! control set that does not) each millisecond, and one fault per repetition.
//! ARP and NS observers record which MACs answer the moving VIPs every 10 ms.
//!
//! Per repetition: the cluster settles (everyone mature, balanced), the
//! prober runs for `before + after`, the fault is injected after `before`,
//! then the cluster is restored. The view time of a phase is the first
//! `new view ... mono_ns=` line an agent other than the victim logged after
//! the fault (any agent's in a partition), so
//! `failover = detection (fault → view) + agent (view → first answer)`.
//!
//! Both `benches/failover.rs` and the smoke test call [`run`].

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::analysis::{self, Phase, ProbeRun, ResourceUsage, Summary};
use super::report::{self, ScenarioRecord};
use super::{arp_observer, now_ns, ns_observer, plot, prober, resources, responder};
use crate::testbed::cluster::{AgentCluster, AgentClusterOptions, Snapshot, VipFamily};
use crate::testbed::corosync::Profile;

/// UDP port of the responders.
pub const PORT: u16 = 7399;

/// Most VIFs the test bed addresses.
pub const MAX_VIPS: usize = crate::testbed::cluster::MAX_VIFS;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The owner's cable is pulled (a host crash as the LAN sees it).
    LinkCut,
    /// The owner's agent gets SIGKILL.
    AgentKill,
    /// The owner's agent gets SIGSTOP (continued after the run).
    AgentStop,
    /// The owner's corosync gets SIGKILL.
    CorosyncKill,
    /// The owner's corosync gets SIGSTOP (continued after the run).
    CorosyncStop,
    /// The owner's corosync, then its agent, get SIGKILL (the whole stack).
    StackKill,
    /// The nodes split in two groups (the owner's side away from the
    /// client), healed 2 s later: phases `partition` and `heal`.
    Partition,
    /// `ctl move` of one VIF to another node (planned).
    Move,
    /// `ctl drain` of the owner (planned).
    Drain,
    /// `ctl undrain` of a node drained and settled before probing (planned).
    Undrain,
    /// A crashed node (cable out, agent killed, the others settled) comes
    /// back: cable in, agent started.
    ReturnCrash,
    /// A node whose cable was cut with its agent running (the others
    /// settled without it) gets its cable back.
    ReturnCable,
    /// A node whose agent was stopped with SIGTERM (the others settled)
    /// starts it again.
    ReturnTerm,
    /// A node whose agent got SIGKILL (the others settled) starts it again.
    ReturnKill,
    /// A node whose whole stack (agent and corosync) got SIGSTOP (the others
    /// settled without it) gets SIGCONT.
    ReturnStop,
    /// The last node, out of the cluster (agent and corosync stopped cleanly,
    /// the others settled), starts: the VIPs rebalance onto it.
    LateJoin,
    /// Every node's whole stack gets SIGSTOP for [`CLUSTER_STALL`], then
    /// SIGCONT (corosyncs first, then the agents one after another): a
    /// host-wide stall, as a paused hypervisor or a starved host gives.
    /// Every engine trips its evidence-gap check and rejoins.
    ClusterStall,
}

/// How long [`Fault::ClusterStall`] keeps every node stopped: past the
/// agents' self-eviction gap with the fast profile (about 200 ms).
pub const CLUSTER_STALL: Duration = Duration::from_millis(400);

impl Fault {
    /// Every fault, in report order.
    pub const ALL: [Fault; 17] = [
        Fault::LinkCut,
        Fault::AgentKill,
        Fault::AgentStop,
        Fault::CorosyncKill,
        Fault::CorosyncStop,
        Fault::StackKill,
        Fault::Partition,
        Fault::Move,
        Fault::Drain,
        Fault::Undrain,
        Fault::ReturnCrash,
        Fault::ReturnCable,
        Fault::ReturnTerm,
        Fault::ReturnKill,
        Fault::ReturnStop,
        Fault::LateJoin,
        Fault::ClusterStall,
    ];

    /// Short name used in scenario names and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::LinkCut => "link-cut",
            Fault::AgentKill => "agent-kill",
            Fault::AgentStop => "agent-stop",
            Fault::CorosyncKill => "corosync-kill",
            Fault::CorosyncStop => "corosync-stop",
            Fault::StackKill => "stack-kill",
            Fault::Partition => "partition",
            Fault::Move => "move",
            Fault::Drain => "drain",
            Fault::Undrain => "undrain",
            Fault::ReturnCrash => "return-crash",
            Fault::ReturnCable => "return-cable",
            Fault::ReturnTerm => "return-term",
            Fault::ReturnKill => "return-kill",
            Fault::ReturnStop => "return-stop",
            Fault::LateJoin => "late-join",
            Fault::ClusterStall => "cluster-stall",
        }
    }

    /// Parses [`Fault::name`]. `return` (the old name of `return-crash`) is
    /// refused with a hint: there are several returns now.
    pub fn parse(s: &str) -> Result<Fault> {
        if s == "return" {
            bail!("fault \"return\" is now one of return-crash, return-cable, return-term, return-kill, return-stop");
        }
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                anyhow!(
                    "unknown fault {s:?} (one of {})",
                    Fault::ALL.map(Fault::name).join(", ")
                )
            })
    }

    /// Parses a comma-separated list of [`Fault::name`]s (`all`: every fault).
    pub fn parse_list(s: &str) -> Result<Vec<Fault>> {
        if s == "all" {
            return Ok(Fault::ALL.to_vec());
        }
        s.split(',').map(|f| Fault::parse(f.trim())).collect()
    }

    /// Planned: triggered by a command, no view change (judged by lost probes).
    pub fn planned(self) -> bool {
        matches!(self, Fault::Move | Fault::Drain | Fault::Undrain)
    }

    /// A node comes back (or joins) and takes its share: the probing window
    /// covers the maturity and the balance rounds, the ARP observer watches
    /// every VIP (which ones the node takes is not known beforehand), and
    /// the time until the cluster is balanced again is recorded.
    pub fn rebalances(self) -> bool {
        matches!(
            self,
            Fault::Undrain
                | Fault::ReturnCrash
                | Fault::ReturnCable
                | Fault::ReturnTerm
                | Fault::ReturnKill
                | Fault::ReturnStop
                | Fault::LateJoin
        )
    }

    /// Judged by lost probes (goal 0): planned changes and returns.
    pub fn lossless_goal(self) -> bool {
        self.planned() || self.rebalances()
    }

    /// Acts on corosync itself: not run with `--engine spread`.
    pub fn corosync_only(self) -> bool {
        matches!(
            self,
            Fault::CorosyncKill
                | Fault::CorosyncStop
                | Fault::StackKill
                | Fault::ReturnStop
                | Fault::LateJoin
                | Fault::ClusterStall
        )
    }
}

/// The probing time after the fault: `base`, or for a [`Fault::rebalances`]
/// fault long enough for the whole rebalance: the view (up to `JOIN_MARGIN`;
/// twice that for a late join, a third more when an agent has to start),
/// `mature`, one balance round per VIF the node takes (`share` = VIPs / nodes,
/// rounded up, at `per_round` acquisitions a round) plus one round of slack,
/// and `SETTLE_MARGIN` of steady traffic after it.
pub fn after_window(
    fault: Fault,
    base: Duration,
    mature: Duration,
    interval: Duration,
    vips: usize,
    nodes: usize,
    per_round: usize,
) -> Duration {
    if fault == Fault::ClusterStall {
        // Long enough to see every VIF come back even if the group waited
        // for `mature` after rejoining.
        return base.max(CLUSTER_STALL + JOIN_MARGIN + mature + SETTLE_MARGIN);
    }
    if !fault.rebalances() {
        return base;
    }
    let share = vips.div_ceil(nodes.max(1));
    let rounds = share.div_ceil(per_round.max(1)) + 1;
    // Starting corosync (late join) or an agent blocks the injection for a
    // while, then the view still has to form.
    let join = match fault {
        Fault::LateJoin => JOIN_MARGIN * 2,
        Fault::ReturnCrash | Fault::ReturnTerm | Fault::ReturnKill => JOIN_MARGIN + JOIN_MARGIN / 3,
        _ => JOIN_MARGIN,
    };
    let need = join + mature + interval * rounds as u32 + SETTLE_MARGIN;
    base.max(need)
}

/// Probing after an unplanned fault long enough for corosync to see it:
/// none needed for the fast profile (any window fits its ~100 ms); for the
/// default one its token (3 s + 650 ms per node above two), the consensus
/// (1.2 tokens) and a second to fail over and be seen.
pub fn detection_window(profile: Profile, nodes: usize) -> Duration {
    match profile {
        Profile::Fast | Profile::Faster => Duration::ZERO,
        Profile::Default => {
            let token = 3000 + 650 * nodes.saturating_sub(2) as u64;
            Duration::from_millis(token + token * 6 / 5 + 1000)
        }
    }
}

/// Time allowed for the view that brings a node back (merge, corosync start).
pub const JOIN_MARGIN: Duration = Duration::from_millis(1500);
/// Steady probing after the expected end of a rebalance.
pub const SETTLE_MARGIN: Duration = Duration::from_millis(1000);

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The `wackamole` binary.
    pub binary: PathBuf,
    /// Cluster sizes.
    pub nodes: Vec<usize>,
    /// VIP counts.
    pub vips: Vec<usize>,
    /// Faults, each a scenario per size.
    pub faults: Vec<Fault>,
    /// Repetitions per scenario.
    pub repetitions: usize,
    /// Corosync timers.
    pub profile: Profile,
    /// Probing before the fault.
    pub before: Duration,
    /// Probing after the fault.
    pub after: Duration,
    /// Idle measurement of an agent per cluster: one sample's length.
    pub idle: Duration,
    /// Idle samples per cluster (one after the other; the host is noisy).
    pub idle_samples: usize,
    /// Where failover.json and the PNGs go.
    pub out_dir: PathBuf,
    /// The VIFs' address family (IPv4 by default).
    pub family: VipFamily,
    /// Which VIPs the prober probes.
    pub sample: Sample,
    /// At most this many of the VIFs that move are probed when sampling
    /// (`--movers`; default [`MOVER_SAMPLE`]).
    pub movers: usize,
    /// The agents' `mature` (None: the test bed's 500 ms).
    pub mature: Option<Duration>,
    /// `xdp.standby_addresses` settings to run, each size once per entry
    /// (`--addresses holder|standby|both`; default holder only).
    pub standby: Vec<bool>,
    /// Some(Spread 4.4 daemon binary): agents on Spread (LAN-fast profile)
    /// instead of Corosync (`--engine spread`, daemon from
    /// `WACKAMOLE_SPREAD_DAEMON`).
    pub spread: Option<PathBuf>,
    /// The `<Name>Timeout` lines of a Spread configuration replacing the
    /// LAN-fast ones (`--spread-conf FILE`).
    pub spread_timeouts: Option<String>,
    /// `engine.require_quorum` on every agent (`--quorum`; Corosync only).
    pub require_quorum: bool,
    /// The LAN detector's mode on every agent (`--detector`; default the
    /// environment's `WKT_DETECTOR`, else off).
    pub detector: Option<&'static str>,
}

/// Which VIPs the prober probes. At many VIPs one prober cannot probe them
/// all at 1 kHz on a small machine (64 VIPs: 27-36k of 64k probes/s on two
/// cores) and the lag shows as gaps in VIPs nobody moved; a fixed sample
/// keeps the harness out of the figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// [`Sample::Controls`] with [`DEFAULT_CONTROLS`] above [`SAMPLE_ABOVE`] VIFs, else [`Sample::All`].
    Auto,
    /// Every VIP (the VIPs of nodes the fault does not touch are the control set).
    All,
    /// The VIPs that move plus up to N that do not (the control set), or,
    /// when the fault's moves are not known beforehand (a node returning),
    /// [`REBALANCE_SAMPLE`] VIFs spread over the pool.
    Controls(usize),
}

/// [`Sample::Auto`] samples pools larger than this (VIFs).
pub const SAMPLE_ABOVE: usize = 16;
/// Control VIFs of [`Sample::Auto`] (round robin over the survivors).
pub const DEFAULT_CONTROLS: usize = 4;
/// VIFs a sampled rebalancing fault probes (spread over the pool).
pub const REBALANCE_SAMPLE: usize = 16;
/// At most this many of the VIFs that move are probed when sampling: the
/// last ones by number, one per survivor (each survivor announces its
/// share in VIF order, so its last VIF answers last), and the rest spread
/// over them from the first. The prober's load is part of the figure on a
/// small machine: at 1000 VIPs a third of the pool moves, and 340 VIPs at
/// 1 kHz overran it on two cores (670 rounds/s, RTT p99 115 ms); 64 (60 000
/// probes/s) still doubled act mode's agent share (15.4 against 6.2 ms
/// median with 4, alternating), where 3 VIPs probe 3. The slowest VIF of
/// the whole decision is still reported from the agent's log (`took_us`).
pub const MOVER_SAMPLE: usize = 8;

impl Sample {
    /// Control VIFs to pick for a pool of `vifs`, or None to probe all.
    pub fn controls(self, vifs: usize) -> Option<usize> {
        match self {
            Sample::All => None,
            Sample::Controls(n) => Some(n),
            Sample::Auto => (vifs > SAMPLE_ABOVE).then_some(DEFAULT_CONTROLS),
        }
    }

    fn parse(s: &str) -> Result<Sample> {
        Ok(match s {
            "auto" => Sample::Auto,
            "all" => Sample::All,
            n => Sample::Controls(n.parse().with_context(|| {
                format!("failover bench: --sample {n:?} (auto, all or a number)")
            })?),
        })
    }
}

/// The VIFs (1-based) one repetition probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSample {
    /// Every probed VIF, ascending.
    pub vifs: Vec<usize>,
    /// Those that do not move in the fault (a subset of `vifs`).
    pub controls: Vec<usize>,
    /// False when every VIF is probed.
    pub sampled: bool,
}

/// Picks the probed VIFs of a pool of `nvifs`: `moving` are the VIFs the
/// fault moves (None: not known beforehand), `still[j]` the VIFs of the j-th
/// node the fault leaves alone; `controls` from [`Sample::controls`]. The
/// controls are taken round robin over those nodes, so each survivor
/// contributes.
pub fn choose_sample(
    nvifs: usize,
    moving: Option<&[usize]>,
    still: &[Vec<usize>],
    controls: Option<usize>,
    max_movers: usize,
) -> ProbeSample {
    let all: Vec<usize> = (1..=nvifs).collect();
    let Some(moving) = moving else {
        let vifs = match controls {
            None => all,
            Some(_) => {
                let n = REBALANCE_SAMPLE.min(nvifs).max(1);
                let mut v: Vec<usize> = (0..n).map(|j| 1 + j * nvifs / n).collect();
                v.dedup();
                v
            }
        };
        let sampled = vifs.len() < nvifs;
        return ProbeSample {
            vifs,
            controls: Vec::new(),
            sampled,
        };
    };
    let Some(n) = controls else {
        let mut controls: Vec<usize> = still.iter().flatten().copied().collect();
        controls.sort_unstable();
        controls.dedup();
        controls.retain(|k| !moving.contains(k));
        return ProbeSample {
            vifs: all,
            controls,
            sampled: false,
        };
    };
    let mut picked: Vec<usize> = Vec::new();
    let longest = still.iter().map(Vec::len).max().unwrap_or(0);
    'pick: for depth in 0..longest {
        for node in still {
            if picked.len() >= n {
                break 'pick;
            }
            if let Some(&k) = node.get(depth) {
                if !moving.contains(&k) && !picked.contains(&k) && (1..=nvifs).contains(&k) {
                    picked.push(k);
                }
            }
        }
    }
    let mut moving: Vec<usize> = moving
        .iter()
        .copied()
        .filter(|k| (1..=nvifs).contains(k))
        .collect();
    moving.sort_unstable();
    moving.dedup();
    // Two at least: the first and a survivor's last.
    let cap = max_movers.max(2);
    if moving.len() > cap {
        // Each survivor's last VIF, then a spread from the first.
        let tail = still.len().clamp(1, cap - 1);
        let (head, last) = moving.split_at(moving.len() - tail);
        let n = cap - tail;
        let spread: Vec<usize> = match n {
            1 => head.first().copied().into_iter().collect(),
            _ => (0..n)
                .map(|j| head[j * (head.len() - 1) / (n - 1)])
                .collect(),
        };
        moving = spread.into_iter().chain(last.iter().copied()).collect();
    }
    let mut vifs: Vec<usize> = moving.into_iter().chain(picked.iter().copied()).collect();
    vifs.sort_unstable();
    vifs.dedup();
    picked.sort_unstable();
    let sampled = vifs.len() < nvifs;
    ProbeSample {
        vifs,
        controls: picked,
        sampled,
    }
}

/// The longest gap between two answered probes of any of `vips` (indices
/// into the run's VIPs), in ms, and how many of them were never answered.
/// A VIP nobody moved should show neither.
pub fn control_gap(run: &ProbeRun, vips: &[u32]) -> (f64, usize) {
    let mut rounds: Vec<Vec<u32>> = vec![Vec::new(); vips.len()];
    for a in &run.answers {
        if let Some(j) = vips.iter().position(|&v| v == a.vip) {
            rounds[j].push(a.round);
        }
    }
    let sent = |r: u32| run.round_sent_ns.get(r as usize).copied();
    let mut worst = 0u64;
    let mut never = 0;
    for r in &mut rounds {
        r.sort_unstable();
        r.dedup();
        if r.is_empty() {
            never += 1;
        }
        for w in r.windows(2) {
            if w[1] > w[0] + 1 {
                if let (Some(a), Some(b)) = (sent(w[0] + 1), sent(w[1])) {
                    worst = worst.max(b.saturating_sub(a));
                }
            }
        }
    }
    (worst as f64 / 1e6, never)
}

impl BenchOptions {
    /// The default set: 3 nodes, 3 and 64 VIPs, every fault, 5 repetitions,
    /// fast profile.
    pub fn default_set(binary: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        BenchOptions {
            binary: binary.into(),
            nodes: vec![3],
            vips: vec![3, 64],
            faults: Fault::ALL.to_vec(),
            repetitions: 5,
            profile: Profile::Fast,
            before: Duration::from_millis(1000),
            after: Duration::from_millis(3000),
            idle: Duration::from_secs(3),
            idle_samples: 1,
            out_dir: out_dir.into(),
            family: VipFamily::Ipv4,
            sample: Sample::Auto,
            movers: MOVER_SAMPLE,
            mature: None,
            standby: vec![false],
            spread: None,
            spread_timeouts: None,
            require_quorum: false,
            detector: std::env::var("WKT_DETECTOR")
                .ok()
                .and_then(|m| parse_detector(&m).ok()),
        }
    }

    /// The smoke variant: 3 nodes, 3 VIPs, a link cut and a cable return,
    /// one repetition each, short windows.
    pub fn smoke(binary: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        BenchOptions {
            nodes: vec![3],
            vips: vec![3],
            faults: vec![Fault::LinkCut, Fault::ReturnCable],
            repetitions: 1,
            before: Duration::from_millis(700),
            after: Duration::from_millis(2000),
            idle: Duration::from_secs(1),
            ..Self::default_set(binary, out_dir)
        }
    }

    /// Parses the bench's arguments (after `--`) onto [`BenchOptions::default_set`]
    /// (see [`USAGE`]):
    /// `--smoke`, `--full`, `--nodes 3,5`, `--vips 3,64`, `--faults a,b`,
    /// `--reps N`, `--profile fast|faster|default`, `--out DIR`.
    pub fn from_args(binary: PathBuf, out_dir: PathBuf, args: &[String]) -> Result<Self> {
        let mut o = Self::default_set(binary, out_dir);
        let mut faults_given = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| anyhow!("failover bench: {name} needs a value"))
            };
            match a.as_str() {
                "--bench" => {}
                "--smoke" => {
                    let keep = (o.binary.clone(), o.out_dir.clone());
                    o = Self::smoke(keep.0, keep.1);
                }
                "--full" => {
                    o.nodes = vec![3, 5, 8];
                    o.vips = vec![3, 64, 1000];
                }
                "--nodes" => o.nodes = parse_list(&value("--nodes")?, "--nodes")?,
                "--vips" => o.vips = parse_list(&value("--vips")?, "--vips")?,
                "--faults" => {
                    o.faults = Fault::parse_list(&value("--faults")?)?;
                    faults_given = true;
                }
                "--spread-conf" => {
                    let path = value("--spread-conf")?;
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("failover bench: reading {path}"))?;
                    o.spread_timeouts = Some(crate::testbed::spread::timeout_lines(&text));
                }
                "--engine" => {
                    o.spread = match value("--engine")?.as_str() {
                        "corosync" => None,
                        "spread" => Some(
                            crate::testbed::spread::daemon_from_env()
                                .map_err(|why| anyhow!("failover bench: --engine spread: {why}"))?,
                        ),
                        other => bail!("failover bench: engine {other:?} (corosync, spread)"),
                    }
                }
                "--reps" => {
                    o.repetitions = value("--reps")?
                        .parse()
                        .context("failover bench: --reps wants a number")?
                }
                "--profile" => {
                    o.profile = match value("--profile")?.as_str() {
                        "fast" => Profile::Fast,
                        "faster" => Profile::Faster,
                        "default" => Profile::Default,
                        other => bail!("failover bench: profile {other:?} (fast, faster, default)"),
                    }
                }
                "--addresses" => {
                    o.standby = match value("--addresses")?.as_str() {
                        "holder" => vec![false],
                        "standby" => vec![true],
                        "both" => vec![false, true],
                        other => bail!(
                            "failover bench: --addresses {other:?} (holder, standby, both)"
                        ),
                    }
                }
                "--quorum" => o.require_quorum = true,
                "--detector" => o.detector = Some(parse_detector(&value("--detector")?)?),
                "--out" => o.out_dir = PathBuf::from(value("--out")?),
                // Another build side by side (e.g. before a change).
                "--binary" => o.binary = PathBuf::from(value("--binary")?),
                "--family" => o.family = parse_family(&value("--family")?)?,
                "--sample" => o.sample = Sample::parse(&value("--sample")?)?,
                "--movers" => {
                    let v = value("--movers")?;
                    o.movers = v
                        .parse()
                        .ok()
                        .filter(|n| (2..=MAX_VIPS).contains(n))
                        .ok_or_else(|| anyhow!("failover bench: --movers {v:?} (2..={MAX_VIPS})"))?;
                }
                "--idle" => {
                    let v = value("--idle")?;
                    let s: u64 = v
                        .parse()
                        .ok()
                        .filter(|s| (1..=3600).contains(s))
                        .ok_or_else(|| anyhow!("failover bench: --idle {v:?} (seconds, 1..=3600)"))?;
                    o.idle = Duration::from_secs(s);
                }
                "--idle-samples" => {
                    let v = value("--idle-samples")?;
                    o.idle_samples = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| anyhow!("failover bench: --idle-samples {v:?} (1..=100)"))?;
                }
                "--mature" => {
                    let v = value("--mature")?;
                    let ms: u64 = v
                        .parse()
                        .ok()
                        .filter(|ms| (1..=600_000).contains(ms))
                        .ok_or_else(|| anyhow!("failover bench: --mature {v:?} (milliseconds, 1..=600000)"))?;
                    o.mature = Some(Duration::from_millis(ms));
                }
                other => bail!(
                    "failover bench: unknown argument {other:?} (--smoke, --full, --engine, --spread-conf, --nodes, --vips, --faults, --reps, --profile, --family, --sample, --movers, --idle, --idle-samples, --mature, --addresses, --quorum, --detector, --out)"
                ),
            }
        }
        if o.spread.is_some() && o.require_quorum {
            bail!("failover bench: --quorum is Corosync's (votequorum), not Spread's");
        }
        if o.spread.is_none() && o.spread_timeouts.is_some() {
            bail!("failover bench: --spread-conf needs --engine spread");
        }
        if o.spread.is_some() {
            let only: Vec<&str> = o
                .faults
                .iter()
                .filter(|f| f.corosync_only())
                .map(|f| f.name())
                .collect();
            if faults_given && !only.is_empty() {
                bail!("failover bench: --engine spread: {only:?} act on corosync");
            }
            o.faults.retain(|f| !f.corosync_only());
            if o.profile != Profile::Fast {
                bail!("failover bench: --engine spread runs the LAN-fast Spread profile only");
            }
        }
        if o.repetitions == 0 {
            bail!("failover bench: --reps 0");
        }
        if o.nodes.iter().any(|&n| !(2..=16).contains(&n)) {
            bail!("failover bench: nodes {:?} (2..=16)", o.nodes);
        }
        if o.vips.contains(&0) {
            bail!("failover bench: 0 VIPs");
        }
        Ok(o)
    }
}

/// `cargo xtask bench failover -- --help`.
pub const USAGE: &str = "\
cargo xtask bench failover [-- OPTIONS]
  --smoke             3 nodes, 3 VIPs, link-cut and return-cable, 1 repetition
  --engine corosync|spread  membership (default corosync; spread: daemons
                      from WACKAMOLE_SPREAD_DAEMON with conf/spread-lan-fast.conf's
                      timeouts; the corosync-only faults are left out)
  --spread-conf FILE  with --engine spread: that file's <Name>Timeout lines
                      instead of conf/spread-lan-fast.conf's
  --full              nodes 3,5,8 and VIPs 3,64,1000
  --nodes N,M         cluster sizes (2..=16; default 3)
  --vips N,M          VIP counts (default 3,64; at most 4096)
  --faults F,G|all    faults (default all), of:
      link-cut agent-kill agent-stop corosync-kill corosync-stop stack-kill
      partition                      (cut and heal)
      move drain undrain             (planned; judged by lost probes)
      return-crash return-cable return-term return-kill return-stop late-join
                                     (a node comes back and takes its share;
                                      judged by lost probes)
      cluster-stall                  (every node's stack stopped 400 ms)
  --reps N            repetitions per scenario (default 5)
  --profile fast|faster|default   corosync timers (default fast; faster:
                      conf/corosync-lan-faster.conf)
  --family ipv4|ipv6|dual  VIF addresses (default ipv4; dual probes both
                      and adds a row per family from the same repetitions;
                      two answerers: ARP for IPv4, NS/NA for IPv6)
  --sample auto|all|N which VIPs are probed at 1 kHz: N = the VIPs that move
                      (at most 8, see --movers)
                      plus up to N that do not (the control set; a node
                      returning: 16 spread over the pool); all = every VIP;
                      auto (default) = 4 controls above 16 VIFs, else all
  --movers N          at most N of the VIPs that move are probed when
                      sampling (default 8: the last one of each survivor,
                      the rest spread over them from the first)
  --idle S            length of an idle sample of agent n1's CPU and RSS
                      (seconds; default 3)
  --idle-samples N    idle samples per cluster, one after the other
                      (default 1; the record gives their median and max)
  --mature MS         the agents' mature (default: the test bed's 500 ms);
                      a returning node alone in its view claims every VIP
                      once mature, so a mature shorter than its engine's
                      merge shows as two answerers on returns
  --addresses holder|standby|both   xdp.standby_addresses off (holder: only
                      the holder has a VIF's addresses; default), on (every
                      node has them, XDP silent where not held; scenario
                      names end in -standby) or each size both ways
  --quorum            engine.require_quorum on every agent (Corosync's
                      votequorum; scenario names end in -quorum)
  --detector MODE     the LAN failure detector on every agent: observe,
                      guard or act (a survivor takes a condemned member's
                      VIPs before the view); scenario names end in -MODE
                      (default: $WKT_DETECTOR, else no detector)
  --out DIR           where failover.json, failover.md and the PNGs go
  --binary PATH       the agent binary (default target/release/wackamole;
                      `cargo xtask bench failover` passes the shipped one,
                      target/dist/wackamole; another build side by side,
                      e.g. before a change)";

/// A `[detector] mode`.
fn parse_detector(s: &str) -> Result<&'static str> {
    ["observe", "guard", "act"]
        .into_iter()
        .find(|m| *m == s)
        .ok_or_else(|| anyhow!("failover bench: --detector {s:?} (observe, guard or act)"))
}

fn parse_family(s: &str) -> Result<VipFamily> {
    Ok(match s {
        "ipv4" => VipFamily::Ipv4,
        "ipv6" => VipFamily::Ipv6,
        "dual" => VipFamily::Dual,
        other => bail!("failover bench: family {other:?} (ipv4, ipv6, dual)"),
    })
}

fn family_name(f: VipFamily) -> &'static str {
    match f {
        VipFamily::Ipv4 => "ipv4",
        VipFamily::Ipv6 => "ipv6",
        VipFamily::Dual => "dual",
    }
}

/// The addresses probed for VIF `k` (1-based) under `family`.
fn probed_addresses(family: VipFamily, k: usize) -> Vec<IpAddr> {
    match family {
        VipFamily::Ipv4 => vec![AgentCluster::vip(k).into()],
        VipFamily::Ipv6 => vec![AgentCluster::vip6(k).into()],
        VipFamily::Dual => vec![AgentCluster::vip(k).into(), AgentCluster::vip6(k).into()],
    }
}

fn parse_list(s: &str, what: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .with_context(|| format!("failover bench: {what} {x:?} is not a number"))
        })
        .collect()
}

/// What a run produced.
#[derive(Debug)]
pub struct BenchOutput {
    /// One record per scenario (and one `...-idle` per cluster).
    pub records: Vec<ScenarioRecord>,
    /// The compact markdown table ([`summary_markdown`]).
    pub summary: String,
    /// The markdown table of every figure (also in `failover.md`).
    pub markdown: String,
    /// `out_dir/failover.json`.
    pub json: PathBuf,
    /// `out_dir/failover-timeline.png` (the first scenario's first repetition).
    pub timeline: Option<PathBuf>,
    /// Sizes skipped, with why.
    pub skipped: Vec<String>,
}

/// Figure: the longest time one of the victim's VIPs had two answerers
/// (10 ms rounds of the ARP observer, or for IPv6 the NS observer, in which
/// two MACs answered). The name predates the NS observer.
pub const TWO_ARP_ANSWERERS_MS: &str = "two_arp_answerers_ms";

/// Figure: VIPs (addresses) the prober probed ([`Sample`]).
pub const PROBED_VIPS: &str = "probed_vips";
/// Figure: control VIPs among them (held by nodes the fault leaves alone).
pub const CONTROL_VIPS: &str = "control_vips";
/// Figure: the longest gap between answered probes of any control VIP (ms;
/// must be 0: nobody moved them, so a gap is the harness or a bug).
pub const CONTROL_GAP_MS: &str = "control_gap_ms";
/// Figure: control VIPs never answered.
pub const CONTROL_NEVER_ANSWERED: &str = "control_never_answered";

/// Figure: fault → the cluster balanced again, the returning node mature
/// and holding its share ([`Fault::rebalances`] faults only).
pub const REBALANCE_MS: &str = "rebalance_ms";

/// Figure: fault → the first survivor's LAN detector condemned the victim
/// (agent logs; only with `WKT_DETECTOR`, and only for faults it sees).
pub const DETECTOR_CONDEMNED_MS: &str = "detector_condemned_ms";

/// Figure: frames the XDP programs of the nodes other than the victim
/// dropped because their lease had lapsed, during the probing window (a
/// healthy owner going silent: the engine's liveness evidence came late).
pub const FENCED_DROPS_OTHERS: &str = "fenced_drops_others";

/// Figure: VIPs answered at least once before the fault.
pub const VIPS_ANSWERED_BEFORE: &str = "vips_answered_before";
/// Figure: VIPs answered in the last 500 ms of the run.
pub const VIPS_ANSWERED_AT_END: &str = "vips_answered_at_end";

/// Figure: agent share, part 1: new view → state exchange complete (agent logs).
pub const EXCHANGE_MS: &str = "agent_exchange_ms";
/// Figure: agent share, part 2: the slowest `acquired` (addresses + XDP), from `took_us`.
pub const ACQUIRE_MS: &str = "agent_acquire_ms";
/// Figure: new view → first `acquired` log line of the node that took over.
pub const VIEW_TO_ACQUIRED_MS: &str = "agent_view_to_acquired_ms";

/// Runs every size and scenario of `opts`, narrating progress on `log`;
/// writes `failover.json` and the timelines into `opts.out_dir`.
pub fn run(opts: &BenchOptions, log: &mut impl Write) -> Result<BenchOutput> {
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;
    let json = opts.out_dir.join("failover.json");
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    let mut timeline = None;
    for &nodes in &opts.nodes {
        for &vips in &opts.vips {
            if vips > MAX_VIPS {
                let why = format!(
                    "{nodes} nodes, {vips} VIPs: skipped, the test bed addresses at most {MAX_VIPS} VIPs"
                );
                writeln!(log, "{why}")?;
                skipped.push(why);
                continue;
            }
            for &standby in &opts.standby {
                let size = Size {
                    nodes,
                    vips,
                    profile: opts.profile,
                    family: opts.family,
                    spread: opts.spread.is_some(),
                    standby,
                    quorum: opts.require_quorum,
                    detector: opts.detector,
                };
                run_size(opts, size, log, &mut records, &mut timeline, &mut skipped)?;
                // Partial results survive a later failure.
                report::write_json(&json, &records)?;
            }
        }
    }
    report::write_json(&json, &records)?;
    let markdown = report::markdown(&records);
    let md = opts.out_dir.join("failover.md");
    std::fs::write(&md, &markdown).with_context(|| format!("writing {}", md.display()))?;
    Ok(BenchOutput {
        summary: summary_markdown(&records),
        markdown,
        records,
        json,
        timeline,
        skipped,
    })
}

#[derive(Debug, Clone, Copy)]
struct Size {
    nodes: usize,
    vips: usize,
    profile: Profile,
    family: VipFamily,
    /// On Spread (LAN-fast) instead of Corosync.
    spread: bool,
    /// `xdp.standby_addresses` on.
    standby: bool,
    /// `engine.require_quorum` on.
    quorum: bool,
    /// The LAN detector's mode, if any.
    detector: Option<&'static str>,
}

impl Size {
    fn engine(&self) -> &'static str {
        if self.spread {
            "spread"
        } else {
            "corosync"
        }
    }

    /// `fast-3n-3v`, with the family appended when not IPv4 (`fast-3n-3v-ipv6`)
    /// and `-standby` with standby addresses; on Spread `spread-fast-3n-3v`.
    fn prefix(&self) -> String {
        let engine = if self.spread { "spread-" } else { "" };
        let base = format!(
            "{engine}{}-{}n-{}v",
            self.profile.name(),
            self.nodes,
            self.vips
        );
        let base = match self.family {
            VipFamily::Ipv4 => base,
            f => format!("{base}-{}", family_name(f)),
        };
        let base = match self.standby {
            true => format!("{base}-standby"),
            false => base,
        };
        let base = match self.quorum {
            true => format!("{base}-quorum"),
            false => base,
        };
        match self.detector {
            Some(mode) => format!("{base}-{mode}"),
            None => base,
        }
    }

    fn params(&self, fault: &str) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([
            ("engine".to_string(), self.engine().to_string()),
            ("profile".to_string(), self.profile.name().to_string()),
            ("nodes".to_string(), self.nodes.to_string()),
            ("vips".to_string(), self.vips.to_string()),
            ("fault".to_string(), fault.to_string()),
            ("family".to_string(), family_name(self.family).to_string()),
            (
                "addresses".to_string(),
                if self.standby { "standby" } else { "holder" }.to_string(),
            ),
        ]);
        if self.quorum {
            p.insert("quorum".to_string(), "required".to_string());
        }
        if let Some(mode) = self.detector {
            p.insert("detector".to_string(), mode.to_string());
        }
        p
    }
}

fn run_size(
    opts: &BenchOptions,
    size: Size,
    log: &mut impl Write,
    records: &mut Vec<ScenarioRecord>,
    timeline: &mut Option<PathBuf>,
    skipped: &mut Vec<String>,
) -> Result<()> {
    writeln!(
        log,
        "== {}: starting {} nodes, {} VIPs ==",
        size.prefix(),
        size.nodes,
        size.vips
    )?;
    let mut copts = AgentClusterOptions::new(&opts.binary);
    copts.nodes = size.nodes;
    copts.vifs = size.vips;
    copts.profile = size.profile;
    if size.profile == Profile::Default {
        // What an operator gets: the freeze deadline (and with it the
        // probe period) derived from corosync's default token.
        copts.watchdog.1 = None;
    }
    // `WKT_LOG_LEVEL=debug`: the agents' debug lines too, for a diagnosis
    // (they cost the agents time: not for figures).
    copts.log_level = std::env::var("WKT_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    copts.family = size.family;
    copts.standby_addresses = size.standby;
    copts.require_quorum = size.quorum;
    copts.detector = size.detector.map(String::from);
    if let Some(m) = opts.mature {
        copts.mature = m;
    }
    if let Some(daemon) = &opts.spread {
        copts = copts.on_spread(daemon);
        copts.spread_timeouts = opts.spread_timeouts.clone();
    }
    let mut c = AgentCluster::start(copts)?;
    let mut responders = Vec::new();
    let v6 = size.family != VipFamily::Ipv4;
    for i in 0..c.len() {
        let name = c.name(i)?.to_string();
        responders.push(responder::Responder::start_in_families(
            c.ns(i)?,
            &name,
            PORT,
            1,
            true,
            v6,
        )?);
    }
    settle(&mut c, &[])?;

    // Idle: one agent, nothing happening.
    let pid = c.agent_pid(0).context("agent n1 has no pid")?;
    let mut idle = Vec::with_capacity(opts.idle_samples);
    for _ in 0..opts.idle_samples.max(1) {
        let u = resources::measure_process(pid, opts.idle)?;
        writeln!(
            log,
            "   idle agent n1 (pid {pid}): {} KiB RSS, {:.3}% CPU over {:?}",
            u.rss_kib, u.cpu_percent, opts.idle
        )?;
        idle.push(u);
    }
    records.push(ScenarioRecord::new(
        &format!("{}-idle", size.prefix()),
        size.params("none"),
        &[],
        &idle,
    ));

    for &fault in &opts.faults {
        let scenario = format!("{}-{}", size.prefix(), fault.name());
        let mut runs = Vec::new();
        let mut usage = Vec::new();
        let mut failed = false;
        let mut before = Vec::new();
        let mut at_end = Vec::new();
        let mut two_macs = Vec::new();
        let mut exchange = Vec::new();
        let mut acquire = Vec::new();
        let mut to_acquired = Vec::new();
        let mut rebalance = Vec::new();
        let mut condemned = Vec::new();
        let mut fenced_others = Vec::new();
        let mut probed = Vec::new();
        let mut controls = Vec::new();
        let mut control_gaps = Vec::new();
        let mut control_never = Vec::new();
        // Dual stack: each family's figures, from the same repetitions.
        let mut by_family: [Vec<analysis::RunResult>; 2] = Default::default();
        for rep in 0..opts.repetitions {
            let r = match repetition(&mut c, opts, fault, rep) {
                Ok(r) => r,
                Err(e) => {
                    // Keep what was measured; this cluster is in an unknown state.
                    let why = format!(
                        "{scenario} repetition {rep} failed, rest of this size skipped: {e:#}"
                    );
                    writeln!(log, "   {why}")?;
                    skipped.push(why);
                    failed = true;
                    break;
                }
            };
            let res = analysis::analyse(&r.run, &r.phases, analysis::Params::default());
            let (b, e) = answered_before_and_end(&r.run, &r.phases);
            let (gap_ms, never) = control_gap(&r.run, &r.controls);
            writeln!(
                log,
                "   {scenario} #{rep}: victim {}, worst outage {} ms, lost {}, dup {:.1} ms, two answerers {} ms, failover {} (detection {}, agent {}), {:.0} probes/s{}",
                r.victim,
                res.worst_outage.map_or("-".into(), |o| format!("{:.1}", o.len_ns() as f64 / 1e6)),
                res.lost_probes,
                res.duplicate_owner_ns as f64 / 1e6,
                r.two_answerers_ms.map_or("n/a".into(), |ms| format!("{ms:.0}")),
                fmt_opt_ms(res.phases.first().and_then(|p| p.failover_ns)),
                fmt_opt_ms(res.phases.first().and_then(|p| p.detection_ns)),
                fmt_opt_ms(res.phases.first().and_then(|p| p.agent_ns)),
                res.probe_rate_hz,
                match (fault.rebalances(), r.rebalance_ms) {
                    (false, _) => String::new(),
                    (true, Some(ms)) => format!(", balanced again after {ms:.0} ms"),
                    (true, None) => ", NOT balanced again within the window".to_string(),
                }
            )?;
            if let Some(ms) = r.condemned_ms {
                writeln!(log, "      LAN detector: a survivor condemned the victim {ms:.1} ms after the fault")?;
            }
            writeln!(
                log,
                "      probed {} of {} VIPs ({} controls): {:.0} rounds/s, RTT median {:.2} / p99 {:.2} / max {:.2} ms, control gap {gap_ms:.1} ms{}{}",
                r.run.vips.len(),
                r.pool,
                r.controls.len(),
                res.round_rate_hz,
                res.rtt_median_ns as f64 / 1e6,
                res.rtt_p99_ns as f64 / 1e6,
                res.rtt_max_ns as f64 / 1e6,
                if never > 0 { format!(", {never} controls NEVER answered") } else { String::new() },
                if gap_ms > 0.0 || never > 0 { "  <-- a VIP nobody moved had a gap" } else { "" },
            )?;
            if size.family == VipFamily::Dual {
                let mut line = String::from("     ");
                for (k, (name, v6)) in [("IPv4", false), ("IPv6", true)].into_iter().enumerate() {
                    let half = r.run.only(|ip| ip.is_ipv6() == v6);
                    let f = analysis::analyse(&half, &r.phases, analysis::Params::default());
                    line += &format!(
                        " {name}: worst outage {} ms, lost {}, failover {};",
                        f.worst_outage
                            .map_or("-".into(), |o| format!("{:.1}", o.len_ns() as f64 / 1e6)),
                        f.lost_probes,
                        fmt_opt_ms(f.phases.first().and_then(|p| p.failover_ns)),
                    );
                    by_family[k].push(f);
                }
                writeln!(log, "{}", line.trim_end_matches(';'))?;
            }
            let said = |n: Option<usize>| n.map_or("-".to_string(), |n| n.to_string());
            writeln!(
                log,
                "      observers heard {} ARP and {} NA answers (two answerers counted by arrival: {} ms)",
                said(r.observer_answers.0),
                said(r.observer_answers.1),
                r.two_by_arrival_ms.map_or("n/a".into(), |ms| format!("{ms:.0}")),
            )?;
            writeln!(
                log,
                "      lease-lapse (fenced) XDP drops per node: {}",
                r.fenced
                    .iter()
                    .enumerate()
                    .map(|(i, f)| format!(
                        "n{}{}={}",
                        i + 1,
                        if c.name(i).ok() == Some(r.victim.as_str()) {
                            "(victim)"
                        } else {
                            ""
                        },
                        f.map_or("-".into(), |v| v.to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            )?;
            let dark = dark_before_fault(&r.run, &r.phases, 100_000_000);
            if !dark.is_empty() {
                let list: Vec<String> = dark
                    .iter()
                    .take(12)
                    .map(|(ip, ms, node)| format!("{ip} (last answer {ms:.0} ms before, {node})"))
                    .collect();
                writeln!(
                    log,
                    "      DARK before the fault (no answer in the last 100 ms, nobody moved them): {} VIPs: {}",
                    dark.len(),
                    list.join(", ")
                )?;
            }
            // Every repetition's timeline (the first keeps the plain name):
            // an outlier is read off its own picture.
            let png = match rep {
                0 => opts.out_dir.join(format!("failover-{scenario}.png")),
                _ => opts
                    .out_dir
                    .join(format!("failover-{scenario}-rep{rep}.png")),
            };
            draw(&r.run, &r.phases, &scenario, &png)?;
            if rep == 0 && timeline.is_none() {
                let main = opts.out_dir.join("failover-timeline.png");
                std::fs::copy(&png, &main)
                    .with_context(|| format!("copying {} to {}", png.display(), main.display()))?;
                *timeline = Some(main);
            }
            two_macs.extend(r.two_answerers_ms);
            if let Some(ms) = r.rebalance_ms {
                rebalance.push(ms);
            }
            condemned.extend(r.condemned_ms);
            let victim_idx = c.index_of(&r.victim);
            fenced_others.push(
                r.fenced
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != victim_idx)
                    .filter_map(|(_, f)| *f)
                    .sum::<u64>() as f64,
            );
            before.push(b as f64);
            at_end.push(e as f64);
            probed.push(r.run.vips.len() as f64);
            controls.push(r.controls.len() as f64);
            if !r.controls.is_empty() {
                control_gaps.push(gap_ms);
                control_never.push(never as f64);
            }
            if let Some(p) = r.phases.first() {
                if let Some(bd) = agent_breakdown(&c, p.fault_ns) {
                    exchange.push(bd.exchange_ms);
                    acquire.push(bd.acquire_ms);
                    to_acquired.push(bd.view_to_acquired_ms);
                }
            }
            runs.push(res);
            usage.extend(r.usage);
        }
        let mut rec = ScenarioRecord::new(&scenario, size.params(fault.name()), &runs, &usage);
        insert_summary(&mut rec, VIPS_ANSWERED_BEFORE, &before);
        insert_summary(&mut rec, TWO_ARP_ANSWERERS_MS, &two_macs);
        insert_summary(&mut rec, VIPS_ANSWERED_AT_END, &at_end);
        insert_summary(&mut rec, EXCHANGE_MS, &exchange);
        insert_summary(&mut rec, ACQUIRE_MS, &acquire);
        insert_summary(&mut rec, VIEW_TO_ACQUIRED_MS, &to_acquired);
        insert_summary(&mut rec, REBALANCE_MS, &rebalance);
        insert_summary(&mut rec, DETECTOR_CONDEMNED_MS, &condemned);
        insert_summary(&mut rec, FENCED_DROPS_OTHERS, &fenced_others);
        insert_summary(&mut rec, PROBED_VIPS, &probed);
        insert_summary(&mut rec, CONTROL_VIPS, &controls);
        insert_summary(&mut rec, CONTROL_GAP_MS, &control_gaps);
        insert_summary(&mut rec, CONTROL_NEVER_ANSWERED, &control_never);
        records.push(rec);
        // The families of a dual-stack run as rows of their own.
        for (family, runs) in ["ipv4", "ipv6"].into_iter().zip(&by_family) {
            if !runs.is_empty() {
                let mut params = size.params(fault.name());
                params.insert("probed family".to_string(), family.to_string());
                records.push(ScenarioRecord::new(
                    &format!("{scenario}-{family}"),
                    params,
                    runs,
                    &[],
                ));
            }
        }
        if failed {
            break;
        }
    }
    for r in responders {
        r.stop()?;
    }
    drop(c);
    Ok(())
}

/// The lost-probe goal of planned changes and returns (issue 10): median 0
/// and at most 2 in every repetition.
pub fn meets_lossless_goal(lost: &Summary) -> bool {
    lost.median == 0.0 && lost.max <= 2.0
}

/// One row per scenario with the headline figures, `median/p95/max` (ms
/// unless said otherwise); `-` where a figure does not apply.
pub fn summary_markdown(records: &[ScenarioRecord]) -> String {
    let mut s = String::from(
        "| scenario | reps | probes/s | worst outage ms | lost probes | dup-owner ms | two ARP/NS answerers ms | failover ms | detection ms | agent ms | rebalance ms | RSS KiB (max) | CPU % | lossless goal | probed (controls) | rounds/s | RTT ms med/p99/max | control gap ms |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n");
    for r in records {
        let f = |name: &str| -> String {
            r.figures.get(name).map_or("-".into(), |x| {
                format!("{}/{}/{}", short(x.median), short(x.p95), short(x.max))
            })
        };
        // The first phase's split (a partition's heal is its own phase).
        let phase = r.params.get("fault").cloned().unwrap_or_default();
        // Planned changes and returns must lose nothing.
        let goal = match (
            Fault::parse(&phase).map(Fault::lossless_goal),
            r.figures.get(analysis::figure::LOST_PROBES),
        ) {
            (Ok(true), Some(lost)) if meets_lossless_goal(lost) => "met",
            (Ok(true), Some(_)) => "MISSED",
            _ => "-",
        };
        let pf = |name: &str| -> String {
            let key = format!("{name}[{phase}]");
            if r.figures.contains_key(&key) {
                f(&key)
            } else {
                f(name)
            }
        };
        // The harness: what was probed, how fast, how late the replies came,
        // and whether a VIP nobody moved went unanswered (flagged).
        let med = |name: &str| r.figures.get(name).map(|x| x.median);
        let probed = match (med(PROBED_VIPS), med(CONTROL_VIPS)) {
            (Some(p), Some(c)) => format!("{} ({})", short(p), short(c)),
            _ => "-".into(),
        };
        let rtt = match (
            med(analysis::figure::RTT_MEDIAN_MS),
            r.figures.get(analysis::figure::RTT_P99_MS).map(|x| x.max),
            r.figures.get(analysis::figure::RTT_MAX_MS).map(|x| x.max),
        ) {
            (Some(m), Some(p), Some(x)) => format!("{m:.2}/{p:.2}/{x:.1}"),
            _ => "-".into(),
        };
        let gap = match (
            r.figures.get(CONTROL_GAP_MS),
            r.figures.get(CONTROL_NEVER_ANSWERED),
        ) {
            (Some(g), never) => {
                let silent = never.is_some_and(|n| n.max > 0.0);
                let flag = if g.max > 0.0 || silent { " GAP" } else { "" };
                format!("{}{flag}", f(CONTROL_GAP_MS))
            }
            (None, _) => "-".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.repetitions,
            r.figures
                .get(analysis::figure::PROBE_RATE_HZ)
                .map_or("-".into(), |x| format!("{:.0}", x.median)),
            f(analysis::figure::WORST_OUTAGE_MS),
            f(analysis::figure::LOST_PROBES),
            f(analysis::figure::DUPLICATE_OWNER_MS),
            f(TWO_ARP_ANSWERERS_MS),
            pf(analysis::figure::FAILOVER_MS),
            pf(analysis::figure::DETECTION_MS),
            pf(analysis::figure::AGENT_MS),
            f(REBALANCE_MS),
            r.figures
                .get(analysis::figure::RSS_KIB)
                .map_or("-".into(), |x| format!("{:.0}", x.max)),
            f(analysis::figure::CPU_PERCENT),
            goal,
            probed,
            r.figures
                .get(analysis::figure::ROUND_RATE_HZ)
                .map_or("-".into(), |x| format!("{:.0}", x.median)),
            rtt,
            gap,
        ));
        if phase == Fault::Partition.name() {
            s.push_str(&format!(
                "| {} (heal) | | | | | | | {} | {} | {} | | | | | | | | |\n",
                r.scenario,
                f("failover_ms[heal]"),
                f("detection_ms[heal]"),
                f("agent_ms[heal]"),
            ));
        }
    }
    s
}

fn short(v: f64) -> String {
    if v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn insert_summary(rec: &mut ScenarioRecord, name: &str, values: &[f64]) {
    if let Some(s) = Summary::of(values) {
        rec.figures.insert(name.to_string(), s);
    }
}

fn fmt_opt_ms(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| format!("{:.1} ms", n as f64 / 1e6))
}

/// The timeline of one run: 300 ms before the first fault to 1.5 s after the last.
fn draw(run: &ProbeRun, phases: &[Phase], title: &str, path: &Path) -> Result<()> {
    let Some(first) = phases.first() else {
        return Ok(());
    };
    let last = phases.last().map_or(first.fault_ns, |p| p.fault_ns);
    let mut spec =
        plot::TimelineSpec::around_fault(title, first.fault_ns, 300_000_000, 0, run.vips.len());
    spec.to_ns = last + 1_500_000_000;
    spec.marks.clear();
    for p in phases {
        spec.marks.push((p.name.clone(), p.fault_ns));
        if let Some(v) = p.view_ns {
            spec.marks.push((format!("view ({})", p.name), v));
        }
    }
    plot::timeline_png(run, &spec, path)
}

/// VIPs answered before the first fault, and in the last 500 ms of the run.
pub fn answered_before_and_end(run: &ProbeRun, phases: &[Phase]) -> (usize, usize) {
    let fault = phases.first().map_or(u64::MAX, |p| p.fault_ns);
    let last_round = run.round_sent_ns.last().copied().unwrap_or(0);
    let end_from = last_round.saturating_sub(500_000_000);
    let mut before = vec![false; run.vips.len()];
    let mut end = vec![false; run.vips.len()];
    for a in &run.answers {
        let v = a.vip as usize;
        if a.sent_ns < fault {
            if let Some(b) = before.get_mut(v) {
                *b = true;
            }
        }
        if a.sent_ns >= end_from {
            if let Some(e) = end.get_mut(v) {
                *e = true;
            }
        }
    }
    (
        before.iter().filter(|b| **b).count(),
        end.iter().filter(|b| **b).count(),
    )
}

/// VIPs that were answered once but not in the last `quiet_ns` before the
/// fault: (address, ms before the fault of its last answer, answering node).
/// A VIP going dark with nobody moving it is a fault of its own.
pub fn dark_before_fault(
    run: &ProbeRun,
    phases: &[Phase],
    quiet_ns: u64,
) -> Vec<(IpAddr, f64, String)> {
    let fault = phases.first().map_or(u64::MAX, |p| p.fault_ns);
    let mut last: Vec<Option<(u64, u16)>> = vec![None; run.vips.len()];
    for a in run.answers.iter().filter(|a| a.sent_ns < fault) {
        if let Some(l) = last.get_mut(a.vip as usize) {
            if l.is_none_or(|(t, _)| a.sent_ns > t) {
                *l = Some((a.sent_ns, a.node));
            }
        }
    }
    let probing_from = run.round_sent_ns.first().copied().unwrap_or(0);
    last.iter()
        .enumerate()
        .filter_map(|(v, l)| {
            let ip = *run.vips.get(v)?;
            let node = |n: u16| run.nodes.get(n as usize).cloned().unwrap_or_default();
            match *l {
                Some((t, n)) if fault.saturating_sub(t) > quiet_ns => {
                    Some((ip, fault.saturating_sub(t) as f64 / 1e6, node(n)))
                }
                None if fault.saturating_sub(probing_from) > quiet_ns => {
                    Some((ip, f64::INFINITY, String::from("nobody")))
                }
                _ => None,
            }
        })
        .collect()
}

struct Repetition {
    run: ProbeRun,
    phases: Vec<Phase>,
    usage: Vec<ResourceUsage>,
    victim: String,
    /// Longest time an observed VIP had two answerers (ARP and NS
    /// observers, ms); None when nothing was observed.
    two_answerers_ms: Option<f64>,
    /// The same counting every reply (also unsolicited ones) for the round
    /// in which it arrived, as before requests were told apart.
    two_by_arrival_ms: Option<f64>,
    /// The control VIPs (indices into the run's VIPs).
    controls: Vec<u32>,
    /// Answers the ARP and NS observers recorded (None: not run).
    observer_answers: (Option<usize>, Option<usize>),
    /// Addresses in the pool (the run probes all or a sample).
    pool: usize,
    /// Fault → the cluster balanced again with the victim mature and holding
    /// its share ([`Fault::rebalances`] faults; None if not within the window).
    rebalance_ms: Option<f64>,
    /// Lease-lapse drops per node during the window (None: nothing pinned).
    fenced: Vec<Option<u64>>,
    /// Fault → the first survivor's LAN detector condemned a peer (ms;
    /// None without a detector or without a condemnation).
    condemned_ms: Option<f64>,
}

/// Balanced: every VIP has an agreed owner and counts differ by at most one.
fn balanced(s: &Snapshot, nodes: &[usize], vips: usize) -> bool {
    let counts = s.counts();
    let held: Vec<usize> = nodes
        .iter()
        .filter_map(|&i| counts.get(i).copied())
        .collect();
    let max = held.iter().copied().max().unwrap_or(0);
    let min = held.iter().copied().min().unwrap_or(0);
    s.agreed_among(nodes) && held.iter().sum::<usize>() == vips && max - min <= 1
}

/// Every node of `members` lists exactly `members.len()` members and is
/// mature, they agree, and the VIPs are balanced over `holders`.
fn settled(s: &Snapshot, members: &[usize], holders: &[usize], vips: usize) -> bool {
    let n = members.len();
    let mature = members.iter().all(|&i| {
        // Each agent's own maturity: the member rows keep the flag
        // of the last state exchange.
        s.statuses
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|st| st.members.len() == n && st.mature)
    });
    mature && s.agreed_among(members) && balanced(s, holders, vips)
}

/// Waits until every node but `except` is running, mature, and the VIPs are balanced among them.
fn settle(c: &mut AgentCluster, except: &[usize]) -> Result<Snapshot> {
    let nodes: Vec<usize> = (0..c.len()).filter(|i| !except.contains(i)).collect();
    settle_over(c, &nodes, &nodes)
}

/// Waits for [`settled`] (only `members` are asked: a stopped agent is not).
fn settle_over(c: &AgentCluster, members: &[usize], holders: &[usize]) -> Result<Snapshot> {
    let vips = c.vif_names().len();
    c.wait_until_among(
        members,
        &format!("nodes {members:?} mature, VIPs balanced over {holders:?}"),
        Duration::from_secs(40),
        |s| settled(s, members, holders, vips),
    )
}

/// Restores whatever a fault left behind and waits for a balanced cluster;
/// a victim agent that does not come back is restarted.
fn restore(
    c: &mut AgentCluster,
    fault: Fault,
    victim: usize,
    side_b: &[usize],
    moved: Option<(&str, &str)>,
) -> Result<()> {
    match fault {
        Fault::LinkCut => c.link_up(victim)?,
        Fault::AgentKill => {
            c.crash_agent(victim)?;
            c.start_agent(victim)?;
        }
        Fault::AgentStop => c.kill_agent(victim, libc::SIGCONT)?,
        Fault::CorosyncKill => c.corosync_mut().start_corosync(victim)?,
        Fault::CorosyncStop => c.corosync_mut().cont_corosync(victim)?,
        Fault::StackKill => {
            c.corosync_mut().start_corosync(victim)?;
            c.crash_agent(victim)?;
            c.start_agent(victim)?;
        }
        Fault::Partition => c.heal(side_b)?,
        Fault::Drain => {
            c.ctl_ok(victim, &["undrain"])?;
        }
        // An operator move sticks (balancing keeps it): move it back.
        Fault::Move => {
            if let Some((vif, _)) = moved {
                let name = c.name(victim)?.to_string();
                c.ctl_ok(victim, &["move", vif, &name])?;
            }
        }
        // The fault itself was the way back.
        Fault::Undrain
        | Fault::ReturnCrash
        | Fault::ReturnCable
        | Fault::ReturnTerm
        | Fault::ReturnKill
        | Fault::ReturnStop
        | Fault::LateJoin
        | Fault::ClusterStall => {}
    }
    if settle(c, &[]).is_err() {
        // E.g. an agent that gave up on a dead corosync: start it afresh.
        c.crash_agent(victim)?;
        c.start_agent(victim)?;
        settle(c, &[])?;
    }
    Ok(())
}

/// Before probing: takes the victim out for a [`Fault::rebalances`] fault
/// and waits until the others (or, for undrain, everyone) settled without it.
fn prepare(c: &mut AgentCluster, fault: Fault, victim: usize) -> Result<()> {
    let all: Vec<usize> = (0..c.len()).collect();
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    match fault {
        Fault::Undrain => {
            c.ctl_ok(victim, &["drain"])?;
            settle_over(c, &all, &others)?;
            return Ok(());
        }
        Fault::ReturnCrash => {
            c.link_down(victim)?;
            c.crash_agent(victim)?;
        }
        // The victim's agent keeps running, alone on its side.
        Fault::ReturnCable => c.link_down(victim)?,
        Fault::ReturnTerm => {
            c.terminate_agent(victim, Duration::from_secs(10))?;
        }
        Fault::ReturnKill => c.crash_agent(victim)?,
        // Agent first, so it does not see its corosync freeze (a paused VM).
        Fault::ReturnStop => {
            c.kill_agent(victim, libc::SIGSTOP)?;
            c.corosync_mut().stop_corosync(victim)?;
        }
        Fault::LateJoin => c.stop_node(victim)?,
        _ => return Ok(()),
    }
    settle_over(c, &others, &others)?;
    Ok(())
}

/// The victim: the last node for a late join (the one "started late"),
/// else the `rep`-th node holding something, round robin.
fn pick_victim(fault: Fault, nodes: usize, holders: &[usize], rep: usize) -> Option<usize> {
    if fault == Fault::LateJoin {
        return nodes.checked_sub(1);
    }
    holders.get(rep % holders.len().max(1)).copied()
}

fn repetition(
    c: &mut AgentCluster,
    opts: &BenchOptions,
    fault: Fault,
    rep: usize,
) -> Result<Repetition> {
    let snap = settle(c, &[])?;
    let holders: Vec<usize> = (0..c.len())
        .filter(|&i| !snap.held_by(i).is_empty())
        .collect();
    let victim = pick_victim(fault, c.len(), &holders, rep).context("no node holds a VIP")?;
    let victim_name = c.name(victim)?.to_string();
    let vif = snap
        .held_by(victim)
        .first()
        .cloned()
        .context("victim holds nothing")?;
    let other = (0..c.len())
        .find(|&i| i != victim)
        .context("one node only")?;
    let other_name = c.name(other)?.to_string();
    // The minority side of a partition holds the victim; the client stays with the rest.
    let side_b: Vec<usize> = {
        let half = c.len() / 2;
        let mut b = vec![victim];
        b.extend(
            (0..c.len())
                .filter(|&i| i != victim && i != other)
                .take(half.saturating_sub(1)),
        );
        b
    };

    prepare(c, fault, victim)?;

    let family = c.options().family;
    let nvifs = c.vif_names().len();
    let pool = (1..=nvifs)
        .map(|k| probed_addresses(family, k).len())
        .sum::<usize>();
    let after = {
        let o = c.options();
        // The test bed balances in one round beyond 99 VIFs (see render_config).
        let per_round = if pool > 99 { pool } else { 1 };
        after_window(
            fault,
            // A crash under corosync's default timers is seen seconds later.
            if fault.planned() {
                opts.after
            } else {
                opts.after.max(detection_window(o.profile, c.len()))
            },
            o.mature,
            o.balance_interval,
            pool,
            c.len(),
            per_round,
        )
    };
    // Who the fault moves: the victim's VIFs (the minority side's in a
    // partition, one VIF in a move), unknown when a node comes back.
    let vif_numbers = |i: usize| -> Vec<usize> {
        snap.held_by(i)
            .iter()
            .filter_map(|n| n.strip_prefix('v')?.parse().ok())
            .collect()
    };
    let movers: Vec<usize> = if fault == Fault::Partition {
        side_b.clone()
    } else if fault == Fault::ClusterStall {
        (0..c.len()).collect()
    } else {
        vec![victim]
    };
    let moving: Option<Vec<usize>> = if fault.rebalances() {
        None
    } else if fault == Fault::Move {
        vif.strip_prefix('v')
            .and_then(|k| k.parse().ok())
            .map(|k| vec![k])
    } else {
        Some(movers.iter().flat_map(|&i| vif_numbers(i)).collect())
    };
    let still: Vec<Vec<usize>> = (0..c.len())
        .filter(|i| !movers.contains(i))
        .map(vif_numbers)
        .collect();
    let sample = choose_sample(
        nvifs,
        moving.as_deref(),
        &still,
        opts.sample.controls(nvifs),
        opts.movers,
    );
    let mut vips: Vec<IpAddr> = Vec::new();
    let mut controls: Vec<u32> = Vec::new();
    for &k in &sample.vifs {
        for ip in probed_addresses(family, k) {
            if sample.controls.contains(&k) {
                controls.push(vips.len() as u32);
            }
            vips.push(ip);
        }
    }
    let window = opts.before + after;
    let mut cfg = prober::ProberConfig::new(vips.clone(), PORT, window);
    if vips.len() > 32 {
        cfg.senders = 2;
    }
    let probed = vips.clone();
    let sock: UdpSocket = c
        .client()
        .in_thread(move || prober::bind_prober_for(&probed))??;
    let fenced_before = fenced_counts(c);
    let sampler = resources::ProcessSampler::start(
        c.agent_pid(other).context("sampled agent has no pid")?,
        Duration::from_millis(100),
    )?;
    let prober = std::thread::Builder::new()
        .name("prober".into())
        .spawn(move || prober::run(&sock, &cfg))
        .context("spawning the prober")?;
    let started = std::time::Instant::now();
    // Who answers ARP (IPv4) and NS (IPv6) across the fault, every 10 ms:
    // the movers' VIPs, or every VIP when the victim takes a share no one
    // can name beforehand. A sampled run watches its sample: every VIP of a
    // 4000-VIP pool every 10 ms (400 000 requests/s) would load the host
    // more than the agents do.
    let observed: Vec<usize> = if sample.sampled {
        sample.vifs.clone()
    } else if fault.rebalances() {
        (1..=nvifs).collect()
    } else {
        movers.iter().flat_map(|&i| vif_numbers(i)).collect()
    };
    let (observed4, observed6): (Vec<Ipv4Addr>, Vec<std::net::Ipv6Addr>) = match family {
        VipFamily::Ipv4 => (
            observed.iter().map(|&k| AgentCluster::vip(k)).collect(),
            Vec::new(),
        ),
        VipFamily::Ipv6 => (
            Vec::new(),
            observed.iter().map(|&k| AgentCluster::vip6(k)).collect(),
        ),
        VipFamily::Dual => (
            observed.iter().map(|&k| AgentCluster::vip(k)).collect(),
            observed.iter().map(|&k| AgentCluster::vip6(k)).collect(),
        ),
    };
    let observer = if observed4.is_empty() {
        None
    } else {
        Some(arp_observer::start(
            c.observer().name(),
            "eth0",
            crate::testbed::cluster::observer_addrs(),
            observed4,
            window,
        )?)
    };
    let observer6 = if observed6.is_empty() {
        None
    } else {
        Some(ns_observer::start(
            c.observer().name(),
            "eth0",
            crate::testbed::cluster::OBSERVER_ADDR6,
            observed6,
            window,
        )?)
    };

    std::thread::sleep(opts.before);
    let mut phases = vec![Phase {
        name: fault.name().to_string(),
        fault_ns: now_ns(),
        view_ns: None,
    }];
    let mut injected = inject(c, fault, victim, &vif, &other_name, &side_b);
    if injected.is_ok() && fault == Fault::Partition {
        std::thread::sleep(Duration::from_secs(2).min(opts.after / 2));
        phases.push(Phase {
            name: "heal".into(),
            fault_ns: now_ns(),
            view_ns: None,
        });
        injected = c.heal(&side_b);
    }
    // Polls the agents until balanced again (or the probing ends).
    let mut rebalance_ms = None;
    if injected.is_ok() && fault.rebalances() {
        let all: Vec<usize> = (0..c.len()).collect();
        // Held counts are VIFs (a dual-stack VIF has two addresses; a sample fewer).
        let nv = nvifs;
        let fault_ns = phases.first().map_or(0, |p| p.fault_ns);
        while started.elapsed() < window {
            let s = c.snapshot_of(&all);
            if settled(&s, &all, &all, nv) {
                rebalance_ms = Some(now_ns().saturating_sub(fault_ns) as f64 / 1e6);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let run = prober
        .join()
        .map_err(|_| anyhow!("prober thread panicked"))?;
    // An observer that heard no answer at all measured nothing: None, not 0.
    let heard = |o: &arp_observer::Observed| {
        (o.answers() > 0).then(|| (o.two_answerers_ms(), o.two_answerers_by_arrival_ms()))
    };
    let (two4, arp_answers) = match observer {
        Some(o) => {
            let o = arp_observer::join(o)?;
            (heard(&o), Some(o.answers()))
        }
        None => (None, None),
    };
    let (two6, na_answers) = match observer6 {
        Some(o) => {
            let o = ns_observer::join(o)?;
            (heard(&o), Some(o.answers()))
        }
        None => (None, None),
    };
    // Dual stack: the worse family.
    let (two_answerers_ms, two_by_arrival_ms) = match (two4, two6) {
        (Some(a), Some(b)) => (Some(a.0.max(b.0)), Some(a.1.max(b.1))),
        (a, b) => {
            let w = a.or(b);
            (w.map(|w| w.0), w.map(|w| w.1))
        }
    };
    let usage = sampler.stop()?;
    let fenced = fenced_delta(&fenced_before, &fenced_counts(c));
    injected?;
    let run = run?;
    if fault != Fault::Partition {
        restore(c, fault, victim, &side_b, Some((&vif, &other_name)))?;
    } else {
        settle(c, &[])?;
    }
    // The view that moves the victim's VIFs is the survivors': a victim
    // cut off by its cable forms a view of its own too, often first, and
    // counting from it put part of the detection into the agents' share.
    // A partition has two sides that both act: every view counts.
    let viewers: Vec<usize> = (0..c.len())
        .filter(|&i| fault == Fault::Partition || i != victim)
        .collect();
    for p in &mut phases {
        // A planned change has no view: its trigger is the command.
        p.view_ns = if fault.planned() {
            None
        } else {
            first_view_after(c, &viewers, p.fault_ns)
        };
    }
    let condemned_ns = phases
        .first()
        .and_then(|p| first_condemnation_after(c, &viewers, p.fault_ns));
    let condemned_ms = phases
        .first()
        .zip(condemned_ns)
        .map(|(p, t)| t.saturating_sub(p.fault_ns) as f64 / 1e6);
    // Mode act: the survivors move the victim's VIFs at the condemnation,
    // seconds before the view on corosync's default timers; the agent's
    // share and the detection count from whichever came first.
    if opts.detector == Some("act") {
        if let (Some(p), Some(t)) = (phases.first_mut(), condemned_ns) {
            p.view_ns = Some(p.view_ns.map_or(t, |v| v.min(t)));
        }
    }
    Ok(Repetition {
        run,
        phases,
        usage: vec![usage],
        victim: victim_name,
        two_answerers_ms,
        two_by_arrival_ms,
        controls,
        pool,
        observer_answers: (arp_answers, na_answers),
        rebalance_ms,
        fenced,
        condemned_ms,
    })
}

/// Every node's lease-lapse drop counter now (None: unreadable or not pinned).
fn fenced_counts(c: &AgentCluster) -> Vec<Option<u64>> {
    (0..c.len())
        .map(|i| {
            let counts = c.xdp_action_counts(i).ok().flatten()?;
            counts
                .get(wackamole_common::action::DROP_FENCED as usize)
                .copied()
        })
        .collect()
}

/// Per node: the counter's growth (None if unknown at either end; a
/// restarted program that recreated its map counts from zero).
pub fn fenced_delta(before: &[Option<u64>], after: &[Option<u64>]) -> Vec<Option<u64>> {
    after
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let a = (*a)?;
            Some(match before.get(i).copied().flatten() {
                Some(b) if b <= a => a - b,
                _ => a,
            })
        })
        .collect()
}

fn inject(
    c: &mut AgentCluster,
    fault: Fault,
    victim: usize,
    vif: &str,
    other_name: &str,
    side_b: &[usize],
) -> Result<()> {
    match fault {
        Fault::LinkCut => c.link_down(victim),
        Fault::AgentKill => c.kill_agent(victim, libc::SIGKILL),
        Fault::AgentStop => c.kill_agent(victim, libc::SIGSTOP),
        Fault::CorosyncKill => c.corosync_mut().kill_corosync(victim),
        Fault::CorosyncStop => c.corosync_mut().stop_corosync(victim),
        // Corosync first: a killed agent alone is reported by CPG at once.
        Fault::StackKill => {
            c.corosync_mut().kill_corosync(victim)?;
            c.kill_agent(victim, libc::SIGKILL)
        }
        Fault::Partition => c.partition(side_b),
        Fault::Move => c.ctl_ok(victim, &["move", vif, other_name]).map(drop),
        Fault::Drain => c.ctl_ok(victim, &["drain"]).map(drop),
        Fault::Undrain => c.ctl_ok(victim, &["undrain"]).map(drop),
        Fault::ReturnCrash => {
            c.link_up(victim)?;
            c.start_agent(victim)
        }
        Fault::ReturnCable => c.link_up(victim),
        Fault::ReturnTerm | Fault::ReturnKill => c.start_agent(victim),
        Fault::ReturnStop => {
            c.corosync_mut().cont_corosync(victim)?;
            c.kill_agent(victim, libc::SIGCONT)
        }
        Fault::LateJoin => c.start_node(victim),
        Fault::ClusterStall => {
            for i in 0..c.len() {
                c.kill_agent(i, libc::SIGSTOP)?;
                c.corosync_mut().stop_corosync(i)?;
            }
            std::thread::sleep(CLUSTER_STALL);
            for i in 0..c.len() {
                c.corosync_mut().cont_corosync(i)?;
            }
            for i in 0..c.len() {
                c.kill_agent(i, libc::SIGCONT)?;
            }
            Ok(())
        }
    }
}

/// Where an agent's share of a failover went, from its log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentBreakdown {
    /// New view → `view ... complete` (the state exchange over the group).
    pub exchange_ms: f64,
    /// The slowest single `acquired vif=... took_us` after it.
    pub acquire_ms: f64,
    /// New view → the first `acquired vif=` line.
    pub view_to_acquired_ms: f64,
}

/// The breakdown of the agent that acquired something first after `after_ns`.
fn agent_breakdown(c: &AgentCluster, after_ns: u64) -> Option<AgentBreakdown> {
    (0..c.len())
        .filter_map(|i| c.agent_log(i).ok())
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|text| breakdown_in(&text, after_ns))
        .min_by(|a, b| a.view_to_acquired_ms.total_cmp(&b.view_to_acquired_ms))
}

/// Seconds since midnight of a log line's RFC 3339 UTC timestamp
/// (`2026-11-22T02:11:20.065533Z ...`); differences within a run are what count.
fn wall_s(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?;
    let time = ts.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// [`AgentBreakdown`] from one agent log: the first `new view` at or after
/// `after_ns`, the `complete` line after it, and the `acquired vif=` lines up
/// to the next view. None if that agent acquired nothing.
pub fn breakdown_in(log: &str, after_ns: u64) -> Option<AgentBreakdown> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.iter().position(|l| {
        l.contains("new view")
            && field(l, "mono_ns")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|t| t >= after_ns)
    })?;
    let t0 = wall_s(lines.get(start)?)?;
    let mut complete = None;
    let mut first_acquired = None;
    let mut slowest_us: u64 = 0;
    for l in lines.iter().skip(start + 1) {
        if l.contains("new view") {
            break;
        }
        if complete.is_none() && l.contains(" complete: ") {
            complete = wall_s(l);
        }
        if field(l, "vif").is_some() && l.contains(" acquired ") {
            first_acquired = first_acquired.or_else(|| wall_s(l));
            if let Some(us) = field(l, "took_us").and_then(|v| v.parse().ok()) {
                slowest_us = slowest_us.max(us);
            }
        }
    }
    let acquired = first_acquired?;
    Some(AgentBreakdown {
        exchange_ms: complete.map_or(f64::NAN, |c| (c - t0) * 1e3),
        acquire_ms: slowest_us as f64 / 1e3,
        view_to_acquired_ms: (acquired - t0) * 1e3,
    })
}

/// The earliest `new view` any of the agents `nodes` logged at or after
/// `after_ns` (monotonic ns).
pub fn first_view_after(c: &AgentCluster, nodes: &[usize], after_ns: u64) -> Option<u64> {
    first_logged_after(c, nodes, "new view", after_ns)
}

/// The earliest `detector: condemned` any of the agents `nodes` logged at
/// or after `after_ns` (monotonic ns).
pub fn first_condemnation_after(c: &AgentCluster, nodes: &[usize], after_ns: u64) -> Option<u64> {
    first_logged_after(c, nodes, "detector: condemned", after_ns)
}

/// The earliest `mono_ns` of a line containing `what` that any of the
/// agents `nodes` logged at or after `after_ns`.
fn first_logged_after(c: &AgentCluster, nodes: &[usize], what: &str, after_ns: u64) -> Option<u64> {
    nodes
        .iter()
        .filter_map(|&i| c.agent_log(i).ok())
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| stamped(&text, what))
        .filter(|&t| t >= after_ns)
        .min()
}

/// The `mono_ns` of every line of an agent log that contains `what`.
pub fn stamped(log: &str, what: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| field(l, "mono_ns")?.parse().ok())
        .collect()
}

/// The `mono_ns` of every `new view` line of an agent log.
pub fn view_times(log: &str) -> Vec<u64> {
    stamped(log, "new view")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_that_stopped_answering_before_the_fault_are_named() {
        use crate::lab::analysis::Answer;
        let ms = 1_000_000u64;
        let vips: Vec<IpAddr> = (1..=3)
            .map(|d| Ipv4Addr::new(192, 0, 2, d).into())
            .collect();
        let mut run = ProbeRun {
            vips: vips.clone(),
            nodes: vec!["n1".into(), "n2".into()],
            interval_ns: ms,
            round_sent_ns: (0..1000).map(|r| r * ms).collect(),
            ..ProbeRun::default()
        };
        // VIP 0 answers throughout, VIP 1 stops at 300 ms, VIP 2 never.
        for r in 0..1000u64 {
            for (v, until, node) in [(0u32, 1000u64, 0u16), (1, 300, 1)] {
                if r < until {
                    run.answers.push(Answer {
                        vip: v,
                        round: r as u32,
                        node,
                        sent_ns: r * ms,
                        recv_ns: r * ms + 100_000,
                    });
                }
            }
        }
        let phases = [Phase {
            name: "cut".into(),
            fault_ns: 900 * ms,
            view_ns: None,
        }];
        let dark = dark_before_fault(&run, &phases, 100 * ms);
        assert_eq!(dark.len(), 2, "{dark:?}");
        assert_eq!((dark[0].0, dark[0].2.as_str()), (vips[1], "n2"));
        assert!((dark[0].1 - 601.0).abs() < 1e-9, "{dark:?}");
        assert_eq!(
            (dark[1].0, dark[1].1, dark[1].2.as_str()),
            (vips[2], f64::INFINITY, "nobody")
        );
        // A quiet spell shorter than the threshold is not dark.
        assert!(dark_before_fault(&run, &phases, 700 * ms).len() == 1);
    }

    #[test]
    fn view_times_from_agent_log_lines() {
        let log = "2026-11-22T02:00:00Z  INFO wackamole::daemon: new view view=1:2 members=3 my_index=0 mono_ns=12345\n\
                   2026-11-22T02:00:01Z  INFO wackamole::daemon: acquired vif=v1 took_us=80\n\
                   2026-11-22T02:00:02Z  INFO wackamole::daemon: new view view=1:3 members=2 my_index=1 mono_ns=99\n\
                   garbage new view mono_ns=x\n";
        assert_eq!(view_times(log), vec![12345, 99]);
    }

    #[test]
    fn condemnation_times_from_agent_log_lines() {
        let log = "2026-12-05T07:33:17Z  INFO detector: lost a peer (silent past the deadline) member=n0000000001p0000000042 mono_ns=10\n\
                   2026-12-05T07:33:17Z  INFO detector: condemned a peer (lost by a majority; observe mode, no action) member=n0000000001p0000000042 mono_ns=12\n\
                   detector: condemned mono_ns=bad\n";
        assert_eq!(stamped(log, "detector: condemned"), vec![12]);
        assert_eq!(stamped(log, "detector: lost"), vec![10]);
    }

    #[test]
    fn breakdown_from_agent_log() {
        let log = "2026-11-22T02:11:20.000000Z  INFO new view view=a members=3 my_index=0 mono_ns=10\n\
                   2026-11-22T02:11:21.000000Z  INFO new view view=b members=2 my_index=0 mono_ns=1000\n\
                   2026-11-22T02:11:21.001500Z  INFO view b complete: 2 members, mature, I hold 1 VIFs\n\
                   2026-11-22T02:11:21.004000Z  INFO acquired vif=v1 took_us=2000\n\
                   2026-11-22T02:11:21.004100Z  INFO acquired after view b with 2 members vifs=1 took_us=4100\n\
                   2026-11-22T02:11:22.000000Z  INFO new view view=c members=3 my_index=0 mono_ns=2000\n\
                   2026-11-22T02:11:22.100000Z  INFO acquired vif=v2 took_us=9000\n";
        let b = breakdown_in(log, 500).expect("a breakdown");
        assert!((b.exchange_ms - 1.5).abs() < 1e-6, "{b:?}");
        assert!((b.acquire_ms - 2.0).abs() < 1e-9, "{b:?}");
        assert!((b.view_to_acquired_ms - 4.0).abs() < 1e-6, "{b:?}");
        // No view after the fault, or nothing acquired: none.
        assert_eq!(breakdown_in(log, 5000), None);
        assert_eq!(
            breakdown_in("2026-11-22T02:11:21.000000Z  INFO new view mono_ns=9\n", 0),
            None
        );
    }

    #[test]
    fn engine_option_names_scenarios_and_leaves_out_corosync_faults() -> Result<()> {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = BenchOptions::from_args("w".into(), "o".into(), &args(&["--engine", "corosync"]))?;
        assert_eq!(o.spread, None);
        assert!(
            BenchOptions::from_args("w".into(), "o".into(), &args(&["--engine", "x"])).is_err()
        );
        let spread = Size {
            nodes: 3,
            vips: 3,
            profile: Profile::Fast,
            family: VipFamily::Ipv4,
            spread: true,
            standby: false,
            quorum: false,
            detector: None,
        };
        assert_eq!(spread.prefix(), "spread-fast-3n-3v");
        assert_eq!(
            spread.params("link-cut").get("engine").map(String::as_str),
            Some("spread")
        );
        let usable: Vec<Fault> = Fault::ALL
            .into_iter()
            .filter(|f| !f.corosync_only())
            .collect();
        assert!(usable.contains(&Fault::LinkCut) && usable.contains(&Fault::AgentStop));
        assert!(!usable.contains(&Fault::CorosyncStop));
        Ok(())
    }

    #[test]
    fn quorum_option_sets_the_agents_and_names_the_scenarios() -> Result<()> {
        let o = BenchOptions::from_args("w".into(), "o".into(), &["--quorum".to_string()])?;
        assert!(o.require_quorum);
        assert!(!BenchOptions::from_args("w".into(), "o".into(), &[])?.require_quorum);
        let size = Size {
            nodes: 3,
            vips: 3,
            profile: Profile::Fast,
            family: VipFamily::Ipv4,
            spread: false,
            standby: true,
            quorum: true,
            detector: None,
        };
        assert_eq!(size.prefix(), "fast-3n-3v-standby-quorum");
        assert_eq!(
            size.params("link-cut").get("quorum").map(String::as_str),
            Some("required")
        );
        Ok(())
    }

    #[test]
    fn detector_option_sets_the_agents_and_names_the_scenarios() -> Result<()> {
        let a = |m: &str| ["--detector".to_string(), m.to_string()];
        for mode in ["observe", "guard", "act"] {
            let o = BenchOptions::from_args("w".into(), "o".into(), &a(mode))?;
            assert_eq!(o.detector, Some(mode));
        }
        assert!(BenchOptions::from_args("w".into(), "o".into(), &a("acting")).is_err());
        let size = Size {
            nodes: 3,
            vips: 64,
            profile: Profile::Fast,
            family: VipFamily::Ipv4,
            spread: false,
            standby: false,
            quorum: false,
            detector: Some("act"),
        };
        assert_eq!(size.prefix(), "fast-3n-64v-act");
        assert_eq!(
            size.params("link-cut").get("detector").map(String::as_str),
            Some("act")
        );
        Ok(())
    }

    #[test]
    fn family_option_names_scenarios_and_probed_addresses() -> Result<()> {
        let o = BenchOptions::from_args("w".into(), "o".into(), &[])?;
        assert_eq!(o.family, VipFamily::Ipv4);
        let size = |family| Size {
            nodes: 3,
            vips: 3,
            profile: Profile::Fast,
            family,
            spread: false,
            standby: false,
            quorum: false,
            detector: None,
        };
        // IPv4 keeps the old names, so earlier results still compare.
        assert_eq!(size(VipFamily::Ipv4).prefix(), "fast-3n-3v");
        for (arg, family) in [("ipv6", VipFamily::Ipv6), ("dual", VipFamily::Dual)] {
            let a = ["--family".to_string(), arg.to_string()];
            let o = BenchOptions::from_args("w".into(), "o".into(), &a)?;
            assert_eq!(o.family, family);
            assert_eq!(size(family).prefix(), format!("fast-3n-3v-{arg}"));
            assert_eq!(
                size(family)
                    .params("move")
                    .get("family")
                    .map(String::as_str),
                Some(arg)
            );
        }
        let bad = ["--family".to_string(), "ipx".to_string()];
        assert!(BenchOptions::from_args("w".into(), "o".into(), &bad).is_err());
        assert_eq!(
            probed_addresses(VipFamily::Ipv4, 2),
            vec![IpAddr::from(AgentCluster::vip(2))]
        );
        assert_eq!(
            probed_addresses(VipFamily::Ipv6, 2),
            vec![IpAddr::from(AgentCluster::vip6(2))]
        );
        assert_eq!(
            probed_addresses(VipFamily::Dual, 2),
            vec![
                IpAddr::from(AgentCluster::vip(2)),
                AgentCluster::vip6(2).into()
            ]
        );
        Ok(())
    }

    #[test]
    fn args_set_the_idle_samples() -> Result<()> {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let d = BenchOptions::from_args("w".into(), "o".into(), &[])?;
        assert_eq!((d.idle, d.idle_samples), (Duration::from_secs(3), 1));
        let o = BenchOptions::from_args(
            "w".into(),
            "o".into(),
            &args(&["--idle", "10", "--idle-samples", "5"]),
        )?;
        assert_eq!((o.idle, o.idle_samples), (Duration::from_secs(10), 5));
        for bad in [["--idle", "0"], ["--idle", "x"], ["--idle-samples", "0"]] {
            assert!(BenchOptions::from_args("w".into(), "o".into(), &args(&bad)).is_err());
        }
        Ok(())
    }

    #[test]
    fn args_cap_the_probed_movers() -> Result<()> {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let d = BenchOptions::from_args("w".into(), "o".into(), &[])?;
        assert_eq!(d.movers, MOVER_SAMPLE);
        let o = BenchOptions::from_args("w".into(), "o".into(), &args(&["--movers", "16"]))?;
        assert_eq!(o.movers, 16);
        for bad in ["1", "0", "x", "5000"] {
            let a = args(&["--movers", bad]);
            assert!(BenchOptions::from_args("w".into(), "o".into(), &a).is_err());
        }
        // 16 of 334 movers, one survivor: spread, the first and the last
        // included, no two alike.
        let movers: Vec<usize> = (1..=1000).step_by(3).collect();
        let s = choose_sample(1000, Some(&movers), &[vec![2, 5]], Some(2), 16);
        let probed: Vec<usize> = (s.vifs.iter().copied())
            .filter(|k| movers.contains(k))
            .collect();
        assert_eq!(probed.len(), 16);
        assert_eq!(probed.first(), movers.first());
        assert_eq!(probed.last(), movers.last());
        assert_eq!(s.controls, vec![2, 5]);
        // Two movers, seven survivors: the first and the last.
        let still: Vec<Vec<usize>> = (0..7).map(|j| vec![1000 - j]).collect();
        let s = choose_sample(1000, Some(&movers), &still, Some(0), 2);
        assert_eq!(s.vifs, vec![1, 1000]);
        Ok(())
    }

    #[test]
    fn args_select_sizes_and_faults() -> Result<()> {
        let a: Vec<String> = [
            "--nodes",
            "3,5",
            "--vips",
            "3",
            "--faults",
            "move,drain",
            "--reps",
            "2",
            "--profile",
            "default",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = BenchOptions::from_args("w".into(), "o".into(), &a)?;
        assert_eq!(o.nodes, vec![3, 5]);
        assert_eq!(o.vips, vec![3]);
        assert_eq!(o.faults, vec![Fault::Move, Fault::Drain]);
        assert_eq!(o.repetitions, 2);
        assert_eq!(o.profile, Profile::Default);
        assert!(BenchOptions::from_args("w".into(), "o".into(), &["--bogus".into()]).is_err());
        assert!(BenchOptions::from_args(
            "w".into(),
            "o".into(),
            &["--faults".into(), "nope".into()]
        )
        .is_err());
        let s = BenchOptions::from_args("w".into(), "o".into(), &["--smoke".into()])?;
        assert_eq!(s.faults, vec![Fault::LinkCut, Fault::ReturnCable]);
        let new = [
            "--faults".to_string(),
            "undrain, return-cable,return-term,return-kill,return-stop,late-join,return-crash"
                .to_string(),
        ];
        let o = BenchOptions::from_args("w".into(), "o".into(), &new)?;
        assert_eq!(
            o.faults,
            vec![
                Fault::Undrain,
                Fault::ReturnCable,
                Fault::ReturnTerm,
                Fault::ReturnKill,
                Fault::ReturnStop,
                Fault::LateJoin,
                Fault::ReturnCrash
            ]
        );
        let all = ["--faults".to_string(), "all".to_string()];
        let o = BenchOptions::from_args("w".into(), "o".into(), &all)?;
        assert_eq!(o.faults, Fault::ALL.to_vec());
        Ok(())
    }

    #[test]
    fn the_old_return_name_points_at_the_new_ones() {
        let e = Fault::parse("return").map_or_else(|e| e.to_string(), |f| format!("{f:?}"));
        assert!(
            e.contains("return-crash") && e.contains("return-cable"),
            "{e}"
        );
        let e = Fault::parse("nope").map_or_else(|e| e.to_string(), |f| format!("{f:?}"));
        assert!(e.contains("late-join"), "{e}");
    }

    #[test]
    fn fault_classes() {
        assert!(Fault::Undrain.planned() && Fault::Undrain.rebalances());
        assert!(Fault::Move.planned() && !Fault::Move.rebalances());
        assert!(Fault::Drain.planned() && !Fault::Drain.rebalances());
        for f in [
            Fault::ReturnCrash,
            Fault::ReturnCable,
            Fault::ReturnTerm,
            Fault::ReturnKill,
            Fault::ReturnStop,
            Fault::LateJoin,
        ] {
            assert!(f.rebalances() && !f.planned(), "{f:?}");
        }
        assert!(Fault::ReturnStop.lossless_goal() && Fault::Drain.lossless_goal());
        for f in [Fault::LinkCut, Fault::StackKill, Fault::Partition] {
            assert!(!f.lossless_goal(), "{f:?}");
        }
        // Every fault has a distinct name, and the usage lists it.
        let names: std::collections::BTreeSet<_> = Fault::ALL.map(Fault::name).into();
        assert_eq!(names.len(), Fault::ALL.len());
        for n in names {
            assert!(USAGE.contains(n), "--help does not list {n}");
        }
    }

    #[test]
    fn after_window_covers_the_rebalance() {
        let ms = Duration::from_millis;
        let base = ms(3000);
        // A crash keeps the base window.
        assert_eq!(
            after_window(Fault::LinkCut, base, ms(500), ms(500), 64, 3, 1),
            base
        );
        assert_eq!(
            after_window(Fault::Move, base, ms(500), ms(500), 64, 3, 1),
            base
        );
        // 3 VIPs on 3 nodes: one VIF to take, one round (+1 slack):
        // 1.5 s view + 0.5 s mature + 2 x 0.5 s + 1 s = 4 s.
        assert_eq!(
            after_window(Fault::ReturnCable, base, ms(500), ms(500), 3, 3, 1),
            ms(4000)
        );
        // 64 VIPs: 22 to take at one a round: 1.5 + 0.5 + 23 x 0.5 + 1 = 14.5 s;
        // an agent to start: 2 s; corosync and the agent: 3 s to the view.
        assert_eq!(
            after_window(Fault::ReturnStop, base, ms(500), ms(500), 64, 3, 1),
            ms(14_500)
        );
        assert_eq!(
            after_window(Fault::ReturnKill, base, ms(500), ms(500), 64, 3, 1),
            ms(15_000)
        );
        assert_eq!(
            after_window(Fault::LateJoin, base, ms(500), ms(500), 64, 3, 1),
            ms(16_000)
        );
        // All in one round: 1.5 + 0.5 + 2 x 0.5 + 1 = 4 s.
        assert_eq!(
            after_window(Fault::Undrain, base, ms(500), ms(500), 1000, 3, 1000),
            ms(4000)
        );
        // Never shorter than asked.
        assert_eq!(
            after_window(Fault::ReturnTerm, ms(20_000), ms(500), ms(500), 3, 3, 1),
            ms(20_000)
        );
    }

    #[test]
    fn default_profile_windows_cover_detection() {
        assert_eq!(detection_window(Profile::Fast, 8), Duration::ZERO);
        // 3 nodes: 3.65 s token + 4.38 s consensus + 1 s.
        assert_eq!(
            detection_window(Profile::Default, 3),
            Duration::from_millis(9030)
        );
        // 8 nodes: 6.9 s + 8.28 s + 1 s.
        assert_eq!(
            detection_window(Profile::Default, 8),
            Duration::from_millis(16_180)
        );
    }

    #[test]
    fn fenced_deltas() {
        assert_eq!(
            fenced_delta(
                &[Some(5), None, Some(9), Some(1)],
                &[Some(7), Some(3), Some(2), None]
            ),
            // Grew by 2; unknown before (counts all); reset (counts from 0); gone.
            vec![Some(2), Some(3), Some(2), None]
        );
    }

    #[test]
    fn victims() {
        // A late join is always the last node; the rest go round the holders.
        assert_eq!(pick_victim(Fault::LateJoin, 3, &[0, 1], 1), Some(2));
        assert_eq!(pick_victim(Fault::ReturnKill, 3, &[0, 2], 0), Some(0));
        assert_eq!(pick_victim(Fault::ReturnKill, 3, &[0, 2], 3), Some(2));
        assert_eq!(pick_victim(Fault::Move, 3, &[], 0), None);
    }

    #[test]
    fn lossless_goal_is_median_zero_max_two() {
        let s = |v: &[f64]| Summary::of(v).expect("values");
        assert!(meets_lossless_goal(&s(&[0.0, 0.0, 2.0])));
        assert!(!meets_lossless_goal(&s(&[0.0, 0.0, 3.0])));
        assert!(!meets_lossless_goal(&s(&[1.0, 1.0, 0.0])));
    }

    #[test]
    fn the_sample_holds_every_mover_and_controls_from_each_survivor() {
        // 3 nodes, 12 VIFs; n1 (the victim) holds 1..=4.
        let still = vec![vec![5, 6, 7, 8], vec![9, 10, 11, 12]];
        let s = choose_sample(12, Some(&[1, 2, 3, 4]), &still, Some(3), MOVER_SAMPLE);
        assert_eq!(s.controls, vec![5, 6, 9]);
        assert_eq!(s.vifs, vec![1, 2, 3, 4, 5, 6, 9]);
        assert!(s.sampled);
        // All: every VIF, every survivor's VIF a control.
        let s = choose_sample(12, Some(&[1, 2, 3, 4]), &still, None, MOVER_SAMPLE);
        assert_eq!(s.vifs, (1..=12).collect::<Vec<_>>());
        assert_eq!(s.controls, (5..=12).collect::<Vec<_>>());
        assert!(!s.sampled);
        // More controls asked than there are: all of them.
        let s = choose_sample(12, Some(&[1, 2, 3, 4]), &still, Some(50), MOVER_SAMPLE);
        assert_eq!(s.controls.len(), 8);
        assert!(!s.sampled);
        // Many movers: a spread sample of them, the first and last included.
        let movers: Vec<usize> = (1..=1000).step_by(3).collect();
        let s = choose_sample(1000, Some(&movers), &still, Some(8), MOVER_SAMPLE);
        let probed_movers: Vec<usize> = s
            .vifs
            .iter()
            .copied()
            .filter(|k| movers.contains(k))
            .collect();
        assert_eq!(probed_movers.len(), MOVER_SAMPLE);
        assert_eq!(probed_movers.first(), movers.first());
        // The last VIF of each of the two survivors.
        assert_eq!(
            probed_movers[MOVER_SAMPLE - 2..],
            movers[movers.len() - 2..]
        );
        // A returning node: a spread sample, no controls.
        let s = choose_sample(64, None, &still, Some(8), MOVER_SAMPLE);
        assert_eq!(s.vifs.len(), REBALANCE_SAMPLE);
        assert_eq!(s.vifs.first(), Some(&1));
        assert!(s.vifs.iter().all(|k| (1..=64).contains(k)) && s.controls.is_empty());
        assert_eq!(
            choose_sample(3, None, &still, Some(8), MOVER_SAMPLE).vifs,
            vec![1, 2, 3]
        );
        // Auto samples large pools only.
        assert_eq!(Sample::Auto.controls(3), None);
        assert_eq!(Sample::Auto.controls(64), Some(DEFAULT_CONTROLS));
        assert_eq!(Sample::All.controls(1000), None);
        assert_eq!(Sample::Controls(2).controls(3), Some(2));
    }

    #[test]
    fn sample_option_parses() -> Result<()> {
        let a = |v: &str| ["--sample".to_string(), v.to_string()];
        let o = BenchOptions::from_args("w".into(), "o".into(), &[])?;
        assert_eq!(o.sample, Sample::Auto);
        let o = BenchOptions::from_args("w".into(), "o".into(), &a("all"))?;
        assert_eq!(o.sample, Sample::All);
        let o = BenchOptions::from_args("w".into(), "o".into(), &a("4"))?;
        assert_eq!(o.sample, Sample::Controls(4));
        assert!(BenchOptions::from_args("w".into(), "o".into(), &a("some")).is_err());
        Ok(())
    }

    #[test]
    fn control_gap_is_the_longest_unanswered_stretch() {
        use crate::lab::analysis::Answer;
        let answer = |vip, round| Answer {
            vip,
            round,
            node: 0,
            sent_ns: 0,
            recv_ns: 0,
        };
        let mut run = ProbeRun {
            round_sent_ns: (0..10).map(|r| r * 1_000_000).collect(),
            ..ProbeRun::default()
        };
        // VIP 0 every round; VIP 1 misses rounds 3..=5; VIP 2 never answers.
        for r in 0..10 {
            run.answers.push(answer(0, r));
            if !(3..=5).contains(&r) {
                run.answers.push(answer(1, r));
            }
        }
        assert_eq!(control_gap(&run, &[0]), (0.0, 0));
        assert_eq!(control_gap(&run, &[0, 1]), (3.0, 0));
        assert_eq!(control_gap(&run, &[0, 2]), (0.0, 1));
    }

    #[test]
    fn every_fault_name_parses_back() -> Result<()> {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name())?, f);
        }
        Ok(())
    }
}

//! The failover benchmark (`cargo xtask bench failover`): real agents on a
//! Corosync cluster ([`AgentCluster`]), a responder on every node, the client
//! probing every VIP each millisecond, and one fault per repetition.
//!
//! Per repetition: the cluster settles (everyone mature, balanced), the
//! prober runs for `before + after`, the fault is injected after `before`,
//! then the cluster is restored. The view time of a phase is the first
//! `new view ... mono_ns=` line any agent logged after the fault, so
//! `failover = detection (fault → view) + agent (view → first answer)`.
//!
//! Both `benches/failover.rs` and the smoke test call [`run`].

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::analysis::{self, Phase, ProbeRun, ResourceUsage, Summary};
use super::report::{self, ScenarioRecord};
use super::{arp_observer, now_ns, plot, prober, resources, responder};
use crate::testbed::cluster::{AgentCluster, AgentClusterOptions, Snapshot};
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
    /// A crashed node (cable out, agent killed) comes back: cable in, agent started.
    Return,
}

impl Fault {
    /// Every fault, in report order.
    pub const ALL: [Fault; 10] = [
        Fault::LinkCut,
        Fault::AgentKill,
        Fault::AgentStop,
        Fault::CorosyncKill,
        Fault::CorosyncStop,
        Fault::StackKill,
        Fault::Partition,
        Fault::Move,
        Fault::Drain,
        Fault::Return,
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
            Fault::Return => "return",
        }
    }

    /// Parses [`Fault::name`].
    pub fn parse(s: &str) -> Result<Fault> {
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
}

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
    /// Idle measurement of an agent per cluster.
    pub idle: Duration,
    /// Where failover.json and the PNGs go.
    pub out_dir: PathBuf,
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
            out_dir: out_dir.into(),
        }
    }

    /// The smoke variant: 3 nodes, 3 VIPs, one link cut, one repetition, short windows.
    pub fn smoke(binary: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        BenchOptions {
            nodes: vec![3],
            vips: vec![3],
            faults: vec![Fault::LinkCut],
            repetitions: 1,
            before: Duration::from_millis(700),
            after: Duration::from_millis(2000),
            idle: Duration::from_secs(1),
            ..Self::default_set(binary, out_dir)
        }
    }

    /// Parses the bench's arguments (after `--`) onto [`BenchOptions::default_set`]:
    /// `--smoke`, `--full`, `--nodes 3,5`, `--vips 3,64`, `--faults a,b`,
    /// `--reps N`, `--profile fast|default`, `--out DIR`.
    pub fn from_args(binary: PathBuf, out_dir: PathBuf, args: &[String]) -> Result<Self> {
        let mut o = Self::default_set(binary, out_dir);
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
                    o.faults = value("--faults")?
                        .split(',')
                        .map(Fault::parse)
                        .collect::<Result<_>>()?
                }
                "--reps" => {
                    o.repetitions = value("--reps")?
                        .parse()
                        .context("failover bench: --reps wants a number")?
                }
                "--profile" => {
                    o.profile = match value("--profile")?.as_str() {
                        "fast" => Profile::Fast,
                        "default" => Profile::Default,
                        other => bail!("failover bench: profile {other:?} (fast, default)"),
                    }
                }
                "--out" => o.out_dir = PathBuf::from(value("--out")?),
                other => bail!(
                    "failover bench: unknown argument {other:?} (--smoke, --full, --nodes, --vips, --faults, --reps, --profile, --out)"
                ),
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

/// Figure: the longest time one of the victim's VIPs had two ARP answerers
/// (10 ms rounds of the ARP observer in which two MACs answered).
pub const TWO_ARP_ANSWERERS_MS: &str = "two_arp_answerers_ms";

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
            let size = Size {
                nodes,
                vips,
                profile: opts.profile,
            };
            run_size(opts, size, log, &mut records, &mut timeline, &mut skipped)?;
            // Partial results survive a later failure.
            report::write_json(&json, &records)?;
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
}

impl Size {
    fn prefix(&self) -> String {
        format!("{}-{}n-{}v", self.profile.name(), self.nodes, self.vips)
    }

    fn params(&self, fault: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("engine".to_string(), "corosync".to_string()),
            ("profile".to_string(), self.profile.name().to_string()),
            ("nodes".to_string(), self.nodes.to_string()),
            ("vips".to_string(), self.vips.to_string()),
            ("fault".to_string(), fault.to_string()),
        ])
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
    copts.log_level = "info".into();
    let mut c = AgentCluster::start(copts)?;
    let mut responders = Vec::new();
    for i in 0..c.len() {
        let name = c.name(i)?.to_string();
        responders.push(responder::Responder::start_in(c.ns(i)?, &name, PORT)?);
    }
    settle(&mut c, &[])?;

    // Idle: one agent, nothing happening.
    let pid = c.agent_pid(0).context("agent n1 has no pid")?;
    let idle = resources::measure_process(pid, opts.idle)?;
    writeln!(
        log,
        "   idle agent n1: {} KiB RSS, {:.3}% CPU over {:?}",
        idle.rss_kib, idle.cpu_percent, opts.idle
    )?;
    records.push(ScenarioRecord::new(
        &format!("{}-idle", size.prefix()),
        size.params("none"),
        &[],
        &[idle],
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
            writeln!(
                log,
                "   {scenario} #{rep}: victim {}, worst outage {} ms, lost {}, dup {:.1} ms, two ARP answerers {:.0} ms, failover {} (detection {}, agent {}), {:.0} probes/s",
                r.victim,
                res.worst_outage.map_or("-".into(), |o| format!("{:.1}", o.len_ns() as f64 / 1e6)),
                res.lost_probes,
                res.duplicate_owner_ns as f64 / 1e6,
                r.two_answerers_ms,
                fmt_opt_ms(res.phases.first().and_then(|p| p.failover_ns)),
                fmt_opt_ms(res.phases.first().and_then(|p| p.detection_ns)),
                fmt_opt_ms(res.phases.first().and_then(|p| p.agent_ns)),
                res.probe_rate_hz
            )?;
            if rep == 0 {
                let png = opts.out_dir.join(format!("failover-{scenario}.png"));
                draw(&r.run, &r.phases, &scenario, &png)?;
                if timeline.is_none() {
                    let main = opts.out_dir.join("failover-timeline.png");
                    std::fs::copy(&png, &main).with_context(|| {
                        format!("copying {} to {}", png.display(), main.display())
                    })?;
                    *timeline = Some(main);
                }
            }
            two_macs.push(r.two_answerers_ms);
            before.push(b as f64);
            at_end.push(e as f64);
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
        records.push(rec);
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

/// One row per scenario with the headline figures, `median/p95/max` (ms
/// unless said otherwise); `-` where a figure does not apply.
pub fn summary_markdown(records: &[ScenarioRecord]) -> String {
    let mut s = String::from(
        "| scenario | reps | probes/s | worst outage ms | lost probes | dup-owner ms | two ARP answerers ms | failover ms | detection ms | agent ms | RSS KiB (max) | CPU % |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in records {
        let f = |name: &str| -> String {
            r.figures.get(name).map_or("-".into(), |x| {
                format!("{}/{}/{}", short(x.median), short(x.p95), short(x.max))
            })
        };
        // The first phase's split (a partition's heal is its own phase).
        let phase = r.params.get("fault").cloned().unwrap_or_default();
        let pf = |name: &str| -> String {
            let key = format!("{name}[{phase}]");
            if r.figures.contains_key(&key) {
                f(&key)
            } else {
                f(name)
            }
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
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
            r.figures
                .get(analysis::figure::RSS_KIB)
                .map_or("-".into(), |x| format!("{:.0}", x.max)),
            f(analysis::figure::CPU_PERCENT),
        ));
        if phase == Fault::Partition.name() {
            s.push_str(&format!(
                "| {} (heal) | | | | | | | {} | {} | {} | | |\n",
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

struct Repetition {
    run: ProbeRun,
    phases: Vec<Phase>,
    usage: Vec<ResourceUsage>,
    victim: String,
    /// Longest time a victim's VIP had two ARP answerers (observer, ms).
    two_answerers_ms: f64,
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

/// Waits until every node but `except` is running, mature, and the VIPs are balanced among them.
fn settle(c: &mut AgentCluster, except: &[usize]) -> Result<Snapshot> {
    let nodes: Vec<usize> = (0..c.len()).filter(|i| !except.contains(i)).collect();
    let vips = c.vif_names().len();
    let n = nodes.len();
    c.wait_until(
        &format!("nodes {nodes:?} mature and balanced"),
        Duration::from_secs(40),
        |s| {
            let mature = nodes.iter().all(|&i| {
                // Each agent's own maturity: the member rows keep the flag
                // of the last state exchange.
                s.statuses
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|st| st.members.len() == n && st.mature)
            });
            mature && balanced(s, &nodes, vips)
        },
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
        Fault::Return => {}
    }
    if settle(c, &[]).is_err() {
        // E.g. an agent that gave up on a dead corosync: start it afresh.
        c.crash_agent(victim)?;
        c.start_agent(victim)?;
        settle(c, &[])?;
    }
    Ok(())
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
    let victim = *holders
        .get(rep % holders.len().max(1))
        .context("no node holds a VIP")?;
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

    if fault == Fault::Return {
        c.link_down(victim)?;
        c.crash_agent(victim)?;
        settle(c, &[victim])?;
    }

    let vips: Vec<Ipv4Addr> = (1..=c.vif_names().len()).map(AgentCluster::vip).collect();
    let mut cfg = prober::ProberConfig::new(vips.clone(), PORT, opts.before + opts.after);
    if vips.len() > 32 {
        cfg.senders = 2;
    }
    let sock: UdpSocket = c.client().in_thread(prober::bind_prober)??;
    let sampler = resources::ProcessSampler::start(
        c.agent_pid(other).context("sampled agent has no pid")?,
        Duration::from_millis(100),
    )?;
    let prober = std::thread::Builder::new()
        .name("prober".into())
        .spawn(move || prober::run(&sock, &cfg))
        .context("spawning the prober")?;
    // Who answers ARP for the victim's VIPs, every 10 ms across the fault.
    let victim_vips: Vec<Ipv4Addr> = snap
        .held_by(victim)
        .iter()
        .filter_map(|n| n.strip_prefix('v')?.parse().ok())
        .map(AgentCluster::vip)
        .collect();
    let observer = arp_observer::start(
        c.client().name(),
        "eth0",
        crate::testbed::cluster::CLIENT_ADDR,
        victim_vips,
        opts.before + opts.after,
    )?;

    std::thread::sleep(opts.before);
    let mut phases = vec![Phase {
        name: fault.name().to_string(),
        fault_ns: now_ns(),
        view_ns: None,
    }];
    let injected = inject(c, fault, victim, &vif, &other_name, &side_b);
    if injected.is_ok() && fault == Fault::Partition {
        std::thread::sleep(Duration::from_secs(2).min(opts.after / 2));
        phases.push(Phase {
            name: "heal".into(),
            fault_ns: now_ns(),
            view_ns: None,
        });
        let healed = c.heal(&side_b);
        if let Err(e) = healed {
            let _ = prober.join();
            let _ = arp_observer::join(observer);
            return Err(e);
        }
    }
    let run = prober
        .join()
        .map_err(|_| anyhow!("prober thread panicked"))?;
    let two_answerers_ms = arp_observer::join(observer)?.two_answerers_ms();
    let usage = sampler.stop()?;
    injected?;
    let run = run?;
    if fault != Fault::Partition {
        restore(c, fault, victim, &side_b, Some((&vif, &other_name)))?;
    } else {
        settle(c, &[])?;
    }
    for p in &mut phases {
        p.view_ns = first_view_after(c, p.fault_ns);
    }
    // A planned move or drain changes no view: its trigger is the command.
    if matches!(fault, Fault::Move | Fault::Drain) {
        for p in &mut phases {
            p.view_ns = None;
        }
    }
    Ok(Repetition {
        run,
        phases,
        usage: vec![usage],
        victim: victim_name,
        two_answerers_ms,
    })
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
        Fault::Return => {
            c.link_up(victim)?;
            c.start_agent(victim)
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

/// The earliest `new view` any agent logged at or after `after_ns` (monotonic ns).
pub fn first_view_after(c: &AgentCluster, after_ns: u64) -> Option<u64> {
    (0..c.len())
        .filter_map(|i| c.agent_log(i).ok())
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| view_times(&text))
        .filter(|&t| t >= after_ns)
        .min()
}

/// The `mono_ns` of every `new view` line of an agent log.
pub fn view_times(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("new view"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("mono_ns="))?
                .parse()
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_times_from_agent_log_lines() {
        let log = "2026-11-22T02:00:00Z  INFO wackamole::daemon: new view view=1:2 members=3 my_index=0 mono_ns=12345\n\
                   2026-11-22T02:00:01Z  INFO wackamole::daemon: acquired vif=v1 took_us=80\n\
                   2026-11-22T02:00:02Z  INFO wackamole::daemon: new view view=1:3 members=2 my_index=1 mono_ns=99\n\
                   garbage new view mono_ns=x\n";
        assert_eq!(view_times(log), vec![12345, 99]);
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
        assert_eq!(s.faults, vec![Fault::LinkCut]);
        Ok(())
    }

    #[test]
    fn every_fault_name_parses_back() -> Result<()> {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name())?, f);
        }
        Ok(())
    }
}

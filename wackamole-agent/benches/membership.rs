//! Membership failure detection: from a fault to the event at an agent.
//!
//! Three nodes in network namespaces on a bridge, one engine per node (see
//! `wackamole::testbed::corosync` and `wackamole::testbed::spread`). For each
//! fault on a victim node (rotating):
//! - `survivors`: fault -> the new view without the victim at each other agent;
//! - `victim`: fault -> the event at the victim's own agent (link down: its
//!   view of itself alone; SIGKILL: `Lost` (corosync: dispatch error; Spread:
//!   connection closed); SIGSTOP: `Lost` from the engine's watchdog (Spread:
//!   its probe to its own private group stays unread by the frozen daemon);
//! - `rejoin`: repair -> every agent back in a full view;
//! - `survivor Lost`: survivors that reported `Lost` before their new view
//!   (a watchdog deadline shorter than the ring re-formation); should be 0.
//!
//! An observer that sees nothing within its limit is counted in `no event`
//! (its samples hold only the events that came).
//!
//! Writes `target/bench/membership.json` and prints a markdown table.
//!
//! Usage: `cargo xtask bench membership -- [--reps N] [--profile fast|faster|default|all]
//! [--fault link|kill|stop|all] [--engine corosync|spread|all]`. Needs root,
//! corosync, and for the Spread rows a Spread 4.4 daemon binary named by
//! `WACKAMOLE_SPREAD_DAEMON` (without it those rows are skipped, with a note).
//! Spread profiles: `fast` = `conf/spread-lan-fast.conf`, `default` = Spread's
//! built-in timeouts; agents reconnect every 1 s after losing their daemon.
//! `--spread-conf FILE` runs the Spread rows on that file's `<Name>Timeout`
//! lines instead (a candidate profile).
//!
//! `--soak S` first watches the settled cluster for S seconds idle, then S
//! seconds with two busy-loop CPU hogs, and counts every view and `Lost`
//! each agent got (a stable profile: none), before the faults.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::time::{Duration, Instant};
use wackamole::membership::corosync::CorosyncOptions;
use wackamole::membership::spread::SpreadOptions;
use wackamole::membership::MembershipEvent;
use wackamole::testbed::corosync::{converge, CorosyncCluster, EventTap, Profile};
use wackamole::testbed::spread::{daemon_from_env, SpreadCluster, SpreadProfile};

const NODES: usize = 3;
/// Limit for every awaited event (Spread merges a healed partition only on
/// its 30 s lookup probe when idle).
const WAIT: Duration = Duration::from_secs(40);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    LinkDown,
    Kill,
    Stop,
}

impl Fault {
    /// e.g. "corosync SIGKILL" for `daemon` "corosync".
    fn name(self, daemon: &str) -> String {
        match self {
            Fault::LinkDown => "link down".to_string(),
            Fault::Kill => format!("{daemon} SIGKILL"),
            Fault::Stop => format!("{daemon} SIGSTOP"),
        }
    }
}

/// A cluster of `NODES` agents on which faults can be injected.
trait Bed {
    /// Engine and profile, e.g. "corosync fast".
    fn label(&self) -> String;
    /// The daemon's name in fault names ("corosync", "spread").
    fn daemon(&self) -> &'static str;
    fn taps(&self) -> &[EventTap];
    fn inject(&mut self, fault: Fault, victim: usize) -> Result<()>;
    fn nodes(&self) -> usize {
        NODES
    }
    fn repair(&mut self, fault: Fault, victim: usize) -> Result<()>;
    /// What the victim's agent is expected to report.
    fn victim_expect(&self, fault: Fault) -> Expect {
        match fault {
            Fault::LinkDown => Expect::SelfView,
            Fault::Kill => Expect::Lost("victim: Lost (dispatch)"),
            Fault::Stop => Expect::Lost("victim: Lost (watchdog)"),
        }
    }
}

/// The event awaited at the victim's agent.
#[derive(Clone, Copy)]
enum Expect {
    /// A view of itself alone.
    SelfView,
    /// `Lost` (observer label).
    Lost(&'static str),
}

impl Expect {
    fn observer(self) -> &'static str {
        match self {
            Expect::SelfView => "victim: view of itself",
            Expect::Lost(o) => o,
        }
    }
    fn limit(self) -> Duration {
        WAIT
    }
    fn matches(self, e: &MembershipEvent) -> bool {
        match self {
            Expect::SelfView => matches!(e, MembershipEvent::View(v) if v.members.len() == 1),
            Expect::Lost(_) => matches!(e, MembershipEvent::Lost { .. }),
        }
    }
}

struct CorosyncBed {
    cluster: CorosyncCluster,
    taps: Vec<EventTap>,
}

impl CorosyncBed {
    fn start(profile: Profile) -> Result<Self> {
        let cluster = CorosyncCluster::start(NODES, profile)?;
        let taps = cluster
            .nodes
            .iter()
            .map(|n| n.tap_engine(CorosyncOptions::new("wackamole-bench")))
            .collect::<Result<Vec<_>>>()?;
        Ok(CorosyncBed { cluster, taps })
    }
}

impl Bed for CorosyncBed {
    fn label(&self) -> String {
        format!("corosync {}", self.cluster.profile().name())
    }
    fn daemon(&self) -> &'static str {
        "corosync"
    }
    fn taps(&self) -> &[EventTap] {
        &self.taps
    }
    fn inject(&mut self, fault: Fault, victim: usize) -> Result<()> {
        match fault {
            Fault::LinkDown => self.cluster.link_down(victim),
            Fault::Kill => self.cluster.kill_corosync(victim),
            Fault::Stop => self.cluster.stop_corosync(victim),
        }
    }
    fn repair(&mut self, fault: Fault, victim: usize) -> Result<()> {
        match fault {
            Fault::LinkDown => self.cluster.link_up(victim),
            Fault::Kill => self.cluster.start_corosync(victim),
            Fault::Stop => self.cluster.cont_corosync(victim),
        }
    }
}

/// Three Spread daemons (see `wackamole::testbed::spread`), one engine each.
struct SpreadBed {
    // Taps before runtimes: the taps' threads end when the engines do.
    taps: Vec<EventTap>,
    _runtimes: Vec<tokio::runtime::Runtime>,
    cluster: SpreadCluster,
    /// On `--spread-conf` timeouts, not the profile's.
    custom: bool,
}

impl SpreadBed {
    /// `timeouts`: `<Name>Timeout` lines replacing the profile's.
    fn start(
        daemon: &std::path::Path,
        profile: SpreadProfile,
        timeouts: Option<&str>,
    ) -> Result<Self> {
        let cluster = SpreadCluster::start_with(daemon, NODES, profile, timeouts)?;
        let (mut taps, mut runtimes) = (Vec::new(), Vec::new());
        for i in 0..NODES {
            let mut opts = SpreadOptions::new(&cluster.endpoint(i)?, &format!("b{i}"), "wkbench")
                .with_watchdog();
            opts.retry_interval = Duration::from_secs(1);
            let (handle, rt) = cluster.start_engine(i, opts)?;
            taps.push(EventTap::new(handle)?);
            runtimes.push(rt);
        }
        Ok(SpreadBed {
            taps,
            _runtimes: runtimes,
            cluster,
            custom: timeouts.is_some(),
        })
    }
}

impl Bed for SpreadBed {
    fn label(&self) -> String {
        match self.custom {
            true => "spread --spread-conf".to_string(),
            false => format!("spread {}", self.cluster.profile().name()),
        }
    }
    fn daemon(&self) -> &'static str {
        "spread"
    }
    fn taps(&self) -> &[EventTap] {
        &self.taps
    }
    fn inject(&mut self, fault: Fault, victim: usize) -> Result<()> {
        match fault {
            Fault::LinkDown => self.cluster.link_down(victim),
            Fault::Kill => self.cluster.kill_daemon(victim),
            Fault::Stop => self.cluster.signal_daemon(victim, libc::SIGSTOP),
        }
    }
    fn repair(&mut self, fault: Fault, victim: usize) -> Result<()> {
        match fault {
            Fault::LinkDown => self.cluster.link_up(victim),
            Fault::Kill => self.cluster.start_daemon(victim),
            Fault::Stop => self.cluster.signal_daemon(victim, libc::SIGCONT),
        }
    }
    fn victim_expect(&self, fault: Fault) -> Expect {
        match fault {
            Fault::LinkDown => Expect::SelfView,
            Fault::Kill => Expect::Lost("victim: Lost (connection closed)"),
            Fault::Stop => Expect::Lost("victim: Lost (watchdog)"),
        }
    }
}

#[derive(Serialize)]
struct Row {
    engine: String,
    fault: String,
    observer: &'static str,
    samples_ms: Vec<f64>,
    /// Reps in which this observer saw no such event within `limit_ms`.
    no_event: usize,
    limit_ms: f64,
    /// Survivors that reported `Lost` before their new view (should be 0).
    spurious_lost: usize,
    min_ms: f64,
    median_ms: f64,
    max_ms: f64,
}

struct Observed {
    samples: Vec<f64>,
    no_event: usize,
    limit: Duration,
}

impl Observed {
    fn new(limit: Duration) -> Self {
        Observed {
            samples: Vec::new(),
            no_event: 0,
            limit,
        }
    }
    /// Records the time from `t0` to the event, or its absence.
    fn record(&mut self, t0: Instant, event: Option<Instant>) {
        match event {
            Some(t) => self.samples.push(ms(t0, t)),
            None => self.no_event += 1,
        }
    }
    /// The latest sample as text, for progress lines.
    fn last(&self, rep_samples: usize) -> String {
        let tail = &self.samples[self.samples.len().saturating_sub(rep_samples)..];
        format!("{tail:.0?}")
    }
}

fn row(
    engine: &str,
    fault: String,
    observer: &'static str,
    observed: Observed,
    spurious_lost: usize,
) -> Row {
    let Observed {
        mut samples,
        no_event,
        limit,
    } = observed;
    samples.sort_by(f64::total_cmp);
    let pick = |i: usize| samples.get(i).copied().unwrap_or(f64::NAN);
    Row {
        engine: engine.to_string(),
        fault,
        observer,
        no_event,
        limit_ms: limit.as_secs_f64() * 1000.0,
        spurious_lost,
        min_ms: pick(0),
        median_ms: pick(samples.len() / 2),
        max_ms: pick(samples.len().saturating_sub(1)),
        samples_ms: samples,
    }
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// Waits until every agent holds the same full view (stable for 300 ms);
/// returns when the last of those views arrived.
fn settle(bed: &dyn Bed) -> Result<Instant> {
    Ok(converge(bed.taps(), NODES, WAIT)?.0)
}

fn measure(bed: &mut dyn Bed, fault: Fault, reps: usize, rows: &mut Vec<Row>) -> Result<()> {
    let label = bed.label();
    let fault_name = fault.name(bed.daemon());
    let expect = bed.victim_expect(fault);
    let mut survivors = Observed::new(WAIT);
    let mut victims = Observed::new(expect.limit());
    let mut rejoins = Observed::new(WAIT);
    let mut spurious = 0;
    for rep in 0..reps {
        let victim = rep % NODES;
        let t0 = Instant::now();
        bed.inject(fault, victim)?;
        let victim_event = bed
            .taps()
            .get(victim)
            .context("victim tap")?
            .wait_for(expect.limit(), |e| expect.matches(e))
            .inspect_err(|e| eprintln!("{label}, {fault_name}, rep {rep}: {e:#}"))
            .ok()
            .map(|r| r.0);
        victims.record(t0, victim_event);
        for (i, tap) in bed.taps().iter().enumerate() {
            if i != victim {
                let seen = tap.wait_for(
                    WAIT,
                    |e| matches!(e, MembershipEvent::View(v) if v.members.len() == NODES - 1),
                );
                match seen {
                    Ok((t, _, skipped)) => {
                        if skipped
                            .iter()
                            .any(|e| matches!(e, MembershipEvent::Lost { .. }))
                        {
                            spurious += 1;
                        }
                        survivors.record(t0, Some(t));
                    }
                    Err(e) => {
                        eprintln!("{label}, {fault_name}, rep {rep}, survivor {i}: {e:#}");
                        survivors.record(t0, None);
                    }
                }
            }
        }
        let t1 = Instant::now();
        bed.repair(fault, victim)?;
        rejoins.record(t1, Some(settle(bed)?));
        eprintln!(
            "{label}, {fault_name}, rep {rep}: victim {} ms, survivors {} ms, rejoin {} ms",
            victims.last(1),
            survivors.last(NODES - 1),
            rejoins.last(1),
        );
    }
    rows.push(row(
        &label,
        fault_name.clone(),
        "survivors: new view",
        survivors,
        spurious,
    ));
    rows.push(row(
        &label,
        fault_name.clone(),
        expect.observer(),
        victims,
        0,
    ));
    rows.push(row(
        &label,
        fault_name,
        "all: full view after repair",
        rejoins,
        0,
    ));
    Ok(())
}

/// What a soak saw: views and `Lost` events per agent, idle and loaded.
#[derive(Serialize)]
struct SoakRow {
    engine: String,
    load: &'static str,
    seconds: u64,
    views: Vec<usize>,
    lost: Vec<usize>,
    /// Whether any agent's last event was not a full view (still split).
    #[serde(skip)]
    split_at_end: bool,
}

/// Two busy-loop shells, killed when dropped.
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn start() -> Result<Self> {
        let hog = || {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .context("starting a CPU hog")
        };
        Ok(Hogs(vec![hog()?, hog()?]))
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Counts each agent's views and `Lost` events for `seconds`.
fn watch(bed: &dyn Bed, seconds: u64, load: &'static str) -> SoakRow {
    let n = bed.nodes();
    let (mut views, mut lost) = (vec![0; n], vec![0; n]);
    let mut whole = vec![true; n];
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        for (i, tap) in bed.taps().iter().enumerate() {
            while let Some((_, e)) = tap.next(Duration::from_millis(5)) {
                match e {
                    MembershipEvent::View(v) => {
                        views[i] += 1;
                        whole[i] = v.members.len() == n;
                    }
                    MembershipEvent::Lost { .. } => {
                        lost[i] += 1;
                        whole[i] = false;
                    }
                    _ => {}
                }
            }
        }
    }
    SoakRow {
        engine: bed.label(),
        load,
        seconds,
        views,
        lost,
        split_at_end: whole.contains(&false),
    }
}

/// `seconds` idle, then `seconds` with two CPU hogs.
fn soak(bed: &dyn Bed, seconds: u64, rows: &mut Vec<SoakRow>) -> Result<()> {
    let idle = watch(bed, seconds, "idle");
    eprintln!(
        "{} soak, idle {seconds} s: views {:?}, Lost {:?}",
        idle.engine, idle.views, idle.lost
    );
    let hogs = Hogs::start()?;
    let loaded = watch(bed, seconds, "two CPU hogs");
    drop(hogs);
    eprintln!(
        "{} soak, two CPU hogs {seconds} s: views {:?}, Lost {:?}",
        loaded.engine, loaded.views, loaded.lost
    );
    let quiet_after = |r: &SoakRow| r.views.iter().chain(&r.lost).all(|n| *n == 0);
    let split = loaded.split_at_end || (idle.split_at_end && quiet_after(&loaded));
    rows.extend([idle, loaded]);
    // A split still open at the end heals before the faults are measured
    // (a healed or stable cluster delivers no view to wait for).
    if split {
        settle(bed)?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    Corosync,
    Spread,
}

struct Args {
    reps: usize,
    profiles: Vec<Profile>,
    faults: Vec<Fault>,
    engines: Vec<Engine>,
    soak: Option<u64>,
    spread_timeouts: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        reps: 3,
        profiles: vec![Profile::Fast, Profile::Default],
        faults: vec![Fault::LinkDown, Fault::Kill, Fault::Stop],
        engines: vec![Engine::Corosync, Engine::Spread],
        soak: None,
        spread_timeouts: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reps" => {
                let v = it.next().context("--reps needs a number")?;
                args.reps = v.parse().with_context(|| format!("--reps {v:?}"))?;
            }
            "--profile" => {
                args.profiles = match it.next().as_deref() {
                    Some("fast") => vec![Profile::Fast],
                    Some("faster") => vec![Profile::Faster],
                    Some("default") => vec![Profile::Default],
                    Some("all") => vec![Profile::Fast, Profile::Faster, Profile::Default],
                    other => bail!("--profile fast|faster|default|all, not {other:?}"),
                }
            }
            "--fault" => {
                args.faults = match it.next().as_deref() {
                    Some("link") => vec![Fault::LinkDown],
                    Some("kill") => vec![Fault::Kill],
                    Some("stop") => vec![Fault::Stop],
                    Some("all") => vec![Fault::LinkDown, Fault::Kill, Fault::Stop],
                    other => bail!("--fault link|kill|stop|all, not {other:?}"),
                }
            }
            "--engine" => {
                args.engines = match it.next().as_deref() {
                    Some("corosync") => vec![Engine::Corosync],
                    Some("spread") => vec![Engine::Spread],
                    Some("all") => vec![Engine::Corosync, Engine::Spread],
                    other => bail!("--engine corosync|spread|all, not {other:?}"),
                }
            }
            "--soak" => {
                let v = it.next().context("--soak needs seconds")?;
                let secs: u64 = v.parse().with_context(|| format!("--soak {v:?}"))?;
                if !(1..=3600).contains(&secs) {
                    bail!("--soak {secs}: 1..=3600 seconds");
                }
                args.soak = Some(secs);
            }
            "--spread-conf" => {
                let path = it.next().context("--spread-conf needs a file")?;
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("--spread-conf {path}"))?;
                let lines = wackamole::testbed::spread::timeout_lines(&text);
                if lines.trim().is_empty() {
                    bail!("--spread-conf {path}: no <Name>Timeout lines");
                }
                args.spread_timeouts = Some(lines);
            }
            // cargo bench passes --bench to harness = false targets.
            _ => {}
        }
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    Ok(args)
}

fn main() -> Result<()> {
    if !wackamole::testbed::is_root() {
        eprintln!("membership benchmark skipped: needs root (namespaces, daemons)");
        return Ok(());
    }
    let args = parse_args()?;
    // RUST_LOG=wackamole=info shows the engines' view of the faults.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut rows = Vec::new();
    let mut soaks = Vec::new();
    let mut notes = Vec::new();
    if args.engines.contains(&Engine::Corosync) {
        for &profile in &args.profiles {
            let mut bed = CorosyncBed::start(profile)?;
            settle(&bed)?;
            if let Some(secs) = args.soak {
                soak(&bed, secs, &mut soaks)?;
            }
            for &fault in &args.faults {
                measure(&mut bed, fault, args.reps, &mut rows)?;
            }
        }
    }
    if args.engines.contains(&Engine::Spread) {
        match daemon_from_env() {
            Err(why) => {
                let note = format!("Spread rows skipped: {why}");
                eprintln!("{note}");
                notes.push(note);
            }
            Ok(daemon) => {
                for &profile in &args.profiles {
                    let spread_profile = match profile {
                        Profile::Fast => SpreadProfile::LanFast,
                        Profile::Default => SpreadProfile::Default,
                        // Spread's faster profile is `--spread-conf
                        // conf/spread-lan-faster.conf` (its agents need
                        // their own floor).
                        Profile::Faster => continue,
                    };
                    let mut bed =
                        SpreadBed::start(&daemon, spread_profile, args.spread_timeouts.as_deref())?;
                    settle(&bed).with_context(|| bed.cluster.log_tails())?;
                    if let Some(secs) = args.soak {
                        soak(&bed, secs, &mut soaks).with_context(|| bed.cluster.log_tails())?;
                    }
                    for &fault in &args.faults {
                        measure(&mut bed, fault, args.reps, &mut rows)
                            .with_context(|| bed.cluster.log_tails())?;
                    }
                }
            }
        }
    }

    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = manifest.parent().unwrap_or(manifest).join("target/bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join("membership.json");
    std::fs::write(&out, serde_json::to_string_pretty(&rows)?)
        .with_context(|| format!("writing {}", out.display()))?;

    println!(
        "| engine | fault | observer | n | min ms | median ms | max ms | no event (limit) | survivor Lost |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        // No samples: no min/median/max (NaN in memory, null in the JSON).
        let cell = |v: f64| {
            if v.is_nan() {
                "-".to_string()
            } else {
                format!("{v:.0}")
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} ({:.0} s) | {} |",
            r.engine,
            r.fault,
            r.observer,
            r.samples_ms.len(),
            cell(r.min_ms),
            cell(r.median_ms),
            cell(r.max_ms),
            r.no_event,
            r.limit_ms / 1000.0,
            r.spurious_lost
        );
    }
    if !soaks.is_empty() {
        println!("\n| engine | soak | seconds | views per agent | Lost per agent |");
        println!("|---|---|---|---|---|");
        for r in &soaks {
            println!(
                "| {} | {} | {} | {:?} | {:?} |",
                r.engine, r.load, r.seconds, r.views, r.lost
            );
        }
        let path = out_dir.join("membership-soak.json");
        std::fs::write(&path, serde_json::to_string_pretty(&soaks)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for n in &notes {
        println!("\n{n}");
    }
    println!("\n(written to {})", out.display());
    Ok(())
}

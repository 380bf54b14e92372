//! Membership failure detection: from a fault to the event at an agent.
//!
//! Three nodes in network namespaces, one engine per node (see
//! `wackamole::testbed::corosync`). For each fault on a victim node (rotating):
//! - `survivors`: fault -> the new view without the victim at each other agent;
//! - `victim`: fault -> the event at the victim's own agent (link down: its
//!   view of itself alone; SIGKILL: `Lost` from the dispatch error; SIGSTOP:
//!   `Lost` from the watchdog);
//! - `rejoin`: repair -> every agent back in a full view;
//! - `survivor Lost`: survivors that reported `Lost` before their new view
//!   (a watchdog deadline shorter than the ring re-formation); should be 0.
//!
//! Writes `target/bench/membership.json` and prints a markdown table.
//!
//! Usage: `cargo xtask bench membership -- [--reps N] [--profile fast|default|all]
//! [--fault link|kill|stop|all]`. Needs root and corosync.
//!
//! Hook for other engines (Spread): implement [`Bed`] for its test bed and
//! add it to `beds()`; rows and output are engine-agnostic.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::time::{Duration, Instant};
use wackamole::membership::corosync::CorosyncOptions;
use wackamole::membership::MembershipEvent;
use wackamole::testbed::corosync::{converge, CorosyncCluster, EventTap, Profile};

const NODES: usize = 3;
const WAIT: Duration = Duration::from_secs(40);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    LinkDown,
    Kill,
    Stop,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::LinkDown => "link down",
            Fault::Kill => "corosync SIGKILL",
            Fault::Stop => "corosync SIGSTOP",
        }
    }
}

/// A cluster of `NODES` agents on which faults can be injected.
trait Bed {
    /// Engine and profile, e.g. "corosync fast".
    fn label(&self) -> String;
    fn taps(&self) -> &[EventTap];
    fn inject(&mut self, fault: Fault, victim: usize) -> Result<()>;
    fn repair(&mut self, fault: Fault, victim: usize) -> Result<()>;
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

#[derive(Serialize)]
struct Row {
    engine: String,
    fault: &'static str,
    observer: &'static str,
    samples_ms: Vec<f64>,
    /// Survivors that reported `Lost` before their new view (should be 0).
    spurious_lost: usize,
    min_ms: f64,
    median_ms: f64,
    max_ms: f64,
}

fn row(
    engine: &str,
    fault: Fault,
    observer: &'static str,
    mut samples: Vec<f64>,
    spurious_lost: usize,
) -> Row {
    samples.sort_by(f64::total_cmp);
    let pick = |i: usize| samples.get(i).copied().unwrap_or(f64::NAN);
    Row {
        engine: engine.to_string(),
        fault: fault.name(),
        observer,
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
    let (mut survivors, mut victims, mut rejoins) = (Vec::new(), Vec::new(), Vec::new());
    let mut spurious = 0;
    for rep in 0..reps {
        let victim = rep % NODES;
        let t0 = Instant::now();
        bed.inject(fault, victim)?;
        let victim_event = {
            let tap = bed.taps().get(victim).context("victim tap")?;
            match fault {
                Fault::LinkDown => tap.wait_view(1, WAIT)?.0,
                Fault::Kill | Fault::Stop => {
                    tap.wait_for(WAIT, |e| matches!(e, MembershipEvent::Lost { .. }))?
                        .0
                }
            }
        };
        victims.push(ms(t0, victim_event));
        for (i, tap) in bed.taps().iter().enumerate() {
            if i != victim {
                let (t, _, skipped) = tap.wait_for(
                    WAIT,
                    |e| matches!(e, MembershipEvent::View(v) if v.members.len() == NODES - 1),
                )?;
                if skipped
                    .iter()
                    .any(|e| matches!(e, MembershipEvent::Lost { .. }))
                {
                    spurious += 1;
                }
                survivors.push(ms(t0, t));
            }
        }
        let t1 = Instant::now();
        bed.repair(fault, victim)?;
        rejoins.push(ms(t1, settle(bed)?));
        eprintln!(
            "{label}, {}, rep {rep}: victim {:.0} ms, survivors {:?} ms, rejoin {:.0} ms",
            fault.name(),
            victims.last().copied().unwrap_or_default(),
            &survivors[survivors.len().saturating_sub(NODES - 1)..],
            rejoins.last().copied().unwrap_or_default()
        );
    }
    rows.push(row(
        &label,
        fault,
        "survivors: new view",
        survivors,
        spurious,
    ));
    let victim_obs = match fault {
        Fault::LinkDown => "victim: view of itself",
        Fault::Kill => "victim: Lost (dispatch)",
        Fault::Stop => "victim: Lost (watchdog)",
    };
    rows.push(row(&label, fault, victim_obs, victims, 0));
    rows.push(row(
        &label,
        fault,
        "all: full view after repair",
        rejoins,
        0,
    ));
    Ok(())
}

struct Args {
    reps: usize,
    profiles: Vec<Profile>,
    faults: Vec<Fault>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        reps: 3,
        profiles: vec![Profile::Fast, Profile::Default],
        faults: vec![Fault::LinkDown, Fault::Kill, Fault::Stop],
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
                    Some("default") => vec![Profile::Default],
                    Some("all") => vec![Profile::Fast, Profile::Default],
                    other => bail!("--profile fast|default|all, not {other:?}"),
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
        eprintln!("membership benchmark skipped: needs root (namespaces, corosync)");
        return Ok(());
    }
    let args = parse_args()?;
    // RUST_LOG=wackamole=info shows the engines' view of the faults.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut rows = Vec::new();
    for &profile in &args.profiles {
        let mut bed = CorosyncBed::start(profile)?;
        settle(&bed)?;
        for &fault in &args.faults {
            measure(&mut bed, fault, args.reps, &mut rows)?;
        }
    }
    // Hook: Spread beds are measured here with the same `measure`.

    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = manifest.parent().unwrap_or(manifest).join("target/bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join("membership.json");
    std::fs::write(&out, serde_json::to_string_pretty(&rows)?)
        .with_context(|| format!("writing {}", out.display()))?;

    println!("| engine | fault | observer | n | min ms | median ms | max ms | survivor Lost |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} |",
            r.engine,
            r.fault,
            r.observer,
            r.samples_ms.len(),
            r.min_ms,
            r.median_ms,
            r.max_ms,
            r.spurious_lost
        );
    }
    println!("\n(written to {})", out.display());
    Ok(())
}

//! `wackamole-lab demo` (`cargo xtask demo`): a simulated LAN of real agents
//! on a fast-profile Corosync cluster, with a client probing every VIP, and a
//! narrated sequence: the nodes mature and balance, a node crashes (its cable
//! is cut) and the client sees the outage (and one of its VIFs' IPv6
//! address, every VIF being dual-stack, answered by another node), the node returns and the VIPs
//! rebalance, a node is drained and undrained. Every step after the first
//! runs under the client's probes, and the demo ends with the lost probes of
//! each step ([`LOST_PER_STEP`]): a crash loses what the failover takes;
//! drain, undrain and the return should lose none.
//!
//! Everything lives in namespaces built by [`AgentCluster`] and is torn down
//! by its `Drop` (agents, corosync, pinned objects, namespaces, /dev/shm). A
//! SIGINT sets a flag that every step checks ([`install_sigint_handler`]), so
//! Ctrl-C cleans up, then the binary exits.

use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::analysis::{self, Phase, ProbeRun, RunResult};
use super::failover_bench::{after_window, answered_before_and_end, Fault};
use super::{now_ns, prober, responder};
use crate::testbed::cluster::{AgentCluster, AgentClusterOptions, Snapshot, VipFamily};

/// UDP port of the demo's responders.
const PORT: u16 = 7399;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT (and SIGTERM) set a flag instead of killing the process; the
/// demo checks it between steps and unwinds through its cleanup guards.
pub fn install_sigint_handler() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let old = unsafe { libc::signal(sig, on_sigint as *const () as libc::sighandler_t) };
        if old == libc::SIG_ERR {
            bail!("cannot install a handler for signal {sig}");
        }
    }
    Ok(())
}

/// True once SIGINT/SIGTERM arrived (after [`install_sigint_handler`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The error a step returns when interrupted.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

fn check() -> Result<()> {
    if interrupted() {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `wackamole` binary.
    pub binary: PathBuf,
    /// Nodes (2..=16).
    pub nodes: usize,
    /// VIPs (1..=99).
    pub vips: usize,
    /// Short variant (CI): maturity, one crash, the return; no drain.
    pub quick: bool,
}

/// What the client saw (for the smoke test).
#[derive(Debug, Clone, Default)]
pub struct DemoOutcome {
    /// VIPs in the cluster.
    pub vips: usize,
    /// VIPs answered before the crash.
    pub answered_before_crash: usize,
    /// VIPs answered at the end of the crash step (by the survivors).
    pub answered_after_crash: usize,
    /// VIPs answered at the end of the demo.
    pub answered_at_end: usize,
    /// The worst client-visible outage of the crash, ms.
    pub crash_outage_ms: Option<f64>,
    /// Probes lost during the drain (None if not run).
    pub drain_lost_probes: Option<u64>,
    /// Probes lost in each probed step, in order (also printed as the
    /// [`LOST_PER_STEP`] line).
    pub lost_per_step: Vec<(String, u64)>,
}

/// The start of the demo's last report line: `lost probes per step: traffic=0 crash=131 ...`.
pub const LOST_PER_STEP: &str = "lost probes per step:";

/// The [`LOST_PER_STEP`] line for `steps`.
pub fn format_lost_per_step(steps: &[(String, u64)]) -> String {
    let mut s = LOST_PER_STEP.to_string();
    for (step, lost) in steps {
        s.push_str(&format!(" {step}={lost}"));
    }
    s
}

/// Parses a [`format_lost_per_step`] line (leading spaces allowed); None if
/// `line` is not one or a count is not a number.
pub fn parse_lost_per_step(line: &str) -> Option<Vec<(String, u64)>> {
    let rest = line.trim().strip_prefix(LOST_PER_STEP)?;
    rest.split_whitespace()
        .map(|w| {
            let (step, lost) = w.split_once('=')?;
            if step.is_empty() {
                return None;
            }
            Some((step.to_string(), lost.parse().ok()?))
        })
        .collect()
}

fn say(out: &mut impl Write, text: impl AsRef<str>) -> Result<()> {
    writeln!(out, "{}", text.as_ref())?;
    out.flush()?;
    Ok(())
}

/// Runs the demo, narrating on `out`.
pub fn run(opts: &DemoOptions, out: &mut impl Write) -> Result<DemoOutcome> {
    if !(2..=16).contains(&opts.nodes) {
        bail!("demo: --nodes {} (2..=16)", opts.nodes);
    }
    if !(1..=99).contains(&opts.vips) {
        bail!("demo: --vips {} (1..=99)", opts.vips);
    }
    let started = Instant::now();
    let mut outcome = DemoOutcome {
        vips: opts.vips,
        ..Default::default()
    };
    say(out, "== wackamole cluster demo ==")?;
    say(
        out,
        format!(
            "Building a simulated LAN: a switch namespace with a bridge, {} node namespaces \
             (10.0.0.1..{}) each running corosync (fast profile: 50 ms token) and a wackamole agent, \
             and a client (10.0.0.200). {} VIPs: 10.0.0.101..{}, each dual-stack (also fd77::1:<k>).",
            opts.nodes,
            opts.nodes,
            opts.vips,
            100 + opts.vips
        ),
    )?;
    let mut copts = AgentClusterOptions::new(&opts.binary);
    copts.nodes = opts.nodes;
    copts.vifs = opts.vips;
    copts.log_level = "info".into();
    copts.mature = Duration::from_secs(1);
    // Every VIF also has an IPv6 address, to show one failing over (step 3).
    copts.family = VipFamily::Dual;
    let c = AgentCluster::start(copts)?;
    check()?;
    let mut responders = Vec::new();
    for i in 0..c.len() {
        let name = c.name(i)?.to_string();
        responders.push(responder::Responder::start_in_families(
            c.ns(i)?,
            &name,
            PORT,
            1,
            true,
            true,
        )?);
    }
    say(
        out,
        format!(
            "Agents up ({:.1} s). Every node also runs a UDP responder that answers probes with its name.",
            started.elapsed().as_secs_f64()
        ),
    )?;

    // 1. Maturity and balance.
    say(
        out,
        "\n1. The nodes join, mature (1 s) and balance the VIPs. VIP table as it changes:",
    )?;
    let all: Vec<usize> = (0..c.len()).collect();
    watch_table(&c, out, &all, None, Duration::from_secs(30))?;

    // 2. Live traffic.
    let seg = if opts.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(2)
    };
    say(
        out,
        format!(
            "\n2. The client probes every VIP each millisecond for {} s:",
            seg.as_secs()
        ),
    )?;
    let (run, res) = probe(&c, seg, |_| Ok(Vec::new()))?;
    traffic_summary(out, &run, &res)?;
    outcome
        .lost_per_step
        .push(("traffic".into(), res.lost_probes));
    check()?;

    // 3. Crash.
    let snap = c.snapshot();
    let victim = (0..c.len())
        .find(|&i| !snap.held_by(i).is_empty())
        .context("no node holds a VIP")?;
    let vname = c.name(victim)?.to_string();
    say(
        out,
        format!(
            "\n3. Crash: {vname}'s cable is cut while the client keeps probing (it held {}).",
            snap.held_by(victim).join(", ")
        ),
    )?;
    // One of its VIFs' IPv6 address, probed on its own before and after.
    let v6k: Option<usize> = snap
        .held_by(victim)
        .first()
        .and_then(|n| n.strip_prefix('v')?.parse().ok());
    let v6_before = match v6k {
        Some(k) => Some((k, ipv6_answerers(&c, k)?)),
        None => None,
    };
    let crash_window = if opts.quick {
        Duration::from_millis(2500)
    } else {
        Duration::from_secs(4)
    };
    let (run, res) = probe(&c, crash_window, |c| {
        std::thread::sleep(Duration::from_secs(1));
        let at = now_ns();
        c.link_down(victim)?;
        Ok(vec![Phase {
            name: format!("crash-{vname}"),
            fault_ns: at,
            view_ns: None,
        }])
    })?;
    let after = answered_before_and_end(&run, &[]).1;
    let fault_ns = res.phases.first().map(|p| p.fault_ns);
    let pre = fault_ns.map(|f| {
        answered_before_and_end(
            &run,
            &[Phase {
                name: String::new(),
                fault_ns: f,
                view_ns: None,
            }],
        )
        .0
    });
    outcome.answered_before_crash = pre.unwrap_or(0);
    outcome.answered_after_crash = after;
    outcome.crash_outage_ms = res.worst_outage.map(|o| o.len_ns() as f64 / 1e6);
    outcome
        .lost_per_step
        .push(("crash".into(), res.lost_probes));
    let worst = res.worst_outage.map_or("none".to_string(), |o| {
        format!(
            "{:.1} ms on {} ({} probes lost)",
            o.len_ns() as f64 / 1e6,
            run.vips
                .get(o.vip as usize)
                .map_or("?".into(), |v| v.to_string()),
            o.lost
        )
    });
    say(
        out,
        format!(
            "   client-visible outage: worst {worst}; {} probes lost in all; {} of {} VIPs answered before the cut, {after} at the end.",
            res.lost_probes,
            outcome.answered_before_crash,
            opts.vips
        ),
    )?;
    if let Some((k, before)) = v6_before {
        let after = ipv6_answerers(&c, k)?;
        say(
            out,
            format!(
                "   IPv6 VIP {} (v{k}): answered by {} before the cut, by {} after.",
                AgentCluster::vip6(k),
                names_or_none(&before),
                names_or_none(&after)
            ),
        )?;
    }
    if let Some(p) = res.phases.first() {
        say(
            out,
            format!(
                "   first answer from the new owners {} after the cut ({} VIPs moved).",
                fmt_ms(p.failover_ns),
                p.moved_vips
            ),
        )?;
    }
    let others: Vec<usize> = (0..c.len()).filter(|&i| i != victim).collect();
    say(out, "   VIP table of the survivors:")?;
    watch_table(&c, out, &others, Some(&others), Duration::from_secs(20))?;
    check()?;

    // 4. Return.
    say(
        out,
        format!("\n4. {vname}'s cable goes back in: it rejoins, matures and takes its share back."),
    )?;
    // Long enough for the whole rebalance: it matures, then takes its share.
    let rebalance_window = |fault: Fault, base: Duration| {
        let o = c.options();
        Duration::from_millis(500)
            + after_window(
                fault,
                base,
                o.mature,
                o.balance_interval,
                opts.vips,
                opts.nodes,
                1,
            )
    };
    let ret_window = rebalance_window(
        Fault::ReturnCable,
        if opts.quick {
            Duration::from_millis(2000)
        } else {
            Duration::from_millis(3500)
        },
    );
    let (run, res) = probe(&c, ret_window, |c| {
        std::thread::sleep(Duration::from_millis(500));
        let at = now_ns();
        c.link_up(victim)?;
        Ok(vec![Phase {
            name: format!("return-{vname}"),
            fault_ns: at,
            view_ns: None,
        }])
    })?;
    say(
        out,
        format!(
            "   while it returned: {} probes lost, worst gap {}, duplicate answers {:.1} ms.",
            res.lost_probes,
            res.worst_outage.map_or("none".into(), |o| format!(
                "{:.1} ms",
                o.len_ns() as f64 / 1e6
            )),
            res.duplicate_owner_ns as f64 / 1e6
        ),
    )?;
    outcome.answered_at_end = answered_before_and_end(&run, &[]).1;
    outcome
        .lost_per_step
        .push(("return".into(), res.lost_probes));
    watch_table(&c, out, &all, None, Duration::from_secs(30))?;
    check()?;

    // 5. Drain.
    if !opts.quick {
        let target = c.name(0)?.to_string();
        say(
            out,
            format!("\n5. Planned maintenance: `wackamole ctl drain {target}` under traffic."),
        )?;
        let (run, res) = probe(&c, Duration::from_secs(3), |c| {
            std::thread::sleep(Duration::from_millis(500));
            let at = now_ns();
            c.ctl_ok(0, &["drain"])?;
            Ok(vec![Phase {
                name: format!("drain-{target}"),
                fault_ns: at,
                view_ns: None,
            }])
        })?;
        say(
            out,
            format!(
                "   {} VIPs moved away, {} probes lost, worst gap {}.",
                res.phases.first().map_or(0, |p| p.moved_vips),
                res.lost_probes,
                res.worst_outage.map_or("none".into(), |o| format!(
                    "{:.1} ms",
                    o.len_ns() as f64 / 1e6
                ))
            ),
        )?;
        outcome.drain_lost_probes = Some(res.lost_probes);
        outcome
            .lost_per_step
            .push(("drain".into(), res.lost_probes));
        let rest: Vec<usize> = (1..c.len()).collect();
        say(out, format!("   VIP table with {target} drained:"))?;
        watch_table(&c, out, &all, Some(&rest), Duration::from_secs(20))?;
        outcome.answered_at_end = answered_before_and_end(&run, &[]).1;
        say(
            out,
            format!(
                "   `wackamole ctl undrain` on {target} under traffic: it takes its share back."
            ),
        )?;
        let (_, res) = probe(
            &c,
            rebalance_window(Fault::Undrain, Duration::from_secs(2)),
            |c| {
                std::thread::sleep(Duration::from_millis(500));
                let at = now_ns();
                c.ctl_ok(0, &["undrain"])?;
                Ok(vec![Phase {
                    name: format!("undrain-{target}"),
                    fault_ns: at,
                    view_ns: None,
                }])
            },
        )?;
        say(
            out,
            format!(
                "   {} probes lost, worst gap {}.",
                res.lost_probes,
                res.worst_outage.map_or("none".into(), |o| format!(
                    "{:.1} ms",
                    o.len_ns() as f64 / 1e6
                ))
            ),
        )?;
        outcome
            .lost_per_step
            .push(("undrain".into(), res.lost_probes));
        watch_table(&c, out, &all, None, Duration::from_secs(30))?;
    }

    say(
        out,
        "\nPlanned changes and returns should lose no probe; a crash loses what the failover takes.",
    )?;
    say(out, format_lost_per_step(&outcome.lost_per_step))?;

    say(
        out,
        "\nCleaning up: agents stopped, corosync stopped, pins and namespaces removed.",
    )?;
    for r in responders {
        r.stop()?;
    }
    drop(c);
    say(
        out,
        format!("Done in {:.1} s.", started.elapsed().as_secs_f64()),
    )?;
    Ok(outcome)
}

fn fmt_ms(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| format!("{:.1} ms", n as f64 / 1e6))
}

/// The nodes answering UDP probes to VIF `k`'s IPv6 address over 300 ms.
fn ipv6_answerers(c: &AgentCluster, k: usize) -> Result<Vec<String>> {
    check()?;
    let cfg = prober::ProberConfig::new([AgentCluster::vip6(k)], PORT, Duration::from_millis(300));
    Ok(prober::run_in(c.client(), &cfg)?.nodes)
}

fn names_or_none(nodes: &[String]) -> String {
    if nodes.is_empty() {
        "no one".into()
    } else {
        nodes.join(" and ")
    }
}

/// Probes every VIP for `window` while `during` runs on this thread (it
/// injects faults and returns the phases), then analyses.
fn probe(
    c: &AgentCluster,
    window: Duration,
    during: impl FnOnce(&AgentCluster) -> Result<Vec<Phase>>,
) -> Result<(ProbeRun, RunResult)> {
    check()?;
    let vips: Vec<Ipv4Addr> = (1..=c.vif_names().len()).map(AgentCluster::vip).collect();
    let mut cfg = prober::ProberConfig::new(vips.clone(), PORT, window);
    if vips.len() > 32 {
        cfg.senders = 2;
    }
    let sock: UdpSocket = c.client().in_thread(prober::bind_prober)??;
    let handle = std::thread::Builder::new()
        .name("demo-prober".into())
        .spawn(move || prober::run(&sock, &cfg))
        .context("spawning the prober")?;
    let phases = during(c);
    let run = handle
        .join()
        .map_err(|_| anyhow!("prober thread panicked"))??;
    let phases = phases?;
    let res = analysis::analyse(&run, &phases, analysis::Params::default());
    Ok((run, res))
}

fn traffic_summary(out: &mut impl Write, run: &ProbeRun, res: &RunResult) -> Result<()> {
    let mut per_node = vec![0usize; run.nodes.len()];
    let mut last_node: Vec<Option<u16>> = vec![None; run.vips.len()];
    for a in &run.answers {
        if let Some(l) = last_node.get_mut(a.vip as usize) {
            *l = Some(a.node);
        }
    }
    for n in last_node.iter().flatten() {
        if let Some(c) = per_node.get_mut(*n as usize) {
            *c += 1;
        }
    }
    let who: Vec<String> = run
        .nodes
        .iter()
        .zip(&per_node)
        .map(|(n, k)| format!("{n} answers {k}"))
        .collect();
    say(
        out,
        format!(
            "   {} probes sent ({:.0}/s), {} answered, {} lost; RTT median {:.2} ms, p99 {:.2} ms; {}; {} VIPs never answered.",
            res.probes_sent,
            res.probe_rate_hz,
            res.answers,
            res.lost_probes,
            res.rtt_median_ns as f64 / 1e6,
            res.rtt_p99_ns as f64 / 1e6,
            who.join(", "),
            res.never_answered.len()
        ),
    )
}

/// Polls the agents until `among` agree and are mature and the VIPs are
/// balanced over `holders` (default `among`), printing the table every time
/// it changes.
fn watch_table(
    c: &AgentCluster,
    out: &mut impl Write,
    among: &[usize],
    holders: Option<&[usize]>,
    timeout: Duration,
) -> Result<()> {
    let holders = holders.unwrap_or(among);
    let deadline = Instant::now() + timeout;
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        check()?;
        let snap = c.snapshot();
        let table = render(c, &snap, among);
        if table != last {
            say(
                out,
                format!("   [{:>5.1} s] {table}", t0.elapsed().as_secs_f64()),
            )?;
            last = table;
        }
        if settled(&snap, among, holders, c.vif_names().len()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "demo: the agents did not settle within {timeout:?}\n{}",
                c.log_tails()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn settled(s: &Snapshot, among: &[usize], holders: &[usize], vips: usize) -> bool {
    let counts = s.counts();
    let held: Vec<usize> = holders
        .iter()
        .filter_map(|&i| counts.get(i).copied())
        .collect();
    let max = held.iter().copied().max().unwrap_or(0);
    let min = held.iter().copied().min().unwrap_or(0);
    let mature = among.iter().all(|&i| {
        s.statuses
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|st| st.mature && st.members.len() == among.len())
    });
    mature && s.agreed_among(among) && held.iter().sum::<usize>() == vips && max - min <= 1
}

/// One line: each node's VIPs (or counts when there are many) and the unowned ones.
fn render(c: &AgentCluster, s: &Snapshot, among: &[usize]) -> String {
    let vifs = c.vif_names();
    let many = vifs.len() > 12;
    let mut parts = Vec::new();
    for &i in among {
        let name = c.name(i).unwrap_or("?");
        let mature = s
            .statuses
            .get(i)
            .and_then(Option::as_ref)
            .map_or("down", |st| if st.mature { "" } else { "(immature)" });
        let held = s.held_by(i);
        if many {
            parts.push(format!("{name}{mature}: {:>2} VIPs", held.len()));
        } else {
            parts.push(format!("{name}{mature}: [{}]", held.join(" ")));
        }
    }
    let owned: Vec<String> = among.iter().flat_map(|&i| s.held_by(i)).collect();
    let unowned = vifs.iter().filter(|v| !owned.contains(v)).count();
    format!("{}  | unowned: {unowned}", parts.join("  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_per_step_line_round_trips() {
        let steps = vec![
            ("traffic".to_string(), 0),
            ("crash".to_string(), 131),
            ("return".to_string(), 7),
        ];
        let line = format_lost_per_step(&steps);
        assert_eq!(line, "lost probes per step: traffic=0 crash=131 return=7");
        assert_eq!(parse_lost_per_step(&format!("  {line}")), Some(steps));
        assert_eq!(
            parse_lost_per_step("lost probes per step:"),
            Some(Vec::new())
        );
        assert_eq!(parse_lost_per_step("lost probes per step: crash=x"), None);
        assert_eq!(parse_lost_per_step("lost probes per step: =3"), None);
        assert_eq!(parse_lost_per_step("some other line"), None);
    }
}

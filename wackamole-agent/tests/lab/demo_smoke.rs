//! The cluster demo's quick variant (`wackamole-lab demo --quick`): it runs
//! to the end, narrates every step, every VIP is answered before the crash,
//! after it (by the survivors) and after the node's return, it ends with the
//! lost-probes-per-step line (counts reported, not asserted, except that a
//! crash loses probes), and it leaves no namespace or bpffs mount of its own behind.
//!
//! `cargo test --release -p wackamole-agent --features corosync --test lab demo_smoke:: -- --include-ignored --nocapture`

use anyhow::{ensure, Context, Result};
use std::process::{Command, Stdio};
use wackamole::lab::cluster_demo::{parse_lost_per_step, LOST_PER_STEP};

const LAB: &str = env!("CARGO_BIN_EXE_wackamole-lab");
const BIN: &str = env!("CARGO_BIN_EXE_wackamole");

/// The crash step's "client-visible outage: ..." line.
fn crash_line(out: &str) -> Option<&str> {
    out.lines().find(|l| l.contains("client-visible outage"))
}

/// Whether the crash step's survivors' table shows a survivor immature:
/// its engine was lost (an evidence gap: this shared host starved it past
/// the eviction deadline, seen as 600 ms without CPU in a passing run's
/// logs) and it rejoined afresh, so the step measures the host, not the
/// failover.
fn survivors_rejoined(out: &str) -> bool {
    out.split("3. Crash")
        .nth(1)
        .and_then(|rest| rest.split("\n4. ").next())
        .is_some_and(|step| step.contains("(immature)"))
}

#[test]
#[ignore = "needs root and corosync"]
fn quick_demo_runs_through_and_every_vip_answers() -> Result<()> {
    wackamole::testbed::require_root();
    let _one = crate::support::one_cluster_at_a_time();
    // A run whose survivors lost their engine at the crash is reported and
    // run once more; a second such run fails.
    match quick_demo_run()? {
        None => Ok(()),
        Some(crash) => {
            eprintln!("attempt 1 disturbed (a survivor rejoined afresh): {crash}");
            match quick_demo_run()? {
                None => Ok(()),
                Some(crash) => anyhow::bail!("not every VIP answered around the crash: {crash}"),
            }
        }
    }
}

/// One run of the quick demo; `Some(crash line)` if not every VIP was
/// answered around the crash *and* a survivor had rejoined afresh (any
/// other failure is an error).
fn quick_demo_run() -> Result<Option<String>> {
    let child = Command::new(LAB)
        .args([
            "demo", "--quick", "--nodes", "3", "--vips", "4", "--binary", BIN,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running wackamole-lab demo --quick")?;
    let pid = child.id();
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    ensure!(
        out.status.success(),
        "demo failed ({}): {stderr}",
        out.status
    );
    for step in [
        "1. The nodes join",
        "2. The client probes",
        "3. Crash",
        "4. ",
        "Done in",
    ] {
        ensure!(stdout.contains(step), "no {step:?} in the narration");
    }
    // Step 2: all probes answered by someone, no VIP silent.
    ensure!(
        stdout.contains("0 VIPs never answered"),
        "some VIP never answered before the crash"
    );
    let crash = crash_line(&stdout).context("no outage line")?;
    let all_answered = crash.contains("4 of 4 VIPs answered before the cut, 4 at the end");
    if !all_answered && survivors_rejoined(&stdout) {
        return Ok(Some(crash.to_string()));
    }
    ensure!(
        crash.contains("4 of 4 VIPs answered before the cut, 4 at the end"),
        "not every VIP answered around the crash: {crash}"
    );
    // One dual-stack VIF's IPv6 address moves off the crashed node.
    let v6 = stdout
        .lines()
        .find(|l| l.contains("IPv6 VIP fd77::1:"))
        .context("no IPv6 VIP line")?;
    let (before, after) = v6
        .split_once("answered by ")
        .and_then(|(_, r)| r.split_once(" before the cut, by "))
        .and_then(|(b, r)| Some((b, r.strip_suffix(" after.")?)))
        .with_context(|| format!("unparsable: {v6}"))?;
    ensure!(
        before != "no one" && after != "no one" && before != after,
        "the IPv6 VIP did not fail over: {v6}"
    );
    // The report of lost probes per probed step, in order.
    let line = stdout
        .lines()
        .find(|l| l.contains(LOST_PER_STEP))
        .context("no lost-probes-per-step line")?;
    let steps = parse_lost_per_step(line).with_context(|| format!("unparsable: {line}"))?;
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    ensure!(
        names == ["traffic", "crash", "return"],
        "steps reported: {line}"
    );
    // Detection alone takes longer than a probe period: a crash always loses some.
    ensure!(steps[1].1 > 0, "a crash that lost nothing: {line}");
    // The final table: every VIP owned.
    let last_table = stdout
        .lines()
        .rfind(|l| l.contains("| unowned:"))
        .context("no VIP table")?;
    ensure!(
        last_table.ends_with("unowned: 0"),
        "last table: {last_table}"
    );
    // Nothing of the demo's left: its namespaces and bpffs carry its pid.
    let netns = Command::new("ip").args(["netns", "list"]).output()?;
    let netns = String::from_utf8_lossy(&netns.stdout);
    ensure!(
        !netns.contains(&format!("wkt-{pid}-")),
        "namespaces left behind: {netns}"
    );
    let mounts = std::fs::read_to_string("/proc/mounts")?;
    ensure!(
        !mounts.contains(&format!("/run/wkt-bpf-{pid}-")),
        "bpffs left mounted"
    );
    Ok(None)
}

#[test]
fn demo_rejects_bad_sizes() -> Result<()> {
    let out = Command::new(LAB)
        .args(["demo", "--vips", "0", "--binary", BIN])
        .output()
        .context("running wackamole-lab demo --vips 0")?;
    ensure!(!out.status.success(), "--vips 0 accepted");
    Ok(())
}

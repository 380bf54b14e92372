//! Client-visible outage of a VIP when its owner's cable is pulled, with real
//! agents on a fast-profile Corosync cluster: the client pings the VIP every
//! 10 ms; the outage is the longest gap between two echo replies. The test
//! asserts only that service comes back; it prints the measurements:
//!
//! `cargo test --release -p wackamole-agent --test agent_outage -- --nocapture`

use anyhow::{ensure, Context, Result};
use std::process::Stdio;
use std::time::Duration;
use wackamole::testbed::cluster::{AgentCluster, AgentClusterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");
const ROUNDS: usize = 3;

/// Reply timestamps (seconds) from `ping -D` output.
fn reply_times(output: &str) -> Vec<f64> {
    output
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect()
}

/// The longest gap between consecutive replies, and the count.
fn longest_gap(times: &[f64]) -> Option<(Duration, usize)> {
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))))?;
    Some((Duration::from_secs_f64(gap.max(0.0)), times.len()))
}

#[test]
fn link_down_outage_seen_by_a_pinging_client() -> Result<()> {
    ensure!(wackamole::testbed::is_root(), "needs root");
    let c = AgentCluster::start(AgentClusterOptions::new(BIN))?;
    let mut outages = Vec::new();
    for round in 0..ROUNDS {
        let snap = c.wait_counts(&[2, 2, 2], Duration::from_secs(20))?;
        let victim = round % c.len();
        let vif = snap
            .held_by(victim)
            .first()
            .cloned()
            .context("victim holds nothing")?;
        let k: usize = vif.trim_start_matches('v').parse()?;
        let vip = AgentCluster::vip(k);
        // 10 ms pings for 5 s; the cable goes out after 1.5 s.
        let ping = c
            .client()
            .command("ping")
            .args(["-D", "-n", "-i", "0.01", "-W", "1", "-w", "5"])
            .arg(vip.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(1500));
        c.link_down(victim)?;
        let out = ping.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let times = reply_times(&text);
        let (gap, replies) = longest_gap(&times).context("no replies at all")?;
        let last = times.last().copied().unwrap_or_default();
        let first = times.first().copied().unwrap_or_default();
        // Service is back: replies continue well after the cut.
        ensure!(
            last - first > 3.0,
            "{vip}: replies stop after the cut (gap {gap:?}, {replies} replies)\n{}",
            c.log_tails()
        );
        eprintln!(
            "round {round}: n{} cable out, {vif} ({vip}): outage {:.0} ms ({replies} replies)",
            victim + 1,
            gap.as_secs_f64() * 1000.0
        );
        outages.push(gap);
        c.link_up(victim)?;
    }
    outages.sort();
    eprintln!(
        "link-down outage over {ROUNDS} rounds: min {:?} median {:?} max {:?}",
        outages.first(),
        outages.get(ROUNDS / 2),
        outages.last()
    );
    Ok(())
}

//! The failover benchmark's smoke variant (3 nodes, 3 VIPs, a link cut and a
//! cable return, one repetition each): the reports are written and
//! well-formed, every VIP was answered before the cut and again at the end
//! of its run, and the return scenario (the node cut off, the others settled
//! without it, then the cable back) reports its loss, ARP and rebalance
//! figures. Timing figures are printed, not asserted (they belong to the
//! benchmark).
//!
//! `cargo test --release -p wackamole-agent --features corosync --test lab bench_smoke:: -- --include-ignored --nocapture`

use anyhow::{ensure, Context, Result};
use wackamole::lab::failover_bench::{
    self, BenchOptions, TWO_ARP_ANSWERERS_MS, VIPS_ANSWERED_AT_END, VIPS_ANSWERED_BEFORE,
};
use wackamole::lab::report;

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");

#[test]
#[ignore = "needs root and corosync"]
fn smoke_bench_writes_reports_and_every_vip_answers_around_the_fault() -> Result<()> {
    wackamole::testbed::require_root();
    let _one = crate::support::one_cluster_at_a_time();
    let out_dir = std::env::temp_dir().join(format!("wk-bench-smoke-{}", std::process::id()));
    let opts = BenchOptions::smoke(BIN, &out_dir);
    let mut log = Vec::new();
    let out = failover_bench::run(&opts, &mut log)?;
    eprintln!("{}\n{}", String::from_utf8_lossy(&log), out.summary);

    // JSON parses back to the same records.
    let records = report::read_json(&out.json)?;
    ensure!(
        records.len() == out.records.len()
            && records
                .iter()
                .zip(&out.records)
                .all(|(a, b)| a.approx_eq(b, 1e-9)),
        "failover.json differs from the run's records"
    );
    let cut = records
        .iter()
        .find(|r| r.scenario.ends_with("-link-cut"))
        .context("no link-cut record")?;
    ensure!(cut.repetitions == 1, "repetitions {}", cut.repetitions);
    for figure in [VIPS_ANSWERED_BEFORE, VIPS_ANSWERED_AT_END] {
        let f = cut
            .figures
            .get(figure)
            .with_context(|| format!("no {figure}"))?;
        // One repetition: median and max are its value.
        ensure!(
            f.median == 3.0 && f.max == 3.0,
            "{figure}: {f:?}, want all 3 VIPs"
        );
    }
    for figure in [
        "worst_outage_ms",
        "lost_probes",
        "duplicate_owner_ms",
        "probe_rate_hz",
        "rss_kib",
        "cpu_percent",
    ] {
        ensure!(
            cut.figures.contains_key(figure),
            "no {figure} in {:?}",
            cut.figures.keys()
        );
    }
    // The return: the survivors served every VIP before the cable went back
    // in; what it cost is reported.
    let ret = records
        .iter()
        .find(|r| r.scenario.ends_with("-return-cable"))
        .context("no return-cable record")?;
    ensure!(ret.repetitions == 1, "repetitions {}", ret.repetitions);
    let before = ret
        .figures
        .get(VIPS_ANSWERED_BEFORE)
        .context("return-cable: no VIPs answered before")?;
    ensure!(
        before.max == 3.0,
        "return-cable: {before:?}, want all 3 VIPs"
    );
    for figure in ["lost_probes", TWO_ARP_ANSWERERS_MS] {
        ensure!(
            ret.figures.contains_key(figure),
            "return-cable: no {figure} in {:?}",
            ret.figures.keys()
        );
    }
    let idle = records
        .iter()
        .find(|r| r.scenario.ends_with("-idle"))
        .context("no idle record")?;
    ensure!(
        idle.figures.contains_key("rss_kib"),
        "idle record without RSS"
    );

    // The timeline is a PNG.
    let png = out.timeline.context("no timeline written")?;
    let bytes = std::fs::read(&png).with_context(|| format!("reading {}", png.display()))?;
    ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    ensure!(
        out.summary.contains("link-cut") && out.summary.contains("return-cable"),
        "summary table: {}",
        out.summary
    );
    std::fs::remove_dir_all(&out_dir).with_context(|| format!("removing {}", out_dir.display()))?;
    Ok(())
}

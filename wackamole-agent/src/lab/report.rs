//! Benchmark reports: one [`ScenarioRecord`] per scenario (median/p95/max of
//! every figure over the repetitions, memory and CPU included), printed as a
//! markdown table and written as JSON.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use super::analysis::{aggregate, ResourceUsage, RunResult, Summary};

/// The aggregate of all repetitions of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    /// Scenario name, e.g. `corosync-3nodes-100vips-kill`.
    pub scenario: String,
    /// Repetitions aggregated.
    pub repetitions: usize,
    /// Free-form parameters (engine, node count, VIP count, ...).
    pub params: BTreeMap<String, String>,
    /// Figure name → median/p95/max (names in [`super::analysis::figure`]).
    pub figures: BTreeMap<String, Summary>,
}

impl ScenarioRecord {
    /// Aggregates `runs` and the agent resource samples `usage`.
    pub fn new(
        scenario: &str,
        params: BTreeMap<String, String>,
        runs: &[RunResult],
        usage: &[ResourceUsage],
    ) -> Self {
        ScenarioRecord {
            scenario: scenario.to_string(),
            repetitions: runs.len(),
            params,
            figures: aggregate(runs, usage),
        }
    }
}

fn fmt_value(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e12 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A markdown table: one row per scenario and figure.
pub fn markdown(records: &[ScenarioRecord]) -> String {
    let mut s = String::from("| scenario | figure | n | median | p95 | max |\n");
    s.push_str("|---|---|---:|---:|---:|---:|\n");
    for r in records {
        for (name, f) in &r.figures {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.scenario,
                name,
                f.n,
                fmt_value(f.median),
                fmt_value(f.p95),
                fmt_value(f.max)
            ));
        }
    }
    s
}

impl ScenarioRecord {
    /// Equal up to a relative `tolerance` in every figure (JSON text does not
    /// always give back the last bit of an `f64`).
    pub fn approx_eq(&self, other: &ScenarioRecord, tolerance: f64) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1.0);
        self.scenario == other.scenario
            && self.repetitions == other.repetitions
            && self.params == other.params
            && self.figures.len() == other.figures.len()
            && self
                .figures
                .iter()
                .zip(&other.figures)
                .all(|((ka, a), (kb, b))| {
                    ka == kb
                        && a.n == b.n
                        && close(a.median, b.median)
                        && close(a.p95, b.p95)
                        && close(a.max, b.max)
                })
    }
}

/// Prints [`markdown`] on stdout.
pub fn print_markdown(records: &[ScenarioRecord]) {
    print!("{}", markdown(records));
}

/// The records as a pretty JSON array.
pub fn to_json(records: &[ScenarioRecord]) -> Result<String> {
    serde_json::to_string_pretty(records).context("serialising scenario records")
}

/// Writes the records as a JSON array to `path` (creating its directory).
pub fn write_json(path: &Path, records: &[ScenarioRecord]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, to_json(records)?).with_context(|| format!("writing {}", path.display()))
}

/// Reads records written by [`write_json`].
pub fn read_json(path: &Path) -> Result<Vec<ScenarioRecord>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::analysis::{figure, Outage};

    fn run(outage_ms: u64, lost: u64) -> RunResult {
        RunResult {
            probes_sent: 1000,
            answers: 1000 - lost,
            lost_probes: lost,
            never_answered: vec![],
            worst_outage: Some(Outage {
                vip: 0,
                start_ns: 0,
                end_ns: outage_ms * 1_000_000,
                lost,
            }),
            duplicate_owner_ns: 0,
            worst_vip_duplicate_ns: 0,
            probe_rate_hz: 1000.0,
            round_rate_hz: 1000.0,
            rtt_median_ns: 0,
            rtt_p99_ns: 0,
            rtt_max_ns: 0,
            late_rounds: 0,
            prober_socket_drops: 0,
            phases: vec![],
        }
    }

    #[test]
    fn markdown_and_json_roundtrip() -> Result<()> {
        let runs = [run(10, 10), run(30, 30), run(20, 20)];
        let usage = [ResourceUsage {
            rss_kib: 4096,
            cpu_percent: 1.5,
        }];
        let mut params = BTreeMap::new();
        params.insert("vips".into(), "4".into());
        let rec = ScenarioRecord::new("s1", params, &runs, &usage);
        assert_eq!(rec.repetitions, 3);
        let o = rec.figures[figure::WORST_OUTAGE_MS];
        assert_eq!((o.median, o.p95, o.max), (20.0, 30.0, 30.0));
        assert_eq!(rec.figures[figure::RSS_KIB].max, 4096.0);
        let md = markdown(std::slice::from_ref(&rec));
        assert!(
            md.contains("| s1 | worst_outage_ms | 3 | 20 | 30 | 30 |"),
            "{md}"
        );
        assert!(
            md.contains("| s1 | cpu_percent | 1 | 1.500 | 1.500 | 1.500 |"),
            "{md}"
        );
        let dir = std::env::temp_dir().join(format!("wk-report-{}", std::process::id()));
        let path = dir.join("r.json");
        write_json(&path, std::slice::from_ref(&rec))?;
        let back = read_json(&path)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(back.len(), 1);
        assert!(back[0].approx_eq(&rec, 1e-12), "{back:?} vs {rec:?}");
        let mut other = rec.clone();
        other.figures.insert(
            figure::LOST_PROBES.into(),
            Summary::of(&[1.0]).ok_or_else(|| anyhow::anyhow!("summary"))?,
        );
        assert!(!back[0].approx_eq(&other, 1e-12));
        Ok(())
    }
}

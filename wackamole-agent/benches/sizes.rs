//! Sizes at up to MAX_VIPS (4096) VIFs, one address each: the metrics page
//! (render time and bytes), the `ctl list` reply line as the control server
//! streams it, and config parse + validation (what `check-config` and the
//! start of `run` do). Each is measured at 1024 and 4096 VIFs to show it is
//! linear. Prints a table and writes target/bench/sizes.json (median and
//! p95 in microseconds, bytes).
//!
//! Run: `cargo xtask bench sizes`

mod support;
use std::time::Instant;
use support::stats;

use wackamole::config::{self, AnyInterface};
use wackamole::control::{ListLine, VifRow, LIST_PAGE};
use wackamole::daemon::metrics::{render, MetricsSnapshot, VifMetrics};

fn name(k: usize) -> String {
    format!("bulk{k:05}")
}

fn snapshot(vifs: usize) -> MetricsSnapshot {
    let mut m = MetricsSnapshot {
        engine_up: true,
        mature: true,
        members: 8,
        view_changes: 12,
        vifs: (0..vifs)
            .map(|k| VifMetrics {
                name: name(k),
                owned: k % 8 == 0,
                // Large counters: the widest page.
                packets: u64::MAX - k as u64,
                bytes: u64::MAX - k as u64,
                arp_replies: u64::MAX / 3,
                drops: u64::MAX / 7,
            })
            .collect(),
        ..Default::default()
    };
    m.observe_failover(0.004);
    m
}

fn rows(vifs: usize) -> Vec<VifRow> {
    (0..vifs)
        .map(|k| VifRow {
            name: name(k),
            addresses: vec![format!("10.1.{}.{}/16", k / 250, k % 250 + 1)],
            owner: Some(format!("node-{}", k % 8)),
            state: "remote".into(),
            packets: u64::MAX,
            bytes: u64::MAX,
            arp_replies: u64::MAX,
            drops: u64::MAX,
        })
        .collect()
}

fn config_text(vifs: usize) -> String {
    let mut s = String::from(
        "node = \"n1\"\n\n[engine]\nkind = \"corosync\"\n\n[balance]\nenabled = true\n\n",
    );
    for k in 0..vifs {
        s += &format!(
            "[[vif]]\nname = \"{}\"\naddresses = [\"eth0:10.1.{}.{}/16\"]\n\n",
            name(k),
            k / 250,
            k % 250 + 1
        );
    }
    s
}

/// Times `f` `iters` times; returns (median µs, p95 µs, bytes of its output).
fn time(iters: usize, mut f: impl FnMut() -> usize) -> (f64, f64, usize) {
    let mut samples = Vec::with_capacity(iters);
    let mut bytes = 0;
    for _ in 0..iters {
        let t = Instant::now();
        bytes = std::hint::black_box(f());
        samples.push(t.elapsed());
    }
    let (median, p95) = stats(samples);
    (median, p95, bytes)
}

fn main() {
    let mut out = Vec::new();
    for vifs in [1024usize, 4096] {
        let snap = snapshot(vifs);
        out.push(("metrics page", vifs, time(60, || render(&snap).len())));

        let all = rows(vifs);
        out.push((
            "ctl list line",
            vifs,
            time(60, || {
                // What the server writes, page by page.
                let mut line = ListLine::default();
                let mut n = 0;
                for page in all.chunks(LIST_PAGE) {
                    n += line.rows(page).map_or(0, |b| b.len());
                }
                n + line.end().len()
            }),
        ));

        let text = config_text(vifs);
        out.push((
            "config parse",
            vifs,
            time(20, || {
                match config::parse(&text, "bench.toml", &AnyInterface) {
                    Ok(cfg) => cfg.vifs.len(),
                    Err(e) => panic!("bench config: {e}"),
                }
            }),
        ));
    }
    println!(
        "{:<14} {:>6} {:>12} {:>12} {:>10}",
        "case", "VIFs", "median µs", "p95 µs", "bytes"
    );
    let mut json = Vec::new();
    for (case, vifs, (median, p95, bytes)) in &out {
        // config parse reports the VIFs parsed, not bytes.
        let bytes = if *case == "config parse" { 0 } else { *bytes };
        println!("{case:<14} {vifs:>6} {median:>12.1} {p95:>12.1} {bytes:>10}");
        json.push(serde_json::json!({
            "case": case, "vifs": vifs, "median_us": median, "p95_us": p95, "bytes": bytes,
        }));
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench");
    let file = dir.join("sizes.json");
    let written = std::fs::create_dir_all(&dir).and_then(|_| {
        std::fs::write(
            &file,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
    });
    match written {
        Ok(()) => println!("wrote {}", file.display()),
        Err(e) => eprintln!("cannot write {}: {e}", file.display()),
    }
}

//! `cargo xtask bench failover [-- ARGS]`: client-visible failover of real
//! agents on a Corosync cluster under every fault. See
//! [`wackamole::lab::failover_bench`] for what is measured; ARGS: `--smoke`,
//! `--full`, `--engine corosync|spread`, `--nodes 3,5,8`, `--vips 3,64`,
//! `--faults link-cut,move`,
//! `--reps N`, `--profile fast|faster|default`, `--family ipv4|ipv6|dual`,
//! `--sample auto|all|N`, `--idle S`, `--idle-samples N`, `--out DIR`
//! (default `target/bench`);
//! `--help` lists the faults.
//! Writes `failover.json` and `failover-timeline.png` there and prints a
//! markdown table.

use anyhow::{bail, Result};
use std::path::PathBuf;
use wackamole::lab::failover_bench::{run, BenchOptions, USAGE};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    if !wackamole::testbed::is_root() {
        bail!("the failover bench needs root (network namespaces, XDP, corosync)");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let binary = root.join("target/release/wackamole");
    let opts = BenchOptions::from_args(binary, root.join("target/bench"), &args)?;
    if !opts.binary.exists() {
        bail!(
            "no agent binary at {} (run cargo xtask build)",
            opts.binary.display()
        );
    }
    let out = run(&opts, &mut std::io::stderr())?;
    println!("{}", out.summary);
    println!("(every figure: failover.md next to the JSON)");
    for s in &out.skipped {
        println!("{s}");
    }
    println!("JSON: {}", out.json.display());
    if let Some(p) = &out.timeline {
        println!("timeline: {}", p.display());
    }
    Ok(())
}

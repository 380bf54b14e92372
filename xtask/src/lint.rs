//! `cargo xtask lint`: rustfmt and clippy -D warnings, host crates and eBPF crate.

use crate::util::{cargo, cargo_nightly, root, run};
use anyhow::Result;

pub fn lint() -> Result<()> {
    // The agent embeds the eBPF object, so clippy on it needs the object built.
    crate::build::build_ebpf()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--release",
        "--",
        "-D",
        "warnings",
    ]))?;
    let ebpf = root().join("wackamole-ebpf");
    run(cargo_nightly()
        .current_dir(&ebpf)
        .args(["fmt", "--all", "--check"]))?;
    run(cargo_nightly()
        .current_dir(&ebpf)
        .args([
            "clippy",
            "-Z",
            "build-std=core",
            "--target",
            "bpfel-unknown-none",
            "--release",
        ])
        .arg("--target-dir")
        .arg(root().join("target"))
        .args(["--", "-D", "warnings"]))?;
    eprintln!("xtask: lint clean");
    Ok(())
}

//! `build`, `test`, `run`, `bench` and `demo`: everything that compiles the
//! eBPF object first and then drives cargo for the host crates.

use crate::util::{cargo, cargo_nightly, require_root, root, run};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Where `cargo xtask build` leaves the eBPF object; the agent's build script
/// looks here.
pub fn ebpf_object() -> PathBuf {
    root().join("target/bpfel-unknown-none/release/wackamole-ebpf")
}

/// Builds the XDP program with nightly for bpfel-unknown-none.
pub fn build_ebpf() -> Result<()> {
    let mut cmd = cargo_nightly();
    cmd.current_dir(root().join("wackamole-ebpf"))
        .args([
            "build",
            "-Z",
            "build-std=core",
            "--target",
            "bpfel-unknown-none",
            "--release",
        ])
        .arg("--target-dir")
        .arg(root().join("target"));
    run(&mut cmd).context(
        "building the eBPF object failed; `cargo xtask setup` installs rust-src and bpf-linker",
    )?;
    let object = ebpf_object();
    if !object.is_file() {
        bail!(
            "the eBPF build finished but {} is missing",
            object.display()
        );
    }
    Ok(())
}

pub fn build_all() -> Result<()> {
    build_ebpf()?;
    run(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    eprintln!(
        "xtask: built {} and {}",
        ebpf_object().display(),
        root().join("target/release/wackamole").display()
    );
    Ok(())
}

pub fn test(args: &[String]) -> Result<()> {
    require_root("cargo xtask test")?;
    build_all()?;
    run(cargo()
        .args(["test", "--release", "--workspace"])
        .args(args))?;
    crate::package::package(true)
}

pub fn run_agent(args: &[String]) -> Result<()> {
    build_all()?;
    run(std::process::Command::new(root().join("target/release/wackamole")).args(args))
}

/// Benchmarks are bench targets of the agent crate (harness = false) that
/// print a table and write target/bench/<name>.json.
pub fn bench(name: &str, args: &[String]) -> Result<()> {
    const BENCHES: &[&str] = &["dataplane", "allocation", "membership", "failover"];
    if !BENCHES.contains(&name) {
        bail!("unknown benchmark `{name}`; one of: {}", BENCHES.join(", "));
    }
    build_all()?;
    std::fs::create_dir_all(root().join("target/bench"))?;
    run(cargo()
        .args(["bench", "-p", "wackamole-agent", "--bench", name, "--"])
        .args(args))
}

pub fn demo(args: &[String]) -> Result<()> {
    require_root("cargo xtask demo")?;
    build_all()?;
    run(
        std::process::Command::new(root().join("target/release/wackamole-lab"))
            .arg("demo")
            .args(args),
    )
}

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

/// Cargo features (of `-p wackamole-agent`) of the product binary: the
/// Corosync engine. The test machinery (`lab`) stays out of it.
pub const PRODUCT_FEATURES: &str = "corosync";
/// Cargo features of the demo/lab binary and the benchmarks.
pub const LAB_FEATURES: &str = "corosync,lab";
/// Features of a workspace test run (tests get `lab` through the agent's
/// dev-dependency on itself). Not `wackamole-agent/corosync`: that names
/// the feature of the dev-dependency edge, not of the workspace member.
const TEST_FEATURES: &str = "corosync";

/// Libtest filter of the tests that need a Spread daemon
/// (`tests/spread/live.rs`, module `live`).
const SPREAD_LIVE_FILTER: &str = "live::";

/// Tests named `known_gap_*` state behaviour the project wants but does not
/// have yet (each says why in its `#[ignore]`): listed as ignored by a plain
/// `cargo test`, skipped by the full run (saying so), run by hand with
/// `cargo test ... -- --ignored known_gap_`.
const KNOWN_GAP_FILTER: &str = "known_gap_";

/// The eight-node cluster tests (`tests/agent/scale.rs`): sixteen
/// processes on the machine's cores. Run beside another test, their
/// corosyncs were seen silent on IPC for seconds and once never re-formed
/// the ring; alone they settle in about 80 s. So the full run keeps them
/// for last, one at a time, with nothing else running.
const ALONE_FILTER: &str = "scale::";
/// The test binary that holds [`ALONE_FILTER`]'s tests.
const ALONE_BINARY: &str = "agent";

/// The shipped binary: the product built with the `dist` profile (fat LTO,
/// one codegen unit; see the workspace's Cargo.toml). The package and the
/// failover benchmark use it; tests and `run` use the release build.
pub fn dist_binary() -> PathBuf {
    root().join("target/dist/wackamole")
}

/// [`build_all`], then the shipped binary ([`dist_binary`]).
pub fn build_product() -> Result<()> {
    build_all()?;
    build_agent_bin("dist", "wackamole", PRODUCT_FEATURES)?;
    eprintln!("xtask: built {} (shipped)", dist_binary().display());
    Ok(())
}

pub fn build_all() -> Result<()> {
    build_ebpf()?;
    // Two builds: the product without the lab, then the lab binary with it
    // (features are per build, so one build would put the lab into both).
    build_agent_bin("release", "wackamole", PRODUCT_FEATURES)?;
    build_agent_bin("release", "wackamole-lab", LAB_FEATURES)?;
    eprintln!(
        "xtask: built {}, {} and {}",
        ebpf_object().display(),
        root().join("target/release/wackamole").display(),
        root().join("target/release/wackamole-lab").display()
    );
    Ok(())
}

/// One binary of the agent crate, built with a cargo profile and features.
fn build_agent_bin(profile: &str, bin: &str, features: &str) -> Result<()> {
    run(cargo().args([
        "build",
        "--profile",
        profile,
        "-p",
        "wackamole-agent",
        "--bin",
        bin,
        "--features",
        features,
    ]))
}

/// The test policy (see README, "Tests and benchmarks"): tests that need
/// something (root, corosync, a Spread daemon) are `#[ignore = "needs ..."]`,
/// so a plain `cargo test` lists them as ignored and never passes them
/// silently; run without their requirement they fail naming it.
///
/// - `unprivileged`: the tests that need nothing (stable Rust only, no
///   root, no eBPF object, no Corosync libraries): `cargo test` as it is.
/// - otherwise (root): builds everything and runs every test including the
///   ignored ones; the Spread live tests only when `WACKAMOLE_SPREAD_DAEMON`
///   names a daemon (said so when skipped).
pub fn test(unprivileged: bool, args: &[String]) -> Result<()> {
    if unprivileged {
        return run(cargo()
            .args(["test", "--release", "--workspace"])
            .args(args));
    }
    require_root("cargo xtask test (or `cargo xtask test --unprivileged`)")?;
    build_all()?;
    // `args` are cargo's, then after a `--` the test binaries'.
    let (cargo_args, test_args) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    // A run the caller narrows (a filter, a package, a target) stays one.
    const NARROWING: &[&str] = &["-p", "--package", "--test", "--lib", "--bin", "--exclude"];
    let split = test_args.iter().all(|a| a.starts_with('-'))
        && !cargo_args.iter().any(|a| NARROWING.contains(&a.as_str()));
    let kept = kept_logs()?;
    let test_cmd = || {
        let mut cmd = cargo();
        cmd.args(["test", "--release", "--features", TEST_FEATURES])
            .args(cargo_args);
        if let Some(dir) = &kept {
            cmd.env("WKT_KEEP_LOGS", dir);
        }
        cmd
    };
    let mut cmd = test_cmd();
    cmd.args(["--workspace", "--", "--include-ignored"])
        .args(test_args);
    eprintln!(
        "xtask: SKIPPING the known-gap tests (`{KNOWN_GAP_FILTER}*`): they fail until their gap is closed"
    );
    cmd.args(["--skip", KNOWN_GAP_FILTER]);
    match std::env::var_os("WACKAMOLE_SPREAD_DAEMON") {
        Some(daemon) if !daemon.is_empty() => {
            eprintln!("xtask: Spread live tests use {}", daemon.to_string_lossy());
        }
        _ => {
            eprintln!(
                "xtask: SKIPPING the Spread live tests (`{SPREAD_LIVE_FILTER}*`): \
                 WACKAMOLE_SPREAD_DAEMON is not set (path of a Spread 4 daemon)"
            );
            cmd.args(["--skip", SPREAD_LIVE_FILTER]);
        }
    }
    if split {
        eprintln!("xtask: the `{ALONE_FILTER}*` tests run last, alone");
        cmd.args(["--skip", ALONE_FILTER]);
    }
    run(&mut cmd)?;
    if split {
        let mut alone = test_cmd();
        // Only the one binary: `--workspace` would run every other test
        // binary again with a filter that matches nothing in it.
        alone
            .args(["-p", "wackamole-agent", "--test", ALONE_BINARY])
            .args(["--", "--include-ignored", "--test-threads=1"])
            .args(test_args)
            .arg(ALONE_FILTER)
            .args(["--skip", KNOWN_GAP_FILTER]);
        run(&mut alone)?;
    }
    crate::package::package(true)
}

/// Where `cargo xtask test` keeps the agents' logs of every namespace
/// test (emptied at each run), unless `WKT_KEEP_LOGS` says elsewhere: a
/// failure on a rare schedule is read from them after the run.
const KEPT_LOGS: &str = "/var/tmp/wackamole-test-logs";

/// [`KEPT_LOGS`], emptied, unless `WKT_KEEP_LOGS` is set already.
fn kept_logs() -> Result<Option<PathBuf>> {
    if std::env::var_os("WKT_KEEP_LOGS").is_some() {
        return Ok(None);
    }
    let dir = PathBuf::from(KEPT_LOGS);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {KEPT_LOGS}"))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {KEPT_LOGS}"))?;
    eprintln!("xtask: the agents' logs of the namespace tests are kept in {KEPT_LOGS}");
    Ok(Some(dir))
}

pub fn run_agent(args: &[String]) -> Result<()> {
    build_all()?;
    run(std::process::Command::new(root().join("target/release/wackamole")).args(args))
}

/// Benchmarks are bench targets of the agent crate (harness = false) that
/// print a table and write target/bench/<name>.json.
pub fn bench(name: &str, args: &[String]) -> Result<()> {
    const BENCHES: &[&str] = &["dataplane", "allocation", "membership", "failover", "sizes"];
    if !BENCHES.contains(&name) {
        bail!("unknown benchmark `{name}`; one of: {}", BENCHES.join(", "));
    }
    // The failover benchmark measures the shipped binary (its RSS and CPU
    // are a row of the goals) unless told another.
    let failover = name == "failover";
    if failover {
        build_product()?;
    } else {
        build_all()?;
    }
    std::fs::create_dir_all(root().join("target/bench"))?;
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "wackamole-agent", "--bench", name])
        .args(["--features", LAB_FEATURES, "--"])
        .args(args);
    if failover && !args.iter().any(|a| a == "--binary" || a == "--help") {
        cmd.arg("--binary").arg(dist_binary());
    }
    run(&mut cmd)
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

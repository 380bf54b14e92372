//! `cargo xtask setup`: make a fresh Debian 12 machine ready to build and test.
//!
//! Idempotent: each step checks first and says whether it did anything.

use crate::util::{output, run};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Debian packages the build, the tests, the demo and the benchmarks use.
const APT_PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-arping",
    "iputils-ping",
    "ndisc6",
    "ethtool",
    "procps",
    "psmisc",
    "util-linux",
    "corosync",
    "libcpg-dev",
    "libcorosync-common-dev",
    "libquorum-dev",
    "libvotequorum-dev",
    "libcfg-dev",
    "libcmap-dev",
    "libnss3-tools",
    "pkg-config",
    "clang",
    "libfontconfig1-dev",
    "fonts-dejavu-core",
    // `cargo xtask package`: dpkg-shlibdeps, strip; its --check: man -l,
    // systemd-analyze verify.
    "dpkg-dev",
    "binutils",
    "man-db",
    "groff-base",
    "systemd",
];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn setup() -> Result<()> {
    apt_packages()?;
    rust_src()?;
    bpf_linker()?;
    bpffs()?;
    eprintln!("xtask: setup complete");
    Ok(())
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_none_or(|s| !s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: apt packages: all {} present", APT_PACKAGES.len());
        return Ok(());
    }
    if !crate::util::is_root() {
        bail!(
            "missing Debian packages {}: run `cargo xtask setup` as root to install them",
            missing.join(" ")
        );
    }
    eprintln!("xtask: apt packages: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]))
        .context("apt-get update failed (is a Debian mirror reachable?)")?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {} failed", missing.join(" ")))?;
    // Private corosync instances run in namespaces; the packaged service must not
    // hold /var/run/corosync.pid or the default ports.
    if std::path::Path::new("/run/systemd/system").exists() {
        let _ = output(Command::new("systemctl").args(["disable", "--now", "corosync"]));
    }
    Ok(())
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context(
        "`rustup component list --toolchain nightly` failed: is the nightly toolchain installed?",
    )?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: rust-src for nightly: present");
        return Ok(());
    }
    eprintln!("xtask: rust-src for nightly: installing");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// Nightly's release and LLVM version, read from `rustc +nightly -vV`.
struct NightlyLlvm {
    release: String,
    llvm_major_minor: String,
    sysroot: PathBuf,
}

impl NightlyLlvm {
    fn detect() -> Result<Self> {
        let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))
            .context("`rustc +nightly -vV` failed: the nightly toolchain is missing")?;
        let field = |name: &str| {
            vv.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|s| s.trim().to_string())
                .with_context(|| format!("`rustc +nightly -vV` printed no `{name}` line"))
        };
        let release = field("release:")?;
        let llvm = field("LLVM version:")?;
        let llvm_major_minor = llvm.split('.').take(2).collect::<Vec<_>>().join(".");
        let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
            .context("`rustc +nightly --print sysroot` failed")?;
        Ok(NightlyLlvm {
            release,
            llvm_major_minor,
            sysroot: PathBuf::from(sysroot.trim()),
        })
    }

    /// The shared library's file name in nightly's `lib/`.
    fn soname(&self) -> String {
        format!("libLLVM.so.{}-rust-{}", self.llvm_major_minor, self.release)
    }

    fn llvm_major(&self) -> &str {
        self.llvm_major_minor.split('.').next().unwrap_or("")
    }
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

/// Is there a bpf-linker on PATH that runs and links nightly's current LLVM?
fn bpf_linker_ok(want_soname: &str) -> Result<(), String> {
    let path = output(Command::new("sh").args(["-c", "command -v bpf-linker"]))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "no bpf-linker on PATH".to_string())?;
    if output(Command::new(&path).arg("--version")).is_none() {
        return Err(format!(
            "{path} does not run (its LLVM library is missing?)"
        ));
    }
    let ldd = output(Command::new("ldd").arg(&path)).unwrap_or_default();
    let linked = ldd
        .lines()
        .find(|l| l.contains("libLLVM"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    if !linked.starts_with(want_soname) || linked.contains("not found") {
        return Err(format!(
            "{path} links `{linked}`, not nightly's {want_soname}"
        ));
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    let nightly = NightlyLlvm::detect()?;
    let soname = nightly.soname();
    match bpf_linker_ok(&soname) {
        Ok(()) => {
            eprintln!("xtask: bpf-linker: present, linked against {soname}");
            return Ok(());
        }
        Err(why) => eprintln!("xtask: bpf-linker: (re)building, because {why}"),
    }
    let source = nightly.sysroot.join("lib").join(&soname);
    if !source.is_file() {
        bail!(
            "nightly's LLVM library {} is missing: reinstall the nightly toolchain",
            source.display()
        );
    }
    // A prefix whose lib/ holds nightly's LLVM under the names the build looks for;
    // bpf-linker keeps it as its runpath, so it must stay (hence under CARGO_HOME).
    let prefix = cargo_home().join("wackamole-llvm-prefix");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    for name in ["libLLVM.so".to_string(), soname.clone()] {
        let link = lib.join(&name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&source, &link)
            .with_context(|| format!("linking {} -> {}", link.display(), source.display()))?;
    }
    run(Command::new("cargo")
        .args(["install", "--force", "--locked", "--no-default-features"])
        .arg(format!("bpf-linker@{BPF_LINKER_VERSION}"))
        .args(["--features", &format!("llvm-{}", nightly.llvm_major())])
        .env("LLVM_PREFIX", &prefix))
    .context("building bpf-linker failed")?;
    bpf_linker_ok(&soname)
        .map_err(|why| anyhow::anyhow!("bpf-linker still unusable after install: {why}"))?;
    eprintln!("xtask: bpf-linker: installed against {soname}");
    Ok(())
}

/// XDP pinning needs a bpffs at /sys/fs/bpf.
fn bpffs() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf"))
    {
        eprintln!("xtask: bpffs: mounted at /sys/fs/bpf");
        return Ok(());
    }
    if !crate::util::is_root() {
        eprintln!("xtask: bpffs: not mounted at /sys/fs/bpf (needs root; the tests mount it)");
        return Ok(());
    }
    eprintln!("xtask: bpffs: mounting at /sys/fs/bpf");
    run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}

//! Shared by the integration test binaries (each `tests/<area>/main.rs`
//! declares `mod support;` from `../support/mod.rs`).
//!
//! Test policy: a test that needs something this machine may lack (root,
//! corosync, a Spread daemon) is `#[ignore = "needs ..."]`, so a plain
//! `cargo test` lists it as ignored instead of passing it silently, and it
//! starts with a `require_*` call, so running it without that requirement
//! (`--ignored`) fails naming it. `cargo xtask test` (as root) runs them all.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod pcap;

use std::path::{Path, PathBuf};

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Fails the test unless it runs as root (namespaces, XDP, bpffs, other uids).
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root (network namespaces, XDP, BPF): run `cargo xtask test` as root, \
         or `cargo test -- --ignored` as root"
    );
}

/// Fails the test unless `program` can be started (e.g. `corosync`).
pub fn require_program(program: &str, package: &str) {
    require_root();
    let found = std::process::Command::new(program)
        .arg("-v")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "this test needs `{program}` (apt-get install {package}; `cargo xtask setup` does it)"
    );
}

/// A fresh directory `<tmp>/wk-<pid>-<n>-<tag>`, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> std::io::Result<Self> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wk-{}-{n}-{tag}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes an executable `/bin/sh` script `name` with `body`.
    pub fn script(&self, name: &str, body: &str) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

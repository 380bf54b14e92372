//! Shared by the integration test binaries (each `tests/<area>/main.rs`
//! declares `mod support;` from `../support/mod.rs`).
//!
//! Test policy: a test that needs something this machine may lack (root,
//! corosync, a Spread daemon) is `#[ignore = "needs ..."]`, so a plain
//! `cargo test` lists it as ignored instead of passing it silently, and it
//! starts with a `require_*` call, so running it without that requirement
//! (`--ignored`) fails naming it. `cargo xtask test` (as root) runs them all.

// Each test binary uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub mod pcap;

use std::path::{Path, PathBuf};

pub use wackamole::testbed::{is_root, require_root};

/// Tests that build a whole cluster take this lock: each used to be its own
/// test binary (run one after the other), and on a small machine two
/// clusters at once disturb each other's timing.
pub static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`ONE_CLUSTER_AT_A_TIME`], also after a test panicked holding it.
pub fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// Polls `ok` every 100 ms until it holds, failing after `timeout` with
/// "timed out waiting for {what}".
#[allow(dead_code)] // not every test binary polls
pub fn wait_for(
    what: &str,
    timeout: std::time::Duration,
    mut ok: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if ok()? {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Seconds since midnight UTC of `t` (as the agents' log lines print it).
pub fn time_of_day(t: std::time::SystemTime) -> f64 {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (d.as_secs() % 86_400) as f64 + f64::from(d.subsec_micros()) / 1e6
}

/// Seconds since midnight UTC of a log line's RFC 3339 timestamp
/// (`2026-11-22T02:15:35.517698Z ...`).
pub fn log_time_of_day(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?.split('T').nth(1)?;
    let mut parts = t.trim_end_matches('Z').split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

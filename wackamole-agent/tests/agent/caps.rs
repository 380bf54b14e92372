//! The agent under exactly the privileges `conf/wackamole.service` gives it:
//! uid 0 with only the unit's capabilities (bounding, inheritable and
//! ambient sets all reduced to them, as systemd's `CapabilityBoundingSet=`
//! does for root) and `NoNewPrivileges`, started through `setpriv` on a
//! single-node Corosync cluster in network namespaces. It must acquire its
//! VIP (XDP program loaded and attached, maps pinned, address added, ARP
//! announced) and release it on SIGTERM.
//!
//! The capability list is read from the unit file itself, so the unit and
//! this test cannot drift apart.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use wackamole::testbed::cluster::{AgentCluster, AgentClusterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");
const UNIT: &str = include_str!("../../../conf/wackamole.service");

/// The `CapabilityBoundingSet=` of the unit, as setpriv names (`net_admin`).
fn unit_caps() -> Result<Vec<String>> {
    let line = UNIT
        .lines()
        .find_map(|l| l.trim().strip_prefix("CapabilityBoundingSet="))
        .context("the unit has no CapabilityBoundingSet=")?;
    let caps: Vec<String> = line
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect();
    ensure!(!caps.is_empty(), "empty CapabilityBoundingSet=");
    Ok(caps)
}

/// Capability numbers (linux/capability.h) of the names used here.
fn cap_bit(name: &str) -> Result<u32> {
    Ok(match name {
        "net_admin" => 12,
        "net_raw" => 13,
        "ipc_lock" => 14,
        "sys_admin" => 21,
        "sys_resource" => 24,
        "perfmon" => 38,
        "bpf" => 39,
        other => bail!("capability {other} not known to this test"),
    })
}

/// A `/proc/PID/status` field as a number (`CapEff` is hex).
fn status_field(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?
        .trim();
    let radix = if field.starts_with("Cap") { 16 } else { 10 };
    Ok(u64::from_str_radix(value, radix)?)
}

/// A script that runs the agent binary with the unit's privileges.
struct Wrapper(PathBuf);

impl Wrapper {
    fn new(caps: &[String]) -> Result<Self> {
        let set = format!(
            "-all,{}",
            caps.iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let path = std::env::temp_dir().join(format!("wk-caps-{}.sh", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec setpriv --inh-caps={set} --ambient-caps={set} \
                 --bounding-set={set} --no-new-privs -- {BIN} \"$@\"\n"
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(Wrapper(path))
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
#[ignore = "needs root and corosync"]
fn agent_runs_with_the_unit_capabilities_only() -> Result<()> {
    // SAFETY: geteuid(2) cannot fail.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "needs root (namespaces, XDP)"
    );
    let _guard = crate::support::one_cluster_at_a_time();
    let caps = unit_caps()?;
    let wrapper = Wrapper::new(&caps)?;
    let mut opts = AgentClusterOptions::new(&wrapper.0);
    opts.nodes = 1;
    opts.vifs = 1;
    let mut cluster = AgentCluster::start(opts)?;
    let vip = AgentCluster::vip(1);

    // The process really runs with those capabilities and no more.
    let pid = cluster.agent_pid(0).context("agent pid")?;
    let mut want = 0u64;
    for c in &caps {
        want |= 1 << cap_bit(c)?;
    }
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        let got = status_field(pid, field)?;
        ensure!(got == want, "{field} {got:#x}, want {want:#x}");
    }
    ensure!(status_field(pid, "NoNewPrivs")? == 1, "NoNewPrivs not set");

    cluster.wait_counts(&[1], Duration::from_secs(20))?;
    ensure!(
        cluster.addresses(0)?.contains(&vip),
        "VIP {vip} not on the interface: {:?}\n{}",
        cluster.addresses(0)?,
        cluster.log_tail(0)
    );
    ensure!(
        !cluster.xdp_entries(0)?.is_empty(),
        "no XDP entries pinned\n{}",
        cluster.log_tail(0)
    );
    ensure!(
        cluster.who_answers(vip)? == [0],
        "ARP for {vip} not answered by the node"
    );

    // SIGTERM releases: address gone, pins removed, clean exit.
    cluster.kill_agent(0, libc::SIGTERM)?;
    let status = cluster.wait_agent_exit(0, Duration::from_secs(15))?;
    ensure!(
        status.success(),
        "agent exited {status}: {}",
        cluster.log_tail(0)
    );
    ensure!(
        !cluster.addresses(0)?.contains(&vip),
        "VIP {vip} left on the interface"
    );
    let log = cluster.log_tail(0);
    ensure!(
        !log.contains("Operation not permitted") && !log.contains("EPERM"),
        "a permission error was logged:\n{log}"
    );
    Ok(())
}

#[test]
#[ignore = "needs systemd-analyze (cargo xtask setup)"]
fn unit_file_verifies() -> Result<()> {
    // The unit names the installed binary; verify a copy that names this one.
    let dir = std::env::temp_dir().join(format!("wk-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let unit = dir.join("wackamole.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/sbin/wackamole", BIN))?;
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .context("running systemd-analyze (package systemd)")?;
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {}: {text}",
        out.status
    );
    Ok(())
}

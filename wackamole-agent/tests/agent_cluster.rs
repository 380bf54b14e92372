//! End-to-end: real `wackamole` agents on a Corosync cluster of namespaces,
//! seen from a client on the same LAN. Root only.

use anyhow::{bail, Result};
use std::time::Duration;
use wackamole::testbed::cluster::{AgentCluster, AgentClusterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_wackamole");

#[test]
fn smoke() -> Result<()> {
    if !wackamole::testbed::is_root() {
        bail!("needs root");
    }
    let c = AgentCluster::start(AgentClusterOptions::new(BIN))?;
    let s = c.wait_counts(&[2, 2, 2], Duration::from_secs(20))?;
    eprintln!(
        "{:?} {:?}",
        s.counts(),
        c.who_answers_all(&(1..=6).map(AgentCluster::vip).collect::<Vec<_>>())?
    );
    for argv in [
        &["arping", "-c", "2", "-w", "1", "-I", "eth0", "10.0.0.101"][..],
        &["arping", "-c", "2", "-w", "1", "-I", "eth0", "10.0.0.1"],
        &["ping", "-c1", "-W1", "10.0.0.101"],
        &["ip", "neigh"],
    ] {
        let o = c.client().command(argv[0]).args(&argv[1..]).output()?;
        eprintln!(
            "{argv:?}: {} {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    eprintln!("{}", c.ctl_ok(0, &["--json", "list"])?);
    eprintln!(
        "{}",
        c.ns(0)?
            .run(&[
                "bpftool",
                "map",
                "dump",
                "pinned",
                &format!("{}/vips", c.pin_dir(0)?.display())
            ])
            .unwrap_or_default()
    );
    eprintln!(
        "{:?}",
        std::fs::read_dir(c.pin_dir(0)?)?.collect::<Vec<_>>()
    );
    eprintln!("{}", c.log_tails());
    Ok(())
}

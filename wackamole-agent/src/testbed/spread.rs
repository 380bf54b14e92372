//! Spread 4.4 daemons in network namespaces on one machine.
//!
//! ```text
//!   [node ns sda: eth0 10.97.0.1] --+
//!   [node ns sdb: eth0 10.97.0.2] --+-- br0 in a switch ns
//!   [node ns sdc: eth0 10.97.0.3] --+
//! ```
//! Spread itself is not part of the project: the daemon binary is taken from
//! `WACKAMOLE_SPREAD_DAEMON` ([`daemon_from_env`]). Every daemon runs as
//! `nobody` (as root the daemon insists on chroot to `RuntimeDir` and setuid
//! to user `spread`, and exits if that fails) from a private directory holding its rendered `spread.conf` and its log,
//! with a daemon port of its own per cluster (Spread uses `port` and
//! `port + 1`). Agents reach their node's daemon over TCP at
//! [`SpreadCluster::endpoint`].
//!
//! The file system is shared, and every daemon (re)creates the Unix socket
//! `/tmp/<port>` when it starts. The daemons are started last to first, so
//! after [`SpreadCluster::start`] that socket belongs to node 0's daemon; a
//! later [`SpreadCluster::start_daemon`] takes it over.
//!
//! Dropping the cluster kills its daemons (also SIGSTOPped ones) and removes
//! its directory, its Unix socket and its namespaces.

use super::lan::{bed_dir, log_tail, Switch};
use super::{Netns, NsChild};
use crate::membership::spread::{start, SpreadOptions};
use crate::membership::MembershipHandle;
use anyhow::{anyhow, bail, Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Environment variable naming the Spread 4.4 daemon binary.
pub const DAEMON_ENV: &str = "WACKAMOLE_SPREAD_DAEMON";

/// The Spread daemon binary from [`DAEMON_ENV`], or why there is none.
pub fn daemon_from_env() -> std::result::Result<PathBuf, String> {
    match std::env::var_os(DAEMON_ENV) {
        None => Err(format!(
            "{DAEMON_ENV} is not set (path of a Spread 4.4 daemon binary)"
        )),
        Some(p) => {
            let path = PathBuf::from(p);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("{DAEMON_ENV}={} is not a file", path.display()))
            }
        }
    }
}

/// For the tests marked `#[ignore = "needs root and WACKAMOLE_SPREAD_DAEMON"]`:
/// the daemon from [`DAEMON_ENV`], after checking for root; fails (panics)
/// naming what is missing.
pub fn require_daemon() -> PathBuf {
    super::require_root();
    daemon_from_env().unwrap_or_else(|why| panic!("this test needs a Spread daemon: {why}"))
}

/// Spread membership timeout profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpreadProfile {
    /// Spread's built-in LAN defaults (no timeouts in the config).
    Default,
    /// The nine timeouts of `conf/spread-lan-fast.conf`.
    LanFast,
}

impl SpreadProfile {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            SpreadProfile::Default => "default",
            SpreadProfile::LanFast => "fast",
        }
    }

    /// The timeout lines to append to a rendered configuration.
    pub fn timeouts(self) -> String {
        match self {
            SpreadProfile::Default => String::new(),
            SpreadProfile::LanFast => {
                timeout_lines(include_str!("../../../conf/spread-lan-fast.conf"))
            }
        }
    }
}

/// The `<Name>Timeout = <ms>` lines of a Spread configuration, one per line.
pub fn timeout_lines(conf: &str) -> String {
    conf.lines()
        .map(str::trim)
        .filter(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim().ends_with("Timeout") && !k.contains('#'))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The `TokenTimeout` of [`timeout_lines`] output (milliseconds), if set.
pub fn token_timeout(lines: &str) -> Option<Duration> {
    lines.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "TokenTimeout")
            .then(|| v.trim().parse().ok().map(Duration::from_millis))
            .flatten()
    })
}

/// Daemon name of node `i`: `sda`, `sdb`, ...
pub fn daemon_name(i: usize) -> String {
    format!("sd{}", char::from(b'a' + (i % 26) as u8))
}

/// Address of node `i` on the cluster LAN.
pub fn node_addr(i: usize) -> String {
    format!("10.97.0.{}", i + 1)
}

/// A `spread.conf` with one segment (broadcast on 10.97.0.255) of `n`
/// daemons, each bound to its own address, plus the profile's timeouts.
pub fn render_conf(port: u16, n: usize, profile: SpreadProfile) -> String {
    let daemons: String = (0..n)
        .map(|i| {
            let addr = node_addr(i);
            format!("\t{} {addr} {{\n\t\t{addr}\n\t}}\n", daemon_name(i))
        })
        .collect();
    format!(
        "Spread_Segment 10.97.0.255:{port} {{\n{daemons}}}\n{}",
        profile.timeouts()
    )
}

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// A daemon port unique to this process and cluster (even: the daemon also
/// uses `port + 1`), so parallel tests and earlier clusters do not collide
/// on `/tmp/<port>`.
fn cluster_port(k: u32) -> u16 {
    let pid = std::process::id();
    20_000 + ((pid % 2_500) * 8 + (k % 4) * 2) as u16
}

/// One simulated host: a namespace with its Spread daemon.
#[derive(Debug)]
pub struct SpreadNode {
    /// The host's namespace (its interface is `eth0`).
    pub ns: Netns,
    /// Daemon name in the configuration (`sda`, ...).
    pub name: String,
    /// The host's address on the cluster LAN.
    pub addr: String,
    switch_port: String,
    dir: PathBuf,
    daemon: Option<NsChild>,
}

impl SpreadNode {
    /// This node's daemon log (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    /// PID of the running daemon, if any.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().and_then(NsChild::id)
    }
}

/// N Spread daemons on one bridge. See the module docs.
#[derive(Debug)]
pub struct SpreadCluster {
    /// The nodes, in configuration order.
    pub nodes: Vec<SpreadNode>,
    daemon: PathBuf,
    profile: SpreadProfile,
    port: u16,
    dir: PathBuf,
    // Declared last: dropped after the nodes, which hold its veth peers.
    switch: Switch,
}

/// Limit for a daemon to create its socket; they start within a second.
const START_LIMIT: Duration = Duration::from_secs(20);

impl SpreadCluster {
    /// Creates `n` nodes (1..=16) with `profile` and starts every daemon
    /// (last to first, see the module docs). The daemons form their ring by
    /// themselves; wait for it through the engines' views.
    pub fn start(daemon: &Path, n: usize, profile: SpreadProfile) -> Result<Self> {
        Self::start_with(daemon, n, profile, None)
    }

    /// [`SpreadCluster::start`] with `timeouts` (`<Name>Timeout = <ms>`
    /// lines, see [`timeout_lines`]) instead of the profile's, to measure
    /// other timers.
    pub fn start_with(
        daemon: &Path,
        n: usize,
        profile: SpreadProfile,
        timeouts: Option<&str>,
    ) -> Result<Self> {
        if n == 0 || n > 16 {
            bail!("spread test bed: {n} nodes (1..=16 supported)");
        }
        let k = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let port = cluster_port(k);
        let dir = bed_dir("spread", k)?;
        let switch = Switch::new("ssw")?;
        let mut cluster = SpreadCluster {
            nodes: Vec::new(),
            daemon: daemon.to_path_buf(),
            profile,
            port,
            dir,
            switch,
        };
        let mut conf = render_conf(port, n, profile);
        if let Some(t) = timeouts {
            conf = render_conf(port, n, SpreadProfile::Default) + t;
        }
        for i in 0..n {
            let ns = Netns::new(&format!("sp{}", i + 1))?;
            let switch_port = format!("sw{}", i + 1);
            let addr = node_addr(i);
            // The broadcast address matters: the segment is 10.97.0.255.
            cluster
                .switch
                .plug(&switch_port, &ns, "eth0", &format!("{addr}/24"))?;
            let name = daemon_name(i);
            let node_dir = cluster.dir.join(&name);
            std::fs::create_dir_all(&node_dir)
                .with_context(|| format!("creating {}", node_dir.display()))?;
            let conf_path = node_dir.join("spread.conf");
            std::fs::write(&conf_path, &conf)
                .with_context(|| format!("writing {}", conf_path.display()))?;
            cluster.nodes.push(SpreadNode {
                ns,
                name,
                addr,
                switch_port,
                dir: node_dir,
                daemon: None,
            });
        }
        for i in (0..n).rev() {
            cluster.start_daemon(i)?;
        }
        Ok(cluster)
    }

    /// The timeout profile.
    pub fn profile(&self) -> SpreadProfile {
        self.profile
    }

    /// The daemons' port (also the Unix socket `/tmp/<port>`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's temp dir (configs and logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TCP endpoint (`port@address`) of node `i`'s daemon.
    pub fn endpoint(&self, i: usize) -> Result<String> {
        Ok(format!("{}@{}", self.port, self.node(i)?.addr))
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> Result<&SpreadNode> {
        self.nodes
            .get(i)
            .ok_or_else(|| anyhow!("spread test bed: no node index {i}"))
    }

    /// The LAN switch.
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// Node `i`'s port on the switch.
    pub fn switch_port(&self, i: usize) -> Result<&str> {
        Ok(&self.node(i)?.switch_port)
    }

    /// The unix socket `/tmp/<port>`.
    pub fn unix_socket(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/{}", self.port))
    }

    /// Starts node `i`'s daemon (if not running) as `nobody` and waits until
    /// it has (re)created the Unix socket, i.e. it is listening.
    pub fn start_daemon(&mut self, i: usize) -> Result<()> {
        let socket = self.unix_socket();
        let daemon = self.daemon.clone();
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("spread test bed: no node index {i}"))?;
        if node.daemon.is_some() {
            return Ok(());
        }
        let before = socket_identity(&socket);
        let log_path = node.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut cmd = node.ns.command("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&daemon)
            .args(["-n", &node.name, "-c"])
            .arg(node.dir.join("spread.conf"))
            .current_dir(&node.dir)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        // ip netns exec and setpriv exec: the child is the daemon itself.
        node.daemon = Some(node.ns.spawn(&mut cmd)?);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let now = socket_identity(&socket);
            if now.is_some() && now != before {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = node
                .daemon
                .as_mut()
                .and_then(NsChild::child_mut)
                .map(|c| c.try_wait())
            {
                node.daemon = None;
                bail!(
                    "spread daemon {} exited ({status}) at start: {}",
                    node.name,
                    log_tail(&log_path)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "spread daemon {} did not create {} within {START_LIMIT:?}: {}",
                    node.name,
                    socket.display(),
                    log_tail(&log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs node `i`'s daemon and reaps it.
    pub fn kill_daemon(&mut self, i: usize) -> Result<()> {
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("spread test bed: no node index {i}"))?;
        // NsChild's drop SIGKILLs and waits.
        drop(node.daemon.take());
        Ok(())
    }

    /// Sends `signal` to node `i`'s daemon.
    pub fn signal_daemon(&self, i: usize, signal: i32) -> Result<()> {
        let node = self.node(i)?;
        node.daemon
            .as_ref()
            .ok_or_else(|| anyhow!("spread daemon {} is not running", node.name))?
            .signal(signal)
    }

    /// Takes node `i`'s cable out (its switch port goes down).
    pub fn link_down(&self, i: usize) -> Result<()> {
        self.switch.set_link(&self.node(i)?.switch_port, false)
    }

    /// Puts node `i`'s cable back.
    pub fn link_up(&self, i: usize) -> Result<()> {
        self.switch.set_link(&self.node(i)?.switch_port, true)
    }

    /// Starts the wackamole Spread engine with `opts` on a runtime whose
    /// threads live in node `i`'s namespace (the engine reconnects from
    /// there). Keep the runtime as long as the engine: dropping it ends the
    /// engine.
    pub fn start_engine(
        &self,
        i: usize,
        opts: SpreadOptions,
    ) -> Result<(MembershipHandle, tokio::runtime::Runtime)> {
        let node = self.node(i)?;
        // Threads inherit the network namespace of the thread creating them:
        // build the runtime (and so its worker) inside the namespace.
        let rt = node.ns.in_thread(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
        })??;
        let handle = rt
            .block_on(async { tokio::spawn(start(opts)).await })
            .context("spread engine task")?
            .with_context(|| format!("spread engine on test bed node {}", node.name))?;
        Ok((handle, rt))
    }

    /// The last lines of every daemon's log, for error reports.
    pub fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|n| log_tail(&n.log_path()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Identifies one creation of a file: inode numbers alone are reused at once
/// when a killed daemon's socket is replaced by its successor's.
fn socket_identity(path: &Path) -> Option<(u64, i64, i64)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
}

impl Drop for SpreadCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            // SIGKILL and reap (also works on a SIGSTOPped daemon).
            drop(node.daemon.take());
        }
        self.nodes.clear();
        let _ = std::fs::remove_file(self.unix_socket());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_fast_has_all_nine_timeouts() {
        let t = SpreadProfile::LanFast.timeouts();
        let keys: Vec<&str> = t
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .collect();
        assert_eq!(
            keys,
            [
                "TokenTimeout",
                "HurryTimeout",
                "AliveTimeout",
                "JoinTimeout",
                "RepTimeout",
                "SegTimeout",
                "GatherTimeout",
                "FormTimeout",
                "LookupTimeout"
            ]
        );
        assert!(t.contains("TokenTimeout = 500\n"));
        assert_eq!(SpreadProfile::Default.timeouts(), "");
    }

    /// The shipped faster profile: all nine timeouts (a partial set makes
    /// the daemon abort), its 100 ms token, and the agent settings its
    /// header asks for pass `check-config`.
    #[test]
    fn lan_faster_has_all_nine_timeouts_and_a_valid_agent_snippet() {
        let conf = include_str!("../../../conf/spread-lan-faster.conf");
        let t = timeout_lines(conf);
        let keys = |t: &str| -> Vec<String> {
            t.lines()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
                .collect()
        };
        assert_eq!(keys(&t), keys(&SpreadProfile::LanFast.timeouts()));
        assert_eq!(token_timeout(&t), Some(Duration::from_millis(100)));
        // The [engine] lines of the header, uncommented.
        let engine: String = conf
            .lines()
            .filter_map(|l| l.strip_prefix("#     "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .take_while(|l| !l.starts_with("soak"))
            .map(|l| format!("{}\n", l.split('#').next().unwrap_or(l).trim()))
            .collect();
        assert!(engine.contains("takeover_floor = \"100ms\""), "{engine}");
        let text = format!(
            "node = \"n1\"\n{engine}\n[[vif]]\nname = \"v\"\naddresses = [\"eth0:192.0.2.10/24\"]\n"
        );
        let host = crate::config::FakeInterfaces::new(["eth0"]);
        let cfg = crate::config::parse(&text, "snippet.toml", &host);
        assert!(cfg.is_ok(), "{text}\n{cfg:?}");
    }

    #[test]
    fn the_token_timeout_is_read_from_the_timeout_lines() {
        let lines = timeout_lines("# TokenTimeout = 1\nHurryTimeout = 40\nTokenTimeout = 100\n");
        assert_eq!(token_timeout(&lines), Some(Duration::from_millis(100)));
        assert_eq!(token_timeout("HurryTimeout = 40\n"), None);
        assert_eq!(token_timeout("TokenTimeout = soon\n"), None);
        assert_eq!(
            token_timeout(&SpreadProfile::LanFast.timeouts()),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn comments_are_not_timeouts() {
        assert_eq!(
            timeout_lines("# TokenTimeout = 1\nTokenTimeout = 2\n  JoinTimeout=3 \nFoo = 4\n"),
            "TokenTimeout = 2\nJoinTimeout=3\n"
        );
    }

    #[test]
    fn conf_lists_every_daemon_on_its_address() {
        let c = render_conf(20_002, 3, SpreadProfile::Default);
        assert!(c.starts_with("Spread_Segment 10.97.0.255:20002 {\n"));
        assert!(c.contains("\tsda 10.97.0.1 {\n\t\t10.97.0.1\n\t}\n"));
        assert!(c.contains("\tsdc 10.97.0.3 {\n\t\t10.97.0.3\n\t}\n}\n"));
        assert!(!c.contains("Timeout"));
    }

    #[test]
    fn ports_are_even_and_distinct_per_cluster() {
        let ports: Vec<u16> = (0..4).map(cluster_port).collect();
        for (i, p) in ports.iter().enumerate() {
            assert_eq!(p % 2, 0);
            assert!(!ports[i + 1..].contains(p));
        }
    }
}

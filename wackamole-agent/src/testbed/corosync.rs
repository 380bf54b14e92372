//! A Corosync 3 cluster of network namespaces on one machine.
//!
//! ```text
//!   [node ns n1: eth0 10.0.0.1] --+
//!   [node ns n2: eth0 10.0.0.2] --+-- br0 in a switch ns
//!   [node ns n3: eth0 10.0.0.3] --+
//! ```
//! Each node runs its own `corosync -f` (knet, aes256/sha256 with one shared
//! key) with a private `/run` (corosync always locks `/run/corosync.pid`), its
//! own `state_dir`, its config rendered from `conf/corosync-*.conf` and its
//! log in the cluster's temp dir. `/dev/shm` stays shared: libqb clients need
//! it; its IPC servers are found through abstract unix sockets, which are per
//! network namespace, so a client in node i's namespace reaches node i's
//! corosync.
//!
//! Clients: [`CorosyncNode::start_engine`] starts the wackamole Corosync engine
//! on a thread inside the node's namespace; [`Netns::command`] on
//! [`CorosyncNode::ns`] runs a process there.
//!
//! Dropping the cluster kills every corosync it started, removes their
//! `/dev/shm/qb-*` leftovers (IPC directories and blackbox files of those
//! PIDs), its temp dir and its namespaces, also when a test panics.

use super::lan::{bed_dir, log_tail, Switch};
use super::{Netns, NsChild};
use crate::membership::corosync::{start, CorosyncOptions};
use crate::membership::{MembershipEvent, MembershipHandle, Outgoing};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// corosync timer profiles (the `conf/` templates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// corosync's defaults: token 3000 ms + 650 ms per node above two.
    Default,
    /// token 50 ms, knet pings 200/2000 ms: ~100 ms detection on a LAN.
    Fast,
    /// token 36 ms, join 30, consensus 44 (corosync's smallest): ~88 ms.
    Faster,
}

impl Profile {
    /// The template from `conf/`.
    pub fn template(self) -> &'static str {
        match self {
            Profile::Default => include_str!("../../../conf/corosync-default.conf"),
            Profile::Fast => include_str!("../../../conf/corosync-lan-fast.conf"),
            Profile::Faster => include_str!("../../../conf/corosync-lan-faster.conf"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Fast => "fast",
            Profile::Faster => "faster",
        }
    }
}

/// Renders a `conf/` template for one node of `cluster`.
pub fn render_conf(
    profile: Profile,
    cluster: &str,
    nodes: &[(u32, String)],
    keyfile: &Path,
    state_dir: &Path,
) -> String {
    let nodelist: String = nodes
        .iter()
        .map(|(id, addr)| {
            format!(
                "    node {{\n        ring0_addr: {addr}\n        nodeid: {id}\n        name: n{id}\n    }}\n"
            )
        })
        .collect();
    profile
        .template()
        .replace("{{CLUSTER_NAME}}", cluster)
        .replace("{{KEYFILE}}", &keyfile.display().to_string())
        .replace("{{STATE_DIR}}", &state_dir.display().to_string())
        .replace("{{NODELIST}}", nodelist.trim_end_matches('\n'))
}

/// `conf` (a rendered template) with corosync's real-time scheduling off
/// (`system.sched_rr: no`).
pub fn without_real_time(conf: &str) -> String {
    conf.replacen("\nsystem {\n", "\nsystem {\n    sched_rr: no\n", 1)
}

/// `WKT_COROSYNC_NO_RT=1`: the test bed's corosyncs run without real-time
/// scheduling. On one small host every node's corosync runs at SCHED_RR 99
/// next to every other node's agent, which no real cluster does:
/// corosyncs re-forming a ring can starve every agent of the host (merges,
/// eight nodes).
fn real_time_off() -> bool {
    std::env::var_os("WKT_COROSYNC_NO_RT").is_some_and(|v| v == "1")
}

/// `conf` with `token: N` replaced by `totem` (`;`-separated `key: value`
/// lines), e.g. `token: 20; join: 20`: a candidate profile's timers.
pub fn with_totem(conf: &str, totem: &str) -> String {
    let lines: String = totem
        .split(';')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("    {l}\n"))
        .collect();
    let Some(start) = conf.find("\n    token: ") else {
        return conf.to_string();
    };
    let end = conf[start + 1..]
        .find('\n')
        .map_or(conf.len(), |e| start + 1 + e + 1);
    format!("{}\n{lines}{}", &conf[..start], &conf[end..])
}

/// `WKT_COROSYNC_TOTEM="token: 20; join: 20"`: the test bed's corosyncs run
/// with those totem timers instead of the profile's token (to measure a
/// candidate profile with the benches).
fn totem_override() -> Option<String> {
    std::env::var("WKT_COROSYNC_TOTEM")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// One simulated host: a namespace with its corosync.
#[derive(Debug)]
pub struct CorosyncNode {
    /// The host's namespace (its interface is `eth0`).
    pub ns: Netns,
    /// corosync nodeid (1-based position in the cluster).
    pub nodeid: u32,
    /// The host's address on the cluster LAN.
    pub addr: String,
    /// Name of this node's port on the switch's bridge.
    switch_port: String,
    conf: PathBuf,
    log: PathBuf,
    corosync: Option<NsChild>,
}

impl CorosyncNode {
    /// PID of the running corosync, if any.
    pub fn corosync_pid(&self) -> Option<u32> {
        self.corosync.as_ref().and_then(NsChild::id)
    }

    /// The rendered corosync.conf of this node.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// This node's corosync log (stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts the wackamole Corosync engine against this node's corosync, on
    /// an engine thread inside this node's namespace.
    pub fn start_engine(&self, opts: CorosyncOptions) -> Result<MembershipHandle> {
        let nodeid = self.nodeid;
        self.ns
            .in_thread(move || -> Result<MembershipHandle> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(start(opts))
            })?
            .with_context(|| format!("engine on test bed node {nodeid}"))
    }

    /// [`CorosyncNode::start_engine`] wrapped in an [`EventTap`].
    pub fn tap_engine(&self, opts: CorosyncOptions) -> Result<EventTap> {
        EventTap::new(self.start_engine(opts)?)
    }

    /// Sends `signal` to this node's corosync.
    pub fn signal_corosync(&self, signal: i32) -> Result<()> {
        self.corosync
            .as_ref()
            .ok_or_else(|| anyhow!("corosync of node {} is not running", self.nodeid))?
            .signal(signal)
    }

    /// Members that this node's corosync currently lists as joined
    /// (`corosync-cmapctl runtime.members`), or None if it does not answer.
    pub fn joined_members(&self) -> Option<usize> {
        let out = self
            .ns
            .command("corosync-cmapctl")
            .args(["-b", "runtime.members"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Some(
            text.lines()
                .filter(|l| l.contains(".status") && l.trim_end().ends_with("= joined"))
                .count(),
        )
    }
}

/// A membership engine seen from a test: every event is timestamped when it
/// leaves the engine (by a forwarding thread), so tests and benchmarks can
/// wait for events with timeouts and measure latencies. Works for any engine's
/// [`MembershipHandle`]. Dropping it shuts the engine down. Probes
/// (`Heard`) are left out.
pub struct EventTap {
    /// Which engine (from the handle).
    pub description: String,
    outgoing: tokio::sync::mpsc::Sender<Outgoing>,
    events: std::sync::mpsc::Receiver<(Instant, MembershipEvent)>,
}

impl EventTap {
    pub fn new(handle: MembershipHandle) -> Result<Self> {
        let MembershipHandle {
            description,
            mut events,
            outgoing,
            ..
        } = handle;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("event-tap".into())
            .spawn(move || {
                while let Some(ev) = events.blocking_recv() {
                    // Every member's probes, all the time: no test waits
                    // for them, and they would keep a tap from going quiet.
                    if matches!(ev, MembershipEvent::Heard { .. }) {
                        continue;
                    }
                    if tx.send((Instant::now(), ev)).is_err() {
                        return;
                    }
                }
            })
            .context("spawning the event tap thread")?;
        Ok(EventTap {
            description,
            outgoing,
            events: rx,
        })
    }

    /// The next event, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<(Instant, MembershipEvent)> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Skips events until one matches `pred` (within `timeout` overall);
    /// returns it with its timestamp and the skipped events.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&MembershipEvent) -> bool,
    ) -> Result<(Instant, MembershipEvent, Vec<MembershipEvent>)> {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((t, ev)) if pred(&ev) => return Ok((t, ev, skipped)),
                Ok((_, ev)) => skipped.push(ev),
                Err(_) => bail!(
                    "{}: expected event not seen within {timeout:?}; got {skipped:?}",
                    self.description
                ),
            }
        }
    }

    /// Waits for a view with exactly `n` members.
    pub fn wait_view(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(Instant, crate::membership::View)> {
        let (t, ev, _) = self.wait_for(
            timeout,
            |e| matches!(e, MembershipEvent::View(v) if v.members.len() == n),
        )?;
        match ev {
            MembershipEvent::View(v) => Ok((t, v)),
            _ => bail!("{}: not a view", self.description),
        }
    }

    /// The next event if one is already there.
    pub fn try_next(&self) -> Option<(Instant, MembershipEvent)> {
        self.events.try_recv().ok()
    }

    /// Drops every event already received.
    pub fn drain(&self) -> Vec<MembershipEvent> {
        self.events.try_iter().map(|(_, e)| e).collect()
    }

    /// Asks the engine to multicast `payload` (waits if its queue is full).
    pub fn send(&self, payload: Vec<u8>) -> Result<()> {
        self.request(Outgoing::Send(payload))
    }

    /// A sender for requests, usable from other threads.
    pub fn sender(&self) -> tokio::sync::mpsc::Sender<Outgoing> {
        self.outgoing.clone()
    }

    /// Any request to the engine.
    pub fn request(&self, req: Outgoing) -> Result<()> {
        self.outgoing
            .blocking_send(req)
            .map_err(|_| anyhow!("{}: engine has ended", self.description))
    }
}

/// Waits until every tap's latest event says it holds the same view of `n`
/// members and nothing has changed for 300 ms (a merge can go through
/// several rings; the first full view is not necessarily the last). Returns
/// when the last of those views arrived, and the views (in tap order).
pub fn converge(
    taps: &[EventTap],
    n: usize,
    timeout: Duration,
) -> Result<(Instant, Vec<crate::membership::View>)> {
    const QUIET: Duration = Duration::from_millis(300);
    let deadline = Instant::now() + timeout;
    let mut latest: Vec<Option<crate::membership::View>> = vec![None; taps.len()];
    let mut last_view = Instant::now();
    let mut last_change = Instant::now();
    loop {
        for (i, tap) in taps.iter().enumerate() {
            while let Some((t, ev)) = tap.try_next() {
                last_change = Instant::now();
                match ev {
                    MembershipEvent::View(v) => {
                        last_view = t;
                        latest[i] = Some(v);
                    }
                    MembershipEvent::Lost { .. } => latest[i] = None,
                    _ => {}
                }
            }
        }
        let first = latest.first().cloned().flatten();
        let agreed = first.as_ref().is_some_and(|f| {
            f.members.len() == n
                && latest.iter().all(|v| {
                    v.as_ref()
                        .is_some_and(|v| v.id == f.id && v.members == f.members)
                })
        });
        if agreed && last_change.elapsed() >= QUIET {
            return Ok((last_view, latest.into_iter().flatten().collect()));
        }
        if Instant::now() > deadline {
            bail!("views did not converge on {n} members within {timeout:?}: {latest:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// N nodes on one bridge, each with its own corosync. See the module docs.
#[derive(Debug)]
pub struct CorosyncCluster {
    /// The cluster's nodes, in nodeid order (`nodes[i].nodeid == i + 1`).
    pub nodes: Vec<CorosyncNode>,
    profile: Profile,
    dir: PathBuf,
    /// Every corosync PID this cluster started (for /dev/shm cleanup).
    started: BTreeSet<u32>,
    // Declared last: dropped after the nodes, which hold its veth peers.
    switch: Switch,
}

impl CorosyncCluster {
    /// Creates `n` nodes (1..=16) with `profile`, starts every corosync and
    /// waits until all of them list all `n` members as joined.
    pub fn start(n: usize, profile: Profile) -> Result<Self> {
        if n == 0 || n > 16 {
            bail!("corosync test bed: {n} nodes (1..=16 supported)");
        }
        if Command::new("corosync").arg("-v").output().is_err() {
            bail!("corosync test bed: `corosync` not found (apt-get install corosync)");
        }
        let k = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let dir = bed_dir("corosync", k)?;
        let switch = Switch::new("csw")?;
        let mut cluster = CorosyncCluster {
            nodes: Vec::new(),
            profile,
            dir,
            started: BTreeSet::new(),
            switch,
        };
        cluster.build(n)?;
        for i in 0..n {
            cluster.start_corosync(i)?;
        }
        cluster.wait_formed(n, Duration::from_secs(60))?;
        Ok(cluster)
    }

    fn build(&mut self, n: usize) -> Result<()> {
        let keyfile = self.dir.join("authkey");
        super::netns::checked(Command::new("corosync-keygen").arg("-k").arg(&keyfile))
            .context("corosync test bed: generating the cluster key")?;
        let members: Vec<(u32, String)> = (1..=n as u32)
            .map(|id| (id, format!("10.0.0.{id}")))
            .collect();
        let cluster_name = format!("wkt{}", CLUSTERS.load(Ordering::Relaxed));
        for (id, addr) in &members {
            let ns = Netns::new(&format!("cs{id}"))?;
            let port = format!("sw{id}");
            self.switch
                .plug(&port, &ns, "eth0", &format!("{addr}/24"))?;
            let state_dir = self.dir.join(format!("state-n{id}"));
            std::fs::create_dir_all(&state_dir)
                .with_context(|| format!("creating {}", state_dir.display()))?;
            let conf = self.dir.join(format!("corosync-n{id}.conf"));
            let mut text = render_conf(self.profile, &cluster_name, &members, &keyfile, &state_dir);
            if real_time_off() {
                text = without_real_time(&text);
            }
            if let Some(totem) = totem_override() {
                text = with_totem(&text, &totem);
            }
            std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
            self.nodes.push(CorosyncNode {
                ns,
                nodeid: *id,
                addr: addr.clone(),
                switch_port: port,
                log: self.dir.join(format!("corosync-n{id}.log")),
                conf,
                corosync: None,
            });
        }
        Ok(())
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The cluster's LAN switch.
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// The cluster's temp dir (configs, key, state dirs, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn node(&self, i: usize) -> Result<&CorosyncNode> {
        self.nodes
            .get(i)
            .ok_or_else(|| anyhow!("corosync test bed: no node index {i}"))
    }

    /// Starts node `i`'s corosync (if not running) and waits until its IPC answers.
    pub fn start_corosync(&mut self, i: usize) -> Result<()> {
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("corosync test bed: no node index {i}"))?;
        if node.corosync.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let script = format!(
            "mount -t tmpfs none /run && exec corosync -f -c '{}'",
            node.conf.display()
        );
        let mut cmd = node.ns.command("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(log.try_clone()?)
            .stderr(log);
        // ip netns exec, unshare and sh all exec: the child is corosync itself.
        let child = node.ns.spawn(&mut cmd)?;
        if let Some(pid) = child.id() {
            self.started.insert(pid);
        }
        node.corosync = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while node.joined_members().is_none() {
            if let Some(Ok(Some(status))) = node
                .corosync
                .as_mut()
                .and_then(NsChild::child_mut)
                .map(|c| c.try_wait())
            {
                node.corosync = None;
                bail!(
                    "corosync of node {} exited ({status}) at start: {}",
                    node.nodeid,
                    log_tail(&node.log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "corosync of node {} does not answer after 20 s: {}",
                    node.nodeid,
                    log_tail(&node.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGKILLs node `i`'s corosync and reaps it (its /dev/shm leftovers are
    /// removed at cleanup).
    pub fn kill_corosync(&mut self, i: usize) -> Result<()> {
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("corosync test bed: no node index {i}"))?;
        // NsChild's drop SIGKILLs and waits.
        drop(node.corosync.take());
        Ok(())
    }

    /// SIGSTOPs node `i`'s corosync (frozen: no callbacks, no token).
    pub fn stop_corosync(&self, i: usize) -> Result<()> {
        self.node(i)?.signal_corosync(libc::SIGSTOP)
    }

    /// SIGCONTs node `i`'s corosync.
    pub fn cont_corosync(&self, i: usize) -> Result<()> {
        self.node(i)?.signal_corosync(libc::SIGCONT)
    }

    /// Node `i`'s port on the switch.
    pub fn switch_port(&self, i: usize) -> Result<&str> {
        Ok(&self.node(i)?.switch_port)
    }

    /// Takes node `i`'s cable out (its switch port goes down).
    pub fn link_down(&self, i: usize) -> Result<()> {
        self.switch.set_link(&self.node(i)?.switch_port, false)
    }

    /// Puts node `i`'s cable back.
    pub fn link_up(&self, i: usize) -> Result<()> {
        self.switch.set_link(&self.node(i)?.switch_port, true)
    }

    /// Waits until the corosync of every node in `nodes` lists exactly
    /// `expect` joined members.
    pub fn wait_members(&self, nodes: &[usize], expect: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = true;
            for &i in nodes {
                if self.node(i)?.joined_members() != Some(expect) {
                    all = false;
                }
            }
            if all {
                return Ok(());
            }
            if Instant::now() > deadline {
                let seen: Vec<_> = nodes
                    .iter()
                    .map(|&i| self.nodes.get(i).and_then(CorosyncNode::joined_members))
                    .collect();
                bail!("corosync test bed: ring of {expect} not formed within {timeout:?} (joined per node: {seen:?}); logs in {}", self.dir.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every node's corosync lists all `n` members as joined.
    fn wait_formed(&self, n: usize, timeout: Duration) -> Result<()> {
        let all: Vec<usize> = (0..n).collect();
        self.wait_members(&all, n, timeout)
    }

    /// Removes `/dev/shm` entries left by the corosync PIDs this cluster
    /// started: libqb IPC directories `qb-<server pid>-<client pid>-...` and
    /// blackbox files `qb-corosync-<pid>-blackbox-*`.
    fn clean_shm(&self) {
        let Ok(dir) = std::fs::read_dir("/dev/shm") else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if shm_owner(&name).is_some_and(|pid| self.started.contains(&pid)) {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }
}

/// The corosync PID a `/dev/shm` entry belongs to, if it is a libqb one.
fn shm_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("qb-")?;
    let rest = rest.strip_prefix("corosync-").unwrap_or(rest);
    rest.split('-').next()?.parse().ok()
}

impl Drop for CorosyncCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            // SIGKILL and reap (also works on a SIGSTOPped corosync).
            drop(node.corosync.take());
        }
        self.clean_shm();
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // corosync's parser itself is exercised by the integration tests, which
    // start every cluster from these rendered templates.
    fn rendered(profile: Profile) -> String {
        let nodes = vec![(1, "10.0.0.1".to_string()), (2, "10.0.0.2".to_string())];
        render_conf(
            profile,
            "wkt",
            &nodes,
            Path::new("/tmp/key"),
            Path::new("/tmp/state"),
        )
    }

    #[test]
    fn real_time_can_be_turned_off_in_both_profiles() {
        for p in [Profile::Default, Profile::Fast, Profile::Faster] {
            let conf = without_real_time(&rendered(p));
            assert!(conf.contains("\nsystem {\n    sched_rr: no\n"), "{conf}");
            assert_eq!(conf.matches("sched_rr").count(), 1);
            assert!(!rendered(p).contains("sched_rr"));
        }
    }

    #[test]
    fn shm_names_map_to_their_corosync() {
        assert_eq!(shm_owner("qb-360-465-29-avpPmd"), Some(360));
        assert_eq!(shm_owner("qb-corosync-507-blackbox-data"), Some(507));
        assert_eq!(shm_owner("qb-corosync-blackbox"), None);
        assert_eq!(shm_owner("pulse-shm-123"), None);
    }

    #[test]
    fn a_candidate_profile_replaces_the_token_line() {
        let conf = "totem {\n    version: 2\n    token: 50\n    token_coefficient: 0\n}\n";
        assert_eq!(
            with_totem(conf, "token: 20; join: 20;"),
            "totem {\n    version: 2\n    token: 20\n    join: 20\n    token_coefficient: 0\n}\n"
        );
        assert_eq!(with_totem("totem {\n}\n", "token: 20"), "totem {\n}\n");
    }

    #[test]
    fn templates_render_completely() {
        for p in [Profile::Default, Profile::Fast, Profile::Faster] {
            let text = rendered(p);
            assert!(!text.contains("{{"), "{p:?} left a placeholder");
            assert!(text.contains("ring0_addr: 10.0.0.2\n        nodeid: 2"));
            assert!(text.contains("keyfile: /tmp/key"));
            assert!(text.contains("state_dir: /tmp/state"));
            assert!(text.contains("crypto_cipher: aes256"));
        }
        assert!(rendered(Profile::Fast).contains("knet_ping_timeout: 2000"));
        let faster = rendered(Profile::Faster);
        assert!(faster.contains("knet_ping_timeout: 2000"));
        for timer in ["token: 36\n", "join: 30\n", "consensus: 44\n"] {
            assert!(faster.contains(timer), "{timer}");
        }
        assert!(!rendered(Profile::Default).contains("\n    token:"));
    }
}

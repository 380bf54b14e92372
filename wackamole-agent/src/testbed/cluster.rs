//! A cluster of real `wackamole` agents on a [`CorosyncCluster`], with a
//! client on the same LAN.
//!
//! ```text
//!   [n1: eth0 10.0.0.1, corosync, wackamole run] --+
//!   [n2: eth0 10.0.0.2, corosync, wackamole run] --+-- br0 (switch ns)
//!   [n3: eth0 10.0.0.3, corosync, wackamole run] --+
//!   [client: eth0 10.0.0.200]                    --+
//!   [observer: eth0 10.0.0.251]                  --+
//! ```
//! VIF k (1-based) is `eth0:10.0.0.(100+k)/24` for k up to 99, in the nodes'
//! subnet, and `10.0.(1+j/250).(1+j%250)/24` with j = k-100 beyond (up to
//! 1000 VIFs); the client is on the /16, so it ARPs for every VIP directly and
//! the answering MAC tells which node holds it. The observer is a LAN
//! bystander of its own: its ARP requests and neighbour solicitations (see
//! `lab::arp_observer`) must not move the client's neighbour entries.
//!
//! Every agent is the real binary (`wackamole run -c FILE`) started in its
//! node's namespace, with its stderr appended to `agent-nI.log` in the
//! cluster's temp dir (tails are quoted in error messages). The agents pin
//! their XDP objects on a bpf filesystem the cluster mounts once on the host
//! under `/run` (`ip netns exec` remounts `/sys`, so `/sys/fs/bpf` inside a
//! namespace is not the host's bpffs; a `/run` mount is inherited).
//!
//! `WKT_KEEP_LOGS=DIR` copies the agents' and the daemons' logs there when the cluster drops.
//!
//! Dropping the cluster stops the agents (SIGTERM, then SIGKILL), unmounts the
//! bpffs, then the corosync cluster cleans up its daemons and namespaces.
//!
//! With [`AgentClusterOptions::on_spread`] the membership is a
//! [`SpreadCluster`] (LAN-fast timeouts) instead: each node's namespace also
//! has its Spread address (10.97.0.x) on `eth0`, its agent talks TCP to its
//! own daemon; the Corosync-only helpers ([`AgentCluster::corosync`],
//! [`AgentCluster::stop_node`]) are not available there.

use super::corosync::{CorosyncCluster, Profile};
use super::impair::{LinkLoss, Loss};
use super::spread::{SpreadCluster, SpreadProfile};
use super::{Netns, NsChild, Switch};
use crate::control::client::request_blocking;
use crate::control::protocol::{ListReply, Reply, Request, StatusReply};
use anyhow::{anyhow, bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static MOUNTS: AtomicU32 = AtomicU32::new(0);

/// The client's address on the cluster LAN.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 200);

/// The observer's address on the cluster LAN.
pub const OBSERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 251);

/// The observer's IPv6 address on the cluster LAN (with IPv6 VIPs): its
/// solicitations ask from it, so their answers reach only the observer.
pub const OBSERVER_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x251);

/// Addresses on the cluster LAN that nobody has: the ARP observer asks from
/// a different one each round (see `lab::arp_observer`), 400 ms before one
/// comes round again.
pub fn observer_addrs() -> Vec<Ipv4Addr> {
    (210..250).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect()
}

/// The client's IPv6 address on the cluster LAN (with [`VipFamily::Ipv6`]
/// or [`VipFamily::Dual`]).
pub const CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x200);

/// Which addresses each VIF of a test cluster has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VipFamily {
    /// One IPv4 address ([`AgentCluster::vip`]).
    #[default]
    Ipv4,
    /// One IPv6 address ([`AgentCluster::vip6`]).
    Ipv6,
    /// Both, moving together.
    Dual,
}

/// Most VIFs a cluster can place (see [`AgentCluster::vip`]): the XDP
/// map's capacity.
pub const MAX_VIFS: usize = wackamole_common::MAX_VIPS as usize;

/// How long a control request may take before the test gives up on it.
const CTL_TIMEOUT: Duration = Duration::from_secs(3);

/// What to build.
#[derive(Clone, Debug)]
pub struct AgentClusterOptions {
    /// The `wackamole` binary (`env!("CARGO_BIN_EXE_wackamole")` in tests).
    pub binary: PathBuf,
    /// Number of nodes (1..=16).
    pub nodes: usize,
    /// Number of VIFs (1..=1000), one address each.
    pub vifs: usize,
    /// corosync timers.
    pub profile: Profile,
    /// `mature` of every agent.
    pub mature: Duration,
    /// `balance.interval` of every agent.
    pub balance_interval: Duration,
    /// `xdp.lease` of every agent (`None`: "auto", from the engine).
    pub lease: Option<Duration>,
    /// `engine.watchdog_interval` / `engine.watchdog_deadline`: how soon an
    /// agent notices its corosync is frozen (the others notice after the
    /// token timeout, ~100 ms with the fast profile). `None`: not in the
    /// config (the engine's default: with Corosync, derived from its totem
    /// timers; use that with [`Profile::Default`]).
    pub watchdog: (Option<Duration>, Option<Duration>),
    /// `log.level` of every agent.
    pub log_level: String,
    /// `xdp.mode` of every agent. Default "skb": native XDP_TX on a veth is
    /// delivered only when the peer veth runs XDP too, and the switch-side
    /// ports here run none, so native ARP replies would be lost.
    pub xdp_mode: String,
    /// The VIFs' address families (default IPv4 only).
    pub family: VipFamily,
    /// Some(Spread 4.4 daemon binary): Spread membership instead of Corosync.
    pub spread: Option<PathBuf>,
    /// Spread timeout lines replacing the LAN-fast ones (measurements).
    pub spread_timeouts: Option<String>,
    /// `xdp.standby_addresses` of every agent.
    pub standby_addresses: bool,
    /// `engine.require_quorum` of every agent (Corosync only): a partition
    /// without votequorum's majority holds no VIF.
    pub require_quorum: bool,
    /// A `[detector]` section on every agent (beats between the nodes'
    /// LAN addresses 10.0.0.N, port [`DETECTOR_PORT`]): `Some(mode)`. The
    /// environment's `WKT_DETECTOR=observe` turns it on for every cluster.
    pub detector: Option<String>,
}

/// The beat port of the test bed's detectors.
pub const DETECTOR_PORT: u16 = 5407;

impl AgentClusterOptions {
    /// 3 nodes, 6 VIFs, fast corosync, 500 ms maturity and balance rounds, automatic lease.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        AgentClusterOptions {
            binary: binary.into(),
            nodes: 3,
            vifs: 6,
            profile: Profile::Fast,
            mature: Duration::from_millis(500),
            balance_interval: Duration::from_millis(500),
            lease: None,
            // Automatic probes (18 ms with the fast profile); a 500 ms
            // deadline rides out the hiccups of two shared cores.
            watchdog: (None, Some(Duration::from_millis(500))),
            log_level: "debug".into(),
            xdp_mode: "skb".into(),
            family: VipFamily::Ipv4,
            spread: None,
            spread_timeouts: None,
            standby_addresses: false,
            require_quorum: false,
            detector: std::env::var("WKT_DETECTOR").ok().filter(|m| !m.is_empty()),
        }
    }

    /// The same on Spread daemons (`daemon`: the binary) with LAN-fast
    /// timeouts and the Spread engine's watchdog defaults (a probe every
    /// 20 ms: several per fencing lease of its 500 ms takeover floor).
    pub fn on_spread(mut self, daemon: impl Into<PathBuf>) -> Self {
        self.spread = Some(daemon.into());
        self.watchdog = (
            Some(crate::membership::spread::DEFAULT_WATCHDOG_INTERVAL),
            Some(crate::membership::spread::DEFAULT_WATCHDOG_DEADLINE),
        );
        self
    }
}

/// The membership under the agents.
#[derive(Debug)]
enum Bed {
    Corosync(CorosyncCluster),
    Spread(SpreadCluster),
}

impl Bed {
    fn switch(&self) -> &Switch {
        match self {
            Bed::Corosync(c) => c.switch(),
            Bed::Spread(s) => s.switch(),
        }
    }

    fn switch_port(&self, i: usize) -> Result<&str> {
        match self {
            Bed::Corosync(c) => c.switch_port(i),
            Bed::Spread(s) => s.switch_port(i),
        }
    }

    fn dir(&self) -> &Path {
        match self {
            Bed::Corosync(c) => c.dir(),
            Bed::Spread(s) => s.dir(),
        }
    }

    /// Each node's membership daemon log.
    fn daemon_logs(&self) -> Vec<PathBuf> {
        match self {
            Bed::Corosync(c) => c.nodes.iter().map(|n| n.log_path().to_path_buf()).collect(),
            Bed::Spread(s) => s.nodes.iter().map(|n| n.log_path()).collect(),
        }
    }

    fn namespaces(&self) -> Vec<&Netns> {
        match self {
            Bed::Corosync(c) => c.nodes.iter().map(|n| &n.ns).collect(),
            Bed::Spread(s) => s.nodes.iter().map(|n| &n.ns).collect(),
        }
    }

    fn link(&self, i: usize, up: bool) -> Result<()> {
        match (self, up) {
            (Bed::Corosync(c), true) => c.link_up(i),
            (Bed::Corosync(c), false) => c.link_down(i),
            (Bed::Spread(s), true) => s.link_up(i),
            (Bed::Spread(s), false) => s.link_down(i),
        }
    }
}

/// What every running agent answered at one moment (`None`: not running or no answer).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub lists: Vec<Option<ListReply>>,
    pub statuses: Vec<Option<StatusReply>>,
}

impl Snapshot {
    /// The owner of VIF `vif` according to node `i` (None if unknown).
    pub fn owner_seen_by(&self, i: usize, vif: &str) -> Option<String> {
        self.lists
            .get(i)?
            .as_ref()?
            .vifs
            .iter()
            .find(|v| v.name == vif)?
            .owner
            .clone()
    }

    /// Names of the VIFs node `i` says it holds (`state == "owned"`).
    pub fn held_by(&self, i: usize) -> Vec<String> {
        self.lists
            .get(i)
            .and_then(Option::as_ref)
            .map(|l| {
                l.vifs
                    .iter()
                    .filter(|v| v.state == "owned")
                    .map(|v| v.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when every answering agent agrees on every VIF's owner, every
    /// VIF has one, and each owner says it holds it.
    pub fn agreed(&self) -> bool {
        let answering: Vec<usize> = (0..self.lists.len())
            .filter(|i| self.lists.get(*i).is_some_and(Option::is_some))
            .collect();
        self.agreed_among(&answering)
    }

    /// [`Snapshot::agreed`] among `nodes` only (e.g. one side of a partition):
    /// all of them answer, agree on every VIF's owner, the owner is one of
    /// them and says it holds the VIF.
    pub fn agreed_among(&self, nodes: &[usize]) -> bool {
        let mut lists = Vec::new();
        for &i in nodes {
            match self.lists.get(i).and_then(Option::as_ref) {
                Some(l) => lists.push(l),
                None => return false,
            }
        }
        let Some(first) = lists.first() else {
            return false;
        };
        first.vifs.iter().all(|vif| {
            let Some(owner) = vif.owner.as_ref() else {
                return false;
            };
            lists.iter().all(|l| {
                l.vifs
                    .iter()
                    .any(|v| v.name == vif.name && v.owner.as_ref() == Some(owner))
            }) && nodes.iter().any(|&i| {
                self.node_name(i).as_ref() == Some(owner) && self.held_by(i).contains(&vif.name)
            })
        })
    }

    /// Node `i`'s own name, from its status.
    pub fn node_name(&self, i: usize) -> Option<String> {
        self.statuses
            .get(i)
            .and_then(Option::as_ref)
            .map(|s| s.node.clone())
    }

    /// How many VIFs each node holds (by node index), from their own lists.
    pub fn counts(&self) -> Vec<usize> {
        (0..self.lists.len())
            .map(|i| self.held_by(i).len())
            .collect()
    }

    /// True when every running agent's status lists `n` members, all mature.
    pub fn members_mature(&self, n: usize) -> bool {
        let statuses: Vec<&StatusReply> = self.statuses.iter().flatten().collect();
        !statuses.is_empty()
            && statuses
                .iter()
                .all(|s| s.members.len() == n && s.members.iter().all(|m| m.mature))
    }
}

/// One agent host: a [`CorosyncCluster`] node plus its `wackamole` process.
#[derive(Debug)]
struct AgentNode {
    name: String,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    mac: [u8; 6],
    agent: Option<NsChild>,
}

/// N agents on a corosync cluster, and a client. See the module docs.
#[derive(Debug)]
pub struct AgentCluster {
    opts: AgentClusterOptions,
    agents: Vec<AgentNode>,
    client: Netns,
    /// A bystander on the LAN for the ARP and NS observers.
    observer: Netns,
    /// bpffs mount point on the host.
    bpffs: PathBuf,
    bpffs_mounted: bool,
    /// The test that made it (its thread's name), for `WKT_KEEP_LOGS`.
    test: String,
    // Declared last: dropped after the agents and the client.
    bed: Bed,
}

impl AgentCluster {
    /// Builds the cluster, starts every agent and waits until they all
    /// answer on their control sockets.
    pub fn start(opts: AgentClusterOptions) -> Result<Self> {
        if opts.vifs == 0 || opts.vifs > MAX_VIFS {
            bail!(
                "agent test bed: {} VIFs (1..={MAX_VIFS} supported)",
                opts.vifs
            );
        }
        if !opts.binary.exists() {
            bail!("agent test bed: no binary at {}", opts.binary.display());
        }
        let bed = match &opts.spread {
            None => Bed::Corosync(CorosyncCluster::start(opts.nodes, opts.profile)?),
            Some(daemon) => {
                let s = SpreadCluster::start_with(
                    daemon,
                    opts.nodes,
                    SpreadProfile::LanFast,
                    opts.spread_timeouts.as_deref(),
                )?;
                // The agents' LAN addresses, as on Corosync (the VIPs' subnet).
                for (i, n) in s.nodes.iter().enumerate() {
                    n.ns.run(&[
                        "ip",
                        "addr",
                        "add",
                        &format!("10.0.0.{}/24", i + 1),
                        "dev",
                        "eth0",
                    ])?;
                }
                Bed::Spread(s)
            }
        };
        let k = MOUNTS.fetch_add(1, Ordering::Relaxed);
        let bpffs = PathBuf::from(format!("/run/wkt-bpf-{}-{k}", std::process::id()));
        let client = Netns::new("client")?;
        let observer = Netns::new("observer")?;
        let mut cluster = AgentCluster {
            opts,
            agents: Vec::new(),
            client,
            observer,
            bpffs,
            bpffs_mounted: false,
            test: (std::thread::current().name().unwrap_or("main")).replace("::", "-"),
            bed,
        };
        cluster.mount_bpffs()?;
        cluster.attach_client()?;
        cluster.write_configs(k)?;
        for i in 0..cluster.agents.len() {
            cluster.start_agent(i)?;
        }
        Ok(cluster)
    }

    fn mount_bpffs(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.bpffs)
            .with_context(|| format!("creating {}", self.bpffs.display()))?;
        super::netns::checked(
            Command::new("mount")
                .args(["-t", "bpf", "bpf"])
                .arg(&self.bpffs),
        )
        .context("agent test bed: mounting a bpffs")?;
        self.bpffs_mounted = true;
        Ok(())
    }

    fn attach_client(&self) -> Result<()> {
        let switch = self.bed.switch();
        switch.plug("swc", &self.client, "eth0", &format!("{CLIENT_ADDR}/16"))?;
        switch.plug(
            "swo",
            &self.observer,
            "eth0",
            &format!("{OBSERVER_ADDR}/16"),
        )?;
        if self.opts.family != VipFamily::Ipv4 {
            for (ns, addr) in [
                (&self.client, CLIENT_ADDR6),
                (&self.observer, OBSERVER_ADDR6),
            ] {
                ns.run(&[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{addr}/64"),
                    "dev",
                    "eth0",
                    "nodad",
                ])?;
            }
        }
        Ok(())
    }

    fn write_configs(&mut self, k: u32) -> Result<()> {
        let dir = self.bed.dir().to_path_buf();
        let group = format!("wkt{}x{k}", std::process::id());
        let mut agents = Vec::new();
        for (i, ns) in self.bed.namespaces().into_iter().enumerate() {
            let name = format!("n{}", i + 1);
            let socket = dir.join(format!("ctl-{name}")).join("control.sock");
            let config = dir.join(format!("agent-{name}.toml"));
            let mut text = render_config(&self.opts, &name, &group, &socket, &self.pin_root());
            if let Bed::Spread(s) = &self.bed {
                text = text.replacen(
                    "kind = \"corosync\"\n",
                    &format!(
                        "kind = \"spread\"\ndaemon = \"{}\"\nreconnect_interval = \"1s\"\n",
                        s.endpoint(i)?
                    ),
                    1,
                );
                // Daemons with their own timeouts: the agents' takeover
                // floor is their TokenTimeout, probed three times per lease.
                let token = self
                    .opts
                    .spread_timeouts
                    .as_deref()
                    .and_then(super::spread::token_timeout);
                if let (Some(token), Some(interval)) = (token, self.opts.watchdog.0) {
                    let probe = interval.min(token / 6);
                    text = text.replacen(
                        &format!("watchdog_interval = \"{}\"\n", ms(interval)),
                        &format!(
                            "watchdog_interval = \"{}\"\ntakeover_floor = \"{}\"\n",
                            ms(probe),
                            ms(token)
                        ),
                        1,
                    );
                }
            }
            std::fs::write(&config, text)
                .with_context(|| format!("writing {}", config.display()))?;
            agents.push(AgentNode {
                mac: ns.mac("eth0")?,
                log: dir.join(format!("agent-{name}.log")),
                name,
                config,
                socket,
                agent: None,
            });
        }
        self.agents = agents;
        Ok(())
    }

    /// The `bpffs_dir` of every agent: `<mount>/wackamole`.
    pub fn pin_root(&self) -> PathBuf {
        self.bpffs.join("wackamole")
    }

    /// Node `i`'s XDP pin directory (`<bpffs_dir>/<node name>`).
    pub fn pin_dir(&self, i: usize) -> Result<PathBuf> {
        Ok(self.pin_root().join(&self.agent(i)?.name))
    }

    fn agent(&self, i: usize) -> Result<&AgentNode> {
        self.agents
            .get(i)
            .ok_or_else(|| anyhow!("agent test bed: no node index {i}"))
    }

    fn agent_mut(&mut self, i: usize) -> Result<&mut AgentNode> {
        self.agents
            .get_mut(i)
            .ok_or_else(|| anyhow!("agent test bed: no node index {i}"))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Always false (a cluster has at least one node).
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The underlying corosync cluster (namespaces, corosync faults).
    ///
    /// # Panics
    /// On a Spread test bed ([`AgentClusterOptions::on_spread`]): a test
    /// of Corosync faults has no meaning there.
    pub fn corosync(&self) -> &CorosyncCluster {
        match &self.bed {
            Bed::Corosync(c) => c,
            Bed::Spread(_) => panic!("agent test bed: a Spread bed has no corosync"),
        }
    }

    /// Mutable access, e.g. to kill or restart a corosync.
    ///
    /// # Panics
    /// On a Spread test bed, as [`AgentCluster::corosync`].
    pub fn corosync_mut(&mut self) -> &mut CorosyncCluster {
        match &mut self.bed {
            Bed::Corosync(c) => c,
            Bed::Spread(_) => panic!("agent test bed: a Spread bed has no corosync"),
        }
    }

    /// The underlying Spread cluster, on a Spread test bed.
    pub fn spread(&self) -> Option<&SpreadCluster> {
        match &self.bed {
            Bed::Spread(s) => Some(s),
            Bed::Corosync(_) => None,
        }
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> Result<&Netns> {
        self.bed
            .namespaces()
            .get(i)
            .copied()
            .ok_or_else(|| anyhow!("agent test bed: no node index {i}"))
    }

    /// The client's namespace (interface `eth0`, address [`CLIENT_ADDR`]).
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The observer's namespace (interface `eth0`, address
    /// [`OBSERVER_ADDR`]): where the ARP and NS observers run.
    pub fn observer(&self) -> &Netns {
        &self.observer
    }

    /// Node `i`'s name (`n1`...).
    pub fn name(&self, i: usize) -> Result<&str> {
        Ok(&self.agent(i)?.name)
    }

    /// Node `i`'s generated configuration file.
    pub fn config_path(&self, i: usize) -> Result<&Path> {
        Ok(&self.agent(i)?.config)
    }

    /// Node `i`'s control socket.
    pub fn socket(&self, i: usize) -> Result<&Path> {
        Ok(&self.agent(i)?.socket)
    }

    /// Node `i`'s agent log (stderr of every run, appended).
    pub fn log_path(&self, i: usize) -> Result<&Path> {
        Ok(&self.agent(i)?.log)
    }

    /// The MAC address of node `i`'s `eth0`.
    pub fn mac(&self, i: usize) -> Result<[u8; 6]> {
        Ok(self.agent(i)?.mac)
    }

    /// VIF `k`'s name (1-based): `v1`...
    pub fn vif_name(k: usize) -> String {
        format!("v{k}")
    }

    /// VIF `k`'s address (1-based): `10.0.0.(100+k)` up to 99, then
    /// `10.0.(1+j/250).(1+j%250)` with `j = k-100` (see the module docs).
    pub fn vip(k: usize) -> Ipv4Addr {
        let k = k.min(MAX_VIFS);
        if k <= 99 {
            Ipv4Addr::new(10, 0, 0, 100 + k as u8)
        } else {
            let j = k - 100;
            Ipv4Addr::new(10, 0, 1 + (j / 250) as u8, 1 + (j % 250) as u8)
        }
    }

    /// VIF `k`'s IPv6 address (1-based): `fd77::1:<k>` in the client's /64.
    pub fn vip6(k: usize) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 1, k.min(MAX_VIFS) as u16)
    }

    /// The IPv6 addresses on node `i`'s `eth0` (link-local ones too).
    pub fn addresses6(&self, i: usize) -> Result<Vec<Ipv6Addr>> {
        let out = self
            .ns(i)?
            .run(&["ip", "-6", "-o", "addr", "show", "dev", "eth0"])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet6")?;
                words.next()?.split('/').next()?.parse().ok()
            })
            .collect())
    }

    /// Which nodes answer a neighbour solicitation for `vip` from the client
    /// (`ndisc6`, every reply within a second). Unknown MACs are an error.
    pub fn who_answers6(&self, vip: Ipv6Addr) -> Result<Vec<usize>> {
        let out = self
            .client
            .command("ndisc6")
            .args([
                "-m",
                "-n",
                "-r",
                "1",
                "-w",
                "1000",
                &vip.to_string(),
                "eth0",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("running ndisc6 for {vip} (is ndisc6 installed?)"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut macs = Vec::new();
        for line in text.lines() {
            if let Some(mac) = line.trim().strip_prefix("Target link-layer address:") {
                macs.push(super::netns::parse_mac(mac.trim())?);
            }
        }
        self.macs_to_nodes(vip, macs.into_iter())
    }

    /// Every VIF name, in order.
    pub fn vif_names(&self) -> Vec<String> {
        (1..=self.opts.vifs).map(Self::vif_name).collect()
    }

    /// Starts node `i`'s agent (if not running) and waits until its control
    /// socket answers `status`.
    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        self.start_agent_with_env(i, &[])
    }

    /// [`AgentCluster::start_agent`] with extra environment variables for
    /// the agent (e.g. a test knob of `lab` builds).
    pub fn start_agent_with_env(&mut self, i: usize, env: &[(&str, &str)]) -> Result<()> {
        let binary = self.opts.binary.clone();
        let ns_name = self.ns(i)?.name().to_string();
        let node = self.agent(i)?;
        if node.agent.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns_name])
            .arg(&binary)
            .arg("run")
            .arg("-c")
            .arg(&node.config)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = self.ns(i)?.spawn(&mut cmd)?;
        let socket = node.socket.clone();
        self.agent_mut(i)?.agent = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(reply) = request_blocking(&socket, &Request::Status, CTL_TIMEOUT) {
                if reply.ok {
                    return Ok(());
                }
            }
            if let Some(status) = self.try_wait(i)? {
                bail!(
                    "agent {} exited ({status}) at start: {}",
                    self.name(i)?,
                    self.log_tail(i)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "agent {} does not answer on {} after 20 s: {}",
                    self.name(i)?,
                    socket.display(),
                    self.log_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether node `i`'s agent process is running (started and not reaped).
    pub fn agent_running(&self, i: usize) -> bool {
        self.agents.get(i).is_some_and(|a| a.agent.is_some())
    }

    /// Polls node `i`'s agent; Some(status) (and forgets it) if it has exited.
    fn try_wait(&mut self, i: usize) -> Result<Option<ExitStatus>> {
        let node = self.agent_mut(i)?;
        let status = match node.agent.as_mut().and_then(NsChild::child_mut) {
            Some(c) => c.try_wait().context("waiting for an agent")?,
            None => return Ok(None),
        };
        if status.is_some() {
            if let Some(child) = node.agent.take() {
                let _ = child.into_inner();
            }
        }
        Ok(status)
    }

    /// Sends `signal` to node `i`'s agent.
    pub fn kill_agent(&self, i: usize, signal: i32) -> Result<()> {
        let node = self.agent(i)?;
        node.agent
            .as_ref()
            .ok_or_else(|| anyhow!("agent {} is not running", node.name))?
            .signal(signal)
    }

    /// Waits until node `i`'s agent exits and returns its status.
    pub fn wait_agent_exit(&mut self, i: usize, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        if !self.agent_running(i) {
            bail!("agent {} is not running", self.name(i)?);
        }
        loop {
            if let Some(status) = self.try_wait(i)? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "agent {} still running after {timeout:?}: {}",
                    self.name(i)?,
                    self.log_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs node `i`'s agent and reaps it (its pins and addresses stay).
    pub fn crash_agent(&mut self, i: usize) -> Result<()> {
        drop(self.agent_mut(i)?.agent.take());
        Ok(())
    }

    /// One control request to node `i`'s agent.
    pub fn request(&self, i: usize, req: &Request) -> Result<Reply> {
        let node = self.agent(i)?;
        request_blocking(&node.socket, req, CTL_TIMEOUT)
            .with_context(|| format!("control request {} to {}", req.name(), node.name))
    }

    /// Node `i`'s `list`.
    pub fn list(&self, i: usize) -> Result<ListReply> {
        let reply = self.request(i, &Request::List)?;
        reply
            .list
            .ok_or_else(|| anyhow!("node {i}: list answered {:?}", reply.error))
    }

    /// Node `i`'s `status`.
    pub fn status(&self, i: usize) -> Result<StatusReply> {
        let reply = self.request(i, &Request::Status)?;
        reply
            .status
            .ok_or_else(|| anyhow!("node {i}: status answered {:?}", reply.error))
    }

    /// Runs `wackamole ctl --socket <node i's socket> ARGS` (on the host) and
    /// returns its output.
    pub fn ctl(&self, i: usize, args: &[&str]) -> Result<Output> {
        let node = self.agent(i)?;
        Command::new(&self.opts.binary)
            .arg("ctl")
            .arg("--socket")
            .arg(&node.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running wackamole ctl {args:?} for {}", node.name))
    }

    /// [`AgentCluster::ctl`] that must exit 0; returns stdout.
    pub fn ctl_ok(&self, i: usize, args: &[&str]) -> Result<String> {
        let out = self.ctl(i, args)?;
        if !out.status.success() {
            bail!(
                "wackamole ctl {args:?} on {} failed ({}): {}{}",
                self.name(i)?,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// What every running agent answers now.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for (i, node) in self.agents.iter().enumerate() {
            if node.agent.is_none() {
                s.lists.push(None);
                s.statuses.push(None);
                continue;
            }
            s.lists.push(self.list(i).ok());
            s.statuses.push(self.status(i).ok());
        }
        s
    }

    /// Polls [`AgentCluster::snapshot`] every 100 ms until `pred` holds;
    /// fails after `timeout` with the last snapshot and the agents' log tails.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Snapshot> {
        let deadline = Instant::now() + timeout;
        loop {
            let snap = self.snapshot();
            if pred(&snap) {
                return Ok(snap);
            }
            if Instant::now() > deadline {
                bail!(
                    "agent test bed: not reached within {timeout:?}: {what}\nlast snapshot: counts {:?}, owners {:?}\n{}",
                    snap.counts(),
                    (0..snap.lists.len()).map(|i| snap.held_by(i)).collect::<Vec<_>>(),
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the running agents agree on an owner for every VIF and
    /// hold `counts[i]` VIFs each (a stopped node's count must be 0).
    pub fn wait_counts(&self, counts: &[usize], timeout: Duration) -> Result<Snapshot> {
        self.wait_until(
            &format!("agreed allocation with counts {counts:?}"),
            timeout,
            |s| s.agreed() && s.counts() == counts,
        )
    }

    /// Waits until `nodes` agree among themselves on an owner (one of them)
    /// for every VIF and node `nodes[j]` holds `counts[j]` VIFs.
    pub fn wait_counts_among(
        &self,
        nodes: &[usize],
        counts: &[usize],
        timeout: Duration,
    ) -> Result<Snapshot> {
        self.wait_until(
            &format!("nodes {nodes:?} agree with counts {counts:?}"),
            timeout,
            |s| {
                let c = s.counts();
                s.agreed_among(nodes)
                    && nodes
                        .iter()
                        .zip(counts)
                        .all(|(&i, &n)| c.get(i) == Some(&n))
            },
        )
    }

    /// The index of the node named `name` (`n1` → 0).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.agents.iter().position(|a| a.name == name)
    }

    /// Which nodes answer ARP for `vip` from the client (one request, replies
    /// collected for about a second). Unknown MACs are an error.
    pub fn who_answers(&self, vip: Ipv4Addr) -> Result<Vec<usize>> {
        let replies =
            crate::lab::arping::arping(&self.client, "eth0", vip, 2, Duration::from_secs(1))?;
        self.macs_to_nodes(vip, replies.iter().map(|r| r.mac))
    }

    /// [`AgentCluster::who_answers`] for several VIPs at once (in parallel).
    pub fn who_answers_all(&self, vips: &[Ipv4Addr]) -> Result<Vec<Vec<usize>>> {
        let children: Vec<_> = vips
            .iter()
            .map(|vip| {
                self.client
                    .command("arping")
                    .args(["-c", "2", "-w", "1", "-I", "eth0", &vip.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("running arping for {vip}"))
            })
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        for (child, vip) in children.into_iter().zip(vips) {
            let o = child
                .wait_with_output()
                .with_context(|| format!("arping for {vip}"))?;
            let replies = crate::lab::arping::parse_replies(&String::from_utf8_lossy(&o.stdout));
            out.push(self.macs_to_nodes(*vip, replies.iter().map(|r| r.mac))?);
        }
        Ok(out)
    }

    fn macs_to_nodes(
        &self,
        vip: impl Into<IpAddr>,
        macs: impl Iterator<Item = [u8; 6]>,
    ) -> Result<Vec<usize>> {
        let vip = vip.into();
        let mut nodes = Vec::new();
        for mac in macs {
            let i = self
                .agents
                .iter()
                .position(|a| a.mac == mac)
                .ok_or_else(|| {
                    anyhow!(
                        "{vip} answered by unknown MAC {}",
                        crate::lab::arping::fmt_mac(&mac)
                    )
                })?;
            if !nodes.contains(&i) {
                nodes.push(i);
            }
        }
        nodes.sort_unstable();
        Ok(nodes)
    }

    /// The IPv4 addresses on node `i`'s `eth0`.
    pub fn addresses(&self, i: usize) -> Result<Vec<Ipv4Addr>> {
        let out = self
            .ns(i)?
            .run(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet")?;
                words.next()?.split('/').next()?.parse().ok()
            })
            .collect())
    }

    /// Node `i`'s XDP VIP table, read from its pinned map: (address, state)
    /// with state one of `wackamole_common::vip_state`. Empty when nothing
    /// is pinned (agent stopped cleanly).
    pub fn xdp_entries(&self, i: usize) -> Result<Vec<(Ipv4Addr, u32)>> {
        use wackamole_common::{names, VipEntry, VipKey};
        let path = self.pin_dir(i)?.join(names::VIPS);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let data = aya::maps::MapData::from_pin(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let map: aya::maps::HashMap<_, VipKey, VipEntry> =
            aya::maps::HashMap::try_from(aya::maps::Map::HashMap(data))
                .with_context(|| format!("{} is not the VIP hash map", path.display()))?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (key, entry) = item.with_context(|| format!("reading {}", path.display()))?;
            if let Some(o) = key.ipv4_octets() {
                out.push((Ipv4Addr::from(o), entry.state));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Takes node `i`'s cable out.
    pub fn link_down(&self, i: usize) -> Result<()> {
        self.bed.link(i, false)
    }

    /// Puts node `i`'s cable back.
    pub fn link_up(&self, i: usize) -> Result<()> {
        self.bed.link(i, true)
    }

    /// The last lines of node `i`'s agent log.
    pub fn log_tail(&self, i: usize) -> String {
        match self.agents.get(i) {
            Some(a) => tail(&a.log, 25),
            None => String::new(),
        }
    }

    /// The last lines of every agent's log; with `WKT_STACKS` set, also
    /// every running agent's thread stacks (gdb), to diagnose a hang.
    pub fn log_tails(&self) -> String {
        let mut out = (0..self.agents.len())
            .map(|i| self.log_tail(i))
            .collect::<Vec<_>>()
            .join("\n");
        if std::env::var_os("WKT_STACKS").is_some() {
            for i in 0..self.agents.len() {
                if let Some(pid) = self.agent_pid(i) {
                    out.push_str(&format!("\n--- agent {} (pid {pid}) threads:\n", i + 1));
                    out.push_str(&thread_stacks(pid));
                }
            }
        }
        out
    }

    /// Stops every agent: SIGTERM, up to 5 s to exit, then SIGKILL.
    pub fn stop_agents(&mut self) {
        for node in &self.agents {
            if let Some(a) = &node.agent {
                let _ = a.signal(libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for node in &mut self.agents {
            while let Some(c) = node.agent.as_mut().and_then(NsChild::child_mut) {
                if !matches!(c.try_wait(), Ok(None)) || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(node.agent.take());
        }
    }
}

impl AgentCluster {
    /// Node `i`'s agent process id (the `wackamole` binary itself:
    /// `ip netns exec` execs it), if running.
    pub fn agent_pid(&self, i: usize) -> Option<u32> {
        self.agents.get(i)?.agent.as_ref()?.id()
    }

    /// Node `i`'s agent log file (stderr and stdout of every start).
    pub fn agent_log(&self, i: usize) -> Result<PathBuf> {
        Ok(self.agent(i)?.log.clone())
    }

    /// Splits the LAN in two: the switch ports of `side_b` move to a second
    /// bridge (created on first use), the client stays with the others.
    pub fn partition(&self, side_b: &[usize]) -> Result<()> {
        let switch = self.bed.switch();
        switch.add_bridge(PARTITION_BRIDGE)?;
        for &i in side_b {
            switch.move_port(self.bed.switch_port(i)?, PARTITION_BRIDGE)?;
        }
        Ok(())
    }

    /// Undoes [`AgentCluster::partition`]: `side_b`'s ports go back to the main bridge.
    pub fn heal(&self, side_b: &[usize]) -> Result<()> {
        let switch = self.bed.switch();
        for &i in side_b {
            switch.move_port(self.bed.switch_port(i)?, Switch::BRIDGE)?;
        }
        Ok(())
    }
}

impl AgentCluster {
    /// The options the cluster was built with (maturity, balance interval...).
    pub fn options(&self) -> &AgentClusterOptions {
        &self.opts
    }

    /// [`AgentCluster::snapshot`] of `nodes` only (the others read as not
    /// running): a SIGSTOPped agent would hold every poll for the control timeout.
    pub fn snapshot_of(&self, nodes: &[usize]) -> Snapshot {
        let mut s = Snapshot::default();
        for (i, node) in self.agents.iter().enumerate() {
            if node.agent.is_none() || !nodes.contains(&i) {
                s.lists.push(None);
                s.statuses.push(None);
                continue;
            }
            s.lists.push(self.list(i).ok());
            s.statuses.push(self.status(i).ok());
        }
        s
    }

    /// [`AgentCluster::wait_until`] over [`AgentCluster::snapshot_of`] `nodes`.
    pub fn wait_until_among(
        &self,
        nodes: &[usize],
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Snapshot> {
        let deadline = Instant::now() + timeout;
        loop {
            let snap = self.snapshot_of(nodes);
            if pred(&snap) {
                return Ok(snap);
            }
            if Instant::now() > deadline {
                bail!(
                    "agent test bed: not reached within {timeout:?}: {what}\nlast snapshot: counts {:?}, owners {:?}\n{}",
                    snap.counts(),
                    (0..snap.lists.len()).map(|i| snap.held_by(i)).collect::<Vec<_>>(),
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERMs node `i`'s agent and waits until it exits (a clean stop:
    /// it releases its VIFs and removes its pins).
    pub fn terminate_agent(&mut self, i: usize, timeout: Duration) -> Result<ExitStatus> {
        self.kill_agent(i, libc::SIGTERM)?;
        self.wait_agent_exit(i, timeout)
    }

    /// Takes node `i` out of the cluster cleanly, as if it had never been
    /// started: its agent gets SIGTERM (and is waited for), then its
    /// corosync gets SIGTERM (leaves the ring) and is reaped.
    pub fn stop_node(&mut self, i: usize) -> Result<()> {
        if self.agent_running(i) {
            self.terminate_agent(i, Duration::from_secs(10))?;
        }
        let Bed::Corosync(corosync) = &mut self.bed else {
            bail!("agent test bed: stop_node is for Corosync beds");
        };
        let node = corosync
            .nodes
            .get(i)
            .ok_or_else(|| anyhow!("agent test bed: no node index {i}"))?;
        if node.corosync_pid().is_some() {
            node.signal_corosync(libc::SIGTERM)?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while node.joined_members().is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Reaps it (SIGKILL if it did not finish leaving).
        corosync.kill_corosync(i)
    }

    /// Node `i`'s global XDP action counters (indexed by
    /// `wackamole_common::action`, summed over CPUs), read from its pinned
    /// map; None when nothing is pinned (agent stopped cleanly).
    pub fn xdp_action_counts(&self, i: usize) -> Result<Option<Vec<u64>>> {
        use wackamole_common::{action, names};
        let path = self.pin_dir(i)?.join(names::ACTIONS);
        if !path.exists() {
            return Ok(None);
        }
        let data = aya::maps::MapData::from_pin(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let map: aya::maps::PerCpuArray<_, u64> =
            aya::maps::PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data))
                .with_context(|| format!("{} is not the action counter array", path.display()))?;
        let mut out = Vec::new();
        for slot in 0..action::COUNT {
            let per_cpu = map
                .get(&slot, 0)
                .with_context(|| format!("reading {} slot {slot}", path.display()))?;
            out.push(per_cpu.iter().fold(0u64, |a, b| a.wrapping_add(*b)));
        }
        Ok(Some(out))
    }

    /// Starts node `i` again after [`AgentCluster::stop_node`]: corosync, then the agent.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        let Bed::Corosync(corosync) = &mut self.bed else {
            bail!("agent test bed: start_node is for Corosync beds");
        };
        corosync.start_corosync(i)?;
        self.start_agent(i)
    }

    /// Whether node `i`'s agent has exited (then it is forgotten, as after
    /// a crash): `Some(status)`, or `None` while it runs or was not started.
    pub fn agent_exited(&mut self, i: usize) -> Result<Option<ExitStatus>> {
        self.try_wait(i)
    }

    /// Random loss on node `i`'s cable (at its switch port) until the
    /// returned guard drops. See [`super::impair`].
    pub fn impair_link(&self, i: usize, loss: Loss) -> Result<LinkLoss> {
        LinkLoss::apply(
            self.bed.switch().ns().name(),
            self.bed.switch_port(i)?,
            loss,
        )
    }
}

/// The second bridge of [`AgentCluster::partition`].
const PARTITION_BRIDGE: &str = "br1";

impl Drop for AgentCluster {
    fn drop(&mut self) {
        self.stop_agents();
        // WKT_KEEP_LOGS=DIR keeps the agents' logs (the temp dir goes away).
        if let Some(keep) = std::env::var_os("WKT_KEEP_LOGS") {
            let keep = PathBuf::from(keep);
            let _ = std::fs::create_dir_all(&keep);
            let tag = self
                .bpffs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for a in &self.agents {
                let name = format!("{}-{tag}-{}.log", self.test, a.name);
                let _ = std::fs::copy(&a.log, keep.join(name));
            }
            // The daemons' logs too: a stuck ring is only explained there.
            for (i, log) in self.bed.daemon_logs().iter().enumerate() {
                let name = format!("{}-{tag}-n{}-daemon.log", self.test, i + 1);
                let _ = std::fs::copy(log, keep.join(name));
            }
        }
        if self.bpffs_mounted {
            let path = self.bpffs.as_os_str().as_encoded_bytes().to_vec();
            if let Ok(c) = std::ffi::CString::new(path) {
                // SAFETY: umount2 on a NUL-terminated path we mounted.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
            let _ = std::fs::remove_dir(&self.bpffs);
        }
    }
}

/// The last `n` lines of a file, headed by its path.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default();
    format!("--- {} ends with:\n{}", path.display(), tail.join("\n"))
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// One node's `wackamole.toml`.
pub fn render_config(
    opts: &AgentClusterOptions,
    node: &str,
    group: &str,
    socket: &Path,
    bpffs_dir: &Path,
) -> String {
    let mut s = format!(
        "# Generated by wackamole::testbed::cluster.\n\
         node = \"{node}\"\n\
         control_socket = \"{}\"\n\
         bpffs_dir = \"{}\"\n\
         mature = \"{}\"\n\n\
         [engine]\nkind = \"corosync\"\ngroup = \"{group}\"\n\
         {}{}\n\
         [balance]\nenabled = true\ninterval = \"{}\"\n\n\
         [xdp]\nmode = \"{}\"\nlease = \"{}\"\nstandby_addresses = {}\n\n\
         [log]\nlevel = \"{}\"\n",
        socket.display(),
        bpffs_dir.display(),
        ms(opts.mature),
        opts.watchdog.0.map_or_else(String::new, |d| format!(
            "watchdog_interval = \"{}\"\n",
            ms(d)
        )),
        opts.watchdog.1.map_or_else(String::new, |d| format!(
            "watchdog_deadline = \"{}\"\n",
            ms(d)
        )),
        ms(opts.balance_interval),
        opts.xdp_mode,
        opts.lease.map_or_else(|| "auto".to_string(), ms),
        opts.standby_addresses,
        opts.log_level,
    );
    if opts.require_quorum {
        s = s.replacen(
            "kind = \"corosync\"\n",
            "kind = \"corosync\"\nrequire_quorum = true\n",
            1,
        );
    }
    if let Some(mode) = &opts.detector {
        // Node nK's LAN address is 10.0.0.K on both beds.
        let me: usize = node.trim_start_matches('n').parse().unwrap_or(1);
        let peers: Vec<String> = (1..=opts.nodes)
            .filter(|&k| k != me)
            .map(|k| format!("\"10.0.0.{k}:{DETECTOR_PORT}\""))
            .collect();
        s.push_str(&format!(
            "\n[detector]\nenabled = true\nlisten = \"10.0.0.{me}:{DETECTOR_PORT}\"\npeers = [{}]\nmode = \"{mode}\"\n",
            peers.join(", ")
        ));
    }
    // Beyond one /24 of VIFs, one move per balance round (the default) would
    // take minutes to spread them after a late join: balance in one round.
    if opts.vifs > 99 {
        s = s.replacen(
            "[balance]\n",
            "[balance]\nacquisitions_per_round = \"all\"\n",
            1,
        );
    }
    for k in 1..=opts.vifs {
        let v4 = format!("\"eth0:{}/24\"", AgentCluster::vip(k));
        let v6 = format!("\"eth0:{}/64\"", AgentCluster::vip6(k));
        let addresses = match opts.family {
            VipFamily::Ipv4 => v4,
            VipFamily::Ipv6 => v6,
            VipFamily::Dual => format!("{v4}, {v6}"),
        };
        s.push_str(&format!(
            "\n[[vif]]\nname = \"{}\"\naddresses = [{addresses}]\n",
            AgentCluster::vif_name(k),
        ));
    }
    s
}

/// Every thread's backtrace of process `pid`, from gdb (or why not).
fn thread_stacks(pid: u32) -> String {
    let out = std::process::Command::new("gdb")
        .args([
            "-batch",
            "-p",
            &pid.to_string(),
            "-ex",
            "thread apply all bt",
        ])
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("gdb: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn vips_are_distinct_and_clear_of_hosts() {
        let vips: BTreeSet<Ipv4Addr> = (1..=MAX_VIFS).map(AgentCluster::vip).collect();
        assert_eq!(vips.len(), MAX_VIFS);
        assert_eq!(AgentCluster::vip(1), Ipv4Addr::new(10, 0, 0, 101));
        assert_eq!(AgentCluster::vip(99), Ipv4Addr::new(10, 0, 0, 199));
        assert_eq!(AgentCluster::vip(100), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(AgentCluster::vip(1000), Ipv4Addr::new(10, 0, 4, 151));
        assert_eq!(AgentCluster::vip(4096), Ipv4Addr::new(10, 0, 16, 247));
        for v in &vips {
            let [a, b, c, d] = v.octets();
            assert_eq!((a, b), (10, 0), "{v} outside the client's /16");
            // Nodes are 10.0.0.1..=16, the client 10.0.0.200.
            assert!(
                !(c == 0 && (d <= 16 || d == 200)),
                "{v} collides with a host"
            );
            assert!(
                d != 0 && d != 255,
                "{v} is a network/broadcast-looking address"
            );
        }
    }
}

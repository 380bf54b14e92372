//! Configuration: TOML schema, validation, reload planning and the importer
//! for the old Wackamole `wackamole.conf`.
//!
//! - [`parse`] / [`load`]: TOML text to a validated [`Config`]; every problem
//!   comes back as `FILE:LINE: field `x.y`: what is wrong` ([`ConfigError`]).
//! - [`reload_diff`]: which changes a SIGHUP may apply and which need a restart.
//! - [`legacy`]: `wackamole.conf` (2.1.4 grammar) to equivalent TOML.
//!
//! No I/O but reading the file; whether an interface exists is asked through
//! [`InterfaceCheck`] so tests can fake the host.

pub mod address;
pub mod duration;
mod error;
mod iface;
pub mod legacy;
mod raw;
mod reload;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use address::{NotifyRange, VifAddress};
pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, Issue};
pub use iface::{AnyInterface, FakeInterfaces, InterfaceCheck, SystemInterfaces};
pub use reload::{reload_diff, ReloadPlan};
pub use validate::parse;

/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/wackamole/control.sock";
/// Default bpffs directory for pinned maps.
pub const DEFAULT_BPFFS_DIR: &str = "/sys/fs/bpf/wackamole";
/// Default group name (both engines).
pub const DEFAULT_GROUP: &str = "wackamole";

/// A validated agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This node's name (default: the host name).
    pub node: String,
    /// Relative share of VIFs this node should carry (>= 1).
    pub weight: u32,
    /// Group-communication engine.
    pub engine: EngineConfig,
    /// Unix socket for `wackamole` control commands.
    pub control_socket: PathBuf,
    /// bpffs directory where maps are pinned.
    pub bpffs_dir: PathBuf,
    /// VIFs this node prefers, by canonical VIF name, in the order written.
    pub prefer: Vec<String>,
    /// The managed virtual interfaces, in file order (the order is part of
    /// the cluster-wide identity of a VIF: keep it identical on every node).
    pub vifs: Vec<Vif>,
    /// Who is told (by gratuitous ARP) when a VIP moves here.
    pub notify: NotifyConfig,
    /// Load balancing between nodes.
    pub balance: BalanceConfig,
    /// How long a new node waits before it takes VIFs.
    pub mature: Duration,
    /// Programs run on VIF transitions.
    pub hooks: HooksConfig,
    /// XDP attachment and fencing lease.
    pub xdp: XdpConfig,
    /// Gratuitous ARP / unsolicited NA policy.
    pub announce: AnnounceConfig,
    /// Prometheus listen address, if metrics are served.
    pub metrics_listen: Option<SocketAddr>,
    /// Logging.
    pub log: LogConfig,
}

impl Config {
    /// Index of the VIF with this canonical name.
    pub fn vif_index(&self, name: &str) -> Option<usize> {
        self.vifs.iter().position(|v| v.name == name)
    }

    /// Indices of the preferred VIFs, in preference order.
    pub fn prefer_indices(&self) -> Vec<usize> {
        self.prefer
            .iter()
            .filter_map(|n| self.vif_index(n))
            .collect()
    }
}

/// Group-communication engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineConfig {
    /// Corosync 3 CPG.
    Corosync(CorosyncConfig),
    /// Spread 4.
    Spread(SpreadConfig),
}

impl EngineConfig {
    /// The group name, whatever the engine.
    pub fn group(&self) -> &str {
        match self {
            EngineConfig::Corosync(c) => &c.group,
            EngineConfig::Spread(s) => &s.group,
        }
    }
}

/// Corosync CPG settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorosyncConfig {
    /// CPG group name.
    pub group: String,
    /// How often the agent pets its watchdog.
    pub watchdog_interval: Duration,
    /// Silence after which the watchdog declares corosync frozen (> interval);
    /// `None`: derived from the running corosync's token timeout.
    pub watchdog_deadline: Option<Duration>,
    /// Hold no VIFs unless the partition has quorum.
    pub require_quorum: bool,
}

/// Spread settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConfig {
    /// Daemon to connect to.
    pub daemon: SpreadDaemon,
    /// Spread group name.
    pub group: String,
    /// Wait between failed connection attempts.
    pub reconnect_interval: Duration,
    /// Probe period of the engine's watchdog (default 20 ms); `None`
    /// (configured as `"0"`): no watchdog.
    pub watchdog_interval: Option<Duration>,
    /// A probe this late and unread by the daemon means a frozen daemon:
    /// the node lets go of its VIPs and reconnects (default 500 ms, below
    /// the ~1.1 s LAN-fast failure detection of the other nodes). Detects a
    /// frozen daemon on a unix socket or TCP on this host, not a remote one.
    pub watchdog_deadline: Duration,
}

/// Where the Spread daemon listens: `"4803"` (its unix socket `/tmp/4803`) or
/// `"4803@host"` (TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadDaemon {
    /// Local daemon through its unix socket.
    Unix {
        /// Daemon port (names the socket).
        port: u16,
    },
    /// Daemon over TCP.
    Tcp {
        /// Daemon port.
        port: u16,
        /// Host name or address.
        host: String,
    },
}

impl std::fmt::Display for SpreadDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpreadDaemon::Unix { port } => write!(f, "{port}"),
            SpreadDaemon::Tcp { port, host } => write!(f, "{port}@{host}"),
        }
    }
}

/// A virtual interface: addresses that always move together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// Canonical name (default: the first address, e.g. `"10.2.3.4"`).
    pub name: String,
    /// Its addresses (at least one), first one the head.
    pub addresses: Vec<VifAddress>,
}

/// Notification settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyConfig {
    /// Ranges of neighbours to notify.
    pub targets: Vec<NotifyTarget>,
    /// Also notify every neighbour in the cluster's shared ARP cache.
    pub arp_cache: bool,
    /// How often each node shares its ARP cache.
    pub arp_cache_interval: Duration,
}

/// One notification range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    /// Neighbours to notify.
    pub range: NotifyRange,
    /// At most this many packets per second (None = unthrottled).
    pub throttle: Option<u32>,
}

/// Balancing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceConfig {
    /// Balance at all.
    pub enabled: bool,
    /// Most VIFs moved per balancing round.
    pub acquisitions_per_round: Acquisitions,
    /// Length of a balancing round.
    pub interval: Duration,
    /// Balance once after each membership change, not continuously.
    pub one_shot: bool,
}

/// Cap on VIF moves per balancing round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquisitions {
    /// At most this many (>= 1).
    Limit(u32),
    /// Balance completely in one round.
    All,
}

/// Transition hooks: programs run with the VIF as arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    /// Before a VIF is brought up here.
    pub on_up: Option<PathBuf>,
    /// Before a VIF is released here.
    pub on_down: Option<PathBuf>,
    /// After a round in which VIFs came up.
    pub post_up: Option<PathBuf>,
    /// After a round in which VIFs went down.
    pub post_down: Option<PathBuf>,
    /// A hook still running after this is killed.
    pub timeout: Duration,
}

/// XDP attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Native if the driver has it, else generic.
    Auto,
    /// Driver (native) mode only.
    Native,
    /// Generic (skb) mode.
    Skb,
}

/// XDP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpConfig {
    /// Attach mode.
    pub mode: XdpMode,
    /// Fencing lease: without a renewal for this long, the XDP program stops
    /// answering for our VIPs. None = no fencing.
    pub lease: Option<Duration>,
    /// Start even on a bpffs private to the agent's mount namespace (pins and
    /// fence die with the agent). Default false: such a start is refused.
    pub allow_private_bpffs: bool,
}

/// Announcement policy when a VIP arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// Gratuitous ARPs (or unsolicited NAs) sent in the initial burst (>= 1).
    pub burst_count: u32,
    /// Gap between burst packets.
    pub burst_spacing: Duration,
    /// Re-announce held VIPs this often. None = never.
    pub refresh_interval: Option<Duration>,
}

/// Log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Problems worth a look.
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    /// The level's name as written in the config (and read by tracing).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Least severe level logged.
    pub level: LogLevel,
}

/// Reads and validates a config file against the real host
/// ([`SystemInterfaces`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &SystemInterfaces)
}

/// Reads and validates a config file with the given host probe.
pub fn load_with(path: &Path, host: &dyn InterfaceCheck) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::single(Issue {
            file: name.clone(),
            line: None,
            field: String::new(),
            message: format!("cannot read: {e}"),
        })
    })?;
    parse(&text, &name, host)
}

/// `wackamole check-config FILE`: prints each problem on stderr (or `OK`
/// and a summary on stdout) and returns the exit code: 0 valid, 2 invalid.
pub fn check_config_main(path: &Path) -> i32 {
    match load(path) {
        Ok(cfg) => {
            println!(
                "{}: OK ({} VIFs, {} addresses, engine {}, node {})",
                path.display(),
                cfg.vifs.len(),
                cfg.vifs.iter().map(|v| v.addresses.len()).sum::<usize>(),
                match cfg.engine {
                    EngineConfig::Corosync(_) => "corosync",
                    EngineConfig::Spread(_) => "spread",
                },
                cfg.node
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

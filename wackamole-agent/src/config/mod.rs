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
pub use error::{file_label, ConfigError, Issue};
pub use iface::{AnyInterface, FakeInterfaces, InterfaceCheck, MountPoint, SystemInterfaces};
pub use reload::{reload_diff, ReloadPlan};
pub use validate::parse;

/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/wackamole/control.sock";
/// Default bpffs directory for pinned maps.
pub const DEFAULT_BPFFS_DIR: &str = "/sys/fs/bpf/wackamole";
/// Default group name (both engines).
pub const DEFAULT_GROUP: &str = "wackamole";

/// Most addresses a configuration may list (all VIFs together): the XDP
/// map's capacity, one entry per address.
pub const MAX_ADDRESSES: usize = wackamole_common::MAX_VIPS as usize;
/// Longest node name, in bytes (a host name's limit, HOST_NAME_MAX). Node
/// names travel to the peers and are printed by `ctl`.
pub const MAX_NODE_NAME: usize = 64;
/// Longest VIF name, in bytes (VIF names are passed to hooks and printed).
pub const MAX_VIF_NAME: usize = 64;
/// Largest configuration file read, in bytes: 4096 addresses take well under
/// 1 MiB, and a device or a runaway file must not be read forever.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Highest `notify.targets[].throttle`, in packets per second: far above
/// what the paced sender's millisecond timer delivers (about 1000 a second),
/// low enough that its period never rounds to zero.
pub const MAX_THROTTLE: u32 = 1_000_000;

/// Upper bounds of the duration settings. Each is far beyond any useful
/// value; they exist so that every accepted value can be added to an
/// `Instant` (a huge one would panic the daemon) and a slip of the finger
/// (`"5h"` for `"5s"`) is not silently "never".
pub mod limits {
    use std::time::Duration;

    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86_400);

    /// `mature` (a day: the importer reads an old `Mature = 2h` as hours).
    pub const MATURE: Duration = DAY;
    /// `engine.watchdog_interval` (both engines).
    pub const WATCHDOG_INTERVAL: Duration = Duration::from_secs(10);
    /// `engine.watchdog_deadline` (both engines).
    pub const WATCHDOG_DEADLINE: Duration = MINUTE;
    /// `engine.reconnect_interval`.
    pub const RECONNECT_INTERVAL: Duration = HOUR;
    /// `engine.takeover_floor` (Spread): shortest and longest.
    pub const TAKEOVER_FLOOR_MIN: Duration = Duration::from_millis(20);
    pub const TAKEOVER_FLOOR: Duration = MINUTE;
    /// `notify.arp_cache_interval`.
    pub const ARP_CACHE_INTERVAL: Duration = DAY;
    /// `balance.interval`.
    pub const BALANCE_INTERVAL: Duration = DAY;
    /// `hooks.timeout`.
    pub const HOOK_TIMEOUT: Duration = HOUR;
    /// `xdp.lease`.
    pub const XDP_LEASE: Duration = HOUR;
    /// `announce.burst_spacing` (times at most 100 packets).
    pub const BURST_SPACING: Duration = Duration::from_secs(10);
    /// `announce.refresh_interval`.
    pub const REFRESH_INTERVAL: Duration = DAY;
    /// `detector.interval`.
    pub const DETECTOR_INTERVAL: Duration = Duration::from_secs(1);
    /// `detector.deadline`.
    pub const DETECTOR_DEADLINE: Duration = MINUTE;
}

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
    /// The fast LAN failure detector (`[detector]`); `None` when the
    /// section is absent.
    pub detector: Option<DetectorConfig>,
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
        // One map, not a scan per preference: both lists may be long.
        let mut index: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(self.vifs.len());
        for (i, v) in self.vifs.iter().enumerate() {
            index.entry(v.name.as_str()).or_insert(i);
        }
        self.prefer
            .iter()
            .filter_map(|n| index.get(n.as_str()).copied())
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
    /// How often the engine sends itself a watchdog probe; `None` ("auto",
    /// the default): derived from the freeze deadline and the takeover
    /// floor (`tracker::probe_interval`).
    pub watchdog_interval: Option<Duration>,
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
    /// A unix-socket daemon may also run as this uid (besides root and the
    /// agent's own uid); checked with SO_PEERCRED on connect.
    pub trusted_uid: Option<u32>,
    /// The peers' earliest takeover after this node falls silent: the
    /// daemons' `TokenTimeout` (the client cannot read it). The fencing
    /// lease is half of it and a silent member is evicted after it. Default
    /// 500 ms, the shipped LAN-fast profile's token.
    pub takeover_floor: Duration,
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
    /// Neighbour advertisements for its IPv6 addresses carry the Router
    /// flag (the VIP is the clients' default gateway). Only allowed on a VIF
    /// with an IPv6 address.
    pub nd_router: bool,
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
    /// answering for our VIPs.
    pub lease: Lease,
    /// Start even on a bpffs private to the agent's mount namespace (pins and
    /// fence die with the agent). Default false: such a start is refused.
    pub allow_private_bpffs: bool,
    /// Every node keeps every VIF's addresses plumbed, XDP silent (and
    /// dropping their traffic) where it does not hold them: taking a VIF
    /// over is then an XDP update and an announcement, no address change,
    /// so thousands of VIPs move as fast as three. Default false.
    pub standby_addresses: bool,
}

/// `xdp.lease`: how long the XDP program answers for our VIPs after the last
/// liveness evidence of the engine (see `daemon::lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// `"auto"` (default): a safe fraction of the engine's takeover floor, so
    /// a silent node is fenced before any peer can take its VIFs.
    Auto,
    /// A fixed duration; capped at the auto value (with a loud warning) when
    /// it would outlast the peers' earliest takeover.
    Fixed(Duration),
    /// `"0s"`: no fencing.
    Off,
}

/// What the LAN failure detector may do with what it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorMode {
    /// Log and count lost and condemned peers and its fence; the agreed
    /// view still decides every takeover.
    Observe,
    /// As `Observe`, and a member the view dropped while its beats still
    /// come and say it answers keeps its VIFs: they answer here only once
    /// it falls silent (says so, or goes unheard). A ring split by a lossy
    /// link, while the LAN still connects everyone, then never gives a
    /// VIP two answerers.
    Guard,
    /// As `Guard`, and a survivor takes a condemned member's VIFs before
    /// the group agrees (issue 11), answering them once the handshake with
    /// every other member clears them (see `detect::detector`), while the
    /// echo fence silences a node a majority stopped hearing. Every member
    /// must run it (version 3 beats).
    Act,
}

impl DetectorMode {
    /// Its name in the configuration (and in logs and `ctl status`).
    pub fn name(self) -> &'static str {
        match self {
            DetectorMode::Observe => "observe",
            DetectorMode::Guard => "guard",
            DetectorMode::Act => "act",
        }
    }
}

/// `[detector]`: the fast failure detector on the LAN (see [`crate::detect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorConfig {
    /// This node's UDP address for beats.
    pub listen: SocketAddr,
    /// Every other node's `listen` (1..=[`MAX_ECHOES`](crate::detect::beat::MAX_ECHOES),
    /// distinct, of `listen`'s address family).
    pub peers: Vec<SocketAddr>,
    /// Beat period and the silence that loses a peer.
    pub timing: crate::detect::Timing,
    /// What the detector may do.
    pub mode: DetectorMode,
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

/// The directory the data plane makes a bpf filesystem of (mounting one if
/// it is not): a `bpffs_dir` named `wackamole` is the pin root inside its
/// parent, any other is the bpffs itself (pins under `<dir>/wackamole`).
/// Must agree with the daemon's hand-over of `bpffs_dir` to the data plane.
pub fn bpffs_mount_point(bpffs_dir: &Path) -> PathBuf {
    match (bpffs_dir.file_name(), bpffs_dir.parent()) {
        // Never `/` itself: `/wackamole` is its own bpffs.
        (Some(name), Some(parent)) if name == "wackamole" && parent.parent().is_some() => {
            parent.to_path_buf()
        }
        _ => bpffs_dir.to_path_buf(),
    }
}

/// Reads and validates a config file against the real host
/// ([`SystemInterfaces`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &SystemInterfaces)
}

/// Reads and validates a config file with the given host probe.
pub fn load_with(path: &Path, host: &dyn InterfaceCheck) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = read_text(path).map_err(|(line, message)| {
        ConfigError::single(Issue {
            file: name.clone(),
            line,
            field: String::new(),
            message,
        })
    })?;
    parse(&text, &name, host)
}

/// Reads a configuration file (this one or an old `wackamole.conf`): a
/// regular file of at most [`MAX_CONFIG_BYTES`] of UTF-8. A FIFO, a device
/// (`/dev/zero`) or a directory is refused before anything is read. Errors
/// are `(line, message)`; the line is known for bad UTF-8.
pub fn read_text(path: &Path) -> Result<String, (Option<usize>, String)> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // O_NONBLOCK: opening a FIFO that has no writer returns at once instead
    // of waiting for one (it is then refused for its type). Reads of a
    // regular file ignore the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| (None, format!("cannot read: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| (None, format!("cannot read: {e}")))?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    };
    if let Some(what) = what {
        return Err((
            None,
            format!("cannot read: this is {what}; a configuration must be a regular file"),
        ));
    }
    let too_big = |n: u64| {
        (
            None,
            format!(
                "cannot read: {n} bytes is more than a configuration may have ({MAX_CONFIG_BYTES})"
            ),
        )
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow while read: never past the limit.
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| (None, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        (
            Some(line),
            format!("not UTF-8 text (invalid byte at offset {at}); a configuration is UTF-8"),
        )
    })
}

/// A `mature` shorter than this draws an advisory (see [`advisories`]).
pub const MATURE_ADVISED_MIN: Duration = Duration::from_secs(2);

/// Valid settings an operator should still hear about: `check-config`
/// prints them as warnings (exit 0), `run` logs them at start.
pub fn advisories(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.mature < MATURE_ADVISED_MIN {
        // Measured: corosync's merge after a node came back took about a
        // second (knet sees the link again), and with mature = 500 ms the
        // returning node answered next to the cluster for 120-360 ms.
        out.push(format!(
            "mature = {:?} is under {:?}: a node that starts or comes back alone in its view \
             claims every VIF once mature, and until the engine merges it with the cluster \
             (about a second after a restart) two hosts answer for them; keep it above the \
             engine's merge time (default 5s)",
            cfg.mature, MATURE_ADVISED_MIN
        ));
    }
    out
}

/// `wackamole check-config FILE`: prints each problem on stderr (or `OK`
/// and a summary on stdout, advisories on stderr) and returns the exit
/// code: 0 valid, 2 invalid.
pub fn check_config_main(path: &Path) -> i32 {
    match load(path) {
        Ok(cfg) => {
            for a in advisories(&cfg) {
                eprintln!("{}: warning: {a}", file_label(&path.display().to_string()));
            }
            println!(
                "{}: OK ({} VIFs, {} addresses, engine {}, node {})",
                file_label(&path.display().to_string()),
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

//! Start-up of `wackamole run`: configuration, logging, the runtime, the
//! membership engine, the data plane (with what a crashed run left behind)
//! and the wiring of the real machine ([`LinuxHost`]) into an [`Agent`].

use super::agent::{Agent, AgentParts, Signal};
use super::host::LinuxHost;
use super::metrics::{self, MetricsSnapshot};
use super::vifs::{self, PlannedVif};
use super::LogHandle;
use crate::config::{self, Config, EngineConfig};
use crate::control::server::{ControlRequest, ControlServer};
use crate::dataplane::{DataPlane, DataPlaneOptions, XdpAttachMode};
use crate::membership::MembershipHandle;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Entry point of `wackamole run`: exit 0 on a clean stop, 1 on a runtime
/// failure, 2 on a bad configuration.
pub fn main(config_path: &Path) -> ExitCode {
    super::heap::fix_thresholds();
    let cfg = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wackamole: {e}");
            return ExitCode::from(2);
        }
    };
    let log = init_tracing(cfg.log.level.as_str());
    for a in config::advisories(&cfg) {
        warn!("{a}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wackamole: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cfg, config_path.to_path_buf(), log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr without colours or timestamps when journald adds its own
/// (`JOURNAL_STREAM` set), with them otherwise. `RUST_LOG` overrides the level.
fn init_tracing(level: &str) -> Option<LogHandle> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter_for(level)));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let result = if journald {
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt.without_time())
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init()
    };
    result.ok().map(|_| handle)
}

/// aya's own logs are noisy at debug; keep them at warn unless tracing.
pub(super) fn filter_for(level: &str) -> String {
    format!("{level},aya=warn,aya_log=warn,netlink_proto=warn")
}

fn attach_mode(mode: config::XdpMode) -> XdpAttachMode {
    match mode {
        config::XdpMode::Auto => XdpAttachMode::Auto,
        config::XdpMode::Native => XdpAttachMode::Native,
        config::XdpMode::Skb => XdpAttachMode::Skb,
    }
}

/// Starts the configured membership engine.
async fn start_engine(cfg: &Config) -> Result<MembershipHandle> {
    match &cfg.engine {
        EngineConfig::Corosync(c) => {
            let mut opts = crate::membership::corosync::CorosyncOptions::new(&c.group);
            opts.watchdog_interval = c.watchdog_interval;
            opts.watchdog_deadline = c.watchdog_deadline;
            opts.require_quorum = c.require_quorum;
            crate::membership::corosync::start(opts).await
        }
        EngineConfig::Spread(s) => {
            // Spread private names are at most 10 characters.
            let private: String = cfg
                .node
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(10)
                .collect();
            let mut opts = crate::membership::spread::SpreadOptions::new(
                &s.daemon.to_string(),
                &private,
                &s.group,
            );
            opts.retry_interval = s.reconnect_interval;
            opts.watchdog_interval = s.watchdog_interval;
            opts.watchdog_deadline = Some(s.watchdog_deadline);
            opts.trusted_uid = s.trusted_uid;
            opts.takeover_floor = s.takeover_floor;
            crate::membership::spread::start(opts).await
        }
    }
}

/// Forwards the process's stop and reload signals to the agent.
fn forward_signals() -> Result<mpsc::Receiver<Signal>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            let s = tokio::select! {
                Some(()) = term.recv() => Signal::Term,
                Some(()) = int.recv() => Signal::Int,
                Some(()) = hup.recv() => Signal::Hup,
                else => break,
            };
            if tx.send(s).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

async fn run(cfg: Config, config_path: PathBuf, log: Option<LogHandle>) -> Result<()> {
    let vifs = vifs::plan(&cfg)?;
    let mut ifaces: Vec<String> = vifs
        .iter()
        .flat_map(|v| v.addresses.iter().map(|a| a.vip.iface.clone()))
        .collect();
    ifaces.sort();
    ifaces.dedup();

    let mut opts = DataPlaneOptions::new(instance_name(&cfg.node));
    opts.bpffs = dataplane_bpffs(&cfg.bpffs_dir);
    opts.mode = attach_mode(cfg.xdp.mode);
    opts.allow_private_bpffs = cfg.xdp.allow_private_bpffs;
    opts.interfaces = ifaces;
    // A crashed run's addresses go before the new program takes over its
    // pinned links: the old program is fenced (its lease lapsed) and stays
    // silent, but the new one starts with no entry for them, so the kernel
    // would answer ARP for them (and draw traffic here) until removed.
    remove_leftover_addresses(&vifs).await;
    let mut plane = DataPlane::open(&opts).context("data plane")?;
    // The load parsed the kernel's BTF: give those pages back.
    super::heap::release_freed();
    forget_leftover_entries(&mut plane);
    plane
        .renew_lease(None)
        .context("data plane: clearing the lease")?;
    plane
        .set_beat_deadline(0)
        .context("data plane: clearing the beat lease")?;
    // Detector mode `guard` with a lease: the beat thread fences this node
    // too (the peers judge it by its beats).
    let beat_fence = match &cfg.detector {
        Some(d)
            if matches!(
                d.mode,
                config::DetectorMode::Guard | config::DetectorMode::Act
            ) && cfg.xdp.lease != config::Lease::Off =>
        {
            Some(plane.beat_fence().context("data plane: the beat lease")?)
        }
        _ => None,
    };

    let control = ControlServer::bind(&cfg.control_socket)?;
    let (control_tx, control_rx) = mpsc::channel::<ControlRequest>(16);
    tokio::spawn(control.serve(control_tx));

    let metrics = Arc::new(Mutex::new(MetricsSnapshot::default()));
    if let Some(addr) = cfg.metrics_listen {
        let m = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, m).await {
                error!("{e:#}");
            }
        });
    }

    let carrier_ifaces: BTreeSet<String> = vifs
        .iter()
        .flat_map(|v| v.addresses.iter().map(|a| a.vip.iface.clone()))
        .collect();
    let host = LinuxHost::new(plane, config_path, carrier_ifaces.into_iter().collect())?;
    let engine = start_engine(&cfg).await?;
    info!(
        node = %cfg.node,
        engine = %engine.description,
        vifs = vifs.len(),
        "started"
    );
    let beats = match &cfg.detector {
        Some(d) => {
            let b = super::beats::start(d, cfg.engine.group(), beat_fence)?;
            info!(
                listen = %d.listen,
                peers = d.peers.len(),
                interval_ms = d.timing.interval.as_millis() as u64,
                deadline_ms = d.timing.deadline.as_millis() as u64,
                mode = d.mode.name(),
                "detector started"
            );
            Some(b)
        }
        None => None,
    };
    let signals = forward_signals()?;
    Agent::new(AgentParts {
        cfg,
        vifs,
        host,
        engine,
        signals,
        control: control_rx,
        metrics,
        log,
        beats,
    })
    .run()
    .await
}

/// `bpffs_dir` is the pin root: with the default `/sys/fs/bpf/wackamole`
/// this node's pins go to `/sys/fs/bpf/wackamole/<node>`. The data plane pins
/// under `<bpffs>/wackamole/<instance>`, so a root named `wackamole` is handed
/// over as its parent; any other directory (or `/wackamole`) gets a
/// `wackamole` level inside.
fn dataplane_bpffs(bpffs_dir: &Path) -> PathBuf {
    match (bpffs_dir.file_name(), bpffs_dir.parent()) {
        // Never hand over `/` (the data plane would mount a bpffs on it).
        (Some(name), Some(parent)) if name == "wackamole" && parent.parent().is_some() => {
            parent.to_path_buf()
        }
        _ => bpffs_dir.to_path_buf(),
    }
}

/// The data plane's pin directory name for this node.
fn instance_name(node: &str) -> String {
    let s: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "default".into()
    } else {
        s
    }
}

/// Forgets every XDP entry a crashed earlier run left.
fn forget_leftover_entries(plane: &mut DataPlane) {
    match plane.entries() {
        Ok(entries) => {
            for e in entries {
                if let Err(err) = plane.forget(&e.vip) {
                    warn!(
                        "start-up: cannot forget leftover XDP entry {}: {err}",
                        e.vip
                    );
                } else {
                    info!("start-up: removed leftover XDP entry {}", e.vip);
                }
            }
        }
        Err(e) => warn!("start-up: cannot list XDP entries: {e}"),
    }
}

/// Removes the configured VIP addresses (only those) a crashed earlier run
/// left on their interfaces: one address dump per interface and family,
/// then the removals pipelined on one netlink connection (with standby
/// addresses a crash leaves every VIP's address; one dump and one
/// connection per address made a restart with thousands take minutes).
async fn remove_leftover_addresses(vifs: &[PlannedVif]) {
    use super::vifs::AddressPlumbing;
    use futures::StreamExt;
    let netlink = super::host::Netlink::default();
    let netlink = &netlink;
    let (present, failed) = vifs::present_addresses(netlink, vifs).await;
    for (iface, e) in failed {
        warn!("start-up: cannot list the addresses of {iface}: {e:#}");
    }
    let leftover: Vec<_> = vifs
        .iter()
        .flat_map(|v| &v.addresses)
        .filter(|a| {
            present
                .get(a.vip.iface.as_str())
                .is_some_and(|have| have.contains(&a.vip.addr))
        })
        .collect();
    if leftover.is_empty() {
        return;
    }
    let results: Vec<_> = futures::stream::iter(leftover)
        .map(|a| async move {
            let removed = netlink.remove(&a.vip.iface, a.vip.addr, a.prefix).await;
            (a, removed)
        })
        .buffer_unordered(vifs::PIPELINE)
        .collect()
        .await;
    for (a, removed) in results {
        match removed {
            Ok(()) => info!(
                "start-up: removed leftover address {} from {}",
                a.text(),
                a.vip.iface
            ),
            Err(e) => warn!("start-up: cannot remove leftover {}: {e:#}", a.text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpffs_dir_is_the_pin_root() {
        let pins = |dir: &str| {
            let mut o = DataPlaneOptions::new(instance_name("web 1"));
            o.bpffs = dataplane_bpffs(Path::new(dir));
            o.pin_dir()
        };
        assert_eq!(
            pins("/sys/fs/bpf/wackamole"),
            Path::new("/sys/fs/bpf/wackamole/web_1")
        );
        assert_eq!(
            pins("/run/x/wackamole"),
            Path::new("/run/x/wackamole/web_1")
        );
        assert_eq!(pins("/run/bpf"), Path::new("/run/bpf/wackamole/web_1"));
        assert_eq!(pins("/wackamole"), Path::new("/wackamole/wackamole/web_1"));
    }
}

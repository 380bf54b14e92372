//! The agent daemon: joins the membership engine, the allocation state
//! machine and the XDP data plane.
//!
//! One single-threaded event loop owns all state. Inputs (engine events,
//! timers, control requests, signals, data-plane conflict reports) go into the
//! [`Allocator`]; its actions are executed here in order. Slow side work
//! (announcements, hooks) runs in spawned tasks and never delays the next
//! decision.

pub mod metrics;
pub mod sdnotify;
pub mod timers;
pub mod vifs;

use crate::alloc::{
    self, Action, AllocConfig, Allocator, Input, NodeInfo, OperatorCommand, Report, TimerKind,
    VifIndex,
};
use crate::config::{self, Config, EngineConfig};
use crate::control::protocol::{
    FailoverInfo, ListReply, MemberRow as CtlMember, Reply, Request, StatusReply, VifRow as CtlVif,
};
use crate::control::server::{ControlRequest, ControlServer};
use crate::dataplane::{DataPlane, DataPlaneOptions, XdpAttachMode};
use crate::hooks::{HookConfig, HookEvent, HookRunner};
use crate::membership::{MembershipEvent, MembershipHandle, Outgoing};
use crate::net::neigh::NeighShare;
use anyhow::{anyhow, Context, Result};
use metrics::{MetricsSnapshot, VifMetrics};
use sdnotify::Notifier;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use timers::Timers;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use vifs::{AddressPlumbing, PlannedVif};

/// At most one re-announcement per VIF this often in reaction to conflicts:
/// two holders answering each other's announcements would otherwise
/// multiply ARP frames without bound (a storm that starves the event loop).
const CONFLICT_HOLDOFF: Duration = Duration::from_secs(1);

/// How long a conflict waits before we announce ourselves again. A planned
/// move is one agreed message: the new owner may announce before this node
/// has processed that message and released the VIF, so its GARP looks like a
/// conflict here. Announcing at once would flip the clients back to this
/// node, which drops the VIF's traffic a moment later. Waiting lets the
/// release (which cancels the pending announcement) arrive first; a genuine
/// conflict is answered this much later, well inside [`CONFLICT_HOLDOFF`].
const CONFLICT_SETTLE: Duration = Duration::from_millis(100);

/// How long a released VIF stays in XDP as "releasing" (dropping stray
/// traffic and ARP) before the entry is forgotten.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// How long a stop waits for the other members to take our VIFs over.
const HANDOVER_LIMIT: Duration = Duration::from_secs(2);

/// Entry point of `wackamole run`: exit 0 on a clean stop, 1 on a runtime
/// failure, 2 on a bad configuration.
pub fn main(config_path: &Path) -> ExitCode {
    let cfg = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wackamole: {e}");
            return ExitCode::from(2);
        }
    };
    let log = init_tracing(cfg.log.level.as_str());
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

type LogHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

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
fn filter_for(level: &str) -> String {
    format!("{level},aya=warn,aya_log=warn,netlink_proto=warn")
}

struct Netlink;

impl AddressPlumbing for Netlink {
    async fn add(&self, iface: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        crate::net::addr::add(iface, ip, prefix)
            .await
            .map_err(|e| anyhow!("{e}"))
    }
    async fn remove(&self, iface: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        crate::net::addr::remove(iface, ip, prefix)
            .await
            .map_err(|e| anyhow!("{e}"))
    }
}

/// The allocator's view of the configuration.
pub fn alloc_config(cfg: &Config) -> AllocConfig {
    let mut a = AllocConfig::new(vifs::alloc_specs(cfg));
    a.prefer = cfg
        .prefer_indices()
        .into_iter()
        .map(|i| VifIndex(i as u32))
        .collect();
    a.balance = alloc::BalanceConfig {
        enabled: cfg.balance.enabled,
        acquisitions_per_round: match cfg.balance.acquisitions_per_round {
            config::Acquisitions::All => alloc::PerRound::All,
            config::Acquisitions::Limit(n) => alloc::PerRound::N(n),
        },
        interval: cfg.balance.interval,
        one_shot: cfg.balance.one_shot,
    };
    a.mature_after = cfg.mature;
    a.weight = cfg.weight.max(1);
    a
}

fn hook_config(cfg: &Config) -> HookConfig {
    HookConfig {
        on_up: cfg.hooks.on_up.clone(),
        on_down: cfg.hooks.on_down.clone(),
        post_up: cfg.hooks.post_up.clone(),
        post_down: cfg.hooks.post_down.clone(),
        timeout: cfg.hooks.timeout,
    }
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
            crate::membership::spread::start(opts).await
        }
    }
}

/// The last failover this node took part in.
#[derive(Clone, Debug)]
struct Failover {
    at: SystemTime,
    took: Duration,
    reason: String,
}

/// What started the current round of acquisitions (for timing).
#[derive(Clone, Debug)]
struct Trigger {
    at: Instant,
    reason: String,
}

struct Agent {
    cfg: Config,
    config_path: PathBuf,
    log: Option<LogHandle>,
    alloc: Allocator,
    plane: DataPlane,
    vifs: Vec<PlannedVif>,
    engine: MembershipHandle,
    engine_up: bool,
    timers: Timers<TimerKind>,
    /// Released VIFs whose XDP entries are forgotten at the given time.
    pending_forget: BTreeMap<usize, Instant>,
    /// Held VIFs whose bring-up failed (XDP or addresses): housekeeping
    /// retries them until they are complete or no longer ours.
    unplumbed: BTreeSet<usize>,
    /// When each VIF was last re-announced because of a conflict.
    conflict_announced: HashMap<usize, Instant>,
    /// The announcement task (GARP burst, notifications) of each VIF, aborted
    /// when the VIF is released so a released node goes silent at once.
    announcing: HashMap<usize, tokio::task::AbortHandle>,
    hooks: HookRunner,
    notifier: Notifier,
    ready_sent: bool,
    trigger: Option<Trigger>,
    last_failover: Option<Failover>,
    metrics: Arc<Mutex<MetricsSnapshot>>,
    /// The cluster's shared ARP cache: IP → MAC, merged from every member.
    arp_cache: HashMap<Ipv4Addr, [u8; 6]>,
    view_members: usize,
    /// Members of the last completed view: a bigger one is a merge or a join.
    complete_members: usize,
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
    let mut plane = DataPlane::open(&opts).context("data plane")?;
    clean_leftovers(&mut plane, &vifs).await;
    plane
        .renew_lease(None)
        .context("data plane: clearing the lease")?;

    let control = ControlServer::bind(&cfg.control_socket)?;
    let (control_tx, mut control_rx) = mpsc::channel::<ControlRequest>(16);
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

    let mut conflicts = plane
        .take_conflicts()
        .map(|r| r.into_async())
        .transpose()
        .context("data plane: conflict ring buffer")?;

    let engine = start_engine(&cfg).await?;
    info!(
        node = %cfg.node,
        engine = %engine.description,
        vifs = vifs.len(),
        "started"
    );
    let alloc = Allocator::new(
        alloc_config(&cfg),
        NodeInfo {
            name: cfg.node.clone(),
        },
    );
    let hooks = HookRunner::start(hook_config(&cfg), cfg.node.clone());
    let mut agent = Agent {
        config_path,
        log,
        alloc,
        plane,
        vifs,
        engine,
        engine_up: false,
        timers: Timers::default(),
        pending_forget: BTreeMap::new(),
        unplumbed: BTreeSet::new(),
        conflict_announced: HashMap::new(),
        announcing: HashMap::new(),
        hooks,
        notifier: Notifier::from_env(),
        ready_sent: false,
        trigger: None,
        last_failover: None,
        metrics,
        arp_cache: HashMap::new(),
        view_members: 0,
        complete_members: 0,
        cfg,
    };

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let lease_every = agent
        .cfg
        .xdp
        .lease
        .map(|l| (l / 4).max(Duration::from_millis(5)))
        .unwrap_or(Duration::from_secs(3600));
    let mut lease_tick = tokio::time::interval(lease_every);
    lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watchdog_every = Notifier::watchdog_interval()
        .map(|w| w / 2)
        .unwrap_or(Duration::from_secs(3600));
    let mut watchdog_tick = tokio::time::interval(watchdog_every);
    let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
    let share_every = if agent.cfg.notify.arp_cache {
        agent
            .cfg
            .notify
            .arp_cache_interval
            .max(Duration::from_secs(1))
    } else {
        Duration::from_secs(3600)
    };
    let mut share_tick = tokio::time::interval(share_every);
    let refresh_every = agent
        .cfg
        .announce
        .refresh_interval
        .unwrap_or(Duration::from_secs(3600));
    let mut refresh_tick = tokio::time::interval(refresh_every);
    refresh_tick.tick().await;

    // Set once a stop signal started handing our VIFs to the other members.
    let mut handover: Option<Instant> = None;
    loop {
        tokio::select! {
            event = agent.engine.events.recv() => match event {
                Some(event) => agent.on_membership(event).await,
                None => {
                    // Exiting with VIFs still plumbed would leave their
                    // addresses answering (fencing only covers ARP, and only
                    // with a lease): release them like a normal stop first.
                    let err = anyhow!("membership engine {} stopped", agent.engine.description);
                    error!("{err:#}");
                    agent.shutdown("engine stopped").await?;
                    return Err(err);
                }
            },
            kind = agent.timers.expired() => agent.feed(Input::Timer(kind)).await,
            Some(req) = control_rx.recv() => agent.on_control(req).await,
            Some(batch) = next_conflicts(&mut conflicts) => agent.on_conflicts(batch),
            _ = lease_tick.tick() => agent.renew_lease(),
            _ = watchdog_tick.tick() => agent.notifier.watchdog(),
            _ = housekeeping.tick() => agent.housekeeping().await,
            _ = share_tick.tick() => agent.share_arp_cache().await,
            _ = refresh_tick.tick() => {
                if agent.cfg.announce.refresh_interval.is_some() {
                    agent.refresh_announcements();
                }
            }
            _ = sighup.recv() => agent.reload().await,
            _ = sigterm.recv() => {
                if handover.is_some() || !agent.begin_handover().await {
                    return agent.shutdown("SIGTERM").await;
                }
                handover = Some(Instant::now() + HANDOVER_LIMIT);
            }
            _ = sigint.recv() => {
                if handover.is_some() || !agent.begin_handover().await {
                    return agent.shutdown("SIGINT").await;
                }
                handover = Some(Instant::now() + HANDOVER_LIMIT);
            }
            _ = tokio::time::sleep_until(handover.unwrap_or_else(Instant::now).into()), if handover.is_some() => {
                warn!("hand-over not finished within {HANDOVER_LIMIT:?}; releasing what is left");
                return agent.shutdown("stop").await;
            }
        }
        if handover.is_some() && agent.alloc.held().next().is_none() {
            return agent.shutdown("stop after hand-over").await;
        }
    }
}

async fn next_conflicts(
    reader: &mut Option<crate::dataplane::AsyncConflictReader>,
) -> Option<Vec<crate::dataplane::ConflictEvent>> {
    match reader {
        Some(r) => match r.next_batch().await {
            Ok(batch) => Some(batch),
            Err(e) => {
                warn!("data plane: conflict ring buffer: {e}; no more conflict reports");
                *reader = None;
                None
            }
        },
        None => std::future::pending().await,
    }
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

/// Removes what a crashed earlier run left: every XDP entry, and the
/// configured VIP addresses (only those) on their interfaces.
async fn clean_leftovers(plane: &mut DataPlane, vifs: &[PlannedVif]) {
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
    for vif in vifs {
        for a in &vif.addresses {
            // plan() admits IPv4 only so far.
            let Some(ip) = a.vip.ipv4() else { continue };
            let present = crate::net::addr::list(&a.vip.iface)
                .await
                .map(|l| l.iter().any(|(have, _)| *have == ip))
                .unwrap_or(false);
            if present {
                match crate::net::addr::remove(&a.vip.iface, ip, a.prefix).await {
                    Ok(()) => info!(
                        "start-up: removed leftover address {} from {}",
                        a.text(),
                        a.vip.iface
                    ),
                    Err(e) => warn!("start-up: cannot remove leftover {}: {e}", a.text()),
                }
            }
        }
    }
}

impl Agent {
    async fn on_membership(&mut self, event: MembershipEvent) {
        match event {
            MembershipEvent::View(view) => {
                info!(
                    view = %view.id,
                    members = view.members.len(),
                    my_index = view.my_index,
                    // CLOCK_MONOTONIC (shared by all namespaces): lets the
                    // failover benchmark split detection from the agent's share.
                    mono_ns = crate::lab::now_ns(),
                    "new view"
                );
                self.engine_up = true;
                self.view_members = view.members.len();
                self.trigger = Some(Trigger {
                    at: Instant::now(),
                    reason: format!("view {} with {} members", view.id, view.members.len()),
                });
                if !self.ready_sent {
                    self.notifier.ready("joined the group");
                    self.ready_sent = true;
                }
                if let Ok(mut m) = self.metrics.lock() {
                    m.view_changes += 1;
                    m.members = view.members.len();
                    m.engine_up = true;
                }
                self.feed(Input::View {
                    id: view.id,
                    members: view.members,
                    my_index: view.my_index,
                })
                .await;
                self.renew_lease();
            }
            MembershipEvent::Transitional => self.feed(Input::Transitional).await,
            MembershipEvent::Message { sender, payload } => {
                if payload.starts_with(b"WN") {
                    self.merge_arp_cache(&payload);
                } else {
                    self.feed(Input::Message { sender, payload }).await;
                }
            }
            MembershipEvent::Lost { reason } => {
                warn!("membership engine lost: {reason}; releasing everything until it is back");
                self.engine_up = false;
                if let Ok(mut m) = self.metrics.lock() {
                    m.engine_up = false;
                }
                self.feed(Input::EngineLost).await;
            }
        }
    }

    /// Feeds one input to the allocator and executes its actions in order.
    async fn feed(&mut self, input: Input) {
        let actions = self.alloc.handle(input);
        self.execute(actions).await;
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        let mut up = Vec::new();
        let mut down = Vec::new();
        for action in actions {
            match action {
                Action::Acquire(i) => {
                    if self.acquire(i).await {
                        up.push(i);
                    }
                }
                Action::Release(i) => {
                    self.release(i).await;
                    down.push(i);
                }
                Action::Multicast(bytes) => self.send(Outgoing::Send(bytes)).await,
                Action::ArmTimer { kind, after } => self.timers.arm(kind, after),
                Action::CancelTimer(kind) => self.timers.cancel(kind),
                Action::Leave => self.send(Outgoing::Leave).await,
                Action::Join => self.send(Outgoing::Join).await,
                Action::Report(r) => self.report(r),
            }
        }
        if !up.is_empty() {
            if let Some(t) = &self.trigger {
                let took = t.at.elapsed();
                info!(
                    vifs = up.len(),
                    took_us = took.as_micros() as u64,
                    "acquired after {}",
                    t.reason
                );
                self.last_failover = Some(Failover {
                    at: SystemTime::now(),
                    took,
                    reason: t.reason.clone(),
                });
                if let Ok(mut m) = self.metrics.lock() {
                    m.observe_failover(took.as_secs_f64());
                }
            }
            let names = up
                .iter()
                .filter_map(|i| self.vif(*i))
                .map(|v| v.name.clone())
                .collect();
            drop(self.hooks.fire(HookEvent::PostUp { vifs: names }));
        }
        if !down.is_empty() {
            let names = down
                .iter()
                .filter_map(|i| self.vif(*i))
                .map(|v| v.name.clone())
                .collect();
            drop(self.hooks.fire(HookEvent::PostDown { vifs: names }));
        }
        self.update_metrics();
    }

    fn vif(&self, i: VifIndex) -> Option<&PlannedVif> {
        self.vifs.get(i.0 as usize)
    }

    async fn send(&mut self, out: Outgoing) {
        if self.engine.outgoing.send(out).await.is_err() {
            error!("membership engine {} is gone", self.engine.description);
        }
    }

    async fn acquire(&mut self, i: VifIndex) -> bool {
        let Some(vif) = self.vif(i).cloned() else {
            error!("allocator asked to acquire unknown VIF {i}");
            return false;
        };
        self.pending_forget.remove(&(i.0 as usize));
        match vifs::bring_up(&mut self.plane, &Netlink, &vif).await {
            Ok(took) => {
                self.unplumbed.remove(&(i.0 as usize));
                info!(vif = %vif.name, took_us = took.as_micros() as u64, "acquired");
            }
            Err(e) => {
                // The VIF is ours for the cluster either way; housekeeping
                // retries the missing steps until they are done.
                self.unplumbed.insert(i.0 as usize);
                error!("acquiring VIF {}: {e:#}; retrying", vif.name);
            }
        }
        self.announce(i.0 as usize, Duration::ZERO);
        drop(self.hooks.fire(HookEvent::Up {
            vif: vif.name.clone(),
            addresses: vif.address_texts(),
        }));
        true
    }

    async fn release(&mut self, i: VifIndex) {
        let Some(vif) = self.vif(i).cloned() else {
            error!("allocator asked to release unknown VIF {i}");
            return;
        };
        self.unplumbed.remove(&(i.0 as usize));
        // Not one more frame claiming the VIF from here: an announcement
        // still in its burst (or waiting out a conflict) would point the
        // clients back at this node, which drops the VIF's traffic from now on.
        if let Some(task) = self.announcing.remove(&(i.0 as usize)) {
            task.abort();
        }
        match vifs::bring_down(&mut self.plane, &Netlink, &vif).await {
            Ok(took) => info!(vif = %vif.name, took_us = took.as_micros() as u64, "released"),
            Err(e) => error!("releasing VIF {}: {e:#}", vif.name),
        }
        self.pending_forget
            .insert(i.0 as usize, Instant::now() + RELEASE_GRACE);
        drop(self.hooks.fire(HookEvent::Down {
            vif: vif.name.clone(),
            addresses: vif.address_texts(),
        }));
    }

    /// Gratuitous ARP burst, then unicast replies to the notify targets and
    /// the shared ARP cache, after `delay`; in a task of its own (replacing
    /// the VIF's previous one), which [`Self::release`] aborts.
    fn announce(&mut self, i: usize, delay: Duration) {
        let Some(vif) = self.vifs.get(i) else {
            return;
        };
        let burst = crate::net::arp::Burst {
            count: self.cfg.announce.burst_count,
            spacing: self.cfg.announce.burst_spacing,
            form: crate::net::arp::GarpForm::Both,
        };
        let mut by_iface: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        for a in &vif.addresses {
            by_iface
                .entry(a.vip.iface.clone())
                .or_default()
                .extend(a.vip.ipv4());
        }
        let targets: Vec<(String, crate::net::Ipv4Prefix, u32)> = self
            .cfg
            .notify
            .targets
            .iter()
            .filter_map(|t| match t.range.addr {
                std::net::IpAddr::V4(net) => crate::net::Ipv4Prefix::new(net, t.range.prefix)
                    .map(|p| (t.range.iface.clone(), p, t.throttle.unwrap_or(0))),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        let cache: Vec<(Ipv4Addr, [u8; 6])> = if self.cfg.notify.arp_cache {
            self.arp_cache.iter().map(|(ip, mac)| (*ip, *mac)).collect()
        } else {
            Vec::new()
        };
        let name = vif.name.clone();
        let task = tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for (iface, ips) in by_iface {
                let sender = match crate::net::arp::ArpSender::open(&iface) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("announcing VIF {name}: {e}");
                        continue;
                    }
                };
                if let Err(e) = sender.garp_burst(&ips, burst).await {
                    warn!("announcing VIF {name} on {iface}: {e}");
                }
                for (t_iface, range, pps) in targets.iter().filter(|t| t.0 == iface) {
                    if let Err(e) = sender.notify(&ips, range, &cache, *pps).await {
                        warn!("notifying {t_iface}:{range:?} of VIF {name}: {e}");
                    }
                }
                if !cache.is_empty() {
                    if let Err(e) = sender.reply_to(&ips, &cache, 0).await {
                        warn!("notifying the shared ARP cache of VIF {name}: {e}");
                    }
                }
            }
        });
        if let Some(old) = self.announcing.insert(i, task.abort_handle()) {
            old.abort();
        }
    }

    fn refresh_announcements(&mut self) {
        let held: Vec<VifIndex> = self.alloc.held().collect();
        for i in held {
            self.announce(i.0 as usize, Duration::ZERO);
        }
    }

    fn on_conflicts(&mut self, batch: Vec<crate::dataplane::ConflictEvent>) {
        let held: BTreeSet<VifIndex> = self.alloc.held().collect();
        let mut claimed: BTreeMap<usize, (u64, [u8; 6])> = BTreeMap::new();
        for ev in batch {
            for (i, vif) in self.vifs.iter().enumerate() {
                if vif.addresses.iter().any(|a| a.vip.key() == ev.key)
                    && held.contains(&VifIndex(i as u32))
                {
                    let seen = claimed.entry(i).or_insert((0, ev.sender_mac));
                    seen.0 += 1;
                }
            }
        }
        let now = Instant::now();
        for (i, (frames, mac)) in claimed {
            let recent = self
                .conflict_announced
                .get(&i)
                .is_some_and(|at| now.duration_since(*at) < CONFLICT_HOLDOFF);
            if recent {
                continue;
            }
            self.conflict_announced.insert(i, now);
            if let Some(vif) = self.vifs.get(i) {
                warn!(
                    vif = %vif.name,
                    mac = %crate::net::fmt_mac(&mac),
                    frames,
                    "another host claims our VIF; announcing again"
                );
                self.announce(i, CONFLICT_SETTLE);
            }
        }
    }

    fn renew_lease(&mut self) {
        let Some(lease) = self.cfg.xdp.lease else {
            return;
        };
        // A lost engine means we may not hold anything: let the lease lapse.
        if !self.engine_up {
            return;
        }
        if let Err(e) = self.plane.renew_lease(Some(lease)) {
            error!("data plane: renewing the lease: {e}");
        }
    }

    async fn housekeeping(&mut self) {
        if !self.unplumbed.is_empty() {
            let held: BTreeSet<usize> = self.alloc.held().map(|i| i.0 as usize).collect();
            let (up, failed) = vifs::retry_bring_up(
                &mut self.plane,
                &Netlink,
                &self.vifs,
                &mut self.unplumbed,
                &held,
            )
            .await;
            for (i, e) in failed {
                debug!(vif = i, "bring-up retry failed: {e:#}");
            }
            for i in up {
                if let Some(vif) = self.vifs.get(i).cloned() {
                    info!(vif = %vif.name, "acquired on retry");
                    self.announce(i, Duration::ZERO);
                }
            }
            self.update_metrics();
        }
        let now = Instant::now();
        let due: Vec<usize> = self
            .pending_forget
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            self.pending_forget.remove(&i);
            if self.alloc.held().any(|h| h.0 as usize == i) {
                continue;
            }
            if let Some(vif) = self.vifs.get(i).cloned() {
                if let Err(e) = vifs::forget(&mut self.plane, &vif) {
                    warn!("{e:#}");
                } else {
                    debug!(vif = %vif.name, "XDP entry forgotten after the grace period");
                }
            }
        }
    }

    fn report(&mut self, r: Report) {
        match &r {
            Report::ConfigMismatch { .. } | Report::BadMessage { .. } => error!("{r}"),
            Report::Rejected { .. } => warn!("{r}"),
            Report::ViewComplete { members, .. } => {
                info!("{r}");
                self.notifier.status(&r.to_string());
                // After a merge, a VIF I kept (so never re-acquired) may have
                // been announced by the other side's owner meanwhile: clients
                // would keep that node's MAC, which now drops the traffic.
                if *members > self.complete_members && self.complete_members > 0 {
                    self.refresh_announcements();
                }
                self.complete_members = *members;
            }
            _ => info!("{r}"),
        }
        if let Report::Matured = r {
            if let Ok(mut m) = self.metrics.lock() {
                m.mature = true;
            }
        }
    }

    async fn share_arp_cache(&mut self) {
        if !self.cfg.notify.arp_cache || !self.engine_up {
            return;
        }
        let mut ifaces: Vec<String> = self
            .vifs
            .iter()
            .flat_map(|v| v.addresses.iter().map(|a| a.vip.iface.clone()))
            .collect();
        ifaces.sort();
        ifaces.dedup();
        let mut pairs = Vec::new();
        for iface in ifaces {
            match crate::net::neigh::list(&iface).await {
                Ok(list) => pairs.extend(list),
                Err(e) => warn!("ARP cache: reading neighbours of {iface}: {e}"),
            }
        }
        if pairs.is_empty() {
            return;
        }
        let bytes = NeighShare::from_pairs(&pairs).encode();
        self.send(Outgoing::Send(bytes)).await;
    }

    fn merge_arp_cache(&mut self, payload: &[u8]) {
        match NeighShare::decode(payload) {
            Ok(share) => {
                let vips: BTreeSet<Ipv4Addr> = self
                    .vifs
                    .iter()
                    .flat_map(|v| v.addresses.iter().filter_map(|a| a.vip.ipv4()))
                    .collect();
                for (ip, mac) in share.pairs() {
                    if !vips.contains(&ip) {
                        self.arp_cache.insert(ip, mac);
                    }
                }
            }
            Err(e) => warn!("ARP cache: ignoring a share message: {e}"),
        }
    }

    fn update_metrics(&mut self) {
        let held: BTreeSet<VifIndex> = self.alloc.held().collect();
        let mut rows = Vec::with_capacity(self.vifs.len());
        for (i, vif) in self.vifs.iter().enumerate() {
            let mut row = VifMetrics {
                name: vif.name.clone(),
                owned: held.contains(&VifIndex(i as u32)),
                ..Default::default()
            };
            for a in &vif.addresses {
                if let Ok(c) = self.plane.counters(&a.vip) {
                    row.packets += c.packets;
                    row.bytes += c.bytes;
                    row.arp_replies += c.arp_replies;
                    row.drops += c.drops;
                }
            }
            rows.push(row);
        }
        if let Ok(mut m) = self.metrics.lock() {
            m.vifs = rows;
            m.mature = self.alloc.is_mature();
        }
    }

    async fn on_control(&mut self, req: ControlRequest) {
        let reply = self.answer(req.request).await;
        let _ = req.reply.send(reply);
    }

    fn vif_by_name(&self, name: &str) -> Option<VifIndex> {
        self.cfg
            .vif_index(name)
            .or_else(|| {
                self.vifs
                    .iter()
                    .position(|v| v.addresses.iter().any(|a| a.vip.addr.to_string() == name))
            })
            .map(|i| VifIndex(i as u32))
    }

    /// Runs an operator command and turns a synchronous rejection into an error reply.
    async fn operator(&mut self, input: Input, what: String) -> Reply {
        let actions = self.alloc.handle(input);
        let rejected = actions.iter().find_map(|a| match a {
            Action::Report(Report::Rejected { reason, .. }) => Some(reason.clone()),
            _ => None,
        });
        if matches!(
            what.as_str(),
            s if s.starts_with("move")
                || s.starts_with("drain")
                || s.starts_with("undrain")
                || s == "balance"
        ) {
            self.trigger = Some(Trigger {
                at: Instant::now(),
                reason: what.clone(),
            });
        }
        self.execute(actions).await;
        match rejected {
            Some(reason) => Reply::error(format!("{what}: {reason}")),
            None => Reply::done(format!("{what}: done")),
        }
    }

    async fn answer(&mut self, request: Request) -> Reply {
        match request {
            Request::List => Reply::list(self.list()),
            Request::Status => Reply::status(self.status()),
            Request::Fail => self.operator(Input::Fail, "fail".into()).await,
            Request::Recover => self.operator(Input::Recover, "recover".into()).await,
            Request::Balance => {
                self.operator(Input::Operator(OperatorCommand::Balance), "balance".into())
                    .await
            }
            Request::Move { vif, node } => match self.vif_by_name(&vif) {
                Some(index) => {
                    self.operator(
                        Input::Operator(OperatorCommand::Move {
                            vif: index,
                            node: node.clone(),
                        }),
                        format!("move {vif} to {node}"),
                    )
                    .await
                }
                None => Reply::error(format!("move: no VIF named {vif:?}")),
            },
            Request::Drain { node } => {
                self.operator(
                    Input::Operator(OperatorCommand::Drain { node: node.clone() }),
                    format!("drain {node}"),
                )
                .await
            }
            Request::Undrain { node } => {
                self.operator(
                    Input::Operator(OperatorCommand::Undrain { node: node.clone() }),
                    format!("undrain {node}"),
                )
                .await
            }
        }
    }

    fn list(&self) -> ListReply {
        let table = self.alloc.table();
        let held: BTreeSet<VifIndex> = self.alloc.held().collect();
        let vifs = self
            .vifs
            .iter()
            .enumerate()
            .map(|(i, vif)| {
                let row = table.vifs.get(i);
                let index = VifIndex(i as u32);
                let mut out = CtlVif {
                    name: vif.name.clone(),
                    addresses: vif.address_texts(),
                    owner: row.and_then(|r| r.owner.as_ref()).map(|o| o.node.clone()),
                    state: if held.contains(&index) {
                        "owned".into()
                    } else if self.pending_forget.contains_key(&i) {
                        "releasing".into()
                    } else if row.and_then(|r| r.owner.as_ref()).is_some() {
                        "remote".into()
                    } else {
                        "unowned".into()
                    },
                    ..Default::default()
                };
                for a in &vif.addresses {
                    if let Ok(c) = self.plane.counters(&a.vip) {
                        out.packets += c.packets;
                        out.bytes += c.bytes;
                        out.arp_replies += c.arp_replies;
                        out.drops += c.drops;
                    }
                }
                out
            })
            .collect();
        ListReply { vifs }
    }

    fn status(&self) -> StatusReply {
        let table = self.alloc.table();
        StatusReply {
            node: self.cfg.node.clone(),
            engine: if self.engine_up {
                self.engine.description.clone()
            } else {
                format!("{} (down)", self.engine.description)
            },
            view: table.view.map(|v| v.to_string()).unwrap_or_default(),
            members: table
                .members
                .iter()
                .map(|m| CtlMember {
                    name: if m.node.is_empty() {
                        m.member.to_string()
                    } else {
                        m.node.clone()
                    },
                    mature: m.mature,
                    drained: m.drained,
                    vifs: m.count,
                })
                .collect(),
            mature: table.mature,
            leader: table.members.first().map(|m| {
                if m.node.is_empty() {
                    m.member.to_string()
                } else {
                    m.node.clone()
                }
            }),
            last_failover: self.last_failover.as_ref().map(|f| FailoverInfo {
                at_unix_ms: f
                    .at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                took_us: f.took.as_micros() as u64,
                reason: f.reason.clone(),
            }),
        }
    }

    /// SIGHUP: apply what can change safely, refuse the rest (logged).
    async fn reload(&mut self) {
        self.notifier.reloading();
        let new = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                error!("reload refused, keeping the running configuration: {e}");
                self.notifier.ready("running (reload refused)");
                return;
            }
        };
        let plan = config::reload_diff(&self.cfg, &new);
        for (field, reason) in &plan.refused {
            warn!(
                "reload: `{field}` changed but needs a restart ({reason}); keeping the old value"
            );
        }
        if plan.apply.is_empty() {
            info!("reload: nothing to apply");
        }
        let mut next = self.cfg.clone();
        next.notify = new.notify.clone();
        next.hooks = new.hooks.clone();
        next.balance = new.balance.clone();
        next.announce = new.announce;
        next.log = new.log;
        let balance_changed = next.balance != self.cfg.balance;
        if next.hooks != self.cfg.hooks {
            self.hooks = HookRunner::start(hook_config(&next), next.node.clone());
        }
        if next.log != self.cfg.log {
            if let Some(h) = &self.log {
                let _ = h.modify(|f| {
                    *f = tracing_subscriber::EnvFilter::new(filter_for(next.log.level.as_str()))
                });
            }
        }
        self.cfg = next;
        if balance_changed {
            let cfg = alloc_config(&self.cfg);
            self.feed(Input::ConfigChanged(cfg)).await;
        }
        info!(
            "reload: applied {}",
            if plan.apply.is_empty() {
                "nothing".to_string()
            } else {
                plan.apply.join(", ")
            }
        );
        self.notifier.ready("running");
    }

    /// A planned stop hands our VIFs over before leaving: a drain of this
    /// node is one agreed message on which the new owners start answering
    /// and we go silent, so clients lose nothing. Only worth it when a mature
    /// member can take them; returns whether a hand-over started.
    async fn begin_handover(&mut self) -> bool {
        if !self.engine_up || self.alloc.held().next().is_none() {
            return false;
        }
        let table = self.alloc.table();
        let me = table.my_index;
        // Maturity is a property of the group once anyone is mature (a mature
        // member's messages mature everyone), so any other valid, undrained
        // member of my view can take over.
        let someone_else = table.mature
            && table
                .members
                .iter()
                .enumerate()
                .any(|(i, m)| Some(i) != me && m.config_ok && m.state_received && !m.drained);
        if !someone_else {
            return false;
        }
        info!("stop requested: handing our VIFs to the other members first (a second signal stops at once)");
        self.notifier.stopping();
        let reply = self
            .operator(
                Input::Operator(OperatorCommand::Drain {
                    node: self.cfg.node.clone(),
                }),
                format!("drain {} for stop", self.cfg.node),
            )
            .await;
        reply.ok
    }

    /// SIGTERM/SIGINT: silence and remove every VIF, leave the group, unpin
    /// the data plane.
    async fn shutdown(mut self, why: &str) -> Result<()> {
        info!("{why}: releasing everything and leaving the group");
        self.notifier.stopping();
        let held: Vec<VifIndex> = self.alloc.held().collect();
        for i in held {
            self.release(i).await;
        }
        let _ = self.engine.outgoing.send(Outgoing::Shutdown).await;
        // Give the engine a moment to say goodbye so peers see us leave at once.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while self.engine.events.recv().await.is_some() {}
        })
        .await;
        self.plane.shutdown().context("data plane shutdown")?;
        info!("stopped");
        Ok(())
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

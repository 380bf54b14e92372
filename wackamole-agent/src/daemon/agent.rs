//! The agent's state, its event loop and the executor of the allocator's
//! actions.
//!
//! One single-threaded loop owns all state. Inputs (engine events, timers,
//! control requests, signals, conflict reports) go into the [`Allocator`];
//! its actions are executed here in order. Everything done to the machine
//! goes through the [`Host`]; every input arrives on a channel, so a test can
//! build an agent in-process and drive it.

use super::host::{AnnounceDone, AnnounceStage, CarrierEvent, CarrierEvents, Conflicts, Host};
use super::lease_keeper::{LeaseBook, LeaseKeeper};
use super::messages::GroupMessage;
use super::metrics::{MetricsSnapshot, VifMetrics};
use super::sdnotify::Notifier;
use super::timers::Timers;
use super::vif_log::{vif_line, vif_line_timed, VifLines};
use super::vifs::{self, PlannedVif};
use super::LogHandle;
use crate::alloc::VifIndex;
use crate::alloc::{
    self, Action, AllocConfig, Allocator, Input, NodeInfo, Phase, Report, TimerKind,
};
use crate::config::{self, Config};
use crate::control::server::ControlRequest;
use crate::dataplane::VipTable;
use crate::hooks::{HookConfig, HookEvent, HookRunner};
use crate::membership::{Alive, MemberId, MembershipEvent, MembershipHandle, Outgoing, ViewId};
use anyhow::{anyhow, Result};
use futures::stream::{LocalBoxStream, StreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// How long a released VIF stays in XDP as "releasing" (dropping stray
/// traffic and ARP) before the entry is forgotten.
pub const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// After an announcement is on the wire, how long the clients get to take
/// it in before the allocator hears `Announced` (and the old owner of a
/// hand-over may drop the VIF's traffic).
pub const ANNOUNCE_SETTLE: Duration = Duration::from_millis(10);

/// The shortest wait for the engine's merge after carrier comes back (see
/// [`merge_wait`]).
pub const MERGE_WAIT_MIN: Duration = Duration::from_secs(2);

/// How long a node whose carrier came back waits for a view with peers
/// before it takes VIFs in a view of its own (a cluster of one): see
/// `Allocator::set_merge_wait`. A merge takes the link's detection plus a
/// membership round (about the takeover floor, token + consensus): with
/// Corosync LAN-fast (floor 110 ms, knet pings every 200 ms) the merge came
/// 0.5-0.7 s after the cable, with the defaults (floor ~8 s) several
/// seconds. Two floors, at least [`MERGE_WAIT_MIN`]: waiting too long only
/// delays a lone node's return; too short gives two ARP answerers.
pub fn merge_wait(takeover_floor: Duration) -> Duration {
    (takeover_floor * 2).max(MERGE_WAIT_MIN)
}

/// Added to a departed member's lease before its VIFs answer here: timer
/// and scheduling slack (its lease counts from its last liveness evidence,
/// before it died, and we hear of the death after it).
pub const DEPARTED_MARGIN: Duration = Duration::from_millis(5);

/// After a hand-over, how long the old owner keeps a VIF's addresses and
/// accepts its traffic (XDP "yielding": no ARP answer) before removing them.
/// The new owner answers and announced before the hand-over completed, but a
/// client may still send to the old MAC for a while (it has not taken the
/// announcement in yet, or a request is queued on a loaded host); removing
/// the address at once dropped those (lost probes in rolling restarts).
pub const HANDOVER_LINGER: Duration = Duration::from_millis(500);

/// Detector mode `act`: why a VIF just acquired stays silent (see
/// [`Agent::handshake_wait`]).
#[derive(Clone, Debug, PartialEq, Eq)]
enum HandshakeWait {
    /// Taken from a condemned member before the group agreed: until every
    /// other member echoed the raise at a position no further than ours.
    Provisional,
    /// Acquired while these members' flags were up: until each lowered it
    /// in a beat echoing one of ours stamped `since` or later.
    Acquired {
        since: u64,
        flagged: BTreeSet<MemberId>,
    },
}

/// How often a VIF waiting for the handshake is looked at again, besides
/// at each change the beat thread reports
/// ([`super::beats::Report::Handshake`]): a backstop, a beat period by
/// default.
const HANDSHAKE_POLL: Duration = Duration::from_millis(5);

/// How often a deferred VIF whose hand-over waits for another member to
/// stop answering is looked at again (see [`Agent::deferred_due`]).
pub const HANDOVER_POLL: Duration = Duration::from_millis(5);

/// How often failed bring-ups are retried and released entries forgotten.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);

/// How often the metrics page's XDP counters are read when metrics are
/// served (ownership is updated on every change): a map lookup per
/// address, 4000 system calls at 4000 VIPs, was done on every allocator
/// input, a balance round twice a second included.
pub const METRICS_REFRESH_EVERY: Duration = Duration::from_secs(5);

/// A batch moving at least this many VIFs leaves the heap to be trimmed
/// ([`release_freed_heap`]) once its announcements are over.
pub(super) const TRIM_AFTER_VIFS: usize = 256;
/// How long after such a batch: its announcement bursts have gone out.
pub(super) const TRIM_DELAY: Duration = Duration::from_secs(5);

/// A lapse of the fencing lease, until liveness evidence revives it.
#[derive(Clone, Copy, Debug)]
struct Lapse {
    /// When XDP went silent.
    since: Instant,
    /// Whether a view was installed since.
    view_changed: bool,
    /// After this process was frozen or starved: no revival before this
    /// (see [`MembershipEvent::Resumed`]).
    settle_until: Option<Instant>,
    /// Revival was held back for members outside the view that answer
    /// (said once per lapse).
    held_back: bool,
    /// Not before this: see [`Agent::revival_turn`].
    turn: Option<Instant>,
}

impl Lapse {
    /// A lapse that began at `since`, nothing known of it yet.
    fn since(since: Instant) -> Lapse {
        Lapse {
            since,
            view_changed: false,
            settle_until: None,
            held_back: false,
            turn: None,
        }
    }
}

/// A signal from the service manager or the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: hand the VIFs over, then stop (a second one stops at once).
    Term,
    /// SIGINT: as SIGTERM.
    Int,
    /// SIGHUP: reload the configuration.
    Hup,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Hup => "SIGHUP",
        })
    }
}

/// Everything an agent is made of. The bootstrap fills it with the real
/// machine; a test with a fake host and plain channels.
pub struct AgentParts<H> {
    pub cfg: Config,
    /// The configured VIFs, resolved on this host.
    pub vifs: Vec<PlannedVif>,
    pub host: H,
    pub engine: MembershipHandle,
    pub signals: mpsc::Receiver<Signal>,
    pub control: mpsc::Receiver<ControlRequest>,
    /// What the metrics endpoint serves.
    pub metrics: Arc<Mutex<MetricsSnapshot>>,
    /// The log filter, changed by a reload of `log.level`.
    pub log: Option<LogHandle>,
    /// The LAN failure detector's thread, when `[detector]` is configured.
    pub beats: Option<super::beats::BeatsHandle>,
}

/// What started the current round of acquisitions (for failover timing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A new view.
    View { id: ViewId, members: usize },
    /// Operator `move VIF to NODE`.
    Move { vif: String, node: String },
    /// Operator `drain NODE`, or a stop handing this node's VIFs over.
    Drain { node: String, for_stop: bool },
    /// Operator `undrain NODE`.
    Undrain { node: String },
    /// Operator `balance`.
    Balance,
    /// A silent member's eviction.
    Evict,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::View { id, members } => write!(f, "view {id} with {members} members"),
            Trigger::Move { vif, node } => write!(f, "move {vif} to {node}"),
            Trigger::Drain {
                node,
                for_stop: false,
            } => write!(f, "drain {node}"),
            Trigger::Drain {
                node,
                for_stop: true,
            } => write!(f, "drain {node} for stop"),
            Trigger::Undrain { node } => write!(f, "undrain {node}"),
            Trigger::Balance => f.write_str("balance"),
            Trigger::Evict => f.write_str("eviction of a silent member"),
        }
    }
}

/// The last failover this node took part in.
#[derive(Clone, Debug)]
pub(super) struct Failover {
    pub at: SystemTime,
    pub took: Duration,
    pub reason: String,
}

/// The agent's inputs besides the engine and its timers.
struct Inputs {
    signals: mpsc::Receiver<Signal>,
    control: mpsc::Receiver<ControlRequest>,
    conflicts: Option<Conflicts>,
    carrier: Option<CarrierEvents>,
    /// Progress of announcements: (VIF, generation, stage).
    announced: mpsc::UnboundedReceiver<(usize, u64, AnnounceStage)>,
    /// The LAN failure detector (see `beats`).
    beats: Option<super::beats::BeatsHandle>,
}

/// Announcements the allocator waits for (`Input::Announced`).
#[derive(Default)]
pub(super) struct Announcing {
    tx: Option<mpsc::UnboundedSender<(usize, u64, AnnounceStage)>>,
    /// The generation of each VIF's newest announcement.
    generation: HashMap<usize, u64>,
    next: u64,
    /// VIFs whose `Announced` is owed (after an Acquire, Reclaim, Announce).
    owed: BTreeSet<usize>,
    /// Owed VIFs on the wire, due to the allocator at the given time.
    settling: BTreeMap<usize, Instant>,
    /// `settling` by time: the loop asks for the next one at every event,
    /// and a takeover of hundreds of VIFs completes their announcements
    /// one event each (a scan of the map each time was quadratic).
    due: BTreeSet<(Instant, usize)>,
}

impl Announcing {
    /// A completion handle for a new announcement of VIF `vif`.
    pub(super) fn begin(&mut self, vif: usize) -> Option<AnnounceDone> {
        let tx = self.tx.clone()?;
        self.next += 1;
        self.generation.insert(vif, self.next);
        Some(AnnounceDone::new(vif, self.next, tx))
    }

    /// VIF `vif` no longer announces (released or yielding): owe nothing.
    pub(super) fn drop_vif(&mut self, vif: usize) {
        self.owed.remove(&vif);
        self.unsettle(vif);
    }

    /// VIF `vif` is no longer on its way to the allocator.
    fn unsettle(&mut self, vif: usize) {
        if let Some(at) = self.settling.remove(&vif) {
            self.due.remove(&(at, vif));
        }
    }

    /// Whether `generation` is VIF `vif`'s newest announcement.
    fn is_current(&self, vif: usize, generation: u64) -> bool {
        self.generation.get(&vif) == Some(&generation)
    }

    fn completed(&mut self, vif: usize, generation: u64) {
        if self.is_current(vif, generation)
            && self.owed.contains(&vif)
            && !self.settling.contains_key(&vif)
        {
            let at = Instant::now() + ANNOUNCE_SETTLE;
            self.settling.insert(vif, at);
            self.due.insert((at, vif));
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|&(at, _)| at)
    }

    /// The owed VIFs whose settle is over (removed from the books), in
    /// VIF order.
    fn take_due(&mut self, now: Instant) -> Vec<VifIndex> {
        let mut due = Vec::new();
        while let Some(&(at, v)) = self.due.first().filter(|(at, _)| *at <= now) {
            self.due.remove(&(at, v));
            self.settling.remove(&v);
            self.owed.remove(&v);
            due.push(v);
        }
        due.sort_unstable();
        due.into_iter().map(|v| VifIndex(v as u32)).collect()
    }
}

/// The acquisitions and releases of one decision whose XDP step is done
/// and whose kernel steps wait for [`Agent::flush`]: (VIF, XDP step done).
#[derive(Default)]
pub(super) struct Batch {
    up: Vec<(usize, bool)>,
    down: Vec<(usize, bool)>,
    /// Every VIF in `up` or `down`.
    vifs: BTreeSet<usize>,
}

impl Batch {
    /// Whether VIF `i` already has a step waiting here.
    fn touches(&self, i: usize) -> bool {
        self.vifs.contains(&i)
    }
}

/// One node's agent.
pub struct Agent<H: Host> {
    pub(super) cfg: Config,
    pub(super) log: Option<LogHandle>,
    pub(super) alloc: Allocator,
    pub(super) host: H,
    pub(super) vifs: Vec<PlannedVif>,
    pub(super) engine: MembershipHandle,
    pub(super) engine_up: bool,
    timers: Timers<TimerKind>,
    /// Released VIFs whose XDP entries are forgotten at the given time.
    pub(super) pending_forget: BTreeMap<usize, Instant>,
    /// Held VIFs whose bring-up failed (XDP or addresses): housekeeping
    /// retries them until they are complete or no longer ours.
    pub(super) unplumbed: BTreeSet<usize>,
    /// With standby addresses: the VIFs whose addresses are in the kernel
    /// (held or not), so taking one over adds nothing.
    pub(super) plumbed: BTreeSet<usize>,
    /// When the kept addresses were last checked (see `check_addresses`).
    pub(super) addresses_checked: Option<Instant>,
    /// When each VIF was last re-announced because of a conflict.
    pub(super) conflict_announced: HashMap<usize, Instant>,
    /// When to give the heap's free pages back after a large batch.
    pub(super) trim_heap_at: Option<Instant>,
    pub(super) hooks: HookRunner,
    pub(super) notifier: Notifier,
    ready_sent: bool,
    pub(super) trigger: Option<(Instant, Trigger)>,
    pub(super) last_failover: Option<Failover>,
    metrics: Arc<Mutex<MetricsSnapshot>>,
    /// The cluster's shared ARP cache: IP → MAC, merged from every member.
    pub(super) arp_cache: super::arp_share::SharedCache,
    pub(super) announcing: Announcing,
    /// Interfaces without carrier, and the ineligible VIFs last fed.
    carrier_down: BTreeSet<String>,
    ineligible: BTreeSet<VifIndex>,
    /// Members of the last completed view: a bigger one is a merge or a join.
    complete_members: usize,
    /// The engine's takeover floor, from its latest liveness evidence.
    floor: Option<Duration>,
    /// VIFs a departed member (process gone, node up) held: its XDP may
    /// answer for them until the given time (its lease), so we do not.
    fenced: BTreeMap<usize, Instant>,
    /// Detector mode `guard`: who held each VIF (as owner, or a
    /// hand-over's pending party) when the table was last settled.
    holders: BTreeMap<usize, Vec<MemberId>>,
    /// The members the views dropped that held each VIF, while they stay
    /// out of the view (see [`Agent::guard_departed`]): all of them, since
    /// a VIF may pass from a departed member that still answers it to
    /// another that then departs too without ever answering it.
    origin: BTreeMap<usize, BTreeSet<MemberId>>,
    /// Those of `origin` whose member's beats say it answers: they answer
    /// here only once it falls silent.
    awaiting: BTreeMap<usize, MemberId>,
    /// VIFs this node took while it answered nothing and a member of
    /// another view answered: they wait until none does (see
    /// [`Agent::wait_for_fence`]).
    awaiting_elsewhere: BTreeSet<usize>,
    /// VIFs of `awaiting_elsewhere` since the last completed view: after a
    /// merge this node claims them until the exchange settles whose they
    /// are, and so may the members it merged with (see [`Agent::settling`]).
    quiet_claims: BTreeSet<usize>,
    /// Set for one decision of the allocator: this node answered nothing
    /// when it came, and members of another view answer.
    quiet_start: bool,
    /// The members of the current view.
    view_members: Vec<MemberId>,
    /// A view's exchange completed: members this node's detector condemned
    /// in an earlier view may still be in it (see
    /// [`Agent::condemn_again_in_this_view`]).
    view_completed: bool,
    /// The digests (as beats name views) of this node's latest views, the
    /// newest last: a member of mine whose beat names one of them may
    /// only lag behind (see [`Agent::awaited`]).
    my_views: std::collections::VecDeque<u64>,
    /// This node's member id in the latest view.
    me: Option<MemberId>,
    /// Detector mode `guard`: a member the group just evicted whose beats
    /// still say it answers; the VIFs acquired in the same decision wait
    /// for it (see [`Agent::guard_evicted`]).
    evicted_answering: Option<MemberId>,
    /// VIFs the allocator gave us whose bring-up waits for `fenced` or
    /// `awaiting`.
    pub(super) deferred: BTreeSet<usize>,
    /// Per-VIF log lines of the event being handled (bounded, see
    /// `vif_log`).
    pub(super) vif_lines: VifLines,
    /// Detector mode `act`: deferred VIFs waiting for the handshake (see
    /// [`Agent::handshake_wait`]).
    handshake: BTreeMap<usize, HandshakeWait>,
    /// Detector mode `act`: agreed messages processed in the current view,
    /// and whether the beats say this node holds VIFs provisionally.
    act_position: u64,
    act_flag: bool,
    /// VIFs yielding in XDP (handing over): their release lingers.
    yielded: BTreeSet<usize>,
    /// Held VIFs whose IPv6 addresses XDP keeps silent until the kernel
    /// routes them here (see [`vifs::own`]): answered at their
    /// announcement's `Usable`.
    silent6: BTreeSet<usize>,
    /// Handed-over VIFs whose addresses stay (serving traffic in flight,
    /// never answering ARP) until the given time: see [`HANDOVER_LINGER`].
    pub(super) lingering: BTreeMap<usize, Instant>,
    /// The XDP lease: until when it was last renewed, by this loop or by
    /// the lease keeper (which extends it off this loop, see
    /// `lease_keeper`); it tells the host's announcements of every renewal.
    lease: LeaseBook,
    /// The keeper's end, until [`Agent::run`] starts it.
    keeper: Option<LeaseKeeper>,
    /// The beat thread's stall this node is silent for (detector mode
    /// `guard`): see [`Agent::beats_stalled`].
    beat_stall: Option<u64>,
    /// Set when the lease lapsed: see [`Agent::may_revive`].
    lapse: Option<Lapse>,
    /// Set once a stop signal started handing our VIFs to the other members:
    /// the moment the agent stops anyway.
    pub(super) handover: Option<Instant>,
    /// The members' liveness probes, to evict a silent one.
    watch: super::evict::Watch,
    inputs: Inputs,
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
    // A crash is taken over at the view, before the exchange, only where
    // the lease silences an agent that applies a view late.
    a.takeover_at_view = cfg.xdp.lease != config::Lease::Off;
    a
}

pub(super) fn hook_config(cfg: &Config) -> HookConfig {
    HookConfig {
        on_up: cfg.hooks.on_up.clone(),
        on_down: cfg.hooks.on_down.clone(),
        post_up: cfg.hooks.post_up.clone(),
        post_down: cfg.hooks.post_down.clone(),
        timeout: cfg.hooks.timeout,
    }
}

/// A ticker for an optional period (never firing without one), first
/// firing one period from now.
fn ticker(every: Option<Duration>) -> tokio::time::Interval {
    let period = every.unwrap_or(Duration::from_secs(3600));
    let mut t = tokio::time::interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// How often this node shares its ARP cache, if it does.
fn share_every(cfg: &Config) -> Option<Duration> {
    cfg.notify
        .arp_cache
        .then(|| cfg.notify.arp_cache_interval.max(Duration::from_secs(1)))
}

/// The detector's next report; pending forever without a detector.
async fn next_report(
    beats: &mut Option<super::beats::BeatsHandle>,
) -> Option<super::beats::Report> {
    match beats {
        Some(b) => b.reports.recv().await,
        None => std::future::pending().await,
    }
}

/// The next item of an optional stream; pending forever once it is gone.
async fn next_of<T>(stream: &mut Option<LocalBoxStream<'static, T>>) -> Option<T> {
    match stream {
        Some(s) => match s.next().await {
            Some(item) => Some(item),
            None => {
                *stream = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

impl<H: Host> Agent<H> {
    /// An agent not yet in any view; call [`Agent::run`]. Needs a tokio
    /// runtime (the hook runner starts a task).
    pub fn new(parts: AgentParts<H>) -> Self {
        let AgentParts {
            cfg,
            vifs,
            mut host,
            engine,
            signals,
            control,
            metrics,
            log,
            beats,
        } = parts;
        let alloc = Allocator::with_wire_version(
            alloc_config(&cfg),
            NodeInfo {
                name: cfg.node.clone(),
            },
            super::wire_knob::wire_version(),
        );
        let hooks = HookRunner::start(hook_config(&cfg), cfg.node.clone());
        let (announced_tx, announced) = mpsc::unbounded_channel();
        let inputs = Inputs {
            signals,
            control,
            conflicts: host.conflicts(),
            carrier: host.carrier_events(),
            announced,
            beats,
        };
        let (lease, keeper) = super::lease_keeper::new(
            engine.alive.clone(),
            host.lease_signal(),
            inputs
                .beats
                .as_ref()
                .map(super::beats::BeatsHandle::answer_until),
        );
        Agent {
            log,
            alloc,
            lease,
            keeper: Some(keeper),
            host,
            vifs,
            engine,
            engine_up: false,
            timers: Timers::default(),
            pending_forget: BTreeMap::new(),
            unplumbed: BTreeSet::new(),
            plumbed: BTreeSet::new(),
            addresses_checked: None,
            conflict_announced: HashMap::new(),
            trim_heap_at: None,
            hooks,
            notifier: Notifier::from_env(),
            ready_sent: false,
            trigger: None,
            last_failover: None,
            metrics,
            arp_cache: Default::default(),
            complete_members: 0,
            floor: None,
            fenced: BTreeMap::new(),
            holders: BTreeMap::new(),
            origin: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            awaiting_elsewhere: BTreeSet::new(),
            quiet_claims: BTreeSet::new(),
            quiet_start: false,
            view_members: Vec::new(),
            view_completed: false,
            my_views: std::collections::VecDeque::new(),
            me: None,
            evicted_answering: None,
            deferred: BTreeSet::new(),
            vif_lines: VifLines::default(),
            handshake: BTreeMap::new(),
            act_position: 0,
            act_flag: false,
            yielded: BTreeSet::new(),
            silent6: BTreeSet::new(),
            lingering: BTreeMap::new(),
            lapse: None,
            beat_stall: None,
            announcing: Announcing {
                tx: Some(announced_tx),
                ..Default::default()
            },
            carrier_down: BTreeSet::new(),
            ineligible: BTreeSet::new(),
            handover: None,
            watch: Default::default(),
            inputs,
            cfg,
        }
    }

    /// Runs until a stop signal (Ok) or the loss of the engine task (Err,
    /// after releasing everything).
    pub async fn run(mut self) -> Result<()> {
        // First: nothing is held or plumbed yet if it cannot start.
        if let Some(keeper) = self.keeper.take() {
            self.host.start_lease_keeper(keeper)?;
        }
        // The lease renews only on the engine's liveness evidence (see
        // `lease`); `alive_open` goes false when the engine drops its end.
        let mut alive_open = true;
        let mut capped_warned = false;
        self.warn_if_unfenced();
        let mut watchdog_tick = ticker(Notifier::watchdog_interval().map(|w| w / 2));
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_EVERY);
        let mut share_tick = ticker(share_every(&self.cfg));
        let mut refresh_tick = ticker(self.cfg.announce.refresh_interval);
        let mut metrics_tick = ticker(self.cfg.metrics_listen.map(|_| METRICS_REFRESH_EVERY));
        self.plumb_standby().await;
        self.update_metrics();

        loop {
            if std::mem::take(&mut self.view_completed) {
                self.condemn_again_in_this_view().await;
            }
            let deferred_due = self.deferred_due();
            let linger_due = self.lingering.values().min().copied();
            tokio::select! {
                event = self.engine.events.recv() => match event {
                    Some(event) => self.on_membership(event).await,
                    None => {
                        // Exiting with VIFs still plumbed would leave their
                        // addresses answering (fencing only covers ARP, and only
                        // with a lease): release them like a normal stop first.
                        let err = anyhow!("membership engine {} stopped", self.engine.description);
                        error!("{err:#}");
                        self.shutdown("engine stopped").await?;
                        return Err(err);
                    }
                },
                kind = self.timers.expired() => self.feed(Input::Timer(kind)).await,
                Some(req) = self.inputs.control.recv() => self.on_control(req).await,
                Some(batch) = next_of(&mut self.inputs.conflicts) => self.on_conflicts(batch),
                Some(event) = next_of(&mut self.inputs.carrier) => self.on_carrier(event).await,
                Some(report) = next_report(&mut self.inputs.beats) => self.on_detector(report).await,
                Some((vif, generation, stage)) = self.inputs.announced.recv() => {
                    self.on_announce_progress(vif, generation, stage);
                }
                _ = tokio::time::sleep_until(self.announcing.next_due().unwrap_or_else(Instant::now)), if self.announcing.next_due().is_some() => {
                    let due = self.announcing.take_due(Instant::now());
                    if !due.is_empty() {
                        self.feed(Input::Announced(due)).await;
                    }
                }
                changed = self.engine.alive.changed(), if alive_open => match changed {
                    Ok(()) => {
                        let alive = *self.engine.alive.borrow_and_update();
                        // The engine queued what it delivered before this
                        // evidence (a view, above all): handle that first.
                        while let Ok(event) = self.engine.events.try_recv() {
                            self.on_membership(event).await;
                        }
                        if let Some(alive) = alive {
                            self.floor = Some(alive.takeover_floor);
                            self.renew_lease(alive, &mut capped_warned);
                            let wait = merge_wait(alive.takeover_floor);
                            if self.alloc.merge_wait() != wait {
                                self.alloc.set_merge_wait(wait);
                            }
                        }
                    }
                    Err(_) => alive_open = false,
                },
                _ = tokio::time::sleep_until(deferred_due.unwrap_or_else(Instant::now)), if deferred_due.is_some() => {
                    self.bring_up_deferred().await;
                }
                _ = tokio::time::sleep_until(linger_due.unwrap_or_else(Instant::now)), if linger_due.is_some() => {
                    self.end_lingering(false).await;
                }
                _ = watchdog_tick.tick() => self.notifier.watchdog(),
                _ = housekeeping.tick() => self.housekeeping().await,
                _ = share_tick.tick() => self.share_arp_cache().await,
                _ = metrics_tick.tick() => self.update_metrics(),
                _ = refresh_tick.tick() => {
                    if self.cfg.announce.refresh_interval.is_some() {
                        self.refresh_announcements();
                    }
                }
                Some(signal) = self.inputs.signals.recv() => match signal {
                    Signal::Hup => {
                        let periods = (share_every(&self.cfg), self.cfg.announce.refresh_interval);
                        self.reload().await;
                        // A reloaded period takes effect now, not after a restart.
                        if periods.0 != share_every(&self.cfg) {
                            share_tick = ticker(share_every(&self.cfg));
                        }
                        if periods.1 != self.cfg.announce.refresh_interval {
                            refresh_tick = ticker(self.cfg.announce.refresh_interval);
                        }
                    }
                    Signal::Term | Signal::Int => {
                        if self.handover.is_some() || !self.begin_handover().await {
                            return self.shutdown(&signal.to_string()).await;
                        }
                        self.handover = Some(Instant::now() + super::lifecycle::HANDOVER_LIMIT);
                    }
                },
                _ = tokio::time::sleep_until(self.handover.unwrap_or_else(Instant::now)), if self.handover.is_some() => {
                    warn!(
                        "hand-over not finished within {:?}; releasing what is left",
                        super::lifecycle::HANDOVER_LIMIT
                    );
                    return self.shutdown("stop").await;
                }
            }
            self.vif_lines.flush();
            self.permit_keeper();
            if self.handover.is_some()
                && self.alloc.held().next().is_none()
                && self.lingering.is_empty()
            {
                return self.shutdown("stop after hand-over").await;
            }
        }
    }

    /// What the beat thread sees now (`None` without a detector).
    pub(super) fn detector_snapshot(&self) -> Option<super::beats::Snapshot> {
        self.inputs.beats.as_ref().map(|b| b.snapshot())
    }

    /// What the LAN detector saw. In `observe` mode it is logged and
    /// counted only: the agreed view still makes every takeover.
    async fn on_detector(&mut self, report: super::beats::Report) {
        use super::beats::Report;
        match report {
            Report::FellSilent { member, mono_ns } => self.fell_silent(&member, mono_ns).await,
            Report::SpokeUp { member, mono_ns } => self.spoke_up(&member, mono_ns),
            Report::NoneElsewhere { mono_ns } => self.none_elsewhere(mono_ns).await,
            Report::Stalled {
                stall,
                silent_ms,
                mono_ns,
            } => self.beats_stalled(stall, silent_ms, mono_ns),
            Report::HeldAtView { stall, mono_ns } => self.held_at_view(stall, mono_ns),
            Report::Handshake { .. } => self.on_handshake().await,
            Report::Lost { member, mono_ns } => {
                info!(%member, mono_ns, "detector: lost a peer (silent past the deadline)");
                if let Ok(mut m) = self.metrics.lock() {
                    m.detector.get_or_insert_default().lost += 1;
                }
                if self.acting() {
                    self.feed(Input::Lost(vec![member])).await;
                }
            }
            Report::Condemned { member, mono_ns } => {
                if self.acting() {
                    info!(%member, mono_ns, "detector: condemned a peer (lost by a majority): taking its VIFs ahead of the view");
                } else {
                    info!(%member, mono_ns, "detector: condemned a peer (lost by a majority; no action yet)");
                }
                if let Ok(mut m) = self.metrics.lock() {
                    m.detector.get_or_insert_default().condemned += 1;
                }
                if self.acting() {
                    self.take_condemned(vec![member]).await;
                }
            }
            Report::Fenced { fenced, mono_ns } => {
                if fenced && self.acting() {
                    warn!(mono_ns, "detector: too few peers echo this node: its echo fence silences XDP until they do");
                } else if fenced {
                    warn!(mono_ns, "detector: too few peers echo this node: its fence would silence it (no action yet)");
                } else {
                    info!(
                        mono_ns,
                        "detector: the peers' echoes hold this node's fence again"
                    );
                }
                if let Ok(mut m) = self.metrics.lock() {
                    let d = m.detector.get_or_insert_default();
                    d.fenced = fenced;
                    d.fence_lapses += u64::from(fenced);
                }
            }
        }
    }

    async fn on_membership(&mut self, event: MembershipEvent) {
        match event {
            MembershipEvent::View(view) => {
                self.note_lapse(true);
                info!(
                    view = %view.id,
                    members = view.members.len(),
                    my_index = view.my_index,
                    // CLOCK_MONOTONIC (shared by all namespaces): lets the
                    // failover benchmark split detection from the agent's share.
                    mono_ns = crate::dataplane::monotonic_now().as_nanos() as u64,
                    "new view"
                );
                self.engine_up = true;
                self.trigger = Some((
                    Instant::now(),
                    Trigger::View {
                        id: view.id,
                        members: view.members.len(),
                    },
                ));
                if !self.ready_sent {
                    self.notifier.ready("joined the group");
                    self.ready_sent = true;
                }
                if let Ok(mut m) = self.metrics.lock() {
                    m.view_changes += 1;
                    m.members = view.members.len();
                    m.engine_up = true;
                }
                self.refresh_takeover_at_view();
                self.fence_the_recently_heard(&view.members);
                // The new view first: whom a departed member's VIF waits
                // for is never a member of it (see `awaited`).
                let old = std::mem::replace(&mut self.view_members, view.members.clone());
                self.note_my_view(&view.members);
                self.guard_departed(&old, &view.members);
                self.me = view.members.get(view.my_index).cloned();
                if let Some(b) = &self.inputs.beats {
                    b.tell(super::beats::Command::View {
                        members: view.members.clone(),
                        my_index: view.my_index,
                    });
                }
                self.watch
                    .view(&view.members, view.my_index, Instant::now());
                self.feed(Input::View {
                    id: view.id,
                    members: view.members,
                    my_index: view.my_index,
                })
                .await;
            }
            MembershipEvent::Departed { members } => self.on_departed(&members),
            MembershipEvent::Heard { member, at } => self.on_heard(&member, at).await,
            MembershipEvent::Resumed { gap } => self.on_resumed(gap),
            MembershipEvent::Transitional => self.feed(Input::Transitional).await,
            MembershipEvent::Message { sender, payload } => match GroupMessage::decode(payload) {
                Ok(GroupMessage::Allocator(payload)) => {
                    self.feed(Input::Message { sender, payload }).await
                }
                Ok(GroupMessage::Neighbours(share)) => self.merge_arp_cache(&sender, share),
                Err(e) => warn!("ARP cache: ignoring a share message from {sender}: {e}"),
            },
            MembershipEvent::Lost { reason } => {
                warn!("membership engine lost: {reason}; releasing everything until it is back");
                self.engine_up = false;
                self.permit_keeper();
                self.view_members.clear();
                self.holders.clear();
                self.watch.clear();
                if let Ok(mut m) = self.metrics.lock() {
                    m.engine_up = false;
                }
                if let Some(b) = &self.inputs.beats {
                    b.tell(super::beats::Command::Clear);
                }
                self.feed(Input::EngineLost).await;
            }
        }
    }

    /// This process was frozen or starved for `gap`: the engine says so
    /// before the evidence that ended the gap, and everything it read before
    /// (an eviction of this node, above all) has been handled by now. The
    /// lease, lapsed meanwhile, revives only after half the eviction deadline
    /// more: time for a peer's eviction decided just before our evidence
    /// reached it to be delivered (it releases everything, as above). Nobody
    /// is judged silent over our own gap. No rejoin: a stall the whole host
    /// shared (all agents starved while the engines merged) used to make
    /// every agent release everything and wait to mature again.
    fn on_resumed(&mut self, gap: Duration) {
        let evict_after = self.floor.map_or(Duration::ZERO, super::lease::evict_after);
        let settle = evict_after / 2;
        warn!(
            gap_ms = gap.as_millis() as u64,
            evict_after_ms = evict_after.as_millis() as u64,
            settle_ms = settle.as_millis() as u64,
            "this process was frozen or starved: the lease waits until a peer's eviction would have come"
        );
        self.note_lapse(false);
        if let Some(lapse) = self.lapse.as_mut() {
            lapse.settle_until = Some(Instant::now() + settle);
        }
        self.watch.resumed(Instant::now());
    }

    /// Members left while their nodes stay up (their agent died or left):
    /// unlike a node-down, the engine says so at once, while their XDP may
    /// still answer ARP for their VIFs until their lease runs out. The
    /// allocator moves those VIFs at once; only our answering waits for the
    /// lease (plus a margin). Their lease is at most half the takeover floor
    /// (`lease::safe_lease`: "auto" is that, a fixed lease is capped to it),
    /// and the floor comes from the engine's timing, the same on every node
    /// (Corosync: token + consensus of the cluster-wide totem section;
    /// Spread: `takeover_floor` as configured, like its `TokenTimeout`).
    fn on_departed(&mut self, members: &[MemberId]) {
        let Some(floor) = self.floor else {
            warn!(
                ?members,
                "members left with their node up before any liveness evidence: not waiting for their leases"
            );
            return;
        };
        let until = Instant::now() + super::lease::safe_lease(floor) + DEPARTED_MARGIN;
        let until_of = members.iter().map(|m| (m.clone(), until)).collect();
        let fenced = self.fence_vifs_of(&until_of);
        info!(
            ?members,
            ?fenced,
            wait_ms = (super::lease::safe_lease(floor) + DEPARTED_MARGIN).as_millis() as u64,
            "members left with their node up: their VIFs answer here only after their lease"
        );
    }

    /// The VIFs each member of `until_of` answers for (as owner, or as a
    /// hand-over's pending party) answer here no earlier than its instant;
    /// returns their labels. One table snapshot for all of them.
    fn fence_vifs_of(&mut self, until_of: &BTreeMap<MemberId, Instant>) -> Vec<String> {
        let mut fenced = Vec::new();
        for (i, held_by) in self.holders_now() {
            let Some(until) = held_by
                .iter()
                .filter_map(|m| until_of.get(m))
                .max()
                .copied()
            else {
                continue;
            };
            let at = self.fenced.entry(i).or_insert(until);
            *at = (*at).max(until);
            if let Some(spec) = self.alloc.config().vifs.get(i) {
                fenced.push(spec.label().to_owned());
            }
        }
        fenced
    }

    /// A view drops members whose probes were delivered here less than a
    /// lease ago: the engine excluded them faster than a crash can be
    /// detected (the fencing premise: no view without a member before the
    /// takeover floor after its last probe). Corosync does that when a
    /// frozen node thaws: a healthy survivor was seen alone in a ring for
    /// ~20 ms while the member it dropped never left its own. Such a member
    /// may still be answering (its lease renews from its own ring), so its
    /// VIFs answer here only once its lease, counted from its last probe,
    /// has run out; a view that merges it back first costs nothing. A
    /// crashed member's view comes after the floor, past that already.
    fn fence_the_recently_heard(&mut self, members: &[MemberId]) {
        let Some(floor) = self.floor else { return };
        if self.cfg.xdp.lease == config::Lease::Off {
            return;
        }
        let now = Instant::now();
        let wait = super::lease::safe_lease(floor) + DEPARTED_MARGIN;
        // Asked of the watch first: the table is only read (a snapshot of
        // every VIF) when the view really is that early.
        let Some(since) = now.checked_sub(wait) else {
            return;
        };
        let until_of: BTreeMap<MemberId, Instant> = self
            .watch
            .heard_since_outside(members, since)
            .into_iter()
            .map(|(m, heard)| (m, heard + wait))
            .collect();
        if until_of.is_empty() {
            return;
        }
        let fenced = self.fence_vifs_of(&until_of);
        if !fenced.is_empty() {
            let waits_ms: Vec<(&MemberId, u64)> = until_of
                .iter()
                .map(|(m, until)| (m, until.saturating_duration_since(now).as_millis() as u64))
                .collect();
            warn!(
                ?waits_ms,
                ?fenced,
                "a view dropped members heard less than a lease ago: their VIFs answer here only after their lease"
            );
        }
    }

    /// A member's probe was delivered: on mine, the members silent past the
    /// eviction deadline go to the allocator (which asks the group to evict
    /// them). Only when this node fences itself: the deadline assumes every
    /// member's XDP goes silent within its lease (see `lease::evict_after`).
    async fn on_heard(&mut self, member: &MemberId, at: Instant) {
        let Some(floor) = self.floor else { return };
        if self.cfg.xdp.lease == config::Lease::Off {
            return;
        }
        let deadline = super::lease::evict_after(floor);
        let before = self.watch.suspects().len();
        let Some(suspects) = self.watch.heard(member, at, deadline) else {
            return;
        };
        if suspects.len() != before {
            warn!(
                ?suspects,
                deadline_ms = deadline.as_millis() as u64,
                mono_ns = crate::dataplane::monotonic_now().as_nanos() as u64,
                "members silent in the group past the eviction deadline (frozen agent?)"
            );
            self.trigger = Some((Instant::now(), Trigger::Evict));
        }
        self.feed(Input::Suspects(suspects)).await;
    }

    /// Whether the detector guards departed members' VIFs (mode `guard`,
    /// and `act`).
    fn guarding(&self) -> bool {
        matches!(
            self.detector_mode(),
            Some(config::DetectorMode::Guard | config::DetectorMode::Act)
        )
    }

    /// Whether survivors act on the detector's condemnations (mode `act`).
    fn acting(&self) -> bool {
        self.detector_mode() == Some(config::DetectorMode::Act)
    }

    /// The detector's mode while its beats run.
    fn detector_mode(&self) -> Option<config::DetectorMode> {
        self.inputs.beats.as_ref()?;
        self.cfg.detector.as_ref().map(|d| d.mode)
    }

    /// Detector mode `act`: whether VIF `i`, just acquired, waits for the
    /// handshake (see `detect::detector`): taken provisionally from a
    /// condemned member, or acquired while some peer's flag is up (then
    /// until each such peer has lowered it in a beat echoing one of ours
    /// from after now).
    fn handshake_wait(&self, i: usize) -> Option<HandshakeWait> {
        if !self.acting() {
            return None;
        }
        if self.alloc.is_provisional(i as u32) {
            return Some(HandshakeWait::Provisional);
        }
        let beats = self.inputs.beats.as_ref()?;
        let flagged = beats.snapshot().handshake.flagged;
        (!flagged.is_empty()).then(|| HandshakeWait::Acquired {
            since: beats.next_stamp(),
            flagged,
        })
    }

    /// The handshake changed while VIFs waited on it: those it clears
    /// answer now. Once none waits, the thread stops reporting.
    async fn on_handshake(&mut self) {
        if self.handshake.is_empty() {
            if let Some(b) = &self.inputs.beats {
                b.await_handshake(false);
            }
            return;
        }
        self.bring_up_deferred().await;
    }

    /// Whether VIF `i`'s handshake still holds it silent.
    fn handshake_holds(&self, i: usize, s: &super::beats::Snapshot) -> bool {
        match self.handshake.get(&i) {
            None => false,
            // Settled by agreement meanwhile: an owner like any other.
            Some(HandshakeWait::Provisional) => {
                !s.handshake.may_answer && self.alloc.is_provisional(i as u32)
            }
            Some(HandshakeWait::Acquired { since, flagged }) => {
                !s.handshake.cleared_since(*since, flagged)
            }
        }
    }

    /// Detector mode `guard`: the VIFs of the members this view drops (as
    /// owner or a hand-over's pending party) are remembered while those
    /// members stay out, and they answer here only while their member is
    /// silent by its beats: those whose beats still say they answer keep
    /// them ([`Agent::fell_silent`], [`Agent::spoke_up`]), and a silent
    /// one's wait while another view may hold them ([`Agent::awaited`]).
    /// A crashed or cut-off member has been unheard for longer than that by
    /// the time its view comes; one behind a lossy cable whose ring split
    /// (the LAN still carries its beats and its ARP answers) keeps
    /// answering, and so nobody else does.
    fn guard_departed(&mut self, old: &[MemberId], members: &[MemberId]) {
        if !self.guarding() {
            return;
        }
        // The table as last settled: a view that re-forms the ring (the same
        // members or not) empties it until its exchange completes, and the
        // next view may come first (a lossy link: many in a row).
        if matches!(self.alloc.phase(), Phase::Run | Phase::Balance) {
            self.holders = self.holders_now();
        }
        if old.iter().all(|m| members.contains(m)) {
            return;
        }
        let snapshot = self.detector_snapshot().unwrap_or_default();
        let mut kept = Vec::new();
        let mut still = BTreeSet::new();
        let mut elsewhere = Vec::new();
        for (&i, held_by) in &self.holders {
            let departed: Vec<&MemberId> =
                held_by.iter().filter(|m| !members.contains(m)).collect();
            if departed.is_empty() {
                continue;
            }
            let origin = self.origin.entry(i).or_default();
            origin.extend(departed.into_iter().cloned());
            let Some(awaited) = self.awaited_for(i, &snapshot) else {
                continue;
            };
            let name = self.vifs.get(i).map(|v| v.name.clone()).unwrap_or_default();
            if self.origin.get(&i).is_some_and(|o| o.contains(&awaited)) {
                still.insert(awaited.clone());
                kept.push(name);
            } else {
                elsewhere.push((name, awaited.clone()));
            }
            self.awaiting.insert(i, awaited);
        }
        if !kept.is_empty() {
            warn!(
                members = ?still,
                vifs = ?kept,
                "the view dropped members whose beats say they still answer: their VIFs answer here once they fall silent"
            );
        }
        if !elsewhere.is_empty() {
            warn!(
                ?elsewhere,
                "the view dropped silent members whose VIFs another view may hold: they answer here once its member falls silent"
            );
        }
    }

    /// [`Agent::awaited`] for VIF `i`: whom the first of its departed
    /// holders that still needs one waits for.
    fn awaited_for(&self, i: usize, s: &super::beats::Snapshot) -> Option<MemberId> {
        (self.origin.get(&i).into_iter().flatten()).find_map(|m| self.awaited(m, s))
    }

    /// Detector mode `guard`: whom a VIF taken from the departed `member`
    /// waits for before it answers here. The member itself while its beats
    /// say it answers. Else a member of another view that answers and may
    /// hold it too: one whose view the departed member shares (that view's
    /// table gives its VIFs out), or one with a lower member id (two views
    /// that both dropped a silent member would both take its VIFs: the
    /// lowest id does). `None`: it answers here (after the lease).
    ///
    /// A shared view is known by its digest in both members' latest beats,
    /// or by either naming the other as a mate: after a merge, the member
    /// that hands its VIFs over falls silent and may say so (naming the
    /// taker as its mate) before the taker's first beat names the new view.
    ///
    /// A member of this node's own view counts only if its latest beat
    /// names a view this node has not had lately: one without this node.
    /// The engine gave the two of them different views (a ring re-forming
    /// under loss: one node installs a view with a peer that never installs
    /// it and answers in another view with a third); one that names an
    /// earlier view of mine only lags (it may not have beaten since the
    /// view came), and one view has one table.
    fn awaited(&self, member: &MemberId, s: &super::beats::Snapshot) -> Option<MemberId> {
        if s.answering.contains(member) {
            return Some(member.clone());
        }
        let view = s.views.get(member);
        let mates = |a: &MemberId, b: &MemberId| s.mates.get(a).is_some_and(|of| of.contains(b));
        let shares = |m: &MemberId| {
            (view.is_some() && s.views.get(m) == view) || mates(member, m) || mates(m, member)
        };
        let lower = |m: &MemberId| self.me.as_ref().is_some_and(|me| m < me);
        let apart = |m: &MemberId| {
            !self.view_members.contains(m)
                || s.views.get(m).is_some_and(|v| !self.my_views.contains(v))
        };
        (s.elsewhere.iter())
            .filter(|m| *m != member && apart(m))
            .find(|m| shares(m) || lower(m))
            .cloned()
    }

    /// Remembers a view of mine by the digest beats name it by.
    fn note_my_view(&mut self, members: &[MemberId]) {
        const KEEP: usize = 4;
        let digest = crate::detect::beat::view_digest(members);
        self.my_views.retain(|d| *d != digest);
        self.my_views.push_back(digest);
        while self.my_views.len() > KEEP {
            self.my_views.pop_front();
        }
    }

    /// Who holds each VIF in the allocator's table now: its owner and a
    /// hand-over's pending parties (they answer too).
    fn holders_now(&self) -> BTreeMap<usize, Vec<MemberId>> {
        let table = self.alloc.table();
        let member_of: BTreeMap<&str, &MemberId> = (table.members.iter())
            .map(|m| (m.node.as_str(), &m.member))
            .collect();
        let mut holders = BTreeMap::new();
        for row in &table.vifs {
            let pending = (table.handovers.iter())
                .filter(|h| h.vif == row.vif)
                .flat_map(|h| h.pending.iter().filter_map(|p| member_of.get(p.as_str())));
            let held_by: Vec<MemberId> = (row.owner.as_ref().map(|o| &o.member).into_iter())
                .chain(pending.copied())
                .cloned()
                .collect();
            if !held_by.is_empty() {
                holders.insert(row.vif.0 as usize, held_by);
            }
        }
        holders
    }

    /// Detector mode `guard`: the group evicted `member` (silent in the
    /// group past the deadline, taken to be frozen and fenced by its
    /// lease), but its beats say it answers: its engine thread was held in
    /// a corosync call while the ring moved, and corosync's running process
    /// vouched for its lease. The VIFs the eviction gives this node (the
    /// acquisitions of the same decision) wait for it to fall silent, as
    /// those of a departed member do; it falls silent once it hears of its
    /// eviction. A frozen member's beats stopped as long ago as its probes.
    fn guard_evicted(&mut self, member: MemberId) {
        if self.guarding() && self.still_answers(&member) {
            warn!(%member, "the group evicted a member whose beats say it still answers: the VIFs it leaves answer here once it falls silent");
            self.evicted_answering = Some(member);
        }
    }

    /// A view completed (its exchange settled who holds what): members back
    /// in it hold their VIFs by the agreed table again, and nothing here
    /// waits for them any more (the deferred VIFs still ours come up at
    /// once, see [`Agent::deferred_due`]). Not at the view itself: until the
    /// exchange, a merged member and this node may both claim a VIF.
    fn stop_awaiting_the_view(&mut self) {
        if self.origin.is_empty() && self.awaiting.is_empty() {
            return;
        }
        let members = &self.view_members;
        let snapshot = self.detector_snapshot().unwrap_or_default();
        // Those back, and those the beat thread no longer knows of (unheard
        // for its recall, about a second: crashed or cut off), go.
        let known = |m: &MemberId| {
            snapshot.answering.contains(m)
                || snapshot.beating_elsewhere.contains(m)
                || snapshot.views.contains_key(m)
        };
        for held_by in self.origin.values_mut() {
            held_by.retain(|m| !members.contains(m) && known(m));
        }
        self.origin.retain(|_, held_by| !held_by.is_empty());
        // A VIF whose awaited member is back may still wait for another
        // departed holder that stays out.
        let back: Vec<usize> = (self.awaiting.iter())
            .filter(|(_, m)| members.contains(m))
            .map(|(i, _)| *i)
            .collect();
        let elsewhere = !snapshot.elsewhere.is_empty();
        let mut unclaimed = Vec::new();
        for i in back {
            match self.awaited_for(i, &snapshot) {
                Some(m) => self.awaiting.insert(i, m),
                None => self.awaiting.remove(&i),
            };
            // Given to me while the member it waited for is back and
            // claimed it not: that member let it go in a view I was not in,
            // maybe to a member of another view that answers it now (seen
            // in the guarded random scenarios: x waited for a, a handed it
            // to b in their view, and a, x merged with b apart). A claim
            // of the member back would be a hand-over (`others_pending`).
            let waiting = self.deferred.contains(&i) && !self.awaiting.contains_key(&i);
            if elsewhere && waiting && !self.others_pending(i) {
                self.awaiting_elsewhere.insert(i);
                unclaimed.push(i);
            }
        }
        if !unclaimed.is_empty() {
            let vifs: Vec<&str> = (unclaimed.iter())
                .filter_map(|i| self.vifs.get(*i).map(|v| v.name.as_str()))
                .collect();
            warn!(?vifs, "VIFs I waited for a member of this view for, which it did not claim: answering once no member of another view answers");
        }
    }

    /// The beat thread says `member` answers nothing now (or went unheard):
    /// the VIFs waiting for it answer here. Its latest snapshot is asked
    /// again: a member may have spoken up again since the report was sent.
    async fn fell_silent(&mut self, member: &MemberId, mono_ns: u64) {
        if self.still_answers(member) || !self.stop_awaiting(member) {
            return;
        }
        info!(%member, mono_ns, "detector: a departed member fell silent: the VIFs waiting for it alone answer here");
        self.bring_up_deferred().await;
    }

    /// `member` is silent: the VIFs that waited for it wait for whom they
    /// would wait for now (its departed holder may have spoken up, or
    /// another view may still hold it), or for nobody. Whether any waited.
    fn stop_awaiting(&mut self, member: &MemberId) -> bool {
        if !self.awaiting.values().any(|m| m == member) {
            return false;
        }
        let snapshot = self.detector_snapshot().unwrap_or_default();
        let waiting: Vec<usize> = (self.awaiting.iter())
            .filter(|(_, m)| *m == member)
            .map(|(i, _)| *i)
            .collect();
        for i in waiting {
            let next = self.awaited_for(i, &snapshot).filter(|m| m != member);
            match next {
                Some(m) => self.awaiting.insert(i, m),
                None => self.awaiting.remove(&i),
            };
        }
        true
    }

    /// Whether the beat thread's latest snapshot says `member` answers:
    /// asked again when a report is handled, since a member may have
    /// changed its mind after the report was sent.
    fn still_answers(&self, member: &MemberId) -> bool {
        self.detector_snapshot()
            .is_some_and(|s| s.answering.contains(member))
    }

    /// The beat thread says `member`, silent until now, answers again (a
    /// lapsed lease revived, or its beats came back): the VIFs taken from it
    /// while it was out of the view and silent go quiet here (XDP stops
    /// answering ARP for them, their traffic is still taken) and wait for
    /// it to fall silent again; so do those taken from a silent departed
    /// member that it, or another member, may now hold in its view
    /// ([`Agent::awaited`]). It has the agreed claim on none of them, but
    /// two answerers are worse than one that is not ours.
    fn spoke_up(&mut self, member: &MemberId, mono_ns: u64) {
        if !self.still_answers(member) {
            return;
        }
        let snapshot = self.detector_snapshot().unwrap_or_default();
        let theirs: Vec<(usize, MemberId)> = (self.origin.iter())
            .filter(|(i, _)| !self.awaiting.contains_key(i))
            .filter_map(|(i, _)| Some((*i, self.awaited_for(*i, &snapshot)?)))
            .collect();
        if theirs.is_empty() {
            return;
        }
        let held: BTreeSet<usize> = self.answering().iter().map(|i| i.0 as usize).collect();
        let mut quiet = Vec::new();
        for (i, awaited) in theirs {
            self.awaiting.insert(i, awaited);
            if !held.contains(&i) {
                continue;
            }
            let Some(vif) = self.vifs.get(i).cloned() else {
                continue;
            };
            self.host.cancel_announcement(i);
            self.announcing.drop_vif(i);
            self.silent6.remove(&i);
            self.deferred.insert(i);
            if let Err(e) = vifs::yield_vif(self.host.parts().0, &vif) {
                error!("quieting VIF {}: {e:#}", vif.name);
            }
            quiet.push(vif.name);
        }
        if !quiet.is_empty() {
            warn!(%member, mono_ns, vifs = ?quiet, "detector: a departed member answers again: the VIFs it (or its view) may hold go quiet here until it falls silent");
            self.publish_answering();
        }
    }

    /// The beat thread sent no beat for `silent_ms` (starved or frozen): the
    /// beat lease silenced XDP, and the peers may have taken this node to be
    /// silent and its VIFs with it. As after a lapse of the agent's own
    /// lease, it answers again only once [`Agent::may_revive`] says so,
    /// which tells the thread.
    fn beats_stalled(&mut self, stall: u64, silent_ms: u64, mono_ns: u64) {
        warn!(
            silent_ms,
            mono_ns,
            "detector: the beat thread stalled: XDP silent (beat lease) until the lease may revive"
        );
        self.beat_lease_held(stall);
    }

    /// The beat thread holds its lease until `stall` is revived: a lapse
    /// (the one under way, if any), revived as any other.
    fn beat_lease_held(&mut self, stall: u64) -> &mut Lapse {
        self.beat_stall = Some(stall);
        self.lapse
            .get_or_insert_with(|| Lapse::since(Instant::now()))
    }

    /// Mode `act`: the view changed while this node's echo fence was
    /// closed, so the survivors of the old view may hold its VIFs already
    /// (taken on a condemnation whose EVICT never reached it). The beat
    /// thread holds its lease; it is a lapse across a view, revived like
    /// one (the merged exchange settled, nobody of another view answering).
    fn held_at_view(&mut self, stall: u64, mono_ns: u64) {
        warn!(
            mono_ns,
            "detector: a new view came while too few peers echoed this node (a majority may have condemned it): XDP silent until the lease may revive"
        );
        self.beat_lease_held(stall).view_changed = true;
    }

    /// No member of another view answers any more: the VIFs this node took
    /// while it answered nothing and one did answer here now.
    async fn none_elsewhere(&mut self, mono_ns: u64) {
        if self.awaiting_elsewhere.is_empty() || !self.answering_elsewhere().is_empty() {
            return;
        }
        info!(
            mono_ns,
            vifs = self.awaiting_elsewhere.len(),
            "detector: no member of another view answers: the VIFs taken meanwhile answer here"
        );
        self.awaiting_elsewhere.clear();
        self.bring_up_deferred().await;
    }

    /// Whether VIF `i` must wait for a departed holder's lease or its
    /// silence: then it is brought up by [`Agent::bring_up_deferred`].
    fn wait_for_fence(&mut self, i: usize, name: &str) -> bool {
        if let Some(wait) = self.handshake_wait(i) {
            vif_line!(
                self.vif_lines,
                name,
                "detector: answering once the handshake clears it",
                wait = ?wait
            );
            self.handshake.insert(i, wait);
            self.deferred.insert(i);
            if let Some(b) = &self.inputs.beats {
                b.await_handshake(true);
            }
            return true;
        }
        // Detector mode `guard`: a node that answered nothing (it rejoined
        // alone after losing its engine, or matured alone) and takes VIFs
        // while a member of another view answers would answer next to it:
        // nobody left its view, so nothing says whose VIFs those are.
        if self.quiet_start || self.awaiting_elsewhere.contains(&i) {
            self.awaiting_elsewhere.insert(i);
            self.quiet_claims.insert(i);
            self.deferred.insert(i);
            vif_line!(
                self.vif_lines,
                name,
                "taken while members of another view answer and this node answered nothing: answering once none does"
            );
            return true;
        }
        if let Some(member) = self.evicted_answering.clone() {
            self.awaiting.insert(i, member.clone());
            self.origin.entry(i).or_default().insert(member);
        }
        if let Some(member) = self.awaiting.get(&i) {
            self.deferred.insert(i);
            vif_line!(
                self.vif_lines,
                name,
                "taken from a departed member that still answers: answering once it falls silent",
                member = %member
            );
            return true;
        }
        match self.fenced.get(&i) {
            Some(until) if *until > Instant::now() => {
                self.deferred.insert(i);
                vif_line!(
                    self.vif_lines,
                    name,
                    "taken from a departed member: answering once its lease has run out",
                    wait_us = until.saturating_duration_since(Instant::now()).as_micros() as u64
                );
                true
            }
            _ => {
                self.fenced.remove(&i);
                false
            }
        }
    }

    /// When the next deferred VIF may answer. One whose hand-over still
    /// waits for another member to stop answering is looked at again
    /// every [`HANDOVER_POLL`] (the allocator settles it with no action
    /// here: this node holds it already).
    fn deferred_due(&self) -> Option<Instant> {
        self.deferred
            .iter()
            .filter(|i| !self.awaiting.contains_key(i) && !self.awaiting_elsewhere.contains(i))
            .filter(|&&i| !self.settling(i))
            .map(
                |&i| match (self.handshake.contains_key(&i), self.others_pending(i)) {
                    (true, _) => Instant::now() + HANDSHAKE_POLL,
                    (false, true) => Instant::now() + HANDOVER_POLL,
                    (false, false) => self.fenced.get(&i).copied().unwrap_or_else(Instant::now),
                },
            )
            .min()
    }

    /// Detector mode `guard`: VIF `i` was taken from a departed member, or
    /// while this node answered nothing and another view answered, and the
    /// view's exchange is open. After a merge, members that each took it in
    /// their own view hold it by their claims until the exchange settles
    /// whose it is: if its departed holder or the other view fell silent
    /// meanwhile, each would bring it up (seen: a node that answered
    /// nothing brought up three VIFs its merged mate answered, 23 ms of two
    /// answerers). It waits for the settled table.
    fn settling(&self, i: usize) -> bool {
        let gather = self.alloc.phase() == Phase::Gather;
        let merged = self.view_members.len() > 1;
        gather && (self.origin.contains_key(&i) || (merged && self.quiet_claims.contains(&i)))
    }

    /// VIF `i` is in a hand-over that another member must still stop
    /// answering ([`Allocator::others_pending`]): deferred, it answers here
    /// only once that member has (after a merge, say, the other side's
    /// holder yields it to this node).
    fn others_pending(&self, i: usize) -> bool {
        self.alloc.others_pending(VifIndex(i as u32))
    }

    /// Brings up the deferred VIFs whose departed holder's lease has run out
    /// (if they are still ours and not yielding), then announces them: all
    /// answered in XDP first, then their addresses pipelined (a crashed
    /// holder of thousands of VIFs leaves as many), as [`Agent::flush`]
    /// does. Their hooks ran when they were deferred.
    async fn bring_up_deferred(&mut self) {
        let now = Instant::now();
        let snapshot = (self.handshake.is_empty())
            .then(super::beats::Snapshot::default)
            .or_else(|| self.detector_snapshot())
            .unwrap_or_default();
        let due: Vec<usize> = self
            .deferred
            .iter()
            .copied()
            .filter(|&i| !self.handshake_holds(i, &snapshot))
            .filter(|i| self.fenced.get(i).is_none_or(|t| *t <= now))
            .filter(|i| !self.awaiting.contains_key(i) && !self.awaiting_elsewhere.contains(i))
            .filter(|&i| !self.others_pending(i))
            .filter(|&i| !self.settling(i))
            .collect();
        let answering = self.held_not_yielding();
        let mut up = Vec::new();
        for i in due {
            self.deferred.remove(&i);
            self.handshake.remove(&i);
            self.fenced.remove(&i);
            let Some(vif) = self.vifs.get(i).cloned() else {
                continue;
            };
            if !answering.contains(&VifIndex(i as u32)) {
                continue;
            }
            self.hold_silent6(i);
            let owned = match vifs::own(self.host.parts().0, &vif) {
                Ok(()) => true,
                Err(e) => {
                    self.unplumbed.insert(i);
                    error!("bringing up VIF {}: {e:#}; retrying", vif.name);
                    false
                }
            };
            up.push((i, owned));
        }
        self.plumb_and_announce(
            &up,
            "answering after the departed holder's lease",
            "bringing up",
        )
        .await;
        self.update_metrics();
        self.publish_answering();
    }

    /// Mode `act`: the allocator hears of condemned members (it takes their
    /// VIFs ahead of the group and multicasts their eviction).
    async fn take_condemned(&mut self, members: Vec<MemberId>) {
        // Whether I may take ahead of the group is judged now, not at the
        // view: a node that joined before its first self-probe came back
        // would otherwise never act.
        self.refresh_takeover_at_view();
        // Condemned means silent (its echo fence): VIFs that an agreed
        // eviction of it, delivered before this report, gave here to wait
        // for its beats to say so answer now, not a `silent_after` later.
        for member in &members {
            if self.stop_awaiting(member) {
                info!(%member, "detector: the VIFs waiting for the condemned member to fall silent answer here");
            }
        }
        self.feed(Input::Condemned(members)).await;
        self.bring_up_deferred().await;
    }

    /// Mode `act`, once a view's exchange completes: a member this node's
    /// detector condemned in an earlier view and that is still in this one
    /// (the ring re-formed with it before its EVICT was delivered, and an
    /// EVICT names the view it was sent in) stays lost here: the detector
    /// never echoes it again while it stays in the view, so its echo fence
    /// keeps it silent, and the VIFs this view gives it would answer
    /// nowhere (seen under 30 % loss: two VIFs dark until the next
    /// membership change). Condemned again in this view, it is evicted:
    /// it leaves and rejoins afresh, and its VIFs move at once.
    async fn condemn_again_in_this_view(&mut self) {
        if !self.acting() {
            return;
        }
        let Some(snapshot) = self.detector_snapshot() else {
            return;
        };
        let members: Vec<MemberId> = (snapshot.condemned.into_iter())
            .filter(|m| self.view_members.contains(m))
            .collect();
        if members.is_empty() {
            return;
        }
        warn!(
            ?members,
            "detector: members condemned before this view are still in it (never echoed again, so silent): condemned again, to be evicted"
        );
        self.take_condemned(members).await;
    }

    /// A VIF is ineligible while one of its interfaces has no carrier; the
    /// allocator hears the whole set whenever it changes.
    async fn on_carrier(&mut self, event: CarrierEvent) {
        let changed = if event.up {
            self.carrier_down.remove(&event.iface)
        } else {
            self.carrier_down.insert(event.iface.clone())
        };
        if !changed {
            return;
        }
        info!(
            iface = %event.iface,
            "carrier {}",
            if event.up { "up" } else { "down" }
        );
        let ineligible: BTreeSet<VifIndex> = self
            .vifs
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                v.addresses
                    .iter()
                    .any(|a| self.carrier_down.contains(&a.vip.iface))
            })
            .map(|(i, _)| VifIndex(i as u32))
            .collect();
        if ineligible != self.ineligible {
            self.ineligible = ineligible.clone();
            self.feed(Input::Eligibility { ineligible }).await;
        }
    }

    /// The VIFs this node answers ARP for: held and not yielding.
    /// Not one waiting for a departed holder (deferred): those are not
    /// announced, checked or retried until they are brought up.
    pub(super) fn answering(&self) -> BTreeSet<VifIndex> {
        let mut held = self.held_not_yielding();
        held.retain(|i| !self.deferred.contains(&(i.0 as usize)));
        held
    }

    /// The VIFs the agreed table gives this node, not handing over: those
    /// it answers for, and those deferred.
    fn held_not_yielding(&self) -> BTreeSet<VifIndex> {
        let yielding: BTreeSet<VifIndex> = self.alloc.yielding().collect();
        self.alloc
            .held()
            .filter(|i| !yielding.contains(i))
            .collect()
    }

    /// Feeds one input to the allocator and executes its actions in order.
    pub(super) async fn feed(&mut self, input: Input) {
        // Asked before the allocator decides (its table then holds what
        // it takes): see `quiet_start`.
        self.quiet_start =
            self.guarding() && !self.answering_elsewhere().is_empty() && !self.answers_any();
        if !self.acting() {
            let actions = self.alloc.handle(input);
            return self.execute(actions).await;
        }
        match &input {
            Input::View { .. } => self.act_position = 0,
            Input::Message { .. } => self.act_position += 1,
            _ => {}
        }
        let actions = self.alloc.handle(input);
        // The position before acting on the message (a beat never claims
        // less than this node answers by); the flag up if it was or is now,
        // and down only once the releases are done in XDP.
        let flag = self.alloc.any_provisional();
        if let Some(b) = &self.inputs.beats {
            b.publish_act(self.act_position, flag || self.act_flag);
        }
        self.execute(actions).await;
        self.act_flag = flag;
        if let Some(b) = &self.inputs.beats {
            b.publish_act(self.act_position, flag);
        }
    }

    /// Executes one decision of the allocator. Acquisitions and releases
    /// are batched: each one's XDP step runs when its action comes (ARP
    /// answers start, or stop, at once), their kernel addresses all together
    /// and pipelined before the next message goes out (and at the end), then
    /// the announcements.
    pub(super) async fn execute(&mut self, actions: Vec<Action>) {
        // Only these change what we answer for (the metrics' `owned`).
        let answering_changes = actions.iter().any(|a| {
            matches!(
                a,
                Action::Acquire(_) | Action::Release(_) | Action::Yield(_) | Action::Reclaim(_)
            )
        });
        let mut up = Vec::new();
        let mut down = Vec::new();
        let mut batch = Batch::default();
        for action in actions {
            if let Action::Acquire(i)
            | Action::Release(i)
            | Action::Yield(i)
            | Action::Reclaim(i)
            | Action::Announce(i) = &action
            {
                // Each VIF's own steps stay in the allocator's order.
                if batch.touches(i.0 as usize) {
                    self.flush(&mut batch).await;
                }
            }
            match action {
                Action::Acquire(i) => {
                    if self.acquire(i, &mut batch) {
                        up.push(i);
                    }
                }
                Action::Release(i) => {
                    if self.release(i, &mut batch) {
                        down.push(i);
                    }
                }
                Action::Yield(i) => self.yield_vif(i),
                Action::Reclaim(i) => self.reclaim(i).await,
                Action::Announce(i) => self.announce_owed(i.0 as usize),
                Action::Multicast(bytes) => {
                    // Peers hear of the decision once it is in place, as
                    // when each VIF was done on its own.
                    self.flush(&mut batch).await;
                    self.send(Outgoing::Send(GroupMessage::Allocator(bytes).encode()))
                        .await
                }
                Action::ArmTimer { kind, after } => self.timers.arm(kind, after),
                Action::CancelTimer(kind) => self.timers.cancel(kind),
                Action::Leave => {
                    self.flush(&mut batch).await;
                    if let Some(b) = &self.inputs.beats {
                        b.tell(super::beats::Command::Clear);
                    }
                    self.send(Outgoing::Leave).await
                }
                Action::Join => {
                    self.flush(&mut batch).await;
                    self.send(Outgoing::Join).await
                }
                Action::Report(r) => self.report(r),
            }
        }
        self.flush(&mut batch).await;
        self.evicted_answering = None;
        if !up.is_empty() {
            if let Some((at, trigger)) = &self.trigger {
                let took = at.elapsed();
                info!(
                    vifs = up.len(),
                    took_us = took.as_micros() as u64,
                    "acquired after {trigger}"
                );
                self.last_failover = Some(Failover {
                    at: SystemTime::now(),
                    took,
                    reason: trigger.to_string(),
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
        self.quiet_start = false;
        if answering_changes {
            self.update_metrics();
            self.publish_answering();
        } else if let Ok(mut m) = self.metrics.lock() {
            m.mature = self.alloc.is_mature();
        }
    }

    /// Whether the agreed table gives this node a VIF it answers for (not
    /// handing over, not deferred); stops at the first.
    fn answers_any(&self) -> bool {
        let yielding: BTreeSet<VifIndex> = self.alloc.yielding().collect();
        self.alloc
            .held()
            .any(|i| !yielding.contains(&i) && !self.deferred.contains(&(i.0 as usize)))
    }

    /// Tells the beat thread until when this node answers any VIP: past
    /// it, its beats say "silent" (see [`Agent::await_the_still_answering`]
    /// at the peers). Until the lease runs out while something answers in
    /// XDP; 0 when nothing does (none held, or all yielding or deferred).
    pub(super) fn publish_answering(&self) {
        if self.inputs.beats.is_some() {
            let fenced = self.cfg.xdp.lease != config::Lease::Off;
            self.lease.publish_answering(self.answers_any(), fenced);
        }
    }

    pub(super) fn vif(&self, i: VifIndex) -> Option<&PlannedVif> {
        self.vifs.get(i.0 as usize)
    }

    pub(super) async fn send(&mut self, out: Outgoing) {
        if self.engine.outgoing.send(out).await.is_err() {
            error!("membership engine {} is gone", self.engine.description);
        }
    }

    /// Acquire, XDP step: the VIF answers from here; its addresses and
    /// announcement follow in [`Agent::flush`].
    fn acquire(&mut self, i: VifIndex, batch: &mut Batch) -> bool {
        let Some(vif) = self.vif(i).cloned() else {
            error!("allocator asked to acquire unknown VIF {i}");
            return false;
        };
        self.pending_forget.remove(&(i.0 as usize));
        self.yielded.remove(&(i.0 as usize));
        self.lingering.remove(&(i.0 as usize));
        if self.wait_for_fence(i.0 as usize, &vif.name) {
            drop(self.hooks.fire(HookEvent::Up {
                vif: vif.name.clone(),
                addresses: vif.address_texts(),
            }));
            return true;
        }
        self.hold_silent6(i.0 as usize);
        let owned = match vifs::own(self.host.parts().0, &vif) {
            Ok(()) => true,
            Err(e) => {
                // The VIF is ours for the cluster either way; housekeeping
                // retries the missing steps until they are done.
                self.unplumbed.insert(i.0 as usize);
                error!("acquiring VIF {}: {e:#}; retrying", vif.name);
                false
            }
        };
        batch.up.push((i.0 as usize, owned));
        batch.vifs.insert(i.0 as usize);
        true
    }

    /// VIF `i` is not ours to bring up any more: no deferred bring-up, no
    /// handshake, no claim made while another view answered. Its departed
    /// holders (`origin`, `awaiting`) are kept: they are the VIF's history,
    /// not ours. A member that took it from one that still answers and
    /// handed it on never answered it, and whoever it comes back to must
    /// still wait for that one (seen in CI at 30 % loss: three one-node
    /// views, then two of them merging, splitting and merging again passed
    /// the VIF back and forth, and the second taker answered it next to
    /// its first holder, which had answered it all along).
    fn forget_deferral(&mut self, i: usize) {
        self.deferred.remove(&i);
        self.handshake.remove(&i);
        self.awaiting_elsewhere.remove(&i);
        self.quiet_claims.remove(&i);
    }

    /// Releases VIF `i`; a handed-over (yielding) VIF lingers first (see
    /// [`HANDOVER_LINGER`]). Returns whether it goes down now (in `batch`).
    pub(super) fn release(&mut self, i: VifIndex, batch: &mut Batch) -> bool {
        if self.yielded.remove(&(i.0 as usize)) && self.vif(i).is_some() {
            self.unplumbed.remove(&(i.0 as usize));
            self.forget_deferral(i.0 as usize);
            self.lingering
                .insert(i.0 as usize, Instant::now() + HANDOVER_LINGER);
            if let Some(vif) = self.vif(i) {
                info!(vif = %vif.name, linger_ms = HANDOVER_LINGER.as_millis() as u64,
                    "handed over: keeping its addresses a while for traffic in flight");
            }
            return false;
        }
        self.release_now(i, batch);
        true
    }

    /// Handed-over VIFs whose linger is over (`all`: every one) go down.
    pub(super) async fn end_lingering(&mut self, all: bool) {
        let now = Instant::now();
        let due: Vec<usize> = self
            .lingering
            .iter()
            .filter(|(_, at)| all || **at <= now)
            .map(|(i, _)| *i)
            .collect();
        let mut down = Vec::new();
        let mut batch = Batch::default();
        for i in due {
            self.lingering.remove(&i);
            self.release_now(VifIndex(i as u32), &mut batch);
            if let Some(vif) = self.vifs.get(i) {
                down.push(vif.name.clone());
            }
        }
        self.flush(&mut batch).await;
        if !down.is_empty() {
            drop(self.hooks.fire(HookEvent::PostDown { vifs: down }));
            self.update_metrics();
        }
    }

    /// Release, XDP step: silent from here; its addresses go in
    /// [`Agent::flush`].
    fn release_now(&mut self, i: VifIndex, batch: &mut Batch) {
        let Some(vif) = self.vif(i).cloned() else {
            error!("allocator asked to release unknown VIF {i}");
            return;
        };
        self.yielded.remove(&(i.0 as usize));
        self.lingering.remove(&(i.0 as usize));
        self.unplumbed.remove(&(i.0 as usize));
        self.forget_deferral(i.0 as usize);
        self.silent6.remove(&(i.0 as usize));
        // Not one more frame claiming the VIF from here: an announcement
        // still in its burst (or waiting out a conflict) would point the
        // clients back at this node, which drops the VIF's traffic from now on.
        self.host.cancel_announcement(i.0 as usize);
        self.announcing.drop_vif(i.0 as usize);
        let silenced = vifs::silence(self.host.parts().0, &vif);
        if let Err(e) = &silenced {
            error!("releasing VIF {}: {e:#}", vif.name);
        }
        batch.down.push((i.0 as usize, silenced.is_ok()));
        batch.vifs.insert(i.0 as usize);
    }

    /// The kernel steps of a batch, all XDP steps being done: the released
    /// VIFs' addresses removed, then the acquired ones' added (each set
    /// pipelined), then the acquired VIFs announced, in the allocator's order.
    pub(super) async fn flush(&mut self, batch: &mut Batch) {
        let down = std::mem::take(&mut batch.down);
        let up = std::mem::take(&mut batch.up);
        batch.vifs.clear();
        if down.len() + up.len() >= TRIM_AFTER_VIFS {
            self.trim_heap_at = Some(Instant::now() + TRIM_DELAY);
        }
        if !down.is_empty() {
            // Standby addresses stay, silenced (see `standby`).
            let standby = self.standby();
            let (_, addresses) = self.host.parts();
            let work = vifs::unplumb_many(
                addresses,
                down.iter()
                    .filter(|_| !standby)
                    .filter_map(|&(i, _)| Some((i, self.vifs.get(i)?))),
            );
            let done = work.await;
            self.publish_answering();
            let silenced: BTreeMap<usize, bool> = down.iter().copied().collect();
            for (i, result) in done {
                let name = &self.vifs[i].name;
                match result {
                    Ok(took) if silenced.get(&i) == Some(&true) => {
                        vif_line_timed!(self.vif_lines, name, "released", took.as_micros() as u64)
                    }
                    Ok(_) => {}
                    Err(e) => error!("releasing VIF {name}: {e:#}"),
                }
            }
            let grace_end = Instant::now() + RELEASE_GRACE;
            for &(i, silenced) in &down {
                if standby {
                    // Its silencing entry stays while its addresses do.
                    if silenced {
                        vif_line!(
                            self.vif_lines,
                            self.vifs[i].name,
                            "released (standby addresses kept)"
                        );
                    }
                } else {
                    self.pending_forget.insert(i, grace_end);
                }
                if let Some(vif) = self.vifs.get(i) {
                    drop(self.hooks.fire(HookEvent::Down {
                        vif: vif.name.clone(),
                        addresses: vif.address_texts(),
                    }));
                }
            }
        }
        if !up.is_empty() {
            self.plumb_and_announce(&up, "acquired", "acquiring").await;
            for &(i, _) in &up {
                if let Some(vif) = self.vifs.get(i) {
                    drop(self.hooks.fire(HookEvent::Up {
                        vif: vif.name.clone(),
                        addresses: vif.address_texts(),
                    }));
                }
            }
        }
    }

    /// The kernel steps of VIFs already answered in XDP, `(VIF, XDP step
    /// done)`: their addresses added pipelined (none for standby addresses
    /// already in), then announced, chunk by chunk (see [`PLUMB_CHUNK`]): of
    /// thousands of VIFs the first come back without waiting for the last,
    /// and none is announced before it can receive. One whose XDP step
    /// failed is announced but not plumbed (housekeeping retries it).
    /// `done` and `failing` name the step in the log.
    async fn plumb_and_announce(
        &mut self,
        vifs: &[(usize, bool)],
        done: &'static str,
        failing: &str,
    ) {
        for chunk in vifs.chunks(PLUMB_CHUNK) {
            let (_, addresses) = self.host.parts();
            let plumbed = &self.plumbed;
            let work = vifs::plumb_many(
                addresses,
                chunk
                    .iter()
                    .filter(|(i, owned)| *owned && !plumbed.contains(i))
                    .filter_map(|&(i, _)| Some((i, self.vifs.get(i)?))),
            );
            let mut results = work.await;
            self.publish_answering();
            results.extend(
                chunk
                    .iter()
                    .filter(|(i, owned)| *owned && self.plumbed.contains(i))
                    .map(|&(i, _)| (i, Ok(Duration::ZERO))),
            );
            for (i, result) in results {
                let name = &self.vifs[i].name;
                match result {
                    Ok(took) => {
                        self.unplumbed.remove(&i);
                        if self.standby() {
                            self.plumbed.insert(i);
                        }
                        vif_line_timed!(self.vif_lines, name, done, took.as_micros() as u64);
                    }
                    Err(e) => {
                        self.unplumbed.insert(i);
                        error!("{failing} VIF {name}: {e:#}; retrying");
                    }
                }
            }
            for &(i, _) in chunk {
                self.announce_owed(i);
            }
        }
    }

    /// Hand-over step 1: stop answering ARP for the VIF at once (XDP
    /// "yielding"), keep its addresses and accept its traffic. Synchronous
    /// map updates: in effect before the batch's next multicast goes out.
    fn yield_vif(&mut self, i: VifIndex) {
        let Some(vif) = self.vif(i).cloned() else {
            error!("allocator asked to yield unknown VIF {i}");
            return;
        };
        // Not one more frame claiming it; no retry would own it again.
        self.forget_deferral(i.0 as usize);
        self.host.cancel_announcement(i.0 as usize);
        self.announcing.drop_vif(i.0 as usize);
        self.unplumbed.remove(&(i.0 as usize));
        self.silent6.remove(&(i.0 as usize));
        self.yielded.insert(i.0 as usize);
        match vifs::yield_vif(self.host.parts().0, &vif) {
            Ok(()) => vif_line!(self.vif_lines, vif.name, "yielding (handing over)"),
            Err(e) => error!("yielding VIF {}: {e:#}", vif.name),
        }
    }

    /// A yielding VIF is ours again: answer, announce, then tell the allocator.
    async fn reclaim(&mut self, i: VifIndex) {
        let Some(vif) = self.vif(i).cloned() else {
            error!("allocator asked to reclaim unknown VIF {i}");
            return;
        };
        self.pending_forget.remove(&(i.0 as usize));
        self.yielded.remove(&(i.0 as usize));
        self.lingering.remove(&(i.0 as usize));
        if self.wait_for_fence(i.0 as usize, &vif.name) {
            return;
        }
        self.hold_silent6(i.0 as usize);
        let (table, addresses) = self.host.parts();
        let up = match self.plumbed.contains(&(i.0 as usize)) {
            // Standby addresses in: answering is all it takes.
            true => vifs::own(table, &vif),
            false => vifs::bring_up(table, addresses, &vif).await.map(|_| ()),
        };
        match up {
            Ok(()) => info!(vif = %vif.name, "reclaimed"),
            Err(e) => {
                self.unplumbed.insert(i.0 as usize);
                error!("reclaiming VIF {}: {e:#}; retrying", vif.name);
            }
        }
        self.announce_owed(i.0 as usize);
    }

    /// VIF `i`'s IPv6 addresses (if any) stay silent in XDP until its next
    /// announcement finds them usable.
    fn hold_silent6(&mut self, i: usize) {
        if self.vifs.get(i).is_some_and(|v| !v.ips6().is_empty()) {
            self.silent6.insert(i);
        }
    }

    /// An announcement's progress: its VIF's IPv6 addresses usable (XDP
    /// answers them from now), then on the wire (the allocator hears it
    /// after the settle). Being on the wire implies usable, for hosts that
    /// do not report that stage.
    fn on_announce_progress(&mut self, i: usize, generation: u64, stage: AnnounceStage) {
        // An older announcement's word is stale: the VIF was released or
        // re-acquired since, and its addresses may be new again.
        if self.announcing.is_current(i, generation) && self.silent6.remove(&i) {
            if let Some(vif) = self.vifs.get(i) {
                match vifs::answer6(self.host.parts().0, vif) {
                    Ok(()) => {
                        debug!(vif = %vif.name, "IPv6 addresses usable: answering solicitations")
                    }
                    Err(e) => {
                        // Housekeeping brings it up (and announces) again.
                        error!("answering for VIF {}: {e:#}; retrying", vif.name);
                        self.unplumbed.insert(i);
                    }
                }
            }
        }
        if stage == AnnounceStage::OnWire {
            self.announcing.completed(i, generation);
        }
    }

    /// Announces VIF `i` now; the allocator hears `Announced` once it is on
    /// the wire plus [`ANNOUNCE_SETTLE`].
    pub(super) fn announce_owed(&mut self, i: usize) {
        self.announcing.owed.insert(i);
        self.announcing.unsettle(i);
        self.announce(i, Duration::ZERO);
    }

    /// Renews the XDP lease from the engine's liveness evidence: until one
    /// lease after the evidence (see [`lease`](super::lease)).
    pub(super) fn renew_lease(&mut self, alive: Alive, capped_warned: &mut bool) {
        // A lost engine means we may not hold anything: let the lease lapse.
        if !self.engine_up {
            return;
        }
        self.note_lapse(false);
        if !self.may_revive(alive) {
            return;
        }
        let setting = self.cfg.xdp.lease;
        if let Some(len) = super::lease::length(setting, alive.takeover_floor) {
            if len.capped && !*capped_warned {
                *capped_warned = true;
                warn!(
                    "xdp.lease = {setting:?} outlasts the peers' earliest takeover ({:?} after this node falls silent): \
                     a frozen node would answer ARP next to its successor; using {:?} instead (set \"auto\")",
                    alive.takeover_floor, len.lease
                );
            }
        }
        let table = self.host.parts().0;
        if self.lease.renew(table, setting, alive).is_some() {
            self.publish_answering();
        }
    }

    /// Lets the lease keeper extend a running lease while the engine is up
    /// and no lapse awaits revival (this loop revives by its rules).
    fn permit_keeper(&self) {
        let permit = self.engine_up && self.lapse.is_none();
        self.lease.permit(permit, self.cfg.xdp.lease);
    }

    /// Departed members' VIFs may be taken before the exchange (at a view,
    /// or at a condemnation) only while my lease is live. A node whose
    /// lease lapsed (frozen, starved) applies a stale view: a thawed holder
    /// was seen alone in a ring at once and took every peer's VIF at the
    /// view, drawing their traffic to its fenced XDP. It takes nothing
    /// before the exchange (its engine judges the gap meanwhile).
    fn refresh_takeover_at_view(&mut self) {
        let fresh = self.lease_live();
        self.alloc
            .set_takeover_at_view(self.cfg.xdp.lease != config::Lease::Off && fresh);
    }

    /// Whether the lease is live: the engine is up and the lease has not
    /// lapsed. Then a view may be taken over at once.
    fn lease_live(&self) -> bool {
        let until = self.lease.until();
        self.engine_up && self.lapse.is_none() && until.is_some_and(|u| u > Instant::now())
    }

    /// Records a lapse of the lease (XDP went silent) once it is over;
    /// `view`: a view is being installed (the peers may have moved on).
    fn note_lapse(&mut self, view: bool) {
        let now = Instant::now();
        if let (None, Some(until)) = (&self.lapse, self.lease.until()) {
            if until <= now {
                warn!(
                    silent_for_ms = now.saturating_duration_since(until).as_millis() as u64,
                    "lease lapsed (no liveness evidence in time): XDP silent for our VIPs until the group is heard again"
                );
                self.lapse = Some(Lapse::since(until));
            }
        }
        if let (true, Some(lapse)) = (view, self.lapse.as_mut()) {
            lapse.view_changed = true;
        }
    }

    /// After a lapse the node was silent and the peers may have taken its
    /// VIFs; a stale belief must not make it answer next to them. Only our
    /// own probe revives the lease (agreed order: the views before it were
    /// delivered, and are handled first, see `run`).
    /// No view since the lapse: nobody took anything over. A view: wait for
    /// a view with peers whose exchange completed (their claims and ours
    /// resolved; a lone view after a freeze still lists every VIF as ours),
    /// or the merge wait without one (a cluster of one).
    fn may_revive(&mut self, alive: Alive) -> bool {
        let Some(lapse) = self.lapse else {
            return true;
        };
        // (A probe sent before a freeze and delivered after it is counted
        // from its sending: `validity` finds it too old.)
        if !alive.revives || lapse.settle_until.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        // Detector mode `guard`: members of another view that answer may
        // have taken our VIFs while we were silent (we said so in our
        // beats); answering again would give them two answerers. (Of
        // another view, not outside ours: a node stuck re-forming still
        // lists the members that formed a ring without it.)
        let outside = self.answering_elsewhere();
        if !outside.is_empty() {
            if let Some(lapse) = self.lapse.as_mut().filter(|l| !l.held_back) {
                lapse.held_back = true;
                warn!(
                    members = ?outside,
                    "lease not renewed after the lapse: members of another view answer (their beats say so); silent until they stop or share our view"
                );
            }
            return false;
        }
        if let (Some(wait), Some(lapse)) = (self.revival_turn(), self.lapse.as_mut()) {
            let now = Instant::now();
            if now < *lapse.turn.get_or_insert(now + wait) {
                return false;
            }
        }
        // The merge wait is for a node left alone; an exchange with peers in
        // progress is waited for however long ago the lapse was: each side
        // of a healed split may still list the other's VIFs as its own (two
        // lapsed one-node views merging revived together and answered the
        // same six VIPs until the exchange, 20 ms later).
        let exchanging = self.alloc.phase() == Phase::Gather && self.view_members.len() > 1;
        let settled = !lapse.view_changed
            || (matches!(
                self.alloc.phase(),
                Phase::Run | Phase::Balance | Phase::Boot
            ) && self.complete_members > 1)
            || (!exchanging && Instant::now() >= lapse.since + self.alloc.merge_wait());
        if settled {
            // What the beats said of the others, for reading a log after
            // a run of splits: who answered, and in which views.
            let heard = self.detector_snapshot().map(|s| (s.answering, s.views));
            info!(
                view_changed = lapse.view_changed,
                ?heard,
                "liveness evidence after the lapse: lease renewed"
            );
            self.lapse = None;
            if let (Some(stall), Some(beats)) = (self.beat_stall.take(), &self.inputs.beats) {
                beats.tell(super::beats::Command::Revive { stall });
            }
        }
        settled
    }

    /// Detector mode `guard`: how long a lapsed node waits before it may
    /// revive, when members of other views beat (answering or not). Two
    /// nodes of two views whose leases lapsed together (one stall starved
    /// both) each hear the other silent and would revive together,
    /// answering the same VIFs: the member with the lowest id goes first,
    /// the others wait a turn of `silent_after` each by rank, then look
    /// again whether one of them answers now ([`Agent::may_revive`]).
    fn revival_turn(&self) -> Option<Duration> {
        let me = self.me.as_ref()?;
        let snapshot = self.detector_snapshot().filter(|_| self.guarding())?;
        let ahead = (snapshot.beating_elsewhere.iter())
            .filter(|m| *m < me)
            .count();
        let step = self.cfg.detector.as_ref()?.timing.silent_after();
        (ahead > 0).then(|| step * u32::try_from(ahead).unwrap_or(u32::MAX))
    }

    /// Members whose beats say they answer in another view than this
    /// node's (detector mode `guard` only).
    fn answering_elsewhere(&self) -> Vec<MemberId> {
        match self.detector_snapshot().filter(|_| self.guarding()) {
            Some(snapshot) => snapshot.elsewhere.into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// An engine that never gives liveness evidence never arms the fence.
    fn warn_if_unfenced(&self) {
        if let config::EngineConfig::Spread(s) = &self.cfg.engine {
            if s.watchdog_interval.is_none() && self.cfg.xdp.lease != config::Lease::Off {
                warn!(
                    "engine.spread.watchdog_interval = \"0\": no watchdog probes, so no fencing lease \
                     (a frozen node keeps answering ARP for its VIPs)"
                );
            }
        }
    }

    async fn housekeeping(&mut self) {
        self.check_addresses(Instant::now()).await;
        if !self.unplumbed.is_empty() {
            let held: BTreeSet<usize> = self.answering().iter().map(|i| i.0 as usize).collect();
            // A retry holds the IPv6 addresses silent again until usable.
            for i in self
                .unplumbed
                .intersection(&held)
                .copied()
                .collect::<Vec<_>>()
            {
                self.hold_silent6(i);
            }
            let (table, addresses) = self.host.parts();
            let (up, failed) =
                vifs::retry_bring_up(table, addresses, &self.vifs, &mut self.unplumbed, &held)
                    .await;
            for (i, e) in failed {
                debug!(vif = i, "bring-up retry failed: {e:#}");
            }
            for i in up {
                if self.standby() {
                    self.plumbed.insert(i);
                }
                if let Some(name) = self.vifs.get(i).map(|v| v.name.clone()) {
                    info!(vif = %name, "acquired on retry");
                    self.announce(i, Duration::ZERO);
                }
            }
            self.update_metrics();
        }
        if self.standby() && self.plumbed.len() < self.vifs.len() {
            self.plumb_standby().await;
        }
        let now = Instant::now();
        if self.trim_heap_at.is_some_and(|at| at <= now) {
            self.trim_heap_at = None;
            release_freed_heap();
        }
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
            if let Some(vif) = self.vifs.get(i) {
                if let Err(e) = vifs::forget(self.host.parts().0, vif) {
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
            Report::Rejected { .. }
            | Report::ExchangeGap { .. }
            | Report::ExchangeDiverged { .. }
            | Report::EvictedMe { .. }
            | Report::SilentInExchange { .. } => {
                warn!("{r}")
            }
            Report::ViewComplete { members, .. } => {
                info!("{r}");
                self.notifier.status(&r.to_string());
                // After a merge, a VIF I kept (so never re-acquired) may have
                // been announced by the other side's owner meanwhile: clients
                // would keep that node's MAC, which now drops the traffic.
                self.stop_awaiting_the_view();
                self.quiet_claims = self.awaiting_elsewhere.clone();
                if *members > self.complete_members && self.complete_members > 0 {
                    self.refresh_announcements();
                }
                self.complete_members = *members;
                self.view_completed = true;
            }
            Report::Evicted { member, .. } => {
                info!("{r}");
                self.guard_evicted(member.clone());
            }
            _ => info!("{r}"),
        }
        if let Report::Matured = r {
            if let Ok(mut m) = self.metrics.lock() {
                m.mature = true;
            }
        }
    }

    /// The metrics page's VIF rows: who answers for what, and the XDP
    /// counters (a map lookup per address).
    pub(super) fn update_metrics(&mut self) {
        // Only the metrics page reads the VIF rows (a reload cannot add one).
        if self.cfg.metrics_listen.is_none() {
            return;
        }
        let held = self.answering();
        let mut rows = Vec::with_capacity(self.vifs.len());
        for (i, vif) in self.vifs.iter().enumerate() {
            let mut row = VifMetrics {
                name: vif.name.clone(),
                owned: held.contains(&VifIndex(i as u32)),
                ..Default::default()
            };
            for a in &vif.addresses {
                if let Ok(c) = self.host.table().counters(&a.vip) {
                    row.packets += c.packets;
                    row.bytes += c.bytes;
                    row.arp_replies += c.arp_replies;
                    row.drops += c.drops;
                }
            }
            rows.push(row);
        }
        let beats = self.detector_snapshot().map(|s| s.counts);
        if let Ok(mut m) = self.metrics.lock() {
            m.vifs = rows;
            m.mature = self.alloc.is_mature();
            if let Some(c) = beats {
                let d = m.detector.get_or_insert_default();
                d.beats_sent = c.sent;
                d.beats_received = c.received;
                d.beats_ignored = c.ignored;
            }
        }
    }
}

/// Gives the heap's free pages back to the system. glibc keeps what a
/// burst freed (the requests and announcement tasks of thousands of VIFs):
/// 1.4 MB of an idle agent's 22 MB at 4000 VIPs.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it walks glibc's own free lists
    // under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Acquired VIFs whose addresses are added before they are announced
/// (four pipelines' worth, see `vifs::PIPELINE`): a batch of thousands comes
/// back chunk by chunk instead of all at its end.
const PLUMB_CHUNK: usize = 4 * vifs::PIPELINE;

#[cfg(test)]
mod tests {
    use super::*;

    /// The owed announcements come due by time, are taken in VIF order,
    /// and a dropped or re-announced VIF leaves the schedule.
    #[tokio::test(start_paused = true)]
    async fn owed_announcements_come_due_in_time_and_leave_when_dropped() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut a = Announcing {
            tx: Some(tx),
            ..Default::default()
        };
        assert_eq!(a.next_due(), None);
        let start = Instant::now();
        let mut generation = BTreeMap::new();
        for vif in [7, 3, 5, 1] {
            a.owed.insert(vif);
            drop(a.begin(vif));
            generation.insert(vif, a.next);
        }
        // 7 and 3 complete now, 5 and 1 a millisecond later.
        a.completed(7, generation[&7]);
        a.completed(3, generation[&3]);
        // A stale generation and a second completion change nothing.
        a.completed(5, generation[&5] - 1);
        a.completed(7, generation[&7]);
        tokio::time::advance(Duration::from_millis(1)).await;
        a.completed(5, generation[&5]);
        a.completed(1, generation[&1]);
        assert_eq!(a.next_due(), Some(start + ANNOUNCE_SETTLE));
        assert!(a.take_due(start + ANNOUNCE_SETTLE / 2).is_empty());
        assert_eq!(
            a.take_due(start + ANNOUNCE_SETTLE),
            vec![VifIndex(3), VifIndex(7)]
        );
        assert!(!a.owed.contains(&3) && !a.owed.contains(&7));
        // 1 is dropped (released): only 5 is left.
        a.drop_vif(1);
        let later = start + ANNOUNCE_SETTLE + Duration::from_millis(1);
        assert_eq!(a.next_due(), Some(later));
        assert_eq!(a.take_due(later), vec![VifIndex(5)]);
        assert_eq!(a.next_due(), None);
        assert!(a.settling.is_empty() && a.due.is_empty());
    }
}

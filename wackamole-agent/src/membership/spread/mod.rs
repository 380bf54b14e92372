//! Spread 4.x membership engine: a native client of the daemon's client
//! protocol (no libspread) behind the engine interface of [`super`].
//!
//! - [`codec`]: pure wire format (handshake, headers in both byte orders,
//!   client and daemon messages, limits of a stock 4.4 daemon).
//! - [`client`]: tokio session to one daemon (TCP `port@host` or Unix `port`).
//! - this module: the engine task. It joins one group and maps
//!   - regular views to [`MembershipEvent::View`] (id = the group id's three
//!     words, members = private group names in the daemon's order, which is
//!     the same on every member),
//!   - transitional signals to [`MembershipEvent::Transitional`],
//!   - AGREED/SAFE data for the group to [`MembershipEvent::Message`],
//!   - loss of the daemon connection to [`MembershipEvent::Lost`], then
//!     reconnects every `retry_interval` (Wackamole's `SpreadRetryInterval`)
//!     and joins again.
//! - [`watchdog`]: a frozen daemon (SIGSTOP, hung) keeps its socket open and
//!   says nothing, while the other nodes see us leave after the failure
//!   detection time and take our addresses. Every `watchdog_interval` the
//!   engine sends an AGREED probe to its *own private group* and, while it
//!   wants to be in the group, to the group as well (one message: delivered
//!   to us once, and to the other members, who report it as
//!   [`MembershipEvent::Heard`] so that a frozen agent is evicted, issue 11)
//!   with `mess_type` [`watchdog::PROBE_MESS_TYPE`];
//!   agent payloads go out unchanged with `mess_type` 0 and only `mess_type`
//!   0 reaches the agent as [`MembershipEvent::Message`]. A probe late by
//!   `watchdog_deadline` that the daemon has not even read from our socket
//!   means a frozen daemon: `Lost`, close, reconnect (a fresh view once it
//!   answers). A probe read but late is a ring re-forming: no `Lost`.

pub mod client;
pub mod codec;
pub mod watchdog;

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use super::EvidenceGap;
use super::{MemberId, MembershipEvent, MembershipHandle, Outgoing, View, ViewId};
use client::{ClientError, ConnectOptions, Endpoint, SpreadReader, SpreadWriter};
use codec::{service, DaemonMessage, Service, ViewCause};
use watchdog::{Hearing, Watchdog, APP_MESS_TYPE, PROBE_MESS_TYPE};

/// Default probe period of the watchdog (as the corosync engine).
pub const DEFAULT_WATCHDOG_INTERVAL: Duration = Duration::from_millis(20);
/// Default watchdog deadline: below the LAN-fast failure detection
/// (~1.1 s, when the other nodes take our addresses) and well above the
/// probe round trip of a loaded host (a few ms).
pub const DEFAULT_WATCHDOG_DEADLINE: Duration = Duration::from_millis(500);

/// Default takeover floor: the LAN-fast profile's `TokenTimeout` (500 ms).
/// The client cannot read the daemon's timeouts; no peer declares us gone
/// before its token timeout has run (the whole re-formation took ~1.2 s).
pub const DEFAULT_TAKEOVER_FLOOR: Duration = Duration::from_millis(500);

/// Configuration of the Spread engine.
#[derive(Clone, Debug)]
pub struct SpreadOptions {
    /// libspread spread name: `port@host` (TCP) or `port` (Unix `/tmp/<port>`).
    pub endpoint: String,
    /// Private name (0..=10 bytes in `'$'..='~'`, unique on the daemon);
    /// empty lets the daemon generate one.
    pub private_name: String,
    /// The group all agents join.
    pub group: String,
    /// Pause between reconnect attempts after the daemon connection is lost.
    pub retry_interval: Duration,
    /// Limit for connect + handshake.
    pub connect_timeout: Duration,
    /// On a Unix endpoint the daemon's socket must belong to root, to the
    /// agent's uid, or to this uid (SO_PEERCRED); see [`client::peer_trusted`].
    pub trusted_uid: Option<u32>,
    /// Service for [`Outgoing::Send`]: `Agreed` (default) or `Safe`.
    pub service: Service,
    /// Probe period of the watchdog; None: no watchdog.
    pub watchdog_interval: Option<Duration>,
    /// `Lost` when a probe is this late and unread by the daemon; None:
    /// [`DEFAULT_WATCHDOG_DEADLINE`]. "Unread" is observable on a Unix
    /// endpoint and on TCP to a daemon on this host, not for a remote one.
    pub watchdog_deadline: Option<Duration>,
    /// The peers' earliest takeover after we fall silent (at least the
    /// daemons' `TokenTimeout`), reported with each delivered probe for the
    /// fencing lease.
    pub takeover_floor: Duration,
}

impl SpreadOptions {
    /// Options with Wackamole's defaults (retry every 5 s, AGREED service).
    pub fn new(endpoint: &str, private_name: &str, group: &str) -> Self {
        SpreadOptions {
            endpoint: endpoint.to_owned(),
            private_name: private_name.to_owned(),
            group: group.to_owned(),
            retry_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            trusted_uid: None,
            service: Service::Agreed,
            watchdog_interval: None,
            watchdog_deadline: None,
            takeover_floor: DEFAULT_TAKEOVER_FLOOR,
        }
    }

    /// The same options with the watchdog on at its defaults.
    pub fn with_watchdog(mut self) -> Self {
        self.watchdog_interval = Some(DEFAULT_WATCHDOG_INTERVAL);
        self.watchdog_deadline = Some(DEFAULT_WATCHDOG_DEADLINE);
        self
    }

    fn deadline(&self) -> Duration {
        self.watchdog_deadline.unwrap_or(DEFAULT_WATCHDOG_DEADLINE)
    }
}

/// Validates `opts` and starts the engine task. The task connects (and
/// keeps reconnecting) by itself; an unreachable daemon shows up as
/// [`MembershipEvent::Lost`], not as an error here.
pub async fn start(opts: SpreadOptions) -> anyhow::Result<MembershipHandle> {
    let endpoint = Endpoint::parse(&opts.endpoint).context("spread engine")?;
    codec::check_group_name(&opts.group).with_context(|| format!("spread {endpoint}: group"))?;
    codec::check_private_name(&opts.private_name)
        .with_context(|| format!("spread {endpoint}: private name"))?;
    if !matches!(opts.service, Service::Agreed | Service::Safe) {
        anyhow::bail!(
            "spread {endpoint}: service {:?} is not totally ordered; use Agreed or Safe",
            opts.service
        );
    }
    if let Some(i) = opts.watchdog_interval {
        if i.is_zero() || i >= opts.deadline() {
            anyhow::bail!(
                "spread {endpoint}: watchdog interval ({i:?}) must be > 0 and below the deadline ({:?})",
                opts.deadline()
            );
        }
    }
    let description = format!("spread {endpoint} group {}", opts.group);
    let (events_tx, events) = mpsc::channel(1024);
    let (outgoing, out_rx) = mpsc::channel(256);
    let (alive_tx, alive) = tokio::sync::watch::channel(None);
    let engine = Engine {
        alive: alive_tx,
        opts,
        endpoint,
        events: events_tx,
        outgoing: out_rx,
        want_joined: true,
        in_view: false,
        view_members: Vec::new(),
        hearing: Hearing::default(),
    };
    tokio::spawn(engine.run());
    Ok(MembershipHandle {
        description,
        events,
        outgoing,
        alive,
    })
}

struct Engine {
    opts: SpreadOptions,
    endpoint: Endpoint,
    events: mpsc::Sender<MembershipEvent>,
    outgoing: mpsc::Receiver<Outgoing>,
    /// Liveness evidence (delivered probes) for the agent's fencing lease.
    alive: tokio::sync::watch::Sender<Option<crate::membership::Alive>>,
    /// The agent wants to be in the group (cleared by `Leave`).
    want_joined: bool,
    /// A view of the group is installed in this session: messages and
    /// transitional signals before the (re)join view or after a leave are
    /// not the agent's business.
    in_view: bool,
    /// Members of the last view of the group (for `Departed`).
    view_members: Vec<String>,
    /// Whose delivered probes are [`MembershipEvent::Heard`].
    hearing: Hearing,
}

/// How a session or a pause ended.
enum Next {
    Reconnect,
    /// The watchdog gave up on the daemon (reason for `Lost`).
    Lost(String),
    Stop,
}

impl Engine {
    async fn run(mut self) {
        let mut lost_reported = false;
        loop {
            let copts = ConnectOptions {
                private_name: self.opts.private_name.clone(),
                membership: true,
                timeout: self.opts.connect_timeout,
                trusted_uid: self.opts.trusted_uid,
            };
            let next = match client::connect(&self.endpoint, &copts).await {
                Ok((reader, writer, accepted)) => {
                    lost_reported = false;
                    tracing::info!(
                        "spread {}: connected as {} (daemon {}.{}.{})",
                        self.endpoint,
                        accepted.private_group,
                        accepted.daemon_version.0,
                        accepted.daemon_version.1,
                        accepted.daemon_version.2
                    );
                    match self.session(reader, writer).await {
                        Ok(Next::Lost(reason)) => {
                            tracing::warn!("{reason}; reconnecting");
                            if !self.emit(MembershipEvent::Lost { reason }).await {
                                return;
                            }
                            lost_reported = true;
                            Next::Reconnect
                        }
                        Ok(next) => next,
                        Err(e) => {
                            tracing::warn!("{e}");
                            if !self.emit(lost(&e)).await {
                                return;
                            }
                            lost_reported = true;
                            Next::Reconnect
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("{e}; retrying in {:?}", self.opts.retry_interval);
                    if !lost_reported {
                        if !self.emit(lost(&e)).await {
                            return;
                        }
                        lost_reported = true;
                    }
                    Next::Reconnect
                }
            };
            match next {
                Next::Stop => return,
                Next::Reconnect | Next::Lost(_) => {
                    if let Next::Stop = self.pause().await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits `retry_interval` while still obeying the agent.
    async fn pause(&mut self) -> Next {
        let sleep = tokio::time::sleep(self.opts.retry_interval);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Next::Reconnect,
                out = self.outgoing.recv() => match out {
                    None | Some(Outgoing::Shutdown) => return Next::Stop,
                    Some(Outgoing::Leave) => self.want_joined = false,
                    Some(Outgoing::Join) => self.want_joined = true,
                    Some(Outgoing::Send(_)) => tracing::warn!(
                        "spread {}: not connected, message dropped", self.endpoint
                    ),
                },
            }
        }
    }

    /// Runs one connected session until it fails (Err) or the agent stops.
    async fn session(
        &mut self,
        mut reader: SpreadReader,
        mut writer: SpreadWriter,
    ) -> Result<Next, ClientError> {
        let me = writer.private_group().to_owned();
        self.in_view = false;
        self.view_members.clear();
        self.hearing.clear();
        if self.want_joined {
            writer.join(&self.opts.group).await?;
        }
        // Only where a frozen daemon is told from a frozen agent (the daemon
        // reads our probes while its ring re-forms): with a remote daemon no
        // evidence comes during a re-formation, which is no freeze of ours.
        let mut gap = writer.unread_by_daemon().map(|_| {
            EvidenceGap::new(crate::daemon::lease::self_evict_gap(
                self.opts.takeover_floor,
            ))
        });
        let mut watchdog = self.opts.watchdog_interval.map(|period| {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            (tick, Watchdog::new(self.opts.deadline()))
        });
        loop {
            let tick = async {
                match watchdog.as_mut() {
                    Some((t, _)) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                // Unbiased: a busy daemon stream must not starve the watchdog.
                () = tick => {
                    if let Some((_, wd)) = watchdog.as_mut() {
                        if let Some(next) = self.check(wd, &mut gap, &mut writer).await? {
                            if let Next::Stop = next {
                                let _ = writer.disconnect().await;
                            }
                            return Ok(next);
                        }
                    }
                }
                msg = reader.next() => {
                    let msg = msg?;
                    if let DaemonMessage::Data(d) = &msg {
                        if d.mess_type == PROBE_MESS_TYPE {
                            let now = tokio::time::Instant::now();
                            let mut own_rtt = None;
                            if let (true, Some((_, wd)), Some(seq)) =
                                (d.sender == me, watchdog.as_mut(), watchdog::decode_probe(&d.payload))
                            {
                                if let Some(rtt) = wd.returned(seq, Instant::now()) {
                                    tracing::trace!("spread {}: probe {seq} back in {rtt:?}", self.endpoint);
                                    own_rtt = Some(rtt);
                                    // Counted from the sending (see `Alive`).
                                    let at = now.checked_sub(rtt).unwrap_or(now);
                                    if let Some(gap) = self.evidence_gap(&mut gap, at) {
                                        if !self.emit(MembershipEvent::Resumed { gap }).await {
                                            let _ = writer.disconnect().await;
                                            return Ok(Next::Stop);
                                        }
                                    }
                                    crate::membership::Alive::publish(&self.alive, crate::membership::Alive {
                                        at,
                                        takeover_floor: self.opts.takeover_floor,
                                        revives: true,
                                    });
                                }
                            }
                            // Mine only as the probe in flight (not a stale one).
                            let stall = watchdog::stall_limit(self.opts.takeover_floor);
                            let mine = d.sender == me;
                            if (!mine || own_rtt.is_some())
                                && self.hearing.heard(&d.sender, own_rtt, stall)
                            {
                                let member = MemberId(d.sender.clone());
                                if !self.emit(MembershipEvent::Heard { member, at: now }).await {
                                    let _ = writer.disconnect().await;
                                    return Ok(Next::Stop);
                                }
                            }
                            continue;
                        }
                    }
                    if let Some(ev) = self.departed(&me, &msg) {
                        if !self.emit(ev).await {
                            let _ = writer.disconnect().await;
                            return Ok(Next::Stop);
                        }
                    }
                    if let Some(ev) = self.map(&me, msg) {
                        if !self.emit(ev).await {
                            let _ = writer.disconnect().await;
                            return Ok(Next::Stop);
                        }
                    }
                }
                out = self.outgoing.recv() => match out {
                    None | Some(Outgoing::Shutdown) => {
                        if self.want_joined {
                            writer.leave(&self.opts.group).await?;
                        }
                        writer.disconnect().await?;
                        return Ok(Next::Stop);
                    }
                    Some(Outgoing::Send(payload)) => {
                        if !self.want_joined {
                            tracing::warn!("spread {}: not in the group, message dropped", self.endpoint);
                            continue;
                        }
                        match writer.multicast(self.opts.service, &self.opts.group, APP_MESS_TYPE, &payload).await {
                            Err(ClientError::Encode { endpoint, source }) => {
                                tracing::error!("spread {endpoint}: message dropped: {source}");
                            }
                            other => other?,
                        }
                    }
                    Some(Outgoing::Leave) => {
                        if self.want_joined {
                            self.want_joined = false;
                            self.in_view = false;
                            self.hearing.clear();
                            writer.leave(&self.opts.group).await?;
                        }
                    }
                    Some(Outgoing::Join) => {
                        if !self.want_joined {
                            self.want_joined = true;
                            writer.join(&self.opts.group).await?;
                        }
                    }
                },
            }
        }
    }

    /// One watchdog tick: the verdict on the probe in flight, then the next
    /// probe if none is in flight. Some(next) when the session ends: `Lost`
    /// when the daemon is frozen, `Stop` when the agent is gone.
    async fn check(
        &self,
        wd: &mut Watchdog,
        gap: &mut Option<EvidenceGap>,
        writer: &mut SpreadWriter,
    ) -> Result<Option<Next>, ClientError> {
        let now = Instant::now();
        let interval = self.opts.watchdog_interval.unwrap_or_default();
        // Only a late probe is worth asking the socket (a file read for TCP).
        let reading = if wd.overdue(now) > interval.min(wd.deadline()) {
            watchdog::reading(writer.written(), writer.unread_by_daemon())
        } else {
            watchdog::Reading::Unknown
        };
        // While the ring re-forms the daemon delivers no agreed message, so
        // no probe comes back; a daemon that still reads what we wrote (a
        // local one: Unix socket or TCP on this host) is not frozen, and that
        // is the lease's evidence meanwhile. A frozen daemon reads nothing.
        if wd.consumed_in_flight(reading) {
            let at = tokio::time::Instant::now();
            if let Some(gap) = self.evidence_gap(gap, at) {
                if !self.emit(MembershipEvent::Resumed { gap }).await {
                    return Ok(Some(Next::Stop));
                }
            }
            crate::membership::Alive::publish(
                &self.alive,
                crate::membership::Alive {
                    at,
                    takeover_floor: self.opts.takeover_floor,
                    revives: false,
                },
            );
        }
        if let Some(age) = wd.frozen(now, reading) {
            return Ok(Some(Next::Lost(format!(
                "spread daemon at {} did not deliver our watchdog probe within {} ms (frozen? \
                 the probe is {} ms old and the daemon has not read it)",
                self.endpoint,
                wd.deadline().as_millis(),
                age.as_millis()
            ))));
        }
        if let Some(seq) = wd.due() {
            let probe = watchdog::encode_probe(seq);
            if self.want_joined {
                // The peers see it too (8 bytes per member and period).
                writer
                    .multicast_with_self(Service::Agreed, &self.opts.group, PROBE_MESS_TYPE, &probe)
                    .await?;
            } else {
                writer
                    .send_to_self(Service::Agreed, PROBE_MESS_TYPE, &probe)
                    .await?;
            }
            wd.sent(seq, now, writer.written());
        }
        Ok(None)
    }

    /// The gap before my liveness evidence at `at`, if it is longer than
    /// the self-eviction gap (this process was frozen or starved; the peers
    /// may have evicted it): the agent is told ([`MembershipEvent::Resumed`],
    /// which it logs) before the evidence.
    fn evidence_gap(
        &self,
        gap: &mut Option<EvidenceGap>,
        at: tokio::time::Instant,
    ) -> Option<Duration> {
        gap.as_mut()?.at(at)
    }

    /// A view of our group caused by a leave or a disconnect (the member's
    /// process left its daemon, which stays in the ring): the members of the
    /// last view it drops are [`MembershipEvent::Departed`]. Remembers the
    /// members of every view of our group that lists me.
    fn departed(&mut self, me: &str, msg: &DaemonMessage) -> Option<MembershipEvent> {
        let DaemonMessage::View(v) = msg else {
            return None;
        };
        if v.group != self.opts.group || !self.want_joined || !v.members.iter().any(|m| m == me) {
            return None;
        }
        let last = std::mem::replace(&mut self.view_members, v.members.clone());
        if !self.in_view || !matches!(v.cause, ViewCause::Leave | ViewCause::Disconnect) {
            return None;
        }
        let members: Vec<MemberId> = last
            .into_iter()
            .filter(|m| m != me && !v.members.contains(m))
            .map(MemberId)
            .collect();
        (!members.is_empty()).then_some(MembershipEvent::Departed { members })
    }

    /// Maps a daemon message to an agent event (None: not for the agent).
    fn map(&mut self, me: &str, msg: DaemonMessage) -> Option<MembershipEvent> {
        let ep = &self.endpoint;
        match msg {
            DaemonMessage::View(v) if v.group == self.opts.group && self.want_joined => {
                let Some(my_index) = v.members.iter().position(|m| m == me) else {
                    tracing::warn!(
                        "spread {ep}: view {:?} of {} does not list me ({me}); ignored",
                        v.group_id,
                        v.group
                    );
                    return None;
                };
                self.in_view = true;
                self.hearing.view(&v.members);
                Some(MembershipEvent::View(View {
                    id: ViewId(v.group_id.to_u128()),
                    members: v.members.into_iter().map(MemberId).collect(),
                    my_index,
                }))
            }
            DaemonMessage::Transitional { group, .. }
                if group == self.opts.group && self.in_view =>
            {
                self.hearing.transitional();
                Some(MembershipEvent::Transitional)
            }
            DaemonMessage::Data(d) if d.mess_type != APP_MESS_TYPE => {
                tracing::debug!(
                    "spread {ep}: ignoring message of engine type {:#x} from {}",
                    d.mess_type,
                    d.sender
                );
                None
            }
            DaemonMessage::Data(d) if self.in_view && d.groups.contains(&self.opts.group) => {
                if d.service_type
                    & (service::AGREED_MESS | service::SAFE_MESS | service::CAUSAL_MESS)
                    == 0
                {
                    tracing::warn!(
                        "spread {ep}: ignoring unordered message (service {:#x}) from {}",
                        d.service_type,
                        d.sender
                    );
                    return None;
                }
                Some(MembershipEvent::Message {
                    sender: MemberId(d.sender),
                    payload: d.payload,
                })
            }
            DaemonMessage::SelfLeave { group } => {
                if group == self.opts.group {
                    self.in_view = false;
                    self.hearing.clear();
                }
                tracing::debug!("spread {ep}: left {group}");
                None
            }
            DaemonMessage::Reject(r) => {
                tracing::warn!(
                    "spread {ep}: daemon rejected a request (type {:#x}) to {:?}",
                    r.old_type,
                    r.groups
                );
                None
            }
            other => {
                tracing::debug!("spread {ep}: ignored {other:?}");
                None
            }
        }
    }

    /// Hands an event to the agent; false when the agent has gone away.
    async fn emit(&self, ev: MembershipEvent) -> bool {
        self.events.send(ev).await.is_ok()
    }
}

fn lost(e: &ClientError) -> MembershipEvent {
    MembershipEvent::Lost {
        reason: e.to_string(),
    }
}

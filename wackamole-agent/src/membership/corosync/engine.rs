//! The engine proper: its thread, the CPG connection and the watchdog (built
//! with the `corosync` cargo feature, which links the Corosync libraries).

use super::conn::{CallError, Conn, Liveness, Raw, Vouch};
use super::tracker::{self, encode_app, encode_watchdog, PendingHeard, Tracker, Trip, Watchdog};
use super::CorosyncOptions;
use crate::membership::{Alive, EvidenceGap, MembershipEvent, MembershipHandle, Outgoing};
use anyhow::{anyhow, Context, Result};
use rust_corosync::CsError;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, sleep_until, Instant};

/// Application sends waiting for corosync (flow control) before we stop
/// reading the agent's requests.
const MAX_QUEUE: usize = 4096;

/// Connects to the corosync of the caller's network namespace, joins the
/// group and returns the agent's handle. The first event is the first view.
/// Fails if corosync cannot be reached now; later losses are reported as
/// [`MembershipEvent::Lost`] and repaired by reconnecting.
pub async fn start(opts: CorosyncOptions) -> Result<MembershipHandle> {
    opts.validate()?;
    let (ev_tx, ev_rx) = mpsc::channel(8192);
    let (out_tx, out_rx) = mpsc::channel(1024);
    let (alive_tx, alive_rx) = tokio::sync::watch::channel(None);
    let (ready_tx, ready_rx) = oneshot::channel::<Result<String>>();
    let group = opts.group.clone();
    std::thread::Builder::new()
        .name(format!("corosync-{group}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("corosync: runtime for engine: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let first = match Conn::open(&opts.group, true, opts.require_quorum).await {
                    Ok(c) => c,
                    Err(e) => {
                        let hint = if e.err == CsError::CsErrTryAgain {
                            "corosync kept answering \"try again\": busy synchronising a ring?"
                        } else {
                            "is corosync running in this network namespace?"
                        };
                        let _ = ready_tx
                            .send(Err(anyhow!("corosync group {}: {e} ({hint})", opts.group)));
                        return;
                    }
                };
                let desc = format!(
                    "corosync CPG group {} (node {}, pid {})",
                    opts.group, first.me.nodeid, first.me.pid
                );
                if ready_tx.send(Ok(desc)).is_err() {
                    return;
                }
                Engine {
                    opts,
                    events: ev_tx,
                    outgoing: out_rx,
                    alive: alive_tx,
                    joined: true,
                    queue: VecDeque::new(),
                }
                .run(first)
                .await;
            });
        })
        .with_context(|| format!("corosync group {group}: spawning the engine thread"))?;
    let description = ready_rx
        .await
        .map_err(|_| anyhow!("corosync group {group}: engine thread ended during start"))??;
    Ok(MembershipHandle {
        description,
        events: ev_rx,
        outgoing: out_tx,
        alive: alive_rx,
    })
}

/// The wall clock (ns since the epoch), which the nodes share to within
/// NTP's error; 0 if it is before the epoch.
fn wall_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Why serving one connection ended.
enum End {
    Shutdown,
    /// The agent has been told `Lost`; report it.
    Lost(String),
    /// Open a new connection now, nothing to report (thaw, operator Join).
    Reconnect,
}

struct Engine {
    opts: CorosyncOptions,
    events: mpsc::Sender<MembershipEvent>,
    outgoing: mpsc::Receiver<Outgoing>,
    /// Liveness evidence for the agent's fencing lease.
    alive: tokio::sync::watch::Sender<Option<Alive>>,
    /// Whether the agent wants to be in the group (operator Leave/Join).
    joined: bool,
    /// Encoded application messages not yet accepted by corosync.
    queue: VecDeque<Vec<u8>>,
}

/// Per-connection state.
struct Session {
    /// When this connection began: evidence published before it (by an
    /// earlier connection) says nothing about this one.
    since: Instant,
    conn: Conn,
    tracker: Tracker,
    watchdog: Watchdog,
    /// When to retry the head of the send queue after CS_ERR_TRY_AGAIN.
    retry_at: Option<Instant>,
    send_pause: Duration,
    /// Probe delay tolerated while corosync answers IPC (ring re-forming).
    stall_limit: Duration,
    liveness: Liveness,
    /// Peers' earliest takeover after we fall silent (token + consensus).
    takeover_floor: Duration,
    /// Probe period of this connection.
    interval: Duration,
    /// Gaps in the evidence given to the agent: a long one (this process
    /// frozen or starved) means the peers may have evicted us: report
    /// `Lost` and rejoin instead.
    gap: EvidenceGap,
    /// Peers' probes waiting for the next event to the agent.
    heard: PendingHeard,
}

impl Engine {
    async fn run(mut self, first: Conn) {
        let mut conn = Some(first);
        let mut backoff = self.opts.reconnect_min;
        loop {
            if let Some(c) = conn.take() {
                match self.serve(c).await {
                    End::Shutdown => return,
                    End::Reconnect => {
                        match Conn::open(&self.opts.group, self.joined, self.opts.require_quorum)
                            .await
                        {
                            Ok(c) => {
                                conn = Some(c);
                                continue;
                            }
                            Err(e) => {
                                let reason =
                                    format!("corosync group {}: reconnect: {e}", self.opts.group);
                                if self.emit(MembershipEvent::Lost { reason }).await.is_err() {
                                    return;
                                }
                            }
                        }
                        backoff = self.opts.reconnect_min;
                    }
                    End::Lost(reason) => {
                        tracing::warn!("{reason}");
                        self.queue.clear();
                        if self.emit(MembershipEvent::Lost { reason }).await.is_err() {
                            return;
                        }
                        backoff = self.opts.reconnect_min;
                    }
                }
            }
            tokio::select! {
                _ = sleep(backoff) => {
                    match Conn::open(&self.opts.group, self.joined, self.opts.require_quorum).await {
                        Ok(c) => {
                            tracing::info!("corosync group {}: reconnected", self.opts.group);
                            conn = Some(c);
                        }
                        Err(e) => {
                            tracing::debug!("corosync group {}: reconnect: {e}", self.opts.group);
                            backoff = (backoff * 2).min(self.opts.reconnect_max);
                        }
                    }
                }
                m = self.outgoing.recv() => match m {
                    None | Some(Outgoing::Shutdown) => return,
                    Some(Outgoing::Leave) => self.joined = false,
                    Some(Outgoing::Join) => self.joined = true,
                    // No view while disconnected: nothing can be sent in one.
                    Some(Outgoing::Send(_)) => {}
                },
            }
        }
    }

    async fn emit(&self, ev: MembershipEvent) -> Result<(), ()> {
        self.events.send(ev).await.map_err(|_| ())
    }

    /// Emits `ev` in a session: after the peers' probes waiting for it.
    async fn emit_in(&self, s: &mut Session, ev: MembershipEvent) -> Result<(), End> {
        for heard in s.heard.take() {
            self.emit(heard).await.map_err(|_| End::Shutdown)?;
        }
        self.emit(ev).await.map_err(|_| End::Shutdown)
    }

    fn lost(&self, e: CallError) -> End {
        let hint = match e.err {
            CsError::CsErrLibrary | CsError::CsErrBadHandle => " (connection to corosync lost)",
            _ => "",
        };
        End::Lost(format!("corosync group {}: {e}{hint}", self.opts.group))
    }

    /// (freeze deadline, stall limit, takeover floor) for this connection.
    fn watchdog_limits(&self, conn: &Conn) -> (Duration, Duration, Duration) {
        let (token, consensus) = conn.totem_timers.unwrap_or_else(|| {
            tracing::warn!(
                "corosync group {}: totem timers not readable from cmap; assuming corosync defaults",
                self.opts.group
            );
            (tracker::DEFAULT_TOKEN_MS, tracker::DEFAULT_CONSENSUS_MS)
        });
        let deadline = self
            .opts
            .watchdog_deadline
            .unwrap_or_else(|| tracker::auto_freeze_deadline(token))
            .max(self.opts.watchdog_interval.unwrap_or_default() * 2);
        let stall = self
            .opts
            .watchdog_stall_limit
            .unwrap_or_else(|| tracker::auto_stall_limit(token, consensus))
            .max(deadline);
        (deadline, stall, tracker::takeover_floor(token, consensus))
    }

    /// Tells the agent the engine was alive at `at` (its lease renews).
    fn alive(&self, s: &Session, at: Instant, revives: bool) {
        Alive::publish(
            &self.alive,
            Alive {
                at,
                takeover_floor: s.takeover_floor,
                revives,
            },
        );
    }

    /// Liveness evidence at `at` for the agent; after too long a gap (see
    /// [`Engine::evidence_gap`]) the agent is told first, in order.
    async fn evidence(&mut self, s: &mut Session, at: Instant, revives: bool) -> Result<(), End> {
        // The agent logs it, with what it does about it.
        if let Some(gap) = self.evidence_gap(s, at) {
            self.emit_in(s, MembershipEvent::Resumed { gap }).await?;
        }
        self.alive(s, at, revives);
        Ok(())
    }

    /// Liveness evidence at `at`: the gap before it, if longer than the
    /// self-eviction gap. Then this process was frozen or starved long
    /// enough for the peers to evict it (issue 11): the agent must read
    /// whatever was delivered before (its eviction, if any) and wait a
    /// little for an eviction decided just before, before renewing.
    fn evidence_gap(&self, s: &mut Session, at: Instant) -> Option<Duration> {
        // Evidence the process thread published while this thread was held
        // in a corosync call counts too.
        let vouched = self
            .alive
            .borrow()
            .map(|a| a.at)
            .filter(|at| *at >= s.since);
        if let Some(v) = vouched {
            s.gap.note(v);
        }
        s.gap.at(at)
    }

    /// Tells the agent it has lost the engine (it releases everything) and
    /// delivers nothing more until the thaw or a reconnection (after too
    /// long an evidence gap the group sees us leave and come back, immature).
    async fn report_lost(&mut self, s: &mut Session, reason: String) -> Result<(), End> {
        tracing::warn!("{reason}");
        s.tracker.frozen();
        s.watchdog.reset();
        self.queue.clear();
        self.emit_in(s, MembershipEvent::Lost { reason }).await
    }

    async fn serve(&mut self, conn: Conn) -> End {
        let (deadline, stall_limit, takeover_floor) = self.watchdog_limits(&conn);
        tracing::debug!(
            "corosync group {}: watchdog deadline {deadline:?}, stall limit {stall_limit:?}, takeover floor {takeover_floor:?}",
            self.opts.group
        );
        // Probes renew the agent's lease: often enough for it (see
        // `tracker::probe_interval`), whatever the configured period.
        let interval =
            tracker::probe_interval(self.opts.watchdog_interval, takeover_floor, deadline);
        match self.opts.watchdog_interval {
            Some(configured) if interval < configured => tracing::info!(
                "corosync group {}: watchdog probes every {interval:?} (configured {configured:?}): three per fencing lease",
                self.opts.group,
            ),
            Some(_) => {}
            None => tracing::debug!(
                "corosync group {}: watchdog probes every {interval:?} (auto)",
                self.opts.group
            ),
        }
        if conn.corosync_pid.is_none() {
            tracing::warn!(
                "corosync group {}: corosync's process is not visible here (another pid namespace?): \
                 while it synchronises after a view change (it answers no IPC then) this node may \
                 release its VIFs as if corosync were frozen",
                self.opts.group
            );
        }
        let vouch = Vouch {
            alive: self.alive.clone(),
            takeover_floor,
            stall_limit,
        };
        let liveness = match Liveness::start(interval, conn.corosync_pid, vouch) {
            Ok(l) => l,
            Err(e) => return self.lost(e),
        };
        let mut s = Session {
            tracker: {
                let mut t = Tracker::new(conn.me, conn.ring);
                if self.opts.require_quorum {
                    t.track_quorum();
                }
                t
            },
            watchdog: Watchdog::new(deadline),
            stall_limit,
            liveness,
            takeover_floor,
            interval,
            since: Instant::now(),
            gap: EvidenceGap::new(crate::daemon::lease::self_evict_gap(takeover_floor)),
            heard: PendingHeard::default(),
            conn,
            retry_at: None,
            send_pause: Duration::from_millis(1),
        };
        if !s.conn.quorate {
            s.tracker.quorate(false, s.conn.ring);
            let reason = format!("corosync group {}: partition not quorate", self.opts.group);
            if self.emit(MembershipEvent::Lost { reason }).await.is_err() {
                return End::Shutdown;
            }
        }
        let tick = sleep_until(tracker::next_probe_at(Instant::now(), wall_ns(), interval));
        tokio::pin!(tick);
        loop {
            let retry_at = s.retry_at;
            // Unbiased: a busy CPG descriptor must not starve the watchdog
            // tick or the agent's requests.
            let step = tokio::select! {
                r = s.conn.cpg_ready() => match r {
                    Ok(raws) => self.handle(&mut s, raws).await,
                    Err(e) => Err(self.lost(e)),
                },
                r = s.conn.quorum_ready() => match r {
                    Ok(raws) => self.handle(&mut s, raws).await,
                    Err(e) => Err(self.lost(e)),
                },
                _ = &mut tick => {
                    let r = self.on_tick(&mut s).await;
                    let next = tracker::next_probe_at(Instant::now(), wall_ns(), interval);
                    tick.as_mut().reset(next);
                    r
                }
                _ = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    s.retry_at = None;
                    self.flush(&mut s)
                }
                m = self.outgoing.recv(), if self.queue.len() < MAX_QUEUE => {
                    self.on_request(&mut s, m).await
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Feeds callbacks to the tracker and forwards its events.
    async fn handle(&mut self, s: &mut Session, raws: Vec<Raw>) -> Result<(), End> {
        let mut thawed = false;
        for raw in raws {
            tracing::trace!(group = %self.opts.group, ?raw, "callback");
            let events = match raw {
                Raw::Deliver { sender, msg } => {
                    let prober = s.tracker.prober(sender, &msg);
                    let (mut events, probe) = s.tracker.deliver(sender, &msg);
                    let now = Instant::now();
                    if let Some(seq) = probe {
                        s.liveness.probe_back();
                        let sent = s.watchdog.returned(seq);
                        // Not while frozen or left: the thaw reconnects first.
                        // Counted from the sending: a probe sent before a
                        // freeze and delivered after it proves nothing now.
                        if let (true, false, Some(sent)) =
                            (self.joined, s.tracker.is_frozen(), sent)
                        {
                            self.evidence(s, Instant::from_std(sent), true).await?;
                        }
                        if s.tracker.thawed() {
                            thawed = true;
                        }
                    }
                    if let Some(member) = prober.filter(|_| !thawed) {
                        // A peer's probe waits for the next event (mine
                        // comes every period): one wakeup of the agent per
                        // period instead of one per member.
                        if sender == s.tracker.me() {
                            events.push(MembershipEvent::Heard { member, at: now });
                        } else {
                            s.heard.note(member, now);
                        }
                    }
                    events
                }
                Raw::Confchg {
                    members,
                    ring_change,
                    departed,
                } => {
                    let mut events = s.tracker.departed(&departed);
                    events.extend(s.tracker.confchg(members, ring_change));
                    events
                }
                Raw::Totem { ring } => {
                    tracing::debug!(group = %self.opts.group, ?ring, "totem ring");
                    s.tracker.totem(ring)
                }
                Raw::Quorum { quorate, ring } => {
                    tracing::debug!(group = %self.opts.group, quorate, ?ring, "quorum notification");
                    if !quorate && s.tracker.current().is_some() {
                        let reason =
                            format!("corosync group {}: partition not quorate", self.opts.group);
                        self.emit_in(s, MembershipEvent::Lost { reason }).await?;
                    }
                    s.tracker.quorate(quorate, ring)
                }
                Raw::Nodelist { .. } => Vec::new(),
            };
            for ev in events {
                self.emit_in(s, ev).await?;
            }
        }
        if thawed {
            // A fresh connection: corosync 3.1 cannot re-join a group on the
            // same connection after cpg_leave (its confchg code never resets
            // the leaver's state), and closing it makes every member, us
            // included, see a fresh view once we are back.
            tracing::info!(
                "corosync group {}: watchdog probe back, reconnecting for a fresh view",
                self.opts.group
            );
            return Err(End::Reconnect);
        }
        Ok(())
    }

    async fn on_tick(&mut self, s: &mut Session) -> Result<(), End> {
        // Also catches a wakeup the edge-triggered poll might have missed.
        match s.conn.dispatch_cpg() {
            Ok(raws) => self.handle(s, raws).await?,
            Err(e) => return Err(self.lost(e)),
        }
        if !self.joined {
            return Ok(());
        }
        let now = std::time::Instant::now();
        if s.watchdog.stalled(now).is_some() {
            s.liveness.stalled();
        }
        if !s.tracker.is_frozen() {
            if let Some(reason) = self.watchdog_verdict(s, now) {
                self.report_lost(s, reason).await?;
            }
        }
        // A ring re-forming moves no probe: corosync answering IPC is the
        // evidence meanwhile (a frozen corosync does not answer).
        if !s.tracker.is_frozen()
            && tracker::ipc_counts(s.watchdog.stalled(now), s.interval, s.stall_limit)
        {
            if let Some(at) = Instant::now().checked_sub(s.liveness.silent_for()) {
                self.evidence(s, at, false).await?;
            }
        }
        if let Some(seq) = s.watchdog.probe(now) {
            match s.liveness.in_call(|| s.conn.mcast(&encode_watchdog(seq))) {
                Ok(()) => s.watchdog.accepted(),
                Err(CsError::CsErrTryAgain) => s.watchdog.unsent(seq),
                Err(err) => {
                    return Err(self.lost(CallError {
                        call: "cpg_mcast_joined (watchdog)",
                        err,
                    }))
                }
            }
        }
        Ok(())
    }

    /// Why the watchdog trips now, if it does.
    fn watchdog_verdict(&self, s: &Session, now: std::time::Instant) -> Option<String> {
        let group = &self.opts.group;
        let trip = tracker::verdict(
            s.watchdog.overdue(now),
            s.liveness.silent_for(),
            s.watchdog.deadline(),
            s.stall_limit,
        )?;
        Some(match trip {
            Trip::Frozen { late, silent } => format!(
                "corosync group {group}: watchdog: own message not back after {late:?} and corosync silent on IPC for {silent:?} (frozen?)"
            ),
            Trip::Stalled { late } => format!(
                "corosync group {group}: watchdog: own message not back after {late:?}, over the stall limit {:?} (ring stuck or corosync starved)",
                s.stall_limit
            ),
        })
    }

    async fn on_request(&mut self, s: &mut Session, m: Option<Outgoing>) -> Result<(), End> {
        let group = self.opts.group.clone();
        match m {
            None | Some(Outgoing::Shutdown) => {
                if self.joined && !s.tracker.is_frozen() {
                    let _ = self.flush(s);
                    let _ = s.conn.leave_group(&group).await;
                }
                Err(End::Shutdown)
            }
            Some(Outgoing::Send(payload)) => {
                // Nothing is sent outside a view (left, frozen, not quorate).
                if self.joined && s.tracker.current().is_some() {
                    self.queue.push_back(encode_app(&payload));
                    self.flush(s)?;
                }
                Ok(())
            }
            Some(Outgoing::Leave) => {
                if self.joined {
                    let _ = self.flush(s);
                    self.queue.clear();
                    self.joined = false;
                    s.watchdog.reset();
                    s.conn.leave_group(&group).await.map_err(|e| self.lost(e))?;
                }
                Ok(())
            }
            Some(Outgoing::Join) => {
                if self.joined {
                    return Ok(());
                }
                self.joined = true;
                // After a cpg_leave, corosync 3.1 only lets a new connection join.
                Err(End::Reconnect)
            }
        }
    }

    /// Hands queued messages to corosync in order until it pushes back.
    fn flush(&mut self, s: &mut Session) -> Result<(), End> {
        if s.retry_at.is_some() {
            return Ok(());
        }
        while let Some(msg) = self.queue.front() {
            match s.liveness.in_call(|| s.conn.mcast(msg)) {
                Ok(()) => {
                    self.queue.pop_front();
                    s.send_pause = Duration::from_millis(1);
                }
                Err(CsError::CsErrTryAgain) => {
                    s.retry_at = Some(Instant::now() + s.send_pause);
                    s.send_pause = (s.send_pause * 2).min(Duration::from_millis(50));
                    return Ok(());
                }
                Err(err @ (CsError::CsErrLibrary | CsError::CsErrBadHandle)) => {
                    return Err(self.lost(CallError {
                        call: "cpg_mcast_joined",
                        err,
                    }))
                }
                Err(err) => {
                    // This message cannot be sent (too big, not joined): drop
                    // it rather than the connection.
                    tracing::warn!(
                        "corosync group {}: cpg_mcast_joined of {} bytes: {err}; message dropped",
                        self.opts.group,
                        msg.len()
                    );
                    self.queue.pop_front();
                }
            }
        }
        Ok(())
    }
}

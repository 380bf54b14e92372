//! Corosync 3 CPG engine.
//!
//! Runs on its own thread with a current-thread tokio runtime: the CPG
//! descriptor is polled with [`tokio::io::unix::AsyncFd`] and dispatched when
//! readable; the thread is spawned by [`start`], so it inherits the caller's
//! network namespace and talks to that namespace's corosync (libqb's IPC
//! servers are found through abstract unix sockets, which are per namespace).
//!
//! - Messages are sent `CPG_TYPE_AGREED` with a one-byte tag (application or
//!   watchdog probe, see [`tracker`]); `CS_ERR_TRY_AGAIN` is retried with
//!   backoff, keeping the order.
//! - Members are CPG processes (nodeid, pid), delivered sorted; ids are
//!   `n<nodeid>p<pid>` zero-padded so the strings sort the same way.
//! - Views, transitional signals and view ids: see [`tracker`].
//! - Watchdog: every `watchdog_interval` the engine sends itself an agreed
//!   probe, and a helper thread checks that corosync answers local IPC (a
//!   cmap read). [`MembershipEvent::Lost`] is reported when a probe is late
//!   by the freeze deadline (200 ms fast profile) while corosync has not answered IPC for
//!   as long (frozen: SIGSTOP, hung), or late by the stall limit although it
//!   answers (a ring that does not re-form, starvation). The two-level rule
//!   is needed because no agreed message moves anywhere while totem
//!   re-forms the ring (about token + consensus: 0.1 s fast profile, 8 s
//!   default): a single short deadline would make every survivor report
//!   `Lost` on every failure, a long one would let a frozen node keep its
//!   addresses after the others took them over. After `Lost` nothing is
//!   delivered until a probe comes back; then the engine reconnects
//!   (closing the connection makes the others see us leave, the new one
//!   joins), so that every member, us included, sees a fresh view.
//! - Operator `Leave` is `cpg_leave`; `Join` opens a new connection, because
//!   corosync 3.1 refuses a second `cpg_join` on a connection that left.
//! - A dispatch error (corosync died) is reported as `Lost`; the engine then
//!   reconnects with exponential backoff and re-joins; its first view follows.
//! - `require_quorum`: while the partition is not quorate (votequorum) the
//!   agent gets `Lost { reason: "... not quorate" }` and nothing else; when
//!   quorum returns, the current view is delivered again (after a
//!   `Transitional`). Off by default.

//!
//! The CPG connection and the engine ([`start`]) need the cargo feature
//! `corosync` (it links libcpg, libquorum and libcmap). Without it the options
//! and the pure [`tracker`] still build, and [`start`] fails saying how to
//! get a binary with Corosync support.

#[cfg(feature = "corosync")]
mod conn;
#[cfg(feature = "corosync")]
mod engine;
#[cfg(feature = "corosync")]
pub mod ghost;
pub mod tracker;

#[cfg(feature = "corosync")]
pub use engine::start;

use anyhow::{bail, Result};
use std::time::Duration;

/// Settings of the Corosync engine.
#[derive(Clone, Debug)]
pub struct CorosyncOptions {
    /// CPG group name (at most 127 bytes).
    pub group: String,
    /// How often the engine sends itself a watchdog probe (never less often
    /// than three per fencing lease); `None`: derived from the freeze
    /// deadline and the takeover floor ([`tracker::probe_interval`]).
    pub watchdog_interval: Option<Duration>,
    /// Frozen corosync: `Lost` when a probe is this late *and* corosync has
    /// not answered local IPC for as long. Must stay well below the ring's
    /// failure detection time, so that a frozen node lets go of its
    /// addresses before the others take them over, and above the hiccups a
    /// loaded host gives corosync ("main process was not scheduled for N ms"
    /// in its log; 200+ ms seen on 2 shared cores). `None` (the default):
    /// `max(200 ms, token / 2)` from the running corosync (200 ms with the
    /// LAN-fast profile, 1.8 s with corosync's defaults on 3 nodes, whose
    /// failure detection takes 8 s).
    pub watchdog_deadline: Option<Duration>,
    /// Stalled ring: `Lost` when a probe is this late although corosync is
    /// still alive (answers IPC, or its process runs). While totem re-forms
    /// the ring after a failure, no agreed message moves anywhere for about
    /// token + consensus, then corosync synchronises (and answers no IPC);
    /// that must not count as a loss at the survivors. `None` (the default)
    /// derives it from the running corosync's
    /// `runtime.config.totem.{token,consensus}` at each connection:
    /// `2 x (token + consensus) + 200 ms`, at least 3 s (3 s with the
    /// LAN-fast profile, ~16 s with corosync's defaults on 3 nodes).
    pub watchdog_stall_limit: Option<Duration>,
    /// First pause before reconnecting to a lost corosync.
    pub reconnect_min: Duration,
    /// Longest pause between reconnect attempts.
    pub reconnect_max: Duration,
    /// Report `Lost` while the partition is not quorate (votequorum).
    pub require_quorum: bool,
}

impl CorosyncOptions {
    /// Defaults: 20 ms probes, freeze deadline and stall limit from
    /// corosync's totem timers, reconnect 100 ms .. 2 s, no quorum.
    pub fn new(group: impl Into<String>) -> Self {
        CorosyncOptions {
            group: group.into(),
            watchdog_interval: None,
            watchdog_deadline: None,
            watchdog_stall_limit: None,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            require_quorum: false,
        }
    }

    fn validate(&self) -> Result<()> {
        let g = &self.group;
        if g.is_empty() || g.len() > 127 {
            bail!("corosync: group name {g:?} must be 1..=127 bytes");
        }
        if let Some(interval) = self
            .watchdog_interval
            .filter(|i| i.is_zero() || self.watchdog_deadline.is_some_and(|d| d <= *i))
        {
            bail!(
                "corosync group {g}: watchdog interval ({:?}) must be > 0 and below the deadline ({:?})",
                interval,
                self.watchdog_deadline
            );
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            bail!("corosync group {g}: reconnect backoff must satisfy 0 < min <= max");
        }
        Ok(())
    }
}

/// Without the `corosync` feature: checks the options, then refuses with a
/// clear error (the agent cannot use Corosync in this build).
#[cfg(not(feature = "corosync"))]
pub async fn start(opts: CorosyncOptions) -> Result<crate::membership::MembershipHandle> {
    opts.validate()?;
    bail!(
        "corosync group {}: this binary was built without Corosync support \
         (cargo feature `corosync`); build it with `cargo xtask build`, or choose \
         engine = \"spread\"",
        opts.group
    )
}

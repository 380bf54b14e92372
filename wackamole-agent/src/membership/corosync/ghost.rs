//! A ghost of this process in the group, and how to lay it.
//!
//! Corosync 3.1 sends a closed connection's leave from `cpg_lib_exit_fn`
//! and ignores the multicast's result, so the leave is lost when its totem
//! queue is full (seen under heavy loss on a node's link). Its sync never
//! removes a stale entry of the local node either
//! (`joinlist_remove_zombie_pi_entries` skips it). The group then lists
//! this process forever, and every `cpg_join` of the same pid answers "try
//! again" (`message_handler_req_lib_cpg_join`: "there may be not yet
//! delivered leave of client"): the agent could never rejoin until it is
//! restarted.
//!
//! CPG takes a leave's group and pid from the request, and only needs the
//! connection to have joined some group. So a side connection joined to a
//! group of its own sends the missing leave. A second side connection then
//! joins a second side group: corosync orders one node's messages, so once
//! that join is delivered the leave has been too, and a join of the real
//! group can no longer be overtaken by it. The first side connection, whose
//! state is now "leave started", closes without a leave of its side group:
//! each repair leaves one stale entry in a side group nobody else joins
//! (`<group>~<pid>.<n>`, a few bytes in corosync).

use super::conn::{call, CallError};
use rust_corosync::{cpg, CsError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// How long a side connection may take to join, or the leave to arrive.
const STEP_BUDGET: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// Side groups made so far by this process (part of their names).
static SIDE_GROUPS: AtomicU32 = AtomicU32::new(0);

/// A connection with no callbacks: it is never dispatched.
pub fn side_connection() -> Result<cpg::Handle, CallError> {
    let model = cpg::ModelData::ModelV1(cpg::Model1Data {
        flags: cpg::Model1Flags::None,
        deliver_fn: None,
        confchg_fn: None,
        totem_confchg_fn: None,
    });
    call("cpg_initialize (side)", cpg::initialize(&model, 0))
}

/// Whether corosync lists this process in `group`.
pub fn listed(h: &cpg::Handle, group: &str) -> Result<bool, CallError> {
    let node = call("cpg_local_get", cpg::local_get(h))?;
    let pid = std::process::id();
    let members = call("cpg_membership_get", cpg::membership_get(h, group))?;
    Ok(members.iter().any(|a| a.nodeid == node && a.pid == pid))
}

/// Polls until `listed` is `want` (at most [`STEP_BUDGET`]).
async fn until_listed(
    h: &cpg::Handle,
    group: &str,
    want: bool,
    what: &'static str,
) -> Result<(), CallError> {
    let start = Instant::now();
    loop {
        if listed(h, group)? == want {
            return Ok(());
        }
        if start.elapsed() > STEP_BUDGET {
            return Err(CallError {
                call: what,
                err: CsError::CsErrTimeout,
            });
        }
        sleep(POLL).await;
    }
}

/// Calls `f` while corosync answers "try again" or "busy" (at most
/// [`STEP_BUDGET`]).
async fn patiently(
    what: &'static str,
    mut f: impl FnMut() -> Result<(), CsError>,
) -> Result<(), CallError> {
    let start = Instant::now();
    loop {
        match f() {
            Err(CsError::CsErrTryAgain | CsError::CsErrBusy) if start.elapsed() < STEP_BUDGET => {
                sleep(POLL).await
            }
            r => return call(what, r),
        }
    }
}

/// A group of its own for a side connection; joined once it is listed.
async fn join_side_group(group: &str) -> Result<(cpg::Handle, String), CallError> {
    let n = SIDE_GROUPS.fetch_add(1, Ordering::Relaxed);
    // CPG names hold at most 127 bytes.
    let prefix: String = group.chars().take(96).collect();
    let side = format!("{prefix}~{}.{n}", std::process::id());
    let h = side_connection()?;
    patiently("cpg_join (side)", || cpg::join(&h, &side)).await?;
    until_listed(&h, &side, true, "cpg_join (side): not delivered").await?;
    Ok((h, side))
}

/// Sends the leave of this process from `group` that corosync lost, and
/// returns once it has been delivered (see the module docs). Returns false
/// if the group did not list this process (nothing to do).
pub async fn lay(group: &str) -> Result<bool, CallError> {
    let (sender, _) = join_side_group(group).await?;
    if !listed(&sender, group)? {
        return Ok(false);
    }
    patiently("cpg_leave (for the ghost)", || cpg::leave(&sender, group)).await?;
    // The barrier: a later message of this node, delivered.
    let (barrier, side) = join_side_group(group).await?;
    let _ = cpg::leave(&barrier, &side);
    until_listed(&barrier, group, false, "ghost still listed after its leave").await?;
    Ok(true)
}

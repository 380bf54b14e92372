//! Hook executables run on VIF transitions, off the daemon's critical path.
//!
//! - `on_up` / `on_down`: once per VIF acquired / released (after its
//!   addresses are up / gone), with `WACKAMOLE_EVENT` (`up`/`down`),
//!   `WACKAMOLE_VIF`, `WACKAMOLE_ADDRESSES` (space-separated `ip/prefix`),
//!   `WACKAMOLE_NODE`; argv is `[event, "--", vif]` (a VIF name may start
//!   with `-`: the `--` keeps it from reading as an option).
//! - `post_up` / `post_down`: once per allocation round that acquired /
//!   released something, with `WACKAMOLE_EVENT` (`post_up`/`post_down`),
//!   `WACKAMOLE_VIFS` (space-separated names) and `WACKAMOLE_NODE`.
//!
//! The environment is exactly those variables plus a fixed `PATH`: nothing of
//! the agent's own (not `NOTIFY_SOCKET`, which would let a hook speak for the
//! agent to systemd, nor anything a unit file passed the agent).
//!
//! [`HookRunner::fire`] only queues: one worker task runs the hooks in the
//! order fired (so a VIF's `up` never overtakes its earlier `down`), each
//! bounded by a timeout after which the hook's whole process group is
//! killed. Failures are logged and reported, never propagated. A reload
//! changes the hooks of that same worker ([`HookRunner::reconfigure`]), so
//! the order holds across it. The queue holds [`QUEUE_LIMIT`] events: past
//! that (hooks far slower than the transitions) new events are dropped,
//! logged and counted ([`HookRunner::dropped`]) rather than letting memory
//! grow without bound; the daemon's state never waits for a hook.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

/// Hook paths (`None`: not configured) and the per-hook timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookConfig {
    pub on_up: Option<PathBuf>,
    pub on_down: Option<PathBuf>,
    pub post_up: Option<PathBuf>,
    pub post_down: Option<PathBuf>,
    pub timeout: Duration,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            on_up: None,
            on_down: None,
            post_up: None,
            post_down: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What happened, for the hook to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    /// This node acquired `vif` with these `ip/prefix` addresses.
    Up { vif: String, addresses: Vec<String> },
    /// This node released `vif`.
    Down { vif: String, addresses: Vec<String> },
    /// End of a round that acquired these VIFs.
    PostUp { vifs: Vec<String> },
    /// End of a round that released these VIFs.
    PostDown { vifs: Vec<String> },
}

impl HookEvent {
    /// `up`, `down`, `post_up` or `post_down`.
    pub fn name(&self) -> &'static str {
        match self {
            HookEvent::Up { .. } => "up",
            HookEvent::Down { .. } => "down",
            HookEvent::PostUp { .. } => "post_up",
            HookEvent::PostDown { .. } => "post_down",
        }
    }

    fn hook<'c>(&self, c: &'c HookConfig) -> Option<&'c Path> {
        match self {
            HookEvent::Up { .. } => c.on_up.as_deref(),
            HookEvent::Down { .. } => c.on_down.as_deref(),
            HookEvent::PostUp { .. } => c.post_up.as_deref(),
            HookEvent::PostDown { .. } => c.post_down.as_deref(),
        }
    }

    /// Arguments and environment for the hook process.
    fn args_env(&self, node: &str) -> (Vec<String>, Vec<(&'static str, String)>) {
        let mut env = vec![
            ("WACKAMOLE_EVENT", self.name().to_string()),
            ("WACKAMOLE_NODE", node.to_string()),
        ];
        let mut args = vec![self.name().to_string()];
        match self {
            HookEvent::Up { vif, addresses } | HookEvent::Down { vif, addresses } => {
                env.push(("WACKAMOLE_VIF", vif.clone()));
                env.push(("WACKAMOLE_ADDRESSES", addresses.join(" ")));
                args.push("--".to_string());
                args.push(vif.clone());
            }
            HookEvent::PostUp { vifs } | HookEvent::PostDown { vifs } => {
                env.push(("WACKAMOLE_VIFS", vifs.join(" ")));
            }
        }
        (args, env)
    }
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// No hook configured for this event.
    NotConfigured,
    /// Exit status 0.
    Succeeded,
    /// Non-zero exit (`code`) or killed by a signal (`signal`).
    Failed {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Ran past the timeout; its process group was killed.
    TimedOut,
    /// Could not be started (missing, not executable, ...).
    SpawnFailed(String),
    /// Not run: the queue already held [`QUEUE_LIMIT`] events.
    Dropped,
}

/// The full record of one hook run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReport {
    pub event: &'static str,
    pub hook: Option<PathBuf>,
    pub outcome: HookOutcome,
    /// The start of its stdout and stderr (at most [`OUTPUT_LIMIT`] bytes each).
    pub output: String,
    pub took: Duration,
}

/// Hook output kept for the log, per stream.
pub const OUTPUT_LIMIT: usize = 4096;

/// Events the queue holds: room for a burst of up and down events for every
/// address the XDP map holds, with their post hooks.
pub const QUEUE_LIMIT: usize = 2 * wackamole_common::MAX_VIPS as usize + 16;

/// The only `PATH` a hook sees.
pub const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

type Queued = (HookEvent, oneshot::Sender<HookReport>);

/// Runs hooks one after another on a background task.
#[derive(Debug, Clone)]
pub struct HookRunner {
    tx: mpsc::Sender<Queued>,
    config: Arc<Mutex<HookConfig>>,
    dropped: Arc<AtomicU64>,
}

impl HookRunner {
    /// Starts the worker on the current tokio runtime. `node` is this node's
    /// name (`WACKAMOLE_NODE`).
    pub fn start(config: HookConfig, node: impl Into<String>) -> Self {
        let node = node.into();
        let (tx, mut rx) = mpsc::channel::<Queued>(QUEUE_LIMIT);
        let config = Arc::new(Mutex::new(config));
        let current = config.clone();
        tokio::spawn(async move {
            while let Some((event, done)) = rx.recv().await {
                // Each event runs with the hooks configured when it starts.
                let config = match current.lock() {
                    Ok(c) => c.clone(),
                    Err(poisoned) => poisoned.into_inner().clone(),
                };
                let report = run_event(&config, &node, &event).await;
                log_report(&event, &report);
                let _ = done.send(report);
            }
        });
        HookRunner {
            tx,
            config,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Replaces the hooks and timeout (a reload). Events already queued keep
    /// their place and run with the new configuration.
    pub fn reconfigure(&self, config: HookConfig) {
        match self.config.lock() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `event` and returns at once; the receiver yields the report
    /// (drop it if you do not care). A full queue drops the event (logged,
    /// counted, reported as [`HookOutcome::Dropped`]).
    pub fn fire(&self, event: HookEvent) -> oneshot::Receiver<HookReport> {
        let (done, rx) = oneshot::channel();
        let report = |event: &HookEvent, outcome| HookReport {
            event: event.name(),
            hook: None,
            outcome,
            output: String::new(),
            took: Duration::ZERO,
        };
        match self.tx.try_send((event, done)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((event, done))) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Once per power of two: a stuck hook must not flood the log.
                if n.is_power_of_two() {
                    tracing::warn!(
                        event = event.name(),
                        ?event,
                        dropped = n,
                        "hook queue full ({QUEUE_LIMIT} events): hook not run"
                    );
                }
                let _ = done.send(report(&event, HookOutcome::Dropped));
            }
            Err(mpsc::error::TrySendError::Closed((event, done))) => {
                let _ = done.send(report(
                    &event,
                    HookOutcome::SpawnFailed("hook runner stopped".into()),
                ));
            }
        }
        rx
    }
}

fn log_report(event: &HookEvent, r: &HookReport) {
    let hook = r
        .hook
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match &r.outcome {
        HookOutcome::NotConfigured => {}
        HookOutcome::Succeeded => {
            tracing::debug!(hook, event = r.event, took = ?r.took, output = %r.output, "hook succeeded")
        }
        other => tracing::warn!(
            hook, event = r.event, ?event, took = ?r.took, outcome = ?other, output = %r.output,
            "hook failed"
        ),
    }
}

/// Runs the hook configured for `event` (if any) to completion or timeout.
pub async fn run_event(config: &HookConfig, node: &str, event: &HookEvent) -> HookReport {
    let Some(hook) = event.hook(config) else {
        return HookReport {
            event: event.name(),
            hook: None,
            outcome: HookOutcome::NotConfigured,
            output: String::new(),
            took: Duration::ZERO,
        };
    };
    let (args, env) = event.args_env(node);
    let t0 = Instant::now();
    let (outcome, output) = run(hook, &args, &env, config.timeout).await;
    HookReport {
        event: event.name(),
        hook: Some(hook.to_path_buf()),
        outcome,
        output,
        took: t0.elapsed(),
    }
}

/// Runs `hook args...` with exactly `env` and [`HOOK_PATH`], killing its process group after
/// `timeout`. Returns the outcome and the start of its output.
pub async fn run(
    hook: &Path,
    args: &[String],
    env: &[(&str, String)],
    timeout: Duration,
) -> (HookOutcome, String) {
    let mut child = match spawn(hook, args, env).await {
        Ok(c) => c,
        Err(e) => {
            return (
                HookOutcome::SpawnFailed(format!("{}: {e}", hook.display())),
                String::new(),
            )
        }
    };
    let stdout = child.stdout.take().map(|s| tokio::spawn(read_limited(s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_limited(s)));
    let outcome = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => HookOutcome::Succeeded,
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            HookOutcome::Failed {
                code: status.code(),
                signal: status.signal(),
            }
        }
        Ok(Err(e)) => HookOutcome::SpawnFailed(format!("{}: waiting: {e}", hook.display())),
        Err(_) => {
            if let Some(pid) = child.id() {
                // The hook leads its own process group: take its children too.
                // SAFETY: plain kill(2) on a process group we created.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
            let _ = child.kill().await;
            HookOutcome::TimedOut
        }
    };
    // Output of a hook that left a background child holding the pipe may
    // never end: collect briefly, then give up.
    let mut output = String::new();
    for (name, task) in [("stdout", stdout), ("stderr", stderr)] {
        let Some(mut task) = task else { continue };
        let text = match tokio::time::timeout(Duration::from_millis(200), &mut task).await {
            Ok(Ok(t)) => t,
            _ => {
                task.abort();
                String::new()
            }
        };
        if !text.trim().is_empty() {
            output += &format!("[{name}] {}\n", text.trim_end());
        }
    }
    (outcome, output)
}

async fn spawn(
    hook: &Path,
    args: &[String],
    env: &[(&str, String)],
) -> io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        let mut cmd = Command::new(hook);
        cmd.args(args)
            .env_clear()
            .env("PATH", HOOK_PATH)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        match cmd.spawn() {
            // The script is being written right now (or another thread's
            // fork still holds it open for writing): try again shortly.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

async fn read_limited(mut r: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    // Keep reading (and discarding past the limit) so the hook never blocks on a full pipe.
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = OUTPUT_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_per_event() {
        let up = HookEvent::Up {
            vif: "web".into(),
            addresses: vec!["192.0.2.10/24".into(), "192.0.2.11/24".into()],
        };
        let (args, env) = up.args_env("n1");
        assert_eq!(args, ["up", "--", "web"]);
        assert!(env.contains(&("WACKAMOLE_ADDRESSES", "192.0.2.10/24 192.0.2.11/24".into())));
        assert!(env.contains(&("WACKAMOLE_NODE", "n1".into())));
        let post = HookEvent::PostDown {
            vifs: vec!["a".into(), "b".into()],
        };
        let (args, env) = post.args_env("n1");
        assert_eq!(args, ["post_down"]);
        assert!(env.contains(&("WACKAMOLE_VIFS", "a b".into())));
        assert!(env.contains(&("WACKAMOLE_EVENT", "post_down".into())));
    }
}

//! The Spread engine against two real Spread 4.4 daemons, each in its own
//! network namespace (joined by a veth pair), one engine per namespace.
//!
//! Runs only when `WACKAMOLE_SPREAD_DAEMON` names a spread daemon binary
//! (and we are root); otherwise it says why it was skipped and passes.
//! Checks: both engines see the same views (same id, same member order),
//! the same agreed messages in the same order from two concurrent senders,
//! and killing one daemon gives the survivor a transitional signal and a new
//! one-member view while the other engine reports `Lost`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::time::timeout;
use wackamole::membership::spread::{start, SpreadOptions};
use wackamole::membership::{MemberId, MembershipEvent, MembershipHandle, Outgoing, View};
use wackamole::testbed::{is_root, veth_pair, Netns};

const GROUP: &str = "wkt";
const PER_SENDER: usize = 200;
/// Guards against hangs only; the daemons answer within a few seconds.
const PHASE_LIMIT: Duration = Duration::from_secs(30);

/// The LAN-fast profile of PROTOCOL.md section 14.3 (all nine or none).
const LAN_FAST: &str = "TokenTimeout = 500
HurryTimeout = 200
AliveTimeout = 100
JoinTimeout = 100
RepTimeout = 250
SegTimeout = 200
GatherTimeout = 500
FormTimeout = 500
LookupTimeout = 30000
";

#[test]
fn two_daemons_two_engines() {
    let Some(daemon) = std::env::var_os("WACKAMOLE_SPREAD_DAEMON") else {
        println!("spread_live skipped: WACKAMOLE_SPREAD_DAEMON is not set (path of a Spread 4.4 daemon binary)");
        return;
    };
    if !is_root() {
        println!("spread_live skipped: needs root for network namespaces");
        return;
    }
    let daemon = PathBuf::from(daemon);
    if let Err(e) = run(&daemon) {
        panic!("spread live test: {e:#}");
    }
}

/// A private working directory, removed on drop.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one engine saw.
#[derive(Debug)]
struct Report {
    me: MemberId,
    pair_view: View,
    messages: Vec<(MemberId, Vec<u8>)>,
    /// Survivor: the view after the crash; the other side: None (it got Lost).
    after_kill: Option<View>,
    /// Time from the kill to that view.
    detect: Option<Duration>,
}

fn run(daemon: &Path) -> Result<()> {
    // A port of our own: the daemons also create /tmp/<port> (shared file system).
    let port = 20_000 + (std::process::id() % 10_000) as u16 * 2;
    let a = Netns::new("spa")?;
    let b = Netns::new("spb")?;
    veth_pair(&a, "spa0", &b, "spb0")?;
    a.run(&[
        "ip",
        "addr",
        "add",
        "10.97.0.1/24",
        "brd",
        "10.97.0.255",
        "dev",
        "spa0",
    ])?;
    b.run(&[
        "ip",
        "addr",
        "add",
        "10.97.0.2/24",
        "brd",
        "10.97.0.255",
        "dev",
        "spb0",
    ])?;

    let work = WorkDir(std::env::temp_dir().join(format!("wkt-spread-{}", std::process::id())));
    let conf = format!(
        "Spread_Segment 10.97.0.255:{port} {{\n\tsda 10.97.0.1 {{\n\t\t10.97.0.1\n\t}}\n\tsdb 10.97.0.2 {{\n\t\t10.97.0.2\n\t}}\n}}\n{LAN_FAST}"
    );
    let start_daemon = |ns: &Netns, name: &str| -> Result<wackamole::testbed::NsChild> {
        let dir = work.0.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf_path = dir.join("spread.conf");
        std::fs::write(&conf_path, &conf)
            .with_context(|| format!("writing {}", conf_path.display()))?;
        let log = std::fs::File::create(dir.join("daemon.log"))?;
        let mut cmd = ns.command("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(daemon)
            .args(["-n", name, "-c"])
            .arg(&conf_path)
            .current_dir(&dir)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        ns.spawn(&mut cmd)
    };
    // Both daemons (re)create the Unix socket /tmp/<port>; start sdb first so
    // that sda, which survives, ends up owning it for the Unix-socket check.
    let socket = PathBuf::from(format!("/tmp/{port}"));
    let db = start_daemon(&b, "sdb")?;
    let first = wait_for_socket(&socket, None)?;
    let _da = start_daemon(&a, "sda")?;
    wait_for_socket(&socket, Some(first))?;

    // Parties: this thread and the two clients.
    let barrier = Arc::new(Barrier::new(3));
    let killed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let client = |ns: &'_ Netns, ip: &str, name: &str, survives: bool| {
        let endpoint = format!("{port}@{ip}");
        let name = name.to_owned();
        let phases = Phases {
            barrier: barrier.clone(),
            passed: Arc::new(AtomicUsize::new(0)),
        };
        let killed_at = killed_at.clone();
        ns.in_thread(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let r = rt.block_on(scenario(endpoint, name, survives, &phases, killed_at));
            // Keep the other parties from waiting forever after a failure.
            for _ in phases.passed.load(Ordering::SeqCst)..PHASES {
                phases.barrier.wait();
            }
            r
        })
        .with_context(|| format!("client in {}", ns.name()))?
    };
    let result = std::thread::scope(|s| -> Result<(Report, Report)> {
        let (client, na, nb) = (&client, &a, &b);
        let ta = s.spawn(move || client(na, "10.97.0.1", "ca", true));
        let tb = s.spawn(move || client(nb, "10.97.0.2", "cb", false));
        // 1: both saw the pair view, 2: both sent and received everything.
        barrier.wait();
        barrier.wait();
        *killed_at.lock().unwrap() = Some(Instant::now());
        let killed = db.signal(libc::SIGKILL);
        barrier.wait();
        killed?;
        let ra = ta
            .join()
            .map_err(|_| anyhow::anyhow!("client ca panicked"))??;
        let rb = tb
            .join()
            .map_err(|_| anyhow::anyhow!("client cb panicked"))??;
        Ok((ra, rb))
    });
    let (ra, rb) = result.inspect_err(|_| {
        for n in ["sda", "sdb"] {
            let log =
                std::fs::read_to_string(work.0.join(n).join("daemon.log")).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(15).collect();
            eprintln!(
                "--- {n} log tail ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    })?;
    // The Unix-socket transport, from this (root namespace) thread to sda.
    let unix = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(unix_session(port));
    let _ = std::fs::remove_file(&socket);
    let unix_view = unix?;

    // Same view, same order, each finds itself.
    assert_eq!(ra.pair_view.id, rb.pair_view.id, "view ids differ");
    assert_eq!(
        ra.pair_view.members, rb.pair_view.members,
        "member lists differ"
    );
    assert_eq!(ra.pair_view.members[ra.pair_view.my_index], ra.me);
    assert_eq!(rb.pair_view.members[rb.pair_view.my_index], rb.me);
    assert_ne!(ra.pair_view.my_index, rb.pair_view.my_index);
    // Same agreed order everywhere, all messages, FIFO per sender.
    assert_eq!(ra.messages.len(), 2 * PER_SENDER);
    assert_eq!(ra.messages, rb.messages, "delivery orders differ");
    for me in [&ra.me, &rb.me] {
        let mine: Vec<_> = ra
            .messages
            .iter()
            .filter(|(s, _)| s == me)
            .map(|(_, p)| p.clone())
            .collect();
        let expected: Vec<_> = (0..PER_SENDER)
            .map(|i| format!("{me}:{i}").into_bytes())
            .collect();
        assert_eq!(mine, expected, "messages of {me}");
    }
    let interleaved = ra.messages.windows(2).filter(|w| w[0].0 != w[1].0).count();
    // The survivor's new view.
    let v = ra.after_kill.as_ref().context("survivor saw no new view")?;
    assert_eq!(v.members, vec![ra.me.clone()]);
    assert_ne!(v.id, ra.pair_view.id);
    assert!(rb.after_kill.is_none());
    assert_eq!(
        unix_view.members[unix_view.my_index].0, "#cu#sda",
        "the Unix socket reached daemon sda"
    );
    println!(
        "spread_live: pair view {} {:?}; {} messages, sender switches {}; survivor view {} after {:?} (LAN-fast profile)",
        ra.pair_view.id,
        ra.pair_view.members,
        ra.messages.len(),
        interleaved,
        v.id,
        ra.detect
    );
    Ok(())
}

/// Waits until `path` exists with an inode other than `not`; returns it.
fn wait_for_socket(path: &Path, not: Option<u64>) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        if let Ok(m) = std::fs::metadata(path) {
            if Some(m.ino()) != not {
                return Ok(m.ino());
            }
        }
        if Instant::now() > deadline {
            bail!("daemon did not create {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Joins over the Unix socket `/tmp/<port>`, multicasts and receives its own
/// message; returns the view it was in.
async fn unix_session(port: u16) -> Result<View> {
    let mut opts = SpreadOptions::new(&port.to_string(), "cu", GROUP);
    opts.retry_interval = Duration::from_millis(200);
    let mut h = start(opts).await?;
    let view = loop {
        match next(&mut h, "a view over the Unix socket").await? {
            MembershipEvent::View(v) => break v,
            MembershipEvent::Lost { reason } => bail!("unix session lost: {reason}"),
            _ => {}
        }
    };
    h.outgoing
        .send(Outgoing::Send(b"via-unix".to_vec()))
        .await?;
    loop {
        if let MembershipEvent::Message { sender, payload } = next(&mut h, "my own message").await?
        {
            if sender == view.members[view.my_index] && payload == b"via-unix" {
                break;
            }
        }
    }
    h.outgoing.send(Outgoing::Shutdown).await?;
    Ok(view)
}

/// Barrier rounds: pair view seen, messages exchanged, daemon killed.
const PHASES: usize = 3;

/// The shared barrier plus how many rounds this client has passed.
struct Phases {
    barrier: Arc<Barrier>,
    passed: Arc<AtomicUsize>,
}

impl Phases {
    async fn wait(&self) {
        let b = self.barrier.clone();
        let _ = tokio::task::spawn_blocking(move || b.wait()).await;
        self.passed.fetch_add(1, Ordering::SeqCst);
    }
}

async fn next(h: &mut MembershipHandle, what: &str) -> Result<MembershipEvent> {
    match timeout(PHASE_LIMIT, h.events.recv()).await {
        Ok(Some(ev)) => Ok(ev),
        Ok(None) => bail!("engine ended while waiting for {what}"),
        Err(_) => bail!("no event within {PHASE_LIMIT:?} while waiting for {what}"),
    }
}

async fn scenario(
    endpoint: String,
    name: String,
    survives: bool,
    phases: &Phases,
    killed_at: Arc<std::sync::Mutex<Option<Instant>>>,
) -> Result<Report> {
    let mut opts = SpreadOptions::new(&endpoint, &name, GROUP);
    opts.retry_interval = Duration::from_millis(200);
    let mut h = start(opts).await?;
    // Phase 1: wait for the view with both members (Lost while the daemon
    // starts up, or a one-member view first, are fine).
    let pair_view = loop {
        if let MembershipEvent::View(v) = next(&mut h, "the two-member view").await? {
            if v.members.len() == 2 {
                break v;
            }
        }
    };
    let me = pair_view.members[pair_view.my_index].clone();
    phases.wait().await;
    // Phase 2: both send concurrently, collect everything.
    let sender = h.outgoing.clone();
    let tag = me.clone();
    let sending = tokio::spawn(async move {
        for i in 0..PER_SENDER {
            let _ = sender
                .send(Outgoing::Send(format!("{tag}:{i}").into_bytes()))
                .await;
            // Paced so that the two senders' streams overlap in time.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut messages = Vec::new();
    while messages.len() < 2 * PER_SENDER {
        match next(&mut h, "agreed messages").await? {
            MembershipEvent::Message { sender, payload } => messages.push((sender, payload)),
            other => bail!("{me}: unexpected {other:?} during the message phase"),
        }
    }
    sending.await?;
    phases.wait().await;
    phases.wait().await;
    // Phase 3: the daemon of the other side was killed.
    let mut after_kill = None;
    let mut detect = None;
    if survives {
        let mut saw_transitional = false;
        loop {
            match next(&mut h, "the view after the crash").await? {
                MembershipEvent::Transitional => saw_transitional = true,
                MembershipEvent::View(v) => {
                    if !saw_transitional {
                        bail!("{me}: new view {v:?} without a transitional signal");
                    }
                    detect = killed_at.lock().ok().and_then(|k| k.map(|t| t.elapsed()));
                    after_kill = Some(v);
                    break;
                }
                other => bail!("{me}: unexpected {other:?} after the crash"),
            }
        }
    } else {
        match next(&mut h, "Lost after my daemon died").await? {
            MembershipEvent::Lost { reason } => {
                if !reason.contains("spread") {
                    bail!("Lost reason does not name the engine: {reason}");
                }
            }
            other => bail!("{me}: expected Lost, got {other:?}"),
        }
    }
    let _ = h.outgoing.send(Outgoing::Shutdown).await;
    Ok(Report {
        me,
        pair_view,
        messages,
        after_kill,
        detect,
    })
}

//! Hook executables: environment, failures, timeouts, ordering, non-blocking.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::support::TempDir;
use wackamole::hooks::{HookConfig, HookEvent, HookOutcome, HookRunner, HOOK_PATH, QUEUE_LIMIT};

fn up(vif: &str) -> HookEvent {
    HookEvent::Up {
        vif: vif.into(),
        addresses: vec!["192.0.2.10/24".into(), "192.0.2.11/24".into()],
    }
}

#[tokio::test]
async fn on_up_sees_its_environment() -> Result<()> {
    let dir = TempDir::new("env")?;
    let out = dir.0.join("env.txt");
    let hook = dir.script(
        "on_up",
        &format!(
            "echo \"$1 $2 $3|$WACKAMOLE_EVENT|$WACKAMOLE_VIF|$WACKAMOLE_ADDRESSES|$WACKAMOLE_NODE\" > {}\necho said-hello",
            out.display()
        ),
    )?;
    let runner = HookRunner::start(
        HookConfig {
            on_up: Some(hook.clone()),
            ..HookConfig::default()
        },
        "n1",
    );
    let report = runner.fire(up("web")).await?;
    assert_eq!(report.outcome, HookOutcome::Succeeded);
    assert_eq!(report.hook.as_deref(), Some(hook.as_path()));
    assert!(report.output.contains("said-hello"), "{}", report.output);
    assert_eq!(
        std::fs::read_to_string(&out)?,
        "up -- web|up|web|192.0.2.10/24 192.0.2.11/24|n1\n"
    );
    // No on_down configured.
    let down = runner
        .fire(HookEvent::Down {
            vif: "web".into(),
            addresses: vec![],
        })
        .await?;
    assert_eq!(down.outcome, HookOutcome::NotConfigured);
    Ok(())
}

#[tokio::test]
async fn post_hooks_get_the_round_vifs() -> Result<()> {
    let dir = TempDir::new("post")?;
    let out = dir.0.join("post.txt");
    let hook = dir.script(
        "post",
        &format!(
            "echo \"$WACKAMOLE_EVENT:$WACKAMOLE_VIFS\" >> {}",
            out.display()
        ),
    )?;
    let runner = HookRunner::start(
        HookConfig {
            post_up: Some(hook.clone()),
            post_down: Some(hook),
            ..HookConfig::default()
        },
        "n1",
    );
    let a = runner.fire(HookEvent::PostDown {
        vifs: vec!["db".into()],
    });
    let b = runner.fire(HookEvent::PostUp {
        vifs: vec!["web".into(), "mail".into()],
    });
    assert_eq!(a.await?.outcome, HookOutcome::Succeeded);
    assert_eq!(b.await?.outcome, HookOutcome::Succeeded);
    assert_eq!(
        std::fs::read_to_string(&out)?,
        "post_down:db\npost_up:web mail\n"
    );
    Ok(())
}

#[tokio::test]
async fn failures_are_reported_not_raised() -> Result<()> {
    let dir = TempDir::new("fail")?;
    let failing = dir.script("fails", "echo broken >&2\nexit 3")?;
    let missing = dir.0.join("does-not-exist");
    let not_exec = dir.0.join("not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\nexit 0\n")?;
    let cfg = |p: &Path| HookConfig {
        on_up: Some(p.to_path_buf()),
        ..HookConfig::default()
    };

    let r = HookRunner::start(cfg(&failing), "n1")
        .fire(up("web"))
        .await?;
    assert_eq!(
        r.outcome,
        HookOutcome::Failed {
            code: Some(3),
            signal: None
        }
    );
    assert!(r.output.contains("[stderr] broken"), "{}", r.output);

    for p in [&missing, &not_exec] {
        let r = HookRunner::start(cfg(p), "n1").fire(up("web")).await?;
        match r.outcome {
            HookOutcome::SpawnFailed(why) => {
                assert!(why.contains(&p.display().to_string()), "{why}")
            }
            other => panic!("{}: {other:?}", p.display()),
        }
    }
    Ok(())
}

fn alive(pid: i32) -> bool {
    // Gone, or a zombie waiting for its (new) parent: not running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn timeout_kills_the_hook_and_its_children() -> Result<()> {
    let dir = TempDir::new("slow")?;
    let pidfile = dir.0.join("child.pid");
    let hook = dir.script(
        "slow",
        &format!("sleep 30 &\necho $! > {}\nwait", pidfile.display()),
    )?;
    let runner = HookRunner::start(
        HookConfig {
            on_up: Some(hook),
            timeout: Duration::from_millis(300),
            ..HookConfig::default()
        },
        "n1",
    );
    let r = runner.fire(up("web")).await?;
    assert_eq!(r.outcome, HookOutcome::TimedOut);
    let pid: i32 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
    let mut waited = 0;
    while alive(pid) && waited < 40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(!alive(pid), "background child {pid} of the hook survived");
    Ok(())
}

#[tokio::test]
async fn fire_returns_at_once_and_order_is_kept() -> Result<()> {
    let dir = TempDir::new("order")?;
    let log = dir.0.join("log.txt");
    let hook = dir.script(
        "hook",
        &format!(
            "sleep 0.3\necho \"$WACKAMOLE_EVENT $WACKAMOLE_VIF\" >> {}",
            log.display()
        ),
    )?;
    let runner = HookRunner::start(
        HookConfig {
            on_up: Some(hook.clone()),
            on_down: Some(hook),
            ..HookConfig::default()
        },
        "n1",
    );
    let mut first = runner.fire(up("web"));
    let second = runner.fire(HookEvent::Down {
        vif: "web".into(),
        addresses: vec![],
    });
    // Queued, not run inline: nothing is done yet when fire returns.
    assert!(first.try_recv().is_err());
    assert!(!log.exists());
    assert_eq!(second.await?.outcome, HookOutcome::Succeeded);
    assert_eq!(std::fs::read_to_string(&log)?, "up web\ndown web\n");
    Ok(())
}

#[tokio::test]
async fn hooks_get_a_minimal_environment() -> Result<()> {
    // What systemd and the operator give the agent must not reach hooks.
    std::env::set_var("NOTIFY_SOCKET", "/run/systemd/notify");
    std::env::set_var("WKTEST_SECRET", "hunter2");
    let dir = TempDir::new("envmin")?;
    let out = dir.0.join("env.txt");
    let hook = dir.script("on_up", &format!("/usr/bin/env > {}", out.display()))?;
    let runner = HookRunner::start(
        HookConfig {
            on_up: Some(hook),
            ..HookConfig::default()
        },
        "n1",
    );
    assert_eq!(
        runner.fire(up("web")).await?.outcome,
        HookOutcome::Succeeded
    );
    let env = std::fs::read_to_string(&out)?;
    let mut names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        // The shell itself sets these for its child.
        .filter(|k| !matches!(*k, "PWD" | "OLDPWD" | "SHLVL" | "_"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "PATH",
            "WACKAMOLE_ADDRESSES",
            "WACKAMOLE_EVENT",
            "WACKAMOLE_NODE",
            "WACKAMOLE_VIF"
        ],
        "{env}"
    );
    assert!(env.contains(&format!("PATH={HOOK_PATH}\n")), "{env}");
    Ok(())
}

#[tokio::test]
async fn a_vif_named_like_an_option_comes_after_double_dash() -> Result<()> {
    let dir = TempDir::new("dash")?;
    let out = dir.0.join("argv.txt");
    // After taking the event, a hook that parses options sees `--` first:
    // the VIF `-x` can never read as an option.
    let argv = dir.script(
        "argv",
        &format!("shift\nprintf '%s|' \"$@\" > {}", out.display()),
    )?;
    let runner = HookRunner::start(
        HookConfig {
            on_down: Some(argv),
            ..HookConfig::default()
        },
        "n1",
    );
    let r = runner
        .fire(HookEvent::Down {
            vif: "-x".into(),
            addresses: vec![],
        })
        .await?;
    assert_eq!(r.outcome, HookOutcome::Succeeded);
    assert_eq!(std::fs::read_to_string(&out)?, "--|-x|");
    Ok(())
}

#[tokio::test]
async fn reconfigure_keeps_the_order_of_queued_events() -> Result<()> {
    let dir = TempDir::new("reload")?;
    let log = dir.0.join("log.txt");
    let old = dir.script(
        "old",
        &format!("sleep 0.3\necho \"old $1 $3\" >> {}", log.display()),
    )?;
    let new = dir.script("new", &format!("echo \"new $1 $3\" >> {}", log.display()))?;
    let runner = HookRunner::start(
        HookConfig {
            on_up: Some(old.clone()),
            on_down: Some(old),
            ..HookConfig::default()
        },
        "n1",
    );
    let first = runner.fire(up("web"));
    // A reload while the up hook runs: the down must still come after it.
    runner.reconfigure(HookConfig {
        on_down: Some(new),
        ..HookConfig::default()
    });
    let second = runner.fire(HookEvent::Down {
        vif: "web".into(),
        addresses: vec![],
    });
    let second = second.await?;
    assert_eq!(second.outcome, HookOutcome::Succeeded);
    let first = first.await?;
    let log = std::fs::read_to_string(&log)?;
    match first.outcome {
        // The worker had taken the up event before the reload.
        HookOutcome::Succeeded => assert_eq!(log, "old up web\nnew down web\n"),
        // It had not: the up event runs with the new hooks (no on_up).
        HookOutcome::NotConfigured => assert_eq!(log, "new down web\n"),
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() -> Result<()> {
    let dir = TempDir::new("full")?;
    let hook = dir.script("stuck", "exec sleep 30")?;
    let runner = HookRunner::start(
        HookConfig {
            on_up: Some(hook),
            timeout: Duration::from_secs(60),
            ..HookConfig::default()
        },
        "n1",
    );
    let mut pending = Vec::new();
    for _ in 0..QUEUE_LIMIT + 3 {
        pending.push(runner.fire(up("web")));
    }
    // The worker holds at most one event, the queue QUEUE_LIMIT more.
    let dropped = runner.dropped();
    assert!((2..=3).contains(&dropped), "dropped {dropped}");
    let last = pending.pop().expect("fired");
    let r = tokio::time::timeout(Duration::from_secs(5), last).await??;
    assert_eq!(r.outcome, HookOutcome::Dropped);
    Ok(())
}

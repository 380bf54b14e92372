//! Hook executables: environment, failures, timeouts, ordering, non-blocking.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::support::TempDir;
use wackamole::hooks::{HookConfig, HookEvent, HookOutcome, HookRunner};

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
            "echo \"$1 $2|$WACKAMOLE_EVENT|$WACKAMOLE_VIF|$WACKAMOLE_ADDRESSES|$WACKAMOLE_NODE\" > {}\necho said-hello",
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
        "up web|up|web|192.0.2.10/24 192.0.2.11/24|n1\n"
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

//! reload_diff: which changed fields a SIGHUP applies and which need a restart.

use std::path::Path;

use wackamole::config::*;

fn sample() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/wackamole.toml"))
        .unwrap()
}

fn cfg(text: &str) -> Config {
    parse(text, "t.toml", &FakeInterfaces::new(["eth0", "eth1"])).unwrap_or_else(|e| panic!("{e}"))
}

/// The sample with one `from` replaced by `to` (which must occur once).
fn edited(from: &str, to: &str) -> Config {
    let s = sample();
    assert_eq!(
        s.matches(from).count(),
        1,
        "{from:?} must occur once in the sample"
    );
    cfg(&s.replace(from, to))
}

#[test]
fn identical_configs_change_nothing() {
    let a = cfg(&sample());
    let plan = reload_diff(&a, &a.clone());
    assert!(plan.is_empty());
    assert!(plan.fully_applicable());
}

#[test]
fn reloadable_fields_are_applied() {
    let base = cfg(&sample());
    let cases = [
        ("throttle = 16", "throttle = 32", "notify.targets"),
        ("arp_cache = true", "arp_cache = false", "notify.arp_cache"),
        (
            "arp_cache_interval = \"60s\"",
            "arp_cache_interval = \"30s\"",
            "notify.arp_cache_interval",
        ),
        (
            "acquisitions_per_round = 4",
            "acquisitions_per_round = \"all\"",
            "balance.acquisitions_per_round",
        ),
        ("interval = \"4s\"", "interval = \"8s\"", "balance.interval"),
        ("one_shot = false", "one_shot = true", "balance.one_shot"),
        ("enabled = true", "enabled = false", "balance.enabled"),
        (
            "post_up = \"/etc/wackamole/post-up\"",
            "post_up = \"/usr/local/bin/up\"",
            "hooks.post_up",
        ),
        ("timeout = \"10s\"", "timeout = \"3s\"", "hooks.timeout"),
        ("burst_count = 3", "burst_count = 5", "announce.burst_count"),
        (
            "burst_spacing = \"100ms\"",
            "burst_spacing = \"50ms\"",
            "announce.burst_spacing",
        ),
        (
            "refresh_interval = \"0s\"",
            "refresh_interval = \"30s\"",
            "announce.refresh_interval",
        ),
        ("level = \"info\"", "level = \"debug\"", "log.level"),
    ];
    for (from, to, field) in cases {
        let plan = reload_diff(&base, &edited(from, to));
        assert_eq!(plan.apply, vec![field.to_string()], "{from} -> {to}");
        assert!(
            plan.refused.is_empty(),
            "{from} -> {to}: {:?}",
            plan.refused
        );
    }
}

#[test]
fn other_fields_are_refused_with_a_reason() {
    let base = cfg(&sample());
    let cases = [
        ("node = \"web1\"", "node = \"web2\"", "node"),
        ("weight = 1", "weight = 2", "weight"),
        ("group = \"wackamole\"", "group = \"other\"", "engine.group"),
        (
            "watchdog_interval = \"auto\"",
            "watchdog_interval = \"30ms\"",
            "engine.watchdog_interval",
        ),
        (
            "# watchdog_deadline = \"200ms\"",
            "watchdog_deadline = \"300ms\"",
            "engine.watchdog_deadline",
        ),
        (
            "require_quorum = false",
            "require_quorum = true",
            "engine.require_quorum",
        ),
        (
            "control_socket = \"/run/wackamole/control.sock\"",
            "control_socket = \"/run/w.sock\"",
            "control_socket",
        ),
        (
            "bpffs_dir = \"/sys/fs/bpf/wackamole\"",
            "bpffs_dir = \"/sys/fs/bpf/w2\"",
            "bpffs_dir",
        ),
        ("prefer = [\"www\"]", "prefer = [\"mail\"]", "prefer"),
        ("192.0.2.11/32n24", "192.0.2.11/32n23", "vif"),
        ("mature = \"5s\"", "mature = \"6s\"", "mature"),
        ("mode = \"auto\"", "mode = \"skb\"", "xdp.mode"),
        ("lease = \"auto\"", "lease = \"0s\"", "xdp.lease"),
        (
            "metrics_listen = \"127.0.0.1:9469\"",
            "metrics_listen = \"127.0.0.1:9470\"",
            "metrics_listen",
        ),
    ];
    for (from, to, field) in cases {
        let plan = reload_diff(&base, &edited(from, to));
        assert!(plan.apply.is_empty(), "{from} -> {to}: {:?}", plan.apply);
        assert_eq!(plan.refused.len(), 1, "{from} -> {to}: {:?}", plan.refused);
        assert_eq!(plan.refused[0].0, field);
        assert!(
            plan.refused[0].1.contains("restart"),
            "{:?}",
            plan.refused[0]
        );
        assert!(!plan.fully_applicable());
    }
}

#[test]
fn engine_kind_change_and_mixed_changes() {
    let base = cfg("node = \"n\"\n[engine]\nkind = \"corosync\"\n[log]\nlevel = \"info\"\n");
    let new = cfg("node = \"n\"\n[engine]\nkind = \"spread\"\n[log]\nlevel = \"warn\"\n");
    let plan = reload_diff(&base, &new);
    assert_eq!(plan.apply, vec!["log.level".to_string()]);
    assert_eq!(
        plan.refused
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        vec!["engine.kind"]
    );
    let s1 = cfg("node = \"n\"\n[engine]\nkind = \"spread\"\ndaemon = \"4803\"\n");
    let s2 = cfg("node = \"n\"\n[engine]\nkind = \"spread\"\ndaemon = \"4803@127.0.0.1\"\nreconnect_interval = \"1s\"\n");
    let plan = reload_diff(&s1, &s2);
    let fields: Vec<&str> = plan.refused.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(fields, vec!["engine.daemon", "engine.reconnect_interval"]);
}

#[test]
fn the_spread_takeover_floor_needs_a_restart() {
    let spread = |floor: &str| {
        let s = sample()
            .replace("kind = \"corosync\"", "kind = \"spread\"")
            .replace("require_quorum = false\n", "")
            .replace(
                "# takeover_floor = \"500ms\"",
                &format!("takeover_floor = \"{floor}\""),
            );
        cfg(&s)
    };
    let plan = reload_diff(&spread("500ms"), &spread("400ms"));
    assert!(plan.apply.is_empty(), "{:?}", plan.apply);
    assert_eq!(plan.refused.len(), 1, "{:?}", plan.refused);
    assert!(
        plan.refused[0].0 == "engine.takeover_floor",
        "{:?}",
        plan.refused
    );
}

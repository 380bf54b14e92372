//! Validation of the TOML config: every error names the right line and field.

use std::path::Path;
use std::time::Duration;

use wackamole::config::*;

fn host() -> FakeInterfaces {
    FakeInterfaces::new(["lo", "eth0", "eth1"])
}

fn ok(text: &str) -> Config {
    match parse(text, "test.toml", &host()) {
        Ok(c) => c,
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

fn err(text: &str) -> ConfigError {
    match parse(text, "test.toml", &host()) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

/// Asserts the (only or first) issue is at `line` on `field` and its message
/// contains `needle`; also checks the displayed form.
fn assert_issue(e: &ConfigError, line: usize, field: &str, needle: &str) {
    let issue = e
        .issues
        .iter()
        .find(|i| i.field == field)
        .unwrap_or_else(|| panic!("no issue on field {field}: {e}"));
    assert_eq!(issue.line, Some(line), "wrong line for {field}: {e}");
    assert!(
        issue.message.contains(needle),
        "message {:?} lacks {needle:?}",
        issue.message
    );
    let shown = issue.to_string();
    let prefix = format!("test.toml:{line}: field `{field}`: ");
    assert!(
        shown.starts_with(&prefix),
        "display {shown:?} does not start with {prefix:?}"
    );
}

fn sample_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/wackamole.toml")
}

#[test]
fn sample_parses_and_validates() {
    let cfg = load_with(&sample_path(), &host()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.node, "web1");
    assert_eq!(cfg.vifs.len(), 3);
    assert_eq!(cfg.vifs[0].name, "www");
    assert_eq!(cfg.vifs[1].name, "192.0.2.11");
    assert_eq!(cfg.vifs[1].addresses[0].network_bits, Some(24));
    assert_eq!(cfg.vifs[2].addresses.len(), 2);
    assert_eq!(cfg.vifs[2].addresses[1].iface, "eth1");
    assert_eq!(cfg.prefer, vec!["www".to_string()]);
    assert_eq!(cfg.prefer_indices(), vec![0]);
    assert_eq!(cfg.notify.targets.len(), 2);
    assert_eq!(cfg.notify.targets[1].throttle, Some(16));
    assert!(cfg.notify.arp_cache);
    assert_eq!(cfg.balance.acquisitions_per_round, Acquisitions::Limit(4));
    assert_eq!(cfg.balance.interval, Duration::from_secs(4));
    assert_eq!(cfg.xdp.lease, Lease::Auto);
    assert_eq!(cfg.announce.burst_spacing, Duration::from_millis(100));
    assert_eq!(cfg.announce.refresh_interval, None);
    assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9469".parse().unwrap()));
    assert_eq!(
        cfg.hooks.post_up.as_deref(),
        Some(Path::new("/etc/wackamole/post-up"))
    );
    match &cfg.engine {
        EngineConfig::Corosync(c) => {
            assert_eq!(c.group, "wackamole");
            assert_eq!(c.watchdog_interval, None);
            assert_eq!(c.watchdog_deadline, None);
        }
        other => panic!("engine {other:?}"),
    }
}

#[test]
fn corosync_watchdog_interval_is_auto_unless_given() {
    let interval = |text: &str| match ok(text).engine {
        EngineConfig::Corosync(c) => c.watchdog_interval,
        other => panic!("engine {other:?}"),
    };
    assert_eq!(interval("[engine]\n"), None);
    assert_eq!(interval("[engine]\nwatchdog_interval = \"auto\"\n"), None);
    assert_eq!(
        interval("[engine]\nwatchdog_interval = \"auto\"\nwatchdog_deadline = \"150ms\"\n"),
        None
    );
    assert_eq!(
        interval("[engine]\nwatchdog_interval = \"20ms\"\n"),
        Some(Duration::from_millis(20))
    );
    let spread = ok("[engine]\nkind = \"spread\"\nwatchdog_interval = \"auto\"\n");
    match spread.engine {
        EngineConfig::Spread(s) => assert_eq!(
            s.watchdog_interval,
            Some(wackamole::membership::spread::DEFAULT_WATCHDOG_INTERVAL)
        ),
        other => panic!("engine {other:?}"),
    }
    assert_issue(
        &err("[engine]\nwatchdog_interval = \"automatic\"\n"),
        2,
        "engine.watchdog_interval",
        "",
    );
}

#[test]
fn sample_refused_without_its_interfaces() {
    let e = load_with(&sample_path(), &FakeInterfaces::new(["eth0"])).unwrap_err();
    let issue = e.for_field("vif[2].addresses[1]").expect("eth1 reported");
    assert!(
        issue.message.contains("interface eth1 does not exist"),
        "{e}"
    );
    let text = std::fs::read_to_string(sample_path()).unwrap();
    let want = text
        .lines()
        .position(|l| l.contains("eth1:198.51.100.12"))
        .unwrap()
        + 1;
    assert_eq!(issue.line, Some(want));
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = ok("");
    assert_eq!(cfg.node, "testnode");
    assert_eq!(cfg.weight, 1);
    assert_eq!(cfg.control_socket, Path::new(DEFAULT_CONTROL_SOCKET));
    assert_eq!(cfg.bpffs_dir, Path::new(DEFAULT_BPFFS_DIR));
    assert_eq!(cfg.mature, Duration::from_secs(5));
    assert_eq!(cfg.balance.acquisitions_per_round, Acquisitions::Limit(1));
    assert!(cfg.balance.enabled && !cfg.balance.one_shot);
    assert_eq!(cfg.notify.arp_cache_interval, Duration::from_secs(60));
    assert_eq!(cfg.xdp.mode, XdpMode::Auto);
    assert_eq!(cfg.announce.burst_count, 3);
    assert_eq!(cfg.log.level, LogLevel::Info);
    assert_eq!(cfg.hooks.timeout, Duration::from_secs(10));
    assert!(
        matches!(cfg.engine, EngineConfig::Corosync(ref c) if !c.require_quorum && c.group == "wackamole")
    );
}

#[test]
fn node_without_hostname_is_an_error() {
    let mut h = host();
    h.hostname = None;
    let e = parse("", "test.toml", &h).unwrap_err();
    assert_eq!(e.issues[0].field, "node");
    assert_eq!(e.issues[0].line, None);
    assert!(
        e.to_string()
            .starts_with("test.toml: field `node`: not set"),
        "{e}"
    );
}

#[test]
fn spread_engine() {
    let cfg = ok("[engine]\nkind = \"spread\"\ndaemon = \"4803@127.0.0.1\"\ngroup = \"wack1\"\nreconnect_interval = \"5s\"\n");
    assert_eq!(
        cfg.engine,
        EngineConfig::Spread(SpreadConfig {
            daemon: SpreadDaemon::Tcp {
                port: 4803,
                host: "127.0.0.1".into()
            },
            group: "wack1".into(),
            reconnect_interval: Duration::from_secs(5),
            watchdog_interval: Some(Duration::from_millis(20)),
            watchdog_deadline: Duration::from_millis(500),
            trusted_uid: None,
            takeover_floor: Duration::from_millis(500),
        })
    );
    let cfg = ok("[engine]\nkind = \"spread\"\ndaemon = \"4803\"\n");
    assert!(matches!(
        cfg.engine,
        EngineConfig::Spread(SpreadConfig {
            daemon: SpreadDaemon::Unix { port: 4803 },
            ..
        })
    ));
    let cfg = ok("[engine]\nkind = \"spread\"\nwatchdog_interval = \"0\"\n");
    assert!(matches!(
        cfg.engine,
        EngineConfig::Spread(SpreadConfig {
            watchdog_interval: None,
            ..
        })
    ));
    let cfg = ok("[engine]\nkind = \"spread\"\nwatchdog_interval = \"50ms\"\nwatchdog_deadline = \"800ms\"\n");
    match &cfg.engine {
        EngineConfig::Spread(s) => {
            assert_eq!(s.watchdog_interval, Some(Duration::from_millis(50)));
            assert_eq!(s.watchdog_deadline, Duration::from_millis(800));
        }
        other => panic!("not spread: {other:?}"),
    }
    let cfg = ok("[engine]\nkind = \"spread\"\ndaemon = 4804\n");
    assert!(matches!(
        cfg.engine,
        EngineConfig::Spread(SpreadConfig {
            daemon: SpreadDaemon::Unix { port: 4804 },
            ..
        })
    ));
}

/// `engine.trusted_uid`: the Spread daemon's uid, for a unix-socket daemon only.
#[test]
fn spread_trusted_uid() {
    let cfg = ok("[engine]\nkind = \"spread\"\ndaemon = \"4803\"\ntrusted_uid = 108\n");
    assert!(matches!(
        cfg.engine,
        EngineConfig::Spread(SpreadConfig {
            trusted_uid: Some(108),
            ..
        })
    ));
    // The default unix socket too; absent: None.
    let cfg = ok("[engine]\nkind = \"spread\"\ntrusted_uid = 0\n");
    assert!(matches!(
        cfg.engine,
        EngineConfig::Spread(SpreadConfig {
            trusted_uid: Some(0),
            ..
        })
    ));
    let cfg = ok("[engine]\nkind = \"spread\"\n");
    assert!(matches!(
        cfg.engine,
        EngineConfig::Spread(SpreadConfig {
            trusted_uid: None,
            ..
        })
    ));
    for (value, why) in [
        ("-1", "not a uid"),
        ("4294967295", "not a uid"),
        ("4294967296", "not a uid"),
        ("\"spread\"", "numeric uid"),
        ("1.5", "numeric uid"),
    ] {
        assert_issue(
            &err(&format!(
                "[engine]\nkind = \"spread\"\ntrusted_uid = {value}\n"
            )),
            3,
            "engine.trusted_uid",
            why,
        );
    }
    assert_issue(
        &err("[engine]\nkind = \"spread\"\ndaemon = \"4803@127.0.0.1\"\ntrusted_uid = 108\n"),
        4,
        "engine.trusted_uid",
        "unix-socket daemon",
    );
    assert_issue(
        &err("[engine]\nkind = \"corosync\"\ntrusted_uid = 108\n"),
        3,
        "engine.trusted_uid",
        "only applies to kind = \"spread\"",
    );
}

/// `engine.takeover_floor`: the Spread daemons' TokenTimeout, which sets
/// the fencing lease (half) and the eviction deadline.
#[test]
fn spread_takeover_floor() {
    let floor = |text: &str| match ok(text).engine {
        EngineConfig::Spread(s) => s.takeover_floor,
        other => panic!("not spread: {other:?}"),
    };
    assert_eq!(
        floor("[engine]\nkind = \"spread\"\n"),
        Duration::from_millis(500)
    );
    assert_eq!(
        floor("[engine]\nkind = \"spread\"\ntakeover_floor = \"100ms\"\nwatchdog_interval = \"15ms\"\n"),
        Duration::from_millis(100)
    );
    // With the watchdog off no probe renews a lease: nothing to check.
    assert_eq!(
        floor(
            "[engine]\nkind = \"spread\"\ntakeover_floor = \"100ms\"\nwatchdog_interval = \"0\"\n"
        ),
        Duration::from_millis(100)
    );
    // A 50 ms lease with probes every 20 ms: fewer than three per lease.
    assert_issue(
        &err("[engine]\nkind = \"spread\"\ntakeover_floor = \"100ms\"\n"),
        3,
        "engine.takeover_floor",
        "three per lease",
    );
    for (value, why) in [
        ("\"5ms\"", "below 20ms"),
        ("\"0s\"", "must be"),
        ("\"2h\"", "the most this setting allows"),
        ("100", "duration string"),
    ] {
        assert_issue(
            &err(&format!(
                "[engine]\nkind = \"spread\"\ntakeover_floor = {value}\n"
            )),
            3,
            "engine.takeover_floor",
            why,
        );
    }
    // Corosync's comes from its running totem timers.
    assert_issue(
        &err("[engine]\nkind = \"corosync\"\ntakeover_floor = \"100ms\"\n"),
        3,
        "engine.takeover_floor",
        "only applies to kind = \"spread\"",
    );
}

#[test]
fn engine_errors() {
    assert_issue(
        &err("[engine]\nkind = \"isis\"\n"),
        2,
        "engine.kind",
        "not an engine",
    );
    assert_issue(
        &err("[engine]\nkind = \"spread\"\n\ndaemon = \"70000\"\n"),
        4,
        "engine.daemon",
        "not a port",
    );
    assert_issue(
        &err("[engine]\nkind = \"spread\"\ndaemon = \"4803@\"\n"),
        3,
        "engine.daemon",
        "not a host",
    );
    assert_issue(
        &err("[engine]\nkind = \"spread\"\nwatchdog_interval = \"1s\"\n"),
        3,
        "engine.watchdog_deadline",
        "longer than engine.watchdog_interval",
    );
    assert_issue(
        &err("[engine]\nkind = \"spread\"\nwatchdog_deadline = \"0\"\n"),
        3,
        "engine.watchdog_deadline",
        "longer than zero",
    );
    assert_issue(
        &err("[engine]\nkind = \"spread\"\nrequire_quorum = true\n"),
        3,
        "engine.require_quorum",
        "corosync",
    );
    assert_issue(
        &err("[engine]\nkind = \"corosync\"\ndaemon = \"4803\"\n"),
        3,
        "engine.daemon",
        "only applies to kind = \"spread\"",
    );
    assert_issue(
        &err("[engine]\nkind = \"spread\"\ngroup = \"a-group-name-longer-than-31-bytes\"\n"),
        3,
        "engine.group",
        "valid Spread group",
    );
    assert_issue(
        &err("[engine]\ngroup = \"\"\n"),
        2,
        "engine.group",
        "valid Corosync",
    );
    assert_issue(
        &err("[engine]\nwatchdog_interval = \"2s\"\nwatchdog_deadline = \"2s\"\n"),
        3,
        "engine.watchdog_deadline",
        "longer than engine.watchdog_interval",
    );
    assert_issue(
        &err("[engine]\nkind = \"spread\"\nreconnect_interval = \"0s\"\n"),
        3,
        "engine.reconnect_interval",
        "longer than zero",
    );
}

#[test]
fn unknown_keys_name_line_and_field() {
    assert_issue(
        &err("node = \"a\"\nnodes = \"b\"\n"),
        2,
        "nodes",
        "unknown field `nodes`",
    );
    assert_issue(
        &err("[balance]\ninterval = \"4s\"\nacquisitions = 4\n"),
        3,
        "balance.acquisitions",
        "unknown field",
    );
    assert_issue(
        &err("[[vif]]\naddresses = [\"eth0:10.0.0.1/24\"]\n[[vif]]\naddresses = [\"eth0:10.0.0.2/24\"]\nadresses = []\n"),
        5,
        "vif[1].adresses",
        "unknown field",
    );
    assert_issue(
        &err("weight = 1\n[xdp]\nmode = \"skb\"\n[bogus]\nx = 1\n"),
        4,
        "bogus",
        "unknown field `bogus`",
    );
    assert_issue(
        &err("[engine]\nkind = \"spread\"\nport = 4803\n"),
        3,
        "engine.port",
        "unknown field",
    );
}

#[test]
fn type_and_syntax_errors_name_line() {
    assert_issue(
        &err("node = \"a\"\nweight = \"heavy\"\n"),
        2,
        "weight",
        "invalid type",
    );
    let e = err("node = \"a\"\n\n[balance\n");
    assert_eq!(e.issues[0].line, Some(3), "{e}");
    assert_eq!(e.to_string().lines().count(), 1, "one line per issue: {e}");
    assert!(
        e.to_string()
            .starts_with("test.toml:3: invalid table header"),
        "{e}"
    );
    assert_issue(
        &err("node = \"a\"\nnode = \"b\"\n"),
        2,
        "node",
        "duplicate key",
    );
    assert_issue(
        &err("[[vif]]\naddresses = \"eth0:10.0.0.1/24\"\n"),
        2,
        "vif[0].addresses",
        "expected a sequence",
    );
    assert_issue(
        &err("[notify]\narp_cache = \"yes\"\n"),
        2,
        "notify.arp_cache",
        "invalid type",
    );
}

#[test]
fn bad_durations() {
    assert_issue(&err("mature = \"5\"\n"), 1, "mature", "no unit");
    assert_issue(
        &err("\nmature = \"5 seconds\"\n"),
        2,
        "mature",
        "bad duration",
    );
    assert_issue(
        &err("[balance]\ninterval = \"4x\"\n"),
        2,
        "balance.interval",
        "unknown unit",
    );
    assert_issue(
        &err("[balance]\ninterval = 4\n"),
        2,
        "balance.interval",
        "duration string with a unit",
    );
    assert_issue(
        &err("[balance]\ninterval = \"0s\"\n"),
        2,
        "balance.interval",
        "longer than zero",
    );
    assert_issue(
        &err("[hooks]\ntimeout = \"-1s\"\n"),
        2,
        "hooks.timeout",
        "bad duration",
    );
    assert_issue(
        &err("[notify]\narp_cache_interval = \"0ms\"\n"),
        2,
        "notify.arp_cache_interval",
        "longer than zero",
    );
    assert_issue(
        &err("[announce]\nburst_spacing = true\n"),
        2,
        "announce.burst_spacing",
        "boolean",
    );
}

#[test]
fn zero_means_off() {
    let cfg = ok("[xdp]\nlease = \"0s\"\n[announce]\nrefresh_interval = \"30s\"\n");
    assert_eq!(cfg.xdp.lease, Lease::Off);
    assert_eq!(cfg.announce.refresh_interval, Some(Duration::from_secs(30)));
    assert_eq!(ok("[xdp]\nlease = 0\n").xdp.lease, Lease::Off);
    // The default follows the engine's takeover floor.
    assert_eq!(ok("").xdp.lease, Lease::Auto);
    assert_eq!(ok("[xdp]\nlease = \"auto\"\n").xdp.lease, Lease::Auto);
}

#[test]
fn vif_addresses() {
    let cfg = ok("[[vif]]\naddresses = [\"eth0:10.2.3.4/24n23\"]\n[[vif]]\nname = \"pair\"\naddresses = [\"eth0:10.2.3.5/24\", \"eth1:192.168.1.5/24\"]\n");
    assert_eq!(cfg.vifs[0].name, "10.2.3.4");
    assert_eq!(cfg.vifs[0].addresses[0].network_bits, Some(23));
    assert_eq!(cfg.vifs[1].name, "pair");
    assert_eq!(cfg.vifs[1].addresses[1].to_string(), "eth1:192.168.1.5/24");
}

#[test]
fn vif_errors() {
    let text = "[[vif]]\naddresses = [\"eth0:10.2.3.4/24\"]\n\n[[vif]]\naddresses = [\n  \"eth0:10.2.3.5/24\",\n  \"eth0:10.2.3.4/24\",\n]\n";
    assert_issue(
        &err(text),
        7,
        "vif[1].addresses[1]",
        "VIP 10.2.3.4 is listed twice (also vif[0].addresses[0] at line 2)",
    );
    let text = "[[vif]]\naddresses = [\"eth0:10.2.3.4/24\", \"eth1:10.2.3.4/32\"]\n";
    assert_issue(&err(text), 2, "vif[0].addresses[1]", "listed twice");
    assert_issue(
        &err("[[vif]]\naddresses = [\"eth9:10.2.3.4/24\"]\n"),
        2,
        "vif[0].addresses[0]",
        "interface eth9 does not exist",
    );
    assert_issue(
        &err("[[vif]]\naddresses = [\"eth0:10.2.3.4/33\"]\n"),
        2,
        "vif[0].addresses[0]",
        "prefix /33 is out of range",
    );
    assert_issue(
        &err("[[vif]]\naddresses = [\"eth0:10.2.3.4/24n40\"]\n"),
        2,
        "vif[0].addresses[0]",
        "n40 is out of range",
    );
    assert_issue(
        &err("[[vif]]\naddresses = [\"10.2.3.4/24\"]\n"),
        2,
        "vif[0].addresses[0]",
        "no interface",
    );
    assert_issue(
        &err("[[vif]]\naddresses = []\n"),
        2,
        "vif[0].addresses",
        "empty",
    );
    assert_issue(
        &err("[[vif]]\nname = \"x\"\n"),
        2,
        "vif[0].addresses",
        "missing",
    );
    assert_issue(
        &err("[[vif]]\nname = \"a\"\naddresses = [\"eth0:10.0.0.1/24\"]\n[[vif]]\nname = \"a\"\naddresses = [\"eth0:10.0.0.2/24\"]\n"),
        5,
        "vif[1].name",
        "used twice",
    );
    assert_issue(
        &err("[[vif]]\naddresses = [\"eth0:10.0.0.1/24\"]\n[[vif]]\nname = \"10.0.0.1\"\naddresses = [\"eth0:10.0.0.2/24\"]\n"),
        4,
        "vif[1].name",
        "\"10.0.0.1\" is used twice (also vif[0] at line 2)",
    );
    assert_issue(
        &err("[[vif]]\nname = \"has space\"\naddresses = [\"eth0:10.0.0.1/24\"]\n"),
        2,
        "vif[0].name",
        "not a usable VIF name",
    );
}

#[test]
fn errors_are_all_reported_in_line_order() {
    let text = "weight = 0\n[balance]\nacquisitions_per_round = 0\n[[vif]]\naddresses = [\"eth7:10.0.0.1/24\"]\n";
    let e = err(text);
    let got: Vec<(Option<usize>, &str)> = e
        .issues
        .iter()
        .map(|i| (i.line, i.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(1), "weight"),
            (Some(3), "balance.acquisitions_per_round"),
            (Some(5), "vif[0].addresses[0]")
        ]
    );
    assert_eq!(e.to_string().lines().count(), 3);
}

#[test]
fn prefer_forms() {
    let vifs = "[[vif]]\nname = \"www\"\naddresses = [\"eth0:10.0.0.1/24\"]\n[[vif]]\naddresses = [\"eth0:10.0.0.2/24\"]\n";
    assert!(ok(vifs).prefer.is_empty());
    assert!(ok(&format!("prefer = \"none\"\n{vifs}")).prefer.is_empty());
    assert!(ok(&format!("prefer = []\n{vifs}")).prefer.is_empty());
    assert_eq!(ok(&format!("prefer = \"www\"\n{vifs}")).prefer, vec!["www"]);
    assert_eq!(
        ok(&format!("prefer = \"10.0.0.1\"\n{vifs}")).prefer,
        vec!["www"]
    );
    let cfg = ok(&format!("prefer = [\"10.0.0.2\", \"www\"]\n{vifs}"));
    assert_eq!(cfg.prefer, vec!["10.0.0.2", "www"]);
    assert_eq!(cfg.prefer_indices(), vec![1, 0]);
    assert_issue(
        &err(&format!("prefer = \"mail\"\n{vifs}")),
        1,
        "prefer",
        "no VIF is named \"mail\"",
    );
    assert_issue(
        &err(&format!("prefer = [\"www\", \"10.0.0.9\"]\n{vifs}")),
        1,
        "prefer[1]",
        "no VIF",
    );
    assert_issue(
        &err(&format!("prefer = [\"www\", \"10.0.0.1\"]\n{vifs}")),
        1,
        "prefer[1]",
        "preferred twice",
    );
    assert_issue(
        &err(&format!("prefer = 3\n{vifs}")),
        1,
        "prefer",
        "found integer 3",
    );
}

#[test]
fn notify_errors() {
    let cfg = ok("[notify]\ntargets = [{ range = \"eth0:10.2.3.0/24\", throttle = 16 }, { range = \"eth1:10.9.0.1/32\" }]\n");
    assert_eq!(cfg.notify.targets[0].throttle, Some(16));
    assert_eq!(cfg.notify.targets[1].throttle, None);
    let text = "[notify]\ntargets = [\n  { range = \"eth0:10.2.3.0/24\" },\n  { range = \"eth0:10.2.3.0/24\", throttle = 0 },\n]\n";
    assert_issue(&err(text), 4, "notify.targets[1].throttle", "at least 1");
    // A rate whose period would round to nothing (the paced sender's timer
    // refuses a zero period).
    let text =
        "[notify]\ntargets = [\n  { range = \"eth0:10.2.3.0/24\", throttle = 4000000000 },\n]\n";
    assert_issue(
        &err(text),
        3,
        "notify.targets[0].throttle",
        "at most 1000000",
    );
    let text =
        "[notify]\ntargets = [\n  { range = \"eth0:10.2.3.0/24\", throttle = 1000001 },\n]\n";
    assert_issue(
        &err(text),
        3,
        "notify.targets[0].throttle",
        "at most 1000000",
    );
    let cfg = ok("[notify]\ntargets = [{ range = \"eth0:10.2.3.0/24\", throttle = 1000000 }]\n");
    assert_eq!(cfg.notify.targets[0].throttle, Some(1_000_000));
    let text = "[notify]\ntargets = [\n  { range = \"eth5:10.2.3.0/24\" },\n]\n";
    assert_issue(
        &err(text),
        3,
        "notify.targets[0].range",
        "interface eth5 does not exist",
    );
    let text = "[notify]\ntargets = [\n  { range = \"eth0:10.2.3.0/40\" },\n]\n";
    assert_issue(&err(text), 3, "notify.targets[0].range", "out of range");
    let text = "[notify]\ntargets = [\n  { throttle = 4 },\n]\n";
    assert_issue(&err(text), 3, "notify.targets[0].range", "missing");
}

#[test]
fn balance_values() {
    assert_eq!(
        ok("[balance]\nacquisitions_per_round = \"all\"\n")
            .balance
            .acquisitions_per_round,
        Acquisitions::All
    );
    assert_eq!(
        ok("[balance]\nacquisitions_per_round = 7\n")
            .balance
            .acquisitions_per_round,
        Acquisitions::Limit(7)
    );
    assert_issue(
        &err("[balance]\n\nacquisitions_per_round = 0\n"),
        3,
        "balance.acquisitions_per_round",
        "0 would never balance",
    );
    assert_issue(
        &err("[balance]\nacquisitions_per_round = \"most\"\n"),
        2,
        "balance.acquisitions_per_round",
        "\"most\"",
    );
    assert_issue(
        &err("[balance]\nacquisitions_per_round = -2\n"),
        2,
        "balance.acquisitions_per_round",
        "integer -2",
    );
}

#[test]
fn other_field_errors() {
    assert_issue(&err("weight = 0\n"), 1, "weight", "out of range");
    assert_issue(
        &err("node = \"two words\"\n"),
        1,
        "node",
        "not a usable node name",
    );
    assert_issue(
        &err("control_socket = \"run/x.sock\"\n"),
        1,
        "control_socket",
        "not an absolute path",
    );
    assert_issue(
        &err("bpffs_dir = \"bpf\"\n"),
        1,
        "bpffs_dir",
        "not an absolute path",
    );
    assert_issue(
        &err("metrics_listen = \"localhost\"\n"),
        1,
        "metrics_listen",
        "not an IP:port",
    );
    assert_issue(
        &err("[hooks]\non_up = \"up.sh\"\n"),
        2,
        "hooks.on_up",
        "absolute",
    );
    assert_issue(
        &err("[xdp]\nmode = \"turbo\"\n"),
        2,
        "xdp.mode",
        "not one of",
    );
    assert_issue(
        &err("[announce]\nburst_count = 0\n"),
        2,
        "announce.burst_count",
        "out of range",
    );
    assert_issue(
        &err("[log]\nlevel = \"loud\"\n"),
        2,
        "log.level",
        "not one of",
    );
}

#[test]
fn load_reports_unreadable_file() {
    let e = load_with(Path::new("/nonexistent/wackamole.toml"), &host()).unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("/nonexistent/wackamole.toml: cannot read:"),
        "{s}"
    );
}

#[test]
fn check_config_exit_codes() {
    let dir = std::env::temp_dir().join(format!("wackamole-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "weight = 0\n").unwrap();
    assert_eq!(check_config_main(&bad), 2);
    let good = dir.join("good.toml");
    std::fs::write(&good, "node = \"n1\"\n").unwrap();
    assert_eq!(check_config_main(&good), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serde_errors_inside_inline_values_name_the_element() {
    let text = "[notify]\ntargets = [\n  { range = \"eth0:10.2.3.0/24\" },\n  { range = \"eth0:10.2.4.0/24\", bogus = 1 },\n]\n";
    assert_issue(
        &err(text),
        4,
        "notify.targets[1].bogus",
        "unknown field `bogus`",
    );
    let text = "[notify]\ntargets = [{ range = \"eth0:10.2.3.0/24\", throttle = \"fast\" }]\n";
    assert_issue(&err(text), 2, "notify.targets[0].throttle", "invalid type");
    let text = "[[vif]]\naddresses = [\"eth0:10.0.0.1/24\"]\n[[vif]]\n# a comment with = and [ brackets\naddresses = [\"eth0:10.0.0.2/24\", 5]\n";
    assert_issue(&err(text), 5, "vif[1].addresses[1]", "invalid type");
    let text = "node = \"a\" # x = [\n[engine]\ngroup = \"g\"\nkind = [\"spread\"]\n";
    assert_issue(&err(text), 4, "engine.kind", "invalid type");
    let text = "[engine]\ngroup = \"a,b=[c\"\nrequire_quorum = \"yes\"\n";
    assert_issue(&err(text), 3, "engine.require_quorum", "invalid type");
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// VIFs drawn from a small address pool so duplicates are common; one
    /// address per line.
    fn vif_lists() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(1u8..12, 1..4), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Duplicate VIPs are reported exactly at each repeated occurrence,
        /// naming its line and field and the first occurrence.
        #[test]
        fn duplicate_vips_found_at_their_line(vifs in vif_lists()) {
            let mut text = String::from("node = \"n\"\n");
            let mut line = 1;
            let mut first: HashMap<u8, (String, usize)> = HashMap::new();
            let mut expected = Vec::new();
            for (i, addrs) in vifs.iter().enumerate() {
                text.push_str("[[vif]]\naddresses = [\n");
                line += 2;
                for (j, a) in addrs.iter().enumerate() {
                    line += 1;
                    text.push_str(&format!("  \"eth0:10.0.0.{a}/24\",\n"));
                    let field = format!("vif[{i}].addresses[{j}]");
                    match first.get(a) {
                        Some((f, l)) => expected.push((line, field, format!("also {f} at line {l}"))),
                        None => { first.insert(*a, (field, line)); }
                    }
                }
                text.push_str("]\n");
                line += 1;
            }
            match parse(&text, "p.toml", &host()) {
                Ok(_) => prop_assert!(expected.is_empty(), "missed duplicates {expected:?}\n{text}"),
                Err(e) => {
                    let got: Vec<(usize, String)> = e.issues.iter().map(|i| (i.line.unwrap_or(0), i.field.clone())).collect();
                    let want: Vec<(usize, String)> = expected.iter().map(|(l, f, _)| (*l, f.clone())).collect();
                    prop_assert_eq!(got, want, "{}\n{}", e, text);
                    for (issue, (_, _, also)) in e.issues.iter().zip(&expected) {
                        prop_assert!(issue.message.contains(also.as_str()), "{} lacks {}", issue.message, also);
                    }
                }
            }
        }

        /// An unknown key inserted under any table of the sample is reported
        /// at its line, under that table's path.
        #[test]
        fn unknown_key_anywhere_in_sample(pick in any::<prop::sample::Index>(), key in "[a-z]{3,8}_x") {
            let text = std::fs::read_to_string(sample_path()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let headers: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with('[')).collect();
            let h = headers[pick.index(headers.len())];
            let mut table = lines[h].trim_matches(|c| c == '[' || c == ']').to_string();
            if lines[h].starts_with("[[") {
                let n = headers.iter().filter(|&&k| k < h && lines[k] == lines[h]).count();
                table = format!("{table}[{n}]");
            }
            let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            out.insert(h + 1, format!("{key} = 1"));
            let e = parse(&out.join("\n"), "test.toml", &host()).unwrap_err();
            let field = format!("{table}.{key}");
            prop_assert_eq!(e.issues.len(), 1);
            prop_assert_eq!(e.issues[0].line, Some(h + 2));
            prop_assert_eq!(&e.issues[0].field, &field);
        }

        /// Any duration written with our formatter is read back exactly in
        /// any duration field.
        #[test]
        fn durations_roundtrip_through_config(ms in 1u64..=limits::BALANCE_INTERVAL.as_millis() as u64) {
            let d = Duration::from_millis(ms);
            let text = format!("[balance]\ninterval = \"{}\"\n", format_duration(d));
            prop_assert_eq!(ok(&text).balance.interval, d);
        }
    }
}

#[test]
fn system_interfaces_reads_sysfs() {
    let sys = SystemInterfaces;
    assert!(
        sys.interface_exists("lo"),
        "loopback should exist in /sys/class/net"
    );
    assert!(!sys.interface_exists("wkm-nonexist0"));
    assert!(!sys.interface_exists(""));
    assert!(!sys.interface_exists(".."));
    assert!(!sys.interface_exists("../net"));
    assert!(sys.hostname().is_some_and(|h| !h.is_empty()));
    // The real probe validates a config on loopback.
    let cfg = parse(
        "[[vif]]\naddresses = [\"lo:127.0.0.42/32\"]\n",
        "lo.toml",
        &sys,
    )
    .unwrap();
    assert_eq!(cfg.vifs[0].name, "127.0.0.42");
}

/// A unique scratch directory, removed by the caller.
fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wackamole-config-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn durations_have_a_maximum_per_key() {
    // The daemon adds these to an Instant: u64::MAX seconds would panic it.
    assert_issue(
        &err("mature = \"18446744073709551615s\"\n"),
        1,
        "mature",
        "longer than the most this setting allows (24h)",
    );
    let cases: &[(&str, &str, &str, &str)] = &[
        ("", "mature", "24h", "24h1ms"),
        ("[balance]\n", "interval", "24h", "24h1s"),
        ("[notify]\n", "arp_cache_interval", "24h", "25h"),
        ("[hooks]\n", "timeout", "1h", "61m"),
        ("[xdp]\n", "lease", "1h", "2h"),
        ("[announce]\n", "burst_spacing", "10s", "10s1ms"),
        ("[announce]\n", "refresh_interval", "24h", "1000h"),
        ("[engine]\n", "watchdog_interval", "10s", "11s"),
        ("[engine]\n", "watchdog_deadline", "1m", "61s"),
        (
            "[engine]\nkind = \"spread\"\n",
            "reconnect_interval",
            "1h",
            "3601s",
        ),
        (
            "[engine]\nkind = \"spread\"\nwatchdog_interval = \"0\"\n",
            "watchdog_deadline",
            "1m",
            "2m",
        ),
    ];
    for (table, key, max, over) in cases {
        ok(&format!("{table}{key} = \"{max}\"\n"));
        let text = format!("{table}{key} = \"{over}\"\n");
        let line = text.lines().count();
        let section = table
            .lines()
            .next()
            .map(|t| t.trim_matches(|c| c == '[' || c == ']'));
        let field = match section {
            Some(s) => format!("{s}.{key}"),
            None => key.to_string(),
        };
        assert_issue(&err(&text), line, &field, &format!("allows ({max})"));
    }
}

#[test]
fn node_and_vif_names_are_bounded_and_printable() {
    assert_issue(
        &err("node = \"web\\u001b[2J\"\n"),
        1,
        "node",
        "contains a control character",
    );
    let long = "n".repeat(MAX_NODE_NAME + 1);
    assert_issue(
        &err(&format!("\nnode = \"{long}\"\n")),
        2,
        "node",
        "65 bytes is longer than 64",
    );
    ok(&format!("node = \"{}\"\n", "n".repeat(MAX_NODE_NAME)));
    let vif =
        |name: &str| format!("[[vif]]\nname = \"{name}\"\naddresses = [\"eth0:10.0.0.1/24\"]\n");
    assert_issue(&err(&vif("-x")), 2, "vif[0].name", "starts with '-'");
    assert_issue(
        &err(&vif("a\\u0085b")),
        2,
        "vif[0].name",
        "control character",
    );
    assert_issue(
        &err(&vif(&"v".repeat(MAX_VIF_NAME + 1))),
        2,
        "vif[0].name",
        "longer than 64",
    );
    ok(&vif(&"v".repeat(MAX_VIF_NAME)));
    ok(&vif("x-1"));
    // The default name from the host is held to the same rules.
    let mut h = host();
    h.hostname = Some("bad\u{7}host".into());
    let e = parse("", "test.toml", &h).unwrap_err();
    assert!(
        e.for_field("node")
            .is_some_and(|i| i.message.contains("control character")),
        "{e}"
    );
}

/// `n` single-address VIFs, one a line after a two-line header.
fn many_vifs(n: usize) -> String {
    let mut text = String::from("node = \"n1\"\nprefer = [\"10.0.0.1\"]\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[vif]]\naddresses = [\"eth0:10.{}.{}.{}/8\"]\n",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        ));
    }
    text
}

#[test]
fn more_addresses_than_the_xdp_map_holds_are_refused() {
    let cfg = ok(&many_vifs(MAX_ADDRESSES));
    assert_eq!(cfg.vifs.len(), 4096);
    let e = err(&many_vifs(MAX_ADDRESSES + 1));
    assert_eq!(e.issues.len(), 1, "{e}");
    // VIF k's address is on line 2 + 2k + 2.
    assert_issue(
        &e,
        2 + 2 * MAX_ADDRESSES + 2,
        "vif[4096].addresses[0]",
        "the file lists 4097, the XDP map holds at most 4096 (MAX_VIPS)",
    );
    // Addresses count, not VIFs.
    let text = "[[vif]]\naddresses = [\"eth0:10.0.0.1/24\"]\n".to_string()
        + &format!(
            "[[vif]]\naddresses = [{}]\n",
            (0..MAX_ADDRESSES)
                .map(|i| format!("\"eth1:10.1.{}.{}/16\"", i >> 8, i & 0xff))
                .collect::<Vec<_>>()
                .join(", ")
        );
    assert_issue(&err(&text), 4, "vif[1].addresses[4095]", "at most 4096");
}

#[test]
fn twenty_thousand_vifs_validate_in_one_pass() {
    // Validation used to look up the line of every address by scanning the
    // text from its start: quadratic, 9 s for this file. Now linear (the
    // time is printed, not asserted: speed belongs to benchmarks).
    let text = many_vifs(20_000);
    let started = std::time::Instant::now();
    let e = err(&text);
    eprintln!(
        "20,000 VIFs ({} KiB): validated in {:?}",
        text.len() / 1024,
        started.elapsed()
    );
    assert_eq!(e.issues.len(), 1, "one issue for the limit, not 15,904");
    assert!(e.issues[0].message.contains("the file lists 20000"), "{e}");
    // And the same many names in a prefer list.
    let mut text = many_vifs(MAX_ADDRESSES);
    text = text.replacen(
        "prefer = [\"10.0.0.1\"]",
        &format!(
            "prefer = [{}]",
            (0..MAX_ADDRESSES)
                .map(|i| format!("\"10.0.{}.{}\"", i >> 8, i & 0xff))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        1,
    );
    let started = std::time::Instant::now();
    let cfg = ok(&text);
    eprintln!("4096 VIFs all preferred: {:?}", started.elapsed());
    assert_eq!(cfg.prefer.len(), MAX_ADDRESSES);
    assert_eq!(cfg.prefer_indices().len(), MAX_ADDRESSES);
}

#[test]
fn syntax_errors_always_say_something() {
    // A bare CR in a comment: the TOML parser gives no words for it, and
    // the issue was printed as `FILE:1: ` and nothing more.
    let e = err("# a comment\r with a carriage return\nnode = \"n1\"\n");
    assert_eq!(e.issues.len(), 1, "{e}");
    let issue = &e.issues[0];
    assert_eq!(issue.line, Some(1), "{e}");
    assert!(issue.message.contains("control character U+000D"), "{e}");
    for text in [
        "node = \"n1\"\n#\u{1}\n",
        "x\r\n",
        "node = \"a\u{7f}\"",
        "[vif\n",
        "= 1",
        "node = \"\\q\"\n",
    ] {
        let e = err(text);
        for issue in &e.issues {
            assert!(!issue.message.trim().is_empty(), "{text:?}: {e}");
            assert!(issue.line.is_some(), "{text:?}: {e}");
        }
    }
}

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = scratch("files");
    // A FIFO: opening it used to wait for a writer, forever.
    let fifo = dir.join("fifo.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = load_with(&fifo, &host()).unwrap_err().to_string();
    assert!(
        e.contains("this is a FIFO; a configuration must be a regular file"),
        "{e}"
    );
    // /dev/zero: used to be read until memory ran out.
    let e = load_with(Path::new("/dev/zero"), &host())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/dev/zero: cannot read: this is a character device"),
        "{e}"
    );
    let e = load_with(&dir, &host()).unwrap_err().to_string();
    assert!(e.contains("this is a directory"), "{e}");
    // Too big (sparse: no disk used).
    let big = dir.join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_CONFIG_BYTES + 1).unwrap();
    let e = load_with(&big, &host()).unwrap_err().to_string();
    assert!(e.contains("more than a configuration may have"), "{e}");
    // Not UTF-8: named with its line.
    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"node = \"n1\"\n# caf\xe9\n").unwrap();
    let e = load_with(&latin1, &host()).unwrap_err();
    assert_eq!(e.issues[0].line, Some(2), "{e}");
    assert!(e.issues[0].message.contains("not UTF-8"), "{e}");
    // A symbolic link to a regular file is fine.
    let good = dir.join("good.toml");
    std::fs::write(&good, "node = \"n1\"\n").unwrap();
    let link = dir.join("link.toml");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert_eq!(load_with(&link, &host()).unwrap().node, "n1");
    // check-config says so too, with exit code 2.
    assert_eq!(check_config_main(&fifo), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_names_with_control_characters_are_escaped() {
    let e = load_with(Path::new("/nonexistent/a\u{1b}[2Jb.toml"), &host()).unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("\"/nonexistent/a\\u{1b}[2Jb.toml\": cannot read"),
        "{s}"
    );
}

#[test]
fn bpffs_dir_never_hides_a_directory() {
    let text = |dir: &str| format!("\nbpffs_dir = \"{dir}\"\n");
    let h = host()
        .with_dir("/etc", MountPoint::Occupied("a non-empty directory".into()))
        .with_dir("/srv/empty", MountPoint::EmptyDir)
        .with_dir("/mnt/bpf", MountPoint::Bpffs)
        .with_dir("/var/lib/x", MountPoint::Occupied("not a directory".into()));
    let check = |dir: &str| parse(&text(dir), "test.toml", &h);
    // A directory named wackamole puts the bpffs on its parent: /etc here.
    let e = check("/etc/wackamole").unwrap_err();
    assert_issue(
        &e,
        2,
        "bpffs_dir",
        "the agent would mount a bpf filesystem on \"/etc\" (a non-empty directory)",
    );
    assert!(check("/etc").is_err());
    assert!(check("/var/lib/x").is_err());
    let root = host().with_dir("/", MountPoint::Occupied("a non-empty directory".into()));
    assert!(parse(&text("/"), "test.toml", &root).is_err());
    // `/wackamole` is its own bpffs, never `/`.
    assert!(parse(&text("/wackamole"), "test.toml", &root).is_ok());
    let e = check("/sys/fs/bpf/../../../etc/wackamole").unwrap_err();
    assert_issue(&e, 2, "bpffs_dir", "contains \"..\"");
    for fine in [
        "/sys/fs/bpf/wackamole",
        "/sys/fs/bpf",
        "/sys/fs/bpf/x/y",
        "/srv/empty",
        "/srv/empty/wackamole",
        "/mnt/bpf",
        "/run/wackamole-bpf",
        "/new/dir/wackamole",
    ] {
        if let Err(e) = check(fine) {
            panic!("{fine}: {e}");
        }
    }
    // The real system: /etc is not empty.
    let real = "bpffs_dir = \"/etc/wackamole\"\nnode = \"n1\"\n[[vif]]\naddresses = [\"lo:127.0.0.2/8\"]\n";
    let e = parse(real, "test.toml", &SystemInterfaces).unwrap_err();
    assert_issue(&e, 1, "bpffs_dir", "on \"/etc\" (a non-empty directory)");
    let dir = scratch("bpffs");
    let ok_real = format!(
        "bpffs_dir = \"{}\"\nnode = \"n1\"\n",
        dir.join("wackamole").display()
    );
    parse(&ok_real, "test.toml", &SystemInterfaces).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("file"), "x").unwrap();
    let e = parse(&ok_real, "test.toml", &SystemInterfaces).unwrap_err();
    assert_issue(&e, 1, "bpffs_dir", "(a non-empty directory)");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bpffs_mount_point_matches_the_pin_layout() {
    let m = |d: &str| bpffs_mount_point(Path::new(d));
    assert_eq!(m("/sys/fs/bpf/wackamole"), Path::new("/sys/fs/bpf"));
    assert_eq!(m("/etc/wackamole"), Path::new("/etc"));
    assert_eq!(m("/run/bpf"), Path::new("/run/bpf"));
    assert_eq!(m("/wackamole"), Path::new("/wackamole"));
}

#[test]
fn ipv6_vifs_and_notify_ranges_are_accepted() {
    let cfg = ok("[[vif]]\naddresses = [\"eth0:2001:db8::10/64\"]\n\
         [[vif]]\nname = \"dual\"\naddresses = [\"eth0:192.0.2.10/24\", \"eth1:2001:db8:1::10/128\", \"eth0:fe80::10/64\"]\nnd_router = true\n\
         [notify]\ntargets = [{ range = \"eth0:2001:db8::1/128\", throttle = 10 }, { range = \"eth0:2001:db8::/64\" }]\n");
    assert_eq!(cfg.vifs[0].name, "2001:db8::10");
    assert!(!cfg.vifs[0].nd_router);
    assert_eq!(
        cfg.vifs[1].addresses[1].to_string(),
        "eth1:2001:db8:1::10/128"
    );
    assert!(cfg.vifs[1].nd_router);
    assert_eq!(
        cfg.notify.targets[0].range.to_string(),
        "eth0:2001:db8::1/128"
    );
    assert_eq!(cfg.notify.targets[1].range.prefix, 64);
    // The head address names the VIF in `prefer`, IPv6 too.
    let cfg = ok("prefer = \"2001:db8::10\"\n[[vif]]\naddresses = [\"eth0:2001:db8::10/64\"]\n");
    assert_eq!(cfg.prefer, vec!["2001:db8::10"]);
}

#[test]
fn ipv6_forms_run_cannot_use_are_refused() {
    let cases = [
        (
            "eth0:::/64",
            ":: is the unspecified address, not a usable VIP",
        ),
        ("eth0:::1/128", "::1 is the loopback address, not a usable VIP"),
        (
            "eth0:ff02::1:ff00:10/64",
            "ff02::1:ff00:10 is an IPv6 multicast group: a VIP must be a unicast address",
        ),
        (
            "eth0:::ffff:192.0.2.1/128",
            "::ffff:192.0.2.1 is an IPv4-mapped IPv6 address: write the IPv4 address 192.0.2.1 instead",
        ),
        (
            "eth0:2001:db8::1/129",
            "prefix /129 is out of range (1..=128 for this address)",
        ),
        (
            "eth0:2001:db8::1/64n24",
            "the network hint n24 applies to IPv4 only",
        ),
        ("eth0:2001:db8::g/64", "\"2001:db8::g\" is not an IP address"),
    ];
    for (addr, want) in cases {
        let e = err(&format!("[[vif]]\naddresses = [\"{addr}\"]\n"));
        assert_issue(&e, 2, "vif[0].addresses[0]", want);
        assert_eq!(e.issues.len(), 1, "{addr}: {e}");
    }
    // The same IPv6 VIP twice is a duplicate, on another interface too.
    assert_issue(
        &err("[[vif]]\naddresses = [\"eth0:2001:db8::1/64\", \"eth1:2001:db8::1/64\"]\n"),
        2,
        "vif[0].addresses[1]",
        "VIP 2001:db8::1 is listed twice",
    );
    // The Router flag needs an IPv6 address on the VIF.
    assert_issue(
        &err("[[vif]]\naddresses = [\"eth0:192.0.2.1/24\"]\nnd_router = true\n"),
        3,
        "vif[0].nd_router",
        "the Router flag of neighbour advertisements applies to IPv6 addresses; this VIF has none",
    );
    assert!(
        !ok("[[vif]]\naddresses = [\"eth0:192.0.2.1/24\"]\nnd_router = false\n").vifs[0].nd_router
    );
    assert_issue(
        &err("[[vif]]\naddresses = [\"eth0:2001:db8::1/64\"]\nnd_router = \"yes\"\n"),
        3,
        "vif[0].nd_router",
        "",
    );
    // IPv6 notify ranges: prefix up to 128, on an existing interface.
    assert_issue(
        &err("[notify]\ntargets = [{ range = \"eth0:2001:db8::/129\" }]\n"),
        2,
        "notify.targets[0].range",
        "prefix /129 is out of range (0..=128 for this address)",
    );
    assert_issue(
        &err("[notify]\ntargets = [{ range = \"eth7:2001:db8::1/128\" }]\n"),
        2,
        "notify.targets[0].range",
        "interface eth7 does not exist on this host",
    );
}

/// A valid but risky `mature` is an advisory, not an error: check-config
/// still exits 0, and the default draws none.
#[test]
fn a_short_mature_draws_an_advisory_not_an_error() {
    let base = "node = \"n1\"\n[engine]\nkind = \"corosync\"\n\n[[vif]]\nname = \"web\"\naddresses = [\"eth0:192.0.2.10/24\"]\n";
    assert_eq!(advisories(&ok(base)), Vec::<String>::new());
    let short = ok(&format!("mature = \"500ms\"\n{base}"));
    let said = advisories(&short);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("mature = 500ms") && said[0].contains("two hosts answer"),
        "{said:?}"
    );
    assert!(advisories(&ok(&format!("mature = \"2s\"\n{base}"))).is_empty());
}

// ----- [detector] (the LAN failure detector, issue 11) -----

/// A `[detector]` section (line 1) with `listen` (line 2), `peers`
/// (line 3) and then `extra`.
fn detector(listen: &str, peers: &str, extra: &str) -> String {
    format!("[detector]\nlisten = {listen}\npeers = {peers}\n{extra}enabled = true\n")
}

const PEERS: &str = "[\"10.0.0.2:5407\", \"10.0.0.3:5407\"]";

#[test]
fn detector_absent_is_none() {
    assert_eq!(ok("").detector, None);
    assert_eq!(ok("[xdp]\nlease = \"auto\"\n").detector, None);
}

#[test]
fn detector_not_enabled_is_none() {
    // The sample's empty table, or keys without `enabled = true`: off,
    // and the keys are not judged.
    assert_eq!(ok("[detector]\n").detector, None);
    let text = format!("[detector]\nlisten = \"10.0.0.1:5407\"\npeers = {PEERS}\n");
    assert_eq!(ok(&text).detector, None);
    let off = "[detector]\nenabled = false\nlisten = \"bad\"\n";
    assert_eq!(ok(off).detector, None);
}

#[test]
fn detector_with_defaults() {
    let cfg = ok(&detector("\"10.0.0.1:5407\"", PEERS, ""));
    assert_eq!(
        cfg.detector,
        Some(DetectorConfig {
            listen: "10.0.0.1:5407".parse().unwrap(),
            peers: vec![
                "10.0.0.2:5407".parse().unwrap(),
                "10.0.0.3:5407".parse().unwrap()
            ],
            timing: wackamole::detect::Timing::DEFAULT,
            mode: DetectorMode::Observe,
        })
    );
    assert_eq!(
        wackamole::detect::Timing::DEFAULT,
        wackamole::detect::Timing::new(Duration::from_millis(5), Duration::from_millis(30))
            .unwrap()
    );
}

#[test]
fn detector_every_key() {
    let cfg = ok(&detector(
        "\"[fd00::1]:6000\"",
        "[\"[fd00::2]:6000\", \"[fd00::3]:6001\"]",
        "interval = \"10ms\"\ndeadline = \"1m\"\nmode = \"observe\"\n",
    ));
    let d = cfg.detector.expect("configured");
    assert_eq!(d.listen, "[fd00::1]:6000".parse().unwrap());
    assert_eq!(d.peers.len(), 2);
    assert_eq!(d.timing.interval, Duration::from_millis(10));
    assert_eq!(d.timing.deadline, Duration::from_secs(60));
    assert_eq!(d.mode, DetectorMode::Observe);
    let guard = ok(&detector("\"10.0.0.1:5407\"", PEERS, "mode = \"guard\"\n"));
    assert_eq!(
        guard.detector.expect("configured").mode,
        DetectorMode::Guard
    );
    let act = ok(&detector("\"10.0.0.1:5407\"", PEERS, "mode = \"act\"\n"));
    assert_eq!(act.detector.expect("configured").mode, DetectorMode::Act);
    // The most peers, and the least deadline for an interval.
    let sixteen: Vec<String> = (2..18).map(|n| format!("\"10.0.0.{n}:5407\"")).collect();
    let cfg = ok(&detector(
        "\"10.0.0.1:5407\"",
        &format!("[{}]", sixteen.join(", ")),
        "interval = \"1ms\"\ndeadline = \"6ms\"\n",
    ));
    assert_eq!(cfg.detector.expect("configured").peers.len(), 16);
    // An unspecified `listen` binds every address.
    assert!(ok(&detector("\"0.0.0.0:5407\"", PEERS, ""))
        .detector
        .is_some());
}

#[test]
fn detector_listen_refusals() {
    assert_issue(
        &err(&format!("[detector]\npeers = {PEERS}\nenabled = true\n")),
        1,
        "detector.listen",
        "missing",
    );
    for bad in [
        "\"10.0.0.1\"",
        "\"host:5407\"",
        "\"10.0.0.1:99999\"",
        "\"\"",
    ] {
        assert_issue(
            &err(&detector(bad, PEERS, "")),
            2,
            "detector.listen",
            "not an IP:port address",
        );
    }
    assert_issue(
        &err(&detector("\"10.0.0.1:0\"", PEERS, "")),
        2,
        "detector.listen",
        "port 0",
    );
}

#[test]
fn detector_peers_refusals() {
    let listen = "\"10.0.0.1:5407\"";
    assert_issue(
        &err(&format!("[detector]\nlisten = {listen}\nenabled = true\n")),
        1,
        "detector.peers",
        "missing",
    );
    assert_issue(
        &err(&detector(listen, "[]", "")),
        3,
        "detector.peers",
        "empty",
    );
    let seventeen: Vec<String> = (2..19).map(|n| format!("\"10.0.0.{n}:5407\"")).collect();
    assert_issue(
        &err(&detector(
            listen,
            &format!("[{}]", seventeen.join(", ")),
            "",
        )),
        3,
        "detector.peers",
        "17 peers is more than the detector serves (16",
    );
    let cases = [
        (
            "[\"10.0.0.2:5407\", \"node3\"]",
            1,
            "not an IP:port address",
        ),
        (
            "[\"10.0.0.2:5407\", \"10.0.0.3\"]",
            1,
            "not an IP:port address",
        ),
        ("[\"10.0.0.2:5407\", \"10.0.0.2:5407\"]", 1, "listed twice"),
        ("[\"10.0.0.1:5407\"]", 0, "own `listen` address"),
        (
            "[\"10.0.0.2:5407\", \"[fd00::2]:5407\"]",
            1,
            "address family",
        ),
        ("[\"0.0.0.0:5407\"]", 0, "unspecified address"),
        ("[\"10.0.0.2:0\"]", 0, "port 0"),
    ];
    for (peers, k, needle) in cases {
        assert_issue(
            &err(&detector(listen, peers, "")),
            3,
            &format!("detector.peers[{k}]"),
            needle,
        );
    }
    let v6 = "\"[fd00::1]:5407\"";
    assert_issue(
        &err(&detector(v6, "[\"[::]:5407\"]", "")),
        3,
        "detector.peers[0]",
        "unspecified address",
    );
    assert_issue(
        &err(&detector(v6, "[\"10.0.0.2:5407\"]", "")),
        3,
        "detector.peers[0]",
        "address family",
    );
    // A peer entry that is not a string is the parser's refusal.
    let e = err(&detector(listen, "[5407]", ""));
    assert!(e.issues[0].field.starts_with("detector.peers"), "{e}");
}

#[test]
fn detector_timing_refusals() {
    let base = |extra: &str| err(&detector("\"10.0.0.1:5407\"", PEERS, extra));
    assert_issue(
        &base("interval = \"0\"\n"),
        4,
        "detector.interval",
        "under 1 ms",
    );
    assert_issue(
        &base("interval = \"fast\"\n"),
        4,
        "detector.interval",
        "bad duration",
    );
    assert_issue(
        &base("interval = \"2s\"\n"),
        4,
        "detector.interval",
        "longer than the most",
    );
    assert_issue(
        &base("deadline = \"20ms\"\n"),
        4,
        "detector.deadline",
        "under 6 beat intervals",
    );
    assert_issue(
        &base("interval = \"10ms\"\ndeadline = \"59ms\"\n"),
        5,
        "detector.deadline",
        "under 6 beat intervals",
    );
    // A default deadline too short for the interval given: named at the
    // interval, on the deadline.
    assert_issue(
        &base("interval = \"10ms\"\n"),
        4,
        "detector.deadline",
        "under 6 beat intervals of 10ms (the default): set `deadline` to at least 60ms",
    );
    assert_issue(
        &base("deadline = 30\n"),
        4,
        "detector.deadline",
        "expected a duration string",
    );
    // A refused value is not judged again against its default.
    let e = base("interval = \"fast\"\ndeadline = \"20ms\"\n");
    assert_eq!(e.issues.len(), 1, "{e}");
}

#[test]
fn detector_mode_and_unknown_keys() {
    let base = |extra: &str| err(&detector("\"10.0.0.1:5407\"", PEERS, extra));
    assert_issue(
        &base("mode = \"enforce\"\n"),
        4,
        "detector.mode",
        "\"observe\", \"guard\" or \"act\" (this version)",
    );
    assert_issue(
        &base("port = 5407\n"),
        4,
        "detector.port",
        "unknown field `port`",
    );
    // Every problem of the section at once.
    let e = err(&detector(
        "\"10.0.0.1\"",
        "[]",
        "deadline = \"1ms\"\nmode = \"fence\"\n",
    ));
    for field in [
        "detector.listen",
        "detector.peers",
        "detector.deadline",
        "detector.mode",
    ] {
        assert!(e.for_field(field).is_some(), "{field}: {e}");
    }
}

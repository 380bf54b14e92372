//! Importer for the old wackamole.conf: fixtures import to TOML that
//! validates, values carry over, bad input is refused with its line, and no
//! input makes it panic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use wackamole::config::legacy::{import, LegacyError};
use wackamole::config::*;

fn fixture(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// Imports a fixture and validates the TOML against a host that has eth0
/// and eth1, as the fixtures' hosts did.
fn import_fixture(name: &str) -> (Config, Vec<String>, String) {
    let (_, text) = fixture(name);
    let imp = import(&text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let host = FakeInterfaces::new(["eth0", "eth1"]);
    let cfg = parse(&imp.toml, "imported.toml", &host)
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", imp.toml));
    let notes = imp
        .notes
        .iter()
        .map(|n| format!("{}: {}", n.line, n.message))
        .collect();
    (cfg, notes, imp.toml)
}

fn spread(cfg: &Config) -> &SpreadConfig {
    match &cfg.engine {
        EngineConfig::Spread(s) => s,
        other => panic!("not spread: {other:?}"),
    }
}

#[test]
fn every_fixture_imports_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".conf") {
            import_fixture(&name);
            n += 1;
        }
    }
    assert!(n >= 4, "only {n} fixtures found");
}

#[test]
fn basic_fixture_values() {
    let (cfg, notes, _) = import_fixture("basic.conf");
    assert!(notes.is_empty(), "{notes:?}");
    let s = spread(&cfg);
    assert_eq!(
        s.daemon,
        SpreadDaemon::Tcp {
            port: 4803,
            host: "127.0.0.1".into()
        }
    );
    assert_eq!(s.group, "webpool");
    assert_eq!(s.reconnect_interval, Duration::from_secs(5));
    assert_eq!(cfg.control_socket, Path::new("/var/run/wack.it"));
    assert!(cfg.prefer.is_empty());
    let heads: Vec<&str> = cfg.vifs.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(heads, ["192.0.2.21", "192.0.2.22", "192.0.2.23"]);
    assert_eq!(cfg.vifs[0].addresses[0].reach_bits(), 24);
    assert_eq!(cfg.notify.arp_cache_interval, Duration::from_secs(90));
    assert!(cfg.notify.arp_cache);
    assert_eq!(cfg.notify.targets.len(), 2);
    assert_eq!(cfg.notify.targets[0].range.to_string(), "eth0:192.0.2.1/32");
    assert_eq!(cfg.notify.targets[0].throttle, None);
    assert_eq!(cfg.notify.targets[1].throttle, Some(16));
    assert_eq!(cfg.balance.acquisitions_per_round, Acquisitions::All);
    assert_eq!(cfg.balance.interval, Duration::from_secs(4));
    assert_eq!(cfg.mature, Duration::from_secs(5));
}

#[test]
fn multi_ip_fixture_values() {
    let (cfg, notes, toml) = import_fixture("multi_ip.conf");
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(spread(&cfg).daemon, SpreadDaemon::Unix { port: 4803 });
    assert_eq!(spread(&cfg).group, "fe");
    assert_eq!(cfg.mature, Duration::from_secs(120));
    assert_eq!(cfg.vifs.len(), 3);
    let pair = &cfg.vifs[0].addresses;
    assert_eq!(pair.len(), 2);
    assert_eq!((pair[0].prefix, pair[0].reach_bits()), (32, 24));
    assert_eq!((pair[1].iface.as_str(), pair[1].reach_bits()), ("eth1", 28));
    // No hint in the old file meant n24; the import keeps that reach.
    assert_eq!(cfg.vifs[2].addresses[0].reach_bits(), 24);
    assert!(toml.contains("\"eth0:198.51.100.12/32n24\""), "{toml}");
    assert_eq!(cfg.prefer, vec!["198.51.100.10".to_string()]);
    assert!(cfg.notify.arp_cache);
    assert!(cfg.notify.targets.is_empty());
    assert_eq!(cfg.notify.arp_cache_interval, Duration::from_secs(30));
    assert_eq!(cfg.balance.acquisitions_per_round, Acquisitions::Limit(2));
}

#[test]
fn dynamic_fixture_notes_point_to_hooks() {
    let (cfg, notes, toml) = import_fixture("dynamic.conf");
    let joined = notes.join("\n");
    for (line, needle) in [
        (5, "LogFacility dropped"),
        (6, "ModuleDir dropped"),
        (7, "PerlUseLib dropped"),
        (8, "PerlUse dropped"),
        (9, "[hooks] post_up"),
        (10, "[hooks] on_down"),
        (17, "ping"),
    ] {
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with(&format!("{line}: ")) && n.contains(needle)),
            "no note at line {line} with {needle:?} in:\n{joined}"
        );
    }
    assert!(
        toml.contains(
            "# post_up = \"/path/to/program\"   # was line 9: RunDynamic Reload::restart"
        ),
        "{toml}"
    );
    // throttle 0 meant "no limit".
    assert_eq!(cfg.notify.targets[0].throttle, None);
    assert_eq!(cfg.hooks.post_up, None);
}

#[test]
fn sample_prefer_network_expansion() {
    let text = "Spread = 4803\nGroup = g\nPrefer 10.1.0.0/16\nVirtualInterfaces {\n eth0:10.1.2.3/24\n eth0:10.2.2.3/24\n { eth0:10.1.9.9/24 eth1:172.16.0.1/24 }\n}\n";
    let imp = import(text, "p.conf").unwrap();
    let cfg = parse(&imp.toml, "x", &AnyInterface).unwrap();
    assert_eq!(
        cfg.prefer,
        vec!["10.1.2.3".to_string(), "10.1.9.9".to_string()]
    );
    let text =
        "Group = g\nPrefer 10.1.2.3\nPrefer web1\nPrefer 10.7.0.0/16\nVIFs { eth0:10.1.2.3/24 }\n";
    let imp = import(text, "p.conf").unwrap();
    let cfg = parse(&imp.toml, "x", &AnyInterface).unwrap();
    assert_eq!(cfg.prefer, vec!["10.1.2.3".to_string()]);
    let lines: Vec<usize> = imp.notes.iter().map(|n| n.line).collect();
    assert_eq!(lines, vec![3, 4], "{:?}", imp.notes);
}

#[test]
fn time_units() {
    let imp = import(
        "Group = g\nMature = 2h\nSpreadRetryInterval = 1m\n",
        "t.conf",
    )
    .unwrap();
    let cfg = parse(&imp.toml, "x", &AnyInterface).unwrap();
    assert_eq!(cfg.mature, Duration::from_secs(7200));
    assert_eq!(spread(&cfg).reconnect_interval, Duration::from_secs(60));
    assert!(imp
        .notes
        .iter()
        .any(|n| n.line == 2 && n.message.contains("'h' unit as seconds")));
}

#[test]
fn acquisitions_zero_disables_balancing() {
    let imp = import(
        "Group = g\nBalance {\n AcquisitionsPerRound = 0\n}\n",
        "b.conf",
    )
    .unwrap();
    let cfg = parse(&imp.toml, "x", &AnyInterface).unwrap();
    assert!(!cfg.balance.enabled);
    let note = imp
        .notes
        .iter()
        .find(|n| n.message.contains("never balances"))
        .expect("note");
    assert_eq!(note.line, 3);
}

fn import_err(text: &str) -> LegacyError {
    match import(text, "bad.conf") {
        Ok(i) => panic!("expected an error, got:\n{}", i.toml),
        Err(e) => e,
    }
}

/// More addresses than the XDP map holds: refused at the first one past
/// the limit (4096 pass; with Prefer lines too, which match against them).
#[test]
fn more_addresses_than_the_map_holds_are_refused_at_the_first_past_it() {
    let file = |n: usize| {
        let vifs: String = (0..n)
            .map(|i| format!(" eth0:10.{}.{}.1/32\n", i / 256, i % 256))
            .collect();
        format!(
            "Group = g\nPrefer 10.0.0.0/8\nPrefer 10.1.0.0/16\nVirtualInterfaces {{\n{vifs}}}\n"
        )
    };
    assert!(import(&file(4096), "big.conf").is_ok());
    let e = import_err(&file(4097));
    assert_eq!(e.line, 4 + 4097, "{e}");
    assert!(e.message.contains("at most 4096"), "{e}");
}

#[test]
fn malformed_input_names_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("Group = g\nSpread=4803\n", 2, "spaces around '='"),
        ("Group = g\n\nFrobnicate = 1\n", 3, "unknown directive"),
        ("Group = g\nMature = 5\n", 2, "not a time"),
        ("Group = g\nMature = 5ms\n", 2, "not a time"),
        (
            "Group = g\nVirtualInterfaces {\n eth0:10.0.0.1/24\n 10.0.0.2/24\n}\n",
            4,
            "no interface",
        ),
        (
            "Group = g\nVirtualInterfaces {\n eth0:10.0.0.1/24\n eth0:10.0.0.1/32\n}\n",
            4,
            "listed twice (first at line 3)",
        ),
        (
            "Group = g\nVirtualInterfaces {\n eth0:10.0.0.300/24\n}\n",
            3,
            "invalid IP",
        ),
        (
            "Group = g\nVirtualInterfaces {\n eth0:10.0.0.3/40\n}\n",
            3,
            "invalid IP",
        ),
        (
            "Group = g\nVirtualInterfaces {\n eth0:10.0.0.3\n}\n",
            3,
            "not iface:IP/prefix",
        ),
        (
            "Group = g\nVirtualInterfaces {\n eth0:10.0.0.3/24\n",
            3,
            "unexpected end of file",
        ),
        (
            "Group = g\nBalance {\n AcquisitionsPerRound = some\n}\n",
            3,
            "expected a number or all",
        ),
        (
            "Group = g\nBalance {\n Speed = 3\n}\n",
            3,
            "expected AcquisitionsPerRound or Interval",
        ),
        (
            "Group = g\nNotify {\n eth0:10.0.0.1/32 throttle x\n}\n",
            3,
            "expected a number",
        ),
        (
            "Group = g\nNotify {\n eth0:10.0.0.1/32 throttle 4000000000\n}\n",
            3,
            "too large (at most 1000000",
        ),
        (
            "Group = g\nNotify {\n router\n}\n",
            3,
            "not iface:IP/prefix",
        ),
        ("Group = g\nNotify {\n}\n", 3, "empty Notify"),
        ("Group = g\nSpread = 99999\n", 2, "PORT or PORT@HOST"),
        ("Group = 'a group'\n", 1, "not a valid Spread group"),
        (
            "Group = g\nRunDynamic x:y sideways up\n",
            2,
            "on up, on down",
        ),
        ("Group = g\nControl = '/tmp/x\n", 2, "unterminated"),
        ("Group = g\n}\n", 2, "expected a directive"),
        ("Group\n", 1, "unexpected end of file"),
        ("Group = g\nPrefer {\n}\n", 3, "empty Prefer"),
    ];
    for (text, line, needle) in cases {
        let e = import_err(text);
        assert_eq!(e.line, *line, "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {e}");
        assert!(
            e.to_string().starts_with(&format!("bad.conf:{line}: ")),
            "{e}"
        );
    }
}

#[test]
fn tcp_control_becomes_a_note() {
    let imp = import(
        "Group = g\nControl = 127.0.0.1:2413\nVIFs { eth0:10.0.0.1/24 }\n",
        "c.conf",
    )
    .unwrap();
    assert_eq!(imp.notes.len(), 1, "{:?}", imp.notes);
    assert_eq!(imp.notes[0].line, 2);
    assert!(imp.notes[0].message.contains("absolute unix socket path"));
    assert!(!imp.toml.contains("\ncontrol_socket ="), "{}", imp.toml);
}

#[test]
fn keywords_are_case_insensitive() {
    let imp = import(
        "GROUP = g\nvirtualinterfaces { ETH0:10.0.0.1/24 }\nNOTIFY NONE\nPREFER NONE\n",
        "k.conf",
    )
    .unwrap();
    let cfg = parse(&imp.toml, "x", &AnyInterface).unwrap();
    assert_eq!(cfg.vifs[0].addresses[0].iface, "ETH0");
}

fn legacy_word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Spread".to_string()),
        Just("=".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("Group".to_string()),
        Just("Notify".to_string()),
        Just("Prefer".to_string()),
        Just("None".to_string()),
        Just("arp-cache".to_string()),
        Just("throttle".to_string()),
        Just("ping".to_string()),
        Just("Balance".to_string()),
        Just("AcquisitionsPerRound".to_string()),
        Just("all".to_string()),
        Just("interval".to_string()),
        Just("VirtualInterfaces".to_string()),
        Just("RunDynamic".to_string()),
        Just("on".to_string()),
        Just("up".to_string()),
        Just("Mature".to_string()),
        Just("#".to_string()),
        Just("\n".to_string()),
        "[0-9]{1,4}[smh]?",
        "(eth[01]:)?[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,2}(n[0-9]{1,2})?",
        "[a-z]{1,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = import(&s, "fuzz.conf");
    }

    #[test]
    fn never_panics_on_keyword_soup_and_output_validates(words in proptest::collection::vec(legacy_word(), 0..40)) {
        let text = words.join(" ");
        if let Ok(imp) = import(&text, "soup.conf") {
            // Whatever it accepts, it must translate to a valid config.
            let checked = parse(&imp.toml, "soup.toml", &AnyInterface);
            prop_assert!(checked.is_ok(), "{:?}\n{}", checked.err(), imp.toml);
        }
    }

    #[test]
    fn toml_parser_never_panics(s in "\\PC{0,300}") {
        let _ = parse(&s, "fuzz.toml", &FakeInterfaces::new(["eth0"]));
    }
}

#[test]
fn a_crafted_file_name_cannot_inject_keys() {
    let text = "Group = g\nVIFs { eth0:10.0.0.1/24 }\n";
    let name = "x.conf\nnode = \"evil\"\nbpffs_dir = \"/etc/wackamole\"\n#";
    let imp = import(text, name).unwrap();
    let cfg = parse(&imp.toml, "x", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{}", imp.toml));
    assert_ne!(cfg.node, "evil", "{}", imp.toml);
    assert_eq!(cfg.bpffs_dir, Path::new(DEFAULT_BPFFS_DIR));
    let first = imp.toml.lines().next().unwrap();
    assert_eq!(
        first,
        "# Imported from \"x.conf\\nnode = \\\"evil\\\"\\nbpffs_dir = \\\"/etc/wackamole\\\"\\n#\" by `wackamole import-conf`."
    );
    // Other control characters too (TOML refuses them in a comment).
    let imp = import(text, "a\rb\u{1b}c.conf").unwrap();
    assert!(
        imp.toml
            .starts_with("# Imported from \"a\\rb\\u{1b}c.conf\""),
        "{}",
        imp.toml
    );
    // And its errors show the name escaped.
    let e = import("Frob = 1\n", "a\u{1b}[2J.conf").unwrap_err();
    assert!(e.to_string().starts_with("\"a\\u{1b}[2J.conf\":1: "), "{e}");
}

#[test]
fn values_the_new_format_refuses_are_normal_errors_at_their_line() {
    // These were "the translation does not validate (please report this)",
    // followed by the generated TOML's own errors.
    let cases: &[(&str, usize, &str)] = &[
        (
            "Group = g\nMature = 25h\n",
            2,
            "cannot be imported (as `mature`): 25h is longer than the most this setting allows (24h)",
        ),
        (
            "Group = g\nArp-Cache = 9999h\n",
            2,
            "(as `notify.arp_cache_interval`)",
        ),
        (
            "Group = g\nVIFs {\n eth0:10.0.0.1/24\n eth0.with.a.long.name:10.0.0.2/24\n}\n",
            4,
            "is not an interface name",
        ),
        (
            "Group = g\nNotify {\n a/b:10.0.0.1/32\n}\n",
            3,
            "is not an interface name",
        ),
    ];
    for (text, line, needle) in cases {
        match import(text, "bad.conf") {
            Ok(imp) => panic!("{text:?}: imported:\n{}", imp.toml),
            Err(e) => {
                assert_eq!(e.line, *line, "{text:?}: {e}");
                assert!(e.message.contains(needle), "{text:?}: {e}");
                assert!(!e.message.contains("please report"), "{e}");
            }
        }
    }
    // More VIPs than the XDP map holds: the first one past the limit.
    let mut text = String::from("Group = g\nVIFs {\n");
    for i in 0..=MAX_ADDRESSES {
        text.push_str(&format!(" eth0:10.0.{}.{}/16\n", i >> 8, i & 0xff));
    }
    text.push_str("}\n");
    let e = import(&text, "big.conf").unwrap_err();
    assert_eq!(e.line, 3 + MAX_ADDRESSES, "{e}");
    assert!(e.message.contains("the XDP map holds at most 4096"), "{e}");
}

#[test]
fn errors_quote_input_escaped_and_short() {
    let long = "x".repeat(10_000);
    let e = import(&format!("{long} = 1\n"), "l.conf").unwrap_err();
    assert!(e.to_string().len() < 200, "{} bytes", e.to_string().len());
    assert!(e.message.contains("... (10000 bytes)"), "{e}");
    let e = import(
        "Group = g\nVIFs { \u{1b}]0;x\u{7}:10.0.0.1/24 }\n",
        "e.conf",
    )
    .unwrap_err();
    assert!(!e.to_string().chars().any(char::is_control), "{e:?}");
    let e = import(
        "Group = g\nPrefer 'a\u{1b}b'\nVIFs { eth0:10.0.0.1/24 }\n",
        "p.conf",
    );
    let notes = e.unwrap().notes;
    assert!(
        notes
            .iter()
            .all(|n| !n.message.chars().any(char::is_control)),
        "{notes:?}"
    );
    let e = import("Group = g\nControl = '\u{1b}x'\n", "c.conf").unwrap();
    assert!(
        e.notes
            .iter()
            .any(|n| n.line == 2 && n.message.contains("\"\\u{1b}x\"")),
        "{:?}",
        e.notes
    );
}

#[test]
fn notes_with_control_characters_stay_comments() {
    // A carriage return in a RunDynamic target went raw into a TOML comment,
    // which TOML refuses: the import failed as "please report this".
    let text = "Group = g\nRunDynamic 'mod\rx:func' on up\nVIFs { eth0:10.0.0.1/24 }\n";
    let imp = import(text, "r.conf").unwrap_or_else(|e| panic!("{e}"));
    parse(&imp.toml, "x", &AnyInterface).unwrap();
    assert!(imp.toml.contains("mod\\rx:func"), "{}", imp.toml);
}

#[test]
fn import_conf_refuses_special_files() {
    assert_eq!(
        wackamole::config::legacy::import_conf_main(Path::new("/dev/zero")),
        2
    );
    let e = read_text(Path::new("/dev/zero")).unwrap_err();
    assert!(e.1.contains("character device"), "{e:?}");
}

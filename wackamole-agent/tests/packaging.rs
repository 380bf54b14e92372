//! What the Debian package ships cannot drift from the code it describes:
//! wackamole.toml(5) and the sample against the keys the config parser
//! accepts, wackamole(8) against the subcommands, the Grafana dashboard
//! against the metrics the agent exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use wackamole::cli::generate::{config_page, parse_sample, SAMPLE_CONFIG};
use wackamole::config::{parse, FakeInterfaces};
use wackamole::daemon::metrics::{render, MetricsSnapshot, VifMetrics};

fn conf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../conf")
        .join(name)
}

/// Keys the parser accepts in the table written by `header` ("" = top
/// level), read from its "unknown field `zz_probe`, expected ..." answer;
/// None when `header` does not name a table of the schema.
fn accepted_under(header: &str) -> Option<Vec<String>> {
    let text = format!("{header}\nzz_probe = 1\n");
    let e = parse(&text, "probe.toml", &FakeInterfaces::new(["eth0"])).err()?;
    let msg = e
        .issues
        .iter()
        .find(|i| i.message.starts_with("unknown field `zz_probe`"))?
        .message
        .clone();
    // "expected one of `a`, `b`", "expected `a` or `b`", "there are no fields"
    let expected = msg.split_once("expected").map(|(_, e)| e).unwrap_or("");
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect(),
    )
}

/// Every path the parser accepts, and which of them are tables.
fn parser_schema() -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut paths, mut tables) = (BTreeSet::new(), BTreeSet::new());
    let mut todo = vec![String::new()];
    while let Some(prefix) = todo.pop() {
        let headers = if prefix.is_empty() {
            vec![String::new()]
        } else {
            vec![format!("[{prefix}]"), format!("[[{prefix}]]")]
        };
        let Some(keys) = headers.iter().find_map(|h| accepted_under(h)) else {
            continue;
        };
        if !prefix.is_empty() {
            tables.insert(prefix.clone());
        }
        for k in keys {
            let path = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            paths.insert(path.clone());
            todo.push(path);
        }
    }
    (paths, tables)
}

#[test]
fn probing_finds_the_schema() {
    let (paths, tables) = parser_schema();
    // Spot checks that the probe itself works (the real check is below).
    for p in [
        "node",
        "engine.kind",
        "vif.addresses",
        "notify.targets.throttle",
    ] {
        assert!(paths.contains(p), "{p} not found in {paths:?}");
    }
    for t in ["engine", "vif", "notify", "notify.targets", "log"] {
        assert!(tables.contains(t), "{t} not a table in {tables:?}");
    }
    assert!(!tables.contains("node") && !tables.contains("prefer"));
}

#[test]
fn every_config_key_is_in_the_sample_and_the_page() {
    let (paths, tables) = parser_schema();
    let doc = parse_sample(SAMPLE_CONFIG).expect("sample structure");
    let page = config_page("test").expect("page");
    let keys = doc.keys();
    for path in &paths {
        if tables.contains(path) && doc.tables.iter().any(|t| &t.name == path) {
            continue; // a [table] of its own: its keys are checked
        }
        let k = keys
            .iter()
            .find(|k| &k.path == path)
            .unwrap_or_else(|| panic!("key `{path}` is accepted but not in conf/wackamole.toml"));
        assert!(
            !k.text.is_empty(),
            "key `{path}` has no comment in conf/wackamole.toml"
        );
        let tag = format!("\\fB{path}\\fR");
        assert!(page.contains(&tag), "wackamole.toml(5) lacks {tag}");
    }
    // And nothing documented that the parser refuses.
    for k in &keys {
        assert!(
            paths.contains(&k.path),
            "documented `{}` is not a key",
            k.path
        );
    }
    for t in doc.tables.iter().filter(|t| !t.name.is_empty()) {
        assert!(tables.contains(&t.name), "[{}] is not a table", t.name);
        assert!(
            !t.text.is_empty(),
            "[{}] has no comment above it in the sample",
            t.name
        );
    }
}

#[test]
fn sample_structure_is_read_as_written() {
    let doc = parse_sample(SAMPLE_CONFIG).expect("sample structure");
    assert!(
        doc.intro[0].starts_with("wackamole.toml:"),
        "{:?}",
        doc.intro
    );
    let keys = doc.keys();
    let get = |p: &str| {
        keys.iter()
            .find(|k| k.path == p)
            .unwrap_or_else(|| panic!("{p}"))
    };
    assert_eq!(get("node").example.as_deref(), Some("\"web1\""));
    assert!(get("node").set);
    let deadline = get("engine.watchdog_deadline");
    assert!(!deadline.set && deadline.text[0].starts_with("...and reports"));
    let targets = get("notify.targets");
    assert_eq!(
        targets.example, None,
        "a multi-line value is not shown inline"
    );
    assert_eq!(targets.fields.len(), 2);
    assert!(get("notify.targets.throttle").text[0].starts_with("packets per second"));
    assert!(!targets.text[0].contains("throttle:"));
    // The repeated [[vif]] keeps the first description.
    assert!(get("vif.addresses").text[0].starts_with("Addresses that always move"));
}

fn wackamole() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wackamole"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wackamole-packaging-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The subcommands `--help` lists (without `help`), as full command lines.
fn subcommands(path: &[&str]) -> Vec<String> {
    let out = wackamole()
        .args(&path[1..])
        .arg("--help")
        .output()
        .expect("run wackamole --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut found = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            let Some(name) = line
                .strip_prefix("  ")
                .and_then(|l| l.split_whitespace().next())
            else {
                break;
            };
            if name == "help" {
                continue;
            }
            let mut sub: Vec<&str> = path.to_vec();
            sub.push(name);
            found.push(sub.join(" "));
            found.extend(subcommands(&sub));
        }
    }
    found
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = temp_dir("man");
    let out = wackamole()
        .args(["generate", "man"])
        .arg(&dir)
        .output()
        .expect("run wackamole generate man");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.join("wackamole.8")).expect("wackamole.8");
    let config = std::fs::read_to_string(dir.join("wackamole.toml.5")).expect("wackamole.toml.5");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq"),
        "one preamble, then the title"
    );
    assert!(page.contains(".TH wackamole 8 "), "{}", &page[..200]);
    let subs = subcommands(&["wackamole"]);
    for must in [
        "wackamole run",
        "wackamole check-config",
        "wackamole ctl move",
    ] {
        assert!(subs.iter().any(|s| s == must), "{must} not in {subs:?}");
    }
    for sub in &subs {
        assert!(
            page.contains(&format!(".SS \"{sub}\"")),
            "wackamole(8) lacks a subsection for `{sub}`"
        );
    }
    assert!(
        !page.contains("generate"),
        "the hidden generate command is not documented"
    );
    assert!(page.contains("\\-\\-json") && page.contains("\\-\\-socket"));
    assert!(page.contains(".SH \"EXIT STATUS\"") && page.contains(".SH FILES"));
    assert_eq!(page.matches(".ie \\n(.g").count(), 1);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(config, config_page(version).expect("page"));
    assert!(config.contains(&format!("wackamole {version}")));
}

#[test]
fn completions_for_bash_zsh_fish() {
    let dir = temp_dir("completions");
    for (shell, file) in [
        ("bash", "wackamole"),
        ("zsh", "_wackamole"),
        ("fish", "wackamole.fish"),
    ] {
        let out = wackamole()
            .args(["generate", "completions", shell])
            .arg(&dir)
            .output()
            .expect("run wackamole generate completions");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.join(file)).expect(file);
        assert!(
            text.contains("check-config") && text.contains("undrain"),
            "{shell} completions lack subcommands"
        );
        assert!(
            !text.contains("generate"),
            "{shell} completions offer the hidden generate"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Metric names a scrape may return, from `# TYPE` lines of the rendered
/// exposition (histograms answer as _bucket, _sum and _count; counters also
/// as _total, as OpenMetrics encoders name their samples).
fn exported_metrics() -> BTreeSet<String> {
    let mut snapshot = MetricsSnapshot {
        vifs: vec![VifMetrics {
            name: "www".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    snapshot.observe_failover(0.01);
    let mut out = BTreeSet::new();
    for line in render(&snapshot).lines() {
        let mut f = line.split_whitespace();
        if (f.next(), f.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (f.next(), f.next()) else {
            continue;
        };
        out.insert(name.to_string());
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            "counter" if !name.ends_with("_total") => &["_total"],
            _ => &[],
        };
        out.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    out
}

/// Every `wackamole_*` identifier in the dashboard's strings (queries,
/// variable definitions).
fn dashboard_metrics(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::String(s) => {
            let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
            for word in s.split(|c: char| !ident(c)) {
                if word.starts_with("wackamole_") {
                    out.insert(word.to_string());
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| dashboard_metrics(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| dashboard_metrics(x, out)),
        _ => {}
    }
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let text = std::fs::read_to_string(conf("grafana-dashboard.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let exported = exported_metrics();
    assert!(
        exported.contains("wackamole_failover_seconds_bucket"),
        "{exported:?}"
    );
    let mut used = BTreeSet::new();
    dashboard_metrics(&dash, &mut used);
    for m in &used {
        assert!(
            exported.contains(m),
            "the dashboard queries {m}, which the agent does not export ({exported:?})"
        );
    }
    // The views the dashboard exists for.
    for m in [
        "wackamole_vif_owned",
        "wackamole_failover_seconds_bucket",
        "wackamole_vif_packets_total",
        "wackamole_vif_bytes_total",
        "wackamole_vif_drops_total",
        "wackamole_engine_up",
        "wackamole_view_changes_total",
    ] {
        assert!(used.contains(m), "the dashboard does not show {m}");
    }
    let panels = dash["panels"].as_array().expect("panels");
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(
            targets
                .iter()
                .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
            "panel {} has a target without a query",
            p["title"]
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}");
    }
}

//! TOML text to a validated [`Config`]: serde for shape (with spans), then
//! every semantic check, collecting all problems with their line and field.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::address::{parse_notify_range, parse_vif_address};
use super::duration::parse_duration;
use super::error::{line_of, ConfigError, Issue, LineIndex};
use super::iface::InterfaceCheck;
use super::raw::*;
use super::*;

/// Longest Spread group name (MAX_GROUP_NAME 32 with its NUL).
const SPREAD_GROUP_MAX: usize = 31;
/// Longest Corosync CPG group name (CPG_MAX_NAME_LENGTH 128).
const CPG_GROUP_MAX: usize = 128;

/// Parses and validates TOML `text`. `file_name` is used in messages only;
/// `host` answers whether interfaces exist and what the host is called.
pub fn parse(
    text: &str,
    file_name: &str,
    host: &dyn InterfaceCheck,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text)
        .map_err(|e| ConfigError::single(serde_issue(text, file_name, e.message(), e.span())))?;
    let mut cx = Cx {
        lines: LineIndex::new(text),
        file: file_name,
        issues: Vec::new(),
    };
    let cfg = build(&mut cx, raw, host);
    if cx.issues.is_empty() {
        Ok(cfg)
    } else {
        cx.issues
            .sort_by_key(|i| (i.line.is_none(), i.line.unwrap_or(0)));
        Err(ConfigError { issues: cx.issues })
    }
}

/// Turns a TOML/serde error into an issue, finding the field path from the
/// text before the span (serde does not give the path).
fn serde_issue(
    text: &str,
    file: &str,
    message: &str,
    span: Option<std::ops::Range<usize>>,
) -> Issue {
    // toml's messages may span lines ("invalid table header\nexpected ..."):
    // keep one issue per line.
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let Some(span) = span else {
        return Issue {
            file: file.into(),
            line: None,
            field: String::new(),
            message: if message.is_empty() {
                "invalid TOML (the parser gave no detail)".into()
            } else {
                message
            },
        };
    };
    let offset = span.start.min(text.len());
    let line = line_of(text, offset);
    // Some syntax errors come with no words at all (a carriage return in a
    // comment gave `FILE:1: ` and nothing else): say what is there.
    if message.is_empty() {
        // A character the grammar refuses: no field to name.
        return Issue {
            file: file.into(),
            line: Some(line),
            field: String::new(),
            message: syntax_fallback(text, offset),
        };
    }
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    let field = field_path_at(text, offset, unknown);
    Issue {
        file: file.into(),
        line: Some(line),
        field,
        message,
    }
}

/// A message for a syntax error the parser gave no words for: the column
/// and the character found there.
fn syntax_fallback(text: &str, offset: usize) -> String {
    let offset = (0..=offset.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    match text[offset..].chars().next() {
        None => format!("invalid TOML: unexpected end of file (column {column})"),
        Some(c) if c.is_control() => format!(
            "invalid TOML at column {column}: control character U+{:04X} is not allowed here (TOML allows tab, and a carriage return only before a line feed)",
            u32::from(c)
        ),
        Some(c) => format!("invalid TOML at column {column}: unexpected {c:?}"),
    }
}

/// One level of inline nesting while scanning a table's body.
enum Frame {
    /// An array value; `key` is None for an array nested in an array.
    Array { key: Option<String>, idx: usize },
    /// An inline table; `key` is None for a table that is an array element.
    Table {
        key: Option<String>,
        last_key: Option<String>,
    },
}

/// Dotted path of the value at `offset`: the enclosing `[table]` or
/// `[[array]]` (with its index), inline arrays and tables around the
/// offset, then the key being defined (or `unknown`, the key serde refused).
fn field_path_at(text: &str, offset: usize, unknown: Option<&str>) -> String {
    let offset = (0..=offset.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..offset];
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(text.len());
    let on_header = text[line_start..line_end].trim_start().starts_with('[')
        && !text[line_start..offset].contains('=');

    // The table header in force, found line by line (headers start a line).
    let mut table = String::new();
    let mut body_start = 0;
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut pos = 0;
    for l in text[..line_start].split_inclusive('\n') {
        let t = l.trim();
        if let Some(inner) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = inner.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
            body_start = pos + l.len();
        } else if let Some(inner) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = inner.trim().to_string();
            body_start = pos + l.len();
        }
        pos += l.len();
    }
    let mut parts: Vec<String> = Vec::new();
    if on_header {
        // The refused name is the header's own table: report it under its parent.
        if let Some(p) = table.rsplit_once('.') {
            parts.push(p.0.to_string());
        }
        if let Some(name) = unknown {
            parts.push(name.to_string());
        }
        return parts.join(".");
    }
    if !table.is_empty() {
        parts.push(table);
    }
    let (stack, top_key) = scan_inline(&text[body_start.min(offset)..offset]);
    for frame in &stack {
        match frame {
            Frame::Array { key: Some(k), idx } => parts.push(format!("{k}[{idx}]")),
            Frame::Array { key: None, idx } => match parts.last_mut() {
                Some(last) => last.push_str(&format!("[{idx}]")),
                None => parts.push(format!("[{idx}]")),
            },
            Frame::Table { key: Some(k), .. } => parts.push(k.clone()),
            Frame::Table { key: None, .. } => {}
        }
    }
    let current = match stack.last() {
        None => top_key,
        Some(Frame::Table { last_key, .. }) => last_key.clone(),
        Some(Frame::Array { .. }) => None,
    };
    if let Some(name) = unknown {
        parts.push(name.to_string());
    } else if let Some(k) = current {
        parts.push(k);
    }
    parts.join(".")
}

/// Scans a table body up to the error: returns the open inline frames and
/// the last top-level key assigned.
fn scan_inline(body: &str) -> (Vec<Frame>, Option<String>) {
    let mut stack: Vec<Frame> = Vec::new();
    let mut top_key: Option<String> = None;
    let mut token = String::new();
    let mut after_eq = false;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => {
                while let Some(&(_, n)) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            '"' | '\'' => {
                let rest = &body[i..];
                let triple: String = std::iter::repeat_n(c, 3).collect();
                let (content, len) = if rest.starts_with(&triple) {
                    let close = rest[3..].find(&triple).map(|j| j + 6).unwrap_or(rest.len());
                    (String::new(), close)
                } else {
                    let mut j = 1;
                    let bytes = rest.as_bytes();
                    while j < bytes.len() && bytes[j] != c as u8 && bytes[j] != b'\n' {
                        if c == '"' && bytes[j] == b'\\' {
                            j += 1;
                        }
                        j += 1;
                    }
                    let inner = rest.get(1..j.min(rest.len())).unwrap_or("").to_string();
                    (inner, (j + 1).min(rest.len()))
                };
                if !after_eq {
                    token.push_str(&content);
                }
                // Skip the rest of the string.
                while let Some(&(k, _)) = chars.peek() {
                    if k >= i + len {
                        break;
                    }
                    chars.next();
                }
            }
            '=' => {
                let key = std::mem::take(&mut token).trim().to_string();
                match stack.last_mut() {
                    Some(Frame::Table { last_key, .. }) => *last_key = Some(key),
                    _ => top_key = Some(key),
                }
                after_eq = true;
            }
            '[' | '{' => {
                let key = if after_eq {
                    match stack.last() {
                        Some(Frame::Table { last_key, .. }) => last_key.clone(),
                        Some(Frame::Array { .. }) => None,
                        None => top_key.clone(),
                    }
                } else {
                    None
                };
                stack.push(if c == '[' {
                    Frame::Array { key, idx: 0 }
                } else {
                    Frame::Table {
                        key,
                        last_key: None,
                    }
                });
                after_eq = matches!(stack.last(), Some(Frame::Array { .. }));
                token.clear();
            }
            ']' | '}' => {
                stack.pop();
                after_eq = matches!(stack.last(), Some(Frame::Array { .. }));
            }
            ',' => {
                match stack.last_mut() {
                    Some(Frame::Array { idx, .. }) => *idx += 1,
                    Some(Frame::Table { .. }) => after_eq = false,
                    None => {}
                }
                token.clear();
            }
            '\n' if stack.is_empty() => {
                after_eq = false;
                token.clear();
            }
            c if c.is_whitespace() => {}
            c => {
                if !after_eq {
                    token.push(c);
                }
            }
        }
    }
    (stack, top_key)
}

struct Cx<'a> {
    lines: LineIndex,
    file: &'a str,
    issues: Vec<Issue>,
}

impl Cx<'_> {
    fn at<T>(&mut self, value: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) {
        let line = self.lines.line(value.span().start);
        self.issues.push(Issue {
            file: self.file.into(),
            line: Some(line),
            field: field.into(),
            message: message.into(),
        });
    }

    fn nowhere(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            file: self.file.into(),
            line: None,
            field: field.into(),
            message: message.into(),
        });
    }

    fn line<T>(&self, value: &Spanned<T>) -> usize {
        self.lines.line(value.span().start)
    }

    /// A duration field; `positive` refuses zero, and `max` bounds it so that
    /// the daemon's timer arithmetic (`Instant + Duration`) cannot overflow
    /// and a typo does not silently mean "never".
    fn duration(
        &mut self,
        v: Option<&S<toml::Value>>,
        field: &str,
        default: Duration,
        positive: bool,
        max: Duration,
    ) -> Duration {
        let Some(v) = v else { return default };
        let d = match v.get_ref() {
            toml::Value::String(s) => match parse_duration(s) {
                Ok(d) => d,
                Err(e) => {
                    self.at(v, field, e.0);
                    return default;
                }
            },
            toml::Value::Integer(0) => Duration::ZERO,
            other => {
                self.at(
                    v,
                    field,
                    format!(
                        "expected a duration string with a unit such as \"4s\" or \"250ms\", found {}",
                        describe(other)
                    ),
                );
                return default;
            }
        };
        if positive && d.is_zero() {
            self.at(v, field, "must be longer than zero");
        }
        if d > max {
            self.at(
                v,
                field,
                format!(
                    "{} is longer than the most this setting allows ({})",
                    match v.get_ref() {
                        toml::Value::String(s) => s.trim().to_string(),
                        _ => super::duration::format_duration(d),
                    },
                    super::duration::format_duration(max)
                ),
            );
            return default;
        }
        d
    }

    fn abs_path(&mut self, v: Option<&S<String>>, field: &str) -> Option<PathBuf> {
        let v = v?;
        let p = PathBuf::from(v.get_ref());
        if !p.is_absolute() {
            self.at(
                v,
                field,
                format!("{:?} is not an absolute path", v.get_ref()),
            );
        }
        Some(p)
    }
}

/// The agent mounts a bpffs on [`bpffs_mount_point`] unless one is there
/// already; a mount hides what the directory held (think `/etc`). Allowed:
/// anything under `/sys/fs/bpf` (the kernel's bpffs), a directory that is
/// already a bpffs, and an empty or missing directory. No `..`, which would
/// make the `/sys/fs/bpf` rule meaningless.
fn check_bpffs_dir(dir: &std::path::Path, host: &dyn InterfaceCheck) -> Result<(), String> {
    use std::path::Component;
    if dir.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{} contains \"..\": write the directory without it",
            shown(&dir.display().to_string())
        ));
    }
    let mount = bpffs_mount_point(dir);
    if mount.starts_with("/sys/fs/bpf") {
        return Ok(());
    }
    match host.mount_point(&mount) {
        MountPoint::Missing | MountPoint::Bpffs | MountPoint::EmptyDir | MountPoint::Unknown => {
            Ok(())
        }
        MountPoint::Occupied(what) => Err(format!(
            "the agent would mount a bpf filesystem on {} ({what}), hiding what is there: use a directory under /sys/fs/bpf, one that already is a bpffs, or an empty or new directory",
            shown(&mount.display().to_string())
        )),
    }
}

/// Why `name` cannot name a node or a VIF, if it cannot: names are printed
/// by `ctl` and in logs, sent to the peers (nodes) and passed to hooks as
/// arguments (VIFs), so no control characters (terminal escapes), no white
/// space, a bounded length, and a VIF name is never taken for an option.
fn name_problem(name: &str, max: usize, vif: bool) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > max {
        return Some(format!("{} bytes is longer than {max}", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Some("it contains a control character".into());
    }
    if name.chars().any(char::is_whitespace) {
        return Some("it contains white space".into());
    }
    if vif && name.starts_with('-') {
        return Some("it starts with '-' (hooks would read it as an option)".into());
    }
    None
}

/// A value from the file as quoted in a message: escaped (no control
/// characters reach the terminal) and cut short.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 80;
    if value.len() <= MAX {
        return format!("{value:?}");
    }
    let cut = (0..=MAX)
        .rev()
        .find(|&i| value.is_char_boundary(i))
        .unwrap_or(0);
    format!("{:?}... ({} bytes)", &value[..cut], value.len())
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("string {s:?}"),
        toml::Value::Integer(i) => format!("integer {i}"),
        toml::Value::Float(f) => format!("float {f}"),
        toml::Value::Boolean(b) => format!("boolean {b}"),
        toml::Value::Datetime(d) => format!("date-time {d}"),
        toml::Value::Array(_) => "an array".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

fn build(cx: &mut Cx<'_>, raw: RawConfig, host: &dyn InterfaceCheck) -> Config {
    let node = match &raw.node {
        Some(n) => {
            let s = n.get_ref().trim();
            if let Some(why) = name_problem(s, MAX_NODE_NAME, false) {
                cx.at(
                    n,
                    "node",
                    format!("{} is not a usable node name: {why}", shown(n.get_ref())),
                );
            }
            s.to_string()
        }
        None => match host.hostname() {
            Some(h) => {
                if let Some(why) = name_problem(&h, MAX_NODE_NAME, false) {
                    cx.nowhere(
                        "node",
                        format!(
                            "not set, and the host name {} is not a usable node name ({why}): set `node = \"name\"`",
                            shown(&h)
                        ),
                    );
                }
                h
            }
            None => {
                cx.nowhere(
                    "node",
                    "not set and the host name is unknown: set `node = \"name\"`",
                );
                String::new()
            }
        },
    };
    let weight = match &raw.weight {
        None => 1,
        Some(w) => match u32::try_from(*w.get_ref()) {
            Ok(v) if (1..=65_535).contains(&v) => v,
            _ => {
                cx.at(
                    w,
                    "weight",
                    format!("{} is out of range (1..=65535)", w.get_ref()),
                );
                1
            }
        },
    };
    let engine = build_engine(cx, raw.engine.as_ref());
    let control_socket = cx
        .abs_path(raw.control_socket.as_ref(), "control_socket")
        .unwrap_or_else(|| DEFAULT_CONTROL_SOCKET.into());
    let bpffs_dir = match cx.abs_path(raw.bpffs_dir.as_ref(), "bpffs_dir") {
        None => DEFAULT_BPFFS_DIR.into(),
        Some(dir) => {
            if let (Some(v), true) = (&raw.bpffs_dir, dir.is_absolute()) {
                if let Err(why) = check_bpffs_dir(&dir, host) {
                    cx.at(v, "bpffs_dir", why);
                }
            }
            dir
        }
    };
    let vifs = build_vifs(cx, &raw.vif, host);
    let prefer = build_prefer(cx, raw.prefer.as_ref(), &vifs);
    let notify = build_notify(cx, raw.notify.as_ref(), host);
    let balance = build_balance(cx, raw.balance.as_ref());
    let mature = cx.duration(
        raw.mature.as_ref(),
        "mature",
        Duration::from_secs(5),
        false,
        limits::MATURE,
    );
    let hooks = build_hooks(cx, raw.hooks.as_ref());
    let xdp = build_xdp(cx, raw.xdp.as_ref());
    // Off unless `enabled = true` (the sample's empty table is off).
    let detector = raw
        .detector
        .as_ref()
        .filter(|d| d.get_ref().enabled.as_ref().is_some_and(|e| *e.get_ref()))
        .and_then(|d| build_detector(cx, d));
    let announce = build_announce(cx, raw.announce.as_ref());
    let metrics_listen = raw.metrics_listen.as_ref().and_then(|m| {
        m.get_ref()
            .parse::<SocketAddr>()
            .map_err(|_| {
                cx.at(
                    m,
                    "metrics_listen",
                    format!(
                        "{:?} is not an IP:port address (e.g. \"127.0.0.1:9469\")",
                        m.get_ref()
                    ),
                )
            })
            .ok()
    });
    let level = match raw.log.as_ref().and_then(|l| l.level.as_ref()) {
        None => LogLevel::Info,
        Some(l) => match l.get_ref().to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => {
                cx.at(
                    l,
                    "log.level",
                    format!(
                        "{:?} is not one of trace, debug, info, warn, error",
                        l.get_ref()
                    ),
                );
                LogLevel::Info
            }
        },
    };
    Config {
        node,
        weight,
        engine,
        control_socket,
        bpffs_dir,
        prefer,
        vifs,
        notify,
        balance,
        mature,
        hooks,
        xdp,
        detector,
        announce,
        metrics_listen,
        log: LogConfig { level },
    }
}

fn group_name(cx: &mut Cx<'_>, g: Option<&S<String>>, max: usize, engine: &str) -> String {
    let Some(g) = g else {
        return DEFAULT_GROUP.into();
    };
    let s = g.get_ref();
    if s.is_empty() || s.len() > max || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        cx.at(
            g,
            "engine.group",
            format!("{s:?} is not a valid {engine} group name (1..={max} bytes, no spaces)"),
        );
    }
    s.clone()
}

fn build_engine(cx: &mut Cx<'_>, e: Option<&RawEngine>) -> EngineConfig {
    let kind = e
        .and_then(|e| e.kind.as_ref())
        .map(|k| (k.get_ref().as_str(), Some(k)))
        .unwrap_or(("corosync", None));
    let spread = match kind {
        ("corosync", _) => false,
        ("spread", _) => true,
        (other, Some(k)) => {
            let msg = format!("{other:?} is not an engine: use \"corosync\" or \"spread\"");
            cx.at(k, "engine.kind", msg);
            false
        }
        (_, None) => false,
    };
    let none = RawEngine {
        kind: None,
        group: None,
        daemon: None,
        reconnect_interval: None,
        watchdog_interval: None,
        watchdog_deadline: None,
        require_quorum: None,
        trusted_uid: None,
        takeover_floor: None,
    };
    let e = e.unwrap_or(&none);
    let foreign = |cx: &mut Cx<'_>, present: Option<usize>, key: &str, owner: &str| {
        if let Some(line) = present {
            cx.issues.push(Issue {
                file: cx.file.into(),
                line: Some(line),
                field: format!("engine.{key}"),
                message: format!("only applies to kind = \"{owner}\""),
            });
        }
    };
    // `engine.watchdog_interval` unless absent or "auto" (the sample's):
    // each engine's default.
    let given = e
        .watchdog_interval
        .as_ref()
        .filter(|v| v.get_ref().as_str() != Some("auto"));
    if spread {
        // "0" turns the watchdog off.
        let watchdog_interval = cx.duration(
            given,
            "engine.watchdog_interval",
            crate::membership::spread::DEFAULT_WATCHDOG_INTERVAL,
            false,
            limits::WATCHDOG_INTERVAL,
        );
        let watchdog_deadline = cx.duration(
            e.watchdog_deadline.as_ref(),
            "engine.watchdog_deadline",
            crate::membership::spread::DEFAULT_WATCHDOG_DEADLINE,
            true,
            limits::WATCHDOG_DEADLINE,
        );
        if watchdog_deadline <= watchdog_interval {
            let msg = "must be longer than engine.watchdog_interval";
            match e.watchdog_deadline.as_ref().or(given) {
                Some(v) => cx.at(v, "engine.watchdog_deadline", msg),
                None => cx.nowhere("engine.watchdog_deadline", msg),
            }
        }
        let takeover_floor = cx.duration(
            e.takeover_floor.as_ref(),
            "engine.takeover_floor",
            crate::membership::spread::DEFAULT_TAKEOVER_FLOOR,
            true,
            limits::TAKEOVER_FLOOR,
        );
        if let Some(v) = &e.takeover_floor {
            if takeover_floor < limits::TAKEOVER_FLOOR_MIN {
                let msg = format!(
                    "{takeover_floor:?} is below {:?}: no Spread ring re-forms that fast; use the daemons' TokenTimeout",
                    limits::TAKEOVER_FLOOR_MIN
                );
                cx.at(v, "engine.takeover_floor", msg);
            } else if !watchdog_interval.is_zero()
                && watchdog_interval * 3 > crate::daemon::lease::safe_lease(takeover_floor)
            {
                // The lease is renewed only by probes that came back: fewer
                // than three per lease and one late probe lapses it.
                let msg = format!(
                    "{takeover_floor:?} gives a {:?} fencing lease, which needs a watchdog probe at least every {:?} (three per lease); engine.watchdog_interval is {watchdog_interval:?}",
                    crate::daemon::lease::safe_lease(takeover_floor),
                    crate::daemon::lease::safe_lease(takeover_floor) / 3
                );
                cx.at(v, "engine.takeover_floor", msg);
            }
        }
        let watchdog_interval = (!watchdog_interval.is_zero()).then_some(watchdog_interval);
        let rq = e.require_quorum.as_ref().map(|v| cx.line(v));
        foreign(cx, rq, "require_quorum", "corosync");
        let daemon = match &e.daemon {
            None => SpreadDaemon::Unix { port: 4803 },
            Some(d) => match parse_spread_daemon(d.get_ref()) {
                Ok(sd) => sd,
                Err(msg) => {
                    cx.at(d, "engine.daemon", msg);
                    SpreadDaemon::Unix { port: 4803 }
                }
            },
        };
        let trusted_uid =
            e.trusted_uid
                .as_ref()
                .and_then(|v| match parse_trusted_uid(v.get_ref(), &daemon) {
                    Ok(uid) => Some(uid),
                    Err(msg) => {
                        cx.at(v, "engine.trusted_uid", msg);
                        None
                    }
                });
        let group = group_name(cx, e.group.as_ref(), SPREAD_GROUP_MAX, "Spread");
        let reconnect_interval = cx.duration(
            e.reconnect_interval.as_ref(),
            "engine.reconnect_interval",
            Duration::from_secs(5),
            true,
            limits::RECONNECT_INTERVAL,
        );
        EngineConfig::Spread(SpreadConfig {
            daemon,
            group,
            reconnect_interval,
            watchdog_interval,
            watchdog_deadline,
            trusted_uid,
            takeover_floor,
        })
    } else {
        let dl = e.daemon.as_ref().map(|v| cx.line(v));
        foreign(cx, dl, "daemon", "spread");
        let tl = e.trusted_uid.as_ref().map(|v| cx.line(v));
        foreign(cx, tl, "trusted_uid", "spread");
        let rl = e.reconnect_interval.as_ref().map(|v| cx.line(v));
        foreign(cx, rl, "reconnect_interval", "spread");
        // Corosync's is read from the running totem timers.
        let fl = e.takeover_floor.as_ref().map(|v| cx.line(v));
        foreign(cx, fl, "takeover_floor", "spread");
        let group = group_name(cx, e.group.as_ref(), CPG_GROUP_MAX, "Corosync CPG");
        // Not given: the engine derives the probe period from the deadline
        // and the takeover floor (a probe every 18 ms with the LAN-fast
        // profile, 228 ms with corosync's defaults).
        let watchdog_interval = given.map(|v| {
            cx.duration(
                Some(v),
                "engine.watchdog_interval",
                Duration::from_millis(20),
                true,
                limits::WATCHDOG_INTERVAL,
            )
        });
        // No deadline: the engine derives it from the running corosync's totem
        // timers (200 ms with the LAN-fast profile).
        let watchdog_deadline = e.watchdog_deadline.as_ref().map(|v| {
            cx.duration(
                Some(v),
                "engine.watchdog_deadline",
                Duration::ZERO,
                true,
                limits::WATCHDOG_DEADLINE,
            )
        });
        if watchdog_deadline.is_some_and(|d| watchdog_interval.is_some_and(|i| d <= i)) {
            let msg = "must be longer than engine.watchdog_interval";
            match e.watchdog_deadline.as_ref().or(given) {
                Some(v) => cx.at(v, "engine.watchdog_deadline", msg),
                None => cx.nowhere("engine.watchdog_deadline", msg),
            }
        }
        EngineConfig::Corosync(CorosyncConfig {
            group,
            watchdog_interval,
            watchdog_deadline,
            require_quorum: e
                .require_quorum
                .as_ref()
                .map(|b| *b.get_ref())
                .unwrap_or(false),
        })
    }
}

/// `engine.trusted_uid`: a numeric uid, meaningful only with a unix-socket
/// daemon (over TCP there are no peer credentials to check).
pub(crate) fn parse_trusted_uid(v: &toml::Value, daemon: &SpreadDaemon) -> Result<u32, String> {
    let uid = match v {
        // u32::MAX is (uid_t)-1, "no user".
        toml::Value::Integer(i) => match u32::try_from(*i) {
            Ok(uid) if uid != u32::MAX => uid,
            _ => return Err(format!("{i} is not a uid (0..=4294967294)")),
        },
        other => {
            return Err(format!(
                "expected the numeric uid of the Spread daemon's user (`id -u spread`), found {}",
                describe(other)
            ))
        }
    };
    if let SpreadDaemon::Tcp { .. } = daemon {
        return Err(format!(
            "only applies to a unix-socket daemon (daemon = \"PORT\"); over TCP ({daemon}) the daemon's credentials cannot be checked"
        ));
    }
    Ok(uid)
}

/// `4803` / `"4803"` (unix socket) or `"4803@host"` (TCP).
pub(crate) fn parse_spread_daemon(v: &toml::Value) -> Result<SpreadDaemon, String> {
    let text = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.clone(),
        other => {
            return Err(format!(
                "expected \"PORT\" or \"PORT@HOST\", found {}",
                describe(other)
            ))
        }
    };
    let (port_txt, host) = match text.split_once('@') {
        Some((p, h)) => (p, Some(h)),
        None => (text.as_str(), None),
    };
    let port = match port_txt.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("{text:?}: {port_txt:?} is not a port (1..=65535); write \"4803\" or \"4803@127.0.0.1\"")),
    };
    match host {
        None => Ok(SpreadDaemon::Unix { port }),
        Some(h) if !h.is_empty() && !h.chars().any(|c| c.is_whitespace() || c == '@') => {
            Ok(SpreadDaemon::Tcp {
                port,
                host: h.to_string(),
            })
        }
        Some(h) => Err(format!("{text:?}: {h:?} is not a host name or address")),
    }
}

fn build_vifs(cx: &mut Cx<'_>, raw: &[RawVif], host: &dyn InterfaceCheck) -> Vec<Vif> {
    let mut vifs = Vec::with_capacity(raw.len());
    let mut seen_addr: HashMap<IpAddr, (String, usize)> = HashMap::new();
    // name -> (vif index, line, written explicitly)
    let mut seen_name: HashMap<String, (usize, usize, bool)> = HashMap::new();
    // Addresses listed so far, and where the first one past the limit is.
    let mut total = 0usize;
    let mut over: Option<(String, usize)> = None;
    for (i, rv) in raw.iter().enumerate() {
        // Sized to the list: a grown Vec keeps room for four (thousands of
        // one-address VIFs live as long as the agent).
        let listed = rv.addresses.as_ref().map_or(0, |l| l.get_ref().len());
        let mut addresses = Vec::with_capacity(listed.min(MAX_ADDRESSES));
        match &rv.addresses {
            None => match &rv.name {
                Some(n) => cx.at(
                    n,
                    format!("vif[{i}].addresses"),
                    "missing: list the VIF's addresses, e.g. [\"eth0:10.2.3.4/24\"]",
                ),
                None => cx.nowhere(
                    format!("vif[{i}].addresses"),
                    "missing: list the VIF's addresses",
                ),
            },
            Some(list) if list.get_ref().is_empty() => cx.at(
                list,
                format!("vif[{i}].addresses"),
                "empty: a VIF needs at least one address",
            ),
            Some(list) => {
                for (j, a) in list.get_ref().iter().enumerate() {
                    let field = format!("vif[{i}].addresses[{j}]");
                    total += 1;
                    if total == MAX_ADDRESSES + 1 {
                        over = Some((field.clone(), cx.line(a)));
                    }
                    match parse_vif_address(a.get_ref()) {
                        Err(e) => cx.at(a, &field, e.0),
                        Ok(va) => {
                            let line = cx.line(a);
                            if let Some(why) = unusable_vip(va.addr) {
                                cx.at(a, &field, why);
                            }
                            if !host.interface_exists(&va.iface) {
                                cx.at(
                                    a,
                                    &field,
                                    format!("interface {} does not exist on this host", va.iface),
                                );
                            }
                            if let Some((other, other_line)) = seen_addr.get(&va.addr) {
                                let msg = format!(
                                    "VIP {} is listed twice (also {} at line {})",
                                    va.addr, other, other_line
                                );
                                cx.at(a, &field, msg);
                            } else {
                                seen_addr.insert(va.addr, (field.clone(), line));
                            }
                            addresses.push(va);
                        }
                    }
                }
            }
        }
        let name = match &rv.name {
            Some(n) => {
                let s = n.get_ref();
                if let Some(why) = name_problem(s, MAX_VIF_NAME, true) {
                    cx.at(
                        n,
                        format!("vif[{i}].name"),
                        format!("{} is not a usable VIF name: {why}", shown(s)),
                    );
                }
                s.clone()
            }
            None => addresses
                .first()
                .map(|a| a.addr.to_string())
                .unwrap_or_default(),
        };
        if !name.is_empty() {
            let line = rv
                .name
                .as_ref()
                .map(|n| cx.line(n))
                .or_else(|| rv.addresses.as_ref().map(|a| cx.line(a)));
            let explicit = rv.name.is_some();
            if let Some(&(other, other_line, other_explicit)) = seen_name.get(&name) {
                // Two defaulted names clash only when their first addresses
                // do, which is already reported as a duplicate VIP.
                if !(explicit || other_explicit) {
                    let nd_router = build_nd_router(cx, rv, i, &addresses);
                    vifs.push(Vif {
                        name,
                        addresses,
                        nd_router,
                    });
                    continue;
                }
                let msg = format!(
                    "VIF name {name:?} is used twice (also vif[{other}] at line {other_line})"
                );
                cx.issues.push(Issue {
                    file: cx.file.into(),
                    line,
                    field: format!("vif[{i}].name"),
                    message: msg,
                });
            } else {
                seen_name.insert(name.clone(), (i, line.unwrap_or(0), explicit));
            }
        }
        let nd_router = build_nd_router(cx, rv, i, &addresses);
        vifs.push(Vif {
            name,
            addresses,
            nd_router,
        });
    }
    if let Some((field, line)) = over {
        cx.issues.push(Issue {
            file: cx.file.into(),
            line: Some(line),
            field,
            message: format!(
                "too many addresses: the file lists {total}, the XDP map holds at most {MAX_ADDRESSES} (MAX_VIPS); this is the first one past the limit"
            ),
        });
    }
    vifs
}

/// Why `addr` cannot be a VIP, for the IPv6 forms the agent cannot plumb
/// or announce (the kernel or the XDP responder would refuse them at run
/// time): the unspecified and loopback addresses, multicast groups (never
/// the target of a solicitation) and IPv4-mapped addresses.
fn unusable_vip(addr: IpAddr) -> Option<String> {
    let IpAddr::V6(v6) = addr else { return None };
    if v6.is_unspecified() {
        Some(format!("{v6} is the unspecified address, not a usable VIP"))
    } else if v6.is_loopback() {
        Some(format!("{v6} is the loopback address, not a usable VIP"))
    } else if v6.is_multicast() {
        Some(format!(
            "{v6} is an IPv6 multicast group: a VIP must be a unicast address"
        ))
    } else {
        v6.to_ipv4_mapped().map(|v4| {
            format!("{v6} is an IPv4-mapped IPv6 address: write the IPv4 address {v4} instead")
        })
    }
}

/// `vif[i].nd_router`: only meaningful with an IPv6 address on the VIF.
fn build_nd_router(cx: &mut Cx<'_>, rv: &RawVif, i: usize, addresses: &[VifAddress]) -> bool {
    let Some(flag) = &rv.nd_router else {
        return false;
    };
    let on = *flag.get_ref();
    // Unparsable addresses are reported already; judge only a full list.
    let complete = rv
        .addresses
        .as_ref()
        .is_some_and(|l| l.get_ref().len() == addresses.len() && !addresses.is_empty());
    if on && complete && !addresses.iter().any(|a| a.addr.is_ipv6()) {
        cx.at(
            flag,
            format!("vif[{i}].nd_router"),
            "the Router flag of neighbour advertisements applies to IPv6 addresses; this VIF has none",
        );
    }
    on
}

fn build_prefer(cx: &mut Cx<'_>, raw: Option<&S<toml::Value>>, vifs: &[Vif]) -> Vec<String> {
    let Some(p) = raw else { return Vec::new() };
    let refs: Vec<String> = match p.get_ref() {
        toml::Value::String(s) if s.eq_ignore_ascii_case("none") => Vec::new(),
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(items) => {
            let mut out = Vec::new();
            for (k, item) in items.iter().enumerate() {
                match item {
                    toml::Value::String(s) => out.push(s.clone()),
                    other => cx.at(
                        p,
                        format!("prefer[{k}]"),
                        format!("expected a VIF name or address, found {}", describe(other)),
                    ),
                }
            }
            out
        }
        other => {
            cx.at(
                p,
                "prefer",
                format!(
                    "expected \"none\", a VIF name or address, or a list of them; found {}",
                    describe(other)
                ),
            );
            Vec::new()
        }
    };
    // Lookups by map: a list of thousands of VIFs and as many preferences
    // stays linear.
    let by_name: HashMap<&str, usize> = vifs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, v)| (v.name.as_str(), i))
        .collect();
    let by_head: HashMap<IpAddr, usize> = vifs
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(i, v)| v.addresses.first().map(|a| (a.addr, i)))
        .collect();
    let mut taken: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut names: Vec<String> = Vec::new();
    for (k, r) in refs.iter().enumerate() {
        let field = if matches!(p.get_ref(), toml::Value::Array(_)) {
            format!("prefer[{k}]")
        } else {
            "prefer".to_string()
        };
        let found = by_name.get(r.as_str()).copied().or_else(|| {
            r.parse::<IpAddr>()
                .ok()
                .and_then(|ip| by_head.get(&ip).copied())
        });
        match found {
            None => cx.at(
                p,
                field,
                format!("no VIF is named {} or has it as first address", shown(r)),
            ),
            Some(i) if !taken.insert(i) => cx.at(
                p,
                field,
                format!("VIF {} is preferred twice", shown(&vifs[i].name)),
            ),
            Some(i) => names.push(vifs[i].name.clone()),
        }
    }
    names
}

fn build_notify(
    cx: &mut Cx<'_>,
    raw: Option<&RawNotify>,
    host: &dyn InterfaceCheck,
) -> NotifyConfig {
    let Some(n) = raw else {
        return NotifyConfig {
            targets: Vec::new(),
            arp_cache: false,
            arp_cache_interval: Duration::from_secs(60),
        };
    };
    let mut targets = Vec::new();
    for (k, t) in n.targets.iter().enumerate() {
        let range = match &t.get_ref().range {
            None => {
                cx.at(
                    t,
                    format!("notify.targets[{k}].range"),
                    "missing: e.g. range = \"eth0:10.2.3.0/24\"",
                );
                None
            }
            Some(r) => match parse_notify_range(r.get_ref()) {
                Err(e) => {
                    cx.at(r, format!("notify.targets[{k}].range"), e.0);
                    None
                }
                Ok(range) => {
                    if !host.interface_exists(&range.iface) {
                        cx.at(
                            r,
                            format!("notify.targets[{k}].range"),
                            format!("interface {} does not exist on this host", range.iface),
                        );
                    }
                    Some(range)
                }
            },
        };
        let throttle = match &t.get_ref().throttle {
            None => None,
            Some(th) => match u32::try_from(*th.get_ref()) {
                Ok(v) if (1..=super::MAX_THROTTLE).contains(&v) => Some(v),
                _ => {
                    cx.at(
                        th,
                        format!("notify.targets[{k}].throttle"),
                        format!(
                            "{} packets/s is out of range: at least 1, at most {} (omit throttle for no limit)",
                            th.get_ref(),
                            super::MAX_THROTTLE
                        ),
                    );
                    None
                }
            },
        };
        if let Some(range) = range {
            targets.push(NotifyTarget { range, throttle });
        }
    }
    NotifyConfig {
        targets,
        arp_cache: n.arp_cache.as_ref().map(|b| *b.get_ref()).unwrap_or(false),
        arp_cache_interval: cx.duration(
            n.arp_cache_interval.as_ref(),
            "notify.arp_cache_interval",
            Duration::from_secs(60),
            true,
            limits::ARP_CACHE_INTERVAL,
        ),
    }
}

fn build_balance(cx: &mut Cx<'_>, raw: Option<&RawBalance>) -> BalanceConfig {
    let mut b = BalanceConfig {
        enabled: true,
        acquisitions_per_round: Acquisitions::Limit(1),
        interval: Duration::from_secs(4),
        one_shot: false,
    };
    let Some(r) = raw else { return b };
    if let Some(a) = &r.acquisitions_per_round {
        match a.get_ref() {
            toml::Value::String(s) if s.eq_ignore_ascii_case("all") => {
                b.acquisitions_per_round = Acquisitions::All
            }
            toml::Value::Integer(n) if *n >= 1 && *n <= i64::from(u32::MAX) => {
                b.acquisitions_per_round = Acquisitions::Limit(*n as u32)
            }
            toml::Value::Integer(0) => cx.at(
                a,
                "balance.acquisitions_per_round",
                "0 would never balance: use at least 1 or \"all\" (or set balance.enabled = false)",
            ),
            other => cx.at(
                a,
                "balance.acquisitions_per_round",
                format!(
                    "expected a number >= 1 or \"all\", found {}",
                    describe(other)
                ),
            ),
        }
    }
    b.interval = cx.duration(
        r.interval.as_ref(),
        "balance.interval",
        b.interval,
        true,
        limits::BALANCE_INTERVAL,
    );
    b.one_shot = r.one_shot.as_ref().map(|v| *v.get_ref()).unwrap_or(false);
    b.enabled = r.enabled.as_ref().map(|v| *v.get_ref()).unwrap_or(true);
    b
}

fn build_hooks(cx: &mut Cx<'_>, raw: Option<&RawHooks>) -> HooksConfig {
    let Some(h) = raw else {
        return HooksConfig {
            on_up: None,
            on_down: None,
            post_up: None,
            post_down: None,
            timeout: Duration::from_secs(10),
        };
    };
    HooksConfig {
        on_up: cx.abs_path(h.on_up.as_ref(), "hooks.on_up"),
        on_down: cx.abs_path(h.on_down.as_ref(), "hooks.on_down"),
        post_up: cx.abs_path(h.post_up.as_ref(), "hooks.post_up"),
        post_down: cx.abs_path(h.post_down.as_ref(), "hooks.post_down"),
        timeout: cx.duration(
            h.timeout.as_ref(),
            "hooks.timeout",
            Duration::from_secs(10),
            true,
            limits::HOOK_TIMEOUT,
        ),
    }
}

fn build_xdp(cx: &mut Cx<'_>, raw: Option<&RawXdp>) -> XdpConfig {
    let mode = match raw.and_then(|x| x.mode.as_ref()) {
        None => XdpMode::Auto,
        Some(m) => match m.get_ref().as_str() {
            "auto" => XdpMode::Auto,
            "native" | "drv" => XdpMode::Native,
            "skb" | "generic" => XdpMode::Skb,
            other => {
                cx.at(
                    m,
                    "xdp.mode",
                    format!("{other:?} is not one of \"auto\", \"native\", \"skb\""),
                );
                XdpMode::Auto
            }
        },
    };
    let lease = match raw.and_then(|x| x.lease.as_ref()) {
        None => Lease::Auto,
        Some(v) if v.get_ref().as_str() == Some("auto") => Lease::Auto,
        Some(v) => match cx.duration(
            Some(v),
            "xdp.lease",
            Duration::ZERO,
            false,
            limits::XDP_LEASE,
        ) {
            d if d.is_zero() => Lease::Off,
            d => Lease::Fixed(d),
        },
    };
    XdpConfig {
        mode,
        lease,
        allow_private_bpffs: raw
            .and_then(|x| x.allow_private_bpffs.as_ref())
            .is_some_and(|b| *b.get_ref()),
        standby_addresses: raw
            .and_then(|x| x.standby_addresses.as_ref())
            .is_some_and(|b| *b.get_ref()),
    }
}

/// `[detector]`: `None` (with the problems recorded) unless every key is
/// usable.
fn build_detector(cx: &mut Cx<'_>, raw: &S<RawDetector>) -> Option<DetectorConfig> {
    let d = raw.get_ref();
    let listen = match &d.listen {
        None => {
            cx.at(
                raw,
                "detector.listen",
                "missing: this node's UDP address for beats, e.g. \"10.0.0.1:5407\"",
            );
            None
        }
        Some(l) => match ip_port(cx, l, "detector.listen", "10.0.0.1:5407") {
            None => None,
            Some(a) if a.port() == 0 => {
                cx.at(
                    l,
                    "detector.listen",
                    format!("{a}: port 0 is not a port the peers can send beats to"),
                );
                None
            }
            Some(a) => Some(a),
        },
    };
    let peers = build_detector_peers(cx, raw, listen);
    let before = cx.issues.len();
    let interval = cx.duration(
        d.interval.as_ref(),
        "detector.interval",
        crate::detect::Timing::DEFAULT.interval,
        false,
        limits::DETECTOR_INTERVAL,
    );
    let deadline = cx.duration(
        d.deadline.as_ref(),
        "detector.deadline",
        crate::detect::Timing::DEFAULT.deadline,
        false,
        limits::DETECTOR_DEADLINE,
    );
    // Judged together only when both were read (no error about a default
    // standing in for a refused value).
    let timing = if cx.issues.len() == before {
        match crate::detect::Timing::new(interval, deadline) {
            Ok(t) => Some(t),
            Err(mut msg) => {
                // Timing refuses the interval itself, or the deadline for it.
                let (field, at) = if interval < Duration::from_millis(1) {
                    ("detector.interval", d.interval.as_ref())
                } else if let Some(v) = &d.deadline {
                    ("detector.deadline", Some(v))
                } else {
                    msg.push_str(&format!(
                        " (the default): set `deadline` to at least {:?}",
                        interval * crate::detect::Timing::MIN_BEATS
                    ));
                    ("detector.deadline", d.interval.as_ref())
                };
                match at {
                    Some(v) => cx.at(v, field, msg),
                    None => cx.at(raw, field, msg),
                }
                None
            }
        }
    } else {
        None
    };
    let mode = match &d.mode {
        None => Some(DetectorMode::Observe),
        Some(m) => match m.get_ref().as_str() {
            "observe" => Some(DetectorMode::Observe),
            "guard" => Some(DetectorMode::Guard),
            "act" => Some(DetectorMode::Act),
            other => {
                cx.at(
                    m,
                    "detector.mode",
                    format!(
                        "{} is not supported: \"observe\", \"guard\" or \"act\" (this version)",
                        shown(other)
                    ),
                );
                None
            }
        },
    };
    Some(DetectorConfig {
        listen: listen?,
        peers: peers?,
        timing: timing?,
        mode: mode?,
    })
}

/// An `IP:port` address (surrounding blanks allowed), or the problem
/// recorded on `field` with `example`.
fn ip_port(cx: &mut Cx<'_>, v: &S<String>, field: &str, example: &str) -> Option<SocketAddr> {
    let parsed = v.get_ref().trim().parse::<SocketAddr>().ok();
    if parsed.is_none() {
        cx.at(
            v,
            field,
            format!(
                "{} is not an IP:port address (e.g. \"{example}\")",
                shown(v.get_ref())
            ),
        );
    }
    parsed
}

/// `detector.peers`: 1..=`MAX_ECHOES` distinct `IP:port` addresses of other
/// nodes, of `listen`'s family (when `listen` is known). `None` unless every
/// entry is usable.
fn build_detector_peers(
    cx: &mut Cx<'_>,
    raw: &S<RawDetector>,
    listen: Option<SocketAddr>,
) -> Option<Vec<SocketAddr>> {
    use crate::detect::beat::MAX_ECHOES;
    let Some(list) = &raw.get_ref().peers else {
        cx.at(
            raw,
            "detector.peers",
            "missing: list every other node's `listen` address, e.g. [\"10.0.0.2:5407\"]",
        );
        return None;
    };
    let entries = list.get_ref();
    if entries.is_empty() {
        cx.at(
            list,
            "detector.peers",
            "empty: list every other node's `listen` address (at least one)",
        );
        return None;
    }
    let mut ok = true;
    if entries.len() > MAX_ECHOES {
        cx.at(
            list,
            "detector.peers",
            format!(
                "{} peers is more than the detector serves ({MAX_ECHOES}, clusters of up to {} nodes)",
                entries.len(),
                MAX_ECHOES + 1
            ),
        );
        ok = false;
    }
    let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
    let mut peers = Vec::with_capacity(entries.len());
    for (j, e) in entries.iter().enumerate() {
        let field = format!("detector.peers[{j}]");
        let Some(addr) = ip_port(cx, e, &field, "10.0.0.2:5407") else {
            ok = false;
            continue;
        };
        let problem = if addr.port() == 0 {
            Some(format!("{addr}: port 0 is not a port beats can be sent to"))
        } else if addr.ip().is_unspecified() {
            Some(format!(
                "{} is the unspecified address: a peer is another node's `listen` address",
                addr.ip()
            ))
        } else if let Some(k) = seen.get(&addr) {
            Some(format!("{addr} is listed twice (also detector.peers[{k}])"))
        } else if listen == Some(addr) {
            Some(format!(
                "{addr} is this node's own `listen` address: list only the other nodes"
            ))
        } else {
            match listen {
                Some(l) if l.is_ipv4() != addr.is_ipv4() => Some(format!(
                    "{addr} is {} but `listen` ({l}) is {}: beats go out of that one socket, so every peer must be of its address family",
                    if addr.is_ipv4() { "IPv4" } else { "IPv6" },
                    if l.is_ipv4() { "IPv4" } else { "IPv6" },
                )),
                _ => None,
            }
        };
        seen.entry(addr).or_insert(j);
        match problem {
            Some(msg) => {
                cx.at(e, &field, msg);
                ok = false;
            }
            None => peers.push(addr),
        }
    }
    ok.then_some(peers)
}

fn build_announce(cx: &mut Cx<'_>, raw: Option<&RawAnnounce>) -> AnnounceConfig {
    let burst_count = match raw.and_then(|a| a.burst_count.as_ref()) {
        None => 3,
        Some(c) => match u32::try_from(*c.get_ref()) {
            Ok(v) if (1..=100).contains(&v) => v,
            _ => {
                cx.at(
                    c,
                    "announce.burst_count",
                    format!("{} is out of range (1..=100)", c.get_ref()),
                );
                3
            }
        },
    };
    let burst_spacing = cx.duration(
        raw.and_then(|a| a.burst_spacing.as_ref()),
        "announce.burst_spacing",
        Duration::from_millis(100),
        false,
        limits::BURST_SPACING,
    );
    let refresh = cx.duration(
        raw.and_then(|a| a.refresh_interval.as_ref()),
        "announce.refresh_interval",
        Duration::ZERO,
        false,
        limits::REFRESH_INTERVAL,
    );
    AnnounceConfig {
        burst_count,
        burst_spacing,
        refresh_interval: (!refresh.is_zero()).then_some(refresh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_from_text() {
        let t = "a = 1\n[x]\nb = [1, { c = 2, d = 3 }]\n[[v]]\n[[v]]\ne = { f = [0, [1, 2]] }\n";
        assert_eq!(field_path_at(t, t.find("1\n").unwrap(), None), "a");
        let d = t.find("d =").unwrap();
        assert_eq!(field_path_at(t, d, Some("d")), "x.b[1].d");
        assert_eq!(field_path_at(t, d + 4, None), "x.b[1].d");
        let two = t.find("2]").unwrap();
        assert_eq!(field_path_at(t, two, None), "v[1].e.f[1][1]");
        assert_eq!(field_path_at(t, t.find("[x]").unwrap() + 1, Some("x")), "x");
    }

    proptest! {
        #[test]
        fn field_path_never_panics(text in "\\PC{0,120}", at in 0usize..200) {
            let _ = field_path_at(&text, at, None);
            let _ = field_path_at(&text, at, Some("k"));
        }

        #[test]
        fn field_path_on_tomlish_text(parts in proptest::collection::vec(prop_oneof![
            Just("["), Just("]"), Just("{"), Just("}"), Just(","), Just("="), Just("\""), Just("'"),
            Just("#"), Just("\n"), Just("[[a]]\n"), Just("[b]\n"), Just("k"), Just(" "), Just("\"\"\""),
        ], 0..60), at in 0usize..200) {
            let text: String = parts.concat();
            let _ = field_path_at(&text, at, None);
        }
    }
}

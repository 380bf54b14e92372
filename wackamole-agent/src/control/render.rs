//! Human output for the CLI (`--json` prints the reply line as received).
//!
//! Node and VIF names (and error texts that quote them) come from peers and
//! the daemon: every string is passed through [`printable`] so a name with
//! escape sequences or newlines cannot drive the operator's terminal or forge
//! table rows.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use super::protocol::{ListReply, Reply, StatusReply};

/// Renders a reply: JSON passthrough with `json`, else tables / messages.
/// Errors render as `error: ...`.
pub fn render(reply: &Reply, json: bool) -> String {
    if json {
        return json_printable(&reply.to_line());
    }
    if !reply.ok {
        let why = reply.error.as_deref().unwrap_or("unknown error");
        return format!("error: {}\n", printable(why));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut out = String::new();
    if let Some(list) = &reply.list {
        out += &render_list(list);
    }
    if let Some(status) = &reply.status {
        out += &render_status(status, now);
    }
    if let Some(msg) = &reply.message {
        out += &printable(msg);
        out.push('\n');
    }
    if out.is_empty() {
        out += "ok\n";
    }
    out
}

/// The `list` table: one row per VIF.
pub fn render_list(list: &ListReply) -> String {
    let header = [
        "VIF",
        "ADDRESSES",
        "OWNER",
        "STATE",
        "PACKETS",
        "BYTES",
        "ARP",
        "DROPS",
    ];
    let rows: Vec<Vec<String>> = list
        .vifs
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                if v.addresses.is_empty() {
                    "-".into()
                } else {
                    v.addresses.join(",")
                },
                v.owner.clone().unwrap_or_else(|| "-".into()),
                v.state.clone(),
                v.packets.to_string(),
                v.bytes.to_string(),
                v.arp_replies.to_string(),
                v.drops.to_string(),
            ]
        })
        .collect();
    // Counters are right-aligned.
    table(
        &header,
        &rows,
        &[false, false, false, false, true, true, true, true],
    )
}

/// The `status` summary; `now_unix_ms` dates the last failover.
pub fn render_status(s: &StatusReply, now_unix_ms: u64) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| *out += &format!("{k:<14}{}\n", printable(v));
    line(&mut out, "node", &s.node);
    line(&mut out, "engine", &s.engine);
    line(&mut out, "view", &s.view);
    line(&mut out, "mature", if s.mature { "yes" } else { "no" });
    line(&mut out, "leader", s.leader.as_deref().unwrap_or("-"));
    let failover = match &s.last_failover {
        None => "never".to_string(),
        Some(f) => format!(
            "{} ago, took {} ({})",
            age(now_unix_ms.saturating_sub(f.at_unix_ms)),
            micros(f.took_us),
            f.reason
        ),
    };
    line(&mut out, "last failover", &failover);
    if let Some(d) = &s.detector {
        let names = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        line(
            &mut out,
            "detector",
            &format!(
                "{}, fence {}, lost {}, condemned {}; beats {} sent, {} received, {} ignored",
                d.mode,
                if d.fenced {
                    "LAPSED (too few peers echo)"
                } else {
                    "holds"
                },
                names(&d.lost),
                names(&d.condemned),
                d.beats_sent,
                d.beats_received,
                d.beats_ignored
            ),
        );
    }
    out += &format!("members ({})\n", s.members.len());
    let rows: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                if m.mature { "yes" } else { "no" }.into(),
                if m.drained { "yes" } else { "no" }.into(),
                m.vifs.to_string(),
            ]
        })
        .collect();
    for l in table(
        &["NAME", "MATURE", "DRAINED", "VIFS"],
        &rows,
        &[false, false, false, true],
    )
    .lines()
    {
        out += "  ";
        out += l;
        out.push('\n');
    }
    out
}

fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 10_000_000 {
        format!("{}.{:01} ms", us / 1000, (us % 1000) / 100)
    } else {
        format!("{} s", us / 1_000_000)
    }
}

/// True for characters that must not reach a terminal raw: C0 and C1
/// controls, DEL, and the bidirectional overrides that reorder what is shown.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as a visible escape (`\n`,
/// `\x1b`, `\u{9b}`); borrowed when there is nothing to escape.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out += "\\n",
            '\r' => out += "\\r",
            '\t' => out += "\\t",
            c if is_unsafe(c) && (c as u32) < 0x80 => out += &format!("\\x{:02x}", c as u32),
            c if is_unsafe(c) => out += &format!("\\u{{{:x}}}", c as u32),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A JSON line with the characters serde_json leaves raw (DEL, C1 controls,
/// bidi overrides) written as `\uXXXX`: still the same JSON value.
fn json_printable(line: &str) -> String {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let mut out = String::with_capacity(line.len());
    for c in body.chars() {
        if is_unsafe(c) && c != '\n' {
            // Inside a JSON text, raw control characters can only be in strings.
            out += &format!("\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out
}

/// A space-separated table with a header row; `right[i]` right-aligns column i.
/// Cells are made [`printable`] first.
fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c).into_owned()).collect())
        .collect();
    let rows = &rows;
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
            if i > 0 {
                line += "  ";
            }
            let pad = w.saturating_sub(cell.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                line += &" ".repeat(pad);
                line += cell;
            } else {
                line += cell;
                line += &" ".repeat(pad);
            }
        }
        line.truncate(line.trim_end().len());
        line + "\n"
    };
    let mut out = fmt_row(header.to_vec());
    for row in rows {
        out += &fmt_row(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{FailoverInfo, MemberRow, VifRow};

    fn list() -> ListReply {
        ListReply {
            vifs: vec![
                VifRow {
                    name: "web".into(),
                    addresses: vec!["192.0.2.10/24".into(), "192.0.2.11/24".into()],
                    owner: Some("n1".into()),
                    state: "owned".into(),
                    packets: 12345,
                    bytes: 987654,
                    arp_replies: 7,
                    drops: 0,
                },
                VifRow {
                    name: "db".into(),
                    addresses: vec!["192.0.2.20/24".into()],
                    owner: None,
                    state: "unowned".into(),
                    ..VifRow::default()
                },
            ],
        }
    }

    #[test]
    fn list_table() {
        let want = "\
VIF  ADDRESSES                    OWNER  STATE    PACKETS   BYTES  ARP  DROPS
web  192.0.2.10/24,192.0.2.11/24  n1     owned      12345  987654    7      0
db   192.0.2.20/24                -      unowned        0       0    0      0
";
        assert_eq!(render_list(&list()), want);
        assert_eq!(render(&Reply::list(list()), false), want);
    }

    #[test]
    fn status_summary() {
        let s = StatusReply {
            node: "n1".into(),
            engine: "corosync".into(),
            view: "7:n1".into(),
            members: vec![
                MemberRow {
                    name: "n1".into(),
                    mature: true,
                    drained: false,
                    vifs: 2,
                },
                MemberRow {
                    name: "n2".into(),
                    mature: false,
                    drained: true,
                    vifs: 0,
                },
            ],
            mature: true,
            leader: Some("n1".into()),
            last_failover: Some(FailoverInfo {
                at_unix_ms: 1_000_000,
                took_us: 182_400,
                reason: "node n3 left".into(),
            }),
            detector: None,
        };
        let want = "\
node          n1
engine        corosync
view          7:n1
mature        yes
leader        n1
last failover 1m30s ago, took 182.4 ms (node n3 left)
members (2)
  NAME  MATURE  DRAINED  VIFS
  n1    yes     no          2
  n2    no      yes         0
";
        assert_eq!(render_status(&s, 1_090_000), want);
        let never = render_status(&StatusReply::default(), 0);
        assert!(never.contains("last failover never\n"), "{never}");
        assert!(!never.contains("detector"), "{never}");
        let with = StatusReply {
            detector: Some(crate::control::protocol::DetectorStatus {
                mode: "observe".into(),
                lost: vec!["n3".into()],
                condemned: vec!["n3".into()],
                fenced: false,
                beats_sent: 10,
                beats_received: 8,
                beats_ignored: 1,
            }),
            ..StatusReply::default()
        };
        assert!(
            render_status(&with, 0).contains(
                "detector      observe, fence holds, lost n3, condemned n3; beats 10 sent, 8 received, 1 ignored\n"
            ),
            "{}",
            render_status(&with, 0)
        );
    }

    #[test]
    fn names_from_peers_are_escaped() {
        let evil = "web\u{1b}[2J\nn9    yes\u{9b}31m\u{202e}";
        let mut l = list();
        l.vifs[0].name = evil.into();
        l.vifs[0].owner = Some(evil.into());
        let text = render(&Reply::list(l.clone()), false);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.chars().any(|c| c != '\n' && is_unsafe(c)), "{text:?}");
        assert!(
            text.contains("web\\x1b[2J\\nn9    yes\\u{9b}31m\\u{202e}"),
            "{text}"
        );

        let s = StatusReply {
            node: evil.into(),
            leader: Some(evil.into()),
            members: vec![MemberRow {
                name: evil.into(),
                ..MemberRow::default()
            }],
            ..StatusReply::default()
        };
        let text = render(&Reply::status(s), false);
        assert!(!text.chars().any(|c| c != '\n' && is_unsafe(c)), "{text:?}");
        assert!(text.starts_with("node          web\\x1b[2J\\nn9"), "{text}");

        for r in [Reply::error(evil), Reply::done(evil)] {
            let text = render(&r, false);
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(!text.chars().any(|c| c != '\n' && is_unsafe(c)), "{text:?}");
        }

        // JSON keeps the value, minus raw C1/DEL/bidi characters.
        let r = Reply::list(l);
        let json = render(&r, true);
        assert!(!json.trim_end().chars().any(is_unsafe), "{json:?}");
        assert_eq!(Reply::parse(json.trim_end().as_bytes()), Ok(r));
        assert_eq!(printable("plain"), Cow::Borrowed("plain"));
    }

    #[test]
    fn errors_messages_and_json() {
        assert_eq!(
            render(&Reply::error("no such vif x"), false),
            "error: no such vif x\n"
        );
        assert_eq!(
            render(&Reply::done("moved web to n2"), false),
            "moved web to n2\n"
        );
        let r = Reply::list(list());
        assert_eq!(render(&r, true), r.to_line());
        assert_eq!(age(59_999), "59s");
        assert_eq!(age(3_600_000), "1h00m");
        assert_eq!(age(90_000_000), "1d01h");
        assert_eq!(micros(999), "999 µs");
        assert_eq!(micros(12_000_000), "12 s");
    }
}

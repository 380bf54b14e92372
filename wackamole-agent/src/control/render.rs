//! Human output for the CLI (`--json` prints the reply line as received).

use std::time::{SystemTime, UNIX_EPOCH};

use super::protocol::{ListReply, Reply, StatusReply};

/// Renders a reply: JSON passthrough with `json`, else tables / messages.
/// Errors render as `error: ...`.
pub fn render(reply: &Reply, json: bool) -> String {
    if json {
        return reply.to_line();
    }
    if !reply.ok {
        let why = reply.error.as_deref().unwrap_or("unknown error");
        return format!("error: {why}\n");
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
        out += msg;
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
    let line = |out: &mut String, k: &str, v: &str| *out += &format!("{k:<14}{v}\n");
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

/// A space-separated table with a header row; `right[i]` right-aligns column i.
fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
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

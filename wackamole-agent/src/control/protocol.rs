//! Control protocol: one JSON object per line each way.
//!
//! Requests are tagged by `cmd`:
//! `{"cmd":"list"}`, `{"cmd":"status"}`, `{"cmd":"fail"}`, `{"cmd":"recover"}`,
//! `{"cmd":"move","vif":"web","node":"n2"}`, `{"cmd":"drain","node":"n2"}`,
//! `{"cmd":"undrain","node":"n2"}`, `{"cmd":"balance"}`.
//!
//! Replies are `{"ok":true, ...}` with `list`, `status` or `message`, or
//! `{"ok":false,"error":"..."}`. A malformed request (bad JSON, unknown
//! command, missing field, line over [`MAX_LINE`]) gets an error reply.

use serde::{Deserialize, Serialize};

/// Longest request line, in bytes (without the newline).
pub const MAX_LINE: usize = 64 * 1024;

/// Longest reply line the client accepts: a `list` of a thousand VIFs with
/// their counters is ~200 KiB, so replies get far more room than requests.
pub const MAX_REPLY_LINE: usize = 16 * 1024 * 1024;

/// VIFs per [`Request::ListPage`]: the server streams a `list` reply to the
/// client this many rows at a time, so neither it nor the daemon builds the
/// whole reply (~0.8 MB at 4096 VIFs) for one client.
pub const LIST_PAGE: usize = 256;

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The VIFs, their owners, states and counters.
    List,
    /// Engine, view, members, maturity, leader, last failover.
    Status,
    /// Make this node leave the group (release its VIFs) until `recover`.
    Fail,
    /// Rejoin after `fail`.
    Recover,
    /// Move one VIF to a node.
    Move { vif: String, node: String },
    /// Stop assigning VIFs to a node (its VIFs move away).
    Drain { node: String },
    /// Undo `drain`.
    Undrain { node: String },
    /// Rebalance the allocation now.
    Balance,
    /// Never on the wire: the server asks the daemon for the `list` rows
    /// `from..from + max` (fewer at the end) while streaming a `list` reply.
    #[serde(skip)]
    ListPage { from: usize, max: usize },
}

impl Request {
    /// The request's command name.
    pub fn name(&self) -> &'static str {
        match self {
            Request::List => "list",
            Request::Status => "status",
            Request::Fail => "fail",
            Request::Recover => "recover",
            Request::Move { .. } => "move",
            Request::Drain { .. } => "drain",
            Request::Undrain { .. } => "undrain",
            Request::Balance => "balance",
            Request::ListPage { .. } => "list",
        }
    }

    /// The request as one JSON line (with the newline).
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| r#"{"cmd":"status"}"#.into());
        s.push('\n');
        s
    }
}

/// Parses one request line (the newline may be present or not).
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_LINE {
        return Err(format!(
            "request line of {} bytes exceeds the limit of {MAX_LINE}",
            line.len()
        ));
    }
    let text = std::str::from_utf8(line).map_err(|e| format!("request is not UTF-8: {e}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err("empty request".into());
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("bad request: {e}"))?;
    let Some(obj) = value.as_object() else {
        return Err("bad request: not a JSON object".into());
    };
    let request: Request =
        serde_json::from_value(value.clone()).map_err(|e| format!("bad request: {e}"))?;
    // serde ignores unknown fields of unit variants; reject them like the others.
    let allowed: &[&str] = match request {
        Request::Move { .. } => &["cmd", "vif", "node"],
        Request::Drain { .. } | Request::Undrain { .. } => &["cmd", "node"],
        _ => &["cmd"],
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "bad request: unknown field `{k}` for command `{}`",
            request.name()
        ));
    }
    Ok(request)
}

/// A reply: `ok` plus exactly one of `error`, `message`, `list`, `status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListReply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReply>,
}

impl Reply {
    /// A failure reply.
    pub fn error(msg: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(msg.into()),
            ..Reply::default()
        }
    }

    /// A success reply with a human message (fail, recover, move, ...).
    pub fn done(msg: impl Into<String>) -> Self {
        Reply {
            ok: true,
            message: Some(msg.into()),
            ..Reply::default()
        }
    }

    /// The reply to `list`.
    pub fn list(list: ListReply) -> Self {
        Reply {
            ok: true,
            list: Some(list),
            ..Reply::default()
        }
    }

    /// The reply to `status`.
    pub fn status(status: StatusReply) -> Self {
        Reply {
            ok: true,
            status: Some(status),
            ..Reply::default()
        }
    }

    /// The reply as one JSON line (with the newline). A reply too large for
    /// [`MAX_REPLY_LINE`] becomes an error reply saying so.
    pub fn to_line(&self) -> String {
        let s = serde_json::to_string(self)
            .ok()
            .filter(|s| s.len() <= MAX_REPLY_LINE)
            .unwrap_or_else(|| {
                r#"{"ok":false,"error":"reply too large for one control line"}"#.to_string()
            });
        s + "\n"
    }

    /// Parses a reply line.
    pub fn parse(line: &[u8]) -> Result<Reply, String> {
        if line.len() > MAX_REPLY_LINE {
            return Err(format!(
                "reply line of {} bytes exceeds {MAX_REPLY_LINE}",
                line.len()
            ));
        }
        // serde may quote the offending text: keep it printable.
        serde_json::from_slice(line)
            .map_err(|e| format!("bad reply: {}", super::render::printable(&e.to_string())))
    }
}

/// Writes the line of `Reply::list` a few rows at a time: the bytes of
/// [`ListLine::rows`] calls then [`ListLine::end`] are exactly
/// `Reply::list(all rows).to_line()`, so clients see no difference.
#[derive(Debug, Default)]
pub struct ListLine {
    rows: usize,
    bytes: usize,
}

impl ListLine {
    const HEAD: &'static [u8] = br#"{"ok":true,"list":{"vifs":["#;
    const TAIL: &'static [u8] = b"]}}\n";

    /// The next piece of the line, holding `rows` (the head included before
    /// the first row). Errs when the line would pass [`MAX_REPLY_LINE`].
    pub fn rows(&mut self, rows: &[VifRow]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(rows.len() * 160 + Self::HEAD.len());
        if self.rows == 0 && self.bytes == 0 {
            out.extend_from_slice(Self::HEAD);
        }
        for row in rows {
            if self.rows > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, row).map_err(|e| format!("list row: {e}"))?;
            self.rows += 1;
        }
        self.bytes += out.len();
        if self.bytes + Self::TAIL.len() > MAX_REPLY_LINE + 1 {
            return Err("reply too large for one control line".into());
        }
        Ok(out)
    }

    /// The end of the line (the head too if no row came).
    pub fn end(mut self) -> Vec<u8> {
        let mut out = if self.bytes == 0 {
            Self::HEAD.to_vec()
        } else {
            Vec::new()
        };
        out.extend_from_slice(Self::TAIL);
        self.bytes += out.len();
        out
    }

    /// Rows written so far.
    pub fn count(&self) -> usize {
        self.rows
    }
}

/// The reply to `list`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListReply {
    pub vifs: Vec<VifRow>,
}

/// One virtual interface (a group of VIPs that move together).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VifRow {
    pub name: String,
    /// `ip/prefix` strings.
    pub addresses: Vec<String>,
    /// Owning node, if any.
    pub owner: Option<String>,
    /// `owned`, `released`, `unowned`, `acquiring`, ...
    pub state: String,
    pub packets: u64,
    pub bytes: u64,
    pub arp_replies: u64,
    pub drops: u64,
}

/// The reply to `status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusReply {
    /// This node's name.
    pub node: String,
    /// Membership engine (`corosync`, `spread`).
    pub engine: String,
    /// Current view id, as the engine prints it.
    pub view: String,
    pub members: Vec<MemberRow>,
    /// Whether this node is mature (allowed to own VIFs).
    pub mature: bool,
    pub leader: Option<String>,
    pub last_failover: Option<FailoverInfo>,
    /// The LAN failure detector (`None`: not configured).
    pub detector: Option<DetectorStatus>,
}

/// What the LAN failure detector sees now.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorStatus {
    /// `observe`.
    pub mode: String,
    /// Members of the view it lost (node names where known).
    pub lost: Vec<String>,
    /// Members of the view it condemned.
    pub condemned: Vec<String>,
    /// Too few peers echo this node: its fence would silence it.
    pub fenced: bool,
    pub beats_sent: u64,
    pub beats_received: u64,
    pub beats_ignored: u64,
}

/// One member of the current view.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberRow {
    pub name: String,
    pub mature: bool,
    pub drained: bool,
    /// Number of VIFs it owns.
    pub vifs: u32,
}

/// The last failover this node saw.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FailoverInfo {
    /// When it completed, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// From the view change to the last VIF acquired, microseconds.
    pub took_us: u64,
    /// What triggered it (`node n2 left`, `move web`, ...).
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_command() {
        let cases = [
            (r#"{"cmd":"list"}"#, Request::List),
            (r#"{"cmd":"status"}"#, Request::Status),
            (r#"{"cmd":"fail"}"#, Request::Fail),
            (r#"{"cmd":"recover"}"#, Request::Recover),
            (r#"{"cmd":"balance"}"#, Request::Balance),
            (
                r#"{"cmd":"move","vif":"web","node":"n2"}"#,
                Request::Move {
                    vif: "web".into(),
                    node: "n2".into(),
                },
            ),
            (
                r#"{"cmd":"drain","node":"n2"}"#,
                Request::Drain { node: "n2".into() },
            ),
            (
                r#" {"cmd":"undrain","node":"n2"}  "#,
                Request::Undrain { node: "n2".into() },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_request(line.as_bytes()), Ok(want.clone()), "{line}");
            assert_eq!(parse_request(want.to_line().as_bytes()), Ok(want.clone()));
            assert!(want.to_line().ends_with('\n'));
        }
    }

    #[test]
    fn malformed_requests_are_errors() {
        for line in [
            "",
            "not json",
            "{}",
            r#"{"cmd":"reboot"}"#,
            r#"{"cmd":"move","vif":"web"}"#,
            r#"{"cmd":"drain"}"#,
            r#"{"cmd":"drain","node":7}"#,
            r#"{"cmd":"list","extra":1}"#,
            r#"["list"]"#,
        ] {
            assert!(parse_request(line.as_bytes()).is_err(), "{line}");
        }
        assert!(parse_request(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        let long = format!(r#"{{"cmd":"drain","node":"{}"}}"#, "x".repeat(MAX_LINE));
        assert!(parse_request(long.as_bytes())
            .unwrap_err()
            .contains("exceeds"));
        let unknown = parse_request(br#"{"cmd":"reboot"}"#).unwrap_err();
        assert!(unknown.contains("reboot"), "{unknown}");
    }

    #[test]
    fn replies_have_the_documented_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&Reply::error("no such vif web").to_line()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ok": false, "error": "no such vif web"})
        );
        let v: serde_json::Value = serde_json::from_str(&Reply::done("moved").to_line()).unwrap();
        assert_eq!(v, serde_json::json!({"ok": true, "message": "moved"}));
        let list = Reply::list(ListReply {
            vifs: vec![VifRow {
                name: "web".into(),
                packets: 3,
                ..VifRow::default()
            }],
        });
        assert_eq!(Reply::parse(list.to_line().as_bytes()), Ok(list));
        // Over the request limit is fine for a reply (a list of 1000 VIFs)...
        let big = Reply::done("x".repeat(MAX_LINE + 1));
        assert_eq!(Reply::parse(big.to_line().as_bytes()), Ok(big));
        // ...over the reply limit becomes an error reply.
        let huge = Reply::done("x".repeat(MAX_REPLY_LINE + 1));
        assert_eq!(
            Reply::parse(huge.to_line().as_bytes()).map(|r| r.ok),
            Ok(false)
        );
    }

    #[test]
    fn a_list_line_in_pieces_is_the_one_line_reply() {
        let rows: Vec<VifRow> = (0..600)
            .map(|k| VifRow {
                name: format!("v{k}\n\"q\""),
                addresses: vec![format!("10.0.{}.{}/16", k / 250, k % 250)],
                owner: (k % 3 != 0).then(|| format!("n{}", k % 7)),
                state: "owned".into(),
                packets: k as u64,
                bytes: u64::MAX,
                ..VifRow::default()
            })
            .collect();
        for n in [0, 1, LIST_PAGE, LIST_PAGE + 1, rows.len()] {
            let mut line = ListLine::default();
            let mut got = Vec::new();
            for page in rows[..n].chunks(LIST_PAGE) {
                got.extend(line.rows(page).unwrap());
            }
            assert_eq!(line.count(), n);
            got.extend(line.end());
            let want = Reply::list(ListReply {
                vifs: rows[..n].to_vec(),
            })
            .to_line();
            assert_eq!(String::from_utf8(got).unwrap(), want, "{n} rows");
        }
        // An empty page before any row adds nothing but the head.
        let mut line = ListLine::default();
        let mut got = line.rows(&[]).unwrap();
        got.extend(line.rows(&rows[..2]).unwrap());
        got.extend(line.end());
        let want = Reply::list(ListReply {
            vifs: rows[..2].to_vec(),
        });
        assert_eq!(Reply::parse(&got[..got.len() - 1]), Ok(want));
    }

    #[test]
    fn a_list_line_stops_at_the_reply_limit() {
        let row = VifRow {
            name: "x".repeat(1024 * 1024),
            ..VifRow::default()
        };
        let mut line = ListLine::default();
        let results: Vec<bool> = (0..17)
            .map(|_| line.rows(std::slice::from_ref(&row)).is_ok())
            .collect();
        assert!(results[..15].iter().all(|ok| *ok), "{results:?}");
        assert!(!results[16], "{results:?}");
    }

    #[test]
    fn list_page_is_not_a_wire_command() {
        assert!(parse_request(br#"{"cmd":"list_page","from":0,"max":1}"#).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(&bytes);
            let _ = Reply::parse(&bytes);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,256}") {
            let _ = parse_request(s.as_bytes());
        }

        #[test]
        fn json_shaped_lines_never_panic(cmd in "[a-z]{0,8}", vif in any::<Option<String>>(), node in any::<Option<u32>>()) {
            let mut v = serde_json::json!({"cmd": cmd});
            if let Some(vif) = vif { v["vif"] = serde_json::json!(vif); }
            if let Some(node) = node { v["node"] = serde_json::json!(node); }
            let _ = parse_request(v.to_string().as_bytes());
        }
    }
}

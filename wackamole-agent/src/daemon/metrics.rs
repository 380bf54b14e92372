//! Prometheus text exposition: a pure renderer over a snapshot, and a tiny
//! HTTP/1.0 server that answers `GET /metrics` (nothing else is worth a crate).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bounds (seconds) of the failover duration histogram.
pub const FAILOVER_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One VIF's line in the exposition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VifMetrics {
    pub name: String,
    pub owned: bool,
    pub packets: u64,
    pub bytes: u64,
    pub arp_replies: u64,
    pub drops: u64,
}

/// Everything exported; the daemon updates it, the server renders it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub engine_up: bool,
    pub mature: bool,
    pub members: usize,
    pub view_changes: u64,
    pub vifs: Vec<VifMetrics>,
    /// Failover durations observed (seconds), as histogram counts per bucket.
    pub failover_bucket_counts: Vec<u64>,
    pub failover_count: u64,
    pub failover_sum_seconds: f64,
}

impl MetricsSnapshot {
    pub fn observe_failover(&mut self, seconds: f64) {
        if self.failover_bucket_counts.len() != FAILOVER_BUCKETS.len() {
            self.failover_bucket_counts = vec![0; FAILOVER_BUCKETS.len()];
        }
        for (i, le) in FAILOVER_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.failover_bucket_counts[i] += 1;
            }
        }
        self.failover_count += 1;
        self.failover_sum_seconds += seconds;
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A per-VIF metric family: name, type, help, and how to read it.
type PerVifFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&VifMetrics) -> u64,
);

/// Renders the snapshot in the Prometheus text format (version 0.0.4).
pub fn render(m: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        &mut out,
        "wackamole_engine_up",
        "1 when the membership engine is connected.",
        f64::from(u8::from(m.engine_up)),
    );
    gauge(
        &mut out,
        "wackamole_mature",
        "1 when this node is mature (may claim VIFs).",
        f64::from(u8::from(m.mature)),
    );
    gauge(
        &mut out,
        "wackamole_view_members",
        "Members in the current view.",
        m.members as f64,
    );
    let _ = writeln!(
        out,
        "# HELP wackamole_view_changes_total Regular views delivered.\n# TYPE wackamole_view_changes_total counter\nwackamole_view_changes_total {}",
        m.view_changes
    );
    let per_vif: [PerVifFamily; 5] = [
        (
            "wackamole_vif_owned",
            "gauge",
            "1 when this node owns the VIF.",
            |v| u64::from(v.owned),
        ),
        (
            "wackamole_vif_packets_total",
            "counter",
            "IPv4 packets to the VIF seen by XDP.",
            |v| v.packets,
        ),
        (
            "wackamole_vif_bytes_total",
            "counter",
            "Bytes of those packets.",
            |v| v.bytes,
        ),
        (
            "wackamole_vif_arp_replies_total",
            "counter",
            "ARP requests answered from XDP.",
            |v| v.arp_replies,
        ),
        (
            "wackamole_vif_drops_total",
            "counter",
            "Frames dropped (releasing or fenced).",
            |v| v.drops,
        ),
    ];
    for (name, kind, help, get) in per_vif {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for v in &m.vifs {
            let _ = writeln!(out, "{name}{{vif=\"{}\"}} {}", escape(&v.name), get(v));
        }
    }
    let name = "wackamole_failover_seconds";
    let _ = writeln!(out, "# HELP {name} Time from a view change to the VIFs being served here.\n# TYPE {name} histogram");
    for (i, le) in FAILOVER_BUCKETS.iter().enumerate() {
        let c = m.failover_bucket_counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {c}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", m.failover_count);
    let _ = writeln!(out, "{name}_sum {}", m.failover_sum_seconds);
    let _ = writeln!(out, "{name}_count {}", m.failover_count);
    out
}

/// Serves `GET /metrics` on `addr` until the task is aborted.
pub async fn serve(addr: SocketAddr, snapshot: Arc<Mutex<MetricsSnapshot>>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics: cannot listen on {addr}: {e}"))?;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(2),
                stream.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let response = if request.starts_with("GET /metrics ") || request.starts_with("GET / ")
            {
                let body = match snapshot.lock() {
                    Ok(s) => render(&s),
                    Err(_) => String::new(),
                };
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MetricsSnapshot {
        let mut m = MetricsSnapshot {
            engine_up: true,
            mature: true,
            members: 3,
            view_changes: 4,
            vifs: vec![VifMetrics {
                name: "web\"1".into(),
                owned: true,
                packets: 10,
                bytes: 1000,
                arp_replies: 2,
                drops: 0,
            }],
            ..Default::default()
        };
        m.observe_failover(0.003);
        m.observe_failover(0.2);
        m
    }

    #[test]
    fn renders_every_family_with_escaped_labels() {
        let text = render(&sample());
        assert!(text.contains("wackamole_engine_up 1\n"));
        assert!(text.contains("wackamole_view_members 3\n"));
        assert!(text.contains("wackamole_view_changes_total 4\n"));
        assert!(text.contains("wackamole_vif_owned{vif=\"web\\\"1\"} 1\n"));
        assert!(text.contains("wackamole_vif_bytes_total{vif=\"web\\\"1\"} 1000\n"));
        assert!(text.contains("wackamole_failover_seconds_bucket{le=\"0.002\"} 0\n"));
        assert!(text.contains("wackamole_failover_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("wackamole_failover_seconds_bucket{le=\"0.25\"} 2\n"));
        assert!(text.contains("wackamole_failover_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("wackamole_failover_seconds_count 2\n"));
    }

    #[tokio::test]
    async fn serves_over_http() {
        let snapshot = Arc::new(Mutex::new(sample()));
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let addr = probe.local_addr().expect("addr");
        drop(probe);
        let server = tokio::spawn(serve(addr, snapshot));
        let mut body = String::new();
        for _ in 0..50 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
                    .await
                    .expect("write");
                s.read_to_string(&mut body).await.expect("read");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        server.abort();
        assert!(body.starts_with("HTTP/1.0 200 OK"));
        assert!(body.contains("wackamole_engine_up 1"));
    }
}

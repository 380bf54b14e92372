//! Prometheus exposition of a [`MetricsSnapshot`]: the text format comes from
//! `prometheus-client` (a collector over the snapshot), the HTTP/1.1 server
//! from hyper, with the limits a local user cannot get around: at most
//! [`Limits::max_connections`] open (the oldest is closed for a new one, so
//! idle connections never lock out a scrape), a deadline for the request
//! head, a write timeout for clients that stop reading, and a backoff on
//! accept errors (EMFILE must not turn into a busy loop).
//!
//! The page is linear in the VIFs: [`PER_VIF_SERIES`] samples each (~1 MB,
//! a few ms at 4096 VIFs; `cargo xtask bench metrics`). The agent runs on a
//! current-thread runtime, so a scrape copies the snapshot (the lock is
//! held only for the copy) and renders it on the blocking pool, one render
//! at a time: scrapes never stall the agent's loop.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// A per-VIF metric: name (without the `_total` a counter gets), type, help, value.
type PerVif = (
    &'static str,
    MetricType,
    &'static str,
    fn(&VifMetrics) -> u64,
);

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
    /// The LAN failure detector's figures (`None`: not configured).
    pub detector: Option<DetectorMetrics>,
}

/// What the LAN failure detector counted (see `daemon::beats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorMetrics {
    pub lost: u64,
    pub condemned: u64,
    pub fence_lapses: u64,
    pub fenced: bool,
    pub beats_sent: u64,
    pub beats_received: u64,
    pub beats_ignored: u64,
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

/// Samples each VIF adds to the page.
pub const PER_VIF_SERIES: usize = PER_VIF.len();

/// The per-VIF families, in exposition order.
const PER_VIF: [PerVif; 5] = [
    (
        "wackamole_vif_owned",
        MetricType::Gauge,
        "1 when this node owns the VIF.",
        |v| u64::from(v.owned),
    ),
    (
        "wackamole_vif_packets",
        MetricType::Counter,
        "IPv4 packets to the VIF seen by XDP.",
        |v| v.packets,
    ),
    (
        "wackamole_vif_bytes",
        MetricType::Counter,
        "Bytes of those packets.",
        |v| v.bytes,
    ),
    (
        "wackamole_vif_arp_replies",
        MetricType::Counter,
        "ARP requests answered from XDP.",
        |v| v.arp_replies,
    ),
    (
        "wackamole_vif_drops",
        MetricType::Counter,
        "Frames dropped (releasing or fenced).",
        |v| v.drops,
    ),
];

/// Encodes one snapshot on each scrape (the daemon owns the numbers; nothing
/// is registered for long).
#[derive(Debug)]
struct SnapshotCollector(MetricsSnapshot);

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let gauges: [(&str, &str, u64); 3] = [
            (
                "wackamole_engine_up",
                "1 when the membership engine is connected.",
                u64::from(m.engine_up),
            ),
            (
                "wackamole_mature",
                "1 when this node is mature (may claim VIFs).",
                u64::from(m.mature),
            ),
            (
                "wackamole_view_members",
                "Members in the current view.",
                m.members as u64,
            ),
        ];
        for (name, help, v) in gauges {
            enc.encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&v)?;
        }
        enc.encode_descriptor(
            "wackamole_view_changes",
            "Regular views delivered.",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&m.view_changes, None)?;
        if let Some(d) = &m.detector {
            let counters: [(&str, &str, u64); 6] = [
                (
                    "wackamole_detector_lost",
                    "Peers the LAN detector lost (silent past its deadline).",
                    d.lost,
                ),
                (
                    "wackamole_detector_condemned",
                    "Peers the LAN detector condemned (lost by a majority of the view).",
                    d.condemned,
                ),
                (
                    "wackamole_detector_fence_lapses",
                    "Times too few peers echoed this node's beats for its detector fence.",
                    d.fence_lapses,
                ),
                (
                    "wackamole_detector_beats_sent",
                    "Beats sent to peers.",
                    d.beats_sent,
                ),
                (
                    "wackamole_detector_beats_received",
                    "Beats received from peers and counted.",
                    d.beats_received,
                ),
                (
                    "wackamole_detector_beats_ignored",
                    "Datagrams on the beat socket that were not a current peer's beat.",
                    d.beats_ignored,
                ),
            ];
            for (name, help, v) in counters {
                enc.encode_descriptor(name, help, None, MetricType::Counter)?
                    .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
            }
            enc.encode_descriptor(
                "wackamole_detector_fenced",
                "1 while too few peers echo this node's beats (its detector fence would silence it).",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&u64::from(d.fenced))?;
        }
        for (name, kind, help, get) in PER_VIF {
            let mut family = enc.encode_descriptor(name, help, None, kind)?;
            for v in &m.vifs {
                let labels = [("vif", v.name.as_str())];
                let mut sample = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => {
                        sample.encode_counter::<NoLabelSet, _, u64>(&get(v), None)?
                    }
                    _ => sample.encode_gauge(&get(v))?,
                }
            }
        }
        // The snapshot keeps cumulative bucket counts; the encoder wants each
        // bucket's own.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = FAILOVER_BUCKETS
            .iter()
            .enumerate()
            .map(|(i, le)| {
                let c = m.failover_bucket_counts.get(i).copied().unwrap_or(0);
                let own = c.saturating_sub(below);
                below = below.max(c);
                (*le, own)
            })
            .collect();
        enc.encode_descriptor(
            "wackamole_failover_seconds",
            "Time from a view change to the VIFs being served here.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            m.failover_sum_seconds,
            m.failover_count,
            &buckets,
            None,
        )?;
        Ok(())
    }
}

/// Renders the snapshot in the Prometheus text format (version 0.0.4).
pub fn render(m: &MetricsSnapshot) -> String {
    render_owned(m.clone())
}

fn render_owned(m: MetricsSnapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(m)));
    let mut out = String::new();
    // Writing into a String cannot fail; the encoder only errs on a writer error.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::warn!("metrics: encoding failed: {e}");
    }
    out
}

/// Limits of the metrics server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; a new one closes the oldest.
    pub max_connections: usize,
    /// Time a client has to send a whole request head (also the idle time
    /// of a kept-alive connection).
    pub header_timeout: Duration,
    /// Time a write may wait for the client to read.
    pub write_timeout: Duration,
    /// Pause after a failed accept, doubled up to `max_accept_backoff`.
    pub accept_backoff: Duration,
    pub max_accept_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            header_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            accept_backoff: Duration::from_millis(10),
            max_accept_backoff: Duration::from_secs(1),
        }
    }
}

/// Serves `GET /metrics` on `addr` until the task is aborted.
pub async fn serve(addr: SocketAddr, snapshot: Arc<Mutex<MetricsSnapshot>>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics: cannot listen on {addr}: {e}"))?;
    serve_listener(listener, snapshot, Limits::default()).await
}

/// [`serve`] on a bound listener with explicit limits.
pub async fn serve_listener(
    listener: TcpListener,
    snapshot: Arc<Mutex<MetricsSnapshot>>,
    limits: Limits,
) -> anyhow::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(16 * 1024);
    let mut open: VecDeque<AbortHandle> = VecDeque::new();
    let mut backoff = limits.accept_backoff;
    // One render at a time: many scrapers cannot multiply the CPU and memory.
    let rendering = Arc::new(tokio::sync::Semaphore::new(1));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = limits.accept_backoff;
                stream
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS...: retrying at once would spin.
                tracing::warn!("metrics: accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(limits.max_accept_backoff);
                continue;
            }
        };
        open.retain(|h| !h.is_finished());
        while open.len() >= limits.max_connections.max(1) {
            if let Some(oldest) = open.pop_front() {
                oldest.abort();
            }
        }
        let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
        let snapshot = snapshot.clone();
        let rendering = rendering.clone();
        let service = hyper::service::service_fn(move |req| {
            respond(req, snapshot.clone(), rendering.clone())
        });
        let conn = http.serve_connection(io, service);
        let task = tokio::spawn(async move {
            // Errors are the client's (timeouts, garbage): nothing to report.
            let _ = conn.await;
        });
        open.push_back(task.abort_handle());
    }
}

async fn respond(
    req: Request<Incoming>,
    snapshot: Arc<Mutex<MetricsSnapshot>>,
    rendering: Arc<tokio::sync::Semaphore>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if !matches!(req.uri().path(), "/metrics" | "/") {
        return Ok(reply(StatusCode::NOT_FOUND, String::new()));
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, String::new()));
    }
    let Ok(_turn) = rendering.acquire().await else {
        return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, String::new()));
    };
    let rendered = tokio::task::spawn_blocking(move || {
        let copy = match snapshot.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        render_owned(copy)
    })
    .await;
    let Ok(body) = rendered else {
        return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, String::new()));
    };
    let mut r = reply(StatusCode::OK, body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        ),
    );
    Ok(r)
}

/// A stream whose writes fail with `TimedOut` once they have waited
/// `timeout` for the peer to read (hyper has read deadlines, not write ones).
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        WriteTimeout {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// Called when a write is pending: starts the clock or checks it.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "metrics client stopped reading",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.check(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A guard against hangs, not a speed assertion.
    const LIMIT: Duration = Duration::from_secs(20);

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

    /// `n` VIFs with names and counters of one width, so every VIF adds
    /// the same bytes.
    fn wide(n: usize) -> MetricsSnapshot {
        MetricsSnapshot {
            vifs: (0..n)
                .map(|k| VifMetrics {
                    name: format!("bulk{k:05}"),
                    owned: true,
                    packets: u64::MAX,
                    bytes: u64::MAX,
                    arp_replies: u64::MAX,
                    drops: u64::MAX,
                })
                .collect(),
            ..sample()
        }
    }

    /// MAX_VIPS VIFs: the page holds PER_VIF_SERIES samples per VIF and
    /// grows by the same bytes for each (time: `cargo xtask bench sizes`).
    #[test]
    fn the_page_is_linear_in_the_vifs() {
        let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
        let empty = render(&wide(0));
        let one = render(&wide(1)).len() - empty.len();
        for n in [1024, 4096] {
            let page = render(&wide(n));
            assert_eq!(samples(&page), samples(&empty) + n * PER_VIF_SERIES);
            assert_eq!(page.len() - empty.len(), n * one, "{n} VIFs");
        }
        assert!(one < 512, "{one} bytes per VIF");
    }

    fn sorted_lines(text: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut v: Vec<String> = text.lines().filter(|l| keep(l)).map(String::from).collect();
        v.sort();
        v
    }

    #[test]
    fn renders_the_same_series_as_before() {
        // What the hand-written renderer produced for `sample()` (dashboards
        // are built on these names, types and labels).
        let sum = 0.003_f64 + 0.2;
        let before = format!(
            "wackamole_engine_up 1
wackamole_mature 1
wackamole_view_members 3
wackamole_view_changes_total 4
wackamole_vif_owned{{vif=\"web\\\"1\"}} 1
wackamole_vif_packets_total{{vif=\"web\\\"1\"}} 10
wackamole_vif_bytes_total{{vif=\"web\\\"1\"}} 1000
wackamole_vif_arp_replies_total{{vif=\"web\\\"1\"}} 2
wackamole_vif_drops_total{{vif=\"web\\\"1\"}} 0
wackamole_failover_seconds_bucket{{le=\"0.001\"}} 0
wackamole_failover_seconds_bucket{{le=\"0.002\"}} 0
wackamole_failover_seconds_bucket{{le=\"0.005\"}} 1
wackamole_failover_seconds_bucket{{le=\"0.01\"}} 1
wackamole_failover_seconds_bucket{{le=\"0.025\"}} 1
wackamole_failover_seconds_bucket{{le=\"0.05\"}} 1
wackamole_failover_seconds_bucket{{le=\"0.1\"}} 1
wackamole_failover_seconds_bucket{{le=\"0.25\"}} 2
wackamole_failover_seconds_bucket{{le=\"0.5\"}} 2
wackamole_failover_seconds_bucket{{le=\"1\"}} 2
wackamole_failover_seconds_bucket{{le=\"5\"}} 2
wackamole_failover_seconds_bucket{{le=\"+Inf\"}} 2
wackamole_failover_seconds_sum {sum}
wackamole_failover_seconds_count 2
# TYPE wackamole_engine_up gauge
# TYPE wackamole_mature gauge
# TYPE wackamole_view_members gauge
# TYPE wackamole_view_changes_total counter
# TYPE wackamole_vif_owned gauge
# TYPE wackamole_vif_packets_total counter
# TYPE wackamole_vif_bytes_total counter
# TYPE wackamole_vif_arp_replies_total counter
# TYPE wackamole_vif_drops_total counter
# TYPE wackamole_failover_seconds histogram
"
        );
        let text = render(&sample());
        let samples = |l: &str| !l.starts_with('#') && !l.is_empty();
        let types = |l: &str| l.starts_with("# TYPE ");
        assert_eq!(
            sorted_lines(&text, samples),
            sorted_lines(&before, samples),
            "{text}"
        );
        assert_eq!(
            sorted_lines(&text, types),
            sorted_lines(&before, types),
            "{text}"
        );
        assert!(text.contains("# HELP wackamole_engine_up "), "{text}");
        // No VIFs, no failover yet: still every family, zero buckets.
        let empty = render(&MetricsSnapshot::default());
        assert!(
            empty.contains("wackamole_failover_seconds_bucket{le=\"+Inf\"} 0\n"),
            "{empty}"
        );
        assert!(
            empty.contains("# TYPE wackamole_vif_owned gauge\n"),
            "{empty}"
        );
    }

    async fn start(
        snapshot: MetricsSnapshot,
        limits: Limits,
    ) -> (SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve_listener(
            listener,
            Arc::new(Mutex::new(snapshot)),
            limits,
        ));
        (addr, server)
    }

    async fn scrape(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut body = String::new();
        tokio::time::timeout(LIMIT, s.read_to_string(&mut body))
            .await
            .expect("scrape answered")
            .expect("read");
        body
    }

    #[tokio::test]
    async fn serves_over_http() {
        let (addr, server) = start(sample(), Limits::default()).await;
        let body = scrape(addr).await;
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(
            body.contains("content-type: text/plain; version=0.0.4"),
            "{body}"
        );
        assert!(
            body.contains("\r\n\r\n# HELP wackamole_engine_up"),
            "{body}"
        );
        assert!(body.contains("\nwackamole_engine_up 1\n"), "{body}");
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /other HTTP/1.0\r\n\r\n")
            .await
            .expect("write");
        let mut other = String::new();
        s.read_to_string(&mut other).await.expect("read");
        assert!(other.starts_with("HTTP/1.0 404"), "{other}");
        server.abort();
    }

    /// True when the peer has closed `s` (EOF or reset), false if it is
    /// still open after a short look.
    async fn closed(s: &mut TcpStream) -> bool {
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    #[tokio::test]
    async fn idle_connections_do_not_block_a_scrape() {
        let limits = Limits {
            max_connections: 4,
            header_timeout: Duration::from_secs(600),
            ..Limits::default()
        };
        let (addr, server) = start(sample(), limits).await;
        let mut idle = Vec::new();
        for _ in 0..20 {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let body = scrape(addr).await;
        assert!(body.contains("\nwackamole_engine_up 1\n"), "{body}");
        // The cap held: the server closed the oldest idle connections for the
        // newer ones and the scrape; only the newest three are still open.
        let mut open = Vec::new();
        for (i, s) in idle.iter_mut().enumerate() {
            if !closed(s).await {
                open.push(i);
            }
        }
        assert_eq!(open, [17, 18, 19]);
        server.abort();
    }

    #[tokio::test]
    async fn idle_connections_time_out() {
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, server) = start(sample(), limits).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // Half a request head, then nothing.
        s.write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .expect("write");
        let mut rest = Vec::new();
        let r = tokio::time::timeout(LIMIT, s.read_to_end(&mut rest)).await;
        assert!(r.is_ok(), "the server kept a stalled request open");
        server.abort();
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off() {
        // A body far larger than the socket buffers.
        let mut big = sample();
        big.vifs = (0..60_000)
            .map(|i| VifMetrics {
                name: format!("vif-{i:06}"),
                ..VifMetrics::default()
            })
            .collect();
        let full = render(&big).len();
        let limits = Limits {
            write_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, server) = start(big, limits).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        // Do not read for well past the write timeout...
        tokio::time::sleep(Duration::from_secs(2)).await;
        // ...then what arrives ends early: the server gave up on us.
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let read_all = async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(LIMIT, read_all)
            .await
            .expect("connection closed by the server");
        assert!(got.len() < full, "got the whole {full}-byte body");
        server.abort();
    }
}

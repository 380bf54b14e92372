//! The CLI side of the control socket: one request, one reply.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{Reply, Request, MAX_REPLY_LINE};

/// Default time a CLI command waits for the daemon.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` to the daemon at `path` and returns its reply, all within
/// `timeout`.
pub async fn request(path: &Path, request: &Request, timeout: Duration) -> Result<Reply> {
    let shown = path.display().to_string();
    tokio::time::timeout(timeout, exchange(path, request))
        .await
        .map_err(|_| anyhow!("control socket {shown}: no reply within {timeout:?}"))?
        .with_context(|| format!("control socket {shown}: {}", request.name()))
}

async fn exchange(path: &Path, request: &Request) -> Result<Reply> {
    let stream = UnixStream::connect(path)
        .await
        .context("connect (is the daemon running, are you root?)")?;
    let (read, mut write) = stream.into_split();
    // A refusing daemon replies and closes without reading the request, so
    // the send may fail (EPIPE) with the reply already waiting: read it anyway.
    let sent = write.write_all(request.to_line().as_bytes()).await;
    let mut line = Vec::new();
    let received = BufReader::new(read)
        .take((MAX_REPLY_LINE + 2) as u64)
        .read_until(b'\n', &mut line)
        .await;
    if line.last() != Some(&b'\n') {
        sent.context("send")?;
        received.context("read reply")?;
        bail!(
            "connection closed before a complete reply ({} bytes)",
            line.len()
        );
    }
    line.pop();
    Reply::parse(&line).map_err(|e| anyhow!(e))
}

/// [`request`] for synchronous callers (the CLI): runs its own small runtime.
pub fn request_blocking(path: &Path, req: &Request, timeout: Duration) -> Result<Reply> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?
        .block_on(request(path, req, timeout))
}

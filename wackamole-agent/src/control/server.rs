//! The daemon side of the control socket.
//!
//! Integration: bind a [`ControlServer`], spawn [`ControlServer::serve`] with
//! the sending half of an mpsc channel, and answer each [`ControlRequest`]
//! from the daemon's event loop by sending a [`Reply`] on its oneshot.
//!
//! ```no_run
//! use wackamole::control::{ControlServer, Reply, Request};
//! # async fn daemon() -> anyhow::Result<()> {
//! let server = ControlServer::bind("/run/wackamole/control.sock".as_ref())?;
//! let (tx, mut rx) = tokio::sync::mpsc::channel(16);
//! tokio::spawn(server.serve(tx));
//! // In the daemon's event loop (e.g. one arm of its select!):
//! while let Some(req) = rx.recv().await {
//!     let reply = match req.request {
//!         Request::Status => Reply::done("..."),
//!         other => Reply::error(format!("{} not implemented", other.name())),
//!     };
//!     let _ = req.reply.send(reply);
//! }
//! # Ok(()) }
//! ```
//!
//! `list` is streamed: the connection asks the daemon for
//! [`Request::ListPage`]s of [`LIST_PAGE`] rows and writes each before asking
//! for the next, so a client that reads slowly holds one page, never the
//! whole reply, and the daemon's loop never waits on a socket. Every write
//! has a timeout ([`Limits::write`]): a client that stops reading is cut off.
//! The client still receives the one JSON line of `Reply::list`, so the wire
//! protocol is unchanged for any `ctl` version; rows of different pages may
//! be a few milliseconds apart (the VIF set itself only changes on restart).
//!
//! Access: the socket is mode 0600 in a directory we create 0700, and every
//! connection's peer credentials (SO_PEERCRED) are checked: only uid 0 and
//! the daemon's own effective uid are served; others get an error reply and
//! are disconnected.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::protocol::{parse_request, ListLine, Reply, Request, LIST_PAGE, MAX_LINE};

/// A request for the daemon, with the channel its reply goes back on.
#[derive(Debug)]
pub struct ControlRequest {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
    /// Uid of the client (0 or the daemon's euid).
    pub peer_uid: u32,
}

/// Limits of one server (defaults suit the daemon).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more get a "busy" reply.
    pub max_connections: usize,
    /// A connection idle this long is closed.
    pub idle: Duration,
    /// How long to wait for the daemon's answer.
    pub answer: Duration,
    /// How long one write (a reply, or a page of a `list`) may wait for the
    /// client to read; then the connection is closed.
    pub write: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            idle: Duration::from_secs(60),
            answer: Duration::from_secs(30),
            write: Duration::from_secs(10),
        }
    }
}

/// A bound control socket; the socket file is removed when it drops.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    allowed: Vec<u32>,
    limits: Limits,
}

impl ControlServer {
    /// Binds `path` (inside a tokio runtime). Creates the parent directory
    /// with mode 0700 if missing, removes a stale socket only if nothing
    /// listens on it, and sets the socket to mode 0600.
    pub fn bind(path: &Path) -> Result<Self> {
        prepare(path)?;
        let listener = UnixListener::bind(path)
            .with_context(|| format!("control socket {}: bind", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("control socket {}: chmod 0600", path.display()))?;
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let mut allowed = vec![0];
        if euid != 0 {
            allowed.push(euid);
        }
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            allowed,
            limits: Limits::default(),
        })
    }

    /// Replaces the default limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until the daemon drops its receiver. Each
    /// connection runs in its own task; a broken client never stops the loop.
    pub async fn serve(self, to_daemon: mpsc::Sender<ControlRequest>) {
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let allowed: Arc<[u32]> = self.allowed.clone().into();
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = to_daemon.closed() => return,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), "control socket accept: {e}");
                    // E.g. EMFILE: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tokio::spawn(refuse(stream, "control socket busy, try again".into()));
                continue;
            };
            let tx = to_daemon.clone();
            let allowed = allowed.clone();
            let limits = self.limits;
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = connection(stream, tx, &allowed, limits).await {
                    tracing::debug!("control connection ended: {e}");
                }
            });
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Parent directory and stale socket handling before bind.
fn prepare(path: &Path) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.exists() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("control socket directory {}: create", parent.display()))?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700)).with_context(
            || format!("control socket directory {}: chmod 0700", parent.display()),
        )?;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("control socket {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "control socket {}: exists and is not a socket; not removing it",
            path.display()
        );
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!(
            "control socket {}: another process is listening on it (daemon already running?)",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).with_context(|| {
                format!("control socket {}: remove stale socket", path.display())
            })?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "control socket {}: probing the existing socket",
                path.display()
            )
        }),
    }
}

async fn refuse(mut stream: UnixStream, why: String) {
    let line = Reply::error(why).to_line();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(line.as_bytes())).await;
    let _ = stream.shutdown().await;
}

async fn connection(
    stream: UnixStream,
    to_daemon: mpsc::Sender<ControlRequest>,
    allowed: &[u32],
    limits: Limits,
) -> io::Result<()> {
    let uid = stream.peer_cred()?.uid();
    if !allowed.contains(&uid) {
        tracing::warn!(uid, "control socket: refused a client that is not root");
        refuse(
            stream,
            format!("permission denied: uid {uid} may not use the control socket"),
        )
        .await;
        return Ok(());
    }
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = (MAX_LINE + 2) as u64; // the line, its newline, one byte to detect excess
        let n = match tokio::time::timeout(
            limits.idle,
            (&mut reader).take(limit).read_until(b'\n', &mut line),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return Ok(()), // idle
        };
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if line.ends_with(b"\n") {
            line.pop();
        }
        if !complete && line.len() > MAX_LINE {
            // No way to find the next request boundary cheaply: answer and hang up.
            let reply = Reply::error(format!(
                "request line exceeds the limit of {MAX_LINE} bytes"
            ));
            send(&mut write, reply.to_line().as_bytes(), limits.write).await?;
            return Ok(());
        }
        match parse_request(&line) {
            Err(e) => {
                send(
                    &mut write,
                    Reply::error(e).to_line().as_bytes(),
                    limits.write,
                )
                .await?
            }
            Ok(Request::List) => stream_list(&mut write, &to_daemon, uid, limits).await?,
            Ok(request) => {
                let reply = ask_daemon(&to_daemon, request, uid, limits.answer).await;
                send(&mut write, reply.to_line().as_bytes(), limits.write).await?;
            }
        }
        if !complete {
            return Ok(()); // EOF without newline: that was the last request
        }
    }
}

/// Writes `bytes` unless the client stops reading for `wait`.
async fn send<W: AsyncWriteExt + Unpin>(
    write: &mut W,
    bytes: &[u8],
    wait: Duration,
) -> io::Result<()> {
    match tokio::time::timeout(wait, write.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("client read nothing for {wait:?}"),
        )),
    }
}

/// Answers `list` page by page (see the module documentation). An error
/// before the first row is the reply; after it, the line cannot be finished
/// and the connection is closed (the client reports an incomplete reply).
async fn stream_list<W: AsyncWriteExt + Unpin>(
    write: &mut W,
    to_daemon: &mpsc::Sender<ControlRequest>,
    uid: u32,
    limits: Limits,
) -> io::Result<()> {
    let mut line = ListLine::default();
    loop {
        let from = line.count();
        let page = Request::ListPage {
            from,
            max: LIST_PAGE,
        };
        let reply = ask_daemon(to_daemon, page, uid, limits.answer).await;
        let rows = match reply.list {
            Some(list) if reply.ok => list.vifs,
            _ if from == 0 => return send(write, reply.to_line().as_bytes(), limits.write).await,
            _ => {
                let why = reply.error.unwrap_or_default();
                return Err(io::Error::other(format!("list cut at row {from}: {why}")));
            }
        };
        let bytes = match line.rows(&rows) {
            Ok(b) => b,
            Err(e) if from == 0 => {
                return send(write, Reply::error(e).to_line().as_bytes(), limits.write).await
            }
            Err(e) => return Err(io::Error::other(e)),
        };
        send(write, &bytes, limits.write).await?;
        // A short page is the last; so is a longer one (a daemon that
        // ignores paging sent everything).
        if rows.len() != LIST_PAGE {
            break;
        }
    }
    send(write, &line.end(), limits.write).await
}

async fn ask_daemon(
    to_daemon: &mpsc::Sender<ControlRequest>,
    request: Request,
    peer_uid: u32,
    wait: Duration,
) -> Reply {
    let name = request.name();
    let (tx, rx) = oneshot::channel();
    let sent = to_daemon.send(ControlRequest {
        request,
        reply: tx,
        peer_uid,
    });
    let answer = async {
        sent.await.ok()?;
        rx.await.ok()
    };
    match tokio::time::timeout(wait, answer).await {
        Ok(Some(reply)) => reply,
        Ok(_) => Reply::error(format!("{name}: the daemon is shutting down")),
        Err(_) => Reply::error(format!("{name}: the daemon did not answer within {wait:?}")),
    }
}

//! The control socket end to end: server, client, malformed input, access.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::support::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use wackamole::control::server::Limits;
use wackamole::control::{
    client, ControlRequest, ControlServer, ListReply, Reply, Request, VifRow, LIST_PAGE, MAX_LINE,
};

/// A fake daemon: answers list with one VIF, move with a message, the rest with an error.
fn fake_daemon(mut rx: mpsc::Receiver<ControlRequest>) -> tokio::task::JoinHandle<Vec<Request>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(req) = rx.recv().await {
            let reply = match &req.request {
                Request::List | Request::ListPage { .. } => Reply::list(ListReply {
                    vifs: vec![VifRow {
                        name: "web".into(),
                        addresses: vec!["192.0.2.10/24".into()],
                        owner: Some("n1".into()),
                        state: "owned".into(),
                        packets: 5,
                        ..VifRow::default()
                    }],
                }),
                Request::Move { vif, node } => Reply::done(format!("moved {vif} to {node}")),
                other => Reply::error(format!("{} not supported here", other.name())),
            };
            seen.push(req.request);
            let _ = req.reply.send(reply);
        }
        seen
    })
}

async fn raw_exchange(path: &Path, bytes: &[u8], lines: usize) -> Result<Vec<String>> {
    let mut s = UnixStream::connect(path).await?;
    s.write_all(bytes).await?;
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    for _ in 0..lines {
        let mut l = String::new();
        if r.read_line(&mut l).await? == 0 {
            break;
        }
        out.push(l);
    }
    Ok(out)
}

#[tokio::test]
async fn round_trip_modes_and_malformed_requests() -> Result<()> {
    let dir = TempDir::new("rt")?;
    let path = dir.0.join("run/control.sock");
    let server = ControlServer::bind(&path)?;
    let mode = |p: &Path| -> Result<u32> { Ok(std::fs::metadata(p)?.permissions().mode() & 0o777) };
    assert_eq!(mode(&path)?, 0o600, "socket mode");
    assert_eq!(
        mode(&dir.0.join("run"))?,
        0o700,
        "created parent directory mode"
    );

    let (tx, rx) = mpsc::channel(8);
    let daemon = fake_daemon(rx);
    let serving = tokio::spawn(server.serve(tx));
    let t = Duration::from_secs(5);

    let list = client::request(&path, &Request::List, t).await?;
    assert!(list.ok);
    assert_eq!(list.list.as_ref().map(|l| l.vifs[0].packets), Some(5));
    let moved = client::request(
        &path,
        &Request::Move {
            vif: "web".into(),
            node: "n2".into(),
        },
        t,
    )
    .await?;
    assert_eq!(moved.message.as_deref(), Some("moved web to n2"));
    let refused = client::request(&path, &Request::Balance, t).await?;
    assert!(!refused.ok && refused.error.as_deref() == Some("balance not supported here"));

    // Bad lines get error replies and the connection goes on.
    let replies = raw_exchange(
        &path,
        b"not json\n{\"cmd\":\"reboot\"}\n{\"cmd\":\"move\",\"vif\":\"x\"}\n{\"cmd\":\"list\"}\n",
        4,
    )
    .await?;
    let parsed: Vec<Reply> = replies
        .iter()
        .map(|l| Reply::parse(l.trim_end().as_bytes()).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    assert_eq!(
        parsed.iter().map(|r| r.ok).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    assert!(
        parsed[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("reboot")),
        "{:?}",
        parsed[1]
    );
    assert!(
        parsed[2]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("node")),
        "{:?}",
        parsed[2]
    );

    // An oversized line: one error reply, then the server hangs up.
    let mut big = vec![b'x'; MAX_LINE + 100];
    big.push(b'\n');
    big.extend_from_slice(b"{\"cmd\":\"list\"}\n");
    let replies = raw_exchange(&path, &big, 2).await?;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(
        replies[0].contains("\"ok\":false") && replies[0].contains("exceeds"),
        "{}",
        replies[0]
    );

    // The daemon saw only the well-formed requests.
    serving.abort();
    let _ = serving.await;
    assert!(!path.exists(), "socket removed when the server stops");
    let seen = daemon.await?;
    assert_eq!(seen.len(), 4, "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn stale_socket_is_replaced_live_one_is_not() -> Result<()> {
    let dir = TempDir::new("stale")?;
    let path = dir.0.join("control.sock");
    // A socket file nobody listens on (a crashed daemon's leftover).
    drop(std::os::unix::net::UnixListener::bind(&path)?);
    assert!(path.exists());
    let first = ControlServer::bind(&path).context("stale socket must be replaced")?;
    // While it listens, a second daemon must not steal the path.
    let err = ControlServer::bind(&path).expect_err("live socket must not be replaced");
    assert!(err.to_string().contains("listening"), "{err:#}");
    drop(first);
    // A regular file is never removed.
    std::fs::write(&path, b"precious")?;
    let err = ControlServer::bind(&path).expect_err("regular file must not be removed");
    assert!(err.to_string().contains("not a socket"), "{err:#}");
    assert_eq!(std::fs::read(&path)?, b"precious");
    Ok(())
}

#[tokio::test]
async fn client_times_out_on_a_silent_daemon() -> Result<()> {
    let dir = TempDir::new("silent")?;
    let path = dir.0.join("control.sock");
    let server = ControlServer::bind(&path)?;
    let (tx, mut rx) = mpsc::channel::<ControlRequest>(8);
    // Holds requests without answering.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(r) = rx.recv().await {
            held.push(r);
        }
    });
    let serving = tokio::spawn(server.serve(tx));
    let err = client::request(&path, &Request::Status, Duration::from_millis(300))
        .await
        .expect_err("no answer");
    assert!(err.to_string().contains("no reply"), "{err:#}");
    serving.abort();
    hold.abort();
    Ok(())
}

/// Child half of `non_root_clients_are_refused`: connects as whatever user it
/// runs as and prints the reply line (or the connect error).
#[test]
#[ignore = "run as a child process by non_root_clients_are_refused"]
fn child_connects_and_prints_reply() {
    let Ok(path) = std::env::var("WACKAMOLE_TEST_CONTROL_SOCKET") else {
        return;
    };
    match std::os::unix::net::UnixStream::connect(&path) {
        Err(e) => println!("CONNECT-ERROR {e}"),
        Ok(mut s) => {
            use std::io::{BufRead, Write};
            let _ = s.write_all(b"{\"cmd\":\"status\"}\n");
            let mut line = String::new();
            let _ = std::io::BufReader::new(s).read_line(&mut line);
            println!("REPLY {}", line.trim_end());
        }
    }
}

fn run_child_as_nobody(exe: &Path, socket: &Path) -> Result<String> {
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "socket::child_connects_and_prints_reply",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WACKAMOLE_TEST_CONTROL_SOCKET", socket)
        .uid(65534)
        .gid(65534)
        .output()
        .context("running the test binary as uid 65534")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
#[ignore = "needs root"]
async fn non_root_clients_are_refused() -> Result<()> {
    // Starts a child as another uid.
    crate::support::require_root();
    let dir = TempDir::new("peer")?;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755))?;
    // The child runs a copy of this test binary that uid 65534 may execute.
    let exe = dir.0.join("child");
    std::fs::copy(std::env::current_exe()?, &exe)?;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))?;
    let path = dir.0.join("control.sock");
    let server = ControlServer::bind(&path)?;
    let (tx, mut rx) = mpsc::channel::<ControlRequest>(8);
    let serving = tokio::spawn(server.serve(tx));

    // First layer: mode 0600 keeps other users from connecting at all.
    let p = path.clone();
    let e = exe.clone();
    let out = tokio::task::spawn_blocking(move || run_child_as_nobody(&e, &p)).await??;
    assert!(out.contains("CONNECT-ERROR"), "{out}");

    // Second layer: with the mode opened up, SO_PEERCRED still refuses.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    let p = path.clone();
    let out = tokio::task::spawn_blocking(move || run_child_as_nobody(&exe, &p)).await??;
    let line = out
        .split_once("REPLY ")
        .and_then(|(_, rest)| rest.lines().next())
        .with_context(|| format!("child output: {out}"))?;
    let reply = Reply::parse(line.as_bytes()).map_err(anyhow::Error::msg)?;
    assert!(!reply.ok);
    assert!(
        reply
            .error
            .as_deref()
            .is_some_and(|e| e.contains("uid 65534")),
        "{reply:?}"
    );
    assert!(
        rx.try_recv().is_err(),
        "a refused request must not reach the daemon"
    );

    // Root is still served on the same socket.
    let root = client::request(&path, &Request::Status, Duration::from_secs(5));
    let answer = async {
        if let Some(r) = rx.recv().await {
            let _ = r.reply.send(Reply::done("status here"));
        }
    };
    let (root, ()) = tokio::join!(root, answer);
    assert_eq!(root?.message.as_deref(), Some("status here"));
    serving.abort();
    Ok(())
}

/// A `list` of a thousand VIFs is far over the request limit; the client
/// must still take it whole.
#[tokio::test]
async fn large_list_replies_reach_the_client() -> Result<()> {
    let dir = TempDir::new("big")?;
    let path = dir.0.join("run/control.sock");
    let server = ControlServer::bind(&path)?;
    let (tx, mut rx) = mpsc::channel::<ControlRequest>(4);
    tokio::spawn(server.serve(tx));
    let rows: Vec<VifRow> = (0..1000)
        .map(|k| VifRow {
            name: format!("vif-with-a-long-name-{k}"),
            addresses: vec![format!("10.0.{}.{}/24", k / 250, k % 250 + 1)],
            owner: Some("node-with-a-long-name".into()),
            state: "owned".into(),
            packets: u64::MAX,
            bytes: u64::MAX,
            arp_replies: u64::MAX,
            drops: u64::MAX,
        })
        .collect();
    let expected = rows.clone();
    let daemon = tokio::spawn(async move {
        if let Some(req) = rx.recv().await {
            let _ = req.reply.send(Reply::list(ListReply { vifs: rows }));
        }
    });
    let reply = client::request(&path, &Request::List, Duration::from_secs(10)).await?;
    assert!(
        reply.to_line().len() > MAX_LINE,
        "the reply must exceed the request limit"
    );
    assert_eq!(reply.list.context("no list in the reply")?.vifs, expected);
    daemon.await?;
    Ok(())
}

/// A daemon holding `rows` that answers pages as the agent does, and
/// `status` with a message; it records each page asked for.
fn paged_daemon(
    mut rx: mpsc::Receiver<ControlRequest>,
    rows: Vec<VifRow>,
) -> std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>> {
    let pages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = pages.clone();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let reply = match req.request {
                Request::ListPage { from, max } => {
                    seen.lock().unwrap().push((from, max));
                    let end = from.saturating_add(max).min(rows.len());
                    Reply::list(ListReply {
                        vifs: rows.get(from..end).unwrap_or_default().to_vec(),
                    })
                }
                Request::Status => Reply::done("serving"),
                other => Reply::error(format!("{} not supported here", other.name())),
            };
            let _ = req.reply.send(reply);
        }
    });
    pages
}

fn rows_4096() -> Vec<VifRow> {
    (0..4096)
        .map(|k| VifRow {
            name: format!("bulk{k}"),
            addresses: vec![format!("10.1.{}.{}/16", k / 250, k % 250 + 1)],
            owner: Some(format!("node-{}", k % 8)),
            state: "owned".into(),
            packets: u64::MAX,
            bytes: u64::MAX,
            arp_replies: 3,
            drops: 0,
        })
        .collect()
}

/// `list` of MAX_VIPS VIFs: the server asks the daemon page by page and the
/// client gets exactly the one-line reply it always got.
#[tokio::test]
async fn a_list_of_4096_vifs_is_streamed_page_by_page() -> Result<()> {
    let dir = TempDir::new("pages")?;
    let path = dir.0.join("control.sock");
    let server = ControlServer::bind(&path)?;
    let (tx, rx) = mpsc::channel::<ControlRequest>(4);
    tokio::spawn(server.serve(tx));
    let rows = rows_4096();
    let pages = paged_daemon(rx, rows.clone());
    let reply = client::request(&path, &Request::List, Duration::from_secs(10)).await?;
    let line = reply.to_line();
    assert_eq!(reply, Reply::list(ListReply { vifs: rows }));
    let pages = pages.lock().unwrap().clone();
    let want: Vec<(usize, usize)> = (0..=4096 / LIST_PAGE)
        .map(|p| (p * LIST_PAGE, LIST_PAGE))
        .collect();
    assert_eq!(pages, want, "one request per page, in order");
    println!(
        "4096 VIFs: reply line {} bytes in {} pages of {LIST_PAGE}",
        line.len(),
        pages.len()
    );
    Ok(())
}

/// A client that asks for a big `list` and never reads holds one page in the
/// server (the rest is never asked of the daemon), other clients are served
/// meanwhile, and the write timeout closes the stalled connection.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_others_are_served() -> Result<()> {
    let dir = TempDir::new("stall")?;
    let path = dir.0.join("control.sock");
    let write = Duration::from_millis(1500);
    let server = ControlServer::bind(&path)?.with_limits(Limits {
        write,
        ..Limits::default()
    });
    let (tx, rx) = mpsc::channel::<ControlRequest>(4);
    tokio::spawn(server.serve(tx));
    let pages = paged_daemon(rx, rows_4096());
    let all_pages = 4096 / LIST_PAGE + 1;

    let mut stalled = UnixStream::connect(&path).await?;
    stalled
        .write_all(Request::List.to_line().as_bytes())
        .await?;
    // Let the server fill the socket buffer and block.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = pages.lock().unwrap().len();
    assert!(
        (1..all_pages).contains(&asked),
        "the stalled list asked {asked} of {all_pages} pages"
    );
    for _ in 0..3 {
        let other = client::request(&path, &Request::Status, Duration::from_secs(2)).await?;
        assert_eq!(other.message.as_deref(), Some("serving"));
    }
    assert_eq!(pages.lock().unwrap().len(), asked, "no page asked unread");

    // Past the write timeout the server hangs up: the client finds a cut
    // line (no newline), never the rest of the list.
    tokio::time::sleep(write + Duration::from_millis(500)).await;
    let mut got = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut got),
    )
    .await
    .context("the stalled connection is closed")??;
    assert!(
        !got.is_empty() && !got.ends_with(b"\n"),
        "{} bytes",
        got.len()
    );
    assert!(pages.lock().unwrap().len() < all_pages);
    println!(
        "stalled reader: {asked} of {all_pages} pages asked, {} bytes delivered before the cut",
        got.len()
    );
    Ok(())
}

#[tokio::test]
async fn ctl_prints_hostile_names_escaped() -> Result<()> {
    // A peer named with a terminal escape and a newline (a forged row).
    const EVIL: &str = "n2\u{1b}]0;pwned\u{7}\u{1b}[2J\nweb  192.0.2.99/24  n1  owned";
    let dir = TempDir::new("evil")?;
    let path = dir.0.join("control.sock");
    let server = ControlServer::bind(&path)?;
    let (tx, mut rx) = mpsc::channel::<ControlRequest>(4);
    tokio::spawn(server.serve(tx));
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let reply = match &req.request {
                Request::List | Request::ListPage { .. } => Reply::list(ListReply {
                    vifs: vec![VifRow {
                        name: EVIL.into(),
                        addresses: vec!["192.0.2.10/24".into()],
                        owner: Some(EVIL.into()),
                        state: "owned".into(),
                        ..VifRow::default()
                    }],
                }),
                _ => Reply::error(format!("no node {EVIL}")),
            };
            let _ = req.reply.send(reply);
        }
    });
    for (args, lines) in [
        (&["list"][..], 2),
        (&["list", "--json"][..], 1),
        (&["drain", "x"][..], 1),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wackamole"))
            .arg("ctl")
            .arg("--socket")
            .arg(&path)
            .args(args)
            .output()
            .await?;
        let text = String::from_utf8(out.stdout)?;
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: raw control characters in {text:?}"
        );
        assert_eq!(text.lines().count(), lines, "{args:?}: {text}");
        if args[0] == "list" && lines == 2 {
            assert!(
                text.contains("n2\\x1b]0;pwned\\x07\\x1b[2J\\nweb"),
                "{text}"
            );
        }
    }
    Ok(())
}

//! Frames arriving on B's `vb` (the far end of a test's veth pair), caught
//! on a packet socket of their own, and the run of paced frames behind a
//! fencing lease that lapses, shared by the ARP and ND tests.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use wackamole::daemon::announcer::{LeaseSignal, LeaseWait};
use wackamole::net::NetResult;
use wackamole::testbed::Netns;

/// The frames of `ethertype` that `keep` accepts, arriving on `vb` in B
/// while `send` runs (up to `n`, 3 s at most); the capture socket is open
/// before `send` runs.
pub fn during(
    b: &Netns,
    ethertype: u16,
    keep: fn(&[u8]) -> bool,
    n: usize,
    send: impl FnOnce() -> Result<()>,
) -> Result<Vec<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    let handle = spawn(b, ethertype, keep, n, Duration::from_secs(3), tx)?;
    send()?;
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("capture thread panicked"))??;
    Ok(rx.try_iter().collect())
}

/// Starts capturing the frames of `ethertype` that `keep` accepts, arriving
/// on `vb` in B, on a thread of its own: each is sent to `frames` as it
/// arrives, until `n` or `limit` pass. Returns once the socket is open.
pub fn spawn(
    b: &Netns,
    ethertype: u16,
    keep: fn(&[u8]) -> bool,
    n: usize,
    limit: Duration,
    frames: mpsc::Sender<Vec<u8>>,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let path = format!("/run/netns/{}", b.name());
    let handle = std::thread::spawn(move || -> Result<()> {
        let file = std::fs::File::open(&path)?;
        // SAFETY: setns on a valid namespace fd, for this thread only.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns {path}: {}", std::io::Error::last_os_error());
        }
        let proto = ethertype.to_be();
        // SAFETY: plain socket(2); owned right below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        if raw < 0 {
            bail!("capture socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        // SAFETY: NUL-terminated name.
        sll.sll_ifindex = unsafe { libc::if_nametoindex(c"vb".as_ptr()) } as i32;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: valid pointers and lengths.
        unsafe {
            if libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                bail!("bind capture: {}", std::io::Error::last_os_error());
            }
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let _ = ready_tx.send(());
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        while seen < n && Instant::now() < deadline {
            let mut buf = [0u8; 1600];
            // SAFETY: buf is valid for its length.
            let got = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got > 0 {
                let frame = &buf[..got as usize];
                if keep(frame) {
                    seen += 1;
                    if frames.send(frame.to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
        Ok(())
    });
    ready_rx.recv_timeout(Duration::from_secs(3))?;
    Ok(handle)
}

/// Frames of a paced run seen on the wire around a lapse of its lease.
#[derive(Clone, Copy, Debug)]
pub struct Lapse {
    /// What the run reports it sent.
    pub sent: usize,
    /// Seen before the lease ran out.
    pub before: usize,
    /// Seen while it was out.
    pub fenced: usize,
    /// Seen after the renewal.
    pub after: usize,
}

/// Runs `run`, 10 frames at 20/s behind the gate it is given, while the
/// lease runs out at 120 ms (three frames, at 0, 50 and 100 ms, go out
/// before) and is renewed at 800 ms. `seen` counts the frames captured
/// since its last call.
pub async fn across_a_lapse<F>(
    run: impl FnOnce(LeaseWait) -> F,
    seen: impl Fn() -> usize,
) -> Result<Lapse>
where
    F: std::future::Future<Output = NetResult<usize>>,
{
    let signal = LeaseSignal::default();
    signal.renewed(tokio::time::Instant::now() + Duration::from_millis(120));
    let run = run(signal.waiter());
    let script = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let before = seen();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let fenced = seen();
        signal.renewed(tokio::time::Instant::now() + Duration::from_secs(5));
        (before, fenced)
    };
    let (sent, (before, fenced)) = tokio::join!(run, script);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Lapse {
        sent: sent?,
        before,
        fenced,
        after: seen(),
    })
}

impl Lapse {
    /// All 10 sent; the first few before the lapse, none while the lease
    /// was out, the rest after the renewal. `what` names the frames.
    pub fn check(&self, what: &str) -> Result<()> {
        let Lapse {
            sent,
            before,
            fenced,
            after,
        } = *self;
        ensure!(sent == 10, "sent {sent}");
        ensure!(
            (1..=4).contains(&before),
            "{before} {what} before the lapse"
        );
        ensure!(fenced == 0, "{fenced} {what} sent while the lease was out");
        ensure!(
            before + after == 10,
            "{before} before, {after} after the renewal"
        );
        Ok(())
    }
}

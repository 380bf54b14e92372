//! systemd's notify protocol (`Type=notify`, `WatchdogSec`), spoken directly:
//! one datagram to `$NOTIFY_SOCKET`. Without that variable every call is a no-op,
//! so the agent runs the same under systemd, in tests and by hand.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A handle to the service manager, if there is one.
pub struct Notifier {
    target: Option<std::path::PathBuf>,
    abstract_name: Option<Vec<u8>>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Notifier {
                target: None,
                abstract_name: None,
            },
            Some(s) => {
                let bytes = std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()).to_vec();
                if let Some(name) = bytes.strip_prefix(b"@") {
                    Notifier {
                        target: None,
                        abstract_name: Some(name.to_vec()),
                    }
                } else {
                    Notifier {
                        target: Some(std::path::PathBuf::from(s)),
                        abstract_name: None,
                    }
                }
            }
        }
    }

    /// The watchdog interval systemd expects pings within (`$WATCHDOG_USEC`), if any.
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Some(pid) = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
        {
            if pid != std::process::id() {
                return None;
            }
        }
        (usec > 0).then(|| Duration::from_micros(usec))
    }

    fn send(&self, msg: &str) {
        let Ok(sock) = UnixDatagram::unbound() else {
            return;
        };
        let result = if let Some(path) = &self.target {
            sock.send_to(msg.as_bytes(), path)
        } else if let Some(name) = &self.abstract_name {
            use std::os::linux::net::SocketAddrExt;
            match std::os::unix::net::SocketAddr::from_abstract_name(name) {
                Ok(addr) => sock.send_to_addr(msg.as_bytes(), &addr),
                Err(e) => Err(e),
            }
        } else {
            return;
        };
        if let Err(e) = result {
            tracing::debug!("sd_notify {msg:?} failed: {e}");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_notify_socket() {
        let dir = std::env::temp_dir().join(format!("wk-sdnotify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).expect("bind test socket");
        let n = Notifier {
            target: Some(path.clone()),
            abstract_name: None,
        };
        n.ready("joined");
        n.watchdog();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).expect("first datagram");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=joined");
        let len = server.recv(&mut buf).expect("second datagram");
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_socket_is_a_no_op() {
        let n = Notifier {
            target: None,
            abstract_name: None,
        };
        n.ready("x");
        n.stopping();
    }
}

//! Network namespaces with RAII cleanup.

use anyhow::{anyhow, bail, Context, Result};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const PREFIX: &str = "wkt-";
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs a command, failing with its command line and stderr.
pub(crate) fn checked(cmd: &mut Command) -> Result<Output> {
    let line = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Deletes namespaces named `wkt-<pid>-*` whose creating process is gone.
pub fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            kill_all_in(name);
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
    }
}

fn kill_all_in(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: plain syscall on a pid read from the kernel.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// A network namespace that is deleted (with every process in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `wkt-<pid>-<n>-<tag>` (the tag only helps a human reading `ip netns`),
    /// with loopback up.
    pub fn new(tag: &str) -> Result<Self> {
        if !super::is_root() {
            bail!("creating a network namespace needs root (tests that do are `#[ignore = \"needs root\"]`)");
        }
        sweep_stale();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let name = format!("{PREFIX}{}-{n}-{tag}", std::process::id());
        checked(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `argv` in the namespace and returns its stdout; errors carry stderr.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| anyhow!("empty command for namespace {}", self.name))?;
        let out = checked(self.command(program).args(args))
            .with_context(|| format!("in namespace {}", self.name))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `argv` in the namespace and returns whether it exited 0 (stdout/stderr discarded).
    pub fn succeeds(&self, argv: &[&str]) -> bool {
        let Some((program, args)) = argv.split_first() else {
            return false;
        };
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts a long-running process in the namespace; it is killed when the
    /// returned guard drops (and again when the namespace is deleted).
    pub fn spawn(&self, cmd: &mut Command) -> Result<NsChild> {
        let line = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {line} in namespace {}", self.name))?;
        Ok(NsChild { child: Some(child) })
    }

    /// Runs `f` on a new thread that has entered this namespace (network
    /// namespaces are per thread), e.g. to load and attach XDP from this process.
    pub fn in_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        let handle = std::thread::spawn(move || -> Result<T> {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd; affects only this new thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                bail!("setns({path}): {}", std::io::Error::last_os_error());
            }
            Ok(f())
        });
        handle
            .join()
            .map_err(|_| anyhow!("thread in namespace {} panicked", self.name))?
    }

    /// The index of `iface` inside the namespace.
    pub fn ifindex(&self, iface: &str) -> Result<u32> {
        let path = format!("/sys/class/net/{iface}/ifindex");
        let out = self.run(&["cat", &path])?;
        out.trim()
            .parse()
            .with_context(|| format!("ifindex of {iface} in {}", self.name))
    }

    /// The MAC address of `iface` inside the namespace.
    pub fn mac(&self, iface: &str) -> Result<[u8; 6]> {
        let out = self.run(&["cat", &format!("/sys/class/net/{iface}/address")])?;
        parse_mac(out.trim()).with_context(|| format!("MAC of {iface} in {}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_all_in(&self.name);
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in mac.iter_mut() {
        let p = parts
            .next()
            .ok_or_else(|| anyhow!("short MAC address {s:?}"))?;
        *byte = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC address {s:?}"))?;
    }
    if parts.next().is_some() {
        bail!("long MAC address {s:?}");
    }
    Ok(mac)
}

/// A process started in a namespace; SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct NsChild {
    child: Option<Child>,
}

impl NsChild {
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let pid = self.id().ok_or_else(|| anyhow!("process already reaped"))?;
        // SAFETY: plain syscall on our own child's pid.
        if unsafe { libc::kill(pid as i32, signal) } != 0 {
            bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Hands the process over (it will no longer be killed on drop).
    pub fn into_inner(mut self) -> Option<Child> {
        self.child.take()
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Connects `a`:`a_if` and `b`:`b_if` with a veth pair and brings both up.
pub fn veth_pair(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    a.run(&[
        "ip",
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.run(&["ip", "link", "set", a_if, "up"])?;
    b.run(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_macs() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01").ok(),
            Some([2, 0, 10, 255, 0, 1])
        );
        assert!(parse_mac("02:00:0a").is_err());
        assert!(parse_mac("02:00:0a:ff:00:01:07").is_err());
        assert!(parse_mac("zz:00:0a:ff:00:01").is_err());
    }

    #[test]
    #[ignore = "needs root"]
    fn namespace_lifecycle_and_veth() -> Result<()> {
        crate::testbed::require_root();
        let a = Netns::new("a")?;
        let b = Netns::new("b")?;
        let name = a.name().to_string();
        veth_pair(&a, "va", &b, "vb")?;
        a.run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])?;
        b.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"])?;
        assert!(a.succeeds(&["ping", "-c1", "-W1", "192.0.2.2"]));
        assert_eq!(a.mac("va")?.len(), 6);
        assert!(a.ifindex("va")? > 0);
        let in_thread = a.in_thread(|| std::fs::read_to_string("/proc/thread-self/net/dev"))??;
        assert!(in_thread.contains("va:"));
        drop(a);
        let list = checked(Command::new("ip").args(["netns", "list"]))?;
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
        Ok(())
    }
}

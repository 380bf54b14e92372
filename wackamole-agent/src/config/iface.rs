//! What validation asks of the running system, behind a trait so tests can
//! fake it: does a network interface exist, and what is this host called.

use std::collections::BTreeSet;

/// The system questions config validation needs answered.
pub trait InterfaceCheck {
    /// Whether a network interface of this name exists on this host.
    fn interface_exists(&self, name: &str) -> bool;
    /// This host's name (the default `node` name), if known.
    fn hostname(&self) -> Option<String> {
        None
    }
}

/// The real system: interfaces from `/sys/class/net/<if>`, host name from
/// `/proc/sys/kernel/hostname`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemInterfaces;

impl InterfaceCheck for SystemInterfaces {
    fn interface_exists(&self, name: &str) -> bool {
        // A name with a '/' or a dot-only name would escape /sys/class/net.
        !name.is_empty()
            && !name.contains('/')
            && name != "."
            && name != ".."
            && std::path::Path::new("/sys/class/net").join(name).exists()
    }

    fn hostname(&self) -> Option<String> {
        system_hostname()
    }
}

/// Accepts every interface name (for checking a config meant for another
/// host, e.g. the output of `import-conf`); the host name is the real one.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyInterface;

impl InterfaceCheck for AnyInterface {
    fn interface_exists(&self, _name: &str) -> bool {
        true
    }

    fn hostname(&self) -> Option<String> {
        system_hostname().or_else(|| Some("localhost".into()))
    }
}

/// A fixed set of interfaces and a fixed host name, for tests.
#[derive(Debug, Clone, Default)]
pub struct FakeInterfaces {
    /// The interfaces that "exist".
    pub names: BTreeSet<String>,
    /// The host name reported, if any.
    pub hostname: Option<String>,
}

impl FakeInterfaces {
    /// These interfaces exist and the host is called `testnode`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        FakeInterfaces {
            names: names.into_iter().map(Into::into).collect(),
            hostname: Some("testnode".into()),
        }
    }
}

impl InterfaceCheck for FakeInterfaces {
    fn interface_exists(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn hostname(&self) -> Option<String> {
        self.hostname.clone()
    }
}

fn system_hostname() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = raw.trim();
    (!name.is_empty()).then(|| name.to_string())
}

//! What validation asks of the running system, behind a trait so tests can
//! fake it: does a network interface exist, what is this host called, and
//! what is at the directory the agent would mount a bpffs on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What is at the directory the agent would make a bpf filesystem of
/// (see [`super::bpffs_mount_point`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPoint {
    /// Nothing: the agent creates an empty directory and mounts on it.
    Missing,
    /// Already a bpf filesystem: nothing is mounted.
    Bpffs,
    /// An empty directory: a mount on it hides nothing.
    EmptyDir,
    /// Anything else, said in words ("a non-empty directory", "a file"):
    /// a mount would hide it.
    Occupied(String),
    /// Not known here (a config checked for another host): not refused.
    Unknown,
}

/// The system questions config validation needs answered.
pub trait InterfaceCheck {
    /// Whether a network interface of this name exists on this host.
    fn interface_exists(&self, name: &str) -> bool;
    /// This host's name (the default `node` name), if known.
    fn hostname(&self) -> Option<String> {
        None
    }
    /// What is at `path` (a would-be bpffs mount point).
    fn mount_point(&self, _path: &Path) -> MountPoint {
        MountPoint::Unknown
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

    fn mount_point(&self, path: &Path) -> MountPoint {
        system_mount_point(path)
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
    /// What is at these directories; any other path is [`MountPoint::Missing`].
    pub dirs: BTreeMap<PathBuf, MountPoint>,
}

impl FakeInterfaces {
    /// These interfaces exist and the host is called `testnode`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        FakeInterfaces {
            names: names.into_iter().map(Into::into).collect(),
            hostname: Some("testnode".into()),
            dirs: BTreeMap::new(),
        }
    }

    /// Says that `path` holds `what` (for the bpffs_dir checks).
    pub fn with_dir(mut self, path: impl Into<PathBuf>, what: MountPoint) -> Self {
        self.dirs.insert(path.into(), what);
        self
    }
}

impl InterfaceCheck for FakeInterfaces {
    fn interface_exists(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn hostname(&self) -> Option<String> {
        self.hostname.clone()
    }

    fn mount_point(&self, path: &Path) -> MountPoint {
        self.dirs.get(path).cloned().unwrap_or(MountPoint::Missing)
    }
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Looks at `path` the way the data plane will: it follows symbolic links
/// (so does mount), asks statfs whether it is a bpffs, else whether it is
/// an empty directory.
fn system_mount_point(path: &Path) -> MountPoint {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return MountPoint::Missing,
        Err(e) => return MountPoint::Occupied(format!("not readable ({e})")),
    };
    if !meta.is_dir() {
        return MountPoint::Occupied("not a directory".into());
    }
    if is_bpffs(path) {
        return MountPoint::Bpffs;
    }
    match std::fs::read_dir(path) {
        Ok(mut entries) => match entries.next() {
            None => MountPoint::EmptyDir,
            Some(_) => MountPoint::Occupied("a non-empty directory".into()),
        },
        Err(e) => MountPoint::Occupied(format!("a directory that cannot be listed ({e})")),
    }
}

fn is_bpffs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    magic == BPF_FS_MAGIC
}

fn system_hostname() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = raw.trim();
    (!name.is_empty()).then(|| name.to_string())
}

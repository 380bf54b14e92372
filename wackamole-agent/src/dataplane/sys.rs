//! Small system calls: monotonic clock, interface index and MAC, bpffs mount.
//!
//! Interface lookups go through a socket created by the calling thread, so
//! they resolve names in that thread's network namespace (see
//! `testbed::Netns::in_thread`), unlike `/sys/class/net`.

use std::ffi::CString;
use std::io;
use std::path::Path;
use std::time::Duration;

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn c_name(iface: &str) -> io::Result<CString> {
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {iface:?}"),
        ));
    }
    CString::new(iface).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The index of `iface` in the calling thread's network namespace.
pub fn ifindex(iface: &str) -> io::Result<u32> {
    let name = c_name(iface)?;
    // SAFETY: NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// The name of interface `index` in the calling thread's network namespace.
pub fn ifname(index: u32) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; libc::IFNAMSIZ];
    // SAFETY: buf holds IFNAMSIZ bytes as required.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: if_indextoname wrote a NUL-terminated string into buf.
    let s = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Ok(s.to_string_lossy().into_owned())
}

/// The Ethernet address of `iface` (SIOCGIFHWADDR).
pub fn mac(iface: &str) -> io::Result<[u8; 6]> {
    let name = c_name(iface)?;
    // SAFETY: plain socket creation; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes_with_nul()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: fd is a socket, req a valid ifreq with the name set.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let err = io::Error::last_os_error();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(err);
    }
    // SAFETY: SIOCGIFHWADDR filled ifru_hwaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    if sa.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("not an Ethernet interface (hardware type {})", sa.sa_family),
        ));
    }
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// True when `path` is on a bpf filesystem.
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statfs is plain data.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Mounts a bpf filesystem on `path` (which must exist).
pub fn mount_bpffs(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let fstype = c"bpf";
    let opts = c"mode=0700";
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Inode of the initial PID namespace (`PROC_PID_INIT_INO`, fixed by the kernel).
const PID_INIT_INO: &str = "pid:[4026531836]";

/// Whether pins under a bpffs outlive this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BpffsScope {
    /// Visible from PID 1's mount namespace: pins stay after we die.
    Shared,
    /// Only in our mount namespace (why, for the message).
    Private(String),
    /// Cannot tell (e.g. /proc/1 hidden); the reason.
    Unknown(String),
}

/// `major:minor` of the filesystem holding `path` (as in mountinfo).
fn dev_of(path: &Path) -> io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path)?.dev();
    Ok(format!("{}:{}", libc::major(dev), libc::minor(dev)))
}

/// True when a bpf mount of device `dev` (`major:minor`) is listed in
/// `mountinfo` (the format of /proc/PID/mountinfo).
pub fn mountinfo_has_bpffs(mountinfo: &str, dev: &str) -> bool {
    mountinfo.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let device = fields.nth(2);
        let fstype = line
            .split_once(" - ")
            .and_then(|(_, rest)| rest.split_whitespace().next());
        device == Some(dev) && fstype == Some("bpf")
    })
}

/// Decides whether the bpffs at `path` is shared with PID 1's mount
/// namespace. A bpf filesystem is one superblock per mount(2): copies of a
/// mount in other namespaces share its device number, a fresh one (what
/// `ip netns exec` leaves us after remounting /sys) does not. So the mount is
/// shared when PID 1's mountinfo lists a bpf mount of the same device.
/// `mounted_here`: we mounted it ourselves; in a PID namespace other than the
/// initial one (a container) PID 1 is the container's, so a bpffs we had to
/// mount there is the container's own and counted as private too.
pub fn bpffs_scope(path: &Path, mounted_here: bool) -> BpffsScope {
    let dev = match dev_of(path) {
        Ok(d) => d,
        Err(e) => return BpffsScope::Unknown(format!("stat {}: {e}", path.display())),
    };
    if mounted_here {
        let pid_ns = std::fs::read_link("/proc/thread-self/ns/pid")
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !pid_ns.is_empty() && pid_ns != PID_INIT_INO {
            return BpffsScope::Private(
                "it was mounted by the agent inside a container (not the initial PID \
                 namespace), so it is the container's own, not the host's"
                    .into(),
            );
        }
    }
    match std::fs::read_to_string("/proc/1/mountinfo") {
        Ok(info) if mountinfo_has_bpffs(&info, &dev) => BpffsScope::Shared,
        Ok(_) => BpffsScope::Private(format!(
            "PID 1's mount namespace has no bpf mount of device {dev}{}",
            if mounted_here {
                " (the agent mounted it in its own mount namespace, as after `ip netns exec`, \
                 which remounts /sys)"
            } else {
                ""
            }
        )),
        Err(e) => {
            // Without PID 1's mounts, equal mount namespaces still settle it.
            let own = std::fs::read_link("/proc/thread-self/ns/mnt");
            let init = std::fs::read_link("/proc/1/ns/mnt");
            match (own, init) {
                (Ok(a), Ok(b)) if a == b => BpffsScope::Shared,
                (Ok(_), Ok(_)) => BpffsScope::Private(
                    "the agent runs in a mount namespace other than PID 1's".into(),
                ),
                _ => BpffsScope::Unknown(format!("reading /proc/1/mountinfo: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward() {
        let a = monotonic_now();
        let b = monotonic_now();
        assert!(b >= a);
        assert!(a > Duration::ZERO);
    }

    #[test]
    fn mountinfo_matching() {
        let info = "23 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n\
                    45 23 0:40 / /sys/fs/bpf rw,relatime shared:9 - bpf bpf rw\n\
                    50 23 0:41 / /run/x rw master:3 - tmpfs tmpfs rw\n";
        assert!(mountinfo_has_bpffs(info, "0:40"));
        assert!(!mountinfo_has_bpffs(info, "0:41"), "not a bpf mount");
        assert!(!mountinfo_has_bpffs(info, "0:4"));
        assert!(!mountinfo_has_bpffs("", "0:40"));
    }

    #[test]
    fn loopback_lookups() {
        let lo = ifindex("lo").unwrap();
        assert!(lo > 0);
        assert_eq!(ifname(lo).unwrap(), "lo");
        assert!(ifindex("no-such-if0").is_err());
        assert!(ifindex("").is_err());
        assert!(ifindex("much-too-long-interface-name").is_err());
        // Loopback is not Ethernet.
        assert!(mac("lo").is_err());
    }
}

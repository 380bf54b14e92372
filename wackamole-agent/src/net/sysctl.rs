//! Per-interface IPv4 settings (`/proc/sys/net/ipv4/conf/<iface>/`), as
//! seen from this process's network namespace.
//!
//! One matters to a VIP holder: `promote_secondaries`. The first address of
//! a subnet on an interface is its primary, the next ones secondaries, and
//! with `promote_secondaries = 0` (the kernel's default, and what a fresh
//! network namespace gets) removing a primary silently removes every
//! secondary of its subnet too. A node holding several VIPs of a subnet it
//! has no address of its own in then loses all of them when it releases the
//! first one: XDP still answers ARP for them, the kernel drops their traffic
//! (seen in the 1000-VIP benchmark as VIPs dark for seconds after a
//! rebalance). keepalived sets it on its interfaces for the same reason;
//! systemd's defaults set it for the host namespace.

use super::{NetError, NetResult};
use std::path::PathBuf;

fn conf_path(iface: &str, key: &str) -> NetResult<PathBuf> {
    // An interface name is at most 15 bytes and never a path component
    // that climbs out of the directory.
    if iface.is_empty() || iface.len() > 15 || iface.contains('/') || iface == "." || iface == ".."
    {
        return Err(NetError::NoSuchInterface {
            iface: iface.to_string(),
        });
    }
    Ok(PathBuf::from(format!(
        "/proc/sys/net/ipv4/conf/{iface}/{key}"
    )))
}

fn io_err(iface: &str, op: String) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |source| NetError::Io {
        iface: iface.to_string(),
        op,
        cause: source,
    }
}

/// The value of `key` for `iface`, trimmed.
pub fn read(iface: &str, key: &str) -> NetResult<String> {
    let path = conf_path(iface, key)?;
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(io_err(iface, format!("reading {}", path.display())))
}

/// Sets `key` for `iface` to `value`.
pub fn write(iface: &str, key: &str, value: &str) -> NetResult<()> {
    let path = conf_path(iface, key)?;
    std::fs::write(&path, value).map_err(io_err(iface, format!("writing {}", path.display())))
}

/// Makes sure removing one address of a subnet on `iface` leaves the others
/// (see the module comment). Returns the previous value when it had to be
/// changed (to put back when the agent stops), `None` when it was already on.
pub fn ensure_promote_secondaries(iface: &str) -> NetResult<Option<String>> {
    let was = read(iface, PROMOTE_SECONDARIES)?;
    if was == "1" {
        return Ok(None);
    }
    write(iface, PROMOTE_SECONDARIES, "1")?;
    Ok(Some(was))
}

/// Puts back the value [`ensure_promote_secondaries`] replaced.
pub fn restore_promote_secondaries(iface: &str, was: &str) -> NetResult<()> {
    write(iface, PROMOTE_SECONDARIES, was)
}

const PROMOTE_SECONDARIES: &str = "promote_secondaries";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_interfaces_never_become_paths() {
        for bad in ["", "..", ".", "a/b", "../../etc", "0123456789abcdef"] {
            let err = read(bad, PROMOTE_SECONDARIES).expect_err(bad);
            assert!(
                matches!(err, NetError::NoSuchInterface { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_interface_is_an_error_naming_it() {
        let err = read("nosuchif7", PROMOTE_SECONDARIES).expect_err("absent");
        assert!(err.to_string().contains("nosuchif7"), "{err}");
    }
}

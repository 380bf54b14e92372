//! Runs iputils `arping` inside a namespace and reads its replies.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::testbed::Netns;

/// One reply line of iputils arping: `Unicast reply from A [MAC]  0.6ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpReply {
    pub from: Ipv4Addr,
    pub mac: [u8; 6],
}

/// Parses the reply lines of iputils arping output (other lines are ignored).
pub fn parse_replies(output: &str) -> Vec<ArpReply> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("Unicast reply from ")?;
            let (addr, rest) = rest.split_once(' ')?;
            let mac = rest.strip_prefix('[')?.split(']').next()?;
            Some(ArpReply {
                from: addr.parse().ok()?,
                mac: parse_mac(mac)?,
            })
        })
        .collect()
}

/// Sends `count` ARP requests for `target` from `iface` in `ns` (one a
/// second, waiting at most `timeout`) and returns the replies.
pub fn arping(
    ns: &Netns,
    iface: &str,
    target: Ipv4Addr,
    count: u32,
    timeout: Duration,
) -> Result<Vec<ArpReply>> {
    let out = ns
        .command("arping")
        .args(["-c", &count.to_string(), "-w"])
        .arg(timeout.as_secs().max(1).to_string())
        .args(["-I", iface, &target.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running arping for {target} on {iface} in {}", ns.name()))?;
    // Exit status 1 just means "no reply"; anything else is a failure.
    if !matches!(out.status.code(), Some(0 | 1)) {
        anyhow::bail!(
            "arping for {target} on {iface} in {} failed ({}): {}",
            ns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_replies(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in mac.iter_mut() {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

pub use crate::net::fmt_mac;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iputils_output() {
        let out = "ARPING 192.0.2.100 from 192.0.2.2 pv\n\
                   Unicast reply from 192.0.2.100 [02:AA:00:00:00:01]  0.640ms\n\
                   Unicast reply from 192.0.2.100 [02:AA:00:00:00:01]  0.512ms\n\
                   Sent 2 probes (1 broadcast(s))\nReceived 2 response(s)\n";
        let r = parse_replies(out);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].from, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(r[0].mac, [2, 0xaa, 0, 0, 0, 1]);
        assert!(parse_replies("Sent 2 probes\nReceived 0 response(s)\n").is_empty());
        assert!(parse_replies("Unicast reply from nonsense [zz]").is_empty());
        assert_eq!(fmt_mac(&[2, 0xaa, 0, 0, 0, 1]), "02:aa:00:00:00:01");
    }
}

//! Interface-qualified addresses: `iface:IP/prefix` with Wackamole's optional
//! network hint `nBITS` (`"eth0:10.2.3.4/32n23"`).
//!
//! Reading of the hint, from wackamole 2.1.4 (lexer `toCIDR`, and
//! `calc_new_cidr` in its spoof manager): `/prefix` is the netmask the address
//! is plumbed with, which on many systems is `/32` for an alias, so it says
//! nothing about which neighbours can be reached. `nBITS` names the directly
//! attached network the address lives in (`addr & mask(BITS)`); ARP
//! notifications for the VIP (a notify range, or entries of the shared ARP
//! cache) are only sent to destinations inside that network, on that
//! interface. Wackamole assumed `n24` when the hint was absent; here an absent
//! hint means "the prefix itself" and the importer writes `n24` explicitly
//! when the two differ, so imported configs keep their old reach.

use std::fmt;
use std::net::IpAddr;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// One address of a virtual interface, e.g. `eth0:10.2.3.4/24n23`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VifAddress {
    /// Interface the address is plumbed on.
    pub iface: String,
    /// The virtual IP.
    pub addr: IpAddr,
    /// Netmask length it is plumbed with.
    pub prefix: u8,
    /// Network hint `nBITS` (IPv4 only): the attached network ARP
    /// notifications for this address may reach. `None` = use `prefix`.
    pub network_bits: Option<u8>,
}

impl VifAddress {
    /// Prefix length of the network this address's notifications may reach.
    pub fn reach_bits(&self) -> u8 {
        self.network_bits.unwrap_or(self.prefix)
    }
}

impl fmt::Display for VifAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.iface, self.addr, self.prefix)?;
        if let Some(n) = self.network_bits {
            write!(f, "n{n}")?;
        }
        Ok(())
    }
}

/// A range of neighbours to notify, e.g. `eth0:10.2.3.0/24` (every address of
/// the /24 on eth0) or `eth0:10.2.3.1/32` (the router).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotifyRange {
    /// Interface the notifications leave by.
    pub iface: String,
    /// An address of the range (host bits kept as written).
    pub addr: IpAddr,
    /// Range size as a prefix length.
    pub prefix: u8,
}

impl fmt::Display for NotifyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.iface, self.addr, self.prefix)
    }
}

/// Why an address string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError(pub String);

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn max_prefix(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// Checks an interface name the way the kernel would accept it.
pub fn check_ifname(name: &str) -> Result<(), AddressError> {
    if name.is_empty() {
        return Err(AddressError("empty interface name".into()));
    }
    if name.len() > MAX_IFNAME {
        return Err(AddressError(format!(
            "interface name {name:?} is longer than {MAX_IFNAME} bytes"
        )));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(AddressError(format!(
            "{name:?} is not a valid interface name"
        )));
    }
    Ok(())
}

/// Splits `iface:REST` at the first colon (interface names have none; IPv6
/// addresses after it may).
fn split_iface<'a>(text: &'a str, example: &str) -> Result<(&'a str, &'a str), AddressError> {
    let (iface, rest) = text
        .split_once(':')
        .ok_or_else(|| AddressError(format!("{text:?} has no interface: write it as {example}")))?;
    check_ifname(iface)?;
    Ok((iface, rest))
}

fn parse_bits(text: &str, what: &str, whole: &str) -> Result<u8, AddressError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 3 {
        return Err(AddressError(format!(
            "{whole:?}: {what} {text:?} is not a number"
        )));
    }
    text.parse::<u8>()
        .map_err(|_| AddressError(format!("{whole:?}: {what} {text} is out of range")))
}

/// Parses `iface:IP/prefix` or `iface:IP/prefixnBITS`.
pub fn parse_vif_address(text: &str) -> Result<VifAddress, AddressError> {
    let (iface, rest) = split_iface(text, "\"eth0:10.2.3.4/24\"")?;
    let (ip, tail) = rest.rsplit_once('/').ok_or_else(|| {
        AddressError(format!(
            "{text:?} has no prefix length: write it as \"{iface}:{rest}/24\""
        ))
    })?;
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| AddressError(format!("{text:?}: {ip:?} is not an IP address")))?;
    let (prefix_txt, hint_txt) = match tail.split_once('n') {
        Some((p, n)) => (p, Some(n)),
        None => (tail, None),
    };
    let prefix = parse_bits(prefix_txt, "prefix", text)?;
    let max = max_prefix(&addr);
    if prefix == 0 || prefix > max {
        return Err(AddressError(format!(
            "{text:?}: prefix /{prefix} is out of range (1..={max} for this address)"
        )));
    }
    let network_bits = match hint_txt {
        None => None,
        Some(n) => {
            if !addr.is_ipv4() {
                return Err(AddressError(format!(
                    "{text:?}: the network hint n{n} applies to IPv4 only"
                )));
            }
            let bits = parse_bits(n, "network hint", text)?;
            if bits > 32 {
                return Err(AddressError(format!(
                    "{text:?}: network hint n{bits} is out of range (0..=32)"
                )));
            }
            Some(bits)
        }
    };
    Ok(VifAddress {
        iface: iface.to_string(),
        addr,
        prefix,
        network_bits,
    })
}

/// Parses a notification range `iface:IP/prefix` (prefix 0..=32 or 0..=128).
pub fn parse_notify_range(text: &str) -> Result<NotifyRange, AddressError> {
    let (iface, rest) = split_iface(text, "\"eth0:10.2.3.0/24\"")?;
    let (ip, prefix_txt) = rest.rsplit_once('/').ok_or_else(|| {
        AddressError(format!(
            "{text:?} has no prefix length: write \"{iface}:{rest}/32\" for one host"
        ))
    })?;
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| AddressError(format!("{text:?}: {ip:?} is not an IP address")))?;
    let prefix = parse_bits(prefix_txt, "prefix", text)?;
    let max = max_prefix(&addr);
    if prefix > max {
        return Err(AddressError(format!(
            "{text:?}: prefix /{prefix} is out of range (0..={max} for this address)"
        )));
    }
    Ok(NotifyRange {
        iface: iface.to_string(),
        addr,
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn vif_forms() {
        let a = parse_vif_address("eth0:10.2.3.4/24").unwrap();
        assert_eq!(a.iface, "eth0");
        assert_eq!(a.addr, IpAddr::V4(Ipv4Addr::new(10, 2, 3, 4)));
        assert_eq!((a.prefix, a.network_bits, a.reach_bits()), (24, None, 24));
        let a = parse_vif_address("eth0:10.2.3.4/32n23").unwrap();
        assert_eq!(
            (a.prefix, a.network_bits, a.reach_bits()),
            (32, Some(23), 23)
        );
        assert_eq!(a.to_string(), "eth0:10.2.3.4/32n23");
        let a = parse_vif_address("br-lan.10:2001:db8::5/64").unwrap();
        assert_eq!(a.iface, "br-lan.10");
        assert_eq!(
            a.addr,
            IpAddr::V6("2001:db8::5".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(a.prefix, 64);
    }

    #[test]
    fn vif_errors() {
        let cases = [
            ("10.2.3.4/24", "no interface"),
            (":10.2.3.4/24", "empty interface"),
            ("averyveryverylongname0:10.2.3.4/24", "longer than 15"),
            ("eth0:10.2.3.4", "no prefix"),
            ("eth0:10.2.3.256/24", "not an IP"),
            ("eth0:10.2.3.4/33", "out of range"),
            ("eth0:10.2.3.4/0", "out of range"),
            ("eth0:10.2.3.4/", "not a number"),
            ("eth0:10.2.3.4/24n33", "n33 is out of range"),
            ("eth0:10.2.3.4/24n", "not a number"),
            ("eth0:10.2.3.4/24x3", "not a number"),
            ("eth0:2001:db8::1/129", "out of range"),
            ("eth0:2001:db8::1/64n24", "IPv4 only"),
            ("eth0:10.2.3.4/9999", "not a number"),
        ];
        for (text, want) in cases {
            let e = parse_vif_address(text).unwrap_err();
            assert!(e.0.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn notify_forms() {
        let r = parse_notify_range("eth0:10.2.3.0/24").unwrap();
        assert_eq!((r.iface.as_str(), r.prefix), ("eth0", 24));
        assert_eq!(parse_notify_range("eth0:0.0.0.0/0").unwrap().prefix, 0);
        assert!(parse_notify_range("eth0:10.2.3.0/33").is_err());
        assert!(parse_notify_range("eth0:10.2.3.0").is_err());
        assert!(parse_notify_range("10.2.3.0/24").is_err());
        assert!(parse_notify_range("eth0:10.2.3.0/24n23").is_err());
    }

    proptest! {
        #[test]
        fn vif_roundtrip(iface in "[a-z][a-z0-9]{0,14}", o in any::<[u8; 4]>(), p in 1u8..=32, n in proptest::option::of(0u8..=32)) {
            let a = VifAddress { iface, addr: IpAddr::V4(Ipv4Addr::from(o)), prefix: p, network_bits: n };
            prop_assert_eq!(parse_vif_address(&a.to_string()), Ok(a));
        }

        #[test]
        fn v6_roundtrip(o in any::<[u8; 16]>(), p in 1u8..=128) {
            let a = VifAddress { iface: "eth1".into(), addr: IpAddr::V6(Ipv6Addr::from(o)), prefix: p, network_bits: None };
            prop_assert_eq!(parse_vif_address(&a.to_string()), Ok(a));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_vif_address(&s);
            let _ = parse_notify_range(&s);
        }
    }
}

//! The kernel's neighbour tables (IPv4 ARP and IPv6 ND), and the compact
//! message the daemon uses to share them with the group (Wackamole's
//! "arp-cache" sharing: the new owner of a VIP unicasts ARP replies, and
//! neighbour advertisements, to the hosts its peers knew).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;

use super::{NetError, NetResult, Rtnl};

impl Rtnl {
    /// IPv4 neighbours of `iface` that have a usable MAC (reachable, stale,
    /// delay, probe or permanent; incomplete/failed/noarp entries are skipped).
    pub async fn neighbours(&self, iface: &str) -> NetResult<Vec<(Ipv4Addr, [u8; 6])>> {
        Ok(self
            .neighbours_of(iface, AddressFamily::Inet)
            .await?
            .into_iter()
            .filter_map(|(ip, mac)| match ip {
                IpAddr::V4(ip) => Some((ip, mac)),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// IPv6 neighbours of `iface` with a usable MAC (as [`Self::neighbours`]).
    pub async fn neighbours6(&self, iface: &str) -> NetResult<Vec<(Ipv6Addr, [u8; 6])>> {
        Ok(self
            .neighbours_of(iface, AddressFamily::Inet6)
            .await?
            .into_iter()
            .filter_map(|(ip, mac)| match ip {
                IpAddr::V6(ip) => Some((ip, mac)),
                IpAddr::V4(_) => None,
            })
            .collect())
    }

    async fn neighbours_of(
        &self,
        iface: &str,
        family: AddressFamily,
    ) -> NetResult<Vec<(IpAddr, [u8; 6])>> {
        let index = self.ifindex(iface).await?;
        let msgs: Vec<NeighbourMessage> = self
            .handle()
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::Netlink {
                iface: iface.to_string(),
                op: "list neighbours",
                addr: String::new(),
                detail: e.to_string(),
            })?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == index)
            .filter_map(usable_entry)
            .collect())
    }
}

fn usable_entry(m: &NeighbourMessage) -> Option<(IpAddr, [u8; 6])> {
    let usable = matches!(
        m.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    );
    if !usable {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(IpAddr::V4(*v)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                ip = Some(IpAddr::V6(*v))
            }
            NeighbourAttribute::LinkLayerAddress(b) => mac = <[u8; 6]>::try_from(b.as_slice()).ok(),
            _ => {}
        }
    }
    let mac = mac.filter(|m| *m != [0; 6] && m[0] & 1 == 0)?;
    Some((ip?, mac))
}

/// Lists the usable IPv4 neighbours of `iface` (fresh netlink connection).
pub async fn list(iface: &str) -> NetResult<Vec<(Ipv4Addr, [u8; 6])>> {
    Rtnl::new()?.neighbours(iface).await
}

/// Lists the usable IPv6 neighbours of `iface` (fresh netlink connection).
pub async fn list6(iface: &str) -> NetResult<Vec<(Ipv6Addr, [u8; 6])>> {
    Rtnl::new()?.neighbours6(iface).await
}

/// One shared ARP-cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NeighEntry {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// One shared IPv6 neighbour-cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NeighEntry6 {
    pub ip: Ipv6Addr,
    pub mac: [u8; 6],
}

/// A neighbour-cache share message.
///
/// Wire form (big endian): `b'W' b'N'` magic, version, then
/// - version `1` (IPv4 only; what builds before wire version 3 read): entry
///   count `u16`, then per entry 4 bytes IPv4 + 6 bytes MAC;
/// - version `2` (IPv6 too; sent only to groups speaking wire version 3):
///   IPv4 count `u16`, IPv6 count `u16`, the IPv4 entries as in version 1,
///   then per IPv6 entry 16 bytes IPv6 + 6 bytes MAC.
///
/// A share without IPv6 entries is encoded as version 1. Decoding checks
/// the magic, version, count limit (both families together) and that the
/// length is exactly what the counts say. The serde derives are for JSON
/// (control socket, logs).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct NeighShare {
    pub entries: Vec<NeighEntry>,
    #[serde(default)]
    pub entries6: Vec<NeighEntry6>,
}

/// Errors decoding a [`NeighShare`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareDecodeError {
    #[error("neighbour share: {len} bytes, shorter than its header")]
    Short { len: usize },
    #[error("neighbour share: bad magic {0:02x?}")]
    Magic([u8; 2]),
    #[error("neighbour share: unsupported version {0} (want {NEIGH_SHARE_VERSION} or {NEIGH_SHARE_VERSION6})")]
    Version(u8),
    #[error("neighbour share: {count} entries, over the limit {NEIGH_SHARE_MAX}")]
    TooMany { count: usize },
    #[error("neighbour share: {count} entries need {want} bytes, got {got}")]
    Length {
        count: usize,
        want: usize,
        got: usize,
    },
}

/// Wire version of an IPv4-only [`NeighShare`].
pub const NEIGH_SHARE_VERSION: u8 = 1;
/// Wire version of a [`NeighShare`] with IPv6 entries.
pub const NEIGH_SHARE_VERSION6: u8 = 2;
/// Most entries (both families) one message may carry (keeps a message
/// under ~90 KiB, inside one Spread message).
pub const NEIGH_SHARE_MAX: usize = 4096;
const MAGIC: [u8; 2] = *b"WN";
const HEADER: usize = 5;
const HEADER6: usize = 7;
const ENTRY: usize = 10;
const ENTRY6: usize = 22;

impl NeighShare {
    /// From `(ip, mac)` pairs as returned by [`list`] (IPv4 only).
    pub fn from_pairs(pairs: &[(Ipv4Addr, [u8; 6])]) -> Self {
        Self::from_pairs46(pairs, &[])
    }

    /// From IPv4 and IPv6 `(ip, mac)` pairs ([`list`], [`list6`]).
    pub fn from_pairs46(pairs: &[(Ipv4Addr, [u8; 6])], pairs6: &[(Ipv6Addr, [u8; 6])]) -> Self {
        NeighShare {
            entries: pairs
                .iter()
                .map(|&(ip, mac)| NeighEntry { ip, mac })
                .collect(),
            entries6: pairs6
                .iter()
                .map(|&(ip, mac)| NeighEntry6 { ip, mac })
                .collect(),
        }
    }

    /// The IPv4 entries as `(ip, mac)` pairs.
    pub fn pairs(&self) -> Vec<(Ipv4Addr, [u8; 6])> {
        self.entries.iter().map(|e| (e.ip, e.mac)).collect()
    }

    /// The IPv6 entries as `(ip, mac)` pairs.
    pub fn pairs6(&self) -> Vec<(Ipv6Addr, [u8; 6])> {
        self.entries6.iter().map(|e| (e.ip, e.mac)).collect()
    }

    /// Encodes the message: version 1 without IPv6 entries, else version 2.
    /// Entries past [`NEIGH_SHARE_MAX`] (IPv4 first) are dropped.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.entries.len().min(NEIGH_SHARE_MAX);
        let n6 = self.entries6.len().min(NEIGH_SHARE_MAX - n);
        let v6 = n6 > 0;
        let mut out = Vec::with_capacity(HEADER6 + n * ENTRY + n6 * ENTRY6);
        out.extend_from_slice(&MAGIC);
        out.push(if v6 {
            NEIGH_SHARE_VERSION6
        } else {
            NEIGH_SHARE_VERSION
        });
        out.extend_from_slice(&(n as u16).to_be_bytes());
        if v6 {
            out.extend_from_slice(&(n6 as u16).to_be_bytes());
        }
        for e in self.entries.iter().take(n) {
            out.extend_from_slice(&e.ip.octets());
            out.extend_from_slice(&e.mac);
        }
        for e in self.entries6.iter().take(n6) {
            out.extend_from_slice(&e.ip.octets());
            out.extend_from_slice(&e.mac);
        }
        out
    }

    /// Decodes a message, checking magic, version and length.
    pub fn decode(bytes: &[u8]) -> Result<Self, ShareDecodeError> {
        let Some((header, _)) = bytes.split_first_chunk::<HEADER>() else {
            return Err(ShareDecodeError::Short { len: bytes.len() });
        };
        let [m0, m1, version, c0, c1] = *header;
        if [m0, m1] != MAGIC {
            return Err(ShareDecodeError::Magic([m0, m1]));
        }
        let count = usize::from(u16::from_be_bytes([c0, c1]));
        let (count6, body) = match version {
            NEIGH_SHARE_VERSION => (0, &bytes[HEADER..]),
            NEIGH_SHARE_VERSION6 => {
                let Some((header, body)) = bytes.split_first_chunk::<HEADER6>() else {
                    return Err(ShareDecodeError::Short { len: bytes.len() });
                };
                (
                    usize::from(u16::from_be_bytes([header[5], header[6]])),
                    body,
                )
            }
            other => return Err(ShareDecodeError::Version(other)),
        };
        let total = count + count6;
        if total > NEIGH_SHARE_MAX {
            return Err(ShareDecodeError::TooMany { count: total });
        }
        if body.len() != count * ENTRY + count6 * ENTRY6 {
            return Err(ShareDecodeError::Length {
                count: total,
                want: bytes.len() - body.len() + count * ENTRY + count6 * ENTRY6,
                got: bytes.len(),
            });
        }
        let (body4, body6) = body.split_at(count * ENTRY);
        let entries = body4
            .chunks_exact(ENTRY)
            .filter_map(|c| {
                let (ip, mac) = c.split_first_chunk::<4>()?;
                Some(NeighEntry {
                    ip: Ipv4Addr::from(*ip),
                    mac: <[u8; 6]>::try_from(mac).ok()?,
                })
            })
            .collect();
        let entries6 = body6
            .chunks_exact(ENTRY6)
            .filter_map(|c| {
                let (ip, mac) = c.split_first_chunk::<16>()?;
                Some(NeighEntry6 {
                    ip: Ipv6Addr::from(*ip),
                    mac: <[u8; 6]>::try_from(mac).ok()?,
                })
            })
            .collect();
        Ok(NeighShare { entries, entries6 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_byte_by_byte() {
        let s = NeighShare::from_pairs(&[(Ipv4Addr::new(192, 0, 2, 7), [2, 0, 0, 0, 0, 9])]);
        assert_eq!(
            s.encode(),
            vec![b'W', b'N', 1, 0, 1, 192, 0, 2, 7, 2, 0, 0, 0, 0, 9]
        );
        assert_eq!(NeighShare::default().encode(), vec![b'W', b'N', 1, 0, 0]);
    }

    #[test]
    fn rejects_bad_headers_and_lengths() {
        let good = NeighShare::from_pairs(&[(Ipv4Addr::new(10, 0, 0, 1), [2; 6])]).encode();
        assert_eq!(
            NeighShare::decode(&good[..4]),
            Err(ShareDecodeError::Short { len: 4 })
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(
            NeighShare::decode(&bad),
            Err(ShareDecodeError::Magic(_))
        ));
        let mut bad = good.clone();
        bad[2] = 3;
        assert_eq!(NeighShare::decode(&bad), Err(ShareDecodeError::Version(3)));
        assert!(matches!(
            NeighShare::decode(&good[..good.len() - 1]),
            Err(ShareDecodeError::Length { .. })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            NeighShare::decode(&long),
            Err(ShareDecodeError::Length { .. })
        ));
        let too_many = [b'W', b'N', 1, 0xff, 0xff];
        assert_eq!(
            NeighShare::decode(&too_many),
            Err(ShareDecodeError::TooMany { count: 65535 })
        );
    }

    /// IPv6 entries make a version-2 share, byte by byte; both families
    /// count against one limit; a broken version-2 header is refused.
    #[test]
    fn ipv6_entries_encode_as_version_2() {
        let ip6: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let s = NeighShare::from_pairs46(
            &[(Ipv4Addr::new(192, 0, 2, 7), [2, 0, 0, 0, 0, 9])],
            &[(ip6, [2, 0, 0, 0, 0, 6])],
        );
        let mut want = vec![b'W', b'N', 2, 0, 1, 0, 1, 192, 0, 2, 7, 2, 0, 0, 0, 0, 9];
        want.extend(ip6.octets());
        want.extend([2, 0, 0, 0, 0, 6]);
        assert_eq!(s.encode(), want);
        assert_eq!(NeighShare::decode(&want), Ok(s));
        assert_eq!(
            NeighShare::decode(&want[..6]),
            Err(ShareDecodeError::Short { len: 6 })
        );
        assert!(matches!(
            NeighShare::decode(&want[..want.len() - 1]),
            Err(ShareDecodeError::Length { .. })
        ));
        assert_eq!(
            NeighShare::decode(&[b'W', b'N', 2, 0x10, 0, 0, 1]),
            Err(ShareDecodeError::TooMany { count: 4097 })
        );
        let v4: Vec<_> = (0..3000u32)
            .map(|i| (Ipv4Addr::from(0x0a00_0000 + i), [2; 6]))
            .collect();
        let v6: Vec<_> = (0..3000u128)
            .map(|i| (Ipv6Addr::from((0x2001_0db8u128 << 96) + i), [2; 6]))
            .collect();
        let d = NeighShare::decode(&NeighShare::from_pairs46(&v4, &v6).encode()).unwrap();
        assert_eq!(
            (d.entries.len(), d.entries6.len()),
            (3000, NEIGH_SHARE_MAX - 3000)
        );
    }

    #[test]
    fn encode_caps_entry_count() {
        let pairs: Vec<_> = (0..NEIGH_SHARE_MAX as u32 + 10)
            .map(|i| (Ipv4Addr::from(0x0a00_0000 + i), [2, 0, 0, 0, 0, 1]))
            .collect();
        let decoded = NeighShare::decode(&NeighShare::from_pairs(&pairs).encode()).unwrap();
        assert_eq!(decoded.entries.len(), NEIGH_SHARE_MAX);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = NeighShare::decode(&bytes);
        }

        #[test]
        fn decoding_arbitrary_bodies_never_panics(count in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut bytes = vec![b'W', b'N', 1];
            bytes.extend_from_slice(&count.to_be_bytes());
            bytes.extend_from_slice(&body);
            if let Ok(s) = NeighShare::decode(&bytes) {
                prop_assert_eq!(s.entries.len(), usize::from(count));
            }
        }

        #[test]
        fn round_trips_with_ipv6(
            pairs in proptest::collection::vec((any::<u32>(), any::<[u8; 6]>()), 0..20),
            pairs6 in proptest::collection::vec((any::<u128>(), any::<[u8; 6]>()), 0..20),
        ) {
            let pairs: Vec<_> = pairs.into_iter().map(|(ip, mac)| (Ipv4Addr::from(ip), mac)).collect();
            let pairs6: Vec<_> = pairs6.into_iter().map(|(ip, mac)| (Ipv6Addr::from(ip), mac)).collect();
            let s = NeighShare::from_pairs46(&pairs, &pairs6);
            let bytes = s.encode();
            let want = if pairs6.is_empty() { NEIGH_SHARE_VERSION } else { NEIGH_SHARE_VERSION6 };
            prop_assert_eq!(bytes[2], want);
            prop_assert_eq!(NeighShare::decode(&bytes), Ok(s.clone()));
            prop_assert_eq!((s.pairs(), s.pairs6()), (pairs, pairs6));
        }

        #[test]
        fn decoding_arbitrary_v2_bodies_never_panics(c4 in any::<u16>(), c6 in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut bytes = vec![b'W', b'N', 2];
            bytes.extend_from_slice(&c4.to_be_bytes());
            bytes.extend_from_slice(&c6.to_be_bytes());
            bytes.extend_from_slice(&body);
            if let Ok(s) = NeighShare::decode(&bytes) {
                prop_assert_eq!((s.entries.len(), s.entries6.len()), (usize::from(c4), usize::from(c6)));
            }
        }

        #[test]
        fn round_trips(pairs in proptest::collection::vec((any::<u32>(), any::<[u8; 6]>()), 0..50)) {
            let pairs: Vec<_> = pairs.into_iter().map(|(ip, mac)| (Ipv4Addr::from(ip), mac)).collect();
            let s = NeighShare::from_pairs(&pairs);
            prop_assert_eq!(NeighShare::decode(&s.encode()), Ok(s.clone()));
            prop_assert_eq!(s.pairs(), pairs);
        }
    }
}

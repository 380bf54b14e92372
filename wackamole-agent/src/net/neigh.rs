//! The kernel's IPv4 neighbour (ARP) table, and the compact message the
//! daemon uses to share it with the group (Wackamole's "arp-cache" sharing:
//! the new owner of a VIP unicasts ARP replies to the hosts its peers knew).

use std::net::Ipv4Addr;

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
        let index = self.ifindex(iface).await?;
        let msgs: Vec<NeighbourMessage> = self
            .handle()
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
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

fn usable_entry(m: &NeighbourMessage) -> Option<(Ipv4Addr, [u8; 6])> {
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
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(*v),
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

/// One shared ARP-cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NeighEntry {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// An ARP-cache share message.
///
/// Wire form (big endian): `b'W' b'N'` magic, version `1`, entry count
/// `u16`, then per entry 4 bytes IPv4 + 6 bytes MAC. Decoding checks the
/// magic, version, count limit and that the length is exactly what the count
/// says. The serde derives are for JSON (control socket, logs).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct NeighShare {
    pub entries: Vec<NeighEntry>,
}

/// Errors decoding a [`NeighShare`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareDecodeError {
    #[error("neighbour share: {len} bytes, shorter than the 5-byte header")]
    Short { len: usize },
    #[error("neighbour share: bad magic {0:02x?}")]
    Magic([u8; 2]),
    #[error("neighbour share: unsupported version {0} (want {NEIGH_SHARE_VERSION})")]
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

/// Wire version of [`NeighShare`].
pub const NEIGH_SHARE_VERSION: u8 = 1;
/// Most entries one message may carry (keeps a message under ~40 KiB).
pub const NEIGH_SHARE_MAX: usize = 4096;
const MAGIC: [u8; 2] = *b"WN";
const HEADER: usize = 5;
const ENTRY: usize = 10;

impl NeighShare {
    /// From `(ip, mac)` pairs as returned by [`list`].
    pub fn from_pairs(pairs: &[(Ipv4Addr, [u8; 6])]) -> Self {
        NeighShare {
            entries: pairs
                .iter()
                .map(|&(ip, mac)| NeighEntry { ip, mac })
                .collect(),
        }
    }

    /// The entries as `(ip, mac)` pairs.
    pub fn pairs(&self) -> Vec<(Ipv4Addr, [u8; 6])> {
        self.entries.iter().map(|e| (e.ip, e.mac)).collect()
    }

    /// Encodes the message; entries past [`NEIGH_SHARE_MAX`] are dropped.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.entries.len().min(NEIGH_SHARE_MAX);
        let mut out = Vec::with_capacity(HEADER + n * ENTRY);
        out.extend_from_slice(&MAGIC);
        out.push(NEIGH_SHARE_VERSION);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        for e in self.entries.iter().take(n) {
            out.extend_from_slice(&e.ip.octets());
            out.extend_from_slice(&e.mac);
        }
        out
    }

    /// Decodes a message, checking magic, version and length.
    pub fn decode(bytes: &[u8]) -> Result<Self, ShareDecodeError> {
        let Some((header, body)) = bytes.split_first_chunk::<HEADER>() else {
            return Err(ShareDecodeError::Short { len: bytes.len() });
        };
        let [m0, m1, version, c0, c1] = *header;
        if [m0, m1] != MAGIC {
            return Err(ShareDecodeError::Magic([m0, m1]));
        }
        if version != NEIGH_SHARE_VERSION {
            return Err(ShareDecodeError::Version(version));
        }
        let count = usize::from(u16::from_be_bytes([c0, c1]));
        if count > NEIGH_SHARE_MAX {
            return Err(ShareDecodeError::TooMany { count });
        }
        if body.len() != count * ENTRY {
            return Err(ShareDecodeError::Length {
                count,
                want: HEADER + count * ENTRY,
                got: bytes.len(),
            });
        }
        let entries = body
            .chunks_exact(ENTRY)
            .filter_map(|c| {
                let (ip, mac) = c.split_first_chunk::<4>()?;
                Some(NeighEntry {
                    ip: Ipv4Addr::from(*ip),
                    mac: <[u8; 6]>::try_from(mac).ok()?,
                })
            })
            .collect();
        Ok(NeighShare { entries })
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
        bad[2] = 2;
        assert_eq!(NeighShare::decode(&bad), Err(ShareDecodeError::Version(2)));
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
        fn round_trips(pairs in proptest::collection::vec((any::<u32>(), any::<[u8; 6]>()), 0..50)) {
            let pairs: Vec<_> = pairs.into_iter().map(|(ip, mac)| (Ipv4Addr::from(ip), mac)).collect();
            let s = NeighShare::from_pairs(&pairs);
            prop_assert_eq!(NeighShare::decode(&s.encode()), Ok(s.clone()));
            prop_assert_eq!(s.pairs(), pairs);
        }
    }
}

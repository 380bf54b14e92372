//! The one envelope of every agreed message the agents multicast: the
//! allocator's messages and the shared ARP cache. Each kind carries its own
//! magic on the wire (`WKAM…` and `WN…`), so the envelope adds no bytes.

use crate::net::neigh::{NeighShare, ShareDecodeError};

/// First bytes of a shared ARP cache message.
const NEIGHBOURS_TAG: &[u8] = b"WN";

/// A group message, decoded by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupMessage {
    /// For the allocator, which decodes and checks it itself.
    Allocator(Vec<u8>),
    /// A member's share of the cluster's ARP cache.
    Neighbours(NeighShare),
}

impl GroupMessage {
    /// Sorts a payload by kind. Anything not tagged as a neighbour share is
    /// the allocator's (it reports foreign bytes as a bad message).
    pub fn decode(payload: Vec<u8>) -> Result<Self, ShareDecodeError> {
        if payload.starts_with(NEIGHBOURS_TAG) {
            NeighShare::decode(&payload).map(GroupMessage::Neighbours)
        } else {
            Ok(GroupMessage::Allocator(payload))
        }
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            GroupMessage::Allocator(bytes) => bytes.clone(),
            GroupMessage::Neighbours(share) => share.encode(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn kinds_round_trip_with_unchanged_bytes() {
        let share = NeighShare::from_pairs(&[(Ipv4Addr::new(192, 0, 2, 9), [2, 0, 0, 0, 0, 9])]);
        let bytes = share.encode();
        assert!(bytes.starts_with(b"WN"));
        let msg = GroupMessage::decode(bytes.clone()).expect("share");
        assert_eq!(msg, GroupMessage::Neighbours(share));
        assert_eq!(msg.encode(), bytes);

        let alloc = crate::alloc::wire::encode(&crate::alloc::wire::Message::Mature {
            view: crate::membership::ViewId(7),
        });
        let msg = GroupMessage::decode(alloc.clone()).expect("allocator");
        assert_eq!(msg, GroupMessage::Allocator(alloc.clone()));
        assert_eq!(msg.encode(), alloc);
    }

    #[test]
    fn a_broken_share_is_an_error() {
        assert!(GroupMessage::decode(b"WN\x09".to_vec()).is_err());
        // Not a share: handed to the allocator (which rejects it).
        assert_eq!(
            GroupMessage::decode(b"junk".to_vec()),
            Ok(GroupMessage::Allocator(b"junk".to_vec()))
        );
    }
}

//! Types shared by the wackamole XDP program (`wackamole-ebpf`) and the agent.
//!
//! Every type here is `#[repr(C)]`, has no implicit padding (padding is spelled
//! out as zeroed fields, so keys hash the same on both sides) and is plain old
//! data. With the `user` feature they implement [`aya::Pod`] so the agent can
//! put them in maps. The layout is part of the contract with pinned maps that
//! outlive one agent process: change it only together with [`ABI_VERSION`].
#![no_std]

/// Bumped whenever a map key or value layout changes; pinned maps of another
/// version are replaced, not reused.
pub const ABI_VERSION: u32 = 2;

/// Address family tag inside [`VipKey`].
pub const FAMILY_IPV4: u8 = 4;
/// IPv6: neighbour solicitations answered from XDP.
pub const FAMILY_IPV6: u8 = 6;

/// A virtual IP on one interface: the key of the VIP and counter maps.
///
/// The address is always 16 bytes; an IPv4 address occupies `addr[0..4]` in
/// network byte order and the rest is zero, an IPv6 address all 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipKey {
    pub ifindex: u32,
    pub family: u8,
    pub _pad: [u8; 3],
    pub addr: [u8; 16],
}

impl VipKey {
    /// Key for an IPv4 address (`octets` in network order) on `ifindex`.
    pub const fn ipv4(ifindex: u32, octets: [u8; 4]) -> Self {
        VipKey {
            ifindex,
            family: FAMILY_IPV4,
            _pad: [0; 3],
            addr: [
                octets[0], octets[1], octets[2], octets[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        }
    }

    /// Key for an IPv6 address (`octets` in network order) on `ifindex`.
    pub const fn ipv6(ifindex: u32, octets: [u8; 16]) -> Self {
        VipKey {
            ifindex,
            family: FAMILY_IPV6,
            _pad: [0; 3],
            addr: octets,
        }
    }

    /// The IPv6 octets, if this is an IPv6 key.
    pub const fn ipv6_octets(&self) -> Option<[u8; 16]> {
        if self.family == FAMILY_IPV6 {
            Some(self.addr)
        } else {
            None
        }
    }

    /// The IPv4 octets, if this is an IPv4 key.
    pub const fn ipv4_octets(&self) -> Option<[u8; 4]> {
        if self.family == FAMILY_IPV4 {
            Some([self.addr[0], self.addr[1], self.addr[2], self.addr[3]])
        } else {
            None
        }
    }
}

/// What the node does with traffic for a VIP.
pub mod vip_state {
    /// This node owns the VIP: answer ARP / neighbour solicitations from XDP,
    /// let IP traffic through.
    pub const OWNED: u32 = 1;
    /// Being released: drop ARP requests, solicitations and IP packets for it
    /// (silence at once).
    pub const RELEASING: u32 = 2;
    /// Handing over to another node (make-before-break): drop ARP requests and
    /// solicitations (neither answered here nor passed to the kernel, which
    /// would answer too) but keep accepting IP traffic until the new owner's
    /// announcements have moved the clients.
    pub const YIELDING: u32 = 3;
}

/// Bits of [`VipEntry::flags`].
pub mod vip_flags {
    /// Set the Router flag in neighbour advertisements (a VIP that serves as
    /// an IPv6 default gateway).
    pub const ND_ROUTER: u8 = 1;
}

/// Value of the VIP map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipEntry {
    /// One of [`vip_state`].
    pub state: u32,
    /// MAC address of the interface the VIP lives on (source of ARP replies
    /// and neighbour advertisements).
    pub mac: [u8; 6],
    /// [`vip_flags`] bits (was padding in ABI 1, always zero there).
    pub flags: u8,
    pub _pad: u8,
}

impl VipEntry {
    pub const fn new(state: u32, mac: [u8; 6]) -> Self {
        Self::with_flags(state, mac, 0)
    }

    pub const fn with_flags(state: u32, mac: [u8; 6], flags: u8) -> Self {
        VipEntry {
            state,
            mac,
            flags,
            _pad: 0,
        }
    }
}

/// Per-VIP counters (a per-CPU map value; the agent sums the CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipCounters {
    /// IP packets addressed to the VIP that were let through.
    pub packets: u64,
    /// Their bytes (whole frames).
    pub bytes: u64,
    /// Neighbour requests answered from XDP: ARP replies for an IPv4 VIP,
    /// neighbour advertisements for an IPv6 one.
    pub arp_replies: u64,
    /// Frames dropped because the VIP was releasing or yielding (requests
    /// only) or the lease had lapsed.
    pub drops: u64,
}

impl VipCounters {
    /// Field-wise sum, for folding per-CPU values.
    pub fn add(&mut self, other: &VipCounters) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
        self.arp_replies = self.arp_replies.wrapping_add(other.arp_replies);
        self.drops = self.drops.wrapping_add(other.drops);
    }
}

/// The lease the agent renews; once `deadline_ns` (CLOCK_MONOTONIC, as
/// `bpf_ktime_get_ns`) has passed, every VIP is treated as releasing: a dead or
/// frozen agent goes silent. Zero means no lease is configured.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    pub deadline_ns: u64,
}

/// Index into the global per-CPU action counter array.
pub mod action {
    /// Frames passed to the kernel.
    pub const PASS: u32 = 0;
    /// ARP replies transmitted from XDP.
    pub const ARP_REPLY: u32 = 1;
    /// Frames dropped for a releasing VIP.
    pub const DROP_RELEASING: u32 = 2;
    /// Frames dropped because the lease had lapsed (fenced).
    pub const DROP_FENCED: u32 = 3;
    /// ARP replies or neighbour advertisements from another MAC seen for a
    /// VIP we own (conflicts reported).
    pub const CONFLICT: u32 = 4;
    /// Neighbour advertisements transmitted from XDP.
    pub const NA_REPLY: u32 = 5;
    /// ARP requests / solicitations dropped for a yielding VIP.
    pub const DROP_YIELDING: u32 = 6;
    /// Number of slots in the array.
    pub const COUNT: u32 = 7;
}

/// Reported through the ring buffer when an ARP packet or a neighbour
/// advertisement claims a VIP we own from another MAC (someone else answers
/// for it: re-announce at once).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConflictEvent {
    pub key: VipKey,
    /// Sender MAC of the offending packet (ARP sender hardware address, or
    /// the NA's target link-layer address, else its Ethernet source).
    pub sender_mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Names of the maps and the program inside the eBPF object; the agent pins
/// them under `<bpffs dir>/<name>`.
pub mod names {
    pub const PROGRAM: &str = "wackamole";
    pub const VIPS: &str = "WACK_VIPS";
    pub const VIP_COUNTERS: &str = "WACK_VIP_COUNTERS";
    pub const ACTIONS: &str = "WACK_ACTIONS";
    pub const LEASE: &str = "WACK_LEASE";
    /// The LAN detector's lease (detector mode "guard"): renewed by its beat
    /// thread with every beat it sends, so a node whose beats stop is
    /// silent before a peer can take it to be.
    pub const BEAT_LEASE: &str = "WACK_BEAT_LEASE";
    pub const CONFLICTS: &str = "WACK_CONFLICTS";
}

/// Maximum number of VIP entries (map capacity).
pub const MAX_VIPS: u32 = 4096;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all types are repr(C), Copy, contain only integers and byte
    // arrays, and have no implicit padding (see the layout tests).
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VipEntry {}
    unsafe impl aya::Pod for super::VipCounters {}
    unsafe impl aya::Pod for super::LeaseRecord {}
    unsafe impl aya::Pod for super::ConflictEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn vip_key_layout() {
        assert_eq!(size_of::<VipKey>(), 24);
        assert_eq!(align_of::<VipKey>(), 4);
        assert_eq!(offset_of!(VipKey, ifindex), 0);
        assert_eq!(offset_of!(VipKey, family), 4);
        assert_eq!(offset_of!(VipKey, _pad), 5);
        assert_eq!(offset_of!(VipKey, addr), 8);
    }

    #[test]
    fn vip_key_ipv4_round_trip() {
        let k = VipKey::ipv4(7, [10, 1, 2, 3]);
        assert_eq!(k.ipv4_octets(), Some([10, 1, 2, 3]));
        assert_eq!(&k.addr[4..], &[0u8; 12]);
        assert_eq!(k.ipv6_octets(), None);
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[15] = 9;
        let v6 = VipKey::ipv6(7, a);
        assert_eq!(v6.ipv4_octets(), None);
        assert_eq!(v6.ipv6_octets(), Some(a));
        assert_ne!(v6, VipKey::ipv4(7, [0x20, 0x01, 0, 0]));
    }

    #[test]
    fn vip_entry_layout() {
        assert_eq!(size_of::<VipEntry>(), 12);
        assert_eq!(align_of::<VipEntry>(), 4);
        assert_eq!(offset_of!(VipEntry, state), 0);
        assert_eq!(offset_of!(VipEntry, mac), 4);
        assert_eq!(offset_of!(VipEntry, flags), 10);
        assert_eq!(offset_of!(VipEntry, _pad), 11);
        let e = VipEntry::with_flags(vip_state::YIELDING, [1; 6], vip_flags::ND_ROUTER);
        assert_eq!((e.state, e.flags, e._pad), (3, 1, 0));
    }

    #[test]
    fn counters_layout_and_sum() {
        assert_eq!(size_of::<VipCounters>(), 32);
        assert_eq!(align_of::<VipCounters>(), 8);
        assert_eq!(offset_of!(VipCounters, packets), 0);
        assert_eq!(offset_of!(VipCounters, bytes), 8);
        assert_eq!(offset_of!(VipCounters, arp_replies), 16);
        assert_eq!(offset_of!(VipCounters, drops), 24);
        let mut a = VipCounters {
            packets: 1,
            bytes: 2,
            arp_replies: 3,
            drops: u64::MAX,
        };
        a.add(&VipCounters {
            packets: 10,
            bytes: 20,
            arp_replies: 30,
            drops: 2,
        });
        assert_eq!(
            (a.packets, a.bytes, a.arp_replies, a.drops),
            (11, 22, 33, 1)
        );
    }

    #[test]
    fn lease_and_conflict_layout() {
        assert_eq!(size_of::<LeaseRecord>(), 8);
        assert_eq!(offset_of!(LeaseRecord, deadline_ns), 0);
        assert_eq!(size_of::<ConflictEvent>(), 32);
        assert_eq!(offset_of!(ConflictEvent, key), 0);
        assert_eq!(offset_of!(ConflictEvent, sender_mac), 24);
    }
}

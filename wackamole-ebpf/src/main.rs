//! wackamole's XDP program.
//!
//! - Answers ARP requests and IPv6 neighbour solicitations for VIPs this node
//!   owns straight from XDP (XDP_TX).
//! - Drops ARP requests, solicitations and IP packets for VIPs being released,
//!   and for every VIP once the agent's lease has lapsed (a dead agent goes
//!   silent: fencing).
//! - For a yielding VIP (make-before-break hand-over) drops ARP requests and
//!   solicitations but lets its IP traffic through.
//! - Counts per-VIP traffic and global actions, and reports ARP packets and
//!   neighbour advertisements that claim one of our VIPs from another MAC
//!   through a ring buffer.
//!
//! Everything else (VLAN-tagged, short or malformed frames, solicitations
//! behind extension headers, other protocols) is passed to the kernel
//! untouched.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_ktime_get_ns, bpf_xdp_adjust_tail, bpf_xdp_load_bytes},
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use wackamole_common::{
    action, vip_flags, vip_state, ConflictEvent, LeaseRecord, VipCounters, VipEntry, VipKey,
    MAX_VIPS,
};

#[map(name = "WACK_VIPS")]
static WACK_VIPS: HashMap<VipKey, VipEntry> = HashMap::with_max_entries(MAX_VIPS, 0);

#[map(name = "WACK_VIP_COUNTERS")]
static WACK_VIP_COUNTERS: PerCpuHashMap<VipKey, VipCounters> =
    PerCpuHashMap::with_max_entries(MAX_VIPS, 0);

#[map(name = "WACK_ACTIONS")]
static WACK_ACTIONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(action::COUNT, 0);

#[map(name = "WACK_LEASE")]
static WACK_LEASE: Array<LeaseRecord> = Array::with_max_entries(1, 0);

/// The LAN detector's lease, beside the agent's (a map of its own: pinned
/// maps of an older build keep their layout across an upgrade).
#[map(name = "WACK_BEAT_LEASE")]
static WACK_BEAT_LEASE: Array<LeaseRecord> = Array::with_max_entries(1, 0);

/// 256 conflict events of 32 bytes (plus headers) fit; conflicts are rare.
#[map(name = "WACK_CONFLICTS")]
static WACK_CONFLICTS: RingBuf = RingBuf::with_byte_size(16 * 1024, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// An 802.1Q/802.1ad tag: TCI (2) + the inner ethertype (2).
const VLAN_HLEN: usize = 4;
const ARP_LEN: usize = 28;
const ARP_OP_REQUEST: u16 = 1;
const ARP_OP_REPLY: u16 = 2;
const IPV4_MIN_LEN: usize = 20;

// Offsets inside the frame.
const OFF_ETH_DST: usize = 0;
const OFF_ETH_SRC: usize = 6;
const OFF_ETH_TYPE: usize = 12;
const OFF_ARP: usize = ETH_HLEN;
const OFF_ARP_OP: usize = OFF_ARP + 6;
const OFF_ARP_SHA: usize = OFF_ARP + 8;
const OFF_ARP_SPA: usize = OFF_ARP + 14;
const OFF_ARP_THA: usize = OFF_ARP + 18;
const OFF_ARP_TPA: usize = OFF_ARP + 24;
const OFF_IP_DST: usize = ETH_HLEN + 16;

/// The fixed ARP header for Ethernet/IPv4 after the hardware type: ptype
/// 0x0800, hlen 6, plen 4. The hardware type is Ethernet (1) or IEEE 802
/// (6): Linux answers both on an Ethernet device, so both are ours.
const ARP_IPV4_FIXED: [u8; 4] = [0x08, 0x00, 6, 4];
const ARP_HTYPE_ETHER: [u8; 2] = [0, 1];
const ARP_HTYPE_IEEE802: [u8; 2] = [0, 6];

// IPv6 and neighbour discovery (RFC 4861).
const IPV6_HLEN: usize = 40;
const OFF_IP6: usize = ETH_HLEN;
const OFF_IP6_PLEN: usize = OFF_IP6 + 4;
const OFF_IP6_NEXT: usize = OFF_IP6 + 6;
const OFF_IP6_HOPS: usize = OFF_IP6 + 7;
const OFF_IP6_SRC: usize = OFF_IP6 + 8;
const OFF_IP6_DST: usize = OFF_IP6 + 24;
const OFF_ICMP6: usize = OFF_IP6 + IPV6_HLEN;
const OFF_ND_TARGET: usize = OFF_ICMP6 + 8;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
/// ICMPv6 header (4) + reserved/flags (4) + target (16).
const ND_MSG_LEN: usize = 24;
const ND_OPT_SLLA: u8 = 1;
const ND_OPT_TLLA: u8 = 2;
/// Options walked per message; more (never seen in practice) are left to the kernel.
const ND_MAX_OPTS: usize = 8;
/// Largest ND payload we parse (the minimum IPv6 MTU); longer goes to the kernel.
const ND_MAX_LEN: usize = 1280;
/// The NA we send: Ethernet + IPv6 + NA + one target link-layer address option.
const NA_FRAME_LEN: usize = OFF_ICMP6 + ND_MSG_LEN + 8;
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;
/// ff02::1 and its Ethernet multicast address.
const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

#[xdp]
pub fn wackamole(ctx: XdpContext) -> u32 {
    let verdict = classify(&ctx);
    if verdict == xdp_action::XDP_PASS {
        count_action(action::PASS);
    }
    verdict
}

/// What to do with traffic for a VIP right now.
enum Disposition {
    Owned(VipEntry),
    Releasing,
    /// Requests dropped, traffic accepted (hand-over in progress).
    Yielding,
    Fenced,
}

#[inline(always)]
fn classify(ctx: &XdpContext) -> u32 {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + ETH_HLEN > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: the Ethernet header is inside [start, end) (checked above).
    let ethertype = unsafe { read_be16(start + OFF_ETH_TYPE) };
    match ethertype {
        ETH_P_ARP => handle_arp(ctx, start, end),
        ETH_P_IP => handle_ipv4(ctx, start, end),
        ETH_P_IPV6 => handle_ipv6(ctx, start, end),
        ETH_P_8021Q | ETH_P_8021AD => {
            handle_priority_tagged(start, end, ctx.ingress_ifindex() as u32)
        }
        // Everything else: not ours.
        _ => xdp_action::XDP_PASS,
    }
}

/// Whether the ARP header's first six bytes (hardware and protocol types,
/// their address lengths) describe Ethernet (or IEEE 802) and IPv4.
#[inline(always)]
fn arp_is_ethernet_ipv4(fixed: &[u8; 6]) -> bool {
    let htype = [fixed[0], fixed[1]];
    (htype == ARP_HTYPE_ETHER || htype == ARP_HTYPE_IEEE802)
        && [fixed[2], fixed[3], fixed[4], fixed[5]] == ARP_IPV4_FIXED
}

/// A frame with one 802.1Q/802.1ad tag. A tag with VLAN id 0 (priority
/// tagging, 802.1p) belongs to this very interface: the kernel strips it
/// and answers the ARP request or solicitation inside as if untagged, from
/// an address this node keeps plumbed while it releases, yields, stands by
/// or is fenced. Those are dropped for such VIPs; everything else (an owned
/// VIP, which the kernel may answer, other VLANs, other traffic) passes.
#[inline(always)]
fn handle_priority_tagged(start: usize, end: usize, ifindex: u32) -> u32 {
    let inner = start + VLAN_HLEN;
    if inner + ETH_HLEN > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: the tag and the inner ethertype are inside (checked above).
    let tci = unsafe { read_be16(start + OFF_ETH_TYPE + 2) };
    if tci & 0x0fff != 0 {
        return xdp_action::XDP_PASS;
    }
    let ethertype = unsafe { read_be16(inner + OFF_ETH_TYPE) };
    let key = match ethertype {
        ETH_P_ARP => {
            if inner + ETH_HLEN + ARP_LEN > end {
                return xdp_action::XDP_PASS;
            }
            // SAFETY (reads): inside the ARP message checked above.
            let fixed: [u8; 6] = unsafe { read_bytes(inner + OFF_ARP) };
            let op = unsafe { read_be16(inner + OFF_ARP_OP) };
            let spa: [u8; 4] = unsafe { read_bytes(inner + OFF_ARP_SPA) };
            let tpa: [u8; 4] = unsafe { read_bytes(inner + OFF_ARP_TPA) };
            if !arp_is_ethernet_ipv4(&fixed) || op != ARP_OP_REQUEST || spa == tpa {
                return xdp_action::XDP_PASS;
            }
            VipKey::ipv4(ifindex, tpa)
        }
        ETH_P_IPV6 => {
            if inner + OFF_ICMP6 + ND_MSG_LEN > end {
                return xdp_action::XDP_PASS;
            }
            // SAFETY (reads): inside the IPv6 header and NS message checked above.
            let version: [u8; 1] = unsafe { read_bytes(inner + OFF_IP6) };
            let next: [u8; 1] = unsafe { read_bytes(inner + OFF_IP6_NEXT) };
            let icmp_type: [u8; 1] = unsafe { read_bytes(inner + OFF_ICMP6) };
            let target: [u8; 16] = unsafe { read_bytes(inner + OFF_ND_TARGET) };
            if version[0] >> 4 != 6 || next[0] != IPPROTO_ICMPV6 || icmp_type[0] != ND_NS {
                return xdp_action::XDP_PASS;
            }
            VipKey::ipv6(ifindex, target)
        }
        _ => return xdp_action::XDP_PASS,
    };
    silence_unless_owned(&key)
}

/// A request (ARP or NS) for `key`: `Ok` with the entry to answer with
/// when the VIP is owned here, else the verdict: passed when it is no VIP,
/// dropped (and counted) while it is releasing, yielding or fenced.
#[inline(always)]
fn answerable(key: &VipKey, fenced: bool) -> Result<VipEntry, u32> {
    match disposition(key, fenced) {
        None => Err(xdp_action::XDP_PASS),
        Some(Disposition::Releasing) => Err(drop_for(key, action::DROP_RELEASING)),
        Some(Disposition::Yielding) => Err(drop_for(key, action::DROP_YIELDING)),
        Some(Disposition::Fenced) => Err(drop_for(key, action::DROP_FENCED)),
        Some(Disposition::Owned(entry)) => Ok(entry),
    }
}

/// A request for `key` this program does not answer itself but the kernel
/// may: dropped while the VIP is releasing, yielding or fenced here, passed
/// otherwise (owned, or no VIP).
#[inline(always)]
fn silence_unless_owned(key: &VipKey) -> u32 {
    match answerable(key, lease_lapsed()) {
        Ok(_) => xdp_action::XDP_PASS,
        Err(verdict) => verdict,
    }
}

#[inline(always)]
fn handle_arp(ctx: &XdpContext, start: usize, end: usize) -> u32 {
    if start + ETH_HLEN + ARP_LEN > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY (all reads and writes below): they lie within the first
    // ETH_HLEN + ARP_LEN bytes, which are inside [start, end) (checked above).
    let fixed: [u8; 6] = unsafe { read_bytes(start + OFF_ARP) };
    if !arp_is_ethernet_ipv4(&fixed) {
        return xdp_action::XDP_PASS;
    }
    let op = unsafe { read_be16(start + OFF_ARP_OP) };
    if op != ARP_OP_REQUEST && op != ARP_OP_REPLY {
        return xdp_action::XDP_PASS;
    }
    let sha: [u8; 6] = unsafe { read_bytes(start + OFF_ARP_SHA) };
    let spa: [u8; 4] = unsafe { read_bytes(start + OFF_ARP_SPA) };
    let tpa: [u8; 4] = unsafe { read_bytes(start + OFF_ARP_TPA) };
    let ifindex = ctx.ingress_ifindex() as u32;
    let fenced = lease_lapsed();

    // Someone else claims a VIP we own: report it, let the kernel see it too.
    let sender_key = VipKey::ipv4(ifindex, spa);
    if !fenced {
        if let Some(entry) = lookup(&sender_key) {
            if entry.state == vip_state::OWNED && entry.mac != sha {
                report_conflict(&sender_key, sha);
                debug!(ctx, "wackamole: conflicting ARP for an owned VIP");
            }
        }
    }

    // Replies and gratuitous announcements are never answered or dropped.
    if op != ARP_OP_REQUEST || spa == tpa {
        return xdp_action::XDP_PASS;
    }
    let key = VipKey::ipv4(ifindex, tpa);
    let entry = match answerable(&key, fenced) {
        Ok(entry) => entry,
        Err(verdict) => return verdict,
    };
    unsafe {
        write_bytes(start + OFF_ETH_DST, &sha);
        write_bytes(start + OFF_ETH_SRC, &entry.mac);
        write_bytes(start + OFF_ARP_OP, &ARP_OP_REPLY.to_be_bytes());
        write_bytes(start + OFF_ARP_THA, &sha);
        write_bytes(start + OFF_ARP_TPA, &spa);
        write_bytes(start + OFF_ARP_SHA, &entry.mac);
        write_bytes(start + OFF_ARP_SPA, &tpa);
    }
    if let Some(c) = vip_counters(&key) {
        // SAFETY: per-CPU value of this CPU; XDP runs with preemption off.
        unsafe { (*c).arp_replies += 1 };
    }
    count_action(action::ARP_REPLY);
    xdp_action::XDP_TX
}

#[inline(always)]
fn handle_ipv4(ctx: &XdpContext, start: usize, end: usize) -> u32 {
    if start + ETH_HLEN + IPV4_MIN_LEN > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: the minimal IPv4 header is inside [start, end) (checked above).
    let version_ihl: [u8; 1] = unsafe { read_bytes(start + ETH_HLEN) };
    if version_ihl[0] >> 4 != 4 {
        return xdp_action::XDP_PASS;
    }
    let dst: [u8; 4] = unsafe { read_bytes(start + OFF_IP_DST) };
    let key = VipKey::ipv4(ctx.ingress_ifindex() as u32, dst);
    ip_traffic(&key, (end - start) as u64)
}

/// IP traffic to `key` (either family): dropped while releasing or fenced,
/// counted and passed while owned or yielding.
#[inline(always)]
fn ip_traffic(key: &VipKey, frame_len: u64) -> u32 {
    match disposition(key, lease_lapsed()) {
        None => xdp_action::XDP_PASS,
        Some(Disposition::Releasing) => drop_for(key, action::DROP_RELEASING),
        Some(Disposition::Fenced) => drop_for(key, action::DROP_FENCED),
        Some(Disposition::Owned(_)) | Some(Disposition::Yielding) => {
            if let Some(c) = vip_counters(key) {
                // SAFETY: per-CPU value of this CPU.
                unsafe {
                    (*c).packets += 1;
                    (*c).bytes += frame_len;
                }
            }
            xdp_action::XDP_PASS
        }
    }
}

/// IPv6: neighbour solicitations for our VIPs are answered (or dropped), NAs
/// checked for conflicts, and other traffic to a VIP counted or dropped like
/// IPv4. Only ICMPv6 straight after the fixed header is parsed: an NS in
/// fragments (RFC 6980 forbids fragmented ND; the kernel drops it) goes to
/// the kernel, and so does one behind a hop-by-hop header, which the kernel
/// answers: a known gap for a VIP silent here (no host sends one; a forged
/// one can only make a silent node answer as a forged reply would).
/// Unicast traffic to a releasing or fenced VIP is dropped whatever headers
/// follow, as IPv4 is whatever its options.
#[inline(always)]
fn handle_ipv6(ctx: &XdpContext, start: usize, end: usize) -> u32 {
    if start + OFF_ICMP6 > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY (reads below up to OFF_ICMP6): inside the checked IPv6 header.
    let version: [u8; 1] = unsafe { read_bytes(start + OFF_IP6) };
    if version[0] >> 4 != 6 {
        return xdp_action::XDP_PASS;
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    let next: [u8; 1] = unsafe { read_bytes(start + OFF_IP6_NEXT) };
    if next[0] == IPPROTO_ICMPV6 && start + OFF_ICMP6 < end {
        // SAFETY: one byte, checked above.
        let icmp_type: [u8; 1] = unsafe { read_bytes(start + OFF_ICMP6) };
        if icmp_type[0] == ND_NS {
            return handle_ns(ctx, ifindex);
        }
        if icmp_type[0] == ND_NA {
            check_na(ctx, ifindex);
            return xdp_action::XDP_PASS;
        }
    }
    let dst: [u8; 16] = unsafe { read_bytes(start + OFF_IP6_DST) };
    if dst[0] == 0xff {
        // Multicast: never a VIP.
        return xdp_action::XDP_PASS;
    }
    ip_traffic(&VipKey::ipv6(ifindex, dst), (end - start) as u64)
}

/// What a walk over an ND message's options found.
/// (A plain flag and array, not an Option: LLVM leaves the payload of a None
/// undefined, and the verifier refuses to read an uninitialised register.)
struct NdOptions {
    /// The source (NS) or target (NA) link-layer address option, if `has_lladdr`.
    lladdr: [u8; 6],
    has_lladdr: bool,
    /// Not parsed because it is longer than this program walks (a payload
    /// over `ND_MAX_LEN`, more than `ND_MAX_OPTS` options) though valid so
    /// far: the kernel may still answer it.
    beyond: bool,
}

/// Checks the parts RFC 4861 (7.1.1, 7.1.2) asks of an NS or NA: hop limit
/// 255, code 0, a payload that holds the message and fits the frame, options
/// of non-zero length that exactly fill the rest. Returns the payload length
/// and the options, `None` for anything to leave to the kernel (with
/// `beyond` set in `opts` if only its length stopped the walk). The ICMPv6
/// checksum is not verified here (the Ethernet FCS has vouched for the bits;
/// the kernel verifies what we pass).
#[inline(always)]
fn nd_parse(ctx: &XdpContext, lladdr_type: u8, opts: &mut NdOptions) -> Option<usize> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + OFF_ICMP6 + ND_MSG_LEN > end {
        return None;
    }
    // SAFETY (fixed reads): inside the checked Ethernet + IPv6 + ND message.
    let hops: [u8; 1] = unsafe { read_bytes(start + OFF_IP6_HOPS) };
    let code: [u8; 1] = unsafe { read_bytes(start + OFF_ICMP6 + 1) };
    if hops[0] != 255 || code[0] != 0 {
        return None;
    }
    let plen = unsafe { read_be16(start + OFF_IP6_PLEN) } as usize;
    if plen < ND_MSG_LEN || start + OFF_ICMP6 + plen > end {
        return None;
    }
    if plen > ND_MAX_LEN {
        opts.beyond = true;
        return None;
    }
    let mut off = ND_MSG_LEN;
    for _ in 0..ND_MAX_OPTS {
        if off >= plen {
            break;
        }
        // Every option is a multiple of 8 bytes.
        if plen - off < 8 {
            return None;
        }
        // Copied out by the helper, which checks the bounds itself: LLVM
        // folds direct bounds checks here into ones the verifier cannot follow.
        let mut opt = [0u8; 8];
        // SAFETY: writes 8 bytes into `opt`; fails (non-zero) outside the packet.
        let rc = unsafe {
            bpf_xdp_load_bytes(
                ctx.ctx,
                (OFF_ICMP6 + off) as u32,
                opt.as_mut_ptr().cast(),
                8,
            )
        };
        if rc != 0 {
            return None;
        }
        let len = opt[1] as usize * 8;
        if len == 0 || off + len > plen {
            return None;
        }
        if opt[0] == lladdr_type && len == 8 {
            opts.lladdr = [opt[2], opt[3], opt[4], opt[5], opt[6], opt[7]];
            opts.has_lladdr = true;
        }
        off += len;
    }
    if off != plen {
        // More options than we walk: the kernel's business.
        opts.beyond = true;
        return None;
    }
    Some(plen)
}

fn no_options() -> NdOptions {
    NdOptions {
        lladdr: [0; 6],
        has_lladdr: false,
        beyond: false,
    }
}

/// A neighbour solicitation. For an owned VIP: a solicited advertisement
/// (S and O set, R per VIP) to the sender, rewritten in place and sent back
/// with XDP_TX. DAD probes (source ::) for an owned VIP are answered here too,
/// as RFC 4861 7.2.4 asks: to all-nodes with S clear, which defends the
/// address (the prober's DAD fails) instead of letting a second host
/// configure it. Releasing, yielding and fenced VIPs: dropped.
#[inline(always)]
fn handle_ns(ctx: &XdpContext, ifindex: u32) -> u32 {
    let start = ctx.data();
    let end = ctx.data_end();
    let mut opts = no_options();
    let parsed = nd_parse(ctx, ND_OPT_SLLA, &mut opts).is_some();
    if start + OFF_ICMP6 + ND_MSG_LEN > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: inside the message checked above.
    let target: [u8; 16] = unsafe { read_bytes(start + OFF_ND_TARGET) };
    let src: [u8; 16] = unsafe { read_bytes(start + OFF_IP6_SRC) };
    let dst: [u8; 16] = unsafe { read_bytes(start + OFF_IP6_DST) };
    let eth_src: [u8; 6] = unsafe { read_bytes(start + OFF_ETH_SRC) };
    if target[0] == 0xff {
        // A multicast target is invalid.
        return xdp_action::XDP_PASS;
    }
    if !parsed {
        // Longer than we walk, the kernel may answer it: not for a VIP
        // that must be silent here.
        if opts.beyond {
            return silence_unless_owned(&VipKey::ipv6(ifindex, target));
        }
        return xdp_action::XDP_PASS;
    }
    if src[0] == 0xff {
        // A multicast source is invalid (RFC 4291 2.7; the kernel drops
        // it): a solicited NA to a group is no answer (RFC 4861 7.2.4).
        return xdp_action::XDP_PASS;
    }
    let dad = src == [0u8; 16];
    if dad && (opts.has_lladdr || !is_solicited_node_of(&dst, &target)) {
        // RFC 4861 7.1.1: a DAD probe goes to the solicited-node group and
        // carries no source link-layer address.
        return xdp_action::XDP_PASS;
    }
    let key = VipKey::ipv6(ifindex, target);
    let entry = match answerable(&key, lease_lapsed()) {
        Ok(entry) => entry,
        Err(verdict) => return verdict,
    };
    let (reply_ip, reply_mac, mut flags) = if dad {
        (ALL_NODES, ALL_NODES_MAC, NA_FLAG_OVERRIDE)
    } else {
        (
            src,
            if opts.has_lladdr {
                opts.lladdr
            } else {
                eth_src
            },
            NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE,
        )
    };
    if entry.flags & vip_flags::ND_ROUTER != 0 {
        flags |= NA_FLAG_ROUTER;
    }
    // Resize to exactly the NA (solicitations come with 0..n options).
    let delta = NA_FRAME_LEN as i32 - (end - start) as i32;
    if delta != 0 {
        // SAFETY: helper on our own context; the packet is re-checked below.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
            return xdp_action::XDP_PASS;
        }
    }
    let start = ctx.data();
    let end = ctx.data_end();
    if start + NA_FRAME_LEN > end {
        return xdp_action::XDP_PASS;
    }
    let csum = na_checksum(&target, &reply_ip, flags, &entry.mac);
    // SAFETY (all writes): inside the NA_FRAME_LEN bytes checked above.
    unsafe {
        write_bytes(start + OFF_ETH_DST, &reply_mac);
        write_bytes(start + OFF_ETH_SRC, &entry.mac);
        // Version 6, traffic class and flow label 0, payload 32, ICMPv6, hops 255.
        write_bytes(start + OFF_IP6, &[0x60, 0, 0, 0]);
        write_bytes(
            start + OFF_IP6_PLEN,
            &((ND_MSG_LEN + 8) as u16).to_be_bytes(),
        );
        write_bytes(start + OFF_IP6_NEXT, &[IPPROTO_ICMPV6, 255]);
        write_bytes(start + OFF_IP6_SRC, &target);
        write_bytes(start + OFF_IP6_DST, &reply_ip);
        write_bytes(start + OFF_ICMP6, &[ND_NA, 0]);
        write_bytes(start + OFF_ICMP6 + 2, &csum.to_be_bytes());
        write_bytes(start + OFF_ICMP6 + 4, &[flags, 0, 0, 0]);
        write_bytes(start + OFF_ND_TARGET, &target);
        write_bytes(start + OFF_ND_TARGET + 16, &[ND_OPT_TLLA, 1]);
        write_bytes(start + OFF_ND_TARGET + 18, &entry.mac);
    }
    if let Some(c) = vip_counters(&key) {
        // SAFETY: per-CPU value of this CPU.
        unsafe { (*c).arp_replies += 1 };
    }
    count_action(action::NA_REPLY);
    xdp_action::XDP_TX
}

/// A neighbour advertisement for a VIP we own from another MAC (its target
/// link-layer address, else its Ethernet source) is reported as a conflict.
/// Advertisements are always passed.
#[inline(always)]
fn check_na(ctx: &XdpContext, ifindex: u32) {
    let start = ctx.data();
    let end = ctx.data_end();
    let mut opts = no_options();
    if nd_parse(ctx, ND_OPT_TLLA, &mut opts).is_none() {
        return;
    }
    if start + OFF_ICMP6 + ND_MSG_LEN > end {
        return;
    }
    if lease_lapsed() {
        return;
    }
    // SAFETY: inside the message checked above.
    let target: [u8; 16] = unsafe { read_bytes(start + OFF_ND_TARGET) };
    let eth_src: [u8; 6] = unsafe { read_bytes(start + OFF_ETH_SRC) };
    let sender = if opts.has_lladdr {
        opts.lladdr
    } else {
        eth_src
    };
    let key = VipKey::ipv6(ifindex, target);
    if let Some(entry) = lookup(&key) {
        if entry.state == vip_state::OWNED && entry.mac != sender {
            report_conflict(&key, sender);
            debug!(ctx, "wackamole: conflicting NA for an owned VIP");
        }
    }
}

/// True when `dst` is the solicited-node multicast group of `target`
/// (ff02::1:ffXX:XXXX with the target's low 24 bits).
#[inline(always)]
fn is_solicited_node_of(dst: &[u8; 16], target: &[u8; 16]) -> bool {
    dst[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff] && dst[13..] == target[13..]
}

/// The ICMPv6 checksum of the NA we send: pseudo-header (source = target,
/// destination, length 32, next header 58) and the 32-byte message, summed
/// from the values (not re-read from the packet).
#[inline(always)]
fn na_checksum(target: &[u8; 16], dst: &[u8; 16], flags: u8, mac: &[u8; 6]) -> u16 {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i < 16 {
        // Source and target are both the VIP: counted twice.
        sum += 2 * u32::from(u16::from_be_bytes([target[i], target[i + 1]]));
        sum += u32::from(u16::from_be_bytes([dst[i], dst[i + 1]]));
        i += 2;
    }
    sum += (ND_MSG_LEN + 8) as u32 + u32::from(IPPROTO_ICMPV6);
    sum += u32::from(ND_NA) << 8;
    sum += u32::from(flags) << 8;
    sum += (u32::from(ND_OPT_TLLA) << 8) | 1;
    sum += u32::from(u16::from_be_bytes([mac[0], mac[1]]));
    sum += u32::from(u16::from_be_bytes([mac[2], mac[3]]));
    sum += u32::from(u16::from_be_bytes([mac[4], mac[5]]));
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

#[inline(always)]
fn lookup(key: &VipKey) -> Option<VipEntry> {
    // SAFETY: the value is copied out at once.
    unsafe { WACK_VIPS.get(key).copied() }
}

#[inline(always)]
fn disposition(key: &VipKey, fenced: bool) -> Option<Disposition> {
    let entry = lookup(key)?;
    if fenced {
        return Some(Disposition::Fenced);
    }
    match entry.state {
        vip_state::OWNED => Some(Disposition::Owned(entry)),
        vip_state::RELEASING => Some(Disposition::Releasing),
        vip_state::YIELDING => Some(Disposition::Yielding),
        // Unknown state (newer agent?): leave the traffic to the kernel.
        _ => None,
    }
}

/// True when a lease is configured and its deadline has passed: the
/// agent's (engine evidence) or the LAN detector's (its beats).
#[inline(always)]
fn lease_lapsed() -> bool {
    lapsed(&WACK_LEASE) || lapsed(&WACK_BEAT_LEASE)
}

#[inline(always)]
fn lapsed(map: &Array<LeaseRecord>) -> bool {
    let Some(lease) = map.get(0) else {
        return false;
    };
    let deadline = lease.deadline_ns;
    // SAFETY: helper without arguments.
    deadline != 0 && unsafe { bpf_ktime_get_ns() } > deadline
}

#[inline(always)]
fn drop_for(key: &VipKey, why: u32) -> u32 {
    if let Some(c) = vip_counters(key) {
        // SAFETY: per-CPU value of this CPU.
        unsafe { (*c).drops += 1 };
    }
    count_action(why);
    xdp_action::XDP_DROP
}

/// This CPU's counters of `key`, created on first use.
#[inline(always)]
fn vip_counters(key: &VipKey) -> Option<*mut VipCounters> {
    if let Some(p) = WACK_VIP_COUNTERS.get_ptr_mut(key) {
        return Some(p);
    }
    // BPF_NOEXIST: another CPU may have created it meanwhile; either way it exists.
    let _ = WACK_VIP_COUNTERS.insert(key, VipCounters::default(), 1);
    WACK_VIP_COUNTERS.get_ptr_mut(key)
}

#[inline(always)]
fn count_action(slot: u32) {
    if let Some(c) = WACK_ACTIONS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot of this CPU.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn report_conflict(key: &VipKey, sender_mac: [u8; 6]) {
    let event = ConflictEvent {
        key: *key,
        sender_mac,
        _pad: [0; 2],
    };
    // A full ring drops the event; the counter still records it.
    let _ = WACK_CONFLICTS.output::<ConflictEvent>(&event, 0);
    count_action(action::CONFLICT);
}

/// # Safety
/// `addr..addr + 2` must be inside the packet.
#[inline(always)]
unsafe fn read_be16(addr: usize) -> u16 {
    u16::from_be_bytes(read_bytes(addr))
}

/// # Safety
/// `addr..addr + N` must be inside the packet.
#[inline(always)]
unsafe fn read_bytes<const N: usize>(addr: usize) -> [u8; N] {
    core::ptr::read_unaligned(addr as *const [u8; N])
}

/// # Safety
/// `addr..addr + N` must be inside the packet.
#[inline(always)]
unsafe fn write_bytes<const N: usize>(addr: usize, bytes: &[u8; N]) {
    core::ptr::write_unaligned(addr as *mut [u8; N], *bytes)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

//! wackamole's XDP program.
//!
//! - Answers ARP requests for VIPs this node owns straight from XDP (XDP_TX).
//! - Drops ARP requests and IPv4 packets for VIPs being released, and for every
//!   VIP once the agent's lease has lapsed (a dead agent goes silent: fencing).
//! - Counts per-VIP traffic and global actions, and reports ARP packets that
//!   claim one of our VIPs from another MAC through a ring buffer.
//!
//! Everything else (VLAN-tagged, short or malformed frames, other protocols)
//! is passed to the kernel untouched.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use wackamole_common::{
    action, vip_state, ConflictEvent, LeaseRecord, VipCounters, VipEntry, VipKey, MAX_VIPS,
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

/// 256 conflict events of 32 bytes (plus headers) fit; conflicts are rare.
#[map(name = "WACK_CONFLICTS")]
static WACK_CONFLICTS: RingBuf = RingBuf::with_byte_size(16 * 1024, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
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

/// The fixed ARP header for Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4.
const ARP_ETH_IPV4: [u8; 6] = [0, 1, 0x08, 0x00, 6, 4];

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
        // VLAN-tagged and everything else: not ours.
        _ => xdp_action::XDP_PASS,
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
    if fixed != ARP_ETH_IPV4 {
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
    match disposition(&key, fenced) {
        None => xdp_action::XDP_PASS,
        Some(Disposition::Releasing) => drop_for(&key, action::DROP_RELEASING),
        Some(Disposition::Fenced) => drop_for(&key, action::DROP_FENCED),
        Some(Disposition::Owned(entry)) => {
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
    }
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
    match disposition(&key, lease_lapsed()) {
        None => xdp_action::XDP_PASS,
        Some(Disposition::Releasing) => drop_for(&key, action::DROP_RELEASING),
        Some(Disposition::Fenced) => drop_for(&key, action::DROP_FENCED),
        Some(Disposition::Owned(_)) => {
            if let Some(c) = vip_counters(&key) {
                // SAFETY: per-CPU value of this CPU.
                unsafe {
                    (*c).packets += 1;
                    (*c).bytes += (end - start) as u64;
                }
            }
            xdp_action::XDP_PASS
        }
    }
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
        // Unknown state (newer agent?): leave the traffic to the kernel.
        _ => None,
    }
}

/// True when a lease is configured and its deadline has passed.
#[inline(always)]
fn lease_lapsed() -> bool {
    let Some(lease) = WACK_LEASE.get(0) else {
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

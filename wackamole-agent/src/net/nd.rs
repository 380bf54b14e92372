//! IPv6 neighbour discovery (RFC 4861) frames: a pure builder and parser of
//! Ethernet + IPv6 + ICMPv6 neighbour solicitations and advertisements, with
//! the ICMPv6 checksum. Used by the tests and the benchmark (they feed the XDP
//! responder) and by the agent's unsolicited advertisements.

use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{Gate, NetError, NetResult};

/// Ethertype of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// IPv6 next header of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 types.
pub const ND_NEIGHBOR_SOLICIT: u8 = 135;
pub const ND_NEIGHBOR_ADVERT: u8 = 136;
/// Option types.
pub const OPT_SOURCE_LLADDR: u8 = 1;
pub const OPT_TARGET_LLADDR: u8 = 2;
pub const OPT_NONCE: u8 = 14;
/// Advertisement flags (first byte after the checksum).
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;
/// ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Ethernet + IPv6 headers.
pub const HEADERS_LEN: usize = 14 + 40;

/// The solicited-node multicast group of `addr` (ff02::1:ffXX:XXXX).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address of IPv6 multicast group `group` (33:33 + low 32 bits).
pub fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The ICMPv6 checksum of `message` (checksum field zeroed or not: it is
/// skipped) sent from `src` to `dst` (RFC 8200 8.1 pseudo-header).
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map(u64::from).unwrap_or(0);
            sum += hi | lo;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(message.get(..2).unwrap_or(message));
    if let Some(rest) = message.get(4..) {
        add(rest);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One Ethernet/IPv6 neighbour solicitation or advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdFrame {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    /// [`ND_NEIGHBOR_SOLICIT`] or [`ND_NEIGHBOR_ADVERT`].
    pub icmp_type: u8,
    pub code: u8,
    /// NA flags ([`NA_ROUTER`] ...); zero in a solicitation.
    pub flags: u8,
    pub target: Ipv6Addr,
    /// The options, raw (type, length in units of 8 bytes, data).
    pub options: Vec<u8>,
}

/// A link-layer address option.
pub fn lladdr_option(kind: u8, mac: [u8; 6]) -> [u8; 8] {
    [kind, 1, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]
}

impl NdFrame {
    /// "Who has `target`?" from `src`: to the target's solicited-node group,
    /// with a source link-layer address option (what Linux sends).
    pub fn solicitation(src_mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Self {
        let group = solicited_node(target);
        NdFrame {
            eth_dst: multicast_mac(group),
            eth_src: src_mac,
            src,
            dst: group,
            hop_limit: 255,
            icmp_type: ND_NEIGHBOR_SOLICIT,
            code: 0,
            flags: 0,
            target,
            options: lladdr_option(OPT_SOURCE_LLADDR, src_mac).to_vec(),
        }
    }

    /// A duplicate address detection probe for `target`: source ::, no
    /// source link-layer address, a nonce option (RFC 7527) as Linux sends.
    pub fn dad_probe(src_mac: [u8; 6], target: Ipv6Addr) -> Self {
        let mut ns = NdFrame::solicitation(src_mac, Ipv6Addr::UNSPECIFIED, target);
        ns.options = vec![OPT_NONCE, 1, 1, 2, 3, 4, 5, 6];
        ns
    }

    /// A solicited advertisement "`target` is at `mac`" to `dst_mac`/`dst`.
    pub fn solicited_advert(
        mac: [u8; 6],
        target: Ipv6Addr,
        dst_mac: [u8; 6],
        dst: Ipv6Addr,
        router: bool,
    ) -> Self {
        NdFrame {
            eth_dst: dst_mac,
            eth_src: mac,
            src: target,
            dst,
            hop_limit: 255,
            icmp_type: ND_NEIGHBOR_ADVERT,
            code: 0,
            flags: NA_SOLICITED | NA_OVERRIDE | if router { NA_ROUTER } else { 0 },
            target,
            options: lladdr_option(OPT_TARGET_LLADDR, mac).to_vec(),
        }
    }

    /// An unsolicited advertisement with Override to all-nodes (the IPv6
    /// gratuitous ARP).
    pub fn unsolicited_advert(mac: [u8; 6], target: Ipv6Addr, router: bool) -> Self {
        let mut na =
            NdFrame::solicited_advert(mac, target, multicast_mac(ALL_NODES), ALL_NODES, router);
        na.flags &= !NA_SOLICITED;
        na
    }

    /// The ICMPv6 message (checksum filled in).
    pub fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(24 + self.options.len());
        m.extend_from_slice(&[self.icmp_type, self.code, 0, 0, self.flags, 0, 0, 0]);
        m.extend_from_slice(&self.target.octets());
        m.extend_from_slice(&self.options);
        let c = icmpv6_checksum(self.src, self.dst, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    /// The whole frame (no Ethernet padding: it is over 60 bytes).
    pub fn to_frame(&self) -> Vec<u8> {
        let message = self.message();
        let mut f = Vec::with_capacity(HEADERS_LEN + message.len());
        f.extend_from_slice(&self.eth_dst);
        f.extend_from_slice(&self.eth_src);
        f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(message.len() as u16).to_be_bytes());
        f.extend_from_slice(&[IPPROTO_ICMPV6, self.hop_limit]);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        f.extend_from_slice(&message);
        f
    }

    /// Parses an Ethernet/IPv6 NS or NA whose ICMPv6 message follows the
    /// fixed header; `None` for anything else, a short frame or a wrong
    /// checksum.
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let mac = |at: usize| -> Option<[u8; 6]> { frame.get(at..at + 6)?.try_into().ok() };
        let ip = |at: usize| -> Option<Ipv6Addr> {
            let o: [u8; 16] = frame.get(at..at + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(o))
        };
        if frame.get(12..14)? != ETH_P_IPV6.to_be_bytes() || frame.get(14)? >> 4 != 6 {
            return None;
        }
        if *frame.get(20)? != IPPROTO_ICMPV6 {
            return None;
        }
        let plen = usize::from(u16::from_be_bytes([*frame.get(18)?, *frame.get(19)?]));
        let message = frame.get(HEADERS_LEN..HEADERS_LEN + plen)?;
        if plen < 24 {
            return None;
        }
        let icmp_type = message[0];
        if icmp_type != ND_NEIGHBOR_SOLICIT && icmp_type != ND_NEIGHBOR_ADVERT {
            return None;
        }
        let src = ip(22)?;
        let dst = ip(38)?;
        let sum = u16::from_be_bytes([message[2], message[3]]);
        if icmpv6_checksum(src, dst, message) != sum {
            return None;
        }
        Some(NdFrame {
            eth_dst: mac(0)?,
            eth_src: mac(6)?,
            src,
            dst,
            hop_limit: *frame.get(21)?,
            icmp_type,
            code: message[1],
            flags: message[4],
            target: ip(HEADERS_LEN + 8)?,
            options: message[24..].to_vec(),
        })
    }

    /// The MAC of the first link-layer address option of `kind`.
    pub fn lladdr(&self, kind: u8) -> Option<[u8; 6]> {
        let mut rest = &self.options[..];
        while rest.len() >= 2 {
            let len = usize::from(rest[1]) * 8;
            if len == 0 || len > rest.len() {
                return None;
            }
            if rest[0] == kind && len == 8 {
                return rest[2..8].try_into().ok();
            }
            rest = &rest[len..];
        }
        None
    }
}

/// Sends neighbour advertisements out of one interface through an
/// `AF_PACKET` socket, and holds the interface's membership of VIPs'
/// solicited-node groups (the NIC then delivers their solicitations to XDP
/// even before the address is configured). Memberships last as long as the
/// sender. Opened in the calling thread's network namespace.
#[derive(Debug)]
pub struct NdSender {
    fd: OwnedFd,
    iface: String,
    ifindex: u32,
    mac: [u8; 6],
}

impl NdSender {
    /// Opens a sender on `iface` and reads its MAC address.
    pub fn open(iface: &str) -> NetResult<Self> {
        let missing = || NetError::NoSuchInterface {
            iface: iface.to_string(),
        };
        if iface.is_empty() || iface.len() > 15 {
            return Err(missing());
        }
        let name = std::ffi::CString::new(iface).map_err(|_| missing())?;
        // SAFETY: valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(missing());
        }
        // SAFETY: plain socket(2) call; the fd is owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(NetError::Socket {
                what: "AF_PACKET",
                cause: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: raw is a fresh, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mac = super::arp::hwaddr(&fd, iface)?;
        Ok(NdSender {
            fd,
            iface: iface.to_string(),
            ifindex,
            mac,
        })
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Whether `iface` still names the interface the socket sends on (a
    /// deleted and re-created interface has a new index).
    pub fn still_names(&self, iface: &str) -> bool {
        super::arp::index_on(&self.fd, iface) == Some(self.ifindex)
    }

    fn membership(&self, vip: Ipv6Addr, add: bool) -> NetResult<()> {
        let group = multicast_mac(solicited_node(vip));
        // SAFETY: packet_mreq is plain data; zeroed is valid.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = self.ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_MULTICAST as u16;
        mreq.mr_alen = 6;
        mreq.mr_address[..6].copy_from_slice(&group);
        let opt = if add {
            libc::PACKET_ADD_MEMBERSHIP
        } else {
            libc::PACKET_DROP_MEMBERSHIP
        };
        // SAFETY: valid socket, option struct and length.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                opt,
                (&mreq as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as u32,
            )
        };
        if rc != 0 {
            return Err(NetError::Io {
                iface: self.iface.clone(),
                op: format!(
                    "{} the solicited-node group of {vip}",
                    if add { "join" } else { "leave" }
                ),
                cause: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Joins the solicited-node multicast group of `vip` on the interface
    /// (its Ethernet address enters the NIC's filter).
    pub fn join_solicited_node(&self, vip: Ipv6Addr) -> NetResult<()> {
        self.membership(vip, true)
    }

    /// Leaves the group joined by [`NdSender::join_solicited_node`].
    pub fn leave_solicited_node(&self, vip: Ipv6Addr) -> NetResult<()> {
        self.membership(vip, false)
    }

    /// Sends one frame now.
    pub fn send(&self, frame: &NdFrame) -> NetResult<()> {
        let bytes = frame.to_frame();
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_IPV6.to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame.eth_dst);
        // SAFETY: buffer and address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(NetError::Io {
                iface: self.iface.clone(),
                op: format!("send NA for {} to {}", frame.target, frame.dst),
                cause: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Sends `frames` at most `pps` per second (0: no limit), each once
    /// `gate` is open. Frames the kernel cannot queue right now are skipped
    /// with a warning; any other error stops the run. Returns how many were
    /// sent.
    pub async fn send_paced(
        &self,
        frames: &[NdFrame],
        pps: u32,
        gate: &mut impl Gate,
    ) -> NetResult<usize> {
        super::send_paced(
            frames,
            pps,
            gate,
            |frame| self.send(frame),
            |frame| tracing::warn!(iface = %self.iface, dst = %frame.dst, "NA dropped: transmit queue full"),
        )
        .await
    }

    /// Unsolicited advertisements (Override set) for `vips` to all-nodes,
    /// `count` rounds `spacing` apart; returns the frames sent.
    pub async fn unsolicited_burst(
        &self,
        vips: &[Ipv6Addr],
        count: u32,
        spacing: Duration,
        router: bool,
    ) -> NetResult<usize> {
        let mut sent = 0;
        for round in 0..count {
            if round > 0 {
                tokio::time::sleep(spacing).await;
            }
            for &vip in vips {
                self.send(&NdFrame::unsolicited_advert(self.mac, vip, router))?;
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Unicast advertisements "each VIP is at our MAC" (Override set,
    /// Solicited clear) to the given hosts.
    pub fn advert_to(
        &self,
        vips: &[Ipv6Addr],
        targets: &[(Ipv6Addr, [u8; 6])],
        router: bool,
    ) -> NetResult<usize> {
        let mut sent = 0;
        for &vip in vips {
            for &(ip, mac) in targets {
                self.send(&unicast_advert(self.mac, vip, ip, mac, router))?;
                sent += 1;
            }
        }
        Ok(sent)
    }
}

/// An IPv6 prefix `network/len` (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub network: Ipv6Addr,
    pub len: u8,
}

impl Ipv6Prefix {
    /// Builds a prefix, clearing host bits; `None` if `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        (len <= 128).then(|| Ipv6Prefix {
            network: Ipv6Addr::from(u128::from(addr) & mask6(len)),
            len,
        })
    }

    /// True when `ip` is inside the prefix.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.len) == u128::from(self.network)
    }

    /// Number of addresses, saturated at `u128::MAX` for a /0.
    pub fn size(&self) -> u128 {
        1u128
            .checked_shl(128 - u32::from(self.len))
            .unwrap_or(u128::MAX)
    }
}

impl std::fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

fn mask6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// Ranges up to this many addresses (a /120) are notified address by address.
pub const NOTIFY6_DIRECT: u128 = 256;

/// The advertisements that tell `range` that `vips` are now at `mac` (the
/// IPv6 side of [`super::arp::plan_notify`]).
///
/// Known neighbours inside the range (the shared neighbour cache) get a
/// unicast NA at their MAC. In a range of at most [`NOTIFY6_DIRECT`]
/// addresses (a router's /128, say) every other address gets an NA too, sent
/// to its solicited-node multicast MAC (no MAC needed: the host listens
/// there for its own address) with the address itself as IPv6 destination.
/// A bigger range relies on the all-nodes advertisements of the burst. The
/// VIPs themselves and our own MAC are skipped. All carry Override, not
/// Solicited.
pub fn plan_notify6(
    mac: [u8; 6],
    vips: &[Ipv6Addr],
    range: &Ipv6Prefix,
    neighbours: &[(Ipv6Addr, [u8; 6])],
    router: bool,
) -> Vec<NdFrame> {
    let mut known: Vec<(Ipv6Addr, [u8; 6])> = neighbours
        .iter()
        .copied()
        .filter(|(ip, m)| range.contains(*ip) && !vips.contains(ip) && *m != mac)
        .collect();
    known.sort();
    known.dedup_by_key(|(ip, _)| *ip);
    let mut hosts = known.clone();
    if range.size() <= NOTIFY6_DIRECT {
        let base = u128::from(range.network);
        for k in 0..range.size() {
            let ip = Ipv6Addr::from(base + k);
            if vips.contains(&ip) || known.iter().any(|(have, _)| *have == ip) {
                continue;
            }
            hosts.push((ip, multicast_mac(solicited_node(ip))));
        }
    }
    unicast_adverts(mac, vips, &hosts, router)
}

/// The advertisements that tell the shared neighbour cache's IPv6 hosts
/// that `vips` are now at `mac`: one unicast NA (Override set, Solicited
/// clear) per VIP and neighbour, leaving out the VIPs, our own MAC and the
/// neighbours inside `told` (notify ranges that [`plan_notify6`] covers).
pub fn plan_cache6(
    mac: [u8; 6],
    vips: &[Ipv6Addr],
    neighbours: &[(Ipv6Addr, [u8; 6])],
    told: &[Ipv6Prefix],
    router: bool,
) -> Vec<NdFrame> {
    let mut hosts: Vec<(Ipv6Addr, [u8; 6])> = neighbours
        .iter()
        .copied()
        .filter(|(ip, m)| !vips.contains(ip) && *m != mac && !told.iter().any(|r| r.contains(*ip)))
        .collect();
    hosts.sort();
    hosts.dedup_by_key(|(ip, _)| *ip);
    unicast_adverts(mac, vips, &hosts, router)
}

/// One [`unicast_advert`] per VIP and host.
fn unicast_adverts(
    mac: [u8; 6],
    vips: &[Ipv6Addr],
    hosts: &[(Ipv6Addr, [u8; 6])],
    router: bool,
) -> Vec<NdFrame> {
    vips.iter()
        .flat_map(|&vip| {
            hosts
                .iter()
                .map(move |&(ip, m)| unicast_advert(mac, vip, ip, m, router))
        })
        .collect()
}

/// An unsolicited advertisement (Override set, Solicited clear) for `vip`
/// sent straight to one host.
pub fn unicast_advert(
    mac: [u8; 6],
    vip: Ipv6Addr,
    dst: Ipv6Addr,
    dst_mac: [u8; 6],
    router: bool,
) -> NdFrame {
    let mut na = NdFrame::solicited_advert(mac, vip, dst_mac, dst, router);
    na.flags &= !NA_SOLICITED;
    na
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];

    #[test]
    fn the_cache_gets_one_unicast_override_na_per_vip_and_neighbour() {
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let vips = [ip("2001:db8::50"), ip("2001:db8::51")];
        let hosts = [
            (ip("2001:db8::7"), [2, 0, 0, 0, 0, 7]),
            (ip("2001:db8::7"), [2, 0, 0, 0, 0, 7]),
            (ip("2001:db8::1"), [2, 0, 0, 0, 0, 1]),
            (ip("2001:db8::50"), [2, 0, 0, 0, 0, 5]),
            (ip("2001:db8::9"), MAC),
        ];
        let told = [Ipv6Prefix::new(ip("2001:db8::1"), 128).unwrap()];
        let frames = plan_cache6(MAC, &vips, &hosts, &told, true);
        assert_eq!(frames.len(), 2, "{frames:?}");
        for (f, vip) in frames.iter().zip(vips) {
            assert_eq!((f.dst, f.eth_dst), (ip("2001:db8::7"), [2, 0, 0, 0, 0, 7]));
            assert_eq!((f.target, f.src), (vip, vip));
            assert_eq!(f.flags, NA_OVERRIDE | NA_ROUTER);
            assert_eq!(f.eth_src, MAC);
        }
        assert!(plan_cache6(MAC, &vips, &[], &[], false).is_empty());
    }

    #[test]
    fn solicited_node_and_multicast_mac() {
        let a: Ipv6Addr = "2001:db8::1:2:abcd:ef01".parse().unwrap();
        assert_eq!(
            solicited_node(a),
            "ff02::1:ffcd:ef01".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(a)),
            [0x33, 0x33, 0xff, 0xcd, 0xef, 0x01]
        );
        assert_eq!(multicast_mac(ALL_NODES), [0x33, 0x33, 0, 0, 0, 1]);
    }

    #[test]
    fn checksum_verifies() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::2".parse().unwrap();
        let na = NdFrame::solicited_advert([2, 0, 0, 0, 0, 1], src, [2, 0, 0, 0, 0, 2], dst, false);
        let m = na.message();
        // Summing the message with its checksum in gives 0xffff (verifies).
        let mut sum: u32 = 0;
        for w in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        sum += m.len() as u32 + 58;
        for w in m.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }

    #[test]
    fn frames_round_trip() {
        let me: Ipv6Addr = "2001:db8::20".parse().unwrap();
        let vip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let ns = NdFrame::solicitation(MAC, me, vip);
        let f = ns.to_frame();
        assert_eq!(f.len(), 86);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0, 0, 0x10]);
        assert_eq!(NdFrame::parse(&f), Some(ns.clone()));
        assert_eq!(ns.lladdr(OPT_SOURCE_LLADDR), Some(MAC));
        let mut bad = f.clone();
        bad[80] ^= 1;
        assert_eq!(NdFrame::parse(&bad), None, "checksum catches a flipped bit");
        assert_eq!(NdFrame::parse(&f[..85]), None);

        let dad = NdFrame::dad_probe(MAC, vip);
        assert_eq!(dad.src, Ipv6Addr::UNSPECIFIED);
        assert_eq!(dad.lladdr(OPT_SOURCE_LLADDR), None);
        assert_eq!(NdFrame::parse(&dad.to_frame()), Some(dad));

        let na = NdFrame::unsolicited_advert(MAC, vip, true);
        assert_eq!(na.flags, NA_ROUTER | NA_OVERRIDE);
        assert_eq!((na.dst, na.eth_dst), (ALL_NODES, [0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(na.lladdr(OPT_TARGET_LLADDR), Some(MAC));
        assert_eq!(NdFrame::parse(&na.to_frame()), Some(na));

        let uni = unicast_advert(MAC, vip, me, [2, 0, 0, 0, 0, 9], false);
        assert_eq!(uni.flags, NA_OVERRIDE);
        assert_eq!((uni.dst, uni.eth_dst), (me, [2, 0, 0, 0, 0, 9]));
        assert_eq!(NdFrame::parse(&uni.to_frame()), Some(uni));
    }

    #[test]
    fn prefixes6() {
        let p = Ipv6Prefix::new("2001:db8::77".parse().unwrap(), 120).unwrap();
        assert_eq!(p.to_string(), "2001:db8::/120");
        assert_eq!(p.size(), 256);
        assert!(p.contains("2001:db8::ff".parse().unwrap()));
        assert!(!p.contains("2001:db8::100".parse().unwrap()));
        let all = Ipv6Prefix::new("2001:db8::1".parse().unwrap(), 0).unwrap();
        assert_eq!(
            (all.network, all.size()),
            (Ipv6Addr::UNSPECIFIED, u128::MAX)
        );
        assert!(all.contains(Ipv6Addr::LOCALHOST));
        assert_eq!(Ipv6Prefix::new(Ipv6Addr::LOCALHOST, 128).unwrap().size(), 1);
        assert!(Ipv6Prefix::new(Ipv6Addr::LOCALHOST, 129).is_none());
    }

    #[test]
    fn notify6_plans() {
        let vip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let router: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let rmac = [2, 0, 0, 0, 0, 0x99];
        // A router's /128 with no known MAC: its solicited-node MAC.
        let one = Ipv6Prefix::new(router, 128).unwrap();
        let f = plan_notify6(MAC, &[vip], &one, &[], true);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].eth_dst, multicast_mac(solicited_node(router)));
        assert_eq!((f[0].dst, f[0].target, f[0].src), (router, vip, vip));
        assert_eq!(f[0].flags, NA_OVERRIDE | NA_ROUTER);
        assert_eq!(f[0].lladdr(OPT_TARGET_LLADDR), Some(MAC));
        // Known: its own MAC.
        let f = plan_notify6(MAC, &[vip], &one, &[(router, rmac)], false);
        assert_eq!((f.len(), f[0].eth_dst, f[0].flags), (1, rmac, NA_OVERRIDE));
        // A /126 holding the VIP: three others, not the VIP, not ourselves.
        let small = Ipv6Prefix::new(vip, 126).unwrap();
        let f = plan_notify6(MAC, &[vip], &small, &[(vip, rmac)], false);
        let dsts: Vec<Ipv6Addr> = f.iter().map(|n| n.dst).collect();
        assert_eq!(dsts.len(), 3);
        assert!(!dsts.contains(&vip));
        // A /64: only the known neighbours inside it.
        let big = Ipv6Prefix::new(vip, 64).unwrap();
        let outside: Ipv6Addr = "2001:db9::1".parse().unwrap();
        let f = plan_notify6(
            MAC,
            &[vip],
            &big,
            &[(router, rmac), (outside, rmac), (router, MAC)],
            false,
        );
        assert_eq!(f.len(), 1);
        assert!(plan_notify6(MAC, &[vip], &big, &[], false).is_empty());
    }

    #[test]
    fn opening_a_missing_interface_names_it() {
        let err = NdSender::open("nosuchif3").unwrap_err().to_string();
        assert!(err.contains("nosuchif3"), "{err}");
    }
}

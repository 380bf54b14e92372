//! ARP announcements: a pure frame builder and a sender on an `AF_PACKET`
//! socket bound to one interface.
//!
//! What the predecessors send, and what we send:
//! - Wackamole (JHU) sends ARP *replies* in 60-byte frames: first broadcast
//!   (Ethernet and target hardware address ff:ff:ff:ff:ff:ff, sender = VIP,
//!   target IP = the notified host), then, when the host's MAC is known from
//!   the shared ARP cache, the same reply unicast to that MAC.
//! - Keepalived sends a gratuitous ARP *request* (RFC 5227 "announcement"):
//!   broadcast, sender IP = target IP = VIP.
//!
//! We send both gratuitous forms by default ([`GarpForm::Both`]): the request
//! form (tha = 00:00:00:00:00:00, as RFC 5227 asks) and the reply form with
//! tha = sha, which is what Linux (`arp_process`) requires before it treats
//! an unsolicited reply as gratuitous. Hosts whose MAC we know get unicast
//! replies ([`ArpFrame::unicast_reply`]), like Wackamole: they update an
//! existing cache entry even where gratuitous ARP is ignored.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;
use std::time::Duration;

use super::{Gate, Ipv4Prefix, NetError, NetResult, Ungated};

/// Ethertype of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// The Ethernet broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];
/// Frame length on the wire without FCS: ARP (42 bytes) padded to the
/// Ethernet minimum of 60, as Wackamole and most stacks send it.
pub const FRAME_LEN: usize = 60;
/// Length of the meaningful part (Ethernet header + ARP for IPv4).
pub const ARP_LEN: usize = 42;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request = 1,
    Reply = 2,
}

/// One Ethernet/IPv4 ARP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub op: ArpOp,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol (IPv4) address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol (IPv4) address.
    pub tpa: Ipv4Addr,
}

impl ArpFrame {
    /// "Who has `target`? Tell `sender_ip`", broadcast by `sender_mac`.
    pub fn request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) -> Self {
        ArpFrame {
            eth_dst: BROADCAST,
            eth_src: sender_mac,
            op: ArpOp::Request,
            sha: sender_mac,
            spa: sender_ip,
            tha: [0; 6],
            tpa: target,
        }
    }

    /// Gratuitous ARP, request form (RFC 5227 announcement, keepalived):
    /// broadcast, spa = tpa = `vip`, tha = 0.
    pub fn gratuitous_request(mac: [u8; 6], vip: Ipv4Addr) -> Self {
        ArpFrame {
            eth_dst: BROADCAST,
            eth_src: mac,
            op: ArpOp::Request,
            sha: mac,
            spa: vip,
            tha: [0; 6],
            tpa: vip,
        }
    }

    /// Gratuitous ARP, reply form: broadcast, spa = tpa = `vip`, tha = sha
    /// (Linux accepts an unsolicited reply as gratuitous only with tha = sha).
    pub fn gratuitous_reply(mac: [u8; 6], vip: Ipv4Addr) -> Self {
        ArpFrame {
            eth_dst: BROADCAST,
            eth_src: mac,
            op: ArpOp::Reply,
            sha: mac,
            spa: vip,
            tha: mac,
            tpa: vip,
        }
    }

    /// A reply "`vip` is at `mac`" sent straight to one host.
    pub fn unicast_reply(
        mac: [u8; 6],
        vip: Ipv4Addr,
        target_ip: Ipv4Addr,
        target_mac: [u8; 6],
    ) -> Self {
        ArpFrame {
            eth_dst: target_mac,
            eth_src: mac,
            op: ArpOp::Reply,
            sha: mac,
            spa: vip,
            tha: target_mac,
            tpa: target_ip,
        }
    }

    /// The 60-byte frame (42 bytes of Ethernet + ARP, zero padded).
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut f = [0u8; FRAME_LEN];
        f[..ARP_LEN].copy_from_slice(&self.encode_unpadded());
        f
    }

    /// The 42 bytes of Ethernet + ARP without padding (e.g. to show XDP the
    /// shortest frame).
    pub fn encode_unpadded(&self) -> [u8; ARP_LEN] {
        let mut f = [0u8; ARP_LEN];
        let fields: [&[u8]; 12] = [
            &self.eth_dst,
            &self.eth_src,
            &ETH_P_ARP.to_be_bytes(),
            &1u16.to_be_bytes(),      // hardware type: Ethernet
            &0x0800u16.to_be_bytes(), // protocol type: IPv4
            &[6, 4],                  // address lengths
            &(self.op as u16).to_be_bytes(),
            &self.sha,
            &self.spa.octets(),
            &self.tha,
            &self.tpa.octets(),
            &[],
        ];
        let mut at = 0;
        for field in fields {
            if let Some(dst) = f.get_mut(at..at + field.len()) {
                dst.copy_from_slice(field);
            }
            at += field.len();
        }
        f
    }

    /// Parses an Ethernet/IPv4 ARP frame (at least 42 bytes); `None` for
    /// anything else.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; ARP_LEN] = bytes.get(..ARP_LEN)?.try_into().ok()?;
        let mac = |at: usize| -> Option<[u8; 6]> { b.get(at..at + 6)?.try_into().ok() };
        let ip = |at: usize| -> Option<Ipv4Addr> {
            let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(o))
        };
        let u16_at = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        if u16_at(12) != ETH_P_ARP
            || u16_at(14) != 1
            || u16_at(16) != 0x0800
            || b[18] != 6
            || b[19] != 4
        {
            return None;
        }
        let op = match u16_at(20) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return None,
        };
        Some(ArpFrame {
            eth_dst: mac(0)?,
            eth_src: mac(6)?,
            op,
            sha: mac(22)?,
            spa: ip(28)?,
            tha: mac(32)?,
            tpa: ip(38)?,
        })
    }
}

/// Which gratuitous ARP form(s) to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GarpForm {
    Request,
    Reply,
    #[default]
    Both,
}

/// A gratuitous ARP burst: `count` rounds, `spacing` apart (each round sends
/// every VIP in every chosen form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    pub count: u32,
    pub spacing: Duration,
    pub form: GarpForm,
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            count: 3,
            spacing: Duration::from_millis(200),
            form: GarpForm::Both,
        }
    }
}

/// The gratuitous frames of one burst round.
pub fn garp_frames(mac: [u8; 6], vips: &[Ipv4Addr], form: GarpForm) -> Vec<ArpFrame> {
    let mut out = Vec::with_capacity(vips.len() * 2);
    for &vip in vips {
        if form != GarpForm::Reply {
            out.push(ArpFrame::gratuitous_request(mac, vip));
        }
        if form != GarpForm::Request {
            out.push(ArpFrame::gratuitous_reply(mac, vip));
        }
    }
    out
}

/// A notify target `iface:IP/prefix` (Wackamole's `Notify` list): hosts in
/// this range are told when we take over a VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub iface: String,
    pub range: Ipv4Prefix,
}

impl FromStr for NotifyTarget {
    type Err = NetError;
    fn from_str(s: &str) -> NetResult<Self> {
        let (iface, range) = s.split_once(':').ok_or_else(|| {
            NetError::Invalid(format!("notify target {s:?}: want iface:a.b.c.d/len"))
        })?;
        if iface.is_empty() || iface.len() > 15 {
            return Err(NetError::Invalid(format!(
                "notify target {s:?}: bad interface name {iface:?}"
            )));
        }
        let range = range
            .parse()
            .map_err(|e| NetError::Invalid(format!("notify target {s:?}: {e}")))?;
        Ok(NotifyTarget {
            iface: iface.to_string(),
            range,
        })
    }
}

/// The frames that notify `range` that `vips` are now at `mac`.
///
/// A unicast reply goes to every known neighbour (from the kernel table or
/// the group's shared ARP cache) inside the range; the VIPs themselves and
/// our own MAC are skipped. Hosts we know no MAC for cannot get a unicast
/// reply, so when the range holds any such address one gratuitous request
/// per VIP is added (a single broadcast reaches them all; sending one per
/// address, as Wackamole did, multiplies broadcast load for nothing).
pub fn plan_notify(
    mac: [u8; 6],
    vips: &[Ipv4Addr],
    range: &Ipv4Prefix,
    neighbours: &[(Ipv4Addr, [u8; 6])],
) -> Vec<ArpFrame> {
    let mut known: Vec<(Ipv4Addr, [u8; 6])> = neighbours
        .iter()
        .copied()
        .filter(|(ip, m)| range.contains(*ip) && !vips.contains(ip) && *m != mac)
        .collect();
    known.sort();
    known.dedup_by_key(|(ip, _)| *ip);
    let vips_in_range = vips.iter().filter(|v| range.contains(**v)).count() as u64;
    let unknown_left = range.size() > known.len() as u64 + vips_in_range;
    let mut out = Vec::with_capacity(vips.len() * (known.len() + 1));
    for &vip in vips {
        out.extend(
            known
                .iter()
                .map(|&(ip, m)| ArpFrame::unicast_reply(mac, vip, ip, m)),
        );
        if unknown_left {
            out.push(ArpFrame::gratuitous_request(mac, vip));
        }
    }
    out
}

/// Sends ARP frames out of one interface through an `AF_PACKET` raw socket.
///
/// The socket is opened in the calling thread's network namespace and only
/// transmits (protocol 0: it receives nothing).
#[derive(Debug)]
pub struct ArpSender {
    fd: OwnedFd,
    iface: String,
    ifindex: u32,
    mac: [u8; 6],
}

impl ArpSender {
    /// Opens a sender on `iface` and reads its MAC address.
    pub fn open(iface: &str) -> NetResult<Self> {
        let name = std::ffi::CString::new(iface).map_err(|_| NetError::NoSuchInterface {
            iface: iface.to_string(),
        })?;
        if iface.is_empty() || iface.len() > 15 {
            return Err(NetError::NoSuchInterface {
                iface: iface.to_string(),
            });
        }
        // SAFETY: valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(NetError::NoSuchInterface {
                iface: iface.to_string(),
            });
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
        let mac = hwaddr(&fd, iface)?;
        Ok(ArpSender {
            fd,
            iface: iface.to_string(),
            ifindex,
            mac,
        })
    }

    /// The interface's MAC address (the sender address of our frames).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Whether `iface` still names the interface the socket sends on (a
    /// deleted and re-created interface has a new index).
    pub fn still_names(&self, iface: &str) -> bool {
        index_on(&self.fd, iface) == Some(self.ifindex)
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Sends one frame now. A full transmit queue is reported as
    /// `ErrorKind::WouldBlock` inside [`NetError::Io`].
    pub fn send(&self, frame: &ArpFrame) -> NetResult<()> {
        let bytes = frame.encode();
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ARP.to_be();
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
                op: format!("send ARP for {} to {}", frame.spa, frame.tpa),
                cause: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Sends `frames` at most `pps` per second (0: no limit), each once
    /// `gate` is open. Frames the kernel cannot queue right now
    /// (EAGAIN/ENOBUFS) are skipped with a warning; any other error stops
    /// the run. Returns how many were sent.
    pub async fn send_paced(
        &self,
        frames: &[ArpFrame],
        pps: u32,
        gate: &mut impl Gate,
    ) -> NetResult<usize> {
        super::send_paced(
            frames,
            pps,
            gate,
            |frame| self.send(frame),
            |frame| tracing::warn!(iface = %self.iface, tpa = %frame.tpa, "ARP frame dropped: transmit queue full"),
        )
        .await
    }

    /// Sends a gratuitous ARP burst for `vips`; returns the frames sent.
    pub async fn garp_burst(&self, vips: &[Ipv4Addr], burst: Burst) -> NetResult<usize> {
        let frames = garp_frames(self.mac, vips, burst.form);
        let mut sent = 0;
        for round in 0..burst.count {
            if round > 0 {
                tokio::time::sleep(burst.spacing).await;
            }
            sent += self.send_paced(&frames, 0, &mut Ungated).await?;
        }
        Ok(sent)
    }

    /// Unicast replies "each VIP is at our MAC" to the given hosts.
    pub async fn reply_to(
        &self,
        vips: &[Ipv4Addr],
        targets: &[(Ipv4Addr, [u8; 6])],
        pps: u32,
        gate: &mut impl Gate,
    ) -> NetResult<usize> {
        let frames: Vec<ArpFrame> = vips
            .iter()
            .flat_map(|&vip| {
                targets
                    .iter()
                    .map(move |&(ip, m)| ArpFrame::unicast_reply(self.mac, vip, ip, m))
            })
            .collect();
        self.send_paced(&frames, pps, gate).await
    }

    /// Notifies a target range (see [`plan_notify`]) at most `pps` frames/s.
    pub async fn notify(
        &self,
        vips: &[Ipv4Addr],
        range: &Ipv4Prefix,
        neighbours: &[(Ipv4Addr, [u8; 6])],
        pps: u32,
        gate: &mut impl Gate,
    ) -> NetResult<usize> {
        let frames = plan_notify(self.mac, vips, range, neighbours);
        self.send_paced(&frames, pps, gate).await
    }
}

impl ArpSender {
    /// Notifies several ranges at once, each paced at `pps` on its own
    /// (a large range does not hold up a small one) behind its own copy of
    /// `gate`. Returns frames sent.
    pub async fn notify_ranges<G: Gate + Clone>(
        &self,
        vips: &[Ipv4Addr],
        ranges: &[Ipv4Prefix],
        neighbours: &[(Ipv4Addr, [u8; 6])],
        pps: u32,
        gate: &G,
    ) -> NetResult<usize> {
        let runs = ranges.iter().map(|range| {
            let mut gate = gate.clone();
            async move { self.notify(vips, range, neighbours, pps, &mut gate).await }
        });
        let mut sent = 0;
        for r in futures::future::join_all(runs).await {
            sent += r?;
        }
        Ok(sent)
    }
}

/// A zeroed `ifreq` naming `iface` (the caller keeps the name under 16
/// bytes, so it stays NUL-terminated).
fn named_ifreq(iface: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(iface.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr
}

/// SIOCGIFINDEX on `fd`: the index `iface` names now in the fd's
/// namespace (`None`: no such interface). One system call on a kept socket;
/// `if_nametoindex` opens and closes a socket of its own each time.
pub(super) fn index_on(fd: &OwnedFd, iface: &str) -> Option<u32> {
    if iface.is_empty() || iface.len() > 15 {
        return None;
    }
    let mut ifr = named_ifreq(iface);
    // SAFETY: ifr is a valid ifreq with a NUL-terminated name (len <= 15).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX as _, &mut ifr) };
    if rc != 0 {
        return None;
    }
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    Some(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32)
}

/// SIOCGIFHWADDR on `fd` (works in the fd's namespace, unlike /sys).
pub(super) fn hwaddr(fd: &OwnedFd, iface: &str) -> NetResult<[u8; 6]> {
    let mut ifr = named_ifreq(iface);
    // SAFETY: ifr is a valid ifreq with a NUL-terminated name (len <= 15).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut ifr) };
    if rc < 0 {
        return Err(NetError::Io {
            iface: iface.to_string(),
            op: "read MAC address (SIOCGIFHWADDR)".into(),
            cause: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let data = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    #[test]
    fn gratuitous_request_bytes() {
        let f = ArpFrame::gratuitous_request(MAC, VIP).encode();
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // eth dst: broadcast
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // eth src
            0x08, 0x06,                         // ethertype ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet, IPv4, hlen, plen
            0x00, 0x01,                         // request
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // sha
            192, 0, 2, 100,                     // spa = VIP
            0, 0, 0, 0, 0, 0,                   // tha = 0
            192, 0, 2, 100,                     // tpa = VIP
        ];
        assert_eq!(&f[..42], &want[..]);
        assert_eq!(&f[42..], &[0u8; 18][..]);
    }

    #[test]
    fn request_bytes() {
        let f = ArpFrame::request(MAC, Ipv4Addr::new(192, 0, 2, 1), VIP).encode_unpadded();
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[28..32], &[192, 0, 2, 1]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[192, 0, 2, 100]);
        assert_eq!(
            ArpFrame::parse(&f),
            ArpFrame::parse(&ArpFrame::request(MAC, Ipv4Addr::new(192, 0, 2, 1), VIP).encode())
        );
    }

    #[test]
    fn gratuitous_reply_bytes() {
        let f = ArpFrame::gratuitous_reply(MAC, VIP).encode();
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[20..22], &[0, 2]);
        assert_eq!(&f[22..28], &MAC);
        assert_eq!(&f[28..32], &[192, 0, 2, 100]);
        assert_eq!(
            &f[32..38],
            &MAC,
            "tha = sha so Linux treats it as gratuitous"
        );
        assert_eq!(&f[38..42], &[192, 0, 2, 100]);
    }

    #[test]
    fn unicast_reply_bytes() {
        let peer = [0x02, 1, 2, 3, 4, 5];
        let f = ArpFrame::unicast_reply(MAC, VIP, Ipv4Addr::new(192, 0, 2, 9), peer).encode();
        assert_eq!(&f[0..6], &peer);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[8, 6]);
        assert_eq!(&f[20..22], &[0, 2]);
        assert_eq!(&f[22..28], &MAC);
        assert_eq!(&f[28..32], &[192, 0, 2, 100]);
        assert_eq!(&f[32..38], &peer);
        assert_eq!(&f[38..42], &[192, 0, 2, 9]);
    }

    #[test]
    fn parse_round_trips_and_rejects() {
        let f = ArpFrame::unicast_reply(MAC, VIP, Ipv4Addr::new(192, 0, 2, 9), [2, 9, 9, 9, 9, 9]);
        assert_eq!(ArpFrame::parse(&f.encode()), Some(f));
        assert_eq!(ArpFrame::parse(&f.encode()[..41]), None);
        let mut ip = f.encode();
        ip[13] = 0x00; // ethertype 0x0800
        assert_eq!(ArpFrame::parse(&ip), None);
        let mut op = f.encode();
        op[21] = 3;
        assert_eq!(ArpFrame::parse(&op), None);
    }

    #[test]
    fn burst_frames_per_form() {
        let vips = [VIP, Ipv4Addr::new(192, 0, 2, 101)];
        assert_eq!(garp_frames(MAC, &vips, GarpForm::Both).len(), 4);
        let req = garp_frames(MAC, &vips, GarpForm::Request);
        assert!(req.iter().all(|f| f.op == ArpOp::Request && f.spa == f.tpa));
        let rep = garp_frames(MAC, &vips, GarpForm::Reply);
        assert!(rep.iter().all(|f| f.op == ArpOp::Reply && f.tha == MAC));
    }

    #[test]
    fn notify_targets_parse() {
        let t: NotifyTarget = "eth0:192.0.2.0/24".parse().unwrap();
        assert_eq!(t.iface, "eth0");
        assert_eq!(t.range.to_string(), "192.0.2.0/24");
        let host: NotifyTarget = "eth0:192.0.2.1".parse().unwrap();
        assert_eq!(host.range.len, 32);
        for bad in [
            "192.0.2.0/24",
            ":192.0.2.0/24",
            "eth0:x",
            "averyveryverylongname:10.0.0.0/8",
        ] {
            assert!(bad.parse::<NotifyTarget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn notify_plan_unicasts_known_and_broadcasts_for_the_rest() {
        let range: Ipv4Prefix = "192.0.2.0/30".parse().unwrap();
        let a = (Ipv4Addr::new(192, 0, 2, 1), [2, 0, 0, 0, 0, 1]);
        let outside = (Ipv4Addr::new(198, 51, 100, 1), [2, 0, 0, 0, 0, 2]);
        let ourselves = (Ipv4Addr::new(192, 0, 2, 2), MAC);
        let vip = Ipv4Addr::new(192, 0, 2, 3);
        let plan = plan_notify(MAC, &[vip], &range, &[a, outside, ourselves, a]);
        assert_eq!(
            plan,
            vec![
                ArpFrame::unicast_reply(MAC, vip, a.0, a.1),
                ArpFrame::gratuitous_request(MAC, vip),
            ]
        );
        // Every address known (or the VIP itself): no broadcast.
        let b = (Ipv4Addr::new(192, 0, 2, 0), [2, 0, 0, 0, 0, 3]);
        let c = (Ipv4Addr::new(192, 0, 2, 2), [2, 0, 0, 0, 0, 4]);
        let plan = plan_notify(MAC, &[vip], &range, &[a, b, c]);
        assert_eq!(plan.len(), 3);
        assert!(plan
            .iter()
            .all(|f| f.op == ArpOp::Reply && f.eth_dst != BROADCAST));
    }
}

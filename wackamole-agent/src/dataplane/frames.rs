//! Frame builders and a `BPF_PROG_TEST_RUN` wrapper, for the tests, the
//! benchmark and the demo (they feed the XDP program synthetic frames). ARP
//! frames are [`crate::net::arp::ArpFrame`], the agent's own type.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use aya::programs::{TestRun, TestRunOptions, Xdp};

use super::error::{boxed, DataPlaneError, Result};

pub use crate::net::arp::{ArpFrame, ArpOp, BROADCAST};

/// A UDP/IPv4 frame of `total_len` bytes (at least 42) to `dst` (checksums
/// are not filled: XDP does not look at them).
pub fn ipv4_udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    total_len: usize,
) -> Vec<u8> {
    let total_len = total_len.max(42);
    let mut f = Vec::with_capacity(total_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = u16::try_from(total_len - 14).unwrap_or(u16::MAX);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[0x30, 0x39, 0x30, 0x39]);
    f.extend_from_slice(&(ip_len - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(total_len, 0);
    f
}

/// A UDP/IPv6 frame of `total_len` bytes (at least 62) to `dst` (UDP
/// checksum not filled: XDP does not look at it).
pub fn ipv6_udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    total_len: usize,
) -> Vec<u8> {
    let total_len = total_len.max(62);
    let mut f = Vec::with_capacity(total_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    let payload = u16::try_from(total_len - 54).unwrap_or(u16::MAX);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[0x30, 0x39, 0x30, 0x39]);
    f.extend_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(total_len, 0);
    f
}

/// Inserts an 802.1Q tag (VLAN `vid`) after the MAC addresses.
pub fn vlan_tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let split = frame.len().min(12);
    let mut f = frame[..split].to_vec();
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    f.extend_from_slice(&frame[split..]);
    f
}

/// One run of the XDP program on a synthetic frame.
#[derive(Clone, Debug)]
pub struct XdpRun {
    /// XDP_* action (`aya::bindings` numbering: 1 drop, 2 pass, 3 tx).
    pub action: u32,
    /// The frame after the program (rewritten in place for XDP_TX).
    pub frame: Vec<u8>,
    /// Mean time per run as measured by the kernel.
    pub duration: Duration,
}

/// XDP actions.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// How to present the frame to the program.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunContext {
    /// `xdp_md.ingress_ifindex`; None = the kernel default (loopback of the
    /// calling thread's namespace, ifindex 1).
    pub ingress_ifindex: Option<u32>,
    /// Runs in one call (the duration is the mean).
    pub repeat: u32,
}

/// Runs `prog` on `frame` with `BPF_PROG_TEST_RUN`.
pub fn test_run(prog: &Xdp, frame: &[u8], cx: RunContext) -> Result<XdpRun> {
    let mut out = vec![0u8; frame.len() + 256];
    // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }
    let md: [u32; 6] = [
        0,
        u32::try_from(frame.len()).unwrap_or(u32::MAX),
        0,
        cx.ingress_ifindex.unwrap_or(0),
        0,
        0,
    ];
    let ctx: Vec<u8> = md.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let use_ctx = cx.ingress_ifindex.is_some();
    let opts = TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: use_ctx.then_some(&ctx[..]),
        repeat: cx.repeat.max(1),
        ..TestRunOptions::default()
    };
    let r = prog.test_run(opts).map_err(|e| DataPlaneError::Program {
        action: "BPF_PROG_TEST_RUN",
        cause: boxed(e),
    })?;
    let len = usize::try_from(r.data_size_out).unwrap_or(0).min(out.len());
    out.truncate(len);
    Ok(XdpRun {
        action: r.return_value,
        frame: out,
        duration: r.duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_vlan_layout() {
        let f = ipv4_udp(
            [2; 6],
            [4; 6],
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 9),
            60,
        );
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(&f[30..34], &[192, 0, 2, 9]);
        let v6 = ipv6_udp(
            [2; 6],
            [4; 6],
            "2001:db8::1".parse().unwrap(),
            "2001:db8::9".parse().unwrap(),
            100,
        );
        assert_eq!(v6.len(), 100);
        assert_eq!(&v6[12..14], &[0x86, 0xdd]);
        assert_eq!(&v6[18..20], &[0, 46]);
        assert_eq!(v6[20], 17);
        assert_eq!(v6[53], 9);
        let v = vlan_tagged(&f, 7);
        assert_eq!(v.len(), 64);
        assert_eq!(&v[12..16], &[0x81, 0x00, 0, 7]);
        assert_eq!(&v[16..18], &[0x08, 0x00]);
    }
}

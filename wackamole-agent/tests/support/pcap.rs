//! Test support: a tiny pcap reader and TCP stream reassembly, enough to
//! replay the Spread captures in `tests/fixtures/spread/` (IPv4 over
//! Ethernet or Linux cooked v2, classic little-endian pcap files).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// One TCP segment from a capture.
#[derive(Clone, Debug)]
pub struct Segment {
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub seq: u32,
    pub syn: bool,
    pub payload: Vec<u8>,
}

fn be16(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("short packet reading u16 at {at}"))
}

fn le32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("short file reading u32 at {at}"))
}

/// Reads every IPv4/TCP segment of a pcap file.
pub fn read_pcap(file: &[u8]) -> Result<Vec<Segment>, String> {
    if le32(file, 0)? != 0xa1b2_c3d4 {
        return Err("not a little-endian microsecond pcap".into());
    }
    let linktype = le32(file, 20)?;
    let mut off = 24;
    let mut out = Vec::new();
    while off + 16 <= file.len() {
        let incl = le32(file, off + 8)? as usize;
        let pkt = file
            .get(off + 16..off + 16 + incl)
            .ok_or("truncated packet record")?;
        off += 16 + incl;
        let (ethertype, ip) = match linktype {
            1 => (be16(pkt, 12)?, pkt.get(14..).unwrap_or(&[])),
            276 => (be16(pkt, 0)?, pkt.get(20..).unwrap_or(&[])),
            other => return Err(format!("unsupported link type {other}")),
        };
        if ethertype != 0x0800 || ip.len() < 20 || ip[9] != 6 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(be16(ip, 2)?);
        let tcp = ip.get(ihl..total).ok_or("bad IPv4 lengths")?;
        if tcp.len() < 20 {
            return Err("short TCP header".into());
        }
        let doff = usize::from(tcp[12] >> 4) * 4;
        let a = |o: usize| Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
        out.push(Segment {
            src: (a(12), be16(tcp, 0)?),
            dst: (a(16), be16(tcp, 2)?),
            seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            syn: tcp[13] & 0x02 != 0,
            payload: tcp.get(doff..).ok_or("bad TCP data offset")?.to_vec(),
        });
    }
    Ok(out)
}

/// Both directions of one client connection, reassembled.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    pub client_port: u16,
    /// Client -> daemon bytes.
    pub to_daemon: Vec<u8>,
    /// Daemon -> client bytes.
    pub to_client: Vec<u8>,
    /// The capture holds the connection from its SYN (so it starts with the handshake).
    pub from_start: bool,
}

/// One direction of a connection: initial sequence number (from the SYN)
/// and the (sequence number, payload) of every data segment.
type Direction = (Option<u32>, Vec<(u32, Vec<u8>)>);

/// Groups the segments into connections to `daemon_port` (in order of first
/// appearance) and reassembles each direction by sequence number, dropping
/// retransmitted bytes.
pub fn reassemble(segments: &[Segment], daemon_port: u16) -> Vec<Stream> {
    // (client port, to_daemon) -> (isn, offset -> payload)
    let mut order: Vec<u16> = Vec::new();
    let mut dirs: BTreeMap<(u16, bool), Direction> = BTreeMap::new();
    let mut syn_seen: BTreeMap<u16, bool> = BTreeMap::new();
    for s in segments {
        let (client, to_daemon) = if s.dst.1 == daemon_port {
            (s.src.1, true)
        } else if s.src.1 == daemon_port {
            (s.dst.1, false)
        } else {
            continue;
        };
        if !order.contains(&client) {
            order.push(client);
        }
        let entry = dirs.entry((client, to_daemon)).or_default();
        if s.syn {
            entry.0 = Some(s.seq.wrapping_add(1));
            syn_seen.insert(client, true);
        }
        if !s.payload.is_empty() {
            entry.1.push((s.seq, s.payload.clone()));
        }
    }
    let join = |d: Option<&Direction>| -> Vec<u8> {
        let Some((isn, segs)) = d else {
            return Vec::new();
        };
        let base = isn.or_else(|| segs.first().map(|s| s.0)).unwrap_or(0);
        let mut sorted: Vec<(u32, &Vec<u8>)> = segs
            .iter()
            .map(|(q, p)| (q.wrapping_sub(base), p))
            .collect();
        sorted.sort_by_key(|s| s.0);
        let mut out = Vec::new();
        for (off, p) in sorted {
            let off = off as usize;
            assert!(off <= out.len(), "gap in TCP stream at {off}");
            if off + p.len() > out.len() {
                out.extend_from_slice(&p[out.len() - off..]);
            }
        }
        out
    };
    order
        .into_iter()
        .map(|c| Stream {
            client_port: c,
            to_daemon: join(dirs.get(&(c, true))),
            to_client: join(dirs.get(&(c, false))),
            from_start: syn_seen.get(&c).copied().unwrap_or(false),
        })
        .collect()
}

/// One `sendto`/`recvfrom` of an strace -x log of a libspread client.
#[derive(Clone, Debug)]
pub struct StraceIo {
    /// true: client -> daemon (sendto).
    pub to_daemon: bool,
    pub bytes: Vec<u8>,
}

/// Extracts the socket I/O on fd 3 (`sendto(3, ...)`, `recvfrom(3, ...)`)
/// with the byte count the call returned.
pub fn read_strace(text: &str) -> Result<Vec<StraceIo>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let to_daemon = if line.contains(" sendto(3, \"") {
            true
        } else if line.contains(" recvfrom(3, \"") {
            false
        } else {
            continue;
        };
        let start = line.find('"').ok_or("no string")? + 1;
        let end = line.rfind("\", ").ok_or("no end of string")?;
        let bytes = unescape(line.get(start..end).ok_or("bad string bounds")?)?;
        let ret: usize = line
            .rsplit("= ")
            .next()
            .and_then(|r| r.trim().parse().ok())
            .ok_or_else(|| format!("no return value in {line}"))?;
        if ret != bytes.len() {
            return Err(format!(
                "strace string truncated ({} of {ret})",
                bytes.len()
            ));
        }
        out.push(StraceIo { to_daemon, bytes });
    }
    Ok(out)
}

fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                Some(b'x') => {
                    let hex = s.get(i + 2..i + 4).ok_or("short \\x escape")?;
                    out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                    i += 4;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                }
                Some(b't') => {
                    out.push(b'\t');
                    i += 2;
                }
                Some(&c @ (b'\\' | b'"')) => {
                    out.push(c);
                    i += 2;
                }
                other => return Err(format!("unknown escape {other:?}")),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

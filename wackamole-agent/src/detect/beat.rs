//! The beat datagram: one agent's heartbeat on the LAN, with the echoes of
//! what it heard. Pure codec, no I/O; decoding never panics and refuses
//! anything malformed, oversized or from another cluster.
//!
//! Layout (big-endian), at most [`MAX_LEN`] bytes so it fits one frame:
//!
//! ```text
//! "WKB" version(1) | group u64 | id | stamp u64
//!   | n u8 | n x (id | stamp u64 | age_us u32)   echoes
//!   | m u8 | m x id                              lost
//!   | flags u8 | view u64                        (version 2)
//!   | position u64                               (version 3)
//! id = len u8 (1..=MAX_ID) + UTF-8 bytes
//! flags: bit 0 = silent (the sender's data path answers no VIP now);
//!        bit 1 = provisional (version 3: the sender holds VIFs it took
//!        from a condemned member before the group agreed);
//!        other bits are ignored (room for later versions' news)
//! view: a digest of the sender's view (see [`view_digest`]; 0: none)
//! position: how many agreed messages of that view its allocator has
//!        processed (version 3)
//! ```
//!
//! `stamp` is the sender's own clock (nanoseconds since its detector
//! started), opaque to everyone else: an echo hands it back verbatim, so a
//! node measures how fresh its peers' news of it is on its own clock, and no
//! two clocks are ever compared. `age_us` is how long before this beat the
//! sender received that stamp: the receiver learns whom the sender still
//! hears without trusting its clock either. `lost` lists the members the
//! sender heard in this view and then went without for the detector's
//! deadline: it never echoes them again in this view (see `detector`).
//! `silent` tells the peers whether the sender answers any VIP at all, and
//! `view` in which view: a member that left their view but still beats and
//! answers keeps its VIFs until it falls silent, and a lapsed node does
//! not answer again while a member of another view does (see `detector`
//! and the agent's guard). Version 1 (neither) is still read, as not
//! silent and of an unknown view.
//!
//! Version 3, written only by agents that act on the detector (every
//! member of such a cluster does), adds the sender's agreed position and
//! the provisional flag: the handshake by which a provisional holder and
//! the members that acquire by agreement never answer the same VIF (see
//! `detector`'s module comment).

use crate::membership::MemberId;
use std::fmt;

const MAGIC: &[u8; 3] = b"WKB";
pub const VERSION: u8 = 2;
/// The first version, without the flags byte (read, never written).
const VERSION_1: u8 = 1;
/// With the agreed position and the provisional flag (see [`Act`]).
pub const VERSION_ACT: u8 = 3;
const FLAG_SILENT: u8 = 1;
const FLAG_PROVISIONAL: u8 = 2;
/// The longest member id on the wire (Corosync's are 22 bytes, Spread's
/// private group names at most 31).
pub const MAX_ID: usize = 32;
/// The most echoes (and the most lost members) in one beat: the detector
/// serves views of up to `MAX_ECHOES + 1` members; larger clusters keep the
/// engine's detection alone.
pub const MAX_ECHOES: usize = 16;
/// The largest beat: header, every echo and every lost id at their longest.
pub const MAX_LEN: usize = 4
    + 8
    + (1 + MAX_ID)
    + 8
    + 1
    + MAX_ECHOES * (1 + MAX_ID + 8 + 4)
    + 1
    + MAX_ECHOES * (1 + MAX_ID)
    + 1
    + 8
    + 8;
// One IPv4 UDP datagram in a 1500-byte frame.
const _: () = assert!(MAX_LEN <= 1472);

/// What a beat says that the sender heard of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    pub member: MemberId,
    /// That member's latest stamp the sender received.
    pub stamp: u64,
    /// How long before sending this beat the sender received it (µs,
    /// saturating).
    pub age_us: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beat {
    /// Which cluster (see [`group_tag`]): beats of another are ignored.
    pub group: u64,
    pub sender: MemberId,
    pub stamp: u64,
    pub echoes: Vec<Echo>,
    /// Members the sender has lost in this view (see the module's comment).
    pub lost: Vec<MemberId>,
    /// The sender's data path answers no VIP now (it holds none, or its
    /// lease lapsed).
    pub silent: bool,
    /// The sender's view ([`view_digest`]; 0: no view, or unknown).
    pub view: u64,
    /// What an agent acting on the detector adds (version 3); `None` in
    /// earlier versions.
    pub act: Option<Act>,
}

/// The handshake's news in a version 3 beat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Act {
    /// How many agreed messages of the named view the sender's allocator
    /// has processed (published before it acts on the next one).
    pub position: u64,
    /// The sender holds VIFs it took provisionally (silent or answering).
    pub provisional: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeatError {
    TooShort,
    TooLong(usize),
    NotABeat,
    Version(u8),
    BadId,
    TooManyEchoes(usize),
    Trailing(usize),
}

impl fmt::Display for BeatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BeatError::TooShort => write!(f, "truncated beat"),
            BeatError::TooLong(n) => write!(f, "beat of {n} bytes (at most {MAX_LEN})"),
            BeatError::NotABeat => write!(f, "not a wackamole beat"),
            BeatError::Version(v) => {
                write!(f, "beat version {v} (this agent reads 1 to {VERSION_ACT})")
            }
            BeatError::BadId => write!(f, "member id empty, too long or not UTF-8"),
            BeatError::TooManyEchoes(n) => {
                write!(f, "{n} echoes or lost members (at most {MAX_ECHOES})")
            }
            BeatError::Trailing(n) => write!(f, "{n} bytes after the beat"),
        }
    }
}

impl std::error::Error for BeatError {}

/// The cluster's tag in every beat: FNV-1a of the group name, so two
/// clusters sharing a LAN and a port ignore each other's beats.
pub fn group_tag(group: &str) -> u64 {
    group.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A view's digest in beats: FNV-1a of its member ids in order (the
/// engine's order, the same at every member), never 0.
pub fn view_digest(members: &[MemberId]) -> u64 {
    let h = members.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, m| {
        m.0.bytes().chain(std::iter::once(0)).fold(h, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    });
    h.max(1)
}

impl Beat {
    /// The datagram. Ids longer than [`MAX_ID`] and echoes past
    /// [`MAX_ECHOES`] are the caller's bug: the detector never builds them
    /// (it refuses such views), so they are cut here rather than sent.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.echoes.len() * 40);
        out.extend_from_slice(MAGIC);
        out.push(if self.act.is_some() {
            VERSION_ACT
        } else {
            VERSION
        });
        out.extend_from_slice(&self.group.to_be_bytes());
        put_id(&mut out, &self.sender);
        out.extend_from_slice(&self.stamp.to_be_bytes());
        let echoes = &self.echoes[..self.echoes.len().min(MAX_ECHOES)];
        out.push(echoes.len() as u8);
        for e in echoes {
            put_id(&mut out, &e.member);
            out.extend_from_slice(&e.stamp.to_be_bytes());
            out.extend_from_slice(&e.age_us.to_be_bytes());
        }
        let lost = &self.lost[..self.lost.len().min(MAX_ECHOES)];
        out.push(lost.len() as u8);
        for m in lost {
            put_id(&mut out, m);
        }
        let mut flags = if self.silent { FLAG_SILENT } else { 0 };
        if self.act.is_some_and(|a| a.provisional) {
            flags |= FLAG_PROVISIONAL;
        }
        out.push(flags);
        out.extend_from_slice(&self.view.to_be_bytes());
        if let Some(a) = self.act {
            out.extend_from_slice(&a.position.to_be_bytes());
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Beat, BeatError> {
        if buf.len() > MAX_LEN {
            return Err(BeatError::TooLong(buf.len()));
        }
        let mut r = Reader(buf);
        let head = r.take(4)?;
        if &head[..3] != MAGIC {
            return Err(BeatError::NotABeat);
        }
        let version = head[3];
        if !(VERSION_1..=VERSION_ACT).contains(&version) {
            return Err(BeatError::Version(version));
        }
        let group = r.u64()?;
        let sender = r.id()?;
        let stamp = r.u64()?;
        let n = usize::from(r.take(1)?[0]);
        if n > MAX_ECHOES {
            return Err(BeatError::TooManyEchoes(n));
        }
        let mut echoes = Vec::with_capacity(n);
        for _ in 0..n {
            let member = r.id()?;
            let stamp = r.u64()?;
            let age_us = u32::from_be_bytes(r.array()?);
            echoes.push(Echo {
                member,
                stamp,
                age_us,
            });
        }
        let m = usize::from(r.take(1)?[0]);
        if m > MAX_ECHOES {
            return Err(BeatError::TooManyEchoes(m));
        }
        let lost = (0..m).map(|_| r.id()).collect::<Result<Vec<_>, _>>()?;
        let (flags, view) = if version == VERSION_1 {
            (0, 0)
        } else {
            (r.take(1)?[0], r.u64()?)
        };
        let act = if version == VERSION_ACT {
            Some(Act {
                position: r.u64()?,
                provisional: flags & FLAG_PROVISIONAL != 0,
            })
        } else {
            None
        };
        if !r.0.is_empty() {
            return Err(BeatError::Trailing(r.0.len()));
        }
        Ok(Beat {
            group,
            sender,
            stamp,
            echoes,
            lost,
            silent: flags & FLAG_SILENT != 0,
            view,
            act,
        })
    }
}

fn put_id(out: &mut Vec<u8>, id: &MemberId) {
    let b = &id.0.as_bytes()[..id.0.len().min(MAX_ID)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BeatError> {
        if self.0.len() < n {
            return Err(BeatError::TooShort);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BeatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u64(&mut self) -> Result<u64, BeatError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn id(&mut self) -> Result<MemberId, BeatError> {
        let len = usize::from(self.take(1)?[0]);
        if len == 0 || len > MAX_ID {
            return Err(BeatError::BadId);
        }
        let bytes = self.take(len)?;
        let s = std::str::from_utf8(bytes).map_err(|_| BeatError::BadId)?;
        Ok(MemberId(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MemberId {
        MemberId(s.into())
    }

    fn sample() -> Beat {
        Beat {
            group: group_tag("wackamole"),
            sender: id("n0000000001p0000001234"),
            stamp: 123_456_789,
            echoes: vec![
                Echo {
                    member: id("n0000000002p0000000042"),
                    stamp: 7,
                    age_us: 1500,
                },
                Echo {
                    member: id("#w#node3"),
                    stamp: u64::MAX,
                    age_us: u32::MAX,
                },
            ],
            lost: vec![id("n0000000003p0000000007")],
            silent: false,
            view: 0x1234_5678_9abc_def0,
            act: None,
        }
    }

    #[test]
    fn round_trips_and_fits_a_frame() {
        let b = sample();
        assert_eq!(Beat::decode(&b.encode()), Ok(b));
        let longest = Beat {
            group: 1,
            sender: id(&"x".repeat(MAX_ID)),
            stamp: 0,
            echoes: vec![
                Echo {
                    member: id(&"y".repeat(MAX_ID)),
                    stamp: 1,
                    age_us: 2,
                };
                MAX_ECHOES
            ],
            lost: vec![id(&"z".repeat(MAX_ID)); MAX_ECHOES],
            silent: true,
            view: u64::MAX,
            act: Some(Act {
                position: u64::MAX,
                provisional: true,
            }),
        };
        let bytes = longest.encode();
        assert_eq!(bytes.len(), MAX_LEN);
        assert_eq!(Beat::decode(&bytes), Ok(longest));
    }

    #[test]
    fn the_act_news_round_trips_and_only_version_3_carries_it() {
        let mut b = sample();
        for (position, provisional) in [(0, false), (7, true), (u64::MAX, false)] {
            b.act = Some(Act {
                position,
                provisional,
            });
            let bytes = b.encode();
            assert_eq!(bytes[3], VERSION_ACT);
            assert_eq!(bytes.len(), sample().encode().len() + 8);
            assert_eq!(Beat::decode(&bytes), Ok(b.clone()));
        }
        // Without it: version 2, and its provisional bit means nothing.
        let mut v2 = sample().encode();
        assert_eq!(v2[3], VERSION);
        let flags_at = v2.len() - 9;
        v2[flags_at] = FLAG_PROVISIONAL;
        assert_eq!(Beat::decode(&v2), Ok(sample()));
        // Version 3 without its position is truncated.
        let mut short = b.encode();
        short.truncate(short.len() - 1);
        assert_eq!(Beat::decode(&short), Err(BeatError::TooShort));
    }

    #[test]
    fn silence_round_trips_and_unknown_flags_are_ignored() {
        let mut b = sample();
        b.silent = true;
        let mut bytes = b.encode();
        assert_eq!(Beat::decode(&bytes), Ok(b.clone()));
        let flags_at = bytes.len() - 9;
        bytes[flags_at] = 0xfe;
        assert_eq!(Beat::decode(&bytes).map(|d| d.silent), Ok(false));
        bytes[flags_at] = 0xff;
        assert_eq!(Beat::decode(&bytes), Ok(b));
    }

    #[test]
    fn a_version_1_beat_reads_as_not_silent() {
        let mut bytes = sample().encode();
        bytes[3] = VERSION_1;
        bytes.truncate(bytes.len() - 9);
        let mut v1 = sample();
        v1.view = 0;
        assert_eq!(Beat::decode(&bytes), Ok(v1));
        // Version 2 without its flags byte or view is truncated.
        let mut short = sample().encode();
        short.pop();
        assert_eq!(Beat::decode(&short), Err(BeatError::TooShort));
    }

    #[test]
    fn every_truncation_and_every_extension_is_refused() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(Beat::decode(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Beat::decode(&longer), Err(BeatError::Trailing(1)));
        assert_eq!(
            Beat::decode(&vec![0; MAX_LEN + 1]),
            Err(BeatError::TooLong(MAX_LEN + 1))
        );
    }

    #[test]
    fn foreign_versions_ids_and_counts_are_refused() {
        let bytes = sample().encode();
        let mut other = bytes.clone();
        other[0] = b'X';
        assert_eq!(Beat::decode(&other), Err(BeatError::NotABeat));
        let mut newer = bytes.clone();
        newer[3] = VERSION_ACT + 1;
        assert_eq!(
            Beat::decode(&newer),
            Err(BeatError::Version(VERSION_ACT + 1))
        );
        let mut zero = bytes.clone();
        zero[3] = 0;
        assert_eq!(Beat::decode(&zero), Err(BeatError::Version(0)));
        // The sender id's length byte follows magic and group.
        let mut empty = bytes.clone();
        empty[12] = 0;
        assert_eq!(Beat::decode(&empty), Err(BeatError::BadId));
        let mut not_utf8 = bytes.clone();
        not_utf8[13] = 0xff;
        assert_eq!(Beat::decode(&not_utf8), Err(BeatError::BadId));
        let count_at = 12 + 1 + sample().sender.0.len() + 8;
        let mut many = bytes;
        many[count_at] = (MAX_ECHOES + 1) as u8;
        assert_eq!(
            Beat::decode(&many),
            Err(BeatError::TooManyEchoes(MAX_ECHOES + 1))
        );
    }

    #[test]
    fn no_input_panics() {
        // Every single-byte corruption of a valid beat, and a spread of
        // pseudo-random buffers: decoding returns, never panics.
        let mut act = sample();
        act.act = Some(Act {
            position: 3,
            provisional: true,
        });
        for bytes in [sample().encode(), act.encode()] {
            for i in 0..bytes.len() {
                for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                    let mut b = bytes.clone();
                    b[i] = v;
                    let _ = Beat::decode(&b);
                }
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..600 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = Beat::decode(&buf);
        }
    }

    #[test]
    fn view_digests_differ_by_member_and_order_and_are_never_0() {
        let (a, b) = (id("a"), id("b"));
        let ab = view_digest(&[a.clone(), b.clone()]);
        assert_ne!(ab, view_digest(&[b.clone(), a.clone()]));
        assert_ne!(ab, view_digest(std::slice::from_ref(&a)));
        assert_ne!(view_digest(&[id("ab")]), view_digest(&[a, b]));
        assert_ne!(view_digest(&[]), 0);
    }

    #[test]
    fn group_tags_differ_by_name() {
        assert_ne!(group_tag("wackamole"), group_tag("wackamole2"));
        assert_eq!(group_tag(""), 0xcbf2_9ce4_8422_2325);
    }
}

//! Wire messages of the allocator: a versioned, length-checked binary format.
//!
//! Layout: magic `WKAM`, version byte, kind byte, then the body. Integers are
//! little-endian; strings are a u16 length and UTF-8; lists are a u32 count
//! and their items. Every length is checked against the bytes left before
//! anything is allocated, so foreign or truncated input is an error, never a
//! panic or a huge allocation.
//!
//! ## Version policy (rolling upgrades)
//! - The version byte is the version the *sender* speaks (its highest).
//! - A version never changes the layout of what an older version defined: it
//!   only appends fields to the end of a message and adds new kinds. So a
//!   receiver decodes a message of any version: fields it does not know (at
//!   the end) are skipped, and a kind it does not know is an error that the
//!   allocator reports and ignores. A message of a version at most the
//!   receiver's must have no trailing bytes.
//! - STATE is a member's first message in every view in every version, and it
//!   carries the sender's highest version (`max_version`, version 1 implies 1).
//!   The group then speaks the lowest version of its members: a feature is
//!   used in a view only if every member's STATE says it speaks the version
//!   that introduced it (see [`Allocator`](super::Allocator)). A newer node
//!   thus never stalls an older one; anything it sends beyond the group's
//!   version is ignored by the older members.
//! - Version 1: STATE, MATURE, BALANCE, COMMAND, UPDATE. Version 2: STATE
//!   gains `max_version`, the yielding VIFs and the ineligible VIFs; new
//!   kinds HANDOVER, TAKEN, ELIGIBILITY, EXCHANGE_TIMEOUT. Version 3: new kind
//!   EVICT (a version-2 build ignores it, so it is sent and
//!   honoured only in views whose group speaks 3), and the neighbour share
//!   may carry IPv6 neighbours (see `net::neigh`). Version 4 (this build):
//!   new kind VERDICT (a member that completed an exchange by the timeout
//!   says whom it left out, so that a member whose delivery lost a STATE
//!   is found; sent and honoured only in views whose group speaks 4).
//! - Names (node names, member ids) are at most [`MAX_NAME_LEN`] bytes:
//!   decode refuses longer ones and encode never produces them.

use std::fmt;

use super::Priority;
use crate::membership::ViewId;

/// First bytes of every allocator message.
pub const MAGIC: [u8; 4] = *b"WKAM";
/// The version this build speaks.
pub const VERSION: u8 = 4;
/// The version that introduced EVICT (agreed eviction of a silent member).
pub const EVICT_VERSION: u8 = 3;
/// The version that introduced VERDICT (who an exchange timeout left out).
pub const VERDICT_VERSION: u8 = 4;
/// The version whose members read IPv6 neighbours in the neighbour share
/// (`net::neigh::NeighShare` version 2).
pub const NEIGH6_VERSION: u8 = 3;
/// The oldest version this build decodes.
pub const MIN_VERSION: u8 = 1;
/// Longest node name or member id on the wire, in bytes.
pub const MAX_NAME_LEN: usize = 255;

const KIND_STATE: u8 = 1;
const KIND_MATURE: u8 = 2;
const KIND_BALANCE: u8 = 3;
const KIND_COMMAND: u8 = 4;
const KIND_UPDATE: u8 = 5;
const KIND_HANDOVER: u8 = 6;
const KIND_TAKEN: u8 = 7;
const KIND_ELIGIBILITY: u8 = 8;
const KIND_EXCHANGE_TIMEOUT: u8 = 9;
const KIND_EVICT: u8 = 10;
const KIND_VERDICT: u8 = 11;
/// Test hook: a kind of the next version (see `Allocator::with_wire_version`).
const KIND_FUTURE: u8 = 0x7f;
/// The next version, spoken only by the test hook.
const FUTURE_VERSION: u8 = VERSION + 1;

/// The version that introduced a kind (None: unknown kind).
fn kind_version(kind: u8) -> Option<u8> {
    match kind {
        KIND_STATE | KIND_MATURE | KIND_BALANCE | KIND_COMMAND | KIND_UPDATE => Some(1),
        KIND_HANDOVER | KIND_TAKEN | KIND_ELIGIBILITY | KIND_EXCHANGE_TIMEOUT => Some(2),
        KIND_EVICT => Some(EVICT_VERSION),
        KIND_VERDICT => Some(VERDICT_VERSION),
        KIND_FUTURE => Some(FUTURE_VERSION),
        _ => None,
    }
}

/// A member's state for one view (sent once per view by every member).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMsg {
    pub view: ViewId,
    /// The sender's member id, checked against the engine's sender.
    pub member: String,
    /// The sender's index in the view.
    pub index: u32,
    /// Human node name.
    pub node: String,
    pub mature: bool,
    pub drained: bool,
    pub weight: u32,
    /// Number of VIFs in the sender's list and the list's digest.
    pub vif_count: u32,
    pub digest: u64,
    /// VIFs the sender holds, with their claim priority.
    pub held: Vec<(u32, Priority)>,
    pub prefer: Vec<u32>,
    /// The highest version the sender speaks (1 for a version-1 STATE).
    pub max_version: u8,
    /// Held VIFs the sender is yielding (not answering ARP; version 2).
    pub yielding: Vec<u32>,
    /// VIFs the sender may not hold (no carrier; version 2).
    pub ineligible: Vec<u32>,
}

/// One move of a balance round: member indices in the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireMove {
    pub vif: u32,
    pub from: u32,
    pub to: u32,
}

/// One step of a hand-over: the VIF and the hand-over's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoverItem {
    pub vif: u32,
    pub seq: u32,
}

/// Operator commands as multicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireCommand {
    Move { vif: u32, node: String },
    Drain { node: String },
    Undrain { node: String },
    Balance,
}

/// Every allocator message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    State(StateMsg),
    Mature {
        view: ViewId,
    },
    Balance {
        view: ViewId,
        moves: Vec<WireMove>,
    },
    Command {
        view: ViewId,
        command: WireCommand,
    },
    /// The sender's weight or prefer list changed (configuration reload).
    Update {
        view: ViewId,
        weight: u32,
        prefer: Vec<u32>,
    },
    /// Version 2: the sender stopped answering ARP for these VIFs (step 1 of
    /// a hand-over).
    Handover {
        view: ViewId,
        items: Vec<HandoverItem>,
    },
    /// Version 2: the new owner's announcement is on the wire (step 2).
    Taken {
        view: ViewId,
        items: Vec<HandoverItem>,
    },
    /// Version 2: the VIFs the sender may not hold now (carrier).
    Eligibility {
        view: ViewId,
        ineligible: Vec<u32>,
    },
    /// Version 2: the sender's exchange timer expired; members whose STATE
    /// has not arrived are left out of this view's allocation.
    ExchangeTimeout {
        view: ViewId,
    },
    /// Version 3: the member at `index` of this view (`member`, its id) has
    /// been silent in the group past the eviction deadline (its fencing
    /// lease has lapsed): every member treats it as gone on delivery.
    Evict {
        view: ViewId,
        index: u32,
        member: String,
    },
    /// Version 4: the sender completed this view's exchange on an
    /// EXCHANGE_TIMEOUT without the STATEs of the members at these indices
    /// (sorted). Every member that completed the same exchange left out the
    /// same ones, or someone's delivery lost a STATE (see the allocator).
    Verdict {
        view: ViewId,
        missing: Vec<u32>,
    },
    /// Test hook: a message only a node of the next version knows.
    Future {
        view: ViewId,
    },
}

impl Message {
    /// The view a message was sent in (every kind names one).
    pub fn view(&self) -> ViewId {
        match self {
            Message::State(s) => s.view,
            Message::Mature { view }
            | Message::Balance { view, .. }
            | Message::Command { view, .. }
            | Message::Update { view, .. }
            | Message::Handover { view, .. }
            | Message::Taken { view, .. }
            | Message::Eligibility { view, .. }
            | Message::ExchangeTimeout { view }
            | Message::Evict { view, .. }
            | Message::Verdict { view, .. }
            | Message::Future { view } => *view,
        }
    }
}

/// Why bytes are not an allocator message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a wackamole allocator message (bad magic)")]
    BadMagic,
    #[error("message version {got} from a newer wackamole; this node speaks {ours}")]
    NewerVersion { got: u8, ours: u8 },
    #[error("unsupported message version {0}")]
    OldVersion(u8),
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error(
        "message kind {kind} of version {got} from a newer wackamole; this node speaks {ours}"
    )]
    NewerKind { kind: u8, got: u8, ours: u8 },
    #[error("message truncated while reading {what} at byte {at}")]
    Truncated { what: &'static str, at: usize },
    #[error("invalid {what} value {value} at byte {at}")]
    BadValue {
        what: &'static str,
        value: u64,
        at: usize,
    },
    #[error("{what} at byte {at} is not UTF-8")]
    BadUtf8 { what: &'static str, at: usize },
    #[error("{what} at byte {at} is {len} bytes long (at most {MAX_NAME_LEN})")]
    TooLong {
        what: &'static str,
        len: usize,
        at: usize,
    },
    #[error("{0} unexpected bytes after the message")]
    Trailing(usize),
}

impl WireError {
    /// The message comes from a newer version and is not garbage: a kind or
    /// a version this node does not know.
    pub fn is_newer(&self) -> bool {
        matches!(
            self,
            WireError::NewerVersion { .. } | WireError::NewerKind { .. }
        )
    }
}

/// Encodes a message in this build's version.
pub fn encode(msg: &Message) -> Vec<u8> {
    encode_as(msg, VERSION)
}

/// Encodes a message as a node speaking `version` does (test hook for mixed
/// versions): a version-1 STATE has no version-2 fields; a STATE of the
/// next version (`VERSION + 1`) appends a field older nodes skip.
pub fn encode_as(msg: &Message, version: u8) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.0.extend_from_slice(&MAGIC);
    w.u8(version.max(MIN_VERSION));
    match msg {
        Message::State(s) => {
            w.u8(KIND_STATE);
            w.u128(s.view.0);
            w.str(&s.member);
            w.u32(s.index);
            w.str(&s.node);
            w.u8(u8::from(s.mature) | (u8::from(s.drained) << 1));
            w.u32(s.weight);
            w.u32(s.vif_count);
            w.u64(s.digest);
            w.u32(s.held.len() as u32);
            for (v, p) in &s.held {
                w.u32(*v);
                w.u8(*p as u8);
            }
            w.u32s(&s.prefer);
            if version >= 2 {
                w.u8(s.max_version);
                w.u32s(&s.yielding);
                w.u32s(&s.ineligible);
            }
            if version >= FUTURE_VERSION {
                // A field of the future: older nodes skip it.
                w.u32(0x4655_5455);
            }
        }
        Message::Mature { view } => {
            w.u8(KIND_MATURE);
            w.u128(view.0);
        }
        Message::Balance { view, moves } => {
            w.u8(KIND_BALANCE);
            w.u128(view.0);
            w.u32(moves.len() as u32);
            for m in moves {
                w.u32(m.vif);
                w.u32(m.from);
                w.u32(m.to);
            }
        }
        Message::Command { view, command } => {
            w.u8(KIND_COMMAND);
            w.u128(view.0);
            match command {
                WireCommand::Move { vif, node } => {
                    w.u8(1);
                    w.u32(*vif);
                    w.str(node);
                }
                WireCommand::Drain { node } => {
                    w.u8(2);
                    w.str(node);
                }
                WireCommand::Undrain { node } => {
                    w.u8(3);
                    w.str(node);
                }
                WireCommand::Balance => w.u8(4),
            }
        }
        Message::Update {
            view,
            weight,
            prefer,
        } => {
            w.u8(KIND_UPDATE);
            w.u128(view.0);
            w.u32(*weight);
            w.u32s(prefer);
        }
        Message::Handover { view, items } | Message::Taken { view, items } => {
            w.u8(if matches!(msg, Message::Handover { .. }) {
                KIND_HANDOVER
            } else {
                KIND_TAKEN
            });
            w.u128(view.0);
            w.u32(items.len() as u32);
            for i in items {
                w.u32(i.vif);
                w.u32(i.seq);
            }
        }
        Message::Eligibility { view, ineligible } => {
            w.u8(KIND_ELIGIBILITY);
            w.u128(view.0);
            w.u32s(ineligible);
        }
        Message::ExchangeTimeout { view } => {
            w.u8(KIND_EXCHANGE_TIMEOUT);
            w.u128(view.0);
        }
        Message::Evict {
            view,
            index,
            member,
        } => {
            w.u8(KIND_EVICT);
            w.u128(view.0);
            w.u32(*index);
            w.str(member);
        }
        Message::Verdict { view, missing } => {
            w.u8(KIND_VERDICT);
            w.u128(view.0);
            w.u32s(missing);
        }
        Message::Future { view } => {
            w.u8(KIND_FUTURE);
            w.u128(view.0);
        }
    }
    w.0
}

/// Decodes a message as this build; any malformed or foreign input is an
/// error, and so is a kind this build does not know.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    decode_as(bytes, VERSION)
}

/// Decodes a message as a node speaking `ours` does (see the version policy
/// in the module docs).
pub fn decode_as(bytes: &[u8], ours: u8) -> Result<Message, WireError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.take(4, "magic").map_err(|_| WireError::BadMagic)? != MAGIC {
        return Err(WireError::BadMagic);
    }
    let version = r.u8("version")?;
    if version < MIN_VERSION {
        return Err(WireError::OldVersion(version));
    }
    let kind = r.u8("kind")?;
    match kind_version(kind) {
        Some(k) if k <= ours && k <= version => {}
        Some(k) if k > ours => {
            return Err(WireError::NewerKind {
                kind,
                got: version,
                ours,
            })
        }
        Some(_) => {
            // A kind newer than the version its sender claims: malformed.
            return Err(WireError::BadValue {
                what: "kind for the message's version",
                value: kind.into(),
                at: 5,
            });
        }
        None if version > ours => {
            return Err(WireError::NewerVersion { got: version, ours });
        }
        None => return Err(WireError::UnknownKind(kind)),
    }
    // Fields of versions both sides know.
    let known = version.min(ours);
    let msg = match kind {
        KIND_STATE => {
            let view = ViewId(r.u128("view id")?);
            let member = r.name("member id")?;
            let index = r.u32("index")?;
            let node = r.name("node name")?;
            let at = r.pos;
            let flags = r.u8("flags")?;
            if flags > 3 {
                return Err(WireError::BadValue {
                    what: "flags",
                    value: flags.into(),
                    at,
                });
            }
            let weight = r.u32("weight")?;
            let vif_count = r.u32("VIF count")?;
            let digest = r.u64("digest")?;
            let n = r.count(5, "held list")?;
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                let v = r.u32("held VIF")?;
                let at = r.pos;
                let p = r.u8("priority")?;
                let p = Priority::from_u8(p).ok_or(WireError::BadValue {
                    what: "priority",
                    value: p.into(),
                    at,
                })?;
                held.push((v, p));
            }
            let prefer = r.u32s("prefer list")?;
            let (mut max_version, mut yielding, mut ineligible) = (1, Vec::new(), Vec::new());
            if known >= 2 {
                let at = r.pos;
                max_version = r.u8("highest version")?;
                if max_version < version {
                    return Err(WireError::BadValue {
                        what: "highest version",
                        value: max_version.into(),
                        at,
                    });
                }
                yielding = r.u32s("yielding list")?;
                ineligible = r.u32s("ineligible list")?;
            }
            if known >= FUTURE_VERSION {
                // Test hook: the next version's field (see `encode_as`).
                r.u32("next version's field")?;
            }
            Message::State(StateMsg {
                view,
                member,
                index,
                node,
                mature: flags & 1 != 0,
                drained: flags & 2 != 0,
                weight,
                vif_count,
                digest,
                held,
                prefer,
                max_version,
                yielding,
                ineligible,
            })
        }
        KIND_MATURE => Message::Mature {
            view: ViewId(r.u128("view id")?),
        },
        KIND_BALANCE => {
            let view = ViewId(r.u128("view id")?);
            let n = r.count(12, "move list")?;
            let mut moves = Vec::with_capacity(n);
            for _ in 0..n {
                moves.push(WireMove {
                    vif: r.u32("move VIF")?,
                    from: r.u32("move source")?,
                    to: r.u32("move target")?,
                });
            }
            Message::Balance { view, moves }
        }
        KIND_COMMAND => {
            let view = ViewId(r.u128("view id")?);
            let at = r.pos;
            let command = match r.u8("command")? {
                1 => WireCommand::Move {
                    vif: r.u32("VIF")?,
                    node: r.name("node name")?,
                },
                2 => WireCommand::Drain {
                    node: r.name("node name")?,
                },
                3 => WireCommand::Undrain {
                    node: r.name("node name")?,
                },
                4 => WireCommand::Balance,
                other => {
                    return Err(WireError::BadValue {
                        what: "command",
                        value: other.into(),
                        at,
                    })
                }
            };
            Message::Command { view, command }
        }
        KIND_UPDATE => Message::Update {
            view: ViewId(r.u128("view id")?),
            weight: r.u32("weight")?,
            prefer: r.u32s("prefer list")?,
        },
        KIND_HANDOVER | KIND_TAKEN => {
            let view = ViewId(r.u128("view id")?);
            let n = r.count(8, "hand-over list")?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(HandoverItem {
                    vif: r.u32("hand-over VIF")?,
                    seq: r.u32("hand-over sequence")?,
                });
            }
            if kind == KIND_HANDOVER {
                Message::Handover { view, items }
            } else {
                Message::Taken { view, items }
            }
        }
        KIND_ELIGIBILITY => Message::Eligibility {
            view: ViewId(r.u128("view id")?),
            ineligible: r.u32s("ineligible list")?,
        },
        KIND_EXCHANGE_TIMEOUT => Message::ExchangeTimeout {
            view: ViewId(r.u128("view id")?),
        },
        KIND_EVICT => Message::Evict {
            view: ViewId(r.u128("view id")?),
            index: r.u32("evicted index")?,
            member: r.name("evicted member")?,
        },
        KIND_VERDICT => Message::Verdict {
            view: ViewId(r.u128("view id")?),
            missing: r.u32s("missing list")?,
        },
        _ => Message::Future {
            view: ViewId(r.u128("view id")?),
        },
    };
    let left = bytes.len() - r.pos;
    // A newer sender may append fields we do not know.
    if left != 0 && version <= ours {
        return Err(WireError::Trailing(left));
    }
    Ok(msg)
}

/// A name cut to at most [`MAX_NAME_LEN`] bytes at a character boundary: what
/// the wire carries for it.
pub fn bound_name(s: &str) -> &str {
    let mut end = s.len().min(MAX_NAME_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Names longer than [`MAX_NAME_LEN`] are cut at a character boundary
    /// (the allocator bounds them before; see [`bound_name`]).
    fn str(&mut self, s: &str) {
        let s = bound_name(s);
        self.0.extend_from_slice(&(s.len() as u16).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn u32s(&mut self, vs: &[u32]) {
        self.u32(vs.len() as u32);
        for v in vs {
            self.u32(*v);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(WireError::Truncated { what, at: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn u128(&mut self, what: &'static str) -> Result<u128, WireError> {
        Ok(u128::from_le_bytes(self.array(what)?))
    }
    /// A node name or member id: at most [`MAX_NAME_LEN`] bytes of UTF-8.
    fn name(&mut self, what: &'static str) -> Result<String, WireError> {
        let len = u16::from_le_bytes(self.array(what)?);
        let at = self.pos;
        if usize::from(len) > MAX_NAME_LEN {
            return Err(WireError::TooLong {
                what,
                len: len.into(),
                at,
            });
        }
        let bytes = self.take(usize::from(len), what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| WireError::BadUtf8 { what, at })
    }
    /// A list count, refused if its items cannot fit in the bytes left.
    fn count(&mut self, item_size: usize, what: &'static str) -> Result<usize, WireError> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n.saturating_mul(item_size) > self.buf.len() - self.pos {
            return Err(WireError::Truncated { what, at });
        }
        Ok(n)
    }
    fn u32s(&mut self, what: &'static str) -> Result<Vec<u32>, WireError> {
        let n = self.count(4, what)?;
        (0..n).map(|_| self.u32(what)).collect()
    }
}

impl fmt::Display for WireCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireCommand::Move { vif, node } => write!(f, "move #{vif} to {node}"),
            WireCommand::Drain { node } => write!(f, "drain {node}"),
            WireCommand::Undrain { node } => write!(f, "undrain {node}"),
            WireCommand::Balance => f.write_str("balance"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn prio() -> impl Strategy<Value = Priority> {
        (0u8..4).prop_map(|v| Priority::from_u8(v).unwrap_or(Priority::Claimed))
    }

    fn message() -> impl Strategy<Value = Message> {
        let view = any::<u128>().prop_map(ViewId);
        prop_oneof![
            (
                view.clone(),
                ".{0,20}",
                any::<u32>(),
                ".{0,20}",
                any::<(bool, bool, u32, u32, u64)>(),
                proptest::collection::vec((any::<u32>(), prio()), 0..20),
                proptest::collection::vec(any::<u32>(), 0..10),
                (
                    VERSION..=255u8,
                    proptest::collection::vec(any::<u32>(), 0..5),
                    proptest::collection::vec(any::<u32>(), 0..5),
                ),
            )
                .prop_map(
                    |(
                        view,
                        member,
                        index,
                        node,
                        (mature, drained, weight, vif_count, digest),
                        held,
                        prefer,
                        (max_version, yielding, ineligible),
                    )| {
                        Message::State(StateMsg {
                            view,
                            member,
                            index,
                            node,
                            mature,
                            drained,
                            weight,
                            vif_count,
                            digest,
                            held,
                            prefer,
                            max_version,
                            yielding,
                            ineligible,
                        })
                    }
                ),
            view.clone().prop_map(|view| Message::Mature { view }),
            (
                view.clone(),
                proptest::collection::vec(any::<(u32, u32, u32)>(), 0..20)
            )
                .prop_map(|(view, m)| Message::Balance {
                    view,
                    moves: m
                        .into_iter()
                        .map(|(vif, from, to)| WireMove { vif, from, to })
                        .collect()
                }),
            (view.clone(), any::<u32>(), ".{0,20}", 0u8..4).prop_map(|(view, vif, node, k)| {
                let command = match k {
                    0 => WireCommand::Move { vif, node },
                    1 => WireCommand::Drain { node },
                    2 => WireCommand::Undrain { node },
                    _ => WireCommand::Balance,
                };
                Message::Command { view, command }
            }),
            (
                view.clone(),
                any::<u32>(),
                proptest::collection::vec(any::<u32>(), 0..10)
            )
                .prop_map(|(view, weight, prefer)| Message::Update {
                    view,
                    weight,
                    prefer
                }),
            (
                view.clone(),
                any::<bool>(),
                proptest::collection::vec(any::<(u32, u32)>(), 0..10)
            )
                .prop_map(|(view, taken, items)| {
                    let items = items
                        .into_iter()
                        .map(|(vif, seq)| HandoverItem { vif, seq })
                        .collect();
                    if taken {
                        Message::Taken { view, items }
                    } else {
                        Message::Handover { view, items }
                    }
                }),
            (view.clone(), proptest::collection::vec(any::<u32>(), 0..10))
                .prop_map(|(view, ineligible)| Message::Eligibility { view, ineligible }),
            view.clone()
                .prop_map(|view| Message::ExchangeTimeout { view }),
            (view.clone(), any::<u32>(), "[a-z0-9]{0,20}").prop_map(|(view, index, member)| {
                Message::Evict {
                    view,
                    index,
                    member,
                }
            }),
            (view, proptest::collection::vec(any::<u32>(), 0..10))
                .prop_map(|(view, missing)| Message::Verdict { view, missing }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(msg in message()) {
            let bytes = encode(&msg);
            prop_assert_eq!(decode(&bytes), Ok(msg));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_bodies_never_panic(kind in 0u8..13, body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = MAGIC.to_vec();
            bytes.push(VERSION);
            bytes.push(kind);
            bytes.extend(body);
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_is_an_error(msg in message()) {
            let bytes = encode(&msg);
            for cut in 0..bytes.len() {
                prop_assert!(decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn newer_version_is_explained() {
        // An unknown kind from a newer version is "newer", not garbage.
        let mut bytes = encode(&Message::Mature { view: ViewId(7) });
        bytes[4] = VERSION + 1;
        bytes[5] = 200;
        let err = decode(&bytes).unwrap_err();
        assert!(err.is_newer());
        assert_eq!(
            err.to_string(),
            format!(
                "message version {} from a newer wackamole; this node speaks {}",
                VERSION + 1,
                VERSION
            )
        );
        // The same unknown kind at our version is garbage.
        bytes[4] = VERSION;
        assert_eq!(decode(&bytes), Err(WireError::UnknownKind(200)));
    }

    fn sample_state() -> StateMsg {
        StateMsg {
            view: ViewId(9),
            member: "m1".into(),
            index: 1,
            node: "node1".into(),
            mature: true,
            drained: false,
            weight: 2,
            vif_count: 4,
            digest: 77,
            held: vec![(0, Priority::Claimed), (2, Priority::PreferClaimed)],
            prefer: vec![2],
            max_version: VERSION,
            yielding: vec![0],
            ineligible: vec![3],
        }
    }

    /// The largest STATE a member can send (every one of `MAX_VIPS` VIFs
    /// held, preferred, yielding and ineligible; names at their limit) fits
    /// in one Spread message (144000 data bytes in 4.4) and round-trips.
    #[test]
    fn the_largest_state_fits_one_spread_message() {
        let all: Vec<u32> = (0..wackamole_common::MAX_VIPS).collect();
        let s = StateMsg {
            member: "m".repeat(MAX_NAME_LEN),
            node: "n".repeat(MAX_NAME_LEN),
            vif_count: wackamole_common::MAX_VIPS,
            held: all.iter().map(|&i| (i, Priority::PreferClaimed)).collect(),
            prefer: all.clone(),
            yielding: all.clone(),
            ineligible: all,
            ..sample_state()
        };
        let bytes = encode(&Message::State(s.clone()));
        assert!(bytes.len() <= 144_000, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes), Ok(Message::State(s)));
    }

    #[test]
    fn newer_messages_are_read_as_far_as_known() {
        // A next-version STATE: its extra field is skipped, everything else read.
        let mut s = sample_state();
        s.max_version = FUTURE_VERSION;
        let bytes = encode_as(&Message::State(s.clone()), FUTURE_VERSION);
        assert_eq!(decode(&bytes), Ok(Message::State(s.clone())));
        // The same bytes at our version would be trailing garbage.
        let mut strict = bytes.clone();
        strict[4] = VERSION;
        assert_eq!(decode(&strict), Err(WireError::Trailing(4)));
        // A newer known kind (MATURE stamped the next version) decodes.
        let mut m = encode(&Message::Mature { view: ViewId(1) });
        m[4] = FUTURE_VERSION;
        m.extend([1, 2, 3]);
        assert_eq!(decode(&m), Ok(Message::Mature { view: ViewId(1) }));
        // A kind of the next version is "newer" for us and known to it.
        let f = encode_as(&Message::Future { view: ViewId(1) }, FUTURE_VERSION);
        assert!(decode(&f).unwrap_err().is_newer());
        assert_eq!(
            decode_as(&f, FUTURE_VERSION),
            Ok(Message::Future { view: ViewId(1) })
        );
    }

    #[test]
    fn older_messages_decode_with_defaults() {
        // A version-1 STATE has no version-2 fields: it speaks version 1.
        let s = sample_state();
        let bytes = encode_as(&Message::State(s.clone()), 1);
        let Ok(Message::State(d)) = decode(&bytes) else {
            panic!("version-1 STATE did not decode");
        };
        assert_eq!(d.max_version, 1);
        assert!(d.yielding.is_empty() && d.ineligible.is_empty());
        assert_eq!((d.held, d.node), (s.held.clone(), s.node.clone()));
        // A version-1 node reads a version-2 STATE without the new fields and
        // does not know HANDOVER.
        let bytes = encode(&Message::State(s));
        assert!(matches!(decode_as(&bytes, 1), Ok(Message::State(d)) if d.max_version == 1));
        let h = encode(&Message::Handover {
            view: ViewId(1),
            items: vec![],
        });
        assert!(decode_as(&h, 1).unwrap_err().is_newer());
        // A version-1 header cannot carry a version-2 kind.
        let mut bad = h.clone();
        bad[4] = 1;
        assert!(matches!(decode(&bad), Err(WireError::BadValue { .. })));
        // Version 0 does not exist.
        bad[4] = 0;
        assert_eq!(decode(&bad), Err(WireError::OldVersion(0)));
    }

    /// EVICT is a version-3 kind: a version-2 node reads it as a newer
    /// kind (reported, ignored), a version-2 header cannot carry it, and
    /// every version-2 message still decodes in this build.
    #[test]
    fn evict_is_version_3_and_version_2_still_decodes() {
        let e = Message::Evict {
            view: ViewId(4),
            index: 1,
            member: "m1".into(),
        };
        let bytes = encode_as(&e, EVICT_VERSION);
        assert_eq!(decode(&bytes), Ok(e.clone()));
        assert!(matches!(
            decode_as(&bytes, 2),
            Err(WireError::NewerKind {
                kind: KIND_EVICT,
                ..
            })
        ));
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert!(matches!(decode(&v2), Err(WireError::BadValue { .. })));
        // A version-2 node's STATE and hand-over decode unchanged.
        let mut s = sample_state();
        s.max_version = 2;
        let st = encode_as(&Message::State(s.clone()), 2);
        assert_eq!(decode(&st), Ok(Message::State(s)));
        let h = Message::Handover {
            view: ViewId(4),
            items: vec![HandoverItem { vif: 3, seq: 9 }],
        };
        assert_eq!(decode(&encode_as(&h, 2)), Ok(h));
    }

    /// VERDICT is a version-4 kind: a version-3 node reads it as a newer
    /// kind (reported, ignored), a version-3 header cannot carry it, and a
    /// version-3 node's messages still decode in this build.
    #[test]
    fn verdict_is_version_4_and_version_3_still_decodes() {
        let m = Message::Verdict {
            view: ViewId(4),
            missing: vec![1, 2],
        };
        let bytes = encode(&m);
        assert_eq!(bytes[4], VERDICT_VERSION);
        assert_eq!(decode(&bytes), Ok(m));
        let err = decode_as(&bytes, EVICT_VERSION).unwrap_err();
        assert!(err.is_newer(), "{err}");
        let mut v3 = bytes.clone();
        v3[4] = EVICT_VERSION;
        assert!(matches!(decode(&v3), Err(WireError::BadValue { .. })));
        let mut s = sample_state();
        s.max_version = EVICT_VERSION;
        let st = encode_as(&Message::State(s.clone()), EVICT_VERSION);
        assert_eq!(decode(&st), Ok(Message::State(s)));
        let e = Message::Evict {
            view: ViewId(4),
            index: 1,
            member: "m1".into(),
        };
        assert_eq!(decode(&encode_as(&e, EVICT_VERSION)), Ok(e));
    }

    #[test]
    fn names_are_bounded_both_ways() {
        let mut s = sample_state();
        s.node = "é".repeat(200); // 400 bytes
        let bytes = encode(&Message::State(s.clone()));
        let Ok(Message::State(d)) = decode(&bytes) else {
            panic!("long name was not cut on encode");
        };
        assert!(d.node.len() <= MAX_NAME_LEN && s.node.starts_with(&d.node));
        assert_eq!(d.node, bound_name(&s.node));
        // Hand-made bytes with a 300-byte name are refused.
        let mut bytes = MAGIC.to_vec();
        bytes.extend([VERSION, KIND_COMMAND]);
        bytes.extend(0u128.to_le_bytes());
        bytes.push(2);
        bytes.extend(300u16.to_le_bytes());
        bytes.extend([b'a'; 300]);
        assert!(matches!(
            decode(&bytes),
            Err(WireError::TooLong { len: 300, .. })
        ));
    }

    #[test]
    fn foreign_and_trailing_bytes_are_refused() {
        assert_eq!(decode(b"hello world"), Err(WireError::BadMagic));
        assert_eq!(decode(b""), Err(WireError::BadMagic));
        let mut bytes = encode(&Message::Mature { view: ViewId(7) });
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(WireError::Trailing(1)));
        let mut bytes = encode(&Message::Mature { view: ViewId(7) });
        bytes[5] = 99;
        assert_eq!(decode(&bytes), Err(WireError::UnknownKind(99)));
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend([VERSION, KIND_BALANCE]);
        bytes.extend(0u128.to_le_bytes());
        bytes.extend(u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&bytes),
            Err(WireError::Truncated {
                what: "move list",
                ..
            })
        ));
    }
}

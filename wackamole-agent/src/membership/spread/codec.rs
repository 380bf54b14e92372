//! Spread 4.x client wire protocol: pure encoding and decoding, no I/O.
//!
//! Layout and rules follow the project's reference `shared/spread/PROTOCOL.md`
//! (section numbers below refer to it). Every decoder works on byte slices handed in by the
//! caller, never panics on any input and returns a typed [`DecodeError`] that
//! names the field. Every encoder validates its input against the limits of a
//! stock 4.4 daemon, which does not report errors and crashes on some inputs
//! (section 16).

use std::fmt;

/// Size of the message header (section 4).
pub const HEADER_LEN: usize = 48;
/// Every name field on the wire: 31 visible bytes + NUL padding.
pub const NAME_LEN: usize = 32;
/// Longest visible name in a name field.
pub const MAX_NAME_CHARS: usize = NAME_LEN - 1;
/// Longest private name in the connect request (the daemon rejects longer).
pub const MAX_PRIVATE_NAME: usize = 10;
/// Most destination names per message the daemon accepts.
pub const MAX_GROUPS_PER_MESSAGE: usize = 100;
/// `data + 32 * groups` limit a stock 4.4.0 daemon survives (section 9):
/// 143152 makes it SIGSEGV, above that it aborts.
pub const MAX_SAFE_BODY: usize = 143_151;
/// Size of the authentication choice: 3 slots x 30 bytes (section 3.4).
pub const AUTH_CHOICE_LEN: usize = 90;
/// One slot of the authentication choice.
pub const AUTH_NAME_LEN: usize = 30;
/// The version this client announces (section 3.2).
pub const CLIENT_VERSION: (u8, u8, u8) = (4, 4, 0);
/// Marker bits of a little-endian writer in `type` and `hint` (section 6).
pub const ENDIAN_MARKER: u32 = 0x8000_0080;
/// Sanity cap on the names + body of one daemon message; far above anything a
/// 4.4 daemon sends (max 144000 data bytes, at most a few thousand members),
/// it keeps a corrupt length from making us allocate gigabytes.
pub const MAX_FRAME_REST: usize = 16 * 1024 * 1024;
/// Most names (group members, or destination groups) in one daemon message.
/// A wackamole group has one member per node; the frame cap alone would let
/// a corrupt or hostile daemon list ~500 000, and views are compared member
/// by member (old against new), which would hold the agent for minutes.
pub const MAX_NAMES: usize = 4096;

/// Service-type bits of the `type` word (section 5).
pub mod service {
    pub const UNRELIABLE_MESS: u32 = 0x0000_0001;
    pub const RELIABLE_MESS: u32 = 0x0000_0002;
    pub const FIFO_MESS: u32 = 0x0000_0004;
    pub const CAUSAL_MESS: u32 = 0x0000_0008;
    pub const AGREED_MESS: u32 = 0x0000_0010;
    pub const SAFE_MESS: u32 = 0x0000_0020;
    pub const REGULAR_MESS: u32 = 0x0000_003f;
    pub const SELF_DISCARD: u32 = 0x0000_0040;
    pub const CAUSED_BY_JOIN: u32 = 0x0000_0100;
    pub const CAUSED_BY_LEAVE: u32 = 0x0000_0200;
    pub const CAUSED_BY_DISCONNECT: u32 = 0x0000_0400;
    pub const CAUSED_BY_NETWORK: u32 = 0x0000_0800;
    pub const REG_MEMB_MESS: u32 = 0x0000_1000;
    pub const TRANSITION_MESS: u32 = 0x0000_2000;
    pub const MEMBERSHIP_MESS: u32 = 0x0000_3f00;
    pub const JOIN_MESS: u32 = 0x0001_0000;
    pub const LEAVE_MESS: u32 = 0x0002_0000;
    pub const KILL_MESS: u32 = 0x0004_0000;
    /// Daemon internal: sending it makes a 4.4.0 daemon exit.
    pub const GROUPS_MESS: u32 = 0x0008_0000;
    pub const REJECT_MESS: u32 = 0x0040_0000;
}

use service::*;

/// Byte order of the integers of one header (or hint, or body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    /// Decides the writer's order from a word's marker bits: both set means
    /// little endian, both clear big endian; the test is symmetric, so it does
    /// not matter in which order the word itself is read.
    fn of_marked_word(bytes: [u8; 4], field: &'static str) -> Result<Self, DecodeError> {
        match (bytes[0] & 0x80 != 0, bytes[3] & 0x80 != 0) {
            (true, true) => Ok(ByteOrder::Little),
            (false, false) => Ok(ByteOrder::Big),
            _ => Err(DecodeError::EndianMarker { field, bytes }),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    fn put(self, v: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    /// The marker a writer in this order ORs into `type` and `hint`.
    pub fn marker(self) -> u32 {
        match self {
            ByteOrder::Little => ENDIAN_MARKER,
            ByteOrder::Big => 0,
        }
    }
}

/// Spread's error codes (section 10): on-the-wire rejects and libspread's
/// local codes, kept for messages that match the C library's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    IllegalSpread,
    CouldNotConnect,
    RejectQuota,
    RejectNoName,
    RejectIllegalName,
    RejectNotUnique,
    RejectVersion,
    ConnectionClosed,
    RejectAuth,
    IllegalSession,
    IllegalService,
    IllegalMessage,
    IllegalGroup,
    BufferTooShort,
    GroupsTooShort,
    MessageTooLong,
    NetErrorOnSession,
    SpBug,
}

impl ErrorCode {
    /// Maps a numeric code (e.g. a signed reject byte) to its name.
    pub fn from_code(code: i32) -> Option<Self> {
        use ErrorCode::*;
        Some(match code {
            -1 => IllegalSpread,
            -2 => CouldNotConnect,
            -3 => RejectQuota,
            -4 => RejectNoName,
            -5 => RejectIllegalName,
            -6 => RejectNotUnique,
            -7 => RejectVersion,
            -8 => ConnectionClosed,
            -9 => RejectAuth,
            -11 => IllegalSession,
            -12 => IllegalService,
            -13 => IllegalMessage,
            -14 => IllegalGroup,
            -15 => BufferTooShort,
            -16 => GroupsTooShort,
            -17 => MessageTooLong,
            -18 => NetErrorOnSession,
            -19 => SpBug,
            _ => return None,
        })
    }

    /// The numeric value libspread uses.
    pub fn code(self) -> i32 {
        use ErrorCode::*;
        match self {
            IllegalSpread => -1,
            CouldNotConnect => -2,
            RejectQuota => -3,
            RejectNoName => -4,
            RejectIllegalName => -5,
            RejectNotUnique => -6,
            RejectVersion => -7,
            ConnectionClosed => -8,
            RejectAuth => -9,
            IllegalSession => -11,
            IllegalService => -12,
            IllegalMessage => -13,
            IllegalGroup => -14,
            BufferTooShort => -15,
            GroupsTooShort => -16,
            MessageTooLong => -17,
            NetErrorOnSession => -18,
            SpBug => -19,
        }
    }

    /// libspread's constant name.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            IllegalSpread => "ILLEGAL_SPREAD",
            CouldNotConnect => "COULD_NOT_CONNECT",
            RejectQuota => "REJECT_QUOTA",
            RejectNoName => "REJECT_NO_NAME",
            RejectIllegalName => "REJECT_ILLEGAL_NAME",
            RejectNotUnique => "REJECT_NOT_UNIQUE",
            RejectVersion => "REJECT_VERSION",
            ConnectionClosed => "CONNECTION_CLOSED",
            RejectAuth => "REJECT_AUTH",
            IllegalSession => "ILLEGAL_SESSION",
            IllegalService => "ILLEGAL_SERVICE",
            IllegalMessage => "ILLEGAL_MESSAGE",
            IllegalGroup => "ILLEGAL_GROUP",
            BufferTooShort => "BUFFER_TOO_SHORT",
            GroupsTooShort => "GROUPS_TOO_SHORT",
            MessageTooLong => "MESSAGE_TOO_LONG",
            NetErrorOnSession => "NET_ERROR_ON_SESSION",
            SpBug => "SP_BUG",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// A reject byte from the daemon: a known code, or an unknown negative value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject(pub i8);

impl Reject {
    pub fn code(self) -> Option<ErrorCode> {
        ErrorCode::from_code(i32::from(self.0))
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(c) => write!(f, "{c}"),
            None => write!(f, "unknown reject code {}", self.0),
        }
    }
}

/// Why bytes from the daemon could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("daemon rejected the session: {0}")]
    Rejected(Reject),
    #[error("daemon version {0}.{1}.{2} is older than 3.1.0")]
    DaemonTooOld(u8, u8, u8),
    #[error("daemon does not offer NULL authentication (offered {offered:?})")]
    NoNullAuth { offered: String },
    #[error("unexpected accept byte {0:#04x}")]
    BadAcceptByte(u8),
    #[error("{field}: endian marker bits disagree in word {bytes:02x?}")]
    EndianMarker { field: &'static str, bytes: [u8; 4] },
    #[error("{field} is negative ({value})")]
    Negative { field: &'static str, value: i32 },
    #[error("{field} = {value} exceeds the limit {max}")]
    TooLarge {
        field: &'static str,
        value: usize,
        max: usize,
    },
    #[error("{what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{what}: {extra} unexpected bytes after the last field")]
    Trailing { what: &'static str, extra: usize },
    #[error("view: local vs_set offset {offset} does not start a vs_set")]
    BadVsSetOffset { offset: u32 },
    #[error("unknown message type {0:#010x}")]
    UnknownType(u32),
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
}

/// Why a message could not be encoded (the daemon would close the session
/// silently, or crash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{field} {name:?}: {why}")]
    BadName {
        field: &'static str,
        name: String,
        why: &'static str,
    },
    #[error("{count} destination groups, at most {MAX_GROUPS_PER_MESSAGE} allowed")]
    TooManyGroups { count: usize },
    #[error(
        "message too large: {data} data bytes + 32 x {groups} groups = {total} > {MAX_SAFE_BODY} (a 4.4 daemon crashes above)"
    )]
    TooLarge {
        data: usize,
        groups: usize,
        total: usize,
    },
    #[error("illegal service type {0:#010x}: exactly one service bit (plus optional SELF_DISCARD) is allowed")]
    IllegalService(u32),
}

/// The delivery service of a multicast; exactly one bit on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Unreliable,
    Reliable,
    Fifo,
    Causal,
    Agreed,
    Safe,
}

impl Service {
    pub fn bit(self) -> u32 {
        match self {
            Service::Unreliable => UNRELIABLE_MESS,
            Service::Reliable => RELIABLE_MESS,
            Service::Fifo => FIFO_MESS,
            Service::Causal => CAUSAL_MESS,
            Service::Agreed => AGREED_MESS,
            Service::Safe => SAFE_MESS,
        }
    }

    /// The service of a single-bit regular type, if it is one.
    pub fn from_bit(bit: u32) -> Option<Self> {
        Some(match bit {
            UNRELIABLE_MESS => Service::Unreliable,
            RELIABLE_MESS => Service::Reliable,
            FIFO_MESS => Service::Fifo,
            CAUSAL_MESS => Service::Causal,
            AGREED_MESS => Service::Agreed,
            SAFE_MESS => Service::Safe,
            _ => return None,
        })
    }
}

/// Checks a client `type` word (marker cleared) the way the daemon would,
/// and also refuses the bits the daemon does not check but dies on: exactly
/// one of the six services or JOIN/LEAVE/KILL, SELF_DISCARD only with a
/// service, nothing else.
pub fn check_client_type(t: u32) -> Result<(), EncodeError> {
    let t = t & !ENDIAN_MARKER;
    let kinds = (t & (REGULAR_MESS | JOIN_MESS | LEAVE_MESS | KILL_MESS)).count_ones();
    let allowed = REGULAR_MESS | SELF_DISCARD | JOIN_MESS | LEAVE_MESS | KILL_MESS;
    let discard_ok = t & SELF_DISCARD == 0 || t & REGULAR_MESS != 0;
    if kinds == 1 && t & !allowed == 0 && discard_ok {
        Ok(())
    } else {
        Err(EncodeError::IllegalService(t))
    }
}

/// Checks a name for a name field: 1..=`max` bytes, each in `'$'..='~'`
/// (private group names, which may appear as sender or destination, also
/// contain `'#'`).
fn check_name(field: &'static str, name: &str, max: usize) -> Result<(), EncodeError> {
    check_name_bytes(field, name, max, legal_name_byte)
}

/// A group or private group name in a header or destination list.
fn check_any_group(field: &'static str, name: &str) -> Result<(), EncodeError> {
    check_name_bytes(field, name, MAX_NAME_CHARS, |b| {
        b == b'#' || legal_name_byte(b)
    })
}

fn check_name_bytes(
    field: &'static str,
    name: &str,
    max: usize,
    legal: fn(u8) -> bool,
) -> Result<(), EncodeError> {
    let bad = |why| EncodeError::BadName {
        field,
        name: name.to_owned(),
        why,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > max {
        return Err(bad("too long"));
    }
    if !name.bytes().all(legal) {
        return Err(bad(
            "bytes must be in '$'..'~' (no space; '#' only in private groups)",
        ));
    }
    Ok(())
}

fn legal_name_byte(b: u8) -> bool {
    (0x24..=0x7e).contains(&b)
}

/// Validates a group name for JOIN/LEAVE: a legal name not starting with `#`
/// (the daemon treats those as private groups).
pub fn check_group_name(name: &str) -> Result<(), EncodeError> {
    check_name("group name", name, MAX_NAME_CHARS)?;
    if name.starts_with('#') {
        return Err(EncodeError::BadName {
            field: "group name",
            name: name.to_owned(),
            why: "must not start with '#'",
        });
    }
    Ok(())
}

/// Validates the private name of a connect request: 0..=10 legal bytes
/// (empty = the daemon invents one).
pub fn check_private_name(name: &str) -> Result<(), EncodeError> {
    if name.is_empty() {
        return Ok(());
    }
    check_name("private name", name, MAX_PRIVATE_NAME)?;
    if name.starts_with('#') {
        return Err(EncodeError::BadName {
            field: "private name",
            name: name.to_owned(),
            why: "must not start with '#'",
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- handshake

/// The connect request (section 3.2); must go out in ONE write.
pub fn encode_connect_request(
    private_name: &str,
    membership: bool,
    priority: bool,
) -> Result<Vec<u8>, EncodeError> {
    check_private_name(private_name)?;
    let (ma, mi, pa) = CLIENT_VERSION;
    let flags = u8::from(membership) + 16 * u8::from(priority);
    let mut out = Vec::with_capacity(5 + private_name.len());
    out.extend_from_slice(&[ma, mi, pa, flags]);
    // check_private_name bounds the length to 10.
    out.push(private_name.len() as u8);
    out.extend_from_slice(private_name.as_bytes());
    Ok(out)
}

/// A decoded connect request (used to check captures against the encoder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub version: (u8, u8, u8),
    pub membership: bool,
    pub priority: u8,
    pub private_name: String,
}

/// Decodes a 5-byte-layout connect request (libraries >= 3.15).
pub fn decode_connect_request(buf: &[u8]) -> Result<Option<(ConnectRequest, usize)>, DecodeError> {
    let Some(&[ma, mi, pa, flags, n]) = buf.get(..5) else {
        return Ok(None);
    };
    let n = usize::from(n);
    let Some(name) = buf.get(5..5 + n) else {
        return Ok(None);
    };
    Ok(Some((
        ConnectRequest {
            version: (ma, mi, pa),
            membership: flags % 2 == 1,
            priority: flags / 16,
            private_name: String::from_utf8_lossy(name).into_owned(),
        },
        5 + n,
    )))
}

/// The authentication choice for the NULL method (section 3.4).
pub fn encode_auth_choice_null() -> [u8; AUTH_CHOICE_LEN] {
    let mut out = [0u8; AUTH_CHOICE_LEN];
    out[..4].copy_from_slice(b"NULL");
    out
}

/// Decodes the authentication method list (or a reject byte) from the start
/// of the daemon's byte stream. `Ok(None)`: more bytes needed. Returns the
/// offered method names and the number of bytes used.
pub fn decode_auth_list(buf: &[u8]) -> Result<Option<(Vec<String>, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // libspread reads the length as a signed byte: negative = reject code.
    let signed = first as i8;
    if signed < 0 {
        return Err(DecodeError::Rejected(Reject(signed)));
    }
    let len = usize::from(first);
    let Some(list) = buf.get(1..1 + len) else {
        return Ok(None);
    };
    let methods = String::from_utf8_lossy(list)
        .split(' ')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Some((methods, 1 + len)))
}

/// Fails unless NULL is among the offered methods.
pub fn require_null_auth(methods: &[String]) -> Result<(), DecodeError> {
    if methods.iter().any(|m| m == "NULL") {
        Ok(())
    } else {
        Err(DecodeError::NoNullAuth {
            offered: methods.join(" "),
        })
    }
}

/// The daemon's accept block (section 3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub daemon_version: (u8, u8, u8),
    /// `#<private name>#<daemon name>`: the session's identity.
    pub private_group: String,
}

/// Decodes the accept block (or reject byte) that follows the auth choice.
/// `Ok(None)`: more bytes needed.
pub fn decode_accept(buf: &[u8]) -> Result<Option<(Accepted, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    match first as i8 {
        1 => {}
        c if c < 0 => return Err(DecodeError::Rejected(Reject(c))),
        _ => return Err(DecodeError::BadAcceptByte(first)),
    }
    let Some(&[ma, mi, pa, m]) = buf.get(1..5) else {
        return Ok(None);
    };
    if (ma, mi) < (3, 1) {
        return Err(DecodeError::DaemonTooOld(ma, mi, pa));
    }
    let m = usize::from(m);
    if m == 0 || m > MAX_NAME_CHARS {
        return Err(DecodeError::TooLarge {
            field: "private group length",
            value: m,
            max: MAX_NAME_CHARS,
        });
    }
    let Some(name) = buf.get(5..5 + m) else {
        return Ok(None);
    };
    let private_group = String::from_utf8(name.to_vec()).map_err(|_| DecodeError::Invalid {
        field: "private group",
        detail: format!("not UTF-8: {name:02x?}"),
    })?;
    Ok(Some((
        Accepted {
            daemon_version: (ma, mi, pa),
            private_group,
        },
        5 + m,
    )))
}

// ---------------------------------------------------------------- header

/// A decoded 48-byte header (integers already in host order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Order of `type`, `num_groups`, `data_len` (and membership bodies).
    pub order: ByteOrder,
    /// `type` with the marker cleared.
    pub service_type: u32,
    /// Sender's private group (data) or group name (membership messages).
    pub name: String,
    pub num_groups: usize,
    /// The raw hint word; its order is its own (the original sender's).
    pub hint: [u8; 4],
    pub data_len: usize,
}

impl Header {
    /// Bytes that follow the header: reject word + names + body.
    pub fn rest_len(&self) -> usize {
        let reject = if self.service_type & REJECT_MESS != 0 {
            4
        } else {
            0
        };
        reject + self.num_groups * NAME_LEN + self.data_len
    }

    /// `mess_type` and whether the original sender's order differs from
    /// little endian (libspread's `endian_mismatch` on a little-endian host).
    pub fn mess_type(&self) -> Result<(i16, ByteOrder), DecodeError> {
        let order = ByteOrder::of_marked_word(self.hint, "hint")?;
        let hint = order.u32(self.hint) & !ENDIAN_MARKER;
        Ok((((hint >> 8) & 0xffff) as u16 as i16, order))
    }
}

fn word(buf: &[u8], at: usize) -> [u8; 4] {
    let mut w = [0u8; 4];
    if let Some(s) = buf.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    w
}

/// Reads a NUL-padded 32-byte name (visible part up to the first NUL).
fn name_at(buf: &[u8], at: usize) -> String {
    let field = buf.get(at..at + NAME_LEN).unwrap_or(&[]);
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn length(order: ByteOrder, b: [u8; 4], field: &'static str) -> Result<usize, DecodeError> {
    let v = order.u32(b) as i32;
    if v < 0 {
        return Err(DecodeError::Negative { field, value: v });
    }
    Ok(v as usize)
}

/// Decodes a header from the first 48 bytes of `buf`.
pub fn decode_header(buf: &[u8]) -> Result<Header, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            what: "header",
            need: HEADER_LEN,
            have: buf.len(),
        });
    }
    let type_bytes = word(buf, 0);
    let order = ByteOrder::of_marked_word(type_bytes, "type")?;
    let service_type = order.u32(type_bytes) & !ENDIAN_MARKER;
    let num_groups = length(order, word(buf, 36), "num_groups")?;
    if num_groups > MAX_NAMES {
        return Err(DecodeError::TooLarge {
            field: "num_groups",
            value: num_groups,
            max: MAX_NAMES,
        });
    }
    let data_len = length(order, word(buf, 44), "data_len")?;
    let header = Header {
        order,
        service_type,
        name: name_at(buf, 4),
        num_groups,
        hint: word(buf, 40),
        data_len,
    };
    // num_groups and data_len are each < 2^31, so this sum cannot overflow.
    let rest = header.rest_len();
    if rest > MAX_FRAME_REST {
        return Err(DecodeError::TooLarge {
            field: "names + data_len",
            value: rest,
            max: MAX_FRAME_REST,
        });
    }
    Ok(header)
}

/// Writes a header in `order`, marking `type` and `hint`.
fn put_header(
    out: &mut Vec<u8>,
    order: ByteOrder,
    service_type: u32,
    sender: &str,
    num_groups: usize,
    mess_type: i16,
    data_len: usize,
) {
    let marker = order.marker();
    out.extend_from_slice(&order.put(service_type | marker));
    put_name(out, sender);
    out.extend_from_slice(&order.put(num_groups as u32));
    let hint = ((i32::from(mess_type) << 8) as u32 & 0x00ff_ff00) | marker;
    out.extend_from_slice(&order.put(hint));
    out.extend_from_slice(&order.put(data_len as u32));
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    let mut field = [0u8; NAME_LEN];
    let n = name.len().min(MAX_NAME_CHARS);
    field[..n].copy_from_slice(&name.as_bytes()[..n]);
    out.extend_from_slice(&field);
}

// ---------------------------------------------------------------- client -> daemon

/// A message a client sends (section 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    Multicast {
        service: Service,
        self_discard: bool,
        groups: Vec<String>,
        mess_type: i16,
        data: Vec<u8>,
    },
    Join(String),
    Leave(String),
    /// Disconnect: the only name is the session's own private group.
    Kill,
}

/// Encodes `msg` as sent by the session whose private group is
/// `private_group`, with integers in `order` (libspread on x86: Little).
pub fn encode_client(
    order: ByteOrder,
    private_group: &str,
    msg: &ClientMessage,
) -> Result<Vec<u8>, EncodeError> {
    check_any_group("private group", private_group)?;
    let (t, names, mess_type, data): (u32, Vec<&str>, i16, &[u8]) = match msg {
        ClientMessage::Multicast {
            service,
            self_discard,
            groups,
            mess_type,
            data,
        } => {
            if groups.len() > MAX_GROUPS_PER_MESSAGE {
                return Err(EncodeError::TooManyGroups {
                    count: groups.len(),
                });
            }
            for g in groups {
                check_any_group("destination", g)?;
            }
            let total = data.len().saturating_add(NAME_LEN * groups.len());
            if total > MAX_SAFE_BODY {
                return Err(EncodeError::TooLarge {
                    data: data.len(),
                    groups: groups.len(),
                    total,
                });
            }
            let discard = if *self_discard { SELF_DISCARD } else { 0 };
            (
                service.bit() | discard,
                groups.iter().map(String::as_str).collect(),
                *mess_type,
                data,
            )
        }
        ClientMessage::Join(g) => {
            check_group_name(g)?;
            (JOIN_MESS, vec![g.as_str()], 0, &[])
        }
        ClientMessage::Leave(g) => {
            check_group_name(g)?;
            (LEAVE_MESS, vec![g.as_str()], 0, &[])
        }
        ClientMessage::Kill => (KILL_MESS, vec![private_group], 0, &[]),
    };
    check_client_type(t)?;
    let mut out = Vec::with_capacity(HEADER_LEN + NAME_LEN * names.len() + data.len());
    put_header(
        &mut out,
        order,
        t,
        private_group,
        names.len(),
        mess_type,
        data.len(),
    );
    for n in names {
        put_name(&mut out, n);
    }
    out.extend_from_slice(data);
    Ok(out)
}

/// Decodes one client message (what the daemon reads) from the start of
/// `buf`; used to check captures and in round-trip tests. Returns the
/// message, its header order, the sender field and the bytes used.
pub fn decode_client(
    buf: &[u8],
) -> Result<Option<(ClientMessage, ByteOrder, String, usize)>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let h = decode_header(buf)?;
    let total = HEADER_LEN + h.num_groups * NAME_LEN + h.data_len;
    if buf.len() < total {
        return Ok(None);
    }
    let names: Vec<String> = (0..h.num_groups)
        .map(|i| name_at(buf, HEADER_LEN + i * NAME_LEN))
        .collect();
    let data = buf
        .get(HEADER_LEN + h.num_groups * NAME_LEN..total)
        .unwrap_or(&[])
        .to_vec();
    let t = h.service_type;
    check_client_type(t).map_err(|e| DecodeError::Invalid {
        field: "client type",
        detail: e.to_string(),
    })?;
    let one = |kind: &'static str| -> Result<String, DecodeError> {
        match names.as_slice() {
            [g] if h.data_len == 0 => Ok(g.clone()),
            _ => Err(DecodeError::Invalid {
                field: kind,
                detail: format!("{} names, {} data bytes", names.len(), h.data_len),
            }),
        }
    };
    let msg = if t & JOIN_MESS != 0 {
        ClientMessage::Join(one("join")?)
    } else if t & LEAVE_MESS != 0 {
        ClientMessage::Leave(one("leave")?)
    } else if t & KILL_MESS != 0 {
        one("kill")?;
        ClientMessage::Kill
    } else {
        let (mess_type, _) = h.mess_type()?;
        let service = Service::from_bit(t & REGULAR_MESS).ok_or(DecodeError::UnknownType(t))?;
        ClientMessage::Multicast {
            service,
            self_discard: t & SELF_DISCARD != 0,
            groups: names,
            mess_type,
            data,
        }
    };
    Ok(Some((msg, h.order, h.name, total)))
}

// ---------------------------------------------------------------- daemon -> client

/// A group id (section 8.3): the daemon ring that formed the view plus a
/// per-group change counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId {
    /// IPv4 address (as integer) of the daemon that formed the ring.
    pub proc_id: u32,
    /// That ring's creation time (daemon clock, seconds).
    pub time: u32,
    /// 1 after a network change, +1 per join/leave/disconnect.
    pub index: u32,
}

impl GroupId {
    /// The three words packed into one number: proc_id, time, index from the
    /// most to the least significant 32 bits.
    pub fn to_u128(self) -> u128 {
        (u128::from(self.proc_id) << 64) | (u128::from(self.time) << 32) | u128::from(self.index)
    }

    fn decode(order: ByteOrder, buf: &[u8], what: &'static str) -> Result<Self, DecodeError> {
        if buf.len() < 12 {
            return Err(DecodeError::Truncated {
                what,
                need: 12,
                have: buf.len(),
            });
        }
        Ok(GroupId {
            proc_id: order.u32(word(buf, 0)),
            time: order.u32(word(buf, 4)),
            index: order.u32(word(buf, 8)),
        })
    }

    fn put(self, order: ByteOrder, out: &mut Vec<u8>) {
        for v in [self.proc_id, self.time, self.index] {
            out.extend_from_slice(&order.put(v));
        }
    }
}

/// Why a regular view was installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViewCause {
    Join,
    Leave,
    Disconnect,
    Network,
}

impl ViewCause {
    fn bit(self) -> u32 {
        match self {
            ViewCause::Join => CAUSED_BY_JOIN,
            ViewCause::Leave => CAUSED_BY_LEAVE,
            ViewCause::Disconnect => CAUSED_BY_DISCONNECT,
            ViewCause::Network => CAUSED_BY_NETWORK,
        }
    }

    fn from_type(t: u32) -> Result<Self, DecodeError> {
        let causes =
            t & (CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT | CAUSED_BY_NETWORK);
        Ok(match causes {
            CAUSED_BY_JOIN => ViewCause::Join,
            CAUSED_BY_LEAVE => ViewCause::Leave,
            CAUSED_BY_DISCONNECT => ViewCause::Disconnect,
            CAUSED_BY_NETWORK => ViewCause::Network,
            _ => {
                return Err(DecodeError::Invalid {
                    field: "view cause",
                    detail: format!("type {t:#010x} needs exactly one CAUSED_BY bit"),
                })
            }
        })
    }
}

/// A data message as delivered (section 8.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataMessage {
    /// The sender's service bits (marker cleared), SELF_DISCARD included.
    pub service_type: u32,
    /// The sender's private group name.
    pub sender: String,
    /// The destinations exactly as the sender wrote them.
    pub groups: Vec<String>,
    pub mess_type: i16,
    /// The original sender's byte order (from the hint).
    pub sender_order: ByteOrder,
    pub payload: Vec<u8>,
}

/// A regular membership message (section 8.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegularView {
    pub group: String,
    pub cause: ViewCause,
    pub group_id: GroupId,
    /// All members' private group names, in the daemon's order (identical at
    /// every member).
    pub members: Vec<String>,
    /// Virtual-synchrony sets; lightweight views carry the changed member.
    pub vs_sets: Vec<Vec<String>>,
    /// Index into `vs_sets` of the receiver's own set.
    pub local_vs_set: usize,
}

/// A rejected multicast/join/leave (section 8.6; source only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The original type after the daemon's processing (marker cleared).
    pub old_type: u32,
    pub sender: String,
    pub groups: Vec<String>,
    pub mess_type: i16,
    pub payload: Vec<u8>,
}

/// Everything a daemon sends after the handshake (section 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonMessage {
    Data(DataMessage),
    View(RegularView),
    /// The group's current view is ending; carries the previous group id.
    Transitional {
        group: String,
        group_id: GroupId,
    },
    /// My own leave was ordered; nothing more for that group follows.
    SelfLeave {
        group: String,
    },
    Reject(Rejected),
}

/// Decodes one daemon message from the start of `buf`. `Ok(None)`: the
/// buffer does not yet hold a whole message. Otherwise returns the message
/// and the bytes it used.
pub fn decode_daemon(buf: &[u8]) -> Result<Option<(DaemonMessage, usize)>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let h = decode_header(buf)?;
    let total = HEADER_LEN + h.rest_len();
    let Some(rest) = buf.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    Ok(Some((decode_daemon_body(&h, rest)?, total)))
}

/// Decodes the part after the header (`rest` must be `h.rest_len()` bytes).
pub fn decode_daemon_body(h: &Header, rest: &[u8]) -> Result<DaemonMessage, DecodeError> {
    if rest.len() != h.rest_len() {
        return Err(DecodeError::Truncated {
            what: "message after header",
            need: h.rest_len(),
            have: rest.len(),
        });
    }
    let t = h.service_type;
    let names_at = |start: usize| -> Vec<String> {
        (0..h.num_groups)
            .map(|i| name_at(rest, start + i * NAME_LEN))
            .collect()
    };
    if t & REJECT_MESS != 0 {
        let old_type = h.order.u32(word(rest, 0)) & !ENDIAN_MARKER;
        let groups = names_at(4);
        let (mess_type, _) = h.mess_type()?;
        let payload = rest
            .get(4 + h.num_groups * NAME_LEN..)
            .unwrap_or(&[])
            .to_vec();
        return Ok(DaemonMessage::Reject(Rejected {
            old_type,
            sender: h.name.clone(),
            groups,
            mess_type,
            payload,
        }));
    }
    let body = rest.get(h.num_groups * NAME_LEN..).unwrap_or(&[]);
    if t & REGULAR_MESS != 0 {
        let (mess_type, sender_order) = h.mess_type()?;
        return Ok(DaemonMessage::Data(DataMessage {
            service_type: t,
            sender: h.name.clone(),
            groups: names_at(0),
            mess_type,
            sender_order,
            payload: body.to_vec(),
        }));
    }
    if t & REG_MEMB_MESS != 0 {
        return decode_view(h, names_at(0), body).map(DaemonMessage::View);
    }
    if t & TRANSITION_MESS != 0 {
        let group_id = GroupId::decode(h.order, body, "transitional group_id")?;
        return Ok(DaemonMessage::Transitional {
            group: h.name.clone(),
            group_id,
        });
    }
    if t & CAUSED_BY_LEAVE != 0 {
        return Ok(DaemonMessage::SelfLeave {
            group: h.name.clone(),
        });
    }
    Err(DecodeError::UnknownType(t))
}

fn decode_view(h: &Header, members: Vec<String>, body: &[u8]) -> Result<RegularView, DecodeError> {
    let cause = ViewCause::from_type(h.service_type)?;
    let group_id = GroupId::decode(h.order, body, "view group_id")?;
    if body.len() < 20 {
        return Err(DecodeError::Truncated {
            what: "view body",
            need: 20,
            have: body.len(),
        });
    }
    let num_sets = h.order.u32(word(body, 12)) as usize;
    let local_offset = h.order.u32(word(body, 16));
    let sets_area = body.get(20..).unwrap_or(&[]);
    // Each set needs at least its 4-byte count; bounds the loop.
    if num_sets > sets_area.len() / 4 {
        return Err(DecodeError::TooLarge {
            field: "num_vs_sets",
            value: num_sets,
            max: sets_area.len() / 4,
        });
    }
    let mut vs_sets = Vec::with_capacity(num_sets);
    let mut local_vs_set = None;
    let mut at = 0usize;
    for _ in 0..num_sets {
        if at as u64 == u64::from(local_offset) {
            local_vs_set = Some(vs_sets.len());
        }
        let count_word = sets_area.get(at..at + 4).ok_or(DecodeError::Truncated {
            what: "vs_set count",
            need: at + 4,
            have: sets_area.len(),
        })?;
        let count = h.order.u32(word(count_word, 0)) as usize;
        let need = count
            .checked_mul(NAME_LEN)
            .and_then(|n| n.checked_add(at + 4))
            .filter(|&n| n <= sets_area.len())
            .ok_or(DecodeError::Truncated {
                what: "vs_set members",
                need: at + 4 + count.saturating_mul(NAME_LEN),
                have: sets_area.len(),
            })?;
        let set = (0..count)
            .map(|i| name_at(sets_area, at + 4 + i * NAME_LEN))
            .collect();
        vs_sets.push(set);
        at = need;
    }
    if at != sets_area.len() {
        return Err(DecodeError::Trailing {
            what: "view body",
            extra: sets_area.len() - at,
        });
    }
    let local_vs_set = match local_vs_set {
        Some(i) => i,
        None => {
            return Err(DecodeError::BadVsSetOffset {
                offset: local_offset,
            })
        }
    };
    Ok(RegularView {
        group: h.name.clone(),
        cause,
        group_id,
        members,
        vs_sets,
        local_vs_set,
    })
}

/// Encodes a daemon message in `order` (what a daemon of that byte order
/// sends). Used by round-trip tests and test daemons; `hint_order` is the
/// original sender's order for data and reject messages.
pub fn encode_daemon(order: ByteOrder, hint_order: ByteOrder, msg: &DaemonMessage) -> Vec<u8> {
    let mut out = Vec::new();
    let marker = order.marker();
    let header = |t: u32, name: &str, n: usize, hint: [u8; 4], len: usize, out: &mut Vec<u8>| {
        out.extend_from_slice(&order.put(t | marker));
        put_name(out, name);
        out.extend_from_slice(&order.put(n as u32));
        out.extend_from_slice(&hint);
        out.extend_from_slice(&order.put(len as u32));
    };
    let hint_of = |mess_type: i16, o: ByteOrder| {
        o.put(((i32::from(mess_type) << 8) as u32 & 0x00ff_ff00) | o.marker())
    };
    let plain_hint = order.put(marker);
    match msg {
        DaemonMessage::Data(d) => {
            header(
                d.service_type,
                &d.sender,
                d.groups.len(),
                hint_of(d.mess_type, hint_order),
                d.payload.len(),
                &mut out,
            );
            for g in &d.groups {
                put_name(&mut out, g);
            }
            out.extend_from_slice(&d.payload);
        }
        DaemonMessage::View(v) => {
            let mut body = Vec::new();
            v.group_id.put(order, &mut body);
            body.extend_from_slice(&order.put(v.vs_sets.len() as u32));
            let offset: usize = v
                .vs_sets
                .iter()
                .take(v.local_vs_set)
                .map(|s| 4 + NAME_LEN * s.len())
                .sum();
            body.extend_from_slice(&order.put(offset as u32));
            for s in &v.vs_sets {
                body.extend_from_slice(&order.put(s.len() as u32));
                for m in s {
                    put_name(&mut body, m);
                }
            }
            header(
                REG_MEMB_MESS | v.cause.bit(),
                &v.group,
                v.members.len(),
                plain_hint,
                body.len(),
                &mut out,
            );
            for m in &v.members {
                put_name(&mut out, m);
            }
            out.extend_from_slice(&body);
        }
        DaemonMessage::Transitional { group, group_id } => {
            header(TRANSITION_MESS, group, 0, plain_hint, 12, &mut out);
            group_id.put(order, &mut out);
        }
        DaemonMessage::SelfLeave { group } => {
            header(CAUSED_BY_LEAVE, group, 0, plain_hint, 0, &mut out);
        }
        DaemonMessage::Reject(r) => {
            header(
                REJECT_MESS,
                &r.sender,
                r.groups.len(),
                hint_of(r.mess_type, hint_order),
                r.payload.len(),
                &mut out,
            );
            out.extend_from_slice(&order.put(r.old_type | marker));
            for g in &r.groups {
                put_name(&mut out, g);
            }
            out.extend_from_slice(&r.payload);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_type_rules_match_the_daemon() {
        assert!(check_client_type(AGREED_MESS).is_ok());
        assert!(check_client_type(SAFE_MESS | SELF_DISCARD).is_ok());
        assert!(check_client_type(JOIN_MESS | ENDIAN_MARKER).is_ok());
        assert!(check_client_type(AGREED_MESS | SAFE_MESS).is_err());
        assert!(check_client_type(JOIN_MESS | AGREED_MESS).is_err());
        assert!(check_client_type(SELF_DISCARD).is_err());
        assert!(check_client_type(JOIN_MESS | SELF_DISCARD).is_err());
        assert!(check_client_type(0).is_err());
        assert!(check_client_type(AGREED_MESS | GROUPS_MESS).is_err());
    }

    #[test]
    fn size_limit_is_the_crash_free_one() {
        let msg = |n| ClientMessage::Multicast {
            service: Service::Agreed,
            self_discard: false,
            groups: vec!["g".into()],
            mess_type: 0,
            data: vec![0; n],
        };
        assert!(encode_client(ByteOrder::Little, "#a#d", &msg(MAX_SAFE_BODY - 32)).is_ok());
        assert!(matches!(
            encode_client(ByteOrder::Little, "#a#d", &msg(MAX_SAFE_BODY - 31)),
            Err(EncodeError::TooLarge { total: 143_152, .. })
        ));
    }

    #[test]
    fn names_are_validated() {
        assert!(check_group_name("demo").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("#priv").is_err());
        assert!(check_group_name("has space").is_err());
        assert!(check_group_name(&"x".repeat(32)).is_err());
        assert!(check_group_name(&"x".repeat(31)).is_ok());
        assert!(check_private_name("").is_ok());
        assert!(check_private_name("$ok").is_ok());
        assert!(check_private_name("abcdefghijk").is_err());
        assert!(encode_connect_request("abcdefghij", true, false).is_ok());
        let groups = vec!["g".to_string(); 101];
        let m = ClientMessage::Multicast {
            service: Service::Agreed,
            self_discard: false,
            groups,
            mess_type: 0,
            data: vec![],
        };
        assert!(matches!(
            encode_client(ByteOrder::Little, "#a#d", &m),
            Err(EncodeError::TooManyGroups { count: 101 })
        ));
    }

    #[test]
    fn a_header_naming_more_than_max_names_is_refused() {
        let header = |n| {
            let mut h = Vec::new();
            put_header(&mut h, ByteOrder::Little, REG_MEMB_MESS, "g", n, 0, 0);
            decode_header(&h)
        };
        assert_eq!(header(MAX_NAMES).map(|h| h.num_groups), Ok(MAX_NAMES));
        assert_eq!(
            header(MAX_NAMES + 1).map(|h| h.num_groups),
            Err(DecodeError::TooLarge {
                field: "num_groups",
                value: MAX_NAMES + 1,
                max: MAX_NAMES
            })
        );
    }

    #[test]
    fn mixed_marker_is_an_error() {
        let mut h = [0u8; HEADER_LEN];
        h[0] = 0x80;
        assert!(matches!(
            decode_header(&h),
            Err(DecodeError::EndianMarker { field: "type", .. })
        ));
    }

    #[test]
    fn reject_bytes_map_to_codes() {
        assert_eq!(
            decode_auth_list(&[0xfa]),
            Err(DecodeError::Rejected(Reject(-6)))
        );
        assert_eq!(Reject(-6).code(), Some(ErrorCode::RejectNotUnique));
        assert_eq!(
            decode_accept(&[0xf7]),
            Err(DecodeError::Rejected(Reject(-9)))
        );
        for c in -19..=-1 {
            if let Some(e) = ErrorCode::from_code(c) {
                assert_eq!(e.code(), c);
            }
        }
    }

    #[test]
    fn group_id_packs_most_significant_first() {
        let g = GroupId {
            proc_id: 1,
            time: 2,
            index: 3,
        };
        assert_eq!(g.to_u128(), (1u128 << 64) | (2u128 << 32) | 3);
    }
}

//! Importer for the old `wackamole.conf` (wackamole 2.1.4 grammar): prints
//! the equivalent `wackamole.toml`.
//!
//! The grammar, as its flex/yacc files define it:
//! - `#` starts a comment to the end of the line; tokens are separated by
//!   white space and `{` `}` (so `Spread=4803` is one word, and an error).
//! - Keywords are case-insensitive whole words. Time values are
//!   `[0-9]+[smh]`: `m` is minutes; 2.1.4 read `h` as *seconds* (a bug), we
//!   read hours and say so in a note. There is no `ms`.
//! - Addresses are `[iface:]a.b.c.d/prefix[nBITS]`; an address without
//!   `/prefix` is a plain word.
//! - Directives: `Spread = PORT[@HOST]`, `SpreadRetryInterval = T`,
//!   `Group = NAME`, `Control = PATH`, `LogFacility = X` (ignored by 2.1.4),
//!   `Mature = T`, `Arp-Cache = T`, `Balance { AcquisitionsPerRound = N|all
//!   Interval = T }`, `Notify arp-cache | none | { ADDR [throttle N] [ping]
//!   | arp-cache [ping] ... }`, `Prefer None | ADDR | NAME | { ADDR ... }`,
//!   `VirtualInterfaces|VIFs|VIPs { ADDR | { ADDR ADDR ... } ... }`,
//!   `ModuleDir = DIR`, `PerlUseLib DIR`, `PerlUse MODULE`,
//!   `RunDynamic MODULE:FUNC on|post up|down`.
//!
//! What has no equivalent (loadable modules, embedded Perl, `ping`, a TCP
//! control socket) becomes a [`Note`] with its line: the TOML is still
//! printed, and the notes say what to do (e.g. move a module to `[hooks]`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use super::duration::format_duration;
use super::validate::shown;
use super::InterfaceCheck;

/// A problem that stops the import: bad syntax or a value with no valid
/// translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyError {
    /// File name as given.
    pub file: String,
    /// 1-based line (0 when the file could not be read at all).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LegacyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = super::file_label(&self.file);
        if self.line == 0 {
            write!(f, "{file}: {}", self.message)
        } else {
            write!(f, "{file}:{}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for LegacyError {}

/// Something carried over differently, or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line of the old directive.
    pub line: usize,
    /// What happened to it and what to do.
    pub message: String,
}

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The equivalent `wackamole.toml` text (validates with
    /// [`super::parse`], interface existence aside).
    pub toml: String,
    /// What needs attention, in line order (also written as comments at the
    /// top of `toml`).
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            '{' => out.push(Token {
                tok: Tok::Open,
                line,
            }),
            '}' => out.push(Token {
                tok: Tok::Close,
                line,
            }),
            '"' | '\'' => {
                let start = line;
                let mut s = String::new();
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == c {
                        closed = true;
                        break;
                    }
                    if n == '\n' {
                        line += 1;
                    }
                    s.push(n);
                }
                if !closed {
                    return Err((
                        start,
                        format!("unterminated quoted string starting with {c}"),
                    ));
                }
                out.push(Token {
                    tok: Tok::Quoted(s),
                    line: start,
                });
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | '#') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push(Token {
                    tok: Tok::Word(s),
                    line,
                });
            }
        }
    }
    Ok(out)
}

/// `[iface:]a.b.c.d/prefix[nBITS]` as the old lexer read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OldAddr {
    iface: String,
    addr: Ipv4Addr,
    prefix: u8,
    network: Option<u8>,
}

impl OldAddr {
    fn network_mask(&self) -> u32 {
        mask(self.prefix)
    }
}

fn mask(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits.min(32)))
    }
}

/// Ok(None): not address-shaped (a plain word). Err: address-shaped but
/// invalid ("Invalid IP" in 2.1.4).
fn old_addr(word: &str) -> Result<Option<OldAddr>, String> {
    let (iface, rest) = match word.split_once(':') {
        Some((i, r)) => (i, r),
        None => ("", word),
    };
    let Some((quad, tail)) = rest.split_once('/') else {
        return Ok(None);
    };
    let octets: Vec<&str> = quad.split('.').collect();
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if octets.len() != 4 || !octets.iter().all(|o| digits(o, 3)) {
        return Ok(None);
    }
    let (pfx, net) = match tail.split_once('n') {
        Some((p, n)) => (p, Some(n)),
        None => (tail, None),
    };
    if !digits(pfx, 2) || net.is_some_and(|n| !digits(n, 2)) {
        return Ok(None);
    }
    let mut o = [0u8; 4];
    for (k, s) in octets.iter().enumerate() {
        o[k] = s
            .parse()
            .map_err(|_| format!("invalid IP in {}: octet {s} is over 255", shown(word)))?;
    }
    let prefix: u8 = pfx
        .parse()
        .map_err(|_| format!("invalid IP in {}", shown(word)))?;
    if prefix > 32 {
        return Err(format!(
            "invalid IP in {}: /{prefix} is over 32",
            shown(word)
        ));
    }
    let network = match net {
        None => None,
        Some(n) => {
            let v: u8 = n
                .parse()
                .map_err(|_| format!("invalid IP in {}", shown(word)))?;
            if v > 32 {
                return Err(format!("invalid IP in {}: n{v} is over 32", shown(word)));
            }
            Some(v)
        }
    };
    if iface.is_empty() && word.contains(':') {
        return Err(format!("{}: empty interface name before ':'", shown(word)));
    }
    Ok(Some(OldAddr {
        iface: iface.to_string(),
        addr: Ipv4Addr::from(o),
        prefix,
        network,
    }))
}

/// `[0-9]+[sSmMhH]`.
fn old_time(word: &str) -> Option<(u64, char)> {
    let unit = word.chars().last()?;
    let num = &word[..word.len() - unit.len_utf8()];
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    match unit.to_ascii_lowercase() {
        u @ ('s' | 'm' | 'h') => Some((n, u)),
        _ => None,
    }
}

struct Parser<'a> {
    file: &'a str,
    toks: Vec<Token>,
    pos: usize,
    out: Legacy,
}

/// What the old file said; each value with the line it came from, so a
/// value the new format refuses is reported at its old line.
#[derive(Default)]
struct Legacy {
    spread: Option<(usize, String)>,
    retry: Option<(usize, Duration)>,
    group: Option<(usize, String)>,
    control: Option<(usize, String)>,
    mature: Option<(usize, Duration)>,
    arp_interval: Option<(usize, Duration)>,
    acquisitions: Option<(usize, u32)>,
    acquisitions_all: bool,
    balance_interval: Option<(usize, Duration)>,
    arp_cache: bool,
    targets: Vec<(usize, OldAddr, u32)>,
    prefer: Vec<(usize, PreferSpec)>,
    vifs: Vec<(usize, Vec<(usize, OldAddr)>)>,
    hooks: Vec<(usize, &'static str, String)>,
    notes: Vec<Note>,
}

enum PreferSpec {
    Network(OldAddr),
    Name(String),
}

fn kw(word: &str) -> String {
    word.to_ascii_lowercase()
}

impl<'a> Parser<'a> {
    fn err<T>(&self, line: usize, message: impl Into<String>) -> Result<T, LegacyError> {
        Err(LegacyError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        })
    }

    fn note(&mut self, line: usize, message: impl Into<String>) {
        self.out.notes.push(Note {
            line,
            message: message.into(),
        });
    }

    fn last_line(&self) -> usize {
        self.toks.last().map(|t| t.line).unwrap_or(1)
    }

    fn next(&mut self, what: &str) -> Result<Token, LegacyError> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => self.err(
                self.last_line(),
                format!("unexpected end of file: expected {what}"),
            ),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn expect_open(&mut self, after: &str) -> Result<(), LegacyError> {
        let t = self.next(&format!("'{{' after {after}"))?;
        if t.tok != Tok::Open {
            return self.err(
                t.line,
                format!("expected '{{' after {after}, found {}", show(&t.tok)),
            );
        }
        Ok(())
    }

    fn expect_equals(&mut self, key: &str) -> Result<usize, LegacyError> {
        let t = self.next(&format!("'=' after {key}"))?;
        match &t.tok {
            Tok::Word(w) if w == "=" => Ok(t.line),
            other => self.err(
                t.line,
                format!(
                    "expected '=' after {key} (with spaces around it), found {}",
                    show(other)
                ),
            ),
        }
    }

    /// A string value: a plain word or a quoted string.
    fn string_value(&mut self, key: &str) -> Result<(usize, String), LegacyError> {
        let t = self.next(&format!("a value for {key}"))?;
        match t.tok {
            Tok::Word(w) if w != "=" => Ok((t.line, w)),
            Tok::Quoted(q) => Ok((t.line, q)),
            other => self.err(
                t.line,
                format!("expected a value for {key}, found {}", show(&other)),
            ),
        }
    }

    fn time_value(&mut self, key: &str) -> Result<Duration, LegacyError> {
        self.expect_equals(key)?;
        let t = self.next(&format!("a time for {key}"))?;
        let word = match &t.tok {
            Tok::Word(w) => w.clone(),
            other => {
                return self.err(
                    t.line,
                    format!(
                        "expected a time such as 5s for {key}, found {}",
                        show(other)
                    ),
                )
            }
        };
        match old_time(&word) {
            Some((n, 's')) => Ok(Duration::from_secs(n)),
            Some((n, 'm')) => Ok(Duration::from_secs(n.saturating_mul(60))),
            Some((n, _)) => {
                self.note(
                    t.line,
                    format!("{key} = {word}: wackamole 2.1.4 read the 'h' unit as seconds; imported as {n} hours"),
                );
                Ok(Duration::from_secs(n.saturating_mul(3600)))
            }
            None => self.err(
                t.line,
                format!(
                    "{key}: {} is not a time (a number with unit s, m or h, e.g. 5s)",
                    shown(&word)
                ),
            ),
        }
    }

    fn addr_token(&self, t: &Token) -> Result<Option<OldAddr>, LegacyError> {
        match &t.tok {
            Tok::Word(w) => match old_addr(w) {
                Err(m) => self.err(t.line, m),
                Ok(Some(a))
                    if !a.iface.is_empty() && super::address::check_ifname(&a.iface).is_err() =>
                {
                    self.err(
                        t.line,
                        format!(
                            "{}: {} is not an interface name (1..={} bytes, no '/' or white space)",
                            shown(w),
                            shown(&a.iface),
                            super::address::MAX_IFNAME
                        ),
                    )
                }
                Ok(a) => Ok(a),
            },
            _ => Ok(None),
        }
    }

    fn parse(&mut self) -> Result<(), LegacyError> {
        while let Some(t) = self.peek().cloned() {
            self.pos += 1;
            let word = match &t.tok {
                Tok::Word(w) => w.clone(),
                other => {
                    return self.err(
                        t.line,
                        format!("expected a directive, found {}", show(other)),
                    )
                }
            };
            let line = t.line;
            match kw(&word).as_str() {
                "spread" => {
                    self.expect_equals("Spread")?;
                    let (_, v) = self.string_value("Spread")?;
                    if super::validate::parse_spread_daemon(&toml::Value::String(v.clone()))
                        .is_err()
                    {
                        return self.err(
                            line,
                            format!(
                                "Spread = {}: expected PORT or PORT@HOST (e.g. 4803@127.0.0.1)",
                                shown(&v)
                            ),
                        );
                    }
                    self.out.spread = Some((line, v));
                }
                "spreadretryinterval" => {
                    self.out.retry = Some((line, self.time_value("SpreadRetryInterval")?))
                }
                "group" => {
                    self.expect_equals("Group")?;
                    let (_, g) = self.string_value("Group")?;
                    if g.is_empty()
                        || g.len() > 31
                        || g.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        return self.err(
                            line,
                            format!(
                                "Group = {}: not a valid Spread group name (1..=31 bytes, no spaces)",
                                shown(&g)
                            ),
                        );
                    }
                    self.out.group = Some((line, g));
                }
                "logfacility" => {
                    self.expect_equals("LogFacility")?;
                    self.string_value("LogFacility")?;
                    self.note(line, "LogFacility dropped (wackamole 2.1.4 ignored it too); set [log] level instead");
                }
                "control" => {
                    self.expect_equals("Control")?;
                    let (_, c) = self.string_value("Control")?;
                    if !c.starts_with('/') {
                        self.note(
                            line,
                            format!("Control = {}: only an absolute unix socket path is supported; using the default control_socket", shown(&c)),
                        );
                    } else {
                        self.out.control = Some((line, c));
                    }
                }
                "mature" => self.out.mature = Some((line, self.time_value("Mature")?)),
                "arp-cache" => self.out.arp_interval = Some((line, self.time_value("Arp-Cache")?)),
                "balance" => self.balance()?,
                "notify" => self.notify(line)?,
                "prefer" => self.prefer(line)?,
                "virtualinterfaces" | "vifs" | "vips" => self.vifs(&word)?,
                "moduledir" => {
                    self.expect_equals("ModuleDir")?;
                    self.string_value("ModuleDir")?;
                    self.note(
                        line,
                        "ModuleDir dropped: loadable modules are replaced by [hooks] programs",
                    );
                }
                "perluselib" | "perluse" => {
                    self.string_value(&word)?;
                    self.note(
                        line,
                        format!("{word} dropped: embedded Perl is replaced by [hooks] programs"),
                    );
                }
                "rundynamic" => self.run_dynamic(line)?,
                "=" => return self.err(line, "unexpected '='"),
                _ => {
                    if let Some((k, _)) = word.split_once('=') {
                        return self.err(
                            line,
                            format!(
                                "{}: write spaces around '=' (e.g. {} = ...)",
                                shown(&word),
                                shown(k)
                            ),
                        );
                    }
                    return self.err(line, format!("unknown directive {}", shown(&word)));
                }
            }
        }
        Ok(())
    }

    fn balance(&mut self) -> Result<(), LegacyError> {
        self.expect_open("Balance")?;
        let mut any = false;
        loop {
            let t = self.next("AcquisitionsPerRound, Interval or '}' in Balance")?;
            match &t.tok {
                Tok::Close if any => return Ok(()),
                Tok::Close => {
                    return self.err(
                        t.line,
                        "empty Balance { }: give AcquisitionsPerRound or Interval",
                    )
                }
                Tok::Word(w) if kw(w) == "acquisitionsperround" => {
                    self.expect_equals("AcquisitionsPerRound")?;
                    let v = self.next("a number or all")?;
                    match &v.tok {
                        Tok::Word(n) if kw(n) == "all" => self.out.acquisitions_all = true,
                        Tok::Word(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                            match n.parse::<u32>() {
                                Ok(k) => {
                                    self.out.acquisitions = Some((v.line, k));
                                    self.out.acquisitions_all = false;
                                }
                                Err(_) => {
                                    return self.err(
                                        v.line,
                                        format!("AcquisitionsPerRound = {}: too large", shown(n)),
                                    )
                                }
                            }
                        }
                        other => {
                            return self.err(
                                v.line,
                                format!(
                                    "AcquisitionsPerRound: expected a number or all, found {}",
                                    show(other)
                                ),
                            )
                        }
                    }
                }
                Tok::Word(w) if kw(w) == "interval" => {
                    self.out.balance_interval = Some((t.line, self.time_value("Interval")?))
                }
                other => {
                    return self.err(
                        t.line,
                        format!(
                            "in Balance: expected AcquisitionsPerRound or Interval, found {}",
                            show(other)
                        ),
                    )
                }
            }
            any = true;
        }
    }

    fn notify(&mut self, line: usize) -> Result<(), LegacyError> {
        let t = self.next("arp-cache, none or '{' after Notify")?;
        match &t.tok {
            Tok::Word(w) if kw(w) == "arp-cache" => {
                self.out.arp_cache = true;
                Ok(())
            }
            Tok::Word(w) if kw(w) == "none" => Ok(()),
            Tok::Open => {
                let mut any = false;
                loop {
                    let t = self.next("an address, arp-cache or '}' in Notify")?;
                    match &t.tok {
                        Tok::Close if any => return Ok(()),
                        Tok::Close => {
                            return self.err(t.line, "empty Notify { }: write Notify none")
                        }
                        Tok::Word(w) if kw(w) == "arp-cache" => {
                            self.out.arp_cache = true;
                            self.maybe_ping(t.line, "arp-cache");
                        }
                        Tok::Word(w) => {
                            let Some(a) = self.addr_token(&t)? else {
                                return self.err(
                                    t.line,
                                    format!(
                                        "in Notify: {} is not iface:IP/prefix or arp-cache",
                                        shown(w)
                                    ),
                                );
                            };
                            let mut throttle = 0;
                            if let Some(Tok::Word(n)) = self.peek().map(|p| &p.tok) {
                                if kw(n) == "throttle" {
                                    self.pos += 1;
                                    let v = self.next("a number after throttle")?;
                                    throttle = match &v.tok {
                                        Tok::Word(n)
                                            if !n.is_empty()
                                                && n.bytes().all(|b| b.is_ascii_digit()) =>
                                        {
                                            match n.parse() {
                                                Ok(k) if k <= super::MAX_THROTTLE => k,
                                                _ => {
                                                    return self.err(
                                                        v.line,
                                                        format!(
                                                            "throttle {}: too large (at most {} packets/s)",
                                                            shown(n),
                                                            super::MAX_THROTTLE
                                                        ),
                                                    )
                                                }
                                            }
                                        }
                                        other => {
                                            return self.err(
                                                v.line,
                                                format!(
                                                    "throttle: expected a number, found {}",
                                                    show(other)
                                                ),
                                            )
                                        }
                                    };
                                }
                            }
                            self.maybe_ping(t.line, w);
                            if a.iface.is_empty() {
                                self.note(
                                    t.line,
                                    format!("Notify {w}: no interface, so wackamole 2.1.4 never sent it; dropped (write iface:{w})"),
                                );
                            } else {
                                self.out.targets.push((t.line, a, throttle));
                            }
                        }
                        other => {
                            return self
                                .err(t.line, format!("in Notify: unexpected {}", show(other)))
                        }
                    }
                    any = true;
                }
            }
            other => self.err(
                line,
                format!(
                    "Notify: expected arp-cache, none or '{{', found {}",
                    show(other)
                ),
            ),
        }
    }

    fn maybe_ping(&mut self, line: usize, what: &str) {
        if let Some(Tok::Word(p)) = self.peek().map(|t| &t.tok) {
            if kw(p) == "ping" {
                self.pos += 1;
                self.note(
                    line,
                    format!(
                        "Notify {what} ping: the extra ping is not supported; notified by ARP only"
                    ),
                );
            }
        }
    }

    fn prefer(&mut self, line: usize) -> Result<(), LegacyError> {
        let t = self.next("None, an address or '{' after Prefer")?;
        match &t.tok {
            Tok::Word(w) if kw(w) == "none" => Ok(()),
            Tok::Open => {
                let mut any = false;
                loop {
                    let t = self.next("an address or '}' in Prefer")?;
                    match &t.tok {
                        Tok::Close if any => return Ok(()),
                        Tok::Close => {
                            return self.err(t.line, "empty Prefer { }: write Prefer None")
                        }
                        Tok::Word(w) => match self.addr_token(&t)? {
                            Some(a) => self.out.prefer.push((t.line, PreferSpec::Network(a))),
                            None => {
                                return self.err(
                                    t.line,
                                    format!("in Prefer {{ }}: {} is not IP/prefix", shown(w)),
                                )
                            }
                        },
                        other => {
                            return self
                                .err(t.line, format!("in Prefer: unexpected {}", show(other)))
                        }
                    }
                    any = true;
                }
            }
            Tok::Word(w) => {
                let spec = match self.addr_token(&t)? {
                    Some(a) => PreferSpec::Network(a),
                    None => PreferSpec::Name(w.clone()),
                };
                self.out.prefer.push((t.line, spec));
                Ok(())
            }
            Tok::Quoted(q) => {
                self.out.prefer.push((t.line, PreferSpec::Name(q.clone())));
                Ok(())
            }
            Tok::Close => self.err(line, "Prefer: expected None, an address or '{', found '}'"),
        }
    }

    fn vif_addr(&mut self, t: &Token) -> Result<OldAddr, LegacyError> {
        let w = match &t.tok {
            Tok::Word(w) => w.clone(),
            other => {
                return self.err(
                    t.line,
                    format!("expected iface:IP/prefix, found {}", show(other)),
                )
            }
        };
        match self.addr_token(t)? {
            None => self.err(
                t.line,
                format!("{} is not iface:IP/prefix[nBITS]", shown(&w)),
            ),
            Some(a) if a.iface.is_empty() => self.err(
                t.line,
                format!("{} has no interface: write it as iface:{w}", shown(&w)),
            ),
            Some(a) if a.prefix == 0 => self.err(
                t.line,
                format!("{}: a /0 netmask cannot be plumbed", shown(&w)),
            ),
            Some(a) => Ok(a),
        }
    }

    fn vifs(&mut self, word: &str) -> Result<(), LegacyError> {
        self.expect_open(word)?;
        loop {
            let t = self.next("an address, '{' or '}' in VirtualInterfaces")?;
            match &t.tok {
                Tok::Close => return Ok(()),
                Tok::Open => {
                    let mut group = Vec::new();
                    loop {
                        let a = self.next("an address or '}' in a VIF group")?;
                        if a.tok == Tok::Close {
                            break;
                        }
                        let addr = self.vif_addr(&a)?;
                        group.push((a.line, addr));
                    }
                    if group.is_empty() {
                        return self.err(t.line, "empty VIF group { }");
                    }
                    self.out.vifs.push((t.line, group));
                }
                _ => {
                    let addr = self.vif_addr(&t)?;
                    self.out.vifs.push((t.line, vec![(t.line, addr)]));
                }
            }
        }
    }

    fn run_dynamic(&mut self, line: usize) -> Result<(), LegacyError> {
        let (_, target) = self.string_value("RunDynamic")?;
        let a = self.next("on or post after RunDynamic MODULE:FUNC")?;
        let b = self.next("up or down")?;
        let event = match (&a.tok, &b.tok) {
            (Tok::Word(x), Tok::Word(y)) => match (kw(x).as_str(), kw(y).as_str()) {
                ("on", "up") => "on_up",
                ("on", "down") => "on_down",
                ("post", "up") => "post_up",
                ("post", "down") => "post_down",
                _ => {
                    return self.err(
                        a.line,
                        format!(
                        "RunDynamic: expected on up, on down, post up or post down, found {} {}",
                        shown(x),
                        shown(y)
                    ),
                    )
                }
            },
            _ => {
                return self.err(
                    a.line,
                    "RunDynamic: expected on up, on down, post up or post down",
                )
            }
        };
        let kind = if target.contains("::") || !target.contains(':') {
            "Perl method"
        } else {
            "shared-object function"
        };
        self.note(
            line,
            format!("RunDynamic {} ({kind}) cannot be imported: write a program that does its work and set [hooks] {event} = \"/path/to/program\"", shown(&target)),
        );
        self.out.hooks.push((line, event, target));
        Ok(())
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Open => "'{'".into(),
        Tok::Close => "'}'".into(),
        Tok::Word(w) => shown(w),
        Tok::Quoted(q) => shown(q),
    }
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The address as `wackamole.toml` writes it, keeping the old reach: 2.1.4
/// assumed `n24` without a hint; the new default is the prefix itself.
fn new_addr(a: &OldAddr) -> String {
    let reach = a.network.unwrap_or(24);
    let mut s = format!("{}:{}/{}", a.iface, a.addr, a.prefix);
    if reach != a.prefix {
        s.push_str(&format!("n{reach}"));
    }
    s
}

/// Host probe for checking the generated TOML: every interface exists.
struct Anything;

impl InterfaceCheck for Anything {
    fn interface_exists(&self, _name: &str) -> bool {
        true
    }
    fn hostname(&self) -> Option<String> {
        Some("import-check".into())
    }
}

/// Converts old `wackamole.conf` text to `wackamole.toml` text.
pub fn import(text: &str, file_name: &str) -> Result<Imported, LegacyError> {
    let toks = lex(text).map_err(|(line, message)| LegacyError {
        file: file_name.into(),
        line,
        message,
    })?;
    let mut p = Parser {
        file: file_name,
        toks,
        pos: 0,
        out: Legacy::default(),
    };
    p.parse()?;
    let mut l = p.out;

    // Each VIP once: the TOML refuses duplicates.
    let mut seen: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (_, group) in &l.vifs {
        for (line, a) in group {
            // Refused here, not only by the validation of the result: the
            // Prefer matching below scans the VIFs once per Prefer line.
            if seen.len() == super::MAX_ADDRESSES {
                return Err(LegacyError {
                    file: file_name.into(),
                    line: *line,
                    message: format!(
                        "too many addresses: the XDP map holds at most {} (MAX_VIPS); this is the first one past the limit",
                        super::MAX_ADDRESSES
                    ),
                });
            }
            if let Some(first) = seen.insert(a.addr, *line) {
                return Err(LegacyError {
                    file: file_name.into(),
                    line: *line,
                    message: format!(
                        "VIP {} is listed twice (first at line {first}); each VIP may appear once",
                        a.addr
                    ),
                });
            }
        }
    }

    // Prefer: 2.1.4 preferred every VIF whose first address falls in the
    // given network; we list those VIFs by name (their first address).
    let mut prefer: Vec<String> = Vec::new();
    let mut preferred: HashSet<String> = HashSet::new();
    for (line, spec) in &l.prefer {
        let matched: Vec<String> = match spec {
            PreferSpec::Network(a) => {
                let m = a.network_mask();
                l.vifs
                    .iter()
                    .filter_map(|(_, g)| g.first())
                    .filter(|(_, h)| u32::from(h.addr) & m == u32::from(a.addr) & m)
                    .map(|(_, h)| h.addr.to_string())
                    .collect()
            }
            PreferSpec::Name(n) => match n.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => l
                    .vifs
                    .iter()
                    .filter_map(|(_, g)| g.first())
                    .filter(|(_, h)| h.addr == ip)
                    .map(|(_, h)| h.addr.to_string())
                    .collect(),
                _ => {
                    l.notes.push(Note {
                        line: *line,
                        message: format!("Prefer {}: host names are not looked up (2.1.4's lookup did nothing); dropped", shown(n)),
                    });
                    continue;
                }
            },
        };
        if matched.is_empty() {
            l.notes.push(Note {
                line: *line,
                message: "Prefer matches no VIF's first address; dropped".into(),
            });
        }
        for m in matched {
            if preferred.insert(m.clone()) {
                prefer.push(m);
            }
        }
    }
    if l.group.is_none() {
        l.notes.push(Note {
            line: 1,
            message: format!(
                "no Group set; using {:?}: make it the same on every node",
                super::DEFAULT_GROUP
            ),
        });
    }
    if l.vifs.is_empty() {
        l.notes.push(Note {
            line: 1,
            message: "no VirtualInterfaces: the imported config manages no VIPs".into(),
        });
    }
    let mut acquisitions = None;
    let mut balance_enabled = true;
    if l.acquisitions_all {
        acquisitions = Some("\"all\"".to_string());
    } else if let Some((line, n)) = l.acquisitions {
        if n == 0 {
            balance_enabled = false;
            l.notes.push(Note {
                line,
                message:
                    "AcquisitionsPerRound = 0 never balances: imported as balance.enabled = false"
                        .into(),
            });
        } else {
            acquisitions = Some(n.to_string());
        }
    }
    l.notes.sort_by_key(|n| n.line);

    let mut out = Out::default();
    // The file name is the operator's, but it may be anything: quoted and
    // escaped, it cannot end the comment and inject keys.
    out.line(
        0,
        format!(
            "# Imported from {} by `wackamole import-conf`.",
            comment_text(&format!("{file_name:?}"))
        ),
    );
    if !l.notes.is_empty() {
        out.line(0, "# Not carried over as it was (review before use):");
        for n in &l.notes {
            out.line(
                n.line,
                format!("#   line {}: {}", n.line, comment_text(&n.message)),
            );
        }
    }
    out.line(0, "");
    if let Some((line, c)) = &l.control {
        out.line(*line, format!("control_socket = {}", q(c)));
    }
    if let Some((line, m)) = l.mature {
        out.line(line, format!("mature = {}", q(&format_duration(m))));
    }
    if !prefer.is_empty() {
        let first = l.prefer.first().map(|(line, _)| *line).unwrap_or(0);
        let items: Vec<String> = prefer.iter().map(|p| q(p)).collect();
        out.line(first, format!("prefer = [{}]", items.join(", ")));
    }
    out.line(0, "");
    out.line(0, "[engine]");
    out.line(0, "kind = \"spread\"");
    match &l.spread {
        Some((line, s)) => out.line(*line, format!("daemon = {}", q(s))),
        None => out.line(0, "daemon = \"4803\""),
    }
    if let Some((line, g)) = &l.group {
        out.line(*line, format!("group = {}", q(g)));
    }
    if let Some((line, r)) = l.retry {
        // 2.1.4 retried immediately on 0; the new agent needs a pause.
        let r = if r.is_zero() {
            Duration::from_secs(1)
        } else {
            r
        };
        out.line(
            line,
            format!("reconnect_interval = {}", q(&format_duration(r))),
        );
    }
    if acquisitions.is_some() || l.balance_interval.is_some() || !balance_enabled {
        out.line(0, "");
        out.line(0, "[balance]");
        if !balance_enabled {
            out.line(0, "enabled = false");
        }
        if let Some(a) = &acquisitions {
            let line = l.acquisitions.map(|(line, _)| line).unwrap_or(0);
            out.line(line, format!("acquisitions_per_round = {a}"));
        }
        if let Some((line, i)) = l.balance_interval {
            let i = if i.is_zero() {
                Duration::from_secs(1)
            } else {
                i
            };
            out.line(line, format!("interval = {}", q(&format_duration(i))));
        }
    }
    if l.arp_cache || l.arp_interval.is_some() || !l.targets.is_empty() {
        out.line(0, "");
        out.line(0, "[notify]");
        if l.arp_cache {
            out.line(0, "arp_cache = true");
        }
        if let Some((line, i)) = l.arp_interval {
            let i = if i.is_zero() {
                Duration::from_secs(1)
            } else {
                i
            };
            out.line(
                line,
                format!("arp_cache_interval = {}", q(&format_duration(i))),
            );
        }
        if !l.targets.is_empty() {
            out.line(0, "targets = [");
            for (line, a, throttle) in &l.targets {
                let range = format!("{}:{}/{}", a.iface, a.addr, a.prefix);
                if *throttle > 0 {
                    out.line(
                        *line,
                        format!("    {{ range = {}, throttle = {throttle} }},", q(&range)),
                    );
                } else {
                    out.line(*line, format!("    {{ range = {} }},", q(&range)));
                }
            }
            out.line(0, "]");
        }
    }
    if !l.hooks.is_empty() {
        out.line(0, "");
        out.line(0, "# Old RunDynamic actions: replace each with a program.");
        out.line(0, "# [hooks]");
        for (line, event, target) in &l.hooks {
            out.line(
                *line,
                format!(
                    "# {event} = \"/path/to/program\"   # was line {line}: RunDynamic {}",
                    comment_text(target)
                ),
            );
        }
    }
    for (line, group) in &l.vifs {
        out.line(0, "");
        out.line(*line, "[[vif]]");
        match group.as_slice() {
            [(line, a)] => out.line(*line, format!("addresses = [{}]", q(&new_addr(a)))),
            _ => {
                // One address a line, so that a problem names its old line.
                out.line(*line, "addresses = [");
                for (line, a) in group {
                    out.line(*line, format!("    {},", q(&new_addr(a))));
                }
                out.line(*line, "]");
            }
        }
    }

    // What the old file says but the new format refuses (a duration over a
    // limit, an interface name the kernel would not take, too many VIPs) is
    // the input's fault: say so at the old line, like any other error.
    if let Err(e) = super::parse(&out.text, "<imported>", &Anything) {
        let issue = &e.issues[0];
        let line = issue.line.and_then(|l| out.source(l)).unwrap_or(0);
        let field = if issue.field.is_empty() {
            String::new()
        } else {
            format!(" (as `{}`)", issue.field)
        };
        return Err(LegacyError {
            file: file_name.into(),
            line,
            message: format!("cannot be imported{field}: {}", issue.message),
        });
    }
    Ok(Imported {
        toml: out.text,
        notes: l.notes,
    })
}

/// The TOML being written, with the old line each of its lines comes from.
#[derive(Default)]
struct Out {
    text: String,
    /// Old line of each written line (0: none).
    from: Vec<usize>,
}

impl Out {
    /// Appends one line (callers pass text without a newline: every value
    /// is quoted by [`q`] and every comment goes through [`comment_text`]).
    fn line(&mut self, from: usize, text: impl AsRef<str>) {
        self.text.push_str(text.as_ref());
        self.text.push('\n');
        self.from.push(from);
    }

    /// The old line behind written line `line` (1-based), if known.
    fn source(&self, line: usize) -> Option<usize> {
        line.checked_sub(1)
            .and_then(|i| self.from.get(i))
            .copied()
            .filter(|&l| l > 0)
    }
}

/// Text safe inside a TOML comment: TOML allows no control character there
/// but tab, and a newline would end the comment.
fn comment_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `wackamole import-conf OLD`: prints the TOML on stdout and notes on
/// stderr. Returns 0 when everything was carried over, 1 when the TOML was
/// printed but notes need attention, 2 when nothing could be imported.
pub fn import_conf_main(path: &Path) -> i32 {
    let name = path.display().to_string();
    let text = match super::read_text(path) {
        Ok(t) => t,
        Err((line, message)) => {
            let e = LegacyError {
                file: name,
                line: line.unwrap_or(0),
                message,
            };
            eprintln!("{e}");
            return 2;
        }
    };
    match import(&text, &name) {
        Err(e) => {
            eprintln!("{e}");
            2
        }
        Ok(imp) => {
            print!("{}", imp.toml);
            for n in &imp.notes {
                eprintln!(
                    "{}:{}: note: {}",
                    super::file_label(&name),
                    n.line,
                    n.message
                );
            }
            if imp.notes.is_empty() {
                0
            } else {
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexer_words_braces_comments_quotes() {
        let toks = lex("a{b}#c {\n'x y' \"z\"\nw").unwrap();
        let kinds: Vec<(Tok, usize)> = toks.into_iter().map(|t| (t.tok, t.line)).collect();
        assert_eq!(
            kinds,
            vec![
                (Tok::Word("a".into()), 1),
                (Tok::Open, 1),
                (Tok::Word("b".into()), 1),
                (Tok::Close, 1),
                (Tok::Quoted("x y".into()), 2),
                (Tok::Quoted("z".into()), 2),
                (Tok::Word("w".into()), 3),
            ]
        );
        assert_eq!(lex("x\n'open").unwrap_err().0, 2);
    }

    #[test]
    fn old_address_forms() {
        let a = old_addr("eth0:10.2.3.4/24n23").unwrap().unwrap();
        assert_eq!(
            (a.iface.as_str(), a.prefix, a.network),
            ("eth0", 24, Some(23))
        );
        let a = old_addr("10.2.3.4/32").unwrap().unwrap();
        assert_eq!((a.iface.as_str(), a.prefix, a.network), ("", 32, None));
        assert_eq!(old_addr("10.2.3.4").unwrap(), None);
        assert_eq!(old_addr("eth0:10.2.3.4").unwrap(), None);
        assert_eq!(old_addr("wack1").unwrap(), None);
        assert!(old_addr("eth0:10.2.3.300/24").is_err());
        assert!(old_addr("eth0:10.2.3.3/33").is_err());
        assert!(old_addr("eth0:10.2.3.3/24n40").is_err());
        assert_eq!(
            new_addr(&old_addr("eth0:10.2.3.4/32").unwrap().unwrap()),
            "eth0:10.2.3.4/32n24"
        );
        assert_eq!(
            new_addr(&old_addr("eth0:10.2.3.4/24").unwrap().unwrap()),
            "eth0:10.2.3.4/24"
        );
        assert_eq!(
            new_addr(&old_addr("eth0:10.2.3.4/24n23").unwrap().unwrap()),
            "eth0:10.2.3.4/24n23"
        );
        assert_eq!(
            new_addr(&old_addr("eth0:10.2.3.4/23n23").unwrap().unwrap()),
            "eth0:10.2.3.4/23"
        );
    }

    #[test]
    fn old_times() {
        assert_eq!(old_time("5s"), Some((5, 's')));
        assert_eq!(old_time("2M"), Some((2, 'm')));
        assert_eq!(old_time("1H"), Some((1, 'h')));
        assert_eq!(old_time("5"), None);
        assert_eq!(old_time("5ms"), None);
        assert_eq!(old_time("s"), None);
        assert_eq!(old_time("é"), None);
    }
}

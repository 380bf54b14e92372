//! Durations written as strings with units: `"250ms"`, `"4s"`, `"1m"`, `"1h"`,
//! or several parts added up (`"1m30s"`). A bare `"0"` means zero.
//!
//! Hand-written rather than humantime-serde: the grammar is five units and we
//! want our own error text (with the field and line), which a serde adapter
//! would hide behind its own message.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(pub String);

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `"250ms"`, `"4s"`, `"1m"`, `"2h"`, `"1m30s"`, `"0"`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError(
            "empty duration (write e.g. \"4s\" or \"250ms\")".into(),
        ));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError(format!(
                "bad duration {text:?}: expected a number at {rest:?} (write e.g. \"4s\", \"250ms\", \"1m30s\")"
            )));
        }
        let (num, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let value: u64 = num.parse().map_err(|_| {
            DurationError(format!("bad duration {text:?}: number {num} is too large"))
        })?;
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => value
                .checked_mul(60)
                .map(Duration::from_secs)
                .ok_or_else(|| DurationError(format!("bad duration {text:?}: too large")))?,
            "h" => value
                .checked_mul(3600)
                .map(Duration::from_secs)
                .ok_or_else(|| DurationError(format!("bad duration {text:?}: too large")))?,
            "" => {
                return Err(DurationError(format!(
                    "bad duration {text:?}: {num} has no unit (use ms, s, m or h)"
                )))
            }
            other => {
                return Err(DurationError(format!(
                    "bad duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
                )))
            }
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| DurationError(format!("bad duration {text:?}: too large")))?;
        rest = after;
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it, in the largest
/// units that keep it exact (`"1m30s"`, `"250ms"`, `"0s"`). Sub-millisecond
/// parts are dropped (the parser cannot express them).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 4s "), Ok(Duration::from_secs(4)));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "4",
            "s",
            "4x",
            "4 s",
            "-4s",
            "1.5s",
            "4S",
            "ms4",
            "99999999999999999999s",
            "5s!",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_duration("4x").unwrap_err();
        assert!(e.0.contains("unknown unit \"x\""), "{e}");
        let e = parse_duration("12").unwrap_err();
        assert!(e.0.contains("no unit"), "{e}");
    }

    #[test]
    fn format() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(61_001)), "1m1s1ms");
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_duration(&s);
        }
    }
}

//! Per-VIF log lines, bounded per event the agent handles.
//!
//! A failover of thousands of VIFs wrote a line per VIF, and some of them
//! before the VIFs answered: 667 "answering once the handshake clears it"
//! lines took 9 ms of a takeover on the test host, and thousands of lines a
//! failover run into a journal's rate limit (journald's default burst is
//! 10 000 messages per 30 s). Each message keeps its INFO line per VIF for
//! the first [`PER_VIF`] VIFs of an event; the others go to DEBUG, and one
//! INFO line sums them up once the event is handled ([`VifLines::flush`]).

use std::collections::BTreeMap;

/// VIFs per message and event logged one line each at INFO.
pub const PER_VIF: usize = 16;

/// One message's per-VIF lines in this event.
#[derive(Debug, Default)]
struct Tally {
    /// Lines so far; those past [`PER_VIF`] went to DEBUG.
    seen: usize,
    /// The slowest of those at DEBUG (`took_us`), if the message times
    /// its VIFs.
    slowest: Option<(String, u64)>,
}

impl Tally {
    /// Lines this event sent to DEBUG.
    fn quiet(&self) -> usize {
        self.seen.saturating_sub(PER_VIF)
    }
}

/// Counts each message's per-VIF lines in the current event.
#[derive(Debug, Default)]
pub struct VifLines {
    tallies: BTreeMap<&'static str, Tally>,
}

impl VifLines {
    /// Whether `vif`'s line of `message` goes at INFO (one of the first
    /// [`PER_VIF`] of this event); otherwise it is counted for the summary
    /// (with its time, if any).
    pub fn loud(&mut self, message: &'static str, vif: &str, took_us: Option<u64>) -> bool {
        let tally = self.tallies.entry(message).or_default();
        tally.seen += 1;
        if tally.seen <= PER_VIF {
            return true;
        }
        if let Some(us) = took_us {
            if tally.slowest.as_ref().is_none_or(|(_, s)| us > *s) {
                tally.slowest = Some((vif.to_string(), us));
            }
        }
        false
    }

    /// Ends the event: one INFO line per message that went quiet, and a
    /// fresh count.
    pub fn flush(&mut self) {
        for (message, tally) in std::mem::take(&mut self.tallies) {
            let quiet = tally.quiet();
            if quiet == 0 {
                continue;
            }
            match tally.slowest {
                // `vif` and `took_us` as in the per-VIF lines: the slowest.
                Some((vif, took_us)) => tracing::info!(
                    more = quiet,
                    %vif,
                    took_us,
                    "{message} (and {quiet} more VIFs, logged at debug; the slowest here)"
                ),
                None => tracing::info!(
                    more = quiet,
                    "{message} (and {quiet} more VIFs, logged at debug)"
                ),
            }
        }
    }
}

/// One per-VIF line of `message` (with at most one more field, as in
/// `tracing`): INFO while [`VifLines::loud`] says so, DEBUG otherwise.
macro_rules! vif_line {
    ($lines:expr, $vif:expr, $message:expr $(, $($field:tt)+)?) => {{
        let vif: &str = &$vif;
        if $lines.loud($message, vif, None) {
            tracing::info!(vif = %vif, $($($field)+,)? "{}", $message);
        } else {
            tracing::debug!(vif = %vif, $($($field)+,)? "{}", $message);
        }
    }};
}

/// [`vif_line!`] for a timed step: `took_us` is logged and the slowest
/// quiet one is named in the summary.
macro_rules! vif_line_timed {
    ($lines:expr, $vif:expr, $message:expr, $took_us:expr) => {{
        let vif: &str = &$vif;
        let took_us: u64 = $took_us;
        if $lines.loud($message, vif, Some(took_us)) {
            tracing::info!(vif = %vif, took_us, "{}", $message);
        } else {
            tracing::debug!(vif = %vif, took_us, "{}", $message);
        }
    }};
}

pub(super) use {vif_line, vif_line_timed};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lines_of_a_message_are_loud_then_counted_per_event() {
        let mut l = VifLines::default();
        for k in 0..PER_VIF {
            assert!(l.loud("acquired", &format!("v{k}"), Some(5)));
        }
        assert!(l.loud("released", "v0", None), "each message counts apart");
        assert!(!l.loud("acquired", "v100", Some(7)));
        assert!(!l.loud("acquired", "v101", Some(90)));
        assert!(!l.loud("acquired", "v102", Some(3)));
        let tally = &l.tallies["acquired"];
        assert_eq!(tally.quiet(), 3);
        assert_eq!(tally.slowest, Some(("v101".to_string(), 90)));
        l.flush();
        assert!(l.tallies.is_empty());
        assert!(l.loud("acquired", "v0", Some(1)), "a new event starts loud");
    }
}

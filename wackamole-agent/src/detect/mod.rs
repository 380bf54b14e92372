//! A fast failure detector on the VIP LAN (issue 11): agents beat to each
//! other every few milliseconds, a node silent for a deadline is *lost*,
//! and one lost by a majority of the view is *condemned*; a node keeps
//! answering ARP only while enough peers echo its beats, so it is silent
//! before anyone can condemn it. The agreed view stays the source of truth:
//! condemnation only lets the pre-agreed successors act first, and the
//! engine's view (or an agreed EVICT) settles it.
//!
//! - [`beat`]: the datagram (pure codec).
//! - [`detector`]: the state machine and the proof of its fence (pure).

pub mod beat;
pub mod detector;

pub use beat::{group_tag, Beat};
pub use detector::{Detector, Ignored, Polled};

use std::time::Duration;

/// How often a node beats and how long a silence loses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub deadline: Duration,
}

impl Timing {
    /// Beats every 5 ms, lost after 30 ms: six beats in a row missing.
    pub const DEFAULT: Timing = Timing {
        interval: Duration::from_millis(5),
        deadline: Duration::from_millis(30),
    };

    /// The smallest deadline, in beat intervals: a node must survive a few
    /// lost or late beats, and the fence's margin (a third of the
    /// deadline) must cover two of them.
    pub const MIN_BEATS: u32 = 6;

    pub fn new(interval: Duration, deadline: Duration) -> Result<Timing, String> {
        if interval < Duration::from_millis(1) {
            return Err(format!("beat interval {interval:?} is under 1 ms"));
        }
        if deadline < interval * Self::MIN_BEATS {
            return Err(format!(
                "deadline {deadline:?} is under {} beat intervals of {interval:?}",
                Self::MIN_BEATS
            ));
        }
        Ok(Timing { interval, deadline })
    }

    /// How long a node answers after the k-th freshest echo (see
    /// `detector`): two thirds of the deadline; the last third is the margin
    /// before the earliest condemnation (the kernel's last answers in
    /// flight, the successor's processing, scheduling).
    pub fn lease(&self) -> Duration {
        self.deadline * 2 / 3
    }

    /// How long a member may go unheard and still count as answering:
    /// two deadlines (a few beats lost in a row are common on a lossy
    /// link, twelve in a row at 30 % loss is one in two million). Past
    /// it, a member that left the view is taken to be silent: crashed, or
    /// cut off (a partition, where each side answers).
    pub fn silent_after(&self) -> Duration {
        self.deadline * 2
    }

    /// How long a member's view is remembered after its latest beat
    /// (`Detector::beating_elsewhere`): sixteen times `silent_after`, about
    /// a second by default. Only ever delays a revival.
    pub fn recall(&self) -> Duration {
        self.silent_after() * 16
    }

    /// How long a node answers after its latest beat went out (detector
    /// mode `guard`, the beat lease): three quarters of
    /// [`silent_after`](Self::silent_after), so a node whose beats stop
    /// (its thread starved or frozen) is silent before a peer may take it
    /// to be; the last quarter covers the peer's processing.
    pub fn beat_fence(&self) -> Duration {
        self.silent_after() * 3 / 4
    }
}

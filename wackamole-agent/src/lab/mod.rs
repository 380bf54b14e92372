//! Measurement machinery for the failover benchmark and the demo (test/bench
//! support, not used by the agent itself).
//!
//! A simulated LAN runs in namespaces (see [`crate::testbed`]): every node runs a
//! [`responder`] that answers UDP probes on whichever VIPs it currently holds; a
//! [`prober`] in the client namespace probes every VIP each millisecond and
//! records who answered when. [`analysis`] (pure) turns those records into
//! outages, lost probes, duplicate ownership and failover times, [`report`]
//! prints them as markdown and JSON and [`plot`] draws a PNG timeline.
//!
//! All times are `CLOCK_MONOTONIC` nanoseconds ([`now_ns`]): the clock is shared
//! by every network namespace on the machine, so prober, responders, fault
//! injection and agents can be compared directly.

pub mod analysis;
pub mod plot;
pub mod prober;
pub mod report;
pub mod resources;
pub mod responder;

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

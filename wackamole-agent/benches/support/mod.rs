//! Helpers shared by the benchmarks (each is its own crate).

use std::time::Duration;

/// (median, p95) of `samples`, in microseconds.
pub fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let median = us(samples[samples.len() / 2]);
    let p95 = us(samples[(samples.len() * 95 / 100).min(samples.len() - 1)]);
    (median, p95)
}

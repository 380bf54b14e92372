//! The test machinery itself: prober and responders end to end, and smoke
//! runs of the demo and the failover benchmark (mostly needs root:
//! `cargo xtask test`).

#[path = "../support/mod.rs"]
mod support;

mod bench_smoke;
mod demo_smoke;
mod probe;

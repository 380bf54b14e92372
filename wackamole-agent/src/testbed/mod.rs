//! Test support: simulated hosts in network namespaces on this machine.
//!
//! Used by the integration tests, the demo and the benchmarks. Every namespace
//! has a unique name (`wkt-<pid>-<n>`), every process started in one is killed
//! and the namespace deleted when its guard drops, also when a test panics.
//! Namespaces left by a process that died without unwinding (SIGKILL) are swept
//! the next time a testbed is created.
//!
//! Traffic stays inside these namespaces: nothing here routes to the outside.

pub mod cluster;
pub mod corosync;
pub mod impair;
mod lan;
mod netns;
pub mod spread;

pub use lan::Switch;
pub use netns::{sweep_stale, veth_pair, Netns, NsChild};

/// True when running as root (namespaces, XDP and BPF need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Fails (panics) unless running as root. Tests that need root are
/// `#[ignore = "needs root"]` and start with this, so that running them
/// without root (`--ignored`) fails naming the requirement instead of
/// passing silently.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root (network namespaces, XDP, BPF): run `cargo xtask test` as root, \
         or `cargo test -- --ignored` as root"
    );
}

//! wackamole: N-way IP failover for a pool of virtual IPs, rebuilt around eBPF.
//!
//! The crate is split by concern. Pure logic has no I/O and is tested
//! exhaustively; I/O sits at the edges behind small interfaces.
//!
//! - [`alloc`]: Wackamole's allocation algorithm as a deterministic state machine
//!   (no I/O, no clock), with its wire messages.
//! - [`membership`]: group-communication engines (Corosync CPG, Spread 4) behind
//!   one event interface.
//! - [`dataplane`]: loads the XDP program and drives its maps (own, release,
//!   forget, lease, counters).
//! - [`config`]: the TOML configuration, its validation and the importer for the
//!   old `wackamole.conf`.

pub mod alloc;
pub mod config;
pub mod dataplane;
pub mod lab;
pub mod membership;
pub mod testbed;

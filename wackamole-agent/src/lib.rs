//! wackamole: N-way IP failover for a pool of virtual IPs, rebuilt around eBPF.
//!
//! The crate is split by concern. Pure logic has no I/O and is tested
//! exhaustively; I/O sits at the edges behind small interfaces.
//!
//! - [`alloc`]: Wackamole's allocation algorithm as a deterministic state machine
//!   (no I/O, no clock), with its wire messages and a deterministic simulator.
//! - [`membership`]: group-communication engines (Corosync CPG, Spread 4) behind
//!   one event interface.
//! - [`detect`]: the fast failure detector on the LAN (beats, lost and
//!   condemned peers, the fence that keeps a condemned node silent first).
//! - [`dataplane`]: loads the XDP program and drives its maps (own, release,
//!   forget, lease, counters).
//! - [`config`]: the TOML configuration, its validation and the importer for the
//!   old `wackamole.conf`.
//! - [`net`]: addresses and neighbours over rtnetlink, ARP announcements.
//! - [`control`]: the control socket protocol, server and client.
//! - [`hooks`]: up/down hook programs.
//! - [`daemon`]: the agent's event loop that joins all of the above.
//! - [`cli`]: the operator's commands (`check-config`, `import-conf`, `ctl`).
//! - `testbed` and `lab` (cargo feature `lab`, for tests, benchmarks, the
//!   demo and xtask only): hosts in network namespaces, probes, analysis,
//!   plots and reports. The product (`wackamole` binary) is built without.
//!
//! Cargo features: `corosync` (the Corosync engine, links the Corosync
//! libraries) and `lab`. With neither, the crate builds with stable Rust
//! alone; without the eBPF object (`cargo xtask build`) it builds too, and
//! opening the data plane fails at run time saying so.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod detect;
pub mod hooks;
#[cfg(feature = "lab")]
pub mod lab;
pub mod membership;
pub mod net;
#[cfg(feature = "lab")]
pub mod testbed;

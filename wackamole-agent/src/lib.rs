//! wackamole: N-way IP failover for a pool of virtual IPs, rebuilt around eBPF.
//!
//! The crate is split by concern. Pure logic has no I/O and is tested
//! exhaustively; I/O sits at the edges behind small interfaces.
//!
//! - [`alloc`]: Wackamole's allocation algorithm as a deterministic state machine
//!   (no I/O, no clock), with its wire messages and a deterministic simulator.
//! - [`membership`]: group-communication engines (Corosync CPG, Spread 4) behind
//!   one event interface.
//! - [`dataplane`]: loads the XDP program and drives its maps (own, release,
//!   forget, lease, counters).
//! - [`config`]: the TOML configuration, its validation and the importer for the
//!   old `wackamole.conf`.
//! - [`net`]: addresses and neighbours over rtnetlink, ARP announcements.
//! - [`control`]: the control socket protocol, server and client.
//! - [`hooks`]: up/down hook programs.
//! - [`daemon`]: the agent's event loop that joins all of the above.
//! - [`cli`]: the operator's commands (`check-config`, `import-conf`, `ctl`).
//! - [`testbed`] and [`lab`]: hosts in network namespaces, probes and reports
//!   for the tests, the demo and the benchmarks.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod hooks;
pub mod lab;
pub mod membership;
pub mod net;
pub mod testbed;

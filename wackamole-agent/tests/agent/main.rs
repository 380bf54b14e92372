//! Real agents on Corosync clusters in network namespaces: failover, rejoin,
//! operator commands, restarts, config errors, and the client-visible outage
//! (needs root and corosync: `cargo xtask test`); whole agents in-process on
//! a fake host under a paused clock (`inproc`, no root).

#[path = "../support/mod.rs"]
mod support;

mod caps;
mod cluster;
mod faults;
mod fencing;
mod handover;
mod inproc;
mod ipv6;
mod outage;
mod scale;

//! Real agents on Corosync clusters in network namespaces: failover, rejoin,
//! operator commands, restarts, config errors, and the client-visible outage
//! (needs root and corosync: `cargo xtask test`).

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod outage;

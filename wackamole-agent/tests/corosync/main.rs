//! The Corosync engine against three real corosync daemons in network
//! namespaces (needs root and corosync: `cargo xtask test`).

#[path = "../support/mod.rs"]
mod support;

mod membership;

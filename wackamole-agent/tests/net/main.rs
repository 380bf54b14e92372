//! Addresses, ARP announcements and the neighbour table over rtnetlink and
//! AF_PACKET, in network namespaces (needs root: `cargo xtask test`).

#[path = "../support/mod.rs"]
mod support;

mod addr;
mod arp;
mod nd;
mod neigh;

//! The operator's interfaces: the control socket (server and client) and
//! the hook programs.

#[path = "../support/mod.rs"]
mod support;

mod hooks;
mod socket;

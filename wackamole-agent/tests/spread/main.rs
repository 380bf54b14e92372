//! The Spread engine: the wire codec against real captures, the engine
//! against a scripted daemon, and (`live`, needs root and a Spread 4.4
//! daemon in WACKAMOLE_SPREAD_DAEMON) against real daemons.

#[path = "../support/mod.rs"]
mod support;

mod codec;
mod engine;
mod live;

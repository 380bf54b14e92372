//! The agent daemon: joins the membership engine, the allocation state
//! machine and the XDP data plane.
//!
//! - [`bootstrap`]: `wackamole run` (config, logging, engine, data plane,
//!   leftovers of a crashed run) wiring the real machine into an agent.
//! - [`host`]: the ports, everything the agent does to the machine
//!   ([`Host`]), and [`LinuxHost`].
//! - [`agent`]: the agent's state, event loop and the executor of the
//!   allocator's actions; [`vifs`] the ordered steps of a VIF's bring-up.
//! - `announce`: announcements and the answer to conflicts.
//! - `control`: answers to the control socket.
//! - `lifecycle`: reload, the hand-over of a planned stop, shutdown.
//! - `arp_share`: the cluster's shared ARP cache.
//! - [`lease`]: the fencing lease, renewed from the engine's liveness;
//!   [`lease_keeper`] extends it off the agent's loop.
//! - [`evict`]: watching the members' probes to evict a silent one.
//! - [`messages`]: the envelope of every group message.
//! - [`senders`]: the packet sockets announcements send on, kept open.
//! - [`heap`]: malloc's thresholds, so freed memory does not stay resident.
//!
//! Slow side work (announcements, hooks) runs in spawned tasks and never
//! delays the next decision. The agent runs on tokio's clock only.

pub mod agent;
mod announce;
pub mod announcer;
mod arp_share;
pub mod beats;
pub mod bootstrap;
mod control;
pub mod evict;
pub mod heap;
pub mod host;
pub mod lease;
pub mod lease_keeper;
mod lifecycle;
pub mod messages;
pub mod metrics;
pub mod sdnotify;
pub mod senders;
mod standby;
pub mod timers;
mod vif_log;
pub mod vifs;
pub mod wire_knob;

pub use agent::{alloc_config, Agent, AgentParts, Signal, Trigger, HANDOVER_LINGER};
pub use announce::{CONFLICT_HOLDOFF, CONFLICT_SETTLE};
pub use bootstrap::main;
pub use control::members_mature;
pub use host::{Announcement, CarrierEvent, CarrierEvents, Conflicts, Host, LinuxHost};
pub use lifecycle::HANDOVER_LIMIT;
pub use standby::{HELD_CHECK_EVERY, STANDBY_CHECK_EVERY};

/// Changes the log filter of the running process (`log.level` on reload).
pub type LogHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

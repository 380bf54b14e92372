//! The control socket: `wackamole list|status|fail|recover|move|drain|balance`.
//!
//! - [`protocol`]: the line-delimited JSON requests and replies (pure).
//! - [`server`]: the daemon's Unix socket listener; it hands each request to
//!   the daemon over an mpsc channel with a oneshot for the reply, and
//!   streams a `list` to the client page by page.
//! - [`client`]: one request, one reply, with a timeout (the CLI side).
//! - [`render`]: human tables for `list` and `status`, or JSON passthrough.

pub mod client;
pub mod protocol;
pub mod render;
pub mod server;

pub use protocol::{
    parse_request, FailoverInfo, ListLine, ListReply, MemberRow, Reply, Request, StatusReply,
    VifRow, LIST_PAGE, MAX_LINE,
};
pub use server::{ControlRequest, ControlServer};

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/wackamole/control.sock";

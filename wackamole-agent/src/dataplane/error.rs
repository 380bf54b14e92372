//! Errors of the data plane; each names the interface, address, map or path.

use std::path::PathBuf;

/// Any error source, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in the data plane, and where.
#[derive(Debug, thiserror::Error)]
/// Each variant prints its cause in its message and does not return it as
/// `source()`: an error chain printed with `{:#}` would show it twice.
pub enum DataPlaneError {
    /// The bpffs mount or the pin directory.
    #[error("bpffs {path}: {action}: {cause}")]
    Bpffs {
        path: PathBuf,
        action: &'static str,
        cause: BoxError,
    },
    /// Loading the embedded eBPF object or its program.
    #[error("XDP program: {action}: {cause}")]
    Program {
        action: &'static str,
        cause: BoxError,
    },
    /// Attaching, detaching or inspecting one interface.
    #[error("interface {iface}: {action}: {cause}")]
    Interface {
        iface: String,
        action: &'static str,
        cause: BoxError,
    },
    /// A map operation for one VIP.
    #[error("VIP {vip}: {action}: {cause}")]
    Vip {
        vip: String,
        action: &'static str,
        cause: BoxError,
    },
    /// A map operation not tied to one VIP.
    #[error("map {map}: {action}: {cause}")]
    Map {
        map: &'static str,
        action: &'static str,
        cause: BoxError,
    },
}

pub(crate) fn boxed(e: impl Into<BoxError>) -> BoxError {
    e.into()
}

/// Shorthand result.
pub type Result<T, E = DataPlaneError> = std::result::Result<T, E>;

//! Errors of the data plane; each names the interface, address, map or path.

use std::path::PathBuf;

/// Any error source, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in the data plane, and where.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// The bpffs mount or the pin directory.
    #[error("bpffs {path}: {action}: {source}")]
    Bpffs {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: BoxError,
    },
    /// Loading the embedded eBPF object or its program.
    #[error("XDP program: {action}: {source}")]
    Program {
        action: &'static str,
        #[source]
        source: BoxError,
    },
    /// Attaching, detaching or inspecting one interface.
    #[error("interface {iface}: {action}: {source}")]
    Interface {
        iface: String,
        action: &'static str,
        #[source]
        source: BoxError,
    },
    /// A map operation for one VIP.
    #[error("VIP {vip}: {action}: {source}")]
    Vip {
        vip: String,
        action: &'static str,
        #[source]
        source: BoxError,
    },
    /// A map operation not tied to one VIP.
    #[error("map {map}: {action}: {source}")]
    Map {
        map: &'static str,
        action: &'static str,
        #[source]
        source: BoxError,
    },
}

pub(crate) fn boxed(e: impl Into<BoxError>) -> BoxError {
    e.into()
}

/// Shorthand result.
pub type Result<T, E = DataPlaneError> = std::result::Result<T, E>;

//! The allocator wire version this agent speaks.
//!
//! Always the build's ([`wire::VERSION`]) in the product. Builds with the
//! `lab` feature (test and benchmark builds only: the crate's dev-dependency
//! on itself turns it on) honour `WACKAMOLE_TEST_WIRE_VERSION`, so that a
//! namespace test can run a mixed-version cluster with one agent speaking
//! N+1 (see `Allocator::with_wire_version`).

use crate::alloc::wire;

/// The environment variable of the test knob (`lab` builds only).
pub const TEST_WIRE_VERSION_ENV: &str = "WACKAMOLE_TEST_WIRE_VERSION";

/// The wire version to speak.
pub fn wire_version() -> u8 {
    #[cfg(feature = "lab")]
    if let Ok(text) = std::env::var(TEST_WIRE_VERSION_ENV) {
        match text.parse::<u8>() {
            Ok(v) if (wire::MIN_VERSION..=wire::VERSION + 1).contains(&v) => {
                tracing::warn!(
                    "test build: speaking wire version {v} ({TEST_WIRE_VERSION_ENV}); this build's is {}",
                    wire::VERSION
                );
                return v;
            }
            _ => tracing::error!(
                "ignoring {TEST_WIRE_VERSION_ENV}={text:?}: not a version in {}..={}",
                wire::MIN_VERSION,
                wire::VERSION + 1
            ),
        }
    }
    wire::VERSION
}

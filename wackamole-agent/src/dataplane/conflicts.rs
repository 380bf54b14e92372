//! Reads [`ConflictEvent`]s from the XDP program's ring buffer.

use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::{unix::AsyncFd, Interest};
use wackamole_common::ConflictEvent;

/// The consumer side of `WACK_CONFLICTS` (one per data plane).
pub struct ConflictReader {
    ring: RingBuf<MapData>,
}

impl std::fmt::Debug for ConflictReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConflictReader")
    }
}

fn decode(bytes: &[u8]) -> Option<ConflictEvent> {
    if bytes.len() < std::mem::size_of::<ConflictEvent>() {
        return None;
    }
    // SAFETY: length checked; ConflictEvent is plain old data (any bytes are valid).
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<ConflictEvent>()) })
}

impl ConflictReader {
    pub(crate) fn new(ring: RingBuf<MapData>) -> Self {
        ConflictReader { ring }
    }

    /// The next pending event, without waiting. Records too short to be an
    /// event (another program version) are skipped.
    pub fn try_next(&mut self) -> Option<ConflictEvent> {
        while let Some(item) = self.ring.next() {
            if let Some(event) = decode(&item) {
                return Some(event);
            }
        }
        None
    }

    /// Every pending event.
    pub fn drain(&mut self) -> Vec<ConflictEvent> {
        std::iter::from_fn(|| self.try_next()).collect()
    }

    /// Waits (inside a tokio runtime) for events; yields them in batches.
    pub fn into_async(self) -> io::Result<AsyncConflictReader> {
        // SAFETY: the ring buffer owns its map fd, which stays open and
        // unchanged for as long as the AsyncFd owns the ring buffer.
        let fd = unsafe { AsyncFd::register_with_interest(self.ring, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(AsyncConflictReader { fd })
    }
}

/// [`ConflictReader`] registered with tokio's reactor.
pub struct AsyncConflictReader {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl AsyncConflictReader {
    /// Waits until at least one event is available and returns all pending ones.
    pub async fn next_batch(&mut self) -> io::Result<Vec<ConflictEvent>> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            let ring = guard.get_inner_mut();
            let mut out = Vec::new();
            while let Some(item) = ring.next() {
                if let Some(e) = decode(&item) {
                    out.push(e);
                }
            }
            guard.clear_ready();
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wackamole_common::VipKey;

    #[test]
    fn decodes_events_and_rejects_short_records() {
        let e = ConflictEvent {
            key: VipKey::ipv4(4, [192, 0, 2, 9]),
            sender_mac: [2, 0, 0, 0, 0, 9],
            _pad: [0; 2],
        };
        // SAFETY: viewing a POD value as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&e as *const ConflictEvent).cast::<u8>(),
                std::mem::size_of::<ConflictEvent>(),
            )
        };
        assert_eq!(decode(bytes), Some(e));
        assert_eq!(decode(&bytes[..31]), None);
    }
}

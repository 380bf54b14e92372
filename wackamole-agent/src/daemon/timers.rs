//! Named one-shot timers for the event loop: the allocator arms and cancels
//! them by kind; the loop awaits the earliest.

use std::collections::HashMap;
use std::hash::Hash;
use tokio::time::{Duration, Instant};

/// At most one pending deadline per kind; arming again replaces it.
#[derive(Debug)]
pub struct Timers<K> {
    deadlines: HashMap<K, Instant>,
}

impl<K: Copy + Eq + Hash> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            deadlines: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Timers<K> {
    pub fn arm(&mut self, kind: K, after: Duration) {
        self.deadlines.insert(kind, Instant::now() + after);
    }

    pub fn cancel(&mut self, kind: K) {
        self.deadlines.remove(&kind);
    }

    pub fn cancel_all(&mut self) {
        self.deadlines.clear();
    }

    pub fn is_armed(&self, kind: K) -> bool {
        self.deadlines.contains_key(&kind)
    }

    /// Waits for the earliest deadline and removes it; pending forever when
    /// nothing is armed (so it can sit in a `select!`).
    pub async fn expired(&mut self) -> K {
        let next = self
            .deadlines
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(k, at)| (*k, *at));
        match next {
            Some((kind, at)) => {
                tokio::time::sleep_until(at).await;
                self.deadlines.remove(&kind);
                kind
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // On the paused clock: time advances only when every task waits.
    #[tokio::test(start_paused = true)]
    async fn fires_in_deadline_order_and_honours_cancel() {
        let mut t = Timers::default();
        t.arm("b", Duration::from_millis(20));
        t.arm("a", Duration::from_millis(10));
        t.arm("c", Duration::from_millis(30));
        t.cancel("c");
        assert_eq!(t.expired().await, "a");
        assert_eq!(t.expired().await, "b");
        assert!(!t.is_armed("c"));
        let nothing = tokio::time::timeout(Duration::from_millis(100), t.expired()).await;
        assert!(
            nothing.is_err(),
            "no timer armed: expired() must stay pending"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rearming_replaces_the_deadline() {
        let mut t = Timers::default();
        t.arm(1u8, Duration::from_millis(10));
        t.arm(1u8, Duration::from_millis(50));
        let start = Instant::now();
        assert_eq!(t.expired().await, 1);
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}

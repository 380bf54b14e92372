//! The fencing lease: how long XDP keeps answering for our VIPs after the
//! engine's last liveness evidence ([`Alive`]). Pure logic, no I/O.
//!
//! The lease is renewed only from the engine's evidence (its own watchdog
//! probe delivered back, see `membership`), never from the agent's own
//! timer: a frozen agent renews nothing, a frozen or dead engine gives no
//! evidence, and either way XDP goes silent one lease after the last
//! evidence. The deadline is counted from the evidence, not from when it is
//! written, so a late write shortens the lease, never extends it. A running
//! lease is extended off the agent's loop (`lease_keeper`): a loop busy
//! with thousands of VIFs no longer lapses it.
//!
//! Numbers (Corosync LAN-fast: token 50 ms, consensus 60 ms, probes every
//! 20 ms): takeover floor 110 ms (views seen ~115 ms after a crash, and the
//! new owner still has to process the view and plumb the VIF), auto lease
//! 55 ms. A probe comes back a few ms after it is sent, so the lease is
//! renewed every ~20 ms and survives one lost or late probe plus ~15 ms of
//! scheduling jitter; a longer hiccup lapses it (XDP then drops the VIPs'
//! traffic until the next probe, a short outage) -- but a corosync that
//! misses 55 ms also misses its 50 ms token, and the ring re-forms anyway.
//! The other half of the floor (55 ms) is the margin against the earliest
//! takeover. Corosync defaults (token 3650 ms on 3 nodes, consensus 4380 ms):
//! floor ~8 s, lease ~4 s. Spread: floor = `TokenTimeout` as configured for
//! the engine (default 500 ms, the LAN-fast profile), lease 250 ms. While a
//! Spread ring re-forms no probe comes back; a local daemon that still reads
//! our socket is the evidence meanwhile (a remote daemon gives none, so its
//! agents' VIPs go dark for the re-formation).

use crate::config::Lease;
use crate::membership::Alive;
use std::time::Duration;

/// The lease is this fraction of the takeover floor (numerator, denominator):
/// half, leaving the other half as the margin described above.
pub const AUTO_FRACTION: (u32, u32) = (1, 2);

/// The longest safe lease for a takeover floor.
pub fn safe_lease(floor: Duration) -> Duration {
    floor * AUTO_FRACTION.0 / AUTO_FRACTION.1
}

/// How long a member may go without a liveness probe of it delivered in
/// the group (while others' are) before its peers evict it (issue 11: a
/// frozen agent is replaced): its longest lease ([`safe_lease`]) plus as
/// much again as margin, i.e. the takeover floor. Its XDP has been silent
/// for at least the margin when the eviction is decided, so its VIFs may
/// answer elsewhere at once. LAN-fast: 110 ms.
pub fn evict_after(floor: Duration) -> Duration {
    floor
}

/// A gap this long in a node's own liveness evidence means its peers may
/// have evicted it (or will before it hears of it): the engine then tells
/// the agent (`MembershipEvent::Resumed`) before that evidence, so it reads
/// any eviction first and waits a little for one decided just before,
/// instead of renewing its lease on stale membership. Between the lease
/// and [`evict_after`], so that it is noticed before any peer can evict
/// (the probes it did not see were not seen by the peers either).
/// LAN-fast: 82.5 ms.
pub fn self_evict_gap(floor: Duration) -> Duration {
    let lease = safe_lease(floor);
    lease + evict_after(floor).saturating_sub(lease) / 2
}

/// The lease length to use under `setting` for a takeover floor: `None` for
/// no fencing; `capped` when a fixed lease had to be shortened to the safe
/// value (it would outlast the peers' earliest takeover).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Length {
    pub lease: Duration,
    pub capped: bool,
}

pub fn length(setting: Lease, floor: Duration) -> Option<Length> {
    let safe = safe_lease(floor);
    match setting {
        Lease::Off => None,
        Lease::Auto => Some(Length {
            lease: safe,
            capped: false,
        }),
        Lease::Fixed(d) => Some(Length {
            lease: d.min(safe),
            capped: d > safe,
        }),
    }
}

/// How long XDP may keep answering from `now`, given the evidence: the
/// lease counted from the evidence. `None`: no fencing, or the evidence is
/// too old to renew anything (the fence lapses or has lapsed).
pub fn validity(setting: Lease, alive: Alive, now: tokio::time::Instant) -> Option<Duration> {
    let len = length(setting, alive.takeover_floor)?;
    let left = len
        .lease
        .checked_sub(now.saturating_duration_since(alive.at))?;
    (!left.is_zero()).then_some(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn auto_is_half_the_floor_and_a_longer_fixed_lease_is_capped() {
        let floor = ms(110);
        assert_eq!(safe_lease(floor), ms(55));
        assert_eq!(
            length(Lease::Auto, floor),
            Some(Length {
                lease: ms(55),
                capped: false
            })
        );
        assert_eq!(
            length(Lease::Fixed(ms(2000)), floor),
            Some(Length {
                lease: ms(55),
                capped: true
            })
        );
        assert_eq!(
            length(Lease::Fixed(ms(40)), floor),
            Some(Length {
                lease: ms(40),
                capped: false
            })
        );
        assert_eq!(length(Lease::Off, floor), None);
    }

    #[test]
    fn eviction_comes_after_the_lease_and_the_self_check_between() {
        for floor in [ms(110), ms(500), ms(8030)] {
            let lease = safe_lease(floor);
            assert!(self_evict_gap(floor) > lease, "{floor:?}");
            assert!(evict_after(floor) > self_evict_gap(floor), "{floor:?}");
        }
        assert_eq!(evict_after(ms(110)), ms(110));
        assert_eq!(self_evict_gap(ms(110)), Duration::from_micros(82_500));
    }

    #[tokio::test(start_paused = true)]
    async fn validity_counts_from_the_evidence() {
        let at = tokio::time::Instant::now();
        let alive = Alive {
            at,
            takeover_floor: ms(110),
            revives: true,
        };
        assert_eq!(validity(Lease::Auto, alive, at), Some(ms(55)));
        assert_eq!(validity(Lease::Auto, alive, at + ms(30)), Some(ms(25)));
        assert_eq!(validity(Lease::Auto, alive, at + ms(55)), None);
        assert_eq!(validity(Lease::Auto, alive, at + ms(500)), None);
        assert_eq!(validity(Lease::Off, alive, at), None);
    }
}

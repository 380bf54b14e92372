//! Random schedules through the deterministic simulator: every invariant is
//! checked after every step. `WACKAMOLE_SIM_SCHEDULES=N` runs more (default
//! 100,000); `WACKAMOLE_SIM_SEED=S` replays one schedule with its trace.

use wackamole::alloc::sim;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn random_schedules_keep_every_invariant() {
    if let Some(seed) = env_u64("WACKAMOLE_SIM_SEED") {
        match sim::run_schedule(seed, true) {
            Ok(()) => return,
            Err(f) => panic!("{f}"),
        }
    }
    let count = env_u64("WACKAMOLE_SIM_SCHEDULES").unwrap_or(100_000);
    let first = env_u64("WACKAMOLE_SIM_FIRST_SEED").unwrap_or(1);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(2)
        .min(2);
    if let Err(f) = sim::run_many(first, count, threads) {
        panic!("{f}");
    }
}

/// The same with the LAN detector condemning crashed, frozen and live
/// members (issue 11): its provisional takeovers keep every invariant.
/// `WACKAMOLE_SIM_DETECTOR_SEED=S` replays one schedule with its trace.
#[test]
fn random_schedules_with_the_lan_detector_keep_every_invariant() {
    if let Some(seed) = env_u64("WACKAMOLE_SIM_DETECTOR_SEED") {
        match sim::run_schedule_with(seed, true, true) {
            Ok(()) => return,
            Err(f) => panic!("{f}"),
        }
    }
    let count = env_u64("WACKAMOLE_SIM_SCHEDULES").unwrap_or(100_000) / 2;
    let first = env_u64("WACKAMOLE_SIM_FIRST_SEED").unwrap_or(1);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(2)
        .min(2);
    if let Err(f) = sim::run_many_with(first, count, threads, true) {
        panic!("{f}");
    }
}

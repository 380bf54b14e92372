//! Arbitrary text as `wackamole.toml`: the parser never panics, every error
//! says something and names the file, and whatever is accepted is something
//! `run` can run (bounded durations that an `Instant` can carry, at most
//! MAX_ADDRESSES addresses, usable names).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use wackamole::config::*;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let host = FakeInterfaces::new(["lo", "eth0", "eth1"]);
    match parse(text, "fuzz.toml", &host) {
        Err(e) => {
            assert!(!e.issues.is_empty());
            for issue in &e.issues {
                assert!(!issue.message.trim().is_empty(), "empty message: {e}");
                assert!(issue.to_string().starts_with("fuzz.toml"), "{issue}");
            }
        }
        Ok(cfg) => {
            let addresses: usize = cfg.vifs.iter().map(|v| v.addresses.len()).sum();
            assert!(addresses <= MAX_ADDRESSES);
            assert!(!cfg.node.is_empty() && cfg.node.len() <= MAX_NODE_NAME);
            assert!(!cfg.node.chars().any(char::is_control));
            for v in &cfg.vifs {
                assert!(v.name.len() <= MAX_VIF_NAME && !v.name.chars().any(char::is_control));
            }
            let now = Instant::now();
            let mut all: Vec<Duration> = vec![
                cfg.mature,
                cfg.notify.arp_cache_interval,
                cfg.balance.interval,
                cfg.hooks.timeout,
                cfg.announce.burst_spacing,
            ];
            all.extend(cfg.xdp.lease);
            all.extend(cfg.announce.refresh_interval);
            match &cfg.engine {
                EngineConfig::Corosync(c) => {
                    all.push(c.watchdog_interval);
                    all.extend(c.watchdog_deadline);
                }
                EngineConfig::Spread(s) => {
                    all.push(s.reconnect_interval);
                    all.push(s.watchdog_deadline);
                    all.extend(s.watchdog_interval);
                }
            }
            for d in all {
                assert!(d <= Duration::from_secs(86_400), "{d:?} accepted");
                assert!(now.checked_add(d * 100).is_some());
            }
        }
    }
});

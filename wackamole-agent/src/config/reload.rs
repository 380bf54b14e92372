//! Which changes a SIGHUP may apply to a running agent, and which need a
//! restart. Reloadable: notify targets, hooks, balance settings, the
//! announcement policy and the log level; everything else is fixed at start
//! (it is part of the cluster's agreed state, or of resources set up once).
//!
//! [`Config::reloaded`] names every field of the configuration once, without
//! `..`: a new field does not compile until it is classified here as applied
//! or refused.

use super::{
    AnnounceConfig, BalanceConfig, Config, CorosyncConfig, EngineConfig, HooksConfig, LogConfig,
    NotifyConfig, SpreadConfig, XdpConfig,
};

/// What a reload of `new` over `old` would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadPlan {
    /// Changed fields the running agent may switch to now.
    pub apply: Vec<String>,
    /// Changed fields that need a restart, with the reason.
    pub refused: Vec<(String, String)>,
}

impl ReloadPlan {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty() && self.refused.is_empty()
    }

    /// Every change can be applied without a restart.
    pub fn fully_applicable(&self) -> bool {
        self.refused.is_empty()
    }

    /// `new` if it may be applied now (noted when it differs from `old`).
    fn apply<T: PartialEq + Clone>(&mut self, field: &str, old: &T, new: &T) -> T {
        if old != new {
            self.apply.push(field.to_string());
        }
        new.clone()
    }

    /// `old`, the value in force until a restart (noted when `new` differs).
    fn refuse<T: PartialEq + Clone>(&mut self, field: &str, old: &T, new: &T, why: &str) -> T {
        if old != new {
            self.refused.push((field.to_string(), why.to_string()));
        }
        old.clone()
    }
}

const AGREED: &str = "every node must agree on it: change it on all nodes and restart them";
const AT_START: &str = "set up once at start: restart the agent to change it";
const IDENTITY: &str = "identifies this node to the cluster: restart the agent to change it";
const PREFER: &str = "preferences are part of the state exchanged at each membership change: restart the agent to change them";
const LEASE: &str = "the fencing lease is armed at start: restart the agent to change it";

/// Compares two configs field by field.
pub fn reload_diff(old: &Config, new: &Config) -> ReloadPlan {
    old.reloaded(new).1
}

impl Config {
    /// The configuration a running agent switches to when `new` is loaded
    /// over it (applied fields from `new`, refused ones kept), and the plan
    /// saying which is which.
    pub fn reloaded(&self, new: &Config) -> (Config, ReloadPlan) {
        let mut p = ReloadPlan::default();
        let Config {
            node,
            weight,
            engine,
            control_socket,
            bpffs_dir,
            prefer,
            vifs,
            notify,
            balance,
            mature,
            hooks,
            xdp,
            detector,
            announce,
            metrics_listen,
            log,
        } = self;
        let NotifyConfig {
            targets,
            arp_cache,
            arp_cache_interval,
        } = notify;
        let BalanceConfig {
            enabled,
            acquisitions_per_round,
            interval,
            one_shot,
        } = balance;
        let HooksConfig {
            on_up,
            on_down,
            post_up,
            post_down,
            timeout,
        } = hooks;
        let XdpConfig {
            mode,
            lease,
            allow_private_bpffs,
            standby_addresses,
        } = xdp;
        let AnnounceConfig {
            burst_count,
            burst_spacing,
            refresh_interval,
        } = announce;
        let LogConfig { level } = log;
        let next = Config {
            node: p.refuse("node", node, &new.node, IDENTITY),
            weight: p.refuse("weight", weight, &new.weight, IDENTITY),
            engine: reloaded_engine(&mut p, engine, &new.engine),
            control_socket: p.refuse(
                "control_socket",
                control_socket,
                &new.control_socket,
                AT_START,
            ),
            bpffs_dir: p.refuse("bpffs_dir", bpffs_dir, &new.bpffs_dir, AT_START),
            prefer: p.refuse("prefer", prefer, &new.prefer, PREFER),
            vifs: p.refuse("vif", vifs, &new.vifs, AGREED),
            mature: p.refuse("mature", mature, &new.mature, AT_START),
            xdp: XdpConfig {
                mode: p.refuse("xdp.mode", mode, &new.xdp.mode, AT_START),
                lease: p.refuse("xdp.lease", lease, &new.xdp.lease, LEASE),
                allow_private_bpffs: p.refuse(
                    "xdp.allow_private_bpffs",
                    allow_private_bpffs,
                    &new.xdp.allow_private_bpffs,
                    AT_START,
                ),
                standby_addresses: p.refuse(
                    "xdp.standby_addresses",
                    standby_addresses,
                    &new.xdp.standby_addresses,
                    AT_START,
                ),
            },
            detector: p.refuse("detector", detector, &new.detector, AGREED),
            metrics_listen: p.refuse(
                "metrics_listen",
                metrics_listen,
                &new.metrics_listen,
                AT_START,
            ),
            notify: NotifyConfig {
                targets: p.apply("notify.targets", targets, &new.notify.targets),
                arp_cache: p.apply("notify.arp_cache", arp_cache, &new.notify.arp_cache),
                arp_cache_interval: p.apply(
                    "notify.arp_cache_interval",
                    arp_cache_interval,
                    &new.notify.arp_cache_interval,
                ),
            },
            balance: BalanceConfig {
                enabled: p.apply("balance.enabled", enabled, &new.balance.enabled),
                acquisitions_per_round: p.apply(
                    "balance.acquisitions_per_round",
                    acquisitions_per_round,
                    &new.balance.acquisitions_per_round,
                ),
                interval: p.apply("balance.interval", interval, &new.balance.interval),
                one_shot: p.apply("balance.one_shot", one_shot, &new.balance.one_shot),
            },
            hooks: HooksConfig {
                on_up: p.apply("hooks.on_up", on_up, &new.hooks.on_up),
                on_down: p.apply("hooks.on_down", on_down, &new.hooks.on_down),
                post_up: p.apply("hooks.post_up", post_up, &new.hooks.post_up),
                post_down: p.apply("hooks.post_down", post_down, &new.hooks.post_down),
                timeout: p.apply("hooks.timeout", timeout, &new.hooks.timeout),
            },
            announce: AnnounceConfig {
                burst_count: p.apply(
                    "announce.burst_count",
                    burst_count,
                    &new.announce.burst_count,
                ),
                burst_spacing: p.apply(
                    "announce.burst_spacing",
                    burst_spacing,
                    &new.announce.burst_spacing,
                ),
                refresh_interval: p.apply(
                    "announce.refresh_interval",
                    refresh_interval,
                    &new.announce.refresh_interval,
                ),
            },
            log: LogConfig {
                level: p.apply("log.level", level, &new.log.level),
            },
        };
        (next, p)
    }
}

/// Every engine setting needs a restart; a change of engine kind is one refusal.
fn reloaded_engine(p: &mut ReloadPlan, old: &EngineConfig, new: &EngineConfig) -> EngineConfig {
    match (old, new) {
        (EngineConfig::Corosync(a), EngineConfig::Corosync(b)) => {
            let CorosyncConfig {
                group,
                watchdog_interval,
                watchdog_deadline,
                require_quorum,
            } = a;
            EngineConfig::Corosync(CorosyncConfig {
                group: p.refuse("engine.group", group, &b.group, AGREED),
                watchdog_interval: p.refuse(
                    "engine.watchdog_interval",
                    watchdog_interval,
                    &b.watchdog_interval,
                    AT_START,
                ),
                watchdog_deadline: p.refuse(
                    "engine.watchdog_deadline",
                    watchdog_deadline,
                    &b.watchdog_deadline,
                    AT_START,
                ),
                require_quorum: p.refuse(
                    "engine.require_quorum",
                    require_quorum,
                    &b.require_quorum,
                    AT_START,
                ),
            })
        }
        (EngineConfig::Spread(a), EngineConfig::Spread(b)) => {
            let SpreadConfig {
                daemon,
                group,
                reconnect_interval,
                watchdog_interval,
                watchdog_deadline,
                trusted_uid,
                takeover_floor,
            } = a;
            EngineConfig::Spread(SpreadConfig {
                takeover_floor: p.refuse(
                    "engine.takeover_floor",
                    takeover_floor,
                    &b.takeover_floor,
                    AT_START,
                ),
                trusted_uid: p.refuse("engine.trusted_uid", trusted_uid, &b.trusted_uid, AT_START),
                group: p.refuse("engine.group", group, &b.group, AGREED),
                daemon: p.refuse("engine.daemon", daemon, &b.daemon, AT_START),
                reconnect_interval: p.refuse(
                    "engine.reconnect_interval",
                    reconnect_interval,
                    &b.reconnect_interval,
                    AT_START,
                ),
                watchdog_interval: p.refuse(
                    "engine.watchdog_interval",
                    watchdog_interval,
                    &b.watchdog_interval,
                    AT_START,
                ),
                watchdog_deadline: p.refuse(
                    "engine.watchdog_deadline",
                    watchdog_deadline,
                    &b.watchdog_deadline,
                    AT_START,
                ),
            })
        }
        _ => {
            p.refuse("engine.kind", &0, &1, AGREED);
            old.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, AnyInterface};
    use std::time::Duration;

    fn cfg(extra: &str) -> Config {
        let text = format!(
            "node = \"n\"\n{extra}\n[engine]\nkind = \"corosync\"\n\
             [[vif]]\naddresses = [\"eth0:192.0.2.1/24\"]\n"
        );
        parse(&text, "t.toml", &AnyInterface).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn standby_addresses_default_off_and_need_a_restart() {
        let off = cfg("");
        assert!(!off.xdp.standby_addresses);
        let on = cfg("[xdp]\nstandby_addresses = true");
        assert!(on.xdp.standby_addresses);
        let (next, plan) = off.reloaded(&on);
        let refused: Vec<&str> = plan.refused.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(refused, ["xdp.standby_addresses"]);
        assert!(!next.xdp.standby_addresses);
        let wrong =
            "node = \"n\"\n[xdp]\nstandby_addresses = \"yes\"\n[engine]\nkind = \"corosync\"\n\
                     [[vif]]\naddresses = [\"eth0:192.0.2.1/24\"]\n";
        let err = parse(wrong, "t.toml", &AnyInterface).expect_err("a string is not a bool");
        assert!(err.to_string().contains("standby_addresses"), "{err}");
    }

    #[test]
    fn a_detector_change_needs_a_restart() {
        let section = |listen: &str, interval: &str| {
            format!(
                "[detector]\nenabled = true\nlisten = \"{listen}\"\npeers = [\"10.0.0.2:5407\"]\ninterval = \"{interval}\""
            )
        };
        let none = cfg("");
        let on = cfg(&section("10.0.0.1:5407", "5ms"));
        let moved = cfg(&section("10.0.0.9:5407", "5ms"));
        let slower = cfg(&section("10.0.0.1:5407", "10ms\"\ndeadline = \"60ms"));
        for (old, new) in [(&none, &on), (&on, &none), (&on, &moved), (&on, &slower)] {
            let (next, plan) = old.reloaded(new);
            assert!(plan.apply.is_empty(), "{:?}", plan.apply);
            let refused: Vec<&str> = plan.refused.iter().map(|r| r.0.as_str()).collect();
            assert_eq!(refused, ["detector"]);
            assert!(plan.refused[0].1.contains("restart"), "{:?}", plan.refused);
            assert_eq!(next.detector, old.detector);
        }
        assert!(on.reloaded(&on.clone()).1.is_empty());
    }

    #[test]
    fn the_reloaded_config_takes_applied_fields_and_keeps_refused_ones() {
        let old = cfg("weight = 1\n[announce]\nburst_count = 3\n[xdp]\nlease = \"2s\"");
        let new = cfg("weight = 4\n[announce]\nburst_count = 7\n[xdp]\nlease = \"5s\"");
        let (next, plan) = old.reloaded(&new);
        assert_eq!(plan.apply, ["announce.burst_count"]);
        let refused: Vec<&str> = plan.refused.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(refused, ["weight", "xdp.lease"]);
        assert_eq!(next.announce.burst_count, 7);
        assert_eq!(next.weight, 1);
        assert_eq!(
            next.xdp.lease,
            crate::config::Lease::Fixed(Duration::from_secs(2))
        );
        // Everything else is as before.
        let mut expected = old.clone();
        expected.announce.burst_count = 7;
        assert_eq!(next, expected);
        assert_eq!(old.reloaded(&old), (old.clone(), ReloadPlan::default()));
    }
}

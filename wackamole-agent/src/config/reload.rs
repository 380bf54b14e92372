//! Which changes a SIGHUP may apply to a running agent, and which need a
//! restart. Reloadable: notify targets, hooks, balance settings, the
//! announcement policy and the log level; everything else is fixed at start
//! (it is part of the cluster's agreed state, or of resources set up once).

use super::{Config, EngineConfig};

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
}

const AGREED: &str = "every node must agree on it: change it on all nodes and restart them";
const AT_START: &str = "set up once at start: restart the agent to change it";
const IDENTITY: &str = "identifies this node to the cluster: restart the agent to change it";

/// Compares two configs field by field.
pub fn reload_diff(old: &Config, new: &Config) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    let mut refuse = |changed: bool, field: &str, why: &str| {
        if changed {
            plan.refused.push((field.to_string(), why.to_string()));
        }
    };
    refuse(old.node != new.node, "node", IDENTITY);
    refuse(old.weight != new.weight, "weight", IDENTITY);
    match (&old.engine, &new.engine) {
        (EngineConfig::Corosync(a), EngineConfig::Corosync(b)) => {
            refuse(a.group != b.group, "engine.group", AGREED);
            refuse(
                a.watchdog_interval != b.watchdog_interval,
                "engine.watchdog_interval",
                AT_START,
            );
            refuse(
                a.watchdog_deadline != b.watchdog_deadline,
                "engine.watchdog_deadline",
                AT_START,
            );
            refuse(
                a.require_quorum != b.require_quorum,
                "engine.require_quorum",
                AT_START,
            );
        }
        (EngineConfig::Spread(a), EngineConfig::Spread(b)) => {
            refuse(a.group != b.group, "engine.group", AGREED);
            refuse(a.daemon != b.daemon, "engine.daemon", AT_START);
            refuse(
                a.reconnect_interval != b.reconnect_interval,
                "engine.reconnect_interval",
                AT_START,
            );
            refuse(
                a.watchdog_interval != b.watchdog_interval,
                "engine.watchdog_interval",
                AT_START,
            );
            refuse(
                a.watchdog_deadline != b.watchdog_deadline,
                "engine.watchdog_deadline",
                AT_START,
            );
        }
        _ => refuse(true, "engine.kind", AGREED),
    }
    refuse(
        old.control_socket != new.control_socket,
        "control_socket",
        AT_START,
    );
    refuse(old.bpffs_dir != new.bpffs_dir, "bpffs_dir", AT_START);
    refuse(old.prefer != new.prefer, "prefer", "preferences are part of the state exchanged at each membership change: restart the agent to change them");
    refuse(old.vifs != new.vifs, "vif", AGREED);
    refuse(old.mature != new.mature, "mature", AT_START);
    refuse(old.xdp.mode != new.xdp.mode, "xdp.mode", AT_START);
    refuse(
        old.xdp.allow_private_bpffs != new.xdp.allow_private_bpffs,
        "xdp.allow_private_bpffs",
        AT_START,
    );
    refuse(
        old.xdp.lease != new.xdp.lease,
        "xdp.lease",
        "the fencing lease is armed at start: restart the agent to change it",
    );
    refuse(
        old.metrics_listen != new.metrics_listen,
        "metrics_listen",
        AT_START,
    );

    let mut apply = |changed: bool, field: &str| {
        if changed {
            plan.apply.push(field.to_string());
        }
    };
    apply(old.notify.targets != new.notify.targets, "notify.targets");
    apply(
        old.notify.arp_cache != new.notify.arp_cache,
        "notify.arp_cache",
    );
    apply(
        old.notify.arp_cache_interval != new.notify.arp_cache_interval,
        "notify.arp_cache_interval",
    );
    apply(
        old.balance.enabled != new.balance.enabled,
        "balance.enabled",
    );
    apply(
        old.balance.acquisitions_per_round != new.balance.acquisitions_per_round,
        "balance.acquisitions_per_round",
    );
    apply(
        old.balance.interval != new.balance.interval,
        "balance.interval",
    );
    apply(
        old.balance.one_shot != new.balance.one_shot,
        "balance.one_shot",
    );
    apply(old.hooks.on_up != new.hooks.on_up, "hooks.on_up");
    apply(old.hooks.on_down != new.hooks.on_down, "hooks.on_down");
    apply(old.hooks.post_up != new.hooks.post_up, "hooks.post_up");
    apply(
        old.hooks.post_down != new.hooks.post_down,
        "hooks.post_down",
    );
    apply(old.hooks.timeout != new.hooks.timeout, "hooks.timeout");
    apply(
        old.announce.burst_count != new.announce.burst_count,
        "announce.burst_count",
    );
    apply(
        old.announce.burst_spacing != new.announce.burst_spacing,
        "announce.burst_spacing",
    );
    apply(
        old.announce.refresh_interval != new.announce.refresh_interval,
        "announce.refresh_interval",
    );
    apply(old.log.level != new.log.level, "log.level");
    plan
}

//! The file as written: serde structs that keep every value's span so
//! validation can name the line. Unknown keys are refused here.

use serde::Deserialize;
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub node: Option<S<String>>,
    pub weight: Option<S<i64>>,
    pub engine: Option<RawEngine>,
    pub control_socket: Option<S<String>>,
    pub bpffs_dir: Option<S<String>>,
    pub prefer: Option<S<toml::Value>>,
    #[serde(default)]
    pub vif: Vec<RawVif>,
    pub notify: Option<RawNotify>,
    pub balance: Option<RawBalance>,
    pub mature: Option<S<toml::Value>>,
    pub hooks: Option<RawHooks>,
    pub xdp: Option<RawXdp>,
    pub detector: Option<S<RawDetector>>,
    pub announce: Option<RawAnnounce>,
    pub metrics_listen: Option<S<String>>,
    pub log: Option<RawLog>,
}

/// Both engines' keys; validation refuses the ones foreign to `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEngine {
    pub kind: Option<S<String>>,
    pub group: Option<S<String>>,
    pub daemon: Option<S<toml::Value>>,
    pub reconnect_interval: Option<S<toml::Value>>,
    pub watchdog_interval: Option<S<toml::Value>>,
    pub watchdog_deadline: Option<S<toml::Value>>,
    pub require_quorum: Option<S<bool>>,
    pub trusted_uid: Option<S<toml::Value>>,
    pub takeover_floor: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVif {
    pub name: Option<S<String>>,
    pub addresses: Option<S<Vec<S<String>>>>,
    pub nd_router: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    #[serde(default)]
    pub targets: Vec<S<RawTarget>>,
    pub arp_cache: Option<S<bool>>,
    pub arp_cache_interval: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub range: Option<S<String>>,
    pub throttle: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBalance {
    pub acquisitions_per_round: Option<S<toml::Value>>,
    pub interval: Option<S<toml::Value>>,
    pub one_shot: Option<S<bool>>,
    pub enabled: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHooks {
    pub on_up: Option<S<String>>,
    pub on_down: Option<S<String>>,
    pub post_up: Option<S<String>>,
    pub post_down: Option<S<String>>,
    pub timeout: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawXdp {
    pub mode: Option<S<String>>,
    pub lease: Option<S<toml::Value>>,
    pub allow_private_bpffs: Option<S<bool>>,
    pub standby_addresses: Option<S<bool>>,
}

/// `[detector]`: spanned as a whole so a missing key can name its line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDetector {
    pub enabled: Option<S<bool>>,
    pub listen: Option<S<String>>,
    pub peers: Option<S<Vec<S<String>>>>,
    pub interval: Option<S<toml::Value>>,
    pub deadline: Option<S<toml::Value>>,
    pub mode: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnnounce {
    pub burst_count: Option<S<i64>>,
    pub burst_spacing: Option<S<toml::Value>>,
    pub refresh_interval: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub level: Option<S<String>>,
}

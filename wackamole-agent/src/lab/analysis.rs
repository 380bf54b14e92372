//! Pure analysis of probe records: outages, lost probes, duplicate ownership,
//! failover times per phase, aggregates over repetitions, and the parsers for
//! `/proc/PID/status` and `/proc/PID/stat` used to sample the agent's memory and
//! CPU (the reading itself is in [`super::resources`]). No I/O.
//!
//! Model: the prober sends *rounds*; round `r` probes every VIP once, starting
//! at `round_sent_ns[r]`. Each answer names the VIP, the round, the node that
//! answered, the echoed send time and the receive time. A probe is *lost* when
//! no node answered it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One reply received by the prober.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Index into [`ProbeRun::vips`].
    pub vip: u32,
    /// The probe's round (sequence number).
    pub round: u32,
    /// Index into [`ProbeRun::nodes`].
    pub node: u16,
    /// When the probe was sent (echoed by the responder), monotonic ns.
    pub sent_ns: u64,
    /// When the reply was received, monotonic ns.
    pub recv_ns: u64,
}

/// Everything one prober run recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeRun {
    /// The probed addresses, in VIP index order.
    pub vips: Vec<std::net::IpAddr>,
    /// Names of the nodes that answered, in node index order.
    pub nodes: Vec<String>,
    /// Target interval between rounds.
    pub interval_ns: u64,
    /// Start time of every round that was sent.
    pub round_sent_ns: Vec<u64>,
    /// Probes that could not be sent, as (vip, round); they count as neither
    /// sent nor lost.
    pub unsent: Vec<(u32, u32)>,
    /// Replies, in arrival order.
    pub answers: Vec<Answer>,
    /// Replies dropped because the record cap was reached.
    pub dropped_answers: u64,
    /// Datagrams that were not valid replies to our probes (bad format, unknown
    /// VIP, reply from a source address other than the probed VIP).
    pub invalid_replies: u64,
    /// Rounds that started later than one interval after their schedule.
    pub late_rounds: u64,
    /// Replies the kernel dropped at the prober's socket (receive buffer full):
    /// probes that look lost because of the measurement itself.
    #[serde(default)]
    pub socket_drops: u64,
}

impl ProbeRun {
    /// Probes actually sent.
    pub fn probes_sent(&self) -> u64 {
        (self.vips.len() as u64 * self.round_sent_ns.len() as u64)
            .saturating_sub(self.unsent.len() as u64)
    }

    /// Achieved probe rate (probes per second) over the sending period.
    pub fn probe_rate_hz(&self) -> f64 {
        match (self.round_sent_ns.first(), self.round_sent_ns.last()) {
            (Some(first), Some(last)) if last > first => {
                let rounds = (self.round_sent_ns.len() - 1) as f64;
                rounds * self.vips.len() as f64 * 1e9 / (last - first) as f64
            }
            _ => 0.0,
        }
    }

    /// Achieved rounds per second (the per-VIP probe rate).
    pub fn round_rate_hz(&self) -> f64 {
        if self.vips.is_empty() {
            return 0.0;
        }
        self.probe_rate_hz() / self.vips.len() as f64
    }

    /// The same run restricted to the probed addresses `keep` selects
    /// (renumbered in order), e.g. one family of a dual-stack run: both
    /// families then have figures from the same faults at the same instants.
    pub fn only(&self, keep: impl Fn(&std::net::IpAddr) -> bool) -> ProbeRun {
        let mut renumber = vec![None; self.vips.len()];
        let mut vips = Vec::new();
        for (i, ip) in self.vips.iter().enumerate() {
            if keep(ip) {
                renumber[i] = Some(vips.len() as u32);
                vips.push(*ip);
            }
        }
        let new = |v: u32| renumber.get(v as usize).copied().flatten();
        // Every field named: `..self.clone()` would copy every answer first.
        ProbeRun {
            vips,
            nodes: self.nodes.clone(),
            interval_ns: self.interval_ns,
            round_sent_ns: self.round_sent_ns.clone(),
            unsent: self
                .unsent
                .iter()
                .filter_map(|&(v, r)| Some((new(v)?, r)))
                .collect(),
            answers: self
                .answers
                .iter()
                .filter_map(|a| {
                    Some(Answer {
                        vip: new(a.vip)?,
                        ..*a
                    })
                })
                .collect(),
            dropped_answers: self.dropped_answers,
            invalid_replies: self.invalid_replies,
            late_rounds: self.late_rounds,
            socket_drops: self.socket_drops,
        }
    }

    /// Looks up a node index by name.
    pub fn node_index(&self, name: &str) -> Option<u16> {
        self.nodes
            .iter()
            .position(|n| n == name)
            .and_then(|i| u16::try_from(i).ok())
    }
}

/// A fault injected during a run (a node killed, a link cut, a node joining).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Short label, e.g. `kill-n2` or `rejoin-n2`.
    pub name: String,
    /// When the fault was injected, monotonic ns.
    pub fault_ns: u64,
    /// When the agents got the membership view that reflects the fault, if
    /// known (the failover bench in detector mode act: or the survivors'
    /// condemnation of the victim, whichever came first).
    pub view_ns: Option<u64>,
}

/// Analysis parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Width of the window in which answers from two different nodes count as
    /// duplicate ownership.
    pub dup_window_ns: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            dup_window_ns: 1_000_000,
        }
    }
}

/// A run of consecutive lost probes of one VIP between two answered probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub vip: u32,
    /// Send time of the first unanswered probe.
    pub start_ns: u64,
    /// Send time of the first answered probe after it.
    pub end_ns: u64,
    /// Probes lost in it.
    pub lost: u64,
}

impl Outage {
    pub fn len_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// What happened to the VIPs around one [`Phase`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    pub name: String,
    pub fault_ns: u64,
    pub view_ns: Option<u64>,
    /// VIPs answered by a node other than their owner before the fault.
    pub moved_vips: u64,
    /// VIPs that were answered before the fault, did not move and had no
    /// answer to the last probe sent in the phase: left unserved.
    pub unserved_vips: u64,
    /// Fault → first answer from the new owner, slowest moved VIP.
    pub failover_ns: Option<u64>,
    /// Fault → first answer from the new owner, median over moved VIPs.
    pub failover_median_ns: Option<u64>,
    /// Fault → view (needs `view_ns`).
    pub detection_ns: Option<u64>,
    /// View → first answer from the new owner, slowest moved VIP (needs `view_ns`).
    pub agent_ns: Option<u64>,
    /// Longest outage of any VIP that overlaps the phase.
    pub worst_outage: Option<Outage>,
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Probes sent (rounds × VIPs less the unsent ones).
    pub probes_sent: u64,
    /// Replies recorded, duplicates included.
    pub answers: u64,
    /// Probes nobody answered, including those before a VIP's first answer
    /// and after its last.
    pub lost_probes: u64,
    /// VIPs that never answered.
    pub never_answered: Vec<u32>,
    /// Longest gap between answered probes of any VIP.
    pub worst_outage: Option<Outage>,
    /// Sum over VIPs of the windows in which two different nodes answered.
    pub duplicate_owner_ns: u64,
    /// The same, for the worst VIP.
    pub worst_vip_duplicate_ns: u64,
    pub probe_rate_hz: f64,
    pub round_rate_hz: f64,
    /// Probe round-trip time (reply received − probe sent): median, 99th
    /// percentile and maximum. Large values mean a lagging responder or prober,
    /// i.e. an overloaded measurement rather than a slow failover.
    #[serde(default)]
    pub rtt_median_ns: u64,
    #[serde(default)]
    pub rtt_p99_ns: u64,
    #[serde(default)]
    pub rtt_max_ns: u64,
    /// Rounds the prober started late (it could not keep the interval).
    #[serde(default)]
    pub late_rounds: u64,
    /// Replies dropped at the prober's socket (see [`ProbeRun::socket_drops`]).
    #[serde(default)]
    pub prober_socket_drops: u64,
    pub phases: Vec<PhaseResult>,
}

/// The answers to one VIP's probes.
struct VipTimeline {
    /// (round, node, recv_ns, sent_ns), sorted by round then recv.
    answers: Vec<(u32, u16, u64, u64)>,
}

fn timelines(run: &ProbeRun) -> Vec<VipTimeline> {
    let mut per_vip: Vec<VipTimeline> = (0..run.vips.len())
        .map(|_| VipTimeline {
            answers: Vec::new(),
        })
        .collect();
    let rounds = run.round_sent_ns.len();
    for a in &run.answers {
        if (a.round as usize) >= rounds {
            continue;
        }
        if let Some(t) = per_vip.get_mut(a.vip as usize) {
            t.answers.push((a.round, a.node, a.recv_ns, a.sent_ns));
        }
    }
    for t in &mut per_vip {
        t.answers.sort_unstable();
    }
    per_vip
}

/// Analyses one run. Phases are taken in time order; each extends to the next
/// phase's fault (or the end of the run).
pub fn analyse(run: &ProbeRun, phases: &[Phase], params: Params) -> RunResult {
    let per_vip = timelines(run);
    let rounds = run.round_sent_ns.len() as u32;
    let mut unsent: Vec<Vec<u32>> = vec![Vec::new(); run.vips.len()];
    for &(v, r) in &run.unsent {
        if let Some(u) = unsent.get_mut(v as usize) {
            u.push(r);
        }
    }
    for u in &mut unsent {
        u.sort_unstable();
        u.dedup();
    }
    let round_ns = |r: u32| run.round_sent_ns.get(r as usize).copied().unwrap_or(0);

    let mut probes_sent = 0u64;
    let mut lost_probes = 0u64;
    let mut never_answered = Vec::new();
    let mut outages: Vec<Outage> = Vec::new();
    let mut duplicate_owner_ns = 0u64;
    let mut worst_vip_duplicate_ns = 0u64;
    let t0 = run.round_sent_ns.first().copied().unwrap_or(0);
    let window = params.dup_window_ns.max(1);

    for (vip, t) in per_vip.iter().enumerate() {
        let vip = vip as u32;
        let unsent_here = &unsent[vip as usize];
        let is_sent = |r: u32| unsent_here.binary_search(&r).is_err();
        // Distinct answered rounds, in order.
        let mut answered: Vec<u32> = t.answers.iter().map(|a| a.0).collect();
        answered.dedup();
        let sent_rounds =
            rounds as u64 - unsent_here.iter().filter(|&&r| r < rounds).count() as u64;
        probes_sent += sent_rounds;
        lost_probes += sent_rounds.saturating_sub(answered.len() as u64);
        if answered.is_empty() {
            if sent_rounds > 0 {
                never_answered.push(vip);
            }
            continue;
        }
        for w in answered.windows(2) {
            let (a, b) = (w[0], w[1]);
            let lost = (a + 1..b).filter(|&r| is_sent(r)).count() as u64;
            if lost > 0 {
                let first_lost = (a + 1..b).find(|&r| is_sent(r)).unwrap_or(a + 1);
                outages.push(Outage {
                    vip,
                    start_ns: round_ns(first_lost),
                    end_ns: round_ns(b),
                    lost,
                });
            }
        }
        // Duplicate ownership: windows (by probe send time) answered by >1 node.
        let mut by_window: Vec<(u64, u16)> = t
            .answers
            .iter()
            .map(|&(_, node, _, sent)| (sent.saturating_sub(t0) / window, node))
            .collect();
        by_window.sort_unstable();
        by_window.dedup();
        // by_window is sorted and deduplicated: a window with several entries
        // was answered by several nodes.
        let mut distinct_dup = 0u64;
        for (i, w) in by_window.iter().enumerate() {
            let first_of_window = i == 0 || by_window[i - 1].0 != w.0;
            let has_second = by_window.get(i + 1).is_some_and(|n| n.0 == w.0);
            if first_of_window && has_second {
                distinct_dup += 1;
            }
        }
        let dup_ns = distinct_dup * window;
        duplicate_owner_ns += dup_ns;
        worst_vip_duplicate_ns = worst_vip_duplicate_ns.max(dup_ns);
    }

    let worst_outage = worst(outages.iter());
    let rtt = rtt_stats(run);
    let end_ns = run.round_sent_ns.last().copied().unwrap_or(0);
    let mut sorted_phases: Vec<&Phase> = phases.iter().collect();
    sorted_phases.sort_by_key(|p| p.fault_ns);
    let phase_results = sorted_phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let until = sorted_phases
                .get(i + 1)
                .map(|n| n.fault_ns)
                .unwrap_or(u64::MAX);
            phase_result(run, &per_vip, &outages, p, until, end_ns)
        })
        .collect();

    RunResult {
        probes_sent,
        answers: run.answers.len() as u64,
        lost_probes,
        never_answered,
        worst_outage,
        duplicate_owner_ns,
        worst_vip_duplicate_ns,
        probe_rate_hz: run.probe_rate_hz(),
        round_rate_hz: run.round_rate_hz(),
        rtt_median_ns: rtt.0,
        rtt_p99_ns: rtt.1,
        rtt_max_ns: rtt.2,
        late_rounds: run.late_rounds,
        prober_socket_drops: run.socket_drops,
        phases: phase_results,
    }
}

/// (median, p99 nearest rank, max) of the answers' round-trip times.
fn rtt_stats(run: &ProbeRun) -> (u64, u64, u64) {
    let mut rtts: Vec<u64> = run
        .answers
        .iter()
        .map(|a| a.recv_ns.saturating_sub(a.sent_ns))
        .collect();
    if rtts.is_empty() {
        return (0, 0, 0);
    }
    rtts.sort_unstable();
    let n = rtts.len();
    let rank = |q: f64| rtts[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    (rank(0.5), rank(0.99), rtts[n - 1])
}

fn worst<'a>(outages: impl Iterator<Item = &'a Outage>) -> Option<Outage> {
    outages
        .max_by_key(|o| (o.len_ns(), std::cmp::Reverse(o.vip)))
        .copied()
}

fn phase_result(
    run: &ProbeRun,
    per_vip: &[VipTimeline],
    outages: &[Outage],
    phase: &Phase,
    until_ns: u64,
    end_ns: u64,
) -> PhaseResult {
    let fault = phase.fault_ns;
    let mut failovers: Vec<u64> = Vec::new();
    let mut first_new_answers: Vec<u64> = Vec::new();
    let mut unserved = 0u64;
    // Last round sent inside the phase window.
    let last_round_in_phase = run
        .round_sent_ns
        .iter()
        .rposition(|&t| t >= fault && t < until_ns);
    for t in per_vip {
        // Owner before the fault: who answered the latest probe sent before it.
        let Some(owner) = t
            .answers
            .iter()
            .filter(|a| a.3 < fault)
            .max_by_key(|a| (a.3, a.2))
            .map(|a| a.1)
        else {
            continue;
        };
        let first_new = t
            .answers
            .iter()
            .filter(|a| a.1 != owner && a.2 >= fault && a.2 < until_ns)
            .map(|a| a.2)
            .min();
        match first_new {
            Some(recv) => {
                failovers.push(recv - fault);
                first_new_answers.push(recv);
            }
            None => {
                let served_at_end = last_round_in_phase
                    .is_some_and(|last| t.answers.iter().any(|a| a.0 as usize == last));
                if last_round_in_phase.is_some() && !served_at_end {
                    unserved += 1;
                }
            }
        }
    }
    let failover_ns = failovers.iter().copied().max();
    let failover_median_ns = median_u64(&mut failovers.clone());
    let detection_ns = phase.view_ns.map(|v| v.saturating_sub(fault));
    let agent_ns = match (phase.view_ns, first_new_answers.iter().max()) {
        (Some(v), Some(&last)) => Some(last.saturating_sub(v)),
        _ => None,
    };
    let phase_end = until_ns.min(end_ns.saturating_add(1));
    let worst_outage = worst(
        outages
            .iter()
            .filter(|o| o.end_ns > fault && o.start_ns < phase_end),
    );
    PhaseResult {
        name: phase.name.clone(),
        fault_ns: fault,
        view_ns: phase.view_ns,
        moved_vips: failovers.len() as u64,
        unserved_vips: unserved,
        failover_ns,
        failover_median_ns,
        detection_ns,
        agent_ns,
        worst_outage,
    }
}

fn median_u64(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        // Midpoint without overflow.
        v[n / 2 - 1] + (v[n / 2] - v[n / 2 - 1]) / 2
    })
}

/// Median, 95th percentile (nearest rank) and maximum of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for an empty set; NaNs are ignored.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        // Nearest rank: the smallest value with at least 95% of values at or below it.
        let rank = (0.95 * n as f64).ceil() as usize;
        let p95 = v[rank.clamp(1, n) - 1];
        Some(Summary {
            n,
            median,
            p95,
            max: v[n - 1],
        })
    }
}

/// Figure names used in the aggregate, all in milliseconds or counts.
pub mod figure {
    pub const WORST_OUTAGE_MS: &str = "worst_outage_ms";
    pub const LOST_PROBES: &str = "lost_probes";
    pub const DUPLICATE_OWNER_MS: &str = "duplicate_owner_ms";
    pub const FAILOVER_MS: &str = "failover_ms";
    pub const DETECTION_MS: &str = "detection_ms";
    pub const AGENT_MS: &str = "agent_ms";
    pub const UNSERVED_VIPS: &str = "unserved_vips";
    pub const MOVED_VIPS: &str = "moved_vips";
    pub const NEVER_ANSWERED_VIPS: &str = "never_answered_vips";
    pub const PROBE_RATE_HZ: &str = "probe_rate_hz";
    pub const ROUND_RATE_HZ: &str = "round_rate_hz";
    pub const LATE_ROUNDS: &str = "late_rounds";
    pub const RTT_MEDIAN_MS: &str = "rtt_median_ms";
    pub const RTT_P99_MS: &str = "rtt_p99_ms";
    pub const RTT_MAX_MS: &str = "rtt_max_ms";
    pub const PROBER_SOCKET_DROPS: &str = "prober_socket_drops";
    pub const RSS_KIB: &str = "rss_kib";
    pub const CPU_PERCENT: &str = "cpu_percent";
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Collects the figures of several repetitions of one scenario: run-wide ones
/// under their name, phase ones under `name` and `name[phase]`.
pub fn aggregate(runs: &[RunResult], usage: &[ResourceUsage]) -> BTreeMap<String, Summary> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut push = |k: &str, v: f64| values.entry(k.to_string()).or_default().push(v);
    for r in runs {
        push(
            figure::WORST_OUTAGE_MS,
            r.worst_outage.map_or(0.0, |o| ms(o.len_ns())),
        );
        push(figure::LOST_PROBES, r.lost_probes as f64);
        push(figure::DUPLICATE_OWNER_MS, ms(r.duplicate_owner_ns));
        push(figure::NEVER_ANSWERED_VIPS, r.never_answered.len() as f64);
        push(figure::PROBE_RATE_HZ, r.probe_rate_hz);
        push(figure::ROUND_RATE_HZ, r.round_rate_hz);
        push(figure::LATE_ROUNDS, r.late_rounds as f64);
        push(figure::RTT_MEDIAN_MS, ms(r.rtt_median_ns));
        push(figure::RTT_P99_MS, ms(r.rtt_p99_ns));
        push(figure::RTT_MAX_MS, ms(r.rtt_max_ns));
        push(figure::PROBER_SOCKET_DROPS, r.prober_socket_drops as f64);
        for p in &r.phases {
            let mut both = |k: &str, v: f64| {
                push(k, v);
                push(&format!("{k}[{}]", p.name), v);
            };
            if let Some(f) = p.failover_ns {
                both(figure::FAILOVER_MS, ms(f));
            }
            if let Some(d) = p.detection_ns {
                both(figure::DETECTION_MS, ms(d));
            }
            if let Some(a) = p.agent_ns {
                both(figure::AGENT_MS, ms(a));
            }
            both(figure::UNSERVED_VIPS, p.unserved_vips as f64);
            both(figure::MOVED_VIPS, p.moved_vips as f64);
        }
    }
    for u in usage {
        push(figure::RSS_KIB, u.rss_kib as f64);
        push(figure::CPU_PERCENT, u.cpu_percent);
    }
    values
        .into_iter()
        .filter_map(|(k, v)| Summary::of(&v).map(|s| (k, s)))
        .collect()
}

// ---- process resources -------------------------------------------------------

/// One reading of a process's memory and CPU counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSample {
    /// Monotonic time of the reading.
    pub at_ns: u64,
    /// Resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Time on a CPU of all its threads, ns (`/proc/PID/task/*/schedstat`):
    /// exact where ticks are 10 ms samples, which at an idle agent's
    /// 0.1-0.5 % are a handful per 10 s.
    pub cpu_ns: Option<u64>,
}

/// Memory and CPU use of a process over an interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// Resident set size, KiB: the largest of the samples taken.
    pub rss_kib: u64,
    /// CPU time used over the interval, as a percentage of one core.
    pub cpu_percent: f64,
}

/// Parses `VmRSS:` (KiB) from the text of `/proc/PID/status`.
pub fn parse_vmrss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        _ => None,
    }
}

/// Parses utime + stime (clock ticks) from the text of `/proc/PID/stat`.
/// The command name (field 2) may contain spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": state(3) ppid(4) ... utime(14) stime(15): indices 11 and 12 here.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    utime.checked_add(stime)
}

/// The time on a CPU in a `schedstat` line (its first field, ns).
pub fn parse_schedstat_run_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// CPU percentage (of one core) and the larger RSS of two samples: from
/// the threads' run time where both samples have it and it grew (a thread
/// that ended takes its time with it), else from the clock ticks.
pub fn usage_between(a: &ProcSample, b: &ProcSample, ticks_per_s: u64) -> Option<ResourceUsage> {
    let dt = b.at_ns.checked_sub(a.at_ns).filter(|&d| d > 0)?;
    let ticks = b.cpu_ticks.checked_sub(a.cpu_ticks)?;
    let cpu_s = match (a.cpu_ns, b.cpu_ns) {
        (Some(x), Some(y)) if y >= x => (y - x) as f64 / 1e9,
        _ => ticks as f64 / ticks_per_s.max(1) as f64,
    };
    Some(ResourceUsage {
        rss_kib: a.rss_kib.max(b.rss_kib),
        cpu_percent: 100.0 * cpu_s / (dt as f64 / 1e9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const MS: u64 = 1_000_000;
    const T0: u64 = 5_000 * MS;

    /// A synthetic run: `rounds` rounds 1 ms apart from T0; `owner(vip, round)`
    /// lists the nodes answering that probe, each 100 µs after sending.
    fn synth(
        vips: usize,
        rounds: u32,
        nodes: &[&str],
        owner: impl Fn(u32, u32) -> Vec<u16>,
    ) -> ProbeRun {
        let mut run = ProbeRun {
            vips: (0..vips)
                .map(|i| Ipv4Addr::new(192, 0, 2, i as u8 + 1).into())
                .collect(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            interval_ns: MS,
            round_sent_ns: (0..rounds).map(|r| T0 + r as u64 * MS).collect(),
            ..ProbeRun::default()
        };
        for r in 0..rounds {
            for v in 0..vips as u32 {
                for (k, node) in owner(v, r).into_iter().enumerate() {
                    let sent = T0 + r as u64 * MS;
                    run.answers.push(Answer {
                        vip: v,
                        round: r,
                        node,
                        sent_ns: sent,
                        recv_ns: sent + 100_000 + k as u64 * 10_000,
                    });
                }
            }
        }
        run
    }

    fn at(round: u32) -> u64 {
        T0 + round as u64 * MS
    }

    #[test]
    fn clean_run_has_no_outage_loss_or_duplicates() {
        let run = synth(3, 100, &["a"], |_, _| vec![0]);
        let r = analyse(&run, &[], Params::default());
        assert_eq!(r.probes_sent, 300);
        assert_eq!(r.answers, 300);
        assert_eq!(r.lost_probes, 0);
        assert_eq!(r.worst_outage, None);
        assert_eq!(r.duplicate_owner_ns, 0);
        assert!(r.never_answered.is_empty());
        assert!((r.round_rate_hz - 1000.0).abs() < 1e-6);
        // Every synthetic reply takes 100 µs.
        assert_eq!(
            (r.rtt_median_ns, r.rtt_p99_ns, r.rtt_max_ns),
            (100_000, 100_000, 100_000)
        );
        assert!((r.probe_rate_hz - 3000.0).abs() < 1e-6);
    }

    /// A dual-stack run split by family: each half keeps its own VIPs'
    /// answers, losses and unsent probes, renumbered.
    #[test]
    fn a_run_restricted_to_some_vips_keeps_only_their_figures() {
        // VIPs 0 and 2 are IPv4 (never lose), 1 and 3 IPv6 (1 loses 10..20).
        let mut run = synth(4, 100, &["a"], |v, r| match (v, r) {
            (1, 10..20) => vec![],
            _ => vec![0],
        });
        run.vips = vec![
            "10.0.0.1".parse().unwrap(),
            "fd77::1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "fd77::2".parse().unwrap(),
        ];
        run.unsent = vec![(3, 50), (2, 60)];
        let v4 = run.only(|ip| ip.is_ipv4());
        let v6 = run.only(|ip| ip.is_ipv6());
        assert_eq!(v4.vips, [run.vips[0], run.vips[2]]);
        assert_eq!(v6.vips, [run.vips[1], run.vips[3]]);
        assert_eq!(
            (v4.unsent.clone(), v6.unsent.clone()),
            (vec![(1, 60)], vec![(1, 50)])
        );
        assert_eq!(v4.round_sent_ns, run.round_sent_ns);
        let (r4, r6) = (
            analyse(&v4, &[], Params::default()),
            analyse(&v6, &[], Params::default()),
        );
        assert_eq!((r4.lost_probes, r6.lost_probes), (0, 10));
        assert_eq!(r4.worst_outage, None);
        assert_eq!(r6.worst_outage.map(|o| (o.vip, o.lost)), Some((0, 10)));
        assert_eq!(r4.answers + r6.answers, run.answers.len() as u64);
    }

    #[test]
    fn failover_outage_and_phase_times() {
        // VIP 1 owned by a until round 40 (exclusive), lost 40..=59, then b.
        // VIP 0 stays on b all along. Fault at round 40, view at round 50.
        let run = synth(2, 100, &["a", "b"], |v, r| match (v, r) {
            (0, _) => vec![1],
            (_, r) if r < 40 => vec![0],
            (_, r) if r < 60 => vec![],
            _ => vec![1],
        });
        let phase = Phase {
            name: "kill-a".into(),
            fault_ns: at(40),
            view_ns: Some(at(50)),
        };
        let r = analyse(&run, &[phase], Params::default());
        assert_eq!(r.lost_probes, 20);
        let o = r.worst_outage.expect("an outage");
        assert_eq!(
            (o.vip, o.start_ns, o.end_ns, o.lost),
            (1, at(40), at(60), 20)
        );
        assert_eq!(o.len_ns(), 20 * MS);
        let p = &r.phases[0];
        assert_eq!(p.moved_vips, 1);
        assert_eq!(p.unserved_vips, 0);
        // First answer from b: probe of round 60, received 100 µs later.
        assert_eq!(p.failover_ns, Some(20 * MS + 100_000));
        assert_eq!(p.failover_median_ns, p.failover_ns);
        assert_eq!(p.detection_ns, Some(10 * MS));
        assert_eq!(p.agent_ns, Some(10 * MS + 100_000));
        assert_eq!(p.worst_outage, Some(o));
    }

    #[test]
    fn vip_nobody_takes_over_is_unserved() {
        let run = synth(2, 50, &["a", "b"], |v, r| match v {
            0 if r < 20 => vec![0],
            0 => vec![],
            _ => vec![1],
        });
        let phase = Phase {
            name: "kill-a".into(),
            fault_ns: at(20),
            view_ns: None,
        };
        let r = analyse(&run, &[phase], Params::default());
        let p = &r.phases[0];
        assert_eq!(p.moved_vips, 0);
        assert_eq!(p.unserved_vips, 1);
        assert_eq!(p.failover_ns, None);
        assert_eq!(p.agent_ns, None);
        assert_eq!(p.detection_ns, None);
        // Trailing losses are lost probes but not an outage between answers.
        assert_eq!(r.lost_probes, 30);
        assert_eq!(r.worst_outage, None);
    }

    #[test]
    fn duplicate_owner_windows() {
        // Rounds 10..15: both a and b answer VIP 0 (5 windows of 1 ms).
        let run = synth(2, 30, &["a", "b", "c"], |v, r| match v {
            0 if (10..15).contains(&r) => vec![0, 1],
            0 => vec![0],
            _ if r == 3 => vec![0, 1, 2],
            _ => vec![2],
        });
        let r = analyse(&run, &[], Params::default());
        // Second and third answers take 10 and 20 µs longer: 67 answers in all,
        // 6 at 110 µs and 1 at 120 µs (the p99 rank is the 67th).
        assert_eq!((r.rtt_median_ns, r.rtt_max_ns), (100_000, 120_000));
        assert_eq!(r.rtt_p99_ns, 120_000);
        // VIP 0: 5 windows; VIP 1: one window with three nodes counts once.
        assert_eq!(r.duplicate_owner_ns, 6 * MS);
        assert_eq!(r.worst_vip_duplicate_ns, 5 * MS);
        assert_eq!(r.lost_probes, 0);
        // A 2 ms window merges rounds 10..15 into windows 5,6,7 (3 windows);
        // VIP 1's round 3 falls in window 1.
        let r2 = analyse(
            &run,
            &[],
            Params {
                dup_window_ns: 2 * MS,
            },
        );
        assert_eq!(r2.worst_vip_duplicate_ns, 3 * 2 * MS);
        assert_eq!(r2.duplicate_owner_ns, 4 * 2 * MS);
    }

    #[test]
    fn flapping_between_nodes_in_different_windows_is_not_duplicate() {
        let run = synth(1, 20, &["a", "b"], |_, r| vec![(r % 2) as u16]);
        let r = analyse(&run, &[], Params::default());
        assert_eq!(r.duplicate_owner_ns, 0);
    }

    #[test]
    fn unsent_probes_are_not_lost() {
        let mut run = synth(1, 10, &["a"], |_, r| if r == 4 { vec![] } else { vec![0] });
        // Listed twice, plus entries for a VIP and a round that do not exist.
        run.unsent.extend([(0, 4), (0, 4), (99, 1), (0, 1000)]);
        let r = analyse(&run, &[], Params::default());
        assert_eq!(r.probes_sent, 9);
        assert_eq!(r.lost_probes, 0);
        assert_eq!(r.worst_outage, None);
    }

    #[test]
    fn never_answered_and_out_of_range_answers() {
        let mut run = synth(2, 10, &["a"], |v, _| if v == 0 { vec![0] } else { vec![] });
        // Answers for unknown VIPs or rounds never sent are ignored.
        run.answers.push(Answer {
            vip: 9,
            round: 1,
            node: 0,
            sent_ns: T0,
            recv_ns: T0,
        });
        run.answers.push(Answer {
            vip: 1,
            round: 99,
            node: 0,
            sent_ns: T0,
            recv_ns: T0,
        });
        let r = analyse(&run, &[], Params::default());
        assert_eq!(r.never_answered, vec![1]);
        assert_eq!(r.lost_probes, 10);
    }

    #[test]
    fn phases_are_bounded_by_the_next_phase() {
        // VIP 0: a until 30, b 30..60, a again from 60 (fail back).
        let run = synth(1, 100, &["a", "b"], |_, r| {
            if (30..60).contains(&r) {
                vec![1]
            } else {
                vec![0]
            }
        });
        let phases = [
            Phase {
                name: "rejoin-a".into(),
                fault_ns: at(55),
                view_ns: Some(at(57)),
            },
            Phase {
                name: "kill-a".into(),
                fault_ns: at(28),
                view_ns: None,
            },
        ];
        let r = analyse(&run, &phases, Params::default());
        // Sorted by time.
        assert_eq!(r.phases[0].name, "kill-a");
        assert_eq!(r.phases[0].failover_ns, Some(2 * MS + 100_000));
        assert_eq!(r.phases[1].name, "rejoin-a");
        assert_eq!(r.phases[1].failover_ns, Some(5 * MS + 100_000));
        assert_eq!(r.phases[1].agent_ns, Some(3 * MS + 100_000));
        assert_eq!(r.lost_probes, 0);
    }

    #[test]
    fn phase_outage_only_counts_overlapping_gaps() {
        let run = synth(1, 100, &["a"], |_, r| {
            if (10..15).contains(&r) || (70..72).contains(&r) {
                vec![]
            } else {
                vec![0]
            }
        });
        let phase = Phase {
            name: "p".into(),
            fault_ns: at(50),
            view_ns: None,
        };
        let r = analyse(&run, &[phase], Params::default());
        assert_eq!(r.worst_outage.map(|o| o.len_ns()), Some(5 * MS));
        assert_eq!(r.phases[0].worst_outage.map(|o| o.len_ns()), Some(2 * MS));
        assert_eq!(r.phases[0].moved_vips, 0);
        assert_eq!(r.phases[0].unserved_vips, 0);
    }

    #[test]
    fn empty_run() {
        let r = analyse(&ProbeRun::default(), &[], Params::default());
        assert_eq!(r.probes_sent, 0);
        assert_eq!(r.lost_probes, 0);
        assert_eq!(r.probe_rate_hz, 0.0);
    }

    #[test]
    fn summary_statistics() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
        let s = Summary::of(&[3.0, 1.0, 2.0]).expect("summary");
        assert_eq!((s.n, s.median, s.p95, s.max), (3, 2.0, 3.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).expect("summary");
        assert_eq!(s.median, 2.5);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&v).expect("summary");
        assert_eq!((s.median, s.p95, s.max), (50.5, 95.0, 100.0));
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(Summary::of(&v).map(|s| s.p95), Some(19.0));
    }

    #[test]
    fn aggregate_names_phase_figures() {
        let run = synth(1, 100, &["a", "b"], |_, r| vec![u16::from(r >= 50)]);
        let phase = Phase {
            name: "kill-a".into(),
            fault_ns: at(49),
            view_ns: Some(at(49) + MS / 2),
        };
        let rr = analyse(&run, &[phase], Params::default());
        let agg = aggregate(&[rr.clone(), rr], &[]);
        assert_eq!(agg[figure::FAILOVER_MS].n, 2);
        assert!((agg["failover_ms[kill-a]"].max - 1.1).abs() < 1e-9);
        assert!((agg[figure::DETECTION_MS].median - 0.5).abs() < 1e-9);
        assert!((agg[figure::AGENT_MS].median - 0.6).abs() < 1e-9);
        assert!(!agg.contains_key(figure::RSS_KIB));
        assert_eq!(agg["moved_vips[kill-a]"].max, 1.0);
        assert_eq!(agg[figure::NEVER_ANSWERED_VIPS].max, 0.0);
    }

    #[test]
    fn proc_parsers() {
        let status = "Name:\twackamole\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vmrss_kib(status), Some(12345));
        assert_eq!(parse_vmrss_kib("Name: x\n"), None);
        assert_eq!(parse_vmrss_kib("VmRSS: lots kB\n"), None);
        assert_eq!(parse_vmrss_kib("VmRSS: 5 MB\n"), None);
        // A command name with spaces and parentheses.
        let stat = "4242 (wack (a) mole) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 12345 1000000 300 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no paren"), None);
    }

    #[test]
    fn usage_between_samples() {
        let a = ProcSample {
            at_ns: 0,
            rss_kib: 100,
            cpu_ticks: 10,
            cpu_ns: None,
        };
        let b = ProcSample {
            at_ns: 2_000_000_000,
            rss_kib: 120,
            cpu_ticks: 60,
            cpu_ns: None,
        };
        let u = usage_between(&a, &b, 100).expect("usage");
        assert_eq!(u.rss_kib, 120);
        assert!((u.cpu_percent - 25.0).abs() < 1e-9);
        assert_eq!(usage_between(&b, &a, 100), None);
        assert_eq!(usage_between(&a, &a, 100), None);
        // Run times win where both have them: 3 ms in 2 s is 0.15 %.
        let (a2, b2) = (
            ProcSample {
                cpu_ns: Some(1_000_000),
                ..a
            },
            ProcSample {
                cpu_ns: Some(4_000_000),
                ..b
            },
        );
        let u = usage_between(&a2, &b2, 100).expect("usage");
        assert!((u.cpu_percent - 0.15).abs() < 1e-9, "{u:?}");
        // A thread ended (the sum went down): the ticks decide.
        let b3 = ProcSample {
            cpu_ns: Some(500_000),
            ..b
        };
        let u = usage_between(&a2, &b3, 100).expect("usage");
        assert!((u.cpu_percent - 25.0).abs() < 1e-9);
    }

    #[test]
    fn schedstat_run_time() {
        assert_eq!(
            parse_schedstat_run_ns("213982954 12445827 495\n"),
            Some(213_982_954)
        );
        assert_eq!(parse_schedstat_run_ns(""), None);
        assert_eq!(parse_schedstat_run_ns("x 1 2"), None);
    }

    proptest! {
        /// For any pattern of answered/lost probes of one VIP, lost counts and
        /// the worst outage match a direct scan.
        #[test]
        fn lost_and_outage_match_scan(pattern in proptest::collection::vec(any::<bool>(), 1..200)) {
            let p = pattern.clone();
            let run = synth(1, p.len() as u32, &["a"], move |_, r| {
                if p[r as usize] { vec![0] } else { vec![] }
            });
            let r = analyse(&run, &[], Params::default());
            let lost = pattern.iter().filter(|a| !**a).count() as u64;
            prop_assert_eq!(r.lost_probes, lost);
            // Longest run of false strictly between two trues.
            let first = pattern.iter().position(|a| *a);
            let last = pattern.iter().rposition(|a| *a);
            let mut best = 0u64;
            if let (Some(f), Some(l)) = (first, last) {
                let mut cur = 0u64;
                for a in &pattern[f..=l] {
                    if *a { best = best.max(cur); cur = 0; } else { cur += 1; }
                }
            }
            prop_assert_eq!(r.worst_outage.map_or(0, |o| o.len_ns()), best * MS);
            prop_assert_eq!(r.never_answered.len(), usize::from(first.is_none()));
        }

        /// Duplicate time equals the number of rounds answered by two nodes.
        #[test]
        fn duplicates_match_scan(pattern in proptest::collection::vec(0u8..4, 1..200)) {
            // 0: none, 1: a, 2: b, 3: a and b.
            let p = pattern.clone();
            let run = synth(1, p.len() as u32, &["a", "b"], move |_, r| match p[r as usize] {
                0 => vec![], 1 => vec![0], 2 => vec![1], _ => vec![0, 1],
            });
            let r = analyse(&run, &[], Params::default());
            let dups = pattern.iter().filter(|x| **x == 3).count() as u64;
            prop_assert_eq!(r.duplicate_owner_ns, dups * MS);
        }

        #[test]
        fn summary_orders(v in proptest::collection::vec(-1e6f64..1e6, 1..100)) {
            let s = Summary::of(&v).expect("non-empty");
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            prop_assert!(min <= s.median && s.median <= s.p95 && s.p95 <= s.max);
            prop_assert_eq!(s.n, v.len());
        }
    }
}

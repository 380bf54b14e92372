//! Link impairment without netem: random packet loss on one interface.
//!
//! This kernel has neither netem nor netfilter tools, and of the tc actions
//! only `mirred` is built in (`CONFIG_NET_ACT_GACT` is off, so `action drop`
//! fails with "Failed to load TC action module"). What works:
//!
//! ```text
//! tc qdisc add dev PORT clsact
//! tc filter add dev PORT ingress|egress bpf bytecode "<cBPF>" \
//!     action mirred egress redirect dev <blackhole>
//! ```
//! The classic-BPF classifier loads the kernel's per-packet random number
//! (`ld rand`: `SKF_AD_OFF + SKF_AD_RANDOM`, k = 0xfffff038) and matches when
//! it is below `p * 2^32`; a match is redirected to a veth that is kept down
//! (`<blackhole>`), and `mirred` drops what it cannot deliver. No eBPF object
//! is needed. Each direction draws its own number, so the two are independent.
//!
//! Meant for a switch port (see [`super::Switch`]): the packets are forwarded
//! by the bridge, so no sender sees a local error (a drop on a host's own
//! egress would return ENOBUFS to the sending socket instead of losing the
//! packet silently). `ingress` on the port is what the host sends, `egress`
//! what it receives.
//!
//! The impairment lasts as long as its [`LinkLoss`] guard.

use super::netns::checked;
use anyhow::{bail, Context, Result};
use std::process::Command;

/// `BPF_LD | BPF_W | BPF_ABS`.
const LD_W_ABS: u32 = 0x20;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const JGE_K: u32 = 0x35;
/// `BPF_RET | BPF_K`.
const RET_K: u32 = 0x06;
/// `SKF_AD_OFF + SKF_AD_RANDOM` (-0x1000 + 56) as the kernel reads it.
const SKF_RANDOM: u32 = 0xffff_f038;

/// Loss probabilities of one link, each in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// Of the packets the host sends (ingress on its switch port).
    pub from_host: f64,
    /// Of the packets the host receives (egress on its switch port).
    pub to_host: f64,
}

impl Loss {
    /// The same loss both ways.
    pub fn both(p: f64) -> Self {
        Loss {
            from_host: p,
            to_host: p,
        }
    }
}

/// The match threshold for loss `p`: a random u32 below it is dropped.
/// `None` means "drop everything" (`p == 1` does not fit in a u32).
pub fn threshold(p: f64) -> Result<Option<u32>> {
    if !(0.0..=1.0).contains(&p) {
        bail!("loss probability {p} outside 0..=1");
    }
    let t = (p * 4_294_967_296.0).round();
    if t >= 4_294_967_296.0 {
        return Ok(None);
    }
    Ok(Some(t as u32))
}

/// The classic-BPF program (tc's `bytecode` syntax: count, then
/// `code jt jf k` per instruction) that matches a packet with probability `p`.
pub fn drop_program(p: f64) -> Result<String> {
    let prog = match threshold(p)? {
        // ret -1: always match.
        None => vec![(RET_K, 0, 0, u32::MAX)],
        Some(k) => vec![
            // A = random u32
            (LD_W_ABS, 0, 0, SKF_RANDOM),
            // A >= k: no match (skip to the last instruction)
            (JGE_K, 1, 0, k),
            (RET_K, 0, 0, u32::MAX),
            (RET_K, 0, 0, 0),
        ],
    };
    let body: Vec<String> = prog
        .iter()
        .map(|(code, jt, jf, k)| format!("{code} {jt} {jf} {k}"))
        .collect();
    Ok(format!("{},{}", prog.len(), body.join(",")))
}

/// A random loss on interface `dev` of a namespace; removed on drop.
#[derive(Debug)]
pub struct LinkLoss {
    netns: String,
    dev: String,
    blackhole: String,
}

impl LinkLoss {
    /// Impairs `dev` in namespace `netns` (a name under /run/netns, e.g. a
    /// switch's) with `loss`. One impairment per interface at a time.
    pub fn apply(netns: &str, dev: &str, loss: Loss) -> Result<Self> {
        let from = drop_program(loss.from_host)?;
        let to = drop_program(loss.to_host)?;
        // At most 15 bytes: "wkbh" + up to 11 of the port's name.
        let short: String = dev.chars().filter(char::is_ascii_alphanumeric).collect();
        let blackhole = format!("wkbh{}", &short[short.len().saturating_sub(11)..]);
        let impair = LinkLoss {
            netns: netns.to_string(),
            dev: dev.to_string(),
            blackhole,
        };
        // On error `impair` drops and removes whatever was added.
        impair.ip(&[
            "ip",
            "link",
            "add",
            &impair.blackhole,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{}p", impair.blackhole),
        ])?;
        impair.ip(&["tc", "qdisc", "add", "dev", dev, "clsact"])?;
        for (hook, prog, p) in [
            ("ingress", &from, loss.from_host),
            ("egress", &to, loss.to_host),
        ] {
            if p == 0.0 {
                continue;
            }
            impair
                .ip(&[
                    "tc",
                    "filter",
                    "add",
                    "dev",
                    dev,
                    hook,
                    "bpf",
                    "bytecode",
                    prog,
                    "action",
                    "mirred",
                    "egress",
                    "redirect",
                    "dev",
                    &impair.blackhole,
                ])
                .with_context(|| format!("{hook} loss filter on {dev}"))?;
        }
        Ok(impair)
    }

    /// Packets dropped so far: (from the host, to the host), from the
    /// filters' statistics (the redirect to a down device counts as overlimit).
    pub fn dropped(&self) -> Result<(u64, u64)> {
        let mut out = [0u64; 2];
        for (slot, hook) in out.iter_mut().zip(["ingress", "egress"]) {
            let text = self.ip(&["tc", "-s", "filter", "show", "dev", &self.dev, hook])?;
            *slot = overlimits(&text);
        }
        Ok((out[0], out[1]))
    }

    fn ip(&self, argv: &[&str]) -> Result<String> {
        let out = checked(
            Command::new("ip")
                .args(["netns", "exec", &self.netns])
                .args(argv),
        )
        .with_context(|| format!("link impairment in namespace {}", self.netns))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Sum of the `overlimits N` counters in `tc -s filter show` output.
fn overlimits(text: &str) -> u64 {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "overlimits")
        .filter_map(|w| w[1].parse::<u64>().ok())
        .sum()
}

impl Drop for LinkLoss {
    fn drop(&mut self) {
        // Deleting the clsact qdisc removes its filters.
        let _ = self.ip(&["tc", "qdisc", "del", "dev", &self.dev, "clsact"]);
        let _ = self.ip(&["ip", "link", "del", &self.blackhole]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_scale_to_u32() {
        assert_eq!(threshold(0.0).unwrap(), Some(0));
        assert_eq!(threshold(0.1).unwrap(), Some(429_496_730));
        assert_eq!(threshold(0.5).unwrap(), Some(1 << 31));
        assert_eq!(threshold(1.0).unwrap(), None);
        assert!(threshold(-0.1).is_err());
        assert!(threshold(1.5).is_err());
        assert!(threshold(f64::NAN).is_err());
    }

    #[test]
    fn programs_load_random_and_compare() {
        assert_eq!(
            drop_program(0.3).unwrap(),
            "4,32 0 0 4294963256,53 1 0 1288490189,6 0 0 4294967295,6 0 0 0"
        );
        assert_eq!(drop_program(1.0).unwrap(), "1,6 0 0 4294967295");
    }

    #[test]
    fn overlimit_counters_are_summed() {
        let text = "filter protocol all pref 49152 bpf chain 0 handle 0x1\n\
            \taction order 1: mirred (Egress Redirect to device wkbh) stolen\n\
            \tSent 86372 bytes 882 pkt (dropped 0, overlimits 882 requeues 0)\n";
        assert_eq!(overlimits(text), 882);
        assert_eq!(overlimits(""), 0);
    }
}

//! Data-plane benchmark: XDP cost per packet (BPF_PROG_TEST_RUN) for the
//! ARP-reply, NS -> NA, drop and pass paths, and the latency of own/release
//! map updates. Prints a table and writes target/bench/dataplane.json. Needs root.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde::Serialize;
use wackamole::dataplane::frames::{
    ipv4_udp, ipv6_udp, test_run, ArpFrame, RunContext, XDP_DROP, XDP_PASS, XDP_TX,
};
use wackamole::dataplane::{DataPlane, DataPlaneOptions, Vip};
use wackamole::net::nd::NdFrame;

const VIP_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const OWNED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const RELEASING: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const UNKNOWN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);
const OWNED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const RELEASING6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);
/// Single runs per XDP case (each timed by the kernel).
const SINGLE_RUNS: usize = 20_000;
/// Batched runs (`repeat`) for the cases whose frame is not rewritten.
const BATCH_REPEAT: u32 = 1_000_000;
/// Map updates per operation.
const UPDATES: usize = 10_000;

#[derive(Serialize)]
struct XdpCase {
    case: &'static str,
    action: &'static str,
    /// Median of single runs (ns), kernel-timed.
    single_median_ns: u64,
    single_p99_ns: u64,
    /// Mean over one `repeat` batch (ns), where applicable.
    batch_mean_ns: Option<f64>,
}

#[derive(Serialize)]
struct UpdateCase {
    op: &'static str,
    samples: usize,
    median_ns: u64,
    p99_ns: u64,
    max_ns: u64,
}

#[derive(Serialize)]
struct Report {
    kernel: String,
    xdp: Vec<XdpCase>,
    map_updates: Vec<UpdateCase>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn xdp_case(
    dp: &DataPlane,
    case: &'static str,
    frame: &[u8],
    expect: u32,
    batch: bool,
) -> Result<XdpCase> {
    let prog = dp.program()?;
    let mut samples = Vec::with_capacity(SINGLE_RUNS);
    for _ in 0..SINGLE_RUNS {
        let r = test_run(prog, frame, RunContext::default())?;
        ensure!(
            r.action == expect,
            "{case}: action {} instead of {expect}",
            r.action
        );
        samples.push(r.duration.as_nanos() as u64);
    }
    samples.sort_unstable();
    let batch_mean_ns = if batch {
        let r = test_run(
            prog,
            frame,
            RunContext {
                repeat: BATCH_REPEAT,
                ..RunContext::default()
            },
        )?;
        ensure!(r.action == expect, "{case}: batch action {}", r.action);
        Some(r.duration.as_nanos() as f64)
    } else {
        None
    };
    Ok(XdpCase {
        case,
        action: match expect {
            XDP_TX => "XDP_TX",
            XDP_DROP => "XDP_DROP",
            _ => "XDP_PASS",
        },
        single_median_ns: percentile(&samples, 0.5),
        single_p99_ns: percentile(&samples, 0.99),
        batch_mean_ns,
    })
}

fn update_case(op: &'static str, mut f: impl FnMut() -> Result<()>) -> Result<UpdateCase> {
    let mut samples = Vec::with_capacity(UPDATES);
    for _ in 0..UPDATES {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_nanos() as u64);
    }
    samples.sort_unstable();
    Ok(UpdateCase {
        op,
        samples: UPDATES,
        median_ns: percentile(&samples, 0.5),
        p99_ns: percentile(&samples, 0.99),
        max_ns: samples.last().copied().unwrap_or(0),
    })
}

fn run(dp: &mut DataPlane) -> Result<Report> {
    let owned = Vip::new("lo", 1, OWNED);
    let releasing = Vip::new("lo", 1, RELEASING);
    dp.own_as(&owned, VIP_MAC)?;
    dp.own_as(&releasing, VIP_MAC)?;
    dp.release(&releasing)?;
    dp.own_as(&Vip::new("lo", 1, OWNED6), VIP_MAC)?;
    let releasing6 = Vip::new("lo", 1, RELEASING6);
    dp.own_as(&releasing6, VIP_MAC)?;
    dp.release(&releasing6)?;
    // Some other VIPs so lookups hit a populated table.
    for i in 0..256u32 {
        let v = Vip::new("lo", 1000 + i, OWNED);
        dp.own_as(&v, VIP_MAC)?;
    }
    dp.renew_lease(Some(Duration::from_secs(3600)))?;

    let arp = ArpFrame::request(PEER_MAC, PEER, OWNED)
        .encode_unpadded()
        .to_vec();
    let arp_rel = ArpFrame::request(PEER_MAC, PEER, RELEASING)
        .encode_unpadded()
        .to_vec();
    let ip_owned = ipv4_udp(PEER_MAC, VIP_MAC, PEER, OWNED, 64);
    let ip_rel = ipv4_udp(PEER_MAC, VIP_MAC, PEER, RELEASING, 64);
    let ip_other = ipv4_udp(PEER_MAC, VIP_MAC, PEER, UNKNOWN, 64);
    let ns = NdFrame::solicitation(PEER_MAC, PEER6, OWNED6).to_frame();
    let ns_rel = NdFrame::solicitation(PEER_MAC, PEER6, RELEASING6).to_frame();
    let ip6_owned = ipv6_udp(PEER_MAC, VIP_MAC, PEER6, OWNED6, 84);

    let xdp = vec![
        // The reply rewrites the frame in place, so a `repeat` batch would
        // only answer once: single runs only.
        xdp_case(dp, "ARP request, owned VIP (reply)", &arp, XDP_TX, false)?,
        xdp_case(dp, "NS, owned IPv6 VIP (NA reply)", &ns, XDP_TX, false)?,
        xdp_case(dp, "ARP request, releasing VIP", &arp_rel, XDP_DROP, true)?,
        xdp_case(dp, "NS, releasing IPv6 VIP", &ns_rel, XDP_DROP, true)?,
        xdp_case(dp, "IPv4 to releasing VIP", &ip_rel, XDP_DROP, true)?,
        xdp_case(dp, "IPv4 to owned VIP (counted)", &ip_owned, XDP_PASS, true)?,
        xdp_case(
            dp,
            "IPv6 to owned VIP (counted)",
            &ip6_owned,
            XDP_PASS,
            true,
        )?,
        xdp_case(dp, "IPv4 to other address", &ip_other, XDP_PASS, true)?,
    ];

    let target = Vip::new("lo", 1, Ipv4Addr::new(192, 0, 2, 50));
    let mut state = false;
    let map_updates = vec![
        update_case("own", || {
            dp.own_as(&target, VIP_MAC)?;
            Ok(())
        })?,
        update_case("release", || {
            dp.release(&target)?;
            Ok(())
        })?,
        update_case("own/release alternating", || {
            state = !state;
            if state {
                dp.own_as(&target, VIP_MAC)?;
            } else {
                dp.release(&target)?;
            }
            Ok(())
        })?,
        update_case("renew_lease", || {
            dp.renew_lease(Some(Duration::from_secs(3)))?;
            Ok(())
        })?,
    ];
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(Report {
        kernel,
        xdp,
        map_updates,
    })
}

fn main() -> Result<()> {
    if !wackamole::testbed::is_root() {
        anyhow::bail!("the dataplane benchmark needs root (bpf)");
    }
    let opts = DataPlaneOptions::new(format!("bench-{}", std::process::id()));
    let mut dp = DataPlane::open(&opts)?;
    let report = run(&mut dp);
    dp.shutdown()?;
    let report = report?;

    println!(
        "XDP cost per packet (BPF_PROG_TEST_RUN, kernel {})",
        report.kernel
    );
    println!(
        "{:<34} {:>9} {:>12} {:>10} {:>13}",
        "case", "action", "median ns", "p99 ns", "batch mean ns"
    );
    for c in &report.xdp {
        println!(
            "{:<34} {:>9} {:>12} {:>10} {:>13}",
            c.case,
            c.action,
            c.single_median_ns,
            c.single_p99_ns,
            c.batch_mean_ns
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    let median = |name: &str| {
        report
            .xdp
            .iter()
            .find(|c| c.case.starts_with(name))
            .map(|c| c.single_median_ns)
    };
    if let (Some(arp), Some(na)) = (median("ARP request, owned"), median("NS, owned")) {
        println!(
            "NS -> NA costs {:.2}x the ARP reply (median of single runs)",
            na as f64 / arp.max(1) as f64
        );
    }
    println!("\nMap update latency from user space ({UPDATES} each)");
    println!(
        "{:<26} {:>10} {:>10} {:>10}",
        "operation", "median ns", "p99 ns", "max ns"
    );
    for u in &report.map_updates {
        println!(
            "{:<26} {:>10} {:>10} {:>10}",
            u.op, u.median_ns, u.p99_ns, u.max_ns
        );
    }

    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let path = dir.join("dataplane.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("\nwrote {}", path.display());
    Ok(())
}

//! End to end: responders on two node namespaces, the prober in a client
//! namespace, all on a bridge in a switch namespace. One VIP is moved by hand
//! from node A to node B in the middle of the run; the analysis must see A
//! before, B after and a finite outage, and the PNG and JSON must be written.
//!
//! Addresses: 198.51.100.0/24 and 10.77.0.0/16, only inside the test namespaces.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wackamole::lab::analysis::{analyse, Params, Phase, ProbeRun};
use wackamole::lab::now_ns;
use wackamole::lab::plot::{phase_timelines, timeline_png, TimelineSpec};
use wackamole::lab::prober::{run_in, ProberConfig};
use wackamole::lab::report::{markdown, read_json, write_json, ScenarioRecord};
use wackamole::lab::responder::Responder;
use wackamole::testbed::{Netns, Switch};

const PORT: u16 = 7399;

struct Lan {
    // Field order: nodes and client go before the switch.
    a: Netns,
    b: Netns,
    client: Netns,
    _switch: Switch,
}

/// switch (bridge br0) with ports pa, pb, pc to node a, node b, client (eth0 each).
fn lan() -> Result<Lan> {
    wackamole::testbed::require_root();
    let switch = Switch::new("sw")?;
    let a = Netns::new("na")?;
    let b = Netns::new("nb")?;
    let client = Netns::new("cl")?;
    for (ns, port, addr) in [
        (&a, "pa", "198.51.100.1/24"),
        (&b, "pb", "198.51.100.2/24"),
        (&client, "pc", "198.51.100.100/24"),
    ] {
        switch.plug(port, ns, "eth0", addr)?;
    }
    // Let a gratuitous ARP always replace the client's entry (no 1 s lock).
    client.run(&["sysctl", "-q", "-w", "net.ipv4.neigh.eth0.locktime=0"])?;
    Ok(Lan {
        a,
        b,
        client,
        _switch: switch,
    })
}

fn add_vip(ns: &Netns, vip: Ipv4Addr) -> Result<()> {
    ns.run(&["ip", "addr", "add", &format!("{vip}/32"), "dev", "eth0"])?;
    Ok(())
}

/// Checks the PNG signature and returns the IHDR width and height.
fn png_size(path: &Path) -> Result<(u32, u32)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() < 24 || bytes[..8] != *b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        bail!("{} is not a PNG", path.display());
    }
    let w = u32::from_be_bytes(bytes[16..20].try_into()?);
    let h = u32::from_be_bytes(bytes[20..24].try_into()?);
    Ok((w, h))
}

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab_probe")
}

#[test]
#[ignore = "needs root"]
fn moved_vip_is_seen_moving_from_a_to_b() -> Result<()> {
    let _one = crate::support::one_cluster_at_a_time();
    let lan = lan()?;
    let vips: Vec<Ipv4Addr> = [11, 12, 21, 22]
        .iter()
        .map(|&h| Ipv4Addr::new(198, 51, 100, h))
        .collect();
    for &v in &vips[..2] {
        add_vip(&lan.a, v)?;
    }
    for &v in &vips[2..] {
        add_vip(&lan.b, v)?;
    }
    let ra = Responder::start_in(&lan.a, "node-a", PORT)?;
    let rb = Responder::start_in(&lan.b, "node-b", PORT)?;

    let cfg = ProberConfig::new(vips.clone(), PORT, Duration::from_secs(2));
    let moving = vips[0];
    let (run, fault_ns, del_done_ns, moved_ns) = std::thread::scope(|s| -> Result<_> {
        let mover = s.spawn(|| -> Result<(u64, u64, u64)> {
            std::thread::sleep(Duration::from_millis(700));
            let fault = now_ns();
            lan.a
                .run(&["ip", "addr", "del", &format!("{moving}/32"), "dev", "eth0"])?;
            let del_done = now_ns();
            // The VIP is on no node for a while: probes in between must be lost
            // even if the prober is slowed down by a loaded machine.
            std::thread::sleep(Duration::from_millis(100));
            add_vip(&lan.b, moving)?;
            // arping lingers 1 s after sending: take the time before it.
            let added = now_ns();
            let ip = moving.to_string();
            lan.b.run(&[
                "arping", "-q", "-U", "-c", "1", "-I", "eth0", "-s", &ip, &ip,
            ])?;
            Ok((fault, del_done, added))
        });
        let run = run_in(&lan.client, &cfg)?;
        let (fault, del_done, moved) = mover
            .join()
            .map_err(|_| anyhow::anyhow!("mover thread panicked"))??;
        Ok((run, fault, del_done, moved))
    })?;
    let stats_a = ra.stop()?;
    let stats_b = rb.stop()?;

    let node = |name: &str| {
        run.node_index(name)
            .with_context(|| format!("{name} never answered"))
    };
    let (na, nb) = (node("node-a")?, node("node-b")?);
    assert_eq!(
        run.invalid_replies, 0,
        "replies from a source other than the probed VIP"
    );
    assert_eq!(run.dropped_answers, 0);
    assert!(
        run.round_sent_ns.len() > 100,
        "only {} rounds",
        run.round_sent_ns.len()
    );
    assert!(stats_a.replied > 0 && stats_b.replied > 0);
    eprintln!(
        "rounds {} at {:.0} rounds/s ({:.0} probes/s), late {}, answers {}, responders a {:?} b {:?}",
        run.round_sent_ns.len(),
        run.round_rate_hz(),
        run.probe_rate_hz(),
        run.late_rounds,
        run.answers.len(),
        stats_a,
        stats_b
    );

    // The moved VIP: only A before the fault, never A after its address was
    // removed, B once the move was announced.
    let moved: Vec<_> = run.answers.iter().filter(|x| x.vip == 0).collect();
    assert!(moved.iter().any(|x| x.node == na && x.sent_ns < fault_ns));
    assert!(moved.iter().all(|x| x.sent_ns >= fault_ns || x.node == na));
    assert!(moved
        .iter()
        .all(|x| x.node != na || x.sent_ns < del_done_ns));
    assert!(moved.iter().any(|x| x.node == nb && x.sent_ns > moved_ns));
    // The others never change owner.
    for x in run.answers.iter().filter(|x| x.vip != 0) {
        let owner = if x.vip == 1 { na } else { nb };
        assert_eq!(x.node, owner, "VIP {} answered by the wrong node", x.vip);
    }

    // No agent here: "view" marks the address being added on B.
    let phase = Phase {
        name: "move".into(),
        fault_ns,
        view_ns: Some(moved_ns),
    };
    let result = analyse(&run, std::slice::from_ref(&phase), Params::default());
    let p = &result.phases[0];
    assert_eq!(p.moved_vips, 1);
    assert_eq!(p.unserved_vips, 0);
    let failover = p.failover_ns.context("no failover time")?;
    assert!(
        failover > 0 && failover < 1_500_000_000,
        "failover {failover} ns"
    );
    // Probes arriving at A between the delete and the ARP update are lost: a
    // finite outage of the moved VIP overlapping the fault.
    let outage = p.worst_outage.context("no outage around the move")?;
    assert_eq!(outage.vip, 0);
    assert!(outage.lost > 0 && outage.len_ns() < 1_500_000_000);
    assert!(outage.end_ns > del_done_ns);
    assert_eq!(result.duplicate_owner_ns, 0);
    assert!(result.never_answered.is_empty());
    eprintln!(
        "failover {:.2} ms, outage {:.2} ms ({} probes), lost {} of {}",
        failover as f64 / 1e6,
        outage.len_ns() as f64 / 1e6,
        outage.lost,
        result.lost_probes,
        result.probes_sent
    );

    // Reports: JSON parses back, markdown names the figures, PNG is a PNG.
    let dir = out_dir();
    let mut params = BTreeMap::new();
    params.insert("vips".to_string(), vips.len().to_string());
    let usage =
        wackamole::lab::resources::measure_process(std::process::id(), Duration::from_millis(50))?;
    let record = ScenarioRecord::new("hand-move", params, &[result], &[usage]);
    let json = dir.join("hand-move.json");
    write_json(&json, std::slice::from_ref(&record))?;
    let back = read_json(&json)?;
    assert!(
        back.len() == 1 && back[0].approx_eq(&record, 1e-12),
        "{back:?}"
    );
    let md = markdown(&[record]);
    assert!(md.contains("| hand-move | failover_ms[move] | 1 |"), "{md}");
    println!("{md}");

    let after = failover + 100_000_000;
    let pngs = phase_timelines(&run, &[phase], 50_000_000, after, &dir, "hand-move")?;
    assert_eq!(pngs, vec![dir.join("hand-move-move.png")]);
    let (w, h) = png_size(&pngs[0])?;
    assert!(w >= 200 && h >= 200);
    Ok(())
}

/// 1000 VIPs on one node: every VIP is answered and the achieved rate is printed
/// (the rate target itself belongs to the benchmark).
#[test]
#[ignore = "needs root"]
fn probes_a_thousand_vips() -> Result<()> {
    let _one = crate::support::one_cluster_at_a_time();
    let lan = lan()?;
    // 10.77.0.0/16 inside the namespaces: room for 1000 VIPs on-link.
    lan.a
        .run(&["ip", "addr", "add", "10.77.255.1/16", "dev", "eth0"])?;
    lan.client
        .run(&["ip", "addr", "add", "10.77.255.254/16", "dev", "eth0"])?;
    let vips: Vec<Ipv4Addr> = (0..1000u32)
        .map(|i| Ipv4Addr::new(10, 77, (i / 250) as u8, (i % 250 + 1) as u8))
        .collect();
    let batch: String = vips
        .iter()
        .map(|v| format!("addr add {v}/32 dev eth0\n"))
        .collect();
    let file = out_dir().join(format!("vips-{}.batch", std::process::id()));
    std::fs::create_dir_all(out_dir())?;
    std::fs::write(&file, batch)?;
    lan.a.run(&["ip", "-batch", &file.to_string_lossy()])?;
    let _ = std::fs::remove_file(&file);
    let ra = Responder::start_in_threads(&lan.a, "node-a", PORT, 2)?;
    let mut cfg = ProberConfig::new(vips.clone(), PORT, Duration::from_secs(1));
    cfg.senders = 2;
    let run: ProbeRun = run_in(&lan.client, &cfg)?;
    let stats = ra.stop()?;
    let result = analyse(&run, &[], Params::default());
    eprintln!(
        "{} VIPs, 2 senders, 2 responder threads: {} rounds at {:.0} rounds/s = {:.0} probes/s, late rounds {}, lost {} of {}, prober socket drops {}, responder {:?}",
        vips.len(),
        run.round_sent_ns.len(),
        run.round_rate_hz(),
        run.probe_rate_hz(),
        run.late_rounds,
        result.lost_probes,
        result.probes_sent,
        run.socket_drops,
        stats
    );
    assert_eq!(run.invalid_replies, 0);
    assert!(
        result.never_answered.is_empty(),
        "{:?}",
        result.never_answered
    );

    let first = *run.round_sent_ns.first().context("no rounds")?;
    let last = *run.round_sent_ns.last().context("no rounds")?;
    let mut spec = TimelineSpec::around_fault(
        "1000 VIPs on one node",
        first + (last - first) / 2,
        (last - first) / 2,
        (last - first) / 2 + 1,
        vips.len(),
    );
    spec.marks.clear();
    let png = out_dir().join("thousand.png");
    timeline_png(&run, &spec, &png)?;
    assert_eq!(png_size(&png)?, (spec.width, spec.height));
    Ok(())
}

/// VIPs held as an AnyIP local route (`ip route add local PREFIX dev lo`)
/// rather than interface addresses: the responder answers from the probed VIP.
#[test]
#[ignore = "needs root"]
fn answers_vips_held_as_a_local_route() -> Result<()> {
    let _one = crate::support::one_cluster_at_a_time();
    let lan = lan()?;
    lan.b.run(&[
        "ip",
        "route",
        "add",
        "local",
        "203.0.113.0/28",
        "dev",
        "lo",
        "table",
        "local",
    ])?;
    lan.client
        .run(&["ip", "route", "add", "203.0.113.0/28", "dev", "eth0"])?;
    let vips: Vec<Ipv4Addr> = (1..=4).map(|h| Ipv4Addr::new(203, 0, 113, h)).collect();
    let rb = Responder::start_in(&lan.b, "node-b", PORT)?;
    let cfg = ProberConfig::new(vips, PORT, Duration::from_millis(300));
    let run = run_in(&lan.client, &cfg)?;
    let stats = rb.stop()?;
    let result = analyse(&run, &[], Params::default());
    assert_eq!(run.invalid_replies, 0);
    assert!(
        result.never_answered.is_empty(),
        "{:?} {stats:?}",
        result.never_answered
    );
    assert_eq!(run.nodes, vec!["node-b".to_string()]);
    Ok(())
}

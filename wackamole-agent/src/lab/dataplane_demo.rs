//! `wackamole-lab demo`: the XDP data plane answering ARP for a VIP that is
//! configured on no interface, then going silent on release. Narrated.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::arping::{arping, fmt_mac};
use super::veth_lab::{VethLab, PEER_ADDR, PEER_IF, XDP_ADDR, XDP_IF};
use crate::dataplane::XdpAttachMode;

/// The VIP of the demo (inside the namespaces only).
pub const DEMO_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

fn say(out: &mut impl Write, text: impl AsRef<str>) -> Result<()> {
    writeln!(out, "{}", text.as_ref())?;
    out.flush()?;
    Ok(())
}

/// Runs the demo, narrating on `out`. Fails if XDP does not behave.
pub fn run(mode: XdpAttachMode, out: &mut impl Write) -> Result<()> {
    let started = Instant::now();
    say(out, "== wackamole data-plane demo ==")?;
    say(
        out,
        format!(
            "Creating two network namespaces over veth: {XDP_IF} ({XDP_ADDR}) <-> {PEER_IF} ({PEER_ADDR}); XDP mode {mode:?}."
        ),
    )?;
    let mut lab = VethLab::new(mode)?;
    let used = lab
        .plane()?
        .attached()
        .first()
        .and_then(|a| a.mode)
        .map(|m| format!("{m:?}"))
        .unwrap_or_else(|| "unknown".into());
    say(
        out,
        format!(
            "XDP program attached to {XDP_IF} in {used} mode (MAC {}), maps pinned in {}.",
            fmt_mac(&lab.mac),
            lab.plane()?.pin_dir().display()
        ),
    )?;

    let vip = lab.vip(DEMO_VIP);
    say(
        out,
        format!(
            "\n1. Owning VIP {DEMO_VIP}. It is configured on no interface: only XDP can answer."
        ),
    )?;
    lab.plane()?.own(&vip)?;
    say(
        out,
        format!("   $ arping -c 2 -I {PEER_IF} {DEMO_VIP}   (from the peer)"),
    )?;
    let replies = arping(&lab.peer, PEER_IF, DEMO_VIP, 2, Duration::from_secs(3))?;
    for r in &replies {
        say(
            out,
            format!("   reply from {} is-at {}", r.from, fmt_mac(&r.mac)),
        )?;
    }
    if replies.is_empty() || replies.iter().any(|r| r.mac != lab.mac) {
        bail!(
            "expected replies with {} from XDP, got {replies:?}",
            fmt_mac(&lab.mac)
        );
    }
    say(
        out,
        format!(
            "   {} replies, all with {XDP_IF}'s MAC: answered from XDP.",
            replies.len()
        ),
    )?;
    let c = lab.plane()?.counters(&vip)?;
    say(
        out,
        format!(
            "   counters for {DEMO_VIP}: arp_replies={} drops={}",
            c.arp_replies, c.drops
        ),
    )?;

    say(
        out,
        format!("\n2. Releasing VIP {DEMO_VIP}: ARP requests for it are now dropped."),
    )?;
    lab.plane()?.release(&vip)?;
    say(
        out,
        format!("   $ arping -c 1 -w 1 -I {PEER_IF} {DEMO_VIP}"),
    )?;
    let replies = arping(&lab.peer, PEER_IF, DEMO_VIP, 1, Duration::from_secs(1))?;
    if !replies.is_empty() {
        bail!("expected silence after release, got {replies:?}");
    }
    say(out, "   no reply: silenced.")?;
    let c = lab.plane()?.counters(&vip)?;
    say(
        out,
        format!(
            "   counters for {DEMO_VIP}: arp_replies={} drops={}",
            c.arp_replies, c.drops
        ),
    )?;
    let a = lab.plane()?.action_counters()?;
    say(
        out,
        format!(
            "   global: arp_reply={} drop_releasing={} drop_fenced={} pass={} conflict={}",
            a.arp_reply, a.drop_releasing, a.drop_fenced, a.pass, a.conflict
        ),
    )?;

    say(
        out,
        format!(
            "\n3. Lease fence: owning {DEMO_VIP} again under a 2 s lease that is never renewed."
        ),
    )?;
    lab.plane()?.own(&vip)?;
    let lease = Duration::from_secs(2);
    lab.plane()?.renew_lease(Some(lease))?;
    let renewed = Instant::now();
    let replies = arping(&lab.peer, PEER_IF, DEMO_VIP, 1, Duration::from_secs(1))?;
    if replies.is_empty() {
        bail!("expected a reply for {DEMO_VIP} within its lease");
    }
    say(out, "   within the lease: answered from XDP.")?;
    std::thread::sleep((lease + Duration::from_millis(100)).saturating_sub(renewed.elapsed()));
    let replies = arping(&lab.peer, PEER_IF, DEMO_VIP, 1, Duration::from_secs(1))?;
    if !replies.is_empty() {
        bail!("expected the lapsed lease to silence {DEMO_VIP}, got {replies:?}");
    }
    let a = lab.plane()?.action_counters()?;
    say(
        out,
        format!(
            "   lease lapsed (as if the agent had died): no reply; drop_fenced={}.",
            a.drop_fenced
        ),
    )?;

    say(
        out,
        "\n4. Cleaning up: forget the VIP, detach, unpin, delete the namespaces.",
    )?;
    lab.plane()?.forget(&vip)?;
    lab.shutdown()?;
    drop(lab);
    say(
        out,
        format!("Done in {:.1} s.", started.elapsed().as_secs_f64()),
    )?;
    Ok(())
}

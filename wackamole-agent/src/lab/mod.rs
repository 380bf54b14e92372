//! Demonstrations, test rigs and measurement machinery in network namespaces
//! (test/bench support, not used by the agent itself): the data-plane demo of
//! `wackamole-lab demo` with its veth rig, and the failover benchmark's probes.
//!
//! A simulated LAN runs in namespaces (see [`crate::testbed`]): every node runs a
//! [`responder`] that answers UDP probes on whichever VIPs it currently holds; a
//! [`prober`] in the client namespace probes every VIP each millisecond and
//! records who answered when. [`analysis`] (pure) turns those records into
//! outages, lost probes, duplicate ownership and failover times, [`report`]
//! prints them as markdown and JSON and [`plot`] draws a PNG timeline.
//!
//! All times are `CLOCK_MONOTONIC` nanoseconds ([`now_ns`]): the clock is shared
//! by every network namespace on the machine, so prober, responders, fault
//! injection and agents can be compared directly.
//!
//! A benchmark repetition, in outline:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use wackamole::lab::{analysis, now_ns, plot, prober, report, resources, responder};
//! use wackamole::testbed::Netns;
//! # let (node1, client) = (Netns::new("n1")?, Netns::new("cl")?);
//! # let vips: Vec<std::net::Ipv4Addr> = vec![];
//! # let agent_pid = 0u32;
//! // One responder per node (a thread of this process, socket in the node's namespace).
//! let r1 = responder::Responder::start_in(&node1, "n1", 7399)?;
//! let sampler = resources::ProcessSampler::start(agent_pid, Duration::from_millis(100))?;
//! let cfg = prober::ProberConfig::new(vips, 7399, Duration::from_secs(5));
//! let mut fault_ns = 0;
//! let run = std::thread::scope(|s| {
//!     s.spawn(|| {
//!         std::thread::sleep(Duration::from_secs(2));
//!         fault_ns = now_ns(); // then inject the fault
//!     });
//!     prober::run_in(&client, &cfg)
//! })?;
//! let usage = sampler.stop()?;
//! r1.stop()?;
//! let phases = [analysis::Phase { name: "kill-n2".into(), fault_ns, view_ns: None }];
//! let result = analysis::analyse(&run, &phases, analysis::Params::default());
//! plot::phase_timelines(&run, &phases, 100_000_000, 1_000_000_000, "out".as_ref(), "kill")?;
//! let record = report::ScenarioRecord::new("kill", Default::default(), &[result], &[usage]);
//! report::print_markdown(std::slice::from_ref(&record));
//! report::write_json("out/kill.json".as_ref(), &[record])?;
//! # Ok(())
//! # }
//! ```

pub mod analysis;
pub mod arp_observer;
pub mod arping;
pub mod cluster_demo;
pub mod dataplane_demo;
pub mod failover_bench;
pub mod ns_observer;
pub mod plot;
pub mod prober;
pub mod report;
pub mod resources;
pub mod responder;
mod veth_lab;

pub use veth_lab::{VethLab, PEER_ADDR};

/// `CLOCK_MONOTONIC` now, in nanoseconds (the data plane's clock, as a number
/// for records and plots).
pub fn now_ns() -> u64 {
    u64::try_from(crate::dataplane::monotonic_now().as_nanos()).unwrap_or(u64::MAX)
}

//! The agent's ports: everything it does to the machine, behind one trait.
//!
//! [`LinuxHost`] is the real machine (XDP maps, rtnetlink, ARP and neighbour
//! discovery sockets, the config file); tests run whole agents in-process on
//! a fake that keeps a journal. Time is not a port of its own: the agent
//! uses tokio's clock everywhere (`tokio::time`), so a paused runtime clock
//! drives it.

use super::announcer::{Announcer, GarpWire, Job, LeaseSignal, NaWire};
use super::lease_keeper::LeaseKeeper;
use super::senders::Senders;
use super::vifs::AddressPlumbing;
use crate::config::{self, Config};
use crate::dataplane::{AsyncConflictReader, ConflictEvent, DataPlane, VipTable};
use crate::net::arp::{ArpSender, Burst};
use crate::net::nd::{Ipv6Prefix, NdSender};
use crate::net::Ipv4Prefix;
use anyhow::{anyhow, Context, Result};
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{LocalBoxStream, StreamExt};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What to send when a VIF arrives here, or when another host claims it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The VIF's name (for logs).
    pub vif: String,
    /// Wait this long before the first frame (a conflict's settle delay).
    pub delay: Duration,
    /// The VIF's IPv4 addresses, by interface.
    pub addresses: BTreeMap<String, Vec<Ipv4Addr>>,
    /// The VIF's IPv6 addresses, by interface.
    pub addresses6: BTreeMap<String, Vec<Ipv6Addr>>,
    /// The burst: gratuitous ARP for the IPv4 addresses, unsolicited
    /// neighbour advertisements (Override set, to all-nodes) for the IPv6
    /// ones, `count` rounds `spacing` apart.
    pub burst: Burst,
    /// The advertisements carry the Router flag.
    pub nd_router: bool,
    /// IPv4 ranges notified by unicast replies: interface, range, packets
    /// per second (0: unthrottled).
    pub targets: Vec<(String, Ipv4Prefix, u32)>,
    /// IPv6 ranges notified by unicast advertisements (see
    /// [`crate::net::nd::plan_notify6`]): interface, range, packets per
    /// second (0: unthrottled).
    pub targets6: Vec<(String, Ipv6Prefix, u32)>,
    /// IPv4 neighbours of the cluster's shared ARP cache, told by unicast
    /// replies.
    pub cache: Vec<(Ipv4Addr, [u8; 6])>,
    /// IPv6 neighbours of the shared cache, told by unicast advertisements
    /// (Override set) on the interfaces of the VIF's IPv6 addresses.
    pub cache6: Vec<(Ipv6Addr, [u8; 6])>,
}

/// How far an announcement got, as reported to the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnounceStage {
    /// The VIF's IPv6 addresses are usable (the kernel routes them to this
    /// host): XDP may answer solicitations for them. Reported before the
    /// first frame.
    Usable,
    /// The first round of the burst is on the wire on every interface.
    OnWire,
}

/// Tells the agent how far an announcement got: its IPv6 addresses usable,
/// then its first round of gratuitous ARP and unsolicited NAs on the wire.
/// An announcement replaced or cancelled before that never completes: the
/// agent waits for the newest one.
#[derive(Debug)]
pub struct AnnounceDone {
    vif: usize,
    generation: u64,
    tx: mpsc::UnboundedSender<(usize, u64, AnnounceStage)>,
}

impl AnnounceDone {
    /// A completion for announcement `generation` of VIF `vif`, sent on `tx`.
    pub fn new(
        vif: usize,
        generation: u64,
        tx: mpsc::UnboundedSender<(usize, u64, AnnounceStage)>,
    ) -> Self {
        AnnounceDone {
            vif,
            generation,
            tx,
        }
    }

    /// The VIF announced.
    pub fn vif(&self) -> usize {
        self.vif
    }

    /// The VIF's IPv6 addresses are usable (or waited for long enough).
    pub fn usable(&self) {
        self.report(AnnounceStage::Usable);
    }

    /// The announcement is on the wire.
    pub fn complete(self) {
        self.report(AnnounceStage::OnWire);
    }

    fn report(&self, stage: AnnounceStage) {
        // The agent may be gone (stopping): nothing to tell then.
        let _ = self.tx.send((self.vif, self.generation, stage));
    }
}

/// A link going up or down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarrierEvent {
    pub iface: String,
    pub up: bool,
}

/// Conflict reports of the data plane: frames from another host claiming an
/// address we own, in batches.
pub type Conflicts = LocalBoxStream<'static, Vec<ConflictEvent>>;

/// Carrier changes of the interfaces that hold VIPs.
pub type CarrierEvents = LocalBoxStream<'static, CarrierEvent>;

/// Everything the agent does to the machine.
#[allow(async_fn_in_trait)]
pub trait Host {
    /// The XDP table (ARP answers, silence, lease).
    type Table: VipTable;
    /// Kernel addresses.
    type Addresses: AddressPlumbing;

    /// The XDP table, to read counters.
    fn table(&self) -> &Self::Table;

    /// The XDP table and the address plumbing together: bringing a VIF up or
    /// down takes steps on both, in order.
    fn parts(&mut self) -> (&mut Self::Table, &Self::Addresses);

    /// Starts announcing VIF `vif` (after `a.delay`), replacing an
    /// announcement of that VIF still under way; calls `done.usable()` once
    /// the VIF's IPv6 addresses are usable, before the first frame, and
    /// `done.complete()` once the announcement is on the wire (neither if it
    /// is replaced or cancelled first).
    fn announce(&mut self, vif: usize, a: Announcement, done: AnnounceDone);

    /// Stops the announcement of VIF `vif` at once, if one is under way.
    fn cancel_announcement(&mut self, vif: usize);

    /// Where the agent tells of every renewal of the XDP lease:
    /// announcements go out only while it runs (one from a silent node
    /// draws traffic into its fence).
    fn lease_signal(&self) -> LeaseSignal;

    /// Starts `keeper`, which extends the XDP lease from the engine's
    /// evidence off the agent's loop, writing it through a handle of its
    /// own (see `lease_keeper`).
    fn start_lease_keeper(&mut self, keeper: LeaseKeeper) -> Result<()>;

    /// The kernel's neighbour table of `iface` (IPv4 address, MAC).
    async fn neighbours(&self, iface: &str) -> Result<Vec<(Ipv4Addr, [u8; 6])>>;

    /// The kernel's IPv6 neighbour table of `iface` (IPv6 address, MAC).
    async fn neighbours6(&self, iface: &str) -> Result<Vec<(Ipv6Addr, [u8; 6])>>;

    /// The data plane's conflict reports; taken once (later calls: `None`).
    fn conflicts(&mut self) -> Option<Conflicts>;

    /// Carrier changes; taken once (later calls: `None`, as when the host
    /// does not report them).
    fn carrier_events(&mut self) -> Option<CarrierEvents>;

    /// Reads the configuration again (SIGHUP).
    fn read_config(&self) -> Result<Config>;

    /// Detaches and unpins the data plane: the agent is leaving.
    fn shutdown(self) -> Result<()>;
}

/// The longest an announcement waits for its IPv6 addresses to become
/// usable (their local route, see `Rtnl::wait_local6`).
pub const USABLE_WAIT: Duration = Duration::from_secs(1);

/// Kernel addresses over rtnetlink, and the solicited-node memberships of
/// IPv6 VIPs (held by one packet socket per interface).
///
/// One netlink connection serves every request (opened on first use, in
/// the agent's namespace), and interface indexes come from
/// `if_nametoindex`: a connection and a link query per address made a
/// thousand-VIP decision open a thousand sockets.
#[derive(Default)]
pub struct Netlink {
    rtnl: Mutex<Option<crate::net::Rtnl>>,
    groups: Mutex<HashMap<String, (NdSender, BTreeSet<Ipv6Addr>)>>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// The shared connection and `iface`'s index.
    fn target(&self, iface: &str) -> Result<(crate::net::Rtnl, u32)> {
        let index =
            crate::dataplane::ifindex(iface).map_err(|e| anyhow!("interface {iface}: {e}"))?;
        Ok((self.connection()?, index))
    }

    /// The shared connection (opened on first use).
    fn connection(&self) -> Result<crate::net::Rtnl> {
        let mut rtnl = self
            .rtnl
            .lock()
            .map_err(|_| anyhow!("netlink connection: lock poisoned"))?;
        Ok(match rtnl.as_ref() {
            Some(r) => r.clone(),
            None => rtnl.insert(crate::net::Rtnl::new()?).clone(),
        })
    }

    /// A failed request may mean a dead connection: the next one opens a
    /// fresh connection (the agent retries failed VIFs).
    fn reset(&self) {
        if let Ok(mut rtnl) = self.rtnl.lock() {
            *rtnl = None;
        }
    }
}

/// How long an address request may wait for the kernel's reply. A reply
/// lost on the way (a full netlink socket buffer drops it) would leave the
/// request pending for ever, and with it the agent's loop.
const NETLINK_REPLY_LIMIT: Duration = Duration::from_secs(5);

impl Netlink {
    /// Runs one request on the shared connection; on an error or no reply
    /// within [`NETLINK_REPLY_LIMIT`], the next request opens a fresh
    /// connection (the agent retries failed VIFs).
    async fn request<F>(&self, what: impl FnOnce() -> String, req: F) -> Result<()>
    where
        F: std::future::Future<Output = crate::net::NetResult<()>>,
    {
        match tokio::time::timeout(NETLINK_REPLY_LIMIT, req).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.reset();
                Err(anyhow!("{e}"))
            }
            Err(_) => {
                self.reset();
                Err(anyhow!(
                    "{}: no reply from the kernel within {NETLINK_REPLY_LIMIT:?}",
                    what()
                ))
            }
        }
    }
}

impl AddressPlumbing for Netlink {
    async fn add(&self, iface: &str, ip: IpAddr, prefix: u8) -> Result<()> {
        let (rtnl, index) = self.target(iface)?;
        // The message is built only on a timeout: a decision may plumb
        // thousands of addresses.
        let what = || format!("interface {iface}: adding {ip}/{prefix}");
        self.request(what, rtnl.add_at(iface, index, ip, prefix))
            .await
    }
    async fn remove(&self, iface: &str, ip: IpAddr, prefix: u8) -> Result<()> {
        let (rtnl, index) = self.target(iface)?;
        let what = || format!("interface {iface}: removing {ip}/{prefix}");
        self.request(what, rtnl.remove_at(iface, index, ip, prefix))
            .await
    }
    async fn join_solicited_node(&self, iface: &str, ip: Ipv6Addr) -> Result<()> {
        let mut groups = self
            .groups
            .lock()
            .map_err(|_| anyhow!("solicited-node memberships: lock poisoned"))?;
        let (sender, joined) = match groups.entry(iface.to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let sender = NdSender::open(iface).map_err(|e| anyhow!("{e}"))?;
                e.insert((sender, BTreeSet::new()))
            }
        };
        // The socket counts its joins; one per VIP keeps a shared group
        // (VIPs with the same low 24 bits) joined until the last one leaves.
        if joined.insert(ip) {
            if let Err(e) = sender.join_solicited_node(ip) {
                joined.remove(&ip);
                return Err(anyhow!("{e}"));
            }
        }
        Ok(())
    }
    async fn present(&self, iface: &str) -> Result<Vec<IpAddr>> {
        let rtnl = self.connection()?;
        let mut all: Vec<IpAddr> = rtnl
            .list_addrs(iface)
            .await
            .map_err(|e| anyhow!("{e}"))?
            .into_iter()
            .map(|(ip, _)| IpAddr::V4(ip))
            .collect();
        let six = rtnl.list_addrs6(iface).await.map_err(|e| anyhow!("{e}"))?;
        all.extend(six.into_iter().map(IpAddr::V6));
        Ok(all)
    }
    async fn leave_solicited_node(&self, iface: &str, ip: Ipv6Addr) -> Result<()> {
        let mut groups = self
            .groups
            .lock()
            .map_err(|_| anyhow!("solicited-node memberships: lock poisoned"))?;
        let Some((sender, joined)) = groups.get_mut(iface) else {
            return Ok(());
        };
        if !joined.remove(&ip) {
            return Ok(());
        }
        // The socket stays open with no group left: closing it would block
        // the agent's thread for an RCU grace period (see `senders`).
        sender.leave_solicited_node(ip).map_err(|e| anyhow!("{e}"))
    }
}

/// This machine: the XDP data plane, rtnetlink, ARP sockets, the config file.
pub struct LinuxHost {
    plane: DataPlane,
    netlink: Netlink,
    conflicts: Option<Conflicts>,
    /// Every VIF's announcement, in one schedule.
    announcer: Announcer,
    /// The sockets announcements send on, kept (see `senders`).
    senders: Senders,
    config_path: PathBuf,
    /// The interfaces that carry VIPs (their carrier is watched).
    carrier_ifaces: Vec<String>,
    /// Interfaces whose `promote_secondaries` we turned on, with the value
    /// to put back at a clean stop (see `net::sysctl`).
    promoted: Vec<(String, String)>,
}

impl LinuxHost {
    /// Wraps an open data plane; `config_path` is re-read on SIGHUP; the
    /// carrier of `carrier_ifaces` (those that carry VIPs) is watched.
    pub fn new(
        mut plane: DataPlane,
        config_path: PathBuf,
        carrier_ifaces: Vec<String>,
    ) -> Result<Self> {
        let conflicts = plane
            .take_conflicts()
            .map(|r| r.into_async())
            .transpose()
            .context("data plane: conflict ring buffer")?
            .map(conflict_stream);
        let mut promoted = Vec::new();
        for iface in &carrier_ifaces {
            match crate::net::sysctl::ensure_promote_secondaries(iface) {
                Ok(None) => {}
                Ok(Some(was)) => {
                    info!(
                        %iface,
                        was = %was,
                        "net.ipv4.conf.{iface}.promote_secondaries = 1: releasing one VIP of a subnet must not remove the others"
                    );
                    promoted.push((iface.clone(), was));
                }
                Err(e) => warn!(
                    "{e}: could not turn on promote_secondaries; releasing the first VIP of a subnet \
                     this node has no address of its own in removes the others (set \
                     net.ipv4.conf.{iface}.promote_secondaries = 1)"
                ),
            }
        }
        Ok(LinuxHost {
            promoted,
            plane,
            netlink: Netlink::default(),
            conflicts,
            announcer: Announcer::default(),
            senders: Senders::default(),
            config_path,
            carrier_ifaces,
        })
    }
}

/// Whether a link message says the link can carry traffic: IFF_RUNNING is
/// set by the kernel exactly when the operational state is up (or unknown,
/// for devices that do not report it).
fn link_running(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Running)
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// Subscribes to link notifications (RTMGRP_LINK) first, then reads the
/// current state of every interface in `ifaces`, so no change is missed
/// between the two. Events name only those interfaces; repeated
/// notifications of an unchanged carrier are dropped.
fn watch_carrier(ifaces: Vec<String>) -> Result<mpsc::UnboundedReceiver<CarrierEvent>> {
    use futures::TryStreamExt;
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::sys::{AsyncSocket, SocketAddr};

    let (mut conn, handle, mut notifications) =
        rtnetlink::new_connection().context("netlink route socket")?;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))
        .context("subscribing to link notifications")?;
    tokio::spawn(conn);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut last: HashMap<String, bool> = HashMap::new();
        let mut report = |name: &str, up: bool| {
            if !ifaces.iter().any(|i| i == name) || last.get(name) == Some(&up) {
                return true;
            }
            last.insert(name.to_string(), up);
            tx.send(CarrierEvent {
                iface: name.to_string(),
                up,
            })
            .is_ok()
        };
        let mut links = handle.link().get().execute();
        loop {
            match links.try_next().await {
                Ok(Some(link)) => {
                    if let Some(name) = link_name(&link) {
                        let up = link_running(&link);
                        report(name, up);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    warn!("carrier: reading the links: {e}");
                    break;
                }
            }
        }
        while let Some((msg, _)) = notifications.next().await {
            let (link, deleted) = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => (l, false),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => (l, true),
                _ => continue,
            };
            if let Some(name) = link_name(&link) {
                let up = !deleted && link_running(&link);
                if !report(name, up) {
                    return;
                }
            }
        }
        warn!("carrier: link notifications ended; carrier losses are no longer noticed");
    });
    Ok(rx)
}

/// Batches from the ring buffer until it fails (logged once; no more reports).
fn conflict_stream(reader: AsyncConflictReader) -> Conflicts {
    futures::stream::unfold(reader, |mut r| async move {
        match r.next_batch().await {
            Ok(batch) => Some((batch, r)),
            Err(e) => {
                warn!("data plane: conflict ring buffer: {e}; no more conflict reports");
                None
            }
        }
    })
    .boxed_local()
}

/// The unicast notifications of an announcement, once its burst is over:
/// replies to the notify ranges and the shared ARP cache, advertisements to
/// the IPv6 ranges and the shared neighbour cache (each at its throttle),
/// every frame only while the XDP lease runs. `None` when there is nobody
/// to tell.
#[allow(clippy::too_many_arguments)]
fn notifications(
    name: &str,
    senders: &[(String, Vec<Ipv4Addr>, Arc<ArpSender>)],
    senders6: &[(String, Vec<Ipv6Addr>, Arc<NdSender>)],
    targets: Vec<(String, Ipv4Prefix, u32)>,
    targets6: Vec<(String, Ipv6Prefix, u32)>,
    cache: Vec<(Ipv4Addr, [u8; 6])>,
    cache6: Vec<(Ipv6Addr, [u8; 6])>,
    nd_router: bool,
    lease: &LeaseSignal,
) -> Option<BoxFuture<'static, ()>> {
    // Somebody to tell on an interface the VIF has addresses on.
    let for_v4 = !senders.is_empty()
        && (!cache.is_empty() || senders.iter().any(|s| targets.iter().any(|t| t.0 == s.0)));
    let for_v6 = !senders6.is_empty()
        && (!cache6.is_empty() || senders6.iter().any(|s| targets6.iter().any(|t| t.0 == s.0)));
    if !for_v4 && !for_v6 {
        return None;
    }
    let (name, senders, senders6) = (name.to_string(), senders.to_vec(), senders6.to_vec());
    let mut lease = lease.waiter();
    Some(
        async move {
            // Every frame waits for the lease: a node whose XDP went silent
            // must not tell its neighbours to send it traffic.
            for (iface, ips, sender) in senders {
                for (t_iface, range, pps) in targets.iter().filter(|t| t.0 == iface) {
                    if let Err(e) = sender.notify(&ips, range, &cache, *pps, &mut lease).await {
                        warn!("notifying {t_iface}:{range:?} of VIF {name}: {e}");
                    }
                }
                if !cache.is_empty() {
                    if let Err(e) = sender
                        .reply_to(&ips, &cache, super::arp_share::CACHE_REPLY_PPS, &mut lease)
                        .await
                    {
                        warn!("notifying the shared ARP cache of VIF {name}: {e}");
                    }
                }
            }
            for (iface, ips, sender) in senders6 {
                let ranges: Vec<_> = targets6.iter().filter(|t| t.0 == iface).collect();
                for (t_iface, range, pps) in &ranges {
                    let frames =
                        crate::net::nd::plan_notify6(sender.mac(), &ips, range, &cache6, nd_router);
                    if let Err(e) = sender.send_paced(&frames, *pps, &mut lease).await {
                        warn!("notifying {t_iface}:{range} of VIF {name}: {e}");
                    }
                }
                // The cache's neighbours a notify range above did not tell.
                let told: Vec<_> = ranges.iter().map(|t| t.1).collect();
                let frames =
                    crate::net::nd::plan_cache6(sender.mac(), &ips, &cache6, &told, nd_router);
                if !frames.is_empty() {
                    if let Err(e) = sender
                        .send_paced(&frames, super::arp_share::CACHE_REPLY_PPS, &mut lease)
                        .await
                    {
                        warn!("notifying the shared neighbour cache of VIF {name}: {e}");
                    }
                }
            }
        }
        .boxed(),
    )
}

impl Host for LinuxHost {
    type Table = DataPlane;
    type Addresses = Netlink;

    fn table(&self) -> &DataPlane {
        &self.plane
    }

    fn parts(&mut self) -> (&mut DataPlane, &Netlink) {
        (&mut self.plane, &self.netlink)
    }

    /// Gratuitous ARP and unsolicited NA burst in the host's announcement
    /// schedule (see `announcer`), then unicast replies and advertisements
    /// to the notify targets and the shared ARP cache in a task of its own.
    /// The first round of the burst on every interface completes the
    /// announcement (clients that heard it have moved).
    fn announce(&mut self, vif: usize, a: Announcement, done: AnnounceDone) {
        let Announcement {
            vif: name,
            delay,
            addresses,
            addresses6,
            burst,
            nd_router,
            targets,
            targets6,
            cache,
            cache6,
        } = a;
        let mut senders = Vec::new();
        for (iface, ips) in addresses {
            match self.senders.arp.get(&iface) {
                Ok(s) => senders.push((iface, ips, s)),
                Err(e) => warn!("announcing VIF {name}: {e}"),
            }
        }
        let mut senders6 = Vec::new();
        for (iface, ips) in addresses6 {
            match self.senders.nd.get(&iface) {
                Ok(s) => senders6.push((iface, ips, s)),
                Err(e) => warn!("announcing VIF {name}: {e}"),
            }
        }
        // An IPv6 address is usable a moment after the kernel acknowledged
        // it (see `Rtnl::wait_local6`): announcing before would draw the
        // clients away from the old owner to a host that drops their
        // traffic (lost probes on hand-overs of loaded hosts). Past the
        // limit, announce anyway: a hand-over must complete.
        let usable = match senders6.is_empty() {
            true => None,
            false => self
                .netlink
                .connection()
                .map_err(|e| warn!("announcing VIF {name}: {e:#}"))
                .ok()
                .map(|rtnl| {
                    let name = name.clone();
                    let wait: Vec<(String, Ipv6Addr)> = senders6
                        .iter()
                        .flat_map(|(iface, ips, _)| ips.iter().map(|ip| (iface.clone(), *ip)))
                        .collect();
                    async move {
                        for (iface, ip) in wait {
                            if let Err(e) = rtnl.wait_local6(&iface, ip, USABLE_WAIT).await {
                                warn!("announcing VIF {name}: {e}; announcing anyway");
                            }
                        }
                    }
                    .boxed()
                }),
        };
        // Cloned for the notifications only when there is somebody to tell.
        let follow_up = notifications(
            &name,
            &senders,
            &senders6,
            targets,
            targets6,
            cache,
            cache6,
            nd_router,
            &self.announcer.lease_signal(),
        );
        let job = Job {
            name,
            delay,
            arp: senders
                .into_iter()
                .map(|(iface, ips, s)| (iface, s as Arc<dyn GarpWire>, ips))
                .collect(),
            nd: senders6
                .into_iter()
                .map(|(iface, ips, s)| (iface, s as Arc<dyn NaWire>, ips))
                .collect(),
            burst,
            nd_router,
            usable,
            follow_up,
        };
        self.announcer.start(vif, job, done);
    }

    fn cancel_announcement(&mut self, vif: usize) {
        self.announcer.cancel(vif);
    }

    fn lease_signal(&self) -> LeaseSignal {
        self.announcer.lease_signal()
    }

    /// On a thread of its own: the agent's loop may be busy for longer
    /// than the lease.
    fn start_lease_keeper(&mut self, keeper: LeaseKeeper) -> Result<()> {
        let map = self
            .plane
            .lease_fence()
            .context("data plane: the lease keeper's handle on the lease")?;
        keeper
            .spawn_thread(map)
            .context("cannot start the lease keeper's thread")
    }

    async fn neighbours(&self, iface: &str) -> Result<Vec<(Ipv4Addr, [u8; 6])>> {
        crate::net::neigh::list(iface)
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    async fn neighbours6(&self, iface: &str) -> Result<Vec<(Ipv6Addr, [u8; 6])>> {
        crate::net::neigh::list6(iface)
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    fn conflicts(&mut self) -> Option<Conflicts> {
        self.conflicts.take()
    }

    /// rtnetlink link notifications of the VIP interfaces: their state at
    /// start, then every change.
    fn carrier_events(&mut self) -> Option<CarrierEvents> {
        let ifaces = std::mem::take(&mut self.carrier_ifaces);
        if ifaces.is_empty() {
            return None;
        }
        match watch_carrier(ifaces) {
            Ok(rx) => Some(
                futures::stream::unfold(
                    rx,
                    |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) },
                )
                .boxed_local(),
            ),
            Err(e) => {
                warn!("carrier: cannot watch the interfaces' links: {e:#}; carrier losses are not noticed");
                None
            }
        }
    }

    fn read_config(&self) -> Result<Config> {
        config::load(&self.config_path).map_err(|e| anyhow!("{e}"))
    }

    fn shutdown(self) -> Result<()> {
        // Every VIP is gone by now: the old setting can come back.
        for (iface, was) in &self.promoted {
            if let Err(e) = crate::net::sysctl::restore_promote_secondaries(iface, was) {
                warn!("putting promote_secondaries back: {e}");
            }
        }
        self.plane.shutdown().context("data plane shutdown")
    }
}

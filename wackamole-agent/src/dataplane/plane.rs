//! [`DataPlane`]: the loaded program, its pinned maps and links.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::maps::{Array, HashMap, MapData, MapError, MapInfo, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use wackamole_common::{
    action, names, vip_flags, vip_state, LeaseRecord, VipCounters, VipEntry, VipKey, MAX_VIPS,
};

use super::conflicts::ConflictReader;
use super::error::{boxed, BoxError, DataPlaneError, Result};
use super::{
    sys, ActionCounters, AttachedInterface, DataPlaneOptions, Vip, VipRecord, VipState,
    XdpAttachMode,
};

/// The XDP object built by `cargo xtask build` (empty if it was missing).
static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("WACKAMOLE_EBPF_OBJECT"));

/// Size of the conflict ring buffer in the object (checked on reuse).
const CONFLICT_RING_BYTES: u32 = 16 * 1024;

/// Prefix of pinned XDP links: `link-<ifindex>`.
const LINK_PREFIX: &str = "link-";

/// (name, key size, value size, max entries) of every pinned map, to detect
/// pins of another layout (left by another version), which are replaced.
const MAP_SHAPES: [(&str, u32, u32, u32); 6] = [
    (
        names::VIPS,
        size_of::<VipKey>() as u32,
        size_of::<VipEntry>() as u32,
        MAX_VIPS,
    ),
    (
        names::VIP_COUNTERS,
        size_of::<VipKey>() as u32,
        size_of::<VipCounters>() as u32,
        MAX_VIPS,
    ),
    (names::ACTIONS, 4, 8, action::COUNT),
    (names::LEASE, 4, size_of::<LeaseRecord>() as u32, 1),
    (names::BEAT_LEASE, 4, size_of::<LeaseRecord>() as u32, 1),
    (names::CONFLICTS, 0, 0, CONFLICT_RING_BYTES),
];

/// How to own a VIP (see [`DataPlane::own_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnOptions {
    /// MAC to answer with; `None`: the interface's (attaching to it).
    pub mac: Option<[u8; 6]>,
    /// Set the Router flag in neighbour advertisements (IPv6 VIPs used as a
    /// default gateway).
    pub nd_router: bool,
}

/// An interface the program is attached to.
#[derive(Debug)]
struct Attached {
    iface: String,
    /// Mode used (None: adopted from a pinned link, mode unknown).
    mode: Option<XdpAttachMode>,
    /// Source of ARP replies for VIPs on it (None: not resolvable here).
    mac: Option<[u8; 6]>,
}

/// The lease deadline `validity` from now (ns of CLOCK_MONOTONIC, the
/// clock of `bpf_ktime_get_ns`).
fn deadline_after(validity: Duration) -> u64 {
    u64::try_from((sys::monotonic_now() + validity).as_nanos()).unwrap_or(u64::MAX)
}

/// The loaded XDP program with its pinned maps and links.
pub struct DataPlane {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    mode: XdpAttachMode,
    vips: HashMap<MapData, VipKey, VipEntry>,
    counters: PerCpuHashMap<MapData, VipKey, VipCounters>,
    actions: PerCpuArray<MapData, u64>,
    lease: LeaseMap,
    beat_lease: LeaseMap,
    conflicts: Option<RingBuf<MapData>>,
    attached: BTreeMap<u32, Attached>,
    /// Drains the XDP program's debug log into `log` (only with `ebpf_debug_log`).
    ebpf_log: Option<Box<dyn FnMut() + Send>>,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("pin_dir", &self.pin_dir)
            .field("mode", &self.mode)
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

fn map_err(map: &'static str, action: &'static str) -> impl FnOnce(MapError) -> DataPlaneError {
    move |e| DataPlaneError::Map {
        map,
        action,
        cause: boxed(e),
    }
}

fn vip_err<'a>(vip: &'a Vip, action: &'static str) -> impl FnOnce(MapError) -> DataPlaneError + 'a {
    move |e| DataPlaneError::Vip {
        vip: vip.to_string(),
        action,
        cause: boxed(e),
    }
}

fn bpffs_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> DataPlaneError {
    let path = path.to_path_buf();
    move |e| DataPlaneError::Bpffs {
        path,
        action,
        cause: boxed(e),
    }
}

/// Lookups report a missing key as KeyNotFound, deletes as ENOENT.
fn is_not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// Makes sure `bpffs` is a bpf filesystem, mounting one if needed; true when
/// we mounted it.
fn ensure_bpffs(bpffs: &Path) -> Result<bool> {
    std::fs::create_dir_all(bpffs).map_err(bpffs_err(bpffs, "creating the mount point"))?;
    if sys::is_bpffs(bpffs).map_err(bpffs_err(bpffs, "statfs"))? {
        return Ok(false);
    }
    tracing::info!(path = %bpffs.display(), "mounting the bpf filesystem");
    sys::mount_bpffs(bpffs).map_err(bpffs_err(bpffs, "mount -t bpf (are we root?)"))?;
    Ok(true)
}

/// Refuses a bpffs that only this process's mount namespace sees (unless
/// `allow`): its pins, links and lease fence would die with the agent.
fn check_bpffs_scope(bpffs: &Path, mounted_here: bool, allow: bool) -> Result<()> {
    match sys::bpffs_scope(bpffs, mounted_here) {
        sys::BpffsScope::Shared => Ok(()),
        sys::BpffsScope::Unknown(why) => {
            tracing::warn!(path = %bpffs.display(), why,
                "cannot tell whether the bpffs outlives the agent (pins and fence may die with it)");
            Ok(())
        }
        sys::BpffsScope::Private(why) if allow => {
            tracing::warn!(path = %bpffs.display(), why,
                "bpffs is private to the agent's mount namespace: allowed by \
                 xdp.allow_private_bpffs, but a killed agent is not fenced");
            Ok(())
        }
        sys::BpffsScope::Private(why) => Err(DataPlaneError::Bpffs {
            path: bpffs.to_path_buf(),
            action: "checking that the pins outlive the agent",
            cause: boxed(format!(
                "this bpffs is private to the agent's mount namespace ({why}): the pinned \
                 XDP program, maps and lease fence would vanish with the agent, and the \
                 kernel would then answer for a killed agent's addresses. Fix: run the agent \
                 in the host's mount namespace (`nsenter --net=/run/netns/NAME` instead of \
                 `ip netns exec`), point bpffs_dir at a bpffs mounted on the host outside \
                 /sys (e.g. `mount -t bpf bpf /run/wackamole-bpf` and bpffs_dir = \
                 \"/run/wackamole-bpf/wackamole\"), or bind-mount the host's /sys/fs/bpf \
                 into the container; or set xdp.allow_private_bpffs = true to accept an \
                 unfenced node"
            )),
        }),
    }
}

/// Creates the instance directory. Another instance's shutdown may remove
/// the shared parent between our two mkdirs, hence the retries.
fn create_pin_dir(pin_dir: &Path) -> Result<()> {
    let mut attempt = 0;
    loop {
        match std::fs::create_dir_all(pin_dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 => attempt += 1,
            Err(e) => return Err(bpffs_err(pin_dir, "creating")(e)),
        }
    }
}

/// Pinned links in `pin_dir`, by ifindex.
fn pinned_links(pin_dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    let dir = std::fs::read_dir(pin_dir).map_err(bpffs_err(pin_dir, "listing pins"))?;
    for entry in dir {
        let entry = entry.map_err(bpffs_err(pin_dir, "listing pins"))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix(LINK_PREFIX))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        out.push((index, entry.path()));
    }
    Ok(out)
}

/// Detaches and removes every pin in `pin_dir` (links first, then maps).
fn purge_pins(pin_dir: &Path) -> Result<()> {
    for (_, path) in pinned_links(pin_dir)? {
        // Unpinning and dropping the last reference detaches the program.
        std::fs::remove_file(&path).map_err(bpffs_err(&path, "removing a pinned link"))?;
    }
    for (name, ..) in MAP_SHAPES {
        let path = pin_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bpffs_err(&path, "removing a pinned map")(e)),
        }
    }
    Ok(())
}

/// True when every pinned map in `pin_dir` has the layout this build expects.
fn pins_compatible(pin_dir: &Path) -> bool {
    MAP_SHAPES.iter().all(|&(name, key, value, max)| {
        let path = pin_dir.join(name);
        if !path.exists() {
            return true;
        }
        match MapInfo::from_pin(&path) {
            Ok(info) => {
                info.key_size() == key && info.value_size() == value && info.max_entries() == max
            }
            Err(_) => false,
        }
    })
}

impl DataPlane {
    /// Loads the program, reuses or creates the pinned maps, adopts pinned
    /// links (swapping the new program in atomically) and attaches to
    /// `opts.interfaces`.
    pub fn open(opts: &DataPlaneOptions) -> Result<Self> {
        // build.rs embeds an empty stub when the object was not built.
        if OBJECT.is_empty() {
            return Err(DataPlaneError::Program {
                action: "loading the object",
                cause: boxed(
                    "this binary was built without the XDP program; build with `cargo xtask build`",
                ),
            });
        }
        let mounted_here = ensure_bpffs(&opts.bpffs)?;
        check_bpffs_scope(&opts.bpffs, mounted_here, opts.allow_private_bpffs)?;
        let pin_dir = opts.pin_dir();
        create_pin_dir(&pin_dir)?;
        if !pins_compatible(&pin_dir) {
            tracing::warn!(dir = %pin_dir.display(), "pinned maps have another layout; replacing them");
            purge_pins(&pin_dir)?;
        }

        let log_level: u8 = if opts.ebpf_debug_log {
            aya_log::Level::Debug as u8
        } else {
            0
        };
        let mut loader = EbpfLoader::new();
        for (name, ..) in MAP_SHAPES {
            loader.map_pin_path(name, pin_dir.join(name));
        }
        loader.override_global(aya_log::LEVEL, &log_level, true);
        let mut ebpf = loader.load(OBJECT).map_err(|e| DataPlaneError::Program {
            action: "loading the object (maps pinned in the instance directory)",
            cause: boxed(e),
        })?;
        let mut ebpf_log: Option<Box<dyn FnMut() + Send>> = None;
        if opts.ebpf_debug_log {
            match aya_log::EbpfLogger::init(&mut ebpf) {
                Ok(mut logger) => ebpf_log = Some(Box::new(move || logger.flush())),
                Err(e) => tracing::warn!(error = %e, "XDP debug log unavailable"),
            }
        }
        xdp_mut(&mut ebpf)?
            .load()
            .map_err(|e| DataPlaneError::Program {
                action: "verifying and loading",
                cause: boxed(e),
            })?;

        let vips = HashMap::try_from(take(&mut ebpf, names::VIPS)?)
            .map_err(map_err(names::VIPS, "opening"))?;
        let counters = PerCpuHashMap::try_from(take(&mut ebpf, names::VIP_COUNTERS)?)
            .map_err(map_err(names::VIP_COUNTERS, "opening"))?;
        let actions = PerCpuArray::try_from(take(&mut ebpf, names::ACTIONS)?)
            .map_err(map_err(names::ACTIONS, "opening"))?;
        let lease = LeaseMap::open(take(&mut ebpf, names::LEASE)?, names::LEASE)?;
        let beat_lease = LeaseMap::open(take(&mut ebpf, names::BEAT_LEASE)?, names::BEAT_LEASE)?;
        let conflicts = RingBuf::try_from(take(&mut ebpf, names::CONFLICTS)?)
            .map_err(map_err(names::CONFLICTS, "opening"))?;

        let mut plane = DataPlane {
            ebpf,
            pin_dir,
            mode: opts.mode,
            vips,
            counters,
            actions,
            lease,
            beat_lease,
            conflicts: Some(conflicts),
            attached: BTreeMap::new(),
            ebpf_log,
        };
        plane.adopt_pinned_links()?;
        plane.drop_orphan_counters()?;
        for iface in &opts.interfaces {
            plane.attach(iface)?;
        }
        Ok(plane)
    }

    /// The pin directory `<bpffs>/wackamole/<instance>`.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The loaded program (e.g. for `BPF_PROG_TEST_RUN` in tests and benchmarks).
    pub fn program(&self) -> Result<&Xdp> {
        let prog = self
            .ebpf
            .program(names::PROGRAM)
            .ok_or_else(|| DataPlaneError::Program {
                action: "finding the program in the object",
                cause: boxed(format!("no program named {}", names::PROGRAM)),
            })?;
        prog.try_into().map_err(|e| DataPlaneError::Program {
            action: "program type",
            cause: boxed(e),
        })
    }

    /// Interfaces the program is attached to.
    pub fn attached(&self) -> Vec<AttachedInterface> {
        self.attached
            .iter()
            .map(|(i, a)| AttachedInterface {
                ifindex: *i,
                iface: a.iface.clone(),
                mode: a.mode,
            })
            .collect()
    }

    /// Forwards pending XDP debug log records to the `log` facade (call it
    /// periodically when `ebpf_debug_log` is on; a no-op otherwise).
    pub fn flush_ebpf_log(&mut self) {
        if let Some(flush) = self.ebpf_log.as_mut() {
            flush();
        }
    }

    /// Attaches the program to `iface` (resolved in the calling thread's
    /// network namespace) and pins the link; a no-op if already attached.
    pub fn attach(&mut self, iface: &str) -> Result<u32> {
        let iface_err = |action: &'static str| {
            let iface = iface.to_string();
            move |e: BoxError| DataPlaneError::Interface {
                iface,
                action,
                cause: e,
            }
        };
        let ifindex =
            sys::ifindex(iface).map_err(|e| iface_err("looking up its index")(boxed(e)))?;
        if self.attached.contains_key(&ifindex) {
            return Ok(ifindex);
        }
        let mac = sys::mac(iface).map_err(|e| iface_err("reading its MAC address")(boxed(e)))?;
        let mode = self.mode;
        let prog = xdp_mut(&mut self.ebpf)?;
        let (id, used) = match mode {
            XdpAttachMode::Native => (
                prog.attach_to_if_index(ifindex, XdpMode::Driver)
                    .map_err(|e| iface_err("attaching XDP in native mode")(boxed(e)))?,
                XdpAttachMode::Native,
            ),
            XdpAttachMode::Skb => (
                prog.attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|e| iface_err("attaching XDP in SKB mode")(boxed(e)))?,
                XdpAttachMode::Skb,
            ),
            XdpAttachMode::Auto => match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
                Ok(id) => (id, XdpAttachMode::Native),
                Err(native) => {
                    tracing::warn!(iface, error = %native,
                        "native XDP unavailable; falling back to SKB (generic) mode");
                    let id = prog
                        .attach_to_if_index(ifindex, XdpMode::Skb)
                        .map_err(|e| iface_err("attaching XDP in SKB mode")(boxed(e)))?;
                    (id, XdpAttachMode::Skb)
                }
            },
        };
        let link = prog
            .take_link(id)
            .map_err(|e| iface_err("taking the XDP link")(boxed(e)))?;
        let fd_link = FdLink::try_from(link).map_err(|e| {
            iface_err("XDP link is not a bpf_link (kernel too old to pin)")(boxed(e))
        })?;
        let path = self.link_path(ifindex);
        fd_link
            .pin(&path)
            .map_err(|e| iface_err("pinning the XDP link")(boxed(e)))?;
        tracing::info!(iface, ifindex, mode = ?used, "XDP program attached");
        self.attached.insert(
            ifindex,
            Attached {
                iface: iface.to_string(),
                mode: Some(used),
                mac: Some(mac),
            },
        );
        Ok(ifindex)
    }

    /// Detaches from interface `ifindex` and forgets its VIPs.
    pub fn detach(&mut self, ifindex: u32) -> Result<()> {
        let iface = self
            .attached
            .remove(&ifindex)
            .map(|a| a.iface)
            .unwrap_or_else(|| format!("#{ifindex}"));
        let path = self.link_path(ifindex);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DataPlaneError::Interface {
                    iface,
                    action: "removing the pinned XDP link",
                    cause: boxed(e),
                })
            }
        }
        for record in self.entries()? {
            if record.vip.ifindex == ifindex {
                self.forget(&record.vip)?;
            }
        }
        Ok(())
    }

    /// Answers ARP for `vip` from XDP and counts its traffic. Attaches to its
    /// interface first if needed.
    pub fn own(&mut self, vip: &Vip) -> Result<()> {
        let mac = self.mac_for(vip)?;
        self.own_as(vip, mac)
    }

    /// Like [`DataPlane::own`], answering with `mac` and without attaching
    /// (e.g. a VIP on a macvlan, or tests that run the program directly).
    pub fn own_as(&mut self, vip: &Vip, mac: [u8; 6]) -> Result<()> {
        self.own_with(
            vip,
            OwnOptions {
                mac: Some(mac),
                ..OwnOptions::default()
            },
        )
    }

    /// [`DataPlane::own`] with options: the MAC to answer with (`None`: the
    /// interface's, attaching to it if needed) and the NA Router flag.
    pub fn own_with(&mut self, vip: &Vip, opts: OwnOptions) -> Result<()> {
        let mac = match opts.mac {
            Some(mac) => mac,
            None => self.mac_for(vip)?,
        };
        let flags = if opts.nd_router {
            vip_flags::ND_ROUTER
        } else {
            0
        };
        self.vips
            .insert(
                vip.key(),
                VipEntry::with_flags(vip_state::OWNED, mac, flags),
                0,
            )
            .map_err(vip_err(vip, "marking it owned"))
    }

    /// Drops ARP requests, solicitations and IP traffic for `vip` from now on.
    pub fn release(&mut self, vip: &Vip) -> Result<()> {
        self.set_state(vip, vip_state::RELEASING, "marking it releasing")
    }

    /// Make-before-break hand-over: ARP requests and solicitations for `vip`
    /// are dropped from now on (neither answered from XDP nor passed to the
    /// kernel, which would answer for the still configured address), while
    /// its IP traffic is still accepted and counted.
    pub fn yield_vip(&mut self, vip: &Vip) -> Result<()> {
        self.set_state(vip, vip_state::YIELDING, "marking it yielding")
    }

    /// Writes `state`, keeping the entry's MAC and flags (an unknown VIP gets
    /// its interface's MAC, or zeros).
    fn set_state(&mut self, vip: &Vip, state: u32, action: &'static str) -> Result<()> {
        let (mac, flags) = match self.vips.get(&vip.key(), 0) {
            Ok(entry) => (entry.mac, entry.flags),
            Err(e) if is_not_found(&e) => (
                self.attached
                    .get(&vip.ifindex)
                    .and_then(|a| a.mac)
                    .unwrap_or([0; 6]),
                0,
            ),
            Err(e) => return Err(vip_err(vip, "reading its entry")(e)),
        };
        self.vips
            .insert(vip.key(), VipEntry::with_flags(state, mac, flags), 0)
            .map_err(vip_err(vip, action))
    }

    /// Removes `vip` and its counters; the kernel handles it as usual again.
    pub fn forget(&mut self, vip: &Vip) -> Result<()> {
        match self.vips.remove(&vip.key()) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(vip_err(vip, "removing its entry")(e)),
        }
        match self.counters.remove(&vip.key()) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(vip_err(vip, "removing its counters")(e)),
        }
    }

    /// Sets the lease deadline to now + `validity` (CLOCK_MONOTONIC, the
    /// clock of `bpf_ktime_get_ns`); `None` disables fencing.
    pub fn renew_lease(&mut self, validity: Option<Duration>) -> Result<()> {
        let deadline_ns = validity.map_or(0, deadline_after);
        self.set_lease_deadline(deadline_ns)
    }

    /// Writes the raw lease deadline (ns of CLOCK_MONOTONIC; 0 = no lease).
    pub fn set_lease_deadline(&mut self, deadline_ns: u64) -> Result<()> {
        self.lease.set(deadline_ns)
    }

    /// Writes the LAN detector's lease deadline (ns of CLOCK_MONOTONIC;
    /// 0 = none). Its beat thread writes it through a [`LeaseMap`].
    pub fn set_beat_deadline(&mut self, deadline_ns: u64) -> Result<()> {
        self.beat_lease.set(deadline_ns)
    }

    /// A writer of the LAN detector's lease for its beat thread (a handle
    /// of its own on the pinned map: the thread never waits for the agent).
    pub fn beat_fence(&self) -> Result<LeaseMap> {
        self.lease_map(names::BEAT_LEASE)
    }

    /// A writer of the lease for the lease keeper (`daemon::lease_keeper`),
    /// which extends it off the agent's loop.
    pub fn lease_fence(&self) -> Result<LeaseMap> {
        self.lease_map(names::LEASE)
    }

    /// A handle of its own on the pinned lease map `name`.
    fn lease_map(&self, name: &'static str) -> Result<LeaseMap> {
        let path = self.pin_dir.join(name);
        let data = MapData::from_pin(&path).map_err(map_err(name, "opening its pin"))?;
        LeaseMap::open(aya::maps::Map::Array(data), name)
    }

    /// The raw lease deadline (0 = no lease).
    pub fn lease_deadline(&self) -> Result<u64> {
        self.lease.deadline()
    }

    /// Per-VIP counters summed over CPUs (zero if none were recorded).
    pub fn counters(&self, vip: &Vip) -> Result<VipCounters> {
        match self.counters.get(&vip.key(), 0) {
            Ok(per_cpu) => Ok(per_cpu.iter().fold(VipCounters::default(), |mut acc, c| {
                acc.add(c);
                acc
            })),
            Err(e) if is_not_found(&e) => Ok(VipCounters::default()),
            Err(e) => Err(vip_err(vip, "reading its counters")(e)),
        }
    }

    /// Global action counters summed over CPUs.
    pub fn action_counters(&self) -> Result<ActionCounters> {
        let slot = |i: u32| -> Result<u64> {
            let per_cpu = self
                .actions
                .get(&i, 0)
                .map_err(map_err(names::ACTIONS, "reading"))?;
            Ok(per_cpu.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
        };
        Ok(ActionCounters {
            pass: slot(action::PASS)?,
            arp_reply: slot(action::ARP_REPLY)?,
            drop_releasing: slot(action::DROP_RELEASING)?,
            drop_fenced: slot(action::DROP_FENCED)?,
            conflict: slot(action::CONFLICT)?,
            na_reply: slot(action::NA_REPLY)?,
            drop_yielding: slot(action::DROP_YIELDING)?,
        })
    }

    /// Every entry of the VIP map, both families (also ones left by an
    /// earlier run), so the agent can forget what it no longer wants.
    pub fn entries(&self) -> Result<Vec<VipRecord>> {
        let mut out = Vec::new();
        for item in self.vips.iter() {
            let (key, entry) = item.map_err(map_err(names::VIPS, "listing"))?;
            let addr: std::net::IpAddr = match (key.ipv4_octets(), key.ipv6_octets()) {
                (Some(v4), _) => v4.into(),
                (_, Some(v6)) => v6.into(),
                _ => continue,
            };
            let iface = match self.attached.get(&key.ifindex) {
                Some(a) => a.iface.clone(),
                None => sys::ifname(key.ifindex).unwrap_or_else(|_| format!("#{}", key.ifindex)),
            };
            out.push(VipRecord {
                vip: Vip::new(iface, key.ifindex, addr),
                state: VipState::from_raw(entry.state),
                mac: entry.mac,
                nd_router: entry.flags & vip_flags::ND_ROUTER != 0,
            });
        }
        out.sort_by(|a, b| a.vip.cmp(&b.vip));
        Ok(out)
    }

    /// The conflict event reader (once; `None` afterwards).
    pub fn take_conflicts(&mut self) -> Option<ConflictReader> {
        self.conflicts.take().map(ConflictReader::new)
    }

    /// Detaches from every interface and removes all pins (maps, links, the
    /// instance directory). Without this (crash, kill) the pins stay and the
    /// lease fence keeps working.
    pub fn shutdown(self) -> Result<()> {
        let pin_dir = self.pin_dir.clone();
        drop(self);
        purge_pins(&pin_dir)?;
        std::fs::remove_dir(&pin_dir).map_err(bpffs_err(&pin_dir, "removing"))?;
        if let Some(parent) = pin_dir.parent() {
            // Shared by other instances: remove only when empty.
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }

    fn link_path(&self, ifindex: u32) -> PathBuf {
        self.pin_dir.join(format!("{LINK_PREFIX}{ifindex}"))
    }

    /// Swaps this program into every link pinned by an earlier run; links
    /// whose interface is gone are removed.
    fn adopt_pinned_links(&mut self) -> Result<()> {
        for (ifindex, path) in pinned_links(&self.pin_dir)? {
            let iface = sys::ifname(ifindex).unwrap_or_else(|_| format!("#{ifindex}"));
            let link_err = |action: &'static str| {
                let iface = iface.clone();
                move |e: BoxError| DataPlaneError::Interface {
                    iface,
                    action,
                    cause: e,
                }
            };
            let pinned = PinnedLink::from_pin(&path)
                .map_err(|e| link_err("opening the pinned link")(boxed(e)))?;
            let fd_link = pinned
                .unpin()
                .map_err(|e| link_err("unpinning the old link")(boxed(e)))?;
            let xdp_link = aya::programs::xdp::XdpLink::try_from(fd_link)
                .map_err(|e| link_err("pinned object is not an XDP link")(boxed(e)))?;
            let prog = xdp_mut(&mut self.ebpf)?;
            let id = match prog.attach_to_link(xdp_link) {
                Ok(id) => id,
                Err(e) => {
                    // Interface gone (or link defunct): the dropped link detaches.
                    tracing::warn!(iface, error = %e, "dropping a stale pinned XDP link");
                    continue;
                }
            };
            let link = prog
                .take_link(id)
                .map_err(|e| link_err("taking the XDP link")(boxed(e)))?;
            let fd_link = FdLink::try_from(link)
                .map_err(|e| link_err("XDP link is not a bpf_link")(boxed(e)))?;
            fd_link
                .pin(&path)
                .map_err(|e| link_err("re-pinning the XDP link")(boxed(e)))?;
            tracing::info!(
                iface,
                ifindex,
                "reused the pinned XDP link with the new program"
            );
            let mac = sys::mac(&iface).ok();
            self.attached.insert(
                ifindex,
                Attached {
                    iface,
                    mode: None,
                    mac,
                },
            );
        }
        Ok(())
    }

    /// Counters whose VIP is gone (an earlier run crashed between the two
    /// removals) are deleted.
    fn drop_orphan_counters(&mut self) -> Result<()> {
        let keys: Vec<VipKey> = self
            .counters
            .keys()
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err(names::VIP_COUNTERS, "listing"))?;
        for key in keys {
            match self.vips.get(&key, 0) {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => match self.counters.remove(&key) {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(map_err(names::VIP_COUNTERS, "removing an orphan")(e)),
                },
                Err(e) => return Err(map_err(names::VIPS, "reading")(e)),
            }
        }
        Ok(())
    }

    /// The MAC to answer with for `vip`, attaching to its interface if needed.
    fn mac_for(&mut self, vip: &Vip) -> Result<[u8; 6]> {
        if let Some(a) = self.attached.get_mut(&vip.ifindex) {
            if let Some(mac) = a.mac {
                return Ok(mac);
            }
            let mac = sys::mac(&vip.iface).map_err(|e| DataPlaneError::Interface {
                iface: vip.iface.clone(),
                action: "reading its MAC address",
                cause: boxed(e),
            })?;
            a.mac = Some(mac);
            return Ok(mac);
        }
        let ifindex = self.attach(&vip.iface)?;
        if ifindex != vip.ifindex {
            return Err(DataPlaneError::Vip {
                vip: vip.to_string(),
                action: "attaching to its interface",
                cause: boxed(format!(
                    "{} has ifindex {ifindex} here, not {}",
                    vip.iface, vip.ifindex
                )),
            });
        }
        self.attached
            .get(&ifindex)
            .and_then(|a| a.mac)
            .ok_or_else(|| DataPlaneError::Interface {
                iface: vip.iface.clone(),
                action: "reading its MAC address",
                cause: boxed("no MAC recorded"),
            })
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map> {
    ebpf.take_map(name).ok_or_else(|| DataPlaneError::Map {
        map: name,
        action: "finding it in the object",
        cause: boxed("missing"),
    })
}

fn xdp_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    let prog = ebpf
        .program_mut(names::PROGRAM)
        .ok_or_else(|| DataPlaneError::Program {
            action: "finding the program in the object",
            cause: boxed(format!("no program named {}", names::PROGRAM)),
        })?;
    prog.try_into().map_err(|e| DataPlaneError::Program {
        action: "program type",
        cause: boxed(e),
    })
}

/// A lease map (the agent's or the LAN detector's) through a handle of
/// its own, for a thread that writes it without waiting for the agent: the
/// lease keeper, the beat thread.
pub struct LeaseMap {
    name: &'static str,
    lease: Array<MapData, LeaseRecord>,
}

impl LeaseMap {
    fn open(map: aya::maps::Map, name: &'static str) -> Result<Self> {
        let lease = Array::try_from(map).map_err(map_err(name, "opening"))?;
        Ok(LeaseMap { name, lease })
    }

    /// The deadline (ns of CLOCK_MONOTONIC; 0 = none).
    pub fn deadline(&self) -> Result<u64> {
        self.lease
            .get(&0, 0)
            .map(|l| l.deadline_ns)
            .map_err(map_err(self.name, "reading the deadline"))
    }

    /// Sets the deadline (ns of CLOCK_MONOTONIC; 0 = none).
    pub fn set(&mut self, deadline_ns: u64) -> Result<()> {
        self.lease
            .set(0, LeaseRecord { deadline_ns }, 0)
            .map_err(map_err(self.name, "writing the deadline"))
    }

    /// Sets the deadline to now + `validity`.
    pub fn renew(&mut self, validity: Duration) -> Result<()> {
        self.set(deadline_after(validity))
    }
}

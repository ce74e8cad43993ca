//! The only module of the driver that talks to the kernel: loading the eBPF object with
//! its maps pinned, attaching programs to interfaces inside a physical switch's network
//! namespace, applying [`MapOp`]s, reading counters, and running frames through
//! `BPF_PROG_TEST_RUN`.
use std::{
    fs,
    os::fd::{AsFd as _, BorrowedFd},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, IterableMap, MapData, PerCpuArray, PerCpuValues, ProgramArray,
        perf::PerfEventArray,
    },
    programs::{
        SchedClassifier, TcAttachType, TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
    },
    util::nr_cpus,
};
use lime_common::{
    action::RuleProgram,
    flow::{Bucket, CacheSlot, FlowKey, MaskList, MaskListKey, RuleKey, VswitchConfig},
    names,
    port::{PortInfo, VportInfo, VportKey, VswPorts},
    stats::{PortStats, RuleCounters, RuleStats, drop_reason},
    wire::PacketInMeta,
};

use super::{DatapathError, batch, hits::LastHits, store::MapOp};

/// The compiled eBPF object (built by build.rs from `lime-ebpf`).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lime"));

/// Root of LIME's bpffs pins.
pub const PIN_ROOT: &str = "/sys/fs/bpf/lime";

/// Make sure bpffs is mounted at /sys/fs/bpf (it is not by default on these machines).
pub fn ensure_bpffs() -> Result<(), DatapathError> {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .map_err(|e| DatapathError::Io {
            what: "running mount -t bpf".into(),
            source: e,
        })?;
    if !status.success() {
        return Err(DatapathError::Kernel {
            what: "mounting bpffs at /sys/fs/bpf".into(),
            detail: format!("mount exited with {status}"),
        });
    }
    Ok(())
}

fn kerr(what: impl Into<String>) -> impl FnOnce(String) -> DatapathError {
    let what = what.into();
    move |detail| DatapathError::Kernel { what, detail }
}

macro_rules! k {
    ($e:expr, $what:expr) => {
        $e.map_err(|e| kerr($what)(format!("{e:?}")))
    };
}

/// Typed handles on every map.
pub struct Maps {
    ports: Array<MapData, PortInfo>,
    vports: HashMap<MapData, VportKey, VportInfo>,
    vswitches: Array<MapData, VswitchConfig>,
    mask_lists: HashMap<MapData, MaskListKey, MaskList>,
    masks: Array<MapData, FlowKey>,
    rules: HashMap<MapData, RuleKey, Bucket>,
    programs: Array<MapData, RuleProgram>,
    rule_stats: PerCpuArray<MapData, RuleCounters>,
    port_stats: PerCpuArray<MapData, PortStats>,
    drops: PerCpuArray<MapData, u64>,
    floor: Array<MapData, u32>,
    vsw_ports: Array<MapData, VswPorts>,
    flow_cache: PerCpuArray<MapData, CacheSlot>,
}

/// A loaded datapath instance: the eBPF object of one physical switch.
pub struct Kernel {
    ebpf: Ebpf,
    maps: Maps,
    pin_dir: PathBuf,
    cpus: usize,
    /// When each rule was last seen to match (from its counters).
    hits: LastHits,
    /// The batch writer's buffers (see [`batch::Staging`]).
    staging: batch::Staging,
}

/// Frames per batch of a live-frames test run: the kernel's default. A veth's XDP ring
/// holds 256 frames, and the receiving side only runs when a batch ends, so larger
/// batches can overflow it.
pub const LIVE_BATCH: u32 = 64;

impl Kernel {
    /// Load the object, pinning (or reusing) its maps under `pin_dir`.
    pub fn load(pin_dir: &Path) -> Result<Self, DatapathError> {
        ensure_bpffs()?;
        fs::create_dir_all(pin_dir).map_err(|e| DatapathError::Io {
            what: format!("creating {}", pin_dir.display()),
            source: e,
        })?;
        let mut ebpf = k!(
            EbpfLoader::new()
                .default_map_pin_directory(pin_dir)
                .load(EBPF_OBJECT),
            "loading the eBPF object"
        )?;
        for name in [
            names::PROG_XDP,
            names::PROG_TABLE,
            names::PROG_PASS,
            names::PROG_FLOOR,
            names::PROG_SINK,
        ] {
            let prog: &mut Xdp = k!(
                ebpf.program_mut(name)
                    .ok_or_else(|| format!("program {name} missing"))
                    .and_then(|p| p.try_into().map_err(|e| format!("{e}"))),
                format!("finding program {name}")
            )?;
            k!(prog.load(), format!("verifying program {name}"))?;
        }
        for name in [
            names::PROG_TC,
            names::PROG_TC_TABLE,
            names::PROG_TC_EMIT,
            names::PROG_TC_SEND,
            names::PROG_TC_OUT,
        ] {
            let prog: &mut SchedClassifier = k!(
                ebpf.program_mut(name)
                    .ok_or_else(|| format!("program {name} missing"))
                    .and_then(|p| p.try_into().map_err(|e| format!("{e}"))),
                format!("finding program {name}")
            )?;
            k!(prog.load(), format!("verifying program {name}"))?;
        }
        install_tail(&mut ebpf, names::MAP_TABLE_PROGS, &[names::PROG_TABLE])?;
        install_tail(
            &mut ebpf,
            names::MAP_TC_TABLE_PROGS,
            &[
                names::PROG_TC_TABLE,
                names::PROG_TC_EMIT,
                names::PROG_TC_SEND,
                names::PROG_TC_OUT,
            ],
        )?;
        let maps = Maps {
            ports: take(&mut ebpf, names::MAP_PORTS)?,
            vports: take(&mut ebpf, names::MAP_VPORTS)?,
            vswitches: take(&mut ebpf, names::MAP_VSWITCHES)?,
            mask_lists: take(&mut ebpf, names::MAP_MASK_LISTS)?,
            masks: take(&mut ebpf, names::MAP_MASKS)?,
            rules: take(&mut ebpf, names::MAP_RULES)?,
            programs: take(&mut ebpf, names::MAP_PROGRAMS)?,
            rule_stats: take(&mut ebpf, names::MAP_RULE_STATS)?,
            port_stats: take(&mut ebpf, names::MAP_PORT_STATS)?,
            drops: take(&mut ebpf, names::MAP_DROPS)?,
            floor: take(&mut ebpf, names::MAP_FLOOR)?,
            vsw_ports: take(&mut ebpf, names::MAP_VSW_PORTS)?,
            flow_cache: take(&mut ebpf, names::MAP_FLOW_CACHE)?,
        };
        let cpus = nr_cpus().map_err(|(_, e)| DatapathError::Io {
            what: "counting CPUs".into(),
            source: e,
        })?;
        Ok(Self {
            ebpf,
            maps,
            pin_dir: pin_dir.to_owned(),
            cpus,
            hits: LastHits::default(),
            staging: batch::Staging::default(),
        })
    }

    /// The pin directory.
    #[must_use]
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Attach program `name` to `ifindex` in the *current thread's* network namespace
    /// (call inside `lime_lab::netns::run_in_netns`), pinning the link as `link_name` so
    /// it outlives this process.
    pub fn attach(
        &mut self,
        name: &str,
        ifindex: u32,
        link_name: &str,
    ) -> Result<(), DatapathError> {
        let pin = self.pin_dir.join(link_name);
        if pin.exists() {
            // Re-attaching: replace the old link.
            let _ = fs::remove_file(&pin);
        }
        let prog: &mut Xdp = k!(
            self.ebpf
                .program_mut(name)
                .ok_or_else(|| format!("program {name} missing"))
                .and_then(|p| p.try_into().map_err(|e| format!("{e}"))),
            format!("finding program {name}")
        )?;
        let id = k!(
            prog.attach_to_if_index(ifindex, XdpMode::Driver)
                .or_else(|_| prog.attach_to_if_index(ifindex, XdpMode::Skb)),
            format!("attaching {name} to ifindex {ifindex}")
        )?;
        let link = k!(prog.take_link(id), "taking the XDP link")?;
        let fd_link: FdLink = k!(FdLink::try_from(link), "XDP link is not a bpf_link")?;
        let _pinned: PinnedLink = k!(fd_link.pin(&pin), format!("pinning {}", pin.display()))?;
        Ok(())
    }

    /// Attach the TC program to `ifname`'s ingress in the current thread's namespace,
    /// pinning the (TCX) link as `link_name`.
    pub fn attach_tc(&mut self, ifname: &str, link_name: &str) -> Result<(), DatapathError> {
        let pin = self.pin_dir.join(link_name);
        if pin.exists() {
            let _ = fs::remove_file(&pin);
        }
        let prog: &mut SchedClassifier = k!(
            self.ebpf
                .program_mut(names::PROG_TC)
                .ok_or_else(|| "program missing".to_owned())
                .and_then(|p| p.try_into().map_err(|e| format!("{e}"))),
            "finding lime_tc"
        )?;
        let id = k!(
            prog.attach(ifname, TcAttachType::Ingress),
            format!("attaching lime_tc to {ifname}")
        )?;
        let link = k!(prog.take_link(id), "taking the TC link")?;
        let fd_link: FdLink = k!(FdLink::try_from(link), "TC link is not a bpf_link")?;
        let _pinned: PinnedLink = k!(fd_link.pin(&pin), format!("pinning {}", pin.display()))?;
        Ok(())
    }

    /// Set the virtual ports FLOOD/ALL reach on a virtual switch.
    pub fn set_vswitch_ports(
        &mut self,
        vswitch: u16,
        ports: &VswPorts,
    ) -> Result<(), DatapathError> {
        k!(
            self.maps.vsw_ports.set(u32::from(vswitch), ports, 0),
            "writing the flood list"
        )
    }

    /// Detach a pinned link.
    pub fn detach(&self, link_name: &str) -> Result<(), DatapathError> {
        let pin = self.pin_dir.join(link_name);
        if let Ok(link) = PinnedLink::from_pin(&pin) {
            let _ = link.unpin();
        }
        Ok(())
    }

    /// Remove the pinned XDP and TC links (`link-IFNAME`, `tc-IFNAME`) of interfaces
    /// that are gone (not in `live`, this namespace's interface names): their programs
    /// went with the interface, and a pin left behind would make a new interface of the
    /// same name look attached. Returns how many were removed.
    pub fn drop_stale_link_pins(&self, live: &std::collections::BTreeSet<String>) -> usize {
        let Ok(dir) = std::fs::read_dir(&self.pin_dir) else {
            return 0;
        };
        let mut dropped = 0;
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(ifname) = name
                .strip_prefix("link-")
                .or_else(|| name.strip_prefix("tc-"))
            else {
                continue;
            };
            if !live.contains(ifname) && self.detach(&name).is_ok() {
                dropped += 1;
            }
        }
        dropped
    }

    /// Apply map operations in order. Consecutive operations on one map go to the
    /// kernel as one batch (see [`super::batch`]): the same writes, in the same order,
    /// in far fewer system calls.
    pub fn apply(&mut self, ops: &[MapOp]) -> Result<(), DatapathError> {
        let mut rest = ops;
        while let Some(first) = rest.first() {
            let kind = Run::of(first);
            let n = rest
                .iter()
                .take(batch::MAX_BATCH)
                .take_while(|o| Run::of(o) == kind)
                .count();
            let (run, tail) = rest.split_at(n);
            if n == 1 {
                self.apply_one(first)?;
            } else {
                self.apply_run(kind, run)?;
                if kind == Run::ResetStats {
                    for op in run {
                        if let MapOp::ResetStats(id) = op {
                            self.hits.forget(*id);
                        }
                    }
                }
            }
            rest = tail;
        }
        Ok(())
    }

    /// One operation, one system call.
    fn apply_one(&mut self, op: &MapOp) -> Result<(), DatapathError> {
        let m = &mut self.maps;
        match op {
            MapOp::Program(id, p) => k!(m.programs.set(*id, p, 0), "writing a rule program")?,
            MapOp::ResetStats(id) => {
                let zero = k!(
                    PerCpuValues::try_from(vec![RuleCounters::default(); self.cpus]),
                    "building per-CPU values"
                )?;
                k!(m.rule_stats.set(*id, zero, 0), "resetting rule counters")?;
                self.hits.forget(*id);
            }
            MapOp::Mask(id, mask) => k!(m.masks.set(*id, mask, 0), "writing a mask")?,
            MapOp::Bucket(k, Some(b)) => k!(m.rules.insert(k, b, 0), "writing a rule bucket")?,
            MapOp::Bucket(k, None) => {
                let _ = m.rules.remove(k);
            }
            MapOp::MaskList(k, Some(l)) => {
                k!(m.mask_lists.insert(k, l, 0), "writing a subtable list")?;
            }
            MapOp::MaskList(k, None) => {
                let _ = m.mask_lists.remove(k);
            }
            MapOp::Publish(v, cfg) => {
                k!(
                    m.vswitches.set(u32::from(*v), cfg, 0),
                    "publishing a version"
                )?;
            }
        }
        Ok(())
    }

    /// Write (`Some`) or delete (`None`) rule buckets, any number, straight from the
    /// rule store's mirror into the batch buffers ([`batch::MAX_BATCH`] a call): the
    /// same as a run of [`MapOp::Bucket`]s of distinct keys, without building the ops.
    pub fn write_buckets<'a>(
        &mut self,
        buckets: impl Iterator<Item = (&'a RuleKey, Option<&'a Bucket>)>,
    ) -> Result<(), DatapathError> {
        let Self {
            maps: m,
            staging: buf,
            ..
        } = self;
        let fail = |what: &'static str, n: usize| {
            move |(i, e): (usize, std::io::Error)| {
                kerr(what)(format!("element {i} of a batch of {n}: {e}"))
            }
        };
        let key_size = std::mem::size_of::<RuleKey>();
        let mut gone: Vec<u8> = Vec::new();
        buf.keys.clear();
        buf.values.clear();
        let mut puts = 0;
        for (k, b) in buckets {
            match b {
                Some(b) => {
                    batch::push_bytes(&mut buf.keys, k);
                    batch::push_bytes(&mut buf.values, b);
                    puts += 1;
                    if puts == batch::MAX_BATCH {
                        batch::update(fd(&m.rules), &buf.keys, &buf.values, puts)
                            .map_err(fail("writing rule buckets", puts))?;
                        buf.keys.clear();
                        buf.values.clear();
                        puts = 0;
                    }
                }
                None => batch::push_bytes(&mut gone, k),
            }
        }
        if puts > 0 {
            batch::update(fd(&m.rules), &buf.keys, &buf.values, puts)
                .map_err(fail("writing rule buckets", puts))?;
        }
        for chunk in gone.chunks(batch::MAX_BATCH * key_size) {
            let n = chunk.len() / key_size;
            batch::delete(fd(&m.rules), chunk, key_size, n)
                .map_err(fail("removing rule buckets", n))?;
        }
        Ok(())
    }

    /// A run of operations of one [`Run`] kind as one batch.
    fn apply_run(&mut self, kind: Run, run: &[MapOp]) -> Result<(), DatapathError> {
        let Self {
            maps: m,
            staging: buf,
            cpus,
            ..
        } = self;
        let n = run.len();
        let fail = |what: &str| {
            let what = what.to_owned();
            move |(i, e): (usize, std::io::Error)| {
                kerr(what)(format!("element {i} of a batch of {n}: {e}"))
            }
        };
        let put = |fd, buf: &batch::Staging, what| {
            batch::update(fd, &buf.keys, &buf.values, n).map_err(fail(what))
        };
        let del = |fd, buf: &batch::Staging, key_size, what| {
            batch::delete(fd, &buf.keys, key_size, n).map_err(fail(what))
        };
        match kind {
            Run::Program => {
                pairs(run, buf, |o| match o {
                    MapOp::Program(id, p) => Some((*id, p)),
                    _ => None,
                });
                put(fd(&m.programs), buf, "writing rule programs")
            }
            Run::ResetStats => {
                // Per-CPU values: one slot per possible CPU, each rounded up to 8 bytes.
                let slot = std::mem::size_of::<RuleCounters>().next_multiple_of(8);
                keys(run, buf, |o| match o {
                    MapOp::ResetStats(id) => Some(*id),
                    _ => None,
                });
                buf.values.clear();
                buf.values.resize(n * *cpus * slot, 0);
                put(fd(&m.rule_stats), buf, "resetting rule counters")
            }
            Run::Mask => {
                pairs(run, buf, |o| match o {
                    MapOp::Mask(id, mask) => Some((*id, mask)),
                    _ => None,
                });
                put(fd(&m.masks), buf, "writing masks")
            }
            Run::BucketPut => {
                pairs(run, buf, |o| match o {
                    MapOp::Bucket(k, Some(b)) => Some((*k, b)),
                    _ => None,
                });
                put(fd(&m.rules), buf, "writing rule buckets")
            }
            Run::BucketDel => {
                keys(run, buf, |o| match o {
                    MapOp::Bucket(k, None) => Some(*k),
                    _ => None,
                });
                del(
                    fd(&m.rules),
                    buf,
                    std::mem::size_of::<RuleKey>(),
                    "removing rule buckets",
                )
            }
            Run::ListPut => {
                pairs(run, buf, |o| match o {
                    MapOp::MaskList(k, Some(l)) => Some((*k, l)),
                    _ => None,
                });
                put(fd(&m.mask_lists), buf, "writing subtable lists")
            }
            Run::ListDel => {
                keys(run, buf, |o| match o {
                    MapOp::MaskList(k, None) => Some(*k),
                    _ => None,
                });
                del(
                    fd(&m.mask_lists),
                    buf,
                    std::mem::size_of::<MaskListKey>(),
                    "removing subtable lists",
                )
            }
            Run::Publish => {
                pairs(run, buf, |o| match o {
                    MapOp::Publish(vs, cfg) => Some((u32::from(*vs), cfg)),
                    _ => None,
                });
                put(fd(&m.vswitches), buf, "publishing versions")
            }
        }
    }

    /// Read back everything the rule store mirrors (for a restarted control plane):
    /// active virtual switches and versions, subtable lists, masks, buckets, programs.
    pub fn read_rule_maps(&self) -> Result<RuleMaps, DatapathError> {
        let m = &self.maps;
        let mut out = RuleMaps::default();
        for v in 0..lime_common::limits::MAX_VSWITCHES {
            let cfg = k!(m.vswitches.get(&v, 0), "reading virtual switch configs")?;
            if cfg.flags & lime_common::flow::VSW_F_ACTIVE != 0 {
                out.vswitches
                    .push((u16::try_from(v).unwrap_or(u16::MAX), cfg));
            }
        }
        for kv in m.mask_lists.iter() {
            out.lists.push(k!(kv, "reading subtable lists")?);
        }
        for (_, list) in &out.lists {
            for r in list.masks.iter().take(list.len as usize) {
                let mask = k!(m.masks.get(&r.mask_id, 0), "reading masks")?;
                out.masks.insert(r.mask_id, mask);
            }
        }
        for kv in m.rules.iter() {
            let (rk, b) = k!(kv, "reading rule buckets")?;
            for e in b.entries.iter().filter(|e| e.rule_id != 0) {
                let p = k!(m.programs.get(&e.rule_id, 0), "reading rule programs")?;
                out.programs.insert(e.rule_id, p);
            }
            out.buckets.push((rk, b));
        }
        Ok(out)
    }

    /// What the port map says of interface `ifindex`.
    pub fn port(&self, ifindex: u32) -> Result<PortInfo, DatapathError> {
        k!(self.maps.ports.get(&ifindex, 0), "reading the port map")
    }

    /// Map interface `ifindex` in the port map.
    pub fn set_port(&mut self, ifindex: u32, info: PortInfo) -> Result<(), DatapathError> {
        if ifindex >= lime_common::limits::MAX_PORTS {
            return Err(DatapathError::TableFull {
                what: "interface index too large for the port map (MAX_PORTS)",
            });
        }
        k!(
            self.maps.ports.set(ifindex, info, 0),
            "writing the port map"
        )
    }

    /// Unmap an interface.
    pub fn remove_port(&mut self, ifindex: u32) {
        let _ = self.maps.ports.set(ifindex, PortInfo::default(), 0);
    }

    /// Say where a virtual port lives.
    pub fn set_vport(&mut self, key: VportKey, info: VportInfo) -> Result<(), DatapathError> {
        k!(
            self.maps.vports.insert(key, info, 0),
            "writing the virtual port map"
        )
    }

    /// Forget a virtual port.
    pub fn remove_vport(&mut self, key: VportKey) {
        let _ = self.maps.vports.remove(&key);
    }

    /// A rule id's counters, summed over CPUs, with the time of its last hit as this
    /// read determines it (see [`super::hits`]).
    pub fn rule_stats(&self, id: u32) -> Result<RuleStats, DatapathError> {
        let v = k!(self.maps.rule_stats.get(&id, 0), "reading rule counters")?;
        let RuleCounters { packets, bytes } = RuleCounters::sum(&v);
        Ok(RuleStats {
            packets,
            bytes,
            last_hit_ns: self.hits.observe(id, packets, super::hits::mono_ns()),
        })
    }

    /// The counters of several rule ids, in their order, as [`Self::rule_stats`] reads
    /// each: with one batched read of the id range they span when that is cheaper than
    /// one system call per id (a flow-stats reply, a dump, finals of a reclaim).
    pub fn rule_stats_many(&self, ids: &[u32]) -> Result<Vec<RuleStats>, DatapathError> {
        let (Some(&lo), Some(&hi)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(Vec::new());
        };
        let span = (hi - lo) as usize + 1;
        if ids.len() < RANGE_READ_MIN || span > ids.len() * RANGE_READ_SPARSEST {
            return ids.iter().map(|&id| self.rule_stats(id)).collect();
        }
        let elem = std::mem::size_of::<RuleCounters>().next_multiple_of(8) * self.cpus;
        let mut buf = Vec::new();
        batch::lookup_array(fd(&self.maps.rule_stats), lo, span, elem, &mut buf).map_err(
            |(i, e)| kerr("reading rule counters")(format!("id {}: {e}", lo as usize + i)),
        )?;
        let now = super::hits::mono_ns();
        let mut per_cpu = Vec::with_capacity(self.cpus);
        Ok(ids
            .iter()
            .map(|&id| {
                let at = (id - lo) as usize * elem;
                per_cpu.clear();
                per_cpu.extend(buf[at..at + elem].chunks_exact(elem / self.cpus).map(|c| {
                    // SAFETY: `c` holds one CPU's value as the kernel wrote it, at
                    // least `size_of::<RuleCounters>()` bytes; RuleCounters is plain
                    // data (lime-common's `abi_type!`); the read is unaligned.
                    unsafe { std::ptr::read_unaligned(c.as_ptr().cast::<RuleCounters>()) }
                }));
                let RuleCounters { packets, bytes } = RuleCounters::sum(&per_cpu);
                RuleStats {
                    packets,
                    bytes,
                    last_hit_ns: self.hits.observe(id, packets, now),
                }
            })
            .collect())
    }

    /// A port's counters, summed over CPUs.
    pub fn port_stats(&self, ifindex: u32) -> Result<PortStats, DatapathError> {
        let v = k!(
            self.maps.port_stats.get(&ifindex, 0),
            "reading port counters"
        )?;
        Ok(v.iter().fold(PortStats::default(), |a, s| PortStats {
            rx_packets: a.rx_packets + s.rx_packets,
            rx_bytes: a.rx_bytes + s.rx_bytes,
            tx_packets: a.tx_packets + s.tx_packets,
            tx_bytes: a.tx_bytes + s.tx_bytes,
            rx_dropped: a.rx_dropped + s.rx_dropped,
            tx_errors: a.tx_errors + s.tx_errors,
        }))
    }

    /// What the flow cache of CPU `cpu` remembers: its occupied slots (slot number,
    /// contents). For diagnostics and tests; one map read per slot.
    pub fn flow_cache(&self, cpu: usize) -> Result<Vec<(u32, CacheSlot)>, DatapathError> {
        let mut out = Vec::new();
        for slot in 0..lime_common::limits::FLOW_CACHE_SLOTS {
            let v = k!(self.maps.flow_cache.get(&slot, 0), "reading the flow cache")?;
            if let Some(s) = v.get(cpu)
                && s.key.used != 0
            {
                out.push((slot, *s));
            }
        }
        Ok(out)
    }

    /// Drop counters by reason (non-zero only).
    pub fn drops(&self) -> Result<Vec<(u32, u64)>, DatapathError> {
        let mut out = Vec::new();
        for reason in 1..drop_reason::COUNT {
            let v = k!(self.maps.drops.get(&reason, 0), "reading drop counters")?;
            let n: u64 = v.iter().sum();
            if n > 0 {
                out.push((reason, n));
            }
        }
        Ok(out)
    }

    /// Set the floor program's redirect target.
    pub fn set_floor_target(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        k!(
            self.maps.floor.set(0, ifindex, 0),
            "writing the floor target"
        )
    }

    /// Run a frame through a program with BPF_PROG_TEST_RUN (no live delivery): the XDP
    /// verdict and the frame as the program left it. The ingress interface is the
    /// namespace's loopback (ifindex 1 in a fresh namespace).
    pub fn test_run(
        &self,
        program: &str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestRun, DatapathError> {
        let prog: &Xdp = k!(
            self.ebpf
                .program(program)
                .ok_or_else(|| format!("program {program} missing"))
                .and_then(|p| p.try_into().map_err(|e| format!("{e}"))),
            format!("finding program {program}")
        )?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat.max(1);
        let r = k!(
            prog.test_run(opts),
            format!("BPF_PROG_TEST_RUN of {program}")
        )?;
        out.truncate(r.data_size_out as usize);
        Ok(TestRun {
            verdict: r.return_value,
            frame: out,
            duration: r.duration,
        })
    }

    /// Run `frame` once through the TC entry point (`lime_tc`) with BPF_PROG_TEST_RUN,
    /// as an skb arriving on this namespace's loopback: its verdict (`TC_ACT_*`) and the
    /// frame as it would leave (a redirect is not performed).
    pub fn test_run_tc(&self, frame: &[u8]) -> Result<TestRun, DatapathError> {
        let prog: &SchedClassifier = k!(
            self.ebpf
                .program(names::PROG_TC)
                .ok_or_else(|| "program missing".to_owned())
                .and_then(|p| p.try_into().map_err(|e| format!("{e}"))),
            "finding lime_tc"
        )?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        let r = k!(prog.test_run(opts), "BPF_PROG_TEST_RUN of lime_tc")?;
        out.truncate(r.data_size_out as usize);
        Ok(TestRun {
            verdict: r.return_value,
            frame: out,
            duration: r.duration,
        })
    }

    /// Run one frame through `lime_xdp` in live-frames mode: whatever the program decides
    /// (redirect, pass) really happens, in the current thread's network namespace, with
    /// the frame arriving on that namespace's loopback.
    pub fn run_live(&self, frame: &[u8]) -> Result<(), DatapathError> {
        self.run_live_repeat(names::PROG_XDP, frame, 1).map(|_| ())
    }

    /// Run `frame` through XDP program `program` `repeat` times in live-frames mode
    /// (batches of [`LIVE_BATCH`]): every verdict really happens (a redirect transmits the frame,
    /// and the receiving interface's XDP program runs before the batch ends), in the
    /// current thread's network namespace, with the frames arriving on its loopback.
    /// Returns the kernel's mean time per frame, delivery included: the generator of the
    /// benchmarks.
    pub fn run_live_repeat(
        &self,
        program: &str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<std::time::Duration, DatapathError> {
        let prog: &Xdp = k!(
            self.ebpf
                .program(program)
                .ok_or_else(|| format!("program {program} missing"))
                .and_then(|p| p.try_into().map_err(|e| format!("{e}"))),
            format!("finding program {program}")
        )?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = repeat.max(1);
        opts.attrs = TestRunAttrs::new().xdp_live_frames(LIVE_BATCH);
        let r = k!(
            prog.test_run(opts),
            format!("BPF_PROG_TEST_RUN of {program} (live frames)")
        )?;
        Ok(r.duration)
    }

    /// Take the packet-in perf array (once).
    pub fn take_packet_in(&mut self) -> Result<PerfEventArray<MapData>, DatapathError> {
        k!(
            PerfEventArray::try_from(k!(
                self.ebpf
                    .take_map(names::MAP_PACKET_IN)
                    .ok_or("already taken"),
                "finding PACKET_IN"
            )?),
            "opening PACKET_IN"
        )
    }
}

/// `size_of::<PacketInMeta>()`, the fixed part of a packet-in record.
pub const PACKET_IN_META_LEN: usize = size_of::<PacketInMeta>();

/// The rule maps of a running datapath, read back (see [`Kernel::read_rule_maps`]).
#[derive(Debug, Default)]
pub struct RuleMaps {
    /// Active virtual switches and their configs (published version, flags).
    pub vswitches: Vec<(u16, VswitchConfig)>,
    /// Subtable lists.
    pub lists: Vec<(MaskListKey, MaskList)>,
    /// Masks by id.
    pub masks: std::collections::HashMap<u32, FlowKey>,
    /// Rule buckets.
    pub buckets: Vec<(RuleKey, Bucket)>,
    /// Rule programs by id.
    pub programs: std::collections::HashMap<u32, RuleProgram>,
}

/// Result of [`Kernel::test_run`].
#[derive(Debug, Clone)]
pub struct TestRun {
    /// XDP action returned.
    pub verdict: u32,
    /// The frame after the program.
    pub frame: Vec<u8>,
    /// Kernel-measured time per run.
    pub duration: std::time::Duration,
}

/// Put `progs` in slots 0.. of program array `map` (tail-call targets).
/// The kind of a [`MapOp`], for grouping consecutive ones of a kind into one batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    Program,
    ResetStats,
    Mask,
    BucketPut,
    BucketDel,
    ListPut,
    ListDel,
    Publish,
}

impl Run {
    fn of(op: &MapOp) -> Self {
        match op {
            MapOp::Program(..) => Self::Program,
            MapOp::ResetStats(_) => Self::ResetStats,
            MapOp::Mask(..) => Self::Mask,
            MapOp::Bucket(_, Some(_)) => Self::BucketPut,
            MapOp::Bucket(_, None) => Self::BucketDel,
            MapOp::MaskList(_, Some(_)) => Self::ListPut,
            MapOp::MaskList(_, None) => Self::ListDel,
            MapOp::Publish(..) => Self::Publish,
        }
    }
}

/// Fill `buf` with the keys and values `f` picks out of a run, each back to back as a
/// batch call takes them (copied once, from the ops into the kept buffers).
fn pairs<'a, K: aya::Pod, V: aya::Pod + 'a>(
    run: &'a [MapOp],
    buf: &mut batch::Staging,
    f: impl Fn(&'a MapOp) -> Option<(K, &'a V)>,
) {
    buf.keys.clear();
    buf.values.clear();
    buf.keys.reserve(run.len() * std::mem::size_of::<K>());
    buf.values.reserve(run.len() * std::mem::size_of::<V>());
    for (k, v) in run.iter().filter_map(f) {
        batch::push_bytes(&mut buf.keys, &k);
        batch::push_bytes(&mut buf.values, v);
    }
}

/// Fill `buf.keys` with the keys `f` picks out of a run (deletes, counter resets),
/// back to back.
fn keys<K: aya::Pod>(run: &[MapOp], buf: &mut batch::Staging, f: impl Fn(&MapOp) -> Option<K>) {
    buf.keys.clear();
    buf.keys.reserve(run.len() * std::mem::size_of::<K>());
    for k in run.iter().filter_map(f) {
        batch::push_bytes(&mut buf.keys, &k);
    }
}

/// [`Kernel::rule_stats_many`] reads one id range when asked for at least this many
/// ids...
const RANGE_READ_MIN: usize = 16;
/// ...spread over at most this many ids each (a range element costs ~50 times less
/// than a system call of its own).
const RANGE_READ_SPARSEST: usize = 50;

/// A map's file descriptor, for the batch calls.
fn fd<K: aya::Pod, V>(map: &impl IterableMap<K, V>) -> BorrowedFd<'_> {
    map.map().fd().as_fd()
}

fn install_tail(ebpf: &mut Ebpf, map: &str, progs: &[&str]) -> Result<(), DatapathError> {
    let mut fds = Vec::with_capacity(progs.len());
    for prog in progs {
        let p: &aya::programs::Program =
            ebpf.program(prog).ok_or_else(|| DatapathError::Kernel {
                what: format!("finding program {prog}"),
                detail: "not in the object".into(),
            })?;
        fds.push(
            k!(p.fd(), format!("program {prog} fd"))?
                .try_clone()
                .map_err(|e| DatapathError::Io {
                    what: "duplicating a program fd".into(),
                    source: e,
                })?,
        );
    }
    let mut array: ProgramArray<MapData> = take(ebpf, map)?;
    for (slot, (fd, prog)) in fds.iter().zip(progs).enumerate() {
        k!(
            array.set(slot as u32, fd, 0),
            format!("installing {prog} in {map}")
        )?;
    }
    Ok(())
}

fn take<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, DatapathError>
where
    T: TryFrom<aya::maps::Map>,
    T::Error: std::fmt::Debug,
{
    let map = ebpf.take_map(name).ok_or_else(|| DatapathError::Kernel {
        what: format!("finding map {name}"),
        detail: "not in the object".into(),
    })?;
    T::try_from(map).map_err(|e| DatapathError::Kernel {
        what: format!("opening map {name}"),
        detail: format!("{e:?}"),
    })
}

//! Every map of the datapath, with its key, value and writer. All are pinned (by name,
//! under the physical switch's bpffs directory) so a restarted control plane reopens the
//! maps of the running datapath instead of replacing them. Map names are shared with
//! the loader through `lime_common::names`; sizes come from `lime_common::limits`.
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerfEventArray, ProgramArray},
};
use lime_common::{
    action::RuleProgram,
    flow::{Bucket, CacheKey, CacheSlot, FlowKey, MaskList, MaskListKey, RuleKey, VswitchConfig},
    limits,
    port::{PortInfo, VportInfo, VportKey, VswPorts},
    stats::{PortStats, RuleCounters, drop_reason},
    wire::PacketInMeta,
};

/// ifindex → port kind and (virtual switch, virtual port); kind NONE for other
/// interfaces. An array (the kernel inlines array lookups): ifindexes inside a physical
/// switch's namespace are small, the driver refuses any >= `MAX_PORTS`. Written by the
/// driver when it attaches a port.
#[map(name = "PORTS")]
pub static PORTS: Array<PortInfo> = Array::pinned(limits::MAX_PORTS, 0);

/// (virtual switch, virtual port) → where it lives (local ifindex, or underlay towards
/// it). Written by the driver; changed by migration.
#[map(name = "VPORTS")]
pub static VPORTS: HashMap<VportKey, VportInfo> =
    HashMap::pinned(limits::MAX_VPORTS, BPF_F_NO_PREALLOC);

/// Slots of [`VPORT_CACHE`].
pub const VPORT_CACHE_SLOTS: u32 = 256;

/// One slot of [`VPORT_CACHE`]: where a virtual port lived while its virtual switch's
/// port generation was `generation`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VportSlot {
    /// The port.
    pub key: VportKey,
    /// `VswitchConfig::vport_gen` when `info` was read from `VPORTS`.
    pub generation: u32,
    /// Non-zero once filled.
    pub used: u32,
    /// Where the port lived.
    pub info: VportInfo,
}

/// Slot (hash of virtual switch and virtual port) → a copy of that port's `VPORTS`
/// entry, for the tunnel's receiving side: a per-CPU direct-mapped cache (one inlined
/// array access, where a hash-map lookup is a function call and a hash of the key).
/// A slot is used only while its virtual switch's port generation is the one it was
/// filled under (the driver bumps it after every `VPORTS` change, and only for an
/// active virtual switch, so only active ones use the cache). Written by the datapath
/// only.
#[map(name = "VPORT_CACHE")]
pub static VPORT_CACHE: PerCpuArray<VportSlot> = PerCpuArray::pinned(VPORT_CACHE_SLOTS, 0);

/// Virtual switch id → current table version. Written by the driver's publish step.
#[map(name = "VSWITCHES")]
pub static VSWITCHES: Array<VswitchConfig> = Array::pinned(limits::MAX_VSWITCHES, 0);

/// (virtual switch, table, version) → subtables to search, highest priority first.
/// Written by the driver before the version is published; deleted when reclaimed.
#[map(name = "MASK_LISTS")]
pub static MASK_LISTS: HashMap<MaskListKey, MaskList> =
    HashMap::pinned(limits::MAX_MASK_LISTS, BPF_F_NO_PREALLOC);

/// Slot (hash of the cache key: virtual switch, version and the parsed flow key, or for
/// common IPv4 frames the raw header bytes it is parsed from; see `CacheKey`) → that
/// key and the chain of rules it matched: the exact-match flow cache in front of the
/// classifier.
/// Direct-mapped and per-CPU: a lookup is one inlined array access and a key compare, a
/// fill one overwrite; entries of old versions are simply overwritten. Written by the
/// datapath only.
#[map(name = "FLOW_CACHE")]
pub static FLOW_CACHE: PerCpuArray<CacheSlot> = PerCpuArray::pinned(limits::FLOW_CACHE_SLOTS, 0);

/// Mask id → mask. Written once when a subtable is created, before any list names it.
#[map(name = "MASKS")]
pub static MASKS: Array<FlowKey> = Array::pinned(limits::MAX_MASK_IDS, 0);

/// (mask id, masked flow key) → bucket of rules with their visible versions. Written by
/// the driver; elements are replaced whole (no prealloc: RCU-safe replacement).
#[map(name = "RULES")]
pub static RULES: HashMap<RuleKey, Bucket> =
    HashMap::pinned(limits::MAX_BUCKETS, BPF_F_NO_PREALLOC);

/// Rule id → compiled instructions. Written before the rule becomes visible.
#[map(name = "RULE_PROGRAMS")]
pub static RULE_PROGRAMS: Array<RuleProgram> = Array::pinned(limits::MAX_RULES, 0);

/// Rule id → per-CPU packet/byte counters (no time: the driver derives the last hit
/// from the counters). Written by the datapath; read and reset (on rule-id reuse) by
/// the driver.
#[map(name = "RULE_STATS")]
pub static RULE_STATS: PerCpuArray<RuleCounters> = PerCpuArray::pinned(limits::MAX_RULES, 0);

/// ifindex → per-CPU port counters (an array, as `PORTS`). Written by the datapath.
#[map(name = "PORT_STATS")]
pub static PORT_STATS: PerCpuArray<PortStats> = PerCpuArray::pinned(limits::MAX_PORTS, 0);

/// Drop reason → per-CPU count. Written by the datapath.
#[map(name = "DROPS")]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::pinned(drop_reason::COUNT, 0);

/// Packet-in records (metadata followed by the frame's first bytes). Read by the driver.
#[map(name = "PACKET_IN")]
pub static PACKET_IN: PerfEventArray<PacketInMeta> = PerfEventArray::pinned(0);

/// Index 0 → ifindex the floor program redirects to. Written by the benchmark.
#[map(name = "FLOOR_TARGET")]
pub static FLOOR_TARGET: Array<u32> = Array::pinned(1, 0);

/// Slot 0: `lime_tc_table`, the TC path's goto-table step; slot 1: `lime_tc_emit`;
/// slot 2: `lime_tc_send`; slot 3: `lime_tc_out` (single output). Written by the driver
/// at load time.
#[map(name = "TC_TABLE_PROGS")]
pub static TC_TABLE_PROGS: ProgramArray = ProgramArray::pinned(4, 0);

/// Virtual switch → its virtual ports (for FLOOD/ALL). Written by the driver.
#[map(name = "VSW_PORTS")]
pub static VSW_PORTS: Array<VswPorts> = Array::pinned(limits::MAX_VSWITCHES, 0);

/// Per-packet working state, kept out of the 512-byte BPF stack.
pub struct Scratch {
    /// The packet's flow key (updated by each table's header changes).
    pub key: FlowKey,
    /// Lookup key buffer for the rule-bucket map.
    pub rk: RuleKey,
    /// Rules matched so far.
    pub chain: crate::actions::Chain,
    /// Where the packet came from and which version classifies it.
    pub ingress: crate::actions::Ingress,
    /// Table to look up next.
    pub table: u8,
    /// Frame length at ingress (for byte counters).
    pub frame_len: u64,
    /// VLAN tags hidden by pushes, for pops.
    pub vlans: crate::actions::VlanStack,
    /// The flow-cache key (the flow key as parsed), when the cache is in use.
    pub cache_key: CacheKey,
    /// Its slot in `FLOW_CACHE`.
    pub cache_slot: u32,
    /// The virtual switch's port generation read at ingress.
    pub vport_gen: u32,
    /// Fill the cache with this packet's result at the end of the pipeline.
    pub cache_fill: bool,
    /// The skb path's copies.
    pub copies: crate::skb::Copies,
}

/// Slot 0: the `lime_table` program, tail-called for each goto-table. Written by the
/// driver at load time.
#[map(name = "TABLE_PROGS")]
pub static TABLE_PROGS: ProgramArray = ProgramArray::pinned(1, 0);

/// CPU-local [`Scratch`] (one entry). Only the datapath touches it. Pinned like every
/// other map: a restarted control plane loads new program instances and puts its
/// `lime_table` into the (pinned) `TABLE_PROGS`, so the still-attached `lime_xdp` of the
/// old instance tail-calls into the new one mid-packet; both must see the same scratch
/// area or the packet's state is lost.
#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::pinned(1, 0);

/// This CPU's scratch area.
#[inline(always)]
pub fn scratch() -> Result<&'static mut Scratch, u32> {
    match SCRATCH.get_ptr_mut(0) {
        // SAFETY: per-CPU value; XDP runs without preemption on one CPU, so nothing else
        // uses this CPU's entry during the program.
        Some(p) => Ok(unsafe { &mut *p }),
        None => Err(drop_reason::HELPER_FAILED),
    }
}

/// Count a drop.
#[inline(always)]
pub fn count_drop(reason: u32) {
    if let Some(c) = DROPS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *c += 1 };
    }
}

/// Port counter update.
#[inline(always)]
pub fn port_stats(ifindex: u32) -> Option<&'static mut PortStats> {
    // SAFETY: per-CPU value, exclusive to this CPU for the duration of the program.
    PORT_STATS.get_ptr_mut(ifindex).map(|p| unsafe { &mut *p })
}

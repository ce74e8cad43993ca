//! LIME's in-kernel virtual switch: XDP programs attached to every port of a physical
//! switch.
//!
//! # Layout
//! - [`maps`]: every map, with its key, value and writer.
//! - [`parse`]: frame → flow key, bounds-checked.
//! - [`classify`]: versioned tuple space search (design notes at its top).
//! - [`actions`]: apply-actions, counters, delivery, packet-in.
//! - [`tunnel`]: encapsulation between physical switches.
//! - [`ctx`]: the XDP and TC contexts behind one trait, so actions, delivery and
//!   encapsulation are written once for both.
//! - [`skb`]: the TC path: packets that need several copies (FLOOD, ALL, several
//!   outputs), which XDP cannot clone, and — on a physical switch in TC mode — every
//!   packet of its host ports.
//!
//! # Pipeline (`lime_xdp`)
//! 1. Port lookup by ifindex: host port, underlay port, or injection port.
//! 2. Host port: parse; read the virtual switch's version once; walk tables from 0,
//!    following goto-table, updating the flow key with each rule's header changes; then
//!    execute the chain's actions on the frame and deliver to the one output (local port,
//!    remote port through the tunnel, or the controller).
//! 3. Underlay port: the ingress switch already classified; decapsulate and deliver to
//!    the local port named in the tunnel header (or forward to where it lives now).
//! 4. Injection port (packet-out from the driver via BPF_PROG_TEST_RUN live frames): the
//!    tunnel header names the in_port and either an output port or OFPP_TABLE.
//!
//! On a physical switch in TC mode (`port_flags::TC` on its ports) host ports run no
//! XDP program; underlay and injection ports still do (decapsulation is XDP's only, see
//! [`tunnel`]) and hand what is for a local port, or for the flow tables, to the TC
//! program on the same port.
//!
//! # The common path: a flow-cache hit with one output
//! Three inlined array lookups (port, its rx counters, the virtual switch), then for
//! an untagged IPv4 frame with a 20-byte header the *raw* cache key — six words: five
//! loads of the header bytes the parser would read, the TTL masked off, plus the
//! virtual switch, version and in_port (`lime_common::flow::CacheKey`, `parse::raw4_key`)
//! — its hash and one inlined per-CPU array lookup with a six-word compare, one
//! counter update per rule of the chain, the redirect and the egress port's tx
//! counters. No parse, no scratch area, no helper but `bpf_redirect`, no hash-map
//! lookup. Other frames (VLAN tags, IPv6, ARP, IPv4 options, other Ethertypes) are
//! parsed into the 80-byte parsed-form key in the scratch area first; a miss of either
//! form parses the frame for the classifier. What keeps it that small, found in the
//! generated code (`llvm-objdump -d` on the object, `bpftool prog dump xlated`), and
//! worth checking again after changes here:
//! - The raw key: parsing into the 80-byte key, then hashing and comparing all ten of
//!   its words, was over a third of a hit's ~345 BPF instructions (now ~220); the raw
//!   form is six words, loaded as the bytes lie in the frame.
//! - The slot hash runs two multiply chains side by side (`lime_common::flow::cache_slot`):
//!   the slot's loads wait for it.
//! - `lime_xdp`'s body is inlined into the wrapper `#[xdp]` generates (otherwise one
//!   BPF-to-BPF call per packet).
//! - The flow key is cleared with word stores ([`FlowKey::reset`]): a struct
//!   assignment compiled to a call of a byte-at-a-time `memset` (~340 instructions).
//! - The parser moves MACs, IPv4 addresses and ports with word loads and stores
//!   (`parse.rs`; `build.rs` lets LLVM emit unaligned packet loads), not one per byte.
//! - No clock read: rule counters carry no time; the driver derives a rule's last hit
//!   from its packet counter (`lime-userspace/src/datapath/hits.rs`).
//!
//! - A hit whose remembered egress is stale (the virtual switch's ports changed since:
//!   after every migration step) runs the cached chain once and remembers the egress
//!   again; before, such a decision stayed on the slow path until its slot was reused.
//!
//! # The tunnel's receiving side
//! A tunnelled frame is delivered with no classification: the header, the virtual
//! switch's catch-up (one inlined array lookup, which also yields its port
//! generation), where the egress port lives — from a per-CPU direct-mapped copy of
//! `VPORTS` (`maps::VPORT_CACHE`) valid for one port generation, not the hash map
//! itself (a function call and a hash; ~20 ns of a ~200 ns delivered pass here) —, the
//! decapsulation and the redirect. `lime bench datapath` measures both passes of a
//! crossing (`tunnel-out`, `tunnel-in`), `lime bench linerate` the whole crossing
//! beside `floor-tunnel`, the bare redirect over the same two hops.
//!
//! [`FlowKey::reset`]: lime_common::flow::FlowKey::reset
#![no_std]
#![no_main]

mod actions;
mod classify;
mod ctx;
mod maps;
mod parse;
mod skb;
mod tunnel;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_xdp_adjust_meta, macros::xdp, programs::XdpContext,
};
use lime_common::{
    action::{NO_GOTO, RuleProgram, flags, port_no},
    flow::{
        CACHE_KEY_WORDS, CACHE_RAW4_WORDS, CACHE_SLOT_USED, CacheEntry, CacheSlot, SLOT_HASH_K,
        VSW_F_ACTIVE, VSW_F_CACHE_ALWAYS_MISS, VSW_F_NO_CACHE, cache_slot,
    },
    limits::MAX_TABLES,
    port::{VportInfo, VportKey, kind, location, port_flags},
    stats::drop_reason,
    wire::{TUNNEL_MAX_HOPS, TunnelHeader, tunnel_flags},
};

use crate::{
    actions::{
        Ingress, Output, count_chain, deliver, execute, redirect, send_to_vport, to_egress,
        update_key,
    },
    maps::{
        FLOOR_TARGET, FLOW_CACHE, PORTS, RULE_PROGRAMS, Scratch, TABLE_PROGS, VPORT_CACHE,
        VPORT_CACHE_SLOTS, VPORTS, VSWITCHES, VportSlot, count_drop, port_stats, scratch,
    },
    tunnel::{TcHandoff, decap, frame, handoff, read_header, rewrite_outer},
};

/// The datapath entry point on every LIME port. Inlined into the wrapper `#[xdp]`
/// generates (which otherwise calls it: a BPF-to-BPF call per packet).
#[xdp]
#[inline(always)]
pub fn lime_xdp(ctx: XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    finish(ifindex, try_lime_xdp(&ctx, ifindex))
}

/// Turn a verdict into an XDP action, counting drops by reason and on the port.
#[inline(always)]
fn finish(ifindex: u32, verdict: Result<u32, u32>) -> u32 {
    match verdict {
        Ok(action) => action,
        Err(reason) => {
            count_drop(reason);
            if let Some(ps) = port_stats(ifindex) {
                ps.rx_dropped += 1;
            }
            xdp_action::XDP_DROP
        }
    }
}

/// Passes every frame: attached to the host side of veths so they accept redirected
/// frames.
#[xdp]
pub fn lime_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The benchmark floor: redirect every frame to one interface, nothing else.
#[xdp]
pub fn lime_floor(_ctx: XdpContext) -> u32 {
    match FLOOR_TARGET.get(0) {
        // SAFETY: helper call.
        Some(ifindex) => unsafe { aya_ebpf::helpers::bpf_redirect(*ifindex, 0) as u32 },
        None => xdp_action::XDP_ABORTED,
    }
}

/// The benchmarks' sink: count the frame on its interface (in `PORT_STATS` as
/// received) and drop it. Attached to the far end of a measured path.
#[xdp]
pub fn lime_sink(ctx: XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    if let Some(ps) = port_stats(ifindex) {
        ps.rx_packets += 1;
        ps.rx_bytes += frame(&ctx).len() as u64;
    }
    xdp_action::XDP_DROP
}

#[inline(always)]
fn try_lime_xdp(ctx: &XdpContext, ifindex: u32) -> Result<u32, u32> {
    let Some(port) = PORTS.get_ptr(ifindex) else {
        return Ok(xdp_action::XDP_PASS);
    };
    // SAFETY: map value pointer valid for this run.
    let port = unsafe { *port };
    if port.kind == kind::NONE {
        return Ok(xdp_action::XDP_PASS);
    }
    if let Some(ps) = port_stats(ifindex) {
        ps.rx_packets += 1;
        ps.rx_bytes += frame(ctx).len() as u64;
    }
    match port.kind {
        kind::HOST => from_host(ctx, port.vswitch, port.vport),
        kind::UNDERLAY => from_underlay(ctx, false, port.flags),
        kind::INJECT => from_underlay(ctx, true, port.flags),
        _ => Ok(xdp_action::XDP_PASS),
    }
}

/// Read a virtual switch's current version (one load: the atomic publish point).
#[inline(always)]
pub fn current_version(vswitch: u16) -> Result<u32, u32> {
    vswitch_config(vswitch).map(|c| c.version)
}

/// What a packet reads of its virtual switch's configuration, once, at ingress.
#[derive(Clone, Copy)]
pub struct Config {
    version: u32,
    flags: u32,
    vport_gen: u32,
}

/// A virtual switch's current version, flags and port generation.
#[inline(always)]
pub fn vswitch_config(vswitch: u16) -> Result<Config, u32> {
    match VSWITCHES.get(u32::from(vswitch)) {
        Some(cfg) if cfg.flags & VSW_F_ACTIVE != 0 => {
            // SAFETY: aligned u32s in a map value; each is read with one load.
            Ok(unsafe {
                Config {
                    version: core::ptr::read_volatile(&cfg.version),
                    flags: core::ptr::read_volatile(&cfg.flags),
                    vport_gen: core::ptr::read_volatile(&cfg.vport_gen),
                }
            })
        }
        _ => Err(drop_reason::NO_VSWITCH),
    }
}

#[inline(always)]
fn from_host(ctx: &XdpContext, vswitch: u16, vport: u32) -> Result<u32, u32> {
    let cfg = vswitch_config(vswitch)?;
    if cfg.flags & VSW_F_NO_CACHE != 0 {
        let s = start_packet(&frame(ctx), vswitch, vport, cfg.version)?;
        return step(ctx, s);
    }
    let f = frame(ctx);
    let probe = cfg.flags & VSW_F_CACHE_ALWAYS_MISS == 0;
    if let Some(raw) = parse::raw4_key(&f, vswitch, vport, cfg.version) {
        // The common frame: the cache is looked up with the frame's header bytes, the
        // frame is parsed only when it cannot answer.
        let slot_id = cache_slot(&raw);
        if let Some(slot) = probe.then(|| cache_probe(slot_id, &raw)).flatten() {
            return cache_hit(ctx, &f, slot, slot_id, cfg, vswitch, vport);
        }
        let s = start_packet(&f, vswitch, vport, cfg.version)?;
        set_raw_key(s, &raw);
        return fill_after(ctx, s, slot_id, cfg);
    }
    // Other frames: parse straight into the cache key; everything else in the scratch
    // area is set up only when the cache cannot answer alone.
    let s = scratch()?;
    let ck = &mut s.cache_key;
    ck.key.reset(vport);
    parse::parse(&f, &mut ck.key)?;
    ck.vswitch = vswitch;
    ck.used = CACHE_SLOT_USED;
    ck.version = cfg.version;
    let slot_id = ck.slot();
    if let Some(slot) = probe
        .then(|| cache_probe(slot_id, s.cache_key.words()))
        .flatten()
    {
        return cache_hit(ctx, &f, slot, slot_id, cfg, vswitch, vport);
    }
    reset(s, &f, vswitch, vport, cfg.version);
    s.key = s.cache_key.key;
    fill_after(ctx, s, slot_id, cfg)
}

/// Make `raw` the cache key `s` fills the cache with.
#[inline(always)]
pub fn set_raw_key(s: &mut Scratch, raw: &[u64; CACHE_RAW4_WORDS]) {
    let w = s.cache_key.words_mut();
    let mut i = 0;
    while i < CACHE_KEY_WORDS {
        w[i] = if i < CACHE_RAW4_WORDS { raw[i] } else { 0 };
        i += 1;
    }
}

/// A cached decision that is complete and current (its egress remembered under the
/// port generation in `cfg`): count its rules and send the frame there. `None`: the
/// cached chain must be run.
#[inline(always)]
pub fn fast_hit<P: ctx::Packet>(
    ctx: &P,
    hit: &CacheEntry,
    cfg: Config,
    vswitch: u16,
    vport: u32,
) -> Option<Result<u32, u32>> {
    if hit.fast == 0 || hit.vport_gen != cfg.vport_gen {
        return None;
    }
    count_chain(&hit.rules, usize::from(hit.len), ctx.wire_len());
    let ing = Ingress {
        vswitch,
        vport,
        version: cfg.version,
        metadata: hit.metadata,
    };
    Some(to_egress(ctx, &ing, hit.out_port, &hit.egress))
}

/// The flow-cache slot `slot_id`, if it holds a key whose first `N` words are `key`
/// (the key's significant words: the rest of a stored key of the same form is zero).
#[inline(always)]
pub fn cache_probe<const N: usize>(slot_id: u32, key: &[u64; N]) -> Option<*const CacheSlot> {
    const { assert!(N <= CACHE_KEY_WORDS) };
    let slot = FLOW_CACHE.get_ptr(slot_id)?;
    // SAFETY: per-CPU map value, valid for this run; only this CPU writes it.
    let stored = unsafe { (*slot).key.words() };
    let mut diff = 0u64;
    let mut i = 0;
    while i < N {
        diff |= key[i] ^ stored[i];
        i += 1;
    }
    (diff == 0).then_some(slot)
}

/// A packet the flow cache answered (from slot `slot_id` at `slot`): send it where the
/// cached decision says, or run the cached chain's actions.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // inlined: the values are in registers already
fn cache_hit(
    ctx: &XdpContext,
    f: &parse::Frame,
    slot: *const CacheSlot,
    slot_id: u32,
    cfg: Config,
    vswitch: u16,
    vport: u32,
) -> Result<u32, u32> {
    // SAFETY: per-CPU map value, valid for this run; only this CPU writes it.
    let hit = unsafe { &(*slot).entry };
    if let Some(sent) = fast_hit(ctx, hit, cfg, vswitch, vport) {
        return sent;
    }
    let s = scratch()?;
    reset(s, f, vswitch, vport, cfg.version);
    // A decision whose egress was remembered before the last change of the virtual
    // ports (or never): remember it again, so the next hits take the fast path.
    s.cache_slot = slot_id;
    s.vport_gen = cfg.vport_gen;
    s.cache_fill = true;
    s.chain.rules = hit.rules;
    s.chain.len = usize::from(hit.len);
    s.chain.missed = hit.missed != 0;
    s.chain.multi = hit.multi != 0;
    s.chain.outputs = hit.outputs;
    s.ingress.metadata = hit.metadata;
    finish_pipeline(ctx, s)
}

/// A cache miss with `s` set up for classification (its `cache_key` written): classify
/// and deliver, filling slot `slot_id` at the end of the pipeline.
#[inline(always)]
fn fill_after(ctx: &XdpContext, s: &mut Scratch, slot_id: u32, cfg: Config) -> Result<u32, u32> {
    s.cache_slot = slot_id;
    s.vport_gen = cfg.vport_gen;
    s.cache_fill = true;
    step(ctx, s)
}

/// Parse, then classify with one version starting at table 0, then execute and deliver.
#[inline(always)]
fn pipeline(ctx: &XdpContext, vswitch: u16, vport: u32, version: u32) -> Result<u32, u32> {
    let s = start_packet(&frame(ctx), vswitch, vport, version)?;
    step(ctx, s)
}

/// One goto-table step: tail-called with the packet's state in the CPU's scratch area.
#[xdp]
pub fn lime_table(ctx: XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    let verdict = match scratch() {
        Ok(s) => step(&ctx, s),
        Err(reason) => Err(reason),
    };
    finish(ifindex, verdict)
}

/// What a classification step decided.
pub enum Step {
    /// Look up the next table (`Scratch::table`): tail-call the table program.
    Goto,
    /// The pipeline ended: execute the chain.
    Done,
}

/// Look up the current table and record the match; shared by the XDP and TC paths.
#[inline(always)]
pub fn classify_step(s: &mut Scratch) -> Result<Step, u32> {
    let Scratch {
        key,
        rk,
        chain,
        ingress,
        table,
        vlans,
        ..
    } = s;
    let rule = classify::lookup(ingress.vswitch, *table, ingress.version, key, rk);
    let prog = if rule == 0 {
        None
    } else {
        RULE_PROGRAMS.get(rule)
    };
    let Some(prog) = prog else {
        chain.missed = true;
        ingress.metadata = key.metadata;
        return Ok(Step::Done);
    };
    let prog: &RuleProgram = prog;
    if chain.len < MAX_TABLES {
        chain.rules[chain.len] = rule;
        chain.len += 1;
    }
    chain.outputs += u32::from(prog.outputs);
    if prog.flags & flags::MULTI_OUTPUT != 0 {
        chain.multi = true;
    }
    update_key(prog, key, vlans);
    ingress.metadata = key.metadata;
    if prog.goto_table == NO_GOTO {
        return Ok(Step::Done);
    }
    if prog.goto_table <= *table || usize::from(prog.goto_table) >= MAX_TABLES {
        return Err(drop_reason::BAD_GOTO);
    }
    *table = prog.goto_table;
    Ok(Step::Goto)
}

/// Reset the scratch area for a new packet; `Err` for a malformed frame.
#[inline(always)]
pub fn start_packet(
    f: &parse::Frame,
    vswitch: u16,
    vport: u32,
    version: u32,
) -> Result<&'static mut Scratch, u32> {
    let s = scratch()?;
    s.key.reset(vport);
    parse::parse(f, &mut s.key)?;
    reset(s, f, vswitch, vport, version);
    Ok(s)
}

/// Reset the scratch area's per-packet state other than the flow key.
#[inline(always)]
fn reset(s: &mut Scratch, f: &parse::Frame, vswitch: u16, vport: u32, version: u32) {
    s.frame_len = f.len() as u64;
    s.ingress = Ingress {
        vswitch,
        vport,
        version,
        metadata: 0,
    };
    s.table = 0;
    s.vlans.depth = 0;
    s.cache_fill = false;
    s.chain.len = 0;
    s.chain.outputs = 0;
    s.chain.multi = false;
    s.chain.missed = false;
}

/// XDP: classify one table; on goto-table, tail-call `lime_table` for the next one (one
/// table per program keeps each program's verification small); at the end of the
/// pipeline, execute and deliver — or, for packets that need several copies, pass them
/// to the TC program on the same port (XDP cannot clone).
#[inline(always)]
fn step(ctx: &XdpContext, s: &mut Scratch) -> Result<u32, u32> {
    match classify_step(s)? {
        Step::Goto => {
            // SAFETY: tail call with our own context; returns only on failure.
            unsafe { TABLE_PROGS.tail_call(ctx, 0) };
            Err(drop_reason::HELPER_FAILED)
        }
        Step::Done => {
            fill_cache(s);
            finish_pipeline(ctx, s)
        }
    }
}

/// At the end of classification: if `s` is to fill the flow cache, store its key and
/// chain in its slot (the egress is remembered once known, by [`send_filling`]).
#[inline(always)]
pub fn fill_cache(s: &Scratch) {
    if !s.cache_fill {
        return;
    }
    let c = &s.chain;
    let entry = CacheEntry {
        rules: c.rules,
        len: c.len as u8,
        missed: u8::from(c.missed),
        multi: u8::from(c.multi),
        // Set by `send_filling` once the egress is known.
        fast: 0,
        outputs: c.outputs,
        metadata: s.ingress.metadata,
        out_port: 0,
        vport_gen: 0,
        egress: VportInfo::default(),
        _pad: 0,
    };
    if let Some(slot) = FLOW_CACHE.get_ptr_mut(s.cache_slot) {
        // SAFETY: per-CPU map value; the program runs to completion on this CPU.
        unsafe {
            (*slot).key = s.cache_key;
            (*slot).entry = entry;
        }
    }
}

/// The end of the pipeline: execute the chain and deliver.
#[inline(always)]
fn finish_pipeline(ctx: &XdpContext, s: &mut Scratch) -> Result<u32, u32> {
    let chain = &s.chain;
    let frame_len = &s.frame_len;
    if chain.multi || chain.outputs > 1 {
        // Not counted here: the skb path classifies again and counts.
        return Ok(xdp_action::XDP_PASS);
    }
    match execute(ctx, chain, *frame_len)? {
        Some(out) => send_filling(ctx, s, out),
        None if chain.missed => Err(drop_reason::TABLE_MISS),
        None => Err(drop_reason::NO_OUTPUT),
    }
}

/// Deliver to the chain's one output `out`; a cache fill that can remember its egress
/// has looked the port up already and sends there (what `deliver` would do for such a
/// port) instead of looking again.
#[inline(always)]
pub fn send_filling<P: ctx::Packet>(ctx: &P, s: &Scratch, out: Output) -> Result<u32, u32> {
    let ingress = &s.ingress;
    if s.cache_fill
        && let Some(vp) = remember_egress(s.cache_slot, s.vport_gen, &out, ingress)
    {
        return to_egress(ctx, ingress, out.port, &vp);
    }
    deliver(ctx, ingress, out)
}

/// After a cache fill: if the chain sends the frame unchanged to one ordinary virtual
/// port, remember where that port lives (with the port generation read at ingress) in
/// the cache slot, so later hits skip executing the actions and looking up the port.
/// Returns where the port lives when it did (an ordinary port, not the ingress one: the
/// caller may send there directly).
#[inline(always)]
fn remember_egress(
    slot: u32,
    vport_gen: u32,
    out: &Output,
    ingress: &Ingress,
) -> Option<VportInfo> {
    if out.modified || out.port > port_no::MAX || out.port == ingress.vport {
        return None;
    }
    let key = VportKey {
        vswitch: ingress.vswitch,
        _pad: 0,
        vport: out.port,
    };
    // SAFETY: map value, replaced whole by userspace.
    let vp = unsafe { *VPORTS.get_ptr(&key)? };
    if vp.location != location::LOCAL && vp.location != location::REMOTE {
        return None;
    }
    if let Some(slot) = FLOW_CACHE.get_ptr_mut(slot) {
        // SAFETY: per-CPU map value; XDP runs to completion on this CPU.
        let e = unsafe { &mut (*slot).entry };
        e.out_port = out.port;
        e.vport_gen = vport_gen;
        e.egress = vp;
        e.fast = 1;
    }
    Some(vp)
}

/// Where virtual port `key` lives: from this CPU's [`VPORT_CACHE`] if the slot was
/// filled under port generation `generation`, else from `VPORTS` (filling the slot).
/// `generation`: the virtual switch's port generation, `None` if the virtual switch is
/// not active here (no generation is bumped for it: `VPORTS` is asked directly).
#[inline(always)]
fn vport_info(key: &VportKey, generation: Option<u32>) -> Option<VportInfo> {
    let Some(generation) = generation else {
        // SAFETY: map value, replaced whole by userspace.
        return VPORTS.get_ptr(key).map(|p| unsafe { *p });
    };
    let h = (u64::from(key.vswitch) << 32 | u64::from(key.vport)).wrapping_mul(SLOT_HASH_K);
    let slot = VPORT_CACHE.get_ptr_mut((h >> (64 - VPORT_CACHE_SLOTS.trailing_zeros())) as u32)?;
    // SAFETY: per-CPU map value; XDP runs to completion on this CPU.
    let s = unsafe { &mut *slot };
    if s.used != 0
        && s.generation == generation
        && s.key.vswitch == key.vswitch
        && s.key.vport == key.vport
    {
        return Some(s.info);
    }
    // SAFETY: map value, replaced whole by userspace.
    let info = unsafe { *VPORTS.get_ptr(key)? };
    *s = VportSlot {
        key: *key,
        generation,
        used: 1,
        info,
    };
    Some(info)
}

/// Another copy of the virtual switch processed this frame with version `tag`. If that
/// version is newer than ours and completely written here (`ready`), move to it now,
/// before the frame is delivered: whatever the receiving host does next is then
/// processed with rules at least as new (tagged consistent updates: never the old
/// rules after something causally later has seen the new ones).
///
/// Userspace publishes at most one version ahead of what every copy has published
/// (`ready` is at most `version + 1`), so every CPU racing here stores the same value.
///
/// Returns the virtual switch's port generation if it is active here.
#[inline(always)]
fn catch_up(vswitch: u16, tag: u32) -> Option<u32> {
    let cfg = VSWITCHES.get_ptr_mut(u32::from(vswitch))?;
    // SAFETY: aligned u32s in a map value; each read with one load, one store.
    unsafe {
        let current = core::ptr::read_volatile(&(*cfg).version);
        let ready = core::ptr::read_volatile(&(*cfg).ready);
        if tag > current && tag <= ready {
            core::ptr::write_volatile(&mut (*cfg).version, tag);
        }
        let active = core::ptr::read_volatile(&(*cfg).flags) & VSW_F_ACTIVE != 0;
        active.then(|| core::ptr::read_volatile(&(*cfg).vport_gen))
    }
}

/// A tunnelled frame from another physical switch, or a packet-out from the driver.
/// `flags`: the receiving port's `port_flags`.
#[inline(always)]
fn from_underlay(ctx: &XdpContext, injected: bool, flags: u8) -> Result<u32, u32> {
    let Some(mut hdr) = read_header(&frame(ctx))? else {
        // Not ours (e.g. the kernel's own neighbour discovery on the link).
        return if injected {
            Err(drop_reason::BAD_TUNNEL)
        } else {
            Ok(xdp_action::XDP_PASS)
        };
    };
    let is_packet_out = hdr.flags & tunnel_flags::PACKET_OUT != 0;
    if is_packet_out != injected {
        return Err(drop_reason::BAD_TUNNEL);
    }
    if hdr.hops >= TUNNEL_MAX_HOPS {
        return Err(drop_reason::TUNNEL_LOOP);
    }
    let vswitch = u16::from_be_bytes(hdr.vswitch);
    let in_port = u32::from_be_bytes(hdr.in_port);
    let out_port = u32::from_be_bytes(hdr.out_port);
    let version = u32::from_be_bytes(hdr.version);
    let vport_gen = if injected {
        None
    } else {
        catch_up(vswitch, version)
    };
    if injected && out_port == port_no::TABLE {
        decap(ctx)?;
        if flags & port_flags::TC != 0 {
            // The TC program on this port runs the pipeline on the skb.
            return hand_to_tc(ctx, handoff::TABLE, vswitch, in_port);
        }
        let version = current_version(vswitch)?;
        return pipeline(ctx, vswitch, in_port, version);
    }
    let key = VportKey {
        vswitch,
        _pad: 0,
        vport: out_port,
    };
    let Some(vp) = vport_info(&key, vport_gen) else {
        return Err(drop_reason::BAD_OUTPUT);
    };
    match vp.location {
        location::LOCAL => {
            decap(ctx)?;
            if is_tc_port(vp.ifindex) {
                return hand_to_tc(ctx, handoff::DELIVER, vswitch, vp.ifindex);
            }
            redirect(ctx, vp.ifindex)
        }
        location::REMOTE if injected => {
            // Packet-out for a port that lives elsewhere: tunnel it there, decapsulated
            // and re-encapsulated as an ordinary tunnelled frame.
            decap(ctx)?;
            let ing = Ingress {
                vswitch,
                vport: in_port,
                version,
                metadata: 0,
            };
            send_to_vport(ctx, &ing, out_port)
        }
        location::REMOTE => {
            // The port moved on: forward, one more hop.
            hdr.hops += 1;
            let _: &TunnelHeader = &hdr;
            rewrite_outer(ctx, &hdr, &vp)?;
            redirect(ctx, vp.ifindex)
        }
        _ => Err(drop_reason::BAD_OUTPUT),
    }
}

/// Whether a local port runs LIME at TC (its host end runs no XDP program, so an
/// XDP-redirected frame would be dropped there).
#[inline(always)]
fn is_tc_port(ifindex: u32) -> bool {
    PORTS
        .get(ifindex)
        .is_some_and(|p| p.flags & port_flags::TC != 0)
}

/// Pass the (decapsulated) frame to the stack with a [`TcHandoff`] in front of it, for
/// the TC program on this port.
#[inline(always)]
fn hand_to_tc(ctx: &XdpContext, what: u16, vswitch: u16, arg: u32) -> Result<u32, u32> {
    let len = core::mem::size_of::<TcHandoff>() as i32;
    // SAFETY: helper call on our own context.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -len) } != 0 {
        return Err(drop_reason::HELPER_FAILED);
    }
    let meta = ctx.metadata();
    if meta + core::mem::size_of::<TcHandoff>() > ctx.data() {
        return Err(drop_reason::HELPER_FAILED);
    }
    // SAFETY: bounds checked against the start of the frame.
    unsafe {
        *(meta as *mut TcHandoff) = TcHandoff {
            magic: handoff::MAGIC,
            what,
            vswitch,
            arg,
        };
    }
    Ok(xdp_action::XDP_PASS)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

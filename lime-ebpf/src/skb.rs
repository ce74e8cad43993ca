//! The skb (TC ingress) path, two uses with one classifier:
//! - Packets whose rules send several copies — FLOOD, ALL, more than one output, or
//!   CONTROLLER plus an output. XDP cannot clone a frame, so `lime_xdp` passes such
//!   packets up (without counting them) and `lime_tc`, attached to the same port's TC
//!   ingress hook, classifies them again with the same tables and emits the copies with
//!   `bpf_clone_redirect`.
//! - A physical switch in TC mode (`port_flags::TC`): its host ports run no XDP program
//!   (attaching one to a veth clears the segmentation offloads of its peer, so the
//!   host's TCP would send MTU-sized segments), and `lime_tc` classifies every packet
//!   there — GSO/GRO skbs whole, their headers parsed where they are (made linear by
//!   [`Tc::pull_headers`] only if they are not). Header changes are written with
//!   `bpf_skb_store_bytes` ([`Packet::write`]), so only skbs that are changed get
//!   un-cloned. Single outputs go through `lime_tc_out`: the same `execute`/`deliver`
//!   as XDP ([`crate::actions`], generic over [`Packet`]), with `bpf_redirect` to the
//!   egress port and `bpf_skb_change_head` for the tunnel. On this switch's underlay and
//!   injection ports XDP still decapsulates and passes a [`TcHandoff`] to `lime_tc`
//!   there: deliver to a local port, or run the flow tables for a packet-out. Host
//!   ports in TC mode use `lime_xdp`'s flow cache (same slots, keys and decisions, see
//!   [`from_host`]): a GSO skb or a returning ACK is one cache lookup; skbs with a tag
//!   the kernel moved out of the frame, IPv6 and other frames are classified each time.
//!   `bpf_redirect_peer` (straight into the host end's ingress) was tried: no faster
//!   here, and it bypasses XDP programs on the host's end.
//!
//! Counters in TC mode: a GSO skb counts as one packet with all its bytes (as Open
//! vSwitch's kernel datapath counts skbs); a tag the kernel moved out of the frame
//! (`skb->vlan_tci`) is counted in the bytes, and the flow key's VLAN fields come from
//! it.
//!
//! Order of emission: the packet-in (if any), then copies to local ports, then copies to
//! remote ports, which share one encapsulation (`bpf_skb_change_head`: unlike
//! `bpf_skb_adjust_room` it works for any ethertype, e.g. a flooded ARP request). Every
//! copy carries the frame as changed by the actions before the first output; userspace
//! refuses multi-output rules that change the frame after an output, and such a chain
//! built across tables is dropped here (`BAD_ACTION`).
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::bpf_skb_change_head,
    macros::classifier,
    programs::TcContext,
};
use lime_common::{
    action::{code, port_no},
    flow::{CACHE_RAW4_WORDS, VID_PRESENT, VSW_F_CACHE_ALWAYS_MISS, VSW_F_NO_CACHE, cache_slot},
    limits::{MAX_ACTIONS, MAX_PACKET_IN_BYTES, MAX_TABLES},
    port::{MAX_FLOOD_PORTS, PortInfo, VportInfo, VportKey, kind, location, port_flags},
    stats::drop_reason,
    wire::{ETH_P_LIME, PacketInMeta, TUNNEL_MAGIC, TunnelHeader, packet_in_reason},
};

use crate::{
    Step,
    actions::{count_rule, execute, redirect},
    cache_probe, classify_step,
    ctx::{Packet, Tc, skb_vlan},
    current_version, fast_hit, fill_cache,
    maps::{
        PACKET_IN, PORTS, RULE_PROGRAMS, Scratch, TC_TABLE_PROGS, VPORTS, VSW_PORTS, count_drop,
        port_stats, scratch,
    },
    parse::raw4_key,
    send_filling, set_raw_key, start_packet,
    tunnel::{ENCAP_LEN, TcHandoff, handoff},
    vswitch_config,
};

/// Most explicit output ports one packet's chain may name (a power of two).
pub const MAX_COPIES: usize = 8;
/// Most remote copies of one packet (a power of two).
pub const MAX_REMOTE: usize = 8;

/// The copies a packet needs, collected by `lime_tc_emit` for `lime_tc_send`. Lives in
/// the per-CPU scratch map: counters kept there are not tracked value by value by the
/// verifier, which keeps the copy loops within its budget.
pub struct Copies {
    /// Explicit output ports.
    pub ports: [u32; MAX_COPIES],
    /// Valid entries of `ports`.
    pub n_ports: u32,
    /// FLOOD or ALL was requested.
    pub flood: u32,
    /// CONTROLLER was requested.
    pub controller: u32,
    /// Its max_len.
    pub ctrl_len: u32,
    /// The rule that asked for it.
    pub ctrl_rule: u32,
    /// Remote ports, sent last under one encapsulation.
    pub remote: [u32; MAX_REMOTE],
    /// Valid entries of `remote`.
    pub n_remote: u32,
}

/// `TC_TABLE_PROGS` slots.
mod slot {
    /// `lime_tc_table`.
    pub const TABLE: u32 = 0;
    /// `lime_tc_emit`.
    pub const EMIT: u32 = 1;
    /// `lime_tc_send` (from `lime_tc_emit`).
    pub const SEND: u32 = 2;
    /// `lime_tc_out`.
    pub const OUT: u32 = 3;
}

/// TC ingress on every host port (and, in TC mode, on underlay and injection ports).
#[classifier]
pub fn lime_tc(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, try_lime_tc(&ctx))
}

/// The TC path's goto-table step (slot 0 of `TC_TABLE_PROGS`).
#[classifier]
pub fn lime_tc_table(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, scratch().and_then(|s| tc_step(&ctx, s)))
}

/// The TC path's single-output step (slot 3 of `TC_TABLE_PROGS`): execute the chain's
/// actions on the skb and deliver it, as `lime_xdp` does with a frame.
#[classifier]
pub fn lime_tc_out(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, scratch().and_then(|s| single(&ctx, s)))
}

#[inline(always)]
fn single(ctx: &TcContext, s: &mut Scratch) -> Result<i32, u32> {
    let verdict = match execute(ctx, &s.chain, s.frame_len)? {
        Some(out) => send_filling(ctx, s, out)?,
        None if s.chain.missed => return Err(drop_reason::TABLE_MISS),
        None => return Err(drop_reason::NO_OUTPUT),
    };
    Ok(verdict as i32)
}

/// The TC path's execution step (slot 1 of `TC_TABLE_PROGS`): counters, header changes,
/// collecting the outputs. Programs of their own so that each stays within the
/// verifier's budget.
#[classifier]
pub fn lime_tc_emit(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, scratch().and_then(|s| collect(&ctx, s)))
}

/// The TC path's last step (slot 2 of `TC_TABLE_PROGS`): send the copies.
#[classifier]
pub fn lime_tc_send(ctx: TcContext) -> i32 {
    tc_verdict(&ctx, scratch().and_then(|s| send(&ctx, s)))
}

/// The skb's ingress interface.
#[inline(always)]
fn ifindex(ctx: &TcContext) -> u32 {
    // SAFETY: reading a field of our own __sk_buff.
    unsafe { (*ctx.skb.skb).ifindex }
}

/// The port an skb arrived on, if it is a LIME port.
#[inline(always)]
fn port_of(ifindex: u32) -> Option<PortInfo> {
    // SAFETY: map value pointer valid for this run.
    PORTS.get_ptr(ifindex).map(|p| unsafe { *p })
}

/// Turn a verdict into a TC action, counting drops by reason (and, on a host port in TC
/// mode, where nothing else counts them, on the port).
#[inline(always)]
fn tc_verdict(ctx: &TcContext, v: Result<i32, u32>) -> i32 {
    match v {
        Ok(a) => a,
        Err(reason) => {
            count_drop(reason);
            let ifindex = ifindex(ctx);
            if port_of(ifindex).is_some_and(|p| p.flags & port_flags::TC != 0)
                && let Some(ps) = port_stats(ifindex)
            {
                ps.rx_dropped += 1;
            }
            TC_ACT_SHOT as i32
        }
    }
}

#[inline(always)]
fn try_lime_tc(ctx: &TcContext) -> Result<i32, u32> {
    let ifindex = ifindex(ctx);
    let Some(port) = port_of(ifindex) else {
        return Ok(TC_ACT_OK as i32);
    };
    let tc_mode = port.flags & port_flags::TC != 0;
    match port.kind {
        kind::HOST if tc_mode => {
            // In XDP mode `lime_xdp` counted it already.
            if let Some(ps) = port_stats(ifindex) {
                ps.rx_packets += 1;
                ps.rx_bytes += ctx.wire_len();
            }
            from_host(ctx, port.vswitch, port.vport)
        }
        kind::HOST => classify(ctx, port.vswitch, port.vport),
        kind::UNDERLAY | kind::INJECT if tc_mode => from_handoff(ctx),
        _ => Ok(TC_ACT_OK as i32),
    }
}

/// A frame XDP decapsulated on this underlay or injection port and passed up with a
/// [`TcHandoff`] in the metadata area; anything else is left to the stack.
#[inline(always)]
fn from_handoff(ctx: &TcContext) -> Result<i32, u32> {
    // SAFETY: reading fields of our own __sk_buff.
    let (meta, data) = unsafe { ((*ctx.skb.skb).data_meta as usize, ctx.data()) };
    if meta + core::mem::size_of::<TcHandoff>() > data {
        return Ok(TC_ACT_OK as i32);
    }
    // SAFETY: bounds checked against the start of the frame.
    let h = unsafe { *(meta as *const TcHandoff) };
    if h.magic != handoff::MAGIC {
        return Ok(TC_ACT_OK as i32);
    }
    match h.what {
        handoff::DELIVER => redirect(ctx, h.arg).map(|v| v as i32),
        handoff::TABLE => classify(ctx, h.vswitch, h.arg),
        _ => Err(drop_reason::BAD_TUNNEL),
    }
}

/// An skb from a host port of a physical switch in TC mode: answered by the flow cache
/// when it can (the same cache, keys and decisions as `lime_xdp`'s: an untagged IPv4
/// frame with a 20-byte header whose complete decision is cached), else classified,
/// filling the cache. A GSO skb is one lookup; so is each of the ACKs coming back.
#[inline(always)]
fn from_host(ctx: &TcContext, vswitch: u16, vport: u32) -> Result<i32, u32> {
    let cfg = vswitch_config(vswitch)?;
    // A tag the kernel moved out of the frame is not in the raw key: no cache for it.
    let raw = if cfg.flags & VSW_F_NO_CACHE == 0 && skb_vlan(ctx).is_none() {
        raw4_key(&ctx.frame(), vswitch, vport, cfg.version)
    } else {
        None
    };
    let Some(raw) = raw else {
        return classify_with(ctx, vswitch, vport, cfg.version, None);
    };
    let slot_id = cache_slot(&raw);
    if cfg.flags & VSW_F_CACHE_ALWAYS_MISS == 0
        && let Some(slot) = cache_probe(slot_id, &raw)
    {
        // SAFETY: per-CPU map value, valid for this run; only this CPU writes it.
        let hit = unsafe { &(*slot).entry };
        if let Some(sent) = fast_hit(ctx, hit, cfg, vswitch, vport) {
            return sent.map(|v| v as i32);
        }
    }
    // A miss, or a decision to complete (a stale egress, several copies): classify
    // again and fill the slot.
    let fill = Fill {
        slot: slot_id,
        raw,
        vport_gen: cfg.vport_gen,
    };
    classify_with(ctx, vswitch, vport, cfg.version, Some(fill))
}

/// What a classification fills the flow cache with: slot, raw key, port generation.
struct Fill {
    slot: u32,
    raw: [u64; CACHE_RAW4_WORDS],
    vport_gen: u32,
}

/// Parse and classify an skb as entering virtual port `vport` of `vswitch`, with the
/// virtual switch's current version.
#[inline(always)]
fn classify(ctx: &TcContext, vswitch: u16, vport: u32) -> Result<i32, u32> {
    classify_with(ctx, vswitch, vport, current_version(vswitch)?, None)
}

/// Parse and classify an skb with `version`, filling the flow cache as `fill` says.
#[inline(always)]
fn classify_with(
    ctx: &TcContext,
    vswitch: u16,
    vport: u32,
    version: u32,
    fill: Option<Fill>,
) -> Result<i32, u32> {
    // Parse the linear part as it is (a TCP skb's headers are in it); only if a header
    // lies beyond it, make more of the frame linear and parse again.
    let s = match start_packet(&ctx.frame(), vswitch, vport, version) {
        Err(drop_reason::TRUNCATED | drop_reason::BAD_IHL)
            if (ctx.frame().len() as u64) < u64::from(ctx.len()) =>
        {
            ctx.pull_headers();
            start_packet(&ctx.frame(), vswitch, vport, version)?
        }
        r => r?,
    };
    s.frame_len = ctx.wire_len();
    if let Some((_, tci)) = skb_vlan(ctx) {
        // The kernel moved the outer tag out of the frame; the parser saw what follows.
        if s.key.vlan_vid != 0 {
            return Err(drop_reason::VLAN_STACKED);
        }
        s.key.vlan_vid = VID_PRESENT | (tci & 0x0fff);
        s.key.vlan_pcp = (tci >> 13) as u8;
    }
    if let Some(fill) = fill {
        set_raw_key(s, &fill.raw);
        s.cache_slot = fill.slot;
        s.vport_gen = fill.vport_gen;
        s.cache_fill = true;
    }
    tc_step(ctx, s)
}

#[inline(always)]
fn tc_step(ctx: &TcContext, s: &mut Scratch) -> Result<i32, u32> {
    let next = match classify_step(s)? {
        Step::Goto => slot::TABLE,
        Step::Done => {
            fill_cache(s);
            if s.chain.multi || s.chain.outputs > 1 {
                slot::EMIT
            } else {
                slot::OUT
            }
        }
    };
    // SAFETY: tail call with our own context; returns only on failure.
    unsafe { TC_TABLE_PROGS.tail_call(ctx, next) };
    Err(drop_reason::HELPER_FAILED)
}

/// Count the chain's rules, apply header changes up to the first output, and collect
/// the outputs into the scratch area; then tail-call `lime_tc_send`.
#[inline(always)]
fn collect(ctx: &TcContext, s: &mut Scratch) -> Result<i32, u32> {
    let Scratch {
        chain,
        ingress: ing,
        copies,
        frame_len,
        ..
    } = s;
    copies.n_ports = 0;
    copies.flood = 0;
    copies.controller = 0;
    copies.n_remote = 0;
    let mut seen_output = false;
    let mut r = 0;
    while r < MAX_TABLES && r < chain.len {
        let rule_id = chain.rules[r];
        r += 1;
        count_rule(rule_id, *frame_len);
        let Some(prog) = RULE_PROGRAMS.get(rule_id) else {
            continue;
        };
        let n = prog.len as usize;
        let mut i = 0;
        while i < MAX_ACTIONS && i < n {
            let a = prog.actions[i];
            i += 1;
            match a.code {
                code::OUTPUT => {
                    seen_output = true;
                    match a.arg32 {
                        port_no::FLOOD | port_no::ALL => copies.flood = 1,
                        port_no::CONTROLLER => {
                            copies.controller = 1;
                            copies.ctrl_len = u32::from(a.arg16);
                            copies.ctrl_rule = rule_id;
                        }
                        p => {
                            let p = if p == port_no::IN_PORT { ing.vport } else { p };
                            // An explicit output to the ingress port is not allowed
                            // without IN_PORT (OpenFlow 1.3 B.4.2): skip it.
                            let hairpin = p == ing.vport && a.arg32 != port_no::IN_PORT;
                            if !hairpin
                                && p <= port_no::MAX
                                && (copies.n_ports as usize) < MAX_COPIES
                            {
                                copies.ports[slot_index(&copies.n_ports, MAX_COPIES)] = p;
                                copies.n_ports += 1;
                            }
                        }
                    }
                }
                code::SET_ETH_DST | code::SET_ETH_SRC => {
                    if seen_output {
                        return Err(drop_reason::BAD_ACTION);
                    }
                    let off = if a.code == code::SET_ETH_DST { 0 } else { 6 };
                    let mac = [
                        a.data[0], a.data[1], a.data[2], a.data[3], a.data[4], a.data[5],
                    ];
                    ctx.store(off, &mac, 0)
                        .map_err(|_| drop_reason::HELPER_FAILED)?;
                }
                _ => return Err(drop_reason::BAD_ACTION),
            }
        }
    }
    if !seen_output {
        return Err(if chain.missed {
            drop_reason::TABLE_MISS
        } else {
            drop_reason::NO_OUTPUT
        });
    }
    // SAFETY: tail call with our own context; returns only on failure.
    unsafe { TC_TABLE_PROGS.tail_call(ctx, slot::SEND) };
    Err(drop_reason::HELPER_FAILED)
}

/// Emit the collected copies: packet-in, local ports, flood, then remote ports.
#[inline(always)]
fn send(ctx: &TcContext, s: &mut Scratch) -> Result<i32, u32> {
    // Every copy carries the frame as on the wire: a tag the kernel moved out of it goes
    // back in (the packet-in and the tunnel carry frame bytes only).
    ctx.tag_in_frame()?;
    if s.copies.controller != 0 {
        packet_in(ctx, s, s.copies.ctrl_len, s.copies.ctrl_rule);
    }
    let vswitch = s.ingress.vswitch;
    let in_port = s.ingress.vport;
    let mut i = 0;
    while i < MAX_COPIES {
        if i >= s.copies.n_ports as usize {
            break;
        }
        let p = s.copies.ports[i];
        emit_local(ctx, vswitch, p, &mut s.copies);
        i += 1;
    }
    if s.copies.flood != 0
        && let Some(list) = VSW_PORTS.get(u32::from(vswitch))
    {
        let mut i = 0;
        while i < MAX_FLOOD_PORTS {
            if i >= list.len as usize {
                break;
            }
            let p = list.ports[i];
            i += 1;
            if p != in_port {
                emit_local(ctx, vswitch, p, &mut s.copies);
            }
        }
    }
    if s.copies.n_remote > 0 {
        emit_remote(ctx, s)?;
    }
    // The original has been copied wherever it goes.
    Ok(TC_ACT_SHOT as i32)
}

/// `*count` as an index below `len` (a power of two) that the verifier can bound: the
/// volatile load keeps LLVM from replacing the mask with an earlier comparison the
/// verifier cannot connect to this register.
#[inline(always)]
fn slot_index(count: &u32, len: usize) -> usize {
    // SAFETY: reading an aligned u32 we hold a reference to.
    (unsafe { core::ptr::read_volatile(count) } as usize) & (len - 1)
}

#[inline(always)]
fn vport(vswitch: u16, vport: u32) -> Option<VportInfo> {
    let key = VportKey {
        vswitch,
        _pad: 0,
        vport,
    };
    // SAFETY: map value, replaced whole by userspace.
    VPORTS.get_ptr(&key).map(|p| unsafe { *p })
}

/// Copy to a local port now; remember a remote one for later.
#[inline(always)]
fn emit_local(ctx: &TcContext, vswitch: u16, p: u32, copies: &mut Copies) {
    let Some(vp) = vport(vswitch, p) else {
        count_drop(drop_reason::BAD_OUTPUT);
        return;
    };
    if vp.location == location::REMOTE {
        if (copies.n_remote as usize) < MAX_REMOTE {
            copies.remote[slot_index(&copies.n_remote, MAX_REMOTE)] = p;
            copies.n_remote += 1;
        }
        return;
    }
    clone_to(ctx, vp.ifindex);
}

#[inline(always)]
fn clone_to(ctx: &TcContext, ifindex: u32) {
    let len = u64::from(ctx.len());
    let ok = ctx.clone_redirect(ifindex, 0).is_ok();
    if let Some(ps) = port_stats(ifindex) {
        if ok {
            ps.tx_packets += 1;
            ps.tx_bytes += len;
        } else {
            ps.tx_errors += 1;
        }
    }
}

/// Encapsulate once, then rewrite the tunnel header per remote copy.
#[inline(always)]
fn emit_remote(ctx: &TcContext, s: &Scratch) -> Result<(), u32> {
    // SAFETY: helper on our own skb.
    if unsafe { bpf_skb_change_head(ctx.skb.skb, ENCAP_LEN as u32, 0) } != 0 {
        return Err(drop_reason::HELPER_FAILED);
    }
    let ing = &s.ingress;
    let t = ETH_P_LIME.to_be_bytes();
    let mut i = 0;
    while i < MAX_REMOTE {
        if i >= s.copies.n_remote as usize {
            break;
        }
        let p = s.copies.remote[i];
        i += 1;
        let Some(vp) = vport(ing.vswitch, p) else {
            continue;
        };
        let d = vp.outer_dst;
        let o = vp.outer_src;
        let eth = [
            d[0], d[1], d[2], d[3], d[4], d[5], o[0], o[1], o[2], o[3], o[4], o[5], t[0], t[1],
        ];
        let hdr = TunnelHeader {
            magic: TUNNEL_MAGIC,
            flags: 0,
            hops: 1,
            _reserved: 0,
            vswitch: ing.vswitch.to_be_bytes(),
            _reserved2: [0; 2],
            in_port: ing.vport.to_be_bytes(),
            out_port: p.to_be_bytes(),
            version: ing.version.to_be_bytes(),
        };
        ctx.store(0, &eth, 0)
            .map_err(|_| drop_reason::HELPER_FAILED)?;
        ctx.store(14, &hdr, 0)
            .map_err(|_| drop_reason::HELPER_FAILED)?;
        clone_to(ctx, vp.ifindex);
    }
    Ok(())
}

#[inline(always)]
fn packet_in(ctx: &TcContext, s: &Scratch, max_len: u32, rule_id: u32) {
    let frame_len = ctx.len();
    let mut cap = frame_len;
    if max_len < cap {
        cap = max_len;
    }
    if cap > MAX_PACKET_IN_BYTES {
        cap = MAX_PACKET_IN_BYTES;
    }
    let (cookie, table) = match RULE_PROGRAMS.get(rule_id) {
        Some(p) => (p.cookie, p.table),
        None => (0, 0),
    };
    let meta = PacketInMeta {
        cookie,
        metadata: s.ingress.metadata,
        vswitch: s.ingress.vswitch,
        table,
        reason: packet_in_reason::ACTION,
        in_port: s.ingress.vport,
        rule_id,
        frame_len,
        captured: cap,
        version: s.ingress.version,
    };
    PACKET_IN.output(ctx, &meta, cap);
}

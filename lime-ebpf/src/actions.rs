//! Executing a classified packet: apply-actions on the frame, counters, and delivery to
//! a local port, a remote port (through the tunnel) or the controller.
use lime_common::{
    action::{Action, RuleProgram, code, port_no},
    flow::FlowKey,
    limits::{MAX_ACTIONS, MAX_PACKET_IN_BYTES, MAX_TABLES},
    port::{VportInfo, VportKey, location},
    stats::drop_reason,
    wire::{PacketInMeta, TUNNEL_MAGIC, TunnelHeader, packet_in_reason},
};

use crate::{
    ctx::{Packet, redirect_to},
    maps::{PACKET_IN, RULE_PROGRAMS, RULE_STATS, VPORTS, port_stats},
    tunnel::encap,
};

/// The rules a packet matched, one per table visited, in order.
pub struct Chain {
    /// Rule ids.
    pub rules: [u32; MAX_TABLES],
    /// Valid entries of `rules`.
    pub len: usize,
    /// Total output actions over the chain.
    pub outputs: u32,
    /// Some rule needs several copies of the frame.
    pub multi: bool,
    /// The chain ended on a table miss.
    pub missed: bool,
}

/// VLAN tags hidden under tags pushed by rules, so a pop shows the one below again.
#[derive(Clone, Copy, Default)]
pub struct VlanStack {
    /// (vlan_vid, vlan_pcp) of the flow key before each push, innermost first.
    pub saved: [(u16, u8); 2],
    /// Valid entries of `saved`.
    pub depth: u8,
}

/// Apply a rule's header-changing actions and write-metadata to the flow key, so the next
/// table matches what the frame will look like (OpenFlow 1.3 5.10: apply-actions change
/// the packet immediately).
#[inline(always)]
pub fn update_key(prog: &RuleProgram, key: &mut FlowKey, vlans: &mut VlanStack) {
    let n = prog.len as usize;
    let mut i = 0;
    while i < MAX_ACTIONS && i < n {
        let a = prog.actions[i];
        match a.code {
            code::SET_ETH_DST => key.eth_dst = mac(&a),
            code::SET_ETH_SRC => key.eth_src = mac(&a),
            code::SET_VLAN_VID => {
                key.vlan_vid = lime_common::flow::VID_PRESENT | (a.arg16 & 0x0fff);
            }
            code::PUSH_VLAN => {
                // The new outer tag copies the old outer tag's VID and PCP, or is 0/0.
                if vlans.depth == 0 {
                    vlans.saved[0] = (key.vlan_vid, key.vlan_pcp);
                    vlans.depth = 1;
                } else if vlans.depth == 1 {
                    vlans.saved[1] = (key.vlan_vid, key.vlan_pcp);
                    vlans.depth = 2;
                }
                if key.vlan_vid == 0 {
                    key.vlan_vid = lime_common::flow::VID_PRESENT;
                    key.vlan_pcp = 0;
                }
            }
            code::POP_VLAN => {
                // Show the tag below again: one a rule pushed over, or none (frames
                // arrive with at most one tag).
                if vlans.depth == 2 {
                    (key.vlan_vid, key.vlan_pcp) = vlans.saved[1];
                    vlans.depth = 1;
                } else if vlans.depth == 1 {
                    (key.vlan_vid, key.vlan_pcp) = vlans.saved[0];
                    vlans.depth = 0;
                } else {
                    key.vlan_vid = 0;
                    key.vlan_pcp = 0;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if prog.flags & lime_common::action::flags::WRITE_METADATA != 0 {
        key.metadata = (key.metadata & !prog.metadata_mask) | (prog.metadata & prog.metadata_mask);
    }
}

#[inline(always)]
fn mac(a: &Action) -> [u8; 6] {
    [
        a.data[0], a.data[1], a.data[2], a.data[3], a.data[4], a.data[5],
    ]
}

/// The one output a fast-path packet goes to.
#[derive(Clone, Copy)]
pub struct Output {
    /// Port (virtual or reserved).
    pub port: u32,
    /// For CONTROLLER: bytes to send.
    pub max_len: u16,
    /// Rule that output it.
    pub rule_id: u32,
    /// An action before the output changed the frame.
    pub modified: bool,
}

/// Count one packet of `frame_len` bytes on each rule of a chain (per-CPU counters).
#[inline(always)]
pub fn count_chain(rules: &[u32; MAX_TABLES], len: usize, frame_len: u64) {
    let mut r = 0;
    while r < MAX_TABLES && r < len {
        count_rule(rules[r], frame_len);
        r += 1;
    }
}

/// Count one packet of `frame_len` bytes on a rule (no clock read: the driver derives
/// the last hit from the counters).
#[inline(always)]
pub fn count_rule(rule_id: u32, frame_len: u64) {
    if let Some(st) = RULE_STATS.get_ptr_mut(rule_id) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        let st = unsafe { &mut *st };
        st.packets += 1;
        st.bytes += frame_len;
    }
}

/// Run the chain's actions on the frame (counting each rule), up to the first output;
/// changes after the single output cannot affect what is sent and are skipped.
#[inline(always)]
pub fn execute<P: Packet>(ctx: &P, chain: &Chain, frame_len: u64) -> Result<Option<Output>, u32> {
    // Fully initialised (not an Option): LLVM may otherwise spill an undefined payload,
    // which the verifier rejects ("!read_ok").
    let mut out = Output {
        port: 0,
        max_len: 0,
        rule_id: 0,
        modified: false,
    };
    let mut modified = false;
    let mut found = false;
    let mut r = 0;
    while r < MAX_TABLES && r < chain.len {
        let rule_id = chain.rules[r];
        r += 1;
        count_rule(rule_id, frame_len);
        let Some(prog) = RULE_PROGRAMS.get(rule_id) else {
            continue;
        };
        let n = prog.len as usize;
        let mut i = 0;
        while i < MAX_ACTIONS && i < n {
            let a = prog.actions[i];
            i += 1;
            if found {
                continue;
            }
            match a.code {
                code::OUTPUT => {
                    out = Output {
                        port: a.arg32,
                        max_len: a.arg16,
                        rule_id,
                        modified,
                    };
                    found = true;
                    continue;
                }
                code::SET_ETH_DST => write_mac(ctx, 0, mac(&a))?,
                code::SET_ETH_SRC => write_mac(ctx, 6, mac(&a))?,
                code::SET_VLAN_VID => ctx.set_vid(a.arg16)?,
                code::PUSH_VLAN => ctx.push_vlan(a.arg16)?,
                code::POP_VLAN => ctx.pop_vlan()?,
                _ => return Err(drop_reason::BAD_ACTION),
            }
            // Only header-changing actions get here.
            modified = true;
        }
    }
    Ok(if found { Some(out) } else { None })
}

#[inline(always)]
fn write_mac<P: Packet>(ctx: &P, off: usize, m: [u8; 6]) -> Result<(), u32> {
    ctx.write(off, &m)
}

/// Where the packet came from, for delivery decisions.
#[derive(Clone, Copy, Default)]
pub struct Ingress {
    /// Virtual switch.
    pub vswitch: u16,
    /// Virtual in_port.
    pub vport: u32,
    /// Version it was classified with.
    pub version: u32,
    /// Metadata register at the end of the pipeline.
    pub metadata: u64,
}

/// Deliver the frame to its one output.
#[inline(always)]
pub fn deliver<P: Packet>(ctx: &P, ing: &Ingress, out: Output) -> Result<u32, u32> {
    match out.port {
        port_no::CONTROLLER => {
            ctx.tag_in_frame()?;
            packet_in(ctx, ing, &out);
            Ok(P::DROP)
        }
        port_no::IN_PORT => send_to_vport(ctx, ing, ing.vport),
        port_no::FLOOD | port_no::ALL => Err(drop_reason::NEEDS_SKB_PATH),
        p if p > port_no::MAX => Err(drop_reason::BAD_OUTPUT),
        p if p == ing.vport => Err(drop_reason::HAIRPIN),
        p => send_to_vport(ctx, ing, p),
    }
}

/// Send to a virtual port, wherever it lives.
#[inline(always)]
pub fn send_to_vport<P: Packet>(ctx: &P, ing: &Ingress, vport: u32) -> Result<u32, u32> {
    let key = VportKey {
        vswitch: ing.vswitch,
        _pad: 0,
        vport,
    };
    let Some(vp) = VPORTS.get_ptr(&key) else {
        return Err(drop_reason::BAD_OUTPUT);
    };
    // SAFETY: map value, replaced whole by userspace (no-prealloc hash).
    let vp = unsafe { *vp };
    to_egress(ctx, ing, vport, &vp)
}

/// Send to virtual port `vport`, which lives at `vp`: redirect to a local port, or
/// encapsulate and redirect towards the physical switch that owns it.
#[inline(always)]
pub fn to_egress<P: Packet>(
    ctx: &P,
    ing: &Ingress,
    vport: u32,
    vp: &VportInfo,
) -> Result<u32, u32> {
    if vp.location == location::REMOTE {
        let v = ing.vswitch.to_be_bytes();
        let hdr = TunnelHeader {
            magic: TUNNEL_MAGIC,
            flags: 0,
            hops: 1,
            _reserved: 0,
            vswitch: v,
            _reserved2: [0; 2],
            in_port: ing.vport.to_be_bytes(),
            out_port: vport.to_be_bytes(),
            version: ing.version.to_be_bytes(),
        };
        encap(ctx, &hdr, vp)?;
    } else if vp.location != location::LOCAL {
        return Err(drop_reason::BAD_OUTPUT);
    }
    redirect(ctx, vp.ifindex)
}

/// Redirect to an interface, counting it as transmitted there.
#[inline(always)]
pub fn redirect<P: Packet>(ctx: &P, ifindex: u32) -> Result<u32, u32> {
    let len = ctx.wire_len();
    let action = redirect_to(ifindex);
    if action != P::REDIRECT {
        if let Some(ps) = port_stats(ifindex) {
            ps.tx_errors += 1;
        }
        return Err(drop_reason::HELPER_FAILED);
    }
    if let Some(ps) = port_stats(ifindex) {
        ps.tx_packets += 1;
        ps.tx_bytes += len;
    }
    Ok(action)
}

/// Send the frame (up to `max_len` bytes) and its metadata to userspace.
#[inline(always)]
fn packet_in<P: Packet>(ctx: &P, ing: &Ingress, out: &Output) {
    let frame_len = ctx.wire_len() as u32;
    let mut cap = frame_len;
    if u32::from(out.max_len) < cap {
        cap = u32::from(out.max_len);
    }
    if cap > MAX_PACKET_IN_BYTES {
        cap = MAX_PACKET_IN_BYTES;
    }
    let (cookie, table) = match RULE_PROGRAMS.get(out.rule_id) {
        Some(p) => (p.cookie, p.table),
        None => (0, 0),
    };
    // A priority-0, match-everything rule is the table-miss rule (OpenFlow 1.3 5.4); the
    // driver marks such rules by setting the cookie's reason in the program table, but
    // the reason is decided in userspace from the rule id, so ACTION is sent here.
    let meta = PacketInMeta {
        cookie,
        metadata: ing.metadata,
        vswitch: ing.vswitch,
        table,
        reason: packet_in_reason::ACTION,
        in_port: ing.vport,
        rule_id: out.rule_id,
        frame_len,
        captured: cap,
        version: ing.version,
    };
    PACKET_IN.output(ctx, &meta, cap);
}

//! LIME's tunnel between physical switches: outer Ethernet (type `ETH_P_LIME`) + the
//! [`TunnelHeader`] + the inner frame. The ingress physical switch classifies and picks
//! the virtual egress port; the receiver only delivers.
//!
//! Encapsulation works in both contexts ([`Packet`]): for an skb it is
//! `bpf_skb_change_head`, which keeps the GSO metadata, so a large TCP segment is
//! encapsulated whole (its network header still points at the inner IP header: if the
//! underlay device cannot take it whole, the kernel segments it with every segment
//! getting the outer headers). Decapsulation is XDP's only: `bpf_skb_adjust_room`, the
//! one helper that shrinks an skb at the front, refuses skbs whose protocol is not
//! IPv4/IPv6, and a tunnelled frame's is `ETH_P_LIME`. So underlay ports always run XDP;
//! on a physical switch whose host ports run at TC ([`lime_common::port::port_flags::TC`]),
//! XDP decapsulates and hands the frame to the TC program with its destination in the
//! XDP metadata area ([`TcHandoff`]) instead of redirecting it (XDP-redirected frames
//! only enter a veth whose peer runs XDP).
use aya_ebpf::programs::XdpContext;
use lime_common::{
    port::VportInfo,
    stats::drop_reason,
    wire::{ETH_P_LIME, TUNNEL_MAGIC, TunnelHeader},
};

use crate::{
    ctx::Packet,
    parse::{ETH_HLEN, Frame},
};

/// Bytes the tunnel adds in front of the inner frame.
pub const ENCAP_LEN: usize = ETH_HLEN + core::mem::size_of::<TunnelHeader>();

/// The current frame of a context.
#[inline(always)]
pub fn frame<P: Packet>(ctx: &P) -> Frame {
    ctx.frame()
}

/// What XDP on an underlay or injection port leaves in the XDP metadata area, in front
/// of a decapsulated frame it passes to the stack, for the TC program on the same port
/// (the metadata reaches the skb: `__sk_buff.data_meta`). Kernel-internal: both ends
/// are in this object.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TcHandoff {
    /// [`handoff::MAGIC`].
    pub magic: u32,
    /// [`handoff::DELIVER`] or [`handoff::TABLE`].
    pub what: u16,
    /// The virtual switch (for `TABLE`).
    pub vswitch: u16,
    /// `DELIVER`: the local port's ifindex; `TABLE`: the virtual in_port.
    pub arg: u32,
}

/// Values of [`TcHandoff`].
pub mod handoff {
    /// Marks a handoff (anything else in the metadata area is not ours).
    pub const MAGIC: u32 = 0x4c49_4d45;
    /// Already classified: redirect to the ifindex in `arg`.
    pub const DELIVER: u16 = 1;
    /// A packet-out through the flow tables, from virtual port `arg`.
    pub const TABLE: u16 = 2;
}

/// Read the tunnel header of a frame received on an underlay (or injection) port.
/// `Ok(None)` if the frame is not LIME-encapsulated.
#[inline(always)]
pub fn read_header(f: &Frame) -> Result<Option<TunnelHeader>, u32> {
    // SAFETY: bounds checked by ptr_at.
    let ty = unsafe { *f.ptr_at::<[u8; 2]>(12).map_err(|_| drop_reason::RUNT)? };
    if u16::from_be_bytes(ty) != ETH_P_LIME {
        return Ok(None);
    }
    // SAFETY: bounds checked by ptr_at.
    let hdr = unsafe {
        *f.ptr_at::<TunnelHeader>(ETH_HLEN)
            .map_err(|_| drop_reason::BAD_TUNNEL)?
    };
    if hdr.magic != TUNNEL_MAGIC {
        return Err(drop_reason::BAD_TUNNEL);
    }
    Ok(Some(hdr))
}

/// Remove outer Ethernet and tunnel header.
#[inline(always)]
pub fn decap(ctx: &XdpContext) -> Result<(), u32> {
    ctx.pull_head(ENCAP_LEN as u32)
}

/// Prepend outer Ethernet and `hdr`, addressed to the underlay peer in `via`.
#[inline(always)]
pub fn encap<P: Packet>(ctx: &P, hdr: &TunnelHeader, via: &VportInfo) -> Result<(), u32> {
    ctx.tag_in_frame()?;
    ctx.push_head(ENCAP_LEN as u32)?;
    rewrite_outer(ctx, hdr, via)
}

/// Write the outer Ethernet header and tunnel header in place (used after encap and
/// when forwarding a tunnelled frame to the next physical switch).
#[inline(always)]
pub fn rewrite_outer<P: Packet>(ctx: &P, hdr: &TunnelHeader, via: &VportInfo) -> Result<(), u32> {
    // The outer header as seven 16-bit words: one load and one store each, where bytes
    // would take twelve loads and fourteen stores. Both MACs sit at even offsets of the
    // (4-aligned) `VportInfo`, so every load is aligned (the verifier insists on the
    // stack, where `via` may live).
    let d = via.outer_dst.as_ptr();
    let s = via.outer_src.as_ptr();
    // SAFETY: in bounds of the 6-byte arrays; `read_unaligned` spares the type's claim
    // of 2-byte alignment, which holds anyway (see above).
    let w = |a: *const u8, i: usize| unsafe { core::ptr::read_unaligned(a.add(i).cast::<u16>()) };
    let eth: [u16; ETH_HLEN / 2] = [
        w(d, 0),
        w(d, 2),
        w(d, 4),
        w(s, 0),
        w(s, 2),
        w(s, 4),
        ETH_P_LIME.to_be(),
    ];
    ctx.write(0, &eth)?;
    ctx.write(ETH_HLEN, hdr)
}

//! LIME's tunnel between physical switches: outer Ethernet (type `ETH_P_LIME`) + the
//! [`TunnelHeader`] + the inner frame. The ingress physical switch classifies and picks
//! the virtual egress port; the receiver only delivers.
use aya_ebpf::{helpers::bpf_xdp_adjust_head, programs::XdpContext};
use lime_common::{
    port::VportInfo,
    stats::drop_reason,
    wire::{ETH_P_LIME, TUNNEL_MAGIC, TunnelHeader},
};

use crate::parse::{ETH_HLEN, Frame};

/// Bytes the tunnel adds in front of the inner frame.
pub const ENCAP_LEN: usize = ETH_HLEN + core::mem::size_of::<TunnelHeader>();

/// The current frame of an XDP context.
#[inline(always)]
pub fn frame(ctx: &XdpContext) -> Frame {
    Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    }
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
    // SAFETY: helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, ENCAP_LEN as i32) } != 0 {
        return Err(drop_reason::HELPER_FAILED);
    }
    Ok(())
}

/// Prepend outer Ethernet and `hdr`, addressed to the underlay peer in `via`.
#[inline(always)]
pub fn encap(ctx: &XdpContext, hdr: &TunnelHeader, via: &VportInfo) -> Result<(), u32> {
    // SAFETY: helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(ENCAP_LEN as i32)) } != 0 {
        return Err(drop_reason::HELPER_FAILED);
    }
    rewrite_outer(ctx, hdr, via)
}

/// Write the outer Ethernet header and tunnel header in place (used after encap and
/// when forwarding a tunnelled frame to the next physical switch).
#[inline(always)]
pub fn rewrite_outer(ctx: &XdpContext, hdr: &TunnelHeader, via: &VportInfo) -> Result<(), u32> {
    let f = frame(ctx);
    let eth = f.ptr_at_mut::<[u8; ETH_HLEN]>(0)?;
    let th = f.ptr_at_mut::<TunnelHeader>(ETH_HLEN)?;
    let t = ETH_P_LIME.to_be_bytes();
    let d = via.outer_dst;
    let s = via.outer_src;
    // SAFETY: both pointers were bounds-checked against the frame.
    unsafe {
        *eth = [
            d[0], d[1], d[2], d[3], d[4], d[5], s[0], s[1], s[2], s[3], s[4], s[5], t[0], t[1],
        ];
        *th = *hdr;
    }
    Ok(())
}

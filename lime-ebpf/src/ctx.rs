//! The two program contexts the datapath runs in — XDP (`XdpContext`) and TC ingress
//! (`TcContext`, an skb) — behind one trait, so that executing actions, delivering and
//! encapsulating are written once ([`crate::actions`], [`crate::tunnel`]) and compiled
//! for each context.
//!
//! What differs:
//! - Frame bytes: XDP sees the whole frame; an skb only its linear part (`data` to
//!   `data_end`, enough for the headers after [`Tc::pull_headers`]), while its length
//!   (`skb->len`) counts the whole frame — a GSO skb can carry 64 KiB.
//! - VLAN tags: the kernel's receive path moves an skb's outer tag out of the frame into
//!   `skb->vlan_tci` before TC ingress runs, so the TC path reads and changes it with
//!   the skb VLAN helpers; XDP edits the tag in the frame.
//! - Growing the head (tunnel encapsulation): `bpf_xdp_adjust_head` or
//!   `bpf_skb_change_head` (which keeps GSO metadata, so a large TCP segment stays whole).
//! - Verdicts: `XDP_DROP`/`XDP_REDIRECT` or `TC_ACT_SHOT`/`TC_ACT_REDIRECT`, both
//!   carried as `u32`.
use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_REDIRECT, TC_ACT_SHOT, xdp_action},
    helpers::{
        bpf_redirect, bpf_skb_change_head, bpf_skb_vlan_pop, bpf_skb_vlan_push, bpf_xdp_adjust_head,
    },
    programs::{TcContext, XdpContext},
};
use lime_common::stats::drop_reason;

use crate::parse::{ETH_P_8021Q, Frame};

/// Bytes of the frame the TC path makes linear before parsing: every header the parser
/// reads lies within them for the frames LIME classifies (the TCP stack builds its
/// headers in the linear part anyway); shorter frames are made linear whole.
pub const PULL_BYTES: u32 = 256;

/// Most VLAN tags [`Packet::tag_in_frame`] moves back into an skb's frame (a power of
/// two): one received plus the two pushes the flow key tracks, rounded up.
const MAX_SKB_TAGS: usize = 4;

/// A packet being processed, in either context.
pub trait Packet: EbpfContext {
    /// Verdict: drop.
    const DROP: u32;
    /// What a successful `bpf_redirect` returns.
    const REDIRECT: u32;

    /// The directly accessible frame bytes (for reading).
    fn frame(&self) -> Frame;
    /// Write `v` at byte `off` of the frame: a direct store in XDP; for skbs
    /// `bpf_skb_store_bytes`, so that a program writing packets does not get the
    /// verifier's prologue that un-clones every skb (TCP's are clones), only those it
    /// really changes.
    fn write<T: Copy>(&self, off: usize, v: &T) -> Result<(), u32>;
    /// The frame's length on the wire (for counters).
    fn wire_len(&self) -> u64;
    /// Prepend `n` bytes (uninitialised in XDP, zeroed for skbs).
    fn push_head(&self, n: u32) -> Result<(), u32>;
    /// Remove `n` bytes at the start (XDP only: see [`crate::tunnel`]).
    fn pull_head(&self, n: u32) -> Result<(), u32>;
    /// Set the outer VLAN tag's VID (keeping PCP); no-op without a tag.
    fn set_vid(&self, vid: u16) -> Result<(), u32>;
    /// Push a new outer VLAN tag copying the old outer tag's TCI (or 0).
    fn push_vlan(&self, tpid: u16) -> Result<(), u32>;
    /// Pop the outer VLAN tag; no-op without a tag.
    fn pop_vlan(&self) -> Result<(), u32>;
    /// Put an skb's out-of-frame VLAN tag back into the frame, after the MACs (before
    /// encapsulation and packet-in, which carry the frame as it is on the wire).
    fn tag_in_frame(&self) -> Result<(), u32>;
}

impl Packet for XdpContext {
    const DROP: u32 = xdp_action::XDP_DROP;
    const REDIRECT: u32 = xdp_action::XDP_REDIRECT;

    #[inline(always)]
    fn frame(&self) -> Frame {
        Frame::between(self.data(), self.data_end())
    }

    #[inline(always)]
    fn write<T: Copy>(&self, off: usize, v: &T) -> Result<(), u32> {
        let p = Packet::frame(self).ptr_at_mut::<T>(off)?;
        // SAFETY: bounds checked.
        unsafe { *p = *v };
        Ok(())
    }

    #[inline(always)]
    fn wire_len(&self) -> u64 {
        Packet::frame(self).len() as u64
    }

    #[inline(always)]
    fn push_head(&self, n: u32) -> Result<(), u32> {
        // SAFETY: helper call on our own context.
        if unsafe { bpf_xdp_adjust_head(self.ctx, -(n as i32)) } != 0 {
            return Err(drop_reason::HELPER_FAILED);
        }
        Ok(())
    }

    #[inline(always)]
    fn pull_head(&self, n: u32) -> Result<(), u32> {
        // SAFETY: helper call on our own context.
        if unsafe { bpf_xdp_adjust_head(self.ctx, n as i32) } != 0 {
            return Err(drop_reason::HELPER_FAILED);
        }
        Ok(())
    }

    #[inline(always)]
    fn set_vid(&self, vid: u16) -> Result<(), u32> {
        set_vid_in_frame(self, vid)
    }

    #[inline(always)]
    fn push_vlan(&self, tpid: u16) -> Result<(), u32> {
        // The new tag copies the outer tag's TCI when there is one (OpenFlow 1.3 A.2.5).
        insert_tag(self, tpid, tci_in_frame(&Packet::frame(self))?)
    }

    #[inline(always)]
    fn pop_vlan(&self) -> Result<(), u32> {
        let f = Packet::frame(self);
        let hdr = f.ptr_at_mut::<[u8; 16]>(0)?;
        // SAFETY: bounds checked.
        unsafe {
            let h = &mut *hdr;
            if !is_vlan_tpid([h[12], h[13]]) {
                return Ok(());
            }
            let mut i = 11;
            loop {
                h[i + 4] = h[i];
                if i == 0 {
                    break;
                }
                i -= 1;
            }
        }
        self.pull_head(4)
    }

    #[inline(always)]
    fn tag_in_frame(&self) -> Result<(), u32> {
        Ok(())
    }
}

/// An skb's hardware-accelerated (out-of-frame) VLAN tag: (TPID, TCI), if present.
#[inline(always)]
pub fn skb_vlan(ctx: &TcContext) -> Option<(u16, u16)> {
    // SAFETY: reading fields of our own __sk_buff.
    unsafe {
        let skb = ctx.skb.skb;
        if (*skb).vlan_present == 0 {
            return None;
        }
        // vlan_proto is in network byte order.
        Some((
            u16::from_be((*skb).vlan_proto as u16),
            (*skb).vlan_tci as u16,
        ))
    }
}

/// The TC path's own steps.
pub trait Tc {
    /// Make the headers (the first [`PULL_BYTES`], or the whole frame if shorter)
    /// directly accessible.
    fn pull_headers(&self);
}

impl Tc for TcContext {
    #[inline(always)]
    fn pull_headers(&self) {
        let len = self.len();
        let _ = self.pull_data(if len < PULL_BYTES { len } else { PULL_BYTES });
    }
}

impl Packet for TcContext {
    const DROP: u32 = TC_ACT_SHOT as u32;
    const REDIRECT: u32 = TC_ACT_REDIRECT as u32;

    #[inline(always)]
    fn frame(&self) -> Frame {
        Frame::between(self.data(), self.data_end())
    }

    #[inline(always)]
    fn write<T: Copy>(&self, off: usize, v: &T) -> Result<(), u32> {
        self.store(off, v, 0)
            .map_err(|_| drop_reason::HELPER_FAILED)
    }

    #[inline(always)]
    fn wire_len(&self) -> u64 {
        // The tag the kernel took out of the frame was on the wire.
        let tag = if skb_vlan(self).is_some() { 4 } else { 0 };
        u64::from(self.len()) + tag
    }

    #[inline(always)]
    fn push_head(&self, n: u32) -> Result<(), u32> {
        // SAFETY: helper on our own skb.
        if unsafe { bpf_skb_change_head(self.skb.skb, n, 0) } != 0 {
            return Err(drop_reason::HELPER_FAILED);
        }
        Ok(())
    }

    #[inline(always)]
    fn pull_head(&self, _n: u32) -> Result<(), u32> {
        // `bpf_skb_adjust_room` only shrinks IPv4/IPv6 skbs; LIME's tunnel is decapsulated
        // by XDP on the underlay port (see `crate::tunnel`).
        Err(drop_reason::HELPER_FAILED)
    }

    #[inline(always)]
    fn set_vid(&self, vid: u16) -> Result<(), u32> {
        let Some((tpid, tci)) = skb_vlan(self) else {
            // A tag still in the frame (an skb not from the receive path, e.g. a test run).
            return set_vid_in_frame(self, vid);
        };
        let tci = (tci & 0xf000) | (vid & 0x0fff);
        // SAFETY: helpers on our own skb: replace the out-of-frame tag.
        if unsafe { bpf_skb_vlan_pop(self.skb.skb) } != 0
            || unsafe { bpf_skb_vlan_push(self.skb.skb, tpid.to_be(), tci) } != 0
        {
            return Err(drop_reason::HELPER_FAILED);
        }
        Ok(())
    }

    #[inline(always)]
    fn push_vlan(&self, tpid: u16) -> Result<(), u32> {
        let tci = match skb_vlan(self) {
            Some((_, tci)) => tci,
            None => tci_in_frame(&Packet::frame(self))?,
        };
        // SAFETY: helper on our own skb; an existing out-of-frame tag moves into the
        // frame under the new one.
        if unsafe { bpf_skb_vlan_push(self.skb.skb, tpid.to_be(), tci) } != 0 {
            return Err(drop_reason::HELPER_FAILED);
        }
        Ok(())
    }

    #[inline(always)]
    fn pop_vlan(&self) -> Result<(), u32> {
        // SAFETY: helper on our own skb; it pops the out-of-frame tag, or else one in the
        // frame, or does nothing.
        if unsafe { bpf_skb_vlan_pop(self.skb.skb) } != 0 {
            return Err(drop_reason::HELPER_FAILED);
        }
        Ok(())
    }

    #[inline(always)]
    fn tag_in_frame(&self) -> Result<(), u32> {
        // Popping the out-of-frame tag moves the next tag in the frame (if the skb's
        // protocol says there is one) out of it: take them all out, outer first, then
        // write them back into the frame, inner first, each after the MACs.
        let mut tags = [(0u16, 0u16); MAX_SKB_TAGS];
        let mut n = 0;
        while n < MAX_SKB_TAGS {
            let Some(tag) = skb_vlan(self) else {
                break;
            };
            // SAFETY: helper on our own skb.
            if unsafe { bpf_skb_vlan_pop(self.skb.skb) } != 0 {
                return Err(drop_reason::HELPER_FAILED);
            }
            tags[n] = tag;
            n += 1;
        }
        if skb_vlan(self).is_some() {
            return Err(drop_reason::VLAN_STACKED);
        }
        while n > 0 {
            n -= 1;
            let (tpid, tci) = tags[n & (MAX_SKB_TAGS - 1)];
            insert_tag(self, tpid, tci)?;
        }
        Ok(())
    }
}

/// Insert a VLAN tag into the frame after the MACs.
#[inline(always)]
fn insert_tag<P: Packet>(ctx: &P, tpid: u16, tci: u16) -> Result<(), u32> {
    ctx.push_head(4)?;
    // SAFETY: bounds checked by ptr_at.
    let old = unsafe { *ctx.frame().ptr_at::<[u8; 16]>(0)? };
    let t = tpid.to_be_bytes();
    let c = tci.to_be_bytes();
    // The MACs move to the new start, the tag follows them.
    let mut h = [0u8; 16];
    let mut i = 0;
    while i < 12 {
        h[i] = old[i + 4];
        i += 1;
    }
    h[12] = t[0];
    h[13] = t[1];
    h[14] = c[0];
    h[15] = c[1];
    ctx.write(0, &h)
}

/// Set the VID of a tag in the frame (bytes 12..16), keeping its PCP; no-op without one.
#[inline(always)]
fn set_vid_in_frame<P: Packet>(ctx: &P, vid: u16) -> Result<(), u32> {
    // SAFETY: bounds checked by ptr_at.
    let t = unsafe { *ctx.frame().ptr_at::<[u8; 4]>(12)? };
    if !is_vlan_tpid([t[0], t[1]]) {
        // OpenFlow requires a VLAN_VID prerequisite for this set-field; userspace enforces
        // it, so an untagged frame here means the rule's match allowed one: no-op.
        return Ok(());
    }
    let tci = (u16::from_be_bytes([t[2], t[3]]) & 0xf000) | (vid & 0x0fff);
    let b = tci.to_be_bytes();
    ctx.write(12, &[t[0], t[1], b[0], b[1]])
}

/// The TCI of a tag in the frame, or 0 without one.
#[inline(always)]
fn tci_in_frame(f: &Frame) -> Result<u16, u32> {
    // SAFETY: bounds checked by ptr_at.
    let t = unsafe { *f.ptr_at::<[u8; 4]>(12)? };
    Ok(if is_vlan_tpid([t[0], t[1]]) {
        u16::from_be_bytes([t[2], t[3]])
    } else {
        0
    })
}

#[inline(always)]
fn is_vlan_tpid(t: [u8; 2]) -> bool {
    let t = u16::from_be_bytes(t);
    t == ETH_P_8021Q || t == 0x88a8
}

/// `bpf_redirect` to `ifindex`'s egress, in either context.
#[inline(always)]
pub fn redirect_to(ifindex: u32) -> u32 {
    // SAFETY: helper call.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

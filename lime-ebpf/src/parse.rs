//! Frame parsing into a [`FlowKey`]. All packet access goes through [`Frame::ptr_at`],
//! which checks the bounds the verifier needs.
//!
//! Malformed frames are rejected with a drop reason and never classified: a runt, a
//! truncated header (VLAN, ARP, IPv4, IPv6, IPv6 extension, TCP/UDP/ICMP), an IPv4 header
//! length below 5 words or past the frame, a second VLAN tag, or more IPv6 extension
//! headers than [`MAX_IPV6_EXT_HEADERS`].
use lime_common::{
    flow::{CACHE_KEY_RAW4, CACHE_RAW4_WORDS, CacheKey, FlowKey, RAW4_MIN_LEN, VID_PRESENT},
    limits::MAX_IPV6_EXT_HEADERS,
    stats::drop_reason,
};

/// A frame between two addresses (XDP `data`/`data_end`).
#[derive(Clone, Copy)]
pub struct Frame {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

pub const ETH_HLEN: usize = 14;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

impl Frame {
    /// The frame from `start` to `end` (a context's `data` and `data_end`).
    #[inline(always)]
    pub fn between(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// Frame length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Pointer to a `T` at `offset`, if the whole `T` lies inside the frame.
    #[inline(always)]
    pub fn ptr_at<T>(&self, offset: usize) -> Result<*const T, u32> {
        let size = core::mem::size_of::<T>();
        if self.start + offset + size > self.end {
            return Err(drop_reason::TRUNCATED);
        }
        Ok((self.start + offset) as *const T)
    }

    /// Mutable pointer to a `T` at `offset`, bounds-checked as [`Frame::ptr_at`].
    #[inline(always)]
    pub fn ptr_at_mut<T>(&self, offset: usize) -> Result<*mut T, u32> {
        self.ptr_at::<T>(offset).map(|p| p.cast_mut())
    }

    #[inline(always)]
    fn be16_at(&self, offset: usize) -> Result<u16, u32> {
        Ok(u16::from_be_bytes(self.bytes_at::<2>(offset)?))
    }

    /// The `T` at `offset` (a plain integer), as it lies in the frame: one load of the
    /// whole value where the kernel allows unaligned packet access (see `build.rs`).
    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Result<T, u32> {
        // SAFETY: bounds checked by ptr_at; unaligned read.
        Ok(unsafe { core::ptr::read_unaligned(self.ptr_at::<T>(offset)?) })
    }

    /// The `N` bytes at `offset`, in place (reading a field through it loads just that
    /// field from the packet; copying a whole header first would cost a load and a
    /// store per byte).
    #[inline(always)]
    fn view<const N: usize>(&self, offset: usize) -> Result<&[u8; N], u32> {
        // SAFETY: bounds checked by ptr_at; the frame outlives the program's run.
        Ok(unsafe { &*self.ptr_at::<[u8; N]>(offset)? })
    }

    #[inline(always)]
    fn bytes_at<const N: usize>(&self, offset: usize) -> Result<[u8; N], u32> {
        // SAFETY: bounds checked by ptr_at.
        Ok(unsafe { *self.ptr_at::<[u8; N]>(offset)? })
    }
}

/// Store `v` (bytes as they were in the frame) at byte `off` of `key`: one aligned
/// 32-bit store where a field-by-field copy of byte arrays would store each byte.
#[inline(always)]
fn put32(key: &mut FlowKey, off: usize, v: u32) {
    debug_assert!(off % 4 == 0 && off + 4 <= core::mem::size_of::<FlowKey>());
    // SAFETY: in bounds and 4-aligned (FlowKey is 8-aligned); every bit pattern is a
    // valid FlowKey.
    unsafe {
        core::ptr::from_mut(key)
            .cast::<u8>()
            .add(off)
            .cast::<u32>()
            .write(v);
    }
}

/// Byte offsets in [`FlowKey`] that the parser fills with word stores.
const K_ETH_DST: usize = core::mem::offset_of!(FlowKey, eth_dst);
const K_NW_SRC: usize = core::mem::offset_of!(FlowKey, nw_src);
const K_NW_DST: usize = core::mem::offset_of!(FlowKey, nw_dst);
const K_TP_SRC: usize = core::mem::offset_of!(FlowKey, tp_src);
// eth_dst and eth_src are adjacent, as in the frame, and start on a word: the frame's
// first 12 bytes are key bytes 8..20 (one 64-bit and one 32-bit store). tp_src and
// tp_dst are adjacent as in the TCP/UDP header.
const _: () = assert!(K_ETH_DST == 8);
const _: () = assert!(core::mem::offset_of!(FlowKey, eth_src) == K_ETH_DST + 6);
const _: () = assert!(K_NW_SRC % 4 == 0 && K_NW_DST % 4 == 0 && K_TP_SRC % 4 == 0);
const _: () = assert!(core::mem::offset_of!(FlowKey, tp_dst) == K_TP_SRC + 2);

/// Where the parser found things, for the action code.
#[derive(Clone, Copy, Default)]
pub struct Layout {
    /// The frame has a VLAN tag (bytes 12..16).
    pub vlan: bool,
}

/// The raw IPv4 form of the frame's flow-cache key (layout and why it is exact: see
/// [`CacheKey`]), if the frame allows it: untagged, Ethertype IPv4, version 4 with a
/// 20-byte header, at least [`RAW4_MIN_LEN`] bytes. One bounds check and five loads,
/// no parse: on a cache hit nothing else of the frame is read.
#[inline(always)]
pub fn raw4_key(
    f: &Frame,
    vswitch: u16,
    in_port: u32,
    version: u32,
) -> Option<[u64; CACHE_RAW4_WORDS]> {
    let p = f.ptr_at::<[u8; RAW4_MIN_LEN]>(0).ok()? as usize;
    // SAFETY: every load lies in the RAW4_MIN_LEN bytes checked above; unaligned loads
    // (see `build.rs`).
    let ld64 = |off: usize| unsafe { core::ptr::read_unaligned((p + off) as *const u64) };
    // SAFETY: as above.
    let ld32 = |off: usize| unsafe { core::ptr::read_unaligned((p + off) as *const u32) };
    let w3 = ld64(8);
    // Bytes 12..15 as loaded: Ethertype 0x0800, then version 4 and IHL 5.
    if (w3 >> 32) & 0x00ff_ffff != 0x0045_0008 {
        return None;
    }
    Some([
        CacheKey::head(vswitch, CACHE_KEY_RAW4, version),
        u64::from(in_port) | u64::from(ld32(34)) << 32,
        ld64(0),
        w3,
        ld64(26),
        // Flags and fragment offset, TTL (byte 22: cleared), protocol.
        u64::from(ld32(20) & 0xff00_ffff),
    ])
}

/// Parse the frame into `key` (whose `in_port` and `metadata` the caller sets).
#[inline(always)]
pub fn parse(f: &Frame, key: &mut FlowKey) -> Result<Layout, u32> {
    if f.len() < ETH_HLEN {
        return Err(drop_reason::RUNT);
    }
    let mut layout = Layout::default();
    // Both MACs: frame bytes 0..12 into key bytes 8..20 (checked above: 14 bytes).
    let macs: u64 = f.load(0)?;
    key.words_mut()[K_ETH_DST / 8] = macs;
    put32(key, K_ETH_DST + 8, f.load(8)?);
    let mut eth_type = f.be16_at(12)?;
    let mut l3 = ETH_HLEN;
    if eth_type == ETH_P_8021Q || eth_type == ETH_P_8021AD {
        let tci = f.be16_at(14)?;
        key.vlan_vid = VID_PRESENT | (tci & 0x0fff);
        key.vlan_pcp = (tci >> 13) as u8;
        eth_type = f.be16_at(16)?;
        if eth_type == ETH_P_8021Q || eth_type == ETH_P_8021AD {
            return Err(drop_reason::VLAN_STACKED);
        }
        l3 = ETH_HLEN + 4;
        layout.vlan = true;
    }
    key.eth_type = eth_type.to_be_bytes();
    match eth_type {
        ETH_P_IP => parse_ipv4(f, l3, key)?,
        ETH_P_IPV6 => parse_ipv6(f, l3, key)?,
        ETH_P_ARP => parse_arp(f, l3, key)?,
        _ => {}
    }
    Ok(layout)
}

#[inline(always)]
fn parse_arp(f: &Frame, l3: usize, key: &mut FlowKey) -> Result<(), u32> {
    // Ethernet/IPv4 ARP is 28 bytes: htype(2) ptype(2) hlen(1) plen(1) op(2) sha(6)
    // spa(4) tha(6) tpa(4). Other ARP flavours match on eth_type only.
    let hdr = f.view::<8>(l3)?;
    if hdr[0] != 0 || hdr[1] != 1 || hdr[2] != 8 || hdr[3] != 0 || hdr[4] != 6 || hdr[5] != 4 {
        return Ok(());
    }
    let _: &[u8; 28] = f.view::<28>(l3)?;
    key.tp_src = [hdr[6], hdr[7]];
    let spa = f.bytes_at::<4>(l3 + 14)?;
    let tpa = f.bytes_at::<4>(l3 + 24)?;
    set_ipv4(&mut key.nw_src, spa);
    set_ipv4(&mut key.nw_dst, tpa);
    Ok(())
}

#[inline(always)]
fn set_ipv4(dst: &mut [u8; 16], a: [u8; 4]) {
    dst[0] = a[0];
    dst[1] = a[1];
    dst[2] = a[2];
    dst[3] = a[3];
}

#[inline(always)]
fn parse_ipv4(f: &Frame, l3: usize, key: &mut FlowKey) -> Result<(), u32> {
    let hdr = f.view::<20>(l3)?;
    let ihl = usize::from(hdr[0] & 0x0f) * 4;
    if ihl < 20 || f.start + l3 + ihl > f.end {
        return Err(drop_reason::BAD_IHL);
    }
    key.ip_dscp = hdr[1] >> 2;
    key.ip_proto = hdr[9];
    put32(key, K_NW_SRC, f.load(l3 + 12)?);
    put32(key, K_NW_DST, f.load(l3 + 16)?);
    let frag_off = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
    if frag_off != 0 {
        // Later fragments carry no transport header.
        return Ok(());
    }
    parse_l4(f, l3 + ihl, key.ip_proto, IPPROTO_ICMP, key)
}

#[inline(always)]
fn parse_ipv6(f: &Frame, l3: usize, key: &mut FlowKey) -> Result<(), u32> {
    let hdr = f.view::<8>(l3)?;
    let tclass = (hdr[0] << 4) | (hdr[1] >> 4);
    key.ip_dscp = tclass >> 2;
    key.nw_src = f.bytes_at::<16>(l3 + 8)?;
    key.nw_dst = f.bytes_at::<16>(l3 + 24)?;
    let mut next = hdr[6];
    let mut off = l3 + 40;
    let mut walked = 0;
    while walked < MAX_IPV6_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units, not
            // counting the first 8 (RFC 8200 4.3-4.6).
            0 | 43 | 60 => {
                let ext = f.bytes_at::<2>(off)?;
                next = ext[0];
                off += (usize::from(ext[1]) + 1) * 8;
            }
            // Fragment header: fixed 8 bytes; only the first fragment has L4.
            44 => {
                let ext = f.bytes_at::<4>(off)?;
                next = ext[0];
                off += 8;
                let frag_off = u16::from_be_bytes([ext[2], ext[3]]) >> 3;
                if frag_off != 0 {
                    key.ip_proto = next;
                    return Ok(());
                }
            }
            // Authentication header: length in 4-octet units minus 2 (RFC 4302).
            51 => {
                let ext = f.bytes_at::<2>(off)?;
                next = ext[0];
                off += (usize::from(ext[1]) + 2) * 4;
            }
            _ => {
                key.ip_proto = next;
                return parse_l4(f, off, next, IPPROTO_ICMPV6, key);
            }
        }
        walked += 1;
    }
    match next {
        0 | 43 | 60 | 44 | 51 => Err(drop_reason::IPV6_EXT_LIMIT),
        _ => {
            key.ip_proto = next;
            parse_l4(f, off, next, IPPROTO_ICMPV6, key)
        }
    }
}

#[inline(always)]
fn parse_l4(f: &Frame, l4: usize, proto: u8, icmp: u8, key: &mut FlowKey) -> Result<(), u32> {
    if proto == IPPROTO_TCP || proto == IPPROTO_UDP {
        // Source and destination port, adjacent in the header and in the key.
        put32(key, K_TP_SRC, f.load(l4)?);
    } else if proto == icmp {
        let tc = f.bytes_at::<2>(l4)?;
        key.tp_src = [0, tc[0]];
        key.tp_dst = [0, tc[1]];
    }
    Ok(())
}

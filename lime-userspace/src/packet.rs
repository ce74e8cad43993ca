//! Structured packets for tests and benchmarks: a description ([`Packet`]), a builder of
//! valid Ethernet frames ([`Packet::to_bytes`]), an independent parser ([`Packet::parse`])
//! and builders of malformed frames ([`malformed`]).
//!
//! # Parser
//! The parser is plain Rust written from the protocol specs, not from the eBPF code, so it
//! can check what the datapath emits. It rejects exactly the frames the datapath's parser
//! (`lime-ebpf/src/parse.rs`) rejects, in the same order and with the same drop reason
//! ([`ParseError::drop_reason`]):
//! - fewer than 14 bytes: `RUNT`;
//! - a header cut short: `TRUNCATED` (VLAN tag plus the next ethertype; 20 bytes of IPv4
//!   header; 40 bytes of IPv6 header; the first 2 bytes of an IPv6 hop-by-hop, routing,
//!   destination-options or authentication header, the first 4 of a fragment header;
//!   8 bytes of ARP, then 28 for Ethernet/IPv4 ARP; 4 bytes of TCP/UDP; 2 of ICMP);
//! - an IPv4 IHL below 5 or past the end of the frame: `BAD_IHL`;
//! - a fifth IPv6 extension header: `IPV6_EXT_LIMIT`;
//! - with [`Packet::parse_datapath`] only, a second VLAN tag: `VLAN_STACKED`.
//!   [`Packet::parse`] accepts any number of tags, so that a test can look at the frame a
//!   push-VLAN produced.
//!
//! Like the datapath, header reads are bounded by the frame, not by the IPv4 total length
//! or IPv6 payload length; those lengths only bound what is kept as [`L4::Raw`] bytes (so
//! Ethernet padding is not mistaken for payload). The IP version nibble is not checked.
//!
//! # Round trip
//! `Packet::parse(&p.to_bytes_min(0)) == Ok(p)` for every well-formed packet: at most the
//! modelled fields (TCP/UDP/ICMP headers are written with zero sequence numbers, ids and
//! the like and read back as ports or type/code only), L4 kinds that fit the L3 ([`L4::Icmp`]
//! under IPv4, [`L4::Icmpv6`] under IPv6, [`L4::Raw`] only for other protocols or for
//! non-first fragments), and a non-first IPv6 fragment header, if any, last. With padding
//! ([`Packet::to_bytes`]), the same holds except for [`L3::Other`], whose bytes run to the
//! end of the frame.
use std::net::{Ipv4Addr, Ipv6Addr};

use lime_common::{limits::MAX_IPV6_EXT_HEADERS, stats::drop_reason};

use crate::flow::matching::{ethertype, ipproto};

/// Minimum Ethernet frame length without the FCS: what a NIC pads short frames to.
pub const MIN_FRAME_LEN: usize = 60;
/// Ethernet header length (no VLAN tag).
pub const ETH_HLEN: usize = 14;
/// 802.1Q VLAN tag protocol id.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad (QinQ service tag) protocol id.
pub const TPID_8021AD: u16 = 0x88a8;

/// IPv6 extension header numbers the datapath walks (RFC 8200 section 4, RFC 4302).
pub mod ext_header {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing.
    pub const ROUTING: u8 = 43;
    /// Fragment.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header.
    pub const AUTH: u8 = 51;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
    /// "No next header": a non-extension next-header value with nothing after it.
    pub const NO_NEXT: u8 = 59;

    /// Whether `next` is one of the extension headers the datapath walks.
    #[must_use]
    pub fn is_walked(next: u8) -> bool {
        matches!(next, HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | DEST_OPTS)
    }
}

/// Whether `t` is a VLAN tag protocol id the datapath recognises.
#[must_use]
pub fn is_tpid(t: u16) -> bool {
    t == TPID_8021Q || t == TPID_8021AD
}

/// One VLAN tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vlan {
    /// Tag protocol id ([`TPID_8021Q`] or [`TPID_8021AD`]).
    pub tpid: u16,
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator (formerly CFI).
    pub dei: bool,
    /// VLAN id, 0..=0xfff.
    pub vid: u16,
}

impl Vlan {
    /// An 802.1Q tag.
    #[must_use]
    pub fn new(vid: u16, pcp: u8) -> Self {
        Self {
            tpid: TPID_8021Q,
            pcp,
            dei: false,
            vid,
        }
    }

    /// The tag control information (PCP, DEI, VID).
    #[must_use]
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    /// A tag from its TPID and TCI.
    #[must_use]
    pub fn from_tci(tpid: u16, tci: u16) -> Self {
        Self {
            tpid,
            // The shift leaves three bits.
            pcp: u8::try_from(tci >> 13).unwrap_or(0),
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }
}

/// An Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Destination MAC.
    pub eth_dst: [u8; 6],
    /// Source MAC.
    pub eth_src: [u8; 6],
    /// VLAN tags, outermost first (more than one is a stacked frame the datapath drops).
    pub vlans: Vec<Vlan>,
    /// What follows the Ethernet header and tags.
    pub l3: L3,
}

/// The network layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum L3 {
    /// IPv4.
    Ipv4(Ipv4),
    /// IPv6.
    Ipv6(Ipv6),
    /// Ethernet/IPv4 ARP.
    Arp(Arp),
    /// Anything else, including ARP for other hardware or protocol types: the ethertype
    /// and every byte after it to the end of the frame (padding included).
    Other {
        /// Ethertype; not a VLAN TPID, and IPv4/IPv6/ARP only for frames the parser
        /// could not read as such (ARP of another hardware or protocol type).
        ethertype: u16,
        /// Bytes after the ethertype.
        bytes: Vec<u8>,
    },
}

/// An IPv4 header and what it carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4 {
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// DSCP (upper six bits of TOS).
    pub dscp: u8,
    /// ECN (lower two bits of TOS).
    pub ecn: u8,
    /// Time to live.
    pub ttl: u8,
    /// Fragment offset in 8-byte units (0 for unfragmented and first fragments).
    pub frag_offset: u16,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Header length in 32-bit words (5: no options). Options are written as zeros and
    /// not kept by the parser; values below 5 are written as they are into a 20-byte
    /// header (a frame the datapath drops as `BAD_IHL`).
    pub ihl_words: u8,
    /// Payload; [`L4::Raw`] for non-first fragments.
    pub l4: L4,
}

impl Ipv4 {
    /// A plain header: no options, not fragmented, TTL 64, DSCP/ECN 0.
    #[must_use]
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, l4: L4) -> Self {
        Self {
            src,
            dst,
            dscp: 0,
            ecn: 0,
            ttl: 64,
            frag_offset: 0,
            more_frags: false,
            ihl_words: 5,
            l4,
        }
    }
}

/// An IPv6 header, its extension headers and what they carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6 {
    /// Source.
    pub src: Ipv6Addr,
    /// Destination.
    pub dst: Ipv6Addr,
    /// DSCP (upper six bits of the traffic class).
    pub dscp: u8,
    /// ECN (lower two bits of the traffic class).
    pub ecn: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Extension headers in order. Each is written in its smallest form; the parser keeps
    /// only their kinds (and a fragment's offset and flag).
    pub ext: Vec<Ext>,
    /// Payload after the extension headers; [`L4::Raw`] after a non-first fragment header.
    pub l4: L4,
}

impl Ipv6 {
    /// A plain header: no extension headers, hop limit 64, traffic class 0.
    #[must_use]
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, l4: L4) -> Self {
        Self {
            src,
            dst,
            dscp: 0,
            ecn: 0,
            hop_limit: 64,
            ext: Vec::new(),
            l4,
        }
    }
}

/// An IPv6 extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ext {
    /// Hop-by-hop options (8 bytes: one PadN option).
    HopByHop,
    /// Routing (8 bytes: experimental type 253, no segments left).
    Routing,
    /// Destination options (8 bytes: one PadN option).
    DestOpts,
    /// Fragment (8 bytes, identification 0).
    Fragment {
        /// Offset in 8-byte units; non-zero means no transport header follows.
        offset: u16,
        /// More-fragments flag.
        more: bool,
    },
    /// Authentication header (16 bytes: SPI, sequence number, 4-byte ICV, all zero).
    Auth,
}

impl Ext {
    /// Its next-header number.
    #[must_use]
    pub fn number(self) -> u8 {
        match self {
            Self::HopByHop => ext_header::HOP_BY_HOP,
            Self::Routing => ext_header::ROUTING,
            Self::DestOpts => ext_header::DEST_OPTS,
            Self::Fragment { .. } => ext_header::FRAGMENT,
            Self::Auth => ext_header::AUTH,
        }
    }

    fn write(&self, next: u8, out: &mut Vec<u8>) {
        match *self {
            // PadN (type 1) with 4 bytes of padding fills the 6 option bytes (RFC 8200 4.2).
            Self::HopByHop | Self::DestOpts => out.extend([next, 0, 1, 4, 0, 0, 0, 0]),
            Self::Routing => out.extend([next, 0, 253, 0, 0, 0, 0, 0]),
            Self::Fragment { offset, more } => {
                let f = (offset << 3) | u16::from(more);
                let [a, b] = f.to_be_bytes();
                out.extend([next, 0, a, b, 0, 0, 0, 0]);
            }
            // Payload length 2: (2 + 2) * 4 = 16 bytes (RFC 4302 2.2).
            Self::Auth => {
                out.extend([next, 2, 0, 0]);
                out.extend([0; 12]);
            }
        }
    }
}

/// An Ethernet/IPv4 ARP packet (htype 1, ptype 0x0800, hlen 6, plen 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arp {
    /// Opcode (1 request, 2 reply).
    pub op: u16,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

/// The transport layer (its protocol number is the IP header's protocol / final next
/// header, see [`L4::proto`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum L4 {
    /// TCP (a 20-byte SYN header with these ports).
    Tcp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// UDP (an 8-byte header with these ports, no payload).
    Udp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// ICMPv4 (8 bytes: type, code, checksum, zero rest-of-header).
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
    },
    /// ICMPv6 (8 bytes, like ICMPv4).
    Icmpv6 {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
    },
    /// Any protocol as raw bytes (also a truncated header of a known protocol, or the
    /// payload of a non-first fragment).
    Raw {
        /// IP protocol / next header.
        proto: u8,
        /// Bytes.
        bytes: Vec<u8>,
    },
}

impl L4 {
    /// IP protocol number.
    #[must_use]
    pub fn proto(&self) -> u8 {
        match self {
            Self::Tcp { .. } => ipproto::TCP,
            Self::Udp { .. } => ipproto::UDP,
            Self::Icmp { .. } => ipproto::ICMP,
            Self::Icmpv6 { .. } => ipproto::ICMPV6,
            Self::Raw { proto, .. } => *proto,
        }
    }

    /// Serialise, with the checksum over the IP pseudo-header `pseudo` where the
    /// protocol has one.
    fn write(&self, pseudo: Pseudo<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        let csum_at = match *self {
            Self::Tcp { src, dst } => {
                out.extend(src.to_be_bytes());
                out.extend(dst.to_be_bytes());
                out.extend([0; 8]); // sequence and acknowledgement numbers
                out.extend([0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]); // offset 5, SYN, window
                Some(16)
            }
            Self::Udp { src, dst } => {
                out.extend(src.to_be_bytes());
                out.extend(dst.to_be_bytes());
                out.extend([0, 8, 0, 0]);
                Some(6)
            }
            Self::Icmp { ty, code } | Self::Icmpv6 { ty, code } => {
                out.extend([ty, code, 0, 0, 0, 0, 0, 0]);
                Some(2)
            }
            Self::Raw { ref bytes, .. } => {
                out.extend(bytes);
                None
            }
        };
        let Some(at) = csum_at else { return };
        let seg = &out[start..];
        let len = u32::try_from(seg.len()).unwrap_or(u32::MAX);
        let mut sum = Checksum::default();
        // ICMPv4 has no pseudo-header (RFC 792); TCP, UDP and ICMPv6 do.
        let pseudo = if matches!(self, Self::Icmp { .. }) {
            Pseudo::None
        } else {
            pseudo
        };
        match pseudo {
            Pseudo::None => {}
            Pseudo::V4(src, dst) => {
                sum.add(&src.octets());
                sum.add(&dst.octets());
                sum.add(&[0, self.proto()]);
                sum.add(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            }
            Pseudo::V6(src, dst) => {
                sum.add(&src.octets());
                sum.add(&dst.octets());
                sum.add(&len.to_be_bytes());
                sum.add(&[0, 0, 0, self.proto()]);
            }
        }
        sum.add(seg);
        let mut c = sum.finish();
        if c == 0 && matches!(self, Self::Udp { .. }) {
            c = 0xffff; // RFC 768: a computed zero is sent as all ones
        }
        out[start + at..start + at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

#[derive(Clone, Copy)]
enum Pseudo<'a> {
    None,
    V4(&'a Ipv4Addr, &'a Ipv4Addr),
    V6(&'a Ipv6Addr, &'a Ipv6Addr),
}

/// RFC 1071 Internet checksum over 16-bit words, fed in even-length pieces (except the
/// last).
#[derive(Default)]
struct Checksum(u64);

impl Checksum {
    fn add(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(2) {
            let w = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
            self.0 += u64::from(w);
        }
    }

    fn finish(mut self) -> u16 {
        while self.0 > 0xffff {
            self.0 = (self.0 & 0xffff) + (self.0 >> 16);
        }
        // The loop leaves at most 16 bits.
        !u16::try_from(self.0).unwrap_or(u16::MAX)
    }
}

/// Finish a TCP or UDP checksum that a sender left to offload (`CHECKSUM_PARTIAL`: the
/// field holds only the pseudo-header's sum, the rest is the device's job), in a whole
/// Ethernet frame (IPv4, or IPv6 without extension headers; at most one VLAN tag).
/// A datapath at TC sees hosts' frames before any device finished them; what it hands
/// to a controller must be the frame as the wire would carry it. Returns whether it
/// changed the frame; any other frame (a complete or a wrong checksum, a truncated
/// frame, another protocol) is left as it is.
pub fn finish_partial_checksum(frame: &mut [u8]) -> bool {
    let mut l3 = 14;
    let Some(&[a, b]) = frame.get(12..14) else {
        return false;
    };
    let mut ty = u16::from_be_bytes([a, b]);
    if is_tpid(ty) {
        let Some(&[a, b]) = frame.get(16..18) else {
            return false;
        };
        ty = u16::from_be_bytes([a, b]);
        l3 = 18;
    }
    let mut pseudo = Checksum::default();
    let (proto, l4, l4_len) = match ty {
        ethertype::IPV4 => {
            let Some(h) = frame.get(l3..l3 + 20) else {
                return false;
            };
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
            if ihl < 20 || total < ihl || frag != 0 {
                return false;
            }
            pseudo.add(&h[12..20]);
            (h[9], l3 + ihl, total - ihl)
        }
        ethertype::IPV6 => {
            let Some(h) = frame.get(l3..l3 + 40) else {
                return false;
            };
            pseudo.add(&h[8..40]);
            (h[6], l3 + 40, usize::from(u16::from_be_bytes([h[4], h[5]])))
        }
        _ => return false,
    };
    let field = match proto {
        6 => 16,
        17 => 6,
        _ => return false,
    };
    if frame.len() < l4 + l4_len || l4_len < field + 2 {
        return false;
    }
    let Ok(len) = u32::try_from(l4_len) else {
        return false;
    };
    pseudo.add(&[0, proto]);
    pseudo.add(&len.to_be_bytes());
    let at = l4 + field;
    let stored = u16::from_be_bytes([frame[at], frame[at + 1]]);
    let mut all = Checksum(pseudo.0);
    // What a sender leaves for offload: the pseudo-header's sum, folded, not inverted.
    if stored != !pseudo.finish() {
        return false;
    }
    frame[at] = 0;
    frame[at + 1] = 0;
    all.add(&frame[l4..l4 + l4_len]);
    let mut sum = all.finish();
    if proto == 17 && sum == 0 {
        sum = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

impl L3 {
    /// The ethertype announcing this payload.
    #[must_use]
    pub fn ethertype(&self) -> u16 {
        match self {
            Self::Ipv4(_) => ethertype::IPV4,
            Self::Ipv6(_) => ethertype::IPV6,
            Self::Arp(_) => ethertype::ARP,
            Self::Other { ethertype, .. } => *ethertype,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Ipv4(ip) => write_ipv4(ip, out),
            Self::Ipv6(ip) => write_ipv6(ip, out),
            Self::Arp(a) => {
                out.extend([0, 1, 0x08, 0x00, 6, 4]);
                out.extend(a.op.to_be_bytes());
                out.extend(a.sha);
                out.extend(a.spa.octets());
                out.extend(a.tha);
                out.extend(a.tpa.octets());
            }
            Self::Other { bytes, .. } => out.extend(bytes),
        }
    }
}

fn write_ipv4(ip: &Ipv4, out: &mut Vec<u8>) {
    let start = out.len();
    let hlen = usize::from(ip.ihl_words.max(5)) * 4;
    let mut l4 = Vec::new();
    ip.l4.write(Pseudo::V4(&ip.src, &ip.dst), &mut l4);
    let total = u16::try_from(hlen + l4.len()).unwrap_or(u16::MAX);
    let frag = (u16::from(ip.more_frags) << 13) | (ip.frag_offset & 0x1fff);
    out.push(0x40 | (ip.ihl_words & 0x0f));
    out.push((ip.dscp << 2) | (ip.ecn & 3));
    out.extend(total.to_be_bytes());
    out.extend([0, 0]); // identification
    out.extend(frag.to_be_bytes());
    out.extend([ip.ttl, ip.l4.proto(), 0, 0]);
    out.extend(ip.src.octets());
    out.extend(ip.dst.octets());
    out.resize(start + hlen, 0); // options
    let mut sum = Checksum::default();
    sum.add(&out[start..]);
    let c = sum.finish();
    out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
    out.extend(l4);
}

fn write_ipv6(ip: &Ipv6, out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    let nexts: Vec<u8> = ip
        .ext
        .iter()
        .skip(1)
        .map(|e| e.number())
        .chain([ip.l4.proto()])
        .collect();
    for (e, next) in ip.ext.iter().zip(&nexts) {
        e.write(*next, &mut payload);
    }
    ip.l4.write(Pseudo::V6(&ip.src, &ip.dst), &mut payload);
    let first = ip.ext.first().map_or(ip.l4.proto(), |e| e.number());
    let tc = u32::from((ip.dscp << 2) | (ip.ecn & 3));
    out.extend(((6 << 28) | (tc << 20)).to_be_bytes());
    out.extend(
        u16::try_from(payload.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend([first, ip.hop_limit]);
    out.extend(ip.src.octets());
    out.extend(ip.dst.octets());
    out.extend(payload);
}

/// Why [`Packet::parse`] rejected a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than an Ethernet header.
    #[error("frame of {len} bytes is shorter than an Ethernet header")]
    Runt {
        /// Frame length.
        len: usize,
    },
    /// A header is cut short.
    #[error("{header} header cut short at offset {offset}")]
    Truncated {
        /// Which header.
        header: &'static str,
        /// Offset of that header in the frame.
        offset: usize,
    },
    /// IPv4 header length below 5 words or past the end of the frame.
    #[error("IPv4 header length of {ihl_words} words is below 5 or past the frame")]
    BadIhl {
        /// The IHL field.
        ihl_words: u8,
    },
    /// A second VLAN tag ([`Packet::parse_datapath`] only).
    #[error("stacked VLAN tags")]
    VlanStacked,
    /// More IPv6 extension headers than the datapath walks.
    #[error("more than {MAX_IPV6_EXT_HEADERS} IPv6 extension headers")]
    Ipv6ExtLimit,
}

impl ParseError {
    /// The datapath's drop reason for the same frame (`lime_common::stats::drop_reason`).
    #[must_use]
    pub fn drop_reason(&self) -> u32 {
        match self {
            Self::Runt { .. } => drop_reason::RUNT,
            Self::Truncated { .. } => drop_reason::TRUNCATED,
            Self::BadIhl { .. } => drop_reason::BAD_IHL,
            Self::VlanStacked => drop_reason::VLAN_STACKED,
            Self::Ipv6ExtLimit => drop_reason::IPV6_EXT_LIMIT,
        }
    }
}

/// `N` bytes at `off`, or `Truncated`. Never panics.
fn take<const N: usize>(b: &[u8], off: usize, header: &'static str) -> Result<[u8; N], ParseError> {
    off.checked_add(N)
        .and_then(|end| b.get(off..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(ParseError::Truncated {
            header,
            offset: off,
        })
}

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// `b[from..to]`, empty when out of range. Never panics.
fn slice(b: &[u8], from: usize, to: usize) -> Vec<u8> {
    b.get(from..to.min(b.len())).unwrap_or_default().to_vec()
}

fn ipv4_at(b: [u8; 16], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

impl Packet {
    /// An Ethernet frame, untagged.
    #[must_use]
    pub fn ethernet(src_mac: [u8; 6], dst_mac: [u8; 6], l3: L3) -> Self {
        Self {
            eth_dst: dst_mac,
            eth_src: src_mac,
            vlans: Vec::new(),
            l3,
        }
    }

    /// IPv4/UDP.
    #[must_use]
    pub fn udp4(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
        sport: u16,
        dport: u16,
    ) -> Self {
        let l4 = L4::Udp {
            src: sport,
            dst: dport,
        };
        Self::ethernet(src_mac, dst_mac, L3::Ipv4(Ipv4::new(src_ip, dst_ip, l4)))
    }

    /// IPv4/TCP (a SYN).
    #[must_use]
    pub fn tcp4(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
        sport: u16,
        dport: u16,
    ) -> Self {
        let l4 = L4::Tcp {
            src: sport,
            dst: dport,
        };
        Self::ethernet(src_mac, dst_mac, L3::Ipv4(Ipv4::new(src_ip, dst_ip, l4)))
    }

    /// IPv4/ICMP echo request.
    #[must_use]
    pub fn icmp4_echo(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
    ) -> Self {
        let l4 = L4::Icmp { ty: 8, code: 0 };
        Self::ethernet(src_mac, dst_mac, L3::Ipv4(Ipv4::new(src_ip, dst_ip, l4)))
    }

    /// Broadcast ARP request: who has `target_ip`, tell `src_ip`.
    #[must_use]
    pub fn arp_request(src_mac: [u8; 6], src_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Self {
        let arp = Arp {
            op: 1,
            sha: src_mac,
            spa: src_ip,
            tha: [0; 6],
            tpa: target_ip,
        };
        Self::ethernet(src_mac, [0xff; 6], L3::Arp(arp))
    }

    /// ARP reply: `src_ip` is at `src_mac`, sent to `dst_mac`/`dst_ip`.
    #[must_use]
    pub fn arp_reply(
        src_mac: [u8; 6],
        src_ip: Ipv4Addr,
        dst_mac: [u8; 6],
        dst_ip: Ipv4Addr,
    ) -> Self {
        let arp = Arp {
            op: 2,
            sha: src_mac,
            spa: src_ip,
            tha: dst_mac,
            tpa: dst_ip,
        };
        Self::ethernet(src_mac, dst_mac, L3::Arp(arp))
    }

    /// IPv6/UDP.
    #[must_use]
    pub fn udp6(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: Ipv6Addr,
        dst_ip: Ipv6Addr,
        sport: u16,
        dport: u16,
    ) -> Self {
        let l4 = L4::Udp {
            src: sport,
            dst: dport,
        };
        Self::ethernet(src_mac, dst_mac, L3::Ipv6(Ipv6::new(src_ip, dst_ip, l4)))
    }

    /// IPv6/TCP (a SYN).
    #[must_use]
    pub fn tcp6(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: Ipv6Addr,
        dst_ip: Ipv6Addr,
        sport: u16,
        dport: u16,
    ) -> Self {
        let l4 = L4::Tcp {
            src: sport,
            dst: dport,
        };
        Self::ethernet(src_mac, dst_mac, L3::Ipv6(Ipv6::new(src_ip, dst_ip, l4)))
    }

    /// IPv6/ICMPv6 of a given type and code (128/0 is an echo request).
    #[must_use]
    pub fn icmp6(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: Ipv6Addr,
        dst_ip: Ipv6Addr,
        ty: u8,
        code: u8,
    ) -> Self {
        let l4 = L4::Icmpv6 { ty, code };
        Self::ethernet(src_mac, dst_mac, L3::Ipv6(Ipv6::new(src_ip, dst_ip, l4)))
    }

    /// Add an 802.1Q tag as the new outermost tag (twice makes a stacked frame).
    #[must_use]
    pub fn with_vlan(mut self, vid: u16, pcp: u8) -> Self {
        self.vlans.insert(0, Vlan::new(vid, pcp));
        self
    }

    /// The outermost VLAN tag.
    #[must_use]
    pub fn vlan(&self) -> Option<&Vlan> {
        self.vlans.first()
    }

    /// The frame, zero-padded to [`MIN_FRAME_LEN`] bytes like a NIC would.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_min(MIN_FRAME_LEN)
    }

    /// The frame, zero-padded to at least `min_len` bytes (0: no padding). Lengths and the
    /// IPv4, TCP, UDP, ICMP and ICMPv6 checksums are computed.
    #[must_use]
    pub fn to_bytes_min(&self, min_len: usize) -> Vec<u8> {
        let mut f = Vec::with_capacity(min_len.max(128));
        f.extend(self.eth_dst);
        f.extend(self.eth_src);
        for v in &self.vlans {
            f.extend(v.tpid.to_be_bytes());
            f.extend(v.tci().to_be_bytes());
        }
        f.extend(self.l3.ethertype().to_be_bytes());
        self.l3.write(&mut f);
        if f.len() < min_len {
            f.resize(min_len, 0);
        }
        f
    }

    /// Parse a frame, accepting any number of VLAN tags (see the module docs for what is
    /// rejected). Never panics.
    ///
    /// # Errors
    /// A [`ParseError`] for a frame the datapath drops as malformed (other than for
    /// stacked VLAN tags).
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        parse(frame, false)
    }

    /// Parse a frame as the datapath does: as [`Packet::parse`], but a second VLAN tag is
    /// [`ParseError::VlanStacked`], checked where the datapath checks it (as soon as the
    /// ethertype after the first tag is read). Never panics.
    ///
    /// # Errors
    /// A [`ParseError`] for exactly the frames the datapath drops as malformed.
    pub fn parse_datapath(frame: &[u8]) -> Result<Self, ParseError> {
        parse(frame, true)
    }
}

fn parse(b: &[u8], one_tag: bool) -> Result<Packet, ParseError> {
    if b.len() < ETH_HLEN {
        return Err(ParseError::Runt { len: b.len() });
    }
    let eth: [u8; 14] = take(b, 0, "ethernet")?;
    let mut eth_dst = [0; 6];
    let mut eth_src = [0; 6];
    eth_dst.copy_from_slice(&eth[..6]);
    eth_src.copy_from_slice(&eth[6..12]);
    let mut ty = be16([eth[12], eth[13]]);
    let mut off = 12;
    let mut vlans = Vec::new();
    while is_tpid(ty) {
        if one_tag && !vlans.is_empty() {
            return Err(ParseError::VlanStacked);
        }
        // TPID (already read), TCI, next ethertype.
        let t: [u8; 6] = take(b, off, "vlan")?;
        vlans.push(Vlan::from_tci(ty, be16([t[2], t[3]])));
        ty = be16([t[4], t[5]]);
        off += 4;
    }
    let l3_at = off + 2;
    let l3 = match ty {
        ethertype::IPV4 => parse_ipv4(b, l3_at)?,
        ethertype::IPV6 => parse_ipv6(b, l3_at)?,
        ethertype::ARP => parse_arp(b, l3_at)?,
        _ => L3::Other {
            ethertype: ty,
            bytes: slice(b, l3_at, b.len()),
        },
    };
    Ok(Packet {
        eth_dst,
        eth_src,
        vlans,
        l3,
    })
}

fn parse_arp(b: &[u8], at: usize) -> Result<L3, ParseError> {
    let h: [u8; 8] = take(b, at, "arp")?;
    if h[..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return Ok(L3::Other {
            ethertype: ethertype::ARP,
            bytes: slice(b, at, b.len()),
        });
    }
    let a: [u8; 28] = take(b, at, "arp")?;
    let mac = |i: usize| -> [u8; 6] { [a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4], a[i + 5]] };
    let ip = |i: usize| Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]);
    Ok(L3::Arp(Arp {
        op: be16([a[6], a[7]]),
        sha: mac(8),
        spa: ip(14),
        tha: mac(18),
        tpa: ip(24),
    }))
}

fn parse_ipv4(b: &[u8], at: usize) -> Result<L3, ParseError> {
    let h: [u8; 20] = take(b, at, "ipv4")?;
    let ihl_words = h[0] & 0x0f;
    let hlen = usize::from(ihl_words) * 4;
    if hlen < 20 || at + hlen > b.len() {
        return Err(ParseError::BadIhl { ihl_words });
    }
    let total = usize::from(be16([h[2], h[3]]));
    let frag = be16([h[6], h[7]]);
    let l4_at = at + hlen;
    // The total length bounds kept payload bytes only; header reads use the frame.
    let end = (at + total).clamp(l4_at, b.len());
    let proto = h[9];
    let frag_offset = frag & 0x1fff;
    let l4 = if frag_offset == 0 {
        parse_l4(b, l4_at, end, proto, ipproto::ICMP)?
    } else {
        L4::Raw {
            proto,
            bytes: slice(b, l4_at, end),
        }
    };
    let mut addrs = [0; 16];
    addrs[..8].copy_from_slice(&h[12..20]);
    Ok(L3::Ipv4(Ipv4 {
        src: ipv4_at(addrs, 0),
        dst: ipv4_at(addrs, 4),
        dscp: h[1] >> 2,
        ecn: h[1] & 3,
        ttl: h[8],
        frag_offset,
        more_frags: frag & 0x2000 != 0,
        ihl_words,
        l4,
    }))
}

fn parse_ipv6(b: &[u8], at: usize) -> Result<L3, ParseError> {
    let h: [u8; 40] = take(b, at, "ipv6")?;
    let tc = ((h[0] & 0x0f) << 4) | (h[1] >> 4);
    let plen = usize::from(be16([h[4], h[5]]));
    let mut addr = [0; 16];
    addr.copy_from_slice(&h[8..24]);
    let src = Ipv6Addr::from(addr);
    addr.copy_from_slice(&h[24..40]);
    let dst = Ipv6Addr::from(addr);
    let end = (at + 40 + plen).clamp(at + 40, b.len());
    let mut next = h[6];
    let mut off = at + 40;
    let mut ext = Vec::new();
    let l4 = loop {
        if ext_header::is_walked(next) && ext.len() == MAX_IPV6_EXT_HEADERS {
            return Err(ParseError::Ipv6ExtLimit);
        }
        match next {
            // Length in 8-octet units, not counting the first 8 (RFC 8200 4.3-4.6).
            ext_header::HOP_BY_HOP | ext_header::ROUTING | ext_header::DEST_OPTS => {
                let e: [u8; 2] = take(b, off, "ipv6 extension")?;
                ext.push(match next {
                    ext_header::HOP_BY_HOP => Ext::HopByHop,
                    ext_header::ROUTING => Ext::Routing,
                    _ => Ext::DestOpts,
                });
                next = e[0];
                off += (usize::from(e[1]) + 1) * 8;
            }
            // Fixed 8 bytes; only the first fragment carries the transport header (RFC 8200 4.5).
            ext_header::FRAGMENT => {
                let e: [u8; 4] = take(b, off, "ipv6 fragment")?;
                let f = be16([e[2], e[3]]);
                let offset = f >> 3;
                ext.push(Ext::Fragment {
                    offset,
                    more: f & 1 != 0,
                });
                next = e[0];
                off += 8;
                if offset != 0 {
                    break L4::Raw {
                        proto: next,
                        bytes: slice(b, off, end),
                    };
                }
            }
            // Length in 4-octet units minus 2 (RFC 4302 2.2).
            ext_header::AUTH => {
                let e: [u8; 2] = take(b, off, "ipv6 authentication")?;
                ext.push(Ext::Auth);
                next = e[0];
                off += (usize::from(e[1]) + 2) * 4;
            }
            _ => break parse_l4(b, off, end, next, ipproto::ICMPV6)?,
        }
    };
    Ok(L3::Ipv6(Ipv6 {
        src,
        dst,
        dscp: tc >> 2,
        ecn: tc & 3,
        hop_limit: h[7],
        ext,
        l4,
    }))
}

/// The transport header at `at` (payload bytes end at `end`), for protocol `proto`;
/// `icmp` is the ICMP protocol number of this IP version.
fn parse_l4(b: &[u8], at: usize, end: usize, proto: u8, icmp: u8) -> Result<L4, ParseError> {
    Ok(match proto {
        ipproto::TCP | ipproto::UDP => {
            let p: [u8; 4] = take(b, at, if proto == ipproto::TCP { "tcp" } else { "udp" })?;
            let (src, dst) = (be16([p[0], p[1]]), be16([p[2], p[3]]));
            if proto == ipproto::TCP {
                L4::Tcp { src, dst }
            } else {
                L4::Udp { src, dst }
            }
        }
        p if p == icmp => {
            let t: [u8; 2] = take(b, at, "icmp")?;
            let (ty, code) = (t[0], t[1]);
            if icmp == ipproto::ICMP {
                L4::Icmp { ty, code }
            } else {
                L4::Icmpv6 { ty, code }
            }
        }
        _ => L4::Raw {
            proto,
            bytes: slice(b, at, end),
        },
    })
}

/// Malformed frames, each with the drop reason the datapath gives it.
pub mod malformed {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use lime_common::stats::drop_reason;

    use super::{ETH_HLEN, Ext, Ipv4, Ipv6, L3, L4, Packet};

    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
    const IP4_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const IP4_DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const IP6_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const IP6_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    /// A named malformed frame and the datapath's drop reason for it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Malformed {
        /// Short name, for test output.
        pub name: &'static str,
        /// The frame.
        pub frame: Vec<u8>,
        /// `lime_common::stats::drop_reason` the datapath counts.
        pub reason: u32,
    }

    fn cut(p: &Packet, len: usize) -> Vec<u8> {
        let mut b = p.to_bytes_min(0);
        b.truncate(len);
        b
    }

    /// 13 bytes: shorter than an Ethernet header (`RUNT`).
    #[must_use]
    pub fn runt() -> Vec<u8> {
        cut(&udp4(), ETH_HLEN - 1)
    }

    /// A tagged frame cut after the TCI, before the inner ethertype (`TRUNCATED`).
    #[must_use]
    pub fn truncated_vlan() -> Vec<u8> {
        cut(&udp4().with_vlan(10, 0), ETH_HLEN + 2)
    }

    /// Two 802.1Q tags (`VLAN_STACKED`).
    #[must_use]
    pub fn stacked_vlan() -> Vec<u8> {
        udp4().with_vlan(10, 0).with_vlan(20, 0).to_bytes()
    }

    /// An 802.1ad service tag over an 802.1Q tag, QinQ (`VLAN_STACKED`).
    #[must_use]
    pub fn stacked_qinq() -> Vec<u8> {
        let mut p = udp4().with_vlan(10, 0).with_vlan(20, 0);
        p.vlans[0].tpid = super::TPID_8021AD;
        p.to_bytes()
    }

    /// Only 10 bytes of IPv4 header, unpadded (`TRUNCATED`).
    #[must_use]
    pub fn truncated_ipv4() -> Vec<u8> {
        cut(&udp4(), ETH_HLEN + 10)
    }

    /// IPv4 with IHL 4, i.e. a 16-byte header (`BAD_IHL`).
    #[must_use]
    pub fn ipv4_short_ihl() -> Vec<u8> {
        ipv4_ihl(4)
    }

    /// IPv4 with any IHL field over an otherwise normal 20-byte header and UDP, padded
    /// to 60 bytes: IHL 0..=4 is `BAD_IHL`; IHL over 5 reads the UDP header and
    /// padding as options; IHL 15 needs 60 header bytes, past the 60-byte frame
    /// (`BAD_IHL`).
    #[must_use]
    pub fn ipv4_ihl(ihl_words: u8) -> Vec<u8> {
        let mut b = udp4().to_bytes();
        b[ETH_HLEN] = 0x40 | (ihl_words & 0x0f);
        b
    }

    /// IPv4 whose IHL (15 words, 60 bytes) points past the end of the frame (`BAD_IHL`).
    #[must_use]
    pub fn ipv4_ihl_past_frame() -> Vec<u8> {
        ipv4_ihl(15)
    }

    /// IPv4/TCP with 3 bytes of TCP header, unpadded (`TRUNCATED`).
    #[must_use]
    pub fn truncated_tcp() -> Vec<u8> {
        let p = Packet::tcp4(SRC, DST, IP4_SRC, IP4_DST, 1234, 80);
        cut(&p, ETH_HLEN + 20 + 3)
    }

    /// IPv4/UDP with 3 bytes of UDP header, unpadded (`TRUNCATED`).
    #[must_use]
    pub fn truncated_udp() -> Vec<u8> {
        cut(&udp4(), ETH_HLEN + 20 + 3)
    }

    /// IPv4/ICMP with 1 byte of ICMP header, unpadded (`TRUNCATED`).
    #[must_use]
    pub fn truncated_icmp() -> Vec<u8> {
        let p = Packet::icmp4_echo(SRC, DST, IP4_SRC, IP4_DST);
        cut(&p, ETH_HLEN + 20 + 1)
    }

    /// 30 bytes of IPv6 header (`TRUNCATED`).
    #[must_use]
    pub fn truncated_ipv6() -> Vec<u8> {
        cut(&udp6_with_ext(0), ETH_HLEN + 30)
    }

    /// IPv6 whose hop-by-hop header is cut after its first byte (`TRUNCATED`).
    #[must_use]
    pub fn truncated_ipv6_ext() -> Vec<u8> {
        cut(&udp6_with_ext(1), ETH_HLEN + 40 + 1)
    }

    /// Ethernet/IPv4 ARP with 20 of its 28 bytes (`TRUNCATED`).
    #[must_use]
    pub fn truncated_arp() -> Vec<u8> {
        cut(&Packet::arp_request(SRC, IP4_SRC, IP4_DST), ETH_HLEN + 20)
    }

    /// IPv6/UDP behind `n` extension headers (hop-by-hop, then routing and destination
    /// options alternating). Well-formed for `n <= 4`; `IPV6_EXT_LIMIT` for `n > 4`.
    #[must_use]
    pub fn udp6_with_ext(n: usize) -> Packet {
        let mut ip = Ipv6::new(IP6_SRC, IP6_DST, L4::Udp { src: 1234, dst: 53 });
        ip.ext = (0..n)
            .map(|i| match i {
                0 => Ext::HopByHop,
                i if i % 2 == 1 => Ext::Routing,
                _ => Ext::DestOpts,
            })
            .collect();
        Packet::ethernet(SRC, DST, L3::Ipv6(ip))
    }

    fn udp4() -> Packet {
        Packet::ethernet(
            SRC,
            DST,
            L3::Ipv4(Ipv4::new(IP4_SRC, IP4_DST, L4::Udp { src: 1234, dst: 53 })),
        )
    }

    /// Every malformed frame above, with its drop reason (fixtures for the datapath).
    #[must_use]
    pub fn all() -> Vec<Malformed> {
        let m = |name, frame, reason| Malformed {
            name,
            frame,
            reason,
        };
        vec![
            m("runt", runt(), drop_reason::RUNT),
            m("truncated_vlan", truncated_vlan(), drop_reason::TRUNCATED),
            m("stacked_vlan", stacked_vlan(), drop_reason::VLAN_STACKED),
            m("stacked_qinq", stacked_qinq(), drop_reason::VLAN_STACKED),
            m("truncated_ipv4", truncated_ipv4(), drop_reason::TRUNCATED),
            m("ipv4_short_ihl", ipv4_short_ihl(), drop_reason::BAD_IHL),
            m("ipv4_ihl_zero", ipv4_ihl(0), drop_reason::BAD_IHL),
            m(
                "ipv4_ihl_past_frame",
                ipv4_ihl_past_frame(),
                drop_reason::BAD_IHL,
            ),
            m("truncated_tcp", truncated_tcp(), drop_reason::TRUNCATED),
            m("truncated_udp", truncated_udp(), drop_reason::TRUNCATED),
            m("truncated_icmp", truncated_icmp(), drop_reason::TRUNCATED),
            m("truncated_ipv6", truncated_ipv6(), drop_reason::TRUNCATED),
            m(
                "truncated_ipv6_ext",
                truncated_ipv6_ext(),
                drop_reason::TRUNCATED,
            ),
            m("truncated_arp", truncated_arp(), drop_reason::TRUNCATED),
            m(
                "ipv6_5_ext",
                udp6_with_ext(5).to_bytes(),
                drop_reason::IPV6_EXT_LIMIT,
            ),
            m(
                "ipv6_8_ext",
                udp6_with_ext(8).to_bytes(),
                drop_reason::IPV6_EXT_LIMIT,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn a_partial_checksum_is_finished_and_others_are_left_alone() {
        let full = Packet::udp4(A, B, ip("10.0.0.1"), ip("10.0.0.2"), 1234, 53).to_bytes();
        // What a sender leaves for offload: the pseudo-header sum in the field.
        let mut pseudo = Checksum::default();
        pseudo.add(&full[26..34]);
        pseudo.add(&[0, 17, 0, 8]);
        let mut partial = full.clone();
        partial[40..42].copy_from_slice(&(!pseudo.finish()).to_be_bytes());
        assert_ne!(partial, full);
        assert!(finish_partial_checksum(&mut partial));
        assert_eq!(partial, full, "finished as the sender's device would");
        let mut same = full.clone();
        assert!(!finish_partial_checksum(&mut same), "a complete checksum");
        assert_eq!(same, full);
        let mut wrong = full.clone();
        wrong[40] ^= 0x55;
        let before = wrong.clone();
        assert!(
            !finish_partial_checksum(&mut wrong),
            "a wrong checksum is kept"
        );
        assert_eq!(wrong, before);
        let mut short = full[..40].to_vec();
        assert!(!finish_partial_checksum(&mut short), "a truncated frame");
    }

    #[test]
    fn udp4_bytes_are_a_valid_frame() {
        let b = Packet::udp4(A, B, ip("10.0.0.1"), ip("10.0.0.2"), 1234, 53).to_bytes();
        assert_eq!(b.len(), MIN_FRAME_LEN);
        assert_eq!(&b[..6], &B, "destination first");
        assert_eq!(&b[6..12], &A);
        assert_eq!(&b[12..14], &[0x08, 0x00]);
        assert_eq!(b[14], 0x45);
        assert_eq!(&b[16..18], &28u16.to_be_bytes(), "total length: 20 + 8");
        let mut sum = Checksum::default();
        sum.add(&b[14..34]);
        assert_eq!(sum.finish(), 0, "IPv4 header checksum verifies");
        let mut udp = Checksum::default();
        udp.add(&b[26..34]); // pseudo-header addresses
        udp.add(&[0, 17, 0, 8]);
        udp.add(&b[34..42]);
        assert_eq!(udp.finish(), 0, "UDP checksum verifies");
        assert_eq!(&b[34..38], &[0x04, 0xd2, 0, 53]);
        assert!(b[42..].iter().all(|x| *x == 0), "zero padding");
    }

    #[test]
    fn icmp6_checksum_verifies() {
        let s: Ipv6Addr = "2001:db8::1".parse().expect("addr");
        let d: Ipv6Addr = "2001:db8::2".parse().expect("addr");
        let b = Packet::icmp6(A, B, s, d, 128, 0).to_bytes_min(0);
        assert_eq!(b.len(), 14 + 40 + 8);
        let mut c = Checksum::default();
        c.add(&b[22..54]);
        c.add(&[0, 0, 0, 8, 0, 0, 0, 58]);
        c.add(&b[54..]);
        assert_eq!(c.finish(), 0);
    }

    #[test]
    fn tagged_frame_layout() {
        let b = Packet::udp4(A, B, ip("10.0.0.1"), ip("10.0.0.2"), 1, 2)
            .with_vlan(0x123, 5)
            .to_bytes_min(0);
        assert_eq!(&b[12..18], &[0x81, 0x00, 0xa1, 0x23, 0x08, 0x00]);
        let p = Packet::parse(&b).expect("parses");
        assert_eq!(p.vlan(), Some(&Vlan::new(0x123, 5)));
    }

    #[test]
    fn padding_is_not_payload() {
        let p = Packet::ethernet(
            A,
            B,
            L3::Ipv4(Ipv4::new(
                ip("1.1.1.1"),
                ip("2.2.2.2"),
                L4::Raw {
                    proto: 50,
                    bytes: vec![1, 2, 3],
                },
            )),
        );
        assert_eq!(Packet::parse(&p.to_bytes()), Ok(p));
    }

    #[test]
    fn arp_round_trip_and_foreign_arp_is_other() {
        let p = Packet::arp_request(A, ip("10.0.0.1"), ip("10.0.0.9"));
        assert_eq!(Packet::parse(&p.to_bytes()), Ok(p.clone()));
        let mut b = p.to_bytes();
        b[15] = 6; // htype 6 (IEEE 802)
        let q = Packet::parse(&b).expect("foreign ARP still parses");
        assert!(matches!(
            q.l3,
            L3::Other {
                ethertype: 0x0806,
                ..
            }
        ));
    }

    #[test]
    fn later_fragments_have_no_transport_header() {
        let mut ip4 = Ipv4::new(ip("1.1.1.1"), ip("2.2.2.2"), L4::Udp { src: 1, dst: 2 });
        ip4.frag_offset = 3;
        let b = Packet::ethernet(A, B, L3::Ipv4(ip4)).to_bytes();
        let L3::Ipv4(got) = Packet::parse(&b).expect("parses").l3 else {
            panic!("not IPv4")
        };
        assert_eq!(got.frag_offset, 3);
        assert!(matches!(got.l4, L4::Raw { proto: 17, ref bytes } if bytes.len() == 8));

        let mut p = malformed::udp6_with_ext(0);
        let L3::Ipv6(ref mut ip6) = p.l3 else {
            unreachable!()
        };
        ip6.ext = vec![Ext::Fragment {
            offset: 0,
            more: true,
        }];
        assert_eq!(
            Packet::parse(&p.to_bytes()),
            Ok(p.clone()),
            "first fragment keeps L4"
        );
        let L3::Ipv6(ref mut ip6) = p.l3 else {
            unreachable!()
        };
        ip6.ext = vec![Ext::Fragment {
            offset: 9,
            more: false,
        }];
        let L3::Ipv6(got) = Packet::parse(&p.to_bytes()).expect("parses").l3 else {
            panic!()
        };
        assert!(matches!(got.l4, L4::Raw { proto: 17, .. }));
    }

    #[test]
    fn ipv6_ext_limit_is_four() {
        for n in 0..=4 {
            let p = malformed::udp6_with_ext(n);
            assert_eq!(Packet::parse(&p.to_bytes()), Ok(p), "{n} extension headers");
        }
        assert_eq!(
            Packet::parse(&malformed::udp6_with_ext(5).to_bytes()),
            Err(ParseError::Ipv6ExtLimit)
        );
    }

    #[test]
    fn malformed_frames_are_what_they_claim() {
        for m in malformed::all() {
            let got = Packet::parse_datapath(&m.frame)
                .map(|_| ())
                .map_err(|e| e.drop_reason());
            assert_eq!(got, Err(m.reason), "{}: {:02x?}", m.name, m.frame);
        }
        assert_eq!(malformed::runt().len(), 13);
        // Stacked frames parse without the datapath's one-tag limit.
        let p = Packet::parse(&malformed::stacked_vlan()).expect("stacked parses");
        assert_eq!(p.vlans.iter().map(|v| v.vid).collect::<Vec<_>>(), [20, 10]);
        let q = Packet::parse(&malformed::stacked_qinq()).expect("qinq parses");
        assert_eq!(q.vlans[0].tpid, TPID_8021AD);
    }

    #[test]
    fn short_ihl_inside_a_large_enough_frame() {
        // IHL 6 reads the UDP ports as options and the UDP length as the source port.
        let b = malformed::ipv4_ihl(6);
        let L3::Ipv4(got) = Packet::parse(&b).expect("parses").l3 else {
            panic!()
        };
        assert_eq!(got.ihl_words, 6);
        assert!(matches!(got.l4, L4::Udp { src: 8, .. }));
    }

    #[test]
    fn parse_never_panics_on_prefixes() {
        let frames = [
            malformed::udp6_with_ext(4).to_bytes_min(0),
            Packet::tcp4(A, B, ip("1.2.3.4"), ip("5.6.7.8"), 1, 2)
                .with_vlan(1, 1)
                .to_bytes(),
            Packet::arp_request(A, ip("1.2.3.4"), ip("5.6.7.8")).to_bytes_min(0),
        ];
        for f in frames {
            for n in 0..=f.len() {
                let _ = Packet::parse(&f[..n]);
                let _ = Packet::parse_datapath(&f[..n]);
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip_unpadded(p in crate::testgen::packet()) {
            prop_assert_eq!(Packet::parse(&p.to_bytes_min(0)), Ok(p));
        }

        #[test]
        fn round_trip_padded(p in crate::testgen::packet()) {
            let padded = p.to_bytes();
            let padding = padded.len() - p.to_bytes_min(0).len();
            let mut want = p;
            // Other's bytes run to the end of the frame, padding included.
            if let L3::Other { bytes, .. } = &mut want.l3 {
                bytes.resize(bytes.len() + padding, 0);
            }
            prop_assert_eq!(Packet::parse(&padded), Ok(want));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Packet::parse(&bytes);
            let _ = Packet::parse_datapath(&bytes);
        }
    }
}

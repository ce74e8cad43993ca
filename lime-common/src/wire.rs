//! Headers LIME puts on the wire or hands to userspace.

use crate::abi_type;

/// Ethertype of LIME's tunnel between physical switches (IEEE 802 local experimental
/// ethertype 1).
pub const ETH_P_LIME: u16 = 0x88b5;
/// First byte of every tunnel header.
pub const TUNNEL_MAGIC: u8 = 0x4c;
/// Tunnelled frames are dropped after this many physical-switch hops.
pub const TUNNEL_MAX_HOPS: u8 = 4;

/// Tunnel header flags.
pub mod tunnel_flags {
    /// The frame was injected by the controller (packet-out) rather than received.
    pub const PACKET_OUT: u8 = 1;
}

/// The tunnel header, after an outer Ethernet header with type [`ETH_P_LIME`] and before
/// the inner frame. Multi-byte fields are big-endian.
///
/// It carries the virtual switch, the virtual ingress port, the virtual egress port the
/// ingress physical switch chose (the receiver delivers, it does not classify again),
/// and the table version the packet was classified with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelHeader {
    /// [`TUNNEL_MAGIC`].
    pub magic: u8,
    /// [`tunnel_flags`].
    pub flags: u8,
    /// Physical-switch hops so far.
    pub hops: u8,
    /// Reserved; zero.
    pub _reserved: u8,
    /// Virtual switch id, big-endian.
    pub vswitch: [u8; 2],
    /// Reserved; zero.
    pub _reserved2: [u8; 2],
    /// Virtual ingress port, big-endian.
    pub in_port: [u8; 4],
    /// Virtual egress port, big-endian (a port number, or FLOOD/ALL/TABLE for packet-out).
    pub out_port: [u8; 4],
    /// Table version the packet was classified with, big-endian.
    pub version: [u8; 4],
}
abi_type!(TunnelHeader, size = 20, align = 1);

/// Packet-in reasons (OpenFlow 1.3 `ofp_packet_in_reason`).
pub mod packet_in_reason {
    /// Table-miss rule (priority 0, all wildcards) sent it.
    pub const NO_MATCH: u8 = 0;
    /// An explicit output-to-controller action.
    pub const ACTION: u8 = 1;
}

/// Metadata the datapath sends with each packet-in (followed by up to `captured` bytes of
/// the frame in the same perf event record).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketInMeta {
    /// Cookie of the rule that sent it.
    pub cookie: u64,
    /// Metadata register at the time.
    pub metadata: u64,
    /// Virtual switch.
    pub vswitch: u16,
    /// Table of the rule.
    pub table: u8,
    /// One of [`packet_in_reason`].
    pub reason: u8,
    /// Virtual ingress port.
    pub in_port: u32,
    /// Rule id that sent it.
    pub rule_id: u32,
    /// Frame length on the wire.
    pub frame_len: u32,
    /// Bytes of the frame that follow this header.
    pub captured: u32,
    /// Table version the packet was classified with.
    pub version: u32,
}
abi_type!(PacketInMeta, size = 40, align = 8);

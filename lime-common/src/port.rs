//! The port maps: which interface belongs to which virtual switch port, and where each
//! virtual port lives.

use crate::abi_type;

/// Kinds of physical port. Never renumbered.
pub mod kind {
    /// Not a LIME port: frames are passed to the kernel stack untouched.
    pub const NONE: u8 = 0;
    /// A port facing a host: frames entering it belong to (`vswitch`, `vport`).
    pub const HOST: u8 = 1;
    /// An underlay link to another physical switch: frames carry a tunnel header.
    pub const UNDERLAY: u8 = 2;
    /// Injection port for packet-out: frames carry a tunnel header naming the virtual
    /// switch, in_port and the output port (see [`crate::wire::TunnelHeader`]).
    pub const INJECT: u8 = 3;
}

/// Bits of [`PortInfo::flags`]. Never renumbered.
pub mod port_flags {
    /// The physical switch runs LIME at TC ingress on its host ports (no XDP program on
    /// them, so GSO/GRO skbs stay whole): the TC program classifies and delivers every
    /// packet arriving there, and XDP on this switch's underlay and injection ports
    /// hands decapsulated frames to TC instead of redirecting them into such a port.
    pub const TC: u8 = 1;
}

/// Value of the port map, keyed by ifindex (`u32`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortInfo {
    /// One of [`kind`].
    pub kind: u8,
    /// [`port_flags`] bits.
    pub flags: u8,
    /// Virtual switch (for host ports).
    pub vswitch: u16,
    /// Virtual port number (for host ports).
    pub vport: u32,
}
abi_type!(PortInfo, size = 8, align = 4);

/// Key of the virtual-port map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VportKey {
    /// Virtual switch.
    pub vswitch: u16,
    /// Padding; always zero.
    pub _pad: u16,
    /// Virtual port number.
    pub vport: u32,
}
abi_type!(VportKey, size = 8, align = 4);

/// Where a virtual port lives, seen from this physical switch. Never renumbered.
pub mod location {
    /// On this physical switch: `ifindex` is the host-facing port.
    pub const LOCAL: u8 = 1;
    /// On another physical switch: `ifindex` is the underlay port towards it.
    pub const REMOTE: u8 = 2;
}

/// Value of the virtual-port map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VportInfo {
    /// One of [`location`].
    pub location: u8,
    /// Padding; always zero.
    pub _pad: [u8; 3],
    /// Interface to send on.
    pub ifindex: u32,
    /// For remote ports: outer Ethernet source (our underlay MAC).
    pub outer_src: [u8; 6],
    /// For remote ports: outer Ethernet destination (the peer's underlay MAC).
    pub outer_dst: [u8; 6],
}
abi_type!(VportInfo, size = 20, align = 4);

/// Most virtual ports a FLOOD/ALL reaches on one virtual switch.
pub const MAX_FLOOD_PORTS: usize = 32;

/// The virtual ports of a virtual switch, for FLOOD and ALL (value of the per-virtual-
/// switch port list, indexed by virtual switch id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VswPorts {
    /// Valid entries of `ports`.
    pub len: u32,
    /// Virtual port numbers.
    pub ports: [u32; MAX_FLOOD_PORTS],
}
abi_type!(VswPorts, size = 4 + 4 * MAX_FLOOD_PORTS, align = 4);

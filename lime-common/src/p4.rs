//! What the P4-16 program `p4/lime.p4` must declare to stay in step with this crate.
//!
//! `p4/lime.p4` is the same pipeline as `lime-ebpf`, for P4 switches (v1model). The
//! layouts and numbers both sides share are declared here once:
//!
//! - the headers that cross the wire or the CPU port, field by field, each field tied to
//!   the Rust struct field it mirrors ([`TUNNEL_HEADER_FIELDS`], [`PACKET_IN_FIELDS`]);
//! - the match fields of the flow tables ([`FLOW_KEY_FIELDS`], tied to [`FlowKey`]);
//! - the P4Runtime names and ids of tables, actions and direct counters ([`TABLES`],
//!   [`ACTIONS`], [`DIRECT_COUNTERS`]), which a control plane writes against;
//! - the numeric constants the program spells out ([`CONSTANTS`]), taken from the
//!   constants of this crate.
//!
//! Two tests keep them honest: the unit tests below check the field lists against the
//! Rust structs (every width adds up to the struct's size, every field starts where
//! `offset_of!` says), and `lime-common/tests/p4_in_step.rs` reads `p4/lime.p4` and checks
//! its declarations against these lists, so a change on either side that forgets the
//! other fails `cargo test -p lime-common`.
//!
//! Ids follow the P4Runtime specification (section 6.3, "ID Allocation for P4Info
//! Objects"): the most significant byte is the entity kind ([`id_prefix`]). They are part
//! of the control-plane ABI: never renumbered, only appended to.

use core::mem::{offset_of, size_of};

use crate::{
    action::{NO_GOTO, port_no},
    flow::{FlowKey, VID_PRESENT},
    limits::{MAX_PACKET_IN_BYTES, MAX_TABLES},
    port::kind,
    stats::drop_reason,
    wire::{
        ETH_P_LIME, PacketInMeta, TUNNEL_MAGIC, TUNNEL_MAX_HOPS, TunnelHeader, packet_in_reason,
        tunnel_flags,
    },
};

/// One field of a P4 header or struct, tied to the Rust field it mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name in the P4 program (the Rust name, without a leading underscore; a
    /// P4 keyword such as `table` gets a suffix: `table_id`).
    pub name: &'static str,
    /// Width in bits in the P4 program.
    pub bits: u32,
    /// Byte offset of the mirrored Rust field (`core::mem::offset_of!`).
    pub offset: usize,
    /// Size in bytes of the mirrored Rust field.
    pub bytes: usize,
}

/// Size of the field a projection function returns, without needing a value.
const fn size_of_field<T, F>(_project: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// A [`Field`] for `$ty.$field`, `$bits` wide in P4, named `$name` there.
macro_rules! field {
    ($ty:ty, $field:ident, $bits:expr) => {
        field!($ty, $field, $bits, stringify!($field))
    };
    ($ty:ty, $field:ident, $bits:expr, $name:expr) => {
        Field {
            name: $name,
            bits: $bits,
            offset: offset_of!($ty, $field),
            bytes: size_of_field(|v: &$ty| &v.$field),
        }
    };
}

/// `header lime_tunnel_t` (and `header lime_packet_out_t`, the same layout: a packet-out
/// arrives on the CPU port with the header an injection port reads): the fields of
/// [`TunnelHeader`] in wire order.
pub const TUNNEL_HEADER_FIELDS: &[Field] = &[
    field!(TunnelHeader, magic, 8),
    field!(TunnelHeader, flags, 8),
    field!(TunnelHeader, hops, 8),
    field!(TunnelHeader, _reserved, 8, "reserved"),
    field!(TunnelHeader, vswitch, 16),
    field!(TunnelHeader, _reserved2, 16, "reserved2"),
    field!(TunnelHeader, in_port, 32),
    field!(TunnelHeader, out_port, 32),
    field!(TunnelHeader, version, 32),
];

/// `header lime_packet_in_t`, the P4Runtime packet-in metadata
/// (`@controller_header("packet_in")`): the fields of [`PacketInMeta`] in order. On the
/// CPU port they are big-endian (P4 headers are); the perf record of `lime-ebpf` carries
/// them in host order.
pub const PACKET_IN_FIELDS: &[Field] = &[
    field!(PacketInMeta, cookie, 64),
    field!(PacketInMeta, metadata, 64),
    field!(PacketInMeta, vswitch, 16),
    field!(PacketInMeta, table, 8, "table_id"),
    field!(PacketInMeta, reason, 8),
    field!(PacketInMeta, in_port, 32),
    field!(PacketInMeta, rule_id, 32),
    field!(PacketInMeta, frame_len, 32),
    field!(PacketInMeta, captured, 32),
    field!(PacketInMeta, version, 32),
];

/// `struct lime_flow_key_t`: the match fields of every flow table, in [`FlowKey`] order
/// (padding left out). P4 widths are the meaningful bits: `vlan_pcp` is 3 bits and
/// `ip_dscp` 6 where the Rust struct spends a byte.
pub const FLOW_KEY_FIELDS: &[Field] = &[
    field!(FlowKey, in_port, 32),
    field!(FlowKey, vlan_vid, 16),
    field!(FlowKey, eth_type, 16),
    field!(FlowKey, eth_dst, 48),
    field!(FlowKey, eth_src, 48),
    field!(FlowKey, vlan_pcp, 3),
    field!(FlowKey, ip_dscp, 6),
    field!(FlowKey, ip_proto, 8),
    field!(FlowKey, nw_src, 128),
    field!(FlowKey, nw_dst, 128),
    field!(FlowKey, tp_src, 16),
    field!(FlowKey, tp_dst, 16),
    field!(FlowKey, metadata, 64),
];

/// P4Runtime id prefixes (the most significant byte of an id: the entity kind).
pub mod id_prefix {
    /// Actions.
    pub const ACTION: u32 = 0x01;
    /// Tables.
    pub const TABLE: u32 = 0x02;
    /// Direct counters.
    pub const DIRECT_COUNTER: u32 = 0x13;
}

/// The P4 tables as P4Runtime sees them (name, id), in declaration order. The flow
/// tables `lime_flow_0` .. `lime_flow_7` are the OpenFlow tables 0..7.
pub const TABLES: &[(&str, u32)] = &[
    ("lime_port_map", 0x0200_0001),
    ("lime_vswitch", 0x0200_0002),
    ("lime_flow_0", 0x0200_0010),
    ("lime_flow_1", 0x0200_0011),
    ("lime_flow_2", 0x0200_0012),
    ("lime_flow_3", 0x0200_0013),
    ("lime_flow_4", 0x0200_0014),
    ("lime_flow_5", 0x0200_0015),
    ("lime_flow_6", 0x0200_0016),
    ("lime_flow_7", 0x0200_0017),
    ("lime_vport", 0x0200_0003),
    ("lime_drop", 0x0200_0004),
    ("lime_egress_vport", 0x0200_0020),
    ("lime_port_tx", 0x0200_0021),
];

/// Name prefix of the flow tables (`lime_flow_<table id>`).
pub const FLOW_TABLE_PREFIX: &str = "lime_flow_";

/// The P4 actions a control plane can name in a table entry (name, id), in declaration
/// order. The steps of a rule (push/pop VLAN, set-field, ...) are actions of the rule
/// control that `lime_rule`'s parameters select; they are not entities of their own.
pub const ACTIONS: &[(&str, u32)] = &[
    ("lime_count", 0x0100_0001),
    ("lime_port_host", 0x0100_0002),
    ("lime_port_underlay", 0x0100_0003),
    ("lime_port_none", 0x0100_0004),
    ("lime_vswitch_set", 0x0100_0005),
    ("lime_vswitch_absent", 0x0100_0006),
    ("lime_rule", 0x0100_0010),
    ("lime_table_miss", 0x0100_0011),
    ("lime_vport_port", 0x0100_0007),
    ("lime_vport_unknown", 0x0100_0008),
    ("lime_tunnel_decap", 0x0100_0020),
    ("lime_tunnel_encap", 0x0100_0021),
    ("lime_egress_unknown", 0x0100_0022),
];

/// The direct counters (name, id), one per table that counts, in declaration order.
pub const DIRECT_COUNTERS: &[(&str, u32)] = &[
    ("lime_port_map_counter", 0x1300_0001),
    ("lime_flow_0_counter", 0x1300_0010),
    ("lime_flow_1_counter", 0x1300_0011),
    ("lime_flow_2_counter", 0x1300_0012),
    ("lime_flow_3_counter", 0x1300_0013),
    ("lime_flow_4_counter", 0x1300_0014),
    ("lime_flow_5_counter", 0x1300_0015),
    ("lime_flow_6_counter", 0x1300_0016),
    ("lime_flow_7_counter", 0x1300_0017),
    ("lime_drop_counter", 0x1300_0004),
    ("lime_port_tx_counter", 0x1300_0021),
];

/// Bits of `lime_rule`'s `ops` parameter: which header changes a rule makes. They run in
/// bit order (lowest first), before the rule's output; OpenFlow action lists that need
/// another order cannot be expressed and are refused by the control plane.
pub mod op {
    /// Pop the outermost VLAN tag ([`crate::action::code::POP_VLAN`]).
    pub const POP_VLAN: u8 = 1;
    /// Push a VLAN tag with TPID `vlan_tpid` ([`crate::action::code::PUSH_VLAN`]).
    pub const PUSH_VLAN: u8 = 2;
    /// Set the outermost VLAN id to `vlan_vid` ([`crate::action::code::SET_VLAN_VID`]).
    pub const SET_VLAN_VID: u8 = 4;
    /// Set the Ethernet destination ([`crate::action::code::SET_ETH_DST`]).
    pub const SET_ETH_DST: u8 = 8;
    /// Set the Ethernet source ([`crate::action::code::SET_ETH_SRC`]).
    pub const SET_ETH_SRC: u8 = 16;
    /// Write `metadata` under `metadata_mask` (write-metadata instruction).
    pub const WRITE_METADATA: u8 = 32;
}

/// Bytes of the packet-in header on the CPU port (`LIME_PACKET_IN_LEN`).
pub const PACKET_IN_LEN: u32 = size_of::<PacketInMeta>() as u32;
/// Bytes of the tunnel (and packet-out) header (`LIME_TUNNEL_LEN`).
pub const TUNNEL_LEN: u32 = size_of::<TunnelHeader>() as u32;

/// Every `const` of `p4/lime.p4` that mirrors a number of this crate: (P4 name, value).
pub const CONSTANTS: &[(&str, u64)] = &[
    ("LIME_ETHERTYPE", ETH_P_LIME as u64),
    ("LIME_TUNNEL_MAGIC", TUNNEL_MAGIC as u64),
    ("LIME_TUNNEL_MAX_HOPS", TUNNEL_MAX_HOPS as u64),
    ("LIME_TUNNEL_F_PACKET_OUT", tunnel_flags::PACKET_OUT as u64),
    ("LIME_TUNNEL_LEN", TUNNEL_LEN as u64),
    ("LIME_PACKET_IN_LEN", PACKET_IN_LEN as u64),
    ("LIME_MAX_PACKET_IN_BYTES", MAX_PACKET_IN_BYTES as u64),
    ("LIME_REASON_ACTION", packet_in_reason::ACTION as u64),
    ("LIME_VID_PRESENT", VID_PRESENT as u64),
    ("LIME_NO_GOTO", NO_GOTO as u64),
    ("LIME_MAX_TABLES", MAX_TABLES as u64),
    ("LIME_PORT_NONE", kind::NONE as u64),
    ("LIME_PORT_HOST", kind::HOST as u64),
    ("LIME_PORT_UNDERLAY", kind::UNDERLAY as u64),
    ("LIME_PORT_INJECT", kind::INJECT as u64),
    ("LIME_OFPP_MAX", port_no::MAX as u64),
    ("LIME_OFPP_IN_PORT", port_no::IN_PORT as u64),
    ("LIME_OFPP_TABLE", port_no::TABLE as u64),
    ("LIME_OFPP_FLOOD", port_no::FLOOD as u64),
    ("LIME_OFPP_ALL", port_no::ALL as u64),
    ("LIME_OFPP_CONTROLLER", port_no::CONTROLLER as u64),
    ("LIME_OFPP_ANY", port_no::ANY as u64),
    ("LIME_OP_POP_VLAN", op::POP_VLAN as u64),
    ("LIME_OP_PUSH_VLAN", op::PUSH_VLAN as u64),
    ("LIME_OP_SET_VLAN_VID", op::SET_VLAN_VID as u64),
    ("LIME_OP_SET_ETH_DST", op::SET_ETH_DST as u64),
    ("LIME_OP_SET_ETH_SRC", op::SET_ETH_SRC as u64),
    ("LIME_OP_WRITE_METADATA", op::WRITE_METADATA as u64),
    ("LIME_DROP_RUNT", drop_reason::RUNT as u64),
    ("LIME_DROP_TRUNCATED", drop_reason::TRUNCATED as u64),
    ("LIME_DROP_BAD_IHL", drop_reason::BAD_IHL as u64),
    ("LIME_DROP_VLAN_STACKED", drop_reason::VLAN_STACKED as u64),
    (
        "LIME_DROP_IPV6_EXT_LIMIT",
        drop_reason::IPV6_EXT_LIMIT as u64,
    ),
    ("LIME_DROP_TABLE_MISS", drop_reason::TABLE_MISS as u64),
    ("LIME_DROP_NO_OUTPUT", drop_reason::NO_OUTPUT as u64),
    ("LIME_DROP_BAD_OUTPUT", drop_reason::BAD_OUTPUT as u64),
    ("LIME_DROP_BAD_TUNNEL", drop_reason::BAD_TUNNEL as u64),
    ("LIME_DROP_TUNNEL_LOOP", drop_reason::TUNNEL_LOOP as u64),
    ("LIME_DROP_HELPER_FAILED", drop_reason::HELPER_FAILED as u64),
    ("LIME_DROP_BAD_GOTO", drop_reason::BAD_GOTO as u64),
    ("LIME_DROP_NO_VSWITCH", drop_reason::NO_VSWITCH as u64),
    ("LIME_DROP_HAIRPIN", drop_reason::HAIRPIN as u64),
    (
        "LIME_DROP_NEEDS_SKB_PATH",
        drop_reason::NEEDS_SKB_PATH as u64,
    ),
    ("LIME_DROP_BAD_ACTION", drop_reason::BAD_ACTION as u64),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A header's fields must tile the struct exactly: each starts where the widths
    /// before it end, each is as wide as the Rust field, and the widths add up to the
    /// struct's size.
    fn assert_tiles(fields: &[Field], size: usize, what: &str) {
        let mut bits = 0u32;
        for f in fields {
            assert_eq!(bits % 8, 0, "{what}.{}: starts inside a byte", f.name);
            assert_eq!(
                (bits / 8) as usize,
                f.offset,
                "{what}.{}: P4 widths put it at byte {}, the Rust struct at {}",
                f.name,
                bits / 8,
                f.offset
            );
            assert_eq!(
                f.bits as usize,
                f.bytes * 8,
                "{what}.{}: {} bits in P4, {} bytes in Rust",
                f.name,
                f.bits,
                f.bytes
            );
            bits += f.bits;
        }
        assert_eq!(
            bits as usize,
            size * 8,
            "{what}: widths add up to {bits} bits"
        );
    }

    #[test]
    fn tunnel_header_fields_tile_the_struct() {
        assert_tiles(
            TUNNEL_HEADER_FIELDS,
            size_of::<TunnelHeader>(),
            "TunnelHeader",
        );
        assert_eq!(TUNNEL_LEN, 20);
    }

    #[test]
    fn packet_in_fields_tile_the_struct() {
        assert_tiles(PACKET_IN_FIELDS, size_of::<PacketInMeta>(), "PacketInMeta");
        assert_eq!(PACKET_IN_LEN, 40);
    }

    #[test]
    fn flow_key_fields_fit_their_rust_fields() {
        let mut last_end = 0;
        for f in FLOW_KEY_FIELDS {
            assert!(
                f.offset >= last_end,
                "FlowKey.{}: out of order or overlapping",
                f.name
            );
            assert!(
                f.bits as usize <= f.bytes * 8,
                "FlowKey.{}: {} bits do not fit {} bytes",
                f.name,
                f.bits,
                f.bytes
            );
            // Multi-byte fields hold whole bytes; only single-byte fields narrow.
            if f.bytes > 1 {
                assert_eq!(f.bits as usize, f.bytes * 8, "FlowKey.{}", f.name);
            }
            last_end = f.offset + f.bytes;
        }
        // Every field but the padding is matched.
        let matched: usize = FLOW_KEY_FIELDS.iter().map(|f| f.bytes).sum();
        assert_eq!(matched + 1 + 4, size_of::<FlowKey>(), "FlowKey fields");
    }

    #[test]
    fn ids_carry_their_kind_and_are_unique() {
        let groups: [(&[(&str, u32)], u32); 3] = [
            (TABLES, id_prefix::TABLE),
            (ACTIONS, id_prefix::ACTION),
            (DIRECT_COUNTERS, id_prefix::DIRECT_COUNTER),
        ];
        for (list, prefix) in groups {
            for (i, (name, id)) in list.iter().enumerate() {
                assert_eq!(id >> 24, prefix, "{name}: id {id:#x} has the wrong prefix");
                for (other, other_id) in &list[i + 1..] {
                    assert_ne!(name, other, "{name} listed twice");
                    assert_ne!(id, other_id, "{name} and {other} share id {id:#x}");
                }
            }
        }
        let flow_tables = TABLES
            .iter()
            .filter(|(n, _)| n.starts_with(FLOW_TABLE_PREFIX))
            .count();
        assert_eq!(flow_tables, MAX_TABLES, "one P4 table per OpenFlow table");
    }

    #[test]
    fn constant_names_are_unique() {
        for (i, (name, _)) in CONSTANTS.iter().enumerate() {
            assert!(
                CONSTANTS[i + 1..].iter().all(|(n, _)| n != name),
                "{name} listed twice"
            );
        }
    }
}

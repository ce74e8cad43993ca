//! A rule's instructions, compiled by userspace into a fixed-size program the datapath
//! runs: apply-actions (in order), then write-metadata, then goto-table.

use crate::{abi_type, limits::MAX_ACTIONS};

/// Action codes. Never renumbered.
pub mod code {
    /// Empty slot (never executed; `len` bounds the list).
    pub const NONE: u16 = 0;
    /// Output to `arg32` (a virtual port or a reserved port from [`super::port_no`]);
    /// for the controller port `arg16` is `max_len`.
    pub const OUTPUT: u16 = 1;
    /// Set the Ethernet destination to `data[0..6]`.
    pub const SET_ETH_DST: u16 = 2;
    /// Set the Ethernet source to `data[0..6]`.
    pub const SET_ETH_SRC: u16 = 3;
    /// Set the VLAN id of the outermost tag to `arg16 & 0x0fff`.
    pub const SET_VLAN_VID: u16 = 4;
    /// Push a VLAN tag with TPID `arg16` (0x8100 or 0x88a8).
    pub const PUSH_VLAN: u16 = 5;
    /// Pop the outermost VLAN tag.
    pub const POP_VLAN: u16 = 6;
}

/// OpenFlow 1.3 reserved port numbers (spec 7.2.1, `enum ofp_port_no`).
pub mod port_no {
    /// Highest ordinary port number.
    pub const MAX: u32 = 0xffff_ff00;
    /// Send back out of the ingress port.
    pub const IN_PORT: u32 = 0xffff_fff8;
    /// Run through the flow tables (packet-out only).
    pub const TABLE: u32 = 0xffff_fff9;
    /// Traditional L2 processing (unsupported).
    pub const NORMAL: u32 = 0xffff_fffa;
    /// All ports except the ingress port.
    pub const FLOOD: u32 = 0xffff_fffb;
    /// All ports except the ingress port.
    pub const ALL: u32 = 0xffff_fffc;
    /// To the controller as a packet-in.
    pub const CONTROLLER: u32 = 0xffff_fffd;
    /// The switch's local port (unsupported).
    pub const LOCAL: u32 = 0xffff_fffe;
    /// Wildcard port, for filters.
    pub const ANY: u32 = 0xffff_ffff;
}

/// One action.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Action {
    /// One of [`code`].
    pub code: u16,
    /// Small argument (max_len, VLAN id, TPID).
    pub arg16: u16,
    /// Port argument.
    pub arg32: u32,
    /// Field value (MAC addresses).
    pub data: [u8; 8],
}
abi_type!(Action, size = 16, align = 4);

/// `goto_table` value meaning "no goto: the pipeline ends after this rule".
pub const NO_GOTO: u8 = 0xff;

/// Flags of a [`RuleProgram`].
pub mod flags {
    /// The program has a write-metadata instruction.
    pub const WRITE_METADATA: u8 = 1;
    /// The program outputs more than one copy (FLOOD, ALL, or several outputs): only the
    /// skb (TC) path can execute it.
    pub const MULTI_OUTPUT: u8 = 2;
    /// The rule counts no packets (OFPFF_NO_PKT_COUNTS) — informational.
    pub const NO_PKT_COUNTS: u8 = 4;
    /// The rule counts no bytes (OFPFF_NO_BYT_COUNTS) — informational.
    pub const NO_BYT_COUNTS: u8 = 8;
}

/// A compiled rule: what happens to a packet that matched it. Indexed by rule id; a rule
/// id's program is written before the rule becomes visible and never changes while
/// visible (a modify installs a new rule id in a new version).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleProgram {
    /// OpenFlow cookie (copied into packet-ins).
    pub cookie: u64,
    /// write-metadata value.
    pub metadata: u64,
    /// write-metadata mask.
    pub metadata_mask: u64,
    /// Number of valid `actions`.
    pub len: u8,
    /// Next table, or [`NO_GOTO`].
    pub goto_table: u8,
    /// [`flags`].
    pub flags: u8,
    /// Table this rule lives in (for packet-in metadata).
    pub table: u8,
    /// Number of output actions (of any port kind) in `actions`.
    pub outputs: u8,
    /// Padding; always zero.
    pub _pad: [u8; 3],
    /// Apply-actions list.
    pub actions: [Action; MAX_ACTIONS],
}
abi_type!(RuleProgram, size = 8 * 3 + 8 + 16 * MAX_ACTIONS, align = 8);

impl Default for RuleProgram {
    fn default() -> Self {
        Self {
            cookie: 0,
            metadata: 0,
            metadata_mask: 0,
            len: 0,
            goto_table: NO_GOTO,
            flags: 0,
            table: 0,
            outputs: 0,
            _pad: [0; 3],
            actions: [Action::default(); MAX_ACTIONS],
        }
    }
}

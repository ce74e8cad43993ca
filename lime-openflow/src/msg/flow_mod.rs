//! `OFPT_FLOW_MOD` (`struct ofp_flow_mod`, spec 7.3.4).
//!
//! ```text
//! cookie u64 | cookie_mask u64 | table_id u8 | command u8 | idle_timeout u16 | hard_timeout u16
//! | priority u16 | buffer_id u32 | out_port u32 | out_group u32 | flags u16 | pad[2]
//! | match (padded) | instructions
//! ```

use bytes::{BufMut, Bytes};

use crate::action::DATAPATH_SETTABLE;
use crate::consts::{
    FlowModCommand, OFP_NO_BUFFER, OxmFieldId, flow_mod_flags, group, port, table,
};
use crate::error::{DecodeError, Structure};
use crate::instruction::{Instruction, decode_instructions, encode_instructions};
use crate::oxm::Match;
use crate::wire::Reader;

/// A flow table modification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowMod {
    /// Opaque controller-issued identifier.
    pub cookie: u64,
    /// For modify/delete: only entries whose `cookie & cookie_mask` equals `cookie & cookie_mask`.
    pub cookie_mask: u64,
    /// Table to modify; `OFPTT_ALL` only for deletes.
    pub table_id: u8,
    /// What to do.
    pub command: FlowModCommand,
    /// Idle time before discarding (seconds), 0 = never.
    pub idle_timeout: u16,
    /// Max time before discarding (seconds), 0 = never.
    pub hard_timeout: u16,
    /// Priority (higher wins).
    pub priority: u16,
    /// Buffered packet to apply to, or `OFP_NO_BUFFER`.
    pub buffer_id: u32,
    /// For delete: only entries outputting to this port (`OFPP_ANY` = any).
    pub out_port: u32,
    /// For delete: only entries outputting to this group (`OFPG_ANY` = any).
    pub out_group: u32,
    /// `OFPFF_*` bitmap.
    pub flags: u16,
    /// Fields to match.
    pub r#match: Match,
    /// Instruction set.
    pub instructions: Vec<Instruction>,
}

impl Default for FlowMod {
    /// An `OFPFC_ADD` into table 0 with the conventional defaults
    /// (priority 0x8000, no buffer, any port/group).
    fn default() -> Self {
        Self {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 0x8000,
            buffer_id: OFP_NO_BUFFER,
            out_port: port::ANY,
            out_group: group::ANY,
            flags: 0,
            r#match: Match::all(),
            instructions: Vec::new(),
        }
    }
}

impl FlowMod {
    /// Whether the command adds or modifies (needs one real table).
    #[must_use]
    pub const fn is_add_or_modify(&self) -> bool {
        matches!(
            self.command,
            FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
        )
    }

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPFMFC_BAD_COMMAND`, `OFPFMFC_BAD_FLAGS`, `OFPFMFC_BAD_TABLE_ID`,
    /// `OFPBIC_BAD_TABLE_ID` (goto to a non-later table), and any match,
    /// instruction, action or length error.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let table_id = r.u8()?;
        let raw_command = r.u8()?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let priority = r.u16()?;
        let buffer_id = r.u32()?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        let flags = r.u16()?;
        r.skip(2)?;
        // Spec A.3.4.1: the five commands of enum ofp_flow_mod_command.
        let command = FlowModCommand::from_raw(raw_command).ok_or(DecodeError::BadCommand {
            command: raw_command,
        })?;
        // Spec A.3.4.1: enum ofp_flow_mod_flags defines five bits.
        if flags & !flow_mod_flags::ALL != 0 {
            return Err(DecodeError::BadFlowModFlags { flags });
        }
        let r#match = Match::decode(&mut r)?;
        let instructions = decode_instructions(r.rest())?;
        let fm = Self {
            cookie,
            cookie_mask,
            table_id,
            command,
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id,
            out_port,
            out_group,
            flags,
            r#match,
            instructions,
        };
        fm.check_tables()?;
        Ok(fm)
    }

    /// Table-id rules that need no switch state.
    fn check_tables(&self) -> Result<(), DecodeError> {
        if !self.is_add_or_modify() {
            return Ok(());
        }
        // Spec A.3.4.1: "For OFPFC_DELETE_* commands, OFPTT_ALL can also be
        // used" – so not for add/modify.
        if self.table_id == table::ALL {
            return Err(DecodeError::BadFlowModTableId {
                table_id: self.table_id,
            });
        }
        // Spec 5.1: "the next table id must be greater than the current table id"
        // (OFPBIC_BAD_TABLE_ID, spec 7.2.4 "Goto-Table").
        for i in &self.instructions {
            if let Instruction::GotoTable { table_id } = *i
                && table_id <= self.table_id
            {
                return Err(DecodeError::BadGotoTable { table_id });
            }
        }
        Ok(())
    }

    /// Whether the LIME datapath can install this flow: every instruction
    /// and action supported, set-field only on `settable` fields (usually
    /// [`DATAPATH_SETTABLE`]).
    ///
    /// # Errors
    ///
    /// `OFPBIC_UNSUP_INST`, `OFPBAC_BAD_TYPE`, `OFPBAC_BAD_SET_TYPE`.
    pub fn check_supported(&self, settable: &[OxmFieldId]) -> Result<(), DecodeError> {
        self.instructions
            .iter()
            .try_for_each(|i| i.check_supported(settable))
    }

    /// [`FlowMod::check_supported`] with [`DATAPATH_SETTABLE`].
    ///
    /// # Errors
    ///
    /// As [`FlowMod::check_supported`].
    pub fn check_datapath_supported(&self) -> Result<(), DecodeError> {
        self.check_supported(DATAPATH_SETTABLE)
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u64(self.cookie);
        dst.put_u64(self.cookie_mask);
        dst.put_u8(self.table_id);
        dst.put_u8(self.command.to_raw());
        dst.put_u16(self.idle_timeout);
        dst.put_u16(self.hard_timeout);
        dst.put_u16(self.priority);
        dst.put_u32(self.buffer_id);
        dst.put_u32(self.out_port);
        dst.put_u32(self.out_group);
        dst.put_u16(self.flags);
        dst.put_bytes(0, 2);
        self.r#match.encode(dst);
        encode_instructions(&self.instructions, dst);
    }
}

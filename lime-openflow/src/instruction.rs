//! Instructions (`struct ofp_instruction_*`, spec 7.2.4, A.2.4).
//!
//! Each instruction is `type: u16, len: u16, ...` with `len` a multiple of 8.
//! All seven instruction types decode and encode; the LIME switch executes
//! `GOTO_TABLE`, `WRITE_METADATA` and `APPLY_ACTIONS` only, which
//! [`Instruction::check_supported`] enforces (`OFPBIC_UNSUP_INST`).

use bytes::{BufMut, Bytes};

use crate::action::{Action, decode_actions, encode_actions};
use crate::consts::{InstructionType, OxmFieldId};
use crate::error::{DecodeError, Structure};
use crate::wire::{Padding, Tlv, Tlvs, put_tlv};

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Instruction {
    /// `OFPIT_GOTO_TABLE`: continue in a later table.
    GotoTable {
        /// Next table.
        table_id: u8,
    },
    /// `OFPIT_WRITE_METADATA`: `metadata = (metadata & !mask) | (value & mask)`.
    WriteMetadata {
        /// Value to write.
        metadata: u64,
        /// Bits to write.
        mask: u64,
    },
    /// `OFPIT_WRITE_ACTIONS` (decoded; unsupported by the datapath).
    WriteActions(Vec<Action>),
    /// `OFPIT_APPLY_ACTIONS`: execute the actions now.
    ApplyActions(Vec<Action>),
    /// `OFPIT_CLEAR_ACTIONS` (decoded; unsupported by the datapath).
    ClearActions,
    /// `OFPIT_METER` (decoded; unsupported).
    Meter {
        /// Meter id.
        meter_id: u32,
    },
    /// `OFPIT_EXPERIMENTER` (decoded; unsupported).
    Experimenter {
        /// Experimenter id.
        experimenter: u32,
        /// Experimenter-defined bytes (padding included).
        data: Bytes,
    },
}

impl Instruction {
    /// The instruction type.
    #[must_use]
    pub const fn instruction_type(&self) -> InstructionType {
        match self {
            Self::GotoTable { .. } => InstructionType::GotoTable,
            Self::WriteMetadata { .. } => InstructionType::WriteMetadata,
            Self::WriteActions(_) => InstructionType::WriteActions,
            Self::ApplyActions(_) => InstructionType::ApplyActions,
            Self::ClearActions => InstructionType::ClearActions,
            Self::Meter { .. } => InstructionType::Meter,
            Self::Experimenter { .. } => InstructionType::Experimenter,
        }
    }

    /// Whether the LIME datapath can execute this instruction and its actions.
    ///
    /// # Errors
    ///
    /// `OFPBIC_UNSUP_INST` for write-actions, clear-actions, meter and
    /// experimenter; action errors from [`Action::check_supported`].
    pub fn check_supported(&self, settable: &[OxmFieldId]) -> Result<(), DecodeError> {
        match self {
            Self::GotoTable { .. } | Self::WriteMetadata { .. } => Ok(()),
            Self::ApplyActions(actions) => {
                actions.iter().try_for_each(|a| a.check_supported(settable))
            }
            Self::WriteActions(_)
            | Self::ClearActions
            | Self::Meter { .. }
            | Self::Experimenter { .. } => Err(DecodeError::UnsupportedInstruction {
                instruction_type: self.instruction_type().to_raw(),
            }),
        }
    }

    fn decode_tlv(tlv: Tlv) -> Result<Self, DecodeError> {
        let Tlv { typ, mut body } = tlv;
        let Some(kind) = InstructionType::from_raw(typ) else {
            return Err(DecodeError::UnknownInstruction {
                instruction_type: typ,
            });
        };
        let expect = |len: usize| {
            if body.remaining() + 4 == len {
                Ok(())
            } else {
                Err(DecodeError::bad_len(
                    Structure::Instruction,
                    body.remaining() + 4,
                    "wrong length for instruction",
                ))
            }
        };
        Ok(match kind {
            InstructionType::GotoTable => {
                expect(8)?;
                Self::GotoTable {
                    table_id: body.u8()?,
                }
            }
            InstructionType::WriteMetadata => {
                expect(24)?;
                body.skip(4)?;
                Self::WriteMetadata {
                    metadata: body.u64()?,
                    mask: body.u64()?,
                }
            }
            InstructionType::WriteActions | InstructionType::ApplyActions => {
                body.skip(4)?;
                let actions = decode_actions(body.rest())?;
                if kind == InstructionType::WriteActions {
                    Self::WriteActions(actions)
                } else {
                    Self::ApplyActions(actions)
                }
            }
            InstructionType::ClearActions => {
                expect(8)?;
                Self::ClearActions
            }
            InstructionType::Meter => {
                expect(8)?;
                Self::Meter {
                    meter_id: body.u32()?,
                }
            }
            InstructionType::Experimenter => Self::Experimenter {
                experimenter: body.u32()?,
                data: body.rest(),
            },
        })
    }

    /// Writes the instruction.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        put_tlv(
            dst,
            self.instruction_type().to_raw(),
            Padding::Included,
            |b| match self {
                Self::GotoTable { table_id } => {
                    b.put_u8(*table_id);
                    b.put_bytes(0, 3);
                }
                Self::WriteMetadata { metadata, mask } => {
                    b.put_bytes(0, 4);
                    b.put_u64(*metadata);
                    b.put_u64(*mask);
                }
                Self::WriteActions(actions) | Self::ApplyActions(actions) => {
                    b.put_bytes(0, 4);
                    encode_actions(actions, b);
                }
                Self::ClearActions => b.put_bytes(0, 4),
                Self::Meter { meter_id } => b.put_u32(*meter_id),
                Self::Experimenter { experimenter, data } => {
                    b.put_u32(*experimenter);
                    b.put_slice(data);
                }
            },
        );
    }
}

/// Decodes an instruction list (the tail of FLOW_MOD and flow stats).
pub(crate) fn decode_instructions(buf: Bytes) -> Result<Vec<Instruction>, DecodeError> {
    Tlvs::new(buf, Structure::Instruction, Padding::Included, 8)
        .map(|tlv| tlv.and_then(Instruction::decode_tlv))
        .collect()
}

/// Encodes an instruction list.
pub(crate) fn encode_instructions<B: BufMut>(instructions: &[Instruction], dst: &mut B) {
    for i in instructions {
        i.encode(dst);
    }
}

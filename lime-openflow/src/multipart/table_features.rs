//! `OFPMP_TABLE_FEATURES` (`struct ofp_table_features`, spec 7.3.5.5).
//!
//! ```text
//! length u16 | table_id u8 | pad[5] | name[32] | metadata_match u64 | metadata_write u64
//! | config u32 | max_entries u32 | properties
//! property: type u16 | length u16 (excl. padding) | data | pad to 8
//! ```
//!
//! Instruction and action ids are 4 bytes each (`type u16 | len u16 = 4`;
//! spec 7.3.5.5.2: non-experimenter ids "are 4 bytes"); OXM ids are 32-bit
//! OXM headers; next-table ids are bytes. Experimenter instruction/action
//! ids (8 bytes) are rejected with `OFPTFFC_BAD_LEN`.

use bytes::{BufMut, Bytes};

use crate::consts::{OFP_MAX_TABLE_NAME_LEN, TableFeaturePropType as P};
use crate::error::{DecodeError, Structure};
use crate::oxm::OxmHeader;
use crate::wire::{Padding, Reader, Tlvs, len16, put_string, put_tlv, scratch};

/// One table-feature property.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableFeatureProp {
    /// `OFPTFPT_INSTRUCTIONS[_MISS]`: instruction types supported.
    Instructions {
        /// `_MISS` variant (applies to the table-miss entry).
        miss: bool,
        /// Instruction types.
        ids: Vec<u16>,
    },
    /// `OFPTFPT_NEXT_TABLES[_MISS]`: tables reachable by goto-table.
    NextTables {
        /// `_MISS` variant.
        miss: bool,
        /// Table ids.
        tables: Vec<u8>,
    },
    /// `OFPTFPT_WRITE_ACTIONS[_MISS]`: action types for write-actions.
    WriteActions {
        /// `_MISS` variant.
        miss: bool,
        /// Action types.
        ids: Vec<u16>,
    },
    /// `OFPTFPT_APPLY_ACTIONS[_MISS]`: action types for apply-actions.
    ApplyActions {
        /// `_MISS` variant.
        miss: bool,
        /// Action types.
        ids: Vec<u16>,
    },
    /// `OFPTFPT_MATCH`: fields that can be matched.
    Match(Vec<OxmHeader>),
    /// `OFPTFPT_WILDCARDS`: fields that can be wildcarded.
    Wildcards(Vec<OxmHeader>),
    /// `OFPTFPT_WRITE_SETFIELD[_MISS]`: fields settable by write-actions.
    WriteSetfield {
        /// `_MISS` variant.
        miss: bool,
        /// Fields.
        fields: Vec<OxmHeader>,
    },
    /// `OFPTFPT_APPLY_SETFIELD[_MISS]`: fields settable by apply-actions.
    ApplySetfield {
        /// `_MISS` variant.
        miss: bool,
        /// Fields.
        fields: Vec<OxmHeader>,
    },
    /// `OFPTFPT_EXPERIMENTER[_MISS]`.
    Experimenter {
        /// `_MISS` variant.
        miss: bool,
        /// Experimenter id.
        experimenter: u32,
        /// Experimenter type.
        exp_type: u32,
        /// Experimenter data (without padding).
        data: Bytes,
    },
}

const fn pick(miss: bool, hit: P, missed: P) -> P {
    if miss { missed } else { hit }
}

impl TableFeatureProp {
    /// The property type.
    #[must_use]
    pub const fn prop_type(&self) -> P {
        match self {
            Self::Instructions { miss, .. } => pick(*miss, P::Instructions, P::InstructionsMiss),
            Self::NextTables { miss, .. } => pick(*miss, P::NextTables, P::NextTablesMiss),
            Self::WriteActions { miss, .. } => pick(*miss, P::WriteActions, P::WriteActionsMiss),
            Self::ApplyActions { miss, .. } => pick(*miss, P::ApplyActions, P::ApplyActionsMiss),
            Self::Match(_) => P::Match,
            Self::Wildcards(_) => P::Wildcards,
            Self::WriteSetfield { miss, .. } => pick(*miss, P::WriteSetfield, P::WriteSetfieldMiss),
            Self::ApplySetfield { miss, .. } => pick(*miss, P::ApplySetfield, P::ApplySetfieldMiss),
            Self::Experimenter { miss, .. } => pick(*miss, P::Experimenter, P::ExperimenterMiss),
        }
    }

    fn decode(typ: u16, mut r: Reader) -> Result<Self, DecodeError> {
        let kind = P::from_raw(typ).ok_or(DecodeError::BadTableFeatureProp { prop_type: typ })?;
        let ids = |r: &mut Reader| -> Result<Vec<u16>, DecodeError> {
            let mut v = Vec::new();
            while !r.is_empty() {
                v.push(r.u16()?);
                let len = r.u16()?;
                if len != 4 {
                    return Err(DecodeError::bad_len(
                        Structure::TableFeatures,
                        len.into(),
                        "id length is not 4",
                    ));
                }
            }
            Ok(v)
        };
        let oxms = |r: &mut Reader| -> Result<Vec<OxmHeader>, DecodeError> {
            let mut v = Vec::new();
            while !r.is_empty() {
                v.push(OxmHeader(r.u32()?));
            }
            Ok(v)
        };
        let miss = matches!(
            kind,
            P::InstructionsMiss
                | P::NextTablesMiss
                | P::WriteActionsMiss
                | P::ApplyActionsMiss
                | P::WriteSetfieldMiss
                | P::ApplySetfieldMiss
                | P::ExperimenterMiss
        );
        Ok(match kind {
            P::Instructions | P::InstructionsMiss => Self::Instructions {
                miss,
                ids: ids(&mut r)?,
            },
            P::NextTables | P::NextTablesMiss => Self::NextTables {
                miss,
                tables: r.rest().to_vec(),
            },
            P::WriteActions | P::WriteActionsMiss => Self::WriteActions {
                miss,
                ids: ids(&mut r)?,
            },
            P::ApplyActions | P::ApplyActionsMiss => Self::ApplyActions {
                miss,
                ids: ids(&mut r)?,
            },
            P::Match => Self::Match(oxms(&mut r)?),
            P::Wildcards => Self::Wildcards(oxms(&mut r)?),
            P::WriteSetfield | P::WriteSetfieldMiss => Self::WriteSetfield {
                miss,
                fields: oxms(&mut r)?,
            },
            P::ApplySetfield | P::ApplySetfieldMiss => Self::ApplySetfield {
                miss,
                fields: oxms(&mut r)?,
            },
            P::Experimenter | P::ExperimenterMiss => Self::Experimenter {
                miss,
                experimenter: r.u32()?,
                exp_type: r.u32()?,
                data: r.rest(),
            },
        })
    }

    /// Writes the property, padded to 8 bytes.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        let put_ids = |b: &mut bytes::BytesMut, ids: &[u16]| {
            for id in ids {
                b.put_u16(*id);
                b.put_u16(4);
            }
        };
        let put_oxms =
            |b: &mut bytes::BytesMut, oxms: &[OxmHeader]| oxms.iter().for_each(|h| b.put_u32(h.0));
        put_tlv(
            dst,
            self.prop_type().to_raw(),
            Padding::Excluded,
            |b| match self {
                Self::Instructions { ids, .. }
                | Self::WriteActions { ids, .. }
                | Self::ApplyActions { ids, .. } => {
                    put_ids(b, ids);
                }
                Self::NextTables { tables, .. } => b.put_slice(tables),
                Self::Match(f) | Self::Wildcards(f) => put_oxms(b, f),
                Self::WriteSetfield { fields, .. } | Self::ApplySetfield { fields, .. } => {
                    put_oxms(b, fields)
                }
                Self::Experimenter {
                    experimenter,
                    exp_type,
                    data,
                    ..
                } => {
                    b.put_u32(*experimenter);
                    b.put_u32(*exp_type);
                    b.put_slice(data);
                }
            },
        );
    }
}

/// Features of one flow table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TableFeatures {
    /// Table id.
    pub table_id: u8,
    /// Name (at most 31 bytes on the wire).
    pub name: String,
    /// Bits of metadata the table can match.
    pub metadata_match: u64,
    /// Bits of metadata the table can write.
    pub metadata_write: u64,
    /// `OFPTC_*` bitmap (deprecated, 0).
    pub config: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
    /// Properties.
    pub properties: Vec<TableFeatureProp>,
}

impl TableFeatures {
    /// Decodes one record; `r` holds it without its `length` field.
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let table_id = r.u8()?;
        r.skip(5)?;
        let name = r.string::<OFP_MAX_TABLE_NAME_LEN>()?;
        let metadata_match = r.u64()?;
        let metadata_write = r.u64()?;
        let config = r.u32()?;
        let max_entries = r.u32()?;
        let properties = Tlvs::new(r.rest(), Structure::TableFeatures, Padding::Excluded, 4)
            .map(|tlv| tlv.and_then(|t| TableFeatureProp::decode(t.typ, t.body)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            table_id,
            name,
            metadata_match,
            metadata_write,
            config,
            max_entries,
            properties,
        })
    }

    /// Writes the record, `length` included.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        let body = scratch(|b| {
            b.put_u8(self.table_id);
            b.put_bytes(0, 5);
            put_string(b, &self.name, OFP_MAX_TABLE_NAME_LEN);
            b.put_u64(self.metadata_match);
            b.put_u64(self.metadata_write);
            b.put_u32(self.config);
            b.put_u32(self.max_entries);
            self.properties.iter().for_each(|p| p.encode(b));
        });
        dst.put_u16(len16(2 + body.len()));
        dst.put_slice(&body);
    }
}

/// Decodes a list of `ofp_table_features` records.
pub(crate) fn decode_list(r: &mut Reader) -> Result<Vec<TableFeatures>, DecodeError> {
    super::decode_length_prefixed(r, Structure::TableFeatures, TableFeatures::decode)
}

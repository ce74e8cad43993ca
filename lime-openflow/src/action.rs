//! Actions (`struct ofp_action_*`, spec 7.2.5, A.2.5).
//!
//! Every action starts with `type: u16, len: u16`; `len` includes padding
//! and is a multiple of 8. The LIME datapath implements `OUTPUT`,
//! `SET_FIELD` (of [`DATAPATH_SETTABLE`] fields), `PUSH_VLAN` and
//! `POP_VLAN`. Everything else decodes into [`Action::Unsupported`] with its
//! raw body, so that it can be re-encoded and so that the switch answers it
//! with `OFPBAC_BAD_TYPE` via [`Action::check_supported`] – nothing is
//! silently dropped.

use bytes::{BufMut, Bytes};

use crate::consts::{ActionType, OxmFieldId, ethertype, port};
use crate::error::{DecodeError, Structure};
use crate::oxm::OxmField;
use crate::wire::{Padding, Reader, Tlv, Tlvs, pad8, put_tlv};

/// Fields the LIME datapath can rewrite with `SET_FIELD`.
pub const DATAPATH_SETTABLE: &[OxmFieldId] =
    &[OxmFieldId::EthSrc, OxmFieldId::EthDst, OxmFieldId::VlanVid];

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `OFPAT_OUTPUT`: send out `port` (a number or one of [`crate::consts::port`]).
    Output {
        /// Output port.
        port: u32,
        /// Bytes to send to the controller when `port` is `CONTROLLER`
        /// (`OFPCML_NO_BUFFER` = whole packet, unbuffered).
        max_len: u16,
    },
    /// `OFPAT_SET_FIELD`: rewrite one header field (no mask in 1.3).
    SetField(OxmField),
    /// `OFPAT_PUSH_VLAN` with ethertype 0x8100 or 0x88a8.
    PushVlan {
        /// Ethertype of the new tag.
        ethertype: u16,
    },
    /// `OFPAT_POP_VLAN`.
    PopVlan,
    /// Any other action type, kept raw so it can be reported and re-encoded.
    Unsupported {
        /// `ofp_action_header.type`.
        action_type: u16,
        /// Bytes after the 4-byte action header (padding included).
        body: Bytes,
    },
}

/// `true` for ports that may appear as an `OUTPUT` destination
/// (spec 4.5: physical/logical ports `1..=OFPP_MAX` and the reserved ports
/// except `OFPP_ANY`).
#[must_use]
pub const fn is_valid_output_port(p: u32) -> bool {
    (p >= 1 && p <= port::MAX) || (p >= port::IN_PORT && p <= port::LOCAL)
}

impl Action {
    /// `OUTPUT` to the controller with the whole packet (`OFPCML_NO_BUFFER`).
    #[must_use]
    pub const fn to_controller() -> Self {
        Self::Output {
            port: port::CONTROLLER,
            max_len: crate::consts::controller_max_len::NO_BUFFER,
        }
    }

    /// The action type number.
    #[must_use]
    pub const fn action_type(&self) -> u16 {
        match self {
            Self::Output { .. } => ActionType::Output.to_raw(),
            Self::SetField(_) => ActionType::SetField.to_raw(),
            Self::PushVlan { .. } => ActionType::PushVlan.to_raw(),
            Self::PopVlan => ActionType::PopVlan.to_raw(),
            Self::Unsupported { action_type, .. } => *action_type,
        }
    }

    /// Whether the LIME datapath can execute this action, given the fields it
    /// can set (usually [`DATAPATH_SETTABLE`]).
    ///
    /// # Errors
    ///
    /// `OFPBAC_BAD_TYPE` for [`Action::Unsupported`]; `OFPBAC_BAD_SET_TYPE`
    /// for a set-field of a field not in `settable`.
    pub fn check_supported(&self, settable: &[OxmFieldId]) -> Result<(), DecodeError> {
        match self {
            Self::Unsupported { action_type, .. } => Err(DecodeError::BadActionType {
                action_type: *action_type,
            }),
            Self::SetField(f) if !settable.contains(&f.id()) => Err(DecodeError::BadSetType {
                class: f.header().class(),
                field: f.id().to_raw(),
            }),
            _ => Ok(()),
        }
    }

    fn decode_tlv(tlv: Tlv) -> Result<Self, DecodeError> {
        let Tlv { typ, mut body } = tlv;
        let fixed = |body: &Reader, len: usize| {
            if body.remaining() == len - 4 {
                Ok(())
            } else {
                Err(DecodeError::bad_len(
                    Structure::Action,
                    body.remaining() + 4,
                    "wrong length for action type",
                ))
            }
        };
        let action = match ActionType::from_raw(typ) {
            Some(ActionType::Output) => {
                fixed(&body, 16)?;
                let port = body.u32()?;
                let max_len = body.u16()?;
                // Spec A.2.5 / 4.5: port 0, the undefined reserved range and OFPP_ANY are invalid outputs.
                if !is_valid_output_port(port) {
                    return Err(DecodeError::BadOutPort { port });
                }
                Self::Output { port, max_len }
            }
            Some(ActionType::PushVlan) => {
                fixed(&body, 8)?;
                let ethertype = body.u16()?;
                // Spec 7.2.5: "Ethertype should be 0x8100 or 0x88a8" (OFPBAC_BAD_ARGUMENT otherwise).
                if !matches!(ethertype, ethertype::VLAN | ethertype::QINQ) {
                    return Err(DecodeError::BadActionArgument { action_type: typ });
                }
                Self::PushVlan { ethertype }
            }
            Some(ActionType::PopVlan) => {
                fixed(&body, 8)?;
                Self::PopVlan
            }
            Some(ActionType::SetField) => Self::SetField(decode_set_field(body)?),
            _ => Self::Unsupported {
                action_type: typ,
                body: body.rest(),
            },
        };
        Ok(action)
    }

    /// Writes the action.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        put_tlv(dst, self.action_type(), Padding::Included, |b| match self {
            Self::Output { port, max_len } => {
                b.put_u32(*port);
                b.put_u16(*max_len);
                b.put_bytes(0, 6);
            }
            Self::SetField(f) => f.encode(b),
            Self::PushVlan { ethertype } => {
                b.put_u16(*ethertype);
                b.put_bytes(0, 2);
            }
            Self::PopVlan => b.put_bytes(0, 4),
            Self::Unsupported { body, .. } => b.put_slice(body),
        });
    }
}

/// Decodes the OXM TLV of a set-field action, mapping match errors to the
/// action error codes spec 7.2.5 names for set-field.
fn decode_set_field(mut body: Reader) -> Result<OxmField, DecodeError> {
    let total = body.remaining() + 4;
    let field = OxmField::decode(&mut body).map_err(|e| match e {
        DecodeError::BadOxmClass { class } => DecodeError::BadSetType { class, field: 0 },
        DecodeError::BadField { class, field } => DecodeError::BadSetType { class, field },
        // 1.3 set-field carries no mask; out-of-range values are bad arguments.
        DecodeError::BadMask { field }
        | DecodeError::BadValue { field }
        | DecodeError::BadWildcards { field } => DecodeError::BadSetArgument { field },
        DecodeError::BadLen { length, reason, .. } => {
            DecodeError::bad_len(Structure::SetField, length, reason)
        }
        other => other,
    })?;
    if field.has_mask() {
        return Err(DecodeError::BadSetArgument { field: field.id() });
    }
    // Spec 7.2.5: len = pad8(4 + OXM TLV); anything else is OFPBAC_BAD_SET_LEN.
    if total != pad8(4 + field.encoded_len()) {
        return Err(DecodeError::bad_len(
            Structure::SetField,
            total,
            "set-field length does not fit its OXM",
        ));
    }
    Ok(field)
}

/// Decodes an action list (the `actions` of PACKET_OUT or an instruction).
pub(crate) fn decode_actions(buf: Bytes) -> Result<Vec<Action>, DecodeError> {
    Tlvs::new(buf, Structure::Action, Padding::Included, 8)
        .map(|tlv| tlv.and_then(Action::decode_tlv))
        .collect()
}

/// Encodes an action list.
pub(crate) fn encode_actions<B: BufMut>(actions: &[Action], dst: &mut B) {
    for a in actions {
        a.encode(dst);
    }
}

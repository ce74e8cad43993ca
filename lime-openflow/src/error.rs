//! Decode errors and the one table that maps them to OpenFlow `(type, code)`.
//!
//! Two kinds of failure exist (the split h2 makes between stream and
//! connection errors, see [`ErrorScope`]):
//!
//! * **Message errors** – a complete frame was delimited but its content is
//!   wrong. The connection stays usable; the switch answers with an
//!   `OFPT_ERROR` carrying the offending message's xid and its first 64 bytes
//!   ([`error_reply`]).
//! * **Connection errors** – the byte stream itself cannot be trusted any
//!   more (a header whose `length` is below 8 means we cannot find the next
//!   frame) or the handshake failed. The peer may be sent an `OFPT_ERROR`,
//!   then the connection must be closed.
//!
//! [`DecodeError::code`] is the only place where an error turns into numbers.

use bytes::Bytes;

use crate::consts::{
    BadActionCode, BadInstructionCode, BadMatchCode, BadRequestCode, ErrorType, FlowModFailedCode,
    HelloFailedCode, OFP_ERROR_DATA_LEN, OxmFieldId, RoleRequestFailedCode, SwitchConfigFailedCode,
    TableFeaturesFailedCode,
};
use crate::msg::error::ErrorMsg;

/// An OpenFlow error `(type, code)` pair, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(
    missing_docs,
    reason = "each variant is named after its ofp_error_type"
)]
pub enum ErrorCode {
    HelloFailed(HelloFailedCode),
    BadRequest(BadRequestCode),
    BadAction(BadActionCode),
    BadInstruction(BadInstructionCode),
    BadMatch(BadMatchCode),
    FlowModFailed(FlowModFailedCode),
    SwitchConfigFailed(SwitchConfigFailedCode),
    RoleRequestFailed(RoleRequestFailedCode),
    TableFeaturesFailed(TableFeaturesFailedCode),
}

impl ErrorCode {
    /// The `ofp_error_type`.
    #[must_use]
    pub const fn error_type(self) -> ErrorType {
        match self {
            Self::HelloFailed(_) => ErrorType::HelloFailed,
            Self::BadRequest(_) => ErrorType::BadRequest,
            Self::BadAction(_) => ErrorType::BadAction,
            Self::BadInstruction(_) => ErrorType::BadInstruction,
            Self::BadMatch(_) => ErrorType::BadMatch,
            Self::FlowModFailed(_) => ErrorType::FlowModFailed,
            Self::SwitchConfigFailed(_) => ErrorType::SwitchConfigFailed,
            Self::RoleRequestFailed(_) => ErrorType::RoleRequestFailed,
            Self::TableFeaturesFailed(_) => ErrorType::TableFeaturesFailed,
        }
    }

    /// The type-specific code.
    #[must_use]
    pub const fn code(self) -> u16 {
        match self {
            Self::HelloFailed(c) => c.to_raw(),
            Self::BadRequest(c) => c.to_raw(),
            Self::BadAction(c) => c.to_raw(),
            Self::BadInstruction(c) => c.to_raw(),
            Self::BadMatch(c) => c.to_raw(),
            Self::FlowModFailed(c) => c.to_raw(),
            Self::SwitchConfigFailed(c) => c.to_raw(),
            Self::RoleRequestFailed(c) => c.to_raw(),
            Self::TableFeaturesFailed(c) => c.to_raw(),
        }
    }

    /// The `(type, code)` pair as it goes on the wire.
    #[must_use]
    pub const fn to_raw(self) -> (u16, u16) {
        (self.error_type().to_raw(), self.code())
    }
}

/// Which structure a length problem was found in; selects the `*_BAD_LEN` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Structure {
    /// A message body or a fixed part of one (`OFPBRC_BAD_LEN`).
    Message,
    /// A multipart request/reply body (`OFPBRC_BAD_LEN`).
    Multipart,
    /// `ofp_match` or one of its OXM TLVs (`OFPBMC_BAD_LEN`).
    Match,
    /// An instruction (`OFPBIC_BAD_LEN`).
    Instruction,
    /// An action (`OFPBAC_BAD_LEN`).
    Action,
    /// The OXM TLV inside a set-field action (`OFPBAC_BAD_SET_LEN`).
    SetField,
    /// A table-features structure or property (`OFPTFFC_BAD_LEN`).
    TableFeatures,
}

/// Whether an error is answered on one xid or ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorScope {
    /// Answer with an `OFPT_ERROR` on the offending xid and keep going.
    Message,
    /// The stream cannot be resynchronised or the handshake failed: close it
    /// (after an optional `OFPT_ERROR`).
    Connection,
}

/// Everything that can be wrong with bytes received from a peer.
///
/// Map to wire numbers with [`DecodeError::code`]; decide what to do with
/// [`DecodeError::scope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    // ----- connection scope -----
    /// `ofp_header.length` is below 8 (spec 7.1): the next frame boundary is unknown.
    #[error("header length {length} is below the 8-byte OpenFlow header; cannot resynchronise")]
    HeaderTooShort {
        /// The length field as received.
        length: u16,
    },
    /// Version negotiation failed (spec 6.3.1).
    #[error("no common OpenFlow version (ours: {ours:#x}, theirs: {theirs:#x})")]
    IncompatibleVersion {
        /// Version bitmap we offered.
        ours: u32,
        /// Version bitmap the peer offered.
        theirs: u32,
    },

    // ----- message scope: request -----
    /// Message version is not 1.3 (and the message is not a HELLO).
    #[error("unsupported OpenFlow version {version:#04x}")]
    BadVersion {
        /// `ofp_header.version`.
        version: u8,
    },
    /// Unknown message type, or one this codec does not implement (groups, meters, queues, port-mod, table-mod).
    #[error("unsupported message type {msg_type}")]
    BadType {
        /// `ofp_header.type`.
        msg_type: u8,
    },
    /// Experimenter message or multipart: no experimenter is supported.
    #[error("unsupported experimenter {experimenter:#x}")]
    BadExperimenter {
        /// Experimenter id.
        experimenter: u32,
    },
    /// Unknown or unsupported multipart type.
    #[error("unsupported multipart type {multipart_type}")]
    BadMultipart {
        /// `ofp_multipart_request.type`.
        multipart_type: u16,
    },
    /// A length field disagrees with the data.
    #[error("bad length {length} in {structure:?}: {reason}")]
    BadLen {
        /// Where the problem was found (selects the error code).
        structure: Structure,
        /// The offending length (length field, or bytes available).
        length: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// `PACKET_OUT.in_port` is not a valid port.
    #[error("invalid in_port {port:#x}")]
    BadPort {
        /// The port number.
        port: u32,
    },

    // ----- actions -----
    /// Action type unknown or not supported by the datapath.
    #[error("unsupported action type {action_type}")]
    BadActionType {
        /// `ofp_action_header.type`.
        action_type: u16,
    },
    /// Output to an invalid port.
    #[error("invalid output port {port:#x}")]
    BadOutPort {
        /// The port number.
        port: u32,
    },
    /// Invalid action argument (e.g. `PUSH_VLAN` ethertype).
    #[error("bad argument for action type {action_type}")]
    BadActionArgument {
        /// `ofp_action_header.type`.
        action_type: u16,
    },
    /// Set-field of an unknown or unsupported field.
    #[error("unsupported set-field type (class {class:#06x}, field {field})")]
    BadSetType {
        /// OXM class.
        class: u16,
        /// OXM field number.
        field: u8,
    },
    /// Set-field with a mask or an out-of-range value.
    #[error("bad set-field argument for {field:?}")]
    BadSetArgument {
        /// The field.
        field: OxmFieldId,
    },

    // ----- instructions -----
    /// Instruction type not defined by the spec.
    #[error("unknown instruction type {instruction_type}")]
    UnknownInstruction {
        /// `ofp_instruction.type`.
        instruction_type: u16,
    },
    /// Instruction defined by the spec but not supported by this switch.
    #[error("unsupported instruction type {instruction_type}")]
    UnsupportedInstruction {
        /// `ofp_instruction.type`.
        instruction_type: u16,
    },

    /// `GOTO_TABLE` to a table that is not after the flow's own table.
    #[error("goto-table {table_id} does not go forward")]
    BadGotoTable {
        /// Target table.
        table_id: u8,
    },

    // ----- match -----
    /// Match type is not `OFPMT_OXM`.
    #[error("unsupported match type {match_type}")]
    BadMatchType {
        /// `ofp_match.type`.
        match_type: u16,
    },
    /// OXM class other than `OFPXMC_OPENFLOW_BASIC`.
    #[error("unsupported OXM class {class:#06x}")]
    BadOxmClass {
        /// OXM class.
        class: u16,
    },
    /// Unknown or unsupported OXM field.
    #[error("unsupported OXM field {field} (class {class:#06x})")]
    BadField {
        /// OXM class.
        class: u16,
        /// OXM field number.
        field: u8,
    },
    /// A mask on a field that cannot be masked.
    #[error("field {field:?} cannot be masked")]
    BadMask {
        /// The field.
        field: OxmFieldId,
    },
    /// Value has bits set where the mask is zero.
    #[error("field {field:?} has value bits outside its mask")]
    BadWildcards {
        /// The field.
        field: OxmFieldId,
    },
    /// Value out of range for the field.
    #[error("value out of range for field {field:?}")]
    BadValue {
        /// The field.
        field: OxmFieldId,
    },
    /// Same field twice in one match.
    #[error("duplicate field {field:?}")]
    DupField {
        /// The field.
        field: OxmFieldId,
    },
    /// Field used without its prerequisite.
    #[error("prerequisite missing for field {field:?}")]
    BadPrereq {
        /// The field.
        field: OxmFieldId,
    },

    // ----- flow mod -----
    /// Unknown flow-mod command.
    #[error("unknown flow-mod command {command}")]
    BadCommand {
        /// `ofp_flow_mod.command`.
        command: u8,
    },
    /// Undefined flow-mod flag bits.
    #[error("unknown flow-mod flags {flags:#06x}")]
    BadFlowModFlags {
        /// `ofp_flow_mod.flags`.
        flags: u16,
    },
    /// `OFPTT_ALL` used with a command that needs one table.
    #[error("table id {table_id} not valid for this flow-mod command")]
    BadFlowModTableId {
        /// `ofp_flow_mod.table_id`.
        table_id: u8,
    },

    // ----- other messages -----
    /// Undefined switch-config flag bits.
    #[error("unknown switch config flags {flags:#06x}")]
    BadConfigFlags {
        /// `ofp_switch_config.flags`.
        flags: u16,
    },
    /// Unknown controller role.
    #[error("unknown controller role {role}")]
    BadRole {
        /// `ofp_role_request.role`.
        role: u32,
    },
    /// Unknown table-features property type.
    #[error("unknown table-feature property type {prop_type}")]
    BadTableFeatureProp {
        /// Property type.
        prop_type: u16,
    },
}

impl DecodeError {
    /// The OpenFlow `(type, code)` for this error (spec 7.4.4, A.4.4).
    ///
    /// This is the single table from errors to wire numbers.
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        use ErrorCode as E;
        match self {
            Self::HeaderTooShort { .. } => E::BadRequest(BadRequestCode::BadLen),
            Self::IncompatibleVersion { .. } => E::HelloFailed(HelloFailedCode::Incompatible),
            Self::BadVersion { .. } => E::BadRequest(BadRequestCode::BadVersion),
            Self::BadType { .. } => E::BadRequest(BadRequestCode::BadType),
            Self::BadExperimenter { .. } => E::BadRequest(BadRequestCode::BadExperimenter),
            Self::BadMultipart { .. } => E::BadRequest(BadRequestCode::BadMultipart),
            Self::BadLen { structure, .. } => match structure {
                Structure::Message | Structure::Multipart => E::BadRequest(BadRequestCode::BadLen),
                Structure::Match => E::BadMatch(BadMatchCode::BadLen),
                Structure::Instruction => E::BadInstruction(BadInstructionCode::BadLen),
                Structure::Action => E::BadAction(BadActionCode::BadLen),
                Structure::SetField => E::BadAction(BadActionCode::BadSetLen),
                Structure::TableFeatures => E::TableFeaturesFailed(TableFeaturesFailedCode::BadLen),
            },
            Self::BadPort { .. } => E::BadRequest(BadRequestCode::BadPort),
            Self::BadActionType { .. } => E::BadAction(BadActionCode::BadType),
            Self::BadOutPort { .. } => E::BadAction(BadActionCode::BadOutPort),
            Self::BadActionArgument { .. } => E::BadAction(BadActionCode::BadArgument),
            Self::BadSetType { .. } => E::BadAction(BadActionCode::BadSetType),
            Self::BadSetArgument { .. } => E::BadAction(BadActionCode::BadSetArgument),
            Self::UnknownInstruction { .. } => E::BadInstruction(BadInstructionCode::UnknownInst),
            Self::UnsupportedInstruction { .. } => E::BadInstruction(BadInstructionCode::UnsupInst),
            Self::BadGotoTable { .. } => E::BadInstruction(BadInstructionCode::BadTableId),
            Self::BadMatchType { .. } | Self::BadOxmClass { .. } => {
                E::BadMatch(BadMatchCode::BadType)
            }
            Self::BadField { .. } => E::BadMatch(BadMatchCode::BadField),
            Self::BadMask { .. } => E::BadMatch(BadMatchCode::BadMask),
            Self::BadWildcards { .. } => E::BadMatch(BadMatchCode::BadWildcards),
            Self::BadValue { .. } => E::BadMatch(BadMatchCode::BadValue),
            Self::DupField { .. } => E::BadMatch(BadMatchCode::DupField),
            Self::BadPrereq { .. } => E::BadMatch(BadMatchCode::BadPrereq),
            Self::BadCommand { .. } => E::FlowModFailed(FlowModFailedCode::BadCommand),
            Self::BadFlowModFlags { .. } => E::FlowModFailed(FlowModFailedCode::BadFlags),
            Self::BadFlowModTableId { .. } => E::FlowModFailed(FlowModFailedCode::BadTableId),
            Self::BadConfigFlags { .. } => E::SwitchConfigFailed(SwitchConfigFailedCode::BadFlags),
            Self::BadRole { .. } => E::RoleRequestFailed(RoleRequestFailedCode::BadRole),
            Self::BadTableFeatureProp { .. } => {
                E::TableFeaturesFailed(TableFeaturesFailedCode::BadType)
            }
        }
    }

    /// Whether the connection survives this error.
    #[must_use]
    pub const fn scope(&self) -> ErrorScope {
        match self {
            Self::HeaderTooShort { .. } | Self::IncompatibleVersion { .. } => {
                ErrorScope::Connection
            }
            _ => ErrorScope::Message,
        }
    }

    pub(crate) const fn bad_len(structure: Structure, length: usize, reason: &'static str) -> Self {
        Self::BadLen {
            structure,
            length,
            reason,
        }
    }
}

/// Failure to encode a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message does not fit the 16-bit `ofp_header.length`.
    #[error("encoded message is {length} bytes, more than 65535")]
    TooLong {
        /// Encoded length in bytes.
        length: usize,
    },
}

/// Builds the `OFPT_ERROR` answering `error`, given the offending frame.
///
/// Returns the xid to answer on (taken from the offending header, 0 if it is
/// shorter than a header) and the ERROR body. Per spec 7.4.4 the `data`
/// field holds the first 64 bytes of the failed request (all of it if it is
/// shorter). For `OFPET_HELLO_FAILED` the spec asks for an ASCII explanation
/// instead, so the error's `Display` text is used.
#[must_use]
pub fn error_reply(error: &DecodeError, offending: &[u8]) -> (u32, ErrorMsg) {
    let xid = offending
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes);
    let data = if let ErrorCode::HelloFailed(_) = error.code() {
        Bytes::from(error.to_string())
    } else {
        let n = offending.len().min(OFP_ERROR_DATA_LEN);
        Bytes::copy_from_slice(offending.get(..n).unwrap_or_default())
    };
    (xid, ErrorMsg::from_code(error.code(), data))
}

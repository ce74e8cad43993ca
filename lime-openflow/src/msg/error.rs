//! `OFPT_ERROR` (spec 7.4.4): `type (u16) | code (u16) | data`.
//!
//! For `OFPET_EXPERIMENTER` the code field is `exp_type` and `data` starts
//! with the 32-bit experimenter id; it is kept inside `data` so that the
//! body round-trips byte for byte, and [`ErrorMsg::experimenter`] reads it.

use bytes::{BufMut, Bytes};

use crate::consts::{
    BadActionCode, BadInstructionCode, BadMatchCode, BadRequestCode, ErrorType, FlowModFailedCode,
    HelloFailedCode, RoleRequestFailedCode, SwitchConfigFailedCode, TableFeaturesFailedCode,
};
use crate::error::{DecodeError, ErrorCode, Structure};
use crate::wire::Reader;

/// An `OFPT_ERROR` body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorMsg {
    /// `ofp_error_type`, raw.
    pub err_type: u16,
    /// Type-specific code, raw.
    pub code: u16,
    /// Offending request prefix, ASCII text (HELLO_FAILED), or experimenter data.
    pub data: Bytes,
}

impl ErrorMsg {
    /// An error with a typed code.
    #[must_use]
    pub fn from_code(code: ErrorCode, data: Bytes) -> Self {
        let (err_type, code) = code.to_raw();
        Self {
            err_type,
            code,
            data,
        }
    }

    /// The typed code, if this codec knows it.
    #[must_use]
    pub fn error_code(&self) -> Option<ErrorCode> {
        let c = self.code;
        Some(match ErrorType::from_raw(self.err_type)? {
            ErrorType::HelloFailed => ErrorCode::HelloFailed(HelloFailedCode::from_raw(c)?),
            ErrorType::BadRequest => ErrorCode::BadRequest(BadRequestCode::from_raw(c)?),
            ErrorType::BadAction => ErrorCode::BadAction(BadActionCode::from_raw(c)?),
            ErrorType::BadInstruction => {
                ErrorCode::BadInstruction(BadInstructionCode::from_raw(c)?)
            }
            ErrorType::BadMatch => ErrorCode::BadMatch(BadMatchCode::from_raw(c)?),
            ErrorType::FlowModFailed => ErrorCode::FlowModFailed(FlowModFailedCode::from_raw(c)?),
            ErrorType::SwitchConfigFailed => {
                ErrorCode::SwitchConfigFailed(SwitchConfigFailedCode::from_raw(c)?)
            }
            ErrorType::RoleRequestFailed => {
                ErrorCode::RoleRequestFailed(RoleRequestFailedCode::from_raw(c)?)
            }
            ErrorType::TableFeaturesFailed => {
                ErrorCode::TableFeaturesFailed(TableFeaturesFailedCode::from_raw(c)?)
            }
            _ => return None,
        })
    }

    /// The experimenter id of an `OFPET_EXPERIMENTER` error.
    #[must_use]
    pub fn experimenter(&self) -> Option<u32> {
        (self.err_type == ErrorType::Experimenter.to_raw())
            .then(|| self.data.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)))
            .flatten()
    }

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` if shorter than 4 bytes (8 for experimenter errors).
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let err_type = r.u16()?;
        let code = r.u16()?;
        if err_type == ErrorType::Experimenter.to_raw() && r.remaining() < 4 {
            return Err(DecodeError::bad_len(
                Structure::Message,
                r.remaining(),
                "experimenter error without id",
            ));
        }
        Ok(Self {
            err_type,
            code,
            data: r.rest(),
        })
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u16(self.err_type);
        dst.put_u16(self.code);
        dst.put_slice(&self.data);
    }
}

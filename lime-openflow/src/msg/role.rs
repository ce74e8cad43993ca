//! `OFPT_ROLE_REQUEST` / `OFPT_ROLE_REPLY` (`struct ofp_role_request`, spec 7.3.9).
//!
//! ```text
//! role u32 | pad[4] | generation_id u64
//! ```

use bytes::{BufMut, Bytes};

use crate::consts::ControllerRole;
use crate::error::{DecodeError, Structure};
use crate::wire::Reader;

/// A role request or reply body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Role {
    /// Requested or current role.
    pub role: ControllerRole,
    /// Master election generation id.
    pub generation_id: u64,
}

impl Role {
    /// Body length.
    pub const LEN: usize = 16;

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` unless 16 bytes; `OFPRRFC_BAD_ROLE` for an undefined role.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let raw = r.u32()?;
        r.skip(4)?;
        let generation_id = r.u64()?;
        r.finish()?;
        let role = ControllerRole::from_raw(raw).ok_or(DecodeError::BadRole { role: raw })?;
        Ok(Self {
            role,
            generation_id,
        })
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u32(self.role.to_raw());
        dst.put_bytes(0, 4);
        dst.put_u64(self.generation_id);
    }
}

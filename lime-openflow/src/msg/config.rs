//! `OFPT_GET_CONFIG_REPLY` / `OFPT_SET_CONFIG` (`struct ofp_switch_config`, spec 7.3.2).
//!
//! ```text
//! flags u16 | miss_send_len u16
//! ```

use bytes::{BufMut, Bytes};

use crate::consts::config_flags;
use crate::error::{DecodeError, Structure};
use crate::wire::Reader;

/// Switch configuration (shared by GET_CONFIG_REPLY and SET_CONFIG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwitchConfig {
    /// `OFPC_FRAG_*`.
    pub flags: u16,
    /// Bytes of a table-miss packet sent to the controller (`OFPCML_NO_BUFFER` = all).
    pub miss_send_len: u16,
}

impl Default for SwitchConfig {
    /// `OFPC_FRAG_NORMAL`, `miss_send_len = OFP_DEFAULT_MISS_SEND_LEN (128)`.
    fn default() -> Self {
        Self {
            flags: config_flags::FRAG_NORMAL,
            miss_send_len: 128,
        }
    }
}

impl SwitchConfig {
    /// Body length.
    pub const LEN: usize = 4;

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` unless 4 bytes; `OFPSCFC_BAD_FLAGS` for undefined
    /// flag bits (spec A.3.2 defines only `OFPC_FRAG_MASK`).
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let v = Self {
            flags: r.u16()?,
            miss_send_len: r.u16()?,
        };
        r.finish()?;
        if v.flags & !config_flags::FRAG_MASK != 0 {
            return Err(DecodeError::BadConfigFlags { flags: v.flags });
        }
        Ok(v)
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u16(self.flags);
        dst.put_u16(self.miss_send_len);
    }
}

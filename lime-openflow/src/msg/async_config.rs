//! `OFPT_GET_ASYNC_REPLY` / `OFPT_SET_ASYNC` (`struct ofp_async_config`, spec 7.3.10).
//!
//! ```text
//! packet_in_mask[2] u32 | port_status_mask[2] u32 | flow_removed_mask[2] u32
//! ```
//! Index 0 applies to master/equal controllers, index 1 to slaves.

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Structure};
use crate::wire::Reader;

/// Asynchronous message filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AsyncConfig {
    /// Bitmasks of `OFPR_*` packet-in reasons.
    pub packet_in_mask: [u32; 2],
    /// Bitmasks of `OFPPR_*` port-status reasons.
    pub port_status_mask: [u32; 2],
    /// Bitmasks of `OFPRR_*` flow-removed reasons.
    pub flow_removed_mask: [u32; 2],
}

impl AsyncConfig {
    /// Body length.
    pub const LEN: usize = 24;

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` unless 24 bytes.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let mut pair = || -> Result<[u32; 2], DecodeError> { Ok([r.u32()?, r.u32()?]) };
        let v = Self {
            packet_in_mask: pair()?,
            port_status_mask: pair()?,
            flow_removed_mask: pair()?,
        };
        r.finish()?;
        Ok(v)
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        for w in self
            .packet_in_mask
            .iter()
            .chain(&self.port_status_mask)
            .chain(&self.flow_removed_mask)
        {
            dst.put_u32(*w);
        }
    }
}

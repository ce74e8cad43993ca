//! `OFPT_FEATURES_REPLY` (`struct ofp_switch_features`, spec 7.3.1).
//!
//! ```text
//! datapath_id u64 | n_buffers u32 | n_tables u8 | auxiliary_id u8 | pad[2] | capabilities u32 | reserved u32
//! ```

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Structure};
use crate::wire::Reader;

/// A features reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FeaturesReply {
    /// Datapath unique id (lower 48 bits: MAC; upper 16: implementer-defined).
    pub datapath_id: u64,
    /// Packets the switch can buffer at once.
    pub n_buffers: u32,
    /// Number of flow tables.
    pub n_tables: u8,
    /// Auxiliary connection id (0 for the main connection).
    pub auxiliary_id: u8,
    /// `OFPC_*` bitmap.
    pub capabilities: u32,
    /// Reserved.
    pub reserved: u32,
}

impl FeaturesReply {
    /// Body length.
    pub const LEN: usize = 24;

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` unless the body is exactly 24 bytes.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let v = Self {
            datapath_id: r.u64()?,
            n_buffers: r.u32()?,
            n_tables: r.u8()?,
            auxiliary_id: r.u8()?,
            capabilities: {
                r.skip(2)?;
                r.u32()?
            },
            reserved: r.u32()?,
        };
        r.finish()?;
        Ok(v)
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u64(self.datapath_id);
        dst.put_u32(self.n_buffers);
        dst.put_u8(self.n_tables);
        dst.put_u8(self.auxiliary_id);
        dst.put_bytes(0, 2);
        dst.put_u32(self.capabilities);
        dst.put_u32(self.reserved);
    }
}

//! `OFPT_PORT_STATUS` (`struct ofp_port_status`, spec 7.4.3).
//!
//! ```text
//! reason u8 | pad[7] | ofp_port desc (64 bytes)
//! ```

use bytes::{BufMut, Bytes};

use crate::consts::PortReason;
use crate::error::{DecodeError, Structure};
use crate::port::PortDesc;
use crate::wire::Reader;

/// A port was added, removed or modified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortStatus {
    /// `OFPPR_*` reason, raw (see [`PortReason`]).
    pub reason: u8,
    /// The port.
    pub desc: PortDesc,
}

impl PortStatus {
    /// Body length.
    pub const LEN: usize = 72;

    /// The typed reason, if defined.
    #[must_use]
    pub const fn reason(&self) -> Option<PortReason> {
        PortReason::from_raw(self.reason)
    }

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` unless 72 bytes.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let reason = r.u8()?;
        r.skip(7)?;
        let desc = PortDesc::decode(&mut r)?;
        r.finish()?;
        Ok(Self { reason, desc })
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u8(self.reason);
        dst.put_bytes(0, 7);
        self.desc.encode(dst);
    }
}

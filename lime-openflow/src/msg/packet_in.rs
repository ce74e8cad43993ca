//! `OFPT_PACKET_IN` (`struct ofp_packet_in`, spec 7.4.1).
//!
//! ```text
//! buffer_id u32 | total_len u16 | reason u8 | table_id u8 | cookie u64 | match (padded) | pad[2] | data
//! ```

use bytes::{BufMut, Bytes};

use crate::consts::PacketInReason;
use crate::error::{DecodeError, Structure};
use crate::oxm::Match;
use crate::wire::Reader;

/// A packet sent to the controller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketIn {
    /// Buffer id on the switch, or `OFP_NO_BUFFER`.
    pub buffer_id: u32,
    /// Full length of the frame (`data` may be truncated to `max_len`).
    pub total_len: u16,
    /// `OFPR_*` reason, raw (see [`PacketInReason`]).
    pub reason: u8,
    /// Table that was looked up.
    pub table_id: u8,
    /// Cookie of the flow entry that sent the packet (all ones on table miss without entry).
    pub cookie: u64,
    /// Pipeline fields (at least `IN_PORT`).
    pub r#match: Match,
    /// The (possibly truncated) Ethernet frame.
    pub data: Bytes,
}

impl PacketIn {
    /// The typed reason, if defined.
    #[must_use]
    pub const fn reason(&self) -> Option<PacketInReason> {
        PacketInReason::from_raw(self.reason)
    }

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` for truncation; match errors.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let buffer_id = r.u32()?;
        let total_len = r.u16()?;
        let reason = r.u8()?;
        let table_id = r.u8()?;
        let cookie = r.u64()?;
        let r#match = Match::decode(&mut r)?;
        r.skip(2)?;
        Ok(Self {
            buffer_id,
            total_len,
            reason,
            table_id,
            cookie,
            r#match,
            data: r.rest(),
        })
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u32(self.buffer_id);
        dst.put_u16(self.total_len);
        dst.put_u8(self.reason);
        dst.put_u8(self.table_id);
        dst.put_u64(self.cookie);
        self.r#match.encode(dst);
        dst.put_bytes(0, 2);
        dst.put_slice(&self.data);
    }
}

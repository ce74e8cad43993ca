//! `OFPT_FLOW_REMOVED` (`struct ofp_flow_removed`, spec 7.4.2).
//!
//! ```text
//! cookie u64 | priority u16 | reason u8 | table_id u8 | duration_sec u32 | duration_nsec u32
//! | idle_timeout u16 | hard_timeout u16 | packet_count u64 | byte_count u64 | match (padded)
//! ```

use bytes::{BufMut, Bytes};

use crate::consts::FlowRemovedReason;
use crate::error::{DecodeError, Structure};
use crate::oxm::Match;
use crate::wire::Reader;

/// A flow entry was removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FlowRemoved {
    /// Opaque controller-issued identifier.
    pub cookie: u64,
    /// Priority of the entry.
    pub priority: u16,
    /// `OFPRR_*` reason, raw (see [`FlowRemovedReason`]).
    pub reason: u8,
    /// Table the entry was in.
    pub table_id: u8,
    /// Seconds the entry was alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Idle timeout from the flow-mod.
    pub idle_timeout: u16,
    /// Hard timeout from the flow-mod.
    pub hard_timeout: u16,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The entry's match.
    pub r#match: Match,
}

impl FlowRemoved {
    /// The typed reason, if defined.
    #[must_use]
    pub const fn reason(&self) -> Option<FlowRemovedReason> {
        FlowRemovedReason::from_raw(self.reason)
    }

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` for wrong lengths; match errors.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let v = Self {
            cookie: r.u64()?,
            priority: r.u16()?,
            reason: r.u8()?,
            table_id: r.u8()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
            idle_timeout: r.u16()?,
            hard_timeout: r.u16()?,
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            r#match: Match::decode(&mut r)?,
        };
        r.finish()?;
        Ok(v)
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u64(self.cookie);
        dst.put_u16(self.priority);
        dst.put_u8(self.reason);
        dst.put_u8(self.table_id);
        dst.put_u32(self.duration_sec);
        dst.put_u32(self.duration_nsec);
        dst.put_u16(self.idle_timeout);
        dst.put_u16(self.hard_timeout);
        dst.put_u64(self.packet_count);
        dst.put_u64(self.byte_count);
        self.r#match.encode(dst);
    }
}

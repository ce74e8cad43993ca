//! `OFPMP_FLOW` and `OFPMP_AGGREGATE` (spec 7.3.5.2, 7.3.5.3).
//!
//! ```text
//! request:    table_id u8 | pad[3] | out_port u32 | out_group u32 | pad[4] | cookie u64 | cookie_mask u64 | match
//! flow stats: length u16 | table_id u8 | pad | duration_sec u32 | duration_nsec u32 | priority u16
//!             | idle_timeout u16 | hard_timeout u16 | flags u16 | pad[4] | cookie u64
//!             | packet_count u64 | byte_count u64 | match | instructions
//! aggregate:  packet_count u64 | byte_count u64 | flow_count u32 | pad[4]
//! ```

use bytes::BufMut;

use crate::consts::{group, port, table};
use crate::error::DecodeError;
use crate::instruction::{Instruction, decode_instructions, encode_instructions};
use crate::oxm::Match;
use crate::wire::{Reader, len16, scratch};

/// Selects flows for `OFPMP_FLOW` and `OFPMP_AGGREGATE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStatsRequest {
    /// Table, or `OFPTT_ALL`.
    pub table_id: u8,
    /// Only flows outputting to this port (`OFPP_ANY` = no filter).
    pub out_port: u32,
    /// Only flows outputting to this group (`OFPG_ANY` = no filter).
    pub out_group: u32,
    /// Cookie to match under `cookie_mask`.
    pub cookie: u64,
    /// Bits of `cookie` that must match (0 = no filter).
    pub cookie_mask: u64,
    /// Fields to match (non-strict).
    pub r#match: Match,
}

impl Default for FlowStatsRequest {
    /// Everything: all tables, any port/group, any cookie.
    fn default() -> Self {
        Self {
            table_id: table::ALL,
            out_port: port::ANY,
            out_group: group::ANY,
            cookie: 0,
            cookie_mask: 0,
            r#match: Match::all(),
        }
    }
}

impl FlowStatsRequest {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let table_id = r.u8()?;
        r.skip(3)?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        r.skip(4)?;
        Ok(Self {
            table_id,
            out_port,
            out_group,
            cookie: r.u64()?,
            cookie_mask: r.u64()?,
            r#match: Match::decode(r)?,
        })
    }

    /// Writes the request body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u8(self.table_id);
        dst.put_bytes(0, 3);
        dst.put_u32(self.out_port);
        dst.put_u32(self.out_group);
        dst.put_bytes(0, 4);
        dst.put_u64(self.cookie);
        dst.put_u64(self.cookie_mask);
        self.r#match.encode(dst);
    }
}

/// One flow entry in a flow stats reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FlowStats {
    /// Table the entry is in.
    pub table_id: u8,
    /// Seconds alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Priority.
    pub priority: u16,
    /// Idle timeout.
    pub idle_timeout: u16,
    /// Hard timeout.
    pub hard_timeout: u16,
    /// `OFPFF_*` flags.
    pub flags: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The entry's match.
    pub r#match: Match,
    /// The entry's instructions.
    pub instructions: Vec<Instruction>,
}

impl FlowStats {
    /// Decodes one record; `r` holds it without its `length` field.
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let table_id = r.u8()?;
        r.skip(1)?;
        let duration_sec = r.u32()?;
        let duration_nsec = r.u32()?;
        let priority = r.u16()?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let flags = r.u16()?;
        r.skip(4)?;
        Ok(Self {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie: r.u64()?,
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            r#match: Match::decode(r)?,
            instructions: decode_instructions(r.rest())?,
        })
    }

    /// Writes the record, `length` included.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        let body = scratch(|b| {
            b.put_u8(self.table_id);
            b.put_u8(0);
            b.put_u32(self.duration_sec);
            b.put_u32(self.duration_nsec);
            b.put_u16(self.priority);
            b.put_u16(self.idle_timeout);
            b.put_u16(self.hard_timeout);
            b.put_u16(self.flags);
            b.put_bytes(0, 4);
            b.put_u64(self.cookie);
            b.put_u64(self.packet_count);
            b.put_u64(self.byte_count);
            self.r#match.encode(b);
            encode_instructions(&self.instructions, b);
        });
        dst.put_u16(len16(2 + body.len()));
        dst.put_slice(&body);
    }
}

/// Aggregate flow statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AggregateStats {
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// Number of flows.
    pub flow_count: u32,
}

impl AggregateStats {
    /// Size on the wire.
    pub const LEN: usize = 24;

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let v = Self {
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            flow_count: r.u32()?,
        };
        r.skip(4)?;
        Ok(v)
    }

    /// Writes the reply body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u64(self.packet_count);
        dst.put_u64(self.byte_count);
        dst.put_u32(self.flow_count);
        dst.put_bytes(0, 4);
    }
}

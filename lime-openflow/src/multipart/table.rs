//! `OFPMP_TABLE` reply (`struct ofp_table_stats`, spec 7.3.5.4).
//!
//! ```text
//! table_id u8 | pad[3] | active_count u32 | lookup_count u64 | matched_count u64
//! ```

use bytes::BufMut;

use crate::error::DecodeError;
use crate::wire::Reader;

/// Statistics of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TableStats {
    /// Table id.
    pub table_id: u8,
    /// Active entries.
    pub active_count: u32,
    /// Packets looked up.
    pub lookup_count: u64,
    /// Packets that hit an entry.
    pub matched_count: u64,
}

impl TableStats {
    /// Size on the wire.
    pub const LEN: usize = 24;

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let table_id = r.u8()?;
        r.skip(3)?;
        Ok(Self {
            table_id,
            active_count: r.u32()?,
            lookup_count: r.u64()?,
            matched_count: r.u64()?,
        })
    }

    /// Writes the record.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u8(self.table_id);
        dst.put_bytes(0, 3);
        dst.put_u32(self.active_count);
        dst.put_u64(self.lookup_count);
        dst.put_u64(self.matched_count);
    }
}

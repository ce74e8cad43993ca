//! `OFPMP_PORT_STATS` reply (`struct ofp_port_stats`, spec 7.3.5.6), 112 bytes.
//!
//! ```text
//! port_no u32 | pad[4] | rx_packets .. collisions (12 x u64) | duration_sec u32 | duration_nsec u32
//! ```

use bytes::BufMut;

use crate::error::DecodeError;
use crate::wire::Reader;

/// Counters of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[allow(
    missing_docs,
    reason = "counter names are those of struct ofp_port_stats"
)]
pub struct PortStats {
    pub port_no: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

impl PortStats {
    /// Size on the wire.
    pub const LEN: usize = 112;

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let port_no = r.u32()?;
        r.skip(4)?;
        Ok(Self {
            port_no,
            rx_packets: r.u64()?,
            tx_packets: r.u64()?,
            rx_bytes: r.u64()?,
            tx_bytes: r.u64()?,
            rx_dropped: r.u64()?,
            tx_dropped: r.u64()?,
            rx_errors: r.u64()?,
            tx_errors: r.u64()?,
            rx_frame_err: r.u64()?,
            rx_over_err: r.u64()?,
            rx_crc_err: r.u64()?,
            collisions: r.u64()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
        })
    }

    /// Writes the record.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u32(self.port_no);
        dst.put_bytes(0, 4);
        for c in [
            self.rx_packets,
            self.tx_packets,
            self.rx_bytes,
            self.tx_bytes,
            self.rx_dropped,
            self.tx_dropped,
            self.rx_errors,
            self.tx_errors,
            self.rx_frame_err,
            self.rx_over_err,
            self.rx_crc_err,
            self.collisions,
        ] {
            dst.put_u64(c);
        }
        dst.put_u32(self.duration_sec);
        dst.put_u32(self.duration_nsec);
    }
}

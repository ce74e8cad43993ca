//! `struct ofp_port` (spec 7.2.1): a port description, 64 bytes.
//!
//! Used by PORT_STATUS and the PORT_DESC multipart reply.

use bytes::BufMut;

use crate::DecodeError;
use crate::consts::OFP_MAX_PORT_NAME_LEN;
use crate::oxm::MacAddr;
use crate::wire::{Reader, put_string};

/// A port description.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortDesc {
    /// Port number.
    pub port_no: u32,
    /// Ethernet address.
    pub hw_addr: MacAddr,
    /// Human-readable name (at most 15 bytes on the wire).
    pub name: String,
    /// `OFPPC_*` bitmap.
    pub config: u32,
    /// `OFPPS_*` bitmap.
    pub state: u32,
    /// Current features (`OFPPF_*`).
    pub curr: u32,
    /// Features being advertised.
    pub advertised: u32,
    /// Features supported.
    pub supported: u32,
    /// Features advertised by the peer.
    pub peer: u32,
    /// Current bitrate in kbps.
    pub curr_speed: u32,
    /// Maximum bitrate in kbps.
    pub max_speed: u32,
}

impl PortDesc {
    /// Size on the wire.
    pub const LEN: usize = 64;

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let port_no = r.u32()?;
        r.skip(4)?;
        let hw_addr = r.array()?;
        r.skip(2)?;
        Ok(Self {
            port_no,
            hw_addr,
            name: r.string::<OFP_MAX_PORT_NAME_LEN>()?,
            config: r.u32()?,
            state: r.u32()?,
            curr: r.u32()?,
            advertised: r.u32()?,
            supported: r.u32()?,
            peer: r.u32()?,
            curr_speed: r.u32()?,
            max_speed: r.u32()?,
        })
    }

    /// Writes the 64-byte `ofp_port`.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u32(self.port_no);
        dst.put_bytes(0, 4);
        dst.put_slice(&self.hw_addr);
        dst.put_bytes(0, 2);
        put_string(dst, &self.name, OFP_MAX_PORT_NAME_LEN);
        for v in [
            self.config,
            self.state,
            self.curr,
            self.advertised,
            self.supported,
            self.peer,
            self.curr_speed,
            self.max_speed,
        ] {
            dst.put_u32(v);
        }
    }
}

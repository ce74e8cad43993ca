//! `OFPT_PACKET_OUT` (`struct ofp_packet_out`, spec 7.3.7).
//!
//! ```text
//! buffer_id u32 | in_port u32 | actions_len u16 | pad[6] | actions (actions_len bytes) | data
//! ```

use bytes::{BufMut, Bytes};

use crate::action::{Action, decode_actions, encode_actions};
use crate::consts::port;
use crate::error::{DecodeError, Structure};
use crate::wire::{Reader, len16, scratch};

/// A packet injected by the controller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketOut {
    /// Buffer id, or `OFP_NO_BUFFER` when `data` carries the frame.
    pub buffer_id: u32,
    /// Input port for the pipeline (`OFPP_CONTROLLER` if none).
    pub in_port: u32,
    /// Action list to apply.
    pub actions: Vec<Action>,
    /// Ethernet frame (only meaningful with `OFP_NO_BUFFER`).
    pub data: Bytes,
}

/// `true` if `p` may be a PACKET_OUT `in_port`: a standard port, `LOCAL`,
/// `CONTROLLER`, or `ANY` (accepted as "no port", as Open vSwitch does).
const fn valid_in_port(p: u32) -> bool {
    (p >= 1 && p <= port::MAX) || p == port::CONTROLLER || p == port::LOCAL || p == port::ANY
}

impl PacketOut {
    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` if `actions_len` overruns the message,
    /// `OFPBRC_BAD_PORT` for an invalid `in_port` (spec 7.3.7), action errors.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Message);
        let buffer_id = r.u32()?;
        let in_port = r.u32()?;
        let actions_len = usize::from(r.u16()?);
        r.skip(6)?;
        if !valid_in_port(in_port) {
            return Err(DecodeError::BadPort { port: in_port });
        }
        let actions = decode_actions(r.bytes(actions_len)?)?;
        Ok(Self {
            buffer_id,
            in_port,
            actions,
            data: r.rest(),
        })
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        let actions = scratch(|b| encode_actions(&self.actions, b));
        dst.put_u32(self.buffer_id);
        dst.put_u32(self.in_port);
        dst.put_u16(len16(actions.len()));
        dst.put_bytes(0, 6);
        dst.put_slice(&actions);
        dst.put_slice(&self.data);
    }
}

//! `OFPMP_DESC` reply (`struct ofp_desc`, spec 7.3.5.1): five NUL-padded strings.
//!
//! ```text
//! mfr_desc[256] | hw_desc[256] | sw_desc[256] | serial_num[32] | dp_desc[256]
//! ```

use bytes::BufMut;

use crate::consts::{DESC_STR_LEN, SERIAL_NUM_LEN};
use crate::error::DecodeError;
use crate::wire::{Reader, put_string};

/// Switch description.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Desc {
    /// Manufacturer description.
    pub mfr_desc: String,
    /// Hardware description.
    pub hw_desc: String,
    /// Software description.
    pub sw_desc: String,
    /// Serial number.
    pub serial_num: String,
    /// Human-readable datapath description.
    pub dp_desc: String,
}

impl Desc {
    /// Size on the wire.
    pub const LEN: usize = 4 * DESC_STR_LEN + SERIAL_NUM_LEN;

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            mfr_desc: r.string::<DESC_STR_LEN>()?,
            hw_desc: r.string::<DESC_STR_LEN>()?,
            sw_desc: r.string::<DESC_STR_LEN>()?,
            serial_num: r.string::<SERIAL_NUM_LEN>()?,
            dp_desc: r.string::<DESC_STR_LEN>()?,
        })
    }

    /// Writes the 1056-byte `ofp_desc` (strings truncated to fit with a NUL).
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        put_string(dst, &self.mfr_desc, DESC_STR_LEN);
        put_string(dst, &self.hw_desc, DESC_STR_LEN);
        put_string(dst, &self.sw_desc, DESC_STR_LEN);
        put_string(dst, &self.serial_num, SERIAL_NUM_LEN);
        put_string(dst, &self.dp_desc, DESC_STR_LEN);
    }
}

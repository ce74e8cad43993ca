//! `struct ofp_header` (spec 7.1): the 8 bytes in front of every message.
//!
//! ```text
//!  0        1        2                 4                                  8
//! +--------+--------+-----------------+-----------------------------------+
//! |version |  type  |     length      |                xid                |
//! +--------+--------+-----------------+-----------------------------------+
//! ```

use bytes::BufMut;

use crate::consts::{MsgType, OFP_HEADER_LEN};

/// A decoded `ofp_header`. `msg_type` stays raw so that unknown types can be
/// reported with their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// `OFP_VERSION` of the sender (0x04 for 1.3).
    pub version: u8,
    /// `enum ofp_type`, raw.
    pub msg_type: u8,
    /// Length of the whole message, this header included.
    pub length: u16,
    /// Transaction id; replies echo the request's.
    pub xid: u32,
}

impl Header {
    /// Size of the header on the wire.
    pub const LEN: usize = OFP_HEADER_LEN;

    /// Reads a header from the front of `buf`; `None` if fewer than 8 bytes.
    #[must_use]
    pub fn peek(buf: &[u8]) -> Option<Self> {
        HeaderView::new_checked(buf).map(|v| v.to_header())
    }

    /// The message type, if known.
    #[must_use]
    pub const fn typed(&self) -> Option<MsgType> {
        MsgType::from_raw(self.msg_type)
    }

    /// Writes the 8 header bytes.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u8(self.version);
        dst.put_u8(self.msg_type);
        dst.put_u16(self.length);
        dst.put_u32(self.xid);
    }
}

/// Zero-copy view of an `ofp_header` at the front of a buffer (smoltcp style).
///
/// The only constructor, [`HeaderView::new_checked`], verifies that the
/// buffer holds at least [`Header::LEN`] bytes; every accessor reads inside
/// those 8 bytes, so **no accessor can panic** once construction succeeded.
#[derive(Debug, Clone, Copy)]
pub struct HeaderView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HeaderView<T> {
    /// Wraps `buffer`; `None` if it is shorter than a header.
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= Header::LEN).then_some(Self { buffer })
    }

    fn bytes(&self) -> [u8; Header::LEN] {
        // Cannot fail: new_checked guaranteed at least 8 bytes.
        self.buffer
            .as_ref()
            .first_chunk::<{ Header::LEN }>()
            .copied()
            .unwrap_or_default()
    }

    /// `ofp_header.version`.
    pub fn version(&self) -> u8 {
        self.bytes()[0]
    }

    /// `ofp_header.type`.
    pub fn msg_type(&self) -> u8 {
        self.bytes()[1]
    }

    /// `ofp_header.length`.
    pub fn length(&self) -> u16 {
        let b = self.bytes();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// `ofp_header.xid`.
    pub fn xid(&self) -> u32 {
        let b = self.bytes();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// Copies the fields out.
    pub fn to_header(&self) -> Header {
        Header {
            version: self.version(),
            msg_type: self.msg_type(),
            length: self.length(),
            xid: self.xid(),
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

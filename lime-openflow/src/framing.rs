//! Splitting a byte stream into OpenFlow frames (mini-redis `Frame::check` style).
//!
//! A reading loop keeps a `BytesMut`, appends what the socket gave it, and
//! calls [`next_frame`] until it returns `Ok(None)`:
//!
//! * `Ok(Some(frame))` – a whole message; decode it with
//!   [`Message::decode`](crate::Message::decode). Its errors are
//!   [message-scoped](crate::ErrorScope::Message): answer and carry on.
//! * `Ok(None)` – incomplete; read more. [`check`] says how many bytes at least.
//! * `Err(e)` – [connection-scoped](crate::ErrorScope::Connection): the
//!   stream cannot be resynchronised, close it.
//!
//! At EOF, an empty buffer is a clean close; leftover bytes mean the peer
//! hung up mid-frame.

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::header::{Header, HeaderView};

/// Result of [`check`] on a buffer that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// More bytes are needed before a frame can be delimited.
    Incomplete {
        /// Lower bound on the number of additional bytes needed.
        needed: usize,
    },
    /// `header.length` bytes at the front of the buffer form one message.
    Complete {
        /// The frame's header.
        header: Header,
    },
}

/// Looks at the front of `buf` and says whether it holds a complete frame.
///
/// # Errors
///
/// [`DecodeError::HeaderTooShort`] if the header's length is below 8
/// (spec 7.1: `length` includes the header), which ends the connection.
pub fn check(buf: &[u8]) -> Result<FrameStatus, DecodeError> {
    let Some(view) = HeaderView::new_checked(buf) else {
        return Ok(FrameStatus::Incomplete {
            needed: Header::LEN - buf.len(),
        });
    };
    let header = view.to_header();
    let length = usize::from(header.length);
    if length < Header::LEN {
        return Err(DecodeError::HeaderTooShort {
            length: header.length,
        });
    }
    if buf.len() < length {
        return Ok(FrameStatus::Incomplete {
            needed: length - buf.len(),
        });
    }
    Ok(FrameStatus::Complete { header })
}

/// One delimited message: its header and all of its bytes (header included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The parsed header.
    pub header: Header,
    /// The whole message, `header.length` bytes.
    pub bytes: Bytes,
}

impl Frame {
    /// The body, after the 8-byte header.
    #[must_use]
    pub fn body(&self) -> Bytes {
        self.bytes.slice(Header::LEN.min(self.bytes.len())..)
    }
}

/// Splits the next complete frame off the front of `buf`.
///
/// # Errors
///
/// As [`check`]; the error is connection-scoped.
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
    match check(buf)? {
        FrameStatus::Incomplete { .. } => Ok(None),
        FrameStatus::Complete { header } => {
            let bytes = buf.split_to(usize::from(header.length)).freeze();
            Ok(Some(Frame { header, bytes }))
        }
    }
}

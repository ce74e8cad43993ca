//! `OFPT_HELLO` and version negotiation (spec 6.3.1, 7.5.1).
//!
//! ```text
//! body: hello elements, each  type (u16) | length (u16, excl. padding) | data | pad to 8
//! OFPHET_VERSIONBITMAP data:  u32 bitmaps[]; bit n of bitmaps[i] = version 32*i + n
//! ```

use bytes::{BufMut, Bytes};

use crate::consts::{HelloElemType, OFP_VERSION};
use crate::error::{DecodeError, Structure};
use crate::wire::{Padding, Tlvs, put_tlv};

/// One hello element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HelloElement {
    /// `OFPHET_VERSIONBITMAP`.
    VersionBitmap(Vec<u32>),
    /// Other element types; spec 7.5.1 says to ignore them for negotiation,
    /// they are kept so that nothing is lost.
    Unknown {
        /// Element type.
        elem_type: u16,
        /// Element data (without padding).
        data: Bytes,
    },
}

/// An `OFPT_HELLO`. Unlike other messages, the header version is part of its
/// meaning, so it is carried here (and written into the header on encode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hello {
    /// `ofp_header.version`: the highest version the sender supports.
    pub version: u8,
    /// Hello elements.
    pub elements: Vec<HelloElement>,
}

impl Default for Hello {
    /// Version 1.3 with a bitmap offering only 1.3.
    fn default() -> Self {
        Self::with_versions(&[OFP_VERSION])
    }
}

impl Hello {
    /// A hello offering `versions` (header version = the highest one).
    #[must_use]
    pub fn with_versions(versions: &[u8]) -> Self {
        let max = versions.iter().copied().max().unwrap_or(OFP_VERSION);
        let mut bitmap = vec![0u32; usize::from(max) / 32 + 1];
        for &v in versions {
            if let Some(word) = bitmap.get_mut(usize::from(v) / 32) {
                *word |= 1 << (v % 32);
            }
        }
        Self {
            version: max,
            elements: vec![HelloElement::VersionBitmap(bitmap)],
        }
    }

    /// The first version-bitmap element, if any.
    #[must_use]
    pub fn bitmap(&self) -> Option<&[u32]> {
        self.elements.iter().find_map(|e| match e {
            HelloElement::VersionBitmap(b) => Some(b.as_slice()),
            HelloElement::Unknown { .. } => None,
        })
    }

    /// Whether the sender claims `version`: its bitmap bit, or (without a
    /// bitmap) equality with the header version.
    #[must_use]
    pub fn supports(&self, version: u8) -> bool {
        match self.bitmap() {
            Some(b) => b
                .get(usize::from(version) / 32)
                .is_some_and(|w| w & (1 << (version % 32)) != 0),
            None => version == self.version,
        }
    }

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_LEN` for malformed elements.
    pub fn decode(version: u8, body: Bytes) -> Result<Self, DecodeError> {
        let mut elements = Vec::new();
        for tlv in Tlvs::new(body, Structure::Message, Padding::Excluded, 4) {
            let mut tlv = tlv?;
            elements.push(if tlv.typ == HelloElemType::VersionBitmap.to_raw() {
                let mut words = Vec::with_capacity(tlv.body.remaining() / 4);
                while !tlv.body.is_empty() {
                    words.push(tlv.body.u32()?);
                }
                HelloElement::VersionBitmap(words)
            } else {
                HelloElement::Unknown {
                    elem_type: tlv.typ,
                    data: tlv.body.rest(),
                }
            });
        }
        Ok(Self { version, elements })
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        for e in &self.elements {
            match e {
                HelloElement::VersionBitmap(words) => {
                    put_tlv(
                        dst,
                        HelloElemType::VersionBitmap.to_raw(),
                        Padding::Excluded,
                        |b| {
                            words.iter().for_each(|w| b.put_u32(*w));
                        },
                    );
                }
                HelloElement::Unknown { elem_type, data } => {
                    put_tlv(dst, *elem_type, Padding::Excluded, |b| b.put_slice(data));
                }
            }
        }
    }
}

fn bitmap_word(h: &Hello) -> u32 {
    h.bitmap()
        .and_then(|b| b.first().copied())
        .unwrap_or_else(|| 1u32.checked_shl(u32::from(h.version)).unwrap_or(0))
}

/// Computes the negotiated version from the HELLO we sent and the one we
/// received (spec 6.3.1).
///
/// > If both the Hello message sent and the Hello message received contained
/// > a OFPHET_VERSIONBITMAP hello element, and if those bitmaps have some
/// > common bits set, the negotiated version must be the highest version set
/// > in both bitmaps. Otherwise, the two parties must use the smaller of the
/// > version number it sent and the version number it received in the
/// > version field. [...] If the negotiated version is supported by the
/// > recipient, then the connection proceeds. Otherwise, the recipient must
/// > reply with an OFPT_ERROR message with a type field of
/// > OFPET_HELLO_FAILED, a code field of OFPHFC_INCOMPATIBLE.
///
/// "Supported by the recipient" is checked with [`Hello::supports`] on our
/// own hello, so two bitmaps without a common bit always fail.
///
/// # Errors
///
/// [`DecodeError::IncompatibleVersion`] (connection-scoped,
/// `OFPET_HELLO_FAILED`/`OFPHFC_INCOMPATIBLE`).
pub fn negotiate_version(ours: &Hello, theirs: &Hello) -> Result<u8, DecodeError> {
    let candidate = match (ours.bitmap(), theirs.bitmap()) {
        (Some(a), Some(b)) => {
            let common = a.iter().zip(b).enumerate().rev().find_map(|(i, (x, y))| {
                let w = x & y;
                (w != 0).then(|| i * 32 + (31 - w.leading_zeros() as usize))
            });
            common.and_then(|v| u8::try_from(v).ok())
        }
        _ => Some(ours.version.min(theirs.version)),
    };
    candidate
        .filter(|&v| ours.supports(v))
        .ok_or(DecodeError::IncompatibleVersion {
            ours: bitmap_word(ours),
            theirs: bitmap_word(theirs),
        })
}

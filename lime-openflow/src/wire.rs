//! Bounds-checked reading and length-prefixed writing shared by every message.
//!
//! [`Reader`] is the only way decoders touch untrusted bytes: every accessor
//! checks the remaining length first and returns
//! [`DecodeError::BadLen`] (tagged with the [`Structure`] being read, which
//! selects the spec's `*_BAD_LEN` code) instead of panicking. After a check
//! has passed, the `bytes::Buf` getters used below cannot panic because they
//! only ever consume bytes known to be present.
//!
//! [`Tlvs`] iterates the `(type: u16, length: u16, body)` lists used by
//! actions, instructions, hello elements and table-feature properties;
//! [`put_tlv`] writes one.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Structure};

/// Rounds `n` up to a multiple of 8 (`OFP_ALIGN`-style padding).
pub(crate) const fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Converts a length to the 16-bit wire field, saturating.
///
/// Saturation cannot produce a silently wrong frame: anything this long also
/// overflows the enclosing message, which `Message::encode` rejects.
pub(crate) fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// A cursor over untrusted bytes that never panics.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    buf: Bytes,
    structure: Structure,
}

impl Reader {
    /// Reads `buf`, attributing length errors to `structure`.
    pub(crate) const fn new(buf: Bytes, structure: Structure) -> Self {
        Self { buf, structure }
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::bad_len(
                self.structure,
                self.buf.len(),
                "truncated",
            ))
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.need(N)?;
        let mut out = [0; N];
        self.buf.copy_to_slice(&mut out);
        Ok(out)
    }

    /// Skips `n` padding bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.need(n)?;
        self.buf.advance(n);
        Ok(())
    }

    /// Takes the next `n` bytes without copying.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// Takes the next `n` bytes as a reader for a nested structure.
    pub(crate) fn sub(&mut self, n: usize, structure: Structure) -> Result<Self, DecodeError> {
        Ok(Self::new(self.bytes(n)?, structure))
    }

    /// Takes everything that is left.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// A NUL-terminated fixed-width string (`char name[N]`).
    ///
    /// Canonicalising, so that decode∘encode is the identity on decoded
    /// values: the text ends at the first NUL and at most at `N - 1` bytes
    /// (the spec requires a terminator), and each byte of invalid UTF-8
    /// becomes one `?`.
    pub(crate) fn string<const N: usize>(&mut self) -> Result<String, DecodeError> {
        let raw = self.array::<N>()?;
        let end = raw
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(N)
            .min(N.saturating_sub(1));
        let mut s = String::with_capacity(end);
        for chunk in raw.get(..end).unwrap_or_default().utf8_chunks() {
            s.push_str(chunk.valid());
            s.extend(chunk.invalid().iter().map(|_| '?'));
        }
        Ok(s)
    }

    /// Fails if bytes are left over (a length field claimed too much).
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::bad_len(
                self.structure,
                self.buf.len(),
                "trailing bytes",
            ))
        }
    }
}

/// How a TLV's length field treats the padding to 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Padding {
    /// `length` includes the padding and must be a multiple of 8
    /// (actions, spec 7.2.5; instructions, spec 7.2.4).
    Included,
    /// `length` excludes the padding that follows
    /// (hello elements, spec 7.5.1; table-feature properties, spec 7.3.5.5.2).
    Excluded,
}

/// One `(type, length, body)` element.
#[derive(Debug, Clone)]
pub(crate) struct Tlv {
    /// Type field.
    pub(crate) typ: u16,
    /// Body: `length - 4` bytes following the 4-byte TLV header (padding
    /// included for [`Padding::Included`]).
    pub(crate) body: Reader,
}

/// Iterator over a TLV list; yields an error once and then stops.
pub(crate) struct Tlvs {
    r: Reader,
    padding: Padding,
    structure: Structure,
    min_len: usize,
}

impl Tlvs {
    /// Iterates `buf` as TLVs of at least `min_len` bytes each.
    pub(crate) fn new(buf: Bytes, structure: Structure, padding: Padding, min_len: usize) -> Self {
        Self {
            r: Reader::new(buf, structure),
            padding,
            structure,
            min_len: min_len.max(4),
        }
    }

    fn next_tlv(&mut self) -> Result<Tlv, DecodeError> {
        let typ = self.r.u16()?;
        let len = usize::from(self.r.u16()?);
        if len < self.min_len {
            return Err(DecodeError::bad_len(
                self.structure,
                len,
                "element shorter than its header",
            ));
        }
        if self.padding == Padding::Included && len % 8 != 0 {
            return Err(DecodeError::bad_len(
                self.structure,
                len,
                "length not a multiple of 8",
            ));
        }
        let body = self.r.sub(len - 4, self.structure)?;
        if self.padding == Padding::Excluded {
            // Lenient on the last element: a sender may omit its trailing padding.
            let pad = (pad8(len) - len).min(self.r.remaining());
            self.r.skip(pad)?;
        }
        Ok(Tlv { typ, body })
    }
}

impl Iterator for Tlvs {
    type Item = Result<Tlv, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.r.is_empty() {
            return None;
        }
        let item = self.next_tlv();
        if item.is_err() {
            self.r.rest();
        }
        Some(item)
    }
}

/// Writes `body` into a scratch buffer so that its length can be prefixed.
pub(crate) fn scratch(body: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut b = BytesMut::new();
    body(&mut b);
    b
}

/// Writes one TLV: `type`, `length`, `body`, padding to 8 bytes.
pub(crate) fn put_tlv<B: BufMut>(
    dst: &mut B,
    typ: u16,
    padding: Padding,
    body: impl FnOnce(&mut BytesMut),
) {
    let body = scratch(body);
    let unpadded = 4 + body.len();
    let padded = pad8(unpadded);
    dst.put_u16(typ);
    dst.put_u16(len16(match padding {
        Padding::Included => padded,
        Padding::Excluded => unpadded,
    }));
    dst.put_slice(&body);
    dst.put_bytes(0, padded - unpadded);
}

/// Writes `s` as a NUL-padded `char[N]`, truncated (on a character boundary)
/// so that a NUL always ends it.
pub(crate) fn put_string<B: BufMut>(dst: &mut B, s: &str, n: usize) {
    let mut len = s.len().min(n.saturating_sub(1));
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    dst.put_slice(s.as_bytes().get(..len).unwrap_or_default());
    dst.put_bytes(0, n - len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlvs(bytes: &'static [u8], padding: Padding) -> Vec<Result<(u16, usize), DecodeError>> {
        Tlvs::new(Bytes::from_static(bytes), Structure::Action, padding, 4)
            .map(|t| t.map(|t| (t.typ, t.body.remaining())))
            .collect()
    }

    #[test]
    fn reader_reports_truncation_instead_of_panicking() {
        let mut r = Reader::new(Bytes::from_static(&[1, 2, 3]), Structure::Match);
        assert_eq!(r.u16(), Ok(0x0102));
        assert!(matches!(
            r.u32(),
            Err(DecodeError::BadLen {
                structure: Structure::Match,
                length: 1,
                ..
            })
        ));
        assert!(r.clone().finish().is_err());
        assert_eq!(r.u8(), Ok(3));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn tlv_padding_rules() {
        // Included: length 8 covers the padding.
        assert_eq!(
            tlvs(&[0, 1, 0, 8, 0, 0, 0, 0], Padding::Included),
            vec![Ok((1, 4))]
        );
        // Included: length 6 is not a multiple of 8.
        assert!(tlvs(&[0, 1, 0, 6, 0, 0, 0, 0], Padding::Included)[0].is_err());
        // Excluded: length 5 then 3 bytes of padding, then a second element.
        assert_eq!(
            tlvs(&[0, 1, 0, 5, 9, 0, 0, 0, 0, 2, 0, 4], Padding::Excluded),
            vec![Ok((1, 1)), Ok((2, 0))]
        );
        // A length below the header stops the iteration with one error.
        let v = tlvs(&[0, 1, 0, 2, 0, 1, 0, 4], Padding::Excluded);
        assert_eq!(v.len(), 1);
        assert!(v[0].is_err());
    }

    #[test]
    fn put_tlv_pads_and_sets_length() {
        let mut b = BytesMut::new();
        put_tlv(&mut b, 7, Padding::Excluded, |b| b.put_u8(0xaa));
        assert_eq!(&b[..], &[0, 7, 0, 5, 0xaa, 0, 0, 0]);
        let mut b = BytesMut::new();
        put_tlv(&mut b, 7, Padding::Included, |b| b.put_u8(0xaa));
        assert_eq!(&b[..], &[0, 7, 0, 8, 0xaa, 0, 0, 0]);
    }

    #[test]
    fn strings_are_canonical() {
        let mut b = BytesMut::new();
        put_string(&mut b, "ééé", 6);
        assert_eq!(&b[..], &[0xc3, 0xa9, 0xc3, 0xa9, 0, 0]);
        let mut r = Reader::new(
            Bytes::from_static(&[b'a', 0xff, b'b', b'c']),
            Structure::Message,
        );
        assert_eq!(r.string::<4>(), Ok("a?b".to_string()));
    }
}

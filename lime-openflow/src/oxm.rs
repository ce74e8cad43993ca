//! OXM flow match (`struct ofp_match`, `OFPMT_OXM`; spec 7.2.3).
//!
//! ```text
//! ofp_match:  type (u16 = OFPMT_OXM) | length (u16, excl. padding) | OXM TLVs... | pad to 8
//! OXM TLV:    class (u16) | field (7 bits) | hasmask (1 bit) | length (u8) | value [| mask]
//! ```
//!
//! A [`Match`] is a list of typed [`OxmField`]s. Decoding checks each TLV
//! (class, field, length, mask allowed, value range, wildcards) and then the
//! whole list ([`Match::validate`]: duplicates, prerequisites), so every
//! decoded match is valid. [`Match::validate`] is public so that matches
//! built in code can be checked the same way.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes};

use crate::consts::{
    MatchType, OFPVID_NONE, OFPVID_PRESENT, OxmClass, OxmFieldId, ethertype, ip_proto,
};
use crate::error::{DecodeError, Structure};
use crate::wire::{Reader, len16, pad8, scratch};

/// An Ethernet address.
pub type MacAddr = [u8; 6];

/// A value with an optional mask (1-bits are matched, spec 7.2.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Masked<T> {
    /// The value.
    pub value: T,
    /// The mask, `None` for an exact match.
    pub mask: Option<T>,
}

impl<T> Masked<T> {
    /// An exact match.
    pub const fn exact(value: T) -> Self {
        Self { value, mask: None }
    }

    /// A masked match.
    pub const fn with_mask(value: T, mask: T) -> Self {
        Self {
            value,
            mask: Some(mask),
        }
    }
}

impl<T> From<T> for Masked<T> {
    fn from(value: T) -> Self {
        Self::exact(value)
    }
}

/// Wire representation of one OXM value type.
trait OxmValue: Copy + Sized {
    const LEN: usize;
    fn read(r: &mut Reader) -> Result<Self, DecodeError>;
    fn put<B: BufMut>(self, dst: &mut B);
    /// Whether `self` has 1-bits where `mask` has 0-bits.
    fn outside(self, mask: Self) -> bool;
}

macro_rules! int_value {
    ($($t:ty => $get:ident, $put:ident;)+) => {$(
        impl OxmValue for $t {
            const LEN: usize = size_of::<$t>();
            fn read(r: &mut Reader) -> Result<Self, DecodeError> {
                r.$get()
            }
            fn put<B: BufMut>(self, dst: &mut B) {
                dst.$put(self);
            }
            fn outside(self, mask: Self) -> bool {
                self & !mask != 0
            }
        }
    )+};
}
int_value! {
    u8 => u8, put_u8;
    u16 => u16, put_u16;
    u32 => u32, put_u32;
    u64 => u64, put_u64;
}

impl OxmValue for MacAddr {
    const LEN: usize = 6;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.array()
    }
    fn put<B: BufMut>(self, dst: &mut B) {
        dst.put_slice(&self);
    }
    fn outside(self, mask: Self) -> bool {
        self.iter().zip(mask).any(|(v, m)| v & !m != 0)
    }
}

impl OxmValue for Ipv4Addr {
    const LEN: usize = 4;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.u32().map(Self::from)
    }
    fn put<B: BufMut>(self, dst: &mut B) {
        dst.put_slice(&self.octets());
    }
    fn outside(self, mask: Self) -> bool {
        u32::from(self) & !u32::from(mask) != 0
    }
}

impl OxmValue for Ipv6Addr {
    const LEN: usize = 16;
    fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        r.array::<16>().map(Self::from)
    }
    fn put<B: BufMut>(self, dst: &mut B) {
        dst.put_slice(&self.octets());
    }
    fn outside(self, mask: Self) -> bool {
        u128::from(self) & !u128::from(mask) != 0
    }
}

/// Declares [`OxmField`] and the per-field tables from one list.
macro_rules! oxm_fields {
    ($( $(#[$doc:meta])* $var:ident($ty:ty), maskable = $maskable:literal; )+) => {
        /// One OpenFlow-basic OXM match field (spec 7.2.3.7) with its typed
        /// value and optional mask. Variant names equal [`OxmFieldId`] names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum OxmField {
            $( $(#[$doc])* $var(Masked<$ty>), )+
        }

        impl OxmField {
            /// The field number.
            #[must_use]
            pub const fn id(&self) -> OxmFieldId {
                match self { $( Self::$var(_) => OxmFieldId::$var, )+ }
            }

            /// Whether a mask is present.
            #[must_use]
            pub const fn has_mask(&self) -> bool {
                match self { $( Self::$var(m) => m.mask.is_some(), )+ }
            }

            /// Whether the value has 1-bits outside the mask.
            fn value_outside_mask(&self) -> bool {
                match self { $( Self::$var(m) => m.mask.is_some_and(|k| m.value.outside(k)), )+ }
            }

            fn put_payload<B: BufMut>(&self, dst: &mut B) {
                match self {
                    $( Self::$var(m) => {
                        m.value.put(dst);
                        if let Some(k) = m.mask { k.put(dst); }
                    } )+
                }
            }

            /// Reads value (and mask) of a supported field; `None` if `id` is not supported.
            fn read_payload(id: OxmFieldId, has_mask: bool, r: &mut Reader) -> Option<Result<Self, DecodeError>> {
                fn masked<T: OxmValue>(has_mask: bool, r: &mut Reader) -> Result<Masked<T>, DecodeError> {
                    let value = T::read(r)?;
                    let mask = if has_mask { Some(T::read(r)?) } else { None };
                    Ok(Masked { value, mask })
                }
                match id {
                    $( OxmFieldId::$var => Some(masked::<$ty>(has_mask, r).map(Self::$var)), )+
                    _ => None,
                }
            }
        }

        impl OxmFieldId {
            /// Whether this codec supports the field in matches and set-field.
            #[must_use]
            pub const fn is_supported(self) -> bool {
                matches!(self, $( Self::$var )|+)
            }

            /// Whether the spec allows a mask on this field (spec 7.2.3.7 table).
            #[must_use]
            pub const fn is_maskable(self) -> bool {
                match self { $( Self::$var => $maskable, )+ _ => false }
            }

            /// Length of the value in bytes (without mask), for supported fields.
            #[must_use]
            pub const fn value_len(self) -> Option<usize> {
                match self { $( Self::$var => Some(<$ty as OxmValue>::LEN), )+ _ => None }
            }
        }
    };
}

oxm_fields! {
    /// Switch input port (`OFPXMT_OFB_IN_PORT`).
    InPort(u32), maskable = false;
    /// Metadata passed between tables.
    Metadata(u64), maskable = true;
    /// Ethernet destination address.
    EthDst(MacAddr), maskable = true;
    /// Ethernet source address.
    EthSrc(MacAddr), maskable = true;
    /// Ethernet frame type.
    EthType(u16), maskable = false;
    /// VLAN id with `OFPVID_PRESENT` (13 bits, see [`OxmField::vlan_vid`]).
    VlanVid(u16), maskable = true;
    /// VLAN priority (3 bits).
    VlanPcp(u8), maskable = false;
    /// IP DSCP (6 bits).
    IpDscp(u8), maskable = false;
    /// IP protocol.
    IpProto(u8), maskable = false;
    /// IPv4 source address.
    Ipv4Src(Ipv4Addr), maskable = true;
    /// IPv4 destination address.
    Ipv4Dst(Ipv4Addr), maskable = true;
    /// TCP source port.
    TcpSrc(u16), maskable = false;
    /// TCP destination port.
    TcpDst(u16), maskable = false;
    /// UDP source port.
    UdpSrc(u16), maskable = false;
    /// UDP destination port.
    UdpDst(u16), maskable = false;
    /// ICMPv4 type.
    Icmpv4Type(u8), maskable = false;
    /// ICMPv4 code.
    Icmpv4Code(u8), maskable = false;
    /// ARP opcode.
    ArpOp(u16), maskable = false;
    /// ARP source IPv4 address.
    ArpSpa(Ipv4Addr), maskable = true;
    /// ARP target IPv4 address.
    ArpTpa(Ipv4Addr), maskable = true;
    /// IPv6 source address.
    Ipv6Src(Ipv6Addr), maskable = true;
    /// IPv6 destination address.
    Ipv6Dst(Ipv6Addr), maskable = true;
    /// ICMPv6 type.
    Icmpv6Type(u8), maskable = false;
    /// ICMPv6 code.
    Icmpv6Code(u8), maskable = false;
}

/// A raw 32-bit OXM header (class, field, hasmask, length), as used by
/// table-feature properties to list fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OxmHeader(pub u32);

impl OxmHeader {
    /// Builds the header of an OpenFlow-basic field.
    #[must_use]
    pub fn new(class: u16, field: u8, has_mask: bool, length: u8) -> Self {
        Self(
            u32::from(class) << 16
                | u32::from(field & 0x7f) << 9
                | u32::from(has_mask) << 8
                | u32::from(length),
        )
    }

    /// The header for a supported OpenFlow-basic field.
    #[must_use]
    pub fn basic(field: OxmFieldId, has_mask: bool) -> Self {
        let len = field.value_len().unwrap_or(0) * if has_mask { 2 } else { 1 };
        Self::new(
            OxmClass::OpenflowBasic.to_raw(),
            field.to_raw(),
            has_mask,
            u8::try_from(len).unwrap_or(u8::MAX),
        )
    }

    /// `oxm_class`.
    #[must_use]
    pub const fn class(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// `oxm_field` (7 bits).
    #[must_use]
    pub const fn field(self) -> u8 {
        ((self.0 >> 9) & 0x7f) as u8
    }

    /// `oxm_hasmask`.
    #[must_use]
    pub const fn has_mask(self) -> bool {
        self.0 & 0x100 != 0
    }

    /// `oxm_length`: payload bytes (value plus mask).
    #[must_use]
    pub const fn length(self) -> u8 {
        (self.0 & 0xff) as u8
    }
}

impl OxmField {
    /// `VLAN_VID` matching only packets without a VLAN tag (spec 7.2.3.8).
    #[must_use]
    pub const fn vlan_none() -> Self {
        Self::VlanVid(Masked::exact(OFPVID_NONE))
    }

    /// `VLAN_VID` matching packets with any VLAN tag (value and mask `OFPVID_PRESENT`).
    #[must_use]
    pub const fn vlan_any() -> Self {
        Self::VlanVid(Masked::with_mask(OFPVID_PRESENT, OFPVID_PRESENT))
    }

    /// `VLAN_VID` matching (or setting) a tag with VLAN id `vid` (12 bits);
    /// adds `OFPVID_PRESENT`.
    #[must_use]
    pub const fn vlan_vid(vid: u16) -> Self {
        Self::VlanVid(Masked::exact(OFPVID_PRESENT | (vid & 0x0fff)))
    }

    /// The OXM header this field encodes with.
    #[must_use]
    pub fn header(&self) -> OxmHeader {
        OxmHeader::basic(self.id(), self.has_mask())
    }

    /// Encoded size: 4-byte header plus payload.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        4 + usize::from(self.header().length())
    }

    /// Writes the OXM TLV.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        dst.put_u32(self.header().0);
        self.put_payload(dst);
    }

    /// Reads one OXM TLV. Length errors are attributed to `r`'s structure.
    ///
    /// Spec 7.2.3.2: classes other than `OFPXMC_OPENFLOW_BASIC` are not
    /// supported (`OFPBMC_BAD_TYPE`); unknown fields give `OFPBMC_BAD_FIELD`;
    /// `oxm_length` must match the field's size (`OFPBMC_BAD_LEN`).
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let header = OxmHeader(r.u32()?);
        let mut payload = r.sub(usize::from(header.length()), Structure::Match)?;
        if header.class() != OxmClass::OpenflowBasic.to_raw() {
            return Err(DecodeError::BadOxmClass {
                class: header.class(),
            });
        }
        let bad_field = DecodeError::BadField {
            class: header.class(),
            field: header.field(),
        };
        let id = OxmFieldId::from_raw(header.field()).ok_or(bad_field.clone())?;
        let value_len = id.value_len().ok_or(bad_field.clone())?;
        // Spec 7.2.3.5: a mask on a field that cannot be masked is OFPBMC_BAD_MASK.
        if header.has_mask() && !id.is_maskable() {
            return Err(DecodeError::BadMask { field: id });
        }
        let expected = value_len * if header.has_mask() { 2 } else { 1 };
        if usize::from(header.length()) != expected {
            return Err(DecodeError::bad_len(
                Structure::Match,
                header.length().into(),
                "OXM length does not fit field",
            ));
        }
        let field = Self::read_payload(id, header.has_mask(), &mut payload).ok_or(bad_field)??;
        field.check()?;
        Ok(field)
    }

    /// Checks this field on its own: mask allowed, value in range, no value
    /// bits outside the mask.
    ///
    /// # Errors
    ///
    /// `BadMask`, `BadValue` or `BadWildcards`.
    pub fn check(&self) -> Result<(), DecodeError> {
        let field = self.id();
        // Spec 7.2.3.7: only fields marked maskable accept a mask.
        if self.has_mask() && !field.is_maskable() {
            return Err(DecodeError::BadMask { field });
        }
        // Spec 7.2.3.7 / 7.2.3.8: VLAN_VID is 12+1 bits, VLAN_PCP 3 bits, IP_DSCP 6 bits.
        let in_range = match *self {
            Self::VlanVid(m) => m.value <= 0x1fff && m.mask.is_none_or(|k| k <= 0x1fff),
            Self::VlanPcp(m) => m.value <= 7,
            Self::IpDscp(m) => m.value <= 63,
            _ => true,
        };
        if !in_range {
            return Err(DecodeError::BadValue { field });
        }
        // Spec 7.2.3.5: bits set in the value where the mask is 0 give OFPBMC_BAD_WILDCARDS.
        if self.value_outside_mask() {
            return Err(DecodeError::BadWildcards { field });
        }
        Ok(())
    }
}

/// An OXM match: the list of fields a flow entry or packet is matched on.
/// An empty match matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Match {
    /// The fields, in wire order (prerequisites first).
    pub fields: Vec<OxmField>,
}

impl Match {
    /// The match-everything match.
    #[must_use]
    pub const fn all() -> Self {
        Self { fields: Vec::new() }
    }

    /// A match on `fields`.
    #[must_use]
    pub const fn new(fields: Vec<OxmField>) -> Self {
        Self { fields }
    }

    /// The field with number `id`, if present.
    #[must_use]
    pub fn get(&self, id: OxmFieldId) -> Option<&OxmField> {
        self.fields.iter().find(|f| f.id() == id)
    }

    fn eth_type(&self) -> Option<u16> {
        self.fields.iter().find_map(|f| match f {
            OxmField::EthType(m) => Some(m.value),
            _ => None,
        })
    }

    fn ip_proto(&self) -> Option<u8> {
        self.fields.iter().find_map(|f| match f {
            OxmField::IpProto(m) => Some(m.value),
            _ => None,
        })
    }

    /// Whether the prerequisites of `field` are met by this match
    /// (spec 7.2.3.6 and the prerequisite column of the table in 7.2.3.7).
    ///
    /// The checks are transitive: `TCP_SRC` needs `IP_PROTO=6`, which itself
    /// needs `ETH_TYPE` 0x0800 or 0x86dd, checked when `IP_PROTO` is validated.
    /// As in Open vSwitch, ICMPv4 fields additionally require `ETH_TYPE=0x0800`
    /// and ICMPv6 fields `ETH_TYPE=0x86dd`. Order is not enforced (be liberal
    /// in what we accept; we always emit prerequisites first).
    #[must_use]
    pub fn prerequisites_met(&self, field: OxmFieldId) -> bool {
        use OxmFieldId as F;
        let eth = self.eth_type();
        let proto = self.ip_proto();
        let is_ip = matches!(eth, Some(ethertype::IPV4 | ethertype::IPV6));
        match field {
            // "VLAN_PCP requires VLAN_VID != NONE": a tag must be present.
            F::VlanPcp => self.fields.iter().any(|f| {
                matches!(f, OxmField::VlanVid(m)
                    if m.value & OFPVID_PRESENT != 0 && m.mask.is_none_or(|k| k & OFPVID_PRESENT != 0))
            }),
            F::IpDscp | F::IpEcn | F::IpProto => is_ip,
            F::Ipv4Src | F::Ipv4Dst => eth == Some(ethertype::IPV4),
            F::Ipv6Src | F::Ipv6Dst | F::Ipv6Flabel => eth == Some(ethertype::IPV6),
            F::ArpOp | F::ArpSpa | F::ArpTpa | F::ArpSha | F::ArpTha => eth == Some(ethertype::ARP),
            F::TcpSrc | F::TcpDst => is_ip && proto == Some(ip_proto::TCP),
            F::UdpSrc | F::UdpDst => is_ip && proto == Some(ip_proto::UDP),
            F::Icmpv4Type | F::Icmpv4Code => eth == Some(ethertype::IPV4) && proto == Some(ip_proto::ICMP),
            F::Icmpv6Type | F::Icmpv6Code => eth == Some(ethertype::IPV6) && proto == Some(ip_proto::ICMPV6),
            _ => true,
        }
    }

    /// Validates the whole match.
    ///
    /// # Errors
    ///
    /// In this order: per-field errors of [`OxmField::check`]
    /// (`OFPBMC_BAD_MASK`, `BAD_VALUE`, `BAD_WILDCARDS`); a field present twice
    /// (`OFPBMC_DUP_FIELD`, spec 7.2.3.5); a missing prerequisite
    /// (`OFPBMC_BAD_PREREQ`, spec 7.2.3.6).
    pub fn validate(&self) -> Result<(), DecodeError> {
        for f in &self.fields {
            f.check()?;
        }
        for (i, f) in self.fields.iter().enumerate() {
            if self.fields.iter().take(i).any(|g| g.id() == f.id()) {
                return Err(DecodeError::DupField { field: f.id() });
            }
        }
        for f in &self.fields {
            if !self.prerequisites_met(f.id()) {
                return Err(DecodeError::BadPrereq { field: f.id() });
            }
        }
        Ok(())
    }

    /// Reads an `ofp_match` (padding included) from `r` and validates it.
    ///
    /// # Errors
    ///
    /// `OFPBMC_BAD_TYPE` for non-OXM matches (spec 7.2.3.1), `OFPBMC_BAD_LEN`
    /// for inconsistent lengths, and everything [`Match::validate`] reports.
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let mut header = r.sub(4, Structure::Match)?;
        let match_type = header.u16()?;
        let length = usize::from(header.u16()?);
        if match_type != MatchType::Oxm.to_raw() {
            return Err(DecodeError::BadMatchType { match_type });
        }
        // Spec 7.2.3.1: length excludes padding; includes the 4-byte header.
        if length < 4 {
            return Err(DecodeError::bad_len(
                Structure::Match,
                length,
                "match shorter than its header",
            ));
        }
        let mut oxms = r.sub(length - 4, Structure::Match)?;
        // The match is padded to a multiple of 8 bytes.
        r.skip(pad8(length) - length)
            .map_err(|_| DecodeError::bad_len(Structure::Match, length, "match padding missing"))?;
        let mut fields = Vec::new();
        while !oxms.is_empty() {
            fields.push(OxmField::decode(&mut oxms)?);
        }
        let m = Self { fields };
        m.validate()?;
        Ok(m)
    }

    /// Decodes a standalone `ofp_match` (with padding) from `bytes`.
    ///
    /// # Errors
    ///
    /// As for matches inside messages; trailing bytes give `OFPBMC_BAD_LEN`.
    pub fn decode_bytes(bytes: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, Structure::Match);
        let m = Self::decode(&mut r)?;
        r.finish()?;
        Ok(m)
    }

    /// Length on the wire without padding (the `ofp_match.length` field).
    #[must_use]
    pub fn unpadded_len(&self) -> usize {
        4 + self.fields.iter().map(OxmField::encoded_len).sum::<usize>()
    }

    /// Writes the `ofp_match`, padded to 8 bytes.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        let body = scratch(|b| self.fields.iter().for_each(|f| f.encode(b)));
        let length = 4 + body.len();
        dst.put_u16(MatchType::Oxm.to_raw());
        dst.put_u16(len16(length));
        dst.put_slice(&body);
        dst.put_bytes(0, pad8(length) - length);
    }
}

impl<I: IntoIterator<Item = OxmField>> From<I> for Match {
    fn from(fields: I) -> Self {
        Self {
            fields: fields.into_iter().collect(),
        }
    }
}

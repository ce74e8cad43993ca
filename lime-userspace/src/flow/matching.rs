//! Rule matches with OpenFlow 1.3 semantics, and their compilation to the datapath's
//! (value, mask) pair of [`FlowKey`]s.
//!
//! A [`Match`] names each field it constrains; a field left `None` is wildcarded. Fields
//! that OpenFlow 1.3 lets a controller mask (spec 7.2.3.7, table 12: METADATA, ETH_DST,
//! ETH_SRC, VLAN_VID, IPV4_SRC/DST, IPV6_SRC/DST, ARP_SPA/TPA) are [`Masked`]; the others
//! are exact. Prerequisites (spec 7.2.3.6) are checked by [`Match::validate`].
use std::net::{Ipv4Addr, Ipv6Addr};

use lime_common::{action::port_no, flow::FlowKey, flow::VID_PRESENT};
use serde::{Deserialize, Serialize};

use super::FlowError;

/// A value and the bits of it that must match (1 = must match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Masked<T> {
    /// Value; bits outside `mask` must be zero.
    pub value: T,
    /// Mask.
    pub mask: T,
}

impl<T: Copy> Masked<T> {
    /// A mask with every bit set.
    pub fn exact(value: T) -> Self
    where
        T: AllOnes,
    {
        Self {
            value,
            mask: T::all_ones(),
        }
    }
}

/// Types with an all-ones value (an exact mask).
pub trait AllOnes {
    /// Every bit set.
    fn all_ones() -> Self;
}
impl AllOnes for u16 {
    fn all_ones() -> Self {
        u16::MAX
    }
}
impl AllOnes for u64 {
    fn all_ones() -> Self {
        u64::MAX
    }
}
impl AllOnes for [u8; 6] {
    fn all_ones() -> Self {
        [0xff; 6]
    }
}
impl AllOnes for Ipv4Addr {
    fn all_ones() -> Self {
        Ipv4Addr::BROADCAST
    }
}
impl AllOnes for Ipv6Addr {
    fn all_ones() -> Self {
        Ipv6Addr::from([0xff; 16])
    }
}

/// Ethertypes used by prerequisites.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// ARP.
    pub const ARP: u16 = 0x0806;
}

/// IP protocol numbers used by prerequisites.
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// The fields a rule matches on. `Default` is match-everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(
    missing_docs,
    reason = "each field is named after its OpenFlow OXM field"
)]
pub struct Match {
    pub in_port: Option<u32>,
    pub metadata: Option<Masked<u64>>,
    pub eth_dst: Option<Masked<[u8; 6]>>,
    pub eth_src: Option<Masked<[u8; 6]>>,
    pub eth_type: Option<u16>,
    /// OpenFlow VLAN_VID: `VID_PRESENT | vid` for tagged frames, 0 (OFPVID_NONE) for
    /// untagged ones; `{value: VID_PRESENT, mask: VID_PRESENT}` matches any tag.
    pub vlan_vid: Option<Masked<u16>>,
    pub vlan_pcp: Option<u8>,
    pub ip_dscp: Option<u8>,
    pub ip_proto: Option<u8>,
    pub ipv4_src: Option<Masked<Ipv4Addr>>,
    pub ipv4_dst: Option<Masked<Ipv4Addr>>,
    pub ipv6_src: Option<Masked<Ipv6Addr>>,
    pub ipv6_dst: Option<Masked<Ipv6Addr>>,
    pub tcp_src: Option<u16>,
    pub tcp_dst: Option<u16>,
    pub udp_src: Option<u16>,
    pub udp_dst: Option<u16>,
    pub icmpv4_type: Option<u8>,
    pub icmpv4_code: Option<u8>,
    pub icmpv6_type: Option<u8>,
    pub icmpv6_code: Option<u8>,
    pub arp_op: Option<u16>,
    pub arp_spa: Option<Masked<Ipv4Addr>>,
    pub arp_tpa: Option<Masked<Ipv4Addr>>,
}

fn check_bits(field: &'static str, value: &[u8], mask: &[u8]) -> Result<(), FlowError> {
    if value.iter().zip(mask).any(|(v, m)| v & !m != 0) {
        return Err(FlowError::BadWildcards { field });
    }
    Ok(())
}

impl Match {
    /// Check prerequisites (OpenFlow 1.3 7.2.3.6), value bits outside masks, and ranges.
    pub fn validate(&self) -> Result<(), FlowError> {
        let eth = self.eth_type;
        let need_eth = |field: &'static str, ok: &[u16]| -> Result<(), FlowError> {
            match eth {
                Some(t) if ok.contains(&t) => Ok(()),
                _ => Err(FlowError::BadPrerequisite {
                    field,
                    needs: "eth_type",
                }),
            }
        };
        let need_proto = |field: &'static str, proto: u8, eths: &[u16]| -> Result<(), FlowError> {
            need_eth(field, eths)?;
            if self.ip_proto != Some(proto) {
                return Err(FlowError::BadPrerequisite {
                    field,
                    needs: "ip_proto",
                });
            }
            Ok(())
        };
        let ip = [ethertype::IPV4, ethertype::IPV6];
        if let Some(p) = self.in_port
            && (p == 0 || (p > port_no::MAX && p != port_no::CONTROLLER && p != port_no::LOCAL))
        {
            return Err(FlowError::BadValue { field: "in_port" });
        }
        if let Some(m) = self.metadata {
            check_bits("metadata", &m.value.to_be_bytes(), &m.mask.to_be_bytes())?;
        }
        for (field, m) in [("eth_dst", self.eth_dst), ("eth_src", self.eth_src)] {
            if let Some(m) = m {
                check_bits(field, &m.value, &m.mask)?;
            }
        }
        if let Some(v) = self.vlan_vid {
            if v.value & !0x1fff != 0 || v.mask & !0x1fff != 0 {
                return Err(FlowError::BadValue { field: "vlan_vid" });
            }
            check_bits("vlan_vid", &v.value.to_be_bytes(), &v.mask.to_be_bytes())?;
        }
        if let Some(pcp) = self.vlan_pcp {
            // VLAN_PCP requires VLAN_VID != NONE: the match must require a tag.
            let tagged = self
                .vlan_vid
                .is_some_and(|v| v.mask & VID_PRESENT != 0 && v.value & VID_PRESENT != 0);
            if !tagged {
                return Err(FlowError::BadPrerequisite {
                    field: "vlan_pcp",
                    needs: "vlan_vid",
                });
            }
            if pcp > 7 {
                return Err(FlowError::BadValue { field: "vlan_pcp" });
            }
        }
        if let Some(d) = self.ip_dscp {
            need_eth("ip_dscp", &ip)?;
            if d > 63 {
                return Err(FlowError::BadValue { field: "ip_dscp" });
            }
        }
        if self.ip_proto.is_some() {
            need_eth("ip_proto", &ip)?;
        }
        for (field, m) in [("ipv4_src", self.ipv4_src), ("ipv4_dst", self.ipv4_dst)] {
            if let Some(m) = m {
                need_eth(field, &[ethertype::IPV4])?;
                check_bits(field, &m.value.octets(), &m.mask.octets())?;
            }
        }
        for (field, m) in [("ipv6_src", self.ipv6_src), ("ipv6_dst", self.ipv6_dst)] {
            if let Some(m) = m {
                need_eth(field, &[ethertype::IPV6])?;
                check_bits(field, &m.value.octets(), &m.mask.octets())?;
            }
        }
        for (field, v) in [("tcp_src", self.tcp_src), ("tcp_dst", self.tcp_dst)] {
            if v.is_some() {
                need_proto(field, ipproto::TCP, &ip)?;
            }
        }
        for (field, v) in [("udp_src", self.udp_src), ("udp_dst", self.udp_dst)] {
            if v.is_some() {
                need_proto(field, ipproto::UDP, &ip)?;
            }
        }
        for (field, v) in [
            ("icmpv4_type", self.icmpv4_type),
            ("icmpv4_code", self.icmpv4_code),
        ] {
            if v.is_some() {
                need_proto(field, ipproto::ICMP, &[ethertype::IPV4])?;
            }
        }
        for (field, v) in [
            ("icmpv6_type", self.icmpv6_type),
            ("icmpv6_code", self.icmpv6_code),
        ] {
            if v.is_some() {
                need_proto(field, ipproto::ICMPV6, &[ethertype::IPV6])?;
            }
        }
        if self.arp_op.is_some() {
            need_eth("arp_op", &[ethertype::ARP])?;
        }
        for (field, m) in [("arp_spa", self.arp_spa), ("arp_tpa", self.arp_tpa)] {
            if let Some(m) = m {
                need_eth(field, &[ethertype::ARP])?;
                check_bits(field, &m.value.octets(), &m.mask.octets())?;
            }
        }
        // TCP/UDP/ICMP share the transport slots of the flow key: at most one family.
        let families = [
            self.tcp_src.is_some() || self.tcp_dst.is_some(),
            self.udp_src.is_some() || self.udp_dst.is_some(),
            self.icmpv4_type.is_some() || self.icmpv4_code.is_some(),
            self.icmpv6_type.is_some() || self.icmpv6_code.is_some(),
        ];
        if families.iter().filter(|f| **f).count() > 1 {
            return Err(FlowError::BadPrerequisite {
                field: "transport",
                needs: "one ip_proto",
            });
        }
        Ok(())
    }

    /// Compile to the datapath's (value, mask). Call [`Match::validate`] first.
    #[must_use]
    pub fn compile(&self) -> (FlowKey, FlowKey) {
        let mut v = FlowKey::default();
        let mut m = FlowKey::default();
        if let Some(p) = self.in_port {
            v.in_port = p;
            m.in_port = u32::MAX;
        }
        if let Some(x) = self.metadata {
            v.metadata = x.value;
            m.metadata = x.mask;
        }
        if let Some(x) = self.eth_dst {
            v.eth_dst = x.value;
            m.eth_dst = x.mask;
        }
        if let Some(x) = self.eth_src {
            v.eth_src = x.value;
            m.eth_src = x.mask;
        }
        if let Some(t) = self.eth_type {
            v.eth_type = t.to_be_bytes();
            m.eth_type = [0xff; 2];
        }
        if let Some(x) = self.vlan_vid {
            v.vlan_vid = x.value;
            m.vlan_vid = x.mask;
        }
        if let Some(p) = self.vlan_pcp {
            v.vlan_pcp = p;
            m.vlan_pcp = 0xff;
        }
        if let Some(d) = self.ip_dscp {
            v.ip_dscp = d;
            m.ip_dscp = 0xff;
        }
        if let Some(p) = self.ip_proto {
            v.ip_proto = p;
            m.ip_proto = 0xff;
        }
        let v4 = |dst: &mut [u8; 16], a: Ipv4Addr| dst[..4].copy_from_slice(&a.octets());
        for x in [self.ipv4_src, self.arp_spa].into_iter().flatten() {
            v4(&mut v.nw_src, x.value);
            v4(&mut m.nw_src, x.mask);
        }
        for x in [self.ipv4_dst, self.arp_tpa].into_iter().flatten() {
            v4(&mut v.nw_dst, x.value);
            v4(&mut m.nw_dst, x.mask);
        }
        if let Some(x) = self.ipv6_src {
            v.nw_src = x.value.octets();
            m.nw_src = x.mask.octets();
        }
        if let Some(x) = self.ipv6_dst {
            v.nw_dst = x.value.octets();
            m.nw_dst = x.mask.octets();
        }
        let ports = [
            (
                self.tcp_src.or(self.udp_src).or(self.arp_op),
                &mut v.tp_src,
                &mut m.tp_src,
            ),
            (self.tcp_dst.or(self.udp_dst), &mut v.tp_dst, &mut m.tp_dst),
        ];
        for (p, vv, mm) in ports {
            if let Some(p) = p {
                *vv = p.to_be_bytes();
                *mm = [0xff; 2];
            }
        }
        let icmp = [
            (
                self.icmpv4_type.or(self.icmpv6_type),
                &mut v.tp_src,
                &mut m.tp_src,
            ),
            (
                self.icmpv4_code.or(self.icmpv6_code),
                &mut v.tp_dst,
                &mut m.tp_dst,
            ),
        ];
        for (t, vv, mm) in icmp {
            if let Some(t) = t {
                *vv = [0, t];
                *mm = [0, 0xff];
            }
        }
        (v, m)
    }
}

/// Whether `key` matches (value, mask).
#[must_use]
pub fn key_matches(key: &FlowKey, value: &FlowKey, mask: &FlowKey) -> bool {
    key.words()
        .iter()
        .zip(value.words())
        .zip(mask.words())
        .all(|((k, v), m)| k & m == *v)
}

/// OpenFlow non-strict "covers": every packet matching `rule` also matches `filter`
/// (the filter is equally or less specific and agrees on what it constrains).
#[must_use]
pub fn covers(filter: &(FlowKey, FlowKey), rule: &(FlowKey, FlowKey)) -> bool {
    let (fv, fm) = filter;
    let (rv, rm) = rule;
    fv.words()
        .iter()
        .zip(fm.words())
        .zip(rv.words().iter().zip(rm.words()))
        .all(|((fv, fm), (rv, rm))| rm & fm == *fm && rv & fm == *fv)
}

/// Whether some packet could match both (for CHECK_OVERLAP, spec 6.4).
#[must_use]
pub fn overlaps(a: &(FlowKey, FlowKey), b: &(FlowKey, FlowKey)) -> bool {
    let (av, am) = a;
    let (bv, bm) = b;
    av.words()
        .iter()
        .zip(am.words())
        .zip(bv.words().iter().zip(bm.words()))
        .all(|((av, am), (bv, bm))| (av ^ bv) & am & bm == 0)
}

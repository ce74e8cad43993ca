//! Ethernet/IP/UDP frames of a chosen length, with correct IP and UDP lengths and
//! checksums (the payload is a counting byte pattern).
use std::net::IpAddr;

use super::TrafficError;

/// Smallest frame built (a 64-byte frame on the wire, FCS not counted, is 60 bytes;
/// 64 is accepted and used by the benchmarks).
pub const MIN_FRAME: usize = 60;
/// Largest frame built: a 1500-byte MTU payload plus the Ethernet header.
pub const MAX_FRAME: usize = 1514;

const ETH_HLEN: usize = 14;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const UDP_HLEN: usize = 8;

/// One flow's addresses.
#[derive(Debug, Clone, Copy)]
pub struct UdpFlow {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source address (IPv4 or IPv6, the same family as `dst`).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// UDP source port.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
    /// IP DSCP.
    pub dscp: u8,
}

fn check_len(len: usize, header: usize) -> Result<(), TrafficError> {
    if !(MIN_FRAME.max(header)..=MAX_FRAME).contains(&len) {
        return Err(TrafficError::Frame(format!(
            "frame length {len} outside {}..={MAX_FRAME}",
            MIN_FRAME.max(header)
        )));
    }
    Ok(())
}

/// Ones'-complement sum of 16-bit words.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !u16::try_from(acc).unwrap_or(0xffff)
}

/// Build a UDP frame of exactly `len` bytes.
///
/// # Errors
/// [`TrafficError::Frame`] if `len` is out of range or the address families differ.
pub fn udp_frame(flow: &UdpFlow, len: usize) -> Result<Vec<u8>, TrafficError> {
    let ip_hlen = match (flow.src, flow.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => IPV4_HLEN,
        (IpAddr::V6(_), IpAddr::V6(_)) => IPV6_HLEN,
        _ => return Err(TrafficError::Frame("mixed address families".into())),
    };
    let header = ETH_HLEN + ip_hlen + UDP_HLEN;
    check_len(len, header)?;
    let mut f = Vec::with_capacity(len);
    f.extend(flow.dst_mac);
    f.extend(flow.src_mac);
    let udp_len = len - ETH_HLEN - ip_hlen;
    let udp_len16 = u16::try_from(udp_len).unwrap_or(u16::MAX);
    let mut pseudo = 0u32;
    match (flow.src, flow.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend(0x0800u16.to_be_bytes());
            let total = u16::try_from(IPV4_HLEN + udp_len).unwrap_or(u16::MAX);
            let mut ip = [0u8; IPV4_HLEN];
            ip[0] = 0x45;
            ip[1] = flow.dscp << 2;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = fold(sum16(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend(ip);
            pseudo = sum16(&s.octets(), pseudo);
            pseudo = sum16(&d.octets(), pseudo);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend(0x86ddu16.to_be_bytes());
            let tc = u32::from(flow.dscp) << 2;
            f.extend((0x6000_0000u32 | (tc << 20)).to_be_bytes());
            f.extend(udp_len16.to_be_bytes());
            f.push(17);
            f.push(64);
            f.extend(s.octets());
            f.extend(d.octets());
            pseudo = sum16(&s.octets(), pseudo);
            pseudo = sum16(&d.octets(), pseudo);
        }
        _ => unreachable!("checked above"),
    }
    pseudo += 17 + u32::from(udp_len16);
    let udp_start = f.len();
    f.extend(flow.sport.to_be_bytes());
    f.extend(flow.dport.to_be_bytes());
    f.extend(udp_len16.to_be_bytes());
    f.extend([0, 0]);
    f.extend((0..udp_len - UDP_HLEN).map(|i| (i & 0xff) as u8));
    let mut c = fold(sum16(&f[udp_start..], pseudo));
    if c == 0 {
        c = 0xffff;
    }
    f[udp_start + 6..udp_start + 8].copy_from_slice(&c.to_be_bytes());
    Ok(f)
}

/// Read back the flow of an untagged Ethernet/IPv4 or IPv6/UDP frame (such as one
/// `testgen::packet_hitting` made), to rebuild it at another length.
///
/// # Errors
/// [`TrafficError::Frame`] if it is not such a frame.
pub fn udp_flow_of(frame: &[u8]) -> Result<UdpFlow, TrafficError> {
    let bad = |why: &str| TrafficError::Frame(format!("not an untagged UDP frame: {why}"));
    let get = |a: usize, b: usize| frame.get(a..b).ok_or_else(|| bad("too short"));
    let mac = |at: usize| -> Result<[u8; 6], TrafficError> {
        get(at, at + 6)?.try_into().map_err(|_| bad("too short"))
    };
    let (dst_mac, src_mac) = (mac(0)?, mac(6)?);
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let (src, dst, dscp, l4) = match ethertype {
        0x0800 => {
            let ip = get(ETH_HLEN, ETH_HLEN + IPV4_HLEN)?;
            if ip[0] != 0x45 || ip[9] != 17 {
                return Err(bad("IPv4 with options or not UDP"));
            }
            let s: [u8; 4] = ip[12..16].try_into().map_err(|_| bad("short"))?;
            let d: [u8; 4] = ip[16..20].try_into().map_err(|_| bad("short"))?;
            (
                IpAddr::from(s),
                IpAddr::from(d),
                ip[1] >> 2,
                ETH_HLEN + IPV4_HLEN,
            )
        }
        0x86dd => {
            let ip = get(ETH_HLEN, ETH_HLEN + IPV6_HLEN)?;
            if ip[6] != 17 {
                return Err(bad("IPv6 not directly UDP"));
            }
            let s: [u8; 16] = ip[8..24].try_into().map_err(|_| bad("short"))?;
            let d: [u8; 16] = ip[24..40].try_into().map_err(|_| bad("short"))?;
            let tc = (u16::from_be_bytes([ip[0], ip[1]]) >> 4) & 0xff;
            (
                IpAddr::from(s),
                IpAddr::from(d),
                u8::try_from(tc >> 2).unwrap_or(0),
                ETH_HLEN + IPV6_HLEN,
            )
        }
        _ => return Err(bad("neither IPv4 nor IPv6")),
    };
    let udp = get(l4, l4 + UDP_HLEN)?;
    Ok(UdpFlow {
        src_mac,
        dst_mac,
        src,
        dst,
        sport: u16::from_be_bytes([udp[0], udp[1]]),
        dport: u16::from_be_bytes([udp[2], udp[3]]),
        dscp,
    })
}

/// `n` flows like `base` that differ in their UDP source port (`base.sport + i`), as
/// frames of `len` bytes.
///
/// # Errors
/// As [`udp_frame`]; [`TrafficError::Config`] for no flows.
pub fn flows_by_port(base: &UdpFlow, n: usize, len: usize) -> Result<Vec<Vec<u8>>, TrafficError> {
    if n == 0 {
        return Err(TrafficError::Config("at least one flow".into()));
    }
    (0..n)
        .map(|i| {
            let mut f = *base;
            f.sport = base
                .sport
                .wrapping_add(u16::try_from(i % 65_536).unwrap_or(0));
            udp_frame(&f, len)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::packet::{L3, L4, Packet};

    fn flow(src: IpAddr, dst: IpAddr) -> UdpFlow {
        UdpFlow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src,
            dst,
            sport: 4000,
            dport: 9,
            dscp: 10,
        }
    }

    #[test]
    fn frames_have_the_asked_length_and_parse_back() {
        let v4 = flow(
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 2).into(),
        );
        let v6 = flow(
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).into(),
        );
        for f in [v4, v6] {
            for len in [64, 65, 128, 1500, MAX_FRAME] {
                let bytes = udp_frame(&f, len).expect("build");
                assert_eq!(bytes.len(), len);
                let p = Packet::parse(&bytes).expect("parses");
                let l4 = match &p.l3 {
                    L3::Ipv4(ip) => &ip.l4,
                    L3::Ipv6(ip) => &ip.l4,
                    other => panic!("{other:?}"),
                };
                assert!(matches!(l4, L4::Udp { src: 4000, dst: 9 }), "{l4:?}");
                let back = udp_flow_of(&bytes).expect("flow");
                assert_eq!((back.src, back.dst, back.dscp), (f.src, f.dst, f.dscp));
            }
        }
    }

    #[test]
    fn ipv4_udp_checksum_verifies() {
        let f = flow(
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 2).into(),
        );
        let b = udp_frame(&f, 100).expect("build");
        // IP header sums to 0xffff; so does the UDP segment with its pseudo-header.
        assert_eq!(fold(sum16(&b[14..34], 0)), 0);
        let pseudo = sum16(&b[26..34], 17 + 66);
        assert_eq!(fold(sum16(&b[34..], pseudo)), 0);
    }

    #[test]
    fn bad_lengths_and_families_are_refused() {
        let f = flow(
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv6Addr::LOCALHOST.into(),
        );
        assert!(udp_frame(&f, 64).is_err());
        let g = flow(
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(10, 0, 0, 2).into(),
        );
        assert!(udp_frame(&g, 59).is_err());
        assert!(udp_frame(&g, 1515).is_err());
        assert!(flows_by_port(&g, 0, 64).is_err());
        assert_eq!(flows_by_port(&g, 3, 64).expect("flows").len(), 3);
    }
}

//! Address types used by the topology model: MAC addresses and IP addresses with a
//! prefix length.
//!
//! All three are written and read as strings (`"02:00:00:00:00:01"`, `"10.0.0.1/24"`,
//! `"fd00::1/64"`), both by `Display`/`FromStr` and by serde, so they look the same in
//! TOML topology files, in the JSON lab state and on `ip`'s command line.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The deterministic default MAC of the host at `index` in the topology:
    /// `02:00:00:00:HH:LL` where `HHLL` is `index + 1` (locally administered, unicast).
    ///
    /// Returns `None` when `index + 1` does not fit in 16 bits.
    #[must_use]
    pub fn for_host_index(index: usize) -> Option<Self> {
        let n = u16::try_from(index.checked_add(1)?).ok()?;
        let [hi, lo] = n.to_be_bytes();
        Some(Self([0x02, 0, 0, 0, hi, lo]))
    }

    /// The six octets.
    #[must_use]
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// True for a unicast address that is not all zeros (what an interface may carry).
    #[must_use]
    pub const fn is_unicast(self) -> bool {
        let o = self.0;
        o[0] & 1 == 0
            && !(o[0] == 0 && o[1] == 0 && o[2] == 0 && o[3] == 0 && o[4] == 0 && o[5] == 0)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expected six hexadecimal octets separated by ':' (like 02:00:00:00:00:01)")]
pub struct ParseMacError;

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or(ParseMacError)?;
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseMacError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(Self(out))
    }
}

/// Why a string is not an address with a prefix length.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseCidrError {
    /// No `/prefix` part.
    #[error("missing prefix length (write ADDRESS/PREFIX, like 10.0.0.1/24)")]
    MissingPrefix,
    /// The address part does not parse.
    #[error("bad address {address:?}")]
    Address {
        /// The address part as written.
        address: String,
        /// The parser's complaint.
        #[source]
        source: std::net::AddrParseError,
    },
    /// The prefix is not a number or is longer than the address.
    #[error("bad prefix length {prefix:?} (must be 0..={max})")]
    Prefix {
        /// The prefix part as written.
        prefix: String,
        /// The longest allowed prefix for this family.
        max: u8,
    },
}

fn split_cidr<A>(s: &str, max: u8) -> Result<(A, u8), ParseCidrError>
where
    A: FromStr<Err = std::net::AddrParseError>,
{
    let (addr, prefix) = s.split_once('/').ok_or(ParseCidrError::MissingPrefix)?;
    let address = addr.parse().map_err(|source| ParseCidrError::Address {
        address: addr.to_owned(),
        source,
    })?;
    let bad_prefix = || ParseCidrError::Prefix {
        prefix: prefix.to_owned(),
        max,
    };
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_prefix());
    }
    let len: u8 = prefix.parse().map_err(|_| bad_prefix())?;
    if len > max {
        return Err(bad_prefix());
    }
    Ok((address, len))
}

/// An IPv4 address with its prefix length, as configured on an interface (`10.0.0.1/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    /// The interface address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// The deterministic default address of the host at `index`: `10.0.0.<index+1>/24`.
    ///
    /// Returns `None` when `index + 1` is not a usable host number in a /24 (1..=254).
    #[must_use]
    pub fn for_host_index(index: usize) -> Option<Self> {
        let n = u8::try_from(index.checked_add(1)?)
            .ok()
            .filter(|n| *n <= 254)?;
        Some(Self {
            addr: Ipv4Addr::new(10, 0, 0, n),
            prefix_len: 24,
        })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix_len) = split_cidr(s, 32)?;
        Ok(Self { addr, prefix_len })
    }
}

/// An IPv6 address with its prefix length, as configured on an interface (`fd00::1/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv6Cidr {
    /// The interface address.
    pub addr: Ipv6Addr,
    /// The prefix length, 0..=128.
    pub prefix_len: u8,
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv6Cidr {
    type Err = ParseCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix_len) = split_cidr(s, 128)?;
        Ok(Self { addr, prefix_len })
    }
}

/// serde as strings through `Display`/`FromStr`.
macro_rules! serde_via_str {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(D::Error::custom)
            }
        }
    )*};
}

serde_via_str!(MacAddr, Ipv4Cidr, Ipv6Cidr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip_and_errors() {
        let mac: MacAddr = "02:AB:00:0c:00:01".parse().unwrap();
        assert_eq!(mac.0, [0x02, 0xab, 0, 0x0c, 0, 1]);
        assert_eq!(mac.to_string(), "02:ab:00:0c:00:01");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02:00:00:00:00:1g",
            "002:00:00:00:00:01",
            "02::00:00:00:01",
            "+2:00:00:00:00:01",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>(),
                Err(ParseMacError),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn mac_unicast() {
        assert!(MacAddr([2, 0, 0, 0, 0, 1]).is_unicast());
        assert!(!MacAddr([1, 0, 0x5e, 0, 0, 1]).is_unicast());
        assert!(!MacAddr([0; 6]).is_unicast());
        assert!(!MacAddr([0xff; 6]).is_unicast());
    }

    #[test]
    fn default_host_addresses() {
        assert_eq!(
            MacAddr::for_host_index(0).unwrap().to_string(),
            "02:00:00:00:00:01"
        );
        assert_eq!(
            MacAddr::for_host_index(0x1233).unwrap().to_string(),
            "02:00:00:00:12:34"
        );
        assert_eq!(MacAddr::for_host_index(0xffff), None);
        assert_eq!(
            Ipv4Cidr::for_host_index(0).unwrap().to_string(),
            "10.0.0.1/24"
        );
        assert_eq!(
            Ipv4Cidr::for_host_index(253).unwrap().to_string(),
            "10.0.0.254/24"
        );
        assert_eq!(Ipv4Cidr::for_host_index(254), None);
    }

    #[test]
    fn cidr_parse() {
        let v4: Ipv4Cidr = "10.1.2.3/16".parse().unwrap();
        assert_eq!((v4.addr, v4.prefix_len), (Ipv4Addr::new(10, 1, 2, 3), 16));
        let v6: Ipv6Cidr = "fd00::1/64".parse().unwrap();
        assert_eq!(v6.to_string(), "fd00::1/64");
        assert_eq!(
            "10.0.0.1".parse::<Ipv4Cidr>(),
            Err(ParseCidrError::MissingPrefix)
        );
        assert!(matches!(
            "10.0.0.1/33".parse::<Ipv4Cidr>(),
            Err(ParseCidrError::Prefix { max: 32, .. })
        ));
        assert!(matches!(
            "10.0.0.1/+3".parse::<Ipv4Cidr>(),
            Err(ParseCidrError::Prefix { .. })
        ));
        assert!(matches!(
            "10.0.0.256/24".parse::<Ipv4Cidr>(),
            Err(ParseCidrError::Address { .. })
        ));
        assert!(matches!(
            "fd00::1/24".parse::<Ipv4Cidr>(),
            Err(ParseCidrError::Address { .. })
        ));
        assert!(matches!(
            "fd00::1/129".parse::<Ipv6Cidr>(),
            Err(ParseCidrError::Prefix { max: 128, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn mac_display_parse_round_trip(octets: [u8; 6]) {
            let mac = MacAddr(octets);
            proptest::prop_assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
        }

        #[test]
        fn cidr_display_parse_round_trip(a: u32, p in 0u8..=32, b: u128, q in 0u8..=128) {
            let v4 = Ipv4Cidr { addr: Ipv4Addr::from(a), prefix_len: p };
            proptest::prop_assert_eq!(v4.to_string().parse::<Ipv4Cidr>(), Ok(v4));
            let v6 = Ipv6Cidr { addr: Ipv6Addr::from(b), prefix_len: q };
            proptest::prop_assert_eq!(v6.to_string().parse::<Ipv6Cidr>(), Ok(v6));
        }
    }
}

//! OpenFlow controller targets as written in a topology, in Open vSwitch's syntax:
//! `tcp:HOST:PORT` (the switch connects to a controller) and `ptcp:PORT[:ADDR]` (the
//! switch listens). The lab only stores and checks them; the control plane uses them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A parsed controller target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controller {
    /// `tcp:HOST:PORT`: connect to a controller. An IPv6 host is written in brackets.
    Tcp {
        /// Host name or address (without brackets).
        host: String,
        /// TCP port, 1..=65535.
        port: u16,
    },
    /// `ptcp:PORT[:ADDR]`: listen for a controller.
    Ptcp {
        /// TCP port, 1..=65535.
        port: u16,
        /// Local address to bind, if not all addresses.
        addr: Option<IpAddr>,
    },
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Self::Ptcp { port, addr: None } => write!(f, "ptcp:{port}"),
            Self::Ptcp {
                port,
                addr: Some(IpAddr::V6(a)),
            } => write!(f, "ptcp:{port}:[{a}]"),
            Self::Ptcp {
                port,
                addr: Some(a),
            } => write!(f, "ptcp:{port}:{a}"),
        }
    }
}

fn parse_port(s: &str) -> Result<u16, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("port must be a number");
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err("port must be in 1..=65535"),
        Ok(p) => Ok(p),
    }
}

/// Split `HOST:PORT` or `[V6]:PORT`.
fn split_host_port(s: &str) -> Result<(&str, &str), &'static str> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, rest) = rest
            .split_once(']')
            .ok_or("missing ']' after IPv6 address")?;
        let port = rest.strip_prefix(':').ok_or("missing :PORT")?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "bad IPv6 address in brackets")?;
        Ok((host, port))
    } else {
        s.rsplit_once(':').ok_or("missing :PORT")
    }
}

fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

fn parse_addr(s: &str) -> Result<IpAddr, &'static str> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    inner.parse().map_err(|_| "bad listen address")
}

impl FromStr for Controller {
    /// A short reason, used in [`crate::TopologyError::BadController`].
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = split_host_port(rest)?;
            if !host.contains(':') && !valid_host_name(host) {
                return Err("bad host name");
            }
            Ok(Self::Tcp {
                host: host.to_owned(),
                port: parse_port(port)?,
            })
        } else if let Some(rest) = s.strip_prefix("ptcp:") {
            let (port, addr) = match rest.split_once(':') {
                Some((port, addr)) => (port, Some(parse_addr(addr)?)),
                None => (rest, None),
            };
            Ok(Self::Ptcp {
                port: parse_port(port)?,
                addr,
            })
        } else {
            Err("expected tcp:HOST:PORT or ptcp:PORT[:ADDR]")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in [
            "tcp:127.0.0.1:6653",
            "tcp:ctl.example:6633",
            "tcp:[::1]:6653",
            "ptcp:6653",
            "ptcp:6653:127.0.0.1",
            "ptcp:6653:[::1]",
        ] {
            let c: Controller = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(c.to_string(), s);
        }
        assert_eq!(
            "tcp:10.0.0.9:6653".parse(),
            Ok(Controller::Tcp {
                host: "10.0.0.9".into(),
                port: 6653
            })
        );
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "udp:1.2.3.4:5",
            "tcp:1.2.3.4",
            "tcp::6653",
            "tcp:1.2.3.4:0",
            "tcp:1.2.3.4:65536",
            "tcp:a b:1",
            "tcp:[::1:6653",
            "tcp:[zz]:1",
            "ptcp:",
            "ptcp:x",
            "ptcp:6653:nothost",
            "ptcp:+5",
        ] {
            assert!(s.parse::<Controller>().is_err(), "{s:?} should be rejected");
        }
    }
}

//! `lime dump-flows`: a virtual switch's flow entries with their counters, as JSON and
//! in the text format of `ovs-ofctl dump-flows`
//! (`cookie=0x0, duration=1.234s, table=0, n_packets=3, n_bytes=294, idle_timeout=10,
//! priority=1,in_port=1,dl_dst=02:00:00:00:00:02 actions=output:2`).
use std::{fmt::Write as _, net::Ipv4Addr};

use lime_common::{action::port_no, stats::RuleStats};
use serde::{Deserialize, Serialize};

use crate::{
    flow::{Action, Instructions, Masked, Match, matching::ethertype, matching::ipproto},
    vswitch::FlowEntry,
};

/// One flow entry as `lime dump-flows --json` prints it (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDump {
    /// Entry id inside LIME (stable while the entry lives).
    pub id: u64,
    /// Controller cookie.
    pub cookie: u64,
    /// Milliseconds since the entry was added.
    pub duration_ms: u64,
    /// Table.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// Packets counted by the datapath.
    pub n_packets: u64,
    /// Bytes counted by the datapath.
    pub n_bytes: u64,
    /// Idle timeout, seconds (0: none).
    pub idle_timeout: u16,
    /// Hard timeout, seconds (0: none).
    pub hard_timeout: u16,
    /// OpenFlow flow-mod flags.
    pub flags: u16,
    /// The match, `ovs-ofctl` syntax.
    pub r#match: String,
    /// The actions, `ovs-ofctl` syntax.
    pub actions: String,
    /// The match, field by field.
    pub match_fields: Match,
    /// The instructions, structured.
    pub instructions: Instructions,
}

impl FlowDump {
    /// The dump of an entry with its current counters.
    #[must_use]
    pub fn new(e: &FlowEntry, st: RuleStats) -> Self {
        Self {
            id: e.id,
            cookie: e.rule.cookie,
            duration_ms: u64::try_from(e.added.elapsed().as_millis()).unwrap_or(u64::MAX),
            table: e.rule.table,
            priority: e.rule.priority,
            n_packets: st.packets,
            n_bytes: st.bytes,
            idle_timeout: e.rule.idle_timeout,
            hard_timeout: e.rule.hard_timeout,
            flags: e.rule.flags,
            r#match: format_match(&e.rule.matches),
            actions: format_actions(&e.rule.instructions),
            match_fields: e.rule.matches.clone(),
            instructions: e.rule.instructions.clone(),
        }
    }

    /// The `ovs-ofctl dump-flows` line (with its leading space).
    #[must_use]
    pub fn to_ofctl(&self) -> String {
        let mut s = format!(
            " cookie={:#x}, duration={}.{:03}s, table={}, n_packets={}, n_bytes={}, ",
            self.cookie,
            self.duration_ms / 1000,
            self.duration_ms % 1000,
            self.table,
            self.n_packets,
            self.n_bytes
        );
        if self.idle_timeout != 0 {
            let _ = write!(s, "idle_timeout={}, ", self.idle_timeout);
        }
        if self.hard_timeout != 0 {
            let _ = write!(s, "hard_timeout={}, ", self.hard_timeout);
        }
        let _ = write!(s, "priority={}", self.priority);
        if !self.r#match.is_empty() {
            let _ = write!(s, ",{}", self.r#match);
        }
        let _ = write!(s, " actions={}", self.actions);
        s
    }
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn masked_mac(m: Masked<[u8; 6]>) -> String {
    if m.mask == [0xff; 6] {
        mac(m.value)
    } else {
        format!("{}/{}", mac(m.value), mac(m.mask))
    }
}

fn masked_v4(m: Masked<Ipv4Addr>) -> String {
    let bits = u32::from(m.mask);
    if bits == u32::MAX {
        m.value.to_string()
    } else if bits.leading_ones() + bits.trailing_zeros() == 32 {
        format!("{}/{}", m.value, bits.leading_ones())
    } else {
        format!("{}/{}", m.value, m.mask)
    }
}

/// A match in `ovs-ofctl` syntax (`ip`, `tcp`, `udp`, `arp`... shorthands for the
/// ethertype and protocol, as it prints them).
#[must_use]
pub fn format_match(m: &Match) -> String {
    let mut f: Vec<String> = Vec::new();
    let proto_name = match (m.eth_type, m.ip_proto) {
        (Some(ethertype::IPV4), Some(ipproto::TCP)) => Some("tcp"),
        (Some(ethertype::IPV4), Some(ipproto::UDP)) => Some("udp"),
        (Some(ethertype::IPV4), Some(ipproto::ICMP)) => Some("icmp"),
        (Some(ethertype::IPV6), Some(ipproto::TCP)) => Some("tcp6"),
        (Some(ethertype::IPV6), Some(ipproto::UDP)) => Some("udp6"),
        (Some(ethertype::IPV6), Some(ipproto::ICMPV6)) => Some("icmp6"),
        _ => None,
    };
    let eth_name = match m.eth_type {
        Some(ethertype::IPV4) => Some("ip"),
        Some(ethertype::IPV6) => Some("ipv6"),
        Some(ethertype::ARP) => Some("arp"),
        _ => None,
    };
    match (proto_name, eth_name, m.eth_type) {
        (Some(p), _, _) => f.push(p.into()),
        (None, Some(e), _) => f.push(e.into()),
        (None, None, Some(t)) => f.push(format!("dl_type={t:#06x}")),
        _ => {}
    }
    if let Some(p) = m.in_port {
        f.push(format!("in_port={p}"));
    }
    if let Some(md) = m.metadata {
        if md.mask == u64::MAX {
            f.push(format!("metadata={:#x}", md.value));
        } else {
            f.push(format!("metadata={:#x}/{:#x}", md.value, md.mask));
        }
    }
    if let Some(v) = m.vlan_vid {
        if v.value == 0 && v.mask != 0 {
            f.push("vlan_tci=0x0000/0x1fff".into());
        } else if v.mask == 0x1fff {
            f.push(format!("dl_vlan={}", v.value & 0x0fff));
        } else {
            f.push(format!("vlan_vid={:#x}/{:#x}", v.value, v.mask));
        }
    }
    if let Some(p) = m.vlan_pcp {
        f.push(format!("dl_vlan_pcp={p}"));
    }
    if let Some(x) = m.eth_src {
        f.push(format!("dl_src={}", masked_mac(x)));
    }
    if let Some(x) = m.eth_dst {
        f.push(format!("dl_dst={}", masked_mac(x)));
    }
    if let Some(x) = m.ipv4_src {
        f.push(format!("nw_src={}", masked_v4(x)));
    }
    if let Some(x) = m.ipv4_dst {
        f.push(format!("nw_dst={}", masked_v4(x)));
    }
    if let Some(x) = m.ipv6_src {
        f.push(format!("ipv6_src={}/{}", x.value, x.mask));
    }
    if let Some(x) = m.ipv6_dst {
        f.push(format!("ipv6_dst={}/{}", x.value, x.mask));
    }
    if proto_name.is_none()
        && let Some(p) = m.ip_proto
    {
        f.push(format!("nw_proto={p}"));
    }
    if let Some(d) = m.ip_dscp {
        f.push(format!("nw_tos={}", u16::from(d) << 2));
    }
    for (name, v) in [
        ("tp_src", m.tcp_src.or(m.udp_src)),
        ("tp_dst", m.tcp_dst.or(m.udp_dst)),
    ] {
        if let Some(v) = v {
            f.push(format!("{name}={v}"));
        }
    }
    for (name, v) in [
        ("icmp_type", m.icmpv4_type.or(m.icmpv6_type)),
        ("icmp_code", m.icmpv4_code.or(m.icmpv6_code)),
    ] {
        if let Some(v) = v {
            f.push(format!("{name}={v}"));
        }
    }
    if let Some(op) = m.arp_op {
        f.push(format!("arp_op={op}"));
    }
    if let Some(x) = m.arp_spa {
        f.push(format!("arp_spa={}", masked_v4(x)));
    }
    if let Some(x) = m.arp_tpa {
        f.push(format!("arp_tpa={}", masked_v4(x)));
    }
    f.join(",")
}

/// Instructions in `ovs-ofctl` syntax (`drop` when there are none).
#[must_use]
pub fn format_actions(ins: &Instructions) -> String {
    let mut a: Vec<String> = ins
        .apply
        .iter()
        .map(|x| match *x {
            Action::Output { port, max_len } => match port {
                port_no::IN_PORT => "IN_PORT".into(),
                port_no::FLOOD => "FLOOD".into(),
                port_no::ALL => "ALL".into(),
                port_no::CONTROLLER => format!("CONTROLLER:{max_len}"),
                p => format!("output:{p}"),
            },
            Action::SetEthDst(m) => format!("mod_dl_dst:{}", mac(m)),
            Action::SetEthSrc(m) => format!("mod_dl_src:{}", mac(m)),
            Action::SetVlanVid(v) => format!("mod_vlan_vid:{v}"),
            Action::PushVlan(t) => format!("push_vlan:{t:#06x}"),
            Action::PopVlan => "pop_vlan".into(),
        })
        .collect();
    if let Some((v, m)) = ins.write_metadata {
        a.push(format!("write_metadata:{v:#x}/{m:#x}"));
    }
    if let Some(t) = ins.goto_table {
        a.push(format!("goto_table:{t}"));
    }
    if a.is_empty() {
        "drop".into()
    } else {
        a.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_ovs_ofctl() {
        let d = FlowDump {
            id: 1,
            cookie: 0,
            duration_ms: 1234,
            table: 0,
            priority: 1,
            n_packets: 3,
            n_bytes: 294,
            idle_timeout: 10,
            hard_timeout: 0,
            flags: 0,
            r#match: format_match(&Match {
                in_port: Some(1),
                eth_dst: Some(Masked::exact([2, 0, 0, 0, 0, 2])),
                ..Match::default()
            }),
            actions: format_actions(&Instructions::apply(vec![Action::output(2)])),
            match_fields: Match::default(),
            instructions: Instructions::default(),
        };
        assert_eq!(
            d.to_ofctl(),
            " cookie=0x0, duration=1.234s, table=0, n_packets=3, n_bytes=294, \
             idle_timeout=10, priority=1,in_port=1,dl_dst=02:00:00:00:00:02 actions=output:2"
        );
    }

    #[test]
    fn shorthands_and_reserved_ports() {
        let m = Match {
            eth_type: Some(ethertype::IPV4),
            ip_proto: Some(ipproto::UDP),
            ipv4_dst: Some(Masked {
                value: Ipv4Addr::new(10, 0, 0, 0),
                mask: Ipv4Addr::new(255, 255, 255, 0),
            }),
            udp_dst: Some(53),
            ..Match::default()
        };
        assert_eq!(format_match(&m), "udp,nw_dst=10.0.0.0/24,tp_dst=53");
        let ins = Instructions {
            apply: vec![
                Action::Output {
                    port: port_no::CONTROLLER,
                    max_len: 128,
                },
                Action::output(port_no::FLOOD),
            ],
            write_metadata: None,
            goto_table: Some(2),
        };
        assert_eq!(format_actions(&ins), "CONTROLLER:128,FLOOD,goto_table:2");
        assert_eq!(format_actions(&Instructions::default()), "drop");
        assert_eq!(format_match(&Match::default()), "");
    }
}

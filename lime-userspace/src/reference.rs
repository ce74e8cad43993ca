//! The reference classifier: a linear scan that is obviously right, used as the oracle in
//! property tests against the eBPF datapath (as Open vSwitch's `tests/test-classifier.c`
//! checks its classifier against a tiny linear one).
//!
//! # What
//! Given rules, an ingress port and a frame, say what the XDP datapath must do with the
//! frame: send it (which port, which bytes), hand it to the controller, or drop it (which
//! drop reason), and which rules it matched.
//!
//! # Design
//! Nothing here shares code with the datapath or with its compiled form
//! ([`Match::compile`], `FlowKey` masks): the frame is parsed by [`Packet::parse_datapath`],
//! and each [`Match`] field is compared with the parsed [`Packet`] directly
//! ([`matches()`]). A table is a list of rules; a lookup scans all of them.
//!
//! # Semantics (OpenFlow 1.3, with the XDP fast path's limits)
//! - **Parsing.** A frame the datapath rejects is `Drop(reason)` with the datapath's drop
//!   reason ([`crate::packet`] lists them). Fields absent from a packet read as zero, as
//!   in the datapath's flow key (and Open vSwitch's): `VLAN_VID` is 0 (`OFPVID_NONE`)
//!   untagged and `0x1000 | vid` tagged; non-first IPv4/IPv6 fragments have zero
//!   transport fields; ARP other than Ethernet/IPv4 has zero ARP fields. `IP_PROTO` of
//!   IPv6 is the next header after the extension headers; `IP_DSCP` is TOS / traffic
//!   class `>> 2`.
//! - **Pipeline.** Start at table 0 with the ingress port and metadata 0. In a table the
//!   matching rule of highest priority wins; when several tie, every one is a possible
//!   winner ([`Reference::run_all`] follows each; [`Verdict::tied`] says it happened).
//!   The winner's apply-actions change the packet in order (set ETH_DST/ETH_SRC, set the
//!   outer tag's VID, push a tag copying the outer tag's TCI or VID 0 PCP 0 when
//!   untagged, pop the outer tag), then write-metadata
//!   (`(meta & !mask) | (value & mask)`), then goto-table (forward only); a table miss
//!   ends the pipeline.
//! - **Delivery (XDP fast path; no skb path yet).** More than one output action over the
//!   whole chain, or any output to FLOOD/ALL: `Drop(NEEDS_SKB_PATH)`. Otherwise the one
//!   output decides: CONTROLLER is a packet-in, IN_PORT sends back to the ingress port,
//!   an explicit port equal to the ingress port is `Drop(HAIRPIN)`, any other port is
//!   sent to. The sent frame carries the changes made by actions *before* the output
//!   only. No output: `Drop(TABLE_MISS)` if the pipeline ended on a miss, else
//!   `Drop(NO_OUTPUT)`.
//! - **Frame bytes.** The output frame is the input frame edited as the datapath edits
//!   it (MACs and the outer TCI rewritten in place, 4-byte tags inserted or removed at
//!   offset 12), not a re-serialised [`Packet`], so it is byte-identical.
//! - **Counters.** The datapath counts a rule when it executes the chain, so rules of a
//!   chain dropped before execution (`NEEDS_SKB_PATH`, `BAD_GOTO`) are not counted:
//!   [`Verdict::counted`].
//!
//! The oracle does not know which ports exist: an output to a port missing on the switch
//! is `BAD_OUTPUT` in the datapath but `Output` here.
use std::net::{Ipv4Addr, Ipv6Addr};

use lime_common::{action::port_no, limits::MAX_TABLES, stats::drop_reason};

use crate::{
    flow::{Action, Masked, Match, Rule},
    packet::{L3, L4, Packet, TPID_8021AD, TPID_8021Q, Vlan},
};

/// A rule of a [`Reference`]: its table and its index among that table's rules, in the
/// order the rules were given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// Table id.
    pub table: u8,
    /// Index into the table's rules ([`Reference::table`]).
    pub index: usize,
}

/// What happens to the frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Sent to a port (IN_PORT already resolved to the ingress port).
    Output {
        /// Port.
        port: u32,
        /// The frame as sent.
        frame: Vec<u8>,
    },
    /// Sent to the controller as a packet-in (the datapath captures the first
    /// `min(frame.len(), max_len, MAX_PACKET_IN_BYTES)` bytes).
    Controller {
        /// The output action's `max_len`.
        max_len: u16,
        /// The whole frame at the time of the output.
        frame: Vec<u8>,
    },
    /// Dropped, with a `lime_common::stats::drop_reason`.
    Drop(u32),
}

/// The oracle's answer for one frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// What happens to the frame.
    pub outcome: Outcome,
    /// The rules matched, one per table visited, in order.
    pub chain: Vec<RuleRef>,
    /// How many leading rules of `chain` the datapath counts (packets and bytes).
    pub counted: usize,
    /// The metadata register at the end of the pipeline.
    pub metadata: u64,
    /// Some table on the way had several matching rules of the best priority.
    pub tied: bool,
}

impl Verdict {
    fn dropped(reason: u32, chain: Vec<RuleRef>, metadata: u64, tied: bool) -> Self {
        Self {
            outcome: Outcome::Drop(reason),
            chain,
            counted: 0,
            metadata,
            tied,
        }
    }

    /// The rules whose counters go up.
    #[must_use]
    pub fn counted_rules(&self) -> &[RuleRef] {
        &self.chain[..self.counted.min(self.chain.len())]
    }
}

/// The reference classifier: rules by table, scanned linearly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reference {
    tables: Vec<Vec<Rule>>,
}

/// A packet on its way through the pipeline.
#[derive(Clone, Debug)]
struct State {
    packet: Packet,
    in_port: u32,
    metadata: u64,
    table: u8,
    chain: Vec<RuleRef>,
    tied: bool,
}

/// Where a pipeline step leads.
enum Next {
    Table(u8),
    End,
    BadGoto,
}

impl Reference {
    /// Rules grouped by their `table` field, keeping their order. Rules should pass
    /// [`Rule::validate`] (the datapath takes no others); rules of tables past the last
    /// are ignored.
    #[must_use]
    pub fn new(rules: &[Rule]) -> Self {
        let mut tables = vec![Vec::new(); MAX_TABLES];
        for r in rules {
            if let Some(t) = tables.get_mut(usize::from(r.table)) {
                t.push(r.clone());
            }
        }
        Self { tables }
    }

    /// The rules of a table (empty for a table past the last).
    #[must_use]
    pub fn table(&self, table: u8) -> &[Rule] {
        self.tables
            .get(usize::from(table))
            .map_or(&[], Vec::as_slice)
    }

    /// A rule by reference.
    #[must_use]
    pub fn rule(&self, r: RuleRef) -> Option<&Rule> {
        self.table(r.table).get(r.index)
    }

    /// Indices of the best matching rules of `table`: every matching rule of the highest
    /// matching priority, in order (empty on a miss).
    #[must_use]
    pub fn lookup(&self, table: u8, in_port: u32, metadata: u64, packet: &Packet) -> Vec<usize> {
        let hits: Vec<(usize, u16)> = self
            .table(table)
            .iter()
            .enumerate()
            .filter(|(_, r)| matches(&r.matches, in_port, metadata, packet))
            .map(|(i, r)| (i, r.priority))
            .collect();
        let Some(best) = hits.iter().map(|(_, p)| *p).max() else {
            return Vec::new();
        };
        hits.into_iter()
            .filter(|(_, p)| *p == best)
            .map(|(i, _)| i)
            .collect()
    }

    /// The verdict for a frame entering on `in_port`. On a tie the first-listed rule is
    /// taken and [`Verdict::tied`] is set; use [`Reference::run_all`] to accept any.
    #[must_use]
    pub fn run(&self, in_port: u32, frame: &[u8]) -> Verdict {
        let mut st = match self.start(in_port, frame) {
            Ok(st) => st,
            Err(v) => return v,
        };
        loop {
            let best = self.lookup(st.table, st.in_port, st.metadata, &st.packet);
            let Some(&first) = best.first() else {
                return self.finish(&st, frame, true);
            };
            st.tied |= best.len() > 1;
            match self.step(&mut st, first) {
                Next::Table(t) => st.table = t,
                Next::End => return self.finish(&st, frame, false),
                Next::BadGoto => {
                    return Verdict::dropped(drop_reason::BAD_GOTO, st.chain, st.metadata, st.tied);
                }
            }
        }
    }

    /// Every verdict the datapath may give, one per way of breaking priority ties (one
    /// verdict when there are none).
    #[must_use]
    pub fn run_all(&self, in_port: u32, frame: &[u8]) -> Vec<Verdict> {
        match self.start(in_port, frame) {
            Ok(st) => {
                let mut out = Vec::new();
                self.walk(st, frame, &mut out);
                out
            }
            Err(v) => vec![v],
        }
    }

    fn start(&self, in_port: u32, frame: &[u8]) -> Result<State, Verdict> {
        let packet = Packet::parse_datapath(frame)
            .map_err(|e| Verdict::dropped(e.drop_reason(), Vec::new(), 0, false))?;
        Ok(State {
            packet,
            in_port,
            metadata: 0,
            table: 0,
            chain: Vec::new(),
            tied: false,
        })
    }

    fn walk(&self, st: State, frame: &[u8], out: &mut Vec<Verdict>) {
        let best = self.lookup(st.table, st.in_port, st.metadata, &st.packet);
        if best.is_empty() {
            out.push(self.finish(&st, frame, true));
            return;
        }
        let tied = st.tied || best.len() > 1;
        for i in best {
            let mut s = st.clone();
            s.tied = tied;
            match self.step(&mut s, i) {
                Next::Table(t) => {
                    s.table = t;
                    self.walk(s, frame, out);
                }
                Next::End => out.push(self.finish(&s, frame, false)),
                Next::BadGoto => {
                    out.push(Verdict::dropped(
                        drop_reason::BAD_GOTO,
                        s.chain,
                        s.metadata,
                        s.tied,
                    ));
                }
            }
        }
    }

    /// Apply rule `index` of the current table to the packet.
    fn step(&self, st: &mut State, index: usize) -> Next {
        let table = st.table;
        st.chain.push(RuleRef { table, index });
        let Some(rule) = self.table(table).get(index) else {
            return Next::End;
        };
        for a in &rule.instructions.apply {
            apply(a, &mut st.packet);
        }
        if let Some((value, mask)) = rule.instructions.write_metadata {
            st.metadata = (st.metadata & !mask) | (value & mask);
        }
        match rule.instructions.goto_table {
            None => Next::End,
            Some(t) if t > table && usize::from(t) < MAX_TABLES => Next::Table(t),
            Some(_) => Next::BadGoto,
        }
    }

    /// Deliver at the end of the pipeline.
    fn finish(&self, st: &State, frame: &[u8], missed: bool) -> Verdict {
        let actions = || {
            st.chain.iter().enumerate().flat_map(|(i, r)| {
                self.rule(*r)
                    .into_iter()
                    .flat_map(move |rule| rule.instructions.apply.iter().map(move |a| (i, a)))
            })
        };
        let outputs: Vec<u32> = actions()
            .filter_map(|(_, a)| match a {
                Action::Output { port, .. } => Some(*port),
                _ => None,
            })
            .collect();
        if outputs.len() > 1
            || outputs
                .iter()
                .any(|p| *p == port_no::FLOOD || *p == port_no::ALL)
        {
            return Verdict::dropped(
                drop_reason::NEEDS_SKB_PATH,
                st.chain.clone(),
                st.metadata,
                st.tied,
            );
        }
        // Every rule is counted, then its actions up to the (single) output edit the frame.
        let mut bytes = frame.to_vec();
        let mut output = None;
        for (i, a) in actions() {
            let edited = match *a {
                Action::Output { port, max_len } => {
                    output = Some((port, max_len));
                    break;
                }
                Action::SetEthDst(mac) => set_mac(&mut bytes, 0, mac),
                Action::SetEthSrc(mac) => set_mac(&mut bytes, 6, mac),
                Action::SetVlanVid(vid) => set_vid(&mut bytes, vid),
                Action::PushVlan(tpid) => push_vlan(&mut bytes, tpid),
                Action::PopVlan => pop_vlan(&mut bytes),
            };
            if edited.is_err() {
                return Verdict {
                    counted: i + 1,
                    ..Verdict::dropped(
                        drop_reason::TRUNCATED,
                        st.chain.clone(),
                        st.metadata,
                        st.tied,
                    )
                };
            }
        }
        let outcome = match output {
            None if missed => Outcome::Drop(drop_reason::TABLE_MISS),
            None => Outcome::Drop(drop_reason::NO_OUTPUT),
            Some((port_no::CONTROLLER, max_len)) => Outcome::Controller {
                max_len,
                frame: bytes,
            },
            Some((port_no::IN_PORT, _)) => Outcome::Output {
                port: st.in_port,
                frame: bytes,
            },
            Some((p, _)) if p > port_no::MAX => Outcome::Drop(drop_reason::BAD_OUTPUT),
            Some((p, _)) if p == st.in_port => Outcome::Drop(drop_reason::HAIRPIN),
            Some((port, _)) => Outcome::Output { port, frame: bytes },
        };
        Verdict {
            outcome,
            chain: st.chain.clone(),
            counted: st.chain.len(),
            metadata: st.metadata,
            tied: st.tied,
        }
    }
}

/// A header the edit needs is not in the frame (the datapath drops with `TRUNCATED`).
struct Short;

fn set_mac(b: &mut [u8], at: usize, mac: [u8; 6]) -> Result<(), Short> {
    b.get_mut(at..at + 6).ok_or(Short)?.copy_from_slice(&mac);
    Ok(())
}

fn outer_tag(b: &[u8]) -> Result<Option<[u8; 2]>, Short> {
    let t = b.get(12..16).ok_or(Short)?;
    let tpid = u16::from_be_bytes([t[0], t[1]]);
    Ok((tpid == TPID_8021Q || tpid == TPID_8021AD).then_some([t[2], t[3]]))
}

fn set_vid(b: &mut [u8], vid: u16) -> Result<(), Short> {
    // An untagged frame is left alone (the rule's match cannot guarantee a tag then).
    if let Some(tci) = outer_tag(b)? {
        let tci = (u16::from_be_bytes(tci) & 0xf000) | (vid & 0x0fff);
        b[14..16].copy_from_slice(&tci.to_be_bytes());
    }
    Ok(())
}

fn push_vlan(b: &mut Vec<u8>, tpid: u16) -> Result<(), Short> {
    let tci = outer_tag(b)?.unwrap_or([0, 0]);
    let [t0, t1] = tpid.to_be_bytes();
    b.splice(12..12, [t0, t1, tci[0], tci[1]]);
    Ok(())
}

fn pop_vlan(b: &mut Vec<u8>) -> Result<(), Short> {
    if outer_tag(b)?.is_some() {
        b.drain(12..16);
    }
    Ok(())
}

/// Apply one action to the packet's fields (outputs do not change it).
fn apply(a: &Action, p: &mut Packet) {
    match *a {
        Action::Output { .. } => {}
        Action::SetEthDst(mac) => p.eth_dst = mac,
        Action::SetEthSrc(mac) => p.eth_src = mac,
        Action::SetVlanVid(vid) => {
            if let Some(t) = p.vlans.first_mut() {
                t.vid = vid & 0x0fff;
            }
        }
        // OpenFlow 1.3 A.2.5 / 5.12: the new tag copies VID and PCP of the outer tag, or
        // is VID 0 PCP 0.
        Action::PushVlan(tpid) => {
            let tag = p.vlans.first().map_or(
                Vlan {
                    tpid,
                    pcp: 0,
                    dei: false,
                    vid: 0,
                },
                |outer| Vlan { tpid, ..*outer },
            );
            p.vlans.insert(0, tag);
        }
        Action::PopVlan => {
            if !p.vlans.is_empty() {
                p.vlans.remove(0);
            }
        }
    }
}

/// The match fields of a packet, zero where absent (see the module docs).
#[derive(Default)]
struct Fields {
    eth_type: u16,
    vlan_vid: u16,
    vlan_pcp: u8,
    ip_dscp: u8,
    ip_proto: u8,
    ipv4_src: u32,
    ipv4_dst: u32,
    ipv6_src: u128,
    ipv6_dst: u128,
    tcp: (u16, u16),
    udp: (u16, u16),
    icmpv4: (u8, u8),
    icmpv6: (u8, u8),
    arp_op: u16,
    arp_spa: u32,
    arp_tpa: u32,
}

impl Fields {
    fn of(p: &Packet) -> Self {
        let mut f = Self {
            eth_type: p.l3.ethertype(),
            ..Self::default()
        };
        if let Some(t) = p.vlans.first() {
            f.vlan_vid = 0x1000 | (t.vid & 0x0fff);
            f.vlan_pcp = t.pcp;
        }
        match &p.l3 {
            L3::Ipv4(ip) => {
                f.ip_dscp = ip.dscp;
                f.ip_proto = ip.l4.proto();
                f.ipv4_src = ip.src.to_bits();
                f.ipv4_dst = ip.dst.to_bits();
                if ip.frag_offset == 0 {
                    f.transport(&ip.l4, false);
                }
            }
            L3::Ipv6(ip) => {
                f.ip_dscp = ip.dscp;
                f.ip_proto = ip.l4.proto();
                f.ipv6_src = ip.src.to_bits();
                f.ipv6_dst = ip.dst.to_bits();
                let later_fragment = ip.ext.iter().any(
                    |e| matches!(e, crate::packet::Ext::Fragment { offset, .. } if *offset != 0),
                );
                if !later_fragment {
                    f.transport(&ip.l4, true);
                }
            }
            L3::Arp(a) => {
                f.arp_op = a.op;
                f.arp_spa = a.spa.to_bits();
                f.arp_tpa = a.tpa.to_bits();
            }
            L3::Other { .. } => {}
        }
        f
    }

    fn transport(&mut self, l4: &L4, v6: bool) {
        match *l4 {
            L4::Tcp { src, dst } => self.tcp = (src, dst),
            L4::Udp { src, dst } => self.udp = (src, dst),
            L4::Icmp { ty, code } if !v6 => self.icmpv4 = (ty, code),
            L4::Icmpv6 { ty, code } if v6 => self.icmpv6 = (ty, code),
            _ => {}
        }
    }
}

fn exact<T: PartialEq>(m: Option<T>, v: T) -> bool {
    m.is_none_or(|m| m == v)
}

fn masked_u64(m: Option<Masked<u64>>, v: u64) -> bool {
    m.is_none_or(|m| v & m.mask == m.value)
}

fn masked_u16(m: Option<Masked<u16>>, v: u16) -> bool {
    m.is_none_or(|m| v & m.mask == m.value)
}

fn masked_mac(m: Option<Masked<[u8; 6]>>, v: [u8; 6]) -> bool {
    m.is_none_or(|m| (0..6).all(|i| v[i] & m.mask[i] == m.value[i]))
}

fn masked_v4(m: Option<Masked<Ipv4Addr>>, v: u32) -> bool {
    m.is_none_or(|m| v & m.mask.to_bits() == m.value.to_bits())
}

fn masked_v6(m: Option<Masked<Ipv6Addr>>, v: u128) -> bool {
    m.is_none_or(|m| v & m.mask.to_bits() == m.value.to_bits())
}

/// Whether `packet`, entering on `in_port` with `metadata`, matches `m`: every field the
/// match names equals the packet's (under its mask). Prerequisites are not re-checked:
/// they hold for every validated match.
#[must_use]
pub fn matches(m: &Match, in_port: u32, metadata: u64, packet: &Packet) -> bool {
    // Destructured so that a new match field is a compile error here.
    let Match {
        in_port: m_in_port,
        metadata: m_metadata,
        eth_dst,
        eth_src,
        eth_type,
        vlan_vid,
        vlan_pcp,
        ip_dscp,
        ip_proto,
        ipv4_src,
        ipv4_dst,
        ipv6_src,
        ipv6_dst,
        tcp_src,
        tcp_dst,
        udp_src,
        udp_dst,
        icmpv4_type,
        icmpv4_code,
        icmpv6_type,
        icmpv6_code,
        arp_op,
        arp_spa,
        arp_tpa,
    } = *m;
    let f = Fields::of(packet);
    exact(m_in_port, in_port)
        && masked_u64(m_metadata, metadata)
        && masked_mac(eth_dst, packet.eth_dst)
        && masked_mac(eth_src, packet.eth_src)
        && exact(eth_type, f.eth_type)
        && masked_u16(vlan_vid, f.vlan_vid)
        && exact(vlan_pcp, f.vlan_pcp)
        && exact(ip_dscp, f.ip_dscp)
        && exact(ip_proto, f.ip_proto)
        && masked_v4(ipv4_src, f.ipv4_src)
        && masked_v4(ipv4_dst, f.ipv4_dst)
        && masked_v6(ipv6_src, f.ipv6_src)
        && masked_v6(ipv6_dst, f.ipv6_dst)
        && exact(tcp_src, f.tcp.0)
        && exact(tcp_dst, f.tcp.1)
        && exact(udp_src, f.udp.0)
        && exact(udp_dst, f.udp.1)
        && exact(icmpv4_type, f.icmpv4.0)
        && exact(icmpv4_code, f.icmpv4.1)
        && exact(icmpv6_type, f.icmpv6.0)
        && exact(icmpv6_code, f.icmpv6.1)
        && exact(arp_op, f.arp_op)
        && masked_v4(arp_spa, f.arp_spa)
        && masked_v4(arp_tpa, f.arp_tpa)
}

#[cfg(test)]
mod tests {
    use lime_common::flow::VID_PRESENT;

    use super::*;
    use crate::{
        flow::{Instructions, matching::ethertype},
        packet::malformed,
    };

    const H1: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const H2: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
    const GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test address")
    }

    fn udp(dst: &str, dport: u16) -> Packet {
        Packet::udp4(H1, H2, ip("10.0.0.1"), ip(dst), 1234, dport)
    }

    fn out(port: u32) -> Instructions {
        Instructions::apply(vec![Action::output(port)])
    }

    fn rule(table: u8, priority: u16, m: Match, i: Instructions) -> Rule {
        let r = Rule::new(table, priority, m, i);
        r.validate().expect("test rule is valid");
        r
    }

    fn v4_dst(prefix: &str, len: u32) -> Match {
        Match {
            eth_type: Some(ethertype::IPV4),
            ipv4_dst: Some(Masked {
                value: ip(prefix),
                mask: Ipv4Addr::from_bits(u32::MAX.checked_shl(32 - len).unwrap_or(0)),
            }),
            ..Match::default()
        }
    }

    fn sent(v: &Verdict) -> (u32, Packet) {
        match &v.outcome {
            Outcome::Output { port, frame } => {
                (*port, Packet::parse(frame).expect("output parses"))
            }
            o => panic!("expected an output, got {o:?}"),
        }
    }

    #[test]
    fn highest_priority_wins_regardless_of_order() {
        let rules = [
            rule(0, 10, v4_dst("10.0.0.0", 8), out(2)),
            rule(0, 30, v4_dst("10.1.2.0", 24), out(3)),
            rule(0, 20, v4_dst("10.1.0.0", 16), out(4)),
        ];
        let r = Reference::new(&rules);
        let cases = [("10.1.2.3", 3, 1), ("10.1.9.9", 4, 2), ("10.9.9.9", 2, 0)];
        for (dst, port, index) in cases {
            let f = udp(dst, 53).to_bytes();
            let v = r.run(1, &f);
            assert_eq!(
                v.outcome,
                Outcome::Output {
                    port,
                    frame: f.clone()
                },
                "{dst}"
            );
            assert_eq!(v.chain, [RuleRef { table: 0, index }]);
            assert_eq!(v.counted, 1);
            assert!(!v.tied);
        }
        assert_eq!(
            r.run(1, &udp("11.0.0.1", 53).to_bytes()).outcome,
            Outcome::Drop(drop_reason::TABLE_MISS)
        );
    }

    #[test]
    fn ties_expose_every_candidate() {
        let by_port = Match {
            eth_type: Some(ethertype::IPV4),
            ip_proto: Some(17),
            udp_dst: Some(53),
            ..Match::default()
        };
        let rules = [
            rule(0, 5, v4_dst("10.0.0.2", 32), out(2)),
            rule(0, 5, by_port, out(3)),
        ];
        let r = Reference::new(&rules);
        let f = udp("10.0.0.2", 53).to_bytes();
        let first = r.run(1, &f);
        assert!(first.tied);
        assert_eq!(first.chain, [RuleRef { table: 0, index: 0 }]);
        let all = r.run_all(1, &f);
        let ports: Vec<_> = all.iter().map(|v| sent(v).0).collect();
        assert_eq!(ports, [2, 3]);
        assert!(all.iter().all(|v| v.tied));
        assert!(
            !r.run(1, &udp("10.0.0.2", 54).to_bytes()).tied,
            "only one matches"
        );
    }

    #[test]
    fn goto_and_metadata() {
        let rules = [
            rule(
                0,
                1,
                Match {
                    in_port: Some(1),
                    ..Match::default()
                },
                Instructions {
                    write_metadata: Some((0xab, 0xff)),
                    goto_table: Some(2),
                    ..Instructions::default()
                },
            ),
            rule(
                2,
                1,
                Match {
                    metadata: Some(Masked {
                        value: 0xab,
                        mask: 0xff,
                    }),
                    ..Match::default()
                },
                Instructions {
                    apply: vec![Action::SetEthDst(GW)],
                    write_metadata: Some((0xffff_0000, 0xffff_0000)),
                    goto_table: Some(3),
                },
            ),
            rule(3, 1, Match::default(), out(4)),
            // Never reached: table 1 is skipped, and metadata 0 does not match in table 2.
            rule(1, 100, Match::default(), out(5)),
            rule(2, 0, Match::default(), out(6)),
        ];
        let r = Reference::new(&rules);
        let v = r.run(1, &udp("10.0.0.2", 53).to_bytes());
        let (port, p) = sent(&v);
        assert_eq!(port, 4);
        assert_eq!(p.eth_dst, GW);
        assert_eq!(v.metadata, 0xffff_00ab);
        assert_eq!(
            v.chain,
            [
                RuleRef { table: 0, index: 0 },
                RuleRef { table: 2, index: 0 },
                RuleRef { table: 3, index: 0 }
            ]
        );
        // From port 2 table 0 misses.
        assert_eq!(
            r.run(2, &udp("10.0.0.2", 53).to_bytes()).outcome,
            Outcome::Drop(drop_reason::TABLE_MISS)
        );
    }

    #[test]
    fn miss_after_goto_is_table_miss_unless_something_was_output() {
        let goto = |apply| Instructions {
            apply,
            goto_table: Some(1),
            ..Instructions::default()
        };
        let r = Reference::new(&[rule(0, 1, Match::default(), goto(vec![]))]);
        let v = r.run(1, &udp("10.0.0.2", 1).to_bytes());
        assert_eq!(v.outcome, Outcome::Drop(drop_reason::TABLE_MISS));
        assert_eq!(v.counted, 1, "the matched rule is counted");
        let r = Reference::new(&[rule(0, 1, Match::default(), goto(vec![Action::output(3)]))]);
        assert_eq!(sent(&r.run(1, &udp("10.0.0.2", 1).to_bytes())).0, 3);
        let r = Reference::new(&[rule(0, 1, Match::default(), Instructions::default())]);
        assert_eq!(
            r.run(1, &udp("10.0.0.2", 1).to_bytes()).outcome,
            Outcome::Drop(drop_reason::NO_OUTPUT)
        );
    }

    #[test]
    fn push_set_pop_vlan() {
        let untagged = Match {
            vlan_vid: Some(Masked {
                value: 0,
                mask: 0x1fff,
            }),
            ..Match::default()
        };
        let r = Reference::new(&[rule(
            0,
            1,
            untagged,
            Instructions::apply(vec![
                Action::PushVlan(0x8100),
                Action::SetVlanVid(42),
                Action::output(2),
            ]),
        )]);
        let f = udp("10.0.0.2", 53).to_bytes();
        let v = r.run(1, &f);
        let (_, p) = sent(&v);
        assert_eq!(p.vlans, [Vlan::new(42, 0)]);
        let Outcome::Output { frame, .. } = &v.outcome else {
            unreachable!()
        };
        assert_eq!(frame.len(), f.len() + 4);
        assert_eq!(&frame[12..16], &[0x81, 0x00, 0x00, 42]);
        assert_eq!(&frame[16..], &f[12..], "rest of the frame moved unchanged");

        // A tagged frame: push copies the outer TCI (PCP, DEI, VID); pop removes the outer.
        let tagged = Match {
            vlan_vid: Some(Masked {
                value: VID_PRESENT,
                mask: VID_PRESENT,
            }),
            ..Match::default()
        };
        let mut tp = udp("10.0.0.2", 53).with_vlan(7, 5);
        tp.vlans[0].dei = true;
        let tf = tp.to_bytes();
        let r = Reference::new(&[rule(
            0,
            1,
            tagged.clone(),
            Instructions::apply(vec![Action::PushVlan(0x88a8), Action::output(2)]),
        )]);
        let (_, p) = sent(&r.run(1, &tf));
        assert_eq!(p.vlans.len(), 2);
        assert_eq!(
            p.vlans[0],
            Vlan {
                tpid: 0x88a8,
                ..tp.vlans[0]
            }
        );
        assert_eq!(p.vlans[1], tp.vlans[0]);
        let r = Reference::new(&[rule(
            0,
            1,
            tagged,
            Instructions::apply(vec![Action::PopVlan, Action::output(2)]),
        )]);
        let v = r.run(1, &tf);
        let Outcome::Output { frame, .. } = &v.outcome else {
            panic!("{v:?}")
        };
        assert_eq!(frame, &udp("10.0.0.2", 53).to_bytes_min(tf.len() - 4));
    }

    #[test]
    fn later_tables_see_header_changes() {
        // OpenFlow 1.3 5.10: apply-actions change the packet before the next table.
        let goto = |apply| Instructions {
            apply,
            goto_table: Some(1),
            ..Instructions::default()
        };
        let rules = [
            rule(
                0,
                1,
                Match::default(),
                goto(vec![Action::PushVlan(0x8100), Action::SetVlanVid(9)]),
            ),
            rule(
                1,
                1,
                Match {
                    vlan_vid: Some(Masked {
                        value: VID_PRESENT | 9,
                        mask: 0x1fff,
                    }),
                    ..Match::default()
                },
                out(3),
            ),
            rule(1, 0, Match::default(), out(4)),
        ];
        let r = Reference::new(&rules);
        let v = r.run(1, &udp("10.0.0.2", 53).to_bytes());
        let (port, p) = sent(&v);
        assert_eq!((port, p.vlans[0].vid), (3, 9));
    }

    #[test]
    fn push_then_pop_exposes_the_original_tag_to_later_tables() {
        // OpenFlow semantics; see the report on the datapath's update_key.
        let tagged = Match {
            vlan_vid: Some(Masked {
                value: VID_PRESENT,
                mask: VID_PRESENT,
            }),
            ..Match::default()
        };
        let rules = [
            rule(
                0,
                1,
                tagged.clone(),
                Instructions {
                    apply: vec![
                        Action::PushVlan(0x8100),
                        Action::SetVlanVid(99),
                        Action::PopVlan,
                    ],
                    goto_table: Some(1),
                    ..Instructions::default()
                },
            ),
            rule(
                1,
                1,
                Match {
                    vlan_vid: Some(Masked {
                        value: VID_PRESENT | 7,
                        mask: 0x1fff,
                    }),
                    ..Match::default()
                },
                out(3),
            ),
            rule(1, 0, Match::default(), out(4)),
        ];
        let f = udp("10.0.0.2", 53).with_vlan(7, 0).to_bytes();
        let v = Reference::new(&rules).run(1, &f);
        assert_eq!(v.outcome, Outcome::Output { port: 3, frame: f });
    }

    #[test]
    fn changes_after_the_output_are_not_sent() {
        let r = Reference::new(&[rule(
            0,
            1,
            Match::default(),
            Instructions::apply(vec![
                Action::SetEthSrc(GW),
                Action::output(2),
                Action::SetEthDst(GW),
            ]),
        )]);
        let (_, p) = sent(&r.run(1, &udp("10.0.0.2", 53).to_bytes()));
        assert_eq!((p.eth_src, p.eth_dst), (GW, H2));
    }

    #[test]
    fn delivery_outcomes() {
        let f = udp("10.0.0.2", 53).to_bytes();
        let one = |i: Instructions| Reference::new(&[rule(0, 1, Match::default(), i)]).run(3, &f);
        assert_eq!(one(out(3)).outcome, Outcome::Drop(drop_reason::HAIRPIN));
        assert_eq!(
            one(out(port_no::IN_PORT)).outcome,
            Outcome::Output {
                port: 3,
                frame: f.clone()
            }
        );
        for p in [port_no::FLOOD, port_no::ALL] {
            let v = one(out(p));
            assert_eq!(v.outcome, Outcome::Drop(drop_reason::NEEDS_SKB_PATH));
            assert_eq!(v.counted, 0, "dropped before execution: not counted");
            assert_eq!(v.chain.len(), 1);
        }
        let two = one(Instructions::apply(vec![
            Action::output(1),
            Action::output(2),
        ]));
        assert_eq!(two.outcome, Outcome::Drop(drop_reason::NEEDS_SKB_PATH));
        let ctl = one(Instructions::apply(vec![
            Action::SetEthDst(GW),
            Action::Output {
                port: port_no::CONTROLLER,
                max_len: 128,
            },
        ]));
        let Outcome::Controller {
            max_len: 128,
            frame,
        } = ctl.outcome
        else {
            panic!("{ctl:?}")
        };
        assert_eq!(&frame[..6], &GW);
    }

    #[test]
    fn outputs_are_counted_over_the_whole_chain() {
        let rules = [
            rule(
                0,
                1,
                Match::default(),
                Instructions {
                    apply: vec![Action::output(2)],
                    goto_table: Some(1),
                    ..Instructions::default()
                },
            ),
            rule(1, 1, Match::default(), out(3)),
        ];
        let v = Reference::new(&rules).run(1, &udp("10.0.0.2", 53).to_bytes());
        assert_eq!(v.outcome, Outcome::Drop(drop_reason::NEEDS_SKB_PATH));
    }

    #[test]
    fn push_on_a_bare_ethernet_header_is_truncated() {
        let r = Reference::new(&[rule(
            0,
            1,
            Match::default(),
            Instructions::apply(vec![Action::PushVlan(0x8100), Action::output(2)]),
        )]);
        let bare = Packet::ethernet(
            H1,
            H2,
            L3::Other {
                ethertype: 0x1234,
                bytes: vec![],
            },
        )
        .to_bytes_min(0);
        let v = r.run(1, &bare);
        assert_eq!(v.outcome, Outcome::Drop(drop_reason::TRUNCATED));
        assert_eq!(v.counted, 1);
    }

    #[test]
    fn malformed_frames_drop_with_the_datapath_reason() {
        let r = Reference::new(&[rule(0, 0, Match::default(), out(2))]);
        for m in malformed::all() {
            let v = r.run(1, &m.frame);
            assert_eq!(v.outcome, Outcome::Drop(m.reason), "{}", m.name);
            assert!(v.chain.is_empty());
        }
        // A truncated stacked frame is VLAN_STACKED, not TRUNCATED (checked first).
        let stacked = malformed::stacked_vlan();
        assert_eq!(
            r.run(1, &stacked[..18]).outcome,
            Outcome::Drop(drop_reason::VLAN_STACKED)
        );
        assert_eq!(
            r.run(1, &stacked[..17]).outcome,
            Outcome::Drop(drop_reason::TRUNCATED)
        );
    }

    #[test]
    fn field_extraction_mirrors_the_datapath() {
        let udp_dst_zero = Match {
            eth_type: Some(ethertype::IPV4),
            ip_proto: Some(17),
            udp_dst: Some(0),
            ..Match::default()
        };
        let mut frag = udp("10.0.0.2", 53);
        let L3::Ipv4(ref mut ip4) = frag.l3 else {
            unreachable!()
        };
        ip4.frag_offset = 10;
        let parsed = Packet::parse(&frag.to_bytes()).expect("parses");
        assert!(
            matches(&udp_dst_zero, 1, 0, &parsed),
            "later fragment: transport fields are 0"
        );
        assert!(!matches(&udp_dst_zero, 1, 0, &udp("10.0.0.2", 53)));

        let dscp = Match {
            eth_type: Some(ethertype::IPV4),
            ip_dscp: Some(46),
            ..Match::default()
        };
        let mut ef = udp("10.0.0.2", 53);
        let L3::Ipv4(ref mut ip4) = ef.l3 else {
            unreachable!()
        };
        ip4.dscp = 46;
        ip4.ecn = 3;
        assert!(matches(
            &dscp,
            1,
            0,
            &Packet::parse(&ef.to_bytes()).expect("parses")
        ));

        let none = Match {
            vlan_vid: Some(Masked {
                value: 0,
                mask: 0x1fff,
            }),
            ..Match::default()
        };
        let vid0 = Match {
            vlan_vid: Some(Masked {
                value: VID_PRESENT,
                mask: 0x1fff,
            }),
            ..Match::default()
        };
        let tagged0 = udp("10.0.0.2", 53).with_vlan(0, 3);
        assert!(matches(&none, 1, 0, &udp("10.0.0.2", 53)));
        assert!(
            !matches(&none, 1, 0, &tagged0),
            "priority-tagged frame is tagged"
        );
        assert!(matches(&vid0, 1, 0, &tagged0));

        let arp_op_zero = Match {
            eth_type: Some(ethertype::ARP),
            arp_op: Some(0),
            ..Match::default()
        };
        let mut foreign = Packet::arp_request(H1, ip("10.0.0.1"), ip("10.0.0.2")).to_bytes();
        foreign[15] = 6;
        assert!(matches(
            &arp_op_zero,
            1,
            0,
            &Packet::parse(&foreign).expect("parses")
        ));

        let icmp6 = Match {
            eth_type: Some(ethertype::IPV6),
            ip_proto: Some(58),
            icmpv6_type: Some(135),
            ..Match::default()
        };
        let mut ns = Packet::icmp6(
            H1,
            H2,
            "fe80::1".parse().expect("a"),
            "ff02::1".parse().expect("a"),
            135,
            0,
        );
        let L3::Ipv6(ref mut ip6) = ns.l3 else {
            unreachable!()
        };
        ip6.ext = vec![crate::packet::Ext::HopByHop, crate::packet::Ext::DestOpts];
        assert!(matches(
            &icmp6,
            1,
            0,
            &Packet::parse(&ns.to_bytes()).expect("parses")
        ));
    }
}

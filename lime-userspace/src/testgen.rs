//! Test and benchmark generators: proptest strategies for rule sets, packets and ingress
//! ports that exercise the classifier, and deterministic rule sets for benchmarks.
//!
//! # Strategies
//! - [`rule_set`]: rules over several tables, built like real rule sets: a few match
//!   *shapes* (which fields, which masks) shared by many rules, values drawn from small
//!   [`pool`]s so that wildcards overlap, priorities mostly distinct, goto-table forward
//!   only, optional write-metadata and metadata matches, actions mostly one output to a
//!   port in `1..=8` (sometimes after set-field/push/pop VLAN; sometimes CONTROLLER,
//!   IN_PORT, two outputs or FLOOD/ALL). Every rule passes [`Rule::validate`].
//! - [`packet`], [`frame`]: well-formed packets with fields from the same pools (tagged
//!   or not; IPv4, IPv6 with extension headers, ARP, other), and frames that are
//!   sometimes malformed.
//! - [`frame_near`]: frames built to hit one of the given rules (sometimes with one
//!   field changed), mixed with [`frame`]s; [`scenario`] pairs a rule set with them.
//! - [`in_port`]: a port in `1..=8`.
//!
//! # Benchmarks
//! [`rules_over_masks`] spreads rules over a chosen number of masks; [`packet_hitting`]
//! and [`packet_missing`] build frames that hit a given rule or no rule;
//! [`table_miss_rule`] is the usual priority-0 catch-all.
#![cfg(any(test, feature = "testgen"))]

use std::{
    array,
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use lime_common::{action::port_no, flow::VID_PRESENT, limits::MAX_TABLES};
use proptest::{
    collection::vec,
    option,
    prelude::*,
    sample::{Index, select},
};

use crate::{
    flow::{
        Action, Instructions, Masked, Match, NO_BUFFER, Rule,
        matching::{ethertype, ipproto},
    },
    packet::{Arp, Ext, Ipv4, Ipv6, L3, L4, Packet, TPID_8021AD, TPID_8021Q, Vlan, malformed},
    reference,
};

/// The small pools of field values rules and packets draw from.
pub mod pool {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Highest virtual port used (ports are `1..=MAX_PORT`).
    pub const MAX_PORT: u32 = 8;
    /// In-ports.
    pub const IN_PORTS: [u32; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    /// MAC addresses (four hosts and broadcast).
    pub const MACS: [[u8; 6]; 5] = [
        [0x02, 0, 0, 0, 0, 1],
        [0x02, 0, 0, 0, 0, 2],
        [0x02, 0, 0, 0, 0, 3],
        [0x02, 0, 0, 0, 1, 1],
        [0xff; 6],
    ];
    /// MAC masks: exact, OUI, multicast bit.
    pub const MAC_MASKS: [[u8; 6]; 3] = [
        [0xff; 6],
        [0xff, 0xff, 0xff, 0xff, 0, 0],
        [1, 0, 0, 0, 0, 0],
    ];
    /// IPv4 addresses.
    pub const IPV4: [Ipv4Addr; 6] = [
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 1, 1),
        Ipv4Addr::new(10, 1, 0, 1),
        Ipv4Addr::new(192, 168, 1, 1),
        Ipv4Addr::new(192, 168, 1, 2),
    ];
    /// IPv4 prefix lengths.
    pub const IPV4_PREFIXES: [u32; 3] = [32, 24, 16];
    /// IPv6 addresses.
    pub const IPV6: [Ipv6Addr; 4] = [
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
    ];
    /// IPv6 prefix lengths.
    pub const IPV6_PREFIXES: [u32; 3] = [128, 64, 32];
    /// TCP/UDP ports.
    pub const L4_PORTS: [u16; 4] = [53, 80, 443, 8080];
    /// VLAN ids.
    pub const VIDS: [u16; 3] = [10, 20, 30];
    /// VLAN priorities.
    pub const PCPS: [u8; 3] = [0, 3, 5];
    /// DSCP values.
    pub const DSCPS: [u8; 3] = [0, 10, 46];
    /// ICMPv4 types (echo reply, echo request, unreachable).
    pub const ICMP4_TYPES: [u8; 3] = [0, 8, 3];
    /// ICMPv6 types (echo request, echo reply, neighbour solicitation).
    pub const ICMP6_TYPES: [u8; 3] = [128, 129, 135];
    /// ICMP codes.
    pub const ICMP_CODES: [u8; 2] = [0, 1];
    /// IP protocols other than TCP/UDP/ICMP (GRE, SCTP, IPv6 no-next-header).
    pub const OTHER_PROTOS: [u8; 3] = [47, 132, 59];
    /// Ethertypes other than IPv4/IPv6/ARP/VLAN (LLDP, an unassigned one).
    pub const OTHER_ETHERTYPES: [u16; 2] = [0x88cc, 0x1234];
    /// ARP opcodes.
    pub const ARP_OPS: [u16; 2] = [1, 2];
    /// Metadata values.
    pub const METADATA: [u64; 4] = [0, 1, 2, 0x100];
    /// Metadata masks.
    pub const METADATA_MASKS: [u64; 3] = [u64::MAX, 0xff, 0x100];
}

use pool::{
    ARP_OPS, DSCPS, ICMP_CODES, ICMP4_TYPES, ICMP6_TYPES, IN_PORTS, IPV4, IPV4_PREFIXES, IPV6,
    IPV6_PREFIXES, L4_PORTS, MAC_MASKS, MACS, MAX_PORT, METADATA, METADATA_MASKS, OTHER_ETHERTYPES,
    OTHER_PROTOS, PCPS, VIDS,
};

fn pick_from<T: Clone + std::fmt::Debug + 'static>(
    values: &[T],
) -> impl Strategy<Value = T> + use<T> {
    select(values.to_vec())
}

// ---------------------------------------------------------------------------------------
// Rule sets
// ---------------------------------------------------------------------------------------

/// Size of generated rule sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleSetConfig {
    /// Tables used (`1..=MAX_TABLES`).
    pub tables: u8,
    /// Most rules (before duplicates are removed).
    pub max_rules: usize,
    /// Most match shapes (masks, roughly) shared by the rules.
    pub max_masks: usize,
}

impl Default for RuleSetConfig {
    fn default() -> Self {
        Self {
            tables: 3,
            max_rules: 24,
            max_masks: 6,
        }
    }
}

/// Which fields a rule matches and with which masks; rules sharing a shape share a mask.
#[derive(Clone, Copy, Debug)]
struct Shape {
    in_port: bool,
    metadata: Option<u64>,
    eth_dst: Option<[u8; 6]>,
    eth_src: bool,
    vlan: VlanShape,
    l3: L3Shape,
}

#[derive(Clone, Copy, Debug)]
enum VlanShape {
    Any,
    Untagged,
    AnyTag,
    Vid,
    VidPcp,
}

#[derive(Clone, Copy, Debug)]
enum L3Shape {
    Any,
    Other,
    Arp {
        op: bool,
        spa: Option<usize>,
        tpa: Option<usize>,
    },
    Ip {
        v6: bool,
        dscp: bool,
        src: Option<usize>,
        dst: Option<usize>,
        l4: L4Shape,
    },
}

#[derive(Clone, Copy, Debug)]
enum L4Shape {
    Any,
    Proto,
    Tcp(bool, bool),
    Udp(bool, bool),
    Icmp(bool, bool),
}

fn shape() -> impl Strategy<Value = Shape> {
    let vlan = prop_oneof![
        6 => Just(VlanShape::Any),
        1 => Just(VlanShape::Untagged),
        1 => Just(VlanShape::AnyTag),
        2 => Just(VlanShape::Vid),
        1 => Just(VlanShape::VidPcp),
    ];
    let l4 = prop_oneof![
        3 => Just(L4Shape::Any),
        1 => Just(L4Shape::Proto),
        2 => any::<(bool, bool)>().prop_map(|(s, d)| L4Shape::Tcp(s, d)),
        2 => any::<(bool, bool)>().prop_map(|(s, d)| L4Shape::Udp(s, d)),
        1 => any::<(bool, bool)>().prop_map(|(t, c)| L4Shape::Icmp(t, c)),
    ];
    let prefix = || option::weighted(0.6, 0..3usize);
    let l3 = prop_oneof![
        2 => Just(L3Shape::Any),
        1 => Just(L3Shape::Other),
        1 => (any::<bool>(), prefix(), prefix()).prop_map(|(op, spa, tpa)| L3Shape::Arp { op, spa, tpa }),
        5 => (prop::bool::weighted(0.35), prop::bool::weighted(0.2), prefix(), prefix(), l4)
            .prop_map(|(v6, dscp, src, dst, l4)| L3Shape::Ip { v6, dscp, src, dst, l4 }),
    ];
    (
        prop::bool::weighted(0.15),
        option::weighted(0.25, pick_from(&METADATA_MASKS)),
        option::weighted(0.35, pick_from(&MAC_MASKS)),
        prop::bool::weighted(0.15),
        vlan,
        l3,
    )
        .prop_map(|(in_port, metadata, eth_dst, eth_src, vlan, l3)| Shape {
            in_port,
            metadata,
            eth_dst,
            eth_src,
            vlan,
            l3,
        })
}

#[derive(Clone, Debug)]
enum ActionSpec {
    Output(u32),
    Edit(Vec<EditSpec>, u32),
    Controller(u16),
    InPort,
    Two(u32, u32),
    Flood(u32),
    Nothing,
}

#[derive(Clone, Copy, Debug)]
enum EditSpec {
    EthDst(Index),
    EthSrc(Index),
    Vid(Index),
    Push(u16),
    Pop,
}

fn action_spec() -> impl Strategy<Value = ActionSpec> {
    let edit = prop_oneof![
        2 => any::<Index>().prop_map(EditSpec::EthDst),
        1 => any::<Index>().prop_map(EditSpec::EthSrc),
        2 => any::<Index>().prop_map(EditSpec::Vid),
        1 => pick_from(&[TPID_8021Q, TPID_8021AD]).prop_map(EditSpec::Push),
        1 => Just(EditSpec::Pop),
    ];
    prop_oneof![
        12 => in_port().prop_map(ActionSpec::Output),
        4 => (vec(edit, 1..=3), in_port()).prop_map(|(e, p)| ActionSpec::Edit(e, p)),
        2 => pick_from(&[NO_BUFFER, 64, 128]).prop_map(ActionSpec::Controller),
        1 => Just(ActionSpec::InPort),
        1 => (in_port(), in_port()).prop_map(|(a, b)| ActionSpec::Two(a, b)),
        1 => pick_from(&[port_no::FLOOD, port_no::ALL]).prop_map(ActionSpec::Flood),
        1 => Just(ActionSpec::Nothing),
    ]
}

/// Field-value picks per rule (each field of a shape takes the next one).
const PICKS: usize = 16;

#[derive(Clone, Debug)]
struct RuleSpec {
    table: Index,
    shape: Index,
    picks: Vec<Index>,
    priority: u16,
    actions: ActionSpec,
    /// goto target among the later tables, and whether the rule still outputs.
    goto: Option<(Index, bool)>,
    write_metadata: Option<(Index, Index)>,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        any::<Index>(),
        any::<Index>(),
        vec(any::<Index>(), PICKS),
        prop_oneof![9 => 1u16..=2000, 1 => 1u16..=3],
        action_spec(),
        option::weighted(0.35, (any::<Index>(), prop::bool::weighted(0.2))),
        option::weighted(0.25, any::<(Index, Index)>()),
    )
        .prop_map(
            |(table, shape, picks, priority, actions, goto, write_metadata)| RuleSpec {
                table,
                shape,
                picks,
                priority,
                actions,
                goto,
                write_metadata,
            },
        )
}

/// Random rule sets (see the module docs). Every rule passes [`Rule::validate`]; no two
/// rules of a table have the same match and priority, and at most two the same match.
pub fn rule_set(cfg: RuleSetConfig) -> impl Strategy<Value = Vec<Rule>> {
    let miss = prop_oneof![
        2 => pick_from(&[NO_BUFFER, 128]).prop_map(ActionSpec::Controller),
        1 => in_port().prop_map(ActionSpec::Output),
        1 => Just(ActionSpec::Nothing),
    ];
    (
        vec(shape(), 1..=cfg.max_masks.max(1)),
        vec(rule_spec(), 1..=cfg.max_rules.max(1)),
        option::weighted(0.5, miss),
    )
        .prop_map(move |(shapes, specs, miss)| build_rules(cfg, &shapes, &specs, miss.as_ref()))
}

/// Hands out field-value picks in turn.
struct Picker<'a> {
    picks: &'a [Index],
    next: usize,
}

impl Picker<'_> {
    fn pick<T: Copy>(&mut self, pool: &[T]) -> T {
        let i = self.picks.get(self.next % self.picks.len().max(1));
        self.next += 1;
        i.map_or(pool[0], |i| *i.get(pool))
    }
}

fn build_rules(
    cfg: RuleSetConfig,
    shapes: &[Shape],
    specs: &[RuleSpec],
    miss: Option<&ActionSpec>,
) -> Vec<Rule> {
    let max_tables = u8::try_from(MAX_TABLES).unwrap_or(u8::MAX);
    let tables = cfg.tables.clamp(1, max_tables);
    let mut rules = Vec::new();
    for s in specs {
        let table = u8::try_from(s.table.index(usize::from(tables))).unwrap_or(0);
        let mut picker = Picker {
            picks: &s.picks,
            next: 0,
        };
        let m = instantiate(s.shape.get(shapes), &mut picker);
        let later = usize::from(tables - table - 1);
        let goto = s
            .goto
            .filter(|_| later > 0)
            .map(|(g, _)| table + 1 + u8::try_from(g.index(later)).unwrap_or(0));
        let keep_output = s.goto.is_none_or(|(_, keep)| keep) || goto.is_none();
        let apply = actions(&s.actions, &m, keep_output);
        let write_metadata = s.write_metadata.map(|(v, mk)| {
            let mask = *mk.get(&METADATA_MASKS);
            (*v.get(&METADATA) & mask, mask)
        });
        let instructions = Instructions {
            apply,
            write_metadata,
            goto_table: goto,
        };
        rules.push(Rule::new(table, s.priority, m, instructions));
    }
    if let Some(a) = miss {
        rules.push(table_miss(a));
    }
    dedupe(rules)
}

fn table_miss(a: &ActionSpec) -> Rule {
    Rule::new(
        0,
        0,
        Match::default(),
        Instructions::apply(actions(a, &Match::default(), true)),
    )
}

/// Drop rules with the same (table, match, priority) as an earlier one, and any third
/// rule with the same (table, match): they would share a datapath bucket of 4 slots, and
/// a modify needs a spare one.
fn dedupe(rules: Vec<Rule>) -> Vec<Rule> {
    let mut seen = HashSet::new();
    let mut per_match: HashMap<_, usize> = HashMap::new();
    rules
        .into_iter()
        .filter(|r| {
            let key = r.matches.compile();
            if !seen.insert((r.table, r.priority, key)) {
                return false;
            }
            let n = per_match.entry((r.table, key)).or_default();
            *n += 1;
            *n <= 2
        })
        .collect()
}

fn prefix_v4(a: Ipv4Addr, len: u32) -> Masked<Ipv4Addr> {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Masked {
        value: Ipv4Addr::from_bits(a.to_bits() & mask),
        mask: Ipv4Addr::from_bits(mask),
    }
}

fn prefix_v6(a: Ipv6Addr, len: u32) -> Masked<Ipv6Addr> {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    Masked {
        value: Ipv6Addr::from_bits(a.to_bits() & mask),
        mask: Ipv6Addr::from_bits(mask),
    }
}

fn instantiate(s: &Shape, p: &mut Picker<'_>) -> Match {
    let mut m = Match::default();
    if s.in_port {
        m.in_port = Some(p.pick(&IN_PORTS));
    }
    if let Some(mask) = s.metadata {
        m.metadata = Some(Masked {
            value: p.pick(&METADATA) & mask,
            mask,
        });
    }
    if let Some(mask) = s.eth_dst {
        let v = p.pick(&MACS);
        m.eth_dst = Some(Masked {
            value: array::from_fn(|i| v[i] & mask[i]),
            mask,
        });
    }
    if s.eth_src {
        m.eth_src = Some(Masked::exact(p.pick(&MACS)));
    }
    let vid = |value, mask| Some(Masked { value, mask });
    match s.vlan {
        VlanShape::Any => {}
        VlanShape::Untagged => m.vlan_vid = vid(0, 0x1fff),
        VlanShape::AnyTag => m.vlan_vid = vid(VID_PRESENT, VID_PRESENT),
        VlanShape::Vid | VlanShape::VidPcp => {
            m.vlan_vid = vid(VID_PRESENT | p.pick(&VIDS), 0x1fff);
            if matches!(s.vlan, VlanShape::VidPcp) {
                m.vlan_pcp = Some(p.pick(&PCPS));
            }
        }
    }
    match s.l3 {
        L3Shape::Any => {}
        L3Shape::Other => m.eth_type = Some(p.pick(&OTHER_ETHERTYPES)),
        L3Shape::Arp { op, spa, tpa } => {
            m.eth_type = Some(ethertype::ARP);
            if op {
                m.arp_op = Some(p.pick(&ARP_OPS));
            }
            m.arp_spa = spa.map(|i| prefix_v4(p.pick(&IPV4), IPV4_PREFIXES[i]));
            m.arp_tpa = tpa.map(|i| prefix_v4(p.pick(&IPV4), IPV4_PREFIXES[i]));
        }
        L3Shape::Ip {
            v6,
            dscp,
            src,
            dst,
            l4,
        } => {
            if v6 {
                m.eth_type = Some(ethertype::IPV6);
                m.ipv6_src = src.map(|i| prefix_v6(p.pick(&IPV6), IPV6_PREFIXES[i]));
                m.ipv6_dst = dst.map(|i| prefix_v6(p.pick(&IPV6), IPV6_PREFIXES[i]));
            } else {
                m.eth_type = Some(ethertype::IPV4);
                m.ipv4_src = src.map(|i| prefix_v4(p.pick(&IPV4), IPV4_PREFIXES[i]));
                m.ipv4_dst = dst.map(|i| prefix_v4(p.pick(&IPV4), IPV4_PREFIXES[i]));
            }
            if dscp {
                m.ip_dscp = Some(p.pick(&DSCPS));
            }
            let icmp = if v6 { ipproto::ICMPV6 } else { ipproto::ICMP };
            let port = |on: bool, p: &mut Picker<'_>| on.then(|| p.pick(&L4_PORTS));
            match l4 {
                L4Shape::Any => {}
                L4Shape::Proto => {
                    m.ip_proto = Some(p.pick(&[ipproto::TCP, ipproto::UDP, icmp, OTHER_PROTOS[0]]));
                }
                L4Shape::Tcp(s, d) => {
                    m.ip_proto = Some(ipproto::TCP);
                    m.tcp_src = port(s, p);
                    m.tcp_dst = port(d, p);
                }
                L4Shape::Udp(s, d) => {
                    m.ip_proto = Some(ipproto::UDP);
                    m.udp_src = port(s, p);
                    m.udp_dst = port(d, p);
                }
                L4Shape::Icmp(t, c) => {
                    m.ip_proto = Some(icmp);
                    let ty = t.then(|| p.pick(if v6 { &ICMP6_TYPES } else { &ICMP4_TYPES }));
                    let code = c.then(|| p.pick(&ICMP_CODES));
                    if v6 {
                        (m.icmpv6_type, m.icmpv6_code) = (ty, code);
                    } else {
                        (m.icmpv4_type, m.icmpv4_code) = (ty, code);
                    }
                }
            }
        }
    }
    m
}

/// The apply-actions for a spec, valid for match `m` (VLAN edits only where a tag is
/// guaranteed, tracked through push/pop as [`Instructions::validate`] does).
fn actions(spec: &ActionSpec, m: &Match, keep_output: bool) -> Vec<Action> {
    let mut tagged = m
        .vlan_vid
        .is_some_and(|v| v.mask & VID_PRESENT != 0 && v.value & VID_PRESENT != 0);
    let output = |port| keep_output.then(|| Action::output(port));
    match spec {
        ActionSpec::Output(p) => output(*p).into_iter().collect(),
        ActionSpec::Edit(edits, p) => {
            let mut v = Vec::new();
            for e in edits {
                match *e {
                    EditSpec::EthDst(i) => v.push(Action::SetEthDst(*i.get(&MACS))),
                    EditSpec::EthSrc(i) => v.push(Action::SetEthSrc(*i.get(&MACS))),
                    EditSpec::Vid(i) => {
                        if !tagged {
                            v.push(Action::PushVlan(TPID_8021Q));
                            tagged = true;
                        }
                        v.push(Action::SetVlanVid(*i.get(&VIDS)));
                    }
                    EditSpec::Push(tpid) => {
                        v.push(Action::PushVlan(tpid));
                        tagged = true;
                    }
                    EditSpec::Pop => {
                        if tagged {
                            v.push(Action::PopVlan);
                            tagged = false;
                        }
                    }
                }
            }
            v.extend(output(*p));
            v
        }
        ActionSpec::Controller(max_len) => keep_output
            .then_some(Action::Output {
                port: port_no::CONTROLLER,
                max_len: *max_len,
            })
            .into_iter()
            .collect(),
        ActionSpec::InPort => output(port_no::IN_PORT).into_iter().collect(),
        ActionSpec::Two(a, b) => output(*a).into_iter().chain(output(*b)).collect(),
        ActionSpec::Flood(p) => output(*p).into_iter().collect(),
        ActionSpec::Nothing => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Packets and frames
// ---------------------------------------------------------------------------------------

/// A virtual ingress port in `1..=8`.
pub fn in_port() -> impl Strategy<Value = u32> {
    1..=MAX_PORT
}

fn l4(v6: bool) -> BoxedStrategy<L4> {
    let ports = || (pick_from(&L4_PORTS), pick_from(&L4_PORTS));
    let icmp = if v6 {
        (pick_from(&ICMP6_TYPES), pick_from(&ICMP_CODES))
            .prop_map(|(ty, code)| L4::Icmpv6 { ty, code })
            .boxed()
    } else {
        (pick_from(&ICMP4_TYPES), pick_from(&ICMP_CODES))
            .prop_map(|(ty, code)| L4::Icmp { ty, code })
            .boxed()
    };
    prop_oneof![
        3 => ports().prop_map(|(src, dst)| L4::Udp { src, dst }),
        3 => ports().prop_map(|(src, dst)| L4::Tcp { src, dst }),
        2 => icmp,
        1 => (pick_from(&OTHER_PROTOS), vec(any::<u8>(), 0..16)).prop_map(|(proto, bytes)| L4::Raw { proto, bytes }),
    ]
    .boxed()
}

fn ipv4() -> impl Strategy<Value = Ipv4> {
    let frag = prop_oneof![
        8 => Just((0u16, false)),
        1 => Just((0u16, true)),
        1 => (1u16..=0x1fff, any::<bool>()),
    ];
    (
        (pick_from(&IPV4), pick_from(&IPV4)),
        (pick_from(&DSCPS), 0u8..4, 1u8..=255),
        l4(false),
        frag,
        prop_oneof![9 => Just(5u8), 1 => 6u8..=15],
    )
        .prop_map(
            |((src, dst), (dscp, ecn, ttl), l4, (frag_offset, more_frags), ihl_words)| {
                let l4 = if frag_offset == 0 {
                    l4
                } else {
                    L4::Raw {
                        proto: l4.proto(),
                        bytes: vec![0xab; 8],
                    }
                };
                Ipv4 {
                    src,
                    dst,
                    dscp,
                    ecn,
                    ttl,
                    frag_offset,
                    more_frags,
                    ihl_words,
                    l4,
                }
            },
        )
}

fn ipv6() -> impl Strategy<Value = Ipv6> {
    let ext = prop_oneof![
        Just(Ext::HopByHop),
        Just(Ext::Routing),
        Just(Ext::DestOpts),
        any::<bool>().prop_map(|more| Ext::Fragment { offset: 0, more }),
        Just(Ext::Auth),
    ];
    (
        (pick_from(&IPV6), pick_from(&IPV6)),
        (pick_from(&DSCPS), 0u8..4, any::<u8>()),
        prop_oneof![3 => Just(0usize), 1 => 1usize..=3].prop_flat_map(move |n| vec(ext.clone(), n)),
        option::weighted(0.1, 1u16..=0x1fff),
        l4(true),
    )
        .prop_map(
            |((src, dst), (dscp, ecn, hop_limit), mut ext, later_fragment, l4)| {
                let l4 = match later_fragment {
                    Some(offset) => {
                        ext.push(Ext::Fragment {
                            offset,
                            more: false,
                        });
                        L4::Raw {
                            proto: l4.proto(),
                            bytes: vec![0xcd; 8],
                        }
                    }
                    None => l4,
                };
                Ipv6 {
                    src,
                    dst,
                    dscp,
                    ecn,
                    hop_limit,
                    ext,
                    l4,
                }
            },
        )
}

fn arp() -> impl Strategy<Value = Arp> {
    (
        pick_from(&ARP_OPS),
        pick_from(&MACS),
        pick_from(&IPV4),
        pick_from(&MACS),
        pick_from(&IPV4),
    )
        .prop_map(|(op, sha, spa, tha, tpa)| Arp {
            op,
            sha,
            spa,
            tha,
            tpa,
        })
}

fn vlan() -> impl Strategy<Value = Vlan> {
    (
        pick_from(&VIDS),
        0u8..=7,
        prop::bool::weighted(0.1),
        prop_oneof![4 => Just(TPID_8021Q), 1 => Just(TPID_8021AD)],
    )
        .prop_map(|(vid, pcp, dei, tpid)| Vlan {
            tpid,
            pcp,
            dei,
            vid,
        })
}

/// Well-formed packets (at most one VLAN tag) with fields from the [`pool`]s; they
/// satisfy the round-trip conditions of [`crate::packet`].
pub fn packet() -> impl Strategy<Value = Packet> {
    let l3 = prop_oneof![
        5 => ipv4().prop_map(L3::Ipv4),
        3 => ipv6().prop_map(L3::Ipv6),
        1 => arp().prop_map(L3::Arp),
        1 => (pick_from(&OTHER_ETHERTYPES), vec(any::<u8>(), 0..48))
            .prop_map(|(ethertype, bytes)| L3::Other { ethertype, bytes }),
    ];
    (
        pick_from(&MACS),
        pick_from(&MACS),
        option::weighted(0.3, vlan()),
        l3,
    )
        .prop_map(|(eth_src, eth_dst, vlan, l3)| Packet {
            eth_dst,
            eth_src,
            vlans: vlan.into_iter().collect(),
            l3,
        })
}

/// Frames: mostly [`packet`]s padded to 60 bytes, some unpadded, and a few malformed
/// (cut at a random length, stacked VLAN tags, the [`malformed`] set).
pub fn frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        16 => packet().prop_map(|p| p.to_bytes()),
        2 => packet().prop_map(|p| p.to_bytes_min(0)),
        1 => (packet(), any::<Index>()).prop_map(|(p, i)| {
            let mut b = p.to_bytes_min(0);
            b.truncate(i.index(b.len() + 1));
            b
        }),
        1 => (packet(), pick_from(&VIDS)).prop_map(|(p, vid)| p.with_vlan(vid, 0).to_bytes()),
        1 => select(malformed::all()).prop_map(|m| m.frame),
    ]
}

/// One field of a packet changed to another pool value.
#[derive(Clone, Copy, Debug)]
struct Mutation(u8, Index);

fn mutate(p: &mut Packet, Mutation(kind, i): Mutation) {
    match (kind, &mut p.l3) {
        (0, _) => p.eth_dst = *i.get(&MACS),
        (1, _) => p.eth_src = *i.get(&MACS),
        (2, _) => {
            if p.vlans.is_empty() {
                p.vlans.push(Vlan::new(*i.get(&VIDS), 0));
            } else {
                p.vlans.clear();
            }
        }
        (3, _) => {
            if let Some(t) = p.vlans.first_mut() {
                t.vid = *i.get(&VIDS);
            }
        }
        (4, L3::Ipv4(ip)) => ip.dst = *i.get(&IPV4),
        (4, L3::Ipv6(ip)) => ip.dst = *i.get(&IPV6),
        (5, L3::Ipv4(ip)) => ip.src = *i.get(&IPV4),
        (5, L3::Ipv6(ip)) => ip.src = *i.get(&IPV6),
        (6, L3::Ipv4(Ipv4 { l4, .. }) | L3::Ipv6(Ipv6 { l4, .. })) => {
            if let L4::Tcp { dst, .. } | L4::Udp { dst, .. } = l4 {
                *dst = *i.get(&L4_PORTS);
            }
        }
        (7, L3::Ipv4(Ipv4 { dscp, .. }) | L3::Ipv6(Ipv6 { dscp, .. })) => *dscp = *i.get(&DSCPS),
        (_, L3::Arp(a)) => a.tpa = *i.get(&IPV4),
        _ => {}
    }
}

/// An ingress port and a frame: most frames are built to hit one of `rules` (from the
/// rule's in_port if it matches one), a third of those with one field changed; the rest
/// come from [`frame`] with an [`in_port`].
pub fn frame_near(rules: Vec<Rule>) -> impl Strategy<Value = (u32, Vec<u8>)> {
    let rules = Arc::new(rules);
    (
        0u8..10,
        any::<Index>(),
        option::weighted(
            0.35,
            (0u8..8, any::<Index>()).prop_map(|(k, i)| Mutation(k, i)),
        ),
        in_port(),
        frame(),
    )
        .prop_map(move |(dice, i, mutation, port, fallback)| {
            if dice < 4 || rules.is_empty() {
                return (port, fallback);
            }
            let r = i.get(&rules);
            let mut p = packet_matching(&r.matches);
            if let Some(mu) = mutation {
                mutate(&mut p, mu);
            }
            let port = r
                .matches
                .in_port
                .filter(|p| (1..=MAX_PORT).contains(p))
                .unwrap_or(port);
            (port, p.to_bytes())
        })
}

/// A rule set and frames (with ingress ports) to run through it.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The rules, all valid.
    pub rules: Vec<Rule>,
    /// (in_port, frame) pairs, mostly aimed at the rules.
    pub frames: Vec<(u32, Vec<u8>)>,
}

/// A [`rule_set`] and `1..=max_frames` frames from [`frame_near`] for it.
pub fn scenario(cfg: RuleSetConfig, max_frames: usize) -> impl Strategy<Value = Scenario> {
    rule_set(cfg)
        .prop_flat_map(move |rules| {
            let frames = vec(frame_near(rules.clone()), 1..=max_frames.max(1));
            (Just(rules), frames)
        })
        .prop_map(|(rules, frames)| Scenario { rules, frames })
}

// ---------------------------------------------------------------------------------------
// Frames for a match, benchmark rule sets
// ---------------------------------------------------------------------------------------

const DEFAULT_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const DEFAULT_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const DEFAULT_SRC4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DEFAULT_DST4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DEFAULT_SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const DEFAULT_DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const DEFAULT_SPORT: u16 = 1234;
const DEFAULT_DPORT: u16 = 80;

/// A packet matching `m` (in_port and metadata aside, which are not in the frame):
/// wildcarded bits come from a default IPv4/UDP packet. Best effort for matches no
/// frame can satisfy (e.g. ETH_TYPE 0x8100), or an IPv6 IP_PROTO that is an extension
/// header number.
#[must_use]
pub fn packet_matching(m: &Match) -> Packet {
    fn mac(m: Option<Masked<[u8; 6]>>, d: [u8; 6]) -> [u8; 6] {
        m.map_or(d, |x| array::from_fn(|i| x.value[i] | (d[i] & !x.mask[i])))
    }
    fn v4(m: Option<Masked<Ipv4Addr>>, d: Ipv4Addr) -> Ipv4Addr {
        m.map_or(d, |x| {
            Ipv4Addr::from_bits(x.value.to_bits() | (d.to_bits() & !x.mask.to_bits()))
        })
    }
    fn v6(m: Option<Masked<Ipv6Addr>>, d: Ipv6Addr) -> Ipv6Addr {
        m.map_or(d, |x| {
            Ipv6Addr::from_bits(x.value.to_bits() | (d.to_bits() & !x.mask.to_bits()))
        })
    }
    let l4 = |proto: u8, is_v6: bool| match proto {
        ipproto::TCP => L4::Tcp {
            src: m.tcp_src.unwrap_or(DEFAULT_SPORT),
            dst: m.tcp_dst.unwrap_or(DEFAULT_DPORT),
        },
        ipproto::UDP => L4::Udp {
            src: m.udp_src.unwrap_or(DEFAULT_SPORT),
            dst: m.udp_dst.unwrap_or(DEFAULT_DPORT),
        },
        ipproto::ICMP if !is_v6 => L4::Icmp {
            ty: m.icmpv4_type.unwrap_or(8),
            code: m.icmpv4_code.unwrap_or(0),
        },
        ipproto::ICMPV6 if is_v6 => L4::Icmpv6 {
            ty: m.icmpv6_type.unwrap_or(128),
            code: m.icmpv6_code.unwrap_or(0),
        },
        proto => L4::Raw {
            proto,
            bytes: vec![0; 8],
        },
    };
    let eth_src = mac(m.eth_src, DEFAULT_SRC_MAC);
    let l3 = match m.eth_type.unwrap_or(ethertype::IPV4) {
        ethertype::IPV4 => {
            let mut ip = Ipv4::new(
                v4(m.ipv4_src, DEFAULT_SRC4),
                v4(m.ipv4_dst, DEFAULT_DST4),
                l4(m.ip_proto.unwrap_or(ipproto::UDP), false),
            );
            ip.dscp = m.ip_dscp.unwrap_or(0);
            L3::Ipv4(ip)
        }
        ethertype::IPV6 => {
            let mut ip = Ipv6::new(
                v6(m.ipv6_src, DEFAULT_SRC6),
                v6(m.ipv6_dst, DEFAULT_DST6),
                l4(m.ip_proto.unwrap_or(ipproto::UDP), true),
            );
            ip.dscp = m.ip_dscp.unwrap_or(0);
            L3::Ipv6(ip)
        }
        ethertype::ARP => L3::Arp(Arp {
            op: m.arp_op.unwrap_or(1),
            sha: eth_src,
            spa: v4(m.arp_spa, DEFAULT_SRC4),
            tha: [0; 6],
            tpa: v4(m.arp_tpa, DEFAULT_DST4),
        }),
        ethertype => L3::Other {
            ethertype,
            bytes: vec![0; 46],
        },
    };
    let vlans = match m.vlan_vid {
        // Untagged unless the match wants a tag (OFPVID_PRESENT not constrained: tag).
        Some(v) if v.mask & VID_PRESENT == 0 || v.value & VID_PRESENT != 0 => {
            vec![Vlan::new(v.value & 0x0fff, m.vlan_pcp.unwrap_or(0))]
        }
        _ => Vec::new(),
    };
    Packet {
        eth_dst: mac(m.eth_dst, DEFAULT_DST_MAC),
        eth_src,
        vlans,
        l3,
    }
}

/// IPv4 destination prefix lengths of the benchmark masks, most common first. All are
/// at least 17 bits, so each mask holds 2^17 distinct rules.
const BENCH_PREFIXES: [u32; 16] = [
    32, 24, 20, 28, 18, 30, 26, 22, 17, 31, 29, 27, 25, 23, 21, 19,
];

/// Most distinct masks [`rules_over_masks`] makes.
pub const MAX_BENCH_MASKS: usize = BENCH_PREFIXES.len() * 3 * 2 * 2 * 2;

/// SplitMix64: a small, good 64-bit mixer for deterministic generation.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `n_rules` rules in table 0 spread round-robin over `n_masks` masks (clamped to
/// `1..=MAX_BENCH_MASKS`; the datapath takes at most `MAX_MASKS_PER_TABLE` per table),
/// each outputting to port 2. Mask `k` is a distinct combination of IPv4 destination
/// prefix length, UDP ports (none, destination, both), exact ETH_DST, exact IPv4 source
/// and IP_DSCP; its rules have priority `1000 - k`. All matches are distinct (while
/// `n_rules <= n_masks * 2^17`); `seed` scrambles the values.
#[must_use]
pub fn rules_over_masks(n_rules: usize, n_masks: usize, seed: u64) -> Vec<Rule> {
    let n_masks = n_masks.clamp(1, MAX_BENCH_MASKS);
    (0..n_rules)
        .map(|j| bench_rule(j % n_masks, j / n_masks, seed))
        .collect()
}

fn bench_rule(k: usize, i: usize, seed: u64) -> Rule {
    let mut r = k;
    let pfx = BENCH_PREFIXES[r % BENCH_PREFIXES.len()];
    r /= BENCH_PREFIXES.len();
    let l4 = r % 3;
    r /= 3;
    let (eth, src, dscp) = (r & 1 != 0, r & 2 != 0, r & 4 != 0);
    let h = splitmix(seed ^ splitmix(k as u64));
    // i -> i * odd + c is a bijection modulo 2^pfx: distinct i, distinct prefixes.
    let span_mask = (1u64 << pfx) - 1;
    let scrambled = (i as u64).wrapping_mul(h | 1).wrapping_add(h >> 17) & span_mask;
    let net_mask = u32::MAX.checked_shl(32 - pfx).unwrap_or(0);
    let dst = (0x0a00_0000 ^ u32::try_from(scrambled << (32 - pfx)).unwrap_or(0)) & net_mask;
    let v = splitmix(h ^ i as u64);
    let bits = v.to_be_bytes();
    let port = |x: u64| 1024 + u16::try_from(x % 60_000).unwrap_or(0);
    let mut m = Match {
        eth_type: Some(ethertype::IPV4),
        ipv4_dst: Some(Masked {
            value: Ipv4Addr::from_bits(dst),
            mask: Ipv4Addr::from_bits(net_mask),
        }),
        ..Match::default()
    };
    if l4 > 0 {
        m.ip_proto = Some(ipproto::UDP);
        m.udp_dst = Some(port(v));
    }
    if l4 > 1 {
        m.udp_src = Some(port(v >> 20));
    }
    if eth {
        m.eth_dst = Some(Masked::exact([
            0x02, 0x10, bits[0], bits[1], bits[2], bits[3],
        ]));
    }
    if src {
        m.ipv4_src = Some(Masked::exact(Ipv4Addr::new(172, 16, bits[4], bits[5])));
    }
    if dscp {
        m.ip_dscp = Some(bits[6] % 64);
    }
    let priority = 1000 - u16::try_from(k).unwrap_or(0);
    Rule::new(0, priority, m, Instructions::apply(vec![Action::output(2)]))
}

/// A frame (padded to 60 bytes) that matches `rules[i]`; other rules may match it too.
///
/// # Panics
/// If `i` is out of range.
#[must_use]
pub fn packet_hitting(rules: &[Rule], i: usize) -> Vec<u8> {
    packet_matching(&rules[i].matches).to_bytes()
}

/// An IPv4/UDP frame entering on port 1 that matches none of `rules` (checked with the
/// reference matcher), if one of a few thousand candidates does.
#[must_use]
pub fn packet_missing(rules: &[Rule]) -> Option<Vec<u8>> {
    (0u32..4096).find_map(|n| {
        let dst = Ipv4Addr::from_bits(0xc612_0000 | n); // 198.18.0.0/15, benchmarking
        let p = Packet::udp4(
            DEFAULT_SRC_MAC,
            DEFAULT_DST_MAC,
            DEFAULT_SRC4,
            dst,
            DEFAULT_SPORT,
            9,
        );
        let hit = rules
            .iter()
            .any(|r| reference::matches(&r.matches, 1, 0, &p));
        (!hit).then(|| p.to_bytes())
    })
}

/// The table-miss rule of `table`: priority 0, matches everything, outputs to `port`
/// (e.g. `port_no::CONTROLLER`).
#[must_use]
pub fn table_miss_rule(table: u8, port: u32) -> Rule {
    Rule::new(
        table,
        0,
        Match::default(),
        Instructions::apply(vec![Action::output(port)]),
    )
}

#[cfg(test)]
mod tests {
    use proptest::{strategy::ValueTree, test_runner::TestRunner};

    use super::*;
    use crate::reference::{Outcome, Reference};

    fn sample<T: std::fmt::Debug>(s: impl Strategy<Value = T>, n: usize) -> Vec<T> {
        let mut runner = TestRunner::deterministic();
        (0..n)
            .map(|_| {
                s.new_tree(&mut runner)
                    .expect("strategy generates")
                    .current()
            })
            .collect()
    }

    proptest! {
        #[test]
        fn generated_rules_are_valid(rules in rule_set(RuleSetConfig { tables: 8, max_rules: 40, max_masks: 8 })) {
            for r in &rules {
                prop_assert!(r.validate().is_ok(), "{:?}: {:?}", r.validate(), r);
            }
        }

        #[test]
        fn packet_matching_matches(rules in rule_set(RuleSetConfig::default())) {
            for r in &rules {
                let p = packet_matching(&r.matches);
                let port = r.matches.in_port.unwrap_or(1);
                let meta = r.matches.metadata.map_or(0, |m| m.value);
                let parsed = Packet::parse_datapath(&p.to_bytes()).expect("well-formed");
                prop_assert!(reference::matches(&r.matches, port, meta, &parsed), "{:?} vs {:?}", r.matches, p);
            }
        }

        #[test]
        fn oracle_is_total(s in scenario(RuleSetConfig::default(), 8)) {
            let r = Reference::new(&s.rules);
            for (port, frame) in &s.frames {
                let all = r.run_all(*port, frame);
                prop_assert!(!all.is_empty());
                prop_assert_eq!(&r.run(*port, frame), &all[0]);
            }
        }
    }

    #[test]
    fn generated_sets_look_like_real_ones() {
        let sets = sample(rule_set(RuleSetConfig::default()), 200);
        let rules: Vec<&Rule> = sets.iter().flatten().collect();
        let masks_per_set: f64 = sets
            .iter()
            .map(|s| {
                s.iter()
                    .map(|r| (r.table, r.matches.compile().1))
                    .collect::<HashSet<_>>()
                    .len() as f64
            })
            .sum::<f64>()
            / sets.len() as f64;
        let rules_per_set = rules.len() as f64 / sets.len() as f64;
        assert!(
            masks_per_set < rules_per_set * 0.8,
            "masks are shared: {masks_per_set} vs {rules_per_set}"
        );
        let gotos = rules
            .iter()
            .filter(|r| r.instructions.goto_table.is_some())
            .count();
        let vlan_edits = rules
            .iter()
            .filter(|r| {
                r.instructions.apply.iter().any(|a| {
                    matches!(
                        a,
                        Action::PushVlan(_) | Action::PopVlan | Action::SetVlanVid(_)
                    )
                })
            })
            .count();
        let metadata = rules
            .iter()
            .filter(|r| r.matches.metadata.is_some())
            .count();
        for (what, n) in [
            ("goto", gotos),
            ("vlan edits", vlan_edits),
            ("metadata matches", metadata),
        ] {
            assert!(n * 40 > rules.len(), "{what}: {n} of {}", rules.len());
        }
    }

    #[test]
    fn frames_mostly_hit_and_rarely_tie() {
        let scenarios = sample(scenario(RuleSetConfig::default(), 8), 200);
        let (mut total, mut hit, mut tied, mut sent, mut dropped_malformed) = (0, 0, 0, 0, 0);
        for s in &scenarios {
            let r = Reference::new(&s.rules);
            for (port, frame) in &s.frames {
                let v = r.run(*port, frame);
                total += 1;
                hit += usize::from(!v.chain.is_empty());
                tied += usize::from(v.tied);
                sent += usize::from(matches!(
                    v.outcome,
                    Outcome::Output { .. } | Outcome::Controller { .. }
                ));
                dropped_malformed += usize::from(
                    v.chain.is_empty()
                        && matches!(v.outcome, Outcome::Drop(d) if d != lime_common::stats::drop_reason::TABLE_MISS),
                );
            }
        }
        assert!(hit * 2 > total, "{hit} of {total} frames hit a rule");
        assert!(sent * 4 > total, "{sent} of {total} frames are delivered");
        assert!(tied * 10 < total, "{tied} of {total} frames tie");
        assert!(
            dropped_malformed > 0 && dropped_malformed * 10 < total,
            "{dropped_malformed} malformed of {total}"
        );
    }

    #[test]
    fn bench_rules_are_distinct_valid_and_hit() {
        for (n, masks) in [(1, 1), (200, 7), (1000, 32), (500, MAX_BENCH_MASKS)] {
            let rules = rules_over_masks(n, masks, 42);
            assert_eq!(rules.len(), n);
            let distinct: HashSet<_> = rules.iter().map(|r| r.matches.compile()).collect();
            assert_eq!(distinct.len(), n, "distinct matches");
            let mask_set: HashSet<_> = rules.iter().map(|r| r.matches.compile().1).collect();
            assert_eq!(mask_set.len(), masks.min(n), "distinct masks");
            let reference = Reference::new(&rules);
            for (i, r) in rules.iter().enumerate().step_by(7) {
                r.validate().expect("valid");
                let f = packet_hitting(&rules, i);
                let p = Packet::parse(&f).expect("parses");
                assert!(
                    reference::matches(&r.matches, 1, 0, &p),
                    "frame hits rule {i}"
                );
                assert!(matches!(
                    reference.run(1, &f).outcome,
                    Outcome::Output { port: 2, .. }
                ));
            }
            let miss = packet_missing(&rules).expect("a miss exists");
            assert!(reference.run(1, &miss).chain.is_empty());
        }
        assert_eq!(
            rules_over_masks(50, 5, 1),
            rules_over_masks(50, 5, 1),
            "deterministic"
        );
        assert_ne!(
            rules_over_masks(50, 5, 1),
            rules_over_masks(50, 5, 2),
            "seeded"
        );
        let mut with_miss = rules_over_masks(10, 2, 0);
        with_miss.push(table_miss_rule(0, port_no::CONTROLLER));
        let v = Reference::new(&with_miss).run(1, &packet_missing(&with_miss[..10]).expect("miss"));
        assert!(matches!(v.outcome, Outcome::Controller { .. }));
    }
}

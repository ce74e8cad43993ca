//! Property tests: arbitrary valid messages survive encode → decode unchanged,
//! and arbitrary (valid or not) matches are accepted by the decoder exactly
//! when [`Match::validate`] accepts them.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use lime_openflow::consts::{ControllerRole, FlowModCommand, OFPVID_PRESENT, ethertype, port};
use lime_openflow::multipart::{
    AggregateStats, Desc, FlowStats, FlowStatsRequest, PortStats, TableFeatureProp, TableFeatures,
    TableStats,
};
use lime_openflow::oxm::OxmHeader;
use lime_openflow::{
    Action, AsyncConfig, EchoReply, EchoRequest, ErrorMsg, FeaturesReply, FlowMod, FlowRemoved,
    Hello, HelloElement, Instruction, Masked, Match, Message, MultipartReply, MultipartReplyBody,
    MultipartRequest, MultipartRequestBody, OxmField, PacketIn, PacketOut, PortDesc, PortStatus,
    Role, SwitchConfig,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Bytes whose length is `rem` modulo 8 (bodies of raw TLVs that pad to 8).
fn bytes_mod8(rem: usize) -> impl Strategy<Value = Bytes> {
    (0..4usize)
        .prop_flat_map(move |k| vec(any::<u8>(), k * 8 + rem))
        .prop_map(Bytes::from)
}

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~]{{0,{max}}}")).expect("valid regex")
}

fn masked<T: Copy + std::fmt::Debug + 'static, S: Strategy<Value = T> + Clone>(
    s: S,
    and: fn(T, T) -> T,
) -> impl Strategy<Value = Masked<T>> {
    (s.clone(), proptest::option::of(s)).prop_map(move |(v, m)| match m {
        Some(m) => Masked::with_mask(and(v, m), m),
        None => Masked::exact(v),
    })
}

fn mac() -> impl Strategy<Value = [u8; 6]> + Clone {
    any::<[u8; 6]>()
}

fn and_mac(a: [u8; 6], b: [u8; 6]) -> [u8; 6] {
    std::array::from_fn(|i| a[i] & b[i])
}

fn v4() -> impl Strategy<Value = Ipv4Addr> + Clone {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> + Clone {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn and_v4(a: Ipv4Addr, b: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a) & u32::from(b))
}

fn and_v6(a: Ipv6Addr, b: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a) & u128::from(b))
}

/// A valid match: fields drawn layer by layer so prerequisites hold.
fn valid_match() -> BoxedStrategy<Match> {
    let l2 = (
        proptest::option::of(1..=port::MAX),
        proptest::option::of(masked(any::<u64>(), |a, b| a & b)),
        proptest::option::of(masked(mac(), and_mac)),
        proptest::option::of(masked(mac(), and_mac)),
        prop_oneof![
            Just(None),
            Just(Some((OxmField::vlan_none(), None))),
            Just(Some((OxmField::vlan_any(), None))),
            (0u16..0x1000, proptest::option::of(0u8..8))
                .prop_map(|(vid, pcp)| Some((OxmField::vlan_vid(vid), pcp))),
        ],
    );
    let l3 = prop_oneof![
        Just(vec![]),
        (any::<u16>())
            .prop_filter("not a typed ethertype", |t| ![0x0800, 0x0806, 0x86dd]
                .contains(t))
            .prop_map(|t| vec![OxmField::EthType(t.into())]),
        (
            proptest::option::of(masked(v4(), and_v4)),
            proptest::option::of(masked(v4(), and_v4)),
            proptest::option::of(0u8..64),
            l4(ethertype::IPV4),
        )
            .prop_map(|(s, d, dscp, l4)| {
                let mut v = vec![OxmField::EthType(ethertype::IPV4.into())];
                v.extend(dscp.map(|x| OxmField::IpDscp(x.into())));
                v.extend(s.map(OxmField::Ipv4Src));
                v.extend(d.map(OxmField::Ipv4Dst));
                v.extend(l4);
                v
            }),
        (
            proptest::option::of(masked(v6(), and_v6)),
            proptest::option::of(masked(v6(), and_v6)),
            l4(ethertype::IPV6)
        )
            .prop_map(|(s, d, l4)| {
                let mut v = vec![OxmField::EthType(ethertype::IPV6.into())];
                v.extend(s.map(OxmField::Ipv6Src));
                v.extend(d.map(OxmField::Ipv6Dst));
                v.extend(l4);
                v
            }),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(masked(v4(), and_v4)),
            proptest::option::of(masked(v4(), and_v4)),
        )
            .prop_map(|(op, spa, tpa)| {
                let mut v = vec![OxmField::EthType(ethertype::ARP.into())];
                v.extend(op.map(|x| OxmField::ArpOp(x.into())));
                v.extend(spa.map(OxmField::ArpSpa));
                v.extend(tpa.map(OxmField::ArpTpa));
                v
            }),
    ];
    (l2, l3)
        .prop_map(|((in_port, meta, dst, src, vlan), l3)| {
            let mut f = Vec::new();
            f.extend(in_port.map(|p| OxmField::InPort(p.into())));
            f.extend(meta.map(OxmField::Metadata));
            f.extend(dst.map(OxmField::EthDst));
            f.extend(src.map(OxmField::EthSrc));
            if let Some((vid, pcp)) = vlan {
                f.push(vid);
                f.extend(pcp.map(|p| OxmField::VlanPcp(p.into())));
            }
            f.extend(l3);
            Match::new(f)
        })
        .boxed()
}

fn l4(eth: u16) -> BoxedStrategy<Vec<OxmField>> {
    let icmp = if eth == ethertype::IPV4 { 1u8 } else { 58 };
    prop_oneof![
        Just(vec![]),
        (any::<u8>())
            .prop_filter("untyped protocol", |p| ![1, 6, 17, 58].contains(p))
            .prop_map(|p| vec![OxmField::IpProto(p.into())]),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>())
        )
            .prop_map(|(s, d)| {
                let mut v = vec![OxmField::IpProto(6.into())];
                v.extend(s.map(|x| OxmField::TcpSrc(x.into())));
                v.extend(d.map(|x| OxmField::TcpDst(x.into())));
                v
            }),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>())
        )
            .prop_map(|(s, d)| {
                let mut v = vec![OxmField::IpProto(17.into())];
                v.extend(s.map(|x| OxmField::UdpSrc(x.into())));
                v.extend(d.map(|x| OxmField::UdpDst(x.into())));
                v
            }),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>())
        )
            .prop_map(move |(t, c)| {
                let mut v = vec![OxmField::IpProto(icmp.into())];
                if icmp == 1 {
                    v.extend(t.map(|x| OxmField::Icmpv4Type(x.into())));
                    v.extend(c.map(|x| OxmField::Icmpv4Code(x.into())));
                } else {
                    v.extend(t.map(|x| OxmField::Icmpv6Type(x.into())));
                    v.extend(c.map(|x| OxmField::Icmpv6Code(x.into())));
                }
                v
            }),
    ]
    .boxed()
}

/// Any single field without mask and with an in-range value (for set-field).
fn set_field() -> BoxedStrategy<OxmField> {
    prop_oneof![
        mac().prop_map(|m| OxmField::EthDst(m.into())),
        mac().prop_map(|m| OxmField::EthSrc(m.into())),
        (0u16..0x1000).prop_map(OxmField::vlan_vid),
        (0u8..8).prop_map(|p| OxmField::VlanPcp(p.into())),
        (0u8..64).prop_map(|p| OxmField::IpDscp(p.into())),
        v4().prop_map(|a| OxmField::Ipv4Src(a.into())),
        v6().prop_map(|a| OxmField::Ipv6Dst(a.into())),
        any::<u16>().prop_map(|p| OxmField::TcpDst(p.into())),
        any::<u64>().prop_map(|m| OxmField::Metadata(m.into())),
    ]
    .boxed()
}

fn output_port() -> impl Strategy<Value = u32> {
    prop_oneof![1..=port::MAX, port::IN_PORT..=port::LOCAL]
}

fn action() -> BoxedStrategy<Action> {
    prop_oneof![
        (output_port(), any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        set_field().prop_map(Action::SetField),
        select(vec![0x8100u16, 0x88a8]).prop_map(|ethertype| Action::PushVlan { ethertype }),
        Just(Action::PopVlan),
        (
            select(vec![
                11u16, 12, 15, 16, 19, 20, 21, 22, 23, 24, 26, 27, 0xffff, 99
            ]),
            bytes_mod8(4)
        )
            .prop_map(|(action_type, body)| Action::Unsupported { action_type, body }),
    ]
    .boxed()
}

fn instruction() -> BoxedStrategy<Instruction> {
    prop_oneof![
        (1u8..=254).prop_map(|table_id| Instruction::GotoTable { table_id }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(metadata, mask)| Instruction::WriteMetadata { metadata, mask }),
        vec(action(), 0..4).prop_map(Instruction::WriteActions),
        vec(action(), 0..4).prop_map(Instruction::ApplyActions),
        Just(Instruction::ClearActions),
        any::<u32>().prop_map(|meter_id| Instruction::Meter { meter_id }),
        (any::<u32>(), bytes_mod8(0))
            .prop_map(|(experimenter, data)| Instruction::Experimenter { experimenter, data }),
    ]
    .boxed()
}

fn port_desc() -> BoxedStrategy<PortDesc> {
    (any::<u32>(), mac(), ascii(15), any::<[u32; 8]>())
        .prop_map(|(port_no, hw_addr, name, c)| PortDesc {
            port_no,
            hw_addr,
            name,
            config: c[0],
            state: c[1],
            curr: c[2],
            advertised: c[3],
            supported: c[4],
            peer: c[5],
            curr_speed: c[6],
            max_speed: c[7],
        })
        .boxed()
}

fn flow_mod() -> BoxedStrategy<FlowMod> {
    (
        any::<[u64; 2]>(),
        0u8..=0xfd,
        select(FlowModCommand::ALL.to_vec()),
        any::<[u16; 3]>(),
        any::<[u32; 3]>(),
        0u16..0x20,
        valid_match(),
        vec(instruction(), 0..4),
    )
        .prop_map(
            |(c, table_id, command, t, b, flags, r#match, mut instructions)| {
                // Spec 5.1: goto-table must go forward.
                for i in &mut instructions {
                    if let Instruction::GotoTable { table_id: next } = i {
                        *next = (*next).max(table_id + 1);
                    }
                }
                FlowMod {
                    cookie: c[0],
                    cookie_mask: c[1],
                    table_id,
                    command,
                    idle_timeout: t[0],
                    hard_timeout: t[1],
                    priority: t[2],
                    buffer_id: b[0],
                    out_port: b[1],
                    out_group: b[2],
                    flags,
                    r#match,
                    instructions,
                }
            },
        )
        .boxed()
}

fn flow_stats() -> BoxedStrategy<FlowStats> {
    (
        any::<u8>(),
        any::<[u32; 2]>(),
        any::<[u16; 4]>(),
        any::<[u64; 3]>(),
        valid_match(),
        vec(instruction(), 0..3),
    )
        .prop_map(|(table_id, d, p, c, r#match, instructions)| FlowStats {
            table_id,
            duration_sec: d[0],
            duration_nsec: d[1],
            priority: p[0],
            idle_timeout: p[1],
            hard_timeout: p[2],
            flags: p[3],
            cookie: c[0],
            packet_count: c[1],
            byte_count: c[2],
            r#match,
            instructions,
        })
        .boxed()
}

fn flow_stats_request() -> BoxedStrategy<FlowStatsRequest> {
    (
        any::<u8>(),
        any::<[u32; 2]>(),
        any::<[u64; 2]>(),
        valid_match(),
    )
        .prop_map(|(table_id, p, c, r#match)| FlowStatsRequest {
            table_id,
            out_port: p[0],
            out_group: p[1],
            cookie: c[0],
            cookie_mask: c[1],
            r#match,
        })
        .boxed()
}

fn oxm_headers() -> impl Strategy<Value = Vec<OxmHeader>> {
    vec(any::<u32>().prop_map(OxmHeader), 0..5)
}

fn table_feature_prop() -> BoxedStrategy<TableFeatureProp> {
    let ids = || vec(any::<u16>(), 0..6);
    prop_oneof![
        (any::<bool>(), ids()).prop_map(|(miss, ids)| TableFeatureProp::Instructions { miss, ids }),
        (any::<bool>(), vec(any::<u8>(), 0..10))
            .prop_map(|(miss, tables)| TableFeatureProp::NextTables { miss, tables }),
        (any::<bool>(), ids()).prop_map(|(miss, ids)| TableFeatureProp::WriteActions { miss, ids }),
        (any::<bool>(), ids()).prop_map(|(miss, ids)| TableFeatureProp::ApplyActions { miss, ids }),
        oxm_headers().prop_map(TableFeatureProp::Match),
        oxm_headers().prop_map(TableFeatureProp::Wildcards),
        (any::<bool>(), oxm_headers())
            .prop_map(|(miss, fields)| TableFeatureProp::WriteSetfield { miss, fields }),
        (any::<bool>(), oxm_headers())
            .prop_map(|(miss, fields)| TableFeatureProp::ApplySetfield { miss, fields }),
        (any::<bool>(), any::<[u32; 2]>(), bytes(12)).prop_map(|(miss, e, data)| {
            TableFeatureProp::Experimenter {
                miss,
                experimenter: e[0],
                exp_type: e[1],
                data,
            }
        }),
    ]
    .boxed()
}

fn table_features() -> BoxedStrategy<TableFeatures> {
    (
        any::<u8>(),
        ascii(31),
        any::<[u64; 2]>(),
        any::<[u32; 2]>(),
        vec(table_feature_prop(), 0..5),
    )
        .prop_map(|(table_id, name, m, c, properties)| TableFeatures {
            table_id,
            name,
            metadata_match: m[0],
            metadata_write: m[1],
            config: c[0],
            max_entries: c[1],
            properties,
        })
        .boxed()
}

fn multipart_request() -> BoxedStrategy<MultipartRequest> {
    let body = prop_oneof![
        Just(MultipartRequestBody::Desc),
        flow_stats_request().prop_map(MultipartRequestBody::Flow),
        flow_stats_request().prop_map(MultipartRequestBody::Aggregate),
        Just(MultipartRequestBody::Table),
        any::<u32>().prop_map(|port_no| MultipartRequestBody::PortStats { port_no }),
        Just(MultipartRequestBody::PortDesc),
        vec(table_features(), 0..3).prop_map(MultipartRequestBody::TableFeatures),
    ];
    (any::<u16>(), body)
        .prop_map(|(flags, body)| MultipartRequest { flags, body })
        .boxed()
}

fn multipart_reply() -> BoxedStrategy<MultipartReply> {
    let body = prop_oneof![
        (ascii(255), ascii(255), ascii(255), ascii(31), ascii(255)).prop_map(|(a, b, c, d, e)| {
            MultipartReplyBody::Desc(Desc {
                mfr_desc: a,
                hw_desc: b,
                sw_desc: c,
                serial_num: d,
                dp_desc: e,
            })
        }),
        vec(flow_stats(), 0..4).prop_map(MultipartReplyBody::Flow),
        (any::<[u64; 2]>(), any::<u32>()).prop_map(
            |(c, flow_count)| MultipartReplyBody::Aggregate(AggregateStats {
                packet_count: c[0],
                byte_count: c[1],
                flow_count
            })
        ),
        vec((any::<u8>(), any::<u32>(), any::<[u64; 2]>()), 0..4).prop_map(|v| {
            MultipartReplyBody::Table(
                v.into_iter()
                    .map(|(table_id, active_count, c)| TableStats {
                        table_id,
                        active_count,
                        lookup_count: c[0],
                        matched_count: c[1],
                    })
                    .collect(),
            )
        }),
        vec((any::<u32>(), any::<[u64; 12]>(), any::<[u32; 2]>()), 0..3).prop_map(|v| {
            MultipartReplyBody::PortStats(
                v.into_iter()
                    .map(|(port_no, c, d)| PortStats {
                        port_no,
                        rx_packets: c[0],
                        tx_packets: c[1],
                        rx_bytes: c[2],
                        tx_bytes: c[3],
                        rx_dropped: c[4],
                        tx_dropped: c[5],
                        rx_errors: c[6],
                        tx_errors: c[7],
                        rx_frame_err: c[8],
                        rx_over_err: c[9],
                        rx_crc_err: c[10],
                        collisions: c[11],
                        duration_sec: d[0],
                        duration_nsec: d[1],
                    })
                    .collect(),
            )
        }),
        vec(port_desc(), 0..4).prop_map(MultipartReplyBody::PortDesc),
        vec(table_features(), 0..3).prop_map(MultipartReplyBody::TableFeatures),
    ];
    (any::<u16>(), body)
        .prop_map(|(flags, body)| MultipartReply { flags, body })
        .boxed()
}

fn message() -> BoxedStrategy<Message> {
    let hello = (
        any::<u8>(),
        vec(
            prop_oneof![
                vec(any::<u32>(), 0..3).prop_map(HelloElement::VersionBitmap),
                (2u16.., bytes(10))
                    .prop_map(|(elem_type, data)| HelloElement::Unknown { elem_type, data }),
            ],
            0..3,
        ),
    )
        .prop_map(|(version, elements)| Message::Hello(Hello { version, elements }));
    let error = (0u16..0xffff, any::<u16>(), bytes(80)).prop_map(|(err_type, code, data)| {
        Message::Error(ErrorMsg {
            err_type,
            code,
            data,
        })
    });
    let config = (0u16..4, any::<u16>()).prop_map(|(flags, miss_send_len)| SwitchConfig {
        flags,
        miss_send_len,
    });
    let role =
        (select(ControllerRole::ALL.to_vec()), any::<u64>()).prop_map(|(role, generation_id)| {
            Role {
                role,
                generation_id,
            }
        });
    let asyncc = any::<[u32; 6]>().prop_map(|m| AsyncConfig {
        packet_in_mask: [m[0], m[1]],
        port_status_mask: [m[2], m[3]],
        flow_removed_mask: [m[4], m[5]],
    });
    prop_oneof![
        hello,
        error,
        bytes(64).prop_map(|data| Message::EchoRequest(EchoRequest { data })),
        bytes(64).prop_map(|data| Message::EchoReply(EchoReply { data })),
        Just(Message::FeaturesRequest),
        (
            any::<u64>(),
            any::<u32>(),
            any::<[u8; 2]>(),
            any::<[u32; 2]>()
        )
            .prop_map(|(d, n, t, c)| {
                Message::FeaturesReply(FeaturesReply {
                    datapath_id: d,
                    n_buffers: n,
                    n_tables: t[0],
                    auxiliary_id: t[1],
                    capabilities: c[0],
                    reserved: c[1],
                })
            }),
        Just(Message::GetConfigRequest),
        config.clone().prop_map(Message::GetConfigReply),
        config.prop_map(Message::SetConfig),
        (
            any::<u32>(),
            any::<u16>(),
            any::<[u8; 2]>(),
            any::<u64>(),
            valid_match(),
            bytes(64)
        )
            .prop_map(
                |(buffer_id, total_len, r, cookie, r#match, data)| Message::PacketIn(PacketIn {
                    buffer_id,
                    total_len,
                    reason: r[0],
                    table_id: r[1],
                    cookie,
                    r#match,
                    data
                })
            ),
        (
            any::<[u64; 3]>(),
            any::<[u16; 3]>(),
            any::<[u8; 2]>(),
            any::<[u32; 2]>(),
            valid_match()
        )
            .prop_map(|(c, p, r, d, r#match)| Message::FlowRemoved(FlowRemoved {
                cookie: c[0],
                priority: p[0],
                reason: r[0],
                table_id: r[1],
                duration_sec: d[0],
                duration_nsec: d[1],
                idle_timeout: p[1],
                hard_timeout: p[2],
                packet_count: c[1],
                byte_count: c[2],
                r#match
            })),
        (any::<u8>(), port_desc())
            .prop_map(|(reason, desc)| Message::PortStatus(PortStatus { reason, desc })),
        (
            any::<u32>(),
            prop_oneof![1..=port::MAX, Just(port::CONTROLLER), Just(port::LOCAL)],
            vec(action(), 0..4),
            bytes(64)
        )
            .prop_map(|(buffer_id, in_port, actions, data)| Message::PacketOut(
                PacketOut {
                    buffer_id,
                    in_port,
                    actions,
                    data
                }
            )),
        flow_mod().prop_map(Message::FlowMod),
        multipart_request().prop_map(Message::MultipartRequest),
        multipart_reply().prop_map(Message::MultipartReply),
        Just(Message::BarrierRequest),
        Just(Message::BarrierReply),
        role.clone().prop_map(Message::RoleRequest),
        role.prop_map(Message::RoleReply),
        Just(Message::GetAsyncRequest),
        asyncc.clone().prop_map(Message::GetAsyncReply),
        asyncc.prop_map(Message::SetAsync),
    ]
    .boxed()
}

/// Any field with any value and mask, valid or not.
fn any_field() -> BoxedStrategy<OxmField> {
    let m16 = || {
        (any::<u16>(), proptest::option::of(any::<u16>()))
            .prop_map(|(value, mask)| Masked { value, mask })
    };
    let m8 = || {
        (any::<u8>(), proptest::option::of(any::<u8>()))
            .prop_map(|(value, mask)| Masked { value, mask })
    };
    prop_oneof![
        (any::<u32>(), proptest::option::of(any::<u32>()))
            .prop_map(|(value, mask)| OxmField::InPort(Masked { value, mask })),
        m16().prop_map(OxmField::EthType),
        select(vec![0x0800u16, 0x86dd, 0x0806]).prop_map(|t| OxmField::EthType(t.into())),
        m16().prop_map(OxmField::VlanVid),
        m8().prop_map(OxmField::VlanPcp),
        m8().prop_map(OxmField::IpDscp),
        m8().prop_map(OxmField::IpProto),
        select(vec![1u8, 6, 17, 58]).prop_map(|t| OxmField::IpProto(t.into())),
        (any::<u32>(), proptest::option::of(any::<u32>())).prop_map(|(v, m)| OxmField::Ipv4Src(
            Masked {
                value: v.into(),
                mask: m.map(Into::into)
            }
        )),
        m16().prop_map(OxmField::TcpSrc),
        m8().prop_map(OxmField::Icmpv6Type),
        m16().prop_map(OxmField::ArpOp),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(msg in message(), xid in any::<u32>()) {
        let mut buf = BytesMut::new();
        msg.encode(xid, &mut buf).expect("generated messages fit");
        let (header, decoded) = Message::decode(&buf.freeze()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(header.xid, xid);
        prop_assert_eq!(decoded, msg);
    }

    #[test]
    fn decoder_agrees_with_validate(fields in vec(any_field(), 0..5)) {
        let m = Match::new(fields);
        let fm = FlowMod { r#match: m.clone(), ..FlowMod::default() };
        let wire = Message::from(fm.clone()).to_bytes(1).expect("fits");
        let decoded = Message::decode(&wire).map(|(_, msg)| msg);
        match m.validate() {
            Ok(()) => prop_assert_eq!(decoded, Ok(Message::FlowMod(fm))),
            Err(e) => prop_assert_eq!(decoded, Err(e)),
        }
    }

    #[test]
    fn vlan_vid_helper_sets_present(vid in 0u16..0x1000) {
        prop_assert_eq!(OxmField::vlan_vid(vid), OxmField::VlanVid(Masked::exact(OFPVID_PRESENT | vid)));
    }
}

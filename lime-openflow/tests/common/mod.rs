//! Golden messages shared by the golden, robustness and corpus-seeding code.
//!
//! Every byte string is written by hand from the OpenFlow 1.3.5 layouts
//! (appendix A); the comments name the fields.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::Ipv4Addr;

use bytes::Bytes;
use lime_openflow::consts::{
    ControllerRole, FlowModCommand, capabilities, controller_max_len, flow_mod_flags, port,
    port_features, port_state, table,
};
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

/// Parses whitespace-separated hex bytes; `|` may be used as a visual separator.
pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .filter(|t| *t != "|")
        .map(|t| {
            u8::from_str_radix(t, 16).unwrap_or_else(|_| panic!("bad hex byte {t:?} in golden"))
        })
        .collect()
}

/// One golden message.
pub struct Golden {
    /// Short name (also the corpus file name).
    pub name: &'static str,
    /// The exact wire bytes.
    pub bytes: Vec<u8>,
    /// The transaction id in `bytes`.
    pub xid: u32,
    /// What `bytes` decodes to.
    pub message: Message,
}

fn g(name: &'static str, xid: u32, bytes: &str, message: Message) -> Golden {
    Golden {
        name,
        bytes: hex(bytes),
        xid,
        message,
    }
}

/// Apply-actions `[output CONTROLLER, NO_BUFFER]`: the table-miss instruction.
pub const APPLY_TO_CONTROLLER: &str =
    "00 04 00 18 00 00 00 00 | 00 00 00 10 ff ff ff fd ff ff 00 00 00 00 00 00";

pub fn to_controller() -> Vec<Instruction> {
    vec![Instruction::ApplyActions(vec![Action::Output {
        port: port::CONTROLLER,
        max_len: controller_max_len::NO_BUFFER,
    }])]
}

/// The 64-byte `ofp_port` used by PORT_STATUS and PORT_DESC.
pub const PORT1: &str = "00 00 00 01 00 00 00 00 | 02 00 00 00 00 01 00 00 \
    | 65 74 68 31 00 00 00 00 00 00 00 00 00 00 00 00 \
    | 00 00 00 00 | 00 00 00 04 | 00 00 08 40 | 00 00 00 00 | 00 00 00 00 | 00 00 00 00 \
    | 00 98 96 80 | 00 98 96 80";

pub fn port1() -> PortDesc {
    PortDesc {
        port_no: 1,
        hw_addr: [2, 0, 0, 0, 0, 1],
        name: "eth1".into(),
        config: 0,
        state: port_state::LIVE,
        curr: port_features::F_10GB_FD | port_features::COPPER,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 10_000_000,
    }
}

/// Wraps an arbitrary FLOW_MOD match body (OXM TLVs) and instruction bytes
/// into a complete ADD flow-mod for table 0 (used by the error cases).
pub fn flow_mod_with(oxms: &[u8], instructions: &[u8]) -> Vec<u8> {
    let match_len = 4 + oxms.len();
    let padded = match_len.div_ceil(8) * 8;
    let total = 8 + 40 + padded + instructions.len();
    let mut v = vec![0x04, 0x0e];
    v.extend_from_slice(
        &u16::try_from(total)
            .expect("small test message")
            .to_be_bytes(),
    );
    v.extend_from_slice(&[0, 0, 0, 0x42]);
    v.extend_from_slice(&hex(
        "00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 | 00 00 | 00 00 00 00 | 80 00 \
         | ff ff ff ff | ff ff ff ff | ff ff ff ff | 00 00 00 00",
    ));
    v.extend_from_slice(&[0x00, 0x01]);
    v.extend_from_slice(&u16::try_from(match_len).expect("small match").to_be_bytes());
    v.extend_from_slice(oxms);
    v.resize(v.len() + padded - match_len, 0);
    v.extend_from_slice(instructions);
    v
}

fn desc_bytes() -> String {
    let field = |s: &str, n: usize| {
        let mut out: Vec<String> = s.bytes().map(|b| format!("{b:02x}")).collect();
        out.resize(n, "00".into());
        out.join(" ")
    };
    // Header: length 8 + 8 + 1056 = 1072 = 0x430.
    format!(
        "04 13 04 30 00 00 00 20 | 00 00 00 00 00 00 00 00 | {} | {} | {} | {} | {}",
        field("LIME", 256),
        field("eBPF datapath", 256),
        field("0.1.0", 256),
        field("42", 32),
        field("lab switch s1", 256)
    )
}

fn table_miss() -> FlowMod {
    FlowMod {
        priority: 0,
        instructions: to_controller(),
        ..FlowMod::default()
    }
}

/// All golden messages.
#[allow(clippy::too_many_lines, reason = "a flat list of fixtures reads best")]
pub fn golden() -> Vec<Golden> {
    let desc = desc_bytes();
    vec![
        g(
            "hello",
            1,
            "04 00 00 10 00 00 00 01 | 00 01 00 08 00 00 00 10",
            Message::Hello(Hello::default()),
        ),
        g(
            "hello_of10_no_bitmap",
            1,
            "01 00 00 08 00 00 00 01",
            Message::Hello(Hello {
                version: 1,
                elements: vec![],
            }),
        ),
        g(
            "hello_padded_unknown_elem",
            9,
            // bitmap {1.0, 1.3} then an unknown element type 0x99 with 1 data byte + 3 padding.
            "05 00 00 18 00 00 00 09 | 00 01 00 08 00 00 00 12 | 00 99 00 05 aa 00 00 00",
            Message::Hello(Hello {
                version: 5,
                elements: vec![
                    HelloElement::VersionBitmap(vec![0x12]),
                    HelloElement::Unknown {
                        elem_type: 0x99,
                        data: Bytes::from_static(&[0xaa]),
                    },
                ],
            }),
        ),
        g(
            "error_bad_len",
            2,
            "04 01 00 10 00 00 00 02 | 00 01 00 06 | 04 0e 00 50",
            Message::Error(ErrorMsg {
                err_type: 1,
                code: 6,
                data: Bytes::from_static(&[4, 0x0e, 0, 0x50]),
            }),
        ),
        g(
            "echo_request",
            3,
            "04 02 00 0c 00 00 00 03 | 61 62 63 64",
            EchoRequest {
                data: Bytes::from_static(b"abcd"),
            }
            .into(),
        ),
        g(
            "echo_reply",
            3,
            "04 03 00 08 00 00 00 03",
            EchoReply::default().into(),
        ),
        g(
            "features_request",
            4,
            "04 05 00 08 00 00 00 04",
            Message::FeaturesRequest,
        ),
        g(
            "features_reply",
            4,
            "04 06 00 20 00 00 00 04 | 00 00 00 00 00 00 00 2a | 00 00 01 00 | fe | 00 | 00 00 | 00 00 00 4f | 00 00 00 00",
            FeaturesReply {
                datapath_id: 42,
                n_buffers: 256,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: capabilities::FLOW_STATS
                    | capabilities::TABLE_STATS
                    | capabilities::PORT_STATS
                    | capabilities::GROUP_STATS
                    | capabilities::QUEUE_STATS,
                reserved: 0,
            }
            .into(),
        ),
        g(
            "get_config_request",
            5,
            "04 07 00 08 00 00 00 05",
            Message::GetConfigRequest,
        ),
        g(
            "get_config_reply",
            5,
            "04 08 00 0c 00 00 00 05 | 00 00 00 80",
            Message::GetConfigReply(SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            }),
        ),
        g(
            "set_config",
            6,
            "04 09 00 0c 00 00 00 06 | 00 00 ff ff",
            Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 0xffff,
            }),
        ),
        g(
            "barrier_request",
            7,
            "04 14 00 08 00 00 00 07",
            Message::BarrierRequest,
        ),
        g(
            "barrier_reply",
            7,
            "04 15 00 08 00 00 00 07",
            Message::BarrierReply,
        ),
        g(
            "flow_mod_table_miss",
            8,
            &format!(
                "04 0e 00 50 00 00 00 08 \
                 | 00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 \
                 | 00 | 00 | 00 00 | 00 00 | 00 00 | ff ff ff ff | ff ff ff ff | ff ff ff ff | 00 00 | 00 00 \
                 | 00 01 00 04 00 00 00 00 \
                 | {APPLY_TO_CONTROLLER}"
            ),
            table_miss().into(),
        ),
        g(
            "flow_mod_l4",
            9,
            "04 0e 00 a8 00 00 00 09 \
             | 00 00 00 00 00 00 12 34 | 00 00 00 00 00 00 00 00 \
             | 00 | 00 | 00 0a | 00 1e | 00 64 | ff ff ff ff | ff ff ff ff | ff ff ff ff | 00 03 | 00 00 \
             | 00 01 00 29 \
             | 80 00 00 04 00 00 00 01 \
             | 80 00 0a 02 08 00 \
             | 80 00 14 01 06 \
             | 80 00 19 08 0a 00 00 00 ff 00 00 00 \
             | 80 00 1c 02 00 50 \
             | 00 00 00 00 00 00 00 \
             | 00 04 00 40 00 00 00 00 \
             | 00 19 00 10 80 00 06 06 00 11 22 33 44 55 00 00 \
             | 00 11 00 08 81 00 00 00 \
             | 00 19 00 10 80 00 0c 02 10 0a 00 00 00 00 00 00 \
             | 00 00 00 10 00 00 00 02 00 00 00 00 00 00 00 00 \
             | 00 01 00 08 01 00 00 00",
            FlowMod {
                cookie: 0x1234,
                idle_timeout: 10,
                hard_timeout: 30,
                priority: 100,
                flags: flow_mod_flags::SEND_FLOW_REM | flow_mod_flags::CHECK_OVERLAP,
                r#match: Match::new(vec![
                    OxmField::InPort(1.into()),
                    OxmField::EthType(0x0800.into()),
                    OxmField::IpProto(6.into()),
                    OxmField::Ipv4Dst(Masked::with_mask(
                        Ipv4Addr::new(10, 0, 0, 0),
                        Ipv4Addr::new(255, 0, 0, 0),
                    )),
                    OxmField::TcpDst(80.into()),
                ]),
                instructions: vec![
                    Instruction::ApplyActions(vec![
                        Action::SetField(OxmField::EthDst(
                            [0, 0x11, 0x22, 0x33, 0x44, 0x55].into(),
                        )),
                        Action::PushVlan { ethertype: 0x8100 },
                        Action::SetField(OxmField::vlan_vid(10)),
                        Action::Output {
                            port: 2,
                            max_len: 0,
                        },
                    ]),
                    Instruction::GotoTable { table_id: 1 },
                ],
                ..FlowMod::default()
            }
            .into(),
        ),
        g(
            "flow_mod_delete_all",
            10,
            "04 0e 00 38 00 00 00 0a \
             | 00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 \
             | ff | 03 | 00 00 | 00 00 | 00 00 | ff ff ff ff | ff ff ff ff | ff ff ff ff | 00 00 | 00 00 \
             | 00 01 00 04 00 00 00 00",
            FlowMod {
                table_id: table::ALL,
                command: FlowModCommand::Delete,
                priority: 0,
                ..FlowMod::default()
            }
            .into(),
        ),
        g(
            "packet_in",
            0,
            "04 0a 00 2e 00 00 00 00 \
             | ff ff ff ff | 00 2a | 00 | 00 | 00 00 00 00 00 00 00 00 \
             | 00 01 00 0c 80 00 00 04 00 00 00 03 00 00 00 00 \
             | 00 00 | de ad be ef",
            PacketIn {
                buffer_id: 0xffff_ffff,
                total_len: 42,
                reason: 0,
                table_id: 0,
                cookie: 0,
                r#match: Match::new(vec![OxmField::InPort(3.into())]),
                data: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
            }
            .into(),
        ),
        g(
            "packet_out",
            11,
            "04 0d 00 2e 00 00 00 0b \
             | ff ff ff ff | ff ff ff fd | 00 10 | 00 00 00 00 00 00 \
             | 00 00 00 10 00 00 00 01 ff e5 00 00 00 00 00 00 \
             | 01 02 03 04 05 06",
            PacketOut {
                buffer_id: 0xffff_ffff,
                in_port: port::CONTROLLER,
                actions: vec![Action::Output {
                    port: 1,
                    max_len: controller_max_len::MAX,
                }],
                data: Bytes::from_static(&[1, 2, 3, 4, 5, 6]),
            }
            .into(),
        ),
        g(
            "flow_removed",
            0,
            "04 0b 00 40 00 00 00 00 \
             | 00 00 00 00 00 00 00 01 | 00 64 | 02 | 00 | 00 00 00 05 | 00 00 00 00 | 00 0a | 00 00 \
             | 00 00 00 00 00 00 00 07 | 00 00 00 00 00 00 01 00 \
             | 00 01 00 0c 80 00 00 04 00 00 00 01 00 00 00 00",
            FlowRemoved {
                cookie: 1,
                priority: 100,
                reason: 2,
                table_id: 0,
                duration_sec: 5,
                duration_nsec: 0,
                idle_timeout: 10,
                hard_timeout: 0,
                packet_count: 7,
                byte_count: 256,
                r#match: Match::new(vec![OxmField::InPort(1.into())]),
            }
            .into(),
        ),
        g(
            "port_status",
            0,
            &format!("04 0c 00 50 00 00 00 00 | 00 | 00 00 00 00 00 00 00 | {PORT1}"),
            PortStatus {
                reason: 0,
                desc: port1(),
            }
            .into(),
        ),
        g(
            "mp_desc_request",
            16,
            "04 12 00 10 00 00 00 10 | 00 00 | 00 00 | 00 00 00 00",
            MultipartRequest::new(MultipartRequestBody::Desc).into(),
        ),
        g(
            "mp_desc_reply",
            32,
            &desc,
            MultipartReply::new(MultipartReplyBody::Desc(Desc {
                mfr_desc: "LIME".into(),
                hw_desc: "eBPF datapath".into(),
                sw_desc: "0.1.0".into(),
                serial_num: "42".into(),
                dp_desc: "lab switch s1".into(),
            }))
            .into(),
        ),
        g(
            "mp_flow_request",
            17,
            "04 12 00 38 00 00 00 11 | 00 01 | 00 00 | 00 00 00 00 \
             | ff | 00 00 00 | ff ff ff ff | ff ff ff ff | 00 00 00 00 \
             | 00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 | 00 01 00 04 00 00 00 00",
            MultipartRequest::new(MultipartRequestBody::Flow(FlowStatsRequest::default())).into(),
        ),
        g(
            "mp_aggregate_request",
            18,
            "04 12 00 38 00 00 00 12 | 00 02 | 00 00 | 00 00 00 00 \
             | ff | 00 00 00 | ff ff ff ff | ff ff ff ff | 00 00 00 00 \
             | 00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 | 00 01 00 04 00 00 00 00",
            MultipartRequest::new(MultipartRequestBody::Aggregate(FlowStatsRequest::default()))
                .into(),
        ),
        g(
            "mp_table_request",
            19,
            "04 12 00 10 00 00 00 13 | 00 03 | 00 00 | 00 00 00 00",
            MultipartRequest::new(MultipartRequestBody::Table).into(),
        ),
        g(
            "mp_port_stats_request",
            20,
            "04 12 00 18 00 00 00 14 | 00 04 | 00 00 | 00 00 00 00 | ff ff ff ff 00 00 00 00",
            MultipartRequest::new(MultipartRequestBody::PortStats { port_no: port::ANY }).into(),
        ),
        g(
            "mp_port_desc_request",
            21,
            "04 12 00 10 00 00 00 15 | 00 0d | 00 00 | 00 00 00 00",
            MultipartRequest::new(MultipartRequestBody::PortDesc).into(),
        ),
        g(
            "mp_table_features_request_empty",
            22,
            "04 12 00 10 00 00 00 16 | 00 0c | 00 00 | 00 00 00 00",
            MultipartRequest::new(MultipartRequestBody::TableFeatures(vec![])).into(),
        ),
        g(
            "mp_flow_reply",
            17,
            &format!(
                "04 13 00 60 00 00 00 11 | 00 01 | 00 00 | 00 00 00 00 \
                 | 00 50 | 00 | 00 | 00 00 00 0a | 00 00 00 00 | 00 00 | 00 00 | 00 00 | 00 00 | 00 00 00 00 \
                 | 00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 05 | 00 00 00 00 00 00 01 2c \
                 | 00 01 00 04 00 00 00 00 | {APPLY_TO_CONTROLLER}"
            ),
            MultipartReply::new(MultipartReplyBody::Flow(vec![FlowStats {
                duration_sec: 10,
                packet_count: 5,
                byte_count: 300,
                instructions: to_controller(),
                ..FlowStats::default()
            }]))
            .into(),
        ),
        g(
            "mp_flow_reply_more",
            17,
            "04 13 00 10 00 00 00 11 | 00 01 | 00 01 | 00 00 00 00",
            MultipartReply {
                flags: 1,
                body: MultipartReplyBody::Flow(vec![]),
            }
            .into(),
        ),
        g(
            "mp_aggregate_reply",
            18,
            "04 13 00 28 00 00 00 12 | 00 02 | 00 00 | 00 00 00 00 \
             | 00 00 00 00 00 00 00 0a | 00 00 00 00 00 00 03 e8 | 00 00 00 02 | 00 00 00 00",
            MultipartReply::new(MultipartReplyBody::Aggregate(AggregateStats {
                packet_count: 10,
                byte_count: 1000,
                flow_count: 2,
            }))
            .into(),
        ),
        g(
            "mp_table_reply",
            19,
            "04 13 00 28 00 00 00 13 | 00 03 | 00 00 | 00 00 00 00 \
             | 00 | 00 00 00 | 00 00 00 01 | 00 00 00 00 00 00 00 64 | 00 00 00 00 00 00 00 32",
            MultipartReply::new(MultipartReplyBody::Table(vec![TableStats {
                table_id: 0,
                active_count: 1,
                lookup_count: 100,
                matched_count: 50,
            }]))
            .into(),
        ),
        g(
            "mp_port_stats_reply",
            20,
            "04 13 00 80 00 00 00 14 | 00 04 | 00 00 | 00 00 00 00 \
             | 00 00 00 01 | 00 00 00 00 \
             | 00 00 00 00 00 00 00 01 | 00 00 00 00 00 00 00 02 | 00 00 00 00 00 00 00 03 \
             | 00 00 00 00 00 00 00 04 | 00 00 00 00 00 00 00 05 | 00 00 00 00 00 00 00 06 \
             | 00 00 00 00 00 00 00 07 | 00 00 00 00 00 00 00 08 | 00 00 00 00 00 00 00 09 \
             | 00 00 00 00 00 00 00 0a | 00 00 00 00 00 00 00 0b | 00 00 00 00 00 00 00 0c \
             | 00 00 00 03 | 00 00 00 00",
            MultipartReply::new(MultipartReplyBody::PortStats(vec![PortStats {
                port_no: 1,
                rx_packets: 1,
                tx_packets: 2,
                rx_bytes: 3,
                tx_bytes: 4,
                rx_dropped: 5,
                tx_dropped: 6,
                rx_errors: 7,
                tx_errors: 8,
                rx_frame_err: 9,
                rx_over_err: 10,
                rx_crc_err: 11,
                collisions: 12,
                duration_sec: 3,
                duration_nsec: 0,
            }]))
            .into(),
        ),
        g(
            "mp_port_desc_reply",
            21,
            &format!("04 13 00 50 00 00 00 15 | 00 0d | 00 00 | 00 00 00 00 | {PORT1}"),
            MultipartReply::new(MultipartReplyBody::PortDesc(vec![port1()])).into(),
        ),
        g(
            "mp_table_features_reply",
            22,
            "04 13 00 a8 00 00 00 16 | 00 0c | 00 00 | 00 00 00 00 \
             | 00 98 | 00 | 00 00 00 00 00 \
             | 6c 69 6d 65 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             | ff ff ff ff ff ff ff ff | ff ff ff ff ff ff ff ff | 00 00 00 00 | 00 00 10 00 \
             | 00 00 00 0c 00 01 00 04 00 04 00 04 00 00 00 00 \
             | 00 02 00 05 01 00 00 00 \
             | 00 06 00 14 00 00 00 04 00 11 00 04 00 12 00 04 00 19 00 04 00 00 00 00 \
             | 00 08 00 0c 80 00 00 04 80 00 06 06 00 00 00 00 \
             | 00 0a 00 08 80 00 06 06 \
             | 00 0e 00 10 80 00 06 06 80 00 08 06 80 00 0c 02",
            MultipartReply::new(MultipartReplyBody::TableFeatures(vec![TableFeatures {
                table_id: 0,
                name: "lime".into(),
                metadata_match: u64::MAX,
                metadata_write: u64::MAX,
                config: 0,
                max_entries: 4096,
                properties: vec![
                    TableFeatureProp::Instructions {
                        miss: false,
                        ids: vec![1, 4],
                    },
                    TableFeatureProp::NextTables {
                        miss: false,
                        tables: vec![1],
                    },
                    TableFeatureProp::ApplyActions {
                        miss: false,
                        ids: vec![0, 17, 18, 25],
                    },
                    TableFeatureProp::Match(vec![OxmHeader(0x8000_0004), OxmHeader(0x8000_0606)]),
                    TableFeatureProp::Wildcards(vec![OxmHeader(0x8000_0606)]),
                    TableFeatureProp::ApplySetfield {
                        miss: false,
                        fields: vec![
                            OxmHeader(0x8000_0606),
                            OxmHeader(0x8000_0806),
                            OxmHeader(0x8000_0c02),
                        ],
                    },
                ],
            }]))
            .into(),
        ),
        g(
            "role_request",
            24,
            "04 18 00 18 00 00 00 18 | 00 00 00 02 | 00 00 00 00 | 00 00 00 00 00 00 00 01",
            Message::RoleRequest(Role {
                role: ControllerRole::Master,
                generation_id: 1,
            }),
        ),
        g(
            "role_reply",
            24,
            "04 19 00 18 00 00 00 18 | 00 00 00 02 | 00 00 00 00 | 00 00 00 00 00 00 00 01",
            Message::RoleReply(Role {
                role: ControllerRole::Master,
                generation_id: 1,
            }),
        ),
        g(
            "get_async_request",
            26,
            "04 1a 00 08 00 00 00 1a",
            Message::GetAsyncRequest,
        ),
        g(
            "get_async_reply",
            26,
            "04 1b 00 20 00 00 00 1a | 00 00 00 03 00 00 00 00 | 00 00 00 07 00 00 00 07 | 00 00 00 0f 00 00 00 00",
            Message::GetAsyncReply(AsyncConfig {
                packet_in_mask: [3, 0],
                port_status_mask: [7, 7],
                flow_removed_mask: [15, 0],
            }),
        ),
        g(
            "set_async",
            28,
            "04 1c 00 20 00 00 00 1c | 00 00 00 03 00 00 00 00 | 00 00 00 07 00 00 00 07 | 00 00 00 0f 00 00 00 00",
            Message::SetAsync(AsyncConfig {
                packet_in_mask: [3, 0],
                port_status_mask: [7, 7],
                flow_removed_mask: [15, 0],
            }),
        ),
    ]
}

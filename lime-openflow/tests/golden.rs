//! Golden-byte tests: every hand-written message decodes to the expected
//! value and encodes back to the same bytes; malformed variants give the
//! spec's `(type, code)`.

mod common;

use bytes::{Bytes, BytesMut};
use common::{flow_mod_with, golden, hex};
use lime_openflow::consts::{
    BadActionCode, BadInstructionCode, BadMatchCode, BadRequestCode, FlowModFailedCode,
    HelloFailedCode, OFPVID_PRESENT, OxmFieldId, RoleRequestFailedCode, SwitchConfigFailedCode,
};
use lime_openflow::framing::{self, FrameStatus};
use lime_openflow::{
    Action, DATAPATH_SETTABLE, DecodeError, ErrorCode, ErrorScope, Hello, Instruction, Masked,
    Match, Message, OxmField, error_reply, negotiate_version,
};

fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    Message::decode(&Bytes::copy_from_slice(bytes)).map(|(_, m)| m)
}

fn decode_err(bytes: &[u8]) -> ErrorCode {
    match decode(bytes) {
        Ok(m) => panic!("expected an error, decoded {m:?}"),
        Err(e) => {
            assert_eq!(e.scope(), ErrorScope::Message, "{e}");
            e.code()
        }
    }
}

#[test]
fn golden_messages_decode() {
    for g in golden() {
        let (header, msg) = Message::decode(&Bytes::from(g.bytes.clone()))
            .unwrap_or_else(|e| panic!("{}: decode failed: {e}", g.name));
        assert_eq!(header.xid, g.xid, "{}: xid", g.name);
        assert_eq!(
            usize::from(header.length),
            g.bytes.len(),
            "{}: length",
            g.name
        );
        assert_eq!(msg, g.message, "{}: decoded value", g.name);
    }
}

#[test]
fn golden_messages_encode() {
    for g in golden() {
        let mut out = BytesMut::new();
        g.message
            .encode(g.xid, &mut out)
            .unwrap_or_else(|e| panic!("{}: encode failed: {e}", g.name));
        assert_eq!(
            hexdump(&out),
            hexdump(&g.bytes),
            "{}: encoded bytes",
            g.name
        );
    }
}

fn hexdump(b: &[u8]) -> String {
    b.chunks(8)
        .map(|c| {
            c.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn framing_keeps_incomplete_apart_from_errors() {
    let all: Vec<u8> = golden().iter().flat_map(|g| g.bytes.clone()).collect();
    // Feed the concatenated stream one byte at a time: every message comes out once, in order.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in &all {
        buf.extend_from_slice(&[*b]);
        while let Some(frame) = framing::next_frame(&mut buf).expect("golden stream is well framed")
        {
            got.push(Message::decode(&frame.bytes).expect("golden decodes").1);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(
        got,
        golden().into_iter().map(|g| g.message).collect::<Vec<_>>()
    );

    assert_eq!(
        framing::check(&[4, 0, 0]),
        Ok(FrameStatus::Incomplete { needed: 5 })
    );
    assert_eq!(
        framing::check(&hex("04 00 00 10 00 00 00 01")),
        Ok(FrameStatus::Incomplete { needed: 8 })
    );
    // Spec 7.1: length includes the header, so < 8 cannot be resynchronised.
    let err = framing::check(&hex("04 00 00 04 00 00 00 01")).expect_err("length 4 is fatal");
    assert_eq!(err, DecodeError::HeaderTooShort { length: 4 });
    assert_eq!(err.scope(), ErrorScope::Connection);
    assert_eq!(err.code(), ErrorCode::BadRequest(BadRequestCode::BadLen));
}

#[test]
fn request_level_errors() {
    use BadRequestCode as B;
    let cases: &[(&str, &str, ErrorCode)] = &[
        (
            "version 1.0 features request",
            "01 05 00 08 00 00 00 01",
            ErrorCode::BadRequest(B::BadVersion),
        ),
        (
            "group mod",
            "04 0f 00 08 00 00 00 01",
            ErrorCode::BadRequest(B::BadType),
        ),
        (
            "meter mod",
            "04 1d 00 08 00 00 00 01",
            ErrorCode::BadRequest(B::BadType),
        ),
        (
            "unknown type 30",
            "04 1e 00 08 00 00 00 01",
            ErrorCode::BadRequest(B::BadType),
        ),
        (
            "experimenter",
            "04 04 00 10 00 00 00 01 00 00 23 20 00 00 00 00",
            ErrorCode::BadRequest(B::BadExperimenter),
        ),
        (
            "features request with body",
            "04 05 00 0c 00 00 00 01 00 00 00 00",
            ErrorCode::BadRequest(B::BadLen),
        ),
        (
            "short features reply",
            "04 06 00 0c 00 00 00 01 00 00 00 00",
            ErrorCode::BadRequest(B::BadLen),
        ),
        (
            "multipart group stats",
            "04 12 00 10 00 00 00 01 00 06 00 00 00 00 00 00",
            ErrorCode::BadRequest(B::BadMultipart),
        ),
        (
            "multipart meter",
            "04 12 00 10 00 00 00 01 00 09 00 00 00 00 00 00",
            ErrorCode::BadRequest(B::BadMultipart),
        ),
        (
            "multipart experimenter",
            "04 12 00 18 00 00 00 01 ff ff 00 00 00 00 00 00 00 00 23 20 00 00 00 00",
            ErrorCode::BadRequest(B::BadExperimenter),
        ),
        (
            "desc request with body",
            "04 12 00 14 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00",
            ErrorCode::BadRequest(B::BadLen),
        ),
        (
            "truncated port stats request",
            "04 12 00 14 00 00 00 01 00 04 00 00 00 00 00 00 00 00 00 01",
            ErrorCode::BadRequest(B::BadLen),
        ),
        (
            "packet-out actions_len overruns",
            "04 0d 00 18 00 00 00 01 ff ff ff ff ff ff ff fd 00 10 00 00 00 00 00 00",
            ErrorCode::BadRequest(B::BadLen),
        ),
        (
            "packet-out in_port 0",
            "04 0d 00 18 00 00 00 01 ff ff ff ff 00 00 00 00 00 00 00 00 00 00 00 00",
            ErrorCode::BadRequest(B::BadPort),
        ),
        (
            "set config bad flags",
            "04 09 00 0c 00 00 00 01 00 04 00 80",
            ErrorCode::SwitchConfigFailed(SwitchConfigFailedCode::BadFlags),
        ),
        (
            "role request bad role",
            "04 18 00 18 00 00 00 01 00 00 00 07 00 00 00 00 00 00 00 00 00 00 00 01",
            ErrorCode::RoleRequestFailed(RoleRequestFailedCode::BadRole),
        ),
        (
            "hello with truncated element",
            "04 00 00 0c 00 00 00 01 00 01 00 08",
            ErrorCode::BadRequest(B::BadLen),
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(decode_err(&hex(bytes)), *want, "{name}");
    }
}

/// OXM TLVs used below.
const IN_PORT_1: &str = "80 00 00 04 00 00 00 01";
const ETH_IPV4: &str = "80 00 0a 02 08 00";
const ETH_IPV6: &str = "80 00 0a 02 86 dd";
const ETH_ARP: &str = "80 00 0a 02 08 06";
const PROTO_TCP: &str = "80 00 14 01 06";
const PROTO_ICMPV6: &str = "80 00 14 01 3a";

fn fm(oxms: &[&str], instructions: &str) -> Vec<u8> {
    flow_mod_with(&hex(&oxms.join(" ")), &hex(instructions))
}

#[test]
fn match_errors() {
    use BadMatchCode as M;
    let e = |c| ErrorCode::BadMatch(c);
    let cases: &[(&str, &[&str], ErrorCode)] = &[
        ("duplicate in_port", &[IN_PORT_1, IN_PORT_1], e(M::DupField)),
        (
            "masked in_port",
            &["80 00 01 08 00 00 00 01 ff ff ff ff"],
            e(M::BadMask),
        ),
        (
            "masked eth_type",
            &["80 00 0b 04 08 00 ff ff"],
            e(M::BadMask),
        ),
        (
            "ipv4 value outside mask",
            &[ETH_IPV4, "80 00 19 08 0a 00 00 01 ff 00 00 00"],
            e(M::BadWildcards),
        ),
        (
            "ipv4_src without eth_type",
            &["80 00 16 04 0a 00 00 01"],
            e(M::BadPrereq),
        ),
        (
            "ipv4_src with eth_type arp",
            &[ETH_ARP, "80 00 16 04 0a 00 00 01"],
            e(M::BadPrereq),
        ),
        (
            "tcp_src without ip_proto",
            &[ETH_IPV4, "80 00 1a 02 00 50"],
            e(M::BadPrereq),
        ),
        (
            "tcp_src with ip_proto udp",
            &[ETH_IPV4, "80 00 14 01 11", "80 00 1a 02 00 50"],
            e(M::BadPrereq),
        ),
        ("ip_proto without eth_type", &[PROTO_TCP], e(M::BadPrereq)),
        (
            "vlan_pcp without vlan_vid",
            &["80 00 0e 01 03"],
            e(M::BadPrereq),
        ),
        (
            "vlan_pcp with vlan none",
            &["80 00 0c 02 00 00", "80 00 0e 01 03"],
            e(M::BadPrereq),
        ),
        (
            "arp_op on ipv4",
            &[ETH_IPV4, "80 00 2a 02 00 01"],
            e(M::BadPrereq),
        ),
        (
            "icmpv6 on ipv4",
            &[ETH_IPV4, PROTO_ICMPV6, "80 00 3a 01 87"],
            e(M::BadPrereq),
        ),
        (
            "vlan_pcp out of range",
            &["80 00 0c 02 10 01", "80 00 0e 01 08"],
            e(M::BadValue),
        ),
        (
            "ip_dscp out of range",
            &[ETH_IPV4, "80 00 10 01 40"],
            e(M::BadValue),
        ),
        (
            "vlan_vid out of range",
            &["80 00 0c 02 20 00"],
            e(M::BadValue),
        ),
        ("nxm class", &["00 01 00 04 00 00 00 01"], e(M::BadType)),
        (
            "unknown basic field 40",
            &["80 00 50 04 00 00 00 01"],
            e(M::BadField),
        ),
        (
            "unsupported sctp_src",
            &[ETH_IPV4, "80 00 14 01 84", "80 00 22 02 00 50"],
            e(M::BadField),
        ),
        (
            "in_port with length 2",
            &["80 00 00 02 00 01"],
            e(M::BadLen),
        ),
        (
            "oxm overruns match",
            &["80 00 00 08 00 00 00 01"],
            e(M::BadLen),
        ),
    ];
    for (name, oxms, want) in cases {
        assert_eq!(decode_err(&fm(oxms, "")), *want, "{name}");
    }

    // OFPMT_STANDARD (type 0) is rejected with OFPBMC_BAD_TYPE.
    let mut standard = fm(&[], "");
    standard[8 + 40 + 1] = 0;
    assert_eq!(decode_err(&standard), e(M::BadType));

    // Valid matches with prerequisites.
    let ok: &[&[&str]] = &[
        &[ETH_IPV6, PROTO_ICMPV6, "80 00 3a 01 87", "80 00 3c 01 00"],
        &[
            ETH_IPV6,
            "80 00 35 20 fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00",
        ],
        &[
            ETH_ARP,
            "80 00 2a 02 00 01",
            "80 00 2d 08 0a 00 00 00 ff ff ff 00",
            "80 00 2e 04 0a 00 00 02",
        ],
        &["80 00 0d 04 10 00 10 00", "80 00 0e 01 07"],
        &[
            ETH_IPV4,
            "80 00 14 01 01",
            "80 00 26 01 08",
            "80 00 28 01 00",
        ],
        &[
            ETH_IPV4,
            "80 00 14 01 11",
            "80 00 1e 02 00 35",
            "80 00 20 02 00 35",
            "80 00 10 01 2e",
        ],
        &[
            "80 00 05 10 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 ff",
            "80 00 09 0c 01 00 00 00 00 00 ff 00 00 00 00 00",
        ],
    ];
    for oxms in ok {
        decode(&fm(oxms, "")).unwrap_or_else(|e| panic!("{oxms:?}: {e}"));
    }
}

#[test]
fn vlan_semantics() {
    assert_eq!(
        OxmField::vlan_vid(10),
        OxmField::VlanVid(Masked::exact(OFPVID_PRESENT | 10))
    );
    let pcp = OxmField::VlanPcp(3.into());
    assert!(
        Match::new(vec![OxmField::vlan_any(), pcp])
            .validate()
            .is_ok()
    );
    assert!(
        Match::new(vec![OxmField::vlan_vid(5), pcp])
            .validate()
            .is_ok()
    );
    assert_eq!(
        Match::new(vec![OxmField::vlan_none(), pcp]).validate(),
        Err(DecodeError::BadPrereq {
            field: OxmFieldId::VlanPcp
        })
    );
}

#[test]
fn instruction_and_action_errors() {
    use BadActionCode as A;
    use BadInstructionCode as I;
    let cases: &[(&str, &str, ErrorCode)] = &[
        (
            "unknown instruction 7",
            "00 07 00 08 00 00 00 00",
            ErrorCode::BadInstruction(I::UnknownInst),
        ),
        (
            "instruction len not multiple of 8",
            "00 01 00 0c 01 00 00 00 00 00 00 00",
            ErrorCode::BadInstruction(I::BadLen),
        ),
        (
            "instruction len 4",
            "00 01 00 04 01 00 00 00",
            ErrorCode::BadInstruction(I::BadLen),
        ),
        (
            "instruction overruns",
            "00 04 00 18 00 00 00 00",
            ErrorCode::BadInstruction(I::BadLen),
        ),
        (
            "goto backwards",
            "00 01 00 08 00 00 00 00",
            ErrorCode::BadInstruction(I::BadTableId),
        ),
        (
            "action len 12",
            "00 04 00 18 00 00 00 00 00 00 00 0c 00 00 00 01 ff ff 00 00 00 00 00 00",
            ErrorCode::BadAction(A::BadLen),
        ),
        (
            "output len 8",
            "00 04 00 10 00 00 00 00 00 00 00 08 00 00 00 01",
            ErrorCode::BadAction(A::BadLen),
        ),
        (
            "output to port 0",
            "00 04 00 18 00 00 00 00 00 00 00 10 00 00 00 00 ff ff 00 00 00 00 00 00",
            ErrorCode::BadAction(A::BadOutPort),
        ),
        (
            "output to OFPP_ANY",
            "00 04 00 18 00 00 00 00 00 00 00 10 ff ff ff ff ff ff 00 00 00 00 00 00",
            ErrorCode::BadAction(A::BadOutPort),
        ),
        (
            "push_vlan ipv4",
            "00 04 00 10 00 00 00 00 00 11 00 08 08 00 00 00",
            ErrorCode::BadAction(A::BadArgument),
        ),
        (
            "set_field masked",
            "00 04 00 20 00 00 00 00 00 19 00 18 80 00 07 0c 00 11 22 33 44 55 ff ff ff ff ff ff 00 00 00 00",
            ErrorCode::BadAction(A::BadSetArgument),
        ),
        (
            "set_field unknown field",
            "00 04 00 18 00 00 00 00 00 19 00 10 80 00 50 04 00 00 00 01 00 00 00 00",
            ErrorCode::BadAction(A::BadSetType),
        ),
        (
            "set_field action too long",
            "00 04 00 20 00 00 00 00 00 19 00 18 80 00 06 06 00 11 22 33 44 55 00 00 00 00 00 00 00 00 00 00",
            ErrorCode::BadAction(A::BadSetLen),
        ),
        (
            "set_field oxm overruns action",
            "00 04 00 18 00 00 00 00 00 19 00 10 80 00 06 10 00 11 22 33 44 55 00 00",
            ErrorCode::BadAction(A::BadSetLen),
        ),
        (
            "set_field vlan_vid out of range",
            "00 04 00 18 00 00 00 00 00 19 00 10 80 00 0c 02 20 00 00 00 00 00 00 00",
            ErrorCode::BadAction(A::BadSetArgument),
        ),
    ];
    for (name, instructions, want) in cases {
        assert_eq!(decode_err(&fm(&[], instructions)), *want, "{name}");
    }
}

#[test]
fn flow_mod_errors() {
    use FlowModFailedCode as F;
    let mut bad_command = fm(&[], "");
    bad_command[8 + 17] = 5;
    assert_eq!(
        decode_err(&bad_command),
        ErrorCode::FlowModFailed(F::BadCommand)
    );
    let mut bad_flags = fm(&[], "");
    bad_flags[8 + 37] = 0x20;
    assert_eq!(
        decode_err(&bad_flags),
        ErrorCode::FlowModFailed(F::BadFlags)
    );
    let mut all_flags = fm(&[], "");
    all_flags[8 + 37] = 0x1f;
    decode(&all_flags).expect("all five OFPFF flags are valid");
    let mut add_all_tables = fm(&[], "");
    add_all_tables[8 + 16] = 0xff;
    assert_eq!(
        decode_err(&add_all_tables),
        ErrorCode::FlowModFailed(F::BadTableId)
    );
}

#[test]
fn unsupported_instructions_and_actions_decode_but_are_flagged() {
    use BadActionCode as A;
    use BadInstructionCode as I;
    let check = |instructions: &str| -> Result<(), ErrorCode> {
        let Message::FlowMod(f) = decode(&fm(&[], instructions)).expect("decodes") else {
            panic!("not a flow mod")
        };
        f.check_datapath_supported().map_err(|e| e.code())
    };
    let unsup = Err(ErrorCode::BadInstruction(I::UnsupInst));
    assert_eq!(check("00 05 00 08 00 00 00 00"), unsup, "clear-actions");
    assert_eq!(
        check("00 03 00 08 00 00 00 00"),
        unsup,
        "write-actions (empty)"
    );
    assert_eq!(check("00 06 00 08 00 00 00 01"), unsup, "meter");
    assert_eq!(check("ff ff 00 08 00 00 23 20"), unsup, "experimenter");
    assert_eq!(
        check("00 02 00 18 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 ff"),
        Ok(()),
        "write-metadata"
    );
    // GROUP action (type 22): kept raw, answered with OFPBAC_BAD_TYPE.
    assert_eq!(
        check("00 04 00 10 00 00 00 00 00 16 00 08 00 00 00 01"),
        Err(ErrorCode::BadAction(A::BadType))
    );
    // Set-field of tcp_src decodes but the datapath cannot do it.
    assert_eq!(
        check("00 04 00 18 00 00 00 00 00 19 00 10 80 00 1a 02 00 50 00 00 00 00 00 00"),
        Err(ErrorCode::BadAction(A::BadSetType))
    );
    let group = Action::Unsupported {
        action_type: 22,
        body: Bytes::from_static(&[0, 0, 0, 1]),
    };
    assert_eq!(
        group.check_supported(DATAPATH_SETTABLE),
        Err(DecodeError::BadActionType { action_type: 22 })
    );
    let write = Instruction::WriteActions(vec![]);
    assert!(write.check_supported(DATAPATH_SETTABLE).is_err());
}

#[test]
fn hello_negotiation() {
    let ours = Hello::default();
    let with = |versions: &[u8]| Hello::with_versions(versions);
    assert_eq!(negotiate_version(&ours, &with(&[1, 4, 5])), Ok(4));
    assert_eq!(negotiate_version(&ours, &with(&[4])), Ok(4));
    assert_eq!(negotiate_version(&with(&[1, 4]), &with(&[1, 5])), Ok(1));
    // Peer without bitmap: min(header versions) must be supported by us.
    assert_eq!(
        negotiate_version(
            &ours,
            &Hello {
                version: 6,
                elements: vec![]
            }
        ),
        Ok(4)
    );
    let of10 = Hello {
        version: 1,
        elements: vec![],
    };
    let err = negotiate_version(&ours, &of10).expect_err("1.0-only peer");
    assert_eq!(
        err.code(),
        ErrorCode::HelloFailed(HelloFailedCode::Incompatible)
    );
    assert_eq!(err.scope(), ErrorScope::Connection);
    assert!(negotiate_version(&ours, &with(&[1, 2, 3])).is_err());
    // Bitmaps beyond the first word.
    assert_eq!(negotiate_version(&with(&[4, 40]), &with(&[4, 40])), Ok(40));
    // HELLO_FAILED data is an ASCII explanation.
    let (_, msg) = error_reply(&err, &hex("01 00 00 08 00 00 00 09"));
    assert!(msg.data.is_ascii() && !msg.data.is_empty());
}

#[test]
fn error_reply_carries_xid_and_64_bytes() {
    let mut bytes = fm(&[IN_PORT_1, IN_PORT_1], "");
    bytes.extend_from_slice(&[0; 64]);
    let len = u16::try_from(bytes.len()).expect("small");
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    let err = Message::decode(&Bytes::from(bytes.clone())).expect_err("dup field");
    let (xid, reply) = error_reply(&err, &bytes);
    assert_eq!(xid, 0x42);
    assert_eq!(
        reply.error_code(),
        Some(ErrorCode::BadMatch(BadMatchCode::DupField))
    );
    assert_eq!((reply.err_type, reply.code), (4, 10));
    assert_eq!(&reply.data[..], &bytes[..64]);
    // Short requests are echoed whole.
    let short = hex("04 1e 00 08 00 00 00 07");
    let err = Message::decode(&Bytes::from(short.clone())).expect_err("bad type");
    let (xid, reply) = error_reply(&err, &short);
    assert_eq!((xid, &reply.data[..]), (7, &short[..]));
    let wire = Message::Error(reply).to_bytes(xid).expect("encodes");
    assert_eq!(
        wire,
        Bytes::from(hex(
            "04 01 00 14 00 00 00 07 00 01 00 01 04 1e 00 08 00 00 00 07"
        ))
    );
}

#[test]
fn every_error_maps_to_the_spec_numbers() {
    use lime_openflow::Structure;
    let cases = [
        (DecodeError::HeaderTooShort { length: 0 }, (1, 6)),
        (DecodeError::BadVersion { version: 1 }, (1, 0)),
        (DecodeError::BadType { msg_type: 15 }, (1, 1)),
        (DecodeError::BadMultipart { multipart_type: 6 }, (1, 2)),
        (DecodeError::BadExperimenter { experimenter: 0 }, (1, 3)),
        (DecodeError::BadPort { port: 0 }, (1, 11)),
        (
            DecodeError::BadLen {
                structure: Structure::Action,
                length: 0,
                reason: "",
            },
            (2, 1),
        ),
        (
            DecodeError::BadLen {
                structure: Structure::SetField,
                length: 0,
                reason: "",
            },
            (2, 14),
        ),
        (
            DecodeError::BadLen {
                structure: Structure::Instruction,
                length: 0,
                reason: "",
            },
            (3, 7),
        ),
        (
            DecodeError::BadLen {
                structure: Structure::Match,
                length: 0,
                reason: "",
            },
            (4, 1),
        ),
        (
            DecodeError::BadLen {
                structure: Structure::TableFeatures,
                length: 0,
                reason: "",
            },
            (13, 3),
        ),
        (DecodeError::BadActionType { action_type: 22 }, (2, 0)),
        (DecodeError::BadOutPort { port: 0 }, (2, 4)),
        (DecodeError::BadActionArgument { action_type: 17 }, (2, 5)),
        (
            DecodeError::BadSetType {
                class: 0x8000,
                field: 40,
            },
            (2, 13),
        ),
        (
            DecodeError::BadSetArgument {
                field: OxmFieldId::VlanVid,
            },
            (2, 15),
        ),
        (
            DecodeError::UnknownInstruction {
                instruction_type: 7,
            },
            (3, 0),
        ),
        (
            DecodeError::UnsupportedInstruction {
                instruction_type: 3,
            },
            (3, 1),
        ),
        (DecodeError::BadGotoTable { table_id: 0 }, (3, 2)),
        (DecodeError::BadMatchType { match_type: 0 }, (4, 0)),
        (
            DecodeError::BadWildcards {
                field: OxmFieldId::Ipv4Src,
            },
            (4, 5),
        ),
        (
            DecodeError::BadField {
                class: 0x8000,
                field: 17,
            },
            (4, 6),
        ),
        (
            DecodeError::BadValue {
                field: OxmFieldId::VlanPcp,
            },
            (4, 7),
        ),
        (
            DecodeError::BadMask {
                field: OxmFieldId::InPort,
            },
            (4, 8),
        ),
        (
            DecodeError::BadPrereq {
                field: OxmFieldId::TcpSrc,
            },
            (4, 9),
        ),
        (
            DecodeError::DupField {
                field: OxmFieldId::InPort,
            },
            (4, 10),
        ),
        (DecodeError::BadFlowModTableId { table_id: 255 }, (5, 2)),
        (DecodeError::BadCommand { command: 5 }, (5, 6)),
        (DecodeError::BadFlowModFlags { flags: 32 }, (5, 7)),
        (
            DecodeError::IncompatibleVersion {
                ours: 16,
                theirs: 2,
            },
            (0, 0),
        ),
        (DecodeError::BadConfigFlags { flags: 4 }, (10, 0)),
        (DecodeError::BadRole { role: 9 }, (11, 2)),
        (DecodeError::BadTableFeatureProp { prop_type: 9 }, (13, 2)),
    ];
    for (e, want) in cases {
        assert_eq!(e.code().to_raw(), want, "{e:?}");
    }
}

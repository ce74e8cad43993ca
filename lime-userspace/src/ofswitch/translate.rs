//! Translation between the codec's OpenFlow structures (`lime_openflow`) and the rule
//! model ([`crate::flow`]), both directions, and the one table from everything the
//! switch can refuse to the `(ofp_error_type, code)` it answers with ([`OfError::code`]).
//!
//! The codec already refuses what no OpenFlow 1.3 switch could take (bad lengths,
//! unknown OXM fields → `OFPBMC_BAD_FIELD`, prerequisites → `OFPBMC_BAD_PREREQ`, ...).
//! This module refuses what LIME's datapath cannot do: write/clear-actions and meters
//! (`OFPBIC_UNSUP_INST`), set-field of fields other than ETH_SRC/ETH_DST/VLAN_VID
//! (`OFPBAC_BAD_SET_TYPE`), group actions (`OFPBAC_BAD_OUT_GROUP`: there are no
//! groups), set-queue (`OFPBAC_BAD_QUEUE`: no queues), any other action
//! (`OFPBAC_BAD_TYPE`), and instruction lists naming one instruction twice.
use lime_openflow::{
    self as of, DecodeError, ErrorCode, Instruction, OxmField,
    consts::{
        ActionType, BadActionCode, BadInstructionCode, BadMatchCode, BadRequestCode,
        FlowModCommand, FlowModFailedCode, RoleRequestFailedCode, TableFeaturesFailedCode, port,
    },
};

use crate::{
    datapath::DatapathError,
    fabric::FabricError,
    flow::{self, Action, FlowError, Instructions, Masked, Rule},
    vswitch::{Command, FlowMod, FlowModError},
};

/// Everything the OpenFlow switch answers with an `OFPT_ERROR` on the offending xid.
#[derive(Debug, thiserror::Error)]
pub enum OfError {
    /// The codec refused the message (its own `(type, code)` table applies).
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The rule is not one the datapath can take.
    #[error("{0}")]
    Flow(#[from] FlowError),
    /// The flow-mod failed on the flow tables.
    #[error("{0}")]
    FlowMod(#[from] FlowModError),
    /// An instruction type appears twice in one flow-mod.
    #[error("instruction type {instruction_type} appears twice")]
    DuplicateInstruction {
        /// Instruction type.
        instruction_type: u16,
    },
    /// A group action: this switch has no groups (OFPBAC_BAD_OUT_GROUP).
    #[error("group {group_id} does not exist (this switch has no groups)")]
    NoSuchGroup {
        /// Group id.
        group_id: u32,
    },
    /// A set-queue action: this switch has no queues (OFPBAC_BAD_QUEUE).
    #[error("this switch has no queues")]
    NoQueues,
    /// A packet-out or flow-mod named a buffer: this switch buffers nothing
    /// (OFPBRC_BUFFER_UNKNOWN).
    #[error("buffer {buffer_id} does not exist (this switch does not buffer packets)")]
    BufferUnknown {
        /// Buffer id.
        buffer_id: u32,
    },
    /// A packet-out's in_port is not a port of this switch (OFPBRC_BAD_PORT).
    #[error("port {port} is not a port of this switch")]
    BadPort {
        /// Port.
        port: u32,
    },
    /// A packet-out action the switch cannot run on a single frame (OFPBAC_BAD_OUT_PORT).
    #[error("packet-out cannot send to port {port:#x}")]
    BadPacketOutPort {
        /// Port.
        port: u32,
    },
    /// A packet-out with no data (OFPBRC_BAD_PACKET).
    #[error("packet-out without a frame")]
    NoPacket,
    /// A state-changing message from a slave controller (OFPBRC_IS_SLAVE).
    #[error("the connection is a slave")]
    IsSlave,
    /// A role request with an old generation id (OFPRRFC_STALE).
    #[error("stale generation id {generation_id}")]
    StaleRole {
        /// The request's generation id.
        generation_id: u64,
    },
    /// A role request with an unknown role (OFPRRFC_BAD_ROLE).
    #[error("unknown role {role}")]
    BadRole {
        /// Raw role.
        role: u32,
    },
    /// Table-features set requests: tables are fixed (OFPTFFC_EPERM).
    #[error("the flow tables cannot be reconfigured")]
    TablesFixed,
    /// A multipart request whose reply this switch does not produce (OFPBRC_BAD_MULTIPART).
    #[error("multipart type {multipart_type} is not supported")]
    BadMultipart {
        /// Multipart type.
        multipart_type: u16,
    },
    /// A message type a controller may not send to a switch (OFPBRC_BAD_TYPE).
    #[error("message type {msg_type} is not accepted by a switch")]
    BadType {
        /// Message type.
        msg_type: u8,
    },
    /// The datapath failed while carrying out the request (OFPFMFC_UNKNOWN for
    /// flow-mods, OFPBRC_EPERM otherwise).
    #[error("datapath: {0}")]
    Datapath(String),
}

/// The OpenFlow error for a rule the datapath refuses (spec A.4.4 codes).
#[must_use]
pub const fn flow_error_code(e: &FlowError) -> ErrorCode {
    match e {
        FlowError::BadPrerequisite { .. } => ErrorCode::BadMatch(BadMatchCode::BadPrereq),
        FlowError::BadWildcards { .. } => ErrorCode::BadMatch(BadMatchCode::BadWildcards),
        FlowError::BadValue { .. } => ErrorCode::BadMatch(BadMatchCode::BadValue),
        FlowError::BadTable { .. } => ErrorCode::FlowModFailed(FlowModFailedCode::BadTableId),
        FlowError::BadGotoTable { .. } => ErrorCode::BadInstruction(BadInstructionCode::BadTableId),
        FlowError::BadOutPort { .. } => ErrorCode::BadAction(BadActionCode::BadOutPort),
        FlowError::MatchInconsistent { .. } => {
            ErrorCode::BadAction(BadActionCode::MatchInconsistent)
        }
        FlowError::BadArgument { .. } => ErrorCode::BadAction(BadActionCode::BadArgument),
        FlowError::Unsupported { .. } => ErrorCode::BadAction(BadActionCode::UnsupportedOrder),
        FlowError::TooManyActions { .. } => ErrorCode::BadAction(BadActionCode::TooMany),
    }
}

fn fabric_error_code(e: &FabricError) -> ErrorCode {
    match e {
        FabricError::Datapath { source, .. } => match source.as_ref() {
            DatapathError::TableFull { .. } => {
                ErrorCode::FlowModFailed(FlowModFailedCode::TableFull)
            }
            DatapathError::Rule(f) => flow_error_code(f),
            _ => ErrorCode::FlowModFailed(FlowModFailedCode::Unknown),
        },
        _ => ErrorCode::FlowModFailed(FlowModFailedCode::Unknown),
    }
}

impl OfError {
    /// The `(type, code)` this error is answered with.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Decode(d) => d.code(),
            Self::Flow(f) => flow_error_code(f),
            Self::FlowMod(FlowModError::Rule(f)) => flow_error_code(f),
            Self::FlowMod(FlowModError::Overlap { .. }) => {
                ErrorCode::FlowModFailed(FlowModFailedCode::Overlap)
            }
            Self::FlowMod(FlowModError::BadTable { .. }) => {
                ErrorCode::FlowModFailed(FlowModFailedCode::BadTableId)
            }
            Self::FlowMod(FlowModError::Fabric(f)) => fabric_error_code(f),
            Self::DuplicateInstruction { .. } => {
                ErrorCode::BadInstruction(BadInstructionCode::UnsupInst)
            }
            Self::NoSuchGroup { .. } => ErrorCode::BadAction(BadActionCode::BadOutGroup),
            Self::NoQueues => ErrorCode::BadAction(BadActionCode::BadQueue),
            Self::BufferUnknown { .. } => ErrorCode::BadRequest(BadRequestCode::BufferUnknown),
            Self::BadPort { .. } => ErrorCode::BadRequest(BadRequestCode::BadPort),
            Self::BadPacketOutPort { .. } => ErrorCode::BadAction(BadActionCode::BadOutPort),
            Self::NoPacket => ErrorCode::BadRequest(BadRequestCode::BadPacket),
            Self::IsSlave => ErrorCode::BadRequest(BadRequestCode::IsSlave),
            Self::StaleRole { .. } => ErrorCode::RoleRequestFailed(RoleRequestFailedCode::Stale),
            Self::BadRole { .. } => ErrorCode::RoleRequestFailed(RoleRequestFailedCode::BadRole),
            Self::TablesFixed => ErrorCode::TableFeaturesFailed(TableFeaturesFailedCode::Eperm),
            Self::BadMultipart { .. } => ErrorCode::BadRequest(BadRequestCode::BadMultipart),
            Self::BadType { .. } => ErrorCode::BadRequest(BadRequestCode::BadType),
            Self::Datapath(_) => ErrorCode::FlowModFailed(FlowModFailedCode::Unknown),
        }
    }
}

fn masked<T: Copy + flow::matching::AllOnes>(m: of::Masked<T>) -> Masked<T> {
    Masked {
        value: m.value,
        mask: m.mask.unwrap_or_else(T::all_ones),
    }
}

fn unmasked<T: Copy + PartialEq + flow::matching::AllOnes>(m: Masked<T>) -> of::Masked<T> {
    if m.mask == T::all_ones() {
        of::Masked::exact(m.value)
    } else {
        of::Masked::with_mask(m.value, m.mask)
    }
}

/// VLAN_VID's exact mask: the 12-bit id and OFPVID_PRESENT.
const VID_EXACT: u16 = 0x1fff;

/// A decoded (hence already valid) OXM match as a rule match. Every OXM field the codec
/// decodes has a rule-model field, so this cannot fail.
#[must_use]
pub fn match_from_of(m: &of::Match) -> flow::Match {
    let mut out = flow::Match::default();
    for f in &m.fields {
        match *f {
            OxmField::InPort(v) => out.in_port = Some(v.value),
            OxmField::Metadata(v) => out.metadata = Some(masked(v)),
            OxmField::EthDst(v) => out.eth_dst = Some(masked(v)),
            OxmField::EthSrc(v) => out.eth_src = Some(masked(v)),
            OxmField::EthType(v) => out.eth_type = Some(v.value),
            OxmField::VlanVid(v) => {
                out.vlan_vid = Some(Masked {
                    value: v.value,
                    mask: v.mask.unwrap_or(VID_EXACT),
                });
            }
            OxmField::VlanPcp(v) => out.vlan_pcp = Some(v.value),
            OxmField::IpDscp(v) => out.ip_dscp = Some(v.value),
            OxmField::IpProto(v) => out.ip_proto = Some(v.value),
            OxmField::Ipv4Src(v) => out.ipv4_src = Some(masked(v)),
            OxmField::Ipv4Dst(v) => out.ipv4_dst = Some(masked(v)),
            OxmField::TcpSrc(v) => out.tcp_src = Some(v.value),
            OxmField::TcpDst(v) => out.tcp_dst = Some(v.value),
            OxmField::UdpSrc(v) => out.udp_src = Some(v.value),
            OxmField::UdpDst(v) => out.udp_dst = Some(v.value),
            OxmField::Icmpv4Type(v) => out.icmpv4_type = Some(v.value),
            OxmField::Icmpv4Code(v) => out.icmpv4_code = Some(v.value),
            OxmField::ArpOp(v) => out.arp_op = Some(v.value),
            OxmField::ArpSpa(v) => out.arp_spa = Some(masked(v)),
            OxmField::ArpTpa(v) => out.arp_tpa = Some(masked(v)),
            OxmField::Ipv6Src(v) => out.ipv6_src = Some(masked(v)),
            OxmField::Ipv6Dst(v) => out.ipv6_dst = Some(masked(v)),
            OxmField::Icmpv6Type(v) => out.icmpv6_type = Some(v.value),
            OxmField::Icmpv6Code(v) => out.icmpv6_code = Some(v.value),
        }
    }
    out
}

fn opt<T>(f: &mut Vec<OxmField>, v: Option<T>, mk: impl Fn(T) -> OxmField) {
    if let Some(v) = v {
        f.push(mk(v));
    }
}

/// A rule match as an OXM match, prerequisites first (the order of spec 7.2.3.7).
#[must_use]
pub fn match_to_of(m: &flow::Match) -> of::Match {
    use OxmField as F;
    use of::Masked as M;
    let mut f = Vec::new();
    opt(&mut f, m.in_port, |v| F::InPort(M::exact(v)));
    opt(&mut f, m.metadata, |v| F::Metadata(unmasked(v)));
    opt(&mut f, m.eth_dst, |v| F::EthDst(unmasked(v)));
    opt(&mut f, m.eth_src, |v| F::EthSrc(unmasked(v)));
    opt(&mut f, m.eth_type, |v| F::EthType(M::exact(v)));
    opt(&mut f, m.vlan_vid, |v| {
        F::VlanVid(if v.mask == VID_EXACT {
            M::exact(v.value)
        } else {
            M::with_mask(v.value, v.mask)
        })
    });
    opt(&mut f, m.vlan_pcp, |v| F::VlanPcp(M::exact(v)));
    opt(&mut f, m.ip_dscp, |v| F::IpDscp(M::exact(v)));
    opt(&mut f, m.ip_proto, |v| F::IpProto(M::exact(v)));
    opt(&mut f, m.ipv4_src, |v| F::Ipv4Src(unmasked(v)));
    opt(&mut f, m.ipv4_dst, |v| F::Ipv4Dst(unmasked(v)));
    opt(&mut f, m.tcp_src, |v| F::TcpSrc(M::exact(v)));
    opt(&mut f, m.tcp_dst, |v| F::TcpDst(M::exact(v)));
    opt(&mut f, m.udp_src, |v| F::UdpSrc(M::exact(v)));
    opt(&mut f, m.udp_dst, |v| F::UdpDst(M::exact(v)));
    opt(&mut f, m.icmpv4_type, |v| F::Icmpv4Type(M::exact(v)));
    opt(&mut f, m.icmpv4_code, |v| F::Icmpv4Code(M::exact(v)));
    opt(&mut f, m.arp_op, |v| F::ArpOp(M::exact(v)));
    opt(&mut f, m.arp_spa, |v| F::ArpSpa(unmasked(v)));
    opt(&mut f, m.arp_tpa, |v| F::ArpTpa(unmasked(v)));
    opt(&mut f, m.ipv6_src, |v| F::Ipv6Src(unmasked(v)));
    opt(&mut f, m.ipv6_dst, |v| F::Ipv6Dst(unmasked(v)));
    opt(&mut f, m.icmpv6_type, |v| F::Icmpv6Type(M::exact(v)));
    opt(&mut f, m.icmpv6_code, |v| F::Icmpv6Code(M::exact(v)));
    of::Match::new(f)
}

/// One action of an apply-actions list (or a packet-out) as a rule-model action.
///
/// # Errors
/// [`OfError::NoSuchGroup`], [`OfError::NoQueues`], the codec's `OFPBAC_BAD_TYPE` and
/// `OFPBAC_BAD_SET_TYPE`.
pub fn action_from_of(a: &of::Action) -> Result<Action, OfError> {
    if let of::Action::Unsupported { action_type, body } = a {
        if *action_type == ActionType::Group.to_raw() {
            let group_id = body
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_be_bytes);
            return Err(OfError::NoSuchGroup { group_id });
        }
        if *action_type == ActionType::SetQueue.to_raw() {
            return Err(OfError::NoQueues);
        }
    }
    a.check_supported(of::DATAPATH_SETTABLE)?;
    Ok(match *a {
        of::Action::Output { port, max_len } => Action::Output { port, max_len },
        of::Action::SetField(OxmField::EthDst(m)) => Action::SetEthDst(m.value),
        of::Action::SetField(OxmField::EthSrc(m)) => Action::SetEthSrc(m.value),
        of::Action::SetField(OxmField::VlanVid(m)) => Action::SetVlanVid(m.value & 0x0fff),
        of::Action::PushVlan { ethertype } => Action::PushVlan(ethertype),
        of::Action::PopVlan => Action::PopVlan,
        // check_supported refused everything else.
        _ => {
            return Err(OfError::Decode(DecodeError::BadActionType {
                action_type: a.action_type(),
            }));
        }
    })
}

/// A rule-model action as an OpenFlow action.
#[must_use]
pub fn action_to_of(a: &Action) -> of::Action {
    match *a {
        Action::Output { port, max_len } => of::Action::Output { port, max_len },
        Action::SetEthDst(mac) => of::Action::SetField(OxmField::EthDst(of::Masked::exact(mac))),
        Action::SetEthSrc(mac) => of::Action::SetField(OxmField::EthSrc(of::Masked::exact(mac))),
        Action::SetVlanVid(vid) => of::Action::SetField(OxmField::VlanVid(of::Masked::exact(
            vid | lime_openflow::consts::OFPVID_PRESENT,
        ))),
        Action::PushVlan(ethertype) => of::Action::PushVlan { ethertype },
        Action::PopVlan => of::Action::PopVlan,
    }
}

/// A flow-mod's instruction list as rule-model instructions.
///
/// # Errors
/// `OFPBIC_UNSUP_INST` for write/clear-actions, meter and experimenter instructions and
/// for an instruction type given twice; action errors of [`action_from_of`].
pub fn instructions_from_of(list: &[Instruction]) -> Result<Instructions, OfError> {
    let mut out = Instructions::default();
    let mut seen: Vec<u16> = Vec::new();
    for i in list {
        let t = i.instruction_type().to_raw();
        if seen.contains(&t) {
            return Err(OfError::DuplicateInstruction {
                instruction_type: t,
            });
        }
        seen.push(t);
        match i {
            Instruction::GotoTable { table_id } => out.goto_table = Some(*table_id),
            Instruction::WriteMetadata { metadata, mask } => {
                out.write_metadata = Some((*metadata, *mask));
            }
            Instruction::ApplyActions(actions) => {
                out.apply = actions
                    .iter()
                    .map(action_from_of)
                    .collect::<Result<_, _>>()?;
            }
            other => other.check_supported(of::DATAPATH_SETTABLE)?,
        }
    }
    Ok(out)
}

/// Rule-model instructions as an OpenFlow instruction list (apply-actions,
/// write-metadata, goto-table; empty for a drop rule).
#[must_use]
pub fn instructions_to_of(ins: &Instructions) -> Vec<Instruction> {
    let mut out = Vec::new();
    if !ins.apply.is_empty() {
        out.push(Instruction::ApplyActions(
            ins.apply.iter().map(action_to_of).collect(),
        ));
    }
    if let Some((metadata, mask)) = ins.write_metadata {
        out.push(Instruction::WriteMetadata { metadata, mask });
    }
    if let Some(table_id) = ins.goto_table {
        out.push(Instruction::GotoTable { table_id });
    }
    out
}

/// A decoded OFPT_FLOW_MOD as a flow-table request. The buffer id and out_group are
/// not part of it: the caller handles them (this switch has neither buffers nor groups).
///
/// # Errors
/// As [`instructions_from_of`]; delete requests ignore their instructions (spec 6.4).
pub fn flow_mod_from_of(fm: &of::FlowMod) -> Result<FlowMod, OfError> {
    let command = match fm.command {
        FlowModCommand::Add => Command::Add,
        FlowModCommand::Modify => Command::Modify,
        FlowModCommand::ModifyStrict => Command::ModifyStrict,
        FlowModCommand::Delete => Command::Delete,
        FlowModCommand::DeleteStrict => Command::DeleteStrict,
    };
    let instructions = if fm.is_add_or_modify() {
        instructions_from_of(&fm.instructions)?
    } else {
        Instructions::default()
    };
    let mut rule = Rule::new(
        fm.table_id,
        fm.priority,
        match_from_of(&fm.r#match),
        instructions,
    );
    rule.cookie = fm.cookie;
    rule.idle_timeout = fm.idle_timeout;
    rule.hard_timeout = fm.hard_timeout;
    rule.flags = fm.flags;
    Ok(FlowMod {
        command,
        rule,
        cookie_mask: fm.cookie_mask,
        out_port: if fm.out_port == port::ANY {
            lime_common::action::port_no::ANY
        } else {
            fm.out_port
        },
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use lime_openflow::consts::{ErrorType, OFP_NO_BUFFER, ethertype, group};

    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn sample_match() -> of::Match {
        of::Match::new(vec![
            OxmField::InPort(of::Masked::exact(3)),
            OxmField::EthDst(of::Masked::with_mask([2, 0, 0, 0, 0, 0], [0xff; 6])),
            OxmField::EthType(of::Masked::exact(ethertype::IPV4)),
            OxmField::VlanVid(of::Masked::exact(0x1005)),
            OxmField::IpProto(of::Masked::exact(17)),
            OxmField::Ipv4Dst(of::Masked::with_mask(
                Ipv4Addr::new(10, 0, 0, 0),
                Ipv4Addr::new(255, 255, 255, 0),
            )),
            OxmField::UdpDst(of::Masked::exact(53)),
        ])
    }

    #[test]
    fn matches_round_trip() {
        let m = sample_match();
        m.validate().expect("valid sample");
        let r = match_from_of(&m);
        assert_eq!(r.in_port, Some(3));
        assert_eq!(
            r.ipv4_dst,
            Some(Masked {
                value: Ipv4Addr::new(10, 0, 0, 0),
                mask: Ipv4Addr::new(255, 255, 255, 0)
            })
        );
        assert_eq!(r.vlan_vid.map(|v| v.mask), Some(VID_EXACT));
        r.validate().expect("the rule model accepts it too");
        let back = match_to_of(&r);
        // An all-ones mask comes back as an exact match.
        let mut expected = m.clone();
        expected.fields[1] = OxmField::EthDst(of::Masked::exact([2, 0, 0, 0, 0, 0]));
        assert_eq!(back, expected);
        back.validate().expect("prerequisites first");
    }

    #[test]
    fn every_codec_field_has_a_rule_field() {
        // Each supported OXM field survives the trip (no field is silently dropped).
        let fields = [
            OxmField::Metadata(of::Masked::with_mask(1, 3)),
            OxmField::EthSrc(of::Masked::exact([2; 6])),
            OxmField::VlanPcp(of::Masked::exact(3)),
            OxmField::IpDscp(of::Masked::exact(8)),
            OxmField::Ipv4Src(of::Masked::exact(Ipv4Addr::LOCALHOST)),
            OxmField::TcpSrc(of::Masked::exact(1)),
            OxmField::TcpDst(of::Masked::exact(2)),
            OxmField::UdpSrc(of::Masked::exact(3)),
            OxmField::Icmpv4Type(of::Masked::exact(8)),
            OxmField::Icmpv4Code(of::Masked::exact(0)),
            OxmField::ArpOp(of::Masked::exact(1)),
            OxmField::ArpSpa(of::Masked::exact(Ipv4Addr::LOCALHOST)),
            OxmField::ArpTpa(of::Masked::exact(Ipv4Addr::LOCALHOST)),
            OxmField::Ipv6Src(of::Masked::exact(Ipv6Addr::LOCALHOST)),
            OxmField::Ipv6Dst(of::Masked::exact(Ipv6Addr::LOCALHOST)),
            OxmField::Icmpv6Type(of::Masked::exact(128)),
            OxmField::Icmpv6Code(of::Masked::exact(0)),
        ];
        for f in fields {
            let m = of::Match::new(vec![f]);
            let back = match_to_of(&match_from_of(&m));
            assert_eq!(back.fields, vec![f], "{:?}", f.id());
        }
    }

    #[test]
    fn instructions_round_trip() {
        let list = vec![
            Instruction::ApplyActions(vec![
                of::Action::PushVlan {
                    ethertype: ethertype::VLAN,
                },
                of::Action::SetField(OxmField::VlanVid(of::Masked::exact(0x1000 | 7))),
                of::Action::SetField(OxmField::EthDst(of::Masked::exact([2, 0, 0, 0, 0, 9]))),
                of::Action::Output {
                    port: 2,
                    max_len: 0,
                },
                of::Action::to_controller(),
            ]),
            Instruction::WriteMetadata {
                metadata: 5,
                mask: 0xff,
            },
            Instruction::GotoTable { table_id: 3 },
        ];
        let ins = instructions_from_of(&list).expect("supported");
        assert_eq!(ins.apply[1], Action::SetVlanVid(7));
        assert_eq!(ins.goto_table, Some(3));
        assert_eq!(instructions_to_of(&ins), list);
    }

    fn code_of(r: Result<Instructions, OfError>) -> (u16, u16) {
        r.expect_err("refused").code().to_raw()
    }

    #[test]
    fn unsupported_instructions_and_actions_get_their_errors() {
        let bad_inst = (
            ErrorType::BadInstruction.to_raw(),
            BadInstructionCode::UnsupInst.to_raw(),
        );
        for i in [
            Instruction::WriteActions(vec![]),
            Instruction::ClearActions,
            Instruction::Meter { meter_id: 1 },
            Instruction::Experimenter {
                experimenter: 0x2320,
                data: Bytes::new(),
            },
        ] {
            assert_eq!(
                code_of(instructions_from_of(std::slice::from_ref(&i))),
                bad_inst,
                "{i:?}"
            );
        }
        let twice = [
            Instruction::GotoTable { table_id: 1 },
            Instruction::GotoTable { table_id: 2 },
        ];
        assert_eq!(code_of(instructions_from_of(&twice)), bad_inst);
        let apply = |a: of::Action| instructions_from_of(&[Instruction::ApplyActions(vec![a])]);
        let bad_action = |c: BadActionCode| (ErrorType::BadAction.to_raw(), c.to_raw());
        let mut group_body = group::MAX.to_be_bytes().to_vec();
        group_body.extend([0; 4]);
        assert_eq!(
            code_of(apply(of::Action::Unsupported {
                action_type: ActionType::Group.to_raw(),
                body: Bytes::from(group_body),
            })),
            bad_action(BadActionCode::BadOutGroup)
        );
        assert_eq!(
            code_of(apply(of::Action::Unsupported {
                action_type: ActionType::SetQueue.to_raw(),
                body: Bytes::from_static(&[0; 4]),
            })),
            bad_action(BadActionCode::BadQueue)
        );
        assert_eq!(
            code_of(apply(of::Action::Unsupported {
                action_type: ActionType::DecNwTtl.to_raw(),
                body: Bytes::from_static(&[0; 4]),
            })),
            bad_action(BadActionCode::BadType)
        );
        assert_eq!(
            code_of(apply(of::Action::SetField(OxmField::TcpDst(
                of::Masked::exact(80)
            )))),
            bad_action(BadActionCode::BadSetType)
        );
    }

    #[test]
    fn flow_table_errors_map_to_flow_mod_failed_codes() {
        let fm = |c: FlowModFailedCode| (ErrorType::FlowModFailed.to_raw(), c.to_raw());
        let full = OfError::FlowMod(FlowModError::Fabric(FabricError::Datapath {
            switch: "s1".into(),
            source: Box::new(DatapathError::TableFull { what: "rule ids" }),
        }));
        assert_eq!(full.code().to_raw(), fm(FlowModFailedCode::TableFull));
        assert_eq!(
            OfError::FlowMod(FlowModError::Overlap { existing: 1 })
                .code()
                .to_raw(),
            fm(FlowModFailedCode::Overlap)
        );
        assert_eq!(
            OfError::FlowMod(FlowModError::BadTable { table: 9 })
                .code()
                .to_raw(),
            fm(FlowModFailedCode::BadTableId)
        );
        let prereq = OfError::Flow(FlowError::BadPrerequisite {
            field: "tcp_dst",
            needs: "ip_proto",
        });
        assert_eq!(
            prereq.code().to_raw(),
            (
                ErrorType::BadMatch.to_raw(),
                BadMatchCode::BadPrereq.to_raw()
            )
        );
        assert_eq!(
            OfError::Decode(DecodeError::BadField {
                field: 40,
                class: 0x8000
            })
            .code()
            .to_raw(),
            (
                ErrorType::BadMatch.to_raw(),
                BadMatchCode::BadField.to_raw()
            )
        );
    }

    #[test]
    fn flow_mods_translate_with_cookie_flags_and_timeouts() {
        let of_fm = of::FlowMod {
            cookie: 0xabc,
            cookie_mask: 0xfff,
            table_id: 1,
            command: FlowModCommand::ModifyStrict,
            idle_timeout: 10,
            hard_timeout: 20,
            priority: 7,
            buffer_id: OFP_NO_BUFFER,
            out_port: port::ANY,
            out_group: group::ANY,
            flags: 1,
            r#match: sample_match(),
            instructions: vec![Instruction::ApplyActions(vec![of::Action::Output {
                port: 2,
                max_len: 0,
            }])],
        };
        let fm = flow_mod_from_of(&of_fm).expect("translates");
        assert_eq!(fm.command, Command::ModifyStrict);
        assert_eq!(
            (
                fm.rule.cookie,
                fm.cookie_mask,
                fm.rule.table,
                fm.rule.priority
            ),
            (0xabc, 0xfff, 1, 7)
        );
        assert_eq!(
            (fm.rule.idle_timeout, fm.rule.hard_timeout, fm.rule.flags),
            (10, 20, 1)
        );
        assert_eq!(
            fm.rule.instructions.apply,
            vec![Action::Output {
                port: 2,
                max_len: 0
            }]
        );
    }
}

//! The OpenFlow switch driven by a scripted controller (on LIME's own codec) over TCP on
//! 127.0.0.1: the handshake, flow-mods and barriers, errors on the offending xid with
//! the connection surviving, roles, statistics equal to the traffic sent, packet-in and
//! packet-out, and timeouts producing FLOW_REMOVED with exact final counters.
use std::{
    net::{Ipv4Addr, UdpSocket},
    time::Duration,
};

use bytes::Bytes;
use lime_openflow::{
    self as of, Instruction, Message, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
    OxmField, PacketOut, Role, SwitchConfig,
    consts::{
        ActionType, BadActionCode, BadInstructionCode, BadRequestCode, ControllerRole, ErrorType,
        FlowModCommand, FlowModFailedCode, FlowRemovedReason, OFP_NO_BUFFER, PacketInReason,
        RoleRequestFailedCode, ethertype, flow_mod_flags, group, port, table,
    },
    multipart::flow::FlowStatsRequest,
};
use lime_tests::{
    controlled_topology, fabric_pin_root, in_host, kernel_lock, ping, require_root, send_udp,
    two_switch_toml,
};
use lime_userspace::{
    fabric::Fabric,
    ofswitch::{Agent, AgentOptions, client::ScriptedController},
};

const T: Duration = Duration::from_secs(10);

fn flow_mod(priority: u16, fields: Vec<OxmField>, actions: Vec<of::Action>) -> of::FlowMod {
    of::FlowMod {
        cookie: 0,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority,
        buffer_id: OFP_NO_BUFFER,
        out_port: port::ANY,
        out_group: group::ANY,
        flags: 0,
        r#match: of::Match::new(fields),
        instructions: if actions.is_empty() {
            Vec::new()
        } else {
            vec![Instruction::ApplyActions(actions)]
        },
    }
}

fn out(p: u32) -> of::Action {
    of::Action::Output {
        port: p,
        max_len: 0,
    }
}

fn udp(dport: u16) -> Vec<OxmField> {
    vec![
        OxmField::EthType(of::Masked::exact(ethertype::IPV4)),
        OxmField::IpProto(of::Masked::exact(17)),
        OxmField::UdpDst(of::Masked::exact(dport)),
    ]
}

/// L2 forwarding between h1 (port 1) and h3 (port 3): by destination MAC, ARP by
/// target address.
fn l2(lab: &lime_lab::LabState) -> Vec<Message> {
    let mut v = Vec::new();
    for (host, p) in [("h1", 1), ("h3", 3)] {
        let h = lab.host(host).expect("host");
        v.push(Message::FlowMod(flow_mod(
            10,
            vec![OxmField::EthDst(of::Masked::exact(h.mac.octets()))],
            vec![out(p)],
        )));
        v.push(Message::FlowMod(flow_mod(
            20,
            vec![
                OxmField::EthType(of::Masked::exact(ethertype::ARP)),
                OxmField::ArpTpa(of::Masked::exact(h.ip.addr)),
            ],
            vec![out(p)],
        )));
    }
    v
}

fn start(lab: &str) -> (Agent, ScriptedController) {
    let (listener, p) = ScriptedController::listen().expect("listen");
    let fabric = Fabric::up(&controlled_topology(lab, p), &fabric_pin_root()).expect("fabric");
    let agent = Agent::start(
        fabric,
        &AgentOptions {
            echo_interval: Duration::from_secs(1),
        },
    )
    .expect("agent");
    let c = ScriptedController::accept(&listener, T).expect("the switch connects");
    (agent, c)
}

/// [`start`], then L2 forwarding between h1 and h3 installed by the controller.
fn start_with_l2(lab: &str) -> (Agent, ScriptedController, lime_lab::LabState) {
    let (agent, mut c) = start(lab);
    let st = agent.lab_state().clone();
    c.send_many(&l2(&st)).expect("l2");
    (agent, c, st)
}

fn error_of(m: &Message) -> (u16, u16) {
    match m {
        Message::Error(e) => (e.err_type, e.code),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The body of a single-part multipart reply to `body`.
fn multipart(c: &mut ScriptedController, body: MultipartRequestBody) -> MultipartReplyBody {
    let req = Message::MultipartRequest(MultipartRequest::new(body));
    match c.request(&req, T).expect("multipart")[..] {
        [Message::MultipartReply(ref r)] => r.body.clone(),
        ref other => panic!("not one multipart reply: {other:?}"),
    }
}

fn flow_stats(
    c: &mut ScriptedController,
    fields: Vec<OxmField>,
) -> Vec<of::multipart::flow::FlowStats> {
    let req = Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Flow(
        FlowStatsRequest {
            table_id: table::ALL,
            out_port: port::ANY,
            out_group: group::ANY,
            cookie: 0,
            cookie_mask: 0,
            r#match: of::Match::new(fields),
        },
    )));
    let mut all = Vec::new();
    for m in c.request(&req, T).expect("flow stats") {
        match m {
            Message::MultipartReply(r) => match r.body {
                MultipartReplyBody::Flow(f) => all.extend(f),
                other => panic!("not flow stats: {other:?}"),
            },
            other => panic!("not a multipart reply: {other:?}"),
        }
    }
    all
}

#[test]
fn handshake_barriers_errors_and_roles() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (agent, mut c) = start("tofhs");

    // FEATURES: the datapath id from the topology (vs1 is the first: dpid 1), 8 tables.
    match c.request(&Message::FeaturesRequest, T).expect("features")[..] {
        [Message::FeaturesReply(ref f)] => {
            assert_eq!((f.datapath_id, f.n_tables, f.n_buffers), (1, 8, 0));
        }
        ref other => panic!("{other:?}"),
    }
    c.send(&Message::SetConfig(SwitchConfig {
        flags: 0,
        miss_send_len: 128,
    }))
    .expect("set config");
    match c.request(&Message::GetConfigRequest, T).expect("config")[..] {
        [Message::GetConfigReply(ref cfg)] => assert_eq!(cfg.miss_send_len, 128),
        ref other => panic!("{other:?}"),
    }
    match multipart(&mut c, MultipartRequestBody::PortDesc) {
        MultipartReplyBody::PortDesc(p) => {
            assert_eq!(p.iter().map(|p| p.port_no).collect::<Vec<_>>(), vec![1, 3]);
        }
        other => panic!("{other:?}"),
    }

    // Bad messages, each answered on its own xid; the connection survives them all.
    let mut bad = Vec::new();
    let mut write_actions = flow_mod(1, vec![], vec![]);
    write_actions.instructions = vec![Instruction::WriteActions(vec![out(1)])];
    bad.push((
        c.send(&Message::FlowMod(write_actions)).expect("send"),
        (
            ErrorType::BadInstruction.to_raw(),
            BadInstructionCode::UnsupInst.to_raw(),
        ),
    ));
    let mut group_body = 7u32.to_be_bytes().to_vec();
    group_body.extend([0; 4]);
    let group_action = flow_mod(
        1,
        vec![],
        vec![of::Action::Unsupported {
            action_type: ActionType::Group.to_raw(),
            body: Bytes::from(group_body),
        }],
    );
    bad.push((
        c.send(&Message::FlowMod(group_action)).expect("send"),
        (
            ErrorType::BadAction.to_raw(),
            BadActionCode::BadOutGroup.to_raw(),
        ),
    ));
    let mut table9 = flow_mod(1, vec![], vec![out(1)]);
    table9.table_id = 9;
    bad.push((
        c.send(&Message::FlowMod(table9)).expect("send"),
        (
            ErrorType::FlowModFailed.to_raw(),
            FlowModFailedCode::BadTableId.to_raw(),
        ),
    ));
    let mut overlap = flow_mod(5, udp(9), vec![out(3)]);
    overlap.flags = flow_mod_flags::CHECK_OVERLAP;
    c.send(&Message::FlowMod(overlap.clone())).expect("send");
    let mut overlapping = overlap.clone();
    overlapping.r#match =
        of::Match::new(vec![OxmField::EthType(of::Masked::exact(ethertype::IPV4))]);
    bad.push((
        c.send(&Message::FlowMod(overlapping)).expect("send"),
        (
            ErrorType::FlowModFailed.to_raw(),
            FlowModFailedCode::Overlap.to_raw(),
        ),
    ));
    // A group-mod (type 15) and an unknown type (200), raw.
    c.send_raw(&[4, 15, 0, 16, 0, 0, 0, 77, 0, 0, 0, 0, 0, 0, 0, 0])
        .expect("raw");
    bad.push((
        77,
        (
            ErrorType::BadRequest.to_raw(),
            BadRequestCode::BadType.to_raw(),
        ),
    ));
    c.send_raw(&[4, 200, 0, 8, 0, 0, 0, 78]).expect("raw");
    bad.push((
        78,
        (
            ErrorType::BadRequest.to_raw(),
            BadRequestCode::BadType.to_raw(),
        ),
    ));
    let got = c.barrier(T).expect("barrier after the bad messages");
    for (xid, code) in &bad {
        let e = got
            .iter()
            .find(|(h, _)| h.xid == *xid)
            .unwrap_or_else(|| panic!("no answer on xid {xid}: {got:?}"));
        assert_eq!(error_of(&e.1), *code, "xid {xid}");
    }
    let errors = got
        .iter()
        .filter(|(_, m)| matches!(m, Message::Error(_)))
        .count();
    assert_eq!(
        errors,
        bad.len(),
        "exactly one error per bad message: {got:?}"
    );

    // Barrier ordering: 1000 flow-mods, then a barrier; when its reply arrives, all of
    // them are in the table (and the kernel).
    let mods: Vec<Message> = (0..1000u16)
        .map(|i| Message::FlowMod(flow_mod(7, udp(10_000 + i), vec![out(3)])))
        .collect();
    c.send_many(&mods).expect("flow-mods");
    let got = c.barrier(T).expect("barrier");
    assert!(
        got.iter().all(|(_, m)| !matches!(m, Message::Error(_))),
        "no errors: {got:?}"
    );
    let dump = agent.handle().dump_flows("vs1").expect("dump");
    assert_eq!(
        dump.iter().filter(|f| f.priority == 7).count(),
        1000,
        "every flow-mod before the barrier is applied"
    );
    assert_eq!(flow_stats(&mut c, vec![]).len(), 1001);
    // Delete them all (non-strict, by the table's match-all) but the overlap one.
    let mut del = flow_mod(7, vec![], vec![]);
    del.command = FlowModCommand::Delete;
    del.table_id = table::ALL;
    del.out_port = 3;
    c.send(&Message::FlowMod(del)).expect("delete");
    c.barrier(T).expect("barrier");
    assert_eq!(
        flow_stats(&mut c, vec![]).len(),
        0,
        "delete with out_port 3 took all"
    );

    // Modify (non-strict, by cookie under a mask): new instructions, same cookie.
    let mut a = flow_mod(3, udp(4000), vec![out(1)]);
    a.cookie = 0xa1;
    let mut b = flow_mod(3, udp(4001), vec![out(1)]);
    b.cookie = 0xb1;
    c.send_many(&[Message::FlowMod(a), Message::FlowMod(b)])
        .expect("adds");
    let mut m = flow_mod(0, vec![], vec![out(3)]);
    m.command = FlowModCommand::Modify;
    m.cookie = 0xa0;
    m.cookie_mask = 0xf0;
    c.send(&Message::FlowMod(m)).expect("modify");
    c.barrier(T).expect("barrier");
    let stats = flow_stats(&mut c, vec![]);
    let instr = |cookie| {
        stats
            .iter()
            .find(|f| f.cookie == cookie)
            .map(|f| f.instructions.clone())
            .expect("entry")
    };
    assert_eq!(
        instr(0xa1),
        vec![Instruction::ApplyActions(vec![out(3)])],
        "the cookie-selected entry changed"
    );
    assert_eq!(instr(0xb1), vec![Instruction::ApplyActions(vec![out(1)])]);
    let mut del = flow_mod(0, vec![], vec![]);
    del.command = FlowModCommand::Delete;
    del.table_id = table::ALL;
    c.send(&Message::FlowMod(del)).expect("delete all");
    c.barrier(T).expect("barrier");
    assert!(flow_stats(&mut c, vec![]).is_empty());

    // Roles: master with generation 5; an older generation is stale; a slave may not
    // change the table.
    let role = |r, generation_id| {
        Message::RoleRequest(Role {
            role: r,
            generation_id,
        })
    };
    match c
        .request(&role(ControllerRole::Master, 5), T)
        .expect("role")[..]
    {
        [Message::RoleReply(ref r)] => {
            assert_eq!((r.role, r.generation_id), (ControllerRole::Master, 5))
        }
        ref other => panic!("{other:?}"),
    }
    let stale = c.request(&role(ControllerRole::Slave, 4), T).expect("role");
    assert_eq!(
        error_of(&stale[0]),
        (
            ErrorType::RoleRequestFailed.to_raw(),
            RoleRequestFailedCode::Stale.to_raw()
        )
    );
    c.request(&role(ControllerRole::Slave, 6), T).expect("role");
    let slave_mod = c
        .request(&Message::FlowMod(flow_mod(1, vec![], vec![out(1)])), T)
        .expect("flow-mod as slave");
    assert_eq!(
        error_of(&slave_mod[0]),
        (
            ErrorType::BadRequest.to_raw(),
            BadRequestCode::IsSlave.to_raw()
        )
    );
    c.request(&role(ControllerRole::Equal, 0), T).expect("role");

    // Async config: the 1.3 defaults, then what the controller sets.
    match c.request(&Message::GetAsyncRequest, T).expect("get async")[..] {
        [Message::GetAsyncReply(ref a)] => {
            assert_eq!(a.packet_in_mask, [0b11, 0]);
            assert_eq!(a.flow_removed_mask, [0b1111, 0]);
        }
        ref other => panic!("{other:?}"),
    }
    let quiet = of::AsyncConfig {
        packet_in_mask: [0, 0],
        port_status_mask: [0b111, 0b111],
        flow_removed_mask: [0b1, 0],
    };
    c.send(&Message::SetAsync(quiet)).expect("set async");
    match c.request(&Message::GetAsyncRequest, T).expect("get async")[..] {
        [Message::GetAsyncReply(ref a)] => assert_eq!(*a, quiet),
        ref other => panic!("{other:?}"),
    }

    // Keepalive: the switch sends ECHO_REQUEST after a second of silence.
    std::thread::sleep(Duration::from_millis(1500));
    c.recv_until(T, |_, m| matches!(m, Message::EchoRequest(_)))
        .expect("echo request from the switch");
    assert!(c.echoes_answered >= 1);
    match c
        .request(
            &Message::EchoRequest(of::EchoRequest {
                data: Bytes::from_static(b"x"),
            }),
            T,
        )
        .expect("echo")[..]
    {
        [Message::EchoReply(ref e)] => assert_eq!(&e.data[..], b"x"),
        ref other => panic!("{other:?}"),
    }
    // DESC, TABLE and TABLE_FEATURES answer.
    for body in [
        MultipartRequestBody::Desc,
        MultipartRequestBody::Table,
        MultipartRequestBody::TableFeatures(vec![]),
    ] {
        let r = c
            .request(
                &Message::MultipartRequest(MultipartRequest::new(body.clone())),
                T,
            )
            .expect("multipart");
        assert!(
            r.iter().all(|m| matches!(m, Message::MultipartReply(_))),
            "{body:?}: {r:?}"
        );
    }
    c.close();
    drop(agent.shutdown().expect("shutdown"));
}

#[test]
fn stats_packet_in_and_packet_out() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (agent, mut c, st) = start_with_l2("tofst");
    let mut counted = flow_mod(30, udp(5000), vec![out(3)]);
    counted.cookie = 0x5000;
    counted.flags = flow_mod_flags::SEND_FLOW_REM;
    c.send(&Message::FlowMod(counted)).expect("udp rule");
    let mut to_ctl = flow_mod(40, udp(6000), vec![of::Action::to_controller()]);
    to_ctl.cookie = 0x6000;
    c.send(&Message::FlowMod(to_ctl)).expect("controller rule");
    c.barrier(T).expect("barrier");

    let h3 = st.host("h3").expect("h3").ip.addr;
    assert!(
        ping(&st, "h1", h3, 3),
        "h1 pings h3 through the controller's rules"
    );

    // 10 datagrams of 100 bytes: the UDP rule counts exactly those.
    send_udp(&st, "h1", h3, 5000, 10, 100);
    std::thread::sleep(Duration::from_millis(300));
    let stats = flow_stats(&mut c, udp(5000));
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(
        (stats[0].packet_count, stats[0].byte_count),
        (10, 10 * (14 + 20 + 8 + 100)),
        "flow stats equal the traffic sent"
    );
    let h3_mac = st.host("h3").expect("h3").mac.octets();
    let icmp = flow_stats(&mut c, vec![OxmField::EthDst(of::Masked::exact(h3_mac))]);
    assert_eq!(icmp.len(), 1);
    assert_eq!(
        (icmp[0].packet_count, icmp[0].byte_count),
        (3, 3 * 98),
        "three echo requests of 98 bytes to h3"
    );
    let aggregate = MultipartRequestBody::Aggregate(FlowStatsRequest {
        table_id: table::ALL,
        out_port: 3,
        out_group: group::ANY,
        cookie: 0,
        cookie_mask: 0,
        r#match: of::Match::all(),
    });
    match multipart(&mut c, aggregate) {
        MultipartReplyBody::Aggregate(a) => {
            assert_eq!(a.flow_count, 3, "MAC, ARP and UDP rules output to 3");
            assert!(a.packet_count >= 13, "{a:?}");
        }
        other => panic!("{other:?}"),
    }

    // Port counters: h1's port received at least the echo requests and the datagrams.
    match multipart(&mut c, MultipartRequestBody::PortStats { port_no: 1 }) {
        MultipartReplyBody::PortStats(p) => {
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].port_no, 1);
            assert!(p[0].rx_packets >= 13 && p[0].tx_packets >= 3, "{p:?}");
        }
        other => panic!("{other:?}"),
    }

    // Packet-in: the whole frame, reason ACTION, in_port 1, the rule's cookie.
    send_udp(&st, "h1", h3, 6000, 1, 10);
    let got = c
        .recv_until(T, |_, m| matches!(m, Message::PacketIn(_)))
        .expect("packet-in");
    let Some((_, Message::PacketIn(pin))) = got.last() else {
        unreachable!()
    };
    assert_eq!(pin.reason, PacketInReason::Action.to_raw());
    assert_eq!(pin.cookie, 0x6000);
    assert_eq!(pin.buffer_id, OFP_NO_BUFFER);
    assert_eq!(pin.total_len as usize, 14 + 20 + 8 + 10);
    assert_eq!(pin.data.len(), 14 + 20 + 8 + 10, "the full frame");
    assert_eq!(
        pin.r#match.fields,
        vec![OxmField::InPort(of::Masked::exact(1))]
    );

    // Packet-out of that frame to port 3 (on the other physical switch): h3 gets it.
    let rx = in_host(&st, "h3", move || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 6000)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s
    });
    let po = |actions| {
        Message::PacketOut(PacketOut {
            buffer_id: OFP_NO_BUFFER,
            in_port: 1,
            actions,
            data: pin.data.clone(),
        })
    };
    c.send(&po(vec![out(3)])).expect("packet-out");
    let mut buf = [0u8; 64];
    let n = rx.recv(&mut buf).expect("h3 received the packet-out");
    assert_eq!(n, 10);
    // Packet-out to TABLE: the frame hits the controller rule again.
    c.send(&po(vec![out(port::TABLE)]))
        .expect("packet-out to table");
    let again = c
        .recv_until(T, |_, m| matches!(m, Message::PacketIn(_)))
        .expect("packet-in from the table");
    let Some((_, Message::PacketIn(p2))) = again.last() else {
        unreachable!()
    };
    assert_eq!(p2.data, pin.data);
    // A packet-out naming a buffer is refused (this switch buffers nothing).
    let mut buffered = PacketOut {
        buffer_id: 3,
        in_port: 1,
        actions: vec![out(3)],
        data: Bytes::new(),
    };
    let e = c
        .request(&Message::PacketOut(buffered.clone()), T)
        .expect("answer");
    assert_eq!(
        error_of(&e[0]),
        (
            ErrorType::BadRequest.to_raw(),
            BadRequestCode::BufferUnknown.to_raw()
        )
    );
    buffered.buffer_id = OFP_NO_BUFFER;
    buffered.in_port = 9;
    buffered.data = pin.data.clone();
    let e = c.request(&Message::PacketOut(buffered), T).expect("answer");
    assert_eq!(
        error_of(&e[0]),
        (
            ErrorType::BadRequest.to_raw(),
            BadRequestCode::BadPort.to_raw()
        )
    );

    // Delete the UDP rule: FLOW_REMOVED (it has SEND_FLOW_REM) with its final counters.
    let mut del = flow_mod(30, udp(5000), vec![]);
    del.command = FlowModCommand::DeleteStrict;
    c.send(&Message::FlowMod(del)).expect("delete");
    let got = c
        .recv_until(T, |_, m| matches!(m, Message::FlowRemoved(_)))
        .expect("flow removed");
    let Some((_, Message::FlowRemoved(fr))) = got.last() else {
        unreachable!()
    };
    assert_eq!(fr.reason, FlowRemovedReason::Delete.to_raw());
    assert_eq!((fr.cookie, fr.priority), (0x5000, 30));
    assert_eq!((fr.packet_count, fr.byte_count), (10, 1420));
    c.close();
    drop(agent.shutdown().expect("shutdown"));
}

#[test]
fn timeouts_send_flow_removed_with_final_counters() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (agent, mut c, st) = start_with_l2("toftm");
    let mut idle = flow_mod(30, udp(7000), vec![out(3)]);
    idle.idle_timeout = 1;
    idle.cookie = 7000;
    idle.flags = flow_mod_flags::SEND_FLOW_REM;
    let mut hard = flow_mod(30, udp(7001), vec![out(3)]);
    hard.hard_timeout = 2;
    hard.cookie = 7001;
    hard.flags = flow_mod_flags::SEND_FLOW_REM;
    let mut quiet = flow_mod(30, udp(7002), vec![out(3)]);
    quiet.idle_timeout = 1; // no SEND_FLOW_REM: expires silently
    c.send_many(&[
        Message::FlowMod(idle),
        Message::FlowMod(hard),
        Message::FlowMod(quiet),
    ])
    .expect("timed rules");
    c.barrier(T).expect("barrier");
    let h3 = st.host("h3").expect("h3").ip.addr;
    assert!(ping(&st, "h1", h3, 1));
    send_udp(&st, "h1", h3, 7000, 5, 50);
    // Keep the hard-timeout rule busy: it must expire anyway, after 2 s.
    for _ in 0..3 {
        send_udp(&st, "h1", h3, 7001, 1, 20);
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut removed = Vec::new();
    let got = c
        .recv_until(Duration::from_secs(6), |_, m| {
            if let Message::FlowRemoved(f) = m {
                removed.push(f.clone());
            }
            removed.len() == 2
        })
        .expect("two FLOW_REMOVED");
    drop(got);
    let by_cookie = |k| removed.iter().find(|f| f.cookie == k).expect("removed");
    let i = by_cookie(7000);
    assert_eq!(i.reason, FlowRemovedReason::IdleTimeout.to_raw());
    assert_eq!((i.packet_count, i.byte_count), (5, 5 * (14 + 20 + 8 + 50)));
    assert_eq!(i.idle_timeout, 1);
    let h = by_cookie(7001);
    assert_eq!(h.reason, FlowRemovedReason::HardTimeout.to_raw());
    assert_eq!((h.packet_count, h.byte_count), (3, 3 * (14 + 20 + 8 + 20)));
    assert!(h.duration_sec >= 2, "{h:?}");
    std::thread::sleep(Duration::from_millis(500));
    let left = agent.handle().dump_flows("vs1").expect("dump");
    assert!(
        left.iter().all(|f| f.priority != 30),
        "every timed entry expired: {left:?}"
    );
    c.close();
    drop(agent.shutdown().expect("shutdown"));
}

/// The datapath keeps no hit times; the driver derives them from the counters. A rule
/// in use must never idle out, and must once it is left alone.
#[test]
fn idle_timeout_spares_a_rule_in_use() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (agent, mut c, st) = start_with_l2("tofib");
    let mut busy = flow_mod(30, udp(7100), vec![out(3)]);
    busy.idle_timeout = 1;
    busy.cookie = 7100;
    busy.flags = flow_mod_flags::SEND_FLOW_REM;
    c.send_many(&[Message::FlowMod(busy)]).expect("timed rule");
    c.barrier(T).expect("barrier");
    let h3 = st.host("h3").expect("h3").ip.addr;
    assert!(ping(&st, "h1", h3, 1));
    // Three idle timeouts long, one datagram every 250 ms: it stays.
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        send_udp(&st, "h1", h3, 7100, 1, 20);
        sent += 1;
        if let Ok(got) = c.recv_until(Duration::from_millis(250), |_, m| {
            matches!(m, Message::FlowRemoved(_))
        }) {
            panic!("removed while in use, after {sent} datagrams: {got:?}");
        }
    }
    // Left alone, it goes.
    let got = c
        .recv_until(Duration::from_secs(4), |_, m| {
            matches!(m, Message::FlowRemoved(_))
        })
        .expect("removed once idle");
    let Some((_, Message::FlowRemoved(fr))) = got.last() else {
        unreachable!()
    };
    assert_eq!(fr.reason, FlowRemovedReason::IdleTimeout.to_raw());
    assert_eq!(fr.cookie, 7100);
    assert_eq!(
        (fr.packet_count, fr.byte_count),
        (sent, sent * (14 + 20 + 8 + 20))
    );
    c.close();
    drop(agent.shutdown().expect("shutdown"));
}

#[test]
fn fail_modes_without_a_controller() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    // Nobody listens on the controller port: secure drops, standalone forwards.
    let (listener, p) = ScriptedController::listen().expect("listen");
    let mut topo = controlled_topology("toffm", p);
    let secure = Fabric::up(&topo, &fabric_pin_root()).expect("fabric");
    drop(listener);
    let agent = Agent::start(secure, &AgentOptions::default()).expect("agent");
    let st = agent.lab_state().clone();
    let h3 = st.host("h3").expect("h3").ip.addr;
    assert!(
        !ping(&st, "h1", h3, 1),
        "fail-secure: no rules, no forwarding"
    );
    assert!(agent.handle().dump_flows("vs1").expect("dump").is_empty());
    drop(agent.shutdown().expect("shutdown"));

    let (listener, p) = ScriptedController::listen().expect("listen");
    topo.vswitches[0].controllers = vec![format!("tcp:127.0.0.1:{p}")];
    topo.vswitches[0].fail_mode = lime_lab::FailMode::Standalone;
    let standalone = Fabric::up(&topo, &fabric_pin_root()).expect("fabric");
    let agent = Agent::start(standalone, &AgentOptions::default()).expect("agent");
    // Accept nothing yet: the switch acts as a learning switch on its own.
    listener.set_nonblocking(true).expect("nonblocking");
    let st = agent.lab_state().clone();
    assert!(ping(&st, "h1", h3, 3), "fail-standalone forwards");
    let dump = agent.handle().dump_flows("vs1").expect("dump");
    assert_eq!(dump.len(), 1, "only the table-miss entry: {dump:?}");
    assert_eq!(dump[0].actions, "CONTROLLER:65535");
    // A controller connects: the switch hands the table over to it.
    let c = ScriptedController::accept(&listener, T).expect("connect");
    let deadline = std::time::Instant::now() + T;
    while !agent.handle().dump_flows("vs1").expect("dump").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "standalone entry left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c.close();
    drop(agent.shutdown().expect("shutdown"));
}

#[test]
fn port_status_follows_the_host_link() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (agent, mut c) = start("tofps");
    let st = agent.lab_state().clone();
    let set = |state: &str| {
        let ns = &st.host("h1").expect("h1").netns;
        let ok = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "ip", "link", "set", "eth0", state])
            .status()
            .expect("ip link")
            .success();
        assert!(ok, "ip link set eth0 {state}");
    };
    let status_of_port_1 = |c: &mut ScriptedController| {
        let got = c
            .recv_until(
                T,
                |_, m| matches!(m, Message::PortStatus(p) if p.desc.port_no == 1),
            )
            .expect("PORT_STATUS");
        match got.last() {
            Some((_, Message::PortStatus(p))) => p.clone(),
            _ => unreachable!(),
        }
    };
    set("down");
    let down = status_of_port_1(&mut c);
    assert_eq!(down.reason, of::consts::PortReason::Modify.to_raw());
    assert_ne!(
        down.desc.state & of::consts::port_state::LINK_DOWN,
        0,
        "{down:?}"
    );
    set("up");
    let up = status_of_port_1(&mut c);
    assert_eq!(up.desc.state, of::consts::port_state::LIVE, "{up:?}");
    c.close();
    drop(agent.shutdown().expect("shutdown"));
}

/// Two tenants: vs1 (h1, h3) listens for its controllers, vs2 (h2, h4) connects to one.
fn two_tenants(lab: &str, vs1_listen: u16, vs2_controller: u16) -> lime_lab::Topology {
    let toml = format!(
        r#"{}
[[vswitch]]
name = "vs1"
tenant = "t1"
controllers = ["ptcp:{vs1_listen}"]
ports = [ {{ port = 1, host = "h1" }}, {{ port = 3, host = "h3" }} ]
[[vswitch]]
name = "vs2"
tenant = "t2"
dpid = 0x22
controllers = ["tcp:127.0.0.1:{vs2_controller}"]
ports = [ {{ port = 1, host = "h2" }}, {{ port = 3, host = "h4" }} ]
"#,
        two_switch_toml(lab, None)
    );
    lime_lab::Topology::from_toml_str(&toml).expect("topology")
}

fn packet_ins(c: &mut ScriptedController, wait: Duration) -> usize {
    let mut n = 0;
    while let Some((_, m)) = c.recv(wait).expect("recv") {
        if matches!(m, Message::PacketIn(_)) {
            n += 1;
        }
    }
    n
}

#[test]
fn passive_targets_roles_and_tenant_isolation() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = free.local_addr().expect("addr").port();
    drop(free);
    let (l2, p2) = ScriptedController::listen().expect("listen");
    let fabric = Fabric::up(&two_tenants("toftn", listen, p2), &fabric_pin_root()).expect("fabric");
    let agent = Agent::start(fabric, &AgentOptions::default()).expect("agent");
    let addr = agent
        .listening()
        .iter()
        .find(|(v, _)| v == "vs1")
        .map(|(_, a)| *a)
        .expect("vs1 listens");
    assert!(addr.ip().is_loopback(), "ptcp binds loopback by default");
    let mut a = ScriptedController::connect(addr, T).expect("first controller of vs1");
    let mut b = ScriptedController::connect(addr, T).expect("second controller of vs1");
    let mut t2 = ScriptedController::accept(&l2, T).expect("vs2 connects");
    for (c, dpid) in [(&mut a, 1), (&mut b, 1), (&mut t2, 0x22)] {
        match c.request(&Message::FeaturesRequest, T).expect("features")[..] {
            [Message::FeaturesReply(ref f)] => assert_eq!(f.datapath_id, dpid),
            ref other => panic!("{other:?}"),
        }
    }
    // a is master, b slave: a new master demotes nobody else here, b gets no packet-in.
    let role = |r, generation_id| {
        Message::RoleRequest(Role {
            role: r,
            generation_id,
        })
    };
    a.request(&role(ControllerRole::Master, 1), T)
        .expect("master");
    b.request(&role(ControllerRole::Slave, 1), T)
        .expect("slave");
    let mut to_ctl = flow_mod(40, udp(6000), vec![of::Action::to_controller()]);
    to_ctl.cookie = 1;
    a.send(&Message::FlowMod(to_ctl.clone())).expect("vs1 rule");
    a.barrier(T).expect("barrier");
    to_ctl.cookie = 2;
    t2.send(&Message::FlowMod(to_ctl)).expect("vs2 rule");
    t2.barrier(T).expect("barrier");
    // Each tenant's table holds its own rule only.
    for (c, cookie) in [(&mut a, 1), (&mut t2, 2)] {
        let f = flow_stats(c, vec![]);
        assert_eq!(f.iter().map(|f| f.cookie).collect::<Vec<_>>(), vec![cookie]);
    }
    let st = agent.lab_state().clone();
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    // Static neighbours: no ARP needed (there are no forwarding rules).
    for (from, to) in [("h1", "h3"), ("h2", "h4")] {
        let ns = &st.host(from).expect("host").netns;
        let ok = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "ip",
                "neigh",
                "replace",
                &ip(to).to_string(),
            ])
            .args([
                "lladdr",
                &st.host(to).expect("host").mac.to_string(),
                "dev",
                "eth0",
            ])
            .status()
            .expect("ip neigh")
            .success();
        assert!(ok);
    }
    send_udp(&st, "h1", ip("h3"), 6000, 3, 10);
    assert_eq!(
        packet_ins(&mut a, Duration::from_millis(800)),
        3,
        "vs1's master"
    );
    assert_eq!(
        packet_ins(&mut b, Duration::from_millis(200)),
        0,
        "a slave gets none"
    );
    assert_eq!(
        packet_ins(&mut t2, Duration::from_millis(200)),
        0,
        "the other tenant neither"
    );
    send_udp(&st, "h2", ip("h4"), 6000, 2, 10);
    assert_eq!(
        packet_ins(&mut t2, Duration::from_millis(800)),
        2,
        "vs2's controller"
    );
    assert_eq!(
        packet_ins(&mut a, Duration::from_millis(200)),
        0,
        "not vs1's"
    );
    // A connection-fatal error (a header shorter than 8 bytes) ends that connection only.
    b.send_raw(&[4, 0, 0, 4, 0, 0, 0, 1]).expect("garbage");
    let closed = b.recv_until(T, |_, _| false);
    assert!(
        matches!(&closed, Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{closed:?}"
    );
    match a
        .request(
            &Message::EchoRequest(of::EchoRequest { data: Bytes::new() }),
            T,
        )
        .expect("a still served")[..]
    {
        [Message::EchoReply(_)] => {}
        ref other => panic!("{other:?}"),
    }
    a.close();
    t2.close();
    drop(agent.shutdown().expect("shutdown"));
}

#[test]
fn a_silent_controller_is_dropped_and_the_switch_reconnects() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (listener, p) = ScriptedController::listen().expect("listen");
    let fabric = Fabric::up(&controlled_topology("tofrc", p), &fabric_pin_root()).expect("fabric");
    let agent = Agent::start(
        fabric,
        &AgentOptions {
            echo_interval: Duration::from_secs(1),
        },
    )
    .expect("agent");
    let mut c = ScriptedController::accept(&listener, T).expect("the switch connects");
    // Say nothing (and answer no ECHO_REQUEST) for more than three echo intervals plus
    // the one-second check period; reading earlier would answer the ECHO_REQUEST and
    // keep the connection alive.
    std::thread::sleep(Duration::from_secs(6));
    let end = c.recv_until(T, |_, _| false);
    assert!(
        matches!(&end, Err(e) if matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionReset
        )),
        "the switch hung up on a dead peer: {end:?}"
    );
    // It connects again (backoff from 100 ms) and is served as before. Connections it
    // made while nobody accepted gave up waiting for HELLO; take the first live one.
    let deadline = std::time::Instant::now() + T;
    loop {
        assert!(std::time::Instant::now() < deadline, "no live reconnection");
        let Ok(mut again) = ScriptedController::accept(&listener, T) else {
            continue;
        };
        if let Ok(r) = again.request(&Message::FeaturesRequest, T) {
            match r[..] {
                [Message::FeaturesReply(ref f)] => assert_eq!(f.datapath_id, 1),
                ref other => panic!("{other:?}"),
            }
            again.close();
            break;
        }
    }
    drop(agent.shutdown().expect("shutdown"));
}

#[test]
fn random_messages_never_take_the_switch_down() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (listener, p) = ScriptedController::listen().expect("listen");
    let fabric = Fabric::up(&controlled_topology("tofrn", p), &fabric_pin_root()).expect("fabric");
    let agent = Agent::start(fabric, &AgentOptions::default()).expect("agent");
    let mut seed: u64 = 0x1ee7_5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as u32
    };
    let mut to_ctl = flow_mod(40, udp(6000), vec![of::Action::to_controller()]);
    to_ctl.idle_timeout = 1;
    let mut del = flow_mod(40, udp(6000), vec![]);
    del.command = FlowModCommand::DeleteStrict;
    let samples = [
        Message::FlowMod(flow_mod(30, udp(5000), vec![out(3)])),
        Message::FlowMod(to_ctl),
        Message::FlowMod(del),
        Message::PacketOut(PacketOut {
            buffer_id: OFP_NO_BUFFER,
            in_port: 1,
            actions: vec![
                of::Action::SetField(OxmField::EthDst(of::Masked::exact([2, 0, 0, 0, 0, 3]))),
                out(3),
            ],
            data: Bytes::from(vec![0u8; 60]),
        }),
        Message::RoleRequest(Role {
            role: ControllerRole::Master,
            generation_id: 3,
        }),
        Message::SetConfig(SwitchConfig {
            flags: 0,
            miss_send_len: 128,
        }),
        Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Flow(
            FlowStatsRequest {
                table_id: table::ALL,
                out_port: port::ANY,
                out_group: group::ANY,
                cookie: 0,
                cookie_mask: 0,
                r#match: of::Match::new(udp(5000)),
            },
        ))),
        Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::PortStats {
            port_no: 1,
        })),
    ];
    let mut connections = 0;
    let mut sent = 0;
    while sent < 3000 {
        let mut c = ScriptedController::accept(&listener, T).expect("the switch (re)connects");
        connections += 1;
        loop {
            // Half: a well-formed header of a random type with a random body. Half: a
            // valid message with a few bytes after its header changed, so that the
            // handlers (not only the decoder) see odd values. Framing stays intact.
            let frame = if next() % 2 == 0 {
                let body_len = (next() % 96) as usize;
                let mut frame = vec![4, (next() % 30) as u8];
                frame.extend(u16::try_from(8 + body_len).expect("len").to_be_bytes());
                frame.extend(next().to_be_bytes());
                frame.extend((0..body_len).map(|_| next() as u8));
                frame
            } else {
                let sample = &samples[next() as usize % samples.len()];
                let mut frame = sample.to_bytes(next()).expect("encode").to_vec();
                for _ in 0..=next() % 3 {
                    let at = 8 + next() as usize % (frame.len() - 8).max(1);
                    if let Some(b) = frame.get_mut(at) {
                        *b ^= 1 << (next() % 8);
                    }
                }
                frame
            };
            if frame[1] == 0 {
                continue; // a second HELLO is ignored anyway
            }
            sent += 1;
            if c.send_raw(&frame).is_err() || sent >= 3000 {
                break;
            }
            // Drain answers; a closed connection (connection-scoped error) reconnects.
            match c.recv(Duration::from_millis(1)) {
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if sent >= 3000 {
            // Still served, and the core is alive.
            let f = c
                .request(&Message::FeaturesRequest, T)
                .expect("features after the noise");
            assert!(matches!(f[..], [Message::FeaturesReply(_)]), "{f:?}");
        }
        c.close();
    }
    eprintln!("{sent} random messages over {connections} connections");
    let flows = agent.handle().dump_flows("vs1").expect("dump");
    eprintln!("{} flow entries left", flows.len());
    assert!(agent.handle().status().is_ok(), "the core is alive");
    drop(agent.shutdown().expect("shutdown"));
}

/// A flow stats request's counters for the entries matching `fields` (one expected).
fn counters(c: &mut ScriptedController, fields: Vec<OxmField>) -> (u64, u64) {
    let s = flow_stats(c, fields);
    assert_eq!(s.len(), 1, "{s:?}");
    (s[0].packet_count, s[0].byte_count)
}

/// Table 0's matched count (table stats).
fn table0_matched(c: &mut ScriptedController) -> u64 {
    match multipart(c, MultipartRequestBody::Table) {
        MultipartReplyBody::Table(t) => t[0].matched_count,
        other => panic!("{other:?}"),
    }
}

/// Deferred reclaim (the old version of a removing or modifying batch is reclaimed by
/// the core's tick, not inline): a modify keeps the entry's counters, also when the
/// stats request comes right behind it (before the old version is reclaimed) and after
/// more traffic; statistics never go down in between; RESET_COUNTS starts again; a
/// delete followed by a barrier has its FLOW_REMOVED, with the final counters, before
/// the BARRIER_REPLY; a delete without a barrier still gets its FLOW_REMOVED.
#[test]
fn deferred_reclaim_keeps_counters_and_barrier_order() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (agent, mut c, st) = start_with_l2("frdr");
    let rule = |dport: u16| {
        let mut fm = flow_mod(30, udp(dport), vec![out(3)]);
        fm.cookie = u64::from(dport);
        fm.flags = flow_mod_flags::SEND_FLOW_REM;
        fm
    };
    c.send_many(&[Message::FlowMod(rule(7200)), Message::FlowMod(rule(7201))])
        .expect("rules");
    c.barrier(T).expect("barrier");
    let h3 = st.host("h3").expect("h3").ip.addr;
    assert!(ping(&st, "h1", h3, 1));
    let frame = |payload: u64| 14 + 20 + 8 + payload;
    send_udp(&st, "h1", h3, 7200, 4, 50);
    send_udp(&st, "h1", h3, 7201, 3, 30);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counters(&mut c, udp(7200)), (4, 4 * frame(50)));
    let matched = table0_matched(&mut c);

    // Modify, and ask for the counters right behind it (no barrier: the core answers
    // before the 10 ms grace period of the modify's version is over, as a rule).
    let mut modify = rule(7200);
    modify.command = FlowModCommand::ModifyStrict;
    modify.instructions = vec![Instruction::ApplyActions(vec![out(3), out(1)])];
    c.send(&Message::FlowMod(modify.clone())).expect("modify");
    assert_eq!(
        counters(&mut c, udp(7200)),
        (4, 4 * frame(50)),
        "a modified entry keeps its counters, also before its old rule is reclaimed"
    );
    assert!(
        table0_matched(&mut c) >= matched,
        "table stats never go down"
    );
    // Several modifies in a row (each its own version, none reclaimed yet), traffic in
    // between: nothing lost, nothing counted twice.
    for k in 0..3 {
        c.send(&Message::FlowMod(modify.clone())).expect("modify");
        send_udp(&st, "h1", h3, 7200, 1, 50);
        std::thread::sleep(Duration::from_millis(if k == 0 { 1 } else { 50 }));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counters(&mut c, udp(7200)), (7, 7 * frame(50)));
    let matched2 = table0_matched(&mut c);
    assert!(matched2 >= matched + 3, "{matched2} after {matched}");

    // Delete one entry, then a barrier: the FLOW_REMOVED (final counters) comes first.
    let mut del = rule(7201);
    del.command = FlowModCommand::DeleteStrict;
    c.send(&Message::FlowMod(del)).expect("delete");
    let got = c.barrier(T).expect("barrier");
    let removed: Vec<&of::FlowRemoved> = got
        .iter()
        .filter_map(|(_, m)| match m {
            Message::FlowRemoved(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(
        removed.len(),
        1,
        "FLOW_REMOVED before BARRIER_REPLY: {got:?}"
    );
    assert_eq!(removed[0].reason, FlowRemovedReason::Delete.to_raw());
    assert_eq!(removed[0].cookie, 7201);
    assert_eq!(
        (removed[0].packet_count, removed[0].byte_count),
        (3, 3 * frame(30))
    );

    // Delete the modified one without a barrier: its FLOW_REMOVED comes by itself, with
    // every packet its rules ever counted.
    let mut del = rule(7200);
    del.command = FlowModCommand::DeleteStrict;
    c.send(&Message::FlowMod(del)).expect("delete");
    let got = c
        .recv_until(T, |_, m| matches!(m, Message::FlowRemoved(_)))
        .expect("flow removed without a barrier");
    let Some((_, Message::FlowRemoved(fr))) = got.last() else {
        unreachable!()
    };
    assert_eq!(fr.cookie, 7200);
    assert_eq!((fr.packet_count, fr.byte_count), (7, 7 * frame(50)));

    // RESET_COUNTS: counting starts again, also for what the old rule counted.
    c.send(&Message::FlowMod(rule(7202))).expect("rule");
    c.barrier(T).expect("barrier");
    send_udp(&st, "h1", h3, 7202, 2, 10);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counters(&mut c, udp(7202)), (2, 2 * frame(10)));
    let mut reset = rule(7202);
    reset.command = FlowModCommand::Modify;
    reset.flags = flow_mod_flags::RESET_COUNTS;
    c.send(&Message::FlowMod(reset)).expect("reset");
    assert_eq!(counters(&mut c, udp(7202)), (0, 0));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(counters(&mut c, udp(7202)), (0, 0), "and after the reclaim");
    send_udp(&st, "h1", h3, 7202, 1, 10);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counters(&mut c, udp(7202)), (1, frame(10)));
    c.close();
    drop(agent.shutdown().expect("shutdown"));
}

//! The standard lab of the transparency tests: s1 — s2 — s3; h1 and h2 on s1, h3 on
//! s2; vs1 spans s1 and s2 and migrates to s3 (which runs no copy before: a real
//! clone), moving h1 and h2 (from s1), then h3 (from s2). Its flows, rule sets and
//! schedule pieces.
#![allow(dead_code, reason = "each test file uses some of these")]
use std::time::Duration;

use lime_openflow::{self as of, Instruction, Message, OxmField, consts::port};
use lime_tests::transparency::{
    Control, Flow, MigrationPlan, Step, Workload, add_flow, aggregate_stats, flow_stats, host_mac,
    l2_forwarding, mark_rule, output, port_stats, table_stats,
};
use lime_userspace::migration::Strategy;

/// The scenarios' topology (the harness fills in `{lab}` and `{port}`).
pub fn topology() -> String {
    lime_tests::three_switch_toml("{lab}", &[("h1", "s1"), ("h2", "s1"), ("h3", "s2")])
        + r#"
[[vswitch]]
name = "vs1"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{port}"]
ports = [ { port = 1, host = "h1" }, { port = 2, host = "h2" }, { port = 3, host = "h3" } ]
"#
}

pub fn plan(strategy: Strategy) -> MigrationPlan {
    MigrationPlan {
        vswitch: "vs1".into(),
        to: "s3".into(),
        strategy,
    }
}

/// Every flow of these scenarios (a scenario uses some of them).
pub fn flows() -> Vec<Flow> {
    vec![
        Flow::new("h1", "h3", 7000),
        Flow::new("h3", "h1", 7001),
        Flow::new("h2", "h3", 7002),
        Flow::new("h3", "h2", 7003),
        Flow::new("h1", "h3", 7004).echoed_by(PONG),
        Flow::new("h3", "h1", 7005),
        Flow::new("h3", "h1", 7006),
        Flow::new("h1", "h3", 7007),
        Flow::new("h3", "h1", 7007),
        Flow::new("h2", "h3", 7008),
        Flow::new("h1", "h3", 7010),
        Flow::new("h2", "h1", 7010),
        Flow::new("h3", "h2", 7010),
        Flow::broadcast("h3", 7020),
        Flow::new("h2", "h1", 7021),
        Flow::broadcast("h2", 7022),
        Flow::broadcast("h3", 7023),
        Flow::new("h1", "h3", 7009),
        Flow::new("h3", "h1", 7009),
        Flow::new("h1", "h3", 7024),
        Flow::new("h1", "h3", 7011),
        Flow::new("h3", "h1", 7011),
    ]
}
pub const PING: usize = 4;
pub const PONG: usize = 5;
pub const IDLE_X: usize = 6;
pub const IDLE_Y: [usize; 2] = [7, 8];
pub const HARD_Z: usize = 9;
pub const TO_CONTROLLER: [usize; 3] = [10, 11, 12];
pub const BROADCAST: usize = 13;
pub const OUT_TO_H1: usize = 14;
pub const OUT_FLOOD: usize = 15;
pub const OUT_ALL: usize = 16;
pub const DELETED_W: [usize; 2] = [17, 18];
pub const OUT_TABLE: usize = 19;
pub const IDLE_V: [usize; 2] = [20, 21];

/// Table 0 marks (generation 1) and continues in table 1, whose scenario entries
/// continue in table 2 like its table-miss entry; table 2 forwards by destination MAC
/// and floods broadcasts.
pub fn base_rules() -> Vec<Message> {
    let mut m = vec![mark_rule(1, false), add_flow(1, 0, 0x100, vec![], goto(2))];
    m.extend(l2_forwarding(
        2,
        &[(host_mac(0), 1), (host_mac(1), 2), (host_mac(2), 3)],
    ));
    m.push(add_flow(
        2,
        5,
        0x1f,
        vec![OxmField::EthDst(of::Masked::exact([0xff; 6]))],
        output(port::FLOOD),
    ));
    m
}

pub fn goto(table: u8) -> Vec<Instruction> {
    vec![Instruction::GotoTable { table_id: table }]
}

pub fn stats_polls() -> Vec<Step> {
    [flow_stats(), aggregate_stats(), table_stats(), port_stats()]
        .into_iter()
        .map(Step::Request)
        .collect()
}

pub fn traffic_round(n: u32) -> Vec<Step> {
    let mut s: Vec<Step> = (0..4)
        .map(|flow| Step::Packets { flow, count: n })
        .collect();
    s.push(Step::Settle);
    s
}

pub fn workload(lab: &str, steps: Vec<Step>) -> Workload {
    Workload {
        lab: lab.into(),
        topology: topology(),
        vswitch: "vs1".into(),
        flows: flows(),
        steps,
        control: Control::Scripted,
    }
}

/// The controller rewrites the mark (one MODIFY_STRICT) every `every`, `count` times,
/// starting at generation `from`.
pub fn churn(from: u16, count: u16, every: Duration) -> Vec<Step> {
    (from..from + count)
        .flat_map(|k| [Step::Send(mark_rule(k, true)), Step::Sleep(every)])
        .collect()
}

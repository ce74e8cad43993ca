//! Transparency of an ensemble's migration (issue #4): two virtual switches joined by a
//! virtual link, with four hosts, migrate together (one after the other, as
//! `lime migrate vs1 vs2 --to s3`) under traffic, within each virtual switch and across
//! the link, and nothing the controller or the hosts observe differs from a run without
//! migration — except what a host misses while it is re-attached; nothing crossing the
//! virtual link is lost while its ends move (make-before-break).
//!
//! The lab: s1 — s2 — s3; vs1 with h1, h2 on s1, vs2 with h3, h4 on s2, the virtual
//! link vs1:5 (on s1) — vs2:5 (on s2). vs1 is the scripted controller's; vs2 is
//! programmed by the harness (static L2 forwarding, see `lime_tests::transparency`).
//! Everything migrates to s3, which runs no copy of either before.
use std::time::Duration;

use lime_openflow::{self as of, Message, OxmField, consts::port};
use lime_tests::{
    kernel_lock, require_root,
    transparency::{
        Control, Flow, MigrationPlan, Step, Workload, add_flow, aggregate_stats, check, flow_stats,
        host_mac, l2_forwarding, mark_rule, output, port_stats, table_stats,
    },
};
use lime_userspace::migration::Strategy;

/// The workload's topology (the harness fills in `{lab}`, `{port}` and `{peer}`).
fn topology() -> String {
    lime_tests::three_switch_toml(
        "{lab}",
        &[("h1", "s1"), ("h2", "s1"), ("h3", "s2"), ("h4", "s2")],
    ) + VSWITCHES
}

const VSWITCHES: &str = r#"
[[vswitch]]
name = "vs1"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{port}"]
ports = [ { port = 1, host = "h1" }, { port = 2, host = "h2" } ]
[[vswitch]]
name = "vs2"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{peer}"]
ports = [ { port = 1, host = "h3" }, { port = 2, host = "h4" } ]
[[vlink]]
a = { vswitch = "vs1", port = 5 }
b = { vswitch = "vs2", port = 5 }
"#;

/// The link's virtual port on both virtual switches.
const LINK: u32 = 5;

fn flows() -> Vec<Flow> {
    vec![
        Flow::new("h1", "h3", 7000),
        Flow::new("h3", "h1", 7001),
        Flow::new("h2", "h4", 7002),
        Flow::new("h4", "h2", 7003),
        Flow::new("h1", "h2", 7004),
        Flow::new("h3", "h4", 7005),
        Flow::broadcast("h1", 7006),
    ]
}

/// vs1: table 0 marks (generation 1) and continues in table 1, which forwards by
/// destination MAC (h3 and h4 out of the link) and floods broadcasts.
fn vs1_rules() -> Vec<Message> {
    let mut m = vec![mark_rule(1, false)];
    m.extend(l2_forwarding(
        1,
        &[
            (host_mac(0), 1),
            (host_mac(1), 2),
            (host_mac(2), LINK),
            (host_mac(3), LINK),
        ],
    ));
    m.push(add_flow(
        1,
        5,
        0x1f,
        vec![OxmField::EthDst(of::Masked::exact([0xff; 6]))],
        output(port::FLOOD),
    ));
    m
}

fn round(n: u32) -> Vec<Step> {
    let mut s: Vec<Step> = (0..7)
        .map(|flow| Step::Packets { flow, count: n })
        .collect();
    s.push(Step::Settle);
    s.extend(
        [flow_stats(), aggregate_stats(), table_stats(), port_stats()]
            .into_iter()
            .map(Step::Request),
    );
    s
}

fn workload(lab: &str) -> Workload {
    let mut steps = vec![Step::SendMany(vs1_rules()), Step::Barrier];
    steps.extend(round(10));
    // Both directions across the link and inside each virtual switch, through the
    // whole migration.
    steps.extend((0..6).map(|flow| Step::Stream {
        flow,
        count: 1500,
        gap: Duration::from_millis(1),
    }));
    steps.extend([
        Step::Sleep(Duration::from_millis(50)),
        Step::MigrateStart,
        Step::MigrateJoin,
        Step::Join,
        Step::Settle,
    ]);
    steps.extend(round(10));
    Workload {
        lab: lab.into(),
        topology: topology(),
        vswitch: "vs1".into(),
        flows: flows(),
        steps,
        control: Control::Scripted,
    }
}

#[test]
fn migrating_an_ensemble_joined_by_a_virtual_link_is_transparent() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let plan = MigrationPlan {
        vswitch: "vs1,vs2".into(),
        to: "s3".into(),
        strategy: Strategy::Clone,
    };
    let (_, b, v) = check(&workload("tvl5"), &plan);
    let legs: Vec<(&str, &str)> = b
        .reports
        .iter()
        .map(|r| (r.vswitch.as_str(), r.from.as_str()))
        .collect();
    assert_eq!(legs, [("vs1", "s1"), ("vs2", "s2")], "{:?}", b.reports);
    assert_eq!(b.windows.len(), 4, "every host moved: {:?}", b.windows);
    for r in &b.reports {
        assert_eq!(
            r.links.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            [LINK],
            "{}'s link end moved with it",
            r.vswitch
        );
    }
    eprintln!("{v}");
    v.assert_transparent();
}

/// The checker can fail here: with the naive `move` strategy the frozen copies drop
/// what enters them, across the link too, and the diff says so.
#[test]
fn the_checker_reports_what_move_loses_in_an_ensemble() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let plan = MigrationPlan {
        vswitch: "vs1,vs2".into(),
        to: "s3".into(),
        strategy: Strategy::Move,
    };
    let (_, _, v) = check(&workload("tvl6"), &plan);
    let text = v.to_string();
    assert!(
        text.contains("lost by the migration"),
        "move loses packets while the copies are frozen:\n{text}"
    );
}

//! Transparency with a real controller: os-ken 3.1.1 running the repository's learning
//! switch (`controller/lime_learning_switch.py`) drives vs1 of the standard lab. It
//! learns from packet-ins (the first packet of each flow is flooded by PACKET_OUT), then
//! installs `in_port, eth_dst → output` entries. The workload runs without and with a
//! `clone` migration while a stream flows; the hosts must receive the same packets
//! (flooded ones included) and the flow table os-ken built must be the same, with the
//! same counters.
use std::time::Duration;

use lime_tests::{
    kernel_lock, require_root,
    transparency::{Control, Flow, Step, Workload, check},
};
use lime_userspace::migration::Strategy;

mod transparency_lab;
use transparency_lab::{plan, topology};

#[test]
fn the_learning_switch_sees_one_switch() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let flows = vec![
        Flow::new("h1", "h3", 7100),
        Flow::new("h3", "h1", 7101),
        Flow::new("h2", "h1", 7102),
        Flow::new("h1", "h2", 7103),
        Flow::new("h3", "h2", 7104),
        Flow::new("h2", "h3", 7105),
    ];
    // Learning first, one packet at a time (what is flooded depends on what was learned).
    let mut steps: Vec<Step> = [0, 1, 0, 2, 3, 4, 5]
        .into_iter()
        .flat_map(|flow| [Step::Packets { flow, count: 1 }, Step::Settle])
        .collect();
    let bulk = |n| {
        let mut s: Vec<Step> = (0..6)
            .map(|flow| Step::Packets { flow, count: n })
            .collect();
        s.push(Step::Settle);
        s
    };
    steps.extend(bulk(20));
    steps.extend([
        Step::Stream {
            flow: 1,
            count: 300,
            gap: Duration::from_millis(2),
        },
        Step::Sleep(Duration::from_millis(30)),
        Step::MigrateStart,
        Step::MigrateJoin,
        Step::Join,
        Step::Settle,
    ]);
    steps.extend(bulk(20));
    let w = Workload {
        lab: "ttos".into(),
        topology: topology(),
        vswitch: "vs1".into(),
        flows,
        steps,
        control: Control::OsKen,
    };
    let (a, _, v) = check(&w, &plan(Strategy::Clone));
    assert!(
        a.final_table.len() >= 7,
        "os-ken learned the flows: {:#?}",
        a.final_table
    );
    v.assert_transparent();
}

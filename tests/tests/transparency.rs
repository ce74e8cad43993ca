//! Transparency (issue #4): each workload runs twice on a real fabric, without and with
//! a migration in the middle, and everything the controller and the hosts observed is
//! compared (see `lime_tests::transparency` for what is compared and what is
//! normalized). The standard lab: s1 — s2 — s3; h1 and h2 on s1, h3 on s2; vs1 spans
//! s1 and s2 and migrates to s3 (which runs no copy before: a real clone), moving h1
//! and h2 (from s1), then h3 (from s2).
use std::time::Duration;

use lime_openflow::{Message, consts::port};
use lime_tests::{
    kernel_lock, require_root,
    transparency::{Step, Workload, add_flow, check, compare, flow_stats, output, run, udp},
};
use lime_userspace::migration::Strategy;

mod transparency_lab;
use transparency_lab::*;

/// Traffic before and after a migration during which everything is quiet.
fn quiet_workload(lab: &str, rules: Vec<Message>) -> Workload {
    let mut steps = vec![Step::SendMany(rules), Step::Barrier];
    steps.extend(traffic_round(30));
    steps.extend(stats_polls());
    steps.extend([Step::MigrateStart, Step::MigrateJoin]);
    steps.extend(stats_polls());
    steps.extend(traffic_round(30));
    steps.extend(stats_polls());
    workload(lab, steps)
}

#[test]
fn a_quiet_migration_is_transparent() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (_, b, v) = check(
        &quiet_workload("ttr1", base_rules()),
        &plan(Strategy::Clone),
    );
    assert_eq!(b.reports.len(), 2, "{:?}", b.reports);
    assert_eq!(b.windows.len(), 3, "every host moved: {:?}", b.windows);
    v.assert_transparent();
}

/// The checker can fail: the same workload with one flow-mod missing (h1's forwarding
/// entry) is not equivalent, and the diff says what differs.
#[test]
fn the_checker_reports_a_dropped_flow_mod() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let full = quiet_workload("ttr2", base_rules());
    let mut rules = base_rules();
    rules.remove(2);
    let short = quiet_workload("ttr2", rules);
    let a = run(&full, None);
    let b = run(&short, Some(&plan(Strategy::Clone)));
    let v = compare(&a, &b);
    eprintln!("{v}");
    assert!(
        !v.differences.is_empty(),
        "a dropped flow-mod went unnoticed"
    );
    let text = v.to_string();
    assert!(
        text.contains("flow 1 to h1: 30 packets lost by the migration")
            || text.contains("flow 1 to h1: 60 packets lost by the migration"),
        "the diff names the packets h1 never got:\n{text}"
    );
    assert!(
        text.contains("- reply to step"),
        "the stats replies differ too:\n{text}"
    );
}

/// With `move`, h2 keeps sending while the migration runs: the source copy is frozen
/// while h1 moves, so h2's packets are lost outside h2's own re-attachment, and the
/// checker reports them (with `clone` the same schedule is transparent).
fn streaming_workload(lab: &str) -> Workload {
    let mut steps = vec![Step::SendMany(base_rules()), Step::Barrier];
    steps.extend(traffic_round(10));
    steps.extend([
        Step::Stream {
            flow: 2,
            count: 600,
            gap: Duration::from_micros(500),
        },
        Step::Sleep(Duration::from_millis(50)),
        Step::MigrateStart,
        Step::MigrateJoin,
        Step::Join,
        Step::Settle,
    ]);
    steps.extend(traffic_round(10));
    steps.extend(stats_polls());
    workload(lab, steps)
}

#[test]
fn the_checker_reports_what_move_loses() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (_, b, v) = check(&streaming_workload("ttr3"), &plan(Strategy::Move));
    assert!(b.reports.iter().all(|r| r.strategy == Strategy::Move));
    let text = v.to_string();
    assert!(
        text.contains("flow 2 to h3:") && text.contains("lost by the migration"),
        "move loses h2's packets while s1 is frozen, and the checker says so:\n{text}"
    );
}

/// A controller that rewrites the rules every millisecond before, while and after the
/// migration runs, with traffic between hosts on different copies: every packet is
/// processed by one rule set, none by an older one than its host saw before, and the
/// end state (marks, counters) is the one without migration.
#[test]
fn flow_mod_churn_during_migration_is_transparent() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut steps = vec![Step::SendMany(base_rules()), Step::Barrier];
    steps.extend(traffic_round(10));
    for flow in [1, 2] {
        steps.push(Step::Stream {
            flow,
            count: 500,
            gap: Duration::from_millis(1),
        });
    }
    steps.extend(churn(2, 100, Duration::from_millis(1)));
    steps.push(Step::MigrateStart);
    steps.extend(churn(102, 200, Duration::from_millis(1)));
    steps.extend([Step::MigrateJoin, Step::Join, Step::Settle]);
    steps.extend(traffic_round(10));
    steps.extend(stats_polls());
    let (_, b, v) = check(&workload("ttr4", steps), &plan(Strategy::Clone));
    let marks: std::collections::BTreeSet<u16> = b.arrivals.iter().map(|a| a.mark).collect();
    assert!(
        marks.len() > 10,
        "the churn overlapped the traffic: {marks:?}"
    );
    v.assert_transparent();
}

/// Timeouts across copies (the migration starts at 2.2 s and takes about 1.4 s):
/// - V (idle 1 s) is hit by h1 at 0.15 and 1.35 s and by h3 at 0.75 and 1.95 s, while
///   h1 and h3 are on different copies: idle on each copy alone, never on the virtual
///   switch until about 2.95 s (during the migration);
/// - X (idle 1 s) is hit every 100 ms by h3 until 5 s: it must not expire while the
///   migration runs;
/// - Y (idle 3 s), hit from both h1's and h3's copies at the start, expires while the
///   migration runs, once, with both copies' counts;
/// - Z (hard 4 s) expires 4 s after its install, not 4 s after the clone (the live flow
///   stats at 4.5 s show it gone);
/// - W, hit from both copies and deleted while the migration runs, is reported once
///   with every copy's counts.
#[test]
fn timeouts_expire_as_on_one_switch() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let timed = |cookie: u64, dport: u16, idle: u16, hard: u16| {
        let mut m = add_flow(1, 20, cookie, udp(dport), goto(2));
        if let Message::FlowMod(fm) = &mut m {
            fm.idle_timeout = idle;
            fm.hard_timeout = hard;
            fm.flags = 1; // SEND_FLOW_REM
        }
        m
    };
    let mut rules = base_rules();
    rules.extend([
        timed(0xa, 7006, 1, 0),
        timed(0xb, 7007, 3, 0),
        timed(0xc, 7008, 0, 4),
        timed(0xd, 7009, 0, 0),
        timed(0xe, 7011, 1, 0),
    ]);
    let mut delete_w = timed(0xd, 7009, 0, 0);
    if let Message::FlowMod(fm) = &mut delete_w {
        fm.command = lime_openflow::consts::FlowModCommand::DeleteStrict;
    }
    let at = Duration::from_millis;
    let mut steps = vec![Step::SendMany(rules), Step::Barrier];
    steps.extend(IDLE_Y.map(|flow| Step::Packets { flow, count: 5 }));
    steps.extend(DELETED_W.map(|flow| Step::Packets { flow, count: 4 }));
    steps.extend([
        Step::Packets {
            flow: HARD_Z,
            count: 5,
        },
        Step::At(at(150)),
        Step::Stream {
            flow: IDLE_X,
            count: 49,
            gap: at(100),
        },
        Step::Stream {
            flow: IDLE_V[0],
            count: 2,
            gap: at(1200),
        },
        Step::At(at(750)),
        Step::Stream {
            flow: IDLE_V[1],
            count: 2,
            gap: at(1200),
        },
        Step::At(at(2200)),
        Step::MigrateStart,
        Step::Send(delete_w),
        Step::MigrateJoin,
        Step::At(at(4500)),
        Step::Request(flow_stats()),
        Step::Join,
        Step::At(at(6500)),
        Step::Settle,
        Step::Request(flow_stats()),
    ]);
    let (a, _, v) = check(&workload("ttr5", steps), &plan(Strategy::Clone));
    assert_eq!(
        a.flow_removed.len(),
        5,
        "V, X, Y and Z expired, W was deleted: {:?}",
        a.flow_removed
    );
    v.assert_transparent();
}

/// CONTROLLER actions hit on every copy while they run side by side: exactly one
/// packet-in per packet, with the virtual in_port of its sender.
#[test]
fn packet_ins_come_once_from_every_copy() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut rules = base_rules();
    rules.push(add_flow(1, 30, 0x7010, udp(7010), output(port::CONTROLLER)));
    let mut steps = vec![Step::SendMany(rules), Step::Barrier];
    steps.extend(TO_CONTROLLER.map(|flow| Step::Packets { flow, count: 5 }));
    steps.push(Step::Settle);
    steps.extend(TO_CONTROLLER.map(|flow| Step::Stream {
        flow,
        count: 150,
        gap: Duration::from_millis(3),
    }));
    steps.extend([
        Step::Sleep(Duration::from_millis(30)),
        Step::MigrateStart,
        Step::MigrateJoin,
        Step::Join,
        Step::Settle,
    ]);
    steps.extend(TO_CONTROLLER.map(|flow| Step::Packets { flow, count: 5 }));
    steps.push(Step::Settle);
    steps.extend(stats_polls());
    let (a, _, v) = check(&workload("ttr6", steps), &plan(Strategy::Clone));
    assert_eq!(a.packet_ins.len(), 3 * 160, "one packet-in per packet");
    v.assert_transparent();
}

/// Statistics polled while the migration runs (and traffic flows): flow, aggregate,
/// port and table counters never go down, and once traffic stopped they are the ones
/// of the run without migration.
#[test]
fn statistics_never_go_backwards() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut steps = vec![Step::SendMany(base_rules()), Step::Barrier];
    steps.extend(traffic_round(10));
    for flow in [1, 2] {
        steps.push(Step::Stream {
            flow,
            count: 400,
            gap: Duration::from_millis(2),
        });
    }
    let polls = |n: usize| {
        (0..n).flat_map(|_| {
            let mut s = stats_polls();
            s.push(Step::Sleep(Duration::from_millis(20)));
            s
        })
    };
    steps.extend(polls(3));
    steps.push(Step::MigrateStart);
    steps.extend(polls(6));
    steps.push(Step::MigrateJoin);
    steps.extend(polls(3));
    steps.extend([Step::Join, Step::Settle]);
    steps.extend(stats_polls());
    let (_, _, v) = check(&workload("ttr7", steps), &plan(Strategy::Clone));
    v.assert_transparent();
}

/// PACKET_OUT to a port whose host moved reaches it where it lives now; PACKET_OUT to
/// FLOOD and ALL, and a datapath FLOOD while the copies run side by side, reach every
/// other virtual port once; PACKET_OUT to TABLE from a moved port's in_port runs the
/// tables (and gets marked) where that port lives.
#[test]
fn packet_out_and_flood_reach_every_port_once() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let outs = || {
        vec![
            Step::PacketOut {
                flow: OUT_TO_H1,
                in_port: port::CONTROLLER,
                out: 1,
            },
            Step::PacketOut {
                flow: OUT_FLOOD,
                in_port: port::CONTROLLER,
                out: port::FLOOD,
            },
            Step::PacketOut {
                flow: OUT_ALL,
                in_port: 3,
                out: port::ALL,
            },
            Step::PacketOut {
                flow: OUT_TABLE,
                in_port: 1,
                out: port::TABLE,
            },
        ]
    };
    let mut steps = vec![Step::SendMany(base_rules()), Step::Barrier];
    for _ in 0..5 {
        steps.extend(outs());
    }
    steps.extend([
        Step::Packets {
            flow: BROADCAST,
            count: 5,
        },
        Step::Settle,
        Step::Stream {
            flow: BROADCAST,
            count: 200,
            gap: Duration::from_millis(2),
        },
        Step::MigrateStart,
    ]);
    for _ in 0..5 {
        steps.extend(outs());
        steps.push(Step::Sleep(Duration::from_millis(20)));
    }
    steps.extend([Step::MigrateJoin, Step::Join, Step::Settle]);
    for _ in 0..5 {
        steps.extend(outs());
    }
    steps.push(Step::Settle);
    steps.extend(stats_polls());
    let (a, _, v) = check(&workload("ttr8", steps), &plan(Strategy::Clone));
    let to = |flow: u16, host: usize| {
        a.arrivals
            .iter()
            .filter(|x| x.flow == flow && x.host == host)
            .count()
    };
    assert_eq!(
        [OUT_TO_H1, OUT_FLOOD, OUT_ALL, OUT_TABLE].map(|f| [0, 1, 2].map(|h| to(f as u16, h))),
        [[15, 0, 0], [15, 15, 15], [15, 15, 0], [0, 0, 15]],
        "packet-outs reach (h1, h2, h3)"
    );
    v.assert_transparent();
}

/// Ping-pong between h1 and h3 (on different copies until both moved) while the rule
/// set changes every 2 ms: no reply is processed by an older rule set than its request,
/// no request by an older one than the reply before it.
#[test]
fn ping_pong_chains_keep_causality() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut steps = vec![Step::SendMany(base_rules()), Step::Barrier];
    steps.extend(traffic_round(5));
    steps.push(Step::PingPong {
        flow: PING,
        reply: PONG,
        count: 600,
    });
    steps.extend(churn(2, 60, Duration::from_millis(2)));
    steps.push(Step::MigrateStart);
    steps.extend(churn(62, 150, Duration::from_millis(2)));
    steps.extend([Step::MigrateJoin]);
    steps.extend(churn(212, 60, Duration::from_millis(2)));
    steps.extend([Step::Join, Step::Settle]);
    steps.extend(traffic_round(5));
    steps.extend(stats_polls());
    let (a, b, v) = check(&workload("ttr9", steps), &plan(Strategy::Clone));
    for o in [&a, &b] {
        let pongs = o
            .arrivals
            .iter()
            .filter(|x| usize::from(x.flow) == PONG)
            .count();
        assert!(
            pongs > 300,
            "[{}] the ping-pong ran ({pongs} replies)",
            o.label
        );
    }
    v.assert_transparent();
}

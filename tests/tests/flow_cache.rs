//! The flow cache remembers complete decisions (the egress a chain resolved); they must
//! never outlive a change of where the virtual port lives, and must keep counting. The
//! tunnel's receiving side remembers where virtual ports live too (`VPORT_CACHE`), with
//! the same rule.
use std::net::Ipv4Addr;

use lime_common::port::{PortInfo, VportInfo, kind, location};
use lime_tests::{
    Emitted, TestDatapath, VSW, allowed_cpus, kernel_lock, on_cpu, require_root, tc, udp_match, xdp,
};
use lime_userspace::{
    datapath::DatapathMode,
    flow::{Action, Instructions, Rule},
    packet::Packet,
};

const OUT: u32 = 3;

fn remote(outer_dst_last: u8) -> VportInfo {
    VportInfo {
        location: location::REMOTE,
        _pad: [0; 3],
        ifindex: 1,
        outer_src: [2, 0xee, 0, 0, 0, 1],
        outer_dst: [2, 0xee, 0, 0, 0, outer_dst_last],
    }
}

/// Install the tests' one rule (UDP to port 5000 out to [`OUT`]): its id, and a frame
/// it matches.
fn one_rule(t: &mut TestDatapath) -> (Vec<u32>, Vec<u8>) {
    let ids =
        t.dp.install(
            VSW,
            &[Rule::new(
                0,
                10,
                udp_match(Some(5000)),
                Instructions::apply(vec![Action::output(OUT)]),
            )],
        )
        .expect("install");
    let frame = Packet::udp4(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        4000,
        5000,
    )
    .to_bytes();
    (ids, frame)
}

/// Run `frame` once on `cpu` through the test datapath's entry point (`lime_xdp`, or
/// `lime_tc` in TC mode): what came out and the outer destination MAC.
fn run_on(t: &TestDatapath, cpu: usize, frame: &[u8]) -> (Emitted, [u8; 6]) {
    on_cpu(cpu, || {
        let k = t.dp.kernel();
        let (r, verdict) = match t.mode {
            DatapathMode::Xdp => {
                let r = k
                    .test_run(lime_common::names::PROG_XDP, frame, 1)
                    .expect("test_run");
                let v = r.verdict;
                (r, v)
            }
            DatapathMode::Tc => {
                let r = k.test_run_tc(frame).expect("test_run of lime_tc");
                let v = match r.verdict {
                    tc::REDIRECT => xdp::REDIRECT,
                    tc::SHOT => xdp::DROP,
                    other => 100 + other,
                };
                (r, v)
            }
        };
        let mut dst = [0; 6];
        dst.copy_from_slice(&r.frame[..6]);
        (lime_tests::decode(verdict, &r.frame), dst)
    })
}

#[test]
fn cached_egress_follows_the_virtual_port_when_it_moves() {
    cached_egress_follows(DatapathMode::Xdp);
}

/// In TC mode the host port's `lime_tc` uses the same cache.
#[test]
fn cached_egress_follows_the_virtual_port_when_it_moves_tc() {
    cached_egress_follows(DatapathMode::Tc);
}

fn cached_egress_follows(mode: DatapathMode) {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut t = TestDatapath::with_mode("fcache", mode);
    let (ids, frame) = one_rule(&mut t);
    let cpu = allowed_cpus()[0];
    let mut runs = 0;
    let mut expect = |t: &TestDatapath, want_local: bool, outer_last: u8, what: &str| {
        // Twice: the first run may fill the cache, the second is answered by it.
        for pass in ["first", "second (cached)"] {
            let (got, outer) = run_on(t, cpu, &frame);
            runs += 1;
            match got {
                Emitted::Local { frame: out } if want_local => {
                    assert_eq!(out, frame, "{what}, {pass}: frame changed");
                }
                Emitted::Remote {
                    port, frame: inner, ..
                } if !want_local => {
                    assert_eq!(port, OUT, "{what}, {pass}: tunnel out_port");
                    assert_eq!(inner, frame, "{what}, {pass}: inner frame");
                    assert_eq!(
                        outer,
                        [2, 0xee, 0, 0, 0, outer_last],
                        "{what}, {pass}: sent towards the old place"
                    );
                }
                other => panic!("{what}, {pass}: unexpected {other:?}"),
            }
        }
    };
    // Port 3 starts remote (outer MAC ...:02, as the fixture datapath maps it).
    expect(&t, false, 2, "remote");
    t.dp.set_vport(VSW, OUT, remote(9)).expect("move");
    expect(&t, false, 9, "moved to another physical switch");
    let local = VportInfo {
        location: location::LOCAL,
        ..VportInfo::default()
    };
    t.dp.set_vport(
        VSW,
        OUT,
        VportInfo {
            ifindex: 1,
            ..local
        },
    )
    .expect("move");
    expect(&t, true, 0, "moved here");
    t.dp.set_vport(VSW, OUT, remote(2)).expect("move back");
    expect(&t, false, 2, "moved away again");
    assert_eq!(
        t.dp.rule_stats(ids[0]).expect("stats").packets,
        runs,
        "every run, cached or not, counted once"
    );
}

/// The decision the cache remembers for `rule` on `cpu`: whether it is complete (the
/// fast path) and the egress it remembers.
fn remembered(t: &TestDatapath, cpu: usize, rule: u32) -> (bool, VportInfo) {
    let slots =
        t.dp.kernel()
            .flow_cache(cpu)
            .expect("reading the flow cache");
    let mut of_rule = slots
        .iter()
        .filter(|(_, s)| s.entry.len == 1 && s.entry.rules[0] == rule);
    let (_, s) = of_rule.next().expect("the frame's decision is cached");
    assert!(of_rule.next().is_none(), "one slot for one frame");
    (s.entry.fast != 0, s.entry.egress)
}

#[test]
fn a_cached_decision_is_completed_again_after_the_ports_change() {
    completed_again(DatapathMode::Xdp);
}

#[test]
fn a_cached_decision_is_completed_again_after_the_ports_change_tc() {
    completed_again(DatapathMode::Tc);
}

fn completed_again(mode: DatapathMode) {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut t = TestDatapath::with_mode("fcfast", mode);
    let (ids, frame) = one_rule(&mut t);
    let cpu = allowed_cpus()[0];
    run_on(&t, cpu, &frame);
    let (fast, egress) = remembered(&t, cpu, ids[0]);
    assert!(
        fast,
        "a fill remembers the egress of a single unchanged output"
    );
    assert_eq!(egress.outer_dst[5], 2);
    // Any change of the virtual ports makes every remembered egress stale: the next hit
    // runs the cached chain, and must remember the egress again.
    t.dp.set_vport(VSW, OUT, remote(9)).expect("move");
    let (got, outer) = run_on(&t, cpu, &frame);
    assert!(matches!(got, Emitted::Remote { port: OUT, .. }), "{got:?}");
    assert_eq!(outer[5], 9, "sent to the port's new place");
    let (fast, egress) = remembered(&t, cpu, ids[0]);
    assert!(
        fast,
        "the hit after the change completed the decision again"
    );
    assert_eq!(egress, remote(9), "with the port's new place");
    let (_, outer) = run_on(&t, cpu, &frame);
    assert_eq!(outer[5], 9);
    assert_eq!(
        t.dp.rule_stats(ids[0]).expect("stats").packets,
        3,
        "every run counted once"
    );
}

#[test]
fn a_tunnelled_frame_follows_its_port_when_it_moves_here() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut t = TestDatapath::new("fcdecap");
    let (_, frame) = one_rule(&mut t);
    let cpu = allowed_cpus()[0];
    // The frame as this switch tunnels it towards port 3 (remote)...
    let tunnelled = on_cpu(cpu, || {
        t.dp.kernel()
            .test_run(lime_common::names::PROG_XDP, &frame, 1)
            .expect("test_run")
            .frame
    });
    assert!(tunnelled.len() > frame.len(), "encapsulated");
    // ...arriving on an underlay port (loopback made one) of the switch port 3 moved to.
    t.dp.kernel_mut()
        .set_port(
            1,
            PortInfo {
                kind: kind::UNDERLAY,
                flags: 0,
                vswitch: 0,
                vport: 0,
            },
        )
        .expect("port map");
    let local = |ifindex| VportInfo {
        location: location::LOCAL,
        ifindex,
        ..VportInfo::default()
    };
    let tx = |t: &TestDatapath, ifindex| t.dp.port_stats(ifindex).expect("stats").tx_packets;
    for (ifindex, what) in [(5, "first place"), (6, "moved"), (5, "moved back")] {
        t.dp.set_vport(VSW, OUT, local(ifindex)).expect("move");
        let before = tx(&t, ifindex);
        for pass in ["first", "second"] {
            let r = on_cpu(cpu, || {
                t.dp.kernel()
                    .test_run(lime_common::names::PROG_XDP, &tunnelled, 1)
                    .expect("test_run")
            });
            assert_eq!(r.verdict, 4, "{what}, {pass}: redirected");
            assert_eq!(r.frame, frame, "{what}, {pass}: decapsulated");
        }
        assert_eq!(
            tx(&t, ifindex) - before,
            2,
            "{what}: both sent to ifindex {ifindex}"
        );
    }
}

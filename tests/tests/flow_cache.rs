//! The flow cache remembers complete decisions (the egress a chain resolved); they must
//! never outlive a change of where the virtual port lives, and must keep counting.
use std::net::Ipv4Addr;

use lime_common::port::{VportInfo, location};
use lime_tests::{
    Emitted, TestDatapath, VSW, allowed_cpus, kernel_lock, on_cpu, require_root, udp_match,
};
use lime_userspace::{
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

/// Run `frame` once on `cpu`: what came out and the outer destination MAC.
fn run_on(t: &TestDatapath, cpu: usize, frame: &[u8]) -> (Emitted, [u8; 6]) {
    on_cpu(cpu, || {
        let r =
            t.dp.kernel()
                .test_run(lime_common::names::PROG_XDP, frame, 1)
                .expect("test_run");
        let mut dst = [0; 6];
        dst.copy_from_slice(&r.frame[..6]);
        (lime_tests::decode(r.verdict, &r.frame), dst)
    })
}

#[test]
fn cached_egress_follows_the_virtual_port_when_it_moves() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut t = TestDatapath::new("fcache");
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

//! A restarted control plane re-attaches to the running datapath through its pinned maps:
//! traffic is not interrupted, counters continue, and rules can be changed afterwards.
use std::{
    net::UdpSocket,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use lime_tests::{
    fabric_pin_root, kernel_lock, l2_rules, require_root, two_switch_topology, udp_match,
};
use lime_userspace::{
    fabric::Fabric,
    flow::{Action, Instructions, Rule},
};

fn udp_rule(dport: u16) -> Rule {
    Rule::new(
        0,
        100,
        udp_match(Some(dport)),
        Instructions::apply(vec![Action::output(3)]),
    )
}

fn receiver(f: &Fabric, port: u16) -> std::thread::JoinHandle<u64> {
    let dst = f.lab().state().host("h3").expect("h3").ip.addr;
    let s = f
        .lab()
        .run_in("h3", move || {
            let s = UdpSocket::bind((dst, port)).expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            s
        })
        .expect("receiver");
    std::thread::spawn(move || {
        let mut n = 0;
        let mut buf = [0u8; 64];
        while s.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    })
}

#[test]
fn restart_under_traffic_loses_nothing_and_keeps_counting() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let topo = two_switch_topology("trestart");
    let mut f = Fabric::up(&topo, &fabric_pin_root()).expect("fabric");
    let l2 = l2_rules(f.lab().state(), "vs1");
    f.install("vs1", &l2).expect("l2");
    let counted = f.install("vs1", &[udp_rule(7100)]).expect("rule");
    let dst = f.lab().state().host("h3").expect("h3").ip.addr;
    assert!(
        f.lab()
            .exec("h1", &["ping", "-c", "1", "-W", "1", &dst.to_string()])
            .expect("ping")
            .status
            .success()
    );
    let version_before = f.datapath("s1").expect("s1").version(1);

    // The stream lasts at least N datagrams and at least RESTARTS restarts of both
    // switches, however slow a busy machine makes either.
    const N: u64 = 20_000;
    const RESTARTS: u32 = 3;
    let rx = receiver(&f, 7100);
    let h1_ns = f.lab().state().netns("h1").expect("ns");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            lime_lab::netns::run_in_netns(&h1_ns, move || {
                let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
                let mut i: u64 = 0;
                while i < N || !stop.load(Ordering::Relaxed) {
                    s.send_to(&i.to_be_bytes(), (dst, 7100)).expect("send");
                    i += 1;
                    sent.store(i, Ordering::Relaxed);
                    if i.is_multiple_of(10) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                i
            })
            .expect("sender")
        })
    };
    let mut restarts = 0;
    while restarts < RESTARTS || sent.load(Ordering::Relaxed) < N / 2 {
        f.reopen_datapath("s1").expect("reopen s1");
        f.reopen_datapath("s2").expect("reopen s2");
        restarts += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let n = sender.join().expect("sender");
    let got = rx.join().expect("receiver");
    eprintln!("{restarts} restarts of both switches during a stream of {n} datagrams");
    assert_eq!(
        got,
        n,
        "every datagram arrived across {restarts} restarts\n{}",
        lime_tests::diagnostics(&f)
    );
    assert_eq!(
        f.rule_stats(&counted[0]).expect("stats").packets,
        n,
        "counters continued"
    );
    assert_eq!(
        f.datapath("s1").expect("s1").version(1),
        version_before,
        "version read back"
    );

    // The rebuilt control plane manages rules: add one, remove the old one.
    let rx = receiver(&f, 7101);
    let (added, finals) = f
        .update("vs1", &counted, &[udp_rule(7101)])
        .expect("update after restart");
    assert_eq!(finals[0].packets, n, "final counters of the removed rule");
    f.lab()
        .run_in("h1", move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            for _ in 0..10 {
                s.send_to(b"x", (dst, 7101)).expect("send");
            }
        })
        .expect("sender");
    assert_eq!(rx.join().expect("receiver"), 10);
    assert_eq!(f.rule_stats(&added[0]).expect("stats").packets, 10);
}

//! Namespace tests: hosts exchange traffic through one physical switch and through two
//! joined by the tunnel; rule counters are exact. Each runs with both datapath modes:
//! XDP (lab `tfwd`) and TC (lab `skfwd`: host ports at TC ingress, no XDP program
//! there), where a TCP stream must also cross the switch in segments larger than the
//! MTU (GSO skbs kept whole).
use std::{net::UdpSocket, time::Duration};

use lime_lab::{DatapathMode, Topology};
use lime_tests::{fabric_pin_root, kernel_lock, l2_rules, require_root};
use lime_userspace::{
    fabric::Fabric,
    flow::{Action, Instructions, Match, Rule, matching::ethertype, matching::ipproto},
    traffic::probe::iperf3_tcp,
};

const TOPO: &str = r#"
name = "LAB"
[[switch]]
name = "s1"
datapath = "MODE"
[[switch]]
name = "s2"
datapath = "MODE"
[[host]]
name = "h1"
switch = "s1"
[[host]]
name = "h2"
switch = "s1"
[[host]]
name = "h3"
switch = "s2"
[[link]]
a = "s1"
b = "s2"
[[vswitch]]
name = "vs1"
tenant = "t1"
ports = [ { port = 1, host = "h1" }, { port = 2, host = "h2" }, { port = 3, host = "h3" } ]
"#;

fn fabric(mode: DatapathMode) -> Fabric {
    let (lab, mode) = match mode {
        DatapathMode::Xdp => ("tfwd", "xdp"),
        DatapathMode::Tc => ("skfwd", "tc"),
    };
    let topo =
        Topology::from_toml_str(&TOPO.replace("LAB", lab).replace("MODE", mode)).expect("topology");
    let mut f = Fabric::up(&topo, &fabric_pin_root()).expect("fabric up");
    let rules = l2_rules(f.lab().state(), "vs1");
    f.install("vs1", &rules).expect("install l2 rules");
    f
}

fn ping(f: &Fabric, from: &str, to: &str) -> bool {
    let ip = f.lab().state().host(to).expect("host").ip.addr.to_string();
    let out = f
        .lab()
        .exec(
            from,
            &["ping", "-c", "2", "-i", "0.2", "-W", "1", ip.as_str()],
        )
        .expect("run ping");
    out.status.success()
}

#[test]
fn ping_through_one_switch_and_through_the_tunnel() {
    pings(DatapathMode::Xdp);
}

#[test]
fn ping_through_one_switch_and_through_the_tunnel_tc() {
    pings(DatapathMode::Tc);
}

fn pings(mode: DatapathMode) {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let f = fabric(mode);
    assert!(
        ping(&f, "h1", "h2"),
        "h1 -> h2 (same physical switch)\n{}",
        lime_tests::diagnostics(&f)
    );
    assert!(
        ping(&f, "h1", "h3"),
        "h1 -> h3 (across the tunnel)\n{}",
        lime_tests::diagnostics(&f)
    );
    assert!(
        ping(&f, "h3", "h2"),
        "h3 -> h2 (across the tunnel)\n{}",
        lime_tests::diagnostics(&f)
    );
}

/// N UDP datagrams of a fixed size from h1 to h3: the UDP rule counts exactly N packets
/// and N * frame bytes, and h3 receives all N.
#[test]
fn rule_counters_are_exact() {
    counters(DatapathMode::Xdp);
}

#[test]
fn rule_counters_are_exact_tc() {
    counters(DatapathMode::Tc);
}

fn counters(mode: DatapathMode) {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = fabric(mode);
    const N: u64 = 500;
    const PAYLOAD: usize = 100;
    let udp = Rule::new(
        0,
        100,
        Match {
            eth_type: Some(ethertype::IPV4),
            ip_proto: Some(ipproto::UDP),
            udp_dst: Some(5555),
            ..Match::default()
        },
        Instructions::apply(vec![Action::output(3)]),
    );
    let installed = f.install("vs1", &[udp]).expect("install udp rule");
    // Resolve ARP first so the counted stream is only UDP.
    assert!(ping(&f, "h1", "h3"));
    let dst = f.lab().state().host("h3").expect("h3").ip.addr;
    let receiver = f
        .lab()
        .run_in("h3", move || {
            let s = UdpSocket::bind((dst, 5555)).expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            s
        })
        .expect("socket in h3");
    let counter = std::thread::spawn(move || {
        let mut got = 0u64;
        let mut buf = [0u8; 2048];
        while let Ok(n) = receiver.recv(&mut buf) {
            assert_eq!(n, PAYLOAD);
            got += 1;
        }
        got
    });
    f.lab()
        .run_in("h1", move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            for i in 0..N {
                let mut buf = [0u8; PAYLOAD];
                buf[..8].copy_from_slice(&i.to_be_bytes());
                s.send_to(&buf, (dst, 5555)).expect("send");
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
        .expect("sender in h1");
    let got = counter.join().expect("receiver thread");
    let st = f.rule_stats(&installed[0]).expect("stats");
    let frame = (14 + 20 + 8 + PAYLOAD) as u64;
    assert_eq!(
        got,
        N,
        "h3 received every datagram\n{}",
        lime_tests::diagnostics(&f)
    );
    assert_eq!(st.packets, N, "rule packet counter");
    assert_eq!(st.bytes, N * frame, "rule byte counter");
}

/// TCP h1 -> h2 (one switch) and h1 -> h3 (across the tunnel) through switches in TC
/// mode: the streams complete, and on the one switch the rule forwarding to h2 saw
/// segments larger than the MTU on average (GSO skbs cross whole; in XDP mode they are
/// MTU-sized).
#[test]
fn tcp_streams_cross_a_tc_switch_in_large_segments() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = fabric(DatapathMode::Tc);
    let state = f.lab().state().clone();
    let h2_mac = state.host("h2").expect("h2").mac.octets();
    // The l2 rules again, now with handles: the one to h2 is counted below.
    let to_h2 = l2_rules(&state, "vs1")
        .into_iter()
        .find(|r| r.matches.eth_dst.is_some_and(|m| m.value == h2_mac))
        .expect("a rule to h2");
    let to_h2 = Rule {
        priority: 20,
        ..to_h2
    };
    let installed = f.install("vs1", &[to_h2]).expect("install");
    assert!(ping(&f, "h1", "h2"), "{}", lime_tests::diagnostics(&f));
    let before = f.rule_stats(&installed[0]).expect("stats");
    let ns = |h: &str| state.host(h).expect("host").netns.clone();
    for (to, port) in [("h2", 5301), ("h3", 5302)] {
        let ip = state.host(to).expect("host").ip.addr;
        let gbps = iperf3_tcp(&ns("h1"), &ns(to), ip.into(), port, 1);
        assert!(
            gbps.as_ref().is_ok_and(|g| *g > 0.0),
            "TCP h1 -> {to}: {gbps:?}\n{}",
            lime_tests::diagnostics(&f)
        );
    }
    let after = f.rule_stats(&installed[0]).expect("stats");
    let (packets, bytes) = (after.packets - before.packets, after.bytes - before.bytes);
    assert!(packets > 0, "the rule to h2 forwarded the stream");
    assert!(
        bytes / packets > 1514,
        "{bytes} bytes in {packets} packets: segments stayed MTU-sized"
    );
}

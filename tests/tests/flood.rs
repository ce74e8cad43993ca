//! The skb path: FLOOD reaches every other virtual port once (local and across the
//! tunnel), never the ingress port; a rule with two outputs sends two copies; the rule
//! counts each packet once. Run with both datapath modes: XDP passing such packets up
//! to TC (lab `tflood`), and TC alone on host ports (lab `skflood`).
use std::{net::UdpSocket, time::Duration};

use lime_common::action::port_no;
use lime_lab::{DatapathMode, Topology};
use lime_tests::{fabric_pin_root, kernel_lock, require_root, two_switch_toml, udp_match};
use lime_userspace::{
    fabric::Fabric,
    flow::{Action, Instructions, Masked, Match, Rule},
};

const VSWITCH: &str = r#"
[[vswitch]]
name = "vs1"
tenant = "t1"
ports = [ { port = 1, host = "h1" }, { port = 2, host = "h2" }, { port = 3, host = "h3" }, { port = 4, host = "h4" } ]
"#;

fn udp_rule(dport: u16, actions: Vec<Action>) -> Rule {
    Rule::new(0, 100, udp_match(Some(dport)), Instructions::apply(actions))
}

/// Count datagrams each other host receives on `port` while `h1` sends `n` to the
/// broadcast address, and what the datapath sent back out of h1's port (h1's own socket
/// sees its broadcasts through its kernel's loopback, so it is not a witness).
fn broadcast_and_count(f: &Fabric, port: u16, n: usize) -> Vec<(String, usize)> {
    let hosts = ["h2", "h3", "h4"];
    let h1_port = f.lab().state().host_port("h1").expect("h1 port").ifindex;
    let tx_before = f
        .datapath("s1")
        .expect("s1")
        .port_stats(h1_port)
        .expect("stats")
        .tx_packets;
    let mut receivers = Vec::new();
    for h in hosts {
        let s = f
            .lab()
            .run_in(h, move || {
                let s = UdpSocket::bind(("0.0.0.0", port)).expect("bind");
                s.set_read_timeout(Some(Duration::from_millis(400)))
                    .expect("timeout");
                s
            })
            .expect("receiver");
        receivers.push((
            h,
            std::thread::spawn(move || {
                let mut got = 0;
                let mut buf = [0u8; 256];
                while s.recv(&mut buf).is_ok() {
                    got += 1;
                }
                got
            }),
        ));
    }
    f.lab()
        .run_in("h1", move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            s.set_broadcast(true).expect("broadcast");
            for _ in 0..n {
                s.send_to(b"to everyone", ("10.0.0.255", port))
                    .expect("send");
            }
        })
        .expect("sender");
    let mut got: Vec<(String, usize)> = receivers
        .into_iter()
        .map(|(h, t)| (h.to_owned(), t.join().expect("receiver")))
        .collect();
    let tx_after = f
        .datapath("s1")
        .expect("s1")
        .port_stats(h1_port)
        .expect("stats")
        .tx_packets;
    got.insert(
        0,
        (
            "h1 (sent back by the datapath)".to_owned(),
            (tx_after - tx_before) as usize,
        ),
    );
    got
}

#[test]
fn flood_and_multiple_outputs() {
    flood_in(DatapathMode::Xdp);
}

#[test]
fn flood_and_multiple_outputs_tc() {
    flood_in(DatapathMode::Tc);
}

fn flood_in(mode: DatapathMode) {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (lab, mode) = match mode {
        DatapathMode::Xdp => ("tflood", "xdp"),
        DatapathMode::Tc => ("skflood", "tc"),
    };
    let topo = Topology::from_toml_str(&format!("{}{VSWITCH}", two_switch_toml(lab, Some(mode))))
        .expect("topology");
    let mut f = Fabric::up(&topo, &fabric_pin_root()).expect("fabric");
    // A minimal L2 switch: unicast by MAC, broadcast (ARP requests) flooded.
    let mut rules = Vec::new();
    for (i, h) in ["h1", "h2", "h3", "h4"].iter().enumerate() {
        let mac = f.lab().state().host(h).expect("host").mac.octets();
        rules.push(Rule::new(
            0,
            10,
            Match {
                eth_dst: Some(Masked::exact(mac)),
                ..Match::default()
            },
            Instructions::apply(vec![Action::output(i as u32 + 1)]),
        ));
    }
    rules.push(Rule::new(
        0,
        5,
        Match {
            eth_dst: Some(Masked::exact([0xff; 6])),
            ..Match::default()
        },
        Instructions::apply(vec![Action::output(port_no::FLOOD)]),
    ));
    let flood_udp = udp_rule(8000, vec![Action::output(port_no::FLOOD)]);
    let two = udp_rule(8001, vec![Action::output(2), Action::output(3)]);
    rules.push(flood_udp);
    rules.push(two);
    let installed = f.install("vs1", &rules).expect("install");

    // ARP requests are flooded: every host can resolve and ping every other.
    for to in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
        let ok = f
            .lab()
            .exec("h1", &["ping", "-c", "1", "-W", "1", to])
            .expect("ping")
            .status
            .success();
        assert!(
            ok,
            "h1 -> {to} with flooded ARP\n{}",
            lime_tests::diagnostics(&f)
        );
    }

    const N: usize = 50;
    let got = broadcast_and_count(&f, 8000, N);
    assert_eq!(
        got,
        vec![
            ("h1 (sent back by the datapath)".into(), 0),
            ("h2".into(), N),
            ("h3".into(), N),
            ("h4".into(), N)
        ],
        "FLOOD reaches every other port once\n{}",
        lime_tests::diagnostics(&f)
    );
    assert_eq!(
        f.rule_stats(&installed[5]).expect("stats").packets,
        N as u64,
        "counted once per packet"
    );

    let got = broadcast_and_count(&f, 8001, N);
    assert_eq!(
        got,
        vec![
            ("h1 (sent back by the datapath)".into(), 0),
            ("h2".into(), N),
            ("h3".into(), N),
            ("h4".into(), 0)
        ],
        "two outputs: h2 (local) and h3 (remote)\n{}",
        lime_tests::diagnostics(&f)
    );
    assert_eq!(
        f.rule_stats(&installed[6]).expect("stats").packets,
        N as u64
    );
}

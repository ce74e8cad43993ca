//! Virtual links on the real datapath: a frame one virtual switch outputs to its link
//! port enters the other virtual switch at its link port, across physical switches or
//! inside one; FLOOD crosses the link (once, never back); moving a link end
//! make-before-break loses nothing of a stream crossing the link.
use std::{
    net::{Ipv4Addr, UdpSocket},
    sync::mpsc,
    time::Duration,
};

use lime_common::action::port_no;
use lime_lab::Topology;
use lime_tests::{
    deep_receive_buffer, diagnostics, fabric_pin_root, in_host, kernel_lock, ping, require_root,
    send_udp, two_switch_toml,
};
use lime_userspace::{
    fabric::{Fabric, l2_rules},
    flow::{Action, Instructions, Masked, Match, Rule},
};

/// vs1 (h1, h2 on s1) and vs2 (h3, h4 on s2) joined by a virtual link vs1:5 — vs2:5;
/// `b_switch` places vs2's end (default: s2, where h3 is).
fn topology(lab: &str, b_switch: Option<&str>) -> Topology {
    let b_at = b_switch.map_or(String::new(), |s| format!(", switch = \"{s}\""));
    Topology::from_toml_str(&format!(
        r#"{}
[[vswitch]]
name = "vs1"
tenant = "t1"
ports = [ {{ port = 1, host = "h1" }}, {{ port = 2, host = "h2" }} ]
[[vswitch]]
name = "vs2"
tenant = "t1"
ports = [ {{ port = 1, host = "h3" }}, {{ port = 2, host = "h4" }} ]
[[vlink]]
a = {{ vswitch = "vs1", port = 5 }}
b = {{ vswitch = "vs2", port = 5{b_at} }}
"#,
        two_switch_toml(lab, None)
    ))
    .expect("topology")
}

fn up(topo: &Topology) -> Fabric {
    let mut f = Fabric::up(topo, &fabric_pin_root()).expect("fabric");
    for vs in ["vs1", "vs2"] {
        let rules = l2_rules(f.lab().state(), vs);
        assert_eq!(rules.len(), 8, "own two hosts and two beyond the link");
        f.install(vs, &rules).expect("install");
    }
    f
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// A UDP socket bound in `host` on `port` (deep buffer, short timeout).
fn receiver(f: &Fabric, host: &str, port: u16) -> UdpSocket {
    in_host(f.lab().state(), host, move || {
        let s = UdpSocket::bind(("0.0.0.0", port)).expect("bind");
        deep_receive_buffer(&s);
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        s
    })
}

fn count(s: &UdpSocket) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while s.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

fn check_both_ways(f: &Fabric) {
    let st = f.lab().state();
    for (from, to) in [("h1", 3), ("h2", 4), ("h3", 1), ("h4", 2)] {
        assert!(
            ping(st, from, ip(to), 2),
            "{from} -> 10.0.0.{to} across the link\n{}",
            diagnostics(f)
        );
    }
    let r = receiver(f, "h4", 9000);
    send_udp(st, "h1", ip(4), 9000, 100, 64);
    assert_eq!(count(&r), 100, "UDP h1 -> h4\n{}", diagnostics(f));
}

#[test]
fn ping_and_udp_across_a_link_between_physical_switches() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let f = up(&topology("tvl1", None));
    let st = f.lab().state();
    let (a, b) = (
        st.vlink_port("vs1", 5).expect("vs1 end"),
        st.vlink_port("vs2", 5).expect("vs2 end"),
    );
    assert_eq!((a.switch.as_str(), b.switch.as_str()), ("s1", "s2"));
    check_both_ways(&f);
}

#[test]
fn ping_and_udp_across_a_link_inside_one_physical_switch() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let f = up(&topology("tvl2", Some("s1")));
    let st = f.lab().state();
    assert_eq!(st.vlink_port("vs2", 5).expect("vs2 end").switch, "s1");
    check_both_ways(&f);
}

#[test]
fn flood_crosses_the_link_once() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = up(&topology("tvl3", None));
    let flood = Rule::new(
        0,
        100,
        Match {
            eth_dst: Some(Masked::exact([0xff; 6])),
            ..Match::default()
        },
        Instructions::apply(vec![Action::output(port_no::FLOOD)]),
    );
    let installed: Vec<_> = ["vs1", "vs2"]
        .iter()
        .map(|vs| {
            f.install(vs, std::slice::from_ref(&flood))
                .expect("flood rule")
        })
        .collect();
    const N: usize = 40;
    let receivers: Vec<(&str, UdpSocket)> = ["h2", "h3", "h4"]
        .iter()
        .map(|h| (*h, receiver(&f, h, 8000)))
        .collect();
    in_host(f.lab().state(), "h1", || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        s.set_broadcast(true).expect("broadcast");
        for _ in 0..N {
            s.send_to(b"to everyone", ("10.0.0.255", 8000))
                .expect("send");
        }
    });
    let got: Vec<(&str, usize)> = receivers.iter().map(|(h, s)| (*h, count(s))).collect();
    assert_eq!(
        got,
        [("h2", N), ("h3", N), ("h4", N)],
        "FLOOD reaches every host of both virtual switches once\n{}",
        diagnostics(&f)
    );
    for (vs, i) in ["vs1", "vs2"].iter().zip(&installed) {
        assert_eq!(
            f.rule_stats(&i[0]).expect("stats").packets,
            N as u64,
            "{vs} classified each broadcast once (vs2 where it entered over the link)"
        );
    }
}

#[test]
fn moving_link_ends_loses_nothing() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = up(&topology("tvl4", None));
    check_both_ways(&f);
    const N: usize = 3000;
    let r = receiver(&f, "h3", 9100);
    let (tx, rx) = mpsc::channel();
    let st = f.lab().state().clone();
    let sender = std::thread::spawn(move || {
        in_host(&st, "h1", || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            for i in 0..N {
                s.send_to(&[0x5a; 64], (ip(3), 9100)).expect("send");
                if i == N / 10 {
                    let _ = tx.send(());
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        });
    });
    rx.recv().expect("stream started");
    // vs2's end to s1 (both ends in s1), then vs1's end to s2, then back.
    for (vs, to) in [("vs2", "s1"), ("vs1", "s2"), ("vs1", "s1")] {
        f.move_vlink_end(vs, 5, to)
            .unwrap_or_else(|e| panic!("move {vs}:5 to {to}: {e}"));
        assert_eq!(f.lab().state().vlink_port(vs, 5).expect("end").switch, to);
    }
    sender.join().expect("sender");
    let st = f.lab().state();
    assert_eq!(st.vlink_pairs.len(), 1, "old pairs removed");
    assert_eq!(st.vlink_port("vs1", 5).expect("end").ifname, "vl1a-3");
    assert_eq!(
        count(&r),
        N,
        "nothing lost on the link\n{}",
        diagnostics(&f)
    );
    check_both_ways(&f);
}

//! Packet-in reaches userspace with its metadata; packet-out sends a frame out of a
//! virtual port (here, across the tunnel) or through the flow tables. Run with both
//! datapath modes (lab `tpio`: XDP; `skpio`: both switches in TC mode, where XDP on the
//! injection and underlay ports hands packet-outs and tunnelled frames to TC).
use std::{net::UdpSocket, time::Duration};

use lime_common::action::port_no;
use lime_tests::{
    fabric_pin_root, kernel_lock, l2_rules, require_root, two_switch_topology, udp_match,
};
use lime_userspace::{
    datapath::{DatapathMode, packet_io::PacketIn},
    fabric::Fabric,
    flow::{Action, Instructions, Rule},
};

fn to_controller(dport: u16, max_len: u16, cookie: u64) -> Rule {
    let mut r = Rule::new(
        0,
        100,
        udp_match(Some(dport)),
        Instructions::apply(vec![Action::Output {
            port: port_no::CONTROLLER,
            max_len,
        }]),
    );
    r.cookie = cookie;
    r
}

fn wait_for(
    reader: &mut lime_userspace::datapath::packet_io::PacketInReader,
    n: usize,
) -> Vec<PacketIn> {
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(reader.poll(Duration::from_millis(100)).expect("poll"));
        if got.len() >= n {
            break;
        }
    }
    got
}

#[test]
fn packet_in_carries_metadata_and_packet_out_delivers() {
    packet_io_in(DatapathMode::Xdp);
}

#[test]
fn packet_in_carries_metadata_and_packet_out_delivers_tc() {
    packet_io_in(DatapathMode::Tc);
}

fn packet_io_in(mode: DatapathMode) {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut topo = two_switch_topology(match mode {
        DatapathMode::Xdp => "tpio",
        DatapathMode::Tc => "skpio",
    });
    for sw in &mut topo.switches {
        sw.datapath = mode;
    }
    let mut f = Fabric::up(&topo, &fabric_pin_root()).expect("fabric");
    let l2 = l2_rules(f.lab().state(), "vs1");
    f.install("vs1", &l2).expect("l2");
    let full = f
        .install("vs1", &[to_controller(6000, 0xffff, 0xc0ffee)])
        .expect("rule");
    f.install("vs1", &[to_controller(6001, 32, 0xbeef)])
        .expect("rule");
    let vsw = f.vswitch_id("vs1").expect("id");
    let mut reader = f
        .datapath_mut("s1")
        .expect("s1")
        .packet_in_reader()
        .expect("reader");
    let st = f.lab().state().clone();
    let (h1, h3) = (
        st.host("h1").expect("h1").clone(),
        st.host("h3").expect("h3").clone(),
    );
    assert!(
        f.lab()
            .exec(
                "h1",
                &["ping", "-c", "1", "-W", "1", &h3.ip.addr.to_string()]
            )
            .expect("ping")
            .status
            .success()
    );

    let payload = b"hello-lime".to_vec();
    let dst = h3.ip.addr;
    let p = payload.clone();
    f.lab()
        .run_in("h1", move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            s.send_to(&p, (dst, 6000)).expect("send");
            s.send_to(&[7u8; 100], (dst, 6001)).expect("send");
        })
        .expect("sender");
    let got = wait_for(&mut reader, 2);
    assert_eq!(got.len(), 2, "two packet-ins, got {got:?}");
    let full_in = got
        .iter()
        .find(|p| p.meta.cookie == 0xc0ffee)
        .expect("full packet-in");
    let short_in = got
        .iter()
        .find(|p| p.meta.cookie == 0xbeef)
        .expect("max_len packet-in");
    let frame_len = 14 + 20 + 8 + payload.len();
    assert_eq!(full_in.meta.vswitch, vsw);
    assert_eq!(full_in.meta.in_port, 1);
    assert_eq!(full_in.meta.table, 0);
    assert_eq!(full_in.meta.rule_id, full[0].ids_on("s1"));
    assert_eq!(
        full_in.meta.frame_len as usize, frame_len,
        "veth frames are not padded"
    );
    assert_eq!(
        full_in.frame.len(),
        full_in.meta.frame_len as usize,
        "whole frame with NO_BUFFER"
    );
    assert_eq!(&full_in.frame[6..12], &h1.mac.octets(), "source MAC of h1");
    assert_eq!(&full_in.frame[42..42 + payload.len()], payload.as_slice());
    assert_eq!(short_in.meta.captured, 32, "max_len limits the bytes sent");
    assert_eq!(short_in.frame.len(), 32);
    assert_eq!(short_in.meta.frame_len, 14 + 20 + 8 + 100);

    // Packet-out of the frame the controller received, out of virtual port 3 (on s2,
    // across the tunnel): h3 receives the datagram.
    let receiver = f
        .lab()
        .run_in("h3", move || {
            let s = UdpSocket::bind((dst, 6000)).expect("bind");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            s
        })
        .expect("receiver");
    f.datapath("s1")
        .expect("s1")
        .packet_out(vsw, 1, 3, &full_in.frame)
        .expect("packet-out to port 3");
    let mut buf = [0u8; 256];
    let n = receiver.recv(&mut buf).expect("h3 received the packet-out");
    assert_eq!(&buf[..n], payload.as_slice());

    // Packet-out to OFPP_TABLE: the frame runs through the tables as if from in_port 1,
    // hits the CONTROLLER rule again, and comes back as a packet-in.
    f.datapath("s1")
        .expect("s1")
        .packet_out(vsw, 1, port_no::TABLE, &full_in.frame)
        .expect("packet-out to TABLE");
    let again = wait_for(&mut reader, 1);
    assert_eq!(again.len(), 1, "one packet-in from the table: {again:?}");
    assert_eq!(again[0].frame, full_in.frame);
    assert_eq!(again[0].meta.in_port, 1);
    assert_eq!(reader.lost(), 0);
}

//! A version flip under continuous traffic never processes a packet with a mix of
//! versions, and loses none.
//!
//! Two rule sets, A and B, each spanning two tables: table 0 writes metadata (1 for A,
//! 2 for B) and goes to table 1; table 1 of each set rewrites the source MAC to mark
//! "A", "B", or — for the other set's metadata — "MIX". A packet classified entirely by
//! one version comes out marked A or B; one whose table 0 and table 1 lookups used
//! different versions would come out MIX. The traffic runs while the sets are swapped
//! as one versioned update every ~10 ms. Run with both datapath modes (lab `tflip`:
//! XDP, `skflip`: both switches in TC mode, where the tables are walked by `lime_tc`).
use std::{net::UdpSocket, time::Duration};

use lime_tests::{
    Capture, fabric_pin_root, kernel_lock, l2_rules, require_root, two_switch_topology, udp_match,
};
use lime_userspace::{
    datapath::DatapathMode,
    fabric::Fabric,
    flow::{Action, Instructions, Masked, Match, Rule},
};

const MARK_A: [u8; 6] = [2, 0xaa, 0, 0, 0, 0xa];
const MARK_B: [u8; 6] = [2, 0xbb, 0, 0, 0, 0xb];
const MARK_MIX: [u8; 6] = [2, 0xee, 0, 0, 0, 0xe];
const PORT: u16 = 5556;

fn rule_set(own: u64, other: u64, mark: [u8; 6]) -> Vec<Rule> {
    let udp = udp_match(Some(PORT));
    let meta = |v: u64| Match {
        metadata: Some(Masked::exact(v)),
        ..udp.clone()
    };
    vec![
        Rule::new(
            0,
            200,
            udp.clone(),
            Instructions {
                apply: vec![],
                write_metadata: Some((own, u64::MAX)),
                goto_table: Some(1),
            },
        ),
        Rule::new(
            1,
            10,
            meta(own),
            Instructions::apply(vec![Action::SetEthSrc(mark), Action::output(3)]),
        ),
        Rule::new(
            1,
            10,
            meta(other),
            Instructions::apply(vec![Action::SetEthSrc(MARK_MIX), Action::output(3)]),
        ),
    ]
}

#[test]
fn flip_under_traffic_never_mixes_and_loses_nothing() {
    flip_in(DatapathMode::Xdp);
}

#[test]
fn flip_under_traffic_never_mixes_and_loses_nothing_tc() {
    flip_in(DatapathMode::Tc);
}

fn flip_in(mode: DatapathMode) {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut topo = two_switch_topology(match mode {
        DatapathMode::Xdp => "tflip",
        DatapathMode::Tc => "skflip",
    });
    for sw in &mut topo.switches {
        sw.datapath = mode;
    }
    let mut f = Fabric::up(&topo, &fabric_pin_root()).expect("fabric");
    let l2 = l2_rules(f.lab().state(), "vs1");
    f.install("vs1", &l2).expect("l2 rules");
    let set_a = rule_set(1, 2, MARK_A);
    let set_b = rule_set(2, 1, MARK_B);
    let mut current = f.install("vs1", &set_a).expect("set A");
    let dst = f.lab().state().host("h3").expect("h3").ip.addr;
    assert!(
        f.lab()
            .exec("h1", &["ping", "-c", "1", "-W", "1", &dst.to_string()])
            .expect("ping")
            .status
            .success(),
        "warm-up ping\n{}",
        lime_tests::diagnostics(&f)
    );
    let h3_ns = f.lab().state().netns("h3").expect("ns");
    let cap = Capture::start(
        &h3_ns,
        "eth0",
        Duration::from_millis(700),
        Duration::from_secs(60),
    );
    const N: u64 = 20_000;
    let h1_ns = f.lab().state().netns("h1").expect("ns");
    let sender = std::thread::spawn(move || {
        lime_lab::netns::run_in_netns(&h1_ns, move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            for i in 0..N {
                s.send_to(&i.to_be_bytes(), (dst, PORT)).expect("send");
                if i % 20 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
        .expect("sender");
    });
    let mut flips = 0u32;
    let mut retired_packets = 0u64;
    let mut use_b = true;
    while !sender.is_finished() {
        let next = if use_b { &set_b } else { &set_a };
        let (installed, finals) = f.update("vs1", &current, next).expect("flip");
        retired_packets += finals
            .iter()
            .filter(|s| s.packets > 0)
            .map(|s| s.packets)
            .max()
            .unwrap_or(0);
        current = installed;
        use_b = !use_b;
        flips += 1;
    }
    sender.join().expect("sender thread");
    let frames = cap.finish();
    let (mut a, mut b, mut mix, mut seen) = (0u64, 0u64, 0u64, std::collections::BTreeSet::new());
    for fr in &frames {
        if fr.len() < 42
            || fr[12..14] != [8, 0]
            || fr[23] != 17
            || u16::from_be_bytes([fr[36], fr[37]]) != PORT
        {
            continue;
        }
        let seq = u64::from_be_bytes(fr[42..50].try_into().expect("8 bytes"));
        assert!(seen.insert(seq), "sequence {seq} delivered twice");
        match <[u8; 6]>::try_from(&fr[6..12]).expect("mac") {
            MARK_A => a += 1,
            MARK_B => b += 1,
            MARK_MIX => mix += 1,
            other => panic!("unexpected source MAC {other:02x?}"),
        }
    }
    eprintln!(
        "flips {flips}: A {a}, B {b}, MIX {mix}, received {}/{N}, retired-rule packets {retired_packets}",
        seen.len()
    );
    assert!(
        flips >= 20,
        "the flips must overlap the traffic (only {flips})"
    );
    assert!(
        a > 0 && b > 0,
        "both versions carried traffic (A {a}, B {b})"
    );
    assert_eq!(mix, 0, "packets processed with a mix of versions");
    assert_eq!(
        seen.len() as u64,
        N,
        "every packet delivered once\n{}",
        lime_tests::diagnostics(&f)
    );
}

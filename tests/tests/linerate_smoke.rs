//! The line-rate generator through LIME, correctness only (never timing): a bounded
//! burst from h1 crosses the tunnel from s1 to s2 and every frame is counted by the sink
//! at h3; with no rule for it, none is.
use std::time::Duration;

use lime_lab::HOST_IFNAME;
use lime_tests::{fabric_pin_root, kernel_lock, require_root, two_switch_topology};
use lime_userspace::{
    fabric::Fabric,
    flow::{Action, Instructions, Match, Rule},
    traffic::{
        Generator, SendConfig, Sink,
        frame::{UdpFlow, flows_by_port},
    },
};

/// Removes this test's pin directory on every exit path (after everything inside it
/// has been dropped: declared first, dropped last).
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn burst(threads: usize, frames: u64) -> SendConfig {
    SendConfig {
        threads,
        rate_pps: None,
        duration: Duration::from_secs(30),
        max_frames: Some(frames),
        // One kernel batch per call: never more in flight than a veth ring holds.
        chunk: 64,
    }
}

#[test]
fn generator_burst_through_lime_is_counted_exactly() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let pins = fabric_pin_root();
    // This test binary's own pin root (per process).
    let _pins = RemoveDir(pins.clone());
    let mut fabric = Fabric::up(&two_switch_topology("tlrate"), &pins).expect("fabric up");
    let state = fabric.lab().state().clone();
    let h1 = state.host("h1").expect("h1").clone();
    let h3 = state.host("h3").expect("h3").clone();
    // The sink takes the place of the fabric's pass program on h3's veth.
    fabric
        .datapath(&h3.switch)
        .expect("s2")
        .kernel()
        .detach(&format!("pass-{}-{HOST_IFNAME}", h3.netns))
        .expect("detach pass");
    let own = pins.join("tlrate-traffic");
    let sink = Sink::attach(&h3.netns, HOST_IFNAME, &own, "sink").expect("sink");
    let generator = Generator::new(&h1.netns, HOST_IFNAME, &own, "gen").expect("generator");
    let base = UdpFlow {
        src_mac: h1.mac.octets(),
        dst_mac: h3.mac.octets(),
        src: h1.ip.addr.into(),
        dst: h3.ip.addr.into(),
        sport: 4000,
        dport: 9,
        dscp: 0,
    };
    let frames = flows_by_port(&base, 8, 64).expect("frames");
    let rx = || sink.received();

    // No rule yet: LIME drops every frame (table miss), the sink counts none.
    let r = generator.send(&frames, &burst(1, 640), &rx).expect("send");
    assert_eq!((r.sent, r.received), (640, 0), "{r:?}");

    fabric
        .install(
            "vs1",
            &[Rule::new(
                0,
                10,
                Match {
                    eth_type: Some(0x0800),
                    ..Match::default()
                },
                Instructions::apply(vec![Action::output(3)]),
            )],
        )
        .expect("install");
    for (threads, n) in [(1, 64 * 50), (2, 64 * 50)] {
        let r = generator
            .send(&frames, &burst(threads, n), &rx)
            .expect("send");
        assert_eq!(r.sent, n, "{threads} threads: {r:?}");
        assert_eq!(
            r.received, r.sent,
            "{threads} threads: every frame arrives: {r:?}"
        );
        assert_eq!(r.lost(), 0);
        let last = r.per_second.last().expect("final counts");
        assert_eq!((last.tx, last.rx), (n, n));
    }
    // 1500-byte IPv4 frames too.
    let big = flows_by_port(&base, 2, 1500).expect("frames");
    let r = generator.send(&big, &burst(1, 640), &rx).expect("send");
    assert_eq!(
        (r.sent, r.received, r.frame_bytes),
        (640, 640, 1500),
        "{r:?}"
    );
}

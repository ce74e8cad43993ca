//! Live migration under traffic: a virtual switch running on s1 and s2 moves its s1
//! part to s3 while UDP streams flow. With `clone` (copy the tables to s3, move the
//! host, retire s1's copy) a stream between hosts that stay put loses nothing, every
//! packet the moving host sends is counted once and delivered, and counters carry the
//! retired copy's share and never go backwards. With `move` (freeze s1's copy first)
//! the same holds except that what the moving host sent into the frozen copy is lost,
//! and reported.
use std::{
    net::UdpSocket,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use lime_tests::{fabric_pin_root, kernel_lock, require_root, udp_match};
use lime_userspace::{
    fabric::{Fabric, l2_rules},
    flow::{Action, Instructions, Rule},
    migration::{Phase, Strategy, migrate},
    vswitch::{FlowMod, VirtualSwitch},
};

const STATIC_PORT: u16 = 7300;
const MOVING_PORT: u16 = 7301;

fn topology() -> lime_lab::Topology {
    lime_lab::Topology::from_toml_str(
        r#"
name = "tmigr"
[[switch]]
name = "s1"
[[switch]]
name = "s2"
[[switch]]
name = "s3"
[[host]]
name = "h1"
switch = "s1"
[[host]]
name = "h2"
switch = "s2"
[[host]]
name = "h3"
switch = "s2"
[[link]]
a = "s1"
b = "s2"
[[link]]
a = "s2"
b = "s3"
[[vswitch]]
name = "vs1"
tenant = "t1"
ports = [ { port = 1, host = "h1" }, { port = 2, host = "h2" }, { port = 3, host = "h3" } ]
"#,
    )
    .expect("test topology")
}

/// Count datagrams arriving at `host`:`port` until none came for two seconds.
fn receiver(f: &Fabric, host: &str, port: u16) -> JoinHandle<u64> {
    let ip = f.lab().state().host(host).expect("host").ip.addr;
    let s = f
        .lab()
        .run_in(host, move || {
            let s = UdpSocket::bind((ip, port)).expect("bind");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            lime_tests::deep_receive_buffer(&s);
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

/// Send from `host` to `dst`:`port` until `stop`, ~10 datagrams per millisecond;
/// returns how many the socket accepted (sends fail while the host has no link).
fn sender(
    f: &Fabric,
    host: &str,
    dst: &str,
    port: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> JoinHandle<()> {
    let ns = f.lab().state().netns(host).expect("ns");
    let dst = f.lab().state().host(dst).expect("dst").ip.addr;
    std::thread::spawn(move || {
        lime_lab::netns::run_in_netns(&ns, move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                if s.send_to(&i.to_be_bytes(), (dst, port)).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                if i.is_multiple_of(10) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
        .expect("sender");
    })
}

fn udp_to(port: u16, out: u32) -> Rule {
    Rule::new(
        0,
        100,
        udp_match(Some(port)),
        Instructions::apply(vec![Action::output(out)]),
    )
}

/// What one migration under traffic showed.
struct Run {
    report: lime_userspace::migration::Report,
    phases: Vec<Phase>,
    static_sent: u64,
    static_got: u64,
    static_counted: u64,
    /// The moving host's rule counter before, right after and at the end.
    moving_counted: (u64, u64, u64),
    moving_got: u64,
    copies: Vec<String>,
    h1_switch: String,
    pings_after: bool,
    diagnostics: String,
}

/// Bring up the lab (vs1 on s1 and s2), start both streams, migrate s1's part to s3
/// with `strategy`, stop the streams, and collect what happened.
fn migrate_under_traffic(strategy: Strategy) -> Run {
    let mut f = Fabric::up(&topology(), &fabric_pin_root()).expect("fabric");
    let mut vsw = VirtualSwitch::new("vs1");
    let mut rules = l2_rules(f.lab().state(), "vs1");
    rules.push(udp_to(STATIC_PORT, 3));
    rules.push(udp_to(MOVING_PORT, 2));
    let mut ids = Vec::new();
    for r in rules {
        let out = vsw.apply(&mut f, &FlowMod::add(r)).expect("add");
        ids.extend(out.added);
    }
    let (static_rule, moving_rule) = (ids[ids.len() - 2], ids[ids.len() - 1]);
    // The virtual switch starts on s1 and s2 only. Its idle s3 copy holds the rules
    // already: dropping it as unused is refused (its counters would go with it).
    let e = f
        .drop_unused_copies("vs1")
        .expect_err("s3's copy holds rules");
    assert!(e.to_string().contains("holds rules"), "{e}");
    vsw.retire_copy(&mut f, "s3").expect("retire the s3 copy");
    assert_eq!(f.copies("vs1").expect("copies"), ["s1", "s2"]);
    let ping = |f: &Fabric, from: &str, to: &str| {
        let ip = f.lab().state().host(to).expect("host").ip.addr.to_string();
        f.lab()
            .exec(from, &["ping", "-c", "1", "-W", "1", &ip])
            .expect("ping")
            .status
            .success()
    };
    assert!(ping(&f, "h1", "h2"), "h1 reaches h2 before the migration");

    let stop = Arc::new(AtomicBool::new(false));
    let static_sent = Arc::new(AtomicU64::new(0));
    let moving_sent = Arc::new(AtomicU64::new(0));
    let static_rx = receiver(&f, "h3", STATIC_PORT);
    let moving_rx = receiver(&f, "h2", MOVING_PORT);
    let senders = [
        sender(
            &f,
            "h2",
            "h3",
            STATIC_PORT,
            stop.clone(),
            static_sent.clone(),
        ),
        sender(
            &f,
            "h1",
            "h2",
            MOVING_PORT,
            stop.clone(),
            moving_sent.clone(),
        ),
    ];
    std::thread::sleep(Duration::from_millis(300));
    let before = vsw.stats(&f, moving_rule).expect("stats").packets;
    let mut phases = Vec::new();
    let report =
        migrate(&mut f, &mut vsw, "s1", "s3", strategy, |p| phases.push(p)).expect("migrate");
    let right_after = vsw.stats(&f, moving_rule).expect("stats").packets;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().expect("sender");
    }
    eprintln!("{report:?}");
    Run {
        phases,
        static_sent: static_sent.load(Ordering::Relaxed),
        static_got: static_rx.join().expect("receiver"),
        static_counted: vsw.stats(&f, static_rule).expect("stats").packets,
        moving_counted: (
            before,
            right_after,
            vsw.stats(&f, moving_rule).expect("stats").packets,
        ),
        moving_got: moving_rx.join().expect("receiver"),
        copies: f.copies("vs1").expect("copies"),
        h1_switch: f.lab().state().host("h1").expect("h1").switch.clone(),
        pings_after: ping(&f, "h1", "h2") && ping(&f, "h3", "h1"),
        diagnostics: lime_tests::diagnostics(&f),
        report,
    }
}

/// What must hold whatever the strategy.
fn check_common(r: &Run) {
    assert_eq!(r.h1_switch, "s3");
    assert_eq!(r.report.hosts.len(), 1, "one host moved");
    assert!(
        r.static_sent > 1000,
        "the static stream ran ({})",
        r.static_sent
    );
    assert_eq!(
        r.static_got, r.static_sent,
        "the stream between hosts that stay put lost nothing\n{}",
        r.diagnostics
    );
    assert_eq!(
        r.static_counted, r.static_sent,
        "its rule counted every datagram once"
    );
    let (before, right_after, fin) = r.moving_counted;
    assert!(
        before > 0 && right_after >= before && fin >= right_after,
        "the moving host's counter never went backwards ({before}, {right_after}, {fin})"
    );
    assert_eq!(
        fin, r.moving_got,
        "every datagram of the moving host that LIME classified (on s1, then s3) was \
         delivered, and the counter includes the retired copy's share\n{}",
        r.diagnostics
    );
    assert!(
        r.moving_got > before,
        "the moving host's stream continued after the move"
    );
    assert!(r.pings_after, "h1 (on s3) and the others reach each other");
}

#[test]
fn clone_migration_under_traffic_loses_nothing_and_merges_counters() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let r = migrate_under_traffic(Strategy::Clone);
    check_common(&r);
    assert_eq!(r.phases, [Phase::Clone, Phase::Move, Phase::Retire]);
    assert_eq!(r.copies, ["s2", "s3"]);
    assert_eq!(r.report.frozen_drops, 0, "clone never freezes");
}

#[test]
fn move_migration_loses_what_entered_the_frozen_copy() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let r = migrate_under_traffic(Strategy::Move);
    check_common(&r);
    assert_eq!(r.phases, [Phase::Freeze, Phase::Clone, Phase::Move]);
    assert_eq!(r.copies, ["s2", "s3"]);
    assert!(
        r.report.frozen_drops > 0,
        "the moving host kept sending while its switch was frozen: those frames are lost"
    );
}

//! `lime status`, `lime migrate` and the migration journal, through the real `lime`
//! binary against a real `lime run` daemon (lab `tjrnl`, pins under
//! `/sys/fs/bpf/lime-test/`), with a scripted OpenFlow controller installing the rules.
//!
//! The binary and the daemon come from [`lime_tests::daemon`] (`cargo build` — and so
//! `cargo xtask test` — builds `target/<profile>/lime`; `LIME_BIN` overrides).
//!
//! The crash tests make the daemon exit at once (as `kill -9` would, nothing cleaned
//! up) right after a chosen journal record, with the journal's fault-injection variable,
//! then start `lime run` again and check that it resumed the migration: every host at
//! the target, the old copy retired, counters neither lost nor counted twice, and a UDP
//! stream between two hosts that stay put delivered in full across the crash and the
//! restart.
use std::{
    collections::HashSet,
    net::{Ipv4Addr, TcpListener, UdpSocket},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use lime_tests::{
    daemon::{Cleanup, Daemon, lime, text},
    deep_receive_buffer, kernel_lock, of_add, of_l2, of_udp, ping, require_root, send_udp,
    three_switch_toml,
};
use lime_userspace::{migration::journal, ofswitch::client::ScriptedController};
use serde_json::Value;

/// The lab of the journal tests (`tjrnl`); the crash-window tests use their own
/// (`jw…`), set by [`cleanup_for`] (tests run one at a time: `kernel_lock`).
static LAB: std::sync::Mutex<&'static str> = std::sync::Mutex::new("tjrnl");

fn lab() -> &'static str {
    *LAB.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
const T: Duration = Duration::from_secs(15);
/// The stream between the hosts that stay put (h3 → h4, both on s2).
const STREAM_PORT: u16 = 7500;
/// Counted on s1's copy before the migration (h1 → h3).
const COUNTED_PORT: u16 = 7501;

fn topology(controller: u16) -> String {
    topology_with(controller, &[])
}

/// [`topology`] with `extra` hosts (name, physical switch) after h1..h4, bound to no
/// port of vs1 (the caller's own virtual switches take them).
fn topology_with(controller: u16, extra: &[(&str, &str)]) -> String {
    let mut hosts = vec![("h1", "s1"), ("h2", "s1"), ("h3", "s2"), ("h4", "s2")];
    hosts.extend_from_slice(extra);
    format!(
        r#"{}
[[vswitch]]
name = "vs1"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{controller}"]
ports = [ {{ port = 1, host = "h1" }}, {{ port = 2, host = "h2" }}, {{ port = 3, host = "h3" }}, {{ port = 4, host = "h4" }} ]
"#,
        three_switch_toml(lab(), &hosts)
    )
}

/// The lab's cleanup guard (see [`lime_tests::daemon::Cleanup`]) for lab `tjrnl`.
fn cleanup() -> Cleanup {
    cleanup_for("tjrnl")
}

/// The same for lab `name`, which the helpers below then use.
fn cleanup_for(name: &'static str) -> Cleanup {
    *LAB.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = name;
    Cleanup::new(name)
}

fn lab_state() -> lime_lab::LabState {
    lime_lab::LabState::load(&lime_lab::LabState::default_dir(lab()))
        .expect("the lab's saved state")
}

/// The controller's rules: forward by MAC and ARP target to every host, and the two
/// UDP rules the test counts with.
fn install_rules(c: &mut ScriptedController, st: &lime_lab::LabState) {
    let mut mods = of_l2(st, &[(1, "h1"), (2, "h2"), (3, "h3"), (4, "h4")]);
    mods.push(of_add(0x7500, 100, of_udp(STREAM_PORT), 4));
    mods.push(of_add(0x7501, 100, of_udp(COUNTED_PORT), 3));
    for m in &mods {
        c.send(m).expect("flow-mod");
    }
    c.barrier(T).expect("barrier");
}

fn status() -> Value {
    lime_tests::daemon::status(lab())
}

/// (copies of vs1, each port's host → physical switch).
fn placement(st: &Value) -> (Vec<String>, Vec<(String, String)>) {
    let vs = &st["vswitches"][0];
    assert_eq!(vs["name"], "vs1");
    let copies = vs["copies"]
        .as_array()
        .expect("copies")
        .iter()
        .map(|c| c.as_str().expect("name").to_owned())
        .collect();
    let ports = vs["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["host"].as_str().expect("host").to_owned(),
                p["switch"].as_str().expect("switch").to_owned(),
            )
        })
        .collect();
    (copies, ports)
}

fn at(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(h, s)| ((*h).to_owned(), (*s).to_owned()))
        .collect()
}

/// Packets counted by `vswitch`'s entry with `cookie`, as `lime dump-flows` reports it.
fn packets_of(vswitch: &str, cookie: u64) -> u64 {
    let o = lime(&["dump-flows", vswitch, "--lab", lab(), "--json"]);
    assert!(o.status.success(), "lime dump-flows: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("flow JSON"))
        .filter(|f| f["cookie"] == cookie)
        .map(|f| f["n_packets"].as_u64().expect("n_packets"))
        .sum()
}

fn packets(cookie: u64) -> u64 {
    packets_of("vs1", cookie)
}

/// Wait for the daemon to end at its fault-injection point (exit code 137).
fn expect_crash(d: &mut Daemon) {
    assert_eq!(
        d.wait(T).and_then(|s| s.code()),
        Some(137),
        "the fault injection point ended the daemon:\n{}",
        d.log()
    );
}

/// A sequence-numbered UDP stream from `from` to `to`:`STREAM_PORT`, ~10 datagrams per
/// millisecond, until `stop`; the receiver counts distinct and duplicated datagrams.
struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    tx: JoinHandle<()>,
    rx: JoinHandle<(u64, u64)>,
}

impl Stream {
    fn start(st: &lime_lab::LabState, from: &str, to: &str) -> Self {
        let dst: Ipv4Addr = st.host(to).expect("to").ip.addr;
        let to_ns = st.host(to).expect("to").netns.clone();
        let from_ns = st.host(from).expect("from").netns.clone();
        let sock = lime_lab::netns::run_in_netns(&to_ns, move || {
            let s = UdpSocket::bind((dst, STREAM_PORT)).expect("bind");
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            deep_receive_buffer(&s);
            s
        })
        .expect("receiver");
        let rx = std::thread::spawn(move || {
            let mut seen = HashSet::new();
            let mut dup = 0;
            let mut buf = [0u8; 64];
            while let Ok(n) = sock.recv(&mut buf) {
                if n >= 8 {
                    let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                    if !seen.insert(seq) {
                        dup += 1;
                    }
                }
            }
            (seen.len() as u64, dup)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let tx = std::thread::spawn(move || {
            lime_lab::netns::run_in_netns(&from_ns, move || {
                let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
                let mut i: u64 = 0;
                while !stop2.load(Ordering::Relaxed) {
                    if s.send_to(&i.to_be_bytes(), (dst, STREAM_PORT)).is_ok() {
                        sent2.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                    if i.is_multiple_of(10) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
            .expect("sender");
        });
        Self { stop, sent, tx, rx }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// (sent, received, duplicated).
    fn finish(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx.join().expect("sender");
        let (got, dup) = self.rx.join().expect("receiver");
        (self.sent.load(Ordering::Relaxed), got, dup)
    }
}

/// The end of a crash test started by [`start_lab`]: s1's retired copy still reads the
/// `counted` datagrams it counted before the migration (kept through the crash, once),
/// and the restarted daemon stops cleanly.
fn retired_counts_kept_then_stop(d: Daemon, listener: TcpListener, counted: usize, log: &str) {
    assert_eq!(
        packets(0x7501),
        counted as u64,
        "the counts of s1's retired copy are kept, once\n{log}"
    );
    drop(listener);
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st})");
}

/// Bring up the daemon (with `fault`), connect the controller, install the rules, and
/// count `counted` datagrams h1 → h3 on s1's copy.
fn start_lab(
    c: &Cleanup,
    fault: Option<&str>,
    counted: usize,
) -> (Daemon, TcpListener, ScriptedController, PathBuf) {
    let (listener, cport) = ScriptedController::listen().expect("listen");
    let topo = c.dir.join("lab.toml");
    std::fs::write(&topo, topology(cport)).expect("topology file");
    let d = Daemon::start(c, &topo, fault, 1);
    let mut ctl = ScriptedController::accept(&listener, T)
        .unwrap_or_else(|e| panic!("the daemon connects to the controller: {e}\n{}", d.log()));
    let st = lab_state();
    install_rules(&mut ctl, &st);
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    assert!(ping(&st, "h1", ip("h3"), 1), "h1 reaches h3\n{}", d.log());
    assert!(ping(&st, "h3", ip("h4"), 1), "h3 reaches h4\n{}", d.log());
    send_udp(&st, "h1", ip("h3"), COUNTED_PORT, counted, 32);
    (d, listener, ctl, topo)
}

#[test]
fn status_and_migrate_with_progress_through_the_cli() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let c = cleanup();
    let (d, _listener, _ctl, _topo) = start_lab(&c, None, 200);

    let st = status();
    assert_eq!(st["lab"], lab());
    let (copies, ports) = placement(&st);
    assert_eq!(
        copies,
        ["s1", "s2", "s3"],
        "a fresh lab runs vs1 everywhere"
    );
    assert_eq!(
        ports,
        at(&[("h1", "s1"), ("h2", "s1"), ("h3", "s2"), ("h4", "s2")])
    );
    assert_eq!(
        st["vswitches"][0]["connected"].as_array().map(Vec::len),
        Some(1),
        "one controller connected: {st}"
    );
    assert!(st.get("migration").is_none_or(Value::is_null), "{st}");
    let human = lime(&["status", "--lab", lab()]);
    let h = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success(), "{}", text(&human));
    assert!(
        h.contains("vswitch vs1 (tenant t1") && h.contains("runs on s1, s2, s3"),
        "{h}"
    );
    assert!(h.contains("no migration in progress"), "{h}");
    assert_eq!(packets(0x7501), 200, "counted before the migration");

    // `lime status` while the migration runs answers, and shows it.
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            // On the control socket directly (as `lime status` does; spawning the
            // binary takes longer than a host move).
            let socket = lime_userspace::ofswitch::control::socket_path(lab());
            let (mut seen, mut polls) = (Vec::new(), 0);
            while !done.load(Ordering::Relaxed) {
                let resp = lime_userspace::ofswitch::control::request(
                    &socket,
                    &lime_userspace::ofswitch::control::Request::Status,
                )
                .expect("status");
                polls += 1;
                if let Some(m) = resp.status.and_then(|s| s.migration) {
                    seen.push(serde_json::to_value(m).expect("JSON"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            eprintln!(
                "{polls} status requests, {} during the migration",
                seen.len()
            );
            seen
        })
    };
    let o = lime(&["migrate", "vs1", "--to", "s2", "--lab", lab(), "--json"]);
    done.store(true, Ordering::Relaxed);
    let seen = poller.join().expect("status poller");
    assert!(
        !seen.is_empty(),
        "lime status saw the migration in progress"
    );
    for m in &seen {
        assert_eq!(
            (&m["vswitch"], &m["from"], &m["to"], &m["strategy"]),
            (&"vs1".into(), &"s1".into(), &"s2".into(), &"clone".into()),
            "{m}"
        );
        let moved: Vec<&str> = m["hosts_moved"]
            .as_array()
            .expect("hosts_moved")
            .iter()
            .map(|h| h.as_str().expect("host"))
            .collect();
        assert!(
            ["h1", "h2"].starts_with(&moved),
            "hosts moved in order: {m}"
        );
    }
    assert!(
        o.status.success(),
        "lime migrate: {}\n{}",
        text(&o),
        d.log()
    );
    let events: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let shape: Vec<String> = events
        .iter()
        .map(|e| match e["event"].as_str().expect("event") {
            "phase" => format!("phase {}", e["phase"].as_str().expect("phase")),
            "host-moved" => format!("moved {}", e["host"].as_str().expect("host")),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "phase clone",
            "phase move",
            "moved h1",
            "moved h2",
            "phase retire",
            "done"
        ],
        "{events:?}"
    );
    let report = &events[5]["report"];
    assert_eq!(
        (&report["from"], &report["to"]),
        (&"s1".into(), &"s2".into())
    );
    assert_eq!(report["hosts"].as_array().map(Vec::len), Some(2));

    let (copies, ports) = placement(&status());
    assert_eq!(copies, ["s2", "s3"], "s1's copy retired");
    assert_eq!(
        ports,
        at(&[("h1", "s2"), ("h2", "s2"), ("h3", "s2"), ("h4", "s2")])
    );
    assert_eq!(packets(0x7501), 200, "the retired copy's counts are kept");
    let human = lime(&["migrate", "vs1", "--to", "s2", "--lab", lab()]);
    assert!(!human.status.success(), "nothing left to move");
    assert!(
        String::from_utf8_lossy(&human.stderr).contains("already on s2"),
        "{}",
        text(&human)
    );

    let log = d.log();
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st}):\n{log}");
    assert!(
        !lime_lab::netns::netns_exists(&format!("lime-{}-s1", lab())),
        "the lab is torn down"
    );
    assert!(
        !journal::path_for(lab()).exists(),
        "nothing to recover after a clean stop"
    );
}

/// The restarted daemon (its log `log`) resumed the migration of vs1 to s2 and
/// finished it: s1's copy retired, every host at s2.
fn assert_resumed_to_s2(log: &str) {
    assert!(
        log.contains("unfinished migration") && log.contains("resumed and done"),
        "the restarted daemon resumed the migration:\n{log}"
    );
    let (copies, ports) = placement(&status());
    assert_eq!(copies, ["s2", "s3"], "s1's copy retired\n{log}");
    assert_eq!(
        ports,
        at(&[("h1", "s2"), ("h2", "s2"), ("h3", "s2"), ("h4", "s2")]),
        "every host at the target"
    );
}

/// Crash the daemon right after journal record `point` of a clone migration of vs1
/// from s1 to s2 (h1 and h2 move; h3 and h4 stay put on s2 and stream to each other),
/// start it again, and check what it resumed.
fn crash_and_resume(point: &str, strategy: &str) {
    let c = cleanup();
    const COUNTED: usize = 500;
    let (mut d, listener, _ctl, topo) = start_lab(&c, Some(point), COUNTED);
    let st = lab_state();
    let stream = Stream::start(&st, "h3", "h4");
    std::thread::sleep(Duration::from_millis(300));

    let o = lime(&[
        "migrate",
        "vs1",
        "--to",
        "s2",
        "--strategy",
        strategy,
        "--lab",
        lab(),
        "--json",
    ]);
    assert!(
        !o.status.success(),
        "the daemon died mid-migration: {}",
        text(&o)
    );
    expect_crash(&mut d);
    let crash_log = d.log();
    let sent_at_crash = stream.sent();
    let lines = journal::read(&journal::path_for(lab())).expect("journal");
    let u = journal::unfinished(&lines).expect("the journal shows the migration unfinished");
    assert_eq!((u.vswitch.as_str(), u.to.as_str()), ("vs1", "s2"));
    assert_eq!(
        lines.last().map(|l| l.rec.kind()),
        Some(point.split(':').next().expect("kind")),
        "the crash came right after that record"
    );
    // No control plane at all for a while: the datapath forwards on its own.
    std::thread::sleep(Duration::from_millis(700));
    let sent_while_down = stream.sent() - sent_at_crash;

    let d = Daemon::start(&c, &topo, None, 2);
    let log = d.log();
    assert_resumed_to_s2(&log);
    let lines = journal::read(&journal::path_for(lab())).expect("journal");
    assert_eq!(
        journal::unfinished(&lines),
        None,
        "the journal shows it ended"
    );
    assert!(
        matches!(
            lines.last().map(|l| &l.rec),
            Some(journal::Record::End {
                outcome: journal::Outcome::Done,
                ..
            })
        ),
        "{:?}",
        lines.last()
    );

    std::thread::sleep(Duration::from_millis(300));
    let (sent, got, dup) = stream.finish();
    eprintln!(
        "crash after {point}: stream h3 -> h4: {sent} sent ({sent_while_down} while no daemon ran), {got} received, {} lost, {dup} duplicated",
        sent - got
    );
    assert!(
        sent_while_down > 1000,
        "the stream ran while the daemon was down ({sent_while_down})"
    );
    assert_eq!(
        (got, dup),
        (sent, 0),
        "the stream between hosts that stay put lost nothing across the crash and the restart\n{crash_log}\n{log}"
    );
    assert_eq!(
        packets(0x7500),
        sent,
        "the stream's rule counted every datagram once"
    );
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    assert!(ping(&st, "h1", ip("h3"), 1), "h1 (moved) reaches h3");
    assert!(ping(&st, "h2", ip("h4"), 1), "h2 (moved) reaches h4");
    // The pings are not UDP: the counted rule sees none of them.
    retired_counts_kept_then_stop(d, listener, COUNTED, &log);
}

#[test]
fn a_crash_after_a_host_moved_is_resumed_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_and_resume("host-moved:1", "clone");
}

#[test]
fn a_crash_after_the_old_copys_counters_were_journaled_is_resumed_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_and_resume("copy-removed", "clone");
}

#[test]
fn a_crash_before_a_host_moved_is_resumed_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_and_resume("host-moving:2", "clone");
}

#[test]
fn a_crash_right_after_begin_is_resumed_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_and_resume("begin", "clone");
}

#[test]
fn a_crash_mid_move_strategy_is_resumed_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    // `move` froze s1's copy (its counters journaled) before h1 moved.
    crash_and_resume("host-moved:1", "move");
}

/// Crash right after journal record `point` while vs1 moves back from s2 to s1 — a
/// migration that clones (s1's copy was retired by the first one) — and check the
/// restarted daemon finished it with the table whole and counters kept.
fn crash_during_a_clone_and_resume(point: &str) {
    let c = cleanup();
    let (mut d, _listener, _ctl, topo) = start_lab(&c, Some(point), 500);
    let o = lime(&["migrate", "vs1", "--to", "s2", "--lab", lab()]);
    assert!(
        o.status.success(),
        "no clone there: {}\n{}",
        text(&o),
        d.log()
    );
    let st = lab_state();
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    send_udp(&st, "h1", ip("h3"), COUNTED_PORT, 300, 32);
    assert_eq!(packets(0x7501), 800);

    let o = lime(&["migrate", "vs1", "--to", "s1", "--lab", lab(), "--json"]);
    assert!(
        !o.status.success(),
        "the daemon died mid-clone: {}",
        text(&o)
    );
    expect_crash(&mut d);
    let lines = journal::read(&journal::path_for(lab())).expect("journal");
    assert_eq!(lines.last().map(|l| l.rec.kind()), Some(point));
    // While no daemon runs, vs1 still forwards from s2.
    assert!(ping(&st, "h1", ip("h3"), 1), "h1 reaches h3 with no daemon");

    let d = Daemon::start(&c, &topo, None, 2);
    let log = d.log();
    assert!(log.contains("resumed and done"), "{log}");
    let (copies, ports) = placement(&status());
    assert_eq!(
        copies,
        ["s1", "s3"],
        "cloned to s1, s2's copy retired\n{log}"
    );
    assert_eq!(
        ports,
        at(&[("h1", "s1"), ("h2", "s1"), ("h3", "s1"), ("h4", "s1")])
    );
    assert_eq!(
        packets(0x7501),
        800,
        "counters of both retired copies are kept\n{log}"
    );
    assert!(ping(&st, "h1", ip("h3"), 1), "h1 reaches h3 on s1");
    assert!(ping(&st, "h2", ip("h4"), 1), "h2 reaches h4 on s1");
    send_udp(&st, "h1", ip("h3"), COUNTED_PORT, 10, 32);
    assert_eq!(packets(0x7501), 810, "the clone counts on");
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st})");
}

#[test]
fn a_crash_after_the_clone_was_staged_is_resumed_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_during_a_clone_and_resume("clone-staged");
}

#[test]
fn a_crash_after_the_clone_was_published_is_resumed_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_during_a_clone_and_resume("cloned");
}

/// vs1 (h1, h2 on s1; h3, h4 on s2) moves to s3, which has no hosts; vs2 (h5 on s1,
/// h6 on s2, its own controller) stays put and carries the stream.
fn topology_with_bystander(c1: u16, c2: u16) -> String {
    let base = topology_with(c1, &[("h5", "s1"), ("h6", "s2")]);
    format!(
        r#"{base}
[[vswitch]]
name = "vs2"
tenant = "t2"
controllers = ["tcp:127.0.0.1:{c2}"]
ports = [ {{ port = 5, host = "h5" }}, {{ port = 6, host = "h6" }} ]
"#
    )
}

#[test]
fn a_migration_whose_target_is_gone_after_a_crash_is_rolled_back() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let c = cleanup();
    let (l1, p1) = ScriptedController::listen().expect("listen");
    let (l2, p2) = ScriptedController::listen().expect("listen");
    let topo = c.dir.join("lab.toml");
    std::fs::write(&topo, topology_with_bystander(p1, p2)).expect("topology file");
    // h3 is the third host to move: h1 and h2 left s1 (whose copy is then retired),
    // h3 is on s3 when the daemon dies.
    let mut d = Daemon::start(&c, &topo, Some("host-moved:3"), 1);
    let mut ctl1 = ScriptedController::accept(&l1, T).expect("vs1's controller");
    let mut ctl2 = ScriptedController::accept(&l2, T).expect("vs2's controller");
    let st = lab_state();
    install_rules(&mut ctl1, &st);
    let mut mods = of_l2(&st, &[(5, "h5"), (6, "h6")]);
    mods.push(of_add(0x7500, 100, of_udp(STREAM_PORT), 6));
    for m in &mods {
        ctl2.send(m).expect("flow-mod");
    }
    ctl2.barrier(T).expect("barrier");
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    assert!(ping(&st, "h5", ip("h6"), 1), "h5 reaches h6\n{}", d.log());
    assert!(ping(&st, "h1", ip("h3"), 1), "h1 reaches h3\n{}", d.log());
    send_udp(&st, "h1", ip("h3"), COUNTED_PORT, 500, 32);
    let stream = Stream::start(&st, "h5", "h6");
    std::thread::sleep(Duration::from_millis(300));

    let o = lime(&["migrate", "vs1", "--to", "s3", "--lab", lab(), "--json"]);
    assert!(!o.status.success(), "the daemon died: {}", text(&o));
    expect_crash(&mut d);
    // While no daemon runs, the target physical switch goes away.
    lime_lab::netns::netns_del(&format!("lime-{}-s3", lab())).expect("deleting s3");
    std::thread::sleep(Duration::from_millis(500));

    let d = Daemon::start(&c, &topo, None, 2);
    let log = d.log();
    assert!(
        log.contains("physical switch s3 is gone") && log.contains("rolled back"),
        "the restarted daemon rolled the migration back:\n{log}"
    );
    let (copies, ports) = placement(&status());
    assert_eq!(
        copies,
        ["s1", "s2"],
        "s1 runs a copy again, s3 is forgotten\n{log}"
    );
    assert_eq!(
        ports,
        at(&[("h1", "s1"), ("h2", "s1"), ("h3", "s2"), ("h4", "s2")]),
        "every host is back where it was"
    );
    let lines = journal::read(&journal::path_for(lab())).expect("journal");
    assert!(
        matches!(
            lines.last().map(|l| &l.rec),
            Some(journal::Record::End {
                outcome: journal::Outcome::RolledBack,
                ..
            })
        ),
        "{:?}",
        lines.last()
    );
    std::thread::sleep(Duration::from_millis(300));
    let (sent, got, dup) = stream.finish();
    eprintln!(
        "roll-back: bystander stream h5 -> h6: {sent} sent, {got} received, {} lost, {dup} duplicated",
        sent - got
    );
    assert_eq!(
        (got, dup),
        (sent, 0),
        "the other tenant's stream lost nothing\n{log}"
    );
    assert_eq!(
        packets_of("vs2", 0x7500),
        sent,
        "vs2 counted every datagram once"
    );
    assert_eq!(
        packets_of("vs1", 0x7501),
        500,
        "what s1's retired copy counted is kept\n{log}"
    );
    assert!(ping(&st, "h1", ip("h3"), 1), "h1 reaches h3 again\n{log}");
    assert!(ping(&st, "h2", ip("h4"), 1), "h2 reaches h4 again");
    send_udp(&st, "h1", ip("h3"), COUNTED_PORT, 10, 32);
    assert_eq!(packets_of("vs1", 0x7501), 510, "s1's new copy counts on");
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st})");
}

/// Flow-mods the controller sends while a migration runs are applied between its
/// steps (and answered: a BARRIER_REPLY before the migration ends), so they change the
/// tables after `begin`'s snapshot: the journal records each batch before it is
/// published, and the tables whole before the next step. The
/// daemon crashes right before the second host moves; the restarted one must know
/// every rule whose barrier was answered — in its table and in the kernel, on the
/// same datapath rules (traffic hits them, counted once) — and finish the migration.
#[test]
fn flow_mods_applied_between_migration_steps_survive_a_crash() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let c = cleanup();
    const COUNTED: usize = 300;
    let (mut d, listener, mut ctl, topo) = start_lab(&c, Some("host-moving:2"), COUNTED);
    let st = lab_state();
    let migrate = std::thread::spawn(|| lime(&["migrate", "vs1", "--to", "s2", "--lab", lab()]));
    // Flow-mod + barrier, one round after the other, until the daemon dies.
    let mut answered: Vec<u16> = Vec::new();
    for k in 0..2000u16 {
        let port = 7600 + k;
        if ctl
            .send(&of_add(0x7600 + u64::from(k), 150, of_udp(port), 3))
            .is_err()
            || ctl.barrier(T).is_err()
        {
            break;
        }
        answered.push(port);
        std::thread::sleep(Duration::from_millis(2));
    }
    let o = migrate.join().expect("migrate thread");
    assert!(
        !o.status.success(),
        "the daemon died mid-migration: {}",
        text(&o)
    );
    expect_crash(&mut d);
    let lines = journal::read(&journal::path_for(lab())).expect("journal");
    let begin = lines
        .iter()
        .position(|l| l.rec.kind() == "begin")
        .expect("begin");
    let count = |kind: &str| {
        lines[begin..]
            .iter()
            .filter(|l| l.rec.kind() == kind)
            .count()
    };
    let (batches, tables) = (count("batch"), count("tables"));
    assert!(
        batches >= 1,
        "flow-mods were applied (and journaled) during the migration: {:?}",
        lines.iter().map(|l| l.rec.kind()).collect::<Vec<_>>()
    );
    eprintln!(
        "{} flow-mods answered before the crash; after `begin`: {batches} `batch`, {tables} `tables` records",
        answered.len()
    );

    let d = Daemon::start(&c, &topo, None, 2);
    let log = d.log();
    assert_resumed_to_s2(&log);
    assert_answered_rules_are_there(&st, &answered, &log);
    retired_counts_kept_then_stop(d, listener, COUNTED, &log);
}

/// A modify batch the table-full retry splits: three entries share one match (one
/// bucket of four slots on each copy), and one batch modifies two of them; the second
/// modify finds no slot until the first's version is published and its replaced rule
/// reclaimed. The daemon dies right after the second part's `batch` record — after
/// that reclaim. What the first entry's replaced rule counted must survive (the
/// journal records it before the reclaim).
#[test]
fn a_split_modify_batch_keeps_its_counters_across_a_crash() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let c = cleanup_for("jwsplit");
    const COUNTED: usize = 200;
    let (mut d, listener, mut ctl, topo) = start_lab(&c, Some("batch:2"), COUNTED);
    let st = lab_state();
    for (cookie, prio) in [(0x7502, 90), (0x7503, 80)] {
        ctl.send(&of_add(cookie, prio, of_udp(COUNTED_PORT), 3))
            .expect("flow-mod");
    }
    ctl.barrier(T).expect("barrier");
    let modify = |cookie, prio| {
        let lime_openflow::Message::FlowMod(mut m) = of_add(cookie, prio, of_udp(COUNTED_PORT), 3)
        else {
            unreachable!()
        };
        m.command = lime_openflow::consts::FlowModCommand::ModifyStrict;
        lime_openflow::Message::FlowMod(m)
    };
    let pair = [modify(0x7501, 100), modify(0x7502, 90)];
    let migrate = std::thread::spawn(|| lime(&["migrate", "vs1", "--to", "s2", "--lab", lab()]));
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    let (mut rounds, mut extra) = (0, 0u64);
    while rounds < 2000 {
        // Counted by 0x7501 (the highest priority), then both modifies in one write.
        send_udp(&st, "h4", ip("h3"), COUNTED_PORT, 5, 32);
        extra += 5;
        if ctl.send_many(&pair).is_err() || ctl.barrier(T).is_err() {
            break;
        }
        rounds += 1;
    }
    let o = migrate.join().expect("migrate thread");
    assert!(!o.status.success(), "the daemon died: {}", text(&o));
    expect_crash(&mut d);
    let lines = journal::read(&journal::path_for(lab())).expect("journal");
    assert_eq!(lines.last().map(|l| l.rec.kind()), Some("batch"));

    let d = Daemon::start(&c, &topo, None, 2);
    let log = d.log();
    assert_resumed_to_s2(&log);
    assert_eq!(
        packets(0x7501),
        COUNTED as u64 + extra,
        "what the first modified entry counted is kept, once ({rounds} rounds answered)\n{log}"
    );
    send_udp(&st, "h1", ip("h3"), COUNTED_PORT, 10, 32);
    assert_eq!(
        packets(0x7501),
        COUNTED as u64 + extra + 10,
        "and counts on"
    );
    drop(listener);
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st})");
}

/// The journal's disk fills up mid-migration (fault injection: every append fails from
/// the first `batch` record on). The flow-mods the controller sends are still applied
/// and answered; the `clone` migration stops at the next step with an error naming the
/// journal, the daemon keeps running, every answered rule is in the table and the
/// kernel, the virtual switch forwards, and the journal holds no torn line.
#[test]
fn a_journal_that_cannot_be_written_stops_a_clone_migration_between_steps() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let c = cleanup_for("jwfull");
    let (d, listener, mut ctl, _topo) = start_lab(&c, Some("fail:batch:1"), 10);
    let st = lab_state();
    let migrate = std::thread::spawn(|| lime(&["migrate", "vs1", "--to", "s2", "--lab", lab()]));
    let mut answered: Vec<u16> = Vec::new();
    for k in 0..2000u16 {
        if migrate.is_finished() {
            break;
        }
        let port = 7600 + k;
        ctl.send(&of_add(0x7600 + u64::from(k), 150, of_udp(port), 3))
            .expect("flow-mod");
        ctl.barrier(T)
            .unwrap_or_else(|e| panic!("barrier answered: {e}\n{}", d.log()));
        answered.push(port);
        std::thread::sleep(Duration::from_millis(2));
    }
    let o = migrate.join().expect("migrate thread");
    let log = d.log();
    assert!(
        !o.status.success() && text(&o).contains("journal could not be written"),
        "the migration stopped on the journal: {}\n{log}",
        text(&o)
    );
    assert!(
        !answered.is_empty(),
        "flow-mods were answered during the migration"
    );
    assert!(
        status()["migration"].is_null(),
        "no migration runs any more"
    );
    let lines = journal::read(&journal::path_for(lab())).expect("no torn line in the journal");
    assert!(
        lines.iter().all(|l| l.rec.kind() != "batch"),
        "no batch record was written"
    );
    assert_answered_rules_are_there(&st, &answered, &log);
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    assert!(ping(&st, "h1", ip("h3"), 1), "h1 reaches h3\n{log}");
    assert!(ping(&st, "h4", ip("h2"), 1), "h4 reaches h2\n{log}");
    drop(listener);
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st})");
}

/// The rules of the flow-mods `answered` (UDP to port `p`, cookie `0x7600 + p - 7600`)
/// are each in vs1's table once, and the last of them is the kernel's on every copy:
/// 25 datagrams from h1 and 25 from h4 (on different physical switches during the
/// migration) are counted once each.
fn assert_answered_rules_are_there(st: &lime_lab::LabState, answered: &[u16], log: &str) {
    let o = lime(&["dump-flows", "vs1", "--lab", lab(), "--json"]);
    assert!(o.status.success(), "lime dump-flows: {}", text(&o));
    let cookies: Vec<u64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("flow JSON"))
        .filter_map(|f| f["cookie"].as_u64())
        .collect();
    for p in answered {
        let cookie = 0x7600 + u64::from(p - 7600);
        assert_eq!(
            cookies.iter().filter(|c| **c == cookie).count(),
            1,
            "the rule with cookie {cookie:#x}, answered, is in the table once\n{log}"
        );
    }
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    let last = *answered.last().expect("a flow-mod answered");
    for h in ["h1", "h4"] {
        send_udp(st, h, ip("h3"), last, 25, 32);
    }
    assert_eq!(
        packets(0x7600 + u64::from(last - 7600)),
        50,
        "the last answered rule counts its traffic, once\n{log}"
    );
}

/// Packets counted by every entry of `vswitch`, as `lime dump-flows` reports them.
fn all_packets(vswitch: &str) -> u64 {
    let o = lime(&["dump-flows", vswitch, "--lab", lab(), "--json"]);
    assert!(o.status.success(), "lime dump-flows: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("flow JSON"))
        .map(|f| f["n_packets"].as_u64().expect("n_packets"))
        .sum()
}

/// The cookies of vs1's entries, as `lime dump-flows` reports them.
fn cookies() -> Vec<u64> {
    let o = lime(&["dump-flows", "vs1", "--lab", lab(), "--json"]);
    assert!(o.status.success(), "lime dump-flows: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("flow JSON"))
        .filter_map(|f| f["cookie"].as_u64())
        .collect()
}

/// The UDP port of the rule with `cookie` sent by [`crash_in_a_batch`].
fn port_of(cookie: u64) -> u16 {
    u16::try_from(cookie - 0x7600 + 7600).expect("a test cookie")
}

/// While vs1 migrates from s1 to s2 (h3 → h4 streaming on s2, which stay put), the
/// controller sends rounds of three flow-mods and a barrier; the daemon dies at fault
/// point `point`, inside the second batch journaled (a `batch` record). The restarted
/// daemon must finish the migration with the controller-visible table being what the
/// controller was told: every rule it got a BARRIER_REPLY for, and the crashed batch
/// whole (`kept`, its version was published somewhere) or not at all — and in the
/// kernel exactly that (no rule of the batch hidden there, or missing from a copy).
fn crash_in_a_batch(lab: &'static str, point: &str, kept: bool) {
    let c = cleanup_for(lab);
    const COUNTED: usize = 300;
    let (mut d, listener, mut ctl, topo) = start_lab(&c, Some(point), COUNTED);
    let st = lab_state();
    let stream = Stream::start(&st, "h3", "h4");
    std::thread::sleep(Duration::from_millis(300));
    let migrate = std::thread::spawn(move || lime(&["migrate", "vs1", "--to", "s2", "--lab", lab]));
    let mut answered: Vec<u64> = Vec::new();
    'rounds: for k in 0..600u64 {
        let round: Vec<u64> = (0..3).map(|j| 0x7600 + 3 * k + j).collect();
        for cookie in &round {
            if ctl
                .send(&of_add(*cookie, 150, of_udp(port_of(*cookie)), 3))
                .is_err()
            {
                break 'rounds;
            }
        }
        if ctl.barrier(T).is_err() {
            break;
        }
        answered.extend(round);
        std::thread::sleep(Duration::from_millis(2));
    }
    let o = migrate.join().expect("migrate thread");
    assert!(!o.status.success(), "the daemon died: {}", text(&o));
    expect_crash(&mut d);
    let crash_log = d.log();
    let sent_at_crash = stream.sent();
    let lines = journal::read(&journal::path_for(lab)).expect("journal");
    let Some(journal::Record::Batch { batch, .. }) = lines.last().map(|l| &l.rec) else {
        panic!(
            "the crash came right after a batch record: {:?}\n{crash_log}",
            lines.last()
        );
    };
    let in_batch: Vec<u64> = batch.put.iter().map(|e| e.rule.cookie).collect();
    assert!(
        !in_batch.is_empty() && in_batch.iter().all(|c| !answered.contains(c)),
        "the batch is one of an unanswered round: {in_batch:x?}"
    );
    eprintln!(
        "{point}: {} flow-mods answered, the crashed batch adds {} rules",
        answered.len(),
        in_batch.len()
    );
    std::thread::sleep(Duration::from_millis(700));
    let sent_while_down = stream.sent() - sent_at_crash;

    let d = Daemon::start(&c, &topo, None, 2);
    let log = d.log();
    // One more version on every copy (it would make anything left of a dropped batch
    // visible).
    let mut ctl = ScriptedController::accept(&listener, T)
        .unwrap_or_else(|e| panic!("the restarted daemon connects to the controller: {e}\n{log}"));
    ctl.send(&of_add(0x7fff, 150, of_udp(7599), 3))
        .expect("a flow-mod after the restart");
    ctl.barrier(T).expect("answered");
    assert_resumed_to_s2(&log);
    let now = cookies();
    for cookie in &answered {
        assert_eq!(
            now.iter().filter(|c| *c == cookie).count(),
            1,
            "the rule {cookie:#x}, answered before the crash, is in the table once\n{log}"
        );
    }
    for cookie in &in_batch {
        assert_eq!(
            now.iter().filter(|c| *c == cookie).count(),
            usize::from(kept),
            "the crashed batch's rule {cookie:#x} is {} ({point})\n{log}",
            if kept { "there" } else { "gone" }
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let (sent, got, dup) = stream.finish();
    eprintln!(
        "{point}: stream h3 -> h4: {sent} sent ({sent_while_down} while no daemon ran), {got} received, {} lost, {dup} duplicated",
        sent - got
    );
    assert!(
        sent_while_down > 1000,
        "the stream ran while the daemon was down"
    );
    assert_eq!(
        (got, dup),
        (sent, 0),
        "the stream between hosts that stay put lost nothing\n{crash_log}\n{log}"
    );
    // The batch's traffic, entering on s2 from a moved host (h1) and one that stayed
    // (h4): counted by the batch's rule if it was kept, else by rules the table knows
    // — never by a rule only the kernel has.
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    for cookie in [in_batch[0], in_batch[in_batch.len() - 1]] {
        let before = all_packets("vs1");
        send_udp(&st, "h1", ip("h3"), port_of(cookie), 25, 32);
        send_udp(&st, "h4", ip("h3"), port_of(cookie), 25, 32);
        if kept {
            assert_eq!(
                packets(cookie),
                50,
                "the kept rule counts its traffic\n{log}"
            );
        }
        assert!(
            all_packets("vs1") - before >= 50,
            "every datagram was counted by a rule the table knows\n{log}"
        );
    }
    retired_counts_kept_then_stop(d, listener, COUNTED, &log);
}

#[test]
fn a_batch_journaled_and_never_written_is_dropped_after_a_crash() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_in_a_batch("jwbatch", "batch:2", false);
}

#[test]
fn a_batch_prepared_on_every_copy_and_published_on_none_is_dropped_after_a_crash() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_in_a_batch("jwprep", "batch-prepared:2", false);
}

#[test]
fn a_batch_published_on_one_copy_only_is_published_on_all_after_a_crash() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_in_a_batch("jwhalf", "batch-half-published:2", true);
}

#[test]
fn a_batch_published_on_every_copy_is_kept_after_a_crash() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_in_a_batch("jwpub", "batch-published:2", true);
}

/// vs1 as in [`topology`], joined by a virtual link (vs1:9, its end on s1 — vs2:9, on
/// s2) to vs2 (h5 on s2, its own controller).
fn topology_with_vlink(c1: u16, c2: u16) -> String {
    let base = topology_with(c1, &[("h5", "s2")]);
    format!(
        r#"{base}
[[vswitch]]
name = "vs2"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{c2}"]
ports = [ {{ port = 5, host = "h5" }} ]
[[vlink]]
a = {{ vswitch = "vs1", port = 9, switch = "s1" }}
b = {{ vswitch = "vs2", port = 9, switch = "s2" }}
"#
    )
}

/// The interfaces of physical switch `sw` whose names start with `vl` (virtual links).
fn vlink_ifaces(sw: &str) -> Vec<String> {
    let ns = format!("lime-{}-{sw}", lab());
    let mut v: Vec<String> = lime_lab::netns::links(&ns)
        .expect("links")
        .into_iter()
        .map(|l| l.ifname)
        .filter(|n| n.starts_with("vl"))
        .collect();
    v.sort();
    v
}

/// vs1 migrates to s3 with its virtual link end (to vs2, which stays on s2); the daemon
/// dies right after the end moved to s3, and s3 goes away while no daemon runs — with
/// the link's veth pair (both ends go together). The restarted daemon rolls the
/// migration back and must make the link again, its end back on s1, so the link
/// carries traffic again.
#[test]
fn a_rolled_back_migration_makes_its_virtual_link_again() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let c = cleanup_for("jwrbl");
    let (l1, p1) = ScriptedController::listen().expect("listen");
    let (l2, p2) = ScriptedController::listen().expect("listen");
    let topo = c.dir.join("lab.toml");
    std::fs::write(&topo, topology_with_vlink(p1, p2)).expect("topology file");
    let mut d = Daemon::start(&c, &topo, Some("link-moved:1"), 1);
    let mut ctl1 = ScriptedController::accept(&l1, T).expect("vs1's controller");
    let mut ctl2 = ScriptedController::accept(&l2, T).expect("vs2's controller");
    let st = lab_state();
    for m in of_l2(
        &st,
        &[(1, "h1"), (2, "h2"), (3, "h3"), (4, "h4"), (9, "h5")],
    ) {
        ctl1.send(&m).expect("flow-mod");
    }
    ctl1.barrier(T).expect("barrier");
    for m in of_l2(
        &st,
        &[(5, "h5"), (9, "h1"), (9, "h2"), (9, "h3"), (9, "h4")],
    ) {
        ctl2.send(&m).expect("flow-mod");
    }
    ctl2.barrier(T).expect("barrier");
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    assert!(
        ping(&st, "h1", ip("h5"), 1),
        "h1 reaches h5 across the link\n{}",
        d.log()
    );

    let o = lime(&["migrate", "vs1", "--to", "s3", "--lab", lab(), "--json"]);
    assert!(!o.status.success(), "the daemon died: {}", text(&o));
    expect_crash(&mut d);
    assert_eq!(
        (vlink_ifaces("s1"), vlink_ifaces("s3")),
        (Vec::<String>::new(), vec!["vl1a-1".to_owned()]),
        "the link end had moved to s3 when the daemon died\n{}",
        d.log()
    );
    lime_lab::netns::netns_del(&format!("lime-{}-s3", lab())).expect("deleting s3");
    // (The kernel tears a deleted namespace's interfaces down in the background.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !vlink_ifaces("s2").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        vlink_ifaces("s2").is_empty(),
        "the link's pair died with s3: {:?}",
        vlink_ifaces("s2")
    );

    let d = Daemon::start(&c, &topo, None, 2);
    let log = d.log();
    assert!(
        log.contains("rolled back") && log.contains("making the link again"),
        "the restarted daemon rolled the migration back and made the link again:\n{log}"
    );
    let (copies, ports) = placement(&status());
    assert_eq!(copies, ["s1", "s2"], "s3 is forgotten\n{log}");
    assert_eq!(
        ports,
        at(&[
            ("h1", "s1"),
            ("h2", "s1"),
            ("h3", "s2"),
            ("h4", "s2"),
            ("link:vs2:9", "s1")
        ]),
        "every host and the link end are back where they were\n{log}"
    );
    assert_eq!(
        (vlink_ifaces("s1").len(), vlink_ifaces("s2").len()),
        (1, 1),
        "one pair again, s1 to s2: {:?} {:?}",
        vlink_ifaces("s1"),
        vlink_ifaces("s2")
    );
    assert!(
        ping(&st, "h1", ip("h5"), 1),
        "h1 reaches h5 across the link again\n{log}"
    );
    assert!(
        ping(&st, "h3", ip("h5"), 1),
        "h3 reaches h5 across the link again\n{log}"
    );
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st})");
}

/// vs1 migrates from s1 to s2 with its virtual link end; the daemon dies at fault point
/// `point` of the end's move, while h3 (vs1) streams across the link to h5 (vs2), both
/// staying put on s2. The restarted daemon must finish the move (one veth pair left,
/// both ends on s2) and the migration, and the stream lose nothing.
fn crash_in_a_link_move(lab: &'static str, point: &str) {
    let _c = cleanup_for(lab);
    let c = &_c;
    let (l1, p1) = ScriptedController::listen().expect("listen");
    let (l2, p2) = ScriptedController::listen().expect("listen");
    let topo = c.dir.join("lab.toml");
    std::fs::write(&topo, topology_with_vlink(p1, p2)).expect("topology file");
    let mut d = Daemon::start(c, &topo, Some(point), 1);
    let mut ctl1 = ScriptedController::accept(&l1, T).expect("vs1's controller");
    let mut ctl2 = ScriptedController::accept(&l2, T).expect("vs2's controller");
    let st = lab_state();
    let mut mods = of_l2(
        &st,
        &[(1, "h1"), (2, "h2"), (3, "h3"), (4, "h4"), (9, "h5")],
    );
    mods.push(of_add(0x7500, 100, of_udp(STREAM_PORT), 9));
    for m in &mods {
        ctl1.send(m).expect("flow-mod");
    }
    ctl1.barrier(T).expect("barrier");
    let mut mods = of_l2(
        &st,
        &[(5, "h5"), (9, "h1"), (9, "h2"), (9, "h3"), (9, "h4")],
    );
    mods.push(of_add(0x7500, 100, of_udp(STREAM_PORT), 5));
    for m in &mods {
        ctl2.send(m).expect("flow-mod");
    }
    ctl2.barrier(T).expect("barrier");
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    assert!(
        ping(&st, "h3", ip("h5"), 1),
        "h3 reaches h5 across the link\n{}",
        d.log()
    );
    assert!(ping(&st, "h1", ip("h5"), 1), "h1 reaches h5\n{}", d.log());
    assert_eq!(
        (vlink_ifaces("s1"), vlink_ifaces("s2")),
        (vec!["vl1a".to_owned()], vec!["vl1b".to_owned()])
    );
    let stream = Stream::start(&st, "h3", "h5");
    std::thread::sleep(Duration::from_millis(300));

    let o = lime(&["migrate", "vs1", "--to", "s2", "--lab", lab, "--json"]);
    assert!(!o.status.success(), "the daemon died: {}", text(&o));
    expect_crash(&mut d);
    let crash_log = d.log();
    let lines = journal::read(&journal::path_for(lab)).expect("journal");
    assert_eq!(
        lines.last().map(|l| l.rec.kind()),
        Some("link-moving"),
        "the crash came inside the link end's move\n{crash_log}"
    );
    let mid = (vlink_ifaces("s1"), vlink_ifaces("s2"));
    eprintln!("{point}: virtual link interfaces at the crash (s1, s2): {mid:?}");
    let sent_at_crash = stream.sent();
    std::thread::sleep(Duration::from_millis(700));
    let sent_while_down = stream.sent() - sent_at_crash;

    let d = Daemon::start(c, &topo, None, 2);
    let log = d.log();
    assert!(
        log.contains("unfinished migration") && log.contains("resumed and done"),
        "the restarted daemon resumed the migration:\n{log}"
    );
    let (copies, ports) = placement(&status());
    assert_eq!(copies, ["s2", "s3"], "s1's copy retired\n{log}");
    assert_eq!(
        ports,
        at(&[
            ("h1", "s2"),
            ("h2", "s2"),
            ("h3", "s2"),
            ("h4", "s2"),
            ("link:vs2:9", "s2")
        ]),
        "every host and the link end at the target\n{log}"
    );
    assert!(vlink_ifaces("s1").is_empty(), "no end left on s1\n{log}");
    assert_eq!(
        vlink_ifaces("s2"),
        ["vl1a-1", "vl1b-1"],
        "one pair, both ends on s2\n{log}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (sent, got, dup) = stream.finish();
    eprintln!(
        "{point}: stream h3 -> h5 across the link: {sent} sent ({sent_while_down} while no daemon ran), {got} received, {} lost, {dup} duplicated",
        sent - got
    );
    assert!(
        sent_while_down > 1000,
        "the stream ran while the daemon was down"
    );
    assert_eq!(
        (got, dup),
        (sent, 0),
        "the stream across the link lost nothing\n{crash_log}\n{log}"
    );
    assert_eq!(
        packets_of("vs2", 0x7500),
        sent,
        "vs2 counted every datagram once"
    );
    assert_eq!(packets_of("vs1", 0x7500), sent, "and so did vs1");
    assert!(
        ping(&st, "h1", ip("h5"), 1),
        "h1 (moved) reaches h5 across the link\n{log}"
    );
    assert!(ping(&st, "h5", ip("h4"), 1), "h5 reaches h4");
    drop((l1, l2));
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st})");
}

#[test]
fn a_crash_with_both_veth_pairs_of_a_link_end_is_finished_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_in_a_link_move("jwlink", "link-carried");
}

#[test]
fn a_crash_before_a_link_end_moved_is_finished_on_restart() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    crash_in_a_link_move("jwlnk0", "link-moving");
}

/// A flow-mod that modifies the counted rule during the migration replaces its
/// datapath rules on every copy; the daemon dies right after the `batch-done` record
/// that carries the entry's counters (their replaced rules are reclaimed by then). The
/// restarted daemon must still count what the rule counted before, once.
#[test]
fn a_modify_between_steps_keeps_its_counters_across_a_crash() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let c = cleanup_for("jwmod");
    const COUNTED: usize = 300;
    let (mut d, listener, mut ctl, topo) = start_lab(&c, Some("batch-done:1"), COUNTED);
    let st = lab_state();
    let stream = Stream::start(&st, "h3", "h4");
    std::thread::sleep(Duration::from_millis(300));
    let migrate = std::thread::spawn(|| lime(&["migrate", "vs1", "--to", "s2", "--lab", lab()]));
    let lime_openflow::Message::FlowMod(mut modify) = of_add(0x7501, 100, of_udp(COUNTED_PORT), 3)
    else {
        unreachable!()
    };
    modify.command = lime_openflow::consts::FlowModCommand::ModifyStrict;
    let modify = lime_openflow::Message::FlowMod(modify);
    // Each round, h4 (staying on s2) sends counted traffic, then the rule is modified:
    // its datapath rules, and what they counted, are replaced.
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    let (mut rounds, mut extra) = (0, 0u64);
    while rounds < 2000 {
        send_udp(&st, "h4", ip("h3"), COUNTED_PORT, 5, 32);
        extra += 5;
        if ctl.send(&modify).is_err() || ctl.barrier(T).is_err() {
            break;
        }
        rounds += 1;
    }
    let o = migrate.join().expect("migrate thread");
    assert!(!o.status.success(), "the daemon died: {}", text(&o));
    expect_crash(&mut d);
    let lines = journal::read(&journal::path_for(lab())).expect("journal");
    assert_eq!(lines.last().map(|l| l.rec.kind()), Some("batch-done"));
    let sent_at_crash = stream.sent();
    std::thread::sleep(Duration::from_millis(700));
    let sent_while_down = stream.sent() - sent_at_crash;

    let d = Daemon::start(&c, &topo, None, 2);
    let log = d.log();
    assert_resumed_to_s2(&log);
    assert_eq!(
        packets(0x7501),
        COUNTED as u64 + extra,
        "what the modified rule counted before is kept, once ({rounds} modifies answered)\n{log}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (sent, got, dup) = stream.finish();
    eprintln!(
        "modify: stream h3 -> h4: {sent} sent ({sent_while_down} while no daemon ran), {got} received, {} lost, {dup} duplicated",
        sent - got
    );
    assert_eq!((got, dup), (sent, 0), "the stream lost nothing\n{log}");
    send_udp(&st, "h1", ip("h3"), COUNTED_PORT, 10, 32);
    assert_eq!(
        packets(0x7501),
        COUNTED as u64 + extra + 10,
        "and counts on"
    );
    drop(listener);
    let st = d.stop();
    assert!(st.success(), "lime run stopped cleanly ({st})");
}

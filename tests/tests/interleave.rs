//! The controller's updates keep flowing during a migration: the switch core runs a
//! migration one step at a time (clone, each host, retire) and serves the controller
//! between steps. A scripted controller sends flow-mods and barriers while the virtual
//! switch moves; each BARRIER_REPLY comes while the migration is still running (before
//! its last leg is reported and before the migrate call returns), and the new rules
//! take effect on every copy: traffic entering the old copy and the new one hits them.
//!
//! Prints the flow-mod → BARRIER_REPLY latency during the migration, next to what a
//! core that runs the whole migration as one command would have made the controller
//! wait (until the migration ended).
use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use lime_tests::{
    fabric_pin_root, kernel_lock, of_add, of_l2, of_udp, require_root, send_udp, three_switch_toml,
};
use lime_userspace::{
    fabric::Fabric,
    migration::{Phase, Progress, Strategy},
    ofswitch::{Agent, AgentOptions, client::ScriptedController},
};

const T: Duration = Duration::from_secs(20);

fn topology(port: u16) -> lime_lab::Topology {
    let toml = format!(
        r#"{}
[[vswitch]]
name = "vs1"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{port}"]
ports = [ {{ port = 1, host = "h1" }}, {{ port = 2, host = "h2" }}, {{ port = 4, host = "h4" }}, {{ port = 3, host = "h3" }} ]
"#,
        three_switch_toml(
            "tintl",
            &[("h1", "s1"), ("h2", "s1"), ("h3", "s2"), ("h4", "s2")]
        )
    );
    lime_lab::Topology::from_toml_str(&toml).expect("test topology")
}

/// Packets counted by the entry with `cookie`, as the controller sees it.
fn packets_of(c: &mut ScriptedController, cookie: u64) -> u64 {
    lime_tests::of_packets_of(c, cookie, T)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[test]
fn flow_mods_are_answered_between_migration_steps_and_reach_every_copy() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (listener, p) = ScriptedController::listen().expect("listen");
    let fabric = Fabric::up(&topology(p), &fabric_pin_root()).expect("fabric");
    let agent = Agent::start(
        fabric,
        &AgentOptions {
            echo_interval: Duration::from_secs(1),
        },
    )
    .expect("agent");
    let mut c = ScriptedController::accept(&listener, T).expect("the switch connects");
    let st = agent.lab_state().clone();
    let ip = |h: &str| st.host(h).expect("host").ip.addr;
    for m in &of_l2(&st, &[(1, "h1"), (2, "h2"), (3, "h3"), (4, "h4")]) {
        c.send(m).expect("flow-mod");
    }
    c.barrier(T).expect("barrier");

    // The migration runs on its own thread; its progress events and its end are
    // stamped as they arrive.
    let (ev_tx, ev_rx) = mpsc::channel::<(Instant, Option<Progress>)>();
    let handle = agent.handle().clone();
    let migration = std::thread::spawn(move || {
        let tx = ev_tx.clone();
        let r = handle.migrate_with_progress("vs1", "s3", Strategy::Clone, move |p| {
            let _ = tx.send((Instant::now(), Some(p)));
        });
        let _ = ev_tx.send((Instant::now(), None));
        r
    });
    let mut events: Vec<(Instant, Option<Progress>)> =
        vec![ev_rx.recv_timeout(T).expect("the migration starts")];
    let mut answered: Vec<(Instant, Instant)> = Vec::new();
    let mut k = 2u64;
    let mut traffic_checked = false;
    // Rounds of flow-mod + barrier, one at a time, from the migration's first step to
    // its end. Once h1 is on s3's copy (h2 still on s1's; h4, then h3, move from s2's
    // in the second leg), the rules the traffic below must hit.
    loop {
        while let Ok(ev) = ev_rx.try_recv() {
            events.push(ev);
        }
        if events.iter().any(|(_, e)| e.is_none()) {
            break;
        }
        let h1_moved = events
            .iter()
            .any(|(_, e)| matches!(e, Some(Progress::HostMoved { host, .. }) if host == "h1"));
        if h1_moved && !traffic_checked {
            traffic_checked = true;
            let t0 = Instant::now();
            c.send(&of_add(0x7500, 200, of_udp(7500), 3))
                .expect("flow-mod");
            c.send(&of_add(0x7501, 200, of_udp(7501), 1))
                .expect("flow-mod");
            c.barrier(T).expect("barrier during the migration");
            answered.push((t0, Instant::now()));
            let during = agent.handle().status().expect("status");
            let m = during
                .migration
                .clone()
                .expect("the migration is still running");
            let vs = &during.vswitches[0];
            let place = |h: &str| {
                vs.ports
                    .iter()
                    .find(|p| p.host == h)
                    .map(|p| p.switch.clone())
            };
            eprintln!(
                "during the migration: phase {:?}, copies {:?}, h1 on {:?}, h3 on {:?}",
                m.phase,
                vs.copies,
                place("h1"),
                place("h3")
            );
            // h3 enters s2's copy (the old one), h1 enters s3's (the new one).
            send_udp(&st, "h3", ip("h1"), 7501, 40, 32);
            send_udp(&st, "h1", ip("h3"), 7500, 40, 32);
            let after = agent.handle().status().expect("status");
            let vs_after = &after.vswitches[0];
            let still =
                |h: &str, sw: &str| vs_after.ports.iter().any(|p| p.host == h && p.switch == sw);
            assert!(
                still("h3", "s2") && still("h1", "s3") && after.migration.is_some(),
                "the traffic was sent with h3 on s2's copy and h1 on s3's, the migration running: {after:?}"
            );
            continue;
        }
        let t = Instant::now();
        c.send(&of_add(
            0x7500 + k,
            100,
            of_udp(7500 + u16::try_from(k).unwrap_or(0)),
            3,
        ))
        .expect("flow-mod");
        c.barrier(T).expect("barrier");
        answered.push((t, Instant::now()));
        k += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let reports = migration
        .join()
        .expect("migration thread")
        .expect("migrate");
    for ev in ev_rx.try_iter() {
        events.push(ev);
    }
    let end = events
        .iter()
        .find(|(_, e)| e.is_none())
        .map(|(t, _)| *t)
        .expect("the migration's end");
    let last_leg = events
        .iter()
        .filter(|(_, e)| matches!(e, Some(Progress::Done { .. })))
        .map(|(t, _)| *t)
        .next_back()
        .expect("the last leg's report");
    let retire_s2 = events
        .iter()
        .find(|(_, e)| {
            matches!(e, Some(Progress::Phase { from, phase: Phase::Retire, .. }) if from == "s2")
        })
        .map(|(t, _)| *t)
        .expect("the retire of s2's copy");

    // Latency of every flow-mod sent while the migration ran, to its BARRIER_REPLY
    // (printed before any check, so a failing run shows them too).
    let sent_during: Vec<&(Instant, Instant)> = answered.iter().filter(|(s, _)| *s < end).collect();
    let mut lat: Vec<f64> = sent_during
        .iter()
        .map(|(s, r)| (*r - *s).as_secs_f64() * 1e3)
        .collect();
    let total: f64 = reports.iter().map(|r| r.total_ms).sum();
    for r in &reports {
        eprintln!("leg {} -> {}: {:?}", r.from, r.to, r.phases_ms);
    }
    let max = lat.iter().copied().fold(0.0, f64::max);
    let first_ms = lat.first().copied().unwrap_or(0.0);
    let n = lat.len();
    let med = median(&mut lat);
    let in_time = sent_during.iter().filter(|(_, r)| *r < last_leg).count();
    eprintln!(
        "flow-mod -> BARRIER_REPLY, {n} flow-mods sent during a {total:.0} ms migration ({in_time} answered before it ended): first (sent as it started) {first_ms:.1} ms, median {med:.2} ms, max {max:.2} ms"
    );
    println!(
        "{{\"bench\":\"barrier_during_migration\",\"flow_mods\":{n},\"answered_during\":{in_time},\"first_ms\":{first_ms:.3},\"median_ms\":{med:.3},\"max_ms\":{max:.3},\"migration_ms\":{total:.1}}}"
    );

    // Barriers were answered while the migration ran (before its last leg was
    // reported); the first one, sent as it started, before its last retire.
    assert!(
        answered[0].1 < retire_s2,
        "the first barrier during the migration was answered before its last retire"
    );
    assert!(
        in_time >= 2,
        "barriers answered during the migration: {in_time}"
    );
    assert!(
        traffic_checked,
        "h1 moved while the migration ran: {events:?}"
    );

    // The rules sent during the migration took effect wherever the packets entered:
    // every packet of both flows hit them, on the old copy and on the new one (the
    // retired copies' counts are folded in).
    assert_eq!(
        packets_of(&mut c, 0x7501),
        40,
        "h3's packets, entering s2's copy"
    );
    assert_eq!(
        packets_of(&mut c, 0x7500),
        40,
        "h1's packets, entering s3's copy"
    );
    let copies = agent
        .handle()
        .with_fabric(|f| f.copies("vs1").expect("copies"))
        .expect("core");
    assert_eq!(copies, ["s3"], "only the target's copy is left");
    let dump = agent.handle().dump_flows("vs1").expect("dump");
    for cookie in 0x7500..0x7500 + k {
        assert!(
            dump.iter().any(|d| d.cookie == cookie),
            "the rule with cookie {cookie:#x} is in the table"
        );
    }
    drop(agent);
}

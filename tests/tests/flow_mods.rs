//! OpenFlow 1.3 flow-mod semantics through the driver, checked with real traffic and
//! counters: add/replace, CHECK_OVERLAP, modify keeping or resetting counters, strict
//! and non-strict delete with cookie and out_port filters, invalid rules changing nothing.
use std::{net::UdpSocket, time::Duration};

use lime_common::action::port_no;
use lime_tests::{
    fabric_pin_root, kernel_lock, l2_rules, require_root, two_switch_topology, udp_match,
};
use lime_userspace::{
    fabric::Fabric,
    flow::{Action, Instructions, Match, Rule, matching::ethertype},
    vswitch::{Command, FlowMod, FlowModError, OFPTT_ALL, VirtualSwitch, flags},
};

fn fm(command: Command, table: u8, priority: u16, m: Match, out: u32, cookie: u64) -> FlowMod {
    let mut rule = Rule::new(
        table,
        priority,
        m,
        Instructions::apply(vec![Action::output(out)]),
    );
    rule.cookie = cookie;
    FlowMod {
        command,
        rule,
        cookie_mask: 0,
        out_port: port_no::ANY,
    }
}

fn send(f: &Fabric, n: usize) {
    let dst = f.lab().state().host("h3").expect("h3").ip.addr;
    f.lab()
        .run_in("h1", move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            for _ in 0..n {
                s.send_to(&[0u8; 18], (dst, 7000)).expect("send");
            }
        })
        .expect("sender");
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn flow_mod_semantics() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let topo = two_switch_topology("tfmod");
    let mut f = Fabric::up(&topo, &fabric_pin_root()).expect("fabric");
    let l2 = l2_rules(f.lab().state(), "vs1");
    f.install("vs1", &l2).expect("l2");
    let dst = f.lab().state().host("h3").expect("h3").ip.addr.to_string();
    assert!(
        f.lab()
            .exec("h1", &["ping", "-c", "1", "-W", "1", &dst])
            .expect("ping")
            .status
            .success()
    );
    let mut vs = VirtualSwitch::new("vs1");
    let frame = (14 + 20 + 8 + 18) as u64;

    // Add, count.
    let a = vs
        .apply(
            &mut f,
            &fm(Command::Add, 0, 100, udp_match(Some(7000)), 3, 0x10),
        )
        .expect("add")
        .added[0];
    send(&f, 10);
    assert_eq!(vs.stats(&f, a).expect("stats").packets, 10);
    assert_eq!(vs.stats(&f, a).expect("stats").bytes, 10 * frame);

    // Non-strict modify (a wider match covers the entry): counters kept.
    let out = vs
        .apply(&mut f, &fm(Command::Modify, 0, 1, udp_match(None), 3, 0))
        .expect("modify");
    assert_eq!(out.modified, vec![a]);
    send(&f, 5);
    assert_eq!(
        vs.stats(&f, a).expect("stats").packets,
        15,
        "modify keeps counters"
    );
    assert_eq!(
        vs.entry(a).expect("entry").rule.cookie,
        0x10,
        "modify keeps the cookie"
    );

    // Strict modify with a different priority matches nothing.
    let out = vs
        .apply(
            &mut f,
            &fm(Command::ModifyStrict, 0, 99, udp_match(Some(7000)), 3, 0),
        )
        .expect("modify strict");
    assert!(out.modified.is_empty());

    // RESET_COUNTS.
    let mut reset = fm(Command::ModifyStrict, 0, 100, udp_match(Some(7000)), 3, 0);
    reset.rule.flags = flags::RESET_COUNTS;
    vs.apply(&mut f, &reset).expect("reset");
    send(&f, 2);
    assert_eq!(vs.stats(&f, a).expect("stats").packets, 2, "RESET_COUNTS");

    // CHECK_OVERLAP: same priority, overlapping match → refused, nothing changes.
    let before: Vec<u64> = vs.entries().map(|e| e.id).collect();
    let mut overlap = fm(Command::Add, 0, 100, udp_match(None), 3, 0);
    overlap.rule.flags = flags::CHECK_OVERLAP;
    assert!(
        matches!(vs.apply(&mut f, &overlap), Err(FlowModError::Overlap { existing }) if existing == a)
    );
    assert_eq!(vs.entries().map(|e| e.id).collect::<Vec<_>>(), before);

    // An invalid rule (TCP port without ip_proto) is refused and changes nothing.
    let bad = fm(
        Command::Add,
        0,
        5,
        Match {
            tcp_dst: Some(1),
            eth_type: Some(ethertype::IPV4),
            ..Match::default()
        },
        3,
        0,
    );
    assert!(matches!(vs.apply(&mut f, &bad), Err(FlowModError::Rule(_))));
    assert_eq!(vs.entries().map(|e| e.id).collect::<Vec<_>>(), before);

    // Identical add replaces: the old entry is reported removed, the new one counts anew.
    let out = vs
        .apply(
            &mut f,
            &fm(Command::Add, 0, 100, udp_match(Some(7000)), 3, 0x20),
        )
        .expect("replace");
    assert_eq!(out.removed.len(), 1);
    assert_eq!(
        out.removed[0].1.packets, 2,
        "final counters of the replaced entry"
    );
    let b = out.added[0];
    send(&f, 3);
    assert_eq!(vs.stats(&f, b).expect("stats").packets, 3);

    // Delete filtered by cookie: a wrong cookie removes nothing, the right one removes it.
    let mut del = fm(Command::Delete, OFPTT_ALL, 0, Match::default(), 3, 0x99);
    del.cookie_mask = u64::MAX;
    assert!(vs.apply(&mut f, &del).expect("delete").removed.is_empty());
    // out_port filter: the entry outputs to 3, not 1.
    let mut del = fm(Command::Delete, OFPTT_ALL, 0, Match::default(), 3, 0x20);
    del.cookie_mask = u64::MAX;
    del.out_port = 1;
    assert!(vs.apply(&mut f, &del).expect("delete").removed.is_empty());
    del.out_port = 3;
    let out = vs.apply(&mut f, &del).expect("delete");
    assert_eq!(out.removed.len(), 1);
    assert_eq!(out.removed[0].1.packets, 3, "final counters on delete");
    assert_eq!(vs.entries().count(), 0);
    // With the rule gone the UDP traffic falls to the L2 rule (by MAC), not counted here.
    send(&f, 1);
}

/// Many flow-mods that rewrite one entry in one batch (a controller faster than the
/// core: they are queued and applied together) all succeed, as on one switch, and the
/// last one wins; the counters survive every modify.
#[test]
fn a_batch_may_modify_one_entry_many_times() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = Fabric::up(&two_switch_topology("tfmbat"), &fabric_pin_root()).expect("fabric");
    let mut vsw = VirtualSwitch::new("vs1");
    let l2 = l2_rules(f.lab().state(), "vs1");
    for r in l2 {
        vsw.apply(&mut f, &FlowMod::add(r)).expect("l2");
    }
    let m = udp_match(Some(7000));
    let add = fm(Command::Add, 0, 100, m.clone(), 3, 0x70);
    vsw.apply(&mut f, &add).expect("add");
    send(&f, 5);
    let mods: Vec<FlowMod> = (0..20)
        .map(|i| {
            let out = if i % 2 == 0 { 1 } else { 3 };
            fm(Command::ModifyStrict, 0, 100, m.clone(), out, 0x70)
        })
        .collect();
    let results = vsw.apply_batch(&mut f, &mods).expect("publish");
    let failed: Vec<String> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("{i}: {e}")))
        .collect();
    assert!(failed.is_empty(), "modifies refused: {failed:?}");
    send(&f, 5);
    let e = vsw
        .entries()
        .find(|e| e.rule.cookie == 0x70)
        .expect("the entry");
    assert!(
        e.rule.instructions.outputs_to(3),
        "the last modify wins: {:?}",
        e.rule.instructions
    );
    assert_eq!(
        vsw.stats(&f, e.id).expect("stats").packets,
        10,
        "counted before and after the modifies"
    );
}

/// Deferred reclaim at the driver: a deferred modify or delete returns with its old
/// version still unreclaimed; in between, a modified entry's statistics include what
/// its old rule counted, read live (packets still arriving there are counted once);
/// after the reclaim they are folded in, equal; a deleted entry comes out of
/// `take_removed` only then, with its final counters; `owes_notice` tells a barrier
/// whether it must wait.
#[test]
fn deferred_reclaim_counts_across_publish_and_reclaim() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = Fabric::up(&two_switch_topology("frvs"), &fabric_pin_root()).expect("fabric");
    let mut vsw = VirtualSwitch::new("vs1");
    for r in l2_rules(f.lab().state(), "vs1") {
        vsw.apply(&mut f, &FlowMod::add(r)).expect("l2");
    }
    let m = udp_match(Some(7000));
    let mut add = fm(Command::Add, 0, 100, m.clone(), 3, 0x71);
    add.rule.flags = flags::SEND_FLOW_REM;
    let id = vsw.apply(&mut f, &add).expect("add").added[0];
    send(&f, 4);
    assert_eq!(vsw.stats(&f, id).expect("stats").packets, 4);

    let modify = fm(Command::ModifyStrict, 0, 100, m.clone(), 3, 0x71);
    let r = vsw
        .apply_batch_deferred(&mut f, std::slice::from_ref(&modify))
        .expect("publish");
    assert_eq!(r[0].as_ref().expect("modify").modified, vec![id]);
    assert!(
        f.unreclaimed("vs1") && vsw.settling(),
        "returned before the reclaim"
    );
    assert!(!vsw.owes_notice(), "a modify owes no FLOW_REMOVED");
    assert_eq!(
        vsw.stats(&f, id).expect("stats").packets,
        4,
        "the old rule's counters, read live, before the reclaim"
    );
    send(&f, 2);
    vsw.settle(&mut f, true).expect("settle");
    assert!(!f.unreclaimed("vs1") && !vsw.settling());
    assert_eq!(vsw.stats(&f, id).expect("stats").packets, 6, "folded, once");

    let mut del = fm(Command::DeleteStrict, 0, 100, m, 3, 0x71);
    del.rule.flags = 0;
    vsw.apply_batch_deferred(&mut f, &[del]).expect("publish");
    assert!(
        vsw.owes_notice(),
        "a SEND_FLOW_REM entry waits for its FLOW_REMOVED"
    );
    assert!(
        vsw.take_removed().is_empty(),
        "not before its version is reclaimed"
    );
    assert!(
        vsw.entries().all(|e| e.id != id),
        "gone from the table at once"
    );
    vsw.settle(&mut f, true).expect("settle");
    let removed = vsw.take_removed();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].entry.id, id);
    assert_eq!(removed[0].why, lime_userspace::vswitch::Why::Deleted);
    assert_eq!(
        removed[0].stats.packets, 6,
        "every packet the entry's rules counted"
    );
    assert!(!vsw.owes_notice());
}

//! The datapath side of recovering a migration step a crash cut short: a copy whose
//! clone was written to a physical switch's maps but never published (the control
//! plane died between prepare and publish) is found as such by a restarted control
//! plane, removed without ever becoming visible, and the next version published there
//! does not bring it back. Copies that were published, and removed, are told apart.
//! And a versioned update (a flow-mod batch) that a crash cut short inside its
//! two-phase publish — prepared on every copy, published on some or none — is
//! published everywhere or dropped everywhere, never left half.
use lime_tests::{
    fabric_pin_root, kernel_lock, l2_rules, ping, require_root, send_udp, two_switch_topology,
};
use lime_userspace::{
    fabric::{Fabric, RulesState},
    flow::{Action, Instructions, Rule},
};

#[test]
fn an_unpublished_copy_found_after_a_restart_is_discarded_unseen() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = Fabric::up(&two_switch_topology("tjrnlk"), &fabric_pin_root()).expect("fabric");
    let l2 = l2_rules(f.lab().state(), "vs1");
    let installed = f.install("vs1", &l2).expect("l2");
    let on_s1: Vec<u32> = installed.iter().map(|i| i.ids_on("s1")).collect();
    assert_eq!(
        f.rules_state("vs1", "s1", &on_s1).expect("state"),
        RulesState::Published
    );
    let h3 = f.lab().state().host("h3").expect("h3").ip.addr;
    assert!(ping(f.lab().state(), "h1", h3, 1), "h1 reaches h3");

    // A second set of rules is written to s2 and marked ready, never published: what a
    // clone leaves when the control plane dies inside its commit.
    let vid = f.vswitch_id("vs1").expect("id");
    let extra: Vec<Rule> = (0..8u16)
        .map(|i| {
            Rule::new(
                0,
                200 + i,
                lime_tests::udp_match(Some(7700 + i)),
                Instructions::apply(vec![Action::output(1)]),
            )
        })
        .collect();
    let dp = f.datapath_mut("s2").expect("s2");
    let ids: Vec<u32> = extra
        .iter()
        .map(|r| dp.stage_add(vid, r).expect("stage"))
        .collect();
    assert!(dp.prepare(vid).expect("prepare"), "something written");
    // The control plane restarts: s2's mirror is rebuilt from its maps.
    f.reopen_datapath("s2").expect("reopen s2");
    assert_eq!(
        f.rules_state("vs1", "s2", &ids).expect("state"),
        RulesState::Unpublished,
        "written, not visible"
    );
    let before = f.datapath("s2").expect("s2").version(vid);
    f.discard_unpublished("vs1", "s2", &ids).expect("discard");
    assert_eq!(
        f.rules_state("vs1", "s2", &ids).expect("state"),
        RulesState::Missing,
        "gone from the datapath"
    );
    // The next version on s2 publishes nothing of them.
    let later = f
        .install(
            "vs1",
            &[Rule::new(
                0,
                300,
                lime_tests::udp_match(Some(7800)),
                Instructions::apply(vec![Action::output(3)]),
            )],
        )
        .expect("a later update");
    assert!(f.datapath("s2").expect("s2").version(vid) > before);
    let s2_ids: Vec<u32> = later.iter().map(|i| i.ids_on("s2")).collect();
    assert_eq!(
        f.rules_state("vs1", "s2", &s2_ids).expect("state"),
        RulesState::Published
    );
    let visible = f
        .datapath("s2")
        .expect("s2")
        .store()
        .visible(
            vid,
            f.datapath("s2").expect("s2").version(vid).expect("version"),
        )
        .count();
    assert_eq!(
        visible,
        l2.len() + 1,
        "s2 sees the table and the later rule, none of the discarded ones"
    );
    assert!(ping(f.lab().state(), "h1", h3, 1), "h1 still reaches h3");

    // Removed (published) rules are told apart from unpublished ones.
    let (_, finals) = f.update("vs1", &later, &[]).expect("remove");
    assert_eq!(finals.len(), 1);
    assert_eq!(
        f.rules_state("vs1", "s2", &s2_ids).expect("state"),
        RulesState::Missing,
        "an update reclaims what it removes"
    );
}

/// The datapath rule ids of `vswitch` visible on `switch` now.
fn visible(f: &Fabric, switch: &str, vid: u16) -> Vec<u32> {
    let dp = f.datapath(switch).expect("datapath");
    let v = dp.version(vid).expect("version");
    let mut ids: Vec<u32> = dp.store().visible(vid, v).map(|(id, _)| id).collect();
    ids.sort_unstable();
    ids
}

/// Write and mark ready what is staged for `vid` on every copy (the first phase of a
/// commit), publishing nothing.
fn prepare_all(f: &mut Fabric, copies: &[String], vid: u16) {
    for sw in copies {
        assert!(
            f.datapath_mut(sw)
                .expect("dp")
                .prepare(vid)
                .expect("prepare"),
            "something written on {sw}"
        );
    }
}

fn udp_rule(priority: u16, port: u16, out: u32) -> Rule {
    Rule::new(
        0,
        priority,
        lime_tests::udp_match(Some(port)),
        Instructions::apply(vec![Action::output(out)]),
    )
}

#[test]
fn a_batch_cut_short_inside_its_two_phase_publish_is_settled_on_every_copy() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let mut f = Fabric::up(&two_switch_topology("jwkern"), &fabric_pin_root()).expect("fabric");
    let vid = f.vswitch_id("vs1").expect("id");
    let l2 = l2_rules(f.lab().state(), "vs1");
    f.install("vs1", &l2).expect("l2");
    let old = f
        .install("vs1", &[udp_rule(200, 7700, 3)])
        .expect("old rule");
    let st = f.lab().state().clone();
    let h3 = st.host("h3").expect("h3").ip.addr;
    send_udp(&st, "h1", h3, 7700, 20, 32);
    let copies = f.copies("vs1").expect("copies");
    assert_eq!(copies, ["s1", "s2"]);

    // A batch replacing the old rule by a new one is made ready on both copies and
    // published on s1 only; then the control plane dies.
    let v = f.datapath("s1").expect("s1").version(vid).expect("v");
    let new = f
        .stage("vs1", &old, &[udp_rule(200, 7701, 3)])
        .expect("stage");
    prepare_all(&mut f, &copies, vid);
    f.datapath_mut("s1")
        .expect("s1")
        .publish(vid)
        .expect("publish on s1");
    for sw in &copies {
        f.reopen_datapath(sw).expect("reopen");
    }
    assert_eq!(f.datapath("s1").expect("s1").version(vid), Some(v + 1));
    assert_eq!(
        f.datapath("s2").expect("s2").version(vid),
        Some(v),
        "only ready"
    );
    let retired = f
        .settle_prepared("vs1", &copies, true)
        .expect("published: publish everywhere");
    for sw in &copies {
        assert_eq!(
            f.datapath(sw).expect("dp").version(vid),
            Some(v + 1),
            "{sw}"
        );
        let ids = visible(&f, sw, vid);
        assert!(
            ids.contains(&new[0].ids_on(sw)),
            "the new rule is visible on {sw}"
        );
        assert!(
            !ids.contains(&old[0].ids_on(sw)),
            "the old one is not, on {sw}"
        );
        assert_eq!(ids.len(), l2.len() + 1, "nothing else changed on {sw}");
    }
    assert_eq!(
        retired.of(&old[0]).packets,
        20,
        "the replaced rule's final counters come back from the reclaim"
    );

    // A second batch is made ready on both and published on neither: dropped on both,
    // and a later version publishes nothing of it (the rule it removed stays).
    let newer = f
        .stage("vs1", &new, &[udp_rule(200, 7702, 3)])
        .expect("stage");
    prepare_all(&mut f, &copies, vid);
    for sw in &copies {
        f.reopen_datapath(sw).expect("reopen");
    }
    f.settle_prepared("vs1", &copies, false)
        .expect("unpublished: drop everywhere");
    let later = f
        .install("vs1", &[udp_rule(300, 7800, 3)])
        .expect("a later update");
    for sw in &copies {
        assert_eq!(
            f.datapath(sw).expect("dp").version(vid),
            Some(v + 2),
            "{sw}"
        );
        let ids = visible(&f, sw, vid);
        assert!(
            ids.contains(&new[0].ids_on(sw)),
            "the batch's removal was dropped on {sw}"
        );
        assert!(
            !ids.contains(&newer[0].ids_on(sw)) || newer[0].ids_on(sw) == later[0].ids_on(sw),
            "the batch's rule never became visible on {sw}"
        );
        assert_eq!(
            ids.len(),
            l2.len() + 2,
            "the table, its rule, the later one ({sw})"
        );
    }
    assert!(ping(f.lab().state(), "h1", h3, 1), "h1 still reaches h3");
}

//! The datapath side of recovering a migration step a crash cut short: a copy whose
//! clone was written to a physical switch's maps but never published (the control
//! plane died between prepare and publish) is found as such by a restarted control
//! plane, removed without ever becoming visible, and the next version published there
//! does not bring it back. Copies that were published, and removed, are told apart.
use lime_tests::{fabric_pin_root, kernel_lock, l2_rules, ping, require_root, two_switch_topology};
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

//! Transparency on random schedules (a property test with few cases and a fixed seed:
//! each case brings up the lab twice). A schedule mixes host packets, background
//! streams, rule-set changes, barriers, stats requests and sleeps, with a `clone`
//! migration starting and ending at random places; whatever it is, the run with the
//! migration must be one the run without it allows. `LIME_PROPTEST_CASES` sets the
//! number of cases (default 3).
use std::{cell::Cell, time::Duration};

use lime_tests::{
    kernel_lock, require_root,
    transparency::{Step, check, mark_rule},
};
use lime_userspace::migration::Strategy as How;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRng, TestRunner},
};

mod transparency_lab;
use transparency_lab::*;

/// One random action (flows 0..4 of the standard lab: h1⇄h3, h2⇄h3).
#[derive(Debug, Clone)]
enum Action {
    Packets(usize, u32),
    Stream(usize, u32, u64),
    NewRuleSet,
    Barrier,
    Stats(usize),
    Sleep(u64),
    Settle,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..4usize, 1..8u32).prop_map(|(f, n)| Action::Packets(f, n)),
        1 => (0..4usize, 20..80u32, 1..3u64).prop_map(|(f, n, g)| Action::Stream(f, n, g)),
        3 => Just(Action::NewRuleSet),
        1 => Just(Action::Barrier),
        2 => (0..4usize).prop_map(Action::Stats),
        1 => (1..30u64).prop_map(Action::Sleep),
        1 => Just(Action::Settle),
    ]
}

fn schedule(actions: &[Action], start: usize, end: usize) -> Vec<Step> {
    let mut steps = vec![Step::SendMany(base_rules()), Step::Barrier];
    let polls = stats_polls();
    let mut generation = 1;
    for (i, a) in actions.iter().enumerate() {
        if i == start {
            steps.push(Step::MigrateStart);
        }
        if i == end {
            steps.push(Step::MigrateJoin);
        }
        steps.push(match a {
            Action::Packets(flow, count) => Step::Packets {
                flow: *flow,
                count: *count,
            },
            Action::Stream(flow, count, gap) => Step::Stream {
                flow: *flow,
                count: *count,
                gap: Duration::from_millis(*gap),
            },
            Action::NewRuleSet => {
                generation += 1;
                Step::Send(mark_rule(generation, true))
            }
            Action::Barrier => Step::Barrier,
            Action::Stats(i) => polls[*i].clone(),
            Action::Sleep(ms) => Step::Sleep(Duration::from_millis(*ms)),
            Action::Settle => Step::Settle,
        });
    }
    if end >= actions.len() {
        steps.push(Step::MigrateJoin);
    }
    steps.extend([Step::Join, Step::Settle]);
    steps.extend(traffic_round(3));
    steps.extend(stats_polls());
    steps
}

#[test]
fn random_schedules_are_transparent() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let cases = std::env::var("LIME_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let config = Config {
        cases,
        failure_persistence: None,
        // A case takes two lab runs: report the first failure as it is.
        max_shrink_iters: 0,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config.clone(),
        TestRng::deterministic_rng(config.rng_algorithm),
    );
    let strategy = proptest::collection::vec(action(), 10..40).prop_flat_map(|actions| {
        let n = actions.len();
        (Just(actions), 0..n).prop_flat_map(move |(a, start)| (Just(a), Just(start), start + 1..=n))
    });
    let case = Cell::new(0);
    runner
        .run(&strategy, |(actions, start, end)| {
            case.set(case.get() + 1);
            eprintln!(
                "case {}: migration from action {start} to {end} of {actions:?}",
                case.get()
            );
            let w = workload("ttp1", schedule(&actions, start, end));
            let (_, _, v) = check(&w, &plan(How::Clone));
            if v.differences.is_empty() {
                Ok(())
            } else {
                Err(TestCaseError::fail(format!("{actions:?}\n{v}")))
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

//! Criterion benchmarks of the control plane's hot paths that do no I/O: compiling a
//! rule into its datapath map entries (match key and mask, action program), and staging
//! and planning a whole rule set as one version in the rule store (the map operations a
//! commit writes).
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lime_userspace::{datapath::RuleStore, testgen::rules_over_masks};

fn compile(c: &mut Criterion) {
    let rules = rules_over_masks(1000, 8, 0x11e);
    let mut g = c.benchmark_group("compile");
    g.throughput(Throughput::Elements(rules.len() as u64));
    g.bench_function("1000 rules: match + program", |b| {
        b.iter(|| {
            for r in &rules {
                black_box(r.matches.compile());
                black_box(r.instructions.compile(r.table, r.cookie));
            }
        });
    });
    g.finish();

    let mut g = c.benchmark_group("rule_store");
    for (n, masks) in [(1000usize, 8usize), (10_000, 8)] {
        let rules = rules_over_masks(n, masks, 0x11e);
        let compiled: Vec<_> = rules
            .iter()
            .map(|r| {
                let (v, m) = r.matches.compile();
                (
                    r.table,
                    r.priority,
                    v,
                    m,
                    r.instructions.compile(r.table, r.cookie),
                )
            })
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("stage + plan {n} rules over {masks} masks"), |b| {
            b.iter_batched(
                || {
                    let mut s = RuleStore::new();
                    s.add_vswitch(1);
                    s
                },
                |mut s| {
                    for (t, p, v, m, prog) in &compiled {
                        s.stage_add(1, *t, *p, *v, *m, *prog).expect("fits");
                    }
                    black_box(s.plan_commit(1).expect("plans"))
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);

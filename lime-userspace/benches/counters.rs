//! Criterion benchmarks of counter merging, the userspace half of every statistics
//! reply and idle-timeout check: a rule's per-CPU counters summed (what the driver
//! does with each per-CPU map read), its last-hit time derived from the packet count
//! ([`LastHits`]), and its copies' counts merged with what retired copies left
//! ([`RuleStats::merge`]). The map reads themselves are system calls, measured by
//! `lime bench openflow` (its idle-sweep row) rather than here.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lime_common::stats::{RuleCounters, RuleStats};
use lime_userspace::datapath::hits::LastHits;

const RULES: usize = 100_000;

fn per_cpu(rules: usize, cpus: usize) -> Vec<Vec<RuleCounters>> {
    (0..rules)
        .map(|r| {
            (0..cpus)
                .map(|c| RuleCounters {
                    packets: (r * 7 + c) as u64,
                    bytes: (r * 7 + c) as u64 * 64,
                })
                .collect()
        })
        .collect()
}

fn counters(c: &mut Criterion) {
    let mut g = c.benchmark_group("counters");
    g.throughput(Throughput::Elements(RULES as u64));
    for cpus in [2usize, 64] {
        let values = per_cpu(RULES, cpus);
        g.bench_function(format!("sum {RULES} rules over {cpus} CPUs"), |b| {
            b.iter(|| {
                for v in &values {
                    black_box(RuleCounters::sum(black_box(v)));
                }
            });
        });
    }
    let hits = LastHits::default();
    let mut now = 1_000_000_000u64;
    g.bench_function(format!("last hit of {RULES} rules, counts moving"), |b| {
        b.iter(|| {
            now += 1_000_000;
            for id in 0..RULES as u32 {
                black_box(hits.observe(id, now / 1000 + u64::from(id), now));
            }
        });
    });
    g.bench_function(format!("last hit of {RULES} rules, counts still"), |b| {
        b.iter(|| {
            now += 1_000_000;
            for id in 0..RULES as u32 {
                black_box(hits.observe(id, u64::from(id), now));
            }
        });
    });
    let copies: Vec<[RuleStats; 3]> = (0..RULES as u64)
        .map(|i| {
            [
                RuleStats {
                    packets: i,
                    bytes: i * 64,
                    last_hit_ns: i,
                },
                RuleStats {
                    packets: i + 1,
                    bytes: i * 64 + 64,
                    last_hit_ns: i + 5,
                },
                RuleStats {
                    packets: 3,
                    bytes: 192,
                    last_hit_ns: 0,
                },
            ]
        })
        .collect();
    g.bench_function(
        format!("merge {RULES} rules: two copies and a retired copy's finals"),
        |b| {
            b.iter(|| {
                for [live_a, live_b, retired] in &copies {
                    black_box(black_box(*retired).merge(*live_a).merge(*live_b));
                }
            });
        },
    );
    g.finish();
}

criterion_group!(benches, counters);
criterion_main!(benches);

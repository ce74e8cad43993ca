//! `lime bench ...`: benchmarks that print numbers (and JSON). Not timed tests: they
//! measure, and compare against a baseline measured in the same run.
use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::Subcommand;
use lime_common::{
    flow::{VSW_F_CACHE_ALWAYS_MISS, VSW_F_NO_CACHE},
    names,
    port::{PortInfo, VportInfo, kind, location},
};
use lime_userspace::{
    datapath::Datapath,
    testgen::{packet_hitting, packet_missing, rules_over_masks},
};
use serde::Serialize;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Per-packet cost of the XDP datapath through BPF_PROG_TEST_RUN, with 1, 1 000 and
    /// 100 000 rules over 1, 8 and 32 masks, beside a minimal program that only
    /// redirects, measured in the same run.
    Datapath {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Runs per frame (BPF_PROG_TEST_RUN repeat count).
        #[arg(long, default_value_t = 20_000)]
        repeat: u32,
        /// Distinct frames per configuration (each hits a different rule).
        #[arg(long, default_value_t = 64)]
        frames: usize,
        /// Rule counts to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 1000, 100_000])]
        rules: Vec<usize>,
        /// Mask counts to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32])]
        masks: Vec<usize>,
    },
    /// OpenFlow from a controller's side: flow-mod install rate (batches of 1 000 and
    /// 100 000 until BARRIER_REPLY) and packet-in rate delivered to the controller.
    Openflow(super::bench_openflow::OpenflowArgs),
}

/// One measurement; with `--json`, one line each.
#[derive(Serialize)]
struct Sample {
    program: &'static str,
    rules: usize,
    masks: usize,
    /// "none" (cache bypassed), "hit" (answered by the flow cache) or "miss" (looked up,
    /// missed, filled).
    cache: &'static str,
    /// "rule-hit": frames matching a rule; "table-miss": a frame matching none.
    traffic: &'static str,
    ns_per_packet: f64,
}

/// Run a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Openflow(a) => super::bench_openflow::run(&a),
        BenchCommand::Datapath {
            json,
            repeat,
            frames,
            rules,
            masks,
        } => {
            super::require_root()?;
            datapath(json, repeat, frames, &rules, &masks)
        }
    }
}

/// A private datapath in this namespace: loopback (ifindex 1) is virtual port 1 of
/// virtual switch 1; port 2 is local (redirect to loopback; BPF_PROG_TEST_RUN does not
/// transmit).
fn bench_datapath(pin_root: &std::path::Path) -> anyhow::Result<Datapath> {
    let mut dp = Datapath::load("bench", None, pin_root)?;
    dp.add_vswitch(1)?;
    dp.kernel_mut().set_port(
        1,
        PortInfo {
            kind: kind::HOST,
            _pad: 0,
            vswitch: 1,
            vport: 1,
        },
    )?;
    dp.set_vport(
        1,
        2,
        VportInfo {
            location: location::LOCAL,
            ifindex: 1,
            ..VportInfo::default()
        },
    )?;
    dp.kernel_mut().set_floor_target(1)?;
    Ok(dp)
}

/// Mean kernel-measured ns per run over `frames`.
fn cost(dp: &Datapath, program: &str, frames: &[Vec<u8>], repeat: u32) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for f in frames {
        let r = dp.kernel().test_run(program, f, repeat)?;
        total += r.duration.as_nanos() as f64;
    }
    Ok(total / frames.len() as f64)
}

fn datapath(
    json: bool,
    repeat: u32,
    n_frames: usize,
    rule_counts: &[usize],
    mask_counts: &[usize],
) -> anyhow::Result<ExitCode> {
    let pin_root = PathBuf::from(format!("/sys/fs/bpf/lime-bench-{}", std::process::id()));
    let _cleanup = scopeguard(pin_root.clone());
    let mut samples = Vec::new();
    let mut emit = |s: Sample| {
        if json {
            println!("{}", serde_json::to_string(&s).expect("serialize"));
        } else {
            println!(
                "{:<8} {:>7} rules {:>3} masks  cache {:<5} {:<11} {:>8.1} ns/packet",
                s.program,
                s.rules,
                s.masks,
                s.cache,
                if s.traffic == "rule-hit" {
                    "rule hit"
                } else {
                    "table miss"
                },
                s.ns_per_packet
            );
        }
        samples.push(s);
    };
    if !json {
        println!(
            "per-packet cost through BPF_PROG_TEST_RUN ({repeat} runs per frame, {n_frames} frames per configuration)"
        );
    }
    for &n_masks in mask_counts {
        for &n_rules in rule_counts {
            if n_rules < n_masks {
                continue;
            }
            let mut dp = bench_datapath(&pin_root)?;
            let rules = rules_over_masks(n_rules, n_masks, 0x11e);
            let t = Instant::now();
            dp.install(1, &rules)?;
            let install = t.elapsed();
            let frames: Vec<Vec<u8>> = (0..n_frames)
                .map(|i| packet_hitting(&rules, (i * 7919) % rules.len()))
                .collect();
            // Check the frames really take the fast path before timing them.
            let probe = dp.kernel().test_run(names::PROG_XDP, &frames[0], 1)?;
            anyhow::ensure!(
                probe.verdict == 4,
                "bench frame was not redirected (verdict {})",
                probe.verdict
            );
            let floor = cost(&dp, names::PROG_FLOOR, &frames, repeat)?;
            emit(Sample {
                program: "minimal",
                rules: n_rules,
                masks: n_masks,
                cache: "none",
                traffic: "rule-hit",
                ns_per_packet: floor,
            });
            let table_miss = packet_missing(&rules[..rules.len().min(2000)]);
            let mut lime_by_cache = Vec::new();
            for (cache, flags) in [
                ("none", VSW_F_NO_CACHE),
                ("hit", 0),
                ("miss", VSW_F_CACHE_ALWAYS_MISS),
            ] {
                dp.set_vswitch_flags(1, flags)?;
                let lime = cost(&dp, names::PROG_XDP, &frames, repeat)?;
                emit(Sample {
                    program: "lime",
                    rules: n_rules,
                    masks: n_masks,
                    cache,
                    traffic: "rule-hit",
                    ns_per_packet: lime,
                });
                lime_by_cache.push((cache, lime));
                if let Some(miss) = &table_miss {
                    let m = cost(&dp, names::PROG_XDP, std::slice::from_ref(miss), repeat)?;
                    emit(Sample {
                        program: "lime",
                        rules: n_rules,
                        masks: n_masks,
                        cache,
                        traffic: "table-miss",
                        ns_per_packet: m,
                    });
                }
            }
            if !json {
                let ratios: Vec<String> = lime_by_cache
                    .iter()
                    .map(|(c, l)| format!("cache {c}: {:.2}x", l / floor))
                    .collect();
                println!(
                    "         ratio to minimal: {}   (installed {} rules in {:.2} s)",
                    ratios.join(", "),
                    n_rules,
                    install.as_secs_f64()
                );
            }
            drop(dp);
        }
    }
    if !json {
        print_summary(&samples);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(samples: &[Sample]) {
    let find = |p: &str, cache: &str, r: usize, m: usize| {
        samples
            .iter()
            .find(|s| {
                s.program == p
                    && s.cache == cache
                    && s.rules == r
                    && s.masks == m
                    && s.traffic == "rule-hit"
            })
            .map(|s| s.ns_per_packet)
    };
    println!();
    if let Some(f) = find("minimal", "none", 1000, 8) {
        for cache in ["hit", "none"] {
            if let Some(l) = find("lime", cache, 1000, 8) {
                println!(
                    "common path (1 000 rules over 8 masks, cache {cache}): {:.2}x the minimal program (target <= 1.5x)",
                    l / f
                );
            }
        }
    }
    for m in [1, 8, 32] {
        if let (Some(big), Some(small)) = (
            find("lime", "none", 100_000, m),
            find("lime", "none", 1000, m),
        ) {
            println!(
                "100 000 vs 1 000 rules over {m:>2} masks, no cache: {:.2}x (target <= 1.2x: cost follows masks, not rules)",
                big / small
            );
        }
    }
}

/// Removes the benchmark's pins on every exit path.
fn scopeguard(path: PathBuf) -> impl Drop {
    struct Guard(PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    Guard(path)
}

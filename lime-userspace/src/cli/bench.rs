//! `lime bench ...`: benchmarks that print numbers (and JSON). Not timed tests: they
//! measure, and compare against a baseline measured in the same run.
use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::Subcommand;
use lime_common::{
    flow::{VSW_F_CACHE_ALWAYS_MISS, VSW_F_NO_CACHE},
    names,
    port::{PortInfo, VportInfo, kind, location},
};
use lime_lab::netns;
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
    /// redirects, measured in the same run — twice: the program alone (its verdict is
    /// not acted on) and with every frame delivered (live frames, really redirected to
    /// a veth whose far end counts and drops them).
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
        /// Rounds per configuration: the minimal program and LIME take turns, each
        /// round measuring every row once; the medians are reported (one pair of runs
        /// scatters by a third on a shared machine).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
    },
    /// OpenFlow from a controller's side: flow-mod install rate (batches of 1 000 and
    /// 100 000 until BARRIER_REPLY) and packet-in rate delivered to the controller.
    Openflow(super::bench_openflow::OpenflowArgs),
    /// Live migration under load: a virtual switch with 10 000 rules and 4 hosts moved
    /// with `clone` and with `move`: datagrams sent, received, lost, duplicated,
    /// reordered, phase times; and a 100-rule consistent update across two copies.
    Migration(super::bench_migration::MigrationArgs),
    /// Line rate, side by side in one run: the bare XDP floor, LIME (1, 1 000 and
    /// 100 000 rules, across a tunnel, during version flips), a Linux bridge and Open
    /// vSwitch (AF_XDP and plain ports): Mpps, Gbit/s, TCP, latency; SVG plots.
    Linerate(super::linerate::LinerateArgs),
}

/// One measurement; with `--json`, one line each.
#[derive(Serialize)]
struct Sample {
    /// "minimal" (redirect only) or "lime".
    program: &'static str,
    /// "program": the program's own cost (BPF_PROG_TEST_RUN without live frames: the
    /// verdict is returned, nothing is sent); "delivered": live frames, each one really
    /// redirected to a veth and counted by an XDP sink on its peer before the batch ends.
    mode: &'static str,
    rules: usize,
    masks: usize,
    /// "none" (cache bypassed), "hit" (answered by the flow cache) or "miss" (looked up,
    /// missed, filled).
    cache: &'static str,
    /// "rule-hit": frames matching a rule; "table-miss": a frame matching none;
    /// "tunnel-out": frames hitting a rule (from the cache) whose port lives on another
    /// physical switch, encapsulated; "tunnel-in": those encapsulated frames arriving on
    /// an underlay port, decapsulated and delivered.
    traffic: &'static str,
    /// The median over the rounds.
    ns_per_packet: f64,
    /// The fastest and the slowest round.
    min_ns: f64,
    max_ns: f64,
    rounds: u32,
}

/// Run a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Openflow(a) => super::bench_openflow::run(&a),
        BenchCommand::Migration(a) => super::bench_migration::run(&a),
        BenchCommand::Datapath {
            json,
            repeat,
            frames,
            rules,
            masks,
            rounds,
        } => {
            super::require_root()?;
            datapath(json, repeat, frames, &rules, &masks, rounds)
        }
        BenchCommand::Linerate(args) => super::linerate::run(&args),
    }
}

/// Veth names inside the benchmark's namespace: LIME (or the floor) redirects to
/// `EGRESS`; its peer `SINK` runs the counting sink.
const EGRESS: &str = "lbench0";
const SINK: &str = "lbench1";

/// The benchmark's private network namespace (`lime-bench-<pid>`) holding one veth pair;
/// removed on drop, on every exit path.
struct BenchNetns {
    name: String,
    egress: u32,
    sink: u32,
}

impl BenchNetns {
    fn new() -> anyhow::Result<Self> {
        let name = format!("lime-bench-{}", std::process::id());
        netns::netns_add(&name)?;
        // From here on, Drop removes it.
        let mut this = Self {
            name,
            egress: 0,
            sink: 0,
        };
        let n = this.name.clone();
        // No IPv6 (neighbour discovery, MLD): the sink must count only the benchmark's
        // frames.
        netns::set_sysctl(&n, "net.ipv6.conf.all.disable_ipv6", "1")?;
        netns::set_sysctl(&n, "net.ipv6.conf.default.disable_ipv6", "1")?;
        netns::ip(&[
            "-n", &n, "link", "add", EGRESS, "type", "veth", "peer", "name", SINK,
        ])?;
        for dev in ["lo", EGRESS, SINK] {
            netns::ip(&["-n", &n, "link", "set", dev, "up"])?;
        }
        this.egress = netns::ifindex(&n, EGRESS)?;
        this.sink = netns::ifindex(&n, SINK)?;
        Ok(this)
    }
}

impl Drop for BenchNetns {
    fn drop(&mut self) {
        let _ = netns::netns_del(&self.name);
    }
}

/// A private datapath: loopback (ifindex 1) is virtual port 1 of virtual switch 1; port
/// 2 is local, on the veth `EGRESS`, whose peer runs the sink; the floor program
/// redirects there too.
fn bench_datapath(pin_root: &std::path::Path, ns: &BenchNetns) -> anyhow::Result<Datapath> {
    let mut dp = Datapath::load("bench", Some(&ns.name), pin_root)?;
    dp.add_vswitch(1)?;
    dp.kernel_mut().set_port(
        1,
        PortInfo {
            kind: kind::HOST,
            flags: 0,
            vswitch: 1,
            vport: 1,
        },
    )?;
    dp.set_vport(
        1,
        2,
        VportInfo {
            location: location::LOCAL,
            ifindex: ns.egress,
            ..VportInfo::default()
        },
    )?;
    dp.kernel_mut().set_floor_target(ns.egress)?;
    dp.attach_sink(None, SINK, ns.sink)?;
    Ok(dp)
}

/// Mean kernel-measured ns per run over `frames`, the program alone.
fn cost(dp: &Datapath, program: &str, frames: &[Vec<u8>], repeat: u32) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for f in frames {
        let r = dp.kernel().test_run(program, f, repeat)?;
        total += r.duration.as_nanos() as f64;
    }
    Ok(total / frames.len() as f64)
}

/// Mean kernel-measured ns per frame over `frames`, each delivered: live frames in the
/// benchmark's namespace. Fails unless the sink counted every frame.
fn delivered_cost(
    dp: &Datapath,
    ns: &BenchNetns,
    program: &str,
    frames: &[Vec<u8>],
    repeat: u32,
) -> anyhow::Result<f64> {
    // A veth's ring holds 256 frames and is drained in softirq: on a busy machine the
    // kernel may defer that and drop a few frames at the ring, whatever program sent
    // them. Such a measurement is not kept: it is taken again, up to three times.
    let mut last = (0, 0);
    for _ in 0..3 {
        let before = dp.port_stats(ns.sink)?.rx_packets;
        let kernel = dp.kernel();
        let total = netns::run_in_netns(&ns.name, || -> anyhow::Result<f64> {
            let mut total = 0.0;
            for f in frames {
                total += kernel.run_live_repeat(program, f, repeat)?.as_nanos() as f64;
            }
            Ok(total)
        })??;
        let got = dp.port_stats(ns.sink)?.rx_packets - before;
        let sent = frames.len() as u64 * u64::from(repeat);
        if got == sent {
            return Ok(total / frames.len() as f64);
        }
        last = (got, sent);
    }
    anyhow::bail!(
        "{program}: the sink counted {} of {} frames sent, three times in a row",
        last.0,
        last.1
    )
}

/// One row of the datapath benchmark: (program, mode, cache, traffic) — see [`Sample`].
type Row = (&'static str, &'static str, &'static str, &'static str);

/// One round's measurement of every row for one configuration, in the order they are
/// reported: the minimal program, then LIME with the cache off, answering and missing
/// (the virtual switch's cache flags set for each), and with `tunnel` the tunnel's two
/// passes.
fn datapath_round(
    dp: &mut Datapath,
    ns: &BenchNetns,
    frames: &[Vec<u8>],
    table_miss: Option<&Vec<u8>>,
    repeat: u32,
    tunnel: bool,
) -> anyhow::Result<Vec<(Row, f64)>> {
    let mut out = vec![
        (
            ("minimal", "program", "none", "rule-hit"),
            cost(dp, names::PROG_FLOOR, frames, repeat)?,
        ),
        (
            ("minimal", "delivered", "none", "rule-hit"),
            delivered_cost(dp, ns, names::PROG_FLOOR, frames, repeat)?,
        ),
    ];
    for (cache, flags) in [
        ("none", VSW_F_NO_CACHE),
        ("hit", 0),
        ("miss", VSW_F_CACHE_ALWAYS_MISS),
    ] {
        dp.set_vswitch_flags(1, flags)?;
        let lime = cost(dp, names::PROG_XDP, frames, repeat)?;
        out.push((("lime", "program", cache, "rule-hit"), lime));
        if let Some(miss) = table_miss {
            let m = cost(dp, names::PROG_XDP, std::slice::from_ref(miss), repeat)?;
            out.push((("lime", "program", cache, "table-miss"), m));
        }
        if cache != "miss" {
            let live = delivered_cost(dp, ns, names::PROG_XDP, frames, repeat)?;
            out.push((("lime", "delivered", cache, "rule-hit"), live));
        }
    }
    if tunnel {
        for (traffic, v) in tunnel_costs(dp, ns, frames, repeat)? {
            out.push((("lime", "delivered", "hit", traffic), v));
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_lines)] // one measurement plan, read top to bottom
fn datapath(
    json: bool,
    repeat: u32,
    n_frames: usize,
    rule_counts: &[usize],
    mask_counts: &[usize],
    rounds: u32,
) -> anyhow::Result<ExitCode> {
    let pin_root = PathBuf::from(format!("/sys/fs/bpf/lime-bench-{}", std::process::id()));
    let _cleanup = scopeguard(pin_root.clone());
    let ns = BenchNetns::new()?;
    let mut samples = Vec::new();
    let mut emit = |s: Sample| {
        if json {
            println!("{}", serde_json::to_string(&s).expect("serialize"));
        } else {
            println!(
                "{:<8} {:<9} {:>7} rules {:>3} masks  cache {:<5} {:<11} {:>8.1} ns/packet  ({:.1}-{:.1})",
                s.program,
                s.mode,
                s.rules,
                s.masks,
                s.cache,
                s.traffic.replace('-', " "),
                s.ns_per_packet,
                s.min_ns,
                s.max_ns,
            );
        }
        samples.push(s);
    };
    if !json {
        println!(
            "per-packet cost through BPF_PROG_TEST_RUN ({repeat} runs per frame, {n_frames} frames per configuration);"
        );
        println!(
            "program: the program alone; delivered: live frames, redirected to a veth and counted by a sink at its peer;"
        );
        println!(
            "{rounds} rounds per configuration, the minimal program and LIME taking turns: medians (fastest-slowest round)"
        );
    }
    // Ratio of LIME's common path (1 000 rules over 8 masks, cache hit, program alone)
    // to the minimal program, round by round.
    let mut common_rounds = Vec::new();
    for &n_masks in mask_counts {
        for &n_rules in rule_counts {
            if n_rules < n_masks {
                continue;
            }
            let mut dp = bench_datapath(&pin_root, &ns)?;
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
            let table_miss = packet_missing(&rules[..rules.len().min(2000)]);
            let common = n_rules == 1000 && n_masks == 8;
            let mut rows: Vec<(Row, Vec<f64>)> = Vec::new();
            for _ in 0..rounds {
                let round =
                    datapath_round(&mut dp, &ns, &frames, table_miss.as_ref(), repeat, common)?;
                for (row, v) in round {
                    match rows.iter_mut().find(|(r, _)| *r == row) {
                        Some((_, vs)) => vs.push(v),
                        None => rows.push((row, vec![v])),
                    }
                }
            }
            let rounds_of = |row: Row| rows.iter().find(|(r, _)| *r == row).map(|(_, vs)| vs);
            if common
                && let (Some(min), Some(hit)) = (
                    rounds_of(("minimal", "program", "none", "rule-hit")),
                    rounds_of(("lime", "program", "hit", "rule-hit")),
                )
            {
                common_rounds.extend(hit.iter().zip(min).map(|(h, m)| h / m));
            }
            let mut ratios = Vec::new();
            for (row, vs) in &rows {
                let (program, mode, cache, traffic) = *row;
                let median = super::median(vs);
                emit(Sample {
                    program,
                    mode,
                    rules: n_rules,
                    masks: n_masks,
                    cache,
                    traffic,
                    ns_per_packet: median,
                    min_ns: vs.iter().copied().fold(f64::INFINITY, f64::min),
                    max_ns: vs.iter().copied().fold(0.0, f64::max),
                    rounds,
                });
                if program == "lime"
                    && traffic == "rule-hit"
                    && let Some(base) =
                        rounds_of(("minimal", mode, "none", "rule-hit")).map(|vs| super::median(vs))
                {
                    let mode = if mode == "program" { "" } else { "delivered, " };
                    ratios.push(format!("{mode}cache {cache}: {:.2}x", median / base));
                }
            }
            if !json {
                println!(
                    "         ratio to minimal (medians): {}   (installed {} rules in {:.2} s)",
                    ratios.join(", "),
                    n_rules,
                    install.as_secs_f64()
                );
            }
            drop(dp);
        }
    }
    if !json {
        print_summary(&samples, &common_rounds);
    }
    Ok(ExitCode::SUCCESS)
}

/// A tunnel crossing's two passes, each delivered (live frames: without them every
/// repeated run would see the frame as the run before left it, pushed or pulled),
/// with the cache answering on the sending side: `frames` to virtual port 2 made
/// remote (classified from the cache, encapsulated: "tunnel-out"), then the frames that
/// produced arriving on an underlay port (loopback made one) for port 2 made local
/// again ("tunnel-in"). Leaves `dp` as it was set up, with the cache on.
fn tunnel_costs(
    dp: &mut Datapath,
    ns: &BenchNetns,
    frames: &[Vec<u8>],
    repeat: u32,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let local = VportInfo {
        location: location::LOCAL,
        ifindex: ns.egress,
        ..VportInfo::default()
    };
    let remote = VportInfo {
        location: location::REMOTE,
        outer_src: [0x02, 0, 0, 0, 0, 1],
        outer_dst: [0x02, 0, 0, 0, 0, 2],
        ..local
    };
    dp.set_vswitch_flags(1, 0)?;
    dp.set_vport(1, 2, remote)?;
    let mut encapsulated = Vec::with_capacity(frames.len());
    for f in frames {
        let r = dp.kernel().test_run(names::PROG_XDP, f, 1)?;
        anyhow::ensure!(
            r.verdict == 4 && r.frame.len() > f.len(),
            "bench frame was not encapsulated (verdict {})",
            r.verdict
        );
        encapsulated.push(r.frame);
    }
    let out = delivered_cost(dp, ns, names::PROG_XDP, frames, repeat)?;
    dp.set_vport(1, 2, local)?;
    let host = PortInfo {
        kind: kind::HOST,
        flags: 0,
        vswitch: 1,
        vport: 1,
    };
    let underlay = PortInfo {
        kind: kind::UNDERLAY,
        flags: 0,
        vswitch: 0,
        vport: 0,
    };
    dp.kernel_mut().set_port(1, underlay)?;
    let probe = dp.kernel().test_run(names::PROG_XDP, &encapsulated[0], 1);
    let measured = probe.map_err(anyhow::Error::from).and_then(|p| {
        anyhow::ensure!(
            p.verdict == 4 && p.frame == frames[0],
            "a tunnelled bench frame was not decapsulated and redirected (verdict {})",
            p.verdict
        );
        delivered_cost(dp, ns, names::PROG_XDP, &encapsulated, repeat)
    });
    dp.kernel_mut().set_port(1, host)?;
    Ok(vec![("tunnel-out", out), ("tunnel-in", measured?)])
}

fn print_summary(samples: &[Sample], common_rounds: &[f64]) {
    let find_traffic = |p: &str, mode: &str, cache: &str, r: usize, m: usize, t: &str| {
        samples
            .iter()
            .find(|s| {
                s.program == p
                    && s.mode == mode
                    && s.cache == cache
                    && s.rules == r
                    && s.masks == m
                    && s.traffic == t
            })
            .map(|s| s.ns_per_packet)
    };
    let find = |p: &str, mode: &str, cache: &str, r: usize, m: usize| {
        find_traffic(p, mode, cache, r, m, "rule-hit")
    };
    println!();
    if let (Some(out), Some(into), Some(one), Some(min)) = (
        find_traffic("lime", "delivered", "hit", 1000, 8, "tunnel-out"),
        find_traffic("lime", "delivered", "hit", 1000, 8, "tunnel-in"),
        find("lime", "delivered", "hit", 1000, 8),
        find("minimal", "delivered", "none", 1000, 8),
    ) {
        println!(
            "tunnel (delivered, 1 000 rules over 8 masks, cache hit): {out:.1} ns out + {into:.1} ns in = {:.1} ns, against {one:.1} ns on one switch and {:.1} ns for the minimal program twice",
            out + into,
            2.0 * min
        );
    }
    for mode in ["program", "delivered"] {
        if let Some(f) = find("minimal", mode, "none", 1000, 8) {
            for cache in ["hit", "none"] {
                if let Some(l) = find("lime", mode, cache, 1000, 8) {
                    println!(
                        "common path ({mode}, 1 000 rules over 8 masks, cache {cache}): {:.2}x the minimal program (medians; target <= 1.5x)",
                        l / f
                    );
                }
            }
        }
    }
    if !common_rounds.is_empty() {
        let each: Vec<String> = common_rounds.iter().map(|r| format!("{r:.2}x")).collect();
        println!(
            "common path (program, cache hit), round by round: {}",
            each.join(" ")
        );
    }
    for m in [1, 8, 32] {
        if let (Some(big), Some(small)) = (
            find("lime", "program", "none", 100_000, m),
            find("lime", "program", "none", 1000, m),
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

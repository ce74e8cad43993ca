//! `lime bench linerate`: line rate of LIME beside the bare XDP floor, a Linux bridge
//! and Open vSwitch, in one run, on the same lab shape, with the same generator.
//!
//! # The lab
//! Every path gets a fresh lab `lime-lr<pid>-*` of one shape: physical switches s1 and
//! s2 joined by an underlay link, hosts h1 and h2 on s1, h3 on s2. Traffic goes from h1
//! to h2 (to h3 for `lime-tunnel`). IPv6 is disabled in every namespace (no neighbour
//! discovery noise at the sink) and hosts get static neighbour entries.
//!
//! # A path's measurements
//! 1. UDP: the project's generator ([`lime_userspace::traffic`]) in h1, the counting
//!    sink on the destination host's veth; 64-byte frames with 1 and 2 sender threads,
//!    1500-byte frames with 1; IPv6 64-byte frames (LIME's IPv4 rule sets get one IPv6
//!    rule beside them, below every other).
//!    Flows are frames hitting different rules of the 1 000-rule set (the same frames on
//!    every path). Rates are what the sink counted; losses are reported.
//! 2. TCP: iperf3 h1 → destination, and the UDP ping-pong latency (p50/p99).
//!
//! # The paths
//! - `floor`: `lime_floor` on s1's veths (h1's port redirects to h2's and back), in
//!   place of LIME: the cost of XDP redirecting and nothing else.
//! - `floor-tunnel`: `lime_floor` on both hops a tunnelled frame takes (h1's port to
//!   s1's underlay end, s2's underlay end to h3's port, and back): what crossing to a
//!   second physical switch costs on veths with no LIME work on either side — the
//!   bound for `lime-tunnel`.
//! - `lime-1`, `lime-1k`, `lime-100k`: LIME with one match-all rule; 1 000 rules over 8
//!   masks; 100 000 rules over 8 masks (`testgen::rules_over_masks`).
//! - `lime-tunnel`: the 1 000 rules, h1 to h3: classified on s1, carried through the
//!   tunnel to s2.
//! - `lime-1k-tc`, `lime-tunnel-tc`: the same with both physical switches in TC mode
//!   (`datapath = "tc"`: LIME at TC ingress on host ports, no XDP program there, hosts
//!   keep TX checksum offload and TSO). For the UDP part h1's switch port runs
//!   `lime_pass` (the generator's redirected frames only enter a veth whose peer runs
//!   XDP; it passes them up to LIME's TC program).
//! - `lime-flip`: the 1 000 rules, with a versioned update (one rule replaced) about
//!   every 10 ms while traffic flows.
//! - `bridge`: a Linux bridge in s1 with h1's and h2's ports.
//! - `ovs-afxdp`, `ovs`: Open vSwitch's userspace datapath in s1 (its own daemons,
//!   [`super::ovs`]) with AF_XDP ports and with plain ports, the 1 000 rules as OpenFlow
//!   flows.
//!
//! - `tc-vs-bridge`: TCP only, LIME in TC mode and a Linux bridge on the same ports of
//!   one lab, taking turns (`--tcp-rounds` rounds, each round one iperf3 run of each,
//!   the order swapped every round; LIME steps aside by marking the two ports as not
//!   its own in the port map, so its TC program leaves their skbs to the bridge):
//!   the medians compare the two with the lab, the offloads and the time the same.
//! - `lime-vs-floor`: UDP only, 64-byte frames: `floor`, `lime-1k`, `floor-tunnel` and
//!   `lime-tunnel` in four labs up side by side, taking turns (`--udp-rounds` rounds,
//!   each round one run of each path with 1 sender thread and one with 2, the order
//!   turned by one path every round). A machine of this kind drifts by 10% and more
//!   over the minutes a whole run takes, as much as the targets' margins; the ratios
//!   printed for this path are medians of the rounds' own ratios, whose two runs were
//!   seconds apart.
//!
//! Redirected frames only enter a veth whose peer runs XDP, so for the bridge and plain
//! OVS, h1's switch port runs `lime_pass` during the UDP part (LIME, the floor and OVS's
//! AF_XDP ports run their own XDP programs there). During the TCP part of LIME and the
//! floor, hosts' veths run `lime_pass` (to receive redirected frames) and LIME gets two
//! extra rules forwarding by destination MAC, so replies find their way back; the
//! bridge and OVS run no XDP then. The lab turns TX checksum offload off on hosts'
//! veths (XDP redirection loses partial checksums); the bridge's TCP part turns it
//! back on, OVS's keeps it off (its userspace datapath needs that).
use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context;
use lime_common::port::PortInfo;
use lime_lab::{HOST_IFNAME, Lab, LabState, Topology, netns};
use lime_userspace::{
    fabric::{Fabric, Installed},
    flow::{Action, Instructions, Masked, Match, Rule, matching},
    testgen::{packet_hitting, rules_over_masks},
    traffic::{
        Generator, PassGuard, Report, SendConfig, Sink,
        frame::{UdpFlow, flows_by_port, udp_flow_of, udp_frame},
        probe::{Latency, iperf3_tcp, udp_ping_pong},
    },
};
use serde_json::json;

use super::{ovs::Ovs, ovs::ovs_flow, plot};

/// Every path, in the order measured.
pub const PATHS: [&str; 14] = [
    "floor",
    "floor-tunnel",
    "lime-1",
    "lime-1k",
    "lime-1k-tc",
    "lime-100k",
    "lime-tunnel",
    "lime-tunnel-tc",
    "lime-flip",
    "bridge",
    "ovs-afxdp",
    "ovs",
    "tc-vs-bridge",
    "lime-vs-floor",
];

/// Seed of the benchmark rule sets (shared with `lime bench datapath`).
const SEED: u64 = 0x11e;
/// The virtual switch of the lab.
const VS: &str = "vs1";
const ECHO_PORT: u16 = 7777;
const IPERF_PORT: u16 = 5201;

/// `lime bench linerate` options.
#[derive(clap::Args)]
pub struct LinerateArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Short measurements (0.5 s per UDP run, 1 s of TCP, 200 pings): a sanity check.
    #[arg(long)]
    quick: bool,
    /// Paths to measure (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    paths: Vec<String>,
    /// Seconds per UDP measurement (default 2; 0.5 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Flows: distinct frames, taken in turn (one per call of --chunk frames).
    #[arg(long, default_value_t = 16)]
    flows: usize,
    /// Rate limit, frames per second over all sender threads (default: none).
    #[arg(long)]
    rate: Option<f64>,
    /// Identical frames per BPF_PROG_TEST_RUN call (flows take turns call by call).
    #[arg(long, default_value_t = 262_144)]
    chunk: u32,
    /// Directory for the SVG plots.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Also plot cost versus rules and masks from this `lime bench datapath --json`
    /// output.
    #[arg(long)]
    datapath_json: Option<PathBuf>,
    /// Rounds of `tc-vs-bridge` (each one TCP run of LIME in TC mode and one of the
    /// bridge, in the same lab).
    #[arg(long, default_value_t = 5)]
    tcp_rounds: usize,
    /// Rounds of `lime-vs-floor` (each one 64-byte UDP run of floor, lime-1k,
    /// floor-tunnel and lime-tunnel with 1 sender thread and one with 2, in four labs
    /// up side by side).
    #[arg(long, default_value_t = 5)]
    udp_rounds: usize,
}

/// One UDP measurement.
#[derive(Clone)]
struct Udp {
    path: String,
    ip: u8,
    threads: usize,
    report: Report,
    flips: u64,
}

/// Everything measured, for the table, the ratios and the plots.
#[derive(Default)]
struct Results {
    udp: Vec<Udp>,
    tcp: BTreeMap<String, f64>,
    latency: BTreeMap<String, Latency>,
    /// (path, what, why) for what could not be measured.
    unavailable: Vec<(String, String, String)>,
    /// `tc-vs-bridge`: TCP Gbit/s of LIME in TC mode and of the bridge, round by round.
    alternated: Option<(Vec<f64>, Vec<f64>)>,
    /// `lime-vs-floor`: 64-byte Mpps by (path, sender threads), round by round.
    rounds: BTreeMap<(String, usize), Vec<f64>>,
}

impl Results {
    fn mpps(&self, path: &str, ip: u8, bytes: usize, threads: usize) -> Option<f64> {
        self.udp
            .iter()
            .find(|u| {
                u.path == path
                    && u.ip == ip
                    && u.report.frame_bytes == bytes
                    && u.threads == threads
            })
            .map(|u| u.report.mpps())
    }
}

/// Run options resolved.
struct Ctx {
    json: bool,
    udp_time: Duration,
    tcp_secs: u32,
    tcp_rounds: usize,
    udp_rounds: usize,
    pings: usize,
    flows: usize,
    rate: Option<f64>,
    chunk: u32,
    pin_root: PathBuf,
    lab: String,
}

impl Ctx {
    /// One UDP measurement's generator settings.
    fn send_config(&self, threads: usize) -> SendConfig {
        SendConfig {
            threads,
            rate_pps: self.rate,
            duration: self.udp_time,
            chunk: self.chunk,
            ..SendConfig::default()
        }
    }

    fn emit(&self, v: &serde_json::Value) {
        if self.json {
            println!("{v}");
        }
    }
}

/// Run the benchmark.
pub fn run(args: &LinerateArgs) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    let paths: Vec<String> = if args.paths.is_empty() {
        PATHS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.paths.clone()
    };
    if let Some(bad) = paths.iter().find(|p| !PATHS.contains(&p.as_str())) {
        anyhow::bail!("unknown path {bad:?}; paths are {}", PATHS.join(", "));
    }
    anyhow::ensure!((1..=4096).contains(&args.flows), "--flows must be 1..=4096");
    let pid = std::process::id();
    let ctx = Ctx {
        json: args.json,
        udp_time: Duration::from_secs_f64(args.seconds.unwrap_or(if args.quick {
            0.5
        } else {
            2.0
        })),
        tcp_secs: if args.quick { 1 } else { 3 },
        tcp_rounds: args.tcp_rounds.max(1),
        udp_rounds: args.udp_rounds.max(1),
        pings: if args.quick { 200 } else { 1000 },
        flows: args.flows,
        rate: args.rate,
        chunk: args.chunk,
        pin_root: PathBuf::from(format!("/sys/fs/bpf/lime-linerate-{pid}")),
        lab: format!("lr{pid}"),
    };
    let _pins = RemoveOnDrop(ctx.pin_root.clone());
    if !ctx.json {
        println!(
            "line rate, lab lime-{}-*: {} s per UDP run, {} flows{}, TCP {} s, {} pings",
            ctx.lab,
            ctx.udp_time.as_secs_f64(),
            ctx.flows,
            ctx.rate
                .map_or(String::new(), |r| format!(", limited to {r} frames/s")),
            ctx.tcp_secs,
            ctx.pings
        );
    }
    let mut results = Results::default();
    for path in &paths {
        if !ctx.json {
            println!("-- {path}");
        }
        if let Err(e) = run_path(&ctx, path, &mut results) {
            let why = format!("{e:#}");
            ctx.emit(&json!({"path": path, "unavailable": "path", "reason": why}));
            if !ctx.json {
                println!("   {path}: could not be measured: {why}");
            }
            results.unavailable.push((path.clone(), "path".into(), why));
        }
    }
    report(&ctx, &results);
    let mut written = plot::linerate_plots(&args.out, &results_for_plot(&results))?;
    if let Some(dp) = &args.datapath_json {
        let text =
            std::fs::read_to_string(dp).with_context(|| format!("reading {}", dp.display()))?;
        written.push(plot::datapath_plot(&args.out, &text)?);
    }
    for p in &written {
        ctx.emit(&json!({"plot": p.display().to_string()}));
        if !ctx.json {
            println!("plot: {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn results_for_plot(r: &Results) -> Vec<plot::PathFigures> {
    let mut order: Vec<&str> = Vec::new();
    for u in &r.udp {
        if !order.contains(&u.path.as_str()) {
            order.push(&u.path);
        }
    }
    order
        .into_iter()
        .map(|p| plot::PathFigures {
            path: p.to_owned(),
            mpps_1: r.mpps(p, 4, 64, 1),
            mpps_2: r.mpps(p, 4, 64, 2),
            gbps_1500: r.mpps(p, 4, 1500, 1).map(|m| m * 1500.0 * 8.0 / 1e3),
            tcp_gbps: r.tcp.get(p).copied(),
        })
        .collect()
}

/// The lab's topology; `tunnel` makes h3 (on s2) the virtual port 2 instead of h2; `tc`
/// puts both physical switches in TC mode.
fn topology(lab: &str, tunnel: bool, tc: bool) -> anyhow::Result<Topology> {
    let (p2, p3) = if tunnel { ("h3", "h2") } else { ("h2", "h3") };
    let datapath = if tc { "tc" } else { "xdp" };
    let queues = lime_userspace::traffic::generator::allowed_cpus()
        .len()
        .clamp(1, lime_lab::MAX_VETH_QUEUES as usize);
    let toml = format!(
        r#"
name = "{lab}"
# One queue per sending CPU: the senders are pinned, one per CPU.
veth_queues = {queues}
[[switch]]
name = "s1"
datapath = "{datapath}"
[[switch]]
name = "s2"
datapath = "{datapath}"
[[host]]
name = "h1"
switch = "s1"
[[host]]
name = "h2"
switch = "s1"
[[host]]
name = "h3"
switch = "s2"
[[link]]
a = "s1"
b = "s2"
[[vswitch]]
name = "{VS}"
tenant = "bench"
ports = [ {{ port = 1, host = "h1" }}, {{ port = 2, host = "{p2}" }}, {{ port = 3, host = "{p3}" }} ]
"#
    );
    Ok(Topology::from_toml_str(&toml)?)
}

/// The two hosts traffic flows between, as the lab made them.
struct Ends {
    src_ns: String,
    dst_ns: String,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    dst_switch: String,
}

fn ends(state: &LabState, dst: &str) -> anyhow::Result<Ends> {
    let h1 = state.host("h1").context("h1 missing")?;
    let hd = state.host(dst).context("destination host missing")?;
    Ok(Ends {
        src_ns: h1.netns.clone(),
        dst_ns: hd.netns.clone(),
        src_mac: h1.mac.octets(),
        dst_mac: hd.mac.octets(),
        src_ip: h1.ip.addr,
        dst_ip: hd.ip.addr,
        dst_switch: hd.switch.clone(),
    })
}

/// Quiet namespaces (no IPv6) and static neighbours between the two ends.
fn prepare(state: &LabState, e: &Ends) -> anyhow::Result<()> {
    for ns in state
        .hosts
        .iter()
        .map(|h| h.netns.clone())
        .chain(state.ports.iter().map(|p| p.netns.clone()))
    {
        netns::set_sysctl(&ns, "net.ipv6.conf.all.disable_ipv6", "1")?;
        netns::set_sysctl(&ns, "net.ipv6.conf.default.disable_ipv6", "1")?;
    }
    let neigh = |ns: &str, ip: Ipv4Addr, mac: [u8; 6]| {
        netns::ip(&[
            "-n",
            ns,
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            &super::ovs::mac(mac),
            "dev",
            HOST_IFNAME,
            "nud",
            "permanent",
        ])
    };
    neigh(&e.src_ns, e.dst_ip, e.dst_mac)?;
    neigh(&e.dst_ns, e.src_ip, e.src_mac)?;
    Ok(())
}

/// The bench's IPv4 flows: frames hitting rules spread over the 1 000-rule set.
fn v4_frames(rules: &[Rule], flows: usize, len: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    (0..flows)
        .map(|i| {
            let f = udp_flow_of(&packet_hitting(rules, (i * 7919) % rules.len()))?;
            Ok(udp_frame(&f, len)?)
        })
        .collect()
}

/// IPv6 flows h1 → destination, differing in their source port.
fn v6_frames(e: &Ends, flows: usize, len: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let base = UdpFlow {
        src_mac: e.src_mac,
        dst_mac: e.dst_mac,
        src: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        dst: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        sport: 10_000,
        dport: 9,
        dscp: 0,
    };
    Ok(flows_by_port(&base, flows, len)?)
}

/// A versioned update about every 10 ms on a fabric, while a measurement runs.
struct Flips<'a> {
    fabric: &'a mut Fabric,
    rule: Rule,
    cur: Installed,
}

impl Flips<'_> {
    /// Run `f` in another thread, flipping until it returns; returns its result and the
    /// number of flips.
    fn during<R: Send>(&mut self, f: impl FnOnce() -> R + Send) -> anyhow::Result<(R, u64)> {
        let stop = AtomicBool::new(false);
        let mut flips = 0u64;
        let mut failed = None;
        let out = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let r = f();
                stop.store(true, Ordering::SeqCst);
                r
            });
            while !stop.load(Ordering::SeqCst) {
                // One version: remove the rule, add it again (reclaim waits the grace
                // period of 10 ms).
                match self.fabric.update(
                    VS,
                    std::slice::from_ref(&self.cur),
                    std::slice::from_ref(&self.rule),
                ) {
                    Ok((mut added, _)) => {
                        self.cur = added.pop().unwrap_or_default();
                        flips += 1;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        });
        if let Some(e) = failed {
            return Err(e).context("version flip");
        }
        Ok((out, flips))
    }
}

/// The UDP measurements of one path: generator in the source host, sink in the
/// destination host (whose veth must run no XDP program now).
fn udp_runs(
    ctx: &Ctx,
    path: &str,
    e: &Ends,
    rules_1k: &[Rule],
    ipv6: bool,
    mut flips: Option<&mut Flips<'_>>,
    res: &mut Results,
) -> anyhow::Result<()> {
    let pins = ctx.pin_root.join(path);
    let sink = Sink::attach(&e.dst_ns, HOST_IFNAME, &pins, "sink")?;
    let generator = Generator::new(&e.src_ns, HOST_IFNAME, &pins, "gen")?;
    let mut runs = vec![(4u8, 64usize, 1usize), (4, 64, 2), (4, 1500, 1)];
    if ipv6 {
        runs.push((6, 64, 1));
    }
    for (ip, bytes, threads) in runs {
        let frames = if ip == 4 {
            v4_frames(rules_1k, ctx.flows, bytes)?
        } else {
            v6_frames(e, ctx.flows, bytes)?
        };
        let cfg = ctx.send_config(threads);
        let send = || generator.send(&frames, &cfg, &|| sink.received());
        let (report, n_flips) = match flips.as_deref_mut() {
            Some(f) => {
                let (r, n) = f.during(send)?;
                (r?, n)
            }
            None => (send()?, 0),
        };
        let u = Udp {
            path: path.to_owned(),
            ip,
            threads,
            report,
            flips: n_flips,
        };
        print_udp(ctx, &u);
        res.udp.push(u);
    }
    Ok(())
}

fn print_udp(ctx: &Ctx, u: &Udp) {
    let r = &u.report;
    ctx.emit(&json!({
        "path": u.path,
        "ip": u.ip,
        "frame_bytes": r.frame_bytes,
        "threads": u.threads,
        "mpps": r.mpps(),
        "gbps": r.gbps(),
        "mpps_wall": r.mpps_wall(),
        "busy_seconds": r.busy.as_secs_f64(),
        "sent": r.sent,
        "received": r.received,
        "lost": r.lost(),
        "extra": r.extra(),
        "seconds": r.elapsed.as_secs_f64(),
        "flips": u.flips,
        "per_second": r.per_second,
    }));
    if !ctx.json {
        let per_s: Vec<String> = r
            .per_second
            .windows(2)
            .map(|w| {
                format!(
                    "{:.2}",
                    (w[1].rx - w[0].rx) as f64 / (w[1].t - w[0].t) / 1e6
                )
            })
            .collect();
        println!(
            "   IPv{} {:>4} B x{} thr: {:>6.2} Mpps {:>6.2} Gbit/s  sent {} received {} lost {}{}{}",
            u.ip,
            r.frame_bytes,
            u.threads,
            r.mpps(),
            r.gbps(),
            r.sent,
            r.received,
            r.lost(),
            if u.flips > 0 {
                format!("  ({} version flips)", u.flips)
            } else {
                String::new()
            },
            if per_s.len() > 1 {
                format!("  Mpps per wall-clock second: {}", per_s.join(" "))
            } else {
                String::new()
            }
        );
    }
}

/// TCP throughput and latency between the ends; failures are reported, not fatal.
fn tcp_runs(
    ctx: &Ctx,
    path: &str,
    e: &Ends,
    mut flips: Option<&mut Flips<'_>>,
    res: &mut Results,
) -> anyhow::Result<()> {
    let dst = IpAddr::V4(e.dst_ip);
    let tcp = || iperf3_tcp(&e.src_ns, &e.dst_ns, dst, IPERF_PORT, ctx.tcp_secs);
    let (gbps, n) = match flips.as_deref_mut() {
        Some(f) => f.during(tcp)?,
        None => (tcp(), 0),
    };
    match gbps {
        Ok(g) => {
            ctx.emit(&json!({"path": path, "tcp_gbps": g, "flips": n}));
            if !ctx.json {
                println!("   TCP: {g:.2} Gbit/s");
            }
            res.tcp.insert(path.to_owned(), g);
        }
        Err(err) => unavailable(ctx, res, path, "tcp", &format!("{err:#}")),
    }
    let ping = || udp_ping_pong(&e.src_ns, &e.dst_ns, dst, ECHO_PORT, ctx.pings);
    let (lat, n) = match flips {
        Some(f) => f.during(ping)?,
        None => (ping(), 0),
    };
    match lat {
        Ok(l) => {
            ctx.emit(&json!({"path": path, "latency_p50_us": l.p50_us,
                "latency_p99_us": l.p99_us, "latency_samples": l.samples,
                "latency_lost": l.lost, "flips": n}));
            if !ctx.json {
                println!(
                    "   UDP round trip: p50 {:.1} us, p99 {:.1} us ({} samples, {} lost)",
                    l.p50_us, l.p99_us, l.samples, l.lost
                );
            }
            res.latency.insert(path.to_owned(), l);
        }
        Err(err) => unavailable(ctx, res, path, "latency", &format!("{err:#}")),
    }
    Ok(())
}

fn unavailable(ctx: &Ctx, res: &mut Results, path: &str, what: &str, why: &str) {
    ctx.emit(&json!({"path": path, "unavailable": what, "reason": why}));
    if !ctx.json {
        println!("   {what}: not measured: {why}");
    }
    res.unavailable
        .push((path.to_owned(), what.to_owned(), why.to_owned()));
}

/// The IPv6 flows' rule (UDP to port 9, out to virtual port 2), at a priority below
/// every rule of the IPv4 sets.
fn v6_rule() -> Rule {
    Rule::new(
        0,
        0,
        Match {
            eth_type: Some(matching::ethertype::IPV6),
            ip_proto: Some(matching::ipproto::UDP),
            udp_dst: Some(9),
            ..Match::default()
        },
        Instructions::apply(vec![Action::output(2)]),
    )
}

fn mac_rule(mac: [u8; 6], port: u32) -> Rule {
    Rule::new(
        0,
        60_000,
        Match {
            eth_dst: Some(Masked::exact(mac)),
            ..Match::default()
        },
        Instructions::apply(vec![Action::output(port)]),
    )
}

fn run_path(ctx: &Ctx, path: &str, res: &mut Results) -> anyhow::Result<()> {
    let rules_1k = rules_over_masks(1000, 8, SEED);
    match path {
        "floor" => floor(ctx, res, &rules_1k, false),
        "floor-tunnel" => floor(ctx, res, &rules_1k, true),
        "bridge" => bridge(ctx, res, &rules_1k),
        "ovs-afxdp" => ovs(ctx, res, &rules_1k, "ovs-afxdp", "afxdp"),
        "ovs" => ovs(ctx, res, &rules_1k, "ovs", "system"),
        "tc-vs-bridge" => tc_vs_bridge(ctx, res, &rules_1k),
        "lime-vs-floor" => lime_vs_floor(ctx, res, &rules_1k),
        lime => lime_path(ctx, res, &rules_1k, lime),
    }
}

/// `floor` (`tunnel` false: h1's port on s1 redirects to h2's and back) or
/// `floor-tunnel` (`tunnel`: the two hops a tunnelled frame takes, h1's port on s1 to
/// the underlay, s2's underlay end to h3's port, and back — the least a crossing
/// between two physical switches can cost on veths, with no LIME work on either side):
/// `lime_floor` on each hop, then UDP, then TCP with the hosts' veths running the pass
/// program (to receive redirected frames).
fn floor(ctx: &Ctx, res: &mut Results, rules_1k: &[Rule], tunnel: bool) -> anyhow::Result<()> {
    let path = if tunnel { "floor-tunnel" } else { "floor" };
    let f = FloorLab::up(&ctx.lab, ctx.pin_root.join(path), tunnel)?;
    let e = &f.e;
    udp_runs(ctx, path, e, rules_1k, true, None, res)?;
    let _pass = PassGuard::attach(
        &[(&e.src_ns, HOST_IFNAME), (&e.dst_ns, HOST_IFNAME)],
        &f.pins.0,
        "pass",
    )?;
    tcp_runs(ctx, path, e, None, res)
}

/// A lab with `lime_floor` on each hop of `floor` or `floor-tunnel` (see [`floor`]).
struct FloorLab {
    e: Ends,
    // Dropped in this order: the programs, their pins, the lab.
    _loaded: Vec<lime_userspace::datapath::Datapath>,
    pins: RemoveOnDrop,
    _lab: Lab,
}

impl FloorLab {
    /// Lab `lab` (see [`topology`]) with the floor programs pinned under `pins`.
    fn up(lab: &str, pins: PathBuf, tunnel: bool) -> anyhow::Result<Self> {
        let dst = if tunnel { "h3" } else { "h2" };
        let lab = Lab::up(&topology(lab, tunnel, false)?)?;
        let pins = RemoveOnDrop(pins);
        let state = lab.state();
        let e = ends(state, dst)?;
        prepare(state, &e)?;
        let p1 = state.host_port("h1").context("h1 port")?;
        let pd = state.host_port(dst).context("destination port")?;
        let hops = if tunnel {
            let u1 = state
                .underlay_port("s1", "s2")
                .context("s1 underlay port")?;
            let u2 = state
                .underlay_port("s2", "s1")
                .context("s2 underlay port")?;
            vec![(p1, u1), (u2, pd), (pd, u2), (u1, p1)]
        } else {
            vec![(p1, pd), (pd, p1)]
        };
        // One object per hop and direction: each has its own floor target.
        let mut loaded = Vec::new();
        for (i, (from, to)) in hops.into_iter().enumerate() {
            let name = format!("floor-{i}");
            let mut dp =
                lime_userspace::datapath::Datapath::load(&name, Some(&from.netns), &pins.0)?;
            dp.kernel_mut().set_floor_target(to.ifindex)?;
            dp.attach_floor(&from.ifname, from.ifindex)?;
            loaded.push(dp);
        }
        Ok(Self {
            e,
            _loaded: loaded,
            pins,
            _lab: lab,
        })
    }
}

/// TCP through LIME in TC mode and through a Linux bridge on the same two ports of one
/// lab, taking turns (see the module docs).
fn tc_vs_bridge(ctx: &Ctx, res: &mut Results, rules_1k: &[Rule]) -> anyhow::Result<()> {
    let topo = topology(&ctx.lab, false, true)?;
    let mut fabric = Fabric::up(&topo, &ctx.pin_root.join("tc-vs-bridge"))?;
    let state = fabric.lab().state().clone();
    let e = ends(&state, "h2")?;
    prepare(&state, &e)?;
    let mut rules = rules_1k.to_vec();
    rules.push(v6_rule());
    fabric.install(VS, &rules)?;
    fabric.update(VS, &[], &[mac_rule(e.src_mac, 1), mac_rule(e.dst_mac, 2)])?;
    let s1 = state.netns("s1")?;
    linux_bridge(&s1)?;
    let ports: Vec<u32> = ["h1", "h2"]
        .iter()
        .map(|h| state.host_port(h).map(|p| p.ifindex).context("host port"))
        .collect::<anyhow::Result<_>>()?;
    let dp = fabric.datapath_mut("s1").context("s1 datapath")?;
    let infos: Vec<_> = ports
        .iter()
        .map(|&i| dp.kernel().port(i))
        .collect::<Result<_, _>>()?;
    let dst = IpAddr::V4(e.dst_ip);
    let (mut lime, mut bridge) = (Vec::new(), Vec::new());
    for round in 0..ctx.tcp_rounds {
        for lime_turn in [round % 2 == 0, round % 2 == 1] {
            own_ports(dp, &ports, &infos, lime_turn)?;
            let rx_before = dp.port_stats(ports[0])?.rx_packets;
            let g = iperf3_tcp(&e.src_ns, &e.dst_ns, dst, IPERF_PORT, ctx.tcp_secs)?;
            let lime_saw = dp.port_stats(ports[0])?.rx_packets - rx_before;
            // LIME forwarded its turn and stood aside in the bridge's.
            anyhow::ensure!(
                (lime_saw > 0) == lime_turn,
                "round {round}: LIME counted {lime_saw} packets in the {} turn",
                if lime_turn { "LIME" } else { "bridge" }
            );
            let (who, list) = if lime_turn {
                ("lime-1k-tc", &mut lime)
            } else {
                ("bridge", &mut bridge)
            };
            ctx.emit(
                &json!({"path": "tc-vs-bridge", "round": round, "forwarder": who, "tcp_gbps": g}),
            );
            if !ctx.json {
                println!("   round {round}: {who:<10} TCP {g:.2} Gbit/s");
            }
            list.push(g);
        }
    }
    own_ports(dp, &ports, &infos, true)?;
    res.alternated = Some((lime, bridge));
    Ok(())
}

/// One of `lime-vs-floor`'s labs, kept up while the others take their turns.
enum Turn {
    Floor(Box<FloorLab>),
    Lime(Box<LimeLab>),
}

/// The paths `lime-vs-floor` takes turns with, in the order of its first round.
const VS_FLOOR: [&str; 4] = ["floor", "lime-1k", "floor-tunnel", "lime-tunnel"];

/// 64-byte UDP through the floor, LIME, the floor's two hops and LIME's tunnel in four
/// labs up side by side, taking turns (see the module docs).
fn lime_vs_floor(ctx: &Ctx, res: &mut Results, rules_1k: &[Rule]) -> anyhow::Result<()> {
    // Each lab with its generator and sink (dropped before the lab).
    let mut labs: Vec<(Generator, Sink, Turn)> = Vec::new();
    for (i, path) in VS_FLOOR.iter().enumerate() {
        let lab = format!("{}v{i}", ctx.lab);
        let pins = ctx.pin_root.join(format!("vs-{path}"));
        let turn = match *path {
            "floor" | "floor-tunnel" => Turn::Floor(Box::new(FloorLab::up(
                &lab,
                pins.clone(),
                *path == "floor-tunnel",
            )?)),
            _ => Turn::Lime(Box::new(LimeLab::up(
                &lab,
                &pins.join("fabric"),
                path,
                rules_1k,
            )?)),
        };
        let e = match &turn {
            Turn::Floor(f) => &f.e,
            Turn::Lime(l) => &l.e,
        };
        let traffic = pins.join("traffic");
        let sink = Sink::attach(&e.dst_ns, HOST_IFNAME, &traffic, "sink")?;
        let generator = Generator::new(&e.src_ns, HOST_IFNAME, &traffic, "gen")?;
        labs.push((generator, sink, turn));
    }
    let frames = v4_frames(rules_1k, ctx.flows, 64)?;
    for round in 0..ctx.udp_rounds {
        for threads in [1, 2] {
            let cfg = ctx.send_config(threads);
            let mut line = Vec::new();
            // The order turns every round: no path always runs first or after another.
            for k in 0..VS_FLOOR.len() {
                let i = (k + round) % VS_FLOOR.len();
                let (generator, sink, _) = &labs[i];
                let r = generator.send(&frames, &cfg, &|| sink.received())?;
                let path = VS_FLOOR[i];
                ctx.emit(
                    &json!({"path": "lime-vs-floor", "round": round, "measured": path,
                    "frame_bytes": 64, "threads": threads, "mpps": r.mpps(),
                    "sent": r.sent, "received": r.received, "lost": r.lost()}),
                );
                line.push(format!("{path} {:.2}", r.mpps()));
                res.rounds
                    .entry((path.to_owned(), threads))
                    .or_default()
                    .push(r.mpps());
            }
            if !ctx.json {
                println!(
                    "   round {round}, x{threads} thr, Mpps: {}",
                    line.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Give `ports` back to LIME (`own`: their port-map entries `infos`) or leave them to
/// the bridge (marked not LIME's, so its TC program passes their skbs up).
fn own_ports(
    dp: &mut lime_userspace::datapath::Datapath,
    ports: &[u32],
    infos: &[PortInfo],
    own: bool,
) -> anyhow::Result<()> {
    for (&ifindex, info) in ports.iter().zip(infos) {
        let info = if own { *info } else { PortInfo::default() };
        dp.kernel_mut().set_port(ifindex, info)?;
    }
    Ok(())
}

/// A Linux bridge `br0` in s1's namespace (`s1`) over h1's and h2's ports, up.
fn linux_bridge(s1: &str) -> anyhow::Result<()> {
    netns::ip(&["-n", s1, "link", "add", "br0", "type", "bridge"])?;
    for p in ["h1", "h2"] {
        netns::ip(&["-n", s1, "link", "set", p, "master", "br0"])?;
    }
    netns::ip(&["-n", s1, "link", "set", "br0", "up"])?;
    Ok(())
}

fn bridge(ctx: &Ctx, res: &mut Results, rules_1k: &[Rule]) -> anyhow::Result<()> {
    let lab = Lab::up(&topology(&ctx.lab, false, false)?)?;
    let state = lab.state().clone();
    let e = ends(&state, "h2")?;
    prepare(&state, &e)?;
    let pins = ctx.pin_root.join("bridge");
    let _pins = RemoveOnDrop(pins.clone());
    let s1 = state.netns("s1")?;
    linux_bridge(&s1)?;
    {
        let _ingress = PassGuard::attach(&[(&s1, "h1")], &pins, "pass-in")?;
        udp_runs(ctx, "bridge", &e, rules_1k, true, None, res)?;
    }
    // The lab turns TX checksum offload off on hosts' veths (XDP redirection loses
    // partial checksums); a bridge has no such need, so it gets it back, and with it
    // TSO: the bridge as its users run it.
    for ns in [&e.src_ns, &e.dst_ns] {
        let out = netns::command_in(ns, &["ethtool", "-K", HOST_IFNAME, "tx", "on"])
            .output()
            .context("running ethtool")?;
        anyhow::ensure!(
            out.status.success(),
            "ethtool -K {HOST_IFNAME} tx on in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    tcp_runs(ctx, "bridge", &e, None, res)
}

fn ovs(
    ctx: &Ctx,
    res: &mut Results,
    rules_1k: &[Rule],
    path: &str,
    kind: &str,
) -> anyhow::Result<()> {
    let lab = Lab::up(&topology(&ctx.lab, false, false)?)?;
    let state = lab.state().clone();
    let e = ends(&state, "h2")?;
    prepare(&state, &e)?;
    let pins = ctx.pin_root.join(path);
    let _pins = RemoveOnDrop(pins.clone());
    let s1 = state.netns("s1")?;
    let ovs = Ovs::start(&s1, &PathBuf::from(format!("/run/lime-ovs-{}", ctx.lab)))?;
    ovs.bridge("br0", &[("h1", 1), ("h2", 2)], kind)?;
    let port = |p: u32| (p == 1 || p == 2).then_some(p);
    let flows: Vec<String> = rules_1k
        .iter()
        .map(|r| ovs_flow(r, port))
        .collect::<anyhow::Result<_>>()?;
    ovs.replace_flows("br0", &flows)?;
    {
        // AF_XDP ports run OVS's own XDP program; plain ones need one to accept the
        // generator's redirected frames.
        let _ingress = if kind == "afxdp" {
            None
        } else {
            Some(PassGuard::attach(&[(&s1, "h1")], &pins, "pass-in")?)
        };
        udp_runs(ctx, path, &e, rules_1k, false, None, res)?;
    }
    let mut tcp_flows = flows;
    for (mac, p) in [(e.src_mac, 1), (e.dst_mac, 2)] {
        tcp_flows.push(ovs_flow(&mac_rule(mac, p), port)?);
    }
    ovs.replace_flows("br0", &tcp_flows)?;
    // Open vSwitch's userspace datapath does not fill in checksums the veth left to
    // offload.
    for ns in [&e.src_ns, &e.dst_ns] {
        let _ = netns::command_in(ns, &["ethtool", "-K", HOST_IFNAME, "tx", "off"]).output();
    }
    tcp_runs(ctx, path, &e, None, res)
}

fn lime_path(ctx: &Ctx, res: &mut Results, rules_1k: &[Rule], path: &str) -> anyhow::Result<()> {
    let tc = path.ends_with("-tc");
    let LimeLab {
        mut fabric,
        state,
        e,
        rules,
        installed,
        dst_ifindex,
    } = LimeLab::up(&ctx.lab, &ctx.pin_root.join(path), path, rules_1k)?;
    let flip_rule = rules[0].clone();
    let first = installed.first().cloned().unwrap_or_default();
    let mut flips = if path == "lime-flip" {
        Some(Flips {
            fabric: &mut fabric,
            rule: flip_rule,
            cur: first,
        })
    } else {
        None
    };
    {
        // In TC mode h1's switch port runs no XDP program of LIME's: give it the pass
        // program for the generator's redirected frames (removed before the TCP part,
        // where it would clear h1's segmentation offloads).
        let s1 = state.netns("s1")?;
        let pins = ctx.pin_root.join(format!("{path}-pass"));
        let _pins = RemoveOnDrop(pins.clone());
        let _ingress = if tc {
            Some(PassGuard::attach(&[(&s1, "h1")], &pins, "pass-in")?)
        } else {
            None
        };
        udp_runs(ctx, path, &e, rules_1k, true, flips.as_mut(), res)?;
    }
    let cur = flips.map(|f| f.cur);
    let dp = fabric
        .datapath_mut(&e.dst_switch)
        .context("destination switch datapath")?;
    dp.attach_pass(&e.dst_ns, HOST_IFNAME, dst_ifindex)?;
    fabric.update(VS, &[], &[mac_rule(e.src_mac, 1), mac_rule(e.dst_mac, 2)])?;
    let mut flips = cur.map(|cur| Flips {
        fabric: &mut fabric,
        rule: rules[0].clone(),
        cur,
    });
    tcp_runs(ctx, path, &e, flips.as_mut(), res)
}

/// A LIME path's lab before its measurements: the fabric up, its rules installed, the
/// destination's veth free of the fabric's pass program (for the sink).
struct LimeLab {
    fabric: Fabric,
    state: LabState,
    e: Ends,
    rules: Vec<Rule>,
    installed: Vec<Installed>,
    dst_ifindex: u32,
}

impl LimeLab {
    /// Lab `lab` for LIME path `path` (`lime-1`, `lime-1k`, `lime-100k`, `lime-tunnel`,
    /// `lime-flip`, or one of them with `-tc`), the fabric's pins under `pins`.
    fn up(
        lab: &str,
        pins: &std::path::Path,
        path: &str,
        rules_1k: &[Rule],
    ) -> anyhow::Result<Self> {
        let tc = path.ends_with("-tc");
        let base = path.trim_end_matches("-tc");
        let tunnel = base == "lime-tunnel";
        let mut rules = match base {
            "lime-1" => vec![Rule::new(
                0,
                1,
                Match::default(),
                Instructions::apply(vec![Action::output(2)]),
            )],
            "lime-100k" => rules_over_masks(100_000, 8, SEED),
            _ => rules_1k.to_vec(),
        };
        // The rule sets are IPv4; one IPv6 rule beside them carries the IPv6 row.
        if path != "lime-1" {
            rules.push(v6_rule());
        }
        let topo = topology(lab, tunnel, tc)?;
        let mut fabric = Fabric::up(&topo, pins)?;
        let state = fabric.lab().state().clone();
        let dst = if tunnel { "h3" } else { "h2" };
        let e = ends(&state, dst)?;
        prepare(&state, &e)?;
        let installed = fabric.install(VS, &rules)?;
        let dst_ifindex = state.host(dst).context("dst")?.ifindex;
        // The destination's veth runs the fabric's pass program; the sink takes its
        // place for the UDP part.
        fabric
            .datapath(&e.dst_switch)
            .context("destination switch datapath")?
            .kernel()
            .detach(&format!("pass-{}-{HOST_IFNAME}", e.dst_ns))?;
        Ok(Self {
            fabric,
            state,
            e,
            rules,
            installed,
            dst_ifindex,
        })
    }
}

fn ratio_line(ctx: &Ctx, name: &str, value: Option<f64>, target: &str, met: Option<bool>) {
    let Some(v) = value else {
        if !ctx.json {
            println!("{name}: not measured");
        }
        return;
    };
    // An empty target: a figure to read the others by, with no target of its own.
    let t = (!target.is_empty()).then_some(target);
    ctx.emit(&json!({"ratio": name, "value": v, "target": t, "met": met}));
    if !ctx.json {
        match t {
            None => println!("{name}: {v:.3}"),
            Some(target) => println!(
                "{name}: {v:.3} (target {target}{})",
                match met {
                    Some(true) => ": met",
                    Some(false) => ": NOT met",
                    None => "",
                }
            ),
        }
    }
}

fn report(ctx: &Ctx, r: &Results) {
    if !ctx.json {
        println!();
        println!(
            "{:<12} {:>10} {:>10} {:>12} {:>9} {:>9} {:>9} {:>8}",
            "path",
            "64B Mpps",
            "64B x2thr",
            "1500B Gbit/s",
            "IPv6 Mpps",
            "TCP Gbit/s",
            "p50 us",
            "p99 us"
        );
        let mut order: Vec<&str> = Vec::new();
        for p in r
            .udp
            .iter()
            .map(|u| u.path.as_str())
            .chain(r.tcp.keys().map(String::as_str))
        {
            if !order.contains(&p) {
                order.push(p);
            }
        }
        let f = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2}"));
        for p in order {
            let lat = r.latency.get(p);
            println!(
                "{:<12} {:>10} {:>10} {:>12} {:>9} {:>10} {:>9} {:>8}",
                p,
                f(r.mpps(p, 4, 64, 1)),
                f(r.mpps(p, 4, 64, 2)),
                f(r.mpps(p, 4, 1500, 1).map(|m| m * 1500.0 * 8.0 / 1e3)),
                f(r.mpps(p, 6, 64, 1)),
                f(r.tcp.get(p).copied()),
                lat.map_or("-".into(), |l| format!("{:.1}", l.p50_us)),
                lat.map_or("-".into(), |l| format!("{:.1}", l.p99_us)),
            );
        }
        let lossy: Vec<String> = r
            .udp
            .iter()
            .filter(|u| u.report.lost() > 0)
            .map(|u| {
                format!(
                    "{} IPv{} {} B x{}: {} of {} ({:.1}%)",
                    u.path,
                    u.ip,
                    u.report.frame_bytes,
                    u.threads,
                    u.report.lost(),
                    u.report.sent,
                    100.0 * u.report.lost() as f64 / u.report.sent.max(1) as f64
                )
            })
            .collect();
        if !lossy.is_empty() {
            println!("frames sent but not received: {}", lossy.join("; "));
        }
        for (p, what, why) in &r.unavailable {
            println!("not measured: {p} {what}: {why}");
        }
        println!();
    }
    let m = |p| r.mpps(p, 4, 64, 1);
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let lime = m("lime-1k");
    // The single runs' ratios of two 64-byte rates (the first of PATH_RATIOS here, the
    // others after the TCP ones: the order they have always been printed in).
    let single = |row: &PathRatio| {
        let v = match (m(row.a), m(row.b)) {
            (Some(a), Some(b)) if b > 0.0 => Some(row.of(a, b)),
            _ => None,
        };
        let (target, met) = row.target_met(v);
        ratio_line(ctx, row.single, v, target, met);
    };
    single(&PATH_RATIOS[0]);
    let v = div(lime, m("bridge"));
    ratio_line(
        ctx,
        "lime-1k / bridge (64 B Mpps)",
        v,
        ">= 4",
        v.map(|v| v >= 4.0),
    );
    let v = div(lime, m("ovs-afxdp"));
    ratio_line(
        ctx,
        "lime-1k / ovs-afxdp (64 B Mpps)",
        v,
        ">= 4",
        v.map(|v| v >= 4.0),
    );
    let v = div(r.tcp.get("lime-1k").copied(), r.tcp.get("bridge").copied());
    ratio_line(
        ctx,
        "lime-1k TCP / bridge TCP",
        v,
        ">= 1",
        v.map(|v| v >= 1.0),
    );
    let v = div(
        r.tcp.get("lime-1k-tc").copied(),
        r.tcp.get("bridge").copied(),
    );
    ratio_line(
        ctx,
        "lime-1k-tc TCP / bridge TCP",
        v,
        ">= 1",
        v.map(|v| v >= 1.0),
    );
    if let Some((l, b)) = &r.alternated {
        let v = div(Some(super::median(l)), Some(super::median(b)));
        ratio_line(
            ctx,
            &format!(
                "lime-1k-tc TCP / bridge TCP, alternated in one lab (medians of {} runs each)",
                l.len()
            ),
            v,
            ">= 1",
            v.map(|v| v >= 1.0),
        );
    }
    PATH_RATIOS[1..].iter().for_each(single);
    alternated_ratios(ctx, r);
}

/// A ratio of two paths' 64-byte rates, as the single runs give it (one sender thread)
/// and as `lime-vs-floor`'s rounds do (one and two): `a / b`, or with `cost` the cost
/// `1 - a / b`.
struct PathRatio {
    /// Its name beside the single runs' figures.
    single: &'static str,
    /// Its name beside `lime-vs-floor`'s rounds.
    name: &'static str,
    a: &'static str,
    b: &'static str,
    cost: bool,
    target: Option<Target>,
}

/// A target as printed, and whether a value meets it.
type Target = (&'static str, fn(f64) -> bool);

impl PathRatio {
    /// The ratio (or cost) of rates `a` and `b`.
    fn of(&self, a: f64, b: f64) -> f64 {
        if self.cost { 1.0 - a / b } else { a / b }
    }

    /// The target as printed ("" for none) and whether `v` meets it.
    fn target_met(&self, v: Option<f64>) -> (&'static str, Option<bool>) {
        self.target.map_or(("", None), |(t, ok)| (t, v.map(ok)))
    }
}

const PATH_RATIOS: [PathRatio; 4] = [
    PathRatio {
        single: "lime-1k / floor (64 B Mpps)",
        name: "lime-1k / floor",
        a: "lime-1k",
        b: "floor",
        cost: false,
        target: Some((">= 0.90", |v| v >= 0.9)),
    },
    PathRatio {
        single: "tunnel cost (1 - lime-tunnel / lime-1k, 64 B Mpps)",
        name: "tunnel cost (1 - lime-tunnel / lime-1k)",
        a: "lime-tunnel",
        b: "lime-1k",
        cost: true,
        target: Some(("<= 0.25", |v| v <= 0.25)),
    },
    PathRatio {
        single: "the bare second hop's cost (1 - floor-tunnel / floor, 64 B Mpps)",
        name: "the bare second hop's cost (1 - floor-tunnel / floor)",
        a: "floor-tunnel",
        b: "floor",
        cost: true,
        target: None,
    },
    PathRatio {
        single: "lime-tunnel / floor-tunnel (64 B Mpps)",
        name: "lime-tunnel / floor-tunnel",
        a: "lime-tunnel",
        b: "floor-tunnel",
        cost: false,
        target: None,
    },
];

/// Each round's ratio of `a` and `b` by `row`, the two lists paired round by round.
fn round_ratios(row: &PathRatio, a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| row.of(*a, *b)).collect()
}

/// The ratios of `lime-vs-floor`: each the median of the rounds' own ratios (the two
/// paths of a round ran seconds apart), with the rounds' ratios beside it.
fn alternated_ratios(ctx: &Ctx, r: &Results) {
    for threads in [1, 2] {
        let rounds = |p: &str| r.rounds.get(&(p.to_owned(), threads));
        for row in &PATH_RATIOS {
            let (Some(a), Some(b)) = (rounds(row.a), rounds(row.b)) else {
                continue;
            };
            let ratios = round_ratios(row, a, b);
            let v = super::median(&ratios);
            let name = format!(
                "{}, 64 B x{threads} thr, alternated in four labs (median of {} rounds)",
                row.name,
                ratios.len()
            );
            let (target, met) = row.target_met(Some(v));
            ratio_line(ctx, &name, Some(v), target, met);
            if !ctx.json {
                let each: Vec<String> = ratios.iter().map(|x| format!("{x:.2}")).collect();
                println!("   round by round: {}", each.join(" "));
            }
        }
    }
}

/// Removes a directory (pins) on every exit path.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::{PATH_RATIOS, round_ratios};

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    #[test]
    fn round_ratios_pair_the_rounds() {
        let [ratio, cost, ..] = &PATH_RATIOS;
        assert!(!ratio.cost && cost.cost);
        let floor = [4.0, 2.0, 3.0];
        let lime = [3.6, 1.9, 2.4];
        let r = round_ratios(ratio, &lime, &floor);
        assert!(close(&r, &[0.9, 0.95, 0.8]), "{r:?}");
        // The median of the rounds' ratios, not the ratio of the medians (2.4 / 3.0).
        assert!((crate::cli::median(&r) - 0.9).abs() < 1e-9);
        let c = round_ratios(cost, &lime, &floor);
        assert!(close(&c, &[0.1, 0.05, 0.2]), "{c:?}");
        // A round one path did not finish is left out, not paired with another round.
        assert!(close(
            &round_ratios(ratio, &lime[..2], &floor),
            &[0.9, 0.95]
        ));
    }

    #[test]
    fn path_ratio_targets() {
        let [lime_floor, tunnel, hop, _] = &PATH_RATIOS;
        assert_eq!(lime_floor.target_met(Some(0.9)), (">= 0.90", Some(true)));
        assert_eq!(
            lime_floor.target_met(Some(0.8995)),
            (">= 0.90", Some(false))
        );
        assert_eq!(tunnel.target_met(Some(0.25)), ("<= 0.25", Some(true)));
        assert_eq!(tunnel.target_met(Some(0.3)), ("<= 0.25", Some(false)));
        assert_eq!(tunnel.target_met(None), ("<= 0.25", None));
        assert_eq!(hop.target_met(Some(0.3)), ("", None));
    }
}

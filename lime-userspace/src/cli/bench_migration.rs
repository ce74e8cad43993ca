//! `lime bench migration`: a virtual switch with many rules and four hosts under load,
//! migrated with `clone` and then, on a fresh lab, with `move`; what the flows saw.
//!
//! Lab: s1 — s2 — s3. h1 and h2 on s1, h3 and h4 on s2, all on vs1, which runs on s1
//! and s2. The s1 part (h1, h2) moves to s3 mid-stream. Four sequence-numbered UDP
//! flows at a fixed offered rate: two between hosts that stay put (h3 → h4, h4 → h3)
//! and two from the moving hosts (h1 → h3, h2 → h4). Per flow the receiver counts
//! datagrams, duplicates and reorderings; per flow a counting rule must equal what
//! arrived (`counters_match`). Flows *to* a moving host are left out on purpose: what
//! arrives for it while its link is recreated is its own downtime
//! (`host_downtime_ms`), not a loss of the migration.
//!
//! Under all of it a bulk load (`--load-pps`, default 1 Mpps offered): 64-byte frames
//! from h5 to h6 (both on s2, staying put), made by LIME's XDP generator in h5's
//! namespace, classified by vs1 among its 10 000 rules and counted by an XDP sink on
//! h6. Reported: what was offered and delivered, and the dip — the delivery rate while
//! the migration ran against the rate before it.
//!
//! Also: the time of a 100-rule consistent update across two copies (one version on
//! each, until it is in the kernel everywhere: when a BARRIER_REPLY could leave).
use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Args;
use lime_userspace::{
    fabric::{Fabric, l2_rules},
    flow::{Action, Instructions, Match, Rule, matching},
    migration::{Strategy, migrate},
    traffic::{
        Generator, Report, SendConfig, Sink, TrafficError,
        frame::{UdpFlow, udp_frame},
        seqflow::{self, Clock, FlowSpec, Flows, RecvLog},
        wait_detached,
    },
    vswitch::{FlowMod, VirtualSwitch},
};
use serde::Serialize;

/// `lime bench migration` arguments.
#[derive(Args)]
pub struct MigrationArgs {
    /// One JSON object per migration (and one for the update timing) instead of a table.
    #[arg(long)]
    json: bool,
    /// Extra rules in the virtual switch's table (they match none of the traffic).
    #[arg(long, default_value_t = 10_000)]
    rules: usize,
    /// Offered datagrams per second, per flow (four flows).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Seconds of traffic; the migration starts after a third of it.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Bulk load offered from h5 to h6 during the run, frames per second (0: none).
    #[arg(long, default_value_t = 1_000_000.0)]
    load_pps: f64,
}

/// One migration's outcome (the `--json` line).
#[derive(Serialize)]
struct Outcome {
    strategy: &'static str,
    rules: usize,
    flows: usize,
    offered_pps: f64,
    sent: u64,
    received: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    /// Lost on the flows between hosts that did not move.
    lost_static: u64,
    /// Classified by a copy (counted by a rule) but not delivered: lost by the
    /// migration itself.
    lost_by_lime: u64,
    /// Sent by a moving host while it had no working link (its own downtime), never
    /// reaching a copy: `sent - counted - frozen_drops`.
    lost_host_downtime: u64,
    clone_ms: f64,
    total_ms: f64,
    host_downtime_ms: f64,
    frozen_drops: u64,
    /// Datagrams the receiving hosts' own sockets dropped (a busy machine's receiver
    /// falling behind, not the network); with none, `lost` is all the network's.
    receiver_overflows: u64,
    counters_match: bool,
    /// The bulk load (absent with `--load-pps 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<Load>,
}

/// What the bulk load saw.
#[derive(Serialize, Default)]
struct Load {
    offered_pps: f64,
    sent: u64,
    delivered: u64,
    lost: u64,
    delivered_pps: f64,
    /// Delivery rate from the load's start to the migration's.
    before_pps: f64,
    /// Delivery rate while the migration ran.
    during_pps: f64,
    /// `1 - during_pps / before_pps` (0 if it did not drop).
    dip: f64,
}

const FLOWS: [(&str, &str, u16, u32, bool); 4] = [
    // (from, to, udp port, virtual out port, from a moving host)
    ("h3", "h4", 7500, 4, false),
    ("h4", "h3", 7501, 3, false),
    ("h1", "h3", 7502, 3, true),
    ("h2", "h4", 7503, 4, true),
];

fn topology() -> lime_lab::Topology {
    lime_lab::Topology::from_toml_str(
        r#"
name = "bmigr"
[[switch]]
name = "s1"
[[switch]]
name = "s2"
[[switch]]
name = "s3"
[[host]]
name = "h1"
switch = "s1"
[[host]]
name = "h2"
switch = "s1"
[[host]]
name = "h3"
switch = "s2"
[[host]]
name = "h4"
switch = "s2"
[[host]]
name = "h5"
switch = "s2"
[[host]]
name = "h6"
switch = "s2"
[[link]]
a = "s1"
b = "s2"
[[link]]
a = "s2"
b = "s3"
[[vswitch]]
name = "vs1"
tenant = "bench"
ports = [ { port = 1, host = "h1" }, { port = 2, host = "h2" },
          { port = 3, host = "h3" }, { port = 4, host = "h4" },
          { port = 5, host = "h5" }, { port = 6, host = "h6" } ]
"#,
    )
    .expect("the built-in benchmark topology is valid")
}

fn udp_rule(port: u16, priority: u16, out: u32) -> Rule {
    Rule::new(
        0,
        priority,
        Match {
            eth_type: Some(matching::ethertype::IPV4),
            ip_proto: Some(matching::ipproto::UDP),
            udp_dst: Some(port),
            ..Match::default()
        },
        Instructions::apply(vec![Action::output(out)]),
    )
}

/// One lab, one migration under traffic.
fn run_one(a: &MigrationArgs, strategy: Strategy) -> anyhow::Result<Outcome> {
    let pin_root = PathBuf::from(lime_userspace::datapath::PIN_ROOT);
    let mut f = Fabric::up(&topology(), &pin_root)?;
    let mut vsw = VirtualSwitch::new("vs1");
    let mut fms: Vec<FlowMod> = l2_rules(f.lab().state(), "vs1")
        .into_iter()
        .map(FlowMod::add)
        .collect();
    let counting: Vec<usize> = FLOWS
        .iter()
        .map(|&(_, _, port, out, _)| {
            fms.push(FlowMod::add(udp_rule(port, 100, out)));
            fms.len() - 1
        })
        .collect();
    fms.push(FlowMod::add(udp_rule(LOAD_PORT, 100, 6)));
    for i in 0..a.rules {
        let port = 20_000 + u16::try_from(i % 40_000).unwrap_or(0);
        let mut r = udp_rule(port, 50, 4);
        r.matches.ipv4_src = Some(lime_userspace::flow::Masked::exact(Ipv4Addr::from_bits(
            0xac10_0000 | u32::try_from(i / 40_000).unwrap_or(0),
        )));
        fms.push(FlowMod::add(r));
    }
    let results = vsw.apply_batch(&mut f, &fms)?;
    let mut ids = Vec::with_capacity(results.len());
    for r in results {
        ids.push(r?.added.first().copied().unwrap_or(0));
    }
    vsw.retire_copy(&mut f, "s3")?;

    let st = f.lab().state();
    let receivers: Vec<String> = ["h3", "h4"]
        .iter()
        .map(|h| st.topology.netns_name(h))
        .collect();
    let overflows_before = seqflow::rcvbuf_errors(&receivers);
    let specs: Vec<FlowSpec> = FLOWS
        .iter()
        .map(|&(from, to, port, _, _)| FlowSpec {
            from_netns: st.topology.netns_name(from),
            to_netns: st.topology.netns_name(to),
            to_ip: st.host(to).map_or(Ipv4Addr::UNSPECIFIED, |h| h.ip.addr),
            port,
            rate: a.rate,
            payload: 8,
        })
        .collect();
    let load = (a.load_pps > 0.0)
        .then(|| BulkLoad::start(&f, a.load_pps, Duration::from_secs_f64(a.seconds)))
        .transpose()?;
    let flows = Flows::start(
        &specs,
        Clock::start(Duration::from_millis(100)),
        Duration::from_secs(1),
    )?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(a.seconds / 3.0));
    let mig_started = Instant::now();
    let report = migrate(&mut f, &mut vsw, "s1", "s3", strategy, |_| {})?;
    let mig_ended = Instant::now();
    let left = Duration::from_secs_f64(a.seconds).saturating_sub(started.elapsed());
    std::thread::sleep(left);
    let elapsed = started.elapsed().as_secs_f64();
    let logs = flows.stop();
    let load = load.map(|l| l.finish(mig_started, mig_ended)).transpose()?;
    let sent: Vec<u64> = logs.iter().map(|(tx, _)| tx.sent).collect();
    let got: Vec<&RecvLog> = logs.iter().map(|(_, rx)| rx).collect();
    let receiver_overflows = seqflow::rcvbuf_errors(&receivers).saturating_sub(overflows_before);
    let mut counters_match = true;
    let mut counted_total = 0;
    for (k, rx) in counting.iter().zip(&got) {
        let counted = vsw.stats(&f, ids[*k])?.packets;
        counted_total += counted;
        counters_match &= counted == rx.received;
    }
    let total_sent: u64 = sent.iter().sum();
    let received: u64 = got.iter().map(|r| r.received).sum();
    let lost_static = FLOWS
        .iter()
        .zip(sent.iter().zip(&got))
        .filter(|(fl, _)| !fl.4)
        .map(|(_, (s, r))| s.saturating_sub(r.received))
        .sum();
    let clone_ms = report
        .phases_ms
        .iter()
        .filter(|(p, _)| *p == lime_userspace::migration::Phase::Clone)
        .map(|(_, ms)| *ms)
        .sum();
    Ok(Outcome {
        strategy: match strategy {
            Strategy::Clone => "clone",
            Strategy::Move => "move",
        },
        rules: report.rules,
        flows: FLOWS.len(),
        offered_pps: total_sent as f64 / elapsed,
        sent: total_sent,
        received,
        lost: total_sent.saturating_sub(received),
        duplicated: got.iter().map(|r| r.duplicated).sum(),
        reordered: got.iter().map(|r| r.reordered).sum(),
        lost_static,
        lost_by_lime: counted_total.saturating_sub(received),
        lost_host_downtime: total_sent
            .saturating_sub(counted_total)
            .saturating_sub(report.frozen_drops),
        clone_ms,
        total_ms: report.total_ms,
        host_downtime_ms: report.hosts.iter().map(|(_, ms)| ms).sum(),
        frozen_drops: report.frozen_drops,
        receiver_overflows,
        counters_match,
        load,
    })
}

/// UDP port of the bulk load (h5 → h6).
const LOAD_PORT: u16 = 7600;
/// Interval of the bulk load's delivery samples.
const LOAD_BIN: Duration = Duration::from_millis(100);

/// The bulk load under way: the generator's thread and a sampler of the sink.
struct BulkLoad {
    sender: std::thread::JoinHandle<Result<Report, TrafficError>>,
    sampler: std::thread::JoinHandle<Vec<(Instant, u64)>>,
    stop: Arc<AtomicBool>,
    rate: f64,
    pins: PathBuf,
}

impl BulkLoad {
    /// Start offering `rate` 64-byte frames per second from h5 to h6 for `duration`.
    fn start(f: &Fabric, rate: f64, duration: Duration) -> anyhow::Result<Self> {
        let st = f.lab().state();
        let host = |n: &str| {
            st.host(n)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no host {n}"))
        };
        let (h5, h6) = (host("h5")?, host("h6")?);
        let frame = udp_frame(
            &UdpFlow {
                src_mac: h5.mac.octets(),
                dst_mac: h6.mac.octets(),
                src: IpAddr::V4(h5.ip.addr),
                dst: IpAddr::V4(h6.ip.addr),
                sport: 10_000,
                dport: LOAD_PORT,
                dscp: 0,
            },
            64,
        )?;
        let pins = PathBuf::from(lime_userspace::datapath::PIN_ROOT).join("bench-load");
        // h6's veth runs the fabric's pass program; the sink takes its place.
        f.datapath(&h6.switch)
            .ok_or_else(|| anyhow::anyhow!("no datapath on {}", h6.switch))?
            .kernel()
            .detach(&format!("pass-{}-{}", h6.netns, h6.ifname))?;
        wait_detached(&h6.netns, &h6.ifname);
        let sink = Arc::new(Sink::attach(&h6.netns, &h6.ifname, &pins, "sink")?);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (sink, stop) = (sink.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sink.received() {
                        samples.push((Instant::now(), n));
                    }
                    std::thread::sleep(LOAD_BIN);
                }
                samples
            })
        };
        let generator = Generator::new(&h5.netns, &h5.ifname, &pins, "gen")?;
        let sender = {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let cfg = SendConfig {
                    rate_pps: Some(rate),
                    duration,
                    // Large calls: each BPF_PROG_TEST_RUN call has a fixed setup cost
                    // (tens of ms on a busy machine) that small ones cannot amortise.
                    chunk: 64 * 1024,
                    ..SendConfig::default()
                };
                generator.send(&[frame], &cfg, &|| sink.received())
            })
        };
        // The load is on before anything else starts.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.received()? == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self {
            sender,
            sampler,
            stop,
            rate,
            pins,
        })
    }

    /// Wait for the load to end; what it saw, the dip judged against the migration's
    /// time `[from, to]`.
    fn finish(self, from: Instant, to: Instant) -> anyhow::Result<Load> {
        let report = self
            .sender
            .join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.sampler.join().unwrap_or_default();
        // The generator and the sink removed their pins; their directory goes too.
        let _ = std::fs::remove_dir(&self.pins);
        // Average delivery rates over the time before the migration and over the
        // migration itself (the generator sends in large bursts, so shorter intervals
        // would measure its bursts, not the path).
        let rate = |a: Option<&(Instant, u64)>, b: Option<&(Instant, u64)>| match (a, b) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                b.1.saturating_sub(a.1) as f64 / b.0.duration_since(a.0).as_secs_f64()
            }
            _ => 0.0,
        };
        let last_before = samples.iter().rev().find(|(t, _)| *t <= from);
        let first_after = samples.iter().find(|(t, _)| *t >= to);
        let before_pps = rate(samples.first(), last_before);
        let during_pps = rate(last_before, first_after);
        let secs = report.elapsed.as_secs_f64().max(1e-9);
        Ok(Load {
            offered_pps: (report.sent as f64 / secs).min(self.rate),
            sent: report.sent,
            delivered: report.received,
            lost: report.lost(),
            delivered_pps: report.received.min(report.sent) as f64 / secs,
            before_pps,
            during_pps,
            dip: if before_pps > 0.0 {
                (1.0 - during_pps / before_pps).max(0.0)
            } else {
                0.0
            },
        })
    }
}

/// The time of a 100-rule update across two copies, as one version on each.
fn consistent_update_ms() -> anyhow::Result<f64> {
    let pin_root = PathBuf::from(lime_userspace::datapath::PIN_ROOT);
    let mut f = Fabric::up(&topology(), &pin_root)?;
    let mut vsw = VirtualSwitch::new("vs1");
    vsw.retire_copy(&mut f, "s3")?;
    let fms: Vec<FlowMod> = (0..100)
        .map(|i| FlowMod::add(udp_rule(30_000 + i, 60, 3)))
        .collect();
    let t = Instant::now();
    for r in vsw.apply_batch(&mut f, &fms)? {
        r?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Run the benchmark.
pub fn run(a: &MigrationArgs) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    if !a.json {
        println!(
            "migration of vs1 (4 hosts, {} extra rules) from s1 to s3 under {} flows of {} datagrams/s each and a bulk load of {:.0} frames/s",
            a.rules,
            FLOWS.len(),
            a.rate,
            a.load_pps
        );
    }
    let mut outcomes = Vec::new();
    for strategy in [Strategy::Clone, Strategy::Move] {
        let o = run_one(a, strategy)?;
        if a.json {
            println!("{}", serde_json::to_string(&o)?);
        } else {
            println!(
                "{:<6} sent {:>7} received {:>7} lost {:>5} (by LIME {}, while frozen {}, in host downtime {}; static flows {}) dup {} reord {}  clone {:.1} ms  total {:.1} ms  host downtime {:.1} ms  receiver overflows {}  counters match: {}",
                o.strategy,
                o.sent,
                o.received,
                o.lost,
                o.lost_by_lime,
                o.frozen_drops,
                o.lost_host_downtime,
                o.lost_static,
                o.duplicated,
                o.reordered,
                o.clone_ms,
                o.total_ms,
                o.host_downtime_ms,
                o.receiver_overflows,
                o.counters_match
            );
            if let Some(l) = &o.load {
                println!(
                    "       bulk load h5 -> h6: offered {:.0} pps, delivered {:.0} pps ({} of {} frames, lost {}); {:.0} pps before the migration, {:.0} pps during it (dip {:.0}%)",
                    l.offered_pps,
                    l.delivered_pps,
                    l.delivered,
                    l.sent,
                    l.lost,
                    l.before_pps,
                    l.during_pps,
                    l.dip * 100.0
                );
            }
        }
        outcomes.push(o);
    }
    let update = consistent_update_ms()?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"consistent_update_rules": 100, "copies": 2, "ms": update})
        );
    } else {
        println!(
            "100-rule consistent update across 2 copies: {update:.2} ms until in the kernel everywhere (target < 10 ms)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

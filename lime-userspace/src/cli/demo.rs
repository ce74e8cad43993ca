//! `lime demo`: a live migration of the default lab's virtual switch under traffic,
//! driven by a real controller, reported in numbers and a plot — once with `clone`
//! (LIME), then on a fresh lab with `move` (the naive baseline) for comparison.
//!
//! # What one run does
//! 1. Starts os-ken's learning switch ([`OsKen`]) and brings up the default lab
//!    (`s1` — `s2` — `s3`; `h1`, `h2` on `s1`, `h3`, `h4` on `s2`; virtual switch `vs1`)
//!    with the OpenFlow agent; `vs1`'s controller is the learning switch. LIME installs
//!    nothing itself: every rule is the controller's.
//! 2. Warm-up: permanent neighbour entries in every host (so ARP does not add frames
//!    to the flows' rules), one ping per ordered pair of hosts until the controller has
//!    learned the twelve `in_port, eth_dst → output` rules, then a snapshot of their
//!    counters.
//! 3. Traffic: one sequence-numbered UDP flow per ordered pair (twelve), paced
//!    ([`seqflow`]); after a third of the time `vs1` is migrated to `s3` through the
//!    switch core (`CoreHandle::migrate`, serialized with the controller's messages):
//!    the `s1` part, then the `s2` part, one report each. While it runs, the demo
//!    prints the received rate every half second and each host's link going and
//!    coming back as seen from inside the host; the phases once the core reports them.
//! 4. Accounting, per flow: sent, received, duplicated, reordered; each lost datagram
//!    is put down to the sending host's own re-attach, the receiving host's own
//!    re-attach (both: the datagram was sent while that host was being moved, see
//!    below), the frozen source copy (`move` only: sent by a host whose ingress copy
//!    was frozen), the sending host's own link (outside those, and never counted by
//!    the flow's rule: it did not reach LIME — on a busy machine a host's veth drops
//!    frames when the switch side is behind; the links' transmit drops are reported
//!    beside it), or else to the migration itself (outside those, and counted by the
//!    rule: LIME classified it and did not deliver it).
//! 5. Counters, per flow: the learned rule `in_port=A, eth_dst=B` must have counted,
//!    over the run, every datagram of A → B that B received plus the unicast ARP
//!    frames B received from A (counted by a packet socket in B) — and at most that
//!    plus the datagrams lost while B was being re-attached (those were classified at
//!    A's copy, then had nowhere to go; the datapath cannot tell how many of them
//!    reached it — also those that fall in A's re-attach window too, where the two
//!    windows meet) and those no re-attach or freeze explains. Where no loss is in
//!    doubt the check is an equality.
//!    Merged counters that lose a retired or frozen copy's share, count a packet on
//!    two copies, or a rule the controller re-added (counters reset) fail it.
//! 6. A plot of datagrams per second over time, sent and received, with the phases
//!    shaded (`OUT/clone.svg`, `OUT/move.svg`).
//!
//! A host's re-attach window runs from its link going (as the host saw it, or its
//! reported downtime before the engine said it was moved) to that event; a leg runs
//! from its first phase's event to its report's (real times: the core serves other work
//! between steps). A datagram sent up to [`SLACK_BEFORE`] before or [`SLACK_AFTER`]
//! after a window counts as in it: the host's own link watcher notices a link going
//! up to 5 ms late, an event reaches the demo a little after it happened, and a
//! datagram on its way to a host when its link is cut is lost with that link.
//!
//! `LIME_DEMO_DEBUG=1` prints each datagram put down to the migration with the hosts'
//! re-attach windows, the send times of reordered datagrams, and every namespace's link
//! statistics at the end.
//!
//! Exit status: failure if `clone` lost any datagram by the migration, duplicated or
//! reordered any, or any counter does not match (for either strategy).
use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use lime_lab::{LabState, Topology};
use lime_userspace::{
    fabric::Fabric,
    migration::{Phase, Progress, Report, Strategy},
    ofswitch::{Agent, AgentOptions, CoreHandle, FlowDump},
    osken::{OsKen, OsKenOptions},
    traffic::seqflow::{self, ArpCounter, Clock, FlowSpec, Flows},
};
use serde::Serialize;

use super::plot::{self, Band};

/// Demo options.
#[derive(Args)]
pub struct DemoArgs {
    /// Seconds of traffic per migration; the migration starts after a third of it.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Datagrams per second, per flow (one flow per ordered pair of hosts: twelve).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// UDP payload bytes per datagram (at least 8).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Strategies to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "clone,move")]
    strategies: Vec<String>,
    /// Physical switch to migrate the virtual switch to.
    #[arg(long, default_value = "s3")]
    to: String,
    /// Lab name (namespaces `lime-<lab>-*`).
    #[arg(long, default_value = "demo")]
    lab: String,
    /// Directory for the plots and the controller's logs.
    #[arg(long, default_value = "target/lime-demo")]
    out: PathBuf,
    /// Print one JSON object per migration (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

/// How long before a host's re-attach window a datagram still counts as in it.
pub const SLACK_BEFORE: Duration = Duration::from_millis(10);
/// How long after a host's re-attach window a datagram still counts as in it.
pub const SLACK_AFTER: Duration = Duration::from_millis(20);
const BIN: Duration = Duration::from_millis(100);
const BASE_PORT: u16 = 7600;
const VSWITCH: &str = "vs1";

/// One flow's outcome.
#[derive(Serialize)]
struct FlowOutcome {
    src: String,
    dst: String,
    sent: u64,
    send_failures: u64,
    received: u64,
    lost: u64,
    lost_by_migration: u64,
    lost_before_lime: u64,
    lost_in_src_reattach: u64,
    lost_in_dst_reattach: u64,
    lost_while_frozen: u64,
    duplicated: u64,
    reordered: u64,
    rule_packets: u64,
    /// Unicast ARP frames B received from A (the rule counts them too).
    arp_frames: u64,
    /// Unicast ARP frames A sent to B that B did not receive (e.g. while B was being
    /// re-attached).
    arp_lost: u64,
    /// What the rule must have counted at least: what B received from A.
    expected_min: u64,
    /// At most: that, plus what was lost while B was being re-attached or for no
    /// reason a re-attach or a freeze explains, and the ARP frames A sent B that B
    /// never got.
    expected_max: u64,
    counters_match: bool,
}

/// A phase as it happened, on the run's clock.
#[derive(Serialize)]
struct PhaseTime {
    phase: Phase,
    from: String,
    to: String,
    start_ms: f64,
    ms: f64,
}

/// One migration's outcome (the `--json` line).
#[derive(Serialize)]
struct Outcome {
    strategy: Strategy,
    vswitch: &'static str,
    to: String,
    rules: usize,
    flows: usize,
    seconds: f64,
    sent: u64,
    received: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    lost_by_migration: u64,
    /// Lost before reaching LIME, outside any re-attach or freeze: dropped by the
    /// sending host's own link (its veth queue to the switch was full).
    lost_before_lime: u64,
    lost_in_host_reattach: u64,
    lost_while_frozen: u64,
    send_failures: u64,
    /// Each host's own link's transmit drops at the end (since its last re-attach): the
    /// kernel's count behind `lost_before_lime`.
    sender_link_drops: BTreeMap<String, u64>,
    frozen_drops: u64,
    clone_ms: f64,
    total_ms: f64,
    host_downtime_ms: BTreeMap<String, f64>,
    receiver_overflows: u64,
    /// What the datapaths dropped during the run, by `switch:reason`.
    datapath_drops: BTreeMap<String, u64>,
    counters_match: bool,
    phases: Vec<PhaseTime>,
    plot: PathBuf,
    per_flow: Vec<FlowOutcome>,
}

/// Where and when each host was being re-attached, and each report's span (ns on the
/// run's clock).
struct Windows {
    /// (host, start, end).
    hosts: Vec<(String, u64, u64)>,
    /// (hosts moved by the report, report start, end).
    reports: Vec<(Vec<String>, u64, u64)>,
    phases: Vec<PhaseTime>,
}

fn ns(ms: f64) -> u64 {
    (ms * 1e6).max(0.0) as u64
}

impl Windows {
    /// From the engine's progress events as they arrived (`events`, on the run's clock)
    /// and what the hosts saw of their links (`links`: time, host, new ifindex or 0
    /// when the link went): each host's re-attach from its link going (or, if the
    /// watcher missed that, its downtime before the event) to the event; each leg from
    /// its first phase to its report. Real times, not durations added up: the core
    /// serves other work between a migration's steps.
    fn from_events(events: &[(u64, Progress)], links: &[(u64, String, u32)]) -> Self {
        let mut w = Self {
            hosts: Vec::new(),
            reports: Vec::new(),
            phases: Vec::new(),
        };
        let (mut leg_start, mut leg_hosts, mut leg_phases) = (None, Vec::new(), 0usize);
        for (t, ev) in events {
            match ev {
                Progress::Phase {
                    from, to, phase, ..
                } => {
                    leg_start.get_or_insert(*t);
                    w.phases.push(PhaseTime {
                        phase: *phase,
                        from: from.clone(),
                        to: to.clone(),
                        start_ms: *t as f64 / 1e6,
                        ms: 0.0,
                    });
                    leg_phases += 1;
                }
                Progress::HostMoved {
                    host, downtime_ms, ..
                } => {
                    let by_downtime = t.saturating_sub(ns(*downtime_ms));
                    let gone = links
                        .iter()
                        .filter(|(lt, h, ifindex)| {
                            h == host && *ifindex == 0 && *lt <= *t && *lt + ns(1e3) >= *t
                        })
                        .map(|(lt, _, _)| *lt)
                        .max();
                    let start = gone.map_or(by_downtime, |g| g.min(by_downtime));
                    w.hosts.push((host.clone(), start, *t));
                    leg_hosts.push(host.clone());
                }
                Progress::Done { report } => {
                    // This leg's phases, in order, take the report's durations.
                    let first = w.phases.len() - leg_phases;
                    for (p, (_, ms)) in w.phases[first..].iter_mut().zip(&report.phases_ms) {
                        p.ms = *ms;
                    }
                    leg_phases = 0;
                    w.reports.push((
                        std::mem::take(&mut leg_hosts),
                        leg_start.take().unwrap_or(*t),
                        *t,
                    ));
                }
            }
        }
        w
    }

    /// Whether host `h` was being re-attached at `t`.
    fn reattaching(&self, h: &str, t: u64) -> bool {
        let (before, after) = (
            ns(SLACK_BEFORE.as_secs_f64() * 1e3),
            ns(SLACK_AFTER.as_secs_f64() * 1e3),
        );
        self.hosts
            .iter()
            .any(|(x, s, e)| x == h && t + before >= *s && t <= e + after)
    }

    /// Whether host `h` sent into a frozen copy at `t` (`move`: from the start of the
    /// report that moved it until it was re-attached).
    fn frozen(&self, h: &str, t: u64) -> bool {
        self.reports.iter().any(|(hosts, s, _)| {
            hosts.iter().any(|x| x == h)
                && t >= *s
                && self
                    .hosts
                    .iter()
                    .find(|(x, hs, _)| x == h && hs >= s)
                    .is_some_and(|(_, hs, _)| t < *hs)
        })
    }
}

/// Watches each host's link from inside its namespace (`if_nametoindex` every 5 ms):
/// what the hosts see of their re-attach, as it happens.
struct LinkWatch {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// (ns on the clock, host, new ifindex or 0 when the link is gone).
    events: mpsc::Receiver<(u64, String, u32)>,
}

impl LinkWatch {
    fn start(hosts: &[(lime_lab::HostIface, u32)], clock: Clock) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let threads = hosts
            .iter()
            .map(|(h, _)| {
                let (ns, host, stop, tx) =
                    (h.netns.clone(), h.host.clone(), stop.clone(), tx.clone());
                let ifname = std::ffi::CString::new(h.ifname.clone()).unwrap_or_default();
                std::thread::spawn(move || {
                    let _ = lime_lab::netns::run_in_netns(&ns, || {
                        // SAFETY: a valid NUL-terminated name.
                        let index = || unsafe { libc::if_nametoindex(ifname.as_ptr()) };
                        let mut last = index();
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(5));
                            let now = index();
                            if now != last {
                                let _ = tx.send((clock.now_ns(), host.clone(), now));
                                last = now;
                            }
                        }
                    });
                })
            })
            .collect();
        Self {
            stop,
            threads,
            events,
        }
    }

    /// Stop watching; the events not taken yet.
    fn stop(self) -> Vec<(u64, String, u32)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.events.try_iter().collect()
    }
}

/// Every physical switch's drop counters, as `switch:reason` → frames.
fn drops(core: &CoreHandle) -> anyhow::Result<BTreeMap<String, u64>> {
    core.with_fabric(|f| {
        let mut out = BTreeMap::new();
        for (sw, dp) in f.datapaths() {
            for (reason, n) in dp.kernel().drops().unwrap_or_default() {
                out.insert(
                    format!("{sw}:{}", lime_common::stats::drop_reason::name(reason)),
                    n,
                );
            }
        }
        out
    })
    .map_err(anyhow::Error::msg)
}

/// Transmit drops of interface `ifname` in namespace `netns` (0 if unreadable).
fn tx_dropped(netns: &str, ifname: &str) -> u64 {
    lime_lab::netns::ip(&["-n", netns, "-j", "-s", "link", "show", "dev", ifname])
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v[0]["stats64"]["tx"]["dropped"].as_u64())
        .unwrap_or(0)
}

/// What `after` counted beyond `before`.
fn increase(before: &BTreeMap<String, u64>, after: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .into_iter()
        .map(|(k, n)| {
            let d = n.saturating_sub(before.get(&k).copied().unwrap_or(0));
            (k, d)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Clone => "clone",
        Strategy::Move => "move",
    }
}

/// Learned-rule counters by (in_port, eth_dst).
fn learned(flows: &[FlowDump]) -> BTreeMap<(u32, [u8; 6]), u64> {
    flows
        .iter()
        .filter_map(|f| {
            let m = &f.match_fields;
            Some(((m.in_port?, m.eth_dst?.value), f.n_packets))
        })
        .collect()
}

fn wait_for(
    what: &str,
    secs: u64,
    mut ok: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok()? {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The hosts of the virtual switch with their virtual ports.
fn hosts_and_ports(state: &LabState) -> anyhow::Result<Vec<(lime_lab::HostIface, u32)>> {
    let vs = state
        .topology
        .vswitch(VSWITCH)
        .context("the default lab has vs1")?;
    vs.ports
        .iter()
        .map(|p| {
            let h = state.host(&p.host).context("a host of vs1")?;
            Ok((h.clone(), p.port))
        })
        .collect()
}

/// Warm-up: permanent neighbours, pings until the controller learned a rule per pair.
fn warm_up(core: &CoreHandle, hosts: &[(lime_lab::HostIface, u32)]) -> anyhow::Result<()> {
    for (h, _) in hosts {
        for (g, _) in hosts.iter().filter(|(g, _)| g.host != h.host) {
            lime_lab::netns::ip(&[
                "-n",
                &h.netns,
                "neigh",
                "replace",
                &g.ip.addr.to_string(),
                "lladdr",
                &g.mac.to_string(),
                "dev",
                &h.ifname,
                "nud",
                "permanent",
            ])?;
        }
    }
    let pairs = hosts.len() * (hosts.len() - 1);
    for _round in 0..5 {
        let have = learned(&core.dump_flows(VSWITCH).map_err(anyhow::Error::msg)?);
        let missing: Vec<_> = hosts
            .iter()
            .flat_map(|a| hosts.iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.0.host != b.0.host && !have.contains_key(&(a.1, b.0.mac.octets())))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for ((a, _), (b, _)) in missing {
            let _ = lime_lab::netns::command_in(
                &a.netns,
                &["ping", "-c", "1", "-W", "1", &b.ip.addr.to_string()],
            )
            .output();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let have = learned(&core.dump_flows(VSWITCH).map_err(anyhow::Error::msg)?);
    anyhow::bail!(
        "the learning switch learned {} of {pairs} rules during the warm-up",
        have.len()
    )
}

/// One lab, one controller, one migration under traffic.
fn run_one(args: &DemoArgs, strategy: Strategy, say: &dyn Fn(&str)) -> anyhow::Result<Outcome> {
    let name = strategy_name(strategy);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let port = free_port()?;
    let t0 = Instant::now();
    let osken = OsKen::start(&OsKenOptions::learning_switch(
        port,
        &args.out.join(format!("osken-{name}.log")),
    ))?;
    let mut topo = Topology::default_demo();
    topo.name.clone_from(&args.lab);
    topo.vswitches[0].controllers = vec![format!("tcp:127.0.0.1:{port}")];
    let mut fabric = Fabric::up(&topo, &crate::default_pin_root())?;
    // vs1 runs where its hosts are (s1, s2), not yet on the target: the migration
    // clones it there.
    fabric.drop_unused_copies(VSWITCH)?;
    let agent = Agent::start(fabric, &AgentOptions::default())?;
    let core = agent.handle();
    let state = agent.lab_state().clone();
    wait_for("the controller's table-miss entry", 20, || {
        Ok(!core
            .dump_flows(VSWITCH)
            .map_err(anyhow::Error::msg)?
            .is_empty())
    })
    .with_context(|| osken.log_text())?;
    say(&format!(
        "   lab {:?} up ({} physical switches, {} hosts), os-ken learning switch connected to {VSWITCH} ({:.1} s)",
        topo.name,
        topo.switches.len(),
        topo.hosts.len(),
        t0.elapsed().as_secs_f64()
    ));
    let hosts = hosts_and_ports(&state)?;
    warm_up(&core, &hosts)?;
    let before = learned(&core.dump_flows(VSWITCH).map_err(anyhow::Error::msg)?);
    say(&format!(
        "   the controller learned {} rules (in_port, eth_dst -> output) from the warm-up pings",
        before.len()
    ));

    // Traffic: every ordered pair.
    let mut pairs = Vec::new();
    for a in &hosts {
        for b in &hosts {
            if a.0.host != b.0.host {
                pairs.push((a.clone(), b.clone()));
            }
        }
    }
    let specs: Vec<FlowSpec> = pairs
        .iter()
        .zip(BASE_PORT..)
        .map(|((a, b), port)| FlowSpec {
            from_netns: a.0.netns.clone(),
            to_netns: b.0.netns.clone(),
            to_ip: b.0.ip.addr,
            port,
            rate: args.rate,
            payload: args.payload.max(8),
        })
        .collect();
    let netns: Vec<String> = hosts.iter().map(|(h, _)| h.netns.clone()).collect();
    let overflows_before = seqflow::rcvbuf_errors(&netns);
    let drops_before = drops(&core)?;
    let arps = netns
        .iter()
        .map(|ns| ArpCounter::start(ns))
        .collect::<Result<Vec<_>, _>>()?;
    let flows = Flows::start(&specs, Clock::start(BIN), Duration::from_millis(300))?;
    let clock = flows.clock();
    say(&format!(
        "   traffic: {} flows of {} datagrams/s ({} bytes), {:.1} s; migrating {VSWITCH} to {} with {name} after {:.1} s",
        specs.len(),
        args.rate,
        args.payload.max(8),
        args.seconds,
        args.to,
        args.seconds / 3.0
    ));
    let total = Duration::from_secs_f64(args.seconds);
    let lead = total / 3;
    let mut migration: Option<std::thread::JoinHandle<Result<Vec<Report>, String>>> = None;
    let mut reports = None;
    let (mut event_log, mut link_log) = (Vec::new(), Vec::new());
    let (progress_tx, progress) = std::sync::mpsc::channel::<(u64, Progress)>();
    let mut last_rx = 0;
    let mut last_t = Instant::now();
    let watch = LinkWatch::start(&hosts, clock);
    let started = Instant::now();
    while started.elapsed() < total || reports.is_none() {
        std::thread::sleep(Duration::from_millis(100));
        for (t, host, ifindex) in watch.events.try_iter() {
            link_log.push((t, host.clone(), ifindex));
            say(&format!(
                "   t={:.2} s  {host}: {}",
                t as f64 / 1e9,
                if ifindex == 0 {
                    "its link is gone (re-attach begins)".to_owned()
                } else {
                    format!("has a link again (ifindex {ifindex})")
                }
            ));
        }
        if migration.is_none() && reports.is_none() && started.elapsed() >= lead {
            let (h, to, tx) = (core.clone(), args.to.clone(), progress_tx.clone());
            let mig_start = clock.now_ns();
            say(&format!(
                "   t={:.2} s  migration of {VSWITCH} to {to} ({name}) starts",
                mig_start as f64 / 1e9
            ));
            migration = Some(std::thread::spawn(move || {
                h.migrate_with_progress(VSWITCH, &to, strategy, |ev| {
                    let _ = tx.send((clock.now_ns(), ev));
                })
            }));
        }
        // The engine's steps, as they happen.
        for (t, ev) in progress.try_iter() {
            let at = format!("   t={:.2} s ", t as f64 / 1e9);
            event_log.push((t, ev.clone()));
            match ev {
                Progress::Phase {
                    from, to, phase, ..
                } => say(&format!(
                    "{at} {} {from} -> {to} starts",
                    format!("{phase:?}").to_lowercase()
                )),
                Progress::HostMoved {
                    host, downtime_ms, ..
                } => say(&format!(
                    "{at} {host} re-attached ({downtime_ms:.0} ms without a link)"
                )),
                Progress::Done { .. } => {}
            }
        }
        if migration
            .as_ref()
            .is_some_and(std::thread::JoinHandle::is_finished)
            && let Some(m) = migration.take()
        {
            let r = m
                .join()
                .map_err(|_| anyhow::anyhow!("the migration thread panicked"))?
                .map_err(anyhow::Error::msg)?;
            say(&format!(
                "   t={:.2} s  migration done; its phases:",
                clock.now_ns() as f64 / 1e9
            ));
            event_log.extend(progress.try_iter());
            for p in Windows::from_events(&event_log, &link_log).phases {
                say(&format!(
                    "   t={:.2} s  {:<6} {} -> {}  {:>8.1} ms",
                    p.start_ms / 1e3,
                    format!("{:?}", p.phase).to_lowercase(),
                    p.from,
                    p.to,
                    p.ms
                ));
            }
            reports = Some(r);
        }
        if last_t.elapsed() >= Duration::from_millis(500) {
            let rx = flows.received_so_far();
            say(&format!(
                "   t={:.2} s  received {:>6.0} datagrams/s",
                clock.now_ns() as f64 / 1e9,
                (rx - last_rx) as f64 / last_t.elapsed().as_secs_f64()
            ));
            last_rx = rx;
            last_t = Instant::now();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let watch_events = watch.stop();
    let logs = flows.stop();
    let arp: Vec<seqflow::ArpCounts> = arps.into_iter().map(ArpCounter::stop).collect();
    let receiver_overflows = seqflow::rcvbuf_errors(&netns).saturating_sub(overflows_before);
    let after = learned(&core.dump_flows(VSWITCH).map_err(anyhow::Error::msg)?);
    let datapath_drops = increase(&drops_before, drops(&core)?);
    let sender_link_drops = hosts
        .iter()
        .map(|(h, _)| (h.host.clone(), tx_dropped(&h.netns, &h.ifname)))
        .collect();
    if std::env::var_os("LIME_DEMO_DEBUG").is_some() {
        for ns in state.namespaces.iter() {
            if let Ok(o) = lime_lab::netns::ip(&["-n", ns, "-s", "link"]) {
                eprintln!("== {ns}\n{o}");
            }
        }
    }
    let reports = reports.unwrap_or_default();
    link_log.extend(watch_events);
    let windows = Windows::from_events(&event_log, &link_log);

    let mut per_flow = Vec::new();
    for (((a, b), (tx, rx)), _) in pairs.iter().zip(&logs).zip(&specs) {
        let (mut by_mig, mut src_re, mut dst_re, mut frozen) = (0, 0, 0, 0);
        // Lost while B was being re-attached, whatever else explains the loss: A's
        // copy may have classified (counted) it. When B's window follows A's (or
        // A's follows B's) closely, a datagram can fall in both with the slack; it is
        // put down to A's re-attach below, and may still have been counted.
        let mut in_dst_window = 0;
        for (_seq, t) in rx.lost(tx) {
            if windows.reattaching(&b.0.host, t) {
                in_dst_window += 1;
            }
            if windows.reattaching(&a.0.host, t) {
                src_re += 1;
            } else if strategy == Strategy::Move && windows.frozen(&a.0.host, t) {
                frozen += 1;
            } else if windows.reattaching(&b.0.host, t) {
                dst_re += 1;
            } else {
                by_mig += 1;
                if std::env::var_os("LIME_DEMO_DEBUG").is_some() {
                    eprintln!(
                        "lost by the migration: {}->{} seq {} sent at {:.4} s; windows {:?}",
                        a.0.host,
                        b.0.host,
                        _seq,
                        t as f64 / 1e9,
                        windows.hosts
                    );
                }
            }
        }
        if std::env::var_os("LIME_DEMO_DEBUG").is_some() && !rx.reordered_seqs.is_empty() {
            let times: Vec<String> = rx
                .reordered_seqs
                .iter()
                .filter_map(|s| tx.sends.get(usize::try_from(*s).ok()?).copied().flatten())
                .map(|t| format!("{:.4}", t as f64 / 1e9))
                .collect();
            eprintln!(
                "reordered {}->{}: sent at {times:?}; re-attach windows {:?}",
                a.0.host, b.0.host, windows.hosts
            );
        }
        let key = (a.1, b.0.mac.octets());
        let rule_packets = after
            .get(&key)
            .copied()
            .unwrap_or(0)
            .wrapping_sub(before.get(&key).copied().unwrap_or(0));
        let index = |name: &str| hosts.iter().position(|h| h.0.host == name).unwrap_or(0);
        let arp_frames = arp
            .get(index(&b.0.host))
            .and_then(|c| c.received.get(&a.0.mac.octets()))
            .copied()
            .unwrap_or(0);
        let arp_lost = arp
            .get(index(&a.0.host))
            .and_then(|c| c.sent.get(&b.0.mac.octets()))
            .copied()
            .unwrap_or(0)
            .saturating_sub(arp_frames);
        let delivered = rx.received + arp_frames;
        let most = delivered + in_dst_window + by_mig + arp_lost;
        if std::env::var_os("LIME_DEMO_DEBUG").is_some()
            && !(delivered..=most).contains(&rule_packets)
        {
            let lost: Vec<String> = rx
                .lost(tx)
                .map(|(s, t)| format!("{s}@{:.4}", t as f64 / 1e9))
                .collect();
            eprintln!(
                "counter mismatch {}->{}: rule {rule_packets}, allowed {delivered}..={most}; lost {lost:?}; windows {:?}",
                a.0.host, b.0.host, windows.hosts
            );
        }
        // Of the losses no re-attach or freeze explains, those the rule counted were
        // lost by LIME after classification; the rest never reached it (the sending
        // host's own link dropped them). Losses while B was being re-attached are
        // taken as classified (A's copy saw them; B had no port).
        let classified_lost = rule_packets.saturating_sub(delivered);
        let lost_by_migration = by_mig.min(classified_lost.saturating_sub(in_dst_window));
        per_flow.push(FlowOutcome {
            src: a.0.host.clone(),
            dst: b.0.host.clone(),
            sent: tx.sent,
            send_failures: tx.failed,
            received: rx.received,
            lost: tx.sent.saturating_sub(rx.received),
            lost_by_migration,
            lost_before_lime: by_mig - lost_by_migration,
            lost_in_src_reattach: src_re,
            lost_in_dst_reattach: dst_re,
            lost_while_frozen: frozen,
            duplicated: rx.duplicated,
            reordered: rx.reordered,
            rule_packets,
            arp_frames,
            arp_lost,
            expected_min: delivered,
            expected_max: most,
            counters_match: after.contains_key(&key) && (delivered..=most).contains(&rule_packets),
        });
    }

    // The plot: datagrams per second, sent and received, over every flow.
    let bins = logs
        .iter()
        .map(|(tx, rx)| tx.bins.len().max(rx.bins.len()))
        .max()
        .unwrap_or(0);
    let rate_of = |pick: &dyn Fn(usize) -> u64| -> Vec<(f64, f64)> {
        (0..bins)
            .map(|i| {
                (
                    (i as f64 + 0.5) * clock.bin_secs(),
                    pick(i) as f64 / clock.bin_secs(),
                )
            })
            .collect()
    };
    let sent_line = rate_of(&|i| {
        logs.iter()
            .map(|(tx, _)| tx.bins.get(i).copied().unwrap_or(0))
            .sum()
    });
    let recv_line = rate_of(&|i| {
        logs.iter()
            .map(|(_, rx)| rx.bins.get(i).copied().unwrap_or(0))
            .sum()
    });
    let bands: Vec<Band> = windows
        .phases
        .iter()
        .map(|p| Band {
            label: format!(
                "{} {}",
                format!("{:?}", p.phase).to_lowercase(),
                match p.phase {
                    Phase::Clone | Phase::Move => format!("{}→{}", p.from, p.to),
                    Phase::Freeze | Phase::Retire => p.from.clone(),
                }
            ),
            start: p.start_ms / 1e3,
            end: (p.start_ms + p.ms) / 1e3,
            colour: match p.phase {
                Phase::Freeze => "#ee6677",
                Phase::Clone => "#4477aa",
                Phase::Move => "#ccbb44",
                Phase::Retire => "#228833",
            },
        })
        .collect();
    // Bursts (datagrams a host queued while it resolved a neighbour) are drawn at
    // twice the offered rate.
    let offered = (args.rate * specs.len() as u64) as f64;
    let svg = plot::timeline_chart(
        &format!(
            "{VSWITCH} migrated to {} with {name}: datagrams per second, {} flows",
            args.to,
            specs.len()
        ),
        "datagrams/s",
        &[
            ("sent (all flows)".to_owned(), sent_line),
            ("received (all flows)".to_owned(), recv_line),
        ],
        &bands,
        Some(2.0 * offered),
    );
    let plot = plot::write_svg(&args.out, &format!("{name}.svg"), &svg)?;

    let sum = |f: &dyn Fn(&FlowOutcome) -> u64| per_flow.iter().map(f).sum::<u64>();
    let mut host_downtime_ms = BTreeMap::new();
    for r in &reports {
        for (h, ms) in &r.hosts {
            host_downtime_ms.insert(h.clone(), *ms);
        }
    }
    let outcome = Outcome {
        strategy,
        vswitch: VSWITCH,
        to: args.to.clone(),
        rules: reports.iter().map(|r| r.rules).max().unwrap_or(0),
        flows: per_flow.len(),
        seconds,
        sent: sum(&|f| f.sent),
        received: sum(&|f| f.received),
        lost: sum(&|f| f.lost),
        duplicated: sum(&|f| f.duplicated),
        reordered: sum(&|f| f.reordered),
        lost_by_migration: sum(&|f| f.lost_by_migration),
        lost_before_lime: sum(&|f| f.lost_before_lime),
        lost_in_host_reattach: sum(&|f| f.lost_in_src_reattach + f.lost_in_dst_reattach),
        lost_while_frozen: sum(&|f| f.lost_while_frozen),
        send_failures: sum(&|f| f.send_failures),
        sender_link_drops,
        frozen_drops: reports.iter().map(|r| r.frozen_drops).sum(),
        clone_ms: windows
            .phases
            .iter()
            .filter(|p| p.phase == Phase::Clone)
            .map(|p| p.ms)
            .sum(),
        total_ms: reports.iter().map(|r| r.total_ms).sum(),
        host_downtime_ms,
        receiver_overflows,
        datapath_drops,
        counters_match: per_flow.iter().all(|f| f.counters_match),
        phases: windows.phases,
        plot,
        per_flow,
    };
    drop(agent);
    drop(osken);
    Ok(outcome)
}

fn print_table(o: &Outcome) {
    println!();
    println!(
        "   {:<8} {:>6} {:>8} {:>5} {:>8} {:>9} {:>6} {:>7} {:>4} {:>5} {:>9} {:>13}  counters",
        "flow",
        "sent",
        "received",
        "lost",
        "by migr.",
        "re-attach",
        "link",
        "frozen",
        "dup",
        "reord",
        "rule pkts",
        "expected"
    );
    for f in &o.per_flow {
        println!(
            "   {:<8} {:>6} {:>8} {:>5} {:>8} {:>9} {:>6} {:>7} {:>4} {:>5} {:>9} {:>13}  {}",
            format!("{}→{}", f.src, f.dst),
            f.sent,
            f.received,
            f.lost,
            f.lost_by_migration,
            f.lost_in_src_reattach + f.lost_in_dst_reattach,
            f.lost_before_lime,
            f.lost_while_frozen,
            f.duplicated,
            f.reordered,
            f.rule_packets,
            if f.expected_min == f.expected_max {
                f.expected_min.to_string()
            } else {
                format!("{}..{}", f.expected_min, f.expected_max)
            },
            if f.counters_match { "ok" } else { "MISMATCH" }
        );
    }
    println!();
    let downtime: Vec<String> = o
        .host_downtime_ms
        .iter()
        .map(|(h, ms)| format!("{h} {ms:.0} ms"))
        .collect();
    println!(
        "   {}: {} rules, clone {:.1} ms, total {:.1} ms; hosts' own re-attach: {}",
        o.strategy_name(),
        o.rules,
        o.clone_ms,
        o.total_ms,
        downtime.join(", ")
    );
    println!(
        "   sent {}, received {}, lost {}: {} by the migration, {} during a host's own re-attach, {} by a sending host's own link before reaching LIME (its link's tx drops: {}), {} into a frozen copy (the datapath counted {} frozen drops); duplicated {}, reordered {}; {} sends refused (no link); receiver overflows {}",
        o.sent,
        o.received,
        o.lost,
        o.lost_by_migration,
        o.lost_in_host_reattach,
        o.lost_before_lime,
        o.sender_link_drops
            .iter()
            .map(|(h, n)| format!("{h} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        o.lost_while_frozen,
        o.frozen_drops,
        o.duplicated,
        o.reordered,
        o.send_failures,
        o.receiver_overflows
    );
    println!(
        "   datapath drops during the run: {}",
        if o.datapath_drops.is_empty() {
            "none".to_owned()
        } else {
            o.datapath_drops
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "   counters: {}; plot: {}",
        if o.counters_match {
            "every learned rule counted what crossed it"
        } else {
            "MISMATCH (see the table)"
        },
        o.plot.display()
    );
}

impl Outcome {
    fn strategy_name(&self) -> &'static str {
        strategy_name(self.strategy)
    }

    /// Whether this run is what LIME promises.
    fn ok(&self) -> bool {
        self.counters_match
            && (self.strategy == Strategy::Move
                || (self.lost_by_migration == 0 && self.duplicated == 0 && self.reordered == 0))
    }
}

fn parse_strategy(s: &str) -> anyhow::Result<Strategy> {
    match s {
        "clone" => Ok(Strategy::Clone),
        "move" => Ok(Strategy::Move),
        other => anyhow::bail!("unknown strategy {other:?} (clone or move)"),
    }
}

/// Run the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    anyhow::ensure!(
        args.seconds > 0.3 && args.seconds.is_finite(),
        "--seconds must be above 0.3"
    );
    let strategies = args
        .strategies
        .iter()
        .map(|s| parse_strategy(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let json = args.json;
    let say = move |s: &str| {
        if json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    };
    let t = Instant::now();
    let mut outcomes = Vec::new();
    for s in strategies {
        say(&format!(
            "== {}: migrating {VSWITCH} (h1..h4 on s1, s2) to {} while traffic flows",
            strategy_name(s),
            args.to
        ));
        let o = run_one(args, s, &say)?;
        if json {
            println!("{}", serde_json::to_string(&o)?);
        } else {
            print_table(&o);
            println!();
        }
        outcomes.push(o);
    }
    let all_ok = outcomes.iter().all(Outcome::ok);
    if !json {
        let line = |o: &Outcome| {
            format!(
                "{:<5} lost {:>5} (by the migration {}, re-attach {}, sender's link {}, frozen {})  dup {}  reord {}  clone {:.1} ms  total {:.1} ms  counters {}",
                o.strategy_name(),
                o.lost,
                o.lost_by_migration,
                o.lost_in_host_reattach,
                o.lost_before_lime,
                o.lost_while_frozen,
                o.duplicated,
                o.reordered,
                o.clone_ms,
                o.total_ms,
                if o.counters_match {
                    "match"
                } else {
                    "MISMATCH"
                }
            )
        };
        println!("== summary ({:.0} s)", t.elapsed().as_secs_f64());
        for o in &outcomes {
            println!("   {}", line(o));
        }
        println!(
            "{}",
            if all_ok {
                "PASS: clone lost nothing by the migration, duplicated and reordered nothing, and every counter matches"
            } else {
                "FAIL: see above"
            }
        );
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `lime bench openflow`: the OpenFlow switch measured from a controller's side, over
//! TCP on 127.0.0.1 (the controller is LIME's scripted client, in this process):
//!
//! - **flow-mod install rate**: a batch of N distinct flow-mods (IPv4 destination
//!   exact match → output) written back to back, then BARRIER_REQUEST; rules/s from the
//!   first byte sent to the BARRIER_REPLY (everything in the kernel, spec 6.2). Then
//!   the same N rules are modified (MODIFY_STRICT, new output port) and deleted
//!   (DELETE_STRICT), each back to back and measured the same way: the rows a
//!   removing/modifying batch's reclaim shows in. The table is emptied (one delete +
//!   barrier) between batches.
//! - **packet-in rate**: a host sends UDP datagrams as fast as it can to a rule whose
//!   action is CONTROLLER; packet-ins/s as the controller receives them (first to last
//!   message), with what was lost on the way (perf buffer full, outbox full).
//! - **flow stats**: after the add batch, one FLOW_STATS request for every entry: the
//!   time to the last part of its reply (every entry's counters read and encoded).
//! - **idle sweep**: N entries with an idle timeout (300 s) sit in the table, no
//!   traffic; the CPU the switch's threads spend per second keeping them (the core
//!   reads each one's counters to see whether it was hit: once per sweep before, now
//!   when its timeout could run out or a tenth of it later, see `ofswitch::core`).
//!
//! The lab has one physical switch (each flow-mod becomes one datapath rule).
use std::{
    net::Ipv4Addr,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use lime_lab::Topology;
use lime_openflow::{
    self as of, Instruction, Message, OxmField,
    consts::{FlowModCommand, OFP_NO_BUFFER, ethertype, group, port, table},
};
use lime_userspace::{
    fabric::Fabric,
    ofswitch::{Agent, AgentOptions, client::ScriptedController},
};
use serde::Serialize;

/// `lime bench openflow` arguments.
#[derive(Args)]
pub struct OpenflowArgs {
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Flow-mod batch sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 100_000])]
    batches: Vec<usize>,
    /// Packet-ins to generate in the datapath, and datagrams the host sends, for the
    /// packet-in measurements.
    #[arg(long, default_value_t = 300_000)]
    packets: usize,
    /// Rates the host sends them at (datagrams/s, comma-separated; 0 = as fast as it
    /// can).
    #[arg(long, value_delimiter = ',', default_values_t = [100_000u64, 150_000, 0])]
    pps: Vec<u64>,
    /// Only the flow-mod rows and the idle sweep (no packet-in measurements).
    #[arg(long)]
    flow_mods_only: bool,
    /// Entries with an idle timeout for the idle-sweep measurement (0 = skip it).
    #[arg(long, default_value_t = 20_000)]
    idle_entries: usize,
}

#[derive(Serialize, Default)]
struct Sample {
    bench: &'static str,
    /// Flow-mods in the batch, or packets sent.
    count: usize,
    /// Seconds from the first flow-mod to the barrier reply, or first to last packet-in.
    seconds: f64,
    /// Flow-mods per second, or packet-ins per second; for the idle sweep, CPU seconds
    /// per second.
    per_second: f64,
    /// Packet-ins received (packet-in bench).
    #[serde(skip_serializing_if = "Option::is_none")]
    received: Option<u64>,
    /// Packets the datapath's CONTROLLER rule matched (packet-in bench).
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<u64>,
    /// The rate the host sent at (packet-in bench; measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_per_second: Option<f64>,
    /// CPU seconds LIME's switch threads (core and OpenFlow connections) spent on the
    /// batch, user and kernel (flow-mod bench): unlike `seconds`, barely moved by
    /// other work on a busy machine, so before/after comparisons can use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_seconds: Option<f64>,
    /// Of those, the part spent in the kernel (system calls, page faults; flow-mod
    /// bench, from `/proc/self/task/*/stat`, in clock ticks).
    #[serde(skip_serializing_if = "Option::is_none")]
    sys_seconds: Option<f64>,
    /// Minor page faults the switch threads took during the batch (fresh memory
    /// touched for the first time; flow-mod bench).
    #[serde(skip_serializing_if = "Option::is_none")]
    minor_faults: Option<u64>,
}

/// Keep `n` idle-timeout entries (no traffic) for a few seconds: the switch threads'
/// CPU seconds per second meanwhile.
fn idle_sweep(c: &mut ScriptedController, n: usize) -> anyhow::Result<Sample> {
    const IDLE: u16 = 300;
    const WATCH: Duration = Duration::from_secs(4);
    let mods: Vec<Message> = (0..n)
        .map(|i| {
            let mut m = flow_mod(FlowModCommand::Add, to_dst(i), vec![output(2)]);
            if let Message::FlowMod(f) = &mut m {
                f.idle_timeout = IDLE;
            }
            m
        })
        .collect();
    c.send_many(&mods)?;
    c.barrier(T)?;
    // Let the first reads (all due at once) pass.
    std::thread::sleep(Duration::from_millis(1500));
    let cpu = threads_cpu(&SWITCH_THREADS);
    let start = Instant::now();
    std::thread::sleep(WATCH);
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = (threads_cpu(&SWITCH_THREADS) - cpu).as_secs_f64();
    c.send(&flow_mod(FlowModCommand::Delete, vec![], vec![]))?;
    c.barrier(T)?;
    Ok(Sample {
        bench: "idle-sweep",
        count: n,
        seconds,
        per_second: cpu_seconds / seconds,
        received: None,
        matched: None,
        sent_per_second: None,
        cpu_seconds: Some(cpu_seconds),
        sys_seconds: None,
        minor_faults: None,
    })
}

/// CPU time so far of this process's threads whose name starts with one of `prefixes`
/// (`/proc/self/task/*/schedstat`: nanoseconds on a CPU).
fn threads_cpu(prefixes: &[&str]) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| prefixes.iter().any(|p| c.starts_with(p)))
        })
        .filter_map(|t| {
            let st = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            st.split_whitespace().next()?.parse::<u64>().ok()
        })
        .map(Duration::from_nanos)
        .sum()
}

/// System time (seconds) and minor page faults so far of this process's threads whose
/// name starts with one of `prefixes` (`/proc/self/task/*/stat`).
fn threads_sys_faults(prefixes: &[&str]) -> (f64, u64) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0);
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut sys = 0.0;
    let mut faults = 0;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses and may hold spaces: fields count after it.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n);
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(3) ... minflt is field 10, stime field 15 (1-based).
        faults += f.get(7).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        sys += f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / ticks;
    }
    (sys, faults)
}

/// The switch's own threads (see `ofswitch`: the core and the tokio workers).
const SWITCH_THREADS: [&str; 2] = ["lime-core", "lime-of"];

const T: Duration = Duration::from_secs(120);

fn flow_mod(command: FlowModCommand, fields: Vec<OxmField>, actions: Vec<of::Action>) -> Message {
    Message::FlowMod(of::FlowMod {
        cookie: 0,
        cookie_mask: 0,
        table_id: if command == FlowModCommand::Delete {
            table::ALL
        } else {
            0
        },
        command,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 100,
        buffer_id: OFP_NO_BUFFER,
        out_port: port::ANY,
        out_group: group::ANY,
        flags: 0,
        r#match: of::Match::new(fields),
        instructions: vec![Instruction::ApplyActions(actions)],
    })
}

fn to_dst(i: usize) -> Vec<OxmField> {
    let n = u32::try_from(i).unwrap_or(u32::MAX);
    vec![
        OxmField::EthType(of::Masked::exact(ethertype::IPV4)),
        OxmField::Ipv4Dst(of::Masked::exact(Ipv4Addr::from(0x0a80_0000 | n))),
    ]
}

fn topology() -> anyhow::Result<Topology> {
    Ok(Topology::from_toml_str(
        r#"
name = "bof"
[[switch]]
name = "s1"
[[host]]
name = "h1"
switch = "s1"
[[host]]
name = "h2"
switch = "s1"
[[vswitch]]
name = "vs1"
tenant = "t1"
controllers = ["tcp:127.0.0.1:1"]
ports = [ { port = 1, host = "h1" }, { port = 2, host = "h2" } ]
"#,
    )?)
}

fn print(s: &Sample, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
    } else if s.bench.starts_with("flow-mod") {
        let op = match s.bench {
            "flow-mod-modify" => "modify",
            "flow-mod-delete" => "delete",
            _ => "add",
        };
        println!(
            "flow-mod {op:<6} batch {:>7}: {:>8.3} s to BARRIER_REPLY, {:>10.0} flow-mods/s ({:.3} CPU s in the switch: {:.0} flow-mods per CPU second; {:.2} s of it in the kernel, {} minor faults)",
            s.count,
            s.seconds,
            s.per_second,
            s.cpu_seconds.unwrap_or(0.0),
            s.count as f64 / s.cpu_seconds.unwrap_or(f64::NAN),
            s.sys_seconds.unwrap_or(0.0),
            s.minor_faults.unwrap_or(0)
        );
    } else if s.bench == "flow-stats" {
        println!(
            "flow-stats       {:>7} entries: {:>8.3} s to the reply's last part, {:>10.0} entries/s ({:.3} CPU s in the switch)",
            s.count,
            s.seconds,
            s.per_second,
            s.cpu_seconds.unwrap_or(0.0)
        );
    } else if s.bench == "idle-sweep" {
        println!(
            "idle sweep {:>7} entries with idle timeouts, no traffic: {:.3} CPU s per s in the switch",
            s.count, s.per_second
        );
    } else if s.bench == "packet-in-generated" {
        println!(
            "packet-in  generated in the datapath {:>8}: received {:>8} in {:.3} s, {:>10.0} packet-ins/s",
            s.count,
            s.received.unwrap_or(0),
            s.seconds,
            s.per_second
        );
    } else {
        println!(
            "packet-in  sent {:>8} at {:>8.0}/s, rule matched {:>8}: received {:>8} in {:.3} s, {:>10.0} packet-ins/s",
            s.count,
            s.sent_per_second.unwrap_or(0.0),
            s.matched.unwrap_or(0),
            s.received.unwrap_or(0),
            s.seconds,
            s.per_second
        );
    }
    Ok(())
}

/// Add N rules, modify them, delete them: one sample each, printed as it is measured.
fn flow_mods(c: &mut ScriptedController, n: usize, json: bool) -> anyhow::Result<()> {
    for (bench, command, port) in [
        ("flow-mod", FlowModCommand::Add, 2),
        ("flow-mod-modify", FlowModCommand::ModifyStrict, 1),
        ("flow-mod-delete", FlowModCommand::DeleteStrict, 1),
    ] {
        let mods: Vec<Message> = (0..n)
            .map(|i| flow_mod(command, to_dst(i), vec![output(port)]))
            .collect();
        print(&flow_mod_batch(c, bench, &mods)?, json)?;
        if command == FlowModCommand::Add {
            print(&flow_stats(c, n)?, json)?;
        }
    }
    // Empty the table for the next batch.
    c.send(&flow_mod(FlowModCommand::Delete, vec![], vec![]))?;
    c.barrier(T)?;
    Ok(())
}

/// One FLOW_STATS request for every entry (the table holds `n`): the time to the last
/// part of its reply, which carries every entry's counters.
fn flow_stats(c: &mut ScriptedController, n: usize) -> anyhow::Result<Sample> {
    let req = Message::MultipartRequest(of::MultipartRequest::new(of::MultipartRequestBody::Flow(
        of::multipart::flow::FlowStatsRequest::default(),
    )));
    let cpu = threads_cpu(&SWITCH_THREADS);
    let start = Instant::now();
    let parts = c.request(&req, T)?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = (threads_cpu(&SWITCH_THREADS) - cpu).as_secs_f64();
    let entries: usize = parts
        .iter()
        .map(|m| match m {
            Message::MultipartReply(r) => match &r.body {
                of::MultipartReplyBody::Flow(f) => f.len(),
                _ => 0,
            },
            _ => 0,
        })
        .sum();
    if entries != n {
        bail!("the flow-stats reply carried {entries} entries, the table holds {n}");
    }
    Ok(Sample {
        bench: "flow-stats",
        count: n,
        seconds,
        per_second: n as f64 / seconds,
        cpu_seconds: Some(cpu_seconds),
        ..Sample::default()
    })
}

/// Send `mods` back to back, then a barrier: the time to its reply.
fn flow_mod_batch(
    c: &mut ScriptedController,
    bench: &'static str,
    mods: &[Message],
) -> anyhow::Result<Sample> {
    let n = mods.len();
    let cpu = threads_cpu(&SWITCH_THREADS);
    let (sys, faults) = threads_sys_faults(&SWITCH_THREADS);
    let start = Instant::now();
    c.send_many(mods)?;
    let got = c.barrier(T)?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = (threads_cpu(&SWITCH_THREADS) - cpu).as_secs_f64();
    let (sys_after, faults_after) = threads_sys_faults(&SWITCH_THREADS);
    let errors = got
        .iter()
        .filter(|(_, m)| matches!(m, Message::Error(_)))
        .count();
    if errors > 0 {
        bail!("{errors} flow-mods were refused: {:?}", got.first());
    }
    Ok(Sample {
        bench,
        count: n,
        seconds,
        per_second: n as f64 / seconds,
        received: None,
        matched: None,
        sent_per_second: None,
        cpu_seconds: Some(cpu_seconds),
        sys_seconds: Some(sys_after - sys),
        minor_faults: Some(faults_after.saturating_sub(faults)),
    })
}

const fn output(p: u32) -> of::Action {
    of::Action::Output {
        port: p,
        max_len: 0,
    }
}

/// Install the CONTROLLER rule and a static neighbour entry on h1 (no ARP needed).
fn packet_in_setup(c: &mut ScriptedController, lab: &lime_lab::LabState) -> anyhow::Result<()> {
    c.send(&flow_mod(
        FlowModCommand::Add,
        vec![
            OxmField::EthType(of::Masked::exact(ethertype::IPV4)),
            OxmField::IpProto(of::Masked::exact(17)),
        ],
        vec![of::Action::Output {
            port: port::CONTROLLER,
            max_len: 128,
        }],
    ))?;
    c.barrier(T)?;
    let h2 = lab.host("h2").context("h2")?;
    let ns = &lab.host("h1").context("h1")?.netns;
    let ok = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ip", "neigh", "replace"])
        .arg(h2.ip.addr.to_string())
        .args(["lladdr", &h2.mac.to_string(), "dev", lime_lab::HOST_IFNAME])
        .args(["nud", "permanent"])
        .status()
        .context("ip neigh")?
        .success();
    if !ok {
        bail!("ip neigh replace failed");
    }
    Ok(())
}

fn packet_ins(
    c: &mut ScriptedController,
    lab: &lime_lab::LabState,
    n: usize,
    pps: u64,
) -> anyhow::Result<Sample> {
    let h2 = lab.host("h2").context("h2")?.ip.addr;
    let ns = lab.host("h1").context("h1")?.netns.clone();
    let sender = std::thread::spawn(move || {
        lime_lab::run_in_netns(&ns, move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            let payload = [0u8; 18];
            let start = Instant::now();
            for i in 0..n {
                if pps > 0 && i % 8 == 0 {
                    // Pace: datagram i is due at i / pps seconds.
                    let due = Duration::from_secs_f64(i as f64 / pps as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let _ = s.send_to(&payload, (h2, 9));
            }
            start.elapsed()
        })
    });
    let mut received = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while let Some((_, m)) = c.recv(Duration::from_secs(2))? {
        if matches!(m, Message::PacketIn(_)) {
            received += 1;
            last = Instant::now();
            first.get_or_insert(last);
        }
    }
    let sent_for = sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
    Ok(Sample {
        bench: "packet-in",
        count: n,
        seconds,
        per_second: if seconds > 0.0 {
            received as f64 / seconds
        } else {
            0.0
        },
        received: Some(received),
        matched: None,
        sent_per_second: Some(n as f64 / sent_for.as_secs_f64()),
        cpu_seconds: None,
        sys_seconds: None,
        minor_faults: None,
    })
}

/// Packet-ins generated inside the switch: a frame run through the datapath
/// `chunk` times per BPF_PROG_TEST_RUN in live-frames mode (entering at virtual port 1, through the flow
/// tables, to the CONTROLLER rule), chunk after chunk, the next one once the controller
/// got all but the last. Measures the agent (perf buffer → core → TCP → controller), not
/// the lab's veths.
fn packet_ins_generated(
    c: &mut ScriptedController,
    agent: &Agent,
    n: usize,
    chunk: u32,
) -> anyhow::Result<Sample> {
    let lab = agent.lab_state();
    let (h1, h2) = (lab.host("h1").context("h1")?, lab.host("h2").context("h2")?);
    let frame = lime_userspace::packet::Packet::udp4(
        h1.mac.octets(),
        h2.mac.octets(),
        h1.ip.addr,
        h2.ip.addr,
        1234,
        9,
    )
    .to_bytes_min(60);
    let ns = lab.netns("s1")?;
    let mut received = 0u64;
    let mut generated = 0usize;
    let start = Instant::now();
    let mut last = start;
    while generated < n {
        let (frame, ns) = (frame.clone(), ns.clone());
        agent
            .handle()
            .with_fabric(move |f| -> Result<(), String> {
                let id = f.vswitch_id("vs1").map_err(|e| e.to_string())?;
                let dp = f.datapath("s1").ok_or("no s1")?;
                let pkt = lime_userspace::datapath::packet_io::packet_out_frame(
                    id,
                    1,
                    lime_common::action::port_no::TABLE,
                    &frame,
                );
                let k = dp.kernel();
                lime_lab::run_in_netns(&ns, || {
                    k.run_live_repeat(lime_common::names::PROG_XDP, &pkt, chunk)
                        .map(|_| ())
                })
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
                Ok(())
            })
            .map_err(anyhow::Error::msg)?
            .map_err(anyhow::Error::msg)?;
        generated += chunk as usize;
        // One chunk in flight while the next is generated; all of them at the end.
        let want = if generated < n {
            generated.saturating_sub(chunk as usize) as u64
        } else {
            generated as u64
        };
        while received < want {
            match c.recv(Duration::from_millis(500))? {
                Some((_, Message::PacketIn(_))) => {
                    received += 1;
                    last = Instant::now();
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    let seconds = (last - start).as_secs_f64();
    Ok(Sample {
        bench: "packet-in-generated",
        count: generated,
        seconds,
        per_second: received as f64 / seconds,
        received: Some(received),
        matched: None,
        sent_per_second: None,
        cpu_seconds: None,
        sys_seconds: None,
        minor_faults: None,
    })
}

/// Run the benchmark.
pub fn run(a: &OpenflowArgs) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    let (listener, port) = ScriptedController::listen()?;
    let mut topo = topology()?;
    topo.vswitches[0].controllers = vec![format!("tcp:127.0.0.1:{port}")];
    let fabric = Fabric::up(&topo, &crate::default_pin_root().join("bench"))?;
    let agent = Agent::start(fabric, &AgentOptions::default())?;
    let mut c = ScriptedController::accept(&listener, Duration::from_secs(10))?;
    c.request(&Message::FeaturesRequest, T)?;
    if !a.json {
        println!("OpenFlow switch, one physical switch, controller on 127.0.0.1:");
    }
    for &n in &a.batches {
        flow_mods(&mut c, n, a.json)?;
    }
    if a.idle_entries > 0 {
        print(&idle_sweep(&mut c, a.idle_entries)?, a.json)?;
    }
    if a.flow_mods_only {
        c.close();
        agent.shutdown()?.down()?;
        return Ok(ExitCode::SUCCESS);
    }
    let lab = agent.lab_state().clone();
    packet_in_setup(&mut c, &lab)?;
    let matched = || -> anyhow::Result<u64> {
        let flows = agent
            .handle()
            .dump_flows("vs1")
            .map_err(anyhow::Error::msg)?;
        Ok(flows
            .iter()
            .filter(|f| f.actions.starts_with("CONTROLLER"))
            .map(|f| f.n_packets)
            .sum())
    };
    print(
        &packet_ins_generated(&mut c, &agent, a.packets, 20_000)?,
        a.json,
    )?;
    for &pps in &a.pps {
        let before = matched()?;
        let mut s = packet_ins(&mut c, &lab, a.packets, pps)?;
        s.matched = Some(matched()? - before);
        print(&s, a.json)?;
    }
    c.close();
    agent.shutdown()?.down()?;
    Ok(ExitCode::SUCCESS)
}

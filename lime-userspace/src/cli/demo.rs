//! `lime demo`: the default lab, traffic between every pair of hosts, and a report of
//! what arrived against what the datapath counted.
use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, UdpSocket},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Args;
use lime_lab::Topology;
use lime_userspace::{
    fabric::{Fabric, l2_rules},
    flow::{Action, Instructions, Masked, Match, Rule, matching::ethertype, matching::ipproto},
};
use serde::Serialize;

/// Demo options.
#[derive(Args)]
pub struct DemoArgs {
    /// Datagrams per host pair.
    #[arg(long, default_value_t = 1000)]
    packets: u64,
    /// UDP payload bytes per datagram.
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Print one JSON object per flow and a summary object, instead of tables.
    #[arg(long)]
    json: bool,
}

const PORT: u16 = 9000;

#[derive(Serialize)]
struct FlowReport {
    src: String,
    dst: String,
    path: &'static str,
    sent: u64,
    received: u64,
    rule_packets: u64,
    rule_bytes: u64,
    expected_bytes: u64,
    counters_match: bool,
}

/// Run the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    let topo = Topology::default_demo();
    let say = |s: &str| {
        if !args.json {
            println!("{s}");
        }
    };
    say(&format!(
        "== LIME demo: lab {:?}: {} physical switches, {} hosts on virtual switch {:?}",
        topo.name,
        topo.switches.len(),
        topo.hosts.len(),
        topo.vswitches[0].name
    ));
    let t0 = Instant::now();
    let mut fabric = Fabric::up(&topo, &crate::default_pin_root())?;
    say(&format!(
        "   lab up, datapath loaded and attached on every port ({:.1} s)",
        t0.elapsed().as_secs_f64()
    ));
    let vs = topo.vswitches[0].name.clone();
    let state = fabric.lab().state().clone();
    let hosts: Vec<_> = state.hosts.clone();
    let l2 = l2_rules(&state, &vs);
    fabric.install(&vs, &l2)?;
    // One counting rule per ordered host pair.
    let mut pairs = Vec::new();
    let mut rules = Vec::new();
    for a in &hosts {
        for b in &hosts {
            if a.host == b.host {
                continue;
            }
            let (_, out) = fabric
                .vport_of(&b.host)
                .ok_or_else(|| anyhow::anyhow!("{} has no port", b.host))?;
            rules.push(Rule::new(
                0,
                100,
                Match {
                    eth_type: Some(ethertype::IPV4),
                    ip_proto: Some(ipproto::UDP),
                    ipv4_src: Some(Masked::exact(a.ip.addr)),
                    ipv4_dst: Some(Masked::exact(b.ip.addr)),
                    udp_dst: Some(PORT),
                    ..Match::default()
                },
                Instructions::apply(vec![Action::output(out)]),
            ));
            pairs.push((a.clone(), b.clone()));
        }
    }
    let installed = fabric.install(&vs, &rules)?;
    say(&format!(
        "   installed {} rules ({} L2 forwarding, {} per-flow counting) on every physical switch",
        l2.len() + rules.len(),
        l2.len(),
        rules.len()
    ));
    // Warm up ARP with one ping per pair.
    for (a, b) in &pairs {
        let ok = fabric
            .lab()
            .exec(
                &a.host,
                &["ping", "-c", "1", "-W", "1", &b.ip.addr.to_string()],
            )?
            .status
            .success();
        if !ok {
            anyhow::bail!("{} cannot ping {}", a.host, b.host);
        }
    }
    say(&format!(
        "   every host pings every other host ({} pairs)",
        pairs.len()
    ));
    // Receivers.
    let received: Arc<Mutex<BTreeMap<(Ipv4Addr, Ipv4Addr), u64>>> = Arc::default();
    let mut threads = Vec::new();
    for h in &hosts {
        let ip = h.ip.addr;
        let sock = fabric
            .lab()
            .run_in(&h.host, move || UdpSocket::bind((ip, PORT)))??;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        let received = Arc::clone(&received);
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((_, from)) = sock.recv_from(&mut buf) {
                if let std::net::SocketAddr::V4(from) = from {
                    *received
                        .lock()
                        .expect("lock")
                        .entry((*from.ip(), ip))
                        .or_default() += 1;
                }
            }
        }));
    }
    say(&format!(
        "   sending {} datagrams of {} bytes for each pair ...",
        args.packets, args.payload
    ));
    let t1 = Instant::now();
    for (a, b) in &pairs {
        let (dst, n, payload) = (b.ip.addr, args.packets, args.payload);
        fabric
            .lab()
            .run_in(&a.host, move || -> std::io::Result<()> {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                let buf = vec![0x5a; payload];
                for i in 0..n {
                    s.send_to(&buf, (dst, PORT))?;
                    if i % 64 == 63 {
                        std::thread::sleep(Duration::from_micros(300));
                    }
                }
                Ok(())
            })??;
    }
    let send_time = t1.elapsed();
    for t in threads {
        let _ = t.join();
    }
    let received = received.lock().expect("lock").clone();
    // Frames between veths are not padded to 60 bytes.
    let frame = (14 + 20 + 8 + args.payload) as u64;
    let mut reports = Vec::new();
    for ((a, b), rule) in pairs.iter().zip(&installed) {
        let st = fabric.rule_stats(rule)?;
        let got = received.get(&(a.ip.addr, b.ip.addr)).copied().unwrap_or(0);
        reports.push(FlowReport {
            src: a.host.clone(),
            dst: b.host.clone(),
            path: if a.switch == b.switch {
                "local"
            } else {
                "tunnel"
            },
            sent: args.packets,
            received: got,
            rule_packets: st.packets,
            rule_bytes: st.bytes,
            expected_bytes: args.packets * frame,
            counters_match: st.packets == args.packets && st.bytes == args.packets * frame,
        });
    }
    let all_ok = reports
        .iter()
        .all(|r| r.counters_match && r.received == r.sent);
    let mut drops = BTreeMap::new();
    for (sw, dp) in fabric.datapaths() {
        for (reason, n) in dp.kernel().drops()? {
            drops.insert(
                format!("{sw}:{}", lime_common::stats::drop_reason::name(reason)),
                n,
            );
        }
    }
    if args.json {
        for r in &reports {
            println!("{}", serde_json::to_string(r)?);
        }
        println!(
            "{}",
            serde_json::json!({"summary": true, "flows": reports.len(), "all_delivered_and_counted": all_ok,
                "send_seconds": send_time.as_secs_f64(), "drops": drops})
        );
    } else {
        println!();
        println!(
            "{:<4} {:<4} {:<7} {:>7} {:>9} {:>12} {:>11} {:>14}  ok",
            "src", "dst", "path", "sent", "received", "rule pkts", "rule bytes", "expected bytes"
        );
        for r in &reports {
            println!(
                "{:<4} {:<4} {:<7} {:>7} {:>9} {:>12} {:>11} {:>14}  {}",
                r.src,
                r.dst,
                r.path,
                r.sent,
                r.received,
                r.rule_packets,
                r.rule_bytes,
                r.expected_bytes,
                if r.counters_match && r.received == r.sent {
                    "yes"
                } else {
                    "NO"
                }
            );
        }
        println!();
        for (sw, dp) in fabric.datapaths() {
            for p in state.switch_ports(sw) {
                let ps = dp.port_stats(p.ifindex)?;
                println!(
                    "   {sw} port {:<5} rx {:>6} pkts {:>9} B   tx {:>6} pkts {:>9} B",
                    p.ifname, ps.rx_packets, ps.rx_bytes, ps.tx_packets, ps.tx_bytes
                );
            }
        }
        println!(
            "   datapath drops: {}",
            if drops.is_empty() {
                "none".to_string()
            } else {
                format!("{drops:?}")
            }
        );
        println!();
        println!(
            "{}: {} flows, {} datagrams sent in {:.2} s; every datagram {} and every rule counter {}",
            if all_ok { "PASS" } else { "FAIL" },
            reports.len(),
            reports.len() as u64 * args.packets,
            send_time.as_secs_f64(),
            if reports.iter().all(|r| r.received == r.sent) {
                "arrived"
            } else {
                "did NOT arrive"
            },
            if reports.iter().all(|r| r.counters_match) {
                "matches what was sent"
            } else {
                "does NOT match"
            },
        );
    }
    fabric.down()?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

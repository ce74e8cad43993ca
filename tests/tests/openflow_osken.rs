//! A real controller end to end: os-ken 3.1.1 (from PyPI, in the venv `cargo xtask
//! setup` makes) runs the repository's learning switch (`controller/
//! lime_learning_switch.py`) against a LIME virtual switch that spans two physical
//! switches. The hosts start with no rules; the controller learns from packet-ins and
//! installs flows; ping and a UDP stream work; the flow statistics the controller
//! requested, and those `lime dump-flows` shows, equal the traffic sent.
use std::{
    net::{Ipv4Addr, TcpListener, UdpSocket},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use lime_tests::{
    controlled_topology, fabric_pin_root, in_host, kernel_lock, ping, require_root, send_udp,
};
use lime_userspace::{
    fabric::Fabric,
    ofswitch::{
        Agent, AgentOptions, FlowDump,
        control::{self, Request},
    },
    osken::{OsKen, OsKenOptions},
};

/// Removes the scratch directory on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    seq: u64,
    packets: u64,
    bytes: u64,
}

/// The learned flow `in_port=in_port, eth_dst=dst` in the controller's latest stats
/// reply, once its sequence number is above `after`.
fn controller_stats(file: &Path, in_port: u64, dst: &str, after: u64) -> Counters {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let seq = doc["seq"].as_u64().unwrap_or(0);
            if seq > after
                && let Some(f) = doc["flows"].as_array().and_then(|fl| {
                    fl.iter().find(|f| {
                        f["match"]["in_port"].as_u64() == Some(in_port)
                            && f["match"]["eth_dst"].as_str() == Some(dst)
                    })
                })
            {
                return Counters {
                    seq,
                    packets: f["packet_count"].as_u64().unwrap_or(0),
                    bytes: f["byte_count"].as_u64().unwrap_or(0),
                };
            }
        }
        assert!(
            Instant::now() < deadline,
            "no fresh stats for in_port={in_port},eth_dst={dst} in {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_flows(agent: &Agent, what: &str, ok: impl Fn(&[FlowDump]) -> bool) -> Vec<FlowDump> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let flows = agent.handle().dump_flows("vs1").expect("dump");
        if ok(&flows) {
            return flows;
        }
        assert!(Instant::now() < deadline, "{what}: {flows:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn osken_learning_switch_end_to_end() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let dir = std::env::temp_dir().join(format!("lime-osken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let _scratch = Scratch(dir.clone());
    let stats = dir.join("stats.json");
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let osken = OsKen::start(
        &OsKenOptions::learning_switch(port, &dir.join("osken.log"))
            .env("LIME_STATS_FILE", &stats)
            .env("LIME_STATS_INTERVAL", "0.3"),
    )
    .expect("os-ken learning switch");

    let fabric =
        Fabric::up(&controlled_topology("tosk", port), &fabric_pin_root()).expect("fabric");
    let agent = Agent::start(fabric, &AgentOptions::default()).expect("agent");
    let sock = dir.join("control.sock");
    let listener = {
        let _rt = agent.runtime().enter();
        tokio::net::UnixListener::bind(&sock).expect("control socket")
    };
    agent
        .runtime()
        .spawn(control::serve(listener, agent.handle()));

    // The controller connects and installs its table-miss entry: nothing else.
    let flows = wait_flows(&agent, "the table-miss entry", |f| !f.is_empty());
    assert_eq!(flows.len(), 1, "{flows:#?}\n{}", osken.log_text());
    assert_eq!(
        (flows[0].priority, flows[0].actions.as_str()),
        (0, "CONTROLLER:65535")
    );

    let st = agent.lab_state().clone();
    let (h1, h3) = (
        st.host("h1").expect("h1").clone(),
        st.host("h3").expect("h3").clone(),
    );
    assert!(
        ping(&st, "h1", h3.ip.addr, 3),
        "ping h1 -> h3\n{}",
        osken.log_text()
    );
    let mac = |m: &lime_lab::MacAddr| m.to_string().to_lowercase();
    let (m1, m3) = (mac(&h1.mac), mac(&h3.mac));
    let to_h3 = format!("in_port=1,dl_dst={m3}");
    let to_h1 = format!("in_port=3,dl_dst={m1}");
    wait_flows(&agent, "learned flows", |f| {
        f.iter()
            .any(|x| x.r#match == to_h3 && x.actions == "output:3")
            && f.iter()
                .any(|x| x.r#match == to_h1 && x.actions == "output:1")
    });

    // A UDP stream h1 -> h3 over the learned flow.
    // A reply requested after the ping is over (two polls later).
    let settled = controller_stats(&stats, 1, &m3, 0);
    let before = controller_stats(&stats, 1, &m3, settled.seq + 1);
    let rx = in_host(&st, "h3", || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5001)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s
    });
    let (n, payload) = (200u64, 200usize);
    let receiver = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut got = 0u64;
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    for _ in 0..4 {
        send_udp(
            &st,
            "h1",
            h3.ip.addr,
            5001,
            usize::try_from(n / 4).expect("n"),
            payload,
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        receiver.join().expect("receiver"),
        n,
        "every datagram arrived"
    );
    std::thread::sleep(Duration::from_millis(200));
    let after = controller_stats(&stats, 1, &m3, before.seq + 1);
    let frame = 14 + 20 + 8 + payload as u64;
    assert_eq!(
        (after.packets - before.packets, after.bytes - before.bytes),
        (n, n * frame),
        "the controller's flow statistics count exactly the stream"
    );

    // `lime dump-flows` (through the control socket) shows the same counters.
    let resp = control::request(
        &sock,
        &Request::DumpFlows {
            vswitch: "vs1".into(),
        },
    )
    .expect("dump-flows");
    assert!(resp.ok, "{resp:?}");
    let flows = resp.flows.expect("flows");
    let f = flows
        .iter()
        .find(|f| f.r#match == to_h3)
        .expect("learned flow");
    assert_eq!((f.n_packets, f.n_bytes), (after.packets, after.bytes));
    let line = f.to_ofctl();
    assert!(
        line.contains(&format!(
            "n_packets={}, n_bytes={}",
            after.packets, after.bytes
        )) && line.ends_with(&format!("priority=10,{to_h3} actions=output:3")),
        "{line}"
    );
    drop(agent.shutdown().expect("shutdown"));
    drop(osken);
}

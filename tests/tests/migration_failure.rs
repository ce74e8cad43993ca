//! A migration whose target cannot take the virtual switch fails cleanly: the target
//! physical switch's rule table is full (another tenant's virtual switch fills it), so
//! the clone is refused; the virtual switch keeps running where it was, with every rule
//! and counter, and its controller sees nothing (no error, no PORT_STATUS, no
//! FLOW_REMOVED). A target that does not exist is refused the same way.
use std::{net::Ipv4Addr, time::Duration};

use lime_openflow::{
    Message, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
    multipart::flow::FlowStatsRequest,
};
use lime_tests::{
    fabric_pin_root, kernel_lock, of_add, of_l2, of_udp, ping, require_root, send_udp,
};
use lime_userspace::{
    fabric::Fabric,
    flow::{Action, Instructions, Masked, Match, Rule, matching},
    migration::Strategy,
    ofswitch::{Agent, AgentOptions, client::ScriptedController},
};

const T: Duration = Duration::from_secs(10);

fn topology(port: u16) -> lime_lab::Topology {
    let toml = format!(
        r#"{}
[[vswitch]]
name = "vs1"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{port}"]
ports = [ {{ port = 1, host = "h1" }}, {{ port = 3, host = "h3" }} ]
[[vswitch]]
name = "big"
tenant = "t2"
ports = [ {{ port = 1, host = "h9" }} ]
"#,
        lime_tests::three_switch_toml("tmfail", &[("h1", "s1"), ("h3", "s2"), ("h9", "s3")])
    );
    lime_lab::Topology::from_toml_str(&toml).expect("test topology")
}

/// Rule `i` of the other tenant: all in one subtable, none matching any test traffic.
fn filler(i: usize) -> Rule {
    let i = u32::try_from(i).expect("small");
    Rule::new(
        0,
        10,
        Match {
            eth_type: Some(matching::ethertype::IPV4),
            ip_proto: Some(matching::ipproto::UDP),
            ipv4_src: Some(Masked::exact(Ipv4Addr::from_bits(0xac10_0000 | (i >> 16)))),
            udp_dst: Some((i & 0xffff) as u16),
            ..Match::default()
        },
        Instructions::apply(vec![Action::output(1)]),
    )
}

/// Fill physical switch s3's rule table with the other tenant's rules: large batches
/// first, then smaller ones once a batch no longer fits (each is all or nothing).
fn fill(f: &mut Fabric) -> usize {
    let mut n = 0;
    let mut chunk = 16_384;
    while chunk > 0 {
        let rules: Vec<Rule> = (n..n + chunk).map(filler).collect();
        match f.install("big", &rules) {
            Ok(_) => n += chunk,
            Err(_) => chunk /= 4,
        }
    }
    n
}

fn flow_packets(c: &mut ScriptedController) -> Vec<(u64, u64)> {
    let req = Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Flow(
        FlowStatsRequest::default(),
    )));
    let mut v = Vec::new();
    for m in c.request(&req, T).expect("flow stats") {
        if let Message::MultipartReply(r) = m
            && let MultipartReplyBody::Flow(f) = r.body
        {
            v.extend(f.iter().map(|s| (s.cookie, s.packet_count)));
        }
    }
    v.sort_unstable();
    v
}

#[test]
fn a_migration_the_target_cannot_take_changes_nothing() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (listener, p) = ScriptedController::listen().expect("listen");
    let mut fabric = Fabric::up(&topology(p), &fabric_pin_root()).expect("fabric");
    // Each virtual switch starts with a copy on every physical switch; keep only those
    // where its hosts are: "big" on s3 alone (the one it fills), vs1 off s3.
    for vs in ["big", "vs1"] {
        fabric.drop_unused_copies(vs).expect("drop the idle copies");
    }
    let filled = fill(&mut fabric);
    assert!(filled > 1000, "s3 took {filled} rules before it was full");
    let agent = Agent::start(
        fabric,
        &AgentOptions {
            echo_interval: Duration::from_secs(1),
        },
    )
    .expect("agent");
    let mut c = ScriptedController::accept(&listener, T).expect("the switch connects");
    let st = agent.lab_state().clone();
    let h3_ip = st.host("h3").expect("h3").ip.addr;
    let mut mods = of_l2(&st, &[(1, "h1"), (3, "h3")]);
    mods.push(of_add(0x7400, 100, of_udp(7400), 3));
    for m in &mods {
        c.send(m).expect("flow-mod");
    }
    c.barrier(T).expect("barrier");
    assert!(ping(&st, "h1", h3_ip, 1), "h1 reaches h3 before");
    send_udp(&st, "h1", h3_ip, 7400, 500, 32);
    let before = flow_packets(&mut c);
    assert!(before.contains(&(0x7400, 500)), "{before:?}");

    // Table full at the target: refused, nothing moved.
    let err = agent
        .handle()
        .migrate("vs1", "s3", Strategy::Clone)
        .expect_err("s3 is full");
    assert!(
        err.to_lowercase().contains("full") || err.to_lowercase().contains("no room"),
        "the error says why: {err}"
    );
    // A target that does not exist: refused too.
    let err = agent
        .handle()
        .migrate("vs1", "s7", Strategy::Clone)
        .expect_err("no such switch");
    assert!(err.contains("s7"), "the error names it: {err}");

    let copies = agent
        .handle()
        .with_fabric(|f| f.copies("vs1").expect("copies"))
        .expect("core");
    assert_eq!(copies, ["s1", "s2"], "vs1 still runs where it was");
    let hosts: Vec<(String, String)> = agent
        .handle()
        .with_fabric(|f| {
            f.lab()
                .state()
                .hosts
                .iter()
                .map(|h| (h.host.clone(), h.switch.clone()))
                .collect()
        })
        .expect("core");
    assert!(
        hosts.contains(&("h1".into(), "s1".into())) && hosts.contains(&("h3".into(), "s2".into())),
        "no host moved: {hosts:?}"
    );
    assert_eq!(flow_packets(&mut c), before, "every rule and counter kept");
    assert!(ping(&st, "h1", h3_ip, 1), "h1 still reaches h3");
    send_udp(&st, "h1", h3_ip, 7400, 300, 32);
    assert!(
        flow_packets(&mut c).contains(&(0x7400, 800)),
        "and it keeps counting"
    );
    // Let the link check (every second) look at the ports: nothing to report.
    std::thread::sleep(Duration::from_millis(2500));
    let seen = c.barrier(T).expect("barrier");
    assert!(
        !seen.iter().any(|(_, m)| matches!(
            m,
            Message::PortStatus(_) | Message::FlowRemoved(_) | Message::Error(_)
        )),
        "the controller noticed nothing: {seen:?}"
    );
    drop(agent);
}

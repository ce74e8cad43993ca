//! A migration seen from the tenant's controller (a scripted one, on LIME's own codec):
//! the whole virtual switch moves to another physical switch; flow statistics carry
//! what the retired copies counted, packet-ins keep coming (from the new copy) with the
//! same virtual in_port, and no PORT_STATUS reports a moved port going down.
use std::time::Duration;

use lime_openflow::{self as of, Message, OxmField, consts::port};
use lime_tests::{
    fabric_pin_root, kernel_lock, of_add, of_l2, of_udp, ping, require_root, send_udp,
};
use lime_userspace::{
    fabric::Fabric,
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
"#,
        lime_tests::three_switch_toml("tofmig", &[("h1", "s1"), ("h3", "s2")])
    );
    lime_lab::Topology::from_toml_str(&toml).expect("test topology")
}

/// Packets counted by the entry with `cookie`, as the controller sees it.
fn packets_of(c: &mut ScriptedController, cookie: u64) -> u64 {
    lime_tests::of_packets_of(c, cookie, T)
}

#[test]
fn migration_is_invisible_to_the_controller() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let (listener, p) = ScriptedController::listen().expect("listen");
    let fabric = Fabric::up(&topology(p), &fabric_pin_root()).expect("fabric");
    let agent = Agent::start(
        fabric,
        &AgentOptions {
            echo_interval: Duration::from_secs(1),
        },
    )
    .expect("agent");
    let mut c = ScriptedController::accept(&listener, T).expect("the switch connects");
    let st = agent.lab_state().clone();
    let h3 = st.host("h3").expect("h3");
    let mut mods = of_l2(&st, &[(1, "h1"), (3, "h3")]);
    mods.push(of_add(0x7400, 100, of_udp(7400), 3));
    mods.push(of_add(0x7401, 100, of_udp(7401), port::CONTROLLER));
    for m in &mods {
        c.send(m).expect("flow-mod");
    }
    c.barrier(T).expect("barrier");
    let h3_ip = h3.ip.addr;
    assert!(ping(&st, "h1", h3_ip, 1), "h1 reaches h3 before");
    send_udp(&st, "h1", h3_ip, 7400, 500, 32);
    assert_eq!(packets_of(&mut c, 0x7400), 500, "counted before the move");

    // The whole virtual switch moves to s3: h1 from s1, then h3 from s2.
    let reports = agent
        .handle()
        .migrate("vs1", "s3", Strategy::Clone)
        .expect("migrate");
    let steps: Vec<(&str, &str)> = reports
        .iter()
        .map(|r| (r.from.as_str(), r.to.as_str()))
        .collect();
    assert_eq!(steps, [("s1", "s3"), ("s2", "s3")], "{reports:?}");
    let copies = agent
        .handle()
        .with_fabric(|f| f.copies("vs1").expect("copies"))
        .expect("core");
    assert_eq!(copies, ["s3"], "only the target's copy is left");
    assert_eq!(
        packets_of(&mut c, 0x7400),
        500,
        "the retired copy's counts are kept"
    );
    assert!(ping(&st, "h1", h3_ip, 1), "h1 reaches h3 from s3");
    send_udp(&st, "h1", h3_ip, 7400, 300, 32);
    assert_eq!(
        packets_of(&mut c, 0x7400),
        800,
        "one entry, summed over every copy, as one switch would count"
    );

    // Packet-ins now come from s3's copy, with the same virtual in_port.
    send_udp(&st, "h1", h3_ip, 7401, 3, 16);
    let got = c
        .recv_until(
            T,
            |_, m| matches!(m, Message::PacketIn(p) if p.cookie == 0x7401),
        )
        .expect("packet-in after the move");
    let Some((_, Message::PacketIn(pin))) = got.last() else {
        unreachable!()
    };
    assert!(
        pin.r#match
            .fields
            .contains(&OxmField::InPort(of::Masked::exact(1))),
        "in_port is still virtual port 1: {:?}",
        pin.r#match
    );
    // Give the link check (every second) time to look at the moved port.
    std::thread::sleep(Duration::from_millis(2500));
    let mut seen = got;
    seen.extend(c.barrier(T).expect("barrier"));
    assert!(
        !seen
            .iter()
            .any(|(_, m)| matches!(m, Message::PortStatus(_))),
        "no PORT_STATUS for a port whose host moved: {seen:?}"
    );
    drop(agent);
}

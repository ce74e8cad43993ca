//! A named ensemble (`[[ensemble]]` in the topology) through the real `lime` binary:
//! `lime status` lists it, `lime migrate <ensemble> --to <switch>` moves every one of
//! its virtual switches (with their hosts and the virtual link between them), traffic
//! across the link flows before and after, and a name that is neither an ensemble nor
//! a virtual switch is refused with nothing changed. Lab `tcens`.
use std::{net::TcpListener, time::Duration};

use lime_tests::{
    daemon::{Cleanup, Daemon, lime, status, text},
    kernel_lock, of_l2, ping, require_root, three_switch_toml,
};
use lime_userspace::ofswitch::client::ScriptedController;
use serde_json::Value;

const LAB: &str = "tcens";
const T: Duration = Duration::from_secs(15);

/// s1 — s2 — s3; vs1 (h1, h2 on s1) and vs2 (h3 on s2) joined by a virtual link on
/// port 5 of each; ensemble `web` = both; s3 empty (the target).
fn topology(c1: u16, c2: u16) -> String {
    format!(
        r#"{}
[[vswitch]]
name = "vs1"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{c1}"]
ports = [ {{ port = 1, host = "h1" }}, {{ port = 2, host = "h2" }} ]
[[vswitch]]
name = "vs2"
tenant = "t1"
controllers = ["tcp:127.0.0.1:{c2}"]
ports = [ {{ port = 3, host = "h3" }} ]
[[vlink]]
a = {{ vswitch = "vs1", port = 5 }}
b = {{ vswitch = "vs2", port = 5 }}
[[ensemble]]
name = "web"
vswitches = ["vs1", "vs2"]
"#,
        three_switch_toml(LAB, &[("h1", "s1"), ("h2", "s1"), ("h3", "s2")])
    )
}

/// Each virtual switch's copies and its ports' physical switches, by name.
fn placement(st: &Value) -> Vec<(String, Vec<String>, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    st["vswitches"]
        .as_array()
        .expect("vswitches")
        .iter()
        .map(|v| {
            let ports = v["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["switch"].as_str().unwrap_or("?").to_owned())
                .collect();
            (
                v["name"].as_str().unwrap_or("?").to_owned(),
                strings(&v["copies"]),
                ports,
            )
        })
        .collect()
}

/// A virtual switch's controller with its rules: forward by MAC and ARP target to
/// `hosts` (virtual port, host), across the link for the other side's hosts.
fn program(
    listener: &TcpListener,
    st: &lime_lab::LabState,
    hosts: &[(u32, &str)],
) -> ScriptedController {
    let mut c = ScriptedController::accept(listener, T).expect("the virtual switch connects");
    for m in &of_l2(st, hosts) {
        c.send(m).expect("flow-mod");
    }
    c.barrier(T).expect("barrier");
    c
}

#[test]
fn a_named_ensemble_migrates_as_one_through_the_cli() {
    if !require_root() {
        return;
    }
    let _g = kernel_lock();
    let c = Cleanup::new(LAB);
    let (l1, p1) = ScriptedController::listen().expect("listen");
    let (l2, p2) = ScriptedController::listen().expect("listen");
    let topo = c.file("topology.toml", &topology(p1, p2));
    let d = Daemon::start(&c, &topo, None, 1);
    let st = lime_lab::LabState::load(&lime_lab::LabState::default_dir(LAB)).expect("lab state");
    let _c1 = program(&l1, &st, &[(1, "h1"), (2, "h2"), (5, "h3")]);
    let _c2 = program(&l2, &st, &[(3, "h3"), (5, "h1"), (5, "h2")]);
    let h3 = st.host("h3").expect("h3").ip.addr;
    assert!(
        ping(&st, "h1", h3, 3),
        "h1 reaches h3 over the virtual link"
    );

    let before = status(LAB);
    assert_eq!(
        before["ensembles"],
        serde_json::json!([{"name": "web", "vswitches": ["vs1", "vs2"]}]),
        "{before}"
    );
    let human = lime(&["status", "--lab", LAB]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("ensemble web: vs1, vs2"),
        "{}",
        text(&human)
    );

    // A name that is neither: refused, nothing moves.
    let o = lime(&["migrate", "nosuch", "--to", "s3", "--lab", LAB]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nosuch"),
        "the error names it: {}",
        text(&o)
    );
    assert_eq!(placement(&status(LAB)), placement(&before), "nothing moved");

    let o = lime(&["migrate", "web", "--to", "s3", "--lab", LAB]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ensemble web: vs1, vs2"), "{out}");
    let after = placement(&status(LAB));
    // Each virtual switch's source copy is retired (a copy on a switch that had none
    // of its hosts stays, as for a single virtual switch's migration).
    for ((name, copies, ports), source) in after.iter().zip(["s1", "s2"]) {
        assert!(
            copies.iter().any(|s| s == "s3") && !copies.iter().any(|s| s == source),
            "{name} runs on s3, no longer on {source}: {after:?}"
        );
        assert!(
            ports.iter().all(|s| s == "s3"),
            "{name}'s hosts are on s3: {after:?}"
        );
    }
    assert!(ping(&st, "h1", h3, 3), "h1 still reaches h3 after the move");
    assert!(d.stop().success());
}

//! Namespace tests: real namespaces and veths, so they need root, `ip` and `ethtool`.
//! They skip loudly otherwise.
//!
//! They run one at a time (a process-wide mutex), use lab names unique to this process
//! (`t<pid><letter>`), only send traffic between their own namespaces, and check that no
//! namespace of theirs is left behind, even after a panic.

use std::net::{SocketAddr, UdpSocket};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lime_lab::netns::{self, IfAddr};
use lime_lab::{
    HostSpec, Lab, LabError, LabState, LinkSpec, PortKind, SwitchSpec, Topology, UNDERLAY_MTU,
    VPortSpec, VSwitchSpec, run_in_netns,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the serial lock; on drop (also when unwinding) removes every namespace of its
/// lab and checks none is left.
struct TestLab {
    name: String,
    _serial: MutexGuard<'static, ()>,
}

impl TestLab {
    /// `None` (after saying so) when this machine cannot run namespace tests.
    fn new(letter: char) -> Option<Self> {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            eprintln!("SKIPPED: namespace tests need root");
            return None;
        }
        if std::process::Command::new("ip").arg("-V").output().is_err() {
            eprintln!("SKIPPED: namespace tests need iproute2's `ip`");
            return None;
        }
        let serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Self {
            name: format!("t{}{letter}", std::process::id()),
            _serial: serial,
        })
    }

    fn prefix(&self) -> String {
        Topology::netns_prefix_of(&self.name)
    }

    fn leftovers(&self) -> Vec<String> {
        let prefix = self.prefix();
        netns::netns_list()
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// s1 — s2 underlay; h1 (with IPv6) on s1, h2 (with IPv6) on s1, h3 on s2; vs1 with
    /// all three.
    fn topology(&self) -> Topology {
        let mut h1 = HostSpec::with_defaults("h1", "s1", 0).unwrap();
        h1.ipv6 = Some("fd00::1/64".parse().unwrap());
        let mut h2 = HostSpec::with_defaults("h2", "s1", 1).unwrap();
        h2.ipv6 = Some("fd00::2/64".parse().unwrap());
        let h3 = HostSpec::with_defaults("h3", "s2", 2).unwrap();
        Topology {
            name: self.name.clone(),
            switches: vec![SwitchSpec::named("s1"), SwitchSpec::named("s2")],
            hosts: vec![h1, h2, h3],
            links: vec![LinkSpec {
                a: "s1".into(),
                b: "s2".into(),
            }],
            vswitches: vec![VSwitchSpec {
                name: "vs1".into(),
                tenant: "t1".into(),
                dpid: 1,
                controllers: vec![],
                fail_mode: lime_lab::FailMode::Secure,
                ports: (1..=3)
                    .map(|port| VPortSpec {
                        port,
                        host: format!("h{port}"),
                    })
                    .collect(),
            }],
            vlinks: Vec::new(),
            ensembles: Vec::new(),
            veth_queues: 1,
        }
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let left = self.leftovers();
        // Clean up whatever the test left, then complain (unless already panicking).
        let _ = Lab::down_by_name(&self.name);
        assert!(
            std::thread::panicking() || left.is_empty(),
            "namespaces left behind: {left:?}"
        );
    }
}

fn has_addr(addrs: &[IfAddr], cidr: &str) -> bool {
    let (addr, len) = cidr.split_once('/').unwrap();
    addrs
        .iter()
        .any(|a| a.addr.to_string() == addr && a.prefix_len.to_string() == len)
}

/// Bridge the host ports of switch `switch` with a Linux bridge (test-only stand-in for
/// the datapath), so hosts on it can talk.
fn bridge_switch(lab: &Lab, switch: &str) {
    let ns = lab.netns(switch).unwrap();
    netns::ip(&["-n", &ns, "link", "add", "br0", "type", "bridge"]).unwrap();
    netns::ip(&["-n", &ns, "link", "set", "br0", "up"]).unwrap();
    for port in lab
        .switch_ports(switch)
        .filter(|p| matches!(p.kind, PortKind::Host { .. }))
    {
        netns::ip(&["-n", &ns, "link", "set", &port.ifname, "master", "br0"]).unwrap();
    }
}

/// Send one UDP datagram from host `from` to `to_addr` (bound in host `to`); true if it
/// arrives within a second.
fn udp_reaches(
    lab: &Lab,
    from: &str,
    from_addr: SocketAddr,
    to: &str,
    to_addr: SocketAddr,
) -> bool {
    let rx = lab
        .run_in(to, || UdpSocket::bind(to_addr))
        .unwrap()
        .expect("bind receiver");
    rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let tx = lab
        .run_in(from, || UdpSocket::bind(from_addr))
        .unwrap()
        .expect("bind sender");
    tx.send_to(b"lime", to_addr).expect("send");
    let mut buf = [0u8; 16];
    match rx.recv_from(&mut buf) {
        Ok((n, src)) => n == 4 && &buf[..4] == b"lime" && src.ip() == from_addr.ip(),
        Err(_) => false,
    }
}

#[test]
fn up_builds_namespaces_interfaces_and_addresses() {
    let Some(t) = TestLab::new('a') else { return };
    let topology = t.topology();
    let lab = Lab::up(&topology).expect("lab up");

    let mut expected: Vec<String> = ["s1", "s2", "h1", "h2", "h3"]
        .iter()
        .map(|n| format!("{}{n}", t.prefix()))
        .collect();
    expected.sort();
    assert_eq!(t.leftovers(), expected);
    assert_eq!(lab.namespaces.len(), 5);

    for host in &topology.hosts {
        let ns = lab.netns(&host.name).unwrap();
        let eth0 = netns::link(&ns, "eth0").unwrap();
        assert_eq!(eth0.address, Some(host.mac), "{} MAC", host.name);
        assert!(eth0.is_up(), "{} eth0 up", host.name);
        assert_eq!(eth0.mtu, 1500);
        assert!(
            netns::link(&ns, "lo").unwrap().is_up(),
            "{} lo up",
            host.name
        );
        let addrs = netns::addresses(&ns, "eth0").unwrap();
        assert!(
            has_addr(&addrs, &host.ip.to_string()),
            "{}: {addrs:?}",
            host.name
        );
        match host.ipv6 {
            Some(v6) => assert!(
                has_addr(&addrs, &v6.to_string()),
                "{}: {addrs:?}",
                host.name
            ),
            None => assert!(
                addrs.iter().all(|a| a.addr.is_ipv4()),
                "{}: {addrs:?}",
                host.name
            ),
        }
        assert!(
            !addrs.iter().any(|a| a.addr.to_string().starts_with("fe80")),
            "{}: no link-local address expected: {addrs:?}",
            host.name
        );
        let features = lab.exec_ok(&host.name, &["ethtool", "-k", "eth0"]).unwrap();
        assert!(
            features.contains("tx-checksumming: off"),
            "{}: {features}",
            host.name
        );
        let iface = lab.host(&host.name).unwrap();
        assert_eq!(
            (iface.ifindex, iface.mac, iface.ip),
            (eth0.ifindex, host.mac, host.ip)
        );
        assert_eq!(iface.switch, host.switch);
    }

    // Switch ports: host ports named after hosts, underlay ports u-<peer> with MTU 1600.
    let s1: Vec<_> = lab
        .switch_ports("s1")
        .map(|p| (p.ifname.as_str(), p.kind.clone(), p.mtu))
        .collect();
    assert_eq!(
        s1,
        [
            ("h1", PortKind::Host { host: "h1".into() }, 1500),
            ("h2", PortKind::Host { host: "h2".into() }, 1500),
            (
                "u-s2",
                PortKind::Underlay { peer: "s2".into() },
                UNDERLAY_MTU
            ),
        ]
    );
    let u = lab.underlay_port("s2", "s1").expect("s2 has u-s1");
    assert_eq!((u.ifname.as_str(), u.mtu), ("u-s1", UNDERLAY_MTU));
    for port in &lab.ports {
        let info = netns::link(&port.netns, &port.ifname).unwrap();
        assert_eq!(port.ifindex, info.ifindex, "{port:?}");
        assert_eq!(
            lab.ifindex(&port.switch, &port.ifname).unwrap(),
            info.ifindex
        );
        assert_eq!(Some(port.mac), info.address);
        assert!(info.is_up(), "{port:?} is up");
    }
    // Nothing but lo and the ports in a switch namespace.
    let mut names: Vec<_> = lab
        .links("s1")
        .unwrap()
        .into_iter()
        .map(|l| l.ifname)
        .collect();
    names.sort();
    assert_eq!(names, ["h1", "h2", "lo", "u-s2"]);

    // Quiet namespaces.
    let sysctl = |node: &str, key: &str| {
        lab.exec_ok(
            node,
            &["cat", &format!("/proc/sys/{}", key.replace('.', "/"))],
        )
        .unwrap()
    };
    assert_eq!(sysctl("s1", "net.ipv6.conf.all.disable_ipv6").trim(), "1");
    assert_eq!(sysctl("h3", "net.ipv6.conf.eth0.disable_ipv6").trim(), "1");
    assert_eq!(
        sysctl("h1", "net.ipv6.conf.eth0.router_solicitations").trim(),
        "0"
    );

    // Errors carry what went wrong.
    assert!(matches!(
        lab.exec("nope", &["true"]),
        Err(LabError::UnknownNode { .. })
    ));
    assert!(matches!(
        lab.ifindex("s1", "nope"),
        Err(LabError::InterfaceNotFound { .. })
    ));
    match lab.exec_ok("h1", &["ip", "link", "show", "dev", "nope"]) {
        Err(LabError::Command {
            command, stderr, ..
        }) => {
            assert!(command.contains("ip link show dev nope"), "{command}");
            assert!(stderr.contains("nope"), "{stderr}");
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    let out = lab.exec("h1", &["false"]).unwrap();
    assert!(!out.status.success(), "exec returns failing outputs too");

    lab.down().expect("lab down");
    assert_eq!(t.leftovers(), Vec::<String>::new());
}

#[test]
fn hosts_talk_through_a_test_bridge_ipv4_and_ipv6() {
    let Some(t) = TestLab::new('b') else { return };
    let lab = Lab::up(&t.topology()).expect("lab up");
    bridge_switch(&lab, "s1");
    // IPv6 works at once: no DAD, no link-local address needed for neighbour discovery.
    assert!(udp_reaches(
        &lab,
        "h1",
        "10.0.0.1:0".parse().unwrap(),
        "h2",
        "10.0.0.2:5000".parse().unwrap()
    ));
    assert!(udp_reaches(
        &lab,
        "h2",
        "[fd00::2]:0".parse().unwrap(),
        "h1",
        "[fd00::1]:5000".parse().unwrap()
    ));
    // h3 is on s2: no datapath, no traffic.
    assert!(!udp_reaches(
        &lab,
        "h1",
        "10.0.0.1:0".parse().unwrap(),
        "h3",
        "10.0.0.3:5000".parse().unwrap()
    ));
}

#[test]
fn drop_after_panic_removes_everything() {
    let Some(t) = TestLab::new('c') else { return };
    let topology = t.topology();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _lab = Lab::up(&topology).expect("lab up");
        assert_eq!(t.leftovers().len(), 5);
        panic!("test panic with a lab up");
    }));
    assert!(result.is_err());
    assert_eq!(
        t.leftovers(),
        Vec::<String>::new(),
        "Drop removed the namespaces"
    );
}

#[test]
fn up_removes_stale_namespaces_and_down_by_name_only_its_own() {
    let Some(t) = TestLab::new('d') else { return };
    let stale = format!("{}stale", t.prefix());
    // A lab whose name extends ours: its namespaces must survive our down_by_name.
    let other = format!("lime-{}x-s1", t.name);
    netns::netns_add(&stale).unwrap();
    netns::netns_add(&other).unwrap();
    let other_guard = NetnsGuard(other.clone());

    let lab = Lab::up(&t.topology()).expect("lab up");
    assert!(
        !netns::netns_exists(&stale),
        "stale namespace removed by up"
    );
    let detached = lab.detach();
    assert_eq!(t.leftovers().len(), 5, "detached lab keeps running");

    let mut removed = Lab::down_by_name(&t.name).unwrap();
    removed.sort();
    let mut expected = detached.namespaces.clone();
    expected.sort();
    assert_eq!(removed, expected);
    assert!(
        netns::netns_exists(&other),
        "another lab's namespace is untouched"
    );
    drop(other_guard);
    assert!(!netns::netns_exists(&other));

    assert!(matches!(
        Lab::down_by_name("bad-name"),
        Err(LabError::Topology { .. })
    ));
    assert!(matches!(
        Lab::down_by_name(""),
        Err(LabError::Topology { .. })
    ));
}

/// Deletes a namespace created directly by a test.
struct NetnsGuard(String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if netns::netns_exists(&self.0) {
            let _ = netns::netns_del(&self.0);
        }
    }
}

#[test]
fn invalid_topology_creates_nothing() {
    let Some(t) = TestLab::new('e') else { return };
    let mut topology = t.topology();
    topology.hosts[1].switch = "s9".into();
    assert!(matches!(Lab::up(&topology), Err(LabError::Topology { .. })));
    assert_eq!(t.leftovers(), Vec::<String>::new());
}

#[test]
fn move_host_keeps_mac_and_addresses() {
    let Some(t) = TestLab::new('f') else { return };
    let mut lab = Lab::up(&t.topology()).expect("lab up");
    let before = lab.host("h1").unwrap().clone();
    let old_port = lab.host_port("h1").unwrap().clone();
    assert_eq!(old_port.switch, "s1");
    // What h1 knew of its neighbours moves with it (as a migrated VM's ARP cache).
    let h3_mac = lab.host("h3").unwrap().mac.to_string();
    lab.exec_ok(
        "h1",
        &[
            "ip",
            "neigh",
            "replace",
            "10.0.0.3",
            "lladdr",
            &h3_mac,
            "dev",
            "eth0",
            "nud",
            "reachable",
        ],
    )
    .unwrap();

    let port = lab.move_host("h1", "s2").expect("move h1 to s2");
    assert_eq!((port.switch.as_str(), port.ifname.as_str()), ("s2", "h1"));
    assert_eq!(port.kind, PortKind::Host { host: "h1".into() });
    assert_eq!(port.ifindex, lab.ifindex("s2", "h1").unwrap());
    assert!(netns::link(&port.netns, "h1").unwrap().is_up());
    assert!(
        matches!(
            lab.ifindex("s1", "h1"),
            Err(LabError::InterfaceNotFound { .. })
        ),
        "old port gone"
    );
    assert_eq!(lab.switch_ports("s1").count(), 2, "s1 keeps h2 and u-s2");
    assert_eq!(lab.switch_ports("s2").count(), 3, "s2 has h1, h3 and u-s1");
    assert_eq!(lab.topology.host("h1").unwrap().switch, "s2");

    let after = lab.host("h1").unwrap();
    assert_eq!(
        (after.mac, after.ip, after.ipv6),
        (before.mac, before.ip, before.ipv6)
    );
    assert_eq!(after.switch, "s2");
    let eth0 = netns::link(&after.netns, "eth0").unwrap();
    assert_eq!(eth0.address, Some(before.mac));
    assert_eq!(eth0.ifindex, after.ifindex);
    let addrs = netns::addresses(&after.netns, "eth0").unwrap();
    assert!(
        has_addr(&addrs, "10.0.0.1/24") && has_addr(&addrs, "fd00::1/64"),
        "{addrs:?}"
    );
    let features = lab.exec_ok("h1", &["ethtool", "-k", "eth0"]).unwrap();
    assert!(features.contains("tx-checksumming: off"));
    let neighbours = netns::learned_neighbours(&after.netns, "eth0").unwrap();
    assert!(
        neighbours.contains(&("10.0.0.3".to_owned(), h3_mac.clone())),
        "{neighbours:?}"
    );

    // Really attached to s2: reaches h3 through a bridge there.
    bridge_switch(&lab, "s2");
    assert!(udp_reaches(
        &lab,
        "h1",
        "10.0.0.1:0".parse().unwrap(),
        "h3",
        "10.0.0.3:5001".parse().unwrap()
    ));

    assert!(matches!(
        lab.move_host("h9", "s1"),
        Err(LabError::UnknownNode { .. })
    ));
    assert!(matches!(
        lab.move_host("h1", "h2"),
        Err(LabError::UnknownNode { .. })
    ));
    // Back again.
    let back = lab.move_host("h1", "s1").unwrap();
    assert_eq!(back.switch, "s1");
    lab.down().unwrap();
}

#[test]
fn run_in_netns_enters_the_namespace() {
    let Some(t) = TestLab::new('g') else { return };
    let lab = Lab::up(&t.topology()).expect("lab up");
    let port = lab.host_port("h2").unwrap().clone();
    let name = std::ffi::CString::new("h2").unwrap();
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index_in =
        |ns: &str| run_in_netns(ns, || unsafe { libc::if_nametoindex(name.as_ptr()) }).unwrap();
    assert_eq!(index_in(&port.netns), port.ifindex);
    assert_eq!(
        index_in(&lab.netns("h2").unwrap()),
        0,
        "no interface h2 inside host h2"
    );

    // A socket created inside keeps the namespace: 10.0.0.1 is only h1's.
    assert!(
        lab.run_in("h1", || UdpSocket::bind("10.0.0.1:0"))
            .unwrap()
            .is_ok()
    );
    assert!(
        lab.run_in("h3", || UdpSocket::bind("10.0.0.1:0"))
            .unwrap()
            .is_err()
    );

    // Borrowed data and results cross the thread.
    let hosts: Vec<String> = lab.hosts.iter().map(|h| h.host.clone()).collect();
    assert_eq!(lab.run_in("s1", || hosts.len()).unwrap(), 3);

    // Sysctls through setns.
    let ns = lab.netns("s2").unwrap();
    netns::set_sysctl(&ns, "net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(netns::get_sysctl(&ns, "net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(
        netns::get_sysctl(&lab.netns("s1").unwrap(), "net.ipv4.ip_forward").unwrap(),
        "0"
    );

    // Panics come back to the caller; unknown namespaces are errors.
    let panicked = catch_unwind(AssertUnwindSafe(|| lab.run_in("h1", || panic!("inside"))));
    assert!(panicked.is_err());
    assert!(matches!(
        run_in_netns("lime-no-such-ns", || ()),
        Err(LabError::Setns { .. })
    ));
    assert!(matches!(
        run_in_netns("../etc", || ()),
        Err(LabError::Setns { .. })
    ));
    assert!(matches!(
        lab.run_in("vs1", || ()),
        Err(LabError::UnknownNode { .. })
    ));
}

#[test]
fn state_is_saved_and_loaded() {
    let Some(t) = TestLab::new('h') else { return };
    let dir = std::env::temp_dir().join(format!("lime-lab-test-{}", t.name));
    let mut lab = Lab::up(&t.topology()).expect("lab up");
    let path = lab.save(&dir).unwrap();
    assert!(path.exists());

    let loaded = Lab::load(&dir).expect("load");
    assert_eq!(loaded.state(), lab.state());
    assert!(loaded.is_running());
    drop(loaded);
    assert!(lab.is_running(), "dropping a loaded lab leaves it running");

    let loaded = Lab::load(&dir).unwrap();
    loaded.down().expect("down from saved state");
    assert!(!lab.is_running());
    assert_eq!(t.leftovers(), Vec::<String>::new());
    assert!(!path.exists(), "down removes the saved state");
    assert!(matches!(
        LabState::load(&dir),
        Err(LabError::StateIo { .. })
    ));
    // Dropping the original handle after that is harmless.
    drop(lab);
}

#[test]
fn default_demo_comes_up() {
    let Some(t) = TestLab::new('i') else { return };
    let mut topology = Topology::default_demo();
    topology.name.clone_from(&t.name);
    let lab = Lab::up(&topology).expect("demo up");
    assert_eq!(lab.ports.len(), 8, "4 host ports and 4 underlay ends");
    for (host, switch) in [("h1", "s1"), ("h2", "s1"), ("h3", "s2"), ("h4", "s2")] {
        assert_eq!(lab.host_port(host).unwrap().switch, switch);
    }
    drop(lab);
    assert_eq!(t.leftovers(), Vec::<String>::new());
}

#[test]
fn vlinks_are_veth_pairs_and_move_make_before_break() {
    let Some(t) = TestLab::new('v') else { return };
    let mut topo = t.topology();
    topo.vswitches[0].ports.truncate(2);
    let mut vs2 = topo.vswitches[0].clone();
    vs2.name = "vs2".into();
    vs2.dpid = 2;
    vs2.ports = vec![VPortSpec {
        port: 1,
        host: "h3".into(),
    }];
    topo.vswitches.push(vs2);
    let text = format!(
        "{}\n[[vlink]]\na = {{ vswitch = \"vs1\", port = 5 }}\nb = {{ vswitch = \"vs2\", port = 5 }}\n\
         [[vlink]]\na = {{ vswitch = \"vs1\", port = 6 }}\nb = {{ vswitch = \"vs2\", port = 6, switch = \"s1\" }}\n",
        topo.to_toml_string().unwrap()
    );
    let topo = Topology::from_toml_str(&text).expect("topology with virtual links");
    let mut lab = Lab::up(&topo).expect("lab up");
    let a = lab.vlink_port("vs1", 5).unwrap().clone();
    let b = lab.vlink_port("vs2", 5).unwrap().clone();
    assert_eq!((a.switch.as_str(), a.ifname.as_str()), ("s1", "vl1a"));
    assert_eq!((b.switch.as_str(), b.ifname.as_str()), ("s2", "vl1b"));
    assert!(matches!(
        &b.kind,
        PortKind::VLink { vswitch, port: 5, peer_vswitch, peer_port: 5, generation: 0, .. }
            if vswitch == "vs2" && peer_vswitch == "vs1"
    ));
    let same: Vec<&str> = ["vs1", "vs2"]
        .iter()
        .map(|v| lab.vlink_port(v, 6).unwrap().switch.as_str())
        .collect();
    assert_eq!(same, ["s1", "s1"], "both ends of link 2 in s1's namespace");
    assert!(netns::link(&b.netns, "vl1b").unwrap().is_up());

    // Move vs2's end of link 1 to s1: the new pair exists next to the old one.
    let g = lab
        .add_vlink_pair(0, lime_lab::VLinkSide::B, "s1")
        .expect("new pair");
    assert_eq!(g, 1);
    let nb = lab.vlink_port("vs2", 5).unwrap().clone();
    assert_eq!((nb.switch.as_str(), nb.ifname.as_str()), ("s1", "vl1b-1"));
    assert_eq!(lab.vlink_port("vs1", 5).unwrap().ifname, "vl1a-1");
    assert_eq!(lab.topology.vlinks[0].b.switch, "s1");
    assert!(lab.ifindex("s2", "vl1b").is_ok(), "old pair still there");
    lab.remove_vlink_pair(0, 0).expect("old pair removed");
    assert!(matches!(
        lab.ifindex("s2", "vl1b"),
        Err(LabError::InterfaceNotFound { .. })
    ));
    assert!(lab.ifindex("s1", "vl1a").is_err());
    assert_eq!(lab.vlink_pairs.len(), 2);
    assert!(lab.add_vlink_pair(7, lime_lab::VLinkSide::A, "s1").is_err());
    assert!(lab.add_vlink_pair(0, lime_lab::VLinkSide::A, "s9").is_err());
    lab.down().expect("down");
}

#[test]
fn move_host_to_a_switch_of_another_datapath_mode_is_refused() {
    let Some(t) = TestLab::new('k') else { return };
    let mut topology = t.topology();
    topology.switches[1].datapath = lime_lab::DatapathMode::Tc;
    // h3 (on s2, TC mode) leaves vs1, which would otherwise span both modes.
    topology.vswitches[0].ports.retain(|p| p.host != "h3");
    let mut lab = Lab::up(&topology).expect("lab up");
    let features = lab.exec_ok("h3", &["ethtool", "-k", "eth0"]).unwrap();
    assert!(
        features.contains("tx-checksumming: on"),
        "a host on a TC-mode switch keeps checksum offload"
    );
    let e = lab
        .move_host("h1", "s2")
        .expect_err("vs1 would span both modes");
    assert!(
        matches!(
            e,
            LabError::Topology {
                source: lime_lab::TopologyError::MixedDatapaths { .. }
            }
        ),
        "{e}"
    );
    // Nothing was torn down.
    assert_eq!(lab.host_port("h1").unwrap().switch, "s1");
    assert!(netns::link(&lab.host("h1").unwrap().netns, "eth0").is_ok());
    // h3 is on no virtual switch with others: it may move.
    assert_eq!(lab.move_host("h3", "s1").expect("move h3").switch, "s1");
    lab.down().unwrap();
}

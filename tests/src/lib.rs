//! Support for LIME's integration tests: datapaths loaded under a private bpffs
//! directory (removed on drop, even when a test panics), a global lock for tests that
//! share kernel state, and helpers to read what the datapath emitted.
//!
//! Every pin directory is `/sys/fs/bpf/lime-test/<test>-<pid>`, every namespace
//! `lime-<lab>-*` with a lab name unique to the test.
#![deny(missing_docs)]

use std::{
    path::PathBuf,
    sync::{Mutex, MutexGuard},
};

use lime_common::{
    action::port_no,
    port::{PortInfo, VportInfo, kind, location},
    wire::{ETH_P_LIME, TunnelHeader},
};
use lime_userspace::datapath::{Datapath, DatapathMode};

static KERNEL_LOCK: Mutex<()> = Mutex::new(());

/// Serialise tests that touch kernel state (namespaces, attached programs).
pub fn kernel_lock() -> MutexGuard<'static, ()> {
    KERNEL_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Skip (loudly) unless root: the datapath needs CAP_BPF/CAP_NET_ADMIN.
#[must_use]
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPED: this test needs root (BPF, namespaces)");
    }
    root
}

/// The CPUs this process may run on.
#[must_use]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size matches the set.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(
        rc,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Run `f` with the calling thread pinned to `cpu`, then restore its affinity. Per-CPU
/// datapath state (the flow cache, counters, the scratch area) is only exercised across
/// CPUs if a test chooses the CPU: `BPF_PROG_TEST_RUN` runs XDP on the caller's CPU.
pub fn on_cpu<T>(cpu: usize, f: impl FnOnce() -> T) -> T {
    let before = allowed_cpus();
    let set_to = |cpus: &[usize]| {
        // SAFETY: as in `allowed_cpus`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cpus {
            // SAFETY: c < CPU_SETSIZE (it came from the kernel or the caller's list).
            unsafe { libc::CPU_SET(c, &mut set) };
        }
        // SAFETY: pid 0 is the calling thread; the size matches the set.
        let rc =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        assert_eq!(
            rc,
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    };
    set_to(&[cpu]);
    let out = f();
    set_to(&before);
    out
}

/// Give a UDP socket a deep receive buffer, so that on a busy machine the receiving
/// test thread is not where datagrams get lost.
pub fn deep_receive_buffer(s: &std::net::UdpSocket) {
    lime_userspace::traffic::probe::deep_receive_buffer(s).expect("SO_RCVBUFFORCE");
}

/// The virtual switch id used by fixture datapaths.
pub const VSW: u16 = 7;
/// The virtual in_port of frames run through `test_run` (mapped to loopback, ifindex 1).
pub const IN_PORT: u32 = 1;
/// Virtual ports 1..=MAX_TEST_PORT are set up as remote ports whose tunnel header shows
/// which port the datapath chose.
pub const MAX_TEST_PORT: u32 = 16;
/// A virtual port that lives locally (frames to it come out without encapsulation).
pub const LOCAL_PORT: u32 = 100;

/// A datapath loaded for a test, removed on drop.
pub struct TestDatapath {
    /// The datapath.
    pub dp: Datapath,
    pin_root: PathBuf,
    /// Which entry point [`TestDatapath::run`] runs frames through.
    pub mode: DatapathMode,
}

impl TestDatapath {
    /// Load a datapath for test `name` with virtual switch [`VSW`] active, loopback mapped
    /// to [`IN_PORT`], ports 1..=[`MAX_TEST_PORT`] remote (observable through the tunnel
    /// header), and [`LOCAL_PORT`] local.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self::with_mode(name, DatapathMode::Xdp)
    }

    /// [`TestDatapath::new`] for a datapath mode: in TC mode the loopback port is
    /// flagged `port_flags::TC` and [`TestDatapath::run`] runs `lime_tc`.
    #[must_use]
    pub fn with_mode(name: &str, mode: DatapathMode) -> Self {
        let pin_root = PathBuf::from(format!(
            "/sys/fs/bpf/lime-test/{name}-{}",
            std::process::id()
        ));
        let dp = Datapath::load("dp", None, &pin_root).unwrap_or_else(|e| {
            let _ = std::fs::remove_dir_all(&pin_root);
            panic!("loading the datapath for {name}: {e}")
        });
        // From here on, Drop removes the pins even if setup panics.
        let mut this = Self { dp, pin_root, mode };
        this.dp.add_vswitch(VSW).expect("add vswitch");
        this.dp
            .kernel_mut()
            .set_port(
                1,
                PortInfo {
                    kind: kind::HOST,
                    flags: if mode == DatapathMode::Tc {
                        lime_common::port::port_flags::TC
                    } else {
                        0
                    },
                    vswitch: VSW,
                    vport: IN_PORT,
                },
            )
            .expect("port map");
        for p in 1..=MAX_TEST_PORT {
            this.dp
                .set_vport(
                    VSW,
                    p,
                    VportInfo {
                        location: location::REMOTE,
                        _pad: [0; 3],
                        ifindex: 1,
                        outer_src: [2, 0xee, 0, 0, 0, 1],
                        outer_dst: [2, 0xee, 0, 0, 0, 2],
                    },
                )
                .expect("vport");
        }
        this.dp
            .set_vport(
                VSW,
                LOCAL_PORT,
                VportInfo {
                    location: location::LOCAL,
                    _pad: [0; 3],
                    ifindex: 1,
                    outer_src: [0; 6],
                    outer_dst: [0; 6],
                },
            )
            .expect("vport");
        this
    }
}

impl TestDatapath {
    /// Run a frame once through the datapath's entry point for its mode and decode it.
    #[must_use]
    pub fn run(&self, frame: &[u8]) -> Emitted {
        match self.mode {
            DatapathMode::Xdp => run(&self.dp, frame),
            DatapathMode::Tc => run_tc(&self.dp, frame),
        }
    }
}

impl Drop for TestDatapath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_root);
    }
}

/// What came out of a `test_run`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emitted {
    /// XDP_DROP.
    Drop,
    /// XDP_PASS.
    Pass,
    /// Redirected to a remote virtual port: the tunnel header's out_port, version and
    /// the inner frame.
    Remote {
        /// Virtual out port.
        port: u32,
        /// Version tag.
        version: u32,
        /// Inner frame.
        frame: Vec<u8>,
    },
    /// Redirected without encapsulation (to a local port).
    Local {
        /// The frame.
        frame: Vec<u8>,
    },
    /// Another verdict.
    Other(u32),
}

/// XDP verdicts.
pub mod xdp {
    /// Drop.
    pub const DROP: u32 = 1;
    /// Pass.
    pub const PASS: u32 = 2;
    /// Redirect.
    pub const REDIRECT: u32 = 4;
}

/// Decode a test run.
#[must_use]
pub fn decode(verdict: u32, frame: &[u8]) -> Emitted {
    match verdict {
        xdp::DROP => Emitted::Drop,
        xdp::PASS => Emitted::Pass,
        xdp::REDIRECT => {
            let hdr_len = size_of::<TunnelHeader>();
            if frame.len() >= 14 + hdr_len
                && u16::from_be_bytes([frame[12], frame[13]]) == ETH_P_LIME
            {
                let h = &frame[14..14 + hdr_len];
                Emitted::Remote {
                    port: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
                    version: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
                    frame: frame[14 + hdr_len..].to_vec(),
                }
            } else {
                Emitted::Local {
                    frame: frame.to_vec(),
                }
            }
        }
        v => Emitted::Other(v),
    }
}

/// Run a frame through the datapath once and decode the result.
pub fn run(dp: &Datapath, frame: &[u8]) -> Emitted {
    let r = dp
        .kernel()
        .test_run(lime_common::names::PROG_XDP, frame, 1)
        .unwrap_or_else(|e| panic!("test_run: {e}"));
    decode(r.verdict, &r.frame)
}

/// TC verdicts.
pub mod tc {
    /// `TC_ACT_OK`: left to the stack.
    pub const OK: u32 = 0;
    /// `TC_ACT_SHOT`: dropped.
    pub const SHOT: u32 = 2;
    /// `TC_ACT_REDIRECT`.
    pub const REDIRECT: u32 = 7;
}

/// Run a frame once through the TC entry point (`lime_tc`) as an skb arriving on
/// loopback, and decode the result as [`run`] does (`TC_ACT_SHOT` is a drop,
/// `TC_ACT_OK` a pass; other verdicts are `Other` with their TC value).
pub fn run_tc(dp: &Datapath, frame: &[u8]) -> Emitted {
    let r = dp
        .kernel()
        .test_run_tc(frame)
        .unwrap_or_else(|e| panic!("test_run of lime_tc: {e}"));
    match r.verdict {
        tc::SHOT => Emitted::Drop,
        tc::OK => Emitted::Pass,
        tc::REDIRECT => decode(xdp::REDIRECT, &r.frame),
        v => Emitted::Other(v),
    }
}

/// The controller port, for fixtures.
pub const CONTROLLER: u32 = port_no::CONTROLLER;

/// A pin root for fabrics of tests (removed by each fabric's drop).
#[must_use]
pub fn fabric_pin_root() -> PathBuf {
    PathBuf::from(format!(
        "/sys/fs/bpf/lime-test/fabric-{}",
        std::process::id()
    ))
}

pub use lime_userspace::fabric::l2_rules;

pub mod daemon;
pub mod transparency;

/// Everything the datapaths counted, for failure messages.
#[must_use]
pub fn diagnostics(f: &lime_userspace::fabric::Fabric) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for (sw, dp) in f.datapaths() {
        let drops = dp.kernel().drops().unwrap_or_default();
        let named: Vec<String> = drops
            .iter()
            .map(|(r, n)| format!("{}={n}", lime_common::stats::drop_reason::name(*r)))
            .collect();
        let _ = writeln!(s, "{sw}: drops [{}]", named.join(", "));
        for p in f.lab().state().switch_ports(sw) {
            if let Ok(ps) = dp.port_stats(p.ifindex) {
                let _ = writeln!(
                    s,
                    "  {} (ifindex {}): rx {} tx {} rx_dropped {} tx_errors {}",
                    p.ifname, p.ifindex, ps.rx_packets, ps.tx_packets, ps.rx_dropped, ps.tx_errors
                );
            }
        }
    }
    s
}

/// A raw AF_PACKET capture on one interface of a namespace, read on its own thread.
pub struct Capture {
    handle: std::thread::JoinHandle<Vec<Vec<u8>>>,
}

impl Capture {
    /// Start capturing every frame received on `ifname` inside `netns`, until `idle` passes
    /// with no frame (after at least one) or `limit` passes overall.
    pub fn start(
        netns: &str,
        ifname: &str,
        idle: std::time::Duration,
        limit: std::time::Duration,
    ) -> Self {
        let fd = lime_lab::netns::run_in_netns(netns, {
            let ifname = ifname.to_owned();
            move || open_packet_socket(&ifname)
        })
        .expect("enter namespace")
        .expect("open AF_PACKET socket");
        let handle = std::thread::spawn(move || {
            let mut frames = Vec::new();
            let start = std::time::Instant::now();
            let mut last = start;
            let mut buf = vec![0u8; 4096];
            while start.elapsed() < limit && (frames.is_empty() || last.elapsed() < idle) {
                // SAFETY: fd is an open socket; buf is valid for its length.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 {
                    frames.push(buf[..n as usize].to_vec());
                    last = std::time::Instant::now();
                }
            }
            // SAFETY: closing our own fd.
            unsafe { libc::close(fd) };
            frames
        });
        Self { handle }
    }

    /// Wait for the capture to end and return the frames.
    #[must_use]
    pub fn finish(self) -> Vec<Vec<u8>> {
        self.handle.join().expect("capture thread")
    }
}

fn open_packet_socket(ifname: &str) -> std::io::Result<i32> {
    let name = std::ffi::CString::new(ifname).expect("ifname");
    // SAFETY: plain socket/setsockopt/bind calls with valid arguments.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let ifindex = libc::if_nametoindex(name.as_ptr());
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        if libc::bind(
            fd,
            std::ptr::from_ref(&sll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let size: i32 = 32 << 20;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&size).cast(),
            4,
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&tv).cast(),
            size_of::<libc::timeval>() as u32,
        );
        Ok(fd)
    }
}

/// Two physical switches joined by one underlay link; h1 on s1 (virtual port 1), h3 on
/// s2 (virtual port 3), both on virtual switch vs1. `lab` names the lab (and so its
/// namespaces: each test uses its own).
#[must_use]
pub fn two_switch_topology(lab: &str) -> lime_lab::Topology {
    let toml = format!(
        r#"
name = "{lab}"
[[switch]]
name = "s1"
[[switch]]
name = "s2"
[[host]]
name = "h1"
switch = "s1"
[[host]]
name = "h3"
switch = "s2"
[[link]]
a = "s1"
b = "s2"
[[vswitch]]
name = "vs1"
tenant = "t1"
ports = [ {{ port = 1, host = "h1" }}, {{ port = 3, host = "h3" }} ]
"#
    );
    lime_lab::Topology::from_toml_str(&toml).expect("test topology")
}

/// The start of a topology file for lab `lab`: physical switches `switches` in a row,
/// each joined to the next by an underlay link, each with datapath mode `datapath` if
/// one is given (else the default), and `hosts` as (name, physical switch) with
/// default addresses. The test appends its `[[vswitch]]`, `[[vlink]]`, … sections.
#[must_use]
pub fn lab_toml(
    lab: &str,
    switches: &[&str],
    datapath: Option<&str>,
    hosts: &[(&str, &str)],
) -> String {
    use std::fmt::Write as _;
    let mut t = format!("name = \"{lab}\"\n");
    for sw in switches {
        let _ = writeln!(t, "[[switch]]\nname = \"{sw}\"");
        if let Some(mode) = datapath {
            let _ = writeln!(t, "datapath = \"{mode}\"");
        }
    }
    for (host, sw) in hosts {
        let _ = writeln!(t, "[[host]]\nname = \"{host}\"\nswitch = \"{sw}\"");
    }
    for pair in switches.windows(2) {
        let _ = writeln!(t, "[[link]]\na = \"{}\"\nb = \"{}\"", pair[0], pair[1]);
    }
    t
}

/// The hosts of the two-switch layout: h1, h2 on s1; h3, h4 on s2.
pub const FOUR_HOSTS: [(&str, &str); 4] = [("h1", "s1"), ("h2", "s1"), ("h3", "s2"), ("h4", "s2")];

/// [`lab_toml`] with s1 — s2 and [`FOUR_HOSTS`] (datapath mode `datapath`, if given).
#[must_use]
pub fn two_switch_toml(lab: &str, datapath: Option<&str>) -> String {
    lab_toml(lab, &["s1", "s2"], datapath, &FOUR_HOSTS)
}

/// [`lab_toml`] with the physical layout most migration tests use: switches s1 — s2 —
/// s3 joined by two underlay links (s3 is where they migrate to).
#[must_use]
pub fn three_switch_toml(lab: &str, hosts: &[(&str, &str)]) -> String {
    lab_toml(lab, &["s1", "s2", "s3"], None, hosts)
}

/// IPv4/UDP, optionally to one destination port.
#[must_use]
pub fn udp_match(dport: Option<u16>) -> lime_userspace::flow::Match {
    use lime_userspace::flow::matching::{ethertype, ipproto};
    lime_userspace::flow::Match {
        eth_type: Some(ethertype::IPV4),
        ip_proto: Some(ipproto::UDP),
        udp_dst: dport,
        ..lime_userspace::flow::Match::default()
    }
}

/// [`two_switch_topology`] with virtual switch vs1 connecting to a controller on
/// 127.0.0.1:`port`.
#[must_use]
pub fn controlled_topology(lab: &str, port: u16) -> lime_lab::Topology {
    let mut t = two_switch_topology(lab);
    t.vswitches[0].controllers = vec![format!("tcp:127.0.0.1:{port}")];
    t
}

/// Run `f` inside host `host`'s network namespace.
pub fn in_host<F, T>(lab: &lime_lab::LabState, host: &str, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let ns = &lab.host(host).expect("host in the lab").netns;
    lime_lab::netns::run_in_netns(ns, f).expect("entering the host namespace")
}

/// Send `count` UDP datagrams of `payload` bytes from host `from` to `to_ip:port`.
pub fn send_udp(
    lab: &lime_lab::LabState,
    from: &str,
    to_ip: std::net::Ipv4Addr,
    port: u16,
    count: usize,
    payload: usize,
) {
    in_host(lab, from, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        for _ in 0..count {
            s.send_to(&vec![0x5a; payload], (to_ip, port))
                .expect("send");
        }
    });
}

/// `ping -c count` from host `from` to `to`; whether every echo was answered.
#[must_use]
pub fn ping(lab: &lime_lab::LabState, from: &str, to: std::net::Ipv4Addr, count: u32) -> bool {
    let ns = &lab.host(from).expect("host in the lab").netns;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-q"])
        .args(["-c", &count.to_string(), "-i", "0.2", "-W", "2"])
        .arg(to.to_string())
        .output();
    let Ok(out) = out else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains(&format!(" {count} received"))
}

/// An OpenFlow 1.3 FLOW_MOD adding, in table 0, an entry matching `fields` at `priority`
/// with `cookie` that outputs to `out` (no timeouts, no flags).
#[must_use]
pub fn of_add(
    cookie: u64,
    priority: u16,
    fields: Vec<lime_openflow::OxmField>,
    out: u32,
) -> lime_openflow::Message {
    use lime_openflow::consts::{FlowModCommand, OFP_NO_BUFFER, group, port};
    lime_openflow::Message::FlowMod(lime_openflow::FlowMod {
        cookie,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority,
        buffer_id: OFP_NO_BUFFER,
        out_port: port::ANY,
        out_group: group::ANY,
        flags: 0,
        r#match: lime_openflow::Match::new(fields),
        instructions: vec![lime_openflow::Instruction::ApplyActions(vec![
            lime_openflow::Action::Output {
                port: out,
                max_len: 0xffff,
            },
        ])],
    })
}

/// OpenFlow match fields: IPv4/UDP to `dport`.
#[must_use]
pub fn of_udp(dport: u16) -> Vec<lime_openflow::OxmField> {
    use lime_openflow::{Masked, OxmField, consts::ethertype};
    vec![
        OxmField::EthType(Masked::exact(ethertype::IPV4)),
        OxmField::IpProto(Masked::exact(17)),
        OxmField::UdpDst(Masked::exact(dport)),
    ]
}

/// FLOW_MODs forwarding to each (virtual port, host) of `hosts`: by destination MAC
/// (priority 10) and ARP target address (priority 20).
#[must_use]
pub fn of_l2(lab: &lime_lab::LabState, hosts: &[(u32, &str)]) -> Vec<lime_openflow::Message> {
    use lime_openflow::{Masked, OxmField, consts::ethertype};
    let mut mods = Vec::new();
    for (port, name) in hosts {
        let h = lab.host(name).expect("host in the lab");
        mods.push(of_add(
            0,
            10,
            vec![OxmField::EthDst(Masked::exact(h.mac.octets()))],
            *port,
        ));
        mods.push(of_add(
            0,
            20,
            vec![
                OxmField::EthType(Masked::exact(ethertype::ARP)),
                OxmField::ArpTpa(Masked::exact(h.ip.addr)),
            ],
            *port,
        ));
    }
    mods
}

/// Packets counted by the entries with `cookie`, as a (scripted) controller sees them in
/// a flow statistics reply.
///
/// # Panics
/// If the switch does not answer within `timeout`.
#[must_use]
pub fn of_packets_of(
    c: &mut lime_userspace::ofswitch::client::ScriptedController,
    cookie: u64,
    timeout: std::time::Duration,
) -> u64 {
    use lime_openflow::{
        Match, Message, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
        consts::{group, port, table},
        multipart::flow::FlowStatsRequest,
    };
    let req = Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Flow(
        FlowStatsRequest {
            table_id: table::ALL,
            out_port: port::ANY,
            out_group: group::ANY,
            cookie,
            cookie_mask: u64::MAX,
            r#match: Match::new(vec![]),
        },
    )));
    let mut n = 0;
    for m in c.request(&req, timeout).expect("flow stats") {
        if let Message::MultipartReply(r) = m
            && let MultipartReplyBody::Flow(f) = r.body
        {
            n += f.iter().map(|s| s.packet_count).sum::<u64>();
        }
    }
    n
}

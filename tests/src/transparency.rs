//! The transparency checker (issue #4): run one workload twice on a real fabric — once
//! with a migration in the middle, once without — record everything the tenant's
//! controller and hosts observe, and compare. A difference the single-switch model does
//! not allow fails the test, with a diff.
//!
//! # A workload
//! A [`Workload`] is a topology (TOML with `{lab}` and `{port}` placeholders: the lab
//! name and the scripted controller's port), numbered [`Flow`]s of test packets, and a
//! deterministic schedule of [`Step`]s that one thread runs in order: the controller
//! sends flow-mods, barriers, stats requests and packet-outs (on LIME's own codec,
//! [`ScriptedController`]); hosts send numbered packets (synchronously, as background
//! streams, or as ping-pong chains); waits; and [`Step::MigrateStart`] /
//! [`Step::MigrateJoin`], where the [`MigrationPlan`] runs (in the background: the
//! steps between the two run while it does). In the run without a plan those two steps
//! do nothing. A workload may instead be driven by the os-ken learning switch
//! ([`Control::OsKen`]): then only host steps are allowed, and the controller's view is
//! the flow table it built (with counters) and what the hosts received.
//!
//! Test packets are IPv4/UDP frames built by the harness and sent from an AF_PACKET
//! socket in the host's namespace (so no ARP and no kernel stack takes part, and the
//! socket survives the host's re-attachment: the interface is looked up on each send).
//! The payload is `LTRN`, the flow number and the packet's sequence number. Every host
//! has a packet socket on all its interfaces that records what arrives (and a bound,
//! never-read UDP socket on each flow port, so the host's kernel answers nothing).
//!
//! # Version marks
//! Test rule sets may mark packets with a rule-set generation: [`mark_rule`] is one
//! table-0 entry that rewrites eth_src to `02:ee:00:00:HI:LO` (HI:LO = generation) and
//! continues in table 1, where the forwarding rules are. Changing the generation is one
//! MODIFY_STRICT of that entry, so a generation is one version for every flow, and marks
//! are comparable across flows. A packet without a mark has mark 0 (not checked).
//!
//! # What is compared
//! - **Replies**, in the order they arrived, each tagged with the step that asked: the
//!   same steps answered in the same order (barrier order; errors on their request's
//!   step). Their contents, normalized, must be equal — counters included when the
//!   request was *quiet* (no background traffic, no migration running, nothing sent
//!   since the last [`Step::Settle`]); for *live* requests only the entries (keys) are
//!   compared, and counters must never decrease from one reply to the next reply of the
//!   same request (unless the run without migration shows the same decrease: an entry
//!   deleted and added again restarts).
//! - **Packet-ins, FLOW_REMOVEDs, PORT_STATUS**: as multisets (their order relative to
//!   replies depends on timing in any switch). Packet-ins are identified by the test
//!   packet they carry: exactly one per packet that hit a CONTROLLER action, with the
//!   virtual in_port, cookie, table and reason.
//! - **Packets delivered**, per flow and receiving host: the same sequence numbers, none
//!   duplicated, none reordered (overtaken by a packet whose send started after its own
//!   send returned: two threads of one host may race otherwise).
//! - **Marks**: every copy of one packet (flooded to several hosts, or sent to the
//!   controller) carries one mark: it was processed by one rule set. A packet sent while
//!   nothing was changing (after a barrier, settled before the next flow-mod) carries
//!   the same mark as in the run without migration. In both runs: no packet a host sends
//!   carries an older mark than one the host sent (send returned) or received before its
//!   send started (causality: a reply, or the next request of a ping-pong).
//! - **The final flow table** with counters (os-ken workloads, through `dump-flows`).
//!
//! # Normalized away, and why
//! - xids: they are the client's numbering; replies are tagged with their step instead.
//! - `duration_sec`/`duration_nsec` of flow stats, FLOW_REMOVED and port stats: wall
//!   time, different in any two runs.
//! - The order of asynchronous messages relative to each other and to replies: it
//!   depends on scheduling in a single switch too (compared as multisets).
//! - Counters of live replies (depend on how far traffic got when the reply was made);
//!   they are checked for monotonicity instead, and the quiet replies after the traffic
//!   stopped are compared exactly.
//! - Marks of packets sent while updates were in flight: either rule set is allowed;
//!   the causality and one-mark-per-packet rules still apply.
//! - Table stats entries of tables that are empty with zero counts.
//! - The padding of multipart replies across messages (REPLY_MORE): parts are joined.
//!
//! # The hosts' own downtime
//! The migration re-attaches each host (its veth is recreated): while that happens the
//! host has no link. A packet sent by or to a host while it was being re-attached (its
//! window, from the migration report, with 5 ms before and after for frames in
//! flight) may be lost; such losses are reported separately as the host's downtime, and
//! counters are then compared with a tolerance of that many packets (a counter may lack
//! what was never sent, never more; an aggregate, which sums entries of every table,
//! once per table). Every other packet must be delivered exactly as
//! without migration. Schedules that want exact counters keep moving hosts quiet while
//! the migration runs.
//!
//! # Timing
//! Steps run as fast as they can, except [`Step::Sleep`] and [`Step::At`] (a time since
//! the schedule started, for timeouts: the run without migration does not spend the
//! migration's time at [`Step::MigrateJoin`]). LIME's switch core runs a migration as
//! one command: requests sent while it runs are answered when it is over (delayed, as a
//! slow switch would; not a difference).
//!
//! # Ensembles
//! A topology may join the virtual switch under test to others by virtual links
//! (`[[vlink]]`). A virtual switch whose controller is `tcp:127.0.0.1:{peer}` is
//! programmed by the harness (one such virtual switch per topology): static L2
//! forwarding to its own hosts and to the hosts one virtual link away (out of the link's
//! port), broadcasts flooded; the connection is kept alive (echoes answered) and
//! observes nothing. A plan whose `vswitch` is a comma-separated list migrates those
//! virtual switches one after the other (an ensemble, as `lime migrate vs1 vs2`): their
//! hosts' re-attachments are excused as usual; the link ends move make-before-break,
//! so nothing crossing a link may be lost. Before the schedule, every virtual switch
//! runs only where its hosts or link ends are.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::Ipv4Addr,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use lime_openflow::{
    self as of, Header, Instruction, Message, MultipartReplyBody, MultipartRequest,
    MultipartRequestBody, OxmField,
    consts::{FlowModCommand, OFP_NO_BUFFER, ethertype, group, port},
    multipart::flow::FlowStatsRequest,
};
use lime_userspace::{
    fabric::Fabric,
    migration::{Phase, Report, Strategy},
    ofswitch::{Agent, AgentOptions, FlowDump, client::ScriptedController},
};

/// Length of every test frame: Ethernet, IPv4, UDP, 16 bytes of payload.
pub const FRAME_LEN: usize = 14 + 20 + 8 + 16;
const MAGIC: &[u8; 4] = b"LTRN";
/// The mark prefix of eth_src (then the generation, big-endian).
pub const MARK_PREFIX: [u8; 4] = [0x02, 0xee, 0, 0];
const T: Duration = Duration::from_secs(20);
/// Slack around a host's re-attachment window (frames in flight).
const WINDOW_BEFORE: Duration = Duration::from_millis(5);
const WINDOW_AFTER: Duration = Duration::from_millis(5);
/// Quiet time that ends a [`Step::Settle`].
const SETTLE_QUIET: Duration = Duration::from_millis(150);

/// A flow of numbered test packets.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The host whose addresses the frames carry (and that sends them in host steps).
    pub from: String,
    /// Destination host, or `None` for broadcast (ff:ff:ff:ff:ff:ff, 255.255.255.255).
    pub to: Option<String>,
    /// UDP destination port.
    pub port: u16,
    /// The receiver answers each packet with the same sequence number on this flow.
    pub echo: Option<usize>,
}

impl Flow {
    /// A unicast flow.
    #[must_use]
    pub fn new(from: &str, to: &str, port: u16) -> Self {
        Self {
            from: from.into(),
            to: Some(to.into()),
            port,
            echo: None,
        }
    }

    /// A broadcast flow.
    #[must_use]
    pub fn broadcast(from: &str, port: u16) -> Self {
        Self {
            from: from.into(),
            to: None,
            port,
            echo: None,
        }
    }

    /// Answered by the receiver on flow `reply`.
    #[must_use]
    pub fn echoed_by(mut self, reply: usize) -> Self {
        self.echo = Some(reply);
        self
    }
}

/// One step of a schedule.
#[derive(Debug, Clone)]
pub enum Step {
    /// The controller sends a message (no reply awaited; errors are recorded on this
    /// step).
    Send(Message),
    /// The controller sends several messages in one write.
    SendMany(Vec<Message>),
    /// The controller sends a request and waits for its whole reply.
    Request(Message),
    /// BARRIER_REQUEST, waiting for the reply.
    Barrier,
    /// The flow's `from` host sends its next `count` packets, back to back.
    Packets {
        /// Flow index.
        flow: usize,
        /// How many.
        count: u32,
    },
    /// The controller sends the flow's next packet as PACKET_OUT.
    PacketOut {
        /// Flow index.
        flow: usize,
        /// PACKET_OUT in_port.
        in_port: u32,
        /// Output port (a virtual port, FLOOD, ALL, TABLE).
        out: u32,
    },
    /// The flow's `from` host sends `count` packets, `gap` apart, in the background.
    Stream {
        /// Flow index.
        flow: usize,
        /// How many.
        count: u32,
        /// Gap between packets.
        gap: Duration,
    },
    /// In the background, `flow`'s sender sends a packet and waits (up to 100 ms) for
    /// its echo on `reply` before sending the next, `count` times.
    PingPong {
        /// Request flow (must be echoed on `reply`).
        flow: usize,
        /// Reply flow.
        reply: usize,
        /// Exchanges.
        count: u32,
    },
    /// Wait for the background traffic to end.
    Join,
    /// Sleep.
    Sleep(Duration),
    /// Sleep until this long after the schedule started (no sleep if later already):
    /// timelines with timeouts stay the same whether a migration took time or not.
    At(Duration),
    /// Wait until no test packet arrived anywhere for a while, then a barrier.
    Settle,
    /// Start the migration plan in the background (nothing without a plan).
    MigrateStart,
    /// Wait for the migration to end (nothing without a plan).
    MigrateJoin,
}

/// Who controls the virtual switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The schedule's controller steps, on [`ScriptedController`].
    Scripted,
    /// os-ken's learning switch (`controller/lime_learning_switch.py`).
    OsKen,
}

/// A workload: topology, flows, schedule.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Lab name (namespaces `lime-<lab>-*`; unique per test).
    pub lab: String,
    /// Topology TOML with `{lab}` and `{port}` (controller port) placeholders.
    pub topology: String,
    /// The virtual switch under test.
    pub vswitch: String,
    /// Test flows.
    pub flows: Vec<Flow>,
    /// The schedule.
    pub steps: Vec<Step>,
    /// Controller.
    pub control: Control,
}

/// When, what and where to migrate: the schedule's [`Step::MigrateStart`] says when.
#[derive(Debug, Clone)]
pub struct MigrationPlan {
    /// Virtual switch.
    pub vswitch: String,
    /// Target physical switch.
    pub to: String,
    /// Strategy.
    pub strategy: Strategy,
}

/// Counter units (for the downtime tolerance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// Packets.
    Packets,
    /// Bytes.
    Bytes,
    /// Entries (exact always).
    Count,
}

/// One normalized observation: a key (everything but counters) and its counters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    /// Everything but the counters, as text.
    pub key: String,
    /// Named counters.
    pub counters: Vec<(&'static str, Unit, u64)>,
    /// The test packet it carries (packet-ins), if any.
    pub packet: Option<(u16, u32)>,
}

impl Item {
    fn plain(key: String) -> Self {
        Self {
            key,
            counters: Vec::new(),
            packet: None,
        }
    }

    fn text(&self) -> String {
        let mut s = self.key.clone();
        for (n, _, v) in &self.counters {
            let _ = write!(s, " {n}={v}");
        }
        s
    }
}

/// A reply (or error) to one step.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The step that asked.
    pub step: usize,
    /// Requested while traffic or a migration was in progress.
    pub live: bool,
    /// The request, normalized (replies to equal requests form a series).
    pub request: String,
    /// Normalized contents.
    pub items: Vec<Item>,
}

/// A test packet sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Flow.
    pub flow: u16,
    /// Sequence number.
    pub seq: u32,
    /// Sending host (index), or `None` for the controller (PACKET_OUT).
    pub by: Option<usize>,
    /// When the send started.
    pub at: Instant,
    /// When it returned.
    pub done: Instant,
    /// Whether the socket took it.
    pub ok: bool,
    /// Sent by a synchronous step with no flow-mod unanswered by a barrier.
    candidate: bool,
    /// Flow-mods sent before it.
    epoch: u64,
    /// Settled before the next flow-mod: its mark is deterministic.
    pub exact: bool,
}

/// A test packet received.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Receiving host (index).
    pub host: usize,
    /// Flow.
    pub flow: u16,
    /// Sequence number.
    pub seq: u32,
    /// Its mark (0: none).
    pub mark: u16,
    /// When.
    pub at: Instant,
}

/// A host's re-attachment window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Host.
    pub host: String,
    /// From (slack included).
    pub from: Instant,
    /// To (slack included).
    pub to: Instant,
}

/// Everything one run observed.
#[derive(Debug, Default)]
pub struct Observations {
    /// "baseline" or "migration".
    pub label: String,
    /// Host names, by index.
    pub hosts: Vec<String>,
    /// Replies, in arrival order.
    pub replies: Vec<Reply>,
    /// Packet-ins.
    pub packet_ins: Vec<Item>,
    /// FLOW_REMOVEDs.
    pub flow_removed: Vec<Item>,
    /// PORT_STATUS and any other unexpected asynchronous message.
    pub other_async: Vec<Item>,
    /// Marks seen in packet-ins: (flow, seq, mark).
    pub pin_marks: Vec<(u16, u32, u16)>,
    /// Test packets sent.
    pub sent: Vec<Sent>,
    /// Test packets received, in order.
    pub arrivals: Vec<Arrival>,
    /// The final flow table (os-ken workloads).
    pub final_table: Vec<Item>,
    /// Re-attachment windows of the hosts that moved.
    pub windows: Vec<Window>,
    /// Migration reports.
    pub reports: Vec<Report>,
    /// When the migration was asked for, and when it ended.
    pub migration: Option<(Instant, Instant)>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

// ----- frames -----

#[derive(Debug, Clone, Copy)]
struct Addr {
    mac: [u8; 6],
    ip: Ipv4Addr,
}

fn frame(src: Addr, dst: Option<Addr>, port: u16, flow: u16, seq: u32) -> Vec<u8> {
    let (dmac, dip) = dst.map_or(([0xff; 6], Ipv4Addr::BROADCAST), |d| (d.mac, d.ip));
    let mut f = Vec::with_capacity(FRAME_LEN);
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&src.mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(FRAME_LEN - 14).expect("short");
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip.octets());
    ip[16..20].copy_from_slice(&dip.octets());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !u16::try_from(sum).expect("folded");
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&(40000 + flow).to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&(8u16 + 16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(MAGIC);
    f.extend_from_slice(&flow.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0; 6]);
    f
}

/// (flow, seq, mark) of a test frame.
#[must_use]
pub fn parse_frame(f: &[u8]) -> Option<(u16, u32, u16)> {
    if f.len() < FRAME_LEN || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 17 {
        return None;
    }
    let p = &f[42..];
    if &p[..4] != MAGIC {
        return None;
    }
    let flow = u16::from_be_bytes([p[4], p[5]]);
    let seq = u32::from_be_bytes([p[6], p[7], p[8], p[9]]);
    let mark = if f[6..10] == MARK_PREFIX {
        u16::from_be_bytes([f[10], f[11]])
    } else {
        0
    };
    Some((flow, seq, mark))
}

// ----- host sockets -----

/// A raw socket in a host's namespace: sends on the host's current `eth0`, or receives
/// from every interface there.
struct RawSock(i32);

impl Drop for RawSock {
    fn drop(&mut self) {
        // SAFETY: closing our own fd.
        unsafe { libc::close(self.0) };
    }
}

fn raw_socket(ns: &str, receive: bool) -> RawSock {
    let fd = lime_lab::netns::run_in_netns(ns, move || {
        let proto = if receive {
            i32::from((libc::ETH_P_ALL as u16).to_be())
        } else {
            0
        };
        // SAFETY: plain socket/setsockopt calls with valid arguments.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto);
            assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            if receive {
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
                    tv_usec: 20_000,
                };
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    std::ptr::from_ref(&tv).cast(),
                    size_of::<libc::timeval>() as u32,
                );
            }
            fd
        }
    })
    .expect("enter the host namespace");
    RawSock(fd)
}

impl RawSock {
    /// Send on the namespace's `eth0` as it is now (its ifindex changes when the host is
    /// re-attached).
    fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: a zeroed ifreq is valid; the name fits; the ioctl resolves it in the
        // socket's namespace.
        unsafe {
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (d, s) in ifr.ifr_name.iter_mut().zip(lime_lab::HOST_IFNAME.bytes()) {
                *d = s as libc::c_char;
            }
            if libc::ioctl(self.0, libc::SIOCGIFINDEX, &raw mut ifr) < 0 {
                return false;
            }
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = ifr.ifr_ifru.ifru_ifindex;
            sll.sll_halen = 6;
            let n = libc::sendto(
                self.0,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            );
            n == frame.len() as isize
        }
    }

    /// The next frame received (not sent) here, or `None` after the timeout.
    fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: buf and sll are valid for their sizes.
        unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            let mut len = size_of::<libc::sockaddr_ll>() as u32;
            let n = libc::recvfrom(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                std::ptr::from_mut(&mut sll).cast(),
                &raw mut len,
            );
            if n <= 0 || sll.sll_pkttype == libc::PACKET_OUTGOING {
                return None;
            }
            Some(n as usize)
        }
    }
}

// ----- the run -----

struct Shared {
    flows: Vec<Flow>,
    addrs: Vec<Addr>,
    host_index: BTreeMap<String, usize>,
    senders: Vec<RawSock>,
    next_seq: Mutex<Vec<u32>>,
    sent: Mutex<Vec<Sent>>,
    arrivals: Mutex<Vec<Arrival>>,
    arrived: Condvar,
    last_arrival: Mutex<Instant>,
    stop: AtomicBool,
    epoch: Mutex<(u64, bool)>,
}

impl Shared {
    fn addr_of(&self, host: &str) -> Addr {
        self.addrs[self.host_index[host]]
    }

    fn next(&self, flow: usize) -> u32 {
        let mut s = self.next_seq.lock().expect("seq");
        let n = s[flow];
        s[flow] += 1;
        n
    }

    fn frame_of(&self, flow: usize, seq: u32) -> Vec<u8> {
        let f = &self.flows[flow];
        let src = self.addr_of(&f.from);
        let dst = f.to.as_deref().map(|t| self.addr_of(t));
        frame(src, dst, f.port, flow as u16, seq)
    }

    /// Host `by` (or the controller, via `send`) sends the flow's packet `seq`.
    fn record(&self, flow: usize, seq: u32, by: Option<usize>, at: Instant, ok: bool, sync: bool) {
        let (epoch, unbarriered) = *self.epoch.lock().expect("epoch");
        self.sent.lock().expect("sent").push(Sent {
            flow: flow as u16,
            seq,
            by,
            at,
            done: Instant::now(),
            ok,
            candidate: sync && !unbarriered,
            epoch,
            exact: false,
        });
    }

    fn host_send(&self, flow: usize, seq: u32, sync: bool) -> bool {
        let h = self.host_index[&self.flows[flow].from];
        let f = self.frame_of(flow, seq);
        let at = Instant::now();
        let ok = self.senders[h].send(&f);
        self.record(flow, seq, Some(h), at, ok, sync);
        ok
    }

    fn wait_arrival(&self, host: usize, flow: usize, seq: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut a = self.arrivals.lock().expect("arrivals");
        loop {
            if a.iter()
                .rev()
                .take(64)
                .any(|x| x.host == host && usize::from(x.flow) == flow && x.seq == seq)
            {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            a = self.arrived.wait_timeout(a, left).expect("arrivals").0;
        }
    }
}

fn receiver(shared: Arc<Shared>, host: usize, sock: RawSock) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while !shared.stop.load(Ordering::Relaxed) {
            let Some(n) = sock.recv(&mut buf) else {
                continue;
            };
            let Some((flow, seq, mark)) = parse_frame(&buf[..n]) else {
                continue;
            };
            let at = Instant::now();
            {
                let mut a = shared.arrivals.lock().expect("arrivals");
                a.push(Arrival {
                    host,
                    flow,
                    seq,
                    mark,
                    at,
                });
                *shared.last_arrival.lock().expect("last") = at;
            }
            shared.arrived.notify_all();
            let f = usize::from(flow);
            if let Some(reply) = shared.flows.get(f).and_then(|f| f.echo)
                && shared.host_index.get(&shared.flows[reply].from) == Some(&host)
            {
                shared.host_send(reply, seq, false);
            }
        }
    })
}

fn bind_flow_ports(ns: &str, ports: &BTreeSet<u16>) -> Vec<std::net::UdpSocket> {
    let ports = ports.clone();
    lime_lab::netns::run_in_netns(ns, move || {
        ports
            .iter()
            .map(|p| std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, *p)).expect("bind"))
            .collect()
    })
    .expect("enter the host namespace")
}

fn need_rec(rec: &mut Option<Recorder>) -> &mut Recorder {
    rec.as_mut()
        .expect("controller steps need a scripted controller")
}

fn is_flow_mod(m: &Message) -> bool {
    matches!(m, Message::FlowMod(_))
}

/// Normalize a reply's message (see the module docs).
fn reply_items(m: &Message) -> Vec<Item> {
    let c = |n, u, v| (n, u, v);
    match m {
        Message::MultipartReply(r) => match &r.body {
            MultipartReplyBody::Flow(fs) => fs
                .iter()
                .map(|f| Item {
                    key: format!(
                        "flow table={} priority={} cookie={:#x} idle={} hard={} flags={:#x} match={:?} instructions={:?}",
                        f.table_id,
                        f.priority,
                        f.cookie,
                        f.idle_timeout,
                        f.hard_timeout,
                        f.flags,
                        f.r#match.fields,
                        f.instructions
                    ),
                    counters: vec![
                        c("packets", Unit::Packets, f.packet_count),
                        c("bytes", Unit::Bytes, f.byte_count),
                    ],
                    packet: None,
                })
                .collect(),
            MultipartReplyBody::Aggregate(a) => vec![Item {
                key: "aggregate".into(),
                counters: vec![
                    c("packets", Unit::Packets, a.packet_count),
                    c("bytes", Unit::Bytes, a.byte_count),
                    c("flows", Unit::Count, u64::from(a.flow_count)),
                ],
                packet: None,
            }],
            MultipartReplyBody::Table(ts) => ts
                .iter()
                .filter(|t| t.active_count != 0 || t.lookup_count != 0 || t.matched_count != 0)
                .map(|t| Item {
                    key: format!("table {}", t.table_id),
                    counters: vec![
                        c("active", Unit::Count, u64::from(t.active_count)),
                        c("lookups", Unit::Packets, t.lookup_count),
                        c("matched", Unit::Packets, t.matched_count),
                    ],
                    packet: None,
                })
                .collect(),
            MultipartReplyBody::PortStats(ps) => ps
                .iter()
                .map(|p| Item {
                    key: format!("port {}", p.port_no),
                    counters: vec![
                        c("rx_packets", Unit::Packets, p.rx_packets),
                        c("tx_packets", Unit::Packets, p.tx_packets),
                        c("rx_bytes", Unit::Bytes, p.rx_bytes),
                        c("tx_bytes", Unit::Bytes, p.tx_bytes),
                        c("rx_dropped", Unit::Packets, p.rx_dropped),
                        c("tx_errors", Unit::Packets, p.tx_errors),
                    ],
                    packet: None,
                })
                .collect(),
            other => vec![Item::plain(format!("{other:?}"))],
        },
        Message::Error(e) => vec![Item::plain(format!(
            "error type={} code={}",
            e.err_type, e.code
        ))],
        other => vec![Item::plain(format!("{other:?}"))],
    }
}

fn async_item(m: &Message) -> (Option<Item>, Option<(u16, u32, u16)>) {
    match m {
        Message::PacketIn(p) => {
            let parsed = parse_frame(&p.data);
            let what = parsed.map_or_else(
                || format!("frame {:02x?}", &p.data[..]),
                |(f, s, _)| format!("packet flow={f} seq={s}"),
            );
            (
                Some(Item {
                    key: format!(
                        "packet-in reason={} table={} cookie={:#x} match={:?} total_len={} {what}",
                        p.reason, p.table_id, p.cookie, p.r#match.fields, p.total_len
                    ),
                    counters: Vec::new(),
                    packet: parsed.map(|(f, s, _)| (f, s)),
                }),
                parsed,
            )
        }
        Message::FlowRemoved(r) => (
            Some(Item {
                key: format!(
                    "flow-removed reason={} table={} priority={} cookie={:#x} idle={} hard={} match={:?}",
                    r.reason,
                    r.table_id,
                    r.priority,
                    r.cookie,
                    r.idle_timeout,
                    r.hard_timeout,
                    r.r#match.fields
                ),
                counters: vec![
                    ("packets", Unit::Packets, r.packet_count),
                    ("bytes", Unit::Bytes, r.byte_count),
                ],
                packet: None,
            }),
            None,
        ),
        _ => (None, None),
    }
}

struct Recorder {
    c: ScriptedController,
    xid_step: BTreeMap<u32, usize>,
    replies: Vec<Reply>,
    /// Parts of multipart replies waiting for their last part, by xid.
    partial: BTreeMap<u32, Vec<Item>>,
    packet_ins: Vec<Item>,
    flow_removed: Vec<Item>,
    other_async: Vec<Item>,
    pin_marks: Vec<(u16, u32, u16)>,
    live_of: BTreeMap<usize, (bool, String)>,
}

impl Recorder {
    fn note(&mut self, h: &Header, m: Message) {
        match m {
            Message::PacketIn(_) | Message::FlowRemoved(_) => {
                let (item, mark) = async_item(&m);
                if let Some((f, s, k)) = mark {
                    self.pin_marks.push((f, s, k));
                }
                if let Some(i) = item {
                    if matches!(m, Message::PacketIn(_)) {
                        self.packet_ins.push(i);
                    } else {
                        self.flow_removed.push(i);
                    }
                }
            }
            Message::EchoRequest(_) | Message::EchoReply(_) => {}
            Message::PortStatus(p) => self
                .other_async
                .push(Item::plain(format!("port-status {p:?}"))),
            m => {
                let Some(&step) = self.xid_step.get(&h.xid) else {
                    self.other_async
                        .push(Item::plain(format!("unsolicited xid {}: {m:?}", h.xid)));
                    return;
                };
                let more = matches!(&m, Message::MultipartReply(r) if r.more());
                let part = self.partial.entry(h.xid).or_default();
                part.extend(reply_items(&m));
                if more {
                    return;
                }
                let mut items = self.partial.remove(&h.xid).unwrap_or_default();
                items.sort();
                let (live, request) = self.live_of.get(&step).cloned().unwrap_or_default();
                self.replies.push(Reply {
                    step,
                    live,
                    request,
                    items,
                });
            }
        }
    }

    fn send(&mut self, step: usize, m: &Message) {
        let xid = self.c.send(m).expect("controller send");
        self.xid_step.insert(xid, step);
    }

    /// Send and read until the whole reply came.
    fn request(&mut self, step: usize, m: &Message) {
        let xid = self.c.send(m).expect("controller send");
        self.xid_step.insert(xid, step);
        let got = self
            .c
            .recv_until(T, |h, m| {
                h.xid == xid && !matches!(m, Message::MultipartReply(r) if r.more())
            })
            .unwrap_or_else(|e| panic!("step {step}: no reply to {m:?}: {e}"));
        for (h, m) in got {
            self.note(&h, m);
        }
    }

    fn drain(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.c.recv(left) {
                Ok(Some((h, m))) => self.note(&h, m),
                Ok(None) => break,
                Err(e) => panic!("controller connection: {e}"),
            }
        }
    }
}

/// Whether the request at each step is live (see the module docs), decided from the
/// schedule alone, so both runs agree.
fn liveness(steps: &[Step]) -> Vec<bool> {
    let (mut background, mut migrating, mut dirty) = (false, false, false);
    steps
        .iter()
        .map(|s| {
            match s {
                Step::Packets { .. } | Step::PacketOut { .. } => dirty = true,
                Step::Stream { .. } | Step::PingPong { .. } => {
                    background = true;
                    dirty = true;
                }
                Step::Join => background = false,
                Step::Settle => dirty = false,
                Step::MigrateStart => migrating = true,
                Step::MigrateJoin => migrating = false,
                _ => {}
            }
            background || migrating || dirty
        })
        .collect()
}

/// The background migration: its reports, when the core took it, when it ended.
type MigrationThread = JoinHandle<Result<(Vec<Report>, Instant, Instant), String>>;

/// Each moved host's re-attachment, from the reports' phase times. The migration ran
/// somewhere between `began` (the core took the command before it) and `end` (its
/// reply came): the windows are computed forwards from the one and backwards from the
/// other, and cover both.
fn windows_from(reports: &[Report], began: Instant, end: Instant) -> Vec<Window> {
    let ms = |x: f64| Duration::from_secs_f64(x / 1e3);
    let phase = |r: &Report, p: Phase| {
        r.phases_ms
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, m)| *m)
            .sum::<f64>()
    };
    // (host, offset of the re-attachment from the migration's start, its length)
    let mut spans = Vec::new();
    let mut offset = 0.0;
    for r in reports {
        let mut t = offset + phase(r, Phase::Freeze) + phase(r, Phase::Clone);
        for (h, down) in &r.hosts {
            spans.push((h.clone(), t, *down));
            t += down;
        }
        offset += r.total_ms;
    }
    let latest_start = end.checked_sub(ms(offset)).unwrap_or(end).max(began);
    spans
        .into_iter()
        .map(|(host, at, down)| {
            let from = began + ms(at);
            let to = latest_start + ms(at + down);
            Window {
                host,
                from: from.checked_sub(WINDOW_BEFORE).unwrap_or(from),
                to: to + WINDOW_AFTER,
            }
        })
        .collect()
}

/// Run `w`, with `plan` at its [`Step::MigrateStart`] if given.
///
/// # Panics
/// When the lab, the agent or the controller cannot be set up, a reply does not come,
/// or the migration fails: the run is broken, not merely different.
#[must_use]
pub fn run(w: &Workload, plan: Option<&MigrationPlan>) -> Observations {
    let started = Instant::now();
    let (listener, port) = ScriptedController::listen().expect("listen");
    let osken_dir = std::env::temp_dir().join(format!("lime-{}-{}", w.lab, std::process::id()));
    let osken = (w.control == Control::OsKen).then(|| {
        std::fs::create_dir_all(&osken_dir).expect("scratch dir");
        let p = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let k = lime_userspace::osken::OsKen::start(
            &lime_userspace::osken::OsKenOptions::learning_switch(p, &osken_dir.join("osken.log")),
        )
        .expect("os-ken learning switch");
        (k, p)
    });
    let ctl_port = osken.as_ref().map_or(port, |(_, p)| *p);
    let (peer_listener, peer_port) = ScriptedController::listen().expect("listen");
    let toml = w
        .topology
        .replace("{lab}", &w.lab)
        .replace("{port}", &ctl_port.to_string())
        .replace("{peer}", &peer_port.to_string());
    let topo = lime_lab::Topology::from_toml_str(&toml).expect("workload topology");
    let mut fabric = Fabric::up(&topo, &crate::fabric_pin_root()).expect("fabric");
    // A virtual switch runs only where its hosts (or virtual link ends) are: a migration
    // to a switch without them is then a real clone.
    let st = fabric.lab().state().clone();
    for vs in &st.topology.vswitches {
        if vs.name != w.vswitch && st.topology.vlinks.is_empty() {
            continue;
        }
        fabric
            .drop_unused_copies(&vs.name)
            .expect("drop the idle copies");
    }
    let peer_target = format!("tcp:127.0.0.1:{peer_port}");
    let peers: Vec<String> = st
        .topology
        .vswitches
        .iter()
        .filter(|v| v.controllers.contains(&peer_target))
        .map(|v| v.name.clone())
        .collect();
    assert!(peers.len() <= 1, "one {{peer}} virtual switch at most");
    let agent = Agent::start(
        fabric,
        &AgentOptions {
            echo_interval: Duration::from_secs(2),
        },
    )
    .expect("agent");
    let st = agent.lab_state().clone();
    let hosts: Vec<String> = st.hosts.iter().map(|h| h.host.clone()).collect();
    let ports: BTreeSet<u16> = w.flows.iter().map(|f| f.port).collect();
    let mut keep = Vec::new();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for h in &st.hosts {
        keep.extend(bind_flow_ports(&h.netns, &ports));
        senders.push(raw_socket(&h.netns, false));
        receivers.push(raw_socket(&h.netns, true));
    }
    let shared = Arc::new(Shared {
        flows: w.flows.clone(),
        addrs: st
            .hosts
            .iter()
            .map(|h| Addr {
                mac: h.mac.octets(),
                ip: h.ip.addr,
            })
            .collect(),
        host_index: hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i))
            .collect(),
        senders,
        next_seq: Mutex::new(vec![0; w.flows.len()]),
        sent: Mutex::new(Vec::new()),
        arrivals: Mutex::new(Vec::new()),
        arrived: Condvar::new(),
        last_arrival: Mutex::new(Instant::now()),
        stop: AtomicBool::new(false),
        epoch: Mutex::new((0, false)),
    });
    let rx_threads: Vec<JoinHandle<()>> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, s)| receiver(shared.clone(), i, s))
        .collect();
    let mut rec = (w.control == Control::Scripted).then(|| Recorder {
        c: ScriptedController::accept(&listener, T).expect("the switch connects"),
        xid_step: BTreeMap::new(),
        replies: Vec::new(),
        partial: BTreeMap::new(),
        packet_ins: Vec::new(),
        flow_removed: Vec::new(),
        other_async: Vec::new(),
        pin_marks: Vec::new(),
        live_of: BTreeMap::new(),
    });
    let peer = peers
        .first()
        .map(|name| program_peer(&peer_listener, &st, name));
    if w.control == Control::OsKen {
        // The learning switch installs its table-miss entry when it connects.
        let deadline = Instant::now() + T;
        while agent
            .handle()
            .dump_flows(&w.vswitch)
            .map_or(true, |f| f.is_empty())
        {
            assert!(Instant::now() < deadline, "os-ken did not connect");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let live = liveness(&w.steps);
    let t0 = Instant::now();
    let mut background: Vec<JoinHandle<()>> = Vec::new();
    let mut migration: Option<MigrationThread> = None;
    let mut reports = Vec::new();
    let mut windows = Vec::new();
    let (mut migration_started, mut migrated) = (None, None);
    for (i, step) in w.steps.iter().enumerate() {
        if let Some(r) = rec.as_mut() {
            r.live_of.insert(i, (live[i], request_text(step)));
        }
        match step {
            Step::Send(m) => {
                if is_flow_mod(m) {
                    let mut e = shared.epoch.lock().expect("epoch");
                    *e = (e.0 + 1, true);
                }
                need_rec(&mut rec).send(i, m);
            }
            Step::SendMany(ms) => {
                if ms.iter().any(is_flow_mod) {
                    let mut e = shared.epoch.lock().expect("epoch");
                    *e = (e.0 + 1, true);
                }
                let r = need_rec(&mut rec);
                let xids = r.c.send_many(ms.iter()).expect("controller send");
                for x in xids {
                    r.xid_step.insert(x, i);
                }
            }
            Step::Request(m) => need_rec(&mut rec).request(i, m),
            Step::Barrier => {
                need_rec(&mut rec).request(i, &Message::BarrierRequest);
                shared.epoch.lock().expect("epoch").1 = false;
            }
            Step::Packets { flow, count } => {
                for _ in 0..*count {
                    let seq = shared.next(*flow);
                    shared.host_send(*flow, seq, true);
                }
            }
            Step::PacketOut { flow, in_port, out } => {
                let seq = shared.next(*flow);
                let data = bytes::Bytes::from(shared.frame_of(*flow, seq));
                let m = Message::PacketOut(of::PacketOut {
                    buffer_id: OFP_NO_BUFFER,
                    in_port: *in_port,
                    actions: vec![of::Action::Output {
                        port: *out,
                        max_len: 0xffff,
                    }],
                    data,
                });
                let at = Instant::now();
                need_rec(&mut rec).send(i, &m);
                shared.record(*flow, seq, None, at, true, true);
            }
            Step::Stream { flow, count, gap } => {
                let (s, flow, count, gap) = (shared.clone(), *flow, *count, *gap);
                let seqs: Vec<u32> = (0..count).map(|_| s.next(flow)).collect();
                background.push(std::thread::spawn(move || {
                    for seq in seqs {
                        s.host_send(flow, seq, false);
                        std::thread::sleep(gap);
                    }
                }));
            }
            Step::PingPong { flow, reply, count } => {
                let (s, flow, reply, count) = (shared.clone(), *flow, *reply, *count);
                let seqs: Vec<u32> = (0..count).map(|_| s.next(flow)).collect();
                let me = s.host_index[&s.flows[flow].from];
                background.push(std::thread::spawn(move || {
                    for seq in seqs {
                        if s.host_send(flow, seq, false) {
                            s.wait_arrival(me, reply, seq, Duration::from_millis(100));
                        }
                    }
                }));
            }
            Step::Join => {
                for b in background.drain(..) {
                    b.join().expect("background traffic");
                }
            }
            Step::Sleep(d) => std::thread::sleep(*d),
            Step::At(d) => std::thread::sleep((t0 + *d).saturating_duration_since(Instant::now())),
            Step::Settle => {
                let begun = Instant::now();
                loop {
                    let last = *shared.last_arrival.lock().expect("last");
                    let quiet_since = last.max(begun);
                    if quiet_since.elapsed() >= SETTLE_QUIET {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                if let Some(r) = rec.as_mut() {
                    r.request(i, &Message::BarrierRequest);
                }
                let epoch = shared.epoch.lock().expect("epoch").0;
                for s in shared.sent.lock().expect("sent").iter_mut() {
                    if s.candidate && s.epoch == epoch {
                        s.exact = true;
                    }
                }
            }
            Step::MigrateStart => {
                if let Some(p) = plan {
                    migration_started = Some(Instant::now());
                    let (h, p) = (agent.handle(), p.clone());
                    migration = Some(std::thread::spawn(move || {
                        // Runs in the core right before the migration.
                        let began = h.with_fabric(|_| Instant::now())?;
                        let mut reports = Vec::new();
                        // An ensemble: its virtual switches one after the other.
                        for v in p.vswitch.split(',') {
                            reports.extend(h.migrate(v.trim(), &p.to, p.strategy)?);
                        }
                        Ok((reports, began, Instant::now()))
                    }));
                }
            }
            Step::MigrateJoin => {
                if let Some(m) = migration.take() {
                    let (r, began, end) = m
                        .join()
                        .expect("migration thread")
                        .unwrap_or_else(|e| panic!("migration failed: {e}"));
                    windows.extend(windows_from(&r, began, end));
                    migrated = migration_started.map(|s| (s, end));
                    reports.extend(r);
                }
            }
        }
    }
    assert!(
        migration.is_none(),
        "the schedule starts a migration it never joins"
    );
    for b in background.drain(..) {
        b.join().expect("background traffic");
    }
    let mut obs = Observations {
        label: if plan.is_some() {
            "migration".into()
        } else {
            "baseline".into()
        },
        hosts,
        ..Observations::default()
    };
    if let Some(mut r) = rec.take() {
        let xid = r.c.send(&Message::BarrierRequest).expect("send");
        let got =
            r.c.recv_until(T, |h, m| h.xid == xid && matches!(m, Message::BarrierReply))
                .expect("final barrier");
        for (h, m) in got {
            if h.xid != xid {
                r.note(&h, m);
            }
        }
        r.drain(Duration::from_millis(200));
        obs.replies = r.replies;
        obs.packet_ins = r.packet_ins;
        obs.flow_removed = r.flow_removed;
        obs.other_async = r.other_async;
        obs.pin_marks = r.pin_marks;
    }
    if w.control == Control::OsKen {
        obs.final_table = agent
            .handle()
            .dump_flows(&w.vswitch)
            .expect("dump")
            .iter()
            .map(dump_item)
            .collect();
        obs.final_table.sort();
    }
    shared.stop.store(true, Ordering::Relaxed);
    for t in rx_threads {
        t.join().expect("receiver");
    }
    obs.sent = shared.sent.lock().expect("sent").clone();
    obs.arrivals = shared.arrivals.lock().expect("arrivals").clone();
    obs.windows = windows;
    obs.migration = migrated;
    obs.reports = reports;
    drop(keep);
    if let Some((stop, t)) = peer {
        stop.store(true, Ordering::Relaxed);
        t.join().expect("peer controller");
    }
    drop(agent.shutdown().expect("agent shutdown"));
    if let Some((k, _)) = osken {
        drop(k);
        let _ = std::fs::remove_dir_all(&osken_dir);
    }
    obs.elapsed = started.elapsed();
    obs
}

/// Accept the connection of peer virtual switch `name` (see the module docs on
/// ensembles), install its static L2 forwarding, wait for the barrier, and keep the
/// connection alive in a thread until the returned flag is set.
fn program_peer(
    listener: &std::net::TcpListener,
    st: &lime_lab::LabState,
    name: &str,
) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let mut c = ScriptedController::accept(listener, T).expect("the peer switch connects");
    let topo = &st.topology;
    let vs = topo.vswitch(name).expect("peer virtual switch");
    let mac = |h: &str| st.host(h).expect("host").mac.octets();
    let mut to: Vec<([u8; 6], u32)> = vs.ports.iter().map(|p| (mac(&p.host), p.port)).collect();
    for (end, other) in topo.vlink_ends_of(name) {
        let beyond = topo.vswitch(&other.vswitch).expect("linked virtual switch");
        to.extend(beyond.ports.iter().map(|p| (mac(&p.host), end.port)));
    }
    let mut rules = l2_forwarding(0, &to);
    rules.push(add_flow(
        0,
        5,
        0x1f,
        vec![OxmField::EthDst(of::Masked::exact([0xff; 6]))],
        output(port::FLOOD),
    ));
    c.send_many(rules.iter()).expect("peer rules");
    c.barrier(T).expect("peer barrier");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            if c.recv(Duration::from_millis(100)).is_err() {
                return;
            }
        }
    });
    (stop, t)
}

fn dump_item(f: &FlowDump) -> Item {
    Item {
        key: format!(
            "flow table={} priority={} cookie={:#x} match={} actions={}",
            f.table, f.priority, f.cookie, f.r#match, f.actions
        ),
        counters: vec![
            ("packets", Unit::Packets, f.n_packets),
            ("bytes", Unit::Bytes, f.n_bytes),
        ],
        packet: None,
    }
}

fn request_text(s: &Step) -> String {
    match s {
        Step::Request(m) => format!("{m:?}"),
        Step::Barrier | Step::Settle => "barrier".into(),
        other => format!("{:?}", std::mem::discriminant(other)),
    }
}

// ----- the comparison -----

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Differences the single-switch model does not allow.
    pub differences: Vec<String>,
    /// Packets lost during a host's own re-attachment (allowed, reported).
    pub downtime_losses: Vec<String>,
    /// Counts, for the report.
    pub summary: String,
}

impl Verdict {
    /// Panic with the diff unless the runs are equivalent.
    ///
    /// # Panics
    /// When there is a difference.
    pub fn assert_transparent(&self) {
        assert!(self.differences.is_empty(), "{self}");
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.summary)?;
        if !self.downtime_losses.is_empty() {
            writeln!(
                f,
                "{} packets lost during their host's re-attachment (allowed): {}",
                self.downtime_losses.len(),
                self.downtime_losses[..self.downtime_losses.len().min(10)].join(", ")
            )?;
        }
        if self.differences.is_empty() {
            return writeln!(f, "no difference: the migration was transparent");
        }
        writeln!(
            f,
            "{} differences between the run without migration (-) and with it (+):",
            self.differences.len()
        )?;
        for d in self.differences.iter().take(60) {
            writeln!(f, "  {d}")?;
        }
        if self.differences.len() > 60 {
            writeln!(f, "  ... and {} more", self.differences.len() - 60)?;
        }
        Ok(())
    }
}

/// Multiset difference of item keys (optionally with counters), as diff lines.
fn multiset_diff(
    what: &str,
    a: &[Item],
    b: &[Item],
    allowed_missing: impl Fn(&Item) -> bool,
) -> Vec<String> {
    let count = |xs: &[Item]| {
        let mut m: BTreeMap<String, (usize, Item)> = BTreeMap::new();
        for x in xs {
            m.entry(x.key.clone()).or_insert((0, x.clone())).0 += 1;
        }
        m
    };
    let (ca, cb) = (count(a), count(b));
    let mut out = Vec::new();
    for (k, (na, item)) in &ca {
        let nb = cb.get(k).map_or(0, |x| x.0);
        if nb < *na && !allowed_missing(item) {
            out.push(format!("- {what} ({}x): {k}", na - nb));
        }
    }
    for (k, (nb, _)) in &cb {
        let na = ca.get(k).map_or(0, |x| x.0);
        if na < *nb {
            out.push(format!("+ {what} ({}x): {k}", nb - na));
        }
    }
    out
}

/// Counters of `b` against `a`: equal, or (with a downtime tolerance) lower by at most
/// `lost` packets.
fn counters_ok(a: &Item, b: &Item, lost: u64) -> bool {
    // An aggregate sums over entries: a lost packet may be missing once per table.
    let lost = if a.key == "aggregate" {
        lost * lime_common::limits::MAX_TABLES as u64
    } else {
        lost
    };
    a.counters.len() == b.counters.len()
        && a.counters
            .iter()
            .zip(&b.counters)
            .all(|((n1, u, x), (n2, _, y))| {
                n1 == n2
                    && match u {
                        Unit::Count => x == y,
                        Unit::Packets => y <= x && x - y <= lost,
                        Unit::Bytes => y <= x && x - y <= lost * FRAME_LEN as u64,
                    }
            })
}

fn item_lines(items: &[Item]) -> String {
    items.iter().map(Item::text).collect::<Vec<_>>().join("; ")
}

/// Counter decreases between consecutive replies to the same request: (reply index,
/// key, counter).
fn decreases(replies: &[Reply]) -> BTreeSet<(usize, String, &'static str)> {
    let mut last: BTreeMap<&str, &Reply> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (i, r) in replies.iter().enumerate() {
        if let Some(prev) = last.get(r.request.as_str()) {
            for it in &r.items {
                if let Some(p) = prev.items.iter().find(|p| p.key == it.key) {
                    for ((n, u, now), (_, _, before)) in it.counters.iter().zip(&p.counters) {
                        if *u != Unit::Count && now < before {
                            out.insert((i, it.key.clone(), *n));
                        }
                    }
                }
            }
        }
        last.insert(&r.request, r);
    }
    out
}

/// Compare the run without migration (`a`) with the run with it (`b`).
#[must_use]
pub fn compare(a: &Observations, b: &Observations) -> Verdict {
    let mut v = Verdict::default();
    let d = &mut v.differences;
    let host = |o: &Observations, i: usize| o.hosts[i].clone();

    // --- packets delivered ---
    let deliveries = |o: &Observations| {
        let mut m: BTreeMap<(u16, String), Vec<(u32, u16)>> = BTreeMap::new();
        for x in &o.arrivals {
            m.entry((x.flow, host(o, x.host)))
                .or_default()
                .push((x.seq, x.mark));
        }
        m
    };
    let (da, db) = (deliveries(a), deliveries(b));
    let sent_b: BTreeMap<(u16, u32), &Sent> = b.sent.iter().map(|s| ((s.flow, s.seq), s)).collect();
    let in_window = |h: &str, t: Instant| {
        b.windows
            .iter()
            .any(|w| w.host == h && w.from <= t && t <= w.to)
    };
    let mut lost_allowed: BTreeSet<(u16, u32)> = BTreeSet::new();
    // A packet its sender sent (or tried to) during its own re-attachment.
    let sender_down = |k: &(u16, u32)| {
        sent_b.get(k).is_some_and(|snd| {
            snd.by
                .map(|i| host(b, i))
                .is_some_and(|h| in_window(&h, snd.at))
        })
    };
    let keys: BTreeSet<&(u16, String)> = da.keys().chain(db.keys()).collect();
    for k in keys {
        let (flow, rx) = k;
        let empty = Vec::new();
        let (xa, xb) = (da.get(k).unwrap_or(&empty), db.get(k).unwrap_or(&empty));
        let sa: BTreeSet<u32> = xa.iter().map(|x| x.0).collect();
        let sb: BTreeSet<u32> = xb.iter().map(|x| x.0).collect();
        for (o, xs, sign) in [(a, xa, '-'), (b, xb, '+')] {
            let sent: BTreeMap<u32, &Sent> = o
                .sent
                .iter()
                .filter(|s| s.flow == *flow)
                .map(|s| (s.seq, s))
                .collect();
            let mut seen = BTreeSet::new();
            // The latest send start among the packets that arrived so far: a packet
            // whose send ended before it was overtaken.
            let mut latest: Option<(Instant, u32)> = None;
            for &(s, _) in xs {
                if !seen.insert(s) {
                    d.push(format!(
                        "{sign} [{}] flow {flow} packet {s} delivered to {rx} twice",
                        o.label
                    ));
                }
                let Some(me) = sent.get(&s) else { continue };
                if let Some((t, q)) = latest
                    && t > me.done
                {
                    d.push(format!(
                        "{sign} [{}] flow {flow} packet {s} reached {rx} after packet {q}, sent later",
                        o.label
                    ));
                }
                if latest.is_none_or(|(t, _)| me.at > t) {
                    latest = Some((me.at, s));
                }
            }
        }
        let mut missing = Vec::new();
        for s in sa.difference(&sb) {
            let allowed = sent_b.get(&(*flow, *s)).is_some_and(|snd| {
                let by = snd.by.map(|i| host(b, i));
                in_window(rx, snd.at) || by.is_some_and(|h| in_window(&h, snd.at))
            });
            if allowed {
                lost_allowed.insert((*flow, *s));
                v.downtime_losses
                    .push(format!("flow {flow} packet {s} to {rx}"));
            } else {
                missing.push(*s);
            }
        }
        if !missing.is_empty() {
            d.push(format!(
                "- flow {flow} to {rx}: {} packets lost by the migration: {}",
                missing.len(),
                ranges(&missing)
            ));
        }
        let extra: Vec<u32> = sb.difference(&sa).copied().collect();
        if !extra.is_empty() {
            d.push(format!(
                "+ flow {flow} to {rx}: {} packets delivered only with migration: {}",
                extra.len(),
                ranges(&extra)
            ));
        }
    }
    for s in b.sent.iter().filter(|s| !s.ok) {
        let by = s.by.map(|i| host(b, i)).unwrap_or_default();
        if !in_window(&by, s.at) {
            d.push(format!(
                "+ flow {} packet {}: {by} could not send it",
                s.flow, s.seq
            ));
        }
    }
    // Packet-ins (identified by their packet): missing ones are allowed only if the
    // sender was being re-attached when it sent them.
    let pins = multiset_diff("packet-in", &a.packet_ins, &b.packet_ins, |i| {
        i.packet
            .is_some_and(|p| sender_down(&p) || lost_allowed.contains(&p))
    });
    d.extend(pins);
    for i in &a.packet_ins {
        if let Some(p) = i.packet
            && sender_down(&p)
            && !b.packet_ins.iter().any(|x| x.packet == Some(p))
            && lost_allowed.insert(p)
        {
            v.downtime_losses
                .push(format!("flow {} packet {} to the controller", p.0, p.1));
        }
    }
    let lost = lost_allowed.len() as u64;

    // --- marks ---
    for o in [a, b] {
        d.extend(mark_rules(o));
    }
    let marks = |o: &Observations| {
        let mut m: BTreeMap<(u16, u32), u16> = BTreeMap::new();
        for x in &o.arrivals {
            m.insert((x.flow, x.seq), x.mark);
        }
        for &(f, s, k) in &o.pin_marks {
            m.insert((f, s), k);
        }
        m
    };
    let (ma, mb) = (marks(a), marks(b));
    let exact_a: BTreeSet<(u16, u32)> = a
        .sent
        .iter()
        .filter(|s| s.exact)
        .map(|s| (s.flow, s.seq))
        .collect();
    for s in b
        .sent
        .iter()
        .filter(|s| s.exact && exact_a.contains(&(s.flow, s.seq)))
    {
        let k = (s.flow, s.seq);
        if let (Some(x), Some(y)) = (ma.get(&k), mb.get(&k))
            && x != y
        {
            d.push(format!(
                "flow {} packet {} (sent while nothing changed): rule set {x} without migration, {y} with it",
                s.flow, s.seq
            ));
        }
    }

    // --- replies ---
    let steps_a: Vec<usize> = a.replies.iter().map(|r| r.step).collect();
    let steps_b: Vec<usize> = b.replies.iter().map(|r| r.step).collect();
    if steps_a != steps_b {
        let (sa, sb): (BTreeSet<usize>, BTreeSet<usize>) = (
            steps_a.iter().copied().collect(),
            steps_b.iter().copied().collect(),
        );
        if sa == sb {
            d.push(format!("- replies to steps, in order: {steps_a:?}"));
            d.push(format!("+ replies to steps, in order: {steps_b:?}"));
        }
        for r in a.replies.iter().filter(|r| !sb.contains(&r.step)) {
            d.push(format!(
                "- reply to step {}: {}",
                r.step,
                item_lines(&r.items)
            ));
        }
        for r in b.replies.iter().filter(|r| !sa.contains(&r.step)) {
            d.push(format!(
                "+ reply to step {}: {}",
                r.step,
                item_lines(&r.items)
            ));
        }
    }
    let replies_b: BTreeMap<usize, &Reply> = b.replies.iter().map(|r| (r.step, r)).collect();
    for ra in &a.replies {
        let Some(&rb) = replies_b.get(&ra.step) else {
            continue;
        };
        let keys_a: Vec<&str> = ra.items.iter().map(|i| i.key.as_str()).collect();
        let keys_b: Vec<&str> = rb.items.iter().map(|i| i.key.as_str()).collect();
        let same = keys_a == keys_b
            && (ra.live
                || ra
                    .items
                    .iter()
                    .zip(&rb.items)
                    .all(|(x, y)| counters_ok(x, y, lost)));
        if !same {
            let live = if ra.live { " (live: keys only)" } else { "" };
            d.push(format!(
                "- reply to step {}{live}: {}",
                ra.step,
                item_lines(&ra.items)
            ));
            d.push(format!(
                "+ reply to step {}{live}: {}",
                rb.step,
                item_lines(&rb.items)
            ));
        }
    }
    let dec_a = decreases(&a.replies);
    for (i, key, n) in decreases(&b.replies) {
        if !dec_a.contains(&(i, key.clone(), n)) {
            d.push(format!(
                "+ {n} went down in the reply to step {}: {key}",
                b.replies[i].step
            ));
        }
    }

    // --- asynchronous messages ---
    d.extend(multiset_diff(
        "asynchronous message",
        &a.other_async,
        &b.other_async,
        |_| false,
    ));
    d.extend(multiset_diff(
        "flow-removed",
        &a.flow_removed,
        &b.flow_removed,
        |_| false,
    ));
    let by_key = |xs: &[Item]| -> BTreeMap<String, Vec<Item>> {
        let mut m: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        for x in xs {
            m.entry(x.key.clone()).or_default().push(x.clone());
        }
        m
    };
    let (fa, fb) = (by_key(&a.flow_removed), by_key(&b.flow_removed));
    for (k, xs) in &fa {
        if let Some(ys) = fb.get(k)
            && (xs.len() != ys.len() || !xs.iter().zip(ys).all(|(x, y)| counters_ok(x, y, lost)))
        {
            d.push(format!("- {}", item_lines(xs)));
            d.push(format!("+ {}", item_lines(ys)));
        }
    }

    // --- the final table (os-ken) ---
    let ka: Vec<&str> = a.final_table.iter().map(|i| i.key.as_str()).collect();
    let kb: Vec<&str> = b.final_table.iter().map(|i| i.key.as_str()).collect();
    if ka != kb
        || !a
            .final_table
            .iter()
            .zip(&b.final_table)
            .all(|(x, y)| counters_ok(x, y, lost))
    {
        d.push(format!(
            "- final flow table: {}",
            item_lines(&a.final_table)
        ));
        d.push(format!(
            "+ final flow table: {}",
            item_lines(&b.final_table)
        ));
    }

    v.summary = format!(
        "baseline: {} sent, {} received, {} replies, {} packet-ins, {} flow-removed, {:.1} s; \
         migration: {} sent, {} received, {} replies, {} packet-ins, {} flow-removed, {:.1} s, \
         migration {:?}",
        a.sent.len(),
        a.arrivals.len(),
        a.replies.len(),
        a.packet_ins.len(),
        a.flow_removed.len(),
        a.elapsed.as_secs_f64(),
        b.sent.len(),
        b.arrivals.len(),
        b.replies.len(),
        b.packet_ins.len(),
        b.flow_removed.len(),
        b.elapsed.as_secs_f64(),
        b.reports
            .iter()
            .map(|r| format!("{}->{} {:.0} ms", r.from, r.to, r.total_ms))
            .collect::<Vec<_>>()
    );
    if let Some((start, end)) = b.migration {
        let ms = |t: Instant| {
            if t >= start {
                (t - start).as_secs_f64() * 1e3
            } else {
                -(start - t).as_secs_f64() * 1e3
            }
        };
        let _ = write!(
            v.summary,
            " ended at {:.0} ms; hosts re-attached (ms from the request, slack included): {}",
            ms(end),
            b.windows
                .iter()
                .map(|w| format!("{} {:.0}..{:.0}", w.host, ms(w.from), ms(w.to)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    v
}

/// The mark rules that hold in every run: one mark per packet, and causality at hosts.
fn mark_rules(o: &Observations) -> Vec<String> {
    let mut out = Vec::new();
    let mut of_packet: BTreeMap<(u16, u32), BTreeSet<u16>> = BTreeMap::new();
    for x in &o.arrivals {
        of_packet.entry((x.flow, x.seq)).or_default().insert(x.mark);
    }
    for &(f, s, k) in &o.pin_marks {
        of_packet.entry((f, s)).or_default().insert(k);
    }
    for ((f, s), ks) in &of_packet {
        if ks.len() > 1 {
            out.push(format!(
                "[{}] flow {f} packet {s} was processed by several rule sets: {ks:?}",
                o.label
            ));
        }
    }
    let mark = |k: &(u16, u32)| {
        of_packet
            .get(k)
            .and_then(|m| m.iter().next().copied())
            .unwrap_or(0)
    };
    // Per host, in time order: a packet it sent is checked when its send starts against
    // everything known before — packets it received, and packets it sent whose send had
    // returned (two threads of one host may race in between).
    for h in 0..o.hosts.len() {
        // (time, 0: check a send / 1: learn a mark, sent?, mark, flow, seq)
        let mut events: Vec<(Instant, u8, bool, u16, u16, u32)> = Vec::new();
        for s in o.sent.iter().filter(|s| s.by == Some(h) && s.ok) {
            let m = mark(&(s.flow, s.seq));
            events.push((s.at, 0, true, m, s.flow, s.seq));
            events.push((s.done, 1, true, m, s.flow, s.seq));
        }
        for x in o.arrivals.iter().filter(|x| x.host == h) {
            events.push((x.at, 1, false, x.mark, x.flow, x.seq));
        }
        events.sort_by_key(|e| (e.0, e.1));
        let mut high: Option<(u16, String)> = None;
        for (_, kind, sent, m, f, s) in events {
            if m == 0 {
                continue;
            }
            if kind == 0 {
                if let Some((hm, why)) = &high
                    && m < *hm
                {
                    out.push(format!(
                        "[{}] {} sent flow {f} packet {s}, processed by rule set {m}, after {why} (rule set {hm})",
                        o.label, o.hosts[h]
                    ));
                }
                continue;
            }
            if high.as_ref().is_none_or(|(hm, _)| m > *hm) {
                let what = if sent { "sending" } else { "receiving" };
                high = Some((m, format!("{what} flow {f} packet {s}")));
            }
        }
    }
    out
}

fn ranges(xs: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < xs.len() {
        let mut j = i;
        while j + 1 < xs.len() && xs[j + 1] == xs[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            xs[i].to_string()
        } else {
            format!("{}-{}", xs[i], xs[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// Run `w` without and with `plan`, compare, and return both runs and the verdict.
#[must_use]
pub fn check(w: &Workload, plan: &MigrationPlan) -> (Observations, Observations, Verdict) {
    let a = run(w, None);
    let b = run(w, Some(plan));
    let v = compare(&a, &b);
    eprintln!("{}: {v}", w.lab);
    (a, b, v)
}

// ----- building blocks for workloads -----

/// A FLOW_MOD ADD.
#[must_use]
pub fn add_flow(
    table: u8,
    priority: u16,
    cookie: u64,
    fields: Vec<OxmField>,
    instructions: Vec<Instruction>,
) -> Message {
    Message::FlowMod(of::FlowMod {
        cookie,
        cookie_mask: 0,
        table_id: table,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority,
        buffer_id: OFP_NO_BUFFER,
        out_port: port::ANY,
        out_group: group::ANY,
        flags: 0,
        r#match: of::Match::new(fields),
        instructions,
    })
}

/// Apply-actions: output to `port`.
#[must_use]
pub fn output(port: u32) -> Vec<Instruction> {
    vec![Instruction::ApplyActions(vec![of::Action::Output {
        port,
        max_len: 0xffff,
    }])]
}

/// IPv4/UDP to `dport`.
#[must_use]
pub fn udp(dport: u16) -> Vec<OxmField> {
    vec![
        OxmField::EthType(of::Masked::exact(ethertype::IPV4)),
        OxmField::IpProto(of::Masked::exact(17)),
        OxmField::UdpDst(of::Masked::exact(dport)),
    ]
}

/// The cookie of [`mark_rule`].
pub const MARK_COOKIE: u64 = 0x6d61_726b;

/// Table 0's marking entry for generation `k` (see the module docs): an ADD the first
/// time, MODIFY_STRICT (counters kept) after.
#[must_use]
pub fn mark_rule(k: u16, modify: bool) -> Message {
    let [hi, lo] = k.to_be_bytes();
    let mac = [
        MARK_PREFIX[0],
        MARK_PREFIX[1],
        MARK_PREFIX[2],
        MARK_PREFIX[3],
        hi,
        lo,
    ];
    let mut m = add_flow(
        0,
        100,
        MARK_COOKIE,
        vec![
            OxmField::EthType(of::Masked::exact(ethertype::IPV4)),
            OxmField::IpProto(of::Masked::exact(17)),
        ],
        vec![
            Instruction::ApplyActions(vec![of::Action::SetField(OxmField::EthSrc(
                of::Masked::exact(mac),
            ))]),
            Instruction::GotoTable { table_id: 1 },
        ],
    );
    if modify && let Message::FlowMod(fm) = &mut m {
        fm.command = FlowModCommand::ModifyStrict;
    }
    m
}

/// Every entry of every table.
fn all_entries() -> FlowStatsRequest {
    FlowStatsRequest::default()
}

/// Flow stats of every entry.
#[must_use]
pub fn flow_stats() -> Message {
    Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Flow(
        all_entries(),
    )))
}

/// Aggregate stats of every entry.
#[must_use]
pub fn aggregate_stats() -> Message {
    Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Aggregate(
        all_entries(),
    )))
}

/// Table stats.
#[must_use]
pub fn table_stats() -> Message {
    Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Table))
}

/// Port stats of every port.
#[must_use]
pub fn port_stats() -> Message {
    Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::PortStats {
        port_no: port::ANY,
    }))
}

/// Table 1 (or `table`) entries forwarding by destination MAC to each host's virtual
/// port: `(mac, port)` pairs.
#[must_use]
pub fn l2_forwarding(table: u8, hosts: &[([u8; 6], u32)]) -> Vec<Message> {
    hosts
        .iter()
        .map(|(mac, p)| {
            add_flow(
                table,
                10,
                0x1200 + u64::from(*p),
                vec![OxmField::EthDst(of::Masked::exact(*mac))],
                output(*p),
            )
        })
        .collect()
}

/// The MAC the lab gives the host at `index` of the topology (`02:00:00:00:HH:LL`,
/// HHLL = index + 1).
#[must_use]
pub fn host_mac(index: u16) -> [u8; 6] {
    let [hi, lo] = (index + 1).to_be_bytes();
    [0x02, 0, 0, 0, hi, lo]
}

#[cfg(test)]
mod tests {
    //! The comparison on made-up observations: each planted difference is reported.
    use super::*;

    fn obs(label: &str) -> Observations {
        Observations {
            label: label.into(),
            hosts: vec!["h1".into(), "h2".into()],
            ..Observations::default()
        }
    }

    /// Host 0 sends `seqs` of flow 0 (1 ms apart) to host 1, which receives them in
    /// the order given with the marks given.
    fn traffic(o: &mut Observations, t0: Instant, sent: &[u32], got: &[(u32, u16)]) {
        for &s in sent {
            let at = t0 + Duration::from_millis(u64::from(s));
            o.sent.push(Sent {
                flow: 0,
                seq: s,
                by: Some(0),
                at,
                done: at + Duration::from_micros(10),
                ok: true,
                candidate: false,
                epoch: 0,
                exact: false,
            });
        }
        for (i, &(s, mark)) in got.iter().enumerate() {
            o.arrivals.push(Arrival {
                host: 1,
                flow: 0,
                seq: s,
                mark,
                at: t0 + Duration::from_millis(100 + i as u64),
            });
        }
    }

    fn reply(step: usize, live: bool, packets: u64) -> Reply {
        Reply {
            step,
            live,
            request: "flow stats".into(),
            items: vec![Item {
                key: "flow cookie=1".into(),
                counters: vec![("packets", Unit::Packets, packets)],
                packet: None,
            }],
        }
    }

    #[test]
    fn equal_runs_have_no_difference() {
        let t0 = Instant::now();
        let (mut a, mut b) = (obs("a"), obs("b"));
        traffic(&mut a, t0, &[0, 1, 2], &[(0, 1), (1, 1), (2, 2)]);
        traffic(&mut b, t0, &[0, 1, 2], &[(0, 1), (1, 2), (2, 2)]);
        a.replies = vec![reply(3, false, 3)];
        b.replies = vec![reply(3, false, 3)];
        let v = compare(&a, &b);
        assert!(v.differences.is_empty(), "{v}");
    }

    #[test]
    fn loss_duplicates_and_reordering_are_reported() {
        let t0 = Instant::now();
        let (mut a, mut b) = (obs("a"), obs("b"));
        traffic(&mut a, t0, &[0, 1, 2, 3], &[(0, 0), (1, 0), (2, 0), (3, 0)]);
        traffic(&mut b, t0, &[0, 1, 2, 3], &[(0, 0), (2, 0), (1, 0), (2, 0)]);
        let text = compare(&a, &b).to_string();
        for want in [
            "flow 0 to h2: 1 packets lost by the migration: 3",
            "flow 0 packet 2 delivered to h2 twice",
            "flow 0 packet 1 reached h2 after packet 2, sent later",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
    }

    #[test]
    fn a_loss_in_the_hosts_own_window_is_downtime() {
        let t0 = Instant::now();
        let (mut a, mut b) = (obs("a"), obs("b"));
        traffic(&mut a, t0, &[0, 1, 2], &[(0, 0), (1, 0), (2, 0)]);
        traffic(&mut b, t0, &[0, 1, 2], &[(0, 0), (2, 0)]);
        b.windows.push(Window {
            host: "h1".into(),
            from: t0 + Duration::from_micros(500),
            to: t0 + Duration::from_micros(1500),
        });
        a.replies = vec![reply(3, false, 3)];
        b.replies = vec![reply(3, false, 2)];
        let v = compare(&a, &b);
        assert!(v.differences.is_empty(), "{v}");
        assert_eq!(v.downtime_losses.len(), 1, "{v}");
        // Not more than was lost.
        b.replies = vec![reply(3, false, 1)];
        assert!(!compare(&a, &b).differences.is_empty());
    }

    #[test]
    fn rule_set_order_violations_are_reported() {
        let t0 = Instant::now();
        let (a, mut b) = (obs("a"), obs("b"));
        // Host 0 sent 0 (processed by rule set 5), then 1 (rule set 4): older.
        traffic(&mut b, t0, &[0, 1], &[(0, 5), (1, 4)]);
        // The same packet seen by two rule sets (a flood and its packet-in).
        b.pin_marks.push((0, 0, 6));
        let mut a2 = a;
        traffic(&mut a2, t0, &[0, 1], &[(0, 5), (1, 5)]);
        let text = compare(&a2, &b).to_string();
        assert!(text.contains("h1 sent flow 0 packet 1, processed by rule set 4, after sending flow 0 packet 0 (rule set 5)"), "{text}");
        assert!(
            text.contains("flow 0 packet 0 was processed by several rule sets: {5, 6}"),
            "{text}"
        );
    }

    #[test]
    fn counters_that_go_down_or_differ_are_reported() {
        let (mut a, mut b) = (obs("a"), obs("b"));
        a.replies = vec![reply(1, true, 5), reply(2, true, 7), reply(3, false, 9)];
        b.replies = vec![reply(1, true, 6), reply(2, true, 4), reply(3, false, 8)];
        b.other_async
            .push(Item::plain("port-status port 1 down".into()));
        let text = compare(&a, &b).to_string();
        for want in [
            "+ packets went down in the reply to step 2: flow cookie=1",
            "- reply to step 3: flow cookie=1 packets=9",
            "+ reply to step 3: flow cookie=1 packets=8",
            "+ asynchronous message (1x): port-status port 1 down",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert!(
            !text.contains("reply to step 1"),
            "live counters are not compared:\n{text}"
        );
    }
}

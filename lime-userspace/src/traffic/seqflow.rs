//! Sequence-numbered UDP flows between lab hosts, with ordinary sockets: what the
//! migration demo and the migration benchmark send while a virtual switch moves.
//!
//! # Design
//! - One sender thread per flow, inside the sending host's namespace, paces datagrams
//!   at a fixed rate (never ahead of `rate` per second; a sender that fell behind by
//!   more than [`MAX_LATE`] goes on from where it is instead of bursting). Each datagram carries its sequence number (8 bytes, big endian) first.
//!   The sender logs, per sequence number, when it was handed to the kernel (or that
//!   the socket refused it: a host whose link is being recreated has no route), and a
//!   count per time bin.
//! - One receiver thread per flow, in the receiving host's namespace, bound to
//!   `0.0.0.0:port` (a host that is re-attached gets its address back on a new link;
//!   the socket survives that) with a deep receive buffer. It counts distinct datagrams,
//!   duplicates (a sequence number seen again) and reorderings (a number below the
//!   highest seen), and arrivals per time bin. It stops once the senders stopped and
//!   the flow was quiet for the linger time.
//! - All flows share one [`Clock`], so bins and send times of every flow line up with
//!   each other and with whatever else the caller times (a migration's phases).
//! - What else a receiving host gets that a flow's rules count (ARP frames, unicast):
//!   [`ArpCounter`], a packet socket in the host's namespace counting incoming unicast
//!   ARP frames per source MAC.
//! - [`rcvbuf_errors`]: datagrams a namespace's UDP sockets dropped for want of buffer
//!   (a receiver on a busy machine falling behind is not the network losing them).
use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::TrafficError;

/// The shared time base of a set of flows: a start instant and a bin width.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    bin: Duration,
}

impl Clock {
    /// A clock starting now, counting in bins of `bin` (at least 1 ms).
    #[must_use]
    pub fn start(bin: Duration) -> Self {
        Self {
            start: Instant::now(),
            bin: bin.max(Duration::from_millis(1)),
        }
    }

    /// Nanoseconds from the start to `t` (0 before it).
    #[must_use]
    pub fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds from the start to now.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        self.ns(Instant::now())
    }

    /// The bin `t` falls in.
    #[must_use]
    pub fn bin_of(&self, t: Instant) -> usize {
        let b = self.bin.as_nanos().max(1);
        usize::try_from(t.saturating_duration_since(self.start).as_nanos() / b).unwrap_or(0)
    }

    /// Bin width in seconds.
    #[must_use]
    pub fn bin_secs(&self) -> f64 {
        self.bin.as_secs_f64()
    }
}

/// One flow to run.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// Namespace of the sending host.
    pub from_netns: String,
    /// Namespace of the receiving host.
    pub to_netns: String,
    /// Receiver's address.
    pub to_ip: Ipv4Addr,
    /// Receiver's UDP port (one per flow).
    pub port: u16,
    /// Datagrams per second.
    pub rate: u64,
    /// UDP payload bytes (at least 8, the sequence number).
    pub payload: usize,
}

/// What a sender did.
#[derive(Debug, Clone, Default)]
pub struct SendLog {
    /// Datagrams the socket accepted.
    pub sent: u64,
    /// Datagrams the socket refused (no route: the host had no link).
    pub failed: u64,
    /// Per sequence number: nanoseconds on the flows' [`Clock`] when it was handed to
    /// the kernel, or `None` if the socket refused it.
    pub sends: Vec<Option<u64>>,
    /// Datagrams sent per bin.
    pub bins: Vec<u64>,
}

/// What a receiver saw.
#[derive(Debug, Clone, Default)]
pub struct RecvLog {
    /// Distinct datagrams received.
    pub received: u64,
    /// Datagrams whose sequence number had been received before.
    pub duplicated: u64,
    /// Datagrams that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// Their sequence numbers, in arrival order.
    pub reordered_seqs: Vec<u64>,
    /// Per sequence number: whether it arrived.
    pub seen: Vec<bool>,
    /// Distinct datagrams received per bin.
    pub bins: Vec<u64>,
}

impl RecvLog {
    /// Sequence numbers that were sent (the socket took them) but never arrived, each
    /// with its send time on the flows' clock.
    pub fn lost<'a>(&'a self, tx: &'a SendLog) -> impl Iterator<Item = (u64, u64)> + 'a {
        tx.sends.iter().enumerate().filter_map(|(seq, t)| {
            let t = (*t)?;
            (!self.seen.get(seq).copied().unwrap_or(false)).then_some((seq as u64, t))
        })
    }
}

fn bump(bins: &mut Vec<u64>, i: usize) {
    if bins.len() <= i {
        bins.resize(i + 1, 0);
    }
    bins[i] += 1;
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TrafficError {
    let what = what.into();
    move |source| TrafficError::Io { what, source }
}

/// A set of running flows.
pub struct Flows {
    clock: Clock,
    stop: Arc<AtomicBool>,
    received: Vec<Arc<AtomicU64>>,
    flows: Vec<(JoinHandle<SendLog>, JoinHandle<RecvLog>)>,
}

impl Flows {
    /// Start every flow's receiver, then every sender. Receivers stop once the flows
    /// were stopped and nothing arrived for `linger`.
    ///
    /// # Errors
    /// A receiver socket that cannot be made, or a namespace that cannot be entered
    /// (flows already started are stopped).
    pub fn start(specs: &[FlowSpec], clock: Clock, linger: Duration) -> Result<Self, TrafficError> {
        let mut this = Self {
            clock,
            stop: Arc::new(AtomicBool::new(false)),
            received: Vec::new(),
            flows: Vec::new(),
        };
        let mut receivers = Vec::new();
        for spec in specs {
            let counter = Arc::new(AtomicU64::new(0));
            match receiver(spec, clock, linger, this.stop.clone(), counter.clone()) {
                Ok(r) => {
                    receivers.push(r);
                    this.received.push(counter);
                }
                Err(e) => {
                    this.stop.store(true, Ordering::Relaxed);
                    for r in receivers {
                        let _ = r.join();
                    }
                    return Err(e);
                }
            }
        }
        for (spec, rx) in specs.iter().zip(receivers) {
            this.flows
                .push((sender(spec.clone(), clock, this.stop.clone()), rx));
        }
        Ok(this)
    }

    /// The flows' clock.
    #[must_use]
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Distinct datagrams received so far, over every flow.
    #[must_use]
    pub fn received_so_far(&self) -> u64 {
        self.received
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Stop the senders, wait for the receivers to drain, and return each flow's logs,
    /// in the order of the specs.
    #[must_use]
    pub fn stop(self) -> Vec<(SendLog, RecvLog)> {
        self.stop.store(true, Ordering::Relaxed);
        self.flows
            .into_iter()
            .map(|(tx, rx)| (tx.join().unwrap_or_default(), rx.join().unwrap_or_default()))
            .collect()
    }
}

fn receiver(
    spec: &FlowSpec,
    clock: Clock,
    linger: Duration,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
) -> Result<JoinHandle<RecvLog>, TrafficError> {
    let port = spec.port;
    let s = lime_lab::netns::run_in_netns(&spec.to_netns, move || -> std::io::Result<_> {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        super::probe::deep_receive_buffer(&s)?;
        Ok(s)
    })?
    .map_err(io_err(format!(
        "a receiver on {}:{port} in {}",
        spec.to_ip, spec.to_netns
    )))?;
    let buf_len = spec.payload.max(8) + 64;
    Ok(std::thread::spawn(move || {
        let mut rx = RecvLog::default();
        let mut max_seq = None;
        let mut buf = vec![0u8; buf_len];
        let mut last = Instant::now();
        loop {
            match s.recv(&mut buf) {
                Ok(n) if n >= 8 => {
                    let now = Instant::now();
                    last = now;
                    let seq = u64::from_be_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                    let Ok(i) = usize::try_from(seq) else {
                        continue;
                    };
                    if rx.seen.len() <= i {
                        rx.seen.resize(i + 1, false);
                    }
                    if rx.seen[i] {
                        rx.duplicated += 1;
                        continue;
                    }
                    rx.seen[i] = true;
                    rx.received += 1;
                    counter.fetch_add(1, Ordering::Relaxed);
                    bump(&mut rx.bins, clock.bin_of(now));
                    if max_seq.is_some_and(|m| seq < m) {
                        rx.reordered += 1;
                        rx.reordered_seqs.push(seq);
                    }
                    max_seq = Some(max_seq.map_or(seq, |m: u64| m.max(seq)));
                }
                Ok(_) => {}
                Err(_) => {
                    if stop.load(Ordering::Relaxed) && last.elapsed() >= linger {
                        break;
                    }
                }
            }
        }
        rx
    }))
}

/// How far behind its schedule a sender may fall before it stops catching up.
pub const MAX_LATE: Duration = Duration::from_millis(5);

fn sender(spec: FlowSpec, clock: Clock, stop: Arc<AtomicBool>) -> JoinHandle<SendLog> {
    std::thread::spawn(move || {
        let ns = spec.from_netns.clone();
        lime_lab::netns::run_in_netns(&ns, move || {
            let mut log = SendLog::default();
            let Ok(s) = UdpSocket::bind("0.0.0.0:0") else {
                return log;
            };
            let rate = spec.rate.max(1) as f64;
            let mut buf = vec![0u8; spec.payload.max(8)];
            let mut start = Instant::now();
            let mut seq: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                // Pace: never ahead of `rate` per second; a sender more than
                // MAX_LATE behind (descheduled on a busy machine) goes on from now
                // instead of sending what it missed in one burst.
                let due = Duration::from_secs_f64(seq as f64 / rate);
                let elapsed = start.elapsed();
                if due > elapsed {
                    std::thread::sleep((due - elapsed).max(Duration::from_micros(50)));
                    continue;
                }
                if elapsed - due > MAX_LATE {
                    start += elapsed - due;
                }
                buf[..8].copy_from_slice(&seq.to_be_bytes());
                let now = Instant::now();
                if s.send_to(&buf, (spec.to_ip, spec.port)).is_ok() {
                    log.sent += 1;
                    log.sends.push(Some(clock.ns(now)));
                    bump(&mut log.bins, clock.bin_of(now));
                } else {
                    log.failed += 1;
                    log.sends.push(None);
                }
                seq += 1;
            }
            log
        })
        .unwrap_or_default()
    })
}

/// UDP datagrams the sockets of the namespaces in `netns` dropped for want of buffer
/// (`RcvbufErrors` in each namespace's `/proc/net/snmp`), summed; namespaces that
/// cannot be read count 0.
#[must_use]
pub fn rcvbuf_errors(netns: &[String]) -> u64 {
    netns
        .iter()
        .filter_map(|ns| {
            let text = lime_lab::netns::run_in_netns(ns, || {
                std::fs::read_to_string("/proc/thread-self/net/snmp")
            })
            .ok()?
            .ok()?;
            let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
            let (names, values) = (udp.next()?, udp.next()?);
            let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
            values.split_whitespace().nth(i)?.parse::<u64>().ok()
        })
        .sum()
}

/// Counts the unicast ARP frames a host's namespace receives, per source MAC, and
/// sends, per destination MAC, until stopped (a packet socket of the namespace: it
/// sees every interface there, including a link recreated while it runs).
pub struct ArpCounter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ArpCounts>,
}

/// What an [`ArpCounter`] counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArpCounts {
    /// Unicast ARP frames received, per source MAC.
    pub received: BTreeMap<[u8; 6], u64>,
    /// Unicast ARP frames sent (handed to a link), per destination MAC.
    pub sent: BTreeMap<[u8; 6], u64>,
}

impl ArpCounter {
    /// Start counting in namespace `netns`.
    ///
    /// # Errors
    /// The namespace cannot be entered or the packet socket not opened (not root).
    pub fn start(netns: &str) -> Result<Self, TrafficError> {
        let fd = lime_lab::netns::run_in_netns(netns, || -> std::io::Result<OwnedFd> {
            let proto = i32::from((libc::ETH_P_ARP as u16).to_be());
            // SAFETY: plain socket(2) call; the result is checked.
            let fd = unsafe {
                libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto)
            };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: fd is a fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            // SAFETY: a valid socket and a timeval option value of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    std::ptr::from_ref(&tv).cast(),
                    libc::socklen_t::try_from(std::mem::size_of::<libc::timeval>()).unwrap_or(16),
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(fd)
        })?
        .map_err(io_err(format!("an ARP packet socket in {netns}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut counts = ArpCounts::default();
            let mut buf = [0u8; 128];
            while !halt.load(Ordering::Relaxed) {
                // SAFETY: a zeroed sockaddr_ll is valid; recvfrom writes at most `len`.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>())
                    .unwrap_or(20);
                // SAFETY: buf and sll are valid for the sizes given.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        std::ptr::from_mut(&mut sll).cast(),
                        &mut len,
                    )
                };
                let Ok(n) = usize::try_from(n) else {
                    continue;
                };
                if n < 14 || buf[0] & 1 == 1 {
                    continue;
                }
                let mut mac = [0u8; 6];
                if sll.sll_pkttype == libc::PACKET_OUTGOING {
                    mac.copy_from_slice(&buf[..6]);
                    *counts.sent.entry(mac).or_default() += 1;
                } else {
                    mac.copy_from_slice(&buf[6..12]);
                    *counts.received.entry(mac).or_default() += 1;
                }
            }
            counts
        });
        Ok(Self { stop, thread })
    }

    /// Stop; what it counted.
    #[must_use]
    pub fn stop(self) -> ArpCounts {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_are_the_sent_sequence_numbers_that_never_arrived() {
        let tx = SendLog {
            sent: 4,
            failed: 1,
            sends: vec![Some(10), Some(20), None, Some(40), Some(50)],
            bins: vec![],
        };
        let rx = RecvLog {
            received: 2,
            seen: vec![true, false, false, true],
            ..RecvLog::default()
        };
        assert_eq!(rx.lost(&tx).collect::<Vec<_>>(), [(1, 20), (4, 50)]);
    }

    #[test]
    fn clock_bins() {
        let c = Clock::start(Duration::from_millis(50));
        assert_eq!(c.bin_of(c.start + Duration::from_millis(120)), 2);
        assert_eq!(c.bin_of(c.start), 0);
        assert_eq!(c.ns(c.start + Duration::from_micros(3)), 3000);
        assert!((c.bin_secs() - 0.05).abs() < 1e-12);
    }
}

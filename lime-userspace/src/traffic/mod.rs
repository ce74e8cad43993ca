//! The project's own traffic generator, sink and probes, for line-rate measurements in
//! network-namespace labs (Debian's xdp-tools do not run on this kernel, and it has no
//! pktgen).
//!
//! # Design
//! - **Generator** ([`generator`]): frames are made in a sender namespace with
//!   `BPF_PROG_TEST_RUN` in live-frames mode. The program run is `lime_floor` of a
//!   datapath object of the generator's own, whose floor target is the sender's veth: every
//!   frame "arrives" on the sender namespace's loopback and is redirected out of its veth,
//!   exactly as a frame a VM sent would leave it. One thread per sender, each pinned to
//!   its own CPU (`sched_setaffinity`); the frames of several flows are sent in turn, a
//!   chunk of identical frames per `BPF_PROG_TEST_RUN` call; an optional rate limit paces
//!   the chunks; tx and rx are sampled every second. Each call costs the kernel a page
//!   pool set up and torn down (the teardown waits for an RCU grace period: tens of ms
//!   on a loaded machine), so chunks must be large (the benchmark uses 262 144 frames);
//!   rates are taken over the time the kernel spent in the calls (see
//!   [`Generator::send`]), and with small chunks a rate limit is reached only if the
//!   calls' overhead leaves room for it.
//! - **Sink** ([`Sink`]): `lime_sink` on the receiver's veth, in a datapath object of its
//!   own, counts every frame arriving there (under its ingress ifindex) and drops it. A
//!   measurement's rate is what the sink counted, never what was offered; losses are
//!   reported, not hidden.
//! - **Frames** ([`frame`]): Ethernet/IPv4 or IPv6/UDP frames of any length from 64 to
//!   1514 bytes with correct lengths and checksums.
//! - **Probes** ([`probe`]): round-trip latency percentiles (a UDP ping-pong between two
//!   namespaces, ordinary sockets) and TCP throughput (iperf3).
//! - **Sequenced flows** ([`seqflow`]): paced, sequence-numbered UDP flows between lab
//!   hosts with ordinary sockets, counting what arrived, duplicates and reorderings,
//!   and logging sends and arrivals over time: the traffic of the migration demo and
//!   benchmark.
//!
//! Frame sizes are the bytes handed to the kernel (the Ethernet frame without its FCS);
//! Gbit/s are those bytes per second, times eight.
use std::path::{Path, PathBuf};

use crate::datapath::{Datapath, DatapathError};

pub mod frame;
pub mod generator;
pub mod probe;
pub mod seqflow;

pub use generator::{Generator, Report, Second, SendConfig};

/// Errors of the traffic tools.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The datapath object used as generator or sink failed.
    #[error("{what}: {source}")]
    Datapath {
        /// What was being done.
        what: String,
        /// Cause (boxed: it is large).
        #[source]
        source: Box<DatapathError>,
    },
    /// Namespace trouble.
    #[error("network namespace: {0}")]
    Netns(#[from] lime_lab::LabError),
    /// A frame that cannot be built or resized.
    #[error("frame: {0}")]
    Frame(String),
    /// Bad parameters.
    #[error("invalid traffic parameters: {0}")]
    Config(String),
    /// A socket or process failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A probe's tool gave no usable answer.
    #[error("{tool}: {detail}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// What went wrong.
        detail: String,
    },
}

fn dp_err(what: impl Into<String>) -> impl FnOnce(DatapathError) -> TrafficError {
    let what = what.into();
    move |source| TrafficError::Datapath {
        what,
        source: Box::new(source),
    }
}

/// A counting sink: `lime_sink` attached to one interface, in a datapath object of its
/// own (pins under `pin_root/<name>`), removed on drop.
pub struct Sink {
    dp: Datapath,
    ifindex: u32,
    pin_dir: PathBuf,
    netns: String,
    ifname: String,
}

impl Sink {
    /// Attach a sink to `ifname` in namespace `netns`.
    ///
    /// # Errors
    /// If the object cannot be loaded or attached.
    pub fn attach(
        netns: &str,
        ifname: &str,
        pin_root: &Path,
        name: &str,
    ) -> Result<Self, TrafficError> {
        let ifindex = lime_lab::netns::ifindex(netns, ifname)?;
        let dp = Datapath::load(name, Some(netns), pin_root)
            .map_err(dp_err(format!("loading the sink object {name}")))?;
        let mut this = Self {
            dp,
            ifindex,
            pin_dir: pin_root.join(name),
            netns: netns.to_owned(),
            ifname: ifname.to_owned(),
        };
        this.dp
            .attach_sink(None, ifname, ifindex)
            .map_err(dp_err(format!("attaching the sink to {netns}/{ifname}")))?;
        Ok(this)
    }

    /// Frames counted so far.
    ///
    /// # Errors
    /// If the counters cannot be read.
    pub fn received(&self) -> Result<u64, TrafficError> {
        self.dp
            .port_stats(self.ifindex)
            .map(|s| s.rx_packets)
            .map_err(dp_err("reading the sink's counters"))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Removing the pins releases the link: the program is detached.
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        wait_detached(&self.netns, &self.ifname);
    }
}

/// Wait (up to 2 s) until `ifname` in `netns` runs no XDP program: the kernel releases
/// a link whose last reference is gone from a workqueue, so an interface is free again
/// only a little after its pin was removed.
pub fn wait_detached(netns: &str, ifname: &str) {
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(2) {
        match lime_lab::netns::ip(&["-n", netns, "link", "show", "dev", ifname]) {
            Ok(out) if out.contains("prog/xdp") => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

/// Attach `lime_pass` to interfaces (each `(netns, ifname)`) so they accept redirected
/// frames, through a datapath object of its own; removed on drop.
pub struct PassGuard {
    _dp: Datapath,
    pin_dir: PathBuf,
    ifaces: Vec<(String, String)>,
}

impl PassGuard {
    /// Attach the pass program to every listed interface.
    ///
    /// # Errors
    /// If the object cannot be loaded or attached.
    pub fn attach(
        ifaces: &[(&str, &str)],
        pin_root: &Path,
        name: &str,
    ) -> Result<Self, TrafficError> {
        let mut dp = Datapath::load(name, None, pin_root)
            .map_err(dp_err(format!("loading the pass object {name}")))?;
        let pin_dir = pin_root.join(name);
        let guard_dir = pin_dir.clone();
        let fail = move |e| {
            let _ = std::fs::remove_dir_all(&guard_dir);
            e
        };
        for (ns, ifname) in ifaces {
            let ifindex = lime_lab::netns::ifindex(ns, ifname).map_err(|e| fail(e.into()))?;
            dp.attach_pass(ns, ifname, ifindex)
                .map_err(|e| fail(dp_err(format!("attaching pass to {ns}/{ifname}"))(e)))?;
        }
        Ok(Self {
            _dp: dp,
            pin_dir,
            ifaces: ifaces
                .iter()
                .map(|(n, i)| ((*n).to_owned(), (*i).to_owned()))
                .collect(),
        })
    }
}

impl Drop for PassGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        for (ns, ifname) in &self.ifaces {
            wait_detached(ns, ifname);
        }
    }
}

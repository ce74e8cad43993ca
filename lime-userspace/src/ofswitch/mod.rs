//! The OpenFlow 1.3 switch: every virtual switch of a fabric looks, to its tenant's
//! controllers, like one OpenFlow 1.3 switch with its own datapath id and ports.
//!
//! # Design
//!
//! ```text
//!  controller ──TCP── conn task ─┐             ┌── Fabric (datapaths of every physical switch)
//!  controller ──TCP── conn task ─┼─ Cmd ──▶ core thread
//!  packet-in reader (per phys.) ─┤   (mpsc)    └── VswitchOf per virtual switch:
//!  control socket (lime CLI) ────┘                 config, roles, async, ports, flow table
//! ```
//!
//! - **One owner.** The [`core`] thread owns the [`Fabric`] and each virtual switch's
//!   OpenFlow state ([`state::VswitchOf`]: datapath id, ports, switch config, connections
//!   with role and async config, the [`VirtualSwitch`](crate::vswitch::VirtualSwitch)
//!   flow table, fail-standalone state). Everything else sends it [`core::Cmd`]s, so all
//!   state changes are serialized, a BARRIER_REPLY leaves only after everything before
//!   it is in the kernel, and the migration engine can plug in as one more command
//!   source that moves a `VswitchOf`.
//! - **Connections** ([`conn`], tokio) do framing, HELLO negotiation and ECHO, and
//!   answer decode errors on the offending xid; connection-fatal errors end only that
//!   connection. A connection belongs to exactly one virtual switch: it can see and
//!   change nothing else (tenant isolation), and packet-ins of a virtual switch go only
//!   to its controllers.
//! - **Flow-mods** are translated ([`translate`]) to the rule model and applied in
//!   batches: consecutive flow-mods of a virtual switch are one datapath version (one
//!   publish); order is kept and a failing flow-mod changes nothing. The old version
//!   is reclaimed later, off the flow-mod path (the core's reclaim tick; see
//!   [`core`]'s "Deferred reclaim"): FLOW_REMOVED for a delete goes out then, before
//!   the BARRIER_REPLY of any barrier behind it.
//! - **Packet-in**: one thread per physical switch drains its datapath's perf buffers;
//!   the core turns each record into PACKET_IN (full frame or the action's max_len,
//!   OFP_NO_BUFFER) for the controllers whose role and async config want it.
//! - **Packet-out** applies header actions to the frame in userspace, expands
//!   FLOOD/ALL/IN_PORT to virtual ports, and injects at the physical switch where the
//!   in_port lives; OFPP_TABLE runs the frame through the flow tables.
//! - **Timeouts**: every [`core::SWEEP`] the core expires entries past their hard
//!   timeout or idle for their idle timeout (the datapath's last-hit time), removes
//!   them as one version and sends FLOW_REMOVED with the final counters.
//! - **Port status**: every [`core::LINK_CHECK`] the core reads each virtual port's link
//!   (flags of the switch-side interface, inside its namespace) and sends PORT_STATUS
//!   (MODIFY with LINK_DOWN / PORT_DOWN, DELETE, ADD) when it changed.
//! - **Fail mode**: `secure` keeps the table as it is; `standalone` with no controller
//!   connected installs a table-miss → CONTROLLER entry and the core forwards those
//!   packets as a learning switch (flooding unknown destinations), until a controller
//!   connects.
//!
//! # Layout
//! - [`translate`]: OpenFlow ↔ rule model, and the error table ([`translate::OfError`]).
//! - [`state`]: per-virtual-switch OpenFlow state.
//! - [`core`]: the core thread and every message handler.
//! - [`conn`]: tokio connection loop, active and passive targets.
//! - [`features`]: the TABLE_FEATURES description of the tables.
//! - [`link`]: port link state (for PORT_STATUS), read inside each switch's namespace.
//! - [`dump`]: `lime dump-flows` records and their `ovs-ofctl` text form.
//! - [`control`]: the daemon's control socket (JSON lines).
//! - [`status`]: what `lime status` shows, and the view kept while a migration runs.
//! - [`client`]: a scripted controller-side connection (tests, benchmarks).
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use lime_lab::Controller;
use tokio::sync::watch;

use crate::fabric::Fabric;

pub mod client;
pub mod conn;
pub mod control;
pub mod core;
pub mod dump;
pub mod features;
pub mod link;
pub mod state;
pub mod status;
pub mod timers;
pub mod translate;

pub use dump::FlowDump;

/// Pages of each CPU's packet-in perf buffer.
pub const PACKET_IN_PAGES: usize = 512;

/// Errors starting or stopping the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The async runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A passive controller target could not be bound.
    #[error("listening on {target} for {vswitch}: {source}")]
    Listen {
        /// Virtual switch.
        vswitch: String,
        /// Target.
        target: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A packet-in reader could not be opened.
    #[error("{0}")]
    Datapath(#[from] crate::datapath::DatapathError),
    /// A thread could not be spawned.
    #[error("spawning a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The core thread panicked.
    #[error("the switch core panicked")]
    CorePanicked,
    /// The core is gone.
    #[error("the switch core is not running")]
    CoreGone,
}

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Echo keepalive interval; a peer silent for three intervals is dropped.
    pub echo_interval: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            echo_interval: Duration::from_secs(5),
        }
    }
}

/// A handle to talk to the core from anywhere (control socket, tests, benchmarks).
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<core::Cmd>,
    live: status::Live,
}

/// What makes an agent's migrations durable ([`Agent::start_with`]).
#[derive(Default)]
pub struct Durability {
    /// The journal migrations are written to.
    pub journal: Option<crate::migration::journal::Journal>,
    /// A migration a crashed control plane left unfinished (its snapshot gives the
    /// tables back).
    pub recovery: Option<crate::migration::journal::Recovery>,
}

impl CoreHandle {
    /// The flow entries of a virtual switch with their current counters.
    ///
    /// # Errors
    /// Unknown virtual switch, or the core is gone.
    pub fn dump_flows(&self, vswitch: &str) -> Result<Vec<FlowDump>, String> {
        let (reply, rx) = mpsc::channel();
        self.tx
            .send(core::Cmd::DumpFlows {
                vswitch: vswitch.to_owned(),
                reply,
            })
            .map_err(|_| "the switch core is not running".to_owned())?;
        rx.recv()
            .map_err(|_| "the switch core is not running".to_owned())?
    }

    /// Run `f` on the fabric inside the core (serialized with every OpenFlow message)
    /// and return its result.
    ///
    /// # Errors
    /// The core is gone.
    pub fn with_fabric<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Fabric) -> R + Send + 'static,
    ) -> Result<R, String> {
        let (reply, rx) = mpsc::channel();
        self.tx
            .send(core::Cmd::WithFabric(Box::new(move |fabric| {
                let _ = reply.send(f(fabric));
            })))
            .map_err(|_| "the switch core is not running".to_owned())?;
        rx.recv()
            .map_err(|_| "the switch core is not running".to_owned())
    }

    /// Move every host of a virtual switch to physical switch `to`, serialized with
    /// every OpenFlow message: one report per source switch.
    ///
    /// # Errors
    /// Unknown names, nothing to move, a failing step (see [`crate::migration`]), or
    /// the core is gone.
    pub fn migrate(
        &self,
        vswitch: &str,
        to: &str,
        strategy: crate::migration::Strategy,
    ) -> Result<Vec<crate::migration::Report>, String> {
        self.migrate_with_progress(vswitch, to, strategy, |_| {})
    }

    /// [`CoreHandle::migrate`], telling `progress` each phase, host moved and leg done
    /// as it happens.
    ///
    /// # Errors
    /// As [`CoreHandle::migrate`].
    pub fn migrate_with_progress(
        &self,
        vswitch: &str,
        to: &str,
        strategy: crate::migration::Strategy,
        mut progress: impl FnMut(crate::migration::Progress),
    ) -> Result<Vec<crate::migration::Report>, String> {
        let (reply, rx) = mpsc::channel();
        let (events, ev_rx) = mpsc::channel();
        self.tx
            .send(core::Cmd::Migrate {
                vswitch: vswitch.to_owned(),
                to: to.to_owned(),
                strategy,
                reply,
                events: Some(events),
            })
            .map_err(|_| "the switch core is not running".to_owned())?;
        // The core drops the sender when the migration is over.
        for ev in ev_rx {
            progress(ev);
        }
        rx.recv()
            .map_err(|_| "the switch core is not running".to_owned())?
    }

    /// Where everything is: each virtual switch's copies, ports and controllers, and
    /// the migration in progress (answered from the live view while one runs).
    ///
    /// # Errors
    /// The core is gone.
    pub fn status(&self) -> Result<status::Status, String> {
        if let Some(st) = status::during_migration(&self.live) {
            return Ok(st);
        }
        let (reply, rx) = mpsc::channel();
        self.tx
            .send(core::Cmd::Status { reply })
            .map_err(|_| "the switch core is not running".to_owned())?;
        // A request queued behind a migration is answered from the live view as soon
        // as the migration shows there.
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(st) => return Ok(st),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(st) = status::during_migration(&self.live) {
                        return Ok(st);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the switch core is not running".to_owned());
                }
            }
        }
    }
}

/// The running OpenFlow agent of a fabric.
pub struct Agent {
    handle: CoreHandle,
    core: Option<JoinHandle<Fabric>>,
    readers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
    listening: Vec<(String, SocketAddr)>,
    lab: lime_lab::LabState,
}

/// The OpenFlow ports of a virtual switch: one per host, then one per virtual link end
/// (named `link:<peer vswitch>:<peer port>` where a host's name would be), each on the
/// physical switch and switch-side interface that hold it now.
pub(crate) fn ports_of(fabric: &Fabric, vs: &lime_lab::VSwitchSpec) -> Vec<state::VPort> {
    let st = fabric.lab().state();
    let vport = |port_no, host: String, sp: &lime_lab::SwitchPort| state::VPort {
        port_no,
        host,
        switch: sp.switch.clone(),
        ifindex: sp.ifindex,
        ifname: sp.ifname.clone(),
        mac: sp.mac.octets(),
        link: state::Link::Live,
        before: lime_common::stats::PortStats::default(),
    };
    let hosts = vs.ports.iter().filter_map(|p| {
        st.host(&p.host)?;
        Some(vport(p.port, p.host.clone(), st.host_port(&p.host)?))
    });
    let links = st
        .topology
        .vlink_ends_of(&vs.name)
        .filter_map(|(end, other)| {
            let sp = st.vlink_port(&vs.name, end.port)?;
            Some(vport(
                end.port,
                format!("link:{}:{}", other.vswitch, other.port),
                sp,
            ))
        });
    hosts.chain(links).collect()
}

impl Agent {
    /// Start the agent on `fabric`: the core thread, a packet-in reader per physical
    /// switch, and for every virtual switch its controller targets from the topology.
    ///
    /// # Errors
    /// A passive target that cannot be bound, a packet-in reader that cannot be opened,
    /// or the runtime/threads failing to start. Nothing keeps running then.
    pub fn start(fabric: Fabric, opts: &AgentOptions) -> Result<Self, AgentError> {
        Self::start_with(fabric, opts, Durability::default())
    }

    /// [`Agent::start`], journaling migrations and first finishing the one a crashed
    /// control plane left (see [`crate::migration::journal`]): its tables come from
    /// the journal's snapshot.
    ///
    /// # Errors
    /// As [`Agent::start`].
    pub fn start_with(
        mut fabric: Fabric,
        opts: &AgentOptions,
        durability: Durability,
    ) -> Result<Self, AgentError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lime-of")
            .enable_all()
            .build()
            .map_err(AgentError::Runtime)?;
        let lab = fabric.lab().state().clone();
        let topo = lab.topology.clone();
        let mut vswitches = Vec::new();
        for vs in &topo.vswitches {
            let dp_id = fabric.vswitch_id(&vs.name).unwrap_or(0);
            let mut v = state::VswitchOf::new(vs, dp_id, ports_of(&fabric, vs));
            if let Some(r) = &durability.recovery
                && let Some(t) = r.unfinished.snapshot.table(&vs.name)
            {
                v.table = t.restore(r.unfinished.snapshot.since_ms());
            }
            vswitches.push(v);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<core::Cmd>();
        let mut readers = Vec::new();
        let switches: Vec<String> = fabric.datapaths().map(|(s, _)| s.clone()).collect();
        for sw in switches {
            let Some(dp) = fabric.datapath_mut(&sw) else {
                continue;
            };
            // 2 MiB per CPU: absorbs bursts of ~20 000 minimum-size packet-ins.
            let mut reader =
                crate::datapath::packet_io::PacketInReader::open(dp.kernel_mut(), PACKET_IN_PAGES)?;
            let (tx, stop) = (tx.clone(), stop.clone());
            let h = std::thread::Builder::new()
                .name(format!("lime-pin-{sw}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match reader.poll(Duration::from_millis(50)) {
                            Ok(p) if p.is_empty() => {}
                            Ok(p) => {
                                if tx.send(core::Cmd::PacketIns(p)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                eprintln!("lime: packet-in reader {sw}: {e}");
                                return;
                            }
                        }
                    }
                    if reader.lost() > 0 {
                        eprintln!(
                            "lime: {sw}: {} packet-ins lost (perf buffer full)",
                            reader.lost()
                        );
                    }
                })
                .map_err(AgentError::Thread)?;
            readers.push(h);
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ids = Arc::new(AtomicU64::new(1));
        let mut listening = Vec::new();
        let mut started: Result<(), AgentError> = Ok(());
        for (i, v) in vswitches.iter().enumerate() {
            let ctx = conn::ConnCtx {
                core: tx.clone(),
                vswitch: i,
                name: v.name.clone(),
                ids: ids.clone(),
                shutdown: shutdown_rx.clone(),
                echo: opts.echo_interval,
            };
            for c in &v.controllers {
                match c.clone() {
                    Controller::Tcp { host, port } => {
                        runtime.spawn(conn::active(host, port, ctx.clone()));
                    }
                    Controller::Ptcp { port, addr } => {
                        match runtime.block_on(conn::passive(port, addr, ctx.clone())) {
                            Ok((local, accept)) => {
                                listening.push((v.name.clone(), local));
                                runtime.spawn(accept);
                            }
                            Err(source) => {
                                started = Err(AgentError::Listen {
                                    vswitch: v.name.clone(),
                                    target: c.to_string(),
                                    source,
                                });
                            }
                        }
                    }
                }
            }
        }
        let live = status::Live::default();
        let core = core::Core::new(fabric, vswitches).durable(
            durability.journal,
            durability.recovery,
            live.clone(),
        );
        let core = std::thread::Builder::new()
            .name("lime-core".into())
            .spawn(move || core.run(&rx))
            .map_err(AgentError::Thread)?;
        let agent = Self {
            handle: CoreHandle { tx, live },
            core: Some(core),
            readers,
            stop,
            shutdown,
            runtime: Some(runtime),
            listening,
            lab,
        };
        match started {
            Ok(()) => Ok(agent),
            Err(e) => {
                drop(agent.shutdown());
                Err(e)
            }
        }
    }

    /// A handle to the core.
    #[must_use]
    pub fn handle(&self) -> CoreHandle {
        self.handle.clone()
    }

    /// The runtime the agent's tasks run on (the control socket runs there too).
    ///
    /// # Panics
    /// Never while the agent is running.
    #[must_use]
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime runs until shutdown")
    }

    /// The lab the agent serves (hosts, addresses, namespaces).
    #[must_use]
    pub fn lab_state(&self) -> &lime_lab::LabState {
        &self.lab
    }

    /// Addresses bound for passive (`ptcp:`) targets, by virtual switch.
    #[must_use]
    pub fn listening(&self) -> &[(String, SocketAddr)] {
        &self.listening
    }

    /// Stop everything and hand the fabric back (to tear it down or keep it).
    ///
    /// # Errors
    /// The core thread panicked (the fabric is then torn down by its drop).
    pub fn shutdown(mut self) -> Result<Fabric, AgentError> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<Fabric, AgentError> {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.stop.store(true, Ordering::Relaxed);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let _ = self.handle.tx.send(core::Cmd::Shutdown);
        match self.core.take() {
            Some(h) => h.join().map_err(|_| AgentError::CorePanicked),
            None => Err(AgentError::CoreGone),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.core.is_some() {
            // The fabric's own drop tears the lab down.
            drop(self.stop_all());
        }
    }
}

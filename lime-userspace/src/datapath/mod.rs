//! The datapath driver: one [`Datapath`] per physical switch.
//!
//! It loads LIME's eBPF object with its maps pinned under
//! `/sys/fs/bpf/lime/<physical switch>/` (so a restarted control plane finds the running
//! datapath's maps instead of replacing them), attaches the XDP program to the switch's
//! ports inside its network namespace, and installs rules as versioned updates: rules are
//! staged at the next table version and made visible with one atomic publish.
//!
//! # Layout
//! - [`store`]: the userspace mirror of the rule maps; decides staging, publishing and
//!   reclaiming; no I/O, unit-tested without a kernel.
//! - [`packet_io`]: packet-in (perf buffers) and packet-out (live-frame injection).
//! - [`kernel`]: the only module that makes syscalls (load, attach, map writes,
//!   counters, `BPF_PROG_TEST_RUN`), with `batch`, the raw batched map writes aya does
//!   not wrap (consecutive writes to one map go to the kernel as one system call).
//! - [`hits`]: when each rule last matched, derived from its counters (the datapath
//!   keeps no time).
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use lime_common::{
    port::{PortInfo, VportInfo, VportKey, port_flags},
    stats::{PortStats, RuleStats},
};

use crate::flow::{FlowError, Rule};
pub use lime_lab::DatapathMode;

mod batch;
pub mod hits;
pub mod kernel;
pub mod packet_io;
pub mod store;

pub use kernel::{Kernel, PIN_ROOT, TestRun};
pub use store::{MapOp, RuleStore};

/// How long after a publish the previous version may still be in use by a packet being
/// classified. An XDP program runs for microseconds inside one RCU read-side section;
/// this bound is three orders of magnitude above that.
pub const GRACE: Duration = Duration::from_millis(10);

/// Errors of the datapath driver.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The rule is not valid OpenFlow or not supported.
    #[error("invalid rule: {0}")]
    Rule(#[from] FlowError),
    /// A table, id space or bucket is full.
    #[error("datapath table full: {what}")]
    TableFull {
        /// What ran out.
        what: &'static str,
    },
    /// The virtual switch is not configured on this datapath.
    #[error("virtual switch {vswitch} is not on this datapath")]
    NoVswitch {
        /// Datapath-local virtual switch id.
        vswitch: u16,
    },
    /// A version jump was asked of a virtual switch that still has rules (or staged
    /// changes) here.
    #[error(
        "virtual switch {vswitch} still has rules here; only an empty one can renumber its versions"
    )]
    NotEmpty {
        /// Datapath-local virtual switch id.
        vswitch: u16,
    },
    /// No such (visible) datapath rule.
    #[error("no datapath rule {rule_id}")]
    NoRule {
        /// Rule id.
        rule_id: u32,
    },
    /// A kernel operation failed.
    #[error("{what}: {detail}")]
    Kernel {
        /// What was being done.
        what: String,
        /// The kernel's or aya's answer.
        detail: String,
    },
    /// An I/O error.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Network namespace trouble.
    #[error("network namespace: {0}")]
    Netns(#[from] lime_lab::LabError),
}

/// Final counters of datapath rules retired by a reclaim.
pub type Retired = Vec<(u32, RuleStats)>;

/// The datapath of one physical switch.
pub struct Datapath {
    name: String,
    netns: Option<String>,
    kernel: Kernel,
    store: RuleStore,
    published: std::collections::HashMap<u16, Instant>,
    mode: DatapathMode,
}

impl Datapath {
    /// Load a datapath named `name` whose ports live in network namespace `netns`
    /// (`None`: the current one). Maps are pinned under `pin_root/name`.
    pub fn load(name: &str, netns: Option<&str>, pin_root: &Path) -> Result<Self, DatapathError> {
        let pin_dir: PathBuf = pin_root.join(name);
        // A fresh datapath starts from empty maps: remove stale pins of the same name.
        if pin_dir.exists() {
            let _ = std::fs::remove_dir_all(&pin_dir);
        }
        let kernel = Kernel::load(&pin_dir).inspect_err(|_| {
            // Leave no half-made pins behind.
            let _ = std::fs::remove_dir_all(&pin_dir);
        })?;
        Ok(Self {
            name: name.to_owned(),
            netns: netns.map(str::to_owned),
            kernel,
            store: RuleStore::new(),
            published: std::collections::HashMap::new(),
            mode: DatapathMode::Xdp,
        })
    }

    /// Re-attach to a datapath that is already running (a restarted control plane): open
    /// its pinned maps under `pin_root/name`, leave the attached programs and the traffic
    /// alone, and rebuild the rule mirror from the maps.
    pub fn open(name: &str, netns: Option<&str>, pin_root: &Path) -> Result<Self, DatapathError> {
        let pin_dir: PathBuf = pin_root.join(name);
        if !pin_dir.join(lime_common::names::MAP_RULES).exists() {
            return Err(DatapathError::Kernel {
                what: format!("opening datapath {name}"),
                detail: format!("no pinned maps under {}", pin_dir.display()),
            });
        }
        let kernel = Kernel::load(&pin_dir)?;
        let maps = kernel.read_rule_maps()?;
        let store = RuleStore::rebuild(&maps.vswitches, &maps.lists, &maps.masks, &maps.buckets);
        Ok(Self {
            name: name.to_owned(),
            netns: netns.map(str::to_owned),
            kernel,
            store,
            published: std::collections::HashMap::new(),
            mode: DatapathMode::Xdp,
        })
    }

    /// Name (the physical switch's).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernel layer, for counters and test runs.
    #[must_use]
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Mutable kernel layer.
    pub fn kernel_mut(&mut self) -> &mut Kernel {
        &mut self.kernel
    }

    /// The rule mirror.
    #[must_use]
    pub fn store(&self) -> &RuleStore {
        &self.store
    }

    /// Where this datapath runs LIME on host ports (set before attaching ports).
    pub fn set_mode(&mut self, mode: DatapathMode) {
        self.mode = mode;
    }

    /// Where this datapath runs LIME on host ports.
    #[must_use]
    pub fn mode(&self) -> DatapathMode {
        self.mode
    }

    /// Attach LIME's programs to interface `ifindex` (in this datapath's namespace) as
    /// the given port: in XDP mode `lime_xdp`, and `lime_tc` on host ports for packets
    /// needing several copies; in TC mode `lime_tc` alone on host ports (no XDP program:
    /// the host's veth keeps its segmentation offloads), both on underlay ports (XDP
    /// decapsulates and hands the frame to TC), with the port flagged
    /// [`port_flags::TC`].
    pub fn attach_port(
        &mut self,
        ifname: &str,
        ifindex: u32,
        mut port: PortInfo,
    ) -> Result<(), DatapathError> {
        let tc_mode = self.mode == DatapathMode::Tc;
        if tc_mode {
            port.flags |= port_flags::TC;
        }
        self.kernel.set_port(ifindex, port)?;
        let link = format!("link-{ifname}");
        let tc_link = format!("tc-{ifname}");
        let host = port.kind == lime_common::port::kind::HOST;
        let kernel = &mut self.kernel;
        let mut attach = move || -> Result<(), DatapathError> {
            if !(tc_mode && host) {
                kernel.attach(lime_common::names::PROG_XDP, ifindex, &link)?;
            }
            if host || tc_mode {
                kernel.attach_tc(ifname, &tc_link)?;
            }
            Ok(())
        };
        match &self.netns {
            Some(ns) => lime_lab::netns::run_in_netns(ns, attach)?,
            None => attach(),
        }
    }

    /// Attach the pass-only program to an interface in another namespace (the host end of
    /// a veth, which must run an XDP program to receive redirected frames). Nothing in
    /// TC mode: nothing is XDP-redirected into host ports there, and an XDP program on
    /// the host's end would clear the segmentation offloads of the switch's end.
    pub fn attach_pass(
        &mut self,
        netns: &str,
        ifname: &str,
        ifindex: u32,
    ) -> Result<(), DatapathError> {
        if self.mode == DatapathMode::Tc {
            return Ok(());
        }
        let link = format!("pass-{netns}-{ifname}");
        self.attach_in(Some(netns), lime_common::names::PROG_PASS, ifindex, &link)
    }

    /// Attach XDP program `program` to `ifindex` in namespace `netns` (`None`: this
    /// datapath's), its link pinned as `link`.
    fn attach_in(
        &mut self,
        netns: Option<&str>,
        program: &str,
        ifindex: u32,
        link: &str,
    ) -> Result<(), DatapathError> {
        let kernel = &mut self.kernel;
        let mut attach = || kernel.attach(program, ifindex, link);
        match netns.or(self.netns.as_deref()) {
            Some(ns) => lime_lab::netns::run_in_netns(ns, attach)?,
            None => attach(),
        }
    }

    /// Attach the counting sink (`lime_sink`) to an interface in namespace `netns`
    /// (`None`: this datapath's). It counts what arrives there in this datapath's port
    /// counters, under that interface's ifindex, and drops it: the far end of a measured
    /// path. Use a datapath of its own for it when ifindexes could collide with ports.
    pub fn attach_sink(
        &mut self,
        netns: Option<&str>,
        ifname: &str,
        ifindex: u32,
    ) -> Result<(), DatapathError> {
        let link = format!("sink-{}-{ifname}", netns.unwrap_or("dp"));
        self.attach_in(netns, lime_common::names::PROG_SINK, ifindex, &link)
    }

    /// Attach the floor program (`lime_floor`: redirect every frame to the floor target,
    /// nothing else) to an interface of this datapath's namespace, in place of LIME's
    /// program: the benchmarks' baseline.
    pub fn attach_floor(&mut self, ifname: &str, ifindex: u32) -> Result<(), DatapathError> {
        let link = format!("floor-{ifname}");
        self.attach_in(None, lime_common::names::PROG_FLOOR, ifindex, &link)
    }

    /// Say where a virtual port lives. The new place is written first, then the virtual
    /// switch's port generation is bumped, so no packet classified after this returns
    /// uses an egress the flow cache remembered from before.
    pub fn set_vport(
        &mut self,
        vswitch: u16,
        vport: u32,
        info: VportInfo,
    ) -> Result<(), DatapathError> {
        self.kernel.set_vport(
            VportKey {
                vswitch,
                _pad: 0,
                vport,
            },
            info,
        )?;
        self.moved_vport(vswitch)
    }

    /// Forget a virtual port (it no longer exists on this physical switch).
    pub fn remove_vport(&mut self, vswitch: u16, vport: u32) -> Result<(), DatapathError> {
        self.kernel.remove_vport(VportKey {
            vswitch,
            _pad: 0,
            vport,
        });
        self.moved_vport(vswitch)
    }

    /// Publish a new port generation for a virtual switch (if it is active here).
    fn moved_vport(&mut self, vswitch: u16) -> Result<(), DatapathError> {
        match self.store.bump_vport_gen(vswitch) {
            Ok(ops) => self.kernel.apply(&ops),
            // Ports may be mapped before the virtual switch is added: nothing cached yet.
            Err(DatapathError::NoVswitch { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Set the virtual ports FLOOD and ALL reach on a virtual switch.
    pub fn set_flood_ports(&mut self, vswitch: u16, ports: &[u32]) -> Result<(), DatapathError> {
        let mut list = lime_common::port::VswPorts::default();
        if ports.len() > list.ports.len() {
            return Err(DatapathError::TableFull {
                what: "virtual ports per virtual switch (flood list)",
            });
        }
        for (slot, p) in list.ports.iter_mut().zip(ports) {
            *slot = *p;
        }
        list.len = u32::try_from(ports.len()).unwrap_or(u32::MAX);
        self.kernel.set_vswitch_ports(vswitch, &list)
    }

    /// Make a virtual switch active here (empty tables, version 1).
    pub fn add_vswitch(&mut self, vswitch: u16) -> Result<(), DatapathError> {
        let ops = self.store.add_vswitch(vswitch);
        self.kernel.apply(&ops)
    }

    /// Set a virtual switch's flow-cache flags (see `lime_common::flow::VSW_F_*`).
    pub fn set_vswitch_flags(&mut self, vswitch: u16, flags: u32) -> Result<(), DatapathError> {
        let ops = self.store.set_flags(vswitch, flags)?;
        self.kernel.apply(&ops)
    }

    /// Stage a rule at the next version; nothing is visible until [`Datapath::commit`].
    /// Invalid or unfitting rules are rejected and change nothing.
    pub fn stage_add(&mut self, vswitch: u16, rule: &Rule) -> Result<u32, DatapathError> {
        rule.validate()?;
        let (value, mask) = rule.matches.compile();
        let program = rule.instructions.compile(rule.table, rule.cookie);
        self.store
            .stage_add(vswitch, rule.table, rule.priority, value, mask, program)
    }

    /// Make room for `additional` more rules of `vswitch` in the rule mirror (see
    /// [`RuleStore::reserve`]).
    pub fn reserve(&mut self, vswitch: u16, additional: usize) {
        self.store.reserve(vswitch, additional);
    }

    /// Stage the removal of a datapath rule at the next version.
    pub fn stage_remove(&mut self, rule_id: u32) -> Result<(), DatapathError> {
        self.store.stage_remove(rule_id)
    }

    /// Where the open transaction of a virtual switch stands (see
    /// [`RuleStore::savepoint`]).
    #[must_use]
    pub fn savepoint(&self, vswitch: u16) -> store::Savepoint {
        self.store.savepoint(vswitch)
    }

    /// Undo what was staged after `sp` (nothing was written to the kernel yet).
    pub fn rollback_to(&mut self, vswitch: u16, sp: store::Savepoint) {
        self.store.rollback_to(vswitch, sp);
    }

    /// Drop everything staged for a virtual switch.
    pub fn abort(&mut self, vswitch: u16) {
        self.store.abort(vswitch);
    }

    /// Write the staged changes and publish them as the next version (one atomic store
    /// of the version number). On failure the datapath stays at the old version, exactly
    /// as it was, and the staged changes are dropped.
    pub fn commit(&mut self, vswitch: u16) -> Result<u32, DatapathError> {
        if self.prepare(vswitch)? {
            self.publish(vswitch)?;
        }
        self.store
            .version(vswitch)
            .ok_or(DatapathError::NoVswitch { vswitch })
    }

    /// The first half of [`Datapath::commit`]: write everything staged for the next
    /// version and mark it ready, still serving the current one. Returns whether there
    /// was anything to prepare. On failure the datapath is exactly as it was. Follow
    /// with [`Datapath::publish`] (or [`Datapath::unprepare`]).
    pub fn prepare(&mut self, vswitch: u16) -> Result<bool, DatapathError> {
        let (pending, rest) = self.store.plan_commit_parts(vswitch)?;
        if pending.is_empty() && rest.is_empty() {
            return Ok(false);
        }
        let written = self
            .kernel
            .apply(pending)
            .and_then(|()| {
                self.kernel
                    .write_buckets(self.store.staged_buckets(vswitch))
            })
            .and_then(|()| self.kernel.apply(&rest));
        if let Err(e) = written {
            self.unprepare(vswitch);
            return Err(e);
        }
        Ok(true)
    }

    /// Undo a [`Datapath::prepare`] that will not be published (another copy failed):
    /// the staged changes are dropped and the maps put back.
    pub fn unprepare(&mut self, vswitch: u16) {
        let mut repair = self.store.abort_commit(vswitch);
        repair.extend(self.store.config_ops(vswitch));
        let _ = self.kernel.apply(&repair);
    }

    /// The second half of [`Datapath::commit`]: publish the prepared version (one
    /// atomic store of the version number).
    pub fn publish(&mut self, vswitch: u16) -> Result<(), DatapathError> {
        let op = self.store.publish_op(vswitch)?;
        self.kernel.apply(std::slice::from_ref(&op))?;
        self.store.commit_done(vswitch);
        self.published.insert(vswitch, Instant::now());
        Ok(())
    }

    /// After a restart of the control plane: settle a version of `vswitch` that a crash
    /// left prepared here (written, maybe marked ready) and not published — `publish`
    /// publishes it whole (another copy published it, so every copy had prepared it),
    /// otherwise it is dropped and the maps put back, so no later version makes any of
    /// it visible. Returns whether there was one.
    pub fn settle_prepared(&mut self, vswitch: u16, publish: bool) -> Result<bool, DatapathError> {
        if !self.store.adopt_unpublished(vswitch) {
            return Ok(false);
        }
        if publish {
            self.publish(vswitch)?;
        } else {
            self.unprepare(vswitch);
        }
        Ok(true)
    }

    /// Number an empty virtual switch's next version `version + 1`, so that a new copy
    /// of it counts versions as the others do (tags compare across copies).
    pub fn jump_version(&mut self, vswitch: u16, version: u32) -> Result<(), DatapathError> {
        let ops = self.store.jump_version(vswitch, version)?;
        self.kernel.apply(&ops)
    }

    /// Install rules as one version: all or nothing.
    pub fn install(&mut self, vswitch: u16, rules: &[Rule]) -> Result<Vec<u32>, DatapathError> {
        let mut ids = Vec::with_capacity(rules.len());
        for r in rules {
            match self.stage_add(vswitch, r) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    self.abort(vswitch);
                    return Err(e);
                }
            }
        }
        self.commit(vswitch)?;
        Ok(ids)
    }

    /// Reclaim what only versions before the current one could see, once the grace period
    /// after the last publish has passed (waits for the rest of it). Returns the final
    /// counters of the datapath rules retired.
    pub fn reclaim(&mut self, vswitch: u16) -> Result<Retired, DatapathError> {
        if let Some(t) = self.published.get(&vswitch) {
            let since = t.elapsed();
            if since < GRACE {
                std::thread::sleep(GRACE - since);
            }
        }
        self.reclaim_upto(vswitch, u32::MAX)
    }

    /// Reclaim what no version from `upto` on can see (see [`RuleStore::reclaim_upto`]),
    /// at once: the caller knows the grace period after the publish of `upto` is over.
    /// Returns the final counters of the datapath rules retired.
    pub fn reclaim_upto(&mut self, vswitch: u16, upto: u32) -> Result<Retired, DatapathError> {
        let (ops, retired) = self.store.reclaim_upto(vswitch, upto);
        let stats = self.kernel.rule_stats_many(&retired)?;
        let finals = retired.into_iter().zip(stats).collect();
        self.kernel.apply(&ops)?;
        Ok(finals)
    }

    /// Counters of a datapath rule.
    pub fn rule_stats(&self, rule_id: u32) -> Result<RuleStats, DatapathError> {
        self.kernel.rule_stats(rule_id)
    }

    /// Counters of several datapath rules, in their order (one batched read when they
    /// are many).
    pub fn rule_stats_many(&self, rule_ids: &[u32]) -> Result<Vec<RuleStats>, DatapathError> {
        self.kernel.rule_stats_many(rule_ids)
    }

    /// Counters of a port.
    pub fn port_stats(&self, ifindex: u32) -> Result<PortStats, DatapathError> {
        self.kernel.port_stats(ifindex)
    }

    /// Map this namespace's loopback (ifindex 1) as the injection port for packet-out
    /// (in TC mode with `lime_tc` on its ingress, which finishes what XDP hands it).
    pub fn enable_packet_out(&mut self) -> Result<(), DatapathError> {
        let tc_mode = self.mode == DatapathMode::Tc;
        self.kernel.set_port(
            1,
            PortInfo {
                kind: lime_common::port::kind::INJECT,
                flags: if tc_mode { port_flags::TC } else { 0 },
                ..PortInfo::default()
            },
        )?;
        if !tc_mode {
            return Ok(());
        }
        let kernel = &mut self.kernel;
        let mut attach = || kernel.attach_tc("lo", "tc-lo");
        match &self.netns {
            Some(ns) => lime_lab::netns::run_in_netns(ns, attach)?,
            None => attach(),
        }
    }

    /// Packet-out: send `frame` as if from virtual port `in_port` of `vswitch`, either out
    /// of virtual port `out_port` (wherever it lives) or, with `OFPP_TABLE`, through the
    /// flow tables. Runs inside this datapath's namespace.
    pub fn packet_out(
        &self,
        vswitch: u16,
        in_port: u32,
        out_port: u32,
        frame: &[u8],
    ) -> Result<(), DatapathError> {
        let bytes = packet_io::packet_out_frame(vswitch, in_port, out_port, frame);
        let kernel = &self.kernel;
        match &self.netns {
            Some(ns) => {
                lime_lab::netns::run_in_netns(ns, || packet_io::inject_frame(kernel, &bytes))?
            }
            None => packet_io::inject_frame(kernel, &bytes),
        }
    }

    /// Open the packet-in reader (once per datapath).
    pub fn packet_in_reader(&mut self) -> Result<packet_io::PacketInReader, DatapathError> {
        packet_io::PacketInReader::open(&mut self.kernel, 64)
    }

    /// The published version of a virtual switch.
    #[must_use]
    pub fn version(&self, vswitch: u16) -> Option<u32> {
        self.store.version(vswitch)
    }
}

//! The switch core: one thread that owns the [`Fabric`] and the OpenFlow state of every
//! virtual switch ([`VswitchOf`]). Connections, packet-in readers and the control socket
//! talk to it only through [`Cmd`]s on one channel, so every state change is serialized
//! and a BARRIER_REPLY, queued after the core finished everything before it, is sent
//! only once those changes are in the kernel.
//!
//! A migration ([`Cmd::Migrate`]) does not block the core: it becomes the *active*
//! migration and runs one step at a time (a clone, one host's move, a retire; see
//! [`crate::migration::Leg`]); between two steps the core handles whatever is queued
//! (at most [`BETWEEN_STEPS`] commands, so a controller that never stops sending
//! cannot stall the migration): flow-mods (applied to every copy as one version),
//! barriers, statistics, packet-ins and packet-outs, echo. A BARRIER_REPLY still goes
//! out only after everything before it is in every copy. A flow-mod thus waits at most
//! one step instead of the whole migration: a host's move is the longest (~100 ms here,
//! most of it the commands that recreate the host's link, [`Fabric::move_host`]). Migrations
//! asked for while one runs wait their turn; a clean stop finishes the active one (and
//! refuses those still waiting).
//!
//! Timeouts: every [`SWEEP`] the core looks at the entries with timeouts that are due
//! (a heap by time, [`super::timers`], not a walk of the table): an entry whose hard
//! timeout passed (its age alone says) expires; an idle-timeout entry's counters are
//! read (all due entries' in one batched read), and it is due again when its timeout
//! would run out if nothing hit it since, or a tenth of the timeout later (between
//! [`SWEEP`] and [`IDLE_READ_MAX`]), whichever is first — so thousands of idle entries
//! cost a read each per second at most, not one per sweep, and expire at most that
//! late.
//!
//! Consecutive FLOW_MODs of one virtual switch waiting in the channel are applied as one
//! batch (one datapath version): ordering inside the batch is kept, each failing
//! flow-mod is answered on its own xid and changes nothing, and any other message (a
//! barrier in particular) ends the batch.
//!
//! # Deferred reclaim
//! A batch publishes its version and the core goes on at once: nothing waits for the
//! datapath's grace period ([`crate::datapath::GRACE`], 10 ms) on the flow-mod path.
//! The old version is reclaimed by the *reclaim tick* — the core's loop wakes when the
//! oldest published version's grace period is over ([`Fabric::next_reclaim`]),
//! reclaims what is due ([`Fabric::reclaim_ready`]) and settles every virtual switch
//! ([`crate::vswitch::VirtualSwitch::settle`]): a modified entry's old rules are
//! folded into its counters (until then they are read live, so statistics never go
//! down), and FLOW_REMOVED goes out for deleted and expired entries with
//! SEND_FLOW_REM, with their final counters (and the duration up to their removal).
//! A barrier waits: a BARRIER_REQUEST whose virtual switch still owes a FLOW_REMOVED
//! for a removal before it waits out that grace period first, so the FLOW_REMOVED
//! precedes the BARRIER_REPLY as if the delete had been synchronous; nothing else
//! waits. A batch that runs out of room because of rules still waiting (bucket slots)
//! reclaims them first ("the next batch needs it"), and so does a commit when 64
//! versions wait. Migration steps still wait for the grace period where they need
//! final counters (a clone starts from settled tables; a retire reads its copy's final
//! counters; a journaled migration settles before its `begin` and each `tables`
//! snapshot). While a journaled migration runs, every version a batch publishes (a
//! flow-mod batch, expired entries, fail-standalone's entry) is journaled as a `batch`
//! record right before it is committed, and after a batch that modified entries the
//! core waits out the grace period, journals `batch-done` with the final counters of
//! the rules it replaced, and only then reclaims them ([`crate::migration::journal`]);
//! outside a migration nothing is journaled and nothing waits.
use std::{
    collections::{BTreeMap, VecDeque},
    sync::mpsc::{Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

mod migrate;

use bytes::Bytes;
use lime_common::{action::port_no, stats::RuleStats};
use lime_lab::FailMode;
use lime_openflow::{
    self as of, ErrorMsg, FeaturesReply, FlowRemoved, Message, MultipartReply, MultipartReplyBody,
    MultipartRequestBody, PacketIn, PortDesc, PortStatus, Role,
    consts::{
        ControllerRole, FlowRemovedReason, OFP_NO_BUFFER, PortReason, capabilities, group,
        multipart_flags, port, port_config, port_features, port_state, table,
    },
    multipart::{
        desc::Desc,
        flow::{AggregateStats, FlowStats, FlowStatsRequest},
        port_stats::PortStats,
        table::TableStats,
    },
};

use super::{
    dump::FlowDump,
    features::table_features,
    state::{Conn, ConnId, Link, Outbox, Standalone, VswitchOf, default_async},
    translate::{self, OfError},
};
use crate::{
    datapath::packet_io,
    fabric::Fabric,
    flow::{self, Action, Instructions, Rule},
    vswitch::{self, FlowEntry, FlowMod, Why},
};

/// How often expired entries are looked for.
pub const SWEEP: Duration = Duration::from_millis(100);

/// The longest a sweep waits before reading the counters of an entry with an idle
/// timeout again (shorter timeouts wait a tenth of theirs, at least [`SWEEP`]): an idle
/// entry expires at most this late, and each costs one counter read per copy this
/// often rather than every sweep.
pub const IDLE_READ_MAX: Duration = Duration::from_secs(1);

/// When the sweep reads an idle-timeout entry's counters next, given its last hit (or
/// install) time `last`, its idle timeout and the time now (all ns): when the timeout
/// would run out if nothing hits it, but no later than a tenth of the timeout (between
/// [`SWEEP`] and [`IDLE_READ_MAX`]) from now, so a hit noticed late delays its
/// expiry by at most that.
fn next_idle_read(last: u64, idle_ns: u64, now: u64) -> u64 {
    let step = (idle_ns / 10).clamp(
        u64::try_from(SWEEP.as_nanos()).unwrap_or(u64::MAX),
        u64::try_from(IDLE_READ_MAX.as_nanos()).unwrap_or(u64::MAX),
    );
    last.saturating_add(idle_ns).min(now.saturating_add(step))
}

/// How often port links are looked at (for PORT_STATUS).
pub const LINK_CHECK: Duration = Duration::from_secs(1);

/// Commands handled at most between two steps of a migration (with a controller that
/// never stops sending, the migration still advances).
pub const BETWEEN_STEPS: usize = 256;

/// Flow-mods applied as one batch at most.
pub const MAX_BATCH: usize = 200_000;

/// Flow stats per multipart reply message (each well under 64 KiB).
const FLOWS_PER_REPLY: usize = 100;

/// Cookie of the table-miss entry fail-standalone installs.
pub const STANDALONE_COOKIE: u64 = 0x4c49_4d45_5354_414e;

/// A request to the core.
pub enum Cmd {
    /// A controller connected (after HELLO) to virtual switch `vswitch`.
    Connect {
        /// Index of the virtual switch.
        vswitch: usize,
        /// Connection id.
        conn: ConnId,
        /// Peer, for logs.
        peer: String,
        /// Where its messages go.
        outbox: Outbox,
    },
    /// It went away.
    Disconnect {
        /// Connection id.
        conn: ConnId,
    },
    /// A decoded message from it.
    Msg {
        /// Connection id.
        conn: ConnId,
        /// Its xid.
        xid: u32,
        /// The message.
        msg: Box<Message>,
        /// The frame's first bytes (for the data of an OFPT_ERROR).
        head: Bytes,
    },
    /// Packet-ins read from one physical switch's datapath.
    PacketIns(Vec<packet_io::PacketIn>),
    /// The flow table of a virtual switch, for `lime dump-flows`.
    DumpFlows {
        /// Virtual switch name.
        vswitch: String,
        /// Where the answer goes.
        reply: std::sync::mpsc::Sender<Result<Vec<FlowDump>, String>>,
    },
    /// Where everything is, for `lime status`.
    Status {
        /// Where the answer goes.
        reply: std::sync::mpsc::Sender<super::status::Status>,
    },
    /// Move every host of virtual switch `vswitch` to physical switch `to` (see
    /// [`crate::migration`]), serialized with every flow-mod.
    Migrate {
        /// Virtual switch name.
        vswitch: String,
        /// Target physical switch.
        to: String,
        /// How.
        strategy: crate::migration::Strategy,
        /// Where the answer goes: one report per source physical switch.
        reply: std::sync::mpsc::Sender<Result<Vec<crate::migration::Report>, String>>,
        /// Where progress goes as the migration runs, if anyone listens.
        events: Option<std::sync::mpsc::Sender<crate::migration::Progress>>,
    },
    /// Run a closure on the fabric inside the core, serialized with everything else
    /// (benchmarks; the migration engine's entry point).
    WithFabric(Box<dyn FnOnce(&mut Fabric) + Send>),
    /// Stop and hand the fabric back.
    Shutdown,
}

/// The core's state.
pub struct Core {
    fabric: Fabric,
    vswitches: Vec<VswitchOf>,
    /// Connection → virtual switch index.
    conn_vsw: BTreeMap<ConnId, usize>,
    /// A command taken from the channel that ended a batch.
    pending: Option<Cmd>,
    /// When port links were last looked at.
    last_link_check: Instant,
    /// Counters, for logs and the benchmark.
    pub stats: CoreStats,
    /// The migration journal (none: migrations are not journaled).
    journal: Option<crate::migration::journal::Journal>,
    /// A migration to finish first, from the journal.
    recovery: Option<crate::migration::journal::Recovery>,
    /// The status view while a migration runs.
    live: super::status::Live,
    /// The migration running, between two of its steps.
    active: Option<migrate::Active>,
    /// Migrations asked for while one runs, in order.
    queued: VecDeque<Cmd>,
}

/// What the core did.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoreStats {
    /// Flow-mods applied (successfully).
    pub flow_mods: u64,
    /// Batches they came in.
    pub batches: u64,
    /// Packet-ins delivered to controllers.
    pub packet_ins: u64,
    /// Packet-ins dropped (no controller, or its outbox full).
    pub packet_ins_dropped: u64,
}

/// The clock rule counters' last-hit times are in (the driver's).
fn now_mono_ns() -> u64 {
    crate::datapath::hits::mono_ns()
}

fn duration_parts(d: Duration) -> (u32, u32) {
    (
        u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        d.subsec_nanos(),
    )
}

/// Where a flow-mod of a batch came from, to answer it: connection, xid, the first
/// bytes of the message (quoted in an error) and the buffer it named, if any.
struct Origin {
    conn: ConnId,
    xid: u32,
    head: Bytes,
    buffer_id: Option<u32>,
}

fn error_msg(e: &OfError, head: &Bytes) -> Message {
    Message::Error(ErrorMsg::from_code(e.code(), head.clone()))
}

impl Core {
    /// A core over `fabric` with the OpenFlow state of each of its virtual switches.
    #[must_use]
    pub fn new(fabric: Fabric, vswitches: Vec<VswitchOf>) -> Self {
        Self {
            fabric,
            vswitches,
            conn_vsw: BTreeMap::new(),
            pending: None,
            last_link_check: Instant::now(),
            stats: CoreStats::default(),
            journal: None,
            recovery: None,
            live: super::status::Live::default(),
            active: None,
            queued: VecDeque::new(),
        }
    }

    /// Journal migrations in `journal`, show their progress in `live`, and finish
    /// `recovery` (a migration a crashed control plane left unfinished) before serving
    /// anything.
    #[must_use]
    pub fn durable(
        mut self,
        journal: Option<crate::migration::journal::Journal>,
        recovery: Option<crate::migration::journal::Recovery>,
        live: super::status::Live,
    ) -> Self {
        self.journal = journal;
        self.recovery = recovery;
        self.live = live;
        self
    }

    /// Where everything is now.
    fn status(&self) -> super::status::Status {
        use super::status::{PortPlace, Status, VswitchStatus};
        let lab = self.fabric.lab().state();
        Status {
            lab: lab.name().to_owned(),
            vswitches: self
                .vswitches
                .iter()
                .map(|v| VswitchStatus {
                    name: v.name.clone(),
                    tenant: v.tenant.clone(),
                    dpid: v.dpid,
                    copies: self.fabric.copies(&v.name).unwrap_or_default(),
                    ports: v
                        .ports
                        .iter()
                        .map(|p| PortPlace {
                            port: p.port_no,
                            host: p.host.clone(),
                            switch: lab
                                .host(&p.host)
                                .map_or_else(|| p.switch.clone(), |h| h.switch.clone()),
                        })
                        .collect(),
                    controllers: v.controllers.iter().map(ToString::to_string).collect(),
                    connected: v.conns.values().map(|c| c.peer.clone()).collect(),
                })
                .collect(),
            ensembles: lab.topology.ensembles.clone(),
            migration: None,
        }
    }

    /// Serve commands until [`Cmd::Shutdown`] or until every sender is gone; returns the
    /// fabric.
    pub fn run(mut self, rx: &Receiver<Cmd>) -> Fabric {
        if let Some(r) = self.recovery.take() {
            self.recover(&r);
        }
        for i in 0..self.vswitches.len() {
            self.update_fail_mode(i);
        }
        let mut next_sweep = Instant::now() + SWEEP;
        let mut since_step = 0usize;
        loop {
            self.reclaim_tick(false);
            // While a migration runs, what is queued is handled between its steps.
            if self.migrating() && self.pending.is_none() {
                let next = if since_step >= BETWEEN_STEPS {
                    None
                } else {
                    rx.try_recv().ok()
                };
                match next {
                    Some(c) => self.pending = Some(c),
                    None => {
                        since_step = 0;
                        if Instant::now() >= next_sweep {
                            self.sweep();
                            next_sweep = Instant::now() + SWEEP;
                        }
                        self.migration_step();
                        self.start_queued();
                        continue;
                    }
                }
            }
            let cmd = match self.pending.take() {
                Some(c) => c,
                None => {
                    let until = self
                        .fabric
                        .next_reclaim()
                        .map_or(next_sweep, |r| r.min(next_sweep));
                    let wait = until.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(c) => c,
                        Err(RecvTimeoutError::Timeout) => {
                            if Instant::now() >= next_sweep {
                                self.sweep();
                                next_sweep = Instant::now() + SWEEP;
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            since_step += 1;
            if Instant::now() >= next_sweep {
                self.sweep();
                next_sweep = Instant::now() + SWEEP;
            }
            match cmd {
                Cmd::Shutdown => break,
                Cmd::Msg {
                    conn,
                    xid,
                    msg,
                    head,
                } if matches!(*msg, Message::FlowMod(_)) => {
                    self.flow_mod_batch(rx, conn, xid, msg, head);
                    self.journal_batch_end();
                }
                other => self.handle(other),
            }
        }
        // FLOW_REMOVEDs still owed go out before the connections close.
        self.reclaim_tick(true);
        // A migration is not left half-way by a clean stop; those still waiting do not
        // start.
        self.finish_migration();
        for c in self.queued.drain(..) {
            if let Cmd::Migrate { reply, .. } = c {
                let _ = reply.send(Err("the switch core stopped".to_owned()));
            }
        }
        let s = self.stats;
        eprintln!(
            "lime: switch core: {} flow-mods in {} batches, {} packet-ins delivered, {} dropped",
            s.flow_mods, s.batches, s.packet_ins, s.packet_ins_dropped
        );
        self.fabric
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Connect {
                vswitch,
                conn,
                peer,
                outbox,
            } => {
                if let Some(v) = self.vswitches.get_mut(vswitch) {
                    eprintln!("lime: {}: controller {peer} connected", v.name);
                    v.conns.insert(
                        conn,
                        Conn {
                            peer,
                            role: ControllerRole::Equal,
                            async_config: default_async(),
                            outbox,
                            dropped: 0,
                        },
                    );
                    self.conn_vsw.insert(conn, vswitch);
                    self.update_fail_mode(vswitch);
                    self.journal_batch_end();
                }
            }
            Cmd::Disconnect { conn } => {
                if let Some(i) = self.conn_vsw.remove(&conn) {
                    if let Some(c) = self.vswitches[i].conns.remove(&conn) {
                        eprintln!(
                            "lime: {}: controller {} disconnected",
                            self.vswitches[i].name, c.peer
                        );
                    }
                    self.update_fail_mode(i);
                    self.journal_batch_end();
                }
            }
            Cmd::Msg {
                conn,
                xid,
                msg,
                head,
            } => self.message(conn, xid, *msg, &head),
            Cmd::PacketIns(pins) => {
                for p in pins {
                    self.packet_in(&p);
                }
            }
            Cmd::DumpFlows { vswitch, reply } => {
                let _ = reply.send(self.dump(&vswitch));
            }
            Cmd::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Cmd::Migrate {
                vswitch,
                to,
                strategy,
                reply,
                events,
            } => {
                if self.migrating() {
                    self.queued.push_back(Cmd::Migrate {
                        vswitch,
                        to,
                        strategy,
                        reply,
                        events,
                    });
                } else {
                    self.start_migration(&vswitch, &to, strategy, reply, events);
                }
            }
            Cmd::WithFabric(f) => f(&mut self.fabric),
            Cmd::Shutdown => {}
        }
    }

    /// Start the next migration asked for while one ran, once none runs.
    fn start_queued(&mut self) {
        while !self.migrating() {
            let Some(c) = self.queued.pop_front() else {
                return;
            };
            self.handle(c);
        }
    }

    fn reply(&self, conn: ConnId, xid: u32, msg: &Message) {
        if let Some(c) = self
            .conn_vsw
            .get(&conn)
            .and_then(|i| self.vswitches[*i].conns.get(&conn))
        {
            // A full outbox means the controller stopped reading; its writer closes it.
            let _ = c.outbox.send(xid, msg);
        }
    }

    fn role_of(&self, conn: ConnId) -> ControllerRole {
        self.conn_vsw
            .get(&conn)
            .and_then(|i| self.vswitches[*i].conns.get(&conn))
            .map_or(ControllerRole::Equal, |c| c.role)
    }

    fn message(&mut self, conn: ConnId, xid: u32, msg: Message, head: &Bytes) {
        let Some(&vi) = self.conn_vsw.get(&conn) else {
            return;
        };
        let result = match msg {
            Message::FeaturesRequest => {
                let v = &self.vswitches[vi];
                Ok(Some(Message::FeaturesReply(FeaturesReply {
                    datapath_id: v.dpid,
                    n_buffers: 0,
                    n_tables: u8::try_from(lime_common::limits::MAX_TABLES).unwrap_or(u8::MAX),
                    auxiliary_id: 0,
                    capabilities: capabilities::FLOW_STATS
                        | capabilities::TABLE_STATS
                        | capabilities::PORT_STATS,
                    reserved: 0,
                })))
            }
            Message::GetConfigRequest => {
                Ok(Some(Message::GetConfigReply(self.vswitches[vi].config)))
            }
            Message::SetConfig(c) => {
                self.vswitches[vi].config = c;
                Ok(None)
            }
            Message::BarrierRequest => {
                // A FLOW_REMOVED a removal before the barrier owes goes out first.
                if self.vswitches[vi].table.owes_notice() {
                    self.settle_vswitch(vi, true);
                }
                Ok(Some(Message::BarrierReply))
            }
            Message::GetAsyncRequest => Ok(Some(Message::GetAsyncReply(
                self.vswitches[vi]
                    .conns
                    .get(&conn)
                    .map_or_else(default_async, |c| c.async_config),
            ))),
            Message::SetAsync(a) => {
                if let Some(c) = self.vswitches[vi].conns.get_mut(&conn) {
                    c.async_config = a;
                }
                Ok(None)
            }
            Message::RoleRequest(r) => self.role_request(vi, conn, &r).map(Some),
            Message::PacketOut(po) => {
                if self.role_of(conn) == ControllerRole::Slave {
                    Err(OfError::IsSlave)
                } else {
                    self.packet_out(vi, &po).map(|()| None)
                }
            }
            Message::MultipartRequest(req) => match self.multipart(vi, &req.body) {
                Ok(replies) => {
                    for r in replies {
                        self.reply(conn, xid, &Message::MultipartReply(r));
                    }
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            Message::FlowMod(_) => Ok(None), // batched in `run`
            // Replies and the switch's own messages make no sense from a controller.
            Message::Error(_) | Message::EchoReply(_) | Message::Hello(_) => Ok(None),
            Message::EchoRequest(e) => Ok(Some(Message::EchoReply(e.reply()))),
            other => Err(OfError::BadType {
                msg_type: other.msg_type().to_raw(),
            }),
        };
        match result {
            Ok(Some(m)) => self.reply(conn, xid, &m),
            Ok(None) => {}
            Err(e) => self.reply(conn, xid, &error_msg(&e, head)),
        }
    }

    // ----- flow-mods -----

    /// Apply `first` and every flow-mod for the same virtual switch queued right behind
    /// it as one batch.
    fn flow_mod_batch(
        &mut self,
        rx: &Receiver<Cmd>,
        conn: ConnId,
        xid: u32,
        first: Box<Message>,
        head: Bytes,
    ) {
        let Some(&vi) = self.conn_vsw.get(&conn) else {
            return;
        };
        // Each message is translated (or refused) as it is taken off the queue and
        // dropped at once: the batch keeps the flow-mod and where it came from, not
        // the decoded message too (a 100 000-message batch would hold them all).
        let mut fms: Vec<FlowMod> = Vec::new();
        let mut origin: Vec<Origin> = Vec::new();
        self.take_flow_mod(conn, xid, &first, head, &mut fms, &mut origin);
        drop(first);
        let mut taken = 1;
        while taken < MAX_BATCH {
            match rx.try_recv() {
                Ok(Cmd::Msg {
                    conn,
                    xid,
                    msg,
                    head,
                }) if matches!(*msg, Message::FlowMod(_))
                    && self.conn_vsw.get(&conn) == Some(&vi) =>
                {
                    self.take_flow_mod(conn, xid, &msg, head, &mut fms, &mut origin);
                    taken += 1;
                }
                Ok(other) => {
                    self.pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        if fms.is_empty() {
            return;
        }
        let migration = self.active_id();
        let v = &mut self.vswitches[vi];
        let applied = v.table.apply_batch_deferred_with(
            &mut self.fabric,
            &fms,
            &mut migrate::batch_journal(&mut self.journal, migration, &v.name),
        );
        let results = match applied {
            Ok(r) => {
                migrate::batch_published(migration);
                r
            }
            Err(e) => {
                eprintln!("lime: {}: publishing flow-mods failed: {e}", v.name);
                let err = OfError::Datapath(e.to_string());
                for o in &origin {
                    self.reply(o.conn, o.xid, &error_msg(&err, &o.head));
                }
                return;
            }
        };
        self.stats.batches += 1;
        for (o, res) in origin.iter().zip(results) {
            match res {
                Ok(_) => {
                    self.stats.flow_mods += 1;
                    if let Some(buffer_id) = o.buffer_id {
                        // The flow-mod applied; the packet it names does not exist.
                        let e = OfError::BufferUnknown { buffer_id };
                        self.reply(o.conn, o.xid, &error_msg(&e, &o.head));
                    }
                }
                Err(e) => self.reply(o.conn, o.xid, &error_msg(&OfError::FlowMod(e), &o.head)),
            }
        }
        // Removals an earlier batch left, reclaimed on the way.
        self.notify_removed(vi);
    }

    /// One flow-mod message of a batch: refused now (slave connection, untranslatable),
    /// skipped (a delete filtered on a group), or translated into `fms` with its origin.
    fn take_flow_mod(
        &self,
        conn: ConnId,
        xid: u32,
        msg: &Message,
        head: Bytes,
        fms: &mut Vec<FlowMod>,
        origin: &mut Vec<Origin>,
    ) {
        let Message::FlowMod(ofm) = msg else { return };
        if self.role_of(conn) == ControllerRole::Slave {
            self.reply(conn, xid, &error_msg(&OfError::IsSlave, &head));
            return;
        }
        // No flow outputs to a group, so a delete filtered on one matches nothing.
        if !ofm.is_add_or_modify() && ofm.out_group != group::ANY {
            return;
        }
        match translate::flow_mod_from_of(ofm) {
            Ok(fm) => {
                fms.push(fm);
                origin.push(Origin {
                    conn,
                    xid,
                    head,
                    buffer_id: (ofm.buffer_id != OFP_NO_BUFFER).then_some(ofm.buffer_id),
                });
            }
            Err(e) => self.reply(conn, xid, &error_msg(&e, &head)),
        }
    }

    /// The reclaim tick: reclaim the published versions whose grace period is over
    /// (with `wait`: every one, waiting for the rest of the newest one's) and settle
    /// every virtual switch (see the module docs).
    fn reclaim_tick(&mut self, wait: bool) {
        let due = if wait {
            self.fabric.reclaim_due()
        } else if self
            .fabric
            .next_reclaim()
            .is_some_and(|t| t <= Instant::now())
        {
            self.fabric.reclaim_ready()
        } else {
            return;
        };
        if let Err(e) = due {
            eprintln!("lime: reclaiming old versions: {e}");
        }
        for vi in 0..self.vswitches.len() {
            if self.vswitches[vi].table.settling() {
                self.settle_vswitch(vi, false);
            }
        }
    }

    /// Settle one virtual switch's published batches whose old version was reclaimed
    /// (with `wait`: all of them, after the rest of the grace period) and send the
    /// FLOW_REMOVEDs they owe.
    pub(super) fn settle_vswitch(&mut self, vi: usize, wait: bool) {
        let v = &mut self.vswitches[vi];
        if let Err(e) = v.table.settle(&mut self.fabric, wait) {
            eprintln!("lime: {}: reclaiming old versions: {e}", v.name);
        }
        self.notify_removed(vi);
    }

    /// FLOW_REMOVED for the entries a virtual switch removed whose final counters are
    /// known now (deleted or expired; a replaced entry sends none, spec 6.4).
    fn notify_removed(&mut self, vi: usize) {
        for r in self.vswitches[vi].table.take_removed() {
            let reason = match r.why {
                Why::Deleted => FlowRemovedReason::Delete,
                Why::IdleTimeout => FlowRemovedReason::IdleTimeout,
                Why::HardTimeout => FlowRemovedReason::HardTimeout,
                Why::Replaced | Why::Other => continue,
            };
            let lived = r.at.saturating_duration_since(r.entry.added);
            self.flow_removed(vi, &r.entry, r.stats, reason, lived);
        }
    }

    /// Send FLOW_REMOVED for an entry that had SEND_FLOW_REM, to every controller whose
    /// async config asks for `reason`.
    fn flow_removed(
        &mut self,
        vi: usize,
        e: &FlowEntry,
        st: RuleStats,
        reason: FlowRemovedReason,
        lived: Duration,
    ) {
        if e.rule.flags & vswitch::flags::SEND_FLOW_REM == 0 {
            return;
        }
        let (duration_sec, duration_nsec) = duration_parts(lived);
        let msg = Message::FlowRemoved(FlowRemoved {
            cookie: e.rule.cookie,
            priority: e.rule.priority,
            reason: reason.to_raw(),
            table_id: e.rule.table,
            duration_sec,
            duration_nsec,
            idle_timeout: e.rule.idle_timeout,
            hard_timeout: e.rule.hard_timeout,
            packet_count: st.packets,
            byte_count: st.bytes,
            r#match: translate::match_to_of(&e.rule.matches),
        });
        let bit = 1u32 << reason.to_raw();
        for c in self.vswitches[vi].conns.values_mut() {
            if async_wants(&c.async_config.flow_removed_mask, c.role, bit)
                && c.outbox.send(0, &msg).is_err()
            {
                c.dropped += 1;
            }
        }
    }

    /// Remove entries whose idle or hard timeout passed (spec 5.5), with FLOW_REMOVED.
    fn sweep(&mut self) {
        if self.last_link_check.elapsed() >= LINK_CHECK {
            self.last_link_check = Instant::now();
            self.check_links();
        }
        let now = now_mono_ns();
        for vi in 0..self.vswitches.len() {
            let mut expired: Vec<(u64, Why)> = Vec::new();
            let v = &mut self.vswitches[vi];
            let sweep_at = Instant::now();
            // When entry `e` was added, in CLOCK_MONOTONIC ns (the clock of `now`).
            let added_ns = |e: &FlowEntry| {
                let age = sweep_at.saturating_duration_since(e.added);
                now.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX))
            };
            let timed = |e: &FlowEntry| e.rule.idle_timeout != 0 || e.rule.hard_timeout != 0;
            // New entries are looked at on this sweep (an idle one's counters read at
            // once); now and then every entry, for any that joined with an older id.
            let full = v.timers.full_look_due();
            let from = if full { 0 } else { v.timers.upto() };
            for e in v.table.entries_from(from).filter(|e| timed(e)) {
                v.timers.schedule_new(e.id, now);
            }
            v.timers.offered_upto(v.table.next_id());
            if full {
                let table = &v.table;
                v.timers.full_look_done(|id| table.entry(id).is_some());
            }
            // Entries due: expired by their hard timeout, or their counters to read:
            // (id, when added, idle ns, hard deadline).
            let mut read: Vec<(u64, u64, u64, u64)> = Vec::new();
            for id in v.timers.take_due(now) {
                let Some(e) = v.table.entry(id) else { continue };
                let (idle, hard) = (e.rule.idle_timeout, e.rule.hard_timeout);
                let added = added_ns(e);
                let hard_at = if hard == 0 {
                    u64::MAX
                } else {
                    added.saturating_add(u64::from(hard) * 1_000_000_000)
                };
                if now >= hard_at {
                    expired.push((id, Why::HardTimeout));
                } else if idle != 0 {
                    read.push((id, added, u64::from(idle) * 1_000_000_000, hard_at));
                } else if hard != 0 {
                    v.timers.schedule(id, hard_at);
                }
            }
            let ids: Vec<u64> = read.iter().map(|r| r.0).collect();
            // All due entries in one batched read per physical switch; should that
            // fail, none is judged idle on this sweep (each is read again at the next).
            match v.table.stats_many(&self.fabric, &ids) {
                Ok(stats) => {
                    for ((id, added, idle_ns, hard_at), st) in read.into_iter().zip(stats) {
                        let last = st.last_hit_ns.max(added);
                        if now.saturating_sub(last) >= idle_ns {
                            expired.push((id, Why::IdleTimeout));
                        } else {
                            v.timers
                                .schedule(id, next_idle_read(last, idle_ns, now).min(hard_at));
                        }
                    }
                }
                Err(_) => {
                    for (id, ..) in read {
                        v.timers.schedule(id, now);
                    }
                }
            }
            if expired.is_empty() {
                continue;
            }
            let migration = self.active_id();
            let v = &mut self.vswitches[vi];
            let removed = v.table.remove_with(
                &mut self.fabric,
                &expired,
                &mut migrate::batch_journal(&mut self.journal, migration, &v.name),
            );
            match removed {
                Ok(()) => migrate::batch_published(migration),
                Err(e) => {
                    eprintln!("lime: {}: expiring entries failed: {e}", v.name);
                    // Looked at again on the next sweep.
                    for (id, _) in &expired {
                        v.timers.schedule(*id, now);
                    }
                }
            }
            // FLOW_REMOVED once their version is reclaimed (the reclaim tick).
            self.notify_removed(vi);
            self.journal_batch_end();
        }
    }

    /// Read every virtual port's link (one visit per physical switch namespace) and send
    /// PORT_STATUS for those that changed (spec 7.4.3).
    fn check_links(&mut self) {
        let lab = self.fabric.lab().state();
        let mut by_switch: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for v in &self.vswitches {
            for p in &v.ports {
                by_switch
                    .entry(p.switch.clone())
                    .or_default()
                    .push(p.ifname.clone());
            }
        }
        let mut now: BTreeMap<(String, String), Link> = BTreeMap::new();
        for (sw, names) in by_switch {
            let Ok(ns) = lab.netns(&sw) else { continue };
            let names2 = names.clone();
            if let Ok(links) = lime_lab::run_in_netns(&ns, move || super::link::links(&names2)) {
                for (n, l) in names.into_iter().zip(links) {
                    now.insert((sw.clone(), n), l);
                }
            }
        }
        for v in &mut self.vswitches {
            for i in 0..v.ports.len() {
                let p = &v.ports[i];
                let Some(&link) = now.get(&(p.switch.clone(), p.ifname.clone())) else {
                    continue;
                };
                if link == p.link {
                    continue;
                }
                let reason = match (p.link, link) {
                    (_, Link::Gone) => PortReason::Delete,
                    (Link::Gone, _) => PortReason::Add,
                    _ => PortReason::Modify,
                };
                v.ports[i].link = link;
                let msg = Message::PortStatus(PortStatus {
                    reason: reason.to_raw(),
                    desc: port_desc(&v.ports[i]),
                });
                let bit = 1u32 << reason.to_raw();
                for c in v.conns.values_mut() {
                    if async_wants(&c.async_config.port_status_mask, c.role, bit)
                        && c.outbox.send(0, &msg).is_err()
                    {
                        c.dropped += 1;
                    }
                }
            }
        }
    }

    // ----- roles -----

    fn role_request(&mut self, vi: usize, conn: ConnId, r: &Role) -> Result<Message, OfError> {
        let v = &mut self.vswitches[vi];
        let current = v.conns.get(&conn).map_or(ControllerRole::Equal, |c| c.role);
        match r.role {
            ControllerRole::NoChange => {}
            ControllerRole::Equal => {
                if let Some(c) = v.conns.get_mut(&conn) {
                    c.role = ControllerRole::Equal;
                }
            }
            ControllerRole::Master | ControllerRole::Slave => {
                // Spec 6.3.5: a generation id older than the newest seen is stale
                // (compared as a signed distance, so it wraps).
                if let Some(g) = v.generation_id
                    && (r.generation_id.wrapping_sub(g) as i64) < 0
                {
                    return Err(OfError::StaleRole {
                        generation_id: r.generation_id,
                    });
                }
                v.generation_id = Some(r.generation_id);
                if r.role == ControllerRole::Master {
                    for (id, c) in &mut v.conns {
                        if *id != conn && c.role == ControllerRole::Master {
                            c.role = ControllerRole::Slave;
                        }
                    }
                }
                if let Some(c) = v.conns.get_mut(&conn) {
                    c.role = r.role;
                }
            }
        }
        let role = if r.role == ControllerRole::NoChange {
            current
        } else {
            r.role
        };
        Ok(Message::RoleReply(Role {
            role,
            generation_id: v.generation_id.unwrap_or(r.generation_id),
        }))
    }

    // ----- packet-in / packet-out -----

    fn packet_in(&mut self, p: &packet_io::PacketIn) {
        let Some(vi) = self
            .vswitches
            .iter()
            .position(|v| v.dp_id == p.meta.vswitch)
        else {
            return;
        };
        if self.vswitches[vi].standalone.is_some() {
            self.standalone_packet(vi, p.meta.in_port, &p.frame);
            return;
        }
        let mut fields = vec![of::OxmField::InPort(of::Masked::exact(p.meta.in_port))];
        if p.meta.metadata != 0 {
            fields.push(of::OxmField::Metadata(of::Masked::exact(p.meta.metadata)));
        }
        let msg = Message::PacketIn(PacketIn {
            buffer_id: OFP_NO_BUFFER,
            total_len: u16::try_from(p.meta.frame_len).unwrap_or(u16::MAX),
            reason: p.meta.reason,
            table_id: p.meta.table,
            cookie: p.meta.cookie,
            r#match: of::Match::new(fields),
            data: Bytes::copy_from_slice(&p.frame),
        });
        let bit = 1u32 << p.meta.reason.min(31);
        let mut delivered = false;
        for c in self.vswitches[vi].conns.values_mut() {
            if !async_wants(&c.async_config.packet_in_mask, c.role, bit) {
                continue;
            }
            if c.outbox.send(0, &msg).is_ok() {
                delivered = true;
            } else {
                c.dropped += 1;
            }
        }
        if delivered {
            self.stats.packet_ins += 1;
        } else {
            self.stats.packet_ins_dropped += 1;
        }
    }

    /// Inject `frame` from `in_port` to each of `outs` (virtual ports or OFPP_TABLE), at
    /// the physical switch where `in_port` lives (any for OFPP_CONTROLLER).
    fn inject(&self, vi: usize, in_port: u32, outs: &[u32], frame: &[u8]) -> Result<(), OfError> {
        let v = &self.vswitches[vi];
        let switch = v
            .port(in_port)
            .map(|p| p.switch.clone())
            .or_else(|| self.fabric.datapaths().next().map(|(s, _)| s.clone()))
            .ok_or(OfError::BadPort { port: in_port })?;
        let dp = self
            .fabric
            .datapath(&switch)
            .ok_or(OfError::BadPort { port: in_port })?;
        for &out in outs {
            dp.packet_out(v.dp_id, in_port, out, frame)
                .map_err(|e| OfError::Datapath(e.to_string()))?;
        }
        Ok(())
    }

    fn packet_out(&mut self, vi: usize, po: &of::PacketOut) -> Result<(), OfError> {
        if po.buffer_id != OFP_NO_BUFFER {
            return Err(OfError::BufferUnknown {
                buffer_id: po.buffer_id,
            });
        }
        if po.data.is_empty() {
            return Err(OfError::NoPacket);
        }
        let v = &self.vswitches[vi];
        if po.in_port != port::CONTROLLER && po.in_port != port::ANY && v.port(po.in_port).is_none()
        {
            return Err(OfError::BadPort { port: po.in_port });
        }
        let actions: Vec<Action> = po
            .actions
            .iter()
            .map(translate::action_from_of)
            .collect::<Result<_, _>>()?;
        // Header changes are made here, on the frame; outputs are injected as they come.
        let mut frame = po.data.to_vec();
        let mut plan: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
        for a in &actions {
            match *a {
                Action::Output { port: p, .. } => {
                    let outs: Vec<u32> = match p {
                        port_no::FLOOD | port_no::ALL => v
                            .ports
                            .iter()
                            .map(|x| x.port_no)
                            .filter(|x| *x != po.in_port)
                            .collect(),
                        port_no::IN_PORT => vec![po.in_port],
                        port_no::TABLE => vec![port_no::TABLE],
                        p if v.port(p).is_some() => vec![p],
                        p => return Err(OfError::BadPacketOutPort { port: p }),
                    };
                    if outs.contains(&port::CONTROLLER) || outs.contains(&port::ANY) {
                        return Err(OfError::BadPacketOutPort { port: p });
                    }
                    plan.push((frame.clone(), outs));
                }
                other => edit_frame(&mut frame, &other)?,
            }
        }
        for (f, outs) in plan {
            self.inject(vi, po.in_port, &outs, &f)?;
        }
        Ok(())
    }

    // ----- fail-standalone -----

    /// Enter or leave fail-standalone as controllers come and go.
    fn update_fail_mode(&mut self, vi: usize) {
        let migration = self.active_id();
        let v = &mut self.vswitches[vi];
        let mut journal = migrate::batch_journal(&mut self.journal, migration, &v.name);
        let want = v.fail_mode == FailMode::Standalone && v.conns.is_empty();
        match (want, v.standalone.is_some()) {
            (true, false) => {
                let mut rule = Rule::new(
                    0,
                    0,
                    flow::Match::default(),
                    Instructions::apply(vec![Action::output(port_no::CONTROLLER)]),
                );
                rule.cookie = STANDALONE_COOKIE;
                let added = v
                    .table
                    .apply_with(&mut self.fabric, &FlowMod::add(rule), &mut journal);
                let miss_entry = match added {
                    Ok(o) => o.added.first().copied(),
                    Err(e) => {
                        eprintln!("lime: {}: fail-standalone: {e}", v.name);
                        None
                    }
                };
                v.standalone = Some(Standalone {
                    miss_entry,
                    ..Standalone::default()
                });
            }
            (false, true) => {
                if let Some(id) = v.standalone.take().and_then(|s| s.miss_entry)
                    && let Err(e) = v.table.remove_with(
                        &mut self.fabric,
                        &[(id, vswitch::Why::Other)],
                        &mut journal,
                    )
                {
                    eprintln!("lime: {}: leaving fail-standalone: {e}", v.name);
                }
            }
            _ => {}
        }
    }

    /// Learning switch: remember where the source lives, send to where the destination
    /// lives, flood if unknown.
    fn standalone_packet(&mut self, vi: usize, in_port: u32, frame: &[u8]) {
        if frame.len() < 14 {
            return;
        }
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&frame[..6]);
        src.copy_from_slice(&frame[6..12]);
        let v = &mut self.vswitches[vi];
        let Some(st) = v.standalone.as_mut() else {
            return;
        };
        if src[0] & 1 == 0 {
            st.macs.insert(src, in_port);
        }
        let outs: Vec<u32> = match st.macs.get(&dst) {
            Some(&p) if dst[0] & 1 == 0 && p != in_port => vec![p],
            Some(_) if dst[0] & 1 == 0 => Vec::new(),
            _ => v
                .ports
                .iter()
                .map(|p| p.port_no)
                .filter(|p| *p != in_port)
                .collect(),
        };
        if let Err(e) = self.inject(vi, in_port, &outs, frame) {
            eprintln!(
                "lime: {}: fail-standalone forwarding: {e}",
                self.vswitches[vi].name
            );
        }
    }

    // ----- multipart -----

    /// The entries a flow/aggregate stats request selects (spec 7.3.5.2: table,
    /// cookie under mask, out_port, out_group, non-strict match).
    fn selected<'a>(
        v: &'a VswitchOf,
        req: &'a FlowStatsRequest,
    ) -> impl Iterator<Item = &'a FlowEntry> + 'a {
        let key = translate::match_from_of(&req.r#match).compile();
        v.table.entries().filter(move |e| {
            (req.table_id == table::ALL || e.rule.table == req.table_id)
                && (e.rule.cookie & req.cookie_mask) == (req.cookie & req.cookie_mask)
                && (req.out_port == port::ANY || e.rule.instructions.outputs_to(req.out_port))
                && req.out_group == group::ANY
                && flow::matching::covers(&key, &e.key)
        })
    }

    fn entry_stats(&self, vi: usize, e: &FlowEntry) -> RuleStats {
        self.vswitches[vi]
            .table
            .stats(&self.fabric, e.id)
            .unwrap_or_default()
    }

    /// [`Self::entry_stats`] of each of `entries`, read together (one batched read per
    /// physical switch); if that fails, one by one, so one unreadable entry reads zero
    /// alone.
    fn entries_stats(&self, vi: usize, entries: &[&FlowEntry]) -> Vec<RuleStats> {
        let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
        self.vswitches[vi]
            .table
            .stats_many(&self.fabric, &ids)
            .unwrap_or_else(|_| entries.iter().map(|e| self.entry_stats(vi, e)).collect())
    }

    fn multipart(
        &self,
        vi: usize,
        body: &MultipartRequestBody,
    ) -> Result<Vec<MultipartReply>, OfError> {
        let v = &self.vswitches[vi];
        let one = |b: MultipartReplyBody| Ok(vec![MultipartReply::new(b)]);
        match body {
            MultipartRequestBody::Desc => one(MultipartReplyBody::Desc(Desc {
                mfr_desc: "LIME".into(),
                hw_desc: "LIME eBPF virtual switch".into(),
                sw_desc: format!("lime {}", env!("CARGO_PKG_VERSION")),
                serial_num: v.name.clone(),
                dp_desc: format!("{} (tenant {})", v.name, v.tenant),
            })),
            MultipartRequestBody::Flow(req) => {
                let entries: Vec<&FlowEntry> = Self::selected(v, req).collect();
                let counters = self.entries_stats(vi, &entries);
                let stats: Vec<FlowStats> = entries
                    .into_iter()
                    .zip(counters)
                    .map(|(e, st)| {
                        let (duration_sec, duration_nsec) = duration_parts(e.added.elapsed());
                        FlowStats {
                            table_id: e.rule.table,
                            duration_sec,
                            duration_nsec,
                            priority: e.rule.priority,
                            idle_timeout: e.rule.idle_timeout,
                            hard_timeout: e.rule.hard_timeout,
                            flags: e.rule.flags,
                            cookie: e.rule.cookie,
                            packet_count: st.packets,
                            byte_count: st.bytes,
                            r#match: translate::match_to_of(&e.rule.matches),
                            instructions: translate::instructions_to_of(&e.rule.instructions),
                        }
                    })
                    .collect();
                Ok(split(stats, FLOWS_PER_REPLY, MultipartReplyBody::Flow))
            }
            MultipartRequestBody::Aggregate(req) => {
                let mut agg = AggregateStats {
                    packet_count: 0,
                    byte_count: 0,
                    flow_count: 0,
                };
                let entries: Vec<&FlowEntry> = Self::selected(v, req).collect();
                for st in self.entries_stats(vi, &entries) {
                    agg.packet_count += st.packets;
                    agg.byte_count += st.bytes;
                    agg.flow_count += 1;
                }
                one(MultipartReplyBody::Aggregate(agg))
            }
            MultipartRequestBody::Table => {
                let mut tables: Vec<TableStats> = (0..lime_common::limits::MAX_TABLES)
                    .map(|t| TableStats {
                        table_id: u8::try_from(t).unwrap_or(u8::MAX),
                        active_count: 0,
                        lookup_count: 0,
                        matched_count: 0,
                    })
                    .collect();
                let entries: Vec<&FlowEntry> = v.table.entries().collect();
                for (e, st) in entries.iter().zip(self.entries_stats(vi, &entries)) {
                    if let Some(t) = tables.get_mut(usize::from(e.rule.table)) {
                        t.active_count += 1;
                        t.matched_count += st.packets;
                    }
                }
                // The datapath counts hits per rule, not lookups per table: a lookup
                // that missed every entry is not counted.
                for t in &mut tables {
                    t.lookup_count = t.matched_count;
                }
                one(MultipartReplyBody::Table(tables))
            }
            MultipartRequestBody::PortStats { port_no } => {
                let mut out = Vec::new();
                for p in v
                    .ports
                    .iter()
                    .filter(|p| *port_no == port::ANY || p.port_no == *port_no)
                {
                    let st = super::state::plus(
                        p.before,
                        self.fabric
                            .datapath(&p.switch)
                            .and_then(|d| d.port_stats(p.ifindex).ok())
                            .unwrap_or_default(),
                    );
                    out.push(PortStats {
                        port_no: p.port_no,
                        rx_packets: st.rx_packets,
                        tx_packets: st.tx_packets,
                        rx_bytes: st.rx_bytes,
                        tx_bytes: st.tx_bytes,
                        rx_dropped: st.rx_dropped,
                        tx_dropped: 0,
                        rx_errors: 0,
                        tx_errors: st.tx_errors,
                        rx_frame_err: 0,
                        rx_over_err: 0,
                        rx_crc_err: 0,
                        collisions: 0,
                        duration_sec: 0,
                        duration_nsec: 0,
                    });
                }
                if out.is_empty() && *port_no != port::ANY {
                    return Err(OfError::BadPort { port: *port_no });
                }
                one(MultipartReplyBody::PortStats(out))
            }
            MultipartRequestBody::PortDesc => one(MultipartReplyBody::PortDesc(
                v.ports.iter().map(port_desc).collect(),
            )),
            MultipartRequestBody::TableFeatures(set) => {
                if !set.is_empty() {
                    return Err(OfError::TablesFixed);
                }
                Ok(split(
                    table_features(),
                    2,
                    MultipartReplyBody::TableFeatures,
                ))
            }
        }
    }

    // ----- dump-flows -----

    fn dump(&self, name: &str) -> Result<Vec<FlowDump>, String> {
        let vi = self
            .vswitches
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| format!("no virtual switch {name:?}"))?;
        let v = &self.vswitches[vi];
        let entries: Vec<&FlowEntry> = v.table.entries().collect();
        let mut out: Vec<FlowDump> = entries
            .iter()
            .zip(self.entries_stats(vi, &entries))
            .map(|(e, st)| FlowDump::new(e, st))
            .collect();
        out.sort_by(|a, b| {
            a.table
                .cmp(&b.table)
                .then(b.priority.cmp(&a.priority))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }
}

/// Whether a connection's async mask (index 0: master/equal, 1: slave) has `bit`.
fn async_wants(mask: &[u32; 2], role: ControllerRole, bit: u32) -> bool {
    let i = usize::from(role == ControllerRole::Slave);
    mask[i] & bit != 0
}

fn split<T>(
    items: Vec<T>,
    per: usize,
    mk: fn(Vec<T>) -> MultipartReplyBody,
) -> Vec<MultipartReply> {
    if items.is_empty() {
        return vec![MultipartReply::new(mk(Vec::new()))];
    }
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(per).collect());
    }
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| MultipartReply {
            flags: if i + 1 < n {
                multipart_flags::REPLY_MORE
            } else {
                0
            },
            body: mk(c),
        })
        .collect()
}

fn port_desc(p: &super::state::VPort) -> PortDesc {
    let mut name = p.ifname.clone();
    name.truncate(15);
    let (config, state) = match p.link {
        Link::Live => (0, port_state::LIVE),
        Link::Down | Link::Gone => (0, port_state::LINK_DOWN),
        Link::Disabled => (port_config::PORT_DOWN, port_state::LINK_DOWN),
    };
    PortDesc {
        port_no: p.port_no,
        hw_addr: p.mac,
        name,
        config,
        state,
        curr: port_features::F_10GB_FD | port_features::COPPER,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 10_000_000,
    }
}

/// Apply a header-changing action to a packet-out frame (spec 5.12 semantics, as the
/// datapath applies them to packets).
fn edit_frame(frame: &mut Vec<u8>, a: &Action) -> Result<(), OfError> {
    let tagged = |f: &[u8]| f.len() >= 18 && matches!([f[12], f[13]], [0x81, 0x00] | [0x88, 0xa8]);
    match *a {
        Action::SetEthDst(mac) if frame.len() >= 14 => frame[..6].copy_from_slice(&mac),
        Action::SetEthSrc(mac) if frame.len() >= 14 => frame[6..12].copy_from_slice(&mac),
        Action::SetVlanVid(vid) if tagged(frame) => {
            let tci = u16::from_be_bytes([frame[14], frame[15]]);
            let tci = (tci & 0xf000) | (vid & 0x0fff);
            frame[14..16].copy_from_slice(&tci.to_be_bytes());
        }
        Action::PushVlan(tpid) if frame.len() >= 14 => {
            // A new outer tag copies the inner VID/PCP if there is one (spec 7.2.5).
            let tci = if tagged(frame) {
                [frame[14], frame[15]]
            } else {
                [0, 0]
            };
            let t = tpid.to_be_bytes();
            frame.splice(12..12, [t[0], t[1], tci[0], tci[1]]);
        }
        Action::PopVlan if tagged(frame) => {
            frame.drain(12..16);
        }
        Action::Output { .. } => {}
        _ => {
            return Err(OfError::Flow(flow::FlowError::MatchInconsistent {
                action: "packet-out action on this frame",
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_entries_are_read_when_their_timeout_could_run_out_or_a_tenth_of_it() {
        const S: u64 = 1_000_000_000;
        // 10 s timeout, last hit 2 s ago: next read in 1 s (the cap), not at expiry.
        assert_eq!(next_idle_read(8 * S, 10 * S, 10 * S), 11 * S);
        // Last hit 9.5 s ago: when it would run out, 0.5 s from now.
        assert_eq!(next_idle_read(S / 2, 10 * S, 10 * S), 10 * S + S / 2);
        // 2 s timeout: a tenth of it, 200 ms.
        assert_eq!(next_idle_read(10 * S, 2 * S, 10 * S), 10 * S + S / 5);
        // 1 s timeout: a tenth would be 100 ms = SWEEP; never below SWEEP.
        assert_eq!(next_idle_read(10 * S, S, 10 * S), 10 * S + S / 10);
        // Never beyond u64.
        assert_eq!(next_idle_read(u64::MAX - 1, 10 * S, u64::MAX - 1), u64::MAX);
    }

    #[test]
    fn packet_out_header_actions_edit_the_frame() {
        let mut f: Vec<u8> = (0..60).collect();
        edit_frame(&mut f, &Action::SetEthDst([2; 6])).expect("set dst");
        edit_frame(&mut f, &Action::SetEthSrc([3; 6])).expect("set src");
        assert_eq!((&f[..6], &f[6..12]), (&[2u8; 6][..], &[3u8; 6][..]));
        assert!(
            edit_frame(&mut f, &Action::SetVlanVid(5)).is_err(),
            "no tag to set"
        );
        edit_frame(&mut f, &Action::PushVlan(0x8100)).expect("push");
        assert_eq!(f.len(), 64);
        assert_eq!(&f[12..16], &[0x81, 0x00, 0, 0]);
        edit_frame(&mut f, &Action::SetVlanVid(0x123)).expect("set vid");
        assert_eq!(&f[14..16], &[0x01, 0x23]);
        edit_frame(&mut f, &Action::PopVlan).expect("pop");
        assert_eq!(f.len(), 60);
        assert_eq!(f[12], 12, "the original ethertype bytes are back");
    }

    #[test]
    fn multipart_replies_are_split_with_reply_more() {
        let r = split((0..250u8).collect(), 100, |v: Vec<u8>| {
            MultipartReplyBody::Flow(
                v.into_iter()
                    .map(|t| FlowStats {
                        table_id: t,
                        duration_sec: 0,
                        duration_nsec: 0,
                        priority: 0,
                        idle_timeout: 0,
                        hard_timeout: 0,
                        flags: 0,
                        cookie: 0,
                        packet_count: 0,
                        byte_count: 0,
                        r#match: of::Match::all(),
                        instructions: Vec::new(),
                    })
                    .collect(),
            )
        });
        assert_eq!(r.len(), 3);
        assert!(r[0].more() && r[1].more() && !r[2].more());
        assert!(
            split(Vec::<u8>::new(), 100, |_| MultipartReplyBody::Table(
                Vec::new()
            ))
            .iter()
            .all(|m| !m.more())
        );
    }
}

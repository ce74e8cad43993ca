//! The core's side of a migration: run the engine on the virtual switch's table inside
//! the core thread, one step at a time ([`Core::migration_step`]: the core serves the
//! controllers between steps, nothing interleaves inside one); journal every step,
//! every batch of table changes between steps before it is published (`batch`, and
//! `batch-done` with the counters of the entries it modified), and the tables whole
//! before the next step after such changes (`tables`, see
//! [`crate::migration::journal`]); stream the steps to whoever asked ([`Progress`]);
//! keep the status view current ([`super::super::status`]); and after every step
//! refresh where the virtual ports live, keeping their link state (a host that moved
//! is not a port that went down: no PORT_STATUS).
//!
//! After a crash, [`Core::recover`] settles the steps the journal shows in doubt and
//! resumes the migration (see the journal's module docs for the rules).
use std::{
    collections::{BTreeSet, VecDeque},
    sync::mpsc,
};

use super::Core;
use crate::{
    fabric::{Fabric, RulesState},
    migration::{
        Leg, Progress, Report, Step, Strategy,
        journal::{
            self, Counters, Journal, JournaledBatch, Outcome, Record, Recovery, SavedBatch,
            SavedTable, Snapshot,
        },
        migrate_with,
    },
    ofswitch::{
        ports_of,
        status::{self, Live, MigrationStatus},
    },
    vswitch::{BatchDelta, BatchHooks, VirtualSwitch},
};

/// The hooks that journal a batch of table changes of virtual switch `vswitch` while
/// migration `migration` runs: a `batch` record after each version is staged and before
/// it is published, and — when the table-full retry is about to reclaim a version it
/// published early — a `batch-done` with the final counters of the rules that version
/// replaced, before they leave the kernel (see [`crate::migration::journal`]). A journal
/// that cannot be written is reported and the batch still goes on (refusing the
/// controller's flow-mods for it would be visible); the migration then takes no further
/// step ([`Journal::failure`]).
pub(super) struct BatchJournal<'a> {
    journal: &'a mut Option<Journal>,
    migration: Option<u64>,
    vswitch: &'a str,
}

pub(super) fn batch_journal<'a>(
    journal: &'a mut Option<Journal>,
    migration: Option<u64>,
    vswitch: &'a str,
) -> BatchJournal<'a> {
    BatchJournal {
        journal,
        migration,
        vswitch,
    }
}

impl BatchHooks for BatchJournal<'_> {
    fn staged(&mut self, d: &BatchDelta<'_>) {
        let (Some(id), Some(j)) = (self.migration, self.journal.as_mut()) else {
            return;
        };
        let batch = SavedBatch::of(self.vswitch, d);
        if let Err(e) = j.append(Record::Batch { id, batch }) {
            eprintln!("lime: {e}");
        }
    }

    fn reclaiming(&mut self, vsw: &VirtualSwitch, fabric: &Fabric) {
        let (Some(id), Some(j)) = (self.migration, self.journal.as_mut()) else {
            return;
        };
        if j.modified().is_empty() {
            return;
        }
        let mut bases = Vec::new();
        for (vs, ids) in j.modified() {
            if *vs == self.vswitch {
                settled_bases(vsw, fabric, ids, &mut bases);
            }
        }
        if let Err(e) = j.append(Record::BatchDone { id, bases }) {
            eprintln!("lime: {e}");
        }
    }
}

/// The counters `batch-done` records for the entries `ids` of `vsw` a batch modified
/// (those still there): each one's base with the final counters of the rules its
/// modifies replaced ([`VirtualSwitch::settled_base`]; the caller waited out the grace
/// period). Appended to `bases`.
fn settled_bases(
    vsw: &VirtualSwitch,
    fabric: &Fabric,
    ids: &[u64],
    bases: &mut Vec<(u64, Counters)>,
) {
    for id in ids {
        if vsw.entry(*id).is_none() {
            continue;
        }
        match vsw.settled_base(fabric, *id) {
            Ok(base) => bases.push((*id, Counters::from(base))),
            Err(e) => eprintln!(
                "lime: {}: reading replaced rules' counters: {e}",
                vsw.name()
            ),
        }
    }
}

/// A journaled batch is published on every copy (its `batch-done`, if any, comes
/// next): the `batch-published` fault-injection point.
pub(super) fn batch_published(migration: Option<u64>) {
    if migration.is_some() {
        journal::fault_point("batch-published");
    }
}

/// Everything a leg needs besides the table and the fabric.
struct LegCtx<'a> {
    id: u64,
    vswitch: &'a str,
    to: &'a str,
    journal: &'a mut Option<Journal>,
    live: &'a Live,
    events: Option<&'a mpsc::Sender<Progress>>,
}

impl LegCtx<'_> {
    fn write(&mut self, rec: Record) -> Result<(), String> {
        match self.journal.as_mut() {
            Some(j) => j.append(rec).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn tell(&self, p: Progress) {
        if let Some(tx) = self.events {
            let _ = tx.send(p);
        }
    }

    /// Journal a step, then show it (status view, progress stream).
    fn observe(&mut self, from: &str, step: Step<'_>) -> Result<(), String> {
        let (id, from_s, to) = (self.id, from.to_owned(), self.to.to_owned());
        self.write(match step {
            Step::Phase(phase) => Record::Phase {
                id,
                from: from_s,
                phase,
            },
            Step::CloneStaged { ids } => Record::CloneStaged {
                id,
                from: from_s,
                on: None,
                ids: ids.to_vec(),
            },
            Step::Cloned => Record::Cloned {
                id,
                from: from_s,
                on: None,
            },
            Step::HostMoving { host } => Record::HostMoving {
                id,
                host: host.to_owned(),
            },
            Step::HostMoved { host, downtime_ms } => Record::HostMoved {
                id,
                host: host.to_owned(),
                to: to.clone(),
                downtime_ms,
            },
            Step::LinkMoving { port } => Record::LinkMoving { id, port },
            Step::LinkCarried { .. } => {
                journal::fault_point("link-carried");
                return Ok(());
            }
            Step::LinkMoved { port, took_ms } => Record::LinkMoved { id, port, took_ms },
            Step::CopyRemoved { switch, finals } => Record::CopyRemoved {
                id,
                switch: switch.to_owned(),
                finals: finals
                    .iter()
                    .map(|(e, s)| (*e, Counters::from(*s)))
                    .collect(),
            },
            Step::CopyRetired { switch } => Record::CopyRetired {
                id,
                switch: switch.to_owned(),
            },
        })?;
        let vswitch = self.vswitch;
        status::update(self.live, |v| {
            let vs = v.status.vswitches.iter_mut().find(|s| s.name == vswitch);
            match step {
                Step::Phase(p) => {
                    if let Some(m) = v.status.migration.as_mut() {
                        m.phase = Some(p);
                        from.clone_into(&mut m.from);
                    }
                }
                Step::Cloned => {
                    if let Some(vs) = vs
                        && !vs.copies.contains(&to)
                    {
                        vs.copies.push(to.clone());
                        vs.copies.sort();
                    }
                }
                Step::HostMoved { host, .. } => {
                    if let Some(vs) = vs {
                        for p in vs.ports.iter_mut().filter(|p| p.host == host) {
                            p.switch.clone_from(&to);
                        }
                    }
                    if let Some(m) = v.status.migration.as_mut() {
                        m.hosts_moved.push(host.to_owned());
                    }
                }
                Step::CopyRetired { switch } => {
                    if let Some(vs) = vs {
                        vs.copies.retain(|c| c != switch);
                    }
                }
                Step::CloneStaged { .. }
                | Step::HostMoving { .. }
                | Step::CopyRemoved { .. }
                | Step::LinkMoving { .. }
                | Step::LinkCarried { .. }
                | Step::LinkMoved { .. } => {}
            }
        });
        match step {
            Step::Phase(phase) => self.tell(Progress::Phase {
                vswitch: vswitch.to_owned(),
                from: from.to_owned(),
                to,
                phase,
            }),
            Step::HostMoved { host, downtime_ms } => self.tell(Progress::HostMoved {
                vswitch: vswitch.to_owned(),
                host: host.to_owned(),
                to,
                downtime_ms,
            }),
            _ => {}
        }
        Ok(())
    }
}

/// The migration the core is running, between two of its steps.
pub(super) struct Active {
    id: u64,
    /// Index of the virtual switch.
    vi: usize,
    vswitch: String,
    to: String,
    strategy: Strategy,
    /// Legs not done yet (the first is running).
    legs: VecDeque<String>,
    /// The running leg, once it started.
    leg: Option<Leg>,
    reports: Vec<Report>,
    reply: mpsc::Sender<Result<Vec<Report>, String>>,
    events: Option<mpsc::Sender<Progress>>,
}

/// Run the legs `legs` (source physical switches) of a migration, one after the other
/// (all at once: a recovery, before the core serves anything).
fn run_legs(
    fabric: &mut Fabric,
    table: &mut VirtualSwitch,
    ctx: &mut LegCtx<'_>,
    legs: &[String],
    strategy: Strategy,
) -> Result<Vec<Report>, String> {
    let mut reports = Vec::new();
    for from in legs {
        let r = migrate_with(fabric, table, from, ctx.to, strategy, |s| {
            ctx.observe(from, s)
        })
        .map_err(|e| e.to_string())?;
        ctx.write(Record::LegDone {
            id: ctx.id,
            report: r.clone(),
        })?;
        ctx.tell(Progress::Done { report: r.clone() });
        reports.push(r);
    }
    Ok(reports)
}

impl Core {
    /// The tables and copies of every virtual switch, for a journal's `begin`.
    fn snapshot(&self) -> Snapshot {
        Snapshot::now(
            self.vswitches
                .iter()
                .map(|v| SavedTable::of(&v.table, self.fabric.copies(&v.name).unwrap_or_default()))
                .collect(),
        )
    }

    /// Where the ports of virtual switch `i` live now (links keep their state, ports
    /// their identity and the hardware address the controller knows).
    fn refresh_ports(&mut self, i: usize) {
        let Some(spec) = self
            .fabric
            .lab()
            .state()
            .topology
            .vswitch(&self.vswitches[i].name)
            .cloned()
        else {
            return;
        };
        let fresh = ports_of(&self.fabric, &spec);
        for p in &mut self.vswitches[i].ports {
            if let Some(n) = fresh.iter().find(|n| n.port_no == p.port_no) {
                if (&p.switch, p.ifindex) != (&n.switch, n.ifindex)
                    && let Some(last) = self
                        .fabric
                        .datapath(&p.switch)
                        .and_then(|d| d.port_stats(p.ifindex).ok())
                {
                    // The old interface is gone; its counters stay the port's.
                    p.before = super::super::state::plus(p.before, last);
                }
                p.switch.clone_from(&n.switch);
                p.ifindex = n.ifindex;
                p.ifname.clone_from(&n.ifname);
            }
        }
        // A port that had no interface (a virtual link end whose veth pair died with a
        // physical switch that is gone) has one again once a roll-back made it anew.
        let ports = &mut self.vswitches[i].ports;
        for n in fresh {
            if !ports.iter().any(|p| p.port_no == n.port_no) {
                ports.push(n);
            }
        }
    }

    fn live_start(&mut self, m: MigrationStatus) {
        let mut st = self.status();
        st.migration = Some(m);
        status::update(&self.live, |v| {
            v.status = st;
            v.running = true;
        });
    }

    fn live_stop(&self) {
        status::update(&self.live, |v| {
            v.running = false;
            v.status.migration = None;
        });
    }

    fn end(&mut self, id: u64, result: &Result<Vec<Report>, String>, outcome: Outcome) {
        let rec = Record::End {
            id,
            outcome: if result.is_ok() {
                outcome
            } else {
                Outcome::Failed
            },
            error: result.as_ref().err().cloned(),
        };
        if let Some(j) = self.journal.as_mut()
            && let Err(e) = j.append(rec)
        {
            eprintln!("lime: {e}");
        }
    }

    /// Start moving every host of `vswitch` to physical switch `to`, one source switch
    /// at a time (journaled, told to `events`): checks the request, journals `begin`
    /// and makes the migration the core's active one; [`Core::migration_step`] runs its
    /// steps. A request that cannot start is answered at once.
    pub(super) fn start_migration(
        &mut self,
        vswitch: &str,
        to: &str,
        strategy: Strategy,
        reply: mpsc::Sender<Result<Vec<Report>, String>>,
        events: Option<mpsc::Sender<Progress>>,
    ) {
        match self.begin(vswitch, to, strategy) {
            Ok((id, vi, legs)) => {
                self.active = Some(Active {
                    id,
                    vi,
                    vswitch: vswitch.to_owned(),
                    to: to.to_owned(),
                    strategy,
                    legs: legs.into(),
                    leg: None,
                    reports: Vec::new(),
                    reply,
                    events,
                });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn begin(
        &mut self,
        vswitch: &str,
        to: &str,
        strategy: Strategy,
    ) -> Result<(u64, usize, Vec<String>), String> {
        let i = self
            .vswitches
            .iter()
            .position(|v| v.name == vswitch)
            .ok_or_else(|| format!("unknown virtual switch {vswitch:?}"))?;
        let state = self.fabric.lab().state();
        if state.topology.switch(to).is_none() {
            return Err(format!("unknown physical switch {to:?}"));
        }
        let spec = state
            .topology
            .vswitch(vswitch)
            .cloned()
            .ok_or_else(|| format!("unknown virtual switch {vswitch:?}"))?;
        let hosts: Vec<(String, String)> = spec
            .ports
            .iter()
            .filter_map(|p| {
                state
                    .host(&p.host)
                    .map(|h| (p.host.clone(), h.switch.clone()))
            })
            .collect();
        // Virtual link ends move with their virtual switch, hosts or not.
        let links: Vec<(u32, String)> = state
            .topology
            .vlink_ends_of(vswitch)
            .map(|(e, _)| (e.port, e.switch.clone()))
            .collect();
        let link_ends = links.iter().map(|(_, sw)| sw);
        let sources: BTreeSet<String> = hosts
            .iter()
            .map(|(_, s)| s)
            .chain(link_ends)
            .filter(|s| *s != to)
            .cloned()
            .collect();
        if sources.is_empty() {
            return Err(format!("every host of {vswitch} is already on {to}"));
        }
        let legs: Vec<String> = sources.into_iter().collect();
        let id = journal::new_id();
        // The snapshot holds each entry's folded counters: fold what waits first.
        if self.journal.is_some() {
            self.settle_all();
        }
        let snapshot = self.snapshot();
        if let Some(j) = self.journal.as_mut() {
            j.append(Record::Begin {
                id,
                vswitch: vswitch.to_owned(),
                to: to.to_owned(),
                strategy,
                legs: legs.clone(),
                hosts,
                links,
                snapshot,
            })
            .map_err(|e| format!("not migrating: {e}"))?;
        }
        self.live_start(MigrationStatus {
            vswitch: vswitch.to_owned(),
            from: legs[0].clone(),
            to: to.to_owned(),
            strategy,
            phase: None,
            hosts_moved: Vec::new(),
            recovering: false,
        });
        Ok((id, i, legs))
    }

    /// Run the next step of the active migration (a clone, one host's move, a
    /// retire), then refresh where the virtual ports live, so whatever the core does
    /// before the next step (packet-outs, port statistics, the link check) sees them
    /// where they are. The migration ends after its last step or a failing one.
    pub(super) fn migration_step(&mut self) {
        // A `clone` migration stops between two steps once the journal lacks a record:
        // its copies all forward, so wherever it stops is a place to run from. (`move`
        // goes on: its frozen source forwards nothing until its hosts have moved.)
        if let Some(why) = self.journal.as_ref().and_then(Journal::failure)
            && self
                .active
                .as_ref()
                .is_some_and(|a| a.strategy == Strategy::Clone)
            && let Some(a) = self.active.take()
        {
            let copies = self.fabric.copies(&a.vswitch).unwrap_or_default();
            let msg = format!(
                "migration of {} stopped: the journal could not be written ({why}); {} runs on {} as the steps so far left it (nothing lost); migrate it again once the journal can be written",
                a.vswitch,
                a.vswitch,
                copies.join(", ")
            );
            eprintln!("lime: {msg}");
            self.finish(a, Err(msg));
            return;
        }
        self.journal_stale_tables();
        let Some(mut a) = self.active.take() else {
            return;
        };
        let result = self.advance(&mut a);
        // Every virtual switch's ports: a virtual link end that moved gave its peer
        // virtual switch's port a new interface too.
        for j in 0..self.vswitches.len() {
            self.refresh_ports(j);
        }
        match result {
            Ok(false) => self.active = Some(a),
            Ok(true) => self.finish(a, Ok(())),
            Err(e) => self.finish(a, Err(e)),
        }
    }

    /// Whether a migration is running.
    pub(super) fn migrating(&self) -> bool {
        self.active.is_some()
    }

    /// The id of the running migration, if one is.
    pub(super) fn active_id(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.id)
    }

    /// Run every step left of the active migration (the core is stopping).
    pub(super) fn finish_migration(&mut self) {
        while self.active.is_some() {
            self.migration_step();
        }
    }

    /// One step; `true` when the migration is over.
    fn advance(&mut self, a: &mut Active) -> Result<bool, String> {
        let leg = match a.leg.as_mut() {
            Some(l) => l,
            None => {
                let Some(from) = a.legs.front().cloned() else {
                    return Ok(true);
                };
                let l = Leg::start(
                    &self.fabric,
                    &self.vswitches[a.vi].table,
                    &from,
                    &a.to,
                    a.strategy,
                )
                .map_err(|e| e.to_string())?;
                a.leg.insert(l)
            }
        };
        let from = a.legs.front().cloned().unwrap_or_default();
        let mut ctx = LegCtx {
            id: a.id,
            vswitch: &a.vswitch,
            to: &a.to,
            journal: &mut self.journal,
            live: &self.live,
            events: a.events.as_ref(),
        };
        let done = leg
            .step(
                &mut self.fabric,
                &mut self.vswitches[a.vi].table,
                &mut |s| ctx.observe(&from, s),
            )
            .map_err(|e| e.to_string())?;
        if !done {
            return Ok(false);
        }
        let r = a.leg.take().map(Leg::into_report).ok_or("no leg")?;
        ctx.write(Record::LegDone {
            id: a.id,
            report: r.clone(),
        })?;
        ctx.tell(Progress::Done { report: r.clone() });
        a.reports.push(r);
        a.legs.pop_front();
        Ok(a.legs.is_empty())
    }

    fn finish(&mut self, a: Active, result: Result<(), String>) {
        let result = result.map(|()| a.reports);
        self.end(a.id, &result, Outcome::Done);
        self.live_stop();
        let _ = a.reply.send(result);
        // Dropping `a.events` ends the progress stream.
    }

    /// After a batch of table changes, before anything after it is answered: if the
    /// batches since the last `batch-done` modified entries, wait until the rules they
    /// replaced can be reclaimed (the rest of the grace period: batches publish with
    /// deferred reclaim, see the module docs of [`super`]), journal the entries'
    /// counters with those rules' final counters in (`batch-done`, see the journal's
    /// module docs), and only then reclaim them and fold the same counters in. (The
    /// record comes first: a crash after the reclaim and before the record would lose
    /// what the replaced rules counted; one after the record leaves them retired in
    /// the kernel, and the restarted daemon's next reclaim drops them.) Only while a
    /// journaled migration runs: otherwise nothing waits. The tables themselves are
    /// journaled whole before the next step ([`Core::journal_stale_tables`]).
    pub(super) fn journal_batch_end(&mut self) {
        let Some(id) = self.active_id() else { return };
        let Some(j) = self.journal.as_ref() else {
            return;
        };
        if j.modified().is_empty() {
            return;
        }
        let mut bases = Vec::new();
        let mut settle = Vec::new();
        for (vs, ids) in j.modified() {
            let Some(vi) = self.vswitches.iter().position(|v| v.name == *vs) else {
                continue;
            };
            let v = &self.vswitches[vi];
            if let Err(e) = v.table.wait_grace(&self.fabric) {
                eprintln!("lime: {vs}: waiting for the grace period: {e}");
            }
            settled_bases(&v.table, &self.fabric, ids, &mut bases);
            settle.push(vi);
        }
        if let Err(e) = self.write(Record::BatchDone { id, bases }) {
            eprintln!("lime: {e}");
        }
        for vi in settle {
            if self.vswitches[vi].table.settling() {
                self.settle_vswitch(vi, true);
            }
        }
    }

    /// Settle every virtual switch whose batches wait for their old version to be
    /// reclaimed (waiting for the rest of the grace period).
    fn settle_all(&mut self) {
        for vi in 0..self.vswitches.len() {
            if self.vswitches[vi].table.settling() {
                self.settle_vswitch(vi, true);
            }
        }
    }

    /// Journal the tables whole if batches changed them since the last snapshot, before
    /// the next step of the running migration (so the records of a step always come
    /// after the batches before it are in a snapshot).
    fn journal_stale_tables(&mut self) {
        let Some(id) = self.active_id() else { return };
        if !self.journal.as_ref().is_some_and(Journal::tables_stale) {
            return;
        }
        // The snapshot holds each entry's folded counters: fold what waits first.
        self.settle_all();
        let snapshot = self.snapshot();
        if let Err(e) = self.write(Record::Tables { id, snapshot }) {
            eprintln!("lime: {e}");
        }
    }

    /// Finish a migration a crashed control plane left unfinished (from the journal;
    /// the tables were restored from its snapshot): resume it, or roll it back if its
    /// target is gone. See the journal's module docs for the rules.
    pub(super) fn recover(&mut self, r: &Recovery) {
        let u = &r.unfinished;
        let back =
            u.rolling_back || r.gone.contains(&u.to) || self.fabric.datapath(&u.to).is_none();
        eprintln!(
            "lime: the journal shows an unfinished migration of {} to {} ({:?}, {} of {} legs done, {} hosts moved): {}",
            u.vswitch,
            u.to,
            u.strategy,
            u.done.len(),
            u.legs.len(),
            u.moved.len(),
            if back {
                "its target is gone, rolling it back"
            } else {
                "resuming it"
            }
        );
        let Some(i) = self.vswitches.iter().position(|v| v.name == u.vswitch) else {
            let res = Err(format!("virtual switch {:?} is gone", u.vswitch));
            self.end(u.id, &res, Outcome::Failed);
            return;
        };
        self.live_start(MigrationStatus {
            vswitch: u.vswitch.clone(),
            from: u
                .phase
                .as_ref()
                .map_or_else(|| u.legs[0].clone(), |p| p.0.clone()),
            to: u.to.clone(),
            strategy: u.strategy,
            phase: u.phase.as_ref().map(|p| p.1),
            hosts_moved: u.moved.iter().map(|(h, _)| h.clone()).collect(),
            recovering: true,
        });
        let result = if back {
            self.roll_back(i, r).map(|()| Vec::new())
        } else {
            self.settle(i, r).and_then(|()| {
                let done: BTreeSet<&str> = u.done.iter().map(|r| r.from.as_str()).collect();
                let legs: Vec<String> = u
                    .legs
                    .iter()
                    .filter(|l| !done.contains(l.as_str()))
                    .cloned()
                    .collect();
                let mut ctx = LegCtx {
                    id: u.id,
                    vswitch: &u.vswitch,
                    to: &u.to,
                    journal: &mut self.journal,
                    live: &self.live,
                    events: None,
                };
                run_legs(
                    &mut self.fabric,
                    &mut self.vswitches[i].table,
                    &mut ctx,
                    &legs,
                    u.strategy,
                )
            })
        };
        for j in 0..self.vswitches.len() {
            self.refresh_ports(j);
        }
        match (&result, back) {
            (Ok(_), false) => eprintln!(
                "lime: migration of {} to {} resumed and done",
                u.vswitch, u.to
            ),
            (Ok(_), true) => eprintln!(
                "lime: migration of {} to {} rolled back: its hosts are where they were",
                u.vswitch, u.to
            ),
            (Err(e), _) => eprintln!(
                "lime: recovering the migration of {} failed: {e}",
                u.vswitch
            ),
        }
        self.end(
            u.id,
            &result,
            if back {
                Outcome::RolledBack
            } else {
                Outcome::Done
            },
        );
        self.live_stop();
    }

    fn write(&mut self, rec: Record) -> Result<(), String> {
        match self.journal.as_mut() {
            Some(j) => j.append(rec).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Copies as the snapshot had them (on the physical switches still there), clones
    /// the journal shows staged, and copies whose rules were removed: the tables and
    /// the fabric as the last journaled step left them.
    fn settle_copies(&mut self, i: usize, r: &Recovery) -> Result<(), String> {
        let u = &r.unfinished;
        let name = u.vswitch.clone();
        let e = |e: crate::fabric::FabricError| e.to_string();
        for t in &u.snapshot.tables {
            let alive: Vec<String> = t
                .copies
                .iter()
                .filter(|c| self.fabric.datapath(c).is_some())
                .cloned()
                .collect();
            self.fabric.set_copies(&t.vswitch, &alive).map_err(e)?;
        }
        // Rules on a physical switch that is gone are gone with it.
        for sw in &r.gone {
            for v in &mut self.vswitches {
                v.table.fold_retired(sw, &[]);
            }
        }
        let from = u.phase.as_ref().map_or_else(String::new, |p| p.0.clone());
        for c in &u.clones {
            if self.fabric.datapath(&c.on).is_none() {
                continue;
            }
            let rids: Vec<u32> = c.ids.iter().map(|(_, r)| *r).collect();
            let st = self.fabric.rules_state(&name, &c.on, &rids).map_err(e)?;
            if c.published || st == RulesState::Published || c.ids.is_empty() {
                self.vswitches[i]
                    .table
                    .adopt_copy(&c.on, c.ids.iter().copied());
                let mut copies = self.fabric.copies(&name).map_err(e)?;
                copies.push(c.on.clone());
                self.fabric.set_copies(&name, &copies).map_err(e)?;
                if !c.published {
                    let on = (c.on != u.to).then(|| c.on.clone());
                    let from = from.clone();
                    self.write(Record::Cloned { id: u.id, from, on })?;
                }
            } else {
                eprintln!(
                    "lime: the clone to {} was never published: removing what of it reached the kernel",
                    c.on
                );
                self.fabric
                    .discard_unpublished(&name, &c.on, &rids)
                    .map_err(e)?;
            }
        }
        // Copies whose final counters were journaled: fold them in; reclaim what is left.
        for (sw, finals) in &u.removed {
            let finals: Vec<(u64, lime_common::stats::RuleStats)> =
                finals.iter().map(|(id, c)| (*id, (*c).into())).collect();
            self.vswitches[i].table.fold_retired(sw, &finals);
            if self.fabric.datapath(sw).is_some() {
                self.fabric.finish_retire(&name, sw).map_err(e)?;
            }
            if !u.retired.contains(sw) {
                self.write(Record::CopyRetired {
                    id: u.id,
                    switch: sw.clone(),
                })?;
            }
        }
        // Batches of table changes journaled after the last snapshot (the last one's
        // publish in doubt), then the tables as they are now, so a crash during the
        // recovery does not settle them again.
        for b in &u.batches {
            self.settle_batch(b)?;
        }
        if !u.batches.is_empty() {
            let snapshot = self.snapshot();
            self.write(Record::Tables { id: u.id, snapshot })?;
        }
        // A copy whose rules were unpublished before the crash could journal their
        // counters: they are still in the kernel, final; journal, fold, reclaim.
        for sw in self.fabric.copies(&name).map_err(e)? {
            let on: Vec<(u64, u32)> = self.vswitches[i]
                .table
                .entries()
                .map(|en| (en.id, en.installed.ids_on(&sw)))
                .filter(|(_, r)| *r != 0)
                .collect();
            let rids: Vec<u32> = on.iter().map(|(_, r)| *r).collect();
            if rids.is_empty()
                || self.fabric.rules_state(&name, &sw, &rids).map_err(e)? != RulesState::Removed
            {
                continue;
            }
            let finals: Vec<(u64, lime_common::stats::RuleStats)> = on
                .iter()
                .map(|(id, rid)| {
                    let st = self
                        .fabric
                        .datapath(&sw)
                        .and_then(|dp| dp.rule_stats(*rid).ok())
                        .unwrap_or_default();
                    (*id, st)
                })
                .collect();
            self.write(Record::CopyRemoved {
                id: u.id,
                switch: sw.clone(),
                finals: finals
                    .iter()
                    .map(|(id, s)| (*id, Counters::from(*s)))
                    .collect(),
            })?;
            self.vswitches[i].table.fold_retired(&sw, &finals);
            self.fabric.finish_retire(&name, &sw).map_err(e)?;
            self.write(Record::CopyRetired {
                id: u.id,
                switch: sw.clone(),
            })?;
        }
        Ok(())
    }

    /// Settle a journaled batch of table changes: if the kernel shows its version
    /// published on any copy, the batch happened — it is published on the copies that
    /// had only prepared it, the table becomes what the record says, and the final
    /// counters of the rules it replaced are folded in; otherwise whatever of it
    /// reached the kernel is dropped and the table stays as the snapshot has it.
    fn settle_batch(&mut self, jb: &JournaledBatch) -> Result<(), String> {
        let b = &jb.batch;
        let e = |e: crate::fabric::FabricError| e.to_string();
        let Some(vi) = self.vswitches.iter().position(|v| v.name == b.vswitch) else {
            return Ok(());
        };
        let vid = self.fabric.vswitch_id(&b.vswitch).map_err(e)?;
        let version = |sw: &str| self.fabric.datapath(sw).and_then(|d| d.version(vid));
        if let Some(bases) = &jb.done {
            // Published everywhere, its replaced rules reclaimed: what the record says.
            let table = &mut self.vswitches[vi].table;
            b.replay_into(table);
            for (id, c) in bases {
                table.set_base(*id, (*c).into());
            }
            return Ok(());
        }
        let published = b
            .versions
            .iter()
            .any(|(sw, want)| version(sw).is_some_and(|v| v >= *want));
        // Only copies still one version short of it hold this batch's prepared version
        // (a later batch's, on copies that published this one, is not this one's).
        let on: Vec<String> = b
            .versions
            .iter()
            .filter(|(sw, want)| version(sw).is_some_and(|v| v + 1 == **want))
            .map(|(sw, _)| sw.clone())
            .collect();
        let retired = self
            .fabric
            .settle_prepared(&b.vswitch, &on, published)
            .map_err(e)?;
        eprintln!(
            "lime: {}: a batch of {} added or modified and {} removed entries was {}",
            b.vswitch,
            b.put.len(),
            b.removed.len(),
            if published {
                "published before the crash: keeping it"
            } else {
                "not published before the crash: dropping it"
            }
        );
        if !published {
            return Ok(());
        }
        let table = &mut self.vswitches[vi].table;
        b.replay_into(table);
        for (id, old, reset) in &b.replaced {
            let Some(en) = table.entry(*id) else { continue };
            let base = if *reset {
                lime_common::stats::RuleStats::default()
            } else {
                let fin = retired.of(&crate::fabric::Installed { ids: old.into() });
                lime_common::stats::RuleStats {
                    packets: en.base.packets + fin.packets,
                    bytes: en.base.bytes + fin.bytes,
                    last_hit_ns: en.base.last_hit_ns.max(fin.last_hit_ns),
                }
            };
            table.set_base(*id, base);
        }
        Ok(())
    }

    /// Move `host` to `place` (again) and journal it.
    fn put_host(&mut self, id: u64, host: &str, place: &str) -> Result<(), String> {
        let down = self
            .fabric
            .move_host(host, place)
            .map_err(|e| e.to_string())?;
        self.write(Record::HostMoved {
            id,
            host: host.to_owned(),
            to: place.to_owned(),
            downtime_ms: down.as_secs_f64() * 1e3,
        })?;
        status::update(&self.live, |v| {
            if let Some(m) = v.status.migration.as_mut() {
                m.hosts_moved.push(host.to_owned());
            }
        });
        Ok(())
    }

    /// Settle the steps a crash left in doubt, before resuming (see the journal's
    /// module docs).
    fn settle(&mut self, i: usize, r: &Recovery) -> Result<(), String> {
        let u = &r.unfinished;
        self.settle_copies(i, r)?;
        // Hosts the lab had to attach again (at their place before the migration), and
        // a move the crash cut short.
        let mut again: Vec<(String, String)> = Vec::new();
        for h in &r.lost {
            let place = if u.moving.as_deref() == Some(h.as_str()) {
                u.to.clone()
            } else {
                self.fabric
                    .lab()
                    .state()
                    .host(h)
                    .map(|x| x.switch.clone())
                    .unwrap_or_default()
            };
            again.push((h.clone(), place));
        }
        if let Some(h) = &u.moving
            && !again.iter().any(|(x, _)| x == h)
        {
            again.push((h.clone(), u.to.clone()));
        }
        for (h, place) in again {
            self.put_host(u.id, &h, &place)?;
        }
        // A virtual link end's move the crash cut short: finish it (the lab found every
        // veth pair of the link still there; the newest one may already carry it).
        if let Some(port) = u.link_moving {
            eprintln!(
                "lime: the move of {}'s virtual link end on port {port} to {} was cut short: finishing it",
                u.vswitch, u.to
            );
            let took = self
                .fabric
                .move_vlink_end(&u.vswitch, port, &u.to)
                .map_err(|e| e.to_string())?;
            self.write(Record::LinkMoved {
                id: u.id,
                port,
                took_ms: took.as_secs_f64() * 1e3,
            })?;
        }
        Ok(())
    }

    /// Undo a migration whose target is gone: every source gets a copy again, every
    /// host goes back where it was at `begin`.
    fn roll_back(&mut self, i: usize, r: &Recovery) -> Result<(), String> {
        let u = &r.unfinished;
        if !u.rolling_back {
            self.write(Record::RollingBack {
                id: u.id,
                why: format!("the target physical switch {} is gone", u.to),
            })?;
        }
        self.settle_copies(i, r)?;
        let name = u.vswitch.clone();
        let places: BTreeSet<String> = u.hosts.iter().map(|(_, sw)| sw.clone()).collect();
        for place in places {
            let copies = self.fabric.copies(&name).map_err(|e| e.to_string())?;
            if copies.contains(&place) || self.fabric.datapath(&place).is_none() {
                continue;
            }
            let (id, from) = (u.id, place.clone());
            let Self {
                fabric,
                vswitches,
                journal,
                ..
            } = self;
            let mut write = |rec| match journal.as_mut() {
                Some(j) => j.append(rec).map_err(|e| e.to_string()),
                None => Ok(()),
            };
            vswitches[i]
                .table
                .clone_to_with(fabric, &place, |ids| {
                    write(Record::CloneStaged {
                        id,
                        from: from.clone(),
                        on: Some(from.clone()),
                        ids: ids.to_vec(),
                    })
                })
                .map_err(|e| e.to_string())?;
            write(Record::Cloned {
                id,
                from: from.clone(),
                on: Some(from),
            })?;
        }
        for (h, place) in &u.hosts {
            let now = self.fabric.lab().state().host(h).map(|x| x.switch.clone());
            if now.as_deref() != Some(place.as_str()) || r.lost.contains(h) {
                self.put_host(u.id, h, place)?;
            }
        }
        // A virtual link end that had moved to the target died with it (both ends of
        // a veth pair go together): the link is made again with the end where it was.
        for (port, place) in &u.links {
            let state = self.fabric.lab().state();
            if state.vlink_port(&name, *port).is_some() || self.fabric.datapath(place).is_none() {
                continue;
            }
            eprintln!(
                "lime: {name}'s virtual link end on port {port} died with {}: making the link again with the end on {place}",
                u.to
            );
            self.write(Record::LinkMoving {
                id: u.id,
                port: *port,
            })?;
            let took = self
                .fabric
                .move_vlink_end(&name, *port, place)
                .map_err(|e| e.to_string())?;
            self.write(Record::LinkMoved {
                id: u.id,
                port: *port,
                took_ms: took.as_secs_f64() * 1e3,
            })?;
        }
        Ok(())
    }
}

//! The migration engine: moves a virtual switch, and the hosts attached to it, from one
//! physical switch to another while traffic flows.
//!
//! # The `clone` strategy (LIME)
//! 1. **Clone**: the virtual switch's whole table is installed on the target physical
//!    switch as one version ([`VirtualSwitch::clone_to`]). From then on the virtual
//!    switch runs on both; every versioned update reaches every copy
//!    ([`Fabric::stage`] / [`Fabric::commit_staged`] iterate the copies), and the
//!    statistics of an entry are the sum over its copies.
//! 2. **Move the hosts** one by one ([`Fabric::move_host`]): a host keeps its MAC, its
//!    addresses and its virtual port; its link is recreated on the target, and every
//!    physical switch is told where the port lives now — the target first, so frames
//!    already tunnelled towards the old place are forwarded one more hop instead of
//!    being lost. Flow-cache entries that remembered the old place are retired by the
//!    port generation the driver bumps. Each packet is classified once, by the copy
//!    where it enters, and delivered by the one owning the egress port.
//!    Then the virtual switch's **virtual link ends** on the source move
//!    ([`Fabric::move_vlink_end`]), make-before-break: a new veth pair with the end at
//!    the target carries the link before the old pair goes, so the link itself loses
//!    nothing. An *ensemble* (several virtual switches joined by virtual links) migrates
//!    as its virtual switches one after the other (`lime migrate vs1 vs2 --to s3`).
//! 3. **Retire** the old copy ([`VirtualSwitch::retire_copy`]): its rules are removed
//!    there, and their final counters are folded into each entry's totals, so no
//!    counter ever goes backwards.
//!
//! # The `move` strategy (the naive baseline)
//! Freeze the virtual switch on the source (its copy's rules are removed at once, so
//! whatever enters there is dropped — counted as table misses on the source), copy the
//! tables to the target, move the hosts, done. What was dropped while frozen is
//! reported ([`Report::frozen_drops`]); it is what `clone` avoids.
//!
//! # Steps, and the controller's updates in between
//! A [`Leg`] (one source physical switch) runs as steps: *clone* (with `move`: freeze
//! and clone together), one step per *host*, *retire*. The caller — the OpenFlow
//! switch core, the one thread that also applies flow-mods — runs one step at a time
//! and serves the controllers in between, so their updates keep flowing during a
//! migration. Each step is atomic with respect to that work: the clone copies one
//! snapshot of the table (a flow-mod lands before it, and is copied, or after it, and
//! then reaches both copies as one tagged version through [`Fabric::stage`] /
//! [`Fabric::commit_staged`]); no update can reach one copy and miss another, and
//! none is applied twice. [`migrate_with`] runs every step of a leg at once.
//!
//! # Failure
//! Clone is all or nothing: if the target refuses (unknown switch, table full), nothing
//! changed and the virtual switch runs where it was. A failure while moving hosts
//! leaves the hosts moved so far at the target, with both copies running — a
//! consistent state the migration can be resumed from.
//!
//! # Observing a migration
//! [`migrate_with`] tells an observer every [`Step`] as it happens — phases starting,
//! the clone staged (before anything reaches the kernel), each host about to move and
//! moved, each virtual link end about to move and moved, a copy's final counters (before the datapath forgets them). The switch core
//! writes them to the durable [`journal`] and streams them to `lime migrate` as
//! [`Progress`]; an observer that fails (a journal that cannot be written) stops the
//! migration before the step. [`journal`] describes how a control plane that crashed
//! mid-migration resumes or rolls it back.
use std::time::{Duration, Instant};

use lime_common::stats::RuleStats;
use serde::{Deserialize, Serialize};

use crate::{
    fabric::{Fabric, FabricError},
    vswitch::VirtualSwitch,
};

/// How to migrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// LIME: clone, run both copies while hosts move, retire.
    Clone,
    /// The naive baseline: freeze, copy, move.
    Move,
}

pub mod journal;

/// Phases of a migration, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Stopping the source copy (`move` only).
    Freeze,
    /// Copying the tables to the target.
    Clone,
    /// Re-attaching hosts at the target.
    Move,
    /// Removing the old copy and folding in its counters.
    Retire,
}

/// Why a migration stopped. What was done before the failing step stays done (see the
/// module docs: every intermediate state is a consistent one).
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// Nothing to migrate, or a bad request.
    #[error("cannot migrate {vswitch} from {from} to {to}: {why}")]
    Refused {
        /// Virtual switch.
        vswitch: String,
        /// Source physical switch.
        from: String,
        /// Target physical switch.
        to: String,
        /// Why.
        why: &'static str,
    },
    /// A step failed.
    #[error("migration of {vswitch}, {phase:?} phase: {source}")]
    Step {
        /// Virtual switch.
        vswitch: String,
        /// Where it stopped.
        phase: Phase,
        /// Cause (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<FabricError>,
    },
}

/// What a migration did, and how long each part took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Strategy used.
    pub strategy: Strategy,
    /// Virtual switch.
    pub vswitch: String,
    /// Source physical switch.
    pub from: String,
    /// Target physical switch.
    pub to: String,
    /// Rules cloned.
    pub rules: usize,
    /// Milliseconds per phase, in order.
    pub phases_ms: Vec<(Phase, f64)>,
    /// Hosts moved, each with how long it had no link (its own downtime, not a loss of
    /// the migration).
    pub hosts: Vec<(String, f64)>,
    /// Virtual link ends moved (the virtual port), each with how long its
    /// make-before-break move took (the link carried frames all along).
    #[serde(default)]
    pub links: Vec<(u32, f64)>,
    /// Total milliseconds.
    pub total_ms: f64,
    /// Frames the source dropped as table misses while the virtual switch was frozen
    /// there (`move`; always 0 with `clone`, which never freezes).
    pub frozen_drops: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Migrate virtual switch `vsw` (whose table lives on `fabric`) from physical switch
/// `from` to `to` with the clone strategy. `progress` is told each phase as it starts.
pub fn migrate_clone(
    fabric: &mut Fabric,
    vsw: &mut VirtualSwitch,
    from: &str,
    to: &str,
    progress: impl FnMut(Phase),
) -> Result<Report, MigrationError> {
    migrate(fabric, vsw, from, to, Strategy::Clone, progress)
}

/// Table-miss drops counted so far on a physical switch.
fn table_misses(fabric: &Fabric, switch: &str) -> u64 {
    fabric
        .datapath(switch)
        .and_then(|dp| dp.kernel().drops().ok())
        .and_then(|d| {
            d.into_iter()
                .find(|(r, _)| *r == lime_common::stats::drop_reason::TABLE_MISS)
        })
        .map_or(0, |(_, n)| n)
}

/// A step of a migration, told to the observer of [`migrate_with`] as it happens.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// A phase starts.
    Phase(Phase),
    /// The clone is staged on the target: each entry's datapath rule id there (entry
    /// id, rule id). Nothing is in the kernel yet.
    CloneStaged {
        /// (entry id, datapath rule id on the target).
        ids: &'a [(u64, u32)],
    },
    /// The clone is published on the target (both copies run).
    Cloned,
    /// A host is about to be re-attached at the target.
    HostMoving {
        /// The host.
        host: &'a str,
    },
    /// It is.
    HostMoved {
        /// The host.
        host: &'a str,
        /// How long it had no link, in milliseconds.
        downtime_ms: f64,
    },
    /// A virtual link end of the virtual switch is about to move to the target
    /// ([`Fabric::move_vlink_end`]).
    LinkMoving {
        /// Its virtual port.
        port: u32,
    },
    /// The new veth pair of that end carries the link; the old one is not removed yet.
    LinkCarried {
        /// Its virtual port.
        port: u32,
    },
    /// The end moved, the old pair is gone.
    LinkMoved {
        /// Its virtual port.
        port: u32,
        /// How long the move took, in milliseconds.
        took_ms: f64,
    },
    /// A copy's rules are out of every version a packet can use: their final counters
    /// (entry id, counters), before the datapath forgets them.
    CopyRemoved {
        /// The physical switch the copy ran on.
        switch: &'a str,
        /// (entry id, final counters).
        finals: &'a [(u64, RuleStats)],
    },
    /// The copy is gone and its counters are folded into the entries.
    CopyRetired {
        /// The physical switch the copy ran on.
        switch: &'a str,
    },
}

/// What `lime migrate` shows while a migration runs: one event per line of the control
/// socket (JSON, tagged by `event`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Progress {
    /// A phase of the migration from `from` starts.
    Phase {
        /// Virtual switch.
        vswitch: String,
        /// Source physical switch.
        from: String,
        /// Target physical switch.
        to: String,
        /// The phase.
        phase: Phase,
    },
    /// A host was re-attached at the target.
    HostMoved {
        /// Virtual switch.
        vswitch: String,
        /// The host.
        host: String,
        /// Its physical switch now.
        to: String,
        /// How long it had no link, in milliseconds.
        downtime_ms: f64,
    },
    /// The migration from one source physical switch is over.
    Done {
        /// Its report.
        report: Report,
    },
}

/// Migrate virtual switch `vsw` from physical switch `from` to `to` with `strategy`.
/// `progress` is told each phase as it starts.
pub fn migrate(
    fabric: &mut Fabric,
    vsw: &mut VirtualSwitch,
    from: &str,
    to: &str,
    strategy: Strategy,
    mut progress: impl FnMut(Phase),
) -> Result<Report, MigrationError> {
    migrate_with(fabric, vsw, from, to, strategy, |s| {
        if let Step::Phase(p) = s {
            progress(p);
        }
        Ok(())
    })
}

/// [`migrate`], telling `observe` every [`Step`] as it happens (see the module docs).
/// An error from `observe` stops the migration before the step it was told about.
///
/// Steps already done are skipped, so the same call resumes a migration that stopped
/// half-way (a restarted control plane): no clone if the target already runs a copy,
/// only the hosts still on the source move, no freeze if the source runs no copy any
/// more (`move`), no retire if it is already retired.
///
/// This runs every step of the leg at once; [`Leg`] runs them one at a time.
pub fn migrate_with(
    fabric: &mut Fabric,
    vsw: &mut VirtualSwitch,
    from: &str,
    to: &str,
    strategy: Strategy,
    mut observe: impl FnMut(Step<'_>) -> Result<(), String>,
) -> Result<Report, MigrationError> {
    let mut leg = Leg::start(fabric, vsw, from, to, strategy)?;
    while !leg.step(fabric, vsw, &mut observe)? {}
    Ok(leg.into_report())
}

/// What a [`Leg`] does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Clone (after freezing the source, with `move`).
    Clone,
    /// Move the next host (the first one also starts the move phase).
    Host,
    /// Move the virtual switch's link ends on the source (make-before-break; ends the
    /// move phase).
    Links,
    /// Retire the source's copy (`clone`), or finish.
    Retire,
    /// Nothing: the report is complete.
    Done,
}

/// One leg of a migration (one source physical switch), run one step at a time: the
/// caller (the switch core) may do other work on the same fabric and table between
/// two steps — apply flow-mods, answer barriers and statistics — and each step finds
/// the state as that work left it.
///
/// The steps: *clone* (with `move`: freeze, then clone, as one step — the naive
/// baseline stops the virtual switch anyway), one step per *host* moved, one for its
/// *virtual link ends* on the source (if any), *retire*.
/// Each step is atomic with respect to whatever runs between steps: a flow-mod lands
/// before the clone's snapshot or after it (and then reaches every copy as one version,
/// since [`Fabric::stage`] iterates the copies), never inside.
pub struct Leg {
    name: String,
    from: String,
    to: String,
    strategy: Strategy,
    hosts: std::collections::VecDeque<String>,
    next: Next,
    started: Instant,
    /// When the current phase started (move phase: its first host).
    phase_started: Instant,
    misses_before: u64,
    report: Report,
}

impl Leg {
    /// Check that the leg can run and note what it has to do (which hosts are on the
    /// source now). Nothing changes yet.
    ///
    /// # Errors
    /// [`MigrationError::Refused`] for a request that cannot run.
    pub fn start(
        fabric: &Fabric,
        vsw: &VirtualSwitch,
        from: &str,
        to: &str,
        strategy: Strategy,
    ) -> Result<Self, MigrationError> {
        let name = vsw.name().to_owned();
        let refuse = |why| MigrationError::Refused {
            vswitch: name.clone(),
            from: from.to_owned(),
            to: to.to_owned(),
            why,
        };
        if from == to {
            return Err(refuse("source and target are the same physical switch"));
        }
        let copies = fabric
            .copies(&name)
            .map_err(|source| MigrationError::Step {
                vswitch: name.clone(),
                phase: Phase::Clone,
                source: Box::new(source),
            })?;
        let state = fabric.lab().state();
        let hosts = state
            .topology
            .vswitch(&name)
            .map(|vs| {
                vs.ports
                    .iter()
                    .filter(|p| state.host(&p.host).is_some_and(|h| h.switch == from))
                    .map(|p| p.host.clone())
                    .collect()
            })
            .unwrap_or_default();
        // (A source without a copy is fine once the target runs one: a resumed migration
        // whose old copy is retired, or frozen by `move`.)
        if !copies.iter().any(|c| c == from) && !copies.iter().any(|c| c == to) {
            return Err(refuse("the virtual switch runs no copy on the source"));
        }
        let now = Instant::now();
        Ok(Self {
            report: Report {
                strategy,
                vswitch: name.clone(),
                from: from.to_owned(),
                to: to.to_owned(),
                rules: vsw.entries().count(),
                phases_ms: Vec::new(),
                hosts: Vec::new(),
                links: Vec::new(),
                total_ms: 0.0,
                frozen_drops: 0,
            },
            misses_before: table_misses(fabric, from),
            name,
            from: from.to_owned(),
            to: to.to_owned(),
            strategy,
            hosts,
            next: Next::Clone,
            started: now,
            phase_started: now,
        })
    }

    /// Whether every step ran.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.next == Next::Done
    }

    /// The report (complete once [`Leg::step`] returned `true`).
    #[must_use]
    pub fn into_report(self) -> Report {
        self.report
    }

    fn fail(&self, phase: Phase) -> impl Fn(FabricError) -> MigrationError + use<> {
        let vswitch = self.name.clone();
        move |source| MigrationError::Step {
            vswitch: vswitch.clone(),
            phase,
            source: Box::new(source),
        }
    }

    fn stopped(&self, phase: Phase) -> impl Fn(String) -> MigrationError + use<> {
        let vswitch = self.name.clone();
        move |why| MigrationError::Step {
            vswitch: vswitch.clone(),
            phase,
            source: Box::new(FabricError::Stopped {
                step: "the next step",
                why,
            }),
        }
    }

    fn end_phase(&mut self, phase: Phase) {
        self.report
            .phases_ms
            .push((phase, ms(self.phase_started.elapsed())));
    }

    /// Run the next step; `true` once the leg is over (then the report is complete).
    /// An error from `observe` stops the leg before the step it was told about; a
    /// failing step leaves the consistent state the module docs describe.
    ///
    /// # Errors
    /// The step failed, or `observe` refused it.
    pub fn step(
        &mut self,
        fabric: &mut Fabric,
        vsw: &mut VirtualSwitch,
        observe: &mut impl FnMut(Step<'_>) -> Result<(), String>,
    ) -> Result<bool, MigrationError> {
        let (from, to) = (self.from.clone(), self.to.clone());
        match self.next {
            Next::Clone => {
                let copies = fabric.copies(&self.name).map_err(self.fail(Phase::Clone))?;
                if self.strategy == Strategy::Move && copies.contains(&from) {
                    observe(Step::Phase(Phase::Freeze)).map_err(self.stopped(Phase::Freeze))?;
                    self.phase_started = Instant::now();
                    vsw.freeze_copy_with(fabric, &from, |finals| {
                        observe(Step::CopyRemoved {
                            switch: &from,
                            finals,
                        })
                    })
                    .map_err(self.fail(Phase::Freeze))?;
                    observe(Step::CopyRetired { switch: &from })
                        .map_err(self.stopped(Phase::Freeze))?;
                    self.end_phase(Phase::Freeze);
                }
                observe(Step::Phase(Phase::Clone)).map_err(self.stopped(Phase::Clone))?;
                self.phase_started = Instant::now();
                if !copies.contains(&to) {
                    vsw.clone_to_with(fabric, &to, |ids| observe(Step::CloneStaged { ids }))
                        .map_err(self.fail(Phase::Clone))?;
                    observe(Step::Cloned).map_err(self.stopped(Phase::Clone))?;
                }
                self.end_phase(Phase::Clone);
                self.next = Next::Host;
                observe(Step::Phase(Phase::Move)).map_err(self.stopped(Phase::Move))?;
                self.phase_started = Instant::now();
            }
            Next::Host => match self.hosts.pop_front() {
                Some(h) => {
                    let put_back = |leg: &mut Self, e| {
                        leg.hosts.push_front(h.clone());
                        e
                    };
                    if let Err(e) = observe(Step::HostMoving { host: &h }) {
                        return Err(put_back(self, self.stopped(Phase::Move)(e)));
                    }
                    let down = match fabric.move_host(&h, &to) {
                        Ok(d) => ms(d),
                        Err(e) => return Err(put_back(self, self.fail(Phase::Move)(e))),
                    };
                    observe(Step::HostMoved {
                        host: &h,
                        downtime_ms: down,
                    })
                    .map_err(self.stopped(Phase::Move))?;
                    self.report.hosts.push((h, down));
                    if self.hosts.is_empty() {
                        self.next = Next::Links;
                    }
                }
                None => {
                    self.next = Next::Links;
                    return self.step(fabric, vsw, observe);
                }
            },
            Next::Links => {
                let ends = fabric.vlink_ends_on(&self.name, &from);
                for port in &ends {
                    observe(Step::LinkMoving { port: *port }).map_err(self.stopped(Phase::Move))?;
                    let took = ms(fabric
                        .move_vlink_end_with(&self.name, *port, &to, || {
                            observe(Step::LinkCarried { port: *port })
                        })
                        .map_err(self.fail(Phase::Move))?);
                    observe(Step::LinkMoved {
                        port: *port,
                        took_ms: took,
                    })
                    .map_err(self.stopped(Phase::Move))?;
                    self.report.links.push((*port, took));
                }
                self.end_phase(Phase::Move);
                self.next = Next::Retire;
                if ends.is_empty() {
                    return self.step(fabric, vsw, observe);
                }
            }
            Next::Retire => {
                if self.strategy == Strategy::Clone {
                    observe(Step::Phase(Phase::Retire)).map_err(self.stopped(Phase::Retire))?;
                    self.phase_started = Instant::now();
                    if fabric
                        .copies(&self.name)
                        .map_err(self.fail(Phase::Retire))?
                        .contains(&from)
                    {
                        vsw.retire_copy_with(fabric, &from, |finals| {
                            observe(Step::CopyRemoved {
                                switch: &from,
                                finals,
                            })
                        })
                        .map_err(self.fail(Phase::Retire))?;
                        observe(Step::CopyRetired { switch: &from })
                            .map_err(self.stopped(Phase::Retire))?;
                    }
                    self.end_phase(Phase::Retire);
                }
                self.report.total_ms = ms(self.started.elapsed());
                self.report.frozen_drops =
                    table_misses(fabric, &from).saturating_sub(self.misses_before);
                self.next = Next::Done;
            }
            Next::Done => {}
        }
        Ok(self.next == Next::Done)
    }
}

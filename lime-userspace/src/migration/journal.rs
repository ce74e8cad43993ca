//! The migration journal: a durable, append-only record of every step of a migration,
//! so a control plane that crashes mid-migration can finish it (or undo it) when it
//! restarts — while the datapath, which lives in the kernel, keeps forwarding.
//!
//! # Where
//! `/run/lime/<lab>/journal.jsonl`, next to the lab state the lab crate saves
//! (`lab.json`, see [`lime_lab::LabState`]). `/run` is a tmpfs: the journal is exactly
//! as durable as what it describes (namespaces and the pinned datapath are gone after
//! a reboot too). A fresh `lime run` (no unfinished migration) empties it.
//!
//! # Records
//! One JSON object per line, `{"seq":N,"rec":"<kind>",...}`, written with one `write`
//! and `fsync`ed before the step it announces goes on. Kinds, in the order a migration
//! writes them (`id` names the migration; a `lime migrate` of a virtual switch whose
//! hosts sit on several physical switches is one migration with one *leg* per source):
//!
//! | record | written | carries |
//! |---|---|---|
//! | `begin` | before anything changes | virtual switch, target, strategy, the legs (sources, in order), where each host and virtual link end is, and a [`Snapshot`] of every virtual switch's flow table (rules, cookies, timeouts with their age, datapath rule ids per copy, counters folded in so far) and copies |
//! | `phase` | as a phase of a leg starts | leg, phase |
//! | `clone-staged` | after the clone is staged on the target, before it is written to the kernel | (entry id, datapath rule id on the target) |
//! | `cloned` | after the clone is published | — |
//! | `rolling-back` | when a recovery finds resuming impossible | why |
//! | `host-moving` | before a host is re-attached | host |
//! | `host-moved` | after it is, and every physical switch knows | host, downtime |
//! | `link-moving` | before a virtual link end of the virtual switch moves | its virtual port |
//! | `link-moved` | after it did (new veth pair carrying, old one gone) | port, duration |
//! | `copy-removed` | after a copy's rules are unpublished and past the grace period, before the datapath forgets them | switch, each entry's final counters there |
//! | `copy-retired` | after the copy is reclaimed | switch |
//! | `batch` | after a batch of table changes between two steps (flow-mods, expired entries, fail-standalone's entry) is staged, before anything of it is written to the kernel | a [`SavedBatch`]: the virtual switch, the version it publishes on each copy, the entries it adds or modifies as they will be (datapath rule ids on every copy), the entries it removes, the datapath rules modified entries leave |
//! | `batch-done` | after batches that modified entries are published and the grace period after them is over (the core waits for it here, see below), before the rules they replaced are reclaimed and before anything after them is answered | those entries' counters, their replaced rules' final counters folded in |
//! | `tables` | before the next step, if batches were journaled since the last snapshot | a [`Snapshot`] as in `begin`, which it replaces |
//! | `leg-done` | after a leg | its report |
//! | `end` | last | outcome (`done`, `failed`, `rolled-back`), error |
//!
//! The switch core runs a migration one step at a time (a clone, one host's move, a
//! retire; [`crate::migration::Leg`]) and serves the controllers between steps, so
//! flow-mods (and expiring timeouts) change the tables after `begin`'s snapshot. No
//! change happens *inside* a step, though. Every batch of changes between steps is
//! journaled as a `batch` record — what it makes of the table — once it is staged and
//! before anything of it reaches the kernel; if it modified entries, their counters
//! follow in a `batch-done` once it is published and no packet can be processed with
//! the version before it any more, before the core answers anything after the batch
//! (a BARRIER_REPLY in particular). Outside a migration a batch's old version is
//! reclaimed later, by the core's reclaim tick (deferred reclaim, see
//! [`crate::ofswitch`]'s core); while a journaled migration runs, the core instead
//! waits for the rest of the grace period (~10 ms) after a batch that modified
//! entries, reads the final counters of the rules they replaced, writes `batch-done`
//! with them, and only then reclaims those rules — the `batch` records themselves
//! cost no wait. A
//! batch that runs out of room and publishes early becomes several versions: each gets
//! its own `batch` record, written before that version is committed, and before the
//! retry reclaims the early version (it needs the slots) a `batch-done` records what
//! the rules that version replaced counted. Before the next step, the tables are journaled whole (`tables`: every
//! table as it is then, entries, their datapath rule ids on every copy, folded
//! counters). So the last snapshot (from `begin` or the last `tables`), then the step
//! records after it, then the batches after those, are the whole truth about the
//! tables until `end`: a clone published or a copy retired before a `tables` record is
//! already in it and is not settled again, and the batches after it are replayed in
//! order — each is published, or, for the last, in doubt.
//!
//! A batch is published with two phases across copies
//! ([`crate::fabric::Fabric::commit_staged`]): every copy writes the version and marks
//! it ready, then each publishes it (a packet tagged with it moves a ready copy to it at
//! once). A crash can leave it written on some copies, ready on all, or published on
//! some: recovery decides by the kernel (below), so the controller-visible table after
//! a restart holds every rule whose BARRIER_REPLY went out, and an unanswered batch
//! either whole or not at all.
//!
//! Cost (measured by `a_batch_record_costs_what_the_batch_changes_not_the_table`, debug
//! build, write + `fsync` on the test machine's /tmp): with a 1 000-entry table a
//! `tables` record is 704 kB and 60 ms; a `batch` record of one rule 0.8 kB and 3.5 ms,
//! of 100 rules 70 kB and 9.7 ms. A batch costs its `batch` record (plus a small
//! `batch-done` if it modified entries); the whole tables are written once per step at
//! most, not once per batch. Outside a migration nothing is written.
//!
//! # Recovery (`lime run` finding a `begin` without an `end`)
//! The lab is adopted as it is ([`crate::fabric::Fabric::adopt`]: namespaces, hosts where
//! the kernel says they are, datapaths re-opened from their pins — nothing is
//! reloaded, nothing stops forwarding) and the tables are rebuilt from the snapshot.
//! Then each in-doubt step is settled (a crash can fall anywhere between two records):
//!
//! - `clone-staged` without `cloned`: if the target's datapath shows the rules
//!   published, the clone happened; otherwise whatever part of it reached the kernel is
//!   invisible to packets (not published) and is removed
//!   ([`crate::fabric::Fabric::discard_unpublished`]) — left there, the next version
//!   published on the target would make it visible — and the clone is redone. (A
//!   version marked ready but not published could be caught up to by a packet tagged
//!   with it; none reaches the target before a host moves there, after `cloned`.)
//! - `batch` records after the last snapshot, in order: one followed by a
//!   `batch-done` was published everywhere: the table becomes what the record says,
//!   with the counters `batch-done` gives. For the others, if the kernel shows the
//!   batch's version published on any copy it listed, the batch happened — every copy
//!   had made it ready — so it is published on the copies still one version short
//!   (only ready there), the table becomes what the record says, and the final counters
//!   of the datapath rules modified entries left (still in the kernel, not reclaimed)
//!   are folded in. Otherwise nothing of it was visible: what of it reached the kernel
//!   (rules added, removals, the ready mark) is dropped and the maps put back
//!   ([`crate::datapath::Datapath::settle_prepared`]), so no later version makes any of
//!   it visible, and the table stays as it was. Then a `tables` record is written, so a
//!   crash during recovery does not settle the batches again. (FLOW_REMOVED messages of
//!   a batch cut short, if it deleted entries that asked for them, are lost with the
//!   crash, as with a switch that restarts.)
//! - `link-moving` without `link-moved`: the move of the virtual link end is finished
//!   ([`crate::fabric::Fabric::move_vlink_end`]). The lab found the link's veth pairs
//!   as the kernel has them ([`lime_lab::Lab::adopt`]): if the newest pair already ends
//!   at the target, no pair is made; programs are attached where missing, both virtual
//!   ports are pointed at the newest pair, and older pairs are removed. Frames cross the
//!   link all along: the old pair carries it until the new one does.
//! - `host-moving` without `host-moved`: the host is moved to the target (again): its
//!   link is recreated there and every physical switch told where its port lives. A host
//!   the crash left with no link at all is attached first ([`lime_lab::Lab::adopt`]).
//! - `copy-removed` without `copy-retired`: the journaled final counters are folded in
//!   and the datapath reclaims what is left of the copy. Counters are never read twice
//!   nor lost: they are journaled before the datapath may forget them.
//! - Hosts already moved need nothing (the kernel says where they are).
//!
//! Then, if the target physical switch is there (its namespace, and so its datapath),
//! the migration is **resumed**: the remaining legs run as usual (the engine skips what
//! is done) and `end` says `done`. Otherwise (or once a `rolling-back` is journaled) it
//! is **rolled back**: the target is forgotten — its copy's rules, and what they counted
//! since the clone, are gone with it (the only counters that can be lost, and only
//! because the switch that held them is) — every source that lost its copy gets one
//! again (a clone journaled with `on`), and the hosts go back to the physical switch
//! each had at `begin` (the lab attaches those whose link died with the target there);
//! a virtual link end that had moved to the target lost its veth pair with it (both
//! ends of a pair go together): the link is made again with the end where `begin`
//! had it (`link-moving`/`link-moved` again; the adopting fabric first drops the
//! pinned program links of interfaces that are gone, so the new pair's ends get
//! programs of their own); `end` says `rolled-back`. The recovery's own steps are journaled by the same rules,
//! so a crash during recovery is recovered from too.
//!
//! # Fault injection (tests only)
//! `LIME_FAULT_CRASH_AFTER_RECORD=<kind>[:<n>]` makes the process exit at once (no
//! clean-up, as `kill -9` would) right after the `n`th (default first) record of that
//! kind is durable, or at the `n`th pass of a named point between records
//! ([`fault_point`]: inside a journaled batch's two-phase publish, inside a link end's
//! move). `fail:<kind>[:<n>]` instead makes every append fail from the `n`th record of
//! that kind on, as a full disk would (`ENOSPC`). The variable is read once, on purpose
//! long-named, and `lime run` warns loudly when it is set; nothing else enables it.
//!
//! # When the journal cannot be written
//! A record that cannot be written (a full or failing disk) is cut off again and the
//! step it announces does not run. A flow-mod batch whose `batch` record fails is
//! still applied (the controller was promised a switch, and refusing would show it a
//! failure LIME caused), but the journal now lacks it: the core takes no further step
//! of a `clone` migration — it ends as failed, the virtual switch running where the
//! steps so far left it (on the source and the target, each host where it is), which
//! is a consistent place to run from; migrate it again once the journal's disk is
//! fixed. A `move` migration goes on to its end (its frozen source forwards nothing
//! until its hosts have moved).
//! Nothing is lost while this control plane runs; a crash before the next `begin`
//! could not be recovered exactly.
//!
//! # What a crash can still cost
//! A crash right after a `batch-done` leaves the rules that batch's modifies replaced
//! in the kernel, retired (no version sees them) but not reclaimed: the record already
//! carries what they counted, so the restarted daemon takes the record's counters and
//! its next reclaim drops those rules with their counters unread. (Before this order,
//! the core reclaimed first and journaled after, and a crash in between lost what the
//! replaced rules had counted since the last snapshot.)
use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use lime_common::stats::RuleStats;
use serde::{Deserialize, Serialize};

use super::{Phase, Report, Strategy};
use crate::{
    flow::Rule,
    vswitch::{FlowEntry, VirtualSwitch},
};

/// File name of the journal inside the lab's state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// The fault-injection variable (see the module docs).
pub const FAULT_ENV: &str = "LIME_FAULT_CRASH_AFTER_RECORD";

/// Where lab `lab`'s journal lives.
#[must_use]
pub fn path_for(lab: &str) -> PathBuf {
    lime_lab::LabState::default_dir(lab).join(JOURNAL_FILE)
}

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing or syncing the file failed.
    #[error("migration journal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A line that is not a record (and not a torn last line).
    #[error("migration journal {path}, line {line}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Counters as the journal stores them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Last hit (CLOCK_MONOTONIC ns; 0 if never).
    pub last_hit_ns: u64,
}

impl From<RuleStats> for Counters {
    fn from(s: RuleStats) -> Self {
        Self {
            packets: s.packets,
            bytes: s.bytes,
            last_hit_ns: s.last_hit_ns,
        }
    }
}

impl From<Counters> for RuleStats {
    fn from(c: Counters) -> Self {
        Self {
            packets: c.packets,
            bytes: c.bytes,
            last_hit_ns: c.last_hit_ns,
        }
    }
}

/// One flow entry as the snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedEntry {
    /// Entry id.
    pub id: u64,
    /// The rule (match, instructions, cookie, timeouts, flags).
    pub rule: Rule,
    /// Its datapath rule id on each physical switch running a copy.
    pub installed: BTreeMap<String, u32>,
    /// Counters of datapath rules it no longer uses.
    pub base: Counters,
    /// Milliseconds since it was added, at the snapshot.
    pub age_ms: u64,
}

/// One virtual switch's table as the snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedTable {
    /// Virtual switch.
    pub vswitch: String,
    /// Physical switches running a copy.
    pub copies: Vec<String>,
    /// Next entry id.
    pub next_id: u64,
    /// Entries.
    pub entries: Vec<SavedEntry>,
}

/// Every virtual switch's table, at the start of a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Wall-clock milliseconds (UNIX) when it was taken.
    pub wall_ms: u64,
    /// The tables.
    pub tables: Vec<SavedTable>,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl SavedTable {
    /// The snapshot of `vsw`, which runs on `copies`.
    #[must_use]
    pub fn of(vsw: &VirtualSwitch, copies: Vec<String>) -> Self {
        Self {
            vswitch: vsw.name().to_owned(),
            copies,
            next_id: vsw.next_id(),
            entries: vsw.entries().map(SavedEntry::of).collect(),
        }
    }

    /// The virtual switch again, `since_ms` after the snapshot was taken (entries keep
    /// aging across the restart: a hard timeout is not restarted).
    #[must_use]
    pub fn restore(&self, since_ms: u64) -> VirtualSwitch {
        let entries = self.entries.iter().map(|e| e.restore(since_ms)).collect();
        VirtualSwitch::restore(&self.vswitch, entries, self.next_id)
    }
}

impl SavedEntry {
    /// An entry as the journal keeps it.
    #[must_use]
    pub fn of(e: &FlowEntry) -> Self {
        Self {
            id: e.id,
            rule: e.rule.clone(),
            installed: (&e.installed.ids).into(),
            base: e.base.into(),
            age_ms: u64::try_from(e.added.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The entry again, `since_ms` after it was saved (it keeps aging).
    #[must_use]
    pub fn restore(&self, since_ms: u64) -> FlowEntry {
        let now = Instant::now();
        let age = Duration::from_millis(self.age_ms.saturating_add(since_ms));
        FlowEntry {
            id: self.id,
            key: self.rule.matches.compile(),
            rule: self.rule.clone(),
            installed: crate::fabric::Installed {
                ids: (&self.installed).into(),
            },
            base: self.base.into(),
            added: now.checked_sub(age).unwrap_or(now),
        }
    }
}

/// A batch of table changes (flow-mods, expired entries) as the `batch` record keeps
/// it: what it makes of one virtual switch's table, journaled after it is staged and
/// before it is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedBatch {
    /// Virtual switch.
    pub vswitch: String,
    /// Wall-clock milliseconds (UNIX) when it was staged (entries' ages count from it).
    pub wall_ms: u64,
    /// The version it publishes on each physical switch running a copy.
    pub versions: BTreeMap<String, u32>,
    /// Next entry id after it.
    pub next_id: u64,
    /// Entries added or modified, as they will be (datapath rule ids on every copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub put: Vec<SavedEntry>,
    /// Entries removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<u64>,
    /// Modified entries: (entry, the datapath rules they leave on each physical switch,
    /// whether the modify resets the counters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<(u64, BTreeMap<String, u32>, bool)>,
}

impl SavedBatch {
    /// Milliseconds since it was staged (wall clock; 0 if the clock went back).
    #[must_use]
    pub fn since_ms(&self) -> u64 {
        wall_ms().saturating_sub(self.wall_ms)
    }

    /// Make `table` what this batch made of it (entries put, removed, the next id).
    pub fn replay_into(&self, table: &mut VirtualSwitch) {
        let since = self.since_ms();
        table.replay(
            self.put.iter().map(|e| e.restore(since)).collect(),
            &self.removed,
            self.next_id,
        );
    }

    /// The batch `d` of virtual switch `vswitch`, staged now.
    #[must_use]
    pub fn of(vswitch: &str, d: &crate::vswitch::BatchDelta<'_>) -> Self {
        Self {
            vswitch: vswitch.to_owned(),
            wall_ms: wall_ms(),
            versions: d.versions.clone(),
            next_id: d.next_id,
            put: d.put.iter().map(|e| SavedEntry::of(e)).collect(),
            removed: d.removed.clone(),
            replaced: d
                .replaced
                .iter()
                .map(|(id, old, reset)| (*id, (&old.ids).into(), *reset))
                .collect(),
        }
    }
}

impl Snapshot {
    /// A snapshot of `tables` taken now.
    #[must_use]
    pub fn now(tables: Vec<SavedTable>) -> Self {
        Self {
            wall_ms: wall_ms(),
            tables,
        }
    }

    /// Milliseconds since it was taken (wall clock; 0 if the clock went back).
    #[must_use]
    pub fn since_ms(&self) -> u64 {
        wall_ms().saturating_sub(self.wall_ms)
    }

    /// The table of one virtual switch.
    #[must_use]
    pub fn table(&self, vswitch: &str) -> Option<&SavedTable> {
        self.tables.iter().find(|t| t.vswitch == vswitch)
    }
}

/// How a migration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every host is at the target, the old copies retired.
    Done,
    /// A step failed; the state is the consistent one the failure left (see
    /// [`crate::migration`]'s "Failure").
    Failed,
    /// Undone after a restart: the hosts are back where they were.
    RolledBack,
}

/// A journal record (see the module docs for when each is written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "kebab-case")]
pub enum Record {
    /// A migration starts.
    Begin {
        /// Migration id.
        id: u64,
        /// Virtual switch.
        vswitch: String,
        /// Target physical switch.
        to: String,
        /// Strategy.
        strategy: Strategy,
        /// Source physical switches, one leg each, in order.
        legs: Vec<String>,
        /// Each host of the virtual switch and its physical switch at the start.
        hosts: Vec<(String, String)>,
        /// Each virtual link end of the virtual switch (its virtual port) and its
        /// physical switch at the start (a roll-back puts it back there).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<(u32, String)>,
        /// Every table, and where copies run.
        snapshot: Snapshot,
    },
    /// A phase of a leg starts.
    Phase {
        /// Migration id.
        id: u64,
        /// Leg (source physical switch).
        from: String,
        /// Phase.
        phase: Phase,
    },
    /// The clone is staged on the target, nothing written yet.
    CloneStaged {
        /// Migration id.
        id: u64,
        /// Leg.
        from: String,
        /// Where the clone goes, if not to the migration's target (a roll-back
        /// re-creating the source's copy).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on: Option<String>,
        /// (entry id, datapath rule id on the target).
        ids: Vec<(u64, u32)>,
    },
    /// The clone is published.
    Cloned {
        /// Migration id.
        id: u64,
        /// Leg.
        from: String,
        /// As in `clone-staged`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on: Option<String>,
    },
    /// Resuming is impossible (the target is gone): the migration is being undone.
    RollingBack {
        /// Migration id.
        id: u64,
        /// Why.
        why: String,
    },
    /// A host is about to move to the target.
    HostMoving {
        /// Migration id.
        id: u64,
        /// Host.
        host: String,
    },
    /// It moved.
    HostMoved {
        /// Migration id.
        id: u64,
        /// Host.
        host: String,
        /// Its physical switch now.
        to: String,
        /// How long it had no link (ms).
        downtime_ms: f64,
    },
    /// A virtual link end of the virtual switch is about to move to the target.
    LinkMoving {
        /// Migration id.
        id: u64,
        /// Its virtual port.
        port: u32,
    },
    /// It moved (the old veth pair is gone).
    LinkMoved {
        /// Migration id.
        id: u64,
        /// Its virtual port.
        port: u32,
        /// How long the move took (ms).
        took_ms: f64,
    },
    /// A copy's rules are unpublished; their final counters, before they are reclaimed.
    CopyRemoved {
        /// Migration id.
        id: u64,
        /// Physical switch of the copy.
        switch: String,
        /// (entry id, final counters there).
        finals: Vec<(u64, Counters)>,
    },
    /// The copy is reclaimed.
    CopyRetired {
        /// Migration id.
        id: u64,
        /// Physical switch of the copy.
        switch: String,
    },
    /// A batch of table changes is staged and about to be published (see the module
    /// docs): what it makes of the table.
    Batch {
        /// Migration id.
        id: u64,
        /// The batch.
        batch: SavedBatch,
    },
    /// The batches journaled since the last `batch-done` are published on every copy
    /// and their replaced rules' counters final (not reclaimed yet: that comes after
    /// this record): the counters of the entries they modified.
    BatchDone {
        /// Migration id.
        id: u64,
        /// (entry id, its counters of datapath rules it no longer uses).
        bases: Vec<(u64, Counters)>,
    },
    /// The tables changed between two steps (flow-mods, timeouts): every table as
    /// it is now; it replaces the snapshot of `begin` for recovery.
    Tables {
        /// Migration id.
        id: u64,
        /// Every table, and where copies run.
        snapshot: Snapshot,
    },
    /// A leg is over.
    LegDone {
        /// Migration id.
        id: u64,
        /// Its report.
        report: Report,
    },
    /// The migration is over.
    End {
        /// Migration id.
        id: u64,
        /// How.
        outcome: Outcome,
        /// Why it failed, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Record {
    /// The record's kind, as written in `rec`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Begin { .. } => "begin",
            Self::Phase { .. } => "phase",
            Self::CloneStaged { .. } => "clone-staged",
            Self::Cloned { .. } => "cloned",
            Self::RollingBack { .. } => "rolling-back",
            Self::HostMoving { .. } => "host-moving",
            Self::HostMoved { .. } => "host-moved",
            Self::LinkMoving { .. } => "link-moving",
            Self::LinkMoved { .. } => "link-moved",
            Self::CopyRemoved { .. } => "copy-removed",
            Self::CopyRetired { .. } => "copy-retired",
            Self::Batch { .. } => "batch",
            Self::BatchDone { .. } => "batch-done",
            Self::Tables { .. } => "tables",
            Self::LegDone { .. } => "leg-done",
            Self::End { .. } => "end",
        }
    }
}

/// A record with its sequence number, as one line of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// 1-based, increasing.
    pub seq: u64,
    /// The record.
    #[serde(flatten)]
    pub rec: Record,
}

/// The fault-injection point (tests only): exit after the `n`th record of `kind`, or
/// (`fail`) make every append fail from the `n`th record of `kind` on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    kind: String,
    n: u32,
    fail: bool,
}

impl Fault {
    fn parse(v: &str) -> Option<Self> {
        let (fail, v) = match v.strip_prefix("fail:") {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        let (kind, n) = match v.split_once(':') {
            Some((k, n)) => (k, n.parse().ok()?),
            None => (v, 1),
        };
        (!kind.is_empty()).then(|| Self {
            kind: kind.to_owned(),
            n,
            fail,
        })
    }
}

/// The fault-injection setting, if [`FAULT_ENV`] is set (for `lime run` to warn).
#[must_use]
pub fn fault_injection() -> Option<String> {
    std::env::var(FAULT_ENV).ok().filter(|v| !v.is_empty())
}

/// An open journal, appending.
pub struct Journal {
    path: PathBuf,
    file: File,
    seq: u64,
    fault: Option<Fault>,
    seen: BTreeMap<&'static str, u32>,
    /// Batches written since the last `tables` (the tables are journaled whole again
    /// before the next step).
    stale: bool,
    /// Entries modified by batches written since the last `batch-done`, by virtual
    /// switch (their counters go into it).
    modified: Vec<(String, Vec<u64>)>,
    /// Why the last append failed, until a `begin` succeeds: the journal may lack a
    /// record since then, so the running migration must not take another step.
    failed: Option<String>,
    /// The `fail` fault injection has been reached: every append fails.
    failing: bool,
}

impl Journal {
    fn open_with(path: &Path, truncate: bool) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let seq = if truncate {
            0
        } else {
            read(path)?.last().map_or(0, |l| l.seq)
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        if truncate {
            file.set_len(0).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            seq,
            fault: fault_injection().as_deref().and_then(Fault::parse),
            seen: BTreeMap::new(),
            stale: false,
            modified: Vec::new(),
            failed: None,
            failing: false,
        })
    }

    /// Why an append failed since the running migration began, if one did (see
    /// [`Journal::append`]).
    #[must_use]
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Start an empty journal at `path` (a fresh lab).
    ///
    /// # Errors
    /// I/O.
    pub fn create(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, true)
    }

    /// Keep appending to the journal at `path` (a restarted control plane).
    ///
    /// # Errors
    /// I/O, or a corrupt line.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, false)
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `batch` records were written since the last `tables` record (the
    /// tables are to be journaled whole before the next step).
    #[must_use]
    pub fn tables_stale(&self) -> bool {
        self.stale
    }

    /// The entries modified by the batches written since the last `batch-done`, by
    /// virtual switch (none: no `batch-done` is needed).
    #[must_use]
    pub fn modified(&self) -> &[(String, Vec<u64>)] {
        &self.modified
    }

    /// Append a record and make it durable (`fsync`) before returning.
    ///
    /// # Errors
    /// I/O: the record may not be durable, and the step it announces must not go on.
    /// What was written of it is cut off again (so the next record does not follow a
    /// torn line), and [`Journal::failure`] says why until the next `begin`.
    pub fn append(&mut self, rec: Record) -> Result<(), JournalError> {
        let kind = rec.kind();
        let n = self.seen.get(kind).copied().unwrap_or(0) + 1;
        if let Some(f) = &self.fault
            && f.fail
            && f.kind == kind
            && f.n == n
        {
            self.failing = true;
        }
        let is_begin = matches!(rec, Record::Begin { .. });
        match self.write_line(rec, kind) {
            Ok(()) => {
                if is_begin {
                    self.failed = None;
                }
                Ok(())
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Write `rec` (of kind `kind`) as the next line, durably.
    fn write_line(&mut self, rec: Record, kind: &'static str) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        match &rec {
            Record::Batch { batch, .. } => {
                IN_BATCH.store(true, std::sync::atomic::Ordering::Relaxed);
                self.stale = true;
                if !batch.replaced.is_empty() {
                    let ids = batch.replaced.iter().map(|(id, _, _)| *id).collect();
                    self.modified.push((batch.vswitch.clone(), ids));
                }
            }
            Record::BatchDone { .. } => self.modified.clear(),
            Record::Tables { .. } | Record::Begin { .. } | Record::End { .. } => {
                self.stale = false;
                self.modified.clear();
            }
            _ => {}
        }
        let line = Line {
            seq: self.seq + 1,
            rec,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| io(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        let len = self.file.metadata().map_err(io)?.len();
        let written = if self.failing {
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        } else {
            self.file
                .write_all(&bytes)
                .and_then(|()| self.file.sync_data())
        };
        if let Err(e) = written {
            let _ = self.file.set_len(len);
            return Err(io(e));
        }
        self.seq += 1;
        let n = self.seen.entry(kind).or_default();
        *n += 1;
        if let Some(f) = &self.fault
            && !f.fail
            && f.kind == kind
            && f.n == *n
        {
            crash(&format!("right after journal record {} ({kind})", self.seq));
        }
        Ok(())
    }
}

/// End the process at once, as `kill -9` would (fault injection).
fn crash(what: &str) -> ! {
    eprintln!("lime: fault injection ({FAULT_ENV}): exiting {what}");
    // SAFETY: _exit has no preconditions; it ends the process at once, without running
    // destructors (the point: nothing is cleaned up, as with kill -9).
    unsafe { libc::_exit(137) }
}

/// Whether a `batch` record was written and its version not yet published everywhere
/// (the `batch-*` fault points count only then).
static IN_BATCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A fault-injection point between two records (tests only): the process exits at once
/// when [`FAULT_ENV`] names `point` (`<point>[:<n>]`: at its `n`th pass). Points:
/// `batch-prepared` (a journaled batch written and marked ready on every copy, none
/// published), `batch-half-published` (published on the first copy only),
/// `batch-published` (on every copy, before its `batch-done`), and `link-carried`
/// (a virtual link end's new veth pair carries the link, the old one not removed yet).
/// The `batch-*` points count only batches with a `batch` record.
pub fn fault_point(point: &str) {
    static FAULT: std::sync::OnceLock<Option<Fault>> = std::sync::OnceLock::new();
    static PASSES: std::sync::Mutex<BTreeMap<String, u32>> = std::sync::Mutex::new(BTreeMap::new());
    let Some(f) = FAULT.get_or_init(|| fault_injection().as_deref().and_then(Fault::parse)) else {
        return;
    };
    let in_batch = IN_BATCH.load(std::sync::atomic::Ordering::Relaxed);
    if point == "batch-published" {
        IN_BATCH.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    if f.fail || f.kind != point || (point.starts_with("batch-") && !in_batch) {
        return;
    }
    let mut passes = PASSES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = passes.entry(point.to_owned()).or_default();
    *n += 1;
    if *n == f.n {
        crash(&format!("at {point} ({n})"));
    }
}

/// Read every record of the journal at `path` (none if there is no file). A last line
/// cut short by a crash (no newline, not JSON) is ignored: its step never started.
///
/// # Errors
/// I/O, or a corrupt line before the last.
pub fn read(path: &Path) -> Result<Vec<Line>, JournalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Vec<Line>, JournalError> {
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(l) {
            Ok(line) => out.push(line),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(source) => {
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(out)
}

/// A migration the journal shows started and not ended, with what its records say
/// was done.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfinished {
    /// Migration id.
    pub id: u64,
    /// Virtual switch.
    pub vswitch: String,
    /// Target.
    pub to: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Legs (sources), in order.
    pub legs: Vec<String>,
    /// Hosts and their physical switch at the start.
    pub hosts: Vec<(String, String)>,
    /// Virtual link ends (virtual port) and their physical switch at the start.
    pub links: Vec<(u32, String)>,
    /// The tables at the start, or as the last `tables` record left them.
    pub snapshot: Snapshot,
    /// Legs done, with their reports.
    pub done: Vec<Report>,
    /// The last leg and phase that started.
    pub phase: Option<(String, Phase)>,
    /// Clones staged, in order.
    pub clones: Vec<StagedClone>,
    /// Whether a roll-back started.
    pub rolling_back: bool,
    /// Hosts moved so far, with their downtime.
    pub moved: Vec<(String, f64)>,
    /// A host whose move started and was not journaled as done.
    pub moving: Option<String>,
    /// A virtual link end (its virtual port) whose move started and was not journaled
    /// as done.
    pub link_moving: Option<u32>,
    /// Copies whose final counters were journaled: switch → (entry, counters).
    pub removed: BTreeMap<String, Vec<(u64, Counters)>>,
    /// Copies journaled as reclaimed.
    pub retired: Vec<String>,
    /// Batches journaled after the last snapshot, in order.
    pub batches: Vec<JournaledBatch>,
}

/// A batch the journal shows after the last snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct JournaledBatch {
    /// What it makes of the table.
    pub batch: SavedBatch,
    /// Once a `batch-done` came after it: published everywhere, and the counters of the
    /// entries modified by the batches up to that record (on the last of them). None:
    /// its publish is in doubt, unless a later batch's is known.
    pub done: Option<Vec<(u64, Counters)>>,
}

/// A clone the journal shows staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedClone {
    /// Where it goes.
    pub on: String,
    /// (entry id, datapath rule id there).
    pub ids: Vec<(u64, u32)>,
    /// Whether its publish was journaled.
    pub published: bool,
}

/// What a restarted control plane hands the switch core: the unfinished migration and
/// what taking the lab over found.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The migration.
    pub unfinished: Unfinished,
    /// Hosts the lab had to attach again (at their place before the migration).
    pub lost: Vec<String>,
    /// Physical switches whose namespace is gone.
    pub gone: Vec<String>,
}

/// The migration that `lines` show unfinished, if any (the last `begin` without its
/// `end`).
#[must_use]
pub fn unfinished(lines: &[Line]) -> Option<Unfinished> {
    let mut cur: Option<Unfinished> = None;
    for l in lines {
        match &l.rec {
            Record::Begin {
                id,
                vswitch,
                to,
                strategy,
                legs,
                hosts,
                links,
                snapshot,
            } => {
                cur = Some(Unfinished {
                    id: *id,
                    vswitch: vswitch.clone(),
                    to: to.clone(),
                    strategy: *strategy,
                    legs: legs.clone(),
                    hosts: hosts.clone(),
                    links: links.clone(),
                    snapshot: snapshot.clone(),
                    done: Vec::new(),
                    phase: None,
                    clones: Vec::new(),
                    rolling_back: false,
                    moved: Vec::new(),
                    moving: None,
                    link_moving: None,
                    removed: BTreeMap::new(),
                    retired: Vec::new(),
                    batches: Vec::new(),
                });
            }
            rec => {
                let Some(u) = cur.as_mut() else { continue };
                u.apply(rec);
                if matches!(rec, Record::End { id, .. } if *id == u.id) {
                    cur = None;
                }
            }
        }
    }
    cur
}

impl Unfinished {
    fn apply(&mut self, rec: &Record) {
        match rec {
            Record::Phase { id, from, phase } if *id == self.id => {
                self.phase = Some((from.clone(), *phase));
            }
            Record::CloneStaged { id, on, ids, .. } if *id == self.id => {
                self.clones.push(StagedClone {
                    on: on.clone().unwrap_or_else(|| self.to.clone()),
                    ids: ids.clone(),
                    published: false,
                });
            }
            Record::Cloned { id, on, .. } if *id == self.id => {
                let on = on.clone().unwrap_or_else(|| self.to.clone());
                if let Some(c) = self.clones.iter_mut().rev().find(|c| c.on == on) {
                    c.published = true;
                }
            }
            Record::RollingBack { id, .. } if *id == self.id => self.rolling_back = true,
            Record::HostMoving { id, host } if *id == self.id => {
                self.moving = Some(host.clone());
            }
            Record::HostMoved {
                id,
                host,
                downtime_ms,
                ..
            } if *id == self.id => {
                if self.moving.as_deref() == Some(host) {
                    self.moving = None;
                }
                self.moved.push((host.clone(), *downtime_ms));
            }
            Record::LinkMoving { id, port } if *id == self.id => self.link_moving = Some(*port),
            Record::LinkMoved { id, port, .. }
                if *id == self.id && self.link_moving == Some(*port) =>
            {
                self.link_moving = None;
            }
            Record::CopyRemoved { id, switch, finals } if *id == self.id => {
                self.removed.insert(switch.clone(), finals.clone());
            }
            Record::CopyRetired { id, switch } if *id == self.id => {
                self.retired.push(switch.clone());
            }
            Record::Tables { id, snapshot } if *id == self.id => {
                // The tables as they are after every step so far: clones published and
                // copies retired before it are in them (their rule ids, their folded
                // counters), so they are not settled again.
                self.snapshot = snapshot.clone();
                self.clones.clear();
                self.removed.clear();
                self.batches.clear();
            }
            Record::Batch { id, batch } if *id == self.id => self.batches.push(JournaledBatch {
                batch: batch.clone(),
                done: None,
            }),
            Record::BatchDone { id, bases } if *id == self.id => {
                for b in self.batches.iter_mut().filter(|b| b.done.is_none()) {
                    b.done = Some(Vec::new());
                }
                if let Some(last) = self.batches.last_mut() {
                    last.done = Some(bases.clone());
                }
            }
            Record::LegDone { id, report } if *id == self.id => {
                self.done.push(report.clone());
            }
            _ => {}
        }
    }

    /// Copies whose counters were journaled but whose reclaim was not.
    pub fn removed_not_retired(&self) -> impl Iterator<Item = (&String, &Vec<(u64, Counters)>)> {
        self.removed
            .iter()
            .filter(|(sw, _)| !self.retired.contains(sw))
    }
}

/// A fresh migration id (milliseconds since the epoch, made unique by the caller's
/// journal order).
#[must_use]
pub fn new_id() -> u64 {
    wall_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begin(id: u64) -> Record {
        Record::Begin {
            id,
            vswitch: "vs1".into(),
            to: "s3".into(),
            strategy: Strategy::Clone,
            legs: vec!["s1".into()],
            hosts: vec![("h1".into(), "s1".into())],
            links: vec![(9, "s1".into())],
            snapshot: Snapshot::now(vec![SavedTable {
                vswitch: "vs1".into(),
                copies: vec!["s1".into(), "s2".into()],
                next_id: 2,
                entries: vec![SavedEntry {
                    id: 1,
                    rule: Rule::new(
                        0,
                        5,
                        crate::flow::Match::default(),
                        crate::flow::Instructions::apply(vec![crate::flow::Action::output(1)]),
                    ),
                    installed: BTreeMap::from([("s1".into(), 7), ("s2".into(), 9)]),
                    base: Counters::default(),
                    age_ms: 1500,
                }],
            }]),
        }
    }

    fn lines(recs: Vec<Record>) -> Vec<Line> {
        recs.into_iter()
            .enumerate()
            .map(|(i, rec)| Line {
                seq: i as u64 + 1,
                rec,
            })
            .collect()
    }

    #[test]
    fn records_round_trip_as_tagged_json_lines() {
        let l = Line {
            seq: 3,
            rec: Record::HostMoved {
                id: 9,
                host: "h1".into(),
                to: "s3".into(),
                downtime_ms: 12.5,
            },
        };
        let json = serde_json::to_string(&l).expect("json");
        assert!(json.starts_with(r#"{"seq":3,"rec":"host-moved""#), "{json}");
        assert_eq!(serde_json::from_str::<Line>(&json).expect("parse"), l);
        let b = Line {
            seq: 1,
            rec: begin(1),
        };
        let json = serde_json::to_string(&b).expect("json");
        assert_eq!(serde_json::from_str::<Line>(&json).expect("parse"), b);
    }

    #[test]
    fn a_torn_last_line_is_ignored_a_corrupt_middle_line_is_not() {
        let p = Path::new("j");
        let good = serde_json::to_string(&Line {
            seq: 1,
            rec: Record::Cloned {
                id: 1,
                from: "s1".into(),
                on: None,
            },
        })
        .expect("json");
        let torn = format!("{good}\n{{\"seq\":2,\"rec\":\"host-mo");
        assert_eq!(parse(p, &torn).expect("torn tail").len(), 1);
        let corrupt = format!("{{\"seq\":2,\"rec\":\"nope\"}}\n{good}\n");
        assert!(matches!(
            parse(p, &corrupt),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
        let unknown_complete = format!("{good}\n{{\"seq\":2}}\n");
        assert!(parse(p, &unknown_complete).is_err(), "a complete bad line");
    }

    #[test]
    fn unfinished_tracks_the_steps_of_the_last_migration() {
        assert_eq!(unfinished(&[]), None);
        let done = lines(vec![
            begin(1),
            Record::End {
                id: 1,
                outcome: Outcome::Done,
                error: None,
            },
        ]);
        assert_eq!(unfinished(&done), None, "an ended migration is finished");
        let mut recs = vec![
            begin(1),
            Record::End {
                id: 1,
                outcome: Outcome::Done,
                error: None,
            },
            begin(2),
            Record::CloneStaged {
                id: 2,
                from: "s1".into(),
                on: None,
                ids: vec![(1, 4)],
            },
            Record::Cloned {
                id: 2,
                from: "s1".into(),
                on: None,
            },
            Record::HostMoving {
                id: 2,
                host: "h1".into(),
            },
        ];
        let u = unfinished(&lines(recs.clone())).expect("unfinished");
        assert_eq!((u.id, u.moving.as_deref()), (2, Some("h1")));
        assert_eq!(
            u.clones,
            [StagedClone {
                on: "s3".into(),
                ids: vec![(1, 4)],
                published: true
            }]
        );
        assert!(!u.rolling_back);
        recs.push(Record::HostMoved {
            id: 2,
            host: "h1".into(),
            to: "s3".into(),
            downtime_ms: 3.0,
        });
        recs.push(Record::CopyRemoved {
            id: 2,
            switch: "s1".into(),
            finals: vec![(
                1,
                Counters {
                    packets: 5,
                    bytes: 300,
                    last_hit_ns: 1,
                },
            )],
        });
        let u = unfinished(&lines(recs.clone())).expect("unfinished");
        assert_eq!(u.moving, None);
        assert_eq!(u.moved, vec![("h1".to_owned(), 3.0)]);
        assert_eq!(u.removed_not_retired().count(), 1);
        recs.push(Record::CopyRetired {
            id: 2,
            switch: "s1".into(),
        });
        let u = unfinished(&lines(recs)).expect("unfinished");
        assert_eq!(u.removed_not_retired().count(), 0);
    }

    #[test]
    fn a_tables_record_replaces_the_snapshot_and_settles_what_came_before_it() {
        let Record::Begin { snapshot, .. } = begin(1) else {
            unreachable!()
        };
        let mut later = snapshot.clone();
        later.tables[0].next_id = 9;
        later.tables[0].copies.push("s3".into());
        let recs = vec![
            begin(1),
            Record::CloneStaged {
                id: 1,
                from: "s1".into(),
                on: None,
                ids: vec![(1, 4)],
            },
            Record::Cloned {
                id: 1,
                from: "s1".into(),
                on: None,
            },
            Record::Tables {
                id: 2,
                snapshot: snapshot.clone(),
            },
            Record::Tables {
                id: 1,
                snapshot: later.clone(),
            },
        ];
        let json = serde_json::to_string(&recs[4]).expect("json");
        assert!(json.starts_with(r#"{"rec":"tables""#), "{json}");
        let u = unfinished(&lines(recs.clone())).expect("unfinished");
        assert_eq!(
            u.snapshot, later,
            "the last tables record of this migration"
        );
        assert!(u.clones.is_empty(), "the published clone is in the tables");
        let mut recs = recs;
        recs.push(Record::CopyRemoved {
            id: 1,
            switch: "s1".into(),
            finals: Vec::new(),
        });
        let u = unfinished(&lines(recs)).expect("unfinished");
        assert_eq!(
            u.removed_not_retired().count(),
            1,
            "after it: still in doubt"
        );
    }

    fn batch(put_id: u64) -> SavedBatch {
        let Record::Begin { snapshot, .. } = begin(1) else {
            unreachable!()
        };
        let mut e = snapshot.tables[0].entries[0].clone();
        e.id = put_id;
        SavedBatch {
            vswitch: "vs1".into(),
            wall_ms: 0,
            versions: BTreeMap::from([("s1".into(), 4), ("s2".into(), 4)]),
            next_id: put_id + 1,
            put: vec![e],
            removed: vec![1],
            replaced: Vec::new(),
        }
    }

    #[test]
    fn batches_after_the_last_tables_record_are_in_doubt_and_link_moves_are_tracked() {
        let Record::Begin { snapshot, .. } = begin(1) else {
            unreachable!()
        };
        let mut recs = vec![
            begin(1),
            Record::Batch {
                id: 1,
                batch: batch(2),
            },
            Record::Tables { id: 1, snapshot },
            Record::Batch {
                id: 1,
                batch: batch(3),
            },
            Record::Batch {
                id: 7,
                batch: batch(4),
            },
            Record::LinkMoving { id: 1, port: 5 },
        ];
        let json = serde_json::to_string(&recs[3]).expect("json");
        assert!(json.starts_with(r#"{"rec":"batch""#), "{json}");
        assert_eq!(
            serde_json::from_str::<Record>(&json).expect("parse"),
            recs[3]
        );
        let u = unfinished(&lines(recs.clone())).expect("unfinished");
        assert_eq!(
            u.batches,
            [JournaledBatch {
                batch: batch(3),
                done: None
            }],
            "only this migration's batch after the last tables record, in doubt"
        );
        assert_eq!(u.link_moving, Some(5));
        let c = Counters {
            packets: 3,
            bytes: 180,
            last_hit_ns: 9,
        };
        let mut done = recs.clone();
        done.push(Record::BatchDone {
            id: 1,
            bases: vec![(3, c)],
        });
        let u = unfinished(&lines(done)).expect("unfinished");
        assert_eq!(
            u.batches[0].done,
            Some(vec![(3, c)]),
            "published, counters known"
        );
        recs.push(Record::LinkMoved {
            id: 1,
            port: 5,
            took_ms: 20.0,
        });
        assert_eq!(
            unfinished(&lines(recs)).expect("unfinished").link_moving,
            None
        );
    }

    /// Sizes and append times (write + fsync, temp dir) of a `tables` record for a
    /// 1 000-entry table and of `batch` records of 1 and 100 rules: printed (run with
    /// `--nocapture`), only their ratio asserted.
    #[test]
    fn a_batch_record_costs_what_the_batch_changes_not_the_table() {
        let Record::Begin { snapshot, .. } = begin(1) else {
            unreachable!()
        };
        let proto = snapshot.tables[0].entries[0].clone();
        let entries: Vec<SavedEntry> = (1..=1000)
            .map(|id| SavedEntry {
                id,
                installed: BTreeMap::from([
                    ("s1".into(), 1000 + id as u32),
                    ("s2".into(), 2000 + id as u32),
                    ("s3".into(), 3000 + id as u32),
                ]),
                ..proto.clone()
            })
            .collect();
        let mut table = snapshot.tables[0].clone();
        table.entries.clone_from(&entries);
        let tables = Record::Tables {
            id: 1,
            snapshot: Snapshot::now(vec![table]),
        };
        let batch_of = |n: usize| Record::Batch {
            id: 1,
            batch: SavedBatch {
                put: entries[..n].to_vec(),
                ..batch(2)
            },
        };
        let dir = std::env::temp_dir().join(format!("lime-journal-cost-{}", std::process::id()));
        let mut j = Journal::create(&dir.join(JOURNAL_FILE)).expect("create");
        let mut cost = |rec: &Record| {
            let bytes = serde_json::to_vec(rec).expect("json").len();
            let t = Instant::now();
            for _ in 0..20 {
                j.append(rec.clone()).expect("append");
            }
            (bytes, t.elapsed().as_secs_f64() * 1e3 / 20.0)
        };
        let (t_bytes, t_ms) = cost(&tables);
        let (b1_bytes, b1_ms) = cost(&batch_of(1));
        let (b100_bytes, b100_ms) = cost(&batch_of(100));
        eprintln!(
            "journal record cost, 1 000-entry table: tables {t_bytes} B {t_ms:.3} ms; batch of 1 rule {b1_bytes} B {b1_ms:.3} ms; batch of 100 rules {b100_bytes} B {b100_ms:.3} ms"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert!(b1_bytes * 100 < t_bytes, "{b1_bytes} vs {t_bytes}");
        assert!(b100_bytes * 5 < t_bytes, "{b100_bytes} vs {t_bytes}");
    }

    #[test]
    fn a_restored_table_keeps_ids_rules_counters_and_age() {
        let Record::Begin { snapshot, .. } = begin(1) else {
            unreachable!()
        };
        let t = snapshot.table("vs1").expect("vs1");
        let v = t.restore(500);
        let e = v.entry(1).expect("entry 1");
        assert_eq!(e.installed.ids_on("s2"), 9);
        assert!(e.added.elapsed() >= Duration::from_millis(2000), "age kept");
        assert_eq!(v.next_id(), 2);
        assert_eq!(
            SavedTable::of(&v, t.copies.clone()).entries[0].rule,
            t.entries[0].rule
        );
    }

    #[test]
    fn journal_appends_durably_and_reopens_where_it_left_off() {
        let dir = std::env::temp_dir().join(format!("lime-journal-{}", std::process::id()));
        let path = dir.join(JOURNAL_FILE);
        let mut j = Journal::create(&path).expect("create");
        j.append(begin(1)).expect("append");
        j.append(Record::Cloned {
            id: 1,
            from: "s1".into(),
            on: None,
        })
        .expect("append");
        drop(j);
        let mut j = Journal::open(&path).expect("reopen");
        j.append(Record::End {
            id: 1,
            outcome: Outcome::Done,
            error: None,
        })
        .expect("append");
        let l = read(&path).expect("read");
        assert_eq!(l.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(unfinished(&l), None);
        Journal::create(&path).expect("truncate");
        assert!(read(&path).expect("read").is_empty());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_failed_append_leaves_the_file_as_it_was_and_is_remembered_until_begin() {
        let dir = std::env::temp_dir().join(format!("lime-journal-fail-{}", std::process::id()));
        let path = dir.join(JOURNAL_FILE);
        let mut j = Journal::create(&path).expect("create");
        j.append(begin(1)).expect("append");
        let before = std::fs::read(&path).expect("read");
        j.failing = true;
        let cloned = Record::Cloned {
            id: 1,
            from: "s1".into(),
            on: None,
        };
        assert!(matches!(
            j.append(cloned.clone()),
            Err(JournalError::Io { .. })
        ));
        assert!(j.failure().is_some_and(|w| w.contains("No space left")));
        assert_eq!(
            std::fs::read(&path).expect("read"),
            before,
            "nothing of it stays"
        );
        j.failing = false;
        j.append(cloned).expect("append");
        assert!(j.failure().is_some(), "remembered until the next begin");
        j.append(begin(2)).expect("append");
        assert_eq!(j.failure(), None);
        assert_eq!(
            read(&path)
                .expect("read")
                .iter()
                .map(|l| l.seq)
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn fault_points_parse() {
        assert_eq!(
            Fault::parse("host-moved:2"),
            Some(Fault {
                kind: "host-moved".into(),
                n: 2,
                fail: false,
            })
        );
        assert_eq!(
            Fault::parse("fail:batch:3"),
            Some(Fault {
                kind: "batch".into(),
                n: 3,
                fail: true,
            })
        );
        assert_eq!(Fault::parse("fail:"), None);
        assert_eq!(Fault::parse("cloned").map(|f| f.n), Some(1));
        assert_eq!(Fault::parse("x:y"), None);
        assert_eq!(Fault::parse(""), None);
    }
}

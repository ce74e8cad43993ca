//! OpenFlow 1.3 flow-table semantics for one virtual switch, over the copies of it that
//! run on the fabric's physical switches.
//!
//! A [`FlowMod`] (spec 6.4, 7.3.4.1) becomes one versioned update on every physical
//! switch: the rules it removes and the rules it adds become visible together, so a
//! packet sees the table before or after the flow-mod, never half of it.
//!
//! - `Add`: with CHECK_OVERLAP, refused if an entry of the same priority could match a
//!   packet the new one matches; an entry with an identical match and priority is
//!   replaced (its counters start again).
//! - `Modify` / `ModifyStrict`: the instructions of every entry the request covers
//!   (non-strict) or matches exactly (strict, with priority) are replaced; counters are
//!   kept unless RESET_COUNTS; cookies are not changed. No match: nothing happens.
//! - `Delete` / `DeleteStrict`: removes what the request covers / matches exactly, in one
//!   table or all (`OFPTT_ALL`), filtered by cookie/mask and out_port; the removed entries
//!   come back with their final counters (for FLOW_REMOVED).
use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use lime_common::{action::port_no, flow::FlowKey, limits::MAX_TABLES, stats::RuleStats};
use serde::Serialize;

use crate::{
    fabric::{Fabric, FabricError, Installed, Retired},
    flow::{
        FlowError, Rule,
        matching::{covers, overlaps},
    },
};

/// `table_id` meaning every table (delete only).
pub const OFPTT_ALL: u8 = 0xff;

/// Flow-mod flags (OpenFlow 1.3 `ofp_flow_mod_flags`).
pub mod flags {
    /// Send FLOW_REMOVED when the entry expires or is deleted.
    pub const SEND_FLOW_REM: u16 = 1;
    /// Refuse an add that overlaps an entry of the same priority.
    pub const CHECK_OVERLAP: u16 = 2;
    /// Reset counters on modify.
    pub const RESET_COUNTS: u16 = 4;
    /// The entry need not count packets.
    pub const NO_PKT_COUNTS: u16 = 8;
    /// The entry need not count bytes.
    pub const NO_BYT_COUNTS: u16 = 16;
}

/// Flow-mod commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Command {
    /// OFPFC_ADD.
    Add,
    /// OFPFC_MODIFY.
    Modify,
    /// OFPFC_MODIFY_STRICT.
    ModifyStrict,
    /// OFPFC_DELETE.
    Delete,
    /// OFPFC_DELETE_STRICT.
    DeleteStrict,
}

/// A flow-mod request.
#[derive(Clone, Debug)]
pub struct FlowMod {
    /// What to do.
    pub command: Command,
    /// Table (or [`OFPTT_ALL`] for deletes), priority, match, instructions, cookie,
    /// timeouts and flags.
    pub rule: Rule,
    /// Cookie mask for modify/delete (0: no cookie filter).
    pub cookie_mask: u64,
    /// out_port filter for deletes ([`port_no::ANY`]: none).
    pub out_port: u32,
}

impl FlowMod {
    /// An add of `rule`.
    #[must_use]
    pub fn add(rule: Rule) -> Self {
        Self {
            command: Command::Add,
            rule,
            cookie_mask: 0,
            out_port: port_no::ANY,
        }
    }
}

/// Why a flow-mod failed. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum FlowModError {
    /// The rule is invalid (maps to the OpenFlow match/instruction/action errors).
    #[error("{0}")]
    Rule(#[from] FlowError),
    /// CHECK_OVERLAP found an overlapping entry (OFPFMFC_OVERLAP).
    #[error("the new entry overlaps entry {existing} of the same priority")]
    Overlap {
        /// The overlapping entry.
        existing: u64,
    },
    /// Table id out of range (OFPFMFC_BAD_TABLE_ID).
    #[error("table {table} does not exist")]
    BadTable {
        /// Table.
        table: u8,
    },
    /// The datapath refused (table full etc.).
    #[error("{0}")]
    Fabric(#[from] FabricError),
}

/// One flow entry of the virtual switch.
#[derive(Clone, Debug)]
pub struct FlowEntry {
    /// Stable entry id (for the OpenFlow layer).
    pub id: u64,
    /// The rule as the controller gave it (instructions as last modified).
    pub rule: Rule,
    /// Compiled (value, mask), for the OpenFlow relations.
    pub key: (FlowKey, FlowKey),
    /// Its datapath rules on each physical switch.
    pub installed: Installed,
    /// Counters of datapath rules it no longer uses (kept across modify).
    pub base: RuleStats,
    /// When it was added.
    pub added: Instant,
}

/// What a flow-mod did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Entries added.
    pub added: Vec<u64>,
    /// Entries whose instructions changed.
    pub modified: Vec<u64>,
    /// Entries removed, with their final counters.
    pub removed: Vec<(FlowEntry, RuleStats)>,
}

/// A virtual switch's flow tables.
pub struct VirtualSwitch {
    name: String,
    entries: BTreeMap<u64, FlowEntry>,
    /// (table, priority, compiled match) → entry: an add finds the entry it replaces
    /// without scanning the table.
    exact: crate::FastMap<ExactKey, u64>,
    next_id: u64,
}

type ExactKey = (u8, u16, (FlowKey, FlowKey));

fn exact_key(e: &FlowEntry) -> ExactKey {
    (e.rule.table, e.rule.priority, e.key)
}

impl VirtualSwitch {
    /// An empty virtual switch (its rules live on `fabric` under `name`).
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            entries: BTreeMap::new(),
            exact: crate::FastMap::default(),
            next_id: 1,
        }
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Entries, by id.
    pub fn entries(&self) -> impl Iterator<Item = &FlowEntry> {
        self.entries.values()
    }

    /// How many entries there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An entry.
    #[must_use]
    pub fn entry(&self, id: u64) -> Option<&FlowEntry> {
        self.entries.get(&id)
    }

    /// An entry's counters: what it counted before its last modify plus what its current
    /// datapath rules counted on every physical switch.
    pub fn stats(&self, fabric: &Fabric, id: u64) -> Result<RuleStats, FabricError> {
        let Some(e) = self.entries.get(&id) else {
            return Ok(RuleStats::default());
        };
        let live = fabric.rule_stats(&e.installed)?;
        Ok(RuleStats {
            packets: e.base.packets + live.packets,
            bytes: e.base.bytes + live.bytes,
            last_hit_ns: e.base.last_hit_ns.max(live.last_hit_ns),
        })
    }

    /// Start a copy of this virtual switch on physical switch `switch`: every entry
    /// (cookies, timeouts and their original install time kept) is installed there as
    /// one version, so the copy starts with exactly the table the others have. The
    /// caller serialises this with flow-mods (the switch core does), so no update can
    /// reach one copy and not the other. All or nothing.
    pub fn clone_to(&mut self, fabric: &mut Fabric, switch: &str) -> Result<(), FabricError> {
        self.clone_to_with(fabric, switch, |_| Ok(()))
    }

    /// [`VirtualSwitch::clone_to`], telling `staged` which datapath rule id each entry
    /// will have on `switch` (entry id, rule id) before anything is written there (see
    /// [`Fabric::add_copy_with`]). An error from `staged` stops the clone: nothing
    /// changed.
    pub fn clone_to_with(
        &mut self,
        fabric: &mut Fabric,
        switch: &str,
        staged: impl FnOnce(&[(u64, u32)]) -> Result<(), String>,
    ) -> Result<(), FabricError> {
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        let rules: Vec<Rule> = ids.iter().map(|id| self.entries[id].rule.clone()).collect();
        let dp_ids = fabric.add_copy_with(&self.name, switch, &rules, |dp_ids| {
            let pairs: Vec<(u64, u32)> = ids.iter().copied().zip(dp_ids.iter().copied()).collect();
            staged(&pairs)
        })?;
        self.adopt_copy(switch, ids.into_iter().zip(dp_ids));
        Ok(())
    }

    /// Record that entries have datapath rules on `switch` (entry id, rule id): a copy
    /// made by [`VirtualSwitch::clone_to`], or found again after a restart.
    pub fn adopt_copy(&mut self, switch: &str, ids: impl IntoIterator<Item = (u64, u32)>) {
        for (id, rid) in ids {
            if let Some(e) = self.entries.get_mut(&id) {
                e.installed.ids.insert(switch.to_owned(), rid);
            }
        }
    }

    /// Retire this virtual switch's copy on physical switch `switch` (its hosts must
    /// have moved away): its rules are removed there and their final counters are
    /// folded into each entry's totals, so statistics never go backwards.
    pub fn retire_copy(&mut self, fabric: &mut Fabric, switch: &str) -> Result<(), FabricError> {
        self.drop_copy(fabric, switch, false, |_| Ok(()))
    }

    /// [`VirtualSwitch::retire_copy`], telling `removed` each entry's final counters on
    /// `switch` (entry id, counters) once they are final and before the datapath forgets
    /// them (see [`Fabric::remove_copy`]).
    pub fn retire_copy_with(
        &mut self,
        fabric: &mut Fabric,
        switch: &str,
        removed: impl FnOnce(&[(u64, RuleStats)]) -> Result<(), String>,
    ) -> Result<(), FabricError> {
        self.drop_copy(fabric, switch, false, removed)
    }

    /// Stop this virtual switch's copy on `switch` at once, hosts attached or not (the
    /// naive `move` strategy's freeze): as [`VirtualSwitch::retire_copy_with`], without
    /// its checks.
    pub fn freeze_copy_with(
        &mut self,
        fabric: &mut Fabric,
        switch: &str,
        removed: impl FnOnce(&[(u64, RuleStats)]) -> Result<(), String>,
    ) -> Result<(), FabricError> {
        self.drop_copy(fabric, switch, true, removed)
    }

    /// Stop this virtual switch's copy on `switch` at once (see
    /// [`VirtualSwitch::freeze_copy_with`]).
    pub fn freeze_copy(&mut self, fabric: &mut Fabric, switch: &str) -> Result<(), FabricError> {
        self.drop_copy(fabric, switch, true, |_| Ok(()))
    }

    fn drop_copy(
        &mut self,
        fabric: &mut Fabric,
        switch: &str,
        freeze: bool,
        removed: impl FnOnce(&[(u64, RuleStats)]) -> Result<(), String>,
    ) -> Result<(), FabricError> {
        let on: Vec<(u64, u32)> = self
            .entries
            .iter()
            .map(|(id, e)| (*id, e.installed.ids_on(switch)))
            .filter(|(_, rid)| *rid != 0)
            .collect();
        let live: Vec<u32> = on.iter().map(|(_, rid)| *rid).collect();
        let tell = |finals: &[RuleStats]| {
            let by_entry: Vec<(u64, RuleStats)> = on
                .iter()
                .map(|(id, _)| *id)
                .zip(finals.iter().copied())
                .collect();
            removed(&by_entry)
        };
        let finals = if freeze {
            fabric.freeze_copy(&self.name, switch, &live, tell)?
        } else {
            fabric.remove_copy(&self.name, switch, &live, tell)?
        };
        let folded: Vec<(u64, RuleStats)> = on.iter().map(|(id, _)| *id).zip(finals).collect();
        self.fold_retired(switch, &folded);
        Ok(())
    }

    /// Fold the final counters of an entry's retired datapath rules on `switch` into its
    /// totals (entry id, counters), and forget its rules there. Entries not listed
    /// forget theirs too.
    pub fn fold_retired(&mut self, switch: &str, finals: &[(u64, RuleStats)]) {
        for (id, fin) in finals {
            if let Some(e) = self.entries.get_mut(id) {
                e.base.packets += fin.packets;
                e.base.bytes += fin.bytes;
                e.base.last_hit_ns = e.base.last_hit_ns.max(fin.last_hit_ns);
            }
        }
        for e in self.entries.values_mut() {
            e.installed.ids.remove(switch);
        }
    }

    /// The next entry id (for a snapshot of the table).
    #[must_use]
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// A virtual switch with the entries of a snapshot (a restarted control plane): ids,
    /// rules, datapath rules and counters as they were; `next_id` continues.
    #[must_use]
    pub fn restore(name: &str, entries: Vec<FlowEntry>, next_id: u64) -> Self {
        let mut v = Self::new(name);
        for e in entries {
            v.exact.insert(exact_key(&e), e.id);
            v.next_id = v.next_id.max(e.id + 1);
            v.entries.insert(e.id, e);
        }
        v.next_id = v.next_id.max(next_id);
        v
    }

    fn cookie_ok(e: &FlowEntry, fm: &FlowMod) -> bool {
        (e.rule.cookie & fm.cookie_mask) == (fm.rule.cookie & fm.cookie_mask)
    }

    fn table_ok(e: &FlowEntry, fm: &FlowMod) -> bool {
        fm.rule.table == OFPTT_ALL || e.rule.table == fm.rule.table
    }

    fn strict_ok(e: &FlowEntry, fm: &FlowMod, key: &(FlowKey, FlowKey)) -> bool {
        e.rule.priority == fm.rule.priority && e.key == *key
    }

    /// Apply a flow-mod as its own version. On error nothing changed.
    pub fn apply(&mut self, fabric: &mut Fabric, fm: &FlowMod) -> Result<Outcome, FlowModError> {
        self.apply_with(fabric, fm, &mut |_| {})
    }

    /// [`VirtualSwitch::apply`], telling `staged` the change before it is published (as
    /// [`VirtualSwitch::apply_batch_with`] does).
    pub fn apply_with(
        &mut self,
        fabric: &mut Fabric,
        fm: &FlowMod,
        staged: &mut dyn FnMut(&BatchDelta<'_>),
    ) -> Result<Outcome, FlowModError> {
        let mut results = self.apply_batch_with(fabric, std::slice::from_ref(fm), staged)?;
        results.pop().unwrap_or_else(|| Ok(Outcome::default()))
    }

    /// Apply several flow-mods, in order, as one datapath version: each one sees the
    /// table as the ones before it left it, and a packet sees the table before the batch
    /// or after it. A flow-mod that fails changes nothing (its own stages are rolled
    /// back) and the others still apply; its error is in its slot of the result.
    ///
    /// A flow-mod that does not fit because of what the batch itself staged (each
    /// modify of one entry keeps the replaced datapath rule in its bucket until the
    /// version is reclaimed) is retried once after publishing the batch so far: the
    /// batch then becomes several versions, as if the flow-mods had come apart.
    ///
    /// The outer error means publishing the version failed in the kernel: the flow
    /// tables and this mirror may then disagree.
    pub fn apply_batch(
        &mut self,
        fabric: &mut Fabric,
        fms: &[FlowMod],
    ) -> Result<Vec<Result<Outcome, FlowModError>>, FabricError> {
        self.apply_batch_with(fabric, fms, &mut |_| {})
    }

    /// [`VirtualSwitch::apply_batch`], telling `staged` what each version it publishes
    /// makes of the table ([`BatchDelta`]) once everything is staged and before anything
    /// reaches the kernel (the migration journal records it there).
    pub fn apply_batch_with(
        &mut self,
        fabric: &mut Fabric,
        fms: &[FlowMod],
        staged: &mut dyn FnMut(&BatchDelta<'_>),
    ) -> Result<Vec<Result<Outcome, FlowModError>>, FabricError> {
        let mut batch = Batch::default();
        let mut results: Vec<Result<Outcome, FlowModError>> = Vec::with_capacity(fms.len());
        for (i, fm) in fms.iter().enumerate() {
            let mut st = self.stage(fabric, fm, i, &mut batch);
            if matches!(&st, Err(e) if table_full(e)) && !batch.records.is_empty() {
                staged(&self.delta(fabric, &batch));
                let retired = fabric.commit_staged(&self.name)?;
                self.finish(std::mem::take(&mut batch), &retired, &mut results);
                fabric.reclaim_due()?;
                st = self.stage(fabric, fm, i, &mut batch);
            }
            results.push(st.map(|()| Outcome::default()));
        }
        if batch.records.is_empty() {
            return Ok(results);
        }
        staged(&self.delta(fabric, &batch));
        let retired = fabric.commit_staged(&self.name)?;
        self.finish(batch, &retired, &mut results);
        Ok(results)
    }

    /// Remove entries (expired ones, for the OpenFlow layer's timeouts) as one version.
    /// Returns them with their final counters.
    pub fn remove(
        &mut self,
        fabric: &mut Fabric,
        ids: &[u64],
    ) -> Result<Vec<(FlowEntry, RuleStats)>, FabricError> {
        self.remove_with(fabric, ids, &mut |_| {})
    }

    /// [`VirtualSwitch::remove`], telling `staged` the change before it is published (as
    /// [`VirtualSwitch::apply_batch_with`] does).
    pub fn remove_with(
        &mut self,
        fabric: &mut Fabric,
        ids: &[u64],
        staged: &mut dyn FnMut(&BatchDelta<'_>),
    ) -> Result<Vec<(FlowEntry, RuleStats)>, FabricError> {
        let mut batch = Batch::default();
        let ids: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| self.entries.contains_key(id))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.stage_delete(fabric, &ids, 0, &mut batch)?;
        staged(&self.delta(fabric, &batch));
        let retired = fabric.commit_staged(&self.name)?;
        let mut results = vec![Ok(Outcome::default())];
        self.finish(batch, &retired, &mut results);
        Ok(results
            .pop()
            .and_then(Result::ok)
            .map(|o| o.removed)
            .unwrap_or_default())
    }

    /// What the staged `batch` makes of the table (see [`BatchDelta`]).
    fn delta<'a>(&'a self, fabric: &Fabric, batch: &'a Batch) -> BatchDelta<'a> {
        let mut d = BatchDelta {
            put: Vec::new(),
            removed: Vec::new(),
            replaced: Vec::new(),
            next_id: self.next_id,
            versions: fabric.next_versions(&self.name).unwrap_or_default(),
        };
        let mut seen = std::collections::BTreeSet::new();
        for rec in &batch.records {
            match rec {
                Record::Added { id, .. } | Record::Modified { id, .. } => {
                    if let Some(e) = self.entries.get(id)
                        && seen.insert(*id)
                    {
                        d.put.push(e);
                    }
                    if let Record::Modified { old, reset, .. } = rec
                        && self.entries.contains_key(id)
                    {
                        d.replaced.push((*id, old, *reset));
                    }
                }
                Record::Removed { id, .. } => d.removed.push(*id),
            }
        }
        d
    }

    /// Put entries back as a journaled batch left them (a restarted control plane
    /// settling a batch the kernel shows published): `put` replaces or adds entries,
    /// `removed` goes, and `next_id` continues.
    pub fn replay(&mut self, put: Vec<FlowEntry>, removed: &[u64], next_id: u64) {
        for id in removed {
            if let Some(e) = self.entries.remove(id)
                && self.exact.get(&exact_key(&e)) == Some(id)
            {
                self.exact.remove(&exact_key(&e));
            }
        }
        for e in put {
            if let Some(old) = self.entries.remove(&e.id)
                && self.exact.get(&exact_key(&old)) == Some(&e.id)
            {
                self.exact.remove(&exact_key(&old));
            }
            self.exact.insert(exact_key(&e), e.id);
            self.next_id = self.next_id.max(e.id + 1);
            self.entries.insert(e.id, e);
        }
        self.next_id = self.next_id.max(next_id);
    }

    /// Set an entry's counters of datapath rules it no longer uses (a restarted control
    /// plane folding in what a journaled batch's replaced rules counted).
    pub fn set_base(&mut self, id: u64, base: RuleStats) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.base = base;
        }
    }

    /// Stage one flow-mod of a batch: validate, pick the entries it changes, stage the
    /// datapath changes (all or nothing), then update the entries.
    fn stage(
        &mut self,
        fabric: &mut Fabric,
        fm: &FlowMod,
        slot: usize,
        batch: &mut Batch,
    ) -> Result<(), FlowModError> {
        let table = fm.rule.table;
        let deleting = matches!(fm.command, Command::Delete | Command::DeleteStrict);
        if !(usize::from(table) < MAX_TABLES || (deleting && table == OFPTT_ALL)) {
            return Err(FlowModError::BadTable { table });
        }
        // Match validity matters for every command; instructions only for add/modify.
        if deleting {
            fm.rule.matches.validate()?;
        } else {
            fm.rule.validate()?;
        }
        let key = fm.rule.matches.compile();
        let strict = matches!(fm.command, Command::ModifyStrict | Command::DeleteStrict);
        let targets = || -> Vec<u64> {
            self.entries
                .values()
                .filter(|e| Self::table_ok(e, fm) && Self::cookie_ok(e, fm))
                .filter(|e| {
                    !deleting
                        || fm.out_port == port_no::ANY
                        || e.rule.instructions.outputs_to(fm.out_port)
                })
                .filter(|e| {
                    if strict {
                        Self::strict_ok(e, fm, &key)
                    } else {
                        covers(&key, &e.key)
                    }
                })
                .map(|e| e.id)
                .collect()
        };
        match fm.command {
            Command::Add => self.stage_add(fabric, fm, key, slot, batch),
            Command::Modify | Command::ModifyStrict => {
                let t = targets();
                self.stage_modify(fabric, fm, &t, slot, batch)
            }
            Command::Delete | Command::DeleteStrict => {
                let t = targets();
                Ok(self.stage_delete(fabric, &t, slot, batch)?)
            }
        }
    }

    fn stage_add(
        &mut self,
        fabric: &mut Fabric,
        fm: &FlowMod,
        key: (FlowKey, FlowKey),
        slot: usize,
        batch: &mut Batch,
    ) -> Result<(), FlowModError> {
        let same_table_prio =
            |e: &&FlowEntry| e.rule.table == fm.rule.table && e.rule.priority == fm.rule.priority;
        if fm.rule.flags & flags::CHECK_OVERLAP != 0
            && let Some(e) = self
                .entries
                .values()
                .filter(same_table_prio)
                .find(|e| overlaps(&e.key, &key))
        {
            return Err(FlowModError::Overlap { existing: e.id });
        }
        let replaced: Vec<u64> = self
            .exact
            .get(&(fm.rule.table, fm.rule.priority, key))
            .copied()
            .into_iter()
            .collect();
        let remove: Vec<Installed> = replaced
            .iter()
            .map(|id| self.entries[id].installed.clone())
            .collect();
        let installed = fabric.stage(&self.name, &remove, std::slice::from_ref(&fm.rule))?;
        for id in replaced {
            self.take_entry(id, slot, batch);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.exact
            .insert((fm.rule.table, fm.rule.priority, key), id);
        self.entries.insert(
            id,
            FlowEntry {
                id,
                rule: fm.rule.clone(),
                key,
                installed: installed.into_iter().next().unwrap_or_default(),
                base: RuleStats::default(),
                added: Instant::now(),
            },
        );
        batch.records.push(Record::Added { slot, id });
        Ok(())
    }

    fn stage_modify(
        &mut self,
        fabric: &mut Fabric,
        fm: &FlowMod,
        targets: &[u64],
        slot: usize,
        batch: &mut Batch,
    ) -> Result<(), FlowModError> {
        if targets.is_empty() {
            return Ok(());
        }
        let remove: Vec<Installed> = targets
            .iter()
            .map(|id| self.entries[id].installed.clone())
            .collect();
        let add: Vec<Rule> = targets
            .iter()
            .map(|id| {
                let mut r = self.entries[id].rule.clone();
                r.instructions = fm.rule.instructions.clone();
                r
            })
            .collect();
        for r in &add {
            r.validate()?;
        }
        let installed = fabric.stage(&self.name, &remove, &add)?;
        let reset = fm.rule.flags & flags::RESET_COUNTS != 0;
        for ((id, inst), old) in targets.iter().zip(installed).zip(remove) {
            if let Some(e) = self.entries.get_mut(id) {
                e.rule.instructions = fm.rule.instructions.clone();
                e.installed = inst;
                batch.records.push(Record::Modified {
                    slot,
                    id: *id,
                    old,
                    reset,
                });
            }
        }
        Ok(())
    }

    fn stage_delete(
        &mut self,
        fabric: &mut Fabric,
        targets: &[u64],
        slot: usize,
        batch: &mut Batch,
    ) -> Result<(), FabricError> {
        if targets.is_empty() {
            return Ok(());
        }
        let remove: Vec<Installed> = targets
            .iter()
            .map(|id| self.entries[id].installed.clone())
            .collect();
        fabric.stage(&self.name, &remove, &[])?;
        for id in targets {
            self.take_entry(*id, slot, batch);
        }
        Ok(())
    }

    /// Move an entry the batch removes out of the table, until its final counters are
    /// known.
    fn take_entry(&mut self, id: u64, slot: usize, batch: &mut Batch) {
        if let Some(e) = self.entries.remove(&id) {
            if self.exact.get(&exact_key(&e)) == Some(&id) {
                self.exact.remove(&exact_key(&e));
            }
            batch.limbo.insert(id, e);
            batch.records.push(Record::Removed { slot, id });
        }
    }

    /// After the batch's version is published and the old one reclaimed: fold the final
    /// counters of retired datapath rules into the entries, in staging order.
    fn finish(
        &mut self,
        mut batch: Batch,
        retired: &Retired,
        results: &mut [Result<Outcome, FlowModError>],
    ) {
        for rec in batch.records {
            match rec {
                Record::Added { slot, id } => {
                    if let Some(Ok(o)) = results.get_mut(slot) {
                        o.added.push(id);
                    }
                }
                Record::Modified {
                    slot,
                    id,
                    old,
                    reset,
                } => {
                    if let Some(Ok(o)) = results.get_mut(slot) {
                        o.modified.push(id);
                    }
                    let fin = retired.of(&old);
                    let e = match self.entries.get_mut(&id) {
                        Some(e) => Some(e),
                        None => batch.limbo.get_mut(&id),
                    };
                    if let Some(e) = e {
                        if reset {
                            e.base = RuleStats::default();
                        } else {
                            e.base.packets += fin.packets;
                            e.base.bytes += fin.bytes;
                            e.base.last_hit_ns = e.base.last_hit_ns.max(fin.last_hit_ns);
                        }
                    }
                }
                Record::Removed { slot, id } => {
                    let Some(e) = batch.limbo.remove(&id) else {
                        continue;
                    };
                    let fin = retired.of(&e.installed);
                    let total = RuleStats {
                        packets: e.base.packets + fin.packets,
                        bytes: e.base.bytes + fin.bytes,
                        last_hit_ns: e.base.last_hit_ns.max(fin.last_hit_ns),
                    };
                    if let Some(Ok(o)) = results.get_mut(slot) {
                        o.removed.push((e, total));
                    }
                }
            }
        }
    }
}

/// Whether a datapath ran out of room (rule ids, masks, bucket slots).
fn table_full(e: &FlowModError) -> bool {
    matches!(e, FlowModError::Fabric(FabricError::Datapath { source, .. })
        if matches!(**source, crate::datapath::DatapathError::TableFull { .. }))
}

/// What a batch of flow-mods makes of a virtual switch's table, told before its version
/// is published ([`VirtualSwitch::apply_batch_with`]).
#[derive(Debug)]
pub struct BatchDelta<'a> {
    /// Entries added or modified, as they will be (their staged datapath rule ids on
    /// every copy; a modified entry's counters not yet folded, see `replaced`).
    pub put: Vec<&'a FlowEntry>,
    /// Entries removed (deleted, or replaced by an identical add).
    pub removed: Vec<u64>,
    /// Modified entries: the datapath rules they leave (whose final counters fold into
    /// the entry once reclaimed) and whether the modify resets the counters.
    pub replaced: Vec<(u64, &'a Installed, bool)>,
    /// The next entry id after the batch.
    pub next_id: u64,
    /// The version it publishes on each physical switch running a copy.
    pub versions: BTreeMap<String, u32>,
}

/// What the flow-mods of one batch staged, to complete once the version is published.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    /// Entries removed by the batch, until their final counters are known.
    limbo: HashMap<u64, FlowEntry>,
}

enum Record {
    /// Entry `id` added by the flow-mod in result slot `slot`.
    Added { slot: usize, id: u64 },
    /// Entry `id` got new datapath rules; `old` are the ones it left.
    Modified {
        slot: usize,
        id: u64,
        old: Installed,
        reset: bool,
    },
    /// Entry `id` removed (deleted, or replaced by an identical add) by flow-mod `slot`.
    Removed { slot: usize, id: u64 },
}

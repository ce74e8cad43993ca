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
//!
//! # Deferred reclaim
//! A batch ([`VirtualSwitch::apply_batch_deferred`], [`VirtualSwitch::remove`])
//! publishes its version and returns: the datapath rules it removed or replaced stay in
//! the kernel, still counting the packets that were classified with the old version,
//! until the fabric reclaims that version after the grace period. Until then:
//! - a modified entry counts its old rules too (`retiring`): its statistics include
//!   them while they are read live, then their final counters are folded into `base`;
//!   they never go down and nothing is counted twice;
//! - a removed entry waits in `limbo`, out of the table, and [`VirtualSwitch::settle`]
//!   hands it out ([`VirtualSwitch::take_removed`]) with its final counters once its
//!   version is reclaimed (FLOW_REMOVED is sent then);
//! - [`VirtualSwitch::owes_notice`] says whether a removal that asked for a
//!   FLOW_REMOVED is still waiting (a barrier waits for it: [`VirtualSwitch::settle`]
//!   with `wait`).
//!
//! Whatever reclaims for the fabric ([`Fabric::reclaim_ready`], a commit with too many
//! versions waiting, a copy added or retired), the final counters wait in the fabric
//! ([`Fabric::take_retired`]) until this virtual switch settles; it settles before it
//! stages anything, so a reused rule id never meets its previous owner's counters.
//! [`VirtualSwitch::apply`] and [`VirtualSwitch::apply_batch`] keep the synchronous
//! contract (final counters in the outcome) by settling with `wait`.
//!
//! The `_with` variants ([`VirtualSwitch::apply_batch_deferred_with`],
//! [`VirtualSwitch::remove_with`], ...) tell a hook what each version makes of the
//! table ([`BatchDelta`]) after it is staged and right before it is committed, once per
//! version (the table-full retry publishes early: two versions, two calls); the
//! migration journal records batches there. A modified entry's counters in the delta
//! are not folded yet: the rules it leaves are in `replaced`. The hooks
//! ([`BatchHooks`]; any `FnMut(&BatchDelta)` is one) also hear when the retry is about
//! to reclaim the version it published early, so the journal can record what the
//! rules that version replaced counted before they leave the kernel.
use std::{
    collections::{BTreeMap, VecDeque},
    time::Instant,
};

use lime_common::{action::port_no, flow::FlowKey, limits::MAX_TABLES, stats::RuleStats};
use serde::Serialize;

use crate::{
    FastMap,
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
    /// Entries removed, with their final counters (synchronous calls only; deferred
    /// ones hand them out through [`VirtualSwitch::take_removed`]).
    pub removed: Vec<(FlowEntry, RuleStats)>,
}

/// Why an entry left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// A delete (or delete-strict) flow-mod removed it.
    Deleted,
    /// An add with the same table, priority and match replaced it.
    Replaced,
    /// Its idle timeout passed.
    IdleTimeout,
    /// Its hard timeout passed.
    HardTimeout,
    /// Removed for another reason (fail-standalone's entry, say).
    Other,
}

/// An entry removed by a published version, with its final counters: handed out once
/// that version was reclaimed.
#[derive(Debug)]
pub struct Removed {
    /// The entry as it was.
    pub entry: FlowEntry,
    /// Its final counters (all copies, every rule it ever had).
    pub stats: RuleStats,
    /// Why it went.
    pub why: Why,
    /// When its removal was published.
    pub at: Instant,
    /// Which call removed it, and the flow-mod's slot in it.
    call: (u64, usize),
}

/// A virtual switch's flow tables.
pub struct VirtualSwitch {
    name: String,
    /// Entries by id, each in its own allocation: a B-tree node holds 11 of them, and
    /// inline (~450 bytes each) a table filled in id order left its nodes half empty
    /// and moved whole entries at every split (a 100 000-add batch touched ~80 MB of
    /// fresh memory for them; boxed, half).
    entries: BTreeMap<u64, Box<FlowEntry>>,
    /// (table, priority, compiled match) → entry: an add finds the entry it replaces
    /// without scanning the table.
    exact: crate::FastMap<ExactKey, u64>,
    next_id: u64,
    /// Published batches whose old version is not reclaimed yet: (commit, what they
    /// did), oldest first.
    pending: VecDeque<(u64, Vec<Record>)>,
    /// Entries removed by a pending batch, until their final counters are known.
    limbo: FastMap<u64, Box<FlowEntry>>,
    /// Datapath rules entries left in a modify, in versions not reclaimed yet: still
    /// counted live, folded into `base` once reclaimed.
    retiring: FastMap<u64, Vec<Installed>>,
    /// Entries whose removal was reclaimed, until taken.
    removed: Vec<Removed>,
    /// Number of the next batch (tags removals with the call that made them).
    calls: u64,
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
            pending: VecDeque::new(),
            limbo: FastMap::default(),
            retiring: FastMap::default(),
            removed: Vec::new(),
            calls: 0,
        }
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Entries, by id.
    pub fn entries(&self) -> impl Iterator<Item = &FlowEntry> {
        self.entries.values().map(|e| &**e)
    }

    /// Entries with ids from `id` on, by id.
    pub fn entries_from(&self, id: u64) -> impl Iterator<Item = &FlowEntry> {
        self.entries.range(id..).map(|(_, e)| &**e)
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
        self.entries.get(&id).map(|e| &**e)
    }

    /// An entry's counters (see [`Self::stats_many`]).
    pub fn stats(&self, fabric: &Fabric, id: u64) -> Result<RuleStats, FabricError> {
        Ok(self.stats_many(fabric, &[id])?[0])
    }

    /// The counters of several entries, in their order: each what it counted before its
    /// last modify, plus what the rules its modifies replaced and its current datapath
    /// rules counted on every physical switch (an unknown id reads zero). One batched
    /// read per physical switch for all of them (a flow-stats reply, a dump).
    pub fn stats_many(&self, fabric: &Fabric, ids: &[u64]) -> Result<Vec<RuleStats>, FabricError> {
        // Every datapath rule an entry counts on (its retiring ones and its current
        // one), with the entry's index.
        let mut owner = Vec::new();
        let mut rules = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let Some(e) = self.entries.get(id) else {
                continue;
            };
            for r in self
                .retiring
                .get(id)
                .into_iter()
                .flatten()
                .chain([&e.installed])
            {
                owner.push(i);
                rules.push(r);
            }
        }
        let mut out: Vec<RuleStats> = ids
            .iter()
            .map(|id| self.entries.get(id).map(|e| e.base).unwrap_or_default())
            .collect();
        for (i, st) in owner.into_iter().zip(fabric.rule_stats_many(&rules)?) {
            out[i] = out[i].merge(st);
        }
        Ok(out)
    }

    /// What entry `id`'s counters become once the rules its modifies replaced are
    /// reclaimed: what it counted before its last modify plus what those rules
    /// counted, without its current rules. Final once the grace period after the
    /// newest pending batch is over ([`VirtualSwitch::wait_grace`]).
    pub fn settled_base(&self, fabric: &Fabric, id: u64) -> Result<RuleStats, FabricError> {
        let Some(e) = self.entries.get(&id) else {
            return Ok(RuleStats::default());
        };
        let mut base = e.base;
        for old in self.retiring.get(&id).into_iter().flatten() {
            base = base.merge(fabric.rule_stats(old)?);
        }
        Ok(base)
    }

    /// Wait until every pending batch's old version could be reclaimed (the rest of
    /// the grace period after the newest), reclaiming nothing.
    pub fn wait_grace(&self, fabric: &Fabric) -> Result<(), FabricError> {
        match self.pending.back() {
            Some((newest, _)) => fabric.wait_grace(&self.name, *newest),
            None => Ok(()),
        }
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
        // The new copy starts from what is published, with every final counter folded.
        self.settle(fabric, true)?;
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
        // Migration steps keep waiting for the grace period: the copy's counters must
        // be final before they are journaled and folded, and so must what earlier
        // batches left (their old rules on `switch` go with the copy).
        self.settle(fabric, true)?;
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
                e.base = e.base.merge(*fin);
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
            v.entries.insert(e.id, Box::new(e));
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

    /// Apply a flow-mod as its own version, and wait until its old version is reclaimed
    /// (final counters in the outcome). On error nothing changed.
    pub fn apply(&mut self, fabric: &mut Fabric, fm: &FlowMod) -> Result<Outcome, FlowModError> {
        self.apply_with(fabric, fm, &mut NoHooks)
    }

    /// [`VirtualSwitch::apply`], telling `hooks` the change before it is published (as
    /// [`VirtualSwitch::apply_batch_with`] does).
    pub fn apply_with(
        &mut self,
        fabric: &mut Fabric,
        fm: &FlowMod,
        hooks: &mut dyn BatchHooks,
    ) -> Result<Outcome, FlowModError> {
        let mut results = self.apply_batch_with(fabric, std::slice::from_ref(fm), hooks)?;
        results.pop().unwrap_or_else(|| Ok(Outcome::default()))
    }

    /// [`VirtualSwitch::apply_batch_deferred`], then wait until the batch's old version
    /// is reclaimed: the removed entries are in the outcomes, with their final counters.
    pub fn apply_batch(
        &mut self,
        fabric: &mut Fabric,
        fms: &[FlowMod],
    ) -> Result<Vec<Result<Outcome, FlowModError>>, FabricError> {
        self.apply_batch_with(fabric, fms, &mut NoHooks)
    }

    /// [`VirtualSwitch::apply_batch`], telling `hooks` what each version it publishes
    /// makes of the table (as [`VirtualSwitch::apply_batch_deferred_with`] does).
    pub fn apply_batch_with(
        &mut self,
        fabric: &mut Fabric,
        fms: &[FlowMod],
        hooks: &mut dyn BatchHooks,
    ) -> Result<Vec<Result<Outcome, FlowModError>>, FabricError> {
        let call = self.calls;
        let mut results = self.apply_batch_deferred_with(fabric, fms, hooks)?;
        self.settle(fabric, true)?;
        let (mine, others): (Vec<Removed>, Vec<Removed>) = std::mem::take(&mut self.removed)
            .into_iter()
            .partition(|r| r.call.0 == call);
        self.removed = others;
        for r in mine {
            if let Some(Ok(o)) = results.get_mut(r.call.1) {
                o.removed.push((r.entry, r.stats));
            }
        }
        Ok(results)
    }

    /// Apply several flow-mods, in order, as one datapath version: each one sees the
    /// table as the ones before it left it, and a packet sees the table before the batch
    /// or after it. A flow-mod that fails changes nothing (its own stages are rolled
    /// back) and the others still apply; its error is in its slot of the result.
    /// Returns once the version is published: the entries it removed come out of
    /// [`VirtualSwitch::take_removed`] after its old version is reclaimed (see the
    /// module docs), and the outcomes' `removed` stay empty.
    ///
    /// A flow-mod that does not fit because of what the batch itself or an earlier
    /// one staged (each modify of one entry keeps the replaced datapath rule in its
    /// bucket until the version is reclaimed) is retried once after publishing the
    /// batch so far and reclaiming every waiting version (waiting for the grace
    /// period): the batch then becomes several versions, as if the flow-mods had come
    /// apart.
    ///
    /// The outer error means publishing the version failed in the kernel: the flow
    /// tables and this mirror may then disagree.
    pub fn apply_batch_deferred(
        &mut self,
        fabric: &mut Fabric,
        fms: &[FlowMod],
    ) -> Result<Vec<Result<Outcome, FlowModError>>, FabricError> {
        self.apply_batch_deferred_with(fabric, fms, &mut NoHooks)
    }

    /// [`VirtualSwitch::apply_batch_deferred`], telling `hooks` what each version it
    /// publishes makes of the table ([`BatchDelta`]) once everything of it is staged and
    /// before anything of it reaches the kernel (the migration journal records it
    /// there): once per version, so twice for a batch the table-full retry splits.
    pub fn apply_batch_deferred_with(
        &mut self,
        fabric: &mut Fabric,
        fms: &[FlowMod],
        hooks: &mut dyn BatchHooks,
    ) -> Result<Vec<Result<Outcome, FlowModError>>, FabricError> {
        // What was reclaimed meanwhile first: rule ids it freed may be staged again.
        self.settle(fabric, false)?;
        let call = self.calls;
        self.calls += 1;
        // Each add (or modify) needs room for one more rule per copy: grow the indexes
        // once for the whole batch.
        let adds = fms.iter().filter(|fm| fm.command == Command::Add).count();
        let grows = adds
            + fms
                .iter()
                .filter(|fm| matches!(fm.command, Command::Modify | Command::ModifyStrict))
                .count();
        if grows > 1024 {
            self.exact.reserve(adds);
            fabric.reserve(&self.name, grows)?;
        }
        let mut batch = Batch::new(call);
        let mut results: Vec<Result<Outcome, FlowModError>> = Vec::with_capacity(fms.len());
        for (i, fm) in fms.iter().enumerate() {
            let mut st = self.stage(fabric, fm, i, &mut batch);
            // Out of room because of what this batch staged, or of what earlier
            // batches removed and is not reclaimed yet (a bucket holds each removed
            // rule until then): publish, reclaim (waiting), retry once.
            if matches!(&st, Err(e) if table_full(e))
                && (!batch.records.is_empty() || fabric.unreclaimed(&self.name))
            {
                self.publish(
                    fabric,
                    std::mem::replace(&mut batch, Batch::new(call)),
                    &mut results,
                    hooks,
                )?;
                // The bucket slots and ids that version freed are needed now: wait
                // (and let the hooks read what the rules it replaced counted first).
                self.wait_grace(fabric)?;
                hooks.reclaiming(self, fabric);
                fabric.reclaim_due()?;
                self.settle(fabric, false)?;
                st = self.stage(fabric, fm, i, &mut batch);
            }
            results.push(st.map(|()| Outcome::default()));
        }
        self.publish(fabric, batch, &mut results, hooks)?;
        Ok(results)
    }

    /// Remove entries (expired ones, say: each with why) as one version, deferred like
    /// [`VirtualSwitch::apply_batch_deferred`]: they come out of
    /// [`VirtualSwitch::take_removed`] with their final counters.
    pub fn remove(&mut self, fabric: &mut Fabric, ids: &[(u64, Why)]) -> Result<(), FabricError> {
        self.remove_with(fabric, ids, &mut NoHooks)
    }

    /// [`VirtualSwitch::remove`], telling `hooks` the change before it is published (as
    /// [`VirtualSwitch::apply_batch_deferred_with`] does).
    pub fn remove_with(
        &mut self,
        fabric: &mut Fabric,
        ids: &[(u64, Why)],
        hooks: &mut dyn BatchHooks,
    ) -> Result<(), FabricError> {
        self.settle(fabric, false)?;
        let mut seen = crate::FastSet::default();
        let ids: Vec<(u64, Why)> = ids
            .iter()
            .copied()
            .filter(|(id, _)| self.entries.contains_key(id) && seen.insert(*id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let call = self.calls;
        self.calls += 1;
        let mut batch = Batch::new(call);
        let remove: Vec<Installed> = ids
            .iter()
            .map(|(id, _)| self.entries[id].installed.clone())
            .collect();
        fabric.stage(&self.name, &remove, &[])?;
        for (id, why) in ids {
            self.take_entry(id, 0, why, &mut batch);
        }
        let mut results = vec![Ok(Outcome::default())];
        self.publish(fabric, batch, &mut results, hooks)
    }

    /// Publish what a batch staged (one version), telling `hooks` what it makes of the
    /// table first, and note what its reclaim completes.
    fn publish(
        &mut self,
        fabric: &mut Fabric,
        batch: Batch,
        results: &mut [Result<Outcome, FlowModError>],
        hooks: &mut dyn BatchHooks,
    ) -> Result<(), FabricError> {
        if batch.records.is_empty() {
            return Ok(());
        }
        hooks.staged(&self.delta(fabric, &batch));
        let commit = fabric.commit_staged(&self.name)?;
        let mut rest = Vec::new();
        for rec in batch.records {
            match rec {
                Record::Added { slot, id } => {
                    if let Some(Ok(o)) = results.get_mut(slot) {
                        o.added.push(id);
                    }
                }
                Record::Modified { slot, id, .. } => {
                    if let Some(Ok(o)) = results.get_mut(slot) {
                        o.modified.push(id);
                    }
                    rest.push(rec);
                }
                Record::Removed { .. } => rest.push(rec),
            }
        }
        if !rest.is_empty() {
            self.pending.push_back((commit, rest));
        }
        // (A commit that hit the cap of waiting versions reclaimed some itself.)
        self.settle(fabric, false)
    }

    /// Finish the batches whose old version the fabric reclaimed: fold the final
    /// counters of the rules they left into the entries, and move the entries they
    /// removed to [`VirtualSwitch::take_removed`]. With `wait`, first wait until every
    /// pending batch can be reclaimed (the rest of the grace period after the newest).
    pub fn settle(&mut self, fabric: &mut Fabric, wait: bool) -> Result<(), FabricError> {
        if wait && let Some((newest, _)) = self.pending.back() {
            fabric.reclaim_through(&self.name, *newest)?;
        }
        if self.pending.is_empty() {
            // Nothing waits here; drop what a reclaim for this name retired (nothing
            // of ours: copies retired by the migration fold their own counters).
            let _ = fabric.take_retired(&self.name)?;
            return Ok(());
        }
        let (done, retired) = fabric.take_retired(&self.name)?;
        while self.pending.front().is_some_and(|(c, _)| *c <= done) {
            let (_, records) = self.pending.pop_front().expect("checked");
            self.finish(records, &retired);
        }
        Ok(())
    }

    /// Whether a removal that asked for a FLOW_REMOVED (SEND_FLOW_REM; deleted or
    /// expired) waits for its version to be reclaimed.
    #[must_use]
    pub fn owes_notice(&self) -> bool {
        self.pending.iter().flat_map(|(_, r)| r).any(|r| {
            matches!(r, Record::Removed { id, why, .. }
                if *why != Why::Replaced
                    && self.limbo.get(id).is_some_and(|e| e.rule.flags & flags::SEND_FLOW_REM != 0))
        })
    }

    /// Whether batches wait for their old version to be reclaimed.
    #[must_use]
    pub fn settling(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The entries whose removal was reclaimed since the last call, in removal order,
    /// with their final counters.
    pub fn take_removed(&mut self) -> Vec<Removed> {
        std::mem::take(&mut self.removed)
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
            self.entries.insert(e.id, Box::new(e));
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
        let filters_ok = |e: &FlowEntry| {
            Self::table_ok(e, fm)
                && Self::cookie_ok(e, fm)
                && (!deleting
                    || fm.out_port == port_no::ANY
                    || e.rule.instructions.outputs_to(fm.out_port))
        };
        let targets = || -> Vec<u64> {
            if strict {
                // At most one entry per table has this priority and match: the exact
                // index finds it without scanning the table (a batch of strict
                // modifies or deletes would be quadratic otherwise).
                let tables = if table == OFPTT_ALL {
                    0..u8::try_from(MAX_TABLES).unwrap_or(u8::MAX)
                } else {
                    table..table + 1
                };
                let mut ids: Vec<u64> = tables
                    .filter_map(|t| self.exact.get(&(t, fm.rule.priority, key)))
                    .filter_map(|id| self.entries.get(id))
                    .filter(|e| filters_ok(e) && Self::strict_ok(e, fm, &key))
                    .map(|e| e.id)
                    .collect();
                ids.sort_unstable();
                return ids;
            }
            self.entries
                .values()
                .filter(|e| filters_ok(e) && covers(&key, &e.key))
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
                .entries()
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
            self.take_entry(id, slot, Why::Replaced, batch);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.exact
            .insert((fm.rule.table, fm.rule.priority, key), id);
        self.entries.insert(
            id,
            Box::new(FlowEntry {
                id,
                rule: fm.rule.clone(),
                key,
                installed: installed.into_iter().next().unwrap_or_default(),
                base: RuleStats::default(),
                added: Instant::now(),
            }),
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
                if reset {
                    // Counting starts again: what the old rules counted (or still
                    // count in the grace period) no longer belongs to the entry.
                    e.base = RuleStats::default();
                    self.retiring.remove(id);
                } else {
                    self.retiring.entry(*id).or_default().push(old.clone());
                }
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
            self.take_entry(*id, slot, Why::Deleted, batch);
        }
        Ok(())
    }

    /// Move an entry the batch removes out of the table, until its final counters are
    /// known.
    fn take_entry(&mut self, id: u64, slot: usize, why: Why, batch: &mut Batch) {
        if let Some(e) = self.entries.remove(&id) {
            if self.exact.get(&exact_key(&e)) == Some(&id) {
                self.exact.remove(&exact_key(&e));
            }
            self.limbo.insert(id, e);
            batch.records.push(Record::Removed {
                slot,
                id,
                why,
                at: Instant::now(),
                call: batch.call,
            });
        }
    }

    /// After a batch's old version was reclaimed: fold the final counters of the rules
    /// it retired into the entries, in staging order, and hand out the entries it
    /// removed.
    fn finish(&mut self, records: Vec<Record>, retired: &Retired) {
        for rec in records {
            match rec {
                Record::Added { .. } => {}
                Record::Modified { id, old, .. } => {
                    // Gone from `retiring` if a later RESET_COUNTS dropped it.
                    let Some(list) = self.retiring.get_mut(&id) else {
                        continue;
                    };
                    let Some(at) = list.iter().position(|r| r.ids == old.ids) else {
                        continue;
                    };
                    list.remove(at);
                    if list.is_empty() {
                        self.retiring.remove(&id);
                    }
                    if let Some(e) = self.entries.get_mut(&id).or(self.limbo.get_mut(&id)) {
                        e.base = e.base.merge(retired.of(&old));
                    }
                }
                Record::Removed {
                    slot,
                    id,
                    why,
                    at,
                    call,
                } => {
                    let Some(e) = self.limbo.remove(&id) else {
                        continue;
                    };
                    let mut stats = e.base.merge(retired.of(&e.installed));
                    for old in self.retiring.remove(&id).unwrap_or_default() {
                        stats = stats.merge(retired.of(&old));
                    }
                    self.removed.push(Removed {
                        entry: *e,
                        stats,
                        why,
                        at,
                        call: (call, slot),
                    });
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

/// What a batch tells its caller while it is applied (the migration journal listens).
pub trait BatchHooks {
    /// A version is staged and nothing of it reached the kernel yet: what it makes of
    /// the table.
    fn staged(&mut self, delta: &BatchDelta<'_>);

    /// The table-full retry is about to reclaim the version it published early (the
    /// grace period after it is over): the counters of the rules that version replaced
    /// are final and still in the kernel ([`VirtualSwitch::settled_base`]).
    fn reclaiming(&mut self, _vsw: &VirtualSwitch, _fabric: &Fabric) {}
}

/// Hooks that listen to nothing.
pub struct NoHooks;

impl BatchHooks for NoHooks {
    fn staged(&mut self, _delta: &BatchDelta<'_>) {}
}

impl<F: FnMut(&BatchDelta<'_>)> BatchHooks for F {
    fn staged(&mut self, delta: &BatchDelta<'_>) {
        self(delta);
    }
}

/// What a batch of flow-mods makes of a virtual switch's table, told before its version
/// is published ([`VirtualSwitch::apply_batch_deferred_with`]).
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
struct Batch {
    /// The call it belongs to.
    call: u64,
    records: Vec<Record>,
}

impl Batch {
    fn new(call: u64) -> Self {
        Self {
            call,
            records: Vec::new(),
        }
    }
}

enum Record {
    /// Entry `id` added by the flow-mod in result slot `slot`.
    Added { slot: usize, id: u64 },
    /// Entry `id` got new datapath rules; `old` are the ones it left (in `retiring`
    /// until reclaimed, unless RESET_COUNTS: `reset`).
    Modified {
        slot: usize,
        id: u64,
        old: Installed,
        reset: bool,
    },
    /// Entry `id` removed (deleted, replaced by an identical add, expired) by
    /// flow-mod `slot` of call `call`, published at `at`; in `limbo` until reclaimed.
    Removed {
        slot: usize,
        id: u64,
        why: Why,
        at: Instant,
        call: u64,
    },
}

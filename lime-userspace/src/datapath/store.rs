//! The versioned rule store: the userspace mirror of the datapath's rule maps, and the
//! place where staging, publishing and reclaiming versions is decided. It does no I/O:
//! every change comes out as an ordered list of [`MapOp`]s for the kernel layer
//! ([`super::kernel`]) to apply, which keeps this logic testable without a kernel.
//!
//! # Versions (Open vSwitch `lib/versions.h` in miniature)
//! Each virtual switch has a published version `v`. A transaction stages changes at
//! `v + 1`: new rules get `add_version = v + 1`, removed rules `remove_version = v + 1`,
//! and every non-empty table gets a fresh subtable list keyed by `v + 1`. Nothing staged
//! is visible to packets (they carry version `v`) until [`RuleStore::commit`]'s last op
//! stores `v + 1` in the virtual switch's config — the atomic publish. After a grace
//! period (no packet still running with `v`), [`RuleStore::reclaim`] deletes what only
//! older versions could see and frees rule and mask ids.
//!
//! Ordering inside a commit: rule programs and counter resets, then masks, then buckets,
//! then subtable lists, then the version flip: each op only makes visible data that the
//! ops before it already wrote.
use std::collections::{BTreeMap, HashMap};

use crate::{FastMap, FastSet};

use lime_common::{
    action::RuleProgram,
    flow::{
        Bucket, BucketEntry, FlowKey, MaskList, MaskListKey, MaskRef, RuleKey, VERSION_MAX,
        VSW_F_ACTIVE, VswitchConfig,
    },
    limits::{MAX_MASK_IDS, MAX_MASKS_PER_TABLE, MAX_RULES, MAX_TABLES},
};

use super::DatapathError;

/// One write to the datapath's maps.
#[derive(Clone, Debug, PartialEq)]
pub enum MapOp {
    /// Write a rule program.
    Program(u32, RuleProgram),
    /// Zero a rule id's per-CPU counters (before first use of the id).
    ResetStats(u32),
    /// Write a mask.
    Mask(u32, FlowKey),
    /// Write (Some) or delete (None) a bucket.
    Bucket(RuleKey, Option<Bucket>),
    /// Write (Some) or delete (None) a subtable list.
    MaskList(MaskListKey, Option<MaskList>),
    /// Publish: store the virtual switch's config (its version).
    Publish(u16, VswitchConfig),
}

/// A datapath rule: one compiled rule visible in a range of versions.
#[derive(Clone, Debug, PartialEq)]
pub struct DpRule {
    /// Virtual switch.
    pub vswitch: u16,
    /// Table.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// Subtable.
    pub mask_id: u32,
    /// Bucket key (mask id + masked value).
    pub key: RuleKey,
    /// Visible from.
    pub add_version: u32,
    /// Visible until (exclusive).
    pub remove_version: u32,
}

#[derive(Debug, Default)]
struct Subtable {
    id: u32,
    /// Priorities of rules visible in the newest (staged or published) version.
    live: BTreeMap<u16, u32>,
    /// Datapath rules (any version) in this subtable.
    rules: u32,
}

#[derive(Debug, Default)]
struct VswState {
    version: u32,
    active: bool,
    /// Flags other than ACTIVE (flow-cache knobs), kept across publishes.
    flags: u32,
    /// Port generation: bumped after every change of where one of its ports lives.
    vport_gen: u32,
    /// Staged but not committed: rule ids added, rule ids removed.
    staged_adds: Vec<u32>,
    staged_removes: Vec<u32>,
    /// Subtable lists written, by version, still to reclaim.
    lists: BTreeMap<u32, Vec<u8>>,
    /// Rules removed by a published version, not reclaimed yet: (remove version, id),
    /// in publish order (a reclaim looks at these, not at every rule).
    removed: Vec<(u32, u32)>,
    /// Ops of the open transaction not yet returned (programs, resets, masks).
    pending: Vec<MapOp>,
}

impl VswState {
    /// The configuration the datapath reads for this virtual switch.
    fn config(&self) -> VswitchConfig {
        VswitchConfig {
            version: self.version,
            flags: VSW_F_ACTIVE | self.flags,
            vport_gen: self.vport_gen,
            ready: self.version,
        }
    }
}

/// Ids 1..limit, lowest free first.
#[derive(Debug)]
struct IdAlloc {
    next: u32,
    limit: u32,
    free: Vec<u32>,
}

impl IdAlloc {
    fn new(limit: u32) -> Self {
        Self {
            next: 1,
            limit,
            free: Vec::new(),
        }
    }
    fn available(&self) -> u64 {
        u64::from(self.limit - self.next) + self.free.len() as u64
    }
    fn alloc(&mut self) -> Option<u32> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        (self.next < self.limit).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn release(&mut self, id: u32) {
        self.free.push(id);
    }
}

/// A position in a virtual switch's open transaction (see [`RuleStore::savepoint`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Savepoint {
    adds: usize,
    removes: usize,
    pending: usize,
}

/// The mirror of one physical switch's rule maps.
#[derive(Debug)]
pub struct RuleStore {
    vswitches: FastMap<u16, VswState>,
    rules: FastMap<u32, DpRule>,
    subtables: FastMap<(u16, u8, FlowKey), Subtable>,
    mask_of_id: FastMap<u32, (u16, u8, FlowKey)>,
    buckets: FastMap<RuleKey, Bucket>,
    rule_ids: IdAlloc,
    mask_ids: IdAlloc,
    /// Free rule ids whose counters in the kernel may not be zero (only after a
    /// rebuild: a reclaim resets the counters of the ids it frees, off the flow-mod
    /// path, so a fresh rule normally costs no counter write).
    dirty_stats: FastSet<u32>,
}

impl Default for RuleStore {
    fn default() -> Self {
        Self::new()
    }
}

impl RuleStore {
    /// An empty store (fresh maps).
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(MAX_RULES, MAX_MASK_IDS)
    }

    /// An empty store with smaller id spaces (for tests of "table full").
    #[must_use]
    pub fn with_limits(max_rules: u32, max_masks: u32) -> Self {
        Self {
            vswitches: FastMap::default(),
            rules: FastMap::default(),
            subtables: FastMap::default(),
            mask_of_id: FastMap::default(),
            buckets: FastMap::default(),
            rule_ids: IdAlloc::new(max_rules),
            mask_ids: IdAlloc::new(max_masks),
            dirty_stats: FastSet::default(),
        }
    }

    /// Rebuild the mirror from the maps of a running datapath (after a control-plane
    /// restart): the active virtual switches with their versions, the subtable lists,
    /// the masks and the buckets. (Rule programs are not mirrored: nothing reads them
    /// back, and a copy of each would cost a large batch ~300 bytes of fresh memory per
    /// rule.)
    pub fn rebuild(
        vswitches: &[(u16, VswitchConfig)],
        lists: &[(MaskListKey, MaskList)],
        masks: &HashMap<u32, FlowKey>,
        buckets: &[(RuleKey, Bucket)],
    ) -> Self {
        let mut s = Self::new();
        for &(v, cfg) in vswitches {
            let st = s.vswitches.entry(v).or_default();
            st.active = true;
            st.version = cfg.version;
            st.flags = cfg.flags & !VSW_F_ACTIVE;
            st.vport_gen = cfg.vport_gen;
        }
        // Which (virtual switch, table) each mask id serves, from the subtable lists.
        let mut owner: FastMap<u32, (u16, u8)> = FastMap::default();
        for (k, list) in lists {
            if let Some(st) = s.vswitches.get_mut(&k.vswitch) {
                st.lists.entry(k.version).or_default().push(k.table);
            }
            for r in list.masks.iter().take(list.len as usize) {
                owner.insert(r.mask_id, (k.vswitch, k.table));
            }
        }
        let mut max_rule = 0;
        let mut max_mask = 0;
        for (rk, bucket) in buckets {
            let Some(&(vswitch, table)) = owner.get(&rk.mask_id) else {
                continue;
            };
            let Some(mask) = masks.get(&rk.mask_id) else {
                continue;
            };
            let current = s.version(vswitch).unwrap_or(0);
            let sub_key = (vswitch, table, *mask);
            let sub = s.subtables.entry(sub_key).or_insert_with(|| Subtable {
                id: rk.mask_id,
                ..Subtable::default()
            });
            s.mask_of_id.insert(rk.mask_id, sub_key);
            max_mask = max_mask.max(rk.mask_id);
            for e in bucket.entries.iter().filter(|e| e.rule_id != 0) {
                sub.rules += 1;
                if e.remove_version > current {
                    *sub.live.entry(e.priority).or_default() += 1;
                } else if let Some(st) = s.vswitches.get_mut(&vswitch) {
                    st.removed.push((e.remove_version, e.rule_id));
                }
                max_rule = max_rule.max(e.rule_id);
                s.rules.insert(
                    e.rule_id,
                    DpRule {
                        vswitch,
                        table,
                        priority: e.priority,
                        mask_id: rk.mask_id,
                        key: *rk,
                        add_version: e.add_version,
                        remove_version: e.remove_version,
                    },
                );
            }
            s.buckets.insert(*rk, *bucket);
        }
        s.rule_ids.next = max_rule + 1;
        s.rule_ids.free = (1..=max_rule)
            .filter(|id| !s.rules.contains_key(id))
            .collect();
        s.dirty_stats = s.rule_ids.free.iter().copied().collect();
        s.mask_ids.next = max_mask + 1;
        s.mask_ids.free = (1..=max_mask)
            .filter(|id| !s.mask_of_id.contains_key(id))
            .collect();
        s
    }

    /// Make room for `additional` more rules in the mirror's indexes at once, so a large
    /// batch grows each of them once instead of rehashing it again and again (every
    /// doubling allocates a fresh table: new memory, page faults). The open
    /// transaction's op and id lists of `vswitch` grow once too (each add stages its
    /// program there).
    pub fn reserve(&mut self, vswitch: u16, additional: usize) {
        self.rules.reserve(additional);
        self.buckets.reserve(additional);
        if let Some(st) = self.vswitches.get_mut(&vswitch) {
            st.pending.reserve(additional);
            st.staged_adds.reserve(additional);
        }
    }

    /// Make a virtual switch active (version 1, empty tables). Returns the publish op.
    pub fn add_vswitch(&mut self, vswitch: u16) -> Vec<MapOp> {
        let st = self.vswitches.entry(vswitch).or_default();
        st.active = true;
        if st.version == 0 {
            st.version = 1;
        }
        vec![MapOp::Publish(vswitch, st.config())]
    }

    /// Note that one of a virtual switch's ports moved (call after writing `VPORTS`);
    /// returns the op that publishes the new port generation, which retires every
    /// egress the flow cache remembered for it.
    pub fn bump_vport_gen(&mut self, vswitch: u16) -> Result<Vec<MapOp>, DatapathError> {
        let st = self.state(vswitch)?;
        st.vport_gen = st.vport_gen.wrapping_add(1);
        Ok(vec![MapOp::Publish(vswitch, st.config())])
    }

    /// Set a virtual switch's flow-cache flags (`VSW_F_NO_CACHE`,
    /// `VSW_F_CACHE_ALWAYS_MISS`); returns the op that writes them (same version).
    pub fn set_flags(&mut self, vswitch: u16, flags: u32) -> Result<Vec<MapOp>, DatapathError> {
        let st = self.state(vswitch)?;
        st.flags = flags & !VSW_F_ACTIVE;
        Ok(vec![MapOp::Publish(vswitch, st.config())])
    }

    /// The published version of a virtual switch.
    #[must_use]
    pub fn version(&self, vswitch: u16) -> Option<u32> {
        self.vswitches.get(&vswitch).map(|s| s.version)
    }

    /// A datapath rule.
    #[must_use]
    pub fn rule(&self, id: u32) -> Option<&DpRule> {
        self.rules.get(&id)
    }

    /// Number of datapath rules held (any version).
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the store holds no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn state(&mut self, vswitch: u16) -> Result<&mut VswState, DatapathError> {
        self.vswitches
            .get_mut(&vswitch)
            .filter(|s| s.active)
            .ok_or(DatapathError::NoVswitch { vswitch })
    }

    /// Stage a new rule at the next version. Nothing changes on error.
    pub fn stage_add(
        &mut self,
        vswitch: u16,
        table: u8,
        priority: u16,
        value: FlowKey,
        mask: FlowKey,
        program: RuleProgram,
    ) -> Result<u32, DatapathError> {
        if usize::from(table) >= MAX_TABLES {
            return Err(DatapathError::TableFull {
                what: "table id out of range",
            });
        }
        let staged = self.state(vswitch)?.version + 1;
        // Capacity checks first: a failure must leave everything as it was.
        let sub_key = (vswitch, table, mask);
        // The bucket key needs the mask id: the subtable's, or (0 here) the one we will
        // allocate.
        let mask_id = self.subtables.get(&sub_key).map_or(0, |s| s.id);
        if mask_id == 0 {
            let in_table = self
                .subtables
                .keys()
                .filter(|(v, t, _)| *v == vswitch && *t == table)
                .count();
            if in_table >= MAX_MASKS_PER_TABLE {
                return Err(DatapathError::TableFull {
                    what: "distinct masks per table",
                });
            }
            if self.mask_ids.available() == 0 {
                return Err(DatapathError::TableFull { what: "mask ids" });
            }
        }
        if self.rule_ids.available() == 0 {
            return Err(DatapathError::TableFull { what: "rule ids" });
        }
        let mut masked = value;
        for (w, m) in masked.words_mut().iter_mut().zip(mask.words()) {
            *w &= m;
        }
        if mask_id != 0 {
            let rk = RuleKey {
                mask_id,
                _pad: 0,
                key: masked,
            };
            if let Some(b) = self.buckets.get(&rk)
                && b.entries.iter().all(|e| e.rule_id != 0)
            {
                return Err(DatapathError::TableFull {
                    what: "rules sharing one match (bucket)",
                });
            }
        }
        // Commit to the change.
        let mut new_mask = None;
        let mask_id = if mask_id == 0 {
            let id = self
                .mask_ids
                .alloc()
                .ok_or(DatapathError::TableFull { what: "mask ids" })?;
            self.subtables.insert(
                sub_key,
                Subtable {
                    id,
                    ..Subtable::default()
                },
            );
            self.mask_of_id.insert(id, sub_key);
            new_mask = Some(MapOp::Mask(id, mask));
            id
        } else {
            mask_id
        };
        let rule_id = self
            .rule_ids
            .alloc()
            .ok_or(DatapathError::TableFull { what: "rule ids" })?;
        let rk = RuleKey {
            mask_id,
            _pad: 0,
            key: masked,
        };
        let bucket = self.buckets.entry(rk).or_default();
        let slot =
            bucket
                .entries
                .iter_mut()
                .find(|e| e.rule_id == 0)
                .ok_or(DatapathError::TableFull {
                    what: "rules sharing one match (bucket)",
                })?;
        *slot = BucketEntry {
            rule_id,
            priority,
            _pad: 0,
            add_version: staged,
            remove_version: VERSION_MAX,
        };
        let sub = self.subtables.get_mut(&sub_key).expect("subtable exists");
        *sub.live.entry(priority).or_default() += 1;
        sub.rules += 1;
        self.rules.insert(
            rule_id,
            DpRule {
                vswitch,
                table,
                priority,
                mask_id,
                key: rk,
                add_version: staged,
                remove_version: VERSION_MAX,
            },
        );
        let reset = self.dirty_stats.remove(&rule_id);
        let st = self.state(vswitch)?;
        st.staged_adds.push(rule_id);
        // Straight into the transaction's op list (no per-rule vector), in the order
        // they are written: mask, counter reset, program.
        st.pending.extend(new_mask);
        if reset {
            st.pending.push(MapOp::ResetStats(rule_id));
        }
        st.pending.push(MapOp::Program(rule_id, program));
        Ok(rule_id)
    }

    /// Stage the removal of a rule at the next version.
    pub fn stage_remove(&mut self, rule_id: u32) -> Result<(), DatapathError> {
        let rule = self
            .rules
            .get(&rule_id)
            .filter(|r| r.remove_version == VERSION_MAX)
            .ok_or(DatapathError::NoRule { rule_id })?
            .clone();
        let staged = self.state(rule.vswitch)?.version + 1;
        if let Some(e) = self
            .buckets
            .get_mut(&rule.key)
            .and_then(|b| b.entries.iter_mut().find(|e| e.rule_id == rule_id))
        {
            e.remove_version = staged;
        }
        if let Some(r) = self.rules.get_mut(&rule_id) {
            r.remove_version = staged;
        }
        self.unlive(rule.mask_id, rule.priority);
        self.state(rule.vswitch)?.staged_removes.push(rule_id);
        Ok(())
    }

    /// One rule of `priority` in subtable `mask_id` is not live in the newest version
    /// any more.
    fn unlive(&mut self, mask_id: u32, priority: u16) {
        if let Some(sub) = self
            .mask_of_id
            .get(&mask_id)
            .and_then(|k| self.subtables.get_mut(k))
            && let Some(n) = sub.live.get_mut(&priority)
        {
            *n -= 1;
            if *n == 0 {
                sub.live.remove(&priority);
            }
        }
    }

    /// Undo everything staged for a virtual switch since its last commit.
    pub fn abort(&mut self, vswitch: u16) {
        self.rollback_to(vswitch, Savepoint::default());
    }

    /// Where a virtual switch's open transaction stands now, to undo later stages with
    /// [`RuleStore::rollback_to`] (a flow-mod inside a batch that fails part-way).
    #[must_use]
    pub fn savepoint(&self, vswitch: u16) -> Savepoint {
        self.vswitches
            .get(&vswitch)
            .map_or_else(Savepoint::default, |st| Savepoint {
                adds: st.staged_adds.len(),
                removes: st.staged_removes.len(),
                pending: st.pending.len(),
            })
    }

    /// Undo what was staged for a virtual switch after `sp`; what was staged before it
    /// stays staged. Ops are appended in staging order, so the suffix of `pending` is
    /// exactly the ops of the undone stages.
    pub fn rollback_to(&mut self, vswitch: u16, sp: Savepoint) {
        let Some(st) = self.vswitches.get_mut(&vswitch) else {
            return;
        };
        let adds = st.staged_adds.split_off(sp.adds.min(st.staged_adds.len()));
        let removes = st
            .staged_removes
            .split_off(sp.removes.min(st.staged_removes.len()));
        // Pending ops only touch invisible state (programs, counters and masks of ids
        // nothing references yet): drop them. A counter reset dropped unwritten leaves
        // its id's counters as they were.
        let cut = sp.pending.min(st.pending.len());
        for op in &st.pending[cut..] {
            if let MapOp::ResetStats(id) = op {
                self.dirty_stats.insert(*id);
            }
        }
        st.pending.truncate(sp.pending);
        for id in removes {
            let Some(r) = self.rules.get_mut(&id) else {
                continue;
            };
            r.remove_version = VERSION_MAX;
            let (key, mask_id, prio) = (r.key, r.mask_id, r.priority);
            if let Some(e) = self
                .buckets
                .get_mut(&key)
                .and_then(|b| b.entries.iter_mut().find(|e| e.rule_id == id))
            {
                e.remove_version = VERSION_MAX;
            }
            if let Some(sub) = self
                .mask_of_id
                .get(&mask_id)
                .and_then(|k| self.subtables.get_mut(k))
            {
                *sub.live.entry(prio).or_default() += 1;
            }
        }
        for id in adds {
            self.forget(id);
        }
    }

    /// After a [`RuleStore::rebuild`]: take what the maps hold for the next version (rules
    /// added or removed at `version + 1` by a prepare that was never published — a
    /// control plane that died inside a commit) as the open transaction, so that
    /// [`RuleStore::publish_op`] and [`RuleStore::commit_done`] publish it or
    /// [`RuleStore::abort_commit`] puts the maps back. Returns whether there was any.
    pub fn adopt_unpublished(&mut self, vswitch: u16) -> bool {
        let Some(next) = self.version(vswitch).map(|v| v + 1) else {
            return false;
        };
        let mut adds: Vec<u32> = Vec::new();
        let mut removes: Vec<u32> = Vec::new();
        for (id, r) in self.rules.iter().filter(|(_, r)| r.vswitch == vswitch) {
            if r.add_version == next {
                adds.push(*id);
            }
            if r.remove_version == next {
                removes.push(*id);
            }
        }
        adds.sort_unstable();
        removes.sort_unstable();
        // The rebuild counted a rule removed at `next` as live (it still is, in the
        // published version); staged removes are not, as after `stage_remove`.
        for id in &removes {
            if let Some((mask_id, priority)) = self.rules.get(id).map(|r| (r.mask_id, r.priority)) {
                self.unlive(mask_id, priority);
            }
        }
        let found = !adds.is_empty() || !removes.is_empty();
        if let Some(st) = self.vswitches.get_mut(&vswitch) {
            st.staged_adds = adds;
            st.staged_removes = removes;
        }
        found
    }

    /// Drop a rule from the mirror entirely, freeing its bucket slot, its id, and its
    /// subtable if it was the last rule there. Returns the bucket key to rewrite.
    fn forget(&mut self, id: u32) -> Option<RuleKey> {
        let r = self.rules.remove(&id)?;
        if let Some(b) = self.buckets.get_mut(&r.key) {
            for e in &mut b.entries {
                if e.rule_id == id {
                    *e = BucketEntry::default();
                }
            }
            if b.entries.iter().all(|e| e.rule_id == 0) {
                self.buckets.remove(&r.key);
            }
        }
        if let Some(sub_key) = self.mask_of_id.get(&r.mask_id).copied()
            && let Some(sub) = self.subtables.get_mut(&sub_key)
        {
            if r.remove_version == VERSION_MAX
                && let Some(n) = sub.live.get_mut(&r.priority)
            {
                *n -= 1;
                if *n == 0 {
                    sub.live.remove(&r.priority);
                }
            }
            sub.rules -= 1;
            if sub.rules == 0 {
                self.subtables.remove(&sub_key);
                self.mask_of_id.remove(&r.mask_id);
                self.mask_ids.release(r.mask_id);
            }
        }
        self.rule_ids.release(id);
        Some(r.key)
    }

    /// Bucket keys touched by a virtual switch's staged changes.
    fn staged_keys(&self, vswitch: u16) -> FastSet<RuleKey> {
        let Some(st) = self.vswitches.get(&vswitch) else {
            return FastSet::default();
        };
        let mut keys = FastSet::default();
        keys.reserve(st.staged_adds.len() + st.staged_removes.len());
        keys.extend(
            st.staged_adds
                .iter()
                .chain(&st.staged_removes)
                .filter_map(|id| self.rules.get(id).map(|r| r.key)),
        );
        keys
    }

    /// Plan the commit of a virtual switch's staged changes: the ops to write, ending
    /// with the publish of version `v + 1`. Nothing changes in the mirror until
    /// [`RuleStore::commit_done`]; if writing the ops fails, call
    /// [`RuleStore::abort_commit`] instead. With nothing staged, returns no ops.
    pub fn plan_commit(&self, vswitch: u16) -> Result<Vec<MapOp>, DatapathError> {
        let (pending, rest) = self.plan_commit_parts(vswitch)?;
        if pending.is_empty() && rest.is_empty() {
            return Ok(Vec::new());
        }
        let mut ops = pending.to_vec();
        ops.extend(
            self.staged_keys(vswitch)
                .into_iter()
                .map(|rk| MapOp::Bucket(rk, self.buckets.get(&rk).copied())),
        );
        ops.extend(rest);
        Ok(ops)
    }

    /// [`RuleStore::plan_commit`] in three parts, to be written in order: the ops
    /// staged so far (programs, masks, counter resets: borrowed, not copied — a large
    /// batch has one per rule), then the buckets [`RuleStore::staged_buckets`] yields,
    /// then the returned ops (subtable lists and the `ready` mark). No bucket ops are
    /// built: one per rule of a large batch, each the size of the largest op.
    pub fn plan_commit_parts(&self, vswitch: u16) -> Result<(&[MapOp], Vec<MapOp>), DatapathError> {
        let st = self
            .vswitches
            .get(&vswitch)
            .filter(|s| s.active)
            .ok_or(DatapathError::NoVswitch { vswitch })?;
        if st.staged_adds.is_empty() && st.staged_removes.is_empty() {
            return Ok((&[], Vec::new()));
        }
        let next = st.version + 1;
        let mut ops = Vec::with_capacity(MAX_TABLES + 1);
        for (table, list) in self.lists_for(vswitch) {
            ops.push(MapOp::MaskList(
                MaskListKey {
                    vswitch,
                    table,
                    _pad: 0,
                    version: next,
                },
                Some(list),
            ));
        }
        // Written everything for `next`: say so (ready), still serving the current one.
        // Publishing is a separate, last step (`publish_op`), so that several copies of
        // a virtual switch can all be made ready before any of them publishes.
        ops.push(MapOp::Publish(
            vswitch,
            VswitchConfig {
                ready: next,
                ..st.config()
            },
        ));
        Ok((&st.pending, ops))
    }

    /// The buckets a virtual switch's staged changes touch, as the next version has
    /// them (`None`: the bucket goes), for [`RuleStore::plan_commit_parts`]'s middle
    /// part. A bucket that several staged rules share comes once per rule (writing it
    /// again writes the same value; deleting it again finds it gone).
    pub fn staged_buckets(
        &self,
        vswitch: u16,
    ) -> impl Iterator<Item = (&RuleKey, Option<&Bucket>)> + '_ {
        self.vswitches
            .get(&vswitch)
            .into_iter()
            .flat_map(|st| st.staged_adds.iter().chain(&st.staged_removes))
            .filter_map(|id| self.rules.get(id))
            .map(|r| (&r.key, self.buckets.get(&r.key)))
    }

    /// The op that writes a virtual switch's configuration as the mirror has it
    /// (`ready == version`: e.g. after an abandoned prepare).
    pub fn config_ops(&self, vswitch: u16) -> Vec<MapOp> {
        self.vswitches
            .get(&vswitch)
            .map(|st| vec![MapOp::Publish(vswitch, st.config())])
            .unwrap_or_default()
    }

    /// The op that publishes a prepared commit (see [`RuleStore::plan_commit`]): the
    /// current version becomes the next one.
    pub fn publish_op(&self, vswitch: u16) -> Result<MapOp, DatapathError> {
        let st = self
            .vswitches
            .get(&vswitch)
            .filter(|s| s.active)
            .ok_or(DatapathError::NoVswitch { vswitch })?;
        let next = st.version + 1;
        Ok(MapOp::Publish(
            vswitch,
            VswitchConfig {
                version: next,
                ready: next,
                ..st.config()
            },
        ))
    }

    /// Move an empty virtual switch (no rules, nothing staged) to version `version`, so
    /// a new copy can be numbered like the copies it joins. Returns the publish op.
    pub fn jump_version(
        &mut self,
        vswitch: u16,
        version: u32,
    ) -> Result<Vec<MapOp>, DatapathError> {
        let empty = !self.rules.values().any(|r| r.vswitch == vswitch);
        let st = self.state(vswitch)?;
        if !empty || !st.staged_adds.is_empty() || !st.staged_removes.is_empty() {
            return Err(DatapathError::NotEmpty { vswitch });
        }
        if version > st.version {
            st.version = version;
            st.lists.clear();
        }
        Ok(vec![MapOp::Publish(vswitch, st.config())])
    }

    /// The subtable lists of every non-empty table of a virtual switch, for the newest
    /// (staged) version.
    fn lists_for(&self, vswitch: u16) -> BTreeMap<u8, MaskList> {
        let mut refs: BTreeMap<u8, Vec<MaskRef>> = BTreeMap::new();
        for ((v, t, _), sub) in &self.subtables {
            if *v != vswitch {
                continue;
            }
            if let Some((&max, _)) = sub.live.iter().next_back() {
                refs.entry(*t).or_default().push(MaskRef {
                    mask_id: sub.id,
                    max_priority: u32::from(max),
                });
            }
        }
        refs.into_iter()
            .map(|(table, mut refs)| {
                // Highest max priority first; ties by id for determinism.
                refs.sort_by(|a, b| {
                    b.max_priority
                        .cmp(&a.max_priority)
                        .then(a.mask_id.cmp(&b.mask_id))
                });
                let mut list = MaskList {
                    len: u32::try_from(refs.len()).unwrap_or(u32::MAX),
                    ..MaskList::default()
                };
                for (slot, r) in list.masks.iter_mut().zip(refs) {
                    *slot = r;
                }
                (table, list)
            })
            .collect()
    }

    /// The planned commit was written and published: make it the mirror's state.
    pub fn commit_done(&mut self, vswitch: u16) {
        let tables: Vec<u8> = self.lists_for(vswitch).into_keys().collect();
        let Some(st) = self.vswitches.get_mut(&vswitch) else {
            return;
        };
        st.staged_adds.clear();
        st.pending.clear();
        st.version += 1;
        let v = st.version;
        st.removed
            .extend(st.staged_removes.drain(..).map(|id| (v, id)));
        st.lists.insert(st.version, tables);
    }

    /// Writing a planned commit failed part-way: undo the staged changes in the mirror
    /// and return the ops that put the maps back (buckets as before, no lists for the
    /// unpublished version). Everything else written was invisible.
    pub fn abort_commit(&mut self, vswitch: u16) -> Vec<MapOp> {
        let keys = self.staged_keys(vswitch);
        let tables: Vec<u8> = self.lists_for(vswitch).into_keys().collect();
        let next = self.version(vswitch).unwrap_or(0) + 1;
        self.abort(vswitch);
        let mut ops: Vec<MapOp> = keys
            .into_iter()
            .map(|rk| MapOp::Bucket(rk, self.buckets.get(&rk).copied()))
            .collect();
        for table in tables {
            ops.push(MapOp::MaskList(
                MaskListKey {
                    vswitch,
                    table,
                    _pad: 0,
                    version: next,
                },
                None,
            ));
        }
        ops
    }

    /// After a grace period since the last publish (no packet still classified with an
    /// older version), drop what only older versions could see. Returns the map ops and
    /// the rule ids retired (read their final counters before applying the ops: a
    /// retired id may be reused by the next stage_add).
    pub fn reclaim(&mut self, vswitch: u16) -> (Vec<MapOp>, Vec<u32>) {
        self.reclaim_upto(vswitch, u32::MAX)
    }

    /// [`RuleStore::reclaim`] of what no version from `upto` on can see: once the grace
    /// period after the publish of version `upto` has passed, the rules it (or an
    /// earlier version) removed and the subtable lists of the versions before it are
    /// unused, whatever was published after it.
    pub fn reclaim_upto(&mut self, vswitch: u16, upto: u32) -> (Vec<MapOp>, Vec<u32>) {
        let Some(st) = self.vswitches.get_mut(&vswitch) else {
            return (Vec::new(), Vec::new());
        };
        let current = st.version.min(upto);
        let mut due = Vec::new();
        st.removed.retain(|&(v, id)| {
            let reclaim = v <= current;
            if reclaim {
                due.push(id);
            }
            !reclaim
        });
        let retired: Vec<u32> = due
            .into_iter()
            .filter(|id| {
                self.rules
                    .get(id)
                    .is_some_and(|r| r.vswitch == vswitch && r.remove_version <= current)
            })
            .collect();
        let mut ops = Vec::new();
        let mut touched = FastSet::default();
        for id in &retired {
            if let Some(k) = self.forget(*id) {
                touched.insert(k);
            }
        }
        for rk in touched {
            ops.push(MapOp::Bucket(rk, self.buckets.get(&rk).copied()));
        }
        // The freed ids start from zero when reused (their final counters are read
        // before these ops are written).
        ops.extend(retired.iter().map(|id| MapOp::ResetStats(*id)));
        if let Some(st) = self.vswitches.get_mut(&vswitch) {
            let old: Vec<u32> = st.lists.range(..current).map(|(v, _)| *v).collect();
            for v in old {
                for table in st.lists.remove(&v).unwrap_or_default() {
                    ops.push(MapOp::MaskList(
                        MaskListKey {
                            vswitch,
                            table,
                            _pad: 0,
                            version: v,
                        },
                        None,
                    ));
                }
            }
        }
        (ops, retired)
    }

    /// Rules of a virtual switch visible in `version`.
    pub fn visible(&self, vswitch: u16, version: u32) -> impl Iterator<Item = (u32, &DpRule)> {
        self.rules
            .iter()
            .filter(move |(_, r)| {
                r.vswitch == vswitch && r.add_version <= version && version < r.remove_version
            })
            .map(|(id, r)| (*id, r))
    }
}

#[cfg(test)]
mod tests {
    use lime_common::flow::VERSION_MAX;

    use super::*;

    fn key(byte: u8) -> FlowKey {
        FlowKey {
            eth_dst: [byte, 0, 0, 0, 0, 0],
            ..FlowKey::default()
        }
    }

    fn mask(bits: u8) -> FlowKey {
        FlowKey {
            eth_dst: [bits, 0, 0, 0, 0, 0],
            ..FlowKey::default()
        }
    }

    fn store() -> RuleStore {
        let mut s = RuleStore::new();
        let ops = s.add_vswitch(1);
        assert!(matches!(ops.as_slice(), [MapOp::Publish(1, c)] if c.version == 1));
        s
    }

    /// Prepare and publish, as the driver does: the ops in the order they are written.
    fn commit(s: &mut RuleStore, v: u16) -> Vec<MapOp> {
        let mut ops = s.plan_commit(v).expect("plan");
        if !ops.is_empty() {
            ops.push(s.publish_op(v).expect("publish"));
        }
        s.commit_done(v);
        ops
    }

    #[test]
    fn commit_writes_everything_before_publishing() {
        let mut s = store();
        let id = s
            .stage_add(1, 0, 10, key(1), mask(0xff), RuleProgram::default())
            .expect("add");
        let ops = commit(&mut s, 1);
        let last = ops.last().expect("ops");
        assert!(
            matches!(last, MapOp::Publish(1, c) if c.version == 2 && c.ready == 2),
            "publish last: {ops:?}"
        );
        // Before it, the prepared version is marked ready while version 1 still serves.
        let ready = &ops[ops.len() - 2];
        assert!(
            matches!(ready, MapOp::Publish(1, c) if c.version == 1 && c.ready == 2),
            "ready before publishing: {ops:?}"
        );
        let pos = |f: &dyn Fn(&MapOp) -> bool| ops.iter().position(f).expect("op present");
        let program = pos(&|o| matches!(o, MapOp::Program(i, _) if *i == id));
        let bucket = pos(&|o| matches!(o, MapOp::Bucket(_, Some(_))));
        let list = pos(&|o| matches!(o, MapOp::MaskList(k, Some(_)) if k.version == 2));
        assert!(program < bucket && bucket < list, "order: {ops:?}");
        let r = s.rule(id).expect("rule");
        assert_eq!((r.add_version, r.remove_version), (2, VERSION_MAX));
        assert_eq!(s.version(1), Some(2));
    }

    #[test]
    fn rollback_to_a_savepoint_keeps_earlier_stages() {
        let mut s = store();
        let kept = s
            .stage_add(1, 0, 10, key(1), mask(0xff), RuleProgram::default())
            .expect("add");
        let sp = s.savepoint(1);
        let undone = s
            .stage_add(1, 0, 10, key(2), mask(0x0f), RuleProgram::default())
            .expect("add with a new mask");
        s.stage_remove(kept).expect("remove the kept one");
        s.rollback_to(1, sp);
        assert!(s.rule(undone).is_none(), "undone add forgotten");
        let ops = commit(&mut s, 1);
        assert!(
            !ops.iter()
                .any(|o| matches!(o, MapOp::Program(i, _) if *i == undone)),
            "no op of the undone stage: {ops:?}"
        );
        assert_eq!(
            s.visible(1, 2).map(|(i, _)| i).collect::<Vec<_>>(),
            vec![kept],
            "the stage before the savepoint is published, its removal undone"
        );
        let masks = ops.iter().filter(|o| matches!(o, MapOp::Mask(..))).count();
        assert_eq!(masks, 1, "only the kept rule's mask is written: {ops:?}");
    }

    #[test]
    fn staged_rules_are_invisible_until_commit() {
        let mut s = store();
        let id = s
            .stage_add(1, 0, 10, key(1), mask(0xff), RuleProgram::default())
            .expect("add");
        assert_eq!(s.visible(1, 1).count(), 0);
        commit(&mut s, 1);
        assert_eq!(
            s.visible(1, 2).map(|(i, _)| i).collect::<Vec<_>>(),
            vec![id]
        );
        s.stage_remove(id).expect("remove");
        commit(&mut s, 1);
        assert_eq!(
            s.visible(1, 2).count(),
            1,
            "still visible in the old version"
        );
        assert_eq!(s.visible(1, 3).count(), 0, "gone in the new one");
    }

    #[test]
    fn abort_restores_everything() {
        let mut s = store();
        let keep = s
            .stage_add(1, 0, 10, key(1), mask(0xff), RuleProgram::default())
            .expect("add");
        commit(&mut s, 1);
        let before_len = s.len();
        s.stage_add(1, 0, 20, key(2), mask(0xf0), RuleProgram::default())
            .expect("add");
        s.stage_remove(keep).expect("remove");
        s.abort(1);
        assert_eq!(s.len(), before_len);
        assert_eq!(s.rule(keep).expect("kept").remove_version, VERSION_MAX);
        assert!(
            s.plan_commit(1).expect("plan").is_empty(),
            "nothing staged after abort"
        );
    }

    #[test]
    fn failed_commit_repairs_buckets_and_lists() {
        let mut s = store();
        let id = s
            .stage_add(1, 0, 10, key(1), mask(0xff), RuleProgram::default())
            .expect("add");
        let planned = s.plan_commit(1).expect("plan");
        let repair = s.abort_commit(1);
        // Every bucket and list the plan wrote is put back (here: deleted).
        for op in &planned {
            match op {
                MapOp::Bucket(k, _) => assert!(repair.contains(&MapOp::Bucket(*k, None))),
                MapOp::MaskList(k, _) => assert!(repair.contains(&MapOp::MaskList(*k, None))),
                _ => {}
            }
        }
        assert!(s.rule(id).is_none());
        assert_eq!(s.version(1), Some(1));
    }

    #[test]
    fn full_bucket_is_a_typed_error_and_changes_nothing() {
        let mut s = store();
        for p in 0..u16::try_from(BUCKET_SLOTS_FOR_TEST).expect("small") {
            s.stage_add(1, 0, p, key(1), mask(0xff), RuleProgram::default())
                .expect("fits");
        }
        commit(&mut s, 1);
        let len = s.len();
        let err = s.stage_add(1, 0, 99, key(1), mask(0xff), RuleProgram::default());
        assert!(
            matches!(err, Err(DatapathError::TableFull { .. })),
            "{err:?}"
        );
        assert_eq!(s.len(), len);
        assert!(s.plan_commit(1).expect("plan").is_empty());
    }

    const BUCKET_SLOTS_FOR_TEST: usize = lime_common::flow::BUCKET_SLOTS;

    #[test]
    fn too_many_masks_in_a_table_is_refused() {
        let mut s = store();
        for i in 0..MAX_MASKS_PER_TABLE {
            let m = FlowKey {
                tp_src: (u16::try_from(i).expect("small") + 1).to_be_bytes(),
                ..FlowKey::default()
            };
            s.stage_add(1, 0, 1, FlowKey::default(), m, RuleProgram::default())
                .expect("fits");
        }
        let err = s.stage_add(1, 0, 1, key(1), mask(0xff), RuleProgram::default());
        assert!(matches!(err, Err(DatapathError::TableFull { what }) if what.contains("masks")));
        // Another table still has room.
        s.stage_add(1, 1, 1, key(1), mask(0xff), RuleProgram::default())
            .expect("other table");
    }

    #[test]
    fn lists_are_ordered_by_highest_priority() {
        let mut s = store();
        s.stage_add(1, 0, 5, key(1), mask(0xff), RuleProgram::default())
            .expect("add");
        s.stage_add(1, 0, 50, key(0x10), mask(0xf0), RuleProgram::default())
            .expect("add");
        s.stage_add(1, 0, 7, key(2), mask(0xff), RuleProgram::default())
            .expect("add");
        let ops = commit(&mut s, 1);
        let list = ops
            .iter()
            .find_map(|o| match o {
                MapOp::MaskList(_, Some(l)) => Some(*l),
                _ => None,
            })
            .expect("list");
        assert_eq!(list.len, 2);
        assert_eq!(list.masks[0].max_priority, 50);
        assert_eq!(list.masks[1].max_priority, 7);
    }

    #[test]
    fn reclaim_frees_old_versions_and_ids() {
        let mut s = RuleStore::with_limits(3, 8);
        s.add_vswitch(1);
        let a = s
            .stage_add(1, 0, 1, key(1), mask(0xff), RuleProgram::default())
            .expect("add");
        let b = s
            .stage_add(1, 0, 1, key(2), mask(0xff), RuleProgram::default())
            .expect("add");
        commit(&mut s, 1);
        // Ids are exhausted (limit 3 → ids 1 and 2).
        assert!(matches!(
            s.stage_add(1, 0, 1, key(3), mask(0xff), RuleProgram::default()),
            Err(DatapathError::TableFull { .. })
        ));
        s.stage_remove(a).expect("remove");
        commit(&mut s, 1);
        let (ops, retired) = s.reclaim(1);
        assert_eq!(retired, vec![a]);
        assert!(
            ops.iter()
                .any(|o| matches!(o, MapOp::MaskList(k, None) if k.version < 3))
        );
        // The freed id's counters are reset by the reclaim, so reusing it costs none.
        assert!(
            ops.iter()
                .any(|o| matches!(o, MapOp::ResetStats(i) if *i == a))
        );
        let c = s
            .stage_add(1, 0, 1, key(3), mask(0xff), RuleProgram::default())
            .expect("id reused");
        assert_eq!(c, a);
        assert!(s.rule(b).is_some());
        let staged = commit(&mut s, 1);
        assert!(
            !staged.iter().any(|o| matches!(o, MapOp::ResetStats(_))),
            "no counter write on the flow-mod path: {staged:?}"
        );
    }

    #[test]
    fn reclaim_upto_leaves_what_later_versions_removed() {
        let mut s = store();
        let add = |s: &mut RuleStore, b: u8| {
            s.stage_add(1, 0, 1, key(b), mask(0xff), RuleProgram::default())
                .expect("add")
        };
        let (a, b, c) = (add(&mut s, 1), add(&mut s, 2), add(&mut s, 3));
        commit(&mut s, 1); // version 2
        s.stage_remove(a).expect("remove a");
        commit(&mut s, 1); // version 3 removes a
        s.stage_remove(b).expect("remove b");
        commit(&mut s, 1); // version 4 removes b
        // The grace period after version 3 is over, not after 4: only a goes, and only
        // the lists of versions before 3.
        let (ops, retired) = s.reclaim_upto(1, 3);
        assert_eq!(retired, vec![a]);
        assert!(s.rule(a).is_none() && s.rule(b).is_some() && s.rule(c).is_some());
        assert!(ops.iter().all(|o| match o {
            MapOp::MaskList(k, None) => k.version < 3,
            MapOp::ResetStats(i) => *i == a,
            _ => true,
        }));
        // Nothing more until the grace period after version 4.
        assert_eq!(s.reclaim_upto(1, 3).1, Vec::<u32>::new());
        let (ops, retired) = s.reclaim(1);
        assert_eq!(retired, vec![b]);
        assert!(
            ops.iter()
                .any(|o| matches!(o, MapOp::MaskList(k, None) if k.version == 3))
        );
        assert!(s.rule(c).is_some(), "a live rule is never reclaimed");
        assert!(s.reclaim(1).1.is_empty());
    }

    #[test]
    fn after_a_rebuild_free_ids_get_their_counters_reset_when_reused() {
        // A running datapath with rule 2 in use: id 1 is free, and nothing is known of
        // its counters.
        let rk = RuleKey {
            mask_id: 1,
            _pad: 0,
            key: key(1),
        };
        let mut bucket = Bucket::default();
        bucket.entries[0] = BucketEntry {
            rule_id: 2,
            priority: 1,
            _pad: 0,
            add_version: 2,
            remove_version: VERSION_MAX,
        };
        let mut list = MaskList {
            len: 1,
            ..MaskList::default()
        };
        list.masks[0] = MaskRef {
            mask_id: 1,
            max_priority: 1,
        };
        let lk = MaskListKey {
            vswitch: 1,
            table: 0,
            _pad: 0,
            version: 2,
        };
        let cfg = VswitchConfig {
            version: 2,
            flags: VSW_F_ACTIVE,
            vport_gen: 0,
            ready: 2,
        };
        let mut s = RuleStore::rebuild(
            &[(1, cfg)],
            &[(lk, list)],
            &HashMap::from([(1, mask(0xff))]),
            &[(rk, bucket)],
        );
        let id = s
            .stage_add(1, 0, 1, key(2), mask(0xff), RuleProgram::default())
            .expect("add");
        assert_eq!(id, 1, "the free id is reused");
        let ops = commit(&mut s, 1);
        assert!(
            ops.iter().any(|o| matches!(o, MapOp::ResetStats(1))),
            "its counters are reset before it becomes visible: {ops:?}"
        );
    }

    /// The maps, as ops leave them (what a restarted control plane reads back).
    #[derive(Default, Clone)]
    struct Maps {
        cfg: BTreeMap<u16, VswitchConfig>,
        lists: BTreeMap<(u16, u8, u32), (MaskListKey, MaskList)>,
        masks: HashMap<u32, FlowKey>,
        buckets: BTreeMap<(u32, [u8; 6]), (RuleKey, Bucket)>,
    }

    impl Maps {
        fn apply(&mut self, ops: &[MapOp]) {
            for op in ops {
                match op {
                    MapOp::Program(..) | MapOp::ResetStats(_) => {}
                    MapOp::Mask(id, m) => {
                        self.masks.insert(*id, *m);
                    }
                    MapOp::Bucket(k, b) => {
                        let at = (k.mask_id, k.key.eth_dst);
                        match b {
                            Some(b) => self.buckets.insert(at, (*k, *b)),
                            None => self.buckets.remove(&at),
                        };
                    }
                    MapOp::MaskList(k, l) => {
                        let at = (k.vswitch, k.table, k.version);
                        match l {
                            Some(l) => self.lists.insert(at, (*k, *l)),
                            None => self.lists.remove(&at),
                        };
                    }
                    MapOp::Publish(v, c) => {
                        self.cfg.insert(*v, *c);
                    }
                }
            }
        }

        fn rebuild(&self) -> RuleStore {
            let cfg: Vec<(u16, VswitchConfig)> = self.cfg.iter().map(|(v, c)| (*v, *c)).collect();
            let lists: Vec<(MaskListKey, MaskList)> = self.lists.values().copied().collect();
            let buckets: Vec<(RuleKey, Bucket)> = self.buckets.values().copied().collect();
            RuleStore::rebuild(&cfg, &lists, &self.masks, &buckets)
        }
    }

    fn visible_ids(s: &RuleStore) -> Vec<u32> {
        let v = s.version(1).expect("version");
        let mut ids: Vec<u32> = s.visible(1, v).map(|(id, _)| id).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_prepared_version_found_after_a_rebuild_is_published_or_dropped_whole() {
        // Version 2 has rule `a`; a batch adding `b` and removing `a` is prepared (every
        // map written, the version marked ready), and the control plane dies.
        let mut maps = Maps::default();
        let mut s = store();
        maps.apply(&s.config_ops(1));
        let a = s
            .stage_add(1, 0, 10, key(1), mask(0xff), RuleProgram::default())
            .expect("a");
        maps.apply(&commit(&mut s, 1));
        let b = s
            .stage_add(1, 0, 20, key(2), mask(0xff), RuleProgram::default())
            .expect("b");
        s.stage_remove(a).expect("remove a");
        maps.apply(&s.plan_commit(1).expect("prepare"));
        assert_eq!(maps.cfg[&1].ready, 3, "prepared");

        let mut dropped = maps.rebuild();
        assert_eq!(visible_ids(&dropped), [a], "version 2 still serves");
        assert!(
            dropped.adopt_unpublished(1),
            "the prepared version is found"
        );
        let mut back = dropped.abort_commit(1);
        back.extend(dropped.config_ops(1));
        let mut m2 = maps.clone();
        m2.apply(&back);
        assert_eq!(m2.cfg[&1].ready, 2, "no longer marked ready");
        let mut again = m2.rebuild();
        assert!(!again.adopt_unpublished(1), "nothing left of it");
        assert_eq!(again.rule(a).map(|r| r.remove_version), Some(VERSION_MAX));
        assert!(again.rule(b).is_none(), "b is gone");
        // The next version publishes nothing of the dropped one: `a` stays.
        let c = again
            .stage_add(1, 0, 30, key(3), mask(0xff), RuleProgram::default())
            .expect("c");
        m2.apply(&commit(&mut again, 1));
        assert_eq!(visible_ids(&again), [a, c]);
        assert_eq!(visible_ids(&m2.rebuild()), [a, c], "and so do the maps");

        let mut published = maps.rebuild();
        assert!(published.adopt_unpublished(1));
        maps.apply(&[published.publish_op(1).expect("publish")]);
        published.commit_done(1);
        assert_eq!(
            visible_ids(&published),
            [b],
            "the whole batch, nothing else"
        );
        let (ops, retired) = published.reclaim(1);
        assert_eq!(retired, [a], "the rule it removed is reclaimed");
        maps.apply(&ops);
        let rebuilt = maps.rebuild();
        assert_eq!(visible_ids(&rebuilt), [b]);
        assert!(rebuilt.rule(a).is_none());
    }
}

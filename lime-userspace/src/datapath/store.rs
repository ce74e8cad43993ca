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
use std::collections::{BTreeMap, HashMap, HashSet};

use lime_common::{
    action::RuleProgram,
    flow::{
        Bucket, BucketEntry, FlowKey, MaskList, MaskListKey, MaskRef, RuleKey,
        VERSION_MAX, VSW_F_ACTIVE, VswitchConfig,
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
    /// Staged but not committed: rule ids added, rule ids removed.
    staged_adds: Vec<u32>,
    staged_removes: Vec<u32>,
    /// Subtable lists written, by version, still to reclaim.
    lists: BTreeMap<u32, Vec<u8>>,
    /// Ops of the open transaction not yet returned (programs, resets, masks).
    pending: Vec<MapOp>,
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

/// The mirror of one physical switch's rule maps.
#[derive(Debug)]
pub struct RuleStore {
    vswitches: HashMap<u16, VswState>,
    rules: HashMap<u32, DpRule>,
    programs: HashMap<u32, RuleProgram>,
    subtables: HashMap<(u16, u8, FlowKey), Subtable>,
    mask_of_id: HashMap<u32, (u16, u8, FlowKey)>,
    buckets: HashMap<RuleKey, Bucket>,
    rule_ids: IdAlloc,
    mask_ids: IdAlloc,
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
            vswitches: HashMap::new(),
            rules: HashMap::new(),
            programs: HashMap::new(),
            subtables: HashMap::new(),
            mask_of_id: HashMap::new(),
            buckets: HashMap::new(),
            rule_ids: IdAlloc::new(max_rules),
            mask_ids: IdAlloc::new(max_masks),
        }
    }

    /// Make a virtual switch active (version 1, empty tables). Returns the publish op.
    pub fn add_vswitch(&mut self, vswitch: u16) -> Vec<MapOp> {
        let st = self.vswitches.entry(vswitch).or_default();
        st.active = true;
        if st.version == 0 {
            st.version = 1;
        }
        vec![MapOp::Publish(
            vswitch,
            VswitchConfig {
                version: st.version,
                flags: VSW_F_ACTIVE,
            },
        )]
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
        let new_subtable = !self.subtables.contains_key(&sub_key);
        if new_subtable {
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
        // The bucket key needs the mask id; look it up or pick the one we will allocate.
        let mask_id = match self.subtables.get(&sub_key) {
            Some(s) => s.id,
            None => 0,
        };
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
        let mut ops = Vec::new();
        let mask_id = if mask_id == 0 {
            let id = self.mask_ids.alloc().ok_or(DatapathError::TableFull { what: "mask ids" })?;
            self.subtables.insert(
                sub_key,
                Subtable {
                    id,
                    ..Subtable::default()
                },
            );
            self.mask_of_id.insert(id, sub_key);
            ops.push(MapOp::Mask(id, mask));
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
        let slot = bucket
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
        self.programs.insert(rule_id, program);
        ops.push(MapOp::ResetStats(rule_id));
        ops.push(MapOp::Program(rule_id, program));
        let st = self.state(vswitch)?;
        st.staged_adds.push(rule_id);
        st.pending.append(&mut ops);
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
        if let Some(sub) = self.mask_of_id.get(&rule.mask_id).and_then(|k| self.subtables.get_mut(k))
            && let Some(n) = sub.live.get_mut(&rule.priority)
        {
            *n -= 1;
            if *n == 0 {
                sub.live.remove(&rule.priority);
            }
        }
        self.state(rule.vswitch)?.staged_removes.push(rule_id);
        Ok(())
    }

    /// Undo everything staged for a virtual switch since its last commit.
    pub fn abort(&mut self, vswitch: u16) {
        let Some(st) = self.vswitches.get_mut(&vswitch) else {
            return;
        };
        let adds = std::mem::take(&mut st.staged_adds);
        let removes = std::mem::take(&mut st.staged_removes);
        // Pending ops only touch invisible state (programs, counters and masks of ids
        // nothing references yet): drop them.
        st.pending.clear();
        for id in removes {
            let Some(r) = self.rules.get_mut(&id) else { continue };
            r.remove_version = VERSION_MAX;
            let (key, mask_id, prio) = (r.key, r.mask_id, r.priority);
            if let Some(e) = self
                .buckets
                .get_mut(&key)
                .and_then(|b| b.entries.iter_mut().find(|e| e.rule_id == id))
            {
                e.remove_version = VERSION_MAX;
            }
            if let Some(sub) = self.mask_of_id.get(&mask_id).and_then(|k| self.subtables.get_mut(k)) {
                *sub.live.entry(prio).or_default() += 1;
            }
        }
        for id in adds {
            self.forget(id);
        }
    }

    /// Drop a rule from the mirror entirely, freeing its bucket slot, its id, and its
    /// subtable if it was the last rule there. Returns the bucket key to rewrite.
    fn forget(&mut self, id: u32) -> Option<RuleKey> {
        let r = self.rules.remove(&id)?;
        self.programs.remove(&id);
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
    fn staged_keys(&self, vswitch: u16) -> HashSet<RuleKey> {
        let Some(st) = self.vswitches.get(&vswitch) else {
            return HashSet::new();
        };
        st.staged_adds
            .iter()
            .chain(&st.staged_removes)
            .filter_map(|id| self.rules.get(id).map(|r| r.key))
            .collect()
    }

    /// Plan the commit of a virtual switch's staged changes: the ops to write, ending
    /// with the publish of version `v + 1`. Nothing changes in the mirror until
    /// [`RuleStore::commit_done`]; if writing the ops fails, call
    /// [`RuleStore::abort_commit`] instead. With nothing staged, returns no ops.
    pub fn plan_commit(&self, vswitch: u16) -> Result<Vec<MapOp>, DatapathError> {
        let st = self
            .vswitches
            .get(&vswitch)
            .filter(|s| s.active)
            .ok_or(DatapathError::NoVswitch { vswitch })?;
        if st.staged_adds.is_empty() && st.staged_removes.is_empty() {
            return Ok(Vec::new());
        }
        let next = st.version + 1;
        let mut ops = st.pending.clone();
        for rk in self.staged_keys(vswitch) {
            ops.push(MapOp::Bucket(rk, self.buckets.get(&rk).copied()));
        }
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
        ops.push(MapOp::Publish(
            vswitch,
            VswitchConfig {
                version: next,
                flags: VSW_F_ACTIVE,
            },
        ));
        Ok(ops)
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
                    b.max_priority.cmp(&a.max_priority).then(a.mask_id.cmp(&b.mask_id))
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
        st.staged_removes.clear();
        st.pending.clear();
        st.version += 1;
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
        let Some(st) = self.vswitches.get(&vswitch) else {
            return (Vec::new(), Vec::new());
        };
        let current = st.version;
        let retired: Vec<u32> = self
            .rules
            .iter()
            .filter(|(_, r)| r.vswitch == vswitch && r.remove_version <= current)
            .map(|(id, _)| *id)
            .collect();
        let mut ops = Vec::new();
        let mut touched = HashSet::new();
        for id in &retired {
            if let Some(k) = self.forget(*id) {
                touched.insert(k);
            }
        }
        for rk in touched {
            ops.push(MapOp::Bucket(rk, self.buckets.get(&rk).copied()));
        }
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

    /// Rules of a virtual switch visible in `version`, with their programs.
    pub fn visible(&self, vswitch: u16, version: u32) -> impl Iterator<Item = (u32, &DpRule)> {
        self.rules
            .iter()
            .filter(move |(_, r)| {
                r.vswitch == vswitch && r.add_version <= version && version < r.remove_version
            })
            .map(|(id, r)| (*id, r))
    }

    /// A rule's program.
    #[must_use]
    pub fn program(&self, id: u32) -> Option<&RuleProgram> {
        self.programs.get(&id)
    }
}

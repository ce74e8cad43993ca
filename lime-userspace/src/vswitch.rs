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
use std::{collections::BTreeMap, time::Instant};

use lime_common::{action::port_no, flow::FlowKey, limits::MAX_TABLES, stats::RuleStats};
use serde::Serialize;

use crate::{
    fabric::{Fabric, FabricError, Installed},
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
    next_id: u64,
}

impl VirtualSwitch {
    /// An empty virtual switch (its rules live on `fabric` under `name`).
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            entries: BTreeMap::new(),
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

    fn cookie_ok(e: &FlowEntry, fm: &FlowMod) -> bool {
        (e.rule.cookie & fm.cookie_mask) == (fm.rule.cookie & fm.cookie_mask)
    }

    fn table_ok(e: &FlowEntry, fm: &FlowMod) -> bool {
        fm.rule.table == OFPTT_ALL || e.rule.table == fm.rule.table
    }

    fn strict_ok(e: &FlowEntry, fm: &FlowMod, key: &(FlowKey, FlowKey)) -> bool {
        e.rule.priority == fm.rule.priority && e.key == *key
    }

    /// Apply a flow-mod. On error nothing changed.
    pub fn apply(&mut self, fabric: &mut Fabric, fm: &FlowMod) -> Result<Outcome, FlowModError> {
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
        let (v, m) = fm.rule.matches.compile();
        let key = (v, m);
        match fm.command {
            Command::Add => self.add(fabric, fm, key),
            Command::Modify | Command::ModifyStrict => {
                let strict = fm.command == Command::ModifyStrict;
                let targets: Vec<u64> = self
                    .entries
                    .values()
                    .filter(|e| Self::table_ok(e, fm) && Self::cookie_ok(e, fm))
                    .filter(|e| {
                        if strict {
                            Self::strict_ok(e, fm, &key)
                        } else {
                            covers(&key, &e.key)
                        }
                    })
                    .map(|e| e.id)
                    .collect();
                self.modify(fabric, fm, &targets)
            }
            Command::Delete | Command::DeleteStrict => {
                let strict = fm.command == Command::DeleteStrict;
                let targets: Vec<u64> = self
                    .entries
                    .values()
                    .filter(|e| Self::table_ok(e, fm) && Self::cookie_ok(e, fm))
                    .filter(|e| {
                        fm.out_port == port_no::ANY || e.rule.instructions.outputs_to(fm.out_port)
                    })
                    .filter(|e| {
                        if strict {
                            Self::strict_ok(e, fm, &key)
                        } else {
                            covers(&key, &e.key)
                        }
                    })
                    .map(|e| e.id)
                    .collect();
                self.delete(fabric, &targets)
            }
        }
    }

    fn add(
        &mut self,
        fabric: &mut Fabric,
        fm: &FlowMod,
        key: (FlowKey, FlowKey),
    ) -> Result<Outcome, FlowModError> {
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
            .entries
            .values()
            .filter(same_table_prio)
            .filter(|e| e.key == key)
            .map(|e| e.id)
            .collect();
        let remove: Vec<Installed> = replaced
            .iter()
            .map(|id| self.entries[id].installed.clone())
            .collect();
        let (installed, finals) =
            fabric.update(&self.name, &remove, std::slice::from_ref(&fm.rule))?;
        let mut out = Outcome::default();
        for (id, fin) in replaced.into_iter().zip(finals) {
            if let Some(mut e) = self.entries.remove(&id) {
                e.base.packets += fin.packets;
                e.base.bytes += fin.bytes;
                out.removed.push((e.clone(), e.base));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
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
        out.added.push(id);
        Ok(out)
    }

    fn modify(
        &mut self,
        fabric: &mut Fabric,
        fm: &FlowMod,
        targets: &[u64],
    ) -> Result<Outcome, FlowModError> {
        if targets.is_empty() {
            return Ok(Outcome::default());
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
        let (installed, finals) = fabric.update(&self.name, &remove, &add)?;
        let reset = fm.rule.flags & flags::RESET_COUNTS != 0;
        for ((id, inst), fin) in targets.iter().zip(installed).zip(finals) {
            if let Some(e) = self.entries.get_mut(id) {
                e.rule.instructions = fm.rule.instructions.clone();
                e.installed = inst;
                if reset {
                    e.base = RuleStats::default();
                } else {
                    e.base.packets += fin.packets;
                    e.base.bytes += fin.bytes;
                    e.base.last_hit_ns = e.base.last_hit_ns.max(fin.last_hit_ns);
                }
            }
        }
        Ok(Outcome {
            modified: targets.to_vec(),
            ..Outcome::default()
        })
    }

    fn delete(&mut self, fabric: &mut Fabric, targets: &[u64]) -> Result<Outcome, FlowModError> {
        if targets.is_empty() {
            return Ok(Outcome::default());
        }
        let remove: Vec<Installed> = targets
            .iter()
            .map(|id| self.entries[id].installed.clone())
            .collect();
        let (_, finals) = fabric.update(&self.name, &remove, &[])?;
        let mut out = Outcome::default();
        for (id, fin) in targets.iter().zip(finals) {
            if let Some(e) = self.entries.remove(id) {
                let total = RuleStats {
                    packets: e.base.packets + fin.packets,
                    bytes: e.base.bytes + fin.bytes,
                    last_hit_ns: e.base.last_hit_ns.max(fin.last_hit_ns),
                };
                out.removed.push((e, total));
            }
        }
        Ok(out)
    }
}

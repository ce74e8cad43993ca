//! The classifier: tuple space search over versioned subtables.
//!
//! # What
//! Given a parsed packet ([`FlowKey`]), a virtual switch, a table and a table version,
//! find the highest-priority rule of that table that matches the packet and is visible in
//! that version.
//!
//! # Design
//! Rules with the same mask form a *subtable*. Each subtable is one region of the `RULES`
//! hash map: the key is (mask id, packet AND mask), so a subtable lookup is one mask
//! application (nine 64-bit ANDs) and one hash lookup, whatever the number of rules in it.
//! A lookup therefore costs O(number of masks), not O(number of rules) — tuple space
//! search, as in Open vSwitch's `lib/classifier.c`.
//!
//! # Staged lookup order
//! A table's subtables are listed in `MASK_LISTS` ordered by the highest priority of any
//! rule they hold. The search walks them in that order and stops as soon as the best
//! match found so far has a priority at least that of the next subtable's maximum: no
//! later subtable can beat it. With the common layout (a few high-priority specific masks
//! and a priority-0 table-miss) most packets touch one or two subtables.
//!
//! # Versioning
//! Every bucket entry carries the versions in which it is visible (`add <= v < remove`,
//! Open vSwitch's `lib/versions.h`). A packet reads its virtual switch's current version
//! once, at ingress, and every lookup of every table uses that one version, so each packet
//! sees exactly one consistent set of rules. Userspace stages a new version by writing
//! new entries (visible from v+1) and removal marks (invisible from v+1), plus a new
//! subtable list keyed by v+1; then it publishes by writing v+1 into the virtual switch's
//! config: one atomic 32-bit store. Subtable lists are immutable per version, so a reader
//! never sees one half-written.
//!
//! # The flow cache in front (`main.rs`, `maps.rs` `FLOW_CACHE`)
//! Before this search, `lime_xdp` looks the packet up in an exact-match cache: per CPU,
//! direct-mapped (hash of the key → one slot holding a key and its result; a fill
//! overwrites the slot). The key is the parsed flow key or, for an untagged IPv4
//! frame with a 20-byte header, the raw header bytes the parser reads (every one of
//! them, so equal raw keys mean equal flow keys; a hit then skips the parse: see
//! `lime_common::flow::CacheKey`). Either includes the in_port, the virtual switch and
//! the table version, so an entry can never answer for another version; it is valid
//! forever for its own, because a published version's rules never change. The result is the chain
//! of rules the search found (one per table visited) and, when the chain leaves the
//! frame unchanged and outputs it to one ordinary virtual port, where that port lived:
//! such a hit skips the actions and the port lookup. Port locations change without a
//! new version (migration moves ports), so that part is tagged with the virtual
//! switch's port generation and used only while it is current. Per-CPU slots hold their
//! own keys: nothing is shared between CPUs (a per-CPU *hash* map would share the key
//! and give other CPUs an empty value).
//!
//! Rules whose masked values collide within a subtable (same match, different priority or
//! being replaced across versions) share a [`lime_common::flow::Bucket`] of
//! `BUCKET_SLOTS` entries; userspace refuses a rule that would not fit.
use lime_common::{
    flow::{BUCKET_SLOTS, FLOW_WORDS, FlowKey, MaskListKey, RuleKey},
    limits::MAX_MASKS_PER_TABLE,
};

use crate::maps::{MASK_LISTS, MASKS, RULES};

/// The best match of one table: rule id (0: none).
#[inline(always)]
pub fn lookup(vswitch: u16, table: u8, version: u32, key: &FlowKey, rk: &mut RuleKey) -> u32 {
    let lk = MaskListKey {
        vswitch,
        table,
        _pad: 0,
        version,
    };
    let Some(list) = MASK_LISTS.get_ptr(&lk) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program's run (RCU); lists are immutable.
    let list = unsafe { &*list };
    let n = list.len as usize;
    let mut best_rule: u32 = 0;
    let mut best_prio: u32 = 0;
    let mut i = 0;
    while i < MAX_MASKS_PER_TABLE {
        if i >= n {
            break;
        }
        let mref = list.masks[i];
        if best_rule != 0 && best_prio >= mref.max_priority {
            break;
        }
        i += 1;
        let Some(mask) = MASKS.get(mref.mask_id) else {
            continue;
        };
        let kw = key.words();
        let mw = mask.words();
        let out = rk.key.words_mut();
        let mut w = 0;
        while w < FLOW_WORDS {
            out[w] = kw[w] & mw[w];
            w += 1;
        }
        rk.mask_id = mref.mask_id;
        let Some(bucket) = RULES.get_ptr(&*rk) else {
            continue;
        };
        // SAFETY: map value; buckets are replaced whole, never written in place.
        let bucket = unsafe { &*bucket };
        let mut s = 0;
        while s < BUCKET_SLOTS {
            let e = bucket.entries[s];
            let prio = u32::from(e.priority);
            if e.visible_in(version) && (best_rule == 0 || prio > best_prio) {
                best_rule = e.rule_id;
                best_prio = prio;
            }
            s += 1;
        }
    }
    best_rule
}

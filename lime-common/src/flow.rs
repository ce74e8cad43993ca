//! The parsed packet that rules match on, and the rule-table maps.
//!
//! A rule's match is a (value, mask) pair of [`FlowKey`]s. Rules that share a mask form a
//! *subtable*; the datapath keeps one hash table entry per (subtable, masked value), the
//! [`RuleKey`] → [`Bucket`] map. See `lime-ebpf/src/classify.rs` for the lookup.
//!
//! Multi-byte packet fields are stored as they appear on the wire (network byte order,
//! as byte arrays), so the datapath copies them without swapping and masks apply bytewise.

use crate::abi_type;

/// `vlan_vid` bit meaning "a VLAN tag is present" (OpenFlow 1.3 `OFPVID_PRESENT`).
pub const VID_PRESENT: u16 = 0x1000;

/// Every packet field a rule can match, in one fixed layout (72 bytes, nine 64-bit words).
///
/// Field meanings by `eth_type` follow Open vSwitch: for ARP, `nw_src`/`nw_dst` hold
/// SPA/TPA and `tp_src` the ARP opcode; for ICMPv4/ICMPv6, `tp_src`/`tp_dst` hold type/code.
/// IPv4 addresses occupy the first four bytes of `nw_src`/`nw_dst`, the rest is zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct FlowKey {
    /// Virtual ingress port (OpenFlow `IN_PORT`), host byte order.
    pub in_port: u32,
    /// [`VID_PRESENT`] | VLAN id when tagged, 0 when untagged; host byte order.
    pub vlan_vid: u16,
    /// Ethertype after at most one VLAN tag, network order.
    pub eth_type: [u8; 2],
    /// Destination MAC.
    pub eth_dst: [u8; 6],
    /// Source MAC.
    pub eth_src: [u8; 6],
    /// VLAN priority (0..=7), 0 when untagged.
    pub vlan_pcp: u8,
    /// IP DSCP (upper six bits of TOS / traffic class, shifted down).
    pub ip_dscp: u8,
    /// IP protocol / IPv6 next header after extension headers.
    pub ip_proto: u8,
    /// Padding; always zero.
    pub _pad0: u8,
    /// IPv4/IPv6 source address, or ARP SPA.
    pub nw_src: [u8; 16],
    /// IPv4/IPv6 destination address, or ARP TPA.
    pub nw_dst: [u8; 16],
    /// TCP/UDP source port, ICMP type (second byte), or ARP opcode; network order.
    pub tp_src: [u8; 2],
    /// TCP/UDP destination port or ICMP code (second byte); network order.
    pub tp_dst: [u8; 2],
    /// Padding; always zero.
    pub _pad1: u32,
    /// OpenFlow metadata register (written by `write-metadata`), host byte order.
    pub metadata: u64,
}
abi_type!(FlowKey, size = 72, align = 8);

/// Number of 64-bit words in a [`FlowKey`].
pub const FLOW_WORDS: usize = 9;

impl FlowKey {
    /// The key as 64-bit words, for masking.
    #[inline(always)]
    #[must_use]
    pub fn words(&self) -> &[u64; FLOW_WORDS] {
        // SAFETY: FlowKey is repr(C), 72 bytes, 8-aligned, and has no invalid bit patterns.
        unsafe { &*(core::ptr::from_ref(self).cast::<[u64; FLOW_WORDS]>()) }
    }

    /// Mutable view as 64-bit words.
    #[inline(always)]
    pub fn words_mut(&mut self) -> &mut [u64; FLOW_WORDS] {
        // SAFETY: as for `words`; every bit pattern is a valid FlowKey.
        unsafe { &mut *(core::ptr::from_mut(self).cast::<[u64; FLOW_WORDS]>()) }
    }

    /// Make this the key of a frame not parsed yet: every field zero but `in_port`.
    ///
    /// Word by word with volatile stores: the datapath does this for every packet, and
    /// a plain `*self = FlowKey { in_port, ..Default::default() }` compiles (for BPF)
    /// to a call of a byte-at-a-time `memset` loop, several hundred instructions.
    #[inline(always)]
    pub fn reset(&mut self, in_port: u32) {
        let w = self.words_mut();
        let mut i = 0;
        while i < FLOW_WORDS {
            // SAFETY: an aligned word of this key.
            unsafe { core::ptr::write_volatile(&mut w[i], 0) };
            i += 1;
        }
        self.in_port = in_port;
    }
}

/// Compared and hashed as its nine words (every byte is a field: equal keys have equal
/// words): the control plane's rule indexes hash and compare a key or two per flow-mod,
/// and the derived, field-by-field versions took 20-odd steps per key.
impl PartialEq for FlowKey {
    fn eq(&self, other: &Self) -> bool {
        self.words() == other.words()
    }
}

impl core::hash::Hash for FlowKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        for w in self.words() {
            state.write_u64(*w);
        }
    }
}

/// Key of the rule-bucket hash map: a subtable id and a flow key already masked with that
/// subtable's mask.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RuleKey {
    /// Mask (subtable) id; ids are unique per physical switch and name a
    /// (virtual switch, table, mask) triple.
    pub mask_id: u32,
    /// Padding; always zero.
    pub _pad: u32,
    /// The packet's flow key AND the subtable's mask.
    pub key: FlowKey,
}
abi_type!(RuleKey, size = 80, align = 8);

/// Version number meaning "never removed".
pub const VERSION_MAX: u32 = u32::MAX;

/// One rule inside a bucket: the rules of a subtable whose masked values are equal share
/// a bucket; they differ in priority or in the versions in which they are visible.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BucketEntry {
    /// Rule id (index into the rule program and counter maps); 0 marks an empty slot.
    pub rule_id: u32,
    /// OpenFlow priority; higher wins.
    pub priority: u16,
    /// Padding; always zero.
    pub _pad: u16,
    /// First table version in which the rule is visible.
    pub add_version: u32,
    /// First table version in which the rule is no longer visible ([`VERSION_MAX`]: never).
    pub remove_version: u32,
}
abi_type!(BucketEntry, size = 16, align = 4);

impl BucketEntry {
    /// Whether this entry is visible in table version `v` (`add <= v < remove`, as in
    /// Open vSwitch's `lib/versions.h`).
    #[inline(always)]
    #[must_use]
    pub fn visible_in(&self, v: u32) -> bool {
        self.rule_id != 0 && self.add_version <= v && v < self.remove_version
    }
}

/// Slots per bucket.
pub const BUCKET_SLOTS: usize = 4;

/// Value of the rule-bucket map. Written whole by userspace (the map is
/// `BPF_F_NO_PREALLOC`, so an update replaces the element atomically under RCU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Entries, any order; empty slots have `rule_id == 0`.
    pub entries: [BucketEntry; BUCKET_SLOTS],
}
abi_type!(Bucket, size = 64, align = 4);

/// Key of the subtable-list map: which subtables one table of one virtual switch has in
/// one version.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MaskListKey {
    /// Virtual switch (datapath-local id).
    pub vswitch: u16,
    /// OpenFlow table id.
    pub table: u8,
    /// Padding; always zero.
    pub _pad: u8,
    /// Table version this list belongs to.
    pub version: u32,
}
abi_type!(MaskListKey, size = 8, align = 4);

/// One subtable reference in a [`MaskList`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MaskRef {
    /// Mask id (index into the masks array map).
    pub mask_id: u32,
    /// Highest priority of any rule in the subtable: once a match of at least this
    /// priority is found, later subtables cannot win and the search stops.
    pub max_priority: u32,
}
abi_type!(MaskRef, size = 8, align = 4);

/// The subtables of one table in one version, ordered by `max_priority`, highest first.
/// Immutable once published: a new version gets a new list under a new key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaskList {
    /// Number of valid entries.
    pub len: u32,
    /// Padding; always zero.
    pub _pad: u32,
    /// Subtables, highest `max_priority` first.
    pub masks: [MaskRef; crate::limits::MAX_MASKS_PER_TABLE],
}
abi_type!(
    MaskList,
    size = 8 + 8 * crate::limits::MAX_MASKS_PER_TABLE,
    align = 4
);

impl Default for MaskList {
    fn default() -> Self {
        Self {
            len: 0,
            _pad: 0,
            masks: [MaskRef::default(); crate::limits::MAX_MASKS_PER_TABLE],
        }
    }
}

/// Per-virtual-switch configuration, read once per packet at ingress.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VswitchConfig {
    /// Current table version: every packet entering now is classified with it. Flipping
    /// this one 32-bit word is the atomic "publish" step of a versioned update.
    pub version: u32,
    /// Flags ([`VSW_F_ACTIVE`]).
    pub flags: u32,
    /// Bumped by the driver after every change of where one of the virtual switch's
    /// ports lives (`VPORTS`): flow-cache entries remember the egress they resolved
    /// together with this number and use it only while it is unchanged.
    pub vport_gen: u32,
    /// The newest version whose rules are completely written here (`>= version`). A
    /// packet tunnelled in from another copy with a tag in `(version, ready]` moves this
    /// copy to that version at once: once any copy has processed a packet with a new
    /// version, nothing causally after it is processed with an older one.
    pub ready: u32,
}
abi_type!(VswitchConfig, size = 16, align = 4);

/// The virtual switch exists on this physical switch.
pub const VSW_F_ACTIVE: u32 = 1;
/// Bypass the flow cache for this virtual switch (benchmarks compare with and without).
pub const VSW_F_NO_CACHE: u32 = 2;
/// Never hit the flow cache, but still fill it: measures the cost of a cache miss
/// (benchmarks only).
pub const VSW_F_CACHE_ALWAYS_MISS: u32 = 4;

/// Key of the exact-match flow cache, in one of two forms told apart by `used`:
///
/// - **Parsed** ([`CACHE_SLOT_USED`]): the packet's flow key as parsed (before any rule
///   changed it), under one version of one virtual switch's tables. All
///   [`CACHE_KEY_WORDS`] words are hashed and compared.
/// - **Raw IPv4** ([`CACHE_KEY_RAW4`]): for the common frame — untagged Ethernet, IPv4
///   with a 20-byte header, at least [`RAW4_MIN_LEN`] bytes — the header bytes the
///   parser would read, as they are in the frame, instead of the flow key they parse
///   into (so a hit skips the parse). Only the first [`CACHE_RAW4_WORDS`] words are
///   hashed and compared, the rest are zero. Layout (words as little-endian loads of
///   frame bytes): word 0 as in the parsed form; word 1: `in_port` (low half) and frame
///   bytes 34..38 (the first four transport bytes: TCP/UDP ports, ICMP type and code);
///   word 2: bytes 0..8; word 3: bytes 8..16 (the MACs' rest, the Ethertype, version
///   and IHL, TOS); word 4: bytes 26..34 (source and destination address); word 5:
///   bytes 20..24 (flags, fragment offset, protocol) with the TTL (byte 22) cleared.
///   What the parser reads of such a frame lies in these bytes (and the frame is
///   never malformed for it: it is long enough for every header the parser reads), so
///   two frames with equal raw keys have equal flow keys. The bytes left out (total
///   length, identification, TTL, checksum) are read by no rule. Extra bytes (ECN,
///   the flags, a transport header the parser ignores) only make the key more
///   specific than the flow key, never less.
///
/// A key of one form never equals a key of the other (`used` differs), and an empty
/// (all-zero) slot equals neither.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Virtual switch.
    pub vswitch: u16,
    /// [`CACHE_SLOT_USED`] or [`CACHE_KEY_RAW4`] in every key the datapath looks up or
    /// stores, so an empty (all-zero) cache slot never equals a packet's key.
    pub used: u16,
    /// Table version.
    pub version: u32,
    /// The parsed flow key (parsed form), or the raw words 1.. (raw form).
    pub key: FlowKey,
}
abi_type!(CacheKey, size = 80, align = 8);

/// The `used` mark of a [`CacheKey`] in the parsed form.
pub const CACHE_SLOT_USED: u16 = 1;
/// The `used` mark of a [`CacheKey`] in the raw IPv4 form.
pub const CACHE_KEY_RAW4: u16 = 2;
/// Significant words of a raw IPv4 [`CacheKey`].
pub const CACHE_RAW4_WORDS: usize = 6;
/// Shortest frame whose key can take the raw IPv4 form: Ethernet, a 20-byte IPv4
/// header and four transport bytes.
pub const RAW4_MIN_LEN: usize = 38;

impl CacheKey {
    /// The key as 64-bit words, for hashing and comparing.
    #[inline(always)]
    #[must_use]
    pub fn words(&self) -> &[u64; CACHE_KEY_WORDS] {
        // SAFETY: CacheKey is repr(C), 80 bytes, 8-aligned, no invalid bit patterns.
        unsafe { &*(core::ptr::from_ref(self).cast::<[u64; CACHE_KEY_WORDS]>()) }
    }

    /// Mutable view as 64-bit words.
    #[inline(always)]
    pub fn words_mut(&mut self) -> &mut [u64; CACHE_KEY_WORDS] {
        // SAFETY: as for `words`; every bit pattern is a valid CacheKey.
        unsafe { &mut *(core::ptr::from_mut(self).cast::<[u64; CACHE_KEY_WORDS]>()) }
    }

    /// The first word of a key: virtual switch, form mark and version, as the fields
    /// lie in memory on a little-endian machine (BPF's `bpfel`, x86).
    #[inline(always)]
    #[must_use]
    pub const fn head(vswitch: u16, used: u16, version: u32) -> u64 {
        vswitch as u64 | (used as u64) << 16 | (version as u64) << 32
    }

    /// The slot of the direct-mapped flow cache a parsed-form key lives in.
    #[inline(always)]
    #[must_use]
    pub fn slot(&self) -> u32 {
        cache_slot(self.words())
    }
}

/// The multiplier of the datapath's direct-mapped caches' slot hashes (an odd 64-bit
/// constant with well-mixed bits; a multiply carries every bit of a word upwards).
pub const SLOT_HASH_K: u64 = 0xff51_afd7_ed55_8ccd;

/// The slot of the direct-mapped flow cache for a key's significant words.
///
/// Two multiplicative hashes (an XOR and a multiply per word), one over the even and
/// one over the odd words, so the CPU computes them side by side: a hit waits for the
/// slot before it can load anything of it. Their combination has its upper half
/// folded into the lower, and one last multiply carries every bit into the top bits,
/// which are the slot (a multiply only moves bits upwards: without the fold, the high
/// bytes of a word would never reach the slot). BPF has no multiply by a 64-bit
/// immediate: the multiplier is loaded once.
#[inline(always)]
#[must_use]
pub fn cache_slot<const N: usize>(w: &[u64; N]) -> u32 {
    let mut a: u64 = 0x7f4a_7c15;
    let mut b: u64 = 0x2545_f491;
    let mut i = 0;
    while i + 1 < N {
        a = (a ^ w[i]).wrapping_mul(SLOT_HASH_K);
        b = (b ^ w[i + 1]).wrapping_mul(SLOT_HASH_K);
        i += 2;
    }
    if i < N {
        a = (a ^ w[i]).wrapping_mul(SLOT_HASH_K);
    }
    let mut x = a ^ b.rotate_left(32);
    x ^= x >> 32;
    let slot_bits = crate::limits::FLOW_CACHE_SLOTS.trailing_zeros();
    (x.wrapping_mul(SLOT_HASH_K) >> (64 - slot_bits)) as u32
}

/// Number of 64-bit words in a [`CacheKey`].
pub const CACHE_KEY_WORDS: usize = 10;

/// Value of the flow cache: the classification result for that key and version. Valid
/// forever: the rules visible in a published version never change, and entries of old
/// versions are never looked up again (they age out of the LRU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CacheEntry {
    /// Rule ids matched, one per table visited.
    pub rules: [u32; crate::limits::MAX_TABLES],
    /// Valid entries of `rules`.
    pub len: u8,
    /// The chain ended on a table miss.
    pub missed: u8,
    /// Some rule needs several copies.
    pub multi: u8,
    /// The decision is complete: the chain leaves the frame unchanged and sends it to
    /// `out_port`, which lived at `egress` while the virtual switch's port generation
    /// was `vport_gen`. A hit then only counts the rules and sends the frame.
    pub fast: u8,
    /// Output actions over the chain.
    pub outputs: u32,
    /// Metadata register at the end of the pipeline.
    pub metadata: u64,
    /// The virtual port the frame goes to (when `fast`).
    pub out_port: u32,
    /// `VswitchConfig::vport_gen` when `egress` was read.
    pub vport_gen: u32,
    /// Where `out_port` lived (when `fast`).
    pub egress: crate::port::VportInfo,
    /// Padding; always zero.
    pub _pad: u32,
}
abi_type!(
    CacheEntry,
    size = 4 * crate::limits::MAX_TABLES + 8 + 8 + 8 + 20 + 4,
    align = 8
);

/// One slot of the direct-mapped, per-CPU flow cache: the key it holds and its result.
/// A lookup hashes the packet's key to one slot and compares the whole key; a fill
/// overwrites the slot (no eviction bookkeeping, no helper call, no locking: each CPU
/// has its own slots and XDP runs to completion).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CacheSlot {
    /// The key stored here (all zero: empty).
    pub key: CacheKey,
    /// Its classification result.
    pub entry: CacheEntry,
}
abi_type!(
    CacheSlot,
    size = 80 + core::mem::size_of::<CacheEntry>(),
    align = 8
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_clears_every_field_but_in_port() {
        let mut k = FlowKey {
            in_port: 9,
            vlan_vid: 0x1fff,
            eth_type: [0xff; 2],
            eth_dst: [0xff; 6],
            eth_src: [0xff; 6],
            vlan_pcp: 7,
            ip_dscp: 63,
            ip_proto: 255,
            _pad0: 0xff,
            nw_src: [0xff; 16],
            nw_dst: [0xff; 16],
            tp_src: [0xff; 2],
            tp_dst: [0xff; 2],
            _pad1: u32::MAX,
            metadata: u64::MAX,
        };
        k.reset(0x0102_0304);
        assert_eq!(
            k,
            FlowKey {
                in_port: 0x0102_0304,
                ..FlowKey::default()
            }
        );
    }

    #[test]
    fn head_is_the_first_word_of_a_cache_key() {
        let k = CacheKey {
            vswitch: 0xa1b2,
            used: CACHE_KEY_RAW4,
            version: 0xdead_beef,
            key: FlowKey::default(),
        };
        assert_eq!(
            CacheKey::head(0xa1b2, CACHE_KEY_RAW4, 0xdead_beef),
            k.words()[0]
        );
    }

    #[test]
    fn cache_slots_spread_keys_that_differ_anywhere() {
        extern crate std;
        let slots = crate::limits::FLOW_CACHE_SLOTS;
        // 256 keys differing in one byte, for each byte of a raw key: each byte's
        // values must land in many different slots (high bytes of a word included).
        for byte in 0..CACHE_RAW4_WORDS * 8 {
            let mut seen = std::collections::BTreeSet::new();
            for v in 0..=255u64 {
                let mut w = [0x0123_4567_89ab_cdef_u64; CACHE_RAW4_WORDS];
                w[byte / 8] ^= v << (8 * (byte % 8));
                let s = cache_slot(&w);
                assert!(s < slots);
                seen.insert(s);
            }
            assert!(
                seen.len() > 200,
                "byte {byte}: {} distinct slots",
                seen.len()
            );
        }
    }

    /// A hasher that keeps what it was fed (no std here: no `DefaultHasher`).
    #[derive(Default)]
    struct Fed {
        words: [u64; 16],
        n: usize,
    }

    impl core::hash::Hasher for Fed {
        fn finish(&self) -> u64 {
            self.words.iter().fold(0, |a, w| a.rotate_left(7) ^ w)
        }
        fn write(&mut self, _: &[u8]) {
            unreachable!("FlowKey hashes whole words");
        }
        fn write_u64(&mut self, w: u64) {
            self.words[self.n] = w;
            self.n += 1;
        }
    }

    fn fed(k: &FlowKey) -> Fed {
        let mut h = Fed::default();
        core::hash::Hash::hash(k, &mut h);
        h
    }

    #[test]
    fn keys_differing_in_any_field_are_unequal_and_equal_keys_hash_alike() {
        let base = FlowKey {
            in_port: 3,
            nw_dst: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..FlowKey::default()
        };
        let changed = [
            FlowKey { in_port: 4, ..base },
            FlowKey {
                vlan_vid: 1,
                ..base
            },
            FlowKey {
                eth_type: [8, 0],
                ..base
            },
            FlowKey {
                eth_dst: [0, 0, 0, 0, 0, 1],
                ..base
            },
            FlowKey {
                eth_src: [1, 0, 0, 0, 0, 0],
                ..base
            },
            FlowKey {
                vlan_pcp: 1,
                ..base
            },
            FlowKey { ip_dscp: 1, ..base },
            FlowKey {
                ip_proto: 6,
                ..base
            },
            FlowKey {
                nw_src: [0xff; 16],
                ..base
            },
            FlowKey {
                nw_dst: [0; 16],
                ..base
            },
            FlowKey {
                tp_src: [0, 80],
                ..base
            },
            FlowKey {
                tp_dst: [1, 0],
                ..base
            },
            FlowKey {
                metadata: 1 << 63,
                ..base
            },
        ];
        let copy = base;
        assert_eq!(base, copy);
        assert_eq!(fed(&base).words, fed(&copy).words);
        assert_eq!(fed(&base).n, FLOW_WORDS);
        for k in &changed {
            assert_ne!(*k, base, "{k:?}");
            assert_ne!(fed(k).words, fed(&base).words, "{k:?}");
        }
    }
}

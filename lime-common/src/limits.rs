//! Map sizes and loop bounds. The datapath's loops are bounded by these constants so the
//! verifier can prove termination; userspace rejects what does not fit with a typed error.

/// OpenFlow tables per virtual switch (ids `0..MAX_TABLES`).
pub const MAX_TABLES: usize = 8;
/// Distinct masks (subtables) per table.
pub const MAX_MASKS_PER_TABLE: usize = 32;
/// Actions in one rule's apply-actions list.
pub const MAX_ACTIONS: usize = 16;
/// Rule ids per physical switch (rule id 0 is never used). Rules being replaced by a
/// staged version hold a second id until the old version is reclaimed.
pub const MAX_RULES: u32 = 262_144;
/// Rule buckets (distinct masked values over all subtables).
pub const MAX_BUCKETS: u32 = 262_144;
/// Mask ids per physical switch (mask id 0 is never used).
pub const MAX_MASK_IDS: u32 = 4096;
/// Subtable lists: (virtual switch, table, version) triples alive at once.
pub const MAX_MASK_LISTS: u32 = 8192;
/// Virtual switches per physical switch (datapath-local ids `0..MAX_VSWITCHES`).
pub const MAX_VSWITCHES: u32 = 256;
/// Virtual ports per physical switch, over all virtual switches.
pub const MAX_VPORTS: u32 = 4096;
/// Physical ports (interfaces) per physical switch.
pub const MAX_PORTS: u32 = 1024;
/// IPv6 extension headers walked before giving up.
pub const MAX_IPV6_EXT_HEADERS: usize = 4;
/// Largest frame copied into a packet-in.
pub const MAX_PACKET_IN_BYTES: u32 = 2048;
/// Flow-cache slots per CPU (a power of two: the slot is the key's hash masked).
pub const FLOW_CACHE_SLOTS: u32 = 8192;
const _: () = assert!(FLOW_CACHE_SLOTS.is_power_of_two());

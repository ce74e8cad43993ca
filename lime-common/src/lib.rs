//! Types and numbers shared by LIME's eBPF datapath (`lime-ebpf`) and its control plane
//! (`lime-userspace`).
//!
//! Everything that crosses the kernel/user boundary — map keys and values, action codes,
//! drop reasons, the tunnel and packet-in headers — is declared here once, as `#[repr(C)]`
//! plain data with compile-time size and alignment checks. Numbers in this crate are part
//! of the pinned-map ABI: they are never renumbered, only appended to (as Cilium does with
//! its drop reasons).
//!
//! # Layout
//! - [`flow`]: the parsed packet ([`flow::FlowKey`]) that rules match on, and the rule-table
//!   map key/value types ([`flow::RuleKey`], [`flow::Bucket`], [`flow::MaskList`]).
//! - [`action`]: the per-rule instruction/action program ([`action::RuleProgram`]).
//! - [`port`]: the port map (physical port → virtual switch/port) and the virtual port map.
//! - [`stats`]: per-rule and per-port counters, drop reasons.
//! - [`wire`]: on-the-wire headers: the tunnel header between physical switches and the
//!   packet-in record sent to userspace.
//! - [`limits`]: map sizes and loop bounds.
//! - [`p4`]: the P4 program's half of the ABI (`p4/lime.p4`): header field lists, table
//!   and action names and P4Runtime ids, checked against the Rust structs here and
//!   against the P4 source by `tests/p4_in_step.rs`.
//!
//! With the `user` feature, every map type also implements `aya::Pod`.
#![no_std]
#![deny(missing_docs)]

pub mod action;
pub mod flow;
pub mod limits;
pub mod p4;
pub mod port;
pub mod stats;
pub mod wire;

/// Names of the maps and programs in the eBPF object, shared so the loader and the object
/// cannot disagree.
pub mod names {
    /// XDP entry point attached to every physical-switch port.
    pub const PROG_XDP: &str = "lime_xdp";
    /// XDP program that only passes frames; attached to the host side of veths so they
    /// accept XDP-redirected frames (a veth drops them otherwise).
    pub const PROG_PASS: &str = "lime_pass";
    /// One goto-table step, tail-called through `TABLE_PROGS` slot 0.
    pub const PROG_TABLE: &str = "lime_table";
    /// Program array holding `lime_table`.
    pub const MAP_TABLE_PROGS: &str = "TABLE_PROGS";
    /// TC ingress program: the skb path for packets needing several copies.
    pub const PROG_TC: &str = "lime_tc";
    /// The TC path's goto-table step, tail-called through `TC_TABLE_PROGS` slot 0.
    pub const PROG_TC_TABLE: &str = "lime_tc_table";
    /// The TC path's copy-emitting step, tail-called through `TC_TABLE_PROGS` slot 1.
    pub const PROG_TC_EMIT: &str = "lime_tc_emit";
    /// The TC path's sending step, tail-called through `TC_TABLE_PROGS` slot 2.
    pub const PROG_TC_SEND: &str = "lime_tc_send";
    /// The TC path's single-output step (execute and deliver), tail-called through
    /// `TC_TABLE_PROGS` slot 3.
    pub const PROG_TC_OUT: &str = "lime_tc_out";
    /// Program array holding `lime_tc_table`, `lime_tc_emit`, `lime_tc_send`,
    /// `lime_tc_out` (slots 0-3).
    pub const MAP_TC_TABLE_PROGS: &str = "TC_TABLE_PROGS";
    /// Virtual ports per virtual switch (FLOOD/ALL).
    pub const MAP_VSW_PORTS: &str = "VSW_PORTS";
    /// Minimal XDP program that redirects every frame to one port: the benchmarks' floor.
    pub const PROG_FLOOR: &str = "lime_floor";
    /// XDP program that counts every frame in `PORT_STATS` (as received on its
    /// interface) and drops it: the benchmarks' sink.
    pub const PROG_SINK: &str = "lime_sink";
    /// Port map.
    pub const MAP_PORTS: &str = "PORTS";
    /// Virtual port map.
    pub const MAP_VPORTS: &str = "VPORTS";
    /// Per-virtual-switch configuration (current version).
    pub const MAP_VSWITCHES: &str = "VSWITCHES";
    /// Subtable (mask) lists per (virtual switch, table, version).
    pub const MAP_MASK_LISTS: &str = "MASK_LISTS";
    /// The exact-match flow cache.
    pub const MAP_FLOW_CACHE: &str = "FLOW_CACHE";
    /// Masks by mask id.
    pub const MAP_MASKS: &str = "MASKS";
    /// Rule buckets keyed by masked flow key.
    pub const MAP_RULES: &str = "RULES";
    /// Rule programs (instructions/actions) by rule id.
    pub const MAP_PROGRAMS: &str = "RULE_PROGRAMS";
    /// Per-CPU rule counters by rule id.
    pub const MAP_RULE_STATS: &str = "RULE_STATS";
    /// Per-CPU port counters by ifindex.
    pub const MAP_PORT_STATS: &str = "PORT_STATS";
    /// Per-CPU drop counters by reason.
    pub const MAP_DROPS: &str = "DROPS";
    /// Packet-in perf event array.
    pub const MAP_PACKET_IN: &str = "PACKET_IN";
    /// Floor program's redirect target (index 0 → ifindex).
    pub const MAP_FLOOR: &str = "FLOOR_TARGET";
}

/// Implements `aya::Pod` (with the `user` feature) and checks size and alignment at
/// compile time, so a layout change is a build error on both sides.
macro_rules! abi_type {
    ($ty:ty, size = $size:expr, align = $align:expr) => {
        const _: () = assert!(core::mem::size_of::<$ty>() == $size);
        const _: () = assert!(core::mem::align_of::<$ty>() == $align);
        #[cfg(feature = "user")]
        // SAFETY: `$ty` is `#[repr(C)]` plain data with no padding holes left
        // uninitialised by construction (explicit `_pad` fields) and every bit pattern valid.
        unsafe impl aya::Pod for $ty {}
    };
}
pub(crate) use abi_type;

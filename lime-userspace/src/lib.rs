//! LIME's control plane: the datapath driver, the rule model, the lab, and (in later
//! layers) OpenFlow towards tenant controllers and the migration engine.
//!
//! # Layout
//! - [`flow`]: rules — matches, instructions, validation, compilation to map entries.
//! - [`fabric`]: a lab with a datapath on each physical switch and virtual switches
//!   mapped across them.
//! - [`vswitch`]: OpenFlow 1.3 flow-table semantics (add/modify/delete, strict and
//!   non-strict, cookies, overlap check) over a virtual switch's copies.
//! - [`packet`]: frames: a builder, an independent parser, malformed-frame makers.
//! - [`reference`]: the reference classifier (a linear scan), the oracle of the
//!   property tests.
//! - [`testgen`]: random rule sets and packets for property tests, and deterministic
//!   rule sets for benchmarks (feature `testgen`).
//! - [`ofswitch`]: the OpenFlow 1.3 switch towards tenant controllers: the switch core
//!   (one thread owning the fabric), controller connections, translation to rules.
//! - [`osken`]: the reference tenant controller (os-ken's learning switch) as a child
//!   process, for the demo and the end-to-end tests.
//! - [`traffic`]: the traffic generator (XDP live frames), counting sink, latency and
//!   TCP probes of the line-rate benchmark.
//! - [`datapath`]: the driver of one physical switch's eBPF datapath (versioned rule
//!   store, kernel access).
//! - [`migration`]: the migration engine (clone a virtual switch's tables to another
//!   physical switch, move its hosts, retire the old copy folding in its counters), and
//!   its durable journal ([`migration::journal`]: crash recovery).
#![deny(missing_docs)]

pub mod datapath;
pub mod fabric;
pub mod flow;
pub mod migration;
pub mod ofswitch;
pub mod osken;
pub mod packet;
pub mod reference;
pub mod testgen;
pub mod traffic;
pub mod vswitch;

/// The hash map of the control plane's rule indexes: foldhash (fast, seeded per
/// process) instead of std's SipHash, which was the largest single cost of installing
/// flow-mods.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The hash set counterpart of [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

//! Error types: [`TopologyError`] for reading and validating a topology (no kernel
//! involved), [`LabError`] for building and driving a lab in the kernel.

use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::addr::{ParseCidrError, ParseMacError};

/// What kind of thing a name names, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// The lab itself (part of every namespace name).
    Lab,
    /// A physical switch (a namespace).
    Switch,
    /// A host (a namespace; also the name of its port in the switch namespace).
    Host,
    /// A virtual switch.
    VSwitch,
    /// A tenant owning virtual switches.
    Tenant,
    /// A named ensemble of virtual switches.
    Ensemble,
    /// A network namespace name derived from the lab and node names.
    Netns,
    /// A kernel interface name derived from a node name.
    Interface,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lab => "lab",
            Self::Switch => "switch",
            Self::Host => "host",
            Self::VSwitch => "virtual switch",
            Self::Tenant => "tenant",
            Self::Ensemble => "ensemble",
            Self::Netns => "namespace",
            Self::Interface => "interface",
        })
    }
}

/// A topology that cannot be read or is not valid.
///
/// Validation reports the first problem found, in file order.
#[derive(Debug, Error)]
pub enum TopologyError {
    /// The topology file could not be read.
    #[error("cannot read topology file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The TOML is malformed or has unknown or missing fields.
    #[error("malformed topology")]
    Parse {
        /// The TOML error (with line and column).
        #[source]
        source: toml::de::Error,
    },
    /// The topology could not be written as TOML.
    #[error("cannot write topology as TOML")]
    Serialize {
        /// The TOML error.
        #[source]
        source: toml::ser::Error,
    },
    /// `veth_queues` out of range.
    #[error("veth_queues = {value}: must be 1..={max}")]
    VethQueues {
        /// The value given.
        value: u32,
        /// The most allowed.
        max: u32,
    },
    /// A name has characters that are not allowed, is empty, or is reserved.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// What the name names.
        kind: NameKind,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name, or a namespace or interface name derived from it, is too long for the kernel.
    #[error("{kind} name {name:?} is {len} characters long, more than the {max} allowed")]
    NameTooLong {
        /// What the (derived) name names.
        kind: NameKind,
        /// The (derived) name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Two nodes share a name (switches and hosts share one name space: both are
    /// network namespaces).
    #[error("duplicate {kind} name {name:?}")]
    DuplicateName {
        /// The kind of the second occurrence.
        kind: NameKind,
        /// The name.
        name: String,
    },
    /// A host or link names a physical switch that does not exist.
    #[error("{referrer} refers to unknown switch {switch:?}")]
    UnknownSwitch {
        /// Who refers to it (`host "h1"`, `link s1-s9`).
        referrer: String,
        /// The missing switch.
        switch: String,
    },
    /// A virtual switch port names a host that does not exist.
    #[error("port {port} of virtual switch {vswitch:?} refers to unknown host {host:?}")]
    UnknownHost {
        /// The virtual switch.
        vswitch: String,
        /// The virtual port number.
        port: u32,
        /// The missing host.
        host: String,
    },
    /// A host's MAC address does not parse.
    #[error("host {host:?}: bad MAC address {value:?}")]
    BadMac {
        /// The host.
        host: String,
        /// The value as written.
        value: String,
        /// Why it does not parse.
        #[source]
        source: ParseMacError,
    },
    /// A host's MAC address parses but is multicast or all zeros.
    #[error("host {host:?}: MAC address {value} is not a unicast address")]
    MacNotUnicast {
        /// The host.
        host: String,
        /// The address.
        value: String,
    },
    /// A host's IPv4 or IPv6 address does not parse or has the wrong family.
    #[error("host {host:?}: bad {field} address {value:?}")]
    BadIp {
        /// The host.
        host: String,
        /// The field (`ip` or `ipv6`).
        field: &'static str,
        /// The value as written.
        value: String,
        /// Why it does not parse.
        #[source]
        source: ParseCidrError,
    },
    /// A host has no explicit address and its index is too large for the default one.
    #[error(
        "host {host:?} (index {index}) needs an explicit {field}: the default scheme has run out"
    )]
    NoDefaultAddress {
        /// The host.
        host: String,
        /// Its index in the topology.
        index: usize,
        /// The field (`mac` or `ip`).
        field: &'static str,
    },
    /// Two hosts have the same MAC or IP address.
    #[error("hosts {first:?} and {second:?} have the same {field} address {value}")]
    DuplicateAddress {
        /// The field (`mac`, `ip` or `ipv6`).
        field: &'static str,
        /// The address.
        value: String,
        /// The first host.
        first: String,
        /// The second host.
        second: String,
    },
    /// An underlay link joins a switch to itself.
    #[error("link joins switch {switch:?} to itself")]
    SelfLink {
        /// The switch.
        switch: String,
    },
    /// Two underlay links join the same pair of switches.
    #[error("more than one link between switches {a:?} and {b:?}")]
    DuplicateLink {
        /// One switch.
        a: String,
        /// The other switch.
        b: String,
    },
    /// A virtual port number is 0 or a reserved OpenFlow port number.
    #[error(
        "virtual switch {vswitch:?}: port number {port} is not a valid OpenFlow port (1..=0xffffff00)"
    )]
    BadPortNumber {
        /// The virtual switch.
        vswitch: String,
        /// The port number.
        port: u32,
    },
    /// A virtual switch uses a port number twice.
    #[error("virtual switch {vswitch:?}: duplicate port number {port}")]
    DuplicatePort {
        /// The virtual switch.
        vswitch: String,
        /// The port number.
        port: u32,
    },
    /// A host is attached to two virtual ports (in one or two virtual switches).
    #[error("host {host:?} is attached to two virtual ports: {first} and {second}")]
    HostOnTwoPorts {
        /// The host.
        host: String,
        /// The first port, as `vswitch:port`.
        first: String,
        /// The second port, as `vswitch:port`.
        second: String,
    },
    /// Two virtual switches have the same datapath id.
    #[error("virtual switches {first:?} and {second:?} have the same dpid {dpid:#x}")]
    DuplicateDpid {
        /// The dpid.
        dpid: u64,
        /// The first virtual switch.
        first: String,
        /// The second virtual switch.
        second: String,
    },
    /// A virtual link end names no physical switch and its virtual switch has no host
    /// to place it by.
    #[error(
        "virtual link {link}: the end on {vswitch:?} needs a `switch` (the virtual switch has no host to place it by)"
    )]
    VLinkNoSwitch {
        /// The link, 1-based in file order.
        link: usize,
        /// The end's virtual switch.
        vswitch: String,
    },
    /// A virtual link end names a virtual switch the topology does not have.
    #[error("virtual link {link} refers to unknown virtual switch {vswitch:?}")]
    UnknownVSwitch {
        /// The link, 1-based in file order.
        link: usize,
        /// The virtual switch named.
        vswitch: String,
    },
    /// A virtual link end uses a virtual port already bound to a host or to another
    /// link end.
    #[error("virtual link {link}: port {port} of {vswitch:?} is already {by}")]
    VLinkPortTaken {
        /// The link, 1-based in file order.
        link: usize,
        /// The virtual switch.
        vswitch: String,
        /// The port number.
        port: u32,
        /// What holds it (`bound to host "h1"`, `an end of virtual link 1`).
        by: String,
    },
    /// Both ends of a virtual link are on the same virtual switch.
    #[error("virtual link {link} joins virtual switch {vswitch:?} to itself")]
    VLinkSameVSwitch {
        /// The link, 1-based in file order.
        link: usize,
        /// The virtual switch.
        vswitch: String,
    },
    /// A virtual switch has hosts on physical switches with different datapath modes.
    #[error(
        "virtual switch {vswitch:?} has hosts on physical switches {a:?} and {b:?}, whose datapath modes differ"
    )]
    MixedDatapaths {
        /// The virtual switch.
        vswitch: String,
        /// A physical switch of one mode.
        a: String,
        /// One of the other.
        b: String,
    },
    /// The ends of a virtual link are on physical switches with different datapath
    /// modes (an XDP-mode end redirects frames that only enter a veth whose peer runs
    /// XDP, which a TC-mode end does not).
    #[error(
        "virtual link {link} joins physical switches {a:?} and {b:?}, whose datapath modes differ"
    )]
    VLinkMixedDatapaths {
        /// The link, 1-based in file order.
        link: usize,
        /// One end's physical switch.
        a: String,
        /// The other's.
        b: String,
    },
    /// More virtual links than their port names allow.
    #[error("{count} virtual links, more than the {max} allowed")]
    TooManyVLinks {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An ensemble has the name of a virtual switch (`lime migrate <name>` would be
    /// ambiguous).
    #[error("ensemble {name:?} has the name of a virtual switch")]
    EnsembleNameTaken {
        /// The name.
        name: String,
    },
    /// An ensemble lists no virtual switch.
    #[error("ensemble {ensemble:?} lists no virtual switch")]
    EmptyEnsemble {
        /// The ensemble.
        ensemble: String,
    },
    /// An ensemble names a virtual switch the topology does not have.
    #[error("ensemble {ensemble:?} refers to unknown virtual switch {vswitch:?}")]
    EnsembleUnknownVSwitch {
        /// The ensemble.
        ensemble: String,
        /// The virtual switch named.
        vswitch: String,
    },
    /// An ensemble lists a virtual switch twice.
    #[error("ensemble {ensemble:?} lists virtual switch {vswitch:?} twice")]
    EnsembleDuplicateMember {
        /// The ensemble.
        ensemble: String,
        /// The virtual switch.
        vswitch: String,
    },
    /// An ensemble spans tenants (an ensemble is part of one tenant's virtual topology).
    #[error(
        "ensemble {ensemble:?} mixes tenants: {first:?} (of {first_tenant:?}) and {second:?} (of {second_tenant:?})"
    )]
    EnsembleTenants {
        /// The ensemble.
        ensemble: String,
        /// Its first virtual switch.
        first: String,
        /// That one's tenant.
        first_tenant: String,
        /// A virtual switch of another tenant.
        second: String,
        /// Its tenant.
        second_tenant: String,
    },
    /// A controller string is not `tcp:HOST:PORT` or `ptcp:PORT[:ADDR]`.
    #[error("virtual switch {vswitch:?}: bad controller {value:?}: {reason}")]
    BadController {
        /// The virtual switch.
        vswitch: String,
        /// The controller as written.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A failure while building, driving or tearing down a lab.
#[derive(Debug, Error)]
pub enum LabError {
    /// The topology is not valid.
    #[error("invalid topology")]
    Topology {
        /// The validation error.
        #[from]
        source: TopologyError,
    },
    /// A command could not be started (is iproute2/ethtool installed? are we root?).
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A command exited with a failure status.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A command's JSON output could not be understood.
    #[error("cannot parse the output of `{command}`")]
    Output {
        /// The command line.
        command: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The topology has no node (switch or host) of this name.
    #[error("lab {lab:?} has no node {node:?}")]
    UnknownNode {
        /// The lab.
        lab: String,
        /// The node asked for.
        node: String,
    },
    /// No interface of that name in the namespace.
    #[error("no interface {ifname:?} in namespace {netns:?}")]
    InterfaceNotFound {
        /// The namespace.
        netns: String,
        /// The interface.
        ifname: String,
    },
    /// Entering a network namespace (open `/run/netns/NAME` or `setns`) failed.
    #[error("cannot enter network namespace {netns:?}")]
    Setns {
        /// The namespace.
        netns: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A helper thread could not be started.
    #[error("cannot start a thread")]
    Thread {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing a sysctl inside a namespace failed.
    #[error("cannot set sysctl {key} = {value} in namespace {netns:?}")]
    Sysctl {
        /// The namespace.
        netns: String,
        /// The sysctl key, dotted.
        key: String,
        /// The value.
        value: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The lab state file could not be read, written or removed.
    #[error("cannot access lab state {}", path.display())]
    StateIo {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The lab state file is not valid JSON for [`crate::LabState`].
    #[error("malformed lab state {}", path.display())]
    StateJson {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

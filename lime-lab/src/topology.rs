//! The lab topology: physical switches, hosts, underlay links and tenants' virtual
//! switches, as read from a TOML file.
//!
//! ```toml
//! name = "demo"                    # lab name: namespaces are "lime-<lab>-<node>"
//! veth_queues = 1                  # optional, default 1: queues of every veth (1..=64)
//!
//! [[switch]]                       # a physical switch (a namespace running the datapath)
//! name = "s1"
//! datapath = "xdp"                 # optional: "xdp" (default) or "tc", see DatapathMode
//! [[switch]]
//! name = "s2"
//!
//! [[host]]                         # a host (VM stand-in): a namespace with "eth0"
//! name = "h1"
//! switch = "s1"                    # the physical switch it is attached to
//! mac = "02:00:00:00:00:01"        # optional, default 02:00:00:00:HH:LL from index+1
//! ip = "10.0.0.1/24"               # optional, default 10.0.0.<index+1>/24
//! ipv6 = "fd00::1/64"              # optional, no default
//!
//! [[link]]                         # underlay link between two physical switches
//! a = "s1"
//! b = "s2"
//!
//! [[vswitch]]                      # a tenant's virtual switch
//! name = "vs1"
//! tenant = "t1"
//! dpid = 1                         # optional, default index+1
//! controllers = ["tcp:127.0.0.1:6653"]   # optional
//! fail_mode = "secure"             # optional: "secure" (default) or "standalone"
//! ports = [ { port = 1, host = "h1" } ]  # virtual port number -> host
//!
//! [[vlink]]                        # a virtual link: virtual port 5 of vs1 <-> port 5 of vs2
//! a = { vswitch = "vs1", port = 5, switch = "s1" }   # switch: optional, see below
//! b = { vswitch = "vs2", port = 5 }
//!
//! [[ensemble]]                     # optional: virtual switches that migrate together
//! name = "web"                     # `lime migrate web --to s3`
//! vswitches = ["vs1", "vs2"]       # one tenant's, in the order they migrate
//! ```
//!
//! A virtual link joins a virtual port of one virtual switch to a virtual port of
//! another; a frame one sends out of its end enters the other at its end. The lab makes
//! it a veth pair (see [`vlink_ifname`]) whose ends sit in the namespaces of the physical
//! switches named by `switch` (both in one namespace if they are the same). `switch`
//! defaults to the physical switch of the virtual switch's first host (in `ports` order);
//! a virtual switch without hosts needs it spelled out.
//!
//! A [`Topology`] value always has its defaults filled in (a host always has a MAC and
//! an IPv4 address, a virtual switch a dpid), so writing it back with
//! [`Topology::to_toml_string`] spells them out. Reading a file reports bad addresses as
//! typed [`TopologyError`]s (not as TOML errors) and then runs [`Topology::validate`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::addr::{Ipv4Cidr, Ipv6Cidr, MacAddr};
use crate::error::TopologyError;

/// Prefix of every network namespace the lab creates.
pub const NETNS_PREFIX: &str = "lime-";

/// Longest kernel interface name (`IFNAMSIZ - 1`, include/uapi/linux/if.h).
pub const MAX_IFNAME_LEN: usize = 15;

/// Longest namespace name the lab creates. The kernel's only limit is the file name
/// under `/run/netns` (255 bytes); this tighter, project-chosen limit keeps names readable
/// in `ip netns list` and in logs.
pub const MAX_NETNS_NAME_LEN: usize = 64;

/// Prefix of underlay port names: the port towards switch `s2` is `u-s2`.
pub const UNDERLAY_PREFIX: &str = "u-";

/// Name of a host's only interface, inside the host namespace.
pub const HOST_IFNAME: &str = "eth0";

/// Prefix of virtual link port names: `vl<N>a`, `vl<N>b` (see [`vlink_ifname`]).
pub const VLINK_PREFIX: &str = "vl";

/// Most virtual links in a topology (keeps their port names short).
pub const MAX_VLINKS: usize = 9999;

/// MTU of underlay links: tunnelled frames carry an extra header.
pub const UNDERLAY_MTU: u32 = 1600;

/// A whole lab topology. See the [module documentation](self) for the file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Lab name; part of every namespace name (`lime-<name>-<node>`).
    pub name: String,
    /// Physical switches.
    #[serde(rename = "switch", default)]
    pub switches: Vec<SwitchSpec>,
    /// Hosts.
    #[serde(rename = "host", default)]
    pub hosts: Vec<HostSpec>,
    /// Underlay links between physical switches.
    #[serde(rename = "link", default)]
    pub links: Vec<LinkSpec>,
    /// Tenants' virtual switches.
    #[serde(rename = "vswitch", default)]
    pub vswitches: Vec<VSwitchSpec>,
    /// Virtual links between virtual switches (their ends' `switch` follow
    /// [`crate::Lab::add_vlink_pair`]).
    #[serde(rename = "vlink", default, skip_serializing_if = "Vec::is_empty")]
    pub vlinks: Vec<VLinkSpec>,
    /// Named ensembles: sets of virtual switches that migrate together
    /// (`lime migrate <ensemble>`).
    #[serde(rename = "ensemble", default, skip_serializing_if = "Vec::is_empty")]
    pub ensembles: Vec<EnsembleSpec>,
    /// Receive and transmit queues of every veth the lab makes (default 1). Frames that
    /// XDP redirects into a veth land in the peer's queue of the CPU that redirected
    /// them: with one queue every flow stays in order (one ring), but senders on several
    /// CPUs share its 256 slots and overflow it; one queue per sending CPU lets the
    /// line-rate benchmark's pinned senders run side by side.
    #[serde(default = "one_queue", skip_serializing_if = "is_one_queue")]
    pub veth_queues: u32,
}

/// Most queues per veth.
pub const MAX_VETH_QUEUES: u32 = 64;

const fn one_queue() -> u32 {
    1
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's signature")]
const fn is_one_queue(n: &u32) -> bool {
    *n == 1
}

/// A physical switch: a namespace whose ports will run LIME's datapath.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSpec {
    /// Node name.
    pub name: String,
    /// Where LIME runs on its host ports.
    #[serde(default, skip_serializing_if = "DatapathMode::is_default")]
    pub datapath: DatapathMode,
}

impl SwitchSpec {
    /// A switch of this name with the default datapath.
    #[must_use]
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            datapath: DatapathMode::default(),
        }
    }
}

/// Where a physical switch runs LIME on its host ports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatapathMode {
    /// XDP on every port (the fastest per packet). The kernel clears the software
    /// segmentation offloads (TSO) of a veth whose peer runs XDP, so hosts' TCP sends
    /// MTU-sized segments, and hosts compute checksums in software.
    #[default]
    Xdp,
    /// TC ingress on host ports, no XDP program there: GSO/GRO skbs (large TCP
    /// segments) cross the switch whole and hosts keep their checksum offload.
    /// Underlay ports still run XDP (it decapsulates the tunnel).
    Tc,
}

impl DatapathMode {
    #[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's signature")]
    fn is_default(m: &Self) -> bool {
        *m == Self::default()
    }
}

/// A host (VM stand-in): a namespace with one interface, [`HOST_IFNAME`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Node name; also the name of its port in the switch namespace.
    pub name: String,
    /// The physical switch it is attached to.
    pub switch: String,
    /// MAC address of its interface.
    pub mac: MacAddr,
    /// IPv4 address of its interface.
    pub ip: Ipv4Cidr,
    /// Optional IPv6 address of its interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Cidr>,
}

impl HostSpec {
    /// A host with the default addresses for its `index` in [`Topology::hosts`].
    ///
    /// # Errors
    /// [`TopologyError::NoDefaultAddress`] when the index is beyond the default schemes.
    pub fn with_defaults(name: &str, switch: &str, index: usize) -> Result<Self, TopologyError> {
        let no_default = |field| TopologyError::NoDefaultAddress {
            host: name.to_owned(),
            index,
            field,
        };
        Ok(Self {
            name: name.to_owned(),
            switch: switch.to_owned(),
            mac: MacAddr::for_host_index(index).ok_or_else(|| no_default("mac"))?,
            ip: Ipv4Cidr::for_host_index(index).ok_or_else(|| no_default("ip"))?,
            ipv6: None,
        })
    }
}

/// An underlay link between two physical switches. Its ends are named after the peer:
/// `u-<b>` in `a`'s namespace and `u-<a>` in `b`'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// One switch.
    pub a: String,
    /// The other switch.
    pub b: String,
}

/// What a virtual switch does while none of its controllers is connected (Open vSwitch's
/// `fail_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Keep the flow table as it is; table misses are dropped (the default).
    #[default]
    Secure,
    /// Behave as a learning switch: flood unknown destinations, forward known ones.
    Standalone,
}

/// A tenant's virtual switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VSwitchSpec {
    /// Name, unique among virtual switches.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// OpenFlow datapath id.
    pub dpid: u64,
    /// Controller targets, `tcp:HOST:PORT` or `ptcp:PORT[:ADDR]` (see [`crate::Controller`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<String>,
    /// What the switch does while no controller is connected.
    #[serde(default)]
    pub fail_mode: FailMode,
    /// Virtual ports.
    #[serde(default)]
    pub ports: Vec<VPortSpec>,
}

/// A virtual switch port bound to a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VPortSpec {
    /// OpenFlow port number.
    pub port: u32,
    /// The host behind it.
    pub host: String,
}

/// One end of a virtual link: a virtual port and where it is placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VLinkEnd {
    /// The virtual switch.
    pub vswitch: String,
    /// Its virtual port number (not bound to a host).
    pub port: u32,
    /// The physical switch whose namespace holds this end's veth.
    pub switch: String,
}

/// A virtual link between two virtual switches (virtual port to virtual port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VLinkSpec {
    /// One end.
    pub a: VLinkEnd,
    /// The other end.
    pub b: VLinkEnd,
}

impl VLinkSpec {
    /// The end on `vswitch` port `port`, and the other end.
    #[must_use]
    pub fn end(&self, vswitch: &str, port: u32) -> Option<(&VLinkEnd, &VLinkEnd)> {
        if self.a.vswitch == vswitch && self.a.port == port {
            Some((&self.a, &self.b))
        } else if self.b.vswitch == vswitch && self.b.port == port {
            Some((&self.b, &self.a))
        } else {
            None
        }
    }
}

/// A named ensemble: some of one tenant's virtual switches (typically joined by
/// virtual links) that migrate together, with their hosts and link ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// Name, unique among ensembles and virtual switches.
    pub name: String,
    /// Its virtual switches, in the order they migrate.
    pub vswitches: Vec<String>,
}

/// Which end of a virtual link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VLinkSide {
    /// The `a` end.
    A,
    /// The `b` end.
    B,
}

/// The interface name of one end of virtual link `index` (0-based in
/// [`Topology::vlinks`]) in its `generation`: `vl<index+1>a` / `vl<index+1>b` for
/// generation 0, `vl<index+1>a-<g>` after (g = generation mod 1000; only two generations
/// of a link ever exist at once, while an end moves make-before-break).
#[must_use]
pub fn vlink_ifname(index: usize, generation: u32, side: VLinkSide) -> String {
    let s = match side {
        VLinkSide::A => 'a',
        VLinkSide::B => 'b',
    };
    if generation == 0 {
        format!("{VLINK_PREFIX}{}{s}", index + 1)
    } else {
        format!("{VLINK_PREFIX}{}{s}-{}", index + 1, generation % 1000)
    }
}

/// The file form of a topology: optional fields still optional, addresses still strings
/// (so that a bad one is reported as a typed error, not as a TOML error).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    name: String,
    #[serde(default = "one_queue")]
    veth_queues: u32,
    #[serde(default)]
    switch: Vec<SwitchSpec>,
    #[serde(default)]
    host: Vec<RawHost>,
    #[serde(default)]
    link: Vec<LinkSpec>,
    #[serde(default)]
    vswitch: Vec<RawVSwitch>,
    #[serde(default)]
    vlink: Vec<RawVLink>,
    #[serde(default)]
    ensemble: Vec<EnsembleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVLinkEnd {
    vswitch: String,
    port: u32,
    switch: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVLink {
    a: RawVLinkEnd,
    b: RawVLinkEnd,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    switch: String,
    mac: Option<String>,
    ip: Option<String>,
    ipv6: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVSwitch {
    name: String,
    tenant: String,
    dpid: Option<u64>,
    #[serde(default)]
    controllers: Vec<String>,
    #[serde(default)]
    fail_mode: FailMode,
    #[serde(default)]
    ports: Vec<VPortSpec>,
}

impl RawTopology {
    /// Fill in defaults and parse addresses.
    fn resolve(self) -> Result<Topology, TopologyError> {
        let hosts: Vec<HostSpec> = self
            .host
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                let no_default = |field| TopologyError::NoDefaultAddress {
                    host: raw.name.clone(),
                    index,
                    field,
                };
                let mac = match &raw.mac {
                    Some(value) => value.parse().map_err(|source| TopologyError::BadMac {
                        host: raw.name.clone(),
                        value: value.clone(),
                        source,
                    })?,
                    None => MacAddr::for_host_index(index).ok_or_else(|| no_default("mac"))?,
                };
                let ip = match &raw.ip {
                    Some(value) => value.parse().map_err(|source| TopologyError::BadIp {
                        host: raw.name.clone(),
                        field: "ip",
                        value: value.clone(),
                        source,
                    })?,
                    None => Ipv4Cidr::for_host_index(index).ok_or_else(|| no_default("ip"))?,
                };
                let ipv6 = match &raw.ipv6 {
                    Some(value) => Some(value.parse().map_err(|source| TopologyError::BadIp {
                        host: raw.name.clone(),
                        field: "ipv6",
                        value: value.clone(),
                        source,
                    })?),
                    None => None,
                };
                Ok(HostSpec {
                    name: raw.name,
                    switch: raw.switch,
                    mac,
                    ip,
                    ipv6,
                })
            })
            .collect::<Result<_, TopologyError>>()?;
        let vswitches = self
            .vswitch
            .into_iter()
            .enumerate()
            .map(|(index, raw)| VSwitchSpec {
                name: raw.name,
                tenant: raw.tenant,
                dpid: raw.dpid.unwrap_or(index as u64 + 1),
                controllers: raw.controllers,
                fail_mode: raw.fail_mode,
                ports: raw.ports,
            })
            .collect::<Vec<VSwitchSpec>>();
        let place = |index: usize, raw: RawVLinkEnd| -> Result<VLinkEnd, TopologyError> {
            let switch = match raw.switch {
                Some(s) => s,
                None => vswitches
                    .iter()
                    .find(|v| v.name == raw.vswitch)
                    .and_then(|v| v.ports.first())
                    .and_then(|p| hosts_ref(&hosts, &p.host))
                    .ok_or_else(|| TopologyError::VLinkNoSwitch {
                        link: index + 1,
                        vswitch: raw.vswitch.clone(),
                    })?,
            };
            Ok(VLinkEnd {
                vswitch: raw.vswitch,
                port: raw.port,
                switch,
            })
        };
        let vlinks = self
            .vlink
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                Ok(VLinkSpec {
                    a: place(i, raw.a)?,
                    b: place(i, raw.b)?,
                })
            })
            .collect::<Result<_, TopologyError>>()?;
        Ok(Topology {
            name: self.name,
            switches: self.switch,
            hosts,
            links: self.link,
            vswitches,
            vlinks,
            ensembles: self.ensemble,
            veth_queues: self.veth_queues,
        })
    }
}

/// The physical switch of host `name`, if it is one of `hosts`.
fn hosts_ref(hosts: &[HostSpec], name: &str) -> Option<String> {
    hosts
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.switch.clone())
}

impl Topology {
    /// The built-in default lab, named `demo`: switches `s1` — `s2` — `s3` joined by
    /// two underlay links; hosts `h1`, `h2` on `s1` and `h3`, `h4` on `s2` with default
    /// addresses, `s3` empty (where the demo migrates to); one virtual switch `vs1`
    /// (tenant `t1`, dpid 1) with ports 1..=4 bound to `h1`..`h4`.
    ///
    /// # Panics
    /// Never: the default addresses of four hosts exist.
    #[must_use]
    pub fn default_demo() -> Self {
        let host = |i: usize, switch: &str| {
            HostSpec::with_defaults(&format!("h{}", i + 1), switch, i)
                .expect("small index has default addresses")
        };
        Self {
            name: "demo".to_owned(),
            switches: vec![
                SwitchSpec::named("s1"),
                SwitchSpec::named("s2"),
                SwitchSpec::named("s3"),
            ],
            hosts: vec![host(0, "s1"), host(1, "s1"), host(2, "s2"), host(3, "s2")],
            links: vec![
                LinkSpec {
                    a: "s1".to_owned(),
                    b: "s2".to_owned(),
                },
                LinkSpec {
                    a: "s2".to_owned(),
                    b: "s3".to_owned(),
                },
            ],
            vswitches: vec![VSwitchSpec {
                name: "vs1".to_owned(),
                tenant: "t1".to_owned(),
                dpid: 1,
                controllers: Vec::new(),
                fail_mode: FailMode::Secure,
                ports: (1..=4)
                    .map(|port| VPortSpec {
                        port,
                        host: format!("h{port}"),
                    })
                    .collect(),
            }],
            vlinks: Vec::new(),
            ensembles: Vec::new(),
            veth_queues: 1,
        }
    }

    /// Parse and validate a TOML topology.
    ///
    /// # Errors
    /// [`TopologyError::Parse`] for malformed TOML or unknown fields, a typed variant for
    /// bad addresses, and any error of [`Topology::validate`].
    pub fn from_toml_str(s: &str) -> Result<Self, TopologyError> {
        let raw: RawTopology =
            toml::from_str(s).map_err(|source| TopologyError::Parse { source })?;
        let topology = raw.resolve()?;
        topology.validate()?;
        Ok(topology)
    }

    /// Read, parse and validate a TOML topology file.
    ///
    /// # Errors
    /// [`TopologyError::Read`] if the file cannot be read, else as [`Topology::from_toml_str`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TopologyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Write the topology as TOML, defaults spelled out.
    ///
    /// # Errors
    /// [`TopologyError::Serialize`] (not expected for a topology built by this crate).
    pub fn to_toml_string(&self) -> Result<String, TopologyError> {
        toml::to_string(self).map_err(|source| TopologyError::Serialize { source })
    }

    /// The namespace prefix of all namespaces of lab `lab`: `lime-<lab>-`.
    ///
    /// Lab names cannot contain `-`, so this prefix never matches another lab's namespaces.
    #[must_use]
    pub fn netns_prefix_of(lab: &str) -> String {
        format!("{NETNS_PREFIX}{lab}-")
    }

    /// The namespace name of node (switch or host) `node`: `lime-<lab>-<node>`.
    /// Does not check that the node exists.
    #[must_use]
    pub fn netns_name(&self, node: &str) -> String {
        format!("{}{node}", Self::netns_prefix_of(&self.name))
    }

    /// The physical switch called `name`.
    #[must_use]
    pub fn switch(&self, name: &str) -> Option<&SwitchSpec> {
        self.switches.iter().find(|s| s.name == name)
    }

    /// The host called `name`.
    #[must_use]
    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The virtual switch called `name`.
    #[must_use]
    pub fn vswitch(&self, name: &str) -> Option<&VSwitchSpec> {
        self.vswitches.iter().find(|v| v.name == name)
    }

    /// The ensemble named `name`.
    #[must_use]
    pub fn ensemble(&self, name: &str) -> Option<&EnsembleSpec> {
        self.ensembles.iter().find(|e| e.name == name)
    }

    /// What `lime migrate <name>` moves: an ensemble's virtual switches, in order, or
    /// the one virtual switch called `name`; `None` if it is neither.
    #[must_use]
    pub fn migration_unit(&self, name: &str) -> Option<Vec<String>> {
        if let Some(e) = self.ensemble(name) {
            return Some(e.vswitches.clone());
        }
        self.vswitch(name).map(|v| vec![v.name.clone()])
    }

    /// True if `name` is a switch or a host (a node with a namespace).
    #[must_use]
    pub fn is_node(&self, name: &str) -> bool {
        self.switch(name).is_some() || self.host(name).is_some()
    }

    /// All node names (switches first, then hosts), in file order.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.switches
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.hosts.iter().map(|h| h.name.as_str()))
    }

    /// The hosts attached to physical switch `switch`.
    pub fn hosts_on<'a>(&'a self, switch: &'a str) -> impl Iterator<Item = &'a HostSpec> {
        self.hosts.iter().filter(move |h| h.switch == switch)
    }

    /// The virtual link with an end on `vswitch` port `port`: its index, which end,
    /// that end and the other end.
    #[must_use]
    pub fn vlink_at(
        &self,
        vswitch: &str,
        port: u32,
    ) -> Option<(usize, VLinkSide, &VLinkEnd, &VLinkEnd)> {
        self.vlinks.iter().enumerate().find_map(|(i, l)| {
            let (end, other) = l.end(vswitch, port)?;
            let side = if std::ptr::eq(end, &l.a) {
                VLinkSide::A
            } else {
                VLinkSide::B
            };
            Some((i, side, end, other))
        })
    }

    /// The virtual link ends of virtual switch `vswitch`: (its port, the other end).
    pub fn vlink_ends_of<'a>(
        &'a self,
        vswitch: &'a str,
    ) -> impl Iterator<Item = (&'a VLinkEnd, &'a VLinkEnd)> + 'a {
        self.vlinks.iter().flat_map(move |l| {
            [(&l.a, &l.b), (&l.b, &l.a)]
                .into_iter()
                .filter(move |(e, _)| e.vswitch == vswitch)
        })
    }

    /// The virtual switch and port number a host is bound to, if any.
    #[must_use]
    pub fn vport_of(&self, host: &str) -> Option<(&VSwitchSpec, u32)> {
        self.vswitches
            .iter()
            .find_map(|v| v.ports.iter().find(|p| p.host == host).map(|p| (v, p.port)))
    }
}

/// The name of the underlay port towards `peer`: `u-<peer>`.
#[must_use]
pub fn underlay_ifname(peer: &str) -> String {
    format!("{UNDERLAY_PREFIX}{peer}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_demo_is_valid_and_as_documented() {
        let t = Topology::default_demo();
        t.validate().expect("default demo is valid");
        assert_eq!(t.netns_name("h3"), "lime-demo-h3");
        assert_eq!(
            t.hosts_on("s1")
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>(),
            ["h1", "h2"]
        );
        assert_eq!(
            t.hosts_on("s2")
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>(),
            ["h3", "h4"]
        );
        assert_eq!(t.host("h4").unwrap().mac.to_string(), "02:00:00:00:00:04");
        assert_eq!(t.host("h4").unwrap().ip.to_string(), "10.0.0.4/24");
        let (vs, port) = t.vport_of("h3").unwrap();
        assert_eq!(
            (vs.name.as_str(), vs.tenant.as_str(), vs.dpid, port),
            ("vs1", "t1", 1, 3)
        );
        assert_eq!(t.hosts_on("s3").count(), 0, "s3 is the migration target");
        assert_eq!(
            t.links,
            [
                LinkSpec {
                    a: "s1".into(),
                    b: "s2".into()
                },
                LinkSpec {
                    a: "s2".into(),
                    b: "s3".into()
                }
            ]
        );
    }

    #[test]
    fn a_switch_datapath_is_xdp_unless_tc_is_asked_for() {
        let t = Topology::from_toml_str(
            "name = \"t\"\n[[switch]]\nname = \"s1\"\n[[switch]]\nname = \"s2\"\ndatapath = \"tc\"\n",
        )
        .expect("parses");
        assert_eq!(t.switches[0].datapath, DatapathMode::Xdp);
        assert_eq!(t.switches[1].datapath, DatapathMode::Tc);
        // Written back, only the non-default mode is spelled out.
        let text = t.to_toml_string().expect("writes");
        assert_eq!(text.matches("datapath").count(), 1, "{text}");
        assert_eq!(Topology::from_toml_str(&text).expect("reads back"), t);
        let bad = Topology::from_toml_str(
            "name = \"t\"\n[[switch]]\nname = \"s1\"\ndatapath = \"dpdk\"\n",
        );
        assert!(bad.is_err(), "an unknown datapath is refused: {bad:?}");
    }

    #[test]
    fn parses_the_documented_example_with_defaults() {
        let t = Topology::from_toml_str(EXAMPLE).expect("example parses");
        assert_eq!(t.name, "demo");
        let h1 = t.host("h1").unwrap();
        assert_eq!(h1.mac.to_string(), "02:00:00:00:00:01");
        assert_eq!(h1.ipv6.unwrap().to_string(), "fd00::1/64");
        let h2 = t.host("h2").unwrap();
        assert_eq!(h2.mac, MacAddr::for_host_index(1).unwrap());
        assert_eq!(h2.ip.to_string(), "10.0.0.2/24");
        assert_eq!(h2.ipv6, None);
        assert_eq!(t.vswitches[0].dpid, 1);
        assert_eq!(t.vswitches[1].dpid, 2, "default dpid is index+1");
        assert_eq!(t.vswitches[0].controllers, ["tcp:127.0.0.1:6653"]);
        let l = &t.vlinks[0];
        assert_eq!(
            (l.a.vswitch.as_str(), l.a.port, l.a.switch.as_str()),
            ("vs1", 5, "s1"),
            "an end's switch defaults to its virtual switch's first host's"
        );
        assert_eq!((l.b.vswitch.as_str(), l.b.switch.as_str()), ("vs2", "s1"));
        let (i, side, end, other) = t.vlink_at("vs2", 5).unwrap();
        assert_eq!(
            (i, side, end.port, other.vswitch.as_str()),
            (0, VLinkSide::B, 5, "vs1")
        );
        assert_eq!(t.vlink_ends_of("vs1").count(), 1);
        assert!(t.vlink_at("vs1", 1).is_none());
    }

    #[test]
    fn vlink_port_names() {
        assert_eq!(vlink_ifname(0, 0, VLinkSide::A), "vl1a");
        assert_eq!(vlink_ifname(11, 0, VLinkSide::B), "vl12b");
        assert_eq!(vlink_ifname(0, 3, VLinkSide::B), "vl1b-3");
        let longest = vlink_ifname(MAX_VLINKS - 1, 999, VLinkSide::A);
        assert!(longest.len() <= MAX_IFNAME_LEN, "{longest}");
    }

    #[test]
    fn toml_round_trip() {
        for t in [
            Topology::default_demo(),
            Topology::from_toml_str(EXAMPLE).unwrap(),
        ] {
            let text = t.to_toml_string().unwrap();
            let back = Topology::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(back, t, "round trip through:\n{text}");
        }
    }

    #[test]
    fn fail_mode_defaults_to_secure_and_parses_standalone() {
        let t = Topology::from_toml_str(EXAMPLE).unwrap();
        assert!(t.vswitches.iter().all(|v| v.fail_mode == FailMode::Secure));
        let standalone =
            EXAMPLE.replace("[[vswitch]]\n", "[[vswitch]]\nfail_mode = \"standalone\"\n");
        let t = Topology::from_toml_str(&standalone).unwrap();
        assert_eq!(t.vswitches[0].fail_mode, FailMode::Standalone);
        let bad = EXAMPLE.replace("[[vswitch]]\n", "[[vswitch]]\nfail_mode = \"open\"\n");
        assert!(matches!(
            Topology::from_toml_str(&bad),
            Err(TopologyError::Parse { .. })
        ));
    }

    #[test]
    fn json_round_trip() {
        let t = Topology::from_toml_str(EXAMPLE).unwrap();
        let back: Topology = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn from_file_reads_and_reports_missing_file() {
        let dir = std::env::temp_dir().join(format!("lime-lab-topo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        assert_eq!(
            Topology::from_file(&path).unwrap(),
            Topology::from_toml_str(EXAMPLE).unwrap()
        );
        let missing = dir.join("missing.toml");
        assert!(
            matches!(Topology::from_file(&missing), Err(TopologyError::Read { path, .. }) if path == missing)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    pub(crate) const EXAMPLE: &str = r#"
name = "demo"

[[switch]]
name = "s1"
[[switch]]
name = "s2"

[[host]]
name = "h1"
switch = "s1"
mac = "02:00:00:00:00:01"
ip = "10.0.0.1/24"
ipv6 = "fd00::1/64"

[[host]]
name = "h2"
switch = "s2"

[[link]]
a = "s1"
b = "s2"

[[vswitch]]
name = "vs1"
tenant = "t1"
dpid = 1
controllers = ["tcp:127.0.0.1:6653"]
ports = [ { port = 1, host = "h1" } ]

[[vswitch]]
name = "vs2"
tenant = "t2"
controllers = ["ptcp:6654", "ptcp:6655:127.0.0.1"]
ports = [ { port = 7, host = "h2" } ]

[[vlink]]
a = { vswitch = "vs1", port = 5 }
b = { vswitch = "vs2", port = 5, switch = "s1" }
"#;
}

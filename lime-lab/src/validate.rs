//! The rules a [`Topology`] must follow before a lab is built from it.
//!
//! Names:
//! - the lab name is `[A-Za-z0-9_]+` (no `-`, so the prefix `lime-<lab>-` of its namespaces
//!   never matches another lab's);
//! - switch, host, virtual switch and tenant names are `[A-Za-z0-9][A-Za-z0-9_-]*`;
//!   switches and hosts share one name space (both are namespaces `lime-<lab>-<node>`,
//!   at most [`MAX_NETNS_NAME_LEN`] long);
//! - a host's name is also its port's interface name in the switch namespace, so it is at
//!   most [`MAX_IFNAME_LEN`] long and is neither `lo` nor `u-…` (underlay ports);
//! - a switch's name appears in its peers' underlay port names `u-<switch>`, so those are
//!   at most [`MAX_IFNAME_LEN`] long.
//!
//! Addresses: host MACs are unicast; no two hosts share a MAC, IPv4 or IPv6 address.
//!
//! Links: between two known, different switches; at most one per pair (the port names
//! `u-<peer>` would clash).
//!
//! Virtual switches: unique names and dpids; ports numbered 1..=0xffffff00 (OpenFlow 1.3
//! `OFPP_MAX`, §7.2.1), unique per virtual switch, bound to known hosts; a host is bound to
//! at most one virtual port overall; controllers parse as [`crate::Controller`].
//!
//! Ensembles: names as virtual switches', unique among ensembles and not the name of a
//! virtual switch (`lime migrate <name>` takes either); at least one member; members
//! are known virtual switches of one tenant, each listed once.
//!
//! Virtual links: at most [`MAX_VLINKS`]; each end on a known virtual switch, a port
//! number 1..=`OFPP_MAX` not bound to a host nor used by another link end, placed on a
//! known physical switch; the two ends on different virtual switches. Host names
//! `vl<digit>…` are reserved (virtual link ports in switch namespaces, [`VLINK_PREFIX`]).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::controller::Controller;
use crate::error::{NameKind, TopologyError};
use crate::topology::{
    MAX_IFNAME_LEN, MAX_NETNS_NAME_LEN, MAX_VETH_QUEUES, MAX_VLINKS, Topology, UNDERLAY_PREFIX,
    VLINK_PREFIX, underlay_ifname,
};

/// Largest OpenFlow 1.3 physical/virtual port number (`OFPP_MAX`).
pub const OFPP_MAX: u32 = 0xffff_ff00;

pub(crate) fn check_name(kind: NameKind, name: &str) -> Result<(), TopologyError> {
    let invalid = |reason| {
        Err(TopologyError::InvalidName {
            kind,
            name: name.to_owned(),
            reason,
        })
    };
    let Some(first) = name.bytes().next() else {
        return invalid("empty");
    };
    if kind == NameKind::Lab {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return invalid("only letters, digits and '_' are allowed");
        }
        return Ok(());
    }
    if !first.is_ascii_alphanumeric() {
        return invalid("must start with a letter or a digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return invalid("only letters, digits, '_' and '-' are allowed");
    }
    Ok(())
}

fn check_len(kind: NameKind, name: &str, max: usize) -> Result<(), TopologyError> {
    if name.len() > max {
        return Err(TopologyError::NameTooLong {
            kind,
            name: name.to_owned(),
            len: name.len(),
            max,
        });
    }
    Ok(())
}

/// Remember `value` for `owner`; fail with `err(first_owner)` if already seen.
fn first_seen<'a, K: std::hash::Hash + Eq>(
    seen: &mut HashMap<K, &'a str>,
    value: K,
    owner: &'a str,
    err: impl FnOnce(&'a str) -> TopologyError,
) -> Result<(), TopologyError> {
    match seen.entry(value) {
        Entry::Occupied(e) => Err(err(e.get())),
        Entry::Vacant(e) => {
            e.insert(owner);
            Ok(())
        }
    }
}

impl Topology {
    /// Check every rule listed in the [`validate`](crate::validate) module; report the
    /// first violation.
    ///
    /// # Errors
    /// The first [`TopologyError`] found, in file order.
    pub fn validate(&self) -> Result<(), TopologyError> {
        check_name(NameKind::Lab, &self.name)?;
        if !(1..=MAX_VETH_QUEUES).contains(&self.veth_queues) {
            return Err(TopologyError::VethQueues {
                value: self.veth_queues,
                max: MAX_VETH_QUEUES,
            });
        }
        self.check_nodes()?;
        self.check_links()?;
        self.check_vswitches()?;
        self.check_vlinks()?;
        self.check_ensembles()
    }

    fn check_ensembles(&self) -> Result<(), TopologyError> {
        let mut names = HashMap::new();
        for e in &self.ensembles {
            let name = e.name.as_str();
            check_name(NameKind::Ensemble, name)?;
            first_seen(&mut names, name, name, |_| TopologyError::DuplicateName {
                kind: NameKind::Ensemble,
                name: name.to_owned(),
            })?;
            if self.vswitch(name).is_some() {
                return Err(TopologyError::EnsembleNameTaken {
                    name: name.to_owned(),
                });
            }
            let Some(first) = e.vswitches.first() else {
                return Err(TopologyError::EmptyEnsemble {
                    ensemble: name.to_owned(),
                });
            };
            let mut members = HashSet::new();
            for m in &e.vswitches {
                let Some(vs) = self.vswitch(m) else {
                    return Err(TopologyError::EnsembleUnknownVSwitch {
                        ensemble: name.to_owned(),
                        vswitch: m.clone(),
                    });
                };
                if !members.insert(m.as_str()) {
                    return Err(TopologyError::EnsembleDuplicateMember {
                        ensemble: name.to_owned(),
                        vswitch: m.clone(),
                    });
                }
                let lead = self.vswitch(first).expect("checked first");
                if vs.tenant != lead.tenant {
                    return Err(TopologyError::EnsembleTenants {
                        ensemble: name.to_owned(),
                        first: first.clone(),
                        first_tenant: lead.tenant.clone(),
                        second: m.clone(),
                        second_tenant: vs.tenant.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn check_vlinks(&self) -> Result<(), TopologyError> {
        if self.vlinks.len() > MAX_VLINKS {
            return Err(TopologyError::TooManyVLinks {
                count: self.vlinks.len(),
                max: MAX_VLINKS,
            });
        }
        let mut ends: HashMap<(&str, u32), usize> = HashMap::new();
        for (i, l) in self.vlinks.iter().enumerate() {
            let link = i + 1;
            for end in [&l.a, &l.b] {
                let Some(vs) = self.vswitch(&end.vswitch) else {
                    return Err(TopologyError::UnknownVSwitch {
                        link,
                        vswitch: end.vswitch.clone(),
                    });
                };
                if self.switch(&end.switch).is_none() {
                    return Err(TopologyError::UnknownSwitch {
                        referrer: format!("virtual link {link}"),
                        switch: end.switch.clone(),
                    });
                }
                if end.port == 0 || end.port > OFPP_MAX {
                    return Err(TopologyError::BadPortNumber {
                        vswitch: vs.name.clone(),
                        port: end.port,
                    });
                }
                let taken = |by: String| TopologyError::VLinkPortTaken {
                    link,
                    vswitch: vs.name.clone(),
                    port: end.port,
                    by,
                };
                if let Some(p) = vs.ports.iter().find(|p| p.port == end.port) {
                    return Err(taken(format!("bound to host {:?}", p.host)));
                }
                if let Some(first) = ends.insert((end.vswitch.as_str(), end.port), link) {
                    return Err(taken(format!("an end of virtual link {first}")));
                }
            }
            if l.a.vswitch == l.b.vswitch {
                return Err(TopologyError::VLinkSameVSwitch {
                    link,
                    vswitch: l.a.vswitch.clone(),
                });
            }
            let mode = |sw: &str| self.switch(sw).map(|s| s.datapath);
            if mode(&l.a.switch) != mode(&l.b.switch) {
                return Err(TopologyError::VLinkMixedDatapaths {
                    link,
                    a: l.a.switch.clone(),
                    b: l.b.switch.clone(),
                });
            }
        }
        Ok(())
    }

    fn check_nodes<'a>(&'a self) -> Result<(), TopologyError> {
        let mut nodes: HashSet<&str> = HashSet::new();
        let mut add_node = |kind, name: &'a str| {
            check_name(kind, name)?;
            check_len(NameKind::Netns, &self.netns_name(name), MAX_NETNS_NAME_LEN)?;
            if !nodes.insert(name) {
                return Err(TopologyError::DuplicateName {
                    kind,
                    name: name.to_owned(),
                });
            }
            Ok(())
        };
        for switch in &self.switches {
            add_node(NameKind::Switch, &switch.name)?;
            check_len(
                NameKind::Interface,
                &underlay_ifname(&switch.name),
                MAX_IFNAME_LEN,
            )?;
        }
        let (mut macs, mut ips, mut ipv6s) = (HashMap::new(), HashMap::new(), HashMap::new());
        for host in &self.hosts {
            let name = host.name.as_str();
            add_node(NameKind::Host, name)?;
            check_len(NameKind::Interface, name, MAX_IFNAME_LEN)?;
            let vlink_like = name
                .strip_prefix(VLINK_PREFIX)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            if name == "lo" || name.starts_with(UNDERLAY_PREFIX) || vlink_like {
                return Err(TopologyError::InvalidName {
                    kind: NameKind::Host,
                    name: name.to_owned(),
                    reason: "reserved in switch namespaces (\"lo\", \"u-...\" and \"vl<digit>...\" are taken)",
                });
            }
            if self.switch(&host.switch).is_none() {
                return Err(TopologyError::UnknownSwitch {
                    referrer: format!("host {name:?}"),
                    switch: host.switch.clone(),
                });
            }
            if !host.mac.is_unicast() {
                return Err(TopologyError::MacNotUnicast {
                    host: name.to_owned(),
                    value: host.mac.to_string(),
                });
            }
            let dup = |field: &'static str, value: String| {
                move |first: &str| TopologyError::DuplicateAddress {
                    field,
                    value,
                    first: first.to_owned(),
                    second: name.to_owned(),
                }
            };
            first_seen(&mut macs, host.mac, name, dup("mac", host.mac.to_string()))?;
            first_seen(
                &mut ips,
                host.ip.addr,
                name,
                dup("ip", host.ip.addr.to_string()),
            )?;
            if let Some(v6) = host.ipv6 {
                first_seen(&mut ipv6s, v6.addr, name, dup("ipv6", v6.addr.to_string()))?;
            }
        }
        Ok(())
    }

    fn check_links(&self) -> Result<(), TopologyError> {
        let mut pairs = HashMap::new();
        for link in &self.links {
            for end in [&link.a, &link.b] {
                if self.switch(end).is_none() {
                    return Err(TopologyError::UnknownSwitch {
                        referrer: format!("link {}-{}", link.a, link.b),
                        switch: end.clone(),
                    });
                }
            }
            if link.a == link.b {
                return Err(TopologyError::SelfLink {
                    switch: link.a.clone(),
                });
            }
            let key = if link.a < link.b {
                (&link.a, &link.b)
            } else {
                (&link.b, &link.a)
            };
            first_seen(&mut pairs, key, "", |_| TopologyError::DuplicateLink {
                a: link.a.clone(),
                b: link.b.clone(),
            })?;
        }
        Ok(())
    }

    fn check_vswitches(&self) -> Result<(), TopologyError> {
        let mut names = HashMap::new();
        let mut dpids = HashMap::new();
        let mut bound: HashMap<&str, String> = HashMap::new();
        for vs in &self.vswitches {
            let name = vs.name.as_str();
            check_name(NameKind::VSwitch, name)?;
            first_seen(&mut names, name, name, |_| TopologyError::DuplicateName {
                kind: NameKind::VSwitch,
                name: name.to_owned(),
            })?;
            check_name(NameKind::Tenant, &vs.tenant)?;
            first_seen(&mut dpids, vs.dpid, name, |first| {
                TopologyError::DuplicateDpid {
                    dpid: vs.dpid,
                    first: first.to_owned(),
                    second: name.to_owned(),
                }
            })?;
            for controller in &vs.controllers {
                controller.parse::<Controller>().map_err(|reason| {
                    TopologyError::BadController {
                        vswitch: name.to_owned(),
                        value: controller.clone(),
                        reason,
                    }
                })?;
            }
            let mut ports = HashMap::new();
            for p in &vs.ports {
                if p.port == 0 || p.port > OFPP_MAX {
                    return Err(TopologyError::BadPortNumber {
                        vswitch: name.to_owned(),
                        port: p.port,
                    });
                }
                first_seen(&mut ports, p.port, name, |_| TopologyError::DuplicatePort {
                    vswitch: name.to_owned(),
                    port: p.port,
                })?;
                if self.host(&p.host).is_none() {
                    return Err(TopologyError::UnknownHost {
                        vswitch: name.to_owned(),
                        port: p.port,
                        host: p.host.clone(),
                    });
                }
                let here = format!("{name}:{}", p.port);
                match bound.entry(p.host.as_str()) {
                    Entry::Occupied(e) => {
                        return Err(TopologyError::HostOnTwoPorts {
                            host: p.host.clone(),
                            first: e.get().clone(),
                            second: here,
                        });
                    }
                    Entry::Vacant(e) => {
                        e.insert(here);
                    }
                }
            }
            self.check_one_datapath_mode(vs)?;
        }
        Ok(())
    }

    /// A virtual switch's hosts all sit on physical switches of one datapath mode: a host
    /// on a TC-mode switch keeps its checksum offload, and an XDP-mode switch receiving
    /// its frames through the tunnel could not finish the partial checksums (XDP frames
    /// carry no checksum state).
    pub(crate) fn check_one_datapath_mode(
        &self,
        vs: &crate::topology::VSwitchSpec,
    ) -> Result<(), TopologyError> {
        let mut first: Option<&crate::topology::SwitchSpec> = None;
        for p in &vs.ports {
            let Some(sw) = self.host(&p.host).and_then(|h| self.switch(&h.switch)) else {
                continue;
            };
            match first {
                Some(f) if f.datapath != sw.datapath => {
                    return Err(TopologyError::MixedDatapaths {
                        vswitch: vs.name.clone(),
                        a: f.name.clone(),
                        b: sw.name.clone(),
                    });
                }
                Some(_) => {}
                None => first = Some(sw),
            }
        }
        Ok(())
    }
}

impl crate::topology::VSwitchSpec {
    /// The parsed controller targets.
    ///
    /// # Errors
    /// [`TopologyError::BadController`] (not for a validated topology).
    pub fn parsed_controllers(&self) -> Result<Vec<Controller>, TopologyError> {
        self.controllers
            .iter()
            .map(|c| {
                c.parse().map_err(|reason| TopologyError::BadController {
                    vswitch: self.name.clone(),
                    value: c.clone(),
                    reason,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::topology::{HostSpec, LinkSpec, SwitchSpec, VPortSpec, VSwitchSpec};

    /// Parse a topology made of the demo's header plus `extra`, expecting an error.
    fn err(toml: &str) -> TopologyError {
        match Topology::from_toml_str(toml) {
            Ok(t) => panic!("expected an error, got {t:?} from:\n{toml}"),
            Err(e) => e,
        }
    }

    const BASE: &str = "name = \"t\"\n[[switch]]\nname = \"s1\"\n[[switch]]\nname = \"s2\"\n";

    fn with(extra: &str) -> String {
        format!("{BASE}{extra}")
    }

    #[test]
    fn veth_queues_default_range_and_round_trip() {
        let t = Topology::from_toml_str(BASE).expect("base");
        assert_eq!(t.veth_queues, 1, "default");
        for bad in [0, MAX_VETH_QUEUES + 1] {
            let e = err(&format!("veth_queues = {bad}\n{BASE}"));
            assert!(
                matches!(e, TopologyError::VethQueues { value, .. } if value == bad),
                "{e}"
            );
        }
        let t = Topology::from_toml_str(&format!("veth_queues = 2\n{BASE}")).expect("2");
        assert_eq!(t.veth_queues, 2);
        let back = Topology::from_toml_str(&t.to_toml_string().expect("toml")).expect("back");
        assert_eq!(back, t);
    }

    #[test]
    fn malformed_toml_and_unknown_fields() {
        assert!(matches!(err("name = "), TopologyError::Parse { .. }));
        assert!(matches!(
            err(&with(
                "[[host]]\nname=\"h1\"\nswitch=\"s1\"\ncolour=\"red\"\n"
            )),
            TopologyError::Parse { .. }
        ));
        assert!(
            matches!(
                err("[[switch]]\nname=\"s1\"\n"),
                TopologyError::Parse { .. }
            ),
            "name is required"
        );
        assert!(matches!(
            err(&with("[[swich]]\nname=\"x\"\n")),
            TopologyError::Parse { .. }
        ));
    }

    #[test]
    fn invalid_names() {
        let e = err("name = \"my-lab\"\n");
        assert!(
            matches!(
                e,
                TopologyError::InvalidName {
                    kind: NameKind::Lab,
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            err("name = \"\"\n"),
            TopologyError::InvalidName {
                kind: NameKind::Lab,
                reason: "empty",
                ..
            }
        ));
        let e = err("name = \"t\"\n[[switch]]\nname = \"s/1\"\n");
        assert!(
            matches!(
                e,
                TopologyError::InvalidName {
                    kind: NameKind::Switch,
                    ..
                }
            ),
            "{e}"
        );
        let e = err("name = \"t\"\n[[switch]]\nname = \"-s\"\n");
        assert!(
            matches!(
                e,
                TopologyError::InvalidName {
                    kind: NameKind::Switch,
                    ..
                }
            ),
            "{e}"
        );
        for reserved in ["lo", "u-s2"] {
            let e = err(&with(&format!(
                "[[host]]\nname=\"{reserved}\"\nswitch=\"s1\"\n"
            )));
            assert!(
                matches!(
                    e,
                    TopologyError::InvalidName {
                        kind: NameKind::Host,
                        ..
                    }
                ),
                "{e}"
            );
        }
        let e = err(&with("[[vswitch]]\nname=\"v s\"\ntenant=\"t\"\n"));
        assert!(
            matches!(
                e,
                TopologyError::InvalidName {
                    kind: NameKind::VSwitch,
                    ..
                }
            ),
            "{e}"
        );
        let e = err(&with("[[vswitch]]\nname=\"vs\"\ntenant=\"\"\n"));
        assert!(
            matches!(
                e,
                TopologyError::InvalidName {
                    kind: NameKind::Tenant,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn names_too_long() {
        let e = err(&with(
            "[[host]]\nname=\"h234567890123456\"\nswitch=\"s1\"\n",
        ));
        assert!(
            matches!(
                e,
                TopologyError::NameTooLong {
                    kind: NameKind::Interface,
                    len: 16,
                    max: 15,
                    ..
                }
            ),
            "{e}"
        );
        // A 14-character switch name makes its peers' port "u-" + 14 = 16 characters.
        let e = err("name = \"t\"\n[[switch]]\nname = \"s2345678901234\"\n");
        assert!(
            matches!(
                e,
                TopologyError::NameTooLong {
                    kind: NameKind::Interface,
                    ..
                }
            ),
            "{e}"
        );
        let long_lab = "l".repeat(60);
        let e = err(&format!(
            "name = \"{long_lab}\"\n[[switch]]\nname = \"s1\"\n"
        ));
        match e {
            TopologyError::NameTooLong {
                kind: NameKind::Netns,
                name,
                max,
                ..
            } => {
                assert_eq!(name, format!("lime-{long_lab}-s1"));
                assert_eq!(max, MAX_NETNS_NAME_LEN);
            }
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn duplicate_names() {
        let e = err("name = \"t\"\n[[switch]]\nname = \"s1\"\n[[switch]]\nname = \"s1\"\n");
        assert!(
            matches!(e, TopologyError::DuplicateName { kind: NameKind::Switch, ref name } if name == "s1"),
            "{e}"
        );
        let e = err(&with("[[host]]\nname=\"s2\"\nswitch=\"s1\"\n"));
        assert!(
            matches!(
                e,
                TopologyError::DuplicateName {
                    kind: NameKind::Host,
                    ..
                }
            ),
            "hosts and switches share names: {e}"
        );
        let e = err(&with(
            "[[vswitch]]\nname=\"v\"\ntenant=\"t\"\n[[vswitch]]\nname=\"v\"\ntenant=\"t\"\n",
        ));
        assert!(
            matches!(
                e,
                TopologyError::DuplicateName {
                    kind: NameKind::VSwitch,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_references() {
        let e = err(&with("[[host]]\nname=\"h1\"\nswitch=\"s9\"\n"));
        assert!(
            matches!(e, TopologyError::UnknownSwitch { ref switch, .. } if switch == "s9"),
            "{e}"
        );
        let e = err(&with("[[link]]\na=\"s1\"\nb=\"s9\"\n"));
        assert!(
            matches!(e, TopologyError::UnknownSwitch { ref switch, .. } if switch == "s9"),
            "{e}"
        );
        let e = err(&with(
            "[[vswitch]]\nname=\"v\"\ntenant=\"t\"\nports=[{port=1, host=\"h9\"}]\n",
        ));
        assert!(
            matches!(e, TopologyError::UnknownHost { port: 1, ref host, .. } if host == "h9"),
            "{e}"
        );
    }

    #[test]
    fn bad_addresses() {
        let e = err(&with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\nmac=\"02:00:00:00:01\"\n",
        ));
        assert!(
            matches!(e, TopologyError::BadMac { ref value, .. } if value == "02:00:00:00:01"),
            "{e}"
        );
        let e = err(&with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\nmac=\"01:00:5e:00:00:01\"\n",
        ));
        assert!(matches!(e, TopologyError::MacNotUnicast { .. }), "{e}");
        let e = err(&with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\nip=\"10.0.0.300/24\"\n",
        ));
        assert!(matches!(e, TopologyError::BadIp { field: "ip", .. }), "{e}");
        let e = err(&with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\nip=\"10.0.0.3\"\n",
        ));
        assert!(matches!(e, TopologyError::BadIp { field: "ip", .. }), "{e}");
        let e = err(&with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\nipv6=\"10.0.0.3/24\"\n",
        ));
        assert!(
            matches!(e, TopologyError::BadIp { field: "ipv6", .. }),
            "{e}"
        );
    }

    #[test]
    fn duplicate_addresses() {
        let e = err(&with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\nmac=\"02:00:00:00:00:02\"\n[[host]]\nname=\"h2\"\nswitch=\"s1\"\n",
        ));
        assert!(
            matches!(e, TopologyError::DuplicateAddress { field: "mac", ref first, ref second, .. } if first == "h1" && second == "h2"),
            "explicit MAC clashes with h2's default: {e}"
        );
        let e = err(&with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\nip=\"10.0.0.2/16\"\n[[host]]\nname=\"h2\"\nswitch=\"s1\"\n",
        ));
        assert!(
            matches!(e, TopologyError::DuplicateAddress { field: "ip", .. }),
            "{e}"
        );
        let e = err(&with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\nipv6=\"fd00::1/64\"\n[[host]]\nname=\"h2\"\nswitch=\"s1\"\nipv6=\"fd00::1/120\"\n",
        ));
        assert!(
            matches!(e, TopologyError::DuplicateAddress { field: "ipv6", .. }),
            "{e}"
        );
    }

    #[test]
    fn no_default_address_beyond_the_scheme() {
        let mut t = Topology::default_demo();
        assert!(matches!(
            HostSpec::with_defaults("h", "s1", 254),
            Err(TopologyError::NoDefaultAddress { field: "ip", .. })
        ));
        assert!(matches!(
            HostSpec::with_defaults("h", "s1", 70_000),
            Err(TopologyError::NoDefaultAddress { field: "mac", .. })
        ));
        // From a file: 255 hosts, the last one without explicit addresses.
        let mut toml = String::from(BASE);
        for i in 0..255 {
            writeln!(toml, "[[host]]\nname=\"h{i}\"\nswitch=\"s1\"").unwrap();
        }
        let e = err(&toml);
        assert!(
            matches!(
                e,
                TopologyError::NoDefaultAddress {
                    index: 254,
                    field: "ip",
                    ..
                }
            ),
            "{e}"
        );
        // With an explicit address it is fine.
        toml.push_str("ip=\"10.0.1.1/16\"\n");
        Topology::from_toml_str(&toml).expect("explicit ip beyond the default scheme");
        t.hosts[0].ip = t.hosts[1].ip;
        assert!(matches!(
            t.validate(),
            Err(TopologyError::DuplicateAddress { .. })
        ));
    }

    #[test]
    fn bad_links() {
        let e = err(&with("[[link]]\na=\"s1\"\nb=\"s1\"\n"));
        assert!(matches!(e, TopologyError::SelfLink { .. }), "{e}");
        let e = err(&with(
            "[[link]]\na=\"s1\"\nb=\"s2\"\n[[link]]\na=\"s2\"\nb=\"s1\"\n",
        ));
        assert!(matches!(e, TopologyError::DuplicateLink { .. }), "{e}");
    }

    #[test]
    fn bad_vswitches() {
        let hosts = "[[host]]\nname=\"h1\"\nswitch=\"s1\"\n[[host]]\nname=\"h2\"\nswitch=\"s2\"\n";
        let e = err(&with(&format!(
            "{hosts}[[vswitch]]\nname=\"v\"\ntenant=\"t\"\nports=[{{port=1, host=\"h1\"}}, {{port=1, host=\"h2\"}}]\n"
        )));
        assert!(
            matches!(e, TopologyError::DuplicatePort { port: 1, .. }),
            "{e}"
        );
        for port in [0, OFPP_MAX + 1] {
            let e = err(&with(&format!(
                "{hosts}[[vswitch]]\nname=\"v\"\ntenant=\"t\"\nports=[{{port={port}, host=\"h1\"}}]\n"
            )));
            assert!(matches!(e, TopologyError::BadPortNumber { .. }), "{e}");
        }
        let e = err(&with(&format!(
            "{hosts}[[vswitch]]\nname=\"v\"\ntenant=\"t\"\nports=[{{port=1, host=\"h1\"}}, {{port=2, host=\"h1\"}}]\n"
        )));
        assert!(
            matches!(e, TopologyError::HostOnTwoPorts { ref first, ref second, .. } if first == "v:1" && second == "v:2"),
            "{e}"
        );
        let e = err(&with(&format!(
            "{hosts}[[vswitch]]\nname=\"v\"\ntenant=\"t\"\nports=[{{port=1, host=\"h1\"}}]\n[[vswitch]]\nname=\"w\"\ntenant=\"u\"\nports=[{{port=1, host=\"h1\"}}]\n"
        )));
        assert!(matches!(e, TopologyError::HostOnTwoPorts { .. }), "{e}");
        let e = err(&with(
            "[[vswitch]]\nname=\"v\"\ntenant=\"t\"\ndpid=2\n[[vswitch]]\nname=\"w\"\ntenant=\"t\"\n",
        ));
        assert!(
            matches!(e, TopologyError::DuplicateDpid { dpid: 2, .. }),
            "default dpid 2 clashes: {e}"
        );
        let e = err(&with(
            "[[vswitch]]\nname=\"v\"\ntenant=\"t\"\ncontrollers=[\"tcp:1.2.3.4\"]\n",
        ));
        assert!(matches!(e, TopologyError::BadController { .. }), "{e}");
    }

    #[test]
    fn bad_vlinks() {
        let base = with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\n[[host]]\nname=\"h2\"\nswitch=\"s2\"\n\
             [[vswitch]]\nname=\"v\"\ntenant=\"t\"\nports=[{port=1, host=\"h1\"}]\n\
             [[vswitch]]\nname=\"w\"\ntenant=\"t\"\nports=[{port=1, host=\"h2\"}]\n\
             [[vswitch]]\nname=\"empty\"\ntenant=\"t\"\n",
        );
        let link = |a: &str, b: &str| format!("{base}[[vlink]]\na = {{ {a} }}\nb = {{ {b} }}\n");
        let t = Topology::from_toml_str(&link("vswitch=\"v\", port=5", "vswitch=\"w\", port=5"))
            .expect("a valid link");
        assert_eq!(
            (t.vlinks[0].a.switch.as_str(), t.vlinks[0].b.switch.as_str()),
            ("s1", "s2")
        );
        let e = err(&link(
            "vswitch=\"x\", port=5, switch=\"s1\"",
            "vswitch=\"w\", port=5",
        ));
        assert!(
            matches!(e, TopologyError::UnknownVSwitch { link: 1, ref vswitch } if vswitch == "x"),
            "{e}"
        );
        let e = err(&link(
            "vswitch=\"v\", port=5, switch=\"s9\"",
            "vswitch=\"w\", port=5",
        ));
        assert!(
            matches!(e, TopologyError::UnknownSwitch { ref switch, .. } if switch == "s9"),
            "{e}"
        );
        let e = err(&link("vswitch=\"v\", port=1", "vswitch=\"w\", port=5"));
        assert!(
            matches!(e, TopologyError::VLinkPortTaken { port: 1, ref by, .. } if by.contains("h1")),
            "{e}"
        );
        let e = err(&link("vswitch=\"v\", port=5", "vswitch=\"v\", port=6"));
        assert!(matches!(e, TopologyError::VLinkSameVSwitch { .. }), "{e}");
        let e = err(&link("vswitch=\"v\", port=0", "vswitch=\"w\", port=5"));
        assert!(
            matches!(e, TopologyError::BadPortNumber { port: 0, .. }),
            "{e}"
        );
        let e = err(&link("vswitch=\"empty\", port=5", "vswitch=\"w\", port=5"));
        assert!(
            matches!(e, TopologyError::VLinkNoSwitch { link: 1, .. }),
            "{e}"
        );
        Topology::from_toml_str(&link(
            "vswitch=\"empty\", port=5, switch=\"s2\"",
            "vswitch=\"w\", port=5",
        ))
        .expect("placed explicitly");
        let two = format!(
            "{}[[vlink]]\na = {{ vswitch=\"w\", port=5 }}\nb = {{ vswitch=\"empty\", port=1, switch=\"s1\" }}\n",
            link("vswitch=\"v\", port=5", "vswitch=\"w\", port=5")
        );
        let e = err(&two);
        assert!(
            matches!(e, TopologyError::VLinkPortTaken { link: 2, port: 5, ref by, .. } if by == "an end of virtual link 1"),
            "{e}"
        );
        // s2 in TC mode, s1 in XDP mode: a virtual switch over both, or a link between
        // them, is refused.
        let e = err(&base
            .replacen("name = \"s2\"", "name = \"s2\"\ndatapath = \"tc\"", 1)
            .replace(
                "ports=[{port=1, host=\"h2\"}]",
                "ports=[{port=1, host=\"h2\"}, {port=2, host=\"h1\"}]",
            )
            .replace("ports=[{port=1, host=\"h1\"}]", "ports=[]"));
        assert!(
            matches!(e, TopologyError::MixedDatapaths { ref vswitch, .. } if vswitch == "w"),
            "{e}"
        );
        let mixed = link("vswitch=\"v\", port=5", "vswitch=\"w\", port=5").replacen(
            "name = \"s2\"",
            "name = \"s2\"\ndatapath = \"tc\"",
            1,
        );
        assert!(mixed.contains("datapath"), "{mixed}");
        let e = err(&mixed);
        assert!(
            matches!(e, TopologyError::VLinkMixedDatapaths { link: 1, .. }),
            "{e}"
        );
        let e = err(&with("[[host]]\nname=\"vl1a\"\nswitch=\"s1\"\n"));
        assert!(
            matches!(
                e,
                TopologyError::InvalidName {
                    kind: NameKind::Host,
                    ..
                }
            ),
            "{e}"
        );
        Topology::from_toml_str(&with("[[host]]\nname=\"vlan\"\nswitch=\"s1\"\n"))
            .expect("only vl<digit> is reserved");
        let mut t =
            Topology::from_toml_str(&link("vswitch=\"v\", port=5", "vswitch=\"w\", port=5"))
                .unwrap();
        let l = t.vlinks[0].clone();
        t.vlinks = vec![l; MAX_VLINKS + 1];
        assert!(matches!(
            t.validate(),
            Err(TopologyError::TooManyVLinks { .. })
        ));
    }

    #[test]
    fn ensembles() {
        let base = with(
            "[[host]]\nname=\"h1\"\nswitch=\"s1\"\n[[host]]\nname=\"h2\"\nswitch=\"s2\"\n\
             [[vswitch]]\nname=\"v\"\ntenant=\"t\"\nports=[{port=1, host=\"h1\"}]\n\
             [[vswitch]]\nname=\"w\"\ntenant=\"t\"\nports=[{port=1, host=\"h2\"}]\n\
             [[vswitch]]\nname=\"other\"\ntenant=\"u\"\n",
        );
        let ens = |name: &str, members: &str| {
            format!("{base}[[ensemble]]\nname = \"{name}\"\nvswitches = [{members}]\n")
        };
        let t = Topology::from_toml_str(&ens("web", "\"w\", \"v\"")).expect("valid");
        assert_eq!(
            t.migration_unit("web"),
            Some(vec!["w".to_owned(), "v".to_owned()])
        );
        assert_eq!(t.migration_unit("v"), Some(vec!["v".to_owned()]));
        assert_eq!(t.migration_unit("nope"), None);
        let back = Topology::from_toml_str(&t.to_toml_string().expect("toml")).expect("again");
        assert_eq!(back.ensembles, t.ensembles, "round trip");
        let e = err(&ens("v", "\"w\""));
        assert!(
            matches!(e, TopologyError::EnsembleNameTaken { ref name } if name == "v"),
            "{e}"
        );
        let e = err(&ens("web", ""));
        assert!(matches!(e, TopologyError::EmptyEnsemble { .. }), "{e}");
        let e = err(&ens("web", "\"v\", \"x\""));
        assert!(
            matches!(e, TopologyError::EnsembleUnknownVSwitch { ref vswitch, .. } if vswitch == "x"),
            "{e}"
        );
        let e = err(&ens("web", "\"v\", \"w\", \"v\""));
        assert!(
            matches!(e, TopologyError::EnsembleDuplicateMember { ref vswitch, .. } if vswitch == "v"),
            "{e}"
        );
        let e = err(&ens("web", "\"v\", \"other\""));
        assert!(
            matches!(e, TopologyError::EnsembleTenants { ref second_tenant, .. } if second_tenant == "u"),
            "{e}"
        );
        let e = err(&ens("-bad", "\"v\""));
        assert!(
            matches!(
                e,
                TopologyError::InvalidName {
                    kind: NameKind::Ensemble,
                    ..
                }
            ),
            "{e}"
        );
        let twice = format!(
            "{}[[ensemble]]\nname = \"web\"\nvswitches = [\"w\"]\n",
            ens("web", "\"v\"")
        );
        let e = err(&twice);
        assert!(
            matches!(
                e,
                TopologyError::DuplicateName {
                    kind: NameKind::Ensemble,
                    ..
                }
            ),
            "{e}"
        );
        let e = err(&format!(
            "{base}[[ensemble]]\nname = \"x\"\nmembers = [\"v\"]\n"
        ));
        assert!(
            matches!(e, TopologyError::Parse { .. }),
            "unknown field: {e}"
        );
    }

    #[test]
    fn built_in_code_is_validated_too() {
        let t = Topology {
            name: "t".into(),
            switches: vec![SwitchSpec::named("s1")],
            hosts: vec![HostSpec::with_defaults("h1", "s1", 0).unwrap()],
            links: vec![LinkSpec {
                a: "s1".into(),
                b: "s1".into(),
            }],
            vswitches: vec![VSwitchSpec {
                name: "v".into(),
                tenant: "t".into(),
                dpid: 1,
                controllers: vec!["ptcp:6653".into()],
                fail_mode: crate::FailMode::Secure,
                ports: vec![VPortSpec {
                    port: 1,
                    host: "h1".into(),
                }],
            }],
            vlinks: Vec::new(),
            ensembles: Vec::new(),
            veth_queues: 1,
        };
        assert!(matches!(t.validate(), Err(TopologyError::SelfLink { .. })));
        assert_eq!(
            t.vswitches[0].parsed_controllers().unwrap(),
            [Controller::Ptcp {
                port: 6653,
                addr: None
            }]
        );
    }
}

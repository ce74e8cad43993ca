//! The resolved state of a running lab: the topology plus what the kernel made of it
//! (namespace names, interface names, ifindexes, MACs), and its JSON persistence so a
//! later process (`lime lab down`, `lime status`) can find a running lab.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::addr::{Ipv4Cidr, Ipv6Cidr, MacAddr};
use crate::error::LabError;
use crate::topology::Topology;

/// Directory under which [`LabState::default_dir`] puts each lab's state.
pub const STATE_ROOT: &str = "/run/lime";

/// File name of the state inside its directory.
pub const STATE_FILE: &str = "lab.json";

/// What a physical switch port leads to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PortKind {
    /// The veth towards a host (the port is named after the host).
    Host {
        /// The host.
        host: String,
    },
    /// An underlay link towards another physical switch (named `u-<peer>`).
    Underlay {
        /// The switch at the other end.
        peer: String,
    },
    /// One end of a virtual link's veth pair (named `vl<N>a` / `vl<N>b`, see
    /// [`crate::vlink_ifname`]): virtual port `port` of `vswitch`; the other end is
    /// `peer_port` of `peer_vswitch`.
    VLink {
        /// The virtual link's index in the topology's `vlinks`.
        link: usize,
        /// The veth pair's generation (a new one each time an end moves).
        generation: u32,
        /// The virtual switch of this end.
        vswitch: String,
        /// Its virtual port.
        port: u32,
        /// The virtual switch of the other end.
        peer_vswitch: String,
        /// Its virtual port.
        peer_port: u32,
    },
}

/// A veth pair realising a virtual link, with the physical switch of each end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VLinkPair {
    /// The virtual link's index in the topology's `vlinks`.
    pub link: usize,
    /// Its generation: 0 when the lab is built, one more for each pair made when an end
    /// moves (the newest pair is the link's current one).
    pub generation: u32,
    /// The physical switch holding the `a` end.
    pub a_switch: String,
    /// The physical switch holding the `b` end.
    pub b_switch: String,
}

/// A port of a physical switch: an interface in the switch's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchPort {
    /// The physical switch.
    pub switch: String,
    /// Its namespace.
    pub netns: String,
    /// Interface name inside the namespace.
    pub ifname: String,
    /// Interface index inside the namespace.
    pub ifindex: u32,
    /// The interface's MAC address (chosen by the kernel).
    pub mac: MacAddr,
    /// The interface's MTU.
    pub mtu: u32,
    /// What it leads to.
    pub kind: PortKind,
}

/// A host's interface, inside the host's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIface {
    /// The host.
    pub host: String,
    /// Its namespace.
    pub netns: String,
    /// Interface name ([`crate::HOST_IFNAME`]).
    pub ifname: String,
    /// Interface index inside the host namespace (changes when the host moves).
    pub ifindex: u32,
    /// MAC address (kept when the host moves).
    pub mac: MacAddr,
    /// IPv4 address (kept when the host moves).
    pub ip: Ipv4Cidr,
    /// IPv6 address, if any (kept when the host moves).
    pub ipv6: Option<Ipv6Cidr>,
    /// The physical switch it is currently attached to.
    pub switch: String,
}

/// A lab's topology and its kernel objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The topology; hosts' `switch` fields follow [`crate::Lab::move_host`].
    pub topology: Topology,
    /// The namespaces the lab created, switches first, then hosts.
    pub namespaces: Vec<String>,
    /// Each host's interface, in topology order.
    pub hosts: Vec<HostIface>,
    /// Every physical switch port: per switch in topology order, host ports, underlay
    /// ports, then virtual link ends.
    pub ports: Vec<SwitchPort>,
    /// The veth pairs of virtual links, in link order (two for a link while one of its
    /// ends moves).
    #[serde(default)]
    pub vlink_pairs: Vec<VLinkPair>,
}

impl LabState {
    /// The lab name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.topology.name
    }

    /// The namespace of node (switch or host) `node`.
    ///
    /// # Errors
    /// [`LabError::UnknownNode`] if the topology has no such node.
    pub fn netns(&self, node: &str) -> Result<String, LabError> {
        if self.topology.is_node(node) {
            Ok(self.topology.netns_name(node))
        } else {
            Err(LabError::UnknownNode {
                lab: self.name().to_owned(),
                node: node.to_owned(),
            })
        }
    }

    /// The interface of host `host`.
    #[must_use]
    pub fn host(&self, host: &str) -> Option<&HostIface> {
        self.hosts.iter().find(|h| h.host == host)
    }

    /// The ports of physical switch `switch`.
    pub fn switch_ports<'a>(&'a self, switch: &'a str) -> impl Iterator<Item = &'a SwitchPort> {
        self.ports.iter().filter(move |p| p.switch == switch)
    }

    /// The switch port host `host` is attached to.
    #[must_use]
    pub fn host_port(&self, host: &str) -> Option<&SwitchPort> {
        self.ports
            .iter()
            .find(|p| matches!(&p.kind, PortKind::Host { host: h } if h == host))
    }

    /// The underlay port of `switch` towards `peer`.
    #[must_use]
    pub fn underlay_port(&self, switch: &str, peer: &str) -> Option<&SwitchPort> {
        self.ports.iter().find(|p| {
            p.switch == switch && matches!(&p.kind, PortKind::Underlay { peer: q } if q == peer)
        })
    }

    /// The current switch port of virtual port `port` of `vswitch` if a virtual link
    /// ends there (the end of the link's newest veth pair).
    #[must_use]
    pub fn vlink_port(&self, vswitch: &str, port: u32) -> Option<&SwitchPort> {
        self.ports
            .iter()
            .filter(|p| {
                matches!(&p.kind, PortKind::VLink { vswitch: v, port: n, .. } if v == vswitch && *n == port)
            })
            .max_by_key(|p| match p.kind {
                PortKind::VLink { generation, .. } => generation,
                _ => 0,
            })
    }

    /// The newest generation of virtual link `link`'s veth pair.
    #[must_use]
    pub fn vlink_generation(&self, link: usize) -> Option<u32> {
        self.vlink_pairs
            .iter()
            .filter(|p| p.link == link)
            .map(|p| p.generation)
            .max()
    }

    /// The port of `switch` with interface index `ifindex`.
    #[must_use]
    pub fn port_by_ifindex(&self, switch: &str, ifindex: u32) -> Option<&SwitchPort> {
        self.ports
            .iter()
            .find(|p| p.switch == switch && p.ifindex == ifindex)
    }

    /// The default state directory of lab `lab`: `/run/lime/<lab>`.
    #[must_use]
    pub fn default_dir(lab: &str) -> PathBuf {
        Path::new(STATE_ROOT).join(lab)
    }

    /// Write the state to `dir/lab.json` (creating `dir`; atomically replacing the file).
    /// Returns the file's path.
    ///
    /// # Errors
    /// [`LabError::StateIo`] or [`LabError::StateJson`].
    pub fn save(&self, dir: &Path) -> Result<PathBuf, LabError> {
        fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LabError + '_ {
            move |source| LabError::StateIo {
                path: path.to_owned(),
                source,
            }
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|source| LabError::StateJson {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, json).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(path)
    }

    /// Read the state saved in `dir/lab.json`.
    ///
    /// # Errors
    /// [`LabError::StateIo`] (kind `NotFound` if there is none) or [`LabError::StateJson`].
    pub fn load(dir: &Path) -> Result<Self, LabError> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).map_err(|source| LabError::StateIo {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| LabError::StateJson { path, source })
    }

    /// Remove `dir/lab.json` and then `dir` if it is empty. Missing files are fine.
    ///
    /// # Errors
    /// [`LabError::StateIo`] for other failures.
    pub fn remove_saved(dir: &Path) -> Result<(), LabError> {
        let path = dir.join(STATE_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(LabError::StateIo { path, source }),
        }
        match std::fs::remove_dir(dir) {
            // Not empty (someone else's files) or already gone: leave it.
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(())
            }
            Err(source) => Err(LabError::StateIo {
                path: dir.to_owned(),
                source,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> LabState {
        let topology = Topology::default_demo();
        LabState {
            namespaces: topology.nodes().map(|n| topology.netns_name(n)).collect(),
            hosts: vec![HostIface {
                host: "h1".into(),
                netns: "lime-demo-h1".into(),
                ifname: "eth0".into(),
                ifindex: 2,
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                ip: "10.0.0.1/24".parse().unwrap(),
                ipv6: Some("fd00::1/64".parse().unwrap()),
                switch: "s1".into(),
            }],
            ports: vec![
                SwitchPort {
                    switch: "s1".into(),
                    netns: "lime-demo-s1".into(),
                    ifname: "h1".into(),
                    ifindex: 3,
                    mac: MacAddr([2, 9, 9, 9, 9, 9]),
                    mtu: 1500,
                    kind: PortKind::Host { host: "h1".into() },
                },
                SwitchPort {
                    switch: "s1".into(),
                    netns: "lime-demo-s1".into(),
                    ifname: "u-s2".into(),
                    ifindex: 4,
                    mac: MacAddr([2, 9, 9, 9, 9, 8]),
                    mtu: 1600,
                    kind: PortKind::Underlay { peer: "s2".into() },
                },
                SwitchPort {
                    switch: "s1".into(),
                    netns: "lime-demo-s1".into(),
                    ifname: "vl1a".into(),
                    ifindex: 5,
                    mac: MacAddr([2, 9, 9, 9, 9, 7]),
                    mtu: 1500,
                    kind: PortKind::VLink {
                        link: 0,
                        generation: 0,
                        vswitch: "vs1".into(),
                        port: 5,
                        peer_vswitch: "vs2".into(),
                        peer_port: 5,
                    },
                },
                SwitchPort {
                    switch: "s1".into(),
                    netns: "lime-demo-s1".into(),
                    ifname: "vl1a-1".into(),
                    ifindex: 6,
                    mac: MacAddr([2, 9, 9, 9, 9, 6]),
                    mtu: 1500,
                    kind: PortKind::VLink {
                        link: 0,
                        generation: 1,
                        vswitch: "vs1".into(),
                        port: 5,
                        peer_vswitch: "vs2".into(),
                        peer_port: 5,
                    },
                },
            ],
            vlink_pairs: vec![
                VLinkPair {
                    link: 0,
                    generation: 0,
                    a_switch: "s1".into(),
                    b_switch: "s1".into(),
                },
                VLinkPair {
                    link: 0,
                    generation: 1,
                    a_switch: "s1".into(),
                    b_switch: "s2".into(),
                },
            ],
            topology,
        }
    }

    #[test]
    fn lookups() {
        let s = sample();
        assert_eq!(s.netns("s2").unwrap(), "lime-demo-s2");
        assert!(matches!(s.netns("nope"), Err(LabError::UnknownNode { .. })));
        assert_eq!(s.host_port("h1").unwrap().ifindex, 3);
        assert_eq!(s.underlay_port("s1", "s2").unwrap().ifname, "u-s2");
        assert!(s.underlay_port("s2", "s1").is_none());
        assert_eq!(
            s.port_by_ifindex("s1", 4).unwrap().kind,
            PortKind::Underlay { peer: "s2".into() }
        );
        assert_eq!(s.switch_ports("s1").count(), 4);
        assert_eq!(
            s.vlink_port("vs1", 5).unwrap().ifname,
            "vl1a-1",
            "the newest pair is the link's current one"
        );
        assert!(s.vlink_port("vs1", 6).is_none());
        assert_eq!(s.vlink_generation(0), Some(1));
        assert_eq!(s.vlink_generation(1), None);
        assert_eq!(
            s.host("h1").unwrap().ipv6.unwrap().to_string(),
            "fd00::1/64"
        );
    }

    #[test]
    fn save_load_remove() {
        let dir = std::env::temp_dir().join(format!("lime-lab-state-{}", std::process::id()));
        let s = sample();
        let path = s.save(&dir).unwrap();
        assert_eq!(path, dir.join(STATE_FILE));
        let json = std::fs::read_to_string(&path).unwrap();
        assert!(
            json.contains("\"kind\": \"underlay\""),
            "port kinds are tagged: {json}"
        );
        assert_eq!(LabState::load(&dir).unwrap(), s);
        LabState::remove_saved(&dir).unwrap();
        assert!(!dir.exists());
        assert!(
            matches!(LabState::load(&dir), Err(LabError::StateIo { source, .. }) if source.kind() == io::ErrorKind::NotFound)
        );
        LabState::remove_saved(&dir).expect("removing twice is fine");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(STATE_FILE), "{").unwrap();
        assert!(matches!(
            LabState::load(&dir),
            Err(LabError::StateJson { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! A running lab: the namespaces, veths and addresses of a [`Topology`], torn down on
//! [`Lab::down`] or drop.
//!
//! What [`Lab::up`] builds, for a lab named `L`:
//! - a namespace `lime-L-<node>` per physical switch and per host, with `lo` up;
//! - per host, a veth pair: `eth0` in the host namespace (the host's MAC and addresses,
//!   IPv6 without DAD, TX checksum offload off because XDP redirection loses partial
//!   checksums — kept on for a switch in TC mode, [`DatapathMode::Tc`]) and `<host>` in
//!   its switch's namespace;
//! - per underlay link `a`–`b`, a veth pair `u-b` in `a` and `u-a` in `b`, MTU
//!   [`UNDERLAY_MTU`] (GRO on at the end of a TC-mode switch);
//! - per virtual link `N` (1-based), a veth pair `vlNa` in the namespace of the physical
//!   switch its `a` end is placed on and `vlNb` in `b`'s (both in one namespace if the
//!   same switch); moving an end later makes a new pair first
//!   ([`Lab::add_vlink_pair`], names `vlNa-G`/`vlNb-G`) and removes the old one after
//!   ([`Lab::remove_vlink_pair`]), so the link never stops carrying frames;
//! - quiet namespaces: switches have IPv6 disabled (their ports carry no addresses, so the
//!   switch kernel never transmits on them); hosts send no router solicitations and
//!   have no IPv6 link-local address, and hosts without an IPv6 address have IPv6
//!   disabled. Hosts therefore only send what a test makes them send (plus ARP/ND for
//!   it, and MLD reports for a configured IPv6 address).

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use crate::addr::MacAddr;
use crate::error::{LabError, NameKind};
use crate::netns::{self, LinkInfo};
use crate::state::{HostIface, LabState, PortKind, SwitchPort, VLinkPair};
use crate::topology::{
    DatapathMode, HOST_IFNAME, HostSpec, Topology, UNDERLAY_MTU, VLINK_PREFIX, VLinkSide,
    underlay_ifname, vlink_ifname,
};

/// Sysctls of physical switch namespaces, set before any port exists.
const SWITCH_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
];

/// Sysctls of hosts without IPv6.
const HOST_V4_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
];

/// Sysctls of hosts with IPv6 (ip-sysctl.rst): no router solicitations, no DAD, no
/// link-local address (`addr_gen_mode` 1).
const HOST_V6_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.router_solicitations", "0"),
    ("net.ipv6.conf.default.router_solicitations", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.default.dad_transmits", "0"),
    ("net.ipv6.conf.default.addr_gen_mode", "1"),
];

/// A running lab. Dereferences to its [`LabState`] (topology, namespaces, ports).
///
/// Dropping it tears the lab down (best effort, errors printed to stderr) unless it was
/// [`detach`](Lab::detach)ed or [loaded](Lab::load) from a saved state; [`Lab::down`]
/// tears it down and reports errors.
///
/// Processes started with [`Lab::spawn`] keep their namespace alive after teardown
/// (its name is gone, its interfaces stay until they exit): kill them first.
#[derive(Debug)]
pub struct Lab {
    state: LabState,
    teardown_on_drop: bool,
    saved_in: Option<PathBuf>,
}

impl Deref for Lab {
    type Target = LabState;

    fn deref(&self) -> &LabState {
        &self.state
    }
}

impl Lab {
    /// Validate `topology`, remove stale namespaces of a lab of the same name
    /// ([`Lab::down_by_name`]), and build the lab.
    ///
    /// On failure everything created so far is removed.
    ///
    /// # Errors
    /// [`LabError::Topology`] for an invalid topology, else the first failing command.
    pub fn up(topology: &Topology) -> Result<Self, LabError> {
        topology.validate()?;
        Self::down_by_name(&topology.name)?;
        let mut lab = Self {
            state: LabState {
                topology: topology.clone(),
                namespaces: Vec::new(),
                hosts: Vec::new(),
                ports: Vec::new(),
                vlink_pairs: Vec::new(),
            },
            teardown_on_drop: true,
            saved_in: None,
        };
        // On error, `lab` is dropped here and removes what it created.
        lab.build()?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<(), LabError> {
        let topology = self.state.topology.clone();
        for switch in &topology.switches {
            self.add_netns(&switch.name, SWITCH_SYSCTLS)?;
        }
        for host in &topology.hosts {
            let sysctls = if host.ipv6.is_some() {
                HOST_V6_SYSCTLS
            } else {
                HOST_V4_SYSCTLS
            };
            self.add_netns(&host.name, sysctls)?;
        }
        for host in &topology.hosts {
            attach_host(&topology, host, &host.switch)?;
        }
        for link in &topology.links {
            let (ns_a, ns_b) = (topology.netns_name(&link.a), topology.netns_name(&link.b));
            let (if_a, if_b) = (underlay_ifname(&link.b), underlay_ifname(&link.a));
            veth_pair(
                &topology,
                (&ns_a, &if_a),
                (&ns_b, &if_b),
                Some(UNDERLAY_MTU),
            )?;
            // A switch in TC mode gets what its underlay port's XDP program decapsulates
            // as skbs: GRO joins a TCP stream's frames (which the sender's side had to
            // cut, its peer running XDP) into large segments again before LIME's TC
            // program delivers them.
            for (sw, ns, ifname) in [(&link.a, &ns_a, &if_a), (&link.b, &ns_b, &if_b)] {
                if topology
                    .switch(sw)
                    .is_some_and(|s| s.datapath == DatapathMode::Tc)
                {
                    netns::run_checked(&mut netns::command_in(
                        ns,
                        &["ethtool", "-K", ifname, "gro", "on"],
                    ))?;
                }
            }
        }
        for (i, l) in topology.vlinks.iter().enumerate() {
            let pair = VLinkPair {
                link: i,
                generation: 0,
                a_switch: l.a.switch.clone(),
                b_switch: l.b.switch.clone(),
            };
            make_vlink_pair(&topology, &pair)?;
            self.state.vlink_pairs.push(pair);
        }
        self.refresh()
    }

    /// Create the namespace of `node`, record it, set `sysctls`, bring `lo` up.
    fn add_netns(&mut self, node: &str, sysctls: &[(&str, &str)]) -> Result<(), LabError> {
        let ns = self.state.topology.netns_name(node);
        netns::netns_add(&ns)?;
        self.state.namespaces.push(ns.clone());
        for (key, value) in sysctls {
            netns::set_sysctl(&ns, key, value)?;
        }
        netns::ip(&["-n", &ns, "link", "set", "lo", "up"]).map(drop)
    }

    /// Re-read interface indexes and MACs of all hosts and switch ports from the kernel.
    ///
    /// # Errors
    /// [`LabError::InterfaceNotFound`] if an interface of the lab is missing, or a
    /// failing `ip` command.
    pub fn refresh(&mut self) -> Result<(), LabError> {
        self.refresh_where(|_| true, |_| true)
    }

    /// [`Lab::refresh`] for the hosts and switches `host_changed` and `switch_changed`
    /// name; the others keep what was read before (each `ip` costs a few milliseconds, and a
    /// host's move changes one host and two switches).
    fn refresh_where(
        &mut self,
        host_changed: impl Fn(&str) -> bool,
        switch_changed: impl Fn(&str) -> bool,
    ) -> Result<(), LabError> {
        let topology = &self.state.topology;
        let mut hosts = Vec::with_capacity(topology.hosts.len());
        for host in &topology.hosts {
            if !host_changed(&host.name)
                && let Some(known) = self.state.hosts.iter().find(|h| h.host == host.name)
            {
                hosts.push(known.clone());
                continue;
            }
            let ns = topology.netns_name(&host.name);
            let info = netns::link(&ns, HOST_IFNAME)?;
            hosts.push(HostIface {
                host: host.name.clone(),
                netns: ns,
                ifname: info.ifname,
                ifindex: info.ifindex,
                mac: host.mac,
                ip: host.ip,
                ipv6: host.ipv6,
                switch: host.switch.clone(),
            });
        }
        let mut ports = Vec::new();
        for switch in &topology.switches {
            let known = self.state.ports.iter().filter(|p| p.switch == switch.name);
            if !switch_changed(&switch.name) && known.clone().next().is_some() {
                ports.extend(known.cloned());
                continue;
            }
            let ns = topology.netns_name(&switch.name);
            let links = netns::links(&ns)?;
            let peers = topology.links.iter().filter_map(|l| {
                if l.a == switch.name {
                    Some(&l.b)
                } else if l.b == switch.name {
                    Some(&l.a)
                } else {
                    None
                }
            });
            let wanted = topology
                .hosts_on(&switch.name)
                .map(|h| {
                    (
                        h.name.clone(),
                        PortKind::Host {
                            host: h.name.clone(),
                        },
                    )
                })
                .chain(peers.map(|p| (underlay_ifname(p), PortKind::Underlay { peer: p.clone() })));
            let vlinks = self.state.vlink_pairs.iter().flat_map(|pair| {
                let l = &topology.vlinks[pair.link];
                [
                    (VLinkSide::A, &pair.a_switch, &l.a, &l.b),
                    (VLinkSide::B, &pair.b_switch, &l.b, &l.a),
                ]
                .into_iter()
                .filter(|(_, on, _, _)| **on == switch.name)
                .map(|(side, _, end, other)| {
                    (
                        vlink_ifname(pair.link, pair.generation, side),
                        PortKind::VLink {
                            link: pair.link,
                            generation: pair.generation,
                            vswitch: end.vswitch.clone(),
                            port: end.port,
                            peer_vswitch: other.vswitch.clone(),
                            peer_port: other.port,
                        },
                    )
                })
            });
            for (ifname, kind) in wanted.chain(vlinks) {
                let info = find_link(&links, &ns, &ifname)?;
                ports.push(SwitchPort {
                    switch: switch.name.clone(),
                    netns: ns.clone(),
                    ifname,
                    ifindex: info.ifindex,
                    // A veth always has a MAC; zeros would only show a kernel oddity.
                    mac: info.address.unwrap_or(MacAddr([0; 6])),
                    mtu: info.mtu,
                    kind,
                });
            }
        }
        self.state.hosts = hosts;
        self.state.ports = ports;
        Ok(())
    }

    /// The lab's state (also reachable through `Deref`).
    #[must_use]
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// The ifindex of interface `ifname` in node `node`'s namespace, asked of the kernel.
    ///
    /// # Errors
    /// [`LabError::UnknownNode`], [`LabError::InterfaceNotFound`], or a failing `ip`.
    pub fn ifindex(&self, node: &str, ifname: &str) -> Result<u32, LabError> {
        netns::ifindex(&self.netns(node)?, ifname)
    }

    /// The interfaces of node `node`, asked of the kernel.
    ///
    /// # Errors
    /// [`LabError::UnknownNode`] or a failing `ip`.
    pub fn links(&self, node: &str) -> Result<Vec<LinkInfo>, LabError> {
        netns::links(&self.netns(node)?)
    }

    /// A [`Command`] running `argv` in node `node`'s namespace (`ip netns exec`).
    ///
    /// # Errors
    /// [`LabError::UnknownNode`].
    pub fn command<S: AsRef<std::ffi::OsStr>>(
        &self,
        node: &str,
        argv: &[S],
    ) -> Result<Command, LabError> {
        Ok(netns::command_in(&self.netns(node)?, argv))
    }

    /// Run `argv` in node `node`'s namespace to completion and return its output,
    /// whatever its exit status.
    ///
    /// # Errors
    /// [`LabError::UnknownNode`] or [`LabError::Spawn`].
    pub fn exec<S: AsRef<std::ffi::OsStr>>(
        &self,
        node: &str,
        argv: &[S],
    ) -> Result<Output, LabError> {
        let mut cmd = self.command(node, argv)?;
        cmd.output().map_err(|source| LabError::Spawn {
            command: netns::command_line(&cmd),
            source,
        })
    }

    /// Run `argv` in node `node`'s namespace; fail unless it exits successfully; return
    /// its stdout.
    ///
    /// # Errors
    /// [`LabError::UnknownNode`], [`LabError::Spawn`] or [`LabError::Command`].
    pub fn exec_ok<S: AsRef<std::ffi::OsStr>>(
        &self,
        node: &str,
        argv: &[S],
    ) -> Result<String, LabError> {
        let output = netns::run_checked(&mut self.command(node, argv)?)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Start `argv` in node `node`'s namespace (stdio inherited; use [`Lab::command`] to
    /// configure it).
    ///
    /// # Errors
    /// [`LabError::UnknownNode`] or [`LabError::Spawn`].
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        &self,
        node: &str,
        argv: &[S],
    ) -> Result<Child, LabError> {
        let mut cmd = self.command(node, argv)?;
        cmd.spawn().map_err(|source| LabError::Spawn {
            command: netns::command_line(&cmd),
            source,
        })
    }

    /// Run `f` on a thread inside node `node`'s namespace (see [`netns::run_in_netns`]).
    ///
    /// # Errors
    /// [`LabError::UnknownNode`], or as [`netns::run_in_netns`].
    pub fn run_in<F, T>(&self, node: &str, f: F) -> Result<T, LabError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        netns::run_in_netns(&self.netns(node)?, f)
    }

    /// Re-attach host `host` to physical switch `new_switch`, as after a VM's live
    /// migration: its veth is deleted and recreated towards `new_switch` with the same
    /// MAC and addresses (`eth0` gets a new ifindex). Moving to the current switch
    /// recreates the veth in place. Returns the new switch-side port.
    ///
    /// # Errors
    /// [`LabError::UnknownNode`] if `host` is not a host or `new_switch` not a switch,
    /// else a failing command.
    pub fn move_host(&mut self, host: &str, new_switch: &str) -> Result<SwitchPort, LabError> {
        let unknown = |node: &str| LabError::UnknownNode {
            lab: self.name().to_owned(),
            node: node.to_owned(),
        };
        let index = self
            .state
            .topology
            .hosts
            .iter()
            .position(|h| h.name == host)
            .ok_or_else(|| unknown(host))?;
        if self.state.topology.switch(new_switch).is_none() {
            return Err(unknown(new_switch));
        }
        // The virtual switches of the host must stay on physical switches of one datapath
        // mode (see `Topology::validate`): check before anything is torn down.
        let mut moved = self.state.topology.clone();
        new_switch.clone_into(&mut moved.hosts[index].switch);
        if let Some(vs) = moved
            .vswitches
            .iter()
            .find(|vs| vs.ports.iter().any(|p| p.host == host))
        {
            moved.check_one_datapath_mode(vs)?;
        }
        let host_ns = self.state.topology.netns_name(host);
        // A host whose link is already gone (a move cut short by a crash) is attached
        // afresh. A migrated VM keeps what it knew of its neighbours (its memory moves
        // with it); the lab's new link starts with an empty neighbour table, so what
        // the old one had learned is put back on it: the host goes on sending at once
        // instead of asking for every address again and queueing its traffic meanwhile
        // (the kernel then sends the queue from another context than new sends, which
        // reorders a flow).
        let mut neighbours = Vec::new();
        if netns::link(&host_ns, HOST_IFNAME).is_ok() {
            neighbours = netns::learned_neighbours(&host_ns, HOST_IFNAME).unwrap_or_default();
            netns::ip(&["-n", &host_ns, "link", "del", HOST_IFNAME])?;
        }
        let old_switch = std::mem::replace(
            &mut self.state.topology.hosts[index].switch,
            new_switch.to_owned(),
        );
        let spec = self.state.topology.hosts[index].clone();
        // Stale: used at once, confirmed by the kernel in the background.
        let restore: Vec<String> = neighbours
            .iter()
            .map(|(ip, mac)| format!("neigh replace {ip} lladdr {mac} dev {HOST_IFNAME} nud stale"))
            .collect();
        attach_host(&self.state.topology, &spec, new_switch)?;
        // A host whose entries could not be put back only asks for them again (its
        // traffic waits for the answer): that does not fail the move.
        let _ = netns::ip_batch(&host_ns, &restore);
        // Only the host and the two switches changed.
        self.refresh_where(|h| h == host, |sw| sw == old_switch || sw == new_switch)?;
        // refresh() fails if any host's port is missing, so this lookup succeeds.
        let port = self
            .state
            .host_port(host)
            .ok_or_else(|| LabError::InterfaceNotFound {
                netns: self.state.topology.netns_name(new_switch),
                ifname: host.to_owned(),
            })?;
        Ok(port.clone())
    }

    /// Make a new veth pair for virtual link `link` with its `side` end on physical
    /// switch `to` (the other end stays where it is), next to the current pair, and make
    /// it the link's current one (the topology's end placement follows). Returns the new
    /// pair's generation. The old pair keeps carrying frames until
    /// [`Lab::remove_vlink_pair`] removes it: an end moves make-before-break. A link
    /// with no pair left (it died with a physical switch that is gone, see
    /// [`Lab::adopt`]) gets one again, its other end where the topology places it.
    ///
    /// # Errors
    /// [`LabError::UnknownNode`] for an unknown link or switch (also the other end's,
    /// if that one is gone), else a failing command
    /// (the new pair is then removed again).
    pub fn add_vlink_pair(
        &mut self,
        link: usize,
        side: VLinkSide,
        to: &str,
    ) -> Result<u32, LabError> {
        let unknown = |node: String| LabError::UnknownNode {
            lab: self.name().to_owned(),
            node,
        };
        let spec = self
            .state
            .topology
            .vlinks
            .get(link)
            .ok_or_else(|| unknown(format!("virtual link {}", link + 1)))?;
        // A link with no pair left (its pair died with a switch that is gone) is made
        // again where the topology places its ends, the moving end at `to`.
        let current = self
            .state
            .vlink_pairs
            .iter()
            .filter(|p| p.link == link)
            .max_by_key(|p| p.generation)
            .cloned()
            .unwrap_or_else(|| VLinkPair {
                link,
                generation: 0,
                a_switch: spec.a.switch.clone(),
                b_switch: spec.b.switch.clone(),
            });
        if self.state.topology.switch(to).is_none() {
            return Err(unknown(to.to_owned()));
        }
        let mut pair = current;
        pair.generation += 1;
        match side {
            VLinkSide::A => to.clone_into(&mut pair.a_switch),
            VLinkSide::B => to.clone_into(&mut pair.b_switch),
        }
        for sw in [&pair.a_switch, &pair.b_switch] {
            if self.state.topology.switch(sw).is_none() {
                return Err(unknown(sw.clone()));
            }
        }
        if let Err(e) = make_vlink_pair(&self.state.topology, &pair) {
            let _ = del_vlink_pair(&self.state.topology, &pair);
            return Err(e);
        }
        let l = &mut self.state.topology.vlinks[link];
        l.a.switch.clone_from(&pair.a_switch);
        l.b.switch.clone_from(&pair.b_switch);
        let generation = pair.generation;
        self.state.vlink_pairs.push(pair);
        self.refresh()?;
        Ok(generation)
    }

    /// Remove generation `generation` of virtual link `link`'s veth pairs (an old pair,
    /// once its successor carries the link). Removing one that is gone is fine.
    ///
    /// # Errors
    /// A failing command.
    pub fn remove_vlink_pair(&mut self, link: usize, generation: u32) -> Result<(), LabError> {
        let Some(i) = self
            .state
            .vlink_pairs
            .iter()
            .position(|p| p.link == link && p.generation == generation)
        else {
            return Ok(());
        };
        let pair = self.state.vlink_pairs.remove(i);
        del_vlink_pair(&self.state.topology, &pair)?;
        self.refresh()
    }

    /// Keep the lab running after this value is dropped; return its state (to
    /// [`save`](LabState::save) it, for example).
    #[must_use]
    pub fn detach(mut self) -> LabState {
        self.teardown_on_drop = false;
        self.state.clone()
    }

    /// Choose whether dropping this value tears the lab down.
    pub fn set_teardown_on_drop(&mut self, teardown: bool) {
        self.teardown_on_drop = teardown;
    }

    /// Save the state to `dir/lab.json` (see [`LabState::save`]); [`Lab::down`] removes it.
    ///
    /// # Errors
    /// As [`LabState::save`].
    pub fn save(&mut self, dir: &Path) -> Result<PathBuf, LabError> {
        let path = self.state.save(dir)?;
        self.saved_in = Some(dir.to_owned());
        Ok(path)
    }

    /// A handle on a lab that is already running, from its saved state. Dropping it
    /// leaves the lab running; [`Lab::down`] tears it down and removes the saved state.
    ///
    /// # Errors
    /// As [`LabState::load`].
    pub fn load(dir: &Path) -> Result<Self, LabError> {
        let state = LabState::load(dir)?;
        Ok(Self {
            state,
            teardown_on_drop: false,
            saved_in: Some(dir.to_owned()),
        })
    }

    /// Take over a lab left running by a process that is gone (a crashed `lime run`),
    /// from the state saved in `dir`:
    ///
    /// - a physical switch whose namespace is gone is dropped from the topology, with
    ///   its underlay links;
    /// - every host's current physical switch is read from the kernel (the switch
    ///   namespace holding the port named after it);
    /// - a host found on none (its move was cut short, or its switch is gone) is
    ///   attached again: to the switch `fallback` names for it if that one is there,
    ///   else to the one the saved state names;
    /// - every virtual link's veth pairs are read from the kernel (the interfaces named
    ///   after them, see [`vlink_ifname`]): an end's move after the state was saved is
    ///   found, and one cut short leaves both pairs listed (the newest is the link's
    ///   current one); a pair with an end gone is forgotten;
    /// - interface indexes are re-read.
    ///
    /// Dropping the handle tears the lab down, as for [`Lab::up`]. Returns the lab, the
    /// hosts attached again, and the switches that are gone.
    ///
    /// # Errors
    /// As [`LabState::load`]; [`LabError::UnknownNode`] for a host with no switch left to
    /// attach it to; a failing command.
    pub fn adopt(
        dir: &Path,
        fallback: &[(String, String)],
    ) -> Result<(Self, Vec<String>, Vec<String>), LabError> {
        let mut state = LabState::load(dir)?;
        let topo = &mut state.topology;
        let gone: Vec<String> = topo
            .switches
            .iter()
            .map(|s| s.name.clone())
            .filter(|s| !netns::netns_exists(&topo.netns_name(s)))
            .collect();
        topo.switches.retain(|s| !gone.contains(&s.name));
        topo.links
            .retain(|l| !gone.contains(&l.a) && !gone.contains(&l.b));
        let gone_ns: Vec<String> = gone.iter().map(|s| topo.netns_name(s)).collect();
        state.namespaces.retain(|n| !gone_ns.contains(n));
        let mut names: Vec<(String, Vec<String>)> = Vec::new();
        for sw in &state.topology.switches {
            let ns = state.topology.netns_name(&sw.name);
            let links = netns::links(&ns)?;
            names.push((
                sw.name.clone(),
                links.into_iter().map(|l| l.ifname).collect(),
            ));
        }
        // Virtual link pairs as the kernel has them: an end's move may have made a pair
        // (and removed the old one) after the state was saved, or been cut short with
        // both pairs there; a pair with an end gone (its switch, say) is forgotten.
        state.vlink_pairs = found_vlink_pairs(&state, &names);
        for link in 0..state.topology.vlinks.len() {
            if let Some(p) = state
                .vlink_pairs
                .iter()
                .filter(|p| p.link == link)
                .max_by_key(|p| p.generation)
            {
                let l = &mut state.topology.vlinks[link];
                l.a.switch.clone_from(&p.a_switch);
                l.b.switch.clone_from(&p.b_switch);
            }
        }
        let mut lost = Vec::new();
        for i in 0..state.topology.hosts.len() {
            let name = state.topology.hosts[i].name.clone();
            if let Some((sw, _)) = names.iter().find(|(_, ifs)| ifs.contains(&name)) {
                state.topology.hosts[i].switch.clone_from(sw);
                continue;
            }
            let there = |sw: &str| state.topology.switch(sw).is_some();
            let place = fallback
                .iter()
                .find(|(h, sw)| *h == name && there(sw))
                .map(|(_, sw)| sw.clone())
                .or_else(|| {
                    let recorded = &state.topology.hosts[i].switch;
                    there(recorded).then(|| recorded.clone())
                })
                .ok_or_else(|| LabError::UnknownNode {
                    lab: state.topology.name.clone(),
                    node: format!("a physical switch for host {name}"),
                })?;
            state.topology.hosts[i].switch = place.clone();
            let host_ns = state.topology.netns_name(&name);
            if netns::link(&host_ns, HOST_IFNAME).is_ok() {
                netns::ip(&["-n", &host_ns, "link", "del", HOST_IFNAME])?;
            }
            attach_host(&state.topology, &state.topology.hosts[i], &place)?;
            lost.push(name);
        }
        let mut lab = Self {
            state,
            teardown_on_drop: false,
            saved_in: Some(dir.to_owned()),
        };
        lab.refresh()?;
        lab.teardown_on_drop = true;
        Ok((lab, lost, gone))
    }

    /// A handle on a running lab from its state. Dropping it leaves the lab running.
    #[must_use]
    pub fn from_state(state: LabState) -> Self {
        Self {
            state,
            teardown_on_drop: false,
            saved_in: None,
        }
    }

    /// True if all the lab's namespaces exist.
    #[must_use]
    pub fn is_running(&self) -> bool {
        !self.state.namespaces.is_empty()
            && self
                .state
                .namespaces
                .iter()
                .all(|ns| netns::netns_exists(ns))
    }

    /// Tear the lab down: delete its namespaces (and with them all its veths) and its
    /// saved state, if any.
    ///
    /// # Errors
    /// The first failure; the remaining namespaces are still deleted.
    pub fn down(mut self) -> Result<(), LabError> {
        self.teardown_on_drop = false;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        let mut first_err = None;
        for ns in self.state.namespaces.iter().rev() {
            if netns::netns_exists(ns)
                && let Err(e) = netns::netns_del(ns)
            {
                first_err.get_or_insert(e);
            }
        }
        self.state.namespaces.clear();
        if let Some(dir) = self.saved_in.take()
            && let Err(e) = LabState::remove_saved(&dir)
        {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Remove every namespace `lime-<lab>-*` (whoever created it) and the saved state in
    /// the default directory ([`LabState::default_dir`]). Returns the namespaces removed.
    ///
    /// # Errors
    /// [`LabError::Topology`] if `lab` is not a valid lab name (so no unrelated
    /// namespace can match), else the first failure.
    pub fn down_by_name(lab: &str) -> Result<Vec<String>, LabError> {
        crate::validate::check_name(NameKind::Lab, lab)?;
        let prefix = Topology::netns_prefix_of(lab);
        let mut removed = Vec::new();
        for ns in netns::netns_list()?
            .into_iter()
            .filter(|ns| ns.starts_with(&prefix))
        {
            netns::netns_del(&ns)?;
            removed.push(ns);
        }
        LabState::remove_saved(&LabState::default_dir(lab))?;
        Ok(removed)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.teardown_on_drop
            && let Err(e) = self.teardown()
        {
            eprintln!(
                "lime-lab: tearing down lab {:?}: {e}",
                self.state.topology.name
            );
        }
    }
}

fn find_link<'a>(
    links: &'a [LinkInfo],
    netns: &str,
    ifname: &str,
) -> Result<&'a LinkInfo, LabError> {
    links
        .iter()
        .find(|l| l.ifname == ifname)
        .ok_or_else(|| LabError::InterfaceNotFound {
            netns: netns.to_owned(),
            ifname: ifname.to_owned(),
        })
}

/// Create a veth pair `a.1` in namespace `a.0` and `b.1` in `b.0` (the same namespace
/// is fine), both up, with the topology's queues and MTU `mtu` (else the default).
fn veth_pair(
    topology: &Topology,
    (ns_a, if_a): (&str, &str),
    (ns_b, if_b): (&str, &str),
    mtu: Option<u32>,
) -> Result<(), LabError> {
    let queues = topology.veth_queues.to_string();
    let mtu = mtu.map(|m| m.to_string());
    let mtu_args: Vec<&str> = mtu.iter().flat_map(|m| ["mtu", m.as_str()]).collect();
    let q: [&str; 4] = ["numtxqueues", &queues, "numrxqueues", &queues];
    let mut argv: Vec<&str> = vec!["-n", ns_a, "link", "add", if_a];
    argv.extend(&mtu_args);
    argv.extend(q);
    argv.extend(["type", "veth", "peer", "name", if_b, "netns", ns_b]);
    argv.extend(&mtu_args);
    argv.extend(q);
    netns::ip(&argv)?;
    netns::ip(&["-n", ns_a, "link", "set", if_a, "up"])?;
    netns::ip(&["-n", ns_b, "link", "set", if_b, "up"]).map(drop)
}

/// The veth pairs of every virtual link found among each switch's interface names
/// (`names`: switch, its interfaces), both ends present. A generation is known by its
/// name modulo 1000 (see [`vlink_ifname`]): the saved one if it matches, else the
/// smallest one at or after the newest saved generation with that name.
fn found_vlink_pairs(state: &LabState, names: &[(String, Vec<String>)]) -> Vec<VLinkPair> {
    let mut pairs = Vec::new();
    for link in 0..state.topology.vlinks.len() {
        let saved: Vec<u32> = state
            .vlink_pairs
            .iter()
            .filter(|p| p.link == link)
            .map(|p| p.generation)
            .collect();
        let newest = saved.iter().copied().max().unwrap_or(0);
        let generation = |g: u32| {
            saved
                .iter()
                .copied()
                .find(|s| s % 1000 == g)
                .unwrap_or_else(|| newest + (g + 1000 - newest % 1000) % 1000)
        };
        let prefix = format!("{VLINK_PREFIX}{}", link + 1);
        let mut ends: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
        for (sw, ifs) in names {
            for name in ifs {
                let Some(rest) = name.strip_prefix(&prefix) else {
                    continue;
                };
                let (side, g) = match rest.split_once('-') {
                    Some((side, g)) => match g.parse::<u32>() {
                        Ok(g) if g > 0 => (side, g),
                        _ => continue,
                    },
                    None => (rest, 0),
                };
                let e = ends.entry(generation(g)).or_default();
                match side {
                    "a" => e.0 = Some(sw.clone()),
                    "b" => e.1 = Some(sw.clone()),
                    _ => {}
                }
            }
        }
        for (g, e) in ends {
            if let (Some(a_switch), Some(b_switch)) = e {
                pairs.push(VLinkPair {
                    link,
                    generation: g,
                    a_switch,
                    b_switch,
                });
            }
        }
    }
    pairs
}

/// Create the veth pair of a virtual link's generation.
fn make_vlink_pair(topology: &Topology, pair: &VLinkPair) -> Result<(), LabError> {
    let (ns_a, ns_b) = (
        topology.netns_name(&pair.a_switch),
        topology.netns_name(&pair.b_switch),
    );
    let if_a = vlink_ifname(pair.link, pair.generation, VLinkSide::A);
    let if_b = vlink_ifname(pair.link, pair.generation, VLinkSide::B);
    veth_pair(topology, (&ns_a, &if_a), (&ns_b, &if_b), None)
}

/// Delete the veth pair of a virtual link's generation (deleting one end deletes both),
/// if it exists.
fn del_vlink_pair(topology: &Topology, pair: &VLinkPair) -> Result<(), LabError> {
    let ns_a = topology.netns_name(&pair.a_switch);
    let if_a = vlink_ifname(pair.link, pair.generation, VLinkSide::A);
    if netns::link(&ns_a, &if_a).is_ok() {
        netns::ip(&["-n", &ns_a, "link", "del", &if_a])?;
    }
    Ok(())
}

/// Create host `host`'s veth towards `switch` and configure the host side.
/// Interface indices for a new veth pair between namespaces `a` and `b`: free in each
/// (one above the highest in use) and different from each other. The kernel treats a
/// link change of a device whose peer has its own ifindex (as an interface in another
/// namespace may) as not urgent and applies it up to a second later (linkwatch: the
/// operational state, and the qdisc without which the stack cannot send); a moved
/// host's new link would stay down that long.
fn pair_indices(a: &str, b: &str) -> Result<(u32, u32), LabError> {
    let next = |ns: &str| -> Result<u32, LabError> {
        Ok(netns::links(ns)?
            .iter()
            .map(|l| l.ifindex)
            .max()
            .unwrap_or(1)
            + 1)
    };
    let ia = next(a)?;
    let mut ib = next(b)?;
    if ib == ia {
        ib += 1;
    }
    Ok((ia, ib))
}

/// Make host `host`'s link to `switch`: a veth pair with `eth0` in the host's namespace
/// (its MAC, addresses, checksum setting) and the port named after the host in the
/// switch's, both up. Three processes in all: one `ip -batch` per namespace and the
/// `ethtool` between them.
fn attach_host(topology: &Topology, host: &HostSpec, switch: &str) -> Result<(), LabError> {
    let (sw_ns, host_ns) = (topology.netns_name(switch), topology.netns_name(&host.name));
    let q = topology.veth_queues;
    let (sw_index, host_index) = pair_indices(&sw_ns, &host_ns)?;
    netns::ip_batch(
        &sw_ns,
        &[
            format!(
                "link add {name} index {sw_index} numtxqueues {q} numrxqueues {q} type veth peer name {HOST_IFNAME} netns {host_ns} index {host_index} address {mac} numtxqueues {q} numrxqueues {q}",
                name = host.name,
                mac = host.mac,
            ),
            format!("link set {} up", host.name),
        ],
    )?;
    // XDP redirection does not finish CHECKSUM_PARTIAL packets: make the host compute
    // its checksums in software (on a switch whose datapath runs at TC, skbs keep theirs).
    let tc = topology
        .switch(switch)
        .is_some_and(|s| s.datapath == DatapathMode::Tc);
    let tx = if tc { "on" } else { "off" };
    netns::run_checked(&mut netns::command_in(
        &host_ns,
        &["ethtool", "-K", HOST_IFNAME, "tx", tx],
    ))?;
    let mut lines = vec![format!("addr add {} dev {HOST_IFNAME}", host.ip)];
    if let Some(v6) = host.ipv6 {
        lines.push(format!("addr add {v6} dev {HOST_IFNAME} nodad"));
    }
    lines.push(format!("link set {HOST_IFNAME} up"));
    netns::ip_batch(&host_ns, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_link_pairs_are_found_by_their_interface_names() {
        // Saved: generations 0 and 1 of link 0. In the kernel: generation 0, a newer
        // pair (2) made after the state was saved, generation 1 with an end gone, and
        // interfaces of other links or none.
        let mut state = crate::state::tests::sample();
        let end = |vswitch: &str, switch: &str| crate::topology::VLinkEnd {
            vswitch: vswitch.to_owned(),
            port: 5,
            switch: switch.to_owned(),
        };
        state.topology.vlinks = vec![crate::topology::VLinkSpec {
            a: end("vs1", "s1"),
            b: end("vs2", "s2"),
        }];
        let names = vec![
            (
                "s1".to_owned(),
                vec!["vl1a".to_owned(), "vl1a-2".to_owned(), "vl11a".to_owned()],
            ),
            (
                "s2".to_owned(),
                vec![
                    "vl1b".to_owned(),
                    "vl1b-1".to_owned(),
                    "vl1b-2".to_owned(),
                    "vl1bx".to_owned(),
                    "u-s1".to_owned(),
                ],
            ),
        ];
        let pair = |generation, a: &str, b: &str| VLinkPair {
            link: 0,
            generation,
            a_switch: a.to_owned(),
            b_switch: b.to_owned(),
        };
        assert_eq!(
            found_vlink_pairs(&state, &names),
            [pair(0, "s1", "s2"), pair(2, "s1", "s2")]
        );
    }
}

//! A running LIME fabric: a namespace lab (from `lime-lab`) with one [`Datapath`] per
//! physical switch, and each virtual switch of the topology mapped onto them.
//!
//! Mapping: a virtual switch gets the same datapath-local id on every physical switch
//! (its 1-based index in the topology). On the physical switch where a host is attached,
//! the host's virtual port is LOCAL (its switch-side veth); on every other physical
//! switch it is REMOTE, reached through the underlay port of the next hop towards the
//! host's switch (breadth-first over underlay links). A virtual switch's rules are
//! installed on every physical switch, so each packet is classified once, where it
//! enters, and delivered by the switch that owns the egress virtual port.
//!
//! Virtual links: each end of a `[[vlink]]` (a veth pair the lab makes, see
//! [`lime_lab::Lab::add_vlink_pair`]) is attached exactly like a host port — LIME's
//! program on the switch-side interface, classified as the end's virtual port — and its
//! virtual port is LOCAL on the physical switch holding that end, REMOTE elsewhere, and
//! in the virtual switch's flood list. A frame one virtual switch outputs to its link
//! port crosses the veth and enters the other virtual switch at its link port, where
//! that one classifies it: the eBPF datapath knows nothing of links. An end moves
//! make-before-break ([`Fabric::move_vlink_end`]).
//!
//! # Reclaim
//! [`Fabric::commit_staged`] publishes a version on every copy and returns a commit
//! number without waiting: what the previous version alone could see (removed rules,
//! old subtable lists) stays in the kernel until the datapath's grace period after
//! that publish is over, and is reclaimed then, per version ([`Fabric::reclaim_ready`]
//! for what is due, [`Fabric::reclaim_through`] to wait for one commit,
//! [`Fabric::reclaim_due`] for everything). A removed rule's counters are final only
//! at its reclaim: they are kept per virtual switch, with the newest commit reclaimed,
//! until [`Fabric::take_retired`] takes them (the flow table,
//! [`crate::vswitch::VirtualSwitch::settle`], folds them into its entries and sends
//! FLOW_REMOVED). Only when 64 versions of a virtual switch wait (`MAX_UNRECLAIMED`) does
//! a commit reclaim itself. Adding or retiring a copy ([`Fabric::add_copy`],
//! [`Fabric::remove_copy`]) reclaims everything first and waits for its own grace
//! period: its final counters are read before the copy's rules are deleted.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    path::{Path, PathBuf},
};

use lime_common::{
    port::{PortInfo, VportInfo, kind, location},
    stats::RuleStats,
};
use lime_lab::{Lab, PortKind, SwitchPort, Topology};

use crate::{
    datapath::{Datapath, DatapathError},
    flow::Rule,
};

/// Errors bringing up or driving a fabric.
#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    /// The lab (namespaces, veths) failed.
    #[error("lab: {0}")]
    Lab(#[from] lime_lab::LabError),
    /// A datapath failed.
    #[error("datapath {switch}: {source}")]
    Datapath {
        /// Physical switch.
        switch: String,
        /// Cause (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<DatapathError>,
    },
    /// A name not in the topology.
    #[error("unknown {kind} {name:?}")]
    Unknown {
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A copy of a virtual switch cannot be added or retired there.
    #[error("virtual switch {vswitch} on {switch}: {why}")]
    Copy {
        /// Virtual switch.
        vswitch: String,
        /// Physical switch.
        switch: String,
        /// Why not.
        why: &'static str,
    },
    /// The caller's hook refused to let a step go on (a journal that cannot be
    /// written, say); the step did nothing in the kernel.
    #[error("stopped before {step}: {why}")]
    Stopped {
        /// The step.
        step: &'static str,
        /// Why.
        why: String,
    },
    /// No underlay path between two physical switches.
    #[error("no underlay path from {from} to {to}")]
    NoPath {
        /// From.
        from: String,
        /// To.
        to: String,
    },
}

fn dp_err(switch: &str) -> impl FnOnce(DatapathError) -> FabricError + '_ {
    move |source| FabricError::Datapath {
        switch: switch.to_owned(),
        source: Box::new(source),
    }
}

fn unknown_switch(switch: &str) -> FabricError {
    FabricError::Unknown {
        kind: "switch",
        name: switch.to_owned(),
    }
}

/// A rule installed on every physical switch: its datapath rule id on each.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    /// Physical switch → datapath rule id.
    pub ids: SwitchIds,
}

/// Physical switch → datapath rule id, in switch-name order: a short sorted list (one
/// entry per copy of the virtual switch, usually one or two). Every flow entry has
/// one; as a `BTreeMap` each took a node with room for eleven (~330 bytes of fresh
/// memory per flow-mod in a large batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchIds(Vec<(String, u32)>);

impl SwitchIds {
    /// The id on `switch`.
    #[must_use]
    pub fn get(&self, switch: &str) -> Option<&u32> {
        self.find(switch).ok().map(|i| &self.0[i].1)
    }

    /// Set the id on `switch`; returns the one it replaces.
    pub fn insert(&mut self, switch: String, id: u32) -> Option<u32> {
        match self.find(&switch) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, id)),
            Err(i) => {
                if self.0.capacity() == 0 {
                    // Most rules live on one switch: room for one, not the default four.
                    self.0.reserve_exact(1);
                }
                self.0.insert(i, (switch, id));
                None
            }
        }
    }

    /// Forget the id on `switch`; returns it.
    pub fn remove(&mut self, switch: &str) -> Option<u32> {
        self.find(switch).ok().map(|i| self.0.remove(i).1)
    }

    /// (switch, id) pairs in switch-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &u32)> {
        self.0.iter().map(|(s, id)| (s, id))
    }

    /// Whether there is none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many switches.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn find(&self, switch: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(s, _)| s.as_str().cmp(switch))
    }
}

impl<'a> IntoIterator for &'a SwitchIds {
    type Item = (&'a String, &'a u32);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, u32)>,
        fn(&'a (String, u32)) -> (&'a String, &'a u32),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(s, id)| (s, id))
    }
}

impl FromIterator<(String, u32)> for SwitchIds {
    fn from_iter<I: IntoIterator<Item = (String, u32)>>(iter: I) -> Self {
        let mut ids = Self::default();
        for (s, id) in iter {
            ids.insert(s, id);
        }
        ids
    }
}

impl From<&BTreeMap<String, u32>> for SwitchIds {
    fn from(m: &BTreeMap<String, u32>) -> Self {
        // Already in name order.
        Self(m.iter().map(|(s, id)| (s.clone(), *id)).collect())
    }
}

impl From<&SwitchIds> for BTreeMap<String, u32> {
    fn from(ids: &SwitchIds) -> Self {
        ids.iter().map(|(s, id)| (s.clone(), *id)).collect()
    }
}

impl Installed {
    /// The datapath rule id on one physical switch (0 if not installed there).
    #[must_use]
    pub fn ids_on(&self, switch: &str) -> u32 {
        self.ids.get(switch).copied().unwrap_or(0)
    }
}

/// Final counters of the datapath rules a [`Fabric::commit_staged`] retired, by
/// physical switch and datapath rule id.
#[derive(Debug, Default)]
pub struct Retired {
    /// Physical switch → datapath rule id → final counters.
    pub by_switch: BTreeMap<String, crate::FastMap<u32, RuleStats>>,
}

impl Retired {
    /// The final counters of a retired rule, summed over physical switches (zero where
    /// it was not retired).
    #[must_use]
    pub fn of(&self, rule: &Installed) -> RuleStats {
        let mut f = RuleStats::default();
        for (sw, rid) in &rule.ids {
            if let Some(st) = self.by_switch.get(sw).and_then(|m| m.get(rid)) {
                f = f.merge(*st);
            }
        }
        f
    }
}

/// Where a set of datapath rules stands on one physical switch
/// ([`Fabric::rules_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RulesState {
    /// None of them is there.
    Missing,
    /// Written, not published: no packet sees them.
    Unpublished,
    /// Visible to packets.
    Published,
    /// Removed by a published version, not reclaimed yet.
    Removed,
    /// Some of each (or rules of another virtual switch).
    Mixed,
}

/// The running fabric.
pub struct Fabric {
    lab: Lab,
    datapaths: BTreeMap<String, Datapath>,
    vswitch_ids: BTreeMap<String, u16>,
    pin_root: PathBuf,
    /// Detached: leave everything running on drop.
    keep: bool,
    /// Published versions not reclaimed yet, per virtual switch, oldest first.
    unreclaimed: HashMap<u16, VecDeque<Unreclaimed>>,
    /// Final counters of the rules reclaimed so far, per virtual switch, until
    /// [`Fabric::take_retired`] takes them, and the newest commit reclaimed.
    retired: HashMap<u16, (u64, Retired)>,
    /// The number the next [`Fabric::commit_staged`] gets.
    next_commit: u64,
    /// The physical switches running a copy of each virtual switch's tables (all of
    /// them after `up`; migration adds and retires copies).
    copies: BTreeMap<u16, BTreeSet<String>>,
}

/// Versions a virtual switch may publish without reclaiming before a commit reclaims
/// anyway (each leaves one subtable list per table in the kernel until then).
const MAX_UNRECLAIMED: usize = 64;

/// A version [`Fabric::commit_staged`] published and no reclaim has covered yet.
#[derive(Debug)]
struct Unreclaimed {
    /// Its commit number.
    commit: u64,
    /// When the last copy published it.
    at: std::time::Instant,
    /// The version it is on each physical switch.
    versions: Vec<(String, u32)>,
}

impl Fabric {
    /// Bring up the lab of `topology` and a datapath on each of its physical switches,
    /// with every virtual switch mapped (and no rules). Pins go under
    /// `pin_root/<lab name>/<switch>`.
    pub fn up(topology: &Topology, pin_root: &Path) -> Result<Self, FabricError> {
        let lab = Lab::up(topology)?;
        let mut fabric = Self::new(lab, pin_root);
        // From here on, Drop tears everything down if a step fails.
        fabric.load_datapaths()?;
        fabric.map_vswitches()?;
        Ok(fabric)
    }

    /// Take over a fabric left running by a control plane that is gone (a crashed
    /// `lime run`): the lab from its saved state (`/run/lime/<lab>/lab.json`, hosts
    /// where the kernel says they are, see [`Lab::adopt`]) and each physical switch's
    /// datapath from its pins under `pin_root/<lab>/<switch>` ([`Datapath::open`]), so
    /// nothing stops forwarding. Every virtual switch is listed as running on every
    /// physical switch (as after [`Fabric::up`]); a control plane that knows better (its
    /// migration journal) says so with [`Fabric::set_copies`]. A physical switch whose
    /// namespace is gone is left out; a host whose link is gone is attached again, to
    /// its place in `fallback` if it has one there (see [`Lab::adopt`]). Returns the
    /// fabric, the hosts attached again (they still need their port mapped:
    /// [`Fabric::move_host`] them), and the physical switches that are gone.
    pub fn adopt(
        lab: &str,
        pin_root: &Path,
        fallback: &[(String, String)],
    ) -> Result<(Self, Vec<String>, Vec<String>), FabricError> {
        let (lab, lost, gone) = Lab::adopt(&lime_lab::LabState::default_dir(lab), fallback)?;
        let mut fabric = Self::new(lab, pin_root);
        let state = fabric.lab.state().clone();
        for sw in &state.topology.switches {
            let ns = state.netns(&sw.name)?;
            let mut dp =
                Datapath::open(&sw.name, Some(&ns), &fabric.pin_root).map_err(dp_err(&sw.name))?;
            dp.set_mode(sw.datapath);
            // Interfaces that died while no control plane ran (a virtual link's veth
            // pair with a physical switch that is gone) leave their links' pins.
            let live = lime_lab::netns::links(&ns)?
                .into_iter()
                .map(|l| l.ifname)
                .collect();
            dp.kernel().drop_stale_link_pins(&live);
            fabric.datapaths.insert(sw.name.clone(), dp);
        }
        fabric.number_vswitches();
        Ok((fabric, lost, gone))
    }

    /// A fabric over `lab` with no datapaths yet, pinning under `pin_root/<lab name>`.
    fn new(lab: Lab, pin_root: &Path) -> Self {
        let pin_root = pin_root.join(lab.state().name());
        Self {
            lab,
            datapaths: BTreeMap::new(),
            vswitch_ids: BTreeMap::new(),
            pin_root,
            keep: false,
            unreclaimed: HashMap::new(),
            retired: HashMap::new(),
            next_commit: 1,
            copies: BTreeMap::new(),
        }
    }

    /// Give each virtual switch its id (its 1-based place in the topology) and a copy on
    /// every physical switch.
    fn number_vswitches(&mut self) {
        let names: Vec<String> = self
            .lab
            .state()
            .topology
            .vswitches
            .iter()
            .map(|v| v.name.clone())
            .collect();
        for (i, name) in names.into_iter().enumerate() {
            let id = u16::try_from(i + 1).unwrap_or(u16::MAX);
            self.vswitch_ids.insert(name, id);
            self.copies
                .insert(id, self.datapaths.keys().cloned().collect());
        }
    }

    /// Save the lab's state where [`Fabric::adopt`] finds it
    /// (`/run/lime/<lab>/lab.json`); tearing the fabric down removes it.
    pub fn save_state(&mut self) -> Result<PathBuf, FabricError> {
        let dir = lime_lab::LabState::default_dir(self.lab.state().name());
        Ok(self.lab.save(&dir)?)
    }

    fn load_datapaths(&mut self) -> Result<(), FabricError> {
        let state = self.lab.state().clone();
        for sw in &state.topology.switches {
            let ns = state.netns(&sw.name)?;
            let mut dp =
                Datapath::load(&sw.name, Some(&ns), &self.pin_root).map_err(dp_err(&sw.name))?;
            dp.set_mode(sw.datapath);
            dp.enable_packet_out().map_err(dp_err(&sw.name))?;
            self.datapaths.insert(sw.name.clone(), dp);
        }
        self.number_vswitches();
        for port in &state.ports {
            let info = match &port.kind {
                PortKind::Underlay { .. } => PortInfo {
                    kind: kind::UNDERLAY,
                    ..PortInfo::default()
                },
                PortKind::Host { host } => {
                    let (vswitch, vport) = self.vport_of(host).unwrap_or((0, 0));
                    if vswitch == 0 {
                        // A host on no virtual switch: its port is not a LIME port.
                        continue;
                    }
                    PortInfo {
                        kind: kind::HOST,
                        flags: 0,
                        vswitch,
                        vport,
                    }
                }
                PortKind::VLink { vswitch, port, .. } => PortInfo {
                    kind: kind::HOST,
                    flags: 0,
                    vswitch: self.vswitch_id(vswitch)?,
                    vport: *port,
                },
            };
            let dp = self
                .datapaths
                .get_mut(&port.switch)
                .ok_or_else(|| FabricError::Unknown {
                    kind: "switch",
                    name: port.switch.clone(),
                })?;
            dp.attach_port(&port.ifname, port.ifindex, info)
                .map_err(dp_err(&port.switch))?;
        }
        // Host ends of veths need an XDP program to accept redirected frames.
        for h in &state.hosts {
            let dp = self
                .datapaths
                .get_mut(&h.switch)
                .ok_or_else(|| FabricError::Unknown {
                    kind: "switch",
                    name: h.switch.clone(),
                })?;
            dp.attach_pass(&h.netns, &h.ifname, h.ifindex)
                .map_err(dp_err(&h.switch))?;
        }
        Ok(())
    }

    /// (virtual switch id, virtual port) of a host.
    #[must_use]
    pub fn vport_of(&self, host: &str) -> Option<(u16, u32)> {
        let topo = &self.lab.state().topology;
        topo.vswitches.iter().find_map(|vs| {
            let p = vs.ports.iter().find(|p| p.host == host)?;
            Some((*self.vswitch_ids.get(&vs.name)?, p.port))
        })
    }

    /// Next underlay hop from `from` towards `to` (BFS over links).
    fn next_hop(&self, from: &str, to: &str) -> Result<String, FabricError> {
        let topo = &self.lab.state().topology;
        let mut prev: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            if n == to {
                break;
            }
            for l in &topo.links {
                let peer = if l.a == n {
                    l.b.as_str()
                } else if l.b == n {
                    l.a.as_str()
                } else {
                    continue;
                };
                if peer != from && !prev.contains_key(peer) {
                    prev.insert(peer, n);
                    queue.push_back(peer);
                }
            }
        }
        let mut hop = to;
        loop {
            match prev.get(hop) {
                Some(&p) if p == from => return Ok(hop.to_owned()),
                Some(&p) => hop = p,
                None => {
                    return Err(FabricError::NoPath {
                        from: from.to_owned(),
                        to: to.to_owned(),
                    });
                }
            }
        }
    }

    /// Where each virtual port lives, as seen from each physical switch.
    fn map_vswitches(&mut self) -> Result<(), FabricError> {
        let state = self.lab.state().clone();
        let switches: Vec<String> = self.datapaths.keys().cloned().collect();
        for vs in &state.topology.vswitches {
            let id = self.vswitch_ids[&vs.name];
            for sw in &switches {
                self.datapaths
                    .get_mut(sw)
                    .expect("datapath exists")
                    .add_vswitch(id)
                    .map_err(dp_err(sw))?;
            }
            let ports: Vec<u32> = vs
                .ports
                .iter()
                .map(|p| p.port)
                .chain(state.topology.vlink_ends_of(&vs.name).map(|(e, _)| e.port))
                .collect();
            for sw in &switches {
                self.datapaths
                    .get_mut(sw)
                    .expect("datapath exists")
                    .set_flood_ports(id, &ports)
                    .map_err(dp_err(sw))?;
            }
            for p in &vs.ports {
                for sw in &switches {
                    let info = self.vport_info(&state, sw, &p.host)?;
                    self.datapaths
                        .get_mut(sw)
                        .expect("datapath exists")
                        .set_vport(id, p.port, info)
                        .map_err(dp_err(sw))?;
                }
            }
            for (end, _) in state.topology.vlink_ends_of(&vs.name) {
                self.point_vlink_end(&state, id, &vs.name, end.port, None)?;
            }
        }
        Ok(())
    }

    /// Tell every physical switch (`first` first) where the link end on virtual port
    /// `port` of `vswitch` (id `id`) lives: the current pair's end in `state`.
    fn point_vlink_end(
        &mut self,
        state: &lime_lab::LabState,
        id: u16,
        vswitch: &str,
        port: u32,
        first: Option<&str>,
    ) -> Result<(), FabricError> {
        let local = state
            .vlink_port(vswitch, port)
            .ok_or_else(|| FabricError::Unknown {
                kind: "virtual link port",
                name: format!("{vswitch}:{port}"),
            })?
            .clone();
        let mut order: Vec<String> = first.map(str::to_owned).into_iter().collect();
        order.extend(
            self.datapaths
                .keys()
                .filter(|s| Some(s.as_str()) != first)
                .cloned(),
        );
        for sw in order {
            let info = self.vport_info_at(state, &sw, &local)?;
            self.datapaths
                .get_mut(&sw)
                .expect("datapath exists")
                .set_vport(id, port, info)
                .map_err(dp_err(&sw))?;
        }
        Ok(())
    }

    /// Where `host`'s virtual port lives, as seen from physical switch `sw`: its local
    /// switch-side veth on the host's own switch, else the underlay port of the next hop
    /// towards it.
    fn vport_info(
        &self,
        state: &lime_lab::LabState,
        sw: &str,
        host: &str,
    ) -> Result<VportInfo, FabricError> {
        let port = state.host_port(host).ok_or_else(|| FabricError::Unknown {
            kind: "host port",
            name: host.to_owned(),
        })?;
        self.vport_info_at(state, sw, port)
    }

    /// Where a virtual port whose switch-side interface is `local` lives, as seen from
    /// physical switch `sw`: that interface on its own switch, else the underlay port of
    /// the next hop towards it.
    fn vport_info_at(
        &self,
        state: &lime_lab::LabState,
        sw: &str,
        local: &SwitchPort,
    ) -> Result<VportInfo, FabricError> {
        if sw == local.switch {
            return Ok(VportInfo {
                location: location::LOCAL,
                ifindex: local.ifindex,
                ..VportInfo::default()
            });
        }
        let hop = self.next_hop(sw, &local.switch)?;
        let up = state
            .underlay_port(sw, &hop)
            .ok_or_else(|| FabricError::NoPath {
                from: sw.to_owned(),
                to: hop.clone(),
            })?;
        let peer = state
            .underlay_port(&hop, sw)
            .ok_or_else(|| FabricError::NoPath {
                from: hop.clone(),
                to: sw.to_owned(),
            })?;
        Ok(VportInfo {
            location: location::REMOTE,
            _pad: [0; 3],
            ifindex: up.ifindex,
            outer_src: up.mac.octets(),
            outer_dst: peer.mac.octets(),
        })
    }

    /// The lab.
    #[must_use]
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// A physical switch's datapath.
    #[must_use]
    pub fn datapath(&self, switch: &str) -> Option<&Datapath> {
        self.datapaths.get(switch)
    }

    /// All datapaths by physical switch.
    pub fn datapaths(&self) -> impl Iterator<Item = (&String, &Datapath)> {
        self.datapaths.iter()
    }

    /// The datapath-local id of a virtual switch.
    pub fn vswitch_id(&self, name: &str) -> Result<u16, FabricError> {
        self.vswitch_ids
            .get(name)
            .copied()
            .ok_or_else(|| FabricError::Unknown {
                kind: "virtual switch",
                name: name.to_owned(),
            })
    }

    /// Install rules on a virtual switch, on every physical switch, each as one version.
    /// A failure on any switch removes what was installed on the others.
    pub fn install(
        &mut self,
        vswitch: &str,
        rules: &[Rule],
    ) -> Result<Vec<Installed>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        let copies = self.copies_of(id);
        let mut out = vec![Installed::default(); rules.len()];
        let mut done: Vec<String> = Vec::new();
        for (sw, dp) in self
            .datapaths
            .iter_mut()
            .filter(|(sw, _)| copies.contains(*sw))
        {
            match dp.install(id, rules) {
                Ok(ids) => {
                    for (o, rid) in out.iter_mut().zip(ids) {
                        o.ids.insert(sw.clone(), rid);
                    }
                    done.push(sw.clone());
                }
                Err(e) => {
                    let err = dp_err(sw)(e);
                    for sw in done {
                        let dp = self.datapaths.get_mut(&sw).expect("datapath exists");
                        for o in &out {
                            if let Some(rid) = o.ids.get(&sw) {
                                let _ = dp.stage_remove(*rid);
                            }
                        }
                        let _ = dp.commit(id);
                    }
                    return Err(err);
                }
            }
        }
        Ok(out)
    }

    /// One versioned update on every physical switch: remove `remove` and add `add` as a
    /// single version each (a packet sees all of it or none of it), then reclaim the old
    /// version after the grace period (waiting for it). Returns the added rules and the
    /// final counters of the removed ones (summed over switches). It takes every final
    /// counter the virtual switch has waiting ([`Fabric::take_retired`]): not for a
    /// virtual switch a [`crate::vswitch::VirtualSwitch`] drives.
    pub fn update(
        &mut self,
        vswitch: &str,
        remove: &[Installed],
        add: &[Rule],
    ) -> Result<(Vec<Installed>, Vec<RuleStats>), FabricError> {
        let out = self.stage(vswitch, remove, add)?;
        let commit = self.commit_staged(vswitch)?;
        self.reclaim_through(vswitch, commit)?;
        let (_, retired) = self.take_retired(vswitch)?;
        let finals = remove.iter().map(|r| retired.of(r)).collect();
        Ok((out, finals))
    }

    /// Make room for `additional` more rules of a virtual switch on every copy (a
    /// large batch about to be staged).
    pub fn reserve(&mut self, vswitch: &str, additional: usize) -> Result<(), FabricError> {
        let id = self.vswitch_id(vswitch)?;
        let copies = self.copies_of(id);
        for (_, dp) in self
            .datapaths
            .iter_mut()
            .filter(|(sw, _)| copies.contains(*sw))
        {
            dp.reserve(id, additional);
        }
        Ok(())
    }

    /// Stage one change (remove `remove`, add `add`) at the next version on every
    /// physical switch, without publishing: several stages form one version when
    /// [`Fabric::commit_staged`] runs. All or nothing: on error, what this call staged
    /// is undone everywhere and earlier stages stay staged.
    pub fn stage(
        &mut self,
        vswitch: &str,
        remove: &[Installed],
        add: &[Rule],
    ) -> Result<Vec<Installed>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        let mut out = vec![Installed::default(); add.len()];
        // Called once per flow-mod: no copy of the copy set or of switch names here.
        let Self {
            datapaths, copies, ..
        } = self;
        let copies = copies.get(&id);
        let savepoints: Vec<crate::datapath::store::Savepoint> =
            datapaths.values().map(|dp| dp.savepoint(id)).collect();
        let mut failed = None;
        for (sw, dp) in datapaths
            .iter_mut()
            .filter(|(sw, _)| copies.is_some_and(|c| c.contains(*sw)))
        {
            let staged = (|| {
                for r in remove {
                    if let Some(rid) = r.ids.get(sw) {
                        dp.stage_remove(*rid)?;
                    }
                }
                let mut ids = Vec::with_capacity(add.len());
                for r in add {
                    ids.push(dp.stage_add(id, r)?);
                }
                Ok(ids)
            })();
            match staged {
                Ok(ids) => {
                    for (o, rid) in out.iter_mut().zip(ids) {
                        o.ids.insert(sw.clone(), rid);
                    }
                }
                Err(e) => {
                    failed = Some(dp_err(sw)(e));
                    break;
                }
            }
        }
        if let Some(err) = failed {
            // The same map, unchanged since: the same order.
            for (dp, sp) in datapaths.values_mut().zip(savepoints) {
                dp.rollback_to(id, sp);
            }
            return Err(err);
        }
        Ok(out)
    }

    /// Publish everything staged for a virtual switch as one version on every physical
    /// switch, and return at once with the commit's number: the previous version is
    /// reclaimed later, once the grace period after this publish is over
    /// ([`Fabric::reclaim_ready`], [`Fabric::reclaim_through`]), and the final counters
    /// of the rules it removed wait for [`Fabric::take_retired`] then. Only when
    /// `MAX_UNRECLAIMED` versions wait does a commit reclaim the oldest ones itself
    /// (waiting out what is left of their grace period).
    pub fn commit_staged(&mut self, vswitch: &str) -> Result<u64, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        let copies = self.copies_of(id);
        // Two phases: every copy writes the new version and marks it ready; only then
        // does each publish it. A copy that receives a packet another copy already
        // processed with the new version (the version travels in the tunnel header)
        // moves to it at once, so nothing causally after that packet is processed with
        // the old rules anywhere.
        let mut failed = None;
        let mut prepared = Vec::new();
        for (sw, dp) in self
            .datapaths
            .iter_mut()
            .filter(|(sw, _)| copies.contains(*sw))
        {
            if failed.is_some() {
                dp.abort(id);
                continue;
            }
            match dp.prepare(id) {
                Ok(true) => prepared.push(sw.clone()),
                Ok(false) => {}
                Err(e) => failed = Some(dp_err(sw)(e)),
            }
        }
        if let Some(e) = failed {
            // Nothing was published, so no packet carries the new version: undo.
            for sw in prepared {
                if let Some(dp) = self.datapaths.get_mut(&sw) {
                    dp.unprepare(id);
                }
            }
            return Err(e);
        }
        crate::migration::journal::fault_point("batch-prepared");
        let mut versions = Vec::with_capacity(prepared.len());
        for (i, sw) in prepared.into_iter().enumerate() {
            if i == 1 {
                crate::migration::journal::fault_point("batch-half-published");
            }
            let dp = self.datapaths.get_mut(&sw).expect("prepared copy exists");
            dp.publish(id).map_err(dp_err(&sw))?;
            versions.push((sw, dp.version(id).unwrap_or(0)));
        }
        let commit = self.next_commit;
        self.next_commit += 1;
        let waiting = self.unreclaimed.entry(id).or_default();
        waiting.push_back(Unreclaimed {
            commit,
            at: std::time::Instant::now(),
            versions,
        });
        if waiting.len() >= MAX_UNRECLAIMED {
            let oldest = waiting.front().map_or(commit, |u| u.commit);
            self.reclaim_id(id, Some(oldest))?;
        }
        Ok(commit)
    }

    /// Reclaim, on every copy, the versions of virtual switch `id` whose grace period
    /// is over; with `through`, first wait until the grace period of commit `through`
    /// (and every one before it) is over. The final counters of the rules retired are
    /// kept for [`Fabric::take_retired`].
    fn reclaim_id(&mut self, id: u16, through: Option<u64>) -> Result<(), FabricError> {
        if let Some(through) = through {
            self.wait_grace_id(id, through);
        }
        let Some(waiting) = self.unreclaimed.get_mut(&id) else {
            return Ok(());
        };
        let due = waiting
            .iter()
            .take_while(|u| u.at.elapsed() >= crate::datapath::GRACE)
            .count();
        if due == 0 {
            return Ok(());
        }
        let mut upto: BTreeMap<String, u32> = BTreeMap::new();
        let mut last = 0;
        for u in waiting.drain(..due) {
            last = u.commit;
            for (sw, v) in u.versions {
                let e = upto.entry(sw).or_insert(v);
                *e = (*e).max(v);
            }
        }
        if waiting.is_empty() {
            self.unreclaimed.remove(&id);
        }
        let (done, retired) = self.retired.entry(id).or_default();
        *done = last;
        for (sw, v) in upto {
            let Some(dp) = self.datapaths.get_mut(&sw) else {
                continue;
            };
            let r = dp.reclaim_upto(id, v).map_err(dp_err(&sw))?;
            retired.by_switch.entry(sw).or_default().extend(r);
        }
        Ok(())
    }

    /// Reclaim the versions of every virtual switch whose grace period is over, without
    /// waiting (the switch core's reclaim tick).
    pub fn reclaim_ready(&mut self) -> Result<(), FabricError> {
        let ids: Vec<u16> = self.unreclaimed.keys().copied().collect();
        for id in ids {
            self.reclaim_id(id, None)?;
        }
        Ok(())
    }

    /// Wait until the grace period after the publish of a virtual switch's commit
    /// `commit` (and of every one before it) is over, reclaiming nothing: from then on
    /// no packet is processed with a version older than `commit`'s, so the counters of
    /// the rules those versions left are final and can be read before they are
    /// reclaimed (the migration journal records them first).
    pub fn wait_grace(&self, vswitch: &str, commit: u64) -> Result<(), FabricError> {
        let id = self.vswitch_id(vswitch)?;
        self.wait_grace_id(id, commit);
        Ok(())
    }

    fn wait_grace_id(&self, id: u16, through: u64) {
        if let Some(u) = self
            .unreclaimed
            .get(&id)
            .and_then(|w| w.iter().rev().find(|u| u.commit <= through))
        {
            let since = u.at.elapsed();
            if since < crate::datapath::GRACE {
                std::thread::sleep(crate::datapath::GRACE - since);
            }
        }
    }

    /// Reclaim a virtual switch's versions through commit `commit` (a number
    /// [`Fabric::commit_staged`] returned), waiting for what is left of its grace period.
    pub fn reclaim_through(&mut self, vswitch: &str, commit: u64) -> Result<(), FabricError> {
        let id = self.vswitch_id(vswitch)?;
        self.reclaim_id(id, Some(commit))
    }

    /// When the oldest published version not reclaimed yet can be (its grace period is
    /// over), if there is one.
    #[must_use]
    pub fn next_reclaim(&self) -> Option<std::time::Instant> {
        self.unreclaimed
            .values()
            .filter_map(|w| w.front())
            .map(|u| u.at + crate::datapath::GRACE)
            .min()
    }

    /// Whether virtual switch `vswitch` has published versions not reclaimed yet.
    #[must_use]
    pub fn unreclaimed(&self, vswitch: &str) -> bool {
        self.vswitch_id(vswitch)
            .is_ok_and(|id| self.unreclaimed.contains_key(&id))
    }

    /// The final counters of the rules reclaimed for a virtual switch since the last
    /// call, and the newest commit reclaimed (every commit up to it is: the rules each
    /// removed are in there). A rule id is reused only after it was reclaimed, so take
    /// them before staging anything new for the virtual switch, or two rules may meet
    /// under one id.
    pub fn take_retired(&mut self, vswitch: &str) -> Result<(u64, Retired), FabricError> {
        let id = self.vswitch_id(vswitch)?;
        Ok(match self.retired.get_mut(&id) {
            Some((done, r)) => (*done, std::mem::take(r)),
            None => (0, Retired::default()),
        })
    }

    /// Reclaim the versions [`Fabric::commit_staged`] left for later, of every virtual
    /// switch (waiting for the rest of the grace period if one was published just now).
    pub fn reclaim_due(&mut self) -> Result<(), FabricError> {
        let due: Vec<(u16, u64)> = self
            .unreclaimed
            .iter()
            .filter_map(|(id, w)| Some((*id, w.back()?.commit)))
            .collect();
        for (id, last) in due {
            self.reclaim_id(id, Some(last))?;
        }
        Ok(())
    }

    fn copies_of(&self, id: u16) -> BTreeSet<String> {
        self.copies.get(&id).cloned().unwrap_or_default()
    }

    /// The physical switches running a copy of a virtual switch's tables.
    pub fn copies(&self, vswitch: &str) -> Result<Vec<String>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        Ok(self.copies_of(id).into_iter().collect())
    }

    /// Drop the copies of `vswitch` on the physical switches where it has neither a
    /// host nor a virtual link end, while its table is still empty: a fresh lab runs
    /// every virtual switch everywhere, and a setup that wants it only where it is used
    /// (so a migration clones it to a target) says so with this. Refused if a copy to drop holds rules (their counters would be lost
    /// with it); the last copy is always kept. Returns the switches dropped.
    pub fn drop_unused_copies(&mut self, vswitch: &str) -> Result<Vec<String>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        let state = self.lab.state();
        let unused: Vec<String> = self
            .copies_of(id)
            .into_iter()
            .filter(|sw| {
                let hosts = state.topology.vswitch(vswitch).is_some_and(|vs| {
                    vs.ports
                        .iter()
                        .any(|p| state.host(&p.host).is_some_and(|h| &h.switch == sw))
                });
                !hosts && self.vlink_ends_on(vswitch, sw).is_empty()
            })
            .collect();
        let mut dropped = Vec::new();
        for sw in unused {
            let dp = self
                .datapaths
                .get(&sw)
                .ok_or_else(|| FabricError::Unknown {
                    kind: "physical switch",
                    name: sw.clone(),
                })?;
            let version = dp.version(id).unwrap_or(0);
            if dp.store().visible(id, version).next().is_some() {
                return Err(FabricError::Copy {
                    vswitch: vswitch.to_owned(),
                    switch: sw,
                    why: "holds rules (retire it with remove_copy)",
                });
            }
            if self.copies_of(id).len() == 1 {
                break;
            }
            self.remove_copy(vswitch, &sw, &[], |_| Ok(()))?;
            dropped.push(sw);
        }
        Ok(dropped)
    }

    /// Start a copy of a virtual switch on physical switch `switch`: install `rules` (the
    /// virtual switch's whole table, in order) there as one version. All or nothing.
    /// From now on every versioned update reaches the new copy too. Returns the rules'
    /// datapath ids on `switch`, in order.
    pub fn add_copy(
        &mut self,
        vswitch: &str,
        switch: &str,
        rules: &[Rule],
    ) -> Result<Vec<u32>, FabricError> {
        self.add_copy_with(vswitch, switch, rules, |_| Ok(()))
    }

    /// [`Fabric::add_copy`], telling `staged` the datapath ids the rules will have once
    /// they are staged and before anything is written to the kernel (the migration
    /// journal records them there). An error from `staged` stops the copy: nothing was
    /// written.
    pub fn add_copy_with(
        &mut self,
        vswitch: &str,
        switch: &str,
        rules: &[Rule],
        staged: impl FnOnce(&[u32]) -> Result<(), String>,
    ) -> Result<Vec<u32>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        if self.copies_of(id).contains(switch) {
            return Err(FabricError::Copy {
                vswitch: vswitch.to_owned(),
                switch: switch.to_owned(),
                why: "already runs a copy",
            });
        }
        // Pending versions of the existing copies first: the new copy starts from what
        // is published.
        self.reclaim_due()?;
        let dp = self
            .datapaths
            .get_mut(switch)
            .ok_or_else(|| FabricError::Unknown {
                kind: "switch",
                name: switch.to_owned(),
            })?;
        let mut ids = Vec::with_capacity(rules.len());
        for r in rules {
            match dp.stage_add(id, r) {
                Ok(rid) => ids.push(rid),
                Err(e) => {
                    dp.abort(id);
                    return Err(dp_err(switch)(e));
                }
            }
        }
        if let Err(why) = staged(&ids) {
            dp.abort(id);
            return Err(FabricError::Stopped {
                step: "installing the copy",
                why,
            });
        }
        dp.commit(id).map_err(dp_err(switch))?;
        self.copies.entry(id).or_default().insert(switch.to_owned());
        Ok(ids)
    }

    /// Retire the copy of a virtual switch on physical switch `switch`: remove its rules
    /// (`rule_ids`, datapath ids there) as one version, reclaim them, and return their
    /// final counters, in order. Refused while a host of the virtual switch is still
    /// attached there, or if it is the last copy.
    ///
    /// `removed` is told the final counters once the rules are out of every version a
    /// packet can still use, before they are reclaimed (the migration journal records
    /// them there, so a crash cannot lose them); an error from it leaves the rules
    /// removed but not reclaimed, and the copy still listed.
    pub fn remove_copy(
        &mut self,
        vswitch: &str,
        switch: &str,
        rule_ids: &[u32],
        removed: impl FnOnce(&[RuleStats]) -> Result<(), String>,
    ) -> Result<Vec<RuleStats>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        let copies = self.copies_of(id);
        let refuse = |why| FabricError::Copy {
            vswitch: vswitch.to_owned(),
            switch: switch.to_owned(),
            why,
        };
        if !copies.contains(switch) {
            return Err(refuse("runs no copy"));
        }
        if copies.len() == 1 {
            return Err(refuse("is the last copy"));
        }
        let state = self.lab.state();
        let still_here = state.topology.vswitch(vswitch).is_some_and(|vs| {
            vs.ports
                .iter()
                .any(|p| state.host(&p.host).is_some_and(|h| h.switch == switch))
        });
        if still_here {
            return Err(refuse("still has hosts of the virtual switch attached"));
        }
        if !self.vlink_ends_on(vswitch, switch).is_empty() {
            return Err(refuse(
                "still holds virtual link ends of the virtual switch",
            ));
        }
        self.drop_copy(id, switch, rule_ids, removed)
    }

    /// Stop the copy of a virtual switch on physical switch `switch` at once, hosts
    /// attached or not, even if it is the last one: its rules are removed (final
    /// counters returned, in order), so whatever enters there is dropped as a table
    /// miss until the hosts are elsewhere. The naive `move` strategy's freeze.
    /// `removed` as for [`Fabric::remove_copy`].
    pub fn freeze_copy(
        &mut self,
        vswitch: &str,
        switch: &str,
        rule_ids: &[u32],
        removed: impl FnOnce(&[RuleStats]) -> Result<(), String>,
    ) -> Result<Vec<RuleStats>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        if !self.copies_of(id).contains(switch) {
            return Err(FabricError::Copy {
                vswitch: vswitch.to_owned(),
                switch: switch.to_owned(),
                why: "runs no copy",
            });
        }
        self.drop_copy(id, switch, rule_ids, removed)
    }

    fn drop_copy(
        &mut self,
        id: u16,
        switch: &str,
        rule_ids: &[u32],
        removed: impl FnOnce(&[RuleStats]) -> Result<(), String>,
    ) -> Result<Vec<RuleStats>, FabricError> {
        self.reclaim_due()?;
        let dp = self
            .datapaths
            .get_mut(switch)
            .expect("a copy's switch has a datapath");
        for rid in rule_ids {
            if let Err(e) = dp.stage_remove(*rid) {
                dp.abort(id);
                return Err(dp_err(switch)(e));
            }
        }
        dp.commit(id).map_err(dp_err(switch))?;
        // Once the grace period is over no packet uses the removed rules: their
        // counters are final before the reclaim deletes them.
        std::thread::sleep(crate::datapath::GRACE);
        let finals = dp.rule_stats_many(rule_ids).map_err(dp_err(switch))?;
        removed(&finals).map_err(|why| FabricError::Stopped {
            step: "reclaiming the removed copy",
            why,
        })?;
        dp.reclaim(id).map_err(dp_err(switch))?;
        self.copies.entry(id).or_default().remove(switch);
        Ok(finals)
    }

    /// Finish retiring a copy whose rules were removed (published) before a restart of
    /// the control plane: reclaim what is left of them there and stop listing the copy.
    /// Returns the final counters of the rules reclaimed, by datapath rule id.
    pub fn finish_retire(
        &mut self,
        vswitch: &str,
        switch: &str,
    ) -> Result<Vec<(u32, RuleStats)>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        // Commits still waiting keep their final counters apart (take_retired).
        self.reclaim_due()?;
        let retired = match self.datapaths.get_mut(switch) {
            Some(dp) => dp.reclaim(id).map_err(dp_err(switch))?,
            None => Vec::new(),
        };
        self.copies.entry(id).or_default().remove(switch);
        Ok(retired)
    }

    /// Where datapath rules `rule_ids` of a virtual switch stand on physical switch
    /// `switch` (a restarted control plane settling a step a crash cut short).
    pub fn rules_state(
        &self,
        vswitch: &str,
        switch: &str,
        rule_ids: &[u32],
    ) -> Result<RulesState, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        let dp = self
            .datapaths
            .get(switch)
            .ok_or_else(|| unknown_switch(switch))?;
        let v = dp.version(id).unwrap_or(0);
        let mut seen = BTreeSet::new();
        for rid in rule_ids {
            seen.insert(match dp.store().rule(*rid) {
                None => RulesState::Missing,
                Some(r) if r.vswitch != id => RulesState::Mixed,
                Some(r) if r.add_version > v => RulesState::Unpublished,
                Some(r) if r.remove_version <= v => RulesState::Removed,
                Some(_) => RulesState::Published,
            });
        }
        Ok(match seen.len() {
            0 => RulesState::Missing,
            1 => seen.pop_first().unwrap_or(RulesState::Mixed),
            _ => RulesState::Mixed,
        })
    }

    /// Remove rules that were written to `switch` for virtual switch `vswitch` but never
    /// published (a copy whose install a crash cut short): they are staged for removal,
    /// so they never become visible, and reclaimed.
    pub fn discard_unpublished(
        &mut self,
        vswitch: &str,
        switch: &str,
        rule_ids: &[u32],
    ) -> Result<(), FabricError> {
        let id = self.vswitch_id(vswitch)?;
        self.reclaim_due()?;
        let dp = self
            .datapaths
            .get_mut(switch)
            .ok_or_else(|| unknown_switch(switch))?;
        let v = dp.version(id).unwrap_or(0);
        for rid in rule_ids {
            if dp
                .store()
                .rule(*rid)
                .is_some_and(|r| r.vswitch == id && r.add_version > v)
            {
                dp.stage_remove(*rid).map_err(dp_err(switch))?;
            }
        }
        dp.commit(id).map_err(dp_err(switch))?;
        dp.reclaim(id).map_err(dp_err(switch))?;
        Ok(())
    }

    /// The version the next [`Fabric::commit_staged`] of a virtual switch publishes on
    /// each physical switch running a copy (what the migration journal records before
    /// a batch is published, to tell after a crash whether it was).
    pub fn next_versions(&self, vswitch: &str) -> Result<BTreeMap<String, u32>, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        let copies = self.copies_of(id);
        Ok(self
            .datapaths
            .iter()
            .filter(|(sw, _)| copies.contains(*sw))
            .map(|(sw, dp)| (sw.clone(), dp.version(id).unwrap_or(0) + 1))
            .collect())
    }

    /// Settle a versioned update of a virtual switch that a crash of the control plane
    /// cut short (see [`Datapath::settle_prepared`]): `publish` publishes it on every
    /// physical switch in `on` where it is prepared and not published yet, then
    /// reclaims what it retired and returns those rules' final counters; otherwise it
    /// is dropped wherever it was written. Physical switches that are gone are skipped.
    pub fn settle_prepared(
        &mut self,
        vswitch: &str,
        on: &[String],
        publish: bool,
    ) -> Result<Retired, FabricError> {
        let id = self.vswitch_id(vswitch)?;
        for sw in on {
            if let Some(dp) = self.datapaths.get_mut(sw) {
                dp.settle_prepared(id, publish).map_err(dp_err(sw))?;
            }
        }
        if !publish {
            return Ok(Retired::default());
        }
        // Versions this control plane published itself are reclaimed the usual way
        // (their counters wait for [`Fabric::take_retired`]); what is left retired is
        // the crashed one's: reclaim it on every copy now and hand its counters back.
        self.reclaim_id(id, Some(u64::MAX))?;
        let copies = self.copies_of(id);
        let mut retired = Retired::default();
        for (sw, dp) in self
            .datapaths
            .iter_mut()
            .filter(|(sw, _)| copies.contains(*sw))
        {
            let r = dp.reclaim(id).map_err(dp_err(sw))?;
            retired
                .by_switch
                .insert(sw.clone(), r.into_iter().collect());
        }
        Ok(retired)
    }

    /// Set the physical switches that run a copy of a virtual switch (a restarted
    /// control plane, from its journal).
    pub fn set_copies(&mut self, vswitch: &str, copies: &[String]) -> Result<(), FabricError> {
        let id = self.vswitch_id(vswitch)?;
        self.copies.insert(id, copies.iter().cloned().collect());
        Ok(())
    }

    /// Move a host to physical switch `to`, as a VM is moved: its link is recreated
    /// there (same MAC and addresses, same virtual port), LIME's program is attached to
    /// the new switch-side port, and every physical switch learns where the virtual port
    /// lives now (the new switch first, so frames already on their way are forwarded one
    /// more hop rather than lost). Returns how long the host could not reach the
    /// virtual switch (link down until everything is in place).
    pub fn move_host(&mut self, host: &str, to: &str) -> Result<std::time::Duration, FabricError> {
        let (id, vport) = self.vport_of(host).ok_or_else(|| FabricError::Unknown {
            kind: "host on a virtual switch",
            name: host.to_owned(),
        })?;
        if !self.datapaths.contains_key(to) {
            return Err(FabricError::Unknown {
                kind: "switch",
                name: to.to_owned(),
            });
        }
        // (A host whose link a crash cut is attached afresh: it has no old port.)
        let old = self.lab.state().host_port(host).cloned();
        let old_switch = self.lab.state().host(host).map(|h| h.switch.clone());
        let started = std::time::Instant::now();
        let port = self.lab.move_host(host, to)?;
        // The old switch-side port is gone with its veth: forget it there.
        if let Some(old) = &old
            && let Some(dp) = self.datapaths.get_mut(&old.switch)
        {
            dp.kernel_mut().remove_port(old.ifindex);
            let _ = dp.kernel().detach(&format!("link-{}", old.ifname));
            let _ = dp.kernel().detach(&format!("tc-{}", old.ifname));
        }
        let state = self.lab.state().clone();
        let h = state.host(host).expect("moved host exists").clone();
        if let Some(dp) = old_switch.and_then(|sw| self.datapaths.get(&sw)) {
            let _ = dp
                .kernel()
                .detach(&format!("pass-{}-{}", h.netns, h.ifname));
        }
        let dp = self.datapaths.get_mut(to).expect("checked");
        dp.attach_port(
            &port.ifname,
            port.ifindex,
            PortInfo {
                kind: kind::HOST,
                flags: 0,
                vswitch: id,
                vport,
            },
        )
        .map_err(dp_err(to))?;
        dp.attach_pass(&h.netns, &h.ifname, h.ifindex)
            .map_err(dp_err(to))?;
        let mut order: Vec<String> = vec![to.to_owned()];
        order.extend(self.datapaths.keys().filter(|s| *s != to).cloned());
        for sw in order {
            let info = self.vport_info(&state, &sw, host)?;
            self.datapaths
                .get_mut(&sw)
                .expect("datapath exists")
                .set_vport(id, vport, info)
                .map_err(dp_err(&sw))?;
        }
        // The kernel reports a new veth's carrier a little later (linkwatch): wait
        // until both ends are running, so the move is over when this returns (and no
        // one sees the port down afterwards).
        wait_up([(&port.netns, &port.ifname), (&h.netns, &h.ifname)]);
        // What the host sent between its link coming up and LIME's program being
        // attached (its first ARP, say) went to the switch's own stack; a host whose
        // neighbour lookup is pending would wait a whole retransmit interval. Let it
        // ask again now. (What it had learned before the move stays: see
        // `Lab::move_host`.)
        lime_lab::netns::ip(&[
            "-n",
            &h.netns,
            "neigh",
            "flush",
            "dev",
            &h.ifname,
            "nud",
            "incomplete",
            "nud",
            "failed",
        ])?;
        Ok(started.elapsed())
    }

    /// The virtual ports of `vswitch` where a virtual link ends on physical switch
    /// `switch`.
    #[must_use]
    pub fn vlink_ends_on(&self, vswitch: &str, switch: &str) -> Vec<u32> {
        let topo = &self.lab.state().topology;
        topo.vlink_ends_of(vswitch)
            .filter(|(e, _)| e.switch == switch)
            .map(|(e, _)| e.port)
            .collect()
    }

    /// Move the end of a virtual link on virtual port `port` of `vswitch` to physical
    /// switch `to`, make-before-break, so the link loses nothing (unlike a host's
    /// re-attach): a new veth pair is made with this end at `to` and the other end
    /// where it is, LIME's program is attached to both new ends, every physical switch
    /// is told where each of the two virtual ports lives now (this end's new switch
    /// first, then the other end's), and only then, after the grace period (frames on
    /// their way through the old pair arrive), is the old pair removed. Returns how long
    /// it took.
    pub fn move_vlink_end(
        &mut self,
        vswitch: &str,
        port: u32,
        to: &str,
    ) -> Result<std::time::Duration, FabricError> {
        self.move_vlink_end_with(vswitch, port, to, || Ok(()))
    }

    /// [`Fabric::move_vlink_end`], telling `carried` once the new pair carries the link
    /// and before the old one goes (an error from it stops there: both pairs stay, the
    /// new one carrying). It also finishes a move a crash of the control plane cut
    /// short: if the end's newest pair already ends at `to`, no pair is made; what is
    /// left is done (programs attached where they are missing, both ends pointed at,
    /// older pairs removed).
    pub fn move_vlink_end_with(
        &mut self,
        vswitch: &str,
        port: u32,
        to: &str,
        carried: impl FnOnce() -> Result<(), String>,
    ) -> Result<std::time::Duration, FabricError> {
        let started = std::time::Instant::now();
        if !self.datapaths.contains_key(to) {
            return Err(unknown_switch(to));
        }
        let state = self.lab.state();
        let (link, side, _, other) =
            state
                .topology
                .vlink_at(vswitch, port)
                .ok_or_else(|| FabricError::Unknown {
                    kind: "virtual link end",
                    name: format!("{vswitch}:{port}"),
                })?;
        let (peer, peer_port) = (other.vswitch.clone(), other.port);
        let (id, peer_id) = (self.vswitch_id(vswitch)?, self.vswitch_id(&peer)?);
        if state.vlink_port(vswitch, port).map(|p| p.switch.as_str()) != Some(to) {
            self.lab.add_vlink_pair(link, side, to)?;
        }
        let state = self.lab.state().clone();
        let newest = state.vlink_generation(link).unwrap_or(0);
        // Every older pair's ends (one, unless a crash left more).
        let old: Vec<SwitchPort> = state
            .ports
            .iter()
            .filter(|p| {
                matches!(p.kind, PortKind::VLink { link: l, generation, .. } if l == link && generation < newest)
            })
            .cloned()
            .collect();
        let new: Vec<(SwitchPort, u16, u32)> =
            [(vswitch, port, id), (peer.as_str(), peer_port, peer_id)]
                .iter()
                .filter_map(|(v, p, i)| state.vlink_port(v, *p).map(|sp| (sp.clone(), *i, *p)))
                .collect();
        for (sp, i, p) in &new {
            let dp = self
                .datapaths
                .get_mut(&sp.switch)
                .ok_or_else(|| unknown_switch(&sp.switch))?;
            let pins = dp.kernel().pin_dir();
            if pins.join(format!("link-{}", sp.ifname)).exists()
                && pins.join(format!("tc-{}", sp.ifname)).exists()
            {
                // Attached before a crash (re-attaching would replace the program on a
                // port that may already carry the link).
                continue;
            }
            dp.attach_port(
                &sp.ifname,
                sp.ifindex,
                PortInfo {
                    kind: kind::HOST,
                    flags: 0,
                    vswitch: *i,
                    vport: *p,
                },
            )
            .map_err(dp_err(&sp.switch))?;
        }
        // Carrier first: a veth drops what is redirected into it until both ends run.
        wait_running(new.iter().map(|(sp, _, _)| sp));
        self.point_vlink_end(&state, id, vswitch, port, Some(to))?;
        let peer_at = new.get(1).map(|(sp, _, _)| sp.switch.clone());
        self.point_vlink_end(&state, peer_id, &peer, peer_port, peer_at.as_deref())?;
        carried().map_err(|why| FabricError::Stopped {
            step: "removing the virtual link's old veth pair",
            why,
        })?;
        // Frames already redirected into the old pair, or tunnelled towards its ends,
        // arrive within the grace period; then the old pair goes.
        std::thread::sleep(crate::datapath::GRACE);
        let mut gens = BTreeSet::new();
        for sp in &old {
            if let PortKind::VLink { generation, .. } = sp.kind {
                gens.insert(generation);
            }
            if let Some(dp) = self.datapaths.get_mut(&sp.switch) {
                dp.kernel_mut().remove_port(sp.ifindex);
                let _ = dp.kernel().detach(&format!("link-{}", sp.ifname));
                let _ = dp.kernel().detach(&format!("tc-{}", sp.ifname));
            }
        }
        for g in gens {
            self.lab.remove_vlink_pair(link, g)?;
        }
        Ok(started.elapsed())
    }

    /// Restart the control plane of one physical switch: drop its datapath handle (the
    /// programs stay attached through their pinned links) and re-open it from the pins.
    pub fn reopen_datapath(&mut self, switch: &str) -> Result<(), FabricError> {
        let old = self
            .datapaths
            .remove(switch)
            .ok_or_else(|| FabricError::Unknown {
                kind: "switch",
                name: switch.to_owned(),
            })?;
        let ns = self.lab.state().netns(switch)?;
        let mode = old.mode();
        drop(old);
        let mut dp = Datapath::open(switch, Some(&ns), &self.pin_root).map_err(dp_err(switch))?;
        dp.set_mode(mode);
        self.datapaths.insert(switch.to_owned(), dp);
        Ok(())
    }

    /// A rule's counters summed over every physical switch.
    pub fn rule_stats(&self, rule: &Installed) -> Result<RuleStats, FabricError> {
        Ok(self.rule_stats_many(&[rule])?[0])
    }

    /// The counters of several rules, each summed over every physical switch, in
    /// their order: one batched read per physical switch when they are many (see
    /// [`Datapath::rule_stats_many`]).
    pub fn rule_stats_many(&self, rules: &[&Installed]) -> Result<Vec<RuleStats>, FabricError> {
        let mut totals = vec![RuleStats::default(); rules.len()];
        // Switch → (rule index, datapath rule id) of its copies.
        let mut by_switch: BTreeMap<&str, Vec<(usize, u32)>> = BTreeMap::new();
        for (i, rule) in rules.iter().enumerate() {
            for (sw, rid) in &rule.ids {
                by_switch.entry(sw.as_str()).or_default().push((i, *rid));
            }
        }
        for (sw, copies) in by_switch {
            let dp = self.datapaths.get(sw).ok_or_else(|| FabricError::Unknown {
                kind: "switch",
                name: sw.to_owned(),
            })?;
            let ids: Vec<u32> = copies.iter().map(|&(_, rid)| rid).collect();
            let stats = dp.rule_stats_many(&ids).map_err(dp_err(sw))?;
            for ((i, _), st) in copies.into_iter().zip(stats) {
                totals[i] = totals[i].merge(st);
            }
        }
        Ok(totals)
    }

    /// Mutable datapath of a physical switch (for versioned updates by tests and the
    /// migration engine).
    pub fn datapath_mut(&mut self, switch: &str) -> Option<&mut Datapath> {
        self.datapaths.get_mut(switch)
    }

    /// Leave the fabric running after this process exits: namespaces stay, programs stay
    /// attached through their pinned links, the lab's state is saved for `lime lab down`.
    pub fn detach(mut self) -> Result<lime_lab::LabState, FabricError> {
        let dir = lime_lab::LabState::default_dir(self.lab.state().name());
        self.lab.save(&dir)?;
        self.lab.set_teardown_on_drop(false);
        self.keep = true;
        Ok(self.lab.state().clone())
    }

    /// Tear down a fabric left running by [`Fabric::detach`] (or by a crashed process):
    /// its namespaces and its pins. Returns the namespaces removed.
    pub fn down_by_name(lab: &str, pin_root: &Path) -> Result<Vec<String>, FabricError> {
        let removed = Lab::down_by_name(lab)?;
        let _ = std::fs::remove_dir_all(pin_root.join(lab));
        Ok(removed)
    }

    /// Tear everything down: detach programs, remove pins, delete the namespaces.
    pub fn down(mut self) -> Result<(), FabricError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), FabricError> {
        self.datapaths.clear();
        let _ = std::fs::remove_dir_all(&self.pin_root);
        // The per-run parent directory, if now empty.
        if let Some(parent) = self.pin_root.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        self.lab.refresh().ok();
        Ok(())
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let _ = self.teardown();
        // The lab's own Drop deletes the namespaces.
    }
}

/// Wait (up to 3 s) until every interface `(namespace, name)` reports its carrier up
/// (the kernel tells a new veth's carrier a little later, through linkwatch).
fn wait_up<'a>(ifaces: impl IntoIterator<Item = (&'a String, &'a String)>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    for (ns, ifname) in ifaces {
        while std::time::Instant::now() < deadline
            && !lime_lab::netns::link(ns, ifname).is_ok_and(|l| l.operstate == "UP")
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// [`wait_up`] for switch ports.
fn wait_running<'a>(ports: impl IntoIterator<Item = &'a SwitchPort>) {
    wait_up(ports.into_iter().map(|p| (&p.netns, &p.ifname)));
}

/// Rules that forward by destination MAC and send ARP by target address, for every host
/// of a virtual switch and every host of the virtual switches its virtual links lead to
/// (one link away: out of the link's port): the static L2 forwarding of the demo (no
/// flooding needed). Priority 10 for MACs, 20 for ARP.
#[must_use]
pub fn l2_rules(state: &lime_lab::LabState, vswitch: &str) -> Vec<Rule> {
    use crate::flow::{Action, Instructions, Masked, Match, matching::ethertype};
    let Some(vs) = state.topology.vswitch(vswitch) else {
        return Vec::new();
    };
    let own = vs.ports.iter().map(|p| (p.port, p.host.as_str()));
    let beyond = state
        .topology
        .vlink_ends_of(vswitch)
        .flat_map(|(end, other)| {
            state
                .topology
                .vswitch(&other.vswitch)
                .into_iter()
                .flat_map(|w| w.ports.iter())
                .map(move |p| (end.port, p.host.as_str()))
        });
    let mut rules = Vec::new();
    for (port, host) in own.chain(beyond) {
        let Some(h) = state.host(host) else {
            continue;
        };
        rules.push(Rule::new(
            0,
            10,
            Match {
                eth_dst: Some(Masked::exact(h.mac.octets())),
                ..Match::default()
            },
            Instructions::apply(vec![Action::output(port)]),
        ));
        rules.push(Rule::new(
            0,
            20,
            Match {
                eth_type: Some(ethertype::ARP),
                arp_tpa: Some(Masked::exact(h.ip.addr)),
                ..Match::default()
            },
            Instructions::apply(vec![Action::output(port)]),
        ));
    }
    rules
}

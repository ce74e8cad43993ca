//! What `lime status` shows: where each virtual switch runs, where each of its ports
//! lives, who controls it, and the migration in progress, if any.
//!
//! A migration runs inside the switch core (nothing interleaves with it), so a status
//! request cannot be answered by the core while one runs. The core therefore keeps a
//! [`Live`] view next to its command channel: when a migration starts it stores the
//! current [`Status`] there and updates it at every step (a copy added or retired, a
//! host moved); a status request during the migration is answered from that view.
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::migration::{Phase, Strategy};

/// The daemon's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Lab name.
    pub lab: String,
    /// Every virtual switch.
    pub vswitches: Vec<VswitchStatus>,
    /// The topology's named ensembles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ensembles: Vec<lime_lab::EnsembleSpec>,
    /// The migration in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationStatus>,
}

impl Status {
    /// What `lime migrate <name>` moves: the virtual switches of the ensemble `name`,
    /// in order, or else `name` itself (the daemon says if no virtual switch has it).
    #[must_use]
    pub fn migration_unit(&self, name: &str) -> Vec<String> {
        self.ensembles
            .iter()
            .find(|e| e.name == name)
            .map_or_else(|| vec![name.to_owned()], |e| e.vswitches.clone())
    }
}

/// One virtual switch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VswitchStatus {
    /// Name.
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// OpenFlow datapath id.
    pub dpid: u64,
    /// Physical switches running a copy of its tables.
    pub copies: Vec<String>,
    /// Its virtual ports.
    pub ports: Vec<PortPlace>,
    /// Controller targets configured (`tcp:`/`ptcp:`).
    pub controllers: Vec<String>,
    /// Connected controllers (peer addresses).
    pub connected: Vec<String>,
}

/// Where a virtual port lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPlace {
    /// OpenFlow port number.
    pub port: u32,
    /// The host behind it.
    pub host: String,
    /// The physical switch it is attached to.
    pub switch: String,
}

/// A migration in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationStatus {
    /// Virtual switch.
    pub vswitch: String,
    /// Source physical switch of the current leg.
    pub from: String,
    /// Target physical switch.
    pub to: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Current phase (none before the first starts).
    pub phase: Option<Phase>,
    /// Hosts moved so far, in order.
    pub hosts_moved: Vec<String>,
    /// Whether it is a migration a restarted daemon is finishing (from its journal).
    #[serde(default)]
    pub recovering: bool,
}

/// The view of a running migration, shared between the core and the control socket.
#[derive(Debug, Default)]
pub struct LiveView {
    /// The status when the migration started, updated at every step.
    pub status: Status,
    /// Whether a migration runs (then `status.migration` is set).
    pub running: bool,
}

/// The shared view.
pub type Live = Arc<Mutex<LiveView>>;

/// Run `f` on the live view (a poisoned lock is still usable: the view is plain data).
pub fn update(live: &Live, f: impl FnOnce(&mut LiveView)) {
    let mut g = live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut g);
}

/// The status during a migration, if one runs.
#[must_use]
pub fn during_migration(live: &Live) -> Option<Status> {
    let g = live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    g.running.then(|| g.status.clone())
}

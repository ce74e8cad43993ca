//! The OpenFlow state of one virtual switch, kept by the switch core: identity, ports,
//! switch config, controller connections with their roles and async configs, the flow
//! table, and the fail-standalone learning table. The migration engine moves exactly
//! this (plus the datapath rules the flow table points at) when it moves a switch.
use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use lime_lab::{Controller, FailMode};
use lime_openflow::{
    AsyncConfig, Message, SwitchConfig,
    consts::{ControllerRole, controller_max_len},
};
use tokio::sync::mpsc;

use crate::vswitch::VirtualSwitch;

/// A controller connection's id, unique for the agent's lifetime.
pub type ConnId = u64;

/// One virtual port as the controller sees it.
#[derive(Debug, Clone)]
pub struct VPort {
    /// OpenFlow port number.
    pub port_no: u32,
    /// The host behind it.
    pub host: String,
    /// Physical switch the host is attached to.
    pub switch: String,
    /// Interface index of the switch-side veth (in that switch's namespace).
    pub ifindex: u32,
    /// Its name (the switch-side veth).
    pub ifname: String,
    /// Its Ethernet address.
    pub mac: [u8; 6],
    /// Link state last reported (PORT_STATUS is sent when it changes).
    pub link: Link,
    /// Final counters of the switch-side interfaces it had before its host moved: port
    /// statistics are these plus the current interface's, so they never go backwards.
    pub before: lime_common::stats::PortStats,
}

/// Two sets of port counters added up.
#[must_use]
pub fn plus(
    a: lime_common::stats::PortStats,
    b: lime_common::stats::PortStats,
) -> lime_common::stats::PortStats {
    lime_common::stats::PortStats {
        rx_packets: a.rx_packets + b.rx_packets,
        rx_bytes: a.rx_bytes + b.rx_bytes,
        tx_packets: a.tx_packets + b.tx_packets,
        tx_bytes: a.tx_bytes + b.tx_bytes,
        rx_dropped: a.rx_dropped + b.rx_dropped,
        tx_errors: a.tx_errors + b.tx_errors,
    }
}

/// A port's link as the switch last saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Link {
    /// Up and with carrier.
    #[default]
    Live,
    /// Administratively up, no carrier (the host's end is down).
    Down,
    /// Administratively down.
    Disabled,
    /// The interface is gone.
    Gone,
}

/// Where a connection's messages go: encoded frames, to its writer task.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
}

/// The outbox is full (the controller does not read) or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxFull;

impl Outbox {
    /// An outbox writing into `tx`.
    #[must_use]
    pub const fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Self { tx }
    }

    /// Queue a message. A message too long to encode is dropped (the callers split
    /// replies so that this does not happen).
    pub fn send(&self, xid: u32, msg: &Message) -> Result<(), OutboxFull> {
        match msg.to_bytes(xid) {
            Ok(b) => self.tx.try_send(b).map_err(|_| OutboxFull),
            Err(_) => Ok(()),
        }
    }
}

/// A controller connection as the core knows it.
#[derive(Debug)]
pub struct Conn {
    /// Peer address, for logs.
    pub peer: String,
    /// Its role (spec 6.3.5); a new connection is EQUAL.
    pub role: ControllerRole,
    /// Which asynchronous messages it wants (spec 7.3.10).
    pub async_config: AsyncConfig,
    /// Where its messages go.
    pub outbox: Outbox,
    /// Async messages dropped because its outbox was full.
    pub dropped: u64,
}

/// Spec 7.3.10 defaults: a master or equal controller gets packet-ins for table miss
/// and action, every port status and every flow-removed reason; a slave only port
/// status.
#[must_use]
pub const fn default_async() -> AsyncConfig {
    AsyncConfig {
        packet_in_mask: [0b11, 0],
        port_status_mask: [0b111, 0b111],
        flow_removed_mask: [0b1111, 0],
    }
}

/// The OpenFlow side of one virtual switch.
pub struct VswitchOf {
    /// Name in the topology.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// Datapath id reported in FEATURES_REPLY.
    pub dpid: u64,
    /// Datapath-local id of the virtual switch.
    pub dp_id: u16,
    /// Fail mode from the topology.
    pub fail_mode: FailMode,
    /// Controller targets from the topology.
    pub controllers: Vec<Controller>,
    /// Virtual ports, by port number.
    pub ports: Vec<VPort>,
    /// SET_CONFIG state.
    pub config: SwitchConfig,
    /// Highest master/slave generation id seen (spec 6.3.5).
    pub generation_id: Option<u64>,
    /// Connected controllers.
    pub conns: BTreeMap<ConnId, Conn>,
    /// The flow tables.
    pub table: VirtualSwitch,
    /// While fail-standalone is active: the learned MAC → port table and the id of the
    /// table-miss entry the core installed.
    pub standalone: Option<Standalone>,
    /// When the sweep looks at each entry with a timeout next (see the core's
    /// `sweep`).
    pub timers: super::timers::Timers,
}

/// Fail-standalone state: the core itself acts as a learning switch.
#[derive(Debug, Default)]
pub struct Standalone {
    /// The table-miss → CONTROLLER entry installed for it.
    pub miss_entry: Option<u64>,
    /// Learned source MAC → virtual port.
    pub macs: HashMap<[u8; 6], u32>,
}

impl VswitchOf {
    /// A switch with no connections, the default config and an empty table.
    #[must_use]
    pub fn new(spec: &lime_lab::VSwitchSpec, dp_id: u16, ports: Vec<VPort>) -> Self {
        Self {
            name: spec.name.clone(),
            tenant: spec.tenant.clone(),
            dpid: spec.dpid,
            dp_id,
            fail_mode: spec.fail_mode,
            controllers: spec.parsed_controllers().unwrap_or_default(),
            ports,
            config: SwitchConfig {
                flags: 0,
                miss_send_len: controller_max_len::NO_BUFFER,
            },
            generation_id: None,
            conns: BTreeMap::new(),
            table: VirtualSwitch::new(&spec.name),
            standalone: None,
            timers: super::timers::Timers::default(),
        }
    }

    /// A virtual port by number.
    #[must_use]
    pub fn port(&self, port_no: u32) -> Option<&VPort> {
        self.ports.iter().find(|p| p.port_no == port_no)
    }
}

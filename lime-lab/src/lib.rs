//! The LIME network-namespace lab: builds the "physical" network LIME runs on out of
//! Linux network namespaces and veth pairs, from a small TOML topology.
//!
//! Physical switches and hosts (VM stand-ins) are namespaces named `lime-<lab>-<node>`;
//! each host has one interface `eth0` whose peer, in its switch's namespace, is named
//! after the host; underlay links join switch namespaces with `u-<peer>` interfaces.
//! This crate does plumbing only: it knows nothing of eBPF. The datapath crate attaches
//! its programs to the switch ports this crate reports (name, ifindex, kind), entering
//! the namespaces with [`netns::run_in_netns`].
//!
//! ```no_run
//! # fn main() -> Result<(), lime_lab::LabError> {
//! use lime_lab::{Lab, Topology};
//!
//! let lab = Lab::up(&Topology::default_demo())?;
//! let port = lab.host_port("h1").expect("h1 is attached");
//! println!("h1 is on {} port {} (ifindex {})", port.switch, port.ifname, port.ifindex);
//! let out = lab.exec("h1", &["ip", "-br", "addr"])?;
//! print!("{}", String::from_utf8_lossy(&out.stdout));
//! lab.down()?;
//! # Ok(())
//! # }
//! ```
//!
//! Everything needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`), iproute2's `ip` and
//! `ethtool`.
//!
//! # Layout
//! - [`addr`]: MAC addresses and IPv4/IPv6 addresses with prefix, as strings in files.
//! - [`topology`]: the topology model, its TOML form, the built-in demo.
//! - [`validate`]: the rules a topology must follow (names, addresses, references).
//! - [`controller`]: OpenFlow controller targets (`tcp:HOST:PORT`, `ptcp:PORT[:ADDR]`).
//! - [`netns`]: all kernel interaction: `ip` commands, namespaces, interfaces, `setns`.
//! - [`lab`]: [`Lab`], building, driving (exec, move a host) and tearing down a lab.
//! - [`state`]: [`LabState`], the resolved port table, saved as JSON for later processes.
//! - [`error`]: [`TopologyError`] and [`LabError`].

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod addr;
pub mod controller;
pub mod error;
pub mod lab;
pub mod netns;
pub mod state;
pub mod topology;
pub mod validate;

pub use addr::{Ipv4Cidr, Ipv6Cidr, MacAddr};
pub use controller::Controller;
pub use error::{LabError, NameKind, TopologyError};
pub use lab::Lab;
pub use netns::{LinkInfo, run_in_netns};
pub use state::{HostIface, LabState, PortKind, SwitchPort, VLinkPair};
pub use topology::{
    DatapathMode, EnsembleSpec, FailMode, HOST_IFNAME, HostSpec, LinkSpec, MAX_VETH_QUEUES,
    SwitchSpec, Topology, UNDERLAY_MTU, VLinkEnd, VLinkSide, VLinkSpec, VPortSpec, VSwitchSpec,
    underlay_ifname, vlink_ifname,
};

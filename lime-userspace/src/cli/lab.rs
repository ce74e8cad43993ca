//! `lime lab up|down`.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Subcommand;
use lime_lab::Topology;
use lime_userspace::fabric::Fabric;

/// Lab subcommands.
#[derive(Subcommand)]
pub enum LabCommand {
    /// Bring up a lab and leave it running (namespaces lime-<lab>-<node>).
    Up {
        /// Topology file (TOML); the built-in default lab when omitted.
        #[arg(long, short)]
        topology: Option<PathBuf>,
        /// Also install static L2 forwarding rules (by MAC and ARP target) on every
        /// virtual switch, so hosts can ping each other at once.
        #[arg(long)]
        l2: bool,
        /// Print the lab as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tear a lab down: its namespaces, programs and pins.
    Down {
        /// Lab name ("demo" for the default lab).
        #[arg(default_value = "demo")]
        name: String,
    },
    /// Print the built-in default topology (a starting point for your own).
    Default,
}

/// Run a lab subcommand.
pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Default => {
            print!("{}", Topology::default_demo().to_toml_string()?);
        }
        LabCommand::Up { topology, l2, json } => {
            super::require_root()?;
            let topo = match topology {
                Some(p) => {
                    Topology::from_file(&p).with_context(|| format!("reading {}", p.display()))?
                }
                None => Topology::default_demo(),
            };
            eprintln!("lime: bringing up lab {:?} ...", topo.name);
            let mut fabric = Fabric::up(&topo, &crate::default_pin_root())?;
            if l2 {
                for vs in &topo.vswitches {
                    let rules = lime_userspace::fabric::l2_rules(fabric.lab().state(), &vs.name);
                    fabric.install(&vs.name, &rules)?;
                }
            }
            let state = fabric.detach()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&state)?);
            } else {
                println!("lab {:?} is up", state.name());
                for h in &state.hosts {
                    println!(
                        "  host {:<6} {}  mac {}  ip {}  on {}",
                        h.host, h.netns, h.mac, h.ip, h.switch
                    );
                }
                for sw in &state.topology.switches {
                    let ports: Vec<&str> = state
                        .switch_ports(&sw.name)
                        .map(|p| p.ifname.as_str())
                        .collect();
                    println!("  switch {:<4} ports {}", sw.name, ports.join(", "));
                }
                println!(
                    "try: ip netns exec {} ping {}",
                    state.hosts[0].netns,
                    state
                        .hosts
                        .last()
                        .map_or(String::new(), |h| h.ip.addr.to_string())
                );
                println!("tear down with: lime lab down {}", state.name());
            }
        }
        LabCommand::Down { name } => {
            super::require_root()?;
            let removed = Fabric::down_by_name(&name, &crate::default_pin_root())?;
            if removed.is_empty() {
                println!("no lab {name:?} was running");
            } else {
                println!("removed {} namespaces of lab {name:?}", removed.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `lime run` (the daemon) and `lime dump-flows` (its client).
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Args;
use lime_lab::{Controller, Topology};
use lime_userspace::{
    fabric::Fabric,
    migration::journal::{self, Journal},
    ofswitch::{
        Agent, AgentOptions, Durability,
        control::{self, Request},
    },
};

/// `lime run` arguments.
#[derive(Args)]
pub struct RunArgs {
    /// Topology file (TOML); the built-in default lab when omitted. Each `[[vswitch]]`
    /// names its controllers, e.g. `controllers = ["tcp:127.0.0.1:6653"]` (LIME
    /// connects) or `["ptcp:6634"]` (LIME listens, on 127.0.0.1 unless
    /// `ptcp:6634:ADDR`).
    #[arg(long, short)]
    topology: Option<PathBuf>,
    /// Control socket for `lime dump-flows` [default: /run/lime/<lab>.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Seconds of controller silence before an ECHO_REQUEST; three times that and the
    /// connection is dropped.
    #[arg(long, default_value_t = 5)]
    echo_interval: u64,
    /// Where the datapaths' maps and links are pinned (a restarted daemon finds them
    /// there) [default: /sys/fs/bpf/lime].
    #[arg(long)]
    pin_root: Option<PathBuf>,
}

/// `lime dump-flows` arguments.
#[derive(Args)]
pub struct DumpFlowsArgs {
    /// Virtual switch name (as in the topology).
    vswitch: String,
    #[command(flatten)]
    daemon: super::migrate::DaemonArgs,
    /// One JSON object per flow entry, one per line.
    #[arg(long)]
    json: bool,
}

fn wait_for_signal(rt: &tokio::runtime::Runtime) -> anyhow::Result<&'static str> {
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").context("waiting for Ctrl-C"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    })
}

/// The fabric to serve: the running one, adopted, if the journal shows a migration a
/// crashed daemon left unfinished (it is then finished first, see
/// [`lime_userspace::migration::journal`]); otherwise a fresh lab, with an empty
/// journal.
fn bring_up(topo: &Topology, pin_root: &Path) -> anyhow::Result<(Fabric, Durability)> {
    let path = journal::path_for(&topo.name);
    let lines = journal::read(&path)?;
    let saved = lime_lab::LabState::default_dir(&topo.name).join(lime_lab::state::STATE_FILE);
    if let Some(u) = journal::unfinished(&lines) {
        if saved.exists() {
            eprintln!(
                "lime: lab {:?} is still running with an unfinished migration of {} to {}: taking it over as it is (the datapath keeps forwarding)",
                topo.name, u.vswitch, u.to
            );
            let (fabric, lost, gone) = Fabric::adopt(&topo.name, pin_root, &u.hosts)
                .context("taking over the running lab")?;
            for g in &gone {
                eprintln!("lime: physical switch {g} is gone");
            }
            let journal = Journal::open(&path)?;
            return Ok((
                fabric,
                Durability {
                    journal: Some(journal),
                    recovery: Some(journal::Recovery {
                        unfinished: u,
                        lost,
                        gone,
                    }),
                },
            ));
        }
        eprintln!(
            "lime: the journal shows an unfinished migration of {}, but lab {:?} is gone: starting afresh",
            u.vswitch, topo.name
        );
    }
    eprintln!("lime: bringing up lab {:?} ...", topo.name);
    let mut fabric = Fabric::up(topo, pin_root)?;
    fabric.save_state()?;
    let journal = Journal::create(&path)?;
    Ok((
        fabric,
        Durability {
            journal: Some(journal),
            recovery: None,
        },
    ))
}

/// Run the daemon in the foreground until Ctrl-C or SIGTERM.
pub fn run(a: &RunArgs) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    let topo = match &a.topology {
        Some(p) => Topology::from_file(p).with_context(|| format!("reading {}", p.display()))?,
        None => Topology::default_demo(),
    };
    let socket = a
        .socket
        .clone()
        .unwrap_or_else(|| control::socket_path(&topo.name));
    if control::request(&socket, &Request::Status).is_ok() {
        bail!(
            "a LIME daemon already answers on {}; stop it first",
            socket.display()
        );
    }
    if let Some(f) = journal::fault_injection() {
        eprintln!(
            "lime: WARNING: fault injection is on ({}={f}): this daemon will exit or fail its journal on purpose mid-migration (tests only)",
            journal::FAULT_ENV
        );
    }
    let pin_root = a.pin_root.clone().unwrap_or_else(crate::default_pin_root);
    let (fabric, durability) = bring_up(&topo, &pin_root)?;
    let agent = Agent::start_with(
        fabric,
        &AgentOptions {
            echo_interval: Duration::from_secs(a.echo_interval.max(1)),
        },
        durability,
    )?;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&socket);
    let listener = {
        let _guard = agent.runtime().enter();
        tokio::net::UnixListener::bind(&socket)
            .with_context(|| format!("binding the control socket {}", socket.display()))?
    };
    agent
        .runtime()
        .spawn(control::serve(listener, agent.handle()));
    println!("lime: lab {:?} is up", topo.name);
    for vs in &topo.vswitches {
        println!(
            "  vswitch {} (tenant {}, dpid {:#018x}, fail_mode {:?}, ports {})",
            vs.name,
            vs.tenant,
            vs.dpid,
            vs.fail_mode,
            vs.ports
                .iter()
                .map(|p| format!("{}={}", p.port, p.host))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let controllers = vs.parsed_controllers().unwrap_or_default();
        if controllers.is_empty() {
            println!("    no controllers configured");
        }
        for c in controllers {
            match c {
                Controller::Tcp { .. } => {
                    println!("    connects to the controller at {c} (retrying until it answers)");
                }
                Controller::Ptcp { .. } => {
                    for (_, addr) in agent.listening().iter().filter(|(n, _)| *n == vs.name) {
                        println!("    waits for controllers on {addr} ({c})");
                    }
                }
            }
        }
    }
    println!("  control socket {}", socket.display());
    println!("lime: ready (Ctrl-C or SIGTERM to tear down)");
    let why = wait_for_signal(agent.runtime());
    eprintln!(
        "lime: {}, tearing down ...",
        why.as_ref().map_or("error", |s| s)
    );
    let _ = std::fs::remove_file(&socket);
    let fabric = agent.shutdown()?;
    fabric.down()?;
    // Nothing left to recover: the lab is gone.
    let journal = journal::path_for(&topo.name);
    let _ = std::fs::remove_file(&journal);
    if let Some(dir) = journal.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    eprintln!("lime: lab {:?} torn down", topo.name);
    why?;
    Ok(ExitCode::SUCCESS)
}

/// Ask the daemon for a virtual switch's flows.
pub fn dump_flows(a: &DumpFlowsArgs) -> anyhow::Result<ExitCode> {
    let resp = control::request(
        &a.daemon.socket(),
        &Request::DumpFlows {
            vswitch: a.vswitch.clone(),
        },
    )?;
    if !resp.ok {
        bail!("{}", resp.error.unwrap_or_else(|| "request failed".into()));
    }
    let flows = resp.flows.unwrap_or_default();
    if a.json {
        for f in &flows {
            println!("{}", serde_json::to_string(f)?);
        }
    } else {
        println!("OFPST_FLOW reply (OF1.3) for {}:", a.vswitch);
        for f in &flows {
            println!("{}", f.to_ofctl());
        }
    }
    Ok(ExitCode::SUCCESS)
}

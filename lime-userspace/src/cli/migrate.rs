//! `lime migrate` and `lime status`: ask the running `lime run` to move a virtual
//! switch, or say where everything is.
use std::{path::PathBuf, process::ExitCode};

use anyhow::bail;
use clap::{Args, ValueEnum};
use lime_userspace::{
    migration,
    ofswitch::control::{self, Request},
};

/// How to migrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// LIME: clone the tables to the target, run both copies while the hosts move one
    /// by one, then retire the old copy (its counters are folded in).
    Clone,
    /// The naive baseline: freeze the virtual switch on the source (what enters there is
    /// dropped), copy the tables, move the hosts.
    Move,
}

/// `lime migrate` arguments.
#[derive(Args)]
pub struct MigrateArgs {
    /// Virtual switches or named ensembles (`[[ensemble]]` in the topology) to move, one
    /// virtual switch after the other: an ensemble (virtual switches joined by virtual
    /// links, with their hosts) moves its members in the order it lists them, the link
    /// ends with their virtual switch; several names move them all.
    #[arg(required = true, num_args = 1..)]
    vswitch: Vec<String>,
    /// Physical switch every host of the virtual switch moves to.
    #[arg(long)]
    to: String,
    /// Migration strategy.
    #[arg(long, value_enum, default_value_t = Strategy::Clone)]
    strategy: Strategy,
    #[command(flatten)]
    daemon: DaemonArgs,
    /// One JSON object per line: each progress event as it happens (phase started,
    /// host moved, done with the report of one source physical switch).
    #[arg(long)]
    json: bool,
}

/// Which daemon to ask (every client subcommand of `lime run` takes these).
#[derive(Args)]
pub struct DaemonArgs {
    /// Lab the daemon runs (selects its control socket /run/lime/<lab>.sock).
    #[arg(long, default_value = "demo")]
    pub lab: String,
    /// Control socket, instead of the lab's default one.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

impl DaemonArgs {
    /// The control socket to talk to.
    #[must_use]
    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| control::socket_path(&self.lab))
    }
}

/// `lime status` arguments.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

/// Ask the daemon where everything is, print it.
pub fn status(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let resp = control::request(&a.daemon.socket(), &Request::Status)?;
    if !resp.ok {
        bail!("{}", resp.error.unwrap_or_else(|| "status failed".into()));
    }
    let Some(st) = resp.status else {
        bail!("the daemon is too old to say more than its virtual switches");
    };
    if a.json {
        println!("{}", serde_json::to_string(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("lab {}", st.lab);
    for v in &st.vswitches {
        println!(
            "vswitch {} (tenant {}, dpid {:#018x}) runs on {}",
            v.name,
            v.tenant,
            v.dpid,
            if v.copies.is_empty() {
                "no physical switch".to_owned()
            } else {
                v.copies.join(", ")
            }
        );
        println!("  {:<6} {:<10} physical switch", "port", "host");
        for p in &v.ports {
            println!("  {:<6} {:<10} {}", p.port, p.host, p.switch);
        }
        if v.controllers.is_empty() {
            println!("  controllers: none configured");
        } else {
            println!(
                "  controllers: {} configured ({}), {} connected{}",
                v.controllers.len(),
                v.controllers.join(", "),
                v.connected.len(),
                if v.connected.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", v.connected.join(", "))
                }
            );
        }
    }
    for e in &st.ensembles {
        println!("ensemble {}: {}", e.name, e.vswitches.join(", "));
    }
    match &st.migration {
        None => println!("no migration in progress"),
        Some(m) => println!(
            "migration in progress{}: {} from {} to {} ({}), phase {}, hosts moved so far: {}",
            if m.recovering {
                " (resumed from the journal after a restart)"
            } else {
                ""
            },
            m.vswitch,
            m.from,
            m.to,
            serde_json::to_value(m.strategy)?.as_str().unwrap_or("?"),
            m.phase
                .and_then(|p| serde_json::to_value(p).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "starting".into()),
            if m.hosts_moved.is_empty() {
                "none".to_owned()
            } else {
                m.hosts_moved.join(", ")
            }
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &serde_json::Value) {
    let f = |k: &str| r.get(k).cloned().unwrap_or_default();
    println!(
        "{} from {} to {}: {} rules, {:.1} ms in all",
        f("vswitch").as_str().unwrap_or("?"),
        f("from").as_str().unwrap_or("?"),
        f("to").as_str().unwrap_or("?"),
        f("rules"),
        f("total_ms").as_f64().unwrap_or(0.0),
    );
    for p in f("phases_ms").as_array().into_iter().flatten() {
        println!(
            "  phase {:<7} {:>8.1} ms",
            p[0].as_str().unwrap_or("?"),
            p[1].as_f64().unwrap_or(0.0)
        );
    }
    let frozen = f("frozen_drops").as_u64().unwrap_or(0);
    if frozen > 0 {
        println!("  lost  {frozen} frames dropped on the source while frozen");
    }
    for h in f("hosts").as_array().into_iter().flatten() {
        println!(
            "  host  {:<7} re-attached, {:.1} ms without a link",
            h[0].as_str().unwrap_or("?"),
            h[1].as_f64().unwrap_or(0.0)
        );
    }
    for l in f("links").as_array().into_iter().flatten() {
        println!(
            "  link  port {:<5} moved make-before-break in {:.1} ms (nothing lost)",
            l[0],
            l[1].as_f64().unwrap_or(0.0)
        );
    }
}

/// Ask the daemon to migrate; show its progress as it comes, then the reports.
/// With `--json`, one JSON object per line: each progress event (`"event"`: `phase`,
/// `host-moved`, `done` with the report of one source physical switch).
pub fn migrate(a: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let socket = a.daemon.socket();
    let strategy = match a.strategy {
        Strategy::Clone => migration::Strategy::Clone,
        Strategy::Move => migration::Strategy::Move,
    };
    // Names of ensembles stand for their virtual switches (the daemon knows them).
    let status = control::request(&socket, &Request::Status)?.status;
    let mut units = Vec::new();
    for name in &a.vswitch {
        let unit = status
            .as_ref()
            .map_or_else(|| vec![name.clone()], |st| st.migration_unit(name));
        if !a.json && unit != [name.as_str()] {
            println!("ensemble {name}: {}", unit.join(", "));
        }
        units.extend(unit);
    }
    for vswitch in &units {
        migrate_one(a, &socket, vswitch, strategy)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Migrate one virtual switch (of an ensemble) and show its progress.
fn migrate_one(
    a: &MigrateArgs,
    socket: &std::path::Path,
    vswitch: &str,
    strategy: migration::Strategy,
) -> anyhow::Result<()> {
    if !a.json {
        println!(
            "migrating {} to {} ({}) ...",
            vswitch,
            a.to,
            match a.strategy {
                Strategy::Clone => "clone: copy the tables, move the hosts, retire the old copy",
                Strategy::Move => "move: freeze, copy the tables, move the hosts",
            }
        );
    }
    let json = a.json;
    let mut printed = Ok(());
    let resp = control::request_with_events(
        socket,
        &Request::Migrate {
            vswitch: vswitch.to_owned(),
            to: a.to.clone(),
            strategy,
            progress: true,
        },
        |ev| {
            if json {
                match serde_json::to_string(&ev) {
                    Ok(l) => println!("{l}"),
                    Err(e) => printed = Err(e),
                }
                return;
            }
            match ev {
                migration::Progress::Phase {
                    from, to, phase, ..
                } => {
                    let phase = serde_json::to_value(phase).unwrap_or_default();
                    println!(
                        "  [{from} -> {to}] phase {} ...",
                        phase.as_str().unwrap_or("?")
                    );
                }
                migration::Progress::HostMoved {
                    host,
                    to,
                    downtime_ms,
                    ..
                } => println!("  [-> {to}] host {host} moved ({downtime_ms:.1} ms without a link)"),
                migration::Progress::Done { report } => {
                    print_report(&serde_json::to_value(&report).unwrap_or_default());
                }
            }
        },
    )?;
    printed?;
    if !resp.ok {
        bail!(
            "{}",
            resp.error.unwrap_or_else(|| "migration failed".into())
        );
    }
    Ok(())
}

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
    /// Virtual switch to move (as in the topology).
    vswitch: String,
    /// Physical switch every host of the virtual switch moves to.
    #[arg(long)]
    to: String,
    /// Migration strategy.
    #[arg(long, value_enum, default_value_t = Strategy::Clone)]
    strategy: Strategy,
    /// Lab the daemon runs (selects its control socket /run/lime/<lab>.sock).
    #[arg(long, default_value = "demo")]
    lab: String,
    /// Control socket, instead of the lab's default one.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// One JSON object per migration step (source physical switch), one per line.
    #[arg(long)]
    json: bool,
}

/// Ask the daemon to migrate, print the reports.
pub fn migrate(a: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let socket = a
        .socket
        .clone()
        .unwrap_or_else(|| control::socket_path(&a.lab));
    let strategy = match a.strategy {
        Strategy::Clone => migration::Strategy::Clone,
        Strategy::Move => migration::Strategy::Move,
    };
    if !a.json {
        println!(
            "migrating {} to {} ({}) ...",
            a.vswitch,
            a.to,
            match a.strategy {
                Strategy::Clone => "clone: copy the tables, move the hosts, retire the old copy",
                Strategy::Move => "move: freeze, copy the tables, move the hosts",
            }
        );
    }
    let resp = control::request(
        &socket,
        &Request::Migrate {
            vswitch: a.vswitch.clone(),
            to: a.to.clone(),
            strategy,
        },
    )?;
    if !resp.ok {
        bail!(
            "{}",
            resp.error.unwrap_or_else(|| "migration failed".into())
        );
    }
    for r in resp.migrations.unwrap_or_default() {
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
            continue;
        }
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
    }
    Ok(ExitCode::SUCCESS)
}

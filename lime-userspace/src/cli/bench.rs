//! `lime bench ...`: benchmarks that print numbers (and JSON).
use std::process::ExitCode;

use clap::Subcommand;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Per-packet cost of the datapath through BPF_PROG_TEST_RUN.
    Datapath {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// Run a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Datapath { json: _ } => anyhow::bail!("not yet implemented"),
    }
}

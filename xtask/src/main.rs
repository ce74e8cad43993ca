//! LIME's task runner: `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//!
//! xtask only *runs* things — installers, cargo, the `lime` binary. It holds no project
//! logic of its own, so everything it does can be repeated by hand from the commands it
//! prints.
//!
//! # Layout
//! - [`setup`]: idempotent installation of the toolchain and system tools (see
//!   `../shared/TOOLCHAIN.md` for why each piece is needed).
//! - [`build`]: release build of `lime-userspace` (its `build.rs` builds the eBPF object).
//! - [`test`]: unit tests, then the kernel integration tests, with a summary line for CI.
//! - [`run`]: `demo` and `bench`, both thin wrappers around `target/release/lime`.
//! - [`lint`]: rustfmt and clippy.
//! - [`cmd`]: running external commands (printing them, streaming their output) and the
//!   few facts about the machine and workspace that the commands share.
#![deny(unsafe_code)]

mod build;
mod cmd;
mod lint;
mod run;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Task runner for the LIME workspace.
///
/// Every command that builds or runs something first makes sure the machine is set up
/// (`cargo xtask setup`); that check takes about a second once everything is in place.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about,
    long_about,
    after_help = "Examples:\n  \
        cargo xtask setup --check        report what a fresh machine still lacks\n  \
        cargo xtask test -- classifier   run only tests whose name contains `classifier`\n  \
        cargo xtask demo -- --help       show the options of `lime demo` itself"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install everything the project needs on a fresh Debian 12 machine (run as root).
    ///
    /// Steps, each skipped when already satisfied: Debian packages (Debian's rustc 1.96
    /// with a precompiled BPF `core`, LLVM 22, iproute2, ethtool, iperf3, python3-venv,
    /// Open vSwitch); bpf-linker 0.13.0 built against LLVM 22; the `lime-bpf` rustup
    /// toolchain linked to /usr; bpffs at /sys/fs/bpf; a Python venv with the os-ken
    /// controller at target/lime-venv. Non-interactive; safe to run repeatedly.
    Setup(setup::Args),
    /// Set up if needed, then build `lime-userspace` in release mode (includes the eBPF
    /// object). The binary is target/release/lime.
    Build,
    /// Set up if needed, build, then run the unit tests and the kernel integration tests
    /// (serially: they share kernel state). Needs root.
    ///
    /// Ends with the line `test: N passed, N failed` and exits non-zero if anything
    /// failed.
    Test(test::Args),
    /// Set up, build (release), and run `target/release/lime demo [ARGS...]`.
    Demo(run::DemoArgs),
    /// Set up, build (release), and run `target/release/lime bench WHAT [ARGS...]`.
    Bench(run::BenchArgs),
    /// Check formatting (`cargo fmt --check`) and lints (`cargo clippy --all-targets`,
    /// warnings denied) without building the eBPF object (`AYA_BUILD_SKIP=1`).
    Lint,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup::run(&args),
        Command::Build => build::run().map(|_| ExitCode::SUCCESS),
        Command::Test(args) => test::run(&args),
        Command::Demo(args) => run::demo(&args),
        Command::Bench(args) => run::bench(&args),
        Command::Lint => lint::run(),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}

//! `cargo xtask demo` and `cargo xtask bench`: build, then hand over to the `lime`
//! binary, which owns what the demo and the benchmarks actually do.

use std::process::ExitCode;

use anyhow::Result;

use crate::{build, cmd::Cmd};

/// Arguments of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Passed to `lime demo` unchanged (see `target/release/lime demo --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark to run (see `target/release/lime bench --help`).
    what: String,
    /// Passed to `lime bench WHAT` unchanged.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// `cargo xtask demo [ARGS...]`.
pub fn demo(args: &DemoArgs) -> Result<ExitCode> {
    lime(
        ["demo"]
            .into_iter()
            .chain(args.args.iter().map(String::as_str)),
    )
}

/// `cargo xtask bench WHAT [ARGS...]`.
pub fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let what = ["bench", args.what.as_str()];
    lime(what.into_iter().chain(args.args.iter().map(String::as_str)))
}

/// Builds (after setup) and runs `lime ARGS...`, exiting as it exits.
fn lime<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<ExitCode> {
    let lime = build::run()?;
    let status = Cmd::new(lime).args(args).status()?;
    Ok(exit_code(status))
}

/// The exit code to leave with after a child ended with `status` (a signal counts as
/// failure).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

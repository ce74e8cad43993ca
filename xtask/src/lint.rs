//! `cargo xtask lint`: formatting and clippy over the default members. `AYA_BUILD_SKIP=1`
//! stops `lime-userspace/build.rs` from building the eBPF object, which clippy does not
//! need.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cmd::{Cmd, say};

/// Runs both checks (the second even if the first fails) and fails if either did.
pub fn run() -> Result<ExitCode> {
    let mut failed = Vec::new();
    if let Err(err) = Cmd::cargo().args(["fmt", "--all", "--check"]).run() {
        say!("{err:#}");
        failed.push("rustfmt");
    }
    let clippy = Cmd::cargo()
        .env("AYA_BUILD_SKIP", "1")
        .args(["clippy", "--all-targets", "--", "-D", "warnings"])
        .run();
    if let Err(err) = clippy {
        say!("{err:#}");
        failed.push("clippy");
    }
    if !failed.is_empty() {
        bail!("lint failed: {}", failed.join(", "));
    }
    say!("lint: ok");
    Ok(ExitCode::SUCCESS)
}

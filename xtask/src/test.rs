//! `cargo xtask test`: setup if needed, build the default members, run the unit tests,
//! then the kernel integration tests one at a time (they share kernel state: namespaces,
//! bpffs pins, XDP attachments).
//!
//! Every phase runs even if an earlier test phase failed, so one report shows
//! everything; only a failed build stops early. The last line on stdout is
//! `test: N passed, N failed`, summed over cargo's `test result:` lines — CI reads it.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::{
    cmd::{self, Cmd, say},
    setup,
};

/// Crates with unit tests (everything in the default members but the integration-test
/// crate). `--workspace --exclude` cannot be used: it ignores `default-members` and
/// would pull in `lime-ebpf`, which only builds for the BPF target.
const UNIT_TEST_PACKAGES: &[&str] = &[
    "lime-common",
    "lime-lab",
    "lime-openflow",
    "lime-userspace",
    "xtask",
];

/// The crate holding the kernel integration tests.
const INTEGRATION_TEST_PACKAGE: &str = "lime-tests";

/// Arguments of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Passed to every test binary after `--`, e.g. a test-name filter or `--nocapture`.
    #[arg(last = true)]
    test_args: Vec<String>,
}

/// Passed/failed counts summed over cargo's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    fn add_line(&mut self, line: &str) {
        if let Some(result) = parse_test_result(line) {
            self.passed += result.passed;
            self.failed += result.failed;
        }
    }
}

/// Reads `test result: ok. 3 passed; 1 failed; 0 ignored; ...` (as printed by libtest
/// for every test binary and for the doc tests).
fn parse_test_result(line: &str) -> Option<Tally> {
    let (_, rest) = line.split_once("test result: ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let count = |label: &str| {
        words
            .windows(2)
            .find(|pair| pair[1].trim_end_matches([';', ',', '.']) == label)
            .and_then(|pair| pair[0].parse().ok())
    };
    Some(Tally {
        passed: count("passed")?,
        failed: count("failed")?,
    })
}

/// `cargo xtask test [-- TEST_ARGS...]`.
pub fn run(args: &Args) -> Result<ExitCode> {
    if !cmd::is_root() {
        bail!(
            "`cargo xtask test` must run as root: the integration tests create network \
             namespaces and load XDP programs"
        );
    }
    setup::ensure()?;

    let mut tally = Tally::default();
    let mut failed_phases = Vec::new();

    say!("test: building the default members");
    if let Err(err) = Cmd::cargo().arg("build").run() {
        say!("FAILED: build: {err:#}");
        failed_phases.push("build");
    } else {
        let unit = Cmd::cargo()
            .arg("test")
            .args(UNIT_TEST_PACKAGES.iter().flat_map(|p| ["-p", p]))
            .args(["--no-fail-fast", "--"])
            .args(&args.test_args);
        run_phase("unit tests", unit, &mut tally, &mut failed_phases)?;

        let integration = Cmd::cargo()
            .args([
                "test",
                "-p",
                INTEGRATION_TEST_PACKAGE,
                "--no-fail-fast",
                "--",
            ])
            .arg("--test-threads=1")
            .args(&args.test_args);
        run_phase(
            "kernel integration tests",
            integration,
            &mut tally,
            &mut failed_phases,
        )?;
    }

    if !failed_phases.is_empty() {
        say!("test: failed: {}", failed_phases.join(", "));
    }
    println!("test: {} passed, {} failed", tally.passed, tally.failed);
    Ok(if failed_phases.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one `cargo test`, echoing and tallying its output; records the phase as failed
/// if cargo exits non-zero (failed tests, a build error, or a crashed test binary).
fn run_phase(
    name: &'static str,
    cargo_test: Cmd,
    tally: &mut Tally,
    failed_phases: &mut Vec<&'static str>,
) -> Result<()> {
    say!("test: {name}");
    let status = cargo_test.status_with_stdout_lines(|line| tally.add_line(line))?;
    if !status.success() {
        say!("FAILED: {name} (cargo test: {status})");
        failed_phases.push(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ok_and_failed_results() {
        let ok = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(
            parse_test_result(ok),
            Some(Tally {
                passed: 12,
                failed: 0
            })
        );
        let failed = "test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.50s";
        assert_eq!(
            parse_test_result(failed),
            Some(Tally {
                passed: 4,
                failed: 2
            })
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(parse_test_result("test foo::bar ... ok"), None);
        assert_eq!(parse_test_result("running 3 tests"), None);
        assert_eq!(parse_test_result("test result: garbled"), None);
    }

    #[test]
    fn tally_sums_lines() {
        let mut tally = Tally::default();
        for line in [
            "running 2 tests",
            "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        ] {
            tally.add_line(line);
        }
        assert_eq!(
            tally,
            Tally {
                passed: 3,
                failed: 1
            }
        );
    }
}

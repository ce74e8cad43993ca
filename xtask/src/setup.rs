//! `cargo xtask setup`: make a fresh Debian 12 machine (root, no network beyond the
//! package registries) able to build, test and run LIME. `../shared/TOOLCHAIN.md`
//! explains why each step is needed.
//!
//! Every step first checks whether it is already satisfied and skips if so, so a second
//! run does nothing and takes about a second; the other commands call [`ensure`] before
//! they build. Steps run in order because later ones use what earlier ones install
//! (bpf-linker needs cargo-web's LLVM, the `lime-bpf` toolchain needs rustc-web, the venv
//! may need python3-venv).

use std::{fs, path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, Cmd, say};

/// Debian packages: Debian's rustc 1.96 with a precompiled `core` for the BPF targets,
/// LLVM 22 for bpf-linker, and the tools the lab and the benchmarks drive.
const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "ethtool",
    "iputils-ping",
    "iperf3",
    "python3-venv",
    "openvswitch-switch",
];

/// bpf-linker must be built against the same LLVM major as Debian's rustc (22).
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

/// The rustup toolchain name `lime-userspace/build.rs` builds the eBPF crate with.
const BPF_TOOLCHAIN: &str = "lime-bpf";
/// The oldest Debian rustc that ships `core` for `bpfel-unknown-none` (minor version).
const BPF_TOOLCHAIN_MIN_MINOR: u32 = 96;

const BPFFS: &str = "/sys/fs/bpf";

/// Interpreters tried, in order, for the controller's venv: the first on PATH (a pyenv
/// Python on these machines), then Debian's.
const PYTHONS: &[&str] = &["python3", "/usr/bin/python3"];

/// Arguments of `cargo xtask setup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only report what is missing; install nothing. Exits non-zero if anything is.
    #[arg(long)]
    check: bool,
}

/// One setup step.
struct Step {
    name: &'static str,
    /// Whether installing needs root (checking never does).
    needs_root: bool,
    /// `Ok(None)` when satisfied, else a short description of what is missing.
    check: fn() -> Result<Option<String>>,
    install: fn() -> Result<()>,
}

const STEPS: &[Step] = &[
    Step {
        name: "Debian packages",
        needs_root: true,
        check: check_debian_packages,
        install: install_debian_packages,
    },
    Step {
        name: "bpf-linker",
        needs_root: false,
        check: check_bpf_linker,
        install: install_bpf_linker,
    },
    Step {
        name: "lime-bpf toolchain",
        needs_root: false,
        check: check_bpf_toolchain,
        install: install_bpf_toolchain,
    },
    Step {
        name: "bpffs",
        needs_root: true,
        check: check_bpffs,
        install: mount_bpffs,
    },
    Step {
        name: "controller venv",
        needs_root: false,
        check: check_venv,
        install: install_venv,
    },
];

/// `cargo xtask setup [--check]`.
pub fn run(args: &Args) -> Result<ExitCode> {
    if args.check {
        let missing = check_all()?;
        return Ok(if missing == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    ensure()?;
    Ok(ExitCode::SUCCESS)
}

/// Runs every step that is not yet satisfied; a no-op (about a second of checks) on a
/// machine that is set up.
pub fn ensure() -> Result<()> {
    let total = STEPS.len();
    for (i, step) in STEPS.iter().enumerate() {
        let label = format!("setup [{}/{total}] {}", i + 1, step.name);
        let missing = (step.check)().with_context(|| format!("{label}: checking"))?;
        let Some(missing) = missing else {
            say!("{label}: ok (already present)");
            continue;
        };
        say!("{label}: {missing}; installing");
        if step.needs_root && !cmd::is_root() {
            bail!(
                "{label}: {missing}, and installing it needs root: run `cargo xtask setup` as root"
            );
        }
        (step.install)().with_context(|| format!("{label} failed"))?;
        if let Some(still) = (step.check)().with_context(|| format!("{label}: checking"))? {
            bail!("{label}: the install finished but the check still fails: {still}");
        }
        say!("{label}: done");
    }
    Ok(())
}

/// Reports every step's state without installing; returns how many are missing.
fn check_all() -> Result<usize> {
    let total = STEPS.len();
    let mut missing_steps = 0;
    for (i, step) in STEPS.iter().enumerate() {
        let label = format!("setup [{}/{total}] {}", i + 1, step.name);
        match (step.check)().with_context(|| format!("{label}: checking"))? {
            None => say!("{label}: ok (already present)"),
            Some(missing) => {
                say!("{label}: MISSING: {missing}");
                missing_steps += 1;
            }
        }
    }
    Ok(missing_steps)
}

// --- 1. Debian packages -------------------------------------------------------------

fn missing_debian_packages() -> Result<Vec<&'static str>> {
    if Cmd::new("dpkg-query").arg("--version").probe().is_none() {
        bail!("`dpkg-query` does not run: this setup is for Debian 12");
    }
    Ok(DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            let status = Cmd::new("dpkg-query")
                .args(["-W", "-f=${Status}", package])
                .probe();
            !status.as_deref().is_some_and(dpkg_status_installed)
        })
        .collect())
}

/// Whether a `dpkg-query -f='${Status}'` answer ("want flag status") means installed.
fn dpkg_status_installed(status: &str) -> bool {
    let words: Vec<&str> = status.split_whitespace().collect();
    matches!(words.as_slice(), [_, "ok", "installed"])
}

fn check_debian_packages() -> Result<Option<String>> {
    let missing = missing_debian_packages()?;
    Ok((!missing.is_empty()).then(|| format!("not installed: {}", missing.join(" "))))
}

fn install_debian_packages() -> Result<()> {
    let missing = missing_debian_packages()?;
    let apt = |args: &[&str]| {
        Cmd::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(args)
            .no_stdin()
    };
    apt(&["update"]).run()?;
    apt(&[
        "install",
        "-y",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ])
    .args(&missing)
    .run()
}

// --- 2. bpf-linker ------------------------------------------------------------------

fn bpf_linker_path() -> Result<PathBuf> {
    Ok(cmd::cargo_home()?.join("bin").join("bpf-linker"))
}

fn check_bpf_linker() -> Result<Option<String>> {
    let path = bpf_linker_path()?;
    let Some(version) = Cmd::new(&path).arg("--version").probe() else {
        return Ok(Some(format!("{} is not installed", path.display())));
    };
    if version
        .split_whitespace()
        .any(|word| word == BPF_LINKER_VERSION)
    {
        Ok(None)
    } else {
        Ok(Some(format!(
            "{} reports `{}`, need {BPF_LINKER_VERSION}",
            path.display(),
            version.trim()
        )))
    }
}

fn install_bpf_linker() -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![PathBuf::from(LLVM_BIN)];
    dirs.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(dirs).context("building PATH")?;
    Cmd::cargo()
        .env("PATH", path)
        .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
        .args(["--no-default-features", "--features", "llvm-22"])
        // Outside the workspace, so its .cargo/config.toml does not apply.
        .current_dir(cmd::cargo_home()?)
        .no_stdin()
        .run()
}

// --- 3. the lime-bpf toolchain ------------------------------------------------------

fn rustup() -> Result<PathBuf> {
    let in_cargo_home = cmd::cargo_home()?.join("bin").join("rustup");
    Ok(if in_cargo_home.exists() {
        in_cargo_home
    } else {
        "rustup".into()
    })
}

/// The minor version from `rustc -vV` output (`release: 1.96.0`).
fn rustc_minor_version(verbose_version: &str) -> Option<u32> {
    let release = verbose_version
        .lines()
        .find_map(|line| line.strip_prefix("release: "))?;
    let mut parts = release.trim().split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}

fn check_bpf_toolchain() -> Result<Option<String>> {
    let output = Cmd::new(rustup()?)
        .args(["run", BPF_TOOLCHAIN, "rustc", "-vV"])
        .probe();
    let Some(output) = output else {
        return Ok(Some(format!(
            "rustup toolchain `{BPF_TOOLCHAIN}` is missing or broken"
        )));
    };
    match rustc_minor_version(&output) {
        Some(minor) if minor >= BPF_TOOLCHAIN_MIN_MINOR => Ok(None),
        _ => Ok(Some(format!(
            "`{BPF_TOOLCHAIN}` is not rustc >= 1.{BPF_TOOLCHAIN_MIN_MINOR}: {}",
            output.lines().next().unwrap_or("").trim()
        ))),
    }
}

fn install_bpf_toolchain() -> Result<()> {
    let rustup = rustup()?;
    let toolchains = Cmd::new(&rustup)
        .args(["toolchain", "list"])
        .probe()
        .context("`rustup toolchain list` failed; is rustup installed?")?;
    if toolchains
        .lines()
        .any(|line| line.split_whitespace().next() == Some(BPF_TOOLCHAIN))
    {
        // A stale link (e.g. to another sysroot): replace it.
        Cmd::new(&rustup)
            .args(["toolchain", "uninstall", BPF_TOOLCHAIN])
            .no_stdin()
            .run()?;
    }
    Cmd::new(&rustup)
        .args(["toolchain", "link", BPF_TOOLCHAIN, "/usr"])
        .no_stdin()
        .run()
}

// --- 4. bpffs -----------------------------------------------------------------------

/// Whether the text of `/proc/mounts` has a bpf file system mounted at `mountpoint`.
fn bpffs_mounted(mounts: &str, mountpoint: &str) -> bool {
    mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_source, target, fstype) = (fields.next(), fields.next(), fields.next());
        target == Some(mountpoint) && fstype == Some("bpf")
    })
}

fn check_bpffs() -> Result<Option<String>> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok((!bpffs_mounted(&mounts, BPFFS)).then(|| format!("no bpf file system at {BPFFS}")))
}

fn mount_bpffs() -> Result<()> {
    Cmd::new("mount")
        .args(["-t", "bpf", "bpf", BPFFS])
        .no_stdin()
        .run()
}

// --- 5. the OpenFlow controller's venv ----------------------------------------------

/// The venv holding os-ken (`osken-manager`), the reference controller.
pub fn venv_dir() -> PathBuf {
    cmd::workspace_root().join("target").join("lime-venv")
}

/// The pinned requirements (os-ken and everything it pulls in, as resolved and checked).
fn requirements_file() -> PathBuf {
    cmd::workspace_root()
        .join("xtask")
        .join("requirements-controller.txt")
}

/// A copy of the requirements the venv was made from; a difference in the requirement
/// lines (not the comments) means "rebuild".
fn venv_stamp() -> PathBuf {
    venv_dir().join("lime-requirements.txt")
}

/// The requirement lines of a requirements file, without comments and blank lines.
fn requirement_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(|line| {
            line.split_once('#')
                .map_or(line, |(before, _)| before)
                .trim()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

fn check_venv() -> Result<Option<String>> {
    let manager = venv_dir().join("bin").join("osken-manager");
    let works = Cmd::new(&manager)
        .arg("--version")
        .probe()
        .is_some_and(|out| out.starts_with("osken-manager"));
    if !works {
        return Ok(Some(format!(
            "`{} --version` does not run",
            manager.display()
        )));
    }
    let wanted = fs::read_to_string(requirements_file())
        .with_context(|| format!("reading {}", requirements_file().display()))?;
    let made_from = fs::read_to_string(venv_stamp()).unwrap_or_default();
    if requirement_lines(&made_from) != requirement_lines(&wanted) {
        return Ok(Some(format!(
            "{} changed since the venv was made",
            requirements_file().display()
        )));
    }
    Ok(None)
}

fn install_venv() -> Result<()> {
    let venv = venv_dir();
    let python = make_venv()?;
    say!("controller venv: made with {python}");
    Cmd::new(venv.join("bin").join("python"))
        .args(["-m", "pip", "install", "--no-input", "-r"])
        .arg(requirements_file())
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .no_stdin()
        .run()?;
    fs::copy(requirements_file(), venv_stamp())
        .with_context(|| format!("writing {}", venv_stamp().display()))?;
    Ok(())
}

/// Makes a fresh venv with the first interpreter in [`PYTHONS`] that yields one with a
/// working pip; returns that interpreter.
fn make_venv() -> Result<&'static str> {
    let venv = venv_dir();
    let mut failures = Vec::new();
    for python in PYTHONS {
        if venv.exists() {
            say!("controller venv: removing {}", venv.display());
            fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
        }
        if let Err(err) = Cmd::new(python)
            .args(["-m", "venv"])
            .arg(&venv)
            .no_stdin()
            .run()
        {
            failures.push(format!("{err:#}"));
            continue;
        }
        let pip = Cmd::new(venv.join("bin").join("python"))
            .args(["-m", "pip", "--version"])
            .probe();
        if pip.is_some() {
            return Ok(python);
        }
        failures.push(format!("the venv made by {python} has no working pip"));
    }
    bail!(
        "could not make a venv at {}: {}",
        venv.display(),
        failures.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status() {
        assert!(dpkg_status_installed("install ok installed"));
        assert!(dpkg_status_installed("hold ok installed"));
        assert!(!dpkg_status_installed("deinstall ok config-files"));
        assert!(!dpkg_status_installed("install ok half-configured"));
        assert!(!dpkg_status_installed(""));
    }

    #[test]
    fn rustc_version() {
        let out = "rustc 1.96.0 (ac68faa20 2026-05-25)\nbinary: rustc\nrelease: 1.96.0\nLLVM version: 22.1.8\n";
        assert_eq!(rustc_minor_version(out), Some(96));
        assert_eq!(rustc_minor_version("release: 2.0.0\n"), None);
        assert_eq!(rustc_minor_version("rustc 1.96.0\n"), None);
    }

    #[test]
    fn bpffs_mount_detection() {
        let mounts = "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,relatime 0 0\n";
        assert!(bpffs_mounted(mounts, "/sys/fs/bpf"));
        assert!(!bpffs_mounted("sysfs /sys sysfs rw 0 0\n", "/sys/fs/bpf"));
        assert!(!bpffs_mounted(
            "tmpfs /sys/fs/bpf tmpfs rw 0 0\n",
            "/sys/fs/bpf"
        ));
    }

    #[test]
    fn requirement_lines_ignore_comments() {
        let text = "# header\n\nos-ken==3.1.1  # the CLI\n  six==1.17.0\n";
        assert_eq!(requirement_lines(text), ["os-ken==3.1.1", "six==1.17.0"]);
    }

    #[test]
    fn requirements_pin_os_ken() {
        let text = fs::read_to_string(requirements_file()).expect("requirements file exists");
        assert!(
            requirement_lines(&text).contains(&"os-ken==3.1.1"),
            "os-ken must stay at 3.1.1"
        );
    }
}

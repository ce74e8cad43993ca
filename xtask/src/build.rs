//! `cargo xtask build`: the release build of `lime-userspace`, whose `build.rs` builds
//! the eBPF object (`lime-ebpf`) with the `lime-bpf` toolchain and embeds it.

use std::path::PathBuf;

use anyhow::{Result, ensure};

use crate::{
    cmd::{self, Cmd},
    setup,
};

/// Sets up if needed, builds `lime-userspace` in release mode and returns the path of
/// the `lime` binary.
pub fn run() -> Result<PathBuf> {
    setup::ensure()?;
    Cmd::cargo()
        .args(["build", "--release", "-p", "lime-userspace"])
        .run()?;
    let lime = cmd::target_dir().join("release").join("lime");
    ensure!(
        lime.is_file(),
        "the build succeeded but {} does not exist",
        lime.display()
    );
    Ok(lime)
}

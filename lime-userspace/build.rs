//! Builds `lime-ebpf` for the BPF target with the Debian-provided `lime-bpf` toolchain
//! (see ../shared/TOOLCHAIN.md) and leaves the object in `OUT_DIR/lime` for
//! `include_bytes_aligned!`. `AYA_BUILD_SKIP=1` skips it for `cargo check`/clippy.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    // With AYA_BUILD_SKIP (cargo check, clippy) aya-build writes nothing; leave an empty
    // object so `include_bytes_aligned!` still compiles. Such a binary cannot load it.
    if let Some(out) = std::env::var_os("OUT_DIR") {
        let obj = std::path::Path::new(&out).join("lime");
        if std::env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true")
            && !obj.exists()
        {
            std::fs::write(&obj, [])?;
        }
    }
    let meta = cargo_metadata_root()?;
    let root_dir = format!("{meta}/lime-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "lime-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom("lime-bpf"),
    )
    .context("building lime-ebpf (run `cargo xtask setup` if the lime-bpf toolchain is missing)")
}

fn cargo_metadata_root() -> anyhow::Result<String> {
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").map_err(|_| anyhow!("CARGO_MANIFEST_DIR not set"))?;
    let path = std::path::Path::new(&dir)
        .parent()
        .ok_or_else(|| anyhow!("lime-userspace has no parent directory"))?;
    Ok(path.display().to_string())
}

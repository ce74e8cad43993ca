//! Subcommands of the `lime` binary.
pub mod bench;
pub mod bench_migration;
pub mod bench_openflow;
pub mod demo;
pub mod lab;
pub mod linerate;
pub mod migrate;
pub mod ovs;
pub mod plot;
pub mod run;

/// Refuse early, with a clear message, when not root.
pub fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("this command needs root (BPF programs and network namespaces); try sudo");
    }
    Ok(())
}

/// The median of `v` (not empty).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

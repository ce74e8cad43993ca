//! Code generation options for the BPF object, passed to bpf-linker (which does the
//! code generation for the whole program; see ../shared/TOOLCHAIN.md).
//!
//! - `+allows-misaligned-mem-access`: LLVM may load a packet field of several bytes
//!   with one load even where it cannot prove the alignment, instead of one load per
//!   byte. Safe where the kernel allows it: on architectures without efficient
//!   unaligned access (or with `BPF_F_STRICT_ALIGNMENT`) the verifier rejects such a
//!   load when the program is loaded, it never silently misbehaves.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "bpf") {
        println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

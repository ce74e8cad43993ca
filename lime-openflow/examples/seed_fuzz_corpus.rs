//! Writes every golden message of the test suite into the cargo-fuzz corpus
//! (`lime-openflow/fuzz/corpus/decode/<name>`), so fuzzing starts from
//! well-formed messages of every type.
//!
//! ```text
//! cargo run -p lime-openflow --example seed_fuzz_corpus
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let golden = common::golden();
    for g in &golden {
        let path = dir.join(g.name);
        std::fs::write(&path, &g.bytes)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    // One extra seed: all messages back to back, to exercise framing.
    let all: Vec<u8> = golden
        .iter()
        .flat_map(|g| g.bytes.iter().copied())
        .collect();
    std::fs::write(dir.join("stream_all"), all)
        .unwrap_or_else(|e| panic!("cannot write stream: {e}"));
    println!("wrote {} seeds to {}", golden.len() + 1, dir.display());
}

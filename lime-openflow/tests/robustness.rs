//! Randomized robustness test on stable Rust (runs in CI with `cargo test`).
//!
//! Feeds random bytes and random mutations/truncations of every golden
//! message through framing and decoding and checks that nothing panics,
//! that message decoding only yields message-scoped errors, that every error
//! can be turned into an ERROR reply, and that whatever decodes re-encodes
//! to something that decodes to the same value.
//!
//! The seed can be changed with `LIME_OF_SEED=<u64>`; the iteration count
//! with `LIME_OF_ITERS=<n>` (default 50 000).

mod common;
#[path = "common/exercise.rs"]
mod exercise;

use bytes::Bytes;
use exercise::exercise;

/// xorshift64*: small, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).expect("fits")
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sets the header length to the buffer length so mutations reach the body decoders.
fn fix_length(v: &mut [u8]) {
    let n = u16::try_from(v.len()).unwrap_or(u16::MAX);
    if let Some(len) = v.get_mut(2..4) {
        len.copy_from_slice(&n.to_be_bytes());
    }
}

fn mutate(rng: &mut Rng, v: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.byte();
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let n = rng.below(16);
                v.extend((0..n).map(|_| rng.byte()));
            }
            4 if !v.is_empty() => {
                // Small-valued byte: hits length fields and type numbers.
                let i = rng.below(v.len());
                v[i] = u8::try_from(rng.below(0x20)).expect("small");
            }
            5 if v.len() > 1 => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            6 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.byte());
            }
            _ => {}
        }
    }
    if rng.below(4) != 0 {
        fix_length(v);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(env("LIME_OF_SEED", 0x5eed_0f13) | 1);
    let iters = env("LIME_OF_ITERS", 50_000);
    for _ in 0..iters * 4 {
        let len = rng.below(96);
        let mut v: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        if rng.below(2) == 0 && v.len() >= 8 {
            v[0] = 4;
            v[1] = u8::try_from(rng.below(32)).expect("small");
            fix_length(&mut v);
        }
        exercise(&v);
    }
}

#[test]
fn mutated_golden_messages_never_panic() {
    let mut rng = Rng(env("LIME_OF_SEED", 0x0bad_cafe) | 1);
    let iters = env("LIME_OF_ITERS", 50_000) / 4;
    for g in common::golden() {
        exercise(&g.bytes);
        for _ in 0..iters {
            let mut v = g.bytes.clone();
            mutate(&mut rng, &mut v);
            exercise(&v);
        }
        // Every truncation of every golden message, with the length left alone and fixed up.
        for n in 0..g.bytes.len() {
            exercise(&g.bytes[..n]);
            let mut v = g.bytes[..n].to_vec();
            fix_length(&mut v);
            exercise(&v);
        }
    }
    // And all golden messages back to back, split at a random point.
    let all: Vec<u8> = common::golden()
        .iter()
        .flat_map(|g| g.bytes.clone())
        .collect();
    let cut = rng.below(all.len());
    exercise(&all[..cut]);
    let _ = Bytes::from(all);
}

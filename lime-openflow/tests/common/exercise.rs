//! The receive path every robustness check runs: framing, decoding, error
//! replies and re-encoding. Shared by `tests/robustness.rs` (stable, in CI)
//! and the cargo-fuzz target `fuzz/fuzz_targets/decode.rs`.

use bytes::BytesMut;
use lime_openflow::{ErrorScope, Message, error_reply, framing};

/// Runs one input through the whole receive path.
pub fn exercise(input: &[u8]) {
    let mut buf = BytesMut::from(input);
    loop {
        match framing::next_frame(&mut buf) {
            Ok(None) => break,
            Err(e) => {
                assert_eq!(
                    e.scope(),
                    ErrorScope::Connection,
                    "framing error must be fatal: {e}"
                );
                let _ = error_reply(&e, &buf);
                break;
            }
            Ok(Some(frame)) => match Message::decode(&frame.bytes) {
                Err(e) => {
                    assert_eq!(
                        e.scope(),
                        ErrorScope::Message,
                        "a delimited frame yields message errors: {e}"
                    );
                    let (xid, reply) = error_reply(&e, &frame.bytes);
                    assert_eq!(xid, frame.header.xid);
                    assert!(reply.data.len() <= 64);
                    let _ = e.to_string();
                }
                Ok((header, msg)) => {
                    let again = msg
                        .to_bytes(header.xid)
                        .expect("decoded messages fit when re-encoded");
                    let (_, msg2) = Message::decode(&again).unwrap_or_else(|e| {
                        panic!("re-encoded {msg:?} does not decode: {e}\ninput {input:02x?}")
                    });
                    assert_eq!(msg, msg2, "decode(encode(m)) != m for input {input:02x?}");
                }
            },
        }
    }
}

//! One file per message body (h2 `src/frame/*.rs` style).
//!
//! Each body type has `decode(body: Bytes)` (the bytes after the 8-byte
//! header) and `encode<B: BufMut>(&self, dst)` (writes the body only;
//! [`Message::encode`](crate::Message::encode) adds the header). Message
//! types that are just a header (FEATURES_REQUEST, BARRIER_*, ...) have no
//! file: they are unit variants of [`Message`](crate::Message).

pub mod async_config;
pub mod config;
pub mod echo;
pub mod error;
pub mod features;
pub mod flow_mod;
pub mod flow_removed;
pub mod hello;
pub mod packet_in;
pub mod packet_out;
pub mod port_status;
pub mod role;

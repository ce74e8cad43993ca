//! A sans-I/O codec for OpenFlow 1.3 (wire version 0x04).
//!
//! Like `quinn-proto` or h2's frame layer, this crate contains no
//! networking: it turns bytes into typed messages and back. The LIME switch
//! agent (and the test controller) wrap it in their own tokio loops.
//!
//! ```
//! use bytes::BytesMut;
//! use lime_openflow::{framing, Message, error_reply};
//!
//! let mut buf = BytesMut::from(&[0x04, 0x05, 0x00, 0x08, 0, 0, 0, 7][..]);
//! let frame = framing::next_frame(&mut buf).expect("valid header").expect("complete");
//! match Message::decode(&frame.bytes) {
//!     Ok((header, Message::FeaturesRequest)) => assert_eq!(header.xid, 7),
//!     Ok(other) => panic!("unexpected {other:?}"),
//!     Err(e) => {
//!         let (xid, err) = error_reply(&e, &frame.bytes);
//!         let _reply = Message::Error(err).to_bytes(xid);
//!     }
//! }
//! ```
//!
//! # Layout
//!
//! | module | contents |
//! |---|---|
//! | [`consts`] | every wire number: message types, ports, flags, OXM ids, action/instruction types, error types and codes |
//! | [`header`] | `ofp_header` and its zero-copy [`HeaderView`] |
//! | [`framing`] | [`framing::check`] / [`framing::next_frame`]: incomplete vs complete vs fatal |
//! | [`message`] | the [`Message`] enum, `decode`/`encode` dispatch |
//! | [`msg`] | one file per message body (hello, error, echo, features, config, packet-in/out, flow-mod, flow-removed, port-status, role, async) |
//! | [`multipart`] | multipart request/reply and one file per supported body (desc, flow/aggregate, table, port stats, table features) |
//! | [`oxm`] | [`Match`], [`OxmField`] and match validation |
//! | [`instruction`], [`action`] | instruction and action lists, with "supported by the datapath" checks |
//! | [`port`] | `ofp_port` ([`PortDesc`]) |
//! | [`error`] | [`DecodeError`], the one error → `(type, code)` table, [`error_reply`] |
//! | `wire` (private) | the bounds-checked `Reader` and TLV helpers every decoder uses |
//!
//! # Robustness
//!
//! Decoders never panic on untrusted input: all reads go through one
//! bounds-checked cursor that returns the spec's `*_BAD_LEN` error instead of
//! indexing, and there is no `unwrap` on received data. This is exercised by
//! a randomized test in the normal test suite (`tests/robustness.rs`) and by
//! the cargo-fuzz target in `fuzz/` (its own workspace), whose corpus is
//! seeded from the golden messages:
//!
//! ```text
//! cargo run -p lime-openflow --example seed_fuzz_corpus
//! cd lime-openflow/fuzz && cargo +nightly fuzz run decode
//! ```
//!
//! # Errors
//!
//! Every [`DecodeError`] maps to the `(ofp_error_type, code)` the 1.3.5 spec
//! names ([`DecodeError::code`]) and has a [`scope`](DecodeError::scope):
//! message errors are answered on the offending xid, connection errors end
//! the connection.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod action;
pub mod consts;
pub mod error;
pub mod framing;
pub mod header;
pub mod instruction;
pub mod message;
pub mod msg;
pub mod multipart;
pub mod oxm;
pub mod port;
mod wire;

pub use crate::action::{Action, DATAPATH_SETTABLE};
pub use crate::error::{DecodeError, EncodeError, ErrorCode, ErrorScope, Structure, error_reply};
pub use crate::framing::{Frame, FrameStatus};
pub use crate::header::{Header, HeaderView};
pub use crate::instruction::Instruction;
pub use crate::message::Message;
pub use crate::msg::async_config::AsyncConfig;
pub use crate::msg::config::SwitchConfig;
pub use crate::msg::echo::{EchoReply, EchoRequest};
pub use crate::msg::error::ErrorMsg;
pub use crate::msg::features::FeaturesReply;
pub use crate::msg::flow_mod::FlowMod;
pub use crate::msg::flow_removed::FlowRemoved;
pub use crate::msg::hello::{Hello, HelloElement, negotiate_version};
pub use crate::msg::packet_in::PacketIn;
pub use crate::msg::packet_out::PacketOut;
pub use crate::msg::port_status::PortStatus;
pub use crate::msg::role::Role;
pub use crate::multipart::{
    MultipartReply, MultipartReplyBody, MultipartRequest, MultipartRequestBody,
};
pub use crate::oxm::{MacAddr, Masked, Match, OxmField, OxmHeader};
pub use crate::port::PortDesc;

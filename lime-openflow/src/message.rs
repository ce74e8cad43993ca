//! The [`Message`] enum: dispatch from `ofp_header.type` to the body codecs.

use bytes::{BufMut, Bytes, BytesMut};

use crate::consts::{MsgType, OFP_VERSION};
use crate::error::{DecodeError, EncodeError, Structure};
use crate::framing::{FrameStatus, check};
use crate::header::Header;
use crate::msg::async_config::AsyncConfig;
use crate::msg::config::SwitchConfig;
use crate::msg::echo::{EchoReply, EchoRequest};
use crate::msg::error::ErrorMsg;
use crate::msg::features::FeaturesReply;
use crate::msg::flow_mod::FlowMod;
use crate::msg::flow_removed::FlowRemoved;
use crate::msg::hello::Hello;
use crate::msg::packet_in::PacketIn;
use crate::msg::packet_out::PacketOut;
use crate::msg::port_status::PortStatus;
use crate::msg::role::Role;
use crate::multipart::{MultipartReply, MultipartRequest};
use crate::wire::{Reader, scratch};

/// Every OpenFlow 1.3 message this codec understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// `OFPT_HELLO`.
    Hello(Hello),
    /// `OFPT_ERROR`.
    Error(ErrorMsg),
    /// `OFPT_ECHO_REQUEST`.
    EchoRequest(EchoRequest),
    /// `OFPT_ECHO_REPLY`.
    EchoReply(EchoReply),
    /// `OFPT_FEATURES_REQUEST` (header only).
    FeaturesRequest,
    /// `OFPT_FEATURES_REPLY`.
    FeaturesReply(FeaturesReply),
    /// `OFPT_GET_CONFIG_REQUEST` (header only).
    GetConfigRequest,
    /// `OFPT_GET_CONFIG_REPLY`.
    GetConfigReply(SwitchConfig),
    /// `OFPT_SET_CONFIG`.
    SetConfig(SwitchConfig),
    /// `OFPT_PACKET_IN`.
    PacketIn(PacketIn),
    /// `OFPT_FLOW_REMOVED`.
    FlowRemoved(FlowRemoved),
    /// `OFPT_PORT_STATUS`.
    PortStatus(PortStatus),
    /// `OFPT_PACKET_OUT`.
    PacketOut(PacketOut),
    /// `OFPT_FLOW_MOD`.
    FlowMod(FlowMod),
    /// `OFPT_MULTIPART_REQUEST`.
    MultipartRequest(MultipartRequest),
    /// `OFPT_MULTIPART_REPLY`.
    MultipartReply(MultipartReply),
    /// `OFPT_BARRIER_REQUEST` (header only).
    BarrierRequest,
    /// `OFPT_BARRIER_REPLY` (header only).
    BarrierReply,
    /// `OFPT_ROLE_REQUEST`.
    RoleRequest(Role),
    /// `OFPT_ROLE_REPLY`.
    RoleReply(Role),
    /// `OFPT_GET_ASYNC_REQUEST` (header only).
    GetAsyncRequest,
    /// `OFPT_GET_ASYNC_REPLY`.
    GetAsyncReply(AsyncConfig),
    /// `OFPT_SET_ASYNC`.
    SetAsync(AsyncConfig),
}

impl Message {
    /// The message type.
    #[must_use]
    pub const fn msg_type(&self) -> MsgType {
        match self {
            Self::Hello(_) => MsgType::Hello,
            Self::Error(_) => MsgType::Error,
            Self::EchoRequest(_) => MsgType::EchoRequest,
            Self::EchoReply(_) => MsgType::EchoReply,
            Self::FeaturesRequest => MsgType::FeaturesRequest,
            Self::FeaturesReply(_) => MsgType::FeaturesReply,
            Self::GetConfigRequest => MsgType::GetConfigRequest,
            Self::GetConfigReply(_) => MsgType::GetConfigReply,
            Self::SetConfig(_) => MsgType::SetConfig,
            Self::PacketIn(_) => MsgType::PacketIn,
            Self::FlowRemoved(_) => MsgType::FlowRemoved,
            Self::PortStatus(_) => MsgType::PortStatus,
            Self::PacketOut(_) => MsgType::PacketOut,
            Self::FlowMod(_) => MsgType::FlowMod,
            Self::MultipartRequest(_) => MsgType::MultipartRequest,
            Self::MultipartReply(_) => MsgType::MultipartReply,
            Self::BarrierRequest => MsgType::BarrierRequest,
            Self::BarrierReply => MsgType::BarrierReply,
            Self::RoleRequest(_) => MsgType::RoleRequest,
            Self::RoleReply(_) => MsgType::RoleReply,
            Self::GetAsyncRequest => MsgType::GetAsyncRequest,
            Self::GetAsyncReply(_) => MsgType::GetAsyncReply,
            Self::SetAsync(_) => MsgType::SetAsync,
        }
    }

    /// Decodes one complete frame (header included), e.g. a
    /// [`Frame::bytes`](crate::Frame::bytes).
    ///
    /// # Errors
    ///
    /// Message-scoped errors for bad content. If `frame` is not exactly one
    /// frame: `HeaderTooShort` (connection-scoped) or `OFPBRC_BAD_LEN`.
    pub fn decode(frame: &Bytes) -> Result<(Header, Self), DecodeError> {
        let header = match check(frame)? {
            FrameStatus::Complete { header } if usize::from(header.length) == frame.len() => header,
            _ => {
                return Err(DecodeError::bad_len(
                    Structure::Message,
                    frame.len(),
                    "buffer is not exactly one frame",
                ));
            }
        };
        let msg = Self::decode_body(&header, frame.slice(Header::LEN..))?;
        Ok((header, msg))
    }

    /// Decodes a body (the bytes after the header) of the given header.
    ///
    /// # Errors
    ///
    /// * `OFPBRC_BAD_VERSION` for a non-HELLO message whose version is not
    ///   0x04 (spec 6.3.1: after negotiation only that version is used;
    ///   HELLO is decoded in any version because it carries the negotiation).
    /// * `OFPBRC_BAD_TYPE` for unknown types and for group/port/table/meter
    ///   mods and queue config, which this switch does not implement;
    ///   `OFPBRC_BAD_EXPERIMENTER` for experimenter messages.
    /// * `OFPBRC_BAD_LEN` for bodies of the wrong size (spec 7.1), and the
    ///   errors of each body decoder.
    pub fn decode_body(header: &Header, body: Bytes) -> Result<Self, DecodeError> {
        let Some(t) = header.typed() else {
            return Err(DecodeError::BadType {
                msg_type: header.msg_type,
            });
        };
        if t != MsgType::Hello && header.version != OFP_VERSION {
            return Err(DecodeError::BadVersion {
                version: header.version,
            });
        }
        let empty = |body: Bytes, msg: Self| {
            if body.is_empty() {
                Ok(msg)
            } else {
                Err(DecodeError::bad_len(
                    Structure::Message,
                    body.len(),
                    "body must be empty",
                ))
            }
        };
        Ok(match t {
            MsgType::Hello => Self::Hello(Hello::decode(header.version, body)?),
            MsgType::Error => Self::Error(ErrorMsg::decode(body)?),
            MsgType::EchoRequest => Self::EchoRequest(EchoRequest::decode(body)),
            MsgType::EchoReply => Self::EchoReply(EchoReply::decode(body)),
            MsgType::FeaturesRequest => empty(body, Self::FeaturesRequest)?,
            MsgType::FeaturesReply => Self::FeaturesReply(FeaturesReply::decode(body)?),
            MsgType::GetConfigRequest => empty(body, Self::GetConfigRequest)?,
            MsgType::GetConfigReply => Self::GetConfigReply(SwitchConfig::decode(body)?),
            MsgType::SetConfig => Self::SetConfig(SwitchConfig::decode(body)?),
            MsgType::PacketIn => Self::PacketIn(PacketIn::decode(body)?),
            MsgType::FlowRemoved => Self::FlowRemoved(FlowRemoved::decode(body)?),
            MsgType::PortStatus => Self::PortStatus(PortStatus::decode(body)?),
            MsgType::PacketOut => Self::PacketOut(PacketOut::decode(body)?),
            MsgType::FlowMod => Self::FlowMod(FlowMod::decode(body)?),
            MsgType::MultipartRequest => Self::MultipartRequest(MultipartRequest::decode(body)?),
            MsgType::MultipartReply => Self::MultipartReply(MultipartReply::decode(body)?),
            MsgType::BarrierRequest => empty(body, Self::BarrierRequest)?,
            MsgType::BarrierReply => empty(body, Self::BarrierReply)?,
            MsgType::RoleRequest => Self::RoleRequest(Role::decode(body)?),
            MsgType::RoleReply => Self::RoleReply(Role::decode(body)?),
            MsgType::GetAsyncRequest => empty(body, Self::GetAsyncRequest)?,
            MsgType::GetAsyncReply => Self::GetAsyncReply(AsyncConfig::decode(body)?),
            MsgType::SetAsync => Self::SetAsync(AsyncConfig::decode(body)?),
            MsgType::Experimenter => {
                let experimenter = Reader::new(body, Structure::Message).u32()?;
                return Err(DecodeError::BadExperimenter { experimenter });
            }
            MsgType::GroupMod
            | MsgType::PortMod
            | MsgType::TableMod
            | MsgType::QueueGetConfigRequest
            | MsgType::QueueGetConfigReply
            | MsgType::MeterMod => {
                return Err(DecodeError::BadType {
                    msg_type: header.msg_type,
                });
            }
        })
    }

    fn encode_body<B: BufMut>(&self, dst: &mut B) {
        match self {
            Self::Hello(m) => m.encode(dst),
            Self::Error(m) => m.encode(dst),
            Self::EchoRequest(m) => m.encode(dst),
            Self::EchoReply(m) => m.encode(dst),
            Self::FeaturesReply(m) => m.encode(dst),
            Self::GetConfigReply(m) | Self::SetConfig(m) => m.encode(dst),
            Self::PacketIn(m) => m.encode(dst),
            Self::FlowRemoved(m) => m.encode(dst),
            Self::PortStatus(m) => m.encode(dst),
            Self::PacketOut(m) => m.encode(dst),
            Self::FlowMod(m) => m.encode(dst),
            Self::MultipartRequest(m) => m.encode(dst),
            Self::MultipartReply(m) => m.encode(dst),
            Self::RoleRequest(m) | Self::RoleReply(m) => m.encode(dst),
            Self::GetAsyncReply(m) | Self::SetAsync(m) => m.encode(dst),
            Self::FeaturesRequest
            | Self::GetConfigRequest
            | Self::BarrierRequest
            | Self::BarrierReply
            | Self::GetAsyncRequest => {}
        }
    }

    /// Writes the whole message (header with `xid`, then body).
    ///
    /// The header version is 0x04, except for HELLO which uses
    /// [`Hello::version`].
    ///
    /// # Errors
    ///
    /// [`EncodeError::TooLong`] if the message exceeds 65535 bytes; nothing
    /// is written then.
    pub fn encode<B: BufMut>(&self, xid: u32, dst: &mut B) -> Result<(), EncodeError> {
        let body = scratch(|b| self.encode_body(b));
        let length = Header::LEN + body.len();
        let length16 = u16::try_from(length).map_err(|_| EncodeError::TooLong { length })?;
        let version = match self {
            Self::Hello(h) => h.version,
            _ => OFP_VERSION,
        };
        Header {
            version,
            msg_type: self.msg_type().to_raw(),
            length: length16,
            xid,
        }
        .encode(dst);
        dst.put_slice(&body);
        Ok(())
    }

    /// Encodes into a fresh buffer.
    ///
    /// # Errors
    ///
    /// As [`Message::encode`].
    pub fn to_bytes(&self, xid: u32) -> Result<Bytes, EncodeError> {
        let mut b = BytesMut::new();
        self.encode(xid, &mut b)?;
        Ok(b.freeze())
    }
}

macro_rules! from_body {
    ($($ty:ty => $var:ident),+ $(,)?) => {$(
        impl From<$ty> for Message {
            fn from(m: $ty) -> Self {
                Self::$var(m)
            }
        }
    )+};
}

from_body! {
    Hello => Hello,
    ErrorMsg => Error,
    EchoRequest => EchoRequest,
    EchoReply => EchoReply,
    FeaturesReply => FeaturesReply,
    PacketIn => PacketIn,
    FlowRemoved => FlowRemoved,
    PortStatus => PortStatus,
    PacketOut => PacketOut,
    FlowMod => FlowMod,
    MultipartRequest => MultipartRequest,
    MultipartReply => MultipartReply,
}

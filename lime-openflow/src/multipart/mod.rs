//! `OFPT_MULTIPART_REQUEST` / `OFPT_MULTIPART_REPLY` (spec 7.3.5).
//!
//! ```text
//! type u16 | flags u16 | pad[4] | body
//! ```
//!
//! Supported types: DESC, FLOW, AGGREGATE, TABLE, PORT_STATS, PORT_DESC and
//! TABLE_FEATURES. Others (queue, group, meter) give `OFPBRC_BAD_MULTIPART`,
//! experimenter gives `OFPBRC_BAD_EXPERIMENTER`. A reply too big for one
//! message is split by the caller into several replies with
//! [`REPLY_MORE`](crate::consts::multipart_flags::REPLY_MORE) set on all but
//! the last.

pub mod desc;
pub mod flow;
pub mod port_stats;
pub mod table;
pub mod table_features;

use bytes::{BufMut, Bytes};

pub use self::desc::Desc;
pub use self::flow::{AggregateStats, FlowStats, FlowStatsRequest};
pub use self::port_stats::PortStats;
pub use self::table::TableStats;
pub use self::table_features::{TableFeatureProp, TableFeatures};
use crate::consts::{MultipartType, multipart_flags};
use crate::error::{DecodeError, Structure};
use crate::port::PortDesc;
use crate::wire::Reader;

/// Body of a multipart request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultipartRequestBody {
    /// `OFPMP_DESC` (empty body).
    Desc,
    /// `OFPMP_FLOW`.
    Flow(FlowStatsRequest),
    /// `OFPMP_AGGREGATE` (same layout as a flow stats request).
    Aggregate(FlowStatsRequest),
    /// `OFPMP_TABLE` (empty body).
    Table,
    /// `OFPMP_PORT_STATS`: `port_no u32 | pad[4]`; `OFPP_ANY` = all ports.
    PortStats {
        /// Port, or `OFPP_ANY`.
        port_no: u32,
    },
    /// `OFPMP_PORT_DESC` (empty body).
    PortDesc,
    /// `OFPMP_TABLE_FEATURES`: empty = query, non-empty = set tables.
    TableFeatures(Vec<TableFeatures>),
}

/// Body of a multipart reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultipartReplyBody {
    /// `OFPMP_DESC`.
    Desc(Desc),
    /// `OFPMP_FLOW`.
    Flow(Vec<FlowStats>),
    /// `OFPMP_AGGREGATE`.
    Aggregate(AggregateStats),
    /// `OFPMP_TABLE`.
    Table(Vec<TableStats>),
    /// `OFPMP_PORT_STATS`.
    PortStats(Vec<PortStats>),
    /// `OFPMP_PORT_DESC`.
    PortDesc(Vec<PortDesc>),
    /// `OFPMP_TABLE_FEATURES`.
    TableFeatures(Vec<TableFeatures>),
}

/// A multipart request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartRequest {
    /// `OFPMPF_REQ_MORE` and reserved bits, raw.
    pub flags: u16,
    /// The request.
    pub body: MultipartRequestBody,
}

/// A multipart reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartReply {
    /// `OFPMPF_REPLY_MORE` and reserved bits, raw.
    pub flags: u16,
    /// The reply.
    pub body: MultipartReplyBody,
}

/// Reads `type | flags | pad[4]` and rejects unsupported types.
fn decode_prefix(r: &mut Reader) -> Result<(MultipartType, u16), DecodeError> {
    let raw = r.u16()?;
    let flags = r.u16()?;
    r.skip(4)?;
    match MultipartType::from_raw(raw) {
        Some(MultipartType::Experimenter) => Err(DecodeError::BadExperimenter {
            experimenter: r.u32()?,
        }),
        Some(
            t @ (MultipartType::Desc
            | MultipartType::Flow
            | MultipartType::Aggregate
            | MultipartType::Table
            | MultipartType::PortStats
            | MultipartType::PortDesc
            | MultipartType::TableFeatures),
        ) => Ok((t, flags)),
        _ => Err(DecodeError::BadMultipart {
            multipart_type: raw,
        }),
    }
}

fn put_prefix<B: BufMut>(dst: &mut B, t: MultipartType, flags: u16) {
    dst.put_u16(t.to_raw());
    dst.put_u16(flags);
    dst.put_bytes(0, 4);
}

/// Decodes an array of fixed-size records until the body is exhausted.
fn decode_array<T>(
    r: &mut Reader,
    len: usize,
    f: impl Fn(&mut Reader) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::with_capacity(r.remaining() / len.max(1));
    while !r.is_empty() {
        let mut rec = r.sub(len, Structure::Multipart)?;
        out.push(f(&mut rec)?);
        rec.finish()?;
    }
    Ok(out)
}

/// Decodes an array of records prefixed by their own `length: u16`.
fn decode_length_prefixed<T>(
    r: &mut Reader,
    structure: Structure,
    f: impl Fn(&mut Reader) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.u16()?);
        if len < 2 {
            return Err(DecodeError::bad_len(
                structure,
                len,
                "record shorter than its length field",
            ));
        }
        let mut rec = r.sub(len - 2, structure)?;
        out.push(f(&mut rec)?);
    }
    Ok(out)
}

impl MultipartRequest {
    /// A request with no flags.
    #[must_use]
    pub const fn new(body: MultipartRequestBody) -> Self {
        Self { flags: 0, body }
    }

    /// Whether `OFPMPF_REQ_MORE` is set.
    #[must_use]
    pub const fn more(&self) -> bool {
        self.flags & multipart_flags::REQ_MORE != 0
    }

    /// The multipart type.
    #[must_use]
    pub const fn multipart_type(&self) -> MultipartType {
        match self.body {
            MultipartRequestBody::Desc => MultipartType::Desc,
            MultipartRequestBody::Flow(_) => MultipartType::Flow,
            MultipartRequestBody::Aggregate(_) => MultipartType::Aggregate,
            MultipartRequestBody::Table => MultipartType::Table,
            MultipartRequestBody::PortStats { .. } => MultipartType::PortStats,
            MultipartRequestBody::PortDesc => MultipartType::PortDesc,
            MultipartRequestBody::TableFeatures(_) => MultipartType::TableFeatures,
        }
    }

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// `OFPBRC_BAD_MULTIPART`, `OFPBRC_BAD_EXPERIMENTER`, `OFPBRC_BAD_LEN`,
    /// and errors of nested structures.
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Multipart);
        let (t, flags) = decode_prefix(&mut r)?;
        let body = match t {
            MultipartType::Desc => MultipartRequestBody::Desc,
            MultipartType::Table => MultipartRequestBody::Table,
            MultipartType::PortDesc => MultipartRequestBody::PortDesc,
            MultipartType::Flow => MultipartRequestBody::Flow(FlowStatsRequest::decode(&mut r)?),
            MultipartType::Aggregate => {
                MultipartRequestBody::Aggregate(FlowStatsRequest::decode(&mut r)?)
            }
            MultipartType::PortStats => {
                let port_no = r.u32()?;
                r.skip(4)?;
                MultipartRequestBody::PortStats { port_no }
            }
            _ => MultipartRequestBody::TableFeatures(table_features::decode_list(&mut r)?),
        };
        r.finish()?;
        Ok(Self { flags, body })
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        put_prefix(dst, self.multipart_type(), self.flags);
        match &self.body {
            MultipartRequestBody::Desc
            | MultipartRequestBody::Table
            | MultipartRequestBody::PortDesc => {}
            MultipartRequestBody::Flow(req) | MultipartRequestBody::Aggregate(req) => {
                req.encode(dst)
            }
            MultipartRequestBody::PortStats { port_no } => {
                dst.put_u32(*port_no);
                dst.put_bytes(0, 4);
            }
            MultipartRequestBody::TableFeatures(tables) => {
                tables.iter().for_each(|t| t.encode(dst))
            }
        }
    }
}

impl MultipartReply {
    /// A reply with no flags (the last or only part).
    #[must_use]
    pub const fn new(body: MultipartReplyBody) -> Self {
        Self { flags: 0, body }
    }

    /// Whether `OFPMPF_REPLY_MORE` is set.
    #[must_use]
    pub const fn more(&self) -> bool {
        self.flags & multipart_flags::REPLY_MORE != 0
    }

    /// The multipart type.
    #[must_use]
    pub const fn multipart_type(&self) -> MultipartType {
        match self.body {
            MultipartReplyBody::Desc(_) => MultipartType::Desc,
            MultipartReplyBody::Flow(_) => MultipartType::Flow,
            MultipartReplyBody::Aggregate(_) => MultipartType::Aggregate,
            MultipartReplyBody::Table(_) => MultipartType::Table,
            MultipartReplyBody::PortStats(_) => MultipartType::PortStats,
            MultipartReplyBody::PortDesc(_) => MultipartType::PortDesc,
            MultipartReplyBody::TableFeatures(_) => MultipartType::TableFeatures,
        }
    }

    /// Decodes the body.
    ///
    /// # Errors
    ///
    /// As [`MultipartRequest::decode`].
    pub fn decode(body: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, Structure::Multipart);
        let (t, flags) = decode_prefix(&mut r)?;
        let body = match t {
            MultipartType::Desc => MultipartReplyBody::Desc(Desc::decode(&mut r)?),
            MultipartType::Flow => MultipartReplyBody::Flow(decode_length_prefixed(
                &mut r,
                Structure::Multipart,
                FlowStats::decode,
            )?),
            MultipartType::Aggregate => {
                MultipartReplyBody::Aggregate(AggregateStats::decode(&mut r)?)
            }
            MultipartType::Table => MultipartReplyBody::Table(decode_array(
                &mut r,
                TableStats::LEN,
                TableStats::decode,
            )?),
            MultipartType::PortStats => MultipartReplyBody::PortStats(decode_array(
                &mut r,
                PortStats::LEN,
                PortStats::decode,
            )?),
            MultipartType::PortDesc => {
                MultipartReplyBody::PortDesc(decode_array(&mut r, PortDesc::LEN, PortDesc::decode)?)
            }
            _ => MultipartReplyBody::TableFeatures(table_features::decode_list(&mut r)?),
        };
        r.finish()?;
        Ok(Self { flags, body })
    }

    /// Encodes the body.
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        put_prefix(dst, self.multipart_type(), self.flags);
        match &self.body {
            MultipartReplyBody::Desc(d) => d.encode(dst),
            MultipartReplyBody::Flow(v) => v.iter().for_each(|s| s.encode(dst)),
            MultipartReplyBody::Aggregate(a) => a.encode(dst),
            MultipartReplyBody::Table(v) => v.iter().for_each(|s| s.encode(dst)),
            MultipartReplyBody::PortStats(v) => v.iter().for_each(|s| s.encode(dst)),
            MultipartReplyBody::PortDesc(v) => v.iter().for_each(|p| p.encode(dst)),
            MultipartReplyBody::TableFeatures(v) => v.iter().for_each(|t| t.encode(dst)),
        }
    }
}

//! Packet-in and packet-out.
//!
//! **Packet-in**: a rule's CONTROLLER action makes the datapath write a
//! [`PacketInMeta`] followed by the frame's first bytes into the `PACKET_IN` perf event
//! array; [`PacketInReader`] drains every CPU's buffer.
//!
//! **Packet-out**: [`inject_frame`] builds the frame the datapath's injection port
//! expects (an outer Ethernet header of type `ETH_P_LIME`, a [`TunnelHeader`] flagged
//! PACKET_OUT naming the virtual switch, in_port and the output port or OFPP_TABLE, then
//! the frame) and runs it through the XDP program with `BPF_PROG_TEST_RUN` in live-frames
//! mode, from inside the physical switch's namespace: the program sees it arrive on the
//! namespace's loopback (mapped as the injection port) and redirects it for real.
use std::{
    os::fd::{AsRawFd, RawFd},
    time::Duration,
};

use aya::maps::{
    MapData,
    perf::{PerfEvent, PerfEventArrayBuffer},
};
use lime_common::wire::{ETH_P_LIME, PacketInMeta, TUNNEL_MAGIC, TunnelHeader, tunnel_flags};

use super::{DatapathError, Kernel};

/// A frame sent to the controller, with its datapath metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketIn {
    /// Metadata (virtual switch, in_port, table, cookie, rule, version).
    pub meta: PacketInMeta,
    /// The first `meta.captured` bytes of the frame.
    pub frame: Vec<u8>,
}

/// Reads packet-ins from every CPU's perf buffer.
pub struct PacketInReader {
    buffers: Vec<PerfEventArrayBuffer<MapData>>,
    lost: u64,
}

impl PacketInReader {
    /// Open a buffer per online CPU (`pages` pages each, a power of two).
    pub fn open(kernel: &mut Kernel, pages: usize) -> Result<Self, DatapathError> {
        let mut array = kernel.take_packet_in()?;
        let cpus = aya::util::online_cpus().map_err(|(_, e)| DatapathError::Io {
            what: "listing online CPUs".into(),
            source: e,
        })?;
        let mut buffers = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let b = array
                .open(cpu, Some(pages))
                .map_err(|e| DatapathError::Kernel {
                    what: format!("opening the packet-in buffer of CPU {cpu}"),
                    detail: e.to_string(),
                })?;
            buffers.push(b);
        }
        Ok(Self { buffers, lost: 0 })
    }

    /// Records the kernel dropped because a buffer was full.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The buffers' file descriptors, for an event loop.
    #[must_use]
    pub fn fds(&self) -> Vec<RawFd> {
        self.buffers.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Wait up to `timeout` for packet-ins and return all that are available.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<PacketIn>, DatapathError> {
        let mut pfds: Vec<libc::pollfd> = self
            .buffers
            .iter()
            .map(|b| libc::pollfd {
                fd: b.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: pfds is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n < 0 {
            return Err(DatapathError::Io {
                what: "polling packet-in buffers".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(self.drain())
    }

    /// Everything buffered now, without waiting.
    pub fn drain(&mut self) -> Vec<PacketIn> {
        let mut out = Vec::new();
        let mut lost = 0;
        for b in &mut self.buffers {
            b.for_each(|ev| match ev {
                PerfEvent::Sample { head, tail } => {
                    let mut bytes = head.to_vec();
                    bytes.extend_from_slice(tail);
                    if let Some(p) = decode_sample(&bytes) {
                        out.push(p);
                    }
                }
                PerfEvent::Lost { count } => lost += count,
            });
        }
        self.lost += lost;
        out
    }
}

/// Decode one perf sample: a [`PacketInMeta`] then `captured` frame bytes (then padding).
#[must_use]
pub fn decode_sample(bytes: &[u8]) -> Option<PacketIn> {
    let meta_len = size_of::<PacketInMeta>();
    if bytes.len() < meta_len {
        return None;
    }
    // SAFETY: length checked; PacketInMeta is plain data, read unaligned.
    let meta: PacketInMeta = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let end = meta_len.checked_add(meta.captured as usize)?;
    let mut frame = bytes.get(meta_len..end)?.to_vec();
    if meta.captured == meta.frame_len {
        // Taken at TC from a host that offloads checksums, the frame may still carry a
        // partial one: the controller gets it as the wire would have.
        crate::packet::finish_partial_checksum(&mut frame);
    }
    Some(PacketIn { meta, frame })
}

/// The frame the injection port expects for a packet-out.
#[must_use]
pub fn packet_out_frame(vswitch: u16, in_port: u32, out_port: u32, frame: &[u8]) -> Vec<u8> {
    let hdr = TunnelHeader {
        magic: TUNNEL_MAGIC,
        flags: tunnel_flags::PACKET_OUT,
        hops: 0,
        _reserved: 0,
        vswitch: vswitch.to_be_bytes(),
        _reserved2: [0; 2],
        in_port: in_port.to_be_bytes(),
        out_port: out_port.to_be_bytes(),
        version: [0; 4],
    };
    let mut out = Vec::with_capacity(14 + size_of::<TunnelHeader>() + frame.len());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&ETH_P_LIME.to_be_bytes());
    // SAFETY: TunnelHeader is repr(C), align 1, plain bytes.
    let hdr_bytes: [u8; size_of::<TunnelHeader>()] = unsafe { std::mem::transmute(hdr) };
    out.extend_from_slice(&hdr_bytes);
    out.extend_from_slice(frame);
    out
}

/// Inject a prepared packet-out frame (see [`packet_out_frame`]) through the datapath, in
/// the current thread's network namespace (whose loopback must be mapped as the
/// injection port).
pub fn inject_frame(kernel: &Kernel, frame: &[u8]) -> Result<(), DatapathError> {
    kernel.run_live(frame)
}

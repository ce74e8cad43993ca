//! Batched map writes and reads: `BPF_MAP_UPDATE_BATCH`, `BPF_MAP_DELETE_BATCH` and
//! `BPF_MAP_LOOKUP_BATCH`, which aya 0.14 does not wrap. A large flow-mod batch writes
//! one program and one bucket per rule; one system call per element was a third of the
//! time to BARRIER_REPLY, one per few thousand elements is noise. A flow-stats reply
//! or an idle sweep reads the counters of thousands of rules: [`lookup_array`] reads
//! the id range they span, a few thousand per call.
//!
//! The kernel applies a batch element by element, in order (so a batch means exactly
//! what the same writes one by one mean), and on an error reports how many it applied;
//! [`update`] returns that count with the error, so a caller can say which element
//! failed. [`delete`] skips keys that are already gone, as single deletes here always
//! did.
use std::os::fd::{AsRawFd, BorrowedFd};

/// `BPF_MAP_LOOKUP_BATCH` (include/uapi/linux/bpf.h, `enum bpf_cmd`).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// `BPF_MAP_UPDATE_BATCH`.
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
/// `BPF_MAP_DELETE_BATCH`.
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Most elements per system call: bounds the staging buffers, and the time the kernel
/// spends in one call.
pub const MAX_BATCH: usize = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// One batch command; on failure, how many elements the kernel applied, and the error.
fn call(
    cmd: libc::c_long,
    map: BorrowedFd<'_>,
    keys: &[u8],
    values: Option<&[u8]>,
    count: usize,
) -> Result<(), (usize, std::io::Error)> {
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.map_or(0, |v| v.as_ptr() as u64),
        count: u32::try_from(count).unwrap_or(u32::MAX),
        map_fd: u32::try_from(map.as_raw_fd()).unwrap_or(u32::MAX),
        ..BatchAttr::default()
    };
    syscall(cmd, &mut attr)
}

/// `bpf(cmd, attr)`; on failure, the count the kernel wrote back, and the error.
fn syscall(cmd: libc::c_long, attr: &mut BatchAttr) -> Result<(), (usize, std::io::Error)> {
    // SAFETY: `attr` is a valid `bpf_attr` prefix for the batch commands (the kernel
    // zero-extends the rest); its buffers hold `count` elements of the map's key and
    // value size (checked by the callers), and outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        Err((attr.count as usize, std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

/// Read the values of array indices `first..first + count` into `values` (the map's
/// value size each, per-CPU values as the kernel lays them out: `value_size` is the
/// whole element's), in calls of at most [`MAX_BATCH`] elements.
///
/// # Errors
/// The index that failed (or was past the end of the array), and why.
pub fn lookup_array(
    map: BorrowedFd<'_>,
    first: u32,
    count: usize,
    value_size: usize,
    values: &mut Vec<u8>,
) -> Result<(), (usize, std::io::Error)> {
    values.clear();
    values.resize(count * value_size, 0);
    let mut keys = vec![0u8; MAX_BATCH.min(count) * 4];
    let mut done = 0;
    // The kernel resumes after the key in `in_batch` (none: from index 0) and writes
    // the last key it read to `out_batch`.
    let mut prev = first.wrapping_sub(1);
    let mut next = 0u32;
    while done < count {
        let n = MAX_BATCH.min(count - done);
        let mut attr = BatchAttr {
            in_batch: if done == 0 && first == 0 {
                0
            } else {
                std::ptr::from_ref(&prev) as u64
            },
            out_batch: std::ptr::from_mut(&mut next) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values[done * value_size..].as_mut_ptr() as u64,
            count: u32::try_from(n).unwrap_or(u32::MAX),
            map_fd: u32::try_from(map.as_raw_fd()).unwrap_or(u32::MAX),
            ..BatchAttr::default()
        };
        let r = syscall(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let got = attr.count as usize;
        match r {
            Ok(()) if got == n => {}
            // The end of the array, reached with the last element asked for.
            Err((_, e)) if got == n && e.raw_os_error() == Some(libc::ENOENT) => {}
            Err((_, e)) => return Err((done + got, e)),
            Ok(()) => {
                return Err((
                    done + got,
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
        }
        done += n;
        prev = next;
    }
    Ok(())
}

/// Append the bytes of a plain-data value (a key or value of a batch) to `out`.
pub fn push_bytes<T: aya::Pod>(out: &mut Vec<u8>, item: &T) {
    // SAFETY: `T: Pod` is plain data with every byte initialised (no padding holes:
    // see lime-common's `abi_type!`), and `item` is a valid reference for its size.
    let b = unsafe {
        std::slice::from_raw_parts(
            std::ptr::from_ref(item).cast::<u8>(),
            std::mem::size_of::<T>(),
        )
    };
    out.extend_from_slice(b);
}

/// The keys and values of one batch call, back to back, as the kernel takes them. Kept
/// by the writer between calls: a large flow-mod batch fills them again and again
/// without fresh memory (the ops are copied into them once, straight from the ops).
#[derive(Debug, Default)]
pub struct Staging {
    /// Keys.
    pub keys: Vec<u8>,
    /// Values (empty for deletes).
    pub values: Vec<u8>,
}

/// Write `count` elements (`keys` and `values` back to back, in the map's sizes).
///
/// # Errors
/// The index of the element that failed, and why.
pub fn update(
    map: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> Result<(), (usize, std::io::Error)> {
    call(BPF_MAP_UPDATE_BATCH, map, keys, Some(values), count)
}

/// Delete `count` keys (back to back, `key_size` bytes each), skipping those already
/// gone.
///
/// # Errors
/// The index of the key that failed for another reason, and why.
pub fn delete(
    map: BorrowedFd<'_>,
    keys: &[u8],
    key_size: usize,
    count: usize,
) -> Result<(), (usize, std::io::Error)> {
    let mut done = 0;
    while done < count {
        match call(
            BPF_MAP_DELETE_BATCH,
            map,
            &keys[done * key_size..count * key_size],
            None,
            count - done,
        ) {
            Ok(()) => return Ok(()),
            // The key at `done + n` is not there: nothing to delete, go on after it.
            Err((n, e)) if e.raw_os_error() == Some(libc::ENOENT) => done += n + 1,
            Err((n, e)) => return Err((done + n, e)),
        }
    }
    Ok(())
}

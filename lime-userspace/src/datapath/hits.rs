//! When each rule last matched, derived from its packet counter.
//!
//! The datapath keeps per-rule packet and byte counters but no time (a clock read on
//! every packet was a measurable part of a flow-cache hit). The driver notes, for each
//! rule id, the packet count it read last and the time at which it first read that
//! count: a rule was last hit at (or shortly before) the first read that saw its
//! current count. Readers that need the time (idle timeouts) read often enough; a hit
//! is seen at most one read interval late, never early, so an idle timeout can fire
//! late by that interval but never while the rule is in use.
//!
//! No kernel here: unit-tested with explicit times.
use std::sync::Mutex;

use crate::FastMap;

/// Per rule id: the packet count last read and when it was first read.
#[derive(Debug, Default)]
pub struct LastHits {
    seen: Mutex<FastMap<u32, Seen>>,
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    packets: u64,
    since_ns: u64,
}

impl LastHits {
    /// Record that rule `id` reads `packets` at `now_ns` (CLOCK_MONOTONIC); returns the
    /// time of its last hit: 0 if it has no packets, else when this count was first
    /// read. A rule never read before that already has packets (e.g. after the control
    /// plane restarted) counts as hit now.
    pub fn observe(&self, id: u32, packets: u64, now_ns: u64) -> u64 {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = seen.entry(id).or_insert(Seen {
            packets: 0,
            since_ns: 0,
        });
        if s.packets != packets {
            s.packets = packets;
            s.since_ns = if packets == 0 { 0 } else { now_ns };
        }
        s.since_ns
    }

    /// The rule id's counters were reset (the id is being reused): forget it.
    pub fn forget(&self, id: u32) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock idle timeouts are measured with).
#[must_use]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_hit_is_zero() {
        let h = LastHits::default();
        assert_eq!(h.observe(1, 0, 100), 0);
        assert_eq!(h.observe(1, 0, 200), 0);
    }

    #[test]
    fn last_hit_is_the_first_read_of_the_current_count() {
        let h = LastHits::default();
        assert_eq!(h.observe(1, 0, 100), 0);
        assert_eq!(h.observe(1, 5, 200), 200);
        // Idle: the count stays, so does the time.
        assert_eq!(h.observe(1, 5, 300), 200);
        assert_eq!(h.observe(1, 5, 900), 200);
        // Busy again.
        assert_eq!(h.observe(1, 6, 1000), 1000);
        // Other ids are independent.
        assert_eq!(h.observe(2, 1, 1100), 1100);
        assert_eq!(h.observe(1, 6, 1200), 1000);
    }

    #[test]
    fn first_read_with_packets_counts_as_a_hit_now() {
        let h = LastHits::default();
        assert_eq!(h.observe(7, 42, 500), 500);
        assert_eq!(h.observe(7, 42, 600), 500);
    }

    #[test]
    fn reset_and_reuse_start_over() {
        let h = LastHits::default();
        assert_eq!(h.observe(3, 9, 100), 100);
        h.forget(3);
        assert_eq!(h.observe(3, 0, 200), 0);
        assert_eq!(h.observe(3, 9, 300), 300);
        // A reset seen only as a different count (even the same one later) is a hit.
        assert_eq!(h.observe(3, 2, 400), 400);
    }
}

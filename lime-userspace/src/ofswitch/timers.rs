//! When the core's sweep looks at each flow entry with a timeout next: a min-heap of
//! (time, entry id), so a sweep touches the entries that are due, not every entry.
//!
//! Before, every sweep (ten a second) walked the whole table: with 100 000 idle entries
//! and no traffic that walk was most of the 0.3 CPU seconds per second the switch
//! spent on them (`lime bench openflow`, idle sweep).
//!
//! An entry is *scheduled* at one time at most ([`Timers::schedule`] moves it); the
//! heap keeps superseded items until they come up, and [`Timers::take_due`] skips
//! them (the map says which time is current). Entries join by id: new entries have
//! ids at or above [`Timers::upto`] (a virtual switch numbers its entries upwards), and
//! a full look every [`FULL_LOOK`] schedules any entry that is not (an entry restored
//! with an older id) — the sweep asks, [`Timers::full_look_due`].
use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    time::{Duration, Instant},
};

/// How often the sweep looks at every entry for ones not scheduled yet.
pub const FULL_LOOK: Duration = Duration::from_secs(10);

/// The schedule of one virtual switch's entries with timeouts.
#[derive(Debug, Default)]
pub struct Timers {
    /// (time in CLOCK_MONOTONIC ns, entry id), earliest first; may hold superseded
    /// items.
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    /// Entry id → its current time.
    at: crate::FastMap<u64, u64>,
    /// Entries with lower ids were offered to [`Timers::schedule_new`].
    upto: u64,
    /// The last full look.
    last_full: Option<Instant>,
}

impl Timers {
    /// Schedule entry `id` at `at_ns` (replacing its time if it had one).
    pub fn schedule(&mut self, id: u64, at_ns: u64) {
        self.at.insert(id, at_ns);
        self.heap.push(Reverse((at_ns, id)));
    }

    /// Schedule entry `id` at `at_ns` unless it is scheduled already.
    pub fn schedule_new(&mut self, id: u64, at_ns: u64) {
        if !self.at.contains_key(&id) {
            self.schedule(id, at_ns);
        }
    }

    /// The lowest entry id not yet offered to [`Self::schedule_new`] by id.
    #[must_use]
    pub const fn upto(&self) -> u64 {
        self.upto
    }

    /// Entries below `id` were offered.
    pub fn offered_upto(&mut self, id: u64) {
        self.upto = self.upto.max(id);
    }

    /// Whether the sweep should look at every entry now (and then call
    /// [`Self::full_look_done`]).
    #[must_use]
    pub fn full_look_due(&self) -> bool {
        self.last_full.is_none_or(|t| t.elapsed() >= FULL_LOOK)
    }

    /// A full look is done; `live` says which entries still exist (the schedule
    /// forgets the others, and drops superseded heap items if they are the bulk).
    pub fn full_look_done(&mut self, live: impl Fn(u64) -> bool) {
        self.last_full = Some(Instant::now());
        self.at.retain(|id, _| live(*id));
        if self.heap.len() > 2 * self.at.len() + 1024 {
            self.heap = self.at.iter().map(|(&id, &t)| Reverse((t, id))).collect();
        }
    }

    /// Take every entry due by `now_ns`, earliest first; each is no longer scheduled.
    pub fn take_due(&mut self, now_ns: u64) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&Reverse((t, id))) = self.heap.peek() {
            if t > now_ns {
                break;
            }
            self.heap.pop();
            if self.at.get(&id) == Some(&t) {
                self.at.remove(&id);
                due.push(id);
            }
        }
        due
    }

    /// Scheduled entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_once_earliest_first() {
        let mut t = Timers::default();
        t.schedule(1, 30);
        t.schedule(2, 10);
        t.schedule(3, 20);
        t.schedule(4, 99);
        assert_eq!(t.take_due(5), Vec::<u64>::new());
        assert_eq!(t.take_due(30), vec![2, 3, 1]);
        assert_eq!(t.take_due(30), Vec::<u64>::new());
        assert_eq!(t.len(), 1);
        assert_eq!(t.take_due(u64::MAX), vec![4], "only the later one is left");
    }

    #[test]
    fn a_new_time_replaces_the_old_one() {
        let mut t = Timers::default();
        t.schedule(1, 10);
        t.schedule(1, 50);
        assert_eq!(
            t.take_due(20),
            Vec::<u64>::new(),
            "the old time is superseded"
        );
        assert_eq!(t.take_due(50), vec![1]);
        // Earlier than before works too.
        t.schedule(2, 50);
        t.schedule(2, 5);
        assert_eq!(t.take_due(5), vec![2]);
        assert_eq!(t.take_due(100), Vec::<u64>::new(), "taken once");
    }

    #[test]
    fn schedule_new_keeps_an_existing_time() {
        let mut t = Timers::default();
        t.schedule(1, 40);
        t.schedule_new(1, 0);
        t.schedule_new(2, 0);
        assert_eq!(t.take_due(0), vec![2]);
        assert_eq!(t.take_due(40), vec![1]);
    }

    #[test]
    fn a_full_look_forgets_gone_entries_and_compacts() {
        let mut t = Timers::default();
        assert!(t.full_look_due());
        for round in 0..3000u64 {
            t.schedule(1, round);
        }
        t.schedule(2, 7);
        t.full_look_done(|id| id == 1);
        assert!(!t.full_look_due());
        assert_eq!(t.len(), 1);
        assert!(
            t.heap.len() <= 2,
            "superseded items dropped: {}",
            t.heap.len()
        );
        assert_eq!(t.take_due(u64::MAX), vec![1]);
    }

    #[test]
    fn upto_only_grows() {
        let mut t = Timers::default();
        t.offered_upto(10);
        t.offered_upto(4);
        assert_eq!(t.upto(), 10);
    }
}

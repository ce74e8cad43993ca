//! The generator: live frames through `BPF_PROG_TEST_RUN` in a sender namespace (see the
//! module docs of [`super`]).
#![allow(unsafe_code)] // sched_setaffinity / sched_getaffinity (libc)

use std::{
    path::{Path, PathBuf},
    sync::{
        Barrier, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use lime_common::names;
use serde::Serialize;

use super::{TrafficError, dp_err};
use crate::datapath::{Datapath, kernel::LIVE_BATCH};

/// How to send.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Sender threads, each pinned to its own CPU (round-robin over the allowed CPUs).
    pub threads: usize,
    /// Total rate limit in frames per second (`None`: as fast as it goes).
    pub rate_pps: Option<f64>,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many frames in all (rounded up to whole chunks per thread).
    pub max_frames: Option<u64>,
    /// Identical frames per `BPF_PROG_TEST_RUN` call (a multiple of the kernel's batch of
    /// 64 works best); flows take turns chunk by chunk.
    pub chunk: u32,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            threads: 1,
            rate_pps: None,
            duration: Duration::from_secs(2),
            max_frames: None,
            chunk: LIVE_BATCH * 4096,
        }
    }
}

/// Counts of one second of a run (cumulative since the start).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Second {
    /// Seconds since the start.
    pub t: f64,
    /// Frames sent so far (counted as each `BPF_PROG_TEST_RUN` call returns, so it can
    /// lag behind `rx` within a second).
    pub tx: u64,
    /// Frames the sink counted so far.
    pub rx: u64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Frames sent.
    pub sent: u64,
    /// Frames the sink counted (after the path drained).
    pub received: u64,
    /// Wall-clock time from the first call to the last.
    pub elapsed: Duration,
    /// Sending time as the kernel measured it: per round of calls, the slowest thread's
    /// (see [`Generator::send`]).
    pub busy: Duration,
    /// Whether a rate limit paced the run (rates are then wall-clock rates).
    pub rate_limited: bool,
    /// Per-second counts.
    pub per_second: Vec<Second>,
    /// Bytes per frame (the first flow's; all flows of a run have one length).
    pub frame_bytes: usize,
    /// Sender threads.
    pub threads: usize,
}

impl Report {
    /// Frames sent but not counted (0 if the sink counted more).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    /// Frames counted but never sent by this run (stray traffic on the path).
    #[must_use]
    pub fn extra(&self) -> u64 {
        self.received.saturating_sub(self.sent)
    }

    /// Delivered million frames per second: frames counted over the sending time
    /// ([`Report::busy`]; wall-clock time when rate-limited).
    #[must_use]
    pub fn mpps(&self) -> f64 {
        let s = if self.rate_limited || self.busy.is_zero() {
            self.elapsed.as_secs_f64()
        } else {
            self.busy.as_secs_f64()
        };
        if s > 0.0 {
            self.received.min(self.sent) as f64 / s / 1e6
        } else {
            0.0
        }
    }

    /// Delivered million frames per second over wall-clock time (the generator's gaps
    /// between calls included).
    #[must_use]
    pub fn mpps_wall(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.received.min(self.sent) as f64 / s / 1e6
        } else {
            0.0
        }
    }

    /// Delivered Gbit/s (frame bytes).
    #[must_use]
    pub fn gbps(&self) -> f64 {
        self.mpps() * self.frame_bytes as f64 * 8.0 / 1e3
    }
}

/// A generator in one sender namespace: a datapath object of its own whose `lime_floor`
/// redirects to the sender's veth (pins under `pin_root/<name>`, removed on drop).
pub struct Generator {
    dp: Datapath,
    netns: String,
    pin_dir: PathBuf,
}

impl Generator {
    /// A generator sending out of `ifname` in `netns`. The veth's peer must run an XDP
    /// program (a veth drops redirected frames otherwise).
    ///
    /// # Errors
    /// If the object cannot be loaded.
    pub fn new(
        netns: &str,
        ifname: &str,
        pin_root: &Path,
        name: &str,
    ) -> Result<Self, TrafficError> {
        let ifindex = lime_lab::netns::ifindex(netns, ifname)?;
        let mut dp = Datapath::load(name, Some(netns), pin_root)
            .map_err(dp_err(format!("loading the generator object {name}")))?;
        let pin_dir = pin_root.join(name);
        if let Err(e) = dp.kernel_mut().set_floor_target(ifindex) {
            let _ = std::fs::remove_dir_all(&pin_dir);
            return Err(dp_err("setting the generator's target")(e));
        }
        Ok(Self {
            dp,
            netns: netns.to_owned(),
            pin_dir,
        })
    }

    /// Send `frames` (the flows, taken in turn) as `cfg` says, counting arrivals with
    /// `rx` (a sink's counter). Returns once everything sent has arrived or the path
    /// stayed quiet for a while.
    ///
    /// The threads send in rounds: each round, every thread makes one
    /// `BPF_PROG_TEST_RUN` call of `chunk` frames, all starting together. A round's
    /// sending time is its slowest thread's, as the kernel timed it (frames, and the
    /// receiving side's work done in the same softirq, while the sender was not
    /// preempted). Between calls the kernel sets up and tears down a page pool (which
    /// waits for an RCU grace period, tens of milliseconds on a loaded machine): that is
    /// the generator's cost, not the path's, and it is left out of [`Report::busy`].
    ///
    /// # Errors
    /// Bad parameters, a failed test run, or a failed counter read.
    #[allow(clippy::too_many_lines)] // one loop of rounds, read top to bottom
    pub fn send(
        &self,
        frames: &[Vec<u8>],
        cfg: &SendConfig,
        rx: &(dyn Fn() -> Result<u64, TrafficError> + Sync),
    ) -> Result<Report, TrafficError> {
        if frames.is_empty() || cfg.threads == 0 || cfg.chunk == 0 {
            return Err(TrafficError::Config(
                "need at least one frame, one thread and a chunk of one frame".into(),
            ));
        }
        if cfg
            .rate_pps
            .is_some_and(|r| r.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
        {
            return Err(TrafficError::Config("rate must be positive".into()));
        }
        let cpus = allowed_cpus();
        let rx0 = rx()?;
        let threads = cfg.threads;
        let chunk = u64::from(cfg.chunk);
        let stop = AtomicBool::new(false);
        let go = AtomicBool::new(true);
        let failed = AtomicBool::new(false);
        let done = AtomicUsize::new(0);
        let barrier = Barrier::new(threads);
        let first_err: Mutex<Option<TrafficError>> = Mutex::new(None);
        let sent: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
        let kernel = self.dp.kernel();
        let start = Instant::now();
        let mut per_second = Vec::new();
        let mut finished_at = None;
        let results: Vec<Result<Vec<Duration>, TrafficError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (stop, go, failed, done, sent, barrier, first_err) =
                        (&stop, &go, &failed, &done, &sent[t], &barrier, &first_err);
                    let cpu = cpus.get(t % cpus.len().max(1)).copied();
                    let netns = self.netns.as_str();
                    s.spawn(move || {
                        let r = lime_lab::netns::run_in_netns(netns, || {
                            let mut busy = Vec::new();
                            let fail = |e: TrafficError| {
                                failed.store(true, Ordering::SeqCst);
                                let mut slot = first_err.lock().unwrap_or_else(|p| p.into_inner());
                                slot.get_or_insert(e);
                            };
                            if let Some(c) = cpu
                                && let Err(e) = pin_to(c)
                            {
                                fail(e);
                            }
                            let mut round = 0u64;
                            loop {
                                // The leader decides for everyone whether this round
                                // happens; the second wait publishes the decision.
                                if barrier.wait().is_leader() {
                                    let n = round * chunk * threads as u64;
                                    if let Some(rate) = cfg.rate_pps {
                                        let due = Duration::from_secs_f64(n as f64 / rate);
                                        let now = start.elapsed();
                                        if due > now {
                                            std::thread::sleep(due - now);
                                        }
                                    }
                                    let more = !stop.load(Ordering::SeqCst)
                                        && !failed.load(Ordering::SeqCst)
                                        && cfg.max_frames.is_none_or(|m| n < m);
                                    go.store(more, Ordering::SeqCst);
                                }
                                barrier.wait();
                                if !go.load(Ordering::SeqCst) {
                                    break;
                                }
                                let k = usize::try_from(round).unwrap_or(0) * threads + t;
                                let frame = &frames[k % frames.len()];
                                match kernel.run_live_repeat(names::PROG_FLOOR, frame, cfg.chunk) {
                                    Ok(per_frame) => {
                                        busy.push(per_frame * cfg.chunk);
                                        sent.fetch_add(chunk, Ordering::Relaxed);
                                    }
                                    // Keep taking part in the rounds: the leader stops
                                    // them at the next one.
                                    Err(e) => {
                                        fail(dp_err("sending (BPF_PROG_TEST_RUN, live frames)")(e))
                                    }
                                }
                                round += 1;
                            }
                            busy
                        })
                        .map_err(TrafficError::from);
                        done.fetch_add(1, Ordering::SeqCst);
                        r
                    })
                })
                .collect();
            let total = || sent.iter().map(|a| a.load(Ordering::Relaxed)).sum::<u64>();
            let mut next = Duration::from_secs(1);
            loop {
                if done.load(Ordering::SeqCst) == threads {
                    finished_at = Some(start.elapsed());
                    break;
                }
                let now = start.elapsed();
                if now >= cfg.duration {
                    stop.store(true, Ordering::SeqCst);
                }
                if now >= next {
                    per_second.push(Second {
                        t: now.as_secs_f64(),
                        tx: total(),
                        rx: rx().map_or(0, |v| v.saturating_sub(rx0)),
                    });
                    next += Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut per_thread = Vec::with_capacity(threads);
        for r in results {
            per_thread.push(r?);
        }
        if let Some(e) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let rounds = per_thread.iter().map(Vec::len).max().unwrap_or(0);
        let busy: Duration = (0..rounds)
            .map(|r| {
                per_thread
                    .iter()
                    .filter_map(|b| b.get(r).copied())
                    .max()
                    .unwrap_or_default()
            })
            .sum();
        let elapsed = finished_at.unwrap_or_else(|| start.elapsed());
        let sent: u64 = sent.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        // Let the path drain: wait until everything arrived or the count stops moving.
        let mut received = rx()?.saturating_sub(rx0);
        let drain = Instant::now();
        while received < sent && drain.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(50));
            let now = rx()?.saturating_sub(rx0);
            if now == received {
                break;
            }
            received = now;
        }
        per_second.push(Second {
            t: elapsed.as_secs_f64(),
            tx: sent,
            rx: received,
        });
        Ok(Report {
            sent,
            received,
            elapsed,
            busy,
            rate_limited: cfg.rate_pps.is_some(),
            per_second,
            frame_bytes: frames[0].len(),
            threads,
        })
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// The CPUs this process may run on.
#[must_use]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size matches the set.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Pin the calling thread to one CPU.
fn pin_to(cpu: usize) -> Result<(), TrafficError> {
    // SAFETY: a zeroed cpu_set_t is valid.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu came from sched_getaffinity, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the size matches the set.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(TrafficError::Io {
            what: format!("pinning a sender thread to CPU {cpu}"),
            source: std::io::Error::last_os_error(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(sent: u64, received: u64, busy_ms: u64, wall_ms: u64, limited: bool) -> Report {
        Report {
            sent,
            received,
            elapsed: Duration::from_millis(wall_ms),
            busy: Duration::from_millis(busy_ms),
            rate_limited: limited,
            per_second: Vec::new(),
            frame_bytes: 64,
            threads: 1,
        }
    }

    #[test]
    fn rates_count_what_arrived_over_the_sending_time() {
        let r = report(2_000_000, 1_000_000, 500, 1000, false);
        assert!((r.mpps() - 2.0).abs() < 1e-9, "over busy time");
        assert!((r.mpps_wall() - 1.0).abs() < 1e-9, "over wall time");
        assert!((r.gbps() - 2.0 * 64.0 * 8.0 / 1e3).abs() < 1e-9);
        assert_eq!((r.lost(), r.extra()), (1_000_000, 0));
        // Stray frames are not counted as the path's.
        let r = report(10, 12, 1000, 1000, false);
        assert_eq!((r.lost(), r.extra()), (0, 2));
        assert!((r.mpps() - 10e-6).abs() < 1e-12);
        // A paced run's rate is the wall-clock rate.
        let r = report(1_000_000, 1_000_000, 100, 1000, true);
        assert!((r.mpps() - 1.0).abs() < 1e-9);
    }
}

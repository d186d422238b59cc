//! The time limit of a run, checked cheaply.
//!
//! The limit is checked at every system call, backward jump and map iteration
//! (docs/semantics.md). Reading the precise clock costs tens of nanoseconds, a noticeable part
//! of an operation the ring executor queues; so [`Pacer::passed`] reads the coarse clock
//! (`CLOCK_MONOTONIC_COARSE`, a few nanoseconds, a resolution of a few milliseconds) and the
//! precise one (`CLOCK_MONOTONIC`, the clock of [`Instant`]) only within two resolutions of the
//! deadline: the answer is always the precise one. A lane's [`Pacer`] reads even the coarse
//! clock only as often as it moves: while operations are fast (the clock has not ticked since
//! the last reading) it reads it at every 2nd, 4th, … up to every 16th check; as soon as it has
//! ticked (slow calls), at every check again. So the limit is missed by at most 16 fast
//! operations or one slow one.
//!
//! The clocks are read through the C library's `clock_gettime`, not rustix's: rustix finds and
//! parses the vDSO itself, from the auxiliary vector, and that crashes (SIGSEGV) under valgrind,
//! which does not map a vDSO where the auxiliary vector says (rustix issue #1559). glibc uses
//! the vDSO the dynamic loader found, or the system call when there is none, so a program that
//! links cosy runs under valgrind and the other tools it is debugged with. It is no dearer: a
//! loop of 20 million reads on the development machine took 4.4 ns per coarse read through
//! glibc against 8.7 ns through rustix, and 23.5 ns against 29.3 ns per precise read.

use std::time::{Duration, Instant};

/// The reading of `clock` in nanoseconds.
#[inline]
fn now(clock: libc::clockid_t) -> i128 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to write; nothing else is touched.
    let r = unsafe { libc::clock_gettime(clock, &mut t) };
    // Both clocks exist on every kernel cosy runs on (Linux 2.6.32 and later); a failure would
    // leave `t` at zero, which reads as "long before the deadline", never as a crash.
    debug_assert_eq!(r, 0, "clock_gettime({clock})");
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

/// The resolution of `clock` in nanoseconds (at least 1).
fn resolution(clock: libc::clockid_t) -> i128 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as in `now`.
    let r = unsafe { libc::clock_getres(clock, &mut t) };
    if r != 0 {
        // Unknown resolution: assume the coarsest a kernel configures (HZ=100, 10 ms).
        return 10_000_000;
    }
    (i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)).max(1)
}

const MONOTONIC: libc::clockid_t = libc::CLOCK_MONOTONIC;
const COARSE: libc::clockid_t = libc::CLOCK_MONOTONIC_COARSE;

/// When a run must stop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    /// `CLOCK_MONOTONIC` nanoseconds of the deadline (`None`: no deadline in reach).
    at: Option<i128>,
    /// Below this coarse reading the deadline surely has not passed.
    coarse_before: i128,
}

impl Deadline {
    /// The deadline `limit` from now (one clock read).
    pub fn from_now(limit: Duration) -> Deadline {
        Self::at(now(MONOTONIC), limit)
    }

    /// The deadline `limit` after `started`.
    pub fn new(started: Instant, limit: Duration) -> Deadline {
        let Some(left) = limit.checked_sub(started.elapsed()) else {
            return Deadline {
                at: Some(i128::MIN),
                coarse_before: i128::MIN,
            };
        };
        Self::at(now(MONOTONIC), left)
    }

    /// The deadline `left` after the `CLOCK_MONOTONIC` reading `t`.
    fn at(t: i128, left: Duration) -> Deadline {
        let at = t.saturating_add(left.as_nanos() as i128);
        static RES: std::sync::OnceLock<i128> = std::sync::OnceLock::new();
        let res = *RES.get_or_init(|| resolution(COARSE));
        Deadline {
            at: Some(at),
            coarse_before: at.saturating_sub(2 * res + 1_000_000),
        }
    }

    /// Whether the deadline has passed (reading the clock now).
    pub fn passed(&self) -> bool {
        self.at.is_some() && self.passed_at(now(COARSE))
    }

    /// Whether the deadline has passed, given a coarse reading `t` of now.
    fn passed_at(&self, t: i128) -> bool {
        self.at
            .is_some_and(|at| t >= self.coarse_before && now(MONOTONIC) >= at)
    }

    /// The deadline in `CLOCK_MONOTONIC` nanoseconds (`None`: no deadline in reach).
    pub fn nanos(&self) -> Option<i128> {
        self.at
    }

    /// The deadline as an [`Instant`] (for waits with a timeout).
    pub fn instant(&self) -> Option<Instant> {
        let at = self.at?;
        let t = now(MONOTONIC);
        let left = at.saturating_sub(t).max(0);
        Instant::now().checked_add(Duration::from_nanos(
            u64::try_from(left).unwrap_or(u64::MAX),
        ))
    }
}

/// When a lane next reads the clock (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pacer {
    /// Checks to skip before the next reading.
    left: u32,
    /// Checks between readings now.
    stride: u32,
    /// The last coarse reading.
    last: i128,
}

/// The most checks between two readings of the clock.
const MAX_STRIDE: u32 = 16;

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            left: 0,
            stride: 1,
            last: i128::MIN,
        }
    }
}

impl Pacer {
    /// Whether `d` has passed, reading the clock only when it is this check's turn.
    #[inline]
    pub fn passed(&mut self, d: &Deadline) -> bool {
        if d.at.is_none() {
            return false;
        }
        if self.left > 0 {
            self.left -= 1;
            return false;
        }
        let t = now(COARSE);
        self.stride = if t != self.last {
            1
        } else {
            (self.stride * 2).min(MAX_STRIDE)
        };
        self.last = t;
        self.left = self.stride - 1;
        d.passed_at(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        // A fresh pacer reads the clock at its first check.
        let passed = |d: &Deadline| Pacer::default().passed(d);
        let t = Instant::now();
        assert!(passed(&Deadline::new(t, Duration::ZERO)));
        let d = Deadline::new(t, Duration::from_millis(30));
        assert!(!passed(&d));
        assert!(d.instant().is_some());
        std::thread::sleep(Duration::from_millis(35));
        assert!(passed(&d));
        assert!(!passed(&Deadline::new(
            Instant::now(),
            Duration::from_secs(3600)
        )));
    }

    #[test]
    fn a_pacer_reads_the_clock_less_while_it_does_not_move_and_misses_few_checks() {
        let d = Deadline::new(Instant::now(), Duration::from_millis(20));
        let mut p = Pacer::default();
        // Fast checks: the stride grows to its most.
        for _ in 0..200 {
            assert!(!p.passed(&d));
        }
        assert!(p.stride > 1 || p.last != now(COARSE), "stride {}", p.stride);
        std::thread::sleep(Duration::from_millis(25));
        // Past the deadline: seen within one stride of checks.
        let checks = (1..=MAX_STRIDE + 1).find(|_| p.passed(&d));
        assert!(
            checks.is_some(),
            "the deadline was not seen in {MAX_STRIDE} checks"
        );
        // Slow checks (the clock ticks between them): every one reads it.
        let mut slow = Pacer::default();
        let far = Deadline::new(Instant::now(), Duration::from_secs(60));
        for _ in 0..3 {
            slow.passed(&far);
            std::thread::sleep(Duration::from_millis(15));
        }
        assert_eq!(slow.stride, 1);
    }
}

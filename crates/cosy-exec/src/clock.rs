//! The time limit of a run, checked cheaply.
//!
//! The limit is checked before every system call and every backward jump
//! (docs/semantics.md). Reading the precise clock costs tens of nanoseconds, a noticeable part
//! of an operation the ring executor queues; so [`Deadline::passed`] reads the coarse clock
//! (`CLOCK_MONOTONIC_COARSE`, a few nanoseconds, a resolution of a few milliseconds) and the
//! precise one (`CLOCK_MONOTONIC`, the clock of [`Instant`]) only within two resolutions of the
//! deadline: the answer is always the precise one.

use std::time::{Duration, Instant};

use rustix::time::{ClockId, Timespec, clock_getres, clock_gettime};

fn nanos(t: Timespec) -> i128 {
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

/// When a run must stop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    /// `CLOCK_MONOTONIC` nanoseconds of the deadline (`None`: no deadline in reach).
    at: Option<i128>,
    /// Below this coarse reading the deadline surely has not passed.
    coarse_before: i128,
}

impl Deadline {
    /// The deadline `limit` after `started`.
    pub fn new(started: Instant, limit: Duration) -> Deadline {
        let Some(left) = limit.checked_sub(started.elapsed()) else {
            return Deadline {
                at: Some(i128::MIN),
                coarse_before: i128::MIN,
            };
        };
        let now = nanos(clock_gettime(ClockId::Monotonic));
        let at = now.saturating_add(left.as_nanos() as i128);
        static RES: std::sync::OnceLock<i128> = std::sync::OnceLock::new();
        let res = *RES.get_or_init(|| nanos(clock_getres(ClockId::MonotonicCoarse)).max(1));
        Deadline {
            at: Some(at),
            coarse_before: at.saturating_sub(2 * res + 1_000_000),
        }
    }

    /// Whether the deadline has passed.
    #[inline]
    pub fn passed(&self) -> bool {
        let Some(at) = self.at else { return false };
        if nanos(clock_gettime(ClockId::MonotonicCoarse)) < self.coarse_before {
            return false;
        }
        nanos(clock_gettime(ClockId::Monotonic)) >= at
    }

    /// The deadline as an [`Instant`] (for waits with a timeout).
    pub fn instant(&self) -> Option<Instant> {
        let at = self.at?;
        let now = nanos(clock_gettime(ClockId::Monotonic));
        let left = at.saturating_sub(now).max(0);
        Instant::now().checked_add(Duration::from_nanos(
            u64::try_from(left).unwrap_or(u64::MAX),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        let t = Instant::now();
        assert!(Deadline::new(t, Duration::ZERO).passed());
        let d = Deadline::new(t, Duration::from_millis(30));
        assert!(!d.passed());
        assert!(d.instant().is_some());
        std::thread::sleep(Duration::from_millis(35));
        assert!(d.passed());
        assert!(!Deadline::new(Instant::now(), Duration::from_secs(3600)).passed());
    }
}

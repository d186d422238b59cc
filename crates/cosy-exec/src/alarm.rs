//! Time limits that hold for system calls that block.
//!
//! A plain system call that blocks — the open of a FIFO nobody opens from the other end, a
//! read of a pipe or terminal that never gets data, a write to a full pipe, a blocking lock —
//! is never back in the interpreter to see its deadline. So every thread that runs a compound's
//! plain calls arms an [`Alarm`]: a POSIX timer (timer_create(2), `CLOCK_MONOTONIC`, absolute)
//! that from the deadline on sends the thread [`signal`] every 10 ms (the interval covers a
//! signal that lands just before the call blocks). Its handler does nothing and is installed
//! without `SA_RESTART`, so the blocked call returns `EINTR`; the interpreter then sees the
//! deadline passed and stops with `Error::Time` (an `EINTR` before the deadline is retried).
//!
//! The signal is `SIGRTMIN + 6` (glibc keeps the first real-time signals for itself). If the
//! program already handles that signal, cosy leaves its handler alone and arms no alarms: the
//! time limit then holds between calls only, as it does on the ring's waits.

use std::sync::OnceLock;
use std::time::Duration;

use crate::clock::Deadline;

/// The signal an alarm sends: `SIGRTMIN + 6`.
pub fn signal() -> i32 {
    libc::SIGRTMIN() + 6
}

/// The period of an alarm past its deadline.
const REPEAT: Duration = Duration::from_millis(10);

extern "C" fn nothing(_: libc::c_int) {}

/// Installs the handler once; whether alarms can be used.
fn installed() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        // SAFETY: a zeroed `sigaction` is a valid "no action" value to read the old one into
        // and to fill in; the handler is an `extern "C"` function that touches nothing, so it
        // is async-signal-safe.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal(), std::ptr::null(), &mut old) != 0 {
                return false;
            }
            if old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != nothing as *const () as usize
            {
                // The program uses this signal: leave it be.
                return false;
            }
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = nothing as *const () as usize;
            // No SA_RESTART: the interrupted call returns EINTR.
            act.sa_flags = 0;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(signal(), &act, std::ptr::null_mut()) == 0
        }
    })
}

/// This thread's timer, made at its first alarm and deleted when the thread ends: arming it
/// for a run is one timer_settime(2) and disarming it another (making and deleting a timer
/// for every run cost about 2 µs, more than a small compound's whole run).
struct ThreadTimer(libc::timer_t);

impl ThreadTimer {
    fn new() -> Option<ThreadTimer> {
        // SAFETY: `ev` is a zeroed `sigevent` filled with the thread-directed notification;
        // `timer` is written by timer_create before it is used.
        unsafe {
            let mut ev: libc::sigevent = std::mem::zeroed();
            ev.sigev_notify = libc::SIGEV_THREAD_ID;
            ev.sigev_signo = signal();
            ev.sigev_notify_thread_id = libc::gettid();
            let mut timer: libc::timer_t = std::mem::zeroed();
            (libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut timer) == 0)
                .then_some(ThreadTimer(timer))
        }
    }

    /// Sets the timer to fire at `at` (`CLOCK_MONOTONIC` nanoseconds) and every [`REPEAT`]
    /// after, or disarms it (`None`).
    fn set(&self, at: Option<i128>) -> bool {
        let ts = |ns: i128| libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        };
        let spec = match at {
            Some(at) => libc::itimerspec {
                it_interval: ts(REPEAT.as_nanos() as i128),
                it_value: ts(at.max(1)),
            },
            None => libc::itimerspec {
                it_interval: ts(0),
                it_value: ts(0),
            },
        };
        // SAFETY: the timer was made by timer_create and is not deleted while the thread
        // lives; `spec` is a valid itimerspec.
        unsafe {
            libc::timer_settime(self.0, libc::TIMER_ABSTIME, &spec, std::ptr::null_mut()) == 0
        }
    }
}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        // SAFETY: the timer was made by timer_create and is deleted once, at thread exit.
        unsafe {
            libc::timer_delete(self.0);
        }
    }
}

thread_local! {
    static TIMER: Option<ThreadTimer> = if installed() { ThreadTimer::new() } else { None };
}

/// An armed alarm of the calling thread: from its deadline on, the thread's blocking calls
/// are interrupted; disarmed on drop.
#[derive(Debug)]
pub(crate) struct Alarm {
    /// Not `Send`: the timer is the arming thread's.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Alarm {
    /// Arms the calling thread's alarm at `deadline` (`None`: no deadline, or alarms are not
    /// available).
    pub fn arm(deadline: &Deadline) -> Option<Alarm> {
        let at = deadline.nanos()?;
        TIMER
            .with(|t| t.as_ref().is_some_and(|t| t.set(Some(at))))
            .then_some(Alarm {
                _thread: std::marker::PhantomData,
            })
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        TIMER.with(|t| {
            if let Some(t) = t {
                t.set(None);
            }
        });
    }
}

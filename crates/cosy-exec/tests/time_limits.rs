//! The time limit holds for calls that block (docs/semantics.md, "Time"): a read of a FIFO
//! that never gets data, a write to a full pipe, the open of a FIFO nobody writes to. Each
//! stops with `Error::Time` within the limit plus 100 ms, on every executor, and closes what
//! it opened.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cosy_exec::{Error, Outcome, RunOptions};
use cosy_model::flags::{Mode, OFlags, PipeFlags};
use cosy_model::{Builder, Compound, FdRef, Policy};

const LIMIT: Duration = Duration::from_millis(400);

/// Runs `c` under a policy rooted at `d` with the short limit; the outcome and how long it took.
fn timed(d: &std::path::Path, c: Compound) -> (Outcome, Duration) {
    let mut p = Policy::untrusted(d);
    p.time = LIMIT;
    let t = Instant::now();
    let out = run_with(c, &p, RunOptions::default());
    (out, t.elapsed())
}

fn assert_stopped_in_time(what: &str, out: &Outcome, took: Duration) {
    assert!(
        matches!(out.error, Some(Error::Time { .. })),
        "{what} on {}: {:?}",
        current(),
        out.error
    );
    assert!(
        took < LIMIT + Duration::from_millis(100),
        "{what} on {} took {took:?}",
        current()
    );
}

fn fifo(d: &std::path::Path) {
    let c = std::ffi::CString::new(bytes(&d.join("fifo"))).unwrap();
    // SAFETY: `c` is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_read_of_a_fifo_without_data_stops_at_the_limit() {
    each_executor(|| {
        let d = tempfile::tempdir().unwrap();
        fifo(d.path());
        // Open for reading and writing (which never blocks), then read: no data comes.
        let mut c = Builder::new();
        let p = c.path("fifo");
        let buf = c.buffer("buf", 64);
        let f = c.openat(FdRef::Cwd, p, OFlags::RDWR, Mode::empty());
        let n = c.read(f, buf);
        c.output("n", n);
        let (out, took) = timed(d.path(), c.finish());
        assert_stopped_in_time("read of a FIFO", &out, took);
    });
}

#[test]
fn a_write_to_a_full_pipe_stops_at_the_limit() {
    each_executor(|| {
        let d = tempfile::tempdir().unwrap();
        // A blocking pipe nobody reads: the writes fill it (64 KiB), then one blocks.
        let mut c = Builder::new();
        let buf = c.buffer("buf", 16 << 10);
        let (_r, w) = c.pipe2(PipeFlags::empty());
        let total = c.value("total", 0);
        c.do_while(1000, |c| {
            let n = c.write(w, buf);
            c.accumulate(total, n);
            n.gt(0)
        });
        c.output("total", total);
        let (out, took) = timed(d.path(), c.finish());
        assert_stopped_in_time("write to a full pipe", &out, took);
    });
}

/// Opening a FIFO for reading waits for a writer (open(2)) on the executors that open with
/// plain system calls; io_uring's open does not wait (the kernel opens it as if
/// `O_NONBLOCK`), so there the open succeeds at once — a difference of the kernel's, noted in
/// docs/semantics.md. Either way nothing hangs.
#[test]
fn the_open_of_a_fifo_without_a_writer_stops_at_the_limit_or_does_not_wait() {
    each_executor(|| {
        let d = tempfile::tempdir().unwrap();
        fifo(d.path());
        let mut c = Builder::new();
        let p = c.path("fifo");
        let f = c.openat(FdRef::Cwd, p, OFlags::RDONLY, Mode::empty());
        c.close(f);
        let (out, took) = timed(d.path(), c.finish());
        if out.error.is_none() {
            assert!(took < LIMIT, "{} took {took:?}", current());
        } else {
            assert_stopped_in_time("open of a FIFO", &out, took);
        }
    });
}

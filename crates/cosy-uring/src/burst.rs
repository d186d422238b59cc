//! Baselines of the "burst" benchmark: N independent trivial operations (N = 1..1024).
//!
//! Two families, against which the compound executors are compared:
//!
//! - **vanilla**: what a program does without cosy, one system call per operation in a plain
//!   loop. [`vanilla_nop`] issues getppid(2) (`libc::syscall(SYS_getppid)`), the cheapest
//!   real system call: the syscall equivalent of an io_uring NOP (it enters and leaves the
//!   kernel and does nothing of note). [`vanilla_pread`] issues 1-byte pread(2)s.
//! - **uring by hand** (the "expert"): a loop written directly on the `io-uring` crate, not
//!   through [`Ring`](crate::Ring): push N SQEs in chunks of the ring size
//!   ([`BURST_RING_ENTRIES`]), one `submit_and_wait` (io_uring_enter(2)) per chunk, reap.
//!   The ring (and for [`FdKind::Fixed`] its registered file) is set up once, before timing,
//!   as an expert would keep it; its setup cost is [`Calibration::ring_setup_ns`](crate::Calibration).
//!
//! Every function runs one untimed warm-up repetition, then `reps` timed ones, and returns
//! nanoseconds per operation: total elapsed / (N × reps). The pread variants read byte `i` of
//! the burst at offset `i % len` of the file into byte `i` of a buffer; the file should be in
//! the page cache (the warm-up takes care of it).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use io_uring::{IoUring, opcode, types};

use crate::probe::Probe;

/// Submission queue size of the by-hand io_uring loops (bursts are pushed in chunks of this).
pub const BURST_RING_ENTRIES: u32 = 256;

/// How the by-hand pread loop names the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FdKind {
    /// The normal descriptor in every SQE.
    Regular,
    /// Slot 0 of a registered file table (`IOSQE_FIXED_FILE`), registered before timing.
    Fixed,
}

fn per_op(n: usize, reps: usize, mut once: impl FnMut() -> io::Result<()>) -> io::Result<f64> {
    if n == 0 || reps == 0 {
        return Ok(0.0);
    }
    once()?;
    let start = Instant::now();
    for _ in 0..reps {
        once()?;
    }
    Ok(start.elapsed().as_nanos() as f64 / (n * reps) as f64)
}

/// One getppid(2) through `libc::syscall`, never cached by libc.
#[inline]
pub(crate) fn getppid_syscall() -> libc::c_long {
    // SAFETY: getppid takes no arguments and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_getppid) }
}

/// N getppid(2) system calls in a plain loop: the vanilla NOP. Nanoseconds per call.
pub fn vanilla_nop(n: usize, reps: usize) -> f64 {
    per_op(n, reps, || {
        for _ in 0..n {
            std::hint::black_box(getppid_syscall());
        }
        Ok(())
    })
    .expect("getppid cannot fail")
}

fn file_len(file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "burst pread needs a non-empty file",
        ));
    }
    Ok(len)
}

/// N 1-byte pread(2)s (`libc::pread`) of `file` in a plain loop. Nanoseconds per call.
pub fn vanilla_pread(file: &File, n: usize, reps: usize) -> io::Result<f64> {
    let len = file_len(file)?;
    let fd = file.as_raw_fd();
    let mut buf = vec![0u8; n];
    per_op(n, reps, || {
        for (i, byte) in buf.iter_mut().enumerate() {
            // SAFETY: `byte` is a valid, writable 1-byte buffer for the duration of the call.
            let r = unsafe {
                libc::pread(
                    fd,
                    std::ptr::from_mut(byte).cast(),
                    1,
                    (i as u64 % len) as libc::off_t,
                )
            };
            if r != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    })
}

fn by_hand_ring() -> io::Result<IoUring> {
    let probe = Probe::detect();
    if !probe.available() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            probe.reason().unwrap_or("io_uring unavailable").to_string(),
        ));
    }
    IoUring::new(BURST_RING_ENTRIES)
}

/// Push `n` entries made by `entry(i)` in chunks of the ring size, one submit_and_wait per
/// chunk, reap every completion of a chunk before the next; check each result is `expect`.
///
/// On success every operation has completed. On an error of io_uring_enter(2) operations may
/// still be in flight: the caller must then keep their memory alive forever.
fn drive(
    ring: &mut IoUring,
    n: usize,
    expect: i32,
    mut entry: impl FnMut(usize) -> io_uring::squeue::Entry,
) -> io::Result<()> {
    let cap = ring.params().sq_entries() as usize;
    let mut done = 0;
    let mut bad = None;
    while done < n {
        let chunk = (n - done).min(cap);
        {
            let mut sq = ring.submission();
            for i in done..done + chunk {
                // SAFETY: the caller's entries point into memory that outlives the chunk's
                // completions, which are all reaped below before returning or pushing more
                // (or the memory is leaked if waiting fails).
                unsafe { sq.push(&entry(i)) }.expect("chunk fits the empty SQ");
            }
        }
        let mut got = 0;
        while got < chunk {
            match ring.submit_and_wait(chunk - got) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
            for cqe in ring.completion() {
                got += 1;
                if cqe.result() != expect && bad.is_none() {
                    bad = Some(cqe.result());
                }
            }
        }
        done += chunk;
    }
    match bad {
        None => Ok(()),
        Some(r) if r < 0 => Err(io::Error::from_raw_os_error(-r)),
        Some(r) => Err(io::Error::other(format!(
            "unexpected result {r} (wanted {expect})"
        ))),
    }
}

/// N io_uring NOPs pushed by hand on the `io-uring` crate. Nanoseconds per operation.
pub fn uring_by_hand_nop(n: usize, reps: usize) -> io::Result<f64> {
    let mut ring = by_hand_ring()?;
    per_op(n, reps, || {
        drive(&mut ring, n, 0, |i| {
            opcode::Nop::new().build().user_data(i as u64)
        })
    })
}

/// N 1-byte io_uring READs of `file` pushed by hand, naming the file as `kind` says.
/// Nanoseconds per operation.
pub fn uring_by_hand_pread(file: &File, n: usize, reps: usize, kind: FdKind) -> io::Result<f64> {
    let len = file_len(file)?;
    let mut ring = by_hand_ring()?;
    let fd: RawFd = file.as_raw_fd();
    if kind == FdKind::Fixed {
        ring.submitter().register_files(&[fd])?;
    }
    let mut buf = vec![0u8; n];
    let base = buf.as_mut_ptr();
    let result = per_op(n, reps, || {
        drive(&mut ring, n, 1, |i| {
            let ptr = base.wrapping_add(i);
            let off = i as u64 % len;
            match kind {
                FdKind::Regular => opcode::Read::new(types::Fd(fd), ptr, 1),
                FdKind::Fixed => opcode::Read::new(types::Fixed(0), ptr, 1),
            }
            .offset(off)
            .build()
            .user_data(i as u64)
        })
    });
    if result.is_err() {
        // Reads may still be in flight towards `buf`: never free it.
        std::mem::forget(buf);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file() -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
        f
    }

    #[test]
    fn vanilla_runs() {
        assert!(vanilla_nop(16, 2) > 0.0);
        assert!(vanilla_pread(&file(), 16, 2).unwrap() > 0.0);
        assert_eq!(vanilla_nop(0, 3), 0.0);
    }

    #[test]
    fn by_hand_runs_across_chunks() {
        if crate::skip_without_uring("by_hand_runs_across_chunks") {
            return;
        }
        let n = BURST_RING_ENTRIES as usize + 7;
        assert!(uring_by_hand_nop(n, 1).unwrap() > 0.0);
        let f = file();
        assert!(uring_by_hand_pread(&f, n, 1, FdKind::Regular).unwrap() > 0.0);
        assert!(uring_by_hand_pread(&f, n, 1, FdKind::Fixed).unwrap() > 0.0);
    }

    #[test]
    fn empty_file_is_refused() {
        let f = tempfile::tempfile().unwrap();
        assert!(vanilla_pread(&f, 4, 1).is_err());
    }
}

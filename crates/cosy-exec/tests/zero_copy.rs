//! The zero-copy calls (`sendfile`, `copy_file_range`) where the kernel refuses a zero-copy
//! transfer: they move the same bytes by a read and a write (docs/semantics.md), on every
//! executor, so that the optimizer's rewrite of read + write into them holds wherever the
//! original did. A genuine error is still the call's.

mod common;

use std::io::Write as _;

use common::*;
use cosy_model::flags::{Mode, OFlags};
use cosy_model::{Builder, Compound, FdRef};

const RD: OFlags = OFlags::RDONLY;
const APPEND: OFlags = OFlags::WRONLY.union(OFlags::APPEND);
const WR: OFlags = OFlags::WRONLY.union(OFlags::CREATE).union(OFlags::TRUNC);

/// `out = open(dst, out_flags); in = open(src, O_RDONLY); r = CALL(..., len)`: `sendfile`
/// (`copy_file_range` when `cfr`), output `r`.
fn copy(src: &[u8], dst: &[u8], out_flags: OFlags, len: i64, cfr: bool) -> Compound {
    let mut c = Builder::new();
    let (s, d) = (c.path(src), c.path(dst));
    let out = c.openat(FdRef::Cwd, d, out_flags, Mode::from_raw_mode(0o644));
    let inp = c.openat(FdRef::Cwd, s, RD, Mode::empty());
    let r = if cfr {
        c.copy_file_range(inp, -1, out, -1, len)
    } else {
        c.sendfile(out, inp, -1, len)
    };
    c.output("r", r);
    c.finish()
}

#[test]
fn sendfile_to_an_append_only_file_writes_the_bytes() {
    each_executor(|| {
        let d = tempfile::tempdir().unwrap();
        let (src, log) = (d.path().join("src"), d.path().join("log"));
        let content = text(5000, 7);
        std::fs::write(&src, &content).unwrap();
        std::fs::write(&log, b"before\n").unwrap();
        // The kernel refuses sendfile(2) to an O_APPEND descriptor with EINVAL.
        let out = run_trusted(copy(&bytes(&src), &bytes(&log), APPEND, 1 << 16, false));
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.output("r"), Some(content.len() as i64));
        let mut want = b"before\n".to_vec();
        want.extend_from_slice(&content);
        assert_eq!(std::fs::read(&log).unwrap(), want);
    });
}

#[test]
fn copy_file_range_from_proc_copies_what_a_read_gives() {
    each_executor(|| {
        let d = tempfile::tempdir().unwrap();
        let dst = d.path().join("copy");
        // /proc files refuse copy_file_range(2) (EXDEV or EINVAL: another file system, no
        // splice_read): the fallback reads them.
        let out = run_trusted(copy(b"/proc/self/stat", &bytes(&dst), WR, 1 << 16, true));
        assert!(out.error.is_none(), "{:?}", out.error);
        let copied = std::fs::read(&dst).unwrap();
        assert_eq!(out.output("r"), Some(copied.len() as i64));
        // The fields of /proc/self/stat: "pid (comm) state ...".
        let text = String::from_utf8(copied).unwrap();
        assert!(text.contains(") ") && text.ends_with('\n'), "{text}");
    });
}

#[test]
fn sendfile_from_a_fifo_reads_it() {
    each_executor(|| {
        let d = tempfile::tempdir().unwrap();
        let (fifo, dst) = (d.path().join("fifo"), d.path().join("dst"));
        let c = std::ffi::CString::new(bytes(&fifo)).unwrap();
        // SAFETY: `c` is a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // A writer that writes and closes, so the compound's open and read do not block.
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                f.write_all(b"through the fifo").unwrap();
            })
        };
        let out = run_trusted(copy(&bytes(&fifo), &bytes(&dst), WR, 4096, false));
        writer.join().unwrap();
        assert!(out.error.is_none(), "{:?}", out.error);
        let n = out.output("r").unwrap();
        let copied = std::fs::read(&dst).unwrap();
        assert_eq!(n, copied.len() as i64);
        // One read of the pipe: all of it, or what had arrived.
        assert!(
            b"through the fifo".starts_with(&copied) && n > 0,
            "{copied:?}"
        );
    });
}

#[test]
fn a_real_error_is_still_the_calls() {
    each_executor(|| {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        std::fs::write(&src, b"data").unwrap();
        std::fs::write(&dst, b"").unwrap();
        // The output is open for reading only: neither sendfile nor a write can write it.
        let out = run_trusted(copy(&bytes(&src), &bytes(&dst), RD, 4096, false));
        match out.error {
            Some(cosy_exec::Error::Call { errno, .. }) => assert_eq!(errno, libc::EBADF),
            e => panic!("expected EBADF, got {e:?}"),
        }
        assert_eq!(std::fs::read(&dst).unwrap(), b"");
    });
}

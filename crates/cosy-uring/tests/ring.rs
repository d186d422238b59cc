//! Round trips through a real ring. Tests that need a kernel feature this machine lacks print
//! `skipping ...` and return; without io_uring at all they fail instead under
//! `COSY_REQUIRE_URING=1` ([`cosy_uring::skip_without_uring`]).

use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cosy_uring::io_uring::opcode;
use cosy_uring::{
    Completion, ENV_NO_URING, Error, IoBuf, Link, Op, OpenTarget, Probe, Ring, RingBuilder,
    STATX_SIZE, Target, parse_statx, skip_without_uring,
};

fn ring_or_skip(builder: RingBuilder) -> Option<Ring> {
    if skip_without_uring("this test") {
        return None;
    }
    Some(builder.build().expect("ring"))
}

fn supports_or_skip(ring: &Ring, code: u8, what: &str) -> bool {
    let ok = ring.probe().supports(code);
    if !ok {
        eprintln!("skipping: kernel lacks {what}");
    }
    ok
}

fn results(done: &[Completion]) -> Vec<(u64, i32)> {
    done.iter().map(|c| (c.user_data, c.result)).collect()
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

fn file_with(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn ring_is_send() {
    fn send<T: Send>() {}
    send::<Ring>();
    send::<IoBuf>();
}

#[test]
fn probe_reports_opcodes() {
    if skip_without_uring("probe_reports_opcodes") {
        return;
    }
    let p = Probe::detect();
    assert_eq!(p.reason(), None);
    for code in [
        opcode::Nop::CODE,
        opcode::Read::CODE,
        opcode::OpenAt::CODE,
        opcode::Close::CODE,
    ] {
        assert!(p.supports(code), "opcode {code}");
    }
    let ops = p.supported_opcodes();
    eprintln!("supported opcodes: {ops:?}");
    assert!(ops.len() >= 20);
    assert!(!p.supports(255));
}

#[test]
fn nop_round_trip() {
    let Some(mut ring) = ring_or_skip(Ring::builder().entries(4)) else {
        return;
    };
    ring.push(&Op::Nop, 42, Link::None).unwrap();
    assert_eq!(ring.staged(), 1);
    assert_eq!(ring.submit_and_wait(1).unwrap(), 1);
    let mut out = Vec::new();
    assert_eq!(ring.drain_completions(&mut out), 1);
    assert_eq!(
        out,
        [Completion {
            user_data: 42,
            result: 0,
            flags: 0
        }]
    );
    let s = ring.stats();
    assert_eq!((s.enters, s.submitted, s.completed), (1, 1, 1));
    assert_eq!(ring.outstanding(), 0);
}

#[test]
fn open_read_close_in_a_slot_in_one_chain() {
    let Some(mut ring) = ring_or_skip(
        Ring::builder()
            .entries(8)
            .files(4)
            .region(IoBuf::zeroed(8192)),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = file_with(dir.path(), "data", &content);
    let expected = std::fs::read(&path).unwrap();
    ring.push_chain(
        &[
            (
                Op::Openat {
                    dirfd: libc::AT_FDCWD,
                    path: bytes(&path),
                    flags: libc::O_RDONLY | libc::O_CLOEXEC,
                    mode: 0,
                    into: OpenTarget::Slot(2),
                },
                1,
            ),
            (
                Op::Read {
                    fd: Target::Slot(2),
                    buf: 0..expected.len(),
                    offset: 0,
                },
                2,
            ),
            (
                Op::Close {
                    fd: Target::Slot(2),
                },
                3,
            ),
        ],
        Link::Soft,
    )
    .unwrap();
    let done = ring.run().unwrap();
    assert_eq!(results(&done), [(1, 0), (2, expected.len() as i32), (3, 0)]);
    assert_eq!(ring.buf(0..expected.len()).unwrap(), &expected[..]);
    assert_eq!(ring.stats().enters, 1, "one chain, one enter");
    // The slot is empty again.
    ring.push(
        &Op::Read {
            fd: Target::Slot(2),
            buf: 0..1,
            offset: 0,
        },
        4,
        Link::None,
    )
    .unwrap();
    assert_eq!(results(&ring.run().unwrap()), [(4, -libc::EBADF)]);
}

#[test]
fn failed_head_cancels_the_chain() {
    let Some(mut ring) = ring_or_skip(Ring::builder().files(1).region(IoBuf::zeroed(64))) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    ring.push(
        &Op::Openat {
            dirfd: libc::AT_FDCWD,
            path: bytes(&missing),
            flags: libc::O_RDONLY,
            mode: 0,
            into: OpenTarget::Slot(0),
        },
        1,
        Link::Soft,
    )
    .unwrap();
    ring.push(
        &Op::Read {
            fd: Target::Slot(0),
            buf: 0..64,
            offset: 0,
        },
        2,
        Link::Soft,
    )
    .unwrap();
    ring.push(
        &Op::Close {
            fd: Target::Slot(0),
        },
        3,
        Link::None,
    )
    .unwrap();
    let done = ring.run().unwrap();
    assert_eq!(
        results(&done),
        [
            (1, -libc::ENOENT),
            (2, -libc::ECANCELED),
            (3, -libc::ECANCELED)
        ]
    );
}

#[test]
fn hard_links_continue_after_a_short_read() {
    let Some(mut ring) = ring_or_skip(Ring::builder().region(IoBuf::zeroed(256))) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "ten", b"0123456789");
    let file = File::open(&path).unwrap();
    let read = Op::Read {
        fd: Target::Fd(file.as_raw_fd()),
        buf: 0..100,
        offset: 0,
    };
    // Soft link: the short read breaks the chain.
    ring.push(&read, 1, Link::Soft).unwrap();
    ring.push(&Op::Nop, 2, Link::None).unwrap();
    assert_eq!(
        results(&ring.run().unwrap()),
        [(1, 10), (2, -libc::ECANCELED)]
    );
    // Hard link: it goes on.
    ring.push(&read, 3, Link::Hard).unwrap();
    ring.push(&Op::Nop, 4, Link::None).unwrap();
    assert_eq!(results(&ring.run().unwrap()), [(3, 10), (4, 0)]);
    assert_eq!(ring.buf(0..10).unwrap(), b"0123456789");
}

#[test]
fn statx_matches_metadata() {
    let Some(mut ring) = ring_or_skip(Ring::builder().region(IoBuf::zeroed(2 * STATX_SIZE))) else {
        return;
    };
    if !supports_or_skip(&ring, opcode::Statx::CODE, "IORING_OP_STATX") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "f", &[1u8; 12345]);
    let file = File::open(&path).unwrap();
    ring.push(
        &Op::Statx {
            dirfd: libc::AT_FDCWD,
            path: bytes(&path),
            flags: 0,
            mask: libc::STATX_BASIC_STATS,
            buf: 0,
        },
        1,
        Link::None,
    )
    .unwrap();
    // fstat: the fd itself, empty path, AT_EMPTY_PATH.
    ring.push(
        &Op::Statx {
            dirfd: file.as_raw_fd(),
            path: b"",
            flags: libc::AT_EMPTY_PATH,
            mask: libc::STATX_BASIC_STATS,
            buf: STATX_SIZE,
        },
        2,
        Link::None,
    )
    .unwrap();
    let mut done = ring.run().unwrap();
    done.sort_by_key(|c| c.user_data);
    assert_eq!(results(&done), [(1, 0), (2, 0)]);
    let meta = std::fs::metadata(&path).unwrap();
    for i in 0..2 {
        let stx = parse_statx(ring.buf(i * STATX_SIZE..(i + 1) * STATX_SIZE).unwrap()).unwrap();
        assert_eq!(stx.stx_size, meta.len());
        assert_eq!(stx.stx_size, 12345);
    }
}

#[test]
fn sqpoll_round_trip() {
    if skip_without_uring("sqpoll_round_trip") {
        return;
    }
    let mut ring = match Ring::builder()
        .entries(16)
        .sqpoll(50)
        .files(2)
        .region(IoBuf::zeroed(4096))
        .build()
    {
        Ok(r) => r,
        Err(Error::Setup(e)) if e.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("skipping: SQPOLL not permitted ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(ring.is_sqpoll());
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "s", b"sqpoll says hi");
    for round in 0..3u64 {
        ring.push_chain(
            &[
                (
                    Op::Openat {
                        dirfd: libc::AT_FDCWD,
                        path: bytes(&path),
                        flags: libc::O_RDONLY,
                        mode: 0,
                        into: OpenTarget::Slot(1),
                    },
                    round * 10 + 1,
                ),
                (
                    Op::Read {
                        fd: Target::Slot(1),
                        // Exactly the file's size: a short read would break the soft link.
                        buf: 0..14,
                        offset: 0,
                    },
                    round * 10 + 2,
                ),
                (
                    Op::Close {
                        fd: Target::Slot(1),
                    },
                    round * 10 + 3,
                ),
            ],
            Link::Soft,
        )
        .unwrap();
        let done = ring.run().unwrap();
        assert_eq!(
            results(&done),
            [
                (round * 10 + 1, 0),
                (round * 10 + 2, 14),
                (round * 10 + 3, 0)
            ]
        );
        assert_eq!(ring.buf(0..14).unwrap(), b"sqpoll says hi");
    }
    // Each round waits once (with a wakeup if the thread fell asleep).
    eprintln!("sqpoll stats: {:?}", ring.stats());
    assert!(ring.stats().enters <= 6);
    assert_eq!(ring.stats().submitted, 9);
    // Submitting without waiting needs no enter while the thread polls (at most a wakeup).
    let before = ring.stats().enters;
    ring.push(&Op::Nop, 100, Link::None).unwrap();
    ring.submit().unwrap();
    assert!(ring.stats().enters - before <= 1);
    eprintln!(
        "sqpoll submit without wait: {} enters",
        ring.stats().enters - before
    );
    assert_eq!(results(&ring.run().unwrap()), [(100, 0)]);
}

#[test]
fn a_chain_of_eight_costs_one_enter() {
    let Some(mut ring) = ring_or_skip(Ring::builder().entries(8)) else {
        return;
    };
    let chain: Vec<(Op, u64)> = (0..8).map(|i| (Op::Nop, i)).collect();
    ring.push_chain(&chain, Link::Soft).unwrap();
    assert_eq!(ring.submit_and_wait(8).unwrap(), 8);
    assert_eq!(ring.stats().enters, 1);
    assert_eq!(ring.completions().len(), 8);
    // Nothing staged, nothing to wait for: no enter.
    assert_eq!(ring.submit_and_wait(0).unwrap(), 0);
    assert_eq!(ring.stats().enters, 1);
    // Eight unlinked, submitted then waited for separately: two enters.
    for i in 0..8 {
        ring.push(&Op::Nop, i, Link::None).unwrap();
    }
    ring.submit().unwrap();
    ring.submit_and_wait(8).unwrap();
    assert!(ring.stats().enters <= 3);
    assert_eq!(ring.completions().len(), 8);
}

#[test]
fn more_operations_than_the_queue_holds() {
    let Some(mut ring) = ring_or_skip(Ring::builder().entries(8)) else {
        return;
    };
    for i in 0..100 {
        // Chains of 4.
        let link = if i % 4 == 3 { Link::None } else { Link::Soft };
        ring.push(&Op::Nop, i, link).unwrap();
    }
    let done = ring.run().unwrap();
    let mut ids: Vec<u64> = done.iter().map(|c| c.user_data).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..100).collect::<Vec<_>>());
    assert!(done.iter().all(|c| c.result == 0));
    let s = ring.stats();
    assert_eq!((s.submitted, s.completed), (100, 100));
    assert!(s.enters >= 100 / 8, "{s:?}");
}

#[test]
fn completions_overflowing_the_cq_are_not_lost() {
    // 40 pipe reads wait in the kernel (more than the 16-entry CQ holds), then one write
    // completes them all at once.
    let Some(mut ring) = ring_or_skip(Ring::builder().entries(8).region(IoBuf::zeroed(80))) else {
        return;
    };
    assert_eq!(ring.cq_capacity(), 16);
    let (rd, wr) = rustix::pipe::pipe().unwrap();
    for i in 0..40 {
        ring.push(
            &Op::Read {
                fd: Target::Fd(rd.as_raw_fd()),
                buf: i..i + 1,
                offset: -1,
            },
            i as u64,
            Link::None,
        )
        .unwrap();
    }
    ring.buf_mut(40..80).unwrap().fill(b'z');
    ring.push(
        &Op::Write {
            fd: Target::Fd(wr.as_raw_fd()),
            buf: 40..80,
            offset: -1,
        },
        40,
        Link::None,
    )
    .unwrap();
    let done = ring.run().unwrap();
    assert_eq!(done.len(), 41);
    assert!(
        done.iter()
            .all(|c| c.result == if c.user_data == 40 { 40 } else { 1 })
    );
    assert_eq!(ring.buf(0..40).unwrap(), &[b'z'; 40]);
}

#[test]
fn chains_longer_than_the_queue_are_refused() {
    let Some(mut ring) = ring_or_skip(Ring::builder().entries(4)) else {
        return;
    };
    let chain: Vec<(Op, u64)> = (0..5).map(|i| (Op::Nop, i)).collect();
    assert!(matches!(
        ring.push_chain(&chain, Link::Soft),
        Err(Error::ChainTooLong {
            len: 5,
            capacity: 4
        })
    ));
    assert_eq!(ring.staged(), 0);
    for i in 0..4 {
        ring.push(&Op::Nop, i, Link::Hard).unwrap();
    }
    assert!(matches!(
        ring.push(&Op::Nop, 4, Link::None),
        Err(Error::ChainTooLong { .. })
    ));
    // Submitting closes the open chain.
    assert_eq!(ring.run().unwrap().len(), 4);
}

#[test]
fn bounds_slots_paths_and_loans_are_checked() {
    let Some(mut ring) = ring_or_skip(Ring::builder().files(2).region(IoBuf::zeroed(64))) else {
        return;
    };
    let read = |buf: std::ops::Range<usize>| Op::Read {
        fd: Target::Fd(0),
        buf,
        offset: 0,
    };
    assert!(matches!(
        ring.push(&read(60..70), 0, Link::None),
        Err(Error::Range {
            start: 60,
            end: 70,
            size: 64
        })
    ));
    assert!(matches!(
        ring.push(
            &Op::Close {
                fd: Target::Slot(2)
            },
            0,
            Link::None
        ),
        Err(Error::Slot { slot: 2, slots: 2 })
    ));
    assert!(matches!(
        ring.push(
            &Op::Mkdirat {
                dirfd: libc::AT_FDCWD,
                path: b"a\0b",
                mode: 0
            },
            0,
            Link::None
        ),
        Err(Error::Path)
    ));
    assert!(matches!(
        ring.push(
            &Op::Statx {
                dirfd: libc::AT_FDCWD,
                path: b"/",
                flags: 0,
                mask: 0,
                buf: 0
            },
            0,
            Link::None
        ),
        Err(Error::Range { .. })
    ));
    assert_eq!(ring.staged(), 0);

    // A pipe whose read end gets data only later: the read stays in flight.
    let (rd, wr) = rustix::pipe::pipe().unwrap();
    ring.push(
        &Op::Read {
            fd: Target::Fd(rd.as_raw_fd()),
            buf: 0..10,
            offset: -1,
        },
        7,
        Link::None,
    )
    .unwrap();
    ring.buf_mut(20..30).unwrap().copy_from_slice(b"written...");
    ring.push(
        &Op::Write {
            fd: Target::Fd(wr.as_raw_fd()),
            buf: 20..30,
            offset: -1,
        },
        8,
        Link::None,
    )
    .unwrap();
    assert!(matches!(ring.buf(5..15), Err(Error::Busy { .. })));
    assert!(matches!(ring.buf_mut(25..26), Err(Error::Busy { .. })));
    assert_eq!(ring.buf(20..30).unwrap(), b"written...");
    assert!(ring.buf(10..20).is_ok());
    assert!(ring.buf_mut(10..20).is_ok());
    let mut done = ring.run().unwrap();
    done.sort_by_key(|c| c.user_data);
    assert_eq!(results(&done), [(7, 10), (8, 10)]);
    assert_eq!(ring.buf(0..10).unwrap(), b"written...");
    assert!(ring.buf_mut(0..64).is_ok());
    assert!(matches!(ring.buf(0..65), Err(Error::Range { .. })));
    let region = ring.take_region().unwrap().unwrap();
    assert_eq!(&region.as_slice()[..10], b"written...");
    assert!(matches!(
        ring.push(&read(0..1), 0, Link::None),
        Err(Error::NoRegion)
    ));
}

#[test]
fn drop_cancels_and_waits_for_operations_in_flight() {
    let Some(mut ring) = ring_or_skip(Ring::builder().region(IoBuf::zeroed(4096))) else {
        return;
    };
    let (rd, _wr) = rustix::pipe::pipe().unwrap();
    for i in 0..4 {
        ring.push(
            &Op::Read {
                fd: Target::Fd(rd.as_raw_fd()),
                buf: i * 16..(i + 1) * 16,
                offset: -1,
            },
            i as u64,
            Link::None,
        )
        .unwrap();
    }
    ring.submit().unwrap();
    assert_eq!(ring.in_kernel(), 4);
    ring.push(&Op::Nop, 99, Link::None).unwrap(); // staged only
    drop(ring); // must neither hang nor free the region under the kernel
}

#[test]
fn directories_renames_and_unlinks() {
    let Some(mut ring) = ring_or_skip(Ring::builder()) else {
        return;
    };
    for (code, what) in [
        (opcode::MkDirAt::CODE, "IORING_OP_MKDIRAT"),
        (opcode::RenameAt::CODE, "IORING_OP_RENAMEAT"),
        (opcode::UnlinkAt::CODE, "IORING_OP_UNLINKAT"),
    ] {
        if !supports_or_skip(&ring, code, what) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let d = File::open(dir.path()).unwrap();
    let dfd = d.as_raw_fd();
    let b = dir.path().join("b");
    let ops = [
        (
            Op::Mkdirat {
                dirfd: dfd,
                path: b"a",
                mode: 0o755,
            },
            1,
        ),
        (
            Op::Renameat {
                olddirfd: dfd,
                oldpath: b"a",
                newdirfd: libc::AT_FDCWD,
                newpath: bytes(&b),
                flags: 0,
            },
            2,
        ),
        (
            Op::Mkdirat {
                dirfd: dfd,
                path: b"b/c",
                mode: 0o755,
            },
            3,
        ),
        (
            Op::Unlinkat {
                dirfd: dfd,
                path: b"b",
                flags: libc::AT_REMOVEDIR,
            },
            4,
        ),
    ];
    ring.push_chain(&ops, Link::Hard).unwrap();
    let done = ring.run().unwrap();
    assert_eq!(
        results(&done),
        [(1, 0), (2, 0), (3, 0), (4, -libc::ENOTEMPTY)]
    );
    assert!(dir.path().join("b/c").is_dir());
    assert!(!dir.path().join("a").exists());
}

#[test]
fn write_sync_truncate_through_a_normal_fd() {
    let Some(mut ring) = ring_or_skip(
        Ring::builder()
            .region(IoBuf::from_bytes(b"abcdefgh"))
            .register_region(false),
    ) else {
        return;
    };
    assert!(!ring.region_registered());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w");
    ring.push(
        &Op::Openat {
            dirfd: libc::AT_FDCWD,
            path: bytes(&path),
            flags: libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
            mode: 0o644,
            into: OpenTarget::Fd,
        },
        1,
        Link::None,
    )
    .unwrap();
    let done = ring.run().unwrap();
    let fd = done[0].result;
    assert!(fd >= 0, "{done:?}");
    let fd = Target::Fd(fd);
    let truncate = ring.probe().supports(opcode::Ftruncate::CODE);
    let mut chain = vec![
        (
            Op::Write {
                fd,
                buf: 0..8,
                offset: -1,
            },
            2,
        ),
        (
            Op::Write {
                fd,
                buf: 0..2,
                offset: 100,
            },
            3,
        ),
        (Op::Fsync { fd, datasync: true }, 4),
    ];
    if truncate {
        chain.push((Op::Ftruncate { fd, len: 5 }, 5));
    } else {
        eprintln!("skipping ftruncate: kernel lacks IORING_OP_FTRUNCATE");
    }
    chain.push((Op::Close { fd }, 6));
    ring.push_chain(&chain, Link::Soft).unwrap();
    let done = ring.run().unwrap();
    assert!(done.iter().all(|c| c.result >= 0), "{done:?}");
    assert_eq!(done[0].result, 8);
    let content = std::fs::read(&path).unwrap();
    if truncate {
        assert_eq!(content, b"abcde");
    } else {
        assert_eq!(content.len(), 102);
    }
}

#[test]
fn splice_from_a_file_into_a_pipe() {
    let Some(mut ring) = ring_or_skip(Ring::builder().files(2)) else {
        return;
    };
    if !supports_or_skip(&ring, opcode::Splice::CODE, "IORING_OP_SPLICE") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "src", b"spliced bytes");
    let file = File::open(&path).unwrap();
    let (rd, wr) = rustix::pipe::pipe().unwrap();
    ring.set_slot(0, file.as_raw_fd()).unwrap();
    ring.push(
        &Op::Splice {
            fd_in: Target::Slot(0),
            off_in: 2,
            fd_out: Target::Fd(wr.as_raw_fd()),
            off_out: -1,
            len: 100,
            flags: 0,
        },
        1,
        Link::None,
    )
    .unwrap();
    assert_eq!(results(&ring.run().unwrap()), [(1, 11)]);
    drop(wr);
    let mut out = Vec::new();
    File::from(rd).read_to_end(&mut out).unwrap();
    assert_eq!(out, b"liced bytes");
}

#[test]
fn openat2_beneath_and_auto_slots() {
    let Some(mut ring) = ring_or_skip(Ring::builder().files(3).region(IoBuf::zeroed(64))) else {
        return;
    };
    if !supports_or_skip(&ring, opcode::OpenAt2::CODE, "IORING_OP_OPENAT2") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    file_with(dir.path(), "inside", b"in");
    let d = File::open(dir.path()).unwrap();
    let beneath = |path: &'static [u8], into| Op::Openat2 {
        dirfd: d.as_raw_fd(),
        path,
        flags: libc::O_RDONLY as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH,
        into,
    };
    ring.push(&beneath(b"../x", OpenTarget::Slot(0)), 1, Link::None)
        .unwrap();
    ring.push(&beneath(b"inside", OpenTarget::AutoSlot), 2, Link::None)
        .unwrap();
    let mut done = ring.run().unwrap();
    done.sort_by_key(|c| c.user_data);
    assert_eq!(done[0].result, -libc::EXDEV);
    let slot = done[1].result;
    assert!((0..3).contains(&slot), "{done:?}");
    ring.push(
        &Op::Read {
            fd: Target::Slot(slot as u32),
            buf: 0..64,
            offset: 0,
        },
        3,
        Link::Soft,
    )
    .unwrap();
    ring.push(
        &Op::Close {
            fd: Target::Slot(slot as u32),
        },
        4,
        Link::None,
    )
    .unwrap();
    // A short read breaks a soft link: the close is cancelled.
    assert_eq!(
        results(&ring.run().unwrap()),
        [(3, 2), (4, -libc::ECANCELED)]
    );
    assert_eq!(ring.buf(0..2).unwrap(), b"in");
}

#[test]
fn many_reads_across_enters_match_pread() {
    let Some(mut ring) = ring_or_skip(
        Ring::builder()
            .entries(16)
            .files(1)
            .region(IoBuf::zeroed(1000)),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..1000u32).map(|i| (i % 253) as u8).collect();
    let path = file_with(dir.path(), "many", &content);
    let mut f = File::open(&path).unwrap();
    ring.set_slot(0, f.as_raw_fd()).unwrap();
    for i in 0..1000 {
        ring.push(
            &Op::Read {
                fd: Target::Slot(0),
                buf: i..i + 1,
                offset: (999 - i) as i64,
            },
            i as u64,
            Link::None,
        )
        .unwrap();
    }
    let done = ring.run().unwrap();
    assert_eq!(done.len(), 1000);
    assert!(done.iter().all(|c| c.result == 1));
    let got = ring.buf(0..1000).unwrap();
    for i in 0..1000 {
        assert_eq!(got[i], content[999 - i]);
    }
    let mut check = Vec::new();
    f.read_to_end(&mut check).unwrap();
    assert_eq!(check, content);
}

#[test]
fn drop_closes_descriptors_nobody_drained() {
    let Some(mut ring) = ring_or_skip(Ring::builder()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "x", b"x");
    ring.push(
        &Op::Openat {
            dirfd: libc::AT_FDCWD,
            path: bytes(&path),
            flags: libc::O_RDONLY | libc::O_CLOEXEC,
            mode: 0,
            into: OpenTarget::Fd,
        },
        1,
        Link::None,
    )
    .unwrap();
    ring.submit_and_wait(1).unwrap();
    drop(ring);
}

#[test]
fn forced_fallback_child() {
    // Also run as a child of `cosy_no_uring_forces_unavailable` with the variable set.
    let forced = std::env::var_os(ENV_NO_URING).is_some_and(|v| v == "1");
    let p = Probe::detect();
    if forced {
        assert!(!p.available());
        assert_eq!(p.reason(), Some("disabled by COSY_NO_URING"));
        assert!(!p.supports(opcode::Nop::CODE));
        assert!(matches!(Ring::new(8), Err(Error::Unavailable(_))));
        println!("CHILD-OK forced");
    } else {
        assert_eq!(p.available(), Probe::kernel().available());
    }
}

#[test]
fn cosy_no_uring_forces_unavailable() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "forced_fallback_child", "--nocapture"])
        .env(ENV_NO_URING, "1")
        // io_uring is off on purpose in the child: not a missing io_uring to fail on.
        .env_remove(cosy_uring::ENV_REQUIRE_URING)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CHILD-OK forced"), "{stdout}");
    // The kernel probe itself is unaffected.
    let _ = Probe::kernel();
}

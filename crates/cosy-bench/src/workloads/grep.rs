//! `grep`: count a fixed string in a tree of 8 KiB files (§4.3: "applications that read a lot
//! of data and work on it without modifying it").
//!
//! vanilla walks the tree with `std::fs::read_dir`, reads each file whole and counts with
//! `memchr::memmem`; cosy runs, per directory, a getdents64 and a map of
//! `open; read; find; close` (the built-in `find`, the pattern stored into the arena); GNU `grep -rFo` and `rg --count-matches`
//! run when installed; `uring-by-hand` is the floor of io_uring here, written by hand on
//! cosy-uring's ring: per directory, 64 files per submission, each an open into a slot of
//! the ring's file table, a read of it and a hard-linked close. The answer is the number of
//! matches, known from the corpus.

use std::fs;
use std::io;
use std::path::Path;

use cosy_exec::Functions;
use cosy_model::flags::{DirentType, Mode, OFlags};
use cosy_model::{Builder, Compound, FdRef, Width};
use memchr::memmem::Finder;

use super::{Ctx, DENTS, O_DIR, PATTERN, Workload, bytes, tree_spec, walk};
use crate::external::tool_with_codes;
use crate::framework::{Answer, Case, Entry, VariantError, answer, variant};

/// The grep workload.
pub const WORKLOAD: Workload = Workload {
    name: "grep",
    parts: &["grep"],
    about: "count a fixed string in a tree of 10 x 1,000 files of 8 KiB",
    build,
};

/// Read size of the compound (files up to this size are read in one call).
const CHUNK: u32 = 64 << 10;

/// `walk root { if dir { d = open; walk d { if file { f = open; do { r = read(f, data);
/// matches += find(data[0..r], PATTERN) } while r == CHUNK; close f } }; close d } }`:
/// the two levels of the corpus's tree.
pub fn compound(root: &[u8], pattern: &[u8]) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("root", root);
    // Built-ins take buffer ranges: the pattern is stored into the arena once.
    let needle = c.buffer("needle", pattern.len().max(1) as u32);
    for (i, b) in pattern.iter().enumerate() {
        c.store(Width::U8, needle, i as i64, i64::from(*b));
    }
    let rents = c.buffer("rents", DENTS);
    let sents = c.local_buffer("ents", DENTS);
    let data = c.local_buffer("data", CHUNK);
    let matches = c.value("matches", 0);
    let root = c.openat(FdRef::Cwd, path, O_DIR, Mode::empty());
    walk(&mut c, root, rents, |c, e| {
        c.if_(e.kind.eq(DirentType::Dir), |c| {
            let d = c.openat(root, e.name, O_DIR, Mode::empty());
            walk(c, d, sents, |c, f| {
                c.if_(f.kind.eq(DirentType::Reg), |c| {
                    let fd = c.openat(d, f.name, OFlags::RDONLY, Mode::empty());
                    c.do_while(1 << 20, |c| {
                        let r = c.read(fd, data);
                        let m = c.call("find", (data.prefix(r), needle));
                        c.accumulate(matches, m);
                        r.eq(CHUNK as i64)
                    });
                    c.close(fd);
                });
            });
            c.close(d);
        });
    });
    c.close(root);
    c.output("matches", matches);
    c.finish()
}

fn count(dir: &Path, finder: &Finder<'_>) -> io::Result<i64> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            n += count(&e.path(), finder)?;
        } else if t.is_file() {
            let data = fs::read(e.path())?;
            n += finder.find_iter(&data).count() as i64;
        }
    }
    Ok(n)
}

/// Files per submission of `uring-by-hand`.
const BATCH: usize = 64;

/// The corpus's files are smaller than this: one read each.
const BY_HAND_READ: usize = 16 << 10;

/// `uring-by-hand` (see the module documentation).
fn uring_by_hand(ring: &mut cosy_uring::Ring, root: &Path) -> Result<Answer, VariantError> {
    use cosy_uring::{Link, Op, OpenTarget, Target};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let fail = |e: cosy_uring::Error| VariantError::Fail(e.to_string());
    let finder = Finder::new(PATTERN);
    let mut n = 0i64;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut files = Vec::new();
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                files.push(e.file_name());
            }
        }
        let d = fs::File::open(&dir)?;
        for batch in files.chunks(BATCH) {
            for (k, name) in batch.iter().enumerate() {
                let slot = k as u32;
                let buf = k * BY_HAND_READ..(k + 1) * BY_HAND_READ;
                let chain = [
                    (
                        Op::Openat {
                            dirfd: d.as_raw_fd(),
                            path: name.as_bytes(),
                            flags: libc::O_RDONLY,
                            mode: 0,
                            into: OpenTarget::Slot(slot),
                        },
                        (k * 3) as u64,
                    ),
                    (
                        Op::Read {
                            fd: Target::Slot(slot),
                            buf,
                            offset: 0,
                        },
                        (k * 3 + 1) as u64,
                    ),
                    (
                        Op::Close {
                            fd: Target::Slot(slot),
                        },
                        (k * 3 + 2) as u64,
                    ),
                ];
                ring.push_chain(&chain, Link::Hard).map_err(fail)?;
            }
            let mut read = vec![0usize; batch.len()];
            for c in ring.run().map_err(fail)? {
                if c.result < 0 {
                    return Err(VariantError::Fail(format!("io_uring: {}", c.result)));
                }
                if c.user_data % 3 == 1 {
                    read[(c.user_data / 3) as usize] = c.result as usize;
                }
            }
            for (k, r) in read.iter().enumerate() {
                let bytes = ring
                    .buf(k * BY_HAND_READ..k * BY_HAND_READ + r)
                    .map_err(fail)?;
                n += finder.find_iter(bytes).count() as i64;
            }
        }
    }
    Ok(answer(&[("matches", n)]))
}

/// The `uring-by-hand` variant: its ring is set up once, before the runs.
fn by_hand_entry(root: std::path::PathBuf) -> Entry {
    if cosy_uring::skip_without_uring("uring-by-hand") {
        return Entry::Skipped {
            name: "uring-by-hand".into(),
            reason: "io_uring unavailable".into(),
        };
    }
    let ring = cosy_uring::Ring::builder()
        .entries(256)
        .files(BATCH as u32)
        .region(cosy_uring::IoBuf::zeroed(BATCH * BY_HAND_READ))
        .build();
    match ring {
        Ok(mut ring) => Entry::Ready(variant("uring-by-hand", move || {
            uring_by_hand(&mut ring, &root)
        })),
        Err(e) => Entry::Skipped {
            name: "uring-by-hand".into(),
            reason: e.to_string(),
        },
    }
}

fn vanilla(root: &Path) -> Result<Answer, VariantError> {
    let finder = Finder::new(PATTERN);
    Ok(answer(&[("matches", count(root, &finder)?)]))
}

/// `grep -rFo` prints one line per match.
fn parse_grep(out: &str) -> Result<Answer, String> {
    Ok(answer(&[("matches", out.lines().count() as i64)]))
}

/// `rg --count-matches --no-filename` prints one count per file with matches.
fn parse_rg(out: &str) -> Result<Answer, String> {
    let mut n = 0;
    for l in out.lines() {
        n += l.trim().parse::<i64>().map_err(|e| format!("`{l}`: {e}"))?;
    }
    Ok(answer(&[("matches", n)]))
}

fn build(ctx: &mut Ctx<'_>, _part: &str) -> io::Result<Vec<Case>> {
    let spec = tree_spec(ctx);
    let tree = ctx.corpus.tree(&spec)?;
    let root = tree.root.clone();
    let pattern = std::str::from_utf8(PATTERN).map_err(io::Error::other)?;
    let mut case = Case::new("grep")
        .param("files", tree.files)
        .param("bytes", tree.bytes)
        .expect(answer(&[("matches", tree.matches as i64)]))
        .variant(variant("vanilla", move || vanilla(&root)));
    let entries = crate::exec::variants(compound(&bytes(&tree.root), PATTERN), Functions::new());
    for e in entries {
        case = case.entry(e);
    }
    case = case.entry(by_hand_entry(tree.root.clone()));
    let r = &tree.root;
    case = case
        .entry(tool_with_codes(
            "grep",
            "grep",
            &[&"-rFo", &pattern, r],
            parse_grep,
            &[0, 1],
        ))
        .entry(tool_with_codes(
            "rg",
            "rg",
            &[
                &"-F",
                &"--count-matches",
                &"--no-filename",
                &"--no-ignore",
                &"--hidden",
                &pattern,
                r,
            ],
            parse_rg,
            &[0, 1],
        ));
    Ok(vec![case])
}

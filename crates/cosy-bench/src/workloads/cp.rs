//! `cp`: copy the `grep` tree to a fresh destination every run.
//!
//! Before every run (untimed) the previous copy is moved aside, not removed: ext4 allocates
//! inodes slowly for minutes after thousands were deleted (`recently_deleted()` scans the
//! inode table for every new inode), which would make the benchmark measure the allocator
//! rather than the copy. The copies are removed with the corpus at the end.
//!
//! vanilla is `std::fs::create_dir` and, per file, `std::fs::read` + `std::fs::write` (the
//! data passes through user space: the baseline); `vanilla-fs-copy` uses `std::fs::copy`,
//! which already copies in the kernel (copy_file_range); cosy runs mkdirat, getdents64 and a
//! map of `open; open(O_CREAT); read/write loop; close; close` per directory (cosy-opt may turn
//! the loop into copy_file_range); `cp -r` runs when installed. After every run the copy is
//! verified (untimed): file count, bytes, and every file identical to its source.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cosy_exec::Functions;
use cosy_model::flags::{DirentType, Mode, OFlags};
use cosy_model::{Builder, Compound, FdRef};

use super::{Ctx, DENTS, O_DIR, Workload, bytes, tree_spec, walk};
use crate::external::tool;
use crate::framework::{Answer, Case, VariantError, answer, variant};

/// The cp workload.
pub const WORKLOAD: Workload = Workload {
    name: "cp",
    parts: &["cp"],
    about: "copy the grep tree to a fresh directory",
    build,
};

const CHUNK: u32 = 64 << 10;

/// `mkdir dst; walk src { if dir { mkdirat; s = open; t = open; walk s { if file {
/// f = open; g = open(O_CREAT); do { r = read(f); copied += write(g, data[0..r]) }
/// while r == CHUNK; close f; close g } } } }` — the two levels of the corpus's tree.
pub fn compound(src: &[u8], dst: &[u8]) -> Compound {
    let mut c = Builder::new();
    let spath = c.input_path("src", src);
    let dpath = c.input_path("dst", dst);
    let rents = c.buffer("rents", DENTS);
    let sents = c.local_buffer("ents", DENTS);
    let data = c.local_buffer("data", CHUNK);
    let copied = c.value("copied", 0);
    c.mkdirat(FdRef::Cwd, dpath, Mode::from_raw_mode(0o755));
    let sroot = c.openat(FdRef::Cwd, spath, O_DIR, Mode::empty());
    let droot = c.openat(FdRef::Cwd, dpath, O_DIR, Mode::empty());
    let create = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
    walk(&mut c, sroot, rents, |c, e| {
        c.if_(e.kind.eq(DirentType::Dir), |c| {
            c.mkdirat(droot, e.name, Mode::from_raw_mode(0o755));
            let s = c.openat(sroot, e.name, O_DIR, Mode::empty());
            let t = c.openat(droot, e.name, O_DIR, Mode::empty());
            walk(c, s, sents, |c, f| {
                c.if_(f.kind.eq(DirentType::Reg), |c| {
                    let from = c.openat(s, f.name, OFlags::RDONLY, Mode::empty());
                    let to = c.openat(t, f.name, create, Mode::from_raw_mode(0o644));
                    c.do_while(1 << 20, |c| {
                        let r = c.read(from, data);
                        let w = c.write(to, data.prefix(r));
                        c.accumulate(copied, w);
                        r.eq(CHUNK as i64)
                    });
                    c.close(from);
                    c.close(to);
                });
            });
            c.close(s);
            c.close(t);
        });
    });
    c.close(sroot);
    c.close(droot);
    c.output("copied", copied);
    c.finish()
}

fn copy_tree(src: &Path, dst: &Path, fs_copy: bool) -> io::Result<i64> {
    fs::create_dir(dst)?;
    let mut copied = 0;
    for e in fs::read_dir(src)? {
        let e = e?;
        let t = e.file_type()?;
        let to = dst.join(e.file_name());
        if t.is_dir() {
            copied += copy_tree(&e.path(), &to, fs_copy)?;
        } else if t.is_file() {
            copied += if fs_copy {
                fs::copy(e.path(), &to)? as i64
            } else {
                let data = fs::read(e.path())?;
                fs::write(&to, &data)?;
                data.len() as i64
            };
        }
    }
    Ok(copied)
}

fn vanilla(src: &Path, dst: &Path, fs_copy: bool) -> Result<Answer, VariantError> {
    Ok(answer(&[("copied", copy_tree(src, dst, fs_copy)?)]))
}

/// Compares the copy with its source: `[files, bytes, identical]`.
fn compare(src: &Path, dst: &Path, acc: &mut [i64; 3]) -> io::Result<()> {
    for e in fs::read_dir(src)? {
        let e = e?;
        let t = e.file_type()?;
        let to = dst.join(e.file_name());
        if t.is_dir() {
            compare(&e.path(), &to, acc)?;
        } else if t.is_file() {
            let a = fs::read(e.path())?;
            match fs::read(&to) {
                Ok(b) => {
                    acc[0] += 1;
                    acc[1] += b.len() as i64;
                    if a != b {
                        acc[2] = 0;
                    }
                }
                Err(_) => acc[2] = 0,
            }
        }
    }
    Ok(())
}

/// The untimed check after every run: what the destination holds.
pub fn verify_copy(src: &Path, dst: &Path) -> io::Result<Answer> {
    let mut acc = [0, 0, 1];
    compare(src, dst, &mut acc)?;
    Ok(answer(&[
        ("files", acc[0]),
        ("bytes", acc[1]),
        ("identical", acc[2]),
    ]))
}

/// Moves the previous copy (if any) into `old`, under a new name.
fn move_aside(dst: &Path, old: &Path, serial: &mut u32) -> io::Result<()> {
    if !dst.exists() {
        return Ok(());
    }
    fs::create_dir_all(old)?;
    *serial += 1;
    fs::rename(dst, old.join(format!("copy-{serial}")))
}

fn build(ctx: &mut Ctx<'_>, _part: &str) -> io::Result<Vec<Case>> {
    let spec = tree_spec(ctx);
    let tree = ctx.corpus.tree(&spec)?;
    let dst: PathBuf = ctx.corpus.scratch("cp-dst");
    let src = tree.root.clone();
    let (s1, d1) = (src.clone(), dst.clone());
    let (s2, d2) = (src.clone(), dst.clone());
    let (s3, d3) = (src.clone(), dst.clone());
    let d0 = dst.clone();
    let old = ctx.corpus.scratch("cp-old");
    let mut serial = 0;
    let mut case = Case::new("cp")
        .param("files", tree.files)
        .param("bytes", tree.bytes)
        .reset(move || move_aside(&d0, &old, &mut serial))
        .check(move || verify_copy(&s1, &d1))
        .expect(answer(&[
            ("files", tree.files as i64),
            ("bytes", tree.bytes as i64),
            ("identical", 1),
        ]))
        .variant(variant("vanilla", move || vanilla(&s2, &d2, false)))
        .variant(variant("vanilla-fs-copy", move || vanilla(&s3, &d3, true)));
    let entries = crate::exec::variants(compound(&bytes(&src), &bytes(&dst)), Functions::new());
    for e in entries {
        case = case.entry(e);
    }
    case = case.entry(tool("cp -r", "cp", &[&"-r", &src, &dst], |_| {
        Ok(Answer::new())
    }));
    Ok(vec![case])
}

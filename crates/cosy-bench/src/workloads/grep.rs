//! `grep`: count a fixed string in a tree of 8 KiB files (§4.3: "applications that read a lot
//! of data and work on it without modifying it").
//!
//! vanilla walks the tree with `std::fs::read_dir`, reads each file whole and counts with
//! `memchr::memmem`; cosy runs, per directory, a getdents64 and a map of
//! `open; read; find; close` (the built-in `find`, the pattern stored into the arena); GNU `grep -rFo` and `rg --count-matches`
//! run when installed. The answer is the number of matches, known from the corpus.

use std::fs;
use std::io;
use std::path::Path;

use cosy_exec::Functions;
use cosy_model::builder::cond;
use cosy_model::{Arg, BinOp, Builder, Compound, FdRef, Width};
use memchr::memmem::Finder;

use super::{Ctx, DENTS, O_DIR, PATTERN, Workload, bytes, tree_spec, walk};
use crate::external::tool_with_codes;
use crate::framework::{Answer, Case, VariantError, answer, variant};

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
    let root = c.openat(FdRef::Cwd, path, O_DIR, 0);
    walk(&mut c, root, rents, |c, e| {
        c.if_(cond(e.kind, BinOp::Eq, libc::DT_DIR as i64), |c| {
            let d = c.openat(root, e.name, O_DIR, 0);
            walk(c, d, sents, |c, f| {
                c.if_(cond(f.kind, BinOp::Eq, libc::DT_REG as i64), |c| {
                    let fd = c.openat(d, f.name, libc::O_RDONLY as i64, 0);
                    c.do_while(1 << 20, |c| {
                        let r = c.read(fd, data);
                        let m = c.call(
                            "find",
                            vec![Arg::Buf(data.prefix(r)), Arg::Buf(needle.into())],
                        );
                        c.accumulate(matches, m);
                        cond(r, BinOp::Eq, CHUNK as i64)
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

//! `du`: the apparent size of the `grep` tree (every file and directory, the root included)
//! and its number of files and their bytes, with a warm and with a cold cache.
//!
//! vanilla walks with `std::fs::read_dir` and `std::fs::symlink_metadata` of each path (what
//! GNU `du` does, an `lstat` per entry); cosy runs getdents64 and a map of `statx` relative to
//! each directory's fd; GNU `du -sb` runs too (it reports the total only).

use std::fs;
use std::io;
use std::path::Path;

use cosy_exec::Functions;
use cosy_model::flags::STATX_SIZE_OFFSET;
use cosy_model::flags::{AtFlags, DirentType, Mode, StatxFlags};
use cosy_model::{Buf, Builder, Compound, FdRef, PathRef, Reg, Width};

use super::{Ctx, DENTS, O_DIR, Workload, bytes, tree_spec, walk};
use crate::cache::Cache;
use crate::external::tool;
use crate::framework::{Answer, Case, VariantError, answer, variant};

/// The du workload.
pub const WORKLOAD: Workload = Workload {
    name: "du",
    parts: &["du"],
    about: "apparent size and file count of the grep tree, warm and cold",
    build,
};

struct Totals {
    tree: Reg,
    files: Reg,
    bytes: Reg,
}

/// `statx(dir, name) into st; tree += size; if kind == DT_REG { files += 1; bytes += size }`.
fn account(c: &mut Builder, t: &Totals, dir: FdRef, name: PathRef, kind: Reg, st: Buf) {
    c.statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
        st,
    );
    let size = c.load(Width::U64, st, STATX_SIZE_OFFSET as i64);
    c.accumulate(t.tree, size);
    c.if_(kind.eq(DirentType::Reg), |c| {
        c.accumulate(t.files, 1);
        c.accumulate(t.bytes, size);
    });
}

/// The root's statx, then two levels of `walk { statx }` (the corpus's tree).
pub fn compound(root: &[u8]) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("root", root);
    let rents = c.buffer("rents", DENTS);
    let sents = c.local_buffer("ents", DENTS);
    let st0 = c.buffer("st0", 256);
    let st1 = c.local_buffer("st1", 256);
    let st2 = c.local_buffer("st2", 256);
    let t = Totals {
        tree: c.value("tree_bytes", 0),
        files: c.value("files", 0),
        bytes: c.value("bytes", 0),
    };
    c.statx(
        FdRef::Cwd,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
        st0,
    );
    let size = c.load(Width::U64, st0, STATX_SIZE_OFFSET as i64);
    c.accumulate(t.tree, size);
    let root = c.openat(FdRef::Cwd, path, O_DIR, Mode::empty());
    walk(&mut c, root, rents, |c, e| {
        account(c, &t, root, e.name, e.kind, st1);
        c.if_(e.kind.eq(DirentType::Dir), |c| {
            let d = c.openat(root, e.name, O_DIR, Mode::empty());
            walk(c, d, sents, |c, f| account(c, &t, d, f.name, f.kind, st2));
            c.close(d);
        });
    });
    c.close(root);
    c.output("tree_bytes", t.tree);
    c.output("files", t.files);
    c.output("bytes", t.bytes);
    c.finish()
}

fn walk_fs(dir: &Path, a: &mut [i64; 3]) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        let md = fs::symlink_metadata(&p)?;
        a[0] += md.len() as i64;
        if md.is_file() {
            a[1] += 1;
            a[2] += md.len() as i64;
        } else if md.is_dir() {
            walk_fs(&p, a)?;
        }
    }
    Ok(())
}

fn vanilla(root: &Path) -> Result<Answer, VariantError> {
    let mut a = [fs::symlink_metadata(root)?.len() as i64, 0, 0];
    walk_fs(root, &mut a)?;
    Ok(answer(&[
        ("tree_bytes", a[0]),
        ("files", a[1]),
        ("bytes", a[2]),
    ]))
}

/// `du -sb DIR` prints `BYTES<tab>DIR`.
fn parse_du(out: &str) -> Result<Answer, String> {
    let n = out
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("cannot read a size in `{}`", out.trim()))?;
    Ok(answer(&[("tree_bytes", n)]))
}

fn build(ctx: &mut Ctx<'_>, _part: &str) -> io::Result<Vec<Case>> {
    let spec = tree_spec(ctx);
    let tree = ctx.corpus.tree(&spec)?;
    let mut cases = Vec::new();
    for cache in [Cache::Warm, Cache::Cold] {
        let root = tree.root.clone();
        let mut case = Case::new("du")
            .param("files", tree.files)
            .cache(cache)
            .expect(answer(&[
                ("files", tree.files as i64),
                ("bytes", tree.bytes as i64),
            ]))
            .variant(variant("vanilla", move || vanilla(&root)));
        let entries = crate::exec::variants(compound(&bytes(&tree.root)), Functions::new());
        for e in entries {
            case = case.entry(e);
        }
        case = case.entry(crate::exec::confined(
            compound(&bytes(&tree.root)),
            &tree.root,
        ));
        case = case.entry(tool("du", "du", &[&"-sb", &tree.root], parse_du));
        cases.push(case);
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn du_output_is_parsed() {
        assert_eq!(
            parse_du("123456\t/tmp/x\n").unwrap(),
            answer(&[("tree_bytes", 123_456)])
        );
        assert!(parse_du("").is_err());
    }
}

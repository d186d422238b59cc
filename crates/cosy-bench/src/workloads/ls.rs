//! `ls`: `ls -l` of a directory of 5,000 and of 50,000 files (§4.3) — getdents64, then a
//! statx of every entry — with a warm and with a cold cache.
//!
//! vanilla is `std::fs::read_dir` + `std::fs::symlink_metadata` of each entry's path (what
//! `ls -l` does: an `lstat` per name); cosy runs `getdents64` and a map of `statx` relative to
//! the directory's fd; the real `ls -ln` runs too. The answer is the number of entries and the
//! sum of their sizes (file `i` has `i mod 4096` bytes).

use std::fs;
use std::io;
use std::path::Path;

use cosy_exec::Functions;
use cosy_model::flags::STATX_SIZE_OFFSET;
use cosy_model::flags::{AtFlags, Mode, StatxFlags};
use cosy_model::{Builder, Compound, FdRef, Width};

use super::{Ctx, DENTS, O_DIR, Workload, bytes, walk};
use crate::cache::Cache;
use crate::external::tool;
use crate::framework::{Answer, Case, VariantError, answer, variant};

/// The ls workload.
pub const WORKLOAD: Workload = Workload {
    name: "ls",
    parts: &["ls-5k", "ls-50k"],
    about: "ls -l (getdents64 + statx of every entry) of 5,000 and 50,000 files, warm and cold",
    build,
};

/// `d = open(dir); walk d { statx(d, e, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, st);
/// bytes += st.size; entries += 1 }; close d`.
pub fn compound(dir: &[u8]) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("dir", dir);
    let ents = c.buffer("ents", DENTS);
    let st = c.local_buffer("st", 256);
    let entries = c.value("entries", 0);
    let total = c.value("bytes", 0);
    let d = c.openat(FdRef::Cwd, path, O_DIR, Mode::empty());
    walk(&mut c, d, ents, |c, e| {
        c.statx(
            d,
            e.name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
            st,
        );
        let size = c.load(Width::U64, st, STATX_SIZE_OFFSET as i64);
        c.accumulate(total, size);
        c.accumulate(entries, 1);
    });
    c.close(d);
    c.output("entries", entries);
    c.output("bytes", total);
    c.finish()
}

fn vanilla(dir: &Path) -> Result<Answer, VariantError> {
    let (mut entries, mut total) = (0i64, 0i64);
    for e in fs::read_dir(dir)? {
        let md = fs::symlink_metadata(e?.path())?;
        entries += 1;
        total += md.len() as i64;
    }
    Ok(answer(&[("entries", entries), ("bytes", total)]))
}

/// `ls -ln` output: a `total` line, then one line per entry with the size in field 5.
fn parse_ls(out: &str) -> Result<Answer, String> {
    let (mut entries, mut total) = (0i64, 0i64);
    for line in out.lines().filter(|l| !l.starts_with("total ")) {
        let size = line
            .split_whitespace()
            .nth(4)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| format!("cannot read a size in `{line}`"))?;
        entries += 1;
        total += size;
    }
    Ok(answer(&[("entries", entries), ("bytes", total)]))
}

fn build(ctx: &mut Ctx<'_>, part: &str) -> io::Result<Vec<Case>> {
    let base = if part == "ls-50k" { 50_000.0 } else { 5_000.0 };
    let files = ctx.scaled(base, 3) as usize;
    let (dir, total) = ctx.corpus.flat_dir(part, files)?;
    let mut cases = Vec::new();
    for cache in [Cache::Warm, Cache::Cold] {
        let d = dir.clone();
        let mut case = Case::new(part)
            .param("files", files)
            .cache(cache)
            .expect(answer(&[
                ("entries", files as i64),
                ("bytes", total as i64),
            ]))
            .variant(variant("vanilla", move || vanilla(&d)));
        let entries = crate::exec::variants(compound(&bytes(&dir)), Functions::new());
        for e in entries {
            case = case.entry(e);
        }
        case = case.entry(crate::exec::confined(compound(&bytes(&dir)), &dir));
        case = case.entry(tool(
            "ls -l",
            "ls",
            &[&"-ln", &"--color=never", &dir],
            parse_ls,
        ));
        cases.push(case);
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_output_is_parsed() {
        let out =
            "total 8\n-rw-r--r-- 1 0 0 12 Jan  1 00:00 a\n-rw-r--r-- 1 0 0 30 Jan  1 00:00 b c\n";
        assert_eq!(
            parse_ls(out).unwrap(),
            answer(&[("entries", 2), ("bytes", 42)])
        );
        assert!(parse_ls("garbage\n").is_err());
    }
}

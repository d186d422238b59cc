//! The workloads: each builds its corpus and its cases, with the variants of each case.
//!
//! | workload | parts | what | answer |
//! |---|---|---|---|
//! | [`burst`] | `burst` | N = 1 … 1024 independent `nop`s / 1-byte `pread`s | operations, sum of the bytes |
//! | [`database`] | `database` | random 4 KiB page reads and writes (2:1) of a file, offsets from a user function | sum of the pages' first words |
//! | [`bonnie`] | `bonnie-write`, `bonnie-rewrite`, `bonnie-read` | Bonnie's block phases on one file | bytes |
//! | [`ls`] | `ls-5k`, `ls-50k` | `ls -l` of a directory: getdents64 + statx of every entry, warm and cold | entries, bytes |
//! | [`grep`] | `grep` | a fixed string in a tree of 8 KiB files | matches |
//! | [`du`] | `du` | apparent size of the same tree, warm and cold | files, bytes |
//! | [`cp`] | `cp` | copy of the same tree | files, bytes, identical |
//!
//! Default sizes are the thesis's scaled to a two-minute run on two cores; [`Config::scale`]
//! multiplies them.
//!
//! [`Config::scale`]: crate::Config::scale

pub mod bonnie;
pub mod burst;
pub mod cp;
pub mod database;
pub mod du;
pub mod grep;
pub mod ls;
pub mod tool_cp;
pub mod tool_du;
pub mod tool_grep;
pub mod tool_ls;

use std::io;

use cosy_model::flags::OFlags;
use cosy_model::{Buf, Builder, Dirent, FdRef};

use crate::corpus::{Corpus, TreeSpec};
use crate::framework::Case;

/// What a workload's builder gets: the corpus to write into, and the scale.
pub struct Ctx<'a> {
    /// The shared corpus.
    pub corpus: &'a mut Corpus,
    /// The size multiplier.
    pub scale: f64,
    /// The `cosy` binary whose tools are measured (`Config::tools`).
    pub tools: Option<&'a std::path::Path>,
}

impl Ctx<'_> {
    /// `base × scale`, rounded, at least `min`.
    pub fn scaled(&self, base: f64, min: u64) -> u64 {
        ((base * self.scale).round() as u64).max(min)
    }
}

/// A workload: a name, the parts it can be asked for by, and the builder of its cases.
#[derive(Debug)]
pub struct Workload {
    /// Its name (`ls`).
    pub name: &'static str,
    /// Its parts (`ls-5k`, `ls-50k`): the names of the records' workloads, each selectable.
    pub parts: &'static [&'static str],
    /// One line about it.
    pub about: &'static str,
    /// Builds the corpus and the cases of one part.
    pub build: fn(&mut Ctx<'_>, &str) -> io::Result<Vec<Case>>,
}

/// Every workload, in the order they run.
pub fn all() -> &'static [Workload] {
    &[
        burst::WORKLOAD,
        database::WORKLOAD,
        bonnie::WORKLOAD,
        ls::WORKLOAD,
        grep::WORKLOAD,
        du::WORKLOAD,
        cp::WORKLOAD,
        tool_grep::WORKLOAD,
        tool_du::WORKLOAD,
        tool_ls::WORKLOAD,
        tool_cp::WORKLOAD,
    ]
}

/// The parts `names` select (a workload's name selects all its parts), in run order; every
/// part when `names` is empty. An unknown name is an error listing the known ones.
pub fn select(names: &[String]) -> Result<Vec<(&'static Workload, &'static str)>, String> {
    for n in names {
        let known = all()
            .iter()
            .any(|w| w.name == n || w.parts.contains(&n.as_str()));
        if !known {
            let list: Vec<&str> = all()
                .iter()
                .flat_map(|w| std::iter::once(w.name).chain(w.parts.iter().copied()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            return Err(format!(
                "unknown workload `{n}` (known: {})",
                list.join(", ")
            ));
        }
    }
    Ok(all()
        .iter()
        .flat_map(|w| w.parts.iter().map(move |p| (w, *p)))
        .filter(|(w, p)| names.is_empty() || names.iter().any(|n| n == w.name || n == p))
        .collect())
}

/// The tree `grep`, `du` and `cp` run on: 10 directories of 1,000 files of 8 KiB (× scale),
/// a fixed string placed in every seventh file.
pub(crate) fn tree_spec(ctx: &Ctx<'_>) -> TreeSpec {
    TreeSpec {
        name: "tree".into(),
        dirs: 10,
        files: ctx.scaled(1000.0, 1) as usize,
        file_size: 8192,
        pattern: PATTERN.to_vec(),
        match_every: 7,
    }
}

/// The string `grep` looks for (upper case: the corpus's text has none).
pub(crate) const PATTERN: &[u8] = b"COSY_NEEDLE";

/// Bound of the getdents64 loops (calls per directory).
pub(crate) const WALK_BOUND: u32 = 1 << 20;

/// Size of the getdents64 buffers.
pub(crate) const DENTS: u32 = 64 << 10;

/// `do { n = getdents64(dir, ents); if n > 0 { map e in dirents(ents[0..n]) { body } } }
/// while n > 0`: every entry of the directory open as `dir`.
pub(crate) fn walk(
    c: &mut Builder,
    dir: FdRef,
    ents: Buf,
    body: impl FnOnce(&mut Builder, Dirent),
) {
    c.do_while(WALK_BOUND, |c| {
        let n = c.getdents64(dir, ents);
        c.if_(n.gt(0), |c| c.map_dirents(ents.prefix(n), body));
        n.gt(0)
    });
}

/// `O_RDONLY | O_DIRECTORY`.
pub(crate) const O_DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// A path as the bytes a compound's data section holds.
pub(crate) fn bytes(p: &std::path::Path) -> Vec<u8> {
    p.as_os_str().as_encoded_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_workload_and_part() {
        let all_parts = select(&[]).unwrap();
        assert!(all_parts.len() >= 10);
        assert_eq!(all_parts[0].1, "burst");
        let ls = select(&["ls".into()]).unwrap();
        assert_eq!(
            ls.iter().map(|p| p.1).collect::<Vec<_>>(),
            ["ls-5k", "ls-50k"]
        );
        let one = select(&["bonnie-read".into(), "du".into()]).unwrap();
        assert_eq!(
            one.iter().map(|p| p.1).collect::<Vec<_>>(),
            ["bonnie-read", "du"]
        );
        let err = select(&["nope".into()]).unwrap_err();
        assert!(
            err.contains("unknown workload `nope`") && err.contains("grep"),
            "{err}"
        );
    }
}

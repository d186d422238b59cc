//! `tool-ls`: the `cosy ls` tool against GNU `ls`, both run as whole processes: `ls -l` of a
//! flat directory of 50,000 files (`tool-ls-50k`) and `ls -lR` of the three corpus shapes
//! (`tool-ls-wide`, `tool-ls-many`, `tool-ls-mixed`), warm cache. The answer is the number of
//! lines printed (the outputs are byte-identical, so the counts agree). Without the `cosy`
//! binary (`Ctx::tools`) its variant is skipped with a note.

use std::io;
use std::path::PathBuf;

use super::{Ctx, PATTERN, Workload};
use crate::cache::Cache;
use crate::corpus::Shape;
use crate::external::tool;
use crate::framework::{Answer, Case, Entry, answer};

/// The tool-ls workload.
pub const WORKLOAD: Workload = Workload {
    name: "tool-ls",
    parts: &[
        "tool-ls-50k",
        "tool-ls-wide",
        "tool-ls-many",
        "tool-ls-mixed",
    ],
    about: "cosy ls -l / -lR against GNU ls: 50,000 files flat, and the wide, many, mixed trees",
    build,
};

/// The number of lines of a listing.
fn lines(out: &str) -> Result<Answer, String> {
    Ok(answer(&[("lines", out.lines().count() as i64)]))
}

fn build(ctx: &mut Ctx<'_>, part: &str) -> io::Result<Vec<Case>> {
    let (dir, flag, files): (PathBuf, &str, u64) = match part {
        "tool-ls-50k" => {
            let files = ctx.scaled(50_000.0, 3);
            let (dir, _) = ctx.corpus.flat_dir(part, files as usize)?;
            (dir, "-l", files)
        }
        _ => {
            let shape = match part {
                "tool-ls-wide" => Shape::Wide,
                "tool-ls-many" => Shape::Many,
                _ => Shape::Mixed,
            };
            let t = ctx.corpus.shape(shape, ctx.scale, PATTERN)?;
            (t.root, "-lR", t.files)
        }
    };
    let cosy = match ctx.tools {
        Some(bin) => tool(
            &format!("cosy ls {flag}"),
            &bin.to_string_lossy(),
            &[&"ls", &flag, &dir],
            lines,
        ),
        None => Entry::Skipped {
            name: format!("cosy ls {flag}"),
            reason: "no cosy binary to run (Config::tools)".into(),
        },
    };
    let gnu = tool(&format!("ls {flag}"), "ls", &[&flag, &dir], lines);
    let case = Case::new(part)
        .param("files", files)
        .cache(Cache::Warm)
        .entry(gnu)
        .entry(cosy);
    Ok(vec![case])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted() {
        assert_eq!(lines("total 0\na\nb\n").unwrap(), answer(&[("lines", 3)]));
    }
}

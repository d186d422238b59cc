//! `tool-du`: `cosy du -sb` as a whole process against GNU `du -sb` and `diskus` on the three
//! corpus shapes (wide, many, mixed), warm (and cold for the wide tree). The answer is the
//! apparent size of the tree, directories included, each file counted once: `du -sb`'s total,
//! and diskus's with `-b --directories included`.

use std::io;

use super::{Ctx, Workload};
use crate::cache::Cache;
use crate::corpus::Shape;
use crate::external::tool;
use crate::framework::{Answer, Case, answer};

/// The tool-du workload.
pub const WORKLOAD: Workload = Workload {
    name: "tool-du",
    parts: &["tool-du-wide", "tool-du-many", "tool-du-mixed"],
    about: "cosy du -sb against GNU du -sb and diskus on the wide, many and mixed trees",
    build,
};

/// The first number of a line (`du -sb`: `BYTES<tab>DIR`; diskus: `BYTES`).
fn parse_total(out: &str) -> Result<Answer, String> {
    let n = out
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("cannot read a size in `{}`", out.trim()))?;
    Ok(answer(&[("bytes", n)]))
}

fn build(ctx: &mut Ctx<'_>, part: &str) -> io::Result<Vec<Case>> {
    let shape = match part {
        "tool-du-many" => Shape::Many,
        "tool-du-mixed" => Shape::Mixed,
        _ => Shape::Wide,
    };
    let tree = ctx.corpus.shape(shape, ctx.scale, super::PATTERN)?;
    let caches: &[Cache] = if shape == Shape::Wide {
        &[Cache::Warm, Cache::Cold]
    } else {
        &[Cache::Warm]
    };
    let mut cases = Vec::new();
    for &cache in caches {
        let root = tree.root.clone();
        let mut case = Case::new(part)
            .param("shape", shape.name())
            .param("files", tree.files)
            .cache(cache);
        case = match ctx.tools {
            Some(cosy) => {
                let cosy = cosy.to_string_lossy().into_owned();
                case.entry(tool(
                    "cosy du -sb",
                    &cosy,
                    &[&"du", &"-sb", &root],
                    parse_total,
                ))
            }
            None => case.entry(crate::framework::Entry::Skipped {
                name: "cosy du -sb".into(),
                reason: "no cosy binary to run (Config::tools)".into(),
            }),
        };
        case = case.entry(tool("du -sb", "du", &[&"-sb", &root], parse_total));
        case = case.entry(tool(
            "diskus",
            "diskus",
            &[&"-b", &"--directories", &"included", &root],
            parse_total,
        ));
        cases.push(case);
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_parsed_from_du_and_diskus() {
        assert_eq!(
            parse_total("8220\t/tmp/a\n").unwrap(),
            answer(&[("bytes", 8220)])
        );
        assert_eq!(parse_total("8220\n").unwrap(), answer(&[("bytes", 8220)]));
        assert!(parse_total("").is_err());
    }
}

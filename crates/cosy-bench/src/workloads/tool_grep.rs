//! `tool-grep`: the `cosy grep` tool as a whole process against its peers, on the three
//! corpus shapes (`tool-grep-wide`, `tool-grep-many`, `tool-grep-mixed`): `cosy grep -j1`,
//! `cosy grep` (the machine's cores), `rg -j1`, `rg` and GNU `grep -r`, each printing the
//! lines holding the corpus's fixed string. The answer is the number of lines printed: every
//! tool must find the same ones. `cosy` is the binary of `Ctx::tools` (skipped without it);
//! a peer that is not installed is skipped with a note.

use std::io;
use std::path::Path;

use super::{Ctx, PATTERN, Workload};
use crate::corpus::Shape;
use crate::external::{AsRefOs, tool_with_codes};
use crate::framework::{Answer, Case, Entry, answer};

/// The tool-grep workload.
pub const WORKLOAD: Workload = Workload {
    name: "tool-grep",
    parts: &["tool-grep-wide", "tool-grep-many", "tool-grep-mixed"],
    about: "cosy grep against rg and grep -r on the three corpus shapes (matching lines)",
    build,
};

/// One line printed per matching line, by every variant.
fn parse_lines(out: &str) -> Result<Answer, String> {
    Ok(answer(&[("lines", out.lines().count() as i64)]))
}

/// The flags that make rg print what `cosy grep` prints (but in the order it finds them).
const RG: &[&str] = &[
    "--no-ignore",
    "--hidden",
    "--no-heading",
    "--with-filename",
    "--color",
    "never",
    "-F",
];

fn build(ctx: &mut Ctx<'_>, part: &str) -> io::Result<Vec<Case>> {
    let shape = match part {
        "tool-grep-many" => Shape::Many,
        "tool-grep-mixed" => Shape::Mixed,
        _ => Shape::Wide,
    };
    let tree = ctx.corpus.shape(shape, ctx.scale, PATTERN)?;
    let root: &Path = &tree.root;
    let pattern = std::str::from_utf8(PATTERN).map_err(io::Error::other)?;
    let mut case = Case::new(part)
        .param("shape", shape.name())
        .param("files", tree.files)
        .param("bytes", tree.bytes);
    for (name, threads) in [("cosy grep -j1", Some("-j1")), ("cosy grep", None)] {
        let entry = match ctx.tools.and_then(|p| p.to_str()) {
            None => Entry::Skipped {
                name: name.into(),
                reason: "no cosy binary to run (Config::tools)".into(),
            },
            Some(cosy) => {
                let mut args: Vec<&dyn AsRefOs> = vec![&"grep"];
                if let Some(j) = &threads {
                    args.push(j);
                }
                args.extend([&"-F" as &dyn AsRefOs, &pattern, &root]);
                tool_with_codes(name, cosy, &args, parse_lines, &[0, 1])
            }
        };
        case = case.entry(entry);
    }
    for (name, threads) in [("rg -j1", Some("-j1")), ("rg", None)] {
        let mut args: Vec<&dyn AsRefOs> = RG.iter().map(|s| s as &dyn AsRefOs).collect();
        if let Some(j) = &threads {
            args.push(j);
        }
        args.extend([&pattern as &dyn AsRefOs, &root]);
        case = case.entry(tool_with_codes(name, "rg", &args, parse_lines, &[0, 1]));
    }
    case = case.entry(tool_with_codes(
        "grep -r",
        "grep",
        &[&"-rF", &pattern, &root],
        parse_lines,
        &[0, 1],
    ));
    Ok(vec![case])
}

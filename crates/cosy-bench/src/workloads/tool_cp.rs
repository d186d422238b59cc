//! `tool-cp`: the `cosy cp -a` tool as a whole process against GNU `cp -a` and `xcp -r`, on
//! the three corpus shapes, on the disk (the corpus's directory) and on `/dev/shm` when it
//! exists. Before every run (untimed) the destination is removed; after it the copy is
//! checked (files, bytes, every file identical to its source): all variants agree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::cp::verify_copy;
use super::{Ctx, Workload};
use crate::corpus::{Corpus, Shape};
use crate::external::tool;
use crate::framework::{Answer, Case, Entry, answer};

/// The tool-cp workload.
pub const WORKLOAD: Workload = Workload {
    name: "tool-cp",
    parts: &[
        "tool-cp-wide",
        "tool-cp-many",
        "tool-cp-mixed",
        "tool-cp-wide-shm",
        "tool-cp-many-shm",
        "tool-cp-mixed-shm",
    ],
    about: "cosy cp -a, cp -a and xcp -r copying the three corpus shapes",
    build,
};

fn shape_of(part: &str) -> Shape {
    if part.contains("many") {
        Shape::Many
    } else if part.contains("mixed") {
        Shape::Mixed
    } else {
        Shape::Wide
    }
}

fn remove(dst: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dst) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn build(ctx: &mut Ctx<'_>, part: &str) -> io::Result<Vec<Case>> {
    let shm = part.ends_with("-shm");
    let shape = shape_of(part);
    // On /dev/shm the corpus is a second one, kept alive by the case's hooks.
    let own: Option<Rc<std::cell::RefCell<Corpus>>> = if shm {
        if !Path::new("/dev/shm").is_dir() {
            return Ok(Vec::new());
        }
        Some(Rc::new(std::cell::RefCell::new(Corpus::new(Some(
            Path::new("/dev/shm"),
        ))?)))
    } else {
        None
    };
    let (tree, dst): (_, PathBuf) = match &own {
        Some(c) => {
            let mut c = c.borrow_mut();
            let t = c.shape(shape, ctx.scale, b"COSY")?;
            (t, c.scratch(&format!("{part}-dst")))
        }
        None => {
            let t = ctx.corpus.shape(shape, ctx.scale, b"COSY")?;
            (t, ctx.corpus.scratch(&format!("{part}-dst")))
        }
    };
    let src = tree.root.clone();
    let (d0, keep) = (dst.clone(), own.clone());
    let (s1, d1) = (src.clone(), dst.clone());
    let none = |_: &str| Ok(Answer::new());
    let mut case = Case::new(part)
        .param("files", tree.files)
        .param("bytes", tree.bytes)
        .reset(move || {
            let _ = &keep;
            remove(&d0)
        })
        .check(move || verify_copy(&s1, &d1))
        .expect(answer(&[
            ("files", tree.files as i64),
            ("bytes", tree.bytes as i64),
            ("identical", 1),
        ]))
        .entry(tool("cp -a", "cp", &[&"-a", &src, &dst], none));
    case = match ctx.tools {
        Some(cosy) => {
            let program = cosy.to_string_lossy().into_owned();
            case.entry(tool(
                "cosy cp -a",
                &program,
                &[&"cp", &"-a", &src, &dst],
                none,
            ))
        }
        None => case.entry(Entry::Skipped {
            name: "cosy cp -a".into(),
            reason: "no cosy binary to run (Ctx::tools)".into(),
        }),
    };
    case = case.entry(tool("xcp -r", "xcp", &[&"-r", &src, &dst], none));
    if let Some(c) = own {
        // The corpus on /dev/shm is removed with the last hook that holds it.
        drop(c);
    }
    Ok(vec![case])
}

//! The typed builder end to end, with `cosy` as the only dependency: one compound lists a
//! directory, adds up the sizes of its regular files (statx), counts the lines of each
//! (read in a loop, a built-in function) and the occurrences of a word in the first block of
//! each (a user function with two operands); it is verified, run, and its outputs printed.
//!
//! `cargo run -p cosy --example typed [DIR]` (default: a directory it makes and removes).

use std::path::PathBuf;

use cosy::flags::{AtFlags, DirentType, Mode, OFlags, STATX_SIZE_OFFSET, StatxFlags};
use cosy::{Builder, FdRef, FnArgs, Functions, Policy, RunOptions, Width};

/// Bytes of one read, and of the directory listing.
const BLOCK: u32 = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, made) = match std::env::args_os().nth(1) {
        Some(d) => (std::fs::canonicalize(d)?, false),
        None => (sample_dir()?, true),
    };

    let mut c = Builder::new();
    let path = c.input_path("dir", dir.as_os_str().as_encoded_bytes());
    let word = c.data("cosy");
    let ents = c.buffer("ents", 1 << 16);
    let st = c.local_buffer("st", 256);
    let block = c.local_buffer("block", BLOCK);
    let (files, bytes, lines, words) = (
        c.value("files", 0),
        c.value("bytes", 0),
        c.value("lines", 0),
        c.value("words", 0),
    );

    let d = c.openat(
        FdRef::Cwd,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let len = c.getdents64(d, ents);
    c.map_dirents(ents.prefix(len), |c, e| {
        c.if_(e.kind.eq(DirentType::Reg), |c| {
            c.accumulate(files, 1);
            c.statx(d, e.name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::SIZE, st);
            let size = c.load(Width::U64, st, STATX_SIZE_OFFSET as i64);
            c.accumulate(bytes, size);

            let f = c.openat(d, e.name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty());
            // The first block: words in it, with a function of two operands.
            let n = c.read(f, block);
            let k = c.call("occurrences", (block.prefix(n), word));
            c.accumulate(words, k);
            // Then every block: a loop that leaves on a short read.
            c.lseek(f, 0, cosy::flags::Whence::Set);
            c.loop_(1 << 20, |c, l| {
                let n = c.read(f, block);
                let k = c.call("count_lines", block.prefix(n));
                c.accumulate(lines, k);
                c.break_if(l, n.lt(block.len()));
            });
            c.close(f);
        });
    });
    c.close(d);
    for (name, r) in [
        ("files", files),
        ("bytes", bytes),
        ("lines", lines),
        ("words", words),
    ] {
        c.output(name, r);
    }

    let mut functions = Functions::new();
    functions.register("occurrences", |args: &FnArgs| {
        args.arity(2)?;
        let (hay, needle) = (args.bytes(0)?, args.bytes(1)?);
        if needle.is_empty() {
            return Ok(0);
        }
        Ok(hay.windows(needle.len()).filter(|w| *w == needle).count() as i64)
    });
    // Reads only, beneath the directory, and the one user function.
    let mut policy = Policy::read_only(&dir);
    policy.functions.insert("occurrences".into());
    let opts = RunOptions {
        functions,
        ..RunOptions::default()
    };
    let result = cosy::verify(c.finish(), &policy)
        .map_err(|p| p.to_string())
        .and_then(|v| cosy::run(&v, &opts).map_err(|e| e.to_string()));
    if made {
        std::fs::remove_dir_all(&dir)?;
    }
    let out = result?;
    for (name, value) in out.iter() {
        println!("{name} {value}");
    }
    Ok(())
}

/// A directory with two small files and a subdirectory (which the compound skips).
fn sample_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cosy-typed-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub"))?;
    std::fs::write(dir.join("a.txt"), "cosy runs\ncompound calls\ncosy\n")?;
    std::fs::write(dir.join("b.txt"), "one line\n".repeat(1000))?;
    Ok(dir)
}

//! `cosy grep`: recursive search with ripgrep's output
//! (`rg --no-ignore --hidden --no-heading --with-filename --sort path --color never`) and
//! grep's flags, its file work done by sessions: the walk (`tools/walk.rs`) reads each
//! directory, then the directory's files are opened relative to it and read in batches, by
//! every thread, each with a session of its own.

mod args;
mod binary;
mod files;
mod matcher;
mod output;
mod pool;
mod search;
mod sink;
mod tree;

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cosy_exec::Backend;
use cosy_exec::session::{Session, SessionOptions};
use cosy_model::Policy;

use args::Args;
use files::Reader;
use matcher::{Matcher, Syntax};
use output::{Binary, Format};
use pool::Pool;
use search::{Out, Searcher, file_error, walk_error};
use sink::Sink;

/// Runs `grep` with `argv` (its name first); the exit code: 0 a match, 1 none, 2 an error.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("grep: {message}");
            ExitCode::from(2)
        }
    }
}

/// The backend of the sessions: `direct` unless `COSY_GREP_BACKEND=ring` (on this machine
/// the two cost the same per file, and a ring takes milliseconds to set up).
fn backend() -> Backend {
    match std::env::var("COSY_GREP_BACKEND").as_deref() {
        Ok("ring") => Backend::Ring,
        _ => Backend::Direct,
    }
}

/// Descriptors the process may open (`RLIMIT_NOFILE`).
fn fd_limit() -> usize {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn run(args: Args) -> Result<u8, String> {
    let mut operands = args.operands.clone();
    let patterns: Vec<String> = if args.patterns.is_empty() {
        if operands.is_empty() {
            return Err("no pattern given (usage: grep [OPTIONS] PATTERN [PATH...])".into());
        }
        let p = operands.remove(0);
        vec![
            p.into_string()
                .map_err(|p| format!("the pattern {p:?} is not valid UTF-8"))?,
        ]
    } else {
        args.patterns.clone()
    };
    let syntax = Syntax {
        fixed: args.fixed,
        ignore_case: args.ignore_case,
        word: args.word,
    };
    let matcher = Matcher::new(&patterns, syntax)?;
    let format = Format {
        mode: args.mode(),
        invert: args.invert,
        line_number: args.line_number,
        with_filename: !args.no_filename,
    };
    let searcher = Arc::new(Searcher { matcher, format });
    let threads = args
        .threads
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Descriptors: the walk's open directories, and each thread's batch of files and its
    // directory, within the process's limit (`ulimit -n 64` is enough).
    let budget = fd_limit().saturating_sub(12).max(8);
    let max_open = (budget / 4).clamp(2, 24);
    // Each thread holds at least a file and its directory open at once.
    let threads = threads.min(((budget - max_open) / 3).max(1));
    let batch = ((budget - max_open) / threads)
        .saturating_sub(2)
        .clamp(1, 32);
    let backend = backend();
    // Paths given are read one at a time; the readers of batches and the other threads
    // are set up at the first directory (a session's arena takes time to set up).
    let mut reader = Reader::new(backend, 1)?;
    let mut walking: Option<(Reader, Pool)> = None;
    let mut sink = Sink::default();
    let implicit = operands.is_empty();
    let paths: Vec<PathBuf> = if implicit {
        vec![PathBuf::from(".")]
    } else {
        operands.into_iter().map(PathBuf::from).collect()
    };
    // ripgrep maps up to ten files given into memory, and reads anything else through its
    // line buffer: NUL bytes are then treated differently.
    let few_files = paths.len() <= 10
        && paths
            .iter()
            .all(|p| p.as_os_str() != "-" && reader.kind_of(p) == Ok(libc::S_IFREG));
    let opts = crate::tools::walk::Options {
        max_open,
        follow: false,
    };
    let mut next_id = 0;
    for path in &paths {
        if sink.closed {
            break;
        }
        let shown = path.as_os_str().as_bytes();
        let mut out = Out::default();
        if shown == b"-" {
            match reader.read_stdin() {
                Ok(d) => searcher.given(b"<stdin>", &d, Binary::Convert, &mut out),
                Err(e) => out.error(&file_error(b"<stdin>", e)),
            }
            sink.write(out);
            continue;
        }
        let binary = if few_files {
            Binary::Whole
        } else {
            Binary::Convert
        };
        match reader.kind_of(path) {
            Err(e) => out.error(&walk_error(shown, e)),
            Ok(libc::S_IFDIR) => {
                if walking.is_none() {
                    let pool = Pool::new(threads - 1, Arc::clone(&searcher), move || {
                        Reader::new(backend, batch)
                    });
                    walking = Some((Reader::new(backend, batch)?, pool));
                }
                let Some((tree_reader, pool)) = walking.as_mut() else {
                    continue;
                };
                let mut s =
                    Session::with_options(backend, &Policy::trusted(), SessionOptions::default())
                        .map_err(|e| e.to_string())?;
                let t = tree::TreeSearch::new(
                    &searcher,
                    tree_reader,
                    pool,
                    &mut sink,
                    implicit,
                    batch,
                    &mut next_id,
                );
                t.run(&mut s, path, &opts);
            }
            // A FIFO is never opened (no hang); a socket cannot be (ripgrep's open says
            // ENXIO).
            Ok(libc::S_IFIFO) => {}
            Ok(libc::S_IFSOCK) => out.error(&file_error(shown, libc::ENXIO)),
            Ok(_) => match reader.read_path(Path::new(path)) {
                Ok(d) => searcher.given(shown, &d, binary, &mut out),
                Err(e) => out.error(&file_error(shown, e)),
            },
        }
        sink.write(out);
    }
    drop(walking);
    sink.flush();
    Ok(if sink.failed {
        2
    } else if sink.matched {
        0
    } else {
        1
    })
}

//! The benchmarks behind `cosy bench`: the evaluation of the Cosy thesis (§4.2 and §4.3) on
//! today's Linux, plus `du` and `cp`.
//!
//! Each workload writes its corpus once into a temporary directory, then measures *variants*
//! of the same job side by side: `vanilla` (plain std/libc code written the ordinary way), the
//! same job as a compound built with [`cosy_model::Builder`] and run by cosy's executors
//! (`direct`, `ring`, `auto`; verified under [`cosy_model::Policy::trusted`] and optimized by
//! cosy-opt's default passes), and where it makes sense a hand-written io_uring loop or a real
//! tool (`grep`, `rg`, GNU `du`, `ls`, `cp`; skipped with a note when not installed). Rounds
//! rotate the order of the variants; the median of `runs` rounds is reported. Every variant
//! returns an answer (a count, a checksum, a size) and all variants of a case must agree: a
//! benchmark that computes different answers fails, naming the culprit.
//!
//! | workload | what |
//! |---|---|
//! | `burst` | N = 1 … 1024 independent nops / 1-byte preads; nanoseconds per operation |
//! | `database` | random page reads and writes (2:1) at offsets from a user function |
//! | `bonnie-write`, `bonnie-rewrite`, `bonnie-read` | Bonnie's block phases, 4 KiB blocks |
//! | `ls-5k`, `ls-50k` | `ls -l`: getdents64 + statx of every entry, warm and cold cache |
//! | `grep` | a fixed string in 10,000 files of 8 KiB |
//! | `du` | apparent size of the same tree, warm and cold cache |
//! | `cp` | a copy of the same tree |
//!
//! Results come as [`Record`]s: printed as tables ([`table`]), streamed as JSON lines
//! ([`JsonLines`]), or written as a report directory with SVG charts ([`write_report`]).
//! Cold-cache cases drop the page cache before every timed run (`sync; echo 3 >
//! /proc/sys/vm/drop_caches`); where that is not allowed they run warm and say so in their
//! records (`"cache": "warm (cannot drop caches: …)"`).
//!
//! ```no_run
//! use cosy_bench::{Config, JsonLines, run, table};
//!
//! let config = Config {
//!     runs: 3,
//!     scale: 0.1,
//!     workloads: vec!["grep".into(), "ls-5k".into()],
//!     ..Config::default()
//! };
//! // Records stream to stdout as JSON lines while the benchmark runs...
//! let records = run(&config, &mut JsonLines(std::io::stdout())).expect("benchmark");
//! // ...and the tables summarise them at the end.
//! eprintln!("{}", table(&records));
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod corpus;
pub mod exec;
pub mod external;
pub mod framework;
mod measure;
pub mod report;
pub mod workloads;

pub use cache::Cache;
pub use framework::{Answer, Case, Config, Counts, Entry, Record, Sink, Variant, VariantError};
pub use report::json::JsonLines;
pub use report::table::render as table;
pub use report::write_report;
pub use workloads::Workload;

use corpus::Corpus;
use measure::{Progress, run_case};
use workloads::Ctx;

/// Why a benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be run (no rounds, a scale that is not a positive number, an
    /// unknown workload).
    #[error("{0}")]
    Config(String),
    /// The corpus directory could not be made.
    #[error("cannot create the corpus directory: {0}")]
    Corpus(#[from] std::io::Error),
    /// The benchmark ran, but something is wrong with it: variants disagree on an answer, a
    /// baseline or the direct executor failed, a corpus could not be written. The records of
    /// everything that ran are here, the faulty ones marked.
    #[error("the benchmark is wrong:\n  {}", .problems.join("\n  "))]
    Problems {
        /// Every problem, one per line.
        problems: Vec<String>,
        /// The records of everything that ran.
        records: Vec<Record>,
    },
}

/// Runs the workloads `config` selects; each record is also given to `sink` as soon as it is
/// measured, and each note (a skipped variant, a cache that could not be dropped).
///
/// Fails before running anything on a bad configuration, and after running everything if any
/// case went wrong ([`Error::Problems`], which still holds the records).
pub fn run(config: &Config, sink: &mut dyn Sink) -> Result<Vec<Record>, Error> {
    if config.runs == 0 {
        return Err(Error::Config("--runs must be at least 1".into()));
    }
    if !(config.scale.is_finite() && config.scale > 0.0) {
        return Err(Error::Config(format!(
            "--scale must be a positive number, not {}",
            config.scale
        )));
    }
    let parts = workloads::select(&config.workloads).map_err(Error::Config)?;
    let mut corpus = Corpus::new(config.dir.as_deref())?;
    sink.note(&format!(
        "corpus in {} on {}",
        corpus.path().display(),
        corpus::describe_fs(corpus.path())
    ));
    let progress = Progress::new(config.progress);
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (workload, part) in parts {
        let mut ctx = Ctx {
            corpus: &mut corpus,
            scale: config.scale,
            tools: config.tools.as_deref(),
        };
        let cases = match (workload.build)(&mut ctx, part) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("{part}: cannot build the corpus: {e}");
                progress.suspend(|| sink.note(&msg));
                problems.push(msg);
                continue;
            }
        };
        for case in cases {
            let r = run_case(case, config.runs, &progress);
            progress.suspend(|| {
                for n in &r.notes {
                    sink.note(n);
                }
                for rec in &r.records {
                    sink.record(rec);
                }
            });
            records.extend(r.records);
            problems.extend(r.problems);
        }
    }
    progress.finish();
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(Error::Problems { problems, records })
    }
}

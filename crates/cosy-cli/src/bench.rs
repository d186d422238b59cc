//! `cosy bench`: the thesis's evaluation, reproduced side by side on this machine.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use cosy_bench::{Config, Error, JsonLines, Record, Sink, run, table, write_report};

use crate::Failure;

/// Arguments of `cosy bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workloads to run (all when none is named): burst, database, bonnie, ls, grep, du, cp.
    workloads: Vec<String>,
    /// Rounds per workload; each variant's median over them is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Multiplies the corpus sizes (0.1 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Print one JSON record per line instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write a markdown report with SVG charts into this directory.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

struct Notes;

impl Sink for Notes {
    fn note(&mut self, note: &str) {
        eprintln!("note: {note}");
    }
}

/// `cosy bench`.
pub fn bench(args: &BenchArgs) -> Result<(), Failure> {
    if args.runs == 0 {
        return Err(Failure::invalid("--runs must be at least 1"));
    }
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        return Err(Failure::invalid(format!(
            "--scale {} is not a positive number",
            args.scale
        )));
    }
    let config = Config {
        runs: args.runs,
        scale: args.scale,
        workloads: args.workloads.clone(),
        progress: std::io::stderr().is_terminal() && !args.json,
        tools: std::env::current_exe().ok(),
        ..Config::default()
    };
    let started = Instant::now();
    let result = if args.json {
        run(&config, &mut JsonLines(std::io::stdout()))
    } else {
        run(&config, &mut Notes)
    };
    let (records, problems): (Vec<Record>, Option<String>) = match result {
        Ok(records) => (records, None),
        Err(Error::Problems { problems, records }) => (records, Some(problems.join("\n"))),
        Err(e) => return Err(Failure::failed(format!("bench: {e}"))),
    };
    if !args.json {
        println!("{}", table(&records));
        println!("total time: {:.1} s", started.elapsed().as_secs_f64());
    }
    if let Some(dir) = &args.report {
        let files = write_report(dir, &records).map_err(|e| {
            Failure::failed(format!("cannot write the report in {}: {e}", dir.display()))
        })?;
        if let Some(first) = files.first() {
            eprintln!("report: {}", first.display());
        }
    }
    match problems {
        None => Ok(()),
        Some(p) => Err(Failure::failed(format!(
            "bench: variants disagree or failed:\n{p}"
        ))),
    }
}

//! Runs the whole benchmark (or the workloads named as arguments) and prints the tables.
//!
//! ```sh
//! cargo run --release -p cosy-bench --example bench [WORKLOAD...] [--runs N] [--scale F] [--report DIR] [--json]
//! ```

use std::time::Instant;

use cosy_bench::{Config, Error, JsonLines, Record, Sink, run, table, write_report};

struct Notes;

impl Sink for Notes {
    fn note(&mut self, note: &str) {
        eprintln!("note: {note}");
    }
}

fn main() {
    let mut config = Config {
        progress: true,
        ..Config::default()
    };
    let mut report = None;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => config.runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--scale" => {
                config.scale = args.next().and_then(|v| v.parse().ok()).expect("--scale F")
            }
            "--report" => report = Some(args.next().expect("--report DIR")),
            "--json" => json = true,
            w => config.workloads.push(w.to_string()),
        }
    }
    let t0 = Instant::now();
    let result = if json {
        run(&config, &mut JsonLines(std::io::stdout()))
    } else {
        run(&config, &mut Notes)
    };
    let (records, failed): (Vec<Record>, Option<String>) = match result {
        Ok(r) => (r, None),
        Err(Error::Problems { problems, records }) => (records, Some(problems.join("\n"))),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    println!("{}", table(&records));
    println!("total time: {:.1} s", t0.elapsed().as_secs_f64());
    if let Some(dir) = report {
        match write_report(std::path::Path::new(&dir), &records) {
            Ok(files) => eprintln!("report: {}", files[0].display()),
            Err(e) => eprintln!("cannot write the report: {e}"),
        }
    }
    if let Some(p) = failed {
        eprintln!("problems:\n{p}");
        std::process::exit(1);
    }
}

//! `cosy trace`: count and time every system call of a program, find its bursts and the
//! sequences worth a compound, and sketch the compounds.
//!
//! Exit codes: the traced program's status (or 128 + the signal that ended it; 0 when
//! attached); 2 when the command line is wrong; 1 when tracing failed (no such program or
//! process, no permission).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use cosy_trace::report::{Config, Report};
use cosy_trace::suggest::Defaults;
use cosy_trace::{Mechanism, Options, Target, bursts};

/// Arguments of `cosy trace`.
#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Follow threads and child processes.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Write the report to FILE instead of standard error.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long)]
    json: bool,
    /// Add compound skeletons (cosy's text format) for the top sequences.
    #[arg(long)]
    suggest: bool,
    /// Attach to this running process instead of starting a command.
    #[arg(short = 'p', long, value_name = "PID")]
    pid: Option<i32>,
    /// Trace with ptrace even where perf_event is permitted.
    #[arg(long, conflicts_with = "perf")]
    ptrace: bool,
    /// Trace with perf_event only (fail rather than fall back to ptrace).
    #[arg(long)]
    perf: bool,
    /// Largest user time between two calls of one burst, in microseconds.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 5.0)]
    gap: f64,
    /// How many recurring sequences to report.
    #[arg(long, value_name = "N", default_value_t = 5)]
    sequences: usize,
    /// Trace only these calls (comma-separated names, as in the table).
    #[arg(long, value_name = "CALLS", value_delimiter = ',')]
    calls: Vec<String>,
    /// Pages of each per-CPU perf ring buffer.
    #[arg(long, value_name = "PAGES", default_value_t = 2048)]
    buffer: usize,
    /// The command to run and its arguments (after `--`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// `cosy trace`.
pub fn trace(args: &TraceArgs) -> ExitCode {
    let target = match (&args.pid, args.command.is_empty()) {
        (Some(_), false) => return usage("give either a command or -p PID, not both"),
        (None, true) => return usage("nothing to trace: give a command after `--`, or -p PID"),
        (Some(pid), true) if *pid <= 0 => return usage(&format!("-p {pid}: not a process id")),
        (Some(pid), true) => Target::Pid(*pid),
        (None, false) => Target::Command(args.command.clone()),
    };
    if !(args.gap >= 0.0 && args.gap.is_finite()) {
        return usage(&format!("--gap {}: not a duration", args.gap));
    }
    let mut calls = Vec::new();
    for name in &args.calls {
        match cosy_trace::calls::number(name.trim()) {
            Some(nr) => calls.push(nr),
            None => return usage(&format!("--calls: no system call is named `{name}`")),
        }
    }
    match run(args, target, (!calls.is_empty()).then_some(calls)) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("cosy trace: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("cosy trace: {message}");
    ExitCode::from(2)
}

fn run(args: &TraceArgs, target: Target, calls: Option<Vec<u32>>) -> anyhow::Result<i32> {
    let defaults = match &target {
        Target::Command(argv) => Defaults::from_args(argv),
        Target::Pid(_) => Defaults::default(),
    };
    let options = Options {
        follow: args.follow,
        mechanism: if args.ptrace {
            Some(Mechanism::Ptrace)
        } else if args.perf {
            Some(Mechanism::Perf)
        } else {
            None
        },
        buffer_pages: args.buffer,
        calls,
        ..Options::new(target)
    };
    cosy_trace::child::catch_interrupts();
    let traced = cosy_trace::trace(&options)?;
    let config = Config {
        bursts: bursts::Config {
            gap_ns: (args.gap * 1e3) as u64,
            sequences: args.sequences,
            ..bursts::Config::default()
        },
        suggest: if args.suggest { 3 } else { 0 },
        defaults,
    };
    let report = Report::build(&traced, &config, &cosy_trace::Calibration::cached());
    let text = if args.json {
        report.json() + "\n"
    } else {
        report.text()
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => eprint!("{text}"),
    }
    Ok(traced.exit.unwrap_or(0))
}

//! `cosy`: run, check and print compounds, and benchmark them.
//!
//! Exit codes: 0 success; 1 the compound ran and failed (a call failed in stop mode, fuel or
//! time ran out, a range was out of bounds); 2 the compound could not be loaded or verified, or
//! the command line was wrong.

mod bench;
mod load;
mod run;
mod tools;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Compound system calls: describe a burst of system calls once, run it with as few kernel
/// transitions as the machine allows.
#[derive(Parser)]
#[command(
    name = "cosy",
    version,
    about,
    after_help = "Tools: `cosy grep`, `cosy du`, `cosy ls`, `cosy cp` (or `cosy` run through a \
                  link named grep, du, ls or cp), each with its own --help."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a compound file (text or binary) and print its named results.
    Run(run::RunArgs),
    /// Run the benchmarks: each workload by plain code and by cosy's executors, side by side.
    Bench(bench::BenchArgs),
    /// Verify a compound file under the policy and report every problem.
    Check(run::CheckArgs),
    /// Count and time every system call of a program; find the bursts worth a compound.
    Trace(trace::TraceArgs),
    /// Print a compound file (text or binary) in canonical text.
    Print {
        /// The compound file.
        file: PathBuf,
    },
    /// Write a compound file in the binary format.
    Encode {
        /// The compound file (text or binary).
        file: PathBuf,
        /// Where to write the binary form.
        output: PathBuf,
    },
}

/// A failure with the exit code it maps to.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// The compound could not be loaded or verified, or the arguments are wrong (exit 2).
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// The compound ran and failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some((tool, skip)) = tools::which(&args) {
        return tools::run(tool, args.into_iter().skip(skip).collect());
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Check(args) => run::check(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Trace(args) => return trace::trace(&args),
        Command::Print { file } => load::load(&file).map(|l| {
            print!("{}", cosy_format::text::print(&l.compound));
        }),
        Command::Encode { file, output } => load::load(&file).and_then(|l| {
            let bytes = cosy_format::binary::encode(&l.compound);
            std::fs::write(&output, bytes)
                .map_err(|e| Failure::invalid(format!("cannot write {}: {e}", output.display())))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("cosy: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

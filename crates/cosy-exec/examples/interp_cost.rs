//! The interpreter's own cost: one compound of N operations of one kind, run once, for an
//! instruction counter (callgrind) to measure.
//!
//! `cargo run --release -p cosy-exec --example interp_cost -- KIND N [direct|ring]`
//!
//! - `straight`: N straight-line `nop`s (a call the executor answers without a system call);
//! - `getppid`: N straight-line `getppid`s (a real system call, whose kernel side an
//!   instruction counter in user space does not see);
//! - `access`: N straight-line `faccessat2(cwd, "/", F_OK, 0)`s (a call with a path operand:
//!   what resolving a path costs);
//! - `map`: `map i in range(0, N, 1) { count = count + 1 }`;
//! - `nopmap`: `map i in range(0, N, 1) { nop; count = count + 1 }` (the burst benchmark's
//!   compound: on the ring, a window of concurrent iterations);
//! - `jump`: `i = 0; top: i = i + 1; if i < N goto top bound N`.
//!
//! Two runs with different N and the same kind differ only by the operations added, so the
//! difference of their instruction counts divided by the difference of N is the cost of one
//! operation, setup cancelled (scripts/interp-cost.sh does this).

use std::process::ExitCode;

use cosy_exec::{Backend, RunOptions};
use cosy_model::flags::{Access, AtFlags};
use cosy_model::{Builder, Compound, FdRef, Policy};

fn straight(n: u32, getppid: bool) -> Compound {
    let mut c = Builder::new();
    for _ in 0..n {
        if getppid {
            c.getppid();
        } else {
            c.nop();
        }
    }
    c.finish()
}

fn access(n: u32) -> Compound {
    let mut c = Builder::new();
    let root = c.path("/");
    for _ in 0..n {
        c.faccessat2(FdRef::Cwd, root, Access::EXISTS, AtFlags::empty());
    }
    c.finish()
}

fn map(n: u32, nop: bool) -> Compound {
    let mut c = Builder::new();
    let count = c.value("count", 0);
    c.map_range(0, i64::from(n), 1, |c, _| {
        if nop {
            c.nop();
        }
        c.accumulate(count, 1);
    });
    c.output("count", count);
    c.finish()
}

fn jump(n: u32) -> Compound {
    let mut c = Builder::new();
    let i = c.value("i", 0);
    c.do_while(n, |c| {
        c.accumulate(i, 1);
        i.lt(i64::from(n))
    });
    c.output("i", i);
    c.finish()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: interp_cost straight|getppid|access|map|nopmap|jump N [direct|ring]";
    let (Some(kind), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u32>().ok()),
    ) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let compound = match kind.as_str() {
        "straight" => straight(n, false),
        "getppid" => straight(n, true),
        "access" => access(n),
        "map" => map(n, false),
        "nopmap" => map(n, true),
        "jump" => jump(n),
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let backend = match args.get(2).map(String::as_str) {
        None | Some("direct") => Backend::Direct,
        Some("ring") => Backend::Ring,
        Some(_) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let verified = match cosy_verify::verify(compound, &Policy::trusted()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("interp_cost: the compound does not verify: {e:?}");
            return ExitCode::FAILURE;
        }
    };
    let opts = RunOptions {
        backend,
        ..RunOptions::default()
    };
    let outcome = cosy_exec::run(&verified, &opts);
    if !outcome.is_ok() {
        eprintln!("interp_cost: the run failed: {:?}", outcome.error);
        return ExitCode::FAILURE;
    }
    // What ran, so that a measurement shows it measured what it meant to.
    println!(
        "{kind} {n}: {} operations, {} system calls, {} ring operations, {} fallbacks, outputs {:?}",
        outcome.stats.ops,
        outcome.stats.syscalls,
        outcome.stats.ring_ops,
        outcome.stats.fallbacks,
        outcome.outputs
    );
    ExitCode::SUCCESS
}

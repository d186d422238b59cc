//! `cosy run` and `cosy check`: load a compound file, apply input overrides, verify it under
//! the policy, run it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use cosy_exec::{Backend, RunOptions};
use cosy_model::Policy;
use cosy_opt::{Optimized, Passes};
use cosy_verify::Verified;

use crate::Failure;
use crate::load::{Loaded, load};

/// The policy options shared by `run` and `check`.
#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Directory that the compound's paths cannot leave (`cwd` in the compound means it).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Allow only calls that change nothing on disk.
    #[arg(long)]
    read_only: bool,
    /// Largest number of operations executed.
    #[arg(long)]
    fuel: Option<u64>,
    /// Largest run time, in seconds.
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,
    /// Largest arena, in bytes (all buffers; map-local ones once per lane).
    #[arg(long, value_name = "BYTES")]
    arena_bytes: Option<u64>,
    /// Largest number of descriptors open at once.
    #[arg(long, value_name = "N")]
    open_fds: Option<u32>,
    /// Largest number of bytes written to descriptors, in all (the standard streams included).
    #[arg(long, value_name = "BYTES")]
    written_bytes: Option<u64>,
    /// Largest number of bytes written to the standard streams.
    #[arg(long, value_name = "BYTES")]
    output_bytes: Option<u64>,
}

/// Arguments of `cosy run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The compound file (text or binary).
    file: PathBuf,
    /// Input overrides, `NAME=VALUE`.
    #[arg(value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// Executor: direct (plain syscalls), ring (io_uring), auto (chosen per operation).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Run the compound as written, without the optimizer's rewrites.
    #[arg(long)]
    no_opt: bool,
    /// Threads per map whose body only reads (0: direct uses one, auto the machine's cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    workers: usize,
    /// Print statistics (calls, ring submissions, bytes, time) to standard error.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// Arguments of `cosy check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The compound file (text or binary).
    file: PathBuf,
    /// Input overrides, `NAME=VALUE`.
    #[arg(value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// Check the compound as written, as `cosy run --no-opt` would run it.
    #[arg(long)]
    no_opt: bool,
    #[command(flatten)]
    policy: PolicyArgs,
}

fn policy(args: &PolicyArgs) -> Result<Policy, Failure> {
    let root = args
        .root
        .canonicalize()
        .map_err(|e| Failure::invalid(format!("--root {}: {e}", args.root.display())))?;
    let mut policy = if args.read_only {
        Policy::read_only(root)
    } else {
        Policy::untrusted(root)
    };
    if let Some(fuel) = args.fuel {
        policy.fuel = fuel;
    }
    if let Some(secs) = args.time_limit {
        policy.time = Duration::try_from_secs_f64(secs)
            .map_err(|e| Failure::invalid(format!("--time-limit {secs}: {e}")))?;
    }
    if let Some(n) = args.arena_bytes {
        policy.arena_bytes = n;
    }
    if let Some(n) = args.open_fds {
        policy.open_fds = n;
    }
    if let Some(n) = args.written_bytes {
        policy.written_bytes = n;
    }
    if let Some(n) = args.output_bytes {
        policy.output_bytes = n;
    }
    Ok(policy)
}

fn prepare(file: &Path, inputs: &[String], policy: &Policy) -> Result<(Loaded, Verified), Failure> {
    let mut loaded = load(file)?;
    for assignment in inputs {
        let (name, value) = assignment.split_once('=').ok_or_else(|| {
            Failure::invalid(format!(
                "`{assignment}` is not an input override NAME=VALUE"
            ))
        })?;
        loaded
            .compound
            .set_input(name, value)
            .map_err(|e| Failure::invalid(format!("{}: {e}", file.display())))?;
    }
    let verified = cosy_verify::verify(loaded.compound.clone(), policy).map_err(|problems| {
        let problems = problems.with_lines(&loaded.op_lines);
        let n = problems.0.len();
        Failure::invalid(format!(
            "{}: {n} problem{} found by the verifier:\n{problems}",
            file.display(),
            if n == 1 { "" } else { "s" }
        ))
    })?;
    Ok((loaded, verified))
}

/// `cosy check`: what `cosy run` with the same arguments accepts — the compound verified under
/// the same policy, then the optimizer's rewrite verified again — so that exit 0 means `run`
/// will start it.
pub fn check(args: &CheckArgs) -> Result<(), Failure> {
    let policy = policy(&args.policy)?;
    let (_, verified) = prepare(&args.file, &args.inputs, &policy)?;
    let verified = if args.no_opt {
        verified
    } else {
        optimize(&args.file, verified, &policy)?.0
    };
    // What the executor refuses before a run (more fd slots than `--open-fds`), `run`'s
    // functions being the built-ins.
    cosy_exec::runnable(&verified, &cosy_exec::Functions::new())
        .map_err(|m| Failure::invalid(format!("{}: {m}", args.file.display())))?;
    println!(
        "{}: ok ({} operations, {} bytes of arena)",
        args.file.display(),
        verified.compound().ops.len(),
        verified.compound().arena_bytes()
    );
    Ok(())
}

/// `cosy run`.
pub fn run(args: &RunArgs) -> Result<(), Failure> {
    let backend: Backend = args
        .backend
        .parse()
        .map_err(|e| Failure::invalid(format!("--backend {}: {e}", args.backend)))?;
    let policy = policy(&args.policy)?;
    let (loaded, verified) = prepare(&args.file, &args.inputs, &policy)?;
    let (verified, origin) = if args.no_opt {
        (verified, None)
    } else {
        optimize(&args.file, verified, &policy)?
    };
    // Errors name the operation of the file, not of the rewritten compound.
    let original = |op: u32| origin.as_ref().map_or(op, |o| o.original_op(op));
    let options = RunOptions {
        backend,
        parallel: cosy_exec::Parallel {
            workers: args.workers,
            ..cosy_exec::Parallel::default()
        },
        ..RunOptions::default()
    };
    let outcome = cosy_exec::run(&verified, &options);
    // A run that failed prints no results on standard output, where a script would take them
    // for the answer; what the outputs held when it stopped goes to standard error.
    for (name, value) in &outcome.outputs {
        if outcome.error.is_none() {
            println!("{name} = {value}");
        } else {
            eprintln!("cosy: when the run stopped: {name} = {value}");
        }
    }
    let c = verified.compound();
    for e in &outcome.errors {
        let what = outside_root(c, &policy, e.op, e.call, e.errno).unwrap_or_else(|| e.to_string());
        eprintln!(
            "cosy: {}: {what} (recorded; the compound continued)",
            loaded.place(&args.file, Some(original(e.op)))
        );
    }
    if args.stats {
        eprintln!("{}", outcome.stats);
    }
    match &outcome.error {
        None => Ok(()),
        Some(e) => {
            let what = match e {
                cosy_exec::Error::Call { op, call, errno } => {
                    outside_root(c, &policy, *op, *call, *errno)
                }
                _ => None,
            };
            Err(Failure::failed(format!(
                "{}: {}",
                loaded.place(&args.file, e.op().map(original)),
                what.unwrap_or_else(|| e.to_string())
            )))
        }
    }
}

/// What an `EXDEV` of a path call under a policy root means, in words: `openat
/// "../secret": the path leads outside the root /srv (EXDEV)` (the errno kept for scripts);
/// `None` for any other failure.
fn outside_root(
    c: &cosy_model::Compound,
    policy: &Policy,
    op: u32,
    call: cosy_model::Sys,
    errno: i32,
) -> Option<String> {
    let root = policy.root.as_ref()?;
    if errno != libc::EXDEV {
        return None;
    }
    let cosy_model::Op::Sys { args, .. } = c.ops.get(op as usize)? else {
        return None;
    };
    let path = args.iter().find_map(|a| match a {
        cosy_model::Arg::Path(p) => Some(*p),
        _ => None,
    })?;
    let shown = match path {
        cosy_model::PathRef::Data(d) => format!(
            "{:?}",
            String::from_utf8_lossy(c.data.get(d.index()).map_or(&[][..], |v| v.as_slice()))
        ),
        cosy_model::PathRef::Var(v) => format!(
            "of the name bound to `{}`",
            c.paths.get(v.index()).map_or("?", |s| s.as_str())
        ),
    };
    Some(format!(
        "{} {shown}: the path leads outside the root {} (EXDEV)",
        call.name(),
        root.display()
    ))
}

/// Applies the optimizer's default passes and verifies the result again (a rewrite must never
/// make a compound the policy would refuse).
fn optimize(
    file: &Path,
    verified: Verified,
    policy: &Policy,
) -> Result<(Verified, Option<Optimized>), Failure> {
    let optimized = cosy_opt::optimize(verified.compound(), &Passes::default());
    if optimized.applied.iter().all(|(_, n)| *n == 0) {
        return Ok((verified, None));
    }
    match cosy_verify::verify(optimized.compound.clone(), policy) {
        Ok(v) => Ok((v, Some(optimized))),
        Err(problems) => Err(Failure::failed(format!(
            "{}: the optimizer produced a compound the verifier refuses (run with --no-opt):\n{problems}",
            file.display()
        ))),
    }
}

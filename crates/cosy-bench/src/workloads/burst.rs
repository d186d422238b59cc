//! `burst`: N independent trivial operations, N = 1, 2, 4 … 1024 — the thesis's getpid
//! micro-benchmark (§4.2), which shows what one compound saves over N system calls.
//!
//! - op `nop`: vanilla is a loop of getppid(2) (the cheapest real system call); cosy runs
//!   `map i in range(0, N, 1) { nop }` (no system call at all on `direct`, an io_uring NOP on
//!   `ring`); `uring-by-hand` pushes N NOPs on a ring kept across bursts (cosy-uring's
//!   baseline).
//! - op `pread`: 1-byte preads at offsets `i × 4099 mod size` of a cached 1 MiB file, summing
//!   the bytes read. vanilla, `direct`, `ring` and `auto` all open the file, make the N preads
//!   and close it in every burst (the same system calls); `uring-by-hand` (cosy-uring's) keeps
//!   the file open and reads offsets `i mod size`.
//!
//! One sample repeats the burst until 100,000 operations (× scale) were made, or 0.3 s
//! passed (the time is then extrapolated to the full count); records report nanoseconds per
//! operation.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosy_exec::Functions;
use cosy_model::flags::{Mode, OFlags};
use cosy_model::{Builder, FdRef, Width};

use super::{Ctx, Workload, bytes};
use crate::exec::{BACKENDS, Compiled, CosyVariant};
use crate::framework::{Answer, Case, Counts, Entry, Variant, VariantError, answer, variant};

/// The burst workload.
pub const WORKLOAD: Workload = Workload {
    name: "burst",
    parts: &["burst"],
    about: "N = 1..1024 independent nops / 1-byte preads: ns per operation",
    build,
};

/// Burst lengths.
pub const LENGTHS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// Operations per sample at scale 1.
const OPS: f64 = 100_000.0;

/// Time after which a sample stops repeating bursts and extrapolates.
const BUDGET: Duration = Duration::from_millis(300);

/// Size of the file read by the pread bursts.
const FILE_SIZE: i64 = 1 << 20;

/// Distance between two offsets read.
const STRIDE: i64 = 4099;

/// A variant that repeats a burst `reps` times (or until [`BUDGET`]) and times itself.
struct Repeated {
    /// One burst; its name, leniency, note and counts are the variant's.
    once: Box<dyn Variant>,
    reps: u64,
    last: Option<f64>,
}

impl Variant for Repeated {
    fn name(&self) -> &str {
        self.once.name()
    }

    fn lenient(&self) -> bool {
        self.once.lenient()
    }

    fn run(&mut self) -> Result<Answer, VariantError> {
        let t0 = Instant::now();
        let mut first: Option<Answer> = None;
        let mut done = 0;
        while done < self.reps {
            let a = self.once.run()?;
            done += 1;
            match &first {
                None => first = Some(a),
                Some(f) if *f != a => {
                    return Err(VariantError::Fail(format!(
                        "bursts answered differently: {a:?} after {f:?}"
                    )));
                }
                Some(_) => {}
            }
            if done >= 3 && t0.elapsed() > BUDGET {
                break;
            }
        }
        let secs = t0.elapsed().as_secs_f64() * self.reps as f64 / done.max(1) as f64;
        self.last = Some(secs);
        Ok(first.unwrap_or_default())
    }

    fn measured(&self) -> Option<f64> {
        self.last
    }

    fn note(&self) -> Option<String> {
        self.once.note()
    }

    /// The calls of one burst.
    fn counts(&self) -> Option<Counts> {
        self.once.counts()
    }
}

/// `once` repeated `reps` times per sample.
fn repeated(once: Box<dyn Variant>, reps: u64) -> Entry {
    Entry::Ready(Box::new(Repeated {
        once,
        reps,
        last: None,
    }))
}

/// A variant timed by cosy-uring's by-hand loop (`f(n, reps)` gives ns per operation).
struct ByHand {
    n: u64,
    reps: u64,
    f: Box<dyn FnMut(usize, usize) -> io::Result<f64>>,
    last: Option<f64>,
}

impl Variant for ByHand {
    fn name(&self) -> &str {
        "uring-by-hand"
    }

    fn lenient(&self) -> bool {
        true
    }

    fn run(&mut self) -> Result<Answer, VariantError> {
        let ns = (self.f)(self.n as usize, self.reps as usize)?;
        self.last = Some(ns * (self.n * self.reps) as f64 / 1e9);
        Ok(answer(&[("ops", self.n as i64)]))
    }

    fn measured(&self) -> Option<f64> {
        self.last
    }
}

fn by_hand(n: u64, reps: u64, f: impl FnMut(usize, usize) -> io::Result<f64> + 'static) -> Entry {
    if !cosy_uring::Probe::detect().available() {
        return Entry::Skipped {
            name: "uring-by-hand".into(),
            reason: format!(
                "io_uring unavailable: {}",
                cosy_uring::Probe::detect().reason().unwrap_or("unknown")
            ),
        };
    }
    Entry::Ready(Box::new(ByHand {
        n,
        reps,
        f: Box::new(f),
        last: None,
    }))
}

/// `count = 0; map i in range(0, n, 1) { nop; count += 1 }`.
pub fn nop_compound(n: u64) -> cosy_model::Compound {
    let mut c = Builder::new();
    let count = c.value("ops", 0);
    c.map_range(0, n as i64, 1, |c, _| {
        c.nop();
        c.accumulate(count, 1);
    });
    c.output("ops", count);
    c.finish()
}

/// `fd = open(file); map i in range(0, n, 1) { r = pread(fd, b, i*4099 % size); sum += b[0];
/// ops += r }; close(fd)`.
pub fn pread_compound(file: &[u8], n: u64) -> cosy_model::Compound {
    let mut c = Builder::new();
    let path = c.input_path("file", file);
    let b = c.local_buffer("b", 1);
    let ops = c.value("ops", 0);
    let sum = c.value("sum", 0);
    let fd = c.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
    c.map_range(0, n as i64, 1, |c, i| {
        let off = c.arith(cosy_model::BinOp::Mul, i, STRIDE);
        let off = c.arith(cosy_model::BinOp::Rem, off, FILE_SIZE);
        let r = c.pread(fd, b, off);
        let v = c.load(Width::U8, b, 0);
        c.accumulate(sum, v);
        c.accumulate(ops, r);
    });
    c.close(fd);
    c.output("ops", ops);
    c.output("sum", sum);
    c.finish()
}

fn vanilla_nop(n: u64) -> Answer {
    let mut ops = 0;
    for _ in 0..n {
        // SAFETY: getppid takes no arguments and touches no memory.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
        ops += 1;
    }
    answer(&[("ops", ops)])
}

fn vanilla_pread(path: &CString, n: u64) -> Result<Answer, VariantError> {
    // SAFETY: `path` is a NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    let (mut ops, mut sum) = (0i64, 0i64);
    let mut b = 0u8;
    for i in 0..n as i64 {
        let off = i * STRIDE % FILE_SIZE;
        // SAFETY: `b` is a writable byte for the duration of the call.
        let r = unsafe { libc::pread(fd, std::ptr::from_mut(&mut b).cast(), 1, off) };
        if r < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: fd is ours and open.
            unsafe { libc::close(fd) };
            return Err(e.into());
        }
        ops += r as i64;
        sum += i64::from(b);
    }
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    Ok(answer(&[("ops", ops), ("sum", sum)]))
}

/// Direct, ring and auto variants repeating `compound` `reps` times per sample.
fn cosy(compound: cosy_model::Compound, reps: u64) -> Vec<Entry> {
    match Compiled::new(compound, Functions::new(), true) {
        Ok(c) => {
            let c = Arc::new(c);
            BACKENDS
                .iter()
                .map(|b| repeated(Box::new(CosyVariant::new(b.name(), c.clone(), *b)), reps))
                .collect()
        }
        Err(why) => BACKENDS
            .iter()
            .map(|b| Entry::Skipped {
                name: b.name().into(),
                reason: why.clone(),
            })
            .collect(),
    }
}

fn build(ctx: &mut Ctx<'_>, _part: &str) -> io::Result<Vec<Case>> {
    let total = ctx.scaled(OPS, 1);
    let file = ctx.corpus.file("burst.dat", FILE_SIZE as u64, 41)?;
    // Into the page cache.
    std::fs::read(&file)?;
    let cpath = CString::new(bytes(&file)).map_err(io::Error::other)?;
    let mut cases = Vec::new();
    for op in ["nop", "pread"] {
        for n in LENGTHS {
            let reps = total.div_ceil(n);
            let mut case = Case::new("burst")
                .param("op", op)
                .param("n", n)
                .per_op(n * reps);
            if op == "nop" {
                case = case.entry(repeated(
                    variant("vanilla", move || Ok(vanilla_nop(n))),
                    reps,
                ));
                for e in cosy(nop_compound(n), reps) {
                    case = case.entry(e);
                }
                case = case.entry(by_hand(n, reps, cosy_uring::burst::uring_by_hand_nop));
            } else {
                let p = cpath.clone();
                case = case.entry(repeated(
                    variant("vanilla", move || vanilla_pread(&p, n)),
                    reps,
                ));
                for e in cosy(pread_compound(&bytes(&file), n), reps) {
                    case = case.entry(e);
                }
                let f = File::open(&file)?;
                case = case.entry(by_hand(n, reps, move |n, reps| {
                    cosy_uring::burst::uring_by_hand_pread(
                        &f,
                        n,
                        reps,
                        cosy_uring::burst::FdKind::Regular,
                    )
                }));
            }
            cases.push(case);
        }
    }
    Ok(cases)
}

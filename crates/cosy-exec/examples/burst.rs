//! The burst benchmark: N independent trivial operations, N = 1..1024, in ns per operation.
//!
//! `cargo run --release -p cosy-exec --example burst [OPS_PER_SAMPLE] [SAMPLES]`
//!
//! - `nop`: vanilla is a loop of getppid(2); cosy runs `map i in range(0, N, 1) { nop;
//!   count += 1 }` (`nop-map`) or N straight-line `nop`s (`nop-line`); `by-hand` pushes N
//!   io_uring NOPs on a ring kept across bursts (cosy-uring's baseline).
//! - `pread`: 1-byte preads of a cached 1 MiB file at offsets `i × 4099 mod size`; cosy opens
//!   the file, runs `map i in range(0, N, 1) { r = pread(fd, b, off); sum += b[0]; ops += r }`
//!   and closes it; vanilla and by-hand read an open file (a registered one for by-hand).
//!
//! Every figure is the median of SAMPLES samples (default 7) of OPS_PER_SAMPLE operations
//! (default 100 000), after a warm-up sample.

use std::io::Write as _;
use std::time::Instant;

use cosy_exec::{Backend, RingOptions, RunOptions};
use cosy_model::flags::{Mode, OFlags};
use cosy_model::{BinOp, Builder, Compound, FdRef, Policy, Width};
use cosy_uring::burst::{self, FdKind};

const FILE_SIZE: i64 = 1 << 20;
const STRIDE: i64 = 4099;

fn nop_map(n: usize) -> Compound {
    let mut c = Builder::new();
    let count = c.value("ops", 0);
    c.map_range(0, n as i64, 1, |c, _| {
        c.nop();
        c.accumulate(count, 1);
    });
    c.output("ops", count);
    c.finish()
}

fn nop_line(n: usize) -> Compound {
    let mut c = Builder::new();
    for _ in 0..n {
        c.nop();
    }
    c.finish()
}

fn pread_map(file: &[u8], n: usize) -> Compound {
    let mut c = Builder::new();
    let path = c.input_path("file", file);
    let b = c.local_buffer("b", 1);
    let ops = c.value("ops", 0);
    let sum = c.value("sum", 0);
    let fd = c.openat(FdRef::Cwd, path, OFlags::RDONLY, Mode::empty());
    c.map_range(0, n as i64, 1, |c, i| {
        let off = c.arith(BinOp::Mul, i, STRIDE);
        let off = c.arith(BinOp::Rem, off, FILE_SIZE);
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ns per operation of `samples` samples of `run` (which makes `n` operations).
fn measure(n: usize, ops: usize, samples: usize, mut run: impl FnMut()) -> f64 {
    let reps = ops.div_ceil(n).max(1);
    for _ in 0..reps.min(50) {
        run();
    }
    let mut v = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        for _ in 0..reps {
            run();
        }
        v.push(t.elapsed().as_nanos() as f64 / (reps * n) as f64);
    }
    median(v)
}

fn cosy(c: &Compound, opts: &RunOptions, n: usize, ops: usize, samples: usize) -> f64 {
    let v = cosy_verify::verify(c.clone(), &Policy::trusted()).expect("verifies");
    let out = cosy_exec::run(&v, opts);
    assert!(out.is_ok(), "{out}");
    measure(n, ops, samples, || {
        let out = cosy_exec::run(&v, opts);
        std::hint::black_box(out.outputs);
    })
}

/// `burst profile OP N BACKEND SECONDS`: runs one configuration in a loop (for a profiler).
fn profile(
    mut args: impl Iterator<Item = String>,
    path: &[u8],
) -> Result<(), Box<dyn std::error::Error>> {
    let op = args.next().unwrap_or_else(|| "nop-line".into());
    let n: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let backend = args.next().unwrap_or_else(|| "ring".into());
    let secs: f64 = args.next().map_or(Ok(5.0), |a| a.parse())?;
    let c = match op.as_str() {
        "nop-map" => nop_map(n),
        "nop-line" => nop_line(n),
        _ => pread_map(path, n),
    };
    let o = match backend.as_str() {
        "direct" => RunOptions {
            backend: Backend::Direct,
            ..RunOptions::default()
        },
        "sqpoll" => RunOptions {
            backend: Backend::Ring,
            ring: RingOptions::sqpoll(50),
            ..RunOptions::default()
        },
        "auto" => RunOptions::default(),
        _ => RunOptions {
            backend: Backend::Ring,
            ..RunOptions::default()
        },
    };
    let v = cosy_verify::verify(c, &Policy::trusted()).expect("verifies");
    let t = Instant::now();
    let mut runs = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        std::hint::black_box(cosy_exec::run(&v, &o));
        runs += 1;
    }
    let ns = t.elapsed().as_nanos() as f64 / (runs * n as u64) as f64;
    let last = cosy_exec::run(&v, &o);
    println!(
        "{op} N={n} {backend}: {ns:.1} ns/op over {runs} runs\n{}",
        last.stats
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "profile") {
        args.next();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("burst.dat");
        let data: Vec<u8> = (0..FILE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, data)?;
        return profile(args, path.as_os_str().as_encoded_bytes());
    }
    let ops: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let samples: usize = args.next().map_or(Ok(7), |a| a.parse())?;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("burst.dat");
    let mut f = std::fs::File::create(&path)?;
    let data: Vec<u8> = (0..FILE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
    f.write_all(&data)?;
    drop(f);
    let file = std::fs::File::open(&path)?;
    let path_bytes = path.as_os_str().as_encoded_bytes().to_vec();

    let opts = |backend: Backend, ring: RingOptions| RunOptions {
        backend,
        ring,
        ..RunOptions::default()
    };
    let direct = opts(Backend::Direct, RingOptions::default());
    let ring = opts(Backend::Ring, RingOptions::default());
    let sqpoll = opts(Backend::Ring, RingOptions::sqpoll(50));
    let auto = opts(Backend::Auto, RingOptions::default());
    let uring = cosy_uring::Probe::detect().available();
    let cal = cosy_exec::auto::calibration(&auto);
    println!(
        "# calibration: syscall {:.0} ns, ring enter {:.0} ns, ring nop {:.0} ns, pread {:.0}/{:.0} ns (direct/ring)",
        cal.syscall_ns, cal.ring_enter_ns, cal.ring_nop_ns, cal.pread_direct_ns, cal.pread_ring_ns
    );
    println!("# ns per operation, median of {samples} samples of {ops} operations");
    println!(
        "{:<9} {:>5} {:>8} {:>8} {:>8} {:>11} {:>8} {:>8}",
        "op", "N", "vanilla", "direct", "ring", "ring+sqpoll", "auto", "by-hand"
    );
    for op in ["nop-map", "nop-line", "pread"] {
        for n in [1usize, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] {
            let c = match op {
                "nop-map" => nop_map(n),
                "nop-line" => nop_line(n),
                _ => pread_map(&path_bytes, n),
            };
            let reps = ops.div_ceil(n).max(1);
            let vanilla = if op == "pread" {
                let mut v: Vec<f64> = (0..samples)
                    .map(|_| burst::vanilla_pread(&file, n, reps).unwrap_or(f64::NAN))
                    .collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            } else {
                median((0..samples).map(|_| burst::vanilla_nop(n, reps)).collect())
            };
            let by_hand = if !uring {
                f64::NAN
            } else if op == "pread" {
                median(
                    (0..samples)
                        .map(|_| {
                            burst::uring_by_hand_pread(&file, n, reps, FdKind::Fixed)
                                .unwrap_or(f64::NAN)
                        })
                        .collect(),
                )
            } else {
                median(
                    (0..samples)
                        .map(|_| burst::uring_by_hand_nop(n, reps).unwrap_or(f64::NAN))
                        .collect(),
                )
            };
            let d = cosy(&c, &direct, n, ops, samples);
            let r = cosy(&c, &ring, n, ops, samples);
            let s = cosy(&c, &sqpoll, n, ops, samples);
            let a = cosy(&c, &auto, n, ops, samples);
            println!(
                "{op:<9} {n:>5} {vanilla:>8.1} {d:>8.1} {r:>8.1} {s:>11.1} {a:>8.1} {by_hand:>8.1}"
            );
        }
    }
    cosy_exec::drop_cached_rings();
    Ok(())
}

//! Calibration: what system calls and io_uring cost on the running machine.
//!
//! [`Calibration::measure`] takes a few milliseconds (well under 100 ms) and measures with
//! small counts, keeping the median of 5 sub-runs of each figure: a trivial system call, ring setup, one io_uring_enter(2) round trip, a NOP in
//! a batch of 64, statx(2) and 1-byte pread(2) directly and through a [`Ring`]. An executor
//! choosing between the plain and the ring path (the `auto` executor) reads these figures;
//! callers cache them with [`save`](Calibration::save) / [`load`](Calibration::load) under
//! [`cache_path`] (see [`Calibration::cached`]).
//!
//! The file format is `key=value` lines; `#` starts a comment; unknown keys are ignored.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::IoBuf;
use crate::burst::getppid_syscall;
use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::ring::{Completion, Link, Op, Ring, STATX_SIZE, Target};

/// Version of the calibration file format (and of the measurement method).
pub const CALIBRATION_VERSION: u32 = 1;

/// Costs measured on this machine, in nanoseconds.
///
/// When io_uring is unavailable (`uring == false`) the ring figures are `f64::INFINITY`, so any
/// cost model picks the plain path.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Kernel release (uname -r) the figures were measured on.
    pub kernel: String,
    /// Available parallelism.
    pub cpus: usize,
    /// Whether io_uring was available ([`Probe::detect`]).
    pub uring: bool,
    /// One trivial system call: getppid(2) through `syscall(SYS_getppid)`.
    pub syscall_ns: f64,
    /// Creating and dropping a 64-entry ring with a region and one file slot.
    pub ring_setup_ns: f64,
    /// One io_uring_enter(2) round trip carrying one NOP (push, submit, wait, reap).
    pub ring_enter_ns: f64,
    /// One NOP in a batch of 64 submitted with one enter (amortised).
    pub ring_nop_ns: f64,
    /// statx(2) of a cached file by path, as a system call.
    pub statx_direct_ns: f64,
    /// statx of the same file through the ring, batches of 16 (amortised; io_uring hands statx
    /// to a worker thread).
    pub statx_ring_ns: f64,
    /// 1-byte pread(2) of a cached file, as a system call.
    pub pread_direct_ns: f64,
    /// 1-byte read through the ring from a registered slot into the region, batches of 64
    /// (amortised).
    pub pread_ring_ns: f64,
    /// How long the whole measurement took, in milliseconds.
    pub measure_ms: f64,
}

/// The calibration file: `$XDG_CACHE_HOME/cosy/calibration.txt`, else
/// `$HOME/.cache/cosy/calibration.txt`.
pub fn cache_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("cosy").join("calibration.txt"))
}

fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sub-runs of every measurement; the median is kept (robust to a preempted sub-run).
const RUNS: usize = 5;

/// Median over [`RUNS`] sub-runs of (time of `f()`) / `count`.
fn median_ns<E>(
    count: usize,
    mut f: impl FnMut() -> std::result::Result<(), E>,
) -> std::result::Result<f64, E> {
    let mut v = [0.0; RUNS];
    for x in &mut v {
        let start = Instant::now();
        f()?;
        *x = start.elapsed().as_nanos() as f64 / count.max(1) as f64;
    }
    v.sort_by(f64::total_cmp);
    Ok(v[RUNS / 2])
}

fn median_ns_ok(count: usize, mut f: impl FnMut()) -> f64 {
    median_ns::<std::convert::Infallible>(count, || {
        f();
        Ok(())
    })
    .unwrap_or_else(|never| match never {})
}

/// A regular file certainly in the page cache: the running executable.
fn cached_file() -> (PathBuf, Option<File>) {
    let path = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let file = File::open(&path)
        .or_else(|_| File::open("/proc/self/exe"))
        .ok();
    (path, file)
}

impl Calibration {
    /// Measure now (a few milliseconds).
    pub fn measure() -> Calibration {
        let t0 = Instant::now();
        let probe = Probe::detect();

        for _ in 0..200 {
            std::hint::black_box(getppid_syscall());
        }
        const SYSCALLS: usize = 2000;
        let syscall_ns = median_ns_ok(SYSCALLS, || {
            for _ in 0..SYSCALLS {
                std::hint::black_box(getppid_syscall());
            }
        });

        let (path, file) = cached_file();
        let statx_direct_ns = {
            let stat = || {
                rustix::fs::statx(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::AtFlags::empty(),
                    rustix::fs::StatxFlags::BASIC_STATS,
                )
            };
            let _ = stat();
            const N: usize = 200;
            median_ns_ok(N, || {
                for _ in 0..N {
                    let _ = std::hint::black_box(stat());
                }
            })
        };
        let pread_direct_ns = match &file {
            Some(f) => {
                let mut b = [0u8; 1];
                let _ = rustix::io::pread(f, &mut b, 0);
                const N: usize = 400;
                median_ns_ok(N, || {
                    for i in 0..N {
                        let _ =
                            std::hint::black_box(rustix::io::pread(f, &mut b, (i % 512) as u64));
                    }
                })
            }
            None => f64::NAN,
        };

        let ring = if probe.available() {
            measure_ring(&path, file.as_ref()).ok()
        } else {
            None
        };
        let uring = ring.is_some();
        let [
            ring_setup_ns,
            ring_enter_ns,
            ring_nop_ns,
            statx_ring_ns,
            pread_ring_ns,
        ] = ring.unwrap_or([f64::INFINITY; 5]);
        Calibration {
            kernel: kernel_release(),
            cpus: cpus(),
            uring,
            syscall_ns,
            ring_setup_ns,
            ring_enter_ns,
            ring_nop_ns,
            statx_direct_ns,
            statx_ring_ns,
            pread_direct_ns,
            pread_ring_ns,
            measure_ms: t0.elapsed().as_secs_f64() * 1e3,
        }
    }

    /// Load the calibration cached at [`cache_path`] if it was measured on this kernel, CPU
    /// count and io_uring availability; otherwise measure and try to save it there.
    pub fn cached() -> Calibration {
        let path = cache_path();
        if let Some(p) = &path
            && let Ok(c) = Calibration::load(p)
            && c.kernel == kernel_release()
            && c.cpus == cpus()
            && c.uring == Probe::detect().available()
        {
            return c;
        }
        let c = Calibration::measure();
        if let Some(p) = &path {
            let _ = c.save(p);
        }
        c
    }

    /// The `key=value` text of the calibration.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# cosy-uring calibration (nanoseconds)\n");
        let _ = writeln!(s, "version={CALIBRATION_VERSION}");
        let _ = writeln!(s, "kernel={}", self.kernel);
        let _ = writeln!(s, "cpus={}", self.cpus);
        let _ = writeln!(s, "uring={}", self.uring);
        for (key, value) in self.figures() {
            let _ = writeln!(s, "{key}={value}");
        }
        s
    }

    /// Parse the text written by [`to_text`](Self::to_text).
    pub fn from_text(text: &str) -> std::result::Result<Calibration, String> {
        let mut c = Calibration {
            kernel: String::new(),
            cpus: 0,
            uring: false,
            syscall_ns: f64::NAN,
            ring_setup_ns: f64::NAN,
            ring_enter_ns: f64::NAN,
            ring_nop_ns: f64::NAN,
            statx_direct_ns: f64::NAN,
            statx_ring_ns: f64::NAN,
            pread_direct_ns: f64::NAN,
            pread_ring_ns: f64::NAN,
            measure_ms: f64::NAN,
        };
        let mut seen = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected key=value", n + 1))?;
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| format!("line {}: bad {what} {value:?}", n + 1);
            match key {
                "version" => {
                    let v: u32 = value.parse().map_err(|_| bad("version"))?;
                    if v != CALIBRATION_VERSION {
                        return Err(format!("version {v}, expected {CALIBRATION_VERSION}"));
                    }
                }
                "kernel" => c.kernel = value.to_string(),
                "cpus" => c.cpus = value.parse().map_err(|_| bad("cpus"))?,
                "uring" => c.uring = value.parse().map_err(|_| bad("uring"))?,
                _ => match c.figure_mut(key) {
                    Some(slot) => *slot = value.parse().map_err(|_| bad(key))?,
                    None => continue,
                },
            }
            seen.push(key.to_string());
        }
        let required = ["version", "kernel", "cpus", "uring"]
            .into_iter()
            .chain(c.figures().into_iter().map(|(k, _)| k));
        for key in required {
            if !seen.iter().any(|s| s == key) {
                return Err(format!("missing key {key}"));
            }
        }
        Ok(c)
    }

    /// Write the calibration to `path` (creating its directory).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, self.to_text())?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Read a calibration from `path`.
    pub fn load(path: &Path) -> Result<Calibration> {
        let text = std::fs::read_to_string(path)?;
        Calibration::from_text(&text).map_err(|message| Error::Calibration {
            path: path.display().to_string(),
            message,
        })
    }

    fn figures(&self) -> [(&'static str, f64); 9] {
        [
            ("syscall_ns", self.syscall_ns),
            ("ring_setup_ns", self.ring_setup_ns),
            ("ring_enter_ns", self.ring_enter_ns),
            ("ring_nop_ns", self.ring_nop_ns),
            ("statx_direct_ns", self.statx_direct_ns),
            ("statx_ring_ns", self.statx_ring_ns),
            ("pread_direct_ns", self.pread_direct_ns),
            ("pread_ring_ns", self.pread_ring_ns),
            ("measure_ms", self.measure_ms),
        ]
    }

    fn figure_mut(&mut self, key: &str) -> Option<&mut f64> {
        Some(match key {
            "syscall_ns" => &mut self.syscall_ns,
            "ring_setup_ns" => &mut self.ring_setup_ns,
            "ring_enter_ns" => &mut self.ring_enter_ns,
            "ring_nop_ns" => &mut self.ring_nop_ns,
            "statx_direct_ns" => &mut self.statx_direct_ns,
            "statx_ring_ns" => &mut self.statx_ring_ns,
            "pread_direct_ns" => &mut self.pread_direct_ns,
            "pread_ring_ns" => &mut self.pread_ring_ns,
            "measure_ms" => &mut self.measure_ms,
            _ => return None,
        })
    }
}

/// `[setup, enter, nop, statx, pread]` through the ring.
fn measure_ring(path: &Path, file: Option<&File>) -> Result<[f64; 5]> {
    const BATCH: usize = 64;
    const STATX_BATCH: usize = 16;
    let build = || {
        Ring::builder()
            .entries(BATCH as u32)
            .files(1)
            .region(IoBuf::zeroed(BATCH * STATX_SIZE))
            .build()
    };
    drop(build()?);
    let ring_setup_ns = median_ns(1, || build().map(drop))?;

    let mut ring = build()?;
    let mut out = Vec::with_capacity(BATCH);
    // Push `n` operations, one submit_and_wait for all of them, drain.
    /// Push `n` operations, one submit_and_wait for all of them, drain.
    fn batch<'p>(
        ring: &mut Ring,
        out: &mut Vec<Completion>,
        op: impl Fn(usize) -> Op<'p>,
        n: usize,
    ) -> Result<()> {
        for i in 0..n {
            ring.push(&op(i), i as u64, Link::None)?;
        }
        ring.submit_and_wait(n)?;
        out.clear();
        ring.drain_completions(out);
        Ok(())
    }

    batch(&mut ring, &mut out, |_| Op::Nop, 1)?;
    const ENTERS: usize = 40;
    let ring_enter_ns = median_ns(ENTERS, || {
        (0..ENTERS).try_for_each(|_| batch(&mut ring, &mut out, |_| Op::Nop, 1))
    })?;
    const NOP_ROUNDS: usize = 8;
    let ring_nop_ns = median_ns(NOP_ROUNDS * BATCH, || {
        (0..NOP_ROUNDS).try_for_each(|_| batch(&mut ring, &mut out, |_| Op::Nop, BATCH))
    })?;

    use std::os::unix::ffi::OsStrExt;
    let path = path.as_os_str().as_bytes();
    let statx = |i: usize| Op::Statx {
        dirfd: libc::AT_FDCWD,
        path,
        flags: 0,
        mask: libc::STATX_BASIC_STATS,
        buf: i * STATX_SIZE,
    };
    // The first statx starts an io-wq worker: not part of the steady state.
    batch(&mut ring, &mut out, statx, STATX_BATCH)?;
    const STATX_ROUNDS: usize = 2;
    let statx_ring_ns = median_ns(STATX_ROUNDS * STATX_BATCH, || {
        (0..STATX_ROUNDS).try_for_each(|_| batch(&mut ring, &mut out, statx, STATX_BATCH))
    })?;

    let pread_ring_ns = match file {
        Some(f) => {
            use std::os::fd::AsRawFd;
            ring.set_slot(0, f.as_raw_fd())?;
            let read = |i: usize| Op::Read {
                fd: Target::Slot(0),
                buf: i..i + 1,
                offset: (i % 512) as i64,
            };
            batch(&mut ring, &mut out, read, BATCH)?;
            const ROUNDS: usize = 4;
            median_ns(ROUNDS * BATCH, || {
                (0..ROUNDS).try_for_each(|_| batch(&mut ring, &mut out, read, BATCH))
            })?
        }
        None => f64::NAN,
    };
    Ok([
        ring_setup_ns,
        ring_enter_ns,
        ring_nop_ns,
        statx_ring_ns,
        pread_ring_ns,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_is_quick_and_round_trips() {
        let c = Calibration::measure();
        eprintln!("{}", c.to_text());
        assert!(c.measure_ms < 1000.0, "took {} ms", c.measure_ms);
        assert!(c.syscall_ns > 0.0 && c.syscall_ns.is_finite());
        if c.uring {
            assert!(c.ring_nop_ns > 0.0 && c.ring_nop_ns.is_finite());
            assert!(c.ring_enter_ns.is_finite() && c.statx_ring_ns.is_finite());
        } else if !crate::skip_without_uring("the ring figures") {
            // io_uring is there, yet no ring could be measured (a ring that could not be set
            // up, e.g. for lack of locked memory): a failure where io_uring is required.
            assert!(
                !crate::uring_required(),
                "the calibration measured no ring although io_uring is available"
            );
            eprintln!("skipping the ring figures: no ring could be measured");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("calibration.txt");
        c.save(&path).unwrap();
        let back = Calibration::load(&path).unwrap();
        assert_eq!(back.to_text(), c.to_text());
        assert_eq!(back.kernel, c.kernel);
    }

    #[test]
    fn infinity_and_errors() {
        let mut c = Calibration::from_text(&Calibration::measure().to_text()).unwrap();
        c.ring_nop_ns = f64::INFINITY;
        let back = Calibration::from_text(&c.to_text()).unwrap();
        assert_eq!(back.ring_nop_ns, f64::INFINITY);
        assert!(Calibration::from_text("version=1\n").is_err());
        assert!(Calibration::from_text("version=99\n").is_err());
        assert!(Calibration::from_text("nonsense\n").is_err());
        let extra = format!("{}future_key=1\n", c.to_text());
        assert!(Calibration::from_text(&extra).is_ok());
    }
}

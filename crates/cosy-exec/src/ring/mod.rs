//! The ring executor: runs a compound through io_uring with as few io_uring_enter(2) calls as
//! its dependencies allow (docs/ring.md), with the outcome of the direct executor.
//!
//! - [`RingOptions`] (in [`RunOptions::ring`](crate::RunOptions)): ring size, window of
//!   concurrent map iterations, SQPOLL, and switches for io_uring itself, direct descriptors,
//!   registered buffers and ring reuse.
//! - Rings are kept per thread between runs ([`RingOptions::reuse`]): setting one up (tens of
//!   microseconds) costs more than running a small compound. [`drop_cached_rings`] closes them.
//! - Without io_uring (`ENOSYS`, `EPERM` under seccomp, `kernel.io_uring_disabled`,
//!   `COSY_NO_URING=1`, or [`RingOptions::uring`] false), or without an opcode, calls are issued
//!   as plain system calls and counted in [`Stats::fallbacks`](crate::Stats::fallbacks).

pub(crate) mod issuer;
pub(crate) mod plan;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use cosy_model::Sys;
use cosy_uring::{IoBuf, Probe, Ring};
use cosy_verify::Verified;

use crate::RunOptions;
use crate::arena::{Layout, lanes_within};
use crate::direct::open_root;
use crate::interp;
use crate::outcome::Outcome;
use crate::plan::Plan;

use issuer::RingIssuer;
use plan::{Caps, RingPlan};

/// How the ring executor sets up and uses its ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingOptions {
    /// Submission queue entries (a power of two; the longest chain of one thread, and the
    /// most calls per io_uring_enter). Default 256.
    pub entries: u32,
    /// Most map iterations running at once (each with its own lane of local buffers); also
    /// bounded by the policy's arena limit. Default 256.
    pub window: usize,
    /// `Some(idle_ms)`: an SQPOLL kernel thread polls the submission queue and sleeps after
    /// `idle_ms` milliseconds without work; submissions then need no system call while it is
    /// awake. Default `None`.
    pub sqpoll: Option<u32>,
    /// With SQPOLL, how long a wait for completions polls before sleeping in the kernel.
    /// Default 200 µs.
    pub spin: Duration,
    /// Whether to use io_uring at all; `false` runs every call as a plain system call (the
    /// fallback path), as on a kernel without io_uring. Default true.
    pub uring: bool,
    /// The probe to check opcodes against instead of the kernel's (tests: a probe without an
    /// opcode, [`Probe::without`]).
    pub probe: Option<Probe>,
    /// Whether fds the ring can serve by slot are direct descriptors (opened into the ring's
    /// file table). Default true.
    pub direct_descriptors: bool,
    /// Whether the arena is registered with the ring (READ_FIXED / WRITE_FIXED). Default true.
    pub register_buffers: bool,
    /// Whether rings are kept (per thread) for later runs. Default true.
    pub reuse: bool,
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions {
            entries: 256,
            window: 256,
            sqpoll: None,
            spin: Duration::from_micros(200),
            uring: true,
            probe: None,
            direct_descriptors: true,
            register_buffers: true,
            reuse: true,
        }
    }
}

impl RingOptions {
    /// The defaults with SQPOLL (kernel thread idling after `idle_ms`).
    pub fn sqpoll(idle_ms: u32) -> Self {
        RingOptions {
            sqpoll: Some(idle_ms),
            ..RingOptions::default()
        }
    }

    /// The defaults with io_uring turned off (every call issued directly).
    pub fn without_uring() -> Self {
        RingOptions {
            uring: false,
            ..RingOptions::default()
        }
    }

    /// The probe this run checks against.
    pub fn probe(&self) -> Probe {
        if !self.uring {
            return Probe::disabled("io_uring turned off by the run options");
        }
        self.probe.clone().unwrap_or_else(Probe::detect)
    }
}

/// The ring executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingExecutor;

impl RingExecutor {
    /// Runs `v` under its policy through io_uring.
    pub fn run(v: &Verified, opts: &RunOptions) -> Outcome {
        run_planned(v, opts, &|_, _| true, true)
    }
}

/// The most bytes of local buffers a window of map iterations uses, all lanes together.
const WINDOW_LOCAL_BYTES: u64 = 2 << 20;

/// Smallest region a ring is given (so that it can be reused by most compounds).
const MIN_REGION: usize = 64 << 10;

/// Largest region kept with a cached ring.
const MAX_CACHED_REGION: usize = 16 << 20;

/// Smallest file table a ring is given.
const MIN_FILES: u32 = 64;

/// A ring kept for later runs, with what it was built for.
struct Cached {
    ring: Ring,
    entries: u32,
    sqpoll: Option<u32>,
    register: bool,
}

thread_local! {
    static RINGS: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

/// Closes the rings this thread keeps for later runs (their descriptors and SQPOLL threads).
pub fn drop_cached_rings() {
    let rings = RINGS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    drop(rings);
}

/// A ring for `o` with a file table of at least `files` slots and a region of at least
/// `region` bytes (zeroed): a cached one, or a new one.
fn acquire(o: &RingOptions, probe: &Probe, files: u32, region: usize) -> Result<Cached, String> {
    if o.reuse && o.probe.is_none() {
        let found = RINGS.with(|r| {
            let mut r = r.borrow_mut();
            let i = r.iter().position(|c| {
                c.entries == o.entries
                    && c.sqpoll == o.sqpoll
                    && c.register == o.register_buffers
                    && c.ring.files() >= files
            })?;
            Some(r.swap_remove(i))
        });
        if let Some(mut c) = found {
            if c.ring.region_len() < region {
                let buf = IoBuf::try_zeroed(region.max(MIN_REGION))
                    .ok_or_else(|| format!("cannot allocate an arena of {region} bytes"))?;
                c.ring
                    .replace_region(Some(buf))
                    .map_err(|e| format!("io_uring: {e}"))?;
            }
            c.ring.set_spin(o.spin);
            return Ok(c);
        }
    }
    let buf = IoBuf::try_zeroed(region.max(MIN_REGION))
        .ok_or_else(|| format!("cannot allocate an arena of {region} bytes"))?;
    let mut b = Ring::builder()
        .entries(o.entries.max(2))
        .files(files.max(MIN_FILES))
        .region(buf)
        .register_region(o.register_buffers)
        .probe(probe.clone())
        .spin(o.spin);
    if let Some(idle) = o.sqpoll {
        b = b.sqpoll(idle);
    }
    let ring = b.build().map_err(|e| e.to_string())?;
    Ok(Cached {
        ring,
        entries: o.entries,
        sqpoll: o.sqpoll,
        register: o.register_buffers,
    })
}

/// Gives a ring back for later runs (if it is clean and reuse is on).
fn release(o: &RingOptions, mut c: Cached) {
    if !o.reuse || o.probe.is_some() || c.ring.outstanding() > 0 {
        return;
    }
    if c.ring.region_len() > MAX_CACHED_REGION && c.ring.replace_region(None).is_err() {
        return;
    }
    c.ring.reset_stats();
    RINGS.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() < 4 {
            r.push(c);
        }
    });
}

/// Runs `v` with the ring executor; `allow(i, call)` may keep operation `i` off the ring
/// (the auto executor's choice).
pub(crate) fn run_with(
    v: &Verified,
    opts: &RunOptions,
    allow: &dyn Fn(usize, Sys) -> bool,
) -> Outcome {
    run_planned(v, opts, allow, false)
}

/// What the ring executor worked out about what can go on the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CapsKey {
    probe: Option<Probe>,
    registered: bool,
    files: bool,
    confined: bool,
}

impl CapsKey {
    fn of(caps: &Caps<'_>) -> CapsKey {
        CapsKey {
            probe: caps.probe.cloned(),
            registered: caps.registered,
            files: caps.files,
            confined: caps.confined,
        }
    }
}

/// The plans of a compound: planning costs about as much as running a small compound, and
/// programs run the same compound again and again.
struct Planned {
    /// The compound and policy planned for (`None`: not kept for later runs).
    key: Option<(cosy_model::Compound, cosy_model::Policy)>,
    plan: Plan,
    rings: Vec<(CapsKey, RingPlan)>,
}

impl Planned {
    /// The index in `rings` of the ring plan for `caps` (made if needed).
    fn ring_plan(
        &mut self,
        c: &cosy_model::Compound,
        caps: &Caps<'_>,
        allow: &dyn Fn(usize, Sys) -> bool,
    ) -> usize {
        let key = CapsKey::of(caps);
        if self.key.is_some()
            && let Some(i) = self.rings.iter().position(|(k, _)| *k == key)
        {
            return i;
        }
        self.rings
            .push((key, RingPlan::new(c, &self.plan, caps, allow)));
        self.rings.len() - 1
    }
}

thread_local! {
    /// The plans of the compound this thread ran last with the ring executor.
    static PLANNED: RefCell<Option<Planned>> = const { RefCell::new(None) };
}

/// Runs `v`; `reuse`: the plans may be kept for later runs of the same compound (only when
/// `allow` lets every call on the ring).
fn run_planned(
    v: &Verified,
    opts: &RunOptions,
    allow: &dyn Fn(usize, Sys) -> bool,
    reuse: bool,
) -> Outcome {
    let started = Instant::now();
    let c = v.compound();
    let policy = v.policy();
    // A plan depends on the registered functions only through calls of them.
    let reuse = reuse
        && !c
            .ops
            .iter()
            .any(|op| matches!(op, cosy_model::Op::Call { .. }));
    let kept = if reuse {
        PLANNED
            .try_with(|p| p.borrow_mut().take())
            .ok()
            .flatten()
            .filter(|p| {
                p.key
                    .as_ref()
                    .is_some_and(|(kc, kp)| kc == c && kp == policy)
            })
    } else {
        None
    };
    let mut planned = match kept {
        Some(p) => p,
        None => match Plan::new(v, &opts.functions) {
            Ok(plan) => Planned {
                key: reuse.then(|| (c.clone(), policy.clone())),
                plan,
                rings: Vec::new(),
            },
            Err(m) => return Outcome::setup_error(m, started.elapsed()),
        },
    };
    let outcome = run_with_plan(v, opts, allow, &mut planned, started);
    if planned.key.is_some() {
        let _ = PLANNED.try_with(|p| *p.borrow_mut() = Some(planned));
    }
    outcome
}

fn run_with_plan(
    v: &Verified,
    opts: &RunOptions,
    allow: &dyn Fn(usize, Sys) -> bool,
    planned: &mut Planned,
    started: Instant,
) -> Outcome {
    let c = v.compound();
    let policy = v.policy();
    let root = match open_root(v) {
        Ok(r) => r,
        Err(m) => return Outcome::setup_error(m, started.elapsed()),
    };
    let o = &opts.ring;
    let probe = o.probe();
    let mut caps = Caps {
        probe: probe.available().then_some(&probe),
        registered: o.register_buffers,
        files: o.direct_descriptors,
        confined: root.is_some(),
    };
    let mut ri = planned.ring_plan(c, &caps, allow);
    let window = o.window.max(1);
    let lanes = if planned.rings[ri].1.any_concurrent {
        // The lanes' local buffers stay within a cache's size: a window whose buffers do not
        // fit is slower than a smaller one (each iteration's read lands in cold memory).
        let shared: u64 = c
            .buffers
            .iter()
            .filter(|b| !b.local)
            .map(|b| u64::from(b.size))
            .sum();
        let budget = shared.saturating_add(WINDOW_LOCAL_BYTES);
        lanes_within(&c.buffers, window, policy.arena_bytes.min(budget))
    } else {
        1
    };
    let layout = match Layout::new(&c.buffers, lanes, policy.arena_bytes) {
        Ok(l) => l,
        Err(e) => return Outcome::setup_error(e.to_string(), started.elapsed()),
    };
    let workers = if lanes > 1 { lanes } else { 0 };
    let rp = &planned.rings[ri].1;
    let files = if rp.fixed_slots > 0 {
        (rp.fixed_slots * 2 + workers * rp.fixed_per_iteration * 2 + 8) as u32
    } else {
        0
    };
    let mut cached = None;
    if rp.any_ring {
        match acquire(o, &probe, files, layout.len()) {
            Ok(c) => cached = Some(c),
            Err(_) => {
                // No ring after all: every call goes the plain way.
                caps.probe = None;
                ri = planned.ring_plan(c, &caps, allow);
            }
        }
    }
    if let Some(cr) = &cached
        && (cr.ring.region_registered() != caps.registered || (cr.ring.files() > 0) != caps.files)
    {
        caps.registered = cr.ring.region_registered();
        caps.files = caps.files && cr.ring.files() > 0;
        ri = planned.ring_plan(c, &caps, allow);
    }
    let plan = &planned.plan;
    let rp = &planned.rings[ri].1;
    let (ring, mem) = match &mut cached {
        Some(c) => (Some(&mut c.ring), None),
        None => match IoBuf::try_zeroed(layout.len()) {
            Some(m) => (None, Some(m)),
            None => {
                return Outcome::setup_error(
                    format!("cannot allocate an arena of {} bytes", layout.len()),
                    started.elapsed(),
                );
            }
        },
    };
    let window = if ring.is_some() && rp.any_concurrent {
        lanes
    } else {
        1
    };
    let mut issuer = RingIssuer::new(ring, mem, root, rp, c, window);
    let setup = interp::Setup {
        plan,
        layout: &layout,
        functions: &opts.functions,
        trace: opts.trace,
        threads: interp::maps::Threads::default(),
        started,
    };
    let (outcome, mut dirty) = interp::execute(v, setup, &mut issuer);
    drop(issuer);
    if let Some(mut cr) = cached {
        // Leave the region zeroed for the next run.
        if let Ok(mem) = cr.ring.region_mut() {
            dirty.clear_all(&layout, mem);
            release(o, cr);
        }
    }
    outcome
}

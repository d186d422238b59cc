//! Map iterations on several threads.
//!
//! The iterations of a map are independent (cosy-verify's map rules: a body writes only its
//! own registers, buffers and descriptors, and adds into accumulators), so when a body only
//! reads, the iterations can run on several threads and give the outcome of running them in
//! order. A statx or a small read of a cached file is mostly kernel time on one core; a second
//! core halves it. This is how `auto` uses a machine's cores where io_uring would hand the
//! same calls to its own worker threads at a higher cost per call.
//!
//! A map qualifies ([`Maps::new`]) when its body
//!
//! - makes no call that may write ([`cosy_model::may_write`]: no call with `Effect::Write`,
//!   no open with `O_CREAT`, `O_TRUNC` or `O_TMPFILE` or flags that are not constants): it
//!   changes no file;
//! - moves the position only of descriptors it opened itself (the rows with `position`:
//!   `read`, `getdents64`, `lseek` on a map-local slot), and closes only those: a shared
//!   position would depend on the order;
//! - calls only built-in functions (a user function may keep state between calls);
//! - is not inside a map already running on threads, and the run is not traced.
//!
//! and when its items times the calls of its body that walk a path (opens, statx) reach
//! `min_calls`: that is the work that spreads over cores.
//!
//! How ([`Machine::parallel_map`]): the items are cut into runs of consecutive items, a few
//! per thread, taken from a shared counter. Each thread has its own registers (accumulators
//! from zero), path variables, loop counters, descriptors opened in the body, and a copy of the
//! arena (the body writes only its own local buffers, zeroed in the copy). Then, in item order:
//! the run of items that stopped first (an error in `stop` mode, a range, loop bound or time
//! error) is where the run stops, with its registers and error, exactly as in order; the
//! accumulators are the sums of the runs up to it (wrapping addition commutes); the errors of
//! `continue` mode are concatenated in order. Runs after a stop may have been made: they only
//! read, so only the statistics see them. If the fuel the runs used adds up to more than was
//! left, or a thread ran out of it, the map runs again on one thread, where the fuel stops it
//! at the operation it would stop at in order (the body changed nothing, so running it twice
//! is invisible too).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cosy_model::{Arg, BUILTINS, Compound, FdRef, Op, Sys};

use super::{Frame, Issuer, Items, LANE, Machine};
use crate::Parallel;
use crate::arena::Arena;
use crate::direct::DirectIssuer;
use crate::outcome::{CallError, Error, Recorder};
use crate::plan::{MapInfo, Plan};

/// Runs of items per thread: more than one, so that a thread slowed by the machine's other
/// work leaves its share to the others.
const RUNS_PER_THREAD: usize = 8;

/// How many threads the maps of a run may use. Whether a map qualifies is found when it
/// starts (not for every map at the start of each run: a run of a few calls would pay more for
/// that than for its calls).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Maps {
    workers: usize,
    min_calls: usize,
}

/// What [`Machine::parallel_map`] did.
pub(crate) enum Ran {
    /// The map ran on threads; the run continues at this operation.
    Done(usize),
    /// The map must run on this thread, with its items evaluated again.
    Again,
    /// The map does not qualify: its items, untouched.
    No(Items),
}

impl Maps {
    /// Maps on `p.workers` threads (none when tracing).
    pub(crate) fn new(p: Parallel, trace: bool) -> Maps {
        if p.workers < 2 || trace {
            return Maps::default();
        }
        Maps {
            workers: p.workers,
            min_calls: p.min_calls,
        }
    }

    /// Whether operation `i` of `c` is in the body of a map that may run on threads.
    pub(crate) fn in_threaded_map(&self, c: &Compound, plan: &Plan, i: usize) -> bool {
        self.workers >= 2
            && plan
                .maps()
                .any(|m| m.begin < i && i < m.end && body_calls(c, plan, m).is_some())
    }

    /// The threads a qualifying map uses.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }
}

/// A nested map's items, unknown before it runs, are counted as this many.
const NESTED_ITEMS: usize = 64;

/// The calls that walk a path in the body of `info` if the map qualifies (see the module
/// documentation), those of a nested map counted [`NESTED_ITEMS`] times: a map over
/// directories whose body maps over their entries is worth threads even when the directories
/// are few.
fn body_calls(c: &Compound, plan: &Plan, info: &MapInfo) -> Option<usize> {
    if info.writes {
        return None;
    }
    let local =
        |a: Option<&Arg>| matches!(a, Some(Arg::Fd(FdRef::Slot(s))) if info.fd_slots.contains(s));
    let mut calls = 0usize;
    for (k, op) in c.ops.get(info.begin + 1..info.end)?.iter().enumerate() {
        let k = info.begin + 1 + k;
        match op {
            Op::Sys { call, args, .. } => {
                // Work worth threads is a path walk (an open, a statx): it spreads over cores.
                // A small read of a descriptor the threads share does not: each call then
                // bounces the file's reference count between the cores (measured: a burst of
                // 1-byte preads runs slower on two threads than on one).
                if call.spec().takes_path() {
                    let depth = plan
                        .maps()
                        .filter(|m| info.begin < m.begin && m.begin < k && k < m.end)
                        .count();
                    let weight = NESTED_ITEMS.saturating_pow(depth.min(4) as u32);
                    calls = calls.saturating_add(weight);
                }
                if cosy_model::may_write(*call, args) {
                    return None;
                }
                // A descriptor whose position (or existence) the threads would share.
                let shared = call.spec().position || *call == Sys::Close;
                if shared && !local(args.first()) {
                    return None;
                }
            }
            Op::Call { func, .. } if !BUILTINS.contains(&func.as_str()) => return None,
            _ => {}
        }
    }
    Some(calls)
}

/// What one run of items left.
struct RunOut {
    regs: Vec<i64>,
    pathvals: Vec<Vec<u8>>,
    used: u64,
    errors: Vec<CallError>,
    result: Result<(), Error>,
}

/// What every thread shares.
struct Shared<'a> {
    c: &'a Compound,
    funcs: &'a crate::Functions,
    plan: &'a Plan,
    info: &'a MapInfo,
    /// The registers at the map's start, accumulators zeroed.
    regs: Vec<i64>,
    pathvals: &'a [Vec<u8>],
    slots: &'a [i32],
    mem: &'a [u8],
    /// The local buffers of this map and of the maps in its body.
    zero: Vec<cosy_model::BufId>,
    snapshot: Vec<i64>,
    fuel: u64,
    limit: std::time::Duration,
    deadline: crate::clock::Deadline,
    /// The runs of items not taken yet.
    runs: Vec<Mutex<Option<Items>>>,
    next: AtomicUsize,
    /// The first run that stopped: runs after it are not started.
    stop: AtomicUsize,
    outs: Vec<Mutex<Option<RunOut>>>,
}

impl<I: Issuer> Machine<'_, I> {
    /// Runs the map at `pc` (ending at `end`, with `items`) on several threads if it
    /// qualifies.
    pub(super) fn parallel_map(
        &mut self,
        pc: usize,
        end: usize,
        items: Items,
    ) -> Result<Ran, Error> {
        let n = items.remaining();
        if self.par.workers < 2 || n < 2 {
            return Ok(Ran::No(items));
        }
        let Some(info) = self.plan.map(pc) else {
            return Ok(Ran::No(items));
        };
        match body_calls(self.c, self.plan, info) {
            Some(calls) if n.saturating_mul(calls) >= self.par.min_calls => {}
            _ => return Ok(Ran::No(items)),
        }
        let workers = self.par.workers.min(n);
        let mut issuers: Vec<DirectIssuer> =
            (0..workers).map_while(|_| self.issuer.fork()).collect();
        if issuers.len() < 2 {
            return Ok(Ran::No(items));
        }
        let runs = items.split(workers * RUNS_PER_THREAD);
        let mut regs = self.regs.clone();
        for r in &info.accumulators {
            if let Some(x) = regs.get_mut(r.index()) {
                *x = 0;
            }
        }
        let shared = Shared {
            c: self.c,
            funcs: self.funcs,
            plan: self.plan,
            info,
            regs,
            pathvals: &self.pathvals,
            slots: self.fds.slots(),
            mem: self.arena.mem(),
            zero: self
                .plan
                .maps()
                .filter(|m| m.begin >= pc && m.end <= end)
                .flat_map(|m| m.zero_bufs.iter().copied())
                .collect(),
            snapshot: info
                .locals
                .iter()
                .map(|r| self.regs.get(r.index()).copied().unwrap_or(0))
                .collect(),
            fuel: self.fuel.saturating_sub(self.used),
            limit: self.limit,
            deadline: self.deadline,
            outs: runs.iter().map(|_| Mutex::new(None)).collect(),
            runs: runs.into_iter().map(|r| Mutex::new(Some(r))).collect(),
            next: AtomicUsize::new(0),
            stop: AtomicUsize::new(usize::MAX),
        };
        let recs = std::thread::scope(|s| {
            let mine = issuers.pop();
            let handles: Vec<_> = issuers
                .into_iter()
                .filter_map(|iss| {
                    std::thread::Builder::new()
                        .name("cosy-map".into())
                        .spawn_scoped(s, {
                            let shared = &shared;
                            move || work(shared, iss, pc, end)
                        })
                        .ok()
                })
                .collect();
            let mut recs: Vec<Recorder> = mine
                .map(|iss| work(&shared, iss, pc, end))
                .into_iter()
                .collect();
            for h in handles {
                // A thread that panicked made calls its recorder cannot report any more; its
                // runs are missing and the map runs again on this thread.
                if let Ok(r) = h.join() {
                    recs.push(r);
                }
            }
            recs
        });
        self.rec.threaded_maps += 1;
        self.rec.threads += recs.len().saturating_sub(1) as u64;
        for r in &recs {
            self.rec.absorb(r);
        }
        let accs = info.accumulators.clone();
        let left = shared.fuel;
        let outs: Vec<Option<RunOut>> = shared
            .outs
            .into_iter()
            .map(|m| m.into_inner().ok().flatten())
            .collect();
        // In item order, up to the first run that stopped.
        let mut used = 0u64;
        let mut sums = vec![0i64; accs.len()];
        let mut errors = Vec::new();
        let mut last = None;
        for out in outs {
            let Some(mut out) = out else {
                return Ok(Ran::Again);
            };
            used = used.saturating_add(out.used);
            if used > left || matches!(out.result, Err(Error::Fuel { .. })) {
                return Ok(Ran::Again);
            }
            for (sum, r) in sums.iter_mut().zip(&accs) {
                *sum = sum.wrapping_add(out.regs.get(r.index()).copied().unwrap_or(0));
            }
            errors.append(&mut out.errors);
            let stopped = out.result.is_err();
            last = Some(out);
            if stopped {
                break;
            }
        }
        let Some(last) = last else {
            return Ok(Ran::Again);
        };
        let before: Vec<i64> = accs
            .iter()
            .map(|r| self.regs.get(r.index()).copied().unwrap_or(0))
            .collect();
        self.regs = last.regs;
        for ((r, b), sum) in accs.iter().zip(before).zip(sums) {
            if let Some(x) = self.regs.get_mut(r.index()) {
                *x = b.wrapping_add(sum);
            }
        }
        self.pathvals = last.pathvals;
        self.used += used;
        self.errors.extend(errors);
        last.result.map(|()| Ran::Done(end + 1))
    }
}

/// One thread: takes runs of items until none is left (or one before stopped), each from the
/// map's start. Returns what its calls counted.
fn work(sh: &Shared<'_>, mut issuer: DirectIssuer, begin: usize, end: usize) -> Recorder {
    // The run's own arena fit its policy; this copy is the same size.
    let Ok(mut arena) = Arena::new(&sh.c.buffers, 1, u64::MAX) else {
        return Recorder::new(false);
    };
    arena.mem_mut().copy_from_slice(sh.mem);
    for &b in &sh.zero {
        if let Ok(span) = arena.layout().whole(b, LANE) {
            arena.slice_mut(span).fill(0);
        }
    }
    let mut m = Machine {
        c: sh.c,
        funcs: sh.funcs,
        plan: sh.plan,
        regs: sh.regs.clone(),
        fds: super::FdTable::borrowed(sh.slots),
        pathvals: sh.pathvals.to_vec(),
        arena,
        counters: vec![0; sh.c.ops.len()],
        frames: Vec::new(),
        rec: Recorder::new(false),
        errors: Vec::new(),
        issuer: &mut issuer,
        fuel: sh.fuel,
        used: 0,
        limit: sh.limit,
        deadline: sh.deadline,
        rargs: Default::default(),
        par: Maps::default(),
    };
    loop {
        let k = sh.next.fetch_add(1, Ordering::Relaxed);
        if k >= sh.runs.len() || k > sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(items) = sh.runs[k].lock().ok().and_then(|mut r| r.take()) else {
            continue;
        };
        m.regs.copy_from_slice(&sh.regs);
        m.pathvals.clone_from_slice(sh.pathvals);
        m.used = 0;
        m.frames.clear();
        m.frames.push(Frame {
            begin,
            end,
            items,
            snapshot: sh.snapshot.clone(),
        });
        // The interpreter does not panic; were it to, the run's outcome is missing and the map
        // runs again on the run's own thread, and this table must still not close what it
        // only borrowed.
        let result = catch_unwind(AssertUnwindSafe(|| {
            m.next_iteration(begin, true)
                .and_then(|pc| m.run_range(pc, end + 1))
        }));
        // A stop inside an iteration leaves its descriptors open: close them here, as the end
        // of the run would.
        for s in &sh.info.fd_slots {
            let fd = m.fds.replace(*s, -1);
            m.close_fd(end, fd);
        }
        let Ok(result) = result else {
            sh.stop.fetch_min(k, Ordering::Relaxed);
            break;
        };
        if result.is_err() {
            sh.stop.fetch_min(k, Ordering::Relaxed);
        }
        let out = RunOut {
            regs: m.regs.clone(),
            pathvals: m.pathvals.clone(),
            used: m.used,
            errors: std::mem::take(&mut m.errors),
            result,
        };
        if let Ok(mut slot) = sh.outs[k].lock() {
            *slot = Some(out);
        }
    }
    // The other slots hold the run's descriptors, which this table only borrowed.
    m.fds.forget();
    std::mem::take(&mut m.rec)
}

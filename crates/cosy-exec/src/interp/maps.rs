//! Maps whose iterations run at once, as several lanes, committed in item order.
//!
//! A map may run its iterations at once when cosy-verify's map rules and its body allow it
//! ([`crate::plan::MapInfo::concurrent`]: nothing in the body changes a file, moves the
//! position of a descriptor the iteration did not open, or calls a user function). Then the
//! iterations are independent and only read, so running them at once gives the outcome of
//! running them in order, provided they are *committed* in order ([`Combined`]):
//!
//! - the registers after the map are those of the last committed iteration, except the
//!   accumulators, which add up (each iteration starts them at zero: its part is a delta, and
//!   wrapping addition commutes); path variables likewise;
//! - the iteration that stopped first in item order (a failing call in `stop` mode, a range,
//!   loop bound or time error) is where the run stops, with its registers and error; later
//!   iterations may have run, but only read, so only the statistics see them;
//! - the errors of `continue` mode and the trace are concatenated in item order;
//! - if the iterations used more fuel than was left, or one ran out, nothing is committed and
//!   the map runs again in the lane, item after item, where the fuel stops it at the operation
//!   it would stop at in order (the iterations changed nothing, so running twice is invisible
//!   too).
//!
//! Two ways to run them, both on the same lanes and the same commit:
//!
//! - a **window** of iteration lanes on the lane's own issuer ([`Issuer::window`], the ring):
//!   each lane runs its item until it blocks; when none can go on, one barrier completes
//!   everything in flight, the lanes retire their calls and go on; a lane that has finished
//!   takes the next item. So `open → read → close` of 64 files is 64 chains in one submission.
//! - **threads**, each with a direct issuer of its own ([`Issuer::fork`]) and a copy of the
//!   arena, taking runs of consecutive items from a shared counter (a statx or a small read of
//!   a cached file is mostly kernel time on one core; a second core halves it).

use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cosy_model::{BufId, Compound, Op};

use super::fds::FdTable;
use super::{Cx, Issuer, Items, Lane, Run, zero_locals};
use crate::Parallel;
use crate::arena::Dirty;
use crate::outcome::{CallError, Error, TraceEntry};
use crate::plan::{MapInfo, Plan};

/// What [`concurrent`] did with a map.
pub(crate) enum Ran {
    /// Its iterations ran and were committed; the run continues after the map.
    Done,
    /// They must run in the lane, with the items evaluated again.
    Again,
    /// The map does not run concurrently: its items, untouched.
    No(Items),
}

/// How many threads the maps of a direct run may use.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Threads {
    workers: usize,
    min_calls: usize,
}

/// Runs of items per thread: more than one, so that a thread slowed by the machine's other
/// work leaves its share to the others.
const RUNS_PER_THREAD: usize = 8;

/// A nested map's items, unknown before it runs, are counted as this many.
const NESTED_ITEMS: usize = 64;

impl Threads {
    /// Maps on `p.workers` threads (none when tracing: the trace would need the threads'
    /// calls in order).
    pub(crate) fn new(p: Parallel, trace: bool) -> Threads {
        if p.workers < 2 || trace {
            return Threads::default();
        }
        Threads {
            workers: p.workers,
            min_calls: p.min_calls,
        }
    }

    /// Whether operation `i` of `c` is in the body of a map that may run on threads.
    pub(crate) fn in_threaded_map(&self, c: &Compound, plan: &Plan, i: usize) -> bool {
        self.workers >= 2
            && plan
                .maps()
                .any(|m| m.begin < i && i < m.end && m.concurrent && path_walks(c, plan, m) > 0)
    }

    /// The threads a qualifying map uses.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }
}

/// The calls of `info`'s body that walk a path, those of a nested map counted
/// [`NESTED_ITEMS`] times: the work worth threads. (A small read of a descriptor the threads
/// share is not: each call bounces the file's reference count between the cores; measured, a
/// burst of 1-byte preads runs slower on two threads than on one.)
fn path_walks(c: &Compound, plan: &Plan, info: &MapInfo) -> usize {
    let mut calls = 0usize;
    for k in info.begin + 1..info.end {
        if let Some(Op::Sys { call, .. }) = c.ops.get(k)
            && call.spec().takes_path()
        {
            let depth = plan
                .maps()
                .filter(|m| info.begin < m.begin && m.begin < k && k < m.end)
                .count();
            calls = calls.saturating_add(NESTED_ITEMS.saturating_pow(depth.min(4) as u32));
        }
    }
    calls
}

/// What one iteration (or run of consecutive iterations) left.
struct IterOut {
    regs: Vec<i64>,
    pathvals: Vec<Arc<CStr>>,
    used: u64,
    errors: Vec<CallError>,
    trace: Vec<TraceEntry>,
    result: Result<(), Error>,
}

impl IterOut {
    /// What `lane` left after its item(s), with `result`.
    fn of(lane: &mut Lane, result: Result<(), Error>) -> IterOut {
        IterOut {
            regs: lane.regs.clone(),
            pathvals: lane.pathvals.clone(),
            used: lane.used,
            errors: std::mem::take(&mut lane.errors),
            trace: lane
                .rec
                .trace
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default(),
            result,
        }
    }
}

/// The iterations committed so far, in item order (see the module documentation).
struct Combined<'a> {
    info: &'a MapInfo,
    /// Fuel left when the map started.
    left: u64,
    used: u64,
    sums: Vec<i64>,
    errors: Vec<CallError>,
    trace: Vec<TraceEntry>,
    last: Option<(Vec<i64>, Vec<Arc<CStr>>)>,
    stopped: Option<Error>,
    again: bool,
}

impl<'a> Combined<'a> {
    fn new(info: &'a MapInfo, left: u64) -> Self {
        Combined {
            info,
            left,
            used: 0,
            sums: vec![0; info.accumulators.len()],
            errors: Vec::new(),
            trace: Vec::new(),
            last: None,
            stopped: None,
            again: false,
        }
    }

    /// Whether no later iteration can be committed.
    fn done(&self) -> bool {
        self.again || self.stopped.is_some()
    }

    /// Commits what `lane` left after the next item in order, read in place (no copy of an
    /// [`IterOut`]: the window's common case, an item finishing in order).
    fn add_lane(&mut self, lane: &mut Lane, result: Result<(), Error>) {
        if self.done() {
            return;
        }
        self.used = self.used.saturating_add(lane.used);
        if self.used > self.left || matches!(result, Err(Error::Fuel { .. })) {
            self.again = true;
            return;
        }
        for (sum, r) in self.sums.iter_mut().zip(&self.info.accumulators) {
            *sum = sum.wrapping_add(lane.regs.get(r.index()).copied().unwrap_or(0));
        }
        self.errors.append(&mut lane.errors);
        if let Some(t) = &mut lane.rec.trace {
            self.trace.append(t);
        }
        self.stopped = result.err();
        match &mut self.last {
            Some((regs, pathvals)) => {
                regs.clone_from(&lane.regs);
                pathvals.clone_from(&lane.pathvals);
            }
            None => self.last = Some((lane.regs.clone(), lane.pathvals.clone())),
        }
    }

    /// Commits the next iteration(s) in item order.
    fn add(&mut self, mut out: IterOut) {
        if self.done() {
            return;
        }
        self.used = self.used.saturating_add(out.used);
        if self.used > self.left || matches!(out.result, Err(Error::Fuel { .. })) {
            self.again = true;
            return;
        }
        for (sum, r) in self.sums.iter_mut().zip(&self.info.accumulators) {
            *sum = sum.wrapping_add(out.regs.get(r.index()).copied().unwrap_or(0));
        }
        self.errors.append(&mut out.errors);
        self.trace.append(&mut out.trace);
        self.stopped = out.result.err();
        self.last = Some((out.regs, out.pathvals));
    }

    /// Applies what was committed to the lane that ran the map.
    fn apply(self, main: &mut Lane) -> Result<Ran, Error> {
        if self.again {
            return Ok(Ran::Again);
        }
        let Some((regs, pathvals)) = self.last else {
            return Ok(Ran::Again);
        };
        let before: Vec<i64> = self
            .info
            .accumulators
            .iter()
            .map(|r| main.regs.get(r.index()).copied().unwrap_or(0))
            .collect();
        main.regs = regs;
        for ((r, b), sum) in self.info.accumulators.iter().zip(before).zip(self.sums) {
            if let Some(x) = main.regs.get_mut(r.index()) {
                *x = b.wrapping_add(sum);
            }
        }
        main.pathvals = pathvals;
        main.used = main.used.saturating_add(self.used);
        main.errors.extend(self.errors);
        if let Some(t) = &mut main.rec.trace {
            t.extend(self.trace);
        }
        match self.stopped {
            Some(e) => Err(e),
            None => Ok(Ran::Done),
        }
    }
}

/// The registers an iteration starts with: the map's start, accumulators at zero.
fn start_regs(main: &Lane, info: &MapInfo) -> Vec<i64> {
    let mut regs = main.regs.clone();
    for r in &info.accumulators {
        if let Some(x) = regs.get_mut(r.index()) {
            *x = 0;
        }
    }
    regs
}

/// The local buffers of the map at `begin..=end` and of the maps in its body.
fn local_buffers(plan: &Plan, begin: usize, end: usize) -> Vec<BufId> {
    plan.maps()
        .filter(|m| m.begin >= begin && m.end <= end)
        .flat_map(|m| m.zero_bufs.iter().copied())
        .collect()
}

/// Runs the map at `begin..=end` with `items` concurrently if it qualifies.
pub(crate) fn concurrent<I: Issuer>(
    main: &mut Lane,
    cx: &Cx<'_>,
    issuer: &mut I,
    dirty: &mut Dirty,
    begin: usize,
    end: usize,
    items: Items,
) -> Result<Ran, Error> {
    let n = items.remaining();
    if !main.main || n < 2 {
        return Ok(Ran::No(items));
    }
    let Some(info) = cx.plan.map(begin).filter(|m| m.concurrent) else {
        return Ok(Ran::No(items));
    };
    // A window runs each iteration's nested maps item after item in its lane: the innermost
    // concurrent maps get the windows (a map over ten directories of a thousand files each is
    // better as ten windows of files than one window of ten directories).
    let inner_window = cx.plan.maps().any(|m| {
        begin < m.begin && m.end < end && m.concurrent && issuer.worth_window(m.begin + 1..m.end)
    });
    if issuer.window() >= 2 && issuer.worth_window(begin + 1..end) && !inner_window {
        return window(main, cx, issuer, dirty, info, items);
    }
    let t = cx.threads;
    if t.workers >= 2 && n.saturating_mul(path_walks(cx.c, cx.plan, info)) >= t.min_calls {
        return threads(main, cx, issuer, info, items);
    }
    Ok(Ran::No(items))
}

/// A window of iteration lanes on `issuer` (see the module documentation).
fn window<I: Issuer>(
    main: &mut Lane,
    cx: &Cx<'_>,
    issuer: &mut I,
    dirty: &mut Dirty,
    info: &MapInfo,
    mut items: Items,
) -> Result<Ran, Error> {
    let (begin, end) = (info.begin, info.end);
    // What the lane that runs the map still has in flight (closes of replaced descriptors: a
    // call that may fail would have blocked the map) completes first: the issuer counts it
    // against lane 0, which the first iteration lane is too, and would hold that lane's plain
    // calls back for calls no iteration waits for.
    if main.has_pending() {
        main.barrier(cx, issuer)?;
    }
    // Within `open_fds`: each further lane holds the descriptors of its body's slots.
    let w = issuer
        .window()
        .min(items.remaining())
        .min(main.limits.map_lanes(cx.c, info))
        .max(1);
    let regs = start_regs(main, info);
    let zero = local_buffers(cx.plan, begin, end);
    // The `MapBegin` itself takes one unit before the first iteration.
    let left = main.fuel.saturating_sub(main.used.saturating_add(1));
    let mut lanes: Vec<Lane> = (0..w)
        .map(|k| {
            let mut l = Lane::new(cx.c, k, left, cx.trace);
            l.main = false;
            l.limits = main.limits.clone();
            l.fds = FdTable::borrowed(main.fds.slots());
            l
        })
        .collect();
    // The item each lane runs, by index in item order.
    let mut busy: Vec<Option<usize>> = vec![None; w];
    // Lanes whose item has ended, with its result, waiting for the closes it queued: the item
    // is committed (its trace with them) once they have completed.
    let mut ending: Vec<Option<Result<(), Error>>> = (0..w).map(|_| None).collect();
    // Items that finished before an older one, by index from `committed`.
    let mut done: std::collections::VecDeque<Option<IterOut>> = Default::default();
    let mut combined = Combined::new(info, left);
    let (mut next, mut committed, mut exhausted) = (0usize, 0usize, false);
    let mut idle = 0;
    let mut timed_out = None;
    loop {
        // Free lanes take the next items.
        for (k, lane) in lanes.iter_mut().enumerate() {
            if busy[k].is_some() || exhausted || combined.done() {
                continue;
            }
            let Some(binding) = items.next(&cx.c.data) else {
                exhausted = true;
                continue;
            };
            lane.regs.copy_from_slice(&regs);
            lane.pathvals.clone_from(&main.pathvals);
            lane.fds.set_all(main.fds.slots());
            for s in &info.fd_slots {
                lane.fds.replace(*s, -1);
            }
            lane.used = 0;
            lane.counters.fill(0);
            lane.frames.clear();
            lane.frames.push(super::Frame {
                begin,
                end,
                items: Items::none(),
                snapshot: Vec::new(),
            });
            lane.flush_marks(cx.layout, dirty);
            zero_locals(cx.layout, issuer, dirty, &zero, k);
            lane.bind(binding);
            lane.pc = begin + 1;
            busy[k] = Some(next);
            next += 1;
        }
        // Every lane runs until it blocks or ends its item.
        let mut progressed = false;
        for (k, lane) in lanes.iter_mut().enumerate() {
            let Some(item) = busy[k] else { continue };
            if ending[k].is_some() {
                continue;
            }
            let before = (lane.pc, lane.used);
            let result = match lane.run(cx, issuer, dirty, end + 1) {
                Run::Done => Ok(()),
                Run::Failed(e) => Err(e),
                Run::Blocked => {
                    progressed |= (lane.pc, lane.used) != before;
                    continue;
                }
            };
            progressed = true;
            lane.close_slots(issuer, end, &info.fd_slots);
            if lane.has_pending() {
                ending[k] = Some(result);
                continue;
            }
            finish(&mut combined, &mut done, &mut committed, item, lane, result);
            busy[k] = None;
        }
        if combined.done() {
            // Items after the first that stopped are never committed: lanes with nothing in
            // flight leave them now.
            for (k, lane) in lanes.iter_mut().enumerate() {
                if busy[k].is_some() && !lane.has_pending() {
                    lane.close_slots(issuer, end, &info.fd_slots);
                    busy[k] = None;
                    ending[k] = None;
                }
            }
        }
        let pending = lanes.iter().any(Lane::has_pending);
        if !pending {
            if busy.iter().all(Option::is_none) && (exhausted || combined.done()) {
                break;
            }
            if !progressed {
                idle += 1;
                if idle > 1 {
                    timed_out = Some(Error::Setup(format!(
                        "op {begin}: the map's iterations cannot go on with nothing in flight"
                    )));
                    break;
                }
            }
            continue;
        }
        idle = 0;
        if !issuer.wait(&mut main.rec, cx.deadline.instant()) {
            timed_out = Some(Error::Time {
                op: begin as u32,
                limit: cx.limit,
            });
            break;
        }
        for (k, lane) in lanes.iter_mut().enumerate() {
            if let Err(e) = lane.retire(cx, issuer)
                && busy[k].is_some()
            {
                lane.close_slots(issuer, end, &info.fd_slots);
                ending[k] = Some(Err(e));
            }
            if !lane.has_pending()
                && let Some(result) = ending[k].take()
                && let Some(item) = busy[k].take()
            {
                finish(&mut combined, &mut done, &mut committed, item, lane, result);
            }
        }
    }
    // What is still in flight (closes, iterations after a stop or a timeout) is completed and
    // dropped; every descriptor an iteration opened is closed.
    for lane in lanes.iter_mut() {
        lane.close_slots(issuer, end, &info.fd_slots);
    }
    if lanes.iter().any(Lane::has_pending) {
        let _ = issuer.wait(&mut main.rec, None);
    }
    for lane in lanes.iter_mut() {
        lane.discard(issuer);
        lane.close_slots(issuer, end, &info.fd_slots);
    }
    for lane in lanes.iter_mut() {
        lane.drain(issuer);
        lane.flush_marks(cx.layout, dirty);
        lane.rec.trace = None;
        main.rec.absorb(&lane.rec);
    }
    if let Some(e) = timed_out {
        return Err(e);
    }
    combined.apply(main)
}

/// An item of a window has finished in `lane` with `result`: committed at once if it is the
/// next in order (then the items after it that finished before it), kept in `done` otherwise
/// (`done[i]` is item `committed + i`).
fn finish(
    combined: &mut Combined<'_>,
    done: &mut std::collections::VecDeque<Option<IterOut>>,
    committed: &mut usize,
    item: usize,
    lane: &mut Lane,
    result: Result<(), Error>,
) {
    let at = item - *committed;
    if at > 0 {
        if done.len() <= at {
            done.resize_with(at + 1, || None);
        }
        done[at] = Some(IterOut::of(lane, result));
        return;
    }
    combined.add_lane(lane, result);
    done.pop_front();
    *committed += 1;
    while let Some(Some(_)) = done.front() {
        if let Some(Some(out)) = done.pop_front() {
            combined.add(out);
        }
        *committed += 1;
    }
}

/// What every thread of a threaded map shares.
struct Shared<'a, 'c> {
    cx: &'a Cx<'c>,
    info: &'a MapInfo,
    regs: Vec<i64>,
    pathvals: &'a [Arc<CStr>],
    slots: &'a [i32],
    zero: Vec<BufId>,
    fuel: u64,
    /// The main lane's limits (a concurrent body writes nothing, but its lanes check as
    /// the main one would).
    limits: super::limits::Limits,
    /// The runs of items not taken yet.
    runs: Vec<Mutex<Option<Items>>>,
    next: AtomicUsize,
    /// The first run that stopped: runs after it are not started.
    stop: AtomicUsize,
    outs: Vec<Mutex<Option<IterOut>>>,
}

/// Runs of items on threads (see the module documentation).
fn threads<I: Issuer>(
    main: &mut Lane,
    cx: &Cx<'_>,
    issuer: &mut I,
    info: &MapInfo,
    items: Items,
) -> Result<Ran, Error> {
    // Within `open_fds`: each further thread holds the descriptors of its body's slots.
    let workers = cx
        .threads
        .workers
        .min(items.remaining())
        .min(main.limits.map_lanes(cx.c, info))
        // Within `arena_bytes`: each thread has a copy of the arena.
        .min(main.limits.map_threads(cx.layout.len()));
    let mut issuers: Vec<_> = (0..workers).map_while(|_| issuer.fork()).collect();
    if issuers.len() < 2 {
        return Ok(Ran::No(items));
    }
    let runs = items.split(workers * RUNS_PER_THREAD);
    // The `MapBegin` itself takes one unit before the first iteration.
    let left = main.fuel.saturating_sub(main.used.saturating_add(1));
    let shared = Shared {
        cx,
        info,
        regs: start_regs(main, info),
        pathvals: &main.pathvals,
        slots: main.fds.slots(),
        zero: local_buffers(cx.plan, info.begin, info.end),
        fuel: left,
        limits: main.limits.clone(),
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
                        // Each thread's blocking calls end at the deadline too.
                        move || {
                            let _alarm = cx
                                .plan
                                .blocks()
                                .then(|| crate::alarm::Alarm::arm(&cx.deadline))
                                .flatten();
                            work(shared, iss)
                        }
                    })
                    .ok()
            })
            .collect();
        let mut recs: Vec<_> = mine.map(|iss| work(&shared, iss)).into_iter().collect();
        for h in handles {
            // A thread that panicked made calls its recorder cannot report any more; its runs
            // are missing and the map runs again in the lane.
            if let Ok(r) = h.join() {
                recs.push(r);
            }
        }
        recs
    });
    main.rec.threaded_maps += 1;
    main.rec.threads += recs.len().saturating_sub(1) as u64;
    for r in &recs {
        main.rec.absorb(r);
    }
    let mut combined = Combined::new(info, left);
    for out in shared.outs {
        match out.into_inner().ok().flatten() {
            Some(out) => combined.add(out),
            None if combined.done() => break,
            None => return Ok(Ran::Again),
        }
        if combined.done() {
            break;
        }
    }
    combined.apply(main)
}

/// One thread: takes runs of items until none is left (or one before stopped), each from the
/// map's start. Returns what its calls counted.
fn work(sh: &Shared<'_, '_>, mut issuer: crate::direct::DirectIssuer) -> crate::outcome::Recorder {
    let cx = sh.cx;
    let (begin, end) = (sh.info.begin, sh.info.end);
    let mut dirty = Dirty::new(cx.layout);
    // The copy of the arena holds what the map's local buffers held before: zeroed, as every
    // iteration starts.
    for &b in &sh.zero {
        if let Ok(span) = cx.layout.whole(b, 0)
            && let Some(mem) = issuer.bytes_mut(span)
        {
            mem.fill(0);
        }
    }
    let mut lane = Lane::new(cx.c, 0, sh.fuel, false);
    lane.limits = sh.limits.clone();
    lane.main = false;
    lane.fds = FdTable::borrowed(sh.slots);
    loop {
        let k = sh.next.fetch_add(1, Ordering::Relaxed);
        if k >= sh.runs.len() || k > sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(items) = sh.runs[k].lock().ok().and_then(|mut r| r.take()) else {
            continue;
        };
        lane.regs.copy_from_slice(&sh.regs);
        lane.pathvals.clone_from_slice(sh.pathvals);
        lane.used = 0;
        lane.frames.clear();
        // The interpreter does not panic; were it to, the run's outcome is missing and the map
        // runs again in its lane.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let pc = lane.start_map(cx, &mut issuer, &mut dirty, begin, end, items)?;
            lane.pc = pc;
            lane.drive(cx, &mut issuer, &mut dirty, end + 1)
        }));
        // A stop inside an iteration leaves its descriptors open: close them here, as the end
        // of the run would.
        lane.close_slots(&mut issuer, end, &sh.info.fd_slots);
        let Ok(result) = result else {
            sh.stop.fetch_min(k, Ordering::Relaxed);
            break;
        };
        if result.is_err() {
            sh.stop.fetch_min(k, Ordering::Relaxed);
        }
        let out = IterOut::of(&mut lane, result);
        if let Ok(mut slot) = sh.outs[k].lock() {
            *slot = Some(out);
        }
    }
    std::mem::take(&mut lane.rec)
}

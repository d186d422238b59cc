//! The auto executor, the default backend: for each operation class, the cheaper of a plain
//! system call and the ring, from costs measured on the running machine.
//!
//! The costs are a [`Calibration`]: [`RunOptions::calibration`](crate::RunOptions) if given,
//! else the file named by the environment variable [`ENV_CALIBRATION`] (`COSY_CALIBRATION`),
//! else [`Calibration::cached`] (measured once, a few milliseconds, and kept under
//! `$XDG_CACHE_HOME/cosy/`). The file is read once per process.
//!
//! For every system call of the compound, [`Choice`] estimates how many calls one
//! io_uring_enter would carry in its context (the *batch*: the calls a thread queues before it
//! needs a result — the iterations of a concurrent map times the calls of an iteration, or the
//! independent calls of straight-line code) and compares
//!
//! - direct: a system call (`syscall_ns`; `pread_direct_ns` for reads and writes,
//!   `statx_direct_ns` for calls that walk a path; nothing for `nop`),
//! - ring: the call's kernel work plus a share of one io_uring_enter (`ring_enter_ns` / batch)
//!   plus the ring's own cost per call (`ring_nop_ns`; `pread_ring_ns`, and `statx_ring_ns`
//!   for the calls io_uring hands to a worker thread).
//!
//! A call goes to the ring only if that is at least 10% cheaper; the run uses the ring
//! executor only if the calls it would send there save more than the ring executor's own cost
//! per run, and the direct executor otherwise (no ring is set up at all). So a single call,
//! statx on warm caches, or a burst of `nop`s (which cost nothing directly) run directly, and
//! a burst of independent reads or opens worth batching goes to the ring.

use std::sync::{Arc, OnceLock};

use cosy_model::{Compound, CostClass, Op, Sys, UringOp, Value};
use cosy_uring::Calibration;
use cosy_verify::Verified;

use crate::direct::DirectExecutor;
use crate::plan::Plan;
use crate::ring::plan::{Caps, RingPlan, Route};
use crate::{Backend, Outcome, RunOptions};

/// The environment variable naming a calibration file for `auto`.
pub const ENV_CALIBRATION: &str = "COSY_CALIBRATION";

/// What the ring executor costs per run beyond its calls (setting up the interpreter, taking
/// a cached ring, zeroing what the run wrote), in nanoseconds: measured on the development
/// machine as a few microseconds; a compound that saves less runs directly.
const RING_RUN_NS: f64 = 4_000.0;

/// What each thread of a map adds, as a share of one thread's speed (the threads share the
/// kernel's locks and the machine's other work).
const THREAD_EFFICIENCY: f64 = 0.75;

/// A call goes to the ring only if that is cheaper by this factor.
const MARGIN: f64 = 0.9;

/// The calibration `auto` uses (see the module documentation).
pub fn calibration(opts: &RunOptions) -> Arc<Calibration> {
    if let Some(c) = &opts.calibration {
        return c.clone();
    }
    static CAL: OnceLock<Arc<Calibration>> = OnceLock::new();
    CAL.get_or_init(|| {
        let from_env = std::env::var_os(ENV_CALIBRATION)
            .and_then(|p| Calibration::load(std::path::Path::new(&p)).ok());
        Arc::new(from_env.unwrap_or_else(Calibration::cached))
    })
    .clone()
}

/// What `auto` decided for a compound.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// Per operation: whether its call goes to the ring.
    pub ring: Vec<bool>,
    /// Whether the run uses the ring executor at all.
    pub use_ring: bool,
    /// Estimated nanoseconds saved per run by the calls sent to the ring.
    pub saving_ns: f64,
}

impl Choice {
    /// The choice for `v` with `opts` and costs `cal`.
    pub fn new(v: &Verified, opts: &RunOptions, cal: &Calibration) -> Choice {
        let c = v.compound();
        let n = c.ops.len();
        let none = Choice {
            ring: vec![false; n],
            use_ring: false,
            saving_ns: 0.0,
        };
        let probe = opts.ring.probe();
        if !probe.available() || !cal.uring {
            return none;
        }
        let Ok(plan) = Plan::new(v, &opts.functions) else {
            return none;
        };
        let caps = Caps {
            probe: Some(&probe),
            registered: opts.ring.register_buffers,
            files: opts.ring.direct_descriptors,
            confined: v.policy().root.is_some(),
        };
        let rp = RingPlan::new(c, &plan, &caps, &|_, _| true);
        if !rp.any_ring {
            return none;
        }
        let costs = Costs::from(cal);
        let batch = batches(c, &plan, &rp, opts.ring.window);
        // Directly, the calls of a map that runs on threads share the machine's cores.
        let threads = crate::interp::maps::Threads::new(
            crate::Parallel {
                workers: opts.parallel.workers_for(crate::Backend::Auto),
                ..opts.parallel
            },
            opts.trace,
        );
        let speedup = (threads.workers() as f64 * THREAD_EFFICIENCY).max(1.0);
        let mut ring = vec![false; n];
        let mut saving = 0.0;
        for (i, op) in c.ops.iter().enumerate() {
            let Op::Sys { call, .. } = op else { continue };
            if rp.route[i] != Route::Ring {
                continue;
            }
            let (b, times) = batch[i];
            let mut d = costs.direct(*call);
            if threads.in_threaded_map(c, &plan, i) {
                d /= speedup;
            }
            let r = costs.ring(*call, b);
            if r < d * MARGIN {
                ring[i] = true;
                saving += (d - r) * times;
            }
        }
        let use_ring = saving > RING_RUN_NS;
        Choice {
            ring: if use_ring { ring } else { vec![false; n] },
            use_ring,
            saving_ns: saving,
        }
    }
}

/// Costs per call, in nanoseconds.
struct Costs {
    syscall: f64,
    enter: f64,
    ring_op: f64,
    statx_direct: f64,
    statx_ring: f64,
    pread_direct: f64,
    pread_ring: f64,
}

fn finite(x: f64, or: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { or }
}

impl Costs {
    fn from(c: &Calibration) -> Costs {
        let syscall = finite(c.syscall_ns, 150.0);
        let statx_direct = finite(c.statx_direct_ns, 4.0 * syscall);
        let pread_direct = finite(c.pread_direct_ns, 2.0 * syscall);
        Costs {
            syscall,
            enter: finite(c.ring_enter_ns, f64::INFINITY),
            ring_op: finite(c.ring_nop_ns, f64::INFINITY),
            statx_direct,
            statx_ring: finite(c.statx_ring_ns, f64::INFINITY),
            pread_direct,
            pread_ring: finite(c.pread_ring_ns, f64::INFINITY),
        }
    }

    /// A call issued directly: a data transfer costs what a pread was measured to, a path
    /// walk (or a statx) what a statx was, anything else a trivial system call.
    fn direct(&self, call: Sys) -> f64 {
        let spec = call.spec();
        match spec.uring {
            Some(UringOp::Nop) => 0.0,
            Some(UringOp::Read | UringOp::Write | UringOp::Splice) => self.pread_direct,
            Some(UringOp::Statx) => self.statx_direct,
            _ if spec.takes_path() => self.statx_direct,
            _ => self.syscall,
        }
    }

    /// A call through the ring, `batch` calls per io_uring_enter.
    fn ring(&self, call: Sys, batch: f64) -> f64 {
        let batch = batch.max(1.0);
        // The calibration measured reads in batches of 64 and statx in batches of 16.
        let share = |measured: f64| (self.enter / batch - self.enter / measured).max(0.0);
        let spec = call.spec();
        match spec.cost {
            CostClass::Syscall => f64::INFINITY,
            CostClass::Worker => self.statx_ring + share(16.0),
            CostClass::Inline => match spec.uring {
                Some(UringOp::Read | UringOp::Write | UringOp::Splice) => {
                    self.pread_ring + share(64.0)
                }
                // The path walk, without the transition.
                _ if spec.takes_path() => {
                    (self.statx_direct - self.syscall).max(0.0) + self.ring_op + self.enter / batch
                }
                _ => self.ring_op + self.enter / batch,
            },
        }
    }
}

/// Per operation: the calls one io_uring_enter is expected to carry around it, and how many
/// times it is expected to run per run.
fn batches(c: &Compound, plan: &Plan, rp: &RingPlan, window: usize) -> Vec<(f64, f64)> {
    let n = c.ops.len();
    let mut out = vec![(1.0, 1.0); n];
    // Straight-line segments of the main program: ring calls up to the first operation that
    // needs one of their results (or a plain call, a map, a function call).
    let mut i = 0;
    while i < n {
        let start = i;
        let mut pending: Vec<cosy_model::Reg> = Vec::new();
        let mut calls = 0usize;
        while i < n {
            let op = &c.ops[i];
            let needs = op.reads().iter().any(|r| pending.contains(r));
            let stop = needs
                || matches!(
                    op,
                    Op::MapBegin { .. } | Op::MapEnd { .. } | Op::Call { .. }
                )
                || (matches!(op, Op::Sys { .. }) && rp.route[i] != Route::Ring)
                || matches!(op, Op::Jump { target, .. } if (*target as usize) <= i);
            if stop && i > start {
                break;
            }
            if let Op::Sys { ret, .. } = op
                && rp.route[i] == Route::Ring
            {
                calls += 1;
                if let cosy_model::Ret::Reg(r) = ret {
                    pending.push(*r);
                }
            }
            i += 1;
            if stop {
                break;
            }
        }
        for x in &mut out[start..i] {
            x.0 = calls.max(1) as f64;
        }
    }
    // Concurrent maps: an iteration's calls times the iterations in the window.
    for info in plan.maps() {
        let items = match &c.ops[info.begin] {
            Op::MapBegin { source, .. } => estimate_items(source),
            _ => 1.0,
        };
        let window = if info.concurrent && rp.route[info.begin + 1..info.end].contains(&Route::Ring)
        {
            items.min(window as f64).max(1.0)
        } else {
            1.0
        };
        for k in info.begin + 1..info.end {
            if let Some(x) = out.get_mut(k) {
                x.0 *= window;
                x.1 *= items;
            }
        }
    }
    out
}

/// How many items a map source is expected to have.
fn estimate_items(source: &cosy_model::MapSource) -> f64 {
    use cosy_model::MapSource;
    match source {
        MapSource::Paths { list, .. } => list.len() as f64,
        MapSource::Offsets { list, .. } => list.len() as f64,
        MapSource::Range {
            start: Value::Imm(s),
            end: Value::Imm(e),
            step: Value::Imm(st),
            ..
        } if *st > 0 => ((*e as f64 - *s as f64) / *st as f64).ceil().max(0.0),
        // A directory's entries, a range computed at run time.
        _ => 64.0,
    }
}

/// The auto executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoExecutor;

/// Choices made lately, by compound (its address and size) and options: a program runs the
/// same compound again and again, and the choice costs about as much as a short run. A stale
/// hit (another compound at the same address) cannot change an outcome — any choice of routes
/// runs a compound correctly — only its speed.
struct Memo {
    key: (usize, usize, usize, usize, bool, bool, bool),
    cal: usize,
    choice: Arc<Choice>,
}

thread_local! {
    static MEMO: std::cell::RefCell<Vec<Memo>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn memo_key(v: &Verified, opts: &RunOptions) -> (usize, usize, usize, usize, bool, bool, bool) {
    let c = v.compound();
    let o = &opts.ring;
    (
        std::ptr::from_ref(c) as usize,
        c.ops.len(),
        std::ptr::from_ref(v.policy()) as usize,
        o.window,
        o.uring && o.probe.is_none(),
        o.register_buffers,
        o.direct_descriptors,
    )
}

/// The choice for `v`, from the memo if it is there.
fn choice(v: &Verified, opts: &RunOptions, cal: &Arc<Calibration>) -> Arc<Choice> {
    let key = memo_key(v, opts);
    let cal_id = Arc::as_ptr(cal) as usize;
    let hit = MEMO
        .try_with(|m| {
            m.borrow()
                .iter()
                .find(|x| x.key == key && x.cal == cal_id)
                .map(|x| x.choice.clone())
        })
        .ok()
        .flatten();
    if let Some(c) = hit {
        return c;
    }
    let c = Arc::new(Choice::new(v, opts, cal));
    let _ = MEMO.try_with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= 8 {
            m.remove(0);
        }
        m.push(Memo {
            key,
            cal: cal_id,
            choice: c.clone(),
        });
    });
    c
}

impl AutoExecutor {
    /// Runs `v` under its policy: on the ring executor with the calls worth batching sent to
    /// the ring, or on the direct executor when none is.
    pub fn run(v: &Verified, opts: &RunOptions) -> Outcome {
        let cal = calibration(opts);
        let choice = choice(v, opts, &cal);
        if !choice.use_ring {
            return DirectExecutor::run_on(v, opts, opts.parallel.workers_for(Backend::Auto));
        }
        crate::ring::run_with(v, opts, &|i, _| {
            choice.ring.get(i).copied().unwrap_or(false)
        })
    }

    /// What auto would do with `v` (for inspection and tests).
    pub fn choose(v: &Verified, opts: &RunOptions) -> Choice {
        Choice::new(v, opts, &calibration(opts))
    }
}

//! The direct executor: every call is a plain system call, issued in program order. It is the
//! reference every other executor must agree with (docs/semantics.md).

use std::time::Instant;

use cosy_model::{Confine, Sys};
use cosy_uring::IoBuf;
use cosy_verify::Verified;

use crate::arena::{self, Layout, Span};
use crate::confine::Root;
use crate::interp::{self, At, Issued, Issuer};
use crate::outcome::{Outcome, Recorder};
use crate::plan::Plan;
use crate::sys::{self, ResolvedArgs};
use crate::{Backend, RunOptions};

/// Issues each call as a system call, confined to the policy root if there is one; holds the
/// arena's memory.
#[derive(Debug)]
pub struct DirectIssuer {
    root: Option<Root>,
    mem: IoBuf,
}

impl DirectIssuer {
    /// An issuer confined to `root` (or not confined) with a zeroed arena of `len` bytes.
    pub(crate) fn new(root: Option<Root>, len: usize) -> Result<Self, String> {
        let mem = IoBuf::try_zeroed(len)
            .ok_or_else(|| format!("cannot allocate an arena of {len} bytes"))?;
        Ok(DirectIssuer { root, mem })
    }

    /// Issues `call` now as a system call over `mem`: the shared path of every executor.
    pub(crate) fn issue_in(
        root: Option<&Root>,
        op: u32,
        call: Sys,
        args: &mut ResolvedArgs,
        mem: &mut [u8],
        rec: &mut Recorder,
    ) -> i64 {
        if call == Sys::Nop {
            // No system call on the direct executor.
            rec.call(op, call, -1, 0, false);
            return 0;
        }
        match root {
            Some(root) if call.spec().confine != Confine::NoPath => {
                root.issue(op, call, args, mem, rec)
            }
            _ => {
                let r = sys::to_ret(sys::issue(call, args, mem));
                rec.call(op, call, args.first_fd(), r, true);
                r
            }
        }
    }
}

impl Issuer for DirectIssuer {
    fn issue(&mut self, at: At, call: Sys, args: &mut ResolvedArgs, rec: &mut Recorder) -> Issued {
        #[cfg(feature = "fault-injection")]
        if let Some(r) = crate::faults::before(at.op, call, args, rec) {
            return Issued::Ready(r);
        }
        let mem = self.mem.as_mut_slice();
        Issued::Ready(Self::issue_in(
            self.root.as_ref(),
            at.op,
            call,
            args,
            mem,
            rec,
        ))
    }

    fn bytes(&self, span: Span) -> Option<&[u8]> {
        Some(arena::bytes(self.mem.as_slice(), span))
    }

    fn bytes_mut(&mut self, span: Span) -> Option<&mut [u8]> {
        Some(arena::bytes_mut(self.mem.as_mut_slice(), span))
    }

    fn whole_mut(&mut self) -> Option<&mut [u8]> {
        Some(self.mem.as_mut_slice())
    }

    fn fork(&self) -> Option<DirectIssuer> {
        let root = match &self.root {
            Some(r) => Some(r.try_clone().ok()?),
            None => None,
        };
        let mut mem = IoBuf::try_zeroed(self.mem.len())?;
        mem.as_mut_slice().copy_from_slice(self.mem.as_slice());
        Some(DirectIssuer { root, mem })
    }
}

/// The direct executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectExecutor;

impl DirectExecutor {
    /// Runs `v` under its policy: opens the policy root, runs every operation with plain
    /// system calls, closes every descriptor the compound opened.
    /// Maps run on one thread unless [`RunOptions::parallel`] names more.
    pub fn run(v: &Verified, opts: &RunOptions) -> Outcome {
        Self::run_on(v, opts, opts.parallel.workers_for(Backend::Direct))
    }

    /// Runs `v` with up to `workers` threads per qualifying map ([`crate::Parallel`]).
    pub(crate) fn run_on(v: &Verified, opts: &RunOptions, workers: usize) -> Outcome {
        Self::run_through(v, opts, workers, |d| d).0
    }

    /// Runs `v` through the issuer `wrap` makes of the direct issuer (a recording one for
    /// [`crate::session::replay`]); the outcome, and the issuer if the run got that far.
    pub(crate) fn run_through<I: Issuer>(
        v: &Verified,
        opts: &RunOptions,
        workers: usize,
        wrap: impl FnOnce(DirectIssuer) -> I,
    ) -> (Outcome, Option<I>) {
        let started = Instant::now();
        let c = v.compound();
        let plan = match Plan::new(v, &opts.functions) {
            Ok(p) => p,
            Err(m) => return (Outcome::setup_error(m, started.elapsed()), None),
        };
        let layout = match Layout::new(&c.buffers, 1, v.policy().arena_bytes) {
            Ok(l) => l,
            Err(e) => return (Outcome::setup_error(e.to_string(), started.elapsed()), None),
        };
        let root = match open_root(v) {
            Ok(r) => r,
            Err(m) => return (Outcome::setup_error(m, started.elapsed()), None),
        };
        let mut issuer = match DirectIssuer::new(root, layout.len()) {
            Ok(i) => wrap(i),
            Err(m) => return (Outcome::setup_error(m, started.elapsed()), None),
        };
        let threads = interp::maps::Threads::new(
            crate::Parallel {
                workers,
                ..opts.parallel
            },
            opts.trace,
        );
        let setup = interp::Setup {
            plan: &plan,
            layout: &layout,
            functions: &opts.functions,
            trace: opts.trace,
            threads,
            started,
        };
        let out = interp::execute(v, setup, &mut issuer).0;
        (out, Some(issuer))
    }
}

/// Opens the policy root of `v`, if it has one.
pub(crate) fn open_root(v: &Verified) -> Result<Option<Root>, String> {
    match &v.policy().root {
        None => Ok(None),
        Some(p) => Root::open(p)
            .map(Some)
            .map_err(|e| format!("cannot open the policy root {}: {e}", p.display())),
    }
}

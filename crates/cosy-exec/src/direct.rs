//! The direct executor: every call is a plain system call, issued in program order. It is the
//! reference every other executor must agree with (docs/semantics.md).

use std::time::Instant;

use cosy_model::{Confine, Sys};
use cosy_verify::Verified;

use crate::confine::Root;
use crate::interp::{self, Issuer};
use crate::outcome::{Outcome, Recorder};
use crate::sys::{self, ResolvedArgs};
use crate::{Backend, RunOptions};

/// Issues each call as a system call, confined to the policy root if there is one.
#[derive(Debug, Default)]
pub struct DirectIssuer {
    root: Option<Root>,
}

impl DirectIssuer {
    /// An issuer confined to `root` (or not confined).
    pub(crate) fn new(root: Option<Root>) -> Self {
        DirectIssuer { root }
    }

    /// The policy root, if the issuer is confined.
    pub(crate) fn root(&self) -> Option<&Root> {
        self.root.as_ref()
    }
}

impl Issuer for DirectIssuer {
    fn issue(
        &mut self,
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
        match &self.root {
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

    fn fork(&self) -> Option<DirectIssuer> {
        let root = match &self.root {
            Some(r) => Some(r.try_clone().ok()?),
            None => None,
        };
        Some(DirectIssuer::new(root))
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
        let started = Instant::now();
        let root = match open_root(v) {
            Ok(r) => r,
            Err(m) => return Outcome::setup_error(m, started.elapsed()),
        };
        let mut issuer = DirectIssuer::new(root);
        let parallel = crate::Parallel {
            workers,
            ..opts.parallel
        };
        interp::execute(
            v,
            &opts.functions,
            opts.trace,
            parallel,
            &mut issuer,
            started,
        )
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

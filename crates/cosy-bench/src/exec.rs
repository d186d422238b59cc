//! Compounds as variants: build once (optimize, verify), run with each of cosy's executors.
//!
//! A workload builds its compound with [`cosy_model::Builder`]; [`Compiled::new`] verifies it
//! under [`Policy::trusted`] (with the workload's user functions allowed), optimizes it with
//! cosy-opt's default passes and verifies the result again. All of that happens once, before
//! timing, as a program does once at start-up; what is timed is [`cosy_exec::run`].

use std::sync::Arc;

use cosy_exec::{Backend, Functions, RunOptions};
use cosy_model::{Compound, Policy};
use cosy_verify::Verified;

use crate::framework::{Answer, Entry, Variant, VariantError};

/// The executors every compound workload runs with, by variant name.
pub const BACKENDS: [Backend; 3] = [Backend::Direct, Backend::Ring, Backend::Auto];

/// The longest one run of a compound may take before the executor stops it.
pub const RUN_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

const NO_REWRITE: &str = "optimizer: no rewrite";

/// A compound ready to run: verified, optimized, with its functions.
pub struct Compiled {
    verified: Verified,
    functions: Functions,
    /// What the optimizer did (`pread×2, dead_results×1`), or why it was not used.
    pub optimized: String,
}

impl Compiled {
    /// Verifies `compound` (allowing the functions registered in `functions`), optimizes it,
    /// and verifies the optimized compound. With `optimize` false the compound runs as built.
    pub fn new(compound: Compound, functions: Functions, optimize: bool) -> Result<Self, String> {
        let mut policy = Policy::trusted();
        // An executor that hangs must not hang the benchmark.
        policy.time = RUN_TIME_LIMIT;
        policy.functions = functions.registered().map(str::to_string).collect();
        let verified = cosy_verify::verify(compound, &policy)
            .map_err(|p| format!("the compound does not verify:\n{p}"))?;
        if !optimize {
            return Ok(Compiled {
                verified,
                functions,
                optimized: "not optimized".into(),
            });
        }
        let opt = cosy_opt::optimize(verified.compound(), &cosy_opt::Passes::default());
        let applied: Vec<String> = opt
            .applied
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name}×{n}"))
            .collect();
        match cosy_verify::verify(opt.compound, &policy) {
            Ok(v) => Ok(Compiled {
                verified: v,
                functions,
                optimized: if applied.is_empty() {
                    NO_REWRITE.into()
                } else {
                    format!("optimizer: {}", applied.join(", "))
                },
            }),
            Err(p) => Ok(Compiled {
                verified,
                functions,
                optimized: format!(
                    "optimized compound rejected by the verifier ({p}); ran as built"
                ),
            }),
        }
    }

    /// The compound that runs.
    pub fn compound(&self) -> &Compound {
        self.verified.compound()
    }

    /// Runs the compound once with `backend`; its outputs are the answer.
    pub fn run(&self, backend: Backend) -> Result<Answer, VariantError> {
        self.run_counted(backend).map(|(answer, _)| answer)
    }

    /// Like [`Compiled::run`], also returning the run's statistics.
    pub fn run_counted(
        &self,
        backend: Backend,
    ) -> Result<(Answer, cosy_exec::Stats), VariantError> {
        let opts = RunOptions {
            functions: self.functions.clone(),
            backend,
            ..RunOptions::default()
        };
        let outcome = cosy_exec::run(&self.verified, &opts);
        if let Some(e) = &outcome.error {
            return Err(VariantError::Fail(e.to_string()));
        }
        Ok((outcome.outputs.into_iter().collect(), outcome.stats))
    }

    /// One variant per backend of [`BACKENDS`], named after it.
    pub fn variants(self: &Arc<Self>) -> Vec<Entry> {
        BACKENDS
            .iter()
            .map(|b| Entry::Ready(Box::new(CosyVariant::new(b.name(), self.clone(), *b))))
            .collect()
    }
}

/// A compound run by one executor.
pub struct CosyVariant {
    name: String,
    compiled: Arc<Compiled>,
    backend: Backend,
    /// The system calls and ring submissions of the last run, for the record's note.
    counts: Option<String>,
}

impl CosyVariant {
    /// The variant `name` running `compiled` with `backend`.
    pub fn new(name: &str, compiled: Arc<Compiled>, backend: Backend) -> Self {
        CosyVariant {
            name: name.to_string(),
            compiled,
            backend,
            counts: None,
        }
    }
}

impl Variant for CosyVariant {
    fn name(&self) -> &str {
        &self.name
    }

    /// `ring` and `auto` may not be implemented yet: their failures skip them.
    fn lenient(&self) -> bool {
        self.backend != Backend::Direct
    }

    fn run(&mut self) -> Result<Answer, VariantError> {
        let (answer, stats) = self.compiled.run_counted(self.backend)?;
        self.counts = Some(format!(
            "{} syscalls, {} io_uring_enter for {} ring ops",
            stats.syscalls, stats.ring_enters, stats.ring_ops
        ));
        Ok(answer)
    }

    /// The calls of the last run, and what the optimizer rewrote when it rewrote something
    /// (or why it was not used).
    fn note(&self) -> Option<String> {
        let o = &self.compiled.optimized;
        let parts: Vec<&str> = [
            self.counts.as_deref(),
            (o != NO_REWRITE).then_some(o.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Variants for `compound`: `direct`, `ring` and `auto`; all skipped with the reason if it
/// cannot be compiled.
pub fn variants(compound: Compound, functions: Functions) -> Vec<Entry> {
    match Compiled::new(compound, functions, true) {
        Ok(c) => Arc::new(c).variants(),
        Err(why) => BACKENDS
            .iter()
            .map(|b| Entry::Skipped {
                name: b.name().to_string(),
                reason: why.clone(),
            })
            .collect(),
    }
}

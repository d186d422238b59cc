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

use crate::framework::{Answer, Counts, Entry, Variant, VariantError};

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
        Self::under(compound, functions, optimize, Policy::trusted())
    }

    /// Like [`Compiled::new`], under `policy` (its time limit and functions set as there).
    pub fn under(
        compound: Compound,
        functions: Functions,
        optimize: bool,
        mut policy: Policy,
    ) -> Result<Self, String> {
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
    /// The calls of the last run, for the record.
    counts: Option<Counts>,
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

/// The counts of a run by `backend`. `auto` runs either the direct executor, which leaves
/// every ring counter at zero, or the ring executor, which counts enters, ring operations or
/// (io_uring unavailable, calls kept direct) fallbacks; so the counters tell which it was.
pub fn counts(stats: &cosy_exec::Stats, backend: Backend) -> Counts {
    let used_ring = stats.ring_enters != 0 || stats.ring_ops != 0 || stats.fallbacks != 0;
    Counts {
        syscalls: stats.syscalls,
        enters: stats.ring_enters,
        ring_ops: stats.ring_ops,
        threaded_maps: stats.threaded_maps,
        threads: stats.threads,
        executor: (backend == Backend::Auto).then(|| {
            if used_ring {
                Backend::Ring.name().to_string()
            } else {
                Backend::Direct.name().to_string()
            }
        }),
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
        self.counts = Some(counts(&stats, self.backend));
        Ok(answer)
    }

    /// What the optimizer rewrote, when it rewrote something (or why it was not used).
    fn note(&self) -> Option<String> {
        let o = &self.compiled.optimized;
        (o != NO_REWRITE).then(|| o.clone())
    }

    fn counts(&self) -> Option<Counts> {
        self.counts.clone()
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

/// The `auto` variant of `compound` under a policy rooted at `root`, named `auto-confined`:
/// beside `auto`, what confinement costs in calls and time.
pub fn confined(compound: Compound, root: &std::path::Path) -> Entry {
    let name = "auto-confined";
    match Compiled::under(compound, Functions::new(), true, Policy::untrusted(root)) {
        Ok(c) => Entry::Ready(Box::new(CosyVariant::new(name, Arc::new(c), Backend::Auto))),
        Err(reason) => Entry::Skipped {
            name: name.into(),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Case, Record, variant};
    use crate::measure::{Progress, run_case};
    use crate::report::table;

    /// A small two-level tree, the shape the du compound walks.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (sub, files) in [("a", 3), ("b", 2)] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            for i in 0..files {
                std::fs::write(
                    dir.path().join(sub).join(format!("f{i}")),
                    vec![b'x'; i + 1],
                )
                .unwrap();
            }
        }
        std::fs::write(dir.path().join("top"), b"top").unwrap();
        dir
    }

    /// The stats of one `cosy_exec::run` of `compiled`'s compound with `backend`.
    fn reference(compiled: &Compiled, backend: Backend) -> cosy_exec::Stats {
        let opts = RunOptions {
            functions: Functions::new(),
            backend,
            ..RunOptions::default()
        };
        let outcome = cosy_exec::run(&compiled.verified, &opts);
        assert!(outcome.is_ok(), "{:?}", outcome.error);
        outcome.stats
    }

    fn find<'a>(records: &'a [Record], name: &str) -> &'a Record {
        records.iter().find(|r| r.variant == name).unwrap()
    }

    #[test]
    fn the_counts_of_a_run_reach_the_records_table_and_json() {
        let dir = tree();
        let root = dir.path().as_os_str().as_encoded_bytes();
        let compiled = Arc::new(
            Compiled::new(crate::workloads::du::compound(root), Functions::new(), true).unwrap(),
        );
        let answer = compiled.run(Backend::Direct).unwrap();
        let mut case = Case::new("du").variant(variant("vanilla", move || Ok(answer.clone())));
        for e in compiled.variants() {
            case = case.entry(e);
        }
        let r = run_case(case, 2, &Progress::new(false));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        // The counts are the variant's, not the case's: all records still form one case.
        assert_eq!(table::cases(&r.records).len(), 1);

        let vanilla = find(&r.records, "vanilla");
        assert_eq!(vanilla.counts(), None);
        assert!(vanilla.to_json().get("syscalls").is_none());

        let stats = reference(&compiled, Backend::Direct);
        assert!(stats.syscalls > 0);
        let direct = find(&r.records, "direct");
        assert_eq!(
            direct.counts(),
            Some(Counts {
                syscalls: stats.syscalls,
                enters: 0,
                ring_ops: 0,
                executor: None,
                ..Default::default()
            })
        );
        let json: serde_json::Value = serde_json::from_str(&direct.to_json_line()).unwrap();
        assert_eq!(json["syscalls"], stats.syscalls);
        assert_eq!(json["enters"], 0);
        assert_eq!(json["ring_ops"], 0);
        assert!(json.get("executor").is_none());
        assert_eq!(json["workload"], "du");
        assert_eq!(json["variant"], "direct");
        assert!(json["median_s"].is_f64());
        let text = table::render(&r.records);
        let shown = format!("{} syscalls", stats.syscalls);
        assert!(
            text.lines()
                .any(|l| l.contains(" direct ") && l.contains(&shown)),
            "{shown} not in\n{text}"
        );

        // Ring and auto may be skipped where io_uring is not allowed.
        let ring = find(&r.records, "ring");
        if ring.skipped.is_none() {
            let stats = reference(&compiled, Backend::Ring);
            let c = ring.counts().unwrap();
            assert_eq!(c.ring_ops, stats.ring_ops);
            assert_eq!(c.syscalls, stats.syscalls);
            assert_eq!(c.executor, None);
        }
        let auto = find(&r.records, "auto");
        if auto.skipped.is_none() {
            let stats = reference(&compiled, Backend::Auto);
            assert_eq!(auto.counts(), Some(counts(&stats, Backend::Auto)));
            let text = format!("as {}: ", auto.param_str("executor").unwrap());
            assert!(table::render(&r.records).contains(&text));
        }
    }

    #[test]
    fn auto_is_said_to_run_on_the_executor_its_counters_show() {
        let direct = cosy_exec::Stats {
            syscalls: 7,
            ..cosy_exec::Stats::default()
        };
        assert_eq!(counts(&direct, Backend::Direct).executor, None);
        assert_eq!(
            counts(&direct, Backend::Auto).executor.as_deref(),
            Some("direct")
        );
        let ring = cosy_exec::Stats {
            syscalls: 3,
            ring_enters: 2,
            ring_ops: 40,
            ..cosy_exec::Stats::default()
        };
        let c = counts(&ring, Backend::Auto);
        assert_eq!(c.executor.as_deref(), Some("ring"));
        assert_eq!((c.syscalls, c.enters, c.ring_ops), (3, 2, 40));
    }
}

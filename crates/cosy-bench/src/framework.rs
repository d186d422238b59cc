//! The measurement framework: configuration, cases and their variants, the loop that times
//! them side by side, the comparison of their answers, and the records it produces.
//!
//! A *workload* (`ls`, `grep`, …) builds one or more [`Case`]s once, on a corpus it writes into
//! a temporary directory. A case is one thing to measure (`ls-50k` with a cold cache) and holds
//! its *variants*: the same job done by plain code (`vanilla`), by cosy's executors (`direct`,
//! `ring`, `auto`), or by a real tool. Each of `runs` rounds runs every variant once, in an
//! order rotated by one each round so that slow drifts of a noisy machine spread over all of
//! them; the median of the rounds is reported. Every run returns an [`Answer`] (a count, a
//! checksum, a size): all variants of a case must give the same one, or the benchmark is wrong
//! and [`run`](crate::run) fails with every disagreement listed.

use std::collections::BTreeMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use crate::cache::{Cache, drop_caches};

/// What a variant computed: named integers (`{"bytes": 81920, "files": 10}`).
///
/// Variants of a case are compared on the names they share, so a real tool that can only
/// report some of them (GNU `du` gives no file count) is still checked on the rest.
pub type Answer = BTreeMap<String, i64>;

/// An [`Answer`] from `(name, value)` pairs.
pub fn answer(pairs: &[(&str, i64)]) -> Answer {
    pairs.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
}

/// The baseline variant every speed-up is measured against.
pub const BASELINE: &str = "vanilla";

/// What to run and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Timed rounds per case; the median is reported (default 5).
    pub runs: usize,
    /// Multiplies every corpus size and operation count (default 1.0).
    pub scale: f64,
    /// Workloads to run, by name (`ls`) or part (`ls-50k`); empty runs them all.
    pub workloads: Vec<String>,
    /// Show a progress bar (only when standard error is a terminal).
    pub progress: bool,
    /// Where the corpus's temporary directory is made (default: the system's temporary
    /// directory). The file system there is the one measured.
    pub dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            runs: 5,
            scale: 1.0,
            workloads: Vec::new(),
            progress: false,
            dir: None,
        }
    }
}

/// One measured result: a variant of a case.
///
/// As JSON (see [`Record::to_json`]) it is one flat object per line:
/// `{"workload":"ls-5k","variant":"ring","median_s":0.0123,"runs":5,"cache":"cold",...}`; the
/// burst workload reports `ns_per_op` in its parameters instead of `median_s`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The workload (`bonnie-read`, `ls-50k`, `burst`).
    pub workload: String,
    /// The variant (`vanilla`, `direct`, `ring`, `auto`, `uring-by-hand`, `rg`, …).
    pub variant: String,
    /// Median seconds of one run; `None` when skipped, and for per-operation cases (burst).
    pub median_s: Option<f64>,
    /// Parameters of the case (`cache`, `files`, `op`, `n`, `ns_per_op`, `answer`, …).
    pub params: BTreeMap<String, Value>,
    /// Timed runs behind the median.
    pub runs: usize,
    /// Why the variant was not measured, if it was not.
    pub skipped: Option<String>,
}

impl Record {
    /// The parameter `key` as a string, if it is one.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(Value::as_str)
    }

    /// The parameter `key` as a number, if it is one.
    pub fn param_f64(&self, key: &str) -> Option<f64> {
        self.params.get(key).and_then(Value::as_f64)
    }

    /// The time this record is compared by: `ns_per_op` for per-operation records, else the
    /// median seconds.
    pub fn figure(&self) -> Option<f64> {
        self.param_f64("ns_per_op").or(self.median_s)
    }

    /// The case this record belongs to: its workload and parameters, without the
    /// variant-specific ones (answers, timings).
    pub fn case_key(&self) -> String {
        let mut key = self.workload.clone();
        for (k, v) in &self.params {
            if !VARIANT_PARAMS.contains(&k.as_str()) {
                key.push_str(&format!(" {k}={v}"));
            }
        }
        key
    }
}

/// Parameters that belong to one variant's result, not to the case.
pub(crate) const VARIANT_PARAMS: &[&str] = &["answer", "ns_per_op", "mismatch", "note"];

/// Why a variant gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VariantError {
    /// It cannot run here (a tool not installed, an executor not implemented): recorded as
    /// skipped with the reason.
    #[error("skipped: {0}")]
    Skip(String),
    /// It failed: the benchmark is broken (or a lenient variant, which is then skipped).
    #[error("failed: {0}")]
    Fail(String),
}

impl From<io::Error> for VariantError {
    fn from(e: io::Error) -> Self {
        VariantError::Fail(e.to_string())
    }
}

/// One way of doing a case's job.
pub trait Variant {
    /// Its name in the records (`vanilla`, `ring`, …).
    fn name(&self) -> &str;

    /// Whether a failure skips this variant instead of failing the benchmark (cosy's `ring`
    /// and `auto`, which may not be implemented yet).
    fn lenient(&self) -> bool {
        false
    }

    /// Does the job once; this is what is timed.
    fn run(&mut self) -> Result<Answer, VariantError>;

    /// The seconds the last [`Variant::run`] took by the variant's own measure, when it times
    /// itself (a baseline that keeps its setup out of the timing); replaces the framework's
    /// measure.
    fn measured(&self) -> Option<f64> {
        None
    }
}

/// A [`Variant`] made of a closure.
pub struct FnVariant<F> {
    name: String,
    lenient: bool,
    f: F,
}

impl<F: FnMut() -> Result<Answer, VariantError>> Variant for FnVariant<F> {
    fn name(&self) -> &str {
        &self.name
    }

    fn lenient(&self) -> bool {
        self.lenient
    }

    fn run(&mut self) -> Result<Answer, VariantError> {
        (self.f)()
    }
}

/// A variant named `name` that runs `f`.
pub fn variant<F>(name: &str, f: F) -> Box<dyn Variant>
where
    F: FnMut() -> Result<Answer, VariantError> + 'static,
{
    Box::new(FnVariant {
        name: name.to_string(),
        lenient: false,
        f,
    })
}

/// A variant slot of a case: ready to run, or known beforehand to be skipped.
pub enum Entry {
    /// Ready to run.
    Ready(Box<dyn Variant>),
    /// Cannot run here; recorded as skipped.
    Skipped {
        /// The variant's name.
        name: String,
        /// Why.
        reason: String,
    },
}

impl Entry {
    /// The variant's name.
    pub fn name(&self) -> &str {
        match self {
            Entry::Ready(v) => v.name(),
            Entry::Skipped { name, .. } => name,
        }
    }
}

/// An untimed step run before or after every timed run.
pub type Hook = Box<dyn FnMut() -> io::Result<()>>;
/// An untimed check run after every timed run; its answer joins the variant's.
pub type Check = Box<dyn FnMut() -> io::Result<Answer>>;

/// One thing to measure: a workload with fixed parameters, and its variants.
pub struct Case {
    /// The workload name the records carry.
    pub workload: String,
    /// Parameters the records carry (`files`, `bytes`, `op`, `n`; `cache` is added).
    pub params: BTreeMap<String, Value>,
    /// Warm or cold page cache.
    pub cache: Cache,
    /// The variants; the first is the baseline the others are checked against.
    pub variants: Vec<Entry>,
    /// Run (untimed) before every timed run: remove the previous copy, …
    pub reset: Option<Hook>,
    /// Run (untimed) after every timed run: its answer is added to the variant's (verify the
    /// copy made, measure the file written).
    pub check: Option<Check>,
    /// The answer every variant must give, when known in advance.
    pub expected: Option<Answer>,
    /// Operations in one run: the records report nanoseconds per operation (`ns_per_op`).
    pub ops_per_run: Option<u64>,
}

impl Case {
    /// A case of `workload` with a warm cache and no variants yet.
    pub fn new(workload: impl Into<String>) -> Self {
        Case {
            workload: workload.into(),
            params: BTreeMap::new(),
            cache: Cache::Warm,
            variants: Vec::new(),
            reset: None,
            check: None,
            expected: None,
            ops_per_run: None,
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.to_string(), value.into());
        self
    }

    /// Sets the cache state.
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    /// Adds a variant.
    pub fn variant(mut self, v: Box<dyn Variant>) -> Self {
        self.variants.push(Entry::Ready(v));
        self
    }

    /// Adds a variant slot (ready or skipped).
    pub fn entry(mut self, e: Entry) -> Self {
        self.variants.push(e);
        self
    }

    /// Sets the untimed step before every run.
    pub fn reset(mut self, f: impl FnMut() -> io::Result<()> + 'static) -> Self {
        self.reset = Some(Box::new(f));
        self
    }

    /// Sets the untimed check after every run.
    pub fn check(mut self, f: impl FnMut() -> io::Result<Answer> + 'static) -> Self {
        self.check = Some(Box::new(f));
        self
    }

    /// Sets the expected answer.
    pub fn expect(mut self, a: Answer) -> Self {
        self.expected = Some(a);
        self
    }

    /// Reports nanoseconds per operation, `ops` operations per run.
    pub fn per_op(mut self, ops: u64) -> Self {
        self.ops_per_run = Some(ops);
        self
    }
}

/// The median of `xs` (the mean of the middle two for an even count); `None` when empty.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// How `a` differs from `b` on the names both have; `None` when they agree (and share at
/// least one name).
pub fn disagreement(a: &Answer, b: &Answer) -> Option<String> {
    let mut diffs = Vec::new();
    let mut common = 0;
    for (k, va) in a {
        if let Some(vb) = b.get(k) {
            common += 1;
            if va != vb {
                diffs.push(format!("{k} = {va} instead of {vb}"));
            }
        }
    }
    if common == 0 && !(a.is_empty() && b.is_empty()) {
        return Some(format!(
            "nothing to compare (answers {} and {})",
            show(a),
            show(b)
        ));
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

/// `{k=v, …}` for messages.
pub fn show(a: &Answer) -> String {
    let parts: Vec<String> = a.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Receives records and notes as the benchmark produces them.
pub trait Sink {
    /// A variant of a case was measured (or skipped).
    fn record(&mut self, _record: &Record) {}
    /// Something worth telling: a variant skipped and why, a cache that could not be dropped,
    /// a wrong answer.
    fn note(&mut self, _note: &str) {}
}

/// A sink that drops everything.
impl Sink for () {}

/// Progress reporting (a bar on a terminal, nothing otherwise).
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub(crate) fn new(enabled: bool) -> Self {
        use std::io::IsTerminal;
        let bar = (enabled && io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar }
    }

    fn add(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc_length(n)
        }
    }

    fn step(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
            b.inc(1)
        }
    }

    /// Runs `f` with the bar hidden (so that notes printed by a sink do not tear it).
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear()
        }
    }
}

/// The result of measuring one case.
pub(crate) struct CaseResult {
    pub records: Vec<Record>,
    pub notes: Vec<String>,
    pub problems: Vec<String>,
}

struct Slot {
    name: String,
    variant: Option<Box<dyn Variant>>,
    skipped: Option<String>,
    samples: Vec<f64>,
    answer: Option<Answer>,
    mismatch: Option<String>,
}

/// Runs one variant once: reset, drop caches if cold, time the run, check.
fn run_once(
    case: &mut Case,
    v: &mut dyn Variant,
    cold: bool,
) -> Result<(f64, Answer), (VariantError, bool)> {
    if let Some(reset) = &mut case.reset {
        reset().map_err(|e| (VariantError::Fail(format!("reset: {e}")), true))?;
    }
    if cold {
        // Checked to work before the first round; a failure now is reported by the caller.
        drop_caches().map_err(|e| (VariantError::Fail(format!("drop caches: {e}")), true))?;
    }
    let t0 = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| v.run()));
    let secs = t0.elapsed().as_secs_f64();
    let mut ans = match result {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Err((e, false)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            return Err((VariantError::Fail(format!("panicked: {msg}")), false));
        }
    };
    let secs = v.measured().unwrap_or(secs);
    if let Some(check) = &mut case.check {
        let extra = check().map_err(|e| (VariantError::Fail(format!("check: {e}")), false))?;
        ans.extend(extra);
    }
    Ok((secs, ans))
}

/// Measures `case`: `runs` rounds of all its variants, rotated.
pub(crate) fn run_case(mut case: Case, runs: usize, progress: &Progress) -> CaseResult {
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let mut params = case.params.clone();

    let mut cold = case.cache == Cache::Cold;
    if cold {
        match drop_caches() {
            Ok(()) => {
                params.insert("cache".into(), "cold".into());
            }
            Err(why) => {
                cold = false;
                let what = format!("warm (cannot drop caches: {why})");
                notes.push(format!("{}: cache {what}", case.workload));
                params.insert("cache".into(), what.into());
            }
        }
    } else {
        params.insert("cache".into(), "warm".into());
    }

    let mut slots: Vec<Slot> = std::mem::take(&mut case.variants)
        .into_iter()
        .map(|e| match e {
            Entry::Ready(v) => Slot {
                name: v.name().to_string(),
                variant: Some(v),
                skipped: None,
                samples: Vec::new(),
                answer: None,
                mismatch: None,
            },
            Entry::Skipped { name, reason } => Slot {
                name,
                variant: None,
                skipped: Some(reason),
                samples: Vec::new(),
                answer: None,
                mismatch: None,
            },
        })
        .collect();
    let n = slots.len();
    let ready = slots.iter().filter(|s| s.variant.is_some()).count();
    progress.add((ready * runs) as u64);
    let label = case_label(&case.workload, &params);

    // A warm case starts with an untimed run of the baseline, so that the first round does
    // not pay for what an earlier case evicted.
    let mut warmed = cold;
    let mut aborted = None;
    'rounds: for round in 0..runs {
        for k in 0..n {
            let i = (k + round) % n;
            let Some(mut v) = slots[i].variant.take() else {
                continue;
            };
            if !warmed {
                warmed = true;
                // A failure shows again in the timed run.
                let _ = run_once(&mut case, v.as_mut(), false);
            }
            let result = run_once(&mut case, v.as_mut(), cold);
            progress.step(format!("{label} {}", slots[i].name));
            let slot = &mut slots[i];
            match result {
                Ok((secs, ans)) => {
                    slot.samples.push(secs);
                    match &slot.answer {
                        None => slot.answer = Some(ans),
                        Some(first) => {
                            if let Some(d) = disagreement(&ans, first) {
                                slot.mismatch =
                                    Some(format!("answers differ between runs: {d}"));
                            }
                        }
                    }
                    slot.variant = Some(v);
                }
                Err((e, fatal)) => {
                    let reason = match e {
                        VariantError::Skip(r) => r,
                        VariantError::Fail(r) if v.lenient() && !fatal => {
                            format!("error: {r}")
                        }
                        VariantError::Fail(r) => {
                            problems.push(format!("{label}: {} failed: {r}", slot.name));
                            if fatal {
                                aborted = Some(r.clone());
                            }
                            format!("failed: {r}")
                        }
                    };
                    notes.push(format!("{label}: {} skipped: {reason}", slot.name));
                    slot.skipped = Some(reason);
                    slot.samples.clear();
                    slot.answer = None;
                    if aborted.is_some() {
                        break 'rounds;
                    }
                }
            }
        }
    }
    if let Some(why) = aborted {
        for s in &mut slots {
            if s.skipped.is_none() {
                s.skipped = Some(format!("case aborted: {why}"));
                s.samples.clear();
            }
        }
    }

    // Every answer against the baseline's (the first variant that answered, in declared
    // order) and against the expected one.
    let reference = slots
        .iter()
        .find_map(|s| s.answer.as_ref().map(|a| (s.name.clone(), a.clone())));
    for s in &mut slots {
        let Some(ans) = &s.answer else { continue };
        if let Some((rname, rans)) = &reference
            && *rname != s.name
            && let Some(d) = disagreement(ans, rans)
        {
            s.mismatch = Some(format!("{d} (as {rname} answered)"));
        }
        // A variant that reports none of the expected names (GNU du's total only) is checked
        // against the reference alone.
        if let Some(exp) = &case.expected
            && ans.keys().any(|k| exp.contains_key(k))
            && let Some(d) = disagreement(ans, exp)
        {
            let m = format!("{d} (as expected)");
            s.mismatch = Some(match s.mismatch.take() {
                Some(prev) => format!("{prev}; {m}"),
                None => m,
            });
        }
        if let Some(m) = &s.mismatch {
            problems.push(format!("{label}: {} answered wrong: {m}", s.name));
        }
    }

    let records = slots
        .into_iter()
        .map(|s| {
            let mut p = params.clone();
            let med = median(&s.samples);
            if let Some(a) = &s.answer {
                p.insert(
                    "answer".into(),
                    Value::Object(a.iter().map(|(k, v)| (k.clone(), (*v).into())).collect()),
                );
            }
            if let Some(m) = &s.mismatch {
                p.insert("mismatch".into(), m.clone().into());
            }
            let mut median_s = med;
            if let (Some(ops), Some(m)) = (case.ops_per_run, med) {
                let ns = m * 1e9 / ops.max(1) as f64;
                p.insert("ns_per_op".into(), ((ns * 100.0).round() / 100.0).into());
                median_s = None;
            }
            Record {
                workload: case.workload.clone(),
                variant: s.name,
                median_s,
                params: p,
                runs: s.samples.len(),
                skipped: s.skipped,
            }
        })
        .collect();
    CaseResult {
        records,
        notes,
        problems,
    }
}

/// `ls-5k (cold)`, `burst op=nop n=4`: a case named in messages.
fn case_label(workload: &str, params: &BTreeMap<String, Value>) -> String {
    let mut s = workload.to_string();
    for (k, v) in params {
        let v = match v {
            Value::String(x) => x.clone(),
            other => other.to_string(),
        };
        if k == "cache" {
            if v != "warm" {
                s.push_str(&format!(" ({})", v));
            }
        } else if k == "op" || k == "n" {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, 100.0, 2.0, 2.0, 3.0]), Some(2.0));
    }

    #[test]
    fn disagreement_compares_shared_names_only() {
        let a = answer(&[("bytes", 10), ("files", 2)]);
        assert_eq!(disagreement(&a, &a), None);
        assert_eq!(disagreement(&a, &answer(&[("bytes", 10)])), None);
        assert_eq!(
            disagreement(&a, &answer(&[("bytes", 11)])).as_deref(),
            Some("bytes = 10 instead of 11")
        );
        assert!(disagreement(&a, &answer(&[("lines", 1)])).is_some());
    }

    fn counting(name: &str, value: i64) -> Box<dyn Variant> {
        variant(name, move || Ok(answer(&[("n", value)])))
    }

    #[test]
    fn a_wrong_answer_is_a_problem_naming_the_variant() {
        let case = Case::new("toy")
            .variant(counting("vanilla", 7))
            .variant(counting("direct", 7))
            .variant(counting("ring", 8));
        let r = run_case(case, 3, &Progress::new(false));
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("ring answered wrong"), "{}", r.problems[0]);
        let ring = r.records.iter().find(|x| x.variant == "ring").unwrap();
        assert!(ring.params.contains_key("mismatch"));
        assert_eq!(ring.runs, 3);
        let vanilla = r.records.iter().find(|x| x.variant == "vanilla").unwrap();
        assert!(!vanilla.params.contains_key("mismatch"));
    }

    #[test]
    fn the_expected_answer_is_checked_too() {
        let case = Case::new("toy")
            .variant(counting("vanilla", 7))
            .expect(answer(&[("n", 6)]));
        let r = run_case(case, 1, &Progress::new(false));
        assert_eq!(r.problems.len(), 1);
    }

    #[test]
    fn skips_and_lenient_failures_are_recorded_not_fatal() {
        struct Broken;
        impl Variant for Broken {
            fn name(&self) -> &str {
                "ring"
            }
            fn lenient(&self) -> bool {
                true
            }
            fn run(&mut self) -> Result<Answer, VariantError> {
                panic!("not implemented yet")
            }
        }
        let case = Case::new("toy")
            .variant(counting("vanilla", 1))
            .variant(Box::new(Broken))
            .entry(Entry::Skipped {
                name: "rg".into(),
                reason: "rg is not installed".into(),
            });
        let r = run_case(case, 2, &Progress::new(false));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let ring = r.records.iter().find(|x| x.variant == "ring").unwrap();
        assert!(ring.skipped.as_deref().unwrap().contains("not implemented yet"));
        assert_eq!(ring.median_s, None);
        let rg = r.records.iter().find(|x| x.variant == "rg").unwrap();
        assert_eq!(rg.skipped.as_deref(), Some("rg is not installed"));
        assert_eq!(r.records[0].runs, 2);
    }

    #[test]
    fn a_failing_strict_variant_is_a_problem() {
        let case = Case::new("toy")
            .variant(counting("vanilla", 1))
            .variant(variant("direct", || Err(VariantError::Fail("EIO".into()))));
        let r = run_case(case, 1, &Progress::new(false));
        assert_eq!(r.problems.len(), 1);
        assert!(r.problems[0].contains("direct failed: EIO"));
    }

    #[test]
    fn rounds_rotate_the_order() {
        use std::cell::RefCell;
        use std::rc::Rc;
        let log = Rc::new(RefCell::new(Vec::new()));
        let mk = |name: &'static str| {
            let log = log.clone();
            variant(name, move || {
                log.borrow_mut().push(name);
                Ok(Answer::new())
            })
        };
        let case = Case::new("toy")
            .variant(mk("a"))
            .variant(mk("b"))
            .variant(mk("c"));
        // A warm case starts with an untimed warm-up run of the first variant.
        let r = run_case(case, 3, &Progress::new(false));
        let log = log.borrow();
        assert_eq!(log[0], "a");
        assert_eq!(log[1..], ["a", "b", "c", "b", "c", "a", "c", "a", "b"]);
        assert!(r.records.iter().all(|x| x.runs == 3));
    }

    #[test]
    fn per_operation_cases_report_nanoseconds() {
        let case = Case::new("burst")
            .param("op", "nop")
            .param("n", 4)
            .per_op(1000)
            .variant(counting("vanilla", 1));
        let r = run_case(case, 1, &Progress::new(false));
        let rec = &r.records[0];
        assert_eq!(rec.median_s, None);
        assert!(rec.param_f64("ns_per_op").is_some());
    }
}

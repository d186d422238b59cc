//! The measurement framework's types: configuration, cases and their variants, answers and
//! how they are compared, and the records a benchmark produces (the loop that measures a case
//! is in `measure.rs`).
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
use std::fmt;
use std::io;
use std::path::PathBuf;

use serde_json::Value;

use crate::cache::Cache;

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
    /// The `cosy` binary whose tools (`cosy grep`, `cosy du`, `cosy ls`, `cosy cp`) are
    /// measured as whole processes beside their peers; `None` leaves those variants out.
    pub tools: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            runs: 5,
            scale: 1.0,
            workloads: Vec::new(),
            progress: false,
            dir: None,
            tools: None,
        }
    }
}

/// One measured result: a variant of a case.
///
/// As JSON (see [`Record::to_json`]) it is one flat object per line:
/// `{"workload":"ls-5k","variant":"ring","median_s":0.0123,"runs":5,"cache":"cold",...}`; the
/// burst workload reports `ns_per_op` in its parameters instead of `median_s`. cosy's variants
/// add the calls of one run ([`Counts`]: `"syscalls":258,"enters":0,"ring_ops":0`).
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

    /// The calls of one of the variant's runs, if it counted them.
    pub fn counts(&self) -> Option<Counts> {
        let n = |k: &str| self.params.get(k).and_then(Value::as_u64);
        Some(Counts {
            syscalls: n("syscalls")?,
            enters: n("enters")?,
            ring_ops: n("ring_ops")?,
            executor: self.param_str("executor").map(str::to_string),
            threaded_maps: n("threaded_maps").unwrap_or(0),
            threads: n("threads").unwrap_or(0),
        })
    }

    /// The case this record belongs to: its workload and parameters, without the
    /// variant-specific ones (answers, timings).
    pub fn case_key(&self) -> String {
        let mut key = self.workload.clone();
        for (k, v) in &self.params {
            if !VARIANT_PARAMS.contains(&k.as_str()) {
                match v {
                    Value::String(s) => key.push_str(&format!(" {k}={s}")),
                    other => key.push_str(&format!(" {k}={other}")),
                }
            }
        }
        key
    }
}

/// Parameters that belong to one variant's result, not to the case.
pub(crate) const VARIANT_PARAMS: &[&str] = &[
    "answer",
    "ns_per_op",
    "mismatch",
    "note",
    "syscalls",
    "enters",
    "ring_ops",
    "executor",
    "threaded_maps",
    "threads",
];

/// The calls one run of a variant made, as its executor counted them (cosy's variants; other
/// variants have no counter to read).
///
/// In a record's parameters (and so in its JSON) they are `syscalls`, `enters`, `ring_ops`
/// and, when the variant chose its executor itself, `executor`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// System calls issued directly (io_uring_enter not included).
    pub syscalls: u64,
    /// io_uring_enter calls.
    pub enters: u64,
    /// Operations submitted to a ring and completed.
    pub ring_ops: u64,
    /// The executor the run ended up on (`direct`, `ring`), for a variant that chooses
    /// (`auto`).
    pub executor: Option<String>,
    /// Maps whose iterations ran on several threads, and the threads started for them.
    pub threaded_maps: u64,
    /// Threads started for those maps (the run's own not counted).
    pub threads: u64,
}

impl Counts {
    /// Adds the counts to a record's parameters.
    pub fn insert_into(&self, params: &mut BTreeMap<String, Value>) {
        params.insert("syscalls".into(), self.syscalls.into());
        params.insert("enters".into(), self.enters.into());
        params.insert("ring_ops".into(), self.ring_ops.into());
        if let Some(e) = &self.executor {
            params.insert("executor".into(), e.clone().into());
        }
        if self.threaded_maps != 0 {
            params.insert("threaded_maps".into(), self.threaded_maps.into());
            params.insert("threads".into(), self.threads.into());
        }
    }
}

/// `258 syscalls`; `12 enters, 2,048 ring ops, 3 syscalls` when a ring was used; prefixed by
/// the executor chosen (`as direct: 258 syscalls`).
impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.executor {
            write!(f, "as {e}: ")?;
        }
        if self.enters != 0 || self.ring_ops != 0 {
            write!(
                f,
                "{}, {}, ",
                counted(self.enters, "enter"),
                counted(self.ring_ops, "ring op")
            )?;
        }
        f.write_str(&counted(self.syscalls, "syscall"))?;
        if self.threaded_maps != 0 {
            write!(
                f,
                " ({} on {})",
                counted(self.threaded_maps, "map"),
                counted(self.threads, "more thread")
            )?;
        }
        Ok(())
    }
}

/// `1 syscall`, `2,048 syscalls`.
fn counted(n: u64, what: &str) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(d);
    }
    let s = if n == 1 { "" } else { "s" };
    format!("{grouped} {what}{s}")
}

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

    /// Something to say about this variant in its records (`"note"`): what the optimizer
    /// rewrote in its compound, … Asked before the runs and again after them.
    fn note(&self) -> Option<String> {
        None
    }

    /// The calls the last [`Variant::run`] made, when the variant can count them.
    fn counts(&self) -> Option<Counts> {
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
    fn counts_read_as_calls() {
        let direct = Counts {
            syscalls: 258,
            ..Counts::default()
        };
        assert_eq!(direct.to_string(), "258 syscalls");
        let ring = Counts {
            syscalls: 3,
            enters: 12,
            ring_ops: 2048,
            executor: None,
            ..Default::default()
        };
        assert_eq!(ring.to_string(), "12 enters, 2,048 ring ops, 3 syscalls");
        let auto = Counts {
            syscalls: 1,
            executor: Some("direct".into()),
            ..Counts::default()
        };
        assert_eq!(auto.to_string(), "as direct: 1 syscall");
        let threaded = Counts {
            syscalls: 10,
            threaded_maps: 1,
            threads: 1,
            ..Counts::default()
        };
        assert_eq!(threaded.to_string(), "10 syscalls (1 map on 1 more thread)");
        assert_eq!(counted(1_234_567, "syscall"), "1,234,567 syscalls");
        assert_eq!(counted(100, "enter"), "100 enters");
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
}

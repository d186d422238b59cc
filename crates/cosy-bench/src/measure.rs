//! The measuring loop: runs a [`Case`]'s variants side by side for a number of rounds, in
//! an order rotated every round, drops the page cache before the runs of a cold case, checks
//! every answer against the baseline's and the expected one, and makes the [`Record`]s.

use std::collections::BTreeMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use serde_json::Value;

use crate::cache::{Cache, drop_caches};
use crate::framework::{Answer, Case, Entry, Record, Variant, VariantError, disagreement, median};

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
    note: Option<String>,
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
                note: v.note(),
                variant: Some(v),
                skipped: None,
                samples: Vec::new(),
                answer: None,
                mismatch: None,
            },
            Entry::Skipped { name, reason } => Slot {
                name,
                note: None,
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
                                slot.mismatch = Some(format!("answers differ between runs: {d}"));
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
            // What a variant says of itself (its note, the calls it made) is asked after its
            // runs, when there is something to say; a variant that was skipped has no counts.
            let (note, counts) = match &s.variant {
                Some(v) if s.skipped.is_none() => (v.note().or(s.note), v.counts()),
                _ => (s.note, None),
            };
            if let Some(c) = counts {
                c.insert_into(&mut p);
            }
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
            if let Some(n) = note {
                p.insert("note".into(), n.into());
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
    use crate::framework::{Counts, answer, variant};

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
        assert!(
            r.problems[0].contains("ring answered wrong"),
            "{}",
            r.problems[0]
        );
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
        assert!(
            ring.skipped
                .as_deref()
                .unwrap()
                .contains("not implemented yet")
        );
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
    fn counts_and_notes_are_read_after_the_runs() {
        /// Counts its runs, and says so.
        struct Counting(u64);
        impl Variant for Counting {
            fn name(&self) -> &str {
                "direct"
            }
            fn run(&mut self) -> Result<Answer, VariantError> {
                self.0 += 1;
                Ok(answer(&[("n", 1)]))
            }
            fn note(&self) -> Option<String> {
                Some(format!("run {} times", self.0))
            }
            fn counts(&self) -> Option<Counts> {
                Some(Counts {
                    syscalls: self.0,
                    ..Counts::default()
                })
            }
        }
        let case = Case::new("toy")
            .variant(counting("vanilla", 1))
            .variant(Box::new(Counting(0)));
        let r = run_case(case, 3, &Progress::new(false));
        let rec = r.records.iter().find(|x| x.variant == "direct").unwrap();
        // Three timed runs; the warm-up run is the baseline's.
        assert_eq!(rec.param_str("note"), Some("run 3 times"));
        assert_eq!(rec.counts().map(|c| c.syscalls), Some(3));
        assert_eq!(rec.case_key(), r.records[0].case_key());
        assert_eq!(r.records[0].counts(), None);
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

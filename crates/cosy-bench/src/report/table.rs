//! The tables printed at the end of a benchmark (comfy-table): one for the workloads timed
//! per run, one for the burst workload's nanoseconds per operation.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};

use crate::framework::{BASELINE, Record};

/// Seconds in a readable unit: `1.23 s`, `45.6 ms`, `789 µs`.
pub fn format_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// How many times faster than the baseline `figure` is (`2.50×`).
pub fn format_speedup(baseline: f64, figure: f64) -> String {
    if figure > 0.0 {
        format!("{:.2}×", baseline / figure)
    } else {
        "-".into()
    }
}

/// Records grouped by case, in the order they first appear.
pub(crate) fn cases(records: &[Record]) -> Vec<Vec<&Record>> {
    let mut out: Vec<(String, Vec<&Record>)> = Vec::new();
    for r in records {
        let key = r.case_key();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => out.push((key, vec![r])),
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}

/// The baseline's figure of a case, if it was measured.
pub(crate) fn baseline(case: &[&Record]) -> Option<f64> {
    case.iter()
        .find(|r| r.variant == BASELINE)
        .and_then(|r| r.figure())
}

/// Both tables as text (the burst one only if there are burst records).
pub fn render(records: &[Record]) -> String {
    let timed: Vec<Record> = records
        .iter()
        .filter(|r| !r.params.contains_key("ns_per_op") && r.workload != "burst")
        .cloned()
        .collect();
    let burst: Vec<Record> = records
        .iter()
        .filter(|r| r.workload == "burst")
        .cloned()
        .collect();
    let mut out = String::new();
    if !timed.is_empty() {
        out.push_str(&timed_table(&timed).to_string());
        out.push('\n');
    }
    if !burst.is_empty() {
        out.push_str(&burst_table(&burst).to_string());
        out.push('\n');
    }
    out
}

/// The note shown for a record: why it was skipped, or what it answered wrong.
pub(crate) fn note(r: &Record) -> String {
    if let Some(s) = &r.skipped {
        return format!("skipped: {s}");
    }
    if let Some(m) = r.param_str("mismatch") {
        return format!("WRONG ANSWER: {m}");
    }
    r.param_str("note").unwrap_or_default().to_string()
}

/// The calls of one run of a record's variant (`12 enters, 2,048 ring ops, 3 syscalls`);
/// empty for variants that do not count them.
pub(crate) fn calls(r: &Record) -> String {
    r.counts().map(|c| c.to_string()).unwrap_or_default()
}

/// Per case: each variant's median, its speed-up over vanilla, and the calls of one run.
pub fn timed_table(records: &[Record]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "workload",
        "cache",
        "variant",
        "median",
        "vs vanilla",
        "calls (one run)",
        "note",
    ]);
    for case in cases(records) {
        let base = baseline(&case);
        for r in &case {
            let median = r.median_s.map(format_secs).unwrap_or_else(|| "-".into());
            let speed = match (base, r.median_s) {
                (Some(b), Some(m)) if r.variant != BASELINE => format_speedup(b, m),
                _ => String::new(),
            };
            t.add_row(vec![
                r.workload.clone(),
                r.param_str("cache").unwrap_or("").to_string(),
                r.variant.clone(),
                median,
                speed,
                calls(r),
                note(r),
            ]);
        }
    }
    for i in [3, 4] {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Variants in the order they first appear.
pub(crate) fn variants(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in records {
        if !v.contains(&r.variant) {
            v.push(r.variant.clone());
        }
    }
    v
}

/// One row per operation and burst length: nanoseconds per operation of each variant, and
/// its speed-up over vanilla.
pub fn burst_table(records: &[Record]) -> Table {
    let names = variants(records);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["op".to_string(), "N".to_string()];
    header.extend(names.iter().map(|v| format!("{v} ns/op")));
    t.set_header(header);
    for case in cases(records) {
        let base = baseline(&case);
        let first = case[0];
        let mut row = vec![
            first.param_str("op").unwrap_or("").to_string(),
            first
                .params
                .get("n")
                .map(|v| v.to_string())
                .unwrap_or_default(),
        ];
        for name in &names {
            let cell = match case.iter().find(|r| &r.variant == name) {
                None => String::new(),
                Some(r) if r.skipped.is_some() => "skipped".into(),
                Some(r) => match (r.figure(), base) {
                    (Some(ns), Some(b)) if r.variant != BASELINE => {
                        format!("{ns:.1} ({})", format_speedup(b, ns))
                    }
                    (Some(ns), _) => format!("{ns:.1}"),
                    (None, _) => "-".into(),
                },
            };
            row.push(cell);
        }
        t.add_row(row);
    }
    for i in 1..names.len() + 2 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rec(workload: &str, variant: &str, median: f64) -> Record {
        let mut params = BTreeMap::new();
        params.insert("cache".to_string(), "warm".into());
        Record {
            workload: workload.into(),
            variant: variant.into(),
            median_s: Some(median),
            params,
            runs: 3,
            skipped: None,
        }
    }

    #[test]
    fn speedups_are_over_vanilla() {
        let rs = vec![rec("du", "vanilla", 0.2), rec("du", "ring", 0.1)];
        let text = render(&rs);
        assert!(text.contains("2.00×"), "{text}");
        assert!(text.contains("200.0 ms"), "{text}");
    }

    #[test]
    fn formats() {
        assert_eq!(format_secs(2.0), "2.00 s");
        assert_eq!(format_secs(0.0123), "12.3 ms");
        assert_eq!(format_secs(0.000_25), "250 µs");
    }
}

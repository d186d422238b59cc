//! Output of a benchmark: the terminal tables ([`table`]), JSON lines ([`json`]), and the
//! report directory of `--report DIR` (`report.md` plus one SVG chart per workload, drawn by
//! [`svg`]).

pub mod json;
pub mod svg;
pub mod table;

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::framework::{BASELINE, Record};
use table::{baseline, calls, cases, format_secs, format_speedup, note, variants};

/// A file name made of `name` (letters, digits, `-`, `_`, `.` kept; the rest `_`).
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Workloads in the order they first appear.
fn workloads(records: &[Record]) -> Vec<String> {
    let mut w: Vec<String> = Vec::new();
    for r in records {
        if !w.contains(&r.workload) {
            w.push(r.workload.clone());
        }
    }
    w
}

/// The label of a case in charts: its cache state and the parameters that tell it apart.
fn case_label(case: &[&Record]) -> String {
    case[0].param_str("cache").unwrap_or("").to_string()
}

/// Writes `report.md` and the charts into `dir` (created if needed); returns the files
/// written.
pub fn write_report(dir: &Path, records: &[Record]) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut md = String::new();
    let _ = writeln!(md, "# cosy bench\n");
    {
        let u = rustix::system::uname();
        let _ = writeln!(
            md,
            "Machine: Linux {} on {}, {} CPUs. Times are medians of {} runs per variant, \
             the variants of a case run side by side in rotated order. Improvement is \
             `(vanilla − variant) / vanilla` (higher is better; below 0 is slower than vanilla).\n",
            u.release().to_string_lossy(),
            u.machine().to_string_lossy(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            records.iter().map(|r| r.runs).max().unwrap_or(0),
        );
    }

    for w in workloads(records) {
        let recs: Vec<Record> = records
            .iter()
            .filter(|r| r.workload == w)
            .cloned()
            .collect();
        if w == "burst" {
            written.extend(burst_section(dir, &mut md, &recs)?);
            continue;
        }
        let _ = writeln!(md, "## {w}\n");
        let _ = writeln!(
            md,
            "| cache | variant | median | speed-up | improvement | calls (one run) | answer | note |\n|---|---|---:|---:|---:|---|---|---|"
        );
        let mut groups = Vec::new();
        for case in cases(&recs) {
            let base = baseline(&case);
            let mut bars = Vec::new();
            for r in &case {
                let (speed, imp) = match (base, r.median_s) {
                    (Some(b), Some(m)) if r.variant != BASELINE => {
                        bars.push((r.variant.clone(), svg::improvement(b, m)));
                        (
                            format_speedup(b, m),
                            format!("{:.0}%", svg::improvement(b, m)),
                        )
                    }
                    _ => (String::new(), String::new()),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    case_label(&case),
                    r.variant,
                    r.median_s.map(format_secs).unwrap_or_else(|| "-".into()),
                    speed,
                    imp,
                    calls(r),
                    r.params
                        .get("answer")
                        .map(|a| format!("`{a}`"))
                        .unwrap_or_default(),
                    note(r).replace('|', "\\|"),
                );
            }
            groups.push((case_label(&case), bars));
        }
        let name = format!("{}.svg", file_name(&w));
        let path = dir.join(&name);
        fs::write(
            &path,
            svg::bar_chart(
                &format!("{w}: elapsed time improvement over vanilla"),
                "improvement (%)",
                &groups,
            ),
        )?;
        written.push(path);
        let _ = writeln!(md, "\n![{w}]({name})\n");
    }

    let skipped: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.skipped
                .as_ref()
                .map(|s| format!("- {} {}: {s}", r.case_key(), r.variant))
        })
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(md, "## Skipped variants\n\n{}\n", skipped.join("\n"));
    }
    let path = dir.join("report.md");
    fs::write(&path, md)?;
    written.insert(0, path);
    Ok(written)
}

/// What the burst of `op` measures, for the report.
fn burst_about(op: &str) -> &'static str {
    match op {
        "nop" => {
            "N independent operations that do nothing: vanilla makes N getppid(2) calls \
             (the cheapest system call); the compound is `map i in range(0, N, 1) { nop }` \
             (no system call at all on `direct`, an io_uring NOP on `ring`); uring-by-hand \
             pushes N NOPs on a ring it keeps (cosy-uring's baseline)."
        }
        "pread" => {
            "N independent 1-byte preads of a cached 1 MiB file. vanilla, direct, ring and \
             auto open the file, make the N preads and close it in every burst (the same \
             system calls); uring-by-hand keeps the file and its ring open across bursts."
        }
        _ => "",
    }
}

/// The burst section: a table of ns per operation per op, and a line chart per op.
fn burst_section(dir: &Path, md: &mut String, recs: &[Record]) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut ops: Vec<String> = Vec::new();
    for r in recs {
        if let Some(op) = r.param_str("op")
            && !ops.iter().any(|o| o == op)
        {
            ops.push(op.to_string());
        }
    }
    for op in ops {
        let these: Vec<Record> = recs
            .iter()
            .filter(|r| r.param_str("op") == Some(op.as_str()))
            .cloned()
            .collect();
        let names = variants(&these);
        let _ = writeln!(md, "## burst: {op}\n");
        let _ = writeln!(md, "{}\n", burst_about(&op));
        let _ = writeln!(
            md,
            "Nanoseconds per operation (speed-up over vanilla).\n\n| N | {} |\n|---:|{}",
            names.join(" | "),
            "---:|".repeat(names.len())
        );
        let mut series: Vec<(String, Vec<(f64, f64)>)> = names
            .iter()
            .filter(|n| n.as_str() != BASELINE)
            .map(|n| (n.clone(), Vec::new()))
            .collect();
        for case in cases(&these) {
            let n = case[0].param_f64("n").unwrap_or(0.0);
            let base = baseline(&case);
            let mut row = format!("| {n} |");
            for name in &names {
                let cell = match case.iter().find(|r| &r.variant == name) {
                    Some(r) if r.skipped.is_some() => "skipped".to_string(),
                    Some(r) => match (r.figure(), base) {
                        (Some(ns), Some(b)) if r.variant != BASELINE => {
                            if let Some(s) = series.iter_mut().find(|s| &s.0 == name) {
                                s.1.push((n, svg::improvement(b, ns)));
                            }
                            format!("{ns:.1} ({})", format_speedup(b, ns))
                        }
                        (Some(ns), _) => format!("{ns:.1}"),
                        _ => "-".into(),
                    },
                    None => String::new(),
                };
                let _ = write!(row, " {cell} |");
            }
            let _ = writeln!(md, "{row}");
        }
        // The calls of one burst, for the variants that count them.
        let counted: Vec<&String> = names
            .iter()
            .filter(|n| {
                these
                    .iter()
                    .any(|r| &r.variant == *n && r.counts().is_some())
            })
            .collect();
        if !counted.is_empty() {
            let _ = writeln!(
                md,
                "\nCalls of one burst.\n\n| N | {} |\n|---:|{}",
                counted
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(" | "),
                "---|".repeat(counted.len())
            );
            for case in cases(&these) {
                let mut row = format!("| {} |", case[0].param_f64("n").unwrap_or(0.0));
                for name in &counted {
                    let cell = case
                        .iter()
                        .find(|r| &r.variant == *name)
                        .map(|r| calls(r))
                        .unwrap_or_default();
                    let _ = write!(row, " {cell} |");
                }
                let _ = writeln!(md, "{row}");
            }
        }
        series.retain(|s| !s.1.is_empty());
        let name = format!("burst-{}.svg", file_name(&op));
        let path = dir.join(&name);
        fs::write(
            &path,
            svg::line_chart(
                &format!("burst of {op}: improvement over vanilla"),
                "operations per burst (N, log scale)",
                "improvement (%)",
                &series,
            ),
        )?;
        written.push(path);
        let _ = writeln!(md, "\n![burst {op}]({name})\n");
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rec(workload: &str, variant: &str, params: &[(&str, serde_json::Value)]) -> Record {
        let params: BTreeMap<String, serde_json::Value> = params
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        Record {
            workload: workload.into(),
            variant: variant.into(),
            median_s: (workload != "burst").then_some(if variant == "vanilla" { 2.0 } else { 1.0 }),
            params,
            runs: 3,
            skipped: None,
        }
    }

    #[test]
    fn report_has_markdown_and_one_chart_per_workload() {
        let mut rs = Vec::new();
        for cache in ["warm", "cold"] {
            for v in ["vanilla", "direct", "ring"] {
                let mut r = rec("ls-5k", v, &[("cache", cache.into())]);
                if v == "direct" {
                    crate::framework::Counts {
                        syscalls: 258,
                        ..Default::default()
                    }
                    .insert_into(&mut r.params);
                }
                rs.push(r);
            }
        }
        for n in [1, 2, 4] {
            for v in ["vanilla", "ring"] {
                let ns = if v == "vanilla" { 200.0 } else { 100.0 };
                let mut r = rec(
                    "burst",
                    v,
                    &[
                        ("op", "nop".into()),
                        ("n", n.into()),
                        ("ns_per_op", ns.into()),
                    ],
                );
                if v == "ring" {
                    crate::framework::Counts {
                        enters: 1,
                        ring_ops: n,
                        ..Default::default()
                    }
                    .insert_into(&mut r.params);
                }
                rs.push(r);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let files = write_report(dir.path(), &rs).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.md", "ls-5k.svg", "burst-nop.svg"]);
        let bars = fs::read_to_string(dir.path().join("ls-5k.svg")).unwrap();
        svg::tests::well_formed(&bars).unwrap();
        assert_eq!(bars.matches("class=\"bar\"").count(), 4);
        let line = fs::read_to_string(dir.path().join("burst-nop.svg")).unwrap();
        svg::tests::well_formed(&line).unwrap();
        assert_eq!(line.matches("class=\"point\"").count(), 3);
        let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(
            md.contains("| cold | ring | 1.00 s | 2.00× | 50% |  |"),
            "{md}"
        );
        assert!(
            md.contains("| warm | direct | 1.00 s | 2.00× | 50% | 258 syscalls |"),
            "{md}"
        );
        assert!(
            md.contains("| 4 | 1 enter, 4 ring ops, 0 syscalls |"),
            "{md}"
        );
    }
}

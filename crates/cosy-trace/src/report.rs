//! The report: the call table, where the time goes, the bursts and their sequences, and
//! skeletons, as text or JSON.

use std::fmt::Write as _;

use cosy_uring::Calibration;
use serde::Serialize;

use crate::bursts::{self, Bursts};
use crate::stats::{self, Row, Summary};
use crate::suggest::{self, Defaults};
use crate::{Mechanism, Trace};

/// What goes into a report.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// What makes a burst, and how many sequences.
    pub bursts: bursts::Config,
    /// Skeletons for this many of the top sequences (0: none).
    pub suggest: usize,
    /// The skeletons' input defaults.
    pub defaults: Defaults,
}

/// The calibration figures the estimates use, in nanoseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Costs {
    /// A trivial system call.
    pub syscall_ns: f64,
    /// One io_uring_enter(2) round trip.
    pub ring_enter_ns: f64,
    /// One operation in a batch on the ring.
    pub ring_op_ns: f64,
    /// statx(2) as a call.
    pub statx_direct_ns: f64,
    /// statx through the ring.
    pub statx_ring_ns: f64,
    /// Whether io_uring is available.
    pub uring: bool,
}

/// A skeleton for one sequence.
#[derive(Clone, Debug, Serialize)]
pub struct Suggestion {
    /// The sequence ([`Sequence::describe`](bursts::Sequence::describe)).
    pub calls: String,
    /// The compound, in cosy's text format.
    pub compound: String,
}

/// Everything `cosy trace` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The mechanism that recorded the calls.
    pub mechanism: Mechanism,
    /// The program's exit status (or 128 + signal), when it was started.
    pub exit: Option<i32>,
    /// Whether tracing was interrupted.
    pub interrupted: bool,
    /// Calls entered that never returned.
    pub unfinished: usize,
    /// Notes (a fallback, lost events).
    pub notes: Vec<String>,
    /// Totals.
    pub summary: Summary,
    /// Per call, by total time.
    pub calls: Vec<Row>,
    /// Bursts and sequences.
    pub bursts: Bursts,
    /// The costs the estimates come from.
    pub costs: Costs,
    /// Skeletons, for the top sequences.
    pub suggestions: Vec<Suggestion>,
}

impl Report {
    /// The report of `trace`.
    pub fn build(trace: &Trace, config: &Config, calibration: &Calibration) -> Report {
        let bursts = bursts::find(trace, &config.bursts, calibration);
        let suggestions = bursts
            .sequences
            .iter()
            .take(config.suggest)
            .map(|s| Suggestion {
                calls: s.describe(),
                compound: suggest::skeleton(s, &config.defaults),
            })
            .collect();
        Report {
            mechanism: trace.mechanism,
            exit: trace.exit,
            interrupted: trace.interrupted,
            unfinished: trace.unfinished,
            notes: trace.notes.clone(),
            summary: stats::summary(trace),
            calls: stats::table(trace),
            bursts,
            costs: Costs {
                syscall_ns: calibration.syscall_ns,
                ring_enter_ns: calibration.ring_enter_ns,
                ring_op_ns: calibration.ring_nop_ns,
                statx_direct_ns: calibration.statx_direct_ns,
                statx_ring_ns: calibration.statx_ring_ns,
                uring: calibration.uring,
            },
            suggestions,
        }
    }

    /// The report as JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let sum = &self.summary;
        let _ = writeln!(
            s,
            "cosy trace ({}): {} calls, {} errors, {} thread{}, {} traced",
            self.mechanism,
            sum.calls,
            sum.errors,
            sum.threads,
            if sum.threads == 1 { "" } else { "s" },
            secs(sum.wall_ns),
        );
        for note in &self.notes {
            let _ = writeln!(s, "note: {note}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:>6} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}  syscall",
            "% time", "seconds", "calls", "errors", "min µs", "avg µs", "max µs"
        );
        let rule = "------ ----------- --------- --------- --------- --------- ---------  ----------------";
        let _ = writeln!(s, "{rule}");
        let total = sum.kernel_ns.max(1) as f64;
        for r in &self.calls {
            let _ = writeln!(
                s,
                "{:>6.2} {:>11.6} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                100.0 * r.total_ns as f64 / total,
                r.total_ns as f64 / 1e9,
                r.count,
                if r.errors == 0 {
                    String::new()
                } else {
                    r.errors.to_string()
                },
                us(r.min_ns),
                us(r.avg_ns),
                us(r.max_ns),
                r.name
            );
        }
        let _ = writeln!(s, "{rule}");
        let _ = writeln!(
            s,
            "{:>6.2} {:>11.6} {:>9} {:>9} {:>9} {:>9} {:>9}  total",
            100.0,
            sum.kernel_ns as f64 / 1e9,
            sum.calls,
            sum.errors,
            "",
            us(sum.kernel_ns / sum.calls.max(1)),
            ""
        );
        let both = (sum.kernel_ns + sum.user_ns).max(1) as f64;
        let _ = writeln!(
            s,
            "\ntime: {} in the kernel ({:.0}%), {} in user space between calls ({:.0}%)",
            secs(sum.kernel_ns),
            100.0 * sum.kernel_ns as f64 / both,
            secs(sum.user_ns),
            100.0 * sum.user_ns as f64 / both,
        );
        if self.mechanism == Mechanism::Ptrace {
            let _ = writeln!(
                s,
                "      (ptrace: each call's time includes the stops of the tracee)"
            );
        }

        let b = &self.bursts;
        let _ = writeln!(
            s,
            "\nbursts (at most {} of user time between calls{}): {}, {} calls ({:.0}% of all), \
             the longest {} calls; {} in the kernel, {} in user space between their calls",
            secs(b.gap_ns),
            if b.overhead_ns > 0 {
                format!(
                    ", after taking off {} of tracer per gap",
                    secs(b.overhead_ns)
                )
            } else {
                String::new()
            },
            plural(b.count, "burst"),
            b.calls,
            100.0 * b.calls as f64 / sum.calls.max(1) as f64,
            b.longest,
            secs(b.kernel_ns),
            secs(b.user_ns),
        );
        if b.sequences.is_empty() {
            let _ = writeln!(s, "no recurring sequences");
        } else {
            let _ = writeln!(s, "recurring sequences:");
        }
        for (i, q) in b.sequences.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:>3}. {}\n     {} in {} (the longest {}){}, {} ({} in the kernel);\n     \
                 a compound per run saves {} transitions, estimated {} here",
                i + 1,
                q.describe(),
                plural(q.count, "time"),
                plural(q.runs, "run"),
                q.longest_run,
                q.after
                    .as_ref()
                    .map(|a| format!(", after {a}"))
                    .unwrap_or_default(),
                secs(q.time_ns),
                secs(q.kernel_ns),
                q.transitions_saved,
                if q.saving_ns > 0.0 {
                    secs(q.saving_ns as u64)
                } else if self.costs.uring {
                    "none (the round trips cost more than the transitions saved)".into()
                } else {
                    "none (io_uring unavailable)".into()
                },
            );
        }
        let c = &self.costs;
        let _ = writeln!(
            s,
            "costs measured here: a system call {:.0} ns, a ring round trip {:.0} ns, an operation in a \
             batch {:.0} ns, statx {:.0} ns as a call and {:.0} ns on the ring",
            c.syscall_ns, c.ring_enter_ns, c.ring_op_ns, c.statx_direct_ns, c.statx_ring_ns
        );
        for (i, sug) in self.suggestions.iter().enumerate() {
            let _ = writeln!(s, "\n# --- suggestion {}: {}", i + 1, sug.calls);
            s.push_str(&sug.compound);
        }
        if let Some(code) = self.exit {
            let _ = writeln!(s, "\nexit status {code}");
        }
        s
    }
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

/// A duration in the unit that suits it.
fn secs(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

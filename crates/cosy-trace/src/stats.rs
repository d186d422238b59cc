//! Per-call statistics (the table of `strace -c`) and where the time goes.

use std::collections::HashMap;

use serde::Serialize;

use crate::Trace;
use crate::calls::name;

/// One row of the table: one system call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Its name.
    pub name: String,
    /// Its number.
    pub nr: u32,
    /// Completed calls.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// Time in the kernel, summed.
    pub total_ns: u64,
    /// Shortest call.
    pub min_ns: u64,
    /// Mean call.
    pub avg_ns: u64,
    /// Longest call.
    pub max_ns: u64,
}

/// The table, sorted by total time (then count, then name).
pub fn table(trace: &Trace) -> Vec<Row> {
    let mut rows: HashMap<u32, Row> = HashMap::new();
    for c in &trace.calls {
        let d = c.duration_ns();
        let row = rows.entry(c.nr).or_insert_with(|| Row {
            name: name(c.nr),
            nr: c.nr,
            count: 0,
            errors: 0,
            total_ns: 0,
            min_ns: u64::MAX,
            avg_ns: 0,
            max_ns: 0,
        });
        row.count += 1;
        row.errors += u64::from(c.failed());
        row.total_ns += d;
        row.min_ns = row.min_ns.min(d);
        row.max_ns = row.max_ns.max(d);
    }
    let mut rows: Vec<Row> = rows
        .into_values()
        .map(|mut r| {
            r.avg_ns = r.total_ns / r.count.max(1);
            r
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.total_ns, b.count)
            .cmp(&(a.total_ns, a.count))
            .then_with(|| a.name.cmp(&b.name))
    });
    rows
}

/// Totals over the whole trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Completed calls.
    pub calls: u64,
    /// Of which failed.
    pub errors: u64,
    /// Threads that made calls.
    pub threads: usize,
    /// Time in the kernel (every call's duration, summed over threads).
    pub kernel_ns: u64,
    /// Time in user space between two calls of a thread, summed over threads.
    pub user_ns: u64,
    /// Wall time traced.
    pub wall_ns: u64,
}

/// The totals of `trace`.
pub fn summary(trace: &Trace) -> Summary {
    let mut s = Summary {
        calls: trace.calls.len() as u64,
        errors: trace.calls.iter().filter(|c| c.failed()).count() as u64,
        threads: 0,
        kernel_ns: trace.calls.iter().map(|c| c.duration_ns()).sum(),
        user_ns: 0,
        wall_ns: trace.wall_ns,
    };
    for thread in trace.threads() {
        s.threads += 1;
        s.user_ns += thread
            .windows(2)
            .map(|w| w[1].enter_ns.saturating_sub(w[0].exit_ns))
            .sum::<u64>();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Collector;
    use crate::{Mechanism, Trace};

    fn trace(events: &[(u32, u32, u64, u64, i64)]) -> Trace {
        let mut c = Collector::new();
        for &(tid, nr, a, b, ret) in events {
            c.enter(tid, nr, a);
            c.exit(tid, Some(nr), ret, b);
        }
        Trace::new(Mechanism::Ptrace, c, Some(0), 1000, false, vec![])
    }

    #[test]
    fn rows_sum_and_sort_by_total_time() {
        let t = trace(&[
            (1, 0, 0, 10, 5),
            (1, 0, 20, 50, -9),
            (1, 3, 60, 61, 0),
            (2, 3, 0, 100, 0),
        ]);
        let rows = table(&t);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].name.as_str(), rows[0].count), ("close", 2));
        assert_eq!(
            (rows[0].total_ns, rows[0].min_ns, rows[0].max_ns),
            (101, 1, 100)
        );
        assert_eq!((rows[1].name.as_str(), rows[1].errors), ("read", 1));
        assert_eq!(
            (rows[1].avg_ns, rows[1].min_ns, rows[1].max_ns),
            (20, 10, 30)
        );
        let s = summary(&t);
        assert_eq!((s.calls, s.errors, s.threads), (4, 1, 2));
        assert_eq!((s.kernel_ns, s.user_ns), (141, 10 + 10));
    }
}

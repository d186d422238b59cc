//! Bursts of calls and the recurring sequences inside them.
//!
//! A **burst** is a maximal run of one thread's calls in which each call starts at most
//! `gap` after the previous one returned: the program does little between them, so their
//! transitions are what a compound saves.
//!
//! A **sequence** is a string of calls (up to [`Config::max_len`]) that recurs inside bursts;
//! a call repeated back to back (a read loop, a newfstatat per directory entry) is one place
//! of it.
//! Sequences are chosen greedily: the one whose occurrences would save the most transitions
//! first, its occurrences then taken out, and so on. Occurrences that follow each other
//! without a gap form a *run*, which one compound with a loop or a map covers: a run of `k`
//! occurrences of `n` calls saves `k·n − 1` transitions. Only primitive strings are
//! candidates (`read read` is a run of `read`, not a sequence of its own), so a sequence is
//! the body of the loop, not two turns of it. Rotations of a string are the same loop cut
//! elsewhere (user work between a read and the close splits bursts there): a sequence is
//! shown from its most self-contained rotation (`openat read close` rather than
//! `close openat read`), whichever rotation its occurrences were counted in.

use std::collections::HashMap;

use cosy_uring::Calibration;
use serde::Serialize;

use crate::calls::{Call, name};
use crate::{Trace, calls};

/// What counts as a burst and how many sequences to find.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest user time between two calls of one burst, in nanoseconds.
    pub gap_ns: u64,
    /// Longest sequence, in calls.
    pub max_len: usize,
    /// How many sequences to report.
    pub sequences: usize,
}

impl Default for Config {
    /// A 5 µs gap, sequences of up to 8 calls, the top 5.
    fn default() -> Self {
        Config {
            gap_ns: 5_000,
            max_len: 8,
            sequences: 5,
        }
    }
}

/// A recurring sequence of calls.
#[derive(Clone, Debug, Serialize)]
pub struct Sequence {
    /// The calls' names, in order.
    pub calls: Vec<String>,
    /// Their numbers.
    pub nrs: Vec<u32>,
    /// How many times each call is made per occurrence, on average (a call repeated back to
    /// back, as a read loop, is one place of the sequence).
    pub per_turn: Vec<f64>,
    /// Occurrences (not overlapping).
    pub count: u64,
    /// Runs of back-to-back occurrences.
    pub runs: u64,
    /// The longest run, in occurrences.
    pub longest_run: u64,
    /// Time from the first call's entry to the last call's return, summed over occurrences.
    pub time_ns: u64,
    /// Time in the kernel of the occurrences' calls.
    pub kernel_ns: u64,
    /// Transitions a compound per run would save.
    pub transitions_saved: u64,
    /// The call most often just before a run, if any.
    pub after: Option<String>,
    /// Whether most runs come after a getdents64 of their thread (the calls probably go
    /// through a directory's entries).
    pub after_listing: bool,
    /// Estimated saving on this machine, in nanoseconds (see [`estimate_ns`]).
    pub saving_ns: f64,
}

impl Sequence {
    /// The calls joined by arrows, a repeated call with its mean count per occurrence:
    /// `openat → read (×2.0) → close`.
    pub fn describe(&self) -> String {
        self.calls
            .iter()
            .zip(&self.per_turn)
            .map(|(c, &k)| {
                if k > 1.05 {
                    format!("{c} (×{k:.1})")
                } else {
                    c.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// The bursts of a trace and their sequences.
#[derive(Clone, Debug, Serialize)]
pub struct Bursts {
    /// The gap used, in nanoseconds.
    pub gap_ns: u64,
    /// The tracer's share of each gap taken off before comparing it with `gap_ns` (ptrace:
    /// the shortest gap of the trace; perf: 0).
    pub overhead_ns: u64,
    /// Bursts of two calls or more.
    pub count: u64,
    /// Calls in them.
    pub calls: u64,
    /// The longest, in calls.
    pub longest: u64,
    /// Time in the kernel of their calls.
    pub kernel_ns: u64,
    /// User time between their calls.
    pub user_ns: u64,
    /// The recurring sequences, best first.
    pub sequences: Vec<Sequence>,
}

/// Up to 8 call numbers, as a hash key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    len: u8,
    nrs: [u16; 8],
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let word = |part: &[u16]| {
            part.iter()
                .enumerate()
                .fold(0u64, |w, (i, &n)| w | (n as u64) << (16 * i))
        };
        h.write_u64(word(&self.nrs[..4]));
        h.write_u64(word(&self.nrs[4..]) ^ (self.len as u64) << 59);
    }
}

/// A multiply-and-rotate hasher for [`Key`]s: the search hashes every string of every burst,
/// and SipHash made most of its time.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(23) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type KeyMap<V> = HashMap<Key, V, std::hash::BuildHasherDefault<KeyHasher>>;

impl Key {
    fn of(calls: impl Iterator<Item = u32>) -> Key {
        let mut nrs = [0u16; 8];
        let mut len = 0;
        for (n, c) in nrs.iter_mut().zip(calls) {
            *n = c as u16;
            len += 1;
        }
        Key { len, nrs }
    }

    /// Descriptors the string closes without having opened them, plus those it opens and
    /// leaves open: 0 for a self-contained body (openat … close), which is preferred among
    /// strings that save as much (`close openat read` is the same loop, cut elsewhere).
    fn unbalanced(&self) -> usize {
        let (open, close) = (
            syscalls::Sysno::openat.id() as u16,
            syscalls::Sysno::close.id() as u16,
        );
        let (mut depth, mut stray) = (0usize, 0usize);
        for &n in self.slice() {
            if n == open {
                depth += 1;
            } else if n == close {
                if depth == 0 {
                    stray += 1;
                } else {
                    depth -= 1;
                }
            }
        }
        stray + depth
    }

    /// The least of the string's rotations: the same for all of them.
    fn canonical(&self) -> Key {
        let n = self.len as usize;
        (0..n)
            .map(|r| Key::of((0..n).map(|i| self.nrs[(i + r) % n] as u32)))
            .min()
            .unwrap_or(*self)
    }

    fn slice(&self) -> &[u16] {
        &self.nrs[..self.len as usize]
    }

    /// Not a repetition of a shorter string.
    fn primitive(&self) -> bool {
        let s = self.slice();
        let n = s.len();
        !(1..n).any(|p| n.is_multiple_of(p) && (p..n).all(|i| s[i] == s[i - p]))
    }
}

/// The occurrences (burst, start) of a string found so far, and where the last one ends.
type Found = (Vec<(usize, usize)>, (usize, usize));

/// A string, the transitions its occurrences would save, and the occurrences.
type Candidate = (u64, Key, Vec<(usize, usize)>);

/// One burst: `thread[start..end]`.
#[derive(Clone, Copy)]
struct Span {
    thread: usize,
    start: usize,
    end: usize,
}

/// Finds the bursts of `trace` and their sequences, estimating savings with `calibration`.
pub fn find(trace: &Trace, config: &Config, calibration: &Calibration) -> Bursts {
    let threads: Vec<&[Call]> = trace.threads().collect();
    let gap = |a: &Call, b: &Call| b.enter_ns.saturating_sub(a.exit_ns);
    // Under ptrace every gap includes two stops of the tracee; the shortest gap of the trace
    // is the best estimate of them, and is taken off every gap.
    let overhead_ns = match trace.mechanism {
        crate::Mechanism::Ptrace => threads
            .iter()
            .flat_map(|t| t.windows(2).map(|w| gap(&w[0], &w[1])))
            .min()
            .unwrap_or(0),
        crate::Mechanism::Perf => 0,
    };
    let mut spans = Vec::new();
    for (t, calls) in threads.iter().enumerate() {
        let mut start = 0;
        for i in 1..=calls.len() {
            let split = i == calls.len()
                || gap(&calls[i - 1], &calls[i]).saturating_sub(overhead_ns) > config.gap_ns;
            if split {
                if i - start >= 2 {
                    spans.push(Span {
                        thread: t,
                        start,
                        end: i,
                    });
                }
                start = i;
            }
        }
    }
    let burst = |s: &Span| &threads[s.thread][s.start..s.end];
    let mut out = Bursts {
        gap_ns: config.gap_ns,
        overhead_ns,
        count: spans.len() as u64,
        calls: spans.iter().map(|s| (s.end - s.start) as u64).sum(),
        longest: spans
            .iter()
            .map(|s| (s.end - s.start) as u64)
            .max()
            .unwrap_or(0),
        kernel_ns: spans
            .iter()
            .flat_map(|s| burst(s).iter().map(|c| c.duration_ns()))
            .sum(),
        user_ns: spans
            .iter()
            .flat_map(|s| {
                burst(s)
                    .windows(2)
                    .map(|w| w[1].enter_ns.saturating_sub(w[0].exit_ns))
            })
            .sum(),
        sequences: Vec::new(),
    };

    // Each burst as symbols: a call, or several of the same call back to back (a read loop,
    // a newfstatat per entry), as (first call's index in the thread, calls).
    let symbols: Vec<Vec<(usize, usize)>> = spans
        .iter()
        .map(|span| {
            let thread = threads[span.thread];
            let mut syms: Vec<(usize, usize)> = Vec::new();
            for i in span.start..span.end {
                match syms.last_mut() {
                    Some((at, k)) if thread[*at].nr == thread[i].nr => *k += 1,
                    _ => syms.push((i, 1)),
                }
            }
            syms
        })
        .collect();
    let thread_of = |b: usize| threads[spans[b].thread];

    let max_len = config.max_len.clamp(1, 8);
    let mut covered: Vec<Vec<bool>> = symbols.iter().map(|s| vec![false; s.len()]).collect();
    for _ in 0..config.sequences {
        // Occurrences (burst, start) of every primitive string, not overlapping.
        let mut found: KeyMap<Found> = KeyMap::default();
        for len in 1..=max_len {
            for (b, syms) in symbols.iter().enumerate() {
                if syms.len() < len {
                    continue;
                }
                let thread = thread_of(b);
                for s in 0..=syms.len() - len {
                    if covered[b][s..s + len].iter().any(|&c| c) {
                        continue;
                    }
                    let key = Key::of(syms[s..s + len].iter().map(|&(at, _)| thread[at].nr));
                    if !key.primitive() {
                        continue;
                    }
                    let (occurrences, last_end) =
                        found.entry(key).or_insert((Vec::new(), (usize::MAX, 0)));
                    if last_end.0 == b && s < last_end.1 {
                        continue;
                    }
                    occurrences.push((b, s));
                    *last_end = (b, s + len);
                }
            }
        }
        // Rotations of a string are the same loop cut elsewhere (`close openat read` and
        // `openat read close`): a class is worth its best member, and is represented by its
        // most self-contained member that saves at least half as much.
        let mut classes: KeyMap<Vec<Candidate>> = KeyMap::default();
        for (key, (occ, _)) in found {
            let saved = saved(&symbols, key.len as usize, &occ);
            if saved > 0 {
                classes
                    .entry(key.canonical())
                    .or_default()
                    .push((saved, key, occ));
            }
        }
        let best = classes
            .into_values()
            .map(|mut members| {
                let top = members.iter().map(|m| m.0).max().unwrap_or(0);
                members.retain(|m| 2 * m.0 >= top);
                members.sort_by(|a, b| {
                    a.1.unbalanced()
                        .cmp(&b.1.unbalanced())
                        .then_with(|| b.0.cmp(&a.0))
                        .then_with(|| a.2.first().cmp(&b.2.first()))
                        .then_with(|| a.1.cmp(&b.1))
                });
                let rep = members.swap_remove(0);
                (top, rep)
            })
            .max_by(|(a_top, a), (b_top, b)| {
                a_top
                    .cmp(b_top)
                    .then_with(|| b.1.unbalanced().cmp(&a.1.unbalanced()))
                    .then_with(|| b.1.len.cmp(&a.1.len))
                    .then_with(|| b.2.first().cmp(&a.2.first()))
                    .then_with(|| b.1.cmp(&a.1))
            })
            .map(|(_, rep)| rep);
        let Some((transitions_saved, key, occ)) = best else {
            break;
        };
        let len = key.len as usize;
        for &(b, s) in &occ {
            covered[b][s..s + len].iter_mut().for_each(|c| *c = true);
        }
        let runs = runs(len, &occ);
        let mut before: HashMap<u32, u64> = HashMap::new();
        let mut listing = 0;
        let getdents = syscalls::Sysno::getdents64.id() as u32;
        for &(b, s, _) in &runs {
            let at = symbols[b][s].0;
            let thread = thread_of(b);
            if at > 0 {
                *before.entry(thread[at - 1].nr).or_default() += 1;
            }
            if thread[..at].iter().any(|c| c.nr == getdents) {
                listing += 1;
            }
        }
        // The calls of an occurrence.
        let calls_of = |&(b, s): &(usize, usize)| {
            let syms = &symbols[b][s..s + len];
            let (first, (last, k)) = (syms[0].0, syms[len - 1]);
            &thread_of(b)[first..last + k]
        };
        let mut per_turn = vec![0.0; len];
        for &(b, s) in &occ {
            for (p, &(_, k)) in per_turn.iter_mut().zip(&symbols[b][s..s + len]) {
                *p += k as f64;
            }
        }
        per_turn.iter_mut().for_each(|p| *p /= occ.len() as f64);
        // Shown from its most self-contained rotation, wherever the bursts cut the loop.
        let turn = (0..len)
            .min_by_key(|&r| Key::of((0..len).map(|i| key.nrs[(i + r) % len] as u32)).unbalanced())
            .unwrap_or(0);
        let mut nrs: Vec<u32> = key.slice().iter().map(|&n| n as u32).collect();
        nrs.rotate_left(turn);
        per_turn.rotate_left(turn);
        let mut seq = Sequence {
            calls: nrs.iter().map(|&n| name(n)).collect(),
            nrs,
            per_turn,
            count: occ.len() as u64,
            runs: runs.len() as u64,
            longest_run: runs.iter().map(|r| r.2 as u64).max().unwrap_or(0),
            time_ns: occ
                .iter()
                .map(|o| {
                    let c = calls_of(o);
                    c[c.len() - 1].exit_ns.saturating_sub(c[0].enter_ns)
                })
                .sum(),
            kernel_ns: occ
                .iter()
                .flat_map(|o| calls_of(o).iter().map(|c| c.duration_ns()))
                .sum(),
            transitions_saved,
            after: before
                .into_iter()
                .max_by_key(|&(nr, n)| (n, std::cmp::Reverse(nr)))
                .map(|(nr, _)| calls::name(nr)),
            after_listing: listing * 2 > runs.len(),
            saving_ns: 0.0,
        };
        seq.saving_ns = estimate_ns(&seq, calibration);
        out.sequences.push(seq);
    }
    out
}

/// Maximal runs of back-to-back occurrences: (burst, start, occurrences).
fn runs(len: usize, occ: &[(usize, usize)]) -> Vec<(usize, usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for &(b, s) in occ {
        match runs.last_mut() {
            Some((rb, rs, k)) if *rb == b && *rs + *k * len == s => *k += 1,
            _ => runs.push((b, s, 1)),
        }
    }
    runs
}

/// Transitions saved by one compound per run of back-to-back occurrences: the run's calls
/// but one.
fn saved(symbols: &[Vec<(usize, usize)>], len: usize, occ: &[(usize, usize)]) -> u64 {
    runs(len, occ)
        .iter()
        .map(|&(b, s, k)| {
            let calls: usize = symbols[b][s..s + k * len].iter().map(|&(_, n)| n).sum();
            (calls - 1) as u64
        })
        .sum()
}

/// Calls that io_uring hands to a worker thread, priced by the calibration's statx figures.
fn worker_call(name: &str) -> bool {
    matches!(
        name,
        "newfstatat"
            | "statx"
            | "stat"
            | "lstat"
            | "unlinkat"
            | "unlink"
            | "mkdirat"
            | "mkdir"
            | "renameat"
            | "renameat2"
            | "rename"
            | "fsync"
            | "fdatasync"
    )
}

/// What running every run of `seq` as one compound would save, in nanoseconds, from the
/// calibration, as the `auto` executor would run it: each call on the ring where that is
/// cheaper (its transition, `syscall_ns`, or `statx_direct_ns` for calls io_uring hands to a
/// worker, against its cost there, `ring_nop_ns` or `statx_ring_ns`), plainly otherwise; plus
/// one `ring_enter_ns` per run. Zero when io_uring is unavailable (a compound on plain calls
/// makes the same transitions). Negative when the round trips cost more than they save.
pub fn estimate_ns(seq: &Sequence, cal: &Calibration) -> f64 {
    if !cal.uring {
        return 0.0;
    }
    let per_occurrence: f64 = seq
        .calls
        .iter()
        .zip(&seq.per_turn)
        .map(|(c, k)| {
            let saved = if worker_call(c) {
                cal.statx_direct_ns - cal.statx_ring_ns
            } else {
                cal.syscall_ns - cal.ring_nop_ns
            };
            saved.max(0.0) * k
        })
        .sum();
    let v = per_occurrence * seq.count as f64 - cal.ring_enter_ns * seq.runs as f64;
    if v.is_finite() { v } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Collector;
    use crate::{Mechanism, Trace};

    /// A thread making `nrs` with `user` ns of user time before each call and 100 ns per call.
    fn trace(nrs: &[(u32, u64)]) -> Trace {
        let mut c = Collector::new();
        let mut t = 0;
        for &(nr, user) in nrs {
            t += user;
            c.enter(1, nr, t);
            t += 100;
            c.exit(1, Some(nr), 0, t);
        }
        Trace::new(Mechanism::Perf, c, Some(0), t, false, vec![])
    }

    fn calibration() -> Calibration {
        Calibration {
            kernel: String::new(),
            cpus: 1,
            uring: true,
            syscall_ns: 200.0,
            ring_setup_ns: 0.0,
            ring_enter_ns: 300.0,
            ring_nop_ns: 50.0,
            statx_direct_ns: 500.0,
            statx_ring_ns: 900.0,
            pread_direct_ns: 0.0,
            pread_ring_ns: 0.0,
            measure_ms: 0.0,
        }
    }

    const OPEN: u32 = 257;
    const READ: u32 = 0;
    const CLOSE: u32 = 3;
    const STAT: u32 = 262;
    const GETDENTS: u32 = 217;

    #[test]
    fn bursts_split_at_the_gap_and_sequences_are_the_loop_body() {
        // Two bursts of open/read/read/close ×3, 1 ms apart.
        let mut calls = Vec::new();
        for _ in 0..2 {
            calls.push((GETDENTS, 1_000_000));
            for _ in 0..3 {
                calls.extend([(OPEN, 1_000), (READ, 1_000), (READ, 1_000), (CLOSE, 1_000)]);
            }
        }
        let t = trace(&calls);
        let b = find(&t, &Config::default(), &calibration());
        assert_eq!((b.count, b.calls, b.longest), (2, 26, 13));
        let top = &b.sequences[0];
        assert_eq!(top.calls, ["openat", "read", "close"]);
        assert_eq!(top.per_turn, [1.0, 2.0, 1.0]);
        assert_eq!((top.count, top.runs, top.longest_run), (6, 2, 3));
        assert_eq!(top.transitions_saved, 2 * (3 * 4 - 1));
        assert_eq!(top.after.as_deref(), Some("getdents64"));
        assert!(top.after_listing);
        assert_eq!(top.kernel_ns, 6 * 4 * 100);
        assert_eq!(top.time_ns, 6 * (4 * 100 + 3 * 1_000));
        // 24 calls at 150 ns saved each, 2 ring round trips.
        assert_eq!(top.saving_ns, 24.0 * 150.0 - 2.0 * 300.0);
    }

    #[test]
    fn a_call_per_entry_is_one_place_of_the_sequence() {
        let mut calls = vec![(OPEN, 0), (GETDENTS, 100_000)];
        calls.extend([(STAT, 500); 10]);
        let b = find(&trace(&calls), &Config::default(), &calibration());
        let top = &b.sequences[0];
        assert_eq!(top.calls, ["getdents64", "newfstatat"]);
        assert_eq!(top.per_turn, [1.0, 10.0]);
        assert_eq!((top.count, top.runs), (1, 1));
        assert_eq!(top.transitions_saved, 10);
        // statx on the ring costs more than plain here: it stays a call; getdents64 saves
        // 150 ns, less than the round trip.
        assert_eq!(top.saving_ns, 150.0 - 300.0);
    }

    #[test]
    fn the_self_contained_rotation_wins_a_tie() {
        // close (of the directory) then open/read/close per file: `close openat read` saves
        // as much as `openat read close`.
        let mut calls = vec![(GETDENTS, 0), (CLOSE, 100)];
        for _ in 0..5 {
            calls.extend([(OPEN, 100), (READ, 100), (CLOSE, 100)]);
        }
        let b = find(&trace(&calls), &Config::default(), &calibration());
        assert_eq!(b.sequences[0].calls, ["openat", "read", "close"]);
    }

    #[test]
    fn a_loop_cut_by_user_work_is_reported_whole() {
        // open/read, then 10 µs of user work, then close: the bursts are `close openat read`
        // and the loop's body is still `openat read close`.
        let mut calls = vec![(GETDENTS, 0)];
        for _ in 0..6 {
            calls.extend([(OPEN, 100), (READ, 100), (CLOSE, 10_000)]);
        }
        let b = find(&trace(&calls), &Config::default(), &calibration());
        assert_eq!(b.sequences[0].calls, ["openat", "read", "close"]);
        assert_eq!(b.sequences[0].count, 5);
    }

    #[test]
    fn calls_far_apart_make_no_burst() {
        let b = find(
            &trace(&[(OPEN, 0), (READ, 10_000), (CLOSE, 10_000)]),
            &Config::default(),
            &calibration(),
        );
        assert_eq!(b.count, 0);
        assert!(b.sequences.is_empty());
    }

    #[test]
    fn primitive_strings() {
        let key = |nrs: &[u16]| {
            let mut k = Key {
                len: nrs.len() as u8,
                nrs: [0; 8],
            };
            k.nrs[..nrs.len()].copy_from_slice(nrs);
            k
        };
        assert!(key(&[1]).primitive());
        assert!(key(&[1, 2, 1]).primitive());
        assert!(!key(&[1, 1]).primitive());
        assert!(!key(&[1, 2, 1, 2]).primitive());
    }
}

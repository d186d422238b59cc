//! The threads that read and search the files of the directory being walked: each with a
//! session of its own; batches of one directory at a time, their results kept in order.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::files::{DirRef, Reader};
use super::search::{Out, Searcher};

/// A batch of files of one directory: their names, the paths they are printed as, and the
/// place of its result.
pub struct Batch {
    /// The directory.
    pub dir: Arc<DirRef>,
    /// The files' names in it.
    pub names: Vec<OsString>,
    /// The path printed for them, before their names.
    pub shown: Arc<Vec<u8>>,
    /// Its index among the batches of its round.
    pub index: usize,
    /// The round it belongs to.
    pub round: Arc<Round>,
}

/// The batches of one directory, and their results as they come.
pub struct Round {
    results: Mutex<(Vec<Option<Out>>, usize)>,
    done: Condvar,
}

impl Round {
    /// A round of `n` batches.
    pub fn new(n: usize) -> Arc<Round> {
        Arc::new(Round {
            results: Mutex::new(((0..n).map(|_| None).collect(), n)),
            done: Condvar::new(),
        })
    }

    fn put(&self, i: usize, out: Out) {
        let mut r = self.results.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = r.0.get_mut(i) {
            *slot = Some(out);
            r.1 -= 1;
        }
        if r.1 == 0 {
            self.done.notify_all();
        }
    }

    /// Waits for every batch; their results in order.
    pub fn wait(&self) -> Vec<Out> {
        let mut r = self.results.lock().unwrap_or_else(|p| p.into_inner());
        while r.1 > 0 {
            r = self.done.wait(r).unwrap_or_else(|p| p.into_inner());
        }
        std::mem::take(&mut r.0).into_iter().flatten().collect()
    }
}

struct Queue {
    jobs: Mutex<(VecDeque<Batch>, bool)>,
    ready: Condvar,
}

/// The searching threads.
pub struct Pool {
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

/// Searches `b` with `reader`.
pub fn run_batch(reader: &mut Reader, searcher: &Searcher, b: Batch) {
    let out = searcher.batch(reader, &b.dir, &b.names, &b.shown);
    b.round.put(b.index, out);
}

impl Pool {
    /// `n` threads (none for `n == 0`), each making its reader with `make`.
    pub fn new(
        n: usize,
        searcher: Arc<Searcher>,
        make: impl Fn() -> Result<Reader, String> + Send + Sync + 'static,
    ) -> Pool {
        let queue = Arc::new(Queue {
            jobs: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
        });
        let make = Arc::new(make);
        let threads = (0..n)
            .filter_map(|_| {
                let q = Arc::clone(&queue);
                let s = Arc::clone(&searcher);
                let make = Arc::clone(&make);
                std::thread::Builder::new()
                    .spawn(move || {
                        let Ok(mut reader) = make() else {
                            // Without a session this thread takes no batch; the others do.
                            return;
                        };
                        while let Some(b) = q.pop_wait() {
                            run_batch(&mut reader, &s, b);
                        }
                    })
                    .ok()
            })
            .collect();
        Pool { queue, threads }
    }

    /// Whether there are threads besides the caller's.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Queues batches.
    pub fn push(&self, batches: Vec<Batch>) {
        let mut q = self.queue.jobs.lock().unwrap_or_else(|p| p.into_inner());
        q.0.extend(batches);
        self.queue.ready.notify_all();
    }

    /// A queued batch, if any (the caller searches it itself).
    pub fn pop(&self) -> Option<Batch> {
        let mut q = self.queue.jobs.lock().unwrap_or_else(|p| p.into_inner());
        q.0.pop_front()
    }
}

impl Queue {
    fn pop_wait(&self) -> Option<Batch> {
        let mut q = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(b) = q.0.pop_front() {
                return Some(b);
            }
            if q.1 {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut q = self.queue.jobs.lock().unwrap_or_else(|p| p.into_inner());
            q.1 = true;
            self.queue.ready.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

//! Standard output and error of a search, written in order, and what they add up to for the
//! exit status.

use std::io::{self, Write};

use super::search::Out;

/// Where a search's output goes.
pub struct Sink {
    out: io::BufWriter<io::Stdout>,
    /// A file matched.
    pub matched: bool,
    /// An error was reported.
    pub failed: bool,
    /// Standard output is closed (a broken pipe): the search stops.
    pub closed: bool,
}

impl Default for Sink {
    fn default() -> Self {
        Sink {
            out: io::BufWriter::with_capacity(64 << 10, io::stdout()),
            matched: false,
            failed: false,
            closed: false,
        }
    }
}

impl Sink {
    /// Writes `o`.
    pub fn write(&mut self, o: Out) {
        self.matched |= o.matched;
        self.failed |= o.failed;
        for (err, bytes) in o.pieces {
            if err {
                // Messages stay in order with the output around them.
                let _ = self.out.flush();
                let _ = io::stderr().write_all(&bytes);
            } else if !self.closed && self.out.write_all(&bytes).is_err() {
                self.closed = true;
            }
        }
    }

    /// Flushes standard output.
    pub fn flush(&mut self) {
        if self.out.flush().is_err() {
            self.closed = true;
        }
    }
}

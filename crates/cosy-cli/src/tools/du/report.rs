//! du's messages: printed at once, or kept (a subtree counted on another thread) to be
//! printed in the order du would have printed them.

use crate::tools::common::errno_text;

/// Where messages go, and whether any was an error.
#[derive(Debug, Default)]
pub struct Report {
    /// `Some`: kept, in order, instead of printed.
    kept: Option<Vec<String>>,
    failed: bool,
}

impl Report {
    /// Messages printed to standard error as they come.
    pub fn printed() -> Self {
        Report::default()
    }

    /// Messages kept for [`Report::replay`].
    pub fn kept() -> Self {
        Report {
            kept: Some(Vec::new()),
            failed: false,
        }
    }

    /// An error: `du: message`.
    pub fn error(&mut self, message: impl std::fmt::Display) {
        self.failed = true;
        match &mut self.kept {
            Some(v) => v.push(format!("du: {message}")),
            None => eprintln!("du: {message}"),
        }
    }

    /// `what` failed with errno `e`: `du: what: Permission denied`.
    pub fn errno(&mut self, what: impl std::fmt::Display, e: i32) {
        self.error(format_args!("{what}: {}", errno_text(e)));
    }

    /// Whether an error was reported.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Reports again, through `self`, what `other` kept.
    pub fn replay(&mut self, other: Report) {
        self.failed |= other.failed;
        for m in other.kept.unwrap_or_default() {
            match &mut self.kept {
                Some(v) => v.push(m),
                None => eprintln!("{m}"),
            }
        }
    }
}

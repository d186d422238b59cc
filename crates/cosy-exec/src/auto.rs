//! The auto executor (placeholder while the cost model is written).

use cosy_verify::Verified;

use crate::{Outcome, RunOptions};

/// The auto executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoExecutor;

impl AutoExecutor {
    /// Runs `v`.
    pub fn run(v: &Verified, opts: &RunOptions) -> Outcome {
        crate::ring::RingExecutor::run(v, opts)
    }
}

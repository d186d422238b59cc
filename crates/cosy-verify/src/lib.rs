//! The verifier (API skeleton; the checks are being written).

use cosy_model::{Compound, Policy};

/// A compound that passed verification under a policy. Executors accept only this.
#[derive(Clone, Debug)]
pub struct Verified {
    compound: Compound,
    policy: Policy,
}

impl Verified {
    /// The compound.
    pub fn compound(&self) -> &Compound {
        &self.compound
    }

    /// The policy it was verified under (and must run under).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Gives the compound back.
    pub fn into_inner(self) -> Compound {
        self.compound
    }
}

/// Which invariant a problem breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// Placeholder until the rules are written.
    Unspecified,
}

/// One problem found, with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Index of the operation, if the problem is in one.
    pub op: Option<u32>,
    /// Text line of that operation, when the compound came from text (see [`Problems::with_lines`]).
    pub line: Option<u32>,
    /// The invariant broken.
    pub rule: Rule,
    /// What is wrong, in words.
    pub message: String,
}

/// Every problem found in a compound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Fills each problem's `line` from `op_lines[op]` (the parser's line of each operation).
    pub fn with_lines(mut self, op_lines: &[u32]) -> Self {
        for p in &mut self.0 {
            if let Some(op) = p.op {
                p.line = op_lines.get(op as usize).copied();
            }
        }
        self
    }
}

/// Checks `compound` against `policy`; all problems are reported, not just the first.
pub fn verify(compound: Compound, policy: &Policy) -> Result<Verified, Problems> {
    Ok(Verified {
        compound,
        policy: policy.clone(),
    })
}

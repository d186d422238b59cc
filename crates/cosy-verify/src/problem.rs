//! What the verifier reports: the rules, one problem, all problems.

use std::fmt;

/// Which invariant a problem breaks. The [crate documentation](crate) states each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Rule {
    // Declarations.
    /// A buffer has size 0.
    BufferSize,
    /// An index names no declaration (register, fd slot, path variable, buffer, data constant),
    /// or a standard stream is not 0, 1 or 2.
    IndexRange,
    /// Two registers, fd slots, path variables or buffers have the same name.
    DuplicateName,
    /// Two inputs have the same name, or set the same register or data constant.
    DuplicateInput,
    /// Two outputs have the same name.
    DuplicateOutput,
    /// A data constant used as a path (operand, `paths` map, path input) contains a NUL byte.
    PathNul,
    /// The buffers (one copy each) exceed the policy's `arena_bytes`.
    ArenaSize,

    // System calls and the policy.
    /// A system call has more or fewer operands than its row of the operation table.
    OperandCount,
    /// A system call operand is not of the kind its row of the table requires (or `pipe2`
    /// fills the same fd slot twice, or `close` names a standard stream).
    OperandKind,
    /// A system call's result goes somewhere its row's result kind cannot go.
    ResultKind,
    /// A system call the policy does not allow.
    CallNotAllowed,
    /// A standard stream used under a policy without `std_streams`.
    StdStreams,

    // Arena bounds.
    /// A buffer range with immediate bounds outside `0 <= start <= end <= size`.
    BufferRange,
    /// A `load` or `store` that cannot fit in its buffer.
    AccessRange,
    /// A buffer operand smaller than its call's minimum ([`SysSpec::min_buf`]: a
    /// `struct statx` of 256 bytes for `statx`/`fstat`, a `struct timespec[2]` of 32 bytes for
    /// `utimensat`).
    ///
    /// [`SysSpec::min_buf`]: cosy_model::SysSpec::min_buf
    CallBufferSize,

    // Dataflow.
    /// A register read on a path where it may not have been written.
    ReadBeforeWrite,
    /// An fd slot used on a path where nothing may have been opened into it.
    FdBeforeOpen,

    // Jumps.
    /// A jump target past the end (`> ops.len()`).
    JumpTarget,
    /// A conditional jump whose operator is not a comparison.
    JumpCondition,
    /// A backward jump without a bound (or with bound 0).
    LoopBound,
    /// A jump that enters or leaves a map body.
    JumpScope,

    // Maps.
    /// `MapBegin`/`MapEnd` that do not match or do not nest.
    MapStructure,
    /// Maps nested more than [`MAX_MAP_DEPTH`](crate::MAX_MAP_DEPTH) deep.
    MapDepth,
    /// A map body (or map variable) writes a register that may hold a value from before the
    /// map, other than as an accumulator `r = r + x`.
    MapRegisterWrite,
    /// A map body reads one of its accumulators other than to accumulate into it.
    MapAccumulatorRead,
    /// A map body opens into, or closes, an fd slot that may be open from before the map.
    MapFd,
    /// A local buffer used outside every map body.
    LocalBuffer,
    /// A map body writes a buffer shared by its iterations: one that is not local, or a local
    /// one the enclosing body uses too.
    MapBufferWrite,
    /// A path variable used outside a map binding it, or bound again by a nested map.
    PathVarScope,
    /// A `range` map with an immediate step `<= 0`.
    RangeStep,

    // Functions.
    /// A function that is neither a built-in nor allowed by the policy.
    UnknownFunction,
    /// A function operand that is not an integer, a buffer range or a data constant, or a
    /// built-in called with the wrong operands.
    FunctionOperands,
}

impl Rule {
    /// Every rule, in the order of the crate documentation.
    pub const ALL: &'static [Rule] = &[
        Rule::BufferSize,
        Rule::IndexRange,
        Rule::DuplicateName,
        Rule::DuplicateInput,
        Rule::DuplicateOutput,
        Rule::PathNul,
        Rule::ArenaSize,
        Rule::OperandCount,
        Rule::OperandKind,
        Rule::ResultKind,
        Rule::CallNotAllowed,
        Rule::StdStreams,
        Rule::BufferRange,
        Rule::AccessRange,
        Rule::CallBufferSize,
        Rule::ReadBeforeWrite,
        Rule::FdBeforeOpen,
        Rule::JumpTarget,
        Rule::JumpCondition,
        Rule::LoopBound,
        Rule::JumpScope,
        Rule::MapStructure,
        Rule::MapDepth,
        Rule::MapRegisterWrite,
        Rule::MapAccumulatorRead,
        Rule::MapFd,
        Rule::LocalBuffer,
        Rule::MapBufferWrite,
        Rule::PathVarScope,
        Rule::RangeStep,
        Rule::UnknownFunction,
        Rule::FunctionOperands,
    ];
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

impl fmt::Display for Problem {
    /// `op 3 (line 7): message`, `op 3: message` without a line, `message` without an operation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.op, self.line) {
            (Some(op), Some(line)) => write!(f, "op {op} (line {line}): {}", self.message),
            (Some(op), None) => write!(f, "op {op}: {}", self.message),
            (None, Some(line)) => write!(f, "line {line}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a compound: problems outside operations first, then by operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Fills each problem's `line` from `op_lines[op]` (the parser's line of each operation).
    pub fn with_lines(mut self, op_lines: &[u32]) -> Self {
        for p in &mut self.0 {
            if let Some(op) = p.op {
                p.line = usize::try_from(op)
                    .ok()
                    .and_then(|i| op_lines.get(i))
                    .copied();
            }
        }
        self
    }

    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never the case for an `Err` of [`verify`](crate::verify)).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some problem breaks `rule`.
    pub fn has(&self, rule: Rule) -> bool {
        self.0.iter().any(|p| p.rule == rule)
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Problems {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

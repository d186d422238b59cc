//! The cosy verifier: checks a [`Compound`] against a [`Policy`] before anything runs.
//!
//! A compound is untrusted data (it may come from a file). [`verify`] takes it by value and
//! returns a [`Verified`] — the only thing executors accept — or every [`Problem`] found, each
//! with the [`Rule`] it breaks and the index of the operation it is in (mapped to text lines
//! with [`Problems::with_lines`]). The verifier never panics, whatever the compound holds:
//! indices out of range are problems like any other.
//!
//! What verification guarantees, and what is left to the executor:
//!
//! - every index names a declaration, so an executor may index its tables without checks;
//! - every system call matches its row of the operation table and is allowed by the policy;
//! - immediate buffer bounds are inside their buffers; bounds held in registers are **not**
//!   known here, and the executor checks them before every operation that uses them (ranges,
//!   `load`/`store` offsets, the 256 bytes of a `statx` buffer);
//! - every loop is bounded and every register and fd slot is set before it is used, on every
//!   path; but a compound of bounded loops may still run long: **fuel** (`policy.fuel`) and
//!   **time** (`policy.time`) are enforced at run time, as are `policy.open_fds` and the arena
//!   with one copy of each local buffer per lane;
//! - map iterations are independent, so an executor may run them in any order or at once.
//!
//! A [`Verified`] also carries the compound's [`Structure`], worked out once from the map
//! shape and the dataflow the checks run on (see [The structure](#the-structure)), so that
//! executors and tools read it instead of deriving it again.
//!
//! # The invariants
//!
//! One [`Rule`] each. "Op" is the index of the operation reported; problems without an
//! operation (declarations, outputs) have none.
//!
//! ## Declarations
//!
//! - [`Rule::BufferSize`]: every buffer has a size > 0.
//! - [`Rule::IndexRange`]: every register, fd slot, path variable, buffer and data constant
//!   named anywhere (operands, results, map sources and variables, inputs, outputs) is
//!   declared; a standard stream is 0, 1 or 2 (any other number would reach the host
//!   process's own descriptors).
//! - [`Rule::DuplicateName`]: names are unique within each namespace: registers, fd slots,
//!   path variables, buffers.
//! - [`Rule::DuplicateInput`]: input names are unique, and no two inputs set the same register
//!   or data constant.
//! - [`Rule::DuplicateOutput`]: output names are unique.
//! - [`Rule::PathNul`]: a data constant used as a path (a path operand, an item of a `paths`
//!   map, a path input's default) contains no NUL byte.
//! - [`Rule::ArenaSize`]: the sum of the buffer sizes (one copy of each buffer, local buffers
//!   counted once) is at most `policy.arena_bytes`.
//!
//! ## System calls and the policy
//!
//! - [`Rule::OperandCount`]: an [`Op::Sys`] has exactly as many operands as its table row
//!   ([`Sys::spec`](cosy_model::Sys::spec)).
//! - [`Rule::OperandKind`]: each operand has the kind of its row's [`ArgKind`]: `Fd` a slot or
//!   a standard stream (not `cwd`); `DirFd` a slot or `cwd`; `NewFd` a slot; `Path` a path;
//!   `BufIn`/`BufOut` a buffer range; `Int`/`Flags` a value. Beyond the table: the two
//!   `NewFd` slots of `pipe2` differ, and `close` takes an fd slot, not a standard stream
//!   (those belong to the host process).
//! - [`Rule::ResultKind`]: a call returning a descriptor returns into an fd slot (returned
//!   nowhere, it could never be closed); a call returning a value, into a register or nowhere.
//! - [`Rule::CallNotAllowed`]: every call is allowed by the policy ([`Policy::allows`]).
//! - [`Rule::StdStreams`]: standard streams are used only if `policy.std_streams`.
//!
//! ## Arena bounds
//!
//! - [`Rule::BufferRange`]: a range `buf[start..end]` (operands, function operands, `dirents`
//!   sources) whose bounds are immediate satisfies `0 <= start <= end <= size` (a missing end
//!   is the size; with one bound in a register, the other is still checked).
//! - [`Rule::AccessRange`]: a `load`/`store` with an immediate offset has
//!   `0 <= off` and `off + width <= size`; any `load`/`store` needs `width <= size`.
//! - [`Rule::CallBufferSize`]: every buffer operand of a call holds at least the row's
//!   [`min_buf`](cosy_model::SysSpec::min_buf) bytes (a `struct statx` of
//!   [`STATX_BYTES`](cosy_model::flags::STATX_BYTES) for `statx` and `fstat`, a
//!   `struct timespec[2]` of [`TIMES_BYTES`](cosy_model::flags::TIMES_BYTES) for `utimensat`)
//!   as far as its immediate bounds and its buffer's size tell.
//!
//! ## Dataflow
//!
//! A forward analysis over the control-flow graph: nodes are the operations and the end;
//! a jump goes to its target (and, if conditional, to the next operation); a `MapBegin` goes
//! into its body with the map's variables written, and past its `MapEnd` without them (a body
//! may run zero times); a `MapEnd` ends an iteration and goes nowhere, so nothing a body
//! writes or opens survives its map. Integer inputs are written at the start. Unreachable
//! operations are not checked. Writes never undo each other, so the analysis is a
//! reachability question per register or fd slot, answered 64 of them at a time: memory is
//! linear in the number of operations and hostile control flow cannot make it blow up.
//!
//! - [`Rule::ReadBeforeWrite`]: a register is read only where it has been written on every
//!   path ("register `n` read before it is written"); an output's register is written on
//!   every path to the end.
//! - [`Rule::FdBeforeOpen`]: an fd slot is used (closed included) only where something has
//!   been opened into it on every path (`openat`/`openat2` results, `pipe2`'s slots). Using a
//!   slot after `close` is not a verifier error: the call fails with `EBADF` at run time.
//!
//! ## Jumps
//!
//! - [`Rule::JumpTarget`]: a jump's target is at most `ops.len()` (the end).
//! - [`Rule::JumpCondition`]: a conditional jump compares (`==`, `!=`, `<`, `<=`, `>`, `>=`).
//! - [`Rule::LoopBound`]: a backward jump (target <= its own index) has a bound > 0.
//! - [`Rule::JumpScope`]: a jump does not enter or leave a map body: its target lies in the
//!   same innermost map body as the jump, the body's `MapEnd` counting as inside (jumping to it
//!   starts the next iteration).
//!
//! ## Maps
//!
//! "Before the map" means: written (opened) on some path reaching the `MapBegin`, integer
//! inputs included.
//!
//! - [`Rule::MapStructure`]: each `MapBegin { end }` and `MapEnd { begin }` name each other
//!   and maps nest properly.
//! - [`Rule::MapDepth`]: maps nest at most [`MAX_MAP_DEPTH`] (8) deep.
//!
//!   When either of these two rules is broken, the checks that need the map structure
//!   (dataflow, jump scopes and the rest of this section) are skipped: fix the structure first.
//! - [`Rule::MapRegisterWrite`]: a map body writes no register that may hold a value from
//!   before the map, except as an accumulator `r = r + x` ([`Op::Arith`] `Add` with
//!   `a == Reg(r)`); a map's variables do not hold a value from before it (a map binds
//!   registers of its own).
//! - [`Rule::MapAccumulatorRead`]: a map body reads its accumulators only to accumulate into
//!   them (any other read would see a partial sum that depends on the order of iterations).
//! - [`Rule::MapFd`]: a map body does not open into (results, `pipe2`) or close an fd slot that
//!   may be open from before the map. Fds opened in a body belong to the iteration (closed at
//!   its end); using an fd opened before the map (a directory for `openat`) is fine.
//! - [`Rule::LocalBuffer`]: a local buffer ([`Buffer::local`](cosy_model::Buffer::local)) is
//!   used only inside map bodies.
//! - [`Rule::MapBufferWrite`]: a map body writes only buffers private to its iteration
//!   (writes: the `BufOut` operands of calls, `store`, the ranges passed to user functions,
//!   which may write them; built-ins only read). A buffer that is not local is shared by all
//!   iterations. A local buffer is shared by the iterations of a map nested in another map's
//!   body if that body uses the buffer directly (outside its nested maps; the nested map's
//!   own `dirents` source included): the nested iterations see that body's copy, and may
//!   only read it.
//! - [`Rule::PathVarScope`]: a path variable is used only inside a map that binds it, and a
//!   map does not bind a path variable an enclosing map binds.
//! - [`Rule::RangeStep`]: a `range` map's immediate step is > 0 (a step in a register is
//!   checked at run time). `dirents` sources are buffer ranges by construction and are checked
//!   by [`Rule::BufferRange`].
//!
//! ## Functions
//!
//! - [`Rule::UnknownFunction`]: a called function is a built-in ([`BUILTINS`](cosy_model::BUILTINS))
//!   or in `policy.functions`.
//! - [`Rule::FunctionOperands`]: function operands are values, buffer ranges or data
//!   constants (passed as their bytes, like a needle for `find`; NUL bytes allowed), not
//!   descriptors or path variables; `find` takes two byte operands (ranges or constants),
//!   `count_lines` and `checksum` one.
//!
//! # The structure
//!
//! What [`Verified::structure`] holds, for a compound that passed every check above:
//!
//! - [`Structure::successors`]: the control-flow graph of a run, per operation, the end
//!   (`ops.len()`) included: the next operation; a jump's target (and, if conditional, the next
//!   operation); from a `MapBegin`, its body and past its `MapEnd`; from a `MapEnd`, the body
//!   again (the next item) and past the map. (The dataflow above uses the same graph but for
//!   `MapEnd`, which there goes nowhere, since each iteration starts from the state at its
//!   `MapBegin`.)
//! - [`Structure::enclosing`]: the innermost map whose body (`begin+1 ..= end`) holds an
//!   operation; a map's `MapEnd` belongs to its body, its `MapBegin` to the level around it.
//! - [`Structure::may_write`]: whether an operation is a system call that may change a file
//!   ([`cosy_model::may_write`]: `Effect::Write`, or an open that creates, truncates or has
//!   flags known only at run time).
//! - [`Structure::jump_index`], [`Structure::jumps`]: each jump's index among the jumps (loop
//!   counters are kept per jump).
//! - [`Structure::map`], [`Structure::maps`]: per map, a [`MapInfo`]:
//!   - `begin`, `end`: the indices of its `MapBegin` and `MapEnd`;
//!   - `locals`: the registers its body writes (nested maps included) that are the iteration's
//!     own, restored to their value at the map's start before each iteration: every register
//!     written in the body but the accumulators (the map's own variables, which its
//!     `MapBegin` binds for each item, are not listed unless the body writes them);
//!   - `accumulators`: the registers that may hold a value when the map starts (by the
//!     dataflow above) and that the body writes only as `r = r + x`; they add up across
//!     iterations;
//!   - `fd_slots`: the fd slots the body opens into (closed at the end of each iteration);
//!   - `jumps`: the jumps in the body (their loop counters restart with each iteration);
//!   - `writes`: whether the body makes a call with `Effect::Write`;
//!   - `concurrent`: whether the iterations may run at once — the one rule for every
//!     executor: no call of the body (nested maps included) may change a file
//!     ([`cosy_model::may_write`]), calls that move a file position (the operation table's
//!     `position` column) and `close` act only on fd slots the body opens, and the only
//!     functions called are built-ins (a user function may keep state between calls);
//!   - `zero_bufs`: the local buffers private to each iteration, zeroed at its start: used in
//!     the body (nested maps included) and used directly by no enclosing map's body (whose
//!     copy the nested iterations share, [`Rule::MapBufferWrite`]).
//!
//! # Example
//!
//! ```
//! use cosy_model::{Builder, FdRef, Policy};
//! use cosy_model::flags::{Mode, OFlags};
//! use cosy_verify::{verify, Rule};
//!
//! let mut c = Builder::new();
//! let name = c.input_path("name", "/etc/passwd");
//! let buf = c.buffer("buf", 4096);
//! let fd = c.openat(FdRef::Cwd, name, OFlags::RDONLY, Mode::empty());
//! let total = c.value("total", 0);
//! c.do_while(1 << 20, |c| {
//!     let n = c.read(fd, buf);
//!     c.accumulate(total, n);
//!     n.eq(4096)
//! });
//! c.close(fd);
//! c.output("total", total);
//! let compound = c.finish();
//!
//! // Fine under a policy that allows reads.
//! let verified = verify(compound.clone(), &Policy::trusted()).expect("a valid compound");
//! assert_eq!(verified.compound().ops.len(), 6);
//! // The loop: the read at op 2 follows the jump at op 4 when `n == 4096`.
//! assert_eq!(verified.structure().successors(4), [5, 2]);
//! assert_eq!(verified.structure().jumps(), 1);
//!
//! // Not under one with too small an arena.
//! let policy = Policy { arena_bytes: 1024, ..Policy::trusted() };
//! let problems = verify(compound, &policy).unwrap_err();
//! assert_eq!(problems.0[0].rule, Rule::ArenaSize);
//! assert_eq!(
//!     problems.to_string(),
//!     "the buffers take 4096 bytes, more than the policy's arena of 1024 bytes"
//! );
//! ```
//!
//! [`ArgKind`]: cosy_model::ArgKind

mod ctx;
mod declarations;
mod facts;
mod flow;
mod maps;
mod operands;
mod problem;
mod ranges;
mod refs;
mod structure;

use std::sync::Arc;

use cosy_model::{Compound, Policy};

#[cfg(doc)]
use cosy_model::Op;

pub use facts::{MapInfo, Structure};
pub use problem::{Problem, Problems, Rule};
pub use structure::MAX_MAP_DEPTH;

/// A compound that passed verification under a policy, with its [`Structure`]. Executors
/// accept only this.
#[derive(Clone, Debug)]
pub struct Verified {
    compound: Compound,
    policy: Policy,
    /// Shared: executors keep it with their plans, and a clone of a `Verified` costs no copy.
    structure: Arc<Structure>,
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

    /// The structure worked out while verifying: control flow, map nesting, the facts of
    /// each map, which calls may change a file.
    pub fn structure(&self) -> &Arc<Structure> {
        &self.structure
    }

    /// Gives the compound back.
    pub fn into_inner(self) -> Compound {
        self.compound
    }
}

/// Checks `compound` against `policy`; all problems are reported, not just the first.
pub fn verify(compound: Compound, policy: &Policy) -> Result<Verified, Problems> {
    let (problems, structure) = check(&compound, policy);
    match structure {
        Some(structure) if problems.is_empty() => Ok(Verified {
            compound,
            policy: policy.clone(),
            structure: Arc::new(structure),
        }),
        // Without a structure there is a problem with the maps' shape, reported.
        _ => Err(Problems(problems)),
    }
}

impl Structure {
    /// The structure of a compound that need not have passed verification (a rewrite of a
    /// verified one, between two verifications): `None` unless its maps and jumps are well
    /// formed ([`Rule::MapStructure`], [`Rule::MapDepth`], [`Rule::JumpTarget`],
    /// [`Rule::JumpScope`]). The other rules are not checked; facts that rest on them (the
    /// accumulators, which assume every register is written before it is read) are only as
    /// good as the compound.
    pub fn of(compound: &Compound) -> Option<Structure> {
        // The structural checks consult no policy; the context needs one for its messages.
        let policy = Policy::trusted();
        let mut cx = ctx::Ctx::new(compound, &policy);
        let shape = structure::check(&mut cx)?;
        let jumps_broken = cx
            .finish()
            .iter()
            .any(|p| matches!(p.rule, Rule::JumpTarget | Rule::JumpScope));
        if jumps_broken {
            return None;
        }
        let graph = flow::Graph::new(compound, &shape);
        let before = graph.written_before(&maps::questions(compound, &shape));
        Some(Structure::new(compound, &shape, &before))
    }
}

/// The problems of `compound`, and its structure when its maps are well formed.
fn check(compound: &Compound, policy: &Policy) -> (Vec<Problem>, Option<Structure>) {
    let mut cx = ctx::Ctx::new(compound, policy);
    declarations::check(&mut cx);
    operands::check(&mut cx);
    ranges::check(&mut cx);
    let mut facts = None;
    if let Some(shape) = structure::check(&mut cx) {
        let graph = flow::Graph::new(compound, &shape);
        flow::check(&mut cx, &graph);
        let before = maps::check(&mut cx, &shape, &graph);
        facts = Some(Structure::new(compound, &shape, &before));
    }
    (cx.finish(), facts)
}

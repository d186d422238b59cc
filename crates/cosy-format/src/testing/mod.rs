//! Proptest strategies generating compounds, for the tests of this crate and others (cargo
//! feature `testing`).
//!
//! Both strategies draw a tape of random choices and build a compound from it, so shrinking the
//! tape (fewer, smaller choices) shrinks the compound: a choice of 0 is always the simplest
//! option.
//!
//! ```
//! use proptest::prelude::*;
//! use proptest::test_runner::TestRunner;
//! let mut runner = TestRunner::default();
//! runner
//!     .run(&cosy_format::testing::compound(), |c| {
//!         let bytes = cosy_format::binary::encode(&c);
//!         prop_assert_eq!(cosy_format::binary::decode(&bytes).ok(), Some(c));
//!         Ok(())
//!     })
//!     .map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```

use cosy_model::flags;
use cosy_model::{Buffer, Compound, DataId, ErrorMode, Input, InputKind, Output, Reg};
use proptest::prelude::*;

mod arbitrary;
mod valid;

use valid::ValidState;

/// Any well-formed compound: every kind of operation, every system call of the table with
/// operands of the right kinds, nested maps of every source with correct `begin`/`end`, jumps
/// (forward and backward, with and without conditions and bounds) to targets in range, path
/// and integer inputs, local and shared buffers, both error modes, unused and out-of-order
/// declarations.
///
/// The compounds reference only existing declarations and have printable names, so they
/// encode, decode, print and parse back to themselves; they need not pass the verifier
/// (registers may be read before written, `cwd` may stand where a descriptor is needed, ...).
pub fn compound() -> impl Strategy<Value = Compound> {
    tape().prop_map(|t| compound_from_choices(&t))
}

/// A compound meant to pass `cosy-verify` under `Policy::trusted()`:
///
/// - registers are written on every path before they are read, outputs (with distinct names)
///   name registers written on every path to the end;
/// - fds are opened before they are used, `close` takes fd slots only, `pipe2` two distinct
///   slots;
/// - control flow is structured: forward skips inside their block (`if c goto end`) and
///   bounded do-while loops (`if c goto top bound N`, N > 0), comparisons only, no maps inside
///   loops;
/// - maps nest at most two deep; a body does not rebind a path variable, binds registers
///   written on no path before it, writes registers from before the map only as accumulators
///   (`r = r + x`) and reads them not at all, opens and closes only fd slots not open before
///   it, and writes only local buffers (nested bodies write none); local buffers are used
///   only in maps;
/// - buffers have sizes > 0, ranges and load/store offsets are immediate and in bounds,
///   `statx`/`fstat` buffers hold 256 bytes, divisions are by non-zero immediates, map ranges
///   step by a positive immediate, calls go to the built-ins with the operands they take.
///
/// System calls get the flags programs pass: opens that read, write (`O_RDWR`; also
/// `O_WRONLY` under [`ENV_GEN_FLAGS`]`=all`), append, truncate, create (with a mode; also
/// exclusively, `O_EXCL`, under [`ENV_GEN_FLAGS`]`=all`) or want a directory; `AT_SYMLINK_NOFOLLOW` and
/// `AT_EMPTY_PATH` for `statx`, `AT_REMOVEDIR` for `unlinkat`, `RENAME_NOREPLACE`,
/// `RENAME_EXCHANGE` and `RENAME_WHITEOUT` for `renameat2`, modes for `mkdirat`, `lseek`'s
/// whences, openat2's `RESOLVE_*`.
///
/// It may contain calls that write (`mkdirat`, `unlinkat`, `renameat2`, `pwrite`, creating and
/// truncating opens, ... on the paths `a`, `dir/b`, `.`, `/tmp/cosy-x`, `sub dir/é`, `link`,
/// `new`, `tree/sub`, `dir/new`, and with `COSY_GEN_FLAGS=all` the empty path): run it only
/// under a policy whose root is a scratch directory.
pub fn valid_compound() -> impl Strategy<Value = Compound> {
    tape().prop_map(|t| valid_compound_from_choices(&t))
}

/// `c` with its pipes made non-blocking (`O_NONBLOCK` added to every `pipe2`'s flags): a
/// generated compound may read a pipe it holds the write end of, or fill one, and a plain
/// system call that blocks ignores the time limit, so a test run of it would hang.
pub fn nonblocking_pipes(mut c: Compound) -> Compound {
    for op in &mut c.ops {
        if let cosy_model::Op::Sys {
            call: cosy_model::Sys::Pipe2,
            args,
            ..
        } = op
            && let Some(cosy_model::Arg::Value(v)) = args.get_mut(2)
        {
            let flags = match v {
                cosy_model::Value::Imm(f) => *f,
                cosy_model::Value::Reg(_) => 0,
            };
            let nonblock = cosy_model::flags::constant("O_NONBLOCK").unwrap_or(0o4000);
            *v = cosy_model::Value::Imm(flags | nonblock);
        }
    }
    c
}

/// The compound [`compound`] builds from a tape of choices (the same tape, the same compound).
pub fn compound_from_choices(choices: &[u64]) -> Compound {
    let mut g = Gen::new(choices, false);
    g.declarations();
    g.arbitrary_ops();
    g.outputs(|_| true);
    g.c
}

/// The compound [`valid_compound`] builds from a tape of choices.
pub fn valid_compound_from_choices(choices: &[u64]) -> Compound {
    let mut g = Gen::new(choices, true);
    g.declarations();
    let mut st = ValidState::new(&g.c);
    g.valid_block(&mut st, 0);
    let defined = st.defined;
    g.outputs(|r| defined[r.index()]);
    g.c
}

fn tape() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(any::<u64>(), 0..600)
}

/// Register names: keywords of other positions on purpose (they are legal register names).
const REG_WORDS: &[&str] = &[
    "n", "total", "x", "i", "e.type", "e.ino", "if", "map", "goto", "output", "data", "reg", "fd",
    "var", "mode", "in", "min", "max", "cwd", "stdin", "bound", "as", "local", "input", "buffer",
    "store", "paths", "u8", "L1", "count_1", "v.x",
];
const FD_WORDS: &[&str] = &[
    "fd", "f", "out", "dir", "pipe_r", "pipe_w", "map", "if", "x",
];
const PATH_WORDS: &[&str] = &["p", "e", "name", "if", "cwd", "stdin", "x", "entry.name"];
const BUF_WORDS: &[&str] = &["buf", "b", "stat", "dents", "read", "map", "u8", "x2"];
const INPUT_WORDS: &[&str] = &["name", "dir", "limit", "n", "map", "if", "in.x"];
const OUTPUT_WORDS: &[&str] = &["total", "n", "result", "bytes read", "", "x"];
const FUNC_WORDS: &[&str] = &["my_fn", "weird name", "x.y", "é"];
const FLAG_NAMES: &[&str] = &[
    "O_CREAT",
    "O_WRONLY",
    "O_RDWR",
    "O_DIRECTORY",
    "O_CLOEXEC",
    "O_TRUNC",
    "AT_REMOVEDIR",
    "AT_SYMLINK_NOFOLLOW",
    "AT_EMPTY_PATH",
    "STATX_SIZE",
    "STATX_BASIC_STATS",
    "SEEK_END",
    "RENAME_NOREPLACE",
    "SPLICE_F_MOVE",
    "RESOLVE_BENEATH",
];
/// The paths of valid compounds, chosen for the differential harness's fixture
/// (crates/cosy-exec/tests/differential.rs): files (`a`, `dir/b`, `sub dir/é`), directories
/// (`.`, `tree/sub`, which is empty), a symlink to `a` (`link`), names that do not exist (`new`,
/// `dir/new`: for creating opens, `mkdirat`, rename targets), an absolute path outside any
/// scratch root and, last, the empty path (for `AT_EMPTY_PATH`), only under
/// [`ENV_GEN_FLAGS`]`=all` (see [`valid_paths`]).
const VALID_PATHS: &[&[u8]] = &[
    b"a",
    b"dir/b",
    b"/tmp/cosy-x",
    b".",
    b"sub dir/\xc3\xa9",
    b"link",
    b"new",
    b"tree/sub",
    b"dir/new",
    b"",
];

/// The environment variable that, set to `all`, makes [`valid_compound`] also generate what
/// the ring executor is known to get wrong, so that the differential harness stays green
/// without it and finds those failures with it:
///
/// - the empty path: io_uring refuses it while it prepares a request (ENOENT, before the
///   request runs), and the kernel then cancels every request linked with it, earlier ones of
///   the chain included; the ring executor links such an open with other calls, which then
///   fail with ECANCELED where plain calls succeed;
/// - `O_WRONLY` opens (without it, opens that write are `O_RDWR`) and `O_EXCL`: a run that
///   stops at a call failing right after an open into a direct descriptor (a read of an
///   `O_WRONLY` descriptor, EBADF), or at an open failing into a slot that holds a descriptor
///   (an `O_EXCL` open again in a loop, EEXIST), leaves that descriptor open on the ring: no
///   close, in the trace or the ring. The same happens without these flags (a write to a
///   read-only descriptor, a read of a directory, a reopen of a missing file), but rarely.
pub const ENV_GEN_FLAGS: &str = "COSY_GEN_FLAGS";

/// Whether [`ENV_GEN_FLAGS`] is `all` (read once).
pub(super) fn all_flags() -> bool {
    static ALL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALL.get_or_init(|| std::env::var_os(ENV_GEN_FLAGS).is_some_and(|v| v == "all"))
}

/// The paths [`valid_compound`] uses (without the empty path unless [`ENV_GEN_FLAGS`]`=all`).
pub(super) fn valid_paths() -> &'static [&'static [u8]] {
    if all_flags() {
        VALID_PATHS
    } else {
        &VALID_PATHS[..VALID_PATHS.len() - 1]
    }
}

/// A tape of choices; reading past its end gives 0s.
struct Tape<'a> {
    t: &'a [u64],
    pos: usize,
}

impl Tape<'_> {
    /// Whether choices remain (reading on gives 0s).
    fn more(&self) -> bool {
        self.pos < self.t.len()
    }

    fn next(&mut self) -> u64 {
        let v = self.t.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        v
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True with roughly `percent` % probability; a 0 choice is false.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 >= 100 - percent.min(100)
    }

    fn pick<'b, T>(&mut self, xs: &'b [T]) -> &'b T {
        &xs[self.below(xs.len())]
    }

    fn int(&mut self) -> i64 {
        match self.below(6) {
            0 => self.below(16) as i64,
            1 => -(self.below(4096) as i64),
            2 => self.next() as i64,
            3 => *self.pick(&[i64::MIN, i64::MAX, -1, 4096, 1 << 32, 0o644]),
            4 => {
                let k = self.below(3) + 1;
                (0..k)
                    .map(|_| flags::constant(self.pick::<&str>(FLAG_NAMES)).unwrap_or(0))
                    .fold(0, |a, b| a | b)
            }
            _ => self.below(1 << 20) as i64,
        }
    }

    fn bytes(&mut self) -> Vec<u8> {
        let n = self.below(8);
        (0..n)
            .map(|_| {
                if self.chance(80) {
                    *self.pick(b"abc/._- \"\\#")
                } else {
                    self.next() as u8
                }
            })
            .collect()
    }
}

/// Names from `words`, made unique (and distinct from `taken`) with `_k` suffixes.
fn unique_names(t: &mut Tape<'_>, words: &[&str], n: usize, taken: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    for _ in 0..n {
        let base = *t.pick(words);
        let name = std::iter::once(base.to_string())
            .chain((1..).map(|k| format!("{base}_{k}")))
            .find(|c| !out.contains(c) && !taken.contains(c))
            .unwrap_or_default();
        out.push(name);
    }
    out
}

struct Gen<'a> {
    t: Tape<'a>,
    c: Compound,
    valid: bool,
    /// Data constants that belong to no input.
    literals: Vec<DataId>,
    /// Jumps to aim once the operation count is known: (op, choice).
    aims: Vec<(usize, u64)>,
}

impl<'a> Gen<'a> {
    pub(super) fn new(choices: &'a [u64], valid: bool) -> Self {
        Gen {
            t: Tape { t: choices, pos: 0 },
            c: Compound::default(),
            valid,
            literals: Vec::new(),
            aims: Vec::new(),
        }
    }

    pub(super) fn declarations(&mut self) {
        let t = &mut self.t;
        let c = &mut self.c;
        if t.chance(50) {
            c.mode = ErrorMode::Continue;
        }
        let nbuf = 1 + t.below(4);
        let bufs = unique_names(t, BUF_WORDS, nbuf, &[]);
        for (i, name) in bufs.iter().enumerate() {
            let size = match (self.valid, i) {
                (true, 0) => 4096,
                (true, _) => *t.pick(&[256u32, 16, 4096, 65536]),
                (false, _) => *t.pick(&[0u32, 16, 256, 4096, 65536, u32::MAX]),
            };
            let local = if self.valid {
                i > 0 && t.chance(50)
            } else {
                t.chance(30)
            };
            c.buffers.push(Buffer {
                name: name.clone(),
                size,
                local,
            });
        }
        let nregs = 1 + t.below(if self.valid { 14 } else { 8 });
        c.regs = unique_names(t, REG_WORDS, nregs, &bufs);
        let nfds = 1 + t.below(4);
        c.fds = unique_names(t, FD_WORDS, nfds, &[]);
        let npaths = 1 + t.below(3);
        c.paths = unique_names(t, PATH_WORDS, npaths, &[]);

        // Data: distinct literals and path input defaults, shuffled together.
        let nlit = 1 + t.below(4);
        let mut data: Vec<(Vec<u8>, Option<usize>)> = Vec::new();
        for _ in 0..nlit {
            let b = if self.valid {
                t.pick(valid_paths()).to_vec()
            } else {
                t.bytes()
            };
            if !data.iter().any(|(d, _)| *d == b) {
                data.push((b, None));
            }
        }
        let npath_inputs = t.below(3);
        let nint_inputs = t.below(3);
        let mut input_names = unique_names(t, INPUT_WORDS, npath_inputs, &[]);
        for (i, _) in input_names.iter().enumerate() {
            let b = if self.valid {
                t.pick(valid_paths()).to_vec()
            } else {
                t.bytes()
            };
            data.push((b, Some(i)));
        }
        for i in (1..data.len()).rev() {
            let j = t.below(i + 1);
            data.swap(i, j);
        }
        let mut slots = vec![DataId(0); npath_inputs];
        for (k, (bytes, owner)) in data.into_iter().enumerate() {
            match owner {
                Some(i) => slots[i] = DataId(k as u16),
                None => self.literals.push(DataId(k as u16)),
            }
            c.data.push(bytes);
        }
        for (i, name) in input_names.iter().enumerate() {
            c.inputs.push(Input {
                name: name.clone(),
                kind: InputKind::Path(slots[i]),
            });
        }
        let mut int_regs: Vec<Reg> = Vec::new();
        for _ in 0..nint_inputs {
            let reg = Reg(t.below(c.regs.len()) as u16);
            if self.valid && int_regs.contains(&reg) {
                continue;
            }
            int_regs.push(reg);
            let own = c.regs[reg.index()].clone();
            let name = if t.chance(70) && !input_names.contains(&own) {
                own
            } else {
                unique_names(t, INPUT_WORDS, 1, &input_names)
                    .pop()
                    .unwrap_or_default()
            };
            input_names.push(name.clone());
            c.inputs.push(Input {
                name,
                kind: InputKind::Int {
                    reg,
                    default: t.int(),
                },
            });
        }
        // Interleave the two kinds of inputs.
        for i in (1..c.inputs.len()).rev() {
            let j = t.below(i + 1);
            c.inputs.swap(i, j);
        }
    }

    pub(super) fn outputs(&mut self, ok: impl Fn(Reg) -> bool) {
        let n = self.t.below(4);
        for _ in 0..n {
            let reg = Reg(self.t.below(self.c.regs.len()) as u16);
            if !ok(reg) {
                continue;
            }
            let name = if self.t.chance(50) {
                self.c.regs[reg.index()].clone()
            } else {
                self.t.pick(OUTPUT_WORDS).to_string()
            };
            if self.valid && self.c.outputs.iter().any(|o| o.name == name) {
                continue;
            }
            self.c.outputs.push(Output { name, reg });
        }
    }
}

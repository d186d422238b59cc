//! The text format: [`parse`] and the canonical printer [`print()`].
//!
//! The grammar is in `docs/text-format.md`. In short: one declaration or operation per line,
//! `#` comments, system calls written as their mnemonic from the operation table followed by
//! their operands in table order, registers / fd slots / path variables created on first
//! mention, labels for jumps, `map ... {` / `}` for maps.
//!
//! # Round trips
//!
//! * For every compound `c`, `print(&parse(&print(&c))?.compound) == print(&c)`, provided every
//!   index of `c` is in range of its table, every system call's operands and result have the
//!   kinds of its table row, standard streams are 0, 1 or 2, maps are properly nested and jump
//!   targets are at most `ops.len()`. (Compounds that are not so print with `?` markers that
//!   fail to parse, rather than as a different compound.)
//! * `parse(&print(&c))?.compound == c` holds as well — declaration order included: the printer
//!   adds `reg`, `fd`, `var` and `data` declarations when the order of first mention would not
//!   reproduce a table — when, in addition, the names of `c` are printable: registers, fd
//!   slots, path variables, buffers and inputs have distinct identifiers that the grammar
//!   allows in their position (see `docs/text-format.md`, *Names*), no two path inputs share a
//!   data constant, and every reference to a data constant that is not an input's is to the
//!   first constant with its bytes. Names that are not printable are renamed by the printer
//!   (`read` → `read_1`, `a b` → `a_b`, duplicates get `_1`, `_2`, ...).
//! * For canonical text `t` (text `print` produced), `print(&parse(t)?.compound) == t`.

mod lexer;
mod parser;
mod printer;

use cosy_model::Compound;

/// A compound read from text, with where each operation came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The compound.
    pub compound: Compound,
    /// The 1-based line of each operation (`op_lines[i]` for `compound.ops[i]`), for error
    /// messages about operations (the verifier's, the executor's).
    pub op_lines: Vec<u32>,
}

/// Text that is not a compound: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: u32, column: u32, message: impl Into<String>) -> Self {
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Parses a compound from text.
///
/// ```
/// let parsed = cosy_format::text::parse("buffer b 16\nfd = openat cwd \"x\" O_RDONLY 0\nn = read fd b\n")?;
/// assert_eq!(parsed.compound.ops.len(), 2);
/// assert_eq!(parsed.op_lines, [2, 3]);
/// # Ok::<(), cosy_format::text::ParseError>(())
/// ```
pub fn parse(src: &str) -> Result<Parsed, ParseError> {
    parser::parse(src)
}

/// Prints a compound in the canonical text form (see the module documentation for the round
/// trip guarantees).
///
/// ```
/// use cosy_model::{Builder, FdRef, flags::{Mode, OFlags}};
/// let mut b = Builder::new();
/// let p = b.path("/etc/hostname");
/// let fd = b.openat(FdRef::Cwd, p, OFlags::RDONLY, Mode::empty());
/// b.close(fd);
/// let text = cosy_format::text::print(&b.finish());
/// assert_eq!(text, "fd = openat cwd \"/etc/hostname\" O_RDONLY 0o0\nrc = close fd\n");
/// ```
pub fn print(compound: &Compound) -> String {
    printer::print(compound)
}

//! The file formats of cosy: compounds as text and as compact binary.
//!
//! * [`text`]: the human format of `docs/text-format.md` — [`text::parse`] reads it (keeping
//!   the line of each operation, for error messages), [`text::print`] writes the canonical
//!   form. Both are driven by the operation table of `cosy-model`: a system call line is its
//!   mnemonic followed by one operand per argument of the call's row.
//! * [`binary`]: a versioned, compact encoding ([`binary::encode`], [`binary::decode`]) that
//!   starts with [`binary::MAGIC`]; decoding checks every index against its table and never
//!   panics on malformed input.
//! * [`load`] reads either, telling them apart by the magic number.
//!
//! With the `testing` feature, [`testing`](crate#testing) provides proptest strategies that
//! generate compounds, for the tests of other crates.
//!
//! ```
//! use cosy_format::{binary, load, text};
//!
//! // The thesis's example: open; do { n = read(fd, buf, len) } while (n == len); close.
//! let src = r#"
//! input path name = "/etc/passwd"
//! buffer buf 4096
//! f = openat cwd $name O_RDONLY 0
//! total = 0
//! L2:
//! n = read f buf
//! total = total + n
//! if n == 4096 goto L2 bound 1000000
//! close f
//! output total
//! "#;
//! let parsed = text::parse(src)?;
//! let c = &parsed.compound;
//! assert_eq!(c.ops.len(), 6);
//! assert_eq!(parsed.op_lines[0], 4); // `f = openat ...` is on line 4
//!
//! // The canonical text parses back to the same compound...
//! let canonical = text::print(c);
//! assert!(canonical.contains("f = openat cwd $name O_RDONLY 0o0\n"));
//! assert_eq!(&text::parse(&canonical)?.compound, c);
//!
//! // ...and so does the binary encoding; `load` tells the two apart.
//! let bytes = binary::encode(c);
//! let loaded = load(&bytes)?;
//! assert_eq!(&loaded.compound, c);
//! assert_eq!(loaded.op_lines, None);
//! assert_eq!(load(src.as_bytes())?.op_lines, Some(parsed.op_lines.clone()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Testing
//!
//! The `testing` feature adds the module `testing` with the strategies `testing::compound()`
//! (any well-formed compound: every op kind, every system call, nested maps, jumps, inputs,
//! local buffers, both error modes) and `testing::valid_compound()` (also registers written
//! before they are read, fds opened before use, forward jumps or bounded backward ones).

#![warn(missing_docs)]

pub mod binary;
mod names;
pub mod text;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

use cosy_model::Compound;

pub use binary::{DecodeError, MAGIC};
pub use text::{ParseError, Parsed};

/// Which format a compound was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The text format.
    Text,
    /// The binary format.
    Binary,
}

/// A compound read by [`load`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The compound.
    pub compound: Compound,
    /// The 1-based line of each operation, when it was read from text.
    pub op_lines: Option<Vec<u32>>,
    /// The format it was read from.
    pub format: Format,
}

/// Bytes that are neither a text nor a binary compound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The bytes do not start with [`MAGIC`], so they were read as text (a file that is not
    /// UTF-8 is reported at its first invalid byte).
    #[error("{0}")]
    Text(#[from] ParseError),
    /// The bytes start with [`MAGIC`] but are not a valid binary compound.
    #[error("binary compound: {0}")]
    Binary(#[from] DecodeError),
}

/// Whether `bytes` are in the binary format (they start with [`MAGIC`]).
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Reads a compound from the binary format if `bytes` start with [`MAGIC`], else from text.
///
/// ```
/// let loaded = cosy_format::load(b"x = 1\noutput x\n")?;
/// assert_eq!(loaded.format, cosy_format::Format::Text);
/// assert_eq!(loaded.op_lines, Some(vec![1]));
/// # Ok::<(), cosy_format::LoadError>(())
/// ```
pub fn load(bytes: &[u8]) -> Result<Loaded, LoadError> {
    if is_binary(bytes) {
        return Ok(Loaded {
            compound: binary::decode(bytes)?,
            op_lines: None,
            format: Format::Binary,
        });
    }
    let src = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        ParseError::new(
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
            "not UTF-8 text (and not a binary compound: no magic number)",
        )
    })?;
    let parsed = text::parse(src)?;
    Ok(Loaded {
        compound: parsed.compound,
        op_lines: Some(parsed.op_lines),
        format: Format::Text,
    })
}

//! Loading a compound file: text or binary, told apart by the binary format's magic number.

use std::path::Path;

use cosy_model::Compound;

use crate::Failure;

/// A compound read from a file, with the text line of each operation when it came from text.
pub struct Loaded {
    /// The compound.
    pub compound: Compound,
    /// 1-based line of each operation (empty for the binary format).
    pub op_lines: Vec<u32>,
}

impl Loaded {
    /// `FILE:LINE` of operation `op` (just `FILE` when unknown).
    pub fn place(&self, file: &Path, op: Option<u32>) -> String {
        match op.and_then(|o| self.op_lines.get(o as usize)) {
            Some(line) => format!("{}:{line}", file.display()),
            None => file.display().to_string(),
        }
    }
}

/// Reads and parses (or decodes) `file`.
pub fn load(file: &Path) -> Result<Loaded, Failure> {
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::invalid(format!("cannot read {}: {e}", file.display())))?;
    let loaded = cosy_format::load(&bytes)
        .map_err(|e| Failure::invalid(format!("{}: {e}", file.display())))?;
    Ok(Loaded {
        compound: loaded.compound,
        op_lines: loaded.op_lines.unwrap_or_default(),
    })
}

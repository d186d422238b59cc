//! The parser: lines of tokens into a [`Compound`].
//!
//! Table-driven: a system call line is read by looking its mnemonic up in the operation table
//! ([`Sys::from_name`]) and reading one operand per [`ArgKind`] of its row. Registers, fd slots
//! and path variables are created when first mentioned; buffers and inputs must be declared.

use std::collections::HashMap;

use cosy_model::{BufId, Compound, DataId, FdSlot, InputKind, Op, PathVar, Reg};

use super::lexer::lex_line;
use super::{ParseError, Parsed};
use crate::names;

mod cursor;
mod maps;
mod operands;
mod operations;
mod statements;

use cursor::Cursor;

pub(crate) fn parse(src: &str) -> Result<Parsed, ParseError> {
    let mut p = Parser::default();
    for (i, text) in src.split('\n').enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let toks = lex_line(text, line)?;
        if toks.is_empty() {
            continue;
        }
        let eol = toks.last().map_or(1, |t| t.end);
        let mut cur = Cursor {
            toks: &toks,
            pos: 0,
            line,
            eol,
        };
        p.statement(&mut cur)?;
    }
    p.finish()
}

/// A jump whose label is resolved once every label is known.
struct Fixup {
    op: usize,
    label: String,
    line: u32,
    col: u32,
}

#[derive(Default)]
struct Parser {
    c: Compound,
    op_lines: Vec<u32>,
    regs: HashMap<String, u16>,
    fds: HashMap<String, u16>,
    paths: HashMap<String, u16>,
    buffers: HashMap<String, u16>,
    inputs: HashMap<String, usize>,
    /// Per data constant: whether it belongs to a path input (or is reserved for one by a
    /// `data` line); string literals never resolve to those.
    owned: Vec<bool>,
    /// `$NAME` slots of `data` lines whose `input path NAME` has not been seen yet.
    reserved: HashMap<String, (usize, u32, u32)>,
    labels: HashMap<String, (u32, u32)>,
    fixups: Vec<Fixup>,
    /// Open maps: index of the `MapBegin`, line and column of its `{`.
    maps: Vec<(u32, u32, u32)>,
}

fn table_index(len: usize, what: &str, line: u32, col: u32) -> Result<u16, ParseError> {
    u16::try_from(len)
        .map_err(|_| ParseError::new(line, col, format!("too many {what} (at most 65536)")))
}

impl Parser {
    // ----- tables -------------------------------------------------------------------------

    pub(super) fn reg(&mut self, name: &str, line: u32, col: u32) -> Result<Reg, ParseError> {
        if let Some(&i) = self.regs.get(name) {
            return Ok(Reg(i));
        }
        if let Some(why) = names::reg_name_problem(name, |n| self.buffers.contains_key(n)) {
            return Err(ParseError::new(line, col, why));
        }
        let i = table_index(self.c.regs.len(), "registers", line, col)?;
        self.c.regs.push(name.to_string());
        self.regs.insert(name.to_string(), i);
        Ok(Reg(i))
    }

    pub(super) fn fd_slot(
        &mut self,
        name: &str,
        line: u32,
        col: u32,
    ) -> Result<FdSlot, ParseError> {
        if let Some(&i) = self.fds.get(name) {
            return Ok(FdSlot(i));
        }
        if let Some(why) = names::fd_name_problem(name) {
            return Err(ParseError::new(line, col, why));
        }
        let i = table_index(self.c.fds.len(), "fd slots", line, col)?;
        self.c.fds.push(name.to_string());
        self.fds.insert(name.to_string(), i);
        Ok(FdSlot(i))
    }

    pub(super) fn path_var(
        &mut self,
        name: &str,
        line: u32,
        col: u32,
    ) -> Result<PathVar, ParseError> {
        if let Some(&i) = self.paths.get(name) {
            return Ok(PathVar(i));
        }
        let i = table_index(self.c.paths.len(), "path variables", line, col)?;
        self.c.paths.push(name.to_string());
        self.paths.insert(name.to_string(), i);
        Ok(PathVar(i))
    }

    pub(super) fn push_data(
        &mut self,
        bytes: Vec<u8>,
        owned: bool,
        line: u32,
        col: u32,
    ) -> Result<DataId, ParseError> {
        let i = table_index(self.c.data.len(), "data constants", line, col)?;
        self.c.data.push(bytes);
        self.owned.push(owned);
        Ok(DataId(i))
    }

    /// The data constant of a string literal: the first one with these bytes that belongs to
    /// no input, or a new one.
    pub(super) fn literal(
        &mut self,
        bytes: &[u8],
        line: u32,
        col: u32,
    ) -> Result<DataId, ParseError> {
        let found = self
            .c
            .data
            .iter()
            .zip(&self.owned)
            .position(|(d, owned)| !owned && d.as_slice() == bytes);
        match found {
            Some(i) => Ok(DataId(i as u16)),
            None => self.push_data(bytes.to_vec(), false, line, col),
        }
    }

    pub(super) fn input_path(&self, name: &str, line: u32, col: u32) -> Result<DataId, ParseError> {
        match self.inputs.get(name).map(|&i| &self.c.inputs[i].kind) {
            Some(InputKind::Path(d)) => Ok(*d),
            Some(InputKind::Int { .. }) => Err(ParseError::new(
                line,
                col,
                format!("`${name}`: `{name}` is an integer input (its register is `{name}`)"),
            )),
            None => Err(ParseError::new(
                line,
                col,
                format!("unknown input `${name}` (declare it with `input path {name} = \"...\"`)"),
            )),
        }
    }

    pub(super) fn buffer(&self, name: &str, line: u32, col: u32) -> Result<BufId, ParseError> {
        self.buffers.get(name).map(|&i| BufId(i)).ok_or_else(|| {
            ParseError::new(
                line,
                col,
                format!("unknown buffer `{name}` (declare it with `buffer {name} SIZE`)"),
            )
        })
    }

    pub(super) fn push(&mut self, op: Op, line: u32, col: u32) -> Result<u32, ParseError> {
        let i = u32::try_from(self.c.ops.len())
            .map_err(|_| ParseError::new(line, col, "too many operations"))?;
        self.c.ops.push(op);
        self.op_lines.push(line);
        Ok(i)
    }

    pub(super) fn next_index(&self) -> u32 {
        u32::try_from(self.c.ops.len()).unwrap_or(u32::MAX)
    }
    pub(super) fn finish(mut self) -> Result<Parsed, ParseError> {
        let mut errors = Vec::new();
        if let Some(&(_, line, col)) = self.maps.last() {
            errors.push(ParseError::new(
                line,
                col,
                "unbalanced `{`: this map's body has no closing `}`",
            ));
        }
        for (name, &(_, line, col)) in &self.reserved {
            errors.push(ParseError::new(
                line,
                col,
                format!("`${name}` in `data` names no path input (declare `input path {name} = \"...\"`)"),
            ));
        }
        for f in &self.fixups {
            match self.labels.get(&f.label) {
                Some(&(_, target)) => {
                    if let Some(Op::Jump { target: t, .. }) = self.c.ops.get_mut(f.op) {
                        *t = target;
                    }
                }
                None => errors.push(ParseError::new(
                    f.line,
                    f.col,
                    format!("unknown label `{}`", f.label),
                )),
            }
        }
        if let Some(first) = errors.into_iter().min_by_key(|e| (e.line, e.column)) {
            return Err(first);
        }
        Ok(Parsed {
            compound: self.c,
            op_lines: self.op_lines,
        })
    }
}

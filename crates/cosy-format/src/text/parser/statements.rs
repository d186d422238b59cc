//! Lines: labels, declarations and outputs; dispatch of the other lines.

use cosy_model::{Buffer, Cond, DataId, ErrorMode, Input, InputKind, Output, Ret, Sys};

use super::cursor::{Cursor, number};
use super::{Parser, table_index};
use crate::names;
use crate::text::ParseError;
use crate::text::lexer::{Punct, Tok, Token};

impl Parser {
    pub(super) fn statement(&mut self, cur: &mut Cursor<'_>) -> Result<(), ParseError> {
        // Labels: `NAME:`, possibly several, possibly followed by an operation.
        while let (
            Some(Token {
                tok: Tok::Ident(name),
                col,
                ..
            }),
            Some(Token {
                tok: Tok::P(Punct::Colon),
                ..
            }),
        ) = (cur.peek_at(0), cur.peek_at(1))
        {
            if let Some((line, _)) = self.labels.get(name.as_str()) {
                return Err(cur.err_at(
                    *col,
                    format!("label `{name}` is already defined on line {line}"),
                ));
            }
            let target = self.next_index();
            self.labels.insert(name.clone(), (cur.line, target));
            cur.pos += 2;
            if cur.at_end() {
                return Ok(());
            }
        }
        let Some(first) = cur.peek_at(0) else {
            return Ok(());
        };
        let col = first.col;
        let word = match &first.tok {
            Tok::Ident(w) => w.as_str(),
            Tok::P(Punct::RBrace) => {
                cur.pos += 1;
                return self.map_end(cur, col);
            }
            _ => return Err(cur.expected("a declaration, an operation or a label")),
        };
        if cur.peek_at(1).map(|t| &t.tok) == Some(&Tok::P(Punct::Assign)) {
            cur.pos += 2;
            return self.assignment(cur, word, col);
        }
        cur.pos += 1;
        let declaration = matches!(
            word,
            "mode" | "input" | "buffer" | "reg" | "fd" | "var" | "data"
        );
        if declaration && !self.c.ops.is_empty() {
            return Err(cur.err_at(
                col,
                format!("`{word}` is a declaration; declarations come before the first operation"),
            ));
        }
        match word {
            "mode" => self.mode(cur),
            "input" => self.input(cur),
            "buffer" => self.buffer_decl(cur),
            "reg" => self.names_decl(cur, "register", |p, n, l, c| p.reg(n, l, c).map(drop)),
            "fd" => self.names_decl(cur, "fd slot", |p, n, l, c| p.fd_slot(n, l, c).map(drop)),
            "var" => self.names_decl(cur, "path variable", |p, n, l, c| {
                p.path_var(n, l, c).map(drop)
            }),
            "data" => self.data_decl(cur),
            "output" => self.output(cur),
            "goto" => self.jump(cur, None, col),
            "if" => {
                let a = self.value(cur, "a value")?;
                let op = Self::binop(cur)?;
                let b = self.value(cur, "a value")?;
                self.jump(cur, Some(Cond { op, a, b }), col)
            }
            "map" => self.map_begin(cur, col),
            "store" => self.store(cur, col),
            "call" => self.call(cur, None, col),
            _ => match Sys::from_name(word) {
                Some(call) => self.sys(cur, call, Ret::None, col),
                None => Err(cur.err_at(
                    col,
                    format!(
                        "unknown mnemonic `{word}` (not a system call of the table nor a keyword)"
                    ),
                )),
            },
        }
    }

    pub(super) fn mode(&mut self, cur: &mut Cursor<'_>) -> Result<(), ParseError> {
        let (m, col) = cur.ident("`stop` or `continue` after `mode`")?;
        self.c.mode = match m {
            "stop" => ErrorMode::Stop,
            "continue" => ErrorMode::Continue,
            other => {
                return Err(cur.err_at(
                    col,
                    format!("unknown mode `{other}` (`stop` or `continue`)"),
                ));
            }
        };
        cur.expect_end("after the mode")
    }

    pub(super) fn input(&mut self, cur: &mut Cursor<'_>) -> Result<(), ParseError> {
        let line = cur.line;
        let (kind, kind_col) = cur.ident("`path` or `int` after `input`")?;
        let (name, col) = cur.ident("the input's name")?;
        if self.inputs.contains_key(name) {
            return Err(cur.err_at(col, format!("input `{name}` is declared twice")));
        }
        cur.expect_punct(Punct::Assign, "and the input's default value")?;
        let kind = match kind {
            "path" => {
                let bytes = match cur.next() {
                    Some(Token {
                        tok: Tok::Str(b), ..
                    }) => b.clone(),
                    _ => {
                        cur.pos = cur.pos.saturating_sub(1);
                        return Err(cur.expected("a string (the default path)"));
                    }
                };
                let d = match self.reserved.remove(name) {
                    Some((slot, _, _)) => {
                        self.c.data[slot] = bytes;
                        DataId(slot as u16)
                    }
                    None => self.push_data(bytes, true, line, col)?,
                };
                InputKind::Path(d)
            }
            "int" => {
                let default = Self::int(cur, "an integer (the default value)")?;
                let reg = if cur.is_word("as") {
                    cur.pos += 1;
                    let (r, rcol) = cur.ident("the input's register after `as`")?;
                    self.reg(r, line, rcol)?
                } else {
                    self.reg(name, line, col)?
                };
                InputKind::Int { reg, default }
            }
            other => {
                return Err(cur.err_at(
                    kind_col,
                    format!("unknown input kind `{other}` (`path` or `int`)"),
                ));
            }
        };
        cur.expect_end("after the input")?;
        self.inputs.insert(name.to_string(), self.c.inputs.len());
        self.c.inputs.push(Input {
            name: name.to_string(),
            kind,
        });
        Ok(())
    }

    pub(super) fn buffer_decl(&mut self, cur: &mut Cursor<'_>) -> Result<(), ParseError> {
        let line = cur.line;
        let (name, col) = cur.ident("the buffer's name")?;
        if self.buffers.contains_key(name) {
            return Err(cur.err_at(col, format!("buffer `{name}` is declared twice")));
        }
        if let Some(why) = names::buffer_name_problem(name) {
            return Err(cur.err_at(col, why));
        }
        if self.regs.contains_key(name) {
            return Err(cur.err_at(
                col,
                format!("`{name}` is a register and cannot name a buffer"),
            ));
        }
        let size_col = cur.col();
        let size = match cur.peek() {
            Some(Tok::Num(text)) if text.ends_with("KiB") || text.ends_with("MiB") => {
                let (digits, unit) = text.split_at(text.len() - 3);
                let mul: i64 = if unit == "KiB" { 1 << 10 } else { 1 << 20 };
                cur.pos += 1;
                number(digits, false)
                    .map_err(|m| cur.err_at(size_col, m))?
                    .checked_mul(mul)
                    .unwrap_or(-1)
            }
            _ => Self::int(cur, "the buffer's size in bytes")?,
        };
        let size = u32::try_from(size).map_err(|_| {
            cur.err_at(
                size_col,
                "a buffer's size is from 0 to 4294967295 bytes".to_string(),
            )
        })?;
        let local = cur.is_word("local");
        if local {
            cur.pos += 1;
        }
        cur.expect_end("after the buffer (only `local` may follow its size)")?;
        let i = table_index(self.c.buffers.len(), "buffers", line, col)?;
        self.buffers.insert(name.to_string(), i);
        self.c.buffers.push(Buffer {
            name: name.to_string(),
            size,
            local,
        });
        Ok(())
    }

    /// `reg NAME...`, `fd NAME...`, `var NAME...`: mentions, in this order.
    pub(super) fn names_decl(
        &mut self,
        cur: &mut Cursor<'_>,
        what: &str,
        mut mention: impl FnMut(&mut Self, &str, u32, u32) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        let (first, col) = cur.ident(&format!("a {what} name"))?;
        mention(self, first, cur.line, col)?;
        while !cur.at_end() {
            let (name, col) = cur.ident(&format!("a {what} name"))?;
            mention(self, name, cur.line, col)?;
        }
        Ok(())
    }

    /// `data ITEM...`: data constants in this order; `$NAME` reserves the constant of the path
    /// input `NAME`, declared later.
    pub(super) fn data_decl(&mut self, cur: &mut Cursor<'_>) -> Result<(), ParseError> {
        let line = cur.line;
        if cur.at_end() {
            return Err(cur.expected("a string or `$input`"));
        }
        while let Some(t) = cur.next() {
            match &t.tok {
                Tok::Str(b) => {
                    self.push_data(b.clone(), false, line, t.col)?;
                }
                Tok::Input(name) => {
                    if self.inputs.contains_key(name) {
                        return Err(cur.err_at(
                            t.col,
                            format!(
                                "`${name}` is declared already; `data` comes before the inputs"
                            ),
                        ));
                    }
                    if self.reserved.contains_key(name) {
                        return Err(cur.err_at(t.col, format!("`${name}` appears twice in `data`")));
                    }
                    let d = self.push_data(Vec::new(), true, line, t.col)?;
                    self.reserved.insert(name.clone(), (d.index(), line, t.col));
                }
                other => {
                    return Err(cur.err_at(
                        t.col,
                        format!("expected a string or `$input`, found {}", other.describe()),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn output(&mut self, cur: &mut Cursor<'_>) -> Result<(), ParseError> {
        let line = cur.line;
        let Some(t) = cur.next() else {
            return Err(cur.expected("the output's name"));
        };
        let (name, ident) = match &t.tok {
            Tok::Ident(n) => (n.clone(), true),
            Tok::Str(b) => match String::from_utf8(b.clone()) {
                Ok(s) => (s, false),
                Err(_) => return Err(cur.err_at(t.col, "an output's name must be UTF-8")),
            },
            other => {
                return Err(cur.err_at(
                    t.col,
                    format!("expected the output's name, found {}", other.describe()),
                ));
            }
        };
        let reg = if cur.eat_punct(Punct::Assign) {
            let (r, col) = cur.ident("the output's register")?;
            self.reg(r, line, col)?
        } else if ident {
            self.reg(&name, line, t.col)?
        } else {
            return Err(cur.expected("`= REGISTER` after an output name written as a string"));
        };
        cur.expect_end("after the output")?;
        self.c.outputs.push(Output { name, reg });
        Ok(())
    }
}

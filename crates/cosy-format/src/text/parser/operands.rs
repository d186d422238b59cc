//! Operands: integers, values, descriptors, paths, buffer ranges.

use cosy_model::flags;
use cosy_model::{Arg, ArgKind, BinOp, BufRange, FdRef, PathRef, Value};

use super::Parser;
use super::cursor::{Cursor, binop_of, number};
use crate::text::ParseError;
use crate::text::lexer::{Punct, Tok, Token};

impl Parser {
    /// Whether the cursor is at a `|` glued to the integer before it and to an integer atom
    /// after it (`A|B`).
    pub(super) fn continues_flags(cur: &Cursor<'_>) -> bool {
        let (Some(bar), Some(next)) = (cur.peek_at(0), cur.peek_at(1)) else {
            return false;
        };
        bar.tok == Tok::P(Punct::Pipe)
            && bar.glued
            && next.glued
            && match &next.tok {
                Tok::Num(_) | Tok::P(Punct::Minus) => true,
                Tok::Ident(s) => flags::constant(s).is_some(),
                _ => false,
            }
    }

    /// `["-"] (number | constant)`.
    pub(super) fn atom(cur: &mut Cursor<'_>, what: &str) -> Result<i64, ParseError> {
        let negative = cur.eat_punct(Punct::Minus);
        let v = match cur.peek() {
            Some(Tok::Num(text)) => number(text, negative).map_err(|m| cur.err(m))?,
            Some(Tok::Ident(name)) => match flags::constant(name) {
                Some(v) if negative => v.wrapping_neg(),
                Some(v) => v,
                None => {
                    return Err(cur.err(format!(
                        "expected {what}, found `{name}` (not a named constant)"
                    )));
                }
            },
            _ => return Err(cur.expected(what)),
        };
        cur.pos += 1;
        Ok(v)
    }

    /// An integer: atoms joined by glued `|`.
    pub(super) fn int(cur: &mut Cursor<'_>, what: &str) -> Result<i64, ParseError> {
        let mut v = Self::atom(cur, what)?;
        while Self::continues_flags(cur) {
            cur.pos += 1;
            v |= Self::atom(cur, what)?;
        }
        Ok(v)
    }

    /// An integer or a register.
    pub(super) fn value(&mut self, cur: &mut Cursor<'_>, what: &str) -> Result<Value, ParseError> {
        if let Some(Token {
            tok: Tok::Ident(name),
            col,
            ..
        }) = cur.peek_at(0)
            && flags::constant(name).is_none()
        {
            cur.pos += 1;
            return Ok(Value::Reg(self.reg(name, cur.line, *col)?));
        }
        Ok(Value::Imm(Self::int(cur, what)?))
    }

    pub(super) fn fd_ref(&mut self, cur: &mut Cursor<'_>) -> Result<FdRef, ParseError> {
        let (name, col) =
            cur.ident("a descriptor (`cwd`, `stdin`, `stdout`, `stderr` or an fd slot)")?;
        Ok(match name {
            "cwd" => FdRef::Cwd,
            "stdin" => FdRef::Std(0),
            "stdout" => FdRef::Std(1),
            "stderr" => FdRef::Std(2),
            _ => FdRef::Slot(self.fd_slot(name, cur.line, col)?),
        })
    }

    pub(super) fn path_ref(&mut self, cur: &mut Cursor<'_>) -> Result<PathRef, ParseError> {
        let line = cur.line;
        match cur.peek_at(0) {
            Some(Token {
                tok: Tok::Str(bytes),
                col,
                ..
            }) => {
                cur.pos += 1;
                Ok(PathRef::Data(self.literal(bytes, line, *col)?))
            }
            Some(Token {
                tok: Tok::Input(name),
                col,
                ..
            }) => {
                cur.pos += 1;
                Ok(PathRef::Data(self.input_path(name, line, *col)?))
            }
            Some(Token {
                tok: Tok::Ident(name),
                col,
                ..
            }) => {
                cur.pos += 1;
                Ok(PathRef::Var(self.path_var(name, line, *col)?))
            }
            _ => Err(cur.expected("a path (`\"...\"`, `$input` or a path variable)")),
        }
    }

    /// `NAME`, `NAME[A..B]` or `NAME[A..]`.
    pub(super) fn buf_range(&mut self, cur: &mut Cursor<'_>) -> Result<BufRange, ParseError> {
        let (name, col) = cur.ident("a buffer")?;
        let buf = self.buffer(name, cur.line, col)?;
        if !cur.eat_punct(Punct::LBracket) {
            return Ok(BufRange::whole(buf));
        }
        let start = self.value(cur, "the start of the range")?;
        cur.expect_punct(Punct::DotDot, "in a buffer range `NAME[A..B]`")?;
        let end = if cur.is_punct(Punct::RBracket) {
            None
        } else {
            Some(self.value(cur, "the end of the range or `]`")?)
        };
        cur.expect_punct(Punct::RBracket, "closing the buffer range")?;
        Ok(BufRange { buf, start, end })
    }

    pub(super) fn operand(
        &mut self,
        cur: &mut Cursor<'_>,
        kind: ArgKind,
    ) -> Result<Arg, ParseError> {
        Ok(match kind {
            ArgKind::Fd | ArgKind::DirFd | ArgKind::NewFd => Arg::Fd(self.fd_ref(cur)?),
            ArgKind::Path | ArgKind::Str => Arg::Path(self.path_ref(cur)?),
            ArgKind::BufIn | ArgKind::BufOut => Arg::Buf(self.buf_range(cur)?),
            ArgKind::Int | ArgKind::Flags(_) => {
                if cur.is_punct(Punct::Pipe) {
                    return Err(
                        cur.err("unexpected `|` (write flag combinations without spaces: `A|B`)")
                    );
                }
                Arg::Value(self.value(cur, "an integer or a register")?)
            }
        })
    }

    pub(super) fn binop(cur: &mut Cursor<'_>) -> Result<BinOp, ParseError> {
        match cur.peek().and_then(binop_of) {
            Some(op) => {
                cur.pos += 1;
                Ok(op)
            }
            None => {
                Err(cur.expected("an operator (+ - * / % & | ^ << >> == != < <= > >= min max)"))
            }
        }
    }
}

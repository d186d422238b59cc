//! Operations other than maps: system calls, moves and arithmetic, loads and stores, calls,
//! jumps.

use cosy_model::flags;
use cosy_model::{Arg, Cond, Op, Reg, Ret, RetKind, Sys, SysSpec, Width};

use super::cursor::{Cursor, binop_of, width_of};
use super::{Fixup, Parser};
use crate::text::ParseError;
use crate::text::lexer::{Punct, Tok, Token};

fn operand_list(spec: &SysSpec) -> String {
    spec.args
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(" ")
}

fn operands_phrase(n: usize) -> String {
    match n {
        0 => "no operands".to_string(),
        1 => "1 operand".to_string(),
        n => format!("{n} operands"),
    }
}

impl Parser {
    pub(super) fn assignment(
        &mut self,
        cur: &mut Cursor<'_>,
        dst: &str,
        col: u32,
    ) -> Result<(), ParseError> {
        let line = cur.line;
        if let Some(Tok::Ident(word)) = cur.peek() {
            if let Some(call) = Sys::from_name(word) {
                cur.pos += 1;
                let ret = match call.spec().ret {
                    RetKind::Value => Ret::Reg(self.reg(dst, line, col)?),
                    RetKind::Fd => Ret::Fd(self.fd_slot(dst, line, col)?),
                };
                return self.sys(cur, call, ret, col);
            }
            match word.as_str() {
                "call" => {
                    cur.pos += 1;
                    let d = self.reg(dst, line, col)?;
                    return self.call(cur, Some(d), col);
                }
                "load" => {
                    cur.pos += 1;
                    let d = self.reg(dst, line, col)?;
                    return self.load(cur, d, col);
                }
                _ => {}
            }
            let next_is_operator = cur.peek_at(1).is_none_or(|t| binop_of(&t.tok).is_some());
            if flags::constant(word).is_none()
                && !self.regs.contains_key(word.as_str())
                && !next_is_operator
            {
                return Err(cur.err(format!(
                    "unknown mnemonic `{word}` (not a system call of the table)"
                )));
            }
        }
        let dst = self.reg(dst, line, col)?;
        let a = self.value(cur, "a value, a system call, `call` or `load`")?;
        if cur.at_end() {
            self.push(Op::Mov { dst, src: a }, line, col)?;
            return Ok(());
        }
        let op = Self::binop(cur)?;
        let b = self.value(cur, "a value")?;
        cur.expect_end("after the operation")?;
        self.push(Op::Arith { dst, op, a, b }, line, col)?;
        Ok(())
    }

    pub(super) fn sys(
        &mut self,
        cur: &mut Cursor<'_>,
        call: Sys,
        ret: Ret,
        col: u32,
    ) -> Result<(), ParseError> {
        let spec = call.spec();
        let mut args = Vec::with_capacity(spec.args.len());
        for a in spec.args {
            if cur.at_end() {
                return Err(cur.err(format!(
                    "`{}` takes {} ({}), found {}",
                    spec.name,
                    operands_phrase(spec.args.len()),
                    operand_list(spec),
                    args.len()
                )));
            }
            args.push(self.operand(cur, a.kind)?);
        }
        if !cur.at_end() {
            let list = if spec.args.is_empty() {
                String::new()
            } else {
                format!(" ({})", operand_list(spec))
            };
            return Err(cur.err(format!(
                "`{}` takes {}{list}; {} is one too many",
                spec.name,
                operands_phrase(spec.args.len()),
                cur.found()
            )));
        }
        self.push(Op::Sys { call, args, ret }, cur.line, col)?;
        Ok(())
    }

    pub(super) fn width(cur: &mut Cursor<'_>) -> Result<Width, ParseError> {
        let (w, col) = cur.ident("a width (`u8`, `u16`, `u32` or `u64`)")?;
        width_of(w).ok_or_else(|| {
            cur.err_at(
                col,
                format!("unknown width `{w}` (`u8`, `u16`, `u32` or `u64`)"),
            )
        })
    }

    pub(super) fn load(
        &mut self,
        cur: &mut Cursor<'_>,
        dst: Reg,
        col: u32,
    ) -> Result<(), ParseError> {
        let width = Self::width(cur)?;
        let (b, bcol) = cur.ident("a buffer")?;
        let buf = self.buffer(b, cur.line, bcol)?;
        let off = self.value(cur, "an offset")?;
        cur.expect_end("after `load WIDTH BUFFER OFFSET`")?;
        self.push(
            Op::Load {
                dst,
                width,
                buf,
                off,
            },
            cur.line,
            col,
        )?;
        Ok(())
    }

    pub(super) fn store(&mut self, cur: &mut Cursor<'_>, col: u32) -> Result<(), ParseError> {
        let width = Self::width(cur)?;
        let (b, bcol) = cur.ident("a buffer")?;
        let buf = self.buffer(b, cur.line, bcol)?;
        let off = self.value(cur, "an offset")?;
        let src = self.value(cur, "the value stored")?;
        cur.expect_end("after `store WIDTH BUFFER OFFSET VALUE`")?;
        self.push(
            Op::Store {
                width,
                buf,
                off,
                src,
            },
            cur.line,
            col,
        )?;
        Ok(())
    }

    pub(super) fn call(
        &mut self,
        cur: &mut Cursor<'_>,
        dst: Option<Reg>,
        col: u32,
    ) -> Result<(), ParseError> {
        let func = match cur.next() {
            Some(Token {
                tok: Tok::Ident(f), ..
            }) => f.clone(),
            Some(Token {
                tok: Tok::Str(b),
                col,
                ..
            }) => String::from_utf8(b.clone())
                .map_err(|_| cur.err_at(*col, "a function's name must be UTF-8"))?,
            _ => {
                cur.pos = cur.pos.saturating_sub(1);
                return Err(cur.expected("a function name after `call`"));
            }
        };
        let mut args = Vec::new();
        while !cur.at_end() {
            let arg = match cur.peek_at(0) {
                Some(Token {
                    tok: Tok::Ident(n), ..
                }) if self.buffers.contains_key(n.as_str())
                    || cur.peek_at(1).map(|t| &t.tok) == Some(&Tok::P(Punct::LBracket)) =>
                {
                    Arg::Buf(self.buf_range(cur)?)
                }
                Some(Token {
                    tok: Tok::Str(_) | Tok::Input(_),
                    ..
                }) => Arg::Path(self.path_ref(cur)?),
                _ => Arg::Value(self.value(
                    cur,
                    "an integer, a register, a buffer range, a string or `$input`",
                )?),
            };
            args.push(arg);
        }
        self.push(Op::Call { dst, func, args }, cur.line, col)?;
        Ok(())
    }

    pub(super) fn jump(
        &mut self,
        cur: &mut Cursor<'_>,
        cond: Option<Cond>,
        col: u32,
    ) -> Result<(), ParseError> {
        if cond.is_some() {
            cur.expect_word("goto", "after the condition")?;
        }
        let (label, lcol) = cur.ident("a label")?;
        let bound = if cur.is_word("bound") {
            cur.pos += 1;
            let bcol = cur.col();
            let n = Self::int(cur, "the loop bound")?;
            Some(
                u32::try_from(n)
                    .map_err(|_| cur.err_at(bcol, "a loop bound is from 0 to 4294967295"))?,
            )
        } else {
            None
        };
        cur.expect_end("after the jump (only `bound N` may follow the label)")?;
        let op = self.c.ops.len();
        self.fixups.push(Fixup {
            op,
            label: label.to_string(),
            line: cur.line,
            col: lcol,
        });
        self.push(
            Op::Jump {
                cond,
                target: 0,
                bound,
            },
            cur.line,
            col,
        )?;
        Ok(())
    }
}

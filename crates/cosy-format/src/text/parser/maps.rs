//! Maps: `map ... {` and `}`.

use cosy_model::{MapSource, Op};

use super::Parser;
use super::cursor::Cursor;
use crate::text::ParseError;
use crate::text::lexer::{Punct, Tok, Token};

impl Parser {
    /// `map VAR in SOURCE(...) {`, or `map VAR, KIND, INO in dirents(...) {`.
    pub(super) fn map_begin(&mut self, cur: &mut Cursor<'_>, col: u32) -> Result<(), ParseError> {
        let line = cur.line;
        let (var, var_col) = cur.ident("the map's variable")?;
        let extra = if cur.eat_punct(Punct::Comma) {
            let kind = cur.ident("the register bound to the entry's type")?;
            cur.expect_punct(Punct::Comma, "between the map's variables")?;
            let ino = cur.ident("the register bound to the entry's inode number")?;
            Some((kind, ino))
        } else {
            None
        };
        cur.expect_word("in", "after the map's variable")?;
        let (source, scol) = cur.ident("`paths`, `offsets`, `range` or `dirents`")?;
        if extra.is_some() && source != "dirents" {
            return Err(cur.err_at(scol, "only `dirents` binds three variables"));
        }
        let source = match source {
            "paths" => {
                let var = self.path_var(var, line, var_col)?;
                cur.expect_punct(Punct::LParen, "after `paths`")?;
                let mut list = Vec::new();
                self.list(cur, |p, cur| {
                    let d = match cur.next() {
                        Some(Token {
                            tok: Tok::Str(b),
                            col,
                            ..
                        }) => p.literal(b, line, *col)?,
                        Some(Token {
                            tok: Tok::Input(n),
                            col,
                            ..
                        }) => p.input_path(n, line, *col)?,
                        _ => {
                            cur.pos = cur.pos.saturating_sub(1);
                            return Err(cur.expected("a path (`\"...\"` or `$input`)"));
                        }
                    };
                    list.push(d);
                    Ok(())
                })?;
                MapSource::Paths { list, var }
            }
            "offsets" => {
                let var = self.reg(var, line, var_col)?;
                cur.expect_punct(Punct::LParen, "after `offsets`")?;
                let mut list = Vec::new();
                self.list(cur, |_, cur| {
                    list.push(Self::int(cur, "an integer")?);
                    Ok(())
                })?;
                MapSource::Offsets { list, var }
            }
            "range" => {
                let var = self.reg(var, line, var_col)?;
                cur.expect_punct(Punct::LParen, "after `range`")?;
                let start = self.value(cur, "the start of the range")?;
                cur.expect_punct(Punct::Comma, "after the start of the range")?;
                let end = self.value(cur, "the end of the range")?;
                cur.expect_punct(Punct::Comma, "after the end of the range")?;
                let step = self.value(cur, "the step of the range")?;
                cur.expect_punct(Punct::RParen, "after `range(START, END, STEP`")?;
                MapSource::Range {
                    start,
                    end,
                    step,
                    var,
                }
            }
            "dirents" => {
                let name = self.path_var(var, line, var_col)?;
                let (kind, ino) = match extra {
                    Some(((k, kcol), (i, icol))) => {
                        (self.reg(k, line, kcol)?, self.reg(i, line, icol)?)
                    }
                    None => (
                        self.reg(&format!("{var}.type"), line, var_col)?,
                        self.reg(&format!("{var}.ino"), line, var_col)?,
                    ),
                };
                cur.expect_punct(Punct::LParen, "after `dirents`")?;
                let buf = self.buf_range(cur)?;
                cur.expect_punct(Punct::RParen, "after `dirents(BUFFER`")?;
                MapSource::Dirents {
                    buf,
                    name,
                    kind,
                    ino,
                }
            }
            other => {
                return Err(cur.err_at(
                    scol,
                    format!(
                        "unknown map source `{other}` (`paths`, `offsets`, `range` or `dirents`)"
                    ),
                ));
            }
        };
        let brace = cur.col();
        cur.expect_punct(Punct::LBrace, "opening the map's body")?;
        cur.expect_end("after `{` (the body starts on the next line)")?;
        let begin = self.push(Op::MapBegin { source, end: 0 }, line, col)?;
        self.maps.push((begin, line, brace));
        Ok(())
    }

    /// `ITEM, ITEM, ... )` (the `(` already read).
    pub(super) fn list(
        &mut self,
        cur: &mut Cursor<'_>,
        mut item: impl FnMut(&mut Self, &mut Cursor<'_>) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        if cur.eat_punct(Punct::RParen) {
            return Ok(());
        }
        loop {
            item(self, cur)?;
            if cur.eat_punct(Punct::RParen) {
                return Ok(());
            }
            cur.expect_punct(Punct::Comma, "or `)` in the list")?;
        }
    }

    pub(super) fn map_end(&mut self, cur: &mut Cursor<'_>, col: u32) -> Result<(), ParseError> {
        let Some((begin, _, _)) = self.maps.pop() else {
            return Err(cur.err_at(col, "unbalanced `}`: no map is open"));
        };
        cur.expect_end("after `}`")?;
        let end = self.push(Op::MapEnd { begin }, cur.line, col)?;
        if let Some(Op::MapBegin { end: e, .. }) = self.c.ops.get_mut(begin as usize) {
            *e = end;
        }
        Ok(())
    }
}

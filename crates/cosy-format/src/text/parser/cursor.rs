//! The tokens of one line, and reading numbers and operators.

use cosy_model::{BinOp, Width};

use crate::text::ParseError;
use crate::text::lexer::{Punct, Tok, Token};

/// The tokens of one line and a position among them.
pub(crate) struct Cursor<'a> {
    pub(super) toks: &'a [Token],
    pub(super) pos: usize,
    pub(super) line: u32,
    /// Column just after the last token (where "missing ..." errors point).
    pub(super) eol: u32,
}

impl<'a> Cursor<'a> {
    pub(super) fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    pub(super) fn peek_at(&self, k: usize) -> Option<&'a Token> {
        self.toks.get(self.pos + k)
    }

    pub(super) fn next(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.pos);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    /// Column of the current token, or of the end of the line.
    pub(super) fn col(&self) -> u32 {
        self.toks.get(self.pos).map_or(self.eol, |t| t.col)
    }

    /// How error messages name the current token.
    pub(super) fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "the end of the line".to_string(), Tok::describe)
    }

    pub(super) fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, self.col(), message)
    }

    pub(super) fn err_at(&self, col: u32, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, col, message)
    }

    pub(super) fn expected(&self, what: &str) -> ParseError {
        self.err(format!("expected {what}, found {}", self.found()))
    }

    pub(super) fn is_punct(&self, p: Punct) -> bool {
        self.peek() == Some(&Tok::P(p))
    }

    pub(super) fn eat_punct(&mut self, p: Punct) -> bool {
        let yes = self.is_punct(p);
        if yes {
            self.pos += 1;
        }
        yes
    }

    pub(super) fn expect_punct(&mut self, p: Punct, context: &str) -> Result<(), ParseError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{}` {context}", p.text())))
        }
    }

    pub(super) fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == w)
    }

    pub(super) fn expect_word(&mut self, w: &str, context: &str) -> Result<(), ParseError> {
        if self.is_word(w) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(&format!("`{w}` {context}")))
        }
    }

    /// An identifier and its column.
    pub(super) fn ident(&mut self, what: &str) -> Result<(&'a str, u32), ParseError> {
        match self.toks.get(self.pos) {
            Some(Token {
                tok: Tok::Ident(s),
                col,
                ..
            }) => {
                self.pos += 1;
                Ok((s.as_str(), *col))
            }
            _ => Err(self.expected(what)),
        }
    }

    pub(super) fn expect_end(&self, context: &str) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.err(format!(
                "expected the end of the line {context}, found {}",
                self.found()
            )))
        }
    }
}

pub(super) fn binop_of(tok: &Tok) -> Option<BinOp> {
    Some(match tok {
        Tok::P(p) => match p {
            Punct::Plus => BinOp::Add,
            Punct::Minus => BinOp::Sub,
            Punct::Star => BinOp::Mul,
            Punct::Slash => BinOp::Div,
            Punct::Percent => BinOp::Rem,
            Punct::Amp => BinOp::And,
            Punct::Pipe => BinOp::Or,
            Punct::Caret => BinOp::Xor,
            Punct::Shl => BinOp::Shl,
            Punct::Shr => BinOp::Shr,
            Punct::Eq => BinOp::Eq,
            Punct::Ne => BinOp::Ne,
            Punct::Lt => BinOp::Lt,
            Punct::Le => BinOp::Le,
            Punct::Gt => BinOp::Gt,
            Punct::Ge => BinOp::Ge,
            _ => return None,
        },
        Tok::Ident(s) if s == "min" => BinOp::Min,
        Tok::Ident(s) if s == "max" => BinOp::Max,
        _ => return None,
    })
}

/// Reads a number literal: decimal, `0x` hexadecimal, `0o` octal or `0b` binary. A decimal
/// must fit an `i64`; the others are 64-bit patterns.
pub(super) fn number(text: &str, negative: bool) -> Result<i64, String> {
    let (digits, radix) = if let Some(h) = text.strip_prefix("0x") {
        (h, 16)
    } else if let Some(o) = text.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = text.strip_prefix("0b") {
        (b, 2)
    } else {
        (text, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("bad number `{text}`"));
    }
    let magnitude = u64::from_str_radix(digits, radix)
        .map_err(|_| format!("`{text}` does not fit in 64 bits"))?;
    if radix == 10 {
        let limit = if negative {
            1u64 << 63
        } else {
            i64::MAX as u64
        };
        if magnitude > limit {
            return Err(format!("`{text}` does not fit in a signed 64-bit integer"));
        }
    }
    let v = magnitude as i64;
    Ok(if negative { v.wrapping_neg() } else { v })
}

pub(super) fn width_of(s: &str) -> Option<Width> {
    Width::ALL.iter().copied().find(|w| w.name() == s)
}

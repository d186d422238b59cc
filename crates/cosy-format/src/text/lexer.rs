//! The lexer: one line of text into tokens, with their columns.
//!
//! The format is line-oriented (a string cannot span lines), so lines are lexed one at a time.
//! Columns count characters from 1.

use super::ParseError;
use crate::names;

/// A punctuation or operator token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Punct {
    Assign,
    Eq,
    Ne,
    Lt,
    Le,
    Shl,
    Gt,
    Ge,
    Shr,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    Pipe,
    Caret,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    DotDot,
}

impl Punct {
    /// The token's spelling.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Punct::Assign => "=",
            Punct::Eq => "==",
            Punct::Ne => "!=",
            Punct::Lt => "<",
            Punct::Le => "<=",
            Punct::Shl => "<<",
            Punct::Gt => ">",
            Punct::Ge => ">=",
            Punct::Shr => ">>",
            Punct::Plus => "+",
            Punct::Minus => "-",
            Punct::Star => "*",
            Punct::Slash => "/",
            Punct::Percent => "%",
            Punct::Amp => "&",
            Punct::Pipe => "|",
            Punct::Caret => "^",
            Punct::LParen => "(",
            Punct::RParen => ")",
            Punct::LBracket => "[",
            Punct::RBracket => "]",
            Punct::LBrace => "{",
            Punct::RBrace => "}",
            Punct::Comma => ",",
            Punct::Colon => ":",
            Punct::DotDot => "..",
        }
    }
}

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An identifier (names, keywords, mnemonics, constants).
    Ident(String),
    /// A number as written (`12`, `0x1f`, `0o644`, `64KiB`); read by the parser, which knows
    /// what kind of number it expects.
    Num(String),
    /// A string literal, escapes resolved.
    Str(Vec<u8>),
    /// `$NAME`: a path input.
    Input(String),
    /// Punctuation and operators.
    P(Punct),
}

impl Tok {
    /// How an error message names the token.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Num(s) => format!("`{s}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Input(s) => format!("`${s}`"),
            Tok::P(p) => format!("`{}`", p.text()),
        }
    }
}

/// A token and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Column of its first character.
    pub(crate) col: u32,
    /// Column just after its last character.
    pub(crate) end: u32,
    /// No whitespace between it and the previous token (`A|B` is one flag combination,
    /// `A | B` an operation).
    pub(crate) glued: bool,
}

struct Scanner {
    chars: Vec<char>,
    pos: usize,
    line: u32,
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.pos + k).copied()
    }

    fn col(&self) -> u32 {
        u32::try_from(self.pos + 1).unwrap_or(u32::MAX)
    }

    fn err(&self, col: u32, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, col, message)
    }
}

/// Lexes one line (without its line terminator). Comments (`#` to the end of the line, outside
/// strings) are dropped.
pub(crate) fn lex_line(src: &str, line: u32) -> Result<Vec<Token>, ParseError> {
    let mut s = Scanner {
        chars: src.chars().collect(),
        pos: 0,
        line,
    };
    let mut out = Vec::new();
    let mut glued = false;
    while let Some(c) = s.peek() {
        if c == ' ' || c == '\t' || c == '\r' {
            s.pos += 1;
            glued = false;
            continue;
        }
        if c == '#' {
            break;
        }
        let col = s.col();
        let tok = if names::starts_ident(c) {
            Tok::Ident(ident(&mut s))
        } else if c.is_ascii_digit() {
            let start = s.pos;
            while s.peek().is_some_and(names::tail_char) {
                s.pos += 1;
            }
            Tok::Num(s.chars[start..s.pos].iter().collect())
        } else if c == '"' {
            Tok::Str(string(&mut s)?)
        } else if c == '$' {
            s.pos += 1;
            if !s.peek().is_some_and(names::starts_ident) {
                return Err(s.err(col, "`$` must be followed by the name of a path input"));
            }
            Tok::Input(ident(&mut s))
        } else {
            Tok::P(punct(&mut s, c, col)?)
        };
        out.push(Token {
            tok,
            col,
            end: s.col(),
            glued,
        });
        glued = true;
    }
    Ok(out)
}

fn ident(s: &mut Scanner) -> String {
    let start = s.pos;
    s.pos += 1;
    loop {
        match s.peek() {
            Some(c) if names::tail_char(c) => s.pos += 1,
            Some('.') if s.peek_at(1).is_some_and(names::tail_char) => s.pos += 1,
            _ => break,
        }
    }
    s.chars[start..s.pos].iter().collect()
}

fn punct(s: &mut Scanner, c: char, col: u32) -> Result<Punct, ParseError> {
    let next = s.peek_at(1);
    let (p, len) = match (c, next) {
        ('=', Some('=')) => (Punct::Eq, 2),
        ('=', _) => (Punct::Assign, 1),
        ('!', Some('=')) => (Punct::Ne, 2),
        ('<', Some('=')) => (Punct::Le, 2),
        ('<', Some('<')) => (Punct::Shl, 2),
        ('<', _) => (Punct::Lt, 1),
        ('>', Some('=')) => (Punct::Ge, 2),
        ('>', Some('>')) => (Punct::Shr, 2),
        ('>', _) => (Punct::Gt, 1),
        ('+', _) => (Punct::Plus, 1),
        ('-', _) => (Punct::Minus, 1),
        ('*', _) => (Punct::Star, 1),
        ('/', _) => (Punct::Slash, 1),
        ('%', _) => (Punct::Percent, 1),
        ('&', _) => (Punct::Amp, 1),
        ('|', _) => (Punct::Pipe, 1),
        ('^', _) => (Punct::Caret, 1),
        ('(', _) => (Punct::LParen, 1),
        (')', _) => (Punct::RParen, 1),
        ('[', _) => (Punct::LBracket, 1),
        (']', _) => (Punct::RBracket, 1),
        ('{', _) => (Punct::LBrace, 1),
        ('}', _) => (Punct::RBrace, 1),
        (',', _) => (Punct::Comma, 1),
        (':', _) => (Punct::Colon, 1),
        ('.', Some('.')) => (Punct::DotDot, 2),
        _ => {
            let shown = if c.is_control() {
                format!("{:?}", c)
            } else {
                format!("`{c}`")
            };
            return Err(s.err(col, format!("unexpected character {shown}")));
        }
    };
    s.pos += len;
    Ok(p)
}

fn string(s: &mut Scanner) -> Result<Vec<u8>, ParseError> {
    let open = s.col();
    s.pos += 1;
    let mut bytes = Vec::new();
    loop {
        let Some(c) = s.peek() else {
            return Err(s.err(open, "unterminated string (a string ends on its line)"));
        };
        let col = s.col();
        s.pos += 1;
        match c {
            '"' => return Ok(bytes),
            '\\' => {
                let Some(e) = s.peek() else {
                    return Err(s.err(open, "unterminated string (a string ends on its line)"));
                };
                s.pos += 1;
                match e {
                    '\\' => bytes.push(b'\\'),
                    '"' => bytes.push(b'"'),
                    'n' => bytes.push(b'\n'),
                    't' => bytes.push(b'\t'),
                    '0' => bytes.push(0),
                    'x' => {
                        let hex: String = (0..2).filter_map(|k| s.peek_at(k)).collect();
                        let byte = (hex.len() == 2 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                            .then(|| u8::from_str_radix(&hex, 16).ok())
                            .flatten();
                        match byte {
                            Some(b) => {
                                bytes.push(b);
                                s.pos += 2;
                            }
                            None => {
                                return Err(
                                    s.err(col, "`\\x` must be followed by two hexadecimal digits")
                                );
                            }
                        }
                    }
                    other => {
                        return Err(s.err(
                            col,
                            format!(
                                "unknown escape `\\{other}` (known: \\\\ \\\" \\n \\t \\0 \\xNN)"
                            ),
                        ));
                    }
                }
            }
            other => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex_line(src, 1)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn ranges_and_dotted_names() {
        use Tok::*;
        assert_eq!(
            toks("buf[e.type..n] # comment"),
            vec![
                Ident("buf".into()),
                P(Punct::LBracket),
                Ident("e.type".into()),
                P(Punct::DotDot),
                Ident("n".into()),
                P(Punct::RBracket)
            ]
        );
        assert_eq!(
            toks("0..64KiB"),
            vec![Num("0".into()), P(Punct::DotDot), Num("64KiB".into())]
        );
    }

    #[test]
    fn strings_and_glue() {
        let t = lex_line(r##"x "a\x41\n\"#" A|B | C"##, 1).unwrap_or_default();
        assert_eq!(t[1].tok, Tok::Str(b"aA\n\"#".to_vec()));
        assert!(!t[1].glued);
        assert!(t[3].glued && t[4].glued);
        assert!(!t[5].glued && !t[6].glued);
    }

    #[test]
    fn errors_have_columns() {
        let e = lex_line(r#"x = "abc"#, 3).err();
        assert_eq!(e.map(|e| (e.line, e.column)), Some((3, 5)));
        let e = lex_line("x = a ? b", 1).err();
        assert_eq!(e.map(|e| e.column), Some(7));
        let e = lex_line(r#""\q""#, 1).err();
        assert_eq!(e.map(|e| e.column), Some(2));
    }
}

//! The regular expression of a search and the lines it selects, with ripgrep's semantics:
//! a match never spans a line terminator (ripgrep removes `\n` from every class of the
//! pattern; here a match found across lines is checked again on its first line alone).

use memchr::{memchr, memrchr};
use regex::bytes::{Regex, RegexBuilder};

/// The compiled patterns of a search.
pub struct Matcher {
    re: Regex,
}

/// How the patterns are to be read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Syntax {
    /// Literal strings (`-F`).
    pub fixed: bool,
    /// Case-insensitive (`-i`).
    pub ignore_case: bool,
    /// Whole words only (`-w`).
    pub word: bool,
}

impl Matcher {
    /// Compiles `patterns` (any of them matches); the regex crate's message if one is not
    /// valid.
    pub fn new(patterns: &[String], syntax: Syntax) -> Result<Matcher, String> {
        let parts: Vec<String> = patterns
            .iter()
            .map(|p| {
                if syntax.fixed {
                    regex::escape(p)
                } else {
                    p.clone()
                }
            })
            .collect();
        let mut pat = if parts.len() == 1 {
            parts[0].clone()
        } else {
            parts
                .iter()
                .map(|p| format!("(?:{p})"))
                .collect::<Vec<_>>()
                .join("|")
        };
        if syntax.word {
            // ripgrep's word boundaries: a non-word character or a line's edge on each side.
            pat = format!(r"(?:(?m:^)|\W)(?:{pat})(?:(?m:$)|\W)");
        }
        let re = RegexBuilder::new(&pat)
            .multi_line(true)
            .case_insensitive(syntax.ignore_case)
            .size_limit(100 << 20)
            .dfa_size_limit(1000 << 20)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Matcher { re })
    }

    /// Whether `line` (without its terminator) matches.
    fn line_matches(&self, line: &[u8]) -> bool {
        self.re.is_match(line)
    }

    /// Calls `f(start, end)` for every line of `data` that matches (`end` excludes the
    /// line's `\n`), in order, while `f` returns true. The last line need not end in `\n`;
    /// an empty `data` has no line.
    pub fn matching_lines(&self, data: &[u8], mut f: impl FnMut(usize, usize) -> bool) {
        let mut pos = 0;
        while pos < data.len() {
            let Some(m) = self.re.find_at(data, pos) else {
                return;
            };
            let s = m.start();
            // A match at the very end is on a last line without `\n` (`$` on `a\nb`), or
            // after the last line.
            if s >= data.len() && data.last() == Some(&b'\n') {
                return;
            }
            let start = memrchr(b'\n', &data[pos..s]).map_or(pos, |i| pos + i + 1);
            let end = memchr(b'\n', &data[s..]).map_or(data.len(), |i| s + i);
            let within = m.end() <= end;
            if (within || self.line_matches(&data[start..end])) && !f(start, end) {
                return;
            }
            pos = end + 1;
        }
    }

    /// Like [`Matcher::matching_lines`], for the lines selected: the matching ones, or with
    /// `invert` the others.
    pub fn selected_lines(
        &self,
        data: &[u8],
        invert: bool,
        mut f: impl FnMut(usize, usize) -> bool,
    ) {
        if !invert {
            return self.matching_lines(data, f);
        }
        let mut next = 0;
        let mut go = true;
        // The lines between two matching ones, each on its own.
        let gap = |from: usize, to: usize, f: &mut dyn FnMut(usize, usize) -> bool| {
            let mut p = from;
            while p < to {
                let e = memchr(b'\n', &data[p..to]).map_or(to, |i| p + i);
                if !f(p, e) {
                    return false;
                }
                p = e + 1;
            }
            true
        };
        self.matching_lines(data, |s, e| {
            go = gap(next, s, &mut f);
            next = e + 1;
            go
        });
        if go && next < data.len() {
            gap(next, data.len(), &mut f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(m: &Matcher, data: &[u8], invert: bool) -> Vec<String> {
        let mut v = Vec::new();
        m.selected_lines(data, invert, |s, e| {
            v.push(String::from_utf8_lossy(&data[s..e]).into_owned());
            true
        });
        v
    }

    #[test]
    fn a_match_across_lines_does_not_count() {
        let m = Matcher::new(&[r"a\sb".into()], Syntax::default()).unwrap();
        assert_eq!(lines(&m, b"xa\nb\na b\n", false), ["a b"]);
        assert_eq!(lines(&m, b"xa\nb\na b\n", true), ["xa", "b"]);
    }

    #[test]
    fn empty_lines_and_the_last_line_without_newline() {
        let m = Matcher::new(&["^".into()], Syntax::default()).unwrap();
        assert_eq!(lines(&m, b"a\n\nb", false), ["a", "", "b"]);
        assert_eq!(lines(&m, b"a\n", false), ["a"]);
        let end = Matcher::new(&["$".into()], Syntax::default()).unwrap();
        assert_eq!(lines(&end, b"a\nb", false), ["a", "b"]);
        assert_eq!(lines(&end, b"a\n", false), ["a"]);
        assert!(lines(&m, b"", false).is_empty());
    }

    #[test]
    fn words_fixed_strings_and_several_patterns() {
        let w = Syntax {
            word: true,
            fixed: true,
            ..Syntax::default()
        };
        let m = Matcher::new(&["a.b".into(), "c".into()], w).unwrap();
        assert_eq!(lines(&m, b"a.b x\naxb\nxc\nc-d\n", false), ["a.b x", "c-d"]);
    }
}

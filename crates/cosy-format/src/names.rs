//! Which names the text format can spell, shared by the parser (which refuses the others) and
//! the printer (which renames them).

use cosy_model::{Sys, flags};

/// The words that stand for descriptors in fd operands; no fd slot can be named so.
pub(crate) const FD_WORDS: [&str; 4] = ["cwd", "stdin", "stdout", "stderr"];

fn head_char(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// A character that may continue an identifier segment.
pub(crate) fn tail_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `c` may start an identifier.
pub(crate) fn starts_ident(c: char) -> bool {
    head_char(c)
}

/// Whether `s` is an identifier: `[A-Za-z_][A-Za-z0-9_]*`, then any number of `.` followed by
/// `[A-Za-z0-9_]+` (`e.type`, `e.ino_1`). Exactly what the lexer reads as one identifier.
pub(crate) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if head_char(c) => {}
        _ => return false,
    }
    let mut after_dot = false;
    for c in chars {
        if c == '.' {
            if after_dot {
                return false;
            }
            after_dot = true;
        } else if tail_char(c) {
            after_dot = false;
        } else {
            return false;
        }
    }
    !after_dot
}

/// Why `name` cannot name a register, if it cannot (besides not being an identifier).
/// `is_buffer` tells whether a buffer has that name.
pub(crate) fn reg_name_problem(name: &str, is_buffer: impl Fn(&str) -> bool) -> Option<String> {
    if Sys::from_name(name).is_some() {
        Some(format!(
            "`{name}` is a system call and cannot name a register"
        ))
    } else if name == "load" || name == "call" {
        Some(format!("`{name}` is a keyword and cannot name a register"))
    } else if flags::constant(name).is_some() {
        Some(format!(
            "`{name}` is a named constant and cannot name a register"
        ))
    } else if is_buffer(name) {
        Some(format!("`{name}` is a buffer and cannot name a register"))
    } else {
        None
    }
}

/// Why `name` cannot name an fd slot, if it cannot.
pub(crate) fn fd_name_problem(name: &str) -> Option<String> {
    FD_WORDS
        .contains(&name)
        .then(|| format!("`{name}` is a standard descriptor and cannot name an fd slot"))
}

/// Why `name` cannot name a buffer, if it cannot.
pub(crate) fn buffer_name_problem(name: &str) -> Option<String> {
    flags::constant(name)
        .is_some()
        .then(|| format!("`{name}` is a named constant and cannot name a buffer"))
}

/// Printable, unambiguous names for one declaration table: names that are identifiers, allowed
/// (`ok`) and not taken by an earlier entry are kept; the others get a fresh name derived from
/// them (`base_1`, `base_2`, ...) that collides with no kept one. Applying it to its own output
/// changes nothing.
pub(crate) fn assign(names: &[String], fallback: &str, ok: impl Fn(&str) -> bool) -> Vec<String> {
    use std::collections::HashSet;
    let mut taken: HashSet<&str> = HashSet::new();
    let mut keep = vec![false; names.len()];
    for (i, n) in names.iter().enumerate() {
        if is_ident(n) && ok(n) && taken.insert(n.as_str()) {
            keep[i] = true;
        }
    }
    let mut taken: HashSet<String> = taken.into_iter().map(str::to_string).collect();
    let mut out = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        if keep[i] {
            out.push(n.clone());
            continue;
        }
        let base = sanitize(n, fallback);
        let fresh = std::iter::once(base.clone())
            .chain((1u64..).map(|k| format!("{base}_{k}")))
            .find(|c| is_ident(c) && ok(c) && !taken.contains(c))
            .unwrap_or(base);
        taken.insert(fresh.clone());
        out.push(fresh);
    }
    out
}

fn sanitize(name: &str, fallback: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if tail_char(c) { c } else { '_' })
        .collect();
    if s.is_empty() {
        s = fallback.to_string();
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for good in ["a", "_", "e.type", "e.ino_1", "a.1", "x_2.y.z", "L12"] {
            assert!(is_ident(good), "{good}");
        }
        for bad in ["", "1a", "a.", ".a", "a..b", "a-b", "a b", "é", "$a"] {
            assert!(!is_ident(bad), "{bad}");
        }
    }

    #[test]
    fn assign_keeps_good_names_and_is_idempotent() {
        let names: Vec<String> = ["a", "a", "a_1", "", "9x", "read", "b c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ok = |n: &str| reg_name_problem(n, |_| false).is_none();
        let once = assign(&names, "r", ok);
        assert_eq!(once, ["a", "a_2", "a_1", "r", "_9x", "read_1", "b_c"]);
        assert_eq!(assign(&once, "r", ok), once);
    }
}

//! The round trips of the formats, for any input.
//!
//! - Text (`cosy_format::text`): what parses prints in the canonical form, which parses to the
//!   same compound and prints to the same text again (docs/text-format.md; the module
//!   documentation of `cosy_format::text` states the guarantees).
//! - Binary (`cosy_format::binary`): what decodes encodes to bytes that decode to the same
//!   compound and encode to the same bytes.
//!
//! A compound from either also goes through the printer and the verifier (under
//! `Policy::trusted()`), which must not panic on anything the formats accept.

use cosy_format::{binary, text};
use cosy_model::{Compound, Policy};

use crate::shown;

/// The text round trip of `bytes`: as a `&str` when they are UTF-8, otherwise as the lossy
/// conversion (so that arbitrary bytes reach the lexer as text with replacement characters).
pub fn text_round_trip(bytes: &[u8]) -> Result<(), String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => text_str(s),
        Err(_) => text_str(&String::from_utf8_lossy(bytes)),
    }
}

/// The text round trip of `src`: nothing to check if it does not parse.
pub fn text_str(src: &str) -> Result<(), String> {
    let Ok(parsed) = text::parse(src) else {
        return Ok(());
    };
    let c = &parsed.compound;
    if parsed.op_lines.len() != c.ops.len() {
        return Err(format!(
            "{} operations but {} line numbers\n--- source:\n{src}",
            c.ops.len(),
            parsed.op_lines.len()
        ));
    }
    let lines = src.lines().count().max(1) as u32;
    if let Some(l) = parsed.op_lines.iter().find(|&&l| l == 0 || l > lines) {
        return Err(format!(
            "operation line {l} outside the source's {lines} lines\n--- source:\n{src}"
        ));
    }
    let printed = text::print(c);
    let again = text::parse(&printed).map_err(|e| {
        format!("the printed text does not parse: {e}\n--- source:\n{src}\n--- printed:\n{printed}")
    })?;
    if again.compound != *c {
        return Err(format!(
            "parse(print(c)) != c\n--- source:\n{src}\n--- printed:\n{printed}\n--- c:\n{c:#?}\n\
             --- parsed again:\n{:#?}",
            again.compound
        ));
    }
    let reprinted = text::print(&again.compound);
    if reprinted != printed {
        return Err(format!(
            "the canonical text is not a fixed point\n--- printed:\n{printed}\n--- printed again:\n{reprinted}"
        ));
    }
    binary_of(c).map_err(|e| format!("{e}\n--- source:\n{src}"))?;
    let _ = cosy_verify::verify(c.clone(), &Policy::trusted());
    Ok(())
}

/// The binary round trip of `bytes`: nothing to check if they do not decode.
pub fn binary_round_trip(bytes: &[u8]) -> Result<(), String> {
    let Ok(c) = binary::decode(bytes) else {
        return Ok(());
    };
    binary_of(&c)?;
    // Any decoded compound prints (with `?` markers where it is malformed) and is checked by
    // the verifier, neither of which may panic.
    let _ = text::print(&c);
    let _ = cosy_verify::verify(c, &Policy::trusted());
    Ok(())
}

/// `decode(encode(c)) == c`, and encoding that again gives the same bytes.
pub fn binary_of(c: &Compound) -> Result<(), String> {
    let bytes = binary::encode(c);
    let back = binary::decode(&bytes).map_err(|e| {
        format!(
            "the encoding of a compound does not decode: {e}\n--- compound:\n{c:#?}\n--- text:\n{}",
            shown(c)
        )
    })?;
    if back != *c {
        return Err(format!(
            "decode(encode(c)) != c\n--- c:\n{c:#?}\n--- decoded:\n{back:#?}"
        ));
    }
    if binary::encode(&back) != bytes {
        return Err(format!(
            "encode(decode(encode(c))) != encode(c)\n--- c:\n{c:#?}"
        ));
    }
    Ok(())
}

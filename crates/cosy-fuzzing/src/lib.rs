//! What the fuzz targets (`fuzz/`, cargo-fuzz) and the property tests of this crate share:
//!
//! - [`generate`]: compounds from unstructured bytes ([`arbitrary::Unstructured`]), mostly
//!   ones the verifier accepts, so that a fuzzer mutating the bytes reaches the executors and
//!   not only the verifier's refusals;
//! - [`formats`]: the round trips of the text and binary formats;
//! - [`run`]: a compound verified under a strict policy and run on every executor in a scratch
//!   directory, compared with the direct executor (outputs, error, `continue`-mode errors, the
//!   files left), with no descriptor left open and nothing changed outside the directory.
//!
//! Every check returns `Err` with a description of what went wrong (and the compound, in text)
//! instead of panicking, so that a property test can shrink and a fuzz target can panic with
//! the whole story. The crate is for tests only (`publish = false`); no library depends on it.

pub mod formats;
pub mod generate;
pub mod run;

/// A compound in text for an error message, or a note that it does not print.
pub(crate) fn shown(c: &cosy_model::Compound) -> String {
    cosy_format::text::print(c)
}

//! `compound!`: a block of ordinary Rust compiled into a cosy compound at compile time.
//!
//! ```
//! cosy::compound! {
//!     /// Reads a file to its end and counts its bytes (the Cosy thesis's read loop).
//!     pub fn thesis(name: &Path) -> Thesis {
//!         let mut bf = [0u8; 4096];
//!         let fd = openat(cwd, name, O_RDONLY, 0)?;
//!         let mut total = 0;
//!         #[bound(10_000_000)]
//!         loop {
//!             let rln = read(fd, &mut bf)?;
//!             total += rln;
//!             if rln != 4096 {
//!                 break;
//!             }
//!         }
//!         close(fd)?;
//!         Thesis { total }
//!     }
//! }
//!
//! let out = thesis::run(&cosy::Policy::trusted(), &cosy::RunOptions::default(), "Cargo.toml")?;
//! assert_eq!(out.total as u64, std::fs::metadata("Cargo.toml")?.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The macro lowers the function's body to cosy's text format (docs/text-format.md), parses
//! it with `cosy_format::text::parse` and verifies it with `cosy_verify::verify` under
//! `Policy::trusted()` (plus the user functions the block declares), all while the crate
//! compiles: a compound that does not verify is a compile error at the Rust span the failing
//! operation came from. The expansion embeds the canonical text and parses it once, at the
//! first run. docs/macro.md lists the accepted subset and every error.

mod expand;
mod lower;

use proc_macro::TokenStream;

/// Compiles a function of a Rust subset into a cosy compound, verified at compile time.
///
/// `compound! { fn NAME(INPUTS) -> OUT { BODY } }` expands to a module `NAME` with:
///
/// - `NAME::OUT`, a struct with one `i64` field per output, plus `errors` (the calls that
///   failed in continue mode) and `stats` (the run's [counters]);
/// - `NAME::run(policy, options, INPUTS...) -> Result<OUT, NAME::Error>`: sets the inputs,
///   verifies against `policy` (cached for the last policy and inputs), runs with `cosy::run`;
/// - `NAME::verify(policy, INPUTS...)`, `NAME::compound()`, `NAME::TEXT` (the canonical
///   text), `NAME::FUNCTIONS` (the user functions it calls).
///
/// Inputs are `&Path`, `&OsStr` or `&str` (a path), `&[u8]` (bytes, for a function's
/// needle) and `i64`. `#[functions(a, b)]` on the function declares the user functions it
/// calls (register them by name in `RunOptions::functions`, allow them in
/// `Policy::functions`). docs/macro.md is the reference.
///
/// [counters]: https://docs.rs/cosy/latest/cosy/struct.Stats.html
#[proc_macro]
pub fn compound(input: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(input as syn::ItemFn);
    match expand::expand(&item) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

//! Compile errors: every construct outside the subset and every verifier rule a `compound!`
//! can break is a compile error at the span that caused it (tests/ui/*.rs, the messages in
//! the .stderr beside each; regenerate with TRYBUILD=overwrite and read them).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

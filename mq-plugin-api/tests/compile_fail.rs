//! Misuse of the plugin API that must not compile, with the error each one gets.
//!
//! Each file under `tests/ui` is one mistake a plugin author can make; its `.stderr` is the
//! error rustc prints, which must name the mistake. Regenerate them after an intended change
//! with `TRYBUILD=overwrite cargo test -p mq-plugin-api --test compile_fail`, and read the diff.

#[test]
fn misuse_of_the_plugin_api_does_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

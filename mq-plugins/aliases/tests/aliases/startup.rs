//! A map that cannot be used stops start-up, naming the file and the line.

use mq_plugin_aliases::{Aliases, AliasesConfig, Error, MapErrorKind};

use crate::support::MapFile;

#[test]
fn a_missing_map_file_is_refused_naming_it() {
    let map = MapFile::new("");
    let missing = map.path().with_file_name("absent");
    let error = Aliases::open(&AliasesConfig::new(&missing)).unwrap_err();
    assert!(matches!(error, Error::Read { .. }), "{error}");
    assert!(error.to_string().contains("absent"), "{error}");
}

#[test]
fn a_bad_line_is_refused_naming_its_number() {
    let map = MapFile::new("# ok so far\na@example.org b@example.org\n\nc@example.org\n");
    let error = Aliases::open(&AliasesConfig::new(map.path())).unwrap_err();
    let Error::Parse { error: line, .. } = &error else {
        panic!("a parse error, not {error}");
    };
    assert_eq!(line.line(), 4);
    assert_eq!(*line.kind(), MapErrorKind::NoResult("c@example.org".into()));
    assert!(
        error
            .to_string()
            .ends_with("virtual line 4: pattern c@example.org has no result"),
        "{error}"
    );
}

#[test]
fn an_empty_map_is_accepted_and_expands_nothing() {
    let map = MapFile::new("# nothing yet\n");
    let transcript = crate::support::run(&map.section(""), &["a@example.org"]);
    assert_eq!(crate::support::queued(&transcript), ["a@example.org"]);
}

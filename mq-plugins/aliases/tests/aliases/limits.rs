//! `max_depth` and `max_expansion`: an RCPT past either is refused temporarily, the others of
//! the transaction go on.

use crate::support::{MapFile, queued, run};

#[test]
fn a_chain_deeper_than_max_depth_is_refused_temporarily() {
    let map = MapFile::new(
        "a@example.org b@example.org\nb@example.org c@example.org\nc@example.org d@example.org\n",
    );
    let transcript = run(
        &map.section("max_depth = 2"),
        &["b@example.org", "a@example.org"],
    );
    insta::assert_snapshot!(transcript);
    assert_eq!(queued(&transcript), ["d@example.org"]);
}

#[test]
fn a_chain_as_deep_as_max_depth_is_accepted() {
    let map = MapFile::new("a@example.org b@example.org\nb@example.org c@example.org\n");
    let transcript = run(&map.section("max_depth = 2"), &["a@example.org"]);
    assert_eq!(queued(&transcript), ["c@example.org"]);
}

#[test]
fn an_expansion_past_max_expansion_is_refused_temporarily() {
    let map = MapFile::new(
        "small@example.org x@example.net y@example.net\n\
         big@example.org x@example.net, y@example.net, x@example.net, z@example.net\n",
    );
    let transcript = run(
        &map.section("max_expansion = 2"),
        &["big@example.org", "small@example.org"],
    );
    insta::assert_snapshot!(transcript);
    assert_eq!(queued(&transcript), ["x@example.net", "y@example.net"]);
}

#[test]
fn the_default_limit_takes_a_thousand_recipients() {
    let targets: Vec<String> = (0..1000).map(|i| format!("user{i}@example.net")).collect();
    let map = MapFile::new(&format!("all@example.org {}\n", targets.join(", ")));
    let transcript = run(&map.section(""), &["all@example.org"]);
    assert_eq!(queued(&transcript).len(), 1000);
    let one_more = MapFile::new(&format!(
        "all@example.org {}, extra@example.net\n",
        targets.join(", ")
    ));
    let transcript = run(&one_more.section(""), &["all@example.org"]);
    assert!(transcript.queued().is_empty());
    assert!(
        transcript
            .to_string()
            .contains("reply 451 4.3.0 Error: alias expansion too large"),
        "{transcript}"
    );
}

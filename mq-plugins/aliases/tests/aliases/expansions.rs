//! What each kind of entry does to a recipient, as the dialogue shows it.

use crate::support::{MapFile, queued, run};

const MAP: &str = "\
# Lists: one address to many, and lists of lists.
sales@example.org     jane@example.org, bob@partner.example
team@example.org      sales@example.org,
                      ops@example.org
ops@example.org       oncall@example.org
oncall@example.org    carol@example.net

# Alias to self: jane's own mailbox, and a copy to the archive.
jane@example.org      jane@example.org, archive@example.org

# A loop, cut where it closes.
ping@example.org      pong@example.org
pong@example.org      ping@example.org, log@example.net

# A catch-all, after the domain's exact entries.
info@corp.example     desk@example.org
@corp.example         catchall@example.org

# A whole domain moved, local parts kept.
@old.example          @example.org
";

fn expand(recipients: &[&str]) -> (MapFile, mq_core::testkit::Transcript) {
    let map = MapFile::new(MAP);
    let transcript = run(&map.section(""), recipients);
    (map, transcript)
}

#[test]
fn one_recipient_expands_to_many() {
    let (_map, transcript) = expand(&["sales@example.org"]);
    insta::assert_snapshot!(transcript);
    assert_eq!(
        queued(&transcript),
        [
            "jane@example.org",
            "archive@example.org",
            "bob@partner.example"
        ]
    );
}

#[test]
fn a_list_of_lists_expands_to_its_ends_in_order() {
    let (_map, transcript) = expand(&["team@example.org"]);
    insta::assert_snapshot!(transcript);
    assert_eq!(
        queued(&transcript),
        [
            "jane@example.org",
            "archive@example.org",
            "bob@partner.example",
            "carol@example.net"
        ]
    );
}

#[test]
fn an_alias_to_itself_keeps_the_address_and_adds_the_others() {
    let (_map, transcript) = expand(&["jane@example.org"]);
    insta::assert_snapshot!(transcript);
    assert_eq!(
        queued(&transcript),
        ["jane@example.org", "archive@example.org"]
    );
}

#[test]
fn a_loop_is_cut_where_it_closes() {
    let (_map, transcript) = expand(&["ping@example.org"]);
    insta::assert_snapshot!(transcript);
    assert_eq!(queued(&transcript), ["ping@example.org", "log@example.net"]);
}

#[test]
fn a_catch_all_takes_what_the_exact_entries_do_not_and_marks_them_local() {
    let (_map, transcript) = expand(&["info@corp.example", "anyone@corp.example"]);
    insta::assert_snapshot!(transcript);
    assert_eq!(
        queued(&transcript),
        ["desk@example.org", "catchall@example.org"]
    );
}

#[test]
fn a_domain_result_moves_the_recipient_and_expands_it_there() {
    let (_map, transcript) = expand(&["sales@old.example", "nobody@old.example"]);
    insta::assert_snapshot!(transcript);
    assert_eq!(
        queued(&transcript),
        [
            "jane@example.org",
            "archive@example.org",
            "bob@partner.example",
            "nobody@example.org"
        ]
    );
}

#[test]
fn a_recipient_without_an_entry_is_left_as_it_is() {
    let (_map, transcript) = expand(&["someone@example.org", "friend@example.net"]);
    insta::assert_snapshot!(transcript);
    // The other domain is not local and the client may not relay: the server refuses it.
    assert_eq!(queued(&transcript), ["someone@example.org"]);
}

#[test]
fn case_is_ignored_in_domains_and_local_parts() {
    let (_map, transcript) = expand(&["Sales@EXAMPLE.org"]);
    insta::assert_snapshot!(transcript);
}

#[test]
fn case_sensitive_matches_local_parts_exactly_but_never_domains() {
    let map = MapFile::new("Sales@example.org jane@example.org\n");
    let transcript = run(
        &map.section("case_sensitive = true"),
        &["Sales@EXAMPLE.ORG", "sales@example.org"],
    );
    insta::assert_snapshot!(transcript);
    assert_eq!(
        queued(&transcript),
        ["jane@example.org", "sales@example.org"]
    );
}

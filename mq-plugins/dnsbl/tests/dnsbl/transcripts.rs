//! Whole dialogues, snapshotted: what a listed and an unlisted client see.

use crate::support::{LISTED, Lists};

#[test]
fn a_listed_client_is_refused_at_connect() {
    let lists = Lists::start();
    lists.list("zen.example", LISTED);
    let transcript = lists.connect(r#"zones = ["zen.example"]"#);
    insta::assert_snapshot!(transcript);
}

#[test]
fn an_unlisted_client_is_greeted() {
    let lists = Lists::start();
    let transcript = lists.connect(r#"zones = ["zen.example", "bl.example"]"#);
    insta::assert_snapshot!(transcript);
    assert_eq!(lists.server.udp_queries(), 2, "both zones were asked");
}

#[test]
fn the_first_listing_zone_in_config_order_is_named() {
    let lists = Lists::start();
    lists
        .list("first.example", [127, 0, 0, 4])
        .list("second.example", LISTED);
    let transcript =
        lists.connect(r#"zones = ["clean.example", "first.example", "second.example"]"#);
    insta::assert_snapshot!(transcript);
}

#[test]
fn an_ipv6_client_is_asked_by_its_nibbles() {
    let lists = Lists::start();
    let name = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example";
    lists.server.add_a(name, LISTED.into());
    let transcript = lists
        .session(r#"zones = ["zen.example"]"#, "[2001:db8::1]:40000")
        .ehlo("client.example")
        .run();
    insta::assert_snapshot!(transcript);
}

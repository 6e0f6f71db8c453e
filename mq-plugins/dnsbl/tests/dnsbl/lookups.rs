//! What counts as listed, what does not, and what a slow or broken zone does.

use std::time::{Duration, Instant};

use crate::support::{CLIENT, CLIENT_NAME, LISTED, Lists};

const REFUSED: &str = "S: 554 5.7.1 Service unavailable";
const GREETED: &str = "S: 220 mq.test ESMTP mq";

/// How late the slow zone answers: never, within any test.
const NEVER: Duration = Duration::from_hours(1);

/// The lookup timeout of tests whose other zone must answer within it: a loopback answer takes
/// well under a millisecond, so two seconds hold however loaded the machine, and the tests wait
/// that long for the slow zone to be given up.
const PATIENT: &str = "lookup_timeout = \"2s\"";

fn greeted(transcript: &str) -> bool {
    transcript.contains(GREETED) && !transcript.contains(REFUSED)
}

#[test]
fn nxdomain_is_not_listed() {
    let lists = Lists::start();
    let transcript = lists.connect(r#"zones = ["zen.example"]"#);
    assert!(greeted(&transcript), "{transcript}");
    assert_eq!(lists.server.udp_queries(), 1);
}

#[test]
fn an_error_answer_is_not_listed() {
    let lists = Lists::start();
    lists.list("zen.example", [127, 255, 255, 254]);
    let transcript = lists.connect(r#"zones = ["zen.example"]"#);
    assert!(greeted(&transcript), "{transcript}");
}

#[test]
fn a_failing_zone_is_not_listed() {
    let lists = Lists::start();
    lists.list("zen.example", LISTED);
    lists.server.fail(&format!("{CLIENT_NAME}.zen.example"));
    let transcript = lists.connect(r#"zones = ["zen.example"]"#);
    assert!(greeted(&transcript), "{transcript}");
}

#[test]
fn an_answer_outside_the_configured_listed_is_not_listed() {
    let lists = Lists::start();
    lists.list("zen.example", [127, 0, 0, 10]);
    let section = "zones = [\"zen.example\"]\nlisted = [\"127.0.0.2\", \"127.0.0.4/31\"]";
    assert!(greeted(&lists.connect(section)));

    let lists = Lists::start();
    lists.list("zen.example", [127, 0, 0, 5]);
    assert!(lists.connect(section).contains(REFUSED));
}

#[test]
fn a_slow_zone_does_not_block_mail() {
    let lists = Lists::start();
    lists.list("slow.example", LISTED);
    let slow = format!("{CLIENT_NAME}.slow.example");
    lists.server.delay(&slow, NEVER);
    let section = format!("zones = [\"slow.example\", \"fast.example\"]\n{PATIENT}");
    let started = Instant::now();
    let transcript = lists.connect(&section);
    // Had the plugin waited for the slow zone, its answer would have refused the client.
    assert!(greeted(&transcript), "{transcript}");
    assert!(started.elapsed() < NEVER / 2);
    assert_eq!(lists.server.udp_queries(), 2, "the fast zone was asked too");
}

#[test]
fn a_slow_zone_does_not_hide_a_listing_in_another_zone() {
    let lists = Lists::start();
    lists
        .list("slow.example", LISTED)
        .list("fast.example", LISTED);
    let slow = format!("{CLIENT_NAME}.slow.example");
    lists.server.delay(&slow, NEVER);
    let section = format!("zones = [\"slow.example\", \"fast.example\"]\n{PATIENT}");
    let transcript = lists.connect(&section);
    let expected = format!(
        "{REFUSED}; client [{}] blocked using fast.example",
        CLIENT.trim_end_matches(":40000")
    );
    assert!(transcript.contains(&expected), "{transcript}");
}

#[test]
fn a_listing_in_an_earlier_zone_does_not_wait_for_a_slow_later_one() {
    let lists = Lists::start();
    lists
        .list("fast.example", LISTED)
        .list("slow.example", LISTED);
    let slow = format!("{CLIENT_NAME}.slow.example");
    lists.server.delay(&slow, NEVER);
    // Waiting for the slow zone would take the whole lookup timeout; the fast answer, a
    // loopback round trip, comes in far less than half of it however loaded the machine.
    let section = "zones = [\"fast.example\", \"slow.example\"]\nlookup_timeout = \"40s\"";
    let started = Instant::now();
    let transcript = lists.connect(section);
    assert!(
        transcript.contains("blocked using fast.example"),
        "{transcript}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the slow zone was waited for"
    );
}

#[test]
fn a_lookup_never_outlives_the_hooks_deadline() {
    let lists = Lists::start();
    lists.list("slow.example", LISTED);
    lists
        .server
        .delay(&format!("{CLIENT_NAME}.slow.example"), NEVER);
    // The engine's deadline (`timeout`) is shorter than the plugin's own lookup timeout.
    let section = "zones = [\"slow.example\"]\nlookup_timeout = \"10s\"";
    let transcript = lists.connect_with("timeout = \"300ms\"", section);
    assert!(greeted(&transcript), "{transcript}");
    assert!(
        transcript.contains("smtp_in_connect  dnsbl → Continue"),
        "{transcript}"
    );
}

#[test]
fn a_second_connection_from_the_same_address_asks_nothing_new() {
    let lists = Lists::start();
    lists.list("zen.example", [127, 0, 0, 4]);
    let section = r#"zones = ["clean.example", "zen.example"]"#;
    let first = lists.connect(section);
    assert!(first.contains(REFUSED), "{first}");
    let asked = lists.server.udp_queries();
    assert_eq!(asked, 2);

    let second = lists.connect(section);
    assert_eq!(second, first);
    assert_eq!(
        lists.server.udp_queries(),
        asked,
        "answers came from the cache"
    );
}

#[test]
fn loopback_allowed_and_relay_network_clients_are_not_asked() {
    let lists = Lists::start();
    lists.list("zen.example", LISTED);
    let section = r#"zones = ["zen.example"]"#;
    for client in ["127.0.0.1:40000", "[::1]:40000", "[::ffff:127.0.0.1]:40000"] {
        let transcript = lists.session(section, client).ehlo("c.example").run();
        assert!(greeted(&transcript.to_string()), "{client}: {transcript}");
    }
    let relay = lists
        .session(section, CLIENT)
        .relay_network()
        .ehlo("c.example");
    assert!(greeted(&relay.run().to_string()));
    let allowed = "zones = [\"zen.example\"]\nallow = [\"192.0.2.0/24\"]";
    let transcript = lists.session(allowed, CLIENT).ehlo("c.example").run();
    assert!(greeted(&transcript.to_string()), "{transcript}");
    assert_eq!(lists.server.udp_queries(), 0);
}

#[test]
fn an_empty_allow_list_asks_even_about_loopback() {
    let lists = Lists::start();
    lists.server.add_a("1.0.0.127.zen.example", LISTED.into());
    let section = "zones = [\"zen.example\"]\nallow = []";
    let transcript = lists.session(section, "127.0.0.1:40000").run().to_string();
    assert!(transcript.contains(REFUSED), "{transcript}");
}

#[test]
fn a_mapped_ipv4_client_is_asked_and_named_as_ipv4() {
    let lists = Lists::start();
    lists.list("zen.example", LISTED);
    let transcript = lists
        .session(r#"zones = ["zen.example"]"#, "[::ffff:192.0.2.1]:40000")
        .run()
        .to_string();
    let expected = format!("{REFUSED}; client [192.0.2.1] blocked using zen.example");
    assert!(transcript.contains(&expected), "{transcript}");
}

#[test]
fn without_zones_the_plugin_asks_nothing() {
    let lists = Lists::start();
    assert!(greeted(&lists.connect("")));
    assert!(greeted(&lists.connect("zones = []")));
    assert_eq!(lists.server.udp_queries(), 0);
}

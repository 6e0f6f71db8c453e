//! The memory backend through the testkit: dialogues with their replies, snapshotted.

use std::time::Duration;

use mq_core::testkit;
use mq_plugin_api::{AuthVerdict, Authenticate, Context, Control, Plugin, SharedState, hooks};

use crate::support::{Core, instance, limit, passed, registered, registration};

const MESSAGE: &str = "Subject: hi\r\n\r\nbody\r\n";

#[test]
fn the_third_message_over_a_rate_of_two_is_refused() {
    let transcript = testkit::session()
        .registered("ratelimit", &limit("sender_domain", 2, "1m"))
        .relay_network()
        .ehlo("client.example")
        .mail_from("a@example.org")
        .rcpt_to("b@example.net")
        .data(MESSAGE)
        .mail_from("c@Example.ORG")
        .rcpt_to("b@example.net")
        .data(MESSAGE)
        .mail_from("a@example.org")
        .quit()
        .run();
    insta::assert_snapshot!(transcript);
    assert_eq!(transcript.queued().len(), 2);
}

#[test]
fn each_sender_domain_has_its_own_bucket() {
    let transcript = testkit::session()
        .registered("ratelimit", &limit("sender_domain", 1, "1m"))
        .ehlo("client.example")
        .mail_from("a@one.example")
        .rset()
        .mail_from("a@two.example")
        .rset()
        .mail_from("")
        .rset()
        .mail_from("b@one.example")
        .run();
    insta::assert_snapshot!(transcript);
}

#[test]
fn each_recipient_domain_is_limited_at_rcpt() {
    let transcript = testkit::session()
        .registered("ratelimit", &limit("recipient_domain", 2, "1m"))
        .relay_network()
        .ehlo("client.example")
        .mail_from("a@example.org")
        .rcpt_to("b@example.net")
        .rcpt_to("c@example.net")
        .rcpt_to("d@EXAMPLE.net.")
        .rcpt_to("e@example.com")
        .data(MESSAGE)
        .run();
    insta::assert_snapshot!(transcript);
    assert_eq!(transcript.queued().len(), 3);
}

/// Accepts every login, standing in for an authentication plugin.
struct AcceptAll;

#[hooks]
impl Plugin for AcceptAll {
    async fn smtp_in_authenticate(&self, _ctx: &mut Context, event: &mut Authenticate) -> Control {
        event.verdict = AuthVerdict::Accept;
        Control::Continue
    }
}

#[test]
fn an_authenticated_user_is_limited_and_an_anonymous_one_is_not() {
    let section = limit("user", 1, "1m");
    let transcript = testkit::session()
        .plugin_named("auth", AcceptAll)
        .registered("ratelimit", &section)
        .ehlo("client.example")
        .starttls()
        .ehlo("client.example")
        .auth("jane", "secret")
        .mail_from("a@example.org")
        .rset()
        .mail_from("a@example.org")
        .run();
    insta::assert_snapshot!(transcript);

    let anonymous = testkit::session()
        .registered("ratelimit", &section)
        .ehlo("client.example")
        .mail_from("a@example.org")
        .rset()
        .mail_from("a@example.org")
        .run();
    assert!(!anonymous.to_string().contains("451"), "{anonymous}");
}

#[test]
fn a_client_over_its_connection_rate_gets_421_at_connect() {
    // Three connections, each a session of its own, to one process (one SharedState).
    let (shared, section) = (SharedState::default(), limit("client_ip", 2, "1m"));
    let session = || {
        testkit::session()
            .plugin(instance(&section, 0, &shared))
            .ehlo("client.example")
            .quit()
            .run()
    };
    let (first, second, third) = (session(), session(), session());
    assert!(first.to_string().contains("220 mq.test"), "{first}");
    assert!(second.to_string().contains("220 mq.test"), "{second}");
    insta::assert_snapshot!(third);
    let other = testkit::session()
        .plugin(instance(&section, 0, &shared))
        .client("[2001:db8::1]:4000".parse().unwrap())
        .run();
    assert!(other.to_string().contains("220 mq.test"), "{other}");
}

#[test]
fn an_ipv4_client_seen_through_ipv6_shares_its_bucket() {
    let (core, shared) = (Core::new(), SharedState::default());
    let plugin = instance(&limit("client_ip", 1, "1m"), 0, &shared);
    assert_eq!(core.connect(&plugin, "192.0.2.7:1000"), None);
    let reply = core
        .connect(&plugin, "[::ffff:192.0.2.7]:1001")
        .expect("refused");
    assert_eq!(
        reply.to_string(),
        "421 4.7.1 Error: too many connections from 192.0.2.7; try again later"
    );
}

#[test]
fn ipv6_clients_of_one_network_share_a_bucket() {
    let (core, shared) = (Core::new(), SharedState::default());
    let plugin = instance(&limit("client_ip", 1, "1m"), 0, &shared);
    assert_eq!(core.connect(&plugin, "[2001:db8:1:2::1]:1000"), None);
    let reply = core
        .connect(&plugin, "[2001:db8:1:2:ffff::7]:1001")
        .expect("refused");
    assert_eq!(
        reply.to_string(),
        "421 4.7.1 Error: too many connections from 2001:db8:1:2::/64; try again later"
    );
    assert_eq!(core.connect(&plugin, "[2001:db8:1:3::1]:1002"), None);
}

#[test]
fn the_ipv6_prefix_of_a_client_bucket_is_configurable() {
    let (core, shared) = (Core::new(), SharedState::default());
    let section = format!("ipv6_prefix = 128\n{}", limit("client_ip", 1, "1m"));
    let plugin = instance(&section, 0, &shared);
    assert_eq!(core.connect(&plugin, "[2001:db8:1:2::1]:1000"), None);
    assert_eq!(core.connect(&plugin, "[2001:db8:1:2::2]:1001"), None);
    let reply = core
        .connect(&plugin, "[2001:db8:1:2::2]:1002")
        .expect("refused");
    assert!(
        reply.to_string().contains("from 2001:db8:1:2::2/128;"),
        "{reply}"
    );
}

#[test]
fn the_bucket_refills_after_its_period() {
    let (core, shared) = (Core::new(), SharedState::default());
    let plugin = instance(&limit("sender_domain", 1, "1s"), 0, &shared);
    let now = [
        core.mail_from(&plugin, "a@example.org"),
        core.mail_from(&plugin, "a@example.org"),
    ];
    // The two calls are microseconds apart: only a test thread kept off the CPU for the whole
    // period could see the bucket refill between them. Waiting longer than the period only
    // makes the refill surer.
    assert_eq!(passed(&now), [true, false]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(core.mail_from(&plugin, "a@example.org"), None);
}

#[test]
fn several_limits_on_one_key_all_apply() {
    let section = limit("sender_domain", 3, "1m") + &limit("sender_domain", 1, "1s");
    let (core, shared) = (Core::new(), SharedState::default());
    let plugin = instance(&section, 0, &shared);
    let replies: Vec<_> = (0..2)
        .map(|_| core.mail_from(&plugin, "a@example.org"))
        .collect();
    assert_eq!(passed(&replies), [true, false]);
}

#[test]
fn an_empty_section_limits_nothing() {
    let (core, shared) = (Core::new(), SharedState::default());
    let plugin = registered("", 0, &shared);
    for _ in 0..100 {
        assert_eq!(core.mail_from(plugin.as_ref(), "a@example.org"), None);
        assert_eq!(core.rcpt_to(plugin.as_ref(), "b@example.net"), None);
        assert_eq!(core.connect(plugin.as_ref(), "192.0.2.1:1"), None);
    }
}

#[test]
fn the_factory_refuses_a_bad_section_naming_the_plugin_once() {
    let shared = SharedState::default();
    for (section, problem) in [
        (
            "[[limit]]\nkey = \"user\"\nrate = 1\nper = \"1m\"\nburst = 0",
            "limit 1 (user): burst must be at least 1",
        ),
        (
            "[[limit]]\nkey = \"helo\"\nrate = 1\nper = \"1m\"",
            "unknown variant `helo`",
        ),
        ("redis_ur = \"redis://x/\"", "unknown field `redis_ur`"),
        ("redis_url = \"rediss://x/\"", "redis_url: "),
    ] {
        let error = registration()
            .build(&crate::support::config(section, 0, &shared))
            .err()
            .expect("the section is refused");
        let error = error.to_string();
        assert!(
            error.starts_with("plugin \"ratelimit\": invalid config: "),
            "{error}"
        );
        assert_eq!(error.matches("ratelimit").count(), 1, "{error}");
        assert!(error.contains(problem), "{error}");
    }
}

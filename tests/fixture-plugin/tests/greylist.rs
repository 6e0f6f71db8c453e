//! The greylisting example through the testkit's server: two sessions against the same plugin
//! instance, five virtual minutes apart.

use std::time::Duration;

use mq_core::testkit;
use mq_plugin_fixture as _;

#[test]
fn a_retry_after_the_delay_is_accepted() {
    let server = testkit::server()
        .registered("greylist", r#"delay = "5m""#)
        .start();
    let attempt = || {
        let session = server.session().relay_network().ehlo("client.example");
        let session = session.mail_from("a@example.org").rcpt_to("b@example.net");
        session.data("Subject: hi\r\n\r\nhello\r\n").quit().run()
    };
    let first = attempt();
    server.advance(Duration::from_secs(299));
    let early = attempt();
    server.advance(Duration::from_secs(1));
    let retry = attempt();
    insta::assert_snapshot!(format!(
        "{first}-- 299 s later --\n{early}-- 1 s later --\n{retry}"
    ));
    assert_eq!(retry.queued().len(), 1);
}

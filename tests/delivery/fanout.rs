//! What one attempt may use: an MX answer of thousands of hosts (too large for UDP, asked
//! again over TCP) gets a few of them looked up and at most two sessions opened; an attempt
//! whose servers never answer ends at `attempt_timeout`.

use std::time::Duration;

use mq_core::testkit::sink::{Script, Sink};

use crate::paced::{Pace, Paced};
use crate::support::{Harness, message};

/// MX records in the answer: far more than fit a UDP response.
const HOSTS: usize = 2_000;

#[test]
fn an_mx_answer_of_thousands_of_hosts_costs_one_attempt_a_few_queries_and_two_sessions() {
    let busy = Paced::start(Pace::default().greeting("421 4.3.2 Busy, try later"));
    let harness = Harness::started(|o| {
        o.delivery.mx_port = busy.address().port();
        // One attempt only: the next is ten minutes away.
        o.delivery.retry.schedule = vec![Duration::from_mins(10)];
    });
    for n in 0..HOSTS {
        let host = format!("mx{n}.fan.test");
        harness
            .dns
            .add_mx("fan.test", 10, &host)
            .add_a(&host, [127, 0, 0, 1].into());
    }
    let id = harness.send("alice@local.test", &["bob@fan.test"], &message("to many"));

    harness.wait_for("the deferral", || {
        let entries = harness.entries_of(id);
        !entries.is_empty() && entries.iter().all(|e| e.attempts == 1)
    });
    assert!(
        harness.dns.tcp_queries() >= 1,
        "the MX answer came over TCP"
    );
    let queries = harness.dns.udp_queries() + harness.dns.tcp_queries();
    // The MX question over UDP then TCP, and A and AAAA for each of the five addresses'
    // hosts (mx_address_limit).
    assert!(queries <= 2 + 2 * 5, "{queries} dns queries");
    assert_eq!(busy.connections(), 2, "mx_session_limit sessions");
    let entry = &harness.entries_of(id)[0];
    let error = entry.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("421"), "{error}");
}

#[test]
fn an_attempt_whose_servers_never_greet_ends_at_the_attempt_timeout() {
    let silent = Sink::start(Script::new().silent());
    let harness = Harness::started(|o| {
        o.delivery.mx_port = silent.address().port();
        o.delivery.retry.schedule = vec![Duration::from_mins(10)];
        o.delivery.timeouts.greeting = Duration::from_hours(1);
        o.delivery.attempt_timeout = Duration::from_secs(1);
    });
    harness
        .dns
        .add_mx("silent.test", 10, "mx.silent.test")
        .add_a("mx.silent.test", [127, 0, 0, 1].into());
    let id = harness.send("alice@local.test", &["bob@silent.test"], &message("hello?"));

    harness.wait_for("the deferral", || {
        let entries = harness.entries_of(id);
        !entries.is_empty() && entries.iter().all(|e| e.attempts == 1)
    });
    let entry = &harness.entries_of(id)[0];
    let error = entry.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("attempt_timeout"), "{error}");
    assert_eq!(silent.connections(), 1);
}

//! Events through the hook and the sender task to a server on loopback: what arrives, when the
//! server is down, slow or failing, and when the queue is full.

use std::net::TcpListener;

use crate::support::{Core, Server, closed_address, event, url, webhook};

/// Quick retries so that a test waits milliseconds, with attempts to spare.
fn section(url: &str, extra: &str) -> String {
    format!("url = \"{url}\"\nretry = [\"10ms\"]\nmax_attempts = 1000\n{extra}")
}

#[test]
fn posts_each_result_as_json_with_the_configured_headers() {
    let server = Server::start();
    let headers = "headers = { Authorization = \"Bearer x\" }";
    let plugin = webhook(&section(&server.url(), headers));
    let mut core = Core::started(&plugin);
    core.report(&plugin, &event(1));
    core.run_until("the POST", || plugin.counters().sent() == 1);

    let request = &server.requests()[0];
    let head = request.head.replace("\r\n", "\n");
    let head = head.replace(&server.address().port().to_string(), "[port]");
    // The body as sent, its time redacted: `"time":"2025-01-02T03:04:05.678Z"}`.
    let (body, time) = request
        .body
        .split_once("\"time\":\"")
        .expect("a time field");
    assert!(
        time.len() == 26 && time.ends_with("Z\"}") && time.as_bytes()[10] == b'T',
        "{time}"
    );
    let body = format!("{body}\"time\":\"[time]\"}}");
    let request = format!("{head}{body}");
    insta::assert_snapshot!(request);
}

#[test]
fn the_hook_returns_at_once_while_the_server_is_down() {
    let plugin = webhook(&section(&url(closed_address()), ""));
    let mut core = Core::started(&plugin);
    for n in 1..=3 {
        // `report` fails the test unless the call finished on its first poll, with Continue.
        core.report(&plugin, &event(n));
    }
    core.run_until("failed attempts", || plugin.counters().retried() >= 3);
    core.report(&plugin, &event(4));
    assert_eq!(plugin.counters().sent(), 0);
}

#[test]
fn events_sent_while_the_server_is_down_arrive_in_order_once_it_is_back() {
    let address = closed_address();
    let plugin = webhook(&section(&url(address), ""));
    let mut core = Core::started(&plugin);
    for n in 1..=3 {
        core.report(&plugin, &event(n));
    }
    core.run_until("failed attempts", || plugin.counters().retried() >= 3);
    assert_eq!(plugin.counters().sent(), 0);

    let server = Server::start_on(address);
    core.run_until("the three POSTs", || plugin.counters().sent() == 3);
    assert_eq!(server.queue_ids(), ["Q1", "Q2", "Q3"]);
    assert_eq!(
        (plugin.counters().failed(), plugin.counters().dropped()),
        (0, 0)
    );
}

#[test]
fn a_500_answer_is_retried_until_the_server_takes_the_event() {
    let server = Server::start();
    server.answer_first(&[500, 503]);
    let plugin = webhook(&section(&server.url(), ""));
    let mut core = Core::started(&plugin);
    core.report(&plugin, &event(1));
    core.report(&plugin, &event(2));
    core.run_until("both events taken", || plugin.counters().sent() == 2);
    // Q1 twice refused, then taken; Q2 waited its turn.
    assert_eq!(server.queue_ids(), ["Q1", "Q1", "Q1", "Q2"]);
    assert_eq!(plugin.counters().retried(), 2);
}

#[test]
fn an_event_is_given_up_after_max_attempts_and_counted() {
    let server = Server::start();
    server.answer_first(&[500, 500, 500]);
    let plugin = webhook(&format!(
        "url = \"{}\"\nretry = [\"10ms\"]\nmax_attempts = 3",
        server.url()
    ));
    let mut core = Core::started(&plugin);
    core.report(&plugin, &event(1));
    core.report(&plugin, &event(2));
    core.run_until("Q1 given up and Q2 sent", || plugin.counters().sent() == 1);
    assert_eq!(server.queue_ids(), ["Q1", "Q1", "Q1", "Q2"]);
    let counters = plugin.counters();
    assert_eq!(
        (counters.failed(), counters.retried(), counters.sent()),
        (1, 2, 1)
    );
}

#[test]
fn a_server_that_never_answers_times_out_and_is_retried() {
    // Bound but never accepting: connections complete in the backlog and hear nothing.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let plugin = webhook(&format!(
        "url = \"{}\"\nrequest_timeout = \"50ms\"\nretry = [\"10ms\"]\nmax_attempts = 2",
        url(address)
    ));
    let mut core = Core::started(&plugin);
    core.report(&plugin, &event(1));
    core.run_until("the event given up", || plugin.counters().failed() == 1);
    assert_eq!(
        (plugin.counters().retried(), plugin.counters().sent()),
        (1, 0)
    );
}

#[test]
fn a_full_queue_drops_new_events_and_counts_them() {
    let address = closed_address();
    let plugin = webhook(&section(&url(address), "queue_size = 2"));
    let mut core = Core::started(&plugin);
    // The sender task has not run yet: the first two fill the queue, the rest are dropped.
    for n in 1..=5 {
        core.report(&plugin, &event(n));
    }
    assert_eq!(plugin.counters().dropped(), 3);

    let server = Server::start_on(address);
    core.run_until("the queued events", || plugin.counters().sent() == 2);
    assert_eq!(server.queue_ids(), ["Q1", "Q2"]);
}

#[test]
fn events_before_start_wait_in_the_queue_and_stop_lets_the_task_send_them_then_end() {
    let server = Server::start();
    let plugin = webhook(&section(&server.url(), ""));
    let mut core = Core::new();
    core.report(&plugin, &event(1));
    core.start(&plugin);
    core.report(&plugin, &event(2));
    core.stop(&plugin);
    // Closed: an event after `stop` is dropped and counted.
    core.report(&plugin, &event(3));
    assert_eq!(plugin.counters().dropped(), 1);
    core.run_until("the queue sent and the task ended", || core.is_idle());
    assert_eq!(server.queue_ids(), ["Q1", "Q2"]);
    assert_eq!(plugin.counters().sent(), 2);
}

#[test]
fn a_section_without_url_sends_nothing() {
    let server = Server::start();
    let silent = webhook("");
    let configured = webhook(&section(&server.url(), ""));
    let mut core = Core::started(&silent);
    core.report(&silent, &event(1));
    // Sending takes a sender task on the core, which a section with a URL starts in `start`
    // (below); without one, no task exists that could send Q1, now or later.
    assert!(core.is_idle(), "the section without url started a task");
    core.start(&configured);
    core.report(&configured, &event(2));
    assert!(
        !core.is_idle(),
        "a section with a url starts its sender task"
    );
    core.run_until("Q2 taken", || configured.counters().sent() == 1);
    assert_eq!(server.queue_ids(), ["Q2"]);
    let counters = silent.counters();
    assert_eq!(
        (
            counters.sent(),
            counters.retried(),
            counters.failed(),
            counters.dropped()
        ),
        (0, 0, 0, 0)
    );
}

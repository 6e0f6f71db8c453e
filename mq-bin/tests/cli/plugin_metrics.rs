//! The metrics plugins declare, on the admin port's `/metrics` of a running `mq serve`, after
//! traffic that moves them: webhook's events, ratelimit's refusals, dnsbl's listings and
//! failed lookups.

use std::time::{Duration, Instant};

use mq_core::dns::TestServer;

use crate::support::{PATIENCE, Scratch, free_port, http_get, smtp};

/// Scrapes `/metrics` until it has every line of `samples`, at most [`PATIENCE`]: a counter
/// moves a moment after the reply or the POST that the test saw.
fn wait_for_samples(scratch: &Scratch, samples: &[&str]) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, page) = http_get(scratch.admin, "/metrics");
        assert_eq!(status, 200);
        if samples.iter().all(|s| page.lines().any(|line| line == *s)) {
            return page;
        }
        assert!(Instant::now() < deadline, "{samples:#?} not all in\n{page}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(all(feature = "webhook", feature = "ratelimit"))]
#[test]
fn webhook_and_ratelimit_counts_show_on_the_metrics_page_with_a_plugin_label() {
    let sink = crate::event_sink::EventSink::start();
    let scratch = Scratch::new();
    let text = format!(
        "[smtp]\nlisten = \"127.0.0.1:0\"\n\n[queue]\ndata_dir = '{}'\nfsync = false\n\n\
         [admin]\nlisten = \"{}\"\n\n[delivery]\nsmarthost = \"{}\"\n\n\
         [plugins.webhook]\nurl = \"{}\"\n\n\
         [[plugins.ratelimit.limit]]\nkey = \"sender_domain\"\nrate = 1\nper = \"1h\"\n",
        scratch.path().join("data").display(),
        scratch.admin,
        free_port(),
        sink.url(),
    );
    std::fs::write(&scratch.config, text).expect("the config is written");
    let server = scratch.serve();
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<user>",
            "DATA",
            "",
            "hi",
            ".",
            "MAIL FROM:<bob@example.org>",
            "QUIT",
        ],
    );
    assert!(replies[5].starts_with("250 2.0.0 Ok"), "{replies:?}");
    assert!(replies[6].starts_with("451 4.7.1 "), "{replies:?}");
    sink.wait_for(1);

    let page = wait_for_samples(
        &scratch,
        &[
            "mq_plugin_webhook_sent_total{plugin=\"webhook\"} 1",
            "mq_plugin_webhook_dropped_total{plugin=\"webhook\"} 0",
            "mq_plugin_webhook_failed_total{plugin=\"webhook\"} 0",
            "mq_plugin_webhook_retried_total{plugin=\"webhook\"} 0",
            "mq_plugin_ratelimit_refused_total{plugin=\"ratelimit\",limit=\"1\",key=\"sender_domain\"} 1",
        ],
    );
    assert!(
        page.contains("# TYPE mq_plugin_webhook_sent_total counter\n"),
        "{page}"
    );
    server.terminate().assert_success();
}

#[cfg(feature = "dnsbl")]
#[test]
fn dnsbl_listings_and_failed_lookups_show_by_zone_on_the_metrics_page() {
    let dns = TestServer::start();
    dns.fail("1.0.0.127.broken.test");
    dns.add_a("1.0.0.127.listed.test", [127, 0, 0, 2].into());
    let scratch = Scratch::new();
    // Loopback clients are neither a relay network nor allowed here: dnsbl exempts those.
    let text = format!(
        "[smtp]\nlisten = \"127.0.0.1:0\"\nrelay_networks = []\n\n\
         [queue]\ndata_dir = '{}'\nfsync = false\n\n[admin]\nlisten = \"{}\"\n\n\
         [delivery]\nenabled = false\n\n[dns]\nnameservers = [\"{}\"]\n\n\
         [plugins.dnsbl]\nzones = [\"broken.test\", \"listed.test\"]\nallow = []\n",
        scratch.path().join("data").display(),
        scratch.admin,
        dns.address(),
    );
    std::fs::write(&scratch.config, text).expect("the config is written");
    let server = scratch.serve();
    let greeting = smtp(server.smtp(), &[]);
    assert!(greeting[0].starts_with("554 5.7.1 "), "{greeting:?}");

    wait_for_samples(
        &scratch,
        &[
            "mq_plugin_dnsbl_listed_total{plugin=\"dnsbl\",zone=\"listed.test\"} 1",
            "mq_plugin_dnsbl_lookup_failures_total{plugin=\"dnsbl\",zone=\"broken.test\"} 1",
        ],
    );
    server.terminate().assert_success();
}

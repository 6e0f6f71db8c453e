//! mq's configuration file on any text: a config or an error, never a panic. A config that is
//! accepted passes its own validation, runs at least one worker, and every timeout in it can
//! be set from now (a deadline that overflows the clock would panic at the first use).
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use mq_core::Config;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    assert!(config.validate().is_ok());
    assert!(config.engine.worker_count() >= 1);
    let timeouts: [(&str, Duration); 9] = [
        ("engine.timeout", config.engine.timeout),
        ("engine.slow_poll", config.engine.slow_poll),
        ("engine.shutdown_timeout", config.engine.shutdown_timeout),
        ("smtp.command_timeout", config.smtp.command_timeout),
        ("smtp.data_timeout", config.smtp.data_timeout),
        ("smtp.failure_window", config.smtp.auth.failure_window),
        ("delivery.attempt_timeout", config.delivery.attempt_timeout),
        ("delivery.retry.max_age", config.delivery.retry.max_age),
        ("dns.timeout", config.dns.timeout),
    ];
    let now = Instant::now();
    for (key, timeout) in timeouts {
        assert!(now.checked_add(timeout).is_some(), "{key} = {timeout:?}");
    }
    let later = SystemTime::now();
    for delay in &config.delivery.retry.schedule {
        assert!(later.checked_add(*delay).is_some(), "retry after {delay:?}");
    }
});

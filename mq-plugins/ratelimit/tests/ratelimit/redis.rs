//! The Redis backend against the real server on 127.0.0.1:6379: the limit holds across
//! processes, sessions of one core share its connection, and an unreachable Redis lets mail
//! through. Each test uses a key prefix of its own. The tests that need the server are ignored
//! by default (`cargo test -- --ignored` runs them, as CI does); without Redis they fail under
//! `MQ_TEST_SERVICES=required` and otherwise say why and pass.

use std::rc::Rc;
use std::time::{Duration, Instant};

use mq_plugin_api::{Address, Context, Control, Event, MailFrom, Plugin, SharedState};

use crate::support::{
    Core, instance, limit, passed, redis_available, redis_section, registered, unique_prefix,
};

#[test]
#[ignore = "needs redis at 127.0.0.1:6379"]
fn the_limit_holds_across_processes_sharing_redis() {
    if !redis_available("the_limit_holds_across_processes_sharing_redis") {
        return;
    }
    let section = redis_section(
        &unique_prefix("processes"),
        &limit("sender_domain", 3, "1m"),
    );
    // Two processes: separate SharedStates, so nothing is shared but Redis.
    let one = registered(&section, 0, &SharedState::default());
    let two = registered(&section, 0, &SharedState::default());
    let (core_one, core_two) = (Core::new(), Core::new());
    let replies = [
        core_one.mail_from(one.as_ref(), "a@example.org"),
        core_two.mail_from(two.as_ref(), "a@example.org"),
        core_one.mail_from(one.as_ref(), "a@example.org"),
        core_two.mail_from(two.as_ref(), "a@example.org"),
        core_one.mail_from(one.as_ref(), "a@example.org"),
        core_two.mail_from(two.as_ref(), "b@example.com"),
    ];
    assert_eq!(passed(&replies), [true, true, true, false, false, true]);
    assert_eq!(
        replies[3].as_ref().unwrap().to_string(),
        "451 4.7.1 Error: too many messages from example.org; try again later"
    );
}

#[test]
#[ignore = "needs redis at 127.0.0.1:6379"]
fn sessions_on_one_core_share_its_connection() {
    if !redis_available("sessions_on_one_core_share_its_connection") {
        return;
    }
    let section = redis_section(&unique_prefix("sessions"), &limit("sender_domain", 5, "1h"));
    let plugin = Rc::new(instance(&section, 0, &SharedState::default()));
    let core = Core::new();
    // Twenty sessions at once: the first finds no connection and makes it, the others wait for
    // it and then share it, their commands pipelined.
    let sessions: Vec<_> = (0..20)
        .map(|_| {
            let (plugin, mut ctx) = (Rc::clone(&plugin), core.context());
            core.executor().spawn(async move {
                let mut event = MailFrom::new("a@example.org".parse::<Address>().unwrap());
                let control = plugin.smtp_in_mail_from(&mut ctx, &mut event).await;
                (control, event.reply().is_none())
            })
        })
        .collect();
    let outcomes = core.run(async {
        let mut outcomes = Vec::new();
        for session in sessions {
            outcomes.push(session.await);
        }
        outcomes
    });
    let allowed = outcomes.iter().filter(|(_, passed)| *passed).count();
    assert_eq!(allowed, 5, "{outcomes:?}");
    let refused = outcomes
        .iter()
        .filter(|(control, _)| *control == Control::Complete);
    assert_eq!(refused.count(), 15);
}

#[test]
#[ignore = "needs redis at 127.0.0.1:6379"]
fn the_bucket_refills_on_redis_time() {
    if !redis_available("the_bucket_refills_on_redis_time") {
        return;
    }
    let section = redis_section(
        &unique_prefix("refill"),
        &limit("recipient_domain", 1, "1s"),
    );
    let (core, plugin) = (Core::new(), instance(&section, 0, &SharedState::default()));
    let now = [
        core.rcpt_to(&plugin, "b@example.net"),
        core.rcpt_to(&plugin, "b@example.net"),
    ];
    // The two calls are microseconds apart: only a test thread kept off the CPU for the whole
    // period could see the bucket refill between them. Waiting longer than the period only
    // makes the refill surer.
    assert_eq!(passed(&now), [true, false]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(core.rcpt_to(&plugin, "b@example.net"), None);
}

#[test]
fn an_unreachable_redis_lets_mail_through() {
    // Port 1 on loopback: nothing listens, so connecting is refused at once.
    let section = "backend = \"redis\"\nredis_url = \"redis://127.0.0.1:1/\"\n".to_owned()
        + &limit("sender_domain", 1, "1m");
    let (core, plugin) = (Core::new(), instance(&section, 0, &SharedState::default()));
    let started = Instant::now();
    for _ in 0..3 {
        let mut event = MailFrom::new("a@example.org".parse::<Address>().unwrap());
        let mut ctx = core.context();
        let control = core.run(plugin.smtp_in_mail_from(&mut ctx, &mut event));
        assert_eq!((control, event.reply()), (Control::Continue, None));
    }
    // Bounded by redis_timeout (1s) for the one attempt; the calls after it do not retry.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_silent_redis_is_given_up_after_redis_timeout() {
    // A listener that accepts and never answers: the check gives up within redis_timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let section = format!(
        "backend = \"redis\"\nredis_url = \"redis://{}/\"\nredis_timeout = \"100ms\"\n{}",
        silent.local_addr().unwrap(),
        limit("sender_domain", 1, "1m")
    );
    let (core, plugin) = (Core::new(), instance(&section, 0, &SharedState::default()));
    let mut ctx: Context = core.context();
    let mut event = MailFrom::new("a@example.org".parse::<Address>().unwrap());
    let started = Instant::now();
    let control = core.run(plugin.smtp_in_mail_from(&mut ctx, &mut event));
    assert_eq!((control, event.reply()), (Control::Continue, None));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

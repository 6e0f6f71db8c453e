//! The seed's chain rules: which plugins a step's chain calls and in what order, and what each
//! [`Control`] and a reply do to the rest of the chain.

use std::cell::Cell;
use std::rc::Rc;

use mq_core::{EngineConfig, Failure, FailureKind, Outcome};
use mq_plugin_api::{Context, Control, Data, Event, HookId, MailFrom, Plugin, Reply, hooks};
use mq_tests::{
    Log, MESSAGE, Recorder, data, engine, engine_with, entries, header_values, loaded, mail_from,
    new_log, run_chain,
};

/// Implements `smtp_in_mail_from` only, logging its name there.
struct SenderRecorder {
    name: &'static str,
    log: Log,
}

#[hooks]
impl Plugin for SenderRecorder {
    async fn smtp_in_mail_from(&self, _ctx: &mut Context, _event: &mut MailFrom) -> Control {
        self.log
            .borrow_mut()
            .push(format!("{} mail_from", self.name));
        Control::Continue
    }
}

/// Appends `X-Pass` at each call, logging how many `X-Pass` fields it found first.
struct Stamper {
    log: Log,
}

#[hooks]
impl Plugin for Stamper {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        let seen = header_values(data, "X-Pass");
        self.log
            .borrow_mut()
            .push(format!("A saw {}", seen.join(",")));
        data.message
            .headers_mut()
            .append("X-Pass", (seen.len() + 1).to_string());
        Control::Continue
    }
}

/// Asks for a retry at its first call only.
struct RetryOnce {
    log: Log,
    calls: Cell<u32>,
}

#[hooks]
impl Plugin for RetryOnce {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == 1 {
            self.log.borrow_mut().push("B retry".to_owned());
            Control::Retry
        } else {
            self.log.borrow_mut().push("B continue".to_owned());
            Control::Continue
        }
    }
}

/// Asks for a retry at every call.
struct Looper;

#[hooks]
impl Plugin for Looper {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        Control::Retry
    }
}

/// Logs the `X-A` fields it finds.
struct Witness {
    log: Log,
}

#[hooks]
impl Plugin for Witness {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        let seen = header_values(data, "X-A");
        self.log
            .borrow_mut()
            .push(format!("C saw X-A: {}", seen.join(",")));
        Control::Continue
    }
}

#[test]
fn the_data_chain_calls_the_plugins_that_implement_it_in_name_order_and_skips_the_others() {
    let log = new_log();
    // Loaded out of order on purpose: the engine sorts by name.
    let engine = engine(vec![
        loaded("C", Recorder::new("C", &log)),
        loaded(
            "B",
            SenderRecorder {
                name: "B",
                log: Rc::clone(&log),
            },
        ),
        loaded("A", Recorder::new("A", &log)),
    ]);

    assert_eq!(
        engine.chain(HookId::SmtpInData).collect::<Vec<_>>(),
        ["A", "C"]
    );
    assert_eq!(
        engine.chain(HookId::SmtpInMailFrom).collect::<Vec<_>>(),
        ["B"]
    );
    assert_eq!(engine.plugin_names().collect::<Vec<_>>(), ["A", "B", "C"]);

    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["A", "C"]);

    let mut event = mail_from("sender@example.org");
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["A", "C", "B mail_from"]);
}

#[test]
fn a_hook_nobody_implements_has_an_empty_chain_and_proceeds() {
    let log = new_log();
    let engine = engine(vec![loaded("A", Recorder::new("A", &log))]);

    assert_eq!(engine.chain(HookId::SmtpInMailFrom).count(), 0);
    let mut event = mail_from("sender@example.org");
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert!(entries(&log).is_empty(), "{:?}", entries(&log));
}

#[test]
fn continue_calls_the_next_plugin_and_the_step_proceeds_after_the_last() {
    let log = new_log();
    let engine = engine(vec![
        loaded("a", Recorder::new("a", &log)),
        loaded("b", Recorder::new("b", &log)),
        loaded("c", Recorder::new("c", &log)),
    ]);

    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["a", "b", "c"]);
    let metrics = engine.metrics();
    for name in ["a", "b", "c"] {
        let counters = metrics.get(name, HookId::SmtpInData).expect("in the chain");
        assert_eq!((counters.continues, counters.calls()), (1, 1), "{name}");
    }
}

#[test]
fn complete_skips_the_rest_of_the_chain_and_the_step_proceeds() {
    let log = new_log();
    let engine = engine(vec![
        loaded("a", Recorder::new("a", &log)),
        loaded("b", Recorder::new("b", &log).returning(Control::Complete)),
        loaded("c", Recorder::new("c", &log)),
    ]);

    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["a", "b"]);
    let metrics = engine.metrics();
    let b = metrics
        .get("b", HookId::SmtpInData)
        .expect("b is in the chain");
    assert_eq!(b.completes, 1);
    let c = metrics
        .get("c", HookId::SmtpInData)
        .expect("c is in the chain");
    assert_eq!(c.calls(), 0);
}

#[test]
fn retry_reruns_earlier_plugins_which_see_the_message_again_with_their_changes() {
    let log = new_log();
    let engine = engine(vec![
        loaded(
            "A",
            Stamper {
                log: Rc::clone(&log),
            },
        ),
        loaded(
            "B",
            RetryOnce {
                log: Rc::clone(&log),
                calls: Cell::new(0),
            },
        ),
    ]);

    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    // A ran twice, and the second time found the field it added the first time.
    assert_eq!(
        entries(&log),
        ["A saw ", "B retry", "A saw 1", "B continue"]
    );
    assert_eq!(header_values(&event, "X-Pass"), ["1", "2"]);
    let metrics = engine.metrics();
    let a = metrics
        .get("A", HookId::SmtpInData)
        .expect("A is in the chain");
    let b = metrics
        .get("B", HookId::SmtpInData)
        .expect("B is in the chain");
    assert_eq!(a.continues, 2);
    assert_eq!((b.retries, b.continues), (1, 1));
}

#[test]
fn a_plugin_that_always_retries_is_stopped_by_the_retry_budget_and_named() {
    let log = new_log();
    let mut config = EngineConfig::default();
    config.retry_budget = 3;
    let engine = engine_with(
        &config,
        vec![
            loaded("first", Recorder::new("first", &log)),
            loaded("looper", Looper),
        ],
    );

    let mut event = data(MESSAGE);
    let outcome = run_chain(&engine, &mut event);
    let expected = Failure {
        plugin: "looper",
        hook: HookId::SmtpInData,
        kind: FailureKind::RetryBudget(3),
        permanent: false,
    };
    assert_eq!(outcome, Outcome::Failed(expected.clone()));
    assert_eq!(expected.reply().code(), 451);
    // The first run and three restarts: four calls of each plugin.
    assert_eq!(entries(&log), ["first"; 4]);
    let metrics = engine.metrics();
    let looper = metrics
        .get("looper", HookId::SmtpInData)
        .expect("in the chain");
    assert_eq!(looper.retries, 4);
}

#[test]
fn a_reply_ends_the_chain_and_the_step_is_rejected_with_it() {
    let log = new_log();
    let reply = Reply::new(554, "5.7.1", "Message refused by policy");
    let engine = engine(vec![
        loaded("a", Recorder::new("a", &log)),
        loaded("b", Recorder::new("b", &log).rejecting(reply.clone())),
        loaded("c", Recorder::new("c", &log)),
    ]);

    let mut event = data(MESSAGE);
    let outcome = run_chain(&engine, &mut event);
    assert_eq!(outcome, Outcome::Rejected { plugin: "b", reply });
    assert_eq!(entries(&log), ["a", "b"]);
    let metrics = engine.metrics();
    let b = metrics
        .get("b", HookId::SmtpInData)
        .expect("b is in the chain");
    assert_eq!(b.rejects, 1);
    let c = metrics
        .get("c", HookId::SmtpInData)
        .expect("c is in the chain");
    assert_eq!(c.calls(), 0);
}

#[test]
fn a_reply_ends_the_chain_even_when_its_plugin_asked_for_a_retry() {
    let log = new_log();
    let reply = Reply::new(550, "5.7.1", "No");
    let engine = engine(vec![
        loaded("a", Recorder::new("a", &log)),
        loaded(
            "b",
            Recorder::new("b", &log)
                .rejecting(reply.clone())
                .returning(Control::Retry),
        ),
    ]);

    let mut event = data(MESSAGE);
    assert_eq!(
        run_chain(&engine, &mut event),
        Outcome::Rejected { plugin: "b", reply }
    );
    assert_eq!(entries(&log), ["a", "b"]);
}

#[test]
fn later_plugins_see_earlier_plugins_changes() {
    let log = new_log();
    let engine = engine(vec![
        loaded(
            "C",
            Witness {
                log: Rc::clone(&log),
            },
        ),
        loaded("A", Recorder::new("A", &log).adding("X-A", "added by A")),
    ]);

    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["A", "C saw X-A: added by A"]);
    assert_eq!(header_values(&event, "X-A"), ["added by A"]);
}

#[test]
fn the_engine_takes_the_reply_it_acts_on_and_counts_each_rejection() {
    let log = new_log();
    let reply = Reply::new(554, "5.7.1", "Refused");
    let engine = engine(vec![loaded(
        "a",
        Recorder::new("a", &log).rejecting(reply.clone()),
    )]);

    for _ in 0..2 {
        let mut event = data(MESSAGE);
        assert_eq!(
            run_chain(&engine, &mut event),
            Outcome::Rejected {
                plugin: "a",
                reply: reply.clone()
            }
        );
        assert!(
            event.reply().is_none(),
            "the engine takes the reply it acts on"
        );
    }
    let metrics = engine.metrics();
    assert_eq!(
        metrics.get("a", HookId::SmtpInData).map(|m| m.rejects),
        Some(2)
    );
}

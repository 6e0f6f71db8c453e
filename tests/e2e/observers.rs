//! Observers: `#[observe]` methods run after the chain has decided, side by side, each under its
//! own deadline, and nothing they do reaches the step's outcome.

use std::rc::Rc;
use std::time::Duration;

use mq_core::{FailurePolicy, Outcome, testkit};
use mq_plugin_api::{Context, Data, Event, HookId, MailFrom, Plugin, Reply, hooks};
use mq_tests::{
    Log, MESSAGE, Recorder, data, engine, entries, guarded, header_values, loaded, mail_from,
    new_log, run_chain,
};

/// Observes `smtp_in_data`: logs its name, the `X-Seen` values and the reply it sees.
struct Watch {
    name: &'static str,
    log: Log,
}

#[hooks]
impl Plugin for Watch {
    #[observe]
    async fn smtp_in_data(&self, _ctx: &Context, event: &Data) {
        let reply = event.reply().map(ToString::to_string);
        let seen = header_values(event, "X-Seen").join(",");
        let line = format!("{} saw [{seen}] reply {reply:?}", self.name);
        self.log.borrow_mut().push(line);
    }
}

fn watch(name: &'static str, log: &Log) -> Watch {
    Watch {
        name,
        log: Rc::clone(log),
    }
}

#[test]
fn observers_run_after_the_whole_chain_whatever_their_names_and_see_its_changes() {
    let log = new_log();
    let engine = engine(vec![
        loaded("a-watch", watch("a-watch", &log)),
        loaded(
            "b-chain",
            Recorder::new("b-chain", &log).adding("X-Seen", "b"),
        ),
        loaded(
            "c-chain",
            Recorder::new("c-chain", &log).adding("X-Seen", "c"),
        ),
    ]);
    assert_eq!(
        engine.chain(HookId::SmtpInData).collect::<Vec<_>>(),
        ["b-chain", "c-chain"]
    );
    assert_eq!(
        engine.observers(HookId::SmtpInData).collect::<Vec<_>>(),
        ["a-watch"]
    );

    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(
        entries(&log),
        ["b-chain", "c-chain", "a-watch saw [b,c] reply None"]
    );
}

#[test]
fn a_rejected_step_is_observed_with_its_reply_and_stays_rejected() {
    let log = new_log();
    let reply = Reply::new(550, "5.7.1", "no thanks");
    let engine = engine(vec![
        loaded(
            "a-chain",
            Recorder::new("a-chain", &log).rejecting(reply.clone()),
        ),
        loaded("z-watch", watch("z-watch", &log)),
    ]);
    let mut event = data(MESSAGE);
    let outcome = run_chain(&engine, &mut event);
    assert_eq!(
        outcome,
        Outcome::Rejected {
            plugin: "a-chain",
            reply: reply.clone()
        }
    );
    assert_eq!(
        entries(&log),
        [
            "a-chain".to_owned(),
            format!("z-watch saw [] reply Some({:?})", reply.to_string())
        ]
    );
    assert_eq!(
        event.reply(),
        None,
        "the engine took the reply, as without observers"
    );
}

/// Observes `smtp_in_mail_from` by waiting 100 ms on the worker's clock.
struct Waits;

#[hooks]
impl Plugin for Waits {
    #[observe]
    async fn smtp_in_mail_from(&self, ctx: &Context, _event: &MailFrom) {
        ctx.sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn four_observers_that_each_wait_100ms_add_100ms_to_the_step_not_400ms() {
    let mut event = mail_from("a@example.org");
    let (transcript, outcome) = testkit::chain()
        .plugin_named("w1", Waits)
        .plugin_named("w2", Waits)
        .plugin_named("w3", Waits)
        .plugin_named("w4", Waits)
        .run(&mut event);
    assert_eq!(outcome, Outcome::Proceed);
    // Each line gives the virtual time from the start of the observers to that one's end.
    assert_eq!(
        transcript.lines(),
        [
            "   smtp_in_mail_from  w1 (observer) → observed (waited 100ms)",
            "   smtp_in_mail_from  w2 (observer) → observed (waited 100ms)",
            "   smtp_in_mail_from  w3 (observer) → observed (waited 100ms)",
            "   smtp_in_mail_from  w4 (observer) → observed (waited 100ms)",
            "=> proceed",
        ]
    );
}

/// Observes `smtp_in_data` by waiting far past any deadline.
struct Stalls;

#[hooks]
impl Plugin for Stalls {
    #[observe]
    async fn smtp_in_data(&self, ctx: &Context, _event: &Data) {
        ctx.sleep(Duration::from_hours(1)).await;
    }
}

/// Observes `smtp_in_data` by panicking.
struct Panics;

#[hooks]
impl Plugin for Panics {
    #[observe]
    async fn smtp_in_data(&self, _ctx: &Context, _event: &Data) {
        panic!("observer bug");
    }
}

#[test]
fn an_observer_that_times_out_or_panics_is_counted_and_the_step_goes_on() {
    let log = new_log();
    // Under the reject policy a chain hook that failed would fail the step: observers have no
    // policy to apply.
    let policy = FailurePolicy::Reject;
    let engine = engine(vec![
        loaded(
            "a-chain",
            Recorder::new("a-chain", &log).adding("X-Seen", "a"),
        ),
        guarded("b-stalls", Stalls, Duration::from_millis(20), policy),
        guarded("c-panics", Panics, Duration::from_secs(30), policy),
        loaded("d-watch", watch("d-watch", &log)),
    ]);
    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["a-chain", "d-watch saw [a] reply None"]);
    assert_eq!(header_values(&event, "X-Seen"), ["a"]);

    let metrics = engine.metrics();
    let stalls = metrics
        .observer("b-stalls", HookId::SmtpInData)
        .expect("counted");
    assert_eq!(
        (stalls.timeouts, stalls.panics, stalls.continues),
        (1, 0, 0)
    );
    assert_eq!(stalls.waited_calls(), 1);
    let panics = metrics
        .observer("c-panics", HookId::SmtpInData)
        .expect("counted");
    assert_eq!((panics.timeouts, panics.panics), (0, 1));
    let watched = metrics
        .observer("d-watch", HookId::SmtpInData)
        .expect("counted");
    assert_eq!((watched.continues, watched.calls()), (1, 1));
    assert!(
        metrics.get("d-watch", HookId::SmtpInData).is_none(),
        "in no chain"
    );
}

#[test]
fn a_failing_observer_shows_in_the_transcript_and_changes_no_outcome() {
    let mut event = data(MESSAGE);
    let (transcript, outcome) = testkit::chain()
        .plugin_named("panics", Panics)
        .timeout(Duration::from_millis(50))
        .plugin_named("stalls", Stalls)
        .run(&mut event);
    assert_eq!(outcome, Outcome::Proceed);
    assert_eq!(
        transcript.lines(),
        [
            "   smtp_in_data  panics (observer) → failed: panicked: observer bug",
            "   smtp_in_data  stalls (observer) → failed: timed out after 50ms (waited 50ms)",
            "=> proceed",
        ]
    );
}

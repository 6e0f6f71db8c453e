//! Reloading the plugins of a running runtime: every core gets new instances from the new
//! sections at a chain boundary, a chain in progress finishes on the old ones, and a section a
//! factory refuses leaves the running plugins as they were.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mq_core::{Config, Outcome, Registry, RegistryError, Runtime};
use mq_plugin_api::{Context, Control, Data, HookId, Plugin, hooks, plugin};
use mq_tests::{JOB_CAP, MESSAGE, config_enabling, data, eventually, header_values, result_of};

/// Set when [`Door`]'s first call is waiting.
static ENTERED: AtomicBool = AtomicBool::new(false);
/// Set by the test to let [`Door`]'s first call go on.
static RELEASED: AtomicBool = AtomicBool::new(false);
/// Set by [`Door`]'s first call, so that later ones pass at once.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// At `smtp_in_data`, before the fixture (chains go by name): its first call ever waits until
/// the test releases it. Only the reload test enables `door`.
struct Door;

#[plugin(name = "door")]
impl Door {
    fn new() -> Self {
        Door
    }
}

#[hooks]
impl Plugin for Door {
    async fn smtp_in_data(&self, ctx: &mut Context, _data: &mut Data) -> Control {
        if !TAKEN.swap(true, Ordering::SeqCst) {
            ENTERED.store(true, Ordering::SeqCst);
            while !RELEASED.load(Ordering::SeqCst) {
                ctx.sleep(Duration::from_millis(5)).await;
            }
        }
        Control::Continue
    }
}

/// The door and the fixture, the fixture stamping `header`.
fn config(header: &str) -> Config {
    config_enabling(
        &["door", "fixture"],
        &format!("[plugins.fixture]\nheader = \"{header}\"\n"),
    )
}

fn plan(config: &Config) -> mq_core::Plan {
    Registry::linked()
        .expect("distinct names")
        .plan(config)
        .expect("the config fits the linked plugins")
}

/// Runs the data chain on core 0: the outcome, and the values of X-Old and X-New it stamped.
fn stamp(runtime: &Runtime) -> mq_core::JobHandle<(Outcome, Vec<String>, Vec<String>)> {
    runtime.spawn_on(0, |worker| async move {
        let mut ctx = worker.context();
        let mut event = data(MESSAGE);
        let outcome = worker.engine().run(&mut ctx, &mut event).await;
        let old = header_values(&event, "X-Old");
        (outcome, old, header_values(&event, "X-New"))
    })
}

#[test]
fn a_reload_lets_the_chain_in_progress_finish_on_the_old_plugins_and_the_next_runs_on_the_new() {
    let runtime = Runtime::start(&plan(&config("X-Old")), 1).expect("the plugins start");
    let before = stamp(&runtime);
    assert!(
        eventually(JOB_CAP, || ENTERED.load(Ordering::SeqCst)),
        "the first chain reached the door"
    );

    runtime
        .reload(&plan(&config("X-New")))
        .expect("the new sections are fine");
    let (outcome, old, new) = result_of(stamp(&runtime)).expect("the chain after the reload ran");
    assert_eq!(outcome, Outcome::Proceed);
    assert_eq!((old.len(), new), (0, vec!["core 0".to_owned()]));

    RELEASED.store(true, Ordering::SeqCst);
    let (outcome, old, new) = result_of(before).expect("the chain in progress finished");
    assert_eq!(outcome, Outcome::Proceed);
    assert_eq!((old, new.len()), (vec!["core 0".to_owned()], 0));

    // A section the fixture's factory refuses: the reload fails and the running plugins stay.
    let mut refused = config("X-Refused");
    refused
        .plugins
        .get_mut("fixture")
        .expect("a section")
        .insert("colour".to_owned(), toml::Value::String("blue".to_owned()));
    let error = runtime.reload(&plan(&refused)).expect_err("refused");
    assert!(matches!(error, RegistryError::Plugin(_)), "{error}");
    let (_, _, new) = result_of(stamp(&runtime)).expect("the chain ran");
    assert_eq!(new, ["core 0"], "still the plugins of the last good reload");

    // Counters carry over reloads: three data chains reached the fixture.
    let fixture = runtime.metrics();
    let fixture = fixture.get("fixture", HookId::SmtpInData).expect("enabled");
    assert_eq!(fixture.continues, 3);
    runtime.shutdown();
}

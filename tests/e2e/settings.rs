//! `[engine.plugins.NAME]` over a plugin's own defaults: chains by order and then by name, a
//! plugin's `order` and `on_error` defaults, the operator's overrides, a reload that reorders,
//! and the errors for settings in the wrong place.

use mq_core::{Config, Outcome, Registry, RegistryError, Runtime};
use mq_plugin_api::{Context, Control, Data, HookId, Plugin, hooks, plugin};
use mq_tests::{MESSAGE, config_enabling, data, header_values, result_of};

/// The header each orderly plugin appends its name to: its values are the chain's run order.
const TRAIL: &str = "X-Order-Trail";

/// Appends `name` to [`TRAIL`] at `smtp_in_data`.
fn append_to_trail(data: &mut Data, name: &str) -> Control {
    data.message.headers_mut().append(TRAIL, name);
    Control::Continue
}

/// First by name among the orderly plugins, but last by its own default.
struct Aardvark;

#[plugin(name = "order-aardvark", order = "last")]
impl Aardvark {
    fn new() -> Self {
        Aardvark
    }
}

#[hooks]
impl Plugin for Aardvark {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        append_to_trail(data, "order-aardvark")
    }
}

/// Order 0, the default.
struct Beta;

#[plugin(name = "order-beta")]
impl Beta {
    fn new() -> Self {
        Beta
    }
}

#[hooks]
impl Plugin for Beta {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        append_to_trail(data, "order-beta")
    }
}

/// Order 0, the default; last by name.
struct Gamma;

#[plugin(name = "order-gamma")]
impl Gamma {
    fn new() -> Self {
        Gamma
    }
}

#[hooks]
impl Plugin for Gamma {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        append_to_trail(data, "order-gamma")
    }
}

/// Panics at every call; its own default skips it when it does.
struct Brittle;

#[plugin(name = "order-brittle", on_error = "skip")]
impl Brittle {
    fn new() -> Self {
        Brittle
    }
}

#[hooks]
impl Plugin for Brittle {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        panic!("order-brittle fails on purpose");
    }
}

const ORDERLY: [&str; 3] = ["order-aardvark", "order-beta", "order-gamma"];

fn plan(config: &Config) -> mq_core::Plan {
    Registry::linked()
        .expect("distinct names")
        .plan(config)
        .expect("the config fits the linked plugins")
}

/// Runs the data chain once on core 0 of `runtime`: its outcome and the trail it left.
fn trail(runtime: &Runtime) -> (Outcome, Vec<String>) {
    result_of(runtime.spawn_on(0, |worker| async move {
        let mut ctx = worker.context();
        let mut event = data(MESSAGE);
        let outcome = worker.engine().run(&mut ctx, &mut event).await;
        (outcome, header_values(&event, TRAIL))
    }))
    .expect("the job ran")
}

/// The smtp_in_data chain of the orderly plugins under `settings`, as the engine holds it and
/// as one message goes through it.
fn chain_under(settings: &str) -> Vec<String> {
    let plan = plan(&config_enabling(&ORDERLY, settings));
    let engine = plan
        .build_engine(0, mq_core::watchdog::Beat::unwatched())
        .expect("the plugins build");
    let held: Vec<String> = engine
        .chain(HookId::SmtpInData)
        .map(str::to_owned)
        .collect();
    let runtime = Runtime::start(&plan, 1).expect("the plugins start");
    let (outcome, ran) = trail(&runtime);
    runtime.shutdown();
    assert_eq!(outcome, Outcome::Proceed);
    assert_eq!(held, ran, "the chain the engine lists is the one it runs");
    ran
}

#[test]
fn plugins_of_one_order_run_by_name_and_a_plugins_last_default_puts_it_after_them() {
    assert_eq!(
        chain_under(""),
        ["order-beta", "order-gamma", "order-aardvark"]
    );
}

#[test]
fn an_operator_order_first_moves_a_plugin_to_the_front_of_its_chain() {
    let settings = "[engine.plugins.order-gamma]\norder = \"first\"\n";
    assert_eq!(
        chain_under(settings),
        ["order-gamma", "order-beta", "order-aardvark"]
    );
}

#[test]
fn the_operators_order_overrides_the_plugins_default_and_numbers_sort_lowest_first() {
    let settings = "[engine.plugins.order-aardvark]\norder = 0\n\
                    [engine.plugins.order-beta]\norder = 5\n\
                    [engine.plugins.order-gamma]\norder = -5\n";
    assert_eq!(
        chain_under(settings),
        ["order-gamma", "order-aardvark", "order-beta"]
    );
}

#[test]
fn a_plan_tells_each_plugins_order_enabled_or_not() {
    let settings = "[engine.plugins.order-beta]\nenabled = false\norder = 7\n";
    let plan = plan(&config_enabling(&ORDERLY, settings));
    assert_eq!(
        plan.order("order-aardvark"),
        Some(mq_plugin_api::Order::Last)
    );
    assert_eq!(plan.order("order-beta"), Some(mq_plugin_api::Order::At(7)));
    assert_eq!(plan.order("order-gamma"), Some(mq_plugin_api::Order::At(0)));
    assert_eq!(plan.order("not-linked"), None);
    assert_eq!(&*plan.names(), ["order-gamma", "order-aardvark"]);
}

#[test]
fn a_reload_puts_a_new_order_in_force_for_the_next_chain() {
    let runtime = Runtime::start(&plan(&config_enabling(&ORDERLY, "")), 1).expect("starts");
    assert_eq!(
        trail(&runtime).1,
        ["order-beta", "order-gamma", "order-aardvark"]
    );
    let reordered = config_enabling(
        &ORDERLY,
        "[engine.plugins.order-aardvark]\norder = \"first\"\n",
    );
    runtime
        .reload(&plan(&reordered))
        .expect("the new order is fine");
    assert_eq!(
        trail(&runtime).1,
        ["order-aardvark", "order-beta", "order-gamma"]
    );
    runtime.shutdown();
}

#[test]
fn a_plugins_own_on_error_default_applies_until_the_operator_sets_one() {
    let own = plan(&config_enabling(&["order-brittle"], ""));
    let runtime = Runtime::start(&own, 1).expect("starts");
    assert_eq!(trail(&runtime).0, Outcome::Proceed, "skipped by default");
    runtime.shutdown();

    let strict = "[engine.plugins.order-brittle]\non_error = \"reject\"\n";
    let runtime =
        Runtime::start(&plan(&config_enabling(&["order-brittle"], strict)), 1).expect("starts");
    let (outcome, _) = trail(&runtime);
    runtime.shutdown();
    let Outcome::Failed(failure) = outcome else {
        panic!("the operator's policy fails the step, not {outcome:?}");
    };
    assert_eq!(failure.plugin, "order-brittle");
    assert!(failure.permanent, "reject fails for good");
}

#[test]
fn an_engine_key_left_in_a_plugin_section_is_refused_naming_its_new_place() {
    for key in [
        "enabled = false",
        "timeout = \"5s\"",
        "on_error = \"skip\"",
        "order = 1",
    ] {
        let config = config_enabling(&["fixture"], &format!("[plugins.fixture]\n{key}\n"));
        let error = Registry::linked()
            .expect("distinct names")
            .plan(&config)
            .expect_err("the key moved");
        let name = key.split(' ').next().expect("a key");
        assert!(
            matches!(&error, RegistryError::Moved { plugin, key } if plugin == "fixture" && *key == name),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("[plugins.fixture] {name}: engine settings moved to [engine.plugins.fixture]")
        );
    }
}

#[test]
fn engine_settings_for_a_plugin_not_compiled_in_stop_start_up_naming_it() {
    let config =
        Config::from_toml("[engine.plugins.spamassassin]\nenabled = true\n").expect("valid TOML");
    let error = Registry::linked()
        .expect("distinct names")
        .plan(&config)
        .expect_err("spamassassin is not compiled in");
    assert!(
        matches!(&error, RegistryError::SettingsNotCompiledIn { name, .. } if name == "spamassassin"),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("[engine.plugins.spamassassin]"), "{text}");
    assert!(text.contains("fixture"), "{text}");
}

#[test]
fn an_unknown_key_in_a_plugins_engine_settings_is_refused() {
    let error = Config::from_toml("[engine.plugins.fixture]\nheader = \"X-Mine\"\n")
        .expect_err("header is the fixture's own key");
    assert!(error.to_string().contains("header"), "{error}");
}

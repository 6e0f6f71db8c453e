//! Plugins found through inventory: the fixture crate (`tests/fixture-plugin`) registers itself
//! from a separate crate, and the config decides which compiled-in plugins run, with what keys.
//! The engine's settings for each plugin are in `settings`.

use mq_core::watchdog::Beat;
use mq_core::{Config, Outcome, Registry, RegistryError, Runtime};
use mq_plugin_api::{ConfigError, HookId, HookSet, Plugin, PluginConfig, Registration, hooks};
use mq_plugin_fixture::{DEFAULT_HEADER, MAIL_FROM_PARAM};
use mq_tests::{MESSAGE, config_enabling, data, header_values, loaded, mail_from, result_of};

/// A plugin with no hooks, for registrations built by hand.
struct Idle;

#[hooks]
impl Plugin for Idle {}

#[allow(clippy::unnecessary_wraps)] // the signature is the engine's `Factory`
fn idle_factory(_config: &PluginConfig) -> Result<Box<dyn Plugin>, ConfigError> {
    Ok(Box::new(Idle))
}

static TWIN_ONE: Registration =
    Registration::__new("twin", HookSet::EMPTY, "crate_one::twin", idle_factory);
static TWIN_TWO: Registration =
    Registration::__new("twin", HookSet::EMPTY, "crate_two::twin", idle_factory);
static SINGLE: Registration = Registration::__new(
    "single",
    HookSet::EMPTY,
    "crate_three::single",
    idle_factory,
);

fn linked() -> Registry {
    Registry::linked().expect("the linked plugins have distinct names")
}

/// Runs one message through `smtp_in_data` on worker 0 of a one-worker runtime started from the
/// linked registry under `config`; the outcome and the message's `header` values.
fn data_on_a_worker(config: &Config, header: &'static str) -> (Outcome, Vec<String>) {
    let plan = linked().plan(config).expect("the config fits");
    let runtime = Runtime::start(&plan, 1).expect("the plugins start");
    let result = result_of(runtime.spawn_on(0, move |worker| async move {
        let mut ctx = worker.context();
        let mut event = data(MESSAGE);
        let outcome = worker.engine().run(&mut ctx, &mut event).await;
        (outcome, header_values(&event, header))
    }))
    .expect("the job ran");
    runtime.shutdown();
    result
}

#[test]
fn a_plugin_from_a_separate_crate_is_registered_with_exactly_the_hooks_it_defines() {
    let registry = linked();
    let fixture = registry
        .iter()
        .find(|r| r.name() == "fixture")
        .expect("the fixture crate registered itself");

    let expected: HookSet = [HookId::SmtpInMailFrom, HookId::SmtpInData]
        .into_iter()
        .collect();
    assert_eq!(fixture.hooks(), expected);
    assert_eq!(fixture.module(), "mq_plugin_fixture");
    assert!(registry.names().is_sorted(), "{:?}", registry.names());
}

#[test]
fn the_fixture_runs_in_the_chains_of_its_hooks_and_no_others() {
    let config = config_enabling(&["fixture"], "");
    let plan = linked().plan(&config).expect("the config fits");
    let engine = plan
        .build_engine(0, Beat::unwatched())
        .expect("the fixture builds");

    assert_eq!(engine.plugin_names().collect::<Vec<_>>(), ["fixture"]);
    for hook in HookId::ALL {
        let chain: Vec<_> = engine.chain(hook).collect();
        let in_chain = matches!(hook, HookId::SmtpInMailFrom | HookId::SmtpInData);
        assert_eq!(chain == ["fixture"], in_chain, "{hook}: {chain:?}");
        assert_eq!(chain.is_empty(), !in_chain, "{hook}: {chain:?}");
    }
    let mut event = mail_from("sender@example.org");
    assert_eq!(mq_tests::run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(event.params, [(MAIL_FROM_PARAM.to_owned(), None)]);
}

#[test]
fn a_config_section_for_a_plugin_not_compiled_in_stops_start_up_naming_it_and_the_compiled_in() {
    let config = Config::from_toml("[plugins.spamassassin]\nrequired_score = 5\n").expect("valid");
    let error = linked()
        .plan(&config)
        .expect_err("spamassassin is not compiled in");

    let RegistryError::NotCompiledIn { name, compiled_in } = &error else {
        panic!("not-compiled-in, not {error:?}");
    };
    assert_eq!(name, "spamassassin");
    assert_eq!(compiled_in, &linked().names());
    assert!(compiled_in.contains(&"fixture"));
    let text = error.to_string();
    assert!(text.contains("[plugins.spamassassin]"), "{text}");
    assert!(text.contains("not compiled in"), "{text}");
    assert!(text.contains(&compiled_in.join(", ")), "{text}");
    assert!(
        text.contains("`use mq_plugin_spamassassin as _;`"),
        "{text}"
    );
}

#[test]
fn a_disabled_plugin_is_left_out_of_the_plan_and_its_chains() {
    let enabled = linked()
        .plan(&config_enabling(&["fixture"], ""))
        .expect("the config fits");
    assert!(enabled.plugins().any(|(name, _)| name == "fixture"));

    let disabled = linked()
        .plan(&config_enabling(
            &["fixture"],
            "[engine.plugins.fixture]\nenabled = false\n",
        ))
        .expect("the config fits");
    assert_eq!(disabled.plugins().count(), 0);
    assert!(disabled.names().is_empty());
    let engine = disabled
        .build_engine(0, Beat::unwatched())
        .expect("nothing to build");
    assert_eq!(engine.chain(HookId::SmtpInData).count(), 0);
    assert_eq!(engine.chain(HookId::SmtpInMailFrom).count(), 0);

    let (outcome, stamped) = data_on_a_worker(
        &config_enabling(&["fixture"], "[engine.plugins.fixture]\nenabled = false\n"),
        DEFAULT_HEADER,
    );
    assert_eq!(outcome, Outcome::Proceed);
    assert!(stamped.is_empty(), "a disabled fixture stamped {stamped:?}");
}

#[test]
fn the_fixtures_own_config_keys_reach_its_factory() {
    let config = config_enabling(
        &["fixture"],
        "[plugins.fixture]\nheader = \"X-Configured\"\n",
    );
    let (outcome, stamped) = data_on_a_worker(&config, "X-Configured");
    assert_eq!(outcome, Outcome::Proceed);
    assert_eq!(stamped, ["core 0"]);
}

#[test]
fn the_fixture_uses_its_default_header_without_a_section() {
    let (outcome, stamped) = data_on_a_worker(&config_enabling(&["fixture"], ""), DEFAULT_HEADER);
    assert_eq!(outcome, Outcome::Proceed);
    assert_eq!(stamped, ["core 0"]);
}

#[test]
fn an_unknown_key_in_the_fixtures_section_stops_start_up_naming_the_plugin() {
    let config = config_enabling(&["fixture"], "[plugins.fixture]\nheadr = \"X-Typo\"\n");
    let plan = linked().plan(&config).expect("the engine's keys are fine");
    let error = Runtime::start(&plan, 1).expect_err("the fixture refuses `headr`");

    let RegistryError::Plugin(refused) = &error else {
        panic!("the plugin's refusal, not {error:?}");
    };
    assert_eq!(refused.plugin(), "fixture");
    assert!(error.to_string().contains("headr"), "{error}");
}

#[test]
fn two_registrations_with_one_name_are_refused_naming_both_modules() {
    let error = Registry::from_registrations([&SINGLE, &TWIN_ONE, &TWIN_TWO])
        .expect_err("two plugins are named twin");

    let RegistryError::Duplicate { name, modules } = &error else {
        panic!("a duplicate, not {error:?}");
    };
    assert_eq!(*name, "twin");
    let mut modules = *modules;
    modules.sort_unstable();
    assert_eq!(modules, ["crate_one::twin", "crate_two::twin"]);
    let text = error.to_string();
    assert!(text.contains("\"twin\""), "{text}");
    assert!(
        text.contains("crate_one::twin") && text.contains("crate_two::twin"),
        "{text}"
    );

    let fine = Registry::from_registrations([&TWIN_ONE, &SINGLE]).expect("distinct names");
    assert_eq!(fine.names(), ["single", "twin"]);
}

#[test]
fn two_loaded_plugins_with_one_name_are_refused_by_the_engine() {
    let error = mq_core::Engine::new(
        0,
        &mq_core::EngineConfig::default(),
        vec![loaded("twin", Idle), loaded("twin", Idle)],
        Beat::unwatched(),
    )
    .expect_err("two plugins are named twin");
    assert!(
        matches!(error, RegistryError::Duplicate { name: "twin", .. }),
        "{error:?}"
    );
}

#[test]
fn a_plugin_without_hooks_is_in_no_chain() {
    let engine = mq_tests::engine(vec![loaded("idle", Idle)]);
    assert_eq!(engine.plugin_names().collect::<Vec<_>>(), ["idle"]);
    assert!(
        HookId::ALL
            .iter()
            .all(|&hook| engine.chain(hook).count() == 0)
    );
}

//! `mq plugins`, and the errors every command gives for a bad config file.
//!
//! Tests that expect the `headers` plugin are compiled only with the `headers` feature (a
//! default), so that `cargo test -p mq-bin --no-default-features` still passes.

use std::path::Path;
use std::process::Output;

use crate::support::{config_file, mq, one_error_line, stderr, stdout, success};

/// `mq --config <text as a file> plugins`.
fn plugins_with(name: &str, text: &str) -> Output {
    let path = config_file(name, text);
    mq(&["--config", path.to_str().expect("a UTF-8 path"), "plugins"])
}

/// The plugins in `hook`'s chain as `mq plugins` printed it; `["-"]` for an empty chain. The
/// hook's observers, after `observers:`, are not in it.
fn chain(listing: &str, hook: &str) -> Vec<String> {
    let chains = listing
        .split_once("\nchains\n")
        .expect("a chains section")
        .1;
    let line = chains
        .lines()
        .find(|line| line.split_whitespace().next() == Some(hook))
        .unwrap_or_else(|| panic!("no line for {hook} in:\n{listing}"));
    let rest = line.trim_start().strip_prefix(hook).unwrap().trim();
    let rest = rest.split("   observers: ").next().unwrap_or(rest);
    rest.split(", ").map(str::to_owned).collect()
}

#[cfg(feature = "webhook")]
#[test]
fn the_webhook_is_listed_as_an_observer_of_delivery_result_in_no_chain() {
    let output = mq(&["plugins"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let row = text
        .lines()
        .find(|line| line.trim_start().starts_with("webhook "))
        .expect("a row for the webhook");
    assert!(row.ends_with("delivery_result (observer)"), "{row}");
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("delivery_result "))
        .expect("a delivery_result line");
    assert!(line.ends_with("   observers: webhook"), "{line}");
    assert!(
        !chain(&text, "delivery_result").contains(&"webhook".to_owned()),
        "{text}"
    );
}

#[test]
fn help_names_the_plugins_subcommand() {
    let output = mq(&["--help"]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("plugins"), "{}", stdout(&output));
}

#[test]
fn every_hook_is_listed_in_order_even_with_an_empty_chain() {
    let output = mq(&["plugins"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let hooks: Vec<&str> = text
        .split_once("\nchains\n")
        .unwrap()
        .1
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let all: Vec<&str> = mq_plugin_api::HookId::ALL
        .iter()
        .map(|h| h.name())
        .collect();
    assert_eq!(hooks, all);
    // No bundled plugin watches the end of an outbound DATA; the noop plugins do.
    if !cfg!(feature = "noop") {
        assert_eq!(chain(&text, "smtp_out_sent"), ["-"]);
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-config.toml");
    let output = mq(&["--config", path.to_str().unwrap(), "plugins"]);
    let line = one_error_line(&output);
    assert!(line.contains(path.to_str().unwrap()), "{line}");
}

#[test]
fn a_malformed_config_file_is_one_clear_line() {
    let output = plugins_with("malformed.toml", "[engine\ntimeout = \"5s\"\n");
    let line = one_error_line(&output);
    assert!(line.contains("malformed.toml"), "{line}");
    assert!(line.contains("TOML parse error at line 1"), "{line}");
}

#[test]
fn an_unknown_engine_key_is_named() {
    let output = plugins_with("unknown-key.toml", "[engine]\ntimout = \"5s\"\n");
    let line = one_error_line(&output);
    assert!(line.contains("unknown field `timout`"), "{line}");
}

#[test]
fn a_section_for_a_plugin_not_compiled_in_names_it_and_the_plugins_that_are() {
    let output = plugins_with("nosuch.toml", "[plugins.nosuch]\n");
    let line = one_error_line(&output);
    assert!(line.contains("nosuch"), "{line}");
    #[cfg(feature = "headers")]
    assert!(line.contains("headers"), "{line}");
    assert!(line.contains("`use mq_plugin_nosuch as _;`"), "{line}");
}

/// A build without the `dkim` feature, given a `[plugins.dkim]` section, names the feature.
#[cfg(not(feature = "dkim"))]
#[test]
fn a_section_for_a_bundled_plugin_left_out_of_the_build_names_its_feature() {
    let output = plugins_with("dkim.toml", "[plugins.dkim]\n");
    let line = one_error_line(&output);
    assert!(line.contains("--features dkim"), "{line}");
}

/// Every plugin the registry calls bundled is compiled in by the feature it names.
#[cfg(all(
    feature = "aliases",
    feature = "dkim",
    feature = "dnsbl",
    feature = "headers",
    feature = "ratelimit",
    feature = "webhook"
))]
#[test]
fn each_bundled_plugin_is_linked_by_the_feature_the_registry_names() {
    use mq_bin as _;
    let linked = mq_core::Registry::linked()
        .expect("no duplicate names")
        .names();
    let features = [
        "aliases",
        "dkim",
        "dnsbl",
        "headers",
        "ratelimit",
        "webhook",
    ];
    for (plugin, feature) in mq_core::BUNDLED_PLUGINS {
        assert!(
            linked.contains(plugin),
            "{plugin} is not linked: {linked:?}"
        );
        assert!(features.contains(feature), "{plugin}: no feature {feature}");
    }
    assert_eq!(mq_core::BUNDLED_PLUGINS.len(), features.len());
}

/// Needs the bundled `headers` plugin.
#[cfg(feature = "headers")]
mod headers {
    use super::*;

    // A test binary links only the plugin crates it mentions, like any binary: without this
    // line `Registry::linked()` below would be empty, even though mq-bin depends on the plugin.
    use mq_bin as _;

    #[test]
    fn the_library_links_the_headers_plugin_into_whoever_mentions_it() {
        let registry = mq_core::Registry::linked().expect("no duplicate names");
        assert!(registry.names().contains(&"headers"), "{registry:?}");
    }

    #[test]
    fn plugins_lists_headers_in_the_smtp_in_data_chain() {
        let output = mq(&["plugins"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert_eq!(
            row(&text, "headers"),
            ["headers", "enabled", "order", "0", "smtp_in_data"],
            "{text}"
        );
        assert!(chain(&text, "smtp_in_data").contains(&"headers".to_owned()));
    }

    #[test]
    fn a_disabled_plugin_is_listed_but_in_no_chain() {
        let output = plugins_with(
            "disabled.toml",
            "[engine.plugins.headers]\nenabled = false\n",
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert_eq!(
            row(&text, "headers"),
            ["headers", "disabled", "order", "0", "smtp_in_data"],
            "{text}"
        );
        assert!(
            !chain(&text, "smtp_in_data").contains(&"headers".to_owned()),
            "{text}"
        );
    }

    #[test]
    fn an_engine_key_left_in_the_plugins_section_names_its_new_place() {
        let output = plugins_with("moved.toml", "[plugins.headers]\ntimeout = \"5s\"\n");
        let line = one_error_line(&output);
        assert!(
            line.contains(
                "[plugins.headers] timeout: engine settings moved to [engine.plugins.headers]"
            ),
            "{line}"
        );
    }

    #[test]
    fn engine_settings_for_a_plugin_not_compiled_in_name_it() {
        let output = plugins_with("nosuch-engine.toml", "[engine.plugins.nosuch]\n");
        let line = one_error_line(&output);
        assert!(line.contains("[engine.plugins.nosuch]"), "{line}");
        assert!(line.contains("headers"), "{line}");
    }

    /// dkim places itself last; the operator can move it.
    #[cfg(feature = "dkim")]
    #[test]
    fn dkim_runs_after_headers_until_the_operator_puts_it_first() {
        let output = mq(&["plugins"]);
        let text = success(&output);
        assert_eq!(
            row(&text, "dkim"),
            ["dkim", "enabled", "order", "last", "smtp_in_data"],
            "{text}"
        );
        let chain_of = |text: &str| chain(text, "smtp_in_data");
        assert_eq!(chain_of(&text).last().map(String::as_str), Some("dkim"));

        let first = "[engine.plugins.dkim]\norder = \"first\"\n";
        let text = success(&plugins_with("dkim-first.toml", first));
        assert_eq!(
            row(&text, "dkim"),
            ["dkim", "enabled", "order", "first", "smtp_in_data"],
            "{text}"
        );
        let chain = chain_of(&text);
        assert_eq!(chain.first().map(String::as_str), Some("dkim"), "{text}");
        assert!(chain.contains(&"headers".to_owned()), "{text}");
    }

    #[test]
    fn a_section_the_plugin_refuses_stops_with_the_plugin_named() {
        let text = "[[plugins.headers.add]]\nname = \"X Bad\"\nvalue = \"1\"\n";
        let output = plugins_with("bad-headers.toml", text);
        let line = one_error_line(&output);
        assert!(line.contains("\"headers\""), "{line}");
        assert!(line.contains("X Bad"), "{line}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../mq.example.toml");
        let output = mq(&["--config", path, "plugins"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(row(&stdout(&output), "headers")[1], "enabled");
    }

    /// The words of a plugin's line in the listing: name, state, hooks.
    fn row(text: &str, plugin: &str) -> Vec<String> {
        let line = text
            .lines()
            .find(|line| line.split_whitespace().next() == Some(plugin));
        line.map(|line| {
            line.split([' ', ','])
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    }
}

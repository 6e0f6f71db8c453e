//! `mq check-config`: `config OK`, or one line naming what is wrong.

use crate::support::{config_file, mq, one_error_line, stderr, success};

fn check(name: &str, text: &str) -> std::process::Output {
    let path = config_file(name, text);
    mq(&[
        "--config",
        path.to_str().expect("a UTF-8 path"),
        "check-config",
    ])
}

/// The example configures the bundled `headers` plugin.
#[cfg(feature = "headers")]
#[test]
fn the_example_config_checks_out() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../mq.example.toml");
    assert_eq!(
        success(&mq(&["--config", path, "check-config"])),
        "config OK\n"
    );
}

#[cfg(feature = "headers")]
#[test]
fn an_engine_key_left_in_a_plugin_section_names_its_new_place() {
    let line = one_error_line(&check(
        "check-moved.toml",
        "[plugins.headers]\non_error = \"skip\"\n",
    ));
    assert!(line.contains("check-moved.toml"), "{line}");
    assert!(
        line.contains(
            "[plugins.headers] on_error: engine settings moved to [engine.plugins.headers]"
        ),
        "{line}"
    );
}

#[cfg(feature = "headers")]
#[test]
fn engine_settings_for_a_plugin_check_out() {
    let text = "[engine.plugins.headers]\nenabled = true\ntimeout = \"5s\"\non_error = \"skip\"\n\
                order = \"first\"\n";
    assert_eq!(
        success(&check("check-engine-plugins.toml", text)),
        "config OK\n"
    );
}

#[test]
fn no_config_file_means_the_defaults_which_check_out() {
    assert_eq!(success(&mq(&["check-config"])), "config OK\n");
}

#[test]
fn an_unknown_smtp_key_is_named() {
    let line = one_error_line(&check("check-smtp-key.toml", "[smtp]\nlisten_on = \"x\"\n"));
    assert!(line.contains("check-smtp-key.toml"), "{line}");
    assert!(line.contains("unknown field `listen_on`"), "{line}");
}

#[test]
fn a_missing_tls_file_is_named() {
    let text = "[smtp.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n";
    let line = one_error_line(&check("check-tls.toml", text));
    assert!(line.contains("[smtp.tls]"), "{line}");
    assert!(line.contains("/nonexistent/cert.pem"), "{line}");
}

#[test]
fn a_password_that_is_not_a_hash_is_refused_with_its_user() {
    let line = one_error_line(&check(
        "check-auth.toml",
        "[smtp.auth.users]\nalice = \"secret\"\n",
    ));
    assert!(line.contains("[smtp.auth.users]"), "{line}");
    assert!(line.contains("alice"), "{line}");
}

#[test]
fn a_bad_relay_network_is_refused() {
    let line = one_error_line(&check(
        "check-cidr.toml",
        "[smtp]\nrelay_networks = [\"10.0.0.0/33\"]\n",
    ));
    assert!(line.contains("check-cidr.toml"), "{line}");
}

#[test]
fn values_that_leave_mq_unusable_are_refused_naming_their_key() {
    for (name, text, named) in [
        (
            "check-zero-connections.toml",
            "[smtp]\nmax_connections = 0\n",
            "[smtp] max_connections = 0",
        ),
        (
            "check-zero-size.toml",
            "[smtp]\nmax_message_size = 0\n",
            "[smtp] max_message_size = 0",
        ),
        (
            "check-zero-workers.toml",
            "[engine]\nworkers = 0\n",
            "[engine] workers = 0",
        ),
    ] {
        let line = one_error_line(&check(name, text));
        assert!(line.contains(name), "{line}");
        assert!(line.contains(named), "{line}");
    }
}

#[test]
fn serve_refuses_a_config_that_leaves_mq_unusable_before_it_listens() {
    let path = config_file(
        "serve-zero-workers.toml",
        "[engine]\nworkers = 0\n\n[smtp]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"\"\n",
    );
    let line = one_error_line(&mq(&["--config", path.to_str().expect("UTF-8"), "serve"]));
    assert!(line.contains("[engine] workers = 0"), "{line}");
}

#[test]
fn a_relay_password_over_unverified_tls_is_warned_about() {
    let output = check(
        "check-relay-credentials.toml",
        "[delivery.smarthost]\naddress = \"relay.example:587\"\ntls = \"required\"\n\
         user = \"u\"\npassword = \"p\"\n",
    );
    assert_eq!(success(&output), "config OK\n");
    let warning = stderr(&output);
    assert!(warning.contains("[delivery.smarthost]"), "{warning}");
    assert!(warning.contains("tls = \"verify\""), "{warning}");
}

#[test]
fn a_relay_ca_file_that_does_not_load_is_named() {
    let line = one_error_line(&check(
        "check-relay-ca.toml",
        "[delivery.smarthost]\naddress = \"relay.example:587\"\nca_file = \"/nonexistent/ca.pem\"\n",
    ));
    assert!(line.contains("/nonexistent/ca.pem"), "{line}");
}

#[test]
fn a_bad_line_in_the_local_recipient_map_is_named() {
    let map = config_file("check-recipients", "jane\nbob@\n");
    let text = format!("[smtp]\nlocal_recipient_map = '{}'\n", map.display());
    let line = one_error_line(&check("check-recipients.toml", &text));
    assert!(line.contains("local recipient map"), "{line}");
    assert!(line.contains("line 2: \"bob@\""), "{line}");
}

#[test]
fn a_non_loopback_admin_port_without_a_token_is_refused_and_with_one_checks_out() {
    let exposed = "[admin]\nlisten = \"0.0.0.0:9025\"\n";
    let line = one_error_line(&check("check-admin-exposed.toml", exposed));
    assert!(line.contains("set [admin] token or token_file"), "{line}");
    let guarded = format!("{exposed}token = \"s3cret\"\n");
    let output = check("check-admin-token.toml", &guarded);
    assert_eq!(success(&output), "config OK\n");
}

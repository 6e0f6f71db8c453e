//! Reloading a running `mq serve`: SIGHUP and `mq reload` put a changed config file in force for
//! the next sessions, a config that fails to load is logged and the running one kept, and
//! neither stops the server.

use std::net::SocketAddr;
use std::path::Path;

use crate::support::{Scratch, Server, append, http_get, one_error_line, smtp, success};

/// What the server logs when a reload went through.
const RELOADED: &str = "configuration reloaded from ";
/// What the server logs when a reload failed.
const FAILED: &str = "reload failed, keeping the running configuration: ";

/// Sends one message and returns it as queued, read through the admin port.
fn send_and_read(server: &Server, admin: SocketAddr) -> String {
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<bob@example.net>",
            "DATA",
            "Subject: reload",
            "",
            "hi",
            ".",
            "QUIT",
        ],
    );
    let id = replies[5]
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("queued: {replies:?}\n{}", server.log()));
    let (status, body) = http_get(admin, &format!("/queue/{id}/body"));
    assert_eq!(status, 200, "{body}");
    body
}

/// Replaces `from` with `to` in the config file.
fn edit(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).expect("the config");
    assert!(text.contains(from), "{from:?} in\n{text}");
    std::fs::write(config, text.replacen(from, to, 1)).expect("the config is written");
}

#[test]
#[cfg(feature = "headers")]
fn sighup_puts_a_changed_plugin_section_in_force_for_the_next_session() {
    let scratch = Scratch::new();
    let mut server = scratch.serve();
    assert!(send_and_read(&server, scratch.admin).contains("X-Test: stamped\r\n"));

    edit(
        &scratch.config,
        "value = \"stamped\"",
        "value = \"restamped\"",
    );
    server.signal("HUP");
    server.wait_for_log(&format!("{RELOADED}{}", scratch.config.display()));
    let body = send_and_read(&server, scratch.admin);
    assert!(body.contains("X-Test: restamped\r\n"), "{body}");
    assert!(!body.contains("X-Test: stamped\r\n"), "{body}");

    let stopped = server.terminate();
    stopped.assert_success();
}

#[test]
#[cfg(feature = "headers")]
fn sighup_puts_changed_engine_settings_of_a_plugin_in_force_for_the_next_session() {
    let scratch = Scratch::new();
    append(
        &scratch.config,
        "\n[engine.plugins.headers]\nenabled = true\n",
    );
    let mut server = scratch.serve();
    assert!(send_and_read(&server, scratch.admin).contains("X-Test: stamped\r\n"));

    edit(&scratch.config, "enabled = true", "enabled = false");
    server.signal("HUP");
    server.wait_for_log(&format!("{RELOADED}{}", scratch.config.display()));
    let body = send_and_read(&server, scratch.admin);
    assert!(!body.contains("X-Test:"), "{body}");

    let stopped = server.terminate();
    stopped.assert_success();
}

#[test]
fn sighup_no_longer_stops_the_server_and_names_what_waits_for_a_restart() {
    let scratch = Scratch::new();
    let mut server = scratch.serve();
    server.signal("HUP");
    server.wait_for_logged_times(RELOADED, 1);

    // The listening address cannot change under running listeners: logged, and kept.
    edit(
        &scratch.config,
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:1\"",
    );
    server.signal("HUP");
    server.wait_for_logged_times(RELOADED, 2);
    let log = server.log();
    assert!(
        log.lines()
            .any(|line| line.contains("take effect only after a restart")
                && line.contains("keys=\"smtp.listen\"")),
        "{log}"
    );
    send_and_read(&server, scratch.admin);

    let stopped = server.terminate();
    stopped.assert_success();
    assert!(stopped.log.contains("mq stopped"), "{}", stopped.log);
}

#[test]
fn a_config_that_fails_to_load_is_logged_and_the_running_one_keeps_serving() {
    let scratch = Scratch::new();
    let mut server = scratch.serve();
    let pristine = std::fs::read_to_string(&scratch.config).expect("the config");

    // Not TOML.
    append(&scratch.config, "[smtp\n");
    server.signal("HUP");
    server.wait_for_logged_times(FAILED, 1);
    assert!(
        server.log().contains("TOML parse error"),
        "{}",
        server.log()
    );

    // A TLS file that cannot be read.
    std::fs::write(&scratch.config, &pristine).expect("the config is written");
    append(
        &scratch.config,
        "\n[smtp.tls]\ncert = '/nonexistent/cert.pem'\nkey = '/nonexistent/key.pem'\n",
    );
    server.signal("HUP");
    server.wait_for_logged_times(FAILED, 2);
    assert!(
        server
            .log()
            .contains("[smtp.tls]: cannot read /nonexistent/cert.pem"),
        "{}",
        server.log()
    );

    // A plugin section its factory refuses.
    #[cfg(feature = "headers")]
    {
        std::fs::write(&scratch.config, &pristine).expect("the config is written");
        edit(
            &scratch.config,
            "value = \"stamped\"",
            "value = \"restamped\"\ncolour = \"blue\"",
        );
        server.signal("HUP");
        server.wait_for_logged_times(FAILED, 3);
        assert!(server.log().contains("colour"), "{}", server.log());
    }

    let body = send_and_read(&server, scratch.admin);
    #[cfg(feature = "headers")]
    assert!(body.contains("X-Test: stamped\r\n"), "{body}");
    assert!(body.contains("Subject: reload"), "{body}");
    assert!(!server.log().contains(RELOADED), "{}", server.log());
    let stopped = server.terminate();
    stopped.assert_success();
}

#[test]
fn mq_reload_reloads_through_the_admin_port_and_says_why_it_failed() {
    let scratch = Scratch::new();
    let mut server = scratch.serve();
    let said = success(&scratch.mq(&["reload"]));
    assert_eq!(said, format!("{RELOADED}{}\n", scratch.config.display()));
    server.wait_for_logged_times(RELOADED, 1);

    append(
        &scratch.config,
        "\n[smtp.tls]\ncert = '/nonexistent/cert.pem'\nkey = '/nonexistent/key.pem'\n",
    );
    let error = one_error_line(&scratch.mq(&["reload"]));
    assert!(error.starts_with(&format!("mq: {FAILED}")), "{error}");
    assert!(
        error.contains("cannot read /nonexistent/cert.pem"),
        "{error}"
    );
    server.wait_for_logged_times(FAILED, 1);
    send_and_read(&server, scratch.admin);
    let stopped = server.terminate();
    stopped.assert_success();
}

#[test]
fn mq_reload_without_a_server_is_an_error() {
    let scratch = Scratch::new();
    let output = scratch.mq(&["reload"]);
    let error = one_error_line(&output);
    assert!(
        error.starts_with(&format!(
            "mq: no mq serve answers on admin port {}: ",
            scratch.admin
        )),
        "{error}"
    );
}

/// Logs in as `user` with `password` after STARTTLS, trusting `cert`; prints the AUTH reply.
const LOGIN: &str = r"
import smtplib, ssl, sys

host, port, cafile, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False
s = smtplib.SMTP(host, port, local_hostname='client.example', timeout=30)
s.starttls(context=context)
try:
    code, text = s.login(user, password)
except smtplib.SMTPAuthenticationError as error:
    code, text = error.smtp_code, error.smtp_error
print(code, text.decode())
s.quit()
";

/// The AUTH reply python3's smtplib gets for `user` and `password` from `server`.
pub(crate) fn login(server: &Server, cert: &Path, user: &str, password: &str) -> String {
    let smtp = server.smtp();
    let output = std::process::Command::new("python3")
        .args(["-c", LOGIN, "127.0.0.1", &smtp.port().to_string()])
        .args([cert.to_str().expect("a UTF-8 path"), user, password])
        .output()
        .expect("python3 is part of the test machine");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn a_user_added_to_the_config_can_authenticate_after_sighup() {
    let scratch = Scratch::new();
    let (cert, key) = mq_core::smtp::tls::self_signed("localhost");
    let [cert_file, key_file] = ["cert.pem", "key.pem"].map(|name| scratch.path().join(name));
    std::fs::write(&cert_file, cert).expect("the certificate is written");
    std::fs::write(&key_file, key).expect("the key is written");
    let hash = mq_core::smtp::auth::hash_argon2("a password");
    append(
        &scratch.config,
        &format!(
            "\n[smtp.tls]\ncert = '{}'\nkey = '{}'\n\n[smtp.auth.users]\nalice = '{hash}'\n",
            cert_file.display(),
            key_file.display()
        ),
    );
    let mut server = scratch.serve();
    assert!(login(&server, &cert_file, "alice", "a password").starts_with("235 "));
    assert!(login(&server, &cert_file, "bob", "a password").starts_with("535 "));

    append(&scratch.config, &format!("bob = '{hash}'\n"));
    server.signal("HUP");
    server.wait_for_log(RELOADED);
    assert_eq!(
        login(&server, &cert_file, "bob", "a password"),
        "235 2.7.0 Authentication successful"
    );
    let stopped = server.terminate();
    stopped.assert_success();
}

//! `mq config` (postconf's three views, secrets redacted) and `mq passwd`, with the real
//! binary.

use crate::support::{Scratch, command, config_file, mq, success};

#[test]
fn config_prints_effective_non_default_and_default_settings_without_secrets() {
    let path = config_file(
        "settings-secrets.toml",
        "[smtp]\nhostname = \"mx.example.org\"\n\n[smtp.auth.users]\n\
         alice = \"$6$salt$verysecrethash\"\n\n[admin]\ntoken = \"s3cret-token\"\n\n\
         [delivery]\nsmarthost = { address = \"relay.example:587\", user = \"u\", password = \"pw-secret\" }\n\n\
         [plugins.webhook]\nurl = \"http://127.0.0.1:1/hook\"\nsecret_header = \"hidden-value\"\n",
    );
    let path = path.to_str().unwrap();
    let all = success(&mq(&["config", "--config", path]));
    let non_default = success(&mq(&["config", "-n", "--config", path]));
    let defaults = success(&mq(&["config", "--defaults", "--config", path]));
    for text in [&all, &non_default, &defaults] {
        for secret in [
            "verysecrethash",
            "s3cret-token",
            "pw-secret",
            "hidden-value",
        ] {
            assert!(!text.contains(secret), "{secret} printed:\n{text}");
        }
    }
    assert_eq!(
        non_default,
        "admin.token = \"<redacted>\"\n\
         delivery.smarthost.address = \"relay.example:587\"\n\
         delivery.smarthost.password = \"<redacted>\"\n\
         delivery.smarthost.user = \"u\"\n\
         plugins.webhook.secret_header = \"<redacted>\"\n\
         plugins.webhook.url = \"http://127.0.0.1:1/hook\"\n\
         smtp.auth.users.alice = \"<redacted>\"\n\
         smtp.hostname = \"mx.example.org\"\n"
    );
    assert!(
        all.contains("\nsmtp.hostname = \"mx.example.org\"\n"),
        "{all}"
    );
    assert!(
        all.contains("\nsmtp.listen = \"127.0.0.1:2525\"\n"),
        "{all}"
    );
    assert!(
        defaults.contains("\nsmtp.hostname = \"localhost\"\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("engine.timeout = \"30s\"\n"),
        "{defaults}"
    );
    // Every non-default line is in the full listing.
    assert!(
        non_default
            .lines()
            .all(|line| all.lines().any(|l| l == line))
    );
}

#[test]
fn a_scratch_config_differs_from_the_defaults_where_it_says_so() {
    let scratch = Scratch::new();
    let out = success(&scratch.mq(&["config", "--non-default"]));
    assert!(out.contains("delivery.enabled = false\n"), "{out}");
    assert!(out.contains("queue.fsync = false\n"), "{out}");
    assert!(out.contains("smtp.listen = \"127.0.0.1:0\"\n"), "{out}");
}

#[test]
fn passwd_prints_a_hash_the_server_accepts() {
    let mut passwd = command(&["passwd"]);
    let output = crate::support::bounded(&mut passwd, Some(b"hunter2\n"));
    let hash = success(&output);
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains("hunter2"));
    // The hash works for AUTH on a real server (after STARTTLS, as AUTH needs).
    let scratch = Scratch::new();
    let (cert, key) = mq_core::smtp::tls::self_signed("localhost");
    let [cert_file, key_file] = ["cert.pem", "key.pem"].map(|name| scratch.path().join(name));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let text = std::fs::read_to_string(&scratch.config).unwrap();
    let text = format!(
        "{text}\n[smtp.tls]\ncert = '{}'\nkey = '{}'\n\n[smtp.auth.users]\nalice = '{}'\n",
        cert_file.display(),
        key_file.display(),
        hash.trim()
    );
    std::fs::write(&scratch.config, text).unwrap();
    assert_eq!(success(&scratch.mq(&["check-config"])), "config OK\n");
    let server = scratch.serve();
    assert!(crate::reload::login(&server, &cert_file, "alice", "hunter2").starts_with("235 "));
    assert!(crate::reload::login(&server, &cert_file, "alice", "hunter3").starts_with("535 "));
    drop(server);
    let empty = crate::support::bounded(&mut command(&["passwd"]), Some(b"\n"));
    assert_eq!(empty.status.code(), Some(1));
}

#[test]
fn users_in_a_separate_file_are_read_again_when_it_changes() {
    let scratch = Scratch::new();
    let (cert, key) = mq_core::smtp::tls::self_signed("localhost");
    let [cert_file, key_file, users] =
        ["cert.pem", "key.pem", "users"].map(|name| scratch.path().join(name));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let hash = |password: &[u8]| {
        let output = crate::support::bounded(&mut command(&["passwd"]), Some(password));
        success(&output).trim().to_owned()
    };
    std::fs::write(&users, format!("# AUTH users\nalice:{}\n", hash(b"one\n"))).unwrap();
    let text = std::fs::read_to_string(&scratch.config).unwrap();
    let text = format!(
        "{text}\n[smtp.tls]\ncert = '{}'\nkey = '{}'\n\n[smtp.auth]\nusers_file = '{}'\n",
        cert_file.display(),
        key_file.display(),
        users.display()
    );
    std::fs::write(&scratch.config, text).unwrap();
    assert_eq!(success(&scratch.mq(&["check-config"])), "config OK\n");
    let mut server = scratch.serve();
    let login = |server: &crate::support::Server, user, password| {
        crate::reload::login(server, &cert_file, user, password)
    };
    assert!(login(&server, "alice", "one").starts_with("235 "));
    assert!(login(&server, "bob", "two").starts_with("535 "));

    // Replaced as an editor saves it: a new file renamed over the old.
    let next = scratch.path().join("users.new");
    std::fs::write(&next, format!("bob:{}\n", hash(b"two\n"))).unwrap();
    std::fs::rename(&next, &users).unwrap();
    server.wait_for_log("users_file changed");
    server.wait_for_logged_times("configuration reloaded", 1);
    assert!(login(&server, "bob", "two").starts_with("235 "));
    assert!(
        login(&server, "alice", "one").starts_with("535 "),
        "alice was removed"
    );

    // A broken file keeps the users in force.
    std::fs::write(&users, "no colon here\n").unwrap();
    server.wait_for_log("reload failed");
    assert!(
        server.log().contains("line 1: not user:hash"),
        "{}",
        server.log()
    );
    assert!(login(&server, "bob", "two").starts_with("235 "));
    server.terminate().assert_success();
}

#[test]
fn after_a_reload_names_another_users_file_that_file_is_watched() {
    let scratch = Scratch::new();
    let (cert, key) = mq_core::smtp::tls::self_signed("localhost");
    let [cert_file, key_file, first, second] =
        ["cert.pem", "key.pem", "users", "users2"].map(|name| scratch.path().join(name));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let hash = mq_core::smtp::auth::hash_argon2;
    std::fs::write(&first, format!("alice:{}\n", hash("one"))).unwrap();
    std::fs::write(&second, format!("bob:{}\n", hash("two"))).unwrap();
    let text = std::fs::read_to_string(&scratch.config).unwrap();
    std::fs::write(
        &scratch.config,
        format!(
            "{text}\n[smtp.tls]\ncert = '{}'\nkey = '{}'\n\n[smtp.auth]\nusers_file = '{}'\n",
            cert_file.display(),
            key_file.display(),
            first.display()
        ),
    )
    .unwrap();
    let mut server = scratch.serve();
    let login = |server: &crate::support::Server, user, password| {
        crate::reload::login(server, &cert_file, user, password)
    };
    assert!(login(&server, "alice", "one").starts_with("235 "));

    // The reload names the second file: its users are in force, and it is the one watched.
    let text = std::fs::read_to_string(&scratch.config).unwrap();
    let moved = text.replace(
        &format!("users_file = '{}'", first.display()),
        &format!("users_file = '{}'", second.display()),
    );
    assert_ne!(moved, text);
    std::fs::write(&scratch.config, moved).unwrap();
    server.signal("HUP");
    server.wait_for_logged_times("configuration reloaded", 1);
    assert!(login(&server, "bob", "two").starts_with("235 "));
    server.wait_for_log("watching [smtp.auth] users_file");

    let next = scratch.path().join("users2.new");
    std::fs::write(&next, format!("carol:{}\n", hash("three"))).unwrap();
    std::fs::rename(&next, &second).unwrap();
    server.wait_for_log("users_file changed");
    server.wait_for_logged_times("configuration reloaded", 2);
    assert!(login(&server, "carol", "three").starts_with("235 "));
    assert!(login(&server, "bob", "two").starts_with("535 "));
    server.terminate().assert_success();
}

#[test]
fn config_prints_the_engine_settings_of_each_plugin_as_set() {
    let path = config_file(
        "settings-engine-plugins.toml",
        "[engine.plugins.headers]\norder = \"first\"\ntimeout = 5\non_error = \"skip\"\n",
    );
    let path = path.to_str().unwrap();
    let non_default = success(&mq(&["config", "-n", "--config", path]));
    assert_eq!(
        non_default,
        "engine.plugins.headers.on_error = \"skip\"\n\
         engine.plugins.headers.order = \"first\"\n\
         engine.plugins.headers.timeout = \"5s\"\n"
    );
}

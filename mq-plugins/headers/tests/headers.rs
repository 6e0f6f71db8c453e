//! The `headers` plugin run directly at `smtp_in_data`, without an engine: what each key does to
//! a message's bytes.

use std::rc::Rc;

use mq_plugin_api::{Control, Data, Envelope, Message, Plugin};
use mq_plugin_headers::{Headers, HeadersConfig};

const MESSAGE: &[u8] = b"Received: from a by b\r\n\
X-Originating-IP: [10.0.0.1]\r\n\
Subject: hello\r\n\
x-originating-ip: [10.0.0.2]\r\n\
X-Mailer: Outlook\r\n\
X-Mailer: again\r\n\
\r\n\
body\r\n";

/// Runs the plugin built from `config` on `message` and returns the control and the bytes after.
fn run(config: &str, message: &[u8]) -> (Control, Vec<u8>) {
    let config: HeadersConfig = toml::from_str(config).expect("the test config is TOML");
    let plugin = Headers::new(&config).expect("the test config is valid");
    let mut data = Data::new(Envelope::default(), Message::parse(message));
    let mut ctx = mq_plugin_api::Host::new(0, Rc::new(smol::LocalExecutor::new())).into_context();
    let control = smol::block_on(plugin.smtp_in_data(&mut ctx, &mut data));
    (control, data.message.to_bytes())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn an_empty_section_changes_nothing_and_continues() {
    let (control, bytes) = run("", MESSAGE);
    assert_eq!(control, Control::Continue);
    assert_eq!(text(&bytes), text(MESSAGE));
}

#[test]
fn remove_drops_every_field_of_the_name_in_any_case() {
    let (_, bytes) = run(r#"remove = ["X-ORIGINATING-IP"]"#, MESSAGE);
    let expected = "Received: from a by b\r\nSubject: hello\r\nX-Mailer: Outlook\r\n\
                    X-Mailer: again\r\n\r\nbody\r\n";
    assert_eq!(text(&bytes), expected);
}

#[test]
fn remove_of_an_absent_field_changes_nothing() {
    let (_, bytes) = run(r#"remove = ["X-Spam-Score"]"#, MESSAGE);
    assert_eq!(text(&bytes), text(MESSAGE));
}

#[test]
fn replace_sets_the_first_occurrence_and_drops_the_others() {
    let config = "[[replace]]\nname = \"X-Mailer\"\nvalue = \"mq\"";
    let (_, bytes) = run(config, MESSAGE);
    let expected = "Received: from a by b\r\nX-Originating-IP: [10.0.0.1]\r\nSubject: hello\r\n\
                    x-originating-ip: [10.0.0.2]\r\nX-Mailer: mq\r\n\r\nbody\r\n";
    assert_eq!(text(&bytes), expected);
}

#[test]
fn replace_of_an_absent_field_adds_nothing() {
    let config = "[[replace]]\nname = \"X-Spam-Score\"\nvalue = \"0\"";
    let (_, bytes) = run(config, MESSAGE);
    assert_eq!(text(&bytes), text(MESSAGE));
}

#[test]
fn add_goes_to_the_bottom_by_default_and_to_the_top_in_listed_order() {
    let config = "[[add]]\nname = \"X-Bottom\"\nvalue = \"1\"\n\
                  [[add]]\nname = \"X-Top-1\"\nvalue = \"a\"\nposition = \"top\"\n\
                  [[add]]\nname = \"X-Top-2\"\nvalue = \"b\"\nposition = \"top\"";
    let (_, bytes) = run(config, b"Subject: hi\r\n\r\nbody\r\n");
    let expected = "X-Top-1: a\r\nX-Top-2: b\r\nSubject: hi\r\nX-Bottom: 1\r\n\r\nbody\r\n";
    assert_eq!(text(&bytes), expected);
}

#[test]
fn remove_then_replace_then_add_in_one_section() {
    let config = r#"
        remove = ["X-Originating-IP", "Received"]

        [[replace]]
        name = "Subject"
        value = "[ext] hello"

        [[add]]
        name = "X-Relayed-By"
        value = "mq"
        position = "top"
    "#;
    let (control, bytes) = run(config, MESSAGE);
    assert_eq!(control, Control::Continue);
    let expected = "X-Relayed-By: mq\r\nSubject: [ext] hello\r\nX-Mailer: Outlook\r\n\
                    X-Mailer: again\r\n\r\nbody\r\n";
    assert_eq!(text(&bytes), expected);
}

#[test]
fn added_fields_follow_the_message_line_endings() {
    let config = "[[add]]\nname = \"X-A\"\nvalue = \"1\"";
    let (_, bytes) = run(config, b"Subject: hi\n\nbody\n");
    assert_eq!(text(&bytes), "Subject: hi\nX-A: 1\n\nbody\n");
}

#[test]
fn the_body_is_never_touched() {
    let body = b"Subject: hi\r\n\r\nX-Originating-IP: not a header here\r\n";
    let (_, bytes) = run(r#"remove = ["X-Originating-IP", "Subject"]"#, body);
    assert_eq!(text(&bytes), "\r\nX-Originating-IP: not a header here\r\n");
}

#[test]
fn a_value_that_would_inject_a_field_is_refused_at_construction() {
    let config: HeadersConfig =
        toml::from_str("[[add]]\nname = \"X-A\"\nvalue = \"x\\r\\nBcc: spy@example.org\"").unwrap();
    let error = Headers::new(&config).unwrap_err();
    assert_eq!(
        error.to_string(),
        "add: the value for \"X-A\" contains a line break"
    );
}

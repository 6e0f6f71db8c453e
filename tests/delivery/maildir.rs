//! Local delivery: a recipient of a local domain lands in its Maildir under the data
//! directory, with `Return-Path:` and `Delivered-To:` lines as Postfix's local(8) adds them,
//! and nothing is asked of DNS.

use crate::support::{Harness, message};

#[test]
fn a_local_recipient_lands_in_its_maildir_with_return_path_and_delivered_to_lines() {
    let harness = Harness::started(|_| {});
    let body = message("for local mailboxes");
    harness.send(
        "carol@remote.test",
        &["bob@local.test", "Dave@LOCAL.test"],
        &body,
    );
    harness.wait_for("both entries to go", || harness.entries().is_empty());

    assert_eq!(
        harness.mailbox("bob@local.test"),
        [format!(
            "Return-Path: <carol@remote.test>\r\nDelivered-To: bob@local.test\r\n{body}"
        )]
    );
    // The domain takes its one spelling, the local part is kept as it came.
    assert_eq!(
        harness.mailbox("Dave@local.test"),
        [format!(
            "Return-Path: <carol@remote.test>\r\nDelivered-To: Dave@local.test\r\n{body}"
        )]
    );
    assert_eq!(
        harness.dns.udp_queries() + harness.dns.tcp_queries(),
        0,
        "local mail needs no DNS"
    );
}

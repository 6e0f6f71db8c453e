//! Signatures made at acceptance, verified by mail-auth with the published keys.

use base64::Engine as _;
use mail_auth::DkimResult;
use mail_auth::dkim::DkimError;
use mq_core::testkit;

use crate::support::{
    AcceptAll, MESSAGE, ed25519_key, fixture, key, queued, records, relay, signature_tags, verify,
};

fn rsa_section(file: &str) -> String {
    key("example.org", "mq2026", "rsa-sha256", &fixture(file))
}

fn assert_all_pass(results: &[DkimResult], count: usize) {
    assert_eq!(results.len(), count, "{results:?}");
    assert!(
        results.iter().all(|r| *r == DkimResult::Pass),
        "{results:?}"
    );
}

#[test]
fn an_rsa_sha256_signature_verifies_independently() {
    let section = rsa_section("rsa-2048.pkcs1.pem");
    let signed = queued(&relay(&section, MESSAGE));
    assert!(signed.starts_with(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;"));
    assert!(
        signed.ends_with(MESSAGE.as_bytes()),
        "the message itself is untouched"
    );
    assert_all_pass(&verify(&signed, &records(&section)), 1);
}

#[test]
fn a_pkcs8_rsa_key_signs_like_its_pkcs1_form() {
    let section = rsa_section("rsa-2048.pkcs8.pem");
    let signed = queued(&relay(&section, MESSAGE));
    assert_all_pass(&verify(&signed, &records(&section)), 1);
    // The same key: the PKCS#1 file's record verifies the PKCS#8 file's signature.
    assert_eq!(
        records(&section),
        records(&rsa_section("rsa-2048.pkcs1.pem"))
    );
}

#[test]
fn an_ed25519_sha256_signature_verifies_independently() {
    let dir = tempfile::tempdir().unwrap();
    let section = key(
        "example.org",
        "ed2026",
        "ed25519-sha256",
        &ed25519_key(dir.path(), "ed.pem"),
    );
    let signed = queued(&relay(&section, MESSAGE));
    assert_eq!(signature_tags(&signed)[0]["a"], "ed25519-sha256");
    assert_all_pass(&verify(&signed, &records(&section)), 1);
}

#[test]
fn an_openssl_ed25519_key_signs_and_publishes_its_public_key() {
    let section = key(
        "example.org",
        "ed",
        "ed25519-sha256",
        &fixture("ed25519.pkcs8.pem"),
    );
    let pem = std::fs::read_to_string(fixture("ed25519.pub.pem")).unwrap();
    let spki: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let spki = base64::engine::general_purpose::STANDARD
        .decode(spki)
        .unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(&spki[spki.len() - 32..]);
    let records = records(&section);
    assert_eq!(records[0].1, format!("v=DKIM1; k=ed25519; p={public}"));
    let signed = queued(&relay(&section, MESSAGE));
    assert_all_pass(&verify(&signed, &records), 1);
}

#[test]
fn an_rsa_and_an_ed25519_key_of_one_domain_both_sign() {
    let dir = tempfile::tempdir().unwrap();
    let ed = ed25519_key(dir.path(), "ed.pem");
    let section = rsa_section("rsa-2048.pkcs1.pem")
        + &key("Example.ORG", "ed2026", "ed25519-sha256", &ed)
        + &key("example.net", "other", "ed25519-sha256", &ed);
    let signed = queued(&relay(&section, MESSAGE));
    let tags = signature_tags(&signed);
    let selectors: Vec<&str> = tags.iter().map(|t| t["s"].as_str()).collect();
    assert_eq!(
        selectors,
        ["mq2026", "ed2026"],
        "the first key's signature on top"
    );
    assert_all_pass(&verify(&signed, &records(&section)), 2);
}

#[test]
fn a_body_changed_after_signing_fails_verification() {
    let section = rsa_section("rsa-2048.pkcs1.pem");
    let signed = String::from_utf8(queued(&relay(&section, MESSAGE))).unwrap();
    let changed = signed.replace("the numbers", "the numb3rs");
    let results = verify(changed.as_bytes(), &records(&section));
    let failed = DkimResult::Neutral(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch));
    assert_eq!(results, [failed]);
}

#[test]
fn a_signed_field_changed_after_signing_fails_verification() {
    let section = rsa_section("rsa-2048.pkcs1.pem");
    let signed = String::from_utf8(queued(&relay(&section, MESSAGE))).unwrap();
    let changed = signed.replace("Subject: Quarterly", "Subject: Yearly");
    let results = verify(changed.as_bytes(), &records(&section));
    assert!(matches!(results[..], [DkimResult::Fail(_)]), "{results:?}");
    // A field that is not signed may change.
    let changed = signed.replace("X-Mailer: test", "X-Mailer: other");
    assert_all_pass(&verify(changed.as_bytes(), &records(&section)), 1);
}

#[test]
fn every_canonicalization_verifies() {
    for c in [
        "simple/simple",
        "simple/relaxed",
        "relaxed/simple",
        "relaxed/relaxed",
        "simple",
    ] {
        let section = format!("canonicalization = \"{c}\"\n") + &rsa_section("rsa-2048.pkcs1.pem");
        let signed = queued(&relay(&section, MESSAGE));
        let expected = if c == "simple" { "simple/simple" } else { c };
        assert_eq!(signature_tags(&signed)[0]["c"], expected);
        assert_all_pass(&verify(&signed, &records(&section)), 1);
    }
}

#[test]
fn relaxed_survives_refolding_that_breaks_simple() {
    let refold = |signed: Vec<u8>| {
        let text = String::from_utf8(signed).unwrap();
        text.replace(
            "Subject: Quarterly  report,\r\n\tfolded",
            "Subject: Quarterly report, folded",
        )
        .replace("Hello Bob,  \r\n", "Hello Bob,\r\n")
    };
    for (c, passes) in [("relaxed/relaxed", true), ("simple/simple", false)] {
        let section = format!("canonicalization = \"{c}\"\n") + &rsa_section("rsa-2048.pkcs1.pem");
        let signed = refold(queued(&relay(&section, MESSAGE)));
        let results = verify(signed.as_bytes(), &records(&section));
        assert_eq!(results == [DkimResult::Pass], passes, "{c}: {results:?}");
    }
}

#[test]
fn the_configured_fields_are_the_ones_in_h() {
    let section = "headers = [\"From\", \"subject\", \"Date\", \"X-Absent\"]\n".to_owned()
        + &rsa_section("rsa-2048.pkcs1.pem");
    let signed = queued(&relay(&section, MESSAGE));
    assert_eq!(signature_tags(&signed)[0]["h"], "From:subject:Date");
    assert_all_pass(&verify(&signed, &records(&section)), 1);
    // `To` is not signed now, so changing it keeps the signature valid.
    let text = String::from_utf8(signed)
        .unwrap()
        .replace("To: Bob", "To: Eve");
    assert_all_pass(&verify(text.as_bytes(), &records(&section)), 1);
}

#[test]
fn a_field_that_occurs_twice_is_signed_twice() {
    let message = MESSAGE.replace("X-Mailer: test\r\n", "Received: one\r\nReceived: two\r\n");
    let section =
        "headers = [\"From\", \"Received\"]\n".to_owned() + &rsa_section("rsa-2048.pkcs1.pem");
    let transcript = relay(&section, &message);
    // mq's own Received field, above the two, is signed too.
    let signed = transcript.queued()[0].message.to_bytes();
    assert_eq!(
        signature_tags(&signed)[0]["h"],
        "From:Received:Received:Received"
    );
    assert_all_pass(&verify(&signed, &records(&section)), 1);
    let swapped = String::from_utf8(signed)
        .unwrap()
        .replace("Received: one", "Received: 1ne");
    assert!(verify(swapped.as_bytes(), &records(&section))[0] != DkimResult::Pass);
}

#[test]
fn a_4096_bit_signature_stays_folded_within_78_characters() {
    let section = key(
        "example.org",
        "big",
        "rsa-sha256",
        &fixture("rsa-4096.pkcs8.pem"),
    );
    let signed = queued(&relay(&section, MESSAGE));
    let text = String::from_utf8(signed.clone()).unwrap();
    let (field, _) = text.split_once("\r\nFrom:").unwrap();
    assert!(field.lines().count() > 10, "{field}");
    assert!(field.lines().all(|line| line.len() <= 79), "{field}");
    assert_all_pass(&verify(&signed, &records(&section)), 1);
}

#[test]
fn the_published_rsa_key_is_what_openssl_writes() {
    let pem = std::fs::read_to_string(fixture("rsa-2048.pub.pem")).unwrap();
    let base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let records = records(&rsa_section("rsa-2048.pkcs1.pem"));
    assert_eq!(
        records,
        [(
            "mq2026._domainkey.example.org".to_owned(),
            format!("v=DKIM1; k=rsa; p={base64}")
        )]
    );
}

#[test]
fn an_authenticated_client_is_signed_for_when_relay_networks_are_not() {
    let section = "sign_all_trusted = false\n".to_owned() + &rsa_section("rsa-2048.pkcs1.pem");
    let run = |authenticate: bool| {
        let mut session = testkit::session()
            .plugin_named("auth", AcceptAll)
            .relay_network()
            .registered("dkim", &section)
            .ehlo("client.example")
            .starttls()
            .ehlo("client.example");
        if authenticate {
            session = session.auth("jane", "secret");
        }
        let transcript = session
            .mail_from("jane@example.org")
            .rcpt_to("bob@example.net")
            .data(MESSAGE)
            .run();
        let text = transcript.to_string();
        assert_eq!(text.contains("S: 235 2.7.0"), authenticate, "{text}");
        queued(&transcript)
    };
    assert_eq!(run(false), MESSAGE.as_bytes());
    assert_all_pass(&verify(&run(true), &records(&section)), 1);
}

#[test]
fn a_1024_bit_rsa_key_is_refused_at_start() {
    let section = key(
        "example.org",
        "old",
        "rsa-sha256",
        &fixture("rsa-1024.pkcs8.pem"),
    );
    let config = toml::from_str(&section).unwrap();
    let error = mq_plugin_dkim::Dkim::new(&config).unwrap_err().to_string();
    assert!(
        error.starts_with("key \"old\" of domain \"example.org\": not a usable rsa-sha256 key"),
        "{error}"
    );
    assert!(
        error.ends_with("RSA keys must be 2048 to 4096 bits"),
        "{error}"
    );
}

#[test]
fn an_ed25519_file_for_an_rsa_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let section = key(
        "example.org",
        "s",
        "rsa-sha256",
        &ed25519_key(dir.path(), "ed.pem"),
    );
    let config = toml::from_str(&section).unwrap();
    assert!(mq_plugin_dkim::Dkim::new(&config).is_err());
    let section = key(
        "example.org",
        "s",
        "ed25519-sha256",
        &fixture("rsa-2048.pkcs1.pem"),
    );
    let config = toml::from_str(&section).unwrap();
    let error = mq_plugin_dkim::Dkim::new(&config).unwrap_err().to_string();
    assert!(
        error.ends_with("the file holds no key of a kind ed25519-sha256 can use"),
        "{error}"
    );
}

#[test]
fn a_key_file_others_can_read_is_refused_at_start_naming_the_file_and_its_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let path = fixture("rsa-2048.pkcs8.pem");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = toml::from_str(&key("example.org", "s", "rsa-sha256", &path)).unwrap();
    let error = mq_plugin_dkim::Dkim::new(&config).unwrap_err().to_string();
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("mode 0644"), "{error}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(mq_plugin_dkim::Dkim::new(&config).is_err());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(mq_plugin_dkim::Dkim::new(&config).is_ok());
}

//! Recipients of the local domains at RCPT: a bare local part made whole, names that can be no
//! mailbox refused, and the local recipient map asked.
//!
//! # Why here, and in this order
//!
//! - `RCPT TO:<user>` becomes `user@<origin>` before the plugins see it, as Postfix appends
//!   `$myorigin`: an alias plugin then matches `user@domain` keys, and the route is the
//!   domain's, never an MX lookup of an empty name. `postmaster` in any case becomes
//!   `postmaster@<first local domain>` (RFC 5321 §4.5.1).
//! - A local part that cannot be a Maildir name is refused before the plugins run: nothing
//!   would ever deliver it, and taking it would only bounce later, to a sender who may be
//!   forged (backscatter).
//! - The map is asked after the plugins, and only for a recipient they left as it came: a
//!   recipient an alias plugin rewrote or expanded exists because the alias does, as Postfix
//!   counts `virtual_alias_maps` keys as known recipients.

use std::sync::Arc;

use mq_plugin_api::{Address, Reply};

use super::config::SmtpConfig;
use super::recipient_map::{RecipientMap, RecipientMapError};
use crate::delivery::maildir;

/// The recipient rules of one server.
#[derive(Debug, Clone)]
pub(crate) struct Recipients {
    /// Where `RCPT TO:<user>` goes: `user@origin`.
    origin: String,
    /// Where `RCPT TO:<postmaster>` goes.
    postmaster: String,
    map: Option<Arc<RecipientMap>>,
}

impl Recipients {
    /// The rules `config` sets, with its map read.
    ///
    /// # Errors
    ///
    /// The map file cannot be read or has a bad line.
    pub(crate) fn new(config: &SmtpConfig) -> Result<Recipients, RecipientMapError> {
        let map = match &config.local_recipient_map {
            Some(path) => Some(Arc::new(RecipientMap::open(path)?)),
            None => None,
        };
        Ok(Recipients {
            origin: config.origin().to_ascii_lowercase(),
            postmaster: config.postmaster_domain().to_ascii_lowercase(),
            map,
        })
    }

    /// `recipient` with a domain: as it came if it has one, else `postmaster@<postmaster
    /// domain>` or `local@<origin>`.
    ///
    /// # Errors
    ///
    /// `501 5.1.3` when the whole address would be too long.
    pub(crate) fn qualify(&self, recipient: Address) -> Result<Address, Reply> {
        if !recipient.domain().is_empty() {
            return Ok(recipient);
        }
        let local = recipient.local_part();
        let whole = if is_postmaster(local) {
            Address::new("postmaster", &self.postmaster)
        } else {
            Address::new(local, &self.origin)
        };
        whole.map_err(|_| Reply::new(501, "5.1.3", "Bad recipient address syntax"))
    }

    /// The address to deliver a recipient of a local domain to, if it exists: postmaster
    /// always (its local part lower-cased), any recipient without a map, else the one the map
    /// knows, spelled as the map spells it.
    pub(crate) async fn known(&self, recipient: &Address) -> Option<Address> {
        let local = recipient.local_part();
        if is_postmaster(local) {
            return Address::new("postmaster", recipient.domain()).ok();
        }
        let Some(map) = &self.map else {
            return Some(recipient.clone());
        };
        let table = map.table().await;
        match table.local_part(recipient)? {
            spelled if spelled == local => Some(recipient.clone()),
            spelled => Address::new(spelled, recipient.domain()).ok(),
        }
    }
}

/// Refuses a recipient of a local domain whose local part can be no Maildir name (`/`, a
/// leading dot, `..`), with `550 5.1.1`: the address is well formed, so no syntax error, but
/// its mailbox cannot exist ("bad destination mailbox address").
pub(crate) fn check_name(recipient: &Address) -> Result<(), Reply> {
    maildir::check_name(recipient.local_part()).map_err(|_| {
        Reply::new(
            550,
            "5.1.1",
            format!("<{recipient}>: Recipient address rejected: Invalid mailbox name"),
        )
    })
}

/// The refusal of a local recipient the map does not know, in Postfix's words.
pub(crate) fn unknown(recipient: &Address) -> Reply {
    Reply::new(
        550,
        "5.1.1",
        format!("<{recipient}>: Recipient address rejected: User unknown in local recipient table"),
    )
}

fn is_postmaster(local: &str) -> bool {
    local.eq_ignore_ascii_case("postmaster")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipients(configure: impl FnOnce(&mut SmtpConfig)) -> Recipients {
        let mut config = SmtpConfig::default();
        configure(&mut config);
        Recipients::new(&config).unwrap()
    }

    fn qualified(recipients: &Recipients, text: &str) -> String {
        recipients
            .qualify(text.parse().unwrap())
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_bare_local_part_gets_the_origin_and_postmaster_the_first_local_domain() {
        let plain = recipients(|_| {});
        assert_eq!(qualified(&plain, "user"), "user@localhost");
        assert_eq!(qualified(&plain, "POSTMASTER"), "postmaster@localhost");
        assert_eq!(qualified(&plain, "a@example.org"), "a@example.org");

        let origin = recipients(|c| {
            c.domains = vec!["mx.example.org".into(), "example.net".into()];
            c.default_domain = Some("Example.org".into());
        });
        assert_eq!(qualified(&origin, "user"), "user@example.org");
        assert_eq!(
            qualified(&origin, "Postmaster"),
            "postmaster@mx.example.org"
        );

        let long = "x".repeat(250);
        assert_eq!(
            plain.qualify(long.parse().unwrap()).unwrap_err().code(),
            501
        );
    }

    #[test]
    fn names_that_can_be_no_mailbox_are_refused() {
        for text in ["a/b@localhost", "..@localhost", ".hidden@localhost"] {
            let reply = check_name(&text.parse().unwrap()).unwrap_err();
            assert_eq!(
                reply.to_string(),
                format!("550 5.1.1 <{text}>: Recipient address rejected: Invalid mailbox name")
            );
        }
        assert!(check_name(&"jane.doe@localhost".parse().unwrap()).is_ok());
    }

    #[test]
    fn without_a_map_every_recipient_is_known_and_postmaster_always() {
        let plain = recipients(|_| {});
        let known = |text: &str| smol::block_on(plain.known(&text.parse().unwrap()));
        assert_eq!(
            known("Anyone@localhost").unwrap().to_string(),
            "Anyone@localhost"
        );
        assert_eq!(
            known("PostMaster@localhost").unwrap().to_string(),
            "postmaster@localhost"
        );
    }

    #[test]
    fn with_a_map_only_its_recipients_are_known_spelled_as_it_spells_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recipients");
        std::fs::write(&path, "jane\n").unwrap();
        let mapped = recipients(|c| c.local_recipient_map = Some(path));
        let known = |text: &str| smol::block_on(mapped.known(&text.parse().unwrap()));
        assert_eq!(
            known("JANE@localhost").unwrap().to_string(),
            "jane@localhost"
        );
        assert_eq!(known("bob@localhost"), None);
        assert_eq!(
            known("postmaster@localhost").unwrap().to_string(),
            "postmaster@localhost"
        );
    }
}

//! The recipients of one mail transaction, each once.
//!
//! # Why duplicates go, and what counts as one
//!
//! - A client that repeats `RCPT TO:<b@example.org>`, or names an alias and one of its members,
//!   or names an alias a hundred times, still gets one delivery per mailbox: the transaction's
//!   recipients are a set, so one message can never turn into `max_recipients` ×
//!   `max_expansion` deliveries (Postfix's cleanup removes duplicates the same way). Each
//!   duplicate RCPT is still answered `250`, as Postfix answers it.
//! - Two addresses are one recipient when they are equal: the domain is compared in its one
//!   spelling ([`normalize_domain`](mq_plugin_api::normalize_domain): case, trailing dot,
//!   IDNA), the local part exactly. Postfix folds the case of the local part too, but mq's
//!   Maildirs keep it (`B@localhost` and `b@localhost` are two mailboxes), so folding it here
//!   could drop mail for one of them; a case-insensitive alias map already keeps one spelling.
//! - The order is the order of first appearance, which keeps the Received field's `for` and
//!   the queue's listing as the client gave them.

use std::collections::HashSet;

use mq_plugin_api::Address;

/// A transaction's recipients in the order first given, without duplicates.
#[derive(Debug, Default)]
pub(crate) struct RecipientSet {
    list: Vec<Address>,
    /// What `list` holds, so that adding costs O(1) however many recipients there are.
    seen: HashSet<Address>,
}

impl RecipientSet {
    /// The recipients in `list` with later duplicates removed.
    pub(crate) fn unique(list: Vec<Address>) -> Vec<Address> {
        let mut recipients = RecipientSet::default();
        recipients.extend(list);
        recipients.take()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
        self.seen.clear();
    }

    /// The recipients, leaving the set empty.
    pub(crate) fn take(&mut self) -> Vec<Address> {
        self.seen.clear();
        std::mem::take(&mut self.list)
    }
}

impl Extend<Address> for RecipientSet {
    /// Adds each address that is not there yet.
    fn extend<I: IntoIterator<Item = Address>>(&mut self, addresses: I) {
        for address in addresses {
            if !self.seen.contains(&address) {
                self.seen.insert(address.clone());
                self.list.push(address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(text: &[&str]) -> Vec<Address> {
        text.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_recipient_given_again_in_another_spelling_of_its_domain_is_kept_once() {
        let mut recipients = RecipientSet::default();
        recipients.extend(addresses(&["b@localhost", "b@LOCALHOST.", "c@x"]));
        recipients.extend(addresses(&["b@Localhost", "B@localhost"]));
        let kept: Vec<String> = recipients.take().iter().map(ToString::to_string).collect();
        assert_eq!(kept, ["b@localhost", "c@x", "B@localhost"]);
        assert!(recipients.is_empty());
    }

    #[test]
    fn unique_keeps_the_first_of_each() {
        let kept = RecipientSet::unique(addresses(&["a@x", "b@x", "a@X", "a@x"]));
        assert_eq!(kept, addresses(&["a@x", "b@x"]));
    }
}

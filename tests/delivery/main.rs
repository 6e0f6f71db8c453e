//! mq's outbound delivery over real loopback sockets, built as one test binary.
//!
//! Every test runs the real scheduler on its own runtime, over its own queue in a temporary data
//! directory, against servers it starts on loopback: a scripted SMTP sink, a DNS server, and the
//! paced sink of this binary. Nothing ever asks a real nameserver: every resolver points at the
//! test's DNS server.
//!
//! One module per area; `support` holds the harness, `paced` the sink that answers late.
//!
//! - `smtp`: 2xx, 4xx then 2xx, 5xx on one recipient, a mid-DATA disconnect, a silent server.
//! - `bounce`: the DSN of a refused recipient (an insta snapshot) and of an expired entry.
//! - `esmtp`: SMTPUTF8 only to servers that offer it; DSN parameters passed on and honoured in
//!   mq's own reports.
//! - `maildir`: local recipients land in their Maildir.
//! - `mx`: routes from the test DNS server: preference, A fallback, null MX, TCP after TC.
//! - `loops`: mail for a domain whose MX host is mq itself bounces (5.4.6) instead of looping.
//! - `fanout`: an MX answer of thousands of hosts costs one attempt a bounded number of DNS
//!   queries and connections, and an attempt ends at its deadline.
//! - `credentials`: a relay's password goes only to a certificate that verifies.
//! - `connections`: throttles hold connection counts; one connection carries many messages.
//! - `cache`: idle connections kept for the next job, closed when idle too long, replaced when
//!   the server closed them.
//! - `plugins`: a plugin of this binary rewrites the MIME at `smtp_out_data`.
//! - `observers`: a `delivery_result` observer that waits delays no delivery; shutdown waits
//!   for it.
//! - `recipients`: over SMTP into delivery: duplicates once, one spelling of a domain, aliases.
//! - `restart`: SIGKILL mid-delivery, then a restart delivers every message at least once.
//!
//! Every `#[plugin]` in this binary is linked in, but a harness enables only the plugins its
//! test names, and they act only on domains of their own.

mod bounce;
mod cache;
mod connections;
mod credentials;
mod esmtp;
mod fanout;
mod loops;
mod maildir;
mod mx;
mod observers;
mod paced;
mod plugins;
mod recipients;
mod restart;
mod smtp;
mod support;

// Linked in for `recipients`, which enables it; every other harness leaves it disabled.
use mq_plugin_aliases as _;

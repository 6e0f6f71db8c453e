//! mq's SMTP server over real loopback sockets, built as one test binary.
//!
//! One module per area; `support` holds the server harness and the raw client.
//!
//! - `python`: an independent client, python3's smtplib, through the whole dialogue, STARTTLS
//!   and AUTH.
//! - `pipelining`: many commands in one write, and plaintext pipelined behind STARTTLS.
//! - `esmtp`: SMTPUTF8 and DSN: advertised, their parameters checked and kept.
//! - `auth`: the AUTH exchanges byte by byte.
//! - `recipients`: bare local parts, mailbox names and the local recipient map at RCPT.
//! - `relay`: who may relay, and what authenticated submissions get.
//! - `limits`: each configured limit and the reply that enforces it.
//! - `listen`: a port another socket holds is refused.
//! - `reload`: new settings, certificate and AUTH users for the sessions after a reload.
//! - `smuggling`: bare line endings in DATA end nothing and queue nothing.
//! - `hostile`: malformed input always gets a reply and never breaks the server.
//! - `plugins`: plugins of this binary refusing, rewriting and checking at the inbound hooks.
//! - `concurrency`: many clients across two cores.
//! - `crash`: kill -9 under load, then every acknowledged message is there exactly once.
//! - `full_disk`: 451 while the queue's disk is full, 250 again once space is freed.
//!
//! Every `#[plugin]` in this binary is linked into every server it starts: the plugins act only
//! on addresses of their own, so other tests do not see them.

mod auth;
mod concurrency;
mod crash;
mod esmtp;
mod full_disk;
mod hostile;
mod limits;
mod listen;
mod pipelining;
mod plugins;
mod python;
mod recipients;
mod relay;
mod reload;
mod smuggling;
mod support;

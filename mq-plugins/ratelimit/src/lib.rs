//! mq's `ratelimit` plugin: token-bucket limits per client IP, user, sender or recipient domain.
//!
//! Each `[[plugins.ratelimit.limit]]` gives every value of its key a bucket of `burst` tokens
//! (default `rate`) that refills at `rate` per `per`. A step takes one token from the bucket of
//! each limit on its key; a step that finds a bucket empty is refused, as Postfix's anvil
//! refuses, with a temporary error the client retries later:
//!
//! | key | checked at | refused with |
//! | --- | --- | --- |
//! | `client_ip` | `smtp_in_connect` | `421 4.7.1 Error: too many connections from 192.0.2.1; try again later` |
//! | `user` | `smtp_in_mail_from` | `451 4.7.1 Error: too many messages from jane; try again later` |
//! | `sender_domain` | `smtp_in_mail_from` | `451 4.7.1 Error: too many messages from example.org; try again later` |
//! | `recipient_domain` | `smtp_in_rcpt_to` | `451 4.7.1 Error: too many messages to example.net; try again later` |
//!
//! Unauthenticated sessions have no `user` bucket and the null sender `<>` no `sender_domain`
//! one. Domains are compared in the one spelling every address has (lower case, no trailing
//! dot, IDNA ASCII form), so `LOOP.TEST.` and `loop.test` share a bucket; IPv4 clients seen as
//! `::ffff:a.b.c.d` count as `a.b.c.d`, and IPv6 clients by their network of `ipv6_prefix` bits
//! (default 64), written `2001:db8:1:2::/64`.
//!
//! # Layout
//!
//! - `lib.rs`: [`RateLimit`], the plugin, its hooks and its registration as `ratelimit`.
//! - `config`: [`RateLimitConfig`] and its [`LimitConfig`]s, checked into [`InvalidConfig`].
//! - `bucket`: the token bucket and the memory backend, one map shared by the worker cores.
//! - `redis`: the Redis backend: the bucket as a Lua script, one connection per core, made on
//!   first use and remade after a failure; `link` is that connection, `resp` its wire protocol,
//!   `url` reads `redis_url`.
//!
//! # Why these choices
//!
//! - **421 at connect, 451 elsewhere.** A refused greeting must be 421 (RFC 5321 §3.8: the
//!   server closes the connection); MAIL and RCPT take 451 and the session goes on.
//! - **Fail open.** When Redis cannot be reached or does not answer within `redis_timeout`, the
//!   step goes on and the plugin logs a warning: a limiter must not stop mail. After a failure
//!   it does not ask Redis again for a second, so a dead Redis costs each message nothing.
//! - **Attempts count.** Each limit takes its token when checked, even if another limit of the
//!   same step then refuses: what is limited is the rate of attempts, as anvil counts them.
//! - **A hand-written Redis client.** The `redis` crate's async support (even `smol-comp`) pulls
//!   in tokio, which mq keeps out; the plugin needs four commands, so it speaks RESP2 itself on
//!   smol.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//!
//! use mq_plugin_api::{Address, Context, Event, MailFrom, Plugin, PluginConfig};
//! use mq_plugin_ratelimit::{RateLimit, RateLimitConfig};
//!
//! let section: RateLimitConfig =
//!     toml::from_str("[[limit]]\nkey = \"sender_domain\"\nrate = 2\nper = \"1m\"").unwrap();
//! let config = PluginConfig::new("ratelimit", 0, toml::Table::new());
//! let plugin = RateLimit::new(&section, &config).unwrap();
//! let mut ctx = mq_plugin_api::Host::new(0, Rc::new(smol::LocalExecutor::new())).into_context();
//! let replies: Vec<_> = (0..3)
//!     .map(|_| {
//!         let mut event = MailFrom::new("a@example.org".parse::<Address>().unwrap());
//!         let _ = smol::block_on(plugin.smtp_in_mail_from(&mut ctx, &mut event));
//!         event.reply().map(ToString::to_string)
//!     })
//!     .collect();
//! assert_eq!(replies[..2], [None, None]);
//! assert_eq!(
//!     replies[2].as_deref(),
//!     Some("451 4.7.1 Error: too many messages from example.org; try again later"),
//! );
//! ```

mod bucket;
mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod link;
mod redis;
mod resp;
mod url;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use mq_plugin_api::{
    Connect, Context, Control, Counter, MailFrom, Plugin, PluginConfig, RcptTo, Reply, hooks,
    plugin,
};

use crate::bucket::{Limit, MemoryStore};
use crate::redis::{RedisError, RedisStore};
use crate::url::RedisUrl;

pub use config::{Backend, InvalidConfig, LimitConfig, LimitKey, RateLimitConfig};

/// The `ratelimit` plugin: refuses connections, senders and recipients over their limits.
///
/// One instance runs per worker core. With the memory backend the instances share one map of
/// buckets (through [`PluginConfig::shared`]); with Redis each core keeps its own connection and
/// Redis holds the buckets for every process.
#[derive(Debug)]
pub struct RateLimit {
    limits: Vec<Limit>,
    /// Each limit's number in the section, from 1, as errors and `/metrics` name it.
    numbers: Vec<String>,
    /// Steps refused, by limit: `mq_plugin_ratelimit_refused_total{limit="1",key="user"}`.
    refused: Counter,
    store: Store,
    /// The bits of an IPv6 client's address that name its bucket.
    ipv6_prefix: u8,
}

/// Where this instance's buckets live.
#[derive(Debug)]
enum Store {
    Memory(Arc<MemoryStore>),
    Redis(RedisStore),
}

#[plugin(name = "ratelimit")]
impl RateLimit {
    /// The plugin for `section`, sharing its memory buckets with the instances built from
    /// configs that share `config`'s [`SharedState`](mq_plugin_api::SharedState).
    ///
    /// # Errors
    ///
    /// The section fails [`RateLimitConfig::validate`]; the engine then refuses to start and
    /// names the plugin.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::PluginConfig;
    /// use mq_plugin_ratelimit::{RateLimit, RateLimitConfig};
    ///
    /// let bad: RateLimitConfig =
    ///     toml::from_str("[[limit]]\nkey = \"user\"\nrate = 0\nper = \"1m\"").unwrap();
    /// let config = PluginConfig::new("ratelimit", 0, toml::Table::new());
    /// let error = RateLimit::new(&bad, &config).unwrap_err();
    /// assert_eq!(error.to_string(), "limit 1 (user): rate must be at least 1");
    /// ```
    pub fn new(
        section: &RateLimitConfig,
        config: &PluginConfig,
    ) -> Result<RateLimit, InvalidConfig> {
        section.validate()?;
        let store = match section.backend {
            Backend::Memory => Store::Memory(config.shared(MemoryStore::default)),
            Backend::Redis => {
                let url = RedisUrl::parse(&section.redis_url).map_err(InvalidConfig::RedisUrl)?;
                Store::Redis(RedisStore::new(
                    url,
                    &section.key_prefix,
                    section.redis_timeout,
                ))
            }
        };
        let limits = section.limits.iter().map(Limit::new).collect();
        let refused = config.counter(
            "refused",
            "Steps refused because a limit's bucket was empty, by limit (its number in the section) and key.",
            &["limit", "key"],
        );
        Ok(RateLimit {
            limits,
            numbers: (1..=section.limits.len()).map(|n| n.to_string()).collect(),
            refused,
            store,
            ipv6_prefix: section.ipv6_prefix,
        })
    }

    /// Takes a token for `value` from each limit on `key`; whether one of them was empty.
    /// A backend that cannot answer lets the step through (see the crate docs).
    async fn exceeded(&self, ctx: &Context, key: LimitKey, value: &str) -> bool {
        let mut exceeded = false;
        let numbered = self.limits.iter().zip(&self.numbers);
        for (limit, number) in numbered.filter(|(limit, _)| limit.key == key) {
            let allowed = match &self.store {
                Store::Memory(store) => Ok(store.take(limit, value, Instant::now())),
                Store::Redis(store) => store.take(ctx, limit, value).await,
            };
            match allowed {
                Ok(true) => {}
                Ok(false) => {
                    self.refused.inc(&[number, key.name()]);
                    exceeded = true;
                }
                Err(RedisError::Waiting) => ctx.debug("redis is down; not limiting"),
                Err(error) => ctx.warn(format_args!("{error}; not limiting")),
            }
        }
        exceeded
    }

    fn has(&self, key: LimitKey) -> bool {
        self.limits.iter().any(|limit| limit.key == key)
    }
}

/// The `client_ip` bucket of `ip`: an IPv4 address (also when seen as `::ffff:a.b.c.d`), or
/// the IPv6 network of its first `ipv6_prefix` bits, such as `2001:db8:1:2::/64`.
fn client_key(ip: std::net::IpAddr, ipv6_prefix: u8) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            let network = std::net::Ipv6Addr::from_bits(v6.to_bits() & mask);
            format!("{network}/{bits}")
        }
        v4 @ std::net::IpAddr::V4(_) => v4.to_string(),
    }
}

/// The temporary refusal of a step over its limit.
fn too_many(code: u16, what: &str, value: &str) -> Reply {
    Reply::new(
        code,
        "4.7.1",
        format!("Error: too many {what} {value}; try again later"),
    )
}

#[hooks]
impl Plugin for RateLimit {
    async fn smtp_in_connect(&self, ctx: &mut Context, event: &mut Connect) -> Control {
        if !self.has(LimitKey::ClientIp) {
            return Control::Continue;
        }
        let ip = client_key(event.client_ip(), self.ipv6_prefix);
        if self.exceeded(ctx, LimitKey::ClientIp, &ip).await {
            return event.reject(too_many(421, "connections from", &ip));
        }
        Control::Continue
    }

    async fn smtp_in_mail_from(&self, ctx: &mut Context, event: &mut MailFrom) -> Control {
        if self.has(LimitKey::User)
            && let Some(user) = ctx.session().user.clone()
            && self.exceeded(ctx, LimitKey::User, &user).await
        {
            return event.reject(too_many(451, "messages from", &user));
        }
        if !self.has(LimitKey::SenderDomain) {
            return Control::Continue;
        }
        let domain = event.sender.domain().to_ascii_lowercase();
        if !domain.is_empty() && self.exceeded(ctx, LimitKey::SenderDomain, &domain).await {
            return event.reject(too_many(451, "messages from", &domain));
        }
        Control::Continue
    }

    async fn smtp_in_rcpt_to(&self, ctx: &mut Context, event: &mut RcptTo) -> Control {
        if !self.has(LimitKey::RecipientDomain) {
            return Control::Continue;
        }
        // One token per domain among this RCPT's recipients (one, unless a plugin expanded it).
        let domains: BTreeSet<String> = event
            .recipients
            .iter()
            .map(|recipient| recipient.domain().to_ascii_lowercase())
            .filter(|domain| !domain.is_empty())
            .collect();
        for domain in domains {
            if self.exceeded(ctx, LimitKey::RecipientDomain, &domain).await {
                return event.reject(too_many(451, "messages to", &domain));
            }
        }
        Control::Continue
    }
}

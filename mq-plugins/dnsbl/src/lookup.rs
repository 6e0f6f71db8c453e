//! Asking every zone at once, and reading the answers in the zones' order.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use mq_plugin_api::{Context, Counter, Dns, DnsFailure, TimeoutExt};

use crate::{Network, query_name};

/// The zones and what counts as a listing: everything a lookup needs.
#[derive(Debug, Clone)]
pub(crate) struct Zones {
    /// Without trailing dots, in the configured order.
    pub(crate) names: Vec<String>,
    pub(crate) timeout: Duration,
    /// Empty: the RFC 5782 default (see [`Zones::lists`]).
    pub(crate) listed: Vec<Network>,
    /// Lookups that gave no verdict, by zone:
    /// `mq_plugin_dnsbl_lookup_failures_total{zone="..."}`.
    pub(crate) failures: Counter,
}

/// The zone that listed a client, and the answer it gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listing<'a> {
    pub(crate) zone: &'a str,
    pub(crate) answer: Ipv4Addr,
}

/// What one zone said about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Listed(Ipv4Addr),
    NotListed,
    /// No usable answer (a timeout, a failure, an error code): counts as not listed.
    Unknown(String),
}

/// What the answers so far decide, read in the zones' order.
enum Decision {
    /// A zone before the first listing one has not answered yet.
    Waiting,
    Listed(usize, Ipv4Addr),
    NotListed,
}

impl Zones {
    /// The first zone, in configured order, that lists `ip`.
    ///
    /// Every zone is asked at once, each for at most [`budget`]; the answers are read as they
    /// come, and the result is known as soon as every zone before a listing one has answered,
    /// so a slow zone late in the list does not hold up a rejection by an earlier one.
    pub(crate) async fn first_listing(&self, ctx: &Context, ip: IpAddr) -> Option<Listing<'_>> {
        let budget = budget(ctx, self.timeout);
        let dns = ctx.dns();
        let mut pending: FuturesUnordered<_> = self
            .names
            .iter()
            .enumerate()
            .map(|(index, zone)| async move { (index, self.ask(dns, ip, zone, budget).await) })
            .collect();
        let mut verdicts = vec![None; self.names.len()];
        while let Some((index, verdict)) = pending.next().await {
            if let Verdict::Unknown(why) = &verdict {
                self.failures.inc(&[&self.names[index]]);
                ctx.warn(format_args!(
                    "{}: no verdict on [{ip}]: {why}",
                    self.names[index]
                ));
            }
            verdicts[index] = Some(verdict);
            match decide(&verdicts) {
                Decision::Waiting => {}
                Decision::NotListed => return None,
                Decision::Listed(index, answer) => {
                    let zone = &self.names[index];
                    return Some(Listing { zone, answer });
                }
            }
        }
        None
    }

    async fn ask(&self, dns: &dyn Dns, ip: IpAddr, zone: &str, budget: Duration) -> Verdict {
        match dns.lookup_a(&query_name(ip, zone)).timeout(budget).await {
            Err(_) => Verdict::Unknown(format!("no answer within {budget:?}")),
            Ok(Err(DnsFailure::NotFound | DnsFailure::NoRecords)) => Verdict::NotListed,
            Ok(Err(failure)) => Verdict::Unknown(failure.to_string()),
            Ok(Ok(answers)) => self.judge(&answers),
        }
    }

    /// A listing answer if there is one; else an error code if there is one; else not listed.
    fn judge(&self, answers: &[Ipv4Addr]) -> Verdict {
        if let Some(&answer) = answers.iter().find(|a| self.lists(**a)) {
            return Verdict::Listed(answer);
        }
        match answers.iter().find(|a| is_error_code(**a)) {
            Some(code) => Verdict::Unknown(format!("the zone answered {code}, an error code")),
            None => Verdict::NotListed,
        }
    }

    /// Whether `answer` lists the client: one of `listed`, or by default (RFC 5782 §2.3) any
    /// loopback address that is not an error code.
    fn lists(&self, answer: Ipv4Addr) -> bool {
        if self.listed.is_empty() {
            answer.octets()[0] == 127 && !is_error_code(answer)
        } else {
            self.listed.iter().any(|n| n.contains(answer.into()))
        }
    }
}

/// `127.255.255.0/24`: what DNSBLs (Spamhaus among them) answer for "query refused", "rate
/// limited" or "typo in the zone", never a listing.
fn is_error_code(answer: Ipv4Addr) -> bool {
    matches!(answer.octets(), [127, 255, 255, _])
}

/// The wait for one lookup: `limit`, but no more than nine tenths of the hook's time left, so
/// that our own timeout fires first and lets the client in, rather than the engine's deadline
/// failing the connection.
fn budget(ctx: &Context, limit: Duration) -> Duration {
    let remaining = ctx.remaining();
    limit.min(remaining.saturating_sub(remaining / 10))
}

fn decide(verdicts: &[Option<Verdict>]) -> Decision {
    for (index, verdict) in verdicts.iter().enumerate() {
        match verdict {
            None => return Decision::Waiting,
            Some(Verdict::Listed(answer)) => return Decision::Listed(index, *answer),
            Some(Verdict::NotListed | Verdict::Unknown(_)) => {}
        }
    }
    Decision::NotListed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(listed: &[&str]) -> Zones {
        Zones {
            names: vec!["zen.example".into()],
            timeout: Duration::from_secs(1),
            listed: listed.iter().map(|n| n.parse().unwrap()).collect(),
            failures: mq_plugin_api::PluginConfig::new("dnsbl", 0, toml::Table::new()).counter(
                "lookup_failures",
                "",
                &["zone"],
            ),
        }
    }

    fn judge(zones: &Zones, answers: &[[u8; 4]]) -> Verdict {
        let answers: Vec<Ipv4Addr> = answers.iter().map(|a| Ipv4Addr::from(*a)).collect();
        zones.judge(&answers)
    }

    #[test]
    fn by_default_any_loopback_answer_but_an_error_code_lists() {
        let zones = zones(&[]);
        let listed = Verdict::Listed(Ipv4Addr::new(127, 0, 0, 10));
        assert_eq!(judge(&zones, &[[127, 0, 0, 10]]), listed);
        assert_eq!(judge(&zones, &[[192, 0, 2, 1]]), Verdict::NotListed);
        assert!(matches!(
            judge(&zones, &[[127, 255, 255, 254]]),
            Verdict::Unknown(_)
        ));
        assert_eq!(judge(&zones, &[]), Verdict::NotListed);
    }

    #[test]
    fn a_listing_answer_beside_an_error_code_still_lists() {
        let verdict = judge(&zones(&[]), &[[127, 255, 255, 252], [127, 0, 0, 4]]);
        assert_eq!(verdict, Verdict::Listed(Ipv4Addr::new(127, 0, 0, 4)));
    }

    #[test]
    fn configured_answers_replace_the_default() {
        let zones = zones(&["127.0.0.2", "127.0.1.0/24"]);
        assert_eq!(judge(&zones, &[[127, 0, 0, 3]]), Verdict::NotListed);
        let verdict = judge(&zones, &[[127, 0, 0, 3], [127, 0, 1, 9]]);
        assert_eq!(verdict, Verdict::Listed(Ipv4Addr::new(127, 0, 1, 9)));
    }

    #[test]
    fn the_first_listing_zone_decides_once_those_before_it_answered() {
        let listed = || Some(Verdict::Listed(Ipv4Addr::new(127, 0, 0, 2)));
        let unknown = || Some(Verdict::Unknown("timeout".into()));
        assert!(matches!(decide(&[None, listed()]), Decision::Waiting));
        assert!(matches!(decide(&[listed(), None]), Decision::Listed(0, _)));
        let verdicts = [Some(Verdict::NotListed), unknown(), listed(), None];
        assert!(matches!(decide(&verdicts), Decision::Listed(2, _)));
        let verdicts = [Some(Verdict::NotListed), unknown()];
        assert!(matches!(decide(&verdicts), Decision::NotListed));
        assert!(matches!(decide(&[]), Decision::NotListed));
    }
}

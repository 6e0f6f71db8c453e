//! Configured domains in their one spelling: `[smtp] domains`, `[delivery.routes]` and
//! `[delivery.throttle.domains]` are read through [`normalize_domain`], the form every parsed
//! [`Address`](mq_plugin_api::Address) has, so a lookup by an address's domain finds them.

use std::collections::BTreeMap;

use mq_plugin_api::normalize_domain;
use serde::{Deserialize, Deserializer, de::Error};

/// A list of domains, each normalized; one given twice in two spellings is kept once.
pub(crate) fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let mut domains: Vec<String> = Vec::new();
    for domain in Vec::<String>::deserialize(deserializer)? {
        let domain = normalize_domain(&domain).map_err(D::Error::custom)?;
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    Ok(domains)
}

/// A table by domain, its keys normalized; two keys that are one domain are an error.
pub(crate) fn keys<'de, D, M, V>(deserializer: D) -> Result<M, D::Error>
where
    D: Deserializer<'de>,
    M: Default + Extend<(String, V)>,
    V: Deserialize<'de>,
{
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut table = M::default();
    for (given, value) in BTreeMap::<String, V>::deserialize(deserializer)? {
        let domain = normalize_domain(&given).map_err(D::Error::custom)?;
        if let Some(first) = seen.insert(domain.clone(), given.clone()) {
            return Err(D::Error::custom(format!(
                "domains {first:?} and {given:?} are one domain, {domain:?}"
            )));
        }
        table.extend([(domain, value)]);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Section {
        #[serde(deserialize_with = "super::list")]
        domains: Vec<String>,
        #[serde(default, deserialize_with = "super::keys")]
        routes: HashMap<String, u16>,
    }

    #[test]
    fn configured_domains_take_the_one_spelling() {
        let section: Section = toml::from_str(
            "domains = [\"LOCALHOST.\", \"localhost\", \"B\u{fc}cher.example\"]\n\
             [routes]\n\"Loop.Test.\" = 1",
        )
        .unwrap();
        assert_eq!(section.domains, ["localhost", "xn--bcher-kva.example"]);
        assert_eq!(section.routes["loop.test"], 1);
    }

    #[test]
    fn two_spellings_of_one_route_are_refused() {
        let error = toml::from_str::<Section>(
            "domains = []\n[routes]\n\"loop.test\" = 1\n\"LOOP.TEST.\" = 2",
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("are one domain"), "{error}");
        let error = toml::from_str::<Section>("domains = [\".\"]")
            .err()
            .unwrap();
        assert!(error.to_string().contains("not a valid domain"), "{error}");
    }
}

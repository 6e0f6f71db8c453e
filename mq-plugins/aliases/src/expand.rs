//! Recursive expansion of recipients through an [`AliasMap`], with depth, size and loop guards.

use std::collections::HashSet;
use std::fmt;

use mq_plugin_api::{Address, Reply};

use crate::map::{AliasMap, Target};

/// How far an expansion may go: see [`AliasMap::expand`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How many aliases deep one chain may go: `a → b → c` is two deep.
    pub max_depth: usize,
    /// How many recipients the expansion may end with.
    pub max_expansion: usize,
}

impl Default for Limits {
    /// Ten deep, a thousand recipients: the config's defaults.
    fn default() -> Limits {
        Limits {
            max_depth: 10,
            max_expansion: 1000,
        }
    }
}

/// What recipients expanded to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expansion {
    /// The final recipients, each once (compared as the map compares), in the order reached.
    pub recipients: Vec<Address>,
    /// Addresses where a loop was cut (`a → b → a`): kept as recipients, not expanded again.
    /// An address that lists itself (`a → a, b`) is no loop and is not here.
    pub loops: Vec<Address>,
}

/// An expansion that went past its [`Limits`] or made an address that cannot be one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpandError {
    /// The chain reached `address`, which has an entry, `max_depth` aliases deep.
    TooDeep {
        /// The address that would have been expanded once too often.
        address: Address,
        /// The limit.
        max_depth: usize,
    },
    /// The expansion grew past `max_expansion` recipients.
    TooLarge {
        /// The limit.
        max_expansion: usize,
    },
    /// An `@domain` result made an address that is not one (too long).
    Invalid {
        /// The text the result made.
        address: String,
    },
}

impl ExpandError {
    /// The reply that refuses the RCPT: `451 4.3.0`, since a fixed map lets a retry through.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = mq_plugin_aliases::ExpandError::TooLarge { max_expansion: 3 };
    /// assert_eq!(error.reply().to_string(), "451 4.3.0 Error: alias expansion too large");
    /// ```
    pub fn reply(&self) -> Reply {
        Reply::tempfail(match self {
            ExpandError::TooDeep { .. } => "Error: alias expansion too deep",
            ExpandError::TooLarge { .. } => "Error: alias expansion too large",
            ExpandError::Invalid { .. } => "Error: alias expansion failed",
        })
    }
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::TooDeep { address, max_depth } => {
                write!(f, "alias chain deeper than {max_depth} at {address}")
            }
            ExpandError::TooLarge { max_expansion } => {
                write!(f, "alias expansion to more than {max_expansion} recipients")
            }
            ExpandError::Invalid { address } => {
                write!(f, "alias result {address:?} is not an address")
            }
        }
    }
}

impl std::error::Error for ExpandError {}

impl AliasMap {
    /// Expands `recipients` through the map, recursively; `None` when none has an entry.
    ///
    /// Each address with an entry is replaced by its results, depth first and in the order
    /// written; an address without one stays. An address reached again inside its own chain is
    /// kept and not expanded again (`a → a` delivers to `a` itself, Postfix's "alias to self";
    /// `a → b → a` is a loop, cut at `a`). Recipients that the map compares equal are kept once,
    /// first spelling first.
    ///
    /// # Errors
    ///
    /// A chain with an entry at `max_depth`, more than `max_expansion` recipients, or an
    /// `@domain` result that makes too long an address.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_aliases::{AliasMap, Limits};
    ///
    /// let map = AliasMap::parse("team@x jane@x, ops@x\nops@x bob@y, jane@x\n", false).unwrap();
    /// let expansion = map.expand(&["team@x".parse().unwrap()], Limits::default()).unwrap();
    /// let names: Vec<String> = expansion.unwrap().recipients.iter().map(|a| a.to_string()).collect();
    /// assert_eq!(names, ["jane@x", "bob@y"]);
    /// assert_eq!(map.expand(&["bob@y".parse().unwrap()], Limits::default()), Ok(None));
    /// ```
    pub fn expand(
        &self,
        recipients: &[Address],
        limits: Limits,
    ) -> Result<Option<Expansion>, ExpandError> {
        if !recipients.iter().any(|r| self.lookup(r).is_some()) {
            return Ok(None);
        }
        let mut walk = Walk {
            map: self,
            limits,
            chain: Vec::new(),
            done: HashSet::new(),
            kept: HashSet::new(),
            out: Expansion {
                recipients: Vec::new(),
                loops: Vec::new(),
            },
        };
        for recipient in recipients {
            walk.visit(recipient.clone())?;
        }
        Ok(Some(walk.out))
    }
}

/// One expansion in progress.
struct Walk<'m> {
    map: &'m AliasMap,
    limits: Limits,
    /// The keys of the addresses being expanded, outermost first: what a loop is checked on.
    chain: Vec<String>,
    /// The keys expanded already: their results are out, a second visit adds nothing. This also
    /// bounds the work by the map's size, however the entries fan out.
    done: HashSet<String>,
    /// The keys of the recipients in `out`, to keep each once.
    kept: HashSet<String>,
    out: Expansion,
}

impl Walk<'_> {
    fn visit(&mut self, address: Address) -> Result<(), ExpandError> {
        let key = self.map.key(&address);
        let Some(targets) = self.map.lookup(&address) else {
            return self.keep(address, key);
        };
        if let Some(at) = self.chain.iter().position(|k| *k == key) {
            if at + 1 != self.chain.len() {
                self.out.loops.push(address.clone());
            }
            return self.keep(address, key);
        }
        if self.done.contains(&key) {
            return Ok(());
        }
        if self.chain.len() >= self.limits.max_depth {
            let max_depth = self.limits.max_depth;
            return Err(ExpandError::TooDeep { address, max_depth });
        }
        self.chain.push(key);
        for target in targets {
            self.visit(resolve(target, &address)?)?;
        }
        let key = self.chain.pop().unwrap_or_default();
        self.done.insert(key);
        Ok(())
    }

    fn keep(&mut self, address: Address, key: String) -> Result<(), ExpandError> {
        if self.kept.insert(key) {
            self.out.recipients.push(address);
        }
        if self.out.recipients.len() > self.limits.max_expansion {
            let max_expansion = self.limits.max_expansion;
            return Err(ExpandError::TooLarge { max_expansion });
        }
        Ok(())
    }
}

/// The address a result stands for when `address` matched its entry.
fn resolve(target: &Target, address: &Address) -> Result<Address, ExpandError> {
    match target {
        Target::Address(result) => Ok(result.clone()),
        Target::Domain(domain) => Address::new(address.local_part(), domain).map_err(|_| {
            let address = format!("{}@{domain}", address.local_part());
            ExpandError::Invalid { address }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(map: &str, recipients: &[&str], limits: Limits) -> Result<Vec<String>, ExpandError> {
        let map = AliasMap::parse(map, false).unwrap();
        let recipients: Vec<Address> = recipients.iter().map(|r| r.parse().unwrap()).collect();
        let expansion = map.expand(&recipients, limits)?;
        let out = expansion.map_or(recipients, |e| e.recipients);
        Ok(out.iter().map(ToString::to_string).collect())
    }

    fn chain(links: usize) -> String {
        let lines: Vec<String> = (0..links).map(|i| format!("a{i}@x a{}@x", i + 1)).collect();
        lines.join("\n")
    }

    #[test]
    fn a_chain_as_deep_as_the_limit_expands_and_one_deeper_fails() {
        let limits = Limits {
            max_depth: 3,
            max_expansion: 10,
        };
        assert_eq!(expand(&chain(3), &["a0@x"], limits).unwrap(), ["a3@x"]);
        let error = expand(&chain(4), &["a0@x"], limits).unwrap_err();
        assert_eq!(error.to_string(), "alias chain deeper than 3 at a3@x");
    }

    #[test]
    fn the_size_limit_counts_final_recipients_after_duplicates_go() {
        let map = "l@x a@x, b@x, a@x, c@x\n";
        let limits = Limits {
            max_depth: 10,
            max_expansion: 3,
        };
        assert_eq!(
            expand(map, &["l@x"], limits).unwrap(),
            ["a@x", "b@x", "c@x"]
        );
        let limits = Limits {
            max_depth: 10,
            max_expansion: 2,
        };
        assert!(matches!(
            expand(map, &["l@x"], limits),
            Err(ExpandError::TooLarge { max_expansion: 2 })
        ));
    }

    #[test]
    fn a_loop_is_cut_where_it_closes_and_reported() {
        let map = AliasMap::parse("a@x b@x\nb@x c@y, a@x\n", false).unwrap();
        let expansion = map
            .expand(&["a@x".parse().unwrap()], Limits::default())
            .unwrap()
            .unwrap();
        let text = |v: &[Address]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(text(&expansion.recipients), ["c@y", "a@x"]);
        assert_eq!(text(&expansion.loops), ["a@x"]);
    }

    #[test]
    fn an_alias_to_itself_is_kept_and_is_no_loop() {
        let map = AliasMap::parse("a@x a@x, b@x\n", false).unwrap();
        let expansion = map
            .expand(&["A@X".parse().unwrap()], Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(expansion.recipients.len(), 2);
        assert!(expansion.loops.is_empty());
    }

    #[test]
    fn a_catch_all_to_a_mailbox_of_its_own_domain_ends_there() {
        let map = "@x box@x\n";
        assert_eq!(
            expand(map, &["anyone@x"], Limits::default()).unwrap(),
            ["box@x"]
        );
        assert_eq!(
            expand(map, &["box@x"], Limits::default()).unwrap(),
            ["box@x"]
        );
    }

    #[test]
    fn an_address_reached_twice_is_expanded_once() {
        let map = "l@x m@x, n@x\nm@x shared@y, p@y\nn@x m@x, q@y\n";
        assert_eq!(
            expand(map, &["l@x"], Limits::default()).unwrap(),
            ["shared@y", "p@y", "q@y"]
        );
    }

    #[test]
    fn a_fan_out_of_shared_lists_does_bounded_work() {
        // Each level lists the next level's two lists twice: 2^20 paths, 21 distinct lists.
        let lines: Vec<String> = (0..20)
            .flat_map(|i| {
                let n = i + 1;
                [
                    format!("l{i}@x l{n}@x, m{n}@x, l{n}@x, m{n}@x"),
                    format!("m{i}@x l{n}@x, m{n}@x"),
                ]
            })
            .collect();
        let map = lines.join("\n");
        let limits = Limits {
            max_depth: 25,
            max_expansion: 10,
        };
        assert_eq!(expand(&map, &["l0@x"], limits).unwrap(), ["l20@x", "m20@x"]);
    }

    #[test]
    fn several_recipients_expand_together_and_unknown_ones_stay() {
        let map = "a@x b@y\n";
        assert_eq!(
            expand(map, &["z@x", "a@x", "b@y"], Limits::default()).unwrap(),
            ["z@x", "b@y"]
        );
    }

    #[test]
    fn a_domain_result_keeps_the_local_part() {
        let map = "@old.example @new.example\n";
        assert_eq!(
            expand(map, &["Jane@OLD.example"], Limits::default()).unwrap(),
            ["Jane@new.example"]
        );
        let long = format!("@x @{}.example\n", "d".repeat(240));
        let error = expand(&long, &["jane.doe.long@x"], Limits::default()).unwrap_err();
        assert!(matches!(error, ExpandError::Invalid { .. }), "{error}");
        assert_eq!(
            error.reply().to_string(),
            "451 4.3.0 Error: alias expansion failed"
        );
    }
}

//! What `mq plugins` prints: every compiled-in plugin with its state, its order and its hooks,
//! then every hook's chain in call order (by order, then by name) and, after `observers:`, the
//! plugins that observe the hook side by side once it has decided.
//!
//! The text is plain, aligned and stable (no colour, no terminal width), so that operators can
//! diff it between builds and scripts can read it.

use std::fmt;

use mq_core::{Plan, Registry};
use mq_plugin_api::{HookId, HookSet, Order};

/// Marks an empty cell: a plugin without hooks, a hook without a chain.
const NONE: &str = "-";

/// The rows of `mq plugins`, in name order.
#[derive(Debug)]
pub(crate) struct Listing {
    plugins: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    name: &'static str,
    enabled: bool,
    order: Order,
    hooks: HookSet,
    /// The hooks it observes rather than joins the chain of.
    observes: HookSet,
}

impl Listing {
    /// Every plugin in `registry`, enabled if `plan` runs it.
    pub(crate) fn new(registry: &Registry, plan: &Plan) -> Listing {
        let plugins = registry
            .iter()
            .map(|r| Row {
                name: r.name(),
                enabled: plan.plugins().any(|(name, _)| name == r.name()),
                order: plan.order(r.name()).unwrap_or_default(),
                hooks: r.hooks(),
                observes: r.observers(),
            })
            .collect();
        Listing { plugins }
    }

    /// The enabled plugins that implement `hook`, in call order: by order, then by name, as
    /// the engine sorts them.
    fn chain(&self, hook: HookId) -> Vec<&'static str> {
        let mut chain: Vec<&Row> = self
            .plugins
            .iter()
            .filter(|row| row.enabled && row.hooks.contains(hook))
            .collect();
        chain.sort_by_key(|row| (row.order, row.name));
        chain.into_iter().map(|row| row.name).collect()
    }

    /// The enabled plugins that observe `hook`, by name: they run side by side, in no order.
    fn observers(&self, hook: HookId) -> Vec<&'static str> {
        self.plugins
            .iter()
            .filter(|row| row.enabled && row.observes.contains(hook))
            .map(|row| row.name)
            .collect()
    }

    fn write_plugins(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plugins ({} compiled in)", self.plugins.len())?;
        if self.plugins.is_empty() {
            return writeln!(f, "  {NONE}");
        }
        let width = self.plugins.iter().map(|row| row.name.len()).max();
        let width = width.unwrap_or(0);
        let orders: Vec<String> = self
            .plugins
            .iter()
            .map(|row| format!("order {}", row.order))
            .collect();
        let order_width = orders.iter().map(String::len).max().unwrap_or(0);
        for (row, order) in self.plugins.iter().zip(&orders) {
            let state = if row.enabled { "enabled" } else { "disabled" };
            let observed = row.observes.iter().map(|h| format!("{h} (observer)"));
            let hooks = row.hooks.iter().map(|h| h.name().to_owned());
            let hooks = joined(
                hooks
                    .chain(observed)
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            );
            writeln!(
                f,
                "  {:width$}   {state:8}  {order:order_width$}  {hooks}",
                row.name
            )?;
        }
        Ok(())
    }

    fn write_chains(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chains")?;
        let width = HookId::ALL.iter().map(|h| h.name().len()).max();
        let width = width.unwrap_or(0);
        for hook in HookId::ALL {
            let chain = joined(self.chain(hook).into_iter());
            let observers = self.observers(hook);
            if observers.is_empty() {
                writeln!(f, "  {:width$}   {chain}", hook.name())?;
            } else {
                let observers = observers.join(", ");
                writeln!(
                    f,
                    "  {:width$}   {chain}   observers: {observers}",
                    hook.name()
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_plugins(f)?;
        writeln!(f)?;
        self.write_chains(f)
    }
}

/// `a, b, c`, or [`NONE`] for nothing.
fn joined<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let text = items.collect::<Vec<_>>().join(", ");
    if text.is_empty() {
        NONE.to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &'static str, enabled: bool, hooks: &[HookId]) -> Row {
        ordered(name, enabled, Order::default(), hooks)
    }

    fn ordered(name: &'static str, enabled: bool, order: Order, hooks: &[HookId]) -> Row {
        let hooks = hooks.iter().copied().collect();
        Row {
            name,
            enabled,
            order,
            hooks,
            observes: HookSet::EMPTY,
        }
    }

    fn observer(name: &'static str, enabled: bool, hooks: &[HookId], observes: &[HookId]) -> Row {
        Row {
            observes: observes.iter().copied().collect(),
            ..row(name, enabled, hooks)
        }
    }

    fn render(plugins: Vec<Row>) -> String {
        Listing { plugins }.to_string()
    }

    #[test]
    fn chains_hold_enabled_plugins_in_name_order() {
        let text = render(vec![
            row("audit", true, &[HookId::SmtpInData]),
            row("banner", true, &[HookId::SmtpInConnect, HookId::SmtpInData]),
            row("zz", false, &[HookId::SmtpInData]),
        ]);
        let expected = "\
plugins (3 compiled in)
  audit    enabled   order 0  smtp_in_data
  banner   enabled   order 0  smtp_in_connect, smtp_in_data
  zz       disabled  order 0  smtp_in_data

chains
  smtp_in_connect        banner
  smtp_in_helo           -
  smtp_in_secure         -
  smtp_in_authenticate   -
  smtp_in_mail_from      -
  smtp_in_rcpt_to        -
  smtp_in_data           audit, banner
  smtp_in_message        -
  smtp_in_close          -
  queue_pickup           -
  smtp_out_connect       -
  smtp_out_mail_from     -
  smtp_out_rcpt_to       -
  smtp_out_data          -
  smtp_out_sent          -
  delivery_result        -
";
        assert_eq!(text, expected);
    }

    #[test]
    fn observers_are_listed_apart_from_the_chain_they_watch() {
        let text = render(vec![
            observer("audit", true, &[], &[HookId::SmtpInData]),
            row("banner", true, &[HookId::SmtpInData]),
            observer(
                "hook",
                true,
                &[HookId::QueuePickup],
                &[HookId::DeliveryResult],
            ),
            observer("off", false, &[], &[HookId::DeliveryResult]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "  audit    enabled   order 0  smtp_in_data (observer)"
        );
        assert_eq!(
            lines[3],
            "  hook     enabled   order 0  queue_pickup, delivery_result (observer)"
        );
        assert!(
            text.contains("\n  smtp_in_data           banner   observers: audit\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  delivery_result        -   observers: hook\n"),
            "{text}"
        );
        assert!(text.contains("\n  queue_pickup           hook\n"), "{text}");
    }

    #[test]
    fn a_build_without_plugins_says_so() {
        let text = render(Vec::new());
        assert!(text.starts_with("plugins (0 compiled in)\n  -\n\nchains\n"));
        assert_eq!(text.lines().filter(|l| l.ends_with("   -")).count(), 16);
    }

    #[test]
    fn a_plugin_without_hooks_shows_a_dash() {
        let text = render(vec![row("idle", true, &[])]);
        assert!(text.contains("  idle   enabled   order 0  -\n"), "{text}");
    }

    #[test]
    fn chains_run_by_order_then_by_name() {
        let data = [HookId::SmtpInData];
        let text = render(vec![
            ordered("dkim", true, Order::Last, &data),
            ordered("subject-tag", true, Order::default(), &data),
            ordered("zz-audit", true, Order::First, &data),
            ordered("archive", true, Order::At(10), &data),
        ]);
        assert!(
            text.contains("  dkim          enabled   order last   smtp_in_data\n"),
            "{text}"
        );
        assert!(
            text.contains("  smtp_in_data           zz-audit, subject-tag, archive, dkim\n"),
            "{text}"
        );
    }
}

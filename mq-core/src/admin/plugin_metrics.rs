//! The metrics plugins declared, in the exposition format: one family per plugin × metric,
//! named `mq_plugin_<plugin>_<name>` (`_total` added to a counter), with a `plugin` label.

use std::fmt::{self, Write as _};

use mq_plugin_api::metrics::{MetricFamily, MetricKind, Value};

use super::metrics::escape;

/// Appends every family of `families` to `page`.
pub(crate) fn render(page: &mut String, families: &[MetricFamily]) -> fmt::Result {
    for family in families {
        let name = family_name(family);
        let help = family.help.replace('\\', "\\\\").replace('\n', "\\n");
        writeln!(page, "# HELP {name} {help}")?;
        writeln!(page, "# TYPE {name} {}", family.kind.name())?;
        for series in &family.series {
            let mut labels = format!("plugin=\"{}\"", escape(&family.plugin));
            for (label, value) in family.labels.iter().zip(&series.labels) {
                write!(labels, ",{label}=\"{}\"", escape(value))?;
            }
            match &series.value {
                Value::Counter(count) => writeln!(page, "{name}{{{labels}}} {count}")?,
                Value::Gauge(value) => writeln!(page, "{name}{{{labels}}} {value}")?,
                Value::Histogram { counts, sum } => {
                    histogram(page, &name, &labels, &family.buckets, counts, *sum)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// `mq_plugin_<plugin>_<name>`, `-` in the plugin's name as `_`; a counter ends in `_total`.
fn family_name(family: &MetricFamily) -> String {
    let plugin = family.plugin.replace('-', "_");
    let mut name = format!("mq_plugin_{plugin}_{}", family.name);
    if family.kind == MetricKind::Counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

/// The cumulative `_bucket` lines, then `_sum` and `_count`.
fn histogram(
    page: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> fmt::Result {
    let mut cumulative = 0;
    for (index, count) in counts.iter().enumerate() {
        cumulative += count;
        let le = bounds
            .get(index)
            .map_or_else(|| "+Inf".to_owned(), f64::to_string);
        writeln!(page, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}")?;
    }
    writeln!(page, "{name}_sum{{{labels}}} {sum}")?;
    writeln!(page, "{name}_count{{{labels}}} {cumulative}")
}

#[cfg(test)]
mod tests {
    use mq_plugin_api::{MetricRegistry, PluginConfig};

    use super::*;

    #[test]
    fn each_kind_renders_with_the_plugin_label() {
        let registry = MetricRegistry::default();
        let config =
            PluginConfig::new("rate-limit", 0, toml::Table::new()).with_metrics(registry.clone());
        config
            .counter("refused", "Refusals.", &["limit"])
            .inc(&["per \"ip\""]);
        config.gauge("open", "Open.", &[]).set(&[], -2);
        let seconds = config.histogram("seconds", "Latency.", &[], &[0.5, 1.0]);
        seconds.observe(&[], 0.25);
        seconds.observe(&[], 2.0);
        let mut page = String::new();
        render(&mut page, &registry.snapshot()).expect("a String takes any write");
        let expected = "\
# HELP mq_plugin_rate_limit_open Open.
# TYPE mq_plugin_rate_limit_open gauge
mq_plugin_rate_limit_open{plugin=\"rate-limit\"} -2
# HELP mq_plugin_rate_limit_refused_total Refusals.
# TYPE mq_plugin_rate_limit_refused_total counter
mq_plugin_rate_limit_refused_total{plugin=\"rate-limit\",limit=\"per \\\"ip\\\"\"} 1
# HELP mq_plugin_rate_limit_seconds Latency.
# TYPE mq_plugin_rate_limit_seconds histogram
mq_plugin_rate_limit_seconds_bucket{plugin=\"rate-limit\",le=\"0.5\"} 1
mq_plugin_rate_limit_seconds_bucket{plugin=\"rate-limit\",le=\"1\"} 1
mq_plugin_rate_limit_seconds_bucket{plugin=\"rate-limit\",le=\"+Inf\"} 2
mq_plugin_rate_limit_seconds_sum{plugin=\"rate-limit\"} 2.25
mq_plugin_rate_limit_seconds_count{plugin=\"rate-limit\"} 2
";
        assert_eq!(page, expected);
    }
}

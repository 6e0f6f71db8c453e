//! A plugin's own metrics: counters, gauges and histograms it declares through its
//! [`PluginConfig`](crate::PluginConfig), which the engine shows on the admin port's `/metrics`.
//!
//! # Declaring and counting
//!
//! A plugin declares a metric in its factory with [`PluginConfig::counter`],
//! [`PluginConfig::gauge`] or [`PluginConfig::histogram`]: a name, a help line and the names of
//! its labels. The handle it gets back is shared by the plugin's instances on every core (the
//! factory runs once per core; each gets the same series) and survives a reload, so a counter
//! only ever grows. Counting is an atomic add; a labelled series is found by a short scan of
//! the label values seen so far, without allocating once the series exists.
//!
//! On `/metrics` a metric of plugin `NAME` is the family `mq_plugin_NAME_METRIC` (a `-` in the
//! plugin's name becomes `_`; a counter gets `_total`) with a `plugin="NAME"` label before its
//! own:
//!
//! ```text
//! # HELP mq_plugin_webhook_sent_total Events the endpoint took.
//! # TYPE mq_plugin_webhook_sent_total counter
//! mq_plugin_webhook_sent_total{plugin="webhook"} 12
//! ```
//!
//! # Rules
//!
//! - A metric's name and label names are lowercase ASCII letters, digits and `_`, starting with
//!   a letter; `plugin` and `le` are the engine's labels. A declaration that breaks these, or that
//!   declares a name again with another kind or other labels, is logged as an error and gets a
//!   handle that counts into nothing: a metric never stops a plugin from starting.
//! - Label values are given in the order of the declared names; missing ones are empty, extra
//!   ones ignored.
//!
//! [`PluginConfig::counter`]: crate::PluginConfig::counter
//! [`PluginConfig::gauge`]: crate::PluginConfig::gauge
//! [`PluginConfig::histogram`]: crate::PluginConfig::histogram

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What a metric counts: only ever up, up and down, or a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A count that only grows ([`Counter`]).
    Counter,
    /// A value that goes up and down ([`Gauge`]).
    Gauge,
    /// Observations counted into buckets ([`Histogram`]).
    Histogram,
}

impl MetricKind {
    /// The Prometheus `# TYPE` of this kind.
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric of one plugin with all its series.
pub(crate) struct Family {
    plugin: String,
    name: String,
    help: String,
    kind: MetricKind,
    labels: Vec<String>,
    /// Upper bounds of a histogram's buckets, ascending; a last bucket (`+Inf`) takes the rest.
    buckets: Vec<f64>,
    /// The series by label values, in the order they were first counted.
    series: Mutex<Vec<Labelled>>,
}

/// One series and its label values.
type Labelled = (Box<[String]>, Arc<Series>);

/// One series: the value of one set of label values.
#[derive(Default)]
struct Series {
    /// A counter's count, or a histogram's observations.
    count: AtomicU64,
    /// A gauge's value.
    gauge: AtomicI64,
    /// A histogram's per-bucket counts (not cumulative; the last is `+Inf`) and its sum.
    histogram: Mutex<(Vec<u64>, f64)>,
}

impl Family {
    /// The series of `values`, made on first use.
    fn series(&self, values: &[&str]) -> Arc<Series> {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted = |i: usize| values.get(i).copied().unwrap_or("");
        let found = series.iter().find(|(have, _)| {
            have.iter()
                .enumerate()
                .all(|(i, value)| value.as_str() == wanted(i))
        });
        if let Some((_, found)) = found {
            return Arc::clone(found);
        }
        let key = (0..self.labels.len())
            .map(|i| wanted(i).to_owned())
            .collect();
        let made = Arc::new(Series::default());
        series.push((key, Arc::clone(&made)));
        made
    }

    fn snapshot(&self) -> MetricFamily {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        MetricFamily {
            plugin: self.plugin.clone(),
            name: self.name.clone(),
            help: self.help.clone(),
            kind: self.kind,
            labels: self.labels.clone(),
            buckets: self.buckets.clone(),
            series: series
                .iter()
                .map(|(values, series)| self.value(values, series))
                .collect(),
        }
    }

    fn value(&self, values: &[String], series: &Series) -> SeriesValue {
        let value = match self.kind {
            MetricKind::Counter => Value::Counter(series.count.load(Ordering::Relaxed)),
            MetricKind::Gauge => Value::Gauge(series.gauge.load(Ordering::Relaxed)),
            MetricKind::Histogram => {
                let histogram = series
                    .histogram
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let mut counts = histogram.0.clone();
                counts.resize(self.buckets.len() + 1, 0);
                Value::Histogram {
                    counts,
                    sum: histogram.1,
                }
            }
        };
        SeriesValue {
            labels: values.to_vec(),
            value,
        }
    }
}

/// A counter a plugin declared with [`PluginConfig::counter`](crate::PluginConfig::counter):
/// a count per set of label values that only grows. Clones count into the same series.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::PluginConfig;
///
/// let config = PluginConfig::new("dnsbl", 0, toml::Table::new());
/// let listed = config.counter("listed", "Clients found listed.", &["zone"]);
/// listed.inc(&["zen.example"]);
/// listed.add(&["zen.example"], 2);
/// assert_eq!(listed.get(&["zen.example"]), 3);
/// assert_eq!(listed.get(&["other.example"]), 0);
/// ```
#[derive(Clone)]
pub struct Counter(Arc<Family>);

impl Counter {
    /// Adds one to the series of `labels`.
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    /// Adds `n` to the series of `labels`.
    pub fn add(&self, labels: &[&str], n: u64) {
        self.0.series(labels).count.fetch_add(n, Ordering::Relaxed);
    }

    /// The count of the series of `labels`.
    pub fn get(&self, labels: &[&str]) -> u64 {
        self.0.series(labels).count.load(Ordering::Relaxed)
    }
}

/// A gauge a plugin declared with [`PluginConfig::gauge`](crate::PluginConfig::gauge): a value
/// per set of label values that goes up and down (a queue's length, connections open).
///
/// # Examples
///
/// ```
/// use mq_plugin_api::PluginConfig;
///
/// let config = PluginConfig::new("webhook", 0, toml::Table::new());
/// let queued = config.gauge("queued", "Events waiting to be sent.", &[]);
/// queued.add(&[], 3);
/// queued.add(&[], -1);
/// assert_eq!(queued.get(&[]), 2);
/// queued.set(&[], 0);
/// assert_eq!(queued.get(&[]), 0);
/// ```
#[derive(Clone)]
pub struct Gauge(Arc<Family>);

impl Gauge {
    /// Sets the series of `labels` to `value`.
    pub fn set(&self, labels: &[&str], value: i64) {
        self.0.series(labels).gauge.store(value, Ordering::Relaxed);
    }

    /// Adds `delta` (which may be negative) to the series of `labels`.
    pub fn add(&self, labels: &[&str], delta: i64) {
        self.0
            .series(labels)
            .gauge
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// The value of the series of `labels`.
    pub fn get(&self, labels: &[&str]) -> i64 {
        self.0.series(labels).gauge.load(Ordering::Relaxed)
    }
}

/// A histogram a plugin declared with
/// [`PluginConfig::histogram`](crate::PluginConfig::histogram): observations (a latency in
/// seconds, a size) counted into buckets per set of label values.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::PluginConfig;
///
/// let config = PluginConfig::new("webhook", 0, toml::Table::new());
/// let seconds = config.histogram("post_seconds", "POST latency.", &[], &[0.1, 1.0]);
/// seconds.observe(&[], 0.05);
/// seconds.observe(&[], 3.0);
/// assert_eq!(seconds.count(&[]), 2);
/// ```
#[derive(Clone)]
pub struct Histogram(Arc<Family>);

impl Histogram {
    /// Counts `value` into the series of `labels`.
    pub fn observe(&self, labels: &[&str], value: f64) {
        let bucket = self
            .0
            .buckets
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.0.buckets.len());
        let series = self.0.series(labels);
        {
            let mut histogram = series
                .histogram
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            histogram.0.resize(self.0.buckets.len() + 1, 0);
            histogram.0[bucket] += 1;
            histogram.1 += value;
        }
        series.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many values the series of `labels` has counted.
    pub fn count(&self, labels: &[&str]) -> u64 {
        self.0.series(labels).count.load(Ordering::Relaxed)
    }
}

macro_rules! debug_handle {
    ($($handle:ident),*) => {$(
        impl fmt::Debug for $handle {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($handle))
                    .field("plugin", &self.0.plugin)
                    .field("name", &self.0.name)
                    .field("labels", &self.0.labels)
                    .finish_non_exhaustive()
            }
        }
    )*};
}

debug_handle!(Counter, Gauge, Histogram);

/// Every metric the plugins declared. Not public API beyond `default()` and
/// [`snapshot`](MetricRegistry::snapshot): an engine makes one, hands it to each plugin's
/// config on every core (and again on a reload, so that counts carry over), and reads it for
/// `/metrics`.
#[derive(Clone, Default)]
pub struct MetricRegistry(Arc<Mutex<Vec<Arc<Family>>>>);

impl fmt::Debug for MetricRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("MetricRegistry")
            .field("families", &families)
            .finish()
    }
}

/// What a declaration asks for.
pub(crate) struct Declaration<'a> {
    pub(crate) plugin: &'a str,
    pub(crate) name: &'a str,
    pub(crate) help: &'a str,
    pub(crate) kind: MetricKind,
    pub(crate) labels: &'a [&'a str],
    pub(crate) buckets: &'a [f64],
}

impl MetricRegistry {
    /// Every declared metric with its series as they are now, by plugin then name.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::{MetricRegistry, PluginConfig};
    ///
    /// let registry = MetricRegistry::default();
    /// let config = PluginConfig::new("p", 0, toml::Table::new()).with_metrics(registry.clone());
    /// config.counter("seen", "Things seen.", &[]).inc(&[]);
    /// let families = registry.snapshot();
    /// assert_eq!((families[0].plugin.as_str(), families[0].name.as_str()), ("p", "seen"));
    /// ```
    pub fn snapshot(&self) -> Vec<MetricFamily> {
        let families: Vec<Arc<Family>> = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut snapshot: Vec<MetricFamily> = families.iter().map(|f| f.snapshot()).collect();
        snapshot.sort_by(|a, b| (&a.plugin, &a.name).cmp(&(&b.plugin, &b.name)));
        snapshot
    }

    /// The family `declaration` asks for: the one declared before under its name if it fits,
    /// a new one, or a detached one when the declaration is wrong.
    pub(crate) fn declare(&self, declaration: &Declaration<'_>) -> Arc<Family> {
        // A metric without labels has its one series from the start: `/metrics` shows its 0.
        let unlabelled = || match declaration.labels {
            [] => vec![(Box::default(), Arc::default())],
            _ => Vec::new(),
        };
        let fresh = || {
            Arc::new(Family {
                plugin: declaration.plugin.to_owned(),
                name: declaration.name.to_owned(),
                help: declaration.help.to_owned(),
                kind: declaration.kind,
                labels: declaration.labels.iter().map(|&l| l.to_owned()).collect(),
                buckets: declaration.buckets.to_vec(),
                series: Mutex::new(unlabelled()),
            })
        };
        if let Err(problem) = check(declaration) {
            tracing::error!(
                plugin = declaration.plugin,
                metric = declaration.name,
                "metric not shown: {problem}"
            );
            return fresh();
        }
        let mut families = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let same_name = families
            .iter()
            .find(|f| f.plugin == declaration.plugin && f.name == declaration.name);
        match same_name {
            Some(family)
                if family.kind == declaration.kind
                    && family.labels == declaration.labels
                    && family.buckets == declaration.buckets =>
            {
                Arc::clone(family)
            }
            Some(_) => {
                tracing::error!(
                    plugin = declaration.plugin,
                    metric = declaration.name,
                    "metric declared again with another kind, labels or buckets: not shown"
                );
                fresh()
            }
            None => {
                let family = fresh();
                families.push(Arc::clone(&family));
                family
            }
        }
    }
}

/// Why a declaration is refused, if it is.
fn check(declaration: &Declaration<'_>) -> Result<(), String> {
    let valid = |name: &str| {
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if !valid(declaration.name) {
        return Err("a name is lowercase letters, digits and `_`, from a letter".into());
    }
    for label in declaration.labels {
        if !valid(label) || *label == "plugin" || *label == "le" {
            return Err(format!("label {label:?} is not a valid label name"));
        }
    }
    if !declaration.buckets.is_sorted_by(|a, b| a < b)
        || declaration.buckets.iter().any(|b| !b.is_finite())
    {
        return Err("buckets must be finite and ascending".into());
    }
    Ok(())
}

/// One declared metric and its series, as read for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricFamily {
    /// The plugin that declared it.
    pub plugin: String,
    /// Its name as declared.
    pub name: String,
    /// Its help line.
    pub help: String,
    /// What it counts.
    pub kind: MetricKind,
    /// Its label names, in order.
    pub labels: Vec<String>,
    /// A histogram's bucket bounds; empty otherwise.
    pub buckets: Vec<f64>,
    /// Its series, in the order they were first counted.
    pub series: Vec<SeriesValue>,
}

/// One series of a [`MetricFamily`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SeriesValue {
    /// The label values, in the order of the family's label names.
    pub labels: Vec<String>,
    /// The value.
    pub value: Value,
}

/// The value of one series.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A counter's count.
    Counter(u64),
    /// A gauge's value.
    Gauge(i64),
    /// A histogram's counts per bucket (not cumulative; the last is above every bound) and the
    /// sum of the values observed.
    Histogram {
        /// Per bucket, the last one `+Inf`.
        counts: Vec<u64>,
        /// The sum of the observations.
        sum: f64,
    },
}

impl Counter {
    pub(crate) fn new(family: Arc<Family>) -> Counter {
        Counter(family)
    }
}

impl Gauge {
    pub(crate) fn new(family: Arc<Family>) -> Gauge {
        Gauge(family)
    }
}

impl Histogram {
    pub(crate) fn new(family: Arc<Family>) -> Histogram {
        Histogram(family)
    }
}

#[cfg(test)]
mod tests {
    use crate::PluginConfig;

    use super::*;

    fn config(core: usize, registry: &MetricRegistry) -> PluginConfig {
        PluginConfig::new("p", core, toml::Table::new()).with_metrics(registry.clone())
    }

    #[test]
    fn every_core_counts_into_one_series() {
        let registry = MetricRegistry::default();
        let a = config(0, &registry).counter("hits", "Hits.", &["zone"]);
        let b = config(1, &registry).counter("hits", "Hits.", &["zone"]);
        a.inc(&["z"]);
        b.add(&["z"], 2);
        let families = registry.snapshot();
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].series[0].labels, ["z"]);
        assert_eq!(families[0].series[0].value, Value::Counter(3));
    }

    #[test]
    fn a_wrong_declaration_counts_into_nothing_shown() {
        let registry = MetricRegistry::default();
        let config = config(0, &registry);
        config.counter("Bad-Name", "", &[]).inc(&[]);
        config.counter("ok", "", &["plugin"]).inc(&[]);
        config.gauge("twice", "", &[]).set(&[], 1);
        config.counter("twice", "", &[]).inc(&[]);
        let names: Vec<String> = registry.snapshot().into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["twice"]);
        assert_eq!(registry.snapshot()[0].kind, MetricKind::Gauge);
    }

    #[test]
    fn missing_label_values_are_empty_and_extra_ones_ignored() {
        let registry = MetricRegistry::default();
        let counter = config(0, &registry).counter("c", "", &["a", "b"]);
        counter.inc(&["x"]);
        counter.inc(&["x", "", "ignored"]);
        assert_eq!(counter.get(&["x", ""]), 2);
    }

    #[test]
    fn a_histogram_counts_each_value_into_its_bucket() {
        let registry = MetricRegistry::default();
        let histogram = config(0, &registry).histogram("h", "", &[], &[1.0, 2.0]);
        for value in [0.5, 1.0, 1.5, 9.0] {
            histogram.observe(&[], value);
        }
        let family = &registry.snapshot()[0];
        assert_eq!(
            family.series[0].value,
            Value::Histogram {
                counts: vec![2, 1, 1],
                sum: 12.0
            }
        );
    }
}

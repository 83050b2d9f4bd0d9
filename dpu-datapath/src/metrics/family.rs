//! Metric definitions (name, help, type, label names) and a builder that
//! turns values into a `MetricFamily`. Every family the collector emits is
//! declared once here, so its `Desc` and its samples cannot disagree.

use crate::pipeline::timing::{StageHistogram, BUCKET_BOUNDS_NS};
use prometheus::core::Desc;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use std::collections::HashMap;

/// Counter, gauge or histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Samples are added with [`FamilyBuilder::add_histogram`].
    Histogram,
}

/// One metric family's definition.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

impl Spec {
    /// The descriptor registered with the registry (validates the names).
    pub fn desc(&self) -> prometheus::Result<Desc> {
        Desc::new(
            self.name.to_owned(),
            self.help.to_owned(),
            self.labels.iter().map(|l| (*l).to_owned()).collect(),
            HashMap::new(),
        )
    }
}

/// Collects the samples of one family.
#[derive(Debug)]
pub struct FamilyBuilder {
    spec: &'static Spec,
    metrics: Vec<Metric>,
}

impl FamilyBuilder {
    pub fn new(spec: &'static Spec) -> Self {
        Self {
            spec,
            metrics: Vec::new(),
        }
    }

    fn labelled(&self, values: &[&str]) -> Metric {
        debug_assert_eq!(values.len(), self.spec.labels.len(), "{}", self.spec.name);
        let labels = self
            .spec
            .labels
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect();
        Metric::from_label(labels)
    }

    /// Adds one sample; `values` follow `spec.labels` in order.
    pub fn add(&mut self, values: &[&str], value: f64) {
        let mut metric = self.labelled(values);
        match self.spec.kind {
            Kind::Counter => {
                let mut c = Counter::default();
                c.set_value(value);
                metric.set_counter(c);
            }
            Kind::Gauge => {
                let mut g = Gauge::default();
                g.set_value(value);
                metric.set_gauge(g);
            }
            Kind::Histogram => unreachable!("{}: use add_histogram", self.spec.name),
        }
        self.metrics.push(metric);
    }

    /// Adds one histogram (nanosecond buckets, exported in seconds).
    pub fn add_histogram(&mut self, values: &[&str], h: &StageHistogram) {
        debug_assert_eq!(self.spec.kind, Kind::Histogram, "{}", self.spec.name);
        let mut metric = self.labelled(values);
        let mut cumulative = 0;
        let buckets = BUCKET_BOUNDS_NS
            .iter()
            .zip(h.counts)
            .map(|(bound, n)| {
                cumulative += n;
                let mut b = Bucket::default();
                b.set_upper_bound(*bound as f64 / 1e9);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        let mut hist = Histogram::default();
        hist.set_bucket(buckets);
        hist.set_sample_count(h.count());
        hist.set_sample_sum(h.sum_ns as f64 / 1e9);
        metric.set_histogram(hist);
        self.metrics.push(metric);
    }

    pub fn build(self) -> MetricFamily {
        let mut mf = MetricFamily::default();
        mf.set_name(self.spec.name.to_owned());
        mf.set_help(self.spec.help.to_owned());
        mf.set_field_type(match self.spec.kind {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
            Kind::Histogram => MetricType::HISTOGRAM,
        });
        mf.set_metric(self.metrics);
        mf
    }
}

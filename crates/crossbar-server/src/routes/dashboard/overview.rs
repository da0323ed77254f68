//! The overview's numbers from a window of usage points: totals, the same split by provider,
//! cloud, deployment and model, and a time series in equal buckets.

use std::collections::BTreeMap;

use crossbar_core::pricing::{format_usd, pico_to_usd};
use crossbar_store::UsagePoint;
use schemars::JsonSchema;
use serde::Serialize;

/// The rate shown as "now" is over this much recent time.
const RECENT_MS: i64 = 60_000;

/// The window asked for, split into `buckets` equal parts ending at `now_ms`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub now_ms: i64,
    pub span_ms: i64,
    pub buckets: usize,
}

impl Window {
    pub(crate) fn since_ms(&self) -> i64 {
        self.now_ms - self.span_ms
    }

    fn bucket_ms(&self) -> i64 {
        (self.span_ms / i64::try_from(self.buckets.max(1)).unwrap_or(1)).max(1)
    }
}

/// Nearest-rank percentiles of one measure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub(crate) struct Percentiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn percentiles(mut values: Vec<u64>) -> Percentiles {
    values.sort_unstable();
    Percentiles {
        p50: percentile(&values, 50),
        p95: percentile(&values, 95),
    }
}

/// Requests of one kind (all, a provider, a cloud...) in the window.
#[derive(Debug, Default)]
struct Acc {
    requests: u64,
    failed: u64,
    latency: Vec<u64>,
    ttft: Vec<u64>,
    overhead: Vec<u64>,
    cost_pusd: u64,
    input_tokens: u64,
    output_tokens: u64,
}

impl Acc {
    fn add(&mut self, point: &UsagePoint) {
        self.requests += 1;
        if failed(point) {
            self.failed += 1;
        } else {
            // Failures are often instant: they would flatter the latency of what worked.
            self.latency.push(point.latency_ms);
            self.ttft.extend(point.ttft_ms);
        }
        self.overhead.push(point.overhead_ms);
        self.cost_pusd = self.cost_pusd.saturating_add(point.cost_pusd);
        self.input_tokens = self.input_tokens.saturating_add(point.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(point.output_tokens);
    }

    fn finish(self, name: String, of_total: u64) -> Group {
        Group {
            name,
            requests: self.requests,
            failed: self.failed,
            error_rate: ratio(self.failed, self.requests),
            share: ratio(self.requests, of_total),
            latency_ms: percentiles(self.latency),
            ttft_ms: percentiles(self.ttft),
            overhead_ms: percentiles(self.overhead),
            cost_usd: pico_to_usd(self.cost_pusd),
            cost: format_usd(self.cost_pusd),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
        }
    }
}

fn failed(point: &UsagePoint) -> bool {
    point.status >= 400 || point.failed
}

/// Three decimals; 0 when there is nothing to divide.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 1000.0).round() / 1000.0
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Group {
    pub name: String,
    pub requests: u64,
    /// Answered with an error status, or a stream that broke.
    pub failed: u64,
    pub error_rate: f64,
    /// Of all requests in the window.
    pub share: f64,
    /// Of successful requests.
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
    pub overhead_ms: Percentiles,
    pub cost_usd: f64,
    /// Exact decimal USD.
    pub cost: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One provider's or cloud's part of a bucket.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub(crate) struct Part {
    pub requests: u64,
    pub failed: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Bucket {
    pub t_ms: i64,
    pub requests: u64,
    pub failed: u64,
    pub requests_per_s: f64,
    pub error_rate: f64,
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
    pub overhead_ms: Percentiles,
    pub cost_usd: f64,
    pub by_provider: BTreeMap<String, Part>,
    pub by_cloud: BTreeMap<String, Part>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Overview {
    pub since_ms: i64,
    pub now_ms: i64,
    pub window_s: f64,
    pub bucket_s: f64,
    /// More requests than the overview reads: the oldest were left out.
    pub truncated: bool,
    /// Requests per second over the last minute (or the window, if shorter).
    pub requests_per_s: f64,
    pub totals: Group,
    pub by_provider: Vec<Group>,
    pub by_cloud: Vec<Group>,
    pub by_deployment: Vec<Group>,
    pub by_model: Vec<Group>,
    pub buckets: Vec<Bucket>,
}

/// Requests no deployment answered (unknown model, refused key, every attempt failed) are
/// grouped here by provider, cloud and deployment.
const UNANSWERED: &str = "(no answer)";

fn grouped(
    points: &[UsagePoint],
    total: u64,
    key: impl Fn(&UsagePoint) -> Option<&str>,
) -> Vec<Group> {
    let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
    for point in points {
        let name = key(point).unwrap_or(UNANSWERED).to_owned();
        groups.entry(name).or_default().add(point);
    }
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|(name, acc)| acc.finish(name, total))
        .collect();
    out.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

fn add_part(parts: &mut BTreeMap<String, Part>, name: Option<&str>, point: &UsagePoint) {
    let part = parts
        .entry(name.unwrap_or(UNANSWERED).to_owned())
        .or_default();
    part.requests += 1;
    if failed(point) {
        part.failed += 1;
    }
    part.cost_usd += pico_to_usd(point.cost_pusd);
}

/// One bucket while it fills.
#[derive(Debug, Default)]
struct Slot {
    all: Acc,
    providers: BTreeMap<String, Part>,
    clouds: BTreeMap<String, Part>,
}

pub(crate) fn overview(points: &[UsagePoint], window: Window, truncated: bool) -> Overview {
    let since = window.since_ms();
    let owned: Vec<UsagePoint> = points
        .iter()
        .filter(|p| p.time_ms >= since)
        .cloned()
        .collect();
    let total = owned.len() as u64;
    let mut all = Acc::default();
    for point in &owned {
        all.add(point);
    }
    let bucket_ms = window.bucket_ms();
    let bucket_s = bucket_ms as f64 / 1000.0;
    let mut accs: Vec<Slot> = (0..window.buckets).map(|_| Slot::default()).collect();
    for point in &owned {
        let index = usize::try_from((point.time_ms - since) / bucket_ms).unwrap_or(0);
        if let Some(slot) = accs.get_mut(index.min(window.buckets - 1)) {
            slot.all.add(point);
            add_part(&mut slot.providers, point.provider.as_deref(), point);
            add_part(&mut slot.clouds, point.cloud.as_deref(), point);
        }
    }
    let buckets = accs
        .into_iter()
        .enumerate()
        .map(
            |(
                i,
                Slot {
                    all: acc,
                    providers: by_provider,
                    clouds: by_cloud,
                },
            )| Bucket {
                t_ms: since + i64::try_from(i).unwrap_or(0) * bucket_ms,
                requests: acc.requests,
                failed: acc.failed,
                requests_per_s: (acc.requests as f64 / bucket_s * 1000.0).round() / 1000.0,
                error_rate: ratio(acc.failed, acc.requests),
                latency_ms: percentiles(acc.latency),
                ttft_ms: percentiles(acc.ttft),
                overhead_ms: percentiles(acc.overhead),
                cost_usd: pico_to_usd(acc.cost_pusd),
                by_provider,
                by_cloud,
            },
        )
        .collect();
    let recent_ms = RECENT_MS.min(window.span_ms).max(1);
    let recent = owned
        .iter()
        .filter(|p| p.time_ms >= window.now_ms - recent_ms)
        .count();
    Overview {
        since_ms: since,
        now_ms: window.now_ms,
        window_s: window.span_ms as f64 / 1000.0,
        bucket_s,
        truncated,
        requests_per_s: (recent as f64 / (recent_ms as f64 / 1000.0) * 1000.0).round() / 1000.0,
        totals: all.finish("all".to_owned(), total),
        by_provider: grouped(&owned, total, |p| p.provider.as_deref()),
        by_cloud: grouped(&owned, total, |p| p.cloud.as_deref()),
        by_deployment: grouped(&owned, total, |p| p.deployment.as_deref()),
        by_model: grouped(&owned, total, |p| {
            Some(p.model.as_str()).filter(|m| !m.is_empty())
        }),
        buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(time_ms: i64, provider: &str, status: u16, latency_ms: u64) -> UsagePoint {
        UsagePoint {
            time_ms,
            provider: Some(provider.to_owned()),
            cloud: Some(format!("{provider}-cloud")),
            model: "chat".to_owned(),
            status,
            latency_ms,
            ttft_ms: Some(latency_ms / 2),
            overhead_ms: 1,
            cost_pusd: 1_000_000,
            ..UsagePoint::default()
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=20).collect();
        assert_eq!(
            percentiles(values),
            Percentiles {
                p50: Some(10),
                p95: Some(19)
            }
        );
        assert_eq!(percentiles(vec![7]).p95, Some(7));
        assert_eq!(percentiles(Vec::new()).p50, None);
    }

    #[test]
    fn totals_groups_and_buckets_add_up() {
        let window = Window {
            now_ms: 100_000,
            span_ms: 100_000,
            buckets: 10,
        };
        let points = vec![
            point(95_000, "a", 200, 100),
            point(95_500, "a", 200, 300),
            point(50_000, "b", 503, 5),
            point(5_000, "b", 200, 200),
            // Before the window: left out.
            point(-1, "b", 200, 200),
        ];
        let o = overview(&points, window, false);
        assert_eq!(o.totals.requests, 4);
        assert_eq!(o.totals.failed, 1);
        assert_eq!(o.totals.error_rate, 0.25);
        assert_eq!(o.totals.latency_ms.p50, Some(200), "failures left out");
        assert_eq!(o.totals.cost, "0.000004");
        // Equal counts: by name.
        assert_eq!(o.by_provider[1].name, "b");
        assert_eq!(o.by_provider[1].share, 0.5);
        assert_eq!(o.by_provider[1].error_rate, 0.5);
        assert_eq!(o.by_provider[0].latency_ms.p95, Some(300));
        assert_eq!(o.by_cloud[0].name, "a-cloud");
        assert_eq!(o.buckets.len(), 10);
        assert_eq!(o.buckets[9].requests, 2);
        assert_eq!(o.buckets[9].requests_per_s, 0.2);
        assert_eq!(o.buckets[9].by_provider["a"].requests, 2);
        assert_eq!(o.buckets[5].failed, 1);
        assert_eq!(o.buckets[0].t_ms, 0);
        // Three requests in the last minute.
        assert_eq!(o.requests_per_s, 0.05);
    }
}

//! What other gateway replicas observed of a deployment, so that replicas behind one load
//! balancer rank alike and stop calling a sick deployment together. The router only produces
//! and consumes [`HealthReport`]s; moving them between replicas (Redis) is the server's job.
//!
//! A replica reports only what it measured itself, never what it merged from others, so
//! reports cannot echo and grow. Deadlines travel as wall-clock milliseconds, since `Instant`s
//! mean nothing in another process.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Deployment;
use super::stats::Series;

/// One replica's view of one deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub ttft_ms: Option<f64>,
    pub ttft_samples: usize,
    pub latency_ms: Option<f64>,
    pub latency_samples: usize,
    pub error_rate: f64,
    pub rate_limit_rate: f64,
    /// Wall-clock ms until which the reporter's breaker refuses calls.
    pub breaker_open_until_ms: Option<i64>,
    /// Wall-clock ms before which the deployment asked (`Retry-After`) not to be called.
    pub cooldown_until_ms: Option<i64>,
}

/// The other replicas' reports, merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PeerHealth {
    pub replicas: usize,
    pub ttft_ms: Option<f64>,
    pub ttft_samples: usize,
    pub latency_ms: Option<f64>,
    pub latency_samples: usize,
    pub error_rate: f64,
    pub rate_limit_rate: f64,
}

/// A sample-weighted mean of `(value, samples)` pairs; a value with no samples weighs one.
fn weighted(pairs: impl IntoIterator<Item = (Option<f64>, usize)>) -> (Option<f64>, usize) {
    let (mut sum, mut weight, mut samples) = (0.0, 0.0, 0);
    for (value, n) in pairs {
        if let Some(value) = value {
            let w = n.max(1) as f64;
            sum += value * w;
            weight += w;
            samples += n;
        }
    }
    ((weight > 0.0).then(|| sum / weight), samples)
}

fn wall(deadline: Instant, now: Instant, now_ms: i64) -> i64 {
    let ahead = i64::try_from(deadline.saturating_duration_since(now).as_millis()).unwrap_or(0);
    now_ms.saturating_add(ahead)
}

fn instant(deadline_ms: i64, now: Instant, now_ms: i64) -> Option<Instant> {
    let ahead = u64::try_from(deadline_ms.checked_sub(now_ms)?).ok()?;
    (ahead > 0).then(|| now + Duration::from_millis(ahead))
}

impl PeerHealth {
    pub fn merge(reports: &[HealthReport]) -> Option<Self> {
        if reports.is_empty() {
            return None;
        }
        let (ttft_ms, ttft_samples) = weighted(reports.iter().map(|r| (r.ttft_ms, r.ttft_samples)));
        let (latency_ms, latency_samples) =
            weighted(reports.iter().map(|r| (r.latency_ms, r.latency_samples)));
        let n = reports.len() as f64;
        Some(Self {
            replicas: reports.len(),
            ttft_ms,
            ttft_samples,
            latency_ms,
            latency_samples,
            error_rate: reports.iter().map(|r| r.error_rate).sum::<f64>() / n,
            rate_limit_rate: reports.iter().map(|r| r.rate_limit_rate).sum::<f64>() / n,
        })
    }
}

/// Expected milliseconds from our series and the peers', weighted by their samples.
pub(crate) fn blend(ours: &Series, peer: Option<(Option<f64>, usize)>) -> Option<f64> {
    weighted([(ours.ewma(), ours.samples())].into_iter().chain(peer)).0
}

impl Deployment {
    /// What this replica measured of the deployment, to publish to the others.
    pub fn health_report(&self, now: Instant, now_ms: i64) -> HealthReport {
        let live = self.live();
        HealthReport {
            ttft_ms: live.stats.ttft.ewma(),
            ttft_samples: live.stats.ttft.samples(),
            latency_ms: live.stats.latency.ewma(),
            latency_samples: live.stats.latency.samples(),
            error_rate: live.stats.error_rate,
            rate_limit_rate: live.stats.rate_limit_rate,
            breaker_open_until_ms: live.breaker.open_until().map(|t| wall(t, now, now_ms)),
            cooldown_until_ms: live
                .cooldown_until
                .filter(|t| *t > now)
                .map(|t| wall(t, now, now_ms)),
        }
    }

    /// Takes in the other replicas' current reports: their statistics join ranking, and an
    /// open breaker or a `Retry-After` seen by any of them holds here too.
    pub fn apply_peers(&self, reports: &[HealthReport], now: Instant, now_ms: i64) {
        let mut live = self.live();
        live.peers = PeerHealth::merge(reports);
        for report in reports {
            if let Some(until) = report
                .breaker_open_until_ms
                .and_then(|ms| instant(ms, now, now_ms))
            {
                live.breaker.adopt_open(until, now);
            }
            if let Some(until) = report
                .cooldown_until_ms
                .and_then(|ms| instant(ms, now, now_ms))
                && live.cooldown_until.is_none_or(|ours| ours < until)
            {
                live.cooldown_until = Some(until);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_weights_latency_by_samples_and_averages_rates() {
        let merged = PeerHealth::merge(&[
            HealthReport {
                latency_ms: Some(100.0),
                latency_samples: 30,
                error_rate: 0.5,
                ..HealthReport::default()
            },
            HealthReport {
                latency_ms: Some(400.0),
                latency_samples: 10,
                error_rate: 0.1,
                ..HealthReport::default()
            },
            HealthReport::default(),
        ]);
        let merged = merged.unwrap_or_default();
        assert_eq!(merged.replicas, 3);
        assert_eq!(merged.latency_ms, Some(175.0));
        assert_eq!(merged.latency_samples, 40);
        assert_eq!(merged.ttft_ms, None);
        assert!((merged.error_rate - 0.2).abs() < 1e-9);
        assert_eq!(PeerHealth::merge(&[]), None);
    }

    #[test]
    fn wall_and_instant_deadlines_round_trip() {
        let now = Instant::now();
        let later = now + Duration::from_millis(1500);
        let ms = wall(later, now, 10_000);
        assert_eq!(ms, 11_500);
        assert_eq!(instant(ms, now, 10_000), Some(later));
        assert_eq!(
            instant(9_000, now, 10_000),
            None,
            "a past deadline is no deadline"
        );
    }
}

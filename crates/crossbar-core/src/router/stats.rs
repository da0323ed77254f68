//! Live statistics of one deployment: what ranking, hedging and `GET /v1/crossbar/deployments`
//! read. Exponentially weighted averages react within a few calls; a window of recent samples
//! gives percentiles that one outlier cannot move much.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

/// Recent samples kept for percentiles.
const WINDOW: usize = 64;
/// Percentiles need this many samples before they mean anything.
pub const MIN_PERCENTILE_SAMPLES: usize = 10;
/// Weight of a new latency sample: about the last five calls dominate.
const LATENCY_ALPHA: f64 = 0.3;
/// Weight of a new outcome in the error and 429 rates: about the last twenty calls.
const RATE_ALPHA: f64 = 0.1;
/// Weight of a new ratio of reported to estimated prompt tokens.
const CALIBRATION_ALPHA: f64 = 0.2;

fn ewma(current: Option<f64>, sample: f64, alpha: f64) -> f64 {
    current.map_or(sample, |c| c + alpha * (sample - c))
}

/// A latency series in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Series {
    ewma: Option<f64>,
    recent: VecDeque<f64>,
}

impl Series {
    pub fn add(&mut self, ms: f64) {
        self.ewma = Some(ewma(self.ewma, ms, LATENCY_ALPHA));
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
    }

    /// Samples in the recent window: how much weight this series deserves against a peer's.
    pub fn samples(&self) -> usize {
        self.recent.len()
    }

    pub fn ewma(&self) -> Option<f64> {
        self.ewma
    }

    /// The `p`-th percentile (nearest rank) of the recent window.
    pub fn percentile(&self, p: u8) -> Option<f64> {
        if self.recent.len() < MIN_PERCENTILE_SAMPLES {
            return None;
        }
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let rank = (f64::from(p) / 100.0 * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
    }

    fn view(&self) -> SeriesView {
        SeriesView {
            ewma: self.ewma.map(round),
            p95: self.percentile(95).map(round),
            samples: self.recent.len(),
        }
    }
}

/// Everything measured about one deployment.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Time to the first content event of streams.
    pub ttft: Series,
    /// Time to the whole answer (non-streams, and streams once they end).
    pub latency: Series,
    /// Share of recent calls that failed for the deployment's reasons.
    pub error_rate: f64,
    /// Share of recent calls answered 429.
    pub rate_limit_rate: f64,
    pub tokens_per_s: Option<f64>,
    pub output_tokens: Option<f64>,
    /// Reported prompt tokens over our estimate.
    pub calibration: Option<f64>,
    pub counters: Counters,
}

/// Running totals since start.
#[derive(Clone, Copy, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Counters {
    /// Upstream calls started.
    pub attempts: u64,
    /// Calls that produced a first token (or answer).
    pub successes: u64,
    /// Calls that failed for the deployment's reasons (counted by the breaker).
    pub failures: u64,
    pub rate_limited: u64,
    /// Calls that failed for the request's reasons.
    pub rejected: u64,
    /// Calls cancelled because another attempt answered first.
    pub cancelled: u64,
    /// Hedges started on this deployment.
    pub hedges: u64,
    /// Hedges on this deployment that answered first.
    pub hedges_won: u64,
    /// Cost of every call, estimated for the cancelled ones, in picodollars (shown in USD).
    #[serde(rename = "spent_usd", serialize_with = "as_usd")]
    #[schemars(with = "f64")]
    pub spent_pusd: u64,
    /// Requests sent here because an earlier one with the same prefix was.
    pub affinity_hits: u64,
    pub cached_input_tokens: u64,
    /// What cached input saved on affinity-routed requests, in picodollars (shown in USD).
    #[serde(rename = "affinity_saving_usd", serialize_with = "as_usd")]
    #[schemars(with = "f64")]
    pub affinity_saving_pusd: u64,
}

/// Picodollar counters keep their USD names and values on the wire.
fn as_usd<S: serde::Serializer>(pico: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(crate::pricing::pico_to_usd(*pico))
}

impl Stats {
    /// Expected milliseconds to a first token (`stream`) or answer, when anything is known.
    pub fn expected_ms(&self, stream: bool) -> Option<f64> {
        let (first, second) = if stream {
            (&self.ttft, &self.latency)
        } else {
            (&self.latency, &self.ttft)
        };
        first.ewma().or_else(|| second.ewma())
    }

    /// The series hedging and timeouts look at for this kind of call.
    pub fn first_token(&self, stream: bool) -> &Series {
        if stream { &self.ttft } else { &self.latency }
    }

    pub fn record_outcome(&mut self, failed: bool, rate_limited: bool) {
        self.error_rate = ewma(
            Some(self.error_rate),
            f64::from(u8::from(failed)),
            RATE_ALPHA,
        );
        self.rate_limit_rate = ewma(
            Some(self.rate_limit_rate),
            f64::from(u8::from(rate_limited)),
            RATE_ALPHA,
        );
    }

    pub fn record_first_token(&mut self, stream: bool, elapsed: Duration) {
        let ms = millis(elapsed);
        if stream {
            self.ttft.add(ms);
        } else {
            self.latency.add(ms);
        }
    }

    /// A stream's end: total time, and output speed after the first token.
    pub fn record_stream_end(&mut self, total: Duration, ttft: Duration, output_tokens: u64) {
        self.latency.add(millis(total));
        let generating = total.saturating_sub(ttft).as_secs_f64();
        if output_tokens > 1 && generating > 0.0 {
            let rate = output_tokens as f64 / generating;
            self.tokens_per_s = Some(ewma(self.tokens_per_s, rate, LATENCY_ALPHA));
        }
    }

    pub fn record_usage(&mut self, output_tokens: u64, reported_prompt: u64, estimated: f64) {
        self.output_tokens = Some(ewma(
            self.output_tokens,
            output_tokens as f64,
            LATENCY_ALPHA,
        ));
        if reported_prompt > 0 && estimated >= 1.0 {
            let ratio = (reported_prompt as f64 / estimated).clamp(0.05, 20.0);
            self.calibration = Some(ewma(self.calibration, ratio, CALIBRATION_ALPHA));
        }
    }

    pub fn view(&self) -> StatsView {
        StatsView {
            ttft_ms: self.ttft.view(),
            latency_ms: self.latency.view(),
            error_rate: round(self.error_rate),
            rate_limit_rate: round(self.rate_limit_rate),
            output_tokens_per_s: self.tokens_per_s.map(round),
            prompt_token_calibration: self.calibration.map(round),
            counters: self.counters,
        }
    }
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Three decimals is all a reader of the JSON needs.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SeriesView {
    pub ewma: Option<f64>,
    pub p95: Option<f64>,
    pub samples: usize,
}

/// Statistics as `GET /v1/crossbar/deployments` shows them.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct StatsView {
    pub ttft_ms: SeriesView,
    pub latency_ms: SeriesView,
    pub error_rate: f64,
    pub rate_limit_rate: f64,
    pub output_tokens_per_s: Option<f64>,
    pub prompt_token_calibration: Option<f64>,
    #[serde(flatten)]
    pub counters: Counters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_need_samples_and_use_the_recent_window() {
        let mut series = Series::default();
        for ms in 1..MIN_PERCENTILE_SAMPLES {
            series.add(ms as f64);
        }
        assert_eq!(series.percentile(95), None);
        for ms in 1..=100 {
            series.add(f64::from(ms));
        }
        // Only the last 64 samples (37..=100) count.
        assert_eq!(series.percentile(50), Some(68.0));
        assert_eq!(series.percentile(95), Some(97.0));
        assert_eq!(series.percentile(99), Some(100.0));
    }

    #[test]
    fn ewma_follows_a_jump_within_a_few_samples() {
        let mut series = Series::default();
        for _ in 0..20 {
            series.add(100.0);
        }
        let mut samples = 0;
        while series.ewma().unwrap() < 1500.0 {
            series.add(2000.0);
            samples += 1;
        }
        assert_eq!(samples, 4);
    }

    #[test]
    fn rates_and_calibration_move_toward_observations() {
        let mut stats = Stats::default();
        for _ in 0..30 {
            stats.record_outcome(true, false);
        }
        assert!(stats.error_rate > 0.9);
        assert_eq!(stats.rate_limit_rate, 0.0);
        stats.record_usage(100, 300, 100.0);
        assert_eq!(stats.calibration, Some(3.0));
        stats.record_stream_end(Duration::from_millis(1100), Duration::from_millis(100), 51);
        assert_eq!(stats.tokens_per_s, Some(51.0));
    }
}

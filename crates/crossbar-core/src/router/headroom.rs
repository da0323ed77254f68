//! Routing ahead of rate limits: providers say on every answer how much of the account's
//! quota is left and when it resets (OpenAI and Azure `x-ratelimit-*`, Anthropic
//! `anthropic-ratelimit-*`; Bedrock and Vertex AI send nothing of the kind). A deployment
//! whose smallest remaining share falls below [`THRESHOLD`] ranks down smoothly as it nears
//! zero, so traffic moves before the provider starts answering 429, and ranks as before once
//! the quota resets.
//!
//! The latest reading of each deployment is kept in one atomic word (read by every routing
//! decision without a lock) and, with shared state, published to the other replicas with a
//! time to live up to its reset, so they all move off a deployment that one of them drained.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::lock;

/// Below this share of its quota left, a deployment starts ranking down.
pub const THRESHOLD: f64 = 0.1;
/// How long a reading that names no reset time holds.
const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// The longest a reading holds, whatever the upstream says.
const MAX_TTL: Duration = Duration::from_secs(3600);

/// One limit as an answer reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Limit {
    /// `requests`, `tokens`, `input-tokens` or `output-tokens`.
    pub name: &'static str,
    pub remaining: u64,
    /// The limit's size, when the answer says (a share needs it).
    pub limit: Option<u64>,
    /// Milliseconds until it resets, when the answer says.
    pub reset_ms: Option<u64>,
}

/// What one answer said of the account's quota.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Quota {
    pub limits: Vec<Limit>,
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How a quota header gives its reset: OpenAI's and Azure's as a Go duration (`6m0s`),
/// Anthropic's as an RFC 3339 time.
#[derive(Clone, Copy)]
enum Reset {
    After,
    At,
}

/// One limit's quota headers: its name, and the headers of what is left, its size and its reset.
struct QuotaHeaders {
    name: &'static str,
    remaining: HeaderName,
    limit: HeaderName,
    reset: HeaderName,
    kind: Reset,
}

const fn quota(
    name: &'static str,
    [remaining, limit, reset]: [&'static str; 3],
    kind: Reset,
) -> QuotaHeaders {
    QuotaHeaders {
        name,
        remaining: HeaderName::from_static(remaining),
        limit: HeaderName::from_static(limit),
        reset: HeaderName::from_static(reset),
        kind,
    }
}

/// Every provider's quota headers, named once: building and parsing each name per answer was
/// 12,000 instructions of every request.
static QUOTA_HEADERS: [QuotaHeaders; 6] = [
    quota(
        "requests",
        [
            "x-ratelimit-remaining-requests",
            "x-ratelimit-limit-requests",
            "x-ratelimit-reset-requests",
        ],
        Reset::After,
    ),
    quota(
        "tokens",
        [
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-reset-tokens",
        ],
        Reset::After,
    ),
    quota(
        "requests",
        [
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-reset",
        ],
        Reset::At,
    ),
    quota(
        "tokens",
        [
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-reset",
        ],
        Reset::At,
    ),
    quota(
        "input-tokens",
        [
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-limit",
            "anthropic-ratelimit-input-tokens-reset",
        ],
        Reset::At,
    ),
    quota(
        "output-tokens",
        [
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-limit",
            "anthropic-ratelimit-output-tokens-reset",
        ],
        Reset::At,
    ),
];

fn number(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        // Saturating: an absurd count is just large.
        .map(|v| v as u64)
}

fn text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

impl Quota {
    /// The limits an answer's headers report; `None` when they report none. `now_ms` turns
    /// Anthropic's RFC 3339 reset times into durations.
    pub fn from_headers(headers: &HeaderMap, now_ms: i64) -> Option<Self> {
        let limits: Vec<Limit> = QUOTA_HEADERS
            .iter()
            .filter_map(|quota| {
                let remaining = number(headers, &quota.remaining)?;
                let reset = text(headers, &quota.reset);
                Some(Limit {
                    name: quota.name,
                    remaining,
                    limit: number(headers, &quota.limit),
                    reset_ms: match quota.kind {
                        Reset::After => reset.and_then(go_duration).map(super::millis),
                        Reset::At => reset
                            .and_then(rfc3339_ms)
                            .map(|at| u64::try_from(at.saturating_sub(now_ms)).unwrap_or(0)),
                    },
                })
            })
            .collect();
        (!limits.is_empty()).then_some(Self { limits })
    }

    /// The smallest share left among the limits whose size is known, and how long until that
    /// limit resets; `None` when no limit's size is known.
    pub fn headroom(&self) -> Option<(f64, Duration)> {
        self.limits
            .iter()
            .filter_map(|l| {
                let size = l.limit.filter(|s| *s > 0)?;
                let share = (l.remaining as f64 / size as f64).clamp(0.0, 1.0);
                let ttl = l.reset_ms.map_or(DEFAULT_TTL, Duration::from_millis);
                Some((share, ttl.min(MAX_TTL)))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }
}

/// A duration as Go prints it and OpenAI's reset headers carry it: `20ms`, `1s`, `1.5s`,
/// `6m0s`, `1h2m3s`.
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit..];
        seconds += value * scale;
    }
    Duration::try_from_secs_f64(seconds.min(MAX_TTL.as_secs_f64())).ok()
}

/// An RFC 3339 time as milliseconds since the epoch.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let at =
        aws_smithy_types::DateTime::from_str(text, aws_smithy_types::date_time::Format::DateTime)
            .ok()?;
    at.to_millis().ok()
}

/// How far below [`THRESHOLD`] a share left is: 0 at or above it, rising linearly to 1 at
/// nothing left.
pub fn pressure(share: f64) -> f64 {
    ((THRESHOLD - share) / THRESHOLD).clamp(0.0, 1.0)
}

/// One replica's latest reading of a deployment, as it travels between replicas (wall-clock
/// milliseconds, since `Instant`s mean nothing in another process).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadroomReport {
    /// Share of the quota left, in `[0, 1]`.
    pub remaining: f64,
    pub reset_at_ms: i64,
    pub observed_at_ms: i64,
}

/// A deployment's headroom as `GET /v1/crossbar/deployments` shows it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct HeadroomView {
    /// Share of the quota left (the smallest of the reported limits), in `[0, 1]`.
    pub remaining: f64,
    pub reset_in_ms: u64,
    /// How much ranking holds it back, from 0 (not at all) to 1 (nothing left).
    pub pressure: f64,
    /// Whether the reading came from another replica.
    pub from_peer: bool,
    /// The limits the last answer reported (empty when the reading came from a peer).
    pub limits: Vec<Limit>,
}

#[derive(Clone, Debug)]
struct Reading {
    quota: Option<Quota>,
    remaining: f64,
    reset_at: Instant,
    observed_at_ms: i64,
}

/// A deployment's latest reading: the share and reset packed in one word for ranking, the rest
/// beside it for views and sharing.
#[derive(Debug)]
pub(crate) struct Slot {
    base: Instant,
    /// Share left in 1/65535ths in the top 16 bits, reset time in ms after `base` in the low 48;
    /// `u64::MAX`: no reading.
    packed: AtomicU64,
    last: Mutex<Option<Reading>>,
}

const NONE: u64 = u64::MAX;
const RESET_BITS: u32 = 48;

impl Slot {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            packed: AtomicU64::new(NONE),
            last: Mutex::new(None),
        }
    }

    fn store(&self, remaining: f64, reset_at: Instant) {
        // Rounded down: a packed share never shows more headroom than was reported.
        let share = (remaining.clamp(0.0, 1.0) * f64::from(u16::MAX)).floor() as u64;
        let reset =
            super::millis(reset_at.saturating_duration_since(self.base)).min((1 << RESET_BITS) - 1);
        self.packed
            .store((share << RESET_BITS) | reset, Ordering::Relaxed);
    }

    /// The share left and when it resets, while the reading holds.
    fn current(&self, now: Instant) -> Option<(f64, Instant)> {
        let packed = self.packed.load(Ordering::Relaxed);
        if packed == NONE {
            return None;
        }
        let share = (packed >> RESET_BITS) as f64 / f64::from(u16::MAX);
        let reset_at = self.base + Duration::from_millis(packed & ((1 << RESET_BITS) - 1));
        (reset_at > now).then_some((share, reset_at))
    }

    /// How much ranking holds the deployment back now (see [`pressure`]).
    pub fn pressure(&self, now: Instant) -> f64 {
        self.current(now).map_or(0.0, |(share, _)| pressure(share))
    }

    /// Takes in what an answer reported.
    pub fn observe(&self, quota: Quota, now: Instant, now_ms: i64) {
        let Some((remaining, ttl)) = quota.headroom() else {
            return;
        };
        let reset_at = now + ttl;
        let mut last = lock(&self.last);
        self.store(remaining, reset_at);
        *last = Some(Reading {
            quota: Some(quota),
            remaining,
            reset_at,
            observed_at_ms: now_ms,
        });
    }

    /// This replica's latest reading, while it holds, for the others.
    pub fn report(&self, now: Instant, now_ms: i64) -> Option<HeadroomReport> {
        let last = lock(&self.last);
        let reading = last.as_ref().filter(|r| r.reset_at > now)?;
        let ahead = i64::try_from(super::millis(reading.reset_at - now)).unwrap_or(i64::MAX);
        Some(HeadroomReport {
            remaining: reading.remaining,
            reset_at_ms: now_ms.saturating_add(ahead),
            observed_at_ms: reading.observed_at_ms,
        })
    }

    /// Takes in another replica's reading when it is newer than ours and still holds.
    pub fn apply(&self, report: HeadroomReport, now: Instant, now_ms: i64) {
        let Ok(ahead) = u64::try_from(report.reset_at_ms.saturating_sub(now_ms)) else {
            return;
        };
        if ahead == 0 || !report.remaining.is_finite() {
            return;
        }
        let mut last = lock(&self.last);
        let newer = last
            .as_ref()
            .is_none_or(|r| r.observed_at_ms < report.observed_at_ms || r.reset_at <= now);
        if !newer {
            return;
        }
        let reset_at = now + Duration::from_millis(ahead).min(MAX_TTL);
        let remaining = report.remaining.clamp(0.0, 1.0);
        self.store(remaining, reset_at);
        *last = Some(Reading {
            quota: None,
            remaining,
            reset_at,
            observed_at_ms: report.observed_at_ms,
        });
    }

    /// Takes over `from`'s reading (a reload: the quota is the provider's, whatever router).
    pub fn adopt(&self, from: &Slot) {
        let reading = lock(&from.last).clone();
        if let Some(reading) = &reading {
            self.store(reading.remaining, reading.reset_at);
        }
        *lock(&self.last) = reading;
    }

    pub fn view(&self, now: Instant) -> Option<HeadroomView> {
        let last = lock(&self.last);
        let reading = last.as_ref().filter(|r| r.reset_at > now)?;
        Some(HeadroomView {
            remaining: reading.remaining,
            reset_in_ms: super::millis(reading.reset_at - now),
            pressure: pressure(reading.remaining),
            from_peer: reading.quota.is_none(),
            limits: reading
                .quota
                .as_ref()
                .map(|q| q.limits.clone())
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("1h2m3s"), Some(Duration::from_secs(3600)));
        assert_eq!(go_duration("1m30.25s"), Some(Duration::from_millis(90_250)));
        assert_eq!(go_duration("0s"), Some(Duration::ZERO));
        for bad in ["", "s", "5x", "1..2s", "-1s"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn openai_headers_give_the_smallest_share_and_its_reset() {
        let quota = Quota::from_headers(
            &headers(&[
                ("x-ratelimit-limit-requests", "100"),
                ("x-ratelimit-remaining-requests", "5"),
                ("x-ratelimit-reset-requests", "6m0s"),
                ("x-ratelimit-limit-tokens", "10000"),
                ("x-ratelimit-remaining-tokens", "9000"),
                ("x-ratelimit-reset-tokens", "20ms"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(quota.limits.len(), 2);
        assert_eq!(
            quota.limits[0],
            Limit {
                name: "requests",
                remaining: 5,
                limit: Some(100),
                reset_ms: Some(360_000)
            }
        );
        assert_eq!(quota.headroom(), Some((0.05, Duration::from_secs(360))));
        // Azure sends remaining counts without sizes: nothing to take a share of.
        let azure =
            Quota::from_headers(&headers(&[("x-ratelimit-remaining-requests", "5")]), 0).unwrap();
        assert_eq!(azure.headroom(), None);
        assert_eq!(
            Quota::from_headers(&headers(&[("retry-after", "1")]), 0),
            None
        );
    }

    #[test]
    fn anthropic_headers_reset_at_a_time() {
        // 2026-01-01T00:00:30Z, read 10 s before.
        let now_ms = 1_767_225_630_000 - 10_000;
        let quota = Quota::from_headers(
            &headers(&[
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "40"),
                ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:30Z"),
                ("anthropic-ratelimit-input-tokens-limit", "1000"),
                ("anthropic-ratelimit-input-tokens-remaining", "50"),
                (
                    "anthropic-ratelimit-input-tokens-reset",
                    "2026-01-01T00:00:30Z",
                ),
            ]),
            now_ms,
        )
        .unwrap();
        assert_eq!(quota.limits[1].name, "input-tokens");
        assert_eq!(quota.headroom(), Some((0.05, Duration::from_secs(10))));
    }

    #[test]
    fn pressure_starts_below_the_threshold() {
        assert_eq!(pressure(1.0), 0.0);
        assert_eq!(pressure(0.1), 0.0);
        assert!((pressure(0.05) - 0.5).abs() < 1e-9);
        assert_eq!(pressure(0.0), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reading_holds_until_its_reset_and_a_newer_peer_reading_wins() {
        let slot = Slot::new();
        let now = Instant::now();
        assert_eq!(slot.pressure(now), 0.0);
        let quota = Quota {
            limits: vec![Limit {
                name: "requests",
                remaining: 2,
                limit: Some(100),
                reset_ms: Some(5_000),
            }],
        };
        slot.observe(quota, now, 1_000);
        assert!(
            (slot.pressure(now) - 0.8).abs() < 1e-3,
            "{}",
            slot.pressure(now)
        );
        let report = slot.report(now, 1_000).unwrap();
        assert_eq!(report.reset_at_ms, 6_000);
        // An older reading from a peer changes nothing; a newer one replaces ours.
        slot.apply(
            HeadroomReport {
                remaining: 1.0,
                reset_at_ms: 9_000,
                observed_at_ms: 500,
            },
            now,
            1_000,
        );
        assert!(
            (slot.pressure(now) - 0.8).abs() < 1e-3,
            "{}",
            slot.pressure(now)
        );
        slot.apply(
            HeadroomReport {
                remaining: 0.0,
                reset_at_ms: 9_000,
                observed_at_ms: 1_500,
            },
            now,
            1_000,
        );
        assert_eq!(slot.pressure(now), 1.0);
        assert!(slot.view(now).unwrap().from_peer);
        tokio::time::advance(Duration::from_millis(8_000)).await;
        assert_eq!(slot.pressure(Instant::now()), 0.0);
        assert!(slot.view(Instant::now()).is_none());
    }
}

//! What a failed attempt means for the rest of the request: try another deployment, try this
//! one again after a backoff, or stop because no deployment can fix it.

use std::time::Duration;

use rand::Rng;

use crate::config::BackoffConfig;
use crate::error::{Error, ErrorKind, Origin};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Connect errors, timeouts, 408/429/5xx/529, broken or garbled answers: another attempt,
    /// here or elsewhere, may succeed.
    Retry,
    /// The deployment is at fault (its key refused, its quota spent, its dialect unable to
    /// express the request): another deployment may succeed, this one will not.
    OtherDeployment,
    /// The request itself is at fault (400, 404, 422...): every deployment would refuse it.
    Stop,
}

pub fn verdict(error: &Error) -> Verdict {
    if error.retryable {
        Verdict::Retry
    } else if error.kind == ErrorKind::Unsupported
        || error.origin == Origin::Upstream
            && matches!(
                error.kind,
                ErrorKind::Authentication | ErrorKind::PermissionDenied | ErrorKind::QuotaExceeded
            )
    {
        Verdict::OtherDeployment
    } else {
        Verdict::Stop
    }
}

pub fn is_rate_limit(error: &Error) -> bool {
    error.kind == ErrorKind::RateLimited
}

/// Whether the failure counts against the deployment's health (breaker and error rate): its
/// own faults, not the request's and not a rate limit, which has its own signal.
pub fn blames_deployment(error: &Error) -> bool {
    error.origin == Origin::Upstream
        && !matches!(
            error.kind,
            ErrorKind::RateLimited | ErrorKind::UpstreamRejected
        )
}

/// Jittered exponential backoff between rounds over the same deployments.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    pub fn from_config(config: Option<&BackoffConfig>) -> Self {
        let default = Self::default();
        let Some(config) = config else {
            return default;
        };
        Self {
            base: config.base_ms.map_or(default.base, Duration::from_millis),
            max: config.max_ms.map_or(default.max, Duration::from_millis),
        }
    }

    /// The pause before round `round` (1 = the first retry): half of `base · 2^(round-1)`
    /// fixed, half random, so synchronized clients spread out but never retry at once.
    pub fn delay(&self, round: u32, rng: &mut impl Rng) -> Duration {
        let exponent = round.saturating_sub(1).min(16);
        let ceiling = self.base.saturating_mul(1 << exponent).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(rng.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn client_errors_stop_and_upstream_faults_retry() {
        for status in [400, 404, 409, 422] {
            assert_eq!(
                verdict(&Error::from_upstream_status(status, "x")),
                Verdict::Stop,
                "{status}"
            );
        }
        assert_eq!(verdict(&Error::invalid_request("x")), Verdict::Stop);
        for status in [408, 429, 500, 502, 503, 529] {
            assert_eq!(
                verdict(&Error::from_upstream_status(status, "x")),
                Verdict::Retry,
                "{status}"
            );
        }
        assert_eq!(verdict(&Error::upstream_connect("x")), Verdict::Retry);
        assert_eq!(verdict(&Error::upstream_timeout("x")), Verdict::Retry);
        for status in [401, 403] {
            assert_eq!(
                verdict(&Error::from_upstream_status(status, "x")),
                Verdict::OtherDeployment
            );
        }
        assert_eq!(
            verdict(&Error::from_upstream_status(429, "x").quota_exceeded()),
            Verdict::OtherDeployment
        );
        assert!(!blames_deployment(&Error::from_upstream_status(429, "x")));
        assert!(!blames_deployment(&Error::from_upstream_status(400, "x")));
        assert!(blames_deployment(&Error::from_upstream_status(503, "x")));
        assert!(!blames_deployment(&Error::invalid_request("x")));
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let backoff = Backoff::default();
        let mut rng = StdRng::seed_from_u64(1);
        for (round, ceiling) in [(1, 100), (2, 200), (3, 400), (6, 2000), (40, 2000)] {
            for _ in 0..50 {
                let delay = backoff.delay(round, &mut rng).as_millis();
                assert!(
                    (ceiling / 2..=ceiling).contains(&delay),
                    "round {round}: {delay}"
                );
            }
        }
    }
}

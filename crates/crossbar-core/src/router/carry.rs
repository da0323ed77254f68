//! Hot reload: a router built from a new configuration takes over what the router it replaces
//! learnt about the deployments both have (matched by id, `model@provider`), so a reload
//! neither forgets a failing deployment nor explores a known one again.
//!
//! Statistics, the `Retry-After` cooldown, the rate-limit headroom, the other replicas' reports
//! and the shadow figures (with who records shadow answers) move as they are. A
//! breaker is carried through its public transitions, so the new configuration's breaker
//! settings apply from the reload on: an open breaker stays open until the same instant, a
//! half-open one lets one probe through, a closed one starts with an empty window.
//! Outcomes of calls still running on the old router after the swap stay with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{BreakerState, Deployment, Router};

/// A half-open breaker is carried as one open for this long, after which the new router's
/// breaker hands out its probe.
const PROBE_SOON: Duration = Duration::from_millis(1);

impl Router {
    /// Takes over from `old` the live state of every deployment this router also has, matched
    /// by id (in configuration order when several share one). Returns the ids carried, in
    /// this router's order.
    pub fn carry_from(&self, old: &Router) -> Vec<String> {
        let now = Instant::now();
        let mut previous: HashMap<String, Vec<&Arc<Deployment>>> = HashMap::new();
        // Reversed, so that `pop` hands them out in configuration order.
        for deployment in old.deployments.iter().rev() {
            previous
                .entry(deployment.id())
                .or_default()
                .push(deployment);
        }
        self.shadows.adopt(&old.shadows);
        let mut carried = Vec::new();
        for deployment in &self.deployments {
            let id = deployment.id();
            if let Some(from) = previous.get_mut(&id).and_then(Vec::pop) {
                carry(from, deployment, now);
                carried.push(id);
            }
        }
        carried
    }
}

fn carry(from: &Deployment, to: &Deployment, now: Instant) {
    to.headroom.adopt(&from.headroom);
    // One lock at a time: `from` belongs to another router, whose calls may still run.
    let (stats, breaker, open_until, cooldown_until, peers) = {
        let live = from.live();
        (
            live.stats.clone(),
            live.breaker.state(now),
            live.breaker.open_until(),
            live.cooldown_until,
            live.peers,
        )
    };
    let mut live = to.live();
    live.stats = stats;
    live.cooldown_until = cooldown_until;
    live.peers = peers;
    match (breaker, open_until) {
        (BreakerState::Open, Some(until)) => live.breaker.adopt_open(until, now),
        (BreakerState::HalfOpen, _) => live.breaker.adopt_open(now + PROBE_SOON, now),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::super::breaker::Permit;
    use super::super::{BreakerState, Router};
    use crate::config::Config;

    fn router(models: &str) -> Router {
        let text = format!(
            r#"
[[providers]]
name = "a"
kind = "sim"
dialect = "openai"
[[providers]]
name = "b"
kind = "sim"
dialect = "anthropic"
[[providers]]
name = "c"
kind = "sim"
dialect = "openai"
{models}
"#
        );
        let config = Config::from_toml(&text, "<test>").unwrap();
        let endpoints: HashMap<String, String> = ["a", "b", "c"]
            .into_iter()
            .map(|name| (name.to_owned(), "http://127.0.0.1:9".to_owned()))
            .collect();
        Router::from_config(&config, &endpoints).unwrap()
    }

    fn deployment<'a>(router: &'a Router, id: &str) -> &'a super::super::Deployment {
        router.deployments().find(|d| d.id() == id).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn breakers_and_statistics_of_surviving_deployments_carry_over() {
        let old = router(
            r#"
[[models]]
name = "m"
deployments = [{ provider = "a", target = "x" }, { provider = "b", target = "y" }]
[[models]]
name = "gone"
deployments = [{ provider = "c", target = "z" }]
"#,
        );
        let now = Instant::now();
        let failing = deployment(&old, "m@a");
        {
            let mut live = failing.live();
            for _ in 0..5 {
                live.breaker.failure(Permit::Normal, now);
                live.stats.record_outcome(true, false);
            }
            live.stats.counters.attempts = 5;
            live.stats.counters.failures = 5;
            live.stats
                .record_first_token(false, Duration::from_millis(250));
            live.cooldown_until = Some(now + Duration::from_secs(7));
        }
        let healthy = deployment(&old, "m@b");
        {
            let mut live = healthy.live();
            live.stats.counters.attempts = 3;
            live.stats.counters.successes = 3;
            live.stats.counters.spent_pusd = 1_250_000;
            live.stats
                .record_first_token(false, Duration::from_millis(100));
        }
        assert_eq!(failing.breaker_state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(10)).await;

        // The new file removes `gone`, adds `m@c` and moves `m@b` first.
        let new = router(
            r#"
[[models]]
name = "m"
deployments = [{ provider = "b", target = "y" }, { provider = "a", target = "x" }, { provider = "c", target = "w" }]
"#,
        );
        assert_eq!(new.carry_from(&old), ["m@b", "m@a"]);

        let a = deployment(&new, "m@a").view();
        assert_eq!(a.breaker.state, BreakerState::Open);
        // Opened at `now` for the default 30 s cooldown, 10 s ago.
        assert_eq!(a.breaker.reopens_in_ms, Some(20_000));
        assert_eq!(a.stats.counters.attempts, 5);
        assert_eq!(a.stats.counters.failures, 5);
        assert_eq!(a.stats.latency_ms.samples, 1);
        assert_eq!(a.stats.latency_ms.ewma, Some(250.0));
        assert_eq!(a.retry_after_ms, None);
        assert_eq!(
            deployment(&new, "m@a").live().cooldown_until,
            Some(now + Duration::from_secs(7))
        );

        let b = deployment(&new, "m@b").view();
        assert_eq!(b.breaker.state, BreakerState::Closed);
        assert_eq!(b.stats.counters.attempts, 3);
        assert_eq!(b.stats.counters.successes, 3);
        assert_eq!(b.stats.counters.spent_pusd, 1_250_000);
        assert_eq!(b.stats.latency_ms.ewma, Some(100.0));

        let c = deployment(&new, "m@c").view();
        assert_eq!(c.breaker.state, BreakerState::Closed);
        assert_eq!(c.stats.counters.attempts, 0);
        assert_eq!(c.stats.latency_ms.samples, 0);
        assert!(new.deployments().all(|d| d.model != "gone"));

        // Past the cooldown the carried breaker is half-open and gives out one probe.
        tokio::time::advance(Duration::from_secs(20)).await;
        let now = Instant::now();
        let mut live = deployment(&new, "m@a").live();
        assert_eq!(live.breaker.state(now), BreakerState::HalfOpen);
        assert_eq!(live.breaker.acquire(now), Some(Permit::Probe));
        assert_eq!(live.breaker.acquire(now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_open_breaker_carries_over_as_one_probe() {
        let models = r#"
[[models]]
name = "m"
deployments = [{ provider = "a", target = "x" }]
"#;
        let old = router(models);
        let now = Instant::now();
        {
            let mut live = deployment(&old, "m@a").live();
            for _ in 0..5 {
                live.breaker.failure(Permit::Normal, now);
            }
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(
            deployment(&old, "m@a").breaker_state(),
            BreakerState::HalfOpen
        );
        let new = router(models);
        assert_eq!(new.carry_from(&old), ["m@a"]);
        tokio::time::advance(Duration::from_millis(1)).await;
        let now = Instant::now();
        let mut live = deployment(&new, "m@a").live();
        assert_eq!(live.breaker.state(now), BreakerState::HalfOpen);
        assert_eq!(live.breaker.acquire(now), Some(Permit::Probe));
        assert_eq!(live.breaker.acquire(now), None);
    }

    /// A reload keeps each surviving deployment's headroom reading, and the shadow figures
    /// with the hook that records shadow answers.
    #[tokio::test(start_paused = true)]
    async fn headroom_and_shadow_figures_carry_over() {
        let models = r#"
[[models]]
name = "m"
deployments = [{ provider = "a", target = "x" }]
"#;
        let old = router(models);
        deployment(&old, "m@a").observe_quota(super::super::Quota {
            limits: vec![super::super::Limit {
                name: "requests",
                remaining: 1,
                limit: Some(100),
                reset_ms: Some(30_000),
            }],
        });
        let heard = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&heard);
        old.on_shadow_answer(std::sync::Arc::new(move |_| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }));
        let new = router(models);
        new.carry_from(&old);
        let view = deployment(&new, "m@a").view().headroom.unwrap();
        assert!((view.remaining - 0.01).abs() < 1e-9);
        assert!(!view.from_peer);
        assert_eq!(view.limits[0].remaining, 1);
        assert!(new.shadows.hook().is_some());
        assert!(!heard.load(std::sync::atomic::Ordering::SeqCst));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(deployment(&new, "m@a").view().headroom.is_none());
    }
}

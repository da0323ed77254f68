//! Router behaviour against a scripted upstream on tokio's paused clock: every timing is
//! virtual and every random draw seeded, so each run replays exactly.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::*;
use crate::chat::{ContentPart, FinishReason, Message, Role};
use crate::config::Config;

/// How one simulated provider behaves.
#[derive(Clone, Debug)]
struct Script {
    ttft: Duration,
    /// Returned by the next calls, in order, before anything else is decided.
    queued: VecDeque<Error>,
    /// Share of calls answered 503, drawn from a seeded RNG.
    error_rate: f64,
    /// Streams fail after their start event, before any content.
    fail_before_content: bool,
    /// Streams fail right after their first content event.
    cut_after_content: bool,
    input_tokens: u64,
    cached_tokens: u64,
    /// Requests allowed per `quota_window` (0: no quota), reported on every answer as
    /// providers do, and answered 429 once spent.
    quota_limit: u64,
    quota_window: Duration,
    quota_used: u64,
    quota_start: Option<Instant>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(100),
            queued: VecDeque::new(),
            error_rate: 0.0,
            fail_before_content: false,
            cut_after_content: false,
            input_tokens: 50,
            cached_tokens: 0,
            quota_limit: 0,
            quota_window: Duration::from_secs(10),
            quota_used: 0,
            quota_start: None,
        }
    }
}

#[derive(Default)]
struct Fake {
    scripts: Mutex<HashMap<String, Script>>,
    rng: Mutex<Option<StdRng>>,
    calls: Mutex<Vec<String>>,
    errors: AtomicU64,
    cancelled: AtomicU64,
    /// 429s answered because a quota was spent.
    rate_limited: AtomicU64,
}

/// Counts a call as cancelled when dropped before it finished.
struct CallGuard<'a> {
    fake: &'a Fake,
    finished: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.fake.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Fake {
    fn set(&self, provider: &str, change: impl FnOnce(&mut Script)) {
        change(lock(&self.scripts).entry(provider.to_owned()).or_default());
    }

    fn calls_to(&self, provider: &str) -> usize {
        lock(&self.calls).iter().filter(|c| *c == provider).count()
    }

    fn total_calls(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Records the call and decides its fate.
    fn begin(&self, deployment: &Deployment) -> Result<Script> {
        let name = deployment.provider.name.clone();
        lock(&self.calls).push(name.clone());
        let mut scripts = lock(&self.scripts);
        let script = scripts.entry(name).or_default();
        if script.quota_limit > 0 {
            let now = Instant::now();
            let start = *script.quota_start.get_or_insert(now);
            let start = if now >= start + script.quota_window {
                script.quota_used = 0;
                *script.quota_start.insert(now)
            } else {
                start
            };
            let reset = start + script.quota_window - now;
            let admitted = script.quota_used < script.quota_limit;
            if admitted {
                script.quota_used += 1;
            }
            deployment.observe_quota(Quota {
                limits: vec![Limit {
                    name: "requests",
                    remaining: script.quota_limit - script.quota_used,
                    limit: Some(script.quota_limit),
                    reset_ms: Some(millis(reset)),
                }],
            });
            if !admitted {
                self.rate_limited.fetch_add(1, Ordering::SeqCst);
                let mut error = Error::from_upstream_status(429, "rate limited");
                error.retry_after = Some(reset);
                return Err(error);
            }
        }
        if let Some(error) = script.queued.pop_front() {
            self.errors.fetch_add(1, Ordering::SeqCst);
            return Err(error);
        }
        let draw: f64 = lock(&self.rng)
            .get_or_insert_with(|| StdRng::seed_from_u64(42))
            .random();
        if draw < script.error_rate {
            self.errors.fetch_add(1, Ordering::SeqCst);
            return Err(Error::from_upstream_status(503, "overloaded"));
        }
        Ok(script.clone())
    }

    fn usage(script: &Script) -> Usage {
        Usage {
            input_tokens: script.input_tokens,
            cached_input_tokens: script.cached_tokens,
            output_tokens: 20,
            ..Usage::default()
        }
    }
}

impl Upstream for Fake {
    fn chat<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        _request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(async move {
            let script = self.begin(&deployment)?;
            let mut guard = CallGuard {
                fake: self,
                finished: false,
            };
            tokio::time::sleep(script.ttft).await;
            guard.finished = true;
            Ok(ChatResponse {
                id: "r".to_owned(),
                model: deployment.target.clone(),
                created: 0,
                message: Message::text(Role::Assistant, deployment.provider.name.clone()),
                finish_reason: FinishReason::Stop,
                raw_finish_reason: None,
                usage: Some(Fake::usage(&script)),
                system_fingerprint: None,
            })
        })
    }

    fn chat_stream<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        _request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatStream>> {
        Box::pin(async move {
            let script = self.begin(&deployment)?;
            let name = deployment.provider.name.clone();
            let stream: ChatStream = Box::pin(async_stream::stream! {
                yield Ok(StreamEvent::Start { id: "s".to_owned(), model: name.clone(), created: 0 });
                tokio::time::sleep(script.ttft).await;
                if script.fail_before_content {
                    yield Err(Error::stream_interrupted("broke before content"));
                    return;
                }
                yield Ok(StreamEvent::TextDelta(name.clone()));
                if script.cut_after_content {
                    yield Err(Error::stream_interrupted("cut after content"));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                yield Ok(StreamEvent::TextDelta(" done".to_owned()));
                yield Ok(StreamEvent::Finish { reason: FinishReason::Stop, raw: None });
                yield Ok(StreamEvent::Usage(Fake::usage(&script)));
            });
            Ok(stream)
        })
    }

    fn embed<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        _request: &'a EmbeddingRequest,
    ) -> BoxFuture<'a, Result<EmbeddingResponse>> {
        Box::pin(async move {
            let script = self.begin(&deployment)?;
            tokio::time::sleep(script.ttft).await;
            Ok(EmbeddingResponse {
                model: deployment.target.clone(),
                vectors: vec![vec![0.0; 4]],
                input_tokens: script.input_tokens,
            })
        })
    }
}

/// A provider line: `name cloud region`.
fn providers(list: &[(&str, &str, &str)]) -> String {
    list.iter()
        .map(|(name, cloud, region)| {
            format!(
                "[[providers]]\nname = \"{name}\"\nkind = \"openai-compatible\"\nendpoint = \"http://127.0.0.1:9/v1\"\ncloud = \"{cloud}\"\nregion = \"{region}\"\n\n"
            )
        })
        .collect()
}

fn model(name: &str, deployments: &[(&str, f64)]) -> String {
    let list: Vec<String> = deployments
        .iter()
        .map(|(provider, input)| {
            format!(
                "{{ provider = \"{provider}\", target = \"t\", price = {{ input = {input}, output = {}, cached_input = {} }} }}",
                input * 4.0,
                input / 2.0
            )
        })
        .collect();
    format!(
        "[[models]]\nname = \"{name}\"\ndeployments = [{}]\n\n",
        list.join(", ")
    )
}

fn build(config: &str, fake: &Arc<Fake>) -> Router {
    let config = Config::from_toml(config, "test.toml").unwrap();
    let upstream: Arc<dyn Upstream> = fake.clone();
    Router::with_upstream(&config, &HashMap::new(), upstream).unwrap()
}

/// Three providers `a`, `b`, `c` serving model `m` at rising prices.
fn three(route: &str) -> String {
    format!(
        "{}{}{route}",
        providers(&[
            ("a", "azure", "eastus"),
            ("b", "aws", "us-east-1"),
            ("c", "gcp", "europe-west4")
        ]),
        model("m", &[("a", 1.0), ("b", 2.0), ("c", 3.0)])
    )
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("m", vec![Message::text(Role::User, text)])
}

fn stream_ask(text: &str) -> ChatRequest {
    let mut request = ask(text);
    request.stream = true;
    request
}

fn view(router: &Router, provider: &str) -> DeploymentView {
    router
        .snapshot()
        .into_iter()
        .find(|d| d.provider == provider)
        .unwrap()
}

async fn drain(stream: ChatStream) -> Vec<Result<StreamEvent>> {
    stream.collect().await
}

#[tokio::test(start_paused = true)]
async fn a_deployment_failing_half_its_calls_never_reaches_the_client() {
    let fake = Arc::new(Fake::default());
    fake.set("b", |s| s.error_rate = 0.5);
    // Round robin keeps sending the flaky deployment its share and a lenient breaker keeps it
    // in rotation, so every failure has to be hidden by failover.
    let router = build(
        &three("[routes.default]\nobjective = \"round-robin\"\nbreaker = { failures = 1000 }\n"),
        &fake,
    );
    for i in 0..1000 {
        if i % 4 == 0 {
            let routed = router.chat_stream(&stream_ask("hi")).await.unwrap();
            let events = drain(routed.value).await;
            assert!(events.iter().all(Result::is_ok), "request {i}");
        } else {
            router.chat(&ask("hi")).await.unwrap();
        }
    }
    assert!(fake.calls_to("b") > 300, "b kept its share of traffic");
    assert!(fake.errors.load(Ordering::SeqCst) > 150, "b really failed");
}

#[tokio::test(start_paused = true)]
async fn retry_after_keeps_a_deployment_untouched_until_it_passes() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| {
        s.queued.push_back(
            Error::from_upstream_status(429, "slow down")
                .with_retry_after(Some(Duration::from_secs(5))),
        );
    });
    let router = build(&three("[routes.default]\nobjective = \"order\"\n"), &fake);
    let start = Instant::now();
    let first = router.chat(&ask("x")).await.unwrap();
    assert_eq!(first.deployment.provider.name, "b");
    assert_eq!(first.attempts.len(), 2);
    assert_eq!(fake.calls_to("a"), 1);
    // Pinned to the cooling deployment: refused here, with the time left, without a call.
    let pinned = Preferences::from_headers(None, Some("a"), None).unwrap();
    let refused = router.chat_with(&ask("x"), &pinned).await.unwrap_err();
    assert_eq!(refused.status(), 429);
    assert!(refused.retry_after.unwrap() <= Duration::from_secs(5));
    while start.elapsed() < Duration::from_millis(4900) {
        let routed = router.chat(&ask("x")).await.unwrap();
        assert_eq!(routed.deployment.provider.name, "b");
        assert_eq!(fake.calls_to("a"), 1, "untouched until Retry-After passed");
    }
    assert!(view(&router, "a").retry_after_ms.is_some());
    tokio::time::advance(Duration::from_millis(200)).await;
    let back = router.chat(&ask("x")).await.unwrap();
    assert_eq!(back.deployment.provider.name, "a");
    assert_eq!(fake.calls_to("a"), 2);
}

#[tokio::test(start_paused = true)]
async fn latency_routing_leaves_a_slowed_deployment_and_comes_back() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.ttft = Duration::from_millis(100));
    fake.set("b", |s| s.ttft = Duration::from_millis(300));
    fake.set("c", |s| s.ttft = Duration::from_millis(600));
    let router = build(&three("[routes.default]\nobjective = \"latency\"\n"), &fake);
    let mut served = Vec::new();
    let run = async |router: &Router, served: &mut Vec<String>, n: usize| {
        for _ in 0..n {
            let routed = router.chat_stream(&stream_ask("x")).await.unwrap();
            served.push(routed.deployment.provider.name.clone());
            drain(routed.value).await;
        }
    };
    run(&router, &mut served, 100).await;
    let on_a = |s: &[String]| s.iter().filter(|p| *p == "a").count();
    assert!(on_a(&served[50..]) >= 45, "{served:?}");

    fake.set("a", |s| s.ttft = Duration::from_secs(2));
    served.clear();
    run(&router, &mut served, 100).await;
    let moved = served.iter().position(|p| p != "a").unwrap();
    assert!(moved <= 2, "left a within {moved} requests: {served:?}");
    assert!(on_a(&served[10..]) <= 10, "{served:?}");

    fake.set("a", |s| s.ttft = Duration::from_millis(100));
    served.clear();
    run(&router, &mut served, 800).await;
    let back = served.windows(20).position(|w| on_a(w) >= 18).unwrap();
    assert!(back < 600, "came back after {back} requests");
    assert!(on_a(&served[750..]) >= 45, "{served:?}");
}

#[tokio::test(start_paused = true)]
async fn cost_routing_picks_the_cheapest_allowed_and_never_leaves_the_region() {
    // `a` (US) is cheapest but outside the EU constraint; `b2` is the cheapest EU deployment.
    let config = format!(
        "{}{}[routes.default]\nobjective = \"cost\"\nexplore = 0.0\nconstraints = {{ regions = [\"eu-*\", \"europe-*\"] }}\n",
        providers(&[
            ("a", "azure", "eastus"),
            ("b1", "aws", "eu-central-1"),
            ("b2", "aws", "eu-west-1"),
            ("c", "gcp", "europe-west4"),
        ]),
        model("m", &[("a", 0.5), ("b1", 3.0), ("b2", 1.0), ("c", 2.0)])
    );
    let fake = Arc::new(Fake::default());
    let router = build(&config, &fake);
    for _ in 0..20 {
        let routed = router.chat(&ask("x")).await.unwrap();
        assert_eq!(routed.deployment.provider.name, "b2");
    }
    // The cheapest EU deployment goes down: the next cheapest EU one takes over, never the US.
    fake.set("b2", |s| s.error_rate = 1.0);
    for _ in 0..50 {
        let routed = router.chat(&ask("x")).await.unwrap();
        assert_eq!(routed.deployment.provider.name, "c");
    }
    fake.set("c", |s| s.error_rate = 1.0);
    fake.set("b1", |s| s.error_rate = 1.0);
    for _ in 0..50 {
        assert!(router.chat(&ask("x")).await.is_err());
    }
    assert_eq!(
        fake.calls_to("a"),
        0,
        "the region constraint held under failover"
    );

    // With exploration on, the constraint still holds.
    let fake = Arc::new(Fake::default());
    let explorer = build(&config.replace("explore = 0.0", "explore = 0.5"), &fake);
    for _ in 0..200 {
        explorer.chat(&ask("x")).await.unwrap();
    }
    assert_eq!(fake.calls_to("a"), 0);
    assert!(fake.calls_to("b2") > fake.calls_to("c"));
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_half_opens_and_closes() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.error_rate = 1.0);
    let router = build(
        &three(
            "[routes.default]\nobjective = \"order\"\nbreaker = { failures = 3, ratio = 0.5, window_s = 10, cooldown_s = 5 }\n",
        ),
        &fake,
    );
    for _ in 0..3 {
        assert_eq!(router.chat(&ask("x")).await.unwrap().attempts.len(), 2);
    }
    assert_eq!(view(&router, "a").breaker.state, BreakerState::Open);
    for _ in 0..10 {
        let routed = router.chat(&ask("x")).await.unwrap();
        assert_eq!(routed.attempts.len(), 1, "an open breaker is skipped");
    }
    assert_eq!(fake.calls_to("a"), 3);

    // After the cooldown one probe goes through; it fails, so the breaker opens again.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(view(&router, "a").breaker.state, BreakerState::HalfOpen);
    router.chat(&ask("x")).await.unwrap();
    assert_eq!(fake.calls_to("a"), 4);
    assert_eq!(view(&router, "a").breaker.state, BreakerState::Open);

    // Recovered: the next probe succeeds and closes it; traffic returns.
    fake.set("a", |s| s.error_rate = 0.0);
    tokio::time::advance(Duration::from_secs(5)).await;
    let probe = router.chat(&ask("x")).await.unwrap();
    assert_eq!(probe.deployment.provider.name, "a");
    assert_eq!(view(&router, "a").breaker.state, BreakerState::Closed);
    assert_eq!(
        router
            .chat(&ask("x"))
            .await
            .unwrap()
            .deployment
            .provider
            .name,
        "a"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hedge_wins_over_a_slow_first_attempt_which_is_cancelled() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.ttft = Duration::from_secs(10));
    fake.set("b", |s| s.ttft = Duration::from_millis(100));
    let router = build(
        &three(
            "[routes.default]\nobjective = \"order\"\nhedge = { after = \"200ms\", budget = 1.0 }\n",
        ),
        &fake,
    );
    for stream in [false, true] {
        let before = fake.cancelled.load(Ordering::SeqCst);
        let start = Instant::now();
        let (deployment, attempts) = if stream {
            let routed = router.chat_stream(&stream_ask("x")).await.unwrap();
            drain(routed.value).await;
            (routed.deployment, routed.attempts)
        } else {
            let routed = router.chat(&ask("x")).await.unwrap();
            assert!(routed.cost_pico.unwrap() > 0);
            (routed.deployment, routed.attempts)
        };
        assert_eq!(deployment.provider.name, "b");
        assert!(start.elapsed() < Duration::from_secs(1), "{stream}");
        assert_eq!(attempts.len(), 2);
        let winner = attempts.iter().find(|a| !a.cancelled).unwrap();
        assert!(winner.hedge && winner.error.is_none());
        let loser = attempts.iter().find(|a| a.cancelled).unwrap();
        assert_eq!(loser.deployment.provider.name, "a");
        assert!(loser.cost_pico > 0, "the loser's cost is recorded");
        if !stream {
            assert_eq!(fake.cancelled.load(Ordering::SeqCst), before + 1);
        }
    }
    let a = view(&router, "a");
    assert_eq!(a.stats.counters.cancelled, 2);
    assert!(a.stats.counters.spent_pusd > 0);
    assert_eq!(view(&router, "b").stats.counters.hedges_won, 2);
}

#[tokio::test(start_paused = true)]
async fn the_hedge_budget_caps_hedges_during_an_outage() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.ttft = Duration::from_secs(3));
    let router = build(
        &three(
            "[routes.default]\nobjective = \"order\"\nhedge = { after = \"100ms\", budget = 0.1 }\n",
        ),
        &fake,
    );
    for _ in 0..200 {
        router.chat(&ask("x")).await.unwrap();
    }
    let hedges: u64 = router
        .snapshot()
        .iter()
        .map(|d| d.stats.counters.hedges)
        .sum();
    assert_eq!(hedges, 20, "a tenth of the traffic, not all of it");
    assert_eq!(fake.total_calls(), 220);
}

#[tokio::test(start_paused = true)]
async fn streams_fail_over_before_content_and_break_visibly_after() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.fail_before_content = true);
    let router = build(&three("[routes.default]\nobjective = \"order\"\n"), &fake);
    let routed = router.chat_stream(&stream_ask("x")).await.unwrap();
    assert_eq!(routed.deployment.provider.name, "b");
    let events = drain(routed.value).await;
    assert!(matches!(events[0], Ok(StreamEvent::Start { ref model, .. }) if model == "b"));
    assert!(events.iter().all(Result::is_ok));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(StreamEvent::Finish { .. })))
    );

    // After content reached the caller, a break is the caller's to see, never a clean end.
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.cut_after_content = true);
    let router = build(&three("[routes.default]\nobjective = \"order\"\n"), &fake);
    let routed = router.chat_stream(&stream_ask("x")).await.unwrap();
    assert_eq!(routed.deployment.provider.name, "a");
    let events = drain(routed.value).await;
    assert!(matches!(events.last(), Some(Err(e)) if e.kind == crate::ErrorKind::StreamInterrupted));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Ok(StreamEvent::Finish { .. })))
    );
    assert_eq!(fake.total_calls(), 1, "no retry once content was delivered");
    assert_eq!(view(&router, "a").stats.counters.failures, 1);
}

#[tokio::test(start_paused = true)]
async fn client_errors_stop_and_account_errors_move_on() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| {
        s.queued
            .push_back(Error::from_upstream_status(400, "bad tool id"));
    });
    let router = build(&three("[routes.default]\nobjective = \"order\"\n"), &fake);
    let error = router.chat(&ask("x")).await.unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(
        fake.total_calls(),
        1,
        "a client error is not retried anywhere"
    );

    // The upstream refusing our key is the deployment's problem: the next one answers, and
    // the refusing one is not tried again within the request.
    fake.set("a", |s| {
        s.queued
            .push_back(Error::from_upstream_status(401, "bad key"));
    });
    fake.set("b", |s| s.error_rate = 1.0);
    let routed = router.chat(&ask("x")).await.unwrap();
    assert_eq!(routed.deployment.provider.name, "c");
    assert_eq!(fake.calls_to("a"), 2);
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_then_return_the_last_error() {
    let config = format!(
        "{}{}[routes.default]\nattempts = 3\n",
        providers(&[("a", "x", "y")]),
        model("m", &[("a", 1.0)])
    );
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.error_rate = 1.0);
    let router = build(&config, &fake);
    let start = Instant::now();
    let error = router.chat(&ask("x")).await.unwrap_err();
    assert_eq!(error.status(), 503);
    assert_eq!(fake.calls_to("a"), 3);
    // Two backoffs: 50–100 ms, then 100–200 ms.
    let waited = start.elapsed();
    assert!(
        (Duration::from_millis(150)..=Duration::from_millis(300)).contains(&waited),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_missed_ttft_deadline_fails_over() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.ttft = Duration::from_secs(30));
    let router = build(
        &three("[routes.default]\nobjective = \"order\"\ntimeouts = { ttft_ms = 500 }\n"),
        &fake,
    );
    let routed = router.chat_stream(&stream_ask("x")).await.unwrap();
    assert_eq!(routed.deployment.provider.name, "b");
    let timeout = routed.attempts[0].error.as_ref().unwrap();
    assert_eq!(timeout.status(), 504);
    assert_eq!(view(&router, "a").stats.counters.failures, 1);
}

#[tokio::test(start_paused = true)]
async fn affinity_sticks_to_the_prefix_owner_and_yields_to_health() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.cached_tokens = 1024);
    fake.set("b", |s| s.cached_tokens = 1024);
    // Round robin alone would alternate; affinity keeps the conversation where its cache is.
    let router = build(
        &three("[routes.default]\nobjective = \"round-robin\"\n"),
        &fake,
    );
    let system = "You are a meticulous assistant for the archive. ".repeat(120);
    let conversation = |turn: &str| {
        ChatRequest::new(
            "m",
            vec![
                Message::text(Role::System, system.clone()),
                Message::text(Role::User, "Summarize the archive."),
                Message::text(Role::Assistant, "Done."),
                Message::text(Role::User, turn),
            ],
        )
    };
    let first = router.chat(&conversation("turn 0")).await.unwrap();
    let owner = first.deployment.provider.name.clone();
    assert!(!first.affinity);
    for turn in 1..6 {
        let routed = router
            .chat(&conversation(&format!("turn {turn}")))
            .await
            .unwrap();
        assert_eq!(routed.deployment.provider.name, owner);
        assert!(routed.affinity);
    }
    // Short prompts are not worth sticking for: they rotate.
    let short: Vec<String> = {
        let mut served = Vec::new();
        for _ in 0..3 {
            served.push(
                router
                    .chat(&ask("hi"))
                    .await
                    .unwrap()
                    .deployment
                    .provider
                    .name
                    .clone(),
            );
        }
        served
    };
    assert!(short.iter().any(|p| *p != short[0]));
    let owner_view = view(&router, &owner);
    assert_eq!(owner_view.stats.counters.affinity_hits, 5);
    assert!(owner_view.stats.counters.affinity_saving_pusd > 0);

    // The owner starts rate limiting: affinity yields and the conversation moves.
    fake.set(&owner, |s| {
        s.queued.push_back(
            Error::from_upstream_status(429, "busy")
                .with_retry_after(Some(Duration::from_secs(60))),
        );
    });
    let moved = router.chat(&conversation("turn 6")).await.unwrap();
    assert_ne!(moved.deployment.provider.name, owner);
    let again = router.chat(&conversation("turn 7")).await.unwrap();
    assert_eq!(
        again.deployment.provider.name,
        moved.deployment.provider.name
    );
}

#[tokio::test(start_paused = true)]
async fn headers_pin_exclude_cap_cost_and_pick_routes() {
    let config = format!(
        "{}{}{}[routes.default]\nobjective = \"order\"\n\n[routes.cheap]\nobjective = \"cost\"\nexplore = 0.0\n\n[routes.smart]\nmodels = [\"big\"]\nfallbacks = [\"m\"]\n",
        providers(&[
            ("a", "azure", "eastus"),
            ("b", "aws", "us-east-1"),
            ("c", "gcp", "europe-west4")
        ]),
        model("m", &[("a", 3.0), ("b", 1.0), ("c", 2.0)]),
        model("big", &[("c", 30.0)]),
    );
    let fake = Arc::new(Fake::default());
    let router = build(&config, &fake);
    let with = |route: Option<&str>, provider: Option<&str>, cost: Option<&str>| {
        Preferences::from_headers(route, provider, cost).unwrap()
    };
    let served = async |request: &ChatRequest, preferences: &Preferences| {
        router
            .chat_with(request, preferences)
            .await
            .map(|r| (r.deployment.provider.name.clone(), r.route))
    };
    assert_eq!(
        served(&ask("x"), &with(None, None, None)).await.unwrap().0,
        "a"
    );
    assert_eq!(
        served(&ask("x"), &with(None, Some("c"), None))
            .await
            .unwrap()
            .0,
        "c"
    );
    assert_eq!(
        served(&ask("x"), &with(None, Some("!a"), None))
            .await
            .unwrap()
            .0,
        "b"
    );
    assert_eq!(
        served(&ask("x"), &with(Some("cheap"), None, None))
            .await
            .unwrap(),
        ("b".to_owned(), "cheap".to_owned())
    );
    // A cap below a's estimate moves the call to a cheaper deployment; below all, a 400.
    let a_cost = router.chat(&ask("x")).await.unwrap().estimated_cost_usd;
    let cap = format!("{}", a_cost * 0.9);
    assert_eq!(
        served(&ask("x"), &with(None, None, Some(&cap)))
            .await
            .unwrap()
            .0,
        "b"
    );
    let error = served(&ask("x"), &with(None, None, Some("0")))
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code.as_deref()),
        (400, Some("max_cost_exceeded"))
    );
    let error = served(&ask("x"), &with(Some("nope"), None, None))
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.code.as_deref()),
        (404, Some("route_not_found"))
    );
    let error = served(&ask("x"), &with(None, Some("zzz"), None))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 404);

    // A route named as the model uses its models, then its fallbacks.
    let mut smart = ask("x");
    smart.model = "smart".to_owned();
    assert_eq!(
        served(&smart, &with(None, None, None)).await.unwrap(),
        ("c".to_owned(), "smart".to_owned())
    );
    fake.set("c", |s| s.error_rate = 1.0);
    let (provider, _) = served(&smart, &with(None, None, None)).await.unwrap();
    assert_eq!(provider, "a", "fell back to model m in config order");
}

#[tokio::test(start_paused = true)]
async fn reported_usage_calibrates_the_prompt_estimate() {
    let fake = Arc::new(Fake::default());
    let router = build(&three("[routes.default]\nobjective = \"order\"\n"), &fake);
    let mut request = ask(&"word ".repeat(100));
    // Fixes the output estimate, so only the prompt side moves.
    request.max_tokens = Some(20);
    let before = router.chat(&request).await.unwrap().estimated_cost_usd;
    // The provider counts three times what we estimate.
    let estimate = estimate::Prompt::of_chat(&request).tokens(Tokenizer::OpenAi);
    fake.set("a", |s| s.input_tokens = (estimate * 3.0) as u64);
    for _ in 0..30 {
        router.chat(&request).await.unwrap();
    }
    let calibration = view(&router, "a").stats.prompt_token_calibration.unwrap();
    assert!((calibration - 3.0).abs() < 0.05, "{calibration}");
    let after = router.chat(&request).await.unwrap().estimated_cost_usd;
    assert!(after > before, "{before} → {after}");
}

#[tokio::test(start_paused = true)]
async fn nothing_available_is_a_fast_503_with_retry_after() {
    let config = format!(
        "{}{}[routes.default]\nattempts = 1\nbreaker = {{ failures = 1, cooldown_s = 7 }}\n",
        providers(&[("a", "x", "y")]),
        model("m", &[("a", 1.0)])
    );
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.error_rate = 1.0);
    let router = build(&config, &fake);
    assert_eq!(router.chat(&ask("x")).await.unwrap_err().status(), 503);
    let error = router.chat(&ask("x")).await.unwrap_err();
    assert_eq!(
        (error.status(), error.code.as_deref()),
        (503, Some("circuit_open"))
    );
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(fake.total_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_routed_and_costed() {
    let fake = Arc::new(Fake::default());
    let router = build(
        &three("[routes.default]\nobjective = \"cost\"\nexplore = 0.0\n"),
        &fake,
    );
    let request = EmbeddingRequest {
        model: "m".to_owned(),
        input: crate::embeddings::EmbeddingInput::Texts(vec!["hello".to_owned()]),
        dimensions: None,
        user: None,
    };
    let routed = router.embed(&request).await.unwrap();
    assert_eq!(routed.deployment.provider.name, "a");
    // 50 input tokens at $1 per million: 1,000,000 picodollars a token.
    assert_eq!(routed.cost_pico, Some(50_000_000));
}

/// Moves every deployment's report from one router (replica) to another, as Redis would.
fn share(from: &Router, to: &Router) {
    let now = Instant::now();
    for (theirs, ours) in from.deployments().zip(to.deployments()) {
        assert_eq!(theirs.id(), ours.id());
        ours.apply_peers(&[theirs.health_report(now, 1_000_000)], now, 1_000_000);
    }
}

#[tokio::test(start_paused = true)]
async fn replicas_share_breakers_and_latency_through_reports() {
    let breaker = "breaker = { failures = 3, cooldown_s = 30 }\n";
    let config = three(&format!(
        "[routes.default]\nobjective = \"latency\"\nexplore = 0.0\n{breaker}"
    ));
    let fake_a = Arc::new(Fake::default());
    fake_a.set("a", |s| s.error_rate = 1.0);
    fake_a.set("b", |s| s.ttft = Duration::from_millis(900));
    fake_a.set("c", |s| s.ttft = Duration::from_millis(50));
    // A's traffic goes in order, so `a` is called until its breaker opens.
    let replica_a = build(
        &three(&format!(
            "[routes.default]\nobjective = \"order\"\n{breaker}"
        )),
        &fake_a,
    );
    for _ in 0..3 {
        let pinned = Preferences::from_headers(None, Some("c"), None).unwrap();
        replica_a.chat_with(&ask("hi"), &pinned).await.unwrap();
    }
    // Replica A learns that `a` fails (its breaker opens) and that `c` is fast.
    for _ in 0..10 {
        replica_a.chat(&ask("hi")).await.unwrap();
    }
    assert_eq!(view(&replica_a, "a").breaker.state, BreakerState::Open);

    // Replica B has seen nothing: without reports it would try `a` first.
    let fake_b = Arc::new(Fake::default());
    fake_b.set("a", |s| s.error_rate = 1.0);
    let replica_b = build(&config, &fake_b);
    share(&replica_a, &replica_b);
    assert_eq!(view(&replica_b, "a").breaker.state, BreakerState::Open);
    let peers = view(&replica_b, "c").peers.unwrap();
    assert_eq!(peers.replicas, 1);
    assert!(peers.latency_samples >= 1);
    let routed = replica_b.chat(&ask("hi")).await.unwrap();
    assert_eq!(
        routed.deployment.provider.name, "c",
        "ranked on A's latencies"
    );
    assert_eq!(fake_b.calls_to("a"), 0, "the shared breaker kept B away");

    // The adopted breaker ends when A's does: B then probes `a` itself.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(view(&replica_b, "a").breaker.state, BreakerState::HalfOpen);
}

/// Models `m` (on `a`), `big` (on `c`) and `m-mini` (on `b`); route `smart` listing `big`;
/// aliases exact and patterned, overlapping on purpose.
fn aliased() -> String {
    format!(
        "{}{}{}{}[routes.default]\nobjective = \"order\"\nhosted_tools = \"drop\"\n\n[routes.smart]\nmodels = [\"big\"]\nunknown_fields = \"pass\"\n\n[routes.m-mini]\nhosted_tools = \"refuse\"\n\n[aliases]\n\"claude-*\" = \"m\"\n\"claude-opus-*\" = \"big\"\n\"claude-opus-5-5\" = \"m-mini\"\n\"*-codex\" = \"smart\"\n\"gpt-*-codex\" = \"m-mini\"\n\"my-fast\" = \"smart\"\n",
        providers(&[
            ("a", "azure", "eastus"),
            ("b", "aws", "us-east-1"),
            ("c", "gcp", "europe-west4")
        ]),
        model("m", &[("a", 1.0)]),
        model("big", &[("c", 30.0)]),
        model("m-mini", &[("b", 0.5)]),
    )
}

#[test]
fn model_names_resolve_exact_first_then_the_most_specific_pattern() {
    let router = build(&aliased(), &Arc::new(Fake::default()));
    let cases = [
        ("m", Some("m")),
        ("smart", Some("smart")),
        ("my-fast", Some("smart")),
        // The exact alias beats both patterns that match it.
        ("claude-opus-5-5", Some("m-mini")),
        // `claude-opus-*` (11 literal characters) beats `claude-*` (7).
        ("claude-opus-4-1", Some("big")),
        ("claude-haiku-4-5-20251001", Some("m")),
        // `gpt-*-codex` (10) beats `*-codex` (6).
        ("gpt-5.5-codex", Some("m-mini")),
        ("o4-codex", Some("smart")),
        ("gpt-5.5", None),
        ("claude", None),
    ];
    for (requested, expected) in cases {
        assert_eq!(router.resolve_model(requested), expected, "{requested}");
    }
    assert_eq!(
        router.aliases().collect::<Vec<_>>(),
        [("claude-opus-5-5", "m-mini"), ("my-fast", "smart")]
    );
}

#[test]
fn equally_specific_patterns_are_tried_in_name_order() {
    let config = format!(
        "{}{}{}[aliases]\n\"x-*\" = \"n\"\n\"*-y\" = \"m\"\n",
        providers(&[("a", "azure", "eastus")]),
        model("m", &[("a", 1.0)]),
        model("n", &[("a", 1.0)]),
    );
    let router = build(&config, &Arc::new(Fake::default()));
    // Both have two literal characters; `*-y` sorts before `x-*`.
    assert_eq!(router.resolve_model("x-y"), Some("m"));
    assert_eq!(router.resolve_model("x-z"), Some("n"));
}

#[tokio::test(start_paused = true)]
async fn an_alias_is_served_by_its_logical_model_under_its_route() {
    let fake = Arc::new(Fake::default());
    let router = build(&aliased(), &fake);
    let mut request = ask("x");
    request.model = "claude-opus-4-1".to_owned();
    let routed = router.chat(&request).await.unwrap();
    assert_eq!(routed.deployment.id(), "big@c");
    assert_eq!(routed.route, "default");
    request.model = "o4-codex".to_owned();
    let routed = router.chat(&request).await.unwrap();
    assert_eq!(routed.deployment.id(), "big@c");
    assert_eq!(routed.route, "smart");
    request.model = "claude-opus-5-5".to_owned();
    let routed = router.chat(&request).await.unwrap();
    assert_eq!(routed.deployment.id(), "m-mini@b");
    assert_eq!(routed.route, "m-mini");
}

#[tokio::test(start_paused = true)]
async fn a_key_applies_to_the_logical_model_an_alias_leads_to() {
    let fake = Arc::new(Fake::default());
    let router = build(&aliased(), &fake);
    let keyed = |models: &[&str]| Preferences {
        key: Some(KeyScope {
            models: Some(models.iter().map(|m| (*m).to_owned()).collect()),
            ..KeyScope::default()
        }),
        ..Preferences::default()
    };
    let mut request = ask("x");
    // A key for `m` may ask for an id that aliases to `m`...
    request.model = "claude-haiku-4-5".to_owned();
    let routed = router.chat_with(&request, &keyed(&["m"])).await.unwrap();
    assert_eq!(routed.deployment.id(), "m@a");
    // ...but not reach `big` through another alias, nor through its literal name.
    request.model = "claude-opus-4-1".to_owned();
    let error = router
        .chat_with(&request, &keyed(&["m", "claude-opus-*"]))
        .await
        .unwrap_err();
    assert_eq!(
        (
            error.status(),
            error.code.as_deref(),
            error.message.as_str()
        ),
        (
            403,
            Some("model_not_allowed"),
            "Your key may not use model `big`."
        )
    );
    assert_eq!(fake.total_calls(), 1);
    // Close matches name only what the key may use: `big` is hidden from a key for `m`.
    request.model = "bigg".to_owned();
    let error = router
        .chat_with(&request, &keyed(&["m"]))
        .await
        .unwrap_err();
    assert_eq!(
        (
            error.status(),
            error.code.as_deref(),
            error.message.as_str()
        ),
        (
            404,
            Some("model_not_found"),
            "The model `bigg` does not exist or you do not have access to it."
        )
    );
    let error = router
        .chat_with(&request, &keyed(&["m", "big"]))
        .await
        .unwrap_err();
    assert_eq!(
        error.message,
        "The model `bigg` does not exist or you do not have access to it. Close matches: big."
    );
    request.model = "m-mni".to_owned();
    let error = router
        .chat_with(&request, &Preferences::default())
        .await
        .unwrap_err();
    assert_eq!(
        error.message,
        "The model `m-mni` does not exist or you do not have access to it. Close matches: m-mini."
    );
}

#[test]
fn policies_follow_the_route_a_request_would_use() {
    let router = build(&aliased(), &Arc::new(Fake::default()));
    let none = Preferences::default();
    let policies = |model: &str, preferences: &Preferences| {
        let p = router.policies_for(model, preferences).unwrap();
        (p.hosted_tools, p.unknown_fields)
    };
    // Route `default`: its own settings.
    assert_eq!(
        policies("m", &none),
        (HostedTools::Drop, UnknownFields::Reject)
    );
    // Route `smart`, by name or through an alias: `unknown_fields` its own, `hosted_tools`
    // from `routes.default`.
    assert_eq!(
        policies("smart", &none),
        (HostedTools::Drop, UnknownFields::Pass)
    );
    assert_eq!(
        policies("my-fast", &none),
        (HostedTools::Drop, UnknownFields::Pass)
    );
    // Route `m-mini` (the model's own), reached through the exact alias.
    assert_eq!(
        policies("claude-opus-5-5", &none),
        (HostedTools::Refuse, UnknownFields::Reject)
    );
    // `x-crossbar-route` picks the route whatever the model.
    let pinned = Preferences::from_headers(Some("smart"), None, None).unwrap();
    assert_eq!(
        policies("claude-haiku-4-5", &pinned),
        (HostedTools::Drop, UnknownFields::Pass)
    );
    let error = router.policies_for("nope", &none).unwrap_err();
    assert_eq!(
        (error.status(), error.code.as_deref()),
        (404, Some("model_not_found"))
    );
    // Without any route settings, the built-in defaults.
    let plain = build(&three(""), &Arc::new(Fake::default()));
    let p = plain.policies_for("m", &none).unwrap();
    assert_eq!(
        (p.hosted_tools, p.unknown_fields),
        (HostedTools::Refuse, UnknownFields::Reject)
    );
    assert!(p.guardrails.is_empty());
}

#[test]
fn guardrails_are_the_routes_own_else_the_defaults_whole() {
    use crate::guardrails::{Action, Detector};
    let config = three(
        "[routes.default]\nguardrails = { email = \"mask\", phone = \"log\" }\n\n\
         [routes.strict]\nmodels = [\"m\"]\nguardrails = { payment_card = \"block\" }\n\n\
         [routes.open]\nmodels = [\"m\"]\nguardrails = {}\n",
    );
    let router = build(&config, &Arc::new(Fake::default()));
    let rules = |route: Option<&str>| {
        let preferences = Preferences::from_headers(route, None, None).unwrap();
        let p = router.policies_for("m", &preferences).unwrap();
        p.guardrails
            .detectors
            .clone()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rules(None),
        [
            (Detector::Email, Action::Mask),
            (Detector::Phone, Action::Log)
        ]
    );
    assert_eq!(
        rules(Some("strict")),
        [(Detector::PaymentCard, Action::Block)]
    );
    assert_eq!(rules(Some("open")), []);
}

/// Capability-aware routing: a request goes only to deployments whose entry (or the catalog)
/// accepts what it needs, decided before the first attempt; with none, a 400 naming the need.
#[tokio::test(start_paused = true)]
async fn requests_go_only_to_deployments_that_accept_what_they_need() {
    let config = format!(
        "{}[[models]]\nname = \"m\"\ndeployments = [\n\
         {{ provider = \"a\", target = \"t\", price = {{ input = 1.0, output = 4.0 }}, capabilities = [\"tools\"], context = 1000, max_output = 2048 }},\n\
         {{ provider = \"b\", target = \"t\", price = {{ input = 2.0, output = 8.0 }}, capabilities = [\"tools\", \"vision\", \"documents\"], context = 100000, max_output = 4096 }},\n\
         ]\n[routes.default]\nobjective = \"cost\"\nexplore = 0.0\n",
        providers(&[("a", "azure", "eastus"), ("b", "aws", "us-east-1")]),
    );
    let fake = Arc::new(Fake::default());
    let router = build(&config, &fake);
    // Text goes to the cheapest.
    assert_eq!(
        router
            .chat(&ask("x"))
            .await
            .unwrap()
            .deployment
            .provider
            .name,
        "a"
    );
    // An image needs vision: only `b` has it.
    let image = ContentPart::Image {
        source: crate::chat::ImageSource::Url("https://example.com/a.png".to_owned()),
        detail: None,
    };
    let looking = ChatRequest::new("m", vec![Message::new(Role::User, vec![image])]);
    let routed = router.chat(&looking).await.unwrap();
    assert_eq!(routed.deployment.provider.name, "b");
    assert_eq!(routed.attempts.len(), 1);
    // A prompt longer than `a`'s context window (1000 tokens) goes to `b`.
    let long = ask(&"word ".repeat(2000));
    assert_eq!(
        router.chat(&long).await.unwrap().deployment.provider.name,
        "b"
    );
    // Audio: no deployment of `m` accepts it; refused before any call.
    let calls = lock(&fake.calls).len();
    let audio = ChatRequest::new(
        "m",
        vec![Message::new(
            Role::User,
            vec![ContentPart::Audio {
                format: "wav".to_owned(),
                data: "UklGRg==".to_owned(),
            }],
        )],
    );
    let err = router.chat(&audio).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.code.as_deref(), Some("capability_unavailable"));
    assert_eq!(
        err.message,
        "No deployment of model `m` accepts audio input."
    );
    // More output than any deployment allows.
    let mut greedy = ask("x");
    greedy.max_tokens = Some(5000);
    let err = router.chat(&greedy).await.unwrap_err();
    assert_eq!(
        err.message,
        "`max_tokens` is 5000, more than any deployment of model `m` allows (at most 4096)."
    );
    assert_eq!(err.param.as_deref(), Some("max_tokens"));
    // Vision with 3000 output tokens fits `b` alone; with 4097, nothing.
    let mut both = looking.clone();
    both.max_tokens = Some(3000);
    assert_eq!(
        router.chat(&both).await.unwrap().deployment.provider.name,
        "b"
    );
    let mut apart = looking.clone();
    apart.max_tokens = Some(4097);
    let err = router.chat(&apart).await.unwrap_err();
    assert_eq!(
        err.message,
        "`max_tokens` is 4097, more than any deployment of model `m` allows (at most 4096)."
    );
    // A prompt too long for every context window is refused naming the context.
    let huge = ask(&"word ".repeat(150_000));
    let err = router.chat(&huge).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("context_length_exceeded"));
    assert!(
        err.message
            .ends_with("is longer than the context window of every deployment of model `m` (at most 100000 tokens)."),
        "{}",
        err.message
    );
    // Refusals never called anything: the one call since is the one that fit.
    assert_eq!(lock(&fake.calls).len(), calls + 1);
}

/// A deployment the catalog knows (kind and target) takes its limits from there unless its
/// entry says otherwise: the configuration always wins.
#[tokio::test(start_paused = true)]
async fn the_catalog_describes_known_deployments_and_the_config_overrides_it() {
    let config = "[[providers]]\nname = \"direct\"\nkind = \"openai\"\napi_key = \"k\"\n\n\
         [[providers]]\nname = \"told\"\nkind = \"openai\"\napi_key = \"k\"\n\n\
         [[models]]\nname = \"plain\"\ndeployments = [{ provider = \"direct\", target = \"gpt-4o\" }]\n\n\
         [[models]]\nname = \"stated\"\ndeployments = [{ provider = \"told\", target = \"gpt-4o\", capabilities = [\"reasoning\"], context = 64 }]\n";
    let fake = Arc::new(Fake::default());
    let router = build(config, &fake);
    let accepts = |provider: &str| {
        router
            .deployments()
            .find(|d| d.provider.name == provider)
            .unwrap()
            .accepts
    };
    // gpt-4o on OpenAI, from the catalog.
    assert_eq!(
        accepts("direct"),
        Accepts {
            capabilities: Some(crate::catalog::Capabilities::from([
                crate::catalog::Capability::Tools,
                crate::catalog::Capability::Vision,
                crate::catalog::Capability::Documents,
                crate::catalog::Capability::PromptCaching,
            ])),
            context: Some(128_000),
            max_output: Some(16_384),
        }
    );
    // The entry's capabilities and context replace the catalog's; its output limit stays.
    assert_eq!(
        accepts("told"),
        Accepts {
            capabilities: Some(crate::catalog::Capabilities::from([
                crate::catalog::Capability::Reasoning
            ])),
            context: Some(64),
            max_output: Some(16_384),
        }
    );
    let mut thinking = ask("x");
    thinking.reasoning_effort = Some("high".to_owned());
    thinking.model = "plain".to_owned();
    let err = router.chat(&thinking).await.unwrap_err();
    assert_eq!(
        err.message,
        "No deployment of model `plain` accepts reasoning."
    );
    thinking.model = "stated".to_owned();
    assert_eq!(
        router
            .chat(&thinking)
            .await
            .unwrap()
            .deployment
            .provider
            .name,
        "told"
    );
}

/// Ranking only the attempt budget's worth of candidates, then the rest when the attempt loop
/// walks past them, must give exactly the order a full sort gives, ties (config order) included,
/// for every objective and budget.
#[test]
fn ranking_the_first_few_then_the_rest_equals_ranking_all() {
    use crate::config::Objective;
    use crate::router::policy::{Candidate, rank, rank_rest};
    let router = build(&three(""), &Arc::new(Fake::default()));
    let deployment = router.deployments().next().unwrap();
    let mut rng = StdRng::seed_from_u64(17);
    for objective in [Objective::Cost, Objective::Latency, Objective::Balanced] {
        for keep in [1, 3, 10, 60] {
            // 200 candidates, a coarse grid of values so many tie.
            let candidates: Vec<Candidate<'_>> = (0..200)
                .map(|order| Candidate {
                    deployment,
                    order,
                    raw_prompt_tokens: 100.0,
                    prompt_tokens: 100.0,
                    estimated_cost: f64::from(rng.random_range(0..8u8)) * 0.001,
                    expected_ms: (rng.random_range(0..4u8) > 0)
                        .then(|| f64::from(rng.random_range(0..6u8)) * 50.0),
                    failure: f64::from(rng.random_range(0..3u8)) * 0.1,
                    pressure: f64::from(rng.random_range(0..3u8)) * 0.4,
                    score: 0.0,
                    latency: 0.0,
                })
                .collect();
            let mut all = candidates.clone();
            let sorted = rank(objective, 0.5, 0, all.len(), &mut all);
            assert_eq!(sorted, all.len());
            let mut few = candidates;
            let ranked = rank(objective, 0.5, 0, keep, &mut few);
            assert!(ranked >= keep.min(200), "{ranked} < {keep}");
            let lead: Vec<usize> = few[..ranked].iter().map(|c| c.order).collect();
            let expected: Vec<usize> = all[..ranked].iter().map(|c| c.order).collect();
            assert_eq!(lead, expected, "{objective:?}, keep {keep}: the leaders");
            rank_rest(objective, &mut few[ranked..]);
            let order = |v: &[Candidate<'_>]| v.iter().map(|c| c.order).collect::<Vec<_>>();
            assert_eq!(
                order(&few),
                order(&all),
                "{objective:?}, keep {keep}: the whole order"
            );
        }
    }
}

/// `m` on `a` then `b` (config order), and model `small` on `c`, under `route`.
fn canary(route: &str) -> String {
    format!(
        "{}{}{}{route}",
        providers(&[
            ("a", "azure", "eastus"),
            ("b", "aws", "us-east-1"),
            ("c", "gcp", "europe-west4")
        ]),
        model("m", &[("a", 1.0), ("b", 2.0)]),
        model("small", &[("c", 0.5)])
    )
}

/// The conversation `n`, at turn `turn` (each turn adds an answer and a question).
fn conversation(n: usize, turn: usize) -> ChatRequest {
    let mut messages = vec![Message::text(
        Role::User,
        format!("conversation {n}: hello"),
    )];
    for t in 0..turn {
        messages.push(Message::text(Role::Assistant, "ok"));
        messages.push(Message::text(Role::User, format!("turn {t}")));
    }
    ChatRequest::new("m", messages)
}

/// Canary shares measured over 2,000 distinct conversations: 10% start on deployment `m@b`,
/// 5% on model `small`, the rest on `a` (the `order` objective's first); every conversation
/// stays on its side for all its turns.
#[tokio::test(start_paused = true)]
async fn a_canary_takes_its_share_of_conversations_and_keeps_each_one() {
    let fake = Arc::new(Fake::default());
    let router = build(
        &canary(
            "[routes.m]\nobjective = \"order\"\nsplit = [{ deployment = \"m@b\", share = 0.1 }, { model = \"small\", share = 0.05 }]\n",
        ),
        &fake,
    );
    let mut sides: HashMap<String, usize> = HashMap::new();
    for n in 0..2000 {
        let mut first = None;
        for turn in 0..3 {
            let routed = router.chat(&conversation(n, turn)).await.unwrap();
            let side = routed.deployment.provider.name.clone();
            assert_eq!(
                *first.get_or_insert_with(|| side.clone()),
                side,
                "conversation {n} changed sides at turn {turn}"
            );
        }
        *sides.entry(first.unwrap()).or_default() += 1;
    }
    let share = |p: &str| sides.get(p).copied().unwrap_or(0) as f64 / 2000.0;
    assert!((share("b") - 0.10).abs() <= 0.03, "m@b took {}", share("b"));
    assert!(
        (share("c") - 0.05).abs() <= 0.03,
        "small took {}",
        share("c")
    );
    assert_eq!(sides.values().sum::<usize>(), 2000);
    assert_eq!(fake.total_calls(), 6000);
    // Exact figures of this build's hashing, so a change in the draw is seen.
    eprintln!("canary sides over 2,000 conversations: {sides:?}");
}

/// A canary that fails hands its conversation to the normal order; one that is unavailable
/// is skipped; without a split the canary model is not a candidate at all.
#[tokio::test(start_paused = true)]
async fn a_failing_canary_fails_over_to_the_normal_order() {
    let fake = Arc::new(Fake::default());
    let router = build(
        &canary(
            "[routes.m]\nobjective = \"order\"\nsplit = [{ model = \"small\", share = 1.0 }]\n",
        ),
        &fake,
    );
    fake.set("c", |s| {
        s.queued.push_back(Error::from_upstream_status(503, "down"));
    });
    let routed = router.chat(&conversation(1, 0)).await.unwrap();
    assert_eq!(routed.deployment.provider.name, "a");
    assert_eq!(routed.attempts.len(), 2);
    assert_eq!(routed.attempts[0].deployment.provider.name, "c");
    let routed = router.chat(&conversation(1, 1)).await.unwrap();
    assert_eq!(routed.deployment.provider.name, "c");
    // Budgets reserve for the canary too (it is dearer or cheaper than the model's own).
    let plain = build(&canary("[routes.m]\nobjective = \"order\"\n"), &fake);
    fake.set("a", |s| {
        s.queued.push_back(Error::from_upstream_status(503, "down"));
        s.queued.push_back(Error::from_upstream_status(503, "down"));
    });
    let routed = plain.chat(&conversation(2, 0)).await.unwrap();
    assert_eq!(
        routed.deployment.provider.name, "b",
        "small is no fallback of m"
    );
}

#[test]
fn splits_and_shadows_are_validated_with_locations() {
    let base = canary("");
    for (route, expected) in [
        (
            "[routes.m]\nsplit = [{ deployment = \"m@z\", share = 0.1 }]\n",
            "routes.m.split: unknown deployment `m@z`",
        ),
        (
            "[routes.m]\nsplit = [{ model = \"zz\", share = 0.1 }]\n",
            "routes.m.split: unknown model `zz`",
        ),
        (
            "[routes.m]\nsplit = [{ model = \"small\", deployment = \"m@a\", share = 0.1 }]\n",
            "routes.m.split: name exactly one of",
        ),
        (
            "[routes.m]\nsplit = [{ model = \"small\", share = 0.0 }]\n",
            "routes.m.split: share must be above 0",
        ),
        (
            "[routes.m]\nsplit = [{ model = \"small\", share = 0.6 }, { deployment = \"m@b\", share = 0.5 }]\n",
            "routes.m.split: shares sum to 1.1, more than 1",
        ),
        (
            "[routes.m]\nshadow = { deployment = \"small@a\", share = 0.5 }\n",
            "routes.m.shadow: unknown deployment `small@a`",
        ),
        (
            "[routes.m]\nshadow = { model = \"small\", share = 0.5, max_concurrency = 0 }\n",
            "routes.m.shadow: max_concurrency must be at least 1",
        ),
    ] {
        let err = Config::from_toml(&format!("{base}{route}"), "test.toml").unwrap_err();
        assert!(err.0.contains(expected), "{route}: {}", err.0);
    }
    let fine = Config::from_toml(
        &format!(
            "{base}[routes.m]\nsplit = [{{ model = \"small\", share = 0.5 }}, {{ deployment = \"m@b\", share = 0.5 }}]\nshadow = {{ model = \"small\", share = 0.2 }}\nheadroom = false\n"
        ),
        "test.toml",
    );
    assert!(fine.is_ok());
}

/// `a` (cheapest) with a quota of 20 requests per 10 s, `b` without, under `objective` and
/// `headroom`; 30 requests one after another (3 s): returns the providers that answered and
/// the 429s `a` answered.
async fn drain_quota(objective: &str, headroom: bool) -> (Vec<String>, u64, Router, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.quota_limit = 20);
    let router = build(
        &three(&format!(
            "[routes.default]\nobjective = \"{objective}\"\nexplore = 0.0\nheadroom = {headroom}\n"
        )),
        &fake,
    );
    let mut served = Vec::new();
    for i in 0..30 {
        let routed = router.chat(&ask(&format!("q{i}"))).await.unwrap();
        served.push(routed.deployment.provider.name.clone());
    }
    let limited = fake.rate_limited.load(Ordering::SeqCst);
    (served, limited, router, fake)
}

/// A deployment nearing its quota ranks down before it answers any 429 (under every
/// objective), and ranks first again once the quota resets; without headroom it is called
/// until it refuses.
#[tokio::test(start_paused = true)]
async fn a_deployment_near_its_rate_limit_is_ranked_down_before_any_429_and_restored_at_reset() {
    for objective in ["cost", "balanced", "latency", "order"] {
        let (served, limited, router, _fake) = drain_quota(objective, true).await;
        assert_eq!(limited, 0, "{objective}: no 429 with headroom: {served:?}");
        let on_a = served.iter().filter(|p| *p == "a").count();
        // Ranked down under 10% left, as far as its lead allows, and last with nothing left.
        assert!((18..=20).contains(&on_a), "{objective}: a served {on_a}");
        eprintln!("{objective}: a served {on_a} of 30 before moving, 0 429s");
        assert!(
            served[25..].iter().all(|p| p != "a"),
            "{objective}: {served:?}"
        );
        let headroom = view(&router, "a").headroom.unwrap();
        assert!(headroom.remaining <= 0.1, "{objective}: {headroom:?}");
        assert!(headroom.reset_in_ms <= 10_000);
        // The quota resets 10 s after its first call: `a` leads again.
        tokio::time::advance(Duration::from_secs(8)).await;
        let routed = router.chat(&ask("after reset")).await.unwrap();
        assert_eq!(routed.deployment.provider.name, "a", "{objective}");
        assert!(view(&router, "a").headroom.unwrap().remaining > 0.9);
    }
    // The same traffic without headroom runs into the limit.
    let (served, limited, _, _) = drain_quota("cost", false).await;
    assert_eq!(limited, 1, "one 429, then Retry-After keeps it out");
    assert_eq!(served.iter().filter(|p| *p == "a").count(), 20);
}

/// A shadow at share 1.0 gets a copy of every request, streamed or not, in the background:
/// the client's answer is the primary's, and both sides' figures count the same requests.
/// A shadow that fails every call changes nothing for the client.
#[tokio::test(start_paused = true)]
async fn a_shadow_gets_copies_measured_beside_the_primary_and_never_answers() {
    let fake = Arc::new(Fake::default());
    fake.set("c", |s| s.ttft = Duration::from_millis(300));
    let router = build(
        &canary(
            "[routes.default]\nobjective = \"order\"\nshadow = { deployment = \"small@c\", share = 1.0 }\n",
        ),
        &fake,
    );
    for i in 0..10 {
        let routed = router.chat(&conversation(i, 0)).await.unwrap();
        assert_eq!(routed.deployment.provider.name, "a");
        assert_eq!(
            routed.value.message.text_content(),
            "a",
            "the primary's answer, exactly"
        );
        assert_eq!(routed.attempts.len(), 1);
    }
    let routed = router.chat_stream(&stream_ask("streamed")).await.unwrap();
    let events = drain(routed.value).await;
    assert!(events.iter().all(Result::is_ok));
    // The copies are still in flight: the answers did not wait for them.
    assert_eq!(fake.calls_to("a"), 11);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.calls_to("c"), 11);
    let figures = router.shadow_figures();
    assert_eq!(figures.len(), 1);
    let pair = &figures[0];
    assert_eq!(
        (
            pair.route.as_str(),
            pair.primary.as_str(),
            pair.shadow.as_str()
        ),
        ("default", "m@a", "small@c")
    );
    assert_eq!((pair.dropped, pair.in_flight), (0, 0));
    for side in [&pair.primary_figures, &pair.shadow_figures] {
        assert_eq!((side.requests, side.errors), (11, 0));
        assert_eq!((side.input_tokens, side.output_tokens), (550, 220));
        assert_eq!(side.tool_calls, 0);
    }
    assert_eq!(pair.shadow_figures.latency_ms_p50, Some(300.0));
    assert_eq!(pair.primary_figures.latency_ms_p50, Some(100.0));
    // small@c is priced 0.5/2.0 per million, m@a 1.0/4.0: half the cost.
    assert!((pair.primary_figures.cost_usd - 2.0 * pair.shadow_figures.cost_usd).abs() < 1e-12);

    // A shadow failing every call: the client never notices.
    fake.set("c", |s| s.error_rate = 1.0);
    for i in 0..5 {
        let routed = router.chat(&conversation(100 + i, 0)).await.unwrap();
        assert_eq!(routed.value.message.text_content(), "a");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pair = &router.shadow_figures()[0];
    assert_eq!(
        (pair.shadow_figures.requests, pair.shadow_figures.errors),
        (16, 5)
    );
    assert_eq!(
        (pair.primary_figures.requests, pair.primary_figures.errors),
        (16, 0)
    );
}

/// Copies beyond the route's bound are dropped and counted, and the primary's figures leave
/// those requests out too; a shadow share takes its share of conversations.
#[tokio::test(start_paused = true)]
async fn shadow_copies_are_bounded_and_take_their_share() {
    let fake = Arc::new(Fake::default());
    fake.set("c", |s| s.ttft = Duration::from_secs(10));
    let router = build(
        &canary(
            "[routes.default]\nobjective = \"order\"\nshadow = { model = \"small\", share = 1.0, max_concurrency = 2 }\n",
        ),
        &fake,
    );
    for i in 0..5 {
        router.chat(&conversation(i, 0)).await.unwrap();
    }
    let pair = &router.shadow_figures()[0];
    assert_eq!((pair.dropped, pair.in_flight), (3, 2));
    assert_eq!(pair.primary_figures.requests, 2);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(router.shadow_figures()[0].shadow_figures.requests, 2);

    let fake = Arc::new(Fake::default());
    let router = build(
        &canary(
            "[routes.default]\nobjective = \"order\"\nshadow = { model = \"small\", share = 0.2, max_concurrency = 1000 }\n",
        ),
        &fake,
    );
    for i in 0..1000 {
        router.chat(&conversation(i, 0)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let copies = fake.calls_to("c");
    assert!(
        (170..=230).contains(&copies),
        "{copies} copies of 1,000 at 20%"
    );
}

/// Exploration never starts a request on a deployment whose quota is spent, and still explores
/// one that has some left.
#[tokio::test(start_paused = true)]
async fn exploration_skips_a_deployment_with_nothing_left() {
    let fake = Arc::new(Fake::default());
    fake.set("a", |s| s.quota_limit = 1);
    let router = build(
        &three("[routes.default]\nobjective = \"cost\"\nexplore = 1.0\nattempts = 1\n"),
        &fake,
    );
    // Every request explores: `a` (cheapest) gets its one call sooner or later, then never again.
    for i in 0..60 {
        router.chat(&ask(&format!("q{i}"))).await.unwrap();
    }
    assert_eq!(fake.calls_to("a"), 1);
    assert_eq!(fake.rate_limited.load(Ordering::SeqCst), 0);
    assert!(fake.calls_to("b") > 0 && fake.calls_to("c") > 0);
}

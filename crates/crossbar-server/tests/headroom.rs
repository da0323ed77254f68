//! Routing ahead of rate limits, black box: simulators with a small request quota report what
//! is left on every answer (`x-ratelimit-*`), and the gateway moves traffic off a deployment
//! before it starts answering 429; with headroom off, the same traffic runs into the limit.
//! Two replicas sharing Redis share the readings.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use std::time::Duration;

use common::{TestGateway, start, user};
use serde_json::{Value, json};

/// `a` (cheaper) with a quota of `quota` requests a minute and `b` without, serving `m` under
/// the cost objective; `extra` goes at the end.
fn config(quota: u64, headroom: bool, extra: &str) -> String {
    format!(
        r#"
[[providers]]
name = "a"
kind = "sim"
dialect = "openai"
sim = {{ quota_requests = {quota}, quota_window_ms = 60000 }}

[[providers]]
name = "b"
kind = "sim"
dialect = "openai"

[[models]]
name = "m"
deployments = [
  {{ provider = "a", target = "gpt-4o", price = {{ input = 1.0, output = 4.0 }} }},
  {{ provider = "b", target = "gpt-4o", price = {{ input = 2.0, output = 8.0 }} }},
]

[routes.default]
objective = "cost"
explore = 0.0
headroom = {headroom}
{extra}
"#
    )
}

async fn chat(gw: &TestGateway, i: usize) -> (u16, String) {
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "m", "max_tokens": 5, "messages": [user(&format!("question {i}"))]}))
        .send()
        .await
        .unwrap();
    let deployment = response
        .headers()
        .get("x-crossbar-deployment")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), deployment)
}

/// What simulator `name` answered 429 (its recorded answers carry the error body).
fn refusals(gw: &TestGateway, name: &str) -> usize {
    gw.requests(name)
        .iter()
        .filter(|r| {
            r.response
                .as_deref()
                .is_some_and(|body| String::from_utf8_lossy(body).contains("rate_limit_exceeded"))
        })
        .count()
}

async fn headroom_of(gw: &TestGateway, provider: &str) -> Value {
    let body: Value = gw
        .get("/v1/crossbar/deployments")
        .await
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["provider"] == provider)
        .unwrap()["headroom"]
        .clone()
}

/// 30 requests one after another against a quota of 20: with headroom, `a` serves until its
/// answers say nothing is left and is never refused; without, it is called until it refuses.
/// Then 10 at a time: the readings still keep the refusals down.
#[tokio::test]
async fn traffic_moves_before_the_first_429_and_not_without_headroom() {
    let mut figures = Vec::new();
    for headroom in [true, false] {
        let gw = start(&config(20, headroom, "")).await;
        for i in 0..30 {
            let (status, _) = chat(&gw, i).await;
            assert_eq!(status, 200, "the client never sees the limit");
        }
        let (to_a, refused) = (gw.requests("a").len(), refusals(&gw, "a"));
        figures.push((headroom, to_a, refused, gw.requests("b").len()));
        if headroom {
            assert_eq!((to_a, refused), (20, 0), "headroom: {figures:?}");
            let seen = headroom_of(&gw, "a").await;
            assert_eq!(seen["remaining"], 0.0, "{seen}");
            assert_eq!(seen["pressure"], 1.0);
            assert_eq!(seen["limits"][0]["name"], "requests");
            assert_eq!(seen["limits"][0]["limit"], 20);
            assert_eq!(seen["limits"][0]["remaining"], 0);
            assert!(seen["reset_in_ms"].as_u64().unwrap() <= 60_000);
            // `b` reports a large account's quota: plenty left.
            assert!(headroom_of(&gw, "b").await["remaining"].as_f64().unwrap() > 0.99);
        } else {
            assert_eq!((to_a, refused), (21, 1), "without: {figures:?}");
        }
    }
    // Concurrent bursts of 10: in-flight calls cannot see each other's answers, yet the
    // readings cut the refusals.
    let mut burst = Vec::new();
    for headroom in [true, false] {
        let gw = start(&config(20, headroom, "")).await;
        for round in 0..4 {
            let calls = (0..10).map(|i| chat(&gw, round * 10 + i));
            for (status, _) in futures::future::join_all(calls).await {
                assert_eq!(status, 200);
            }
        }
        burst.push((headroom, refusals(&gw, "a")));
    }
    eprintln!(
        "sequential (headroom, to a, 429s from a, to b): {figures:?}; bursts of 10 (headroom, 429s): {burst:?}"
    );
    assert_eq!(burst[0], (true, 0), "{burst:?}");
    assert!(burst[1].1 >= 1, "{burst:?}");
}

/// A replica that drained a deployment's quota tells the other through Redis: the other
/// keeps off it without ever having called it.
#[tokio::test]
async fn replicas_share_headroom_through_redis() {
    let dir = std::env::temp_dir().join(format!("crossbar_redis_headroom_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(redis) = crossbar_testkit::servers::Redis::start(&dir) else {
        if std::env::var_os("CROSSBAR_REQUIRE_REDIS").is_some() {
            panic!("redis-server is required");
        }
        eprintln!("redis-server not found: skipped");
        return;
    };
    let extra = format!(
        "\n[redis]\nurl = \"{}\"\nsync_interval_ms = 50\n",
        redis.url()
    );
    let one = start(&config(5, true, &extra)).await;
    let two = start(&config(5, true, &extra)).await;
    for i in 0..5 {
        assert_eq!(chat(&one, i).await, (200, "m@a".to_owned()));
    }
    assert_eq!(headroom_of(&one, "a").await["remaining"], 0.0);
    // A few sync ticks.
    let mut shared = Value::Null;
    for _ in 0..100 {
        shared = headroom_of(&two, "a").await;
        if shared["remaining"] == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shared["remaining"], 0.0, "{shared}");
    assert_eq!(shared["from_peer"], true);
    assert_eq!(chat(&two, 99).await, (200, "m@b".to_owned()));
    assert_eq!(
        two.requests("a").len(),
        0,
        "the second replica never called `a`"
    );
    drop((one, two, redis));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same with an Anthropic-dialect deployment: `anthropic-ratelimit-*` headers, resets as
/// RFC 3339 times, move the traffic before the first 429 too.
#[tokio::test]
async fn anthropic_quota_headers_move_traffic_too() {
    let config = config(10, true, "").replacen(
        "dialect = \"openai\"\nsim = {",
        "dialect = \"anthropic\"\napi_key = \"sk-ant-simulated\"\nsim = {",
        1,
    );
    let gw = start(&config).await;
    for i in 0..15 {
        assert_eq!(chat(&gw, i).await.0, 200);
    }
    let to_a = gw.requests("a").len();
    let refused = gw
        .requests("a")
        .iter()
        .filter(|r| {
            r.response
                .as_deref()
                .is_some_and(|body| String::from_utf8_lossy(body).contains("rate_limit_error"))
        })
        .count();
    assert_eq!((to_a, refused), (10, 0));
    assert_eq!(gw.requests("b").len(), 5);
    let seen = headroom_of(&gw, "a").await;
    assert_eq!(seen["remaining"], 0.0, "{seen}");
    assert_eq!(seen["limits"][0]["name"], "requests");
    assert_eq!(seen["limits"][0]["limit"], 10);
    let reset = seen["reset_in_ms"].as_u64().unwrap();
    assert!(reset > 50_000 && reset <= 60_000, "{seen}");
}

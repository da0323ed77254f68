//! Two gateway replicas sharing one real `redis-server` (and one store) behave as one: a key's
//! requests per minute and budget hold across both, and a breaker one replica opens keeps the
//! other away from the sick deployment before it sends it anything.
//!
//! Needs `redis-server` on the PATH (CI installs it); without it the tests say so and pass,
//! unless `CROSSBAR_REQUIRE_REDIS` is set, as CI does.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failure fails the test"
)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{TestGateway, assert_rpm_limited, start, user};
use crossbar_testkit::http::json_of;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A private `redis-server` in its own temp dir, removed with it.
struct Redis {
    server: Option<crossbar_testkit::servers::Redis>,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "crossbar_redis_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let server = crossbar_testkit::servers::Redis::start(&dir)?;
        Some(Self {
            server: Some(server),
            dir,
        })
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(redis: &Redis, store: &str, extra: &str) -> String {
    format!(
        r#"
[store]
url = "{store}"

[admin]
token = "{ADMIN}"

[redis]
url = "{url}"
sync_interval_ms = 50

[[providers]]
name = "bad"
kind = "sim"
dialect = "openai"
sim = {{ error_rate = 1.0, error_status = 503 }}

[[providers]]
name = "good"
kind = "sim"
dialect = "openai"

[[models]]
name = "chat"
deployments = [
  {{ provider = "good", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }},
]

[[models]]
name = "flaky"
deployments = [
  {{ provider = "bad", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }},
  {{ provider = "good", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }},
]
{extra}
"#,
        url = redis.url()
    )
}

fn store_path() -> String {
    common::temp_db("shared").display().to_string()
}

/// Two replicas on one Redis and one store, and a key made through the first.
async fn replicas(redis: &Redis, key: Value, extra: &str) -> (TestGateway, TestGateway, String) {
    let config = config(redis, &store_path(), extra);
    let a = start(&config).await;
    let b = start(&config).await;
    let response = a
        .client()
        .post(format!("{}/admin/keys", a.url))
        .bearer_auth(ADMIN)
        .json(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (a, b, body["key"].as_str().unwrap().to_owned())
}

async fn chat(gw: &TestGateway, key: &str, model: &str) -> reqwest::Response {
    gw.client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&json!({"model": model, "max_tokens": 5, "messages": [user("hello")]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn one_keys_requests_per_minute_hold_across_replicas() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, key) = replicas(&redis, json!({"rpm": 7}), "").await;
    // Both replicas at once: alone, each would admit 7.
    let calls = (0..20).map(|i| {
        let gw = if i % 2 == 0 { &a } else { &b };
        chat(gw, &key, "chat")
    });
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, limited), (7, 13), "{statuses:?}");
    // The refusal is the same, whichever replica gives it.
    for gw in [&a, &b] {
        assert_rpm_limited(chat(gw, &key, "chat").await).await;
    }
}

#[tokio::test]
async fn one_keys_budget_holds_across_replicas_within_one_request() {
    let Some(redis) = Redis::start() else { return };
    let budget_usd = 0.002;
    let (a, b, key) = replicas(&redis, json!({"budget_usd_total": budget_usd}), "").await;
    let mut refused = 0;
    let mut admitted = 0;
    // Alternate replicas, two requests in flight at a time, until both refuse.
    for _ in 0..100 {
        let (ra, rb) = tokio::join!(chat(&a, &key, "chat"), chat(&b, &key, "chat"));
        for response in [ra, rb] {
            match response.status().as_u16() {
                200 => admitted += 1,
                429 => {
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
                    refused += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        if refused >= 2 {
            break;
        }
    }
    assert!(admitted >= 4, "the budget admits a few calls: {admitted}");
    assert!(refused >= 2, "both replicas end up refusing");

    // The ledger (both replicas' records) stays within the budget.
    a.gateway.flush().await;
    b.gateway.flush().await;
    let records = a
        .gateway
        .store
        .clone()
        .unwrap()
        .usage_since(0, 10_000)
        .await
        .unwrap();
    let costs: Vec<u64> = records
        .iter()
        .filter(|r| r.key_id.is_some() && r.status == 200)
        .map(|r| r.cost_pusd)
        .collect();
    assert_eq!(
        costs.len(),
        admitted,
        "every admitted call is in the ledger"
    );
    let spent: u64 = costs.iter().sum();
    let budget_pusd = 2_000_000_000; // $0.002
    let one_request = costs.iter().copied().max().unwrap_or(0);
    assert!(
        spent <= budget_pusd + one_request,
        "spent {spent} of {budget_pusd} (one request is {one_request})"
    );
}

async fn deployment(gw: &TestGateway, key: &str, id: &str) -> Value {
    let body = json_of(
        gw.client()
            .get(format!("{}/v1/crossbar/deployments", gw.url))
            .bearer_auth(key),
    )
    .await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no {id} in {body}"))
}

#[tokio::test]
async fn a_breaker_opened_on_one_replica_keeps_the_other_away() {
    let Some(redis) = Redis::start() else { return };
    let extra =
        "[routes.default]\nobjective = \"order\"\nbreaker = { failures = 3, cooldown_s = 60 }\n";
    let (a, b, key) = replicas(&redis, json!({}), extra).await;
    // Replica A fails over from `bad` until its breaker opens.
    for _ in 0..3 {
        assert_eq!(chat(&a, &key, "flaky").await.status(), 200);
    }
    assert_eq!(
        deployment(&a, &key, "flaky@bad").await["breaker"]["state"],
        "open"
    );
    // Replica B has not called `bad`, yet learns within a few sync ticks.
    let mut on_b = Value::Null;
    for _ in 0..100 {
        on_b = deployment(&b, &key, "flaky@bad").await;
        if on_b["breaker"]["state"] == "open" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(on_b["breaker"]["state"], "open", "{on_b}");
    assert_eq!(
        on_b["stats"]["attempts"], 0,
        "B learnt it without calling: {on_b}"
    );
    // So B's first call goes straight to the healthy deployment.
    let response = chat(&b, &key, "flaky").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-crossbar-attempts"], "1");
    assert_eq!(response.headers()["x-crossbar-provider"], "good");
    // And B sees A's latency measurements of `good` beside its own.
    let good = deployment(&b, &key, "flaky@good").await;
    assert_eq!(good["peers"]["replicas"], 1, "{good}");
    assert!(
        good["peers"]["latency_samples"].as_u64().unwrap() >= 3,
        "{good}"
    );
}

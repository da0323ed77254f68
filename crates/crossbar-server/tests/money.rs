//! One money path: what a response's `x-crossbar-cost-usd` header says, what its usage record
//! bills (`cost_pusd`) and what its virtual key's budget counts agree to the picodollar — for a
//! chat answer, an embedding and a hedged request whose cancelled attempt is billed at the
//! router's estimate.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure fails the test"
)]

mod common;

use std::time::Duration;

use common::{TestGateway, start, user};
use crossbar_core::pricing::{PICO_PER_USD, format_usd, parse_usd};
use crossbar_store::UsageRecord;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";

/// A fresh SQLite file, an admin token, a quick and a stuck provider, and a route that hedges
/// after 100 ms: `hedged` asks `stuck` first, which never answers, so `sim-openai` answers and
/// `stuck` is cancelled.
fn config() -> String {
    let path = common::temp_db("money");
    format!(
        r#"
[store]
url = "{}"

[admin]
token = "{ADMIN}"
{}
[[providers]]
name = "stuck"
kind = "sim"
dialect = "openai"
sim = {{ hang_rate = 1.0 }}

[[models]]
name = "chat"
deployments = [{{ provider = "sim-openai", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }}]

[[models]]
name = "embed"
deployments = [{{ provider = "sim-openai", target = "text-embedding-3-small", price = {{ input = 0.02 }} }}]

[[models]]
name = "hedged"
deployments = [
  {{ provider = "stuck", target = "gpt-4o", price = {{ input = 1.0, output = 4.0 }} }},
  {{ provider = "sim-openai", target = "gpt-4o", price = {{ input = 2.0, output = 8.0 }} }},
]

[routes.default]
objective = "order"
hedge = {{ after = "100ms", budget = 1.0 }}
"#,
        path.display(),
        crossbar_testkit::sim_openai!()
    )
}

/// Sends `body` to `path` with `secret`; returns the cost header as sent, the request id and
/// the answer.
async fn call(gw: &TestGateway, secret: &str, path: &str, body: Value) -> (String, String, Value) {
    let response = gw
        .client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    let (cost, id) = (header("x-crossbar-cost-usd"), header("x-request-id"));
    (cost, id, response.json().await.unwrap())
}

/// The usage record of `request_id`, once the background writer has stored it.
async fn record(gw: &TestGateway, request_id: &str) -> UsageRecord {
    let store = gw.gateway.store.clone().unwrap();
    for _ in 0..400 {
        let found = store.usage_since(0, 1000).await.unwrap();
        if let Some(record) = found.into_iter().find(|r| r.request_id == request_id) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no usage record for {request_id}");
}

/// What the key's budget has counted as spent, in picodollars: its $1 less what it may still
/// spend, once `expected` is settled (a request settles when its answer has been sent).
/// A call's cost (`expected`, not zero) agrees everywhere: its header, its usage record and its
/// key's spend, of which `billed` keeps the running total.
async fn assert_billed(
    gw: &TestGateway,
    secret: &str,
    (header, id): (&str, &str),
    expected: u64,
    billed: &mut u64,
) {
    assert!(expected > 0);
    assert_eq!(header, format_usd(expected));
    assert_eq!(record(gw, id).await.cost_pusd, expected);
    *billed += expected;
    assert_eq!(key_spent(gw, secret, *billed).await, *billed);
}

async fn key_spent(gw: &TestGateway, secret: &str, expected: u64) -> u64 {
    let keys = gw.gateway.state.virtual_keys.clone().unwrap();
    let key = keys.authenticate(secret).await.unwrap().unwrap();
    let spent = || PICO_PER_USD - key.remaining(crossbar_store::now_ms()).unwrap();
    for _ in 0..200 {
        if spent() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    spent()
}

#[tokio::test]
async fn the_cost_header_the_usage_record_and_the_key_budget_agree_to_the_picodollar() {
    let gw = start(&config()).await;
    let secret = common::admin_key(
        &gw,
        ADMIN,
        &json!({"name": "money", "budget_usd_total": 1.0}),
    )
    .await;
    let mut billed = 0;

    // A chat answer: $2.50 and $10 per million are 2,500,000 and 10,000,000 picodollars a token.
    let (header, id, body) = call(
        &gw,
        &secret,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [user("Tell me about otters")]}),
    )
    .await;
    let (prompt, completion) = common::chat_tokens(&body);
    let expected = prompt * 2_500_000 + completion * 10_000_000;
    assert_eq!(parse_usd(&header), Some(expected));
    assert_billed(&gw, &secret, (&header, &id), expected, &mut billed).await;

    // An embedding: $0.02 per million is 20,000 picodollars a token, a cost far below what
    // eight decimals of a dollar could say.
    let (header, id, body) = call(
        &gw,
        &secret,
        "/v1/embeddings",
        json!({"model": "embed", "input": "hello"}),
    )
    .await;
    let tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
    let expected = tokens * 20_000;
    assert_billed(&gw, &secret, (&header, &id), expected, &mut billed).await;

    // A hedged request: the answer at $2 and $8, plus the cancelled attempt at the router's
    // estimate; the header, the record and the budget count both the same way.
    let (header, id, body) = call(
        &gw,
        &secret,
        "/v1/chat/completions",
        json!({"model": "hedged", "messages": [user("Tell me about rivers")]}),
    )
    .await;
    let (prompt, completion) = common::chat_tokens(&body);
    let answer = prompt * 2_000_000 + completion * 8_000_000;
    let record = record(&gw, &id).await;
    assert_eq!(record.attempts.len(), 2, "{:?}", record.attempts);
    let cancelled = record
        .attempts
        .iter()
        .find(|a| a.outcome == "cancelled")
        .unwrap();
    let ok = record.attempts.iter().find(|a| a.outcome == "ok").unwrap();
    assert_eq!(ok.cost_pusd, answer);
    assert!(cancelled.cost_pusd > 0, "the upstream read the prompt");
    let expected = answer + cancelled.cost_pusd;
    assert_eq!(record.cost_pusd, expected);
    assert_eq!(header, format_usd(expected));
    assert_eq!(parse_usd(&header), Some(expected));
    billed += expected;
    assert_eq!(key_spent(&gw, &secret, billed).await, billed);
}

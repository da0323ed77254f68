//! The kit's in-process gateway (`start`, `TestGateway`) and answer readers, and this suite's
//! two-cloud catalog.

pub use crossbar_testkit::gateway::*;

pub mod guard;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crossbar_store::UsageRecord;
use serde_json::Value;

/// Two simulated clouds (OpenAI and Azure dialects) serving `chat` and `embed`, with no latency.
#[allow(dead_code, reason = "each test binary uses part of this module")]
pub const TWO_CLOUDS: &str = concat!(
    crossbar_testkit::sim_openai!(),
    crossbar_testkit::sim_azure!(),
    r#"api_key = "azure-secret-key"
sim = { api_key = "azure-secret-key" }

[[models]]
name = "chat"
deployments = [
  { provider = "sim-openai", target = "gpt-4o-2024-08-06", price = { input = 2.5, output = 10.0 } },
  { provider = "sim-azure", target = "gpt4o-prod", price = { input = 2.5, output = 10.0 } },
]

[[models]]
name = "chat-azure"
deployments = [{ provider = "sim-azure", target = "gpt4o-prod" }]

[[models]]
name = "embed"
deployments = [{ provider = "sim-openai", target = "text-embedding-3-small" }]
"#
);

static TEMP_FILES: AtomicU32 = AtomicU32::new(0);

/// A fresh path in the temp dir, `crossbar_{name}_{pid}_{n}.db`, for a SQLite store of its own.
#[allow(dead_code, reason = "each test binary uses part of this module")]
pub fn temp_db(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "crossbar_{name}_{}_{}.db",
        std::process::id(),
        TEMP_FILES.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The store's usage records once at least `n` have been written (the writer works in the
/// background).
#[allow(dead_code, reason = "each test binary uses part of this module")]
#[expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helper: a failure fails the test"
)]
pub async fn usage_records(gw: &TestGateway, n: usize) -> Vec<UsageRecord> {
    let store = gw.gateway.store.clone().unwrap();
    for _ in 0..400 {
        let found = store.usage_since(0, 1000).await.unwrap();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} usage records were written");
}

/// The payload kept for request `id`, waiting for the background write (`None` after 1 s).
#[allow(dead_code, reason = "each test binary uses part of this module")]
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
pub async fn kept_payload(gw: &TestGateway, id: &str) -> Option<crossbar_store::PayloadRecord> {
    let store = gw.gateway.state.payloads.clone().unwrap();
    for _ in 0..40 {
        if let Some(found) = store.get_payload(id).await.unwrap() {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Creates a virtual key from `spec` with the admin token `admin` (201 expected): its secret.
#[allow(dead_code, reason = "each test binary uses part of this module")]
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
pub async fn admin_key(gw: &TestGateway, admin: &str, spec: &Value) -> String {
    let response = gw
        .client()
        .post(format!("{}/admin/keys", gw.url))
        .bearer_auth(admin)
        .json(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_owned()
}

/// A Chat Completions answer's `usage`: its prompt and completion tokens.
#[allow(dead_code, reason = "each test binary uses part of this module")]
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
pub fn chat_tokens(body: &Value) -> (u64, u64) {
    let usage = &body["usage"];
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

/// The events of a Responses API stream's text: `(event name, data)`, checking they agree.
#[allow(dead_code, reason = "each test binary uses part of this module")]
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
pub fn responses_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(payload) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(payload).unwrap());
                }
            }
            let (event, data) = (event.unwrap(), data.unwrap());
            assert_eq!(data["type"], event.as_str());
            (event, data)
        })
        .collect()
}

/// A gateway that wants the key `sk-gw`, in front of a simulated Anthropic provider named
/// `anthropic` holding the key `sk-ant`; a string literal, for `concat!`.
#[allow(unused_macros, reason = "each test binary uses part of this module")]
macro_rules! claude_behind_key {
    () => {
        r#"
[server]
api_keys = ["sk-gw"]

[[providers]]
name = "anthropic"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"
"#
    };
}
#[allow(unused_imports, reason = "each test binary uses part of this module")]
pub(crate) use claude_behind_key;

/// One simulated provider, `flaky`, of `dialect` with the simulator settings `sim` (its faults)
/// and the provider settings `extra`, serving `target` as the model `m`.
#[allow(dead_code, reason = "each test binary uses part of this module")]
pub fn flaky(dialect: &str, target: &str, sim: &str, extra: &str) -> String {
    format!(
        r#"
[[providers]]
name = "flaky"
kind = "sim"
dialect = "{dialect}"
sim = {{ {sim} }}
{extra}

[[models]]
name = "m"
deployments = [{{ provider = "flaky", target = "{target}" }}]
"#
    )
}

/// A chat to `m` refused for a rate limit whose retry hint was 7 s: a 429 of type
/// `rate_limit_error` with `Retry-After: 7`. Its error body.
#[allow(dead_code, reason = "each test binary uses part of this module")]
pub async fn rate_limited_for_7s(gw: &TestGateway) -> Value {
    let response = chat(gw, "m", "x").await;
    assert_eq!(response.headers()["retry-after"], "7");
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (429, Some("rate_limit_error"))
    );
    body
}

/// Posts a one-message chat, `text` from the user to `model`, with no key.
#[allow(dead_code, reason = "each test binary uses part of this module")]
pub async fn chat(gw: &TestGateway, model: &str, text: &str) -> reqwest::Response {
    gw.post(
        "/v1/chat/completions",
        &serde_json::json!({"model": model, "messages": [user(text)]}),
    )
    .await
}

/// Posts `body` to Chat Completions with no key: the answer's JSON.
#[allow(dead_code, reason = "each test binary uses part of this module")]
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
pub async fn chat_answer(gw: &TestGateway, body: &Value) -> Value {
    gw.post("/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap()
}

/// A Chat Completions answer's message content, itself JSON (structured output).
#[allow(dead_code, reason = "each test binary uses part of this module")]
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
pub fn content_json(answer: &Value) -> Value {
    serde_json::from_str(answer["choices"][0]["message"]["content"].as_str().unwrap()).unwrap()
}

/// [`claude_behind_key!`] and a simulated OpenAI provider named `openai` (no key; settings
/// written after it belong to it).
#[allow(unused_macros, reason = "each test binary uses part of this module")]
macro_rules! claude_and_openai {
    () => {
        concat!(
            $crate::common::claude_behind_key!(),
            r#"
[[providers]]
name = "openai"
kind = "sim"
dialect = "openai"
"#
        )
    };
}
#[allow(unused_imports, reason = "each test binary uses part of this module")]
pub(crate) use claude_and_openai;

/// A call to the admin API with `token`: the status and the JSON body (null when none).
#[allow(dead_code, reason = "each test binary uses part of this module")]
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
pub async fn admin_call(
    gw: &TestGateway,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = gw
        .client()
        .request(method, format!("{}{path}", gw.url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

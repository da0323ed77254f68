//! Helpers shared by the black-box tests: start a simulator on an ephemeral port and talk to
//! it over real HTTP.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "helpers fail the calling test on unexpected responses"
)]

use crossbar_sim::{SimConfig, SimDialect, SimServer};
use serde_json::Value;

pub async fn start(dialect: SimDialect, config: SimConfig) -> SimServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    SimServer::start(listener, dialect, config).await.unwrap()
}

pub fn chat_url(server: &SimServer) -> String {
    match server.dialect() {
        SimDialect::Azure => format!(
            "{}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
            server.base_url()
        ),
        _ => format!("{}/chat/completions", server.base_url()),
    }
}

pub fn embeddings_url(server: &SimServer) -> String {
    match server.dialect() {
        SimDialect::Azure => format!(
            "{}/openai/deployments/embed/embeddings?api-version=2024-10-21",
            server.base_url()
        ),
        _ => format!("{}/embeddings", server.base_url()),
    }
}

pub async fn post(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Posts and returns status and parsed JSON body.
pub async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = post(url, body).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}

/// Posts a JSON body cut short (`{not json`) and returns status and parsed JSON error.
pub async fn post_unparsable(url: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The payloads of a complete SSE body, asserting it only has `data:` events.
pub fn sse_payloads(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "unterminated event stream: {body:?}"
    );
    body.trim_end_matches("\n\n")
        .split("\n\n")
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data-only event: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// Posts a streaming request and returns the parsed chunks before `[DONE]`.
pub async fn stream_chunks(url: &str, body: &Value) -> Vec<Value> {
    let response = post(url, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let payloads = sse_payloads(&response.text().await.unwrap());
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

pub fn user(text: &str) -> Value {
    serde_json::json!({"role": "user", "content": text})
}

pub fn weather_tools() -> Value {
    serde_json::json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"], "additionalProperties": false}, "strict": true}},
        {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
    ])
}

/// Waits until `check` holds, for at most five seconds.
pub async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check()
}

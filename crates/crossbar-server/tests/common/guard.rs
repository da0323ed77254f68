//! Fixtures of the guardrail suites (`guardrails_webhook`, `responses_pipeline`): an external
//! guardrail webhook and an upstream that splits an e-mail address across two stream deltas.
#![allow(dead_code, reason = "each test binary uses part of this module")]
#![expect(
    clippy::unwrap_used,
    reason = "test fixtures: a failure fails the test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

/// What the webhook injects on `inject me`: a phone number and an e-mail address that the
/// request's own check never saw, so only the answer's check can mask them.
pub const INJECTED: &str = "call (555) 123-4567 or mail ann@example.com now";

pub type Calls = Arc<Mutex<Vec<Value>>>;

/// The webhook: decides by the text it is sent. `deny` denies, `slow` answers after 1.5 s
/// (requests only), `rewrite me` and `inject me` rewrite the request; an answer that says
/// `forbidden` is denied; anything else is allowed.
async fn webhook(State(calls): State<Calls>, Json(call): Json<Value>) -> Json<Value> {
    calls.lock().unwrap().push(call.clone());
    let text = call["request"].to_string();
    if call["kind"] == "answer" {
        let answer = call["answer"].to_string();
        return Json(if answer.contains("forbidden") {
            json!({"action": "deny", "reason": "not for this user"})
        } else {
            json!({"action": "allow"})
        });
    }
    if text.contains("slow") {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        return Json(json!({"action": "allow"}));
    }
    if text.contains("deny") {
        return Json(json!({"action": "deny", "reason": "no thanks"}));
    }
    for (marker, new) in [("rewrite me", "rewritten text"), ("inject me", INJECTED)] {
        if text.contains(marker) {
            let rewritten = text.replace(marker, new);
            let request: Value = serde_json::from_str(&rewritten).unwrap();
            return Json(json!({"action": "rewrite", "request": request}));
        }
    }
    Json(json!({"action": "allow"}))
}

/// The webhook's URL and the calls it receives.
pub async fn start_webhook() -> (String, Calls) {
    let calls = Calls::default();
    let app = axum::Router::new()
        .route("/check", post(webhook))
        .with_state(Arc::clone(&calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/check", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

/// The answer of the splitting upstream, whole.
const MAIL: &str = "Write to ann.lee@example.com, or not.";

/// An OpenAI-compatible upstream that answers [`MAIL`]; streamed, with the e-mail address
/// split across two deltas (`ann.lee@exa` + `mple.com`). Its `/v1` base URL.
pub async fn start_splitting_upstream() -> String {
    async fn completions(Json(body): Json<Value>) -> axum::response::Response {
        use axum::response::IntoResponse;
        if body["stream"] != true {
            return Json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": MAIL}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
            }))
            .into_response();
        }
        let chunk = |delta: Value, finish: Value| {
            let chunk = json!({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            format!("data: {chunk}\n\n")
        };
        let body = [
            chunk(
                json!({"role": "assistant", "content": "Write to ann.lee@exa"}),
                Value::Null,
            ),
            chunk(json!({"content": "mple.com, or not."}), Value::Null),
            chunk(json!({}), json!("stop")),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        ([("content-type", "text/event-stream")], body).into_response()
    }
    let app = axum::Router::new().route("/v1/chat/completions", post(completions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

//! Guardrails through the real gateway: an external webhook (a small axum server on port 0)
//! allows, denies and rewrites requests and answers, and a webhook that does not answer in
//! time follows the route's `on_error`; answers are masked or blocked by the detectors, a
//! stream within a sliding window (a finding split across deltas is still masked; a block ends
//! the stream with an error event); every decision is noted on the usage record.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

mod common;

use std::time::Duration;

use common::guard::{INJECTED, start_splitting_upstream, start_webhook};
use common::{TestGateway, chunks, sse_data, start, streamed_text, user};
use serde_json::{Value, json};

/// Models `open` (fail open, answers checked too, phones and e-mails masked), `closed` (fail
/// closed) and `blocking` (phones block), each its own route.
async fn gateway(url: &str) -> TestGateway {
    let store = common::temp_db("guardrails");
    start(&format!(
        r#"
[store]
url = "{store}"

[[providers]]
name = "sim"
kind = "sim"
dialect = "openai"

[[models]]
name = "open"
deployments = [{{ provider = "sim", target = "gpt-4o" }}]

[[models]]
name = "closed"
deployments = [{{ provider = "sim", target = "gpt-4o" }}]

[[models]]
name = "blocking"
deployments = [{{ provider = "sim", target = "gpt-4o" }}]

[routes.open]
guardrails = {{ phone = "mask", email = "mask", webhook = {{ url = "{url}", timeout_ms = 300, on_error = "allow", answers = true }} }}

[routes.closed]
guardrails = {{ webhook = {{ url = "{url}", timeout_ms = 300, on_error = "deny" }} }}

[routes.blocking]
guardrails = {{ phone = "block", webhook = {{ url = "{url}", timeout_ms = 300 }} }}
"#,
        store = store.display()
    ))
    .await
}

async fn chat(gw: &TestGateway, model: &str, text: &str, stream: bool) -> reqwest::Response {
    gw.post(
        "/v1/chat/completions",
        &json!({"model": model, "stream": stream, "messages": [user(text)]}),
    )
    .await
}

/// The status and JSON body of a non-streamed chat.
async fn answer(gw: &TestGateway, model: &str, text: &str) -> (u16, Value) {
    let response = chat(gw, model, text, false).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

fn content(body: &Value) -> &str {
    body["choices"][0]["message"]["content"].as_str().unwrap()
}

/// The guardrail note of the `index`th usage record by time, once there are `n`.
async fn note(gw: &TestGateway, n: usize, index: usize) -> Option<String> {
    let mut records = common::usage_records(gw, n).await;
    records.sort_by_key(|r| r.time_ms);
    records.swap_remove(index).tags.guardrails
}

/// The last user text the simulator received.
fn sent(gw: &TestGateway) -> String {
    let requests = gw.requests("sim");
    let body = requests.last().unwrap().body.clone().unwrap();
    body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_webhook_allows_denies_and_rewrites_requests_and_answers() {
    let (url, calls) = start_webhook().await;
    let gw = gateway(&url).await;

    let (status, body) = answer(&gw, "open", "hello there").await;
    assert_eq!((status, content(&body)), (200, "You said: hello there"));
    {
        let calls = calls.lock().unwrap();
        let kinds: Vec<&str> = calls.iter().map(|c| c["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["request", "answer"]);
        assert_eq!(calls[0]["route"], "open");
        assert_eq!(calls[0]["request"]["model"], "open");
        assert_eq!(calls[1]["answer"]["model"], body["model"]);
    }
    assert_eq!(note(&gw, 1, 0).await.as_deref(), Some("webhook:allow=2"));

    let (status, body) = answer(&gw, "open", "please deny me").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "guardrail_blocked");
    assert_eq!(
        body["error"]["message"],
        "the request was denied by the route's guardrail webhook: no thanks"
    );
    assert_eq!(gw.requests("sim").len(), 1);
    assert_eq!(note(&gw, 2, 1).await.as_deref(), Some("webhook:deny=1"));

    let (status, body) = answer(&gw, "open", "please rewrite me").await;
    assert_eq!(
        (status, content(&body)),
        (200, "You said: please rewritten text")
    );
    assert_eq!(sent(&gw), "please rewritten text");
    assert_eq!(
        note(&gw, 3, 2).await.as_deref(),
        Some("webhook:allow=1,webhook:rewrite=1")
    );

    // The request is fine; the answer (which restates it) is not.
    let (status, body) = answer(&gw, "open", "something forbidden").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "guardrail_blocked");
    assert_eq!(
        body["error"]["message"],
        "the answer was denied by the route's guardrail webhook: not for this user"
    );
    assert_eq!(gw.requests("sim").len(), 3);
}

#[tokio::test]
async fn a_webhook_that_does_not_answer_in_time_follows_the_routes_policy() {
    let (url, _) = start_webhook().await;
    let gw = gateway(&url).await;
    let (status, body) = answer(&gw, "open", "be slow").await;
    assert_eq!((status, content(&body)), (200, "You said: be slow"));
    assert_eq!(
        note(&gw, 1, 0).await.as_deref(),
        Some("webhook:allow=1,webhook:fail_open=1")
    );

    let started = std::time::Instant::now();
    let (status, body) = answer(&gw, "closed", "be slow").await;
    assert!(started.elapsed() < Duration::from_millis(1200));
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "guardrail_unavailable");
    assert_eq!(gw.requests("sim").len(), 1);
    assert_eq!(
        note(&gw, 2, 1).await.as_deref(),
        Some("webhook:fail_closed=1")
    );

    let metrics = gw.get("/metrics").await.text().await.unwrap();
    for result in ["allow", "fail_open", "fail_closed"] {
        assert!(
            metrics.contains(&format!(
                "crossbar_guardrail_webhook_total{{result=\"{result}\"}}"
            )),
            "{result} not counted"
        );
    }
}

#[tokio::test]
async fn answers_are_masked_and_the_record_names_the_rules_and_the_end_user() {
    let (url, _) = start_webhook().await;
    let gw = gateway(&url).await;
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "open", "user": "u-42", "messages": [user("inject me")]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    // The provider was sent the rewritten text in clear; the client gets it masked.
    assert_eq!(sent(&gw), INJECTED);
    assert_eq!(
        content(&body),
        "You said: call [REDACTED:phone] or mail [REDACTED:email] now"
    );
    let record = common::usage_records(&gw, 1).await.remove(0);
    assert_eq!(
        record.tags.guardrails.as_deref(),
        Some("email:mask=1,phone:mask=1,webhook:allow=1,webhook:rewrite=1")
    );
    assert_eq!(record.tags.end_user.as_deref(), Some("u-42"));
    assert!(!record.tags.cache_hit);

    // `x-crossbar-user` wins over the body's `user`.
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-crossbar-user", "alice")
        .json(&json!({"model": "open", "user": "u-42", "messages": [user("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut records = common::usage_records(&gw, 2).await;
    records.sort_by_key(|r| r.time_ms);
    assert_eq!(records[1].tags.end_user.as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_streamed_answer_is_masked_across_deltas() {
    let (url, _) = start_webhook().await;
    let gw = gateway(&url).await;
    let response = chat(&gw, "open", "inject me", true).await;
    assert_eq!(response.status(), 200);
    let (frames, ended) = sse_data(response).await;
    ended.unwrap();
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        streamed_text(&chunks(&frames)),
        "You said: call [REDACTED:phone] or mail [REDACTED:email] now"
    );
    // The simulator streamed the phone number in two pieces, `(555)` and `123-4567`.
    let upstream = String::from_utf8(gw.requests("sim")[0].response.clone().unwrap()).unwrap();
    let pieces: Vec<&str> = upstream.split("\n\n").collect();
    assert!(pieces.iter().any(|p| p.contains("(555)")));
    assert!(!pieces.iter().any(|p| p.contains("(555) 123-4567")));
    let record = common::usage_records(&gw, 1).await.remove(0);
    assert_eq!(
        record.tags.guardrails.as_deref(),
        Some("email:mask=1,phone:mask=1,webhook:rewrite=1")
    );
    assert_eq!(record.error, None);
}

#[tokio::test]
async fn a_blocked_stream_ends_with_an_error_event_and_never_sends_the_finding() {
    let (url, _) = start_webhook().await;
    let gw = gateway(&url).await;
    let response = chat(&gw, "blocking", "inject me", true).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(!text.contains("4567"), "{text}");
    let last = text
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .last()
        .unwrap();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "guardrail_blocked");
    assert_eq!(
        error["error"]["message"],
        "blocked by guardrail rule `phone`: the answer contains data this route does not return \
         to clients"
    );
    let record = common::usage_records(&gw, 1).await.remove(0);
    assert_eq!(
        record.tags.guardrails.as_deref(),
        Some("phone:block=1,webhook:rewrite=1")
    );
    assert!(record.error.is_some());
}

#[tokio::test]
async fn an_email_split_across_two_deltas_is_masked_whole() {
    let upstream = start_splitting_upstream().await;
    let gw = start(&format!(
        r#"
[[providers]]
name = "splitting"
kind = "openai"
endpoint = "{upstream}"
api_key = "sk-upstream"

[[models]]
name = "m"
deployments = [{{ provider = "splitting", target = "gpt-4o" }}]

[routes.default]
guardrails = {{ email = "mask" }}
"#
    ))
    .await;
    let response = chat(&gw, "m", "hello", true).await;
    assert_eq!(response.status(), 200);
    let (frames, ended) = sse_data(response).await;
    ended.unwrap();
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        streamed_text(&chunks(&frames)),
        "Write to [REDACTED:email], or not."
    );
    assert!(!frames.concat().contains("exa"));
}

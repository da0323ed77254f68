//! `POST /v1/responses` through the same pipeline as chat completions, on the real gateway in
//! front of simulators: the guardrail webhook on the request (deny, rewrite) and the answer,
//! answers masked or blocked by the detectors (a stream within a sliding window, a block ending
//! it with `response.failed`), usage notes (findings, end user), payload logs, and the response
//! cache (a hit answered in the Responses dialect, streamed or not, and stored like any other
//! response).

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

mod common;

use common::guard::{Calls, INJECTED, start_splitting_upstream, start_webhook};
use common::{TestGateway, kept_payload, start};
use serde_json::{Value, json};

/// Models (each its own route): `open` (phones and e-mails masked, the webhook on requests
/// and answers), `mail` (the splitting upstream, e-mails masked), `mailblock` (the same,
/// e-mails blocked), `logged` (payload log, e-mails masked) and `cached` (the response cache).
async fn gateway() -> (TestGateway, Calls) {
    let (url, calls) = start_webhook().await;
    let upstream = start_splitting_upstream().await;
    let store = common::temp_db("responses_pipeline");
    let gw = start(&format!(
        r#"
[store]
url = "{store}"

[[providers]]
name = "sim"
kind = "sim"
dialect = "openai"

[[providers]]
name = "splitting"
kind = "openai"
endpoint = "{upstream}"
api_key = "sk-upstream"

[[models]]
name = "open"
deployments = [{{ provider = "sim", target = "gpt-4o" }}]

[[models]]
name = "mail"
deployments = [{{ provider = "splitting", target = "gpt-4o" }}]

[[models]]
name = "mailblock"
deployments = [{{ provider = "splitting", target = "gpt-4o" }}]

[[models]]
name = "logged"
deployments = [{{ provider = "sim", target = "gpt-4o" }}]

[[models]]
name = "cached"
deployments = [{{ provider = "sim", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }}]

[routes.open]
guardrails = {{ phone = "mask", email = "mask", webhook = {{ url = "{url}", timeout_ms = 300, on_error = "allow", answers = true }} }}

[routes.mail]
guardrails = {{ email = "mask" }}

[routes.mailblock]
guardrails = {{ email = "block" }}

[routes.logged]
payload_log = true
guardrails = {{ email = "mask" }}

[routes.cached]
cache = {{ enabled = true, ttl_s = 600 }}
"#,
        store = store.display()
    ))
    .await;
    (gw, calls)
}

/// `POST /v1/responses` with `body` and `headers`.
async fn post_responses(
    gw: &TestGateway,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut call = gw
        .client()
        .post(format!("{}/v1/responses", gw.url))
        .json(body);
    for (name, value) in headers {
        call = call.header(*name, *value);
    }
    call.send().await.unwrap()
}

/// The status and JSON body of a non-streamed response.
async fn create(gw: &TestGateway, body: &Value) -> (u16, Value) {
    let response = post_responses(gw, body, &[]).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The text of a `Response` object's message.
fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().unwrap())
        .map(|part| part["text"].as_str().unwrap())
        .collect()
}

/// A Responses stream's events (`(name, data)`) and the raw text.
async fn read_events(response: reqwest::Response) -> (Vec<(String, Value)>, String) {
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    (common::responses_events(&text), text)
}

/// The text a Responses stream's deltas carried.
fn deltas(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect()
}

/// The `Response` of the stream's last event, which must be `name`.
fn last<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    let (last_name, data) = events.last().unwrap();
    assert_eq!(last_name, name);
    &data["response"]
}

/// `GET /v1/responses/{id}`.
async fn fetch(gw: &TestGateway, id: &str) -> (u16, Value) {
    let response = gw.get(&format!("/v1/responses/{id}")).await;
    (response.status().as_u16(), response.json().await.unwrap())
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

/// The usage records once there are `n`, oldest first.
async fn records(gw: &TestGateway, n: usize) -> Vec<crossbar_store::UsageRecord> {
    let mut records = common::usage_records(gw, n).await;
    assert_eq!(records.len(), n);
    records.sort_by_key(|r| r.time_ms);
    records
}

#[tokio::test]
async fn an_email_in_a_responses_answer_is_masked_whole_and_streamed() {
    let (gw, _) = gateway().await;
    let (status, body) = create(&gw, &json!({"model": "mail", "input": "hello"})).await;
    assert_eq!(status, 200);
    assert_eq!(output_text(&body), "Write to [REDACTED:email], or not.");
    assert_eq!(body["status"], "completed");
    // Stored as the client got it.
    let (status, stored) = fetch(&gw, body["id"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(output_text(&stored), "Write to [REDACTED:email], or not.");

    let response = post_responses(
        &gw,
        &json!({"model": "mail", "input": "hello", "stream": true}),
        &[],
    )
    .await;
    let (events, text) = read_events(response).await;
    assert_eq!(deltas(&events), "Write to [REDACTED:email], or not.");
    let completed = last(&events, "response.completed");
    assert_eq!(output_text(completed), "Write to [REDACTED:email], or not.");
    assert!(!text.contains("exa"), "{text}");
    let (status, stored) = fetch(&gw, completed["id"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(output_text(&stored), "Write to [REDACTED:email], or not.");

    let records = records(&gw, 2).await;
    for record in &records {
        assert_eq!(record.tags.guardrails.as_deref(), Some("email:mask=1"));
        assert_eq!(record.error, None);
    }
    assert_eq!(
        records.iter().map(|r| r.stream).collect::<Vec<_>>(),
        [false, true]
    );
}

#[tokio::test]
async fn a_blocked_answer_is_a_403_and_a_blocked_stream_ends_with_response_failed() {
    let (gw, _) = gateway().await;
    let (status, body) = create(&gw, &json!({"model": "mailblock", "input": "hello"})).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "guardrail_blocked");
    assert_eq!(
        body["error"]["message"],
        "blocked by guardrail rule `email`: the answer contains data this route does not return \
         to clients"
    );

    let response = post_responses(
        &gw,
        &json!({"model": "mailblock", "input": "hello", "stream": true}),
        &[],
    )
    .await;
    let (events, text) = read_events(response).await;
    assert!(!text.contains("ann.lee"), "{text}");
    assert!(!text.contains("response.completed"), "{text}");
    let failed = last(&events, "response.failed");
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({
            "code": "server_error",
            "message": "blocked by guardrail rule `email`: the answer contains data this route \
                        does not return to clients",
        })
    );
    // Text before the finding's window left; the finding never did.
    assert_eq!(deltas(&events), "");
    // A blocked answer is not stored.
    let (status, _) = fetch(&gw, failed["id"].as_str().unwrap()).await;
    assert_eq!(status, 404);

    let records = records(&gw, 2).await;
    for record in &records {
        assert_eq!(record.tags.guardrails.as_deref(), Some("email:block=1"));
    }
    assert_eq!(records[0].status, 403);
    assert!(records[1].error.is_some());
}

#[tokio::test]
async fn the_webhook_denies_and_rewrites_responses_requests_and_answers() {
    let (gw, calls) = gateway().await;
    let (status, body) = create(&gw, &json!({"model": "open", "input": "please deny me"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "guardrail_blocked");
    assert_eq!(
        body["error"]["message"],
        "the request was denied by the route's guardrail webhook: no thanks"
    );
    assert_eq!(gw.requests("sim").len(), 0);

    let (status, body) = create(&gw, &json!({"model": "open", "input": "please rewrite me"})).await;
    assert_eq!(status, 200);
    assert_eq!(output_text(&body), "You said: please rewritten text");
    assert_eq!(sent(&gw), "please rewritten text");

    let (status, body) = create(
        &gw,
        &json!({"model": "open", "input": "something forbidden"}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "guardrail_blocked");
    assert_eq!(
        body["error"]["message"],
        "the answer was denied by the route's guardrail webhook: not for this user"
    );
    assert_eq!(gw.requests("sim").len(), 2);
    {
        let calls = calls.lock().unwrap();
        let kinds: Vec<&str> = calls.iter().map(|c| c["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["request", "request", "answer", "request", "answer"]);
        assert_eq!(calls[0]["route"], "open");
        assert_eq!(calls[0]["request"]["model"], "open");
    }
    let notes: Vec<Option<String>> = records(&gw, 3)
        .await
        .into_iter()
        .map(|r| r.tags.guardrails)
        .collect();
    assert_eq!(
        notes,
        [
            Some("webhook:deny=1".to_owned()),
            Some("webhook:allow=1,webhook:rewrite=1".to_owned()),
            Some("webhook:allow=1,webhook:deny=1".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_usage_record_names_the_rules_and_the_end_user() {
    let (gw, _) = gateway().await;
    let (status, body) = create(
        &gw,
        &json!({"model": "open", "input": "inject me", "user": "u-42"}),
    )
    .await;
    assert_eq!(status, 200);
    // The provider was sent the rewritten text in clear; the client gets it masked.
    assert_eq!(sent(&gw), INJECTED);
    assert_eq!(
        output_text(&body),
        "You said: call [REDACTED:phone] or mail [REDACTED:email] now"
    );
    let record = records(&gw, 1).await.remove(0);
    assert_eq!(
        record.tags.guardrails.as_deref(),
        Some("email:mask=1,phone:mask=1,webhook:allow=1,webhook:rewrite=1")
    );
    assert_eq!(record.tags.end_user.as_deref(), Some("u-42"));
    assert!(!record.tags.cache_hit);

    // `x-crossbar-user` wins over the body's `user`.
    let response = post_responses(
        &gw,
        &json!({"model": "open", "input": "hi", "user": "u-42"}),
        &[("x-crossbar-user", "alice")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let records = records(&gw, 2).await;
    assert_eq!(records[1].tags.end_user.as_deref(), Some("alice"));
    assert_eq!(
        records[1].tags.guardrails.as_deref(),
        Some("webhook:allow=2")
    );
}

const SECRET_TEXT: &str = "mail ann@example.com the key sk-proj-abcdefghijklmnopqrstuvwxyz012345";
const MASKED: &str = "mail [REDACTED:email] the key [REDACTED:secret]";

/// Sends `text` to `model` on `/v1/responses`: the request id, once the body is read.
async fn send(gw: &TestGateway, model: &str, text: &str, stream: bool) -> String {
    let response = post_responses(
        gw,
        &json!({"model": model, "input": text, "stream": stream}),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    response.bytes().await.unwrap();
    id
}

#[tokio::test]
async fn a_logged_route_keeps_the_responses_request_and_answer_masked() {
    let (gw, _) = gateway().await;
    for stream in [false, true] {
        let id = send(&gw, "logged", SECRET_TEXT, stream).await;
        let kept = kept_payload(&gw, &id).await.unwrap();
        assert_eq!(kept.request_id, id);
        assert_eq!(kept.route.as_deref(), Some("logged"));
        assert_eq!(kept.key_id, None);
        let request: Value = serde_json::from_str(&kept.request).unwrap();
        assert_eq!(request["model"], "logged");
        assert_eq!(request["stream"], stream);
        assert_eq!(
            request["messages"][0]["content"][0]["Text"]["text"], MASKED,
            "{request}"
        );
        let answer: Value = serde_json::from_str(kept.answer.as_deref().unwrap()).unwrap();
        assert_eq!(
            answer["message"]["content"][0]["Text"]["text"],
            format!("You said: {MASKED}"),
            "{answer}"
        );
        for body in [&kept.request, kept.answer.as_ref().unwrap()] {
            assert!(!body.contains("abcdefghijklmnop"));
            assert!(!body.contains("ann@example.com"));
        }
    }
    // A route without `payload_log` keeps nothing.
    let plain = send(&gw, "open", "hello", false).await;
    let logged = send(&gw, "logged", "hello", false).await;
    assert!(kept_payload(&gw, &logged).await.is_some());
    assert_eq!(kept_payload(&gw, &plain).await, None);
}

fn otters(stream: bool) -> Value {
    json!({"model": "cached", "temperature": 0, "stream": stream, "input": "Name three otters"})
}

#[tokio::test]
async fn a_deterministic_responses_request_is_answered_from_the_cache_and_stored() {
    let (gw, _) = gateway().await;
    let first = post_responses(&gw, &otters(false), &[]).await;
    assert_eq!(first.headers()["x-crossbar-cache"], "miss");
    let first: Value = first.json().await.unwrap();
    let second = post_responses(&gw, &otters(false), &[]).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-crossbar-cache"], "hit");
    assert_eq!(second.headers()["age"], "0");
    assert_eq!(second.headers()["x-crossbar-attempts"], "0");
    assert_eq!(second.headers()["x-crossbar-route"], "cached");
    let second: Value = second.json().await.unwrap();
    assert_eq!(gw.requests("sim").len(), 1);
    assert_eq!(output_text(&second), output_text(&first));
    assert_eq!(output_text(&first), "You said: Name three otters");
    assert_eq!(second["usage"], first["usage"]);
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["status"], "completed");

    // The hit is a response like any other: stored, listed, continued.
    let second_id = second["id"].as_str().unwrap();
    let (status, stored) = fetch(&gw, second_id).await;
    assert_eq!(status, 200);
    assert_eq!(stored, second);
    let items: Value = gw
        .get(&format!("/v1/responses/{second_id}/input_items"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(items["data"][0]["content"][0]["text"], "Name three otters");
    let (status, next) = create(
        &gw,
        &json!({"model": "cached", "input": "And two more", "previous_response_id": second_id}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(output_text(&next), "You said: And two more");
    let continued = gw.requests("sim")[1].body.clone().unwrap();
    assert_eq!(
        continued["messages"],
        json!([
            {"role": "user", "content": "Name three otters"},
            {"role": "assistant", "content": "You said: Name three otters"},
            {"role": "user", "content": "And two more"},
        ])
    );

    let records = records(&gw, 3).await;
    let (paid, hit) = (&records[0], &records[1]);
    assert!(!paid.tags.cache_hit);
    assert!(paid.cost_pusd > 0);
    let (input, output) = (
        first["usage"]["input_tokens"].as_u64().unwrap(),
        first["usage"]["output_tokens"].as_u64().unwrap(),
    );
    assert_eq!(paid.cost_pusd, input * 2_500_000 + output * 10_000_000);
    assert!(hit.tags.cache_hit);
    assert_eq!(hit.cost_pusd, 0);
    assert_eq!(hit.deployment, None);
    assert!(hit.attempts.is_empty());
    assert_eq!((hit.input_tokens, hit.output_tokens), (input, output));
    assert_eq!(hit.route.as_deref(), Some("cached"));
    assert_eq!(hit.status, 200);
}

#[tokio::test]
async fn a_streamed_responses_hit_replays_the_first_answer_and_is_stored() {
    let (gw, _) = gateway().await;
    let (status, first) = create(&gw, &otters(false)).await;
    assert_eq!(status, 200);
    let hit = post_responses(&gw, &otters(true), &[]).await;
    assert_eq!(hit.headers()["x-crossbar-cache"], "hit");
    let (events, _) = read_events(hit).await;
    assert_eq!(events[0].0, "response.created");
    assert_eq!(deltas(&events), output_text(&first));
    let completed = last(&events, "response.completed");
    assert_eq!(output_text(completed), output_text(&first));
    assert_eq!(completed["usage"], first["usage"]);
    assert_eq!(gw.requests("sim").len(), 1);
    let (status, stored) = fetch(&gw, completed["id"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(output_text(&stored), "You said: Name three otters");

    // A streamed miss is kept at its end and answers the next request.
    let miss = post_responses(
        &gw,
        &json!({"model": "cached", "temperature": 0, "stream": true, "input": "Name two seals"}),
        &[],
    )
    .await;
    assert_eq!(miss.headers()["x-crossbar-cache"], "miss");
    let (events, _) = read_events(miss).await;
    assert_eq!(deltas(&events), "You said: Name two seals");
    let (status, again) = create(
        &gw,
        &json!({"model": "cached", "temperature": 0, "input": "Name two seals"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(output_text(&again), "You said: Name two seals");
    assert_eq!(gw.requests("sim").len(), 2);

    let records = records(&gw, 4).await;
    let hits: Vec<_> = records.iter().filter(|r| r.tags.cache_hit).collect();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|r| r.cost_pusd == 0 && r.error.is_none()));
    assert_eq!(
        records.iter().map(|r| r.stream).collect::<Vec<_>>(),
        [false, true, true, false]
    );
}

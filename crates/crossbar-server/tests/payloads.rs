//! Payload logs through the real gateway: a route with `payload_log = true` keeps the request
//! as it was sent (masked by the route's rules) and the answer as the client got it, a secret
//! never in clear whatever the rules, shown in the dashboard's request detail; a route without
//! it keeps nothing.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

mod common;

use common::{TestGateway, kept_payload, start, user};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
const SECRET: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";

async fn gateway() -> TestGateway {
    let store = common::temp_db("payloads");
    start(&format!(
        r#"
[store]
url = "{store}"

[admin]
token = "{ADMIN}"

[[providers]]
name = "sim"
kind = "sim"
dialect = "openai"

[[models]]
name = "logged"
deployments = [{{ provider = "sim", target = "gpt-4o" }}]

[[models]]
name = "plain"
deployments = [{{ provider = "sim", target = "gpt-4o" }}]

[routes.logged]
payload_log = true
guardrails = {{ email = "mask" }}
"#,
        store = store.display()
    ))
    .await
}

/// Sends `text` to `model`: the request id.
async fn send(gw: &TestGateway, model: &str, text: &str, stream: bool) -> String {
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": model, "stream": stream, "messages": [user(text)]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // The whole body, so a stream has ended.
    response.bytes().await.unwrap();
    id
}

const TEXT: &str = "mail ann@example.com the key sk-proj-abcdefghijklmnopqrstuvwxyz012345";
const MASKED: &str = "mail [REDACTED:email] the key [REDACTED:secret]";

#[tokio::test]
async fn a_logged_route_keeps_masked_bodies_and_never_a_secret_in_clear() {
    let gw = gateway().await;
    let id = send(&gw, "logged", TEXT, false).await;
    // The route masks e-mails only: the provider got the key (its rules, not the log's).
    let sent = gw.requests("sim")[0].body.clone().unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        format!("mail [REDACTED:email] the key {SECRET}")
    );
    let kept = kept_payload(&gw, &id).await.unwrap();
    assert_eq!(kept.request_id, id);
    assert_eq!(kept.route.as_deref(), Some("logged"));
    assert_eq!(kept.key_id, None);
    let request: Value = serde_json::from_str(&kept.request).unwrap();
    let answer: Value = serde_json::from_str(kept.answer.as_deref().unwrap()).unwrap();
    assert_eq!(request["model"], "logged");
    assert!(kept.request.contains(MASKED), "{}", kept.request);
    assert!(
        kept.answer
            .as_deref()
            .unwrap()
            .contains(&format!("You said: {MASKED}")),
        "{answer}"
    );
    for body in [&kept.request, kept.answer.as_ref().unwrap()] {
        assert!(!body.contains("abcdefghijklmnop"));
        assert!(!body.contains("ann@example.com"));
        assert!(!body.to_ascii_lowercase().contains("authorization"));
    }

    // The dashboard's request detail shows them (once the usage record is written).
    common::usage_records(&gw, 1).await;
    let detail: Value = gw
        .client()
        .get(format!("{}/v1/crossbar/requests/{id}", gw.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["payload"]["request"], request, "{detail}");
    assert_eq!(detail["payload"]["answer"], answer);
}

#[tokio::test]
async fn a_streamed_answer_is_kept_whole_once_it_ends() {
    let gw = gateway().await;
    let id = send(&gw, "logged", TEXT, true).await;
    let kept = kept_payload(&gw, &id).await.unwrap();
    let answer: Value = serde_json::from_str(kept.answer.as_deref().unwrap()).unwrap();
    assert_eq!(
        answer["message"]["content"][0]["Text"]["text"],
        format!("You said: {MASKED}")
    );
    assert!(!kept.answer.unwrap().contains("abcdefghijklmnop"));
}

#[tokio::test]
async fn nothing_is_kept_for_a_route_without_payload_log() {
    let gw = gateway().await;
    let plain = send(&gw, "plain", TEXT, false).await;
    // A logged request after it: once its payload is there, the plain one's would be too.
    let logged = send(&gw, "logged", "hello", false).await;
    assert!(kept_payload(&gw, &logged).await.is_some());
    assert_eq!(kept_payload(&gw, &plain).await, None);
    common::usage_records(&gw, 2).await;
    let detail: Value = gw
        .client()
        .get(format!("{}/v1/crossbar/requests/{plain}", gw.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["request_id"], plain.as_str());
    assert_eq!(detail.get("payload"), None);
}

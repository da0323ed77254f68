//! `[teams.NAME]` and `[keys.NAME]`: a team's guardrails replace its routes' for its keys'
//! requests (a key's replace its team's), and a team or a key can turn payload logs on, while
//! other callers of the same route keep the route's policies.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

mod common;

use std::time::Duration;

use common::{TestGateway, admin_call, kept_payload, start, user};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-callers-0123456789";

async fn gateway() -> TestGateway {
    let store = common::temp_db("callers");
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
name = "chat"
deployments = [{{ provider = "sim", target = "gpt-4o" }}]

[routes.default]
guardrails = {{ email = "mask" }}

[teams.research]
guardrails = {{ email = "block" }}

[keys.auditor]
payload_log = true
guardrails = {{ email = "log" }}
"#,
        store = store.display()
    ))
    .await
}

/// Creates a key (in `team`, when given): its secret.
async fn key(gw: &TestGateway, name: &str, team: Option<&str>) -> String {
    let mut spec = json!({ "name": name });
    if let Some(team) = team {
        spec["team"] = json!(team);
    }
    let (status, body) = admin_call(gw, ADMIN, Method::POST, "/admin/keys", Some(spec)).await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

/// Sends an email address as `secret`: the status, the request id and the echoed text.
async fn send(gw: &TestGateway, secret: &str) -> (u16, String, Value) {
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(secret)
        .json(&json!({"model": "chat", "messages": [user("write to ann@example.com")]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, id, response.json().await.unwrap())
}

#[tokio::test]
async fn teams_and_keys_carry_their_own_guardrails_and_payload_logs() {
    let gw = gateway().await;
    let (status, body) = admin_call(
        &gw,
        ADMIN,
        Method::POST,
        "/admin/teams",
        Some(json!({ "name": "research" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let plain = key(&gw, "plain", None).await;
    let researcher = key(&gw, "researcher", Some("research")).await;
    let auditor = key(&gw, "auditor", Some("research")).await;

    // The route masks.
    let (status, _, body) = send(&gw, &plain).await;
    assert_eq!(status, 200, "{body}");
    let echoed = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(echoed.contains("[REDACTED:email]"), "{echoed}");
    assert!(!echoed.contains("ann@example.com"), "{echoed}");

    // The research team blocks, naming the rule, never the address.
    let (status, _, body) = send(&gw, &researcher).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "guardrail_blocked");
    assert!(!body.to_string().contains("ann@example.com"));

    // The auditor key (in the research team) only logs, and its payloads are kept.
    let (status, id, body) = send(&gw, &auditor).await;
    assert_eq!(status, 200, "{body}");
    let echoed = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(echoed.contains("ann@example.com"), "{echoed}");
    let kept = kept_payload(&gw, &id).await.unwrap();
    assert!(kept.request.contains("ann@example.com"), "{}", kept.request);

    // No payload for a caller without payload logs.
    let (_, plain_id, _) = send(&gw, &plain).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = gw.gateway.state.payloads.clone().unwrap();
    assert!(store.get_payload(&plain_id).await.unwrap().is_none());
}

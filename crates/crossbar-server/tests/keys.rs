//! Black-box virtual keys: the admin API creates and revokes them, the gateway closes as soon
//! as one exists, and each key's restrictions, rate limits and budgets hold.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use std::time::Duration;

use common::{TestGateway, assert_rpm_limited, start, user};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";

fn store_path() -> String {
    common::temp_db("keys").display().to_string()
}

fn config(store: &str) -> String {
    format!(
        r#"
[store]
url = "{store}"

[admin]
token = "{ADMIN}"

[[providers]]
name = "sim-openai"
kind = "sim"
dialect = "openai"

[[models]]
name = "chat"
deployments = [{{ provider = "sim-openai", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }}]

[[models]]
name = "other"
deployments = [{{ provider = "sim-openai", target = "gpt-4o-mini", price = {{ input = 0.15, output = 0.6 }} }}]

[routes.cheap]
models = ["other"]
"#
    )
}

async fn gateway() -> TestGateway {
    start(&config(&store_path())).await
}

async fn admin(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    common::admin_call(gw, ADMIN, method, path, body).await
}

async fn create_key(gw: &TestGateway, spec: Value) -> (String, String) {
    let (status, body) = admin(gw, reqwest::Method::POST, "/admin/keys", Some(spec)).await;
    assert_eq!(status, 201, "{body}");
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

async fn chat(gw: &TestGateway, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 5, "messages": [user("hello")]})
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_never_shows_a_secret_twice() {
    let gw = gateway().await;
    let no_token = gw
        .client()
        .get(format!("{}/admin/keys", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let wrong = gw
        .client()
        .get(format!("{}/admin/keys", gw.url))
        .bearer_auth("admin-token-wrong-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let (secret, id) = create_key(&gw, json!({"name": "ci", "rpm": 10})).await;
    assert!(secret.starts_with("cb-") && secret.len() > 40);
    let (status, listed) = admin(&gw, reqwest::Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert_eq!(listed["data"][0]["name"], "ci");
    assert_eq!(listed["data"][0]["rpm"], 10);
    let text = listed.to_string();
    assert!(!text.contains(&secret), "the secret is shown once only");
    assert!(!text.contains("hash"), "{text}");
    assert!(text.contains(&secret[..9]), "the prefix tells keys apart");
}

#[tokio::test]
async fn without_an_admin_token_the_admin_api_does_not_exist() {
    let config = config(&store_path()).replace(&format!("[admin]\ntoken = \"{ADMIN}\"\n"), "");
    let gw = start(&config).await;
    let response = gw
        .client()
        .get(format!("{}/admin/keys", gw.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn one_live_key_closes_the_gateway_and_revoking_it_refuses_the_key() {
    let gw = gateway().await;
    assert_eq!(
        chat(&gw, None, hello("chat")).await.status(),
        200,
        "open without keys"
    );
    let (secret, id) = create_key(&gw, json!({"name": "app"})).await;
    let anonymous = chat(&gw, None, hello("chat")).await;
    assert_eq!(anonymous.status(), 401);
    let wrong = chat(&gw, Some("cb-not-a-key"), hello("chat")).await;
    assert_eq!(wrong.status(), 401);
    let body = wrong.text().await.unwrap();
    assert!(
        !body.contains("cb-not-a-key"),
        "a presented key is never echoed: {body}"
    );
    let ok = chat(&gw, Some(&secret), hello("chat")).await;
    assert_eq!(ok.status(), 200);
    let _ = ok.bytes().await;

    // The call is recorded under the key's id.
    let store = gw.gateway.store.clone().unwrap();
    let mut keyed = Vec::new();
    for _ in 0..400 {
        keyed = store.usage_since(0, 100).await.unwrap();
        keyed.retain(|r| r.key_id.as_deref() == Some(id.as_str()));
        if !keyed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(keyed.len(), 1);
    assert!(keyed[0].cost_pusd > 0);

    let (status, _) = admin(
        &gw,
        reqwest::Method::DELETE,
        &format!("/admin/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(chat(&gw, Some(&secret), hello("chat")).await.status(), 401);
    let (status, _) = admin(
        &gw,
        reqwest::Method::DELETE,
        &format!("/admin/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "already revoked");
}

#[tokio::test]
async fn requests_per_minute_answer_429_with_retry_after() {
    let gw = gateway().await;
    let (secret, _) = create_key(&gw, json!({"rpm": 2})).await;
    for _ in 0..2 {
        assert_eq!(chat(&gw, Some(&secret), hello("chat")).await.status(), 200);
    }
    assert_rpm_limited(chat(&gw, Some(&secret), hello("chat")).await).await;
}

#[tokio::test]
async fn keys_are_held_to_their_models_and_routes() {
    let gw = gateway().await;
    let (secret, _) = create_key(&gw, json!({"models": ["oth*"], "routes": ["cheap"]})).await;
    let denied = chat(&gw, Some(&secret), hello("chat")).await;
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_allowed");
    // "other" falls under the default route, which the key may not use...
    let response = chat(&gw, Some(&secret), hello("other")).await;
    assert_eq!(response.status(), 403);
    // ...but it may name its own route.
    let routed = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&secret)
        .header("x-crossbar-route", "cheap")
        .json(&hello("other"))
        .send()
        .await
        .unwrap();
    assert_eq!(routed.status(), 200);
}

#[tokio::test]
async fn a_budget_is_never_overspent_and_the_refusal_says_so() {
    let store = store_path();
    let gw = start(&config(&store)).await;
    // About a dozen small calls' worth: each reserves its estimate before it runs.
    let (secret, id) = create_key(&gw, json!({"budget_usd_total": 0.001})).await;
    let mut refusal = None;
    for _ in 0..200 {
        let response = chat(&gw, Some(&secret), hello("chat")).await;
        if response.status() != 200 {
            refusal = Some(response);
            break;
        }
        let _ = response.bytes().await;
    }
    let refusal = refusal.expect("the budget ran out");
    assert_eq!(refusal.status(), 429);
    assert!(
        refusal.headers().get("retry-after").is_none(),
        "a total budget does not come back"
    );
    let body: Value = refusal.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Budget exceeded") && message.contains("total budget is $0.001"),
        "{message}"
    );

    // What the key spent, from the ledger, stays within the budget.
    gw.gateway.flush().await;
    let records = gw
        .gateway
        .store
        .clone()
        .unwrap()
        .usage_since(0, 1000)
        .await
        .unwrap();
    let spent: u64 = records
        .iter()
        .filter(|r| r.key_id.as_deref() == Some(id.as_str()))
        .map(|r| r.cost_pusd)
        .sum();
    assert!(spent > 0 && spent <= 1_000_000_000, "{spent}");
    drop(gw);

    // A restarted gateway reads the spend back from the ledger: still refused.
    let again = start(&config(&store)).await;
    let response = chat(&again, Some(&secret), hello("chat")).await;
    assert_eq!(response.status(), 429);
}

/// A key made by another process (the CLI) while this gateway still believes it has none is
/// honoured at once: its restrictions apply and its calls are charged to it, rather than being
/// served as an open gateway's anonymous calls until the cached "no keys" expires.
#[tokio::test]
async fn a_key_made_elsewhere_is_honoured_before_the_no_keys_answer_expires() {
    let path = store_path();
    let gw = start(&config(&path)).await;
    // Open, and it says so: the "no keys" answer is now cached.
    assert_eq!(chat(&gw, None, hello("chat")).await.status(), 200);
    let store = crossbar_store::SqlStore::open(&path).await.unwrap();
    let (secret, record) = crossbar_server::create_key(
        &store,
        crossbar_server::NewKey {
            models: vec!["other".to_owned()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let refused = chat(&gw, Some(&secret), hello("chat")).await;
    assert_eq!(refused.status(), 403, "the key's model list applies");
    let answered = chat(&gw, Some(&secret), hello("other")).await;
    assert_eq!(answered.status(), 200);
    // And the gateway is closed now: an anonymous call is refused.
    assert_eq!(chat(&gw, None, hello("chat")).await.status(), 401);
    let mut charged = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let records = crossbar_store::Store::usage_since(&store, 0, 100)
            .await
            .unwrap();
        charged = records
            .iter()
            .filter(|r| r.key_id.as_deref() == Some(record.id.as_str()) && r.status == 200)
            .count();
        if charged == 1 {
            break;
        }
    }
    assert_eq!(charged, 1, "the answered call is recorded against the key");
}

// The audit log through the admin API: each key change appears once, with who, what (before
// and after, never the secret), when and from where; the list filters and pages; only the
// admin token reads it.

#[tokio::test]
async fn key_changes_are_audited_once_without_their_secret() {
    let gw = gateway().await;
    let (status, created) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/keys",
        Some(json!({"name": "ci", "models": ["chat"], "rpm": 60})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = admin(&gw, reqwest::Method::DELETE, "/admin/keys/ci", None).await;
    assert_eq!(status, 200);
    // Revoking again changes nothing, so it is not audited.
    let (status, _) = admin(&gw, reqwest::Method::DELETE, "/admin/keys/ci", None).await;
    assert_eq!(status, 404);

    let (status, log) = admin(&gw, reqwest::Method::GET, "/admin/audit", None).await;
    assert_eq!(status, 200, "{log}");
    let entries = log["data"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    assert!(
        !log.to_string().contains(&secret),
        "the secret reached the audit log"
    );

    let (revoke, create) = (&entries[0], &entries[1]);
    assert!(revoke["id"].as_i64().unwrap() > create["id"].as_i64().unwrap());
    let view = {
        let mut view = created.clone();
        view.as_object_mut().unwrap().remove("key");
        view
    };
    assert_eq!(create["action"], "key.create");
    assert_eq!(create["actor"], "admin");
    assert_eq!(create["source"], "127.0.0.1");
    assert_eq!(create["target"], id.as_str());
    assert_eq!(create["before"], Value::Null);
    assert_eq!(create["after"], view);

    assert_eq!(revoke["action"], "key.revoke");
    assert_eq!(revoke["target"], id.as_str());
    assert_eq!(revoke["before"], view);
    let revoked_ms = revoke["after"]["revoked_ms"].as_i64().unwrap();
    assert!(revoked_ms >= create["at_ms"].as_i64().unwrap());
    let mut expected_after = view.clone();
    expected_after["revoked_ms"] = json!(revoked_ms);
    assert_eq!(revoke["after"], expected_after);

    // Filters and paging.
    let (_, only) = admin(
        &gw,
        reqwest::Method::GET,
        "/admin/audit?action=key.create",
        None,
    )
    .await;
    assert_eq!(
        only["data"].as_array().unwrap(),
        std::slice::from_ref(create)
    );
    let before = revoke["id"].as_i64().unwrap();
    let (_, page) = admin(
        &gw,
        reqwest::Method::GET,
        &format!("/admin/audit?before_id={before}&limit=1"),
        None,
    )
    .await;
    assert_eq!(
        page["data"].as_array().unwrap(),
        std::slice::from_ref(create)
    );
    let (status, bad) = admin(&gw, reqwest::Method::GET, "/admin/audit?limit=ten", None).await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid audit query")
    );
}

#[tokio::test]
async fn only_the_admin_token_reads_the_audit_log() {
    let gw = gateway().await;
    for token in [None, Some("admin-token-wrong-000000000")] {
        let mut request = gw.client().get(format!("{}/admin/audit", gw.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
}

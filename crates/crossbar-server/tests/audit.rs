//! The audit log through the admin API: each key change appears once, with who, what (before
//! and after, never the secret), when and from where; the list filters and pages; only the
//! admin token reads it.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use common::{TestGateway, start};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-audit-0123456789";

async fn gateway() -> TestGateway {
    let store = common::temp_db("audit").display().to_string();
    start(&format!(
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
deployments = [{{ provider = "sim-openai", target = "gpt-4o" }}]
"#
    ))
    .await
}

async fn admin(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    common::admin_call(gw, ADMIN, method, path, body).await
}

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

//! Which layers each group of routes sits behind (see `app.rs`), on a keyed gateway: the model
//! APIs need a key, and so do their wrong methods and unknown URLs; `/admin/*` and the dashboard
//! check the admin token themselves; `/healthz` is open; `/metrics` needs the admin token. The
//! metered APIs carry the overhead header even when refused; every answer has a request id.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use common::{TWO_CLOUDS, TestGateway, start};
use reqwest::Method;
use serde_json::Value;

const KEY: &str = "sk-layering";
const ADMIN: &str = "admin-token-for-layering";

async fn keyed() -> TestGateway {
    start(&format!(
        "[server]\napi_keys = [\"{KEY}\"]\n[admin]\ntoken = \"{ADMIN}\"\n{TWO_CLOUDS}"
    ))
    .await
}

/// Status, headers and JSON body (`Null` if not JSON) of `method path`, with `bearer` if any.
async fn call(
    gw: &TestGateway,
    method: Method,
    path: &str,
    bearer: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = gw.client().request(method, format!("{}{path}", gw.url));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

const NO_KEY: &str = "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY' or 'x-api-key: YOUR_KEY'.";

#[tokio::test]
async fn wrong_methods_sit_behind_their_routes_gate() {
    let gw = keyed().await;
    let (status, headers, body) = call(&gw, Method::GET, "/v1/chat/completions", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], NO_KEY);
    assert!(headers.contains_key("x-crossbar-overhead-ms"), "metered");
    assert!(headers.contains_key("x-request-id"));
    let (status, _, body) = call(&gw, Method::GET, "/v1/chat/completions", Some(KEY)).await;
    assert_eq!(status, 405);
    assert_eq!(
        body["error"]["message"],
        "Method GET is not allowed for /v1/chat/completions."
    );
    // Anthropic's shape under /v1/messages.
    let (status, _, body) = call(&gw, Method::GET, "/v1/messages", Some(KEY)).await;
    assert_eq!(status, 405);
    assert_eq!(body["type"], "error");
    assert_eq!(
        body["error"]["message"],
        "Method GET is not allowed for /v1/messages."
    );
    let (status, headers, _) = call(&gw, Method::PUT, "/v1/models", None).await;
    assert_eq!(status, 401);
    assert!(
        !headers.contains_key("x-crossbar-overhead-ms"),
        "not metered"
    );
    assert_eq!(call(&gw, Method::PUT, "/v1/models", Some(KEY)).await.0, 405);
    // The admin API's and the dashboard's wrong methods need no token, as before.
    assert_eq!(call(&gw, Method::PUT, "/admin/keys", None).await.0, 405);
    assert_eq!(call(&gw, Method::POST, "/ui", None).await.0, 405);
    assert_eq!(call(&gw, Method::POST, "/healthz", None).await.0, 405);
}

#[tokio::test]
async fn unknown_urls_need_a_key_except_under_admin() {
    let gw = keyed().await;
    let (status, _, body) = call(&gw, Method::GET, "/v1/nope", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], NO_KEY);
    let (status, _, body) = call(&gw, Method::GET, "/v1/nope", Some(KEY)).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_url");
    assert_eq!(
        body["error"]["message"],
        "Unknown request URL: GET /v1/nope."
    );
    for path in ["/admin/nope", "/admin/keys/a/b", "/admin/keys/"] {
        let (status, _, body) = call(&gw, Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            body["error"]["message"],
            format!("Unknown request URL: GET {path}.")
        );
    }
    assert_eq!(call(&gw, Method::GET, "/admin", None).await.0, 401);
}

#[tokio::test]
async fn each_group_asks_for_its_own_credential() {
    let gw = keyed().await;
    assert_eq!(call(&gw, Method::GET, "/healthz", None).await.0, 200);
    assert_eq!(call(&gw, Method::GET, "/v1/models", None).await.0, 401);
    assert_eq!(
        call(&gw, Method::GET, "/v1/models", Some(ADMIN)).await.0,
        401
    );
    assert_eq!(call(&gw, Method::GET, "/v1/models", Some(KEY)).await.0, 200);
    // The deployments view: a key, or the admin token.
    for (bearer, status) in [(None, 401), (Some(KEY), 200), (Some(ADMIN), 200)] {
        let got = call(&gw, Method::GET, "/v1/crossbar/deployments", bearer)
            .await
            .0;
        assert_eq!(got, status, "{bearer:?}");
    }
    // Metrics: the admin token only.
    let (status, _, body) = call(&gw, Method::GET, "/metrics", Some(KEY)).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"],
        "`/metrics` needs the admin token (`Authorization: Bearer <admin.token>`) once the gateway has keys."
    );
    assert_eq!(call(&gw, Method::GET, "/metrics", Some(ADMIN)).await.0, 200);
    // The admin API: its token, not a gateway key; then the store (this gateway has none).
    let (status, _, body) = call(&gw, Method::GET, "/admin/keys", Some(KEY)).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"],
        "Incorrect or missing admin token."
    );
    let (status, _, body) = call(&gw, Method::GET, "/admin/keys", Some(ADMIN)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Virtual keys need a store: `store.enabled` is false."
    );
    // The dashboard: the admin token, not a gateway key.
    let (status, headers, _) = call(&gw, Method::GET, "/ui", Some(KEY)).await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(call(&gw, Method::GET, "/ui", Some(ADMIN)).await.0, 200);
}

#[tokio::test]
async fn without_an_admin_token_the_admin_api_is_absent() {
    let gw = start(&format!("[server]\napi_keys = [\"{KEY}\"]\n{TWO_CLOUDS}")).await;
    let (status, _, body) = call(&gw, Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "admin_disabled");
}

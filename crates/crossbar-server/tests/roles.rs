//! Scoped admin tokens on every admin API and dashboard endpoint, table-driven: the endpoints
//! come from `access_table()` (the tables the routers are built from, so a new endpoint comes
//! with its rule), each is called with each role, and the answer must be the endpoint's success
//! for a role its rule allows and a 403 for the others. A team admin then gets 404s on another
//! team's objects and lists narrowed to its own team.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestGateway, admin_call, start, user};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
/// Unique names for the objects the table's calls make.
static NAMES: AtomicUsize = AtomicUsize::new(0);

fn config() -> String {
    format!(
        r#"
[store]
url = "{store}"

[admin]
token = "{ADMIN}"

[[providers]]
name = "good"
kind = "sim"
dialect = "openai"

[[models]]
name = "chat"
deployments = [
  {{ provider = "good", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }},
]
"#,
        store = common::temp_db("roles").display()
    )
}

/// A call as `token`; the status and JSON body (null when none).
async fn call(
    gw: &TestGateway,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method: Method = method.parse().unwrap();
    let mut request = gw
        .client()
        .request(method, format!("{}{path}", gw.url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates something through the root token (201 expected): its answer.
async fn create(gw: &TestGateway, path: &str, body: Value) -> Value {
    let (status, answer) = admin_call(gw, ADMIN, Method::POST, path, Some(body)).await;
    assert_eq!(status, 201, "{path}: {answer}");
    answer
}

/// The world: teams alpha and beta with a key each and one request each; a scoped token of
/// each role (the team admin's of alpha).
struct World {
    gw: TestGateway,
    alpha: String,
    beta: String,
    alpha_key: String,
    beta_key: String,
    alpha_request: String,
    beta_request: String,
    /// (role, token)
    tokens: Vec<(&'static str, String)>,
}

async fn world() -> World {
    let gw = start(&config()).await;
    let alpha = create(&gw, "/admin/teams", json!({"name": "alpha"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let beta = create(&gw, "/admin/teams", json!({"name": "beta"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut keys = Vec::new();
    for team in ["alpha", "beta"] {
        let key = create(&gw, "/admin/keys", json!({"team": team, "name": team})).await;
        let secret = key["key"].as_str().unwrap().to_owned();
        let response = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&secret)
            .json(&json!({"model": "chat", "max_tokens": 5, "messages": [user("hi")]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        keys.push((key["id"].as_str().unwrap().to_owned(), request_id));
    }
    common::usage_records(&gw, 2).await;
    let mut tokens = vec![("root", ADMIN.to_owned())];
    for (role, team) in [
        ("admin", None),
        ("team-admin", Some("alpha")),
        ("viewer", None),
    ] {
        let token = create(&gw, "/admin/tokens", json!({"role": role, "team": team})).await;
        tokens.push((role, token["token"].as_str().unwrap().to_owned()));
    }
    let [(alpha_key, alpha_request), (beta_key, beta_request)] = <[_; 2]>::try_from(keys).unwrap();
    World {
        gw,
        alpha,
        beta,
        alpha_key,
        beta_key,
        alpha_request,
        beta_request,
        tokens,
    }
}

/// The path and body to call `(method, path)` with, on objects of team alpha (made afresh for
/// the changes that use them up).
async fn concrete(w: &World, method: &str, path: &str) -> (String, Option<Value>) {
    let n = NAMES.fetch_add(1, Ordering::Relaxed);
    let fresh_key = || async {
        create(&w.gw, "/admin/keys", json!({"team": "alpha"})).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    match (method, path) {
        ("POST", "/admin/keys") => (path.to_owned(), Some(json!({"name": format!("new{n}")}))),
        ("DELETE", "/admin/keys/{id}") => (format!("/admin/keys/{}", fresh_key().await), None),
        ("POST", "/admin/teams") => (path.to_owned(), Some(json!({"name": format!("team{n}")}))),
        ("GET", "/admin/teams/{id}") => (format!("/admin/teams/{}", w.alpha), None),
        ("PATCH", "/admin/teams/{id}") => (
            format!("/admin/teams/{}", w.alpha),
            Some(json!({"rpm": 1000})),
        ),
        ("DELETE", "/admin/teams/{id}") => {
            let team = create(&w.gw, "/admin/teams", json!({"name": format!("gone{n}")})).await;
            (
                format!("/admin/teams/{}", team["id"].as_str().unwrap()),
                None,
            )
        }
        ("POST", "/admin/tokens") => (path.to_owned(), Some(json!({"role": "viewer"}))),
        ("DELETE", "/admin/tokens/{id}") => {
            let token = create(&w.gw, "/admin/tokens", json!({"role": "viewer"})).await;
            (
                format!("/admin/tokens/{}", token["id"].as_str().unwrap()),
                None,
            )
        }
        ("GET", "/v1/crossbar/requests/{id}") => {
            (format!("/v1/crossbar/requests/{}", w.alpha_request), None)
        }
        ("GET", "/ui/{file}") => ("/ui/app.js".to_owned(), None),
        (_, path) => {
            assert!(!path.contains('{'), "no object for {method} {path}");
            (path.to_owned(), None)
        }
    }
}

/// What the endpoint answers a caller it lets through (`/ui/`'s redirect is followed).
fn success(method: &str, path: &str, who: &str) -> u16 {
    match (method, path) {
        // Reloading takes the root token itself (and this gateway was built without it).
        ("POST", "/admin/reload") if who == "root" => 404,
        ("POST", "/admin/reload") => 401,
        ("POST", _) => 201,
        _ => 200,
    }
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_its_rule_says() {
    let w = world().await;
    let table = crossbar_server::access_table();
    assert!(table.len() >= 24, "{} endpoints", table.len());
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for (method, path, roles) in &table {
        // Without a token: 401 everywhere (every endpoint is behind a guard).
        let (concrete_path, body) = concrete(&w, method, path).await;
        let (status, _) = call(&w.gw, "", method, &concrete_path, body).await;
        got.push((*method, *path, "none", status));
        expected.push((*method, *path, "none", 401));
        for (who, token) in &w.tokens {
            let role = if *who == "root" { "admin" } else { who };
            let (concrete_path, body) = concrete(&w, method, path).await;
            let (status, answer) = call(&w.gw, token, method, &concrete_path, body).await;
            let want = if roles.contains(&role) {
                success(method, path, who)
            } else {
                assert_eq!(answer["error"]["code"], "role_forbidden", "{answer}");
                403
            };
            got.push((*method, *path, *who, status));
            expected.push((*method, *path, *who, want));
        }
    }
    assert_eq!(got, expected);
    // The table itself: writes beyond one team's keys are the admin's, reads everyone's.
    let roles_of = |method: &str, path: &str| {
        table
            .iter()
            .find(|(m, p, _)| *m == method && *p == path)
            .map(|(_, _, roles)| roles.clone())
            .unwrap()
    };
    assert_eq!(roles_of("POST", "/admin/teams"), ["admin"]);
    assert_eq!(
        roles_of("DELETE", "/admin/keys/{id}"),
        ["admin", "team-admin"]
    );
    assert_eq!(roles_of("GET", "/admin/tokens"), ["admin", "viewer"]);
    assert_eq!(
        roles_of("GET", "/v1/crossbar/requests"),
        ["admin", "team-admin", "viewer"]
    );
}

#[tokio::test]
async fn a_team_admin_sees_and_changes_its_own_team_only() {
    let w = world().await;
    let lead = &w.tokens[2].1;
    // Another team's objects: 404, as if absent; a key made for another team: 403.
    for path in [
        format!("/admin/teams/{}", w.beta),
        format!("/v1/crossbar/requests/{}", w.beta_request),
    ] {
        let (status, body) = call(&w.gw, lead, "GET", &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = call(
        &w.gw,
        lead,
        "DELETE",
        &format!("/admin/keys/{}", w.beta_key),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(
        &w.gw,
        lead,
        "POST",
        "/admin/keys",
        Some(json!({"team": "beta"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("role_forbidden"))
    );
    // A key it makes lands in its team, whatever it names.
    let (status, made) = call(&w.gw, lead, "POST", "/admin/keys", Some(json!({}))).await;
    assert_eq!((status, made["team"].clone()), (201, json!(w.alpha)));
    let made_id = made["id"].as_str().unwrap().to_owned();

    // Lists: its team's only.
    let ids = |body: &Value, field: &str| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[field].as_str().unwrap_or("-").to_owned())
            .collect()
    };
    let (_, keys) = call(&w.gw, lead, "GET", "/admin/keys", None).await;
    assert_eq!(ids(&keys, "id"), [w.alpha_key.clone(), made_id.clone()]);
    let (_, keys) = call(&w.gw, lead, "GET", "/v1/crossbar/keys", None).await;
    assert_eq!(ids(&keys, "id"), [w.alpha_key.clone(), made_id.clone()]);
    assert_eq!(keys["unkeyed"], Value::Null, "keyless traffic is no team's");
    let (_, requests) = call(&w.gw, lead, "GET", "/v1/crossbar/requests", None).await;
    assert_eq!(ids(&requests, "request_id"), [w.alpha_request.as_str()]);
    let (_, requests) = call(
        &w.gw,
        lead,
        "GET",
        &format!("/v1/crossbar/requests?key={}", w.beta_key),
        None,
    )
    .await;
    assert_eq!(requests["data"], json!([]));
    let (_, teams) = call(&w.gw, lead, "GET", "/v1/crossbar/teams", None).await;
    assert_eq!(ids(&teams, "id"), [w.alpha.as_str()]);
    assert_eq!(teams["data"][0]["keys"], 2);
    assert_eq!(teams["data"][0]["spend"]["total"]["requests"], 1);
    let (_, teams) = call(&w.gw, lead, "GET", "/admin/teams", None).await;
    assert_eq!(ids(&teams, "id"), [w.alpha.as_str()]);
    let (_, overview) = call(&w.gw, lead, "GET", "/v1/crossbar/overview", None).await;
    assert_eq!(overview["totals"]["requests"], 1, "alpha's one request");
    let (_, overview) = call(&w.gw, ADMIN, "GET", "/v1/crossbar/overview", None).await;
    assert_eq!(overview["totals"]["requests"], 2);
    let (_, audit) = call(&w.gw, lead, "GET", "/admin/audit", None).await;
    let about: Vec<String> = ids(&audit, "team_id");
    assert_eq!(
        about.len(),
        4,
        "alpha's create, its key's, the lead's token's, the new key's"
    );
    assert!(about.iter().all(|t| *t == w.alpha), "{about:?}");
    let (_, all) = call(&w.gw, ADMIN, "GET", "/admin/audit", None).await;
    // Two teams, two keys, three tokens, the lead's key.
    assert_eq!(all["data"].as_array().unwrap().len(), 8);

    // Who it is, for the page.
    let (status, me) = call(&w.gw, lead, "GET", "/v1/crossbar/whoami", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (me["role"].clone(), me["team"].clone()),
        (json!("team-admin"), json!(w.alpha))
    );
    assert!(
        me["actor"].as_str().unwrap().starts_with("token:atk_"),
        "{me}"
    );
    // Its changes are audited under its token.
    let (_, mine) = call(
        &w.gw,
        ADMIN,
        "GET",
        &format!("/admin/audit?target={made_id}"),
        None,
    )
    .await;
    assert_eq!(mine["data"][0]["actor"], me["actor"]);
}

#[tokio::test]
async fn gateway_views_follow_the_role_and_a_revoked_token_stops_working() {
    let w = world().await;
    let (viewer, lead) = (&w.tokens[3].1, &w.tokens[2].1);
    let root = ADMIN.to_owned();
    for (token, path, want) in [
        (viewer, "/v1/crossbar/deployments", 200),
        (lead, "/v1/crossbar/deployments", 200),
        (viewer, "/metrics", 200),
        (lead, "/metrics", 401),
        // The runs API: every role reads (a team admin its team's keys' runs).
        (viewer, "/v1/crossbar/runs", 200),
        (lead, "/v1/crossbar/runs", 200),
        (&root, "/v1/crossbar/runs", 200),
        (&root, "/metrics", 200),
    ] {
        let (status, _) = call(&w.gw, token, "GET", path, None).await;
        assert_eq!(status, want, "{path}");
    }
    // The admin token is not a gateway key: no model calls with it.
    let response =
        w.gw.client()
            .post(format!("{}/v1/chat/completions", w.gw.url))
            .bearer_auth(viewer)
            .json(&json!({"model": "chat", "messages": [user("hi")]}))
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 401);
    let (_, tokens) = call(&w.gw, ADMIN, "GET", "/admin/tokens", None).await;
    let viewer_id = tokens["data"][2]["id"].as_str().unwrap().to_owned();
    assert_eq!(tokens["data"][2]["role"], "viewer");
    let (status, _) = call(
        &w.gw,
        ADMIN,
        "DELETE",
        &format!("/admin/tokens/{viewer_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&w.gw, viewer, "GET", "/v1/crossbar/keys", None).await;
    assert_eq!(status, 401);
}

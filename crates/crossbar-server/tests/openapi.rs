//! `/openapi.json` against the real gateway: the document is OpenAPI 3.1 in shape, names every
//! admin and dashboard endpoint (from the tables the routers are built from) and every
//! `/v1/crossbar/*` group and probe, every `$ref` in it resolves, and every path it names is
//! served. Then every described operation is driven once on a gateway with a store, keys, a
//! team, tokens, a shadow, kept payloads, runs and a reloadable configuration file, and each
//! real answer is validated against the operation's schema for its status (errors against the
//! shared error schema), with the answers' schemas strict, so that a field a handler sends but
//! its type does not name fails here.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crossbar_core::Error;
use crossbar_core::config::Config;
use crossbar_core::runs::{Prepared, RunSpecs, Submit};
use crossbar_server::{Gateway, Reloadable, ServeLimits, serve};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-openapi-0123";

fn config(store: &std::path::Path) -> String {
    format!(
        r#"
[store]
url = "{store}"

[admin]
token = "{ADMIN}"

[[providers]]
name = "primary"
kind = "sim"
dialect = "openai"

[[providers]]
name = "shade"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant-simulated"

[[models]]
name = "chat"
deployments = [{{ provider = "primary", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }}]

[[models]]
name = "other"
deployments = [{{ provider = "shade", target = "claude-sonnet-4", price = {{ input = 3.0, output = 15.0 }} }}]

[routes.chat]
payload_log = true
shadow = {{ model = "other", share = 1.0 }}
"#,
        store = store.display()
    )
}

/// Takes every submit as a run of agent `echo` (the agent runtime is not part of this crate).
struct Echo;

impl RunSpecs for Echo {
    fn prepare(&self, submit: &Submit) -> Result<Prepared, Error> {
        Ok(Prepared {
            agent: "echo".to_owned(),
            spec_path: "inline".to_owned(),
            spec: String::new(),
            task: submit.input.to_string(),
        })
    }
}

struct Served {
    url: String,
    gateway_store: Arc<dyn crossbar_store::Store>,
    runs: crossbar_server::Runs,
    _reloadable: Reloadable,
    dir: std::path::PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The gateway as `crossbar serve` runs it: reloadable from its file, with runs taken.
async fn start() -> Served {
    let dir = std::env::temp_dir().join(format!("crossbar_openapi_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("crossbar.toml");
    let text = config(&dir.join("store.db"));
    std::fs::write(&file, &text).unwrap();
    let config = Config::from_toml(&text, &file.display().to_string()).unwrap();
    let mut gateway = Gateway::build(&config).await.unwrap();
    let mut runs = gateway.state.runs.clone().unwrap();
    runs.specs = Some(Arc::new(Echo));
    gateway.state.runs = Some(runs.clone());
    let gateway_store = gateway.store.clone().unwrap();
    let reloadable = Reloadable::start(gateway, &config, Some((file, text))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        reloadable.app(),
        std::future::pending::<()>(),
        ServeLimits::of(&config.server),
    ));
    Served {
        url,
        gateway_store,
        runs,
        _reloadable: reloadable,
        dir,
    }
}

/// One request's answer.
struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

async fn send(
    url: &str,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.request(method.clone(), format!("{url}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        text,
    }
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target);
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// `{"$ref": "#/..."}` followed inside `doc`.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(target) => doc.pointer(target.trim_start_matches('#')).unwrap(),
        None => value,
    }
}

/// The schema `doc` gives the answer of `method path` with `status`, compiled.
fn validator_for(doc: &Value, path: &str, method: &str, status: u16) -> jsonschema::Validator {
    let response = resolve(
        doc,
        &doc["paths"][path][method]["responses"][status.to_string()],
    );
    let mut root = response["content"]["application/json"]["schema"].clone();
    root["components"] = doc["components"].clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap()
}

/// The methods the document describes at each path.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// The described operations outside the admin and dashboard tables: the app's groups.
const APP_GROUPS: &[(&str, &str)] = &[
    ("GET", "/v1/crossbar/deployments"),
    ("GET", "/v1/crossbar/config"),
    ("GET", "/v1/crossbar/runs"),
    ("POST", "/v1/crossbar/runs"),
    ("GET", "/v1/crossbar/runs/{id}"),
    ("GET", "/v1/crossbar/runs/{id}/events"),
    ("POST", "/v1/crossbar/runs/{id}/cancel"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_every_route_and_every_real_answer_matches_it() {
    let served = start().await;
    let url = served.url.as_str();
    let fetched = send(url, &Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(fetched.status, 200);
    assert!(fetched.content_type.starts_with("application/json"));
    let doc: Value = serde_json::from_str(&fetched.text).unwrap();
    assert_eq!(&doc, crossbar_server::openapi_document(), "served as built");

    // Shape: 3.1, info, and every admin and dashboard endpoint (from the tables the routers
    // are built from) and every app group, nothing more.
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(doc["info"]["title"], "Crossbar");
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("not described here")
    );
    let expected: BTreeSet<(String, String)> = crossbar_server::access_table()
        .into_iter()
        .map(|(method, path, _)| (method.to_owned(), path.to_owned()))
        .chain(
            APP_GROUPS
                .iter()
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    let described = operations(&doc);
    assert_eq!(described, expected);
    assert_eq!(described.len(), 36);
    // The roles each admin/dashboard operation allows are the access table's.
    for (method, path, roles) in crossbar_server::access_table() {
        let op = &doc["paths"][path][method.to_lowercase()];
        assert_eq!(op["x-crossbar-roles"], json!(roles), "{method} {path}");
        let schemes: Vec<&str> = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
            .collect();
        let want: &[&str] = if path.starts_with("/admin/") {
            &["bearer"]
        } else {
            &["bearer", "basic"]
        };
        assert_eq!(schemes, want, "{method} {path}");
    }
    // Operation ids are unique identifiers (client generators name methods after them).
    let ids: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 36);
    assert!(ids.contains("get_admin_teams_id"));
    assert!(
        ids.iter()
            .all(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    );
    // Each operation is listed under one of the declared tags, each tag used.
    let declared: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let used: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["tags"][0].as_str().unwrap())
        .collect();
    assert_eq!(used, declared);
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() >= 100, "{} refs", found.len());
    for target in &found {
        assert!(
            doc.pointer(target.trim_start_matches('#')).is_some(),
            "unresolved {target}"
        );
    }
    // Every schema compiles as JSON Schema 2020-12.
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let mut root = schema.clone();
        root["components"] = doc["components"].clone();
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    // The things the operations show: a team with a key, traffic through it (kept, and
    // copied to the shadow), tokens, runs.
    let admin = Some(ADMIN);
    let created = |answer: Answer| -> Value {
        assert!((200..300).contains(&answer.status), "{}", answer.text);
        serde_json::from_str(&answer.text).unwrap()
    };
    let team = created(
        send(
            url,
            &Method::POST,
            "/admin/teams",
            admin,
            Some(&json!({"name": "red", "budget_usd_month": 50.0})),
            &[],
        )
        .await,
    );
    let key = created(
        send(
            url,
            &Method::POST,
            "/admin/keys",
            admin,
            Some(&json!({"name": "k1", "team": "red", "rpm": 100})),
            &[],
        )
        .await,
    );
    let secret = key["key"].as_str().unwrap().to_owned();
    let team_admin = created(
        send(
            url,
            &Method::POST,
            "/admin/tokens",
            admin,
            Some(&json!({"role": "team-admin", "team": "red", "name": "ta"})),
            &[],
        )
        .await,
    );
    let team_admin = team_admin["token"].as_str().unwrap().to_owned();
    let chat = send(
        url,
        &Method::POST,
        "/v1/chat/completions",
        Some(&secret),
        Some(&json!({"model": "chat", "messages": [{"role": "user", "content": "hello"}]})),
        &[],
    )
    .await;
    assert_eq!(chat.status, 200, "{}", chat.text);
    // The request's usage record and payload are written in the background.
    let mut request_id = String::new();
    for _ in 0..200 {
        let records = served.gateway_store.usage_since(0, 100).await.unwrap();
        if let Some(record) = records.iter().find(|r| r.api == "chat") {
            request_id = record.request_id.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!request_id.is_empty(), "no usage record");
    let detail = format!("/v1/crossbar/requests/{request_id}");
    for _ in 0..200 {
        let shown = send(url, &Method::GET, &detail, Some(ADMIN), None, &[]).await;
        if shown.text.contains("\"payload\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let run = created(
        send(
            url,
            &Method::POST,
            "/v1/crossbar/runs",
            Some(&secret),
            Some(&json!({"agent": "echo", "input": "hi", "budget": {"usd": 0.5}})),
            &[("Idempotency-Key", "first")],
        )
        .await,
    );
    let run_id = run["id"].as_str().unwrap().to_owned();
    // A run that ended, with a journal, for the event stream and the journal view.
    let done_id = crossbar_store::new_run_id();
    let now = crossbar_store::now_ms();
    let record = crossbar_store::RunRecord {
        id: done_id.clone(),
        agent: "echo".to_owned(),
        spec_path: "inline".to_owned(),
        spec: String::new(),
        task: "t".to_owned(),
        status: "running".to_owned(),
        created_ms: now,
        updated_ms: now,
        totals: crossbar_store::RunTotals::default(),
        answer: None,
    };
    let queue = crossbar_store::QueueState {
        owner_key: key["id"].as_str().unwrap().to_owned(),
        ..crossbar_store::QueueState::default()
    };
    served.runs.store.submit(&record, &queue).await.unwrap();
    let entries = [
        json!({"kind": "model_call", "step": 1, "model": "chat", "deployment": "chat@primary",
            "usage": {"input_tokens": 10, "output_tokens": 4}, "cost_usd": 0.5}),
        json!({"kind": "tool_started", "step": 1, "call_id": "c1", "name": "calc"}),
        json!({"kind": "tool_result", "step": 1, "call_id": "c1", "name": "calc", "is_error": false}),
    ];
    for (seq, entry) in entries.iter().enumerate() {
        let event = crossbar_store::EventRecord {
            run_id: done_id.clone(),
            seq: seq as u64,
            time_ms: now,
            kind: entry["kind"].as_str().unwrap().to_owned(),
            data: entry.to_string(),
        };
        served
            .runs
            .store
            .append_event(&event, "running", crossbar_store::RunTotals::default())
            .await
            .unwrap();
    }
    let last = crossbar_store::EventRecord {
        run_id: done_id.clone(),
        seq: entries.len() as u64,
        time_ms: now,
        kind: "finished".to_owned(),
        data: json!({"kind": "finished", "status": "completed"}).to_string(),
    };
    served
        .runs
        .store
        .finish_run(
            &last,
            "completed",
            crossbar_store::RunTotals::default(),
            Some("42"),
        )
        .await
        .unwrap();
    // Objects the deletions remove.
    let spare_key = created(
        send(
            url,
            &Method::POST,
            "/admin/keys",
            admin,
            Some(&json!({"name": "spare"})),
            &[],
        )
        .await,
    );
    let spare_team = created(
        send(
            url,
            &Method::POST,
            "/admin/teams",
            admin,
            Some(&json!({"name": "blue"})),
            &[],
        )
        .await,
    );
    let spare_token = created(
        send(
            url,
            &Method::POST,
            "/admin/tokens",
            admin,
            Some(&json!({"role": "viewer"})),
            &[],
        )
        .await,
    );

    // Every operation once (and some errors), each answer against its schema.
    let team_id = team["id"].as_str().unwrap();
    struct Call<'a> {
        method: Method,
        template: &'static str,
        path: String,
        token: Option<&'a str>,
        body: Option<Value>,
        headers: &'static [(&'static str, &'static str)],
        status: u16,
    }
    let call = |method: Method,
                template: &'static str,
                path: &str,
                token: Option<&'static str>,
                body: Option<Value>,
                status: u16| Call {
        method,
        template,
        path: path.to_owned(),
        token,
        body,
        headers: &[],
        status,
    };
    let get = |template: &'static str, path: &str, status: u16| {
        call(Method::GET, template, path, admin, None, status)
    };
    let run_path = format!("/v1/crossbar/runs/{run_id}");
    let done_path = format!("/v1/crossbar/runs/{done_id}");
    let mut calls = vec![
        call(Method::GET, "/healthz", "/healthz", None, None, 200),
        call(Method::GET, "/readyz", "/readyz", None, None, 200),
        call(
            Method::GET,
            "/openapi.json",
            "/openapi.json",
            None,
            None,
            200,
        ),
        get("/metrics", "/metrics", 200),
        get("/v1/crossbar/deployments", "/v1/crossbar/deployments", 200),
        get("/v1/crossbar/config", "/v1/crossbar/config", 200),
        get("/v1/crossbar/runs", "/v1/crossbar/runs?limit=10", 200),
        get("/v1/crossbar/runs/{id}", &done_path, 200),
        get("/v1/crossbar/runs/{id}", &run_path, 200),
        get(
            "/v1/crossbar/runs/{id}/events",
            &format!("{done_path}/events"),
            200,
        ),
        call(
            Method::POST,
            "/v1/crossbar/runs/{id}/cancel",
            &format!("{run_path}/cancel"),
            admin,
            None,
            200,
        ),
        // A run that ended cannot be cancelled.
        call(
            Method::POST,
            "/v1/crossbar/runs/{id}/cancel",
            &format!("{done_path}/cancel"),
            admin,
            None,
            400,
        ),
        get("/v1/crossbar/runs/{id}", "/v1/crossbar/runs/run_nope", 404),
        call(
            Method::POST,
            "/admin/keys",
            "/admin/keys",
            admin,
            Some(json!({"name": "k2", "budget_usd_day": 1.5})),
            201,
        ),
        call(
            Method::POST,
            "/admin/keys",
            "/admin/keys",
            admin,
            Some(json!({"name": "k3", "colour": "red"})),
            400,
        ),
        call(Method::GET, "/admin/keys", "/admin/keys", None, None, 401),
        get("/admin/keys", "/admin/keys", 200),
        call(
            Method::DELETE,
            "/admin/keys/{id}",
            &format!("/admin/keys/{}", spare_key["id"].as_str().unwrap()),
            admin,
            None,
            200,
        ),
        call(
            Method::POST,
            "/admin/teams",
            "/admin/teams",
            admin,
            Some(json!({"name": "green", "models": ["chat"], "rpm": 10})),
            201,
        ),
        get("/admin/teams", "/admin/teams", 200),
        get("/admin/teams/{id}", &format!("/admin/teams/{team_id}"), 200),
        get("/admin/teams/{id}", "/admin/teams/nope", 404),
        call(
            Method::PATCH,
            "/admin/teams/{id}",
            &format!("/admin/teams/{team_id}"),
            admin,
            Some(json!({"rpm": 500, "budget_usd_month": null})),
            200,
        ),
        call(
            Method::DELETE,
            "/admin/teams/{id}",
            &format!("/admin/teams/{}", spare_team["id"].as_str().unwrap()),
            admin,
            None,
            200,
        ),
        call(
            Method::POST,
            "/admin/tokens",
            "/admin/tokens",
            admin,
            Some(json!({"role": "admin", "name": "ops"})),
            201,
        ),
        get("/admin/tokens", "/admin/tokens", 200),
        call(
            Method::DELETE,
            "/admin/tokens/{id}",
            &format!("/admin/tokens/{}", spare_token["id"].as_str().unwrap()),
            admin,
            None,
            200,
        ),
        get("/admin/audit", "/admin/audit?limit=50", 200),
        call(
            Method::POST,
            "/admin/reload",
            "/admin/reload",
            admin,
            None,
            200,
        ),
        get("/ui", "/ui", 200),
        get("/ui/", "/ui/", 308),
        get("/ui/{file}", "/ui/app.js", 200),
        get(
            "/v1/crossbar/overview",
            "/v1/crossbar/overview?window=1h",
            200,
        ),
        get(
            "/v1/crossbar/overview",
            "/v1/crossbar/overview?window=1y",
            400,
        ),
        get(
            "/v1/crossbar/requests",
            "/v1/crossbar/requests?limit=5",
            200,
        ),
        get(
            "/v1/crossbar/requests/{id}",
            &format!("/v1/crossbar/requests/{request_id}"),
            200,
        ),
        get(
            "/v1/crossbar/requests/{id}",
            "/v1/crossbar/requests/nope",
            404,
        ),
        get("/v1/crossbar/keys", "/v1/crossbar/keys", 200),
        get("/v1/crossbar/whatif", "/v1/crossbar/whatif?since=1d", 200),
        get("/v1/crossbar/audit", "/v1/crossbar/audit", 200),
        get("/v1/crossbar/teams", "/v1/crossbar/teams", 200),
        get("/v1/crossbar/whoami", "/v1/crossbar/whoami", 200),
        get("/v1/crossbar/shadow", "/v1/crossbar/shadow", 200),
    ];
    // Submits: a new one (201), then the same `Idempotency-Key` again (200).
    for status in [201, 200] {
        calls.push(Call {
            method: Method::POST,
            template: "/v1/crossbar/runs",
            path: "/v1/crossbar/runs".to_owned(),
            token: None,
            body: Some(json!({"agent": "echo", "input": {"city": "Oslo"}})),
            headers: &[("Idempotency-Key", "second")],
            status,
        });
    }
    let mut validated = 0;
    let mut errors = 0;
    let mut driven: BTreeSet<(String, String)> = BTreeSet::new();
    for c in &calls {
        // The key's runs are its own; a team admin's views are its team's.
        let token = match (c.template, c.token) {
            ("/v1/crossbar/runs", None) => Some(secret.as_str()),
            (_, token) => token,
        };
        let answer = send(url, &c.method, &c.path, token, c.body.as_ref(), c.headers).await;
        let what = format!("{} {} ({})", c.method, c.path, c.status);
        assert_eq!(answer.status, c.status, "{what}: {}", answer.text);
        let op = &doc["paths"][c.template][c.method.as_str().to_lowercase()];
        assert!(op.is_object(), "{what}: not described");
        let response = resolve(&doc, &op["responses"][c.status.to_string()]);
        assert!(response.is_object(), "{what}: status not described");
        driven.insert((c.method.as_str().to_owned(), c.template.to_owned()));
        let Some(content) = response.get("content") else {
            assert!(
                answer.text.is_empty(),
                "{what}: a body where none is described"
            );
            continue;
        };
        let (media, described) = content.as_object().unwrap().iter().next().unwrap();
        if media != "application/json" {
            let kind = answer.content_type.split(';').next().unwrap();
            assert!(
                media == "*/*" || media == kind,
                "{what}: {kind}, described as {media}"
            );
            continue;
        }
        assert!(
            answer.content_type.starts_with("application/json"),
            "{what}: {}",
            answer.content_type
        );
        let body: Value = serde_json::from_str(&answer.text).unwrap();
        let mut root = described["schema"].clone();
        root["components"] = doc["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap();
        let violations: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            violations.is_empty(),
            "{what}:\n{}\n{body:#}",
            violations.join("\n")
        );
        validated += 1;
        if c.status >= 400 {
            errors += 1;
        }
    }
    // Answers that show what they should (so a schema is not matching something empty).
    let detail: Value = serde_json::from_str(
        &send(
            url,
            &Method::GET,
            &format!("/v1/crossbar/requests/{request_id}"),
            admin,
            None,
            &[],
        )
        .await
        .text,
    )
    .unwrap();
    assert_eq!(detail["payload"]["request"]["model"], "chat", "{detail}");
    let shown: Value = serde_json::from_str(
        &send(url, &Method::GET, &done_path, admin, None, &[])
            .await
            .text,
    )
    .unwrap();
    assert_eq!(shown["per_step"][0]["tools"][0]["name"], "calc", "{shown}");
    assert_eq!(shown["events"].as_array().unwrap().len(), 4);

    // A team admin may not see the shadow's figures (the whole gateway's): 403, as described.
    let refused = send(
        url,
        &Method::GET,
        "/v1/crossbar/shadow",
        Some(&team_admin),
        None,
        &[],
    )
    .await;
    assert_eq!(refused.status, 403);
    let validator = validator_for(&doc, "/v1/crossbar/shadow", "get", 403);
    let body: Value = serde_json::from_str(&refused.text).unwrap();
    assert!(validator.is_valid(&body), "{body}");
    // The error schema is strict too: a field it does not name fails.
    let mut extra = body.clone();
    extra["error"]["hint"] = json!("x");
    assert!(!validator.is_valid(&extra));
    // A file that does not validate: the reload changes nothing and says why, as described.
    std::fs::write(
        served.dir.join("crossbar.toml"),
        "[[providers]]\nname = 1\n",
    )
    .unwrap();
    let refused = send(url, &Method::POST, "/admin/reload", admin, None, &[]).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let body: Value = serde_json::from_str(&refused.text).unwrap();
    assert!(
        validator_for(&doc, "/admin/reload", "post", 400).is_valid(&body),
        "{body}"
    );

    // Every described operation was driven, and the figures hold.
    assert_eq!(driven, expected, "operations not driven");
    assert_eq!(calls.len(), 45);
    assert_eq!(validated, 40, "JSON answers validated");
    assert_eq!(errors, 7, "error answers validated");
}

/// A field a handler adds outside its type fails the answer's schema.
#[tokio::test]
async fn an_answer_with_a_field_its_type_does_not_name_fails() {
    let doc = crossbar_server::openapi_document();
    let schema = &doc["paths"]["/admin/keys"]["post"]["responses"]["201"]["content"]["application/json"]
        ["schema"];
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap();
    let mut key = json!({
        "id": "key_1", "name": null, "prefix": "cb-1", "created_ms": 1, "revoked_ms": null,
        "models": [], "routes": [], "rpm": null, "tpm": null, "budget_usd_day": null,
        "budget_usd_month": null, "budget_usd_total": null, "team": null, "key": "cb-secret",
    });
    assert!(validator.is_valid(&key));
    key["hash"] = json!("abc");
    assert!(!validator.is_valid(&key));
    key.as_object_mut().unwrap().remove("hash");
    key.as_object_mut().unwrap().remove("key");
    assert!(!validator.is_valid(&key), "the secret is required");
}

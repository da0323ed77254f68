//! Teams over their keys: a team's budget and requests per minute hold across all its keys on
//! two replicas sharing one real `redis-server` (and one store); a key's allow-lists fit inside
//! its team's; usage records carry the team; every change is audited once, without a secret.
//!
//! The Redis tests need `redis-server` on the PATH (CI installs it); without it they say so
//! and pass, unless `CROSSBAR_REQUIRE_REDIS` is set, as CI does.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{TestGateway, admin_call, start, user};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A private `redis-server` in its own temp dir, removed with it.
struct Redis {
    server: Option<crossbar_testkit::servers::Redis>,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "crossbar_teams_redis_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let server = crossbar_testkit::servers::Redis::start(&dir)?;
        Some(Self {
            server: Some(server),
            dir,
        })
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A gateway on `store` with two models, and `[redis]` when given.
fn config(store: &str, redis: Option<&Redis>) -> String {
    let redis = redis.map_or_else(String::new, |r| {
        format!("[redis]\nurl = \"{}\"\nsync_interval_ms = 50\n", r.url())
    });
    format!(
        r#"
[store]
url = "{store}"

[admin]
token = "{ADMIN}"

{redis}

[[providers]]
name = "good"
kind = "sim"
dialect = "openai"

[[models]]
name = "chat"
deployments = [
  {{ provider = "good", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }},
]

[[models]]
name = "other"
deployments = [
  {{ provider = "good", target = "gpt-4o-mini", price = {{ input = 0.15, output = 0.6 }} }},
]
"#
    )
}

fn store_path() -> String {
    common::temp_db("teams").display().to_string()
}

/// Creates a team (201 expected): its id.
async fn team(gw: &TestGateway, spec: Value) -> String {
    let (status, body) = admin_call(gw, ADMIN, Method::POST, "/admin/teams", Some(spec)).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Creates a key (201 expected): its secret and id.
async fn key(gw: &TestGateway, spec: Value) -> (String, String) {
    let (status, body) = admin_call(gw, ADMIN, Method::POST, "/admin/keys", Some(spec)).await;
    assert_eq!(status, 201, "{body}");
    (
        body["key"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

async fn chat(gw: &TestGateway, key: &str, model: &str) -> reqwest::Response {
    gw.client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&json!({"model": model, "max_tokens": 5, "messages": [user("hello")]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_team_budget_holds_across_its_keys_on_two_replicas() {
    let Some(redis) = Redis::start() else { return };
    let config = config(&store_path(), Some(&redis));
    let a = start(&config).await;
    let b = start(&config).await;
    let team_id = team(&a, json!({"name": "research", "budget_usd_total": 0.002})).await;
    // Two keys without budgets of their own: only the team's holds them.
    let (k1, _) = key(&a, json!({"name": "k1", "team": "research"})).await;
    let (k2, _) = key(&a, json!({"name": "k2", "team": team_id})).await;
    let mut admitted = 0;
    let mut refused = 0;
    // Four requests in flight at a time: both keys on both replicas, until all refuse.
    for _ in 0..100 {
        let (r1, r2, r3, r4) = tokio::join!(
            chat(&a, &k1, "chat"),
            chat(&b, &k2, "chat"),
            chat(&b, &k1, "chat"),
            chat(&a, &k2, "chat"),
        );
        for response in [r1, r2, r3, r4] {
            match response.status().as_u16() {
                200 => admitted += 1,
                429 => {
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
                    let message = body["error"]["message"].as_str().unwrap();
                    assert!(
                        message.starts_with(
                            "Budget exceeded: this key's team `research`'s total budget is $0.002;"
                        ),
                        "{message}"
                    );
                    refused += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        if refused >= 4 {
            break;
        }
    }
    assert!(admitted >= 4, "the budget admits a few calls: {admitted}");
    assert!(refused >= 4, "every key on every replica ends up refused");

    // The ledger (both replicas' records, both keys) stays within the team's budget.
    a.gateway.flush().await;
    b.gateway.flush().await;
    let records = a
        .gateway
        .store
        .clone()
        .unwrap()
        .usage_since(0, 10_000)
        .await
        .unwrap();
    let costs: Vec<u64> = records
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            assert_eq!(r.tags.team_id.as_deref(), Some(team_id.as_str()));
            r.cost_pusd
        })
        .collect();
    assert_eq!(
        costs.len(),
        admitted,
        "every admitted call is in the ledger"
    );
    let spent: u64 = costs.iter().sum();
    let budget_pusd = 2_000_000_000; // $0.002
    let one_request = costs.iter().copied().max().unwrap_or(0);
    eprintln!(
        "team budget: {admitted} admitted, {refused} refused, spent {spent} of {budget_pusd} pUSD (one request {one_request})"
    );
    // The documented bound: a level's spend passes its budget by at most one request's
    // estimate error; here every estimate covers the real cost, so not at all.
    assert!(
        spent <= budget_pusd,
        "spent {spent} of {budget_pusd} (one request is {one_request})"
    );
    assert!(
        spent + one_request > budget_pusd - one_request,
        "the budget was used up to about one request: spent {spent}"
    );
}

#[tokio::test]
async fn a_team_rpm_holds_across_its_keys_on_two_replicas() {
    let Some(redis) = Redis::start() else { return };
    let config = config(&store_path(), Some(&redis));
    let a = start(&config).await;
    let b = start(&config).await;
    team(&a, json!({"name": "ops", "rpm": 6})).await;
    let (k1, _) = key(&a, json!({"team": "ops"})).await;
    let (k2, _) = key(&a, json!({"team": "ops", "rpm": 100})).await;
    // Twenty calls at once over both keys and both replicas: alone each key would pass.
    let calls = (0..20).map(|i| {
        let gw = if i % 2 == 0 { &a } else { &b };
        let key = if (i / 2) % 2 == 0 { &k1 } else { &k2 };
        chat(gw, key, "chat")
    });
    let mut statuses = Vec::new();
    for response in futures::future::join_all(calls).await {
        let status = response.status().as_u16();
        if status == 429 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limit_requests", "{body}");
            assert_eq!(
                body["error"]["message"],
                "Rate limit reached: this key's team `ops` allows 6 requests per minute."
            );
        }
        statuses.push(status);
    }
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, limited), (6, 14), "{statuses:?}");
}

#[tokio::test]
async fn a_keys_lists_narrow_its_teams_and_records_carry_the_team() {
    let gw = start(&config(&store_path(), None)).await;
    let team_id = team(&gw, json!({"name": "web", "models": ["chat"]})).await;

    // A key may not list what its team does not allow: a 400 naming it.
    let (status, body) = admin_call(
        &gw,
        ADMIN,
        Method::POST,
        "/admin/keys",
        Some(json!({"team": "web", "models": ["chat", "other"]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Team `web` does not allow model `other`."
    );
    assert_eq!(body["error"]["param"], "models");
    let (status, body) = admin_call(
        &gw,
        ADMIN,
        Method::POST,
        "/admin/keys",
        Some(json!({"team": "nope"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["message"].clone()),
        (400, json!("No team `nope`."))
    );

    // A key listing nothing gets its team's list.
    let (secret, key_id) = key(&gw, json!({"team": "web"})).await;
    let refused = chat(&gw, &secret, "other").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_allowed");
    assert_eq!(
        body["error"]["message"],
        "Your key's team `web` may not use model `other`."
    );
    assert_eq!(chat(&gw, &secret, "chat").await.status(), 200);
    let records = common::usage_records(&gw, 2).await;
    let teams: Vec<(u16, Option<&str>, Option<&str>)> = records
        .iter()
        .map(|r| (r.status, r.key_id.as_deref(), r.tags.team_id.as_deref()))
        .collect();
    assert_eq!(
        teams,
        [
            (403, Some(key_id.as_str()), Some(team_id.as_str())),
            (200, Some(key_id.as_str()), Some(team_id.as_str())),
        ]
    );

    // The team's list changes: its keys follow at once on this replica.
    let (status, body) = admin_call(
        &gw,
        ADMIN,
        Method::PATCH,
        &format!("/admin/teams/{team_id}"),
        Some(json!({"models": ["other"], "rpm": 100})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["models"].clone(), body["rpm"].clone()),
        (json!(["other"]), json!(100))
    );
    assert_eq!(chat(&gw, &secret, "chat").await.status(), 403);
    assert_eq!(chat(&gw, &secret, "other").await.status(), 200);

    // A team with live keys is not deleted.
    let (status, body) = admin_call(
        &gw,
        ADMIN,
        Method::DELETE,
        &format!("/admin/teams/{team_id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("team_has_keys"))
    );
}

#[tokio::test]
async fn every_change_is_audited_once_without_a_secret() {
    let gw = start(&config(&store_path(), None)).await;
    let team_id = team(&gw, json!({"name": "audit", "budget_usd_day": 1.5})).await;
    let (key_secret, key_id) = key(&gw, json!({"team": "audit"})).await;
    let (status, token) = admin_call(
        &gw,
        ADMIN,
        Method::POST,
        "/admin/tokens",
        Some(json!({"role": "team-admin", "team": "audit", "name": "lead"})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let token_secret = token["token"].as_str().unwrap().to_owned();
    let token_id = token["id"].as_str().unwrap().to_owned();
    assert!(token_secret.starts_with("cbadm-"), "{token_secret}");
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/admin/teams/{team_id}"),
            Some(json!({"budget_usd_day": null})),
        ),
        (Method::DELETE, format!("/admin/keys/{key_id}"), None),
        (Method::DELETE, format!("/admin/tokens/{token_id}"), None),
        (Method::DELETE, format!("/admin/teams/{team_id}"), None),
    ] {
        let (status, answer) = admin_call(&gw, ADMIN, method, &path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, log) = admin_call(&gw, ADMIN, Method::GET, "/admin/audit", None).await;
    assert_eq!(status, 200);
    let entries = log["data"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["team_id"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let team = team_id.as_str();
    assert_eq!(
        seen,
        [
            ("team.delete", team, "admin", team),
            ("token.revoke", token_id.as_str(), "admin", team),
            ("key.revoke", key_id.as_str(), "admin", team),
            ("team.update", team, "admin", team),
            ("token.create", token_id.as_str(), "admin", team),
            ("key.create", key_id.as_str(), "admin", team),
            ("team.create", team, "admin", team),
        ]
    );
    // Before and after, never a secret nor a hash.
    let update = &entries[3];
    assert_eq!(update["before"]["budget_usd_day"], 1.5);
    assert_eq!(update["after"]["budget_usd_day"], Value::Null);
    let text = log.to_string();
    for secret in [&key_secret, &token_secret] {
        assert!(!text.contains(secret.as_str()), "a secret in the audit log");
    }
    assert!(!text.contains("\"hash\""), "{text}");
    // Only the first characters (the prefix people tell tokens apart by) are shown.
    assert_eq!(entries[4]["after"]["prefix"], token_secret[..10]);
    assert!(!text.contains(&token_secret[..11]), "{text}");
}

#[tokio::test]
async fn a_teams_tokens_per_minute_count_all_its_keys() {
    let gw = start(&config(&store_path(), None)).await;
    team(&gw, json!({"name": "tokens", "tpm": 10})).await;
    let (k1, _) = key(&gw, json!({"team": "tokens"})).await;
    let (k2, _) = key(&gw, json!({"team": "tokens", "tpm": 1000})).await;
    // One call of k1 uses more than the team's 10 tokens of the minute.
    let first = chat(&gw, &k1, "chat").await;
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert!(
        body["usage"]["total_tokens"].as_u64().unwrap() >= 10,
        "{body}"
    );
    // Its tokens count once its record is made: then k2, with room of its own, is refused.
    for _ in 0..40 {
        let response = chat(&gw, &k2, "chat").await;
        if response.status() == 429 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limit_tokens");
            assert_eq!(
                body["error"]["message"],
                "Rate limit reached: this key's team `tokens` allows 10 tokens per minute."
            );
            return;
        }
        assert_eq!(response.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the team's tokens per minute never refused k2");
}

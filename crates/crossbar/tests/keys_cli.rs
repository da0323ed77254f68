//! `crossbar keys` against the real binary, then `crossbar serve` honouring the key it made and
//! flushing the request's usage record to the store on SIGTERM.

#![expect(clippy::unwrap_used, reason = "test: a failure fails the test")]

use std::process::{Command, Output};

use crossbar_store::{AuditQuery, AuditStore as _, SqlStore, Store};
use crossbar_testkit::process::GatewayProcess;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_crossbar");

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CROSSBAR_CONFIG")
        .env_remove("OPENAI_API_KEY")
        .env_remove("AZURE_OPENAI_API_KEY")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn keys_are_created_listed_used_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let created = run(
        dir.path(),
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--rpm",
            "5",
            "--budget-day",
            "1.5",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    let secret = stdout(&created).trim().to_owned();
    assert!(secret.starts_with("cb-"), "{secret}");
    // The default store is ./crossbar.db in the working directory.
    assert!(dir.path().join("crossbar.db").exists());

    let listed = run(dir.path(), &["keys", "list"]);
    let table = stdout(&listed);
    assert!(table.contains("ci") && table.contains("live"), "{table}");
    assert!(table.contains(&secret[..9]), "{table}");
    assert!(!table.contains(&secret), "the secret is never shown again");
    let json: Value =
        serde_json::from_str(&stdout(&run(dir.path(), &["keys", "list", "--json"]))).unwrap();
    assert_eq!(json[0]["name"], "ci");
    assert_eq!(json[0]["rpm"], 5);
    assert_eq!(json[0]["budget_usd_day"], 1.5);

    // The gateway in the same directory finds the key: closed to anonymous callers.
    let mut gateway =
        GatewayProcess::start_in(BIN, dir.path(), &["serve", "--listen", "127.0.0.1:0"]).await;
    let url = gateway.url().to_owned();
    let client = reqwest::Client::new();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let anonymous = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let keyed = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    let request_id = keyed.headers()["x-request-id"].to_str().unwrap().to_owned();
    let _ = keyed.bytes().await.unwrap();
    gateway.terminate();
    assert!(gateway.wait().await.success());

    // SIGTERM flushed the record before exit.
    let store = SqlStore::open(dir.path().join("crossbar.db").to_str().unwrap())
        .await
        .unwrap();
    let records = store.usage_since(0, 100).await.unwrap();
    let record = records.iter().find(|r| r.request_id == request_id).unwrap();
    assert_eq!(record.key_id.as_deref(), json[0]["id"].as_str());
    assert!(record.cost_pusd > 0);
    store.close().await;

    // The usage report reads the same ledger.
    let report = run(dir.path(), &["usage", "--by", "key", "--format", "json"]);
    assert!(report.status.success(), "{report:?}");
    let rows: Value = serde_json::from_str(&stdout(&report)).unwrap();
    assert_eq!(rows[0]["group"], json[0]["id"]);
    assert_eq!(rows[0]["requests"], 1);
    assert_eq!(rows[0]["error_rate_pct"], 0.0);

    // What-if re-prices that request on every gpt-4o deployment of the built-in catalog.
    let whatif = run(dir.path(), &["whatif", "--format", "json"]);
    assert!(whatif.status.success(), "{whatif:?}");
    let rows: Value = serde_json::from_str(&stdout(&whatif)).unwrap();
    let gpt: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == "gpt-4o")
        .collect();
    assert!(gpt.len() >= 2, "{rows}");
    assert!(gpt.iter().all(|r| r["requests"] == 1));
    assert_eq!(
        gpt.iter()
            .map(|r| r["served"].as_u64().unwrap())
            .sum::<u64>(),
        1
    );

    let revoked = run(dir.path(), &["keys", "revoke", "ci"]);
    assert!(revoked.status.success(), "{revoked:?}");
    let again = run(dir.path(), &["keys", "revoke", "ci"]);
    assert!(!again.status.success(), "already revoked");
    assert!(stdout(&run(dir.path(), &["keys", "list"])).contains("revoked"));

    // Both changes are in the audit log, once each, by the command line, without the secret.
    let store = SqlStore::open(dir.path().join("crossbar.db").to_str().unwrap())
        .await
        .unwrap();
    let audit = store.list_audit(&AuditQuery::newest(10)).await.unwrap();
    let actions: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.target.as_str()))
        .collect();
    let id = json[0]["id"].as_str().unwrap();
    assert_eq!(
        actions,
        [("key.revoke", "cli", id), ("key.create", "cli", id)]
    );
    assert!(audit.iter().all(|e| e.source.starts_with("cli:")));
    assert!(
        !format!("{audit:?}").contains(&secret),
        "the secret reached the audit log"
    );
    assert_eq!(audit[1].before, None);
    assert_eq!(audit[0].before, audit[1].after);
    assert_eq!(audit[1].after.as_ref().unwrap()["name"], "ci");
    assert!(audit[0].after.as_ref().unwrap()["revoked_ms"].is_i64());
    store.close().await;
}

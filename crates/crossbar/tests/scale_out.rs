//! Three `crossbar serve` processes behind a round-robin front (this test), one real
//! `redis-server` and one private PostgreSQL cluster, with faults injected into each:
//! - a key's USD budget under concurrent load from every replica holds to the documented
//!   bound; with Redis killed mid-load it holds to the degraded bound (each replica takes its
//!   share of what was left), and again once Redis is back with none of its data;
//! - PostgreSQL stopped for 30 s mid-load, and one replica killed with SIGKILL meanwhile: the
//!   others keep serving, and afterwards every answered request has exactly one usage record
//!   (the killed replica's spooled records are written when it restarts).
//!
//! Needs `redis-server` and PostgreSQL's server binaries (CI installs both); without them the
//! test says so and passes, unless `CROSSBAR_REQUIRE_REDIS` / `CROSSBAR_REQUIRE_POSTGRES` is set.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbar_store::{SqlStore, Store as _};
use crossbar_testkit::process::GatewayProcess;
use crossbar_testkit::servers::{Postgres, Redis};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_crossbar");
const REPLICAS: usize = 3;
/// Concurrent clients, spread over the replicas.
const CLIENTS: usize = 6;

fn config(store: &str, redis: &str) -> String {
    format!(
        r#"
[store]
url = "{store}"

[redis]
url = "{redis}"
prefix = "scale-out"
sync_interval_ms = 200

[[providers]]
name = "anthropic"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"

[[models]]
name = "claude"
deployments = [{{ provider = "anthropic", target = "claude-sonnet-4-20250514", price = {{ input = 3.0, output = 15.0 }} }}]
"#
    )
}

async fn replica(home: &Path, conf: &str) -> GatewayProcess {
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(home.join("gateway.toml"), conf).unwrap();
    GatewayProcess::start_in(
        BIN,
        home,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "gateway.toml",
        ],
    )
    .await
}

/// `crossbar keys create` against the shared store; returns (id, secret).
fn create_key(store: &str, args: &[&str]) -> (String, String) {
    let output = Command::new(BIN)
        .args(["keys", "--store", store, "create", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key: Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        key["id"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    )
}

/// One chat call; returns (status, request id, error code).
async fn call(client: &reqwest::Client, url: &str, secret: &str) -> (u16, String, String) {
    let response = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&json!({"model": "claude", "max_tokens": 40,
            "messages": [{"role": "user", "content": "Say something short."}]}))
        .send()
        .await;
    let Ok(response) = response else {
        return (0, String::new(), "connection".to_owned());
    };
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = if status == 200 || status == 429 {
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        body.to_string()
    };
    (status, id, code)
}

/// Answers seen by the clients: request ids of 200s, and refusals by code.
#[derive(Default)]
struct Tally {
    answered: Vec<String>,
    refused: HashMap<String, usize>,
    failed: usize,
    /// Per replica, budget refusals since its last answer.
    refusing: [usize; REPLICAS],
}

/// Every replica refused the last three times it was asked: the budget is spent everywhere.
fn all_refusing(tally: &Tally) -> bool {
    tally.refusing.iter().all(|n| *n >= 3)
}

/// The round-robin front: the replicas' URLs, and which one (1-based; 0 for none) it skips.
#[derive(Clone)]
struct Front {
    urls: Arc<Vec<String>>,
    paused: Arc<AtomicUsize>,
}

impl Front {
    async fn load(
        &self,
        secret: &str,
        stop: impl Fn(&Tally) -> bool + Send + Sync + Clone + 'static,
    ) -> Tally {
        load(
            Arc::clone(&self.urls),
            secret.to_owned(),
            stop,
            Arc::clone(&self.paused),
        )
        .await
    }
}

/// `CLIENTS` clients, client `i` on replica `i % REPLICAS` of `urls` (skipping those `paused`
/// says to), each until `stop` says so.
async fn load(
    urls: Arc<Vec<String>>,
    secret: String,
    stop: impl Fn(&Tally) -> bool + Send + Sync + Clone + 'static,
    paused: Arc<AtomicUsize>,
) -> Tally {
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for client_no in 0..CLIENTS {
        let (urls, secret, tally, stop, paused) = (
            Arc::clone(&urls),
            secret.clone(),
            Arc::clone(&tally),
            stop.clone(),
            Arc::clone(&paused),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut turn = client_no;
            loop {
                if stop(&tally.lock().unwrap()) {
                    break;
                }
                let target = turn % REPLICAS;
                turn += 1;
                // A paused replica is skipped: its slot goes to the next.
                if paused.load(Ordering::Relaxed) == target + 1 {
                    continue;
                }
                let (status, id, code) = call(&client, &urls[target], &secret).await;
                {
                    let mut tally = tally.lock().unwrap();
                    match status {
                        200 => {
                            tally.answered.push(id);
                            tally.refusing[target] = 0;
                        }
                        429 => {
                            if code == "budget_exceeded" {
                                tally.refusing[target] += 1;
                            }
                            *tally.refused.entry(code).or_default() += 1;
                        }
                        _ => {
                            eprintln!("failed on replica {target}: {status} {code}");
                            tally.failed += 1;
                        }
                    }
                }
                if status == 429 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap()
}

/// What the ledger holds for `key`, waiting until it stops changing (records are written in
/// batches, spooled ones every few seconds).
async fn settled_spend(store: &SqlStore, key: &str) -> u64 {
    let mut last = u64::MAX;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Ok(now) = store.key_spend_since(key, 0).await else {
            continue;
        };
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// `/readyz`, which answers 200 while the replica can serve.
async fn readiness(url: &str) -> Value {
    let response = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn healthy(url: &str) -> bool {
    reqwest::get(format!("{url}/healthz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// The largest single request's cost in the ledger for `key`.
async fn max_cost(store: &SqlStore, key: &str) -> u64 {
    store
        .usage_since(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.key_id.as_deref() == Some(key))
        .map(|r| r.cost_pusd)
        .max()
        .unwrap_or(0)
}

const PICO: u64 = 1_000_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_and_records_hold_across_replicas_through_redis_and_postgres_outages() {
    let clock = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL runs as its own user: the directory must be reachable for it.
    let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
    let Some(mut redis) = Redis::start(dir.path()) else {
        return;
    };
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    let store_url = pg.url();
    let conf = config(&store_url, &redis.url());
    let mut replicas = Vec::new();
    for i in 0..REPLICAS {
        replicas.push(replica(&dir.path().join(format!("replica-{i}")), &conf).await);
    }
    let urls: Arc<Vec<String>> = Arc::new(replicas.iter().map(|r| r.url().to_owned()).collect());
    let ledger = SqlStore::open(&store_url).await.unwrap();
    let front = Front {
        urls: Arc::clone(&urls),
        paused: Arc::new(AtomicUsize::new(0)),
    };

    // 1. A $0.01 budget under load from every replica, Redis up.
    let budget = PICO / 100;
    let (key, secret) = create_key(&store_url, &["--budget-total", "0.01"]);
    let tally = front.load(&secret, all_refusing).await;
    let spent = settled_spend(&ledger, &key).await;
    let largest = max_cost(&ledger, &key).await;
    eprintln!(
        "redis up: {} answered, spent {spent} of {budget} pUSD (largest request {largest})",
        tally.answered.len()
    );
    assert_eq!(tally.failed, 0);
    assert!(
        largest > 0 && tally.answered.len() > 10,
        "the budget was used"
    );
    // Documented bound: budget plus, per request in flight, what its real cost exceeded its
    // reservation by (nothing here: max_tokens bounds the output).
    assert!(spent <= budget, "spent {spent} > budget {budget}");
    assert!(
        spent + 2 * largest * CLIENTS as u64 >= budget,
        "stopped early: {spent}"
    );

    eprintln!("at {:?}", clock.elapsed());
    // 2. Another $0.01 key; Redis is killed once a third of it is spent.
    let (key, secret) = create_key(&store_url, &["--budget-total", "0.01"]);
    let before = front
        .load(&secret, |t: &Tally| t.answered.len() >= 12)
        .await;
    redis.kill();
    // Out of reach, Redis degrades a replica without taking it out of rotation.
    let ready = readiness(&urls[0]).await;
    assert_eq!(
        (ready["status"].as_str(), ready["shared_state"].as_str()),
        (Some("degraded"), Some("unreachable")),
        "{ready}"
    );
    let during = front.load(&secret, all_refusing).await;
    let spent = settled_spend(&ledger, &key).await;
    let largest = max_cost(&ledger, &key).await;
    eprintln!(
        "redis killed after {} answers: {} more answered, spent {spent} of {budget} pUSD",
        before.answered.len(),
        during.answered.len()
    );
    assert_eq!(
        before.failed + during.failed,
        0,
        "every request was answered"
    );
    assert!(!during.answered.is_empty(), "replicas served without Redis");
    // Degraded bound: the budget, plus what each replica had not yet seen of the others'
    // last requests (one per client at most).
    let degraded_bound = budget + largest * CLIENTS as u64;
    assert!(
        spent <= degraded_bound,
        "spent {spent} > degraded bound {degraded_bound}"
    );

    eprintln!("at {:?}", clock.elapsed());
    // Redis back, empty: the spend is seeded from the ledger (what the outage spent is not
    // added twice), and what is left of the budget, if anything, is spent to the same bound.
    let mut redis = Redis::start(dir.path()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        readiness(&urls[1]).await["status"],
        "ready",
        "Redis is back"
    );
    let after = front.load(&secret, all_refusing).await;
    let spent = settled_spend(&ledger, &key).await;
    eprintln!(
        "redis back: {} more answered, spent {spent} of {budget} pUSD",
        after.answered.len()
    );
    assert_eq!(after.failed, 0);
    assert!(
        spent <= degraded_bound,
        "spent {spent} > degraded bound {degraded_bound}"
    );
    for url in urls.iter() {
        assert!(healthy(url).await, "{url} survived");
    }

    eprintln!("at {:?}", clock.elapsed());
    // 3. PostgreSQL stopped for 30 s mid-load; replica 3 killed (SIGKILL) meanwhile.
    let (key, secret) = create_key(&store_url, &[]);
    let warm = front
        .load(&secret, |t: &Tally| t.answered.len() >= 30)
        .await;
    pg.down();
    let started = tokio::time::Instant::now();
    let outage = {
        let (front, secret) = (front.clone(), secret.clone());
        tokio::spawn(async move {
            front
                .load(&secret, move |_: &Tally| {
                    started.elapsed() >= Duration::from_secs(30)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Its clients move to the others; a second later, with its last records spooled, it dies.
    front.paused.store(REPLICAS, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = replicas.pop().unwrap();
    let home = killed.dir().to_owned();
    killed.kill_hard();
    let outage = outage.await.unwrap();
    eprintln!(
        "postgres down 30 s: {} answered, {} failed, {:?} refused",
        outage.answered.len(),
        outage.failed,
        outage.refused
    );
    assert!(
        outage.answered.len() > 50,
        "the replicas kept serving: {}",
        outage.answered.len()
    );
    assert_eq!(outage.failed, 0, "no request failed for the store's outage");
    let ready = readiness(&urls[0]).await;
    assert_eq!(
        (ready["status"].as_str(), ready["store"].as_str()),
        (Some("degraded"), Some("unreachable")),
        "{ready}"
    );
    assert!(
        ready["spooled_usage_records"].as_u64().unwrap() > 0,
        "{ready}"
    );
    pg.up();
    let restarted = replica(&home, &conf).await;
    let answered: Vec<String> = warm.answered.into_iter().chain(outage.answered).collect();
    let mut found = HashMap::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(records) = ledger.usage_since(0, 1_000_000).await else {
            continue;
        };
        found = HashMap::new();
        for record in records.iter().filter(|r| r.key_id.as_deref() == Some(&key)) {
            *found.entry(record.request_id.clone()).or_insert(0_usize) += 1;
        }
        if answered.iter().all(|id| found.contains_key(id)) {
            break;
        }
    }
    let missing = answered
        .iter()
        .filter(|id| !found.contains_key(*id))
        .count();
    let doubled = found.values().filter(|n| **n > 1).count();
    eprintln!(
        "records: {} answered, {} found, {missing} missing, {doubled} twice",
        answered.len(),
        found.len()
    );
    assert_eq!(missing, 0, "every answered request has its record");
    assert_eq!(doubled, 0, "and only one");
    assert_eq!(found.len(), answered.len(), "no record without an answer");
    assert!(healthy(restarted.url()).await);
    drop(restarted);
    redis.kill();
}

//! Hot reload under load, with the real `crossbar serve` on in-process simulated providers: a
//! steady ~200 requests a second (a quarter of them streamed) while the configuration is
//! reloaded ten times by file changes alone, SIGHUP and `POST /admin/reload`, one reload
//! removing the cheapest deployment and one file being invalid. No request fails; once the
//! removal is live no new request reaches the removed deployment; the invalid file leaves the
//! active version's hash as it was and the admin answer names the error.
#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbar_testkit::process::{GatewayProcess, signal};
use serde_json::{Value, json};

mod common;

const ADMIN: &str = "adm-reload-test-token";
/// One request every this often: 200 a second.
const EVERY: Duration = Duration::from_millis(5);

/// A configuration of model `m` on `deployments` (provider, input price), the cheapest first
/// chosen by the `cost` objective; `version` tells versions apart; `extra` is appended.
fn config(version: u32, deployments: &[(&str, f64)], extra: &str) -> String {
    let mut text = format!(
        "# version {version}\n[admin]\ntoken = \"{ADMIN}\"\n\n[store]\nenabled = false\n\n"
    );
    for name in ["a", "b", "c"] {
        text.push_str(&format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"sim\"\ndialect = \"openai\"\nsim = {{ ttft_ms = 2, tokens_per_s = 200.0 }}\n\n"
        ));
    }
    let entries: Vec<String> = deployments
        .iter()
        .map(|(provider, price)| {
            format!(
                "{{ provider = \"{provider}\", target = \"gpt-4o\", price = {{ input = {price}, output = {price} }} }}"
            )
        })
        .collect();
    text.push_str(&format!(
        "[[models]]\nname = \"m\"\ndeployments = [{}]\n\n[routes.default]\nobjective = \"cost\"\nexplore = 0.0\n{extra}",
        entries.join(", ")
    ));
    text
}

/// Replaces the file at once (write aside, rename), as editors and Kubernetes do.
fn write(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// One request of the load: when it started, which deployment answered, and why it failed.
#[derive(Debug)]
struct Outcome {
    started: Instant,
    deployment: String,
    failure: Option<String>,
}

async fn one(client: &reqwest::Client, url: &str, stream: bool) -> (String, Option<String>) {
    let response = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({
            "model": "m",
            "stream": stream,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "Hello there"}],
        }))
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => return (String::new(), Some(format!("send: {error}"))),
    };
    let status = response.status();
    let deployment = response
        .headers()
        .get("x-crossbar-deployment")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match response.text().await {
        Ok(body) => body,
        Err(error) => return (deployment, Some(format!("body: {error}"))),
    };
    let complete = if stream {
        body.trim_end().ends_with("data: [DONE]") && !body.contains("\"error\"")
    } else {
        serde_json::from_str::<Value>(&body).is_ok_and(|v| v["choices"][0]["message"].is_object())
    };
    if status != 200 || !complete {
        return (deployment, Some(format!("{status}: {body}")));
    }
    (deployment, None)
}

/// Sends a request every [`EVERY`] until `stop`, each on its own task.
fn load(
    url: String,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut tick = tokio::time::interval(EVERY);
        let mut tasks = Vec::new();
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            tick.tick().await;
            n += 1;
            let (client, url, outcomes) = (client.clone(), url.clone(), Arc::clone(&outcomes));
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let (deployment, failure) = one(&client, &url, n.is_multiple_of(4)).await;
                outcomes.lock().unwrap().push(Outcome {
                    started,
                    deployment,
                    failure,
                });
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    })
}

async fn version(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(format!("{url}/v1/crossbar/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits for the active configuration to count `reloads` reloads; returns its version.
async fn reloaded(client: &reqwest::Client, url: &str, reloads: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let version = version(client, url).await;
        if version["reloads"] == reloads {
            return version;
        }
        assert!(
            Instant::now() < deadline,
            "reload {reloads} never happened: {version}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin_reload(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client
        .post(format!("{url}/admin/reload"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[derive(Clone, Copy, Debug)]
enum Via {
    File,
    Signal,
    Admin,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crossbar.toml");
    let all = [("b", 0.1), ("a", 1.0), ("c", 2.0)];
    let without_b = [("a", 1.0), ("c", 2.0)];
    write(&path, &config(0, &all[..2], ""));
    let mut command = common::command(dir.path());
    command.args([
        "serve",
        "--config",
        "crossbar.toml",
        "--listen",
        "127.0.0.1:0",
    ]);
    let gateway = GatewayProcess::spawn(&mut command).await;
    let url = gateway.url().to_owned();
    let client = reqwest::Client::new();
    let first = version(&client, &url).await;
    assert_eq!(first["object"], "crossbar.config");
    assert_eq!(first["reloads"], 0);
    assert_eq!(first["watching"], true);
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);

    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = load(url.clone(), Arc::clone(&outcomes), Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // (file, how it is reloaded); version 5 is invalid, version 4 removes `b`.
    let steps: Vec<(String, Via)> = vec![
        (config(1, &all, ""), Via::Signal),
        (
            config(2, &[("b", 0.1), ("a", 1.5), ("c", 2.0)], ""),
            Via::Admin,
        ),
        (config(3, &all, ""), Via::File),
        (config(4, &without_b, ""), Via::Signal),
        (config(5, &[("a", 1.0), ("nowhere", 2.0)], ""), Via::Admin),
        (
            config(6, &without_b, "hedge = { after = \"p95\" }\n"),
            Via::File,
        ),
        (config(7, &without_b, ""), Via::Admin),
        (config(8, &[("a", 1.0)], ""), Via::Signal),
        (config(9, &without_b, ""), Via::File),
        (
            config(10, &without_b, "\n[server]\nlisten = \"127.0.0.1:1\"\n"),
            Via::Admin,
        ),
    ];
    let mut reloads = 0u64;
    let mut sha = first["sha256"].clone();
    let mut removal_live: Option<Instant> = None;
    let mut triggers = Vec::new();
    for (i, (text, via)) in steps.iter().enumerate() {
        let invalid = i == 4;
        write(&path, text);
        match via {
            Via::File => {}
            Via::Signal => signal(gateway.id(), "-HUP"),
            Via::Admin => {
                let (status, answer) = admin_reload(&client, &url).await;
                if invalid {
                    assert_eq!(status, 400, "{answer}");
                    assert_eq!(answer["error"]["code"], "invalid_config");
                    let message = answer["error"]["message"].as_str().unwrap();
                    assert!(
                        message.starts_with(
                            "The configuration was not reloaded (the running one stays): "
                        ) && message.contains("unknown provider `nowhere`"),
                        "{message}"
                    );
                } else {
                    assert_eq!(status, 200, "{answer}");
                    assert_eq!(answer["result"], "ok");
                    assert_eq!(answer["config"]["reloads"], reloads + 1);
                }
            }
        }
        if invalid {
            let now = version(&client, &url).await;
            assert_eq!(now["sha256"], sha, "an invalid file changed the version");
            assert_eq!(now["reloads"], reloads);
            assert_eq!(now["rejected"], 1);
            assert_eq!(now["last_error"]["trigger"], "admin");
            assert!(
                now["last_error"]["error"]
                    .as_str()
                    .unwrap()
                    .contains("unknown provider `nowhere`"),
                "{now}"
            );
            // The watcher sees the same refused file and leaves it alone.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let later = version(&client, &url).await;
            assert_eq!(later["sha256"], sha);
            assert_eq!(later["rejected"], 1);
        } else {
            reloads += 1;
            let now = reloaded(&client, &url, reloads).await;
            assert_ne!(now["sha256"], sha);
            sha = now["sha256"].clone();
            triggers.push(now["trigger"].as_str().unwrap().to_owned());
            if i == 3 {
                removal_live = Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // The last file moved `server.listen`, which needs a restart.
    let last = version(&client, &url).await;
    assert_eq!(last["needs_restart"], json!(["server.listen"]));
    // Reloading the active file again changes nothing.
    let (status, answer) = admin_reload(&client, &url).await;
    assert_eq!(
        (status, answer["result"].clone()),
        (200, json!("unchanged"))
    );
    assert_eq!(answer["config"]["reloads"], 9);
    // The admin token is required.
    let refused = client
        .post(format!("{url}/admin/reload"))
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |result: &str| -> u64 {
        let prefix = format!("crossbar_config_reloads_total{{result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.parse().unwrap())
    };
    assert_eq!(count("ok"), 9);
    assert_eq!(count("invalid"), 1);
    // At least the admin's; a SIGHUP that finds the watcher was quicker adds one.
    assert!(count("unchanged") >= 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    load.await.unwrap();

    let outcomes = outcomes.lock().unwrap();
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    let removal_live = removal_live.unwrap();
    let to_b_before = outcomes
        .iter()
        .filter(|o| o.started < removal_live && o.deployment == "m@b")
        .count();
    let to_b_after: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.started >= removal_live && o.deployment == "m@b")
        .collect();
    let elapsed = outcomes
        .iter()
        .map(|o| o.started)
        .max()
        .unwrap()
        .duration_since(outcomes.iter().map(|o| o.started).min().unwrap());
    eprintln!(
        "reload under load: {} requests over {:.1} s ({:.0}/s), {} failed, {reloads} reloads + 1 refused; triggers {triggers:?}; {to_b_before} to m@b before its removal, {} after",
        outcomes.len(),
        elapsed.as_secs_f64(),
        outcomes.len() as f64 / elapsed.as_secs_f64(),
        failures.len(),
        to_b_after.len(),
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(outcomes.len() >= 1500, "{} requests", outcomes.len());
    assert!(to_b_before > 100, "{to_b_before} requests reached m@b");
    assert!(to_b_after.is_empty(), "{to_b_after:?}");
    assert_eq!(reloads, 9);
    // A file step can only be the watcher's, an admin step the admin's; a SIGHUP races the
    // watcher, which waits for the file to read the same twice, so it nearly always wins.
    let valid: Vec<Via> = steps
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, (_, via))| *via)
        .collect();
    for (via, trigger) in valid.iter().zip(&triggers) {
        match via {
            Via::File => assert_eq!(trigger, "watch"),
            Via::Admin => assert_eq!(trigger, "admin"),
            Via::Signal => assert!(trigger == "signal" || trigger == "watch", "{trigger}"),
        }
    }
    assert!(triggers.iter().any(|t| t == "signal"), "{triggers:?}");
}

//! The real binary: start-up messages, the built-in offline catalog, config errors, the
//! standalone simulator, and SIGTERM draining in-flight streams.

use std::process::Command;
use std::time::Duration;

use crossbar_testkit::http::json_of;
use crossbar_testkit::process::GatewayProcess;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_crossbar");

/// `crossbar serve` on an ephemeral port with `config` written to `dir/name` (by its full path).
#[expect(clippy::unwrap_used, reason = "test helper")]
async fn serve(dir: &std::path::Path, name: &str, config: &str) -> GatewayProcess {
    let path = dir.join(name);
    std::fs::write(&path, config).unwrap();
    let args = [
        "serve",
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    GatewayProcess::start_in(BIN, dir, &args).await
}

#[tokio::test]
async fn serves_the_builtin_simulated_catalog_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway =
        GatewayProcess::start_in(BIN, dir.path(), &["serve", "--listen", "127.0.0.1:0"]).await;
    let url = gateway.url().to_owned();
    let client = reqwest::Client::new();
    let models = json_of(client.get(format!("{url}/v1/models"))).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "claude-sonnet",
            "gemini-2.5-flash",
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-5",
            "text-embedding-3-small"
        ]
    );
    let answer = json_of(
        client
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello offline world"}]})),
    )
    .await;
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("offline")
    );
    gateway.terminate();
    assert!(gateway.wait().await.success());
}

#[test]
fn a_bad_config_stops_the_start_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[providers]]\nname = \"p\"\nkind = \"openai\"\napi_key = \"k\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml:5: providers[0].colour: unknown field"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("blue"),
        "values are never echoed: {stderr}"
    );
}

#[tokio::test]
async fn the_standalone_simulator_prints_its_address_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = GatewayProcess::start_in(
        BIN,
        dir.path(),
        &["sim", "--dialect", "azure", "--listen", "127.0.0.1:0"],
    )
    .await;
    let addr: std::net::SocketAddr = sim.line().parse().unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "http://{addr}/openai/deployments/d1/chat/completions?api-version=2024-10-21"
        ))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    sim.terminate();
    sim.wait().await;
}

#[tokio::test]
async fn sigterm_drains_in_flight_streams_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = serve(
        dir.path(),
        "slow.toml",
        "[[providers]]\nname = \"slow\"\nkind = \"sim\"\ndialect = \"openai\"\nsim = { tokens_per_s = 20.0 }\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"slow\", target = \"gpt-4o\" }]\n",
    )
    .await;
    let url = gateway.url().to_owned();
    let mut response = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "please write a dozen slow words for me"}]}))
        .send()
        .await
        .unwrap();
    let mut body = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    gateway.terminate();
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        body.ends_with("data: [DONE]\n\n"),
        "the stream in flight at SIGTERM completed: {body}"
    );
    let status = gateway.wait().await;
    assert!(status.success());
    // New connections are refused once it has exited.
    let refused = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(format!("{url}/healthz"))
        .send()
        .await;
    assert!(refused.is_err());
}

/// Shutdown ends within its grace period whatever requests are doing: here one waits on an
/// upstream that never answers. (Before, a request that kept the workers busy could keep the
/// process alive long past SIGTERM; the signal is now watched from a thread of its own.)
#[tokio::test]
async fn sigterm_ends_within_grace_while_a_request_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = serve(
        dir.path(),
        "hang.toml",
        "[server]\nshutdown_grace_s = 1\n\n[[providers]]\nname = \"stuck\"\nkind = \"sim\"\ndialect = \"openai\"\nsim = { hang_rate = 1.0 }\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"stuck\", target = \"gpt-4o\" }]\n\n[routes.default]\ntimeouts = { total_ms = 600000 }\n",
    )
    .await;
    let url = gateway.url().to_owned();
    let pending = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    gateway.terminate();
    let status = gateway.wait().await;
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(8),
        "exited {took:?} after SIGTERM with a 1 s grace"
    );
    // The hung request was cut, not answered.
    assert!(pending.await.unwrap().is_err());
}

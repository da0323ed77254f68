//! The real binary: start-up messages, the built-in offline catalog, config errors, the
//! standalone simulator, and SIGTERM draining in-flight streams.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_crossbar");

/// Starts the binary and returns it with the first line it printed.
#[expect(clippy::unwrap_used, reason = "test helper")]
fn spawn(args: &[&str], dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("AZURE_OPENAI_API_KEY")
        .env_remove("CROSSBAR_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

#[expect(clippy::panic, reason = "test helper")]
fn url_of(line: &str) -> String {
    line.strip_prefix("crossbar listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned()
}

#[expect(clippy::unwrap_used, reason = "test helper")]
fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn serves_the_builtin_simulated_catalog_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, line) = spawn(&["serve", "--listen", "127.0.0.1:0"], dir.path());
    let url = url_of(&line);
    let client = reqwest::Client::new();
    let models: Value = client
        .get(format!("{url}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let answer: Value = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello offline world"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("offline")
    );
    terminate(&child);
    assert!(child.wait().unwrap().success());
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
    let (mut child, addr) = spawn(
        &["sim", "--dialect", "azure", "--listen", "127.0.0.1:0"],
        dir.path(),
    );
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "http://{addr}/openai/deployments/d1/chat/completions?api-version=2024-10-21"
        ))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    terminate(&child);
    child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_drains_in_flight_streams_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slow.toml");
    std::fs::write(
        &config,
        "[[providers]]\nname = \"slow\"\nkind = \"sim\"\ndialect = \"openai\"\nsim = { tokens_per_s = 20.0 }\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"slow\", target = \"gpt-4o\" }]\n",
    )
    .unwrap();
    let (mut child, line) = spawn(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let url = url_of(&line);
    let mut response = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "please write a dozen slow words for me"}]}))
        .send()
        .await
        .unwrap();
    let mut body = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    terminate(&child);
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        body.ends_with("data: [DONE]\n\n"),
        "the stream in flight at SIGTERM completed: {body}"
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
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
    let config = dir.path().join("hang.toml");
    std::fs::write(
        &config,
        "[server]\nshutdown_grace_s = 1\n\n[[providers]]\nname = \"stuck\"\nkind = \"sim\"\ndialect = \"openai\"\nsim = { hang_rate = 1.0 }\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"stuck\", target = \"gpt-4o\" }]\n\n[routes.default]\ntimeouts = { total_ms = 600000 }\n",
    )
    .unwrap();
    let (mut child, line) = spawn(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let url = url_of(&line);
    let pending = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    terminate(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(8),
        "exited {took:?} after SIGTERM with a 1 s grace"
    );
    // The hung request was cut, not answered.
    assert!(pending.await.unwrap().is_err());
}

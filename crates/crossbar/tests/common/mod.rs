//! The `crossbar` binary for agent tests: a gateway configuration on simulators, a spec and a
//! scripted task, the binary run in a temporary directory (its environment cleared of
//! anything that would point it elsewhere), and `crossbar serve` as a separate process.
#![allow(dead_code, reason = "each test file uses part of the helpers")]
#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

use std::path::Path;
use std::process::Stdio;

use crossbar_testkit::process::GatewayProcess;
use serde_json::Value;
use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_crossbar");

/// The agents' catalog (one deployment per model, so which provider answers never depends on
/// live statistics), closed to callers without `sk-agent-test-key`.
pub const CONFIG: &str = concat!(
    "\n[server]\napi_keys = [\"sk-agent-test-key\"]\n",
    crossbar_testkit::agent_catalog!()
);

/// The kit's hermetic command, with the binary's warnings on this test's stderr.
pub fn command(dir: &Path) -> Command {
    let mut command = crossbar_testkit::process::command(BIN, dir);
    command.env("RUST_LOG", "warn").stderr(Stdio::inherit());
    command
}

/// Runs the binary to its end and returns its stdout lines.
pub async fn output(dir: &Path, args: &[&str]) -> Vec<String> {
    let out = command(dir)
        .args(args)
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "crossbar {args:?} failed: {stdout}");
    stdout.lines().map(str::to_owned).collect()
}

pub fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn new(spec: &str) -> Self {
        Self::with_config(CONFIG, spec)
    }

    /// A gateway configuration other than [`CONFIG`] (e.g. with `[telemetry]`).
    pub fn with_config(config: &str, spec: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("crossbar.toml"), config).unwrap();
        std::fs::write(dir.path().join("agent.toml"), spec).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `crossbar agent ARGS --config crossbar.toml --store STORE --json`, run to its end.
    pub async fn agent_json(&self, args: &[&str], store: &str) -> Vec<String> {
        let mut all = vec!["agent"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", "crossbar.toml", "--store", store, "--json"]);
        output(self.path(), &all).await
    }

    pub fn store(&self, name: &str) -> String {
        format!("sqlite://{}?mode=rwc", self.path().join(name).display())
    }

    /// `crossbar agent journal RUN`, normalized for comparison: no start/resume markers, and
    /// within a step the model call first, then starts and results each by call id (tools
    /// run concurrently, so their journal order is the order they finished in).
    pub async fn journal(&self, store: &str, run_id: &str) -> Vec<Value> {
        let lines = output(self.path(), &["agent", "journal", run_id, "--store", store]).await;
        let mut entries: Vec<Value> = json_lines(&lines)
            .into_iter()
            .filter(|e| !matches!(e["kind"].as_str(), Some("started" | "resumed")))
            .map(|mut e| {
                // Derived from the run id: the same call in another run has another key.
                if let Some(entry) = e.as_object_mut() {
                    entry.remove("idempotency_key");
                }
                e
            })
            .collect();
        entries.sort_by_key(|e| {
            let step = e["step"].as_u64().unwrap_or(u64::MAX);
            let order = match e["kind"].as_str().unwrap() {
                "model_call" => 0,
                "tool_started" => 1,
                "tool_result" => 2,
                _ => 3,
            };
            (
                step,
                order,
                e["call_id"].as_str().unwrap_or_default().to_owned(),
            )
        });
        entries
    }
}

pub const SPEC: &str = r#"
name = "gatherer"
instructions = "Gather facts with your tools, then answer."
max_steps = 5

[models]
default = "smart"

[tools]
builtin = ["calculator"]
"#;

pub const TASK: &str = "Gather.
sim-step 1: calculator {\"expression\": \"6 * 7\"}
sim-step 2: calculator {\"expression\": \"(1 + 2) ^ 2\"}
sim-step 2: calculator {\"expression\": \"oops\"}";

/// The gateway as its own process: `crossbar serve` on an ephemeral port; returns it and its
/// URL.
pub async fn serve(dir: &Path) -> (GatewayProcess, String) {
    let gateway = GatewayProcess::spawn(command(dir).args([
        "serve",
        "--config",
        "crossbar.toml",
        "--listen",
        "127.0.0.1:0",
    ]))
    .await;
    let url = gateway.url().to_owned();
    (gateway, url)
}

pub fn summary(lines: &[String]) -> Value {
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["kind"], "summary", "{lines:?}");
    last
}

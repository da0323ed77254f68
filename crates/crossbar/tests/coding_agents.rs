//! Claude Code and Codex, the real npm binaries pinned in `tests/coding-agents/package.json`,
//! run non-interactively against `crossbar serve` on its built-in simulated providers, each on
//! Claude, GPT and Gemini: a plain prompt, a tool round trip through the agent's own file-reading
//! tool (scripted with `sim-step` lines, see `crossbar_sim::behaviour`), Codex's freeform
//! `apply_patch`, and a second turn of the same session. Every call must then be in the usage
//! records with the logical model, a deployment of it, and its cost to the picodollar.
//!
//! The binaries are installed by `scripts/test` (`npm ci` in tests/coding-agents). Without them
//! these tests say so and pass, unless `CROSSBAR_REQUIRE_CODING_AGENTS` is set (CI sets it).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: an unexpected answer fails the test"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crossbar_testkit::process::GatewayProcess;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_crossbar");
/// Per agent run: Claude Code starts in a few seconds; a first run of Codex unpacks its sandbox.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn agents_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/coding-agents/node_modules/.bin")
}

/// The agent's executable, or `None` (after saying why) when it is not installed here.
fn agent(name: &str) -> Option<PathBuf> {
    let path = agents_bin().join(name);
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CROSSBAR_REQUIRE_CODING_AGENTS").is_some() {
        panic!(
            "{} is missing: run `npm ci` in tests/coding-agents",
            path.display()
        );
    }
    eprintln!(
        "skipped: {} is not installed (npm ci in tests/coding-agents)",
        path.display()
    );
    None
}

/// A gateway on the built-in catalog (or `config`), on a port of its own.
struct Gateway {
    process: GatewayProcess,
    url: String,
}

impl Gateway {
    async fn start(config: Option<&str>) -> Self {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        let mut files = Vec::new();
        if let Some(config) = config {
            files.push(("gateway.toml", config));
            args.extend(["--config", "gateway.toml"]);
        }
        let process = GatewayProcess::start(BIN, &files, &args).await;
        let url = process.url().to_owned();
        Self { process, url }
    }

    /// A directory for the agent's home, work tree and state.
    fn path(&self, name: &str) -> PathBuf {
        let path = self.process.dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// Every usage record, oldest first, once `count` have reached the store.
    async fn records(&self, count: usize) -> Vec<Value> {
        for _ in 0..100 {
            let page: Value = reqwest::get(format!("{}/v1/crossbar/requests?limit=500", self.url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut data = page["data"].as_array().cloned().unwrap_or_default();
            if data.len() >= count {
                data.reverse();
                return data;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("fewer than {count} usage records after 10 s");
    }
}

/// The built-in catalog with Codex's `gpt-5.5` leading to `model` instead of `gpt-5`: Codex
/// offers its `apply_patch` tool only to model ids it knows, so that is the name to keep.
fn codex_config(model: &str) -> String {
    let builtin = include_str!("../../crossbar-core/config/builtin-sim.toml");
    let alias = "\"gpt-5*\" = \"gpt-5\"";
    assert!(builtin.contains(alias), "the built-in catalog changed");
    builtin.replace(alias, &format!("\"gpt-5*\" = \"{model}\""))
}

/// Runs an agent to its end; returns its exit status and stdout.
async fn run(command: &mut tokio::process::Command) -> (bool, String, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .expect("the agent did not finish in time")
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `claude -p` in print mode with JSON output: its `result` text and `session_id`.
async fn claude(
    gw: &Gateway,
    model: Option<&str>,
    prompt: &str,
    resume: Option<&str>,
) -> (String, String) {
    claude_pinned(gw, model, prompt, resume, None).await
}

/// As [`claude`], with every call pinned to one provider (`x-crossbar-provider`, sent through
/// Claude Code's `ANTHROPIC_CUSTOM_HEADERS`).
async fn claude_pinned(
    gw: &Gateway,
    model: Option<&str>,
    prompt: &str,
    resume: Option<&str>,
    provider: Option<&str>,
) -> (String, String) {
    let bin = agents_bin().join("claude");
    let mut command = tokio::process::Command::new(bin);
    command
        .args(["-p", prompt, "--output-format", "json"])
        .current_dir(gw.path("work"))
        .env("HOME", gw.path("home"))
        .env("ANTHROPIC_BASE_URL", &gw.url)
        .env("ANTHROPIC_API_KEY", "sk-ant-any")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_MODEL")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    if let Some(model) = model {
        command.args(["--model", model]);
    }
    if let Some(session) = resume {
        command.args(["--resume", session]);
    }
    match provider {
        Some(provider) => command.env(
            "ANTHROPIC_CUSTOM_HEADERS",
            format!("x-crossbar-provider: {provider}"),
        ),
        None => command.env_remove("ANTHROPIC_CUSTOM_HEADERS"),
    };
    let (ok, stdout, stderr) = run(&mut command).await;
    assert!(ok, "claude failed:\n{stdout}\n{stderr}");
    let answer: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("claude printed no JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(answer["is_error"], false, "{answer}");
    (
        answer["result"].as_str().unwrap_or_default().to_owned(),
        answer["session_id"].as_str().unwrap().to_owned(),
    )
}

/// `codex exec --json` (or `codex exec resume --last`): the text of its last agent message.
async fn codex(gw: &Gateway, prompt: &str, resume: bool) -> String {
    codex_pinned(gw, prompt, resume, None).await
}

/// As [`codex`], with every call pinned to one provider (the provider entry's `http_headers`).
async fn codex_pinned(gw: &Gateway, prompt: &str, resume: bool, provider: Option<&str>) -> String {
    let home = gw.path("codex-home");
    let pin = provider.map_or_else(String::new, |p| {
        format!("http_headers = {{ \"x-crossbar-provider\" = \"{p}\" }}\n")
    });
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model = \"gpt-5.5\"\nmodel_provider = \"crossbar\"\n\
             [model_providers.crossbar]\nname = \"Crossbar\"\nbase_url = \"{}/v1\"\n\
             env_key = \"CROSSBAR_TEST_KEY\"\nwire_api = \"responses\"\n{pin}",
            gw.url
        ),
    )
    .unwrap();
    let bin = agents_bin().join("codex");
    let mut command = tokio::process::Command::new(bin);
    command.args([
        "exec",
        "--skip-git-repo-check",
        "--json",
        "--sandbox",
        "workspace-write",
    ]);
    if resume {
        command.args(["resume", "--last"]);
    }
    command
        .arg(prompt)
        .current_dir(gw.path("work"))
        .env("HOME", gw.path("home"))
        .env("CODEX_HOME", &home)
        .env("CROSSBAR_TEST_KEY", "any")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    let (ok, stdout, stderr) = run(&mut command).await;
    assert!(ok, "codex failed:\n{stdout}\n{stderr}");
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    for event in &events {
        assert!(
            !matches!(event["type"].as_str(), Some("error" | "turn.failed")),
            "codex reported {event}\n{stderr}"
        );
    }
    events
        .iter()
        .rev()
        .find(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
        .and_then(|e| e["item"]["text"].as_str())
        .unwrap_or_else(|| panic!("no answer from codex:\n{stdout}\n{stderr}"))
        .to_owned()
}

/// Picodollars per token of each built-in model (builtin-sim.toml): input, cached input, cache
/// write (the input price where none is set), output.
fn prices(model: &str) -> (u64, u64, u64, u64) {
    match model {
        "claude-sonnet" => (3_000_000, 300_000, 3_750_000, 15_000_000),
        "gpt-5" => (1_250_000, 125_000, 1_250_000, 10_000_000),
        "gemini-2.5-flash" => (300_000, 75_000, 300_000, 2_500_000),
        other => panic!("no prices for {other}"),
    }
}

/// Every call since the gateway started: answered, by `model`, on one of its deployments, and
/// priced exactly.
async fn assert_usage(gw: &Gateway, model: &str, at_least: usize) {
    let records = gw.records(at_least).await;
    let (input, cached, write, output) = prices(model);
    for record in &records {
        assert_eq!(record["status"], 200, "{record}");
        assert_eq!(record["model"], model, "{record}");
        let deployment = record["deployment"].as_str().unwrap();
        assert!(deployment.starts_with(&format!("{model}@")), "{record}");
        let tokens = |key: &str| record[key].as_u64().unwrap();
        let (read, written) = (tokens("cached_input_tokens"), tokens("cache_write_tokens"));
        let expected = (tokens("input_tokens") - read - written) * input
            + read * cached
            + written * write
            + tokens("output_tokens") * output;
        assert_eq!(record["cost_pusd"].as_u64().unwrap(), expected, "{record}");
    }
}

/// The marker file the tool round trips read, and its contents.
fn marker(gw: &Gateway, marker: &str) -> PathBuf {
    let path = gw.path("work").join("marker.txt");
    std::fs::write(&path, format!("the marker is {marker}\n")).unwrap();
    path
}

/// A prompt the simulated model answers with text (its script has no step for this round).
fn plain(prompt: &str) -> String {
    format!("{prompt}\nsim-step 9: none")
}

async fn claude_code_on(model: Option<&str>, logical: &str) {
    if agent("claude").is_none() {
        return;
    }
    let gw = Gateway::start(None).await;
    let (answer, _) = claude(&gw, model, &plain("Say hello HELLO-7"), None).await;
    assert!(answer.contains("HELLO-7"), "{answer}");
    let file = marker(&gw, "PLUM-4471");
    let prompt = format!(
        "Read the marker file.\nsim-step 1: Read {{\"file_path\": \"{}\"}}",
        file.display()
    );
    let (answer, session) = claude(&gw, model, &prompt, None).await;
    assert!(answer.starts_with("Based on Read:"), "{answer}");
    assert!(answer.contains("the marker is PLUM-4471"), "{answer}");
    // The second turn hands back the first one's history, thinking blocks included.
    let (answer, again) = claude(
        &gw,
        model,
        &plain("And now the second turn PEAR-19"),
        Some(&session),
    )
    .await;
    assert_eq!(again, session);
    assert!(answer.contains("PEAR-19"), "{answer}");
    assert_usage(&gw, logical, 4).await;
}

async fn codex_on(logical: &str) {
    if agent("codex").is_none() {
        return;
    }
    let gw = Gateway::start(Some(&codex_config(logical))).await;
    let answer = codex(&gw, &plain("Say hello HELLO-7"), false).await;
    assert!(answer.contains("HELLO-7"), "{answer}");
    let file = marker(&gw, "PLUM-4471");
    let prompt = format!(
        "Read the marker.\nsim-step 1: exec_command {{\"cmd\": \"cat {}\"}}",
        file.display()
    );
    let answer = codex(&gw, &prompt, false).await;
    assert!(answer.starts_with("Based on exec_command:"), "{answer}");
    assert!(answer.contains("the marker is PLUM-4471"), "{answer}");
    // Codex's freeform patch tool: the model's call reaches Codex as a custom tool call.
    let prompt = "Add the file.\nsim-step 1: apply_patch {\"input\": \"*** Begin Patch\\n\
                  *** Add File: patched.txt\\n+patched by the model\\n*** End Patch\\n\"}";
    let answer = codex(&gw, prompt, false).await;
    assert!(answer.starts_with("Based on apply_patch:"), "{answer}");
    assert_eq!(
        std::fs::read_to_string(gw.path("work").join("patched.txt")).unwrap(),
        "patched by the model\n"
    );
    let answer = codex(&gw, &plain("And now the second turn PEAR-19"), true).await;
    assert!(answer.contains("PEAR-19"), "{answer}");
    assert_usage(&gw, logical, 5).await;
}

/// Every record is of `deployment`.
async fn assert_deployment(gw: &Gateway, deployment: &str, count: usize) {
    for record in gw.records(count).await {
        assert_eq!(record["deployment"], deployment, "{record}");
    }
}

/// `answer`, a second turn's, came from Claude on `provider`, which served all three calls.
async fn assert_second_turn_on_claude(gw: &Gateway, provider: &str, answer: &str) {
    assert!(answer.contains("PEAR-19"), "{provider}: {answer}");
    assert_deployment(gw, &format!("claude-sonnet@{provider}"), 3).await;
    assert_usage(gw, "claude-sonnet", 3).await;
}

/// Claude through each cloud's own door (Anthropic, Bedrock's Converse, Vertex AI), a tool
/// round trip and a second turn each: thinking blocks signed by one cloud go back to it.
#[tokio::test(flavor = "multi_thread")]
async fn claude_code_on_claude_in_each_cloud() {
    if agent("claude").is_none() {
        return;
    }
    for provider in ["sim-anthropic", "sim-aws-us-east-1", "sim-gcp-us-east5"] {
        let gw = Gateway::start(None).await;
        let file = marker(&gw, "PLUM-4471");
        let prompt = format!(
            "Read the marker file.\nsim-step 1: Read {{\"file_path\": \"{}\"}}",
            file.display()
        );
        let (answer, session) = claude_pinned(&gw, None, &prompt, None, Some(provider)).await;
        assert!(
            answer.contains("the marker is PLUM-4471"),
            "{provider}: {answer}"
        );
        let (answer, _) = claude_pinned(
            &gw,
            None,
            &plain("And now the second turn PEAR-19"),
            Some(&session),
            Some(provider),
        )
        .await;
        assert_second_turn_on_claude(&gw, provider, &answer).await;
    }
}

/// Codex on Claude through Bedrock and Vertex AI: a command round trip and a second turn each.
#[tokio::test(flavor = "multi_thread")]
async fn codex_on_claude_on_bedrock_and_vertex() {
    if agent("codex").is_none() {
        return;
    }
    for provider in ["sim-aws-us-east-1", "sim-gcp-us-east5"] {
        let gw = Gateway::start(Some(&codex_config("claude-sonnet"))).await;
        let file = marker(&gw, "PLUM-4471");
        let prompt = format!(
            "Read the marker.\nsim-step 1: exec_command {{\"cmd\": \"cat {}\"}}",
            file.display()
        );
        let answer = codex_pinned(&gw, &prompt, false, Some(provider)).await;
        assert!(
            answer.contains("the marker is PLUM-4471"),
            "{provider}: {answer}"
        );
        let answer = codex_pinned(
            &gw,
            &plain("And now the second turn PEAR-19"),
            true,
            Some(provider),
        )
        .await;
        assert_second_turn_on_claude(&gw, provider, &answer).await;
    }
}

/// Claude Code's own model id (`claude-opus-5-5` today) reaches Claude through the built-in
/// `claude-*` alias.
#[tokio::test(flavor = "multi_thread")]
async fn claude_code_on_claude() {
    claude_code_on(None, "claude-sonnet").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_on_gpt() {
    claude_code_on(Some("gpt-5"), "gpt-5").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_on_gemini() {
    claude_code_on(Some("gemini-2.5-flash"), "gemini-2.5-flash").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_on_gpt() {
    codex_on("gpt-5").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_on_claude() {
    codex_on("claude-sonnet").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_on_gemini() {
    codex_on("gemini-2.5-flash").await;
}

//! `crossbar agent` end to end with the real binary: the same agent run in-process and through
//! a gateway running as a separate process gives the same transcript; a run killed with
//! SIGKILL mid-tool resumes to the same journal as an uninterrupted run (an idempotent tool is
//! re-run, a non-idempotent one is reported to the model as interrupted); `agent runs` lists.

#![expect(clippy::unwrap_used, reason = "test code: a failure fails the test")]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{SPEC, Setup, TASK, command, json_lines, output, serve, summary};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn the_same_agent_in_process_and_through_a_remote_gateway_gives_the_same_transcript() {
    let setup = Setup::new(SPEC);
    let local_store = setup.store("local.db");
    let local = setup
        .agent_json(&["run", "agent.toml", TASK], &local_store)
        .await;
    let local_summary = summary(&local);
    assert_eq!(local_summary["status"], "completed", "{local:?}");

    let (mut gateway, url) = serve(setup.path()).await;
    // Without the key, the gateway refuses the agent, and the run says so.
    let refused = command(setup.path())
        .args([
            "agent",
            "run",
            "agent.toml",
            TASK,
            "--gateway",
            &url,
            "--store",
            &setup.store("refused.db"),
            "--json",
        ])
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());

    let remote_store = setup.store("remote.db");
    let remote = output(
        setup.path(),
        &[
            "agent",
            "run",
            "agent.toml",
            TASK,
            "--gateway",
            &url,
            "--key",
            "sk-agent-test-key",
            "--store",
            &remote_store,
            "--json",
        ],
    )
    .await;
    gateway.kill().await.unwrap();
    let remote_summary = summary(&remote);
    assert_eq!(remote_summary["status"], "completed", "{remote:?}");
    assert_eq!(remote_summary["answer"], local_summary["answer"]);
    assert_eq!(remote_summary["totals"]["steps"], 3);
    let answer = local_summary["answer"].as_str().unwrap();
    assert!(
        answer.starts_with("Based on calculator: 9; calculator: "),
        "{answer}"
    );

    let local_journal = setup
        .journal(&local_store, local_summary["run_id"].as_str().unwrap())
        .await;
    let remote_journal = setup
        .journal(&remote_store, remote_summary["run_id"].as_str().unwrap())
        .await;
    assert_eq!(local_journal.len(), 3 + 3 * 2 + 1);
    // Messages (tool-call ids included), usage, cost, provider and tool results all agree.
    assert_eq!(local_journal, remote_journal);
    let providers: Vec<&str> = remote_journal
        .iter()
        .filter(|e| e["kind"] == "model_call")
        .map(|e| e["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        providers, ["sim-openai"; 3],
        "the gateway reports who answered"
    );
    assert!(
        remote_journal
            .iter()
            .filter(|e| e["kind"] == "model_call")
            .all(|e| e["cost_usd"].as_f64().unwrap() > 0.0)
    );
}

/// A tool server that takes its time, counting calls.
async fn slow_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/lookup",
        axum::routing::any(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "the answer is in the archive"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/lookup"), hits)
}

fn slow_spec(url: &str, idempotent: bool) -> String {
    format!(
        r#"{SPEC}
[[tools.http]]
name = "lookup"
description = "Looks things up (slowly)."
method = "POST"
url = "{url}"
idempotent = {idempotent}
allow_private = true
parameters = {{ type = "object", properties = {{ q = {{ type = "string" }} }}, required = ["q"] }}
"#
    )
}

const SLOW_TASK: &str = "Gather.
sim-step 1: calculator {\"expression\": \"6 * 7\"}
sim-step 2: lookup {\"q\": \"archive\"}
sim-step 2: calculator {\"expression\": \"2 ^ 10\"}";

/// Starts a run and kills it (SIGKILL) once the journal says `lookup` started; returns the
/// run id.
async fn run_and_kill(setup: &Setup, store: &str) -> String {
    let mut child = command(setup.path())
        .args([
            "agent",
            "run",
            "agent.toml",
            SLOW_TASK,
            "--config",
            "crossbar.toml",
            "--store",
            store,
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut run_id = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        let event: Value = serde_json::from_str(&line).unwrap();
        run_id = event["run_id"].as_str().map(str::to_owned);
        if event["kind"] == "tool_started" && event["name"] == "lookup" {
            let status = std::process::Command::new("kill")
                .args(["-9", &child.id().unwrap().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            break;
        }
        assert_ne!(
            event["kind"], "summary",
            "the run ended before it could be killed"
        );
    }
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed, not finished");
    run_id.unwrap()
}

#[tokio::test]
async fn a_run_killed_mid_tool_resumes_to_the_journal_of_an_uninterrupted_run() {
    let (url, hits) = slow_server().await;
    let setup = Setup::new(&slow_spec(&url, true));

    let whole_store = setup.store("whole.db");
    let whole = setup
        .agent_json(&["run", "agent.toml", SLOW_TASK], &whole_store)
        .await;
    let whole_summary = summary(&whole);
    assert_eq!(whole_summary["status"], "completed");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let store = setup.store("killed.db");
    let run_id = run_and_kill(&setup, &store).await;
    let runs = output(
        setup.path(),
        &["agent", "runs", "--store", &store, "--json"],
    )
    .await;
    let listed = json_lines(&runs);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], run_id.as_str());
    assert_eq!(
        listed[0]["status"], "running",
        "a killed run is left running"
    );
    assert_eq!(listed[0]["steps"], 2, "killed during step 2's tools");

    // The killed call may or may not have reached the server.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = hits.load(Ordering::SeqCst);
    // Resume in another process (any host sharing the store would do).
    let resumed = setup.agent_json(&["resume", &run_id], &store).await;
    let resumed_summary = summary(&resumed);
    assert_eq!(resumed_summary["status"], "completed", "{resumed:?}");
    assert_eq!(resumed_summary["run_id"], run_id.as_str());
    assert_eq!(resumed_summary["answer"], whole_summary["answer"]);
    let first: Value = serde_json::from_str(&resumed[0]).unwrap();
    assert_eq!(first["kind"], "resumed");
    assert_eq!(first["after_step"], 2);
    // The idempotent lookup, started but unfinished, was run again.
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);

    let whole_journal = setup
        .journal(&whole_store, whole_summary["run_id"].as_str().unwrap())
        .await;
    let resumed_journal = setup.journal(&store, &run_id).await;
    assert_eq!(resumed_journal, whole_journal);
    assert_eq!(
        resumed_summary["totals"]["cost_usd"],
        whole_summary["totals"]["cost_usd"]
    );
    assert_eq!(
        resumed_summary["totals"]["tokens"],
        whole_summary["totals"]["tokens"]
    );

    // A finished run does not resume.
    let again = command(setup.path())
        .args([
            "agent",
            "resume",
            &run_id,
            "--config",
            "crossbar.toml",
            "--store",
            &store,
        ])
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());

    let table = output(setup.path(), &["agent", "runs", "--store", &store]).await;
    assert!(table[0].starts_with("run "), "{table:?}");
    assert!(
        table[1].contains(&run_id) && table[1].contains("completed"),
        "{table:?}"
    );
}

#[tokio::test]
async fn a_non_idempotent_tool_interrupted_by_a_kill_is_not_run_again() {
    let (url, hits) = slow_server().await;
    let setup = Setup::new(&slow_spec(&url, false));
    let store = setup.store("killed.db");
    let run_id = run_and_kill(&setup, &store).await;
    // The call may or may not have reached the server before the kill; it is never repeated.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = hits.load(Ordering::SeqCst);
    let resumed = setup.agent_json(&["resume", &run_id], &store).await;
    assert_eq!(hits.load(Ordering::SeqCst), before);
    let events = json_lines(&resumed);
    let interrupted: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "tool_result" && e["name"] == "lookup")
        .collect();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0]["interrupted"], true);
    assert_eq!(interrupted[0]["is_error"], true);
    let summary = summary(&resumed);
    assert_eq!(summary["status"], "completed");
    let answer = summary["answer"].as_str().unwrap();
    assert!(
        answer.contains("lookup: The run was interrupted while `lookup` was running"),
        "the model was told: {answer}"
    );
}

#[tokio::test]
async fn the_demo_runs_offline_and_survives_the_outage() {
    let dir = tempfile::tempdir().unwrap();
    let lines = output(dir.path(), &["demo"]).await;
    let text = lines.join("\n");
    assert!(
        text.contains("!! outage: sim-aws-us-east-1 (aws) now fails every call with 503"),
        "{text}"
    );
    assert!(text.contains("The run survived the outage: sim-aws-us-east-1 failed after step 2 and steps 3-4 ran on sim-gcp-us-east5"), "{text}");
    assert!(text.contains("← calculator [ok] 479.7"), "{text}");
    let table: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(char::is_numeric) && l.contains(" sim-"))
        .collect();
    assert_eq!(table.len(), 4, "{text}");
    assert!(table[0].contains("sim-aws-us-east-1") && table[0].contains("aws"));
    assert!(table[3].contains("sim-gcp-us-east5") && table[3].contains("answer"));
    assert!(
        !dir.path().join("crossbar.db").exists(),
        "the demo leaves nothing behind"
    );
}

#[tokio::test]
async fn ingested_documents_are_searched_by_the_search_docs_tool() {
    let setup = Setup::new(&format!("{SPEC}\n[retrieval]\nindex = \"idx\"\n"));
    let docs = setup.path().join("docs");
    std::fs::create_dir_all(docs.join("guides")).unwrap();
    std::fs::write(
        docs.join("guides/refunds.md"),
        "# Refunds\n\nRefunds are paid within 14 days of the return.\n\nShipping is free.",
    )
    .unwrap();
    std::fs::write(
        docs.join("hours.txt"),
        "The shop opens at 9 and closes at 18.",
    )
    .unwrap();
    let out = command(setup.path())
        .args(["agent", "ingest", "docs", "--index", "idx"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim(),
        "indexed 2 file(s) as 2 passage(s) into idx (0 skipped: not UTF-8 text)"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("] 2/2 files"), "progress bar: {stderr}");

    let task = "When are refunds paid?\nsim-step 1: search_docs {\"query\": \"refunds paid days\", \"limit\": 1}";
    let lines = setup
        .agent_json(&["run", "agent.toml", task], &setup.store("j.db"))
        .await;
    let summary = summary(&lines);
    assert_eq!(
        summary["answer"],
        "Based on search_docs: [guides/refunds.md #1] # Refunds\n\nRefunds are paid within 14 days of the return.\n\nShipping is free.."
    );
}

#[tokio::test]
async fn ingest_with_embeddings_makes_search_docs_hybrid() {
    let setup = Setup::new(&format!("{SPEC}\n[retrieval]\nindex = \"idx\"\n"));
    let docs = setup.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("refunds.md"),
        "Refunds are issued within 14 days.",
    )
    .unwrap();
    std::fs::write(
        docs.join("hours.txt"),
        "The shop opens at 9 and closes at 18.",
    )
    .unwrap();
    let store = setup.store("j.db");
    // Embedded through a gateway on another "host" (its own process); searched in-process
    // below: the vectors depend on the model, not on the path to it.
    let (mut gateway, url) = serve(setup.path()).await;
    let ingest = [
        "agent",
        "ingest",
        "docs",
        "--index",
        "idx",
        "--embeddings",
        "embed",
        "--gateway",
        &url,
        "--key",
        "sk-agent-test-key",
        "--store",
        &store,
    ];
    let lines = output(setup.path(), &ingest).await;
    gateway.kill().await.unwrap();
    assert_eq!(
        lines[0],
        "indexed 2 file(s) as 2 passage(s) into idx (0 skipped: not UTF-8 text)"
    );
    assert!(
        lines[1].starts_with("embedded 2 passage(s) (")
            && lines[1].ends_with("); vectors kept beside the index")
            && lines[1].contains(" input tokens, $0.0000"),
        "{lines:?}"
    );
    // Re-ingesting without the model would leave the vectors stale: refused.
    let out = command(setup.path())
        .args(["agent", "ingest", "docs", "--index", "idx"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--embeddings embed"), "{stderr}");

    // "refunding" is no word of the documents: only the vectors find the passage.
    let task = "How long do refunds take?\nsim-step 1: search_docs {\"query\": \"refunding\", \"limit\": 1}";
    let lines = setup.agent_json(&["run", "agent.toml", task], &store).await;
    assert_eq!(
        summary(&lines)["answer"],
        "Based on search_docs: [refunds.md #1] Refunds are issued within 14 days.."
    );
}

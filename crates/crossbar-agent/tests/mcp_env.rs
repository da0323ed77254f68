//! An MCP stdio server must not inherit the agent's environment (cloud credentials, API
//! keys): only a minimal set and what the spec names. Uses the npm
//! `@modelcontextprotocol/server-everything` (tests/mcp, installed by scripts/test with
//! `npm ci`), whose `get-env` tool returns the server's whole environment.

mod common;

use std::collections::BTreeMap;

use crossbar_agent::McpServer;
use crossbar_agent::spec::{McpSpec, McpTransport};
use serde_json::{Value, json};

/// Set (with a secret) only in the child test process that [`mcp_child_env`] runs.
const CHILD_MARKER: &str = "CROSSBAR_TEST_MCP_ENV_CHILD";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The agent's process holds AWS secrets; the MCP server it starts must not see them, only a
/// minimal environment plus what the spec names. The environment cannot be changed inside
/// this process (no `unsafe`), so the test runs its second half in a child test process
/// started with the secret set.
#[tokio::test]
async fn mcp_stdio_servers_do_not_inherit_the_agents_secrets() {
    if common::mcp_server("server-everything").is_none() {
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "mcp_child_env",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, "1")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("OPENAI_API_KEY", "sk-test-not-for-mcp")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("MCP-ENV-CHECKED"),
        "the child test did not run its checks:\n{stdout}"
    );
}

/// The half of the test above that runs in the child process; a no-op when run directly.
#[tokio::test]
async fn mcp_child_env() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    assert_eq!(std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(), SECRET);
    let script = common::mcp_server("server-everything").unwrap();
    let mut env = BTreeMap::new();
    env.insert("MCP_SERVER_TOKEN".to_owned(), "from-the-spec=1".to_owned());
    let spec = McpSpec {
        name: "everything".to_owned(),
        transport: McpTransport::Stdio {
            command: "node".to_owned(),
            args: vec![script.display().to_string(), "stdio".to_owned()],
            env,
        },
        tools: None,
        idempotent: false,
        timeout_s: 30,
    };
    let server = McpServer::start(spec).await.unwrap();
    let text = server.call("get-env", json!({}), true).await.unwrap();
    server.shutdown().await;
    let seen: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
    for secret in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "OPENAI_API_KEY",
        CHILD_MARKER,
    ] {
        assert!(
            !seen.contains_key(secret),
            "{secret} leaked to the MCP server"
        );
    }
    assert!(!text.contains(SECRET), "the secret leaked: {text}");
    assert_eq!(
        seen.get("MCP_SERVER_TOKEN"),
        Some(&json!("from-the-spec=1"))
    );
    // Exactly the minimal set (those of it this process has) plus the spec's variable.
    let mut expected: Vec<String> = crossbar_agent::tools::mcp::INHERITED_ENV
        .iter()
        .filter(|name| std::env::var_os(name).is_some())
        .map(|name| (*name).to_owned())
        .collect();
    expected.push("MCP_SERVER_TOKEN".to_owned());
    expected.sort();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected);
    assert_eq!(
        seen.get("PATH"),
        Some(&json!(std::env::var("PATH").unwrap()))
    );
    println!("MCP-ENV-CHECKED");
}

//! Real MCP servers from npm (`@modelcontextprotocol/server-filesystem` and
//! `@modelcontextprotocol/server-everything`, pinned in tests/mcp/package.json and installed by
//! scripts/test with `npm ci`): their tools listed and called by an agent over stdio and
//! streamable HTTP, and the supervisor restarting a killed stdio server and re-initializing an
//! HTTP session lost with its server.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure fails the test"
)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{CONFIG, harness};
use crossbar_agent::spec::{McpSpec, McpTransport};
use crossbar_agent::{Entry, McpServer, RunStatus};
use serde_json::json;

fn everything_stdio(script: &std::path::Path) -> McpSpec {
    McpSpec {
        name: "everything".to_owned(),
        transport: McpTransport::Stdio {
            command: "node".to_owned(),
            args: vec![script.display().to_string(), "stdio".to_owned()],
            env: Default::default(),
        },
        tools: None,
        idempotent: false,
        timeout_s: 30,
    }
}

#[tokio::test]
async fn an_agent_uses_the_filesystem_server_over_stdio() {
    let Some(script) = common::mcp_server("server-filesystem") else {
        return;
    };
    let h = harness(CONFIG).await;
    let files = h.path("files");
    std::fs::create_dir_all(&files).unwrap();
    let files = files.canonicalize().unwrap();
    let spec = format!(
        r#"
name = "archivist"
instructions = "Keep files."
[models]
default = "smart"
[[mcp]]
name = "fs"
command = "node"
args = ["{}", "{}"]
tools = ["write_file", "read_text_file", "list_directory"]
"#,
        script.display(),
        files.display()
    );
    let note = files.join("note.txt");
    let outside = h.path("journal.db");
    let task = format!(
        "File it.\nsim-step 1: write_file {}\nsim-step 2: read_text_file {}\nsim-step 2: list_directory {}\nsim-step 2: read_text_file {{}}\nsim-step 2: read_text_file {}",
        json!({"path": note, "content": "kept by MCP"}),
        json!({"path": note}),
        json!({"path": files}),
        json!({"path": outside}),
    );
    let spec = h.spec(&spec);
    let (toolbox, servers) = crossbar_agent::tools_for(&spec, &h.tool_context())
        .await
        .unwrap();
    assert_eq!(
        toolbox.names(),
        ["list_directory", "read_text_file", "write_file"],
        "only the listed tools"
    );
    let (mut agent, events) = h.agent(spec);
    agent.tools = std::sync::Arc::new(toolbox);
    let outcome = agent.run(&task).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed, "{outcome:?}");
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "kept by MCP");
    let results: Vec<(String, String, bool)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::ToolResult {
                step: 2,
                name,
                content,
                is_error,
                ..
            } => Some((name.clone(), content.clone(), *is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 4);
    assert!(
        results.contains(&("read_text_file".to_owned(), "kept by MCP".to_owned(), false)),
        "{results:?}"
    );
    assert!(
        results.contains(&(
            "list_directory".to_owned(),
            "[FILE] note.txt".to_owned(),
            false
        )),
        "{results:?}"
    );
    // The server's own schema, checked before the call: `path` is required.
    assert!(
        results
            .iter()
            .any(|(name, content, error)| name == "read_text_file"
                && *error
                && content.starts_with("Invalid arguments for `read_text_file`:")
                && content.contains("\"path\" is a required property")),
        "{results:?}"
    );
    // The server refuses a path outside its allowed directory: an error result, not a crash.
    assert!(
        results
            .iter()
            .any(|(_, content, error)| *error && content.contains("Access denied")),
        "{results:?}"
    );
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_killed_stdio_server_is_restarted_by_the_supervisor() {
    let Some(script) = common::mcp_server("server-everything") else {
        return;
    };
    let server = McpServer::start(everything_stdio(&script)).await.unwrap();
    let tools: Vec<String> = server
        .list_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        tools.contains(&"echo".to_owned()) && tools.contains(&"get-sum".to_owned()),
        "{tools:?}"
    );
    assert_eq!(
        server.call("echo", json!({"message": "one"}), true).await,
        Ok("Echo: one".to_owned())
    );
    let pid = server.pid().await.unwrap();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The transport notices the closed pipe shortly after the process dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.call("get-sum", json!({"a": 2, "b": 40}), true).await,
        Ok("The sum of 2 and 40 is 42.".to_owned())
    );
    assert_eq!(server.reconnects(), 1);
    assert_ne!(server.pid().await, Some(pid), "a new process");
    server.shutdown().await;
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `server-everything streamableHttp` on `port`, ready to serve.
async fn http_server(script: &std::path::Path, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new("node")
        .args([script.display().to_string().as_str(), "streamableHttp"])
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the MCP HTTP server did not start on port {port}");
}

#[tokio::test]
async fn an_agent_calls_tools_over_streamable_http_and_survives_a_lost_session() {
    let Some(script) = common::mcp_server("server-everything") else {
        return;
    };
    let port = free_port();
    let mut first = http_server(&script, port).await;
    let h = harness(CONFIG).await;
    let spec = h.spec(&format!(
        r#"
name = "summer"
instructions = "Add things up."
[models]
default = "smart"
[[mcp]]
name = "everything"
url = "http://127.0.0.1:{port}/mcp"
tools = ["echo", "get-sum"]
"#
    ));
    let (toolbox, servers) = crossbar_agent::tools_for(&spec, &h.tool_context())
        .await
        .unwrap();
    let (mut agent, _) = h.agent(spec);
    agent.tools = std::sync::Arc::new(toolbox);
    let task =
        "Add.\nsim-step 1: get-sum {\"a\": 19, \"b\": 23}\nsim-step 1: echo {\"message\": \"hi\"}";
    let outcome = agent.run(task).await.unwrap();
    assert_eq!(
        outcome.answer.as_deref(),
        Some("Based on get-sum: The sum of 19 and 23 is 42.; echo: Echo: hi.")
    );

    // The server goes away with its sessions; a new one takes its place.
    first.kill().await.unwrap();
    let _second = http_server(&script, port).await;
    let outcome = agent.run(task).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed);
    assert_eq!(
        outcome.answer.as_deref(),
        Some("Based on get-sum: The sum of 19 and 23 is 42.; echo: Echo: hi."),
        "the session was re-initialized"
    );
    assert!(servers[0].reconnects() >= 1);
    for server in servers {
        server.shutdown().await;
    }
}

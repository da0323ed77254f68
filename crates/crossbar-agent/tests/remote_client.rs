//! The remote `ModelClient` against a real gateway on port 0: answers with who served them and
//! what they cost, streams, embeddings, prices from `/v1/crossbar/deployments`, and the
//! gateway's errors decoded into the canonical error kinds.

mod common;

use crossbar_agent::{AgentModel, Remote, TokenPrice};
use crossbar_core::ErrorKind;
use crossbar_core::chat::{ChatRequest, Message, Role, StreamEvent};
use crossbar_core::client::ModelClient;
use crossbar_core::embeddings::{EmbeddingInput, EmbeddingRequest};
use crossbar_testkit::gateway::TestGateway;
use futures::StreamExt;
use secrecy::SecretString;

const CONFIG: &str = concat!(
    r#"
[server]
api_keys = ["sk-remote-test"]
"#,
    crossbar_testkit::sim_openai!(),
    r#"
[[models]]
name = "smart"
deployments = [{ provider = "sim-openai", target = "gpt-4o", price = { input = 2.5, output = 10.0 } }]

[[models]]
name = "embed"
deployments = [{ provider = "sim-openai", target = "text-embedding-3-small", price = { input = 0.02, output = 0.0 } }]

[store]
enabled = false
"#
);

#[tokio::test]
async fn the_remote_client_speaks_openai_to_a_gateway() {
    let gateway = TestGateway::start(CONFIG).await;
    let url = format!("{}/v1", gateway.url);
    let client = Remote::new(&url, Some(SecretString::from("sk-remote-test"))).unwrap();

    let request = ChatRequest::new("smart", vec![Message::text(Role::User, "hello there")]);
    let answer = client.complete(request.clone()).await.unwrap();
    assert_eq!(
        answer.response.message.text_content(),
        "You said: hello there"
    );
    assert_eq!(answer.provider.as_deref(), Some("sim-openai"));
    assert_eq!(answer.deployment.as_deref(), Some("smart@sim-openai"));
    let usage = answer.response.usage.unwrap();
    // The gateway's header read exactly: $2.50 and $10 per million are 2,500,000 and
    // 10,000,000 picodollars a token.
    let expected = usage.input_tokens * 2_500_000 + usage.output_tokens * 10_000_000;
    assert_eq!(answer.cost_pico, expected);

    let mut stream = client.chat_stream(request).await.unwrap();
    let mut text = String::new();
    let mut finished = false;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            StreamEvent::TextDelta(delta) => text.push_str(&delta),
            StreamEvent::Finish { .. } => finished = true,
            _ => {}
        }
    }
    assert_eq!(text, "You said: hello there");
    assert!(finished);

    let embedded = client
        .embed(EmbeddingRequest {
            model: "embed".to_owned(),
            input: EmbeddingInput::Texts(vec!["a".to_owned(), "b".to_owned()]),
            dimensions: Some(8),
            user: None,
        })
        .await
        .unwrap();
    assert_eq!(embedded.vectors.len(), 2);
    assert_eq!(embedded.vectors[0].len(), 8);
    let (priced, cost) = client
        .embed_priced(EmbeddingRequest {
            model: "embed".to_owned(),
            input: EmbeddingInput::Texts(vec!["hello".to_owned()]),
            dimensions: None,
            user: None,
        })
        .await
        .unwrap();
    // $0.02 per million: 20,000 picodollars a token, read exactly from the header.
    assert!(priced.input_tokens > 0);
    assert_eq!(cost, priced.input_tokens * 20_000);

    assert_eq!(
        client.price("smart").await.unwrap(),
        Some(TokenPrice {
            input: 2.5,
            output: 10.0
        })
    );

    let unknown = ChatRequest::new("nope", vec![Message::text(Role::User, "hi")]);
    let error = client.complete(unknown).await.unwrap_err();
    // The gateway is this client's upstream: its 404 keeps its status and code.
    assert_eq!(error.kind, ErrorKind::UpstreamRejected, "{error:?}");
    assert_eq!(error.upstream_status, Some(404));
    assert_eq!(error.code.as_deref(), Some("model_not_found"));

    let anonymous = Remote::new(&url, None).unwrap();
    let request = ChatRequest::new("smart", vec![Message::text(Role::User, "hi")]);
    let error = anonymous.complete(request.clone()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Authentication, "{error:?}");
    assert!(!error.message.contains("sk-remote-test"));

    let nowhere = Remote::new("http://127.0.0.1:9", None).unwrap();
    let error = nowhere.complete(request).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::UpstreamConnect, "{error:?}");
    assert!(Remote::new("ftp://x", None).is_err());
}

/// A plain OpenAI-compatible endpoint (no Crossbar headers), recording each `traceparent`.
#[tokio::test]
async fn each_step_sends_the_runs_traceparent_to_the_gateway() {
    use std::sync::{Arc, Mutex};

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let sink = Arc::clone(&sink);
            async move {
                if let Some(value) = headers.get("traceparent") {
                    sink.lock()
                        .unwrap()
                        .push(value.to_str().unwrap().to_owned());
                }
                axum::Json(serde_json::json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "done"}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let h = common::harness(common::CONFIG).await;
    let (mut agent, events) =
        h.agent(h.spec("name = \"a\"\ninstructions = \"x\"\n[models]\ndefault = \"m\"\n"));
    agent.model = Arc::new(Remote::new(&url, None).unwrap());
    let outcome = agent.run("hi").await.unwrap();
    assert_eq!(outcome.answer.as_deref(), Some("done"));
    assert_eq!(outcome.totals.cost_pusd, 0, "no price is known for `m`");
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent, [crossbar_agent::run::traceparent(&outcome.run_id, 1)]);
    let trace = crossbar_agent::run::trace_id(&outcome.run_id);
    assert!(sent[0].starts_with(&format!("00-{trace}-")));
    assert_eq!(sent[0].len(), 55);
    let started = events.lock().unwrap()[0].entry.clone();
    let crossbar_agent::Entry::Started { trace_id, .. } = started else {
        panic!("{started:?}")
    };
    assert_eq!(trace_id, Some(trace));
}

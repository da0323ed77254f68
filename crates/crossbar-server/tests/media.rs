//! Documents (PDF) and audio end to end: from each ingress dialect through the gateway to each
//! simulated upstream, which checks them as the real service does. What reaches the upstream is
//! asserted exactly; a deployment that cannot read a part refuses it as `Unsupported`, so a
//! model served only there answers the client with that refusal.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: an unexpected response fails the test"
)]

mod common;

use common::{TestGateway, error_of, start};
use serde_json::{Value, json};

/// `%PDF-1.4` and a newline.
const PDF: &str = "JVBERi0xLjQK";
/// A RIFF header.
const WAV: &str = "UklGRiQAAABXQVZF";

const CONFIG: &str = r#"
[[providers]]
name = "anthropic"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"

[[providers]]
name = "bedrock"
kind = "sim"
dialect = "bedrock"
region = "us-east-1"
aws = { access_key_id = "AKIDEXAMPLE", secret_access_key = "secret" }

[[providers]]
name = "gemini"
kind = "sim"
dialect = "gemini"
api_key = "k"

[[providers]]
name = "openai"
kind = "sim"
dialect = "openai"

[[providers]]
name = "responses"
kind = "sim"
dialect = "openai"
api = "responses"

[[providers]]
name = "vertex"
kind = "sim"
dialect = "vertex"
project = "proj-1"
location = "us-central1"

[[models]]
name = "titan"
deployments = [{ provider = "bedrock", target = "amazon.titan-embed-text-v2:0" }]

[[models]]
name = "cohere"
deployments = [{ provider = "bedrock", target = "cohere.embed-english-v3" }]

[[models]]
name = "vertex-embed"
deployments = [{ provider = "vertex", target = "text-embedding-005" }]

[[models]]
name = "on-anthropic"
deployments = [{ provider = "anthropic", target = "claude-sonnet-4-5" }]

[[models]]
name = "on-bedrock"
deployments = [{ provider = "bedrock", target = "amazon.nova-pro-v1:0" }]

[[models]]
name = "on-gemini"
deployments = [{ provider = "gemini", target = "gemini-2.5-flash" }]

[[models]]
name = "on-openai"
deployments = [{ provider = "openai", target = "gpt-4o-audio-preview" }]

[[models]]
name = "on-responses"
deployments = [{ provider = "responses", target = "gpt-5" }]
"#;

fn pdf_url() -> String {
    format!("data:application/pdf;base64,{PDF}")
}

/// An OpenAI Chat request asking about one attachment.
fn chat_with(model: &str, part: Value) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarize."}, part]}]})
}

fn chat_pdf(model: &str) -> Value {
    chat_with(
        model,
        json!({"type": "file", "file": {"filename": "Q3 report.pdf", "file_data": pdf_url()}}),
    )
}

fn chat_audio(model: &str) -> Value {
    chat_with(
        model,
        json!({"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}}),
    )
}

/// Posts, asserts a 200, and returns the answer with the body the upstream last received.
async fn through(gw: &TestGateway, path: &str, body: &Value, provider: &str) -> (Value, Value) {
    let response = gw.post(path, body).await;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let sent = gw.requests(provider).pop().unwrap().body.unwrap();
    (answer, sent)
}

#[tokio::test]
async fn a_pdf_through_openai_chat_reaches_claude_as_a_document_block() {
    let gw = start(CONFIG).await;
    let (answer, sent) = through(
        &gw,
        "/v1/chat/completions",
        &chat_pdf("on-anthropic"),
        "anthropic",
    )
    .await;
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "Summarize."},
            {"type": "document", "title": "Q3 report.pdf",
             "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}])
    );
    assert_eq!(answer["object"], "chat.completion");
}

#[tokio::test]
async fn a_pdf_through_openai_chat_reaches_bedrock_as_a_named_document() {
    let gw = start(CONFIG).await;
    let (_, sent) = through(
        &gw,
        "/v1/chat/completions",
        &chat_pdf("on-bedrock"),
        "bedrock",
    )
    .await;
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [
            {"text": "Summarize."},
            {"document": {"format": "pdf", "name": "Q3 report", "source": {"bytes": PDF}}}]}])
    );
}

#[tokio::test]
async fn a_pdf_through_openai_chat_reaches_gemini_inline() {
    let gw = start(CONFIG).await;
    let (_, sent) = through(
        &gw,
        "/v1/chat/completions",
        &chat_pdf("on-gemini"),
        "gemini",
    )
    .await;
    assert_eq!(
        sent["contents"],
        json!([{"role": "user", "parts": [
            {"text": "Summarize."},
            {"inlineData": {"mimeType": "application/pdf", "data": PDF}}]}])
    );
}

#[tokio::test]
async fn a_pdf_through_messages_reaches_openai_responses_as_an_input_file() {
    let gw = start(CONFIG).await;
    let body = json!({"model": "on-responses", "max_tokens": 256, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarize."},
        {"type": "document", "title": "Q3 report.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]});
    let (answer, sent) = through(&gw, "/v1/messages", &body, "responses").await;
    assert_eq!(
        sent["input"],
        json!([{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Summarize."},
            {"type": "input_file", "filename": "Q3 report.pdf", "file_data": pdf_url()}]}])
    );
    assert_eq!(answer["type"], "message");
}

#[tokio::test]
async fn audio_reaches_openai_and_gemini() {
    let gw = start(CONFIG).await;
    let (_, sent) = through(
        &gw,
        "/v1/chat/completions",
        &chat_audio("on-openai"),
        "openai",
    )
    .await;
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}})
    );
    let (_, sent) = through(
        &gw,
        "/v1/chat/completions",
        &chat_audio("on-gemini"),
        "gemini",
    )
    .await;
    assert_eq!(
        sent["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "audio/wav", "data": WAV}})
    );
}

#[tokio::test]
async fn audio_is_refused_where_the_provider_has_none() {
    let gw = start(CONFIG).await;
    for (model, provider, message) in [
        (
            "on-anthropic",
            "anthropic",
            "Claude takes no audio input: this model's deployment cannot read the request's audio.",
        ),
        (
            "on-bedrock",
            "bedrock",
            "Bedrock Converse deployments take no audio input through this gateway: this \
             model's deployment cannot read the request's audio.",
        ),
        (
            "on-responses",
            "responses",
            "The Responses API takes no audio input: this model's deployment cannot read the \
             request's audio.",
        ),
    ] {
        let response = gw.post("/v1/chat/completions", &chat_audio(model)).await;
        assert_eq!(
            error_of(response).await,
            (
                400,
                json!({"error": {"code": null, "message": message,
                                 "param": "messages[0].content[1]",
                                 "type": "invalid_request_error"}})
            ),
            "{model}"
        );
        assert!(gw.requests(provider).is_empty(), "{model}: nothing sent");
    }
}

#[tokio::test]
async fn routing_skips_a_deployment_that_cannot_hear_audio() {
    // Tried in config order, the Claude deployment first.
    let config = format!(
        "{CONFIG}\n[routes.mixed]\nobjective = \"order\"\n\n[[models]]\nname = \"mixed\"\n\
         deployments = [\n  {{ provider = \"anthropic\", target = \"claude-sonnet-4-5\" }},\n  \
         {{ provider = \"openai\", target = \"gpt-4o-audio-preview\" }},\n]\n"
    );
    let gw = start(&config).await;
    let (_, sent) = through(&gw, "/v1/chat/completions", &chat_audio("mixed"), "openai").await;
    assert_eq!(
        sent["messages"][0]["content"][1]["input_audio"]["format"],
        "wav"
    );
    assert!(gw.requests("anthropic").is_empty());
}

#[tokio::test]
async fn a_document_alone_through_messages_gets_bedrocks_text_block() {
    let gw = start(CONFIG).await;
    let body = json!({"model": "on-bedrock", "max_tokens": 256, "messages": [{"role": "user", "content": [
        {"type": "document",
         "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]});
    let (_, sent) = through(&gw, "/v1/messages", &body, "bedrock").await;
    assert_eq!(
        sent["messages"][0]["content"],
        json!([{"document": {"format": "pdf", "name": "document", "source": {"bytes": PDF}}},
               {"text": "(document attached)"}])
    );
}

/// The simulator's own answer to `body` at `path`, asked directly with the gateway's SigV4
/// scope where it needs one.
async fn directly(gw: &TestGateway, provider: &str, path: &str, body: &Value) -> Value {
    let url = format!("{}{path}", gw.sim(provider).base_url());
    let response = crossbar_testkit::providers::post_signed(&url, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn embeddings_on_bedrock_titan_and_cohere_and_on_vertex() {
    let gw = start(CONFIG).await;
    let embed = |model: &str, input: Value, dimensions: Option<u32>| {
        let mut body = json!({"model": model, "input": input});
        if let Some(dimensions) = dimensions {
            body["dimensions"] = json!(dimensions);
        }
        body
    };
    let vectors = |answer: &Value| -> Vec<Value> {
        answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["embedding"].clone())
            .collect()
    };

    // Titan: one text; the vector and the token count the model reports.
    let (answer, sent) = through(
        &gw,
        "/v1/embeddings",
        &embed("titan", json!("refund policy"), Some(256)),
        "bedrock",
    )
    .await;
    assert_eq!(
        sent,
        json!({"inputText": "refund policy", "dimensions": 256})
    );
    let direct = directly(
        &gw,
        "bedrock",
        "/model/amazon.titan-embed-text-v2%3A0/invoke",
        &sent,
    )
    .await;
    assert_eq!(vectors(&answer), vec![direct["embedding"].clone()]);
    assert_eq!(answer["model"], "amazon.titan-embed-text-v2:0");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": direct["inputTextTokenCount"], "total_tokens": direct["inputTextTokenCount"]})
    );

    // Cohere: several texts as documents; its body counts no tokens, so the gateway estimates.
    let (answer, sent) = through(
        &gw,
        "/v1/embeddings",
        &embed("cohere", json!(["refund policy", "shipping times"]), None),
        "bedrock",
    )
    .await;
    assert_eq!(
        sent,
        json!({"texts": ["refund policy", "shipping times"], "input_type": "search_document"})
    );
    let direct = directly(
        &gw,
        "bedrock",
        "/model/cohere.embed-english-v3/invoke",
        &sent,
    )
    .await;
    assert_eq!(
        vectors(&answer),
        direct["embeddings"].as_array().unwrap().clone()
    );
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 8, "total_tokens": 8})
    );

    // Vertex: `:predict`, the token counts summed.
    let (answer, sent) = through(
        &gw,
        "/v1/embeddings",
        &embed(
            "vertex-embed",
            json!(["refund policy", "shipping times"]),
            Some(64),
        ),
        "vertex",
    )
    .await;
    assert_eq!(
        sent,
        json!({"instances": [{"content": "refund policy"}, {"content": "shipping times"}],
               "parameters": {"outputDimensionality": 64}})
    );
    let direct = directly(
        &gw,
        "vertex",
        "/projects/proj-1/locations/us-central1/publishers/google/models/text-embedding-005:predict",
        &sent,
    )
    .await;
    let predicted: Vec<Value> = direct["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["embeddings"]["values"].clone())
        .collect();
    assert_eq!(vectors(&answer), predicted);
    let tokens: u64 = direct["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["embeddings"]["statistics"]["token_count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": tokens, "total_tokens": tokens})
    );
}

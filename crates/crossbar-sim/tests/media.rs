//! Documents and audio in each simulator over real HTTP: accepted where the real service takes
//! them (each counted as an attachment of 85 prompt tokens), refused with the service's status
//! and words where it does not (bad base64, a type it does not read, Bedrock's document names
//! and its text-beside-documents rule).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: an unexpected response fails the test"
)]

mod common;

use common::{chat_url, post_json, start};
use crossbar_sim::{SimConfig, SimDialect};
use crossbar_testkit::providers::post_signed;
use serde_json::{Value, json};

/// `%PDF-1.4` and a newline.
const PDF: &str = "JVBERi0xLjQK";
/// A RIFF header.
const WAV: &str = "UklGRiQAAABXQVZF";
/// What one attachment adds to the prompt.
const ATTACHMENT_TOKENS: u64 = 85;

fn pdf_url() -> String {
    format!("data:application/pdf;base64,{PDF}")
}

fn openai_chat(parts: Value) -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": parts}]})
}

#[tokio::test]
async fn openai_chat_reads_pdf_files_and_audio() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = chat_url(&server);
    let text = json!({"type": "text", "text": "Summarize."});
    let (status, plain) = post_json(&url, &openai_chat(json!([text]))).await;
    assert_eq!(status, 200, "{plain}");
    let file = json!({"type": "file", "file": {"filename": "a.pdf", "file_data": pdf_url()}});
    let (status, with_file) = post_json(&url, &openai_chat(json!([text, file]))).await;
    assert_eq!(status, 200, "{with_file}");
    let prompt = |v: &Value| v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(prompt(&with_file), prompt(&plain) + ATTACHMENT_TOKENS);
    let audio = json!({"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}});
    let (status, with_audio) = post_json(&url, &openai_chat(json!([text, audio]))).await;
    assert_eq!(status, 200, "{with_audio}");
    assert_eq!(prompt(&with_audio), prompt(&plain) + ATTACHMENT_TOKENS);
}

#[tokio::test]
async fn openai_chat_refuses_bad_file_data_in_the_apis_words() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = chat_url(&server);
    let refused = |file_data: &str| {
        openai_chat(json!([{"type": "file", "file": {"filename": "a", "file_data": file_data}}]))
    };
    let expected = "Expected a base64-encoded data URL with an application/pdf MIME type (e.g. \
                    'data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ==')";
    for (file_data, got) in [
        (
            "data:application/pdf;base64,%%%".to_owned(),
            "but got an invalid base64-encoded value",
        ),
        (PDF.to_owned(), "but got an invalid base64-encoded value"),
        (
            format!("data:text/markdown;base64,{PDF}"),
            "but got unsupported MIME type 'text/markdown'",
        ),
    ] {
        let (status, body) = post_json(&url, &refused(&file_data)).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"],
            json!({
                "message": format!(
                    "Invalid file data: 'messages[0].content[0].file.file_data'. {expected}, {got}."
                ),
                "type": "invalid_request_error",
                "param": "messages[0].content[0].file.file_data",
                "code": "invalid_value"
            })
        );
    }
    // Inline data needs its filename.
    let (status, body) = post_json(
        &url,
        &openai_chat(json!([{"type": "file", "file": {"file_data": pdf_url()}}])),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["param"],
        "messages[0].content[0].file.file_id"
    );
}

#[tokio::test]
async fn responses_reads_input_files_and_refuses_bad_data() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = format!("{}/responses", server.base_url());
    let body = |file: Value| {
        json!({"model": "gpt-5", "store": false, "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "Summarize."}, file]}]})
    };
    let file = json!({"type": "input_file", "filename": "a.pdf", "file_data": pdf_url()});
    let (status, answer) = post_json(&url, &body(file)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post_json(
        &url,
        &body(json!({"type": "input_file", "filename": "a.pdf", "file_data": PDF})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"],
        json!({"message": "Invalid 'input[0].content[1].file_data'.",
               "type": "invalid_request_error", "param": "input[0].content[1].file_data",
               "code": "invalid_value"})
    );
    let (status, answer) = post_json(
        &url,
        &body(json!({"type": "input_file", "file_data": "data:application/pdf;base64,!!"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"]["message"],
        "Invalid file data: 'input[0].content[1].file_data'. Expected a base64-encoded data URL \
         with a valid file MIME type (e.g. 'data:text/plain;base64,SGVsbG8sIFdvcmxkIQ=='), but \
         got an invalid base64-encoded value. Please see \
         https://platform.openai.com/docs/assistants/tools/file-search#supported-files for \
         supported file types."
    );
}

async fn anthropic(body: &Value) -> (u16, Value) {
    let server = start(SimDialect::Anthropic, SimConfig::default()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn messages(document: Value) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user",
           "content": [{"type": "text", "text": "Summarize."}, document]}]})
}

fn base64_document(media_type: &str, data: &str) -> Value {
    json!({"type": "document", "title": "a",
           "source": {"type": "base64", "media_type": media_type, "data": data}})
}

#[tokio::test]
async fn anthropic_reads_pdf_documents_and_refuses_others() {
    let (status, answer) = anthropic(&messages(base64_document("application/pdf", PDF))).await;
    assert_eq!(status, 200, "{answer}");
    let refused = |message: &str| {
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": message},
               "request_id": "req_sim"})
    };
    assert_eq!(
        anthropic(&messages(base64_document("text/csv", PDF))).await,
        (
            400,
            refused(
                "messages.0.content.1.document.source.base64.media_type: Input should be \
                 'application/pdf'"
            )
        )
    );
    // Base64 of something that is no PDF.
    assert_eq!(
        anthropic(&messages(base64_document("application/pdf", "aGVsbG8="))).await,
        (
            400,
            refused(
                "messages.0.content.1.pdf.source.base64.data: The PDF specified was not valid."
            )
        )
    );
}

async fn converse(body: &Value) -> (u16, String, Value) {
    let server = start(SimDialect::Bedrock, SimConfig::default()).await;
    let url = format!(
        "{}/model/amazon.nova-pro-v1%3A0/converse",
        server.base_url()
    );
    let response = post_signed(&url, body).await;
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("x-amzn-errortype")
        .map(|k| k.to_str().unwrap().split(':').next().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.json().await.unwrap())
}

fn converse_body(content: Value) -> Value {
    json!({"messages": [{"role": "user", "content": content}]})
}

fn bedrock_document(name: &str, data: &str) -> Value {
    json!({"document": {"format": "pdf", "name": name, "source": {"bytes": data}}})
}

#[tokio::test]
async fn bedrock_reads_named_documents_beside_text() {
    let text = json!({"text": "Summarize."});
    let (status, _, plain) = converse(&converse_body(json!([text]))).await;
    assert_eq!(status, 200, "{plain}");
    let (status, _, answer) = converse(&converse_body(json!([
        text,
        bedrock_document("Q3 report (final) [v2]_x", PDF)
    ])))
    .await;
    assert_eq!(status, 200, "{answer}");
    let input = |v: &Value| v["usage"]["inputTokens"].as_u64().unwrap();
    assert_eq!(input(&answer), input(&plain) + ATTACHMENT_TOKENS);
}

#[tokio::test]
async fn bedrock_refuses_documents_as_the_service_does() {
    let text = json!({"text": "Summarize."});
    let validation = |message: &str| (400, "ValidationException".to_owned(), message.to_owned());
    let refused = |(status, kind, body): (u16, String, Value)| {
        (status, kind, body["message"].as_str().unwrap().to_owned())
    };
    let name_rule = "The document file name can only contain alphanumeric characters, \
                     whitespace characters, hyphens, parentheses, and square brackets. The name \
                     can't contain more than one consecutive whitespace character. Check that \
                     the file name conforms to these restrictions and retry your request.";
    for name in ["report.pdf", "a  b", "John's"] {
        assert_eq!(
            refused(converse(&converse_body(json!([text, bedrock_document(name, PDF)]))).await),
            validation(name_rule),
            "{name}"
        );
    }
    assert_eq!(
        refused(converse(&converse_body(json!([bedrock_document("a", PDF)]))).await),
        validation(
            "A text block must be included when using documents. Add a text block and retry \
             your request."
        )
    );
    assert_eq!(
        refused(converse(&converse_body(json!([text, bedrock_document("a", "%%")]))).await).2,
        "Malformed input request: messages.0.content.1.document.source.bytes: invalid base64 \
         blob, please reformat your input and try again."
    );
    let zip = json!({"document": {"format": "zip", "name": "a", "source": {"bytes": PDF}}});
    assert_eq!(
        refused(converse(&converse_body(json!([text, zip]))).await),
        validation(
            "1 validation error detected: Value 'zip' at \
             'messages.1.member.content.2.member.document.format' failed to satisfy constraint: \
             Member must satisfy enum value set: [pdf, csv, doc, docx, xls, xlsx, html, txt, md]"
        )
    );
}

async fn generate(dialect: SimDialect, part: Value) -> (u16, Value) {
    let server = start(dialect, SimConfig::default()).await;
    let url = match dialect {
        SimDialect::Vertex => format!(
            "{}/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
            server.base_url()
        ),
        _ => format!(
            "{}/models/gemini-2.5-flash:generateContent",
            server.base_url()
        ),
    };
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Summarize."}, part]}]});
    post_json(&url, &body).await
}

#[tokio::test]
async fn gemini_reads_inline_pdfs_and_audio_and_refuses_bad_blobs() {
    for dialect in [SimDialect::Gemini, SimDialect::Vertex] {
        for (mime_type, data) in [("application/pdf", PDF), ("audio/wav", WAV)] {
            let part = json!({"inlineData": {"mimeType": mime_type, "data": data}});
            let (status, answer) = generate(dialect, part).await;
            assert_eq!(status, 200, "{answer}");
        }
        let part = json!({"inlineData": {"mimeType": "application/pdf", "data": "%%"}});
        let (status, answer) = generate(dialect, part).await;
        assert_eq!(status, 400);
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(
            answer["error"]["message"],
            "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), Base64 \
             decoding failed for \"%%\""
        );
        let part = json!({"inlineData": {"mimeType": "application/zip", "data": PDF}});
        let (status, answer) = generate(dialect, part).await;
        assert_eq!(status, 400);
        assert_eq!(
            answer["error"]["message"],
            "Unsupported MIME type: application/zip"
        );
    }
}

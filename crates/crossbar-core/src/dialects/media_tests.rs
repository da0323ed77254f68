//! Documents (PDF) and audio through every dialect: decoded from each ingress into the canonical
//! parts, encoded to each upstream exactly, and refused as `Unsupported` where an upstream has
//! no such input.

use serde_json::{Value, json};

use super::anthropic::AnthropicEgress;
use super::bedrock::BedrockEgress;
use super::gemini::{GeminiApi, GeminiEgress};
use super::responses::ResponsesEgress;
use super::{Egress, OpenAiEgress};
use crate::chat::{ChatRequest, ContentPart, Message, Role};
use crate::error::{Error, ErrorKind};

/// `%PDF-1.4` and a newline: a document's first bytes, as base64.
const PDF_DATA: &str = "JVBERi0xLjQK";
/// A RIFF header: a WAV file's first bytes, as base64.
const WAV_DATA: &str = "UklGRiQAAABXQVZF";

fn pdf_part() -> ContentPart {
    ContentPart::Document {
        media_type: "application/pdf".into(),
        data: PDF_DATA.into(),
        filename: Some("report.pdf".into()),
    }
}

fn audio_part() -> ContentPart {
    ContentPart::Audio {
        format: "wav".into(),
        data: WAV_DATA.into(),
    }
}

fn request_with(part: ContentPart) -> ChatRequest {
    let message = Message::new(Role::User, vec![ContentPart::text("Summarize."), part]);
    ChatRequest::new("m", vec![message])
}

fn body(egress: &dyn Egress, request: &ChatRequest, target: &str) -> Result<Value, Error> {
    let bytes = egress.chat_body(request, target)?;
    Ok(serde_json::from_slice(&bytes).unwrap())
}

fn gemini() -> GeminiEgress {
    GeminiEgress {
        api: GeminiApi::Gemini,
    }
}

fn anthropic() -> AnthropicEgress {
    AnthropicEgress {
        vertex: None,
        foundry: false,
    }
}

fn responses() -> ResponsesEgress {
    ResponsesEgress {
        azure_api_version: None,
    }
}

/// A Chat Completions request as the gateway decodes it.
fn openai_chat(client: &Value) -> ChatRequest {
    super::openai::decode_chat_request(client.to_string().as_bytes())
        .unwrap()
        .request
}

/// `client`'s second part of its first message decodes to `part`, and the messages go upstream
/// to `target` as they came.
fn openai_round_trip(client: &Value, part: ContentPart, target: &str) {
    let request = openai_chat(client);
    assert_eq!(request.messages[0].content[1], part);
    let upstream = body(&OpenAiEgress::default(), &request, target).unwrap();
    assert_eq!(upstream["messages"], client["messages"]);
}

#[test]
fn openai_chat_file_parts_decode_to_a_document_and_back() {
    let client = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarize."},
        {"type": "file", "file": {"filename": "report.pdf",
                                  "file_data": format!("data:application/pdf;base64,{PDF_DATA}")}}
    ]}]});
    openai_round_trip(&client, pdf_part(), "gpt-5");
}

#[test]
fn openai_chat_file_data_without_a_data_url_is_a_pdf() {
    let client = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": PDF_DATA}}
    ]}]});
    let request = openai_chat(&client);
    assert_eq!(
        request.messages[0].content[0],
        ContentPart::Document {
            media_type: "application/pdf".into(),
            data: PDF_DATA.into(),
            filename: None,
        }
    );
    // OpenAI requires a filename beside file_data: one is made up.
    let upstream = body(&OpenAiEgress::default(), &request, "gpt-5").unwrap();
    assert_eq!(
        upstream["messages"][0]["content"][0],
        json!({"type": "file", "file": {"filename": "document.pdf",
               "file_data": format!("data:application/pdf;base64,{PDF_DATA}")}})
    );
}

#[test]
fn openai_chat_refuses_file_ids_and_bad_parts_by_name() {
    let refused = |part: Value| {
        let client = json!({"model": "m", "messages": [{"role": "user", "content": [part]}]});
        let error = super::openai::decode_chat_request(client.to_string().as_bytes()).unwrap_err();
        (error.kind, error.param.unwrap_or_default(), error.message)
    };
    assert_eq!(
        refused(json!({"type": "file", "file": {"file_id": "file-abc"}})),
        (
            ErrorKind::InvalidRequest,
            "messages[0].content[0].file.file_id".to_owned(),
            "Uploaded files (file_id) are not supported by this gateway: send the document \
             inline as file_data (data:application/pdf;base64,...)."
                .to_owned()
        )
    );
    assert_eq!(
        refused(json!({"type": "input_audio", "input_audio": {"data": WAV_DATA, "format": "ogg"}})),
        (
            ErrorKind::InvalidRequest,
            "messages[0].content[0].input_audio.format".to_owned(),
            "Invalid value: 'ogg'. Supported values are: 'wav' and 'mp3'.".to_owned()
        )
    );
    assert_eq!(
        refused(json!({"type": "file", "file": {"file_data": "data:application/pdf,abc"}})),
        (
            ErrorKind::InvalidRequest,
            "messages[0].content[0].file.file_data".to_owned(),
            "Invalid file data URL: expected 'data:application/pdf;base64,<data>'.".to_owned()
        )
    );
}

#[test]
fn openai_chat_audio_decodes_and_round_trips() {
    let client = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarize."},
        {"type": "input_audio", "input_audio": {"data": WAV_DATA, "format": "wav"}}
    ]}]});
    openai_round_trip(&client, audio_part(), "gpt-4o-audio-preview");
}

#[test]
fn responses_input_file_decodes_and_round_trips() {
    let client = json!({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "Summarize."},
        {"type": "input_file", "filename": "report.pdf",
         "file_data": format!("data:application/pdf;base64,{PDF_DATA}")}
    ]}]});
    let decoded = super::responses::decode_request(client.to_string().as_bytes()).unwrap();
    assert_eq!(decoded.input[0].content[1], pdf_part());
    let upstream = body(&responses(), &request_with(pdf_part()), "gpt-5").unwrap();
    assert_eq!(
        upstream["input"],
        json!([{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Summarize."},
            {"type": "input_file", "filename": "report.pdf",
             "file_data": format!("data:application/pdf;base64,{PDF_DATA}")}
        ]}])
    );
}

#[test]
fn responses_refuses_file_ids_urls_and_audio() {
    let refused = |part: Value| {
        let client = json!({"model": "m", "input": [{"role": "user", "content": [part]}]});
        let error = super::responses::decode_request(client.to_string().as_bytes()).unwrap_err();
        (error.param.unwrap_or_default(), error.message)
    };
    assert_eq!(
        refused(json!({"type": "input_file", "file_id": "file-abc"})),
        (
            "input[0].content[0].file_id".to_owned(),
            "Uploaded files (file_id) are not supported by this gateway: send the document \
             inline as file_data (data:application/pdf;base64,...)."
                .to_owned()
        )
    );
    assert_eq!(
        refused(json!({"type": "input_file", "file_url": "https://example.com/a.pdf"})),
        (
            "input[0].content[0].file_url".to_owned(),
            "Files by URL is not supported by this gateway.".to_owned()
        )
    );
    let error = audio_refused(&responses(), "gpt-5");
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(
        error.message,
        "The Responses API takes no audio input: this model's deployment cannot read the \
         request's audio."
    );
}

#[test]
fn anthropic_document_blocks_decode_and_round_trip() {
    let client = json!({"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarize."},
        {"type": "document", "title": "report.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_DATA}}
    ]}]});
    let request = super::anthropic::decode_request(client.to_string().as_bytes())
        .unwrap()
        .request;
    assert_eq!(request.messages[0].content[1], pdf_part());
    let upstream = body(&anthropic(), &request, "claude-sonnet-4-5").unwrap();
    assert_eq!(upstream["messages"], client["messages"]);
}

#[test]
fn anthropic_refuses_other_document_sources_and_audio() {
    let client = json!({"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    ]}]});
    let error = super::anthropic::decode_request(client.to_string().as_bytes()).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("messages.0.content.0.source"));
    assert_eq!(
        error.message,
        "messages.0.content.0.source: this gateway takes documents as base64 PDF sources only \
         (type \"base64\", media_type \"application/pdf\")."
    );
    let error = audio_refused(&anthropic(), "claude-sonnet-4-5");
    assert_eq!(
        error.message,
        "Claude takes no audio input: this model's deployment cannot read the request's audio."
    );
    let csv = ContentPart::Document {
        media_type: "text/csv".into(),
        data: "YSxiCg==".into(),
        filename: None,
    };
    let error = body(&anthropic(), &request_with(csv), "claude-sonnet-4-5").unwrap_err();
    assert_eq!(
        error.message,
        "Claude reads documents of type application/pdf, not 'text/csv'."
    );
}

/// `egress` refuses the audio part for `target` as another deployment's to serve: the error.
fn audio_refused(egress: &dyn Egress, target: &str) -> Error {
    let error = body(egress, &request_with(audio_part()), target).unwrap_err();
    assert_eq!(
        error.clone().unsupported_here().kind,
        ErrorKind::Unsupported
    );
    assert_eq!(error.param.as_deref(), Some("messages[0].content[1]"));
    error
}

/// The Converse body of a user message with `part` for Nova, or why it is refused.
fn to_nova(part: ContentPart) -> Result<Value, Error> {
    body(&BedrockEgress, &request_with(part), "amazon.nova-pro-v1:0")
}

#[test]
fn bedrock_document_blocks_are_named_as_converse_requires() {
    let upstream = to_nova(pdf_part()).unwrap();
    assert_eq!(
        upstream["messages"][0]["content"],
        json!([{"text": "Summarize."},
               {"document": {"format": "pdf", "name": "report", "source": {"bytes": PDF_DATA}}}])
    );
    use super::bedrock::document_name;
    assert_eq!(document_name(None), "document");
    assert_eq!(
        document_name(Some("Q3 report (final).v2.pdf")),
        "Q3 report (final)-v2"
    );
    assert_eq!(document_name(Some("a  b\t\tc_d.pdf")), "a b c-d");
    assert_eq!(document_name(Some("...")), "--");
    assert_eq!(document_name(Some(".pdf")), "-pdf");
    assert_eq!(document_name(Some(&"x".repeat(300))).len(), 200);
}

#[test]
fn bedrock_refuses_audio_and_unknown_document_types() {
    let error = audio_refused(&BedrockEgress, "amazon.nova-pro-v1:0");
    assert_eq!(
        error.message,
        "Bedrock Converse deployments take no audio input through this gateway: this model's \
         deployment cannot read the request's audio."
    );
    let zip = ContentPart::Document {
        media_type: "application/zip".into(),
        data: "UEsDBA==".into(),
        filename: None,
    };
    let error = to_nova(zip).unwrap_err();
    assert_eq!(
        error.message,
        "Bedrock reads documents of type pdf, csv, doc, docx, xls, xlsx, html, txt or md, not \
         'application/zip'."
    );
}

#[test]
fn gemini_takes_documents_and_audio_inline() {
    let upstream = body(&gemini(), &request_with(pdf_part()), "gemini-2.5-flash").unwrap();
    assert_eq!(
        upstream["contents"][0]["parts"],
        json!([{"text": "Summarize."},
               {"inlineData": {"mimeType": "application/pdf", "data": PDF_DATA}}])
    );
    let upstream = body(&gemini(), &request_with(audio_part()), "gemini-2.5-flash").unwrap();
    assert_eq!(
        upstream["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "audio/wav", "data": WAV_DATA}})
    );
}

#[test]
fn bedrock_adds_a_text_block_beside_documents_alone() {
    let message = Message::new(Role::User, vec![pdf_part()]);
    let request = ChatRequest::new("m", vec![message]);
    let upstream = body(&BedrockEgress, &request, "amazon.nova-pro-v1:0").unwrap();
    assert_eq!(
        upstream["messages"][0]["content"],
        json!([{"document": {"format": "pdf", "name": "report", "source": {"bytes": PDF_DATA}}},
               {"text": "(document attached)"}])
    );
}

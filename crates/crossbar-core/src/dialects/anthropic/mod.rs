//! The Anthropic Messages dialect, both directions: `POST /v1/messages` from clients (Anthropic
//! SDKs, Claude Code) and requests to Anthropic or to Vertex-hosted Claude. Streams live in
//! [`stream`].

mod stream;
pub mod wire;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

pub use stream::{StreamDecoder, StreamEncoder};

use super::Parts;
use super::rules::{self, parse_tool_arguments, sanitize_tool_id};
use super::{Egress, Operation, StreamDecode, encode_path_segment, parse_json_object, typed};
use crate::chat::{
    ChatRequest, ChatResponse, ContentPart, Family, FinishReason, ImageSource, Message,
    Passthrough, Reasoning, ResponseFormat, Role, Sampling, Tool, ToolCall, ToolChoice, Usage,
    WireDialect,
};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, ErrorKind, Result};

pub const API_VERSION: &str = "2023-06-01";
const VERTEX_VERSION: &str = "vertex-2023-10-16";
/// Anthropic requires `max_tokens`; OpenAI clients often omit it.
const DEFAULT_MAX_TOKENS: u32 = 4096;

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "thinking",
    "output_config",
    "service_tier",
    "context_management",
];

fn allowed_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Tool ids as Anthropic accepts them (`^[a-zA-Z0-9_-]+$`).
fn tool_id(id: &str) -> String {
    sanitize_tool_id(id, allowed_id_byte, 128)
}

/// This dialect's rows of the provider table: Anthropic itself, Claude on Vertex AI, Claude in
/// Microsoft Foundry and Claude on Bedrock Mantle.
pub(crate) fn provider_parts(door: Door<'_>, endpoint: Option<String>) -> Result<Parts, String> {
    let egress = |vertex, foundry| AnthropicEgress { vertex, foundry };
    let mut parts = match door {
        Door::Vertex(vertex) => {
            let endpoint = endpoint.unwrap_or_else(|| super::vertex_endpoint(&vertex.location));
            let place = (vertex.project.clone(), vertex.location.clone());
            // A configured `api_key` is sent as a static bearer token; otherwise Google
            // credentials.
            let mut parts = Parts::new(egress(Some(place), false), endpoint, Some("authorization"));
            parts.authorizer = vertex.authorizer()?;
            return Ok(parts);
        }
        // `https://bedrock-mantle.{region}.api.aws`, the Messages API under `/anthropic`: a
        // Bedrock API key as a bearer token, or SigV4 for `bedrock-mantle`.
        Door::BedrockMantle(bedrock) => {
            let (key_header, authorizer) = bedrock.authorize(crate::auth::sigv4::BEDROCK_MANTLE)?;
            let endpoint = endpoint
                .map(|e| e.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| format!("https://bedrock-mantle.{}.api.aws", bedrock.region));
            let mut parts = Parts::new(egress(None, true), endpoint, key_header);
            parts.authorizer = authorizer;
            parts
        }
        Door::Anthropic => Parts::new(
            egress(None, false),
            endpoint.unwrap_or_else(|| "https://api.anthropic.com".to_owned()),
            Some("x-api-key"),
        ),
        // `https://{resource}.services.ai.azure.com`; the key is the Foundry resource's, sent
        // as `x-api-key` (`auth = "bearer"` sends an Entra ID token instead).
        Door::Foundry(auth) => Parts::new(
            egress(None, true),
            endpoint.ok_or("Microsoft Foundry needs the resource's `endpoint`")?,
            Some(match auth {
                crate::config::AzureAuth::Bearer => "authorization",
                crate::config::AzureAuth::ApiKey => "x-api-key",
            }),
        ),
    };
    parts.headers.insert(
        HeaderName::from_static("anthropic-version"),
        HeaderValue::from_static(API_VERSION),
    );
    Ok(parts)
}

/// The clouds' doors to Claude that speak this dialect, with their settings.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Door<'a> {
    Anthropic,
    Vertex(&'a crate::config::VertexSettings),
    Foundry(crate::config::AzureAuth),
    BedrockMantle(&'a crate::config::BedrockSettings),
}

/// The Anthropic dialect as an upstream. `vertex` holds the project and location for Claude on
/// Vertex AI, which takes the same body without `model` at a publisher URL.
#[derive(Debug)]
pub struct AnthropicEgress {
    pub vertex: Option<(String, String)>,
    /// The Messages API under `/anthropic` of the host, without a client's betas or extra
    /// fields: Claude in Microsoft Foundry (the resource) and on Bedrock Mantle.
    pub foundry: bool,
}

impl AnthropicEgress {
    /// Anthropic's own API.
    pub fn anthropic() -> Self {
        Self {
            vertex: None,
            foundry: false,
        }
    }
}

impl Egress for AnthropicEgress {
    fn accepts_image_urls(&self) -> bool {
        true
    }

    fn url(&self, endpoint: &str, target: &str, operation: Operation) -> Result<String> {
        match (operation, &self.vertex) {
            (Operation::Embeddings, _) => Err(Error::invalid_field(
                "model",
                "Anthropic models do not serve embeddings.",
            )),
            (Operation::Chat { .. }, None) if self.foundry => {
                Ok(format!("{endpoint}/anthropic/v1/messages"))
            }
            (Operation::Chat { .. }, None) => Ok(format!("{endpoint}/v1/messages")),
            (Operation::Chat { stream }, Some((project, location))) => Ok(format!(
                "{endpoint}/projects/{project}/locations/{location}/publishers/anthropic/models/{}:{}",
                // Vertex model versions read `claude-x@20250514`; `@` is fine in a path.
                encode_path_segment(target).replace("%40", "@"),
                if stream {
                    "streamRawPredict"
                } else {
                    "rawPredict"
                }
            )),
        }
    }

    fn chat_body(&self, request: &ChatRequest, target: &str) -> Result<Vec<u8>> {
        // Only Anthropic's own API takes a Messages client's extra fields and betas: Vertex and
        // Foundry serve a subset of them, so there they count as another dialect's.
        let own = (self.vertex.is_none() && !self.foundry).then_some(WireDialect::Anthropic);
        rules::refuse_foreign_passthrough(request, own, "anthropic")?;
        let passthrough = own.and_then(|own| request.passthrough.of(own));
        // Server tools answer with blocks the canonical answer cannot carry yet, so even
        // Anthropic's API serves the request only without them (a route's `hosted_tools = "drop"`).
        if let Some((index, tool)) = passthrough
            .filter(|p| !p.drop_hosted_tools)
            .and_then(|p| p.hosted_tools.first())
        {
            let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
            return Err(Error::invalid_field(
                format!("tools.{index}.type"),
                format!(
                    "tools.{index}: the server tool `{kind}` is not supported by this gateway yet; a route with `hosted_tools = \"drop\"` serves the request without it."
                ),
            ));
        }
        let mut wire = encode_request_for(request, target, passthrough)?;
        match &self.vertex {
            None => wire.model = target.to_owned(),
            Some(_) => wire.anthropic_version = Some(VERTEX_VERSION.to_owned()),
        }
        let mut body = serde_json::to_value(&wire)
            .map_err(|e| Error::internal(format!("encoding messages request: {e}")))?;
        if let (Some(fields), Value::Object(body)) = (passthrough.map(|p| &p.fields), &mut body) {
            // `thinking` and `output_config` were decided above, for this model.
            for (key, value) in fields {
                if key != "thinking" && key != "output_config" {
                    body.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        serde_json::to_vec(&body)
            .map_err(|e| Error::internal(format!("encoding messages request: {e}")))
    }

    fn chat_headers(&self, request: &ChatRequest) -> Vec<(String, String)> {
        match (&self.vertex, request.passthrough.of(WireDialect::Anthropic)) {
            (None, Some(own)) if !self.foundry => own.headers.clone(),
            _ => Vec::new(),
        }
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse> {
        decode_response(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecode> {
        Box::new(StreamDecoder::new())
    }

    fn embedding_body(&self, _request: &EmbeddingRequest, _target: &str) -> Result<Vec<u8>> {
        Err(Error::invalid_field(
            "model",
            "Anthropic models do not serve embeddings.",
        ))
    }

    fn embedding_response(&self, _body: &[u8]) -> Result<EmbeddingResponse> {
        Err(Error::invalid_field(
            "model",
            "Anthropic models do not serve embeddings.",
        ))
    }

    fn error(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Error {
        decode_error(status, body)
    }
}

/// A decoded client request to `POST /v1/messages`.
#[derive(Debug)]
pub struct IngressMessages {
    pub request: ChatRequest,
}

/// The refusal of a field this gateway does not know, as Anthropic words it; given when the
/// route keeps `unknown_fields = "reject"`.
pub fn unknown_field_error(key: &str) -> Error {
    Error::invalid_field(key, format!("{key}: Extra inputs are not permitted"))
}

/// Adds the client's `anthropic-beta` header, which goes on to Anthropic with its extra fields.
pub fn pass_betas(request: &mut ChatRequest, betas: &str) {
    let betas = betas.trim();
    if betas.is_empty() {
        return;
    }
    request.passthrough.dialect = Some(WireDialect::Anthropic);
    request
        .passthrough
        .headers
        .push(("anthropic-beta".to_owned(), betas.to_owned()));
}

/// Decodes a client's `POST /v1/messages` body.
pub fn decode_request(body: &[u8]) -> Result<IngressMessages> {
    let mut map = parse_json_object(body)?;
    let mut passthrough = Passthrough::default();
    // A field we do not know is the route's to allow (see `unknown_field_error`); it then goes
    // on to Anthropic only.
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !REQUEST_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        if let Some(value) = map.remove(&key) {
            passthrough.fields.insert(key.clone(), value);
            passthrough.required.push(key);
        }
    }
    check_context_management(map.get("context_management"))?;
    // Server tools and Anthropic-defined tools (`web_search_20250305`, `bash_20250124`, ...) have
    // a `type`: kept apart, for the route's `hosted_tools` policy.
    if let Some(Value::Array(tools)) = map.get_mut("tools") {
        let mut index = 0;
        tools.retain(|tool| {
            let typed = tool
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|kind| kind != "custom");
            if typed {
                passthrough.hosted_tools.push((index, tool.clone()));
            }
            index += 1;
            !typed
        });
    }
    // Translated (or, for context edits, safely dropped) elsewhere; verbatim to Anthropic.
    for key in ["thinking", "output_config", "context_management"] {
        if let Some(value) = map.get(key) {
            passthrough.fields.insert(key.to_owned(), value.clone());
        }
    }
    if !passthrough.fields.is_empty() || !passthrough.hosted_tools.is_empty() {
        passthrough.dialect = Some(WireDialect::Anthropic);
    }
    let wire: wire::MessagesRequest = typed(Value::Object(map), "")?;
    if wire.messages.is_empty() {
        return Err(Error::invalid_field(
            "messages",
            "messages: at least one message is required",
        ));
    }
    let mut messages = Vec::new();
    match wire.system {
        None => {}
        Some(wire::System::Text(text)) => messages.push(Message::text(Role::System, text)),
        Some(wire::System::Blocks(blocks)) => {
            for (i, block) in blocks.into_iter().enumerate() {
                let wire::Block::Text {
                    text,
                    cache_control,
                } = block
                else {
                    return Err(Error::invalid_field(
                        format!("system.{i}"),
                        "system blocks must be text blocks",
                    ));
                };
                let mut message = Message::text(Role::System, text);
                message.cache_breakpoint = cache_control.is_some();
                messages.push(message);
            }
        }
    }
    for (i, message) in wire.messages.into_iter().enumerate() {
        decode_message(i, message, &mut messages)?;
    }
    let tools = wire
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| Tool {
            name: t.name,
            description: t.description,
            parameters: Some(t.input_schema),
            strict: None,
        })
        .collect::<Vec<_>>();
    let (tool_choice, parallel_tool_calls) = match wire.tool_choice {
        None => (None, None),
        Some(wire::ToolChoice::Auto {
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Auto),
            disable_parallel_tool_use.map(|d| !d),
        ),
        Some(wire::ToolChoice::Any {
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Required),
            disable_parallel_tool_use.map(|d| !d),
        ),
        Some(wire::ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Function(name)),
            disable_parallel_tool_use.map(|d| !d),
        ),
        Some(wire::ToolChoice::None) => (Some(ToolChoice::None), None),
    };
    if let Some(ToolChoice::Function(name)) = &tool_choice
        && !tools.iter().any(|t| &t.name == name)
    {
        return Err(Error::invalid_field(
            "tool_choice.name",
            format!("tool_choice: tool `{name}` is not among the tools"),
        ));
    }
    let mut request = ChatRequest::new(wire.model, messages);
    request.passthrough = passthrough;
    request.tools = tools;
    request.tool_choice = tool_choice;
    request.parallel_tool_calls = parallel_tool_calls;
    request.max_tokens = Some(wire.max_tokens);
    request.sampling = Sampling {
        temperature: wire.temperature,
        top_p: wire.top_p,
        top_k: wire.top_k,
        ..Sampling::default()
    };
    request.stop = wire.stop_sequences.unwrap_or_default();
    request.stream = wire.stream.unwrap_or(false);
    request.user = wire.metadata.and_then(|m| m.user_id);
    let (format, effort) = wire
        .output_config
        .map_or((None, None), |c| (c.format, c.effort));
    match wire.thinking {
        Some(wire::Thinking::Enabled { budget_tokens }) => {
            request.reasoning_budget = Some(budget_tokens);
            request.reasoning_effort = effort.map(|e| effort_level(e).to_owned());
        }
        // The canonical request has no "adaptive": reasoning is on at the effort's level
        // (medium when none is given), which budget-taking upstreams turn into a budget.
        Some(wire::Thinking::Adaptive { .. }) => {
            request.reasoning_effort = Some(effort.map_or("medium", effort_level).to_owned());
        }
        // Without thinking, effort only tunes the length of Claude's answer: no other dialect
        // has that, and passing it on as a reasoning effort would switch reasoning on.
        Some(wire::Thinking::Disabled) | None => {}
    }
    if let Some(format) = format {
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "output".to_owned(),
            description: None,
            schema: Some(format.schema),
            strict: Some(true),
        });
    }
    Ok(IngressMessages { request })
}

/// The OpenAI-style reasoning effort nearest a Claude effort level: OpenAI, Gemini and Bedrock
/// top out at `high`.
fn effort_level(effort: wire::Effort) -> &'static str {
    match effort {
        wire::Effort::Low => "low",
        wire::Effort::Medium => "medium",
        wire::Effort::High | wire::Effort::Xhigh | wire::Effort::Max => "high",
    }
}

/// Accepts `context_management` whose edits only clear old thinking (Claude Code sends
/// `clear_thinking_20251015`). Those edits trim Anthropic's server-side context and never change
/// the answer's meaning, so dropping them is safe; any other edit changes what the model sees,
/// so it is refused by name rather than silently ignored.
fn check_context_management(value: Option<&Value>) -> Result<()> {
    let Some(value) = value else {
        return Ok(());
    };
    let Some(object) = value.as_object() else {
        return Err(Error::invalid_field(
            "context_management",
            "context_management: Input should be a valid dictionary",
        ));
    };
    if let Some(key) = object.keys().find(|k| k.as_str() != "edits") {
        return Err(Error::invalid_field(
            format!("context_management.{key}"),
            format!("context_management.{key}: Extra inputs are not permitted"),
        ));
    }
    let edits = match object.get("edits") {
        None => return Ok(()),
        Some(Value::Array(edits)) => edits,
        Some(_) => {
            return Err(Error::invalid_field(
                "context_management.edits",
                "context_management.edits: Input should be a valid list",
            ));
        }
    };
    for (i, edit) in edits.iter().enumerate() {
        let kind = edit.get("type").and_then(Value::as_str).unwrap_or_default();
        if !kind.starts_with("clear_thinking_") {
            return Err(Error::invalid_field(
                format!("context_management.edits.{i}.type"),
                format!(
                    "context_management.edits.{i}.type: `{kind}` is not supported by this gateway; only `clear_thinking_*` edits are accepted."
                ),
            ));
        }
    }
    Ok(())
}

fn decode_message(i: usize, message: wire::InputMessage, out: &mut Vec<Message>) -> Result<()> {
    let role = match message.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        // Instructions given mid-conversation (Claude Code sends them): text only.
        "system" => Role::System,
        other => {
            return Err(Error::invalid_field(
                format!("messages.{i}.role"),
                format!(
                    "messages.{i}.role: Input should be 'user', 'assistant' or 'system' (got '{other}')"
                ),
            ));
        }
    };
    let blocks = match message.content {
        wire::Content::Text(text) => {
            out.push(Message::text(role, text));
            return Ok(());
        }
        wire::Content::Blocks(blocks) => blocks,
    };
    let mut current = Message::new(role, Vec::new());
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        match block {
            wire::Block::Text {
                text,
                cache_control,
            } => {
                current.content.push(ContentPart::Text { text });
                current.cache_breakpoint |= cache_control.is_some();
            }
            wire::Block::Image {
                source,
                cache_control,
            } if role != Role::System => {
                let source = match source {
                    wire::ImageSource::Base64 { media_type, data } => {
                        ImageSource::Base64 { media_type, data }
                    }
                    wire::ImageSource::Url { url } => ImageSource::Url(url),
                };
                current.content.push(ContentPart::Image {
                    source,
                    detail: None,
                });
                current.cache_breakpoint |= cache_control.is_some();
            }
            wire::Block::Document {
                source,
                title,
                cache_control,
            } if role == Role::User => {
                let wire::DocumentSource::Base64 { media_type, data } = source else {
                    return Err(Error::invalid_field(
                        format!("{at}.source"),
                        format!(
                            "{at}.source: this gateway takes documents as base64 PDF sources only \
                             (type \"base64\", media_type \"application/pdf\")."
                        ),
                    ));
                };
                if media_type != PDF {
                    return Err(Error::invalid_field(
                        format!("{at}.source.media_type"),
                        format!("{at}.source.base64.media_type: Input should be 'application/pdf'"),
                    ));
                }
                current.content.push(ContentPart::Document {
                    media_type,
                    data,
                    filename: title,
                });
                current.cache_breakpoint |= cache_control.is_some();
            }
            wire::Block::ToolUse {
                id, name, input, ..
            } if role == Role::Assistant => current.tool_calls.push(tool_call(id, name, &input)),
            wire::Block::ToolResult {
                tool_use_id,
                content,
                is_error,
                cache_control,
            } if role == Role::User => {
                let mut result = Message::new(Role::Tool, tool_result_parts(content, &at)?);
                result.tool_call_id = Some(tool_use_id);
                result.tool_error = is_error.unwrap_or(false);
                result.cache_breakpoint = cache_control.is_some();
                out.push(result);
            }
            wire::Block::Thinking {
                thinking,
                signature,
            } if role == Role::Assistant => {
                current.reasoning.push(Reasoning {
                    family: Family::Anthropic,
                    data: json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                });
            }
            wire::Block::RedactedThinking { data } if role == Role::Assistant => {
                current.reasoning.push(Reasoning {
                    family: Family::Anthropic,
                    data: json!({"type": "redacted_thinking", "data": data}),
                });
            }
            _ => {
                return Err(Error::invalid_field(
                    format!("{at}.type"),
                    format!(
                        "{at}: this block type is not allowed in a {} message",
                        message.role
                    ),
                ));
            }
        }
    }
    let has_content = !current.content.is_empty()
        || !current.tool_calls.is_empty()
        || !current.reasoning.is_empty();
    if has_content {
        out.push(current);
    }
    Ok(())
}

fn tool_result_parts(content: Option<wire::Content>, at: &str) -> Result<Vec<ContentPart>> {
    Ok(match content {
        None => Vec::new(),
        Some(wire::Content::Text(text)) => vec![ContentPart::Text { text }],
        Some(wire::Content::Blocks(blocks)) => blocks
            .into_iter()
            .map(|block| match block {
                wire::Block::Text { text, .. } => Ok(ContentPart::Text { text }),
                wire::Block::Image {
                    source: wire::ImageSource::Base64 { media_type, data },
                    ..
                } => Ok(ContentPart::Image {
                    source: ImageSource::Base64 { media_type, data },
                    detail: None,
                }),
                wire::Block::Image {
                    source: wire::ImageSource::Url { url },
                    ..
                } => Ok(ContentPart::Image {
                    source: ImageSource::Url(url),
                    detail: None,
                }),
                _ => Err(Error::invalid_field(
                    format!("{at}.content"),
                    "tool_result content may hold text and image blocks only",
                )),
            })
            .collect::<Result<_>>()?,
    })
}

/// The document type Claude reads as base64.
const PDF: &str = "application/pdf";

/// The image types Claude reads; anything else is a 400 from the API.
const IMAGE_MEDIA_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// `at` names the message for errors (`messages[i]`), in the canonical request's terms.
fn encode_parts(parts: &[ContentPart], cache: bool, at: &str) -> Result<Vec<wire::Block>> {
    let mut blocks = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        match part {
            // Anthropic rejects empty text blocks.
            ContentPart::Text { text } if text.is_empty() => {}
            ContentPart::Text { text } => blocks.push(wire::Block::Text {
                text: text.clone(),
                cache_control: None,
            }),
            ContentPart::Image { source, .. } => blocks.push(wire::Block::Image {
                source: match source {
                    ImageSource::Base64 { media_type, data } => {
                        if !IMAGE_MEDIA_TYPES.contains(&media_type.as_str()) {
                            return Err(Error::invalid_field(
                                format!("{at}.content[{k}]"),
                                format!(
                                    "Claude reads images of type image/jpeg, image/png, image/gif or image/webp, not '{media_type}'."
                                ),
                            ));
                        }
                        wire::ImageSource::Base64 {
                            media_type: media_type.clone(),
                            data: data.clone(),
                        }
                    }
                    ImageSource::Url(url) => wire::ImageSource::Url { url: url.clone() },
                },
                cache_control: None,
            }),
            ContentPart::Document {
                media_type,
                data,
                filename,
            } => {
                if media_type != PDF {
                    return Err(Error::invalid_field(
                        format!("{at}.content[{k}]"),
                        format!(
                            "Claude reads documents of type application/pdf, not '{media_type}'."
                        ),
                    ));
                }
                blocks.push(wire::Block::Document {
                    source: wire::DocumentSource::Base64 {
                        media_type: media_type.clone(),
                        data: data.clone(),
                    },
                    title: filename.clone(),
                    cache_control: None,
                });
            }
            ContentPart::Audio { .. } => {
                return Err(Error::invalid_field(
                    format!("{at}.content[{k}]"),
                    "Claude takes no audio input: this model's deployment cannot read the \
                     request's audio.",
                ));
            }
        }
    }
    if cache {
        mark_cache(&mut blocks);
    }
    Ok(blocks)
}

/// Puts a cache breakpoint on the last block that can carry one.
fn mark_cache(blocks: &mut [wire::Block]) {
    if let Some(last) = blocks.iter_mut().rev().find(|b| {
        !matches!(
            b,
            wire::Block::Thinking { .. } | wire::Block::RedactedThinking { .. }
        )
    }) {
        match last {
            wire::Block::Text { cache_control, .. }
            | wire::Block::Image { cache_control, .. }
            | wire::Block::Document { cache_control, .. }
            | wire::Block::ToolUse { cache_control, .. }
            | wire::Block::ToolResult { cache_control, .. } => {
                *cache_control = Some(wire::CacheControl::ephemeral())
            }
            wire::Block::Thinking { .. } | wire::Block::RedactedThinking { .. } => {}
        }
    }
}

/// Claude wants `input_schema` to say `"type": "object"`; OpenAI takes a function's parameters
/// without it (`{}`, or just `properties`). Tool arguments are always an object, so saying so
/// changes nothing; a schema of another type cannot describe them and is refused.
fn input_schema(parameters: Option<&Value>, index: usize) -> Result<Value> {
    let schema = match parameters {
        None => return Ok(json!({"type": "object"})),
        Some(Value::Object(schema)) => schema,
        Some(other) => {
            return Err(Error::invalid_field(
                format!("tools[{index}].function.parameters"),
                format!("Claude takes tool parameters only as an object schema, not {other}."),
            ));
        }
    };
    match schema.get("type") {
        None => {
            let mut schema = schema.clone();
            schema.insert("type".to_owned(), json!("object"));
            Ok(Value::Object(schema))
        }
        Some(kind) if kind == "object" => Ok(Value::Object(schema.clone())),
        Some(kind) => Err(Error::invalid_field(
            format!("tools[{index}].function.parameters"),
            format!(
                "Claude takes tool parameters only as an object schema (\"type\": \"object\"), not {kind}."
            ),
        )),
    }
}

/// The API takes at most this many `cache_control` breakpoints in one request.
const MAX_CACHE_BREAKPOINTS: usize = 4;

/// More breakpoints than Claude takes is a 400 there; dropping some would silently change what
/// gets cached, so the deployment refuses the request.
fn refuse_excess_cache_breakpoints(
    system: &[wire::Block],
    messages: &[wire::InputMessage],
) -> Result<()> {
    let marked = |b: &&wire::Block| match b {
        wire::Block::Text { cache_control, .. }
        | wire::Block::Image { cache_control, .. }
        | wire::Block::Document { cache_control, .. }
        | wire::Block::ToolUse { cache_control, .. }
        | wire::Block::ToolResult { cache_control, .. } => cache_control.is_some(),
        wire::Block::Thinking { .. } | wire::Block::RedactedThinking { .. } => false,
    };
    let in_messages = messages
        .iter()
        .filter_map(|m| match &m.content {
            wire::Content::Blocks(blocks) => Some(blocks.iter().filter(marked).count()),
            wire::Content::Text(_) => None,
        })
        .sum::<usize>();
    let count = system.iter().filter(marked).count() + in_messages;
    if count > MAX_CACHE_BREAKPOINTS {
        return Err(Error::invalid_field(
            "messages",
            format!(
                "Claude takes at most {MAX_CACHE_BREAKPOINTS} cache breakpoints in one request; this one marks {count}."
            ),
        ));
    }
    Ok(())
}

/// How reasoning goes to `target` (see [`rules::claude_thinking`]): a token budget to models
/// that take only that; adaptive thinking guided by `output_config.effort` to those that take
/// only that, and to the 4.6 models unless the client gave an explicit budget. A Messages client's
/// own `thinking` and effort (`display`, `xhigh`, `max`) go through unchanged where adaptive
/// thinking is what is sent.
fn encode_thinking(
    request: &ChatRequest,
    target: &str,
    own: Option<&Passthrough>,
    max_tokens: &mut u32,
) -> (Option<wire::Thinking>, Option<wire::Effort>) {
    let Some(budget) = rules::reasoning_budget(request) else {
        return (None, None);
    };
    let client_adaptive = own
        .and_then(|p| p.fields.get("thinking"))
        .and_then(|t| serde_json::from_value::<wire::Thinking>(t.clone()).ok())
        .filter(|t| matches!(t, wire::Thinking::Adaptive { .. }));
    let adaptive = match rules::claude_thinking(target) {
        rules::ClaudeThinking::AdaptiveOnly => true,
        rules::ClaudeThinking::Both => {
            client_adaptive.is_some() || request.reasoning_budget.is_none()
        }
        rules::ClaudeThinking::BudgetOnly => false,
    };
    if adaptive {
        let effort = own
            .and_then(|p| p.fields.get("output_config"))
            .and_then(|c| c.get("effort"))
            .and_then(|e| serde_json::from_value::<wire::Effort>(e.clone()).ok())
            .unwrap_or(match request.reasoning_effort.as_deref() {
                Some("minimal" | "low") => wire::Effort::Low,
                Some("medium") => wire::Effort::Medium,
                Some(_) => wire::Effort::High,
                None => match rules::effort_for_budget(budget) {
                    "low" => wire::Effort::Low,
                    "medium" => wire::Effort::Medium,
                    _ => wire::Effort::High,
                },
            });
        let thinking = client_adaptive.unwrap_or(wire::Thinking::Adaptive { display: None });
        return (Some(thinking), Some(effort));
    }
    let budget_tokens = budget.max(1024);
    // The budget must be below max_tokens: the answer needs room after the thinking.
    if *max_tokens <= budget_tokens {
        // Saturating: both come from the client, up to `u32::MAX` each.
        *max_tokens = max_tokens.saturating_add(budget_tokens);
    }
    (Some(wire::Thinking::Enabled { budget_tokens }), None)
}

/// Encodes a canonical request as a Messages body (without `model`; the egress adds it), for a
/// model whose generation is unknown.
pub fn encode_request(request: &ChatRequest) -> Result<wire::MessagesRequest> {
    encode_request_for(request, "", None)
}

/// Encodes a canonical request as a Messages body for `target` (without `model`); `own` is the
/// Messages client's passthrough when this upstream takes it.
pub fn encode_request_for(
    request: &ChatRequest,
    target: &str,
    own: Option<&Passthrough>,
) -> Result<wire::MessagesRequest> {
    rules::refuse_openai_passthrough(request, "anthropic")?;
    rules::temperature_within_one(request.sampling.temperature, "Claude")?;
    rules::claude_thinking_compatible(request)?;
    let system: Vec<wire::Block> = rules::system_texts(&request.messages)
        .into_iter()
        .map(|(text, cache)| wire::Block::Text {
            text,
            cache_control: cache.then(wire::CacheControl::ephemeral),
        })
        .collect();
    let mut messages: Vec<wire::InputMessage> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let (role, blocks) = match message.role {
            Role::System | Role::Developer => continue,
            Role::User => (
                "user",
                encode_parts(
                    &message.content,
                    message.cache_breakpoint,
                    &format!("messages[{i}]"),
                )?,
            ),
            Role::Tool => {
                let id = message.tool_call_id.as_deref().unwrap_or_default();
                let content = encode_parts(&message.content, false, &format!("messages[{i}]"))?;
                let mut blocks = vec![wire::Block::ToolResult {
                    tool_use_id: tool_id(id),
                    content: (!content.is_empty()).then_some(wire::Content::Blocks(content)),
                    is_error: message.tool_error.then_some(true),
                    cache_control: None,
                }];
                if message.cache_breakpoint {
                    mark_cache(&mut blocks);
                }
                ("user", blocks)
            }
            Role::Assistant => {
                let mut blocks: Vec<wire::Block> = message
                    .reasoning
                    .iter()
                    // Signed thinking only replays to the family that signed it; thinking
                    // with an empty signature (shown from an unsigned stream) is refused by
                    // the API ("thinking.signature: Field required"), so it stays behind.
                    .filter(|r| r.family == Family::Anthropic)
                    .filter(|r| {
                        r.data.get("type").and_then(Value::as_str) != Some("thinking")
                            || r.data
                                .get("signature")
                                .and_then(Value::as_str)
                                .is_some_and(|s| !s.is_empty())
                    })
                    .filter_map(|r| serde_json::from_value(r.data.clone()).ok())
                    .collect();
                blocks.extend(encode_parts(
                    &message.content,
                    false,
                    &format!("messages[{i}]"),
                )?);
                for (j, call) in message.tool_calls.iter().enumerate() {
                    let input = parse_tool_arguments(
                        &call.arguments,
                        &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                    )?;
                    blocks.push(wire::Block::ToolUse {
                        id: tool_id(&call.id),
                        name: call.name.clone(),
                        input,
                        cache_control: None,
                    });
                }
                if message.cache_breakpoint {
                    mark_cache(&mut blocks);
                }
                ("assistant", blocks)
            }
        };
        if blocks.is_empty() {
            continue;
        }
        // Consecutive same-role turns become one message, with tool results first (the API
        // wants every tool_result right after the turn that asked for it).
        match messages.last_mut() {
            Some(last) if last.role == role => {
                if let wire::Content::Blocks(existing) = &mut last.content {
                    existing.extend(blocks);
                    existing.sort_by_key(|b| !matches!(b, wire::Block::ToolResult { .. }));
                }
            }
            _ => messages.push(wire::InputMessage {
                role: role.to_owned(),
                content: wire::Content::Blocks(blocks),
            }),
        }
    }
    let tools = request
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(wire::ToolDef {
                name: t.name.clone(),
                description: t.description.clone(),
                input_schema: input_schema(t.parameters.as_ref(), i)?,
                cache_control: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let tools = (!tools.is_empty()).then_some(tools);
    refuse_excess_cache_breakpoints(&system, &messages)?;
    let disable_parallel = request.parallel_tool_calls.map(|p| !p).filter(|d| *d);
    let tool_choice = if tools.is_none() {
        None
    } else {
        match (&request.tool_choice, disable_parallel) {
            (None, None) => None,
            (None | Some(ToolChoice::Auto), _) => Some(wire::ToolChoice::Auto {
                disable_parallel_tool_use: disable_parallel,
            }),
            (Some(ToolChoice::Required), _) => Some(wire::ToolChoice::Any {
                disable_parallel_tool_use: disable_parallel,
            }),
            (Some(ToolChoice::Function(name)), _) => Some(wire::ToolChoice::Tool {
                name: name.clone(),
                disable_parallel_tool_use: disable_parallel,
            }),
            (Some(ToolChoice::None), _) => Some(wire::ToolChoice::None),
        }
    };
    let mut max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let (thinking, effort) = encode_thinking(request, target, own, &mut max_tokens);
    let format = match &request.response_format {
        Some(ResponseFormat::JsonSchema { schema, .. }) => Some(wire::OutputFormat {
            kind: "json_schema".to_owned(),
            schema: schema.clone().unwrap_or_else(|| json!({"type": "object"})),
        }),
        Some(ResponseFormat::JsonObject) => Some(wire::OutputFormat {
            kind: "json_schema".to_owned(),
            schema: json!({"type": "object"}),
        }),
        Some(ResponseFormat::Text) | None => None,
    };
    let output_config =
        (format.is_some() || effort.is_some()).then_some(wire::OutputConfig { format, effort });
    Ok(wire::MessagesRequest {
        model: String::new(),
        max_tokens,
        messages,
        system: (!system.is_empty()).then_some(wire::System::Blocks(system)),
        tools,
        tool_choice,
        temperature: request.sampling.temperature,
        top_p: request.sampling.top_p,
        top_k: request.sampling.top_k,
        stop_sequences: (!request.stop.is_empty()).then(|| request.stop.clone()),
        stream: request.stream.then_some(true),
        metadata: request.user.as_ref().map(|u| wire::Metadata {
            user_id: Some(u.clone()),
        }),
        thinking,
        output_config,
        anthropic_version: None,
    })
}

pub(crate) fn decode_stop_reason(raw: &str) -> FinishReason {
    match raw {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// Anthropic's `stop_reason` for a canonical finish; the raw reason wins when it is Anthropic's.
pub(crate) fn encode_stop_reason(reason: FinishReason, raw: Option<&str>) -> &'static str {
    const KNOWN: &[&str] = &[
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    ];
    if let Some(raw) = raw
        && let Some(known) = KNOWN.iter().find(|k| **k == raw)
    {
        return known;
    }
    match reason {
        FinishReason::Stop | FinishReason::Other => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// Anthropic's `input_tokens` excludes cache reads and writes.
pub(crate) fn decode_usage(usage: &wire::Usage) -> Usage {
    usage_beside_cache(
        usage.input_tokens,
        usage.cache_read_input_tokens.unwrap_or(0),
        usage.cache_creation_input_tokens.unwrap_or(0),
        usage.output_tokens,
    )
}

/// Canonical usage from counts whose input excludes cache reads and writes (Anthropic's
/// `input_tokens`, Bedrock's `inputTokens`); canonical input includes them.
pub(crate) fn usage_beside_cache(input: u64, read: u64, write: u64, output: u64) -> Usage {
    Usage {
        // Saturating: an upstream may send counts up to `u64::MAX`.
        input_tokens: input.saturating_add(read).saturating_add(write),
        cached_input_tokens: read,
        cache_write_tokens: write,
        output_tokens: output,
        reasoning_tokens: 0,
    }
}

pub(crate) fn encode_usage(usage: &Usage) -> wire::Usage {
    wire::Usage {
        input_tokens: usage.input_tokens.saturating_sub(
            usage
                .cached_input_tokens
                .saturating_add(usage.cache_write_tokens),
        ),
        output_tokens: usage.output_tokens,
        cache_creation_input_tokens: Some(usage.cache_write_tokens),
        cache_read_input_tokens: Some(usage.cached_input_tokens),
    }
}

/// A `tool_use` block as a canonical call, its input as JSON text.
fn tool_call(id: String, name: String, input: &Value) -> ToolCall {
    ToolCall {
        id,
        name,
        arguments: input.to_string(),
    }
}

/// Decodes an Anthropic (or Vertex-hosted Claude) non-streamed answer.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse> {
    let wire: wire::MessagesResponse = serde_json::from_slice(body).map_err(|e| {
        Error::bad_upstream(format!("The upstream returned an invalid message: {e}"))
    })?;
    let mut message = Message::new(Role::Assistant, Vec::new());
    for block in wire.content {
        match block {
            wire::Block::Text { text, .. } if !text.is_empty() => {
                message.content.push(ContentPart::Text { text })
            }
            wire::Block::ToolUse {
                id, name, input, ..
            } => message.tool_calls.push(tool_call(id, name, &input)),
            wire::Block::Thinking {
                thinking,
                signature,
            } => message.reasoning.push(Reasoning {
                family: Family::Anthropic,
                data: json!({"type": "thinking", "thinking": thinking, "signature": signature}),
            }),
            wire::Block::RedactedThinking { data } => {
                message.reasoning.push(Reasoning {
                    family: Family::Anthropic,
                    data: json!({"type": "redacted_thinking", "data": data}),
                });
            }
            _ => {}
        }
    }
    message.content_is_text = message.content.len() == 1;
    let raw = wire.stop_reason;
    Ok(ChatResponse {
        id: wire.id,
        model: wire.model,
        created: now_secs(),
        message,
        finish_reason: raw
            .as_deref()
            .map_or(FinishReason::Stop, decode_stop_reason),
        raw_finish_reason: raw,
        usage: Some(decode_usage(&wire.usage)),
        system_fingerprint: None,
    })
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The content blocks of an answer, as Anthropic would send them.
fn response_blocks(message: &Message) -> Result<Vec<wire::Block>> {
    let mut blocks: Vec<wire::Block> = message
        .reasoning
        .iter()
        .filter(|r| r.family == Family::Anthropic)
        .filter_map(|r| serde_json::from_value(r.data.clone()).ok())
        .collect();
    let text = message.text_content();
    if !text.is_empty() {
        blocks.push(wire::Block::Text {
            text,
            cache_control: None,
        });
    }
    for call in &message.tool_calls {
        let input = serde_json::from_str::<Value>(&call.arguments)
            .ok()
            .filter(Value::is_object)
            .or_else(|| call.arguments.trim().is_empty().then(|| json!({})))
            .ok_or_else(|| {
                Error::bad_upstream(format!(
                    "The model produced tool-call arguments for `{}` that are not a JSON object.",
                    call.name
                ))
            })?;
        blocks.push(wire::Block::ToolUse {
            id: tool_id(&call.id),
            name: call.name.clone(),
            input,
            cache_control: None,
        });
    }
    Ok(blocks)
}

/// Encodes our answer for an Anthropic client.
pub fn encode_response(response: &ChatResponse) -> Result<Vec<u8>> {
    let wire = wire::MessagesResponse {
        id: message_id(&response.id),
        kind: "message".to_owned(),
        role: "assistant".to_owned(),
        model: response.model.clone(),
        content: response_blocks(&response.message)?,
        stop_reason: Some(
            encode_stop_reason(
                response.finish_reason,
                response.raw_finish_reason.as_deref(),
            )
            .to_owned(),
        ),
        stop_sequence: None,
        usage: encode_usage(&response.usage.unwrap_or_default()),
    };
    serde_json::to_vec(&wire).map_err(|e| Error::internal(format!("encoding message: {e}")))
}

/// Anthropic SDKs expect `msg_` ids; other providers' ids are carried inside one.
pub(crate) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{}", id.trim_start_matches("chatcmpl-"))
    }
}

/// Anthropic's `error.type` for an error.
pub fn error_type(error: &Error) -> &'static str {
    match error.status() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// Encodes an error in Anthropic's shape.
pub fn encode_error(error: &Error) -> Vec<u8> {
    json!({"type": "error", "error": {"type": error_type(error), "message": error.message}})
        .to_string()
        .into_bytes()
}

/// Decodes an Anthropic error body returned with an HTTP error status.
pub fn decode_error(status: u16, body: &[u8]) -> Error {
    let parsed: Option<wire::ErrorBody> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .map(|b| b.error.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("The upstream returned HTTP {status}."));
    let mut error = Error::from_upstream_status(status, message);
    if let Some(body) = parsed {
        // A billing error is a 400-class answer that no retry fixes.
        if body.error.kind == "billing_error" {
            error = error.quota_exceeded();
        }
        error.code = Some(body.error.kind);
    }
    error
}

/// Decodes an in-band `event: error` payload met inside a 200 stream.
pub(crate) fn decode_stream_error(detail: &wire::ErrorDetail) -> Error {
    let mut error = Error::stream_interrupted(if detail.message.is_empty() {
        "The upstream reported an error mid-stream."
    } else {
        &detail.message
    });
    if detail.kind == "invalid_request_error" {
        error.kind = ErrorKind::StreamInterrupted;
        error.retryable = false;
    }
    error.code = Some(detail.kind.clone());
    error
}

/// Decodes a `POST /v1/messages/count_tokens` body: a Messages body without `max_tokens`.
pub fn decode_count_tokens(body: &[u8]) -> Result<ChatRequest> {
    let mut map = parse_json_object(body)?;
    // count_tokens takes the Messages body without `max_tokens`.
    map.entry("max_tokens").or_insert(json!(1));
    let ingress =
        decode_request(&serde_json::to_vec(&map).map_err(|e| Error::internal(e.to_string()))?)?;
    Ok(ingress.request)
}

/// The `count_tokens` answer.
pub fn encode_count(tokens: u64) -> Vec<u8> {
    json!({ "input_tokens": tokens }).to_string().into_bytes()
}

#[cfg(test)]
mod tests;

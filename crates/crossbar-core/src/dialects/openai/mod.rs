//! The OpenAI dialect, both directions: decoding client requests and encoding our answers to them
//! (ingress), and encoding requests to OpenAI-dialect upstreams and decoding their answers
//! (egress). Chat Completions and Embeddings; streams live in [`stream`].

pub(crate) mod doors;
mod stream;
pub mod wire;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

pub use stream::{StreamDecoder, StreamEncoder};

use super::{parse_json_object, typed};
use crate::chat::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, ImageSource, Message, ResponseFormat,
    Role, Sampling, Tool, ToolCall, ToolChoice, Usage,
};
use crate::embeddings::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

/// Request fields we translate for every provider.
const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "n",
    "stop",
    "reasoning_effort",
    "user",
    "metadata",
];

/// OpenAI request fields with no canonical meaning: forwarded verbatim to OpenAI-dialect
/// upstreams only.
const PASSTHROUGH_FIELDS: &[&str] = &[
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "service_tier",
    "store",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "safety_identifier",
    "verbosity",
    "functions",
    "function_call",
];

const EMBEDDING_FIELDS: &[&str] = &["model", "input", "dimensions", "encoding_format", "user"];

/// A decoded client chat request plus the OpenAI-only options that shape our answer.
#[derive(Debug)]
pub struct IngressChat {
    pub request: ChatRequest,
    /// `stream_options.include_usage`: send the trailing usage chunk.
    pub include_usage: bool,
}

/// Which field carries the output-token cap upstream: OpenAI deprecated `max_tokens` (reasoning
/// models reject it), while many OpenAI-compatible servers only know `max_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaxTokensField {
    #[default]
    MaxCompletionTokens,
    MaxTokens,
}

fn unknown_field(key: &str) -> Error {
    Error::invalid_field(
        key,
        format!("Unrecognized request argument supplied: {key}"),
    )
    .with_code("unknown_parameter")
}

impl From<wire::ToolCall> for ToolCall {
    fn from(call: wire::ToolCall) -> Self {
        Self {
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
        }
    }
}

/// Decodes a client's `POST /v1/chat/completions` body.
pub fn decode_chat_request(body: &[u8]) -> Result<IngressChat> {
    let mut map = parse_json_object(body)?;
    let mut passthrough = Map::new();
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if CHAT_FIELDS.contains(&key.as_str()) {
            continue;
        }
        if !PASSTHROUGH_FIELDS.contains(&key.as_str()) {
            return Err(unknown_field(&key));
        }
        if let Some(value) = map.remove(&key) {
            passthrough.insert(key, value);
        }
    }
    let wire: wire::ChatRequest = typed(Value::Object(map), "")?;
    if wire.n.is_some_and(|n| n != 1) {
        return Err(Error::invalid_field("n", "Only n=1 is supported."));
    }
    if wire.messages.is_empty() {
        return Err(Error::invalid_field(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
        ));
    }
    let messages = wire
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| decode_message(i, m))
        .collect::<Result<Vec<_>>>()?;
    let tools = wire
        .tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| decode_tool(i, t))
        .collect::<Result<Vec<_>>>()?;
    let tool_choice = wire
        .tool_choice
        .map(|choice| decode_tool_choice(choice, &tools))
        .transpose()?;
    let stop = match wire.stop {
        None => Vec::new(),
        Some(wire::Stop::One(s)) => vec![s],
        Some(wire::Stop::Many(v)) => v,
    };
    if stop.len() > 4 {
        return Err(Error::invalid_field(
            "stop",
            "At most 4 stop sequences are allowed.",
        ));
    }
    let stream = wire.stream.unwrap_or(false);
    let include_usage = stream
        && wire
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
    if wire.stream_options.is_some() && !stream {
        return Err(Error::invalid_field(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ));
    }
    let request = ChatRequest {
        model: wire.model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: wire.parallel_tool_calls,
        response_format: wire
            .response_format
            .map(decode_response_format)
            .transpose()?,
        sampling: Sampling {
            temperature: wire.temperature,
            top_p: wire.top_p,
            presence_penalty: wire.presence_penalty,
            frequency_penalty: wire.frequency_penalty,
            seed: wire.seed,
            top_k: None,
        },
        max_tokens: wire.max_completion_tokens.or(wire.max_tokens),
        stop,
        reasoning_effort: wire.reasoning_effort,
        reasoning_budget: None,
        user: wire.user,
        metadata: wire.metadata,
        stream,
        openai_passthrough: passthrough,
        passthrough: crate::chat::Passthrough::default(),
        scope: None,
    };
    Ok(IngressChat {
        request,
        include_usage,
    })
}

fn decode_role(value: Option<&Value>, param: &str) -> Result<Role> {
    match value.and_then(Value::as_str) {
        Some("system") => Ok(Role::System),
        Some("developer") => Ok(Role::Developer),
        Some("user") => Ok(Role::User),
        Some("assistant") => Ok(Role::Assistant),
        Some("tool") => Ok(Role::Tool),
        _ => Err(Error::invalid_field(
            param,
            format!(
                "Invalid value for '{param}': supported values are 'system', 'developer', \
                 'user', 'assistant' and 'tool'."
            ),
        )),
    }
}

fn decode_message(i: usize, value: Value) -> Result<Message> {
    let at = format!("messages[{i}]");
    let Value::Object(mut obj) = value else {
        return Err(Error::invalid_field(
            &at,
            format!("Invalid type for '{at}': expected an object."),
        ));
    };
    let role = decode_role(obj.get("role"), &format!("{at}.role"))?;
    let mut message = Message::new(role, Vec::new());
    match obj.remove("content") {
        None | Some(Value::Null) if role == Role::Assistant => {}
        None | Some(Value::Null) => {
            return Err(Error::invalid_field(
                format!("{at}.content"),
                format!("Missing required parameter: '{at}.content'."),
            ));
        }
        Some(Value::String(text)) => {
            message.content = vec![ContentPart::Text { text }];
            message.content_is_text = true;
        }
        Some(Value::Array(parts)) => {
            for (j, part) in parts.into_iter().enumerate() {
                decode_part(&mut message, part, &format!("{at}.content[{j}]"))?;
            }
        }
        Some(_) => {
            return Err(Error::invalid_field(
                format!("{at}.content"),
                format!(
                    "Invalid type for '{at}.content': expected a string or an array of content parts."
                ),
            ));
        }
    }
    message.name = optional_string(&obj, "name", &at)?;
    message.refusal = message.refusal.or(optional_string(&obj, "refusal", &at)?);
    if role == Role::Assistant
        && let Some(calls) = obj.remove("tool_calls").filter(|v| !v.is_null())
    {
        let calls: Vec<wire::ToolCall> = typed(calls, &format!("{at}.tool_calls"))?;
        message.tool_calls = calls.into_iter().map(ToolCall::from).collect();
    }
    if role == Role::Tool {
        message.tool_call_id =
            Some(optional_string(&obj, "tool_call_id", &at)?.ok_or_else(|| {
                Error::invalid_field(
                    format!("{at}.tool_call_id"),
                    format!("Missing required parameter: '{at}.tool_call_id'."),
                )
            })?);
    }
    Ok(message)
}

fn optional_string(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid_field(
            format!("{at}.{key}"),
            format!("Invalid type for '{at}.{key}': expected a string."),
        )),
    }
}

fn decode_part(message: &mut Message, part: Value, at: &str) -> Result<()> {
    let kind = part
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let field = |name: &str| format!("{at}.{name}");
    let text_of = |key: &str| {
        part.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::invalid_field(
                    field(key),
                    format!("Missing required parameter: '{}'.", field(key)),
                )
            })
    };
    match kind.as_str() {
        "text" => message.content.push(ContentPart::Text {
            text: text_of("text")?,
        }),
        "refusal" if message.role == Role::Assistant => {
            message.refusal = Some(text_of("refusal")?);
        }
        "image_url" if message.role == Role::User => {
            let image = part.get("image_url");
            let url = image
                .and_then(|i| i.get("url"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::invalid_field(
                        field("image_url.url"),
                        "Missing required parameter: image_url.url.",
                    )
                })?;
            let detail = image
                .and_then(|i| i.get("detail"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let source = decode_image_url(url, &field("image_url.url"))?;
            message.content.push(ContentPart::Image { source, detail });
        }
        "file" if message.role == Role::User => {
            let file = part.get("file").and_then(Value::as_object).ok_or_else(|| {
                Error::invalid_field(field("file"), "Missing required parameter: 'file'.")
            })?;
            let text = |key: &str| file.get(key).and_then(Value::as_str);
            if text("file_id").is_some() {
                return Err(uploaded_file(&field("file.file_id")));
            }
            let data = text("file_data").ok_or_else(|| {
                Error::invalid_field(
                    field("file.file_data"),
                    format!("Missing required parameter: '{}'.", field("file.file_data")),
                )
            })?;
            message.content.push(decode_file_data(
                data,
                text("filename"),
                &field("file.file_data"),
            )?);
        }
        "input_audio" if message.role == Role::User => {
            let audio_at = field("input_audio");
            let audio = part
                .get("input_audio")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    Error::invalid_field(
                        &audio_at,
                        format!("Missing required parameter: '{audio_at}'."),
                    )
                })?;
            let text = |key: &str| {
                audio.get(key).and_then(Value::as_str).ok_or_else(|| {
                    Error::invalid_field(
                        format!("{audio_at}.{key}"),
                        format!("Missing required parameter: '{audio_at}.{key}'."),
                    )
                })
            };
            let format = text("format")?;
            if !AUDIO_FORMATS.contains(&format) {
                return Err(Error::invalid_field(
                    format!("{audio_at}.format"),
                    format!("Invalid value: '{format}'. Supported values are: 'wav' and 'mp3'."),
                ));
            }
            let data = text("data")?;
            if data.is_empty() {
                return Err(Error::invalid_field(
                    format!("{audio_at}.data"),
                    "Invalid audio data: expected base64-encoded audio.",
                ));
            }
            message.content.push(ContentPart::Audio {
                format: format.to_owned(),
                data: data.to_owned(),
            });
        }
        other => {
            return Err(Error::invalid_field(
                field("type"),
                format!(
                    "Invalid value for '{}': content part type '{other}' is not supported for role '{}'.",
                    field("type"),
                    role_name(message.role)
                ),
            ));
        }
    }
    Ok(())
}

/// The audio formats OpenAI's `input_audio` takes, and so the canonical ones.
pub(crate) const AUDIO_FORMATS: &[&str] = &["wav", "mp3"];

/// A file the client uploaded to its provider: its id means nothing to another provider, or to
/// another account of the same one, so the gateway takes documents inline only.
pub(crate) fn uploaded_file(param: &str) -> Error {
    Error::invalid_field(
        param,
        "Uploaded files (file_id) are not supported by this gateway: send the document inline \
         as file_data (data:application/pdf;base64,...).",
    )
    .with_code("unsupported_parameter")
}

/// A document's `file_data` (shared with the Responses dialect): a base64 data URL, or bare
/// base64, which OpenAI reads as a PDF.
pub(crate) fn decode_file_data(
    file_data: &str,
    filename: Option<&str>,
    param: &str,
) -> Result<ContentPart> {
    let (media_type, data) = match file_data.strip_prefix("data:") {
        Some(rest) => rest
            .split_once(";base64,")
            .filter(|(media, _)| media.contains('/'))
            .ok_or_else(|| {
                Error::invalid_field(
                    param,
                    "Invalid file data URL: expected 'data:application/pdf;base64,<data>'.",
                )
            })?,
        None => (PDF, file_data),
    };
    if data.is_empty() {
        return Err(Error::invalid_field(
            param,
            "Invalid file data: the file is empty.",
        ));
    }
    Ok(ContentPart::Document {
        media_type: media_type.to_ascii_lowercase(),
        data: data.to_owned(),
        filename: filename.map(str::to_owned),
    })
}

/// The document type every dialect takes.
pub(crate) const PDF: &str = "application/pdf";

/// A document as `file_data` and the `filename` OpenAI requires beside it (one is made up from
/// the type when the client gave none).
pub(crate) fn encode_file_data(
    media_type: &str,
    data: &str,
    filename: Option<&str>,
) -> (String, String) {
    let filename = filename.map_or_else(
        || match media_type {
            PDF => "document.pdf".to_owned(),
            _ => "document".to_owned(),
        },
        str::to_owned,
    );
    (filename, format!("data:{media_type};base64,{data}"))
}

/// Shared with the Responses dialect, which takes the same image URLs.
pub(crate) fn decode_image_url(url: &str, param: &str) -> Result<ImageSource> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest
            .split_once(";base64,")
            .filter(|(media, data)| media.starts_with("image/") && !data.is_empty())
            .ok_or_else(|| {
                Error::invalid_field(
                    param,
                    "Invalid image data URL: expected 'data:image/<type>;base64,<data>'.",
                )
            })?;
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url(url.to_owned()));
    }
    Err(Error::invalid_field(
        param,
        "Invalid image URL: expected an http(s) URL or a base64 data URL.",
    ))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// OpenAI's rule for function names, in both of its APIs.
pub(crate) fn valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn decode_tool(i: usize, value: Value) -> Result<Tool> {
    let at = format!("tools[{i}]");
    let kind = value.get("type").and_then(Value::as_str);
    if kind != Some("function") {
        return Err(Error::invalid_field(
            format!("{at}.type"),
            format!("Invalid value for '{at}.type': only 'function' tools are supported."),
        ));
    }
    #[derive(serde::Deserialize)]
    struct Function {
        name: String,
        description: Option<String>,
        parameters: Option<Value>,
        strict: Option<bool>,
    }
    let function: Function = typed(
        value.get("function").cloned().unwrap_or(Value::Null),
        &format!("{at}.function"),
    )?;
    if !valid_function_name(&function.name) {
        return Err(Error::invalid_field(
            format!("{at}.function.name"),
            format!(
                "Invalid '{at}.function.name': string does not match pattern. Expected a string \
                 that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
            ),
        ));
    }
    if let Some(parameters) = &function.parameters
        && !parameters.is_object()
    {
        return Err(Error::invalid_field(
            format!("{at}.function.parameters"),
            "Tool parameters must be a JSON Schema object.",
        ));
    }
    Ok(Tool {
        name: function.name,
        description: function.description,
        parameters: function.parameters,
        strict: function.strict,
    })
}

fn decode_tool_choice(value: Value, tools: &[Tool]) -> Result<ToolChoice> {
    let invalid = |message: &str| Error::invalid_field("tool_choice", message.to_owned());
    if tools.is_empty() {
        return Err(invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        ));
    }
    match &value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(invalid(
                "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a named function.",
            )),
        },
        Value::Object(obj) if obj.get("type").and_then(Value::as_str) == Some("function") => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid("Missing required parameter: 'tool_choice.function.name'.")
                })?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(invalid(&format!(
                    "Invalid value for 'tool_choice': function '{name}' is not among the tools."
                )));
            }
            Ok(ToolChoice::Function(name.to_owned()))
        }
        _ => Err(invalid(
            "Invalid value for 'tool_choice': only 'none', 'auto', 'required' and function choices are supported.",
        )),
    }
}

fn decode_response_format(value: Value) -> Result<ResponseFormat> {
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            #[derive(serde::Deserialize)]
            struct JsonSchema {
                name: String,
                description: Option<String>,
                schema: Option<Value>,
                strict: Option<bool>,
            }
            let spec: JsonSchema = typed(
                value.get("json_schema").cloned().unwrap_or(Value::Null),
                "response_format.json_schema",
            )?;
            Ok(ResponseFormat::JsonSchema {
                name: spec.name,
                description: spec.description,
                schema: spec.schema,
                strict: spec.strict,
            })
        }
        _ => Err(Error::invalid_field(
            "response_format.type",
            "Invalid value for 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
        )),
    }
}

/// Encodes a canonical request for an OpenAI-dialect upstream serving it as `target`.
pub fn encode_chat_request(
    request: &ChatRequest,
    target: &str,
    max_tokens_field: MaxTokensField,
) -> Result<Vec<u8>> {
    super::rules::refuse_foreign_passthrough(request, None, "openai")
        .map_err(Error::unsupported_here)?;
    let (max_tokens, max_completion_tokens) = match max_tokens_field {
        MaxTokensField::MaxTokens => (request.max_tokens, None),
        MaxTokensField::MaxCompletionTokens => {
            // OpenAI's own API (and Azure's): its reasoning models refuse sampling.
            super::rules::openai_reasoning_compatible(target, request)
                .map_err(Error::unsupported_here)?;
            (None, request.max_tokens)
        }
    };
    let wire = wire::ChatRequest {
        model: target.to_owned(),
        messages: request.messages.iter().map(encode_message).collect(),
        tools: (!request.tools.is_empty()).then(|| request.tools.iter().map(encode_tool).collect()),
        tool_choice: request.tool_choice.as_ref().map(encode_tool_choice),
        parallel_tool_calls: request.parallel_tool_calls,
        response_format: request.response_format.as_ref().map(encode_response_format),
        stream: request.stream.then_some(true),
        // Always ask for usage: metering needs it whether or not the client wants it.
        stream_options: request.stream.then_some(wire::StreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        }),
        max_tokens,
        max_completion_tokens,
        temperature: request.sampling.temperature,
        top_p: request.sampling.top_p,
        presence_penalty: request.sampling.presence_penalty,
        frequency_penalty: request.sampling.frequency_penalty,
        seed: request.sampling.seed,
        n: None,
        stop: match request.stop.len() {
            0 => None,
            _ => Some(wire::Stop::Many(request.stop.clone())),
        },
        reasoning_effort: request.reasoning_effort.clone(),
        user: request.user.clone(),
        metadata: request.metadata.clone(),
    };
    let mut value = serde_json::to_value(wire)
        .map_err(|e| Error::internal(format!("encoding chat request: {e}")))?;
    if let Value::Object(map) = &mut value {
        for (key, field) in &request.openai_passthrough {
            map.insert(key.clone(), field.clone());
        }
    }
    serde_json::to_vec(&value).map_err(|e| Error::internal(format!("encoding chat request: {e}")))
}

fn encode_part(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text { text } => json!({"type": "text", "text": text}),
        ContentPart::Image { source, detail } => {
            let url = match source {
                ImageSource::Url(url) => url.clone(),
                ImageSource::Base64 { media_type, data } => {
                    format!("data:{media_type};base64,{data}")
                }
            };
            let mut image = json!({"url": url});
            if let Some(detail) = detail {
                image["detail"] = json!(detail);
            }
            json!({"type": "image_url", "image_url": image})
        }
        ContentPart::Document {
            media_type,
            data,
            filename,
        } => {
            let (filename, file_data) = encode_file_data(media_type, data, filename.as_deref());
            json!({"type": "file", "file": {"filename": filename, "file_data": file_data}})
        }
        ContentPart::Audio { format, data } => {
            json!({"type": "input_audio", "input_audio": {"data": data, "format": format}})
        }
    }
}

fn encode_content(message: &Message) -> Value {
    match message.content.as_slice() {
        [] => Value::Null,
        [ContentPart::Text { text }] if message.content_is_text => Value::String(text.clone()),
        parts => Value::Array(parts.iter().map(encode_part).collect()),
    }
}

fn encode_message(message: &Message) -> Value {
    let mut obj = Map::new();
    obj.insert("role".into(), json!(role_name(message.role)));
    let content = encode_content(message);
    // Only assistant messages may omit content (beside tool calls or a refusal).
    if !content.is_null() || message.role == Role::Assistant {
        obj.insert("content".into(), content);
    } else {
        obj.insert("content".into(), json!(""));
    }
    if let Some(name) = &message.name {
        obj.insert("name".into(), json!(name));
    }
    if let Some(refusal) = &message.refusal {
        obj.insert("refusal".into(), json!(refusal));
    }
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|c| json!({"id": upstream_tool_id(&c.id), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        obj.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &message.tool_call_id {
        obj.insert("tool_call_id".into(), json!(upstream_tool_id(id)));
    }
    Value::Object(obj)
}

/// OpenAI caps tool-call ids at 40 characters; ids minted by other providers (and Gemini ids of
/// older gateways, which carried their thought signature) can be longer when a conversation
/// moves here.
fn upstream_tool_id(id: &str) -> String {
    super::rules::sanitize_tool_id(id, |b| b.is_ascii_graphic(), 40)
}

fn encode_tool(tool: &Tool) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), json!(tool.name));
    if let Some(description) = &tool.description {
        function.insert("description".into(), json!(description));
    }
    if let Some(parameters) = &tool.parameters {
        function.insert("parameters".into(), parameters.clone());
    }
    if let Some(strict) = tool.strict {
        function.insert("strict".into(), json!(strict));
    }
    json!({"type": "function", "function": function})
}

fn encode_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

pub(crate) fn encode_response_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => {
            let mut spec = Map::new();
            spec.insert("name".into(), json!(name));
            if let Some(description) = description {
                spec.insert("description".into(), json!(description));
            }
            if let Some(schema) = schema {
                spec.insert("schema".into(), schema.clone());
            }
            if let Some(strict) = strict {
                spec.insert("strict".into(), json!(strict));
            }
            json!({"type": "json_schema", "json_schema": spec})
        }
    }
}

pub(crate) fn decode_finish_reason(raw: &str) -> FinishReason {
    match raw {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

pub(crate) fn encode_finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        // OpenAI has no "other": a natural stop is the least surprising reading.
        FinishReason::Stop | FinishReason::Other => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

pub(crate) fn decode_usage(usage: &wire::Usage) -> Usage {
    let prompt = usage.prompt_tokens_details.as_ref();
    Usage {
        input_tokens: usage.prompt_tokens,
        cached_input_tokens: prompt.and_then(|d| d.cached_tokens).unwrap_or(0),
        cache_write_tokens: prompt.and_then(|d| d.cache_write_tokens).unwrap_or(0),
        output_tokens: usage.completion_tokens,
        reasoning_tokens: usage
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
    }
}

pub(crate) fn encode_usage(usage: &Usage) -> wire::Usage {
    wire::Usage {
        prompt_tokens: usage.input_tokens,
        completion_tokens: usage.output_tokens,
        total_tokens: usage.total_tokens(),
        prompt_tokens_details: Some(wire::PromptTokensDetails {
            cached_tokens: Some(usage.cached_input_tokens),
            cache_write_tokens: (usage.cache_write_tokens > 0).then_some(usage.cache_write_tokens),
        }),
        completion_tokens_details: Some(wire::CompletionTokensDetails {
            reasoning_tokens: Some(usage.reasoning_tokens),
        }),
    }
}

/// Decodes an OpenAI-dialect upstream's non-streamed chat completion.
pub fn decode_chat_response(body: &[u8]) -> Result<ChatResponse> {
    let wire: wire::ChatResponse = serde_json::from_slice(body).map_err(|e| {
        Error::bad_upstream(format!(
            "The upstream returned an invalid chat completion: {e}"
        ))
    })?;
    let choice = wire.choices.into_iter().next().ok_or_else(|| {
        Error::bad_upstream("The upstream returned a chat completion without choices.")
    })?;
    let mut message = Message::new(Role::Assistant, Vec::new());
    if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
        message.content.push(ContentPart::Text { text });
        message.content_is_text = true;
    }
    message.refusal = choice.message.refusal;
    message.tool_calls = choice
        .message
        .tool_calls
        .into_iter()
        .map(ToolCall::from)
        .collect();
    let finish_reason = match choice.finish_reason.as_deref() {
        Some(raw) => decode_finish_reason(raw),
        None if !message.tool_calls.is_empty() => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    Ok(ChatResponse {
        id: wire.id,
        model: wire.model,
        created: wire.created,
        message,
        finish_reason,
        raw_finish_reason: choice.finish_reason,
        usage: wire.usage.as_ref().map(decode_usage),
        system_fingerprint: wire.system_fingerprint,
    })
}

/// Encodes our answer to a client exactly as OpenAI would.
pub fn encode_chat_response(response: &ChatResponse) -> Result<Vec<u8>> {
    let text = response.message.text_content();
    let has_calls = !response.message.tool_calls.is_empty();
    let wire = wire::ChatResponse {
        id: response.id.clone(),
        object: "chat.completion".to_owned(),
        created: response.created,
        model: response.model.clone(),
        choices: vec![wire::Choice {
            index: 0,
            message: wire::ResponseMessage {
                role: "assistant".to_owned(),
                // `null`, not "", beside tool calls, as OpenAI does.
                content: if text.is_empty() && has_calls {
                    None
                } else {
                    Some(text)
                },
                refusal: response.message.refusal.clone(),
                tool_calls: response
                    .message
                    .tool_calls
                    .iter()
                    .map(|c| wire::ToolCall {
                        id: c.id.clone(),
                        kind: wire::function_type(),
                        function: wire::FunctionCall {
                            name: c.name.clone(),
                            arguments: c.arguments.clone(),
                        },
                    })
                    .collect(),
                annotations: Some(Vec::new()),
            },
            finish_reason: Some(encode_finish_reason(response.finish_reason).to_owned()),
            logprobs: None,
        }],
        usage: response.usage.as_ref().map(encode_usage),
        system_fingerprint: response.system_fingerprint.clone(),
    };
    serde_json::to_vec(&wire).map_err(|e| Error::internal(format!("encoding chat response: {e}")))
}

/// A decoded client embeddings request plus how the client wants vectors encoded.
#[derive(Debug)]
pub struct IngressEmbedding {
    pub request: EmbeddingRequest,
    pub base64: bool,
}

/// Decodes a client's `POST /v1/embeddings` body.
pub fn decode_embedding_request(body: &[u8]) -> Result<IngressEmbedding> {
    let map = parse_json_object(body)?;
    if let Some(key) = map.keys().find(|k| !EMBEDDING_FIELDS.contains(&k.as_str())) {
        return Err(unknown_field(key));
    }
    let wire: wire::EmbeddingRequest = typed(Value::Object(map), "")?;
    let invalid_input = || {
        Error::invalid_field(
            "input",
            "Invalid 'input': expected a non-empty string, an array of non-empty strings, an \
             array of token ids or an array of token-id arrays.",
        )
    };
    let input = match wire.input {
        Value::String(s) if !s.is_empty() => EmbeddingInput::Texts(vec![s]),
        Value::Array(items) if !items.is_empty() => {
            if items
                .iter()
                .all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            {
                EmbeddingInput::Texts(
                    items
                        .into_iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                )
            } else if items.iter().all(Value::is_u64) {
                EmbeddingInput::Tokens(vec![token_ids(&items).ok_or_else(invalid_input)?])
            } else if items
                .iter()
                .all(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            {
                let rows = items
                    .iter()
                    .map(|row| row.as_array().and_then(|a| token_ids(a)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(invalid_input)?;
                EmbeddingInput::Tokens(rows)
            } else {
                return Err(invalid_input());
            }
        }
        _ => return Err(invalid_input()),
    };
    let base64 = match wire.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(Error::invalid_field(
                "encoding_format",
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
            ));
        }
    };
    Ok(IngressEmbedding {
        request: EmbeddingRequest {
            model: wire.model,
            input,
            dimensions: wire.dimensions,
            user: wire.user,
        },
        base64,
    })
}

fn token_ids(items: &[Value]) -> Option<Vec<u32>> {
    items
        .iter()
        .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

/// Encodes an embeddings request for an OpenAI-dialect upstream. Vectors are fetched as base64:
/// a quarter of the bytes of a float array, and no float re-parsing.
pub fn encode_embedding_request(request: &EmbeddingRequest, target: &str) -> Result<Vec<u8>> {
    let input = match &request.input {
        EmbeddingInput::Texts(texts) => json!(texts),
        EmbeddingInput::Tokens(tokens) => json!(tokens),
    };
    let wire = wire::EmbeddingRequest {
        model: target.to_owned(),
        input,
        dimensions: request.dimensions,
        encoding_format: Some("base64".to_owned()),
        user: request.user.clone(),
    };
    serde_json::to_vec(&wire)
        .map_err(|e| Error::internal(format!("encoding embeddings request: {e}")))
}

/// Decodes an OpenAI-dialect embeddings response (float arrays or base64 vectors).
pub fn decode_embedding_response(body: &[u8]) -> Result<EmbeddingResponse> {
    let bad = |what: &str| {
        Error::bad_upstream(format!("The upstream returned invalid embeddings: {what}"))
    };
    let wire: wire::EmbeddingResponse =
        serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    let mut data = wire.data;
    data.sort_by_key(|e| e.index);
    let vectors = data
        .into_iter()
        .map(|item| match item.embedding {
            Value::String(b64) => {
                let bytes = BASE64
                    .decode(b64.as_bytes())
                    .map_err(|e| bad(&e.to_string()))?;
                if bytes.len() % 4 != 0 {
                    return Err(bad("base64 vector length is not a multiple of 4"));
                }
                Ok(bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect())
            }
            Value::Array(values) => values
                .iter()
                .map(|v| v.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| bad("non-numeric vector element")),
            _ => Err(bad("vector is neither an array nor a base64 string")),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EmbeddingResponse {
        model: wire.model,
        vectors,
        input_tokens: wire.usage.prompt_tokens,
    })
}

/// Encodes embeddings for a client, as floats or base64 as it asked.
pub fn encode_embedding_response(response: &EmbeddingResponse, base64: bool) -> Result<Vec<u8>> {
    let data = response
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(BASE64.encode(bytes))
            } else {
                json!(vector)
            };
            wire::Embedding {
                object: "embedding".to_owned(),
                index: index as u32,
                embedding,
            }
        })
        .collect();
    let wire = wire::EmbeddingResponse {
        object: "list".to_owned(),
        data,
        model: response.model.clone(),
        usage: wire::EmbeddingUsage {
            prompt_tokens: response.input_tokens,
            total_tokens: response.input_tokens,
        },
    };
    serde_json::to_vec(&wire).map_err(|e| Error::internal(format!("encoding embeddings: {e}")))
}

/// Encodes an error in OpenAI's shape.
pub fn encode_error(error: &Error) -> Vec<u8> {
    let body = json!({
        "error": {
            "message": error.message,
            "type": error.openai_type(),
            "param": error.param,
            "code": error.code,
        }
    });
    body.to_string().into_bytes()
}

/// Decodes an OpenAI- or Azure-shaped error body returned with an HTTP error status.
pub fn decode_error(status: u16, body: &[u8]) -> Error {
    let parsed: Option<wire::ErrorBody> = serde_json::from_slice(body).ok();
    let Some(detail) = parsed.map(|b| b.error) else {
        return Error::from_upstream_status(
            status,
            format!("The upstream returned HTTP {status}."),
        );
    };
    let code = match detail.code {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let message = if detail.message.is_empty() {
        format!("The upstream returned HTTP {status}.")
    } else {
        detail.message
    };
    let mut error = Error::from_upstream_status(status, message);
    error.param = detail.param;
    let quota = matches!(
        code.as_deref().or(detail.kind.as_deref()),
        Some("insufficient_quota" | "billing_hard_limit_reached" | "billing_not_active")
    );
    if status == 429 && quota {
        error = error.quota_exceeded();
    }
    error.code = code;
    error
}

/// Decodes an in-band `{"error": ...}` payload met inside a 200 stream.
pub(crate) fn decode_stream_error(value: &Value) -> Error {
    let detail = value.get("error");
    let message = detail
        .and_then(|d| d.get("message"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or("The upstream reported an error mid-stream.");
    let mut error = Error::stream_interrupted(message);
    error.code = detail.and_then(|d| d.get("code")).and_then(|c| match c {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    error
}

/// Which OpenAI service a provider is: they share the dialect and differ in URLs and auth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service<'a> {
    OpenAi,
    Azure(&'a crate::config::AzureSettings),
    /// vLLM, llama.cpp, Ollama...: `max_tokens` by default, an endpoint required.
    Compatible,
}

/// This dialect's rows of the provider table: OpenAI, Azure OpenAI and OpenAI-compatible
/// servers, through Chat Completions or (`api = "responses"`) the Responses API.
pub(crate) fn provider_parts(
    service: Service<'_>,
    options: &crate::config::OpenAiOptions,
    endpoint: Option<String>,
) -> std::result::Result<super::Parts, String> {
    use crate::config::{AzureAuth, MaxTokensFieldConfig, OpenAiApi};
    let endpoint = match (endpoint, service) {
        (Some(endpoint), _) => endpoint,
        (None, Service::OpenAi) => "https://api.openai.com/v1".to_owned(),
        (None, _) => {
            return Err(
                "an endpoint is required (a simulated provider needs its simulator running)"
                    .to_owned(),
            );
        }
    };
    let (azure_api_version, key_header) = match service {
        Service::Azure(azure) => (
            Some(azure.api_version.clone()),
            match azure.auth {
                AzureAuth::Bearer => "authorization",
                AzureAuth::ApiKey => "api-key",
            },
        ),
        Service::OpenAi | Service::Compatible => (None, "authorization"),
    };
    if options.api == OpenAiApi::Responses {
        let egress = super::responses::ResponsesEgress { azure_api_version };
        return Ok(super::Parts::new(egress, endpoint, Some(key_header)));
    }
    let max_tokens_field = match (options.max_tokens_field, service) {
        (Some(MaxTokensFieldConfig::MaxTokens), _) | (None, Service::Compatible) => {
            MaxTokensField::MaxTokens
        }
        (Some(MaxTokensFieldConfig::MaxCompletionTokens), _) | (None, _) => {
            MaxTokensField::MaxCompletionTokens
        }
    };
    let egress = super::OpenAiEgress {
        max_tokens_field,
        azure_api_version,
    };
    Ok(super::Parts::new(egress, endpoint, Some(key_header)))
}

#[cfg(test)]
mod tests;

//! The Responses API as an upstream dialect, for OpenAI and Azure deployments configured with
//! `api = "responses"` (reasoning models whose reasoning items must come back with their tool
//! calls). Reasoning output items become canonical `Reasoning` of the OpenAI family (the whole
//! item, `encrypted_content` included, since nothing is stored upstream) and are replayed just
//! before the function calls they produced; other families' reasoning is never sent here.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::encode_tool_choice;
use crate::chat::{
    ChatRequest, ChatResponse, ContentPart, Family, FinishReason, ImageSource, Message, Reasoning,
    ResponseFormat, Role, StreamEvent, ToolCall, Usage, WireDialect,
};
use crate::dialects::{Egress, Frame, Operation, StreamDecode, encode_path_segment, openai};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

/// OpenAI Chat fields the Responses API also takes under the same name and meaning.
/// The fewest output tokens the Responses API takes (`max_output_tokens` minimum 16).
pub(super) const MIN_OUTPUT_TOKENS: u32 = 16;

const PASSTHROUGH: &[&str] = &["service_tier", "prompt_cache_key", "safety_identifier"];

/// The Responses API upstream: OpenAI (`{endpoint}/responses`) or Azure OpenAI's v1 API
/// (`{endpoint}/openai/v1/responses`, the deployment name as `model`).
#[derive(Debug, Default)]
pub struct ResponsesEgress {
    /// `Some(api_version)` for Azure (embeddings still use its deployment-scoped URLs).
    pub azure_api_version: Option<String>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User | Role::Tool => "user",
        Role::Assistant => "assistant",
    }
}

fn input_part(part: &ContentPart, assistant: bool, param: &str) -> Result<Value> {
    match part {
        ContentPart::Text { text } if assistant => {
            Ok(json!({"type": "output_text", "text": text, "annotations": []}))
        }
        ContentPart::Text { text } => Ok(json!({"type": "input_text", "text": text})),
        ContentPart::Image { source, detail } => {
            let url = match source {
                ImageSource::Url(url) => url.clone(),
                ImageSource::Base64 { media_type, data } => {
                    format!("data:{media_type};base64,{data}")
                }
            };
            Ok(json!({"type": "input_image", "image_url": url,
                   "detail": detail.clone().unwrap_or_else(|| "auto".to_owned())}))
        }
        ContentPart::Document {
            media_type,
            data,
            filename,
        } => {
            let (filename, file_data) =
                openai::encode_file_data(media_type, data, filename.as_deref());
            Ok(json!({"type": "input_file", "filename": filename, "file_data": file_data}))
        }
        // The Responses API's input content is text, images and files only.
        ContentPart::Audio { .. } => Err(Error::invalid_field(
            param,
            "The Responses API takes no audio input: this model's deployment cannot read the \
             request's audio.",
        )),
    }
}

/// Canonical messages as input items; assistant tool calls become `function_call` items
/// preceded by their OpenAI reasoning items.
fn input_items(messages: &[Message]) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let param = |j: usize| format!("messages[{i}].content[{j}]");
        match message.role {
            Role::Tool => items.push(json!({
                "type": "function_call_output",
                "call_id": message.tool_call_id.clone().unwrap_or_default(),
                "output": message.text_content(),
            })),
            Role::Assistant => {
                for reasoning in message
                    .reasoning
                    .iter()
                    .filter(|r| r.family == Family::OpenAi)
                {
                    items.push(reasoning.data.clone());
                }
                if !message.content.is_empty() || message.refusal.is_some() {
                    let mut content: Vec<Value> = message
                        .content
                        .iter()
                        .enumerate()
                        .map(|(j, p)| input_part(p, true, &param(j)))
                        .collect::<Result<_>>()?;
                    if let Some(refusal) = &message.refusal {
                        content.push(json!({"type": "refusal", "refusal": refusal}));
                    }
                    items.push(json!({"type": "message", "role": "assistant", "content": content}));
                }
                for call in &message.tool_calls {
                    items.push(json!({"type": "function_call", "call_id": call.id,
                                      "name": call.name, "arguments": call.arguments}));
                }
            }
            role => {
                let content: Vec<Value> = message
                    .content
                    .iter()
                    .enumerate()
                    .map(|(j, p)| input_part(p, false, &param(j)))
                    .collect::<Result<_>>()?;
                items.push(json!({"type": "message", "role": role_name(role), "content": content}));
            }
        }
    }
    Ok(items)
}

fn encode_format(format: &ResponseFormat) -> Value {
    let mut value = openai::encode_response_format(format);
    // The Responses API takes a schema's settings beside `type`, and always a schema.
    if let Some(Value::Object(mut spec)) = value.get_mut("json_schema").map(Value::take) {
        spec.insert("type".into(), json!("json_schema"));
        spec.entry("schema")
            .or_insert_with(|| json!({"type": "object"}));
        value = Value::Object(spec);
    }
    value
}

/// Encodes a canonical request as a `CreateResponse` body for `target`. Nothing is stored
/// upstream: the conversation travels whole each time, reasoning as encrypted content.
pub fn encode_request(request: &ChatRequest, target: &str) -> Result<Vec<u8>> {
    // OpenAI's reasoning models refuse sampling here as on Chat Completions.
    crate::dialects::rules::openai_reasoning_compatible(target, request)
        .map_err(Error::unsupported_here)?;
    crate::dialects::rules::refuse_foreign_passthrough(
        request,
        Some(WireDialect::Responses),
        "responses",
    )
    .map_err(Error::unsupported_here)?;
    let own = request.passthrough.of(WireDialect::Responses);
    if !request.stop.is_empty() {
        return Err(Error::invalid_field(
            "stop",
            "Stop sequences are not supported by Responses API deployments.",
        )
        .unsupported_here());
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(target));
    body.insert("input".into(), json!(input_items(&request.messages)?));
    body.insert("store".into(), json!(false));
    body.insert("include".into(), json!(["reasoning.encrypted_content"]));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                    "strict": tool.strict.unwrap_or(false),
                })
            })
            .collect();
        body.insert("tools".into(), json!(tools));
    }
    // Provider-run tools go to a Responses upstream as the client sent them.
    if let Some(own) = own
        && !own.hosted_tools.is_empty()
    {
        let mut tools = match body.remove("tools") {
            Some(Value::Array(tools)) => tools,
            _ => Vec::new(),
        };
        tools.extend(own.hosted_tools.iter().map(|(_, tool)| tool.clone()));
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        body.insert("tool_choice".into(), encode_tool_choice(choice));
    }
    if let Some(parallel) = request.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), json!(parallel));
    }
    if let Some(format) = &request.response_format {
        body.insert("text".into(), json!({"format": encode_format(format)}));
    }
    if let Some(max) = request.max_tokens {
        // The Responses API refuses fewer than 16; raising the cap would change what the client
        // asked for, so such a request is another deployment's to serve.
        if max < MIN_OUTPUT_TOKENS {
            return Err(Error::invalid_field(
                "max_tokens",
                format!(
                    "Responses API deployments take at least {MIN_OUTPUT_TOKENS} output tokens; this request allows {max}."
                ),
            )
            .unsupported_here());
        }
        body.insert("max_output_tokens".into(), json!(max));
    }
    let effort = request.reasoning_effort.clone().or_else(|| {
        request
            .reasoning_budget
            .map(|b| crate::dialects::rules::effort_for_budget(b).to_owned())
    });
    if let Some(effort) = effort {
        body.insert("reasoning".into(), json!({"effort": effort}));
    }
    if let Some(temperature) = request.sampling.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.sampling.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if let Some(user) = &request.user {
        body.insert("user".into(), json!(user));
    }
    if let Some(metadata) = &request.metadata {
        body.insert("metadata".into(), json!(metadata));
    }
    for (key, value) in &request.openai_passthrough {
        if !PASSTHROUGH.contains(&key.as_str()) {
            return Err(Error::invalid_field(
                key.clone(),
                format!("`{key}` is not supported by Responses API deployments."),
            )
            .unsupported_here());
        }
        body.insert(key.clone(), value.clone());
    }
    // The client's own Responses fields (service hints, `client_metadata`, fields a route lets
    // through) go on verbatim; what the gateway sets itself stays as it set it.
    for (key, value) in own.into_iter().flat_map(|own| &own.fields) {
        body.entry(key.clone()).or_insert_with(|| value.clone());
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    serde_json::to_vec(&body).map_err(|e| Error::internal(format!("encoding responses: {e}")))
}

fn decode_usage(usage: &Value) -> Option<Usage> {
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    usage.is_object().then(|| Usage {
        input_tokens: count(&usage["input_tokens"]),
        cached_input_tokens: count(&usage["input_tokens_details"]["cached_tokens"]),
        cache_write_tokens: count(&usage["input_tokens_details"]["cache_write_tokens"]),
        output_tokens: count(&usage["output_tokens"]),
        reasoning_tokens: count(&usage["output_tokens_details"]["reasoning_tokens"]),
    })
}

fn finish_of(response: &Value, has_calls: bool) -> (FinishReason, Option<String>) {
    match response["status"].as_str() {
        Some("incomplete") => {
            let reason = response["incomplete_details"]["reason"]
                .as_str()
                .unwrap_or("incomplete");
            let canonical = if reason == "content_filter" {
                FinishReason::ContentFilter
            } else {
                FinishReason::Length
            };
            (canonical, Some(reason.to_owned()))
        }
        _ if has_calls => (FinishReason::ToolCalls, None),
        _ => (FinishReason::Stop, None),
    }
}

fn reasoning_of(item: &Value) -> Reasoning {
    Reasoning {
        family: Family::OpenAi,
        data: item.clone(),
    }
}

/// Decodes a non-streamed `Response` object.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::bad_upstream(format!("The upstream returned an invalid response: {e}"))
    })?;
    response_from_value(&value)
}

fn response_from_value(value: &Value) -> Result<ChatResponse> {
    if value["status"] == "failed" {
        let message = value["error"]["message"]
            .as_str()
            .unwrap_or("The upstream response failed.");
        return Err(Error::from_upstream_status(500, message));
    }
    let mut message = Message::new(Role::Assistant, Vec::new());
    for item in value["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("reasoning") => message.reasoning.push(reasoning_of(item)),
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    match part["type"].as_str() {
                        Some("output_text") => message
                            .content
                            .push(ContentPart::text(part["text"].as_str().unwrap_or_default())),
                        Some("refusal") => {
                            message.refusal = part["refusal"].as_str().map(str::to_owned);
                        }
                        _ => {}
                    }
                }
            }
            Some("function_call") => message.tool_calls.push(ToolCall {
                id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                name: item["name"].as_str().unwrap_or_default().to_owned(),
                arguments: item["arguments"].as_str().unwrap_or_default().to_owned(),
            }),
            _ => {}
        }
    }
    message.content_is_text = message.content.len() == 1;
    let (finish_reason, raw_finish_reason) = finish_of(value, !message.tool_calls.is_empty());
    Ok(ChatResponse {
        id: value["id"].as_str().unwrap_or_default().to_owned(),
        model: value["model"].as_str().unwrap_or_default().to_owned(),
        created: value["created_at"].as_f64().map_or(0, |t| t as u64),
        message,
        finish_reason,
        raw_finish_reason,
        usage: decode_usage(&value["usage"]),
        system_fingerprint: None,
    })
}

/// Turns a Responses event stream into canonical events. Argument deltas carry only the item
/// id, so calls are indexed by item id from their `output_item.added`.
#[derive(Debug, Default)]
pub struct ResponsesStreamDecoder {
    started: bool,
    done: bool,
    calls: HashMap<String, u32>,
}

impl ResponsesStreamDecoder {
    fn start(&mut self, response: &Value, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: response["id"].as_str().unwrap_or_default().to_owned(),
                model: response["model"].as_str().unwrap_or_default().to_owned(),
                created: response["created_at"].as_f64().map_or(0, |t| t as u64),
            });
        }
    }
}

impl StreamDecode for ResponsesStreamDecoder {
    fn decode(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.done {
            return Ok(());
        }
        let event: Value = serde_json::from_str(frame.data).map_err(|e| {
            Error::bad_upstream(format!("The upstream sent a malformed stream event: {e}"))
        })?;
        let kind = event["type"].as_str().unwrap_or(frame.event);
        match kind {
            "response.created" | "response.in_progress" => self.start(&event["response"], out),
            "response.output_text.delta" => {
                if let Some(delta) = event["delta"].as_str().filter(|d| !d.is_empty()) {
                    out.push(StreamEvent::TextDelta(delta.to_owned()));
                }
            }
            "response.refusal.delta" => {
                if let Some(delta) = event["delta"].as_str().filter(|d| !d.is_empty()) {
                    out.push(StreamEvent::RefusalDelta(delta.to_owned()));
                }
            }
            "response.output_item.added" if event["item"]["type"] == "function_call" => {
                let item = &event["item"];
                let index = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                self.calls
                    .insert(item["id"].as_str().unwrap_or_default().to_owned(), index);
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                });
                if let Some(arguments) = item["arguments"].as_str().filter(|a| !a.is_empty()) {
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments: arguments.to_owned(),
                    });
                }
            }
            "response.function_call_arguments.delta" => {
                let index = event["item_id"]
                    .as_str()
                    .and_then(|id| self.calls.get(id))
                    .copied()
                    .ok_or_else(|| {
                        Error::bad_upstream("The upstream sent arguments for an unknown call.")
                    })?;
                if let Some(delta) = event["delta"].as_str().filter(|d| !d.is_empty()) {
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments: delta.to_owned(),
                    });
                }
            }
            "response.output_item.done" if event["item"]["type"] == "reasoning" => {
                out.push(StreamEvent::ReasoningDelta(reasoning_of(&event["item"])));
            }
            "response.completed" | "response.incomplete" => {
                let response = &event["response"];
                self.start(response, out);
                self.done = true;
                let (reason, raw) = finish_of(response, !self.calls.is_empty());
                out.push(StreamEvent::Finish { reason, raw });
                if let Some(usage) = decode_usage(&response["usage"]) {
                    out.push(StreamEvent::Usage(usage));
                }
            }
            "response.failed" => {
                let message = event["response"]["error"]["message"]
                    .as_str()
                    .unwrap_or("The upstream response failed mid-stream.");
                return Err(Error::stream_interrupted(message));
            }
            "error" => {
                let message = event["message"]
                    .as_str()
                    .unwrap_or("The upstream reported an error mid-stream.");
                return Err(Error::stream_interrupted(message));
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        crate::dialects::stream_end(
            self.done,
            "The upstream stream ended before it was complete.",
        )
    }
}

impl Egress for ResponsesEgress {
    fn accepts_image_urls(&self) -> bool {
        true
    }

    fn url(&self, endpoint: &str, target: &str, operation: Operation) -> Result<String> {
        Ok(match (operation, &self.azure_api_version) {
            (Operation::Chat { .. }, None) => format!("{endpoint}/responses"),
            (Operation::Chat { .. }, Some(_)) => format!("{endpoint}/openai/v1/responses"),
            (Operation::Embeddings, None) => format!("{endpoint}/embeddings"),
            (Operation::Embeddings, Some(version)) => format!(
                "{endpoint}/openai/deployments/{}/embeddings?api-version={version}",
                encode_path_segment(target),
            ),
        })
    }

    fn chat_body(&self, request: &ChatRequest, target: &str) -> Result<Vec<u8>> {
        encode_request(request, target)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse> {
        decode_response(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecode> {
        Box::new(ResponsesStreamDecoder::default())
    }

    fn embedding_body(&self, request: &EmbeddingRequest, target: &str) -> Result<Vec<u8>> {
        openai::encode_embedding_request(request, target)
    }

    fn embedding_response(&self, body: &[u8]) -> Result<EmbeddingResponse> {
        openai::decode_embedding_response(body)
    }

    fn error(&self, status: u16, _headers: &reqwest::header::HeaderMap, body: &[u8]) -> Error {
        openai::decode_error(status, body)
    }
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod tests;

//! The OpenAI Responses API (`POST /v1/responses`; Azure's v1 API at `/openai/v1/responses`),
//! stateless (`store: false` only, as a gateway uses it), written from the OpenAPI spec.
//!
//! Like OpenAI's reasoning models, a request with `reasoning.effort` gets a `reasoning` output
//! item (with `encrypted_content`) before its answer, and must send that item back before the
//! `function_call` items it produced: a call without its reasoning item is a 400, as upstream.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Target, early_fault, render_error};
use crate::behaviour::{
    self, Answer, Conversation, Effort, Finish, Message, Output, OutputFormat, Role, Tool,
    ToolCall, ToolChoice,
};
use crate::error::SimError;
use crate::faults::{self, Frame, Pacing, StreamScript};
use crate::state::App;
use crate::{ids, media};

const FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "max_output_tokens",
    "reasoning",
    "stream",
    "store",
    "include",
    "temperature",
    "top_p",
    "user",
    "metadata",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "truncation",
    "client_metadata",
    "prompt_cache_retention",
    "max_tool_calls",
    "top_logprobs",
];

/// Provider-run tool types the API takes (coding agents send `web_search` and `tool_search`).
const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "web_search_2025_08_26",
    "file_search",
    "code_interpreter",
    "image_generation",
    "mcp",
    "tool_search",
    "computer_use_preview",
];

/// Prefix of the sim's encrypted reasoning, so it recognises its own.
const REASONING_PREFIX: &str = "sim-reasoning:";

struct Request {
    conversation: Conversation,
    model: String,
    stream: bool,
}

fn invalid(param: &str, message: impl Into<String>) -> SimError {
    SimError::invalid(message).param(param)
}

fn text_of(content: &Value, at: &str) -> Result<(String, u64), SimError> {
    match content {
        Value::String(text) => Ok((text.clone(), 0)),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            let mut attachments = 0;
            for (j, part) in parts.iter().enumerate() {
                match part["type"].as_str() {
                    Some("input_text" | "output_text") => {
                        texts.push(part["text"].as_str().unwrap_or_default().to_owned());
                    }
                    Some("refusal") => {}
                    Some("input_image") => attachments += 1,
                    Some("input_file") => {
                        check_input_file(part, &format!("{at}.content[{j}]"))?;
                        attachments += 1;
                    }
                    _ => {
                        return Err(invalid(
                            &format!("{at}.content[{j}].type"),
                            format!("Invalid value for '{at}.content[{j}].type'."),
                        ));
                    }
                }
            }
            Ok((texts.join("\n"), attachments))
        }
        _ => Err(invalid(
            &format!("{at}.content"),
            format!("Invalid type for '{at}.content'."),
        )),
    }
}

/// An `input_file` names one source; inline data is a base64 data URL of a type the API
/// reads, in the API's words (seen in vercel/ai#7776 and strands-agents/harness-sdk#3576).
fn check_input_file(part: &Value, at: &str) -> Result<(), SimError> {
    let sources = ["file_id", "file_data", "file_url"]
        .iter()
        .filter(|key| part[**key].is_string())
        .count();
    if sources == 0 {
        return Err(invalid(
            &format!("{at}.file_id"),
            format!("Missing required parameter: '{at}.file_id'."),
        )
        .code("missing_required_parameter"));
    }
    let Some(data) = part["file_data"].as_str() else {
        return Ok(());
    };
    let param = format!("{at}.file_data");
    match media::data_url(data) {
        Ok((media_type, _)) if media_type.contains('/') => Ok(()),
        Ok(_) | Err(Some(_)) => Err(invalid(
            &param,
            format!(
                "Invalid file data: '{param}'. Expected a base64-encoded data URL with a valid \
                 file MIME type (e.g. 'data:text/plain;base64,SGVsbG8sIFdvcmxkIQ=='), but got an \
                 invalid base64-encoded value. Please see \
                 https://platform.openai.com/docs/assistants/tools/file-search#supported-files \
                 for supported file types."
            ),
        )
        .code("invalid_value")),
        // Raw base64 without the data URL.
        Err(None) => Err(invalid(&param, format!("Invalid '{param}'.")).code("invalid_value")),
    }
}

fn required_str<'v>(item: &'v Value, key: &str, at: &str) -> Result<&'v str, SimError> {
    item[key].as_str().ok_or_else(|| {
        invalid(
            &format!("{at}.{key}"),
            format!("Missing required parameter: '{at}.{key}'."),
        )
    })
}

fn parse_effort(object: &Map<String, Value>) -> Result<Effort, SimError> {
    let name = object
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str);
    match name.map(Effort::named) {
        None => Ok(Effort::None),
        // The Responses API has no `max`.
        Some(None | Some(Effort::Max)) => Err(invalid(
            "reasoning.effort",
            "Invalid value for 'reasoning.effort'.",
        )),
        Some(Some(effort)) => Ok(effort),
    }
}

fn parse_items(
    items: &[Value],
    effort: Effort,
    messages: &mut Vec<Message>,
) -> Result<(), SimError> {
    // Whether the current assistant turn has carried its reasoning item back.
    let mut reasoning_in_turn = false;
    // Call ids of the `function_call` items so far, and whether each has its output.
    let mut calls: Vec<(String, bool)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        match item["type"].as_str().unwrap_or("message") {
            "message" => {
                let role = match item["role"].as_str() {
                    Some("user") => Role::User,
                    Some("system" | "developer") => Role::System,
                    Some("assistant") => Role::Assistant,
                    _ => {
                        return Err(invalid(
                            &format!("{at}.role"),
                            format!("Invalid value for '{at}.role'."),
                        ));
                    }
                };
                let (text, attachments) = text_of(&item["content"], &at)?;
                if role != Role::Assistant {
                    reasoning_in_turn = false;
                }
                let mut message = Message::new(role, text);
                message.attachments = attachments;
                messages.push(message);
            }
            "reasoning" => {
                let sealed = item["encrypted_content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(REASONING_PREFIX));
                if !sealed {
                    return Err(invalid(
                        &format!("{at}.encrypted_content"),
                        "Reasoning items need their encrypted_content when store is false.",
                    ));
                }
                reasoning_in_turn = true;
            }
            "function_call" => {
                let call = ToolCall {
                    id: required_str(item, "call_id", &at)?.to_owned(),
                    name: required_str(item, "name", &at)?.to_owned(),
                    arguments: required_str(item, "arguments", &at)?.to_owned(),
                };
                if effort != Effort::None && !reasoning_in_turn {
                    return Err(invalid(
                        &at,
                        format!(
                            "Item '{}' of type 'function_call' was provided without its required \
                             'reasoning' item.",
                            call.id
                        ),
                    ));
                }
                calls.push((call.id.clone(), false));
                match messages.last_mut() {
                    Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                    _ => {
                        let mut message = Message::new(Role::Assistant, "");
                        message.tool_calls.push(call);
                        messages.push(message);
                    }
                }
            }
            "function_call_output" => {
                reasoning_in_turn = false;
                let output = match &item["output"] {
                    Value::String(text) => text.clone(),
                    other => text_of(other, &at)?.0,
                };
                let call_id = required_str(item, "call_id", &at)?;
                match calls.iter_mut().find(|(id, _)| id == call_id) {
                    Some((_, answered)) => *answered = true,
                    None => {
                        return Err(invalid(
                            "input",
                            format!(
                                "No tool call found for function call output with call_id \
                                 {call_id}."
                            ),
                        ));
                    }
                }
                let mut message = Message::new(Role::Tool, output);
                message.tool_call_id = Some(call_id.to_owned());
                messages.push(message);
            }
            other => {
                return Err(invalid(
                    &format!("{at}.type"),
                    format!("Invalid value: '{other}'."),
                ));
            }
        }
    }
    // Like Chat Completions, every call in the history needs its output.
    match calls.iter().find(|(_, answered)| !answered) {
        Some((id, _)) => Err(invalid(
            "input",
            format!("No tool output found for function call {id}."),
        )),
        None => Ok(()),
    }
}

/// Reasoning models refuse sampling through the Responses API too ("Unsupported parameter:
/// 'temperature' is not supported with this model."). As on Chat, a temperature of 1 passes, and
/// gpt-5.x refuse only when asked to reason.
fn reasoning_model_sampling(object: &Map<String, Value>, model: &str) -> Result<(), SimError> {
    if !super::request::is_reasoning_family(model) {
        return Ok(());
    }
    let effort = object
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str);
    if super::request::bare_model(model).starts_with("gpt-5.")
        && matches!(effort, None | Some("none"))
    {
        return Ok(());
    }
    let temperature = object
        .get("temperature")
        .filter(|v| !v.is_null() && v.as_f64() != Some(1.0))
        .map(|_| "temperature");
    let top_p = object
        .get("top_p")
        .filter(|v| !v.is_null())
        .map(|_| "top_p");
    match temperature.or(top_p) {
        Some(key) => Err(invalid(
            key,
            format!("Unsupported parameter: '{key}' is not supported with this model."),
        )
        .code("unsupported_parameter")),
        None => Ok(()),
    }
}

fn parse(body: &[u8]) -> Result<Request, SimError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        SimError::invalid(format!(
            "We could not parse the JSON body of your request: {e}"
        ))
    })?;
    let Value::Object(object) = value else {
        return Err(SimError::invalid("The request body must be a JSON object."));
    };
    if let Some(key) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(key, format!("Unknown parameter: '{key}'.")).code("unknown_parameter"));
    }
    if object.get("store").and_then(Value::as_bool) != Some(false) {
        return Err(invalid(
            "store",
            "This simulator keeps nothing: send store: false.",
        ));
    }
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("model", "Missing required parameter: 'model'."))?
        .to_owned();
    let effort = parse_effort(&object)?;
    reasoning_model_sampling(&object, &model)?;
    // The API's floor for the output budget (CreateResponse in the OpenAPI spec: minimum 16).
    if let Some(max) = object.get("max_output_tokens").and_then(Value::as_i64)
        && max < 16
    {
        return Err(super::params::below_minimum("max_output_tokens", max, 16));
    }
    let mut messages = Vec::new();
    if let Some(instructions) = object.get("instructions").and_then(Value::as_str) {
        messages.push(Message::new(Role::System, instructions));
    }
    match object.get("input") {
        Some(Value::String(text)) => messages.push(Message::new(Role::User, text.clone())),
        Some(Value::Array(items)) => parse_items(items, effort, &mut messages)?,
        _ => return Err(invalid("input", "Missing required parameter: 'input'.")),
    }
    let mut tools = Vec::new();
    for (i, tool) in object
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match tool["type"].as_str() {
            Some("function") => {}
            // Tools OpenAI runs on its side: accepted as the API accepts them; the simulated
            // model never calls them.
            Some(kind) if HOSTED_TOOLS.contains(&kind) => continue,
            _ => {
                return Err(invalid(
                    &format!("tools[{i}].type"),
                    "Only function and hosted tools are simulated.",
                ));
            }
        }
        tools.push(Tool {
            name: required_str(tool, "name", &format!("tools[{i}]"))?.to_owned(),
            description: tool["description"].as_str().map(str::to_owned),
            parameters: tool
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        });
    }
    let tool_choice = match object.get("tool_choice") {
        None => ToolChoice::Auto,
        Some(Value::String(choice)) => match choice.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => return Err(invalid("tool_choice", "Invalid value for 'tool_choice'.")),
        },
        Some(choice) => ToolChoice::Named(required_str(choice, "name", "tool_choice")?.to_owned()),
    };
    let format = match object.get("text").and_then(|t| t.get("format")) {
        None => OutputFormat::Text,
        Some(format) => match format["type"].as_str() {
            Some("text") => OutputFormat::Text,
            Some("json_object") => OutputFormat::JsonObject,
            Some("json_schema") => OutputFormat::JsonSchema(format["schema"].clone()),
            _ => {
                return Err(invalid(
                    "text.format.type",
                    "Invalid value for 'text.format.type'.",
                ));
            }
        },
    };
    Ok(Request {
        conversation: Conversation {
            messages,
            tools,
            tool_choice,
            parallel_tool_calls: object
                .get("parallel_tool_calls")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            format,
            max_output_tokens: object.get("max_output_tokens").and_then(Value::as_u64),
            stop: Vec::new(),
            reasoning: effort,
            fingerprint: ids::fnv1a(body),
        },
        model,
        stream: object
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Renders one answer as output items and event frames.
struct Render {
    id: String,
    model: String,
    created_at: u64,
    reasoning: Option<Value>,
}

impl Render {
    fn new(request: &Request, model: String, sequence: u64) -> Self {
        let mut rng = ids::rng(request.conversation.fingerprint, sequence);
        let id = format!("resp_{}", ids::hex(&mut rng, 48));
        let reasoning = (request.conversation.reasoning != Effort::None).then(|| {
            json!({
                "type": "reasoning",
                "id": format!("rs_{}", ids::hex(&mut rng, 48)),
                "summary": [],
                "encrypted_content": format!("{REASONING_PREFIX}{}", ids::hex(&mut rng, 32)),
            })
        });
        Self {
            id,
            model,
            created_at: 1_700_000_000 + sequence,
            reasoning,
        }
    }

    fn message_item(&self, text: &str, status: &str) -> Value {
        let content = if status == "in_progress" {
            json!([])
        } else {
            json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}])
        };
        json!({"id": format!("msg_{}", &self.id[5..]), "type": "message", "status": status,
               "role": "assistant", "content": content})
    }

    fn call_item(
        &self,
        index: usize,
        call: &behaviour::PlannedCall,
        status: &str,
        arguments: &str,
    ) -> Value {
        json!({"id": format!("fc_{}_{index}", &self.id[5..]), "type": "function_call",
               "status": status, "call_id": call.id, "name": call.name, "arguments": arguments})
    }

    fn output(&self, answer: &Answer) -> Vec<Value> {
        let mut items: Vec<Value> = self.reasoning.iter().cloned().collect();
        match &answer.output {
            Output::Text(pieces) => items.push(self.message_item(&pieces.concat(), "completed")),
            Output::ToolCalls(calls) => items.extend(
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, call)| self.call_item(i, call, "completed", &call.arguments())),
            ),
        }
        items
    }

    fn response(&self, answer: Option<&Answer>) -> Value {
        let mut response = json!({
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": "in_progress", "error": null, "incomplete_details": null,
            "model": self.model, "output": [], "parallel_tool_calls": true,
            "tool_choice": "auto", "tools": [], "store": false,
        });
        if let Some(answer) = answer {
            response["output"] = json!(self.output(answer));
            let usage = answer.usage;
            response["usage"] = json!({
                "input_tokens": usage.prompt_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens": usage.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
                "total_tokens": usage.total_tokens(),
            });
            if answer.finish == Finish::Length {
                response["status"] = json!("incomplete");
                response["incomplete_details"] = json!({"reason": "max_output_tokens"});
            } else {
                response["status"] = json!("completed");
            }
        }
        response
    }

    /// The event sequence: created, in_progress, the reasoning item, then the message (its
    /// part and text deltas) or each call (its argument deltas), then the terminal event.
    fn stream(&self, answer: &Answer, malformed: bool) -> StreamScript {
        let mut events: Vec<(Value, bool)> = Vec::new();
        let created = self.response(None);
        events.push((
            json!({"type": "response.created", "response": created}),
            false,
        ));
        events.push((
            json!({"type": "response.in_progress", "response": created}),
            false,
        ));
        let mut index = 0;
        if let Some(reasoning) = &self.reasoning {
            events.push((
                json!({"type": "response.output_item.added", "output_index": 0, "item": reasoning}),
                false,
            ));
            events.push((
                json!({"type": "response.output_item.done", "output_index": 0, "item": reasoning}),
                false,
            ));
            index = 1;
        }
        match &answer.output {
            Output::Text(pieces) => {
                let item_id = format!("msg_{}", &self.id[5..]);
                let text = pieces.concat();
                events.push((
                    json!({"type": "response.output_item.added", "output_index": index,
                                    "item": self.message_item("", "in_progress")}),
                    false,
                ));
                events.push((json!({"type": "response.content_part.added", "item_id": item_id,
                                    "output_index": index, "content_index": 0,
                                    "part": {"type": "output_text", "text": "", "annotations": []}}), false));
                for piece in pieces {
                    events.push((
                        json!({"type": "response.output_text.delta", "item_id": item_id,
                                        "output_index": index, "content_index": 0, "delta": piece,
                                        "logprobs": []}),
                        true,
                    ));
                }
                events.push((
                    json!({"type": "response.output_text.done", "item_id": item_id,
                                    "output_index": index, "content_index": 0, "text": text,
                                    "logprobs": []}),
                    false,
                ));
                events.push((json!({"type": "response.content_part.done", "item_id": item_id,
                                    "output_index": index, "content_index": 0,
                                    "part": {"type": "output_text", "text": text, "annotations": []}}), false));
                events.push((
                    json!({"type": "response.output_item.done", "output_index": index,
                                    "item": self.message_item(&text, "completed")}),
                    false,
                ));
            }
            Output::ToolCalls(calls) => {
                for (i, call) in calls.iter().enumerate() {
                    let output_index = index + i;
                    let item_id = format!("fc_{}_{i}", &self.id[5..]);
                    events.push((
                        json!({"type": "response.output_item.added", "output_index": output_index,
                                        "item": self.call_item(i, call, "in_progress", "")}),
                        false,
                    ));
                    for piece in &call.pieces {
                        events.push((
                            json!({"type": "response.function_call_arguments.delta",
                                            "item_id": item_id, "output_index": output_index,
                                            "delta": piece}),
                            true,
                        ));
                    }
                    events.push((
                        json!({"type": "response.function_call_arguments.done",
                                        "item_id": item_id, "output_index": output_index,
                                        "name": call.name, "arguments": call.arguments()}),
                        false,
                    ));
                    events.push((json!({"type": "response.output_item.done", "output_index": output_index,
                                        "item": self.call_item(i, call, "completed", &call.arguments())}), false));
                }
            }
        }
        let done = self.response(Some(answer));
        let terminal = if answer.finish == Finish::Length {
            "response.incomplete"
        } else {
            "response.completed"
        };
        events.push((json!({"type": terminal, "response": done}), false));
        let count = events.len();
        let frames: Vec<(String, Frame)> = events
            .into_iter()
            .enumerate()
            .map(|(sequence, (mut event, paced))| {
                event["sequence_number"] = json!(sequence);
                let kind = event["type"].as_str().unwrap_or_default().to_owned();
                let bytes = frame_bytes(&kind, &event.to_string());
                (kind, Frame { bytes, paced })
            })
            .collect();
        let malformed = malformed.then(|| {
            let index = faults::malformed_index(count);
            let kind = frames.get(index).map_or("", |(k, _)| k.as_str()).to_owned();
            (index, frame_bytes(&kind, "{\"type\":"))
        });
        StreamScript {
            frames: frames.into_iter().map(|(_, frame)| frame).collect(),
            trailer: None,
            error_frame: frame_bytes(
                "error",
                &json!({"type": "error", "code": "server_error", "param": null,
                        "message": "The server had an error while processing your request.",
                        "sequence_number": count})
                .to_string(),
            ),
            malformed,
        }
    }
}

fn frame_bytes(kind: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// Answers one `POST .../responses` (also the clouds' OpenAI doors).
pub(crate) async fn handle(app: &App, target: &Target, body: &[u8]) -> Response {
    super::metered(app, target, answer(app, target, body)).await
}

async fn answer(app: &App, target: &Target, body: &[u8]) -> Response {
    let config = app.config();
    let fault = app.decide_fault(&config);
    if let Some(response) = early_fault(&config, fault, target).await {
        return response;
    }
    let request = match parse(body) {
        Ok(request) => request,
        Err(error) => return render_error(target.dialect, &error),
    };
    let mut answer = behaviour::answer(&request.conversation);
    answer.usage.cached_tokens = app.cached_tokens(&request.conversation.prompt_segments());
    let model = target.reported_model(&request.model);
    let render = Render::new(&request, model, app.next_sequence());
    let malformed = fault == faults::Fault::Malformed;
    if request.stream {
        faults::stream_answer(&config, render.stream(&answer, malformed)).await
    } else {
        let pacing = Pacing::new(&config);
        tokio::time::sleep(pacing.total(answer.usage.completion_tokens)).await;
        faults::json_answer(render.response(Some(&answer)).to_string(), malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(items: Value) -> Vec<u8> {
        json!({"model": "o3", "store": false, "reasoning": {"effort": "low"}, "input": items})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_reasoning_model_wants_its_reasoning_item_before_a_call() {
        let call =
            json!({"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"});
        let output = json!({"type": "function_call_output", "call_id": "call_1", "output": "ok"});
        let user = json!({"role": "user", "content": "go"});
        let error = parse(&body(json!([user, call, output]))).err().unwrap();
        assert!(
            error
                .message
                .contains("without its required 'reasoning' item")
        );
        let reasoning = json!({"type": "reasoning", "id": "rs_1", "summary": [],
                               "encrypted_content": format!("{REASONING_PREFIX}abc")});
        let parsed = parse(&body(json!([user, reasoning, call, output])))
            .ok()
            .unwrap();
        assert_eq!(parsed.conversation.messages[1].tool_calls[0].id, "call_1");
        let forged = json!({"type": "reasoning", "id": "rs_1", "summary": []});
        assert!(parse(&body(json!([user, forged, call, output]))).is_err());
    }
}

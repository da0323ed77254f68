//! Three wire clients with one neutral interface, so every conformance case is written once and
//! runs through every ingress dialect: OpenAI Chat Completions, Anthropic Messages and the OpenAI
//! Responses API.

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingress {
    OpenAi,
    Anthropic,
    Responses,
}

#[derive(Clone, Debug)]
pub enum Turn {
    User(String),
    /// A user turn with a PNG attached.
    UserImage(String),
    /// A user turn with a PDF attached.
    UserDocument(String),
    Assistant(String),
    Calls(Vec<Call>),
    Result {
        id: String,
        content: String,
        is_error: bool,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub system: Option<String>,
    pub turns: Vec<Turn>,
    pub tools: bool,
    pub parallel: Option<bool>,
    pub json_schema: Option<Value>,
    pub stop: Vec<String>,
    pub max_tokens: Option<u32>,
    pub stream: bool,
    /// Anthropic ingress: mark the system prompt as a cache breakpoint.
    pub cache: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
    Other(String),
}

/// Token counts normalised across dialects: `input` counts every prompt token (cache reads and
/// writes included), `output` every generated token (reasoning included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub cached: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub calls: Vec<Call>,
    pub finish: Option<Finish>,
    pub usage: Option<Usage>,
    /// The error message, from an error body or an in-stream error event.
    pub error: Option<String>,
    /// The error body's `param` (OpenAI and Responses error bodies carry one).
    pub param: Option<String>,
    /// The stream ended with its terminator (`[DONE]` / `message_stop`).
    pub complete: bool,
    pub retry_after: Option<String>,
}

/// A PDF's first bytes (`%PDF-1.4` and a newline), as base64.
pub const PDF: &str = "JVBERi0xLjQK";
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

pub fn tools() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "get_weather",
            "Current weather for a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city", "unit"]}),
        ),
        (
            "get_time",
            "Local time in a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        ),
    ]
}

fn openai_body(model: &str, spec: &Spec) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &spec.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for turn in &spec.turns {
        messages.push(match turn {
            Turn::User(text) => json!({"role": "user", "content": text}),
            Turn::UserImage(text) => json!({"role": "user", "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}]}),
            Turn::UserDocument(text) => json!({"role": "user", "content": [
                {"type": "text", "text": text},
                {"type": "file", "file": {"filename": "report.pdf", "file_data": format!("data:application/pdf;base64,{PDF}")}}]}),
            Turn::Assistant(text) => json!({"role": "assistant", "content": text}),
            Turn::Calls(calls) => json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|c| json!({
                "id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})).collect::<Vec<_>>()}),
            // OpenAI has no error flag on tool results: the content says it.
            Turn::Result { id, content, .. } => json!({"role": "tool", "tool_call_id": id, "content": content}),
        });
    }
    let mut body = json!({"model": model, "messages": messages});
    if spec.tools {
        body["tools"] = json!(tools().into_iter().map(|(name, description, parameters)| json!({"type": "function", "function": {"name": name, "description": description, "parameters": parameters}})).collect::<Vec<_>>());
    }
    if let Some(parallel) = spec.parallel {
        body["parallel_tool_calls"] = json!(parallel);
    }
    if let Some(schema) = &spec.json_schema {
        body["response_format"] =
            json!({"type": "json_schema", "json_schema": {"name": "out", "schema": schema}});
    }
    if !spec.stop.is_empty() {
        body["stop"] = json!(spec.stop);
    }
    if let Some(max) = spec.max_tokens {
        body["max_tokens"] = json!(max);
    }
    if spec.stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn anthropic_body(model: &str, spec: &Spec) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    let mut push = |role: &str, blocks: Vec<Value>| match messages.last_mut() {
        Some(last) if last["role"] == role => {
            if let Some(existing) = last["content"].as_array_mut() {
                existing.extend(blocks);
            }
        }
        _ => messages.push(json!({"role": role, "content": blocks})),
    };
    for turn in &spec.turns {
        match turn {
            Turn::User(text) => push("user", vec![json!({"type": "text", "text": text})]),
            Turn::UserImage(text) => push("user", vec![json!({"type": "text", "text": text}), json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}})]),
            Turn::UserDocument(text) => push("user", vec![json!({"type": "text", "text": text}), json!({"type": "document", "title": "report.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}})]),
            Turn::Assistant(text) => push("assistant", vec![json!({"type": "text", "text": text})]),
            Turn::Calls(calls) => push("assistant", calls.iter().map(|c| json!({"type": "tool_use", "id": c.id, "name": c.name, "input": serde_json::from_str::<Value>(&c.arguments).unwrap_or(json!({}))})).collect()),
            Turn::Result { id, content, is_error } => push("user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error})]),
        }
    }
    let mut body = json!({"model": model, "max_tokens": spec.max_tokens.unwrap_or(1024), "messages": messages});
    if let Some(system) = &spec.system {
        let mut block = json!({"type": "text", "text": system});
        if spec.cache {
            block["cache_control"] = json!({"type": "ephemeral"});
        }
        body["system"] = json!([block]);
    }
    if spec.tools {
        body["tools"] = json!(tools().into_iter().map(|(name, description, schema)| json!({"name": name, "description": description, "input_schema": schema})).collect::<Vec<_>>());
        if spec.parallel == Some(false) {
            body["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
        }
    }
    if let Some(schema) = &spec.json_schema {
        body["output_config"] = json!({"format": {"type": "json_schema", "schema": schema}});
    }
    if !spec.stop.is_empty() {
        body["stop_sequences"] = json!(spec.stop);
    }
    if spec.stream {
        body["stream"] = json!(true);
    }
    body
}

fn finish_of(raw: &str) -> Finish {
    match raw {
        "stop" | "end_turn" | "stop_sequence" => Finish::Stop,
        "length" | "max_tokens" => Finish::Length,
        "tool_calls" | "tool_use" => Finish::ToolCalls,
        other => Finish::Other(other.to_owned()),
    }
}

/// Sends a request in the ingress's dialect and reads the answer back into a [`Reply`].
pub async fn send(
    client: &reqwest::Client,
    gateway: &str,
    ingress: Ingress,
    model: &str,
    spec: &Spec,
) -> Reply {
    let (path, body) = match ingress {
        Ingress::OpenAi => ("/v1/chat/completions", openai_body(model, spec)),
        Ingress::Anthropic => ("/v1/messages", anthropic_body(model, spec)),
        Ingress::Responses => ("/v1/responses", responses_body(model, spec)),
    };
    let response = match client
        .post(format!("{gateway}{path}"))
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => {
            return Reply {
                error: Some(format!("transport: {e}")),
                ..Reply::default()
            };
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let streamed = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    // A cut connection still yields what arrived before it; the missing terminator shows it.
    let text = match response.bytes().await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            return Reply {
                status,
                error: Some(format!("body: {e}")),
                retry_after,
                ..Reply::default()
            };
        }
    };
    let mut reply = if status != 200 {
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let shaped = match ingress {
            Ingress::OpenAi | Ingress::Responses => {
                value["error"]["type"].is_string() && value["error"]["message"].is_string()
            }
            Ingress::Anthropic => value["type"] == "error" && value["error"]["type"].is_string(),
        };
        let message = value["error"]["message"]
            .as_str()
            .unwrap_or("(no message)")
            .to_owned();
        Reply {
            error: Some(if shaped {
                message
            } else {
                format!("badly shaped error body: {text}")
            }),
            param: value["error"]["param"].as_str().map(str::to_owned),
            ..Reply::default()
        }
    } else if streamed {
        match ingress {
            Ingress::OpenAi => openai_stream(&text),
            Ingress::Anthropic => anthropic_stream(&text),
            Ingress::Responses => responses_stream(&text),
        }
    } else {
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match ingress {
            Ingress::OpenAi => openai_reply(&value),
            Ingress::Anthropic => anthropic_reply(&value),
            Ingress::Responses => responses_reply(&value),
        }
    };
    reply.status = status;
    reply.retry_after = retry_after;
    reply
}

pub fn openai_usage(usage: &Value) -> Option<Usage> {
    usage_named(usage, "prompt_tokens", "completion_tokens")
}

/// Usage in OpenAI's shape, its input and output counts named `input` and `output`, each with
/// its `_details`.
fn usage_named(usage: &Value, input: &str, output: &str) -> Option<Usage> {
    let details = |count_of: &str, field: &str| count(&usage[format!("{count_of}_details")][field]);
    Some(Usage {
        input: usage[input].as_u64()?,
        cached: details(input, "cached_tokens"),
        cache_write: details(input, "cache_write_tokens"),
        output: usage[output].as_u64()?,
        reasoning: details(output, "reasoning_tokens"),
    })
}

/// An optional count, 0 when absent.
pub fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn openai_reply(value: &Value) -> Reply {
    let message = &value["choices"][0]["message"];
    Reply {
        text: message["content"].as_str().unwrap_or_default().to_owned(),
        calls: message["tool_calls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| Call {
                        id: c["id"].as_str().unwrap_or_default().to_owned(),
                        name: c["function"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        arguments: c["function"]["arguments"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        finish: value["choices"][0]["finish_reason"].as_str().map(finish_of),
        usage: openai_usage(&value["usage"]),
        complete: true,
        ..Reply::default()
    }
}

fn openai_stream(text: &str) -> Reply {
    let mut reply = Reply::default();
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            reply.complete = true;
            continue;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            reply.error = Some(format!("unparseable chunk: {data}"));
            continue;
        };
        if let Some(message) = chunk["error"]["message"].as_str() {
            reply.error = Some(message.to_owned());
            continue;
        }
        if let Some(usage) = openai_usage(&chunk["usage"]) {
            reply.usage = Some(usage);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(content) = choice["delta"]["content"].as_str() {
            reply.text.push_str(content);
        }
        for fragment in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = fragment["index"].as_u64().unwrap_or(0) as usize;
            if reply.calls.len() <= index {
                reply.calls.resize(index + 1, Call::default());
            }
            let call = &mut reply.calls[index];
            if let Some(id) = fragment["id"].as_str() {
                call.id = id.to_owned();
            }
            if let Some(name) = fragment["function"]["name"].as_str() {
                call.name = name.to_owned();
            }
            call.arguments.push_str(
                fragment["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default(),
            );
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            reply.finish = Some(finish_of(finish));
        }
    }
    reply
}

/// Anthropic has no reasoning count: `reasoning` stays 0.
pub fn anthropic_usage(usage: &Value) -> Option<Usage> {
    let read = count(&usage["cache_read_input_tokens"]);
    let write = count(&usage["cache_creation_input_tokens"]);
    Some(Usage {
        input: usage["input_tokens"].as_u64()? + read + write,
        cached: read,
        cache_write: write,
        output: usage["output_tokens"].as_u64()?,
        reasoning: 0,
    })
}

fn anthropic_reply(value: &Value) -> Reply {
    let mut reply = Reply {
        complete: true,
        ..Reply::default()
    };
    for block in value["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => reply
                .text
                .push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => reply.calls.push(Call {
                id: block["id"].as_str().unwrap_or_default().to_owned(),
                name: block["name"].as_str().unwrap_or_default().to_owned(),
                arguments: block["input"].to_string(),
            }),
            _ => {}
        }
    }
    reply.finish = value["stop_reason"].as_str().map(finish_of);
    reply.usage = anthropic_usage(&value["usage"]);
    reply
}

fn anthropic_stream(text: &str) -> Reply {
    let mut reply = Reply::default();
    let mut usage = Value::Null;
    for block in text.split("\n\n") {
        let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            reply.error = Some(format!("unparseable event: {data}"));
            continue;
        };
        match event["type"].as_str() {
            Some("message_start") => usage = event["message"]["usage"].clone(),
            Some("content_block_start") if event["content_block"]["type"] == "tool_use" => {
                reply.calls.push(Call {
                    id: event["content_block"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    name: event["content_block"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: String::new(),
                })
            }
            Some("content_block_delta") => match event["delta"]["type"].as_str() {
                Some("text_delta") => reply
                    .text
                    .push_str(event["delta"]["text"].as_str().unwrap_or_default()),
                Some("input_json_delta") => {
                    if let Some(call) = reply.calls.last_mut() {
                        call.arguments
                            .push_str(event["delta"]["partial_json"].as_str().unwrap_or_default());
                    }
                }
                _ => {}
            },
            Some("message_delta") => {
                reply.finish = event["delta"]["stop_reason"].as_str().map(finish_of);
                for (key, value) in event["usage"].as_object().into_iter().flatten() {
                    usage[key] = value.clone();
                }
            }
            Some("message_stop") => reply.complete = true,
            Some("error") => {
                reply.error = Some(
                    event["error"]["message"]
                        .as_str()
                        .unwrap_or("error")
                        .to_owned(),
                )
            }
            _ => {}
        }
    }
    reply.usage = anthropic_usage(&usage);
    reply
}

/// A Responses API request: the system prompt as `instructions`, turns as input items (tool
/// calls and results tied by `call_id`), flat function tools, `text.format` for JSON schema.
/// Nothing is stored, so every case stands alone. The API has no stop sequences.
fn responses_body(model: &str, spec: &Spec) -> Value {
    let mut input = Vec::new();
    for turn in &spec.turns {
        match turn {
            Turn::User(text) => input.push(json!({"role": "user", "content": text})),
            Turn::UserImage(text) => input.push(json!({"role": "user", "content": [
                {"type": "input_text", "text": text},
                {"type": "input_image", "image_url": format!("data:image/png;base64,{PNG}")}]})),
            Turn::UserDocument(text) => input.push(json!({"role": "user", "content": [
                {"type": "input_text", "text": text},
                {"type": "input_file", "filename": "report.pdf", "file_data": format!("data:application/pdf;base64,{PDF}")}]})),
            Turn::Assistant(text) => input.push(json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]})),
            Turn::Calls(calls) => input.extend(calls.iter().map(|c| {
                json!({"type": "function_call",
                "call_id": c.id, "name": c.name, "arguments": c.arguments})
            })),
            // No error flag on function outputs: the content says it.
            Turn::Result { id, content, .. } => input.push(json!({"type": "function_call_output",
                "call_id": id, "output": content})),
        }
    }
    let mut body = json!({"model": model, "input": input, "store": false});
    if let Some(system) = &spec.system {
        body["instructions"] = json!(system);
    }
    if spec.tools {
        body["tools"] = json!(tools().into_iter().map(|(name, description, parameters)| json!({"type": "function", "name": name, "description": description, "parameters": parameters, "strict": false})).collect::<Vec<_>>());
    }
    if let Some(parallel) = spec.parallel {
        body["parallel_tool_calls"] = json!(parallel);
    }
    if let Some(schema) = &spec.json_schema {
        body["text"] = json!({"format": {"type": "json_schema", "name": "out", "schema": schema}});
    }
    if let Some(max) = spec.max_tokens {
        body["max_output_tokens"] = json!(max);
    }
    if spec.stream {
        body["stream"] = json!(true);
    }
    body
}

fn responses_reply(value: &Value) -> Reply {
    let mut reply = Reply {
        complete: true,
        ..Reply::default()
    };
    for item in value["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    reply
                        .text
                        .push_str(part["text"].as_str().unwrap_or_default());
                }
            }
            Some("function_call") => reply.calls.push(Call {
                id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                name: item["name"].as_str().unwrap_or_default().to_owned(),
                arguments: item["arguments"].as_str().unwrap_or_default().to_owned(),
            }),
            _ => {}
        }
    }
    reply.finish = match (
        value["status"].as_str(),
        value["incomplete_details"]["reason"].as_str(),
    ) {
        (Some("completed"), _) if !reply.calls.is_empty() => Some(Finish::ToolCalls),
        (Some("completed"), _) => Some(Finish::Stop),
        (Some("incomplete"), Some("max_output_tokens")) => Some(Finish::Length),
        (status, reason) => Some(Finish::Other(format!("{status:?} {reason:?}"))),
    };
    reply.usage = responses_usage(&value["usage"]);
    reply
}

pub fn responses_usage(usage: &Value) -> Option<Usage> {
    usage_named(usage, "input_tokens", "output_tokens")
}

/// Text from the `output_text` deltas, calls from the finished items, the rest from the
/// terminal `response.completed`; `response.failed` or `error` is a broken stream.
fn responses_stream(text: &str) -> Reply {
    let mut reply = Reply::default();
    let mut streamed = String::new();
    let mut calls = Vec::new();
    for block in text.split("\n\n") {
        let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            reply.error = Some(format!("unparseable event: {data}"));
            continue;
        };
        match event["type"].as_str() {
            Some("response.output_text.delta") => {
                streamed.push_str(event["delta"].as_str().unwrap_or_default());
            }
            Some("response.output_item.done") if event["item"]["type"] == "function_call" => {
                let item = &event["item"];
                calls.push(Call {
                    id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: item["arguments"].as_str().unwrap_or_default().to_owned(),
                });
            }
            Some("response.completed" | "response.incomplete") => {
                let error = reply.error.take();
                reply = responses_reply(&event["response"]);
                reply.error = error;
            }
            Some("response.failed") => {
                reply.error = Some(
                    event["response"]["error"]["message"]
                        .as_str()
                        .unwrap_or("failed")
                        .to_owned(),
                );
            }
            Some("error") => {
                reply.error = Some(event["message"].as_str().unwrap_or("error").to_owned());
            }
            _ => {}
        }
    }
    if reply.complete && (reply.text != streamed || reply.calls != calls) {
        reply.error = Some(format!(
            "streamed deltas ({streamed:?}, {calls:?}) disagree with the final response ({:?}, {:?})",
            reply.text, reply.calls
        ));
    }
    reply
}

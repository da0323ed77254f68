//! What the simulated provider answered, read back from its recorded response in the provider's
//! own wire format (JSON, SSE or AWS event stream), so the matrix can hold the gateway's reply to
//! exactly that: the same text, the same tool calls and arguments, the same token counts.

use crossbar_sim::RecordedRequest;
use serde_json::{Value, json};

use crate::client::{Usage, anthropic_usage, count, openai_usage, responses_usage};

/// One provider answer, normalised.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    /// Name and parsed arguments of each tool call, in order.
    pub calls: Vec<(String, Value)>,
    pub usage: Option<Usage>,
}

/// The provider wire a recorded request was sent to, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    OpenAiChat,
    Responses,
    Anthropic,
    Converse,
    ConverseStream,
    Gemini,
}

impl Wire {
    pub fn of(request: &RecordedRequest) -> Option<Self> {
        let path = request.path.as_str();
        Some(if path.ends_with("/chat/completions") {
            Self::OpenAiChat
        } else if path.ends_with("/responses") {
            Self::Responses
        } else if path.ends_with("/messages")
            || path.ends_with(":rawPredict")
            || path.ends_with(":streamRawPredict")
        {
            Self::Anthropic
        } else if path.ends_with("/converse") {
            Self::Converse
        } else if path.ends_with("/converse-stream") {
            Self::ConverseStream
        } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
            Self::Gemini
        } else {
            return None;
        })
    }
}

/// Reads the answer the simulator sent for `request`, `None` when it sent none.
pub fn answer(request: &RecordedRequest) -> Option<Answer> {
    let wire = Wire::of(request)?;
    let bytes = request.response.as_deref()?;
    let text = String::from_utf8_lossy(bytes);
    let sse = text.starts_with("event:") || text.starts_with("data:");
    Some(match (wire, sse) {
        (Wire::ConverseStream, _) => converse_stream(bytes),
        (_, false) => {
            let value: Value = serde_json::from_str(&text).ok()?;
            match wire {
                Wire::OpenAiChat => openai(&value),
                Wire::Responses => responses(&value),
                Wire::Anthropic => anthropic(&value),
                Wire::Converse => converse(&value),
                Wire::Gemini => gemini(&[value]),
                Wire::ConverseStream => return None,
            }
        }
        (_, true) => {
            let events: Vec<Value> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect();
            match wire {
                Wire::OpenAiChat => openai_stream(&events),
                Wire::Responses => responses(
                    &events
                        .iter()
                        .rev()
                        .find(|e| {
                            matches!(
                                e["type"].as_str(),
                                Some("response.completed" | "response.incomplete")
                            )
                        })?
                        .get("response")?
                        .clone(),
                ),
                Wire::Anthropic => anthropic_stream(&events),
                Wire::Gemini => gemini(&events),
                Wire::Converse | Wire::ConverseStream => return None,
            }
        }
    })
}

fn args(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or(Value::String(raw.to_owned()))
}

fn openai(value: &Value) -> Answer {
    let message = &value["choices"][0]["message"];
    Answer {
        text: message["content"].as_str().unwrap_or_default().to_owned(),
        calls: message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    args(c["function"]["arguments"].as_str().unwrap_or_default()),
                )
            })
            .collect(),
        usage: openai_usage(&value["usage"]),
    }
}

fn openai_stream(events: &[Value]) -> Answer {
    let mut answer = Answer::default();
    let mut calls: Vec<(String, String)> = Vec::new();
    for chunk in events {
        if let Some(usage) = openai_usage(&chunk["usage"]) {
            answer.usage = Some(usage);
        }
        let delta = &chunk["choices"][0]["delta"];
        answer
            .text
            .push_str(delta["content"].as_str().unwrap_or_default());
        for fragment in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = usize::try_from(count(&fragment["index"])).unwrap_or(0);
            if calls.len() <= index {
                calls.resize(index + 1, Default::default());
            }
            if let Some(name) = fragment["function"]["name"].as_str() {
                calls[index].0 = name.to_owned();
            }
            calls[index].1.push_str(
                fragment["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default(),
            );
        }
    }
    answer.calls = calls.into_iter().map(|(n, a)| (n, args(&a))).collect();
    answer
}

fn responses(value: &Value) -> Answer {
    let mut answer = Answer {
        usage: responses_usage(&value["usage"]),
        ..Answer::default()
    };
    for item in value["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    answer
                        .text
                        .push_str(part["text"].as_str().unwrap_or_default());
                }
            }
            Some("function_call") => answer.calls.push((
                item["name"].as_str().unwrap_or_default().to_owned(),
                args(item["arguments"].as_str().unwrap_or_default()),
            )),
            _ => {}
        }
    }
    answer
}

fn anthropic(value: &Value) -> Answer {
    let mut answer = Answer {
        usage: anthropic_usage(&value["usage"]),
        ..Answer::default()
    };
    for block in value["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => answer
                .text
                .push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => answer.calls.push((
                block["name"].as_str().unwrap_or_default().to_owned(),
                block["input"].clone(),
            )),
            _ => {}
        }
    }
    answer
}

fn anthropic_stream(events: &[Value]) -> Answer {
    let mut answer = Answer::default();
    let mut usage = Value::Null;
    let mut calls: Vec<(String, String)> = Vec::new();
    for event in events {
        match event["type"].as_str() {
            Some("message_start") => usage = event["message"]["usage"].clone(),
            Some("content_block_start") if event["content_block"]["type"] == "tool_use" => {
                calls.push((
                    event["content_block"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    String::new(),
                ));
            }
            Some("content_block_delta") => match event["delta"]["type"].as_str() {
                Some("text_delta") => answer
                    .text
                    .push_str(event["delta"]["text"].as_str().unwrap_or_default()),
                Some("input_json_delta") => {
                    if let Some(call) = calls.last_mut() {
                        call.1
                            .push_str(event["delta"]["partial_json"].as_str().unwrap_or_default());
                    }
                }
                _ => {}
            },
            Some("message_delta") => {
                for (key, value) in event["usage"].as_object().into_iter().flatten() {
                    usage[key] = value.clone();
                }
            }
            _ => {}
        }
    }
    answer.usage = anthropic_usage(&usage);
    answer.calls = calls
        .into_iter()
        .map(|(n, a)| (n, if a.is_empty() { json!({}) } else { args(&a) }))
        .collect();
    answer
}

/// Bedrock's `inputTokens` leaves out what the cache read or wrote.
fn bedrock_usage(usage: &Value) -> Option<Usage> {
    let read = count(&usage["cacheReadInputTokens"]);
    let write = count(&usage["cacheWriteInputTokens"]);
    Some(Usage {
        input: usage["inputTokens"].as_u64()? + read + write,
        cached: read,
        cache_write: write,
        output: usage["outputTokens"].as_u64()?,
        reasoning: 0,
    })
}

fn converse(value: &Value) -> Answer {
    let mut answer = Answer {
        usage: bedrock_usage(&value["usage"]),
        ..Answer::default()
    };
    for block in value["output"]["message"]["content"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(text) = block["text"].as_str() {
            answer.text.push_str(text);
        }
        if let Some(call) = block.get("toolUse") {
            answer.calls.push((
                call["name"].as_str().unwrap_or_default().to_owned(),
                call["input"].clone(),
            ));
        }
    }
    answer
}

/// The JSON payloads of an AWS event stream, up to a message cut short; others are skipped.
fn event_payloads(bytes: &[u8]) -> Vec<Value> {
    crossbar_testkit::http::event_payloads(bytes)
        .into_iter()
        .flatten()
        .collect()
}

fn converse_stream(bytes: &[u8]) -> Answer {
    let mut answer = Answer::default();
    let mut calls: Vec<(String, String)> = Vec::new();
    for event in event_payloads(bytes) {
        if let Some(call) = event["start"].get("toolUse") {
            calls.push((
                call["name"].as_str().unwrap_or_default().to_owned(),
                String::new(),
            ));
        }
        if let Some(text) = event["delta"]["text"].as_str() {
            answer.text.push_str(text);
        }
        if let Some(input) = event["delta"]["toolUse"]["input"].as_str()
            && let Some(call) = calls.last_mut()
        {
            call.1.push_str(input);
        }
        if event.get("usage").is_some() {
            answer.usage = bedrock_usage(&event["usage"]);
        }
    }
    answer.calls = calls
        .into_iter()
        .map(|(n, a)| (n, if a.is_empty() { json!({}) } else { args(&a) }))
        .collect();
    answer
}

/// One response or the chunks of a stream; thought parts are not the answer's text.
fn gemini(chunks: &[Value]) -> Answer {
    let mut answer = Answer::default();
    for chunk in chunks {
        for part in chunk["candidates"][0]["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if part["thought"] == true {
                continue;
            }
            if let Some(text) = part["text"].as_str() {
                answer.text.push_str(text);
            }
            if let Some(call) = part.get("functionCall") {
                answer.calls.push((
                    call["name"].as_str().unwrap_or_default().to_owned(),
                    call.get("args").cloned().unwrap_or_else(|| json!({})),
                ));
            }
        }
        let meta = &chunk["usageMetadata"];
        if let Some(prompt) = meta["promptTokenCount"].as_u64() {
            let thoughts = count(&meta["thoughtsTokenCount"]);
            answer.usage = Some(Usage {
                input: prompt,
                cached: count(&meta["cachedContentTokenCount"]),
                cache_write: 0,
                output: count(&meta["candidatesTokenCount"]) + thoughts,
                reasoning: thoughts,
            });
        }
    }
    answer
}

/// The provider field that carries the system prompt, as text, or `None` when the body has none.
pub fn system_field(wire: Wire, body: &Value) -> Option<String> {
    let field = match wire {
        Wire::OpenAiChat => {
            let system: Vec<&Value> = body["messages"]
                .as_array()?
                .iter()
                .filter(|m| matches!(m["role"].as_str(), Some("system" | "developer")))
                .collect();
            json!(system)
        }
        Wire::Responses => {
            let system: Vec<&Value> = body["input"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| matches!(m["role"].as_str(), Some("system" | "developer")))
                .collect();
            json!([body.get("instructions"), system])
        }
        Wire::Anthropic | Wire::Converse | Wire::ConverseStream => body.get("system")?.clone(),
        Wire::Gemini => body.get("systemInstruction")?.clone(),
    };
    Some(field.to_string())
}

/// How a tool result's error flag reached the provider: `Some(true)` flagged as an error,
/// `Some(false)` flagged as a success, `None` when the wire has no flag (OpenAI). Gemini's
/// `functionResponse.response` says it with its key: `error` or `output`.
pub fn tool_error_flag(wire: Wire, body: &Value) -> Result<Option<bool>, String> {
    let found = |flags: Vec<bool>| match flags.as_slice() {
        [flag] => Ok(Some(*flag)),
        other => Err(format!("expected one tool result, found flags {other:?}")),
    };
    match wire {
        Wire::OpenAiChat | Wire::Responses => Ok(None),
        Wire::Gemini => found(
            body["contents"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["parts"].as_array().into_iter().flatten())
                .filter_map(|p| p.get("functionResponse"))
                .map(|r| r["response"].get("error").is_some())
                .collect(),
        ),
        Wire::Anthropic => found(
            body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["content"].as_array().into_iter().flatten())
                .filter(|b| b["type"] == "tool_result")
                .map(|b| b["is_error"] == true)
                .collect(),
        ),
        Wire::Converse | Wire::ConverseStream => found(
            body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["content"].as_array().into_iter().flatten())
                .filter_map(|b| b.get("toolResult"))
                .map(|r| r["status"] == "error")
                .collect(),
        ),
    }
}

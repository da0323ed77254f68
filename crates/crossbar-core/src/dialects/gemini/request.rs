//! Canonical request → `GenerateContentRequest`.

use serde_json::{Map, Value};

use super::wire::{
    Blob, Content, FunctionCall, FunctionCallingConfig, FunctionDeclaration, FunctionResponse,
    GenerateContentRequest, GenerationConfig, Part, ThinkingConfig, Tool, ToolConfig,
};
use super::{ids, schema};
use crate::chat::{
    ChatRequest, ContentPart, Family, ImageSource, Message, ResponseFormat, Role, ToolChoice,
};
use crate::dialects::rules;
use crate::error::{Error, Result};

/// `generationConfig.stopSequences` holds at most five (v1beta proto).
const MAX_STOP_SEQUENCES: usize = 5;

pub(super) fn encode(request: &ChatRequest, vertex: bool) -> Result<GenerateContentRequest> {
    let dialect = if vertex { "vertex" } else { "gemini" };
    rules::refuse_openai_passthrough(request, dialect)?;
    rules::refuse_foreign_passthrough(request, None, dialect)?;
    let system: Vec<Part> = rules::system_texts(&request.messages)
        .into_iter()
        .map(|(text, _cache)| Part::text(text))
        .collect();
    let mut contents = Vec::new();
    let messages = &request.messages;
    let mut i = 0;
    while let Some(message) = messages.get(i) {
        match message.role {
            // Hoisted into `systemInstruction` above, wherever they appeared.
            Role::System | Role::Developer => i += 1,
            Role::User => {
                let parts = user_parts(message, i)?;
                if !parts.is_empty() {
                    contents.push(turn("user", parts));
                }
                i += 1;
            }
            Role::Assistant => {
                let parts = model_parts(message, i, vertex)?;
                if !parts.is_empty() {
                    contents.push(turn("model", parts));
                }
                i += 1;
            }
            Role::Tool => {
                // All results of a parallel call go back in one user turn, one part each, in
                // the order of the calls: without ids (Vertex) Gemini pairs them by position.
                let start = i;
                while messages.get(i).is_some_and(|m| m.role == Role::Tool) {
                    i += 1;
                }
                let calls = messages
                    .get(..start)
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .find(|m| m.role == Role::Assistant)
                    .map(|m| m.tool_calls.as_slice())
                    .unwrap_or_default();
                let mut group: Vec<usize> = (start..i).collect();
                group.sort_by_key(|&at| {
                    let id = messages.get(at).and_then(|m| m.tool_call_id.as_deref());
                    calls
                        .iter()
                        .position(|c| Some(c.id.as_str()) == id)
                        .unwrap_or(usize::MAX)
                });
                let mut parts = Vec::new();
                for at in group {
                    if let Some(result) = messages.get(at) {
                        parts.push(function_response(messages, at, result, vertex)?);
                    }
                }
                contents.push(turn("user", parts));
            }
        }
    }
    let tools = if request.tools.is_empty() {
        Vec::new()
    } else {
        let budget = schema::Budget::new();
        let mut declarations = Vec::with_capacity(request.tools.len());
        for (i, tool) in request.tools.iter().enumerate() {
            let parameters = match &tool.parameters {
                Some(parameters) => schema::function_parameters(parameters, i, &budget)?,
                None => None,
            };
            declarations.push(FunctionDeclaration {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters,
            });
        }
        vec![Tool {
            function_declarations: declarations,
        }]
    };
    // `parallel_tool_calls` has no Gemini equivalent and is not sent.
    let tool_config = request.tool_choice.as_ref().map(|choice| ToolConfig {
        function_calling_config: match choice {
            ToolChoice::Auto => calling("AUTO", Vec::new()),
            ToolChoice::None => calling("NONE", Vec::new()),
            ToolChoice::Required => calling("ANY", Vec::new()),
            ToolChoice::Function(name) => calling("ANY", vec![name.clone()]),
        },
    });
    let generation_config = generation_config(request)?;
    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        tools,
        tool_config,
        generation_config: (generation_config != GenerationConfig::default())
            .then_some(generation_config),
    })
}

fn turn(role: &str, parts: Vec<Part>) -> Content {
    Content {
        role: Some(role.to_owned()),
        parts,
    }
}

fn calling(mode: &'static str, allowed_function_names: Vec<String>) -> FunctionCallingConfig {
    FunctionCallingConfig {
        mode,
        allowed_function_names,
    }
}

fn user_parts(message: &Message, index: usize) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    for (j, part) in message.content.iter().enumerate() {
        match part {
            // Gemini rejects empty text parts ("empty text parameter").
            ContentPart::Text { text } if text.is_empty() => {}
            ContentPart::Text { text } => parts.push(Part::text(text.clone())),
            ContentPart::Image {
                source: ImageSource::Base64 { media_type, data },
                ..
            } => parts.push(Part {
                inline_data: Some(Blob {
                    mime_type: media_type.clone(),
                    data: data.clone(),
                }),
                ..Part::default()
            }),
            ContentPart::Image {
                source: ImageSource::Url(_),
                ..
            } => {
                return Err(Error::invalid_field(
                    format!("messages[{index}].content[{j}].image_url.url"),
                    "This model is served by a Gemini-dialect provider, which needs image bytes: \
                     the gateway does not download image URLs. Send the image as a base64 data \
                     URL (data:image/png;base64,...).",
                ));
            }
            ContentPart::Document {
                media_type, data, ..
            } => parts.push(inline(media_type.clone(), data)),
            ContentPart::Audio { format, data } => {
                parts.push(inline(audio_mime_type(format), data));
            }
        }
    }
    Ok(parts)
}

/// Inline bytes of any type Gemini reads (images, PDFs, audio).
fn inline(mime_type: String, data: &str) -> Part {
    Part {
        inline_data: Some(Blob {
            mime_type,
            data: data.to_owned(),
        }),
        ..Part::default()
    }
}

/// Gemini names audio by MIME type: `audio/wav`, `audio/mp3`.
pub(crate) fn audio_mime_type(format: &str) -> String {
    format!("audio/{format}")
}

/// The signature for `call`: from its reasoning block (kept by the client, or given back by
/// `reasoning_memory`), else from an id of the older signed form.
fn call_signature(message: &Message, call_id: &str, embedded: Option<String>) -> Option<String> {
    message
        .reasoning
        .iter()
        .filter(|r| r.family == Family::Gemini)
        .find(|r| r.data.get("tool_call_id").and_then(Value::as_str) == Some(call_id))
        .and_then(|r| r.data.get("thoughtSignature").and_then(Value::as_str))
        .map(str::to_owned)
        .or(embedded)
}

fn model_parts(message: &Message, index: usize, vertex: bool) -> Result<Vec<Part>> {
    let mut parts: Vec<Part> = message
        .content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } if !text.is_empty() => Some(Part::text(text.clone())),
            _ => None,
        })
        .collect();
    if parts.is_empty()
        && let Some(refusal) = message.refusal.as_ref().filter(|r| !r.is_empty())
    {
        parts.push(Part::text(refusal.clone()));
    }
    // Signatures that came on text (or empty) parts go back on the last text part; only the
    // ones on function calls are checked by Gemini, so a turn without text drops them.
    let text_signature = message
        .reasoning
        .iter()
        .filter(|r| r.family == Family::Gemini && r.data.get("tool_call_id").is_none())
        .filter_map(|r| r.data.get("thoughtSignature").and_then(Value::as_str))
        .next_back();
    if let (Some(signature), Some(last)) = (text_signature, parts.last_mut()) {
        last.thought_signature = Some(signature.to_owned());
    }
    for (j, call) in message.tool_calls.iter().enumerate() {
        let args = rules::parse_tool_arguments(
            &call.arguments,
            &format!("messages[{index}].tool_calls[{j}].function.arguments"),
        )?;
        let (base, embedded) = ids::split(&call.id);
        let mut signature = call_signature(message, &call.id, embedded);
        // Gemini 3 checks the first call of each step: a lost signature (memory expired, another
        // replica, a call made by another model) gets Google's documented stand-in, not a 400.
        if j == 0 && signature.is_none() {
            signature = Some(ids::DUMMY_SIGNATURE.to_owned());
        }
        parts.push(Part {
            thought_signature: signature,
            function_call: Some(FunctionCall {
                id: ids::wire_id(base, vertex),
                name: call.name.clone(),
                args: Some(args),
            }),
            ..Part::default()
        });
    }
    Ok(parts)
}

/// A tool message as a `functionResponse`. OpenAI tool messages carry no function name, which
/// Gemini requires: it is recovered from the assistant call this result answers.
fn function_response(
    messages: &[Message],
    index: usize,
    result: &Message,
    vertex: bool,
) -> Result<Part> {
    let call_id = result.tool_call_id.as_deref().unwrap_or_default();
    let name = messages
        .get(..index)
        .unwrap_or_default()
        .iter()
        .rev()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| &m.tool_calls)
        .find(|call| call.id == call_id)
        .map(|call| call.name.clone())
        .or_else(|| result.name.clone())
        .ok_or_else(|| {
            Error::invalid_field(
                format!("messages[{index}].tool_call_id"),
                format!(
                    "Tool message `{call_id}` does not answer a tool call of a preceding \
                     assistant message, so its function name is unknown (Gemini-dialect \
                     providers require it)."
                ),
            )
        })?;
    let text = result.text_content();
    // A JSON object result is passed as the object; anything else is wrapped, since
    // `response` must be a Struct. Failures go under `error`, as Google's docs suggest.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) if !result.tool_error => Value::Object(object),
        _ => {
            let key = if result.tool_error { "error" } else { "output" };
            let mut object = Map::new();
            object.insert(key.to_owned(), Value::String(text));
            Value::Object(object)
        }
    };
    let (base, _) = ids::split(call_id);
    Ok(Part {
        function_response: Some(FunctionResponse {
            id: ids::wire_id(base, vertex),
            name,
            response,
        }),
        ..Part::default()
    })
}

fn generation_config(request: &ChatRequest) -> Result<GenerationConfig> {
    if request.stop.len() > MAX_STOP_SEQUENCES {
        return Err(Error::invalid_field(
            "stop",
            format!("Gemini-dialect providers accept at most {MAX_STOP_SEQUENCES} stop sequences."),
        ));
    }
    let seed = request
        .sampling
        .seed
        .map(|seed| {
            i32::try_from(seed).map_err(|_| {
                Error::invalid_field(
                    "seed",
                    "Gemini-dialect providers take a 32-bit seed: use a value between \
                     -2147483648 and 2147483647.",
                )
            })
        })
        .transpose()?;
    let (response_mime_type, response_json_schema) = match &request.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            (Some("application/json"), schema.clone())
        }
    };
    Ok(GenerationConfig {
        stop_sequences: request.stop.clone(),
        response_mime_type,
        response_json_schema,
        max_output_tokens: request.max_tokens,
        temperature: request.sampling.temperature,
        top_p: request.sampling.top_p,
        top_k: request.sampling.top_k,
        seed,
        presence_penalty: request.sampling.presence_penalty,
        frequency_penalty: request.sampling.frequency_penalty,
        thinking_config: thinking(request),
    })
}

/// Reasoning effort as a thinking budget (Gemini 2.5's `thinkingBudget`, still honoured by
/// Gemini 3): `none` is 0 (thinking off), other levels use the budgets shared by every dialect
/// (`rules::budget_for_effort`); an explicit budget wins. `body` then fits it to the model.
fn thinking(request: &ChatRequest) -> Option<ThinkingConfig> {
    if request.reasoning_budget.is_none() && request.reasoning_effort.as_deref() == Some("none") {
        return Some(ThinkingConfig { thinking_budget: 0 });
    }
    rules::reasoning_budget(request).map(|thinking_budget| ThinkingConfig { thinking_budget })
}

/// What a Gemini 2.5 model takes as `thinkingBudget` (Google's thinking guide; the API answers
/// 400 INVALID_ARGUMENT otherwise): the smallest budget that thinks, the largest, and whether 0
/// turns thinking off (2.5 Pro cannot stop thinking). Other models (Gemini 3, tuned or unknown
/// names) get the budget as asked: their limits are not documented per budget.
fn budget_limits(target: &str) -> Option<(u32, u32, bool)> {
    let model = target.rsplit('/').next().unwrap_or(target);
    if model.starts_with("gemini-2.5-flash-lite") {
        Some((512, 24_576, true))
    } else if model.starts_with("gemini-2.5-flash") {
        Some((1, 24_576, true))
    } else if model.starts_with("gemini-2.5-pro") {
        Some((128, 32_768, false))
    } else {
        None
    }
}

/// A budget `target` accepts: clamped into its range, and 0 (effort `none`) becomes the least
/// thinking where thinking cannot be turned off. A budget is a ceiling, so this keeps the intent.
pub(super) fn fit_budget(budget: u32, target: &str) -> u32 {
    match budget_limits(target) {
        None => budget,
        Some((_, _, true)) if budget == 0 => 0,
        Some((min, max, _)) => budget.clamp(min, max),
    }
}

/// Serializes the request body for the model `target`.
pub(super) fn body(request: &ChatRequest, vertex: bool, target: &str) -> Result<Vec<u8>> {
    let mut wire = encode(request, vertex)?;
    if let Some(config) = wire
        .generation_config
        .as_mut()
        .and_then(|g| g.thinking_config.as_mut())
    {
        config.thinking_budget = fit_budget(config.thinking_budget, target);
    }
    serde_json::to_vec(&wire)
        .map_err(|e| Error::internal(format!("encoding a Gemini request: {e}")))
}

#[cfg(test)]
pub(super) fn value(request: &ChatRequest, vertex: bool) -> Value {
    serde_json::to_value(encode(request, vertex).unwrap()).unwrap()
}

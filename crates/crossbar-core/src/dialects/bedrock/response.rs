//! Converse answers → canonical: the non-streamed response, stop reasons, usage and errors.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};

use super::wire;
use crate::chat::{
    ChatResponse, ContentPart, Family, FinishReason, Message, Reasoning, Role, ToolCall, Usage,
};
use crate::error::{Error, ErrorKind, Result};

/// Decodes a `ConverseResponse`. Bedrock names neither the answer nor the model: the id is
/// generated and the model is left empty for the provider to fill with the deployment's target.
pub(crate) fn decode(body: &[u8]) -> Result<ChatResponse> {
    let wire: wire::ConverseResponse = serde_json::from_slice(body).map_err(|e| {
        Error::bad_upstream(format!(
            "The upstream returned an invalid Converse response: {e}"
        ))
    })?;
    let mut message = Message::new(Role::Assistant, Vec::new());
    let blocks = wire.output.message.map(|m| m.content).unwrap_or_default();
    for block in blocks {
        decode_block(block, &mut message)?;
    }
    message.content_is_text = !message.content.is_empty();
    Ok(ChatResponse {
        id: response_id(),
        model: String::new(),
        created: now(),
        message,
        finish_reason: finish_reason(&wire.stop_reason),
        raw_finish_reason: Some(wire.stop_reason),
        usage: wire.usage.map(usage),
        system_fingerprint: None,
    })
}

fn decode_block(mut block: Map<String, Value>, message: &mut Message) -> Result<()> {
    if let Some(Value::String(text)) = block.remove("text") {
        if !text.is_empty() {
            message.content.push(ContentPart::Text { text });
        }
    } else if let Some(call) = block.remove("toolUse") {
        let call: wire::ToolUseBlock = serde_json::from_value(call).map_err(|e| {
            Error::bad_upstream(format!(
                "The upstream returned an invalid toolUse block: {e}"
            ))
        })?;
        message.tool_calls.push(ToolCall {
            id: call.tool_use_id,
            name: call.name,
            arguments: call.input.to_string(),
        });
    } else if let Some(reasoning) = block.remove("reasoningContent") {
        message.reasoning.push(reasoning_block(reasoning));
    }
    // Other members (citations, guard content, images...) have no canonical place.
    Ok(())
}

/// Converse's `reasoningContent` is Claude's thinking block in Bedrock's spelling, and its
/// signature is the same token the Anthropic API issues and checks: it becomes canonical
/// Anthropic reasoning, so Anthropic clients see it and any Claude deployment can take it back.
/// A reasoning text without a signature comes from another model (DeepSeek, Nova...): no
/// Claude deployment would take it back, so it stays Bedrock's.
pub(crate) fn reasoning_block(value: Value) -> Reasoning {
    let signed = |text: &Map<String, Value>| {
        text.get("signature")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let data = match (value.get("reasoningText"), value.get("redactedContent")) {
        (Some(Value::Object(text)), _) if signed(text) => json!({
            "type": "thinking",
            "thinking": text.get("text").and_then(Value::as_str).unwrap_or_default(),
            "signature": text.get("signature").and_then(Value::as_str).unwrap_or_default(),
        }),
        (_, Some(Value::String(data))) => json!({"type": "redacted_thinking", "data": data}),
        // A member newer than this code: only Bedrock can make sense of it.
        _ => return bedrock_reasoning(value),
    };
    anthropic_reasoning(data)
}

/// One streamed `reasoningContent` fragment as the Anthropic stream decoder emits it: the
/// thinking text, the signature that closes the block, or a whole redacted block.
pub(crate) fn reasoning_fragment(value: Value) -> Reasoning {
    let data = if let Some(Value::String(text)) = value.get("text") {
        json!({"thinking": text})
    } else if let Some(Value::String(signature)) = value.get("signature") {
        json!({"signature": signature})
    } else if let Some(Value::String(data)) = value.get("redactedContent") {
        json!({"type": "redacted_thinking", "data": data})
    } else {
        return bedrock_reasoning(value);
    };
    anthropic_reasoning(data)
}

/// Reasoning any Claude deployment can take back.
fn anthropic_reasoning(data: Value) -> Reasoning {
    Reasoning {
        family: Family::Anthropic,
        data,
    }
}

/// Reasoning only Bedrock can make sense of.
fn bedrock_reasoning(data: Value) -> Reasoning {
    Reasoning {
        family: Family::Bedrock,
        data,
    }
}

/// Bedrock's `stopReason` (providers.md §7.1); the raw value travels alongside.
pub(crate) fn finish_reason(raw: &str) -> FinishReason {
    match raw {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "tool_use" => FinishReason::ToolCalls,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// `inputTokens` excludes cache traffic on Bedrock, as on Anthropic's API.
pub(crate) fn usage(usage: wire::TokenUsage) -> Usage {
    crate::dialects::anthropic::usage_beside_cache(
        usage.input_tokens,
        usage.cache_read_input_tokens.unwrap_or(0),
        usage.cache_write_input_tokens.unwrap_or(0),
        usage.output_tokens,
    )
}

pub(crate) fn response_id() -> String {
    let suffix: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("chatcmpl-bdrk-{suffix}")
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Classifies an HTTP error answer: the exception name comes from `x-amzn-ErrorType` (text
/// before the first `:`), else from the body's `__type`; the text from the body's `message`.
pub(crate) fn decode_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Error {
    let parsed: wire::ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let name = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(parsed.kind.clone())
        .map(|raw| exception_name(&raw))
        .filter(|n| !n.is_empty());
    let message = parsed
        .message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| match &name {
            Some(name) => format!("The upstream returned HTTP {status} ({name})."),
            None => format!("The upstream returned HTTP {status}."),
        });
    let mut error = Error::from_upstream_status(status, message);
    match name.as_deref() {
        Some("ServiceQuotaExceededException") => error = error.quota_exceeded(),
        Some(
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException"
            | "ExpiredTokenException",
        ) => {
            error.kind = ErrorKind::Authentication;
            error.retryable = false;
        }
        Some("ThrottlingException" | "ModelNotReadyException") => {
            error.kind = ErrorKind::RateLimited;
            error.retryable = true;
        }
        Some("ModelTimeoutException") => {
            error.kind = ErrorKind::UpstreamTimeout;
            error.retryable = true;
        }
        // The model behind Bedrock failed; worth another deployment when it was overloaded.
        Some("ModelStreamErrorException") => upstream_unavailable(&mut error),
        Some("ModelErrorException")
            if parsed
                .original_status_code
                .is_some_and(|s| s == 429 || s >= 500) =>
        {
            upstream_unavailable(&mut error);
        }
        _ => {}
    }
    error.code = name;
    error
}

fn upstream_unavailable(error: &mut Error) {
    error.kind = ErrorKind::UpstreamUnavailable;
    error.retryable = true;
}

/// `ThrottlingException:http://internal.amazon.com/coral/...` or `aws.protocols#Name`.
fn exception_name(raw: &str) -> String {
    let before_colon = raw.split(':').next().unwrap_or_default();
    before_colon
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// An exception or error frame met inside a 200 stream.
pub(crate) fn stream_exception(name: &str, data: &str) -> Error {
    let parsed: wire::ErrorBody = serde_json::from_str(data).unwrap_or_default();
    let message = parsed
        .message
        .filter(|m| !m.trim().is_empty())
        .or_else(|| (!data.trim().is_empty() && parsed_is_empty(data)).then(|| data.to_owned()))
        .unwrap_or_else(|| format!("The upstream reported {name} mid-stream."));
    let mut error = match name {
        "throttlingException" => Error::from_upstream_status(429, message),
        "serviceUnavailableException" => Error::from_upstream_status(503, message),
        "internalServerException" => Error::from_upstream_status(500, message),
        "validationException" => Error::from_upstream_status(400, message),
        // The model broke off mid-answer; another attempt may well succeed.
        _ => Error::stream_interrupted(message),
    };
    error.code = (!name.is_empty()).then(|| name.to_owned());
    error
}

/// True when `data` is not a JSON object, i.e. plain text from an unmodeled error frame.
fn parsed_is_empty(data: &str) -> bool {
    serde_json::from_str::<Map<String, Value>>(data).is_err()
}

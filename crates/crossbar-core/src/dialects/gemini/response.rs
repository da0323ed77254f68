//! `GenerateContentResponse` → canonical, for whole answers; the part, finish-reason and usage
//! rules here are shared with the stream decoder.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::ids;
use super::wire::{GenerateContentResponse, Part, UsageMetadata};
use crate::chat::{
    ChatResponse, ContentPart, Family, FinishReason, Message, Reasoning, Role, ToolCall, Usage,
};
use crate::error::{Error, Result};

/// What a response part becomes.
#[derive(Debug, PartialEq)]
pub(super) enum Piece {
    Text(String),
    Reasoning(Reasoning),
    Call(ToolCall),
}

/// Counters that run across the chunks of one answer.
#[derive(Debug, Default)]
pub(super) struct Position {
    /// Parts seen so far (all kinds), for `part_index`.
    pub parts: usize,
    /// Function calls seen so far, for ids and the canonical tool-call index.
    pub calls: usize,
}

/// Turns parts into pieces: empty text is dropped (Gemini sends spurious `text: ""`), `thought`
/// parts become reasoning, a signature becomes a reasoning block of family Gemini placed before
/// what it came with (`{"thoughtSignature", "part_index"}`, plus `"tool_call_id"` on calls).
pub(super) fn pieces(parts: &[Part], response_id: &str, at: &mut Position, out: &mut Vec<Piece>) {
    for part in parts {
        let part_index = at.parts;
        at.parts += 1;
        let signature = part.thought_signature.as_deref().filter(|s| !s.is_empty());
        if let Some(call) = &part.function_call {
            let id = ids::call_id(call.id.as_deref(), response_id, at.calls, &call.name);
            at.calls += 1;
            if let Some(signature) = signature {
                out.push(Piece::Reasoning(Reasoning {
                    family: Family::Gemini,
                    data: json!({"thoughtSignature": signature, "part_index": part_index, "tool_call_id": id}),
                }));
            }
            let arguments = match &call.args {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(args) => args.to_string(),
            };
            out.push(Piece::Call(ToolCall {
                id,
                name: call.name.clone(),
                arguments,
            }));
            continue;
        }
        let text = part.text.as_deref().unwrap_or_default();
        if part.thought == Some(true) {
            if !text.is_empty() || signature.is_some() {
                let mut data = json!({"thought": text, "part_index": part_index});
                if let Some(signature) = signature {
                    data["thoughtSignature"] = json!(signature);
                }
                out.push(Piece::Reasoning(Reasoning {
                    family: Family::Gemini,
                    data,
                }));
            }
            continue;
        }
        if let Some(signature) = signature {
            out.push(Piece::Reasoning(Reasoning {
                family: Family::Gemini,
                data: json!({"thoughtSignature": signature, "part_index": part_index}),
            }));
        }
        if !text.is_empty() {
            out.push(Piece::Text(text.to_owned()));
        }
    }
}

/// Gemini has no tool-call finish reason: a turn that calls functions ends with `STOP`.
pub(super) fn finish_reason(raw: &str, has_calls: bool) -> FinishReason {
    match raw {
        "STOP" if has_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "IMAGE_OTHER" => FinishReason::ContentFilter,
        // LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS,
        // NO_IMAGE, FINISH_REASON_UNSPECIFIED: no canonical equivalent; the raw reason is kept.
        _ => FinishReason::Other,
    }
}

/// `promptTokenCount` includes cached tokens; `candidatesTokenCount` excludes thoughts.
pub(super) fn usage(meta: &UsageMetadata) -> Usage {
    Usage {
        input_tokens: meta
            .prompt_token_count
            .saturating_add(meta.tool_use_prompt_token_count),
        cached_input_tokens: meta.cached_content_token_count,
        cache_write_tokens: 0,
        output_tokens: meta
            .candidates_token_count
            .saturating_add(meta.thoughts_token_count),
        reasoning_tokens: meta.thoughts_token_count,
    }
}

/// The response id, or a stable stand-in derived from the body when Gemini sent none.
pub(super) fn response_id(wire: &GenerateContentResponse, body: &[u8]) -> String {
    match wire.response_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("gemini-{:016x}", ids::fnv1a(body)),
    }
}

/// Seconds since the epoch of Vertex's `createTime`, else now.
pub(super) fn created(create_time: Option<&str>) -> u64 {
    create_time.and_then(parse_rfc3339).unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z` (what Google sends) to Unix seconds.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !text.ends_with('Z') || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3_600 + minute * 60 + second).ok()
}

/// Decodes a whole `generateContent` answer.
pub(super) fn decode(body: &[u8]) -> Result<ChatResponse> {
    let wire: GenerateContentResponse = serde_json::from_slice(body).map_err(|e| {
        Error::bad_upstream(format!(
            "The upstream returned an invalid Gemini response: {e}"
        ))
    })?;
    let id = response_id(&wire, body);
    let mut message = Message::new(Role::Assistant, Vec::new());
    let candidate = wire.candidates.iter().find(|c| c.index.unwrap_or(0) == 0);
    let (finish_reason, raw) = match candidate {
        None => {
            let reason = wire
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.clone())
                .ok_or_else(|| {
                    Error::bad_upstream(
                        "The upstream returned a Gemini response without candidates.",
                    )
                })?;
            (FinishReason::ContentFilter, Some(reason))
        }
        Some(candidate) => {
            let mut out = Vec::new();
            let parts = candidate.content.as_ref().map(|c| c.parts.as_slice());
            pieces(
                parts.unwrap_or_default(),
                &id,
                &mut Position::default(),
                &mut out,
            );
            let mut text = String::new();
            for piece in out {
                match piece {
                    Piece::Text(more) => text.push_str(&more),
                    Piece::Reasoning(reasoning) => message.reasoning.push(reasoning),
                    Piece::Call(call) => message.tool_calls.push(call),
                }
            }
            if !text.is_empty() {
                message.content.push(ContentPart::Text { text });
                message.content_is_text = true;
            }
            let raw = candidate.finish_reason.clone();
            let reason = match raw.as_deref() {
                Some(raw) => finish_reason(raw, !message.tool_calls.is_empty()),
                None if !message.tool_calls.is_empty() => FinishReason::ToolCalls,
                None => FinishReason::Stop,
            };
            (reason, raw)
        }
    };
    Ok(ChatResponse {
        id,
        model: wire.model_version.clone().unwrap_or_default(),
        created: created(wire.create_time.as_deref()),
        message,
        finish_reason,
        raw_finish_reason: raw,
        usage: wire.usage_metadata.as_ref().map(usage),
        system_fingerprint: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2025-05-01T12:34:56.123456Z"),
            Some(1_746_102_896)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2025-05-01T12:34:56+02:00"), None);
    }

    #[test]
    fn finish_reasons_map_per_the_table() {
        assert_eq!(finish_reason("STOP", false), FinishReason::Stop);
        assert_eq!(finish_reason("STOP", true), FinishReason::ToolCalls);
        assert_eq!(finish_reason("MAX_TOKENS", true), FinishReason::Length);
        for filtered in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
        ] {
            assert_eq!(finish_reason(filtered, false), FinishReason::ContentFilter);
        }
        for other in ["MALFORMED_FUNCTION_CALL", "OTHER", "LANGUAGE", "NEW_REASON"] {
            assert_eq!(finish_reason(other, false), FinishReason::Other);
        }
    }
}

//! Readers the dialects' unit tests share: golden files, a whole SSE body fed to a stream
//! decoder, and the text a decoded stream carries.

use serde_json::{Value, json};

use super::{Egress, Frame, FrameKind, StreamDecode};
use crate::chat::{ChatRequest, Family, Reasoning, StreamEvent, Usage};
use crate::error::Result;

/// `tests/golden/{dialect}/{name}` as text.
pub(crate) fn golden(dialect: &str, name: &str) -> String {
    let path = format!(
        "{}/tests/golden/{dialect}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Claude's reasoning item `data`, as any Claude deployment takes it back.
pub(crate) fn claude_reasoning(data: Value) -> Reasoning {
    Reasoning {
        family: Family::Anthropic,
        data,
    }
}

/// Claude's thinking as a stream without signatures showed it: its signature empty.
pub(crate) fn unsigned_thinking() -> Reasoning {
    claude_reasoning(json!({"type": "thinking", "thinking": "unsigned", "signature": ""}))
}

/// A usage's input, cached input, cache writes and output, the counts a cache changes.
pub(crate) fn cache_counts(usage: &Usage) -> (u64, u64, u64, u64) {
    (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
    )
}

/// The body `egress` sends upstream for `request` to `target`, as JSON.
pub(crate) fn chat_body(egress: &dyn Egress, request: &ChatRequest, target: &str) -> Value {
    serde_json::from_slice(&egress.chat_body(request, target).unwrap()).unwrap()
}

/// Feeds an SSE body to `decoder` one event at a time (events without data are skipped): the
/// events decoded, and the first error or how the stream's end was judged.
pub(crate) fn decode_sse(
    mut decoder: impl StreamDecode,
    body: &str,
) -> (Vec<StreamEvent>, Result<()>) {
    let mut events = Vec::new();
    for block in body.split("\n\n") {
        let mut event = "";
        let mut data = "";
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = e;
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = d;
            }
        }
        if data.is_empty() {
            continue;
        }
        let frame = Frame {
            kind: FrameKind::Event,
            event,
            data,
        };
        if let Err(e) = decoder.decode(&frame, &mut events) {
            return (events, Err(e));
        }
    }
    (events, decoder.finish())
}

/// Decodes the golden SSE body `{dialect}/{name}`, which must end cleanly and open with the
/// message `id`.
pub(crate) fn clean_stream(
    decoder: impl StreamDecode,
    dialect: &str,
    name: &str,
    id: &str,
) -> Vec<StreamEvent> {
    let (events, end) = decode_sse(decoder, &golden(dialect, name));
    end.unwrap();
    assert!(
        matches!(&events[0], StreamEvent::Start { id: first, .. } if first == id),
        "{:?}",
        events[0]
    );
    events
}

/// The text deltas of a decoded stream, joined.
pub(crate) fn streamed_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

//! Between an answer and its stream: [`replay`] turns a cached answer into the canonical events
//! a streamed hit sends, and [`Assembler`] turns a streamed miss back into the answer to keep.
//! Each is the other's inverse for what the cache keeps (a unit test round-trips them).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::chat::{
    ChatResponse, ContentPart, Family, FinishReason, Message, Reasoning, Role, StreamEvent,
    ToolCall, Usage,
};

/// Characters per replayed text (or refusal) delta. Fixed, so a hit streams the same events
/// each time and the encoders write the same bytes.
pub const REPLAY_CHUNK_CHARS: usize = 64;

/// The events of `response` as a stream: `Start`, reasoning, text, refusal, tool calls (each
/// a start and its whole arguments), `Finish`, then `Usage` when the answer has one. A
/// function of the answer alone: equal answers give equal events.
pub fn replay(response: &ChatResponse) -> Vec<StreamEvent> {
    let message = &response.message;
    let mut events = vec![StreamEvent::Start {
        id: response.id.clone(),
        model: response.model.clone(),
        created: response.created,
    }];
    for block in &message.reasoning {
        replay_reasoning(block, &mut events);
    }
    chunks(&message.text_content(), &mut events, StreamEvent::TextDelta);
    if let Some(refusal) = &message.refusal {
        chunks(refusal, &mut events, StreamEvent::RefusalDelta);
    }
    for (index, call) in (0u32..).zip(&message.tool_calls) {
        events.push(StreamEvent::ToolCallStart {
            index,
            id: call.id.clone(),
            name: call.name.clone(),
        });
        if !call.arguments.is_empty() {
            events.push(StreamEvent::ToolCallDelta {
                index,
                arguments: call.arguments.clone(),
            });
        }
    }
    events.push(StreamEvent::Finish {
        reason: response.finish_reason,
        raw: response.raw_finish_reason.clone(),
    });
    if let Some(usage) = response.usage {
        events.push(StreamEvent::Usage(usage));
    }
    events
}

/// `text` in deltas of [`REPLAY_CHUNK_CHARS`] characters (never splitting one), none if empty.
fn chunks(text: &str, events: &mut Vec<StreamEvent>, event: fn(String) -> StreamEvent) {
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .nth(REPLAY_CHUNK_CHARS)
            .map_or(rest.len(), |(at, _)| at);
        let (chunk, tail) = rest.split_at(end);
        events.push(event(chunk.to_owned()));
        rest = tail;
    }
}

/// A whole reasoning block as the stream decoders emit it: Anthropic thinking as its text then
/// the signature that closes it (what the Anthropic encoder and the reasoning memory expect);
/// redacted thinking and other families' blocks whole, as they stream.
fn replay_reasoning(block: &Reasoning, events: &mut Vec<StreamEvent>) {
    let delta = |data: Value| {
        StreamEvent::ReasoningDelta(Reasoning {
            family: Family::Anthropic,
            data,
        })
    };
    if block.family == Family::Anthropic
        && block.data.get("type").and_then(Value::as_str) == Some("thinking")
    {
        let text = block.data.get("thinking").and_then(Value::as_str);
        events.push(delta(json!({"thinking": text.unwrap_or_default()})));
        if let Some(signature) = block
            .data
            .get("signature")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            events.push(delta(json!({"signature": signature})));
        }
    } else {
        events.push(StreamEvent::ReasoningDelta(block.clone()));
    }
}

/// Builds the answer a stream carried, to keep it once the stream ends well. Gives up (and
/// frees what it held) past `limit` bytes, since the cache would refuse the entry anyway.
#[derive(Debug)]
pub struct Assembler {
    limit: usize,
    bytes: usize,
    overflowed: bool,
    start: Option<(String, String, u64)>,
    text: String,
    refusal: Option<String>,
    reasoning: Vec<Reasoning>,
    /// Anthropic thinking text waiting for its signature.
    thinking: Option<String>,
    calls: BTreeMap<u32, ToolCall>,
    /// A fragment for a tool call that never started: the answer cannot be rebuilt.
    broken: bool,
    finish: Option<(FinishReason, Option<String>)>,
    usage: Option<Usage>,
}

impl Assembler {
    /// An assembler that gives up past `limit` bytes of content (the cache's
    /// `max_entry_bytes`).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            bytes: 0,
            overflowed: false,
            start: None,
            text: String::new(),
            refusal: None,
            reasoning: Vec::new(),
            thinking: None,
            calls: BTreeMap::new(),
            broken: false,
            finish: None,
            usage: None,
        }
    }

    /// Takes one event of the stream, in order.
    pub fn observe(&mut self, event: &StreamEvent) {
        if self.overflowed {
            return;
        }
        match event {
            StreamEvent::Start { id, model, created } => {
                self.start
                    .get_or_insert_with(|| (id.clone(), model.clone(), *created));
            }
            StreamEvent::TextDelta(text) => {
                self.count(text.len());
                self.text.push_str(text);
            }
            StreamEvent::RefusalDelta(text) => {
                self.count(text.len());
                self.refusal.get_or_insert_default().push_str(text);
            }
            StreamEvent::ReasoningDelta(block) => self.reasoning(block),
            StreamEvent::ToolCallStart { index, id, name } => {
                self.end_thinking();
                self.count(id.len() + name.len());
                self.calls.insert(
                    *index,
                    ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                    },
                );
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                self.count(arguments.len());
                match self.calls.get_mut(index) {
                    Some(call) => call.arguments.push_str(arguments),
                    None => self.broken = true,
                }
            }
            StreamEvent::Finish { reason, raw } => self.finish = Some((*reason, raw.clone())),
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
        }
        if self.bytes > self.limit {
            *self = Self {
                overflowed: true,
                ..Self::new(self.limit)
            };
        }
    }

    fn count(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Anthropic thinking streams as text fragments closed by a signature; everything else
    /// comes as whole blocks.
    fn reasoning(&mut self, block: &Reasoning) {
        let data = &block.data;
        if block.family == Family::Anthropic {
            if let Some(text) = data.get("thinking").and_then(Value::as_str)
                && data.get("type").is_none()
            {
                self.count(text.len());
                self.thinking.get_or_insert_default().push_str(text);
                return;
            }
            if let Some(signature) = data.get("signature").and_then(Value::as_str)
                && data.get("type").is_none()
            {
                self.count(signature.len());
                let thinking = self.thinking.take().unwrap_or_default();
                self.reasoning.push(thinking_block(thinking, signature));
                return;
            }
        }
        self.end_thinking();
        self.count(crate::shared_kv::json_len(data));
        self.reasoning.push(block.clone());
    }

    /// Keeps thinking that never got its signature (unsigned, as the upstream sent it).
    fn end_thinking(&mut self) {
        if let Some(thinking) = self.thinking.take() {
            self.reasoning.push(thinking_block(thinking, ""));
        }
    }

    /// The answer, if the stream was whole: it started, finished, and every tool-call fragment
    /// belonged to a started call. Call only on a stream that ended without an error.
    pub fn finish(mut self) -> Option<ChatResponse> {
        self.end_thinking();
        if self.overflowed || self.broken {
            return None;
        }
        let (id, model, created) = self.start?;
        let (finish_reason, raw_finish_reason) = self.finish?;
        let mut message = Message::new(Role::Assistant, Vec::new());
        if !self.text.is_empty() {
            message.content.push(ContentPart::Text { text: self.text });
            message.content_is_text = true;
        }
        message.refusal = self.refusal;
        message.reasoning = self.reasoning;
        message.tool_calls = self.calls.into_values().collect();
        Some(ChatResponse {
            id,
            model,
            created,
            message,
            finish_reason,
            raw_finish_reason,
            usage: self.usage,
            system_fingerprint: None,
        })
    }
}

fn thinking_block(thinking: String, signature: &str) -> Reasoning {
    Reasoning {
        family: Family::Anthropic,
        data: json!({"type": "thinking", "thinking": thinking, "signature": signature}),
    }
}

//! Remembers signed reasoning by tool-call id, so clients whose API has no place for it (OpenAI
//! Chat Completions) can still continue a thinking + tools conversation with a provider that
//! insists on getting its thinking blocks back (Anthropic: "a final assistant message must start
//! with a thinking block"). Process-wide, bounded in size and age; a miss just means the
//! provider sees the history as the client sent it.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::chat::{ChatRequest, Family, Message, Reasoning, Role, StreamEvent};

const CAPACITY: usize = 10_000;
const MAX_AGE: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Memory {
    entries: HashMap<String, (Instant, Vec<Reasoning>)>,
    order: VecDeque<String>,
}

static MEMORY: LazyLock<Mutex<Memory>> = LazyLock::new(Mutex::default);

fn with_memory<T>(f: impl FnOnce(&mut Memory) -> T) -> T {
    f(&mut MEMORY.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Keeps the reasoning that produced the tool call `id`.
pub fn remember(id: &str, reasoning: Vec<Reasoning>) {
    if id.is_empty() || reasoning.is_empty() {
        return;
    }
    with_memory(|memory| {
        if memory
            .entries
            .insert(id.to_owned(), (Instant::now(), reasoning))
            .is_none()
        {
            memory.order.push_back(id.to_owned());
        }
        while memory.order.len() > CAPACITY {
            if let Some(oldest) = memory.order.pop_front() {
                memory.entries.remove(&oldest);
            }
        }
    });
}

/// Keeps what an answer's assistant message needs to be replayed.
pub fn remember_message(message: &Message) {
    if let Some(call) = message.tool_calls.first() {
        remember(&call.id, message.reasoning.clone());
    }
}

/// Gives back remembered reasoning to assistant turns that arrive without theirs.
pub fn restore(request: &ChatRequest) -> Option<ChatRequest> {
    let missing = |m: &Message| {
        m.role == Role::Assistant && m.reasoning.is_empty() && !m.tool_calls.is_empty()
    };
    if !request.messages.iter().any(missing) {
        return None;
    }
    let mut restored = request.clone();
    let mut changed = false;
    with_memory(|memory| {
        for message in restored.messages.iter_mut().filter(|m| missing(m)) {
            let Some(id) = message.tool_calls.first().map(|c| c.id.clone()) else {
                continue;
            };
            if let Some((at, reasoning)) = memory.entries.get(&id)
                && at.elapsed() < MAX_AGE
            {
                message.reasoning = reasoning.clone();
                changed = true;
            }
        }
    });
    changed.then_some(restored)
}

/// Assembles streamed reasoning deltas into replayable blocks and remembers them against the
/// answer's first tool call.
#[derive(Debug, Default)]
pub struct StreamCollector {
    blocks: Vec<Reasoning>,
    thinking: String,
    first_call: Option<String>,
}

impl StreamCollector {
    pub fn observe(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::ReasoningDelta(Reasoning {
                family: Family::Anthropic,
                data,
            }) => {
                if let Some(text) = data.get("thinking").and_then(Value::as_str) {
                    self.thinking.push_str(text);
                } else if let Some(signature) = data.get("signature").and_then(Value::as_str) {
                    let thinking = std::mem::take(&mut self.thinking);
                    self.blocks.push(Reasoning {
                        family: Family::Anthropic,
                        data: json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                    });
                } else if data.get("type").and_then(Value::as_str) == Some("redacted_thinking") {
                    self.blocks.push(Reasoning {
                        family: Family::Anthropic,
                        data: data.clone(),
                    });
                }
            }
            // Other families carry whole blocks per event.
            StreamEvent::ReasoningDelta(reasoning) => self.blocks.push(reasoning.clone()),
            StreamEvent::ToolCallStart { id, .. } if self.first_call.is_none() => {
                self.first_call = Some(id.clone())
            }
            _ => {}
        }
    }

    pub fn finish(self) {
        if let Some(id) = self.first_call {
            remember(&id, self.blocks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolCall;

    #[test]
    fn streamed_thinking_is_assembled_and_restored_by_call_id() {
        let mut collector = StreamCollector::default();
        let thinking = |data: Value| {
            StreamEvent::ReasoningDelta(Reasoning {
                family: Family::Anthropic,
                data,
            })
        };
        for event in [
            thinking(json!({"thinking": "Need "})),
            thinking(json!({"thinking": "tools."})),
            thinking(json!({"signature": "sig-1"})),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_memory_test".into(),
                name: "f".into(),
            },
        ] {
            collector.observe(&event);
        }
        collector.finish();
        let mut assistant = Message::new(Role::Assistant, Vec::new());
        assistant.tool_calls.push(ToolCall {
            id: "toolu_memory_test".into(),
            name: "f".into(),
            arguments: "{}".into(),
        });
        let request = ChatRequest::new("m", vec![Message::text(Role::User, "x"), assistant]);
        let restored = restore(&request).unwrap();
        assert_eq!(
            restored.messages[1].reasoning[0].data,
            json!({"type": "thinking", "thinking": "Need tools.", "signature": "sig-1"})
        );
        let mut unknown = request.clone();
        unknown.messages[1].tool_calls[0].id = "toolu_never_seen".into();
        assert!(restore(&unknown).is_none());
    }
}

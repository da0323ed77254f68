//! Messages answers: the JSON message, and the stream's named events (`message_start`, blocks
//! with start / delta / stop and pings between them, `message_delta`, `message_stop`).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::request::{Parsed, signature};
use crate::behaviour::{Answer, Finish, Output};
use crate::faults::{self, Frame, StreamScript};
use crate::ids;

const THINKING: &str = "Let me work out what the user needs before answering.";

pub(crate) struct Render {
    id: String,
    model: String,
    thinking: bool,
    /// The thinking text shown (empty when the request asked for it to be omitted).
    thinking_text: &'static str,
    cache_breakpoint: bool,
}

impl Render {
    pub fn new(parsed: &Parsed, sequence: u64) -> Self {
        let mut rng = ids::rng(parsed.conversation.fingerprint, sequence);
        Self {
            id: format!("msg_{}", ids::alphanumeric(&mut rng, 24)),
            model: parsed.model.clone(),
            thinking: parsed.thinking.is_some(),
            thinking_text: if parsed.omit_thinking { "" } else { THINKING },
            cache_breakpoint: parsed.cache_breakpoint,
        }
    }

    fn usage(&self, answer: &Answer) -> Value {
        let prompt = answer.usage.prompt_tokens;
        let read = answer.usage.cached_tokens;
        // A breakpoint on a long enough prompt that missed the cache writes it.
        let write = if self.cache_breakpoint && read == 0 && prompt >= 1024 {
            prompt
        } else {
            0
        };
        json!({
            "input_tokens": prompt - read - write,
            "output_tokens": answer.usage.completion_tokens,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
            "service_tier": "standard",
        })
    }

    fn stop_reason(answer: &Answer) -> &'static str {
        match answer.finish {
            Finish::Stop => "end_turn",
            Finish::Length => "max_tokens",
            Finish::ToolCalls => "tool_use",
        }
    }

    fn tool_id(call_id: &str) -> String {
        format!("toolu_{}", call_id.trim_start_matches("call_"))
    }

    fn input(arguments: &str) -> Value {
        serde_json::from_str(arguments).unwrap_or_else(|_| Value::Object(Map::new()))
    }

    pub fn message(&self, answer: &Answer) -> Value {
        let mut content = Vec::new();
        if self.thinking {
            content.push(
                json!({"type": "thinking", "thinking": self.thinking_text, "signature": signature(self.thinking_text)}),
            );
        }
        match &answer.output {
            Output::Text(pieces) => content.push(json!({"type": "text", "text": pieces.concat()})),
            Output::ToolCalls(calls) => {
                for call in calls {
                    content.push(json!({"type": "tool_use", "id": Self::tool_id(&call.id), "name": call.name, "input": Self::input(&call.arguments())}));
                }
            }
        }
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": content,
            "stop_reason": Self::stop_reason(answer), "stop_sequence": null, "usage": self.usage(answer),
        })
    }

    pub fn stream(&self, answer: &Answer, malformed: bool) -> StreamScript {
        let mut frames = Vec::new();
        let mut usage = self.usage(answer);
        usage["output_tokens"] = json!(1);
        let start = json!({"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage});
        frames.push(event(
            "message_start",
            &json!({"type": "message_start", "message": start}),
            false,
        ));
        frames.push(event("ping", &json!({"type": "ping"}), false));
        let mut index = 0;
        if self.thinking {
            block(
                &mut frames,
                index,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                vec![
                    json!({"type": "thinking_delta", "thinking": self.thinking_text}),
                    json!({"type": "signature_delta", "signature": signature(self.thinking_text)}),
                ],
            );
            index += 1;
        }
        match &answer.output {
            Output::Text(pieces) => {
                let deltas = pieces
                    .iter()
                    .map(|p| json!({"type": "text_delta", "text": p}))
                    .collect();
                block(
                    &mut frames,
                    index,
                    json!({"type": "text", "text": ""}),
                    deltas,
                );
            }
            Output::ToolCalls(calls) => {
                for call in calls {
                    let start = json!({"type": "tool_use", "id": Self::tool_id(&call.id), "name": call.name, "input": {}});
                    let deltas = call
                        .pieces
                        .iter()
                        .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                        .collect();
                    block(&mut frames, index, start, deltas);
                    index += 1;
                }
            }
        }
        let delta = json!({"type": "message_delta", "delta": {"stop_reason": Self::stop_reason(answer), "stop_sequence": null},
            "usage": {"output_tokens": answer.usage.completion_tokens}});
        frames.push(event("message_delta", &delta, false));
        frames.push(event(
            "message_stop",
            &json!({"type": "message_stop"}),
            false,
        ));
        let error_frame = event("error", &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}), false).bytes;
        let malformed = malformed.then(|| {
            let index = faults::malformed_index(frames.len()).max(2);
            let data = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}).to_string();
            (index, Bytes::from(format!("event: content_block_delta\ndata: {}\n\n", faults::truncate_json(&data))))
        });
        StreamScript {
            frames,
            trailer: None,
            error_frame,
            malformed,
        }
    }
}

fn event(name: &str, data: &Value, paced: bool) -> Frame {
    Frame {
        bytes: Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        paced,
    }
}

/// One content block: start, its deltas (a ping after every fourth, as the API interleaves
/// them), stop.
fn block(frames: &mut Vec<Frame>, index: u32, start: Value, deltas: Vec<Value>) {
    frames.push(event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": start}),
        false,
    ));
    for (i, delta) in deltas.into_iter().enumerate() {
        frames.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            true,
        ));
        if i % 4 == 3 {
            frames.push(event("ping", &json!({"type": "ping"}), false));
        }
    }
    frames.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
        false,
    ));
}

//! Anthropic message streams: decoding an upstream's named SSE events into canonical events, and
//! encoding canonical events as the event sequence Anthropic sends (`message_start`, content
//! blocks with start / delta / stop, `message_delta`, `message_stop`).

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};
use serde_json::{Value, json};

use super::{
    decode_stop_reason, decode_stream_error, decode_usage, encode_stop_reason, encode_usage,
    error_type, message_id, now_secs, tool_id, wire,
};
use crate::chat::{Family, FinishReason, Reasoning, StreamEvent, Usage};
use crate::dialects::{Frame, StreamDecode};
use crate::error::{Error, Result};

/// One tool-use block being streamed by the upstream.
#[derive(Debug)]
struct ToolBlock {
    tool_index: u32,
    saw_arguments: bool,
}

/// Turns an upstream Anthropic stream into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    done: bool,
    /// Block index → tool; Anthropic's index counts every block, OpenAI's only tool calls.
    tools: HashMap<u32, ToolBlock>,
    next_tool: u32,
    input: wire::Usage,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }
}

fn reasoning(data: Value) -> StreamEvent {
    StreamEvent::ReasoningDelta(Reasoning {
        family: Family::Anthropic,
        data,
    })
}

impl StreamDecode for StreamDecoder {
    fn decode(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.done || frame.data.trim().is_empty() {
            return Ok(());
        }
        let event: wire::StreamEvent = serde_json::from_str(frame.data).map_err(|e| {
            Error::bad_upstream(format!("The upstream sent a malformed stream event: {e}"))
        })?;
        match event {
            wire::StreamEvent::MessageStart { message } => {
                self.input = message.usage;
                out.push(StreamEvent::Start {
                    id: message.id,
                    model: message.model,
                    created: now_secs(),
                });
            }
            wire::StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                wire::Block::ToolUse { id, name, .. } => {
                    let tool_index = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(
                        index,
                        ToolBlock {
                            tool_index,
                            saw_arguments: false,
                        },
                    );
                    out.push(StreamEvent::ToolCallStart {
                        index: tool_index,
                        id,
                        name,
                    });
                }
                wire::Block::Text { text, .. } if !text.is_empty() => {
                    out.push(StreamEvent::TextDelta(text))
                }
                wire::Block::Thinking { thinking, .. } if !thinking.is_empty() => {
                    out.push(reasoning(json!({"thinking": thinking})))
                }
                wire::Block::RedactedThinking { data } => out.push(reasoning(
                    json!({"type": "redacted_thinking", "data": data}),
                )),
                _ => {}
            },
            wire::StreamEvent::ContentBlockDelta { index, delta } => match delta {
                wire::Delta::TextDelta { text } if !text.is_empty() => {
                    out.push(StreamEvent::TextDelta(text))
                }
                wire::Delta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    let tool = self.tools.get_mut(&index).ok_or_else(|| {
                        Error::bad_upstream(
                            "The upstream sent tool input for a block that is not a tool call.",
                        )
                    })?;
                    tool.saw_arguments = true;
                    out.push(StreamEvent::ToolCallDelta {
                        index: tool.tool_index,
                        arguments: partial_json,
                    });
                }
                wire::Delta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                    out.push(reasoning(json!({"thinking": thinking})))
                }
                wire::Delta::SignatureDelta { signature } => {
                    out.push(reasoning(json!({"signature": signature})))
                }
                _ => {}
            },
            wire::StreamEvent::ContentBlockStop { index } => {
                // A tool with no arguments streams no input at all: its arguments are `{}`.
                if let Some(tool) = self.tools.get(&index)
                    && !tool.saw_arguments
                {
                    out.push(StreamEvent::ToolCallDelta {
                        index: tool.tool_index,
                        arguments: "{}".to_owned(),
                    });
                }
            }
            wire::StreamEvent::MessageDelta { delta, usage } => {
                if let Some(raw) = delta.stop_reason {
                    out.push(StreamEvent::Finish {
                        reason: decode_stop_reason(&raw),
                        raw: Some(raw),
                    });
                }
                // Usage here is cumulative; the input side may update message_start's.
                let totals = wire::Usage {
                    input_tokens: usage.input_tokens.unwrap_or(self.input.input_tokens),
                    output_tokens: usage.output_tokens,
                    cache_creation_input_tokens: usage
                        .cache_creation_input_tokens
                        .or(self.input.cache_creation_input_tokens),
                    cache_read_input_tokens: usage
                        .cache_read_input_tokens
                        .or(self.input.cache_read_input_tokens),
                };
                out.push(StreamEvent::Usage(decode_usage(&totals)));
            }
            wire::StreamEvent::MessageStop => self.done = true,
            wire::StreamEvent::Ping => {}
            wire::StreamEvent::Error { error } => return Err(decode_stream_error(&error)),
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        crate::dialects::stream_end(self.done, "The upstream stream ended before message_stop.")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Tool(u32),
}

/// Writes canonical events as Anthropic stream events for an Anthropic client.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    started: bool,
    open: Option<(u32, Block)>,
    next_block: u32,
    finish: Option<(FinishReason, Option<String>)>,
    usage: Option<Usage>,
    /// Our estimate of the prompt, reported in `message_start` before the real count is known.
    estimated_input: u64,
}

impl StreamEncoder {
    pub fn new(model: &str, estimated_input: u64) -> Self {
        Self {
            id: String::new(),
            model: model.to_owned(),
            started: false,
            open: None,
            next_block: 0,
            finish: None,
            usage: None,
            estimated_input,
        }
    }

    fn write(out: &mut BytesMut, name: &str, data: &Value) {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\ndata: ");
        out.put_slice(data.to_string().as_bytes());
        out.put_slice(b"\n\n");
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = format!("msg_{:024x}", rand::random::<u128>() >> 32);
        }
        let message = json!({
            "id": message_id(&self.id), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.estimated_input, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        });
        Self::write(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
        Self::write(out, "ping", &json!({"type": "ping"}));
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some((index, _)) = self.open.take() {
            Self::write(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Makes `block` the open content block, closing another if needed; returns its index.
    fn open(&mut self, block: Block, start: Value, out: &mut BytesMut) -> u32 {
        if let Some((index, open)) = self.open
            && open == block
        {
            return index;
        }
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, block));
        Self::write(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        index
    }

    /// Adds `delta` to the open thinking block, opening one if another block is open.
    fn thinking_delta(&mut self, delta: Value, out: &mut BytesMut) {
        let index = self.open(
            Block::Thinking,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
            out,
        );
        Self::delta(out, index, delta);
    }

    fn delta(out: &mut BytesMut, index: u32, delta: Value) {
        Self::write(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    /// Encodes one event. Fails only when the upstream's order cannot be expressed in Anthropic's
    /// one-block-at-a-time stream (argument fragments for a tool whose block already closed).
    pub fn event(&mut self, event: StreamEvent, out: &mut BytesMut) -> Result<()> {
        match event {
            StreamEvent::Start { id, model, .. } => {
                if !self.started {
                    self.id = id;
                    if !model.is_empty() {
                        self.model = model;
                    }
                }
                self.ensure_started(out);
            }
            StreamEvent::TextDelta(text) | StreamEvent::RefusalDelta(text) => {
                self.ensure_started(out);
                let index = self.open(Block::Text, json!({"type": "text", "text": ""}), out);
                Self::delta(out, index, json!({"type": "text_delta", "text": text}));
            }
            StreamEvent::ReasoningDelta(Reasoning {
                family: Family::Anthropic,
                data,
            }) => {
                self.ensure_started(out);
                if let Some(thinking) = data.get("thinking").and_then(Value::as_str) {
                    self.thinking_delta(
                        json!({"type": "thinking_delta", "thinking": thinking}),
                        out,
                    );
                } else if let Some(signature) = data.get("signature").and_then(Value::as_str) {
                    self.thinking_delta(
                        json!({"type": "signature_delta", "signature": signature}),
                        out,
                    );
                    // The signature ends its block: thinking after it is a new block (two
                    // Bedrock reasoning blocks in a row must not merge into one).
                    self.close(out);
                } else if data.get("type").and_then(Value::as_str) == Some("redacted_thinking") {
                    self.close(out);
                    let index = self.next_block;
                    self.next_block += 1;
                    Self::write(
                        out,
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": index, "content_block": data}),
                    );
                    Self::write(
                        out,
                        "content_block_stop",
                        &json!({"type": "content_block_stop", "index": index}),
                    );
                }
            }
            // Other families' reasoning cannot be replayed to Anthropic: not shown.
            StreamEvent::ReasoningDelta(_) => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                self.close(out);
                self.open(
                    Block::Tool(index),
                    json!({"type": "tool_use", "id": tool_id(&id), "name": name, "input": {}}),
                    out,
                );
            }
            StreamEvent::ToolCallDelta { index, arguments } => match self.open {
                Some((block, Block::Tool(open))) if open == index => {
                    Self::delta(
                        out,
                        block,
                        json!({"type": "input_json_delta", "partial_json": arguments}),
                    );
                }
                _ => {
                    return Err(Error::bad_upstream(
                        "The upstream interleaved tool-call fragments, which an Anthropic stream cannot carry.",
                    ));
                }
            },
            StreamEvent::Finish { reason, raw } => self.finish = Some((reason, raw)),
            StreamEvent::Usage(usage) => self.usage = Some(usage),
        }
        Ok(())
    }

    /// Ends a complete stream: closes the open block, `message_delta` with the stop reason and
    /// the final usage, then `message_stop`.
    pub fn end(&mut self, out: &mut BytesMut) {
        self.ensure_started(out);
        self.close(out);
        let (reason, raw) = self.finish.clone().unwrap_or((FinishReason::Stop, None));
        let usage = encode_usage(&self.usage.unwrap_or_default());
        Self::write(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": encode_stop_reason(reason, raw.as_deref()), "stop_sequence": null},
                "usage": {"output_tokens": usage.output_tokens, "input_tokens": usage.input_tokens,
                          "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                          "cache_read_input_tokens": usage.cache_read_input_tokens},
            }),
        );
        Self::write(out, "message_stop", &json!({"type": "message_stop"}));
    }

    /// Ends a broken stream with `event: error`, which Anthropic SDKs raise; never
    /// `message_stop`.
    pub fn error(&mut self, error: &Error, out: &mut BytesMut) {
        Self::write(
            out,
            "error",
            &json!({"type": "error", "error": {"type": error_type(error), "message": error.message}}),
        );
    }
}

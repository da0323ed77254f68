//! OpenAI chat streams: decoding an upstream's `data:` chunks into canonical events, and encoding
//! canonical events into the exact chunk sequence OpenAI sends.

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::Value;

use super::{
    decode_finish_reason, decode_stream_error, decode_usage, encode_finish_reason, encode_usage,
    wire,
};
use crate::chat::{StreamEvent, Usage};
use crate::error::{Error, Result};

/// Turns an upstream's SSE `data` payloads into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    done: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one SSE `data` payload, appending the events it carries.
    pub fn decode(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: wire::Chunk = crate::dialects::stream_chunk(data, |data| {
            let value: Value = serde_json::from_str(data).map_err(|e| {
                Error::bad_upstream(format!("The upstream sent a malformed stream chunk: {e}"))
            })?;
            if value.get("error").is_some_and(|e| !e.is_null()) {
                return Err(decode_stream_error(&value));
            }
            serde_json::from_value(value).map_err(|e| {
                Error::bad_upstream(format!("The upstream sent an invalid stream chunk: {e}"))
            })
        })?;
        // Azure's first chunk carries only content-filter results: no id, no choices.
        let filter_only = chunk.id.is_empty() && chunk.choices.is_empty();
        if !self.started && !filter_only {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id,
                model: chunk.model,
                created: chunk.created,
            });
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let delta = choice.delta;
            if let Some(Some(text)) = delta
                .content
                .filter(|t| t.as_ref().is_some_and(|t| !t.is_empty()))
            {
                out.push(StreamEvent::TextDelta(text));
            }
            if let Some(Some(refusal)) = delta
                .refusal
                .filter(|t| t.as_ref().is_some_and(|t| !t.is_empty()))
            {
                out.push(StreamEvent::RefusalDelta(refusal));
            }
            for call in delta.tool_calls {
                let function = call.function.unwrap_or_default();
                if let Some(id) = call.id {
                    out.push(StreamEvent::ToolCallStart {
                        index: call.index,
                        id,
                        name: function.name.unwrap_or_default(),
                    });
                }
                if let Some(arguments) = function.arguments.filter(|a| !a.is_empty()) {
                    out.push(StreamEvent::ToolCallDelta {
                        index: call.index,
                        arguments,
                    });
                }
            }
            if let Some(raw) = choice.finish_reason {
                out.push(StreamEvent::Finish {
                    reason: decode_finish_reason(&raw),
                    raw: Some(raw),
                });
            }
        }
        if let Some(Some(usage)) = chunk.usage {
            out.push(StreamEvent::Usage(decode_usage(&usage)));
        }
        Ok(())
    }

    /// Checks the stream ended properly: an OpenAI stream that stops before `[DONE]` was cut.
    pub fn finish(&self) -> Result<()> {
        crate::dialects::stream_end(
            self.done,
            "The upstream stream ended before it was complete.",
        )
    }
}

/// A `chat.completion.chunk` as the encoder writes it: [`wire::Chunk`]'s fields in its order,
/// borrowed. `usage` is `Some(None)` for the explicit `"usage": null`.
#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<wire::Usage>>,
}

#[derive(Serialize)]
struct ChoiceOut {
    index: u32,
    delta: wire::Delta,
    logprobs: Option<Value>,
    finish_reason: Option<&'static str>,
}

/// Writes canonical events as OpenAI `chat.completion.chunk` SSE frames.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    role_sent: bool,
    usage: Option<Usage>,
}

impl StreamEncoder {
    pub fn new(include_usage: bool) -> Self {
        Self {
            id: String::new(),
            model: String::new(),
            created: 0,
            include_usage,
            role_sent: false,
            usage: None,
        }
    }

    /// A chunk of one choice, borrowing the stream's id and model (chunks are many).
    fn chunk(&self, delta: wire::Delta, finish_reason: Option<&'static str>) -> ChunkOut<'_> {
        ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: [ChoiceOut {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: self.include_usage.then_some(None),
        }
    }

    fn write(out: &mut BytesMut, chunk: &impl serde::Serialize) {
        out.put_slice(b"data: ");
        // Serializing our own plain structs cannot fail; an empty object keeps the frame valid.
        if serde_json::to_writer(out.writer(), chunk).is_err() {
            out.put_slice(b"{}");
        }
        out.put_slice(b"\n\n");
    }

    fn role_delta(&mut self) -> wire::Delta {
        self.role_sent = true;
        wire::Delta {
            role: Some("assistant".to_owned()),
            ..Default::default()
        }
    }

    /// Encodes one event, appending zero or more frames to `out`.
    pub fn event(&mut self, event: StreamEvent, out: &mut BytesMut) {
        match event {
            StreamEvent::Start { id, model, created } => {
                self.id = id;
                self.model = model;
                self.created = created;
            }
            StreamEvent::TextDelta(text) => {
                self.ensure_role(out);
                let delta = wire::Delta {
                    content: Some(Some(text)),
                    ..Default::default()
                };
                Self::write(out, &self.chunk(delta, None));
            }
            StreamEvent::RefusalDelta(refusal) => {
                self.ensure_role(out);
                let delta = wire::Delta {
                    refusal: Some(Some(refusal)),
                    ..Default::default()
                };
                Self::write(out, &self.chunk(delta, None));
            }
            // Chat Completions has no place for reasoning content.
            StreamEvent::ReasoningDelta(_) => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                let mut delta = if self.role_sent {
                    wire::Delta::default()
                } else {
                    // OpenAI's first chunk of a tool-calling answer: role, `content: null`, and
                    // the first fragment together.
                    let mut delta = self.role_delta();
                    delta.content = Some(None);
                    delta.refusal = Some(None);
                    delta
                };
                delta.tool_calls = vec![wire::ToolCallChunk {
                    index,
                    id: Some(id),
                    kind: Some(wire::function_type()),
                    function: Some(wire::FunctionChunk {
                        name: Some(name),
                        arguments: Some(String::new()),
                    }),
                }];
                Self::write(out, &self.chunk(delta, None));
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                self.ensure_role(out);
                let delta = wire::Delta {
                    tool_calls: vec![wire::ToolCallChunk {
                        index,
                        function: Some(wire::FunctionChunk {
                            name: None,
                            arguments: Some(arguments),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                Self::write(out, &self.chunk(delta, None));
            }
            StreamEvent::Finish { reason, .. } => {
                self.ensure_role(out);
                let chunk = self.chunk(wire::Delta::default(), Some(encode_finish_reason(reason)));
                Self::write(out, &chunk);
            }
            StreamEvent::Usage(usage) => self.usage = Some(usage),
        }
    }

    fn ensure_role(&mut self, out: &mut BytesMut) {
        if !self.role_sent {
            let mut delta = self.role_delta();
            delta.content = Some(Some(String::new()));
            delta.refusal = Some(None);
            Self::write(out, &self.chunk(delta, None));
        }
    }

    /// Ends a complete stream: the usage chunk (when asked for) and `[DONE]`.
    pub fn end(&mut self, out: &mut BytesMut) {
        if self.include_usage {
            let chunk = wire::Chunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".to_owned(),
                created: self.created,
                model: self.model.clone(),
                system_fingerprint: None,
                choices: Vec::new(),
                usage: Some(Some(encode_usage(&self.usage.unwrap_or_default()))),
            };
            Self::write(out, &chunk);
        }
        out.put_slice(b"data: [DONE]\n\n");
    }

    /// Ends a broken stream with an in-band error, which OpenAI SDKs raise; never `[DONE]`.
    pub fn error(&mut self, error: &Error, out: &mut BytesMut) {
        out.put_slice(b"data: ");
        out.put_slice(&super::encode_error(error));
        out.put_slice(b"\n\n");
    }
}

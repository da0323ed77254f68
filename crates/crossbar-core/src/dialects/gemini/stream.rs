//! `streamGenerateContent?alt=sse`: each SSE `data:` is a whole `GenerateContentResponse`
//! chunk; there are no event names and no end sentinel, so a stream is complete only once a
//! chunk carried a `finishReason` (or a blocked prompt's `promptFeedback`).

use serde_json::Value;

use super::error::decode_stream_error;
use super::response::{self, Piece, Position};
use super::wire::{GenerateContentResponse, UsageMetadata};
use crate::chat::{FinishReason, StreamEvent};
use crate::dialects::{Frame, StreamDecode};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    finished: bool,
    response_id: String,
    position: Position,
    /// Usage is a running snapshot on every chunk: the last one wins, never a sum.
    usage: Option<UsageMetadata>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one `data:` payload. Chunks after the finishing one are ignored: Gemini sends
    /// none, and a canonical stream has one `Finish`.
    pub fn decode(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let chunk: GenerateContentResponse = crate::dialects::stream_chunk(data, |data| {
            let value: Value = serde_json::from_str(data).map_err(|e| {
                Error::bad_upstream(format!("The upstream sent a malformed stream chunk: {e}"))
            })?;
            // Errors after the 200 arrive as an error object in a data line (sometimes in an
            // array).
            let value = match value {
                Value::Array(mut items) if items.len() == 1 => items.remove(0),
                other => other,
            };
            if value.get("error").is_some_and(|e| !e.is_null()) {
                return Err(decode_stream_error(&value));
            }
            serde_json::from_value(value).map_err(|e| {
                Error::bad_upstream(format!("The upstream sent an invalid stream chunk: {e}"))
            })
        })?;
        if !self.started {
            self.started = true;
            self.response_id = response::response_id(&chunk, data.as_bytes());
            out.push(StreamEvent::Start {
                id: self.response_id.clone(),
                model: chunk.model_version.clone().unwrap_or_default(),
                created: response::created(chunk.create_time.as_deref()),
            });
        }
        if let Some(usage) = chunk.usage_metadata {
            self.usage = Some(usage);
        }
        let candidate = chunk.candidates.iter().find(|c| c.index.unwrap_or(0) == 0);
        let Some(candidate) = candidate else {
            if let Some(reason) = chunk.prompt_feedback.and_then(|f| f.block_reason) {
                self.end_with(FinishReason::ContentFilter, reason, out);
            }
            return Ok(());
        };
        let mut pieces = Vec::new();
        let first_call = self.position.calls;
        let parts = candidate.content.as_ref().map(|c| c.parts.as_slice());
        response::pieces(
            parts.unwrap_or_default(),
            &self.response_id,
            &mut self.position,
            &mut pieces,
        );
        let mut index = first_call;
        for piece in pieces {
            match piece {
                Piece::Text(text) => out.push(StreamEvent::TextDelta(text)),
                Piece::Reasoning(reasoning) => out.push(StreamEvent::ReasoningDelta(reasoning)),
                Piece::Call(call) => {
                    // Gemini sends each call whole: one start and one delta with all arguments.
                    let at = u32::try_from(index).unwrap_or(u32::MAX);
                    index += 1;
                    out.push(StreamEvent::ToolCallStart {
                        index: at,
                        id: call.id,
                        name: call.name,
                    });
                    out.push(StreamEvent::ToolCallDelta {
                        index: at,
                        arguments: call.arguments,
                    });
                }
            }
        }
        if let Some(raw) = candidate.finish_reason.clone() {
            let reason = response::finish_reason(&raw, self.position.calls > 0);
            self.end_with(reason, raw, out);
        }
        Ok(())
    }

    fn end_with(&mut self, reason: FinishReason, raw: String, out: &mut Vec<StreamEvent>) {
        self.finished = true;
        out.push(StreamEvent::Finish {
            reason,
            raw: Some(raw),
        });
        if let Some(usage) = &self.usage {
            out.push(StreamEvent::Usage(response::usage(usage)));
        }
    }

    /// A Gemini stream that ends before any `finishReason` was cut off.
    pub fn finish_stream(&self) -> Result<()> {
        crate::dialects::stream_end(
            self.finished,
            "The upstream stream ended before a finishReason: the answer is incomplete.",
        )
    }
}

impl StreamDecode for StreamDecoder {
    fn decode(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<()> {
        StreamDecoder::decode(self, frame.data, out)
    }

    fn finish(&mut self) -> Result<()> {
        self.finish_stream()
    }
}

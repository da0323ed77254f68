//! ConverseStream events → canonical stream events.
//!
//! Bedrock's `contentBlockIndex` counts every block (text, reasoning, tool use) while canonical
//! tool indexes count tool calls only, so tool blocks get indexes from a per-stream counter as
//! their `contentBlockStart` arrives; the deltas carry only the block index. Text blocks have no
//! start event. `messageStop` carries the reason and `metadata`, after it, the usage: they become
//! `Finish` then `Usage`, which is OpenAI's order too.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::response::{
    finish_reason, now, reasoning_fragment, response_id, stream_exception, usage,
};
use super::wire;
use crate::chat::StreamEvent;
use crate::dialects::{Frame, FrameKind, StreamDecode};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    /// `contentBlockIndex` of each tool block → its canonical tool index.
    tools: HashMap<u32, u32>,
    next_tool: u32,
    stopped: bool,
    metadata: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: response_id(),
                model: String::new(),
                created: now(),
            });
        }
    }

    fn event(&mut self, name: &str, data: &str, out: &mut Vec<StreamEvent>) -> Result<()> {
        match name {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                self.start(out);
                let event: wire::BlockStart = parse(name, data)?;
                if let Some(start) = event.start.get("toolUse") {
                    let start: wire::ToolUseStart = parse_value(name, start.clone())?;
                    let index = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(event.content_block_index, index);
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: start.tool_use_id,
                        name: start.name,
                    });
                }
            }
            "contentBlockDelta" => {
                self.start(out);
                let mut event: wire::BlockDelta = parse(name, data)?;
                if let Some(Value::String(text)) = event.delta.remove("text") {
                    if !text.is_empty() {
                        out.push(StreamEvent::TextDelta(text));
                    }
                } else if let Some(tool) = event.delta.remove("toolUse") {
                    let index = *self.tools.get(&event.content_block_index).ok_or_else(|| {
                        Error::bad_upstream(format!(
                            "The upstream sent tool input for block {} before its start.",
                            event.content_block_index
                        ))
                    })?;
                    let arguments = tool
                        .get("input")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if !arguments.is_empty() {
                        out.push(StreamEvent::ToolCallDelta { index, arguments });
                    }
                } else if let Some(reasoning) = event.delta.remove("reasoningContent") {
                    // One fragment (`text`, `signature` or `redactedContent`) per event.
                    out.push(StreamEvent::ReasoningDelta(reasoning_fragment(reasoning)));
                }
            }
            "messageStop" => {
                self.start(out);
                let event: wire::MessageStop = parse(name, data)?;
                self.stopped = true;
                out.push(StreamEvent::Finish {
                    reason: finish_reason(&event.stop_reason),
                    raw: Some(event.stop_reason),
                });
            }
            "metadata" => {
                let event: wire::Metadata = parse(name, data)?;
                self.metadata = true;
                if let Some(tokens) = event.usage {
                    out.push(StreamEvent::Usage(usage(tokens)));
                }
            }
            // `contentBlockStop`, and members newer than this code.
            _ => {}
        }
        Ok(())
    }
}

fn parse<T: DeserializeOwned>(event: &str, data: &str) -> Result<T> {
    serde_json::from_str(data).map_err(|e| {
        Error::bad_upstream(format!("The upstream sent an invalid {event} event: {e}"))
    })
}

fn parse_value<T: DeserializeOwned>(event: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| {
        Error::bad_upstream(format!("The upstream sent an invalid {event} event: {e}"))
    })
}

impl StreamDecode for StreamDecoder {
    fn decode(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<()> {
        match frame.kind {
            FrameKind::Event => self.event(frame.event, frame.data, out),
            FrameKind::Exception | FrameKind::Error => {
                Err(stream_exception(frame.event, frame.data))
            }
        }
    }

    /// Complete means `messageStop` and then `metadata` arrived; anything less was cut.
    fn finish(&mut self) -> Result<()> {
        match (self.stopped, self.metadata) {
            (true, true) => Ok(()),
            (false, _) => Err(Error::stream_interrupted(
                "The upstream stream ended before messageStop.",
            )),
            (true, false) => Err(Error::stream_interrupted(
                "The upstream stream ended before its metadata (usage).",
            )),
        }
    }
}

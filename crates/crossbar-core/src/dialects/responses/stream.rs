//! Responses API streams: canonical events become the `response.*` event sequence OpenAI sends
//! (`response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`/`.done`,
//! `response.function_call_arguments.delta`/`.done`, `response.content_part.done`,
//! `response.output_item.done`, then `response.completed` or `response.incomplete`). A broken
//! stream ends with `response.failed`, never with a clean terminal event.

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};
use serde_json::{Value, json};

use super::{
    Params, call_item_id, encode_response, message_item_id, output_text_part, response_error,
    response_object,
};
use crate::chat::Usage;
use crate::chat::{ChatResponse, ContentPart, FinishReason, Message, Role, StreamEvent, ToolCall};
use crate::error::Error;

/// Folds canonical stream events into the answer they make, so a streamed answer can be
/// stored and reported exactly like a non-streamed one.
#[derive(Debug, Default)]
pub struct Accumulator {
    id: String,
    model: String,
    created: u64,
    text: String,
    refusal: Option<String>,
    calls: BTreeMap<u32, ToolCall>,
    finish: Option<(FinishReason, Option<String>)>,
    usage: Option<Usage>,
}

impl Accumulator {
    pub fn observe(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Start { id, model, created } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.created = *created;
            }
            StreamEvent::TextDelta(text) => self.text.push_str(text),
            StreamEvent::RefusalDelta(text) => {
                self.refusal.get_or_insert_default().push_str(text);
            }
            StreamEvent::ReasoningDelta(_) => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                let call = self.calls.entry(*index).or_insert_with(|| ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                call.id.clone_from(id);
                call.name.clone_from(name);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                self.calls
                    .entry(*index)
                    .or_insert_with(|| ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    })
                    .arguments
                    .push_str(arguments);
            }
            StreamEvent::Finish { reason, raw } => self.finish = Some((*reason, raw.clone())),
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
        }
    }

    /// The answer so far; `model` stands in until the upstream names its own.
    pub fn response(&self, model: &str) -> ChatResponse {
        let mut message = Message::new(Role::Assistant, Vec::new());
        if !self.text.is_empty() {
            message.content.push(ContentPart::text(self.text.clone()));
            message.content_is_text = true;
        }
        message.refusal.clone_from(&self.refusal);
        message.tool_calls = self.calls.values().cloned().collect();
        let (finish_reason, raw_finish_reason) = self.finish.clone().unwrap_or((
            if message.tool_calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            None,
        ));
        ChatResponse {
            id: self.id.clone(),
            model: if self.model.is_empty() {
                model.to_owned()
            } else {
                self.model.clone()
            },
            created: self.created,
            message,
            finish_reason,
            raw_finish_reason,
            usage: self.usage,
            system_fingerprint: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

#[derive(Debug)]
struct OpenPart {
    kind: PartKind,
    index: u32,
    text: String,
}

#[derive(Debug)]
struct OpenMessage {
    output_index: u32,
    part: Option<OpenPart>,
    parts: Vec<Value>,
}

#[derive(Debug)]
struct OpenCall {
    output_index: u32,
    item_id: String,
    call: ToolCall,
}

/// Writes canonical events as Responses API SSE events (`event:` name and a `type` field, and
/// a `sequence_number` on every event).
#[derive(Debug)]
pub struct StreamEncoder {
    params: Params,
    model: String,
    sequence: u64,
    started: bool,
    next_output: u32,
    message: Option<OpenMessage>,
    calls: BTreeMap<u32, OpenCall>,
    items: BTreeMap<u32, Value>,
    answer: Accumulator,
}

impl StreamEncoder {
    /// `model` is the logical model asked for, reported until the upstream names its own.
    pub fn new(params: Params, model: &str) -> Self {
        Self {
            params,
            model: model.to_owned(),
            sequence: 0,
            started: false,
            next_output: 0,
            message: None,
            calls: BTreeMap::new(),
            items: BTreeMap::new(),
            answer: Accumulator::default(),
        }
    }

    fn write(&mut self, out: &mut BytesMut, kind: &str, mut data: Value) {
        if let Value::Object(map) = &mut data {
            map.insert("type".into(), json!(kind));
            map.insert("sequence_number".into(), json!(self.sequence));
        }
        self.sequence += 1;
        out.put_slice(b"event: ");
        out.put_slice(kind.as_bytes());
        out.put_slice(b"\ndata: ");
        // Serializing a `Value` cannot fail; an empty object keeps the frame valid.
        if serde_json::to_writer(out.writer(), &data).is_err() {
            out.put_slice(b"{}");
        }
        out.put_slice(b"\n\n");
    }

    fn snapshot(&self, status: &str) -> Value {
        let output = self.items.values().cloned().collect();
        let model = self.answer.response(&self.model).model;
        response_object(&self.params, &model, status, output, None)
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.snapshot("in_progress");
        self.write(out, "response.created", json!({"response": response}));
        self.write(out, "response.in_progress", json!({"response": response}));
    }

    fn open_message(&mut self, out: &mut BytesMut) -> u32 {
        if let Some(message) = &self.message {
            return message.output_index;
        }
        let output_index = self.next_output;
        self.next_output += 1;
        self.message = Some(OpenMessage {
            output_index,
            part: None,
            parts: Vec::new(),
        });
        let item = json!({
            "id": message_item_id(&self.params.id),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        });
        self.write(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        output_index
    }

    fn close_part(&mut self, out: &mut BytesMut) {
        let Some(message) = &mut self.message else {
            return;
        };
        let Some(part) = message.part.take() else {
            return;
        };
        let output_index = message.output_index;
        let item_id = message_item_id(&self.params.id);
        let (done, value) = match part.kind {
            PartKind::Text => (
                json!({
                    "item_id": item_id, "output_index": output_index, "content_index": part.index,
                    "text": part.text, "logprobs": [],
                }),
                output_text_part(&part.text),
            ),
            PartKind::Refusal => (
                json!({
                    "item_id": item_id, "output_index": output_index, "content_index": part.index,
                    "refusal": part.text,
                }),
                json!({"type": "refusal", "refusal": part.text}),
            ),
        };
        message.parts.push(value.clone());
        let kind = match part.kind {
            PartKind::Text => "response.output_text.done",
            PartKind::Refusal => "response.refusal.done",
        };
        self.write(out, kind, done);
        self.write(
            out,
            "response.content_part.done",
            json!({
                "item_id": item_id, "output_index": output_index, "content_index": part.index,
                "part": value,
            }),
        );
    }

    fn delta(&mut self, kind: PartKind, delta: String, out: &mut BytesMut) {
        self.ensure_started(out);
        let output_index = self.open_message(out);
        let open = self
            .message
            .as_ref()
            .and_then(|m| m.part.as_ref())
            .map(|p| p.kind);
        if open != Some(kind) {
            self.close_part(out);
            let index = self
                .message
                .as_ref()
                .map_or(0, |m| u32::try_from(m.parts.len()).unwrap_or(u32::MAX));
            if let Some(message) = &mut self.message {
                message.part = Some(OpenPart {
                    kind,
                    index,
                    text: String::new(),
                });
            }
            let part = match kind {
                PartKind::Text => output_text_part(""),
                PartKind::Refusal => json!({"type": "refusal", "refusal": ""}),
            };
            let item_id = message_item_id(&self.params.id);
            self.write(
                out,
                "response.content_part.added",
                json!({
                    "item_id": item_id, "output_index": output_index, "content_index": index,
                    "part": part,
                }),
            );
        }
        let Some(part) = self.message.as_mut().and_then(|m| m.part.as_mut()) else {
            return;
        };
        part.text.push_str(&delta);
        let index = part.index;
        let item_id = message_item_id(&self.params.id);
        match kind {
            PartKind::Text => self.write(
                out,
                "response.output_text.delta",
                json!({
                    "item_id": item_id, "output_index": output_index, "content_index": index,
                    "delta": delta, "logprobs": [],
                }),
            ),
            PartKind::Refusal => self.write(
                out,
                "response.refusal.delta",
                json!({
                    "item_id": item_id, "output_index": output_index, "content_index": index,
                    "delta": delta,
                }),
            ),
        }
    }

    fn close_message(&mut self, out: &mut BytesMut) {
        self.close_part(out);
        let Some(message) = self.message.take() else {
            return;
        };
        let item = json!({
            "id": message_item_id(&self.params.id),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": message.parts,
        });
        self.items.insert(message.output_index, item.clone());
        self.write(
            out,
            "response.output_item.done",
            json!({"output_index": message.output_index, "item": item}),
        );
    }

    fn open_call(&mut self, index: u32, id: String, name: String, out: &mut BytesMut) {
        self.ensure_started(out);
        self.close_message(out);
        let output_index = self.next_output;
        self.next_output += 1;
        let item_id = call_item_id(&self.params.id, index);
        let call = ToolCall {
            id,
            name,
            arguments: String::new(),
        };
        let item = self.params.call_item(&item_id, "in_progress", &call);
        self.calls.insert(
            index,
            OpenCall {
                output_index,
                item_id,
                call,
            },
        );
        self.write(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
    }

    fn close_calls(&mut self, out: &mut BytesMut) {
        for open in std::mem::take(&mut self.calls).into_values() {
            if self.params.custom_tools.contains(&open.call.name) {
                // A freeform call's input is a string inside the JSON arguments the model
                // streams, known only once they are complete: it goes out in one delta.
                let input = super::custom_input(&open.call.arguments);
                let delta = json!({
                    "item_id": open.item_id, "output_index": open.output_index, "delta": input,
                });
                self.write(out, "response.custom_tool_call_input.delta", delta);
                let done = json!({
                    "item_id": open.item_id, "output_index": open.output_index, "input": input,
                });
                self.write(out, "response.custom_tool_call_input.done", done);
            } else {
                let mut done = json!({
                    "item_id": open.item_id, "output_index": open.output_index,
                    "name": open.call.name, "arguments": open.call.arguments,
                });
                self.params.name_call(&mut done);
                self.write(out, "response.function_call_arguments.done", done);
            }
            let item = self
                .params
                .call_item(&open.item_id, "completed", &open.call);
            self.items.insert(open.output_index, item.clone());
            self.write(
                out,
                "response.output_item.done",
                json!({"output_index": open.output_index, "item": item}),
            );
        }
    }

    /// Encodes one event, appending zero or more SSE events to `out`.
    pub fn event(&mut self, event: StreamEvent, out: &mut BytesMut) {
        self.answer.observe(&event);
        match event {
            StreamEvent::Start { .. } => self.ensure_started(out),
            StreamEvent::TextDelta(text) => self.delta(PartKind::Text, text, out),
            StreamEvent::RefusalDelta(text) => self.delta(PartKind::Refusal, text, out),
            StreamEvent::ReasoningDelta(_) | StreamEvent::Usage(_) => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                self.open_call(index, id, name, out);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if !self.calls.contains_key(&index) {
                    self.open_call(index, String::new(), String::new(), out);
                }
                let Some(open) = self.calls.get_mut(&index) else {
                    return;
                };
                open.call.arguments.push_str(&arguments);
                if self.params.custom_tools.contains(&open.call.name) {
                    return;
                }
                let data = json!({
                    "item_id": open.item_id, "output_index": open.output_index,
                    "delta": arguments,
                });
                self.write(out, "response.function_call_arguments.delta", data);
            }
            StreamEvent::Finish { .. } => {
                self.ensure_started(out);
                self.close_message(out);
                self.close_calls(out);
            }
        }
    }

    /// The answer as streamed so far.
    pub fn answer(&self) -> ChatResponse {
        self.answer.response(&self.model)
    }

    /// Ends a complete stream with `response.completed` (or `response.incomplete`) carrying
    /// the whole `Response`, usage included.
    pub fn end(&mut self, out: &mut BytesMut) {
        self.ensure_started(out);
        self.close_message(out);
        self.close_calls(out);
        let response = encode_response(&self.params, &self.answer());
        let kind = match response.get("status").and_then(Value::as_str) {
            Some("incomplete") => "response.incomplete",
            _ => "response.completed",
        };
        self.write(out, kind, json!({"response": response}));
    }

    /// Ends a broken stream with `response.failed`, which SDKs raise; never a clean terminal.
    pub fn error(&mut self, error: &Error, out: &mut BytesMut) {
        self.ensure_started(out);
        let mut response = self.snapshot("failed");
        response["error"] = response_error(error);
        self.write(out, "response.failed", json!({"response": response}));
    }
}

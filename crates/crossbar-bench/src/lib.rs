//! Inputs and harness pieces for the micro-benchmarks in `benches/`: one agent conversation
//! written in each ingress dialect's real wire format, one text stream in each upstream
//! dialect's real framing, and catalogs of N deployments. They live here, not in the bench
//! targets, so that `cargo test -p crossbar-bench` checks they decode as intended: a bench
//! whose input is rejected on its first field would time an error path.

use bytes::{Bytes, BytesMut};
use crossbar_core::chat::{ChatRequest, Message, Role, StreamEvent};
use crossbar_core::config::Config;
use crossbar_core::dialects::anthropic::AnthropicEgress;
use crossbar_core::dialects::bedrock::BedrockEgress;
use crossbar_core::dialects::gemini::{GeminiApi, GeminiEgress};
use crossbar_core::dialects::responses::{Params, ResponsesEgress};
use crossbar_core::dialects::{Egress, OpenAiEgress, StreamDecode, anthropic, openai, responses};
use crossbar_core::framing::{self, Frames};
use crossbar_core::ingress::StreamEncode;
use crossbar_core::{Error, Result};
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

/// The size the issue asks dialect benchmarks to translate.
pub const REQUEST_BYTES: usize = 100 * 1024;

/// One tool the conversation's agent has, with a JSON Schema of realistic depth.
fn tool_schema(i: usize) -> (String, String, Value) {
    (
        format!("tool_{i}"),
        format!("Reads or edits part {i} of the workspace; returns what it found."),
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path relative to the root"},
                "line": {"type": "integer", "minimum": 1},
                "mode": {"type": "string", "enum": ["read", "write", "append"]},
                "options": {
                    "type": "object",
                    "properties": {"recursive": {"type": "boolean"}, "depth": {"type": "integer"}},
                    "required": ["recursive"]
                }
            },
            "required": ["path", "mode"]
        }),
    )
}

/// Source-code-like text with quotes, backslashes and newlines, so JSON escaping does work.
fn code(turn: usize, lines: usize) -> String {
    (0..lines)
        .map(|l| {
            format!(
                "    let v{l} = compute(\"turn {turn} line {l}\", {l}) * 3; // \\ checks \"{l}\"\n"
            )
        })
        .collect()
}

/// One turn of an agent loop: the user asks, the assistant calls a tool, the tool answers,
/// the assistant comments.
struct Turn {
    ask: String,
    call_id: String,
    tool: String,
    arguments: String,
    result: String,
    answer: String,
}

/// An agent conversation of at least `bytes` of text, plus its system prompt and tools.
struct Conversation {
    system: String,
    tools: Vec<(String, String, Value)>,
    turns: Vec<Turn>,
}

impl Conversation {
    fn of_size(bytes: usize) -> Self {
        let system = format!(
            "You are a careful coding agent. Follow the repository's conventions.\n{}",
            code(0, 20)
        );
        let tools: Vec<_> = (0..8).map(tool_schema).collect();
        let mut turns = Vec::new();
        let mut size = system.len();
        let mut i = 0;
        while size < bytes {
            let turn = Turn {
                ask: format!("Step {i}: look at src/module_{i}.rs and tell me what breaks."),
                call_id: format!("call_{i:020}"),
                tool: format!("tool_{}", i % 8),
                arguments: json!({"path": format!("src/module_{i}.rs"), "mode": "read"})
                    .to_string(),
                result: code(i, 24),
                answer: format!(
                    "In module {i} the loop misses its last element.\n{}",
                    code(i, 4)
                ),
            };
            size += turn.ask.len() + turn.arguments.len() + turn.result.len() + turn.answer.len();
            turns.push(turn);
            i += 1;
        }
        Self {
            system,
            tools,
            turns,
        }
    }

    fn openai(&self) -> Value {
        let mut messages = vec![json!({"role": "system", "content": self.system})];
        for t in &self.turns {
            messages.push(json!({"role": "user", "content": t.ask}));
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": t.call_id, "type": "function",
                 "function": {"name": t.tool, "arguments": t.arguments}}
            ]}));
            messages.push(json!({"role": "tool", "tool_call_id": t.call_id, "content": t.result}));
            messages.push(json!({"role": "assistant", "content": t.answer}));
        }
        messages.push(json!({"role": "user", "content": "Now fix all of them."}));
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|(name, description, parameters)| {
                json!({"type": "function", "function":
                    {"name": name, "description": description, "parameters": parameters}})
            })
            .collect();
        json!({
            "model": "bench-model",
            "messages": messages,
            "tools": tools,
            "tool_choice": "auto",
            "temperature": 0.2,
            "max_completion_tokens": 1024,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    }

    fn anthropic(&self) -> Value {
        let mut messages = Vec::new();
        for t in &self.turns {
            messages.push(json!({"role": "user", "content": t.ask}));
            messages.push(json!({"role": "assistant", "content": [
                {"type": "tool_use", "id": t.call_id, "name": t.tool,
                 "input": serde_json::from_str::<Value>(&t.arguments).unwrap_or_default()}
            ]}));
            messages.push(json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": t.call_id, "content": t.result}
            ]}));
            messages.push(json!({"role": "assistant", "content": t.answer}));
        }
        messages.push(json!({"role": "user", "content": "Now fix all of them."}));
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|(name, description, parameters)| {
                json!({"name": name, "description": description, "input_schema": parameters})
            })
            .collect();
        json!({
            "model": "bench-model",
            "system": [{"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
            "tools": tools,
            "tool_choice": {"type": "auto"},
            "temperature": 0.2,
            "max_tokens": 1024,
            "stream": true,
        })
    }

    fn responses(&self) -> Value {
        let mut input = Vec::new();
        for t in &self.turns {
            input.push(json!({"role": "user", "content": t.ask}));
            input.push(
                json!({"type": "function_call", "call_id": t.call_id, "name": t.tool,
                              "arguments": t.arguments}),
            );
            input.push(json!({"type": "function_call_output", "call_id": t.call_id,
                              "output": t.result}));
            input.push(json!({"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": t.answer}
            ]}));
        }
        input.push(json!({"role": "user", "content": "Now fix all of them."}));
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|(name, description, parameters)| {
                json!({"type": "function", "name": name, "description": description,
                       "parameters": parameters})
            })
            .collect();
        json!({
            "model": "bench-model",
            "instructions": self.system,
            "input": input,
            "tools": tools,
            "tool_choice": "auto",
            "temperature": 0.2,
            "max_output_tokens": 1024,
            "store": false,
            "stream": true,
        })
    }
}

/// The client dialects a request can arrive in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingress {
    OpenAiChat,
    AnthropicMessages,
    Responses,
}

impl Ingress {
    pub const ALL: [Self; 3] = [Self::OpenAiChat, Self::AnthropicMessages, Self::Responses];

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAiChat => "openai_chat",
            Self::AnthropicMessages => "anthropic_messages",
            Self::Responses => "responses",
        }
    }

    /// This dialect's request body for the agent conversation whose OpenAI body is just over
    /// `bytes` (so every dialect carries the same turns, and about as many bytes).
    pub fn request_body(self, bytes: usize) -> Vec<u8> {
        let render = |ingress: Self, text_bytes: usize| {
            let conversation = Conversation::of_size(text_bytes);
            let value = match ingress {
                Self::OpenAiChat => conversation.openai(),
                Self::AnthropicMessages => conversation.anthropic(),
                Self::Responses => conversation.responses(),
            };
            value.to_string().into_bytes()
        };
        // JSON framing adds to the text: shrink the text until one turn less would fall short.
        let mut text_bytes = bytes;
        while text_bytes > 1024 && render(Self::OpenAiChat, text_bytes - 1024).len() >= bytes {
            text_bytes -= 1024;
        }
        render(self, text_bytes)
    }

    /// Decodes a body of this dialect into the canonical request, as the server's route does.
    pub fn decode(self, body: &[u8]) -> Result<ChatRequest> {
        match self {
            Self::OpenAiChat => openai::decode_chat_request(body).map(|i| i.request),
            Self::AnthropicMessages => anthropic::decode_request(body).map(|i| i.request),
            Self::Responses => responses::decode_request(body).and_then(|i| i.chat_request(&[])),
        }
    }

    /// A fresh stream encoder for this dialect, as the route builds it for a streamed answer.
    pub fn encoder(self) -> Result<ClientEncoder> {
        Ok(match self {
            Self::OpenAiChat => Box::new(openai::StreamEncoder::new(true)),
            Self::AnthropicMessages => Box::new(anthropic::StreamEncoder::new("bench-model", 25)),
            Self::Responses => Box::new(responses::StreamEncoder::new(
                responses_params()?,
                "bench-model",
            )),
        })
    }
}

/// What a streamed Responses request echoes, from a small real request body.
fn responses_params() -> Result<Params> {
    let body = json!({"model": "bench-model", "input": "Say hi.", "stream": true}).to_string();
    responses::decode_request(body.as_bytes()).map(|i| i.params)
}

/// A client-side stream encoder of any ingress dialect: the server's own ([`StreamEncode`]).
pub type ClientEncoder = Box<dyn StreamEncode>;

/// The provider dialects an answer can come back in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    OpenAi,
    Anthropic,
    Bedrock,
    Gemini,
    /// OpenAI's Responses API as an upstream.
    Responses,
}

/// A Responses API `response` object as its stream events carry it.
fn response_object(status: &str, output: Value, usage: Value) -> Value {
    json!({"id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b", "object": "response",
           "created_at": 1_741_476_542, "status": status, "error": null,
           "incomplete_details": null, "instructions": null, "max_output_tokens": null,
           "model": "gpt-4.1-2025-04-14", "output": output, "parallel_tool_calls": true,
           "previous_response_id": null, "reasoning": {"effort": null, "summary": null},
           "store": true, "temperature": 1.0, "text": {"format": {"type": "text"}},
           "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
           "usage": usage, "user": null, "metadata": {}})
}

const RESPONSES_ITEM: &str = "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b";

/// An SSE event as it comes over the wire: optional `event:` name, one `data:` line.
fn sse(event: Option<&str>, data: &Value, newline: &str) -> Bytes {
    let mut text = String::new();
    if let Some(name) = event {
        text.push_str(&format!("event: {name}{newline}"));
    }
    text.push_str(&format!("data: {data}{newline}{newline}"));
    Bytes::from(text)
}

/// An `application/vnd.amazon.eventstream` event message, CRCs included.
fn aws_frame(event_type: &str, payload: &Value) -> Result<Bytes> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out)
        .map_err(|e| Error::internal(format!("writing an event-stream frame: {e}")))?;
    Ok(Bytes::from(out))
}

/// The model's words, one per content chunk.
const WORDS: [&str; 8] = [
    " The",
    " loop",
    " skips",
    " the",
    " last",
    " element;",
    " fixing",
    " it.",
];

impl Upstream {
    pub const ALL: [Self; 5] = [
        Self::OpenAi,
        Self::Anthropic,
        Self::Bedrock,
        Self::Gemini,
        Self::Responses,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai_sse",
            Self::Anthropic => "anthropic_sse",
            Self::Bedrock => "bedrock_eventstream",
            Self::Gemini => "gemini_sse",
            Self::Responses => "responses_sse",
        }
    }

    /// The name of the request this dialect's egress writes.
    pub fn request_name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai_chat",
            Self::Anthropic => "anthropic_messages",
            Self::Bedrock => "bedrock_converse",
            Self::Gemini => "gemini_generate_content",
            Self::Responses => "responses",
        }
    }

    /// The dialect's egress, as the provider table builds it.
    pub fn egress(self) -> Box<dyn Egress> {
        match self {
            Self::OpenAi => Box::new(OpenAiEgress::default()),
            Self::Anthropic => Box::new(AnthropicEgress::anthropic()),
            Self::Bedrock => Box::new(BedrockEgress),
            Self::Gemini => Box::new(GeminiEgress {
                api: GeminiApi::Gemini,
            }),
            Self::Responses => Box::new(ResponsesEgress {
                azure_api_version: None,
            }),
        }
    }

    /// One content chunk carrying `text`, exactly as this upstream sends a text delta.
    pub fn text_chunk(self, text: &str) -> Result<Bytes> {
        Ok(match self {
            Self::OpenAi => sse(
                None,
                &json!({"id": "chatcmpl-B1", "object": "chat.completion.chunk",
                        "created": 1_710_000_000, "model": "gpt-4o-mini-2024-07-18",
                        "system_fingerprint": "fp_0ba0d124f1", "choices": [
                            {"index": 0, "delta": {"content": text}, "logprobs": null,
                             "finish_reason": null}]}),
                "\n",
            ),
            Self::Anthropic => sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": text}}),
                "\n",
            ),
            Self::Bedrock => aws_frame(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"text": text}, "p": "abcdefghijk"}),
            )?,
            Self::Gemini => sse(
                None,
                &json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                        "index": 0}],
                        "usageMetadata": {"promptTokenCount": 25, "totalTokenCount": 25,
                                          "promptTokensDetails": [{"modality": "TEXT",
                                                                   "tokenCount": 25}]},
                        "modelVersion": "gemini-2.5-flash", "responseId": "b1Bench"}),
                "\r\n",
            ),
            Self::Responses => sse(
                Some("response.output_text.delta"),
                &json!({"type": "response.output_text.delta", "sequence_number": 5,
                        "item_id": RESPONSES_ITEM, "output_index": 0, "content_index": 0,
                        "delta": text, "logprobs": []}),
                "\n",
            ),
        })
    }

    /// What comes before the first content chunk (OpenAI's role chunk, Anthropic's
    /// `message_start`…), so the measured chunk finds the decoder and encoder mid-stream.
    pub fn prelude(self) -> Result<Vec<Bytes>> {
        Ok(match self {
            Self::OpenAi => vec![sse(
                None,
                &json!({"id": "chatcmpl-B1", "object": "chat.completion.chunk",
                        "created": 1_710_000_000, "model": "gpt-4o-mini-2024-07-18",
                        "system_fingerprint": "fp_0ba0d124f1", "choices": [
                            {"index": 0, "delta": {"role": "assistant", "content": "",
                                                   "refusal": null},
                             "logprobs": null, "finish_reason": null}]}),
                "\n",
            )],
            Self::Anthropic => vec![
                sse(
                    Some("message_start"),
                    &json!({"type": "message_start", "message": {
                        "id": "msg_01Bench", "type": "message", "role": "assistant",
                        "model": "claude-sonnet-4-5-20250929", "content": [],
                        "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0,
                                  "cache_read_input_tokens": 0, "output_tokens": 1}}}),
                    "\n",
                ),
                sse(
                    Some("content_block_start"),
                    &json!({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}),
                    "\n",
                ),
                sse(Some("ping"), &json!({"type": "ping"}), "\n"),
            ],
            Self::Bedrock => vec![aws_frame(
                "messageStart",
                &json!({"role": "assistant", "p": "abcdefghijklmnop"}),
            )?],
            // Gemini has no start event: its first chunk already carries text.
            Self::Gemini => Vec::new(),
            Self::Responses => vec![
                sse(
                    Some("response.created"),
                    &json!({"type": "response.created", "sequence_number": 0,
                            "response": response_object("in_progress", json!([]), Value::Null)}),
                    "\n",
                ),
                sse(
                    Some("response.in_progress"),
                    &json!({"type": "response.in_progress", "sequence_number": 1,
                            "response": response_object("in_progress", json!([]), Value::Null)}),
                    "\n",
                ),
                sse(
                    Some("response.output_item.added"),
                    &json!({"type": "response.output_item.added", "sequence_number": 2,
                            "output_index": 0, "item": {"id": RESPONSES_ITEM,
                            "type": "message", "status": "in_progress", "role": "assistant",
                            "content": []}}),
                    "\n",
                ),
                sse(
                    Some("response.content_part.added"),
                    &json!({"type": "response.content_part.added", "sequence_number": 3,
                            "item_id": RESPONSES_ITEM, "output_index": 0, "content_index": 0,
                            "part": {"type": "output_text", "text": "", "annotations": []}}),
                    "\n",
                ),
            ],
        })
    }

    /// What ends the stream after the content: finish reason, usage, end marker.
    pub fn epilogue(self) -> Result<Vec<Bytes>> {
        Ok(match self {
            Self::OpenAi => vec![
                sse(
                    None,
                    &json!({"id": "chatcmpl-B1", "object": "chat.completion.chunk",
                            "created": 1_710_000_000, "model": "gpt-4o-mini-2024-07-18",
                            "choices": [{"index": 0, "delta": {}, "logprobs": null,
                                         "finish_reason": "stop"}]}),
                    "\n",
                ),
                sse(
                    None,
                    &json!({"id": "chatcmpl-B1", "object": "chat.completion.chunk",
                            "created": 1_710_000_000, "model": "gpt-4o-mini-2024-07-18",
                            "choices": [], "usage": {"prompt_tokens": 25,
                            "completion_tokens": 20, "total_tokens": 45}}),
                    "\n",
                ),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ],
            Self::Anthropic => vec![
                sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": 0}),
                    "\n",
                ),
                sse(
                    Some("message_delta"),
                    &json!({"type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                            "usage": {"output_tokens": 20}}),
                    "\n",
                ),
                sse(Some("message_stop"), &json!({"type": "message_stop"}), "\n"),
            ],
            Self::Bedrock => vec![
                aws_frame(
                    "contentBlockStop",
                    &json!({"contentBlockIndex": 0, "p": "ab"}),
                )?,
                aws_frame(
                    "messageStop",
                    &json!({"stopReason": "end_turn", "p": "abcd"}),
                )?,
                aws_frame(
                    "metadata",
                    &json!({"metrics": {"latencyMs": 312},
                            "usage": {"inputTokens": 25, "outputTokens": 20,
                                      "totalTokens": 45}, "p": "abcdef"}),
                )?,
            ],
            Self::Gemini => vec![sse(
                None,
                &json!({"candidates": [{"content": {"parts": [{"text": "."}], "role": "model"},
                                        "finishReason": "STOP", "index": 0}],
                        "usageMetadata": {"promptTokenCount": 25, "candidatesTokenCount": 20,
                                          "totalTokenCount": 45},
                        "modelVersion": "gemini-2.5-flash", "responseId": "b1Bench"}),
                "\r\n",
            )],
            Self::Responses => {
                let text = "The loop skips the last element; fixing it.";
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                let item = json!({"id": RESPONSES_ITEM, "type": "message", "status": "completed",
                                  "role": "assistant", "content": [part]});
                let usage = json!({"input_tokens": 25,
                                   "input_tokens_details": {"cached_tokens": 0},
                                   "output_tokens": 20,
                                   "output_tokens_details": {"reasoning_tokens": 0},
                                   "total_tokens": 45});
                vec![
                    sse(
                        Some("response.output_text.done"),
                        &json!({"type": "response.output_text.done", "sequence_number": 25,
                                "item_id": RESPONSES_ITEM, "output_index": 0,
                                "content_index": 0, "text": text, "logprobs": []}),
                        "\n",
                    ),
                    sse(
                        Some("response.content_part.done"),
                        &json!({"type": "response.content_part.done", "sequence_number": 26,
                                "item_id": RESPONSES_ITEM, "output_index": 0,
                                "content_index": 0, "part": part}),
                        "\n",
                    ),
                    sse(
                        Some("response.output_item.done"),
                        &json!({"type": "response.output_item.done", "sequence_number": 27,
                                "output_index": 0, "item": item}),
                        "\n",
                    ),
                    sse(
                        Some("response.completed"),
                        &json!({"type": "response.completed", "sequence_number": 28,
                                "response": response_object("completed", json!([item]), usage)}),
                        "\n",
                    ),
                ]
            }
        })
    }

    /// A whole text answer of `content_chunks` content chunks, chunk by chunk.
    pub fn stream(self, content_chunks: usize) -> Result<Vec<Bytes>> {
        let mut chunks = self.prelude()?;
        for i in 0..content_chunks {
            chunks.push(self.text_chunk(WORDS[i % WORDS.len()])?);
        }
        chunks.extend(self.epilogue()?);
        Ok(chunks)
    }
}

/// An upstream body as the provider reads it: bytes pushed into a `reqwest::Response` and split
/// by the production framer (`crossbar_core::framing::frames`), so SSE parsing and event-stream
/// CRC checks are part of what is measured. Polled without a runtime: each pushed chunk is
/// ready at once.
pub struct Pipeline {
    body: mpsc::UnboundedSender<std::result::Result<Bytes, std::io::Error>>,
    frames: Frames,
    decoder: Box<dyn StreamDecode>,
    /// `None` measures framing and decoding alone.
    encoder: Option<ClientEncoder>,
    events: Vec<StreamEvent>,
    out: BytesMut,
}

impl Pipeline {
    pub fn new(upstream: Upstream, ingress: Option<Ingress>) -> Result<Self> {
        let egress = upstream.egress();
        let (body, rx) = mpsc::unbounded();
        let response = http::Response::new(reqwest::Body::wrap_stream(rx));
        let frames = framing::frames(reqwest::Response::from(response), egress.framing());
        Ok(Self {
            body,
            frames,
            decoder: egress.stream_decoder(),
            encoder: ingress.map(Ingress::encoder).transpose()?,
            events: Vec::new(),
            out: BytesMut::new(),
        })
    }

    /// Pushes one upstream chunk through framing, decoding and client encoding, as the server
    /// does: each event's frames are split off as one body chunk. Returns the bytes written.
    pub fn push(&mut self, chunk: Bytes) -> Result<usize> {
        self.body
            .unbounded_send(Ok(chunk))
            .map_err(|_| Error::internal("the body channel closed"))?;
        let mut written = 0;
        while let Some(Some(frame)) = self.frames.next().now_or_never() {
            let frame = frame?;
            self.decoder.decode(&frame.as_frame(), &mut self.events)?;
            for event in self.events.drain(..) {
                match &mut self.encoder {
                    Some(encoder) => {
                        encoder.event(event, &mut self.out)?;
                        written += self.out.split().freeze().len();
                    }
                    None => written += usize::from(event.is_content()),
                }
            }
        }
        Ok(written)
    }

    /// Ends the upstream body and the client stream; fails if the upstream stream was cut.
    pub fn finish(mut self) -> Result<usize> {
        self.body.close_channel();
        while let Some(Some(frame)) = self.frames.next().now_or_never() {
            frame?;
        }
        self.decoder.finish()?;
        Ok(match &mut self.encoder {
            Some(encoder) => {
                encoder.end(&mut self.out);
                self.out.split().freeze().len()
            }
            None => 0,
        })
    }

    /// A pipeline that has already passed `upstream`'s prelude and one content chunk, so the
    /// next content chunk is the steady state of a stream.
    pub fn mid_stream(upstream: Upstream, ingress: Option<Ingress>) -> Result<Self> {
        let mut pipeline = Self::new(upstream, ingress)?;
        for chunk in upstream.prelude()? {
            pipeline.push(chunk)?;
        }
        pipeline.push(upstream.text_chunk(" Hello")?)?;
        Ok(pipeline)
    }
}

/// The requests a routing decision over [`catalog_config`] is measured with: a two-message chat
/// for model `m`, and the same model asked with the [`REQUEST_BYTES`] OpenAI Chat body.
pub fn routing_requests() -> Result<(ChatRequest, ChatRequest)> {
    let small = ChatRequest::new(
        "m",
        vec![
            Message::text(Role::System, "You are a helpful assistant."),
            Message::text(
                Role::User,
                "What is the capital of France? Answer in one word.",
            ),
        ],
    );
    let mut large = Ingress::OpenAiChat.decode(&Ingress::OpenAiChat.request_body(REQUEST_BYTES))?;
    large.model = "m".to_owned();
    Ok((small, large))
}

/// A config with one logical model `m` served by `deployments` OpenAI-compatible providers on
/// a closed loopback port (planning calls nobody), at spread-out prices, across 3 clouds.
pub fn catalog_config(deployments: usize, kind: &str) -> Result<Config> {
    let mut toml = String::new();
    let clouds = [
        ("aws", "us-east-1"),
        ("azure", "eastus"),
        ("gcp", "europe-west4"),
    ];
    for i in 0..deployments {
        let (cloud, region) = clouds[i % clouds.len()];
        toml.push_str(&format!(
            "[[providers]]\nname = \"p{i}\"\nkind = \"{kind}\"\nendpoint = \"http://127.0.0.1:9/v1\"\napi_key = \"k\"\ncloud = \"{cloud}\"\nregion = \"{region}\"\n\n"
        ));
    }
    let list: Vec<String> = (0..deployments)
        .map(|i| {
            let input = 0.5 + (i % 17) as f64 * 0.25;
            format!(
                "{{ provider = \"p{i}\", target = \"t{i}\", price = {{ input = {input}, output = {} }} }}",
                input * 4.0
            )
        })
        .collect();
    toml.push_str(&format!(
        "[[models]]\nname = \"m\"\ndeployments = [{}]\n",
        list.join(", ")
    ));
    Config::from_toml(&toml, "bench.toml").map_err(|e| Error::internal(e.0))
}

#[cfg(test)]
mod tests;

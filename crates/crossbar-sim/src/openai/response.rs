//! Chat Completions responses: the `chat.completion` object and the `chat.completion.chunk`
//! stream, with Azure's content-filter annotations and empty first chunk.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::{Value, json};

use super::error;
use super::request::ChatRequest;
use crate::SimDialect;
use crate::behaviour::{Answer, Finish, Output, PlannedCall, Usage};
use crate::faults::{self, Frame, StreamScript};
use crate::ids;

const SYSTEM_FINGERPRINT: &str = "fp_5ca1ab1e00";
const SALT_ID: u64 = 0x6964;
const SALT_OBFUSCATION: u64 = 0x6f62_6675;

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: WireUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'static str>,
    system_fingerprint: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_filter_results: Option<Value>,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<Value>,
    finish_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_filter_results: Option<Value>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<String>,
    annotations: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: String,
}

#[derive(Clone, Copy, Serialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Clone, Copy, Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

impl From<Usage> for WireUsage {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens(),
            prompt_tokens_details: PromptDetails {
                cached_tokens: usage.cached_tokens,
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: usage.reasoning_tokens,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'a str,
    created: u64,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'static str>,
    choices: Vec<ChunkChoice<'a>>,
    /// Absent unless usage was requested; then `null` except on the final usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<WireUsage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    obfuscation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_filter_results: Option<Value>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<Value>,
    finish_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_filter_results: Option<Value>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallDelta<'a>>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl<'a> ToolCallDelta<'a> {
    /// The first fragment of a call: the only one with id, type and name.
    fn opening(index: usize, call: &'a PlannedCall) -> Self {
        Self {
            index,
            id: Some(&call.id),
            kind: Some("function"),
            function: FunctionDelta {
                name: Some(&call.name),
                arguments: "",
            },
        }
    }

    fn arguments(index: usize, piece: &'a str) -> Self {
        Self {
            index,
            id: None,
            kind: None,
            function: FunctionDelta {
                name: None,
                arguments: piece,
            },
        }
    }
}

/// Every category Azure reports, all unfiltered.
fn content_filter_results() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
}

fn prompt_filter_results() -> Value {
    let mut results = content_filter_results();
    results["jailbreak"] = json!({"filtered": false, "detected": false});
    json!([{"prompt_index": 0, "content_filter_results": results}])
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
    }
}

fn sse(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// Renders answers to one request.
pub(crate) struct Render {
    dialect: SimDialect,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    obfuscation: bool,
    fingerprint: u64,
}

impl Render {
    /// `model` is what the response reports; `sequence` makes ids of identical requests differ.
    pub fn new(dialect: SimDialect, request: &ChatRequest, model: String, sequence: u64) -> Self {
        let fingerprint = request.conversation.fingerprint;
        let mut rng = ids::rng(fingerprint ^ sequence, SALT_ID);
        Self {
            dialect,
            id: format!("chatcmpl-{}", ids::alphanumeric(&mut rng, 29)),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model,
            include_usage: request.include_usage,
            obfuscation: request.obfuscation,
            fingerprint,
        }
    }

    fn azure(&self) -> bool {
        self.dialect == SimDialect::Azure
    }

    pub fn completion(&self, answer: &Answer) -> String {
        let (content, tool_calls) = match &answer.output {
            Output::Text(pieces) => (Some(pieces.concat()), Vec::new()),
            Output::ToolCalls(calls) => (None, calls.iter().map(wire_call).collect()),
        };
        let completion = Completion {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: &self.model,
            choices: [CompletionChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content,
                    refusal: None,
                    annotations: Vec::new(),
                    tool_calls,
                },
                logprobs: None,
                finish_reason: finish_reason(answer.finish),
                content_filter_results: self.azure().then(content_filter_results),
            }],
            usage: answer.usage.into(),
            service_tier: (!self.azure()).then_some("default"),
            system_fingerprint: SYSTEM_FINGERPRINT,
            prompt_filter_results: self.azure().then(prompt_filter_results),
        };
        serde_json::to_string(&completion).unwrap_or_default()
    }

    /// The whole stream: (Azure filter chunk,) role chunk, content or tool-call fragments,
    /// finish chunk, (usage chunk,) then `[DONE]`.
    pub fn stream(&self, answer: &Answer, malformed: bool) -> StreamScript {
        let mut rng = ids::rng(self.fingerprint, SALT_OBFUSCATION);
        let mut payloads: Vec<(String, bool)> = Vec::new();
        if self.azure() {
            payloads.push((self.azure_filter_chunk(), false));
        }
        let mut push = |delta: Delta<'_>, filter: Value, paced: bool| {
            let chunk = self.delta_chunk(delta, None, filter, &mut rng);
            payloads.push((chunk, paced));
        };
        let role = |content: Option<&'static str>| Delta {
            role: Some("assistant"),
            content: Some(content),
            refusal: Some(None),
            tool_calls: Vec::new(),
        };
        match &answer.output {
            Output::Text(pieces) => {
                push(role(Some("")), json!({}), false);
                for piece in pieces {
                    let delta = Delta {
                        content: Some(Some(piece)),
                        ..Delta::default()
                    };
                    push(delta, content_filter_results(), true);
                }
            }
            Output::ToolCalls(calls) => {
                if calls.is_empty() {
                    push(role(None), json!({}), false);
                }
                for (index, call) in calls.iter().enumerate() {
                    let opening = vec![ToolCallDelta::opening(index, call)];
                    let delta = match index {
                        0 => Delta {
                            tool_calls: opening,
                            ..role(None)
                        },
                        _ => Delta {
                            tool_calls: opening,
                            ..Delta::default()
                        },
                    };
                    push(delta, json!({}), false);
                    for piece in &call.pieces {
                        let delta = Delta {
                            tool_calls: vec![ToolCallDelta::arguments(index, piece)],
                            ..Delta::default()
                        };
                        push(delta, content_filter_results(), true);
                    }
                }
            }
        }
        let finish = self.delta_chunk(
            Delta::default(),
            Some(finish_reason(answer.finish)),
            json!({}),
            &mut rng,
        );
        payloads.push((finish, false));
        if self.include_usage {
            payloads.push((self.usage_chunk(answer.usage, &mut rng), false));
        }
        let malformed = malformed.then(|| {
            let index = faults::malformed_index(payloads.len());
            let json = payloads.get(index).map_or("", |(json, _)| json.as_str());
            (index, sse(&faults::truncate_json(json)))
        });
        StreamScript {
            frames: payloads
                .into_iter()
                .map(|(json, paced)| Frame {
                    bytes: sse(&json),
                    paced,
                })
                .collect(),
            trailer: Some(Bytes::from_static(b"data: [DONE]\n\n")),
            error_frame: error::stream_error_frame(self.dialect),
            malformed,
        }
    }

    fn chunk<'c>(&'c self, choices: Vec<ChunkChoice<'c>>) -> Chunk<'c> {
        Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            service_tier: (!self.azure()).then_some("default"),
            system_fingerprint: Some(SYSTEM_FINGERPRINT),
            choices,
            usage: self.include_usage.then_some(None),
            obfuscation: None,
            prompt_filter_results: None,
        }
    }

    fn delta_chunk(
        &self,
        delta: Delta<'_>,
        finish: Option<&'static str>,
        filter: Value,
        rng: &mut StdRng,
    ) -> String {
        let chunk = self.chunk(vec![ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
            content_filter_results: self.azure().then_some(filter),
        }]);
        self.encode(chunk, rng)
    }

    fn usage_chunk(&self, usage: Usage, rng: &mut StdRng) -> String {
        let mut chunk = self.chunk(Vec::new());
        chunk.usage = Some(Some(usage.into()));
        self.encode(chunk, rng)
    }

    /// Serializes a chunk, padded with random `obfuscation` when the request did not opt out.
    fn encode(&self, mut chunk: Chunk<'_>, rng: &mut StdRng) -> String {
        if self.obfuscation {
            let len = rand::Rng::random_range(rng, 1..=16);
            chunk.obfuscation = Some(ids::alphanumeric(rng, len));
        }
        serde_json::to_string(&chunk).unwrap_or_default()
    }

    /// Azure's first chunk: no choices, blank identity, only the prompt filter results.
    fn azure_filter_chunk(&self) -> String {
        let chunk = Chunk {
            id: "",
            object: "",
            created: 0,
            model: "",
            service_tier: None,
            system_fingerprint: None,
            choices: Vec::new(),
            usage: self.include_usage.then_some(None),
            obfuscation: None,
            prompt_filter_results: Some(prompt_filter_results()),
        };
        serde_json::to_string(&chunk).unwrap_or_default()
    }
}

fn wire_call(call: &PlannedCall) -> WireToolCall<'_> {
    WireToolCall {
        id: &call.id,
        kind: "function",
        function: WireFunction {
            name: &call.name,
            arguments: call.arguments(),
        },
    }
}

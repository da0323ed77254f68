//! Converse answers: the JSON `ConverseResponse`, and the ConverseStream event stream as
//! Bedrock frames it (binary `application/vnd.amazon.eventstream` messages with CRCs, type-7
//! string headers, a random-length `"p"` padding member in every payload, no
//! `contentBlockStart` for text, tool input in fragments, `messageStop` then `metadata`).

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::behaviour::{Answer, Finish, Output, PlannedCall};
use crate::faults::{self, Frame, StreamScript};
use crate::ids;

const SALT_PADDING: u64 = 0x7061_6464;
const PADDING_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Token counts as Bedrock reports them: `inputTokens` excludes what the cache read or wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub input: u64,
    pub output: u64,
    /// `Some` when the request had cache points (Bedrock then reports both, even when 0).
    pub cache: Option<(u64, u64)>,
}

impl Tokens {
    fn to_json(self) -> Value {
        let (read, write) = self.cache.unwrap_or_default();
        let mut usage = json!({
            "inputTokens": self.input,
            "outputTokens": self.output,
            "totalTokens": self.input + read + write + self.output,
        });
        if self.cache.is_some() {
            usage["cacheReadInputTokens"] = json!(read);
            usage["cacheWriteInputTokens"] = json!(write);
        }
        usage
    }
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
    }
}

/// `tooluse_` and 22 characters, the shape of Bedrock's ids, derived from the planned id.
fn tool_use_id(call: &PlannedCall) -> String {
    let suffix: String = call
        .id
        .trim_start_matches("call_")
        .chars()
        .take(22)
        .collect();
    format!("tooluse_{suffix}")
}

/// The reasoning text Claude "thinks" when a request turns thinking on.
pub(crate) const THINKING: &str = "Let me work out what the user needs before answering.";

/// The signature the simulator gives a reasoning text, and checks when it comes back. Claude's
/// signatures are valid on every platform, so this is the Anthropic simulator's token too.
pub(crate) fn signature(text: &str) -> String {
    format!("sim-sig-{:016x}", ids::fnv1a(text.as_bytes()))
}

/// The non-streamed `ConverseResponse`; with `thinking`, a signed `reasoningContent` block
/// comes first, as Claude's thinking does.
pub(crate) fn converse(answer: &Answer, tokens: Tokens, latency_ms: u64, thinking: bool) -> String {
    let reasoning = thinking.then(|| {
        json!({"reasoningContent": {"reasoningText": {"text": THINKING, "signature": signature(THINKING)}}})
    });
    let content: Vec<Value> = reasoning.into_iter().chain(match &answer.output {
        Output::Text(pieces) => vec![json!({"text": pieces.concat()})],
        Output::ToolCalls(calls) => calls
            .iter()
            .map(|call| {
                let input: Value =
                    serde_json::from_str(&call.arguments()).unwrap_or_else(|_| json!({}));
                json!({"toolUse": {"toolUseId": tool_use_id(call), "name": call.name, "input": input}})
            })
            .collect(),
    }).collect();
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(answer.finish),
        "usage": tokens.to_json(),
        "metrics": {"latencyMs": latency_ms},
    })
    .to_string()
}

/// Encodes one event-stream message with Bedrock's three string headers.
fn frame(message_type: &str, name_header: &str, name: &str, payload: &Value) -> Bytes {
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            name_header.to_owned(),
            HeaderValue::String(name.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_owned().into()),
        ));
    let mut out = Vec::new();
    // Our headers and payloads are far below the format's limits, so encoding cannot fail; an
    // empty frame would surface as a framing error in the client if it ever did.
    if write_message_to(&message, &mut out).is_err() {
        out.clear();
    }
    Bytes::from(out)
}

struct Events {
    frames: Vec<Frame>,
    rng: StdRng,
}

impl Events {
    fn push(&mut self, event: &str, mut payload: Value, paced: bool) {
        // Bedrock pads payloads to a random length so sizes leak nothing about the content.
        let len = self.rng.random_range(1..=48);
        let padding: String = (0..len)
            .map(|_| char::from(PADDING_ALPHABET[self.rng.random_range(0..PADDING_ALPHABET.len())]))
            .collect();
        payload["p"] = json!(padding);
        self.frames.push(Frame {
            bytes: frame("event", ":event-type", event, &payload),
            paced,
        });
    }
}

/// The exception frame a failing stream ends with: throttling when the script's error status
/// is 429, else the model's own failure.
pub(crate) fn exception_frame(error_status: u16) -> Bytes {
    let (name, payload) = if error_status == 429 {
        (
            "throttlingException",
            json!({"message": "Too many tokens, please wait before trying again."}),
        )
    } else {
        (
            "modelStreamErrorException",
            json!({
                "message": "The model encountered an error while streaming the response.",
                "originalStatusCode": error_status,
                "originalMessage": "Model stream error"
            }),
        )
    };
    frame("exception", ":exception-type", name, &payload)
}

/// The whole ConverseStream of an answer, for [`faults::play`].
pub(crate) fn stream(
    answer: &Answer,
    tokens: Tokens,
    latency_ms: u64,
    fingerprint: u64,
    error_status: u16,
    malformed: bool,
    thinking: bool,
) -> StreamScript {
    let mut events = Events {
        frames: Vec::new(),
        rng: ids::rng(fingerprint, SALT_PADDING),
    };
    events.push("messageStart", json!({"role": "assistant"}), false);
    // Reasoning streams as text fragments, then the signature, in block 0 (no start event).
    let first = usize::from(thinking);
    if thinking {
        let (head, tail) = THINKING.split_at(THINKING.len() / 2);
        for piece in [head, tail] {
            events.push(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": piece}}}),
                true,
            );
        }
        events.push(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": signature(THINKING)}}}),
            false,
        );
        events.push("contentBlockStop", json!({"contentBlockIndex": 0}), false);
    }
    match &answer.output {
        Output::Text(pieces) => {
            for piece in pieces {
                events.push(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": first, "delta": {"text": piece}}),
                    true,
                );
            }
            events.push(
                "contentBlockStop",
                json!({"contentBlockIndex": first}),
                false,
            );
        }
        Output::ToolCalls(calls) => {
            for (index, call) in (first..).zip(calls) {
                events.push(
                    "contentBlockStart",
                    json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": tool_use_id(call), "name": call.name}}}),
                    false,
                );
                for piece in &call.pieces {
                    events.push(
                        "contentBlockDelta",
                        json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}),
                        true,
                    );
                }
                events.push(
                    "contentBlockStop",
                    json!({"contentBlockIndex": index}),
                    false,
                );
            }
        }
    }
    events.push(
        "messageStop",
        json!({"stopReason": stop_reason(answer.finish)}),
        false,
    );
    events.push(
        "metadata",
        json!({"usage": tokens.to_json(), "metrics": {"latencyMs": latency_ms}}),
        false,
    );
    let frames = events.frames;
    let malformed = malformed.then(|| {
        let index = faults::malformed_index(frames.len());
        let mut bytes = frames
            .get(index)
            .map(|f| f.bytes.to_vec())
            .unwrap_or_default();
        // Flip a bit of the message CRC: the frame is whole but fails its checksum.
        if let Some(last) = bytes.last_mut() {
            *last ^= 0x01;
        }
        (index, Bytes::from(bytes))
    });
    StreamScript {
        frames,
        trailer: None,
        error_frame: exception_frame(error_status),
        malformed,
    }
}

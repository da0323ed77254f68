//! `GenerateContentResponse` bodies and streams.
//!
//! Streams: with `alt=sse`, `data: <chunk>` events separated by `\r\n\r\n`, no sentinel;
//! without it, one JSON array streamed element by element (`[{...}\n,\r\n{...}\n]`). Text comes
//! a word per chunk with a running `usageMetadata` snapshot (the last is authoritative);
//! function calls come whole, parallel ones as several parts of one chunk, without ids, and the
//! turn still ends with `STOP`. Some answers (chosen by the request's hash) carry spurious
//! `text: ""` parts, as Gemini's do. With thinking on, the first call (or the last text part)
//! carries a `thoughtSignature`, and `includeThoughts` adds a thought-summary part first.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use super::error::GoogleError;
use super::request::{GenerateRequest, SIGNATURE_PREFIX};
use crate::SimDialect;
use crate::behaviour::{Answer, Finish, Output, Usage};
use crate::faults::{self, Frame, StreamScript};
use crate::ids;

const SALT_RESPONSE_ID: u64 = 0x6765_6d69;
/// The decoded size of the simulator's thought signatures.
const SIGNATURE_BYTES: usize = 300;

/// How a stream is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Sse,
    JsonArray,
}

pub(crate) struct Render {
    dialect: SimDialect,
    model: String,
    response_id: String,
    fingerprint: u64,
    thinking: bool,
    include_thoughts: bool,
}

impl Render {
    pub fn new(dialect: SimDialect, model: &str, request: &GenerateRequest, sequence: u64) -> Self {
        let fingerprint = request.conversation.fingerprint;
        let mut rng = ids::rng(fingerprint ^ sequence, SALT_RESPONSE_ID);
        Self {
            dialect,
            model: model.to_owned(),
            response_id: ids::alphanumeric(&mut rng, 23),
            fingerprint,
            thinking: request.thinking,
            include_thoughts: request.include_thoughts,
        }
    }

    /// `sim-thought:<responseId>:` and the response id again until `SIGNATURE_BYTES`: as long
    /// as a real one (a few hundred bytes), and tests can tell which answer issued it.
    fn signature(&self) -> String {
        let mut bytes = SIGNATURE_PREFIX.to_vec();
        bytes.extend_from_slice(self.response_id.as_bytes());
        bytes.push(b':');
        while bytes.len() < SIGNATURE_BYTES && !self.response_id.is_empty() {
            bytes.extend_from_slice(self.response_id.as_bytes());
        }
        bytes.truncate(SIGNATURE_BYTES);
        STANDARD.encode(bytes)
    }

    /// Usage so far: `output` candidate tokens produced, thinking done up front.
    fn usage(&self, usage: Usage, output: u64) -> Value {
        let thoughts = usage.reasoning_tokens;
        let mut meta = json!({
            "promptTokenCount": usage.prompt_tokens,
            "candidatesTokenCount": output,
            "totalTokenCount": usage.prompt_tokens + output + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage.prompt_tokens}],
        });
        if usage.cached_tokens > 0 {
            meta["cachedContentTokenCount"] = json!(usage.cached_tokens);
        }
        if thoughts > 0 {
            meta["thoughtsTokenCount"] = json!(thoughts);
        }
        meta
    }

    fn response(&self, parts: Vec<Value>, finish: Option<&str>, usage: Value) -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        let mut response = json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": self.response_id,
        });
        if self.dialect == SimDialect::Vertex {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            response["createTime"] = json!(rfc3339(now));
        }
        response
    }

    fn thought_part(&self) -> Option<Value> {
        self.include_thoughts.then(|| {
            json!({"text": "**Working out the answer**\n\nI considered the request before answering.", "thought": true})
        })
    }

    /// Function-call parts; a call whose arguments were cut short by the token limit cannot
    /// be sent as an object and is dropped (its turn ends with `MAX_TOKENS`).
    fn call_parts(&self, answer: &Answer) -> Vec<Value> {
        let Output::ToolCalls(calls) = &answer.output else {
            return Vec::new();
        };
        let mut parts = Vec::new();
        for call in calls {
            let Ok(args @ Value::Object(_)) = serde_json::from_str::<Value>(&call.arguments())
            else {
                continue;
            };
            let mut part = json!({"functionCall": {"name": call.name, "args": args}});
            if self.thinking && parts.is_empty() {
                part["thoughtSignature"] = json!(self.signature());
            }
            parts.push(part);
        }
        parts
    }

    fn finish_reason(answer: &Answer) -> &'static str {
        match answer.finish {
            Finish::Stop | Finish::ToolCalls => "STOP",
            Finish::Length => "MAX_TOKENS",
        }
    }

    fn output_tokens(usage: Usage) -> u64 {
        usage
            .completion_tokens
            .saturating_sub(usage.reasoning_tokens)
    }

    /// The whole answer (`generateContent`), pretty-printed like Google's.
    pub fn completion(&self, answer: &Answer) -> String {
        let mut parts: Vec<Value> = self.thought_part().into_iter().collect();
        match &answer.output {
            Output::Text(pieces) => {
                let mut part = json!({"text": pieces.concat()});
                if self.thinking {
                    part["thoughtSignature"] = json!(self.signature());
                }
                parts.push(part);
            }
            Output::ToolCalls(_) => parts.extend(self.call_parts(answer)),
        }
        let usage = self.usage(answer.usage, Self::output_tokens(answer.usage));
        let body = self.response(parts, Some(Self::finish_reason(answer)), usage);
        serde_json::to_string_pretty(&body).unwrap_or_default()
    }

    /// The chunks of a streamed answer, each with whether it carries output (paced).
    fn chunks(&self, answer: &Answer) -> Vec<(Value, bool)> {
        let usage = answer.usage;
        let finish = Self::finish_reason(answer);
        let mut chunks = Vec::new();
        if let Some(thought) = self.thought_part() {
            chunks.push((
                self.response(vec![thought], None, self.usage(usage, 0)),
                false,
            ));
        }
        match &answer.output {
            Output::ToolCalls(_) => {
                let parts = self.call_parts(answer);
                let final_usage = self.usage(usage, Self::output_tokens(usage));
                chunks.push((self.response(parts, Some(finish), final_usage), true));
            }
            Output::Text(pieces) => {
                let spurious_empty = self.fingerprint & 1 == 1;
                let separate_finish = self.fingerprint & 2 == 2 || pieces.is_empty();
                let mut produced = 0;
                for (i, piece) in pieces.iter().enumerate() {
                    produced += 1;
                    let last = i + 1 == pieces.len();
                    let mut part = json!({"text": piece});
                    let finishing = last && !separate_finish;
                    if finishing && self.thinking {
                        part["thoughtSignature"] = json!(self.signature());
                    }
                    let reason = finishing.then_some(finish);
                    chunks.push((
                        self.response(vec![part], reason, self.usage(usage, produced)),
                        true,
                    ));
                    if i == 0 && spurious_empty {
                        let empty = vec![json!({"text": ""})];
                        chunks.push((
                            self.response(empty, None, self.usage(usage, produced)),
                            false,
                        ));
                    }
                }
                if separate_finish {
                    let mut part = json!({"text": ""});
                    if self.thinking {
                        part["thoughtSignature"] = json!(self.signature());
                    }
                    let final_usage = self.usage(usage, Self::output_tokens(usage));
                    chunks.push((self.response(vec![part], Some(finish), final_usage), false));
                }
            }
        }
        chunks
    }

    pub fn stream(&self, answer: &Answer, malformed: bool, framing: Framing) -> StreamScript {
        let chunks = self.chunks(answer);
        let encode = |i: usize, chunk: &Value| -> String {
            match framing {
                Framing::Sse => format!("data: {chunk}\r\n\r\n"),
                Framing::JsonArray => {
                    let pretty = serde_json::to_string_pretty(chunk).unwrap_or_default();
                    if i == 0 {
                        format!("[{pretty}")
                    } else {
                        format!("\n,\r\n{pretty}")
                    }
                }
            }
        };
        let malformed = malformed.then(|| {
            let index = faults::malformed_index(chunks.len());
            let json = chunks
                .get(index)
                .map(|(c, _)| c.to_string())
                .unwrap_or_default();
            let broken = faults::truncate_json(&json);
            let bytes = match (framing, index) {
                (Framing::Sse, _) => format!("data: {broken}\r\n\r\n"),
                (Framing::JsonArray, 0) => format!("[{broken}"),
                (Framing::JsonArray, _) => format!("\n,\r\n{broken}"),
            };
            (index, Bytes::from(bytes))
        });
        let error = super::error::stream_error();
        StreamScript {
            frames: chunks
                .iter()
                .enumerate()
                .map(|(i, (chunk, paced))| Frame {
                    bytes: Bytes::from(encode(i, chunk)),
                    paced: *paced,
                })
                .collect(),
            trailer: match framing {
                Framing::Sse => None,
                Framing::JsonArray => Some(Bytes::from_static(b"\n]")),
            },
            error_frame: error_frame(&error, framing),
            malformed,
        }
    }
}

fn error_frame(error: &GoogleError, framing: Framing) -> Bytes {
    match framing {
        Framing::Sse => {
            let mut bytes = b"data: ".to_vec();
            bytes.extend_from_slice(&error.compact());
            bytes.extend_from_slice(b"\r\n\r\n");
            Bytes::from(bytes)
        }
        Framing::JsonArray => Bytes::from(format!("\n,\r\n{}\n]", error.body())),
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SS.000000Z`.
fn rfc3339(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_746_102_896), "2025-05-01T12:34:56.000000Z");
        assert_eq!(rfc3339(1_709_164_800), "2024-02-29T00:00:00.000000Z");
    }
}

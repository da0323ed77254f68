//! The cache key: a digest of the request fields that decide the answer, behind the tenant's
//! partition. What only shapes the wire (`stream`, a string-or-parts `content`, prompt-cache
//! breakpoints) or only labels the call (`user`, `metadata`, `scope`) is left out, so a streamed
//! and a plain request for the same thing share an entry.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::chat::{
    ChatRequest, ContentPart, Message, Passthrough, Reasoning, ResponseFormat, Role, Sampling,
    Tool, ToolCall, ToolChoice, WireDialect,
};

/// Bumped whenever the fields below change, so entries written by an older gateway (in a
/// shared store) are never read as if they answered the new key's request.
const KEY_VERSION: u32 = 1;

/// One cached answer's address: `{partition}/{sha256 hex}`. The hex is always the last 64
/// characters, so two keys are equal only if both their partition and their digest are: no
/// tenant can reach another's entry, whatever its id contains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of `request` asking for the logical model `model` (as the router resolved the
    /// requested name: aliases of one model share entries) within `partition` (see
    /// [`super::CacheScope::partition`]). `None` only if the request could not be serialized,
    /// which its plain types rule out; such a request is simply not cached.
    pub fn new(partition: &str, model: &str, request: &ChatRequest) -> Option<Self> {
        let fields = KeyFields {
            version: KEY_VERSION,
            model,
            messages: request.messages.iter().map(KeyMessage::from).collect(),
            tools: &request.tools,
            tool_choice: request.tool_choice.as_ref(),
            parallel_tool_calls: request.parallel_tool_calls,
            response_format: request.response_format.as_ref(),
            sampling: &request.sampling,
            max_tokens: request.max_tokens,
            stop: &request.stop,
            reasoning_effort: request.reasoning_effort.as_deref(),
            reasoning_budget: request.reasoning_budget,
            openai_passthrough: &request.openai_passthrough,
            passthrough: KeyPassthrough::from(&request.passthrough),
        };
        let mut hasher = HashWriter(Sha256::new());
        // Streamed into the digest: a request carrying megabytes of images is not copied.
        serde_json::to_writer(&mut hasher, &fields).ok()?;
        let digest = hasher.0.finalize();
        let mut key = String::with_capacity(partition.len() + 1 + 64);
        key.push_str(partition);
        key.push('/');
        for byte in digest.iter() {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Some(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The partition the key belongs to.
    pub fn partition(&self) -> &str {
        self.0
            .get(..self.0.len().saturating_sub(65))
            .unwrap_or_default()
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the digest covers, in a fixed field order. JSON objects (`Map`) serialize in key order
/// whatever order the client wrote them in (serde_json without `preserve_order`; a unit test
/// holds this).
#[derive(Serialize)]
struct KeyFields<'a> {
    version: u32,
    model: &'a str,
    messages: Vec<KeyMessage<'a>>,
    tools: &'a [Tool],
    tool_choice: Option<&'a ToolChoice>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<&'a ResponseFormat>,
    sampling: &'a Sampling,
    max_tokens: Option<u32>,
    stop: &'a [String],
    reasoning_effort: Option<&'a str>,
    reasoning_budget: Option<u32>,
    openai_passthrough: &'a Map<String, Value>,
    passthrough: KeyPassthrough<'a>,
}

/// A message without `content_is_text` and `cache_breakpoint`, which change how it is written,
/// not what the model reads.
#[derive(Serialize)]
struct KeyMessage<'a> {
    role: Role,
    content: &'a [ContentPart],
    name: Option<&'a str>,
    tool_calls: &'a [ToolCall],
    tool_call_id: Option<&'a str>,
    refusal: Option<&'a str>,
    reasoning: &'a [Reasoning],
    tool_error: bool,
}

impl<'a> From<&'a Message> for KeyMessage<'a> {
    fn from(message: &'a Message) -> Self {
        Self {
            role: message.role,
            content: &message.content,
            name: message.name.as_deref(),
            tool_calls: &message.tool_calls,
            tool_call_id: message.tool_call_id.as_deref(),
            refusal: message.refusal.as_deref(),
            reasoning: &message.reasoning,
            tool_error: message.tool_error,
        }
    }
}

/// The dialect's own fields, betas and hosted tools all reach a same-dialect upstream and may
/// change its answer.
#[derive(Serialize)]
struct KeyPassthrough<'a> {
    dialect: Option<WireDialect>,
    fields: &'a Map<String, Value>,
    headers: &'a [(String, String)],
    hosted_tools: &'a [(usize, Value)],
    drop_hosted_tools: bool,
    custom_tools: &'a std::collections::BTreeMap<String, Value>,
}

impl<'a> From<&'a Passthrough> for KeyPassthrough<'a> {
    fn from(passthrough: &'a Passthrough) -> Self {
        Self {
            dialect: passthrough.dialect,
            fields: &passthrough.fields,
            headers: &passthrough.headers,
            hosted_tools: &passthrough.hosted_tools,
            drop_hosted_tools: passthrough.drop_hosted_tools,
            custom_tools: &passthrough.custom_tools,
        }
    }
}

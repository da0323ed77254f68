//! Canonical chat types. Every dialect decodes into these and encodes from them, so a translation
//! from any ingress dialect to any upstream dialect is two conversions, never a pairwise one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// Provider family whose signed reasoning blocks may only be replayed to the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    OpenAi,
    Anthropic,
    Bedrock,
    Gemini,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ImageSource {
    /// An http(s) URL, fetched by the provider (or by us for providers that need bytes).
    Url(String),
    Base64 {
        media_type: String,
        data: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ContentPart {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
        detail: Option<String>,
    },
    /// A document the model reads (a PDF), inline only: every dialect takes base64 bytes, while
    /// file ids and URLs are each provider's own and do not translate.
    Document {
        /// `application/pdf`.
        media_type: String,
        /// Base64 of the document's bytes.
        data: String,
        /// The client's name for it (OpenAI `filename`, Anthropic `title`, Bedrock `name`).
        filename: Option<String>,
    },
    /// Audio input, inline: base64 bytes in `format` (`wav` or `mp3`, OpenAI's names).
    Audio {
        format: String,
        data: String,
    },
}

impl ContentPart {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model produced them: a JSON text that may be invalid or partial,
    /// so it is kept verbatim rather than parsed.
    pub arguments: String,
}

/// Reasoning or thinking content, opaque to us: only the family that produced it can use it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    pub family: Family,
    pub data: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
    /// Whether the client sent `content` as a plain string; kept so same-dialect hops are exact.
    pub content_is_text: bool,
    pub name: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub tool_call_id: Option<String>,
    pub refusal: Option<String>,
    pub reasoning: Vec<Reasoning>,
    /// A tool result that reports a failure (Anthropic `is_error`, Bedrock `status: error`).
    pub tool_error: bool,
    /// A prompt-cache breakpoint after this message (Anthropic `cache_control`, Bedrock
    /// `cachePoint`); dropped for providers that cache implicitly.
    pub cache_breakpoint: bool,
}

impl Message {
    pub fn new(role: Role, content: Vec<ContentPart>) -> Self {
        Self {
            role,
            content,
            content_is_text: false,
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            refusal: None,
            reasoning: Vec::new(),
            tool_error: false,
            cache_breakpoint: false,
        }
    }

    pub fn text(role: Role, text: impl Into<String>) -> Self {
        let mut message = Self::new(role, vec![ContentPart::text(text)]);
        message.content_is_text = true;
        message
    }

    /// The concatenated text parts.
    pub fn text_content(&self) -> String {
        self.content
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::Image { .. }
                | ContentPart::Document { .. }
                | ContentPart::Audio { .. } => None,
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Option<Value>,
        strict: Option<bool>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<i64>,
    /// Anthropic and Gemini only.
    pub top_k: Option<u32>,
}

/// A chat request in canonical form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The logical model (or route) the caller asked for.
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub sampling: Sampling,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub reasoning_effort: Option<String>,
    /// An explicit thinking budget in tokens (Anthropic `thinking.budget_tokens`); providers
    /// that take an effort level get the nearest one.
    pub reasoning_budget: Option<u32>,
    pub user: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub stream: bool,
    /// Fields only an OpenAI-dialect upstream understands (e.g. `logprobs`, `service_tier`),
    /// forwarded verbatim there and refused elsewhere.
    pub openai_passthrough: Map<String, Value>,
    /// What the client sent in its own dialect beyond the canonical request, for an upstream of
    /// that same dialect.
    pub passthrough: Passthrough,
    /// Whose conversation this is (the caller's virtual key): what the gateway remembers of it
    /// (signed reasoning) is given back within this scope only. Never sent upstream.
    #[serde(default)]
    pub scope: Option<String>,
}

/// The ingress dialects whose requests carry more than the canonical model holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireDialect {
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    Responses,
}

/// What a client sent in its own dialect that the canonical request does not model. An upstream
/// speaking the same dialect gets it verbatim (and validates it itself); any other translates
/// without it, except what [`Passthrough::required`] names, which it cannot do without and so
/// refuses by name (`Unsupported`, so routing moves to a deployment that can).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Passthrough {
    /// The dialect the fields and headers belong to; `None` when there are none.
    pub dialect: Option<WireDialect>,
    /// Top-level body fields set verbatim on a same-dialect upstream's body.
    pub fields: Map<String, Value>,
    /// Of `fields`, the ones with no translation whose loss would change the answer: fields the
    /// gateway does not know, let through by a route's `unknown_fields = "pass"`.
    pub required: Vec<String>,
    /// Request headers for a same-dialect upstream (`anthropic-beta`), names lowercase.
    pub headers: Vec<(String, String)>,
    /// Tools only the provider runs (Responses `web_search`, `tool_search`, ...), verbatim, with
    /// their index in the client's `tools`.
    pub hosted_tools: Vec<(usize, Value)>,
    /// Whether other dialects may serve the request without the hosted tools (a route's
    /// `hosted_tools = "drop"`) rather than refusing it.
    pub drop_hosted_tools: bool,
    /// Freeform tools (Responses `custom`, e.g. Codex's `apply_patch`), by name, verbatim: other
    /// dialects see each as a function taking one string `input`.
    pub custom_tools: std::collections::BTreeMap<String, Value>,
}

impl Passthrough {
    /// The passthrough of `dialect`, if the request came in speaking it.
    pub fn of(&self, dialect: WireDialect) -> Option<&Self> {
        (self.dialect == Some(dialect)).then_some(self)
    }
}

impl ChatRequest {
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            tools: Vec::new(),
            tool_choice: None,
            parallel_tool_calls: None,
            response_format: None,
            sampling: Sampling::default(),
            max_tokens: None,
            stop: Vec::new(),
            reasoning_effort: None,
            reasoning_budget: None,
            user: None,
            metadata: None,
            stream: false,
            openai_passthrough: Map::new(),
            passthrough: Passthrough::default(),
            scope: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// A reason with no OpenAI equivalent (kept raw alongside).
    Other,
}

/// Token counts normalized across providers (providers.md §7.3): `input_tokens` includes cached
/// and cache-write tokens, `output_tokens` includes reasoning tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Saturating: the counts come from upstreams, which may send anything up to `u64::MAX`.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    /// The model the upstream says answered.
    pub model: String,
    pub created: u64,
    pub message: Message,
    pub finish_reason: FinishReason,
    /// The provider's own reason string, since several have no canonical equivalent.
    pub raw_finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub system_fingerprint: Option<String>,
}

/// One event of a streamed answer. A stream is `Start`, content events, `Finish`, optionally
/// `Usage`, then its end; an `Err` item means it broke and must end with an error event.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    Start {
        id: String,
        model: String,
        created: u64,
    },
    TextDelta(String),
    RefusalDelta(String),
    ReasoningDelta(Reasoning),
    /// The first fragment of a tool call: `index` counts tool calls only.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    ToolCallDelta {
        index: u32,
        arguments: String,
    },
    Finish {
        reason: FinishReason,
        raw: Option<String>,
    },
    Usage(Usage),
}

impl StreamEvent {
    /// Whether the event carries model output, which is what "first token" timing measures.
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            Self::TextDelta(_)
                | Self::RefusalDelta(_)
                | Self::ReasoningDelta(_)
                | Self::ToolCallStart { .. }
                | Self::ToolCallDelta { .. }
        )
    }
}

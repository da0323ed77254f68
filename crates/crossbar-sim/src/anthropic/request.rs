//! Messages requests, validated with the API's own messages and translated to the neutral
//! conversation.

use serde_json::{Map, Value};

use super::ApiError;
use crate::behaviour::{
    Conversation, Effort, Message, OutputFormat, Role, Tool, ToolCall, ToolChoice,
};
use crate::ids;

const FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "thinking",
    "output_config",
    "service_tier",
    "container",
    "inference_geo",
    "cache_control",
    "anthropic_version",
    "context_management",
];

/// How a Claude model takes thinking, by generation: Opus 4.7 and later (and every 5.x) only
/// adaptively, the 4.6 models both ways, earlier ones only with a token budget.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ThinkingModes {
    BudgetOnly,
    Both,
    AdaptiveOnly,
}

/// Reads the generation from a model id as any cloud spells it (`claude-opus-4-7`,
/// `claude-sonnet-4-20250514`, `claude-3-7-sonnet-20250219`, `claude-sonnet-4@20250514`).
fn thinking_modes(model: &str) -> ThinkingModes {
    let rest = model.find("claude-").map_or("", |at| &model[at + 7..]);
    let opus = rest.contains("opus");
    let numbers: Vec<u32> = rest
        .split(['-', '@', '.', ':'])
        .skip_while(|t| t.parse::<u32>().is_err())
        .take_while(|t| {
            t.len() <= 2 && t.parse::<u32>().is_ok() || matches!(*t, "opus" | "sonnet" | "haiku")
        })
        .filter_map(|t| t.parse().ok())
        .take(2)
        .collect();
    match (
        numbers.first().copied().unwrap_or(0),
        numbers.get(1).copied().unwrap_or(0),
    ) {
        (5.., _) => ThinkingModes::AdaptiveOnly,
        (4, 7..) if opus => ThinkingModes::AdaptiveOnly,
        (4, 6..) => ThinkingModes::Both,
        _ => ThinkingModes::BudgetOnly,
    }
}

/// The thinking budget an `output_config.effort` stands for in the simulated answer.
fn effort_budget(object: &Map<String, Value>) -> Result<u64, ApiError> {
    match object
        .get("output_config")
        .and_then(|c| c.get("effort"))
        .map(|e| e.as_str().unwrap_or_default())
    {
        Some("low") => Ok(1024),
        Some("medium") => Ok(4096),
        None | Some("high" | "xhigh" | "max") => Ok(16_384),
        Some(other) => Err(ApiError::invalid(format!(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max' (got '{other}')"
        ))),
    }
}

/// Where the request came in, which decides how `model` and the version are carried.
pub(crate) enum Flavor {
    Anthropic,
    /// Vertex-hosted Claude: the model is in the URL, the version in the body.
    Vertex {
        model: String,
    },
    /// `count_tokens` takes the body without `max_tokens`.
    CountTokens,
}

pub(crate) struct Parsed {
    pub conversation: Conversation,
    pub model: String,
    pub stream: bool,
    /// The thinking budget when extended thinking is on.
    pub thinking: Option<u64>,
    /// Adaptive thinking with `display: "omitted"`: thinking blocks carry only a signature.
    pub omit_thinking: bool,
    pub cache_breakpoint: bool,
}

/// The signature the simulator gives a thinking text, and checks when it comes back.
pub(crate) fn signature(thinking: &str) -> String {
    format!("sim-sig-{:016x}", ids::fnv1a(thinking.as_bytes()))
}

fn field_required(name: &str) -> ApiError {
    ApiError::invalid(format!("{name}: Field required"))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn texts(content: &Value, at: &str) -> Result<String, ApiError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => {
            let mut out = Vec::new();
            for (i, block) in blocks.iter().enumerate() {
                if let Some(text) = block.get("text").and_then(Value::as_str) {
                    if text.is_empty() {
                        return Err(ApiError::invalid(format!(
                            "{at}.{i}.text: text content blocks must be non-empty"
                        )));
                    }
                    out.push(text.to_owned());
                }
            }
            Ok(out.join("\n"))
        }
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::invalid(format!(
            "{at}: Input should be a valid string or list"
        ))),
    }
}

pub(crate) fn parse(
    body: &[u8],
    flavor: &Flavor,
    stream_override: Option<bool>,
) -> Result<Parsed, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::invalid("request body must be a JSON object"));
    };
    if let Some(key) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!(
            "{key}: Extra inputs are not permitted"
        )));
    }
    let model = match flavor {
        Flavor::Vertex { model } => {
            if object.get("anthropic_version").and_then(Value::as_str) != Some("vertex-2023-10-16")
            {
                return Err(ApiError::invalid(
                    "anthropic_version: must be \"vertex-2023-10-16\" on Vertex AI",
                ));
            }
            if object.contains_key("model") {
                return Err(ApiError::invalid("model: Extra inputs are not permitted"));
            }
            model.clone()
        }
        Flavor::Anthropic | Flavor::CountTokens => object
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| field_required("model"))?
            .to_owned(),
    };
    let max_tokens = match flavor {
        Flavor::CountTokens => None,
        _ => Some(max_tokens(&object)?),
    };
    let sampling = Sampling::parse(&object)?;
    let modes = thinking_modes(&model);
    let mut omit_thinking = false;
    let thinking = match object.get("thinking") {
        Some(t)
            if t.get("type").and_then(Value::as_str) == Some("enabled")
                && modes == ThinkingModes::AdaptiveOnly =>
        {
            return Err(ApiError::invalid(
                "\"thinking.type.enabled\" is not supported for this model. Use \"thinking.type.adaptive\" and \"output_config.effort\" to control thinking behavior.",
            ));
        }
        Some(t) if t.get("type").and_then(Value::as_str) == Some("adaptive") => {
            if modes == ThinkingModes::BudgetOnly {
                return Err(ApiError::invalid(
                    "\"thinking.type.adaptive\" is not supported for this model. Use \"thinking.type.enabled\" and \"thinking.budget_tokens\" instead.",
                ));
            }
            match t.get("display").map(|d| d.as_str().unwrap_or_default()) {
                None | Some("summarized") => {}
                Some("omitted") => omit_thinking = true,
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "thinking.adaptive.display: Input should be 'summarized' or 'omitted' (got '{other}')"
                    )));
                }
            }
            Some(effort_budget(&object)?)
        }
        Some(t) if t.get("type").and_then(Value::as_str) == Some("enabled") => {
            let budget = t
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| field_required("thinking.enabled.budget_tokens"))?;
            if budget < 1024 {
                return Err(ApiError::invalid(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                ));
            }
            if max_tokens.is_some_and(|max| max <= budget) {
                return Err(ApiError::invalid(
                    "`max_tokens` must be greater than `thinking.budget_tokens`",
                ));
            }
            Some(budget)
        }
        _ => None,
    };
    let mut cache_breakpoint = object.contains_key("cache_control");
    let mut messages = Vec::new();
    if let Some(system) = object.get("system") {
        cache_breakpoint |= has_cache_control(system);
        messages.push(Message::new(Role::System, texts(system, "system")?));
    }
    let input = object
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| field_required("messages"))?;
    if input.is_empty() {
        return Err(ApiError::invalid(
            "messages: at least one message is required",
        ));
    }
    let mut pending: Vec<String> = Vec::new();
    for (i, message) in input.iter().enumerate() {
        let at = format!("messages.{i}");
        let content = message
            .get("content")
            .ok_or_else(|| field_required(&format!("{at}.content")))?;
        if content.is_null() {
            return Err(ApiError::invalid(format!(
                "{at}.content: Input should be a valid list"
            )));
        }
        if let Value::Array(blocks) = content {
            for (j, block) in blocks.iter().enumerate() {
                check_block(block, &format!("{at}.content.{j}"))?;
            }
        }
        cache_breakpoint |= has_cache_control(content);
        match message.get("role").and_then(Value::as_str) {
            Some("user") => user_message(content, &at, &mut pending, &mut messages)?,
            Some("assistant") => {
                if !pending.is_empty() {
                    return Err(unanswered(i.saturating_sub(1), &pending));
                }
                let last_assistant = input
                    .iter()
                    .skip(i + 1)
                    .all(|m| m.get("role").and_then(Value::as_str) != Some("assistant"));
                assistant_message(
                    content,
                    &at,
                    thinking.is_some() && last_assistant,
                    &mut pending,
                    &mut messages,
                )?;
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "{at}.role: Input should be 'user' or 'assistant'"
                )));
            }
        }
    }
    if !pending.is_empty() {
        return Err(unanswered(input.len() - 1, &pending));
    }
    let tools = parse_tools(&object)?;
    let (tool_choice, parallel) = parse_tool_choice(&object, &tools)?;
    if thinking.is_some() {
        thinking_compatible(&sampling, &tool_choice)?;
    }
    let breakpoints = count_cache_control(&object);
    if breakpoints > MAX_CACHE_BREAKPOINTS {
        return Err(ApiError::invalid(format!(
            "A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {breakpoints}."
        )));
    }
    let format = match object.get("output_config").and_then(|c| c.get("format")) {
        Some(format) => OutputFormat::JsonSchema(
            format
                .get("schema")
                .cloned()
                .ok_or_else(|| field_required("output_config.format.schema"))?,
        ),
        None => OutputFormat::Text,
    };
    let stop = object
        .get("stop_sequences")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let reasoning = match thinking {
        None => Effort::None,
        Some(0..=2048) => Effort::Low,
        Some(2049..=8192) => Effort::Medium,
        Some(_) => Effort::High,
    };
    Ok(Parsed {
        conversation: Conversation {
            messages,
            tools,
            tool_choice,
            parallel_tool_calls: parallel,
            format,
            max_output_tokens: max_tokens,
            stop,
            reasoning,
            fingerprint: ids::fnv1a(body),
        },
        model,
        stream: stream_override.unwrap_or_else(|| {
            object
                .get("stream")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        }),
        thinking,
        omit_thinking,
        cache_breakpoint,
    })
}

/// The API's limit on `cache_control` breakpoints in one request.
const MAX_CACHE_BREAKPOINTS: usize = 4;

/// The link the API's thinking errors point to.
const THINKING_DOCS: &str = "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking";

/// The image types the API reads.
const IMAGE_MEDIA_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// `max_tokens`: required, an integer, at least 1.
fn max_tokens(object: &Map<String, Value>) -> Result<u64, ApiError> {
    let value = object
        .get("max_tokens")
        .ok_or_else(|| field_required("max_tokens"))?;
    match value.as_i64() {
        Some(n) if n >= 1 => Ok(n.unsigned_abs()),
        Some(_) => Err(ApiError::invalid(
            "max_tokens: Input should be greater than or equal to 1",
        )),
        None => Err(ApiError::invalid(
            "max_tokens: Input should be a valid integer",
        )),
    }
}

/// The sampling parameters, range-checked as the API does (`temperature` and `top_p` in 0..1,
/// `top_k` a non-negative integer).
pub(crate) struct Sampling {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
}

impl Sampling {
    fn parse(object: &Map<String, Value>) -> Result<Self, ApiError> {
        let unit = |name: &str| -> Result<Option<f64>, ApiError> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => match value.as_f64() {
                    Some(v) if (0.0..=1.0).contains(&v) => Ok(Some(v)),
                    Some(_) => Err(ApiError::invalid(format!("{name}: range: 0..1"))),
                    None => Err(ApiError::invalid(format!(
                        "{name}: Input should be a valid number"
                    ))),
                },
            }
        };
        let top_k = match object.get("top_k") {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_i64() {
                Some(k) if k >= 0 => Some(k),
                Some(_) => {
                    return Err(ApiError::invalid(
                        "top_k: Input should be greater than or equal to 0",
                    ));
                }
                None => {
                    return Err(ApiError::invalid("top_k: Input should be a valid integer"));
                }
            },
        };
        Ok(Self {
            temperature: unit("temperature")?,
            top_p: unit("top_p")?,
            top_k,
        })
    }
}

/// Extended thinking refuses a forced tool choice, a temperature other than 1, any `top_k`
/// and a `top_p` below 0.95, with the API's messages.
fn thinking_compatible(sampling: &Sampling, choice: &ToolChoice) -> Result<(), ApiError> {
    if matches!(choice, ToolChoice::Required | ToolChoice::Named(_)) {
        return Err(ApiError::invalid(
            "Thinking may not be enabled when tool_choice forces tool use.",
        ));
    }
    if sampling.temperature.is_some_and(|t| t != 1.0) {
        return Err(ApiError::invalid(format!(
            "`temperature` may only be set to 1 when thinking is enabled. {THINKING_DOCS}"
        )));
    }
    if sampling.top_k.is_some() {
        return Err(ApiError::invalid(format!(
            "`top_k` must be unset when thinking is enabled. {THINKING_DOCS}"
        )));
    }
    if sampling.top_p.is_some_and(|p| p < 0.95) {
        return Err(ApiError::invalid(format!(
            "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. {THINKING_DOCS}"
        )));
    }
    Ok(())
}

/// A document's source: base64 must be a PDF (`application/pdf`) that opens, as the API
/// says of one that does not (anthropics/claude-code#5174); text, URL, content and file
/// sources are taken as they are.
fn check_document(block: &Value, at: &str) -> Result<(), ApiError> {
    let Some(source) = block.get("source") else {
        return Err(field_required(&format!("{at}.document.source")));
    };
    if source.get("type").and_then(Value::as_str) != Some("base64") {
        return Ok(());
    }
    let media_type = source.get("media_type").and_then(Value::as_str);
    if media_type != Some("application/pdf") {
        return Err(ApiError::invalid(format!(
            "{at}.document.source.base64.media_type: Input should be 'application/pdf'"
        )));
    }
    let data = source
        .get("data")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !crate::media::decode(data).is_some_and(|bytes| crate::media::is_pdf(&bytes)) {
        return Err(ApiError::invalid(format!(
            "{at}.pdf.source.base64.data: The PDF specified was not valid."
        )));
    }
    Ok(())
}

/// The fields each content block type takes; anything else is "Extra inputs are not permitted".
fn block_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "text" => &["type", "text", "cache_control", "citations"],
        "image" => &["type", "source", "cache_control"],
        "document" => &[
            "type",
            "source",
            "title",
            "context",
            "citations",
            "cache_control",
        ],
        "tool_use" => &["type", "id", "name", "input", "cache_control", "caller"],
        "tool_result" => &[
            "type",
            "tool_use_id",
            "content",
            "is_error",
            "cache_control",
        ],
        "thinking" => &["type", "thinking", "signature"],
        "redacted_thinking" => &["type", "data"],
        _ => return None,
    })
}

/// Checks one content block's fields, `tool_use` input and name, and image type, with the
/// API's error paths (`messages.0.content.1.tool_use.input`). Unknown block types are left to
/// the role-specific checks.
fn check_block(block: &Value, at: &str) -> Result<(), ApiError> {
    let Some(kind) = block.get("type").and_then(Value::as_str) else {
        return Ok(());
    };
    let Some(fields) = block_fields(kind) else {
        return Ok(());
    };
    if let Some(object) = block.as_object()
        && let Some(extra) = object.keys().find(|k| !fields.contains(&k.as_str()))
    {
        return Err(ApiError::invalid(format!(
            "{at}.{kind}.{extra}: Extra inputs are not permitted"
        )));
    }
    match kind {
        "tool_use" => {
            if block.get("name").and_then(Value::as_str).is_none() {
                return Err(field_required(&format!("{at}.tool_use.name")));
            }
            match block.get("input") {
                Some(Value::Object(_)) => {}
                Some(_) => {
                    return Err(ApiError::invalid(format!(
                        "{at}.tool_use.input: Input should be a valid dictionary"
                    )));
                }
                None => return Err(field_required(&format!("{at}.tool_use.input"))),
            }
        }
        "image" => {
            let source = block.get("source");
            if source.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("base64") {
                let media_type = source
                    .and_then(|s| s.get("media_type"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !IMAGE_MEDIA_TYPES.contains(&media_type) {
                    return Err(ApiError::invalid(format!(
                        "{at}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                    )));
                }
            }
        }
        "document" => check_document(block, at)?,
        "tool_result" => {
            if let Some(Value::Array(inner)) = block.get("content") {
                for (k, item) in inner.iter().enumerate() {
                    check_block(item, &format!("{at}.tool_result.content.{k}"))?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every `cache_control` breakpoint: on tools, system blocks, message blocks and the blocks
/// inside tool results.
fn count_cache_control(object: &Map<String, Value>) -> usize {
    fn in_blocks(value: Option<&Value>) -> usize {
        value.and_then(Value::as_array).map_or(0, |blocks| {
            blocks
                .iter()
                .map(|b| {
                    usize::from(b.get("cache_control").is_some_and(|c| !c.is_null()))
                        + in_blocks(b.get("content"))
                })
                .sum()
        })
    }
    let messages = object
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |messages| {
            messages.iter().map(|m| in_blocks(m.get("content"))).sum()
        });
    in_blocks(object.get("tools")) + in_blocks(object.get("system")) + messages
}

fn has_cache_control(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|blocks| blocks.iter().any(|b| b.get("cache_control").is_some()))
}

fn unanswered(index: usize, ids: &[String]) -> ApiError {
    ApiError::invalid(format!(
        "messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
        ids.join(", ")
    ))
}

fn user_message(
    content: &Value,
    at: &str,
    pending: &mut Vec<String>,
    out: &mut Vec<Message>,
) -> Result<(), ApiError> {
    let Value::Array(blocks) = content else {
        if !pending.is_empty() {
            return Err(unanswered(0, pending));
        }
        out.push(Message::new(
            Role::User,
            texts(content, &format!("{at}.content"))?,
        ));
        return Ok(());
    };
    let is_result = |b: &Value| b.get("type").and_then(Value::as_str) == Some("tool_result");
    let leading = blocks.iter().take_while(|b| is_result(b)).count();
    if !pending.is_empty() && blocks.iter().filter(|b| is_result(b)).count() > leading {
        return Err(ApiError::invalid(format!(
            "{at}: Did not find {} `tool_result` block(s) at the beginning of this message. Messages following `tool_use` blocks must begin with a matching number of `tool_result` blocks.",
            pending.len()
        )));
    }
    let mut text = Vec::new();
    let mut attachments = 0;
    let mut answered = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let here = format!("{at}.content.{j}");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push(block_text(block, at)?),
            Some("image") | Some("document") => attachments += 1,
            Some("tool_result") => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !pending.iter().any(|p| p == id) {
                    return Err(ApiError::invalid(format!(
                        "{here}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                    )));
                }
                answered.push(id.to_owned());
                let mut result = Message::new(
                    Role::Tool,
                    texts(
                        block.get("content").unwrap_or(&Value::Null),
                        &format!("{here}.content"),
                    )?,
                );
                result.tool_call_id = Some(id.to_owned());
                out.push(result);
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{here}.type: unsupported block type {other:?} in a user message"
                )));
            }
        }
    }
    pending.retain(|id| !answered.contains(id));
    if !pending.is_empty() {
        return Err(ApiError::invalid(format!(
            "{at}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
            pending.join(", ")
        )));
    }
    if !text.is_empty() || attachments > 0 {
        let mut message = Message::new(Role::User, text.join("\n"));
        message.attachments = attachments;
        out.push(message);
    }
    Ok(())
}

/// The text of one `text` block of the message at `at`, checked as a one-block content.
fn block_text(block: &Value, at: &str) -> Result<String, ApiError> {
    texts(&Value::Array(vec![block.clone()]), &format!("{at}.content"))
}

fn assistant_message(
    content: &Value,
    at: &str,
    needs_thinking: bool,
    pending: &mut Vec<String>,
    out: &mut Vec<Message>,
) -> Result<(), ApiError> {
    let Value::Array(blocks) = content else {
        out.push(Message::new(
            Role::Assistant,
            texts(content, &format!("{at}.content"))?,
        ));
        return Ok(());
    };
    let mut message = Message::new(Role::Assistant, String::new());
    let mut text = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let here = format!("{at}.content.{j}");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push(block_text(block, at)?),
            Some("thinking") => {
                let thinking = block
                    .get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if block.get("signature").and_then(Value::as_str)
                    != Some(signature(thinking).as_str())
                {
                    return Err(ApiError::invalid(format!(
                        "{here}: Invalid `signature` in `thinking` block"
                    )));
                }
            }
            Some("redacted_thinking") => {}
            Some("tool_use") => {
                let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                if !valid_id(id) {
                    return Err(ApiError::invalid(format!(
                        "{here}.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                    )));
                }
                if needs_thinking
                    && blocks
                        .first()
                        .and_then(|b| b.get("type"))
                        .and_then(Value::as_str)
                        != Some("thinking")
                {
                    return Err(ApiError::invalid(format!(
                        "{at}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block."
                    )));
                }
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let arguments = block
                    .get("input")
                    .cloned()
                    .unwrap_or(Value::Object(Map::new()))
                    .to_string();
                pending.push(id.to_owned());
                message.tool_calls.push(ToolCall {
                    id: id.to_owned(),
                    name,
                    arguments,
                });
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{here}.type: unsupported block type {other:?} in an assistant message"
                )));
            }
        }
    }
    message.text = text.join("\n");
    out.push(message);
    Ok(())
}

fn parse_tools(object: &Map<String, Value>) -> Result<Vec<Tool>, ApiError> {
    let Some(tools) = object.get("tools") else {
        return Ok(Vec::new());
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| ApiError::invalid("tools: Input should be a valid list"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| field_required(&format!("tools.{i}.name")))?;
            if name.len() > 64 || !valid_id(name) {
                return Err(ApiError::invalid(format!(
                    "tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                )));
            }
            let parameters = tool
                .get("input_schema")
                .cloned()
                .ok_or_else(|| field_required(&format!("tools.{i}.input_schema")))?;
            let at = format!("tools.{i}.custom.input_schema");
            match parameters.as_object().map(|schema| schema.get("type")) {
                None => {
                    return Err(ApiError::invalid(format!(
                        "{at}: Input should be a valid dictionary"
                    )));
                }
                Some(None) => return Err(field_required(&format!("{at}.type"))),
                Some(Some(kind)) if kind != "object" => {
                    return Err(ApiError::invalid(format!(
                        "{at}.type: Input should be 'object'"
                    )));
                }
                Some(Some(_)) => {}
            }
            Ok(Tool {
                name: name.to_owned(),
                description: tool
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters,
            })
        })
        .collect()
}

fn parse_tool_choice(
    object: &Map<String, Value>,
    tools: &[Tool],
) -> Result<(ToolChoice, bool), ApiError> {
    let Some(choice) = object.get("tool_choice") else {
        return Ok((ToolChoice::Auto, true));
    };
    if tools.is_empty() {
        return Err(ApiError::invalid(
            "tool_choice may only be specified while providing tools",
        ));
    }
    let parallel = !choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let choice = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => ToolChoice::Auto,
        Some("any") => ToolChoice::Required,
        Some("none") => ToolChoice::None,
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| field_required("tool_choice.tool.name"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(ApiError::invalid(format!(
                    "tool_choice.tool.name: tool `{name}` not found in tools"
                )));
            }
            ToolChoice::Named(name.to_owned())
        }
        _ => {
            return Err(ApiError::invalid(
                "tool_choice.type: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'",
            ));
        }
    };
    Ok((choice, parallel))
}

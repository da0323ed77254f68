//! Converse requests, read from the Smithy model's shapes and validated like the real service,
//! with its messages (providers.md §5.3), then translated to the neutral conversation.
//!
//! Stricter than Bedrock in one way: unknown top-level members are refused rather than
//! ignored, so that a misspelt field in a client shows up in tests instead of being dropped.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{BedrockError, constraint};
use crate::behaviour::{
    Conversation, Effort, Message, OutputFormat, Role, Tool, ToolCall, ToolChoice,
};
use crate::ids;

/// Top-level members of `ConverseRequest` (the model id travels in the path).
const REQUEST_MEMBERS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
];
const TOOL_USE_ID_PATTERN: &str = "[a-zA-Z0-9_.:-]+";
const TOOL_NAME_PATTERN: &str = "[a-zA-Z0-9_-]+";
const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "gif", "webp"];

/// Cache points a request may hold (system, tools and messages together).
const MAX_CACHE_POINTS: usize = 4;
/// Claude's per-image limit, on the base64 text Bedrock passes on: 5 MiB, i.e. 3.75 MiB of image.
const MAX_IMAGE_BASE64: usize = 5 * 1024 * 1024;
/// Longest image side Converse takes.
const MAX_IMAGE_SIDE: u32 = 8000;
/// Above this many images in one request, each must be at most [`MANY_IMAGES_SIDE`] a side
/// (Claude 3 models refuse the request outright instead).
const MANY_IMAGES: usize = 20;
const MANY_IMAGES_SIDE: u32 = 2000;

/// A validated request: what the model sees, plus where the client put cache points.
pub(crate) struct ConverseRequest {
    pub conversation: Conversation,
    /// Claude's extended thinking is on (`additionalModelRequestFields.thinking`).
    pub thinking: bool,
    /// Prompt segments (of [`Conversation::prompt_segments`]) covered by the last cache point:
    /// `None` without cache points.
    pub cached_prefix: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    messages: Vec<WireMessage>,
    #[serde(default)]
    system: Vec<Map<String, Value>>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
    #[serde(default)]
    tool_config: Option<WireToolConfig>,
    #[serde(default)]
    additional_model_request_fields: Option<Map<String, Value>>,
    #[serde(default)]
    output_config: Option<WireOutputConfig>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Vec<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InferenceConfig {
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireToolConfig {
    tools: Vec<Map<String, Value>>,
    #[serde(default)]
    tool_choice: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    input_schema: Map<String, Value>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireOutputConfig {
    #[serde(default)]
    text_format: Option<WireOutputFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOutputFormat {
    #[serde(rename = "type")]
    kind: String,
    structure: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSchemaDefinition {
    schema: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolUse {
    tool_use_id: String,
    name: String,
    input: Value,
    #[serde(default, rename = "type")]
    _kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolResult {
    tool_use_id: String,
    content: Vec<Map<String, Value>>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "type")]
    _kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    format: String,
    source: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CachePointBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ttl: Option<String>,
}

fn malformed(detail: impl std::fmt::Display) -> BedrockError {
    BedrockError::validation(format!(
        "Malformed input request: {detail}, please reformat your input and try again."
    ))
}

fn typed<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, BedrockError> {
    serde_json::from_value(value).map_err(|e| malformed(format!("{at}: {e}")))
}

/// The one member of a union object (Smithy unions are objects with exactly one key).
fn union_member(block: Map<String, Value>, at: &str) -> Result<(String, Value), BedrockError> {
    let mut members = block.into_iter();
    match (members.next(), members.next()) {
        (Some(member), None) => Ok(member),
        _ => Err(malformed(format!(
            "{at}: a union must have exactly one member set"
        ))),
    }
}

fn matches_pattern(value: &str, extra: &[char], max: usize) -> bool {
    !value.is_empty()
        && value.chars().count() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

fn check_tool_use_id(id: &str, path: &str) -> Result<(), BedrockError> {
    if id.is_empty() || id.chars().count() > 64 {
        return Err(constraint(
            id,
            path,
            "Member must have length less than or equal to 64 and greater than or equal to 1",
        ));
    }
    if !matches_pattern(id, &['_', '.', ':', '-'], 64) {
        return Err(constraint(
            id,
            path,
            &format!("Member must satisfy regular expression pattern: {TOOL_USE_ID_PATTERN}"),
        ));
    }
    Ok(())
}

fn check_tool_name(name: &str, path: &str) -> Result<(), BedrockError> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(constraint(
            name,
            path,
            "Member must have length less than or equal to 64 and greater than or equal to 1",
        ));
    }
    if !matches_pattern(name, &['_', '-'], 64) {
        return Err(constraint(
            name,
            path,
            &format!("Member must satisfy regular expression pattern: {TOOL_NAME_PATTERN}"),
        ));
    }
    Ok(())
}

fn blank_text(object: &str, at: &str) -> BedrockError {
    BedrockError::validation(format!(
        "The text field in the {object} object at {at} is blank. Add text to the text field, and \
         try again."
    ))
}

/// A message's `text` block, which may not be blank.
fn block_text(value: &Value, at: &str) -> Result<String, BedrockError> {
    let text = value.as_str().unwrap_or_default();
    if text.trim().is_empty() {
        return Err(blank_text("ContentBlock", at));
    }
    Ok(text.to_owned())
}

/// An error Claude itself raises: Bedrock passes its message on behind this prefix.
fn model_error(message: impl std::fmt::Display) -> BedrockError {
    BedrockError::validation(format!(
        "The model returned the following errors: {message}"
    ))
}

/// Whether a model id (base, inference profile or ARN naming it) is one of Anthropic's.
fn is_claude(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model.contains("anthropic.") || model.contains("claude")
}

/// Parses and validates a Converse body for `model`.
pub(crate) fn parse(body: &[u8], model: &str) -> Result<ConverseRequest, BedrockError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let Value::Object(object) = &value else {
        return Err(malformed("the body must be a JSON object"));
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !REQUEST_MEMBERS.contains(&k.as_str()))
    {
        return Err(malformed(format!(
            "extraneous key [{unknown}] is not permitted"
        )));
    }
    let wire: Wire = typed(value.clone(), "request")?;
    let thinking = wire
        .additional_model_request_fields
        .as_ref()
        .and_then(|f| f.get("thinking"))
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        == Some("enabled");
    let claude = is_claude(model);
    let mut builder = Builder {
        claude,
        thinking: claude && thinking,
        legacy_claude: claude && model.to_ascii_lowercase().contains("claude-3"),
        ..Builder::default()
    };
    // Prompt order, which decides what a cache point covers: tools, system, messages.
    let tools = match wire.tool_config {
        Some(config) => Some(tool_config(config, &mut builder)?),
        None => None,
    };
    builder.system(wire.system)?;
    let tool_blocks = builder.messages(wire.messages)?;
    if builder.cache_points > MAX_CACHE_POINTS {
        return Err(model_error(format!(
            "A maximum of {MAX_CACHE_POINTS} blocks with cache_control may be provided. Found {}.",
            builder.cache_points
        )));
    }
    builder.check_images()?;
    if tool_blocks && tools.is_none() {
        return Err(BedrockError::validation(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ));
    }
    let (tools, tool_choice) = tools.unwrap_or((Vec::new(), ToolChoice::Auto));
    let inference = wire.inference_config.map(inference).transpose()?;
    let (max_output_tokens, stop) = inference.unwrap_or_default();
    let format = match wire.output_config.and_then(|c| c.text_format) {
        Some(format) => output_format(format)?,
        None => OutputFormat::Text,
    };
    Ok(ConverseRequest {
        conversation: Conversation {
            messages: builder.neutral,
            tools,
            tool_choice,
            // Bedrock has no knob: models call tools in parallel when they see fit.
            parallel_tool_calls: true,
            format,
            max_output_tokens,
            stop,
            reasoning: reasoning(wire.additional_model_request_fields.as_ref()),
            fingerprint: ids::fnv1a(body),
        },
        thinking: thinking && claude,
        cached_prefix: builder.cached_prefix,
    })
}

#[derive(Default)]
struct Builder {
    neutral: Vec<Message>,
    /// Segments covered by the last cache point seen: 1 (tools) + neutral messages so far.
    cached_prefix: Option<usize>,
    /// The model is Claude, whose own rules (signed thinking) apply.
    claude: bool,
    /// Claude with extended thinking on.
    thinking: bool,
    /// A Claude 3 model, which takes at most [`MANY_IMAGES`] images.
    legacy_claude: bool,
    cache_points: usize,
    /// Each image's path and its size in pixels, when its header could be read.
    images: Vec<(String, Option<(u32, u32)>)>,
}

impl Builder {
    /// The limits that bind on the request's images together.
    fn check_images(&self) -> Result<(), BedrockError> {
        let count = self.images.len();
        if count <= MANY_IMAGES {
            return Ok(());
        }
        if self.legacy_claude {
            return Err(model_error(format!(
                "too many images and documents: {count} + 0 > {MANY_IMAGES}"
            )));
        }
        for (at, size) in &self.images {
            if size.is_some_and(|(w, h)| w.max(h) > MANY_IMAGES_SIDE) {
                return Err(model_error(format!(
                    "{at}.image.source.bytes: At least one of the image dimensions exceed max \
                     allowed size for many-image requests: {MANY_IMAGES_SIDE} pixels"
                )));
            }
        }
        Ok(())
    }

    fn cache_point(&mut self, block: Value, at: &str) -> Result<(), BedrockError> {
        self.cache_points += 1;
        let point: CachePointBlock = typed(block, at)?;
        if point.kind != "default" {
            return Err(constraint(
                &point.kind,
                &format!("{at}.type"),
                "Member must satisfy enum value set: [default]",
            ));
        }
        if let Some(ttl) = point.ttl.filter(|t| !["5m", "1h"].contains(&t.as_str())) {
            return Err(constraint(
                &ttl,
                &format!("{at}.ttl"),
                "Member must satisfy enum value set: [5m, 1h]",
            ));
        }
        self.cached_prefix = Some(1 + self.neutral.len());
        Ok(())
    }

    fn system(&mut self, blocks: Vec<Map<String, Value>>) -> Result<(), BedrockError> {
        for (k, block) in blocks.into_iter().enumerate() {
            let at = format!("system.{k}");
            match union_member(block, &at)? {
                (member, Value::String(text)) if member == "text" => {
                    if text.trim().is_empty() {
                        return Err(blank_text("SystemContentBlock", &at));
                    }
                    self.neutral.push(Message::new(Role::System, text));
                }
                (member, block) if member == "cachePoint" => self.cache_point(block, &at)?,
                (member, _) if member == "guardContent" => {}
                (member, _) => {
                    return Err(malformed(format!("{at}: unknown member [{member}]")));
                }
            }
        }
        Ok(())
    }

    /// Validates the turns and appends them; true when any holds a tool block.
    fn messages(&mut self, messages: Vec<WireMessage>) -> Result<bool, BedrockError> {
        if messages.first().is_none_or(|m| m.role != "user") {
            if let Some(role) = messages
                .first()
                .map(|m| m.role.as_str())
                .filter(|r| *r != "assistant")
            {
                return Err(constraint(
                    role,
                    "messages.1.member.role",
                    "Member must satisfy enum value set: [user, assistant]",
                ));
            }
            return Err(BedrockError::validation(
                "A conversation must start with a user message. Try again with a conversation \
                 that starts with a user message.",
            ));
        }
        let mut tool_blocks = false;
        // The toolUse ids the previous assistant turn is waiting for.
        let mut pending: Vec<String> = Vec::new();
        let mut previous_role = "";
        let count = messages.len();
        let last_assistant = messages.iter().rposition(|m| m.role == "assistant");
        for (i, message) in messages.into_iter().enumerate() {
            let role = message.role.as_str();
            if !["user", "assistant"].contains(&role) {
                return Err(constraint(
                    role,
                    &format!("messages.{}.member.role", i + 1),
                    "Member must satisfy enum value set: [user, assistant]",
                ));
            }
            if role == previous_role {
                return Err(BedrockError::validation(
                    "A conversation must alternate between user and assistant roles. Make sure \
                     the conversation alternates between user and assistant roles and try again.",
                ));
            }
            previous_role = if role == "user" { "user" } else { "assistant" };
            if message.content.is_empty() {
                return Err(BedrockError::validation(format!(
                    "The content field in the Message object at messages.{i} is empty. Add a \
                     ContentBlock object to the content field and try again."
                )));
            }
            let turn = if role == "user" {
                self.user_turn(i, message.content, &pending)?
            } else {
                if !pending.is_empty() {
                    return Err(expected_results(i, &pending));
                }
                self.assistant_turn(i, message.content, last_assistant == Some(i))?
            };
            tool_blocks |= turn.tool_blocks;
            pending = turn.tool_uses;
        }
        if !pending.is_empty() {
            return Err(expected_results(count, &pending));
        }
        Ok(tool_blocks)
    }

    fn user_turn(
        &mut self,
        i: usize,
        content: Vec<Map<String, Value>>,
        pending: &[String],
    ) -> Result<Turn, BedrockError> {
        let mut texts = Vec::new();
        let mut attachments = 0;
        let mut documents = 0;
        let mut results: Vec<Message> = Vec::new();
        let mut other_seen = false;
        let mut cache_after = None;
        for (j, block) in content.into_iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            let (member, value) = union_member(block, &at)?;
            match member.as_str() {
                "text" => {
                    texts.push(block_text(&value, &at)?);
                    other_seen = true;
                }
                "image" => {
                    let size = image(value, &at, i, j)?;
                    self.images.push((at.clone(), size));
                    attachments += 1;
                    other_seen = true;
                }
                "document" => {
                    document(value, &at, i, j)?;
                    documents += 1;
                    attachments += 1;
                    other_seen = true;
                }
                "video" | "audio" => {
                    attachments += 1;
                    other_seen = true;
                }
                "toolResult" => {
                    if other_seen {
                        return Err(BedrockError::validation(format!(
                            "The toolResult blocks at messages.{i}.content must come before any \
                             other content in the message."
                        )));
                    }
                    results.push(tool_result(value, &at, i, j, &mut self.images)?);
                }
                "cachePoint" => {
                    cache_after = Some(results.len() + usize::from(other_seen));
                    self.check_cache_point(value, &at)?;
                }
                "guardContent" | "searchResult" => {}
                "toolUse" | "reasoningContent" => {
                    return Err(BedrockError::validation(format!(
                        "The {member} block at {at} is only allowed in assistant messages."
                    )));
                }
                other => return Err(malformed(format!("{at}: unknown member [{other}]"))),
            }
        }
        if results.len() > pending.len() {
            return Err(BedrockError::validation(format!(
                "The number of toolResult blocks at messages.{i}.content exceeds the number of \
                 toolUse blocks of previous turn."
            )));
        }
        let answered: HashSet<&str> = results
            .iter()
            .filter_map(|r| r.tool_call_id.as_deref())
            .collect();
        let missing: Vec<String> = pending
            .iter()
            .filter(|id| !answered.contains(id.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(expected_results(i, &missing));
        }
        // The service's rule and words (BerriAI/litellm#36499, maximhq/bifrost#5817).
        if documents > 0 && texts.is_empty() {
            return Err(BedrockError::validation(
                "A text block must be included when using documents. Add a text block and retry \
                 your request.",
            ));
        }
        let tool_blocks = !results.is_empty();
        let base = self.neutral.len();
        self.neutral.extend(results);
        if !texts.is_empty() || attachments > 0 {
            let mut message = Message::new(Role::User, texts.join("\n"));
            message.attachments = attachments;
            self.neutral.push(message);
        }
        if let Some(count) = cache_after {
            self.cached_prefix = Some(1 + (base + count).min(self.neutral.len()));
        }
        Ok(Turn {
            tool_blocks,
            tool_uses: Vec::new(),
        })
    }

    /// Checks a cache point without moving the cached prefix (the caller places it).
    fn check_cache_point(&mut self, value: Value, at: &str) -> Result<(), BedrockError> {
        let saved = self.cached_prefix;
        self.cache_point(value, at)?;
        self.cached_prefix = saved;
        Ok(())
    }

    fn assistant_turn(
        &mut self,
        i: usize,
        content: Vec<Map<String, Value>>,
        last: bool,
    ) -> Result<Turn, BedrockError> {
        // With thinking on, Claude wants the final assistant turn that calls tools to open
        // with the thinking that led to the calls.
        if self.thinking && last && content.iter().any(|b| b.contains_key("toolUse")) {
            let first = content
                .first()
                .and_then(|b| b.keys().next())
                .map(String::as_str);
            if first != Some("reasoningContent") {
                let found = match first {
                    Some("toolUse") => "tool_use",
                    Some("text") => "text",
                    Some(other) => other,
                    None => "nothing",
                };
                return Err(model_error(format!(
                    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but \
                     found `{found}`. When `thinking` is enabled, a final `assistant` message must \
                     start with a thinking block (preceeding the lastmost set of `tool_use` and \
                     `tool_result` blocks). We recommend you include thinking blocks from previous \
                     turns. To avoid this requirement, disable `thinking`. Please consult our \
                     documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                )));
            }
        }
        let mut texts = Vec::new();
        let mut calls = Vec::new();
        let mut cache = false;
        for (j, block) in content.into_iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            let (member, value) = union_member(block, &at)?;
            match member.as_str() {
                "text" => {
                    texts.push(block_text(&value, &at)?);
                }
                "toolUse" => {
                    let call: ToolUse = typed(value, &at)?;
                    let path =
                        format!("messages.{}.member.content.{}.member.toolUse", i + 1, j + 1);
                    check_tool_use_id(&call.tool_use_id, &format!("{path}.toolUseId"))?;
                    check_tool_name(&call.name, &format!("{path}.name"))?;
                    if !call.input.is_object() {
                        return Err(BedrockError::validation(format!(
                            "The input field in the toolUse block at {at} must be a JSON object."
                        )));
                    }
                    calls.push(ToolCall {
                        id: call.tool_use_id,
                        name: call.name,
                        arguments: call.input.to_string(),
                    });
                }
                "reasoningContent" => reasoning_content(value, &at, self.claude)?,
                "cachePoint" => {
                    self.check_cache_point(value, &at)?;
                    cache = true;
                }
                "guardContent" | "citationsContent" => {}
                "toolResult" | "image" | "document" | "video" | "audio" => {
                    return Err(BedrockError::validation(format!(
                        "The {member} block at {at} is only allowed in user messages."
                    )));
                }
                other => return Err(malformed(format!("{at}: unknown member [{other}]"))),
            }
        }
        let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
        let mut unique = HashSet::new();
        if let Some(duplicate) = ids.iter().find(|id| !unique.insert(id.as_str())) {
            return Err(BedrockError::validation(format!(
                "The toolUse blocks at messages.{i}.content have a duplicate toolUseId: {duplicate}"
            )));
        }
        let mut message = Message::new(Role::Assistant, texts.join("\n"));
        message.tool_calls = calls;
        self.neutral.push(message);
        if cache {
            self.cached_prefix = Some(1 + self.neutral.len());
        }
        Ok(Turn {
            tool_blocks: !ids.is_empty(),
            tool_uses: ids,
        })
    }
}

struct Turn {
    tool_blocks: bool,
    /// The ids the next (user) turn must answer.
    tool_uses: Vec<String>,
}

fn expected_results(i: usize, ids: &[String]) -> BedrockError {
    BedrockError::validation(format!(
        "Expected toolResult blocks at messages.{i}.content for the following Ids: {}",
        ids.join(", ")
    ))
}

/// Checks an image block; its size in pixels when its header can be read.
fn image(value: Value, at: &str, i: usize, j: usize) -> Result<Option<(u32, u32)>, BedrockError> {
    let image: Image = typed(value, at)?;
    if !IMAGE_FORMATS.contains(&image.format.as_str()) {
        return Err(constraint(
            &image.format,
            &format!(
                "messages.{}.member.content.{}.member.image.format",
                i + 1,
                j + 1
            ),
            "Member must satisfy enum value set: [png, jpeg, gif, webp]",
        ));
    }
    let (member, source) = union_member(image.source, &format!("{at}.image.source"))?;
    match (member.as_str(), source) {
        ("bytes", Value::String(data)) => match BASE64.decode(data.as_bytes()) {
            Ok(bytes) if !bytes.is_empty() => {
                if data.len() > MAX_IMAGE_BASE64 {
                    return Err(model_error(format!(
                        "{at}.image.source.bytes: image exceeds 5 MB maximum: {} bytes > \
                         {MAX_IMAGE_BASE64} bytes",
                        data.len()
                    )));
                }
                let size = image_size(&bytes);
                if size.is_some_and(|(w, h)| w.max(h) > MAX_IMAGE_SIDE) {
                    return Err(model_error(format!(
                        "{at}.image.source.bytes: At least one of the image dimensions exceed max \
                         allowed size: {MAX_IMAGE_SIDE} pixels"
                    )));
                }
                Ok(size)
            }
            _ => Err(malformed(format!(
                "{at}.image.source.bytes: invalid base64 blob"
            ))),
        },
        ("s3Location", Value::Object(_)) => Ok(None),
        _ => Err(malformed(format!(
            "{at}.image.source: expected bytes or s3Location"
        ))),
    }
}

/// `DocumentBlock`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default = "default_document_format")]
    format: String,
    name: String,
    source: Map<String, Value>,
    #[serde(default)]
    #[expect(dead_code, reason = "accepted as the API does, not used")]
    context: Option<String>,
    #[serde(default)]
    #[expect(dead_code, reason = "accepted as the API does, not used")]
    citations: Option<Value>,
}

/// The spec's default `format`.
fn default_document_format() -> String {
    "txt".to_owned()
}

/// `DocumentFormat`.
const DOCUMENT_FORMATS: &[&str] = &[
    "pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md",
];

/// Checks a document block: its format, its name (the service's rule and words, as reported in
/// simonw/llm-bedrock#8 and vercel/ai#20365: underscores pass, though unlisted), and its source.
fn document(value: Value, at: &str, i: usize, j: usize) -> Result<(), BedrockError> {
    let document: Document = typed(value, at)?;
    let path = format!(
        "messages.{}.member.content.{}.member.document",
        i + 1,
        j + 1
    );
    if !DOCUMENT_FORMATS.contains(&document.format.as_str()) {
        return Err(constraint(
            &document.format,
            &format!("{path}.format"),
            "Member must satisfy enum value set: [pdf, csv, doc, docx, xls, xlsx, html, txt, md]",
        ));
    }
    let length = document.name.chars().count();
    if length == 0 || length > 200 {
        let rule = if length == 0 {
            "Member must have length greater than or equal to 1"
        } else {
            "Member must have length less than or equal to 200"
        };
        return Err(constraint(&document.name, &format!("{path}.name"), rule));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || " -()[]_".contains(c);
    if !document.name.chars().all(allowed) || document.name.contains("  ") {
        return Err(BedrockError::validation(
            "The document file name can only contain alphanumeric characters, whitespace \
             characters, hyphens, parentheses, and square brackets. The name can't contain more \
             than one consecutive whitespace character. Check that the file name conforms to \
             these restrictions and retry your request.",
        ));
    }
    let (member, source) = union_member(document.source, &format!("{at}.document.source"))?;
    match (member.as_str(), source) {
        ("bytes", Value::String(data)) => match BASE64.decode(data.as_bytes()) {
            Ok(bytes) if !bytes.is_empty() => {
                if data.len() > MAX_DOCUMENT_BASE64 {
                    return Err(BedrockError::validation(format!(
                        "{at}.document.source.bytes: document exceeds 4.5 MB maximum"
                    )));
                }
                // Anthropic's words for a PDF it cannot open; Bedrock's own are not verified.
                if document.format == "pdf" && !crate::media::is_pdf(&bytes) {
                    return Err(model_error(format!(
                        "{at}.document.source.bytes: The PDF specified was not valid."
                    )));
                }
                Ok(())
            }
            _ => Err(malformed(format!(
                "{at}.document.source.bytes: invalid base64 blob"
            ))),
        },
        ("s3Location", Value::Object(_)) | ("text", Value::String(_)) | ("content", _) => Ok(()),
        _ => Err(malformed(format!(
            "{at}.document.source: expected bytes, s3Location, text or content"
        ))),
    }
}

/// Converse's limit on one document, as base64: 4.5 MB of bytes.
const MAX_DOCUMENT_BASE64: usize = 4_500_000 / 3 * 4;

/// Width and height from a PNG, GIF, JPEG or WebP header; `None` for anything else.
fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let be16 = |at: usize| {
        Some(u32::from(u16::from_be_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
        ])))
    };
    let le16 = |at: usize| {
        Some(u32::from(u16::from_le_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
        ])))
    };
    let be32 = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let le24 = |at: usize| {
        let b = bytes.get(at..at + 3)?;
        Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
    };
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((be32(16)?, be32(20)?));
    }
    if bytes.starts_with(b"GIF8") {
        return Some((le16(6)?, le16(8)?));
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return match bytes.get(12..16)? {
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            b"VP8L" => {
                let bits = u32::from_le_bytes(bytes.get(21..25)?.try_into().ok()?);
                Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
            }
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            _ => None,
        };
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        // Walk the segments to the first start-of-frame marker.
        let mut at = 2;
        while *bytes.get(at)? == 0xff {
            let marker = *bytes.get(at + 1)?;
            let length = usize::try_from(be16(at + 2)?).ok()?;
            if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
                return Some((be16(at + 7)?, be16(at + 5)?));
            }
            at += 2 + length;
        }
    }
    None
}

fn tool_result(
    value: Value,
    at: &str,
    i: usize,
    j: usize,
    images: &mut Vec<(String, Option<(u32, u32)>)>,
) -> Result<Message, BedrockError> {
    let result: ToolResult = typed(value, at)?;
    let path = format!(
        "messages.{}.member.content.{}.member.toolResult",
        i + 1,
        j + 1
    );
    check_tool_use_id(&result.tool_use_id, &format!("{path}.toolUseId"))?;
    if let Some(status) = result
        .status
        .as_deref()
        .filter(|s| !["success", "error"].contains(s))
    {
        return Err(constraint(
            status,
            &format!("{path}.status"),
            "Member must satisfy enum value set: [success, error]",
        ));
    }
    let mut texts = Vec::new();
    let mut attachments = 0;
    for (k, block) in result.content.into_iter().enumerate() {
        let inner = format!("{at}.toolResult.content.{k}");
        match union_member(block, &inner)? {
            (member, Value::String(text)) if member == "text" => {
                if text.trim().is_empty() {
                    return Err(blank_text("ToolResultContentBlock", &inner));
                }
                texts.push(text);
            }
            (member, json) if member == "json" => {
                if !json.is_object() {
                    return Err(BedrockError::validation(format!(
                        "The json field in the ToolResultContentBlock object at {inner} must be a \
                         JSON object."
                    )));
                }
                texts.push(json.to_string());
            }
            (member, value) if member == "image" => {
                let size = image(value, &inner, i, j)?;
                images.push((inner.clone(), size));
                attachments += 1;
            }
            (member, value) if member == "document" => {
                document(value, &inner, i, j)?;
                attachments += 1;
            }
            (member, _) if ["video", "searchResult"].contains(&member.as_str()) => {
                attachments += 1;
            }
            (member, _) => return Err(malformed(format!("{inner}: unknown member [{member}]"))),
        }
    }
    let mut message = Message::new(Role::Tool, texts.join("\n"));
    message.attachments = attachments;
    message.tool_call_id = Some(result.tool_use_id);
    Ok(message)
}

/// A reasoning block sent back. Claude checks the signature it gave the text, which is
/// the same token on every platform.
fn reasoning_content(value: Value, at: &str, claude: bool) -> Result<(), BedrockError> {
    let Value::Object(block) = value else {
        return Err(malformed(format!(
            "{at}.reasoningContent: expected an object"
        )));
    };
    match union_member(block, &format!("{at}.reasoningContent"))? {
        (member, Value::Object(text)) if member == "reasoningText" => {
            let Some(thinking) = text.get("text").and_then(Value::as_str) else {
                return Err(malformed(format!(
                    "{at}.reasoningContent.reasoningText: missing text"
                )));
            };
            if !claude {
                return Ok(());
            }
            match text.get("signature").and_then(Value::as_str) {
                None | Some("") => Err(model_error(format!(
                    "{at}.thinking.signature: Field required"
                ))),
                Some(signature) if signature != super::response::signature(thinking) => Err(
                    model_error(format!("{at}: Invalid `signature` in `thinking` block")),
                ),
                Some(_) => Ok(()),
            }
        }
        (member, Value::String(_)) if member == "redactedContent" => Ok(()),
        (member, _) => Err(malformed(format!(
            "{at}.reasoningContent: unknown member [{member}]"
        ))),
    }
}

fn tool_config(
    config: WireToolConfig,
    builder: &mut Builder,
) -> Result<(Vec<Tool>, ToolChoice), BedrockError> {
    if config.tools.is_empty() {
        return Err(constraint(
            "[]",
            "toolConfig.tools",
            "Member must have length greater than or equal to 1",
        ));
    }
    let mut tools: Vec<Tool> = Vec::new();
    for (k, tool) in config.tools.into_iter().enumerate() {
        let at = format!("toolConfig.tools.{k}");
        match union_member(tool, &at)? {
            (member, spec) if member == "toolSpec" => {
                let spec: ToolSpec = typed(spec, &at)?;
                check_tool_name(
                    &spec.name,
                    &format!("toolConfig.tools.{}.member.toolSpec.name", k + 1),
                )?;
                if tools.iter().any(|t| t.name == spec.name) {
                    return Err(BedrockError::validation(format!(
                        "The tool name {} is duplicated in toolConfig.tools. Tool names must be \
                         unique.",
                        spec.name
                    )));
                }
                if spec.description.as_deref().is_some_and(|d| d.is_empty()) {
                    return Err(constraint(
                        "",
                        &format!("toolConfig.tools.{}.member.toolSpec.description", k + 1),
                        "Member must have length greater than or equal to 1",
                    ));
                }
                let (member, schema) =
                    union_member(spec.input_schema, &format!("{at}.inputSchema"))?;
                if member != "json" || !schema.is_object() {
                    return Err(malformed(format!(
                        "{at}.toolSpec.inputSchema: expected a json object"
                    )));
                }
                let _strict = spec.strict;
                tools.push(Tool {
                    name: spec.name,
                    description: spec.description,
                    parameters: schema,
                });
            }
            // Tools come first in the prompt: a cache point here covers the tools only.
            (member, block) if member == "cachePoint" => builder.cache_point(block, &at)?,
            (member, _) if member == "systemTool" => {}
            (member, _) => return Err(malformed(format!("{at}: unknown member [{member}]"))),
        }
    }
    let choice = match config.tool_choice {
        None => ToolChoice::Auto,
        Some(choice) => match union_member(choice, "toolConfig.toolChoice")? {
            (member, _) if member == "auto" => ToolChoice::Auto,
            (member, _) if member == "any" => ToolChoice::Required,
            (member, Value::Object(tool)) if member == "tool" => {
                let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
                if !tools.iter().any(|t| t.name == name) {
                    return Err(BedrockError::validation(format!(
                        "The tool {name} specified in toolConfig.toolChoice is not defined in \
                         toolConfig.tools."
                    )));
                }
                ToolChoice::Named(name.to_owned())
            }
            (member, _) => {
                return Err(malformed(format!(
                    "toolConfig.toolChoice: unknown member [{member}]"
                )));
            }
        },
    };
    Ok((tools, choice))
}

fn inference(config: InferenceConfig) -> Result<(Option<u64>, Vec<String>), BedrockError> {
    if let Some(max) = config.max_tokens
        && max < 1
    {
        return Err(constraint(
            &max.to_string(),
            "inferenceConfig.maxTokens",
            "Member must have value greater than or equal to 1",
        ));
    }
    for (name, value) in [("temperature", config.temperature), ("topP", config.top_p)] {
        if let Some(value) = value
            && !(0.0..=1.0).contains(&value)
        {
            let bound = if value < 0.0 {
                "Member must have value greater than or equal to 0"
            } else {
                "Member must have value less than or equal to 1"
            };
            return Err(constraint(
                &value.to_string(),
                &format!("inferenceConfig.{name}"),
                bound,
            ));
        }
    }
    let stops = config.stop_sequences.unwrap_or_default();
    if stops.len() > 2500 {
        return Err(constraint(
            "[...]",
            "inferenceConfig.stopSequences",
            "Member must have length less than or equal to 2500",
        ));
    }
    if let Some(k) = stops.iter().position(String::is_empty) {
        return Err(constraint(
            "",
            &format!("inferenceConfig.stopSequences.{}.member", k + 1),
            "Member must have length greater than or equal to 1",
        ));
    }
    Ok((config.max_tokens.map(i64::unsigned_abs), stops))
}

fn output_format(format: WireOutputFormat) -> Result<OutputFormat, BedrockError> {
    if format.kind != "json_schema" {
        return Err(constraint(
            &format.kind,
            "outputConfig.textFormat.type",
            "Member must satisfy enum value set: [json_schema]",
        ));
    }
    let (member, definition) = union_member(format.structure, "outputConfig.textFormat.structure")?;
    if member != "jsonSchema" {
        return Err(malformed(format!(
            "outputConfig.textFormat.structure: unknown member [{member}]"
        )));
    }
    let definition: JsonSchemaDefinition =
        typed(definition, "outputConfig.textFormat.structure.jsonSchema")?;
    let _ = (definition.name, definition.description);
    match serde_json::from_str::<Value>(&definition.schema) {
        Ok(schema @ Value::Object(_)) => Ok(OutputFormat::JsonSchema(schema)),
        _ => Err(BedrockError::validation(
            "The JSON schema in outputConfig.textFormat.structure.jsonSchema.schema is not a \
             valid JSON object. Provide the schema as a JSON string and try again.",
        )),
    }
}

/// Claude's `thinking.budget_tokens`, as the neutral effort whose reasoning tokens it buys.
fn reasoning(fields: Option<&Map<String, Value>>) -> Effort {
    let budget = fields
        .and_then(|f| f.get("thinking"))
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled"))
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    match budget {
        None => Effort::None,
        Some(b) if b >= 16_384 => Effort::High,
        Some(b) if b >= 4096 => Effort::Medium,
        Some(_) => Effort::Low,
    }
}

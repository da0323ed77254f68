//! Canonical chat request → Converse request.
//!
//! Rules, in the order they bite (providers.md §5.3, §8):
//! - system and developer text goes to top-level `system`, concatenated in order (a message's
//!   cache breakpoint closes a block and adds a `cachePoint` after it);
//! - turns alternate and start with `user`: consecutive same-role messages merge, tool results
//!   become `toolResult` blocks of one user turn (ahead of any user text in it), and a
//!   conversation that opens with the assistant gets a placeholder user turn first;
//! - no blank text blocks, ever (blank assistant text beside tool calls is dropped, an empty tool
//!   result is sent with empty content);
//! - `toolConfig` whenever tools are offered or the history holds tool blocks, since Bedrock
//!   rejects tool blocks without it;
//! - tool-call ids are sanitized by one deterministic function on both sides of a conversation.

use serde_json::{Map, Value, json};

use super::wire::{self, CachePoint, ContentBlock, Role, SystemBlock};
use crate::chat::{
    ChatRequest, ContentPart, Family, ImageSource, Message, ResponseFormat, Role as ChatRole,
    ToolChoice,
};
use crate::error::{Error, Result};

/// The user turn put before a conversation that opens with the assistant (or has no turns),
/// since Converse rejects both. Non-blank, as every text block must be.
pub(crate) const OPENING_PLACEHOLDER: &str = "(continue)";
/// Thinking budgets for OpenAI's `reasoning_effort` levels, sent as Claude's `thinking` field.
const EFFORT_BUDGETS: &[(&str, u32)] = &[
    ("low", 1024),
    ("medium", 4096),
    ("high", 16_384),
    ("xhigh", 32_768),
    ("max", 32_768),
];
/// Claude's smallest thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;
/// Room for the answer itself when the client set no output cap but asked for thinking (whose
/// budget must stay below `maxTokens`).
const ANSWER_ALLOWANCE: u32 = 4096;
/// Bedrock's `ToolUseId` constraint: `^[a-zA-Z0-9_.:-]+$`, 1 to 64 characters.
const MAX_TOOL_USE_ID: usize = 64;

/// Encodes a canonical request as a Converse body (the model id goes in the URL).
pub(crate) fn encode(request: &ChatRequest) -> Result<wire::ConverseRequest> {
    encode_for(request, "")
}

/// As [`encode`], for the model `target`: Claude models get only signed reasoning back.
pub(crate) fn encode_for(request: &ChatRequest, target: &str) -> Result<wire::ConverseRequest> {
    let claude = is_claude(target);
    let mut system = SystemBuilder::default();
    let mut turns = Turns::default();
    refuse_untranslatable(request)?;
    for (i, message) in request.messages.iter().enumerate() {
        match message.role {
            ChatRole::System | ChatRole::Developer => {
                system.push(&message.text_content(), message.cache_breakpoint);
            }
            ChatRole::User => {
                let blocks = user_blocks(i, message)?;
                turns.push(Role::User, blocks, message.cache_breakpoint);
            }
            ChatRole::Assistant => {
                let blocks = assistant_blocks(i, message, claude)?;
                turns.push(Role::Assistant, blocks, message.cache_breakpoint);
            }
            ChatRole::Tool => {
                let block = tool_result(i, message)?;
                turns.push(Role::User, vec![block], message.cache_breakpoint);
            }
        }
    }
    let messages = turns.finish();
    let system = system.finish();
    refuse_excess_cache_points(&system, &messages)?;
    let has_tool_blocks = messages
        .iter()
        .any(|m| m.content.iter().any(ContentBlock::is_tool_block));
    let (inference_config, additional) = inference(request)?;
    Ok(wire::ConverseRequest {
        tool_config: tool_config(request, &messages, has_tool_blocks),
        messages,
        system,
        inference_config,
        additional_model_request_fields: additional,
        output_config: output_config(request.response_format.as_ref()),
    })
}

/// Claude on Bedrock refuses an image whose base64 text is over 5 MiB (3.75 MiB of image).
const MAX_IMAGE_BASE64: usize = 5 * 1024 * 1024;
/// Cache points Bedrock takes in one request (system, tools and messages together).
const MAX_CACHE_POINTS: usize = 4;

/// More cache points than Bedrock takes is a 400 there (not failed over); dropping some would
/// silently change what gets cached, so the deployment refuses the request instead.
fn refuse_excess_cache_points(system: &[SystemBlock], messages: &[wire::Message]) -> Result<()> {
    let in_system = system
        .iter()
        .filter(|b| matches!(b, SystemBlock::CachePoint(_)))
        .count();
    let in_messages = messages
        .iter()
        .flat_map(|m| &m.content)
        .filter(|b| matches!(b, ContentBlock::CachePoint(_)))
        .count();
    let count = in_system + in_messages;
    if count > MAX_CACHE_POINTS {
        return Err(Error::invalid_field(
            "messages",
            format!(
                "Bedrock takes at most {MAX_CACHE_POINTS} cache points in one request; this one \
                 marks {count}."
            ),
        ));
    }
    Ok(())
}

/// Fields that would change the answer and that Converse cannot express are refused, naming the
/// field; fields that do not change it (`seed`, `user`, `metadata`) are dropped.
fn refuse_untranslatable(request: &ChatRequest) -> Result<()> {
    if let Some(key) = request.openai_passthrough.keys().next() {
        return Err(Error::invalid_field(
            key,
            format!("The Bedrock Converse API does not support '{key}'."),
        )
        .with_code("unsupported_parameter"));
    }
    let sampling = &request.sampling;
    for (name, value) in [
        ("presence_penalty", sampling.presence_penalty),
        ("frequency_penalty", sampling.frequency_penalty),
    ] {
        if value.is_some_and(|v| v != 0.0) {
            return Err(Error::invalid_field(
                name,
                format!("The Bedrock Converse API has no '{name}'; remove it or set it to 0."),
            )
            .with_code("unsupported_parameter"));
        }
    }
    crate::dialects::rules::temperature_within_one(sampling.temperature, "Bedrock")?;
    if sampling.seed.is_some() {
        tracing::debug!("dropping `seed`: Bedrock Converse has no seed");
    }
    if request.parallel_tool_calls == Some(false) {
        tracing::debug!("dropping `parallel_tool_calls: false`: Bedrock Converse has no such knob");
    }
    if request.user.is_some() || request.metadata.is_some() {
        tracing::debug!("dropping `user` and `metadata`: they do not reach Bedrock");
    }
    Ok(())
}

/// Accumulates system text into blocks, cut at cache breakpoints.
#[derive(Default)]
struct SystemBuilder {
    blocks: Vec<SystemBlock>,
    pending: Vec<String>,
}

impl SystemBuilder {
    fn push(&mut self, text: &str, cache_breakpoint: bool) {
        if !text.trim().is_empty() {
            self.pending.push(text.to_owned());
        }
        if cache_breakpoint {
            self.flush();
            if !self.blocks.is_empty() {
                self.blocks
                    .push(SystemBlock::CachePoint(CachePoint::default_point()));
            }
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.blocks
                .push(SystemBlock::Text(self.pending.join("\n\n")));
            self.pending.clear();
        }
    }

    fn finish(mut self) -> Vec<SystemBlock> {
        self.flush();
        self.blocks
    }
}

/// Alternating turns, merging consecutive same-role messages.
#[derive(Default)]
struct Turns {
    turns: Vec<wire::Message>,
}

impl Turns {
    fn push(&mut self, role: Role, mut blocks: Vec<ContentBlock>, cache_breakpoint: bool) {
        if blocks.is_empty() {
            return;
        }
        if cache_breakpoint {
            blocks.push(ContentBlock::CachePoint(CachePoint::default_point()));
        }
        match self.turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => self.turns.push(wire::Message {
                role,
                content: blocks,
            }),
        }
    }

    fn finish(mut self) -> Vec<wire::Message> {
        for turn in &mut self.turns {
            if turn.role == Role::User {
                results_first(&mut turn.content);
            }
        }
        if self.turns.first().is_none_or(|t| t.role != Role::User) {
            self.turns.insert(
                0,
                wire::Message {
                    role: Role::User,
                    content: vec![ContentBlock::Text(OPENING_PLACEHOLDER.to_owned())],
                },
            );
        }
        self.turns
    }
}

/// Puts a user turn's `toolResult` blocks ahead of its other blocks (Bedrock wants the results
/// of the previous assistant turn first), keeping each cache point behind the block it follows.
fn results_first(blocks: &mut Vec<ContentBlock>) {
    let mut groups: Vec<Vec<ContentBlock>> = Vec::new();
    for block in blocks.drain(..) {
        match (&block, groups.last_mut()) {
            (ContentBlock::CachePoint(_), Some(group)) => group.push(block),
            _ => groups.push(vec![block]),
        }
    }
    let (results, others): (Vec<_>, Vec<_>) = groups
        .into_iter()
        .partition(|group| group.first().is_some_and(ContentBlock::is_tool_result));
    blocks.extend(results.into_iter().chain(others).flatten());
}

/// Makers of one kind of Converse content (a message's blocks, a tool result's content) from a
/// text, an image and a document.
type Makers<B> = (
    fn(String) -> B,
    fn(wire::ImageBlock) -> B,
    fn(wire::DocumentBlock) -> B,
);

/// Message `i`'s parts as the content `makers` make: blank text is left out and audio refused.
/// An image is named by its part's path and `image_field`.
fn converse_content<B>(
    i: usize,
    message: &Message,
    image_field: &str,
    (text_block, image_block, document_block): Makers<B>,
) -> Result<Vec<B>> {
    let mut content = Vec::new();
    for (j, part) in message.content.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match part {
            ContentPart::Text { text } => {
                if !text.trim().is_empty() {
                    content.push(text_block(text.clone()));
                }
            }
            ContentPart::Image { source, .. } => {
                let field = format!("{param}{image_field}");
                content.push(image_block(image(source, &field)?));
            }
            ContentPart::Document {
                media_type,
                data,
                filename,
            } => content.push(document_block(document(
                media_type,
                data,
                filename.as_deref(),
                &param,
            )?)),
            ContentPart::Audio { .. } => return Err(no_audio(&param)),
        }
    }
    Ok(content)
}

fn user_blocks(i: usize, message: &Message) -> Result<Vec<ContentBlock>> {
    let mut blocks = converse_content(
        i,
        message,
        ".image_url.url",
        (
            ContentBlock::Text,
            ContentBlock::Image,
            ContentBlock::Document,
        ),
    )?;
    // Converse refuses documents without a text block ("A text block must be included when
    // using documents"), which other dialects allow: a neutral one is added.
    let documents = blocks
        .iter()
        .any(|b| matches!(b, ContentBlock::Document(_)));
    if documents && !blocks.iter().any(|b| matches!(b, ContentBlock::Text(_))) {
        blocks.push(ContentBlock::Text(DOCUMENT_PLACEHOLDER.to_owned()));
    }
    Ok(blocks)
}

/// The text sent beside documents that came without any.
const DOCUMENT_PLACEHOLDER: &str = "(document attached)";

/// Whether a model id (base, inference profile or ARN naming it) is one of Anthropic's.
fn is_claude(target: &str) -> bool {
    let target = target.to_ascii_lowercase();
    target.contains("anthropic.") || target.contains("claude")
}

fn assistant_blocks(i: usize, message: &Message, claude: bool) -> Result<Vec<ContentBlock>> {
    // Reasoning comes first, as the model produced it; other families' blocks are signed for
    // their own provider and would be rejected (or worse, misread) here.
    let mut blocks: Vec<ContentBlock> = message
        .reasoning
        .iter()
        .filter_map(|r| reasoning_content(r, claude))
        .map(ContentBlock::ReasoningContent)
        .collect();
    let text = message.text_content();
    if !text.trim().is_empty() {
        blocks.push(ContentBlock::Text(text));
    } else if let Some(refusal) = message.refusal.as_ref().filter(|r| !r.trim().is_empty()) {
        blocks.push(ContentBlock::Text(refusal.clone()));
    }
    for (j, call) in message.tool_calls.iter().enumerate() {
        blocks.push(ContentBlock::ToolUse(wire::ToolUse {
            tool_use_id: tool_use_id(&call.id),
            name: call.name.clone(),
            input: tool_input(&call.arguments, i, j)?,
        }));
    }
    Ok(blocks)
}

/// A reasoning block as Converse's `reasoningContent`. Claude's thinking (from any platform:
/// the signature is the same token) goes back as `reasoningText` with its signature, or as
/// `redactedContent`. Unsigned thinking is dropped for Claude, which refuses it
/// ("thinking.signature: Field required"), and sent without the member to other models, which
/// refuse an empty one.
fn reasoning_content(reasoning: &crate::chat::Reasoning, claude: bool) -> Option<Value> {
    match reasoning.family {
        Family::Bedrock => Some(reasoning.data.clone()),
        Family::Anthropic => {
            let data = &reasoning.data;
            match data.get("type").and_then(Value::as_str) {
                Some("thinking") => {
                    let text = data.get("thinking").and_then(Value::as_str)?;
                    let signature = data
                        .get("signature")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty());
                    match signature {
                        Some(signature) => {
                            Some(json!({"reasoningText": {"text": text, "signature": signature}}))
                        }
                        None if claude => None,
                        None => Some(json!({"reasoningText": {"text": text}})),
                    }
                }
                Some("redacted_thinking") => data
                    .get("data")
                    .and_then(Value::as_str)
                    .map(|d| json!({"redactedContent": d})),
                _ => None,
            }
        }
        Family::OpenAi | Family::Gemini => None,
    }
}

fn tool_result(i: usize, message: &Message) -> Result<ContentBlock> {
    let content = converse_content(
        i,
        message,
        "",
        (
            wire::ToolResultContent::Text,
            wire::ToolResultContent::Image,
            wire::ToolResultContent::Document,
        ),
    )?;
    Ok(ContentBlock::ToolResult(wire::ToolResult {
        tool_use_id: tool_use_id(message.tool_call_id.as_deref().unwrap_or_default()),
        content,
        status: message.tool_error.then_some("error"),
    }))
}

/// A tool call's arguments as the JSON object Converse wants. Empty text means no arguments;
/// anything else must parse, or the history is refused rather than guessed at.
fn tool_input(arguments: &str, i: usize, j: usize) -> Result<Value> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    let param = format!("messages[{i}].tool_calls[{j}].function.arguments");
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(Error::invalid_field(
            &param,
            format!("Invalid '{param}': Bedrock needs tool-call arguments to be a JSON object."),
        )),
        Err(e) => Err(Error::invalid_field(
            &param,
            format!(
                "Invalid '{param}': Bedrock needs tool-call arguments as a JSON object, and these \
                 are not valid JSON ({e})."
            ),
        )),
    }
}

/// Maps a tool-call id onto Bedrock's `^[a-zA-Z0-9_.:-]+$`, at most 64 characters. Ids that
/// already fit (Bedrock's own `tooluse_...`, OpenAI's `call_...`) pass unchanged; others keep
/// their valid characters and get a hash of the original, so two ids that differ only in
/// characters Bedrock forbids do not collide. Deterministic, so the assistant's `toolUse` and the
/// later `toolResult` map to the same id without any state.
pub fn tool_use_id(id: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if !id.is_empty() && id.len() <= MAX_TOOL_USE_ID && id.chars().all(valid) {
        return id.to_owned();
    }
    let hash = format!("{:016x}", fnv1a(id.as_bytes()));
    let cleaned: String = id
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .take(MAX_TOOL_USE_ID - hash.len() - 1)
        .collect();
    if cleaned.is_empty() {
        format!("tooluse_{hash}")
    } else {
        format!("{cleaned}_{hash}")
    }
}

/// FNV-1a: a specified, toolchain-independent hash, so sanitized ids never change.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An inline image; Converse takes no URLs (only bytes or S3), and fetching a URL on a client's
/// behalf is not done here.
fn image(source: &ImageSource, param: &str) -> Result<wire::ImageBlock> {
    match source {
        ImageSource::Url(_) => Err(Error::invalid_field(
            param,
            "Bedrock needs inline images: send the image as a base64 data URL \
             (data:image/png;base64,...) instead of an http(s) URL.",
        )
        .with_code("unsupported_image_url")),
        ImageSource::Base64 { media_type, data } => {
            let format = match media_type.to_ascii_lowercase().as_str() {
                "image/png" => "png",
                "image/jpeg" | "image/jpg" => "jpeg",
                "image/gif" => "gif",
                "image/webp" => "webp",
                other => {
                    return Err(Error::invalid_field(
                        param,
                        format!("Bedrock accepts png, jpeg, gif and webp images, not '{other}'."),
                    ));
                }
            };
            within(param, data, MAX_IMAGE_BASE64, "images", "3.75 MB")?;
            Ok(wire::ImageBlock {
                format,
                source: wire::ImageSource::Bytes(data.clone()),
            })
        }
    }
}

/// Refuses base64 `data` over `max` bytes: Converse takes `what` of at most `size`.
fn within(param: &str, data: &str, max: usize, what: &str, size: &str) -> Result<()> {
    if data.len() > max {
        return Err(Error::invalid_field(
            param,
            format!(
                "Bedrock takes {what} of at most {size} ({max} bytes as base64); this one is {} \
                 bytes as base64.",
                data.len()
            ),
        ));
    }
    Ok(())
}

/// Converse's audio blocks are for a few models and formats of their own; the gateway does not
/// send them, so a deployment on Converse refuses audio and routing moves on.
fn no_audio(param: &str) -> Error {
    Error::invalid_field(
        param,
        "Bedrock Converse deployments take no audio input through this gateway: this model's \
         deployment cannot read the request's audio.",
    )
}

/// Converse's document formats by media type.
const DOCUMENT_FORMATS: &[(&str, &str)] = &[
    ("application/pdf", "pdf"),
    ("text/csv", "csv"),
    ("application/msword", "doc"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    ("application/vnd.ms-excel", "xls"),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    ("text/html", "html"),
    ("text/plain", "txt"),
    ("text/markdown", "md"),
];

/// Converse takes documents of at most 4.5 MB, i.e. this much base64.
pub(crate) const MAX_DOCUMENT_BASE64: usize = 4_500_000 / 3 * 4;

/// An inline document, named as Converse requires (see [`document_name`]).
fn document(
    media_type: &str,
    data: &str,
    filename: Option<&str>,
    param: &str,
) -> Result<wire::DocumentBlock> {
    let format = DOCUMENT_FORMATS
        .iter()
        .find(|(media, _)| media.eq_ignore_ascii_case(media_type))
        .map(|(_, format)| *format)
        .ok_or_else(|| {
            Error::invalid_field(
                param,
                format!(
                    "Bedrock reads documents of type pdf, csv, doc, docx, xls, xlsx, html, txt \
                     or md, not '{media_type}'."
                ),
            )
        })?;
    within(param, data, MAX_DOCUMENT_BASE64, "documents", "4.5 MB")?;
    Ok(wire::DocumentBlock {
        format,
        name: document_name(filename),
        source: wire::ImageSource::Bytes(data.to_owned()),
    })
}

/// Longest document name Converse takes.
const MAX_DOCUMENT_NAME: usize = 200;

/// A file name as a Converse document name, which may hold only letters, digits, single
/// whitespace characters, hyphens, parentheses and square brackets: the extension goes (the
/// format says it), any other character becomes a hyphen, runs of spaces become one. Absent or
/// nothing left: `document`.
pub fn document_name(filename: Option<&str>) -> String {
    let stem = filename
        .map(|name| match name.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem,
            _ => name,
        })
        .unwrap_or_default();
    let mut name = String::new();
    for c in stem.chars() {
        let c = if c.is_whitespace() {
            ' '
        } else if c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
            c
        } else {
            '-'
        };
        if c == ' ' && (name.is_empty() || name.ends_with(' ')) {
            continue;
        }
        if name.len() == MAX_DOCUMENT_NAME {
            break;
        }
        name.push(c);
    }
    let name = name.trim_end();
    if name.is_empty() {
        "document".to_owned()
    } else {
        name.to_owned()
    }
}

fn tool_config(
    request: &ChatRequest,
    messages: &[wire::Message],
    has_tool_blocks: bool,
) -> Option<wire::ToolConfig> {
    let choice = request.tool_choice.as_ref();
    // `none` is honoured exactly by not offering the tools, unless the history holds tool
    // blocks: then Bedrock requires a toolConfig and the tools go without a toolChoice.
    let offered =
        !request.tools.is_empty() && (choice != Some(&ToolChoice::None) || has_tool_blocks);
    if offered {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                wire::Tool::ToolSpec(wire::ToolSpec {
                    name: tool.name.clone(),
                    description: tool.description.clone().filter(|d| !d.trim().is_empty()),
                    input_schema: wire::InputSchema::Json(
                        tool.parameters
                            .clone()
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                    ),
                    strict: tool.strict,
                })
            })
            .collect();
        let tool_choice = match choice {
            None | Some(ToolChoice::None) => None,
            Some(ToolChoice::Auto) => Some(wire::ToolChoice::Auto(wire::Empty {})),
            Some(ToolChoice::Required) => Some(wire::ToolChoice::Any(wire::Empty {})),
            Some(ToolChoice::Function(name)) => Some(wire::ToolChoice::Tool(wire::SpecificTool {
                name: name.clone(),
            })),
        };
        return Some(wire::ToolConfig { tools, tool_choice });
    }
    if !has_tool_blocks {
        return None;
    }
    // History with tool blocks but no tools offered: minimal specs for the names it uses.
    let mut names: Vec<&str> = Vec::new();
    for block in messages.iter().flat_map(|m| &m.content) {
        if let ContentBlock::ToolUse(call) = block
            && !names.contains(&call.name.as_str())
        {
            names.push(&call.name);
        }
    }
    if names.is_empty() {
        // Only orphaned results: any valid spec satisfies the requirement.
        names.push("tool");
    }
    let tools = names
        .into_iter()
        .map(|name| {
            wire::Tool::ToolSpec(wire::ToolSpec {
                name: name.to_owned(),
                description: None,
                input_schema: wire::InputSchema::Json(json!({"type": "object", "properties": {}})),
                strict: None,
            })
        })
        .collect();
    Some(wire::ToolConfig {
        tools,
        tool_choice: None,
    })
}

/// What [`inference`] builds.
type Inference = (Option<wire::InferenceConfig>, Option<Map<String, Value>>);

/// `inferenceConfig`, and the model-specific extras that go in `additionalModelRequestFields`.
fn inference(request: &ChatRequest) -> Result<Inference> {
    let mut config = wire::InferenceConfig {
        max_tokens: request.max_tokens,
        temperature: request.sampling.temperature,
        top_p: request.sampling.top_p,
        stop_sequences: request
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
    };
    let mut additional = Map::new();
    if let Some(top_k) = request.sampling.top_k {
        // Honoured by the models that have it (Claude, Mistral...); others reject it upstream.
        additional.insert("top_k".into(), json!(top_k));
    }
    if let Some(budget) = thinking_budget(request)? {
        // Claude's extended thinking, with Claude's rules on what may go with it.
        crate::dialects::rules::claude_thinking_compatible(request)?;
        // It counts against `maxTokens`.
        if config.max_tokens.is_none() {
            config.max_tokens = Some(budget.saturating_add(ANSWER_ALLOWANCE));
        }
        additional.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    Ok((
        (!config.is_empty()).then_some(config),
        (!additional.is_empty()).then_some(additional),
    ))
}

/// The thinking budget asked for, explicitly or as an effort level; it must leave room below
/// the output cap, as it does in both OpenAI's and Claude's accounting.
fn thinking_budget(request: &ChatRequest) -> Result<Option<u32>> {
    let (budget, param) = match (
        request.reasoning_budget,
        request.reasoning_effort.as_deref(),
    ) {
        (Some(budget), _) => (budget, "reasoning_budget"),
        (None, None | Some("none" | "minimal")) => return Ok(None),
        (None, Some(effort)) => match EFFORT_BUDGETS.iter().find(|(name, _)| *name == effort) {
            Some((_, budget)) => (*budget, "reasoning_effort"),
            None => {
                return Err(Error::invalid_field(
                    "reasoning_effort",
                    format!("Invalid 'reasoning_effort': '{effort}' has no Bedrock equivalent."),
                ));
            }
        },
    };
    let budget = match request.max_tokens {
        Some(max) if max <= budget => max / 2,
        _ => budget,
    };
    if budget < MIN_THINKING_BUDGET {
        return Err(Error::invalid_field(
            param,
            format!(
                "Reasoning on Bedrock needs a thinking budget of at least {MIN_THINKING_BUDGET} \
                 tokens below max_tokens; raise max_tokens or drop '{param}'."
            ),
        ));
    }
    Ok(Some(budget))
}

/// Structured output: the JSON Schema travels as a string. JSON mode is the schema `object`.
fn output_config(format: Option<&ResponseFormat>) -> Option<wire::OutputConfig> {
    let (schema, name, description) = match format? {
        ResponseFormat::Text => return None,
        ResponseFormat::JsonObject => (json!({"type": "object"}), None, None),
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            ..
        } => (
            schema.clone().unwrap_or_else(|| json!({"type": "object"})),
            Some(name.clone()),
            description.clone(),
        ),
    };
    Some(wire::OutputConfig {
        text_format: wire::OutputFormat {
            kind: "json_schema",
            structure: wire::OutputStructure::JsonSchema(wire::JsonSchema {
                schema: schema.to_string(),
                name,
                description,
            }),
        },
    })
}

//! The OpenAI Responses API as an ingress dialect: `CreateResponse` bodies decode into the
//! canonical [`ChatRequest`], canonical answers encode into `Response` objects, and canonical
//! stream events into the `response.*` SSE event sequence ([`StreamEncoder`]). Any deployment of
//! any provider can then serve clients built on the Responses API (the OpenAI Agents SDK).
//!
//! Input items map to canonical messages: `message` items by role, consecutive `function_call`
//! items join the assistant turn before them (as one turn with several tool calls, which is
//! what Anthropic and Bedrock require), `function_call_output` items become tool results tied
//! by `call_id`. Reasoning items sent back by clients are dropped: the router restores signed
//! reasoning itself (see `reasoning_memory`), and our answers carry none.
//!
//! What coding agents such as Codex send beyond that, and what becomes of it on every upstream:
//! - `client_metadata` (the client's telemetry, an object of strings), `prompt_cache_key` and the
//!   other OpenAI service hints (see `IGNORED_FIELDS`): checked, sent verbatim to Responses
//!   upstreams, left behind elsewhere (no other dialect has them). `prompt_cache_key` also keys
//!   the router's prompt-cache affinity, so a session stays on the deployment holding its cache.
//! - `include`: any documented value is accepted; Responses upstreams are always asked for
//!   `reasoning.encrypted_content` (nothing is stored upstream), the other values name outputs
//!   we never produce (hosted tools, logprobs), so they change nothing anywhere.
//! - `reasoning.summary` (`auto`, `concise`, `detailed`): accepted, echoed, not forwarded; our
//!   answers carry no reasoning summary. `reasoning.effort` is translated as everywhere.
//! - `namespace` tool groups: each function becomes the canonical tool `{namespace}__{name}`
//!   (valid on every provider), and a call of it goes back as a `function_call` item with
//!   `namespace` and `name` set, as OpenAI reports it; items handed back join the two again.
//! - `custom` (freeform) tools such as Codex's `apply_patch`: a function taking one string
//!   `input` (the grammar, if any, in its description) on every upstream; calls go back as
//!   `custom_tool_call` items with the raw input, and come back from the client the same way.
//! - Hosted tools (`web_search`, `tool_search`, `file_search`, ...): sent verbatim to Responses
//!   upstreams; any other refuses the request naming `tools[i].type`, or serves it without them
//!   where the route says `hosted_tools = "drop"`.
//! - A field this gateway does not know: refused in OpenAI's words, unless the route says
//!   `unknown_fields = "pass"`; then it goes verbatim to Responses upstreams and no other.

mod egress;
mod stream;
pub mod wire;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use egress::{ResponsesEgress, ResponsesStreamDecoder, decode_response, encode_request};
pub use stream::{Accumulator, StreamEncoder};

use super::openai::{decode_file_data, decode_image_url, uploaded_file, valid_function_name};
use super::{parse_json_object, typed};
use crate::chat::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, Message, Passthrough, ResponseFormat,
    Role, Sampling, Tool, ToolCall, ToolChoice, Usage, WireDialect,
};
use crate::error::{Error, ErrorKind, Result};

/// Request fields we translate or act on.
const FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "max_output_tokens",
    "previous_response_id",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "user",
    "metadata",
    "truncation",
    "background",
    "include",
    "client_metadata",
];

/// The documented `include` values (`IncludeEnum`). Each is accepted; none changes what we
/// answer: Responses upstreams are always asked for `reasoning.encrypted_content` (nothing is
/// stored upstream), and the others name outputs of hosted tools or logprobs we never produce.
const INCLUDABLE: &[&str] = &[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
];

/// Tools OpenAI's models use on OpenAI's side (`tool_search` loads deferred tools there, even when
/// the client runs the search): kept verbatim for Responses upstreams; every other upstream refuses
/// the request by naming the tool, or serves it without them where the route says
/// `hosted_tools = "drop"`. (Client-run built-ins such as `local_shell` fall under the general
/// "only function tools" refusal; `custom` tools are translated.)
const HOSTED_TOOLS: &[&str] = &[
    "tool_search",
    "computer_use_preview",
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "web_search_2025_08_26",
    "file_search",
    "code_interpreter",
    "image_generation",
    "mcp",
];

/// Fields that only tune OpenAI's own service (caching hints, tiers, moderation): accepted so
/// clients that always send them work, and ignored, since no other provider can honour them.
const IGNORED_FIELDS: &[&str] = &[
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "safety_identifier",
    "top_logprobs",
    "max_tool_calls",
    "moderation",
    "context_management",
];

/// Fields whose meaning depends on OpenAI-hosted state we do not have: refused when set.
const UNSUPPORTED_FIELDS: &[&str] = &["conversation", "prompt"];

/// What a `Response` object echoes of its request, and what the gateway needs beyond the
/// canonical request (its id, whether to store it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Params {
    pub id: String,
    pub created_at: u64,
    pub instructions: Option<String>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub temperature: f64,
    pub top_p: f64,
    pub max_output_tokens: Option<u32>,
    pub previous_response_id: Option<String>,
    pub reasoning: Value,
    pub store: bool,
    pub text: Value,
    pub truncation: String,
    pub metadata: Map<String, Value>,
    pub user: Option<String>,
    /// Functions of `namespace` tool groups, by the flat name the model calls them by
    /// (`{namespace}__{name}`): their calls go back to the client as `namespace` and `name`.
    #[serde(default)]
    pub namespaced: std::collections::BTreeMap<String, (String, String)>,
    /// Names of the request's freeform (`custom`) tools: their calls go back to the client as
    /// `custom_tool_call` items carrying the raw `input`.
    #[serde(default)]
    pub custom_tools: std::collections::BTreeSet<String>,
}

impl Params {
    /// Writes a call's name into a `function_call` item (or event): a namespaced function's
    /// flat name splits back into its `namespace` and `name`.
    pub(crate) fn name_call(&self, item: &mut Value) {
        let flat = item.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some((namespace, name)) = self.namespaced.get(flat) {
            item["namespace"] = json!(namespace);
            item["name"] = json!(name);
        }
    }
}

impl Params {
    /// The output item of a finished (or, with `status` `in_progress`, a starting) tool call: a
    /// `custom_tool_call` with the raw input for a freeform tool, else a `function_call`.
    pub(crate) fn call_item(&self, id: &str, status: &str, call: &ToolCall) -> Value {
        if self.custom_tools.contains(&call.name) {
            return json!({
                "id": id,
                "type": "custom_tool_call",
                "status": status,
                "call_id": call.id,
                "name": call.name,
                "input": custom_input(&call.arguments),
            });
        }
        let mut item = json!({
            "id": id,
            "type": "function_call",
            "status": status,
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments,
        });
        self.name_call(&mut item);
        item
    }
}

/// The function a freeform (`custom`) tool is offered to other models as: one string argument,
/// `input`, holding what the tool takes, with the tool's grammar (if any) in the description.
fn custom_as_function(at: &str, value: &Value) -> Result<(Tool, String)> {
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::invalid_field(
                format!("{at}.name"),
                format!("Missing required parameter: '{at}.name'."),
            )
        })?
        .to_owned();
    if !valid_function_name(&name) {
        return Err(Error::invalid_field(
            format!("{at}.name"),
            format!(
                "Invalid '{at}.name': string does not match pattern. Expected a string that \
                 matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
            ),
        ));
    }
    let mut description = value
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let format = value.get("format");
    match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
        None | Some("text") => {}
        Some("grammar") => {
            let syntax = format
                .and_then(|f| f.get("syntax"))
                .and_then(Value::as_str)
                .unwrap_or("lark");
            let definition = format
                .and_then(|f| f.get("definition"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            description.push_str(&format!(
                "\n\nThe `input` must follow this {syntax} grammar:\n{definition}"
            ));
        }
        Some(other) => {
            return Err(Error::invalid_field(
                format!("{at}.format.type"),
                format!(
                    "Invalid value for '{at}.format.type': expected 'text' or 'grammar', got \
                     '{other}'."
                ),
            ));
        }
    }
    let tool = Tool {
        name: name.clone(),
        description: Some(description),
        parameters: Some(json!({
            "type": "object",
            "properties": {"input": {"type": "string", "description": "The tool's whole input, verbatim."}},
            "required": ["input"],
            "additionalProperties": false,
        })),
        strict: Some(true),
    };
    Ok((tool, name))
}

/// The raw input of a freeform tool's call: the `input` string of the function arguments the
/// model produced, or the arguments themselves if they are not such an object.
pub(crate) fn custom_input(arguments: &str) -> String {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .and_then(|v| v.get("input").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| arguments.to_owned())
}

/// A freeform tool's raw input as the function arguments other models produce for it.
fn custom_arguments(input: &str) -> String {
    json!({ "input": input }).to_string()
}

/// The name a namespaced function is offered to the model by: one word valid for every
/// provider's function names.
fn flat_name(namespace: &str, name: &str) -> String {
    format!("{namespace}__{name}")
}

/// A decoded `POST /v1/responses` body. The conversation is assembled by
/// [`IngressResponse::chat_request`] once the previous response's history (if any) is loaded.
#[derive(Debug)]
pub struct IngressResponse {
    pub params: Params,
    /// The messages this request adds to the conversation.
    pub input: Vec<Message>,
    /// The same input as Responses items, each with an id: what
    /// `GET /v1/responses/{id}/input_items` lists (see [`input_items`]).
    pub input_items: Vec<Value>,
    pub stream: bool,
    template: ChatRequest,
}

impl IngressResponse {
    pub fn previous_response_id(&self) -> Option<&str> {
        self.params.previous_response_id.as_deref()
    }

    /// The logical model asked for.
    pub fn model(&self) -> &str {
        &self.template.model
    }

    /// The canonical request: this request's instructions (never those of earlier responses),
    /// then the stored `history`, then this request's input.
    pub fn chat_request(&self, history: &[Message]) -> Result<ChatRequest> {
        let mut request = self.template.clone();
        if let Some(instructions) = &self.params.instructions {
            request
                .messages
                .push(Message::text(Role::System, instructions.clone()));
        }
        request.messages.extend(history.iter().cloned());
        request.messages.extend(self.input.iter().cloned());
        if !request.messages.iter().any(|m| m.role != Role::System) {
            return Err(Error::invalid_field(
                "input",
                "Missing required parameter: 'input'.",
            ));
        }
        Ok(request)
    }
}

/// The refusal of a field this gateway does not know, as OpenAI words it; given when the route
/// keeps `unknown_fields = "reject"`.
pub fn unknown_field_error(key: &str) -> Error {
    Error::invalid_field(
        key,
        format!("Unrecognized request argument supplied: {key}"),
    )
    .with_code("unknown_parameter")
}

fn unsupported(param: &str, what: &str) -> Error {
    Error::invalid_field(param, format!("{what} is not supported by this gateway."))
        .with_code("unsupported_parameter")
}

/// `client_metadata` is the client's own telemetry (Codex sends its session ids there): checked
/// to be an object of strings, as the spec types it, and not sent to any upstream.
fn check_client_metadata(metadata: Option<&Map<String, Value>>) -> Result<()> {
    for (key, value) in metadata.into_iter().flatten() {
        if !value.is_string() {
            let param = format!("client_metadata.{key}");
            return Err(Error::invalid_field(
                &param,
                format!("Invalid type for '{param}': expected a string."),
            )
            .with_code("invalid_type"));
        }
    }
    Ok(())
}

fn check_include(include: &[String]) -> Result<()> {
    for (i, value) in include.iter().enumerate() {
        if !INCLUDABLE.contains(&value.as_str()) {
            let supported = INCLUDABLE
                .iter()
                .map(|v| format!("'{v}'"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::invalid_field(
                format!("include[{i}]"),
                format!("Invalid value: '{value}'. Supported values are: {supported}."),
            )
            .with_code("invalid_value"));
        }
    }
    Ok(())
}

/// `reasoning.summary` is accepted and not translated: our answers carry no reasoning summary.
fn check_summary(summary: Option<&str>, param: &str) -> Result<()> {
    match summary {
        None | Some("auto" | "concise" | "detailed") => Ok(()),
        Some(other) => Err(Error::invalid_field(
            param,
            format!(
                "Invalid value: '{other}'. Supported values are: 'auto', 'concise', and \
                 'detailed'."
            ),
        )
        .with_code("invalid_value")),
    }
}

/// A fresh `resp_` id: 24 random bytes in hex, the length of OpenAI's.
pub fn new_response_id() -> String {
    let bytes: [u8; 24] = rand::random();
    let mut id = String::with_capacity(53);
    id.push_str("resp_");
    for byte in bytes {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Decodes a client's `POST /v1/responses` body.
pub fn decode_request(body: &[u8]) -> Result<IngressResponse> {
    let mut map = parse_json_object(body)?;
    let mut passthrough = Passthrough {
        dialect: Some(WireDialect::Responses),
        ..Passthrough::default()
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if FIELDS.contains(&key.as_str()) {
            continue;
        }
        if UNSUPPORTED_FIELDS.contains(&key.as_str()) {
            if map.get(&key).is_some_and(|v| !v.is_null()) {
                return Err(unsupported(&key, &format!("'{key}'")));
            }
            map.remove(&key);
            continue;
        }
        // Service hints go on to Responses upstreams only; a field we do not know is the
        // route's to allow (see `unknown_field_error`), and then goes on likewise.
        if !IGNORED_FIELDS.contains(&key.as_str()) {
            passthrough.required.push(key.clone());
        }
        if let Some(value) = map.remove(&key) {
            passthrough.fields.insert(key, value);
        }
    }
    if let Some(metadata) = map.get("client_metadata") {
        passthrough
            .fields
            .insert("client_metadata".to_owned(), metadata.clone());
    }
    let wire: wire::CreateResponse = typed(Value::Object(map), "")?;
    if wire.background == Some(true) {
        return Err(unsupported("background", "Background mode"));
    }
    if let Some(max) = wire.max_output_tokens
        && max < egress::MIN_OUTPUT_TOKENS
    {
        return Err(Error::invalid_field(
            "max_output_tokens",
            format!(
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {}, but got {max} instead.",
                egress::MIN_OUTPUT_TOKENS
            ),
        )
        .with_code("integer_below_min_value"));
    }
    if let Some(truncation) = wire.truncation.as_deref()
        && !matches!(truncation, "auto" | "disabled")
    {
        return Err(Error::invalid_field(
            "truncation",
            "Invalid value for 'truncation': expected 'auto' or 'disabled'.",
        ));
    }
    check_client_metadata(wire.client_metadata.as_ref())?;
    check_include(wire.include.as_deref().unwrap_or_default())?;
    if let Some(reasoning) = &wire.reasoning {
        check_summary(reasoning.summary.as_deref(), "reasoning.summary")?;
        check_summary(
            reasoning.generate_summary.as_deref(),
            "reasoning.generate_summary",
        )?;
    }
    let raw_input = wire.input.clone();
    let input = match wire.input {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![Message::text(Role::User, text)],
        Some(Value::Array(items)) => decode_items(items)?,
        Some(_) => {
            return Err(Error::invalid_field(
                "input",
                "Invalid type for 'input': expected a string or an array of input items.",
            ));
        }
    };
    let raw_tools = wire.tools.unwrap_or_default();
    let mut tools = Vec::new();
    let mut namespaced = std::collections::BTreeMap::new();
    for (i, tool) in raw_tools.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("namespace") => decode_namespace(i, tool, &mut tools, &mut namespaced)?,
            Some(kind) if HOSTED_TOOLS.contains(&kind) => {
                passthrough.hosted_tools.push((i, tool.clone()));
            }
            Some("custom") => {
                let (function, name) = custom_as_function(&format!("tools[{i}]"), tool)?;
                tools.push(function);
                passthrough.custom_tools.insert(name, tool.clone());
            }
            _ => tools.push(decode_tool(&format!("tools[{i}]"), tool)?),
        }
    }
    if passthrough.fields.is_empty()
        && passthrough.hosted_tools.is_empty()
        && passthrough.custom_tools.is_empty()
    {
        passthrough.dialect = None;
    }
    // A namespaced function's flat name must not stand for another tool too.
    for flat in namespaced.keys() {
        if tools.iter().filter(|t| &t.name == flat).count() > 1 {
            return Err(Error::invalid_field(
                "tools",
                format!(
                    "The namespaced function '{flat}' has the name of another tool; rename one."
                ),
            ));
        }
    }
    let tool_choice = wire
        .tool_choice
        .as_ref()
        .map(|choice| decode_tool_choice(choice, &tools))
        .transpose()?;
    let text = wire.text.unwrap_or_default();
    let response_format = text.format.as_ref().map(decode_format).transpose()?;
    let reasoning = wire.reasoning.unwrap_or_default();
    let stream = wire.stream.unwrap_or(false);
    if wire.stream_options.is_some() && !stream {
        return Err(Error::invalid_field(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ));
    }
    let template = ChatRequest {
        model: wire.model,
        messages: Vec::new(),
        tools,
        tool_choice,
        parallel_tool_calls: wire.parallel_tool_calls,
        response_format,
        sampling: Sampling {
            temperature: wire.temperature,
            top_p: wire.top_p,
            ..Sampling::default()
        },
        max_tokens: wire.max_output_tokens,
        stop: Vec::new(),
        reasoning_effort: reasoning.effort.clone(),
        reasoning_budget: None,
        user: wire.user.clone(),
        metadata: wire.metadata.clone(),
        stream,
        openai_passthrough: Map::new(),
        passthrough,
        scope: None,
    };
    let params = Params {
        id: new_response_id(),
        created_at: now_secs(),
        instructions: wire.instructions,
        tools: template.tools.iter().map(encode_tool).collect(),
        tool_choice: template
            .tool_choice
            .as_ref()
            .map_or_else(|| json!("auto"), encode_tool_choice),
        parallel_tool_calls: wire.parallel_tool_calls.unwrap_or(true),
        temperature: wire.temperature.unwrap_or(1.0),
        top_p: wire.top_p.unwrap_or(1.0),
        max_output_tokens: wire.max_output_tokens,
        previous_response_id: wire.previous_response_id,
        reasoning: json!({
            "effort": reasoning.effort,
            "summary": reasoning.summary.or(reasoning.generate_summary),
        }),
        store: wire.store.unwrap_or(true),
        text: json!({
            "format": text.format.unwrap_or_else(|| json!({"type": "text"})),
            "verbosity": text.verbosity.unwrap_or_else(|| "medium".to_owned()),
        }),
        truncation: wire.truncation.unwrap_or_else(|| "disabled".to_owned()),
        metadata: wire.metadata.unwrap_or_default(),
        user: wire.user,
        custom_tools: template.passthrough.custom_tools.keys().cloned().collect(),
        namespaced,
    };
    let input_items = input_items(&params.id, raw_input);
    Ok(IngressResponse {
        params,
        input,
        input_items,
        stream,
        template,
    })
}

/// A request's (already validated) `input` as the items OpenAI lists for it: a string becomes one
/// user message; messages get their `type`, content as parts and a status. Items without an id
/// get one made of the response's id and their index, so listing them twice gives the same ids
/// (pages chain with `after`).
pub fn input_items(response_id: &str, input: Option<Value>) -> Vec<Value> {
    let items = match input {
        Some(Value::String(text)) => vec![json!({"role": "user", "content": text})],
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let stem = response_id.strip_prefix("resp_").unwrap_or(response_id);
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| input_item(stem, index, item))
        .collect()
}

fn input_item(stem: &str, index: usize, item: Value) -> Value {
    let Value::Object(mut item) = item else {
        return item;
    };
    let kind = match item.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => "message".to_owned(),
    };
    let prefix = match kind.as_str() {
        "message" => "msg",
        "function_call" => "fc",
        "function_call_output" => "fco",
        "reasoning" => "rs",
        _ => "item",
    };
    if kind == "message" {
        item.insert("type".to_owned(), json!("message"));
        let assistant = item.get("role").and_then(Value::as_str) == Some("assistant");
        if let Some(Value::String(text)) = item.get("content") {
            let part = if assistant {
                json!({"type": "output_text", "text": text, "annotations": []})
            } else {
                json!({"type": "input_text", "text": text})
            };
            item.insert("content".to_owned(), json!([part]));
        }
        if let Some(Value::Array(parts)) = item.get_mut("content") {
            for part in parts.iter_mut().filter_map(Value::as_object_mut) {
                if part.get("type").and_then(Value::as_str) == Some("output_text") {
                    part.entry("annotations").or_insert_with(|| json!([]));
                }
            }
        }
    }
    if matches!(
        kind.as_str(),
        "message" | "function_call" | "function_call_output"
    ) {
        item.entry("status").or_insert_with(|| json!("completed"));
    }
    if !matches!(item.get("id"), Some(Value::String(id)) if !id.is_empty()) {
        item.insert(
            "id".to_owned(),
            json!(format!("{prefix}_{stem}{index:04x}")),
        );
    }
    Value::Object(item)
}

fn decode_role(value: Option<&Value>, param: &str) -> Result<Role> {
    match value.and_then(Value::as_str) {
        Some("system") => Ok(Role::System),
        Some("developer") => Ok(Role::Developer),
        Some("user") => Ok(Role::User),
        Some("assistant") => Ok(Role::Assistant),
        _ => Err(Error::invalid_field(
            param,
            format!(
                "Invalid value for '{param}': supported values are 'system', 'developer', \
                 'user' and 'assistant'."
            ),
        )),
    }
}

fn string_field(item: &Map<String, Value>, key: &str, at: &str) -> Result<String> {
    match item.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(Error::invalid_field(
            format!("{at}.{key}"),
            format!("Missing required parameter: '{at}.{key}'."),
        )),
        Some(_) => Err(Error::invalid_field(
            format!("{at}.{key}"),
            format!("Invalid type for '{at}.{key}': expected a string."),
        )),
    }
}

/// The open assistant turn, if the last message is one, so tool calls can join it.
fn assistant_turn(messages: &mut Vec<Message>) -> &mut Message {
    let open = messages.last().is_some_and(|m| m.role == Role::Assistant);
    if !open {
        messages.push(Message::new(Role::Assistant, Vec::new()));
    }
    let last = messages.len() - 1;
    &mut messages[last]
}

fn decode_items(items: Vec<Value>) -> Result<Vec<Message>> {
    let mut messages: Vec<Message> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("input[{i}]");
        let Value::Object(item) = item else {
            return Err(Error::invalid_field(
                &at,
                format!("Invalid type for '{at}': expected an object."),
            ));
        };
        // `EasyInputMessage` may leave out its type.
        let kind = match item.get("type") {
            None | Some(Value::Null) => "message",
            Some(Value::String(kind)) => kind.as_str(),
            Some(_) => {
                return Err(Error::invalid_field(
                    format!("{at}.type"),
                    format!("Invalid type for '{at}.type': expected a string."),
                ));
            }
        };
        match kind {
            "message" => {
                let message = decode_message(&item, &at)?;
                // Several output items of one earlier answer make one assistant turn; text
                // never joins a turn that already has calls, since calls end a turn.
                match messages.last_mut() {
                    Some(last)
                        if message.role == Role::Assistant
                            && last.role == Role::Assistant
                            && last.tool_calls.is_empty() =>
                    {
                        last.content.extend(message.content);
                        last.content_is_text = false;
                        last.refusal = last.refusal.take().or(message.refusal);
                    }
                    _ => messages.push(message),
                }
            }
            "function_call" => {
                let mut name = string_field(&item, "name", &at)?;
                if let Some(Value::String(namespace)) = item.get("namespace") {
                    name = flat_name(namespace, &name);
                }
                let call = ToolCall {
                    id: string_field(&item, "call_id", &at)?,
                    name,
                    arguments: string_field(&item, "arguments", &at)?,
                };
                assistant_turn(&mut messages).tool_calls.push(call);
            }
            "custom_tool_call" => {
                let call = ToolCall {
                    id: string_field(&item, "call_id", &at)?,
                    name: string_field(&item, "name", &at)?,
                    arguments: custom_arguments(&string_field(&item, "input", &at)?),
                };
                assistant_turn(&mut messages).tool_calls.push(call);
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = string_field(&item, "call_id", &at)?;
                let mut message = Message::new(Role::Tool, Vec::new());
                match item.get("output") {
                    Some(Value::String(text)) => {
                        message.content = vec![ContentPart::text(text.clone())];
                        message.content_is_text = true;
                    }
                    Some(Value::Array(parts)) => {
                        for (j, part) in parts.iter().enumerate() {
                            decode_part(&mut message, part, &format!("{at}.output[{j}]"))?;
                        }
                    }
                    _ => {
                        return Err(Error::invalid_field(
                            format!("{at}.output"),
                            format!(
                                "Invalid type for '{at}.output': expected a string or an array \
                                 of content parts."
                            ),
                        ));
                    }
                }
                message.tool_call_id = Some(call_id);
                messages.push(message);
            }
            // Signed reasoning travels through the router's memory, not through clients.
            "reasoning" => {}
            other => {
                return Err(Error::invalid_field(
                    format!("{at}.type"),
                    format!(
                        "Invalid value for '{at}.type': input items of type '{other}' are not \
                         supported; expected 'message', 'function_call', \
                         'function_call_output', 'custom_tool_call', 'custom_tool_call_output' \
                         or 'reasoning'."
                    ),
                ));
            }
        }
    }
    Ok(messages)
}

fn decode_message(item: &Map<String, Value>, at: &str) -> Result<Message> {
    let role = decode_role(item.get("role"), &format!("{at}.role"))?;
    let mut message = Message::new(role, Vec::new());
    match item.get("content") {
        Some(Value::String(text)) => {
            message.content = vec![ContentPart::text(text.clone())];
            message.content_is_text = true;
        }
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                decode_part(&mut message, part, &format!("{at}.content[{j}]"))?;
            }
        }
        None | Some(Value::Null) => {
            return Err(Error::invalid_field(
                format!("{at}.content"),
                format!("Missing required parameter: '{at}.content'."),
            ));
        }
        Some(_) => {
            return Err(Error::invalid_field(
                format!("{at}.content"),
                format!(
                    "Invalid type for '{at}.content': expected a string or an array of content \
                     parts."
                ),
            ));
        }
    }
    Ok(message)
}

fn decode_part(message: &mut Message, part: &Value, at: &str) -> Result<()> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
    let text_of = |key: &str| {
        part.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::invalid_field(
                    format!("{at}.{key}"),
                    format!("Missing required parameter: '{at}.{key}'."),
                )
            })
    };
    let assistant = message.role == Role::Assistant;
    match kind {
        "input_text" if !assistant => message.content.push(ContentPart::text(text_of("text")?)),
        "output_text" if assistant => message.content.push(ContentPart::text(text_of("text")?)),
        "refusal" if assistant => message.refusal = Some(text_of("refusal")?),
        "input_image" if !assistant => {
            if part.get("file_id").is_some_and(|v| !v.is_null()) {
                return Err(unsupported(&format!("{at}.file_id"), "Uploaded files"));
            }
            let url = text_of("image_url")?;
            let detail = part
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let source = decode_image_url(&url, &format!("{at}.image_url"))?;
            message.content.push(ContentPart::Image { source, detail });
        }
        "input_file" if !assistant => {
            let text = |key: &str| part.get(key).and_then(Value::as_str);
            if text("file_id").is_some() {
                return Err(uploaded_file(&format!("{at}.file_id")));
            }
            if text("file_url").is_some() {
                return Err(unsupported(&format!("{at}.file_url"), "Files by URL"));
            }
            let data = text("file_data").ok_or_else(|| {
                Error::invalid_field(
                    format!("{at}.file_data"),
                    format!("Missing required parameter: '{at}.file_data'."),
                )
            })?;
            message.content.push(decode_file_data(
                data,
                text("filename"),
                &format!("{at}.file_data"),
            )?);
        }
        other => {
            return Err(Error::invalid_field(
                format!("{at}.type"),
                format!(
                    "Invalid value for '{at}.type': content part type '{other}' is not \
                     supported here."
                ),
            ));
        }
    }
    Ok(())
}

/// A `namespace` tool group (Codex sends its MCP tools so): each function joins the canonical
/// tools as `{namespace}__{name}`, and calls of it go back split (see [`Params::name_call`]).
fn decode_namespace(
    i: usize,
    value: &Value,
    tools: &mut Vec<Tool>,
    namespaced: &mut std::collections::BTreeMap<String, (String, String)>,
) -> Result<()> {
    let at = format!("tools[{i}]");
    let Value::Object(group) = value else {
        return Err(Error::invalid_field(
            &at,
            format!("Invalid type for '{at}': expected an object."),
        ));
    };
    let namespace = string_field(group, "name", &at)?;
    if namespace.is_empty() {
        return Err(Error::invalid_field(
            format!("{at}.name"),
            format!(
                "Invalid '{at}.name': string too short. Expected a string with minimum length 1."
            ),
        ));
    }
    for key in group.keys() {
        if !matches!(key.as_str(), "type" | "name" | "description" | "tools") {
            return Err(unknown_field_error(&format!("{at}.{key}")));
        }
    }
    let members = match group.get("tools") {
        Some(Value::Array(members)) if !members.is_empty() => members,
        _ => {
            return Err(Error::invalid_field(
                format!("{at}.tools"),
                format!("Invalid '{at}.tools': expected a non-empty array of function tools."),
            ));
        }
    };
    for (j, member) in members.iter().enumerate() {
        let member_at = format!("{at}.tools[{j}]");
        let mut tool = decode_tool(&member_at, member)?;
        let flat = flat_name(&namespace, &tool.name);
        if !valid_function_name(&flat) {
            return Err(Error::invalid_field(
                format!("{member_at}.name"),
                format!(
                    "'{flat}' (namespace '{namespace}', function '{}') is not a valid function \
                     name for other providers: it must match '^[a-zA-Z0-9_-]{{1,64}}$'.",
                    tool.name
                ),
            ));
        }
        namespaced.insert(flat.clone(), (namespace.clone(), tool.name.clone()));
        tool.name = flat;
        tools.push(tool);
    }
    Ok(())
}

/// A function tool is flat in this API: `{type, name, description, parameters, strict}`.
fn decode_tool(at: &str, value: &Value) -> Result<Tool> {
    let kind = value.get("type").and_then(Value::as_str);
    if kind != Some("function") {
        return Err(Error::invalid_field(
            format!("{at}.type"),
            format!(
                "Invalid value for '{at}.type': only 'function' tools are supported by this \
                 gateway."
            ),
        ));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Function {
        #[serde(rename = "type")]
        _kind: String,
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        parameters: Option<Value>,
        #[serde(default)]
        strict: Option<bool>,
    }
    let function: Function = typed(value.clone(), at)?;
    if !valid_function_name(&function.name) {
        return Err(Error::invalid_field(
            format!("{at}.name"),
            format!(
                "Invalid '{at}.name': string does not match pattern. Expected a string that \
                 matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
            ),
        ));
    }
    if let Some(parameters) = &function.parameters
        && !parameters.is_object()
        && !parameters.is_null()
    {
        return Err(Error::invalid_field(
            format!("{at}.parameters"),
            "Tool parameters must be a JSON Schema object.",
        ));
    }
    Ok(Tool {
        name: function.name,
        description: function.description,
        parameters: function.parameters.filter(|p| !p.is_null()),
        strict: function.strict,
    })
}

fn decode_tool_choice(value: &Value, tools: &[Tool]) -> Result<ToolChoice> {
    let invalid = |message: &str| Error::invalid_field("tool_choice", message.to_owned());
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(invalid(
                "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a \
                 function.",
            )),
        },
        Value::Object(obj) if obj.get("type").and_then(Value::as_str) == Some("function") => {
            let name = obj.get("name").and_then(Value::as_str).ok_or_else(|| {
                Error::invalid_field(
                    "tool_choice.name",
                    "Missing required parameter: 'tool_choice.name'.",
                )
            })?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(invalid(&format!(
                    "Invalid value for 'tool_choice': function '{name}' is not among the tools."
                )));
            }
            Ok(ToolChoice::Function(name.to_owned()))
        }
        _ => Err(invalid(
            "Invalid value for 'tool_choice': only 'none', 'auto', 'required' and function \
             choices are supported.",
        )),
    }
}

/// `text.format`, flat unlike Chat Completions' nested `json_schema`.
fn decode_format(value: &Value) -> Result<ResponseFormat> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct JsonSchema {
                #[serde(rename = "type")]
                _kind: String,
                name: String,
                #[serde(default)]
                description: Option<String>,
                #[serde(default)]
                schema: Option<Value>,
                #[serde(default)]
                strict: Option<bool>,
            }
            let spec: JsonSchema = typed(value.clone(), "text.format")?;
            Ok(ResponseFormat::JsonSchema {
                name: spec.name,
                description: spec.description,
                schema: spec.schema,
                strict: spec.strict,
            })
        }
        _ => Err(Error::invalid_field(
            "text.format.type",
            "Invalid value for 'text.format.type': expected 'text', 'json_object' or \
             'json_schema'.",
        )),
    }
}

fn encode_tool(tool: &Tool) -> Value {
    json!({
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "strict": tool.strict.unwrap_or(true),
    })
}

fn encode_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => json!({"type": "function", "name": name}),
    }
}

pub(crate) fn encode_usage(usage: &Usage) -> wire::Usage {
    wire::Usage {
        input_tokens: usage.input_tokens,
        input_tokens_details: wire::InputTokensDetails {
            cached_tokens: usage.cached_input_tokens,
            cache_write_tokens: usage.cache_write_tokens,
        },
        output_tokens: usage.output_tokens,
        output_tokens_details: wire::OutputTokensDetails {
            reasoning_tokens: usage.reasoning_tokens,
        },
        total_tokens: usage.total_tokens(),
    }
}

/// Output item ids derive from the response id, so a streamed answer's items and the stored
/// `Response` agree without extra state.
pub(crate) fn message_item_id(response_id: &str) -> String {
    format!(
        "msg_{}",
        response_id.strip_prefix("resp_").unwrap_or(response_id)
    )
}

pub(crate) fn call_item_id(response_id: &str, index: u32) -> String {
    format!(
        "fc_{}_{index}",
        response_id.strip_prefix("resp_").unwrap_or(response_id)
    )
}

fn message_item(id: &str, status: &str, text: Option<&str>, refusal: Option<&str>) -> Value {
    let mut content = Vec::new();
    if let Some(text) = text {
        content.push(output_text_part(text));
    }
    if let Some(refusal) = refusal {
        content.push(json!({"type": "refusal", "refusal": refusal}));
    }
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

pub(crate) fn output_text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The output items of a canonical answer: one assistant message (if it said anything), then
/// one `function_call` item per tool call.
fn output_items(params: &Params, message: &Message, status: &str) -> Vec<Value> {
    let response_id = params.id.as_str();
    let mut items = Vec::new();
    let text = message.text_content();
    if !text.is_empty() || message.refusal.is_some() {
        items.push(message_item(
            &message_item_id(response_id),
            status,
            (!text.is_empty()).then_some(text.as_str()),
            message.refusal.as_deref(),
        ));
    }
    for (index, call) in message.tool_calls.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        items.push(params.call_item(&call_item_id(response_id, index), "completed", call));
    }
    items
}

/// A `Response` object with the request's echoed parameters and the given state.
pub(crate) fn response_object(
    params: &Params,
    model: &str,
    status: &str,
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    let mut object = json!({
        "id": params.id,
        "object": "response",
        "created_at": params.created_at,
        "status": status,
        "background": false,
        "completed_at": (status == "completed").then(now_secs),
        "error": null,
        "incomplete_details": null,
        "instructions": params.instructions,
        "max_output_tokens": params.max_output_tokens,
        "max_tool_calls": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": params.parallel_tool_calls,
        "previous_response_id": params.previous_response_id,
        "reasoning": params.reasoning,
        "service_tier": "default",
        "store": params.store,
        "temperature": params.temperature,
        "text": params.text,
        "tool_choice": params.tool_choice,
        "tools": params.tools,
        "top_logprobs": 0,
        "top_p": params.top_p,
        "truncation": params.truncation,
        "metadata": params.metadata,
    });
    // The spec types `usage` and `user` without null: absent rather than null.
    if let Some(usage) = usage {
        object["usage"] = json!(encode_usage(usage));
    }
    if let Some(user) = &params.user {
        object["user"] = json!(user);
    }
    object
}

/// Encodes a canonical answer as a `Response` object. Answers cut by the token limit or a
/// content filter are `incomplete`, with the reason, as OpenAI reports them.
pub fn encode_response(params: &Params, response: &ChatResponse) -> Value {
    let incomplete = match response.finish_reason {
        FinishReason::Length => Some("max_output_tokens"),
        FinishReason::ContentFilter => Some("content_filter"),
        _ => None,
    };
    let status = if incomplete.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let output = output_items(params, &response.message, status);
    let mut object = response_object(
        params,
        &response.model,
        status,
        output,
        response.usage.as_ref(),
    );
    if let Some(reason) = incomplete {
        object["incomplete_details"] = json!({"reason": reason});
    }
    object
}

/// The `error` of a failed `Response`: one of the spec's codes.
pub(crate) fn response_error(error: &Error) -> Value {
    let code = match error.kind {
        ErrorKind::RateLimited | ErrorKind::QuotaExceeded => "rate_limit_exceeded",
        ErrorKind::InvalidRequest | ErrorKind::Unsupported | ErrorKind::UpstreamRejected => {
            "invalid_prompt"
        }
        _ => "server_error",
    };
    json!({"code": code, "message": error.message})
}

/// Turns a stored `Response` object into the assistant turn it added, for conversations
/// continued with `previous_response_id`.
pub fn response_message(response: &Value) -> Message {
    let mut message = Message::new(Role::Assistant, Vec::new());
    let items = response
        .get("output")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    if let Some(text) = part.get("text").and_then(Value::as_str) {
                        message.content.push(ContentPart::text(text));
                    } else if let Some(refusal) = part.get("refusal").and_then(Value::as_str) {
                        message.refusal = Some(refusal.to_owned());
                    }
                }
            }
            Some("function_call") => {
                let field = |key: &str| {
                    item.get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let name = match item.get("namespace").and_then(Value::as_str) {
                    Some(namespace) => flat_name(namespace, &field("name")),
                    None => field("name"),
                };
                message.tool_calls.push(ToolCall {
                    id: field("call_id"),
                    name,
                    arguments: field("arguments"),
                });
            }
            Some("custom_tool_call") => {
                let field = |key: &str| {
                    item.get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                message.tool_calls.push(ToolCall {
                    id: field("call_id"),
                    name: field("name"),
                    arguments: custom_arguments(&field("input")),
                });
            }
            _ => {}
        }
    }
    message
}

/// The `{"object": "response.deleted"}` answer to a delete.
pub fn deleted_object(id: &str) -> Value {
    json!({"id": id, "object": "response.deleted", "deleted": true})
}

#[cfg(test)]
mod tests;

//! `GenerateContentRequest`: validated like the service (the JSON parser first, then the
//! request checks with the service's own messages), then translated to the neutral conversation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::error::GoogleError;
use super::proto::{self, Checker, get};
use crate::SimDialect;
use crate::behaviour::{
    Conversation, Effort, Message, OutputFormat, Role, Tool, ToolCall, ToolChoice,
};
use crate::ids;

/// What the simulator's thought signatures start with, so forged ones can be told apart.
pub(crate) const SIGNATURE_PREFIX: &[u8] = b"sim-thought:";
/// Values Google documents for replaying calls it never signed (e.g. from another model).
const DUMMY_SIGNATURES: &[&str] = &[
    "skip_thought_signature_validator",
    "context_engineering_is_the_way_to_go",
];

pub(crate) struct GenerateRequest {
    pub conversation: Conversation,
    /// A `thinkingConfig` that does not turn thinking off: answers carry thought signatures,
    /// and the current turn's function calls must come back with theirs.
    pub thinking: bool,
    pub include_thoughts: bool,
}

fn request_error(path: &str, message: &str) -> GoogleError {
    GoogleError::invalid(format!("* GenerateContentRequest.{path}: {message}\n"))
}

fn object(value: Option<&Value>) -> Option<&Map<String, Value>> {
    value.and_then(Value::as_object)
}

fn list(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn string<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    get(object, name).and_then(Value::as_str)
}

fn integer(object: &Map<String, Value>, name: &str) -> Option<i64> {
    get(object, name).and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
}

/// Parses and validates a `generateContent` body for `model`.
pub(crate) fn parse(
    body: &[u8],
    dialect: SimDialect,
    model: &str,
) -> Result<GenerateRequest, GoogleError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        GoogleError::violations(vec![(
            String::new(),
            format!("Invalid JSON payload received. Unexpected token.\n{e}"),
        )])
    })?;
    let Value::Object(root) = value else {
        return Err(GoogleError::violations(vec![(
            String::new(),
            "Invalid JSON payload received. Expected an object key or }.".to_owned(),
        )]));
    };
    let mut checker = Checker::new(dialect);
    checker.message(&proto::REQUEST, &root, "");
    if !checker.violations.is_empty() {
        return Err(GoogleError::violations(checker.violations));
    }
    let contents = list(get(&root, "contents"));
    if contents.is_empty() {
        return Err(request_error("contents", "contents is not specified"));
    }
    let generation = object(get(&root, "generationConfig"));
    let thinking_config = generation.and_then(|g| object(get(g, "thinkingConfig")));
    if let Some(budget) = thinking_config.and_then(|t| integer(t, "thinkingBudget")) {
        check_thinking_budget(model, dialect, budget)?;
    }
    let thinking = thinking_config.is_some_and(|t| integer(t, "thinkingBudget") != Some(0));
    let turns = turns(contents, dialect)?;
    check_function_turns(&turns)?;
    if thinking {
        check_signatures(&turns)?;
    }
    let tools = tools(&root)?;
    let mut conversation = Conversation {
        messages: messages(&root, &turns),
        tools,
        tool_choice: ToolChoice::Auto,
        parallel_tool_calls: true,
        format: OutputFormat::Text,
        max_output_tokens: None,
        stop: Vec::new(),
        reasoning: thinking_config.map_or(Effort::None, effort),
        fingerprint: ids::fnv1a(body),
    };
    tool_choice(&root, &mut conversation);
    if let Some(generation) = generation {
        generation_config(generation, &mut conversation)?;
    }
    Ok(GenerateRequest {
        conversation,
        thinking,
        include_thoughts: thinking
            && thinking_config
                .and_then(|t| get(t, "includeThoughts"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
    })
}

/// One validated `Content`.
struct Turn<'a> {
    model: bool,
    parts: Vec<&'a Map<String, Value>>,
}

impl Turn<'_> {
    fn calls(&self) -> impl Iterator<Item = &Map<String, Value>> {
        self.parts
            .iter()
            .filter_map(|p| object(get(p, "functionCall")))
    }

    fn responses(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| get(p, "functionResponse").is_some())
            .count()
    }
}

fn turns(contents: &[Value], dialect: SimDialect) -> Result<Vec<Turn<'_>>, GoogleError> {
    let mut turns = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        let Some(content) = content.as_object() else {
            continue;
        };
        let model = match string(content, "role").unwrap_or("user") {
            "user" => false,
            "model" => true,
            _ => {
                return Err(GoogleError::invalid(
                    "Please use a valid role: user, model.",
                ));
            }
        };
        let parts: Vec<&Map<String, Value>> = list(get(content, "parts"))
            .iter()
            .filter_map(Value::as_object)
            .collect();
        if parts.is_empty() {
            return Err(request_error(
                &format!("contents[{i}].parts"),
                "contents.parts must not be empty.",
            ));
        }
        for (j, part) in parts.iter().enumerate() {
            let data = proto::PART_DATA
                .iter()
                .find(|name| get(part, name).is_some());
            let signed = string(part, "thoughtSignature").is_some();
            if data.is_none() && !signed {
                return Err(request_error(
                    &format!("contents[{i}].parts[{j}].data"),
                    "required oneof field 'data' must have one initialized field",
                ));
            }
            if let Some(blob) = object(get(part, "inlineData")) {
                check_inline_data(blob, &format!("contents[{i}].parts[{j}].inline_data"))?;
            }
            if dialect == SimDialect::Vertex && string(part, "text") == Some("") && !signed {
                return Err(GoogleError::invalid(
                    "Unable to submit request because it has an empty text parameter. Add a \
                     value to the parameter and try again. Learn more: \
                     https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/send-chat-prompts-gemini",
                ));
            }
        }
        turns.push(Turn { model, parts });
    }
    Ok(turns)
}

/// The inline types Gemini reads: images, PDFs and plain text documents, audio and video.
const INLINE_PREFIXES: &[&str] = &["image/", "audio/", "video/"];
const INLINE_DOCUMENTS: &[&str] = &["application/pdf", "text/plain"];

/// Inline bytes must be base64 of a type the model reads. The decoding failure is the
/// protobuf JSON mapping's words for a bytes field; the MIME refusal is the API's 400.
fn check_inline_data(blob: &Map<String, Value>, path: &str) -> Result<(), GoogleError> {
    let data = string(blob, "data").unwrap_or_default();
    if crate::media::decode(data).is_none() {
        return Err(GoogleError::violations(vec![(
            format!("{path}.data"),
            format!(
                "Invalid value at '{path}.data' (TYPE_BYTES), Base64 decoding failed for \"{data}\""
            ),
        )]));
    }
    let mime_type = string(blob, "mimeType").unwrap_or_default();
    let readable = INLINE_PREFIXES.iter().any(|p| mime_type.starts_with(p))
        || INLINE_DOCUMENTS.contains(&mime_type);
    if !readable {
        return Err(GoogleError::invalid(format!(
            "Unsupported MIME type: {mime_type}"
        )));
    }
    Ok(())
}

/// A function call turn follows a user turn; the next turn answers every call, in one turn.
fn check_function_turns(turns: &[Turn<'_>]) -> Result<(), GoogleError> {
    for (i, turn) in turns.iter().enumerate() {
        let previous = i.checked_sub(1).and_then(|p| turns.get(p));
        let calls = turn.calls().count();
        if turn.model && calls > 0 {
            if previous.is_none_or(|p| p.model) {
                return Err(GoogleError::invalid(
                    "Please ensure that function call turn comes immediately after a user turn \
                     or after a function response turn.",
                ));
            }
            if let Some(next) = turns.get(i + 1)
                && next.responses() != calls
            {
                return Err(GoogleError::invalid(
                    "Please ensure that the number of function response parts is equal to the \
                     number of function call parts of the function call turn.",
                ));
            }
        }
        if !turn.model
            && turn.responses() > 0
            && previous.is_none_or(|p| !p.model || p.calls().count() == 0)
        {
            return Err(GoogleError::invalid(
                "Please ensure that function response turn comes immediately after a function \
                 call turn.",
            ));
        }
    }
    Ok(())
}

/// The `thinkingBudget`s a Gemini 2.5 model takes besides -1 (dynamic).
struct BudgetRange {
    min: i64,
    max: i64,
    /// Whether 0 turns thinking off (2.5 Pro cannot stop thinking).
    can_disable: bool,
}

/// Gemini 2.5's documented ranges (ai.google.dev/gemini-api/docs/thinking): Pro 128..=32768
/// and never 0, Flash 0..=24576, Flash-Lite 512..=24576 or 0; -1 (dynamic) everywhere. Other
/// models are not checked.
fn budget_range(model: &str) -> Option<BudgetRange> {
    let range = |min, max, can_disable| {
        Some(BudgetRange {
            min,
            max,
            can_disable,
        })
    };
    if model.starts_with("gemini-2.5-flash-lite") {
        range(512, 24_576, true)
    } else if model.starts_with("gemini-2.5-flash") {
        range(1, 24_576, true)
    } else if model.starts_with("gemini-2.5-pro") {
        range(128, 32_768, false)
    } else {
        None
    }
}

/// A budget the model refuses is a 400 INVALID_ARGUMENT, worded per API as the services word
/// it (reported verbatim in client issues): the Gemini API's "Budget 0 is invalid. This model
/// only works in thinking mode." / "The thinking budget 128 is invalid. Please choose a value
/// between 512 and 24576.", Vertex's "The model does not support setting thinking_budget to
/// 0." / "thinking_budget is out of range; supported values are integers from 128 to 32768".
/// The Gemini API states Flash's range from 0, Vertex from 1.
fn check_thinking_budget(model: &str, dialect: SimDialect, budget: i64) -> Result<(), GoogleError> {
    let Some(range) = budget_range(model) else {
        return Ok(());
    };
    let vertex = dialect == SimDialect::Vertex;
    if budget == -1
        || (budget == 0 && range.can_disable)
        || (range.min..=range.max).contains(&budget)
    {
        return Ok(());
    }
    if budget == 0 {
        return Err(GoogleError::invalid(if vertex {
            "The model does not support setting thinking_budget to 0."
        } else {
            "Budget 0 is invalid. This model only works in thinking mode."
        }));
    }
    let min = if range.can_disable && range.min == 1 && !vertex {
        0
    } else {
        range.min
    };
    Err(GoogleError::invalid(if vertex {
        format!(
            "thinking_budget is out of range; supported values are integers from {min} to {}",
            range.max
        )
    } else {
        format!(
            "The thinking budget {budget} is invalid. Please choose a value between {min} and {}.",
            range.max
        )
    }))
}

/// Thinking models check the current turn (everything after the last user turn that is not
/// only function responses): each model turn's first function call carries its signature.
fn check_signatures(turns: &[Turn<'_>]) -> Result<(), GoogleError> {
    let current = turns
        .iter()
        .rposition(|t| !t.model && t.parts.iter().any(|p| get(p, "functionResponse").is_none()))
        .map_or(0, |i| i + 1);
    for (i, turn) in turns.iter().enumerate().skip(current) {
        if !turn.model {
            continue;
        }
        let first = turn.parts.iter().find(|p| get(p, "functionCall").is_some());
        let Some(first) = first else { continue };
        let name = object(get(first, "functionCall"))
            .and_then(|c| string(c, "name"))
            .unwrap_or_default();
        match string(first, "thoughtSignature") {
            None => {
                return Err(GoogleError::invalid(format!(
                    "Function call is missing a thought_signature in functionCall parts. This is \
                     required for tools to work correctly, and missing thought_signature may \
                     lead to degraded model performance. Additional data, function call \
                     `default_api:{name}` , position {}. Please refer to \
                     https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                    i + 1
                )));
            }
            Some(signature) if DUMMY_SIGNATURES.contains(&signature) => {}
            Some(signature) => {
                let genuine = STANDARD
                    .decode(signature)
                    .is_ok_and(|bytes| bytes.starts_with(SIGNATURE_PREFIX));
                if !genuine {
                    return Err(GoogleError::invalid("Corrupted thought signature."));
                }
            }
        }
    }
    Ok(())
}

/// Function names: a letter or underscore first, then letters, digits, `_ . : -`, up to 128.
fn valid_function_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn tools(root: &Map<String, Value>) -> Result<Vec<Tool>, GoogleError> {
    let mut tools = Vec::new();
    for (i, tool) in list(get(root, "tools")).iter().enumerate() {
        let Some(tool) = tool.as_object() else {
            continue;
        };
        for (j, declaration) in list(get(tool, "functionDeclarations")).iter().enumerate() {
            let Some(declaration) = declaration.as_object() else {
                continue;
            };
            let at = format!("tools[{i}].function_declarations[{j}]");
            let name = string(declaration, "name").unwrap_or_default();
            if !valid_function_name(name) {
                return Err(request_error(
                    &format!("{at}.name"),
                    "Invalid function name. Must start with a letter or an underscore. Must be \
                     alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:) or dashes \
                     (-), with a maximum length of 128.",
                ));
            }
            let parameters = match (
                object(get(declaration, "parameters")),
                get(declaration, "parametersJsonSchema"),
            ) {
                (Some(schema), _) => {
                    check_parameters(schema, &format!("{at}.parameters"))?;
                    to_json_schema(&Value::Object(schema.clone()))
                }
                (None, Some(schema)) => schema.clone(),
                (None, None) => json!({"type": "object", "properties": {}}),
            };
            tools.push(Tool {
                name: name.to_owned(),
                description: string(declaration, "description").map(str::to_owned),
                parameters,
            });
        }
    }
    Ok(tools)
}

/// Checks the parser cannot do: an OBJECT needs properties, `required` names declared ones.
fn check_parameters(schema: &Map<String, Value>, at: &str) -> Result<(), GoogleError> {
    let is_object = string(schema, "type").is_some_and(|t| t.eq_ignore_ascii_case("object"));
    let properties = object(get(schema, "properties"));
    if is_object && properties.is_none_or(Map::is_empty) {
        return Err(request_error(
            &format!("{at}.properties"),
            "should be non-empty for OBJECT type",
        ));
    }
    for (k, name) in list(get(schema, "required")).iter().enumerate() {
        let declared = name
            .as_str()
            .is_some_and(|n| properties.is_some_and(|p| p.contains_key(n)));
        if !declared {
            return Err(request_error(
                &format!("{at}.required[{k}]"),
                "property is not defined",
            ));
        }
    }
    Ok(())
}

/// Gemini's `Schema` as the JSON Schema the behaviour synthesizes from: enum-style type names
/// (`STRING`) become JSON Schema's (`string`); `nullable` is understood as is.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| {
                    let key = match key.as_str() {
                        "any_of" => "anyOf".to_owned(),
                        "max_items" | "min_items" | "min_length" | "max_length" => camel(key),
                        _ => key.clone(),
                    };
                    let value = match (key.as_str(), value) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
                        ("properties", Value::Object(properties)) => Value::Object(
                            properties
                                .iter()
                                .map(|(name, s)| (name.clone(), to_json_schema(s)))
                                .collect(),
                        ),
                        ("items", s) => to_json_schema(s),
                        ("anyOf", Value::Array(branches)) => {
                            Value::Array(branches.iter().map(to_json_schema).collect())
                        }
                        (_, other) => other.clone(),
                    };
                    (key, value)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn camel(snake_name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake_name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn effort(config: &Map<String, Value>) -> Effort {
    if let Some(level) = string(config, "thinkingLevel") {
        return match level.to_ascii_lowercase().as_str() {
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            _ => Effort::High,
        };
    }
    match integer(config, "thinkingBudget") {
        Some(0) => Effort::None,
        Some(budget) if (1..=512).contains(&budget) => Effort::Minimal,
        Some(budget) if (1..=1024).contains(&budget) => Effort::Low,
        // -1 is dynamic thinking: the model decides, a medium effort here.
        None | Some(-1) => Effort::Medium,
        Some(budget) if budget <= 8192 => Effort::Medium,
        Some(budget) if budget <= 24_576 => Effort::High,
        Some(_) => Effort::XHigh,
    }
}

fn tool_choice(root: &Map<String, Value>, conversation: &mut Conversation) {
    let config =
        object(get(root, "toolConfig")).and_then(|t| object(get(t, "functionCallingConfig")));
    let Some(config) = config else { return };
    let allowed: Vec<&str> = list(get(config, "allowedFunctionNames"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    conversation.tool_choice = match string(config, "mode")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("NONE") => ToolChoice::None,
        Some("ANY") => match allowed.as_slice() {
            [single] => ToolChoice::Named((*single).to_owned()),
            [] => ToolChoice::Required,
            several => {
                conversation
                    .tools
                    .retain(|t| several.contains(&t.name.as_str()));
                ToolChoice::Required
            }
        },
        _ => ToolChoice::Auto,
    };
}

const MIME_TYPES: &[&str] = &[
    "text/plain",
    "application/json",
    "application/xml",
    "application/yaml",
    "text/x.enum",
];

fn generation_config(
    config: &Map<String, Value>,
    conversation: &mut Conversation,
) -> Result<(), GoogleError> {
    conversation.max_output_tokens = integer(config, "maxOutputTokens")
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0);
    conversation.stop = list(get(config, "stopSequences"))
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let mime = string(config, "responseMimeType");
    if let Some(mime) = mime
        && !MIME_TYPES.contains(&mime)
    {
        return Err(request_error(
            "generation_config.response_mime_type",
            "allowed mimetypes are `text/plain`, `application/json`, `application/xml`, \
             `application/yaml` and `text/x.enum`.",
        ));
    }
    if mime == Some("application/json") {
        conversation.format = match (
            get(config, "responseJsonSchema"),
            get(config, "responseSchema"),
        ) {
            (Some(schema), _) => OutputFormat::JsonSchema(schema.clone()),
            (None, Some(schema)) => OutputFormat::JsonSchema(to_json_schema(schema)),
            (None, None) => OutputFormat::JsonObject,
        };
    }
    Ok(())
}

/// The neutral transcript: system instruction, then each turn's text, calls and results.
fn messages(root: &Map<String, Value>, turns: &[Turn<'_>]) -> Vec<Message> {
    let mut messages = Vec::new();
    if let Some(system) = object(get(root, "systemInstruction")) {
        let text = texts(
            list(get(system, "parts"))
                .iter()
                .filter_map(Value::as_object),
        );
        messages.push(Message::new(Role::System, text));
    }
    for turn in turns {
        let mut text_parts = Vec::new();
        let mut attachments = 0;
        let mut calls = Vec::new();
        let mut results = Vec::new();
        for part in &turn.parts {
            if get(part, "thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(text) = string(part, "text") {
                text_parts.push(text);
            }
            if get(part, "inlineData").is_some() || get(part, "fileData").is_some() {
                attachments += 1;
            }
            if let Some(call) = object(get(part, "functionCall")) {
                let name = string(call, "name").unwrap_or_default().to_owned();
                calls.push(ToolCall {
                    id: string(call, "id")
                        .map_or_else(|| format!("{name}#{}", calls.len()), str::to_owned),
                    arguments: get(call, "args").map_or_else(|| "{}".to_owned(), Value::to_string),
                    name,
                });
            }
            if let Some(response) = object(get(part, "functionResponse")) {
                let name = string(response, "name").unwrap_or_default().to_owned();
                let mut result = Message::new(Role::Tool, result_text(get(response, "response")));
                result.tool_call_id = string(response, "id").map(str::to_owned);
                result.name = Some(name);
                results.push(result);
            }
        }
        messages.extend(results);
        if turn.model {
            let mut message = Message::new(Role::Assistant, text_parts.join(""));
            message.tool_calls = calls;
            messages.push(message);
        } else if !text_parts.is_empty() || attachments > 0 {
            let mut message = Message::new(Role::User, text_parts.join("\n"));
            message.attachments = attachments;
            messages.push(message);
        }
    }
    messages
}

fn texts<'a>(parts: impl Iterator<Item = &'a Map<String, Value>>) -> String {
    parts
        .filter_map(|p| string(p, "text"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A result's text for the answer that cites it: a lone `output`/`result`/`content` string as
/// is, anything else as JSON.
fn result_text(response: Option<&Value>) -> String {
    let Some(Value::Object(object)) = response else {
        return String::new();
    };
    if object.len() == 1
        && let Some(Value::String(text)) = ["output", "result", "content"]
            .iter()
            .find_map(|key| object.get(*key))
    {
        return text.clone();
    }
    Value::Object(object.clone()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(body: Value, dialect: SimDialect) -> Result<GenerateRequest, GoogleError> {
        parse(body.to_string().as_bytes(), dialect, "gemini-2.5-flash")
    }

    fn message(result: Result<GenerateRequest, GoogleError>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(error) => error.message,
        }
    }

    #[test]
    fn translates_turns_tools_and_config() {
        let request = parse_json(
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "weather in Paris?"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]}
                ],
                "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
                "generation_config": {"maxOutputTokens": 50, "stopSequences": ["x"], "responseMimeType": "application/json"}
            }),
            SimDialect::Gemini,
        )
        .unwrap();
        let conversation = request.conversation;
        let roles: Vec<Role> = conversation.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::Tool]
        );
        assert_eq!(conversation.messages[1].attachments, 1);
        assert_eq!(conversation.messages[3].text, "sunny");
        assert_eq!(
            conversation.messages[3].name.as_deref(),
            Some("get_weather")
        );
        assert_eq!(
            conversation.tools[0].parameters["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(
            conversation.tool_choice,
            ToolChoice::Named("get_weather".into())
        );
        assert_eq!(conversation.max_output_tokens, Some(50));
        assert_eq!(conversation.format, OutputFormat::JsonObject);
        assert!(!request.thinking);
    }

    #[test]
    fn validates_with_the_services_messages() {
        let user = json!({"role": "user", "parts": [{"text": "hi"}]});
        let call = |n: usize| {
            let parts: Vec<Value> = (0..n)
                .map(|_| json!({"functionCall": {"name": "f", "args": {}}}))
                .collect();
            json!({"role": "model", "parts": parts})
        };
        let responses = |n: usize| {
            let parts: Vec<Value> = (0..n)
                .map(|_| json!({"functionResponse": {"name": "f", "response": {}}}))
                .collect();
            json!({"role": "user", "parts": parts})
        };
        let gemini = |contents: Value| {
            message(parse_json(
                json!({"contents": contents}),
                SimDialect::Gemini,
            ))
        };
        assert_eq!(
            gemini(json!([{"role": "assistant", "parts": [{"text": "x"}]}])),
            "Please use a valid role: user, model."
        );
        assert!(
            gemini(json!([user, call(2), responses(1)]))
                .starts_with("Please ensure that the number of function response parts")
        );
        assert!(
            gemini(json!([user, responses(1)]))
                .starts_with("Please ensure that function response turn")
        );
        assert!(gemini(json!([])).contains("contents is not specified"));
        assert!(
            gemini(json!([{"role": "user", "parts": []}]))
                .contains("contents.parts must not be empty")
        );
        assert!(
            parse_json(
                json!({"contents": [user, call(2), responses(2)]}),
                SimDialect::Gemini
            )
            .is_ok()
        );
        let empty_text = json!({"contents": [{"role": "user", "parts": [{"text": ""}]}]});
        assert!(parse_json(empty_text.clone(), SimDialect::Gemini).is_ok());
        assert!(
            message(parse_json(empty_text, SimDialect::Vertex)).contains("empty text parameter")
        );
        let no_properties = json!({"contents": [user], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {}}}]}]});
        assert_eq!(
            message(parse_json(no_properties, SimDialect::Gemini)),
            "* GenerateContentRequest.tools[0].function_declarations[0].parameters.properties: should be non-empty for OBJECT type\n"
        );
    }

    #[test]
    fn thinking_requires_the_current_turns_signatures() {
        let signature = STANDARD.encode(b"sim-thought:abc");
        let body = |signed: Option<&str>, history_signed: bool| {
            let mut current = json!({"functionCall": {"name": "f", "args": {}}});
            if let Some(s) = signed {
                current["thoughtSignature"] = json!(s);
            }
            let mut old = json!({"functionCall": {"name": "old", "args": {}}});
            if history_signed {
                old["thoughtSignature"] = json!(signature);
            }
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "first"}]},
                    {"role": "model", "parts": [old]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "old", "response": {}}}]},
                    {"role": "model", "parts": [{"text": "done"}]},
                    {"role": "user", "parts": [{"text": "again"}]},
                    {"role": "model", "parts": [current]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}
                ],
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}
            })
        };
        let missing = message(parse_json(body(None, true), SimDialect::Gemini));
        assert!(
            missing
                .starts_with("Function call is missing a thought_signature in functionCall parts."),
            "{missing}"
        );
        assert!(
            missing.contains("`default_api:f` , position 6."),
            "{missing}"
        );
        assert_eq!(
            message(parse_json(body(Some("Zm9yZ2Vk"), true), SimDialect::Gemini)),
            "Corrupted thought signature."
        );
        // Only the current turn is checked; older calls may be unsigned (another model's).
        assert!(
            parse_json(body(Some(&signature), false), SimDialect::Gemini)
                .unwrap()
                .thinking
        );
        assert!(
            parse_json(
                body(Some("skip_thought_signature_validator"), false),
                SimDialect::Gemini
            )
            .is_ok()
        );
        let mut off = body(None, false);
        off["generationConfig"]["thinkingConfig"]["thinkingBudget"] = json!(0);
        assert!(!parse_json(off, SimDialect::Gemini).unwrap().thinking);
    }
}

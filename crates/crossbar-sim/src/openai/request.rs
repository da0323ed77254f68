//! Chat Completions requests: the fields of the current spec, validated with the API's own
//! error messages, and translated to the neutral conversation.
//!
//! `n` other than 1 is rejected (the simulator answers with one choice); deprecated
//! `functions`/`function_call` and custom tools are accepted but never called.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Target;
use super::params::{
    below_minimum, empty_array, field, invalid_value, json_object, json_type, missing, model,
    only_with_tools, reject_unknown,
};
use super::tools::{
    check_function_name, check_tool_sequence, strict_violation, tool_choice, tools,
};
use crate::SimDialect;
use crate::behaviour::{Conversation, Effort, Message, OutputFormat, Role, ToolCall};
use crate::error::SimError;
use crate::{ids, media};

/// Top-level properties of `CreateChatCompletionRequest` in openai.openapi.yaml, including
/// those it inherits from `CreateModelResponseProperties` and `ModelResponseProperties`.
const CHAT_FIELDS: &[&str] = &[
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "metadata",
    "modalities",
    "model",
    "moderation",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

pub(crate) struct ChatRequest {
    pub conversation: Conversation,
    /// The body's `model` ("" when absent, which only Azure allows).
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub obfuscation: bool,
}

#[derive(Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage {
    System {
        content: Value,
    },
    Developer {
        content: Value,
    },
    User {
        content: Value,
    },
    Assistant {
        #[serde(default)]
        content: Option<Value>,
        #[serde(default)]
        refusal: Option<String>,
        #[serde(default)]
        tool_calls: Option<Vec<WireToolCall>>,
    },
    Tool {
        content: Value,
        tool_call_id: String,
    },
    Function {
        #[serde(default)]
        content: Option<String>,
        name: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart {
    Text {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    ImageUrl {
        #[serde(default)]
        image_url: Option<Value>,
    },
    InputAudio {
        #[serde(default)]
        input_audio: Option<Value>,
    },
    File {
        #[serde(default)]
        file: Option<Value>,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WireToolCall {
    Function { id: String, function: WireCall },
    Custom { id: String, custom: WireCustomCall },
}

#[derive(Deserialize)]
struct WireCall {
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct WireCustomCall {
    name: String,
    input: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: WireJsonSchema },
}

#[derive(Deserialize)]
struct WireJsonSchema {
    name: String,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireStop {
    One(String),
    Many(Vec<String>),
}

#[derive(Default, Deserialize)]
struct WireStreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
    #[serde(default)]
    include_obfuscation: Option<bool>,
}

pub(crate) fn parse_chat(body: &[u8], target: &Target) -> Result<ChatRequest, SimError> {
    let object = json_object(body)?;
    reject_unknown(&object, CHAT_FIELDS)?;
    let model = model(&object, target)?;
    let messages = messages(&object)?;
    reasoning_model_rules(
        &object,
        target.deployment_model.as_deref().unwrap_or(&model),
    )?;
    let offered = tools(&object)?;
    let (tool_choice, allowed) = tool_choice(&object, offered.as_deref())?;
    let parallel = field::<bool>(&object, "parallel_tool_calls")?;
    if parallel.is_some() && offered.is_none() {
        return Err(only_with_tools("parallel_tool_calls"));
    }
    let mut tools = offered.unwrap_or_default();
    if let Some(allowed) = allowed {
        tools.retain(|t| allowed.contains(&t.name));
    }
    let format = output_format(&object, &messages)?;
    let stream = field::<bool>(&object, "stream")?.unwrap_or(false);
    let options = field::<WireStreamOptions>(&object, "stream_options")?;
    if options.is_some() && !stream {
        return Err(SimError::invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        )
        .param("stream_options"));
    }
    let options = options.unwrap_or_default();
    choice_count(&object)?;
    let conversation = Conversation {
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: parallel.unwrap_or(true),
        format,
        max_output_tokens: match positive(&object, "max_completion_tokens")? {
            Some(max) => Some(max),
            None => positive(&object, "max_tokens")?,
        },
        stop: stop(&object)?,
        reasoning: effort(&object)?,
        fingerprint: ids::fnv1a(body),
    };
    Ok(ChatRequest {
        conversation,
        model,
        stream,
        include_usage: options.include_usage.unwrap_or(false),
        obfuscation: target.dialect == SimDialect::OpenAi
            && options.include_obfuscation.unwrap_or(true),
    })
}

fn messages(object: &Map<String, Value>) -> Result<Vec<Message>, SimError> {
    let list: Vec<Value> = field(object, "messages")?.ok_or_else(|| missing("messages"))?;
    if list.is_empty() {
        return Err(empty_array("messages"));
    }
    let messages = list
        .iter()
        .enumerate()
        .map(|(index, value)| message(index, value))
        .collect::<Result<Vec<_>, _>>()?;
    check_tool_sequence(&messages)?;
    Ok(messages)
}

fn message(index: usize, value: &Value) -> Result<Message, SimError> {
    const ROLES: &[&str] = &[
        "system",
        "assistant",
        "user",
        "function",
        "tool",
        "developer",
    ];
    let param = format!("messages[{index}]");
    if !value.is_object() {
        return Err(SimError::invalid(format!(
            "Invalid type for '{param}': expected an object, but got {} instead.",
            json_type(value)
        ))
        .param(&param)
        .code("invalid_type"));
    }
    match value.get("role").and_then(Value::as_str) {
        None => return Err(missing(&format!("{param}.role"))),
        Some(role) if !ROLES.contains(&role) => {
            return Err(invalid_value(&format!("{param}.role"), role, ROLES));
        }
        Some(_) => {}
    }
    let wire = WireMessage::deserialize(value)
        .map_err(|error| SimError::invalid(format!("Invalid '{param}': {error}.")).param(&param))?;
    let content_param = format!("{param}.content");
    Ok(match wire {
        WireMessage::System { content } | WireMessage::Developer { content } => {
            with_content(Role::System, &content, &content_param)?
        }
        WireMessage::User { content } => with_content(Role::User, &content, &content_param)?,
        WireMessage::Assistant {
            content,
            refusal,
            tool_calls,
        } => {
            let mut message = match content {
                Some(content) => with_content(Role::Assistant, &content, &content_param)?,
                None => Message::new(Role::Assistant, refusal.unwrap_or_default()),
            };
            message.tool_calls = tool_calls
                .unwrap_or_default()
                .into_iter()
                .map(|call| match call {
                    WireToolCall::Function { id, function } => ToolCall {
                        id,
                        name: function.name,
                        arguments: function.arguments,
                    },
                    WireToolCall::Custom { id, custom } => ToolCall {
                        id,
                        name: custom.name,
                        arguments: custom.input,
                    },
                })
                .collect();
            message
        }
        WireMessage::Tool {
            content,
            tool_call_id,
        } => {
            let mut message = with_content(Role::Tool, &content, &content_param)?;
            message.tool_call_id = Some(tool_call_id);
            message
        }
        WireMessage::Function { content, name } => {
            let mut message = Message::new(Role::Tool, content.unwrap_or_default());
            message.name = Some(name);
            message
        }
    })
}

/// A message from a string or an array of content parts.
fn with_content(role: Role, content: &Value, param: &str) -> Result<Message, SimError> {
    let parts = match content {
        Value::String(text) => return Ok(Message::new(role, text.as_str())),
        Value::Array(parts) => parts,
        other => {
            return Err(SimError::invalid(format!(
                "Invalid type for '{param}': expected one of a string or array of objects, but \
                 got {} instead.",
                json_type(other)
            ))
            .param(param)
            .code("invalid_type"));
        }
    };
    let mut texts = Vec::new();
    let mut attachments = 0;
    for (index, part) in parts.iter().enumerate() {
        let part = WirePart::deserialize(part).map_err(|error| {
            SimError::invalid(format!("Invalid '{param}[{index}]': {error}."))
                .param(format!("{param}[{index}]"))
        })?;
        let at = format!("{param}[{index}]");
        match part {
            WirePart::Text { text } | WirePart::Refusal { refusal: text } => texts.push(text),
            WirePart::ImageUrl { image_url } => {
                let image = payload(image_url.as_ref(), &format!("{at}.image_url"))?;
                required_string(image, "url", &format!("{at}.image_url"))?;
                attachments += 1;
            }
            WirePart::InputAudio { input_audio } => {
                let audio_at = format!("{at}.input_audio");
                let audio = payload(input_audio.as_ref(), &audio_at)?;
                let data = required_string(audio, "data", &audio_at)?;
                let format = required_string(audio, "format", &audio_at)?;
                if media::decode(data).is_none() {
                    // Not verified against the real API's wording.
                    return Err(SimError::invalid(format!(
                        "Invalid value for '{audio_at}.data': expected base64-encoded audio."
                    ))
                    .param(format!("{audio_at}.data"))
                    .code("invalid_value"));
                }
                if !["wav", "mp3"].contains(&format) {
                    return Err(invalid_value(
                        &format!("{audio_at}.format"),
                        format,
                        &["wav", "mp3"],
                    ));
                }
                attachments += 1;
            }
            WirePart::File { file } => {
                let file_at = format!("{at}.file");
                let file = payload(file.as_ref(), &file_at)?;
                // Inline data needs its filename; without either form the API names file_id
                // (seen from the real API in openai/openai-agents-python#1513).
                let has = |key: &str| file.get(key).is_some_and(Value::is_string);
                if !(has("file_id") || (has("file_data") && has("filename"))) {
                    return Err(missing(&format!("{file_at}.file_id")));
                }
                if let Some(data) = file.get("file_data").and_then(Value::as_str) {
                    check_chat_file_data(data, &format!("{file_at}.file_data"))?;
                }
                attachments += 1;
            }
        }
    }
    let mut message = Message::new(role, texts.join("\n"));
    message.attachments = attachments;
    Ok(message)
}

/// Chat Completions reads PDFs only, from a base64 data URL; the API's words (seen in
/// vercel/ai#7266 and trpc-group/trpc-agent-go#1816).
fn check_chat_file_data(data: &str, param: &str) -> Result<(), SimError> {
    let expected = "Expected a base64-encoded data URL with an application/pdf MIME type (e.g. \
                    'data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ==')";
    let got = match media::data_url(data) {
        Ok(("application/pdf", _)) => return Ok(()),
        Ok((media_type, _)) => format!("but got unsupported MIME type '{media_type}'"),
        Err(_) => "but got an invalid base64-encoded value".to_owned(),
    };
    Err(
        SimError::invalid(format!("Invalid file data: '{param}'. {expected}, {got}."))
            .param(param)
            .code("invalid_value"),
    )
}

/// A content part's payload object (`image_url`, `input_audio`, `file`), required by the API.
fn payload<'v>(value: Option<&'v Value>, param: &str) -> Result<&'v Map<String, Value>, SimError> {
    match value {
        None | Some(Value::Null) => Err(missing(param)),
        Some(Value::Object(object)) => Ok(object),
        Some(other) => Err(SimError::invalid(format!(
            "Invalid type for '{param}': expected an object, but got {} instead.",
            json_type(other)
        ))
        .param(param)
        .code("invalid_type")),
    }
}

fn required_string<'v>(
    object: &'v Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<&'v str, SimError> {
    let param = format!("{at}.{key}");
    match object.get(key) {
        None | Some(Value::Null) => Err(missing(&param)),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(SimError::invalid(format!(
            "Invalid type for '{param}': expected a string, but got {} instead.",
            json_type(other)
        ))
        .param(&param)
        .code("invalid_type")),
    }
}

/// OpenAI's own name of a model another cloud names its way: Bedrock's `openai.gpt-5.4`
/// (perhaps behind a cross-region `us.`), Vertex's `openai/gpt-5.4`. The model's rules follow
/// it whatever door it is reached through.
pub(super) fn bare_model(model: &str) -> &str {
    let model = model.strip_prefix("openai/").unwrap_or(model);
    let model = ["us.", "eu.", "apac.", "jp.", "global."]
        .iter()
        .find_map(|region| model.strip_prefix(region))
        .unwrap_or(model);
    model.strip_prefix("openai.").unwrap_or(model)
}

/// Whether a model id is one of OpenAI's reasoning families (o-series, gpt-5 but the chat
/// snapshots, gpt-5.x); gpt-5.x reason only when asked to.
pub(super) fn is_reasoning_family(model: &str) -> bool {
    let model = bare_model(model);
    let family = |prefix: &str| {
        model == prefix
            || model
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('-'))
    };
    let gpt5 = family("gpt-5") && !model.starts_with("gpt-5-chat");
    family("o1") || family("o3") || family("o4-mini") || gpt5 || model.starts_with("gpt-5.")
}

/// OpenAI's reasoning models (o-series, gpt-5 except the chat snapshots) refuse `max_tokens`
/// and sampling parameters. gpt-5.1 and later default to no reasoning and then accept sampling,
/// so only an explicit effort other than "none" makes them refuse it. On Azure the deployment's
/// model decides. The answer itself never depends on the model name.
fn reasoning_model_rules(object: &Map<String, Value>, model: &str) -> Result<(), SimError> {
    let gpt5_later = bare_model(model).starts_with("gpt-5.");
    if !is_reasoning_family(model) {
        return Ok(());
    }
    let present = |key: &str| object.get(key).is_some_and(|v| !v.is_null());
    if present("max_tokens") {
        return Err(SimError::invalid(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use \
             'max_completion_tokens' instead.",
        )
        .param("max_tokens")
        .code("unsupported_parameter"));
    }
    let effort = object.get("reasoning_effort").and_then(Value::as_str);
    if gpt5_later && matches!(effort, None | Some("none")) {
        return Ok(());
    }
    if let Some(temperature) = object.get("temperature").filter(|v| !v.is_null())
        && temperature.as_f64() != Some(1.0)
    {
        return Err(SimError::invalid(format!(
            "Unsupported value: 'temperature' does not support {temperature} with this model. \
             Only the default (1) value is supported."
        ))
        .param("temperature")
        .code("unsupported_value"));
    }
    let unsupported = [
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "top_logprobs",
    ]
    .into_iter()
    .find(|key| present(key))
    .or_else(|| (object.get("logprobs") == Some(&Value::Bool(true))).then_some("logprobs"));
    match unsupported {
        Some(key) => Err(SimError::invalid(format!(
            "Unsupported parameter: '{key}' is not supported with this model."
        ))
        .param(key)
        .code("unsupported_parameter")),
        None => Ok(()),
    }
}

fn output_format(
    object: &Map<String, Value>,
    messages: &[Message],
) -> Result<OutputFormat, SimError> {
    match field::<WireFormat>(object, "response_format")? {
        None | Some(WireFormat::Text) => Ok(OutputFormat::Text),
        Some(WireFormat::JsonObject) => {
            if messages
                .iter()
                .any(|m| m.text.to_lowercase().contains("json"))
            {
                Ok(OutputFormat::JsonObject)
            } else {
                Err(SimError::invalid(
                    "'messages' must contain the word 'json' in some form, to use \
                     'response_format' of type 'json_object'.",
                )
                .param("messages"))
            }
        }
        Some(WireFormat::JsonSchema { json_schema }) => {
            check_function_name(&json_schema.name, "response_format.json_schema.name")?;
            let schema = json_schema.schema.unwrap_or_else(|| json!({}));
            if json_schema.strict == Some(true)
                && let Some(problem) = strict_violation(&schema, &mut Vec::new())
            {
                return Err(SimError::invalid(format!(
                    "Invalid schema for response_format '{}': {problem}",
                    json_schema.name
                ))
                .param("response_format"));
            }
            Ok(OutputFormat::JsonSchema(schema))
        }
    }
}

fn stop(object: &Map<String, Value>) -> Result<Vec<String>, SimError> {
    match field::<WireStop>(object, "stop")? {
        None => Ok(Vec::new()),
        Some(WireStop::One(stop)) => Ok(vec![stop]),
        Some(WireStop::Many(stops)) if stops.len() > 4 => Err(SimError::invalid(format!(
            "Invalid 'stop': array too long. Expected an array with maximum length 4, but got \
             an array with length {} instead.",
            stops.len()
        ))
        .param("stop")
        .code("array_above_max_length")),
        Some(WireStop::Many(stops)) => Ok(stops),
    }
}

fn positive(object: &Map<String, Value>, name: &str) -> Result<Option<u64>, SimError> {
    match field::<i64>(object, name)? {
        Some(value) if value < 1 => Err(below_minimum(name, value, 1)),
        value => Ok(value.map(i64::unsigned_abs)),
    }
}

fn choice_count(object: &Map<String, Value>) -> Result<(), SimError> {
    match field::<i64>(object, "n")? {
        None | Some(1) => Ok(()),
        Some(n) if n < 1 => Err(below_minimum("n", n, 1)),
        Some(n) => Err(SimError::invalid(format!(
            "Invalid 'n': the simulator generates one choice per request, but {n} were requested."
        ))
        .param("n")
        .code("unsupported_value")),
    }
}

fn effort(object: &Map<String, Value>) -> Result<Effort, SimError> {
    const EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh", "max"];
    match field::<String>(object, "reasoning_effort")?.as_deref() {
        None => Ok(Effort::None),
        Some(name) => {
            Effort::named(name).ok_or_else(|| invalid_value("reasoning_effort", name, EFFORTS))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::ToolChoice;
    use crate::openai::Operation;

    fn parse(body: Value) -> Result<ChatRequest, SimError> {
        parse_chat(
            body.to_string().as_bytes(),
            &Target::openai(Operation::Chat),
        )
    }

    fn error(body: Value) -> SimError {
        match parse(body) {
            Ok(_) => panic!("expected a validation error"),
            Err(error) => error,
        }
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    fn weather_tool() -> Value {
        json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
    }

    #[test]
    fn accepts_a_full_spec_request() {
        let request = parse(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "be terse"}]},
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "https://x"}}]}
            ],
            "temperature": 0.2, "top_p": 1, "seed": 1, "store": false, "metadata": {}, "user": "u",
            "max_completion_tokens": 50, "stop": "END", "reasoning_effort": "low",
            "stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false},
            "tools": [weather_tool()], "tool_choice": "auto", "parallel_tool_calls": false,
            "service_tier": "auto", "prompt_cache_key": "k", "safety_identifier": "s", "verbosity": "low"
        }))
        .unwrap();
        let conv = &request.conversation;
        assert_eq!(conv.messages[1].attachments, 1);
        assert_eq!(conv.max_output_tokens, Some(50));
        assert_eq!(conv.stop, ["END"]);
        assert_eq!(conv.reasoning, Effort::Low);
        assert!(!conv.parallel_tool_calls);
        assert!(request.stream && request.include_usage && !request.obfuscation);
    }

    #[test]
    fn rejects_what_the_api_rejects() {
        let bad_json = parse_chat(b"{", &Target::openai(Operation::Chat))
            .err()
            .unwrap();
        assert!(
            bad_json
                .message
                .starts_with("We could not parse the JSON body")
        );
        let unknown = error(json!({"model": "m", "messages": [user("hi")], "foo": 1}));
        assert_eq!(
            unknown.message,
            "Unrecognized request argument supplied: foo"
        );
        let missing = error(json!({"model": "m"}));
        assert_eq!(missing.param.as_deref(), Some("messages"));
        let empty = error(json!({"model": "m", "messages": []}));
        assert_eq!(
            (empty.param.as_deref(), empty.code.as_deref()),
            (Some("messages"), Some("empty_array"))
        );
        let role = error(json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}));
        assert_eq!(role.param.as_deref(), Some("messages[0].role"));
        assert!(
            role.message
                .starts_with("Invalid value: 'robot'. Supported values are: 'system'")
        );
        let no_model = error(json!({"messages": [user("hi")]}));
        assert_eq!(no_model.message, "you must provide a model parameter");
        let content = error(json!({"model": "m", "messages": [{"role": "user", "content": 5}]}));
        assert_eq!(content.code.as_deref(), Some("invalid_type"));
        let many = error(json!({"model": "m", "messages": [user("x")], "n": 2}));
        assert_eq!(many.param.as_deref(), Some("n"));
        let effort =
            error(json!({"model": "m", "messages": [user("x")], "reasoning_effort": "huge"}));
        assert_eq!(effort.param.as_deref(), Some("reasoning_effort"));
        let stops = error(
            json!({"model": "m", "messages": [user("x")], "stop": ["a", "b", "c", "d", "e"]}),
        );
        assert_eq!(stops.code.as_deref(), Some("array_above_max_length"));
        let zero = error(json!({"model": "m", "messages": [user("x")], "max_tokens": 0}));
        assert_eq!(zero.code.as_deref(), Some("integer_below_min_value"));
        let options = error(
            json!({"model": "m", "messages": [user("x")], "stream_options": {"include_usage": true}}),
        );
        assert_eq!(options.param.as_deref(), Some("stream_options"));
        let json_word = error(
            json!({"model": "m", "messages": [user("x")], "response_format": {"type": "json_object"}}),
        );
        assert_eq!(json_word.param.as_deref(), Some("messages"));
        let typed = error(json!({"model": "m", "messages": [user("x")], "max_tokens": "many"}));
        assert_eq!(typed.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn validates_tools_and_tool_choice() {
        let empty = error(json!({"model": "m", "messages": [user("x")], "tools": []}));
        assert_eq!(empty.param.as_deref(), Some("tools"));
        let name = error(
            json!({"model": "m", "messages": [user("x")], "tools": [{"type": "function", "function": {"name": "bad name"}}]}),
        );
        assert_eq!(name.param.as_deref(), Some("tools[0].function.name"));
        let choice = error(json!({"model": "m", "messages": [user("x")], "tool_choice": "auto"}));
        assert_eq!(choice.param.as_deref(), Some("tool_choice"));
        let parallel =
            error(json!({"model": "m", "messages": [user("x")], "parallel_tool_calls": true}));
        assert_eq!(parallel.param.as_deref(), Some("parallel_tool_calls"));
        let unknown = error(
            json!({"model": "m", "messages": [user("x")], "tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
        );
        assert_eq!(unknown.param.as_deref(), Some("tool_choice"));
        let strict = error(
            json!({"model": "m", "messages": [user("x")], "tools": [{"type": "function", "function": {"name": "f", "strict": true, "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}}}]}),
        );
        assert!(
            strict.message.ends_with("Missing 'a'."),
            "{}",
            strict.message
        );
        let allowed = parse(json!({"model": "m", "messages": [user("x")],
            "tools": [weather_tool(), {"type": "function", "function": {"name": "other"}}],
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "other"}}]}}}))
        .unwrap();
        assert_eq!(allowed.conversation.tool_choice, ToolChoice::Required);
        let names: Vec<&str> = allowed
            .conversation
            .tools
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["other"]);
    }

    #[test]
    fn strict_response_schema_must_be_closed() {
        let open = error(
            json!({"model": "m", "messages": [user("x")], "response_format": {"type": "json_schema",
            "json_schema": {"name": "out", "strict": true, "schema": {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}, "required": ["a"], "additionalProperties": false}}}}),
        );
        assert_eq!(
            open.message,
            "Invalid schema for response_format 'out': In context=('properties', 'a'), \
             'additionalProperties' is required to be supplied and to be false."
        );
    }

    #[test]
    fn tool_messages_must_answer_the_preceding_calls() {
        let call = |ids: &[&str]| {
            let calls: Vec<Value> = ids.iter().map(|id| json!({"id": id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}})).collect();
            json!({"role": "assistant", "content": null, "tool_calls": calls})
        };
        let result = |id: &str| json!({"role": "tool", "tool_call_id": id, "content": "ok"});
        let body = |messages: Vec<Value>| json!({"model": "m", "messages": messages, "tools": [weather_tool()]});
        assert!(
            parse(body(vec![
                user("x"),
                call(&["a", "b"]),
                result("b"),
                result("a")
            ]))
            .is_ok()
        );
        let stray = error(body(vec![user("x"), result("a")]));
        assert_eq!(stray.param.as_deref(), Some("messages.[1].role"));
        assert!(
            stray
                .message
                .contains("preceeding message with 'tool_calls'")
        );
        let wrong_id = error(body(vec![user("x"), call(&["a"]), result("z")]));
        assert_eq!(wrong_id.param.as_deref(), Some("messages.[2].role"));
        let unanswered = error(body(vec![
            user("x"),
            call(&["a", "b"]),
            result("a"),
            user("y"),
        ]));
        assert_eq!(unanswered.param.as_deref(), Some("messages.[1].role"));
        assert!(
            unanswered
                .message
                .ends_with("did not have response messages: b")
        );
        let trailing = error(body(vec![user("x"), call(&["a"])]));
        assert_eq!(trailing.param.as_deref(), Some("messages.[1].role"));
    }
}

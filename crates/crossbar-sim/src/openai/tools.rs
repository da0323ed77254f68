//! Tool definitions, `tool_choice`, and the rule that tool messages answer the preceding
//! assistant's tool calls, validated like the API does.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::params::{empty_array, field, invalid_value, json_type, missing, only_with_tools};
use crate::behaviour::{Message, Role, Tool, ToolChoice};
use crate::error::SimError;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WireTool {
    Function { function: WireFunction },
    Custom {},
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

/// Every assistant message with tool calls must be followed by one tool message per call id,
/// and tool messages may only answer the calls of that preceding assistant message.
pub(crate) fn check_tool_sequence(messages: &[Message]) -> Result<(), SimError> {
    let unanswered = |assistant: usize, ids: &[String]| {
        SimError::invalid(format!(
            "An assistant message with 'tool_calls' must be followed by tool messages \
             responding to each 'tool_call_id'. The following tool_call_ids did not have \
             response messages: {}",
            ids.join(", ")
        ))
        .param(format!("messages.[{assistant}].role"))
    };
    let mut pending: Option<(usize, Vec<String>)> = None;
    for (index, message) in messages.iter().enumerate() {
        if let (Role::Tool, Some(id)) = (message.role, &message.tool_call_id) {
            let answered = pending
                .as_mut()
                .and_then(|(_, open)| open.iter().position(|o| o == id).map(|at| open.remove(at)));
            if answered.is_none() {
                return Err(SimError::invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a \
                     preceeding message with 'tool_calls'.",
                )
                .param(format!("messages.[{index}].role")));
            }
            continue;
        }
        if let Some((assistant, open)) = pending.take()
            && !open.is_empty()
        {
            return Err(unanswered(assistant, &open));
        }
        if message.role == Role::Assistant && !message.tool_calls.is_empty() {
            let ids = message.tool_calls.iter().map(|c| c.id.clone()).collect();
            pending = Some((index, ids));
        }
    }
    match pending {
        Some((assistant, open)) if !open.is_empty() => Err(unanswered(assistant, &open)),
        _ => Ok(()),
    }
}

/// The offered function tools; `None` when the request has no `tools` at all.
pub(crate) fn tools(object: &Map<String, Value>) -> Result<Option<Vec<Tool>>, SimError> {
    let Some(list) = field::<Vec<Value>>(object, "tools")? else {
        return Ok(None);
    };
    if list.is_empty() {
        return Err(empty_array("tools"));
    }
    let mut tools = Vec::new();
    for (index, value) in list.iter().enumerate() {
        let param = format!("tools[{index}]");
        let wire = WireTool::deserialize(value).map_err(|error| {
            SimError::invalid(format!("Invalid '{param}': {error}.")).param(&param)
        })?;
        let WireTool::Function { function } = wire else {
            continue;
        };
        check_function_name(&function.name, &format!("{param}.function.name"))?;
        let parameters = function
            .parameters
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        if function.strict == Some(true)
            && let Some(problem) = strict_violation(&parameters, &mut Vec::new())
        {
            return Err(SimError::invalid(format!(
                "Invalid schema for function '{}': {problem}",
                function.name
            ))
            .param(format!("{param}.function.parameters")));
        }
        tools.push(Tool {
            name: function.name,
            description: function.description,
            parameters,
        });
    }
    Ok(Some(tools))
}

pub(crate) fn check_function_name(name: &str, param: &str) -> Result<(), SimError> {
    let length = name.chars().count();
    if length > 64 {
        return Err(SimError::invalid(format!(
            "Invalid '{param}': string too long. Expected a string with maximum length 64, but \
             got a string with length {length} instead."
        ))
        .param(param)
        .code("string_above_max_length"));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(SimError::invalid(format!(
            "Invalid '{param}': string does not match pattern. Expected a string that matches \
             the pattern '^[a-zA-Z0-9_-]+$'."
        ))
        .param(param)
        .code("invalid_value"));
    }
    Ok(())
}

/// Where a schema leaves OpenAI's strict subset (every object closed with
/// `additionalProperties: false` and listing all properties in `required`).
pub(crate) fn strict_violation(schema: &Value, context: &mut Vec<String>) -> Option<String> {
    let map = schema.as_object()?;
    let declares_object = match map.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => map.contains_key("properties"),
    };
    let at = || {
        let quoted: Vec<String> = context.iter().map(|c| format!("'{c}'")).collect();
        match quoted.as_slice() {
            [one] => format!("({one},)"),
            all => format!("({})", all.join(", ")),
        }
    };
    if declares_object {
        if map.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Some(format!(
                "In context={}, 'additionalProperties' is required to be supplied and to be false.",
                at()
            ));
        }
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(missing) = map
            .get("properties")
            .and_then(Value::as_object)
            .and_then(|p| p.keys().find(|k| !required.contains(&k.as_str())))
        {
            return Some(format!(
                "In context={}, 'required' is required to be supplied and to be an array \
                 including every key in properties. Missing '{missing}'.",
                at()
            ));
        }
    }
    let mut children: Vec<(Vec<String>, &Value)> = Vec::new();
    for key in ["properties", "$defs", "definitions"] {
        if let Some(Value::Object(named)) = map.get(key) {
            children.extend(
                named
                    .iter()
                    .map(|(n, s)| (vec![key.to_owned(), n.clone()], s)),
            );
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get(key) {
            let branches = branches.iter().enumerate();
            children.extend(branches.map(|(i, s)| (vec![key.to_owned(), i.to_string()], s)));
        }
    }
    if let Some(items) = map.get("items") {
        children.push((vec!["items".to_owned()], items));
    }
    for (path, child) in children {
        let depth = context.len();
        context.extend(path);
        let found = strict_violation(child, context);
        context.truncate(depth);
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The choice, plus the names an `allowed_tools` choice restricts the tools to.
pub(crate) fn tool_choice(
    object: &Map<String, Value>,
    tools: Option<&[Tool]>,
) -> Result<(ToolChoice, Option<Vec<String>>), SimError> {
    let Some(value) = object.get("tool_choice").filter(|v| !v.is_null()) else {
        return Ok((
            if tools.is_some() {
                ToolChoice::Auto
            } else {
                ToolChoice::None
            },
            None,
        ));
    };
    let Some(tools) = tools else {
        return Err(only_with_tools("tool_choice"));
    };
    let mode = |mode: &str, param: &str| match mode {
        "none" => Ok(ToolChoice::None),
        "auto" => Ok(ToolChoice::Auto),
        "required" => Ok(ToolChoice::Required),
        other => Err(invalid_value(param, other, &["none", "auto", "required"])),
    };
    let name_of = |choice: &Value| {
        choice
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match value {
        Value::String(choice) => Ok((mode(choice, "tool_choice")?, None)),
        Value::Object(choice) => match choice.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = name_of(value).ok_or_else(|| missing("tool_choice.function.name"))?;
                if !tools.iter().any(|t| t.name == name) {
                    return Err(SimError::invalid(format!(
                        "Invalid value for 'tool_choice': function '{name}' is not among the \
                         function tools in 'tools'."
                    ))
                    .param("tool_choice"));
                }
                Ok((ToolChoice::Named(name), None))
            }
            Some("allowed_tools") => {
                let allowed = choice.get("allowed_tools");
                let requested = allowed
                    .and_then(|a| a.get("mode"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing("tool_choice.allowed_tools.mode"))?;
                let choice = mode(requested, "tool_choice.allowed_tools.mode")?;
                let names = allowed
                    .and_then(|a| a.get("tools"))
                    .and_then(Value::as_array)
                    .ok_or_else(|| missing("tool_choice.allowed_tools.tools"))?
                    .iter()
                    .filter_map(name_of)
                    .collect();
                Ok((choice, Some(names)))
            }
            Some("custom") => Err(SimError::invalid(
                "The simulator only calls function tools; a custom 'tool_choice' is not supported.",
            )
            .param("tool_choice")),
            _ => Err(invalid_value(
                "tool_choice.type",
                choice
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                &["function", "allowed_tools", "custom"],
            )),
        },
        other => Err(SimError::invalid(format!(
            "Invalid type for 'tool_choice': expected one of a string or an object, but got {} \
             instead.",
            json_type(other)
        ))
        .param("tool_choice")
        .code("invalid_type")),
    }
}

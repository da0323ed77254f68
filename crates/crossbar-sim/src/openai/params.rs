//! Request validation helpers shared by the OpenAI endpoints, producing the API's own error
//! messages, params and codes.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Target;
use crate::SimDialect;
use crate::error::SimError;

const INVALID_JSON: &str = "We could not parse the JSON body of your request. (HINT: This likely \
    means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
    but what was sent was not valid JSON. If you have trouble figuring out how to fix this, \
    please contact us through our help center at help.openai.com.)";

/// The body as a JSON object, or the API's "could not parse" error.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(SimError::invalid(format!(
            "Invalid type for body: expected an object, but got {} instead.",
            json_type(&other)
        ))
        .code("invalid_type")),
        Err(_) => Err(SimError::invalid(INVALID_JSON)),
    }
}

pub(crate) fn reject_unknown(object: &Map<String, Value>, known: &[&str]) -> Result<(), SimError> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(SimError::invalid(format!(
            "Unrecognized request argument supplied: {key}"
        ))),
        None => Ok(()),
    }
}

/// `model` is required except on Azure deployment URLs, where the deployment decides.
pub(crate) fn model(object: &Map<String, Value>, target: &Target) -> Result<String, SimError> {
    match (field::<String>(object, "model")?, target.dialect) {
        (Some(model), _) => Ok(model),
        (None, SimDialect::Azure) => Ok(String::new()),
        (None, _) => Err(SimError::invalid("you must provide a model parameter")),
    }
}

/// One optional field, with the API's type error naming it.
pub(crate) fn field<T: DeserializeOwned>(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, SimError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::deserialize(value).map(Some).map_err(|error| {
            SimError::invalid(format!("Invalid type for '{name}': {error}."))
                .param(name)
                .code("invalid_type")
        }),
    }
}

pub(crate) fn missing(param: &str) -> SimError {
    SimError::invalid(format!("Missing required parameter: '{param}'."))
        .param(param)
        .code("missing_required_parameter")
}

pub(crate) fn empty_array(param: &str) -> SimError {
    SimError::invalid(format!(
        "Invalid '{param}': empty array. Expected an array with minimum length 1, but got an \
         empty array instead."
    ))
    .param(param)
    .code("empty_array")
}

pub(crate) fn invalid_value(param: &str, value: &str, supported: &[&str]) -> SimError {
    let quoted: Vec<String> = supported.iter().map(|s| format!("'{s}'")).collect();
    let list = match quoted.split_last() {
        Some((last, [only])) => format!("{only} and {last}"),
        Some((last, rest)) if !rest.is_empty() => format!("{}, and {last}", rest.join(", ")),
        _ => quoted.concat(),
    };
    SimError::invalid(format!(
        "Invalid value: '{value}'. Supported values are: {list}."
    ))
    .param(param)
    .code("invalid_value")
}

pub(crate) fn below_minimum(param: &str, value: i64, minimum: i64) -> SimError {
    SimError::invalid(format!(
        "Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, but \
         got {value} instead."
    ))
    .param(param)
    .code("integer_below_min_value")
}

pub(crate) fn only_with_tools(param: &str) -> SimError {
    SimError::invalid(format!(
        "Invalid value for '{param}': '{param}' is only allowed when 'tools' are specified."
    ))
    .param(param)
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

//! Gemini API `:embedContent` (`{content, outputDimensionality?}` → `{embedding: {values}}`)
//! and `:batchEmbedContents` (`{requests: [...]}` → `{embeddings: [{values}]}`), whose requests
//! must each name the URL's model as `models/{m}`.

use serde_json::{Map, Value, json};

use super::error::GoogleError;
use super::proto::get;
use crate::embeddings::{EmbedInput, embed};

const EMBED_FIELDS: &[&str] = &[
    "model",
    "content",
    "taskType",
    "title",
    "outputDimensionality",
];
const MAX_BATCH: usize = 100;
const MAX_DIMENSIONS: u64 = 8192;

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, GoogleError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(GoogleError::violations(vec![(
            String::new(),
            "Invalid JSON payload received. Unexpected token.".to_owned(),
        )])),
    }
}

fn unknown(object: &Map<String, Value>, allowed: &[&str], path: &str) -> Option<GoogleError> {
    let key = object.keys().find(|key| {
        !allowed
            .iter()
            .any(|a| a == key || super::proto::snake(a) == **key)
    })?;
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" at '{path}'")
    };
    Some(GoogleError::violations(vec![(
        path.to_owned(),
        format!("Invalid JSON payload received. Unknown name \"{key}\"{at}: Cannot find field."),
    )]))
}

/// One `EmbedContentRequest`: its text and dimensions.
fn one(
    object: &Map<String, Value>,
    path: &str,
    request: &str,
    default_dimensions: usize,
) -> Result<Vec<f32>, GoogleError> {
    if let Some(error) = unknown(object, EMBED_FIELDS, path) {
        return Err(error);
    }
    let content = get(object, "content")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            GoogleError::invalid(format!("* {request}.content: content is not specified\n"))
        })?;
    let text: Vec<&str> = get(content, "parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if text.is_empty() {
        return Err(GoogleError::invalid(format!(
            "* {request}.content.parts: contents.parts must not be empty.\n"
        )));
    }
    let dimensions = match get(object, "outputDimensionality") {
        None => default_dimensions,
        Some(value) => value
            .as_u64()
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| {
                GoogleError::invalid(format!(
                    "* {request}.output_dimensionality: must be between 1 and {MAX_DIMENSIONS}\n"
                ))
            })?,
    };
    Ok(embed(&EmbedInput::Text(text.join("\n")), dimensions))
}

pub(crate) fn embed_content(body: &[u8], dimensions: usize) -> Result<String, GoogleError> {
    let object = parse_object(body)?;
    let values = one(&object, "", "EmbedContentRequest", dimensions)?;
    Ok(serde_json::to_string_pretty(&json!({"embedding": {"values": values}})).unwrap_or_default())
}

pub(crate) fn batch_embed_contents(
    body: &[u8],
    model: &str,
    dimensions: usize,
) -> Result<String, GoogleError> {
    let object = parse_object(body)?;
    if let Some(error) = unknown(&object, &["requests"], "") {
        return Err(error);
    }
    let requests = get(&object, "requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            GoogleError::invalid(
                "* BatchEmbedContentsRequest.requests: requests is not specified\n",
            )
        })?;
    if requests.len() > MAX_BATCH {
        return Err(GoogleError::invalid(format!(
            "* BatchEmbedContentsRequest.requests: at most {MAX_BATCH} requests can be in one batch\n"
        )));
    }
    let expected = format!("models/{model}");
    let mut embeddings = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let request = request.as_object().ok_or_else(|| {
            GoogleError::invalid(format!(
                "Invalid value at 'requests[{i}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.EmbedContentRequest), {request}"
            ))
        })?;
        let named = get(request, "model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if named != expected {
            return Err(GoogleError::invalid(format!(
                "* BatchEmbedContentsRequest.requests[{i}].model: Model in request `{named}` \
                 does not match the model in the URL `{expected}`.\n"
            )));
        }
        let path = format!("requests[{i}]");
        let values = one(
            request,
            &path,
            &format!("BatchEmbedContentsRequest.{path}"),
            dimensions,
        )?;
        embeddings.push(json!({"values": values}));
    }
    Ok(serde_json::to_string_pretty(&json!({"embeddings": embeddings})).unwrap_or_default())
}

/// Vertex AI's `:predict` on a publisher text-embedding model: `{instances: [{content,
/// task_type?, title?}], parameters?: {outputDimensionality?, autoTruncate?}}` → one prediction
/// per instance with its vector and `statistics` (the model server's snake case), plus the
/// billable characters. The request is a `google.protobuf.Value`, so unknown keys are the
/// model's to refuse; these are refused as its 400 words them.
pub(crate) fn predict(body: &[u8], default_dimensions: usize) -> Result<String, GoogleError> {
    let object = parse_object(body)?;
    let instances = get(&object, "instances")
        .and_then(Value::as_array)
        .filter(|instances| !instances.is_empty())
        .ok_or_else(|| GoogleError::invalid("instances must not be empty."))?;
    let dimensions = match get(&object, "parameters").and_then(|p| p.get("outputDimensionality")) {
        None | Some(Value::Null) => default_dimensions,
        Some(value) => value
            .as_u64()
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| {
                GoogleError::invalid(format!("Invalid outputDimensionality: {value}"))
            })?,
    };
    let mut predictions = Vec::new();
    let mut characters = 0;
    for (i, instance) in instances.iter().enumerate() {
        let content = instance
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| GoogleError::invalid(format!("instances[{i}].content is required.")))?;
        let input = EmbedInput::Text(content.to_owned());
        characters += content.chars().filter(|c| !c.is_whitespace()).count();
        predictions.push(json!({"embeddings": {
            "values": embed(&input, dimensions),
            "statistics": {"truncated": false, "token_count": input.tokens()}}}));
    }
    Ok(json!({"predictions": predictions,
              "metadata": {"billableCharacterCount": characters}})
    .to_string())
}

//! InvokeModel (`POST /model/{modelId}/invoke`) for the embedding models: Amazon Titan Text
//! Embeddings v2 and Cohere Embed, each with its own JSON body, checked as the service's JSON
//! schema does ("Malformed input request: #: required key [inputText] not found, ...") and
//! answered with the shared deterministic vectors (`crate::embeddings`) and the input's token
//! count in `X-Amzn-Bedrock-Input-Token-Count`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::error::BedrockError;
use crate::embeddings::{EmbedInput, embed};
use crate::{http, ids};

/// Titan v2's dimensions, and its default.
const TITAN_DIMENSIONS: &[u64] = &[256, 512, 1024];
const TITAN_DEFAULT_DIMENSIONS: u64 = 1024;
/// Cohere Embed v3's dimensions.
const COHERE_DIMENSIONS: usize = 1024;
const COHERE_INPUT_TYPES: &[&str] = &[
    "search_document",
    "search_query",
    "classification",
    "clustering",
];
const COHERE_MAX_TEXTS: usize = 96;

fn malformed(detail: impl std::fmt::Display) -> BedrockError {
    BedrockError::validation(format!(
        "Malformed input request: {detail}, please reformat your input and try again."
    ))
}

/// The JSON schema's refusal of keys it does not define.
fn only(object: &Map<String, Value>, allowed: &[&str]) -> Result<(), BedrockError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(malformed(format!(
            "#: extraneous key [{key}] is not permitted"
        ))),
        None => Ok(()),
    }
}

fn required<'v>(object: &'v Map<String, Value>, key: &str) -> Result<&'v Value, BedrockError> {
    object
        .get(key)
        .ok_or_else(|| malformed(format!("#: required key [{key}] not found")))
}

/// The answer to an InvokeModel call on `model`, or the service's refusal.
pub(super) fn invoke(model: &str, body: &[u8]) -> Result<Response, BedrockError> {
    let object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| malformed("#: expected type: JSONObject, found: String"))?;
    let model = model.to_ascii_lowercase();
    let (answer, tokens) = if model.contains("titan-embed-text") {
        titan(&object)?
    } else if model.contains("cohere.embed") {
        cohere(&object)?
    } else {
        return Err(BedrockError::validation(
            "The provided model identifier is invalid.",
        ));
    };
    let mut response = http::json_body(StatusCode::OK, answer.to_string());
    response.headers_mut().insert(
        "x-amzn-bedrock-input-token-count",
        HeaderValue::from(tokens),
    );
    Ok(response)
}

fn titan(object: &Map<String, Value>) -> Result<(Value, u64), BedrockError> {
    only(
        object,
        &["inputText", "dimensions", "normalize", "embeddingTypes"],
    )?;
    let text = required(object, "inputText")?
        .as_str()
        .ok_or_else(|| malformed("#/inputText: expected type: String, found: Integer"))?;
    let dimensions = match object.get("dimensions") {
        None => TITAN_DEFAULT_DIMENSIONS,
        Some(value) => value
            .as_u64()
            .filter(|d| TITAN_DIMENSIONS.contains(d))
            .ok_or_else(|| malformed(format!("#/dimensions: {value} is not a valid enum value")))?,
    };
    let input = EmbedInput::Text(text.to_owned());
    let vector = embed(&input, usize::try_from(dimensions).unwrap_or(0));
    let tokens = input.tokens();
    Ok((
        json!({"embedding": vector, "embeddingsByType": {"float": vector},
               "inputTextTokenCount": tokens}),
        tokens,
    ))
}

fn cohere(object: &Map<String, Value>) -> Result<(Value, u64), BedrockError> {
    only(
        object,
        &[
            "texts",
            "images",
            "input_type",
            "truncate",
            "embedding_types",
        ],
    )?;
    let texts: Vec<&str> = required(object, "texts")?
        .as_array()
        .map(|texts| texts.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if texts.len() > COHERE_MAX_TEXTS {
        return Err(malformed(format!(
            "#/texts: expected maximum item count: {COHERE_MAX_TEXTS}, found: {}",
            texts.len()
        )));
    }
    let input_type = required(object, "input_type")?;
    if !input_type
        .as_str()
        .is_some_and(|t| COHERE_INPUT_TYPES.contains(&t))
    {
        return Err(malformed(format!(
            "#/input_type: {input_type} is not a valid enum value"
        )));
    }
    let inputs: Vec<EmbedInput> = texts
        .iter()
        .map(|t| EmbedInput::Text((*t).to_owned()))
        .collect();
    let vectors: Vec<Vec<f32>> = inputs
        .iter()
        .map(|input| embed(input, COHERE_DIMENSIONS))
        .collect();
    let tokens = inputs.iter().map(EmbedInput::tokens).sum();
    let id = ids::fnv1a(texts.concat().as_bytes());
    Ok((
        json!({"id": format!("{id:016x}"), "embeddings": vectors,
               "response_type": "embeddings_floats", "texts": texts}),
        tokens,
    ))
}

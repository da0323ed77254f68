//! Embeddings requests and responses (`CreateEmbeddingRequest` / `CreateEmbeddingResponse`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value};

use super::Target;
use super::params::{
    below_minimum, field, invalid_value, json_object, missing, model, reject_unknown,
};
use crate::embeddings::{EmbedInput, embed};
use crate::error::SimError;

const EMBEDDING_FIELDS: &[&str] = &["input", "model", "encoding_format", "dimensions", "user"];
/// OpenAI's per-request input limit.
const MAX_INPUTS: usize = 2048;
/// Largest `dimensions` accepted (above text-embedding-3-large's 3072, below anything absurd).
const MAX_DIMENSIONS: i64 = 8192;

pub(crate) struct EmbeddingRequest {
    pub model: String,
    inputs: Vec<EmbedInput>,
    dimensions: Option<usize>,
    base64: bool,
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    /// Little-endian f32 bytes, base64-encoded.
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

pub(crate) fn parse(body: &[u8], target: &Target) -> Result<EmbeddingRequest, SimError> {
    let object = json_object(body)?;
    reject_unknown(&object, EMBEDDING_FIELDS)?;
    let model = model(&object, target)?;
    let inputs = inputs(&object)?;
    let dimensions = match field::<i64>(&object, "dimensions")? {
        None => None,
        Some(n) if n < 1 => return Err(below_minimum("dimensions", n, 1)),
        Some(n) if n > MAX_DIMENSIONS => {
            return Err(SimError::invalid(format!(
                "Invalid value for 'dimensions' = {n}. Must be less than or equal to \
                 {MAX_DIMENSIONS}."
            ))
            .param("dimensions"));
        }
        Some(n) => usize::try_from(n).ok(),
    };
    let base64 = match field::<String>(&object, "encoding_format")?.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid_value(
                "encoding_format",
                other,
                &["float", "base64"],
            ));
        }
    };
    Ok(EmbeddingRequest {
        model,
        inputs,
        dimensions,
        base64,
    })
}

/// `input`: a string, strings, token ids, or lists of token ids; nothing empty.
fn inputs(object: &Map<String, Value>) -> Result<Vec<EmbedInput>, SimError> {
    let invalid = || {
        SimError::invalid(
            "'$.input' is invalid. Please check the API reference: \
             https://platform.openai.com/docs/api-reference.",
        )
    };
    let tokens = |list: &[Value]| -> Option<Vec<u32>> {
        if list.is_empty() {
            return None;
        }
        list.iter()
            .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    };
    let inputs = match object.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(text)) if !text.is_empty() => vec![EmbedInput::Text(text.clone())],
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![EmbedInput::Tokens(tokens(items).ok_or_else(invalid)?)]
        }
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(text) if !text.is_empty() => Some(EmbedInput::Text(text.clone())),
                Value::Array(list) => tokens(list).map(EmbedInput::Tokens),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(invalid)?,
        Some(_) => return Err(invalid()),
    };
    if inputs.len() > MAX_INPUTS {
        return Err(SimError::invalid(format!(
            "Invalid 'input': array too long. Expected an array with maximum length \
             {MAX_INPUTS}, but got an array with length {} instead.",
            inputs.len()
        ))
        .param("input")
        .code("array_above_max_length"));
    }
    Ok(inputs)
}

impl EmbeddingRequest {
    /// The response body, reporting `model`.
    pub fn respond(&self, model: &str, default_dimensions: usize) -> String {
        let dimensions = self.dimensions.unwrap_or(default_dimensions);
        let data = self
            .inputs
            .iter()
            .enumerate()
            .map(|(index, input)| {
                let vector = embed(input, dimensions);
                let embedding = if self.base64 {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Vector::Base64(STANDARD.encode(bytes))
                } else {
                    Vector::Float(vector)
                };
                EmbeddingItem {
                    object: "embedding",
                    index,
                    embedding,
                }
            })
            .collect();
        let tokens = self.inputs.iter().map(EmbedInput::tokens).sum();
        let list = EmbeddingList {
            object: "list",
            data,
            model,
            usage: EmbeddingUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        };
        serde_json::to_string(&list).unwrap_or_default()
    }
}

//! Embeddings on Bedrock through InvokeModel (`POST /model/{id}/invoke`), whose body is the
//! model family's own JSON: Amazon Titan Text Embeddings (v2: one `inputText`, `dimensions`
//! 256, 512 or 1024) and Cohere Embed (`texts`, a required `input_type`). The answer's shape
//! says which family wrote it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::embeddings::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

/// The embedding model families Bedrock serves through InvokeModel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Titan,
    Cohere,
}

fn family(target: &str) -> Result<Family> {
    let target = target.to_ascii_lowercase();
    if target.contains("titan-embed") {
        Ok(Family::Titan)
    } else if target.contains("cohere.embed") {
        Ok(Family::Cohere)
    } else {
        Err(Error::invalid_field(
            "model",
            format!(
                "Bedrock embeddings are translated for Amazon Titan Text Embeddings and Cohere \
                 Embed models; '{target}' is neither."
            ),
        ))
    }
}

/// Titan's request: one text per call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

/// Cohere's request; `search_document` is the input type of text stored for retrieval, the
/// common use of an OpenAI-style embeddings call, which names none.
#[derive(Debug, Serialize)]
struct CohereRequest<'a> {
    texts: &'a [String],
    input_type: &'static str,
}

/// Cohere Embed takes at most this many texts in one call.
const COHERE_MAX_TEXTS: usize = 96;

pub(super) fn body(request: &EmbeddingRequest, target: &str) -> Result<Vec<u8>> {
    let EmbeddingInput::Texts(texts) = &request.input else {
        return Err(Error::invalid_field(
            "input",
            "Bedrock embedding models take text only; token-id inputs are not supported.",
        ));
    };
    let encoded = match family(target)? {
        Family::Titan => {
            let [text] = texts.as_slice() else {
                return Err(Error::invalid_field(
                    "input",
                    format!(
                        "Titan Text Embeddings take one input per request; this one has {}.",
                        texts.len()
                    ),
                ));
            };
            serde_json::to_vec(&TitanRequest {
                input_text: text,
                dimensions: request.dimensions,
            })
        }
        Family::Cohere => {
            if request.dimensions.is_some() {
                return Err(Error::invalid_field(
                    "dimensions",
                    "Cohere Embed on Bedrock has a fixed number of dimensions.",
                ));
            }
            if texts.len() > COHERE_MAX_TEXTS {
                return Err(Error::invalid_field(
                    "input",
                    format!(
                        "Cohere Embed takes at most {COHERE_MAX_TEXTS} inputs per request; this \
                         one has {}.",
                        texts.len()
                    ),
                ));
            }
            serde_json::to_vec(&CohereRequest {
                texts,
                input_type: "search_document",
            })
        }
    };
    encoded.map_err(|e| Error::internal(format!("encoding a Bedrock embeddings request: {e}")))
}

/// Titan's answer, or Cohere's (`embeddings` as a list of vectors, or by type when the
/// request named `embedding_types`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Answer {
    Titan {
        embedding: Vec<f32>,
        #[serde(rename = "inputTextTokenCount", default)]
        input_tokens: u64,
    },
    Cohere {
        embeddings: Value,
    },
}

/// Titan counts the input's tokens; Cohere's body does not (the count is left to the gateway's
/// estimate).
pub(super) fn decode(body: &[u8]) -> Result<EmbeddingResponse> {
    let invalid = |e: &dyn std::fmt::Display| {
        Error::bad_upstream(format!("The upstream returned invalid embeddings: {e}"))
    };
    let answer: Answer = serde_json::from_slice(body).map_err(|e| invalid(&e))?;
    let (vectors, input_tokens) = match answer {
        Answer::Titan {
            embedding,
            input_tokens,
        } => (vec![embedding], input_tokens),
        Answer::Cohere { embeddings } => {
            let floats = match embeddings {
                Value::Object(mut by_type) => by_type.remove("float").unwrap_or(Value::Null),
                list => list,
            };
            let vectors: Vec<Vec<f32>> = serde_json::from_value(floats).map_err(|e| invalid(&e))?;
            (vectors, 0)
        }
    };
    Ok(EmbeddingResponse {
        model: String::new(),
        vectors,
        input_tokens,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(texts: &[&str], dimensions: Option<u32>) -> EmbeddingRequest {
        EmbeddingRequest {
            model: "embed".into(),
            input: EmbeddingInput::Texts(texts.iter().map(|t| (*t).to_owned()).collect()),
            dimensions,
            user: None,
        }
    }

    fn encoded(request: &EmbeddingRequest, target: &str) -> Result<Value> {
        body(request, target).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn titan_takes_one_text_and_its_dimensions() {
        assert_eq!(
            encoded(
                &request(&["hello"], Some(256)),
                "amazon.titan-embed-text-v2:0"
            )
            .unwrap(),
            json!({"inputText": "hello", "dimensions": 256})
        );
        let error =
            encoded(&request(&["a", "b"], None), "amazon.titan-embed-text-v2:0").unwrap_err();
        assert_eq!(
            error.message,
            "Titan Text Embeddings take one input per request; this one has 2."
        );
        let answer = decode(
            br#"{"embedding":[0.5,-0.25],"embeddingsByType":{"float":[0.5,-0.25]},"inputTextTokenCount":3}"#,
        )
        .unwrap();
        assert_eq!(answer.vectors, vec![vec![0.5, -0.25]]);
        assert_eq!(answer.input_tokens, 3);
    }

    #[test]
    fn cohere_takes_texts_as_documents() {
        assert_eq!(
            encoded(&request(&["a", "b"], None), "cohere.embed-english-v3").unwrap(),
            json!({"texts": ["a", "b"], "input_type": "search_document"})
        );
        assert_eq!(
            encoded(&request(&["a"], Some(8)), "cohere.embed-english-v3")
                .unwrap_err()
                .message,
            "Cohere Embed on Bedrock has a fixed number of dimensions."
        );
        for body in [
            json!({"id": "x", "embeddings": [[1.0], [2.0]], "response_type": "embeddings_floats", "texts": ["a", "b"]}),
            json!({"id": "x", "embeddings": {"float": [[1.0], [2.0]]}, "response_type": "embeddings_by_type"}),
        ] {
            let answer = decode(body.to_string().as_bytes()).unwrap();
            assert_eq!(answer.vectors, vec![vec![1.0], vec![2.0]]);
            assert_eq!(answer.input_tokens, 0);
        }
    }

    #[test]
    fn other_models_are_refused_by_name() {
        assert_eq!(
            encoded(&request(&["a"], None), "amazon.nova-pro-v1:0")
                .unwrap_err()
                .message,
            "Bedrock embeddings are translated for Amazon Titan Text Embeddings and Cohere Embed \
             models; 'amazon.nova-pro-v1:0' is neither."
        );
    }
}

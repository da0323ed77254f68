//! The clouds' own doors to the OpenAI dialects: Bedrock Mantle, Bedrock Runtime and Vertex AI
//! serve OpenAI Chat Completions or the Responses API at their own URLs with their own auth.
//! Each door is a row of the provider table; the egress is the existing Chat or Responses one,
//! pointed at the door's base URL, so everything the dialects do (translation, streams, errors)
//! carries over, and a Responses-only door serves Chat and Messages clients through it.
//!
//! A configured `endpoint` replaces the public host (`https://bedrock-mantle.{region}.api.aws`,
//! `https://bedrock-runtime.{region}.amazonaws.com`) or, on Vertex, the versioned API root
//! (`https://{location}-aiplatform.googleapis.com/v1`); the door's path is added below it.

use crate::auth::sigv4::{BEDROCK, BEDROCK_MANTLE};
use crate::config::{BedrockSettings, MaxTokensFieldConfig, OpenAiOptions, VertexSettings};
use crate::dialects::responses::ResponsesEgress;
use crate::dialects::{OpenAiEgress, Parts, vertex_endpoint};

use super::MaxTokensField;

/// One cloud door speaking an OpenAI dialect, with the cloud's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Door<'a> {
    /// Bedrock Mantle, OpenAI's own models: Responses under `/openai/v1` (the path the
    /// `openai` SDK's bedrock provider builds), SigV4 `bedrock-mantle` or a Bedrock API key.
    MantleResponses(&'a BedrockSettings),
    /// Bedrock Mantle, open-weight models: Chat Completions under `/v1`.
    MantleChat(&'a BedrockSettings),
    /// Bedrock Runtime's OpenAI-compatible Chat Completions under `/openai/v1`, SigV4 `bedrock`
    /// or a Bedrock API key.
    RuntimeChat(&'a BedrockSettings),
    /// Vertex AI, OpenAI's models: Responses under `publishers/openai/v1`, Google OAuth.
    VertexResponses(&'a VertexSettings),
    /// Vertex AI's OpenAI-compatible Chat Completions (`endpoints/openapi`), for Gemini and
    /// Model Garden models named `publisher/model`, Google OAuth.
    VertexChat(&'a VertexSettings),
}

impl Door<'_> {
    fn responses(self) -> bool {
        matches!(self, Self::MantleResponses(_) | Self::VertexResponses(_))
    }
}

/// This module's rows of the provider table.
pub(crate) fn provider_parts(
    door: Door<'_>,
    options: &OpenAiOptions,
    endpoint: Option<String>,
) -> Result<Parts, String> {
    let endpoint = endpoint.map(|e| e.trim_end_matches('/').to_owned());
    let (base, key_header, authorizer) = match door {
        Door::MantleResponses(bedrock) | Door::MantleChat(bedrock) | Door::RuntimeChat(bedrock) => {
            let region = &bedrock.region;
            let (host, service) = match door {
                Door::RuntimeChat(_) => (
                    format!("https://bedrock-runtime.{region}.amazonaws.com"),
                    BEDROCK,
                ),
                _ => (
                    format!("https://bedrock-mantle.{region}.api.aws"),
                    BEDROCK_MANTLE,
                ),
            };
            let root = endpoint.unwrap_or(host);
            let base = match door {
                Door::MantleChat(_) => format!("{root}/v1"),
                _ => format!("{root}/openai/v1"),
            };
            let (key_header, authorizer) = bedrock.authorize(service)?;
            (base, key_header, authorizer)
        }
        Door::VertexResponses(vertex) | Door::VertexChat(vertex) => {
            let VertexSettings {
                project, location, ..
            } = vertex;
            let root = endpoint.unwrap_or_else(|| vertex_endpoint(location));
            let scope = format!("{root}/projects/{project}/locations/{location}");
            let base = match door {
                Door::VertexResponses(_) => format!("{scope}/publishers/openai/v1"),
                _ => format!("{scope}/endpoints/openapi"),
            };
            // A configured `api_key` is a static bearer token; otherwise Google credentials.
            (base, Some("authorization"), vertex.authorizer()?)
        }
    };
    let mut parts = if door.responses() {
        Parts::new(
            ResponsesEgress {
                azure_api_version: None,
            },
            base,
            key_header,
        )
    } else {
        // OpenAI-compatible servers of open models: `max_tokens` unless told otherwise.
        let max_tokens_field = match options.max_tokens_field {
            Some(MaxTokensFieldConfig::MaxCompletionTokens) => MaxTokensField::MaxCompletionTokens,
            Some(MaxTokensFieldConfig::MaxTokens) | None => MaxTokensField::MaxTokens,
        };
        Parts::new(
            OpenAiEgress {
                max_tokens_field,
                azure_api_version: None,
            },
            base,
            key_header,
        )
    };
    parts.authorizer = authorizer;
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::dialects::Operation;

    /// The door's chat URL, the header `api_key` goes in and whether a signer or token source
    /// is attached, for one `[[providers]]` table.
    fn door(settings: &str) -> (String, Option<&'static str>, bool) {
        let source = format!("[[providers]]\nname = \"p\"\n{settings}\n");
        let config = Config::from_toml(&source, "t.toml").unwrap();
        let provider = &config.providers[0];
        // As `Provider::from_config` does: the configured endpoint, if any.
        let endpoint = provider.endpoint.as_ref().map(|e| e.get_ref().clone());
        let parts = crate::kinds::parts(provider, endpoint).unwrap();
        let url = parts
            .egress
            .url(&parts.endpoint, "m", Operation::Chat { stream: true })
            .unwrap();
        (url, parts.key_header, parts.authorizer.is_some())
    }

    #[test]
    fn bedrock_doors_urls_and_auth() {
        let keys = r#"aws = { access_key_id = "AKID", secret_access_key = "s" }"#;
        assert_eq!(
            door(&format!(
                "kind = \"bedrock-mantle-responses\"\nregion = \"us-east-2\"\n{keys}"
            )),
            (
                "https://bedrock-mantle.us-east-2.api.aws/openai/v1/responses".to_owned(),
                None,
                true
            )
        );
        assert_eq!(
            door("kind = \"bedrock-mantle-chat\"\nregion = \"us-west-2\"\napi_key = \"bk\""),
            (
                "https://bedrock-mantle.us-west-2.api.aws/v1/chat/completions".to_owned(),
                Some("authorization"),
                false
            )
        );
        assert_eq!(
            door(&format!(
                "kind = \"bedrock-mantle-anthropic\"\nregion = \"us-east-1\"\n{keys}"
            )),
            (
                "https://bedrock-mantle.us-east-1.api.aws/anthropic/v1/messages".to_owned(),
                None,
                true
            )
        );
        assert_eq!(
            door(&format!(
                "kind = \"bedrock-runtime-chat\"\nregion = \"eu-west-1\"\n{keys}"
            )),
            (
                "https://bedrock-runtime.eu-west-1.amazonaws.com/openai/v1/chat/completions"
                    .to_owned(),
                None,
                true
            )
        );
        // A configured endpoint replaces the host; the door's path stays.
        assert_eq!(
            door("kind = \"bedrock-runtime-chat\"\nregion = \"eu-west-1\"\nendpoint = \"http://proxy:8080/\"\napi_key = \"bk\"").0,
            "http://proxy:8080/openai/v1/chat/completions"
        );
    }

    #[test]
    fn vertex_doors_urls() {
        let vertex = |kind: &str, location: &str| {
            door(&format!(
                "kind = \"{kind}\"\nproject = \"p1\"\nlocation = \"{location}\"\napi_key = \"ya29.t\""
            ))
        };
        assert_eq!(
            vertex("vertex-openai-responses", "us-central1"),
            (
                "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/openai/v1/responses".to_owned(),
                Some("authorization"),
                false
            )
        );
        assert_eq!(
            vertex("vertex-openai-responses", "global").0,
            "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/publishers/openai/v1/responses"
        );
        assert_eq!(
            vertex("vertex-openai-chat", "europe-west4").0,
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4/endpoints/openapi/chat/completions"
        );
    }
}

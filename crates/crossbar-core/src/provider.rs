//! Providers: an account at an endpoint, speaking one dialect, with its auth, cloud, region and
//! deadlines. The table in [`Provider::from_config`] is the one place a provider kind is defined.

use std::time::Duration;

use bytes::BytesMut;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::{Instant, timeout_at};

use crate::chat::{ChatRequest, ChatResponse};
use crate::client::ChatStream;
use crate::config::{AzureAuth, ConfigError, MaxTokensFieldConfig, ProviderConfig, ProviderKind};
use crate::dialects::openai::MaxTokensField;
use crate::dialects::{Egress, Frame, OpenAiEgress};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, ErrorKind, Result};

const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
const DEFAULT_FIRST_BYTE: Duration = Duration::from_secs(120);
const DEFAULT_IDLE: Duration = Duration::from_secs(60);
const DEFAULT_TOTAL: Duration = Duration::from_secs(600);
/// Largest non-streamed upstream body we buffer.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// Where requests go: URL shapes differ by provider even within one dialect.
#[derive(Debug)]
enum Endpoint {
    /// `{base}/chat/completions`, `{base}/embeddings`.
    OpenAi { base: String },
    /// Azure's deployment-scoped URLs with a required `api-version`.
    Azure {
        endpoint: String,
        api_version: String,
    },
}

impl Endpoint {
    fn url(&self, operation: &str, target: &str) -> String {
        match self {
            Self::OpenAi { base } => format!("{base}/{operation}"),
            Self::Azure {
                endpoint,
                api_version,
            } => {
                format!(
                    "{endpoint}/openai/deployments/{target}/{operation}?api-version={api_version}"
                )
            }
        }
    }
}

pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub cloud: String,
    pub region: String,
    egress: Box<dyn Egress>,
    endpoint: Endpoint,
    /// Auth and configured extra headers, marked sensitive so they never print.
    headers: HeaderMap,
    /// Credentials to scrub from anything an upstream echoes back.
    secrets: Vec<SecretString>,
    client: reqwest::Client,
    first_byte: Duration,
    idle: Duration,
    total: Duration,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("cloud", &self.cloud)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn ms(value: Option<u64>, default: Duration) -> Duration {
    value.map_or(default, Duration::from_millis)
}

impl Provider {
    /// Builds a provider. `endpoint` overrides the configured one (a simulator's bound address).
    pub fn from_config(
        config: &ProviderConfig,
        endpoint: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let name = config.name.get_ref().clone();
        let fail = |message: String| ConfigError(format!("provider `{name}`: {message}"));
        let endpoint = endpoint
            .map(str::to_owned)
            .or_else(|| config.endpoint.as_ref().map(|e| e.get_ref().clone()));
        let api_key = config.api_key.as_ref().map(|k| k.get_ref().0.clone());
        let max_tokens_field = match config.max_tokens_field {
            Some(MaxTokensFieldConfig::MaxTokens) => MaxTokensField::MaxTokens,
            Some(MaxTokensFieldConfig::MaxCompletionTokens) => MaxTokensField::MaxCompletionTokens,
            None if config.kind == ProviderKind::OpenaiCompatible => MaxTokensField::MaxTokens,
            None => MaxTokensField::MaxCompletionTokens,
        };
        let dialect = config.dialect.as_ref().map(|d| d.get_ref().as_str());
        let azure_like = config.kind == ProviderKind::AzureOpenai || dialect == Some("azure");
        // The provider table: endpoint shape and auth per kind.
        let (endpoint, auth_header) = match (config.kind, endpoint) {
            (ProviderKind::Openai, endpoint) => (
                Endpoint::OpenAi {
                    base: endpoint.unwrap_or_else(|| "https://api.openai.com/v1".to_owned()),
                },
                Some("authorization"),
            ),
            (ProviderKind::OpenaiCompatible, Some(base)) => {
                (Endpoint::OpenAi { base }, Some("authorization"))
            }
            (ProviderKind::Sim, Some(base)) if !azure_like => {
                (Endpoint::OpenAi { base }, Some("authorization"))
            }
            (ProviderKind::AzureOpenai | ProviderKind::Sim, Some(endpoint)) => {
                let auth = match config.auth {
                    Some(AzureAuth::Bearer) => "authorization",
                    Some(AzureAuth::ApiKey) | None => "api-key",
                };
                let api_version = config
                    .api_version
                    .clone()
                    .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned());
                (
                    Endpoint::Azure {
                        endpoint,
                        api_version,
                    },
                    Some(auth),
                )
            }
            (_, None) => {
                return Err(fail(
                    "no endpoint (a simulated provider needs its simulator running)".into(),
                ));
            }
        };
        let endpoint = match endpoint {
            Endpoint::OpenAi { base } => Endpoint::OpenAi {
                base: base.trim_end_matches('/').to_owned(),
            },
            Endpoint::Azure {
                endpoint,
                api_version,
            } => Endpoint::Azure {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                api_version,
            },
        };
        let mut headers = HeaderMap::new();
        let mut secrets = Vec::new();
        if let (Some(key), Some(header)) = (api_key, auth_header) {
            let value = if header == "authorization" {
                format!("Bearer {key}")
            } else {
                key.clone()
            };
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| fail("api_key is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static(header), value);
            secrets.push(SecretString::from(key));
        }
        for (header, value) in &config.headers {
            let header_name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| fail(format!("invalid header name `{header}`")))?;
            let mut header_value = HeaderValue::from_str(&value.get_ref().0)
                .map_err(|_| fail(format!("invalid value for header `{header}`")))?;
            header_value.set_sensitive(true);
            headers.insert(header_name, header_value);
            secrets.push(SecretString::from(value.get_ref().0.clone()));
        }
        let timeouts = config.timeouts;
        let client = reqwest::Client::builder()
            .connect_timeout(ms(timeouts.connect_ms, DEFAULT_CONNECT))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| fail(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            name,
            kind: config.kind,
            cloud: config.cloud.clone().unwrap_or_default(),
            region: config.region.clone().unwrap_or_default(),
            egress: Box::new(OpenAiEgress { max_tokens_field }),
            endpoint,
            headers,
            secrets,
            client,
            first_byte: ms(timeouts.first_byte_ms, DEFAULT_FIRST_BYTE),
            idle: ms(timeouts.idle_ms, DEFAULT_IDLE),
            total: ms(timeouts.total_ms, DEFAULT_TOTAL),
        })
    }

    /// Sends one request and returns the response once its headers arrived with a 2xx status.
    async fn send(
        &self,
        operation: &str,
        target: &str,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<reqwest::Response> {
        let url = self.endpoint.url(operation, target);
        let request = self
            .client
            .post(url)
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let first_byte = deadline.min(Instant::now() + self.first_byte);
        let response = match timeout_at(first_byte, request.send()).await {
            Err(_) => {
                return Err(Error::upstream_timeout(format!(
                    "Provider `{}` did not answer in time.",
                    self.name
                )));
            }
            Ok(Err(e)) => return Err(self.transport_error(&e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = read_limited(response, deadline).await.unwrap_or_default();
        Err(self
            .upstream_error(status, &body)
            .with_retry_after(retry_after))
    }

    fn transport_error(&self, error: &reqwest::Error) -> Error {
        if error.is_timeout() {
            Error::upstream_timeout(format!("Provider `{}` timed out.", self.name))
        } else if error.is_connect() {
            Error::upstream_connect(format!("Could not connect to provider `{}`.", self.name))
        } else {
            // `without_url`: some providers carry keys in the query string.
            let detail = self.redact(&error_chain(error));
            Error::upstream_connect(format!(
                "Transport error talking to provider `{}`: {detail}",
                self.name
            ))
        }
    }

    fn upstream_error(&self, status: u16, body: &[u8]) -> Error {
        let mut error = self.egress.error(status, body);
        if matches!(
            error.kind,
            ErrorKind::Authentication | ErrorKind::PermissionDenied
        ) {
            // The upstream's text may quote part of our key.
            error.message = format!(
                "Provider `{}` rejected the gateway's credentials (HTTP {status}).",
                self.name
            );
        } else {
            error.message = format!("Provider `{}`: {}", self.name, self.redact(&error.message));
        }
        error
    }

    fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |acc, secret| {
            let secret = secret.expose_secret();
            if secret.len() >= 4 {
                acc.replace(secret, "[redacted]")
            } else {
                acc
            }
        })
    }

    pub async fn chat(&self, request: &ChatRequest, target: &str) -> Result<ChatResponse> {
        let deadline = Instant::now() + self.total;
        let body = self.egress.chat_body(request, target)?;
        let response = self
            .send("chat/completions", target, body, deadline)
            .await?;
        let body = read_limited(response, deadline)
            .await
            .map_err(|e| self.classify_read(e))?;
        self.egress
            .chat_response(&body)
            .map_err(|e| attributed(&self.name, e))
    }

    pub async fn embed(
        &self,
        request: &EmbeddingRequest,
        target: &str,
    ) -> Result<EmbeddingResponse> {
        let deadline = Instant::now() + self.total;
        let body = self.egress.embedding_body(request, target)?;
        let response = self.send("embeddings", target, body, deadline).await?;
        let body = read_limited(response, deadline)
            .await
            .map_err(|e| self.classify_read(e))?;
        self.egress
            .embedding_response(&body)
            .map_err(|e| attributed(&self.name, e))
    }

    fn classify_read(&self, error: ReadError) -> Error {
        match error {
            ReadError::Timeout => Error::upstream_timeout(format!(
                "Provider `{}` timed out sending its answer.",
                self.name
            )),
            ReadError::TooLarge => Error::bad_upstream(format!(
                "Provider `{}` sent an oversized answer.",
                self.name
            )),
            ReadError::Transport(e) => Error::stream_interrupted(format!(
                "Provider `{}` broke off its answer: {}",
                self.name,
                self.redact(&e)
            )),
        }
    }

    /// Starts a streamed chat. The stream yields canonical events; it ends with an `Err` item
    /// when the upstream breaks off, times out or reports an error mid-stream.
    pub async fn chat_stream(&self, request: &ChatRequest, target: &str) -> Result<ChatStream> {
        let deadline = Instant::now() + self.total;
        let body = self.egress.chat_body(request, target)?;
        let response = self
            .send("chat/completions", target, body, deadline)
            .await?;
        let mut decoder = self.egress.stream_decoder();
        let idle = self.idle;
        let name = self.name.clone();
        let stream = async_stream::try_stream! {
            let mut events = response.bytes_stream().eventsource();
            let mut out = Vec::new();
            loop {
                let next = match timeout_at(deadline.min(Instant::now() + idle), events.next()).await {
                    Err(_) => Err(Error::upstream_timeout(format!("Provider `{name}` stalled mid-stream.")))?,
                    Ok(next) => next,
                };
                let Some(event) = next else { break };
                let event = event.map_err(|e| {
                    Error::stream_interrupted(format!("Provider `{name}` broke off its stream: {}", stream_error_text(&e)))
                })?;
                decoder
                    .decode(&Frame { event: &event.event, data: &event.data }, &mut out)
                    .map_err(|e| attributed(&name, e))?;
                for item in out.drain(..) {
                    yield item;
                }
            }
            decoder.finish().map_err(|e| attributed(&name, e))?;
        };
        Ok(Box::pin(stream))
    }
}

/// Names the provider in a dialect's error, so a client can tell which upstream misbehaved.
fn attributed(provider: &str, mut error: Error) -> Error {
    error.message = format!("Provider `{provider}`: {}", error.message);
    error
}

fn stream_error_text<E: std::error::Error>(
    error: &eventsource_stream::EventStreamError<E>,
) -> String {
    match error {
        eventsource_stream::EventStreamError::Transport(e) => error_chain(e),
        other => other.to_string(),
    }
}

/// An error's message with its causes, which is where hyper says what actually broke.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

enum ReadError {
    Timeout,
    TooLarge,
    Transport(String),
}

/// Reads a whole body within the deadline and a size cap.
async fn read_limited(
    mut response: reqwest::Response,
    deadline: Instant,
) -> Result<Vec<u8>, ReadError> {
    let mut body = BytesMut::new();
    loop {
        match timeout_at(deadline, response.chunk()).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(Err(e)) => return Err(ReadError::Transport(error_chain(&e.without_url()))),
            Ok(Ok(None)) => return Ok(body.to_vec()),
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(ReadError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
}

/// When the upstream says to come back: `retry-after-ms`, then `retry-after` in seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        headers.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
    }

    #[test]
    fn azure_urls_are_deployment_scoped_with_api_version() {
        let endpoint = Endpoint::Azure {
            endpoint: "https://r.openai.azure.com".into(),
            api_version: "2024-10-21".into(),
        };
        assert_eq!(
            endpoint.url("chat/completions", "gpt4o-prod"),
            "https://r.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
        let endpoint = Endpoint::OpenAi {
            base: "http://localhost:8000/v1".into(),
        };
        assert_eq!(
            endpoint.url("embeddings", "x"),
            "http://localhost:8000/v1/embeddings"
        );
    }
}

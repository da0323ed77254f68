//! Providers: an account at an endpoint, speaking one dialect, with its auth, cloud, region and
//! deadlines, built by the kind's row of the provider table ([`crate::kinds`]) from the typed
//! settings `Config::validate` made.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::{Instant, timeout_at};

use crate::auth::Authorize;
use crate::chat::{ChatRequest, ChatResponse, StreamEvent};
use crate::client::ChatStream;
use crate::config::{ConfigError, ProviderConfig, ProviderKind};
use crate::dialects::{Egress, Operation, Parts};
use crate::embeddings::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, ErrorKind, Result, error_chain};
use crate::framing;
use crate::images::ImageFetch;
use crate::reasoning_memory;

const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
const DEFAULT_FIRST_BYTE: Duration = Duration::from_secs(120);
const DEFAULT_IDLE: Duration = Duration::from_secs(60);
const DEFAULT_TOTAL: Duration = Duration::from_secs(600);
/// Largest non-streamed upstream body we buffer.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Where a call reports the quota its answer's headers say is left (the router's headroom
/// for the deployment called); `None` when nobody is listening.
pub type QuotaSink<'a> = Option<&'a (dyn Fn(crate::router::Quota) + Send + Sync)>;

pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub cloud: String,
    pub region: String,
    egress: Box<dyn Egress>,
    /// Base URL, without a trailing slash.
    endpoint: String,
    /// Auth and configured extra headers, marked sensitive so they never print.
    headers: HeaderMap,
    /// Credentials computed per request (SigV4, OAuth), when a static header is not enough.
    authorizer: Option<Arc<dyn Authorize>>,
    /// Credentials to scrub from anything an upstream echoes back.
    secrets: Vec<SecretString>,
    client: reqwest::Client,
    first_byte: Duration,
    idle: Duration,
    total: Duration,
    image_fetch: ImageFetch,
    /// Where signed reasoning is remembered for the turns after (the router's, shared by all
    /// its providers).
    reasoning: reasoning_memory::Tiers,
    /// Upstream URLs by operation and target, parsed once: parsing one (with its IDNA pass)
    /// cost more than the rest of building the request.
    urls: std::sync::RwLock<Urls>,
}

/// Parsed URLs by operation, then target (looked up without allocating).
type Urls = HashMap<Operation, HashMap<String, reqwest::Url>>;

/// The most URLs a provider keeps parsed (targets come from the configuration, so a few).
const MAX_URLS: usize = 256;

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
        reasoning: reasoning_memory::Tiers,
    ) -> Result<Self, ConfigError> {
        let name = config.name.get_ref().clone();
        let fail = |message: String| ConfigError(format!("provider `{name}`: {message}"));
        let endpoint = endpoint
            .map(str::to_owned)
            .or_else(|| config.endpoint.as_ref().map(|e| e.get_ref().clone()));
        let api_key = config.api_key.as_ref().map(|k| k.get_ref().0.clone());
        let Parts {
            egress,
            endpoint,
            key_header,
            mut headers,
            authorizer,
        } = crate::kinds::parts(config, endpoint).map_err(fail)?;
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let mut secrets = Vec::new();
        if let (Some(key), Some(header)) = (api_key, key_header) {
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
            // Model APIs do not redirect, and a redirect would carry our key headers (reqwest
            // drops only `authorization` across hosts) wherever the upstream points: a 3xx is
            // the upstream's error.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| fail(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            name,
            kind: config.kind,
            cloud: config.cloud.clone().unwrap_or_default(),
            region: config.region.clone().unwrap_or_default(),
            egress,
            endpoint,
            headers,
            authorizer,
            secrets,
            client,
            first_byte: ms(timeouts.first_byte_ms, DEFAULT_FIRST_BYTE),
            idle: ms(timeouts.idle_ms, DEFAULT_IDLE),
            total: ms(timeouts.total_ms, DEFAULT_TOTAL),
            image_fetch: config.image_fetch,
            reasoning,
            urls: std::sync::RwLock::default(),
        })
    }

    /// The URL of `operation` on `target`, parsed once per pair.
    fn url(&self, target: &str, operation: Operation) -> Result<reqwest::Url> {
        if let Some(url) = self
            .urls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&operation)
            .and_then(|targets| targets.get(target))
        {
            return Ok(url.clone());
        }
        let text = self.egress.url(&self.endpoint, target, operation)?;
        let url = reqwest::Url::parse(&text).map_err(|e| {
            Error::internal(format!(
                "building a request for provider `{}`: invalid URL: {e}",
                self.name
            ))
        })?;
        let mut urls = self
            .urls
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if urls.values().map(HashMap::len).sum::<usize>() < MAX_URLS {
            urls.entry(operation)
                .or_default()
                .insert(target.to_owned(), url.clone());
        }
        Ok(url)
    }

    /// Sends one request and returns the response once its headers arrived with a 2xx status.
    async fn send(
        &self,
        operation: Operation,
        target: &str,
        body: Vec<u8>,
        extra_headers: HeaderMap,
        deadline: Instant,
        quota: QuotaSink<'_>,
    ) -> Result<reqwest::Response> {
        let url = self.url(target, operation)?;
        let mut headers = self.headers.clone();
        headers.extend(extra_headers);
        let mut request = self
            .client
            .post(url)
            .headers(headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| {
                Error::internal(format!(
                    "building a request for provider `{}`: {}",
                    self.name,
                    error_chain(&e.without_url())
                ))
            })?;
        let first_byte = deadline.min(Instant::now() + self.first_byte);
        let sent = async {
            if let Some(authorizer) = &self.authorizer {
                authorizer.authorize(&mut request).await?;
            }
            self.client
                .execute(request)
                .await
                .map_err(|e| self.transport_error(e))
        };
        let response = match timeout_at(first_byte, sent).await {
            Err(_) => {
                return Err(Error::upstream_timeout(format!(
                    "Provider `{}` did not answer in time.",
                    self.name
                )));
            }
            Ok(result) => result?,
        };
        // Answers and refusals alike say how much quota is left.
        if let Some(sink) = quota
            && let Some(reading) =
                crate::router::Quota::from_headers(response.headers(), crate::router::wall_ms())
        {
            sink(reading);
        }
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        if (300..400).contains(&status) {
            // Not followed (see the client): the upstream misbehaved, not the caller.
            return Err(Error::bad_upstream(format!(
                "Provider `{}` answered with a redirect (HTTP {status}), which the gateway does not follow.",
                self.name
            )));
        }
        let headers = response.headers().clone();
        let body = read_limited(response, deadline).await.unwrap_or_default();
        let mut error = self.upstream_error(status, &headers, &body);
        // A header beats what the dialect found in the body (Gemini's RetryInfo, say); both
        // are the upstream's word, so both are clamped.
        error.retry_after = retry_after(&headers)
            .or(error.retry_after)
            .map(|after| after.min(MAX_RETRY_AFTER));
        Err(error)
    }

    fn transport_error(&self, error: reqwest::Error) -> Error {
        // Without the URL: some endpoints carry keys in their query string, and this text
        // reaches the client, the usage records and the logs.
        let error = error.without_url();
        if error.is_timeout() {
            Error::upstream_timeout(format!("Provider `{}` timed out.", self.name))
        } else if error.is_connect() {
            Error::upstream_connect(format!("Could not connect to provider `{}`.", self.name))
        } else {
            let detail = self.redact(&error_chain(&error));
            Error::upstream_connect(format!(
                "Transport error talking to provider `{}`: {detail}",
                self.name
            ))
        }
    }

    fn upstream_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        let mut error = self.egress.error(status, headers, body);
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

    /// The request as this provider can take it: remembered reasoning given back to turns that
    /// lost it, and image URLs replaced by bytes when the provider cannot fetch them.
    async fn prepared<'a>(&self, request: &'a ChatRequest) -> Result<Cow<'a, ChatRequest>> {
        let request = match self.reasoning.restore(request).await {
            Some(restored) => Cow::Owned(restored),
            None => Cow::Borrowed(request),
        };
        if self.egress.accepts_image_urls() {
            return Ok(request);
        }
        match self.image_fetch.inline(&request).await? {
            Cow::Borrowed(_) => Ok(request),
            Cow::Owned(inlined) => Ok(Cow::Owned(inlined)),
        }
    }

    /// Sends a chat request; returns the response with its headers in, and the attempt's deadline.
    async fn start_chat(
        &self,
        request: &ChatRequest,
        target: &str,
        quota: QuotaSink<'_>,
    ) -> Result<(reqwest::Response, Instant)> {
        let deadline = Instant::now() + self.total;
        let prepared = self
            .prepared(request)
            .await
            .map_err(Error::unsupported_here)?;
        let body = self
            .egress
            .chat_body(&prepared, target)
            .map_err(Error::unsupported_here)?;
        let operation = Operation::Chat {
            stream: request.stream,
        };
        let extra: HeaderMap = self
            .egress
            .chat_headers(&prepared)
            .into_iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    HeaderValue::from_str(&value).ok()?,
                ))
            })
            .collect();
        Ok((
            self.send(operation, target, body, extra, deadline, quota)
                .await?,
            deadline,
        ))
    }

    pub async fn chat(&self, request: &ChatRequest, target: &str) -> Result<ChatResponse> {
        self.chat_reporting(request, target, None).await
    }

    /// [`Provider::chat`], reporting the quota the answer says is left to `quota`.
    pub async fn chat_reporting(
        &self,
        request: &ChatRequest,
        target: &str,
        quota: QuotaSink<'_>,
    ) -> Result<ChatResponse> {
        let (response, deadline) = self.start_chat(request, target, quota).await?;
        let mut response = self
            .answer(response, deadline, |egress, body| {
                egress.chat_response(body)
            })
            .await?;
        // Some upstreams (Bedrock) name no model in their answers: report the deployment's.
        if response.model.is_empty() {
            response.model = target.to_owned();
        }
        self.reasoning
            .remember_message(
                request.scope.as_deref().unwrap_or_default(),
                &response.message,
            )
            .await;
        Ok(response)
    }

    pub async fn embed(
        &self,
        request: &EmbeddingRequest,
        target: &str,
    ) -> Result<EmbeddingResponse> {
        self.embed_reporting(request, target, None).await
    }

    /// [`Provider::embed`], reporting the quota the answer says is left to `quota`.
    pub async fn embed_reporting(
        &self,
        request: &EmbeddingRequest,
        target: &str,
        quota: QuotaSink<'_>,
    ) -> Result<EmbeddingResponse> {
        let deadline = Instant::now() + self.total;
        let body = self
            .egress
            .embedding_body(request, target)
            .map_err(Error::unsupported_here)?;
        let response = self
            .send(
                Operation::Embeddings,
                target,
                body,
                HeaderMap::new(),
                deadline,
                quota,
            )
            .await?;
        let mut response = self
            .answer(response, deadline, |egress, body| {
                egress.embedding_response(body)
            })
            .await?;
        // Gemini's batch embeddings name no model and report no usage: say which deployment
        // answered, and estimate the input so metering does not bill it as free.
        if response.model.is_empty() {
            response.model = target.to_owned();
        }
        if response.input_tokens == 0 {
            response.input_tokens = estimate_embedding_tokens(&request.input);
        }
        Ok(response)
    }

    /// Reads a whole answer within the deadline and decodes it, its errors naming this provider.
    async fn answer<T>(
        &self,
        response: reqwest::Response,
        deadline: Instant,
        decode: impl FnOnce(&dyn Egress, &[u8]) -> Result<T>,
    ) -> Result<T> {
        let body = read_limited(response, deadline)
            .await
            .map_err(|e| self.classify_read(e))?;
        decode(self.egress.as_ref(), &body).map_err(|e| attributed(&self.name, e))
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
        self.chat_stream_reporting(request, target, None).await
    }

    /// [`Provider::chat_stream`], reporting the quota the answer says is left to `quota`.
    pub async fn chat_stream_reporting(
        &self,
        request: &ChatRequest,
        target: &str,
        quota: QuotaSink<'_>,
    ) -> Result<ChatStream> {
        let (response, deadline) = self.start_chat(request, target, quota).await?;
        let mut decoder = self.egress.stream_decoder();
        let idle = self.idle;
        let name = self.name.clone();
        let target = target.to_owned();
        let tiers = self.reasoning.clone();
        let scope = request.scope.clone().unwrap_or_default();
        let mut frames = framing::frames(response, self.egress.framing());
        let stream = async_stream::try_stream! {
            let mut out = Vec::new();
            let mut reasoning = reasoning_memory::StreamCollector::default();
            loop {
                let next = match timeout_at(deadline.min(Instant::now() + idle), frames.next()).await {
                    Err(_) => Err(Error::upstream_timeout(format!("Provider `{name}` stalled mid-stream.")))?,
                    Ok(next) => next,
                };
                let Some(frame) = next else { break };
                let frame = frame.map_err(|e| attributed(&name, e))?;
                decoder.decode(&frame.as_frame(), &mut out).map_err(|e| attributed(&name, e))?;
                for mut item in out.drain(..) {
                    if let StreamEvent::Start { model, .. } = &mut item
                        && model.is_empty()
                    {
                        model.clone_from(&target);
                    }
                    reasoning.observe(&item);
                    yield item;
                }
            }
            decoder.finish().map_err(|e| attributed(&name, e))?;
            // Remembered before the stream ends, so the client's next turn finds it anywhere.
            if let Some((id, blocks)) = reasoning.finish() {
                tiers.remember(&scope, &id, blocks).await;
            }
        };
        Ok(Box::pin(stream))
    }
}

/// About four characters a token for texts; token inputs count themselves.
fn estimate_embedding_tokens(input: &EmbeddingInput) -> u64 {
    match input {
        EmbeddingInput::Texts(texts) => texts
            .iter()
            .map(|t| (t.len() as u64).div_ceil(4).max(1))
            .sum(),
        EmbeddingInput::Tokens(rows) => rows.iter().map(|r| r.len() as u64).sum(),
    }
}

/// Names the provider in a dialect's error, so a client can tell which upstream misbehaved.
fn attributed(provider: &str, mut error: Error) -> Error {
    error.message = format!("Provider `{provider}`: {}", error.message);
    error
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

/// The longest an upstream may make a deployment wait. `Retry-After` is the upstream's word:
/// `1e19` seconds would overflow `Duration` and `Instant` arithmetic (a panic), and even a
/// representable year would take a deployment out of rotation for good.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// When the upstream says to come back: `retry-after-ms`, then `retry-after` in seconds, at
/// most [`MAX_RETRY_AFTER`]. Negative, NaN, infinite and unparsable values are ignored (an
/// HTTP date too: no model API sends one).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = |name: &str, scale: f64| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v / scale)
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let seconds = seconds("retry-after-ms", 1000.0).or_else(|| seconds("retry-after", 1.0))?;
    // Clamped as a float first: the conversion cannot overflow then.
    Duration::try_from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())).ok()
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

    /// `retry-after: 1e19` panicked the request once added to an `Instant`, `1e20` already
    /// in `Duration::from_secs_f64`; both now mean the longest wait we accept.
    #[test]
    fn an_absurd_retry_after_is_clamped() {
        let of = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            retry_after(&headers)
        };
        for value in ["1e19", "1e20", "1e308", "3601"] {
            assert_eq!(of("retry-after", value), Some(MAX_RETRY_AFTER), "{value}");
        }
        assert_eq!(of("retry-after-ms", "1e22"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            of("retry-after", "3599.5"),
            Some(Duration::from_millis(3_599_500))
        );
        for value in [
            "-1",
            "NaN",
            "inf",
            "-inf",
            "1e400",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(of("retry-after", value), None, "{value}");
        }
        assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(3600));
    }

    fn header_value() -> impl proptest::strategy::Strategy<Value = HeaderValue> {
        use proptest::prelude::*;
        // Numbers as upstreams write them, number-like text, and any bytes a header may hold.
        prop_oneof![
            any::<f64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:e}")),
            any::<u64>().prop_map(|v| format!("{v}{v}")),
            "[ \\t]*[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{1,4})?[ \\t]*",
            "[-+0-9.eEinfaINFA ]{0,24}",
        ]
        .prop_map(|text| HeaderValue::from_str(&text).unwrap())
        .boxed()
        .prop_union(
            proptest::collection::vec(any::<u8>(), 0..64)
                .prop_filter_map("not a header value", |bytes| {
                    HeaderValue::from_bytes(&bytes).ok()
                })
                .boxed(),
        )
    }

    proptest::proptest! {
        /// No value an upstream can put in either header panics, and none makes us wait more
        /// than the clamp.
        #[test]
        fn no_retry_after_header_panics_or_exceeds_the_clamp(
            seconds in proptest::option::of(header_value()),
            millis in proptest::option::of(header_value()),
        ) {
            let mut headers = HeaderMap::new();
            if let Some(value) = seconds {
                headers.insert("retry-after", value);
            }
            if let Some(value) = millis {
                headers.insert("retry-after-ms", value);
            }
            if let Some(after) = retry_after(&headers) {
                proptest::prop_assert!(after <= MAX_RETRY_AFTER);
                // What the router then does with it: a cooldown from now.
                proptest::prop_assert!(tokio::time::Instant::now().checked_add(after).is_some());
            }
        }
    }
}

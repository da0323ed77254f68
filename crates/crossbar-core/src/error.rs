//! One error type for the whole gateway: what went wrong (kind), whose fault it is (origin) and
//! whether another attempt could succeed (retryability). The HTTP status a client sees is decided
//! in exactly one place, [`Error::status`], so dialect encoders and the server never pick codes.

use std::time::Duration;

/// The most names a model-not-found message suggests.
const MAX_CLOSE_MATCHES: usize = 3;

/// Whose fault an error is: decides logging level, metrics labels and whether to blame the
/// deployment (circuit breakers only count upstream faults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Client,
    Upstream,
    Internal,
}

/// What went wrong, at the granularity clients and the router act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed JSON, invalid or unknown field.
    InvalidRequest,
    /// Missing or wrong credentials (ours, or the upstream rejected the configured key).
    Authentication,
    PermissionDenied,
    /// Unknown model or route.
    NotFound,
    PayloadTooLarge,
    /// A body in a format the endpoint does not take (`content-type` not JSON).
    UnsupportedMediaType,
    /// 429 from us or from the upstream; `retry_after` tells when.
    RateLimited,
    /// A quota or billing limit: a 429 that waiting will not fix.
    QuotaExceeded,
    /// The upstream answered with a 4xx other than the above; we pass its status through.
    UpstreamRejected,
    /// The upstream answered 5xx (or 529).
    UpstreamUnavailable,
    /// The upstream answered something we cannot parse.
    BadUpstreamResponse,
    /// Connect, first-byte, idle or total deadline passed.
    UpstreamTimeout,
    /// The connection could not be made or broke.
    UpstreamConnect,
    /// The upstream stream ended without its terminator or reported an error mid-stream.
    StreamInterrupted,
    /// The request is valid, but this deployment's dialect cannot express part of it (an
    /// OpenAI-only field sent to Bedrock, an image it cannot take): another deployment may.
    Unsupported,
    /// A bug or misconfiguration on our side.
    Internal,
    /// The gateway itself is at capacity (connections, in-flight work): come back shortly.
    Overloaded,
}

/// An error with everything needed to answer a client and to decide on a retry.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub origin: Origin,
    pub retryable: bool,
    /// Safe to show a client: never contains credentials.
    pub message: String,
    /// The request field at fault, as OpenAI's `param`.
    pub param: Option<String>,
    /// A machine-readable code, as OpenAI's `code`.
    pub code: Option<String>,
    /// Status the upstream answered, when there was one.
    pub upstream_status: Option<u16>,
    /// When the caller may try again (from `Retry-After` / `retry-after-ms`).
    pub retry_after: Option<Duration>,
}

impl Error {
    fn new(kind: ErrorKind, origin: Origin, retryable: bool, message: impl Into<String>) -> Self {
        Self {
            kind,
            origin,
            retryable,
            message: message.into(),
            param: None,
            code: None,
            upstream_status: None,
            retry_after: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, Origin::Client, false, message)
    }

    /// An invalid request blamed on one field, so clients see which.
    pub fn invalid_field(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid_request(message).with_param(param)
    }

    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Authentication, Origin::Client, false, message)
            .with_code("invalid_api_key")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, Origin::Client, false, message)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::model_not_found_near(model, [])
    }

    /// As [`Error::model_not_found`], naming up to three of `candidates` (names the caller may
    /// use) closest to `model` by edit distance, so a typo or an unknown version points at what
    /// exists. Far-off names are left out: a list of everything is not a suggestion.
    pub fn model_not_found_near<'a>(
        model: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let cutoff = (model.chars().count() / 3).max(2);
        let mut near: Vec<(usize, &str)> = candidates
            .into_iter()
            .map(|name| (strsim::osa_distance(model, name), name))
            .filter(|(distance, _)| *distance <= cutoff)
            .collect();
        near.sort_unstable();
        near.dedup();
        let names: Vec<String> = near
            .iter()
            .take(MAX_CLOSE_MATCHES)
            .map(|(_, name)| (*name).to_owned())
            .collect();
        let mut message =
            format!("The model `{model}` does not exist or you do not have access to it.");
        if !names.is_empty() {
            message.push_str(&format!(" Close matches: {}.", names.join(", ")));
        }
        Self::not_found(message)
            .with_param("model")
            .with_code("model_not_found")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            Origin::Client,
            false,
            format!("Request body exceeds the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    pub fn bad_upstream(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::BadUpstreamResponse,
            Origin::Upstream,
            true,
            message,
        )
    }

    pub fn upstream_timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UpstreamTimeout, Origin::Upstream, true, message)
    }

    pub fn upstream_connect(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UpstreamConnect, Origin::Upstream, true, message)
    }

    pub fn stream_interrupted(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::StreamInterrupted,
            Origin::Upstream,
            true,
            message,
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, Origin::Internal, false, message)
    }

    /// A body whose `content-type` the endpoint does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::UnsupportedMediaType,
            Origin::Client,
            false,
            message,
        )
        .with_param("content-type")
    }

    /// Refused by policy: the caller may not do this (no retry will help).
    pub fn permission_denied(message: impl Into<String>, code: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, Origin::Client, false, message).with_code(code)
    }

    /// The gateway sheds load: a 503 the client may retry.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Overloaded, Origin::Internal, true, message)
            .with_retry_after(Some(Duration::from_secs(1)))
    }

    /// Classifies an upstream HTTP error status. Quota/billing 429s are not retryable; the
    /// dialect decides that from the body and overrides `kind` with [`Error::quota_exceeded`].
    pub fn from_upstream_status(status: u16, message: impl Into<String>) -> Self {
        let (kind, retryable) = match status {
            400 | 404 | 409 | 413 | 422 => (ErrorKind::UpstreamRejected, false),
            401 => (ErrorKind::Authentication, false),
            403 => (ErrorKind::PermissionDenied, false),
            408 => (ErrorKind::UpstreamTimeout, true),
            429 => (ErrorKind::RateLimited, true),
            500..=599 => (ErrorKind::UpstreamUnavailable, true),
            _ => (ErrorKind::UpstreamRejected, false),
        };
        let mut err = Self::new(kind, Origin::Upstream, retryable, message);
        err.upstream_status = Some(status);
        err
    }

    /// Marks a client-side refusal raised while translating for one deployment as specific to
    /// that deployment, so the router may try another.
    pub fn unsupported_here(mut self) -> Self {
        if self.kind == ErrorKind::InvalidRequest {
            self.kind = ErrorKind::Unsupported;
        }
        self
    }

    /// Turns a rate-limit error into the non-retryable quota kind.
    pub fn quota_exceeded(mut self) -> Self {
        self.kind = ErrorKind::QuotaExceeded;
        self.retryable = false;
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The HTTP status a client of the gateway sees. The only place statuses are decided.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::Unsupported => 400,
            ErrorKind::Authentication => match self.origin {
                // The upstream refusing our configured key is our misconfiguration, not the
                // client's: a 401 would make SDKs tell the user their own key is wrong.
                Origin::Upstream => 502,
                _ => 401,
            },
            ErrorKind::PermissionDenied => match self.origin {
                Origin::Upstream => 502,
                _ => 403,
            },
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::RateLimited | ErrorKind::QuotaExceeded => 429,
            ErrorKind::UpstreamRejected => self
                .upstream_status
                .filter(|status| (400..=499).contains(status))
                .unwrap_or(400),
            ErrorKind::UpstreamUnavailable => match self.upstream_status {
                Some(status @ 500..=599) if status != 501 => status,
                _ => 503,
            },
            ErrorKind::BadUpstreamResponse
            | ErrorKind::UpstreamConnect
            | ErrorKind::StreamInterrupted => 502,
            ErrorKind::UpstreamTimeout => 504,
            ErrorKind::Internal => 500,
            ErrorKind::Overloaded => 503,
        }
    }

    /// OpenAI's `error.type` for this error.
    pub fn openai_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::Unsupported
            | ErrorKind::NotFound
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType
            | ErrorKind::UpstreamRejected => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::QuotaExceeded => "insufficient_quota",
            ErrorKind::UpstreamTimeout => "timeout_error",
            ErrorKind::UpstreamUnavailable
            | ErrorKind::BadUpstreamResponse
            | ErrorKind::UpstreamConnect
            | ErrorKind::StreamInterrupted => "upstream_error",
            ErrorKind::Internal | ErrorKind::Overloaded => "server_error",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error's message with its causes, which is where hyper says what actually broke.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_statuses_classify_retryability() {
        for (status, retryable) in [(400, false), (401, false), (404, false), (408, true)] {
            assert_eq!(
                Error::from_upstream_status(status, "x").retryable,
                retryable,
                "{status}"
            );
        }
        for status in [429, 500, 502, 503, 529] {
            assert!(
                Error::from_upstream_status(status, "x").retryable,
                "{status}"
            );
        }
        assert!(
            !Error::from_upstream_status(429, "x")
                .quota_exceeded()
                .retryable
        );
    }

    #[test]
    fn status_is_decided_from_kind_and_source() {
        assert_eq!(Error::invalid_field("model", "bad").status(), 400);
        assert_eq!(Error::authentication("no key").status(), 401);
        assert_eq!(Error::model_not_found("m").status(), 404);
        assert_eq!(Error::payload_too_large(10).status(), 413);
        assert_eq!(Error::from_upstream_status(429, "x").status(), 429);
        assert_eq!(Error::from_upstream_status(503, "x").status(), 503);
        assert_eq!(Error::from_upstream_status(529, "x").status(), 529);
        assert_eq!(Error::from_upstream_status(422, "x").status(), 422);
        // The upstream rejecting our own credentials must not look like the client's fault.
        assert_eq!(Error::from_upstream_status(401, "x").status(), 502);
        assert_eq!(Error::bad_upstream("garbage").status(), 502);
        assert_eq!(Error::upstream_timeout("slow").status(), 504);
        assert_eq!(Error::internal("bug").status(), 500);
        assert_eq!(Error::overloaded("busy").status(), 503);
        assert_eq!(Error::unsupported_media_type("form").status(), 415);
        assert_eq!(Error::permission_denied("no", "x").status(), 403);
    }

    #[test]
    fn model_not_found_names_close_matches_nearest_first() {
        let known = [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-5",
            "claude-sonnet",
            "text-embedding-3-small",
        ];
        let error = Error::model_not_found_near("gpt-4o-mni", known);
        assert_eq!(error.status(), 404);
        assert_eq!(error.code.as_deref(), Some("model_not_found"));
        assert_eq!(error.param.as_deref(), Some("model"));
        assert_eq!(
            error.message,
            "The model `gpt-4o-mni` does not exist or you do not have access to it. Close matches: gpt-4o-mini."
        );
        assert_eq!(
            Error::model_not_found_near("gpt-4", known).message,
            "The model `gpt-4` does not exist or you do not have access to it. Close matches: gpt-4o, gpt-5."
        );
        assert_eq!(
            Error::model_not_found_near("gpt4o", known).message,
            "The model `gpt4o` does not exist or you do not have access to it. Close matches: gpt-4o, gpt-5."
        );
        assert_eq!(
            Error::model_not_found_near("llama-3", known).message,
            "The model `llama-3` does not exist or you do not have access to it."
        );
        assert_eq!(
            Error::model_not_found("m").message,
            "The model `m` does not exist or you do not have access to it."
        );
    }
}

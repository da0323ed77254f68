//! Headers every response carries: request ids, processing time and rate-limit state, which
//! gateways read for routing decisions.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::SimDialect;
use crate::ids;
use crate::state::{App, Quota};

/// Simulated requests-per-minute limit.
pub(crate) const REQUEST_LIMIT: u64 = 10_000;
/// Simulated tokens-per-minute limit.
const TOKEN_LIMIT: u64 = 30_000_000;
const SALT_HEADERS: u64 = 0x6865_6164;

pub(crate) async fn decorate(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // A rough prompt size, enough for a plausible remaining-tokens budget.
    let tokens = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 4;
    let mut response = next.run(request).await;
    let elapsed = started.elapsed().as_millis();
    let mut rng = ids::rng(app.next_sequence(), SALT_HEADERS);
    let quota = response.extensions().get::<Quota>().copied();
    let headers = response.headers_mut();
    if let Some(quota) = quota {
        // A configured quota's state replaces the large account's.
        for (name, value) in [
            ("x-ratelimit-limit-requests", quota.limit.to_string()),
            (
                "x-ratelimit-remaining-requests",
                quota.remaining.to_string(),
            ),
            ("x-ratelimit-reset-requests", go_duration(quota.reset_ms)),
        ] {
            // Azure sends no reset times.
            if name.starts_with("x-ratelimit-reset") && azure_headers(app.dialect) {
                continue;
            }
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
    // Headers already set (the 429 rate-limit state) win.
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers
                .entry(HeaderName::from_static(name))
                .or_insert(value);
        }
    };
    set("x-request-id", format!("req_{}", ids::hex(&mut rng, 32)));
    set("x-ratelimit-limit-requests", REQUEST_LIMIT.to_string());
    set("x-ratelimit-limit-tokens", TOKEN_LIMIT.to_string());
    set(
        "x-ratelimit-remaining-requests",
        (REQUEST_LIMIT - 1).to_string(),
    );
    set(
        "x-ratelimit-remaining-tokens",
        TOKEN_LIMIT.saturating_sub(tokens).to_string(),
    );
    if azure_headers(app.dialect) {
        set("apim-request-id", ids::uuid(&mut rng));
        set("x-ms-region", "East US".to_owned());
    } else {
        set("openai-version", "2020-10-01".to_owned());
        set("openai-processing-ms", elapsed.to_string());
        set(
            "x-ratelimit-reset-requests",
            go_duration(60_000 / REQUEST_LIMIT),
        );
        set(
            "x-ratelimit-reset-tokens",
            go_duration(tokens.saturating_mul(60_000) / TOKEN_LIMIT),
        );
    }
    response
}

/// Whether answers in `dialect` carry Azure's headers (`apim-request-id`, `retry-after-ms`)
/// rather than OpenAI's (`openai-version`, `x-ratelimit-reset-*`). Every dialect is named, so a
/// new one has to choose.
pub(crate) fn azure_headers(dialect: SimDialect) -> bool {
    match dialect {
        SimDialect::Azure => true,
        SimDialect::OpenAi
        | SimDialect::Anthropic
        | SimDialect::Bedrock
        | SimDialect::Gemini
        | SimDialect::Vertex
        | SimDialect::BedrockMantle => false,
    }
}

/// A duration the way Go prints it (`0s`, `6ms`, `1.5s`, `6m0s`, `1h2m3s`), as OpenAI's
/// reset headers do.
pub(crate) fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let seconds = match ms % 60_000 {
        rest if rest % 1000 == 0 => format!("{}s", rest / 1000),
        rest => {
            let fraction = format!("{:03}", rest % 1000);
            format!("{}.{}s", rest / 1000, fraction.trim_end_matches('0'))
        }
    };
    match (ms / 3_600_000, ms / 60_000 % 60) {
        (0, 0) => seconds,
        (0, minutes) => format!("{minutes}m{seconds}"),
        (hours, minutes) => format!("{hours}h{minutes}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn formats_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(6), "6ms");
        assert_eq!(go_duration(1000), "1s");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(go_duration(360_000), "6m0s");
        assert_eq!(go_duration(90_250), "1m30.25s");
        assert_eq!(go_duration(3_723_000), "1h2m3s");
    }
}

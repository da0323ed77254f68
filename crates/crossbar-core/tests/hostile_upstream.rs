//! What a hostile or broken upstream can do to the router, tried against the real providers
//! and HTTP client with a scripted server on loopback: leak the endpoint's query-string key
//! through a transport error, panic a request with an absurd `Retry-After`, grow our memory
//! with an endless SSE line, or bounce our credentials elsewhere with a redirect.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbar_core::ErrorKind;
use crossbar_core::chat::{ChatRequest, Message, Role, StreamEvent};
use crossbar_core::config::Config;
use crossbar_core::dialects::openai;
use crossbar_core::router::{AttemptLog, Preferences, Router};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const QUERY_SECRET: &str = "sk-query-secret-0123456789";
const KEY_SECRET: &str = "sk-header-secret-abcdef";

/// What the scripted upstream does once it has read a request.
#[derive(Clone, Copy)]
enum Reply {
    /// Closes the connection without a word.
    Hang,
    /// Writes these bytes, then closes.
    Raw(&'static str),
    /// Starts a 200 SSE stream with one content chunk, then sends one line that never ends:
    /// 64 KiB writes until the client goes away (or 128 MiB, so the test always stops).
    EndlessLine,
}

struct Upstream {
    port: u16,
    requests: Arc<AtomicUsize>,
    /// Bytes of the endless line written before the client hung up.
    written: Arc<AtomicUsize>,
}

async fn upstream(reply: Reply) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicUsize::new(0));
    let (count, total) = (Arc::clone(&requests), Arc::clone(&written));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(socket, reply, Arc::clone(&total)));
        }
    });
    Upstream {
        port,
        requests,
        written,
    }
}

async fn serve(mut socket: TcpStream, reply: Reply, written: Arc<AtomicUsize>) {
    read_request(&mut socket).await;
    match reply {
        Reply::Hang => {}
        Reply::Raw(text) => {
            let _ = socket.write_all(text.as_bytes()).await;
        }
        Reply::EndlessLine => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n\
                data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"t\",\
                \"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"}}]}\n\n\
                data: ";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..2048 {
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
                written.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Reads the request's head and its `content-length` body, so that closing after it is a
/// clean end of the connection rather than a reset.
async fn read_request(socket: &mut TcpStream) {
    let mut data = Vec::new();
    let mut buffer = [0; 8192];
    loop {
        let head_end = data.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + length {
                return;
            }
        }
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buffer[..n]),
        }
    }
}

/// One OpenAI-compatible provider `p` at `port`, with a key in its endpoint's query string,
/// serving model `m`.
fn router(port: u16) -> Router {
    let config = format!(
        "[[providers]]\nname = \"p\"\nkind = \"openai-compatible\"\n\
         endpoint = \"http://127.0.0.1:{port}/v1?key={QUERY_SECRET}\"\napi_key = \"{KEY_SECRET}\"\n\n\
         [[models]]\nname = \"m\"\n\
         deployments = [{{ provider = \"p\", target = \"t\", price = {{ input = 1.0, output = 1.0 }} }}]\n"
    );
    let config = Config::from_toml(&config, "test.toml").unwrap();
    Router::from_config(&config, &HashMap::new()).unwrap()
}

fn ask() -> ChatRequest {
    ChatRequest::new("m", vec![Message::text(Role::User, "hello")])
}

/// Everything a failed request leaves behind: the error, the client's body, the attempts'
/// errors (the ledger's record).
async fn fail(router: &Router) -> (crossbar_core::Error, String, Vec<String>) {
    let preferences = Preferences {
        attempt_log: AttemptLog::enabled(),
        ..Preferences::default()
    };
    let error = router.chat_with(&ask(), &preferences).await.unwrap_err();
    let body = String::from_utf8(openai::encode_error(&error)).unwrap();
    let attempts = preferences
        .attempt_log
        .take()
        .into_iter()
        .filter_map(|a| a.error.map(|e| e.message))
        .collect();
    (error, body, attempts)
}

fn assert_no_secret(texts: &[&str]) {
    for text in texts {
        for secret in [QUERY_SECRET, KEY_SECRET, "127.0.0.1", "http://"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_does_not_leak_the_endpoint() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (error, body, attempts) = fail(&router(port)).await;
    assert_eq!(
        (error.kind, error.message.as_str()),
        (
            ErrorKind::UpstreamConnect,
            "Could not connect to provider `p`."
        )
    );
    assert_eq!(attempts.len(), 3);
    assert_no_secret(&[&body, &attempts.join("\n")]);
}

/// Before: "Transport error talking to provider `p`: error sending request for url
/// (http://127.0.0.1:…/v1?key=sk-query-secret-…/chat/completions): …", in the client's body,
/// every attempt's record and the log line of each failed attempt.
#[tokio::test]
async fn a_dropped_connection_does_not_leak_the_endpoint() {
    let upstream = upstream(Reply::Hang).await;
    let (error, body, attempts) = fail(&router(upstream.port)).await;
    let expected = "Transport error talking to provider `p`: error sending request: \
                    client error (SendRequest): connection closed before message completed";
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::UpstreamConnect, expected)
    );
    assert_eq!(attempts, vec![expected; 3]);
    assert_no_secret(&[&body]);
}

/// `retry-after: 1e19` overflowed `Instant + Duration` when the deployment's cooldown was set,
/// and `1e20` overflowed `Duration::from_secs_f64` reading the header: each panicked the request.
#[tokio::test]
async fn an_absurd_retry_after_is_clamped_to_an_hour() {
    for value in ["1e19", "1e20", "18446744073709551616", "1e308"] {
        let reply: &'static str = Box::leak(
            format!("HTTP/1.1 429 Too Many Requests\r\nretry-after: {value}\r\ncontent-length: 0\r\n\r\n")
                .into_boxed_str(),
        );
        let upstream = upstream(Reply::Raw(reply)).await;
        let router = router(upstream.port);
        let (error, _, _) = fail(&router).await;
        assert_eq!(
            (error.status(), error.retry_after),
            (429, Some(Duration::from_secs(3600))),
            "{value}"
        );
        // The deployment cools down for that hour: the next request is refused without a call.
        let calls = upstream.requests.load(Ordering::SeqCst);
        let (refused, _, _) = fail(&router).await;
        assert_eq!(refused.code.as_deref(), Some("deployments_rate_limited"));
        assert!(refused.retry_after.unwrap() <= Duration::from_secs(3600));
        assert!(refused.retry_after.unwrap() > Duration::from_secs(3590));
        assert_eq!(upstream.requests.load(Ordering::SeqCst), calls);
    }
}

/// A line that never ends is refused once it passes 16 MiB: the client's stream, which had
/// started, ends with an upstream protocol error instead of the gateway buffering forever.
#[tokio::test]
async fn an_endless_sse_line_ends_the_stream_with_an_error() {
    let upstream = upstream(Reply::EndlessLine).await;
    let router = router(upstream.port);
    let mut request = ask();
    request.stream = true;
    let routed = router.chat_stream(&request).await.unwrap();
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(60), routed.value.collect())
        .await
        .expect("the stream never ended");
    let (last, events) = items.split_last().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(StreamEvent::TextDelta(text)) if text == "hi")),
        "{events:?}"
    );
    let error = last.as_ref().unwrap_err();
    assert_eq!(
        (error.kind, error.message.as_str()),
        (
            ErrorKind::BadUpstreamResponse,
            "Provider `p`: sent an SSE event larger than 16777216 bytes."
        )
    );
    // We hung up after the limit: the upstream got 16 MiB in, plus what the kernel's socket
    // buffers on both ends held (they grow to several MiB each on loopback), not its 128 MiB.
    let written = upstream.written.load(Ordering::SeqCst);
    assert!(written < 64 * 1024 * 1024, "{written} bytes written");
}

/// Redirects are not followed: reqwest keeps custom key headers (`api-key`, `x-api-key`,
/// `x-goog-api-key`) across hosts, and an upstream could point us anywhere.
#[tokio::test]
async fn a_redirect_is_not_followed() {
    let elsewhere = upstream(Reply::Raw("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
    let location: &'static str = Box::leak(
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{}/steal\r\ncontent-length: 0\r\n\r\n",
            elsewhere.port
        )
        .into_boxed_str(),
    );
    let upstream = upstream(Reply::Raw(location)).await;
    let (error, body, _) = fail(&router(upstream.port)).await;
    assert_eq!(
        (error.status(), error.message.as_str()),
        (
            502,
            "Provider `p` answered with a redirect (HTTP 307), which the gateway does not follow."
        )
    );
    assert_no_secret(&[&body]);
    assert_eq!(elsewhere.requests.load(Ordering::SeqCst), 0);
}

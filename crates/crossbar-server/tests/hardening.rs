//! Attacks from issue 18 against the real handler on port 0: each test reproduces one and
//! asserts the gateway's answer (and that it stays available).

mod common;

use std::time::{Duration, Instant};

use common::{TWO_CLOUDS, start, user};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A 19-byte header of stars took exponential time in the recursive matcher and pinned a core
/// per request; now it is refused with a 400 naming the header, and a long pattern of the
/// accepted shape answers at once.
#[tokio::test]
async fn starry_provider_patterns_are_refused_at_once() {
    let gw = start(TWO_CLOUDS).await;
    let started = Instant::now();
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-crossbar-provider", "*".repeat(19))
        .json(&json!({"model": "chat", "messages": [user("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "x-crossbar-provider");
    assert_eq!(
        body["error"]["message"],
        "A provider pattern may hold at most 4 `*`."
    );
    // Four stars between literals that never match: linear, so instant.
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-crossbar-provider", format!("*{}*x*y*z", "s".repeat(100)))
        .json(&json!({"model": "chat", "messages": [user("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "{:?}", response.text().await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// Reads until the peer closes; `None` if it is still open after `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(seen)
}

fn with_server(extra: &str) -> String {
    format!("[server]\n{extra}\n{TWO_CLOUDS}")
}

/// Slowloris: headers that never finish (or nothing at all, or half an HTTP/2 preface) held a
/// connection forever; with a 1 s header timeout each is closed, and the gateway still serves.
#[tokio::test]
async fn unfinished_headers_are_cut_off() {
    let gw = start(&with_server("header_read_timeout_s = 1")).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut preface = TcpStream::connect(&addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for (name, tcp) in [
        ("partial headers", &mut partial),
        ("silent", &mut silent),
        ("half a preface", &mut preface),
    ] {
        assert!(
            closed_within(tcp, Duration::from_secs(10)).await.is_some(),
            "{name}: still open after 10 s"
        );
    }
    // An idle keep-alive connection is closed too, after a request it was served.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut idle, Duration::from_secs(10))
        .await
        .expect("the idle connection is closed");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(gw.get("/healthz").await.status(), 200);
}

/// Past `max_connections`, a new connection gets a 503 with `Retry-After` in the gateway's
/// error shape instead of taking a descriptor forever; once one closes, service resumes.
#[tokio::test]
async fn connections_past_the_cap_are_shed_with_503() {
    let gw = start(&with_server(
        "max_connections = 2\nheader_read_timeout_s = 30",
    ))
    .await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let held_a = TcpStream::connect(&addr).await.unwrap();
    let mut held_b = TcpStream::connect(&addr).await.unwrap();
    held_b
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    held_b.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let response = reqwest::Client::new()
        .get(format!("{}/healthz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "The gateway is serving its maximum number of connections; retry shortly."
    );
    assert_eq!(body["error"]["type"], "server_error");
    drop(held_a);
    drop(held_b);
    // The slots come back when the connections close.
    let mut status = 0;
    for _ in 0..50 {
        status = gw.get("/healthz").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
}

/// A body that stops arriving is cut off after `body_read_timeout_s` with an error, instead of
/// holding the request forever.
#[tokio::test]
async fn stalled_bodies_time_out() {
    let gw = start(&with_server("body_read_timeout_s = 1")).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let answer = closed_within(&mut tcp, Duration::from_secs(10))
        .await
        .expect("the stalled request is answered and closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("\"message\":\"Could not read the request body: Failed to buffer the request body: data was not received within the designated timeout\""),
        "{answer}"
    );
}

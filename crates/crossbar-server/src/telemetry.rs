//! OpenTelemetry traces, only when `telemetry.otlp_endpoint` is set: one server span per API
//! request and one client span per upstream attempt under it, with the GenAI semantic
//! conventions (`gen_ai.operation.name`, `gen_ai.system`, `gen_ai.request.model`,
//! `gen_ai.usage.input_tokens`, ...), continuing the client's W3C `traceparent`.
//!
//! Spans are made from the finished usage record and sent as OTLP/HTTP JSON by one background
//! task in batches through a bounded queue (full: counted and dropped, never blocking). A
//! hand-written exporter keeps the OpenTelemetry SDK and its dependency tree out of the
//! gateway; OTLP's JSON encoding is a stable, documented protocol.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use crossbar_core::config::ProviderKind;
use crossbar_core::router::Deployment;
use crossbar_store::UsageRecord;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

const QUEUE: usize = 4096;
const BATCH: usize = 256;
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The trace a request belongs to: the client's (`traceparent`) or a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The client's span, parent of ours.
    pub parent: Option<[u8; 8]>,
}

fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(text).ok()?;
    let array: [u8; N] = bytes.try_into().ok()?;
    // All-zero ids are invalid in W3C trace context.
    array.iter().any(|b| *b != 0).then_some(array)
}

impl TraceContext {
    /// From a `traceparent` header (`00-<trace id>-<parent id>-<flags>`), else a new trace.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let parsed = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let mut parts = v.trim().split('-');
                let (version, trace, parent) = (parts.next()?, parts.next()?, parts.next()?);
                if version.len() != 2 || version == "ff" || parts.next()?.len() != 2 {
                    return None;
                }
                Some(Self {
                    trace_id: hex_bytes::<16>(trace)?,
                    parent: Some(hex_bytes::<8>(parent)?),
                })
            });
        parsed.unwrap_or_else(|| Self {
            trace_id: rand::rng().random(),
            parent: None,
        })
    }
}

/// `gen_ai.system` for a provider kind.
fn system(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => "openai",
        ProviderKind::AzureOpenai => "az.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Vertex | ProviderKind::VertexAnthropic => "gcp.vertex_ai",
        ProviderKind::Sim => "crossbar.sim",
    }
}

fn nanos(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

fn attr(key: &str, value: Value) -> Value {
    let value = match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_f64() => json!({ "doubleValue": n }),
        // OTLP JSON carries 64-bit integers as strings.
        Value::Number(n) => json!({ "intValue": n.to_string() }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": value })
}

/// Builds the request's span and its attempts' spans from the finished record.
pub fn spans(
    record: &UsageRecord,
    deployment: Option<&Deployment>,
    trace: TraceContext,
    started: SystemTime,
    lookup: impl Fn(&str) -> Option<(ProviderKind, String)>,
) -> Vec<Value> {
    let trace_id = hex::encode(trace.trace_id);
    let span_id: [u8; 8] = rand::rng().random();
    let span_id = hex::encode(span_id);
    let operation = match record.api.as_str() {
        "embeddings" => "embeddings",
        _ => "chat",
    };
    let end = started + Duration::from_millis(record.latency_ms);
    let mut attributes = vec![
        attr("gen_ai.operation.name", json!(operation)),
        attr("gen_ai.request.model", json!(record.model)),
        attr("gen_ai.usage.input_tokens", json!(record.input_tokens)),
        attr("gen_ai.usage.output_tokens", json!(record.output_tokens)),
        attr("http.response.status_code", json!(record.status)),
        attr("crossbar.request_id", json!(record.request_id)),
        attr("crossbar.api", json!(record.api)),
        attr(
            "crossbar.cost_usd",
            json!(crossbar_core::pricing::pico_to_usd(record.cost_pusd)),
        ),
        attr("crossbar.attempts", json!(record.attempts.len())),
    ];
    if let Some(d) = deployment {
        attributes.push(attr("gen_ai.system", json!(system(d.provider.kind))));
        attributes.push(attr("gen_ai.response.model", json!(d.target)));
        attributes.push(attr("crossbar.deployment", json!(d.id())));
        attributes.push(attr("cloud.provider", json!(d.provider.cloud)));
        attributes.push(attr("cloud.region", json!(d.provider.region)));
    }
    if let Some(key) = &record.key_id {
        attributes.push(attr("crossbar.key_id", json!(key)));
    }
    if let Some(route) = &record.route {
        attributes.push(attr("crossbar.route", json!(route)));
    }
    let failed = record.status >= 500 || record.error.is_some();
    let mut out = vec![json!({
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": trace.parent.map(hex::encode).unwrap_or_default(),
        "name": format!("{operation} {}", record.model),
        "kind": 2,
        "startTimeUnixNano": nanos(started),
        "endTimeUnixNano": nanos(end),
        "attributes": attributes,
        "status": if failed {
            json!({"code": 2, "message": record.error.clone().unwrap_or_default()})
        } else {
            json!({"code": 0})
        },
    })];
    // Attempts carry durations, not start times: sequential ones are laid end to end from the
    // request's start, and a hedge starts where the attempt it hedged started.
    let mut offset = Duration::ZERO;
    let mut previous_start = Duration::ZERO;
    for attempt in &record.attempts {
        let elapsed = Duration::from_millis(attempt.latency_ms);
        let start = if attempt.hedge {
            previous_start
        } else {
            offset
        };
        if !attempt.hedge {
            offset += elapsed;
        }
        previous_start = start;
        let id: [u8; 8] = rand::rng().random();
        let (kind, target) =
            lookup(&attempt.deployment).unwrap_or((ProviderKind::Sim, String::new()));
        let mut attributes = vec![
            attr("gen_ai.operation.name", json!(operation)),
            attr("gen_ai.system", json!(system(kind))),
            attr("gen_ai.request.model", json!(target)),
            attr("crossbar.deployment", json!(attempt.deployment)),
            attr("crossbar.outcome", json!(attempt.outcome)),
            attr("crossbar.hedge", json!(attempt.hedge)),
            attr("cloud.region", json!(attempt.region)),
        ];
        if let Some(status) = attempt.status {
            attributes.push(attr("error.type", json!(status.to_string())));
        }
        out.push(json!({
            "traceId": trace_id,
            "spanId": hex::encode(id),
            "parentSpanId": span_id,
            "name": format!("{operation} {target}"),
            "kind": 3,
            "startTimeUnixNano": nanos(started + start),
            "endTimeUnixNano": nanos(started + start + elapsed),
            "attributes": attributes,
            "status": if attempt.outcome == "error" {
                json!({"code": 2, "message": attempt.reason.clone().unwrap_or_default()})
            } else {
                json!({"code": 0})
            },
        }));
    }
    out
}

type Exporter = (oneshot::Sender<()>, JoinHandle<()>);

/// Sends spans to the collector in the background.
#[derive(Debug)]
pub struct Telemetry {
    tx: mpsc::Sender<Value>,
    task: Mutex<Option<Exporter>>,
}

impl Telemetry {
    pub fn start(endpoint: &str, service_name: &str) -> Self {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let resource = json!({"attributes": [attr("service.name", json!(service_name))]});
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(export(url, resource, rx, stop_rx));
        Self {
            tx,
            task: Mutex::new(Some((stop_tx, task))),
        }
    }

    /// Queues spans without waiting; a full queue drops them (counted).
    pub fn submit(&self, spans: Vec<Value>) {
        for span in spans {
            if self.tx.try_send(span).is_err() {
                metrics::counter!("crossbar_trace_spans_dropped_total").increment(1);
            }
        }
    }

    /// Sends everything queued and stops.
    pub async fn flush(&self) {
        if let Some((stop, task)) = self.task.lock().await.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

async fn export(
    url: String,
    resource: Value,
    mut rx: mpsc::Receiver<Value>,
    mut stop: oneshot::Receiver<()>,
) {
    let client = reqwest::Client::new();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    break;
                }
            }
            _ = &mut stop => break,
        }
        send(&client, &url, &resource, &mut batch).await;
    }
    rx.close();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        send(&client, &url, &resource, &mut batch).await;
    }
}

async fn send(client: &reqwest::Client, url: &str, resource: &Value, batch: &mut Vec<Value>) {
    if batch.is_empty() {
        return;
    }
    let body = json!({"resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{"scope": {"name": "crossbar"}, "spans": std::mem::take(batch)}],
    }]});
    let sent = client
        .post(url)
        .timeout(EXPORT_TIMEOUT)
        .json(&body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    if let Err(error) = sent {
        metrics::counter!("crossbar_trace_export_failures_total").increment(1);
        tracing::warn!("sending traces failed: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_continued_and_garbage_starts_a_new_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let trace = TraceContext::from_headers(&headers);
        assert_eq!(
            hex::encode(trace.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            trace.parent.map(hex::encode).as_deref(),
            Some("00f067aa0ba902b7")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-zz-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            headers.insert("traceparent", bad.parse().unwrap());
            assert_eq!(TraceContext::from_headers(&headers).parent, None, "{bad}");
        }
    }
}

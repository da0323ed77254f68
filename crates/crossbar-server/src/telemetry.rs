//! OpenTelemetry traces, only when `telemetry.otlp_endpoint` is set: one server span per API
//! request and one client span per upstream attempt under it, with the GenAI semantic
//! conventions (`gen_ai.operation.name`, `gen_ai.system`, `gen_ai.request.model`,
//! `gen_ai.usage.input_tokens`, ...), continuing the client's W3C `traceparent`.
//!
//! Spans are made from the finished usage record (attempts are only known once the request is
//! over, so ids and times are given explicitly) and recorded through the OpenTelemetry SDK: its
//! batch processor, on the Tokio runtime, queues them boundedly (full: dropped, never blocking)
//! and `opentelemetry-otlp` sends them as OTLP/HTTP JSON over the gateway's own reqwest client.

use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use crossbar_core::config::ProviderKind;
use crossbar_core::router::Deployment;
use crossbar_core::trace::{AttributeValue, SpanRecord, SpanSink};
use crossbar_store::UsageRecord;
use opentelemetry::trace::{
    SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, TracerProvider,
};
use opentelemetry::{Context, KeyValue, propagation::TextMapPropagator};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};
use rand::Rng;

const QUEUE: usize = 4096;
const BATCH: usize = 256;

/// The trace a request belongs to: the client's (`traceparent`) or a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceContext {
    pub trace_id: [u8; 16],
    /// The client's span, parent of ours.
    pub parent: Option<[u8; 8]>,
}

impl TraceContext {
    /// From a `traceparent` header (parsed by the SDK's W3C propagator), else a new trace.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let client = context.span().span_context().clone();
        if client.is_valid() {
            Self {
                trace_id: client.trace_id().to_bytes(),
                parent: Some(client.span_id().to_bytes()),
            }
        } else {
            Self {
                trace_id: rand::rng().random(),
                parent: None,
            }
        }
    }
}

/// OTLP integers are signed; counts past `i64::MAX` saturate.
fn int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// A span whose every field is known: recorded by [`Telemetry::submit`].
#[derive(Debug)]
pub(crate) struct FinishedSpan {
    builder: SpanBuilder,
    /// The parent: the client's span (remote) or our request span.
    parent: Option<SpanContext>,
    end: SystemTime,
}

/// Builds the request's span and its attempts' spans from the finished record.
pub(crate) fn spans(
    record: &UsageRecord,
    deployment: Option<&Deployment>,
    trace: TraceContext,
    started: SystemTime,
    lookup: impl Fn(&str) -> Option<(ProviderKind, String)>,
) -> Vec<FinishedSpan> {
    let trace_id = TraceId::from_bytes(trace.trace_id);
    let span_id = SpanId::from_bytes(rand::rng().random());
    let operation = match record.api.as_str() {
        "embeddings" => "embeddings",
        _ => "chat",
    };
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", operation),
        KeyValue::new("gen_ai.request.model", record.model.clone()),
        KeyValue::new("gen_ai.usage.input_tokens", int(record.input_tokens)),
        KeyValue::new("gen_ai.usage.output_tokens", int(record.output_tokens)),
        KeyValue::new("http.response.status_code", i64::from(record.status)),
        KeyValue::new("crossbar.request_id", record.request_id.clone()),
        KeyValue::new("crossbar.api", record.api.clone()),
        KeyValue::new(
            "crossbar.cost_usd",
            crossbar_core::pricing::pico_to_usd(record.cost_pusd),
        ),
        KeyValue::new("crossbar.attempts", int(record.attempts.len())),
    ];
    if let Some(d) = deployment {
        attributes.extend([
            KeyValue::new(
                "gen_ai.system",
                crossbar_core::kinds::system(d.provider.kind),
            ),
            KeyValue::new("gen_ai.response.model", d.target.clone()),
            KeyValue::new("crossbar.deployment", d.id()),
            KeyValue::new("cloud.provider", d.provider.cloud.clone()),
            KeyValue::new("cloud.region", d.provider.region.clone()),
        ]);
    }
    if let Some(key) = &record.key_id {
        attributes.push(KeyValue::new("crossbar.key_id", key.clone()));
    }
    if let Some(route) = &record.route {
        attributes.push(KeyValue::new("crossbar.route", route.clone()));
    }
    let failed = record.status >= 500 || record.error.is_some();
    let client = trace.parent.map(|parent| {
        let parent = SpanId::from_bytes(parent);
        SpanContext::new(
            trace_id,
            parent,
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        )
    });
    let mut out = vec![FinishedSpan {
        builder: SpanBuilder::from_name(format!("{operation} {}", record.model))
            .with_trace_id(trace_id)
            .with_span_id(span_id)
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes(attributes)
            .with_status(if failed {
                Status::error(record.error.clone().unwrap_or_default())
            } else {
                Status::Unset
            }),
        parent: client,
        end: started + Duration::from_millis(record.latency_ms),
    }];
    let request = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
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
        let (kind, target) =
            lookup(&attempt.deployment).unwrap_or((ProviderKind::Sim, String::new()));
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.system", crossbar_core::kinds::system(kind)),
            KeyValue::new("gen_ai.request.model", target.clone()),
            KeyValue::new("crossbar.deployment", attempt.deployment.clone()),
            KeyValue::new("crossbar.outcome", attempt.outcome.clone()),
            KeyValue::new("crossbar.hedge", attempt.hedge),
            KeyValue::new("cloud.region", attempt.region.clone()),
        ];
        if let Some(status) = attempt.status {
            attributes.push(KeyValue::new("error.type", status.to_string()));
        }
        out.push(FinishedSpan {
            builder: SpanBuilder::from_name(format!("{operation} {target}"))
                .with_kind(SpanKind::Client)
                .with_start_time(started + start)
                .with_attributes(attributes)
                .with_status(if attempt.outcome == "error" {
                    Status::error(attempt.reason.clone().unwrap_or_default())
                } else {
                    Status::Unset
                }),
            parent: Some(request.clone()),
            end: started + start + elapsed,
        });
    }
    out
}

impl From<SpanRecord> for FinishedSpan {
    fn from(record: SpanRecord) -> Self {
        let trace_id = TraceId::from_bytes(record.trace_id);
        let attributes = record
            .attributes
            .into_iter()
            .map(|(key, value)| match value {
                AttributeValue::String(v) => KeyValue::new(key, v),
                AttributeValue::Int(v) => KeyValue::new(key, v),
                AttributeValue::Float(v) => KeyValue::new(key, v),
                AttributeValue::Bool(v) => KeyValue::new(key, v),
            });
        Self {
            builder: SpanBuilder::from_name(record.name)
                .with_trace_id(trace_id)
                .with_span_id(SpanId::from_bytes(record.span_id))
                .with_kind(match record.kind {
                    crossbar_core::trace::SpanKind::Internal => SpanKind::Internal,
                    crossbar_core::trace::SpanKind::Client => SpanKind::Client,
                    crossbar_core::trace::SpanKind::Server => SpanKind::Server,
                })
                .with_start_time(record.start)
                .with_attributes(attributes)
                .with_status(record.error.map_or(Status::Unset, Status::error)),
            // Recorded by whoever made the record, maybe another process: remote to this one.
            parent: record.parent_span_id.map(|parent| {
                SpanContext::new(
                    trace_id,
                    SpanId::from_bytes(parent),
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::NONE,
                )
            }),
            end: record.end,
        }
    }
}

/// The OTLP exporter, counting failed exports (the SDK would only log them, and only with its
/// internal logs on).
#[derive(Debug)]
struct Counted(opentelemetry_otlp::SpanExporter);

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let sent = self.0.export(batch).await;
        if let Err(error) = &sent {
            metrics::counter!("crossbar_trace_export_failures_total").increment(1);
            tracing::warn!("sending traces failed: {error}");
        }
        sent
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// Records spans and sends them to the collector in the background.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Telemetry {
    /// Starts the exporter on the current Tokio runtime. An endpoint the exporter rejects is
    /// logged, and spans then go nowhere rather than failing the gateway's start.
    pub fn start(endpoint: &str, service_name: &str) -> Self {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let resource = Resource::builder_empty()
            .with_service_name(service_name.to_owned())
            .build();
        // Every request is traced, whatever the client's sampled flag says.
        let builder = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::AlwaysOn);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(url)
            .with_http_client(reqwest::Client::new())
            .build();
        let provider = match exporter {
            Ok(exporter) => {
                let config = BatchConfigBuilder::default()
                    .with_max_queue_size(QUEUE)
                    .with_max_export_batch_size(BATCH)
                    .build();
                let batch = BatchSpanProcessor::builder(Counted(exporter), Tokio)
                    .with_batch_config(config)
                    .build();
                builder.with_span_processor(batch).build()
            }
            Err(error) => {
                tracing::warn!("traces disabled: {error}");
                builder.build()
            }
        };
        let tracer = provider.tracer("crossbar");
        Self { provider, tracer }
    }

    /// Records finished spans without waiting; a full queue drops them.
    pub(crate) fn submit(&self, spans: Vec<FinishedSpan>) {
        for span in spans {
            let parent = span
                .parent
                .map_or_else(Context::new, |p| Context::new().with_remote_span_context(p));
            let mut recorded = span.builder.start_with_context(&self.tracer, &parent);
            opentelemetry::trace::Span::end_with_timestamp(&mut recorded, span.end);
        }
    }

    /// Sends everything queued and stops.
    pub async fn flush(&self) {
        // The SDK's shutdown blocks until the batch task, on this runtime, has sent the rest.
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

/// Spans recorded elsewhere (the agent runtime's) go out through the same exporter.
impl SpanSink for Telemetry {
    fn record(&self, spans: Vec<SpanRecord>) {
        self.submit(spans.into_iter().map(FinishedSpan::from).collect());
    }
}

impl Drop for Telemetry {
    /// An unflushed provider shuts down on its last drop, blocking until the batch task answers:
    /// done on a thread of its own, never on a runtime thread that task may be waiting for.
    fn drop(&mut self) {
        let provider = self.provider.clone();
        let _ = std::thread::Builder::new()
            .name("crossbar-traces".into())
            .spawn(move || provider.shutdown());
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

    /// The SDK's shutdown on drop waits for the batch task: on a single-threaded runtime that
    /// must not happen on the runtime's own thread.
    #[test]
    fn dropping_an_unflushed_exporter_does_not_block_its_runtime() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                drop(Telemetry::start("http://127.0.0.1:9", "test"));
                tokio::task::yield_now().await;
            });
            done.send(()).unwrap();
        });
        finished.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}

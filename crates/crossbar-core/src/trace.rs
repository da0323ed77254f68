//! Finished spans as plain data, for code that records spans but must not depend on an
//! exporter (the agent runtime records its runs, steps and tool calls this way; the gateway's
//! OTLP telemetry implements [`SpanSink`] and sends them).

use std::time::SystemTime;

/// The OpenTelemetry span kinds used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Internal,
    /// A call to another service (an agent's model call, whose server span is the gateway's).
    Client,
    Server,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<i64> for AttributeValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u32> for AttributeValue {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}

/// OTLP integers are signed; counts past `i64::MAX` saturate.
impl From<u64> for AttributeValue {
    fn from(value: u64) -> Self {
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<f64> for AttributeValue {
    fn from(value: f64) -> Self {
        Self::Float(value)
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// A span whose ids and times are all known (recorded after the fact, so a span's id can be
/// promised to others — e.g. in a `traceparent` — before it is recorded).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    pub name: String,
    pub kind: SpanKind,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(String, AttributeValue)>,
    /// The failure, when the operation failed: the span's error status description.
    pub error: Option<String>,
}

impl SpanRecord {
    pub fn attribute(mut self, key: &str, value: impl Into<AttributeValue>) -> Self {
        self.attributes.push((key.to_owned(), value.into()));
        self
    }

    /// The attribute's value, if set (last one wins).
    pub fn get(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Where finished spans go: an exporter that queues them and sends them in the background.
pub trait SpanSink: Send + Sync {
    /// Takes the spans without waiting; a sink may drop them when its queue is full.
    fn record(&self, spans: Vec<SpanRecord>);
}

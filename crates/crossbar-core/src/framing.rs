//! Splits an upstream's streamed body into frames: SSE events, or AWS event-stream messages.

use std::pin::Pin;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};

use crate::dialects::{Frame, FrameKind, Framing};
use crate::error::{Error, Result};
use crate::provider::error_chain;

/// A frame that owns its text, as it comes out of a framer.
#[derive(Debug)]
pub struct OwnedFrame {
    pub kind: FrameKind,
    pub event: String,
    pub data: String,
}

impl OwnedFrame {
    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            kind: self.kind,
            event: &self.event,
            data: &self.data,
        }
    }
}

pub type Frames = Pin<Box<dyn Stream<Item = Result<OwnedFrame>> + Send>>;

/// The frames of a streamed response body.
pub fn frames(response: reqwest::Response, framing: Framing) -> Frames {
    match framing {
        Framing::Sse => Box::pin(response.bytes_stream().eventsource().map(|event| {
            event
                .map(|e| OwnedFrame {
                    kind: FrameKind::Event,
                    event: e.event,
                    data: e.data,
                })
                .map_err(|e| {
                    Error::stream_interrupted(format!(
                        "broke off its stream: {}",
                        sse_error_text(&e)
                    ))
                })
        })),
        Framing::AwsEventStream => aws_event_stream(response.bytes_stream()),
    }
}

/// Largest event-stream frame accepted, as the AWS SDKs cap it: a corrupt length field must not
/// make us buffer without bound.
const MAX_AWS_FRAME: usize = 16 * 1024 * 1024;
/// Prelude (total length, headers length, prelude CRC) plus the trailing message CRC.
const AWS_FRAME_OVERHEAD: usize = 16;

/// Splits an `application/vnd.amazon.eventstream` body into frames. Frames split across reads
/// are buffered until whole; both CRCs are checked by `aws-smithy-eventstream`. A frame with a
/// bad checksum is garbage (`bad_upstream`); a body ending inside a frame was cut
/// (`stream_interrupted`).
pub(crate) fn aws_event_stream<S, E>(body: S) -> Frames
where
    S: Stream<Item = std::result::Result<bytes::Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    Box::pin(async_stream::try_stream! {
        let mut body = Box::pin(body);
        let mut buffer = bytes::BytesMut::new();
        loop {
            while let Some(frame) = next_aws_frame(&mut buffer)? {
                yield frame;
            }
            match body.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => Err(Error::stream_interrupted(format!(
                    "broke off its stream: {}",
                    error_chain(&e)
                )))?,
                None if buffer.is_empty() => break,
                None => Err(Error::stream_interrupted(format!(
                    "ended its stream inside an event-stream frame ({} bytes left over).",
                    buffer.len()
                )))?,
            }
        }
    })
}

/// Takes one whole frame off the front of `buffer`, if it holds one.
fn next_aws_frame(buffer: &mut bytes::BytesMut) -> Result<Option<OwnedFrame>> {
    let Some(prefix) = buffer.get(..4) else {
        return Ok(None);
    };
    let total = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if !(AWS_FRAME_OVERHEAD..=MAX_AWS_FRAME).contains(&total) {
        return Err(Error::bad_upstream(format!(
            "sent an event-stream frame with an impossible length ({total} bytes)."
        )));
    }
    if buffer.len() < total {
        return Ok(None);
    }
    let frame = buffer.split_to(total).freeze();
    let message = aws_smithy_eventstream::frame::read_message_from(frame)
        .map_err(|e| Error::bad_upstream(format!("sent a corrupt event-stream frame: {e}")))?;
    owned_aws_frame(&message).map(Some)
}

/// Maps `:message-type` event / exception / error and its name header to a frame.
fn owned_aws_frame(message: &aws_smithy_types::event_stream::Message) -> Result<OwnedFrame> {
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|v| v.as_str().to_owned())
    };
    let payload = std::str::from_utf8(message.payload())
        .map_err(|_| Error::bad_upstream("sent an event-stream payload that is not UTF-8."))?
        .to_owned();
    let (kind, event, data) = match header(":message-type").as_deref() {
        Some("exception") => (
            FrameKind::Exception,
            header(":exception-type").unwrap_or_default(),
            payload,
        ),
        // Unmodeled errors carry their text in a header, not in the payload.
        Some("error") => (
            FrameKind::Error,
            header(":error-code").unwrap_or_default(),
            header(":error-message")
                .filter(|m| !m.is_empty())
                .unwrap_or(payload),
        ),
        _ => (
            FrameKind::Event,
            header(":event-type").unwrap_or_default(),
            payload,
        ),
    };
    Ok(OwnedFrame { kind, event, data })
}

fn sse_error_text<E: std::error::Error>(error: &eventsource_stream::EventStreamError<E>) -> String {
    match error {
        eventsource_stream::EventStreamError::Transport(e) => error_chain(e),
        other => other.to_string(),
    }
}

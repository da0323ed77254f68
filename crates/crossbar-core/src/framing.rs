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
        Framing::AwsEventStream => Box::pin(futures::stream::once(async {
            Err(Error::internal(
                "AWS event-stream framing is not available yet",
            ))
        })),
    }
}

fn sse_error_text<E: std::error::Error>(error: &eventsource_stream::EventStreamError<E>) -> String {
    match error {
        eventsource_stream::EventStreamError::Transport(e) => error_chain(e),
        other => other.to_string(),
    }
}

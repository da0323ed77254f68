//! Splits an upstream's streamed body into frames: SSE events, or AWS event-stream messages.
//! Both framers hold at most [`MAX_FRAME_BYTES`] of one frame: an upstream that never ends a
//! line, or announces a huge frame, gets an error rather than our memory.

use std::pin::Pin;

use futures::{Stream, StreamExt};

use crate::dialects::{Frame, FrameKind, Framing};
use crate::error::error_chain;
use crate::error::{Error, Result};

/// Largest SSE event (its lines together, the one being read included) or event-stream frame
/// accepted from an upstream, as the AWS SDKs cap event-stream frames. Real events are a few KB
/// (a streamed image a few MB); past this, an endless line or a corrupt length field would make
/// us buffer without bound.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

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
    // `without_url`: a transport error must not carry the upstream URL (and a key in its query)
    // into the client's answer, the ledger or the logs.
    let body = response
        .bytes_stream()
        .map(|chunk| chunk.map_err(reqwest::Error::without_url));
    match framing {
        Framing::Sse => sse_frames(body),
        Framing::AwsEventStream => aws_event_stream(body),
    }
}

/// Splits a `text/event-stream` body into its events, as the WHATWG parsing rules say: lines
/// end in CRLF, LF or CR; `data` lines join with LF; an event without data is skipped and one
/// left unfinished at the end is dropped; an unnamed event is a `message`.
pub fn sse_frames<S, E>(body: S) -> Frames
where
    S: Stream<Item = std::result::Result<bytes::Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    Box::pin(async_stream::try_stream! {
        let mut body = Box::pin(body);
        let mut decoder = SseDecoder::new(MAX_FRAME_BYTES);
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::stream_interrupted(format!("broke off its stream: {}", error_chain(&e)))
            })?;
            decoder.feed(&chunk, &mut out)?;
            for frame in out.drain(..) {
                yield frame;
            }
        }
    })
}

/// The SSE parser's state between reads. It looks at each byte once, and everything it holds
/// (the line being read, the event's name and data) stays within `max` bytes.
#[derive(Debug)]
pub(crate) struct SseDecoder {
    max: usize,
    /// The line being read, without its end.
    line: Vec<u8>,
    /// The last read ended in CR: an LF starting the next one belongs to it.
    after_cr: bool,
    /// No line was finished yet (it may start with a byte order mark).
    first_line: bool,
    event: String,
    /// The `data` lines so far, each followed by LF.
    data: String,
}

impl SseDecoder {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            after_cr: false,
            first_line: true,
            event: String::new(),
            data: String::new(),
        }
    }

    /// Bytes held: the unfinished line and event.
    pub(crate) fn buffered(&self) -> usize {
        self.line.len() + self.event.len() + self.data.len()
    }

    /// Parses one read, pushing the events it completes to `out`.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<OwnedFrame>) -> Result<()> {
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) {
            self.hold(&chunk[..end])?;
            let cr = chunk[end] == b'\r';
            chunk = &chunk[end + 1..];
            if cr {
                match chunk.strip_prefix(b"\n") {
                    Some(rest) => chunk = rest,
                    None => self.after_cr = chunk.is_empty(),
                }
            }
            self.end_line(out)?;
        }
        self.hold(chunk)
    }

    /// Adds to the line being read, refusing to hold more than `max` bytes in all.
    fn hold(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buffered() + bytes.len() > self.max {
            return Err(Error::bad_upstream(format!(
                "sent an SSE event larger than {} bytes.",
                self.max
            )));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<OwnedFrame>) -> Result<()> {
        let mut line = std::mem::take(&mut self.line);
        let mut text = std::str::from_utf8(&line)
            .map_err(|_| Error::bad_upstream("sent an SSE line that is not UTF-8."))?;
        if std::mem::take(&mut self.first_line) {
            text = text.strip_prefix('\u{feff}').unwrap_or(text);
        }
        if text.is_empty() {
            self.dispatch(out);
        } else if !text.starts_with(':') {
            let (field, value) = match text.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (text, ""),
            };
            // `id` and `retry` matter to browsers reconnecting, not to us.
            match field {
                "event" => value.clone_into(&mut self.event),
                "data" => {
                    self.data.push_str(value);
                    self.data.push('\n');
                }
                _ => {}
            }
        }
        // Keep a small line's allocation for the next one; let a big one go.
        if line.capacity() <= 64 * 1024 {
            line.clear();
            self.line = line;
        }
        Ok(())
    }

    /// Ends the event at a blank line; one with no data is no event.
    fn dispatch(&mut self, out: &mut Vec<OwnedFrame>) {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if data.pop().is_none() {
            return;
        }
        out.push(OwnedFrame {
            kind: FrameKind::Event,
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
        });
    }
}

/// Prelude (total length, headers length, prelude CRC) plus the trailing message CRC.
const AWS_FRAME_OVERHEAD: usize = 16;

/// Splits an `application/vnd.amazon.eventstream` body into frames. Frames split across reads
/// are buffered until whole, once their announced length is known to be at most
/// [`MAX_FRAME_BYTES`]; both CRCs are checked by `aws-smithy-eventstream`. A frame with a
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
    if !(AWS_FRAME_OVERHEAD..=MAX_FRAME_BYTES).contains(&total) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    type Chunk = std::result::Result<Bytes, std::io::Error>;

    /// Frames of `chunks` through the SSE framer, as (event, data), or the error that ended them.
    async fn sse(chunks: &[&[u8]]) -> Vec<std::result::Result<(String, String), String>> {
        let chunks: Vec<Chunk> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        sse_frames(futures::stream::iter(chunks))
            .map(|f| f.map(|f| (f.event, f.data)).map_err(|e| e.message))
            .collect()
            .await
    }

    fn event(event: &str, data: &str) -> std::result::Result<(String, String), String> {
        Ok((event.to_owned(), data.to_owned()))
    }

    #[tokio::test]
    async fn sse_events_are_framed_whatever_the_reads() {
        let body = b"\xef\xbb\xbfdata: {\"a\":1}\r\n\r\n: keep-alive\n\nevent: delta\ndata:x\ndata: y\rid: 7\r\rdata\n\nevent: empty\n\ndata: cut";
        let expected = vec![
            event("message", "{\"a\":1}"),
            event("delta", "x\ny"),
            event("message", ""),
        ];
        assert_eq!(sse(&[body]).await, expected);
        // One byte at a time splits every CRLF, the byte order mark and every field.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(sse(&bytes).await, expected);
        // An empty read between CR and LF does not make the LF a second line end.
        assert_eq!(
            sse(&[b"data: a\r", b"", b"\n\r\n"]).await,
            vec![event("message", "a")]
        );
    }

    #[tokio::test]
    async fn sse_refuses_invalid_utf8() {
        assert_eq!(
            sse(&[b"data: \xff\xfe\n\n"]).await,
            vec![Err("sent an SSE line that is not UTF-8.".to_owned())]
        );
    }

    /// A hostile upstream that never ends its line: the framer holds at most `MAX_FRAME_BYTES`,
    /// and the stream ends with an upstream protocol error on the read that would exceed it.
    #[tokio::test]
    async fn an_endless_sse_line_is_refused_at_the_limit() {
        const CHUNK: usize = 64 * 1024;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let line = Bytes::from(vec![b'a'; CHUNK]);
        let body = futures::stream::once(async { Bytes::from_static(b"data: ") })
            .chain(futures::stream::repeat(line))
            .map(move |chunk: Bytes| {
                counter.fetch_add(chunk.len(), Ordering::Relaxed);
                Chunk::Ok(chunk)
            });
        let mut frames = sse_frames(body);
        let error = tokio::time::timeout(Duration::from_secs(20), frames.next())
            .await
            .expect("the framer kept reading")
            .expect("the stream ended without an error")
            .expect_err("an endless line made an event");
        assert_eq!(
            (error.kind, error.message.as_str()),
            (
                crate::error::ErrorKind::BadUpstreamResponse,
                "sent an SSE event larger than 16777216 bytes."
            )
        );
        // 6 + 255 reads of 64 KiB fit; the 256th would have made the line 16 MiB + 6.
        assert_eq!(pulled.load(Ordering::Relaxed), 6 + 256 * CHUNK);
        assert!(
            frames.next().await.is_none(),
            "the stream ends at its error"
        );
    }

    #[test]
    fn the_decoder_never_holds_more_than_its_limit() {
        let mut out = Vec::new();
        let max = 1000;
        // A line of max + 1 bytes, in reads of 7.
        let mut decoder = SseDecoder::new(max);
        let line = vec![b'x'; max + 1];
        let mut failed_at = None;
        for (i, chunk) in line.chunks(7).enumerate() {
            if decoder.feed(chunk, &mut out).is_err() {
                failed_at = Some(i);
                break;
            }
            assert!(decoder.buffered() <= max);
        }
        // 1001 = 143 reads of 7: the last one is refused, and nothing of it is kept.
        assert_eq!((failed_at, decoder.buffered()), (Some(142), 994));
        // An event of many short lines counts whole: 100 lines of 11 data bytes.
        let mut decoder = SseDecoder::new(max);
        let lines = "data: 0123456789\n".repeat(100);
        let error = decoder.feed(lines.as_bytes(), &mut out).unwrap_err();
        assert_eq!(error.message, "sent an SSE event larger than 1000 bytes.");
        assert!(decoder.buffered() <= max);
        // The blank line that ends an event frees its bytes for the next one.
        let mut decoder = SseDecoder::new(max);
        for _ in 0..10 {
            decoder
                .feed(
                    format!("data: {}\n\n", "y".repeat(900)).as_bytes(),
                    &mut out,
                )
                .unwrap();
        }
        assert_eq!((out.len(), decoder.buffered()), (10, 0));
    }

    /// Reads `body`, then never sends another byte.
    fn stalled(body: Vec<u8>) -> impl Stream<Item = Chunk> + Send + 'static {
        futures::stream::once(async move { Ok(Bytes::from(body)) })
            .chain(futures::stream::pending())
    }

    #[tokio::test]
    async fn an_event_stream_frame_announcing_a_gigabyte_is_refused_before_its_body() {
        // Only the prelude arrives: the refusal must not wait for (or buffer) the frame.
        let mut prelude = (1u32 << 30).to_be_bytes().to_vec();
        prelude.extend_from_slice(&[0, 0, 0, 0]);
        let error = tokio::time::timeout(
            Duration::from_secs(5),
            aws_event_stream(stalled(prelude)).next(),
        )
        .await
        .expect("the framer waited for the announced gigabyte")
        .expect("no item")
        .expect_err("a frame");
        assert_eq!(
            (error.kind, error.message.as_str()),
            (
                crate::error::ErrorKind::BadUpstreamResponse,
                "sent an event-stream frame with an impossible length (1073741824 bytes)."
            )
        );
        // One byte over the limit is refused the same way; the limit itself is waited for.
        let over = u32::try_from(MAX_FRAME_BYTES + 1).unwrap().to_be_bytes();
        let error = aws_event_stream(stalled(over.to_vec()))
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            error.message,
            "sent an event-stream frame with an impossible length (16777217 bytes)."
        );
        let at = u32::try_from(MAX_FRAME_BYTES).unwrap().to_be_bytes();
        let waiting = tokio::time::timeout(
            Duration::from_millis(50),
            aws_event_stream(stalled(at.to_vec())).next(),
        )
        .await;
        assert!(waiting.is_err(), "a frame at the limit is read");
    }
}

//! Seeded fault decisions, latency pacing, and playback of scripted response streams.
//!
//! Dialects encode their frames; this module decides when each frame goes out and where the
//! script breaks (cut, in-band error, malformed frame), the same way for every dialect.

use std::io;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use rand::Rng;
use rand::rngs::StdRng;

use crate::{SimConfig, http};

/// What goes wrong with one model call, decided before it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    RateLimit,
    Error,
    Hang,
    Malformed,
}

/// Draws four numbers for every request whatever the rates, so the n-th request of a seeded
/// run meets the same fault even after rates change mid-run. Comparisons (not
/// `random_bool`) keep out-of-range or NaN rates from panicking.
pub(crate) fn decide(rng: &mut StdRng, config: &SimConfig) -> Fault {
    let draws: [f64; 4] = rng.random();
    if draws[0] < config.rate_limit_rate {
        Fault::RateLimit
    } else if draws[1] < config.error_rate {
        Fault::Error
    } else if draws[2] < config.hang_rate {
        Fault::Hang
    } else if draws[3] < config.malformed_rate {
        Fault::Malformed
    } else {
        Fault::None
    }
}

/// Latency of one response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pacing {
    pub ttft: Duration,
    /// Time per output token; `None` = unlimited.
    pub per_token: Option<Duration>,
}

impl Pacing {
    pub fn new(config: &SimConfig) -> Self {
        let per_token = (config.tokens_per_s.is_finite() && config.tokens_per_s > 0.0)
            .then(|| Duration::try_from_secs_f64(1.0 / config.tokens_per_s).ok())
            .flatten();
        Self {
            ttft: Duration::from_millis(config.ttft_ms),
            per_token,
        }
    }

    /// Time until a whole non-streamed answer of `tokens` output tokens is ready.
    pub fn total(&self, tokens: u64) -> Duration {
        let tokens = u32::try_from(tokens).unwrap_or(u32::MAX);
        let output = self
            .per_token
            .map_or(Duration::ZERO, |per| per.saturating_mul(tokens));
        self.ttft.saturating_add(output)
    }
}

/// One encoded frame of a response stream.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    pub bytes: Bytes,
    /// Carries output tokens, so it is paced at `tokens_per_s`.
    pub paced: bool,
}

/// A dialect's complete stream, plus the frames it sends when the script breaks it.
#[derive(Clone, Debug)]
pub(crate) struct StreamScript {
    pub frames: Vec<Frame>,
    /// Sent after the last frame on a clean end (OpenAI's `[DONE]`).
    pub trailer: Option<Bytes>,
    /// The in-band error sent when `stream_error_after_chunks` triggers.
    pub error_frame: Bytes,
    /// Replaces the frame at this index when the response is malformed.
    pub malformed: Option<(usize, Bytes)>,
}

/// Where a stream breaks; 0 = never. When a stream has fewer frames than the limit, it breaks
/// right before its clean end instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StreamBreaks {
    pub cut_after: u32,
    pub error_after: u32,
}

impl StreamBreaks {
    pub fn new(config: &SimConfig) -> Self {
        Self {
            cut_after: config.cut_after_chunks,
            error_after: config.stream_error_after_chunks,
        }
    }
}

/// The frame a malformed stream corrupts: the first one after the opening frame, which every
/// client has to parse.
pub(crate) fn malformed_index(frames: usize) -> usize {
    usize::from(frames > 1)
}

/// Cuts a JSON document in half so that no parser accepts it.
pub(crate) fn truncate_json(json: &str) -> String {
    let keep = json.chars().count() / 2;
    json.chars().take(keep).collect()
}

/// A JSON answer, cut in half by a malformed fault.
pub(crate) fn json_answer(body: String, malformed: bool) -> Response {
    let body = if malformed {
        truncate_json(&body)
    } else {
        body
    };
    http::json_body(StatusCode::OK, body)
}

/// An event-stream answer: `script` played after the time to first token, paced per token.
pub(crate) async fn stream_answer(config: &SimConfig, script: StreamScript) -> Response {
    let pacing = Pacing::new(config);
    tokio::time::sleep(pacing.ttft).await;
    http::event_stream(play(script, StreamBreaks::new(config), pacing.per_token))
}

const FLUSH_PAUSE: Duration = Duration::from_millis(10);

/// Plays a script with pacing and breaks. A cut yields an `Err`, which makes the HTTP server
/// abort the connection, so the client sees an incomplete body rather than a clean end.
pub(crate) fn play(
    script: StreamScript,
    breaks: StreamBreaks,
    per_token: Option<Duration>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    async_stream::stream! {
        let StreamScript { frames, trailer, error_frame, malformed } = script;
        let mut first_token_sent = false;
        let positions = frames.into_iter().map(Some).chain(std::iter::once(None));
        for (sent, frame) in positions.enumerate() {
            let sent = u64::try_from(sent).unwrap_or(u64::MAX);
            let reached = |limit: u32| limit > 0 && (frame.is_none() || sent >= u64::from(limit));
            if reached(breaks.cut_after) {
                // The HTTP server drops unflushed output when a body fails: pause first so the
                // frames already sent reach the client, which then sees a truncated body.
                tokio::time::sleep(FLUSH_PAUSE).await;
                yield Err(io::Error::other("simulated connection cut"));
                return;
            }
            if reached(breaks.error_after) {
                yield Ok(error_frame);
                return;
            }
            let Some(frame) = frame else { break };
            if frame.paced {
                if let (true, Some(per_token)) = (first_token_sent, per_token) {
                    tokio::time::sleep(per_token).await;
                }
                first_token_sent = true;
            }
            match &malformed {
                Some((index, bad)) if u64::try_from(*index).ok() == Some(sent) => yield Ok(bad.clone()),
                _ => yield Ok(frame.bytes),
            }
        }
        if let Some(trailer) = trailer {
            yield Ok(trailer);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use rand::SeedableRng;

    use super::*;

    fn script(frames: usize) -> StreamScript {
        StreamScript {
            frames: (0..frames)
                .map(|i| Frame {
                    bytes: Bytes::from(format!("f{i}")),
                    paced: i > 0,
                })
                .collect(),
            trailer: Some(Bytes::from_static(b"end")),
            error_frame: Bytes::from_static(b"err"),
            malformed: None,
        }
    }

    async fn collect(script: StreamScript, breaks: StreamBreaks) -> Vec<Result<String, ()>> {
        play(script, breaks, None)
            .map(|item| {
                item.map(|b| String::from_utf8_lossy(&b).into_owned())
                    .map_err(|_| ())
            })
            .collect()
            .await
    }

    #[test]
    fn decisions_follow_the_seed_and_precedence() {
        let config = SimConfig {
            rate_limit_rate: 0.3,
            error_rate: 0.3,
            hang_rate: 0.3,
            malformed_rate: 0.3,
            ..SimConfig::default()
        };
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..64)
                .map(|_| decide(&mut rng, &config))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let all = run(1);
        for fault in [
            Fault::None,
            Fault::RateLimit,
            Fault::Error,
            Fault::Hang,
            Fault::Malformed,
        ] {
            assert!(all.contains(&fault), "{fault:?} never drawn");
        }
        let always = SimConfig {
            rate_limit_rate: 1.0,
            error_rate: 1.0,
            ..SimConfig::default()
        };
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(decide(&mut rng, &always), Fault::RateLimit);
        let nan = SimConfig {
            error_rate: f64::NAN,
            ..SimConfig::default()
        };
        assert_eq!(decide(&mut rng, &nan), Fault::None);
    }

    #[test]
    fn pacing_adds_ttft_and_output_time() {
        let config = SimConfig {
            ttft_ms: 100,
            tokens_per_s: 10.0,
            ..SimConfig::default()
        };
        assert_eq!(Pacing::new(&config).total(5), Duration::from_millis(600));
        let unlimited = Pacing::new(&SimConfig {
            tokens_per_s: -1.0,
            ..SimConfig::default()
        });
        assert_eq!(unlimited.per_token, None);
        assert_eq!(unlimited.total(u64::MAX), Duration::ZERO);
    }

    #[tokio::test]
    async fn clean_stream_ends_with_trailer() {
        let out = collect(script(3), StreamBreaks::default()).await;
        assert_eq!(out, ["f0", "f1", "f2", "end"].map(|s| Ok(s.to_owned())));
    }

    #[tokio::test]
    async fn breaks_replace_the_rest_of_the_stream() {
        let cut = collect(
            script(3),
            StreamBreaks {
                cut_after: 2,
                error_after: 0,
            },
        )
        .await;
        assert_eq!(cut, [Ok("f0".to_owned()), Ok("f1".to_owned()), Err(())]);
        let error = collect(
            script(3),
            StreamBreaks {
                cut_after: 0,
                error_after: 1,
            },
        )
        .await;
        assert_eq!(error, [Ok("f0".to_owned()), Ok("err".to_owned())]);
        // Longer limits than the stream still prevent the clean end.
        let late = collect(
            script(2),
            StreamBreaks {
                cut_after: 9,
                error_after: 0,
            },
        )
        .await;
        assert_eq!(late.last(), Some(&Err(())));
    }

    #[tokio::test]
    async fn malformed_frame_is_substituted() {
        let mut s = script(3);
        s.malformed = Some((malformed_index(3), Bytes::from_static(b"bad")));
        let out = collect(s, StreamBreaks::default()).await;
        assert_eq!(out[1], Ok("bad".to_owned()));
        assert!(serde_json::from_str::<serde_json::Value>(&truncate_json(r#"{"a":1}"#)).is_err());
    }
}

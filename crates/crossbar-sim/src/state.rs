//! State shared by all requests of one server: script, fault RNG, recordings, counters and
//! the simulated prompt cache.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::behaviour::{PromptCache, Segment};
use crate::faults::{self, Fault};
use crate::{RecordedRequest, SimConfig, SimDialect, SimServer, SimStats};

pub(crate) type App = Arc<Shared>;

pub(crate) struct Shared {
    pub dialect: SimDialect,
    config: RwLock<SimConfig>,
    fault_rng: Mutex<StdRng>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Off for load tests: every recording keeps the whole request and answer for the
    /// server's lifetime, so a long benchmark would grow the simulator without bound.
    recording: AtomicBool,
    stats: Mutex<SimStats>,
    cache: Mutex<PromptCache>,
    sequence: AtomicU64,
    /// The quota window's start and the calls counted in it.
    quota: Mutex<(Option<tokio::time::Instant>, u64)>,
}

/// Where a model call leaves the simulated quota: what the answer's headers report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window ends.
    pub reset_ms: u64,
    /// Whether the call was admitted (else it gets a 429).
    pub admitted: bool,
}

impl Quota {
    /// `Retry-After` seconds for a refused call: the rest of the window, at least 1.
    pub fn retry_after_s(&self) -> u64 {
        self.reset_ms.div_ceil(1000).max(1)
    }
}

/// Locks ignoring poisoning: every critical section here leaves the data consistent, and a
/// simulator must keep answering even if some test thread panicked while holding a lock.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(dialect: SimDialect, config: SimConfig) -> Self {
        Self {
            dialect,
            fault_rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config: RwLock::new(config),
            requests: Mutex::new(Vec::new()),
            recording: AtomicBool::new(true),
            stats: Mutex::new(SimStats::default()),
            cache: Mutex::new(PromptCache::default()),
            sequence: AtomicU64::new(0),
            quota: Mutex::new((None, 0)),
        }
    }

    pub fn config(&self) -> SimConfig {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_config(&self, config: SimConfig) {
        let mut current = self.config.write().unwrap_or_else(PoisonError::into_inner);
        if current.seed != config.seed {
            *lock(&self.fault_rng) = StdRng::seed_from_u64(config.seed);
        }
        *current = config;
    }

    pub fn decide_fault(&self, config: &SimConfig) -> Fault {
        faults::decide(&mut lock(&self.fault_rng), config)
    }

    /// Counts a model call against the quota (`None` without one): admitted while calls are
    /// left in the window, which starts at its first call and lasts `quota_window_ms`.
    pub fn take_quota(&self, config: &SimConfig) -> Option<Quota> {
        if config.quota_requests == 0 {
            return None;
        }
        let now = tokio::time::Instant::now();
        let window = std::time::Duration::from_millis(config.quota_window_ms.max(1));
        let mut quota = lock(&self.quota);
        let start = match quota.0 {
            Some(start) if now < start + window => start,
            _ => {
                *quota = (Some(now), 0);
                now
            }
        };
        let admitted = quota.1 < config.quota_requests;
        if admitted {
            quota.1 += 1;
        }
        let reset = (start + window).saturating_duration_since(now);
        Some(Quota {
            limit: config.quota_requests,
            remaining: config.quota_requests - quota.1,
            reset_ms: u64::try_from(reset.as_millis()).unwrap_or(u64::MAX),
            admitted,
        })
    }

    /// A number unique to this request on this server, for ids that must differ between
    /// identical requests.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a request unless recording is off (then `request` is never built); its response
    /// is added under the returned index.
    pub fn record(&self, request: impl FnOnce() -> RecordedRequest) -> Option<usize> {
        if !self.recording.load(Ordering::Relaxed) {
            return None;
        }
        let mut requests = lock(&self.requests);
        requests.push(request());
        Some(requests.len() - 1)
    }

    /// Appends what the server sent for the request recorded at `index` (none: not recorded).
    pub fn record_response(&self, index: Option<usize>, bytes: &[u8]) {
        let Some(index) = index else { return };
        if let Some(request) = lock(&self.requests).get_mut(index) {
            request
                .response
                .get_or_insert_with(Vec::new)
                .extend_from_slice(bytes);
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub fn stats(&self) -> SimStats {
        *lock(&self.stats)
    }

    pub fn cached_tokens(&self, segments: &[Segment]) -> u64 {
        lock(&self.cache).lookup_and_store(segments)
    }

    /// Counts a request as started; the guard counts it as completed or cancelled.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        let mut stats = lock(&self.stats);
        stats.requests += 1;
        stats.in_flight += 1;
        RequestGuard {
            app: Arc::clone(self),
            finished: false,
        }
    }
}

impl SimServer {
    /// Turns request recording on (the default) or off. Off, [`SimServer::requests`] stays as
    /// it was and the server's memory stays flat however long it runs (`crossbar sim
    /// --no-record`, which the benchmark uses); the counters in [`SimServer::stats`] still count.
    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Relaxed);
    }
}

/// Lives as long as the server works on a request; dropping it unfinished means the client
/// went away (the handler future or the response stream was dropped).
pub(crate) struct RequestGuard {
    app: App,
    finished: bool,
}

impl RequestGuard {
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut stats = lock(&self.app.stats);
        stats.in_flight = stats.in_flight.saturating_sub(1);
        if self.finished {
            stats.completed += 1;
        } else {
            stats.cancelled += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{SimConfig, SimDialect, SimServer, SimStats};

    async fn chat(server: &SimServer, stream: bool) -> String {
        let body = json!({"model": "gpt-4o", "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]});
        let response = reqwest::Client::new()
            .post(format!("{}/chat/completions", server.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    #[tokio::test]
    async fn recording_off_keeps_nothing_but_still_counts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SimServer::start(listener, SimDialect::OpenAi, SimConfig::default())
            .await
            .unwrap();
        server.set_recording(false);
        chat(&server, false).await;
        chat(&server, true).await;
        assert_eq!(server.requests().len(), 0);
        let stats = SimStats {
            requests: 2,
            completed: 2,
            cancelled: 0,
            in_flight: 0,
        };
        assert_eq!(server.stats(), stats);

        server.set_recording(true);
        let answer = chat(&server, true).await;
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, "/v1/chat/completions");
        assert_eq!(requests[0].body.as_ref().unwrap()["stream"], json!(true));
        assert_eq!(requests[0].response.as_deref(), Some(answer.as_bytes()));
    }

    /// A small quota is spent call by call, each answer saying what is left and when it
    /// resets, then refused with 429 until its window ends, in the OpenAI and Anthropic
    /// dialects' own headers.
    #[tokio::test]
    async fn a_quota_counts_down_refuses_and_resets() {
        let config = SimConfig {
            quota_requests: 2,
            quota_window_ms: 300,
            ..SimConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let openai = SimServer::start(listener, SimDialect::OpenAi, config.clone())
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let call = || {
            client
                .post(format!("{}/chat/completions", openai.base_url()))
                .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
        };
        let header =
            |r: &reqwest::Response, name: &str| r.headers()[name].to_str().unwrap().to_owned();
        for left in ["1", "0"] {
            let r = call().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "x-ratelimit-limit-requests"), "2");
            assert_eq!(header(&r, "x-ratelimit-remaining-requests"), left);
            assert!(header(&r, "x-ratelimit-reset-requests").ends_with("ms"));
        }
        let refused = call().await.unwrap();
        assert_eq!(refused.status(), 429);
        assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
        assert_eq!(header(&refused, "retry-after"), "1");
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        let again = call().await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(header(&again, "x-ratelimit-remaining-requests"), "1");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let anthropic = SimServer::start(listener, SimDialect::Anthropic, config)
            .await
            .unwrap();
        let call = || {
            client
                .post(format!("{}/v1/messages", anthropic.base_url()))
                .header("anthropic-version", "2023-06-01")
                .header("x-api-key", "sk-ant-test")
                .json(&json!({"model": "claude", "max_tokens": 10,
                    "messages": [{"role": "user", "content": "hi"}]}))
                .send()
        };
        let first = call().await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(header(&first, "anthropic-ratelimit-requests-limit"), "2");
        assert_eq!(
            header(&first, "anthropic-ratelimit-requests-remaining"),
            "1"
        );
        assert_eq!(header(&first, "anthropic-ratelimit-tokens-limit"), "800");
        let reset = header(&first, "anthropic-ratelimit-requests-reset");
        assert!(reset.starts_with("20") && reset.ends_with('Z'), "{reset}");
        assert_eq!(call().await.unwrap().status(), 200);
        let refused = call().await.unwrap();
        assert_eq!(refused.status(), 429);
        assert_eq!(
            header(&refused, "anthropic-ratelimit-requests-remaining"),
            "0"
        );
    }
}

//! State shared by all requests of one server: script, fault RNG, recordings, counters and
//! the simulated prompt cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::behaviour::{PromptCache, Segment};
use crate::faults::{self, Fault};
use crate::{RecordedRequest, SimConfig, SimDialect, SimStats};

pub(crate) type App = Arc<Shared>;

pub(crate) struct Shared {
    pub dialect: SimDialect,
    config: RwLock<SimConfig>,
    fault_rng: Mutex<StdRng>,
    requests: Mutex<Vec<RecordedRequest>>,
    stats: Mutex<SimStats>,
    cache: Mutex<PromptCache>,
    sequence: AtomicU64,
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
            stats: Mutex::new(SimStats::default()),
            cache: Mutex::new(PromptCache::default()),
            sequence: AtomicU64::new(0),
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

    /// A number unique to this request on this server, for ids that must differ between
    /// identical requests.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a request; its response is added under the returned index.
    pub fn record(&self, request: RecordedRequest) -> usize {
        let mut requests = lock(&self.requests);
        requests.push(request);
        requests.len() - 1
    }

    /// Appends what the server sent for the request recorded at `index`.
    pub fn record_response(&self, index: usize, bytes: &[u8]) {
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

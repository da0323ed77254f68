//! Getting records to the store without making requests wait: a bounded queue drained in
//! batches by one task, and retention that deletes old records a small batch at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use futures::future::BoxFuture;

use crate::model::UsageRecord;
use crate::{ResponseStore, Result, Store, now_ms};

/// Queue and batch sizes.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// Records waiting beyond this many are refused (counted and logged, not blocking).
    pub capacity: usize,
    /// Records written per transaction at most.
    pub batch: usize,
    /// How long a batch waits for more records before it is written: one transaction (and
    /// one wake-up of the database's thread) per interval rather than per request.
    pub linger: Duration,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch: 256,
            linger: Duration::from_millis(50),
        }
    }
}

/// The drain task and the signal that stops it.
type Drain = (oneshot::Sender<()>, JoinHandle<()>);

/// The sending side of the record queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct UsageWriter {
    tx: mpsc::Sender<UsageRecord>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
    task: Arc<Mutex<Option<Drain>>>,
}

impl UsageWriter {
    /// Starts the task that drains the queue into `store`.
    pub fn spawn(store: Arc<dyn Store>, settings: WriterSettings) -> Self {
        let capacity = settings.capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(drain(
            store,
            rx,
            stop_rx,
            settings.batch.max(1),
            settings.linger,
        ));
        // Present from the start, so a dashboard can tell "no drops" from "no data".
        metrics::counter!("crossbar_store_dropped_total").increment(0);
        metrics::gauge!("crossbar_store_queue_depth").set(0.0);
        Self {
            tx,
            capacity,
            dropped: Arc::new(AtomicU64::new(0)),
            task: Arc::new(Mutex::new(Some((stop_tx, task)))),
        }
    }

    /// Queues a record without waiting. A full (or closed) queue refuses it: the refusal is
    /// counted in `crossbar_store_dropped_total` and logged, and `false` returned.
    pub fn submit(&self, record: UsageRecord) -> bool {
        match self.tx.try_send(record) {
            Ok(()) => {
                metrics::gauge!("crossbar_store_queue_depth").set(self.depth() as f64);
                true
            }
            Err(error) => {
                let record = match error {
                    mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
                };
                let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!("crossbar_store_dropped_total").increment(1);
                tracing::warn!(
                    request_id = %record.request_id,
                    dropped_total = total,
                    "usage record dropped: the store queue is full"
                );
                false
            }
        }
    }

    /// Records waiting to be written.
    pub fn depth(&self) -> usize {
        self.capacity.saturating_sub(self.tx.capacity())
    }

    /// Records refused since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything queued so far and stops the task; later submissions are refused.
    /// Called after the server's drain, so every finished request's record is written.
    pub async fn flush_and_stop(&self) {
        let Some((stop, task)) = self.task.lock().await.take() else {
            return;
        };
        let _ = stop.send(());
        if let Err(error) = task.await {
            tracing::error!("store writer task failed: {error}");
        }
    }
}

async fn drain(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<UsageRecord>,
    mut stop: oneshot::Receiver<()>,
    batch: usize,
    linger: Duration,
) {
    let mut buffer = Vec::with_capacity(batch);
    loop {
        tokio::select! {
            biased;
            received = rx.recv_many(&mut buffer, batch) => {
                if received == 0 {
                    break;
                }
                let deadline = tokio::time::sleep(linger);
                tokio::pin!(deadline);
                while buffer.len() < batch {
                    let room = batch - buffer.len();
                    tokio::select! {
                        biased;
                        more = rx.recv_many(&mut buffer, room) => if more == 0 { break },
                        () = &mut deadline => break,
                    }
                }
                write(&*store, &mut buffer).await;
            }
            _ = &mut stop => break,
        }
    }
    // Stopping: refuse new records, then write what is already queued.
    rx.close();
    while rx.recv_many(&mut buffer, batch).await > 0 {
        write(&*store, &mut buffer).await;
    }
    metrics::gauge!("crossbar_store_queue_depth").set(0.0);
}

/// Writes one batch, retrying once: a record that cannot be written is logged, never lost
/// silently.
async fn write(store: &dyn Store, buffer: &mut Vec<UsageRecord>) {
    let mut result = store.insert_usage(buffer).await;
    if result.is_err() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = store.insert_usage(buffer).await;
    }
    match result {
        Ok(()) => metrics::counter!("crossbar_store_written_total").increment(buffer.len() as u64),
        Err(error) => {
            metrics::counter!("crossbar_store_dropped_total").increment(buffer.len() as u64);
            tracing::error!(
                records = buffer.len(),
                "writing usage records failed: {error}"
            );
        }
    }
    buffer.clear();
}

/// One kind of record retention deletes once it is older than `max_age`.
pub struct RetentionJob {
    /// The `kind` label of `crossbar_store_retention_deleted_total`, and the name in logs.
    kind: &'static str,
    max_age: Duration,
    /// Deletes at most `limit` records older than a cutoff (ms); returns how many went.
    delete: Box<dyn Fn(i64, u32) -> BoxFuture<'static, Result<u64>> + Send + Sync>,
}

impl RetentionJob {
    /// Usage records (`kind="usage"`).
    pub fn usage(store: Arc<dyn Store>, max_age: Duration) -> Self {
        Self {
            kind: "usage",
            max_age,
            delete: Box::new(move |before, limit| {
                let store = Arc::clone(&store);
                Box::pin(async move { store.delete_usage_before(before, limit).await })
            }),
        }
    }

    /// Stored Responses API answers (`kind="responses"`).
    pub fn responses(store: Arc<dyn ResponseStore>, max_age: Duration) -> Self {
        Self {
            kind: "responses",
            max_age,
            delete: Box::new(move |before, limit| {
                let store = Arc::clone(&store);
                Box::pin(async move { store.delete_responses_before(before, limit).await })
            }),
        }
    }

    /// Deletes everything past its age, `batch` rows per statement with a pause between
    /// statements so request-path writes get in.
    async fn run(&self, batch: u32) {
        let age_ms = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(age_ms);
        loop {
            match (self.delete)(cutoff, batch).await {
                Ok(n) => {
                    if n > 0 {
                        metrics::counter!("crossbar_store_retention_deleted_total", "kind" => self.kind)
                            .increment(n);
                    }
                    if n < u64::from(batch) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => {
                    tracing::warn!(kind = self.kind, "retention delete failed: {error}");
                    break;
                }
            }
        }
    }
}

/// Runs each job (records older than its age deleted, `batch` rows per statement), checking
/// again every `interval`. Runs until the returned task is aborted.
pub fn spawn_retention(jobs: Vec<RetentionJob>, batch: u32, interval: Duration) -> JoinHandle<()> {
    let batch = batch.max(1);
    tokio::spawn(async move {
        loop {
            for job in &jobs {
                job.run(batch).await;
            }
            tokio::time::sleep(interval).await;
        }
    })
}

//! Getting records to the store without making requests wait, and without losing one: a
//! bounded queue drained in batches by one task; what the queue cannot take (full under load,
//! or closed at shutdown) and what the store refuses (down) goes to a spool file on disk, one
//! JSON record a line, which the task writes to the store once it takes records again — and
//! at the next start, if the process died first. Retention deletes old records a small batch
//! at a time.

use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use futures::future::BoxFuture;

use crate::model::UsageRecord;
use crate::{ResponseStore, Result, Store, now_ms};

/// Queue and batch sizes.
#[derive(Clone, Debug)]
pub struct WriterSettings {
    /// Records waiting beyond this many are refused (counted and logged, not blocking).
    pub capacity: usize,
    /// Records written per transaction at most.
    pub batch: usize,
    /// How long a batch waits for more records before it is written: one transaction (and
    /// one wake-up of the database's thread) per interval rather than per request.
    pub linger: Duration,
    /// The spool file; `None` keeps the old behaviour of counting and logging what cannot be
    /// queued or written (only for stores that cannot outlive the process anyway).
    pub spool: Option<PathBuf>,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch: 256,
            linger: Duration::from_millis(50),
            spool: None,
        }
    }
}

/// Records on disk, one JSON line each, waiting for the store.
///
/// Several processes may share a directory (replicas started in one working directory): each
/// appends to its own file, `<path>.<owner>`, and holds an exclusive lock on `<path>.<owner>.lock`
/// while it lives. A process claims another's files only when it can take that lock, that is
/// when their owner is gone; what it claims it renames first, so two claimants never both read
/// a file and no record is appended to a file that is being written back.
#[derive(Debug)]
struct Spool {
    /// `<path>`: the stem every spool file name starts with.
    path: PathBuf,
    /// This process's part of the names.
    owner: String,
    /// Serializes appends and claims (a line is written whole), and holds the owner lock once
    /// something was spooled.
    file: std::sync::Mutex<Option<std::fs::File>>,
    /// Records appended and not yet written to the store.
    pending: AtomicU64,
}

impl Spool {
    fn new(path: PathBuf) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            path,
            owner: format!("{}-{started:08x}", std::process::id()),
            file: std::sync::Mutex::new(None),
            pending: AtomicU64::new(0),
        }
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    fn stem(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// This process's spool file.
    fn own_file(&self) -> PathBuf {
        self.dir().join(format!("{}.{}", self.stem(), self.owner))
    }

    fn lock_file(&self, owner: &str) -> PathBuf {
        self.dir().join(format!("{}.{owner}.lock", self.stem()))
    }

    /// Takes this process's owner lock, once, before its first record is spooled.
    fn hold_lock(&self, held: &mut Option<std::fs::File>) {
        if held.is_some() {
            return;
        }
        let path = self.lock_file(&self.owner);
        match std::fs::File::create(&path).and_then(|file| file.lock().map(|()| file)) {
            Ok(file) => *held = Some(file),
            // Without a lock another process may take these files for a dead one's and
            // write them back early: a record then reaches the store once all the same.
            Err(error) => tracing::warn!(path = %path.display(), "spool lock not taken: {error}"),
        }
    }

    /// Whether `owner`'s files may be taken: its lock file is gone, or free (its process is).
    fn owner_gone(&self, owner: &str) -> bool {
        match std::fs::File::open(self.lock_file(owner)) {
            Err(_) => true,
            Ok(file) => file.try_lock().is_ok(),
        }
    }

    /// Releases the owner lock (the writer stopped); the lock file goes too when nothing of
    /// this process's is left on disk.
    fn release(&self) {
        let mut held = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.take().is_none() {
            return;
        }
        let prefix = format!("{}.{}", self.stem(), self.owner);
        let lock = format!("{prefix}.lock");
        let left = std::fs::read_dir(self.dir()).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&prefix) && name != lock
            })
        });
        if !left {
            let _ = std::fs::remove_file(self.lock_file(&self.owner));
        }
    }

    /// Appends records; `false` if the disk refused them too (then they are logged).
    /// `durable` waits for the disk (the writer task's batches; not a request's thread).
    fn append(&self, records: &[UsageRecord], durable: bool) -> bool {
        let mut text = String::new();
        for record in records {
            match serde_json::to_string(record) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                Err(error) => tracing::error!("usage record not serializable: {error}"),
            }
        }
        let mut held = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.hold_lock(&mut held);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.own_file())
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                if durable {
                    file.sync_data()?;
                }
                file.flush()
            });
        match written {
            Ok(()) => {
                self.pending
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                metrics::counter!("crossbar_store_spooled_total").increment(records.len() as u64);
                true
            }
            Err(error) => {
                tracing::error!(
                    records = records.len(),
                    path = %self.path.display(),
                    "spooling usage records failed: {error}"
                );
                false
            }
        }
    }

    /// Takes this process's spool, and the files of processes that are gone, for writing to
    /// the store: renamed first, so appends go on into a fresh file meanwhile and no other
    /// process claims them.
    fn claim(&self) -> Vec<PathBuf> {
        let _guard = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (dir, stem) = (self.dir().to_owned(), self.stem());
        let mut claimed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return claimed;
        };
        let mut gone = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `<stem>` alone is an older version's spool; `<stem>.<owner>[.<n>.replay]` ours.
            let owner = if name == stem {
                String::new()
            } else {
                match name.strip_prefix(&format!("{stem}.")) {
                    Some(rest) if !rest.ends_with(".lock") => {
                        rest.split('.').next().unwrap_or_default().to_owned()
                    }
                    _ => continue,
                }
            };
            if owner == self.owner && name.ends_with(".replay") {
                // Ours from an earlier try: already claimed.
                claimed.push(entry.path());
                continue;
            }
            if owner != self.owner && !owner.is_empty() && !self.owner_gone(&owner) {
                continue;
            }
            if owner != self.owner && !owner.is_empty() {
                gone.push(owner);
            }
            let target = dir.join(format!(
                "{stem}.{}.{}.{}.replay",
                self.owner,
                crate::now_ms(),
                claimed.len()
            ));
            if std::fs::rename(entry.path(), &target).is_ok() {
                claimed.push(target);
            }
        }
        for owner in gone {
            let _ = std::fs::remove_file(self.lock_file(&owner));
        }
        self.pending.store(0, Ordering::Relaxed);
        claimed
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
    spool: Option<Arc<Spool>>,
    task: Arc<Mutex<Option<Drain>>>,
}

impl UsageWriter {
    /// Starts the task that drains the queue into `store`.
    pub fn spawn(store: Arc<dyn Store>, settings: WriterSettings) -> Self {
        let capacity = settings.capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let spool = settings.spool.map(|path| Arc::new(Spool::new(path)));
        let task = tokio::spawn(drain(
            store,
            rx,
            stop_rx,
            settings.batch.max(1),
            settings.linger,
            spool.clone(),
        ));
        // Present from the start, so a dashboard can tell "no drops" from "no data".
        metrics::counter!("crossbar_store_dropped_total").increment(0);
        metrics::gauge!("crossbar_store_queue_depth").set(0.0);
        Self {
            tx,
            capacity,
            dropped: Arc::new(AtomicU64::new(0)),
            spool,
            task: Arc::new(Mutex::new(Some((stop_tx, task)))),
        }
    }

    /// Queues a record without waiting. What a full (or closed) queue cannot take goes to the
    /// spool; only without one (or when the disk refuses it too) is it counted in
    /// `crossbar_store_dropped_total`, logged, and `false` returned.
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
                if let Some(spool) = &self.spool
                    && spool.append(std::slice::from_ref(&record), false)
                {
                    return true;
                }
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

    /// Records in the spool, waiting for the store.
    pub fn spooled(&self) -> u64 {
        self.spool
            .as_ref()
            .map_or(0, |spool| spool.pending.load(Ordering::Relaxed))
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
        if let Some(spool) = &self.spool {
            spool.release();
        }
    }
}

async fn drain(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<UsageRecord>,
    mut stop: oneshot::Receiver<()>,
    batch: usize,
    linger: Duration,
    spool: Option<Arc<Spool>>,
) {
    let mut buffer = Vec::with_capacity(batch);
    // Whatever an earlier process left behind goes first.
    let mut store_down = !replay(&*store, spool.as_deref(), batch).await;
    let mut replayed = tokio::time::Instant::now();
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
                let written = write(&*store, &mut buffer, spool.as_deref(), store_down).await;
                store_down = !written && spool.is_some();
                // The store takes records and the queue is drained: catch up on the spool when
                // this process spooled something, and on a gone process's files now and then
                // (reading the directory after every batch was a syscall-heavy tenth of a
                // lone request's write).
                let due = spool.as_ref().is_some_and(|s| s.pending.load(Ordering::Relaxed) > 0)
                    || replayed.elapsed() >= SPOOL_RETRY;
                if written && rx.is_empty() && due {
                    store_down = !replay(&*store, spool.as_deref(), batch).await;
                    replayed = tokio::time::Instant::now();
                }
            }
            () = tokio::time::sleep(SPOOL_RETRY), if spool.as_ref().is_some_and(|s| s.pending.load(Ordering::Relaxed) > 0) => {
                store_down = !replay(&*store, spool.as_deref(), batch).await;
            }
            _ = &mut stop => break,
        }
    }
    // Stopping: refuse new records (they go to the spool), then write what is already queued
    // and what waits in the spool; what the store still refuses stays there for the next start.
    rx.close();
    while rx.recv_many(&mut buffer, batch).await > 0 {
        store_down =
            !write(&*store, &mut buffer, spool.as_deref(), store_down).await && spool.is_some();
    }
    replay(&*store, spool.as_deref(), batch).await;
    metrics::gauge!("crossbar_store_queue_depth").set(0.0);
}

/// How often a spool waiting on a store that refused records is tried again.
const SPOOL_RETRY: Duration = Duration::from_secs(2);

/// Writes the spool's records to the store, a batch at a time; a file the store refuses stays
/// (under its claimed name) for the next try. Returns whether the store took everything.
async fn replay(store: &dyn Store, spool: Option<&Spool>, batch: usize) -> bool {
    let Some(spool) = spool else {
        return true;
    };
    for path in spool.claim() {
        let records = match std::fs::File::open(&path) {
            Ok(file) => std::io::BufReader::new(file)
                .lines()
                .map_while(std::result::Result::ok)
                .filter(|line| !line.trim().is_empty())
                .filter_map(|line| match serde_json::from_str::<UsageRecord>(&line) {
                    Ok(record) => Some(record),
                    Err(error) => {
                        tracing::error!(path = %path.display(), "unreadable spooled record: {error}");
                        None
                    }
                })
                .collect::<Vec<_>>(),
            Err(error) => {
                tracing::error!(path = %path.display(), "reading the spool failed: {error}");
                continue;
            }
        };
        let mut all_written = true;
        for chunk in records.chunks(batch) {
            if insert(store, chunk).await.is_err() {
                all_written = false;
                break;
            }
            metrics::counter!("crossbar_store_written_total").increment(chunk.len() as u64);
        }
        if all_written {
            let _ = std::fs::remove_file(&path);
            tracing::info!(
                records = records.len(),
                "spooled usage records written to the store"
            );
        } else {
            // Back in line with what came since: the same records, appended again, and this
            // claimed copy removed, so nothing is written twice by a later claim.
            let unwritten: Vec<UsageRecord> = records;
            if spool.append(&unwritten, true) {
                let _ = std::fs::remove_file(&path);
            }
            return false;
        }
    }
    true
}

/// How long one write may take before its records go to the spool instead: a store that is
/// slow or unreachable (a connection attempt waits far longer) must not hold records in
/// memory, where a killed process would lose them.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// One insert, bounded by [`STORE_TIMEOUT`]. A write that timed out may still have committed;
/// its records are spooled too and written again, which the store ignores (one record per
/// request id).
async fn insert(store: &dyn Store, records: &[UsageRecord]) -> std::result::Result<(), String> {
    match tokio::time::timeout(STORE_TIMEOUT, store.insert_usage(records)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", STORE_TIMEOUT.as_secs())),
    }
}

/// Writes one batch, retrying once; a batch the store refuses goes to the spool (or, without
/// one, is counted and logged). With `store_down` (the last write failed and the spool has
/// not been written back since) the batch goes straight to the spool: the spool's retry finds
/// out when the store is back. Returns whether the store took it.
async fn write(
    store: &dyn Store,
    buffer: &mut Vec<UsageRecord>,
    spool: Option<&Spool>,
    store_down: bool,
) -> bool {
    let mut result = if store_down && spool.is_some() {
        Err("the store is down".to_owned())
    } else {
        insert(store, buffer).await
    };
    if result.is_err() && !store_down {
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = insert(store, buffer).await;
    }
    let written = match result {
        Ok(()) => {
            metrics::counter!("crossbar_store_written_total").increment(buffer.len() as u64);
            true
        }
        Err(error) => {
            tracing::warn!(
                records = buffer.len(),
                "writing usage records failed: {error}"
            );
            if !spool.is_some_and(|spool| spool.append(buffer, true)) {
                metrics::counter!("crossbar_store_dropped_total").increment(buffer.len() as u64);
                tracing::error!(records = buffer.len(), "usage records lost");
            }
            false
        }
    };
    buffer.clear();
    written
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

    /// Audit log entries (`kind="audit"`), kept by their own setting.
    pub fn audit(store: Arc<dyn crate::AuditStore>, max_age: Duration) -> Self {
        Self {
            kind: "audit",
            max_age,
            delete: Box::new(move |before, limit| {
                let store = Arc::clone(&store);
                Box::pin(async move { store.delete_audit_before(before, limit).await })
            }),
        }
    }

    /// Payload logs (`kind="payloads"`), kept by their own setting.
    pub fn payloads(store: Arc<dyn crate::PayloadStore>, max_age: Duration) -> Self {
        Self {
            kind: "payloads",
            max_age,
            delete: Box::new(move |before, limit| {
                let store = Arc::clone(&store);
                Box::pin(async move { store.delete_payloads_before(before, limit).await })
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

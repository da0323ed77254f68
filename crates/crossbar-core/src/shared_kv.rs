//! What the gateway's replicas share besides limits and health: small values under keys, with a
//! time to live (signed reasoning, prompt-cache affinity). Implemented on Redis by the server;
//! absent, each replica keeps its own.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;

/// A key-value store the replicas share. Keys are given without the store's own prefix.
pub trait SharedKv: Send + Sync {
    /// The values under `keys`, in order, each `None` when there is none; all `None` when the
    /// store cannot be reached (which the store logs). One round trip for them all.
    fn load_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Vec<Option<String>>>;
    /// The value under `key`.
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            self.load_many(&[key.to_owned()])
                .await
                .into_iter()
                .next()
                .flatten()
        })
    }
    /// Keeps `value` under `key` for `ttl`; a failure is the store's to log.
    fn save<'a>(&'a self, key: &'a str, value: String, ttl: Duration) -> BoxFuture<'a, ()>;
}

/// Where a gateway's shared store goes once it is connected; clones share the slot.
#[derive(Clone, Default)]
pub struct SharedSlot(Arc<RwLock<Option<Arc<dyn SharedKv>>>>);

impl std::fmt::Debug for SharedSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedSlot")
            .field(&self.get().is_some())
            .finish()
    }
}

impl SharedSlot {
    pub fn attach(&self, shared: Arc<dyn SharedKv>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(shared);
    }

    pub fn get(&self) -> Option<Arc<dyn SharedKv>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The length of `value` as compact JSON, without building the text: what the process caches
/// in front of the shared store (reasoning memory, response cache) weigh their entries by.
pub fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // A `Value` always serializes; were it not to, the entry counts as too large.
    serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0)
}

//! Remembers signed reasoning by tool-call id, so clients whose API has no place for it (OpenAI
//! Chat Completions) can still continue a thinking + tools conversation with a provider that
//! insists on getting its thinking blocks back (Anthropic: "a final assistant message must start
//! with a thinking block"). Entries belong to a scope (the virtual key that created them), so one
//! tenant can never replay another's reasoning.
//!
//! Two tiers: a process-wide memory, bounded in entries, bytes and age, and in front of it, when
//! the gateway has `[redis]`, a [`SharedKv`] store that every replica reads and writes, so
//! the next turn of a conversation may reach any replica. An entry is written to both before the
//! answer that produced it completes; a miss in memory asks the shared store; a shared store that
//! fails is skipped (logged), leaving the process memory. A miss everywhere just means the
//! provider sees the history as the client sent it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::chat::{ChatRequest, Family, Message, Reasoning, Role, StreamEvent};
use crate::shared_kv::{SharedKv, SharedSlot};

const CAPACITY: usize = 10_000;
/// Bytes kept in all (reasoning as JSON, plus ids). Signed thinking can run to megabytes a
/// turn, so a count of entries alone does not bound memory; the oldest entries go first.
const BUDGET_BYTES: usize = 64 * 1024 * 1024;
const MAX_AGE: Duration = Duration::from_secs(3600);
/// The largest entry the shared store takes; larger ones stay in the process that saw them.
pub const MAX_SHARED_BYTES: usize = 4 * 1024 * 1024;
/// What an entry costs besides its JSON: its key in the queue, the map's slot, a block's header.
const ENTRY_OVERHEAD: usize = 64;

struct Entry {
    at: Instant,
    reasoning: Vec<Reasoning>,
    bytes: usize,
}

struct Memory {
    entries: HashMap<String, Entry>,
    /// Ids, oldest first.
    order: VecDeque<String>,
    /// Sum of the entries' `bytes`.
    bytes: usize,
    capacity: usize,
    budget: usize,
}

impl Default for Memory {
    fn default() -> Self {
        Self::with_limits(CAPACITY, BUDGET_BYTES)
    }
}

impl Memory {
    fn with_limits(capacity: usize, budget: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            capacity,
            budget,
        }
    }

    /// Keeps `reasoning` (costing `bytes`) under `id`, then evicts the oldest entries while
    /// over the count or the byte budget, and expired ones at the front. An entry larger than
    /// the whole budget is refused: it would evict everything and still not fit.
    fn insert(&mut self, id: &str, reasoning: Vec<Reasoning>, bytes: usize, now: Instant) {
        if bytes > self.budget {
            return;
        }
        let entry = Entry {
            at: now,
            reasoning,
            bytes,
        };
        match self.entries.insert(id.to_owned(), entry) {
            Some(old) => self.bytes -= old.bytes,
            None => self.order.push_back(id.to_owned()),
        }
        self.bytes += bytes;
        while self.order.len() > self.capacity
            || self.bytes > self.budget
            || self.front_expired(now)
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.bytes -= entry.bytes;
            }
        }
    }

    fn front_expired(&self, now: Instant) -> bool {
        self.order
            .front()
            .and_then(|id| self.entries.get(id))
            .is_some_and(|entry| now.saturating_duration_since(entry.at) >= MAX_AGE)
    }
}

static MEMORY: LazyLock<Mutex<Memory>> = LazyLock::new(Mutex::default);

fn with_memory<T>(f: impl FnOnce(&mut Memory) -> T) -> T {
    f(&mut MEMORY.lock().unwrap_or_else(PoisonError::into_inner))
}

/// What an entry counts against the byte budget: its id, each block's JSON and overhead.
fn entry_bytes(id: &str, reasoning: &[Reasoning]) -> usize {
    reasoning
        .iter()
        .fold(id.len() + ENTRY_OVERHEAD, |sum, block| {
            sum.saturating_add(crate::shared_kv::json_len(&block.data))
                .saturating_add(ENTRY_OVERHEAD)
        })
}

/// The memory's key of tool call `id` in `scope` (a unit separator cannot occur in either).
fn scoped(scope: &str, id: &str) -> String {
    format!("{scope}\u{1f}{id}")
}

/// Keeps the reasoning that produced the tool call `id`, for `scope`, in this process.
fn remember(scope: &str, id: &str, reasoning: Vec<Reasoning>) {
    if id.is_empty() || reasoning.is_empty() {
        return;
    }
    let key = scoped(scope, id);
    let bytes = entry_bytes(&key, &reasoning);
    with_memory(|memory| memory.insert(&key, reasoning, bytes, Instant::now()));
}

/// Assistant turns that carry tool calls but no reasoning: what a restore looks up.
fn missing(message: &Message) -> bool {
    message.role == Role::Assistant
        && message.reasoning.is_empty()
        && !message.tool_calls.is_empty()
}

/// Gives back reasoning this process remembers to assistant turns that arrive without theirs.
fn restore(request: &ChatRequest) -> Option<ChatRequest> {
    if !request.messages.iter().any(missing) {
        return None;
    }
    let scope = request.scope.as_deref().unwrap_or_default();
    let mut restored = request.clone();
    let mut changed = false;
    with_memory(|memory| {
        for message in restored.messages.iter_mut().filter(|m| missing(m)) {
            let Some(id) = message.tool_calls.first().map(|c| scoped(scope, &c.id)) else {
                continue;
            };
            if let Some(entry) = memory.entries.get(&id)
                && entry.at.elapsed() < MAX_AGE
            {
                message.reasoning = entry.reasoning.clone();
                changed = true;
            }
        }
    });
    changed.then_some(restored)
}

/// The shared store's key of tool call `id` in `scope`. The scope is a Redis Cluster hash tag
/// (keyless callers share `{_}`), so one conversation's lookups are one slot and one `MGET`.
fn shared_key(scope: &str, id: &str) -> String {
    let tag = if scope.is_empty() { "_" } else { scope };
    format!("reasoning:{{{tag}}}:{id}")
}

/// The reasoning memory of one gateway: the process memory, behind the replicas' shared store
/// (values are the JSON of a `Vec<Reasoning>` under `reasoning:{scope}:{tool call id}`) once one
/// is attached. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Tiers(SharedSlot);

impl Tiers {
    /// The memory behind the store `slot` holds, once attached.
    pub fn new(slot: SharedSlot) -> Self {
        Self(slot)
    }

    fn shared(&self) -> Option<Arc<dyn SharedKv>> {
        self.0.get()
    }

    /// Keeps `reasoning` for tool call `id` in this process and in the shared store.
    pub async fn remember(&self, scope: &str, id: &str, reasoning: Vec<Reasoning>) {
        if id.is_empty() || reasoning.is_empty() {
            return;
        }
        if let Some(shared) = self.shared()
            && let Ok(value) = serde_json::to_string(&reasoning)
            && value.len() <= MAX_SHARED_BYTES
        {
            shared.save(&shared_key(scope, id), value, MAX_AGE).await;
        }
        remember(scope, id, reasoning);
    }

    /// Keeps what an answer's assistant message needs to be replayed.
    pub async fn remember_message(&self, scope: &str, message: &Message) {
        if let Some(call) = message.tool_calls.first() {
            self.remember(scope, &call.id, message.reasoning.clone())
                .await;
        }
    }

    /// Gives back remembered reasoning to assistant turns that arrive without theirs: from this
    /// process, else from the shared store (and keeps it here for the turns after).
    pub async fn restore(&self, request: &ChatRequest) -> Option<ChatRequest> {
        if let Some(shared) = self.shared() {
            let scope = request.scope.as_deref().unwrap_or_default();
            let unknown: Vec<String> = request
                .messages
                .iter()
                .filter(|m| missing(m))
                .filter_map(|m| m.tool_calls.first().map(|c| c.id.clone()))
                .filter(|id| with_memory(|memory| !memory.entries.contains_key(&scoped(scope, id))))
                .collect();
            if !unknown.is_empty() {
                // One round trip for every turn this replica has not seen, not one per turn.
                let keys: Vec<String> = unknown.iter().map(|id| shared_key(scope, id)).collect();
                let values = shared.load_many(&keys).await;
                for (id, value) in unknown.iter().zip(values) {
                    let Some(value) = value else {
                        continue;
                    };
                    match serde_json::from_str::<Vec<Reasoning>>(&value) {
                        Ok(reasoning) => remember(scope, id, reasoning),
                        Err(e) => tracing::warn!("unreadable shared reasoning for {id}: {e}"),
                    }
                }
            }
        }
        restore(request)
    }
}

/// Assembles streamed reasoning deltas into replayable blocks and remembers them against the
/// answer's first tool call. Gives up on (and frees) reasoning larger than the memory's whole
/// budget, which could not be kept anyway.
#[derive(Debug, Default)]
pub struct StreamCollector {
    blocks: Vec<Reasoning>,
    thinking: String,
    first_call: Option<String>,
    /// Bytes collected so far, counted as `entry_bytes` would.
    bytes: usize,
    overflowed: bool,
}

impl StreamCollector {
    pub fn observe(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::ReasoningDelta(reasoning) if !self.overflowed => {
                self.collect(reasoning);
                if self.bytes > BUDGET_BYTES {
                    self.overflowed = true;
                    self.blocks = Vec::new();
                    self.thinking = String::new();
                }
            }
            StreamEvent::ToolCallStart { id, .. } if self.first_call.is_none() => {
                self.first_call = Some(id.clone())
            }
            _ => {}
        }
    }

    fn collect(&mut self, reasoning: &Reasoning) {
        let Reasoning {
            family: Family::Anthropic,
            data,
        } = reasoning
        else {
            // Other families carry whole blocks per event.
            self.push(reasoning.clone());
            return;
        };
        if let Some(text) = data.get("thinking").and_then(Value::as_str) {
            self.thinking.push_str(text);
            self.bytes = self.bytes.saturating_add(text.len());
        } else if let Some(signature) = data.get("signature").and_then(Value::as_str) {
            let thinking = std::mem::take(&mut self.thinking);
            // The thinking text was counted as it came.
            self.bytes = self.bytes.saturating_sub(thinking.len());
            self.push(Reasoning {
                family: Family::Anthropic,
                data: json!({"type": "thinking", "thinking": thinking, "signature": signature}),
            });
        } else if data.get("type").and_then(Value::as_str) == Some("redacted_thinking") {
            self.push(reasoning.clone());
        }
    }

    fn push(&mut self, block: Reasoning) {
        self.bytes = self
            .bytes
            .saturating_add(crate::shared_kv::json_len(&block.data))
            .saturating_add(ENTRY_OVERHEAD);
        self.blocks.push(block);
    }

    /// The tool call the answer's reasoning goes with, and that reasoning, to remember.
    pub fn finish(self) -> Option<(String, Vec<Reasoning>)> {
        match self.first_call {
            Some(id) if !self.overflowed => Some((id, self.blocks)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolCall;

    #[test]
    fn streamed_thinking_is_assembled_and_restored_by_call_id() {
        let mut collector = StreamCollector::default();
        let thinking = |data: Value| {
            StreamEvent::ReasoningDelta(Reasoning {
                family: Family::Anthropic,
                data,
            })
        };
        for event in [
            thinking(json!({"thinking": "Need "})),
            thinking(json!({"thinking": "tools."})),
            thinking(json!({"signature": "sig-1"})),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_memory_test".into(),
                name: "f".into(),
            },
        ] {
            collector.observe(&event);
        }
        let (id, blocks) = collector.finish().unwrap();
        remember("", &id, blocks);
        let mut assistant = Message::new(Role::Assistant, Vec::new());
        assistant.tool_calls.push(ToolCall {
            id: "toolu_memory_test".into(),
            name: "f".into(),
            arguments: "{}".into(),
        });
        let request = ChatRequest::new("m", vec![Message::text(Role::User, "x"), assistant]);
        let restored = restore(&request).unwrap();
        assert_eq!(
            restored.messages[1].reasoning[0].data,
            json!({"type": "thinking", "thinking": "Need tools.", "signature": "sig-1"})
        );
        let mut unknown = request.clone();
        unknown.messages[1].tool_calls[0].id = "toolu_never_seen".into();
        assert!(restore(&unknown).is_none());
        // Another key's conversation never gets it.
        let mut other = request.clone();
        other.scope = Some("key_other".into());
        assert!(restore(&other).is_none());
    }

    use futures::future::BoxFuture;

    /// A shared store in a map, counting its calls.
    #[derive(Default)]
    struct FakeShared(
        Mutex<HashMap<String, String>>,
        std::sync::atomic::AtomicUsize,
    );

    impl SharedKv for FakeShared {
        fn load_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Vec<Option<String>>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let map = self.0.lock().unwrap();
            let values = keys.iter().map(|key| map.get(key).cloned()).collect();
            Box::pin(async move { values })
        }

        fn save<'a>(&'a self, key: &'a str, value: String, ttl: Duration) -> BoxFuture<'a, ()> {
            assert_eq!(ttl, MAX_AGE);
            self.0.lock().unwrap().insert(key.to_owned(), value);
            Box::pin(async {})
        }
    }

    fn turn_after(scope: Option<&str>, id: &str) -> ChatRequest {
        let mut assistant = Message::new(Role::Assistant, Vec::new());
        assistant.tool_calls.push(ToolCall {
            id: id.into(),
            name: "f".into(),
            arguments: "{}".into(),
        });
        let mut request = ChatRequest::new("m", vec![Message::text(Role::User, "x"), assistant]);
        request.scope = scope.map(str::to_owned);
        request
    }

    /// What one replica remembers, another finds in the shared store, within the same key only;
    /// once found it is kept in this process too.
    #[tokio::test]
    async fn the_shared_tier_serves_other_replicas_within_a_scope() {
        let shared = Arc::new(FakeShared::default());
        let slot = SharedSlot::default();
        let tiers = Tiers::new(slot.clone());
        slot.attach(Arc::clone(&shared) as _);
        // As if another replica had remembered it: only the shared store has it.
        let blocks = block("signed elsewhere");
        shared.0.lock().unwrap().insert(
            "reasoning:{key_a}:toolu_shared_test".into(),
            serde_json::to_string(&blocks).unwrap(),
        );
        let restored = tiers
            .restore(&turn_after(Some("key_a"), "toolu_shared_test"))
            .await
            .unwrap();
        assert_eq!(restored.messages[1].reasoning, blocks);
        assert!(
            tiers
                .restore(&turn_after(Some("key_b"), "toolu_shared_test"))
                .await
                .is_none()
        );
        // Found once, it is this process's too: no second load for it.
        let loads = shared.1.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            tiers
                .restore(&turn_after(Some("key_a"), "toolu_shared_test"))
                .await
                .is_some()
        );
        assert_eq!(shared.1.load(std::sync::atomic::Ordering::Relaxed), loads);
        // Remembering writes through, under the scope.
        let mine = block("signed here");
        tiers.remember("key_c", "toolu_written", mine.clone()).await;
        assert_eq!(
            shared.0.lock().unwrap()["reasoning:{key_c}:toolu_written"],
            serde_json::to_string(&mine).unwrap()
        );
    }

    fn block(text: &str) -> Vec<Reasoning> {
        vec![Reasoning {
            family: Family::Anthropic,
            data: json!({"t": text}),
        }]
    }

    fn keys(memory: &Memory) -> Vec<&str> {
        memory.order.iter().map(String::as_str).collect()
    }

    #[test]
    fn over_its_byte_budget_the_oldest_entries_go() {
        // `{"t":"…"}` is 8 bytes around the text; id, entry and block overheads come on top.
        let big = "x".repeat(300);
        assert_eq!(entry_bytes("a", &block(&big)), 1 + 64 + 308 + 64);
        let now = Instant::now();
        let mut memory = Memory::with_limits(100, 1000);
        for id in ["a", "b"] {
            memory.insert(id, block(&big), entry_bytes(id, &block(&big)), now);
        }
        assert_eq!((keys(&memory), memory.bytes), (vec!["a", "b"], 874));
        memory.insert("c", block(&big), entry_bytes("c", &block(&big)), now);
        assert_eq!((keys(&memory), memory.bytes), (vec!["b", "c"], 874));
        assert!(!memory.entries.contains_key("a"));
        // One entry over the whole budget is refused and evicts nothing.
        let huge = block(&"y".repeat(1000));
        memory.insert("d", huge.clone(), entry_bytes("d", &huge), now);
        assert_eq!((keys(&memory), memory.bytes), (vec!["b", "c"], 874));
        // Even a small entry evicts the oldest when the sum would pass the budget.
        memory.insert("e", block("s"), entry_bytes("e", &block("s")), now);
        assert_eq!(entry_bytes("e", &block("s")), 138);
        assert_eq!((keys(&memory), memory.bytes), (vec!["c", "e"], 437 + 138));
    }

    #[test]
    fn the_count_and_age_bound_it_too() {
        let now = Instant::now();
        let mut memory = Memory::with_limits(2, 1 << 20);
        for id in ["a", "b", "c"] {
            memory.insert(id, block("t"), 100, now);
        }
        assert_eq!((keys(&memory), memory.bytes), (vec!["b", "c"], 200));
        // Rewriting an id replaces its bytes rather than adding them.
        memory.insert("b", block("t"), 300, now);
        assert_eq!((keys(&memory), memory.bytes), (vec!["b", "c"], 400));
        // Expired entries at the front go at the next insert.
        let later = now + MAX_AGE;
        memory.insert("d", block("t"), 100, later);
        assert_eq!((keys(&memory), memory.bytes), (vec!["d"], 100));
    }

    #[test]
    fn a_stream_collector_gives_up_past_the_budget() {
        let mut collector = StreamCollector::default();
        collector.observe(&StreamEvent::ToolCallStart {
            index: 0,
            id: "toolu_overflow_test".into(),
            name: "f".into(),
        });
        let chunk = "z".repeat(1024 * 1024);
        for _ in 0..=BUDGET_BYTES / chunk.len() {
            collector.observe(&StreamEvent::ReasoningDelta(Reasoning {
                family: Family::Anthropic,
                data: json!({"thinking": chunk}),
            }));
        }
        assert!(collector.overflowed);
        assert_eq!(
            (collector.thinking.capacity(), collector.blocks.len()),
            (0, 0)
        );
        assert_eq!(collector.finish(), None);
    }
}

//! The cache's key, eligibility, memory bounds, shared tier and replay, against an injected
//! clock and an in-memory shared store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::*;
use crate::chat::{
    ContentPart, Family, Message, Reasoning, ResponseFormat, Role, StreamEvent, Tool, ToolCall,
    ToolChoice, WireDialect,
};
use crate::dialects::{anthropic, openai};

fn request() -> ChatRequest {
    let mut request = ChatRequest::new(
        "gpt-4o",
        vec![
            Message::text(Role::System, "Be brief."),
            Message::text(Role::User, "What is 2+2?"),
        ],
    );
    request.sampling.temperature = Some(0.0);
    request
}

fn key(partition: &str, request: &ChatRequest) -> CacheKey {
    CacheKey::new(partition, &request.model, request).unwrap()
}

#[test]
fn the_key_is_a_digest_behind_the_partition_and_stable() {
    let first = key("key:k1", &request());
    assert_eq!(first, key("key:k1", &request()));
    assert_eq!(first.partition(), "key:k1");
    // Pinned: a change here means every entry in every shared store stops matching, which
    // should be a deliberate `KEY_VERSION` bump.
    assert_eq!(
        first.as_str(),
        "key:k1/d8b090de4bf7399d24f1955fc7dc6f6c4e95afd665d9900288a1be317af31eaf"
    );
    assert_eq!(first.as_str().len(), "key:k1/".len() + 64);
}

#[test]
fn what_only_shapes_the_wire_or_labels_the_call_does_not_change_the_key() {
    let base = key("key:k1", &request());
    let mut same = request();
    same.stream = true;
    same.user = Some("end-user-7".into());
    same.metadata = Some(Map::from_iter([("trace".to_owned(), json!("abc"))]));
    same.scope = Some("key:someone".into());
    same.messages[1].content_is_text = false;
    same.messages[1].cache_breakpoint = true;
    assert_eq!(key("key:k1", &same), base);
}

#[test]
fn the_order_of_a_json_object_does_not_change_the_key() {
    let mut a = request();
    a.passthrough.dialect = Some(WireDialect::Anthropic);
    a.passthrough.fields.insert("top_k".into(), json!(5));
    a.passthrough
        .fields
        .insert("container".into(), json!({"b": 1, "a": 2}));
    a.openai_passthrough.insert("logprobs".into(), json!(true));
    a.openai_passthrough
        .insert("service_tier".into(), json!("flex"));
    let mut b = request();
    b.passthrough.dialect = Some(WireDialect::Anthropic);
    let mut inner = Map::new();
    inner.insert("a".into(), json!(2));
    inner.insert("b".into(), json!(1));
    b.passthrough
        .fields
        .insert("container".into(), Value::Object(inner));
    b.passthrough.fields.insert("top_k".into(), json!(5));
    b.openai_passthrough
        .insert("service_tier".into(), json!("flex"));
    b.openai_passthrough.insert("logprobs".into(), json!(true));
    assert_eq!(key("key:k1", &a), key("key:k1", &b));
    assert_ne!(key("key:k1", &a), key("key:k1", &request()));
}

/// An edit to a request, named in the table below.
type Change = Box<dyn Fn(&mut ChatRequest)>;

#[test]
fn what_decides_the_answer_changes_the_key() {
    let base = key("key:k1", &request());
    let changes: Vec<(&str, Change)> = vec![
        (
            "temperature",
            Box::new(|r| r.sampling.temperature = Some(0.5)),
        ),
        ("seed", Box::new(|r| r.sampling.seed = Some(1))),
        ("model", Box::new(|r| r.model = "gpt-4o-mini".into())),
        (
            "message",
            Box::new(|r| r.messages[1] = Message::text(Role::User, "What is 2+3?")),
        ),
        (
            "role",
            Box::new(|r| r.messages[0] = Message::text(Role::Developer, "Be brief.")),
        ),
        ("max_tokens", Box::new(|r| r.max_tokens = Some(10))),
        ("stop", Box::new(|r| r.stop = vec!["\n".into()])),
        (
            "tools",
            Box::new(|r| {
                r.tools.push(Tool {
                    name: "add".into(),
                    description: None,
                    parameters: Some(json!({"type": "object"})),
                    strict: None,
                })
            }),
        ),
        (
            "tool_choice",
            Box::new(|r| r.tool_choice = Some(ToolChoice::Required)),
        ),
        (
            "response_format",
            Box::new(|r| r.response_format = Some(ResponseFormat::JsonObject)),
        ),
        (
            "reasoning",
            Box::new(|r| r.reasoning_effort = Some("high".into())),
        ),
        ("budget", Box::new(|r| r.reasoning_budget = Some(1024))),
        (
            "passthrough",
            Box::new(|r| {
                r.openai_passthrough
                    .insert("logit_bias".into(), json!({"1": 5}));
            }),
        ),
        (
            "beta",
            Box::new(|r| {
                r.passthrough
                    .headers
                    .push(("anthropic-beta".into(), "x".into()))
            }),
        ),
    ];
    let mut seen = vec![base.clone()];
    for (name, change) in &changes {
        let mut changed = request();
        change(&mut changed);
        let changed = key("key:k1", &changed);
        assert!(!seen.contains(&changed), "{name} collides");
        seen.push(changed);
    }
    assert_eq!(seen.len(), 1 + changes.len());
    // The model given is the resolved one: an alias resolved to the same model shares.
    let mut alias = request();
    alias.model = "fast".into();
    assert_eq!(CacheKey::new("key:k1", "gpt-4o", &alias).unwrap(), base);
}

#[test]
fn partitions_never_share_a_key() {
    let request = request();
    let keys: Vec<CacheKey> = [
        CacheScope::Key.partition(Some("k1"), Some("t1")),
        CacheScope::Key.partition(Some("k2"), Some("t1")),
        CacheScope::Team.partition(Some("k1"), Some("t1")),
        CacheScope::Team.partition(Some("k1"), Some("t2")),
        CacheScope::Team.partition(Some("t1"), None),
        CacheScope::Shared.partition(Some("k1"), Some("t1")),
        CacheScope::Key.partition(None, None),
    ]
    .iter()
    .map(|partition| key(partition, &request))
    .collect();
    let partitions: Vec<&str> = keys.iter().map(CacheKey::partition).collect();
    assert_eq!(
        partitions,
        [
            "key:k1",
            "key:k2",
            "team:t1",
            "team:t2",
            "key:t1",
            "shared",
            "anonymous"
        ]
    );
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // An id holding the separator, even another key's whole address, stays its own partition:
    // the digest is always the last 64 characters.
    let forged_id = keys[0].as_str().to_owned();
    let forged = key(&CacheScope::Key.partition(Some(&forged_id), None), &request);
    assert_eq!(forged.partition(), format!("key:{forged_id}"));
    assert!(!keys.contains(&forged));
}

#[test]
fn the_header_parses_or_is_refused_by_name() {
    let parsed: Vec<Directive> = [None, Some("force"), Some(" Bypass "), Some("NO-STORE")]
        .into_iter()
        .map(|value| Directive::parse(value).unwrap())
        .collect();
    assert_eq!(
        parsed,
        [
            Directive::Auto,
            Directive::Force,
            Directive::Bypass,
            Directive::NoStore
        ]
    );
    let error = Directive::parse(Some("always")).unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(
        error.message,
        "Header x-crossbar-cache must be force, bypass or no-store, not `always`."
    );
    assert_eq!(error.param.as_deref(), Some("x-crossbar-cache"));
}

#[test]
fn only_deterministic_or_forced_requests_on_enabled_routes_use_it() {
    let on = CacheConfig {
        enabled: true,
        ..CacheConfig::default()
    };
    let off = CacheConfig::default();
    let at = |t: Option<f64>| {
        let mut r = request();
        r.sampling.temperature = t;
        r
    };
    let use_store = Decision::Use { store: true };
    let use_only = Decision::Use { store: false };
    let table = [
        (&on, Some(0.0), Directive::Auto, use_store),
        (&on, Some(0.0), Directive::Force, use_store),
        (&on, Some(0.0), Directive::NoStore, use_only),
        (
            &on,
            Some(0.0),
            Directive::Bypass,
            Decision::Skip(Skip::Bypass),
        ),
        (
            &on,
            Some(0.7),
            Directive::Auto,
            Decision::Skip(Skip::NotDeterministic),
        ),
        // Unset is the provider's default (1 on most): not deterministic.
        (
            &on,
            None,
            Directive::Auto,
            Decision::Skip(Skip::NotDeterministic),
        ),
        (&on, Some(0.7), Directive::Force, use_store),
        (&on, None, Directive::Force, use_store),
        (
            &on,
            Some(0.7),
            Directive::NoStore,
            Decision::Skip(Skip::NotDeterministic),
        ),
        (
            &off,
            Some(0.0),
            Directive::Force,
            Decision::Skip(Skip::Disabled),
        ),
        (
            &off,
            Some(0.0),
            Directive::Auto,
            Decision::Skip(Skip::Disabled),
        ),
    ];
    for (i, (config, temperature, directive, expected)) in table.into_iter().enumerate() {
        assert_eq!(
            decide(config, &at(temperature), directive),
            expected,
            "row {i}"
        );
    }
    // Tools do not stop it: the answer is the call, not its effect.
    let mut tools = request();
    tools.tools.push(Tool {
        name: "charge_card".into(),
        description: None,
        parameters: None,
        strict: None,
    });
    assert_eq!(decide(&on, &tools, Directive::Auto), use_store);
    assert_eq!(
        (use_store.lookup(), use_store.store(), use_only.store()),
        (true, true, false)
    );
    assert_eq!(Skip::NotDeterministic.as_str(), "not_deterministic");
}

#[test]
fn the_config_reads_with_defaults_and_refuses_unknown_or_useless_settings() {
    let config: CacheConfig = toml::from_str("enabled = true\nscope = \"team\"").unwrap();
    assert_eq!(
        config,
        CacheConfig {
            enabled: true,
            ttl_s: 300,
            max_entries: 10_000,
            max_entry_bytes: 1_048_576,
            scope: CacheScope::Team,
        }
    );
    assert_eq!(config.validate(), Ok(()));
    assert!(toml::from_str::<CacheConfig>("ttl = 5").is_err());
    assert!(toml::from_str::<CacheConfig>("scope = \"global\"").is_err());
    let zero = CacheConfig {
        ttl_s: 0,
        ..CacheConfig::default()
    };
    assert_eq!(
        zero.validate(),
        Err("cache.ttl_s must be at least 1".to_owned())
    );
    let long = CacheConfig {
        ttl_s: 30 * 24 * 3600 + 1,
        ..CacheConfig::default()
    };
    assert_eq!(
        long.validate(),
        Err("cache.ttl_s must be at most 2592000 (30 days)".to_owned())
    );
}

fn answer(text: &str) -> ChatResponse {
    let mut message = Message::new(Role::Assistant, vec![ContentPart::text(text)]);
    message.content_is_text = true;
    ChatResponse {
        id: "chatcmpl-cached".into(),
        model: "gpt-4o-2024-08-06".into(),
        created: 1_700_000_000,
        message,
        finish_reason: FinishReason::Stop,
        raw_finish_reason: Some("stop".into()),
        usage: Some(Usage {
            input_tokens: 20,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 5,
            reasoning_tokens: 0,
        }),
        system_fingerprint: None,
    }
}

/// A clock the test moves by hand, in Unix milliseconds.
fn manual_clock(start: u64) -> (Arc<AtomicU64>, Clock) {
    let now = Arc::new(AtomicU64::new(start));
    let read = Arc::clone(&now);
    (now, Arc::new(move || read.load(Ordering::Relaxed)))
}

fn config(max_entries: usize, max_entry_bytes: usize) -> CacheConfig {
    CacheConfig {
        enabled: true,
        ttl_s: 300,
        max_entries,
        max_entry_bytes,
        scope: CacheScope::Key,
    }
}

fn numbered(n: u32) -> CacheKey {
    let mut request = request();
    request.messages[1] = Message::text(Role::User, format!("question {n}"));
    key("key:k1", &request)
}

#[tokio::test]
async fn an_entry_answers_until_its_ttl_then_is_dropped() {
    let (now, clock) = manual_clock(1_000_000);
    let cache = ResponseCache::with_clock(&config(10, 1 << 20), SharedSlot::default(), clock);
    let key = numbered(1);
    assert_eq!(cache.get(&key).await, None);
    assert_eq!(cache.put(&key, &answer("4")).await, Put::Stored);
    now.store(1_000_000 + 299_999, Ordering::Relaxed);
    let hit = cache.get(&key).await.unwrap();
    assert_eq!(
        (
            hit.stored_at,
            hit.expires_at,
            hit.response.clone(),
            hit.age_s(cache.now_ms())
        ),
        (1_000_000, 1_300_000, answer("4"), 299)
    );
    assert_eq!(hit.usage().total_tokens(), 25);
    now.store(1_000_000 + 300_000, Ordering::Relaxed);
    assert_eq!(cache.get(&key).await, None);
    let stats = cache.stats();
    assert_eq!(
        (
            stats.hits,
            stats.misses,
            stats.stores,
            stats.expired,
            stats.entries,
            stats.bytes
        ),
        (1, 2, 1, 1, 0, 0)
    );
}

#[tokio::test]
async fn memory_keeps_the_most_recently_used_within_its_bound() {
    let (_, clock) = manual_clock(0);
    let cache = ResponseCache::with_clock(&config(2, 1 << 20), SharedSlot::default(), clock);
    let (a, b, c) = (numbered(1), numbered(2), numbered(3));
    cache.put(&a, &answer("a")).await;
    cache.put(&b, &answer("b")).await;
    // Reading `a` makes `b` the least recently used, so `c` pushes `b` out.
    assert!(cache.get(&a).await.is_some());
    cache.put(&c, &answer("c")).await;
    assert_eq!(cache.get(&b).await, None);
    assert_eq!(
        cache.get(&a).await.unwrap().response.message.text_content(),
        "a"
    );
    assert_eq!(
        cache.get(&c).await.unwrap().response.message.text_content(),
        "c"
    );
    // Rewriting a key replaces its entry: no eviction, no growth.
    cache.put(&c, &answer("c2")).await;
    let stats = cache.stats();
    assert_eq!(
        (
            stats.entries,
            stats.evictions,
            stats.stores,
            stats.hits,
            stats.misses
        ),
        (2, 1, 4, 3, 1)
    );
    let one = serde_json::to_string(&Cached {
        stored_at: 0,
        expires_at: 300_000,
        response: answer("a"),
    })
    .unwrap()
    .len() as u64;
    assert_eq!(stats.bytes, one + one + 1);
}

#[tokio::test]
async fn an_answer_over_the_entry_bound_is_not_kept() {
    let size = serde_json::to_string(&Cached {
        stored_at: 0,
        expires_at: 300_000,
        response: answer("four"),
    })
    .unwrap()
    .len();
    assert_eq!(size, 523);
    let (_, clock) = manual_clock(0);
    let exact = ResponseCache::with_clock(&config(10, size), SharedSlot::default(), clock.clone());
    assert_eq!(exact.put(&numbered(1), &answer("four")).await, Put::Stored);
    let small = ResponseCache::with_clock(&config(10, size - 1), SharedSlot::default(), clock);
    assert_eq!(
        small.put(&numbered(1), &answer("four")).await,
        Put::TooLarge
    );
    assert_eq!(small.get(&numbered(1)).await, None);
    let stats = small.stats();
    assert_eq!((stats.too_large, stats.stores, stats.entries), (1, 0, 0));
    // Filtered answers are not kept either: the filter may pass the next try.
    let mut filtered = answer("");
    filtered.finish_reason = FinishReason::ContentFilter;
    assert_eq!(exact.put(&numbered(2), &filtered).await, Put::NotCacheable);
    assert_eq!(exact.stats().stores, 1);
}

/// A shared store in a map, counting its loads and keeping each save's TTL.
#[derive(Default)]
struct FakeShared {
    values: Mutex<HashMap<String, (String, Duration)>>,
    loads: AtomicUsize,
}

impl SharedKv for FakeShared {
    fn load_many<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Vec<Option<String>>> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let values = self.values.lock().unwrap();
        let found = keys
            .iter()
            .map(|key| values.get(key).map(|(value, _)| value.clone()))
            .collect();
        Box::pin(async move { found })
    }

    fn save<'a>(&'a self, key: &'a str, value: String, ttl: Duration) -> BoxFuture<'a, ()> {
        self.values
            .lock()
            .unwrap()
            .insert(key.to_owned(), (value, ttl));
        Box::pin(async {})
    }
}

#[tokio::test]
async fn another_replica_finds_the_entry_in_the_shared_store() {
    let shared = Arc::new(FakeShared::default());
    let slot = SharedSlot::default();
    slot.attach(Arc::clone(&shared) as _);
    let (now, clock) = manual_clock(5_000);
    let one = ResponseCache::with_clock(&config(10, 1 << 20), slot.clone(), clock.clone());
    let two = ResponseCache::with_clock(&config(10, 1 << 20), slot.clone(), clock.clone());
    let key = numbered(1);
    one.put(&key, &answer("4")).await;
    let stored_key = format!("response_cache:{key}");
    {
        let values = shared.values.lock().unwrap();
        let (value, ttl) = &values[&stored_key];
        assert_eq!(*ttl, Duration::from_secs(300));
        let cached: Cached = serde_json::from_str(value).unwrap();
        assert_eq!(
            (cached.stored_at, cached.expires_at, cached.response),
            (5_000, 305_000, answer("4"))
        );
    }
    // A route's own TTL goes to the store and the entry alike.
    let short = numbered(3);
    one.put_for(&short, &answer("7"), Duration::from_secs(10))
        .await;
    assert_eq!(
        shared.values.lock().unwrap()[&format!("response_cache:{short}")].1,
        Duration::from_secs(10)
    );
    assert_eq!(one.get(&short).await.unwrap().expires_at, 15_000);
    now.store(65_000, Ordering::Relaxed);
    let hit = two.get(&key).await.unwrap();
    assert_eq!((hit.stored_at, hit.response), (5_000, answer("4")));
    // Found once, it is this replica's too: no second load, and it ages from its first write.
    let loads = shared.loads.load(Ordering::Relaxed);
    assert!(two.get(&key).await.is_some());
    assert_eq!(shared.loads.load(Ordering::Relaxed), loads);
    assert_eq!(
        (
            two.stats().hits,
            two.stats().shared_hits,
            two.stats().entries
        ),
        (2, 1, 1)
    );
    now.store(305_000, Ordering::Relaxed);
    assert_eq!(two.get(&key).await, None);
    // Another tenant's key for the same request reaches nothing.
    let other = key_for_other_tenant();
    assert_eq!(two.get(&other).await, None);
    // An unreadable value is a miss, not an error.
    let broken = numbered(9);
    shared.values.lock().unwrap().insert(
        format!("response_cache:{broken}"),
        ("{not json".into(), Duration::from_secs(300)),
    );
    assert_eq!(two.get(&broken).await, None);
    // With no memory at all, the shared store still serves.
    let stateless = ResponseCache::with_clock(&config(0, 1 << 20), slot, clock);
    let fresh = numbered(2);
    stateless.put(&fresh, &answer("5")).await;
    assert_eq!(stateless.stats().entries, 0);
    assert_eq!(stateless.get(&fresh).await.unwrap().response, answer("5"));
}

fn key_for_other_tenant() -> CacheKey {
    let mut request = request();
    request.messages[1] = Message::text(Role::User, "question 1");
    key("key:k2", &request)
}

fn sse(events: Vec<StreamEvent>) -> Vec<u8> {
    let mut encoder = openai::StreamEncoder::new(true);
    let mut out = BytesMut::new();
    for event in events {
        encoder.event(event, &mut out);
    }
    encoder.end(&mut out);
    out.to_vec()
}

#[test]
fn a_replayed_hit_encodes_the_same_bytes_each_time() {
    // 150 characters, some of them several bytes: chunks count characters, never split one.
    let text = format!("{}{}", "é".repeat(100), "x".repeat(50));
    let response = answer(&text);
    let events = replay(&response);
    let deltas: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.chars().count()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, [64, 64, 22]);
    assert_eq!(events.len(), 1 + 3 + 2);
    assert_eq!(
        events.first().unwrap(),
        &StreamEvent::Start {
            id: "chatcmpl-cached".into(),
            model: "gpt-4o-2024-08-06".into(),
            created: 1_700_000_000,
        }
    );
    let first = sse(replay(&response));
    assert_eq!(first, sse(replay(&response)));
    // What a client reads back is the cached text.
    let body = String::from_utf8(first).unwrap();
    let mut content = String::new();
    for data in body.split("\n\n").filter_map(|f| f.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(text);
        }
    }
    assert_eq!(content, text);
    // The role, three text chunks, the finish, the usage, `[DONE]`.
    assert_eq!(body.matches("data: ").count(), 7);
    assert!(body.ends_with(
        "\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":5,\"total_tokens\":25,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\ndata: [DONE]\n\n"
    ), "{body}");
}

fn rich_answer() -> ChatResponse {
    let mut response = answer("Let me add them.");
    response.message.reasoning = vec![
        Reasoning {
            family: Family::Anthropic,
            data: json!({"type": "thinking", "thinking": "Two plus two.", "signature": "sig-1"}),
        },
        Reasoning {
            family: Family::Anthropic,
            data: json!({"type": "redacted_thinking", "data": "opaque"}),
        },
        Reasoning {
            family: Family::Gemini,
            data: json!({"thoughtSignature": "g", "part_index": 0}),
        },
    ];
    response.message.tool_calls = vec![
        ToolCall {
            id: "call_1".into(),
            name: "add".into(),
            arguments: "{\"a\":2,\"b\":2}".into(),
        },
        ToolCall {
            id: "call_2".into(),
            name: "noop".into(),
            arguments: String::new(),
        },
    ];
    response.finish_reason = FinishReason::ToolCalls;
    response.raw_finish_reason = Some("tool_calls".into());
    response
}

#[test]
fn replay_then_assembly_gives_back_the_answer() {
    let response = rich_answer();
    let events = replay(&response);
    let anthropic = |data: Value| {
        StreamEvent::ReasoningDelta(Reasoning {
            family: Family::Anthropic,
            data,
        })
    };
    assert_eq!(
        events[1..8],
        [
            anthropic(json!({"thinking": "Two plus two."})),
            anthropic(json!({"signature": "sig-1"})),
            anthropic(json!({"type": "redacted_thinking", "data": "opaque"})),
            StreamEvent::ReasoningDelta(response.message.reasoning[2].clone()),
            StreamEvent::TextDelta("Let me add them.".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "add".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"a\":2,\"b\":2}".into()
            },
        ]
    );
    let mut assembler = Assembler::new(1 << 20);
    for event in &events {
        assembler.observe(event);
    }
    assert_eq!(assembler.finish(), Some(response.clone()));
    // The Anthropic encoder takes the replay too, the same bytes each time.
    let encode = || {
        let mut encoder = anthropic::StreamEncoder::new("claude", 20);
        let mut out = BytesMut::new();
        for event in replay(&response) {
            encoder.event(event, &mut out).unwrap();
        }
        encoder.end(&mut out);
        String::from_utf8(out.to_vec()).unwrap()
    };
    let body = encode();
    assert_eq!(body, encode());
    assert_eq!(body.matches("event: content_block_start").count(), 5);
    assert!(
        body.contains("{\"signature\":\"sig-1\",\"type\":\"signature_delta\"}"),
        "{body}"
    );
}

#[test]
fn an_incomplete_or_oversized_stream_is_not_assembled() {
    let events = replay(&answer("four"));
    let assemble = |events: &[StreamEvent], limit: usize| {
        let mut assembler = Assembler::new(limit);
        for event in events {
            assembler.observe(event);
        }
        assembler.finish()
    };
    assert_eq!(assemble(&events, 4), Some(answer("four")));
    assert_eq!(assemble(&events, 3), None);
    // No finish: cut off.
    assert_eq!(assemble(&events[..2], 1 << 20), None);
    // Arguments for a call that never started.
    let mut orphan = events.clone();
    orphan.insert(
        2,
        StreamEvent::ToolCallDelta {
            index: 3,
            arguments: "{}".into(),
        },
    );
    assert_eq!(assemble(&orphan, 1 << 20), None);
}

/// A real upstream stream (Anthropic's, from the golden files), decoded as the gateway does,
/// is assembled into an answer whose replay assembles into the same answer.
#[test]
fn an_upstream_stream_assembles_and_replays_to_itself() {
    use crate::dialects::{Frame, FrameKind, StreamDecode};
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/anthropic/stream_tool_use.sse"
    ))
    .unwrap();
    let mut decoder = anthropic::StreamDecoder::new();
    let mut events = Vec::new();
    for block in body.split("\n\n") {
        let event = block.lines().find_map(|l| l.strip_prefix("event: "));
        let data = block.lines().find_map(|l| l.strip_prefix("data: "));
        if let (Some(event), Some(data)) = (event, data) {
            let frame = Frame {
                kind: FrameKind::Event,
                event,
                data,
            };
            decoder.decode(&frame, &mut events).unwrap();
        }
    }
    decoder.finish().unwrap();
    let mut assembler = Assembler::new(1 << 20);
    for event in &events {
        assembler.observe(event);
    }
    let answer = assembler.finish().unwrap();
    assert_eq!(
        (
            answer.id.as_str(),
            answer.message.text_content(),
            answer.finish_reason
        ),
        (
            "msg_01",
            "Okay, checking.".to_owned(),
            FinishReason::ToolCalls
        )
    );
    let calls: Vec<(&str, &str, &str)> = answer
        .message
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("toolu_01", "get_weather", "{\"city\": \"Paris\"}"),
            ("toolu_02", "get_time", "{}")
        ]
    );
    assert_eq!(
        answer.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((472, 88))
    );
    let mut again = Assembler::new(1 << 20);
    for event in &replay(&answer) {
        again.observe(event);
    }
    assert_eq!(again.finish(), Some(answer));
}

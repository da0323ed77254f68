//! The gateway's response caches: one [`ResponseCache`] per route that enables `cache`, in
//! front of the replicas' shared store when `[redis]` is configured. Built at start and again
//! on each reload, where a route whose settings did not change keeps its cache (and entries).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use crossbar_core::cache::replay;
use crossbar_core::cache::{
    Assembler, CacheConfig, CacheKey, Cached, Decision, Directive, HEADER, Put, ResponseCache,
    decide,
};
use crossbar_core::chat::{ChatRequest, ChatResponse};
use crossbar_core::router::{Policies, Router};
use crossbar_core::shared_kv::SharedSlot;
use crossbar_core::{ChatStream, Error};
use futures::StreamExt;

use super::payload_log::PayloadLog;
use super::{checked_answer, checked_stream};
use crate::metering::Meter;
use crate::shared::Shared;

/// Route name to its cache and the settings it was built from.
#[derive(Debug, Default)]
pub struct Caches {
    by_route: HashMap<String, (Arc<CacheConfig>, ResponseCache)>,
}

impl Caches {
    /// A cache for each route of `router` that caches; the ones of `old` whose route kept the
    /// same settings carry over.
    pub fn build(router: &Router, shared: Option<&Arc<Shared>>, old: Option<&Caches>) -> Self {
        let by_route = router
            .cache_configs()
            .map(|(route, config)| {
                let kept = old
                    .and_then(|old| old.by_route.get(route))
                    .filter(|(old_config, _)| old_config == config)
                    .map(|(_, cache)| cache.clone());
                let cache = kept.unwrap_or_else(|| {
                    let slot = SharedSlot::default();
                    if let Some(shared) = shared {
                        slot.attach(Arc::clone(shared) as _);
                    }
                    ResponseCache::new(config, slot)
                });
                (route.to_owned(), (Arc::clone(config), cache))
            })
            .collect();
        Self { by_route }
    }

    /// The cache of `route`, if it caches.
    pub fn get(&self, route: &str) -> Option<&ResponseCache> {
        self.by_route.get(route).map(|(_, cache)| cache)
    }
}

/// A request that uses the cache: where its answer is (or will be) kept, and whether a fresh
/// answer is kept.
#[derive(Clone)]
pub(crate) struct Lookup {
    pub cache: ResponseCache,
    pub key: CacheKey,
    pub store: bool,
    /// The route's largest entry, for assembling a streamed answer.
    pub max_entry_bytes: usize,
}

impl Lookup {
    /// Whether `request` (after the route's policies) uses the route's cache, counting a skip.
    /// The partition is the caller's key, or its team (`scope = "team"`; a key without a team
    /// is its own partition).
    pub(crate) fn new(
        caches: &Caches,
        policies: &Policies,
        request: &ChatRequest,
        directive: Directive,
        key_id: Option<&str>,
        team_id: Option<&str>,
    ) -> Option<Self> {
        let config = policies.cache.as_deref()?;
        let cache = caches.get(&policies.route)?;
        let decision = decide(config, request, directive);
        if let Decision::Skip(_) = decision {
            count("skip");
            return None;
        }
        let partition = config.scope.partition(key_id, team_id);
        let key = CacheKey::new(&partition, &policies.model, request)?;
        Some(Self {
            cache: cache.clone(),
            key,
            store: decision.store(),
            max_entry_bytes: config.max_entry_bytes,
        })
    }

    /// The answer kept for this request, counting a hit or a miss.
    pub(crate) async fn get(&self) -> Option<Cached> {
        let found = self.cache.get(&self.key).await;
        count(if found.is_some() { "hit" } else { "miss" });
        found
    }

    /// The answer kept for `request`, if any, as the client gets it, whatever the dialect: noted
    /// on the usage record as a hit (no upstream, no cost), and through the route's guardrails
    /// (the rules may have changed since it was kept) and the payload log like a fresh answer;
    /// whole, or replayed as a stream when the request streams. With its age in seconds.
    pub(crate) async fn answer(
        &self,
        request: &ChatRequest,
        policies: &Policies,
        meter: &Meter,
        log: &mut Option<PayloadLog>,
    ) -> Result<Option<(Hit, u64)>, Error> {
        let Some(mut hit) = self.get().await else {
            return Ok(None);
        };
        let age = hit.age_s(self.cache.now_ms());
        meter.cache_hit(&policies.route, hit.usage());
        let answer = if request.stream {
            let events = replay(&hit.response).into_iter().map(Ok);
            let events = Box::pin(futures::stream::iter(events));
            Hit::Stream(checked_stream(events, policies, meter, None, log.take()))
        } else {
            checked_answer(
                policies,
                request,
                &mut hit.response,
                meter,
                log.as_mut(),
                None,
            )
            .await?;
            Hit::Whole(Box::new(hit.response))
        };
        Ok(Some((answer, age)))
    }

    /// Keeps `response` if this request may store, counting a store.
    pub(crate) async fn put(&self, response: &ChatResponse) {
        if self.store && self.cache.put(&self.key, response).await == Put::Stored {
            count("store");
        }
    }

    /// Passes a streamed answer through and keeps it once the stream has ended without an
    /// error (a stream cut by the client is dropped before its end, and kept by no one).
    pub(crate) fn storing(self, mut events: ChatStream) -> ChatStream {
        if !self.store {
            return events;
        }
        Box::pin(async_stream::stream! {
            let mut answer = Assembler::new(self.max_entry_bytes);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        answer.observe(&event);
                        yield Ok(event);
                    }
                    Err(error) => {
                        yield Err(error);
                        return;
                    }
                }
            }
            if let Some(response) = answer.finish() {
                self.put(&response).await;
            }
        })
    }
}

/// A cached answer ready for the client's dialect ([`Lookup::answer`]).
pub(crate) enum Hit {
    Whole(Box<ChatResponse>),
    Stream(ChatStream),
}

/// A hit's headers: `x-crossbar-cache: hit`, its `age`, the route that answered and no
/// upstream attempts.
pub(crate) fn hit_headers(response: &mut Response, route: &str, age_s: u64) {
    if let Ok(value) = HeaderValue::from_str(route) {
        response.headers_mut().insert("x-crossbar-route", value);
    }
    response
        .headers_mut()
        .insert("x-crossbar-attempts", HeaderValue::from(0));
    headers(response, true, Some(age_s));
}

/// `crossbar_cache_total{result="hit|miss|skip|store"}`.
fn count(result: &'static str) {
    metrics::counter!("crossbar_cache_total", "result" => result).increment(1);
}

/// `x-crossbar-cache: hit` (or `miss`) on an answer, and a hit's `age` in seconds.
pub(crate) fn headers(response: &mut Response, hit: bool, age_s: Option<u64>) {
    let headers = response.headers_mut();
    headers.insert(
        HEADER,
        HeaderValue::from_static(if hit { "hit" } else { "miss" }),
    );
    if let Some(age) = age_s {
        headers.insert(header::AGE, HeaderValue::from(age));
    }
}

/// The caller's `x-crossbar-cache` directive.
pub(crate) fn directive(headers: &HeaderMap) -> Result<Directive, Error> {
    let value = headers
        .get(HEADER)
        .map(|v| {
            v.to_str().map_err(|_| {
                Error::invalid_field(HEADER, format!("`{HEADER}` must be visible ASCII."))
            })
        })
        .transpose()?;
    Directive::parse(value)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crossbar_core::chat::{ContentPart, FinishReason, Message, Role};
    use crossbar_core::config::Config;
    use crossbar_core::ingress::{ChatIngress as _, OpenAiChat};

    use super::*;

    /// Routes `default` (caching for `ttl_s`), `fast` (caching 60 s) and `plain` (not).
    fn router(ttl_s: u64) -> Router {
        let text = format!(
            "[store]\nenabled = false\n\
             [[providers]]\nname = \"p\"\nkind = \"openai\"\nendpoint = \"http://127.0.0.1:9\"\n\
             api_key = \"sk-test\"\n\
             [[models]]\nname = \"m\"\ndeployments = [{{ provider = \"p\", target = \"gpt-4o\" }}]\n\
             [routes.default]\ncache = {{ enabled = true, ttl_s = {ttl_s} }}\n\
             [routes.fast]\nmodels = [\"m\"]\ncache = {{ enabled = true, ttl_s = 60 }}\n\
             [routes.plain]\nmodels = [\"m\"]\ncache = {{ enabled = false }}\n"
        );
        let config = Config::from_toml(&text, "test.toml").unwrap();
        Router::from_config(&config, &HashMap::new()).unwrap()
    }

    fn answer() -> ChatResponse {
        ChatResponse {
            id: "a".to_owned(),
            model: "gpt-4o".to_owned(),
            created: 0,
            message: Message::new(
                Role::Assistant,
                vec![ContentPart::Text {
                    text: "hi".to_owned(),
                }],
            ),
            finish_reason: FinishReason::Stop,
            raw_finish_reason: None,
            usage: None,
            system_fingerprint: None,
        }
    }

    #[tokio::test]
    async fn a_reload_keeps_the_caches_of_routes_whose_settings_did_not_change() {
        let caches = Caches::build(&router(300), None, None);
        let mut names: Vec<&str> = caches.by_route.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["default", "fast"]);
        let decoded = OpenAiChat::decode(
            br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#,
        )
        .unwrap();
        let key = CacheKey::new("anonymous", "m", OpenAiChat::request(&decoded)).unwrap();
        for route in ["default", "fast"] {
            caches.get(route).unwrap().put(&key, &answer()).await;
        }
        // `default`'s TTL changed: a fresh cache; `fast`'s did not: the same entries.
        let reloaded = Caches::build(&router(600), None, Some(&caches));
        assert!(reloaded.get("default").unwrap().get(&key).await.is_none());
        assert_eq!(reloaded.get("default").unwrap().ttl().as_secs(), 600);
        assert_eq!(
            reloaded
                .get("fast")
                .unwrap()
                .get(&key)
                .await
                .unwrap()
                .response,
            answer()
        );
        assert!(reloaded.get("plain").is_none());
    }
}

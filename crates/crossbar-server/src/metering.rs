//! One usage record per metered API request: the layer around each metered route starts a
//! [`Meter`] for the request, named by the route's API; the auth layer inside it attaches the
//! caller's virtual key; the route admits the request against the key's limits and reports
//! what the router did; the record is finished when the response
//! body ends (or the client goes away), so a stream is recorded with the usage that arrived
//! inside it. Finishing settles the key's budget reservation, updates the metrics and queues
//! the record for the store without waiting.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use crossbar_core::chat::{StreamEvent, Usage};
use crossbar_core::pricing;
use crossbar_core::router::{
    Attempt, AttemptLog, Deployment, KeyScope, Preferences, Prompt, Routed, Router,
};
use crossbar_core::{ChatStream, Error};
use crossbar_store::{AttemptRecord, UsageRecord, UsageWriter, now_ms};
use futures::StreamExt;
use http_body_util::BodyExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::app::AppState;
use crate::keys::{KeyState, Reservation};
use crate::metrics;
use crate::request_id::RequestId;
use crate::telemetry::{self, Telemetry, TraceContext};

/// Output tokens assumed for a budget reservation when the request sets no `max_tokens`.
const DEFAULT_RESERVED_OUTPUT_TOKENS: u64 = 1024;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where finished records go.
#[derive(Debug, Default)]
pub struct Metering {
    writer: Option<UsageWriter>,
    telemetry: Option<Telemetry>,
}

impl Metering {
    /// `writer` `None`: no store; records still feed the metrics (and traces, if configured).
    pub(crate) fn new(writer: Option<UsageWriter>, telemetry: Option<Telemetry>) -> Self {
        Self { writer, telemetry }
    }

    pub(crate) fn writer(&self) -> Option<&UsageWriter> {
        self.writer.as_ref()
    }

    /// Writes every queued record; called after the server's drain.
    pub(crate) async fn flush(&self) {
        if let Some(writer) = &self.writer {
            writer.flush_and_stop().await;
        }
        if let Some(telemetry) = &self.telemetry {
            telemetry.flush().await;
        }
    }
}

/// A background task stopped when its owner is dropped (retention).
#[derive(Debug)]
pub struct Background(pub JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What is known about a request so far.
#[derive(Debug)]
struct Pending {
    api: &'static str,
    model: String,
    stream: bool,
    key: Option<Arc<KeyState>>,
    reservation: Option<Reservation>,
    route: Option<String>,
    deployment: Option<Arc<Deployment>>,
    attempts: Vec<AttemptRecord>,
    /// Time spent waiting on upstream attempts before the answer started.
    upstream_wait: Duration,
    usage: Option<Usage>,
    error: Option<String>,
    /// The stream reached its end (not cut by the client going away).
    stream_done: bool,
    /// Where the router leaves the attempts of a request that failed outright.
    attempt_log: AttemptLog,
    /// Refused before any key was known (no key, a wrong key, a remote client of an open
    /// gateway): counted in a metric, but no usage record, so strangers cannot fill the ledger.
    refused_unauthenticated: Option<&'static str>,
    /// The record's notes: end user, cache hit (the guardrails' come from `findings`).
    tags: crossbar_store::UsageTags,
    /// What the guardrails found in the request and the answer.
    findings: crossbar_core::guardrails::Findings,
    /// What the guardrail webhook decided, by result (`allow`, `deny`, `fail_open`...).
    webhook: std::collections::BTreeMap<&'static str, usize>,
}

/// The request's meter, shared by the layers and the route that handle it. A default meter
/// is detached: it records nothing (routes called outside the app's layers).
#[derive(Clone, Debug, Default)]
pub(crate) struct Meter(Option<Arc<Mutex<Pending>>>);

impl<S: Send + Sync> FromRequestParts<S> for Meter {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

impl Meter {
    fn start(api: &'static str) -> Self {
        Self(Some(Arc::new(Mutex::new(Pending {
            api,
            model: String::new(),
            stream: false,
            key: None,
            reservation: None,
            route: None,
            deployment: None,
            attempts: Vec::new(),
            upstream_wait: Duration::ZERO,
            usage: None,
            error: None,
            stream_done: false,
            attempt_log: AttemptLog::enabled(),
            refused_unauthenticated: None,
            tags: crossbar_store::UsageTags::default(),
            findings: crossbar_core::guardrails::Findings::default(),
            webhook: std::collections::BTreeMap::new(),
        }))))
    }

    /// Marks a request the auth layer refused before knowing its key; `reason` labels the
    /// `crossbar_unauthenticated_rejections_total` counter.
    pub(crate) fn refuse_unauthenticated(&self, reason: &'static str) {
        self.with(|p| p.refused_unauthenticated = Some(reason));
    }

    /// A request that failed outright carries no `Routed`: its attempts come from the log.
    fn absorb_failed_attempts(&self) {
        self.with(|p| {
            if !p.attempts.is_empty() {
                return;
            }
            let attempts = p.attempt_log.take();
            p.upstream_wait = attempts
                .iter()
                .filter(|a| !a.hedge)
                .map(|a| a.elapsed)
                .sum();
            p.attempts = attempts.iter().map(attempt_record).collect();
        });
    }

    fn with<R>(&self, f: impl FnOnce(&mut Pending) -> R) -> Option<R> {
        self.0.as_ref().map(|pending| f(&mut lock(pending)))
    }

    /// The caller's virtual key, set by the auth layer.
    pub(crate) fn set_key(&self, key: Arc<KeyState>) {
        self.with(|p| p.key = Some(key));
    }

    /// Time spent waiting on upstream calls so far (to the answer, or a stream's first token).
    fn upstream_wait(&self) -> Duration {
        self.with(|p| p.upstream_wait).unwrap_or_default()
    }

    /// Checks the request against its key (allowed model, after alias resolution; tokens per
    /// minute; budgets), narrows the router to the key's models and routes, reserves the most
    /// the request can cost on any deployment it may then use, and caps the router at the key's
    /// remaining budget.
    /// `prompt` is the request as it goes upstream (a stored conversation included), built only
    /// when there is a key to reserve for.
    pub(crate) async fn admit(
        &self,
        router: &Router,
        model: &str,
        stream: bool,
        prompt: impl FnOnce() -> Prompt,
        max_output_tokens: Option<u64>,
        preferences: &mut Preferences,
    ) -> Result<(), Error> {
        // Records, metrics and the key's model list are about the logical model an alias
        // leads to; a name that leads nowhere is recorded as asked and refused by the router.
        let logical = router.resolve_model(model);
        let key = self
            .with(|p| {
                p.model = logical.unwrap_or(model).to_owned();
                p.stream = stream;
                preferences.attempt_log = p.attempt_log.clone();
                p.key.clone()
            })
            .flatten();
        let Some(key) = key else { return Ok(()) };
        let refuse = |error: Error| {
            metrics::limit_rejected(&key.id(), error.code.as_deref().unwrap_or("model"));
            error
        };
        if let Some(logical) = logical {
            key.check_model(logical).map_err(refuse)?;
        }
        let record = key.record();
        preferences.key = Some(KeyScope {
            routes: (!record.routes.is_empty()).then_some(record.routes),
            models: (!record.models.is_empty()).then_some(record.models),
            // Canary splits hash the conversation with the caller.
            id: Some(key.id()),
            ..preferences.key.take().unwrap_or_default()
        });
        let estimate = router.reservation_pico(
            model,
            preferences,
            &prompt(),
            max_output_tokens.unwrap_or(DEFAULT_RESERVED_OUTPUT_TOKENS),
        )?;
        let (reservation, remaining) = key
            .admit_cost(estimate, Instant::now(), now_ms())
            .await
            .map_err(refuse)?;
        self.with(|p| p.reservation = Some(reservation));
        if let Some(scope) = preferences.key.as_mut() {
            scope.max_cost_usd = remaining.map(pricing::pico_to_usd);
        }
        Ok(())
    }

    /// What the router did: who answered, under which route, after which attempts. `usage` is
    /// the answer's (non-streams); a stream's comes through [`Meter::observe`].
    pub(crate) fn routed<T>(&self, routed: &Routed<T>, usage: Option<Usage>) {
        self.with(|p| {
            p.route = Some(routed.route.clone());
            p.deployment = Some(Arc::clone(&routed.deployment));
            p.attempts = routed.attempts.iter().map(attempt_record).collect();
            p.upstream_wait = routed
                .attempts
                .iter()
                .filter(|a| !a.hedge)
                .map(|a| a.elapsed)
                .sum();
            if usage.is_some() {
                p.usage = usage;
            }
        });
    }

    /// An answer from the response cache for `route`: no deployment, no attempts, so no
    /// upstream cost; the cached token counts; marked as a hit.
    pub(crate) fn cache_hit(&self, route: &str, usage: Usage) {
        self.with(|p| {
            p.route = Some(route.to_owned());
            p.usage = Some(usage);
            p.tags.cache_hit = true;
        });
    }

    /// The team of the caller's virtual key, when it has one (the response cache's `team`
    /// scope).
    /// The names of the caller's virtual key and of its team, for `[keys.NAME]` and
    /// `[teams.NAME]`.
    pub(crate) fn caller_names(&self) -> (Option<String>, Option<String>) {
        self.with(|p| p.key.as_ref().map(|key| key.names()))
            .flatten()
            .unwrap_or_default()
    }

    pub(crate) fn team_id(&self) -> Option<String> {
        self.with(|p| p.key.as_ref().and_then(|k| k.team_id()))
            .flatten()
    }

    /// The end user inside the caller's key (the request's `user`, or `x-crossbar-user`).
    pub(crate) fn end_user(&self, user: Option<String>) {
        self.with(|p| p.tags.end_user = user);
    }

    /// Adds what a guardrail check found (request, answer or stream) to the record's note.
    pub(crate) fn guardrails(&self, findings: &crossbar_core::guardrails::Findings) {
        if findings.is_empty() {
            return;
        }
        self.with(|p| p.findings.merge(findings.clone()));
    }

    /// Notes a guardrail webhook's decision (`result` as in its metric).
    pub(crate) fn webhook(&self, result: &'static str) {
        self.with(|p| *p.webhook.entry(result).or_default() += 1);
    }

    /// Passes a stream through, keeping its usage event and noting how it ended.
    pub(crate) fn observe(&self, mut events: ChatStream) -> ChatStream {
        if self.0.is_none() {
            return events;
        }
        let meter = self.clone();
        Box::pin(async_stream::stream! {
            while let Some(event) = events.next().await {
                match &event {
                    Ok(StreamEvent::Usage(usage)) => {
                        let usage = *usage;
                        meter.with(|p| p.usage = Some(usage));
                    }
                    Err(error) => {
                        let message = error.message.clone();
                        meter.with(|p| p.error = Some(message));
                    }
                    Ok(_) => {}
                }
                yield event;
            }
            meter.with(|p| p.stream_done = true);
        })
    }
}

/// `email:mask=2,webhook:allow=1`: the detectors' findings then the webhook's decisions, names
/// and counts only; `None` when nothing was found or asked.
fn guardrail_note(
    findings: &crossbar_core::guardrails::Findings,
    webhook: &std::collections::BTreeMap<&'static str, usize>,
) -> Option<String> {
    let notes: Vec<String> = (!findings.is_empty())
        .then(|| findings.summary())
        .into_iter()
        .chain(
            webhook
                .iter()
                .map(|(result, n)| format!("webhook:{result}={n}")),
        )
        .collect();
    (!notes.is_empty()).then(|| notes.join(","))
}

fn attempt_record(attempt: &Attempt) -> AttemptRecord {
    let deployment = &attempt.deployment;
    let outcome = match (&attempt.error, attempt.cancelled) {
        (Some(_), _) => "error",
        (None, true) => "cancelled",
        (None, false) => "ok",
    };
    AttemptRecord {
        deployment: deployment.id(),
        provider: deployment.provider.name.clone(),
        cloud: deployment.provider.cloud.clone(),
        region: deployment.provider.region.clone(),
        outcome: outcome.to_owned(),
        status: attempt.error.as_ref().map(Error::status),
        latency_ms: millis(attempt.elapsed),
        hedge: attempt.hedge,
        reason: attempt.error.as_ref().map(|e| e.message.clone()),
        // A cancelled hedge is billed as the router estimated it; the answer's cost is set
        // from its usage when the record is finished.
        cost_pusd: if attempt.cancelled {
            attempt.cost_pico
        } else {
            0
        },
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Finishes the record when dropped: with the response body, at its end or when the client
/// goes away.
struct Finish {
    meter: Meter,
    state: AppState,
    started: Instant,
    /// Wall-clock start and trace, for the request's span (only with telemetry on).
    trace: Option<(SystemTime, TraceContext)>,
    time_ms: i64,
    status: u16,
    request_id: String,
    first_byte: Option<Instant>,
}

impl Finish {
    fn saw_frame(&mut self, data: bool) {
        if data && self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let Some(pending) = self.meter.0.take() else {
            return;
        };
        let mut p = lock(&pending);
        if let Some(reason) = p.refused_unauthenticated {
            metrics::unauthenticated_rejected(reason);
            return;
        }
        let now = Instant::now();
        let usage = p.usage.unwrap_or_default();
        let answer_cost = p
            .deployment
            .as_ref()
            .map_or(0, |d| pricing::cost(&d.price, &usage).total());
        if let Some(winner) = p.attempts.iter_mut().find(|a| a.outcome == "ok") {
            winner.cost_pusd = answer_cost;
        }
        let cost_pusd = if p.attempts.is_empty() {
            answer_cost
        } else {
            p.attempts.iter().map(|a| a.cost_pusd).sum()
        };
        if p.stream && !p.stream_done && p.error.is_none() && p.deployment.is_some() {
            p.error = Some("The client went away before the end of the stream.".to_owned());
        }
        let ttft = self.first_byte.map(|at| at - self.started);
        let latency = now - self.started;
        let overhead = ttft.unwrap_or(latency).saturating_sub(p.upstream_wait);
        if let Some(reservation) = p.reservation.take() {
            reservation.settle(cost_pusd, usage.total_tokens());
        }
        let deployment = p.deployment.clone();
        let record = UsageRecord {
            request_id: std::mem::take(&mut self.request_id),
            time_ms: self.time_ms,
            key_id: p.key.as_ref().map(|k| k.id()),
            api: p.api.to_owned(),
            model: std::mem::take(&mut p.model),
            route: p.route.take(),
            deployment: deployment.as_ref().map(|d| d.id()),
            provider: deployment.as_ref().map(|d| d.provider.name.clone()),
            cloud: deployment.as_ref().map(|d| d.provider.cloud.clone()),
            region: deployment.as_ref().map(|d| d.provider.region.clone()),
            stream: p.stream,
            status: self.status,
            error: p.error.take(),
            input_tokens: usage.input_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            output_tokens: usage.output_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            cost_pusd,
            latency_ms: millis(latency),
            ttft_ms: ttft.map(millis),
            overhead_ms: millis(overhead),
            attempts: std::mem::take(&mut p.attempts),
            tags: crossbar_store::UsageTags {
                guardrails: guardrail_note(&p.findings, &p.webhook),
                team_id: p.key.as_ref().and_then(|k| k.team_id()),
                ..std::mem::take(&mut p.tags)
            },
        };
        drop(p);
        // Label values come from the catalog, never from what a client typed: an unknown model
        // name is `other`, so clients cannot grow the metrics without bound.
        let router = &self.state.router;
        let known = router.model_names().any(|m| m == record.model)
            || router.route_names().any(|r| r == record.model);
        let model_label = if known {
            record.model.as_str()
        } else {
            "other"
        };
        metrics::request_finished(&record, model_label, latency, ttft, overhead);
        if let (Some(telemetry), Some((at, trace))) = (&self.state.metering.telemetry, self.trace) {
            let lookup = |id: &str| {
                router
                    .deployments()
                    .find(|d| d.id() == id)
                    .map(|d| (d.provider.kind, d.target.clone()))
            };
            telemetry.submit(telemetry::spans(
                &record,
                deployment.as_deref(),
                trace,
                at,
                lookup,
            ));
        }
        // A caller that never authenticated does not get to write to the ledger.
        if record.status == 401 && record.key_id.is_none() {
            return;
        }
        if let Some(writer) = self.state.metering.writer() {
            writer.submit(record);
        }
    }
}

/// Milliseconds the gateway added to this request, on every metered answer.
pub(crate) const OVERHEAD_HEADER: &str = "x-crossbar-overhead-ms";

/// The layer around a metered route (outside its auth): starts the meter for a request to
/// `api` and finishes the record with the response body.
pub(crate) async fn layer(
    State((state, api)): State<(AppState, &'static str)>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let time_ms = now_ms();
    let trace = state.metering.telemetry.is_some().then(|| {
        (
            SystemTime::now(),
            TraceContext::from_headers(request.headers()),
        )
    });
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|RequestId(id)| id.clone())
        .unwrap_or_default();
    let meter = Meter::start(api);
    request.extensions_mut().insert(meter.clone());
    let mut response = next.run(request).await;
    meter.absorb_failed_attempts();
    // What the gateway itself added before the answer (a stream's first byte) left: the
    // same figure as the overhead histogram, but for this request, visible to the caller.
    let overhead = started.elapsed().saturating_sub(meter.upstream_wait());
    if let Ok(value) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
        response.headers_mut().insert(OVERHEAD_HEADER, value);
    }
    let mut finish = Finish {
        meter,
        state,
        started,
        trace,
        time_ms,
        status: response.status().as_u16(),
        request_id,
        first_byte: None,
    };
    let (parts, body) = response.into_parts();
    // The guard lives in the closure, so it drops with the body: at its end or on disconnect.
    // (A method call, so the closure captures the whole guard, not just one field.)
    let body = body.map_frame(move |frame| {
        finish.saw_frame(frame.is_data());
        frame
    });
    Response::from_parts(parts, Body::new(body))
}

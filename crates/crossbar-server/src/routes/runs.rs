//! The runs API: agent runs submitted over HTTP, queued in the store for workers
//! (`crossbar agent worker`) to claim. Runs belong to the virtual key that submitted them: a
//! key sees and cancels its own, the admin everyone's.
//!
//! - `POST /v1/crossbar/runs` — `{"agent": NAME | "spec": TOML, "input": ..., "budget": {...}}`;
//!   an `Idempotency-Key` header makes a retried submit return the same run (200, not 201).
//! - `GET /v1/crossbar/runs/{id}/events` — the journal as server-sent events, live until the run
//!   ends, resumable with `Last-Event-ID` (the entry's sequence number).
//! - `POST /v1/crossbar/runs/{id}/cancel`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crossbar_core::Error;
use crossbar_core::pricing::{format_usd, pico_to_usd};
use crossbar_core::runs::{RunSpecs, Submit};
use crossbar_store::{
    JournalStore, QueueState, QueuedRun, RunFilter, RunQueue, RunRecord, RunTotals, now_ms,
};
use futures::Stream;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{CallerKey, CallerScope, Role};
use crate::error::ApiError;
use crate::openapi::{Doc, Endpoint};

/// What the runs API needs of the store: the queue and the journal.
pub trait RunStore: RunQueue + JournalStore {}

impl<T: RunQueue + JournalStore> RunStore for T {}

/// The runs API's parts: the store's queue, and the agent runtime's specs when `[agents]` is
/// configured (without them, submits are refused; reads still work).
#[derive(Clone)]
pub struct Runs {
    pub store: Arc<dyn RunStore>,
    pub specs: Option<Arc<dyn RunSpecs>>,
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The longest `Idempotency-Key` kept.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// How often a live event stream looks for new journal entries.
const EVENT_POLL: Duration = Duration::from_millis(200);

fn runs(state: &AppState) -> Result<&Runs> {
    state.runs.as_ref().ok_or_else(|| {
        Error::not_found("Agent runs need a store (`store.enabled`).")
            .with_code("runs_disabled")
            .into()
    })
}

fn unavailable(error: crossbar_store::StoreError) -> ApiError {
    Error::overloaded(format!("The store is unavailable: {error}")).into()
}

/// Whose runs a caller sees, and whether it may cancel them.
struct Scope {
    /// The submitting keys whose runs it sees; `None`: every run.
    owners: Option<Vec<String>>,
    may_cancel: bool,
}

/// A key sees its own runs ('' for callers without a virtual key: an open gateway, a
/// `server.api_keys` key); the root admin token and an `admin` token every run, a `viewer`
/// token every run without cancelling, a `team-admin` token the runs of its team's keys.
async fn scope(state: &AppState, headers: &HeaderMap, caller: Option<&CallerKey>) -> Result<Scope> {
    let Some(principal) = crate::auth::admin_principal(state, headers).await? else {
        return Ok(Scope {
            owners: Some(vec![
                caller.map(|CallerKey(id)| id.clone()).unwrap_or_default(),
            ]),
            may_cancel: true,
        });
    };
    let owners = match principal.confined() {
        None => None,
        Some(team) => {
            let keys = match &state.dashboard {
                Some(store) => store.list_keys().await.map_err(unavailable)?,
                None => Vec::new(),
            };
            Some(
                keys.into_iter()
                    .filter(|k| k.team_id.as_deref() == Some(team))
                    .map(|k| k.id)
                    .collect(),
            )
        }
    };
    Ok(Scope {
        owners,
        may_cancel: principal.role != Role::Viewer,
    })
}

/// The run, if it exists and the caller may see it; a run it may not see is "not found" too,
/// so ids of other keys' runs are not confirmed.
async fn visible(runs: &Runs, id: &str, scope: &Scope) -> Result<QueuedRun> {
    let found = runs.store.queued_run(id).await.map_err(unavailable)?;
    match found {
        Some(run)
            if scope
                .owners
                .as_ref()
                .is_none_or(|owners| owners.contains(&run.queue.owner_key)) =>
        {
            Ok(run)
        }
        _ => Err(Error::not_found(format!("No agent run `{id}`."))
            .with_code("run_not_found")
            .into()),
    }
}

/// The run `id` if the caller may see it, with the runs API and the caller's scope.
async fn callers_run<'s>(
    state: &'s AppState,
    caller: Option<&CallerKey>,
    headers: &HeaderMap,
    id: &str,
) -> Result<(&'s Runs, QueuedRun, Scope)> {
    let runs = runs(state)?;
    let scope = scope(state, headers, caller).await?;
    let run = visible(runs, id, &scope).await?;
    Ok((runs, run, scope))
}

/// The runs API's routes: a key's own runs, or everyone's for the admin.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    // Bad input; no key; a viewer cancelling; runs disabled or a run not the caller's; the
    // store out of reach.
    vec![
        (
            "GET",
            "/v1/crossbar/runs",
            get(list),
            Doc::answers::<List<RunView>>(
                "The caller's runs (everyone's for the admin), newest first.",
            )
            .query::<ListQuery>()
            .errors(&[400, 401, 404, 503]),
        ),
        (
            "POST",
            "/v1/crossbar/runs",
            post(submit),
            Doc::answers::<RunView>(
                "Queues a run (201); a retried submit with the same `Idempotency-Key` answers \
                 the same run (200).",
            )
            .body::<Submit>()
            .headers(&[(
                "Idempotency-Key",
                "A retried submit with the same key (per calling key) answers the same run.",
            )])
            .ok(&[201, 200])
            .errors(&[400, 401, 404, 413, 503]),
        ),
        (
            "GET",
            "/v1/crossbar/runs/{id}",
            get(show),
            Doc::answers::<RunDetail>("One run with its journal and a per-step summary.")
                .errors(&[401, 404, 503]),
        ),
        (
            "GET",
            "/v1/crossbar/runs/{id}/events",
            get(events),
            Doc::text(
                "The run's journal as server-sent events, live until the run ends \
                 (resumable with `Last-Event-ID`).",
                "text/event-stream",
            )
            .headers(&[(
                "Last-Event-ID",
                "Resume after this journal entry (its sequence number).",
            )])
            .errors(&[400, 401, 404, 503]),
        ),
        (
            "POST",
            "/v1/crossbar/runs/{id}/cancel",
            post(cancel),
            Doc::answers::<RunView>("Asks a run to stop.").errors(&[400, 401, 403, 404, 503]),
        ),
    ]
}

/// A run as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct RunView {
    /// Tool calls journaled so far; `null` where not counted (submit, cancel).
    tool_calls: Option<u64>,
    #[schemars(extend("const" = "crossbar.run"))]
    object: &'static str,
    id: String,
    agent: String,
    task: String,
    /// `queued`, `running`, `completed`, `failed`, `cancelled`...
    status: String,
    created_ms: i64,
    updated_ms: i64,
    steps: u64,
    tokens: u64,
    /// Exact decimal USD.
    cost: String,
    cost_usd: f64,
    elapsed_ms: u64,
    answer: Option<String>,
    worker: Option<String>,
    lease_until_ms: Option<i64>,
    claimed_ms: Option<i64>,
    takeovers: u64,
    cancel_requested: bool,
    idempotency_key: Option<String>,
    /// The submit's overrides of the spec's budget.
    budget: Option<Value>,
}

/// A run as the API shows it; `tool_calls` when counted.
pub(crate) fn run_view(queued: &QueuedRun, tool_calls: Option<u64>) -> RunView {
    let run = &queued.run;
    let queue = &queued.queue;
    RunView {
        tool_calls,
        object: "crossbar.run",
        id: run.id.clone(),
        agent: run.agent.clone(),
        task: run.task.clone(),
        status: run.status.clone(),
        created_ms: run.created_ms,
        updated_ms: run.updated_ms,
        steps: run.totals.steps,
        tokens: run.totals.tokens,
        cost: format_usd(run.totals.cost_pusd),
        cost_usd: pico_to_usd(run.totals.cost_pusd),
        elapsed_ms: run.totals.elapsed_ms,
        answer: run.answer.clone(),
        worker: queue.worker.clone(),
        lease_until_ms: queue.lease_until_ms,
        claimed_ms: queue.claimed_ms,
        takeovers: queue.takeovers,
        cancel_requested: queue.cancel_requested,
        idempotency_key: queue.idempotency_key.clone(),
        budget: queue
            .limits
            .as_deref()
            .and_then(|l| serde_json::from_str::<Value>(l).ok()),
    }
}

/// An OpenAI-style list.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}List")]
pub(crate) struct List<T> {
    #[schemars(extend("const" = "list"))]
    object: &'static str,
    data: Vec<T>,
}

/// A run with its journal.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct RunDetail {
    #[serde(flatten)]
    run: RunView,
    per_step: Vec<Step>,
    events: Vec<JournalEntry>,
}

/// One journal entry: `entry` is the agent's own JSON for it.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct JournalEntry {
    seq: u64,
    time_ms: i64,
    kind: String,
    entry: Value,
}

/// `GET /v1/crossbar/runs?status=&agent=&limit=50`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    agent: Option<String>,
    limit: Option<u32>,
}

/// The most runs one list returns.
const MAX_LIST: u32 = 1000;

/// `GET /v1/crossbar/runs`: the caller's runs (everyone's for the admin), newest first, with
/// their status, steps, tool calls, tokens and cost.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Option<Extension<CallerKey>>,
    headers: HeaderMap,
    params: std::result::Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<List<RunView>>> {
    let runs = runs(&state)?;
    let Query(params) = params.map_err(|e| Error::invalid_request(e.body_text()))?;
    let limit = params.limit.unwrap_or(50).clamp(1, MAX_LIST);
    let filter = RunFilter {
        owners: scope(&state, &headers, caller.as_ref().map(|Extension(c)| c))
            .await?
            .owners,
        status: params.status,
        agent: params.agent,
        limit,
    };
    let listed = runs.store.list_queued(&filter).await.map_err(unavailable)?;
    let calls: HashMap<String, u64> = match &state.dashboard {
        Some(dashboard) => dashboard
            .tool_calls_by_run(limit)
            .await
            .map_err(unavailable)?
            .into_iter()
            .collect(),
        None => HashMap::new(),
    };
    let data = listed
        .iter()
        .map(|run| run_view(run, Some(calls.get(&run.run.id).copied().unwrap_or(0))))
        .collect();
    Ok(Json(List {
        object: "list",
        data,
    }))
}

/// `GET /v1/crossbar/runs/{id}`: one run, its journal entries and a per-step summary (model,
/// tokens, cost, tool calls).
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Option<Extension<CallerKey>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>> {
    let (runs, run, _) =
        callers_run(&state, caller.as_ref().map(|Extension(c)| c), &headers, &id).await?;
    let events = runs.store.events(&id).await.map_err(unavailable)?;
    let entries: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap_or_else(|_| json!({ "kind": e.kind })))
        .collect();
    let tool_calls = entries
        .iter()
        .filter(|e| e.get("kind").and_then(Value::as_str) == Some("tool_started"))
        .count() as u64;
    let per_step = steps(&entries);
    let journal = events
        .iter()
        .zip(entries)
        .map(|(e, entry)| JournalEntry {
            seq: e.seq,
            time_ms: e.time_ms,
            kind: e.kind.clone(),
            entry,
        })
        .collect();
    Ok(Json(RunDetail {
        run: run_view(&run, Some(tool_calls)),
        per_step,
        events: journal,
    }))
}

/// One model call of a run, with the tools it asked for.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub(crate) struct Step {
    step: u64,
    model: Option<String>,
    deployment: Option<String>,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    error: Option<String>,
    tools: Vec<StepTool>,
}

/// A tool call's result in a step.
#[derive(Debug, Serialize, JsonSchema)]
struct StepTool {
    name: Option<String>,
    call_id: Option<String>,
    is_error: bool,
}

/// Model calls and tool calls per step, from the journal's entries.
fn steps(entries: &[Value]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let number = |v: &Value, path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(*k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    for entry in entries {
        let Some(step) = entry.get("step").and_then(Value::as_u64) else {
            continue;
        };
        if steps.last().is_none_or(|s| s.step != step) {
            steps.push(Step {
                step,
                ..Step::default()
            });
        }
        let Some(current) = steps.last_mut() else {
            continue;
        };
        match entry.get("kind").and_then(Value::as_str) {
            Some("model_call") => {
                current.model = text(entry, "model");
                current.deployment = text(entry, "deployment");
                current.input_tokens += number(entry, &["usage", "input_tokens"]);
                current.output_tokens += number(entry, &["usage", "output_tokens"]);
                current.cost_usd += entry.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
            }
            Some("model_failed") => {
                current.model = text(entry, "model");
                current.error = text(entry, "error");
            }
            // The summary written before this step: its tokens and cost belong to the step.
            Some("summarized") => {
                current.input_tokens += number(entry, &["usage", "input_tokens"]);
                current.output_tokens += number(entry, &["usage", "output_tokens"]);
                current.cost_usd += entry.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
            }
            Some("tool_result") => {
                // A tool's own model spend (embedding a query) is part of its step's cost.
                current.cost_usd += entry.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
                current.tools.push(StepTool {
                    name: text(entry, "name"),
                    call_id: text(entry, "call_id"),
                    is_error: entry
                        .get("is_error")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                });
            }
            _ => {}
        }
    }
    steps
}

/// `POST /v1/crossbar/runs`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Option<Extension<CallerKey>>,
    scope: Option<Extension<CallerScope>>,
    headers: HeaderMap,
    raw: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let runs = runs(&state)?;
    let Some(specs) = &runs.specs else {
        return Err(Error::not_found(
            "This gateway does not take agent runs (configure `[agents]`).",
        )
        .with_code("agents_disabled")
        .into());
    };
    let raw = super::body(raw, state.max_body_bytes)?;
    let submit: Submit = serde_json::from_slice(&raw)
        .map_err(|e| Error::invalid_request(format!("The submit is not valid: {e}")))?;
    let idempotency_key = idempotency_key(&headers)?;
    if let (Some(Extension(CallerScope(key))), Some(usd)) = (&scope, submit.budget.usd) {
        let limits = key.record().limits;
        let smallest = [
            limits.budget_day_pusd,
            limits.budget_month_pusd,
            limits.budget_total_pusd,
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(pusd) = smallest
            && crossbar_core::pricing::usd_to_pico(usd) > pusd
        {
            return Err(Error::invalid_field(
                "budget.usd",
                format!(
                    "`budget.usd` ({usd}) is above this key's budget ({}).",
                    format_usd(pusd)
                ),
            )
            .into());
        }
    }
    let prepared = specs.prepare(&submit)?;
    let now = now_ms();
    let record = RunRecord {
        id: crossbar_store::new_run_id(),
        agent: prepared.agent,
        spec_path: prepared.spec_path,
        spec: prepared.spec,
        task: prepared.task,
        status: "queued".to_owned(),
        created_ms: now,
        updated_ms: now,
        totals: RunTotals::default(),
        answer: None,
    };
    let queue = QueueState {
        owner_key: caller
            .map(|Extension(CallerKey(id))| id)
            .unwrap_or_default(),
        idempotency_key,
        limits: (!submit.budget.is_empty())
            .then(|| serde_json::to_string(&submit.budget))
            .transpose()
            .map_err(|e| Error::internal(e.to_string()))?,
        ..QueueState::default()
    };
    let (queued, created) = runs
        .store
        .submit(&record, &queue)
        .await
        .map_err(unavailable)?;
    if created {
        crate::metrics::run_submitted(&queued.run.agent);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(run_view(&queued, None))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/crossbar/runs/{}", queued.run.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            Error::invalid_field(
                "Idempotency-Key",
                format!(
                    "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters."
                ),
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// `POST /v1/crossbar/runs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Option<Extension<CallerKey>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RunView>> {
    let (runs, run, scope) =
        callers_run(&state, caller.as_ref().map(|Extension(c)| c), &headers, &id).await?;
    if !scope.may_cancel {
        return Err(Error::permission_denied(
            "A viewer token may not cancel runs.",
            "role_forbidden",
        )
        .into());
    }
    if crossbar_store::is_terminal(&run.run.status) {
        return Err(Error::invalid_request(format!(
            "Cannot cancel run `{id}`: it already ended ({}).",
            run.run.status
        ))
        .with_code("run_ended")
        .into());
    }
    runs.store.cancel(&id).await.map_err(unavailable)?;
    // The caller may see it (checked above): only the run's new state is read.
    let run = runs
        .store
        .queued_run(&id)
        .await
        .map_err(unavailable)?
        .unwrap_or(run);
    Ok(Json(run_view(&run, None)))
}

/// `GET /v1/crossbar/runs/{id}/events`.
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Option<Extension<CallerKey>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    let (runs, _, _) =
        callers_run(&state, caller.as_ref().map(|Extension(c)| c), &headers, &id).await?;
    let runs = runs.clone();
    let after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::invalid_field(
                        "Last-Event-ID",
                        "`Last-Event-ID` must be a sequence number.",
                    )
                })?,
        ),
    };
    Ok(Sse::new(journal_events(runs, id, after))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The run's journal entries after `after`, then new ones as they are journaled, then `end`
/// once the run has ended and every entry was sent. A store that fails mid-stream ends it
/// with an `error` event.
fn journal_events(
    runs: Runs,
    id: String,
    after: Option<u64>,
) -> impl Stream<Item = std::result::Result<Event, Infallible>> {
    async_stream::stream! {
        let mut next = after.map_or(0, |seq| seq + 1);
        loop {
            // The status first: entries read after it include every one journaled before it.
            let status = match runs.store.queued_run(&id).await {
                Ok(Some(run)) => run.run.status,
                Ok(None) => "gone".to_owned(),
                Err(error) => {
                    yield Ok(error_event(&error.to_string()));
                    return;
                }
            };
            // Only what was not sent yet: a long run is not read whole every poll.
            let events = match runs.store.events_from(&id, next).await {
                Ok(events) => events,
                Err(error) => {
                    yield Ok(error_event(&error.to_string()));
                    return;
                }
            };
            for event in events {
                next = event.seq + 1;
                yield Ok(Event::default()
                    .id(event.seq.to_string())
                    .event(event.kind)
                    .data(event.data));
            }
            if crossbar_store::is_terminal(&status) {
                yield Ok(Event::default().event("end").data(json!({ "status": status }).to_string()));
                return;
            }
            tokio::time::sleep(EVENT_POLL).await;
        }
    }
}

fn error_event(message: &str) -> Event {
    Event::default().event("error").data(
        json!({ "error": { "type": "api_error", "code": "store_unavailable",
            "message": format!("The store is unavailable: {message}") } })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_gather_model_and_tool_calls() {
        let entries = vec![
            json!({"kind": "started", "task": "t", "agent": "a"}),
            json!({"kind": "model_call", "step": 1, "model": "chat", "deployment": "chat@x",
                "usage": {"input_tokens": 10, "output_tokens": 4}, "cost_usd": 0.5}),
            json!({"kind": "tool_started", "step": 1, "call_id": "c1", "name": "calc"}),
            json!({"kind": "tool_result", "step": 1, "call_id": "c1", "name": "calc", "is_error": true,
                "cost_usd": 0.125}),
            json!({"kind": "summarized", "step": 2, "model": "cheap",
                "usage": {"input_tokens": 7, "output_tokens": 3}, "cost_usd": 0.25}),
            json!({"kind": "model_failed", "step": 2, "model": "chat", "error": "503"}),
            json!({"kind": "finished", "status": "failed"}),
        ];
        let steps = steps(&entries);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            (steps[1].input_tokens, steps[1].cost_usd),
            (7, 0.25),
            "the summary's share"
        );
        assert_eq!(steps[1].model.as_deref(), Some("chat"));
        assert_eq!(steps[0].deployment.as_deref(), Some("chat@x"));
        assert_eq!((steps[0].input_tokens, steps[0].output_tokens), (10, 4));
        assert_eq!(
            steps[0].cost_usd, 0.625,
            "the model call and the tool's spend"
        );
        assert_eq!(
            serde_json::to_value(&steps[0].tools).ok(),
            Some(json!([{"name": "calc", "call_id": "c1", "is_error": true}]))
        );
        assert_eq!(steps[1].error.as_deref(), Some("503"));
    }
}

//! The JSON behind each dashboard page. Money is shown twice: as a float for charts
//! (`*_usd`) and as an exact decimal string (`cost`, `spent`) for reading.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use crossbar_core::Error;
use crossbar_core::pricing::{format_usd, pico_to_usd};
use crossbar_store::whatif::{self, Row};
use crossbar_store::{
    AttemptRecord, DashboardStore, KeyRecord, KeySpend, RequestFilter, RunRecord, StatusFilter,
    UsageRecord, key_json, now_ms,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::overview::{self, Overview, Window};
use crate::app::AppState;
use crate::error::ApiError;
use crate::keys::day_and_month_start;

/// The overview reads at most this many requests; older ones in the window are left out.
const MAX_POINTS: u32 = 200_000;
/// The what-if table re-prices at most this many requests.
const MAX_WHATIF_RECORDS: u32 = 200_000;
const MAX_REQUESTS: u32 = 1_000;
const MAX_WINDOW_MS: i64 = 31 * 86_400_000;

type Result<T> = std::result::Result<T, ApiError>;

fn store(state: &AppState) -> Result<&Arc<dyn DashboardStore>> {
    state.dashboard.as_ref().ok_or_else(|| {
        Error::invalid_request("The dashboard's history needs a store: `store.enabled` is false.")
            .with_code("store_disabled")
            .into()
    })
}

fn unavailable(error: crossbar_store::StoreError) -> ApiError {
    Error::internal(format!("The usage store is unavailable: {error}")).into()
}

fn query<T>(query: std::result::Result<Query<T>, QueryRejection>) -> Result<T> {
    query
        .map(|Query(q)| q)
        .map_err(|e| Error::invalid_request(format!("Invalid query: {e}")).into())
}

/// `30s`, `15m`, `24h`, `7d` as milliseconds, at most a month.
fn duration_ms(text: &str, param: &str) -> Result<i64> {
    let text = text.trim();
    let invalid = || -> ApiError {
        Error::invalid_field(
            param,
            format!("`{param}` is a whole number and a unit (s, m, h or d), like `15m`."),
        )
        .into()
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| invalid())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    let ms = number.saturating_mul(unit_ms);
    if ms <= 0 || ms > MAX_WINDOW_MS {
        return Err(
            Error::invalid_field(param, format!("`{param}` is between 1s and 31d.")).into(),
        );
    }
    Ok(ms)
}

/// A point in time: epoch milliseconds, or a duration back from now (`15m`).
fn instant_ms(text: &str, param: &str, now: i64) -> Result<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| {
            Error::invalid_field(param, format!("`{param}` is out of range.")).into()
        });
    }
    Ok(now - duration_ms(text, param)?)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OverviewQuery {
    window: Option<String>,
    buckets: Option<usize>,
}

/// `GET /v1/crossbar/overview?window=15m&buckets=60`.
pub(crate) async fn overview(
    State(state): State<AppState>,
    params: std::result::Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Json<Overview>> {
    let params = query(params)?;
    let store = store(&state)?;
    let window = Window {
        now_ms: now_ms(),
        span_ms: duration_ms(params.window.as_deref().unwrap_or("15m"), "window")?,
        buckets: params.buckets.unwrap_or(60).clamp(1, 240),
    };
    let points = store
        .usage_points(window.since_ms(), MAX_POINTS)
        .await
        .map_err(unavailable)?;
    let truncated = points.len() >= MAX_POINTS as usize;
    Ok(Json(overview::overview(&points, window, truncated)))
}

/// An attempt with its cost in USD and where it sits on the request's timeline.
#[derive(Debug, Serialize)]
struct AttemptView<'a> {
    #[serde(flatten)]
    attempt: &'a AttemptRecord,
    cost: String,
    /// Offsets from the request's start. Retries and failovers follow each other; a hedge
    /// races the attempt it hedges and ends with it. The router records durations, not start
    /// times, so the gaps between retries (backoff) are not shown.
    start_ms: u64,
    end_ms: u64,
}

/// What the log adds to a stored record (whose fields it keeps, `attempts` replaced).
#[derive(Debug, Serialize)]
struct RequestView<'a> {
    cost: String,
    cost_usd: f64,
    attempts: Vec<AttemptView<'a>>,
    retries: usize,
    hedges: usize,
}

fn request_view(record: &UsageRecord) -> RequestView<'_> {
    let mut cursor = 0u64;
    let mut placed: Vec<(u64, u64)> = Vec::with_capacity(record.attempts.len());
    for attempt in &record.attempts {
        if attempt.hedge {
            placed.push((0, 0));
        } else {
            placed.push((cursor, cursor.saturating_add(attempt.latency_ms)));
            cursor = cursor.saturating_add(attempt.latency_ms);
        }
    }
    let attempts = record
        .attempts
        .iter()
        .zip(placed)
        .map(|(attempt, (start, end))| {
            let (start_ms, end_ms) = if attempt.hedge {
                (cursor.saturating_sub(attempt.latency_ms), cursor)
            } else {
                (start, end)
            };
            AttemptView {
                attempt,
                cost: format_usd(attempt.cost_pusd),
                start_ms,
                end_ms,
            }
        })
        .collect();
    let sequential = record.attempts.iter().filter(|a| !a.hedge).count();
    RequestView {
        cost: format_usd(record.cost_pusd),
        cost_usd: pico_to_usd(record.cost_pusd),
        attempts,
        retries: sequential.saturating_sub(1),
        hedges: record.attempts.len() - sequential,
    }
}

/// The record's own fields with the view's added.
fn request_json(record: &UsageRecord) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let (Some(object), Ok(Value::Object(extra))) = (
        value.as_object_mut(),
        serde_json::to_value(request_view(record)),
    ) {
        object.extend(extra);
    }
    value
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RequestsQuery {
    key: Option<String>,
    model: Option<String>,
    deployment: Option<String>,
    /// `ok`, `error`, or a status code.
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `GET /v1/crossbar/requests?key=&model=&deployment=&status=&since=&until=&limit=`.
pub(crate) async fn requests(
    State(state): State<AppState>,
    params: std::result::Result<Query<RequestsQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let params = query(params)?;
    let store = store(&state)?;
    let now = now_ms();
    let status = match non_empty(params.status).as_deref() {
        None | Some("all") => None,
        Some("ok") => Some(StatusFilter::Ok),
        Some("error" | "failed") => Some(StatusFilter::Failed),
        Some(code) => Some(StatusFilter::Exact(code.parse().map_err(|_| {
            Error::invalid_field("status", "`status` is `ok`, `error` or an HTTP status.")
        })?)),
    };
    let filter = RequestFilter {
        key_id: non_empty(params.key),
        model: non_empty(params.model),
        deployment: non_empty(params.deployment),
        status,
        since_ms: non_empty(params.since)
            .map(|s| instant_ms(&s, "since", now))
            .transpose()?,
        until_ms: non_empty(params.until)
            .map(|s| instant_ms(&s, "until", now))
            .transpose()?,
        limit: params.limit.unwrap_or(100).clamp(1, MAX_REQUESTS),
    };
    let records = store.requests(&filter).await.map_err(unavailable)?;
    let data: Vec<Value> = records.iter().map(request_json).collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// `GET /v1/crossbar/requests/{id}`.
pub(crate) async fn request(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let store = store(&state)?;
    let Some(record) = store.request(&id).await.map_err(unavailable)? else {
        return Err(Error::not_found(format!("No request `{id}` in the store.")).into());
    };
    Ok(Json(request_json(&record)))
}

/// Spend in one window against its budget.
#[derive(Debug, Serialize)]
struct Spend {
    requests: u64,
    tokens: u64,
    spent: String,
    spent_usd: f64,
    budget_usd: Option<f64>,
    /// Spent over budget, 0 to 1 and beyond.
    used: Option<f64>,
}

fn spend(found: Option<&KeySpend>, budget_pusd: Option<u64>) -> Spend {
    let (requests, tokens, cost) = found.map_or((0, 0, 0), |s| (s.requests, s.tokens, s.cost_pusd));
    Spend {
        requests,
        tokens,
        spent: format_usd(cost),
        spent_usd: pico_to_usd(cost),
        budget_usd: budget_pusd.map(pico_to_usd),
        used: budget_pusd.map(|b| {
            if b == 0 {
                1.0
            } else {
                (cost as f64 / b as f64 * 1000.0).round() / 1000.0
            }
        }),
    }
}

fn by_key(spend: Vec<KeySpend>) -> HashMap<Option<String>, KeySpend> {
    spend.into_iter().map(|s| (s.key_id.clone(), s)).collect()
}

/// `GET /v1/crossbar/keys`: each key's limits and its spend today, this month, in total and
/// in the last minute (against its rpm and tpm); `unkeyed` is traffic without a virtual key.
pub(crate) async fn keys(State(state): State<AppState>) -> Result<Json<Value>> {
    let store = store(&state)?;
    let now = now_ms();
    let (day, month) = day_and_month_start(now);
    let keys: Vec<KeyRecord> = store.list_keys().await.map_err(unavailable)?;
    let day_spend = by_key(store.spend_by_key(day).await.map_err(unavailable)?);
    let month_spend = by_key(store.spend_by_key(month).await.map_err(unavailable)?);
    let total_spend = by_key(store.spend_by_key(0).await.map_err(unavailable)?);
    let minute = by_key(
        store
            .spend_by_key(now - 60_000)
            .await
            .map_err(unavailable)?,
    );
    let data: Vec<Value> = keys
        .iter()
        .map(|key| {
            let id = Some(key.id.clone());
            let mut shown = key_json(key);
            if let Some(object) = shown.as_object_mut() {
                let last = minute.get(&id);
                object.insert(
                    "spend".to_owned(),
                    json!({
                        "day": spend(day_spend.get(&id), key.limits.budget_day_pusd),
                        "month": spend(month_spend.get(&id), key.limits.budget_month_pusd),
                        "total": spend(total_spend.get(&id), key.limits.budget_total_pusd),
                    }),
                );
                object.insert(
                    "last_minute".to_owned(),
                    json!({
                        "requests": last.map_or(0, |s| s.requests),
                        "tokens": last.map_or(0, |s| s.tokens),
                    }),
                );
            }
            shown
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "unkeyed": {
            "day": spend(day_spend.get(&None), None),
            "month": spend(month_spend.get(&None), None),
            "total": spend(total_spend.get(&None), None),
        },
    })))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WhatifQuery {
    since: Option<String>,
}

/// `GET /v1/crossbar/whatif?since=7d`: the recorded traffic re-priced on every deployment
/// of its model that the running gateway knows (as `crossbar whatif`).
pub(crate) async fn whatif(
    State(state): State<AppState>,
    params: std::result::Result<Query<WhatifQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let params = query(params)?;
    let store = store(&state)?;
    let now = now_ms();
    let since = now - duration_ms(params.since.as_deref().unwrap_or("7d"), "since")?;
    let records = store
        .usage_since(since, MAX_WHATIF_RECORDS)
        .await
        .map_err(unavailable)?;
    let truncated = records.len() >= MAX_WHATIF_RECORDS as usize;
    let candidates = whatif::candidates_from_views(&state.router.snapshot());
    let rows: Vec<Row> = whatif::reprice(&records, &candidates);
    Ok(Json(json!({
        "object": "list",
        "since_ms": since,
        "truncated": truncated,
        "data": rows,
    })))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunsQuery {
    limit: Option<u32>,
}

fn run_json(run: &RunRecord, tool_calls: u64) -> Value {
    json!({
        "id": run.id,
        "agent": run.agent,
        "task": run.task,
        "status": run.status,
        "created_ms": run.created_ms,
        "updated_ms": run.updated_ms,
        "steps": run.totals.steps,
        "tool_calls": tool_calls,
        "tokens": run.totals.tokens,
        "cost": format_usd(run.totals.cost_pusd),
        "cost_usd": pico_to_usd(run.totals.cost_pusd),
        "elapsed_ms": run.totals.elapsed_ms,
        "answer": run.answer,
    })
}

/// `GET /v1/crossbar/runs?limit=50`: agent runs from the journal, newest first, with their
/// status, steps, tool calls, tokens and cost.
pub(crate) async fn runs(
    State(state): State<AppState>,
    params: std::result::Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let params = query(params)?;
    let store = store(&state)?;
    let limit = params.limit.unwrap_or(50).clamp(1, MAX_REQUESTS);
    let runs = store.list_runs(limit).await.map_err(unavailable)?;
    let calls: HashMap<String, u64> = store
        .tool_calls_by_run(limit)
        .await
        .map_err(unavailable)?
        .into_iter()
        .collect();
    let data: Vec<Value> = runs
        .iter()
        .map(|run| run_json(run, calls.get(&run.id).copied().unwrap_or(0)))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// One model call of a run, with the tools it asked for.
#[derive(Debug, Default, Serialize)]
struct Step {
    step: u64,
    model: Option<String>,
    deployment: Option<String>,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    error: Option<String>,
    tools: Vec<Value>,
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
                current.tools.push(json!({
                    "name": text(entry, "name"),
                    "call_id": text(entry, "call_id"),
                    "is_error": entry.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                }));
            }
            _ => {}
        }
    }
    steps
}

/// `GET /v1/crossbar/runs/{id}`: one run, its journal entries and a per-step summary (model,
/// tokens, cost, tool calls).
pub(crate) async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let store = store(&state)?;
    let Some(run) = store.run(&id).await.map_err(unavailable)? else {
        return Err(Error::not_found(format!("No agent run `{id}` in the store.")).into());
    };
    let events = store.events(&id).await.map_err(unavailable)?;
    let entries: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap_or_else(|_| json!({ "kind": e.kind })))
        .collect();
    let tool_calls = entries
        .iter()
        .filter(|e| e.get("kind").and_then(Value::as_str) == Some("tool_started"))
        .count() as u64;
    let mut shown = run_json(&run, tool_calls);
    if let Some(object) = shown.as_object_mut() {
        object.insert("per_step".to_owned(), json!(steps(&entries)));
        let journal: Vec<Value> = events
            .iter()
            .zip(entries)
            .map(|(e, entry)| json!({ "seq": e.seq, "time_ms": e.time_ms, "kind": e.kind, "entry": entry }))
            .collect();
        object.insert("events".to_owned(), json!(journal));
    }
    Ok(Json(shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(latency_ms: u64, hedge: bool) -> AttemptRecord {
        AttemptRecord {
            latency_ms,
            hedge,
            ..AttemptRecord::default()
        }
    }

    #[test]
    fn retries_follow_each_other_and_hedges_race_to_the_end() {
        let record = UsageRecord {
            attempts: vec![attempt(30, false), attempt(100, false), attempt(40, true)],
            ..UsageRecord::default()
        };
        let view = request_view(&record);
        let spans: Vec<(u64, u64)> = view
            .attempts
            .iter()
            .map(|a| (a.start_ms, a.end_ms))
            .collect();
        assert_eq!(spans, [(0, 30), (30, 130), (90, 130)]);
        assert_eq!((view.retries, view.hedges), (1, 1));
    }

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
            steps[0].tools,
            [json!({"name": "calc", "call_id": "c1", "is_error": true})]
        );
        assert_eq!(steps[1].error.as_deref(), Some("503"));
    }

    #[test]
    fn durations_and_instants_parse() {
        assert_eq!(duration_ms("15m", "w").ok(), Some(900_000));
        assert!(duration_ms("15", "w").is_err());
        assert!(duration_ms("0s", "w").is_err());
        assert!(duration_ms("99d", "w").is_err());
        assert_eq!(
            instant_ms("1700000000000", "s", 0).ok(),
            Some(1_700_000_000_000)
        );
        assert_eq!(instant_ms("1m", "s", 100_000).ok(), Some(40_000));
    }
}

//! The JSON behind each dashboard page. Money is shown twice: as a float for charts
//! (`*_usd`) and as an exact decimal string (`cost`, `spent`) for reading.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use crossbar_core::Error;
use crossbar_core::pricing::{format_usd, pico_to_usd};
use crossbar_store::whatif::{self, Row};
use crossbar_store::{
    AttemptRecord, DashboardStore, KeyRecord, KeySpend, RequestFilter, StatusFilter, UsageRecord,
    UsageTags, now_ms,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::overview::{self, Overview, Window};
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::keys::day_and_month_start;
use crate::keys::teams::TeamView;
use crossbar_store::KeyView;

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

/// The keys a team admin may see (`None`: every key, for the other roles).
async fn visible_keys(
    store: &Arc<dyn DashboardStore>,
    principal: &Principal,
) -> Result<Option<HashSet<String>>> {
    let Some(team) = principal.confined() else {
        return Ok(None);
    };
    let keys = store.list_keys().await.map_err(unavailable)?;
    Ok(Some(
        keys.into_iter()
            .filter(|k| k.team_id.as_deref() == Some(team))
            .map(|k| k.id)
            .collect(),
    ))
}

/// Whether traffic under `key_id` is in `visible` (`None` sees all; keyless traffic is no
/// team's).
fn shows(visible: Option<&HashSet<String>>, key_id: Option<&String>) -> bool {
    visible.is_none_or(|set| key_id.is_some_and(|k| set.contains(k)))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(crate) struct OverviewQuery {
    window: Option<String>,
    buckets: Option<usize>,
}

/// `GET /v1/crossbar/overview?window=15m&buckets=60`.
pub(crate) async fn overview(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: std::result::Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Json<Overview>> {
    let params = query(params)?;
    let store = store(&state)?;
    let window = Window {
        now_ms: now_ms(),
        span_ms: duration_ms(params.window.as_deref().unwrap_or("15m"), "window")?,
        buckets: params.buckets.unwrap_or(60).clamp(1, 240),
    };
    let mut points = store
        .usage_points(window.since_ms(), MAX_POINTS)
        .await
        .map_err(unavailable)?;
    let truncated = points.len() >= MAX_POINTS as usize;
    if let Some(visible) = visible_keys(store, &principal).await? {
        points.retain(|p| shows(Some(&visible), p.key_id.as_ref()));
    }
    Ok(Json(overview::overview(&points, window, truncated)))
}

/// An attempt with its cost in USD and where it sits on the request's timeline.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AttemptView {
    #[serde(flatten)]
    attempt: AttemptRecord,
    cost: String,
    /// Offsets from the request's start. Retries and failovers follow each other; a hedge
    /// races the attempt it hedges and ends with it. The router records durations, not start
    /// times, so the gaps between retries (backoff) are not shown.
    start_ms: u64,
    end_ms: u64,
}

/// A stored request as the log shows it: the record's fields (money also in USD), its attempts
/// on a timeline, and its bodies when the route kept them.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct RequestView {
    request_id: String,
    time_ms: i64,
    key_id: Option<String>,
    api: String,
    model: String,
    route: Option<String>,
    deployment: Option<String>,
    provider: Option<String>,
    cloud: Option<String>,
    region: Option<String>,
    stream: bool,
    status: u16,
    error: Option<String>,
    input_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    cost_pusd: u64,
    latency_ms: u64,
    ttft_ms: Option<u64>,
    overhead_ms: u64,
    tags: UsageTags,
    cost: String,
    cost_usd: f64,
    attempts: Vec<AttemptView>,
    retries: usize,
    hedges: usize,
    /// `GET /v1/crossbar/requests/{id}` only, when the route kept the bodies (`payload_log`).
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Payload>,
}

/// A request's bodies, already masked when written.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Payload {
    request: Value,
    answer: Option<Value>,
}

fn request_view(record: &UsageRecord) -> RequestView {
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
                attempt: attempt.clone(),
                cost: format_usd(attempt.cost_pusd),
                start_ms,
                end_ms,
            }
        })
        .collect();
    let sequential = record.attempts.iter().filter(|a| !a.hedge).count();
    let r = record.clone();
    RequestView {
        request_id: r.request_id,
        time_ms: r.time_ms,
        key_id: r.key_id,
        api: r.api,
        model: r.model,
        route: r.route,
        deployment: r.deployment,
        provider: r.provider,
        cloud: r.cloud,
        region: r.region,
        stream: r.stream,
        status: r.status,
        error: r.error,
        input_tokens: r.input_tokens,
        cached_input_tokens: r.cached_input_tokens,
        cache_write_tokens: r.cache_write_tokens,
        output_tokens: r.output_tokens,
        reasoning_tokens: r.reasoning_tokens,
        cost_pusd: r.cost_pusd,
        latency_ms: r.latency_ms,
        ttft_ms: r.ttft_ms,
        overhead_ms: r.overhead_ms,
        tags: r.tags,
        cost: format_usd(record.cost_pusd),
        cost_usd: pico_to_usd(record.cost_pusd),
        attempts,
        retries: sequential.saturating_sub(1),
        hedges: record.attempts.len() - sequential,
        payload: None,
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

impl<T> List<T> {
    fn of(data: Vec<T>) -> Self {
        Self {
            object: "list",
            data,
        }
    }
}

pub(crate) type Requests = List<RequestView>;

#[derive(Debug, Default, Deserialize, JsonSchema)]
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
    Extension(principal): Extension<Principal>,
    params: std::result::Result<Query<RequestsQuery>, QueryRejection>,
) -> Result<Json<Requests>> {
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
    let records = match visible_keys(store, &principal).await? {
        None => store.requests(&filter).await.map_err(unavailable)?,
        // A team admin's: one query per key of the team (or the one it asked for, if the
        // team's), merged newest first.
        Some(visible) => {
            let asked: Vec<String> = match &filter.key_id {
                Some(key) if visible.contains(key) => vec![key.clone()],
                Some(_) => Vec::new(),
                None => visible.into_iter().collect(),
            };
            let mut merged = Vec::new();
            for key in asked {
                let one = RequestFilter {
                    key_id: Some(key),
                    ..filter.clone()
                };
                merged.extend(store.requests(&one).await.map_err(unavailable)?);
            }
            merged.sort_by_key(|r| std::cmp::Reverse(r.time_ms));
            merged.truncate(filter.limit as usize);
            merged
        }
    };
    Ok(Json(List::of(records.iter().map(request_view).collect())))
}

/// `GET /v1/crossbar/requests/{id}`.
pub(crate) async fn request(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<RequestView>> {
    let store = store(&state)?;
    let visible = visible_keys(store, &principal).await?;
    let found = store.request(&id).await.map_err(unavailable)?;
    // Another team's request, to a team admin: as if it were not there.
    let Some(record) = found.filter(|r| shows(visible.as_ref(), r.key_id.as_ref())) else {
        return Err(Error::not_found(format!("No request `{id}` in the store.")).into());
    };
    let mut view = request_view(&record);
    // Bodies, when the route kept them (`payload_log`): already masked when written.
    if let Some(payloads) = &state.payloads
        && let Some(payload) = payloads.get_payload(&id).await.map_err(unavailable)?
    {
        let parse = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
        view.payload = Some(Payload {
            request: parse(&payload.request),
            answer: payload.answer.as_deref().map(parse),
        });
    }
    Ok(Json(view))
}

/// Spend in one window against its budget.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Spend {
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

/// Spend today, this month and in total.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SpendWindows {
    day: Spend,
    month: Spend,
    total: Spend,
}

/// Requests and tokens in the last minute, against a key's rpm and tpm.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct LastMinute {
    requests: u64,
    tokens: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct KeyWithSpend {
    #[serde(flatten)]
    key: KeyView,
    spend: SpendWindows,
    last_minute: LastMinute,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Keys {
    #[schemars(extend("const" = "list"))]
    object: &'static str,
    data: Vec<KeyWithSpend>,
    /// Traffic without a virtual key; `null` for a team admin (it is no team's).
    unkeyed: Option<SpendWindows>,
}

/// `GET /v1/crossbar/keys`: each key's limits and its spend today, this month, in total and
/// in the last minute (against its rpm and tpm); `unkeyed` is traffic without a virtual key.
pub(crate) async fn keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Keys>> {
    let store = store(&state)?;
    let now = now_ms();
    let (day, month) = day_and_month_start(now);
    let mut keys: Vec<KeyRecord> = store.list_keys().await.map_err(unavailable)?;
    keys.retain(|k| principal.sees(k.team_id.as_deref()));
    let day_spend = by_key(store.spend_by_key(day).await.map_err(unavailable)?);
    let month_spend = by_key(store.spend_by_key(month).await.map_err(unavailable)?);
    let total_spend = by_key(store.spend_by_key(0).await.map_err(unavailable)?);
    let minute = by_key(
        store
            .spend_by_key(now - 60_000)
            .await
            .map_err(unavailable)?,
    );
    let data = keys
        .iter()
        .map(|key| {
            let id = Some(key.id.clone());
            let last = minute.get(&id);
            KeyWithSpend {
                key: KeyView::from(key),
                spend: SpendWindows {
                    day: spend(day_spend.get(&id), key.limits.budget_day_pusd),
                    month: spend(month_spend.get(&id), key.limits.budget_month_pusd),
                    total: spend(total_spend.get(&id), key.limits.budget_total_pusd),
                },
                last_minute: LastMinute {
                    requests: last.map_or(0, |s| s.requests),
                    tokens: last.map_or(0, |s| s.tokens),
                },
            }
        })
        .collect();
    // Keyless traffic is no team's: a team admin is not shown it.
    let unkeyed = principal.confined().is_none().then(|| SpendWindows {
        day: spend(day_spend.get(&None), None),
        month: spend(month_spend.get(&None), None),
        total: spend(total_spend.get(&None), None),
    });
    Ok(Json(Keys {
        object: "list",
        data,
        unkeyed,
    }))
}

/// A team with its limits, its live keys' count and what they spent.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TeamWithSpend {
    #[serde(flatten)]
    team: TeamView,
    /// Live (unrevoked) keys.
    keys: usize,
    spend: SpendWindows,
}

pub(crate) type Teams = List<TeamWithSpend>;

/// `GET /v1/crossbar/teams`: each team (a team admin's own only) with its limits and what
/// its keys together spent today, this month and in total.
pub(crate) async fn teams(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Teams>> {
    let store = store(&state)?;
    let Some(org) = store.org() else {
        return Ok(Json(List::of(Vec::new())));
    };
    let now = now_ms();
    let (day, month) = day_and_month_start(now);
    let teams = org.list_teams().await.map_err(unavailable)?;
    let keys: Vec<KeyRecord> = store.list_keys().await.map_err(unavailable)?;
    let mut windows = Vec::new();
    for since in [day, month, 0] {
        windows.push(by_key(
            store.spend_by_key(since).await.map_err(unavailable)?,
        ));
    }
    let data = teams
        .iter()
        .filter(|t| principal.sees(Some(&t.id)))
        .map(|team| {
            let members: Vec<&KeyRecord> = keys
                .iter()
                .filter(|k| k.team_id.as_deref() == Some(&team.id))
                .collect();
            let sum = |window: &HashMap<Option<String>, KeySpend>| {
                members.iter().fold(KeySpend::default(), |mut total, k| {
                    if let Some(s) = window.get(&Some(k.id.clone())) {
                        total.requests += s.requests;
                        total.tokens += s.tokens;
                        total.cost_pusd += s.cost_pusd;
                    }
                    total
                })
            };
            let limits = team.limits;
            TeamWithSpend {
                team: TeamView::from(team),
                keys: members.iter().filter(|k| k.revoked_ms.is_none()).count(),
                spend: SpendWindows {
                    day: spend(Some(&sum(&windows[0])), limits.budget_day_pusd),
                    month: spend(Some(&sum(&windows[1])), limits.budget_month_pusd),
                    total: spend(Some(&sum(&windows[2])), limits.budget_total_pusd),
                },
            }
        })
        .collect();
    Ok(Json(List::of(data)))
}

/// The roles, by the names the API uses.
fn role_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = Role::ALL.into_iter().map(Role::as_str).collect();
    schemars::json_schema!({ "type": "string", "enum": names })
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Whoami {
    #[schemars(extend("const" = "crossbar.whoami"))]
    object: &'static str,
    #[schemars(schema_with = "role_schema")]
    role: Role,
    /// A `team-admin`'s team.
    team: Option<String>,
    /// For the audit log: `admin`, or `token:<id>`.
    actor: String,
}

/// `GET /v1/crossbar/whoami`: the caller's role (and team), so the page shows only what it
/// may use. The server enforces the same regardless.
pub(crate) async fn whoami(Extension(principal): Extension<Principal>) -> Json<Whoami> {
    Json(Whoami {
        object: "crossbar.whoami",
        role: principal.role,
        team: principal.team,
        actor: principal.actor,
    })
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(crate) struct WhatifQuery {
    since: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Whatif {
    #[schemars(extend("const" = "list"))]
    object: &'static str,
    since_ms: i64,
    /// More requests than are re-priced: the oldest were left out.
    truncated: bool,
    data: Vec<Row>,
}

/// `GET /v1/crossbar/whatif?since=7d`: the recorded traffic re-priced on every deployment
/// of its model that the running gateway knows (as `crossbar whatif`).
pub(crate) async fn whatif(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: std::result::Result<Query<WhatifQuery>, QueryRejection>,
) -> Result<Json<Whatif>> {
    let params = query(params)?;
    let store = store(&state)?;
    let now = now_ms();
    let since = now - duration_ms(params.since.as_deref().unwrap_or("7d"), "since")?;
    let mut records = store
        .usage_since(since, MAX_WHATIF_RECORDS)
        .await
        .map_err(unavailable)?;
    let truncated = records.len() >= MAX_WHATIF_RECORDS as usize;
    if let Some(visible) = visible_keys(store, &principal).await? {
        records.retain(|r| shows(Some(&visible), r.key_id.as_ref()));
    }
    let candidates = whatif::candidates_from_views(&state.router.snapshot());
    let rows: Vec<Row> = whatif::reprice(&records, &candidates);
    Ok(Json(Whatif {
        object: "list",
        since_ms: since,
        truncated,
        data: rows,
    }))
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

    /// The log's view names every field of the stored record (a field the store gains must be
    /// added to the view, or the dashboard would silently stop showing it).
    #[test]
    fn the_request_view_shows_every_stored_field() {
        let record = UsageRecord {
            attempts: vec![attempt(30, false)],
            ..UsageRecord::default()
        };
        let stored = serde_json::to_value(&record).unwrap_or_default();
        let shown = serde_json::to_value(request_view(&record)).unwrap_or_default();
        let (Some(stored), Some(shown)) = (stored.as_object(), shown.as_object()) else {
            unreachable!("both are objects");
        };
        for (field, value) in stored {
            assert!(shown.contains_key(field), "`{field}` is not shown");
            if field != "attempts" {
                assert_eq!(&shown[field], value, "{field}");
            }
        }
        // An attempt shows its stored fields too.
        let attempt = &shown["attempts"][0];
        for field in stored["attempts"][0].as_object().into_iter().flatten() {
            assert_eq!(&attempt[field.0], field.1);
        }
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

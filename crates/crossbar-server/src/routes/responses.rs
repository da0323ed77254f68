//! `POST /v1/responses` (streamed and not), `GET /v1/responses/{id}`,
//! `GET /v1/responses/{id}/input_items` and `DELETE /v1/responses/{id}`: the OpenAI Responses API, served by any deployment of any
//! provider, so clients built on it (the OpenAI Agents SDK) work unchanged.
//!
//! `store` (true unless the client says otherwise) keeps the `Response` and the conversation it
//! ends, so `previous_response_id` can continue it. They go to the gateway's store when it has
//! one, otherwise to a bounded in-process memory (lost on restart; not shared by replicas).
//! Stored responses belong to the virtual key that created them: other keys get a 404.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use crossbar_core::chat::{ChatResponse, Message};
use crossbar_core::dialects::responses::{self, Accumulator, Params, StreamEncoder};
use crossbar_core::router::Prompt;
use crossbar_core::{ChatStream, Error};
use crossbar_store::{ResponseStore, stored_response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::cache::{self, Hit, Lookup};
use super::payload_log::PayloadLog;
use super::{
    body, checked_answer, checked_policies, checked_stream, decode, end_user, json_body,
    preferences, routed_headers, stream, webhook_request,
};
use crate::app::AppState;
use crate::auth::CallerKey;
use crate::error::ApiError;
use crate::metering::Meter;
use crate::request_id::RequestId;

/// Whose responses a request sees: its virtual key's, or the keyless callers' (empty).
fn owner(caller: Option<&Extension<CallerKey>>) -> String {
    caller
        .map(|Extension(CallerKey(id))| id.clone())
        .unwrap_or_default()
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("Response with id '{id}' not found.")).with_param("response_id")
}

fn store_error(e: crossbar_store::StoreError) -> Error {
    Error::internal(format!("The response store failed: {e}"))
}

/// The conversation a stored response ended.
async fn conversation(
    store: &dyn ResponseStore,
    id: &str,
    owner: &str,
) -> Result<Vec<Message>, Error> {
    let stored = store
        .get_response(id, owner)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            Error::invalid_field(
                "previous_response_id",
                format!("Previous response with id '{id}' not found."),
            )
            .with_code("previous_response_not_found")
        })?;
    serde_json::from_str(&stored.conversation)
        .map_err(|e| Error::internal(format!("A stored conversation is unreadable: {e}")))
}

/// What storing an answer needs once it is complete.
struct Save {
    store: Arc<dyn ResponseStore>,
    owner: String,
    params: Params,
    /// The conversation before the answer: stored history, then this request's input.
    before: Vec<Message>,
    /// This request's own input items, listed by `GET /v1/responses/{id}/input_items`.
    input_items: Vec<Value>,
}

impl Save {
    async fn run(self, answer: &ChatResponse, object: &Value) -> Result<(), Error> {
        let mut conversation = self.before;
        conversation.push(answer.message.clone());
        let conversation = serde_json::to_string(&conversation)
            .map_err(|e| Error::internal(format!("encoding a conversation: {e}")))?;
        let input = Value::Array(self.input_items).to_string();
        let record = stored_response(
            &self.params.id,
            &self.owner,
            object.to_string(),
            conversation,
            input,
        );
        self.store.put_response(&record).await.map_err(store_error)
    }
}

/// Passes a stream through, and stores its answer when it ends complete, before the encoder
/// writes `response.completed`: a client that saw it can continue from it at once. A store
/// failure then fails the stream instead.
fn storing(mut events: ChatStream, save: Save, model: String) -> ChatStream {
    Box::pin(async_stream::stream! {
        let mut answer = Accumulator::default();
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
        let answer = answer.response(&model);
        let object = responses::encode_response(&save.params, &answer);
        if let Err(error) = save.run(&answer, &object).await {
            yield Err(error);
        }
    })
}

/// The same pipeline as chat completions and messages (see `chat_like`): the route's policies
/// and guardrail webhook on the request, the response cache, the answer's guardrails, usage
/// notes and payload logs; then the answer as a `Response` (stored when `store`), whether it came
/// from a deployment or the cache.
pub(crate) async fn create(
    State(state): State<AppState>,
    meter: Meter,
    caller: Option<Extension<CallerKey>>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes)?;
    let ingress = decode(raw, responses::decode_request).await?;
    let owner = owner(caller.as_ref());
    let key_id = caller.map(|Extension(CallerKey(id))| id);
    let history = match ingress.previous_response_id() {
        Some(id) => conversation(state.responses.as_ref(), id, &owner).await?,
        None => Vec::new(),
    };
    let mut request = ingress.chat_request(&history)?;
    // What the gateway remembers of the conversation stays with the caller's key.
    request.scope = key_id.clone();
    let directive = cache::directive(&headers)?;
    let mut preferences = preferences(&headers)?;
    meter.end_user(end_user(&headers, &request));
    let max_tokens = request.max_tokens.map(u64::from);
    meter
        .admit(
            &state.router,
            &request.model,
            request.stream,
            || Prompt::of_chat(&request),
            max_tokens,
            &mut preferences,
        )
        .await?;
    // After admission, so the route is chosen (and a 404 worded) within the caller's key.
    let policies = checked_policies(
        &state,
        &mut request,
        &preferences,
        responses::unknown_field_error,
        &meter,
    )?;
    webhook_request(&policies, &mut request, &meter).await?;
    let mut log = PayloadLog::new(
        state.payloads.as_ref(),
        &policies,
        &request,
        request_id.map(|Extension(RequestId(id))| id),
        key_id.as_deref(),
    );
    // Keyed by the conversation as it leaves (stored history included, masked, rewritten).
    let lookup = Lookup::new(
        &state.caches,
        &policies,
        &request,
        directive,
        key_id.as_deref(),
        meter.team_id().as_deref(),
    );
    let mut before = history;
    before.extend(ingress.input.iter().cloned());
    let save = ingress.params.store.then(|| Save {
        store: Arc::clone(&state.responses),
        owner,
        params: ingress.params.clone(),
        before,
        input_items: ingress.input_items.clone(),
    });
    // A hit is a `Response` like any other: its own id, and stored when asked.
    if let Some(lookup) = &lookup
        && let Some((hit, age)) = lookup.answer(&request, &policies, &meter, &mut log).await?
    {
        let mut response = match hit {
            Hit::Whole(answer) => whole(&ingress.params, &answer, save).await?,
            Hit::Stream(events) => streamed(events, ingress.params, save, &request.model),
        };
        cache::hit_headers(&mut response, &policies.route, age);
        return Ok(response);
    }
    let mut response = if !request.stream {
        let mut routed = state.router.chat_with(&request, &preferences).await?;
        meter.routed(&routed, routed.value.usage);
        checked_answer(
            &policies,
            &request,
            &mut routed.value,
            &meter,
            log.as_mut(),
            lookup.as_ref(),
        )
        .await?;
        let mut response = whole(&ingress.params, &routed.value, save).await?;
        routed_headers(&mut response, &routed);
        response
    } else {
        let mut routed = state
            .router
            .chat_stream_with(&request, &preferences)
            .await?;
        // The events go into the body; the rest of `routed` still says who answered.
        let events = std::mem::replace(&mut routed.value, Box::pin(futures::stream::empty()));
        meter.routed(&routed, None);
        let events = checked_stream(events, &policies, &meter, lookup.clone(), log);
        let mut response = streamed(events, ingress.params, save, &request.model);
        routed_headers(&mut response, &routed);
        response
    };
    if lookup.is_some() {
        cache::headers(&mut response, false, None);
    }
    Ok(response)
}

/// A whole answer as a `Response` object, stored first when the request asked for it.
async fn whole(
    params: &Params,
    answer: &ChatResponse,
    save: Option<Save>,
) -> Result<Response, Error> {
    let object = responses::encode_response(params, answer);
    if let Some(save) = save {
        save.run(answer, &object).await?;
    }
    Ok(json_body(object.to_string().into_bytes()))
}

/// A stream (already through the guardrails) as Responses events, its answer stored at its
/// end when the request asked for it.
fn streamed(events: ChatStream, params: Params, save: Option<Save>, model: &str) -> Response {
    let events = match save {
        Some(save) => storing(events, save, model.to_owned()),
        None => events,
    };
    stream::response(events, StreamEncoder::new(params, model))
}

pub(crate) async fn retrieve(
    State(state): State<AppState>,
    caller: Option<Extension<CallerKey>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stored = state
        .responses
        .get_response(&id, &owner(caller.as_ref()))
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&id))?;
    Ok(json_body(stored.response.into_bytes()))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Option<Extension<CallerKey>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let deleted = state
        .responses
        .delete_response(&id, &owner(caller.as_ref()))
        .await
        .map_err(store_error)?;
    if !deleted {
        return Err(not_found(&id).into());
    }
    Ok(json_body(
        responses::deleted_object(&id).to_string().into_bytes(),
    ))
}

/// One page of `GET /v1/responses/{id}/input_items`, as OpenAI's `listInputItems` takes it.
#[derive(Debug, PartialEq)]
struct ItemsPage {
    limit: usize,
    ascending: bool,
    after: Option<String>,
}

impl ItemsPage {
    /// Unknown parameters and bad values are a 400 naming the parameter, as OpenAI does.
    /// `include` is accepted and ignored: input items carry nothing extra to include.
    fn parse(pairs: Vec<(String, String)>) -> Result<Self, Error> {
        let mut page = Self {
            limit: 20,
            ascending: false,
            after: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => {
                    page.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| {
                            Error::invalid_field(
                                "limit",
                                "Invalid 'limit': expected an integer between 1 and 100.",
                            )
                        })?;
                }
                "order" => {
                    page.ascending = match value.as_str() {
                        "asc" => true,
                        "desc" => false,
                        _ => {
                            return Err(Error::invalid_field(
                                "order",
                                "Invalid 'order': expected 'asc' or 'desc'.",
                            ));
                        }
                    };
                }
                "after" => page.after = Some(value),
                "include" | "include[]" => {}
                _ => {
                    return Err(Error::invalid_field(
                        &key,
                        format!("Unrecognized request argument supplied: {key}"),
                    )
                    .with_code("unknown_parameter"));
                }
            }
        }
        Ok(page)
    }

    /// The `ResponseItemList` of `items` (stored oldest first) this page selects.
    fn list(&self, mut items: Vec<Value>) -> Result<Value, Error> {
        if !self.ascending {
            items.reverse();
        }
        let start = match &self.after {
            None => 0,
            Some(after) => {
                items
                    .iter()
                    .position(|item| item["id"] == after.as_str())
                    .ok_or_else(|| {
                        Error::invalid_field(
                            "after",
                            format!("No input item with id '{after}' in this response."),
                        )
                    })?
                    + 1
            }
        };
        let rest = items.split_off(start.min(items.len()));
        let has_more = rest.len() > self.limit;
        let data: Vec<Value> = rest.into_iter().take(self.limit).collect();
        let id = |item: Option<&Value>| item.map_or(Value::Null, |i| i["id"].clone());
        Ok(json!({
            "object": "list",
            "first_id": id(data.first()),
            "last_id": id(data.last()),
            "has_more": has_more,
            "data": data,
        }))
    }
}

pub(crate) async fn input_items(
    State(state): State<AppState>,
    caller: Option<Extension<CallerKey>>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| Error::invalid_request(format!("Invalid query: {e}")))?;
    let page = ItemsPage::parse(pairs)?;
    let stored = state
        .responses
        .get_response(&id, &owner(caller.as_ref()))
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&id))?;
    let items: Vec<Value> = serde_json::from_str(&stored.input)
        .map_err(|e| Error::internal(format!("Stored input items are unreadable: {e}")))?;
    Ok(json_body(page.list(items)?.to_string().into_bytes()))
}

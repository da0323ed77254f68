//! `GET /openapi.json`: Crossbar's own API (the admin API, the dashboard's JSON, the
//! deployments, configuration and runs endpoints, the probes) as an OpenAPI 3.1 document,
//! assembled from the route tables the routers are built from, each row's [`Doc`] naming the
//! Rust types of its body, query and answer. The schemas come from those types (schemars 1
//! emits JSON Schema 2020-12, which OpenAPI 3.1's schema objects are), so a field a handler
//! gains is in the document with it, and a table's route cannot be served without being
//! described. (The probes and this document are described here; the model APIs follow their
//! providers' published specifications and are left out.)
//!
//! Answers are described strictly (an object admits only its named fields), so that a test
//! validating real answers against the document catches a field added outside the types.
//! Open, like `/healthz`: the document holds no secrets. Built once, when the app is.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::auth::{Access, Gate, Role, Rule};

/// A schema made by the generator of its side (answers, or bodies and queries).
pub(crate) type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What an endpoint answers when it succeeds.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    Json(SchemaFn),
    /// A body that is not JSON, by its media type (`text/plain`, `text/event-stream`...).
    Text(&'static str),
    /// A redirect, no body.
    Redirect,
}

/// Who may call an endpoint, for the document's `security`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Security {
    /// Nothing (probes, this document).
    Open,
    /// `Authorization: Bearer`: a gateway key, a virtual key or an admin token, as the gate says.
    Bearer,
    /// An admin token as a bearer token, or as the password of HTTP Basic auth.
    BearerOrBasic,
}

impl Security {
    /// What a gate asks once the gateway has keys (an open gateway admits its own machine).
    fn of(gate: Gate) -> Self {
        match gate {
            Gate::Keys | Gate::KeysOrAdmin | Gate::Metrics => Self::Bearer,
            Gate::Open => Self::Open,
        }
    }
}

/// One route table row's description.
#[derive(Clone, Copy)]
pub(crate) struct Doc {
    pub summary: &'static str,
    pub request: Option<SchemaFn>,
    pub query: Option<SchemaFn>,
    pub answer: Answer,
    /// The statuses the answer comes with (the first is the usual one).
    pub ok: &'static [u16],
    /// The error statuses it can answer, each with the shared error body.
    pub errors: &'static [u16],
    /// Request headers it reads beyond authorization: name and what it does.
    pub headers: &'static [(&'static str, &'static str)],
}

impl Doc {
    /// A JSON answer of type `T` with 200, and the errors every guarded endpoint can answer.
    pub(crate) fn answers<T: JsonSchema>(summary: &'static str) -> Self {
        Self {
            summary,
            request: None,
            query: None,
            answer: Answer::Json(schema_of::<T>),
            ok: &[200],
            errors: &[401, 403, 404],
            headers: &[],
        }
    }

    /// A body that is not JSON.
    pub(crate) fn text(summary: &'static str, media_type: &'static str) -> Self {
        Self {
            answer: Answer::Text(media_type),
            ..Self::answers::<()>(summary)
        }
    }

    pub(crate) fn redirect(summary: &'static str) -> Self {
        Self {
            answer: Answer::Redirect,
            ok: &[308],
            ..Self::answers::<()>(summary)
        }
    }

    /// With a JSON request body of type `T`.
    pub(crate) fn body<T: JsonSchema>(self) -> Self {
        Self {
            request: Some(schema_of::<T>),
            ..self
        }
    }

    /// With query parameters: the fields of `T`.
    pub(crate) fn query<T: JsonSchema>(self) -> Self {
        Self {
            query: Some(schema_of::<T>),
            ..self
        }
    }

    pub(crate) fn ok(self, ok: &'static [u16]) -> Self {
        Self { ok, ..self }
    }

    pub(crate) fn errors(self, errors: &'static [u16]) -> Self {
        Self { errors, ..self }
    }

    pub(crate) fn headers(self, headers: &'static [(&'static str, &'static str)]) -> Self {
        Self { headers, ..self }
    }
}

/// A route table row: method, path, handler and description.
pub(crate) type Endpoint = (&'static str, &'static str, MethodRouter<AppState>, Doc);

/// One operation of the document.
struct Operation {
    method: &'static str,
    path: &'static str,
    doc: Doc,
    security: Security,
    /// The admin-token roles that may call it, for the admin and dashboard tables.
    roles: Option<Vec<&'static str>>,
}

fn ruled(
    table: Vec<(Rule, MethodRouter<AppState>, Doc)>,
    security: Security,
) -> impl Iterator<Item = Operation> {
    table.into_iter().map(move |(rule, _, doc)| Operation {
        method: rule.method,
        path: rule.path,
        doc,
        security,
        roles: Some(roles(rule.access)),
    })
}

fn roles(access: Access) -> Vec<&'static str> {
    Role::ALL
        .into_iter()
        .filter(|role| crate::auth::allowed(*role, access))
        .map(Role::as_str)
        .collect()
}

fn plain(table: Vec<Endpoint>, security: Security) -> impl Iterator<Item = Operation> {
    table
        .into_iter()
        .map(move |(method, path, _, doc)| Operation {
            method,
            path,
            doc,
            security,
            roles: None,
        })
}

/// `/healthz`'s answer.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Health {
    /// Always `ok`: the process answers.
    #[schemars(extend("const" = "ok"))]
    pub status: &'static str,
}

/// Every operation the document describes: the admin and dashboard tables, the app's gated
/// groups (`/v1/crossbar/*`, `/metrics`), and the open probes and this document.
fn operations() -> Vec<Operation> {
    let open = vec![
        (
            "GET",
            "/healthz",
            Doc::answers::<Health>("Whether the process answers.").errors(&[]),
        ),
        (
            "GET",
            "/readyz",
            Doc::answers::<crate::routes::ready::Readiness>(
                "Whether this replica can take traffic (503 when it has no deployment).",
            )
            .ok(&[200, 503])
            .errors(&[]),
        ),
        (
            "GET",
            "/openapi.json",
            Doc::answers::<Map<String, Value>>("This document.").errors(&[]),
        ),
    ];
    ruled(crate::admin::documented(), Security::Bearer)
        .chain(ruled(
            crate::routes::dashboard::documented(),
            Security::BearerOrBasic,
        ))
        .chain(
            crate::app::groups()
                .into_iter()
                .flat_map(|(gate, table)| plain(table, Security::of(gate))),
        )
        .chain(open.into_iter().map(|(method, path, doc)| Operation {
            method,
            path,
            doc,
            security: Security::Open,
            roles: None,
        }))
        .collect()
}

/// The shared error body: OpenAI's shape, which every endpoint here answers errors in.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A stable code for programs, e.g. `admin_disabled`.
    pub code: Option<String>,
}

/// Answers admit only the fields their types name: an object with named properties and no
/// word on others gets `additionalProperties: false`.
#[derive(Clone)]
struct Strict;

impl Transform for Strict {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        if let Some(object) = schema.as_object_mut()
            && object.contains_key("properties")
            && !object.contains_key("additionalProperties")
            && !object.contains_key("unevaluatedProperties")
        {
            object.insert("additionalProperties".to_owned(), Value::Bool(false));
        }
    }
}

const COMPONENTS: &str = "/components/schemas";

/// The generators: answers as serialized (strict), bodies and queries as deserialized.
struct Generators {
    answers: SchemaGenerator,
    inputs: SchemaGenerator,
}

impl Generators {
    fn new() -> Self {
        let settings = || {
            SchemaSettings::draft2020_12().with(|s| {
                s.definitions_path = COMPONENTS.into();
                s.meta_schema = None;
            })
        };
        Self {
            answers: settings()
                .for_serialize()
                .with_transform(Strict)
                .into_generator(),
            inputs: settings().for_deserialize().into_generator(),
        }
    }

    fn answer(&mut self, make: SchemaFn) -> Value {
        let mut schema = make(&mut self.answers);
        Strict.transform(&mut schema);
        schema.to_value()
    }

    fn components(mut self) -> Map<String, Value> {
        let mut all = self.answers.take_definitions(true);
        for (name, schema) in self.inputs.take_definitions(true) {
            match all.get(&name) {
                // A type both sent and received: the answer's (stricter) schema stands only
                // if the two agree; otherwise the input gets its own name.
                Some(existing) if *existing != schema => {
                    all.insert(format!("{name}Input"), schema);
                }
                _ => {
                    all.insert(name, schema);
                }
            }
        }
        all
    }
}

/// The path's `{params}`, each a string.
fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({
                "name": name.trim_start_matches('*'),
                "in": "path",
                "required": true,
                "schema": {"type": "string"},
            })
        })
        .collect()
}

/// A query type's fields as parameters (none is required by these endpoints unless its type
/// says so).
fn query_params(make: SchemaFn) -> Vec<Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .for_deserialize()
        .into_generator();
    let schema = make(&mut generator).to_value();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema["properties"]
        .as_object()
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| {
                    // An absent parameter is the `null` of its optional field.
                    let mut property = property.clone();
                    if let Some(Value::Array(types)) = property.get_mut("type") {
                        types.retain(|t| t != "null");
                        if let [only] = types.as_slice() {
                            property["type"] = only.clone();
                        }
                    }
                    let mut parameter = json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": property,
                    });
                    if let Some(text) = property.get("description") {
                        parameter["description"] = text.clone();
                    }
                    parameter
                })
                .collect()
        })
        .unwrap_or_default()
}

fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Answer")
}

/// The group an operation is listed under.
fn tag(op: &Operation) -> &'static str {
    let path = op.path;
    if path.starts_with("/admin/") {
        "admin"
    } else if path.starts_with("/v1/crossbar/runs") {
        "runs"
    } else if op.security == Security::BearerOrBasic {
        "dashboard"
    } else if path.starts_with("/v1/crossbar/") {
        "gateway"
    } else {
        "operations"
    }
}

/// `get_admin_teams_id` for `GET /admin/teams/{id}`: an identifier, as client generators want
/// (`/ui/` is `get_ui_slash`, apart from `/ui`).
fn operation_id(method: &str, path: &str) -> String {
    let words = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .chain(path.ends_with('/').then_some("slash"));
    std::iter::once(method.to_ascii_lowercase())
        .chain(words.map(str::to_owned))
        .collect::<Vec<_>>()
        .join("_")
}

fn operation(op: &Operation, generators: &mut Generators) -> Value {
    let doc = &op.doc;
    let mut responses = Map::new();
    for status in doc.ok {
        let response = match doc.answer {
            Answer::Json(make) => json!({
                "description": reason(*status),
                "content": {"application/json": {"schema": generators.answer(make)}},
            }),
            Answer::Text(media_type) => json!({
                "description": reason(*status),
                "content": {media_type: {"schema": {"type": "string"}}},
            }),
            Answer::Redirect => json!({"description": reason(*status)}),
        };
        responses.insert(status.to_string(), response);
    }
    for status in doc.errors {
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/Error{status}")}),
        );
    }
    let mut parameters = path_params(op.path);
    if let Some(make) = doc.query {
        parameters.extend(query_params(make));
    }
    parameters.extend(doc.headers.iter().map(|(name, description)| {
        json!({
            "name": name,
            "in": "header",
            "required": false,
            "description": description,
            "schema": {"type": "string"},
        })
    }));
    let mut value = json!({
        "summary": doc.summary,
        "operationId": operation_id(op.method, op.path),
        "responses": responses,
        "security": match op.security {
            Security::Open => json!([]),
            Security::Bearer => json!([{"bearer": []}]),
            Security::BearerOrBasic => json!([{"bearer": []}, {"basic": []}]),
        },
    });
    if !parameters.is_empty() {
        value["parameters"] = Value::Array(parameters);
    }
    if let Some(make) = doc.request {
        value["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": make(&mut generators.inputs).to_value()}},
        });
    }
    value["tags"] = json!([tag(op)]);
    if let Some(roles) = &op.roles {
        value["x-crossbar-roles"] = json!(roles);
    }
    value
}

fn build() -> Value {
    let operations = operations();
    let mut generators = Generators::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut errors: Vec<u16> = Vec::new();
    for op in &operations {
        errors.extend(op.doc.errors);
        let path = op.path.replace("{*", "{");
        paths.entry(path).or_default().insert(
            op.method.to_ascii_lowercase(),
            operation(op, &mut generators),
        );
    }
    errors.sort_unstable();
    errors.dedup();
    let error = generators.answer(schema_of::<ErrorBody>);
    let responses: Map<String, Value> = errors
        .into_iter()
        .map(|status| {
            (
                format!("Error{status}"),
                json!({
                    "description": reason(status),
                    "content": {"application/json": {"schema": error}},
                }),
            )
        })
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Crossbar",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Crossbar's own API: the admin API, the dashboard's JSON, the \
                deployments, configuration and agent-runs endpoints, and the probes. The model \
                APIs Crossbar serves (`/v1/chat/completions`, `/v1/messages`, `/v1/embeddings`, \
                `/v1/responses`, `/v1/models`...) follow their providers' published \
                specifications and are not described here. Generated from the gateway's types.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "tags": [
            {"name": "admin", "description": "Keys, teams, scoped admin tokens, the audit log, reloads."},
            {"name": "dashboard", "description": "The dashboard's pages and the JSON behind them."},
            {"name": "gateway", "description": "The router's live view and the configuration's version."},
            {"name": "runs", "description": "Agent runs queued for workers, their journals and events."},
            {"name": "operations", "description": "Probes, metrics and this document."},
        ],
        "paths": paths,
        "components": {
            "schemas": generators.components(),
            "responses": responses,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A gateway or virtual key (deployments, runs), or an admin \
                        token: the root `admin.token` or a scoped one (admin API, dashboard).",
                },
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The dashboard's: an admin token as the password, any user name.",
                },
            },
        },
    })
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// `GET /openapi.json`.
pub(crate) async fn serve() -> Response {
    let mut response = Json(document()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// A table's routes (several rows may share a path, each with its method).
pub(crate) fn mount(table: Vec<Endpoint>) -> axum::Router<AppState> {
    table
        .into_iter()
        .fold(axum::Router::new(), |router, (_, path, methods, _)| {
            router.route(path, methods)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves_and_answers_are_strict() {
        let doc = document();
        if std::env::var_os("CROSSBAR_PRINT_OPENAPI").is_some() {
            println!("{doc:#}");
        }
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(found.len() > 40, "{}", found.len());
        for target in found {
            let pointer = target.strip_prefix('#').unwrap_or(target);
            assert!(doc.pointer(pointer).is_some(), "unresolved {target}");
        }
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["KeyView"]["additionalProperties"],
            Value::Bool(false)
        );
        // Flattened: the key's fields and the secret, nothing else.
        let created = &schemas["CreatedKey"];
        assert_eq!(created["additionalProperties"], Value::Bool(false));
        assert!(created["properties"]["key"].is_object());
        assert!(created["properties"]["budget_usd_day"].is_object());
    }
}

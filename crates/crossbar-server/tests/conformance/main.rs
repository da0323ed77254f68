//! The conformance matrix: every ingress dialect (OpenAI Chat Completions, Anthropic Messages,
//! OpenAI Responses) × every provider kind × every case, through a real gateway in front of
//! simulated providers that validate requests the way the real services do. Every successful
//! cell is held to what the simulator actually answered (its recorded response): the same text,
//! the same tool calls with the same arguments, the same token counts; the system prompt must
//! land in the provider's system field only, and tool-error flags must map both ways. Every
//! upstream body is validated against the published spec of its wire (OpenAI's OpenAPI for
//! Chat Completions and Responses, AWS's Smithy model for Converse). Cells that cannot work are
//! listed in [`expectation`] with the failure they must show; cells the harness cannot express
//! are not run and not counted.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures fail the test"
)]

mod client;
mod upstream;

use std::fmt::Write as _;

use client::{Call, Finish, Ingress, Reply, Spec, Turn};
use crossbar_sim::{RecordedRequest, SimConfig, SimDialect, SimServer};
use crossbar_testkit::gateway::TestGateway;
use crossbar_testkit::{openapi, providers, smithy};
use serde_json::{Value, json};
use upstream::Wire;

/// Every case, in the order they run.
const CASES: &[&str] = &[
    "text",
    "system",
    "multi_turn",
    "stream",
    "tool_call",
    "parallel_tool_calls",
    "tool_result",
    "tool_error",
    "image",
    "document",
    "json_schema",
    "stop_sequence",
    "max_tokens",
    "usage_cached",
    "upstream_4xx",
    "upstream_5xx",
    "midstream_error",
    "cut_stream",
    // Last: the router then rightly avoids the deployment until its Retry-After has passed.
    "upstream_429",
];

/// What a cell must do when it is not simply expected to pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The gateway refuses the request with this status and message, and this `param` where the
    /// ingress's error body has one (an Anthropic error body has none).
    Refused {
        status: u16,
        param: &'static str,
        message: &'static str,
    },
    /// The request succeeds but reports no cached tokens: these providers cache only at
    /// explicit breakpoints, which the ingress dialect cannot express.
    NoCache,
    /// The ingress dialect has no way to ask for this: the cell is neither run nor counted.
    NotExpressible,
}

/// Combinations that cannot work, and how they must fail.
fn expectation(provider: &str, ingress: Ingress, case: &str) -> Option<Expect> {
    match (provider, ingress, case) {
        // The Responses API has no stop sequences.
        (_, Ingress::Responses, "stop_sequence") => Some(Expect::NotExpressible),
        // ... so a Responses upstream cannot honour them: a 400 naming the field.
        (
            "openai-responses" | "bedrock-mantle-responses" | "vertex-openai-responses",
            Ingress::OpenAi | Ingress::Anthropic,
            "stop_sequence",
        ) => Some(Expect::Refused {
            status: 400,
            param: "stop",
            message: "Stop sequences are not supported by Responses API deployments.",
        }),
        (
            "anthropic"
            | "vertex-anthropic"
            | "foundry-anthropic"
            | "bedrock-mantle-anthropic"
            | "bedrock",
            Ingress::OpenAi | Ingress::Responses,
            "usage_cached",
        ) => Some(Expect::NoCache),
        _ => None,
    }
}

/// Cases whose reply is held to the simulator's recorded answer: those before the faults.
const CONTENT_CASES: &[&str] = CASES.split_at(14).0;

struct Provider {
    name: &'static str,
    /// The provider's TOML, with `{endpoint}` replaced by a standalone simulator's URL when
    /// `standalone` is set.
    toml: &'static str,
    standalone: Option<SimDialect>,
    target: &'static str,
    /// The credentials the gateway holds, which no answer may show.
    secrets: &'static [&'static str],
}

impl Provider {
    /// One of the kit's simulated providers.
    const fn sim(name: &'static str, sim: providers::SimProvider) -> Self {
        Self {
            name,
            toml: sim.settings,
            standalone: None,
            target: sim.target,
            secrets: sim.secrets,
        }
    }
}

const PROVIDERS: &[Provider] = &[
    Provider::sim("openai", providers::OPENAI),
    Provider::sim("azure", providers::AZURE),
    Provider {
        name: "openai-compatible",
        toml: r#"kind = "openai-compatible"
endpoint = "{endpoint}""#,
        standalone: Some(SimDialect::OpenAi),
        target: "meta-llama/Llama-3.1-8B-Instruct",
        secrets: &[],
    },
    // OpenAI through the Responses API upstream (`api = "responses"`).
    Provider {
        name: "openai-responses",
        toml: r#"kind = "sim"
dialect = "openai"
api = "responses""#,
        standalone: None,
        target: "o3",
        secrets: &[],
    },
    Provider::sim("anthropic", providers::ANTHROPIC),
    Provider::sim("bedrock", providers::BEDROCK),
    Provider::sim("gemini", providers::GEMINI),
    Provider::sim("vertex", providers::VERTEX),
    Provider::sim("vertex-anthropic", providers::VERTEX_ANTHROPIC),
    Provider::sim("foundry-anthropic", providers::FOUNDRY_ANTHROPIC),
    // The clouds' own doors to OpenAI's dialects and to Claude (issue 16).
    Provider::sim(
        "bedrock-mantle-responses",
        providers::BEDROCK_MANTLE_RESPONSES,
    ),
    Provider::sim("bedrock-mantle-chat", providers::BEDROCK_MANTLE_CHAT),
    Provider::sim(
        "bedrock-mantle-anthropic",
        providers::BEDROCK_MANTLE_ANTHROPIC,
    ),
    Provider::sim("bedrock-runtime-chat", providers::BEDROCK_RUNTIME_CHAT),
    Provider::sim(
        "vertex-openai-responses",
        providers::VERTEX_OPENAI_RESPONSES,
    ),
    Provider::sim("vertex-openai-chat", providers::VERTEX_OPENAI_CHAT),
];

struct Harness {
    provider: &'static str,
    client: reqwest::Client,
    gateway: TestGateway,
    standalone: Option<SimServer>,
    ingress: Ingress,
    /// The last reply the gateway gave, for the content checks after a case.
    last_reply: std::sync::Mutex<Reply>,
}

impl Harness {
    async fn start(provider: &Provider, ingress: Ingress) -> Self {
        Self::start_with(provider, ingress, "").await
    }

    /// As [`Harness::start`], with `extra` settings appended to the provider's.
    async fn start_with(provider: &Provider, ingress: Ingress, extra: &str) -> Self {
        let standalone = match provider.standalone {
            Some(dialect) => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                Some(
                    SimServer::start(listener, dialect, SimConfig::default())
                        .await
                        .unwrap(),
                )
            }
            None => None,
        };
        let toml = match &standalone {
            Some(sim) => provider.toml.replace("{endpoint}", &sim.base_url()),
            None => provider.toml.to_owned(),
        };
        let config = format!(
            "[store]\nenabled = false\n\n[[providers]]\nname = \"p\"\n{toml}\n{extra}\n\n[[models]]\nname = \"m\"\ndeployments = [{{ provider = \"p\", target = \"{}\" }}]\n",
            provider.target
        );
        let gateway =
            TestGateway::start_with_grace(&config, std::time::Duration::from_secs(1)).await;
        Self {
            provider: provider.name,
            client: reqwest::Client::new(),
            gateway,
            standalone,
            ingress,
            last_reply: std::sync::Mutex::default(),
        }
    }

    fn sim(&self) -> &SimServer {
        self.standalone
            .as_ref()
            .unwrap_or_else(|| self.gateway.sim("p"))
    }

    async fn send(&self, spec: &Spec) -> Reply {
        let reply = client::send(&self.client, &self.gateway.url, self.ingress, "m", spec).await;
        *self.last_reply.lock().unwrap() = reply.clone();
        reply
    }

    /// Requests the provider received from the `from`-th on.
    fn requests_since(&self, from: usize) -> Vec<RecordedRequest> {
        self.sim().requests().into_iter().skip(from).collect()
    }

    /// The body of the last request the provider received, as text.
    fn last_upstream_body(&self) -> String {
        self.sim()
            .requests()
            .last()
            .and_then(|r| r.body.clone())
            .map(|b| b.to_string())
            .unwrap_or_default()
    }

    /// Runs `spec` with the simulator scripted by `script`, then restores the default script.
    async fn with_fault(&self, script: SimConfig, spec: &Spec) -> Reply {
        let previous = self.sim().config();
        self.sim().set_config(SimConfig {
            api_key: previous.api_key.clone(),
            ..script
        });
        let reply = self.send(spec).await;
        self.sim().set_config(previous);
        reply
    }
}

fn user(text: &str) -> Spec {
    Spec {
        turns: vec![Turn::User(text.to_owned())],
        ..Spec::default()
    }
}

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

fn ok(reply: &Reply) -> Result<(), String> {
    ensure(reply.status == 200 && reply.error.is_none(), || {
        format!("status {} error {:?}", reply.status, reply.error)
    })
}

fn object_args(call: &Call) -> Result<Value, String> {
    let value: Value = serde_json::from_str(&call.arguments)
        .map_err(|e| format!("{}: arguments {:?}: {e}", call.name, call.arguments))?;
    ensure(value.is_object(), || {
        format!("{}: arguments not an object", call.name)
    })?;
    Ok(value)
}

fn tool_history(is_error: bool, content: &str) -> Spec {
    Spec {
        tools: true,
        turns: vec![
            Turn::User("Use get_weather for Rome".into()),
            Turn::Calls(vec![Call {
                id: "toolu_rome1".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Rome","unit":"c"}"#.into(),
            }]),
            Turn::Result {
                id: "toolu_rome1".into(),
                content: content.into(),
                is_error,
            },
        ],
        ..Spec::default()
    }
}

fn broken_stream(reply: &Reply) -> Result<(), String> {
    // Before the first byte the gateway may answer with an error status; after it, the stream
    // must end with an error event and never with its clean terminator.
    let errored = reply.status != 200 || (reply.error.is_some() && !reply.complete);
    ensure(errored, || {
        format!("a broken stream looked complete: {reply:?}")
    })
}

async fn run_case(h: &Harness, case: &str) -> Result<(), String> {
    match case {
        "text" => {
            let reply = h
                .send(&user("Tell me about lighthouses and harbours"))
                .await;
            ok(&reply)?;
            ensure(reply.text.contains("lighthouses"), || {
                format!("text: {:?}", reply.text)
            })?;
            ensure(reply.finish == Some(Finish::Stop), || {
                format!("finish {:?}", reply.finish)
            })?;
            ensure(
                reply.usage.is_some_and(|u| u.input > 0 && u.output > 0),
                || format!("usage {:?}", reply.usage),
            )
        }
        "system" => {
            let spec = Spec {
                system: Some("SYSMARKER-42: be terse.".into()),
                ..user("hello there")
            };
            ok(&h.send(&spec).await)?;
            ensure(h.last_upstream_body().contains("SYSMARKER-42"), || {
                "system prompt did not reach the provider".into()
            })
        }
        "multi_turn" => {
            let spec = Spec {
                turns: vec![
                    Turn::User("first about apples".into()),
                    Turn::Assistant("APPLES-ARE-RED".into()),
                    Turn::User("now tell me about pears".into()),
                ],
                ..Spec::default()
            };
            let reply = h.send(&spec).await;
            ok(&reply)?;
            ensure(reply.text.contains("pears"), || {
                format!("text: {:?}", reply.text)
            })?;
            ensure(h.last_upstream_body().contains("APPLES-ARE-RED"), || {
                "history did not reach the provider".into()
            })
        }
        "stream" => {
            let reply = h
                .send(&Spec {
                    stream: true,
                    ..user("Stream about rivers and lakes")
                })
                .await;
            ok(&reply)?;
            ensure(reply.complete && reply.text.contains("rivers"), || {
                format!("{reply:?}")
            })?;
            ensure(reply.finish == Some(Finish::Stop), || {
                format!("finish {:?}", reply.finish)
            })?;
            ensure(reply.usage.is_some_and(|u| u.output > 0), || {
                format!("usage {:?}", reply.usage)
            })
        }
        "tool_call" => {
            let reply = h
                .send(&Spec {
                    tools: true,
                    parallel: Some(false),
                    ..user("Use get_weather for Paris")
                })
                .await;
            ok(&reply)?;
            ensure(
                reply.calls.len() == 1 && reply.calls[0].name == "get_weather",
                || format!("calls {:?}", reply.calls),
            )?;
            let args = object_args(&reply.calls[0])?;
            ensure(
                args["city"].is_string()
                    && ["c", "f"].contains(&args["unit"].as_str().unwrap_or("")),
                || format!("args {args}"),
            )?;
            ensure(!reply.calls[0].id.is_empty(), || {
                "tool call without id".into()
            })?;
            ensure(reply.finish == Some(Finish::ToolCalls), || {
                format!("finish {:?}", reply.finish)
            })
        }
        "parallel_tool_calls" => {
            let reply = h
                .send(&Spec {
                    tools: true,
                    stream: true,
                    ..user("Use get_weather and get_time for Oslo")
                })
                .await;
            ok(&reply)?;
            let names: Vec<&str> = reply.calls.iter().map(|c| c.name.as_str()).collect();
            ensure(names == ["get_weather", "get_time"], || {
                format!("calls {:?}", reply.calls)
            })?;
            for call in &reply.calls {
                object_args(call)?;
            }
            ensure(reply.calls[0].id != reply.calls[1].id, || {
                "duplicate ids".into()
            })?;
            ensure(
                reply.complete && reply.finish == Some(Finish::ToolCalls),
                || format!("{reply:?}"),
            )
        }
        "tool_result" | "tool_error" => {
            let (is_error, content) = if case == "tool_error" {
                (true, "ERROR-clock-offline")
            } else {
                (false, "RESULT-21C-sunny")
            };
            let reply = h.send(&tool_history(is_error, content)).await;
            ok(&reply)?;
            ensure(reply.text.contains(content), || {
                format!("answer does not cite the result: {:?}", reply.text)
            })
        }
        "image" => {
            let spec = Spec {
                turns: vec![Turn::UserImage("Describe this picture".into())],
                ..Spec::default()
            };
            ok(&h.send(&spec).await)?;
            ensure(h.last_upstream_body().contains(&client::PNG[..24]), || {
                "image bytes did not reach the provider".into()
            })
        }
        "document" => {
            let spec = Spec {
                turns: vec![Turn::UserDocument("Summarize this report".into())],
                ..Spec::default()
            };
            ok(&h.send(&spec).await)?;
            ensure(h.last_upstream_body().contains(client::PDF), || {
                "document bytes did not reach the provider".into()
            })
        }
        "json_schema" => {
            let schema = json!({"type": "object", "properties": {"title": {"type": "string"}, "count": {"type": "integer"}}, "required": ["title", "count"], "additionalProperties": false});
            let reply = h
                .send(&Spec {
                    json_schema: Some(schema),
                    ..user("Give me a title and a count")
                })
                .await;
            ok(&reply)?;
            let value: Value = serde_json::from_str(&reply.text)
                .map_err(|e| format!("not JSON: {:?}: {e}", reply.text))?;
            ensure(
                value["title"].is_string() && value["count"].is_i64(),
                || format!("does not match the schema: {value}"),
            )
        }
        "stop_sequence" => {
            let reply = h
                .send(&Spec {
                    stop: vec!["STOPWORD".into()],
                    ..user("Say alpha bravo STOPWORD charlie delta")
                })
                .await;
            ok(&reply)?;
            ensure(
                reply.text.contains("alpha") && !reply.text.contains("charlie"),
                || format!("text {:?}", reply.text),
            )?;
            ensure(reply.finish == Some(Finish::Stop), || {
                format!("finish {:?}", reply.finish)
            })
        }
        "max_tokens" => {
            let reply = h
                .send(&Spec {
                    // 16 is the Responses API's floor for max_output_tokens.
                    max_tokens: Some(16),
                    ..user(
                        "Write a long story about the sea and ships and sailors at dawn, the \
                         harbour lights, the fishing boats, the gulls, the storms, the tides, the \
                         lighthouse keepers and their families, the markets and the old songs",
                    )
                })
                .await;
            ok(&reply)?;
            ensure(reply.finish == Some(Finish::Length), || {
                format!("finish {:?}", reply.finish)
            })
        }
        "usage_cached" => {
            let long =
                "The quick brown fox jumps over the lazy dog near the riverbank. ".repeat(90);
            let spec = Spec {
                system: Some(long),
                cache: true,
                ..user("Summarize the instructions")
            };
            ok(&h.send(&spec).await)?;
            let second = h.send(&spec).await;
            ok(&second)?;
            ensure(
                second
                    .usage
                    .is_some_and(|u| u.cached > 0 && u.cached <= u.input),
                || format!("no cached tokens reported: {:?}", second.usage),
            )
        }
        "upstream_4xx" => {
            let reply = h
                .with_fault(
                    SimConfig {
                        error_rate: 1.0,
                        error_status: 400,
                        ..SimConfig::default()
                    },
                    &user("x"),
                )
                .await;
            ensure(
                reply.status == 400
                    && reply
                        .error
                        .as_deref()
                        .is_some_and(|e| !e.contains("badly shaped")),
                || format!("{reply:?}"),
            )
        }
        "upstream_429" => {
            let reply = h
                .with_fault(
                    SimConfig {
                        rate_limit_rate: 1.0,
                        retry_after_s: 7,
                        ..SimConfig::default()
                    },
                    &user("x"),
                )
                .await;
            ensure(reply.status == 429 && reply.error.is_some(), || {
                format!("{reply:?}")
            })?;
            // Bedrock's Converse sends no retry signal at all, nor does Vertex's
            // shared-capacity 429 for Gemini; the OpenAI-dialect doors on both clouds answer
            // with OpenAI's shape, Retry-After included.
            let silent = matches!(h.provider, "bedrock" | "vertex");
            let expected = if silent { None } else { Some("7") };
            ensure(reply.retry_after.as_deref() == expected, || {
                format!("retry-after {:?}", reply.retry_after)
            })
        }
        "upstream_5xx" => {
            let reply = h
                .with_fault(
                    SimConfig {
                        error_rate: 1.0,
                        error_status: 503,
                        ..SimConfig::default()
                    },
                    &user("x"),
                )
                .await;
            ensure(reply.status == 503 && reply.error.is_some(), || {
                format!("{reply:?}")
            })
        }
        "midstream_error" | "cut_stream" => {
            let spec = Spec {
                stream: true,
                ..user("a long streamed answer about many things please")
            };
            // Three chunks in, the stream ends with an in-band error or the connection is cut.
            let mut fault = SimConfig::default();
            if case == "cut_stream" {
                fault.cut_after_chunks = 3;
            } else {
                fault.stream_error_after_chunks = 3;
            }
            broken_stream(&h.with_fault(fault, &spec).await)
        }
        other => Err(format!("unknown case {other}")),
    }
}

/// Holds the case's last reply to what the simulator answered, and the request it sent to
/// where each part belongs.
fn check_content(h: &Harness, case: &str, sent: &[RecordedRequest]) -> Result<(), String> {
    let reply = h.last_reply.lock().unwrap().clone();
    let last = sent.last().ok_or("the provider received nothing")?;
    let wire = Wire::of(last).ok_or_else(|| format!("unknown upstream path {}", last.path))?;
    let answer = upstream::answer(last).ok_or("the provider's answer was not recorded")?;
    ensure(reply.text == answer.text, || {
        format!(
            "text {:?} but the provider said {:?}",
            reply.text, answer.text
        )
    })?;
    let calls: Vec<(String, Value)> = reply
        .calls
        .iter()
        .map(|c| Ok((c.name.clone(), object_args(c)?)))
        .collect::<Result<_, String>>()?;
    ensure(calls == answer.calls, || {
        format!("calls {calls:?} but the provider called {:?}", answer.calls)
    })?;
    let mut usage = reply.usage.ok_or("no usage")?;
    let mut expected = answer.usage.ok_or("the provider reported no usage")?;
    // Anthropic's usage has no reasoning count, the Responses API no cache-write count.
    if h.ingress == Ingress::Anthropic {
        expected.reasoning = 0;
    }
    if h.ingress == Ingress::Responses {
        usage.cache_write = expected.cache_write;
    }
    ensure(usage == expected, || {
        format!("usage {usage:?} but the provider reported {expected:?}")
    })?;
    let body = last.body.as_ref().ok_or("the upstream body was not JSON")?;
    match case {
        "system" => {
            let field = upstream::system_field(wire, body).unwrap_or_default();
            let everywhere = body.to_string().matches("SYSMARKER-42").count();
            ensure(field.contains("SYSMARKER-42") && everywhere == 1, || {
                format!("system prompt not (only) in the system field: {body}")
            })?;
        }
        "tool_result" | "tool_error" => {
            // Only the Anthropic ingress can flag an error; OpenAI and Responses results are
            // plain content, so they must reach a flagging provider as successes.
            let flagged = case == "tool_error" && h.ingress == Ingress::Anthropic;
            match upstream::tool_error_flag(wire, body)? {
                None => {}
                Some(flag) => ensure(flag == flagged, || {
                    format!("tool result flagged error={flag}, expected {flagged}: {body}")
                })?,
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks a cell listed in [`expectation`] failed the way it says.
fn check_expected(h: &Harness, expect: Expect) -> Result<(), String> {
    let reply = h.last_reply.lock().unwrap().clone();
    match expect {
        Expect::Refused {
            status,
            param,
            message,
        } => {
            let param_ok = h.ingress == Ingress::Anthropic || reply.param.as_deref() == Some(param);
            ensure(
                reply.status == status && reply.error.as_deref() == Some(message) && param_ok,
                || format!("expected {status} {message:?} (param {param}), got {reply:?}"),
            )
        }
        Expect::NoCache => ensure(
            reply.status == 200 && reply.usage.is_some_and(|u| u.cached == 0),
            || format!("expected a success without cached tokens, got {reply:?}"),
        ),
        Expect::NotExpressible => Ok(()),
    }
}

/// Validates one upstream body against its wire's published spec; returns whether one exists.
/// Anthropic Messages and Gemini publish no machine-readable spec, so theirs are not.
fn validate_upstream(request: &RecordedRequest) -> bool {
    let Some(body) = &request.body else {
        return false;
    };
    match Wire::of(request) {
        Some(Wire::OpenAiChat) => openapi::check("CreateChatCompletionRequest", body),
        Some(Wire::Responses) => check_create_response(body),
        Some(Wire::Converse) => smithy::check("ConverseRequest", body),
        Some(Wire::ConverseStream) => smithy::check("ConverseStreamRequest", body),
        Some(Wire::Anthropic | Wire::Gemini) | None => return false,
    }
    true
}

/// `CreateResponse`, with each input item checked against the schema its `type` discriminates.
/// The spec's `InputItem` is a `oneOf` with an OpenAPI `discriminator`; JSON Schema ignores the
/// discriminator, and a user message matches both `EasyInputMessage` and `InputMessage`, so
/// plain `oneOf` would refuse every valid message.
fn check_create_response(body: &Value) {
    let mut rest = body.clone();
    if let Some(items) = body["input"].as_array() {
        rest["input"] = json!("(items checked one by one)");
        for item in items {
            if item["role"] == "assistant" && item["content"].is_array() {
                check_assistant_history(item);
                continue;
            }
            let schema = match item["type"].as_str() {
                None | Some("message") => "EasyInputMessage",
                Some("function_call") => "FunctionToolCall",
                Some("function_call_output") => "FunctionCallOutputItemParam",
                Some("reasoning") => "ReasoningItem",
                Some(other) => panic!("unexpected input item type {other}: {body}"),
            };
            openapi::check(schema, item);
        }
    }
    openapi::check("CreateResponse", &rest);
}

/// An assistant turn replayed as input. The real API wants its parts as `output_text` (it refuses
/// `input_text` there), which the spec models only inside a full `OutputMessage` (with `id`,
/// `status` and per-part `logprobs`, none of which a replayed turn has): so each part must be a
/// text `output_text` or `refusal`, and the message with its text as `content` an
/// `EasyInputMessage`.
fn check_assistant_history(item: &Value) {
    let mut text = String::new();
    for part in item["content"].as_array().into_iter().flatten() {
        let ok = match part["type"].as_str() {
            Some("output_text") => part["text"].as_str().map(|t| text.push_str(t)).is_some(),
            Some("refusal") => part["refusal"].is_string(),
            _ => false,
        };
        assert!(
            ok,
            "assistant history part {part} is not output_text or refusal"
        );
    }
    let mut message = item.clone();
    message["content"] = json!(text);
    openapi::check("EasyInputMessage", &message);
}

/// What one provider × ingress run did, for the counts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    run: usize,
    content: usize,
    expected_failures: usize,
    not_expressible: usize,
    bodies_validated: usize,
}

/// Runs every case for one provider and ingress; fails listing each cell that did not do as the
/// matrix says.
async fn matrix(provider_name: &str, ingress: Ingress) -> Counts {
    let provider = PROVIDERS.iter().find(|p| p.name == provider_name).unwrap();
    let harness = Harness::start(provider, ingress).await;
    let mut failures = String::new();
    let mut counts = Counts::default();
    for case in CASES {
        let expect = expectation(provider_name, ingress, case);
        if expect == Some(Expect::NotExpressible) {
            counts.not_expressible += 1;
            continue;
        }
        counts.run += 1;
        let before = harness.sim().requests().len();
        let result = run_case(&harness, case).await;
        let result = match (result, expect) {
            (Ok(()), None) if CONTENT_CASES.contains(case) => {
                counts.content += 1;
                check_content(&harness, case, &harness.requests_since(before))
            }
            (Ok(()), None) => Ok(()),
            (Err(why), None) => Err(why),
            (outcome, Some(expect)) => {
                counts.expected_failures += 1;
                check_expected(&harness, expect).map_err(|why| {
                    format!(
                        "listed as {expect:?} ({}): {why}",
                        match outcome {
                            Ok(()) => "the case passed".to_owned(),
                            Err(e) => e,
                        }
                    )
                })
            }
        };
        if let Err(why) = result {
            let _ = writeln!(failures, "  {case}: {why}");
        }
    }
    for request in harness.sim().requests() {
        if validate_upstream(&request) {
            counts.bodies_validated += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{provider_name} via {ingress:?} ingress:\n{failures}"
    );
    println!("{provider_name} via {ingress:?}: {counts:?}");
    counts
}

/// The matrix's honest size, computed from its own tables: cells run, cells whose content is
/// asserted, cells that must fail in a named way, and cells no ingress request can express.
#[test]
fn matrix_counts() {
    let mut counts = Counts::default();
    for provider in PROVIDERS {
        for ingress in [Ingress::OpenAi, Ingress::Anthropic, Ingress::Responses] {
            for case in CASES {
                match expectation(provider.name, ingress, case) {
                    Some(Expect::NotExpressible) => counts.not_expressible += 1,
                    Some(_) => {
                        counts.run += 1;
                        counts.expected_failures += 1;
                    }
                    None => {
                        counts.run += 1;
                        counts.content += usize::from(CONTENT_CASES.contains(case));
                    }
                }
            }
        }
    }
    println!("conformance matrix: {counts:?}");
    assert_eq!(
        counts,
        Counts {
            run: 896,
            content: 640,
            expected_failures: 16,
            not_expressible: 16,
            bodies_validated: 0,
        }
    );
}

/// Providers whose wire (Anthropic Messages, Gemini) has no machine-readable published spec.
fn no_published_spec(provider: &str) -> bool {
    matches!(
        provider,
        "anthropic"
            | "vertex-anthropic"
            | "foundry-anthropic"
            | "bedrock-mantle-anthropic"
            | "gemini"
            | "vertex"
    )
}

macro_rules! matrix_tests {
    ($($test:ident: $provider:literal, $ingress:ident;)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                let counts = matrix($provider, Ingress::$ingress).await;
                assert!(counts.bodies_validated > 0 || no_published_spec($provider), "{counts:?}");
            }
        )*
    };
}

matrix_tests! {
    openai_via_openai: "openai", OpenAi;
    openai_via_anthropic: "openai", Anthropic;
    azure_via_openai: "azure", OpenAi;
    azure_via_anthropic: "azure", Anthropic;
    openai_compatible_via_openai: "openai-compatible", OpenAi;
    openai_compatible_via_anthropic: "openai-compatible", Anthropic;
    anthropic_via_openai: "anthropic", OpenAi;
    anthropic_via_anthropic: "anthropic", Anthropic;
    bedrock_via_openai: "bedrock", OpenAi;
    bedrock_via_anthropic: "bedrock", Anthropic;
    gemini_via_openai: "gemini", OpenAi;
    gemini_via_anthropic: "gemini", Anthropic;
    vertex_via_openai: "vertex", OpenAi;
    vertex_via_anthropic: "vertex", Anthropic;
    vertex_anthropic_via_openai: "vertex-anthropic", OpenAi;
    vertex_anthropic_via_anthropic: "vertex-anthropic", Anthropic;
    foundry_anthropic_via_openai: "foundry-anthropic", OpenAi;
    foundry_anthropic_via_anthropic: "foundry-anthropic", Anthropic;
    openai_responses_via_openai: "openai-responses", OpenAi;
    openai_responses_via_anthropic: "openai-responses", Anthropic;
    openai_responses_via_responses: "openai-responses", Responses;
    openai_via_responses: "openai", Responses;
    azure_via_responses: "azure", Responses;
    openai_compatible_via_responses: "openai-compatible", Responses;
    anthropic_via_responses: "anthropic", Responses;
    bedrock_via_responses: "bedrock", Responses;
    gemini_via_responses: "gemini", Responses;
    vertex_via_responses: "vertex", Responses;
    vertex_anthropic_via_responses: "vertex-anthropic", Responses;
    foundry_anthropic_via_responses: "foundry-anthropic", Responses;
    bedrock_mantle_responses_via_openai: "bedrock-mantle-responses", OpenAi;
    bedrock_mantle_responses_via_anthropic: "bedrock-mantle-responses", Anthropic;
    bedrock_mantle_responses_via_responses: "bedrock-mantle-responses", Responses;
    bedrock_mantle_chat_via_openai: "bedrock-mantle-chat", OpenAi;
    bedrock_mantle_chat_via_anthropic: "bedrock-mantle-chat", Anthropic;
    bedrock_mantle_chat_via_responses: "bedrock-mantle-chat", Responses;
    bedrock_mantle_anthropic_via_openai: "bedrock-mantle-anthropic", OpenAi;
    bedrock_mantle_anthropic_via_anthropic: "bedrock-mantle-anthropic", Anthropic;
    bedrock_mantle_anthropic_via_responses: "bedrock-mantle-anthropic", Responses;
    bedrock_runtime_chat_via_openai: "bedrock-runtime-chat", OpenAi;
    bedrock_runtime_chat_via_anthropic: "bedrock-runtime-chat", Anthropic;
    bedrock_runtime_chat_via_responses: "bedrock-runtime-chat", Responses;
    vertex_openai_responses_via_openai: "vertex-openai-responses", OpenAi;
    vertex_openai_responses_via_anthropic: "vertex-openai-responses", Anthropic;
    vertex_openai_responses_via_responses: "vertex-openai-responses", Responses;
    vertex_openai_chat_via_openai: "vertex-openai-chat", OpenAi;
    vertex_openai_chat_via_anthropic: "vertex-openai-chat", Anthropic;
    vertex_openai_chat_via_responses: "vertex-openai-chat", Responses;
}

/// The provider refuses the credentials the gateway holds (its simulator now expects others):
/// the client gets a 502, the gateway's fault and not its own, and the answer never shows them.
/// A provider configured without a credential is given one here, so there is one to hide.
async fn rejected_key(provider_name: &str) {
    let provider = PROVIDERS.iter().find(|p| p.name == provider_name).unwrap();
    let (extra, secrets): (&str, &[&str]) = if provider.secrets.is_empty() {
        (
            r#"api_key = "sk-configured-but-wrong""#,
            &["sk-configured-but-wrong"],
        )
    } else {
        ("", provider.secrets)
    };
    let h = Harness::start_with(provider, Ingress::OpenAi, extra).await;
    h.sim().set_config(SimConfig {
        api_key: Some("the-real-one".to_owned()),
        ..h.sim().config()
    });
    let (status, body) = crossbar_testkit::gateway::error_of(
        h.gateway
            .post(
                "/v1/chat/completions",
                &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 502, "{provider_name}: {body}");
    for secret in secrets {
        assert!(
            !body.to_string().contains(secret),
            "{provider_name}: {body}"
        );
    }
}

macro_rules! rejected_key_tests {
    ($($test:ident: $provider:literal;)*) => {
        /// The providers with a rejected-key row, to check none is missing.
        const REJECTED_KEY_ROWS: &[&str] = &[$($provider),*];
        $(
            #[tokio::test]
            async fn $test() {
                rejected_key($provider).await;
            }
        )*
    };
}

rejected_key_tests! {
    openai_rejects_our_key: "openai";
    azure_rejects_our_key: "azure";
    openai_compatible_rejects_our_key: "openai-compatible";
    openai_responses_rejects_our_key: "openai-responses";
    anthropic_rejects_our_key: "anthropic";
    bedrock_rejects_our_key: "bedrock";
    gemini_rejects_our_key: "gemini";
    vertex_rejects_our_key: "vertex";
    vertex_anthropic_rejects_our_key: "vertex-anthropic";
    foundry_anthropic_rejects_our_key: "foundry-anthropic";
    bedrock_mantle_responses_rejects_our_key: "bedrock-mantle-responses";
    bedrock_mantle_chat_rejects_our_key: "bedrock-mantle-chat";
    bedrock_mantle_anthropic_rejects_our_key: "bedrock-mantle-anthropic";
    bedrock_runtime_chat_rejects_our_key: "bedrock-runtime-chat";
    vertex_openai_responses_rejects_our_key: "vertex-openai-responses";
    vertex_openai_chat_rejects_our_key: "vertex-openai-chat";
}

#[test]
fn every_provider_has_a_rejected_key_row() {
    let names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
    assert_eq!(REJECTED_KEY_ROWS, names.as_slice());
}

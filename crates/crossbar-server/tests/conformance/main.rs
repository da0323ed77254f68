//! The conformance matrix: every ingress dialect (OpenAI Chat Completions, Anthropic Messages,
//! OpenAI Responses) × every provider kind × every case, through a real gateway in front of
//! simulated providers that validate requests the way the real services do. Exclusions are
//! listed with their reason in [`excluded`]; a case that passes while listed as excluded fails
//! the matrix too, so the list stays true.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures fail the test"
)]

mod client;

use std::fmt::Write as _;

use client::{Call, Finish, Ingress, Reply, Spec, Turn};
use crossbar_core::config::Config;
use crossbar_server::{Gateway, ServeLimits, app, serve};
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use serde_json::{Value, json};

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

/// Combinations that cannot work, and why. Keyed by provider, ingress (None = both) and case.
fn excluded(provider: &str, ingress: Ingress, case: &str) -> Option<&'static str> {
    match (provider, ingress, case) {
        ("anthropic" | "vertex-anthropic" | "bedrock", Ingress::OpenAi, "usage_cached") => Some(
            "these providers cache only at explicit breakpoints, which OpenAI Chat Completions cannot express",
        ),
        (_, Ingress::Responses, "stop_sequence") => Some("the Responses API has no stop sequences"),
        ("openai-responses", _, "stop_sequence") => Some("the Responses API has no stop sequences"),
        ("anthropic" | "vertex-anthropic" | "bedrock", Ingress::Responses, "usage_cached") => Some(
            "these providers cache only at explicit breakpoints, which the Responses API cannot express",
        ),
        _ => None,
    }
}

struct Provider {
    name: &'static str,
    /// The provider's TOML, with `{endpoint}` replaced by a standalone simulator's URL when
    /// `standalone` is set.
    toml: &'static str,
    standalone: Option<SimDialect>,
    target: &'static str,
}

const PROVIDERS: &[Provider] = &[
    Provider {
        name: "openai",
        toml: r#"kind = "sim"
dialect = "openai""#,
        standalone: None,
        target: "gpt-4o",
    },
    Provider {
        name: "azure",
        toml: r#"kind = "sim"
dialect = "azure"
api_key = "azure-key"
sim = { api_key = "azure-key" }"#,
        standalone: None,
        target: "gpt4o-prod",
    },
    Provider {
        name: "openai-compatible",
        toml: r#"kind = "openai-compatible"
endpoint = "{endpoint}""#,
        standalone: Some(SimDialect::OpenAi),
        target: "meta-llama/Llama-3.1-8B-Instruct",
    },
    // OpenAI through the Responses API upstream (`api = "responses"`).
    Provider {
        name: "openai-responses",
        toml: r#"kind = "sim"
dialect = "openai"
api = "responses""#,
        standalone: None,
        target: "o3",
    },
    Provider {
        name: "anthropic",
        toml: r#"kind = "sim"
dialect = "anthropic"
api_key = "sk-ant-test"
sim = { api_key = "sk-ant-test" }"#,
        standalone: None,
        target: "claude-sonnet-4-20250514",
    },
    Provider {
        name: "bedrock",
        toml: r#"kind = "sim"
dialect = "bedrock"
region = "us-east-1"
aws = { access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }"#,
        standalone: None,
        target: "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    },
    Provider {
        name: "gemini",
        toml: r#"kind = "sim"
dialect = "gemini"
api_key = "gemini-key"
sim = { api_key = "gemini-key" }"#,
        standalone: None,
        target: "gemini-2.5-flash",
    },
    Provider {
        name: "vertex",
        toml: r#"kind = "sim"
dialect = "vertex"
project = "proj-1"
location = "us-central1"
api_key = "ya29.test-token"
sim = { api_key = "ya29.test-token" }"#,
        standalone: None,
        target: "gemini-2.5-pro",
    },
    Provider {
        name: "vertex-anthropic",
        toml: r#"kind = "sim"
dialect = "vertex-anthropic"
project = "proj-1"
location = "us-east5"
api_key = "ya29.test-token"
sim = { api_key = "ya29.test-token" }"#,
        standalone: None,
        target: "claude-sonnet-4@20250514",
    },
];

struct Harness {
    provider: &'static str,
    url: String,
    client: reqwest::Client,
    gateway: Gateway,
    standalone: Option<SimServer>,
    ingress: Ingress,
}

impl Harness {
    async fn start(provider: &Provider, ingress: Ingress) -> Self {
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
            "[store]\nenabled = false\n\n[[providers]]\nname = \"p\"\n{toml}\n\n[[models]]\nname = \"m\"\ndeployments = [{{ provider = \"p\", target = \"{}\" }}]\n",
            provider.target
        );
        let config = Config::from_toml(&config, "conformance.toml")
            .unwrap_or_else(|e| panic!("{}: {e}", provider.name));
        let gateway = Gateway::build(&config)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", provider.name));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(
            listener,
            app(gateway.state.clone()),
            std::future::pending(),
            ServeLimits::with_grace(std::time::Duration::from_secs(1)),
        ));
        Self {
            provider: provider.name,
            url,
            client: reqwest::Client::new(),
            gateway,
            standalone,
            ingress,
        }
    }

    fn sim(&self) -> &SimServer {
        self.standalone
            .as_ref()
            .unwrap_or_else(|| &self.gateway.sims["p"])
    }

    async fn send(&self, spec: &Spec) -> Reply {
        client::send(&self.client, &self.url, self.ingress, "m", spec).await
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
            ensure(reply.usage.is_some_and(|u| u.0 > 0 && u.2 > 0), || {
                format!("usage {:?}", reply.usage)
            })
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
            ensure(reply.usage.is_some_and(|u| u.2 > 0), || {
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
                    max_tokens: Some(3),
                    ..user("Write a long story about the sea and ships and sailors at dawn")
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
            ensure(second.usage.is_some_and(|u| u.1 > 0 && u.1 <= u.0), || {
                format!("no cached tokens reported: {:?}", second.usage)
            })
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
            // Bedrock sends no retry signal at all, nor does Vertex's shared-capacity 429.
            let silent = !h.gateway.sims.is_empty()
                && matches!(h.sim().dialect(), SimDialect::Bedrock)
                || h.provider == "vertex";
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
        "midstream_error" => {
            let spec = Spec {
                stream: true,
                ..user("a long streamed answer about many things please")
            };
            broken_stream(
                &h.with_fault(
                    SimConfig {
                        stream_error_after_chunks: 3,
                        ..SimConfig::default()
                    },
                    &spec,
                )
                .await,
            )
        }
        "cut_stream" => {
            let spec = Spec {
                stream: true,
                ..user("a long streamed answer about many things please")
            };
            broken_stream(
                &h.with_fault(
                    SimConfig {
                        cut_after_chunks: 3,
                        ..SimConfig::default()
                    },
                    &spec,
                )
                .await,
            )
        }
        other => Err(format!("unknown case {other}")),
    }
}

/// Runs every case for one provider and ingress; fails listing each cell that did not do as the
/// matrix says.
async fn matrix(provider_name: &str, ingress: Ingress) {
    let provider = PROVIDERS.iter().find(|p| p.name == provider_name).unwrap();
    let harness = Harness::start(provider, ingress).await;
    let mut failures = String::new();
    for case in CASES {
        let result = run_case(&harness, case).await;
        match (result, excluded(provider_name, ingress, case)) {
            (Ok(()), None) | (Err(_), Some(_)) => {}
            (Ok(()), Some(reason)) => {
                let _ = writeln!(
                    failures,
                    "  {case}: passes but is listed as excluded ({reason})"
                );
            }
            (Err(why), None) => {
                let _ = writeln!(failures, "  {case}: {why}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{provider_name} via {ingress:?} ingress:\n{failures}"
    );
}

macro_rules! matrix_tests {
    ($($test:ident: $provider:literal, $ingress:ident;)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                matrix($provider, Ingress::$ingress).await;
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
}
